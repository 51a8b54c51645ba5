//! Settings of the metrics pipeline: `prometheus_export` (beyond `port`),
//! `routes`, `attributes.select` and `internal_metrics`.
//!
//! The YAML layer hands these sections over as plain trees; the `apply_*`
//! functions decode them into [`MetricsConfig`] and return a [`SectionError`]
//! (key path and message) on a bad value, which the YAML layer turns into a
//! located [`super::ConfigError`]. Environment variables override the result
//! (see [`super::env`]).

use super::instrumentations::Instrumentations;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::GlobPattern;
use super::parse::{closest, parse_go_bool, parse_go_duration};

/// OBI's default duration buckets, in seconds.
pub(crate) const DEFAULT_DURATION_BUCKETS: &[f64] =
    &[0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
/// OBI's default request/response body size buckets, in bytes.
pub(crate) const DEFAULT_SIZE_BUCKETS: &[f64] = &[0.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0];
/// Default `prometheus_export.ttl` (OBI's documented default).
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// Default `prometheus_export.idle_timeout`: a scrape connection that sends
/// no request for this long is closed.
pub(crate) const DEFAULT_SCRAPE_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `prometheus_export.max_connections`: open scrape connections per
/// endpoint; more are refused (a Prometheus server needs one).
pub(crate) const DEFAULT_SCRAPE_MAX_CONNECTIONS: usize = 64;
/// Default `routes.max_path_segment_cardinality`.
pub(crate) const DEFAULT_MAX_SEGMENT_CARDINALITY: usize = 10;

/// Error of a section decoder: the full key path and the message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {message}")]
pub(crate) struct SectionError {
    pub(crate) key: String,
    pub(crate) message: String,
}

fn err(key: impl Into<String>, msg: impl fmt::Display) -> SectionError {
    SectionError { key: key.into(), message: msg.to_string() }
}

/// A bad value in a metrics setting (YAML or environment).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum MetricsValueError {
    #[error("invalid value {0:?} (expected heuristic, wildcard, path, unset or low-cardinality)")]
    Unmatched(String),
    #[error(
        "unknown instrumentation {0:?} (expected *, http, grpc, sql, redis, kafka, mqtt, nats, amqp, mongo, \
         couchbase, memcached, genai, dns, sunrpc or gpu)"
    )]
    Instrumentation(String),
    #[error("invalid value {0:?} (expected disabled, prometheus or otel)")]
    InternalExporter(String),
    #[error("unknown metric feature {0:?} (expected e.g. application, application_span, network)")]
    Feature(String),
    #[error("at least one bucket boundary is needed")]
    NoBuckets,
    #[error("bucket boundaries must be strictly increasing: {0:?}")]
    UnorderedBuckets(Vec<f64>),
    #[error("invalid HTTP path {0:?} (must start with '/' and contain no spaces)")]
    HttpPath(String),
    #[error("invalid listen address {0:?} (expected an IP address such as 127.0.0.1, 0.0.0.0 or ::)")]
    Host(String),
    #[error("invalid connection limit {0:?} (expected a number of at least 1)")]
    MaxConnections(String),
    #[error("invalid idle timeout {0:?}: must be greater than zero, e.g. 30s")]
    ZeroIdleTimeout(String),
}

/// `prometheus_export.host`: an IP address.
pub(crate) fn parse_host(v: &str) -> Result<std::net::IpAddr, MetricsValueError> {
    v.trim().trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| MetricsValueError::Host(v.to_string()))
}

/// `prometheus_export.max_connections`: at least 1.
pub(crate) fn parse_max_connections(v: &str) -> Result<usize, MetricsValueError> {
    v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| MetricsValueError::MaxConnections(v.to_string()))
}

