//! HTTPS through OpenSSL uprobes: plaintext spans from TLS servers and
//! clients, no ciphertext double counting.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn server_spans(agent: &Agent, port: u16, n: usize) -> Vec<Value> {
    agent.wait_spans(n, WAIT, move |s| is_type(s, "HTTP") && host_port(s) == port)
}

fn check_exchange(spans: &[Value], url: &str, status: &str, response_len: &str) {
    let found: Vec<&Value> = spans.iter().filter(|s| attr(s, "url") == url).collect();
    assert_eq!(found.len(), 1, "exactly one span for {url} (no double counting): {spans:#?}");
    assert_eq!(attr(found[0], "status"), status, "{:#}", found[0]);
    assert_eq!(attr(found[0], "responseLen"), response_len, "{:#}", found[0]);
    assert_eq!(attr(found[0], "method"), "GET");
}

#[test]
fn python_ssl_server() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let port = free_port();
    let server = start_server(
        "py-https",
        Command::new(python())
            .arg(apps_dir().join("http_server.py"))
            .arg(port.to_string())
            .arg("--tls")
            .args([&cert, &key]),
    );
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);
    agent.proc.wait_line(|l| l.contains("msg=\"OpenSSL probes attached\""), WAIT).expect("TLS probes attached");
    curl(&["-k", &format!("https://127.0.0.1:{port}/status/201")]);
    curl(&["-k", &format!("https://127.0.0.1:{port}/big/300000")]);
    let spans = server_spans(&agent, port, 2);
    check_exchange(&spans, "/status/201", "201", "11");
    check_exchange(&spans, "/big/300000", "200", "300000");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.spans().iter().filter(|s| host_port(s) == port).count(), 2, "no extra spans from ciphertext");
}

/// The Node.js test server over TLS with a fresh self-signed certificate
/// (the directory holding it must live as long as the server).
fn node_https_server() -> (tempfile::TempDir, u16, Proc) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let port = free_port();
    let server = start_server(
        "node-https",
        Command::new("node")
            .arg(apps_dir().join("http_server.js"))
            .arg(port.to_string())
            .arg("--tls")
            .args([&cert, &key]),
    );
    (dir, port, server)
}

#[test]
fn node_https_server_with_keepalive() {
    require_root();
    let (_dir, port, server) = node_https_server();
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);
    agent.proc.wait_line(|l| l.contains("msg=\"OpenSSL probes attached\""), WAIT).expect("TLS probes attached");
    // Several requests per connection, several connections.
    for _ in 0..3 {
        curl(&["-k", &format!("https://127.0.0.1:{port}/status/202"), &format!("https://127.0.0.1:{port}/big/100000")]);
    }
    let spans = server_spans(&agent, port, 6);
    assert_eq!(spans.len(), 6, "{spans:#?}");
    for s in &spans {
        match attr(s, "url") {
            "/status/202" => assert_eq!((attr(s, "status"), attr(s, "responseLen")), ("202", "11")),
            "/big/100000" => assert_eq!((attr(s, "status"), attr(s, "responseLen")), ("200", "100000")),
            other => panic!("unexpected span {other}: {s:#}"),
        }
    }
}

