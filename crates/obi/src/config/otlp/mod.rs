//! OTLP exporter settings, resolved once at load from the
//! `OTEL_EXPORTER_OTLP_*` (and related) environment variables and the
//! `otel_traces_export` / `otel_metrics_export` YAML sections. The exporters
//! (`export::otlp`, `export::metrics::otlp`) only read the result.
//!
//! - [`endpoint`]: where and how a signal is sent (URL rules, protocol,
//!   headers, timeout, TLS);
//! - [`traces`] and [`metrics`]: the per-signal settings;
//! - [`sampler`]: the trace sampler settings.

pub(crate) mod endpoint;
pub(crate) mod metrics;
pub(crate) mod sampler;
mod signal;
mod sources;
pub(crate) mod traces;

pub(crate) use endpoint::{OtlpEndpoint, Protocol, TlsSettings};
pub(crate) use metrics::OtlpMetricsSettings;
pub(crate) use sampler::{RootSampler, Sampler};
pub(crate) use signal::Signal;
pub(crate) use sources::OtlpSources;
pub(crate) use traces::{BackoffConfig, OtlpTracesSettings};

use super::{ConfigError, Diagnostic};

/// Both OTLP exporters' settings; `None` for a signal without an endpoint.
pub(crate) fn resolve(
    sources: &OtlpSources,
    notes: &mut Vec<Diagnostic>,
) -> Result<(Option<OtlpTracesSettings>, Option<OtlpMetricsSettings>), ConfigError> {
    let traces = traces::resolve(&sources.lookup(Signal::Traces), notes)?;
    let metrics = metrics::resolve(&sources.lookup(Signal::Metrics))?;
    Ok((traces, metrics))
}
