//! OTLP trace export end to end: real instrumented HTTP traffic, the real
//! agent and real eBPF, and a real OTLP receiver (tests/apps/otlp_receiver.py,
//! on the official `opentelemetry-proto` + `grpcio` packages) over gRPC,
//! http/protobuf and http/json. Runs as root (see tests/common::require_root).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn receiver(grpc: Option<u16>, http: Option<u16>) -> Proc {
    receiver_with(grpc, http, None)
}

/// `tls`: certificate and key files.
fn receiver_with(grpc: Option<u16>, http: Option<u16>, tls: Option<(&Path, &Path)>) -> Proc {
    let mut cmd = Command::new(venv_python());
    cmd.arg("-u").arg(apps_dir().join("otlp_receiver.py"));
    if let Some((cert, key)) = tls {
        cmd.arg("--tls").arg(cert).arg(key);
    }
    if let Some(p) = grpc {
        cmd.args(["--grpc", &p.to_string()]);
    }
    if let Some(p) = http {
        cmd.args(["--http", &p.to_string()]);
    }
    start_server("otlp-receiver", &mut cmd)
}

/// Spans the receiver printed so far.
fn received(rx: &Proc) -> Vec<Value> {
    rx.lines().iter().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn wait_received(rx: &Proc, n: usize, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let found: Vec<Value> = received(rx).into_iter().filter(|s| pred(s)).collect();
        if found.len() >= n || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn url_path(s: &Value) -> &str {
    s["attributes"]["url.path"].as_str().unwrap_or("")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

/// The agent's log line with this message.
fn log_line(agent: &Agent, msg: &str) -> Option<String> {
    let needle = format!("msg=\"{msg}\"");
    let plain = format!("msg={msg} ");
    agent.proc.lines().into_iter().find(|l| l.contains(&needle) || l.contains(&plain))
}

/// `key=value` (or `key="value"`) from a logfmt line.
fn logfmt<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(&format!(" {key}=")).unwrap_or_else(|| panic!("no {key} in {line}")) + key.len() + 2;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        &quoted[..quoted.find('"').unwrap()]
    } else {
        rest.split(' ').next().unwrap()
    }
}

/// Checks the spans of `GET /status/200`, `GET /status/503` and
/// `POST /echo` (11 bytes) against a python server named `frontend` in
/// namespace `shop`, and curl's client spans, as received over `transport`.
fn check_http_spans(agent: &Agent, rx: &Proc, server: &Proc, port: u16, transport: &str) {
    let is_server = |s: &Value| s["kind"] == "SPAN_KIND_SERVER" && s["attributes"]["server.port"] == port;
    let spans = wait_received(rx, 3, WAIT, is_server);
    assert_eq!(spans.len(), 3, "{spans:#?}\nagent: {:#?}", agent.proc.lines());
    let printed = agent.wait_spans(3, WAIT, |s| is_type(s, "HTTP") && host_port(s) == port);

    let by_path = |p: &str| spans.iter().find(|s| url_path(s) == p).unwrap_or_else(|| panic!("no {p}: {spans:#?}"));
    let ok = by_path("/status/200");
    assert_eq!(ok["transport"], transport);
    // No `routes` section: the heuristic route decorator names the span.
    assert_eq!(ok["name"], "GET /status/*");
    assert_eq!(ok["status"]["code"], "STATUS_CODE_UNSET");
    assert_eq!(
        ok["attributes"],
        serde_json::json!({
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "url.path": "/status/200",
            "url.scheme": "http",
            "client.address": "127.0.0.1",
            "server.address": "frontend",
            "server.port": port,
            "http.request.body.size": 0,
            "http.response.body.size": "status 200\n".len(),
            "http.route": "/status/*",
        })
    );
    let host = hostname();
    let mut resource = ok["resource"].clone();
    let host_id = resource.as_object_mut().unwrap().remove("host.id");
    if let Ok(id) = std::fs::read_to_string("/etc/machine-id") {
        assert_eq!(host_id.unwrap(), id.trim());
    }
    assert_eq!(
        resource,
        serde_json::json!({
            "service.name": "frontend",
            "service.namespace": "shop",
            "service.instance.id": format!("{host}:{}", server.pid()),
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry-ebpf-instrumentation",
            "telemetry.sdk.version": env!("CARGO_PKG_VERSION"),
            "host.name": host,
            "process.pid": server.pid(),
        })
    );
    assert_eq!(ok["scope"]["name"], "github.com/open-telemetry/opentelemetry-ebpf-instrumentation");
    // Same ids and times as the trace printer shows for that request.
    let p = printed.iter().find(|s| attr(s, "url") == "/status/200").expect("printed /status/200");
    assert_eq!(ok["traceId"], field(p, "traceID"));
    // A request that waited 1 ms or more before its handler read it is split
    // as OBI splits it: the span id client calls point at moves to the
    // `processing` child.
    let children: Vec<Value> = received(rx)
        .into_iter()
        .filter(|s| s["parentSpanId"] == ok["spanId"] && s["traceId"] == ok["traceId"])
        .collect();
    if children.is_empty() {
        assert_eq!(ok["spanId"], field(p, "spanID"));
    } else {
        let names: Vec<&str> = children.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(children.len(), 2, "{names:?}");
        let processing = children.iter().find(|c| c["name"] == "processing").expect("a processing child");
        assert!(names.contains(&"in queue"), "{names:?}");
        assert_eq!(processing["spanId"], field(p, "spanID"));
        assert_eq!((processing["start"].as_u64().unwrap() / 1000).to_string(), field(p, "handlerStart"));
    }
    let parent = field(p, "parentSpanID");
    assert_eq!(ok["parentSpanId"], if parent.chars().all(|c| c == '0') { "" } else { parent });
    // The printer shows microseconds.
    assert_eq!((ok["start"].as_u64().unwrap() / 1000).to_string(), field(p, "start"));
    assert_eq!((ok["end"].as_u64().unwrap() / 1000).to_string(), field(p, "end"));
    assert_eq!(ok["traceId"].as_str().unwrap().len(), 32);
    assert_eq!(ok["spanId"].as_str().unwrap().len(), 16);
    assert!(ok["end"].as_u64() >= ok["start"].as_u64());

    let err = by_path("/status/503");
    assert_eq!(err["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(err["attributes"]["http.response.status_code"], 503);

    let post = by_path("/echo");
    assert_eq!(post["name"], "POST /echo");
    assert_eq!(post["attributes"]["http.request.method"], "POST");
    assert_eq!(post["attributes"]["http.request.body.size"], 11);

    // curl's client spans.
    let clients =
        wait_received(rx, 3, WAIT, |s| s["kind"] == "SPAN_KIND_CLIENT" && s["attributes"]["server.port"] == port);
    assert_eq!(clients.len(), 3, "{clients:#?}");
    let c = clients.iter().find(|s| s["attributes"]["http.response.status_code"] == 503).unwrap();
    assert_eq!(c["name"], "GET /status/*");
    assert_eq!(c["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(
        c["attributes"],
        serde_json::json!({
            "http.request.method": "GET",
            "http.response.status_code": 503,
            "url.full": format!("http://127.0.0.1:{port}/status/503"),
            "http.scheme": "http",
            "server.address": "127.0.0.1",
            "server.port": port,
            "http.request.body.size": 0,
            "http.response.body.size": "status 503\n".len(),
            // The server is traced on this host and answered before: named.
            "peer.service": "frontend",
        })
    );
    assert_eq!(c["resource"]["service.name"], "curl");
    assert_eq!(c["resource"]["telemetry.sdk.language"], "generic");
}

fn http_traffic(port: u16) {
    curl(&[&format!("http://127.0.0.1:{port}/status/200")]);
    curl(&[&format!("http://127.0.0.1:{port}/status/503")]);
    curl(&["-X", "POST", "--data-binary", "hello world", &format!("http://127.0.0.1:{port}/echo")]);
}

fn selection(port: u16) -> String {
    format!(
        "discovery:\n  instrument:\n    - open_ports: {port}\n      name: frontend\n      namespace: shop\n    - exe_path: '*/curl'\n"
    )
}

/// gRPC, as the story's user runs it: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT +
/// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc, with a header.
#[test]
fn grpc_export_of_real_http_traffic() {
    require_root();
    let (port, grpc) = (free_port(), free_port());
    let rx = receiver(Some(grpc), None);
    let server = python_server(port);
    let agent = Agent::builder()
        .config(&selection(port))
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &format!("http://127.0.0.1:{grpc}"))
        .env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-obi-test=grpc%20ok")
        .env("OTEL_EBPF_OTLP_TRACES_BATCH_TIMEOUT", "100ms")
        .start();
    let line = log_line(&agent, "exporting traces").expect("exporting traces log");
    assert_eq!(logfmt(&line, "endpoint"), format!("http://127.0.0.1:{grpc}/"));
    assert_eq!(logfmt(&line, "protocol"), "grpc");
    agent.wait_instrumented(server.pid(), WAIT);
    http_traffic(port);
    check_http_spans(&agent, &rx, &server, port, "grpc");
    assert!(received(&rx).iter().all(|s| s["header"] == "grpc ok"));
}

/// http/protobuf through the common endpoint: the protocol is guessed
/// (port not 4317) and /v1/traces appended (the receiver answers 404 elsewhere).
#[test]
fn http_protobuf_export_of_real_http_traffic() {
    require_root();
    let (port, http) = (free_port(), free_port());
    let rx = receiver(None, Some(http));
    let server = python_server(port);
    let agent = Agent::builder()
        .config(&selection(port))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://127.0.0.1:{http}"))
        .env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-obi-test=proto")
        .env("OTEL_EBPF_OTLP_TRACES_BATCH_TIMEOUT", "100ms")
        .start();
    let line = log_line(&agent, "exporting traces").expect("exporting traces log");
    assert_eq!(logfmt(&line, "endpoint"), format!("http://127.0.0.1:{http}/v1/traces"));
    assert_eq!(logfmt(&line, "protocol"), "http/protobuf");
    agent.wait_instrumented(server.pid(), WAIT);
    http_traffic(port);
    check_http_spans(&agent, &rx, &server, port, "http/protobuf");
    assert!(received(&rx).iter().all(|s| s["header"] == "proto"));
}

/// http/json, the instrumentation filter and the sampler: with `grpc` only
/// or `always_off`, HTTP spans are printed but not exported; then with `http`
/// and the default sampler they are.
#[test]
fn http_json_export_and_instrumentation_filter() {
    require_root();
    let (port, http) = (free_port(), free_port());
    let rx = receiver(None, Some(http));
    let server = python_server(port);
    let endpoint = format!("http://127.0.0.1:{http}/v1/traces");
    let start = |instrumentations: &str, sampler: &str| {
        Agent::builder()
            .config(&selection(port))
            .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint)
            .env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
            .env("OTEL_EBPF_TRACES_INSTRUMENTATIONS", instrumentations)
            .env("OTEL_TRACES_SAMPLER", sampler)
            .env("OTEL_EBPF_OTLP_TRACES_BATCH_TIMEOUT", "100ms")
            .start()
    };
    // Filtered out (grpc only), then sampled out (always_off): printed, not exported.
    for (instrumentations, sampler, sampled_out) in [("grpc", "always_on", false), ("http", "always_off", true)] {
        let mut agent = start(instrumentations, sampler);
        agent.wait_instrumented(server.pid(), WAIT);
        curl(&[&format!("http://127.0.0.1:{port}/status/200")]);
        assert_eq!(agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == port).len(), 1);
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(received(&rx).len(), 0, "exported despite {instrumentations} / {sampler}");
        assert!(agent.stop().expect("agent stops").success());
        let totals = log_line(&agent, "totals").expect("totals line");
        let otlp = logfmt(&totals, "otlp_traces");
        assert!(otlp.starts_with("exported=0 dropped=0 failed_requests=0 retries=0 sampled_out="), "{totals}");
        assert_eq!(!otlp.contains(" sampled_out=0 "), sampled_out, "{totals}");
    }

    let agent = start("http", "parentbased_always_on");
    agent.wait_instrumented(server.pid(), WAIT);
    http_traffic(port);
    check_http_spans(&agent, &rx, &server, port, "http/json");
}

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The receiver is down for 30 s under load: the agent keeps tracing (the
/// printer shows every request), its memory stays flat, spans beyond the
/// queue are dropped and counted, and export resumes when the receiver is back.
#[test]
fn receiver_down_then_up() {
    require_root();
    const QUEUE: u64 = 300;
    let (port, grpc) = (free_port(), free_port());
    let rx = receiver(Some(grpc), None);
    let server = python_server(port);
    let mut agent = Agent::builder()
        .env("OTEL_EBPF_OPEN_PORT", &port.to_string())
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &format!("http://127.0.0.1:{grpc}"))
        .env("OTEL_EBPF_OTLP_TRACES_BATCH_TIMEOUT", "100ms")
        .env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        .env("OTEL_EBPF_OTLP_TRACES_BATCH_MAX_SIZE", "50")
        .env("OTEL_EBPF_OTLP_TRACES_QUEUE_SIZE", &QUEUE.to_string())
        .env("OTEL_EBPF_BACKOFF_INITIAL_INTERVAL", "200ms")
        .env("OTEL_EBPF_BACKOFF_MAX_INTERVAL", "1s")
        .env("OTEL_EBPF_BACKOFF_MAX_ELAPSED_TIME", "0s")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "2000")
        .start();
    agent.wait_instrumented(server.pid(), WAIT);
    let pid = agent.proc.pid();
    let on = |path: &'static str| move |s: &Value| url_path(s) == path;

    let mut c = python_client(port, &["GET:/status/201"], &["--repeat", "5"]);
    c.wait_exit(WAIT);
    assert_eq!(wait_received(&rx, 5, WAIT, on("/status/201")).len(), 5);

    drop(rx);
    let down = Instant::now();
    let rss_before = rss_kib(pid);
    let cpu_before = cpu_ticks(pid);
    let mut rss_max = rss_before;
    let mut sent = 0u64;
    while down.elapsed() < Duration::from_secs(30) {
        let mut c = python_client(port, &["GET:/status/202"], &["--repeat", "200"]);
        c.wait_exit(WAIT);
        sent += c.lines().iter().filter(|l| l.starts_with("202 ")).count() as u64;
        rss_max = rss_max.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(1500));
    }
    let down_cpu = cpu_ticks(pid) - cpu_before;
    let down_secs = down.elapsed().as_secs_f64();
    // The agent kept tracing: the printer shows every request.
    let printed = agent.wait_spans(sent as usize, WAIT, |s| is_type(s, "HTTP") && attr(s, "url") == "/status/202");
    assert_eq!(printed.len() as u64, sent);
    assert!(agent.proc.is_running());
    let failed = log_line(&agent, "export failed").expect("export failed log");
    assert!(logfmt(&failed, "retryable") == "true", "{failed}");
    let dropped = log_line(&agent, "spans dropped: OTLP export queue full or endpoint failing").expect("drop log");
    let drop_logs = agent.proc.lines().iter().filter(|l| l.contains("spans dropped: OTLP export")).count();
    assert!(drop_logs <= 4, "drops are logged at most every 10 s, got {drop_logs} lines");

    let rx = receiver(Some(grpc), None);
    let recovered = agent
        .proc
        .wait_line(|l| l.contains("msg=\"export recovered\""), WAIT)
        .unwrap_or_else(|| panic!("no recovery: {:#?}", agent.proc.lines()));
    // The queue kept while down drains first (new spans find it full until then).
    let backlog = |rx: &Proc| received(rx).iter().filter(|s| url_path(s) == "/status/202").count() as u64;
    let mut during = backlog(&rx);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = backlog(&rx);
        if now == during {
            break;
        }
        during = now;
    }
    let mut c = python_client(port, &["GET:/status/203"], &["--repeat", "5"]);
    c.wait_exit(WAIT);
    assert_eq!(wait_received(&rx, 5, WAIT, on("/status/203")).len(), 5, "spans after recovery");
    assert!(during <= QUEUE, "at most the queue survives the outage: {during}");

    assert!(agent.stop().expect("agent stops").success());
    let totals = log_line(&agent, "totals").expect("totals line");
    let otlp = logfmt(&totals, "otlp_traces").to_string();
    let count =
        |k: &str| -> u64 { otlp.split(' ').find_map(|kv| kv.strip_prefix(&format!("{k}="))).unwrap().parse().unwrap() };
    // Every span is accounted for: exported or dropped.
    assert_eq!(count("exported"), 5 + during + 5, "{otlp}");
    assert_eq!(count("dropped"), sent - during, "{otlp}");
    let growth = rss_max.saturating_sub(rss_before);
    eprintln!(
        "down/up: sent {sent} spans in {down_secs:.1} s while down, {during} delivered after recovery, dropped {}; \
         RSS {rss_before} KiB before, max {rss_max} KiB during (+{growth} KiB); agent CPU {down_cpu} ticks while down; \
         {}\n  {}\n  {}",
        count("dropped"),
        otlp,
        dropped,
        recovered
    );
    assert!(growth < 20 * 1024, "agent RSS grew by {growth} KiB while the receiver was down");
}

