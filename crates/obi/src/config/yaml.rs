//! OBI's YAML configuration file.
//!
//! The file is read in two steps: `${VAR}` references are expanded on the raw
//! text (like OBI's `config.ReplaceEnv`), then the text is parsed into a tree
//! that keeps source locations, and the tree is decoded against an explicit
//! schema. That gives errors with the full key path and the file position:
//!
//! ```text
//! unknown key "discovery.instrument[0].open_port" (did you mean "open_ports"?) at /etc/obi.yml:4:7
//! discovery.poll_interval at /etc/obi.yml:2:18: invalid duration "5x": unknown unit "x" (...)
//! ```
//!
//! Sections are handled in three ways:
//! - implemented (`discovery`, `ebpf`, the global keys): strict, unknown keys
//!   are errors; OBI keys we do not implement are accepted and reported as
//!   diagnostics;
//! - decoded by their own modules: the metrics sections (`prometheus_export`,
//!   `routes`, `attributes`, `internal_metrics`) by [`super::metrics`], the
//!   OTLP exporter sections (`otel_traces_export`, `otel_metrics_export`)
//!   by [`super::otlp`] once the environment is known;
//! - accepted for OBI compatibility and not interpreted (`filter`,
//!   `name_resolver`, `network`, ...): reported as diagnostics;
//! - anything else at the top level is an unknown key.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::otlp::OtlpSources;
use super::parse::{self, ParseError, closest, parse_byte_size, parse_go_duration, parse_yaml_bool};
use super::{Config, ConfigError, DEFAULT_POLL_INTERVAL, GlobPattern, LogLevel, PortEnum, RegexPattern, Selector};

