//! OTLP export: settings ([`config`]), connections ([`connect`]), the
//! request transport over gRPC or HTTP ([`transport`]) and retry backoff
//! ([`backoff`]). The transport is generic over the signal.

pub mod backoff;
pub mod config;
pub mod connect;
pub mod transport;

pub use config::{OtlpEndpoint, Protocol, Signal};
pub use transport::{ExportError, ExportOk, ExportRequest, Transport};
