//! Loader tests: defaults, YAML, environment, precedence, validation.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use super::*;

/// An injectable environment.
fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

fn yaml(text: &str) -> Result<Config, ConfigError> {
    from_yaml_str(text)
}

fn yaml_err(text: &str) -> String {
    yaml(text).unwrap_err().to_string()
}

fn load_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load(&Overrides::default(), &env(pairs))
}

fn temp_yaml(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults_match_obi() {
    let c = Config::default();
    assert_eq!(c.trace_printer, TracePrinter::Disabled);
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.discovery.poll_interval, Duration::from_secs(5));
    assert!(c.discovery.exclude_otel_instrumented_services);
    assert!(!c.discovery.system_wide);
    assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(c.ebpf.capture_size, 1024);
    assert_eq!(c.ebpf.ring_buffer_size, 8 * 1024 * 1024);
    assert_eq!(c.ebpf.wakeup_len, 500);
    assert_eq!(c.ebpf.batch_timeout, Duration::from_millis(100));
    assert_eq!(c.ebpf.http_request_timeout, Duration::ZERO);
    assert_eq!(c.ebpf.context_propagation, ContextPropagation::Disabled);
    assert!(c.effective_instrument_selectors().is_empty());
    assert!(c.diagnostics.is_empty());
}

#[test]
fn default_exclusion_covers_obi_siblings() {
    let c = Config::default();
    assert_eq!(c.discovery.default_exclude_instrument.len(), 1);
    let g = c.discovery.default_exclude_instrument[0].exe_path.as_ref().unwrap();
    for excluded in [
        "/usr/local/bin/obi",
        "/obi-rs",
        "/usr/bin/beyla",
        "/bin/alloy",
        "/ebpf-instrument",
        "/otelcol",
        "/usr/bin/otelcol-contrib",
        "/usr/bin/otelcol-contrib2",
    ] {
        assert!(g.is_match(excluded), "{excluded} should be excluded");
    }
    for kept in ["/usr/bin/python3", "/usr/bin/node", "/opt/otelcol-contrib/bin/app", "/usr/bin/obix"] {
        assert!(!g.is_match(kept), "{kept} should not be excluded");
    }
}

#[test]
fn full_yaml_file() {
    let c = yaml(
        r#"
log_level: debug
log_format: json
trace_printer: text
service_name: frontend
service_namespace: shop
open_port: 8080
auto_target_exe: "*/java"
executable_path: "node$"
target_pids: [10, 20]
shutdown_timeout: 1m30s
discovery:
  poll_interval: 500ms
  exclude_otel_instrumented_services: false
  instrument:
    - open_ports: 80,443,8000-8999
      name: web
      namespace: prod
    - exe_path: "*/python3*"
      cmd_args: "*manage.py*"
      languages: "{python,go}"
    - target_pids: 1234
  exclude_instrument:
    - exe_path: "*/sshd"
  default_exclude_instrument: []
ebpf:
  buffer_sizes:
    http: 2048
  ring_buffer_size: 16MiB
  wakeup_len: 10
  batch_timeout: 50ms
  batch_length: 100
  http_request_timeout: 30s
  btf_path: /var/lib/btf/vmlinux
  context_propagation: headers,tcp
  track_request_headers: true
  db_query_literals: true
attributes:
  instance_id:
    override_hostname: node-1
otel_traces_export:
  endpoint: http://collector:4318/v1/traces
  sampler:
    name: parentbased_traceidratio
    arg: "0.1"
prometheus_export:
  port: 9400
  path: /metrics
routes:
  unmatched: heuristic
"#,
    )
    .unwrap();
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.trace_printer, TracePrinter::Text);
    assert_eq!(c.service_name.as_deref(), Some("frontend"));
    assert_eq!(c.service_namespace.as_deref(), Some("shop"));
    assert_eq!(c.open_port, Some(PortEnum { ranges: vec![(8080, 8080)] }));
    assert!(c.auto_target_exe.as_ref().unwrap().is_match("/usr/lib/jvm/bin/java"));
    assert!(c.executable_path.as_ref().unwrap().is_match("/usr/bin/node"));
    assert_eq!(c.target_pids, vec![10, 20]);
    assert_eq!(c.shutdown_timeout, Duration::from_secs(90));
    assert_eq!(c.discovery.poll_interval, Duration::from_millis(500));
    assert!(!c.discovery.exclude_otel_instrumented_services);
    assert_eq!(c.discovery.instrument.len(), 3);
    let web = &c.discovery.instrument[0];
    assert_eq!(web.name.as_deref(), Some("web"));
    assert_eq!(web.namespace.as_deref(), Some("prod"));
    assert!(web.open_ports.as_ref().unwrap().contains(8443));
    let py = &c.discovery.instrument[1];
    assert!(py.exe_path.as_ref().unwrap().is_match("/usr/bin/python3.11"));
    assert!(py.cmd_args.as_ref().unwrap().is_match("python3 manage.py runserver"));
    assert!(py.languages.as_ref().unwrap().is_match("go"));
    assert_eq!(c.discovery.instrument[2].target_pids, vec![1234]);
    assert_eq!(c.discovery.exclude_instrument.len(), 1);
    assert!(c.discovery.default_exclude_instrument.is_empty());
    assert_eq!(c.ebpf.capture_size, 2048);
    assert_eq!(c.ebpf.ring_buffer_size, 16 << 20);
    assert_eq!(c.ebpf.wakeup_len, 10);
    assert_eq!(c.ebpf.batch_timeout, Duration::from_millis(50));
    assert_eq!(c.ebpf.http_request_timeout, Duration::from_secs(30));
    assert_eq!(c.ebpf.btf_path.as_deref(), Some(std::path::Path::new("/var/lib/btf/vmlinux")));
    assert_eq!(c.ebpf.context_propagation, ContextPropagation::All);
    assert!(c.ebpf.track_request_headers);
    assert!(c.ebpf.db_query_literals);
    assert_eq!(c.hostname.as_deref(), Some("node-1"));
    let traces = c.export.otlp_traces.as_ref().unwrap();
    assert_eq!(traces.endpoint.url, "http://collector:4318/v1/traces");
    assert_eq!(c.export.prometheus_port, Some(9400));
    assert_eq!(traces.sampler, otlp::Sampler { root: otlp::RootSampler::TraceIdRatio(0.1), parent_based: true });
    assert_eq!(c.metrics.routes.unmatched, metrics::Unmatched::Heuristic);
    // batch_length is accepted and noted at debug level.
    assert!(c.diagnostics.iter().any(|d| d.key == "ebpf.batch_length" && d.level == LogLevel::Debug));
    validate::validate(&c).unwrap();
}