/// Expands `${NAME}` references (NAME = `[A-Za-z_][A-Za-z0-9_]*`) with the
/// value of the environment variable NAME, or the empty string when it is
/// unset, like OBI. Other `$` forms (`$NAME`, `${NAME:-default}`) are left
/// as they are. Expansion happens on the raw text, comments included, so a
/// value containing a newline or `: ` can change the YAML structure.
pub(crate) fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("${") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        let name = &after[..name_len];
        let valid = !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit());
        if valid && after[name_len..].starts_with('}') {
            out.push_str(&env(name).unwrap_or_default());
            rest = &after[name_len + 1..];
        } else {
            out.push_str("${");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A YAML value with source locations.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
                Ok(Node::Int(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
                i128::try_from(v).map(Node::Int).map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element::<Spanned<Node>>()? {
                    v.push(x);
                }
                Ok(Node::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = a.next_key::<Spanned<String>>()? {
                    v.push((k, a.next_value::<Spanned<Node>>()?));
                }
                Ok(Node::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

type SNode = Spanned<Node>;

/// Parses YAML text into a located tree (after `${VAR}` expansion).
fn parse_tree(text: &str, origin: &str) -> Result<SNode, ConfigError> {
    let mut opts = serde_saphyr::Options::default();
    // yaml.v3 (OBI) reads `yes`/`on` as strings unless the field is a bool.
    opts.strict_booleans = true;
    opts.leading_zero_numbers_as_strings = true;
    opts.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    opts.with_snippet = false;
    serde_saphyr::from_str_with_options::<SNode>(text, opts)
        .map_err(|e| ConfigError::Yaml { origin: origin.to_string(), message: one_line(&e.to_string()) })
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Top-level keys we interpret.
const ROOT_KEYS: &[&str] = &[
    "trace_printer",
    "log_level",
    "log_format",
    "service_name",
    "service_namespace",
    "open_port",
    "executable_path",
    "auto_target_exe",
    "target_pids",
    "shutdown_timeout",
    "discovery",
    "ebpf",
];

/// Top-level sections accepted besides [`ROOT_KEYS`], with the level and
/// message of the diagnostic recorded when they are present.
const KNOWN_SECTIONS: &[(&str, LogLevel, &str)] = &[
    ("otel_traces_export", LogLevel::Debug, "applied by the OTLP traces exporter"),
    ("otel_metrics_export", LogLevel::Debug, "applied by the OTLP metrics exporter"),
    ("prometheus_export", LogLevel::Debug, "applied by the Prometheus exporter"),
    ("routes", LogLevel::Debug, "applied by the routes decorator"),
    (
        "attributes",
        LogLevel::Debug,
        "only instance_id.override_hostname and select are applied; the rest is accepted and ignored",
    ),
    ("filter", LogLevel::Debug, "span filters are not implemented in obi-rs yet; accepted and ignored"),
    ("name_resolver", LogLevel::Debug, "the name resolver is not implemented in obi-rs yet; accepted and ignored"),
    (
        "metrics",
        LogLevel::Debug,
        "accepted and ignored (metrics settings live in prometheus_export and otel_metrics_export)",
    ),
    ("network", LogLevel::Warn, "network metrics are not supported by obi-rs; section ignored"),
    ("internal_metrics", LogLevel::Debug, "applied by the internal metrics exporter"),
    ("enforce_sys_caps", LogLevel::Debug, "accepted for OBI compatibility; capabilities are checked by `obi check`"),
    ("channel_buffer_len", LogLevel::Debug, "accepted for OBI compatibility and ignored"),
    ("channel_send_timeout", LogLevel::Debug, "accepted for OBI compatibility and ignored"),
    ("channel_send_timeout_panic", LogLevel::Debug, "accepted for OBI compatibility and ignored"),
    ("profile_port", LogLevel::Warn, "pprof profiling is not supported by obi-rs; ignored"),
    ("log_config", LogLevel::Debug, "accepted for OBI compatibility and ignored"),
    (
        "health_check",
        LogLevel::Debug,
        "the health check endpoint is not implemented in obi-rs yet; accepted and ignored",
    ),
    ("nodejs", LogLevel::Debug, "applied by the Node.js injector (enabled)"),
    ("javaagent", LogLevel::Debug, "accepted for OBI compatibility and ignored"),
];

const DISCOVERY_KEYS: &[&str] = &[
    "instrument",
    "exclude_instrument",
    "default_exclude_instrument",
    "services",
    "exclude_services",
    "default_exclude_services",
    "poll_interval",
    "exclude_otel_instrumented_services",
    "system_wide",
];

/// OBI `discovery` keys accepted and ignored.
const DISCOVERY_IGNORED: &[&str] = &[
    "skip_go_specific_tracers",
    "bpf_pid_filter_off",
    "default_otlp_grpc_port",
    "min_process_age",
    "exclude_otel_instrumented_services_span_metrics",
    "route_harvester_timeout",
    "disabled_route_harvesters",
    "route_harvester_advanced",
    "excluded_linux_system_paths",
];

const EBPF_KEYS: &[&str] = &[
    "buffer_sizes",
    "ring_buffer_size",
    "wakeup_len",
    "batch_timeout",
    "batch_length",
    "http_request_timeout",
    "btf_path",
    "btf_ignore_kernel",
    "context_propagation",
    "enable_context_propagation",
    "track_request_headers",
    "db_query_literals",
];

/// OBI `ebpf` keys accepted and ignored.
const EBPF_IGNORED: &[&str] = &[
    "bpf_debug",
    "stats_wakeup_data_bytes",
    "override_bpfloop_enabled",
    "traffic_control_backend",
    "disable_black_box_cp",
    "high_request_volume",
    "heuristic_sql_detect",
    "instrument_cuda",
    "instrument_gpu",
    "protocol_debug_print",
    "redis_db_cache",
    "mysql_prepared_statements_cache_size",
    "postgres_prepared_statements_cache_size",
    "mssql_prepared_statements_cache_size",
    "kafka_topic_uuid_cache_size",
    "mongo_requests_cache_size",
    "couchbase_db_cache_size",
    "payload_extraction",
    "max_transaction_time",
    "dns_request_timeout",
    "log_enricher",
    "bpf_fs_path",
    "force_bpf_map_reader",
    "maps_config",
    "use_otel_sdk_for_java",
];

const BUFFER_SIZE_KEYS: &[&str] = &["http", "mysql", "kafka", "postgres", "mssql", "tcp"];

/// Selector keys (glob form: `instrument`, `exclude_instrument`, `default_exclude_instrument`).
const GLOB_SELECTOR_KEYS: &[&str] =
    &["name", "namespace", "open_ports", "exe_path", "cmd_args", "languages", "target_pids"];
/// Selector keys (legacy regex form: `services`, `exclude_services`, `default_exclude_services`).
const REGEX_SELECTOR_KEYS: &[&str] = &["name", "namespace", "open_ports", "exe_path"];
/// OBI selector keys that need Kubernetes or container metadata.
const SELECTOR_UNSUPPORTED: &[&str] = &[
    "k8s_namespace",
    "k8s_pod_name",
    "k8s_deployment_name",
    "k8s_replicaset_name",
    "k8s_daemonset_name",
    "k8s_statefulset_name",
    "k8s_job_name",
    "k8s_cronjob_name",
    "k8s_owner_name",
    "k8s_container_name",
    "k8s_pod_labels",
    "k8s_pod_annotations",
    "containers_only",
    "container_name",
];
/// OBI per-selector output settings: accepted and ignored.
const SELECTOR_IGNORED: &[&str] = &["exports", "sampler", "routes", "metrics"];

/// Applies the YAML document `text` on top of `cfg`. `origin` names the file
/// in messages; `env` is used for `${VAR}` expansion.
/// The OTLP exporter sections go to `otlp`, resolved later with the environment.
pub(crate) fn apply_yaml(
    cfg: &mut Config,
    otlp: &mut OtlpSources,
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let expanded = expand_env(text, env);
    let tree = parse_tree(&expanded, origin)?;
    let doc = Doc { src: &expanded, origin };
    doc.root(cfg, otlp, &tree)
}

struct Doc<'a> {
    src: &'a str,
    origin: &'a str,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// Which list a selector belongs to (changes the `exe_path` syntax and how
/// unsupported criteria are treated).
#[derive(Clone, Copy, PartialEq)]
enum SelectorKind {
    Glob,
    Regex,
}

impl<'a> Doc<'a> {
    fn at(&self, line: u64, col: u64) -> Option<String> {
        (line > 0).then(|| format!("{}:{line}:{col}", self.origin))
    }

    fn at_node(&self, n: &SNode) -> Option<String> {
        self.at(n.referenced.line(), n.referenced.column())
    }

    fn err(&self, path: &str, n: &SNode, message: impl fmt::Display) -> ConfigError {
        let key = if path.is_empty() { "configuration file".to_string() } else { path.to_string() };
        ConfigError::Value { key, at: self.at_node(n), message: message.to_string() }
    }

    /// The source text of a scalar (how it was written, without quotes for
    /// plain scalars). Used to keep `1.10` or `0x10` as written in string fields.
    fn raw(&self, n: &SNode) -> Option<&'a str> {
        let span = n.referenced.span();
        let (start, len) = (span.byte_offset()? as usize, span.byte_len()? as usize);
        self.src.get(start..start + len)
    }

    fn kind(n: &SNode) -> &'static str {
        match &n.value {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) => "an integer",
            Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    /// The entries of a mapping (null = empty), checking every key against
    /// `known` (decoded by the caller), `ignored` (accepted, reported) and
    /// the unknown-key rule.
    fn map<'n>(
        &self,
        cfg: &mut Config,
        path: &str,
        n: &'n SNode,
        known: &[&str],
        ignored: &[&str],
    ) -> Result<Vec<(&'n str, &'n SNode, String)>, ConfigError> {
        let entries = match &n.value {
            Node::Null => return Ok(Vec::new()),
            Node::Map(m) => m,
            _ => return Err(self.err(path, n, format!("expected a mapping, found {}", Self::kind(n)))),
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let key = k.value.as_str();
            let p = child(path, key);
            if known.contains(&key) {
                out.push((key, v, p));
            } else if ignored.contains(&key) {
                cfg.note(LogLevel::Warn, p, "accepted for OBI compatibility but not supported by obi-rs; ignored");
            } else {
                let suggestion = closest(key, known.iter().chain(ignored).copied())
                    .map(str::to_string)
                    .or_else(|| misplaced_key_hint(path, key));
                return Err(ConfigError::UnknownKey {
                    key: p,
                    suggestion,
                    at: self.at(k.referenced.line(), k.referenced.column()),
                });
            }
        }
        Ok(out)
    }

    fn seq<'n>(&self, path: &str, n: &'n SNode) -> Result<&'n [SNode], ConfigError> {
        match &n.value {
            Node::Null => Ok(&[]),
            Node::Seq(s) => Ok(s),
            _ => Err(self.err(path, n, format!("expected a list, found {}", Self::kind(n)))),
        }
    }

    /// A string-like scalar. `None` for null. Numbers and booleans are
    /// returned as written.
    fn string(&self, path: &str, n: &SNode) -> Result<Option<String>, ConfigError> {
        match &n.value {
            Node::Null => Ok(None),
            Node::Str(s) => Ok(Some(s.clone())),
            Node::Int(_) | Node::Float(_) | Node::Bool(_) => {
                Ok(Some(self.raw(n).map(|r| r.trim().to_string()).unwrap_or_else(|| scalar_text(&n.value))))
            }
            _ => Err(self.err(path, n, format!("expected a string, found {}", Self::kind(n)))),
        }
    }

    /// A string where empty (or null) means "unset".
    fn opt_string(&self, path: &str, n: &SNode) -> Result<Option<String>, ConfigError> {
        Ok(self.string(path, n)?.filter(|s| !s.is_empty()))
    }

    fn bool(&self, path: &str, n: &SNode) -> Result<bool, ConfigError> {
        match &n.value {
            Node::Bool(b) => Ok(*b),
            Node::Int(0) => Ok(false),
            Node::Int(1) => Ok(true),
            Node::Str(s) => parse_yaml_bool(s).map_err(|m| self.err(path, n, m)),
            _ => Err(self.err(path, n, format!("expected true or false, found {}", Self::kind(n)))),
        }
    }

    fn duration(&self, path: &str, n: &SNode) -> Result<Duration, ConfigError> {
        match &n.value {
            Node::Str(s) => parse_go_duration(s).map_err(|m| self.err(path, n, m)),
            Node::Int(0) => Ok(Duration::ZERO),
            Node::Int(i) => Err(self.err(
                path,
                n,
                format!("invalid duration {i}: missing unit (use a number with a unit: ns, us, ms, s, m, h; e.g. {i}s or {i}ms)"),
            )),
            _ => Err(self.err(path, n, format!("expected a duration such as 5s or 500ms, found {}", Self::kind(n)))),
        }
    }

    fn u32(&self, path: &str, n: &SNode) -> Result<u32, ConfigError> {
        match &n.value {
            Node::Int(i) => u32::try_from(*i).map_err(|_| {
                self.err(path, n, format!("invalid number {i} (expected an integer between 0 and {})", u32::MAX))
            }),
            Node::Str(s) => parse::parse_u32(s).map_err(|m| self.err(path, n, m)),
            _ => Err(self.err(path, n, format!("expected an integer, found {}", Self::kind(n)))),
        }
    }

    fn ports(&self, path: &str, n: &SNode) -> Result<Option<PortEnum>, ConfigError> {
        let text = match &n.value {
            Node::Null => return Ok(None),
            Node::Int(i) => i.to_string(),
            Node::Str(s) => s.clone(),
            _ => {
                return Err(self.err(
                    path,
                    n,
                    format!("expected a port list such as 80,443,8000-8999, found {}", Self::kind(n)),
                ));
            }
        };
        PortEnum::parse(&text).map(Some).map_err(|e| self.err(path, n, e.to_string()))
    }

    fn glob(&self, path: &str, n: &SNode) -> Result<Option<GlobPattern>, ConfigError> {
        match self.opt_string(path, n)? {
            None => Ok(None),
            Some(s) => GlobPattern::new(&s)
                .map(Some)
                .map_err(|e| self.err(path, n, format!("invalid glob pattern {s:?}: {e}"))),
        }
    }

    fn regex(&self, path: &str, n: &SNode) -> Result<Option<RegexPattern>, ConfigError> {
        match self.opt_string(path, n)? {
            None => Ok(None),
            Some(s) => RegexPattern::new(&s).map(Some).map_err(|e| {
                let detail = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                self.err(path, n, format!("invalid regular expression {s:?}: {detail}"))
            }),
        }
    }

    fn pids(&self, path: &str, n: &SNode) -> Result<Vec<u32>, ConfigError> {
        let one = |item: &SNode, p: &str| -> Result<u32, ConfigError> {
            match &item.value {
                Node::Int(i) => u32::try_from(*i)
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| self.err(p, item, format!("invalid process id {i} (expected a positive integer)"))),
                Node::Str(s) => parse::parse_pid(s).map_err(|m| self.err(p, item, m)),
                _ => Err(self.err(p, item, format!("expected a process id, found {}", Self::kind(item)))),
            }
        };
        match &n.value {
            Node::Null => Ok(Vec::new()),
            Node::Int(_) => Ok(vec![one(n, path)?]),
            Node::Str(s) => parse::parse_pid_list(s).map_err(|m| self.err(path, n, m)),
            Node::Seq(items) => items.iter().enumerate().map(|(i, item)| one(item, &format!("{path}[{i}]"))).collect(),
            _ => Err(self.err(path, n, format!("expected a list of process ids, found {}", Self::kind(n)))),
        }
    }

    fn root(&self, cfg: &mut Config, otlp: &mut OtlpSources, tree: &SNode) -> Result<(), ConfigError> {
        let kept: Vec<&str> = KNOWN_SECTIONS.iter().map(|(k, _, _)| *k).collect();
        let known: Vec<&str> = ROOT_KEYS.iter().chain(&kept).copied().collect();
        for (key, n, path) in self.map(cfg, "", tree, &known, &[])? {
            match key {
                "trace_printer" => {
                    if let Some(s) = self.string(&path, n)? {
                        cfg.trace_printer = s.parse().map_err(|m: ParseError| self.err(&path, n, m))?;
                    }
                }
                "log_level" => {
                    if let Some(s) = self.string(&path, n)? {
                        cfg.log_level = s.parse().map_err(|m: ParseError| self.err(&path, n, m))?;
                    }
                }
                "log_format" => {
                    if let Some(s) = self.string(&path, n)? {
                        cfg.log_format = s.parse().map_err(|m: ParseError| self.err(&path, n, m))?;
                    }
                }
                "service_name" => cfg.service_name = self.opt_string(&path, n)?,
                "service_namespace" => cfg.service_namespace = self.opt_string(&path, n)?,
                "open_port" => cfg.open_port = self.ports(&path, n)?,
                "executable_path" => {
                    cfg.executable_path = self.regex(&path, n)?;
                    if cfg.executable_path.is_some() {
                        cfg.note(
                            LogLevel::Info,
                            path,
                            "deprecated: use discovery.instrument[].exe_path (a glob) instead",
                        );
                    }
                }
                "auto_target_exe" => cfg.auto_target_exe = self.glob(&path, n)?,
                "target_pids" => cfg.target_pids = self.pids(&path, n)?,
                "shutdown_timeout" => cfg.shutdown_timeout = self.duration(&path, n)?,
                "discovery" => self.discovery(cfg, &path, n)?,
                "ebpf" => self.ebpf(cfg, &path, n)?,
                section => self.kept_section(cfg, otlp, section, &path, n)?,
            }
        }
        Ok(())
    }

    fn kept_section(
        &self,
        cfg: &mut Config,
        otlp: &mut OtlpSources,
        key: &str,
        path: &str,
        n: &SNode,
    ) -> Result<(), ConfigError> {
        let (_, level, message) =
            KNOWN_SECTIONS.iter().find(|(k, _, _)| *k == key).copied().unwrap_or((key, LogLevel::Debug, ""));
        match key {
            "otel_traces_export" | "otel_metrics_export" => {
                // The shape is checked here, where the file position is known;
                // the values are resolved by `config::otlp`.
                if let Some(ep) = self.section_field(path, n, "endpoint")? {
                    self.opt_string(&child(path, "endpoint"), ep)?;
                }
                otlp.keep_section(key, to_json(&n.value));
            }
            "prometheus_export" => {
                if let Some(port) = self.section_field(path, n, "port")? {
                    let p = child(path, "port");
                    let value = match &port.value {
                        Node::Null => 0,
                        Node::Int(i) => u16::try_from(*i)
                            .map_err(|_| self.err(&p, port, format!("invalid port {i} (expected 0-65535)")))?,
                        Node::Str(s) => s
                            .trim()
                            .parse::<u16>()
                            .map_err(|_| self.err(&p, port, format!("invalid port {s:?} (expected 0-65535)")))?,
                        _ => {
                            return Err(self.err(
                                &p,
                                port,
                                format!("expected a port number, found {}", Self::kind(port)),
                            ));
                        }
                    };
                    cfg.export.prometheus_port = (value != 0).then_some(value);
                }
                let notes = super::metrics::apply_prometheus_section(&mut cfg.metrics, path, &to_json(&n.value))
                    .map_err(|e| self.err(&e.key, n, e.message))?;
                for note in notes {
                    cfg.note(LogLevel::Warn, path, note);
                }
            }
            "routes" => {
                super::metrics::apply_routes_section(&mut cfg.metrics, path, &to_json(&n.value))
                    .map_err(|e| self.err(&e.key, n, e.message))?;
            }
            "internal_metrics" => {
                let notes = super::metrics::apply_internal_section(&mut cfg.metrics, path, &to_json(&n.value))
                    .map_err(|e| self.err(&e.key, n, e.message))?;
                for note in notes {
                    cfg.note(LogLevel::Warn, path, note);
                }
            }
            "attributes" => {
                super::metrics::apply_attributes_section(&mut cfg.metrics, path, &to_json(&n.value))
                    .map_err(|e| self.err(&e.key, n, e.message))?;
                if let Some(iid) = self.section_field(path, n, "instance_id")? {
                    let iid_path = child(path, "instance_id");
                    if let Some(h) = self.section_field(&iid_path, iid, "override_hostname")? {
                        cfg.hostname = self.opt_string(&child(&iid_path, "override_hostname"), h)?;
                    }
                }
            }
            "nodejs" => {
                if let Some(e) = self.section_field(path, n, "enabled")? {
                    cfg.nodejs_enabled = self.bool(&child(path, "enabled"), e)?;
                }
            }
            _ => {}
        }
        if !matches!(n.value, Node::Null) {
            cfg.note(level, path, message);
        }
        Ok(())
    }

    /// A field of a kept (loosely checked) section; the section must be a
    /// mapping or null.
    fn section_field<'n>(&self, path: &str, n: &'n SNode, key: &str) -> Result<Option<&'n SNode>, ConfigError> {
        match &n.value {
            Node::Null => Ok(None),
            Node::Map(m) => Ok(m.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)),
            _ => Err(self.err(path, n, format!("expected a mapping, found {}", Self::kind(n)))),
        }
    }

    fn discovery(&self, cfg: &mut Config, path: &str, n: &SNode) -> Result<(), ConfigError> {
        let mut services = Vec::new();
        let mut exclude_services = Vec::new();
        let mut default_exclude_services = None;
        let mut default_exclude_instrument_set = false;
        for (key, v, p) in self.map(cfg, path, n, DISCOVERY_KEYS, DISCOVERY_IGNORED)? {
            match key {
                "instrument" => cfg.discovery.instrument = self.selectors(cfg, &p, v, SelectorKind::Glob, false)?,
                "exclude_instrument" => {
                    cfg.discovery.exclude_instrument = self.selectors(cfg, &p, v, SelectorKind::Glob, false)?
                }
                "default_exclude_instrument" => {
                    cfg.discovery.default_exclude_instrument = self.selectors(cfg, &p, v, SelectorKind::Glob, true)?;
                    default_exclude_instrument_set = true;
                }
                "services" => services = self.selectors(cfg, &p, v, SelectorKind::Regex, false)?,
                "exclude_services" => exclude_services = self.selectors(cfg, &p, v, SelectorKind::Regex, false)?,
                "default_exclude_services" => {
                    default_exclude_services = Some(self.selectors(cfg, &p, v, SelectorKind::Regex, true)?)
                }
                "poll_interval" => {
                    let d = self.duration(&p, v)?;
                    cfg.discovery.poll_interval = if d.is_zero() { DEFAULT_POLL_INTERVAL } else { d };
                }
                "exclude_otel_instrumented_services" => {
                    cfg.discovery.exclude_otel_instrumented_services = self.bool(&p, v)?
                }
                "system_wide" => cfg.discovery.system_wide = self.bool(&p, v)?,
                _ => unreachable!("key list and match arms differ: {key}"),
            }
        }
        // Legacy (regex) lists, with OBI's rule: `instrument` wins over `services`.
        if !services.is_empty() || !exclude_services.is_empty() {
            if cfg.discovery.instrument.is_empty() {
                cfg.note(
                    LogLevel::Info,
                    child(path, "services"),
                    "deprecated: use discovery.instrument (globs) instead",
                );
                cfg.discovery.instrument = services;
                cfg.discovery.exclude_instrument.extend(exclude_services);
                if let Some(d) = default_exclude_services {
                    if default_exclude_instrument_set {
                        cfg.discovery.default_exclude_instrument.extend(d);
                    } else {
                        cfg.discovery.default_exclude_instrument = d;
                    }
                }
            } else {
                cfg.note(
                    LogLevel::Warn,
                    child(path, "services"),
                    "discovery.services and discovery.exclude_services are ignored because discovery.instrument is set",
                );
            }
        }
        Ok(())
    }

    /// A list of selectors. In `default_*` lists, entries that need
    /// Kubernetes metadata are dropped (with a note) instead of failing, so
    /// that OBI's documented defaults can be pasted as they are.
    fn selectors(
        &self,
        cfg: &mut Config,
        path: &str,
        n: &SNode,
        kind: SelectorKind,
        is_default_list: bool,
    ) -> Result<Vec<Selector>, ConfigError> {
        let mut out = Vec::new();
        for (i, item) in self.seq(path, n)?.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if let Some(sel) = self.selector(cfg, &p, item, kind, is_default_list)? {
                out.push(sel);
            }
        }
        Ok(out)
    }

    fn selector(
        &self,
        cfg: &mut Config,
        path: &str,
        n: &SNode,
        kind: SelectorKind,
        is_default_list: bool,
    ) -> Result<Option<Selector>, ConfigError> {
        let own_keys = if kind == SelectorKind::Glob { GLOB_SELECTOR_KEYS } else { REGEX_SELECTOR_KEYS };
        let known: Vec<&str> = own_keys.iter().chain(SELECTOR_UNSUPPORTED).copied().collect();
        let mut sel = Selector::default();
        let mut needs_k8s = None;
        for (key, v, p) in self.map(cfg, path, n, &known, SELECTOR_IGNORED)? {
            match key {
                "name" => sel.name = self.opt_string(&p, v)?,
                "namespace" => sel.namespace = self.opt_string(&p, v)?,
                "open_ports" => sel.open_ports = self.ports(&p, v)?,
                "exe_path" if kind == SelectorKind::Glob => sel.exe_path = self.glob(&p, v)?,
                "exe_path" => sel.exe_path_regexp = self.regex(&p, v)?,
                "cmd_args" => sel.cmd_args = self.glob(&p, v)?,
                "languages" => sel.languages = self.glob(&p, v)?,
                "target_pids" => sel.target_pids = self.pids(&p, v)?,
                "containers_only" if !self.bool(&p, v).unwrap_or(true) => {}
                _ => {
                    if !matches!(v.value, Node::Null) {
                        needs_k8s = Some((p, v));
                    }
                }
            }
        }
        if let Some((p, v)) = needs_k8s {
            if is_default_list {
                cfg.note(
                    LogLevel::Info,
                    path,
                    "entry dropped: Kubernetes/container metadata selectors are not supported by obi-rs",
                );
                return Ok(None);
            }
            return Err(self.err(
                &p,
                v,
                "Kubernetes and container metadata selectors are not supported by obi-rs yet; select processes \
                 with exe_path, open_ports, cmd_args, languages or target_pids",
            ));
        }
        if !sel.has_criteria() {
            let list = if kind == SelectorKind::Glob {
                "open_ports, exe_path, cmd_args, languages or target_pids"
            } else {
                "open_ports or exe_path"
            };
            return Err(self.err(path, n, format!("entry should define at least one selection criteria ({list})")));
        }
        Ok(Some(sel))
    }

    fn ebpf(&self, cfg: &mut Config, path: &str, n: &SNode) -> Result<(), ConfigError> {
        for (key, v, p) in self.map(cfg, path, n, EBPF_KEYS, EBPF_IGNORED)? {
            match key {
                "buffer_sizes" => {
                    for (proto, bv, bp) in self.map(cfg, &p, v, BUFFER_SIZE_KEYS, &[])? {
                        let size = self.u32(&bp, bv)?;
                        if proto == "http" {
                            cfg.ebpf.capture_size = super::env::capture_size(cfg, size, &bp);
                        } else if size != 0 {
                            cfg.note(
                                LogLevel::Warn,
                                bp,
                                "accepted for OBI compatibility; obi-rs captures the same payload size for all protocols (ebpf.buffer_sizes.http)",
                            );
                        }
                    }
                }
                "ring_buffer_size" => {
                    let bytes = match &v.value {
                        Node::Int(i) => u64::try_from(*i).map_err(|_| self.err(&p, v, format!("invalid size {i}")))?,
                        Node::Str(s) => parse_byte_size(s).map_err(|m| self.err(&p, v, m))?,
                        _ => return Err(self.err(&p, v, format!("expected a size in bytes, found {}", Self::kind(v)))),
                    };
                    cfg.ebpf.ring_buffer_size = u32::try_from(bytes).map_err(|_| {
                        self.err(&p, v, format!("ring buffer size {bytes} is too large (maximum 2GiB)"))
                    })?;
                }
                "wakeup_len" => cfg.ebpf.wakeup_len = self.u32(&p, v)?,
                "batch_timeout" => cfg.ebpf.batch_timeout = self.duration(&p, v)?,
                "batch_length" => {
                    self.u32(&p, v)?;
                    cfg.note(LogLevel::Debug, p, "accepted for OBI compatibility and ignored (spans are not batched)");
                }
                "http_request_timeout" => cfg.ebpf.http_request_timeout = self.duration(&p, v)?,
                "btf_path" => cfg.ebpf.btf_path = self.opt_string(&p, v)?.map(PathBuf::from),
                "btf_ignore_kernel" => cfg.ebpf.btf_ignore_kernel = self.bool(&p, v)?,
                "context_propagation" => {
                    if let Some(s) = self.string(&p, v)? {
                        cfg.ebpf.context_propagation = s.parse().map_err(|m: ParseError| self.err(&p, v, m))?;
                    }
                }
                "enable_context_propagation" => {
                    if self.bool(&p, v)? {
                        cfg.ebpf.context_propagation = super::ContextPropagation::All;
                    }
                    cfg.note(LogLevel::Info, p, "deprecated: use ebpf.context_propagation instead");
                }
                "track_request_headers" => cfg.ebpf.track_request_headers = self.bool(&p, v)?,
                "db_query_literals" => cfg.ebpf.db_query_literals = self.bool(&p, v)?,
                _ => unreachable!("key list and match arms differ: {key}"),
            }
        }
        Ok(())
    }
}

