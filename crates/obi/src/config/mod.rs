//! Agent configuration: one typed struct built from defaults < YAML file <
//! `OTEL_EBPF_*` (and `BEYLA_*`) environment variables < command-line flags,
//! validated up front with messages that name the offending key and value.
//!
//! Entry point: [`load`] (or [`load_from_process_env`]), which returns every
//! setting already decoded, resolved and checked: the pipeline only reads
//! [`Config`]. The layers live in submodules: [`yaml`](mod@yaml) (file format,
//! `${VAR}` expansion, unknown-key errors), [`env`](mod@env) (the explicit
//! table of environment variables and the `BEYLA_*` aliases),
//! [`metrics`](mod@metrics) (the metrics pipeline sections), [`otlp`](mod@otlp)
//! (the OTLP exporters, resolved from the environment and their YAML
//! sections) and [`validate`](mod@validate) (cross-field checks).
//!
//! This module depends on nothing else in the crate: the command line hands
//! its flags over as [`Overrides`], and the exporters import their settings
//! types from here.

use std::path::PathBuf;
use std::time::Duration;

pub(crate) mod env;
pub(crate) mod instrumentations;
pub(crate) mod metrics;
pub(crate) mod otlp;
pub(crate) mod parse;
pub(crate) mod ports;
pub(crate) mod service_names;
pub(crate) mod validate;
pub(crate) mod yaml;

pub(crate) use ports::{PortEnum, PortEnumError};

