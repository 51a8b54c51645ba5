//! `otel_traces_export`: the OTLP traces exporter's settings (endpoint,
//! instrumentations, sampler, batching, retry backoff).

use std::time::Duration;

use super::endpoint::{OtlpEndpoint, resolve_endpoint};
use super::sampler::Sampler;
use super::signal::Signal;
use super::sources::{Lookup, Setting};
use crate::config::instrumentations::Instrumentations;
use crate::config::parse::parse_go_duration;
use crate::config::{ConfigError, Diagnostic};

pub(crate) const DEFAULT_BATCH_MAX_SIZE: usize = 4096;
pub(crate) const DEFAULT_QUEUE_SIZE: usize = 16384;
pub(crate) const DEFAULT_BATCH_TIMEOUT: Duration = Duration::from_secs(5);

/// `OTEL_EBPF_TRACES_INSTRUMENTATIONS`: a comma-separated list, or `*`.
fn parse_instrumentations(s: &Setting) -> Result<Instrumentations, ConfigError> {
    Instrumentations::parse(s.value.split(',')).map_err(|e| {
        ConfigError::value(
            s.source.clone(),
            format!("{e} (expected * or any of {})", crate::config::instrumentations::NAMES.join(", ")),
        )
    })
}

/// Retry schedule of a failed export (`OTEL_EBPF_BACKOFF_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BackoffConfig {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    /// Stop retrying a request after this long; zero means never.
    pub(crate) max_elapsed: Duration,
}

impl Default for BackoffConfig {
    /// The OpenTelemetry Collector's defaults.
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(300),
        }
    }
}

/// Everything the traces exporter needs, resolved at load.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OtlpTracesSettings {
    pub(crate) endpoint: OtlpEndpoint,
    pub(crate) instrumentations: Instrumentations,
    pub(crate) sampler: Sampler,
    pub(crate) batch_max_size: usize,
    pub(crate) queue_size: usize,
    pub(crate) batch_timeout: Duration,
    pub(crate) backoff: BackoffConfig,
}

/// Resolves the traces exporter from the environment and `otel_traces_export`;
/// `None` when no traces endpoint is configured. Warnings go to `notes`.
pub(crate) fn resolve(
    lookup: &Lookup<'_>,
    notes: &mut Vec<Diagnostic>,
) -> Result<Option<OtlpTracesSettings>, ConfigError> {
    let Some(endpoint) = resolve_endpoint(Signal::Traces, lookup)? else {
        return Ok(None);
    };
    let instrumentations = match lookup.get("OTEL_EBPF_TRACES_INSTRUMENTATIONS", "instrumentations") {
        Some(s) => parse_instrumentations(&s)?,
        None => Instrumentations::ALL,
    };
    let sampler = Sampler::from_settings(
        lookup.get("OTEL_TRACES_SAMPLER", "sampler.name").as_ref(),
        lookup.get("OTEL_TRACES_SAMPLER_ARG", "sampler.arg").as_ref(),
        notes,
    );
    let count = |env: &str, yaml: &[&str], default: usize| -> Result<usize, ConfigError> {
        let found = lookup.env(env).or_else(|| yaml.iter().find_map(|k| lookup.yaml(k)));
        found.map(|s| parse_count(&s)).unwrap_or(Ok(default))
    };
    let batch_max_size = count(
        "OTEL_EBPF_OTLP_TRACES_BATCH_MAX_SIZE",
        &["batch_max_size", "max_export_batch_size"],
        DEFAULT_BATCH_MAX_SIZE,
    )?;
    let queue_size = count("OTEL_EBPF_OTLP_TRACES_QUEUE_SIZE", &["queue_size", "max_queue_size"], DEFAULT_QUEUE_SIZE)?
        .max(batch_max_size);
    let batch_timeout = match lookup.get("OTEL_EBPF_OTLP_TRACES_BATCH_TIMEOUT", "batch_timeout") {
        Some(s) => {
            let d = parse_duration(&s)?;
            if d.is_zero() {
                return Err(ConfigError::value(s.source, "must be greater than 0, e.g. 5s"));
            }
            d
        }
        None => DEFAULT_BATCH_TIMEOUT,
    };
    let backoff = resolve_backoff(lookup)?;
    Ok(Some(OtlpTracesSettings {
        endpoint,
        instrumentations,
        sampler,
        batch_max_size,
        queue_size,
        batch_timeout,
        backoff,
    }))
}

fn err(s: &Setting, message: impl Into<String>) -> ConfigError {
    ConfigError::value(s.source.clone(), message)
}

/// A positive count (`batch_max_size`, `queue_size`).
fn parse_count(s: &Setting) -> Result<usize, ConfigError> {
    match s.value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(err(s, format!("invalid value {:?}: expected a positive integer", s.value))),
    }
}

/// A Go duration (`5s`, `250ms`).
fn parse_duration(s: &Setting) -> Result<Duration, ConfigError> {
    parse_go_duration(s.value.trim()).map_err(|e| err(s, e.to_string()))
}

