//! Span and metric exporters, fed through bounded queues.

pub(crate) mod fanout;
pub(crate) mod gofmt;
pub(crate) mod metrics;
pub(crate) mod otlp;
pub(crate) mod printer;
pub(crate) mod resource;
pub(crate) mod top;