/// How spans are printed on stdout (`OTEL_EBPF_TRACE_PRINTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TracePrinter {
    #[default]
    Disabled,
    Text,
    Json,
    JsonIndent,
    /// Prints `Processed N requests` at shutdown.
    Counter,
    /// The live view of `obi top` takes the printer's place (set by that
    /// command, not by any setting).
    Top,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `ebpf.context_propagation` (`OTEL_EBPF_BPF_CONTEXT_PROPAGATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ContextPropagation {
    #[default]
    Disabled,
    /// `headers`: inject `traceparent` into outgoing HTTP requests.
    Headers,
    /// `tcp`: carry the context in TCP options.
    Tcp,
    /// `all` (or `headers,tcp`).
    All,
}

impl ContextPropagation {
    /// HTTP header injection is on (`headers` or `all`).
    pub(crate) fn injects_headers(self) -> bool {
        matches!(self, ContextPropagation::Headers | ContextPropagation::All)
    }

    /// The TCP-option carrier was asked for; obi-rs does not implement it.
    pub(crate) fn wants_tcp_options(self) -> bool {
        matches!(self, ContextPropagation::Tcp | ContextPropagation::All)
    }
}

/// One entry of `discovery.instrument` (and friends). Every selector that is
/// set must match for the entry to match a process.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Selector {
    /// Overrides `service.name` for matched processes.
    pub(crate) name: Option<String>,
    /// Overrides `service.namespace` for matched processes.
    pub(crate) namespace: Option<String>,
    /// Any local port of the process's inet sockets is in this set.
    pub(crate) open_ports: Option<PortEnum>,
    /// Glob over the full executable path.
    pub(crate) exe_path: Option<GlobPattern>,
    /// Regular expression over the full executable path (legacy `services` form).
    pub(crate) exe_path_regexp: Option<RegexPattern>,
    /// Glob over the command line (arguments joined by spaces).
    pub(crate) cmd_args: Option<GlobPattern>,
    /// Glob over the detected language (`go`, `java`, `nodejs`, `python`...).
    pub(crate) languages: Option<GlobPattern>,
    /// Exact process ids.
    pub(crate) target_pids: Vec<u32>,
}

impl Selector {
    /// Whether at least one matching criterion is set (`name`/`namespace`
    /// only rename, they do not select anything).
    pub(crate) fn has_criteria(&self) -> bool {
        self.open_ports.is_some()
            || self.exe_path.is_some()
            || self.exe_path_regexp.is_some()
            || self.cmd_args.is_some()
            || self.languages.is_some()
            || !self.target_pids.is_empty()
    }
}

/// A glob pattern with its source text (for messages).
///
/// Syntax (gobwas/glob, as in OBI): `*` matches any sequence including `/`,
/// `?` one character, `[abc]`, `[!abc]`, `[a-z]` classes and `{a,b}`
/// alternatives.
#[derive(Debug, Clone)]
pub(crate) struct GlobPattern {
    pub(crate) source: String,
    pub(crate) matcher: globset::GlobMatcher,
}

impl PartialEq for GlobPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl GlobPattern {
    pub(crate) fn new(source: &str) -> Result<Self, globset::Error> {
        let glob = globset::GlobBuilder::new(source).literal_separator(false).build()?;
        Ok(GlobPattern { source: source.to_string(), matcher: glob.compile_matcher() })
    }

    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }
}

/// A regular expression with its source text. Matching is unanchored (Go's
/// `MatchString`): `node` matches `/usr/bin/node18`.
#[derive(Debug, Clone)]
pub(crate) struct RegexPattern {
    pub(crate) source: String,
    pub(crate) regex: regex::Regex,
}

impl PartialEq for RegexPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl RegexPattern {
    pub(crate) fn new(source: &str) -> Result<Self, regex::Error> {
        Ok(RegexPattern { source: source.to_string(), regex: regex::Regex::new(source)? })
    }

    #[cfg(test)]
    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiscoveryConfig {
    pub(crate) instrument: Vec<Selector>,
    pub(crate) exclude_instrument: Vec<Selector>,
    pub(crate) default_exclude_instrument: Vec<Selector>,
    /// How often /proc is rescanned (`OTEL_EBPF_DISCOVERY_POLL_INTERVAL`).
    pub(crate) poll_interval: Duration,
    /// Skip processes that already export OTLP themselves.
    pub(crate) exclude_otel_instrumented_services: bool,
    /// Instrument every process (`OTEL_EBPF_SYSTEM_WIDE`).
    pub(crate) system_wide: bool,
}

/// OBI's default exclusion: the agent itself and its siblings (OBI, Beyla,
/// Alloy, OpenTelemetry Collector), as one glob over the executable path.
/// OBI's list plus `*/obi` and `*/obi-rs` (ours).
pub(crate) const DEFAULT_EXCLUDE_EXE_GLOB: &str =
    "{*/obi,*/obi-rs,*beyla,*alloy,*ebpf-instrument,*otelcol,*otelcol-contrib,*otelcol-contrib[!/]*}";

/// Default `discovery.poll_interval` (also used when it is set to 0, like OBI).
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            instrument: Vec::new(),
            exclude_instrument: Vec::new(),
            default_exclude_instrument: vec![Selector {
                exe_path: Some(GlobPattern::new(DEFAULT_EXCLUDE_EXE_GLOB).expect("default exclusion glob is valid")),
                ..Selector::default()
            }],
            poll_interval: DEFAULT_POLL_INTERVAL,
            exclude_otel_instrumented_services: true,
            system_wide: false,
        }
    }
}

/// Largest accepted `ebpf.buffer_sizes.http` (bytes captured per syscall).
pub(crate) const MAX_CAPTURE_SIZE: u32 = 4096;
/// Default `ebpf.buffer_sizes.http` (OBI's `0` also means this).
pub(crate) const DEFAULT_CAPTURE_SIZE: u32 = 1024;
/// Default ring buffer size: 8 MiB.
pub(crate) const DEFAULT_RING_BUFFER_SIZE: u32 = 8 << 20;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EbpfConfig {
    /// Payload bytes captured per syscall (`ebpf.buffer_sizes.http`).
    pub(crate) capture_size: u32,
    /// Size of the event ring buffer in bytes (power of two).
    pub(crate) ring_buffer_size: u32,
    /// Wake user space once this many events are waiting (`wakeup_len`).
    pub(crate) wakeup_len: u32,
    /// Read the ring buffer at least this often (`batch_timeout`).
    pub(crate) batch_timeout: Duration,
    /// Requests without a response for this long are reported with status
    /// 408 (`http_request_timeout`; zero disables).
    pub(crate) http_request_timeout: Duration,
    /// Explicit BTF file for kernels without /sys/kernel/btf/vmlinux.
    pub(crate) btf_path: Option<std::path::PathBuf>,
    /// `ebpf.btf_ignore_kernel`: act as if the kernel had no BTF (the
    /// no-BTF mode unless `btf_path` is set).
    pub(crate) btf_ignore_kernel: bool,
    /// `ebpf.context_propagation` (`OTEL_EBPF_BPF_CONTEXT_PROPAGATION`).
    pub(crate) context_propagation: ContextPropagation,
    /// `ebpf.track_request_headers`: read incoming `traceparent` headers.
    pub(crate) track_request_headers: bool,
    /// `ebpf.db_query_literals`: `db.query.text` keeps literals instead of
    /// `?` (passwords are hidden either way).
    pub(crate) db_query_literals: bool,
}

impl Default for EbpfConfig {
    fn default() -> Self {
        EbpfConfig {
            capture_size: DEFAULT_CAPTURE_SIZE,
            ring_buffer_size: DEFAULT_RING_BUFFER_SIZE,
            wakeup_len: 500,
            // OBI's default is 1s. Reading the ring buffer is cheap, and a
            // shorter period makes spans appear sooner.
            batch_timeout: Duration::from_millis(100),
            http_request_timeout: Duration::ZERO,
            btf_path: None,
            btf_ignore_kernel: false,
            context_propagation: ContextPropagation::Disabled,
            track_request_headers: false,
            db_query_literals: false,
        }
    }
}

/// Exporters, resolved at load.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ExportConfig {
    /// `prometheus_export.port` / `OTEL_EBPF_PROMETHEUS_PORT` (0 = disabled = `None`).
    pub(crate) prometheus_port: Option<u16>,
    /// The OTLP traces exporter; `None` when no traces (or common) endpoint is set.
    pub(crate) otlp_traces: Option<otlp::OtlpTracesSettings>,
    /// The OTLP metrics exporter; `None` when no metrics (or common) endpoint is set.
    pub(crate) otlp_metrics: Option<otlp::OtlpMetricsSettings>,
}

impl ExportConfig {
    /// Whether any exporter would send or serve data.
    pub(crate) fn any_enabled(&self) -> bool {
        self.otlp_traces.is_some() || self.otlp_metrics.is_some() || self.prometheus_port.is_some()
    }
}

/// Something the loader noticed but that is not an error (deprecated key,
/// accepted-but-ignored OBI setting...). Logged by [`Config::log_diagnostics`]
/// once logging is up.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Diagnostic {
    pub(crate) level: LogLevel,
    /// YAML path or environment variable name.
    pub(crate) key: String,
    pub(crate) message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    pub(crate) log_level: LogLevel,
    pub(crate) log_format: LogFormat,
    pub(crate) trace_printer: TracePrinter,
    /// `OTEL_SERVICE_NAME`: names processes selected by the shortcuts below.
    pub(crate) service_name: Option<String>,
    /// `OTEL_EBPF_SERVICE_NAMESPACE`.
    pub(crate) service_namespace: Option<String>,
    /// `OTEL_EBPF_SERVICE_NAMES`: names by port or executable.
    pub(crate) service_names: service_names::ServiceNames,
    /// `OTEL_EBPF_SERVICE_NAME_DEFAULT`: what unnamed processes are called.
    pub(crate) default_service_name: service_names::DefaultServiceName,
    /// `OTEL_EBPF_OPEN_PORT` shortcut.
    pub(crate) open_port: Option<PortEnum>,
    /// `OTEL_EBPF_AUTO_TARGET_EXE` shortcut (glob over the executable path).
    pub(crate) auto_target_exe: Option<GlobPattern>,
    /// `OTEL_EBPF_EXECUTABLE_PATH` shortcut (regex, deprecated).
    pub(crate) executable_path: Option<RegexPattern>,
    /// `OTEL_EBPF_TARGET_PID` shortcut.
    pub(crate) target_pids: Vec<u32>,
    pub(crate) discovery: DiscoveryConfig,
    pub(crate) ebpf: EbpfConfig,
    /// `OTEL_EBPF_SHUTDOWN_TIMEOUT`.
    pub(crate) shutdown_timeout: Duration,
    /// Overrides the host name used in `service.instance.id` (`OTEL_EBPF_HOSTNAME`).
    pub(crate) hostname: Option<String>,
    /// `OTEL_EBPF_AUTO_TARGET_LANGUAGE` shortcut (glob over the detected language).
    pub(crate) auto_target_language: Option<GlobPattern>,
    /// Exporters (YAML merged with the environment).
    pub(crate) export: ExportConfig,
    /// Metrics pipeline: Prometheus path/TTL/buckets, routes, attribute
    /// selection, internal metrics.
    pub(crate) metrics: metrics::MetricsConfig,
    /// `nodejs.enabled` (`OTEL_EBPF_NODEJS_ENABLED`): inject the parent-hint
    /// script into Node.js processes through their inspector.
    pub(crate) nodejs_enabled: bool,
    /// The configuration file that was read, if any.
    pub(crate) config_path: Option<PathBuf>,
    /// Non-fatal findings, see [`Config::log_diagnostics`].
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            trace_printer: TracePrinter::Disabled,
            service_name: None,
            service_namespace: None,
            service_names: Default::default(),
            default_service_name: Default::default(),
            open_port: None,
            auto_target_exe: None,
            executable_path: None,
            target_pids: Vec::new(),
            discovery: DiscoveryConfig::default(),
            ebpf: EbpfConfig::default(),
            shutdown_timeout: Duration::from_secs(10),
            hostname: None,
            auto_target_language: None,
            export: ExportConfig::default(),
            metrics: metrics::MetricsConfig::default(),
            nodejs_enabled: true,
            config_path: None,
            diagnostics: Vec::new(),
        }
    }
}

impl Config {
    /// The selector built from the shortcuts (`open_port`, `auto_target_exe`,
    /// `executable_path`, `target_pids`, `OTEL_EBPF_AUTO_TARGET_LANGUAGE`):
    /// every criterion that is set must match (AND), and matched processes
    /// are named by `service_name` / `service_namespace`. `None` when no
    /// shortcut is set.
    pub(crate) fn shortcut_selector(&self) -> Option<Selector> {
        let s = Selector {
            name: self.service_name.clone(),
            namespace: self.service_namespace.clone(),
            open_ports: self.open_port.clone(),
            exe_path: self.auto_target_exe.clone(),
            exe_path_regexp: self.executable_path.clone(),
            cmd_args: None,
            languages: self.auto_target_language.clone(),
            target_pids: self.target_pids.clone(),
        };
        s.has_criteria().then_some(s)
    }

    /// `discovery.instrument` (in order; the first match wins) followed by
    /// the shortcut selector, if any. `system_wide` is not represented here:
    /// it is a catch-all the matcher applies after these.
    pub(crate) fn effective_instrument_selectors(&self) -> Vec<Selector> {
        let mut out = self.discovery.instrument.clone();
        out.extend(self.shortcut_selector());
        out
    }

    /// `exclude_instrument` followed by `default_exclude_instrument`.
    pub(crate) fn effective_exclude_selectors(&self) -> Vec<Selector> {
        let mut out = self.discovery.exclude_instrument.clone();
        out.extend(self.discovery.default_exclude_instrument.iter().cloned());
        out
    }

    /// Logs [`Config::diagnostics`] through `tracing` (call after
    /// `logging::init`).
    pub(crate) fn log_diagnostics(&self) {
        for d in &self.diagnostics {
            match d.level {
                LogLevel::Debug => tracing::debug!(component = "config", key = %d.key, "{}", d.message),
                LogLevel::Info => tracing::info!(component = "config", key = %d.key, "{}", d.message),
                LogLevel::Warn => tracing::warn!(component = "config", key = %d.key, "{}", d.message),
                LogLevel::Error => tracing::error!(component = "config", key = %d.key, "{}", d.message),
            }
        }
    }

    pub(crate) fn note(&mut self, level: LogLevel, key: impl Into<String>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic { level, key: key.into(), message: message.into() });
    }
}

/// A configuration problem. `Display` is one line that names the key (YAML
/// path or environment variable), the bad value and what is allowed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read configuration file {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("parsing YAML configuration {origin}: {message}")]
    Yaml { origin: String, message: String },
    #[error("unknown key {key:?}{}{}", suggestion_suffix(.suggestion), at_suffix(.at))]
    UnknownKey { key: String, suggestion: Option<String>, at: Option<String> },
    /// A bad value: `key` is a YAML path (`discovery.poll_interval`) or an
    /// environment variable name; `message` contains the value.
    #[error("{key}{}: {message}", at_suffix(.at))]
    Value { key: String, at: Option<String>, message: String },
    /// A bad value in the environment variable `var`.
    #[error("{var}: {source}")]
    Env { var: String, source: env::EnvValueError },
    /// A cross-field problem found by [`validate::validate`].
    #[error("{0}")]
    Invalid(String),
}

fn suggestion_suffix(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default()
}

fn at_suffix(at: &Option<String>) -> String {
    at.as_ref().map(|a| format!(" at {a}")).unwrap_or_default()
}

impl ConfigError {
    /// A bad value from the environment (or any source without a location).
    pub(crate) fn value(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Value { key: key.into(), at: None, message: message.into() }
    }
}

/// What the command line sets. Flags win over the environment, except the
/// configuration file path (see [`config_path`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Overrides {
    /// `--config`.
    pub(crate) config_path: Option<PathBuf>,
}

/// The configuration file to read: `OTEL_EBPF_CONFIG_PATH` (or
/// `BEYLA_CONFIG_PATH`) wins over `--config`, like OBI.
pub(crate) fn config_path(overrides: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env::Env::new(env)
        .get(env::CONFIG_PATH_VAR)
        .map(|(_, v)| PathBuf::from(v))
        .or_else(|| overrides.config_path.clone())
}

/// Builds and validates the configuration: defaults, then the YAML file
/// (`OTEL_EBPF_CONFIG_PATH` or `--config`), then environment variables.
/// `env` looks up one environment variable (injectable for tests).
pub(crate) fn load(overrides: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let cfg = load_unvalidated(overrides, env)?;
    validate::validate(&cfg)?;
    Ok(cfg)
}

/// Like [`load`] without the cross-field checks of [`validate::validate`]
/// (values are still parsed, range-checked and resolved). For `obi check`.
pub(crate) fn load_unvalidated(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let Some(path) = config_path(overrides, env) else {
        return build(None, env);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile { path: path.clone(), source })?;
    let mut cfg = build(Some((&text, &path.display().to_string())), env)?;
    cfg.config_path = Some(path);
    Ok(cfg)
}

/// [`load`] with the process environment; a variable it reads whose value is
/// not UTF-8 is an error naming it.
pub(crate) fn load_from_process_env(overrides: &Overrides) -> Result<Config, ConfigError> {
    load_checked(&env::ProcessEnv::new(|k| std::env::var(k)), |env| load(overrides, env))
}

/// [`load_unvalidated`] with the process environment (for `obi check`).
pub(crate) fn load_unvalidated_from_process_env(overrides: &Overrides) -> Result<Config, ConfigError> {
    load_checked(&env::ProcessEnv::new(|k| std::env::var(k)), |env| load_unvalidated(overrides, env))
}

/// Runs a loader on `env`; a non-UTF-8 value it met wins over its result
/// (which took that variable for unset, and may complain about something else).
fn load_checked(
    env: &env::ProcessEnv,
    loader: impl FnOnce(&dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError>,
) -> Result<Config, ConfigError> {
    let res = loader(&|k| env.lookup(k));
    env.check()?;
    res
}

/// Parses YAML text on top of the defaults, without environment overrides or
/// validation (`${VAR}` references expand to empty strings). For tests and tools.
#[cfg(test)]
pub(crate) fn from_yaml_str(text: &str) -> Result<Config, ConfigError> {
    build(Some((text, "<string>")), &|_| None)
}

/// [`from_yaml_str`] with environment overrides (still without validation).
#[cfg(test)]
pub(crate) fn from_yaml_str_and_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    build(Some((text, "<string>")), env)
}

/// Applies the layers (defaults, the YAML document `(text, origin)`, the
/// environment) and resolves the exporter settings they gathered.
fn build(yaml_doc: Option<(&str, &str)>, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let mut cfg = Config::default();
    let mut otlp_sources = otlp::OtlpSources::default();
    if let Some((text, origin)) = yaml_doc {
        yaml::apply_yaml(&mut cfg, &mut otlp_sources, text, origin, env)?;
    }
    env::apply_env(&mut cfg, &mut otlp_sources, env)?;
    let mut notes = Vec::new();
    (cfg.export.otlp_traces, cfg.export.otlp_metrics) = otlp::resolve(&otlp_sources, &mut notes)?;
    cfg.diagnostics.extend(notes);
    Ok(cfg)
}

#[cfg(test)]
mod tests;
