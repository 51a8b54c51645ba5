//! Environment variables: an explicit table mapping each name to a setter.
//!
//! Rules (OBI's, via `caarlos0/env`):
//! - environment variables override the YAML file;
//! - an empty value counts as unset;
//! - Beyla compatibility: when `OTEL_EBPF_X` is unset, `BEYLA_X` and then
//!   `BEYLA_OTEL_X` are used instead (grafana/beyla copies every
//!   `^BEYLA_(OTEL_)?X` variable to `OTEL_EBPF_X` when that one is unset);
//! - booleans use Go's `strconv.ParseBool` spellings.

use std::path::PathBuf;

use super::metrics::MetricsValueError;
use super::otlp::OtlpSources;
use super::parse::{ParseError, parse_byte_size, parse_go_bool, parse_go_duration, parse_pid_list, parse_u32};
use super::{
    Config, ConfigError, DEFAULT_CAPTURE_SIZE, DEFAULT_POLL_INTERVAL, GlobPattern, LogLevel, MAX_CAPTURE_SIZE,
    PortEnum, PortEnumError, RegexPattern,
};

/// A table entry whose value is kept as written for the OTLP resolution
/// ([`Target::Otlp`]).
macro_rules! exporter_var {
    ($name:literal, $yaml:literal, $help:literal $(, $fallback:literal)*) => {
        EnvVar { name: $name, fallbacks: &[$($fallback),*], yaml: $yaml, help: $help, target: Target::Otlp }
    };
}

/// A bad value in an environment variable (the caller adds the variable name).
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvValueError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Ports(#[from] PortEnumError),
    #[error(transparent)]
    Metrics(#[from] MetricsValueError),
    #[error("invalid glob pattern {pattern:?}: {source}")]
    Glob { pattern: String, source: globset::Error },
    #[error(
        "invalid regular expression {pattern:?} ({}); OTEL_EBPF_EXECUTABLE_PATH is a regular expression, \
         use OTEL_EBPF_AUTO_TARGET_EXE for globs such as '*/node'",
        last_line(.source)
    )]
    Regex { pattern: String, source: regex::Error },
    #[error("ring buffer size {0:?} is too large (maximum 2GiB)")]
    RingBufferTooLarge(String),
    #[error("invalid port {0:?} (expected 0-65535)")]
    Port(String),
    #[error("invalid TTL {0:?}: must be greater than zero, e.g. 5m")]
    ZeroTtl(String),
    #[error(transparent)]
    ServiceNames(#[from] super::service_names::ServiceNamesError),
    #[error(transparent)]
    DefaultServiceName(#[from] super::service_names::DefaultServiceNameError),
    #[error("the value is not valid UTF-8 ({0:?}); obi-rs reads UTF-8 values only")]
    NotUtf8(std::ffi::OsString),
}

/// Reads one variable of the process environment (injectable for tests).
pub(crate) type ReadVar = fn(&str) -> Result<String, std::env::VarError>;

/// The process environment as the loader sees it. A set variable whose value
/// is not valid UTF-8 reads as unset (the loader's lookup yields strings) but
/// is remembered, so that loading then fails naming it instead of acting as
/// if it were absent.
pub(crate) struct ProcessEnv {
    read: ReadVar,
    not_utf8: std::cell::RefCell<Vec<(String, std::ffi::OsString)>>,
}

impl ProcessEnv {
    pub(crate) fn new(read: ReadVar) -> Self {
        ProcessEnv { read, not_utf8: Default::default() }
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<String> {
        match (self.read)(name) {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(raw)) => {
                self.not_utf8.borrow_mut().push((name.to_string(), raw));
                None
            }
        }
    }

    /// The first variable read so far whose value is not UTF-8, as an error.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        match self.not_utf8.borrow().first() {
            Some((var, raw)) => Err(ConfigError::Env { var: var.clone(), source: EnvValueError::NotUtf8(raw.clone()) }),
            None => Ok(()),
        }
    }
}