#[test]
fn nginx_tls_termination() {
    require_root();
    if Command::new("nginx").arg("-v").output().is_err() {
        panic!("nginx is not installed (scripts/install-deps.sh installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let port = free_port();
    std::fs::create_dir_all(dir.path().join("html")).unwrap();
    std::fs::write(dir.path().join("html/index.html"), "x".repeat(5000)).unwrap();
    let conf = format!(
        "worker_processes 6;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n  fastcgi_temp_path {d};\n  uwsgi_temp_path {d};\n  scgi_temp_path {d};\n\
           server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n    root {d}/html;\n\
             location /status/ {{ return 418 \"teapot\\n\"; }}\n  }}\n}}\n",
        d = dir.path().display(),
        cert = cert.display(),
        key = key.display(),
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let conf_path = dir.path().join("nginx.conf");
    let _nginx = spawn("nginx", Command::new("nginx").args(["-g", "daemon off;", "-c"]).arg(&conf_path));
    wait_port(port, Duration::from_secs(10));
    let mut agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    // Master and six workers: past four processes the library is probed
    // once for all of them (see ebpf/tls.rs).
    let deadline = std::time::Instant::now() + WAIT;
    while agent.proc.lines().iter().filter(|l| l.contains("msg=\"OpenSSL probes attached\"")).count() < 7 {
        assert!(std::time::Instant::now() < deadline, "TLS probes not attached to all nginx processes");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..10 {
        curl(&["-k", &format!("https://127.0.0.1:{port}/index.html")]);
    }
    curl(&["-k", &format!("https://127.0.0.1:{port}/status/x")]);
    let spans = server_spans(&agent, port, 11);
    assert_eq!(spans.len(), 11, "{spans:#?}");
    let index: Vec<&Value> = spans.iter().filter(|s| attr(s, "url") == "/index.html").collect();
    assert_eq!(index.len(), 10, "one span per request, none doubled: {spans:#?}");
    assert!(index.iter().all(|s| attr(s, "status") == "200" && attr(s, "responseLen") == "5000"), "{index:#?}");
    check_exchange(&spans, "/status/x", "418", "7");
    // Detaching stays quick however many processes shared the probes.
    let t = std::time::Instant::now();
    assert!(agent.stop().is_some_and(|s| s.success()));
    assert!(t.elapsed() < Duration::from_secs(10), "shutdown took {:?}", t.elapsed());
}

#[test]
fn python_https_client_spans() {
    https_client_spans(false, ["200", "404"]);
}

/// A client that maps libssl at exec (curl, nginx, node do; here Python with
/// it preloaded) gets its TLS probes while still traced provisionally, before
/// discovery selects it. Selecting it must keep what attaching them set: before
/// the fix its TLS sessions were no longer tied to their sockets and its spans
/// had no server address or port.
#[test]
fn https_client_mapping_libssl_at_exec() {
    https_client_spans(true, ["201", "403"]);
}

/// Two requests with the given statuses (each test its own: both tests'
/// agents trace both tests' clients when they run at once).
fn https_client_spans(preload_libssl: bool, statuses: [&str; 2]) {
    require_root();
    let (_dir, port, _server) = node_https_server();
    let agent = Agent::builder().config("discovery:\n  instrument:\n    - cmd_args: '*https_client.py*'\n").start();
    let mut cmd = Command::new(python());
    if preload_libssl {
        // A name without a slash: the loader finds it where it finds any library.
        cmd.env("LD_PRELOAD", "libssl.so.3");
    }
    let mut client = spawn(
        "https-client",
        cmd.arg(apps_dir().join("https_client.py"))
            // Per-process uprobes take a few hundred ms to attach (see docs/tls.md).
            .args([
                "--wait-ms".to_string(),
                "1500".to_string(),
                format!("https://127.0.0.1:{port}/status/{}", statuses[0]),
                format!("https://127.0.0.1:{port}/status/{}", statuses[1]),
            ]),
    );
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()));
    let ours =
        |s: &Value| is_type(s, "HTTPClient") && statuses.iter().any(|st| attr(s, "url") == format!("/status/{st}"));
    let spans = agent.wait_spans(2, WAIT, ours);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let seen: Vec<&str> = spans.iter().map(|s| attr(s, "status")).collect();
    assert!(statuses.iter().all(|st| seen.contains(st)), "{seen:?}");
    for s in &spans {
        assert_eq!(attr(s, "method"), "GET");
        assert_eq!(host_port(s), port, "the connection of the TLS session is known: {s:#}");
        // Named after its script (apps/https_client.py), not the interpreter.
        assert_eq!(field(s, "peerName"), "https_client", "{s:#}");
    }
}