#[test]
fn empty_and_comment_only_files_are_defaults() {
    assert_eq!(yaml("").unwrap(), Config::default());
    assert_eq!(yaml("# nothing here\n").unwrap(), Config::default());
    assert_eq!(yaml("discovery:\nebpf:\n").unwrap(), Config::default());
}

#[test]
fn unknown_keys_are_reported_with_path_and_suggestion() {
    let e = yaml_err("discovery:\n  instrument:\n    - open_port: 8080\n");
    assert_eq!(e, "unknown key \"discovery.instrument[0].open_port\" (did you mean \"open_ports\"?) at <string>:3:7");
    let e = yaml_err("trace_printr: text\n");
    assert!(e.starts_with("unknown key \"trace_printr\" (did you mean \"trace_printer\"?)"), "{e}");
    let e = yaml_err("ebpf:\n  wakeup_length: 5\n");
    assert!(e.starts_with("unknown key \"ebpf.wakeup_length\" (did you mean \"wakeup_len\"?)"), "{e}");
    let e = yaml_err("discovery:\n  poll: 5s\n");
    assert!(e.starts_with("unknown key \"discovery.poll\" (did you mean \"poll_interval\"?)"), "{e}");
    let e = yaml_err("services:\n  - open_ports: 80\n");
    assert!(e.starts_with("unknown key \"services\" (did you mean \"discovery.services\"?)"), "{e}");
    let e = yaml_err("zzz_top: 1\n");
    assert_eq!(e, "unknown key \"zzz_top\" at <string>:1:1");
    let e = yaml_err("ebpf:\n  buffer_sizes:\n    htp: 10\n");
    assert!(e.starts_with("unknown key \"ebpf.buffer_sizes.htp\" (did you mean \"http\"?)"), "{e}");
}

#[test]
fn accepted_obi_keys_are_not_errors() {
    let c = yaml(
        "ebpf:\n  high_request_volume: true\n  bpf_debug: false\ndiscovery:\n  skip_go_specific_tracers: true\n\
         network:\n  enable: true\nfilter:\n  application:\n    url_path:\n      not_match: /metrics\n\
         name_resolver:\n  sources: [dns]\ninternal_metrics:\n  exporter: prometheus\nenforce_sys_caps: false\n",
    )
    .unwrap();
    assert!(c.diagnostics.iter().any(|d| d.key == "ebpf.high_request_volume" && d.level == LogLevel::Warn));
    assert!(c.diagnostics.iter().any(|d| d.key == "network" && d.level == LogLevel::Warn));
    assert!(c.diagnostics.iter().any(|d| d.key == "filter" && d.level == LogLevel::Debug));
}