/// What to do with paths that match no `routes.patterns` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unmatched {
    /// Identifier-like segments become the wildcard character.
    Heuristic,
    /// The route is `/**`.
    Wildcard,
    /// The route is the path itself (unbounded cardinality).
    Path,
    /// No route.
    Unset,
    /// Heuristic, then at most `max_path_segment_cardinality` values per segment position.
    LowCardinality,
}

impl Unmatched {
    pub(crate) fn parse(s: &str) -> Result<Unmatched, MetricsValueError> {
        Ok(match s.trim() {
            "heuristic" => Unmatched::Heuristic,
            // OBI: the empty value is the wildcard mode.
            "wildcard" | "" => Unmatched::Wildcard,
            "path" => Unmatched::Path,
            "unset" => Unmatched::Unset,
            "low-cardinality" | "low_cardinality" => Unmatched::LowCardinality,
            other => return Err(MetricsValueError::Unmatched(other.to_string())),
        })
    }
}

/// Which signals drop spans that match `routes.ignored_patterns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IgnoreMode {
    All,
    Traces,
    Metrics,
}

/// The `routes` section.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RoutesConfig {
    pub(crate) patterns: Vec<String>,
    pub(crate) ignored_patterns: Vec<String>,
    pub(crate) ignore_mode: IgnoreMode,
    pub(crate) unmatched: Unmatched,
    pub(crate) wildcard_char: char,
    pub(crate) max_path_segment_cardinality: usize,
}

impl Default for RoutesConfig {
    /// Without a `routes` section OBI uses the heuristic.
    fn default() -> Self {
        RoutesConfig {
            patterns: Vec::new(),
            ignored_patterns: Vec::new(),
            ignore_mode: IgnoreMode::All,
            unmatched: Unmatched::Heuristic,
            wildcard_char: '*',
            max_path_segment_cardinality: DEFAULT_MAX_SEGMENT_CARDINALITY,
        }
    }
}

/// One `attributes.select.<metric>` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SelectEntry {
    /// The metric name or glob as written.
    pub(crate) metric: GlobPattern,
    /// Whether `metric` has glob syntax (an exact name beats every glob).
    pub(crate) is_glob: bool,
    pub(crate) include: Vec<GlobPattern>,
    pub(crate) exclude: Vec<GlobPattern>,
}

/// `internal_metrics.exporter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum InternalExporter {
    #[default]
    Disabled,
    Prometheus,
    Otel,
}

impl InternalExporter {
    pub(crate) fn parse(s: &str) -> Result<InternalExporter, MetricsValueError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disabled" | "" => Ok(InternalExporter::Disabled),
            "prometheus" => Ok(InternalExporter::Prometheus),
            "otel" => Ok(InternalExporter::Otel),
            other => Err(MetricsValueError::InternalExporter(other.to_string())),
        }
    }
}

/// Settings of the metrics pipeline (the Prometheus port lives in
/// [`super::ExportConfig::prometheus_port`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricsConfig {
    /// `prometheus_export.path`.
    pub(crate) prometheus_path: String,
    /// `prometheus_export.host`: the address every scrape endpoint listens
    /// on; `None` is every interface, IPv4 and IPv6 (as OBI).
    pub(crate) scrape_host: Option<std::net::IpAddr>,
    /// `prometheus_export.idle_timeout`.
    pub(crate) scrape_idle_timeout: Duration,
    /// `prometheus_export.max_connections`, per endpoint.
    pub(crate) scrape_max_connections: usize,
    /// `prometheus_export.ttl`: series not updated for this long are removed.
    pub(crate) ttl: Duration,
    /// `prometheus_export.buckets.duration_histogram`, seconds.
    pub(crate) duration_buckets: Vec<f64>,
    /// `prometheus_export.buckets.request_size_histogram`, bytes.
    pub(crate) size_buckets: Vec<f64>,
    /// `prometheus_export.disable_build_info`.
    pub(crate) disable_build_info: bool,
    /// `prometheus_export.instrumentations`.
    pub(crate) instrumentations: Instrumentations,
    pub(crate) routes: RoutesConfig,
    /// `attributes.select` (order does not matter: an exact metric name beats
    /// every glob, and matching globs are merged).
    pub(crate) select: Vec<SelectEntry>,
    pub(crate) internal_exporter: InternalExporter,
    /// `internal_metrics.prometheus.port`.
    pub(crate) internal_port: Option<u16>,
    /// `internal_metrics.prometheus.path`.
    pub(crate) internal_path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            prometheus_path: "/metrics".to_string(),
            scrape_host: None,
            scrape_idle_timeout: DEFAULT_SCRAPE_IDLE_TIMEOUT,
            scrape_max_connections: DEFAULT_SCRAPE_MAX_CONNECTIONS,
            ttl: DEFAULT_TTL,
            duration_buckets: DEFAULT_DURATION_BUCKETS.to_vec(),
            size_buckets: DEFAULT_SIZE_BUCKETS.to_vec(),
            disable_build_info: false,
            instrumentations: Instrumentations::default(),
            routes: RoutesConfig::default(),
            select: Vec::new(),
            internal_exporter: InternalExporter::Disabled,
            internal_port: None,
            internal_path: "/internal/metrics".to_string(),
        }
    }
}

