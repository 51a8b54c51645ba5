//! HTTP body sizes and the URL scheme, as OBI reports them, checked in the
//! trace printer, the Prometheus metrics and OTLP at once: real nginx, real
//! curl, the real agent with real eBPF, the real OTLP test receiver.
//! Runs as root (see tests/common::require_root).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::prom::*;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The request body every POST carries: 17 bytes.
const BODY: &str = "seventeen bytes!!";
const POSTS: usize = 11;

/// nginx on `port`, one worker: `/fail` answers 500 without reading the
/// request body (`return 500;`), `/ok` answers "ok\n".
fn nginx(dir: &Path, port: u16, tls: Option<(&Path, &Path)>) -> Proc {
    assert!(Command::new("nginx").arg("-v").output().is_ok(), "nginx is not installed (scripts/install-deps.sh)");
    let listen = match tls {
        Some((cert, key)) => format!(
            "listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};",
            cert.display(),
            key.display()
        ),
        None => format!("listen 127.0.0.1:{port};"),
    };
    let conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n  fastcgi_temp_path {d};\n  uwsgi_temp_path {d};\n  scgi_temp_path {d};\n\
           server {{\n    {listen}\n    location /fail {{ return 500; }}\n    location /ok {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n",
        d = dir.display(),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let p = spawn("nginx", Command::new("nginx").args(["-g", "daemon off;", "-c"]).arg(&path));
    wait_port(port, Duration::from_secs(10));
    p
}

/// The OTLP test receiver (tests/apps/otlp_receiver.py) on gRPC `port`.
fn otlp_receiver(port: u16) -> Proc {
    start_server(
        "otlp-receiver",
        Command::new(venv_python())
            .arg("-u")
            .arg(apps_dir().join("otlp_receiver.py"))
            .args(["--grpc", &port.to_string()]),
    )
}

/// Spans the receiver printed so far that match `pred`, once `n` are there.
fn otlp_spans(rx: &Proc, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found: Vec<Value> = rx
            .lines()
            .iter()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|s| pred(s))
            .collect();
        if found.len() >= n || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The agent tracing nginx on `port` and curl, printing JSON, exporting
/// OTLP to `grpc` and serving metrics on `prom`.
fn agent(port: u16, grpc: u16, prom: u16) -> Agent {
    let agent = Agent::builder()
        .config(&format!(
            "discovery:\n  instrument:\n    - open_ports: {port}\n    - exe_path: '*/curl'\n    - cmd_args: '*early_answer_client.py*'\n"
        ))
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &format!("http://127.0.0.1:{grpc}"))
        .env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        .env("OTEL_EBPF_OTLP_TRACES_BATCH_TIMEOUT", "100ms")
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .start();
    agent
        .proc
        .wait_line(|l| l.contains("msg=\"opening prometheus scrape endpoint\""), WAIT)
        .expect("no prometheus endpoint");
    agent
}

/// Waits until nginx's master and worker are instrumented.
fn wait_nginx_traced(agent: &Agent, nginx: &Proc) {
    agent.wait_instrumented(nginx.pid(), WAIT);
    let deadline = Instant::now() + WAIT;
    let nginx_lines = || {
        agent.proc.lines().iter().filter(|l| l.contains("msg=\"instrumenting process\"") && l.contains("nginx")).count()
    };
    while nginx_lines() < 2 {
        assert!(Instant::now() < deadline, "nginx worker not instrumented: {:#?}", agent.proc.lines());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
}

/// Runs curl and returns its `-w` output lines ("status size_download").
fn curl_sizes(args: &[String]) -> Vec<String> {
    let out = Command::new("curl").args(["-s", "-S", "-k", "--max-time", "20"]).args(args).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// 11 POSTs of 17 bytes that nginx answers before their body arrives (an
/// instrumented client that sends each body 200 ms after its head), then a
/// GET (curl) whose head, with 1.5 KB of cookie, is longer than the 1 KB
/// capture. Returns the sizes of the two response bodies.
fn posts_and_a_big_cookie(agent: &Agent, port: u16) -> (u64, u64) {
    let mut client = spawn_with_stdin(
        "early-answer-client",
        Command::new(python()).arg(apps_dir().join("early_answer_client.py")).args([
            port.to_string(),
            "/fail".into(),
            POSTS.to_string(),
            BODY.into(),
        ]),
    );
    agent.wait_instrumented(client.pid(), WAIT);
    client.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "{:?}", client.lines());
    let lines = client.lines();
    assert_eq!(lines.len(), POSTS + 1, "{lines:?}");
    assert!(lines[..POSTS].iter().all(|l| l == &lines[0] && l.starts_with("500 ")), "{lines:?}");
    let error_page: u64 = lines[0][4..].parse().unwrap();
    let cookie = format!("Cookie: c={}", "x".repeat(1500));
    let base = format!("http://127.0.0.1:{port}");
    let lines = curl_sizes(&["-H".into(), cookie, "-w".into(), "%{size_download}".into(), format!("{base}/ok")]);
    assert_eq!(lines, ["ok", "3"]);
    (error_page, 3)
}

/// 11 POSTs of 17 bytes answered before their body is read report 17 bytes
/// each (187 in all) in the printer, the metrics and OTLP, on the server and
/// the client side; a GET with a head beyond the capture reports no body.
#[test]
fn request_body_size_is_the_content_length() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (port, grpc, prom) = (free_port(), free_port(), free_port());
    let rx = otlp_receiver(grpc);
    let server = nginx(dir.path(), port, None);
    let agent = agent(port, grpc, prom);
    wait_nginx_traced(&agent, &server);
    let (error_page, ok_page) = posts_and_a_big_cookie(&agent, port);

    // The trace printer, both sides.
    for kind in ["HTTP", "HTTPClient"] {
        let spans = agent.wait_spans(POSTS + 1, WAIT, |s| is_type(s, kind) && host_port(s) == port);
        assert_eq!(spans.len(), POSTS + 1, "{kind}: {spans:#?}");
        let posts: Vec<&Value> = spans.iter().filter(|s| attr(s, "method") == "POST").collect();
        assert_eq!(posts.len(), POSTS, "{kind}: {spans:#?}");
        for s in &posts {
            assert_eq!(
                (attr(s, "url"), attr(s, "status"), attr(s, "contentLen")),
                ("/fail", "500", "17"),
                "{kind}: {s:#}"
            );
            assert_eq!(attr(s, "responseLen"), error_page.to_string(), "{kind}: {s:#}");
        }
        let get = spans.iter().find(|s| attr(s, "method") == "GET").unwrap();
        assert_eq!((attr(get, "url"), attr(get, "status")), ("/ok", "200"), "{kind}: {get:#}");
        assert_eq!((attr(get, "contentLen"), attr(get, "responseLen")), ("0", "3"), "{kind}: {get:#}");
    }

    // The metrics: sums of the body-size histograms.
    let port_s = port.to_string();
    let sum = |samples: &[Sample], name: &str, method: &str| {
        total(samples, name, &[("server_port", port_s.as_str()), ("http_request_method", method)])
    };
    let samples = scrape_until(prom, WAIT, |s| {
        sum(s, "http_server_request_body_size_bytes_count", "POST") >= POSTS as f64
            && sum(s, "http_client_request_body_size_bytes_count", "POST") >= POSTS as f64
            && sum(s, "http_server_request_body_size_bytes_count", "GET") >= 1.0
            && sum(s, "http_client_request_body_size_bytes_count", "GET") >= 1.0
    });
    for side in ["server", "client"] {
        let req = format!("http_{side}_request_body_size_bytes");
        let resp = format!("http_{side}_response_body_size_bytes");
        assert_eq!(sum(&samples, &format!("{req}_count"), "POST"), POSTS as f64, "{side}");
        assert_eq!(sum(&samples, &format!("{req}_sum"), "POST"), (17 * POSTS) as f64, "{side}");
        assert_eq!(sum(&samples, &format!("{resp}_sum"), "POST"), (error_page * POSTS as u64) as f64, "{side}");
        assert_eq!(sum(&samples, &format!("{req}_sum"), "GET"), 0.0, "{side}");
        assert_eq!(sum(&samples, &format!("{resp}_sum"), "GET"), ok_page as f64, "{side}");
    }

    // OTLP, both sides.
    for kind in ["SPAN_KIND_SERVER", "SPAN_KIND_CLIENT"] {
        let spans = otlp_spans(&rx, POSTS + 1, |s| s["kind"] == kind && s["attributes"]["server.port"] == port);
        assert_eq!(spans.len(), POSTS + 1, "{kind}: {spans:#?}");
        for s in &spans {
            let a = &s["attributes"];
            let want = if a["http.request.method"] == "POST" { 17 } else { 0 };
            assert_eq!(a["http.request.body.size"], want, "{kind}: {s:#}");
        }
    }
}

/// The pid of the only child of `pid` (nginx's worker).
fn worker_of(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    children.split_whitespace().next().expect("nginx has a worker").parse().unwrap()
}

/// Log lines with message `msg` naming `pid`.
fn logged(agent: &Agent, msg: &str, pid: u32) -> usize {
    let (msg, pid) = (format!("msg=\"{msg}\""), format!(" pid={pid} "));
    agent.proc.lines().iter().filter(|l| l.contains(&msg) && format!("{l} ").contains(&pid)).count()
}

/// OTLP server spans carry `url.scheme`: `https` for TLS (seen through the
/// OpenSSL probes), `http` otherwise; client spans' `http.scheme` and
/// `url.full` follow TLS too. "tracing TLS plaintext" is logged once for
/// the processes whose TLS was seen, not for all that map libssl.
#[test]
fn url_scheme_and_tls_log_follow_tls() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let (plain, secure, grpc) = (free_port(), free_port(), free_port());
    let rx = otlp_receiver(grpc);
    let (plain_dir, secure_dir) = (dir.path().join("plain"), dir.path().join("secure"));
    std::fs::create_dir_all(&plain_dir).unwrap();
    std::fs::create_dir_all(&secure_dir).unwrap();
    let http = nginx(&plain_dir, plain, None);
    let https = nginx(&secure_dir, secure, Some((&cert, &key)));
    let agent = Agent::builder()
        .config(&format!(
            "discovery:\n  instrument:\n    - open_ports: {plain}\n    - open_ports: {secure}\n    - cmd_args: '*https_client.py*'\n"
        ))
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &format!("http://127.0.0.1:{grpc}"))
        .env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        .env("OTEL_EBPF_OTLP_TRACES_BATCH_TIMEOUT", "100ms")
        .start();
    // Both nginx map libssl: all four processes get the probes.
    let nginx_pids = [http.pid(), worker_of(http.pid()), https.pid(), worker_of(https.pid())];
    let deadline = Instant::now() + WAIT;
    while nginx_pids.iter().any(|&p| logged(&agent, "OpenSSL probes attached", p) == 0) {
        assert!(Instant::now() < deadline, "OpenSSL probes missing on nginx {nginx_pids:?}: {:#?}", agent.proc.lines());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Per-process uprobes take a few hundred ms to attach (see docs/tls.md).
    let mut client = spawn(
        "https-client",
        Command::new(python()).arg(apps_dir().join("https_client.py")).args([
            "--wait-ms".to_string(),
            "2000".to_string(),
            format!("http://127.0.0.1:{plain}/ok"),
            format!("https://127.0.0.1:{secure}/ok"),
            format!("https://127.0.0.1:{secure}/ok"),
        ]),
    );
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "{:?}", client.lines());
    assert_eq!(client.lines(), ["200 3", "200 3", "200 3", "done"]);

    for (port, scheme, n) in [(plain, "http", 1), (secure, "https", 2)] {
        let server = otlp_spans(&rx, n, |s| s["kind"] == "SPAN_KIND_SERVER" && s["attributes"]["server.port"] == port);
        assert_eq!(server.len(), n, "{scheme}: {server:#?}");
        let client = otlp_spans(&rx, n, |s| s["kind"] == "SPAN_KIND_CLIENT" && s["attributes"]["server.port"] == port);
        assert_eq!(client.len(), n, "{scheme}: {client:#?}");
        for (s, c) in server.iter().zip(&client) {
            assert_eq!(s["attributes"]["url.scheme"], scheme, "{s:#}");
            assert_eq!(s["attributes"]["url.path"], "/ok", "{s:#}");
            assert_eq!(c["attributes"]["http.scheme"], scheme, "{c:#}");
            assert_eq!(c["attributes"]["url.full"], format!("{scheme}://127.0.0.1:{port}/ok"), "{c:#}");
        }
    }

    // The info line: once for the https worker and once for the client,
    // never for the plain nginx that maps libssl but speaks no TLS.
    let tls_seen = "tracing TLS plaintext through OpenSSL uprobes";
    assert_eq!(logged(&agent, tls_seen, worker_of(https.pid())), 1, "{:#?}", agent.proc.lines());
    assert_eq!(logged(&agent, tls_seen, client.pid()), 1, "{:#?}", agent.proc.lines());
    for pid in [http.pid(), worker_of(http.pid()), https.pid()] {
        assert_eq!(logged(&agent, tls_seen, pid), 0, "pid {pid} spoke no TLS: {:#?}", agent.proc.lines());
    }
}
