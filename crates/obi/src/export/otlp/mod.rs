//! OTLP export. Generic parts, shared by every signal: settings
//! ([`config`]), connections ([`connect`]), the request transport over gRPC
//! or HTTP ([`transport`]) and retry backoff ([`backoff`]). Traces:
//! span conversion ([`convert`]), sampling ([`sampler`]) and the sink task
//! ([`traces`]).

pub mod backoff;
pub mod config;
pub mod connect;
pub mod convert;
pub mod sampler;
pub mod traces;
pub mod transport;

pub use config::{OtlpEndpoint, Protocol, Signal};
pub use traces::TracesExportConfig;
pub use transport::{ExportError, ExportOk, ExportRequest, Transport};