/// For a top-level key that belongs to a section (e.g. `services` or
/// `instrument` written at the root), the full path where it belongs.
fn misplaced_key_hint(path: &str, key: &str) -> Option<String> {
    if !path.is_empty() {
        return None;
    }
    [("discovery", DISCOVERY_KEYS), ("ebpf", EBPF_KEYS)]
        .iter()
        .find(|(_, keys)| keys.contains(&key))
        .map(|(section, _)| format!("{section}.{key}"))
}

fn scalar_text(n: &Node) -> String {
    match n {
        Node::Bool(b) => b.to_string(),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => f.to_string(),
        Node::Str(s) => s.clone(),
        _ => String::new(),
    }
}

/// Converts a tree to JSON, the plain form the section decoders read.
fn to_json(n: &Node) -> serde_json::Value {
    use serde_json::Value;
    match n {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => {
            if let Ok(v) = i64::try_from(*i) {
                Value::from(v)
            } else if let Ok(v) = u64::try_from(*i) {
                Value::from(v)
            } else {
                Value::String(i.to_string())
            }
        }
        Node::Float(f) => {
            serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or_else(|| Value::String(f.to_string()))
        }
        Node::Str(s) => Value::String(s.clone()),
        Node::Seq(items) => Value::Array(items.iter().map(|i| to_json(&i.value)).collect()),
        Node::Map(entries) => {
            Value::Object(entries.iter().map(|(k, v)| (k.value.clone(), to_json(&v.value))).collect())
        }
    }
}