/// The backoff settings (`OTEL_EBPF_BACKOFF_*`, YAML `backoff_*`).
fn resolve_backoff(lookup: &Lookup<'_>) -> Result<BackoffConfig, ConfigError> {
    let mut b = BackoffConfig::default();
    if let Some(s) = lookup.get("OTEL_EBPF_BACKOFF_INITIAL_INTERVAL", "backoff_initial_interval") {
        b.initial = parse_duration(&s)?;
        if b.initial.is_zero() {
            return Err(err(&s, "must be greater than 0"));
        }
    }
    if let Some(s) = lookup.get("OTEL_EBPF_BACKOFF_MAX_INTERVAL", "backoff_max_interval") {
        b.max = parse_duration(&s)?;
    }
    b.max = b.max.max(b.initial);
    if let Some(s) = lookup.get("OTEL_EBPF_BACKOFF_MAX_ELAPSED_TIME", "backoff_max_elapsed_time") {
        b.max_elapsed = parse_duration(&s)?;
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::otlp::Protocol;

    fn setting(v: &str) -> Setting {
        Setting::new("OTEL_EBPF_TRACES_INSTRUMENTATIONS", v)
    }

    fn lookup_of(env: &[(&'static str, &str)]) -> BTreeMap<&'static str, Setting> {
        env.iter().map(|(k, v)| (*k, Setting::new(*k, *v))).collect()
    }

    #[test]
    fn instrumentation_lists() {
        let all = parse_instrumentations(&setting("*")).unwrap();
        assert!(all.includes("http") && all.includes("grpc"));
        assert!(!all.includes("process"));
        let grpc = parse_instrumentations(&setting(" grpc , sql")).unwrap();
        assert!(grpc.includes("grpc") && !grpc.includes("http"));
        assert_eq!(grpc.names(), "grpc,sql");
        let none = parse_instrumentations(&setting("")).unwrap();
        assert!(!none.includes("http"));
        let e = parse_instrumentations(&setting("http,soap")).unwrap_err().to_string();
        assert!(e.starts_with("OTEL_EBPF_TRACES_INSTRUMENTATIONS: unknown instrumentation \"soap\""), "{e}");
    }

    fn cfg_from(env: &[(&str, &str)], yaml: Option<&str>) -> Result<Option<OtlpTracesSettings>, ConfigError> {
        let map: std::collections::HashMap<String, String> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let cfg = crate::config::from_yaml_str_and_env(yaml.unwrap_or_default(), &|k| map.get(k).cloned())?;
        Ok(cfg.export.otlp_traces)
    }

    #[test]
    fn resolves_from_env_and_yaml() {
        assert!(cfg_from(&[], None).unwrap().is_none());
        let c = cfg_from(
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://localhost:4317"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ],
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint.protocol, Protocol::Grpc);
        assert_eq!(c.instrumentations, Instrumentations::ALL);
        assert_eq!(c.sampler, Sampler::default());
        assert_eq!((c.batch_max_size, c.queue_size, c.batch_timeout), (4096, 16384, Duration::from_secs(5)));
        let c = cfg_from(
            &[("OTEL_EBPF_OTLP_TRACES_QUEUE_SIZE", "100")],
            Some(
                "otel_traces_export:\n  endpoint: http://c:4318/v1/traces\n  instrumentations: [grpc]\n  \
                 sampler:\n    name: traceidratio\n    arg: \"0.5\"\n  batch_max_size: 10\n  batch_timeout: 200ms\n",
            ),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint.url, "http://c:4318/v1/traces");
        assert_eq!(c.instrumentations.names(), "grpc");
        assert_eq!(c.sampler.name(), "traceidratio(0.5)");
        assert_eq!((c.batch_max_size, c.queue_size, c.batch_timeout), (10, 100, Duration::from_millis(200)));
        let e = cfg_from(
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EBPF_OTLP_TRACES_BATCH_MAX_SIZE", "0")],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("OTEL_EBPF_OTLP_TRACES_BATCH_MAX_SIZE: "), "{e}");
    }

    #[test]
    fn backoff_settings() {
        let env = lookup_of(&[("OTEL_EBPF_BACKOFF_INITIAL_INTERVAL", "100ms")]);
        let yaml = serde_json::json!({"backoff_max_interval": "2s", "backoff_max_elapsed_time": "0s"});
        let b = resolve_backoff(&Lookup::from_parts(&env, Some(&yaml), "otel_traces_export")).unwrap();
        assert_eq!(b.initial, Duration::from_millis(100));
        assert_eq!(b.max, Duration::from_secs(2));
        assert_eq!(b.max_elapsed, Duration::ZERO);
        let env = lookup_of(&[("OTEL_EBPF_BACKOFF_INITIAL_INTERVAL", "0s")]);
        assert!(resolve_backoff(&Lookup::from_parts(&env, None, "x")).is_err());
    }
}