/// The last line of a multi-line error (the regex crate's summary).
fn last_line(e: &regex::Error) -> String {
    e.to_string().lines().last().unwrap_or_default().trim().to_string()
}

/// Environment lookup with OBI's conventions (empty = unset, `BEYLA_*` aliases).
pub(crate) struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Env { lookup }
    }

    /// The raw value of exactly `name`, `None` when unset or empty.
    pub(crate) fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    /// The value of `name` and the variable it came from: `name` itself, or
    /// for `OTEL_EBPF_X`, `BEYLA_X` then `BEYLA_OTEL_X`.
    pub(crate) fn get(&self, name: &str) -> Option<(String, String)> {
        if let Some(v) = self.raw(name) {
            return Some((name.to_string(), v));
        }
        let rest = name.strip_prefix("OTEL_EBPF_")?;
        [format!("BEYLA_{rest}"), format!("BEYLA_OTEL_{rest}")]
            .into_iter()
            .find_map(|alias| self.raw(&alias).map(|v| (alias, v)))
    }
}

/// Sets one configuration value from an environment variable's text.
/// Arguments: the config, the value, the variable name the value came from.
pub(crate) type EnvSetter = fn(&mut Config, &str, &str) -> Result<(), EnvValueError>;

/// Where a variable's value goes.
pub(crate) enum Target {
    /// Decoded into [`Config`] at once.
    Config(EnvSetter),
    /// Kept as written for the OTLP exporters' resolution
    /// ([`super::otlp`]), whose errors name the variable.
    Otlp,
}

/// One supported environment variable.
pub(crate) struct EnvVar {
    pub(crate) name: &'static str,
    /// Other names read, in order, when `name` (and its `BEYLA_*` aliases) is unset.
    pub(crate) fallbacks: &'static [&'static str],
    /// The equivalent YAML key, empty when there is none. Read by the tests
    /// that keep docs/configuration.md and the YAML keys in step.
    #[cfg_attr(not(test), expect(dead_code))]
    pub(crate) yaml: &'static str,
    /// What it does, for the same tests.
    #[cfg_attr(not(test), expect(dead_code))]
    pub(crate) help: &'static str,
    pub(crate) target: Target,
}

fn glob(v: &str) -> Result<GlobPattern, EnvValueError> {
    GlobPattern::new(v).map_err(|source| EnvValueError::Glob { pattern: v.to_string(), source })
}

fn regex(v: &str) -> Result<RegexPattern, EnvValueError> {
    RegexPattern::new(v).map_err(|source| EnvValueError::Regex { pattern: v.to_string(), source })
}

fn port(v: &str) -> Result<u16, EnvValueError> {
    v.trim().parse().map_err(|_| EnvValueError::Port(v.to_string()))
}

