//! Span and metric exporters, fed through bounded queues.

pub mod fanout;
pub mod gofmt;
pub mod metrics;
pub mod otlp;
pub mod printer;
pub mod resource;
