//! Span transformations that run before the exporters: route decoration
//! (`routes` section) and the pieces it is built from.

pub mod cardinality;
pub mod heuristic;
pub mod matcher;
pub mod routes;