/// Metric features OBI knows; only `application` is produced by obi-rs.
pub(crate) const KNOWN_FEATURES: &[&str] = &[
    "application",
    "application_span",
    "application_span_otel",
    "application_span_sizes",
    "application_service_graph",
    "application_process",
    "application_host",
    "application_runtime",
    "application_jvm",
    "network",
    "network_inter_zone",
    "network_flow_packets",
    "ebpf",
    "stats",
    "all",
    "*",
];

/// Checks a `features` list; returns the features obi-rs does not produce.
pub(crate) fn check_features<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, MetricsValueError> {
    let mut unsupported = Vec::new();
    for f in items.into_iter().map(str::trim).filter(|f| !f.is_empty()) {
        if !KNOWN_FEATURES.contains(&f) && !f.starts_with("stats") {
            return Err(MetricsValueError::Feature(f.to_string()));
        }
        if f != "application" {
            unsupported.push(f.to_string());
        }
    }
    Ok(unsupported)
}

// ---------------------------------------------------------------------------
// JSON helpers

fn child(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

fn obj<'a>(path: &str, v: &'a Value) -> Result<Option<&'a serde_json::Map<String, Value>>, SectionError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        _ => Err(err(path, "expected a mapping")),
    }
}

fn check_keys(path: &str, m: &serde_json::Map<String, Value>, known: &[&str]) -> Result<(), SectionError> {
    for k in m.keys() {
        if !known.contains(&k.as_str()) {
            let hint = closest(k, known.iter().copied()).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
            return Err(err(child(path, k), format!("unknown key{hint}")));
        }
    }
    Ok(())
}

fn string(path: &str, v: &Value) -> Result<String, SectionError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(err(path, "expected a string")),
    }
}

/// A list of strings; a single string is split on commas (like OBI's env form).
fn string_list(path: &str, v: &Value) -> Result<Vec<String>, SectionError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()),
        Value::Array(items) => {
            items.iter().enumerate().map(|(i, item)| string(&format!("{path}[{i}]"), item)).collect()
        }
        _ => Err(err(path, "expected a list of strings")),
    }
}

fn bool_value(path: &str, v: &Value) -> Result<bool, SectionError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => parse_go_bool(s).map_err(|m| err(path, m)),
        _ => Err(err(path, "expected true or false")),
    }
}

fn duration(path: &str, v: &Value) -> Result<Duration, SectionError> {
    match v {
        Value::String(s) => parse_go_duration(s).map_err(|m| err(path, m)),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(Duration::ZERO),
        _ => Err(err(path, "expected a duration such as 30s or 5m")),
    }
}

