//! OTLP export. Generic parts, shared by every signal: connections
//! ([`connect`]), the request transport over gRPC or HTTP ([`transport`])
//! and retry backoff ([`backoff`]). The settings are resolved at load
//! ([`crate::config::otlp`]). Traces:
//! span conversion ([`convert`]; [`wire`] encodes protobuf straight from
//! spans), sampling ([`sampler`]) and the sink task
//! ([`traces`]).

pub(crate) mod backoff;
pub(crate) mod connect;
pub(crate) mod convert;
pub(crate) mod sampler;
pub(crate) mod traces;
pub(crate) mod transport;
pub(crate) mod wire;

pub(crate) use transport::{ExportRequest, Transport};
