//! Which telemetry an exporter sends: what traces and metrics settings
//! differ in (variable and section names, default paths).

/// The kind of telemetry an endpoint receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    /// Path appended to the common endpoint for HTTP.
    pub(crate) fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }

    /// `TRACES` / `METRICS`, as in `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub(crate) fn env_infix(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }

    /// The YAML section of this signal's exporter.
    pub(crate) fn yaml_section(self) -> &'static str {
        match self {
            Signal::Traces => "otel_traces_export",
            Signal::Metrics => "otel_metrics_export",
        }
    }

    pub(crate) fn var(self, suffix: &str) -> String {
        format!("OTEL_EXPORTER_OTLP_{}_{suffix}", self.env_infix())
    }
}
