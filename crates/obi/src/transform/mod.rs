//! Span transformations that run before the exporters: route decoration
//! (`routes` section) and the pieces it is built from.

pub(crate) mod cardinality;
pub(crate) mod heuristic;
pub(crate) mod matcher;
pub(crate) mod routes;