#[test]
fn bad_values_name_the_key_and_location() {
    let e = yaml_err("discovery:\n  poll_interval: 5x\n");
    assert!(
        e.starts_with("discovery.poll_interval at <string>:2:18: invalid duration \"5x\": unknown unit \"x\""),
        "{e}"
    );
    let e = yaml_err("shutdown_timeout: 10\n");
    assert!(e.starts_with("shutdown_timeout at <string>:1:19: invalid duration 10: missing unit"), "{e}");
    let e = yaml_err("open_port: 9000-8000\n");
    assert_eq!(
        e,
        "open_port at <string>:1:12: invalid port range \"9000-8000\". Must be a comma-separated list of numeric \
         ports or port ranges (e.g. 8000-8999): range start 9000 is greater than range end 8000"
    );
    let e = yaml_err("open_port: abc\n");
    assert!(e.starts_with("open_port at <string>:1:12: invalid port range \"abc\""), "{e}");
    let e = yaml_err("trace_printer: fancy\n");
    assert!(e.contains("invalid value for trace_printer: 'fancy'"), "{e}");
    let e = yaml_err("log_level: verbose\n");
    assert!(e.contains("unknown log level specified \"verbose\", choices are [DEBUG, INFO, WARN, ERROR]"), "{e}");
    let e = yaml_err("discovery:\n  system_wide: maybe\n");
    assert!(e.starts_with("discovery.system_wide at <string>:2:16: invalid boolean \"maybe\""), "{e}");
    let e = yaml_err("discovery:\n  instrument:\n    - exe_path: \"[\"\n");
    assert!(e.starts_with("discovery.instrument[0].exe_path at <string>:3:17: invalid glob pattern \"[\""), "{e}");
    let e = yaml_err("discovery:\n  instrument:\n    - name: x\n");
    assert!(e.contains("discovery.instrument[0]") && e.contains("at least one selection criteria"), "{e}");
    let e = yaml_err("discovery:\n  instrument: {exe_path: x}\n");
    assert!(e.contains("expected a list, found a mapping"), "{e}");
    let e = yaml_err("ebpf:\n  wakeup_len: -1\n");
    assert!(e.starts_with("ebpf.wakeup_len at <string>:2:15: invalid number -1"), "{e}");
    let e = yaml_err("target_pids: [1, x]\n");
    assert!(e.starts_with("target_pids[1] at <string>:1:18: invalid process id \"x\""), "{e}");
    let e = yaml_err("executable_path: \"*node\"\n");
    assert!(e.starts_with("executable_path at <string>:1:18: invalid regular expression \"*node\""), "{e}");
    let e = yaml_err("prometheus_export:\n  port: 99999\n");
    assert!(e.starts_with("prometheus_export.port at <string>:2:9: invalid port 99999"), "{e}");
    let e = yaml_err("- open_port: 80\n");
    assert!(e.starts_with("configuration file at <string>:1:1: expected a mapping, found a list"), "{e}");
    let e = yaml_err("otel_traces_export: yes\n");
    assert!(e.contains("expected a mapping"), "{e}");
}