/// Every environment variable the loader reads, in application order.
pub(crate) static ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "OTEL_EBPF_LOG_LEVEL",
        fallbacks: &[],
        yaml: "log_level",
        help: "DEBUG, INFO, WARN or ERROR (default INFO)",
        target: Target::Config(|c, v, _| {
            c.log_level = v.parse()?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_LOG_FORMAT",
        fallbacks: &[],
        yaml: "log_format",
        help: "text or json (default text)",
        target: Target::Config(|c, v, _| {
            c.log_format = v.parse()?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_TRACE_PRINTER",
        fallbacks: &[],
        yaml: "trace_printer",
        help: "print spans on stdout: disabled, text, json, json_indent or counter (default disabled)",
        target: Target::Config(|c, v, _| {
            c.trace_printer = v.parse()?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_SERVICE_NAME",
        fallbacks: &["OTEL_EBPF_SERVICE_NAME"],
        yaml: "service_name",
        help: "service name of the processes selected by the shortcuts (OPEN_PORT, AUTO_TARGET_EXE, ...)",
        target: Target::Config(|c, v, _| {
            c.service_name = Some(v.to_string());
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_SERVICE_NAMESPACE",
        fallbacks: &[],
        yaml: "service_namespace",
        help: "service namespace of the processes selected by the shortcuts",
        target: Target::Config(|c, v, _| {
            c.service_namespace = Some(v.to_string());
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_SERVICE_NAMES",
        fallbacks: &[],
        yaml: "",
        help: "service names by port or executable, e.g. 1880=node-red,exe:influxd=influxdb (obi-rs only)",
        target: Target::Config(|c, v, _| {
            c.service_names = super::service_names::ServiceNames::parse(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_SERVICE_NAME_DEFAULT",
        fallbacks: &[],
        yaml: "",
        help: "name of processes nothing names: app (script, package, jar; default) or executable (OBI's) (obi-rs only)",
        target: Target::Config(|c, v, _| {
            c.default_service_name = v.parse()?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_OPEN_PORT",
        fallbacks: &[],
        yaml: "open_port",
        help: "instrument processes with a local socket on these ports, e.g. 80,443,8000-8999",
        target: Target::Config(|c, v, _| {
            c.open_port = Some(PortEnum::parse(v)?);
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_AUTO_TARGET_EXE",
        fallbacks: &["OTEL_GO_AUTO_TARGET_EXE"],
        yaml: "auto_target_exe",
        help: "instrument processes whose executable path matches this glob, e.g. '*/java'",
        target: Target::Config(|c, v, _| {
            c.auto_target_exe = Some(glob(v)?);
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_EXECUTABLE_PATH",
        fallbacks: &[],
        yaml: "executable_path",
        help: "deprecated: regular expression over the executable path (use OTEL_EBPF_AUTO_TARGET_EXE)",
        target: Target::Config(|c, v, name| {
            c.executable_path = Some(regex(v)?);
            c.note(LogLevel::Info, name, "deprecated: use OTEL_EBPF_AUTO_TARGET_EXE (a glob) instead");
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_AUTO_TARGET_LANGUAGE",
        fallbacks: &[],
        yaml: "",
        help: "instrument processes whose detected language matches this glob (go, java, nodejs, python, ...)",
        target: Target::Config(|c, v, _| {
            c.auto_target_language = Some(glob(v)?);
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_TARGET_PID",
        fallbacks: &[],
        yaml: "target_pids",
        help: "instrument these process ids, e.g. 1234,5678",
        target: Target::Config(|c, v, _| {
            c.target_pids = parse_pid_list(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_SYSTEM_WIDE",
        fallbacks: &[],
        yaml: "discovery.system_wide",
        help: "instrument every process (true/false)",
        target: Target::Config(|c, v, _| {
            c.discovery.system_wide = parse_go_bool(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_DISCOVERY_POLL_INTERVAL",
        fallbacks: &[],
        yaml: "discovery.poll_interval",
        help: "how often processes are rescanned (default 5s)",
        target: Target::Config(|c, v, _| {
            let d = parse_go_duration(v)?;
            c.discovery.poll_interval = if d.is_zero() { DEFAULT_POLL_INTERVAL } else { d };
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_EXCLUDE_OTEL_INSTRUMENTED_SERVICES",
        fallbacks: &[],
        yaml: "discovery.exclude_otel_instrumented_services",
        help: "skip processes that already export OpenTelemetry data (default true)",
        target: Target::Config(|c, v, _| {
            c.discovery.exclude_otel_instrumented_services = parse_go_bool(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_SHUTDOWN_TIMEOUT",
        fallbacks: &[],
        yaml: "shutdown_timeout",
        help: "graceful shutdown timeout (default 10s)",
        target: Target::Config(|c, v, _| {
            c.shutdown_timeout = parse_go_duration(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_HOSTNAME",
        fallbacks: &[],
        yaml: "attributes.instance_id.override_hostname",
        help: "host name used in service.instance.id",
        target: Target::Config(|c, v, _| {
            c.hostname = Some(v.to_string());
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_BPF_BUFFER_SIZE_HTTP",
        fallbacks: &[],
        yaml: "ebpf.buffer_sizes.http",
        help: "payload bytes captured per read/write, up to 4096 (default 1024; 0 = default; larger values are capped)",
        target: Target::Config(|c, v, name| {
            let n = parse_u32(v)?;
            c.ebpf.capture_size = capture_size(c, n, name);
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_BPF_RING_BUFFER_SIZE",
        fallbacks: &[],
        yaml: "ebpf.ring_buffer_size",
        help: "event ring buffer size, a power of two >= 4096, e.g. 16MiB (default 8MiB)",
        target: Target::Config(|c, v, _| {
            let n = parse_byte_size(v)?;
            c.ebpf.ring_buffer_size = u32::try_from(n).map_err(|_| EnvValueError::RingBufferTooLarge(v.to_string()))?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_BPF_WAKEUP_LEN",
        fallbacks: &[],
        yaml: "ebpf.wakeup_len",
        help: "wake user space after this many events (default 500)",
        target: Target::Config(|c, v, _| {
            c.ebpf.wakeup_len = parse_u32(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_BPF_BATCH_TIMEOUT",
        fallbacks: &[],
        yaml: "ebpf.batch_timeout",
        help: "read the ring buffer at least this often (default 100ms; OBI: 1s)",
        target: Target::Config(|c, v, _| {
            c.ebpf.batch_timeout = parse_go_duration(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_BPF_BATCH_LENGTH",
        fallbacks: &[],
        yaml: "ebpf.batch_length",
        help: "accepted for compatibility and ignored",
        target: Target::Config(|c, v, name| {
            parse_u32(v)?;
            c.note(LogLevel::Debug, name, "accepted for OBI compatibility and ignored (spans are not batched)");
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_BPF_HTTP_REQUEST_TIMEOUT",
        fallbacks: &[],
        yaml: "ebpf.http_request_timeout",
        help: "report requests without a response after this long with status 408 (default 0 = off)",
        target: Target::Config(|c, v, _| {
            c.ebpf.http_request_timeout = parse_go_duration(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_BTF_PATH",
        fallbacks: &[],
        yaml: "ebpf.btf_path",
        help: "BTF file for kernels without /sys/kernel/btf/vmlinux",
        target: Target::Config(|c, v, _| {
            c.ebpf.btf_path = Some(PathBuf::from(v));
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_BTF_IGNORE_KERNEL",
        fallbacks: &[],
        yaml: "ebpf.btf_ignore_kernel",
        help: "ignore the kernel's own BTF: without OTEL_EBPF_BTF_PATH, run the no-BTF mode (default false)",
        target: Target::Config(|c, v, _| {
            c.ebpf.btf_ignore_kernel = parse_go_bool(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_BPF_CONTEXT_PROPAGATION",
        fallbacks: &[],
        yaml: "ebpf.context_propagation",
        help: "disabled, all, headers, tcp or headers,tcp (default disabled)",
        target: Target::Config(|c, v, _| {
            c.ebpf.context_propagation = v.parse()?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_NODEJS_ENABLED",
        fallbacks: &[],
        yaml: "nodejs.enabled",
        help: "give Node.js client calls their right parent through an inspector-injected script (default true)",
        target: Target::Config(|c, v, _| {
            c.nodejs_enabled = parse_go_bool(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_BPF_TRACK_REQUEST_HEADERS",
        fallbacks: &[],
        yaml: "ebpf.track_request_headers",
        help: "read incoming traceparent headers (default false)",
        target: Target::Config(|c, v, _| {
            c.ebpf.track_request_headers = parse_go_bool(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_DB_QUERY_LITERALS",
        fallbacks: &[],
        yaml: "ebpf.db_query_literals",
        help: "db.query.text keeps literal values instead of ? (default false; passwords are never shown)",
        target: Target::Config(|c, v, _| {
            c.ebpf.db_query_literals = parse_go_bool(v)?;
            Ok(())
        }),
    },
    exporter_var!(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "",
        "OTLP endpoint for traces and metrics (/v1/traces, /v1/metrics appended for HTTP)"
    ),
    exporter_var!(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "otel_traces_export.endpoint",
        "OTLP traces endpoint, used as is"
    ),
    exporter_var!(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "otel_metrics_export.endpoint",
        "OTLP metrics endpoint, used as is"
    ),
    EnvVar {
        name: "OTEL_EBPF_PROMETHEUS_PORT",
        fallbacks: &[],
        yaml: "prometheus_export.port",
        help: "serve Prometheus metrics on this port (0 = off)",
        target: Target::Config(|c, v, _| {
            let p = port(v)?;
            c.export.prometheus_port = (p != 0).then_some(p);
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_PROMETHEUS_PATH",
        fallbacks: &[],
        yaml: "prometheus_export.path",
        help: "HTTP path of the Prometheus metrics (default /metrics)",
        target: Target::Config(|c, v, _| {
            c.metrics.prometheus_path = super::metrics::check_http_path(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_PROMETHEUS_HOST",
        fallbacks: &[],
        yaml: "prometheus_export.host",
        help: "IP address the scrape endpoints listen on (default: every interface, as OBI)",
        target: Target::Config(|c, v, _| {
            c.metrics.scrape_host = Some(super::metrics::parse_host(v)?);
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_PROMETHEUS_IDLE_TIMEOUT",
        fallbacks: &[],
        yaml: "prometheus_export.idle_timeout",
        help: "close scrape connections that send no request for this long (default 30s)",
        target: Target::Config(|c, v, _| {
            let d = parse_go_duration(v)?;
            if d.is_zero() {
                return Err(super::metrics::MetricsValueError::ZeroIdleTimeout(v.to_string()).into());
            }
            c.metrics.scrape_idle_timeout = d;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_PROMETHEUS_MAX_CONNECTIONS",
        fallbacks: &[],
        yaml: "prometheus_export.max_connections",
        help: "open scrape connections per endpoint; more are refused (default 64)",
        target: Target::Config(|c, v, _| {
            c.metrics.scrape_max_connections = super::metrics::parse_max_connections(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_PROMETHEUS_TTL",
        fallbacks: &[],
        yaml: "prometheus_export.ttl",
        help: "remove metric series not updated for this long (default 5m)",
        target: Target::Config(|c, v, _| {
            let d = parse_go_duration(v)?;
            if d.is_zero() {
                return Err(EnvValueError::ZeroTtl(v.to_string()));
            }
            c.metrics.ttl = d;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_PROMETHEUS_FEATURES",
        fallbacks: &["OTEL_EBPF_METRICS_FEATURES"],
        yaml: "prometheus_export.features",
        help: "metric groups; obi-rs produces application (RED) metrics only",
        target: Target::Config(|c, v, name| {
            let unsupported = super::metrics::check_features(v.split(','))?;
            if !unsupported.is_empty() {
                c.note(
                    LogLevel::Warn,
                    name,
                    format!("only the application feature is produced by obi-rs; ignored: {}", unsupported.join(",")),
                );
            }
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_PROMETHEUS_INSTRUMENTATIONS",
        fallbacks: &[],
        yaml: "prometheus_export.instrumentations",
        help: "protocols that produce metrics: * or a list such as http,grpc (default *)",
        target: Target::Config(|c, v, _| {
            c.metrics.instrumentations = super::instrumentations::Instrumentations::parse(v.split(','))
                .map_err(|e| super::metrics::MetricsValueError::Instrumentation(e.0))?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_INTERNAL_METRICS_EXPORTER",
        fallbacks: &[],
        yaml: "internal_metrics.exporter",
        help: "metrics about obi-rs itself: disabled, prometheus or otel (default disabled)",
        target: Target::Config(|c, v, _| {
            c.metrics.internal_exporter = super::metrics::InternalExporter::parse(v)?;
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_INTERNAL_METRICS_PROMETHEUS_PORT",
        fallbacks: &[],
        yaml: "internal_metrics.prometheus.port",
        help: "port of the internal metrics endpoint (default: the Prometheus export port)",
        target: Target::Config(|c, v, _| {
            let p = port(v)?;
            c.metrics.internal_port = (p != 0).then_some(p);
            Ok(())
        }),
    },
    EnvVar {
        name: "OTEL_EBPF_INTERNAL_METRICS_PROMETHEUS_PATH",
        fallbacks: &[],
        yaml: "internal_metrics.prometheus.path",
        help: "HTTP path of the internal metrics (default /internal/metrics)",
        target: Target::Config(|c, v, _| {
            c.metrics.internal_path = super::metrics::check_http_path(v)?;
            Ok(())
        }),
    },
    // OTLP exporter settings: kept raw here, resolved (and checked, naming
    // the variable) by `config::otlp`.
    exporter_var!(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "",
        "OTLP protocol for traces and metrics: grpc, http/protobuf or http/json (default: guessed from the port)"
    ),
    exporter_var!(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "otel_traces_export.protocol",
        "OTLP traces protocol: grpc, http/protobuf or http/json"
    ),
    exporter_var!(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "",
        "headers sent with every OTLP export: key=value,key2=value2 (values URL-encoded)"
    ),
    exporter_var!(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "",
        "headers sent with OTLP trace exports (override OTEL_EXPORTER_OTLP_HEADERS per key)"
    ),
    exporter_var!("OTEL_EXPORTER_OTLP_TIMEOUT", "", "timeout of one OTLP export in milliseconds (default 10000)"),
    exporter_var!("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "", "timeout of one OTLP trace export in milliseconds"),
    exporter_var!(
        "OTEL_EXPORTER_OTLP_INSECURE",
        "",
        "gRPC endpoints without a scheme: true for plaintext (default false: TLS)"
    ),
    exporter_var!("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "", "like OTEL_EXPORTER_OTLP_INSECURE, for traces"),
    exporter_var!(
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "",
        "PEM file with the CA certificates that verify the OTLP endpoint"
    ),
    exporter_var!(
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "",
        "PEM file with the CA certificates that verify the OTLP traces endpoint"
    ),
    exporter_var!(
        "OTEL_EBPF_INSECURE_SKIP_VERIFY",
        "otel_traces_export.insecure_skip_verify",
        "do not verify the TLS certificate of OTLP endpoints (default false)"
    ),
    exporter_var!(
        "OTEL_EBPF_TRACES_INSTRUMENTATIONS",
        "otel_traces_export.instrumentations",
        "span types exported over OTLP: * or a list of http, grpc, sql, redis, kafka, ... (default *)",
        "OTEL_EBPF_OTEL_TRACES_INSTRUMENTATIONS"
    ),
    exporter_var!(
        "OTEL_TRACES_SAMPLER",
        "otel_traces_export.sampler.name",
        "always_on, always_off, traceidratio, parentbased_always_on (default), parentbased_always_off, parentbased_traceidratio"
    ),
    exporter_var!(
        "OTEL_TRACES_SAMPLER_ARG",
        "otel_traces_export.sampler.arg",
        "sampling ratio for the traceidratio samplers, 0 to 1"
    ),
    exporter_var!(
        "OTEL_EBPF_OTLP_TRACES_BATCH_MAX_SIZE",
        "otel_traces_export.batch_max_size",
        "most spans in one OTLP export (default 4096)",
        "OTEL_EBPF_OTLP_TRACES_MAX_EXPORT_BATCH_SIZE"
    ),
    exporter_var!(
        "OTEL_EBPF_OTLP_TRACES_QUEUE_SIZE",
        "otel_traces_export.queue_size",
        "most spans waiting for export; more are dropped and counted (default 16384)",
        "OTEL_EBPF_OTLP_TRACES_MAX_QUEUE_SIZE"
    ),
    exporter_var!(
        "OTEL_EBPF_OTLP_TRACES_BATCH_TIMEOUT",
        "otel_traces_export.batch_timeout",
        "longest a span waits for its batch to fill (default 5s)"
    ),
    exporter_var!(
        "OTEL_EBPF_BACKOFF_INITIAL_INTERVAL",
        "otel_traces_export.backoff_initial_interval",
        "first retry delay after a failed OTLP export (default 5s)"
    ),
    exporter_var!(
        "OTEL_EBPF_BACKOFF_MAX_INTERVAL",
        "otel_traces_export.backoff_max_interval",
        "longest retry delay (default 30s)"
    ),
    // OTLP metrics exporter (resolved by `config::otlp::metrics`).
    exporter_var!(
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "otel_metrics_export.protocol",
        "OTLP metrics protocol: grpc, http/protobuf or http/json"
    ),
    exporter_var!(
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "",
        "headers sent with OTLP metrics exports (override OTEL_EXPORTER_OTLP_HEADERS per key)"
    ),
    exporter_var!("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "", "timeout of one OTLP metrics export in milliseconds"),
    exporter_var!("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "", "like OTEL_EXPORTER_OTLP_INSECURE, for metrics"),
    exporter_var!(
        "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
        "",
        "PEM file with the CA certificates that verify the OTLP metrics endpoint"
    ),
    exporter_var!(
        "OTEL_EBPF_METRICS_INTERVAL",
        "otel_metrics_export.interval",
        "OTLP metrics export interval, a duration such as 30s (default: OTEL_METRIC_EXPORT_INTERVAL, else 60s)"
    ),
    exporter_var!("OTEL_METRIC_EXPORT_INTERVAL", "", "OTLP metrics export interval in milliseconds (default 60000)"),
    exporter_var!(
        "OTEL_EBPF_METRICS_INSTRUMENTATIONS",
        "otel_metrics_export.instrumentations",
        "protocols exported as OTLP metrics: * or a list such as http,grpc (default *)"
    ),
    exporter_var!(
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
        "otel_metrics_export.histogram_aggregation",
        "explicit_bucket_histogram (default; the exponential form is not supported)"
    ),
    exporter_var!(
        "OTEL_EBPF_BACKOFF_MAX_ELAPSED_TIME",
        "otel_traces_export.backoff_max_elapsed_time",
        "give a batch up after retrying this long (default 5m; 0 = retry until the queue overflows)"
    ),
];

/// `ebpf.buffer_sizes.http` as given by the user: `0` means the default (as
/// in OBI, where 0 disables the extra capture); values above
/// [`MAX_CAPTURE_SIZE`] (OBI allows up to 65536) are capped with a warning so
/// that OBI configurations keep working.
pub(crate) fn capture_size(cfg: &mut Config, requested: u32, key: &str) -> u32 {
    match requested {
        0 => DEFAULT_CAPTURE_SIZE,
        n if n > MAX_CAPTURE_SIZE => {
            cfg.note(
                LogLevel::Warn,
                key,
                format!("{n} bytes requested; obi-rs captures at most {MAX_CAPTURE_SIZE} bytes per read/write, using {MAX_CAPTURE_SIZE}"),
            );
            MAX_CAPTURE_SIZE
        }
        n => n,
    }
}

/// Other names that matter but are not settings: `OTEL_EBPF_CONFIG_PATH`
/// (read by [`super::config_path`]).
pub(crate) const CONFIG_PATH_VAR: &str = "OTEL_EBPF_CONFIG_PATH";

/// Applies every variable of [`ENV_VARS`] that is set, on top of `cfg`; the
/// OTLP exporter variables go to `otlp` as written.
pub(crate) fn apply_env(
    cfg: &mut Config,
    otlp: &mut OtlpSources,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let env = Env::new(lookup);
    for var in ENV_VARS {
        let found = env.get(var.name).or_else(|| var.fallbacks.iter().find_map(|f| env.get(f)));
        let Some((name, value)) = found else { continue };
        match var.target {
            Target::Config(set) => set(cfg, &value, &name).map_err(|source| ConfigError::Env { var: name, source })?,
            Target::Otlp => otlp.keep_env(var.name, &value, &name),
        }
    }
    Ok(())
}
