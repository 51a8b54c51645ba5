//! OTLP export. Generic parts, shared by every signal: connections
//! ([`connect`]), the request transport over gRPC or HTTP ([`transport`])
//! and retry backoff ([`backoff`]). The settings are resolved at load
//! ([`crate::config::otlp`]). Traces:
//! span conversion ([`convert`]), sampling ([`sampler`]) and the sink task
//! ([`traces`]).

pub mod backoff;
pub mod connect;
pub mod convert;
pub mod sampler;
pub mod traces;
pub mod transport;

pub use transport::{ExportError, ExportOk, ExportRequest, Transport};
