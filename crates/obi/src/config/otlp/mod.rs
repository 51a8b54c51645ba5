//! OTLP exporter settings, resolved once at load from the
//! `OTEL_EXPORTER_OTLP_*` (and related) environment variables and the
//! `otel_traces_export` / `otel_metrics_export` YAML sections. The exporters
//! (`export::otlp`, `export::metrics::otlp`) only read the result.
//!
//! - [`endpoint`]: where and how a signal is sent (URL rules, protocol,
//!   headers, timeout, TLS);
//! - [`traces`] and [`metrics`]: the per-signal settings;
//! - [`sampler`]: the trace sampler settings.

pub mod endpoint;
pub mod metrics;
pub mod sampler;
mod signal;
mod sources;
pub mod traces;

pub use endpoint::{OtlpEndpoint, Protocol, TlsSettings};
pub use metrics::OtlpMetricsSettings;
pub use sampler::{RootSampler, Sampler};
pub use signal::Signal;
pub(crate) use sources::OtlpSources;
pub use sources::Setting;
pub use traces::{BackoffConfig, OtlpTracesSettings, TracesInstrumentations};

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