fn buckets(path: &str, v: &Value) -> Result<Vec<f64>, SectionError> {
    let Value::Array(items) = v else {
        return Err(err(path, "expected a list of numbers, e.g. [0, 0.1, 0.5, 1]"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let n = match item {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        let n = n.filter(|n| n.is_finite()).ok_or_else(|| err(format!("{path}[{i}]"), "expected a finite number"))?;
        out.push(n);
    }
    validate_buckets(&out).map_err(|m| err(path, m))?;
    Ok(out)
}

/// Bucket boundaries must be finite and strictly increasing (at least one).
pub(crate) fn validate_buckets(b: &[f64]) -> Result<(), MetricsValueError> {
    if b.is_empty() {
        return Err(MetricsValueError::NoBuckets);
    }
    if b.windows(2).any(|w| w[0] >= w[1]) {
        return Err(MetricsValueError::UnorderedBuckets(b.to_vec()));
    }
    Ok(())
}

/// A path served over HTTP: starts with `/`.
pub(crate) fn check_http_path(p: &str) -> Result<String, MetricsValueError> {
    let p = p.trim();
    if !p.starts_with('/') || p.contains(char::is_whitespace) {
        return Err(MetricsValueError::HttpPath(p.to_string()));
    }
    Ok(p.to_string())
}

fn glob(path: &str, s: &str) -> Result<GlobPattern, SectionError> {
    GlobPattern::new(s).map_err(|e| err(path, format!("invalid glob pattern {s:?}: {e}")))
}

// ---------------------------------------------------------------------------
// Sections

/// `prometheus_export` (the `port` key is handled by the YAML layer).
pub(crate) fn apply_prometheus_section(
    m: &mut MetricsConfig,
    path: &str,
    v: &Value,
) -> Result<Vec<String>, SectionError> {
    let mut notes = Vec::new();
    let Some(o) = obj(path, v)? else { return Ok(notes) };
    check_keys(
        path,
        o,
        &[
            "port",
            "path",
            "host",
            "idle_timeout",
            "max_connections",
            "ttl",
            "buckets",
            "features",
            "instrumentations",
            "disable_build_info",
            "extra_resource_attributes",
            "allow_service_graph_self_references",
            "exemplar_filter",
            "span_metrics_service_cache_size",
        ],
    )?;
    for (k, val) in o {
        let p = child(path, k);
        match k.as_str() {
            "path" => m.prometheus_path = check_http_path(&string(&p, val)?).map_err(|e| err(&p, e))?,
            "host" => m.scrape_host = Some(parse_host(&string(&p, val)?).map_err(|e| err(&p, e))?),
            "idle_timeout" => {
                let d = duration(&p, val)?;
                if d.is_zero() {
                    return Err(err(&p, "must be greater than zero, e.g. 30s"));
                }
                m.scrape_idle_timeout = d;
            }
            "max_connections" => {
                m.scrape_max_connections = parse_max_connections(&string(&p, val)?).map_err(|e| err(&p, e))?
            }
            "ttl" => {
                let d = duration(&p, val)?;
                if d.is_zero() {
                    return Err(err(&p, "must be greater than zero, e.g. 5m"));
                }
                m.ttl = d;
            }
            "buckets" => {
                let Some(b) = obj(&p, val)? else { continue };
                check_keys(&p, b, &["duration_histogram", "request_size_histogram", "response_size_histogram"])?;
                if let Some(d) = b.get("duration_histogram") {
                    m.duration_buckets = buckets(&child(&p, "duration_histogram"), d)?;
                }
                if let Some(d) = b.get("request_size_histogram") {
                    m.size_buckets = buckets(&child(&p, "request_size_histogram"), d)?;
                }
                if b.contains_key("response_size_histogram") {
                    notes.push(format!(
                        "{p}.response_size_histogram: ignored; as in OBI, request_size_histogram applies to both body sizes"
                    ));
                }
            }
            "features" => {
                let list = string_list(&p, val)?;
                let unsupported = check_features(list.iter().map(String::as_str)).map_err(|e| err(&p, e))?;
                if !unsupported.is_empty() {
                    notes.push(format!(
                        "{p}: only the application feature is produced by obi-rs; ignored: {}",
                        unsupported.join(",")
                    ));
                }
            }
            "instrumentations" => {
                let list = string_list(&p, val)?;
                m.instrumentations = Instrumentations::parse(list.iter().map(String::as_str))
                    .map_err(|e| err(&p, MetricsValueError::Instrumentation(e.0)))?;
            }
            "disable_build_info" => m.disable_build_info = bool_value(&p, val)?,
            "port" => {}
            _ => {
                if !val.is_null() {
                    notes.push(format!("{p}: accepted for OBI compatibility and ignored"));
                }
            }
        }
    }
    Ok(notes)
}

/// `routes`.
pub(crate) fn apply_routes_section(m: &mut MetricsConfig, path: &str, v: &Value) -> Result<(), SectionError> {
    let Some(o) = obj(path, v)? else { return Ok(()) };
    check_keys(
        path,
        o,
        &["patterns", "ignored_patterns", "ignore_mode", "unmatched", "wildcard_char", "max_path_segment_cardinality"],
    )?;
    // A present section starts from OBI's section default (wildcard), not the
    // no-section default (heuristic).
    let mut r = RoutesConfig { unmatched: Unmatched::Wildcard, ..RoutesConfig::default() };
    for (k, val) in o {
        let p = child(path, k);
        match k.as_str() {
            "patterns" => r.patterns = string_list(&p, val)?,
            "ignored_patterns" => r.ignored_patterns = string_list(&p, val)?,
            "ignore_mode" => {
                r.ignore_mode = match string(&p, val)?.trim() {
                    "" | "all" => IgnoreMode::All,
                    "traces" => IgnoreMode::Traces,
                    "metrics" => IgnoreMode::Metrics,
                    other => {
                        return Err(err(p, format!("invalid value {other:?} (expected all, traces or metrics)")));
                    }
                }
            }
            "unmatched" => r.unmatched = Unmatched::parse(&string(&p, val)?).map_err(|e| err(&p, e))?,
            "wildcard_char" => {
                let s = string(&p, val)?;
                let mut chars = s.chars();
                r.wildcard_char = match (chars.next(), chars.next()) {
                    (None, _) => '*',
                    (Some(c), None) if c != '/' => c,
                    _ => {
                        return Err(err(
                            p,
                            format!("wildcard_char can only be a single character (not '/'), found {s:?}"),
                        ));
                    }
                };
            }
            "max_path_segment_cardinality" => {
                let n = val
                    .as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err(&p, format!("expected a positive integer, found {val}")))?;
                r.max_path_segment_cardinality = n.min(10_000) as usize;
            }
            _ => unreachable!(),
        }
    }
    m.routes = r;
    Ok(())
}

/// `attributes.select`.
pub(crate) fn apply_attributes_section(m: &mut MetricsConfig, path: &str, v: &Value) -> Result<(), SectionError> {
    let Some(o) = obj(path, v)? else { return Ok(()) };
    let Some(sel) = o.get("select") else { return Ok(()) };
    let sp = child(path, "select");
    let Some(entries) = obj(&sp, sel)? else { return Ok(()) };
    let mut out = Vec::new();
    for (metric, body) in entries {
        let p = child(&sp, metric);
        let mut e = SelectEntry {
            metric: glob(&p, metric)?,
            is_glob: metric.contains(['*', '?', '[', '{']),
            include: Vec::new(),
            exclude: Vec::new(),
        };
        if let Some(b) = obj(&p, body)? {
            check_keys(&p, b, &["include", "exclude"])?;
            for (k, list) in b {
                let lp = child(&p, k);
                let globs = string_list(&lp, list)?
                    .iter()
                    .enumerate()
                    .map(|(i, g)| glob(&format!("{lp}[{i}]"), g))
                    .collect::<Result<Vec<_>, _>>()?;
                if k == "include" {
                    e.include = globs;
                } else {
                    e.exclude = globs;
                }
            }
        }
        out.push(e);
    }
    m.select = out;
    Ok(())
}

/// `internal_metrics`.
pub(crate) fn apply_internal_section(
    m: &mut MetricsConfig,
    path: &str,
    v: &Value,
) -> Result<Vec<String>, SectionError> {
    let mut notes = Vec::new();
    let Some(o) = obj(path, v)? else { return Ok(notes) };
    check_keys(path, o, &["exporter", "prometheus", "bpf_metric_scrape_interval"])?;
    for (k, val) in o {
        let p = child(path, k);
        match k.as_str() {
            "exporter" => m.internal_exporter = InternalExporter::parse(&string(&p, val)?).map_err(|e| err(&p, e))?,
            "prometheus" => {
                let Some(po) = obj(&p, val)? else { continue };
                check_keys(&p, po, &["port", "path"])?;
                if let Some(port) = po.get("port") {
                    let pp = child(&p, "port");
                    let n = match port {
                        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                        Value::String(s) => s.trim().parse::<u16>().ok(),
                        Value::Null => Some(0),
                        _ => None,
                    }
                    .ok_or_else(|| err(&pp, format!("invalid port {port} (expected 0-65535)")))?;
                    m.internal_port = (n != 0).then_some(n);
                }
                if let Some(path_v) = po.get("path") {
                    let pp = child(&p, "path");
                    m.internal_path = check_http_path(&string(&pp, path_v)?).map_err(|e| err(&pp, e))?;
                }
            }
            _ => notes.push(format!("{p}: accepted for OBI compatibility and ignored")),
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes_defaults_and_values() {
        let mut m = MetricsConfig::default();
        assert_eq!(m.routes.unmatched, Unmatched::Heuristic);
        apply_routes_section(&mut m, "routes", &json!({"patterns": ["/a/:id"]})).unwrap();
        assert_eq!(m.routes.unmatched, Unmatched::Wildcard);
        assert_eq!(m.routes.patterns, ["/a/:id"]);
        apply_routes_section(
            &mut m,
            "routes",
            &json!({"unmatched": "low-cardinality", "wildcard_char": "#", "max_path_segment_cardinality": 3,
                    "ignored_patterns": ["/health"], "ignore_mode": "traces"}),
        )
        .unwrap();
        assert_eq!(m.routes.unmatched, Unmatched::LowCardinality);
        assert_eq!(m.routes.wildcard_char, '#');
        assert_eq!(m.routes.max_path_segment_cardinality, 3);
        assert_eq!(m.routes.ignore_mode, IgnoreMode::Traces);
        let e = apply_routes_section(&mut m, "routes", &json!({"unmatched": "nope"})).unwrap_err();
        assert_eq!(e.key, "routes.unmatched");
        assert!(e.message.contains("\"nope\""), "{e:?}");
        let e = apply_routes_section(&mut m, "routes", &json!({"wildcard_char": "ab"})).unwrap_err();
        assert!(e.message.contains("single character"), "{e:?}");
        let e = apply_routes_section(&mut m, "routes", &json!({"pattern": []})).unwrap_err();
        assert_eq!(e.key, "routes.pattern");
        assert!(e.message.contains("did you mean \"patterns\""), "{e:?}");
    }

    #[test]
    fn prometheus_section() {
        let mut m = MetricsConfig::default();
        let notes = apply_prometheus_section(
            &mut m,
            "prometheus_export",
            &json!({"port": 9090, "path": "/m", "ttl": "3s", "features": ["application", "application_span"],
                    "buckets": {"duration_histogram": [0, 1, 2]}, "instrumentations": ["http"]}),
        )
        .unwrap();
        assert_eq!(m.prometheus_path, "/m");
        assert_eq!(m.ttl, Duration::from_secs(3));
        assert_eq!(m.duration_buckets, [0.0, 1.0, 2.0]);
        assert_eq!(m.size_buckets, DEFAULT_SIZE_BUCKETS);
        assert_eq!(m.instrumentations, Instrumentations::parse(["http"]).unwrap());
        assert_eq!(notes.len(), 1, "{notes:?}");
        for (bad, key) in [
            (json!({"ttl": "0s"}), "prometheus_export.ttl"),
            (json!({"ttl": "x"}), "prometheus_export.ttl"),
            (json!({"path": "metrics"}), "prometheus_export.path"),
            (json!({"buckets": {"duration_histogram": [1, 0]}}), "prometheus_export.buckets.duration_histogram"),
            (json!({"features": ["nope"]}), "prometheus_export.features"),
            (json!({"instrumentations": ["htp"]}), "prometheus_export.instrumentations"),
            (json!({"host": "localhost"}), "prometheus_export.host"),
            (json!({"idle_timeout": "0s"}), "prometheus_export.idle_timeout"),
            (json!({"max_connections": 0}), "prometheus_export.max_connections"),
        ] {
            let e = apply_prometheus_section(&mut MetricsConfig::default(), "prometheus_export", &bad).unwrap_err();
            assert_eq!(e.key, key, "{bad}: {e:?}");
        }
    }

    #[test]
    fn scrape_endpoint_limits() {
        let mut m = MetricsConfig::default();
        assert_eq!(m.scrape_host, None, "every interface by default, as OBI");
        assert_eq!((m.scrape_idle_timeout, m.scrape_max_connections), (Duration::from_secs(30), 64));
        apply_prometheus_section(
            &mut m,
            "prometheus_export",
            &json!({"host": "127.0.0.1", "idle_timeout": "2s", "max_connections": 8}),
        )
        .unwrap();
        assert_eq!(m.scrape_host, Some(std::net::Ipv4Addr::LOCALHOST.into()));
        assert_eq!((m.scrape_idle_timeout, m.scrape_max_connections), (Duration::from_secs(2), 8));
        assert_eq!(parse_host("[::1]").unwrap(), std::net::Ipv6Addr::LOCALHOST);
        assert!(parse_max_connections("-1").is_err());
    }

    #[test]
    fn attribute_selection() {
        let mut m = MetricsConfig::default();
        apply_attributes_section(
            &mut m,
            "attributes",
            &json!({"select": {"http_server_request_duration_seconds": {"include": ["url.path"], "exclude": ["server.*"]},
                                "*": {"include": ["*"]}}}),
        )
        .unwrap();
        assert_eq!(m.select.len(), 2);
        let exact = m.select.iter().find(|e| e.metric.source == "http_server_request_duration_seconds").unwrap();
        assert!(!exact.is_glob);
        assert_eq!(exact.include.len(), 1);
        assert_eq!(exact.exclude.len(), 1);
        assert!(m.select.iter().find(|e| e.metric.source == "*").unwrap().is_glob);
        let e = apply_attributes_section(&mut m, "attributes", &json!({"select": {"x": {"inclde": []}}})).unwrap_err();
        assert_eq!(e.key, "attributes.select.x.inclde");
    }

    #[test]
    fn internal_section() {
        let mut m = MetricsConfig::default();
        apply_internal_section(
            &mut m,
            "internal_metrics",
            &json!({"exporter": "prometheus", "prometheus": {"port": 9091, "path": "/internal"}}),
        )
        .unwrap();
        assert_eq!(m.internal_exporter, InternalExporter::Prometheus);
        assert_eq!(m.internal_port, Some(9091));
        assert_eq!(m.internal_path, "/internal");
        assert!(apply_internal_section(&mut m, "internal_metrics", &json!({"exporter": "x"})).is_err());
    }
}