#[test]
fn yaml_syntax_errors() {
    let e = yaml_err("discovery: [\n");
    assert!(e.starts_with("parsing YAML configuration <string>: "), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn yaml_scalar_forms() {
    // open_port as an integer; poll_interval 0 means the default, like OBI.
    let c = yaml("open_port: 8080\ndiscovery:\n  poll_interval: 0\n").unwrap();
    assert_eq!(c.open_port.unwrap().ranges, vec![(8080, 8080)]);
    assert_eq!(c.discovery.poll_interval, Duration::from_secs(5));
    // Numbers in string fields keep their spelling.
    let c = yaml("service_name: 1.10\nservice_namespace: 007\n").unwrap();
    assert_eq!(c.service_name.as_deref(), Some("1.10"));
    assert_eq!(c.service_namespace.as_deref(), Some("007"));
    // yes/no are strings, except in boolean fields.
    let c = yaml("service_name: yes\ndiscovery:\n  system_wide: yes\n").unwrap();
    assert_eq!(c.service_name.as_deref(), Some("yes"));
    assert!(c.discovery.system_wide);
    // Empty strings unset optional values.
    let c =
        yaml("service_name: \"\"\ndiscovery:\n  instrument:\n    - exe_path: \"\"\n      open_ports: 80\n").unwrap();
    assert_eq!(c.service_name, None);
    assert_eq!(c.discovery.instrument[0].exe_path, None);
    // A comma string for target_pids; buffer size 0 means the default.
    let c = yaml("target_pids: \"1, 2\"\nebpf:\n  buffer_sizes:\n    http: 0\n").unwrap();
    assert_eq!(c.target_pids, vec![1, 2]);
    assert_eq!(c.ebpf.capture_size, DEFAULT_CAPTURE_SIZE);
}

#[test]
fn legacy_services_use_regexes() {
    let c = yaml("discovery:\n  services:\n    - exe_path: \"(node|python)$\"\n      name: svc\n  exclude_services:\n    - open_ports: 22\n")
        .unwrap();
    assert_eq!(c.discovery.instrument.len(), 1);
    let s = &c.discovery.instrument[0];
    assert!(s.exe_path.is_none());
    assert!(s.exe_path_regexp.as_ref().unwrap().is_match("/usr/bin/node"));
    assert_eq!(s.name.as_deref(), Some("svc"));
    assert_eq!(c.discovery.exclude_instrument.len(), 1);
    // instrument wins over services, like OBI.
    let c = yaml("discovery:\n  instrument:\n    - open_ports: 80\n  services:\n    - exe_path: node\n").unwrap();
    assert_eq!(c.discovery.instrument.len(), 1);
    assert!(c.discovery.instrument[0].open_ports.is_some());
    assert!(c.diagnostics.iter().any(|d| d.level == LogLevel::Warn && d.key == "discovery.services"));
    // Regex syntax errors are reported.
    let e = yaml_err("discovery:\n  services:\n    - exe_path: \"(\"\n");
    assert!(e.starts_with("discovery.services[0].exe_path"), "{e}");
}

#[test]
fn kubernetes_selectors() {
    let e = yaml_err("discovery:\n  instrument:\n    - k8s_namespace: shop\n");
    assert!(e.starts_with("discovery.instrument[0].k8s_namespace at <string>:3:22: Kubernetes"), "{e}");
    // In default lists such entries are dropped, so OBI's defaults can be pasted.
    let c = yaml(
        "discovery:\n  default_exclude_instrument:\n    - exe_path: \"{*beyla,*alloy}\"\n    - k8s_namespace: kube-system\n",
    )
    .unwrap();
    assert_eq!(c.discovery.default_exclude_instrument.len(), 1);
    // containers_only: false is harmless.
    let c = yaml("discovery:\n  instrument:\n    - exe_path: x\n      containers_only: false\n").unwrap();
    assert_eq!(c.discovery.instrument.len(), 1);
}

#[test]
fn env_overrides_yaml() {
    let f = temp_yaml("trace_printer: json\nopen_port: 80\nlog_level: ERROR\ndiscovery:\n  poll_interval: 1s\n");
    let path = f.path().to_str().unwrap();
    let c = load(
        &Overrides { config_path: Some(f.path().to_path_buf()) },
        &env(&[("OTEL_EBPF_OPEN_PORT", "9090"), ("OTEL_EBPF_LOG_LEVEL", "warn")]),
    )
    .unwrap();
    assert_eq!(c.open_port.unwrap().ranges, vec![(9090, 9090)]);
    assert_eq!(c.log_level, LogLevel::Warn);
    assert_eq!(c.trace_printer, TracePrinter::Json);
    assert_eq!(c.discovery.poll_interval, Duration::from_secs(1));
    assert_eq!(c.config_path.as_deref().and_then(|p| p.to_str()), Some(path));
}

#[test]
fn config_path_env_wins_over_flag() {
    let from_flag = temp_yaml("trace_printer: text\nopen_port: 1\n");
    let from_env = temp_yaml("trace_printer: json\nopen_port: 2\n");
    let args = Overrides { config_path: Some(from_flag.path().to_path_buf()) };
    let c = load(&args, &env(&[])).unwrap();
    assert_eq!(c.trace_printer, TracePrinter::Text);
    let c = load(&args, &env(&[("OTEL_EBPF_CONFIG_PATH", from_env.path().to_str().unwrap())])).unwrap();
    assert_eq!(c.trace_printer, TracePrinter::Json);
    let c = load(&args, &env(&[("BEYLA_CONFIG_PATH", from_env.path().to_str().unwrap())])).unwrap();
    assert_eq!(c.trace_printer, TracePrinter::Json);
    let e = load(&Overrides { config_path: Some("/nonexistent/obi.yml".into()) }, &env(&[])).unwrap_err();
    assert!(e.to_string().starts_with("cannot read configuration file /nonexistent/obi.yml: "), "{e}");
}

#[test]
fn file_variables_are_expanded() {
    let f = temp_yaml("open_port: ${APP_PORT}\nservice_name: \"${SVC}-${UNSET_VAR}x\"\ntrace_printer: text\n");
    let c = load(
        &Overrides { config_path: Some(f.path().to_path_buf()) },
        &env(&[("APP_PORT", "8000-8999"), ("SVC", "checkout")]),
    )
    .unwrap();
    assert_eq!(c.open_port.unwrap().ranges, vec![(8000, 8999)]);
    assert_eq!(c.service_name.as_deref(), Some("checkout-x"));
}

#[test]
fn beyla_variables_are_aliases() {
    let c = load_env(&[("BEYLA_OPEN_PORT", "8080"), ("BEYLA_TRACE_PRINTER", "text")]).unwrap();
    assert_eq!(c.open_port.unwrap().ranges, vec![(8080, 8080)]);
    assert_eq!(c.trace_printer, TracePrinter::Text);
    // BEYLA_OTEL_X maps to OTEL_EBPF_X too.
    let c = load_env(&[("BEYLA_OTEL_OPEN_PORT", "81"), ("OTEL_EBPF_TRACE_PRINTER", "text")]).unwrap();
    assert_eq!(c.open_port.unwrap().ranges, vec![(81, 81)]);
    // OTEL_EBPF_X wins over BEYLA_X.
    let c = load_env(&[("BEYLA_OPEN_PORT", "1"), ("OTEL_EBPF_OPEN_PORT", "2"), ("OTEL_EBPF_TRACE_PRINTER", "text")])
        .unwrap();
    assert_eq!(c.open_port.unwrap().ranges, vec![(2, 2)]);
    // BEYLA_SERVICE_NAME -> OTEL_EBPF_SERVICE_NAME, the fallback of OTEL_SERVICE_NAME.
    let c =
        load_env(&[("BEYLA_SERVICE_NAME", "old"), ("OTEL_EBPF_OPEN_PORT", "2"), ("OTEL_EBPF_TRACE_PRINTER", "text")])
            .unwrap();
    assert_eq!(c.service_name.as_deref(), Some("old"));
    // Errors name the variable that was actually set.
    let e = load_env(&[("BEYLA_OPEN_PORT", "abc")]).unwrap_err().to_string();
    assert!(e.starts_with("BEYLA_OPEN_PORT: invalid port range \"abc\""), "{e}");
}

#[test]
fn env_variables() {
    let c = load_env(&[
        ("OTEL_EBPF_TRACE_PRINTER", "json_indent"),
        ("OTEL_EBPF_LOG_LEVEL", "debug"),
        ("OTEL_EBPF_LOG_FORMAT", "json"),
        ("OTEL_GO_AUTO_TARGET_EXE", "*/server"),
        ("OTEL_EBPF_EXECUTABLE_PATH", "srv"),
        ("OTEL_EBPF_TARGET_PID", "1,2"),
        ("OTEL_SERVICE_NAME", "primary"),
        ("OTEL_EBPF_SERVICE_NAME", "fallback"),
        ("OTEL_EBPF_SERVICE_NAMESPACE", "ns"),
        ("OTEL_EBPF_DISCOVERY_POLL_INTERVAL", "2s"),
        ("OTEL_EBPF_EXCLUDE_OTEL_INSTRUMENTED_SERVICES", "F"),
        ("OTEL_EBPF_SHUTDOWN_TIMEOUT", "3s"),
        ("OTEL_EBPF_HOSTNAME", "h1"),
        ("OTEL_EBPF_BPF_WAKEUP_LEN", "7"),
        ("OTEL_EBPF_BPF_BATCH_TIMEOUT", "1s"),
        ("OTEL_EBPF_BPF_BATCH_LENGTH", "10"),
        ("OTEL_EBPF_BPF_HTTP_REQUEST_TIMEOUT", "15s"),
        ("OTEL_EBPF_BPF_BUFFER_SIZE_HTTP", "4096"),
        ("OTEL_EBPF_BPF_RING_BUFFER_SIZE", "1MiB"),
        ("OTEL_EBPF_BTF_PATH", "/btf"),
        ("OTEL_EBPF_BPF_CONTEXT_PROPAGATION", "headers"),
        ("OTEL_EBPF_BPF_TRACK_REQUEST_HEADERS", "1"),
        ("OTEL_EBPF_AUTO_TARGET_LANGUAGE", "go"),
        ("OTEL_EBPF_PROMETHEUS_PORT", "9400"),
    ])
    .unwrap();
    assert_eq!(c.trace_printer, TracePrinter::JsonIndent);
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.log_format, LogFormat::Json);
    assert!(c.auto_target_exe.as_ref().unwrap().is_match("/app/server"));
    assert_eq!(c.executable_path.as_ref().unwrap().source, "srv");
    assert_eq!(c.target_pids, vec![1, 2]);
    assert_eq!(c.service_name.as_deref(), Some("primary"));
    assert_eq!(c.service_namespace.as_deref(), Some("ns"));
    assert_eq!(c.discovery.poll_interval, Duration::from_secs(2));
    assert!(!c.discovery.exclude_otel_instrumented_services);
    assert_eq!(c.shutdown_timeout, Duration::from_secs(3));
    assert_eq!(c.hostname.as_deref(), Some("h1"));
    assert_eq!(c.ebpf.wakeup_len, 7);
    assert_eq!(c.ebpf.batch_timeout, Duration::from_secs(1));
    assert_eq!(c.ebpf.http_request_timeout, Duration::from_secs(15));
    assert_eq!(c.ebpf.capture_size, 4096);
    assert_eq!(c.ebpf.ring_buffer_size, 1 << 20);
    assert_eq!(c.ebpf.btf_path.as_deref(), Some(std::path::Path::new("/btf")));
    assert_eq!(c.ebpf.context_propagation, ContextPropagation::Headers);
    assert!(c.ebpf.track_request_headers);
    assert!(c.auto_target_language.as_ref().unwrap().is_match("go"));
    assert_eq!(c.export.prometheus_port, Some(9400));
    assert!(c.diagnostics.iter().any(|d| d.key == "OTEL_EBPF_BPF_BATCH_LENGTH"));

    let c = load_env(&[
        ("OTEL_EBPF_SERVICE_NAME", "fallback"),
        ("OTEL_EBPF_OPEN_PORT", "1"),
        ("OTEL_EBPF_TRACE_PRINTER", "text"),
    ])
    .unwrap();
    assert_eq!(c.service_name.as_deref(), Some("fallback"));
}

#[test]
fn empty_env_values_are_unset() {
    let e = load_env(&[("OTEL_EBPF_OPEN_PORT", ""), ("OTEL_EBPF_TRACE_PRINTER", "text")]).unwrap_err();
    assert!(e.to_string().starts_with("missing to enable application discovery"), "{e}");
}

#[test]
fn env_error_messages() {
    let err = |pairs: &[(&str, &str)]| load_env(pairs).unwrap_err().to_string();
    assert_eq!(
        err(&[("OTEL_EBPF_TRACE_PRINTER", "x")]),
        "OTEL_EBPF_TRACE_PRINTER: invalid value for trace_printer: 'x' (valid values: disabled, text, json, json_indent, counter)"
    );
    assert_eq!(
        err(&[("OTEL_EBPF_LOG_LEVEL", "TRACE")]),
        "OTEL_EBPF_LOG_LEVEL: unknown log level specified \"TRACE\", choices are [DEBUG, INFO, WARN, ERROR]"
    );
    assert!(err(&[("OTEL_EBPF_LOG_FORMAT", "xml")]).starts_with("OTEL_EBPF_LOG_FORMAT: unknown log format"));
    assert_eq!(
        err(&[("OTEL_EBPF_OPEN_PORT", "9000-8000")]),
        "OTEL_EBPF_OPEN_PORT: invalid port range \"9000-8000\". Must be a comma-separated list of numeric ports or \
         port ranges (e.g. 8000-8999): range start 9000 is greater than range end 8000"
    );
    assert!(err(&[("OTEL_EBPF_OPEN_PORT", "70000")]).contains("port 70000 is out of range"));
    assert!(err(&[("OTEL_EBPF_SYSTEM_WIDE", "yes")]).starts_with("OTEL_EBPF_SYSTEM_WIDE: invalid boolean \"yes\""));
    assert!(
        err(&[("OTEL_EBPF_DISCOVERY_POLL_INTERVAL", "5")])
            .starts_with("OTEL_EBPF_DISCOVERY_POLL_INTERVAL: invalid duration \"5\": missing unit")
    );
    assert!(err(&[("OTEL_EBPF_TARGET_PID", "12,abc")]).starts_with("OTEL_EBPF_TARGET_PID: invalid process id"));
    assert!(err(&[("OTEL_EBPF_AUTO_TARGET_EXE", "[")]).starts_with("OTEL_EBPF_AUTO_TARGET_EXE: invalid glob"));
    assert!(err(&[("OTEL_EBPF_EXECUTABLE_PATH", "*node")]).contains("use OTEL_EBPF_AUTO_TARGET_EXE for globs"));
    assert!(
        err(&[("OTEL_EBPF_BPF_RING_BUFFER_SIZE", "huge")]).starts_with("OTEL_EBPF_BPF_RING_BUFFER_SIZE: invalid size")
    );
    assert!(err(&[("OTEL_EBPF_PROMETHEUS_PORT", "http")]).starts_with("OTEL_EBPF_PROMETHEUS_PORT: invalid port"));
}

#[test]
fn shortcut_selector_and_effective_selectors() {
    let c = load_env(&[
        ("OTEL_EBPF_OPEN_PORT", "8080"),
        ("OTEL_EBPF_AUTO_TARGET_EXE", "*/java"),
        ("OTEL_EBPF_TARGET_PID", "42"),
        ("OTEL_SERVICE_NAME", "orders"),
        ("OTEL_EBPF_SERVICE_NAMESPACE", "shop"),
        ("OTEL_EBPF_TRACE_PRINTER", "text"),
    ])
    .unwrap();
    let sels = c.effective_instrument_selectors();
    assert_eq!(sels.len(), 1);
    let s = &sels[0];
    assert_eq!(s.name.as_deref(), Some("orders"));
    assert_eq!(s.namespace.as_deref(), Some("shop"));
    assert_eq!(s.open_ports.as_ref().unwrap().ranges, vec![(8080, 8080)]);
    assert_eq!(s.exe_path.as_ref().unwrap().source, "*/java");
    assert_eq!(s.target_pids, vec![42]);
    assert!(s.exe_path_regexp.is_none() && s.cmd_args.is_none() && s.languages.is_none());

    // The shortcut entry comes after discovery.instrument.
    let f = temp_yaml("discovery:\n  instrument:\n    - exe_path: \"*/python*\"\n");
    let c = load(
        &Overrides { config_path: Some(f.path().to_path_buf()) },
        &env(&[("OTEL_EBPF_OPEN_PORT", "80"), ("OTEL_EBPF_TRACE_PRINTER", "text")]),
    )
    .unwrap();
    let sels = c.effective_instrument_selectors();
    assert_eq!(sels.len(), 2);
    assert!(sels[0].exe_path.is_some() && sels[0].open_ports.is_none());
    assert!(sels[1].open_ports.is_some() && sels[1].exe_path.is_none());
    assert_eq!(sels[1].name, None);
    assert_eq!(c.effective_exclude_selectors().len(), 1);
}

#[test]
fn validation_requires_a_selection() {
    let e = load_env(&[("OTEL_EBPF_TRACE_PRINTER", "text")]).unwrap_err().to_string();
    assert!(e.starts_with("missing to enable application discovery"), "{e}");
    for var in ["OTEL_EBPF_OPEN_PORT", "OTEL_EBPF_AUTO_TARGET_EXE", "discovery.instrument"] {
        assert!(e.contains(var), "{var} not named in: {e}");
    }
    // Each way of selecting processes is enough.
    for sel in [
        ("OTEL_EBPF_OPEN_PORT", "80"),
        ("OTEL_EBPF_AUTO_TARGET_EXE", "*"),
        ("OTEL_EBPF_EXECUTABLE_PATH", "x"),
        ("OTEL_EBPF_TARGET_PID", "1"),
        ("OTEL_EBPF_SYSTEM_WIDE", "true"),
        ("OTEL_EBPF_AUTO_TARGET_LANGUAGE", "java"),
    ] {
        load_env(&[sel, ("OTEL_EBPF_TRACE_PRINTER", "text")]).unwrap();
    }
}

#[test]
fn validation_system_wide_conflicts() {
    let e = load_env(&[
        ("OTEL_EBPF_SYSTEM_WIDE", "true"),
        ("OTEL_EBPF_OPEN_PORT", "80"),
        ("OTEL_EBPF_TRACE_PRINTER", "text"),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("you can't use OTEL_EBPF_SYSTEM_WIDE if any of"), "{e}");
}

#[test]
fn validation_requires_an_output() {
    let e = load_env(&[("OTEL_EBPF_OPEN_PORT", "80")]).unwrap_err().to_string();
    assert!(e.starts_with("you need to define at least one exporter: trace_printer, otel_metrics_export"), "{e}");
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EBPF_PROMETHEUS_PORT",
    ] {
        assert!(e.contains(var), "{var} not named in: {e}");
        // OTLP endpoints are checked at load time (the metrics exporter resolves them).
        let value = if var.starts_with("OTEL_EXPORTER") { "http://c:4318" } else { "4318" };
        load_env(&[("OTEL_EBPF_OPEN_PORT", "80"), (var, value)]).unwrap();
    }
    // Prometheus port 0 is "off".
    assert!(load_env(&[("OTEL_EBPF_OPEN_PORT", "80"), ("OTEL_EBPF_PROMETHEUS_PORT", "0")]).is_err());
    // YAML exporter sections count.
    let f = temp_yaml("otel_metrics_export:\n  endpoint: http://c:4318\n");
    load(&Overrides { config_path: Some(f.path().to_path_buf()) }, &env(&[("OTEL_EBPF_OPEN_PORT", "80")])).unwrap();
    // A section without endpoint does not.
    let f = temp_yaml("otel_traces_export:\n  sampler:\n    name: always_on\n");
    assert!(
        load(&Overrides { config_path: Some(f.path().to_path_buf()) }, &env(&[("OTEL_EBPF_OPEN_PORT", "80")])).is_err()
    );
}

/// `tcp` alone is rejected (obi-rs has no TCP-option carrier: it would
/// propagate nothing); `all` and `headers,tcp` inject headers only.
#[test]
fn tcp_context_propagation_is_rejected() {
    let base = [("OTEL_EBPF_OPEN_PORT", "80"), ("OTEL_EBPF_TRACE_PRINTER", "text")];
    let with = |v: &str| load_env(&[base[0], base[1], ("OTEL_EBPF_BPF_CONTEXT_PROPAGATION", v)]);
    for v in ["tcp", "tcp,ip", " tcp "] {
        let e = with(v).unwrap_err().to_string();
        assert!(e.contains("OTEL_EBPF_BPF_CONTEXT_PROPAGATION") && e.contains("TCP options"), "{v}: {e}");
    }
    for v in ["all", "headers,tcp"] {
        let c = with(v).unwrap();
        assert!(c.ebpf.context_propagation.injects_headers(), "{v}");
    }
    let f = temp_yaml("ebpf:\n  context_propagation: tcp\n");
    let e = load(&Overrides { config_path: Some(f.path().to_path_buf()) }, &env(&base)).unwrap_err().to_string();
    assert!(e.contains("ebpf.context_propagation"), "{e}");
}

#[test]
fn validation_of_ebpf_sizes() {
    let base = [("OTEL_EBPF_OPEN_PORT", "80"), ("OTEL_EBPF_TRACE_PRINTER", "text")];
    let with = |extra: (&str, &str)| {
        let mut v = base.to_vec();
        v.push(extra);
        load_env(&v)
    };
    // OBI allows up to 65536: larger values are capped with a warning, not rejected.
    let c = with(("OTEL_EBPF_BPF_BUFFER_SIZE_HTTP", "8192")).unwrap();
    assert_eq!(c.ebpf.capture_size, 4096);
    assert!(c.diagnostics.iter().any(|d| d.key == "OTEL_EBPF_BPF_BUFFER_SIZE_HTTP" && d.level == LogLevel::Warn));
    let c = yaml("ebpf:\n  buffer_sizes:\n    http: 65536\n").unwrap();
    assert_eq!(c.ebpf.capture_size, 4096);
    // The final check still guards programmatic configurations.
    let mut c =
        Config { open_port: PortEnum::parse("80").ok(), trace_printer: TracePrinter::Text, ..Config::default() };
    c.ebpf.capture_size = 8192;
    let e = validate::validate(&c).unwrap_err().to_string();
    assert!(e.contains("ebpf.buffer_sizes.http") && e.contains("8192") && e.contains("4096"), "{e}");
    let e = with(("OTEL_EBPF_BPF_RING_BUFFER_SIZE", "5000")).unwrap_err().to_string();
    assert!(e.contains("power of two"), "{e}");
    let e = with(("OTEL_EBPF_BPF_RING_BUFFER_SIZE", "2048")).unwrap_err().to_string();
    assert!(e.contains("at least 4096"), "{e}");
    with(("OTEL_EBPF_BPF_RING_BUFFER_SIZE", "4096")).unwrap();
    let e = with(("OTEL_EBPF_BPF_BATCH_TIMEOUT", "0s")).unwrap_err().to_string();
    assert!(e.contains("ebpf.batch_timeout"), "{e}");
}

#[test]
fn full_yaml_file_validates() {
    let c = yaml("open_port: 80\ntrace_printer: text\nebpf:\n  ring_buffer_size: 65536\n").unwrap();
    validate::validate(&c).unwrap();
}

#[test]
fn env_table_is_consistent() {
    let mut seen = std::collections::HashSet::new();
    for v in env::ENV_VARS {
        assert!(seen.insert(v.name), "duplicate {}", v.name);
        assert!(!v.help.is_empty());
    }
    for yaml_key in env::ENV_VARS.iter().map(|v| v.yaml).filter(|k| !k.is_empty()) {
        let root = yaml_key.split('.').next().unwrap();
        assert!(
            yaml::supported_keys().iter().any(|k| k == yaml_key || k == root),
            "{yaml_key} is not a supported YAML key"
        );
    }
}

#[test]
fn otlp_metrics_settings_are_checked_at_load() {
    let base = [("OTEL_EBPF_OPEN_PORT", "80"), ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://c:4318/v1/metrics")];
    let with = |extra: (&'static str, &'static str)| {
        let mut v = base.to_vec();
        v.push(extra);
        load_env(&v)
    };
    let c = load_env(&base).unwrap();
    let s = c.export.otlp_metrics.unwrap();
    assert_eq!(s.interval, std::time::Duration::from_secs(60));
    assert_eq!(s.endpoint.url.to_string(), "http://c:4318/v1/metrics");
    let c = with(("OTEL_METRIC_EXPORT_INTERVAL", "1500")).unwrap();
    assert_eq!(c.export.otlp_metrics.unwrap().interval.as_millis(), 1500);
    for (var, value) in [
        ("OTEL_METRIC_EXPORT_INTERVAL", "1s"),
        ("OTEL_EBPF_METRICS_INTERVAL", "0s"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "thrift"),
        ("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "base2_exponential_bucket_histogram"),
        ("OTEL_EBPF_METRICS_INSTRUMENTATIONS", "htp"),
    ] {
        let e = with((var, value)).unwrap_err().to_string();
        assert!(e.starts_with(var), "{var}={value}: {e}");
    }
    let e = load_env(&[("OTEL_EBPF_OPEN_PORT", "80"), ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "c:4318")])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"), "{e}");
}

#[test]
fn nodejs_injection_is_on_by_default_and_switchable() {
    assert!(Config::default().nodejs_enabled);
    assert!(!yaml("nodejs:\n  enabled: false\n").unwrap().nodejs_enabled);
    assert!(yaml("nodejs:\n  enabled: true\n").unwrap().nodejs_enabled);
    assert!(
        !load_env(&[
            ("OTEL_EBPF_OPEN_PORT", "80"),
            ("OTEL_EBPF_TRACE_PRINTER", "text"),
            ("OTEL_EBPF_NODEJS_ENABLED", "false")
        ])
        .unwrap()
        .nodejs_enabled
    );
    assert!(yaml_err("nodejs:\n  enabled: maybe\n").contains("nodejs.enabled"));
}

/// A variable set to bytes that are not UTF-8 is named in the error, not
/// taken for unset (which gave "you need to define at least one exporter").
#[test]
fn non_utf8_values_are_named_not_taken_for_unset() {
    use std::os::unix::ffi::OsStringExt;
    let read: env::ReadVar = |k| match k {
        "OTEL_EBPF_OPEN_PORT" => Ok("80".into()),
        "OTEL_EBPF_TRACE_PRINTER" => {
            Err(std::env::VarError::NotUnicode(std::ffi::OsString::from_vec(b"te\xffxt".to_vec())))
        }
        _ => Err(std::env::VarError::NotPresent),
    };
    let process = env::ProcessEnv::new(read);
    let e = load_checked(&process, |env| load(&Overrides::default(), env)).unwrap_err().to_string();
    assert!(e.starts_with("OTEL_EBPF_TRACE_PRINTER: the value is not valid UTF-8"), "{e}");
    assert!(e.contains(r#""te\xFFxt""#), "{e}");
    // Valid values load as before.
    let ok: env::ReadVar = |k| match k {
        "OTEL_EBPF_OPEN_PORT" => Ok("80".into()),
        "OTEL_EBPF_TRACE_PRINTER" => Ok("text".into()),
        _ => Err(std::env::VarError::NotPresent),
    };
    let process = env::ProcessEnv::new(ok);
    load_checked(&process, |env| load(&Overrides::default(), env)).unwrap();
}