/// TLS endpoints: gRPC trusting the receiver's certificate through
/// OTEL_EXPORTER_OTLP_CERTIFICATE, HTTP with OTEL_EBPF_INSECURE_SKIP_VERIFY,
/// and a refusal (logged, counted) when the certificate is not trusted.
#[test]
fn tls_endpoints() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let (port, grpc, http) = (free_port(), free_port(), free_port());
    let rx = receiver_with(Some(grpc), Some(http), Some((&cert, &key)));
    let server = python_server(port);
    let run = |env: &[(&str, &str)], path: &'static str| -> Agent {
        let mut b = Agent::builder()
            .env("OTEL_EBPF_OPEN_PORT", &port.to_string())
            .env("OTEL_SERVICE_NAME", "tls-test")
            .env("OTEL_EBPF_OTLP_TRACES_BATCH_TIMEOUT", "100ms");
        for (k, v) in env {
            b = b.env(k, v);
        }
        let agent = b.start();
        agent.wait_instrumented(server.pid(), WAIT);
        curl(&[&format!("http://127.0.0.1:{port}{path}")]);
        agent
    };
    let cert_path = cert.to_str().unwrap();

    let grpc_url = format!("https://localhost:{grpc}");
    let mut agent = run(
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &grpc_url),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", cert_path),
        ],
        "/status/200",
    );
    let got = wait_received(&rx, 1, WAIT, |s| url_path(s) == "/status/200");
    assert_eq!(got.len(), 1, "{:#?}", agent.proc.lines());
    assert_eq!(got[0]["transport"], "grpc");
    assert_eq!(got[0]["resource"]["service.name"], "tls-test");
    assert!(agent.stop().unwrap().success());

    let http_url = format!("https://127.0.0.1:{http}/v1/traces");
    let mut agent = run(
        &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &http_url), ("OTEL_EBPF_INSECURE_SKIP_VERIFY", "true")],
        "/status/201",
    );
    let got = wait_received(&rx, 1, WAIT, |s| url_path(s) == "/status/201");
    assert_eq!(got.len(), 1, "{:#?}", agent.proc.lines());
    assert_eq!(got[0]["transport"], "http/protobuf");
    assert!(agent.stop().unwrap().success());

    // Not trusted: nothing is sent, the failure is logged and the spans counted as dropped at shutdown.
    let mut agent = run(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &http_url)], "/status/202");
    let failed = agent
        .proc
        .wait_line(|l| l.contains("msg=\"export failed\""), WAIT)
        .unwrap_or_else(|| panic!("no failure: {:#?}", agent.proc.lines()));
    assert!(failed.to_lowercase().contains("certificate"), "{failed}");
    assert!(agent.stop().unwrap().success());
    let totals = log_line(&agent, "totals").unwrap();
    assert!(logfmt(&totals, "otlp_traces").starts_with("exported=0 dropped=1 "), "{totals}");
    assert!(!received(&rx).iter().any(|s| url_path(s) == "/status/202"));
}

/// Bad exporter settings stop the agent at startup with exit code 2 and a
/// message naming the variable.
#[test]
fn bad_exporter_settings_exit_2() {
    let missing_ca = "/nonexistent/otlp-ca.pem";
    for (env, var) in [
        (vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "localhost:4318")], "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        (vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http//collector:4318")], "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "token")],
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318"), ("OTEL_EXPORTER_OTLP_CERTIFICATE", missing_ca)],
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_obi"))
            .env_clear()
            .env("OTEL_EBPF_OPEN_PORT", "8080")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {text}");
        assert!(text.contains("msg=\"wrong configuration\""), "{text}");
        assert!(text.contains(&format!("error=\"{var}: ")), "{env:?} should name {var}: {text}");
    }
}
