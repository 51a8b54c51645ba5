//! `otel_metrics_export`: the OTLP metrics exporter's settings (endpoint,
//! export interval, instrumentations, series TTL).

use std::time::Duration;

use super::endpoint::{OtlpEndpoint, resolve_endpoint};
use super::signal::Signal;
use super::sources::{Lookup, Setting};
use crate::config::ConfigError;
use crate::config::instrumentations::Instrumentations;
use crate::config::metrics::{DEFAULT_TTL, MetricsValueError};
use crate::config::parse::parse_go_duration;

/// OTel's default `OTEL_METRIC_EXPORT_INTERVAL`.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Resolved `otel_metrics_export` settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OtlpMetricsSettings {
    pub(crate) endpoint: OtlpEndpoint,
    pub(crate) interval: Duration,
    pub(crate) instrumentations: Instrumentations,
    pub(crate) ttl: Duration,
}

fn bad(s: &Setting, message: impl Into<String>) -> ConfigError {
    ConfigError::value(s.source.clone(), message)
}

/// The OTLP metrics exporter settings; `None` when no metrics (or common)
/// OTLP endpoint is set. Errors name the variable or YAML key.
pub(crate) fn resolve(lookup: &Lookup<'_>) -> Result<Option<OtlpMetricsSettings>, ConfigError> {
    let Some(endpoint) = resolve_endpoint(Signal::Metrics, lookup)? else {
        return Ok(None);
    };
    let interval = if let Some(s) = lookup.get("OTEL_EBPF_METRICS_INTERVAL", "interval") {
        parse_go_duration(&s.value).map_err(|e| bad(&s, e.to_string()))?
    } else if let Some(s) = lookup.env("OTEL_METRIC_EXPORT_INTERVAL") {
        let ms: u64 = s
            .value
            .trim()
            .parse()
            .map_err(|_| bad(&s, format!("invalid interval {:?}: expected milliseconds, e.g. 60000", s.value)))?;
        Duration::from_millis(ms)
    } else {
        DEFAULT_INTERVAL
    };
    if interval.is_zero() {
        let s = lookup
            .get("OTEL_EBPF_METRICS_INTERVAL", "interval")
            .or_else(|| lookup.env("OTEL_METRIC_EXPORT_INTERVAL"))
            .expect("a zero interval was read from a setting");
        return Err(bad(&s, "the export interval must be greater than 0"));
    }
    let instrumentations = match lookup.get("OTEL_EBPF_METRICS_INSTRUMENTATIONS", "instrumentations") {
        Some(s) => Instrumentations::parse(s.value.split(','))
            .map_err(|e| bad(&s, MetricsValueError::Instrumentation(e.0).to_string()))?,
        None => Instrumentations::default(),
    };
    if let Some(s) = lookup.get("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "histogram_aggregation") {
        match s.value.trim() {
            "explicit_bucket_histogram" => {}
            "base2_exponential_bucket_histogram" => {
                return Err(bad(
                    &s,
                    "base2_exponential_bucket_histogram is not supported by obi-rs; use explicit_bucket_histogram",
                ));
            }
            other => {
                return Err(bad(
                    &s,
                    format!(
                        "invalid value {other:?} (expected explicit_bucket_histogram or base2_exponential_bucket_histogram)"
                    ),
                ));
            }
        }
    }
    let ttl = match lookup.yaml("ttl") {
        Some(s) => {
            let d = parse_go_duration(&s.value).map_err(|e| bad(&s, e.to_string()))?;
            if d.is_zero() {
                return Err(bad(&s, "must be greater than zero, e.g. 5m"));
            }
            d
        }
        None => DEFAULT_TTL,
    };
    Ok(Some(OtlpMetricsSettings { endpoint, interval, instrumentations, ttl }))
}