/// Every YAML key path we interpret, for documentation and tests.
#[cfg(test)]
pub(crate) fn supported_keys() -> Vec<String> {
    let mut out: Vec<String> = ROOT_KEYS.iter().map(|k| k.to_string()).collect();
    out.extend(DISCOVERY_KEYS.iter().map(|k| format!("discovery.{k}")));
    out.extend(EBPF_KEYS.iter().map(|k| format!("ebpf.{k}")));
    out.extend(GLOB_SELECTOR_KEYS.iter().map(|k| format!("discovery.instrument[].{k}")));
    out.push("attributes.instance_id.override_hostname".to_string());
    out.extend(KNOWN_SECTIONS.iter().map(|(k, _, _)| k.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn expands_braced_variables_only() {
        let env = env_of(&[("PORT", "8080"), ("EMPTY", "")]);
        assert_eq!(expand_env("open_port: ${PORT}", &env), "open_port: 8080");
        assert_eq!(expand_env("a: ${UNSET}b", &env), "a: b");
        assert_eq!(expand_env("a: ${EMPTY}", &env), "a: ");
        assert_eq!(expand_env("a: $PORT ${PORT:-1} ${1X} ${", &env), "a: $PORT ${PORT:-1} ${1X} ${");
        assert_eq!(expand_env("${PORT}${PORT}", &env), "80808080");
        assert_eq!(expand_env("ünï ${PORT} ü", &env), "ünï 8080 ü");
    }

    #[test]
    fn to_json_keeps_the_shape() {
        let tree = parse_tree("a: [1, x, true, ~, 1.5]\nb: {c: d}\n", "t").unwrap();
        assert_eq!(to_json(&tree.value), serde_json::json!({"a": [1, "x", true, null, 1.5], "b": {"c": "d"}}));
    }

    #[test]
    fn syntax_errors_are_one_line() {
        let e = parse_tree("a: [1\n", "f.yml").unwrap_err().to_string();
        assert!(e.starts_with("parsing YAML configuration f.yml: "), "{e}");
        assert!(e.contains("line 1"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
