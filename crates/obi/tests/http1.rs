//! HTTP/1.x end to end: real servers and clients, the real agent, real eBPF.
//! Runs as root (see tests/common::require_root).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn server_spans_on(port: u16) -> impl Fn(&Value) -> bool {
    move |s| is_type(s, "HTTP") && host_port(s) == port
}

fn client_spans_to(port: u16) -> impl Fn(&Value) -> bool {
    move |s| is_type(s, "HTTPClient") && host_port(s) == port
}

/// Server spans from python3 http.server (stdlib, HTTP/1.0) for curl and the
/// python client, plus client spans from both instrumented clients.
#[test]
fn python_stdlib_server_and_clients() {
    require_root();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "x".repeat(1234)).unwrap();
    let server = stdlib_http_server(port, dir.path());
    let agent = Agent::builder()
        .config(&format!(
            "discovery:\n  instrument:\n    - open_ports: {port}\n    - exe_path: '*/curl'\n    - cmd_args: '*http_client.py 127.0.0.1 {port}*'\n"
        ))
        .start();
    agent.wait_instrumented(server.pid(), WAIT);

    curl(&[&format!("http://127.0.0.1:{port}/index.html")]);
    curl(&[&format!("http://127.0.0.1:{port}/missing")]);
    let mut client = python_client(port, &["GET:/index.html?x=1"], &[]);
    client.wait_exit(WAIT);
    assert!(client.lines().contains(&"200 1234".to_string()), "{:?}", client.lines());

    let spans = agent.wait_spans(3, WAIT, server_spans_on(port));
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let ok: Vec<&Value> = spans.iter().filter(|s| attr(s, "url") == "/index.html").collect();
    assert_eq!(ok.len(), 2, "{spans:#?}");
    for s in &ok {
        assert_eq!(attr(s, "method"), "GET");
        assert_eq!(attr(s, "status"), "200");
        assert_eq!(attr(s, "responseLen"), "1234");
        assert_eq!(attr(s, "contentLen"), "0");
        assert_eq!(field(s, "kind"), "SPAN_KIND_SERVER");
        assert_eq!(attr(s, "serverPort"), port.to_string());
        assert_eq!(field(s, "peer"), "127.0.0.1");
        assert_ne!(field(s, "peerPort"), port.to_string());
    }
    let missing: Vec<&Value> = spans.iter().filter(|s| attr(s, "url") == "/missing").collect();
    assert_eq!(attr(missing[0], "status"), "404");

    // Client spans: one from curl per request, one from the python client.
    let clients = agent.wait_spans(3, WAIT, client_spans_to(port));
    assert_eq!(clients.len(), 3, "{clients:#?}");
    for c in &clients {
        assert_eq!(field(c, "kind"), "SPAN_KIND_CLIENT");
        assert_eq!(attr(c, "method"), "GET");
        assert_eq!(field(c, "host"), "127.0.0.1");
    }
    let from = |name: &str| clients.iter().filter(|c| field(c, "peerName").starts_with(name)).count();
    assert_eq!(from("curl"), 2, "{clients:#?}");
    // Named after its script (apps/http_client.py), not the interpreter.
    assert_eq!(from("http_client"), 1, "{clients:#?}");

    // stdout is data only: every line is a JSON array of spans, so
    // `OTEL_EBPF_TRACE_PRINTER=json obi | jq` works; the logs are on stderr.
    let stdout = agent.proc.stdout_lines();
    for line in &stdout {
        assert!(matches!(serde_json::from_str::<Value>(line), Ok(Value::Array(_))), "not span data on stdout: {line}");
    }
    assert!(agent.proc.lines().len() > stdout.len(), "the agent's logs went missing");
}

/// Node.js http server with keep-alive: curl, the python client, 200
/// requests on one connection, error statuses, chunked and large bodies.
#[test]
fn node_server_keepalive_errors_and_bodies() {
    require_root();
    let port = free_port();
    let server = node_server(port);
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);

    let mut client = python_client(port, &["GET:/status/200"], &["--repeat", "200"]);
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()));
    let spans = agent.wait_spans(200, WAIT, |s| server_spans_on(port)(s) && attr(s, "url") == "/status/200");
    assert_eq!(spans.len(), 200, "expected one span per keep-alive request");
    // All on one connection: one client port.
    let ports: std::collections::HashSet<&str> = spans.iter().map(|s| field(s, "peerPort")).collect();
    assert_eq!(ports.len(), 1);
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| field(s, "spanID")).collect();
    assert_eq!(ids.len(), 200, "span ids must be unique");

    curl(&[&format!("http://127.0.0.1:{port}/status/404")]);
    curl(&[&format!("http://127.0.0.1:{port}/status/500")]);
    curl(&[&format!("http://127.0.0.1:{port}/chunked/50")]);
    curl(&[&format!("http://127.0.0.1:{port}/big/3000000")]);
    let body = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body.path(), "p".repeat(500_000)).unwrap();
    let body_arg = format!("@{}", body.path().display());
    curl(&["-X", "POST", "--data-binary", &body_arg, &format!("http://127.0.0.1:{port}/echo")]);
    let s404 = agent.wait_spans(1, WAIT, |s| server_spans_on(port)(s) && attr(s, "url") == "/status/404");
    assert_eq!(attr(&s404[0], "status"), "404");
    let s500 = agent.wait_spans(1, WAIT, |s| server_spans_on(port)(s) && attr(s, "url") == "/status/500");
    assert_eq!(attr(&s500[0], "status"), "500");
    let chunked = agent.wait_spans(1, WAIT, |s| server_spans_on(port)(s) && attr(s, "url") == "/chunked/50");
    assert_eq!(chunked.len(), 1);
    assert_eq!(attr(&chunked[0], "status"), "200");
    // 50 chunks of "chunk-N\n" plus chunk framing and the last chunk.
    let body: usize = (0..50).map(|i| format!("chunk-{i}\n").len()).sum();
    let framing: usize =
        (0..50).map(|i| format!("{:x}\r\n\r\n", format!("chunk-{i}\n").len()).len()).sum::<usize>() + 5;
    assert_eq!(attr(&chunked[0], "responseLen"), (body + framing).to_string());
    let big = agent.wait_spans(1, WAIT, |s| server_spans_on(port)(s) && attr(s, "url") == "/big/3000000");
    assert_eq!(attr(&big[0], "responseLen"), "3000000");
    let post = agent.wait_spans(1, WAIT, |s| server_spans_on(port)(s) && attr(s, "url") == "/echo");
    assert_eq!(attr(&post[0], "method"), "POST");
    assert_eq!(attr(&post[0], "contentLen"), "500000");
    assert_eq!(attr(&post[0], "status"), "200");
}

/// Pipelined requests in one write are each traced, in order.
#[test]
fn pipelined_requests() {
    require_root();
    let port = free_port();
    let server = python_server(port);
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);
    let mut req = Vec::new();
    for i in 0..5 {
        req.extend_from_slice(format!("GET /status/{} HTTP/1.1\r\nHost: x\r\n\r\n", 200 + i).as_bytes());
    }
    req.extend_from_slice(b"GET /status/201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let out = raw_exchange(port, &req, Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&out).matches("HTTP/1.1 ").count(), 6);
    let spans = agent.wait_spans(6, WAIT, server_spans_on(port));
    let statuses: Vec<&str> = spans.iter().map(|s| attr(s, "status")).collect();
    assert_eq!(statuses.len(), 6, "{spans:#?}");
    for code in ["200", "201", "202", "203", "204"] {
        let s = spans.iter().find(|s| attr(s, "url") == format!("/status/{code}")).expect(code);
        assert_eq!(attr(s, "status"), code);
    }
}

/// A process nobody selected is never traced; a server started after the
/// agent is picked up within seconds.
#[test]
fn selection_and_late_servers() {
    require_root();
    let selected = free_port();
    let other = free_port();
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &selected.to_string()).start();
    let unselected = python_server(other);
    let started = std::time::Instant::now();
    let late = python_server(selected);
    agent.wait_instrumented(late.pid(), Duration::from_secs(10));
    let picked_up = started.elapsed();
    assert!(picked_up < Duration::from_secs(5), "late server picked up after {picked_up:?}");
    curl(&[&format!("http://127.0.0.1:{selected}/")]);
    curl(&[&format!("http://127.0.0.1:{other}/")]);
    let spans = agent.wait_spans(1, WAIT, server_spans_on(selected));
    assert_eq!(spans.len(), 1);
    std::thread::sleep(Duration::from_secs(1));
    assert!(!agent.instrumented(unselected.pid()));
    assert!(agent.spans().iter().all(|s| host_port(s) != other), "unselected server produced spans");
}

/// Garbage, half-closed connections and clients that vanish mid-response
/// neither crash the agent nor produce bogus spans; traffic around them is traced.
#[test]
fn bad_input_is_survived() {
    require_root();
    let port = free_port();
    let server = python_server(port);
    let mut agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);

    // Random bytes.
    let mut seed = 0x9e3779b97f4a7c15u64;
    for _ in 0..20 {
        let junk: Vec<u8> = (0..2048)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        raw_exchange(port, &junk, Duration::from_millis(200));
    }
    // Half-closed: the client shuts down its side after the request.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /status/202 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.read_to_end(&mut out);
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 202"));
    }
    // A client that disconnects in the middle of a large response.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /big/20000000 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        drop(s);
    }
    curl(&[&format!("http://127.0.0.1:{port}/status/201")]);

    let ok = agent.wait_spans(1, WAIT, |s| server_spans_on(port)(s) && attr(s, "url") == "/status/201");
    assert_eq!(ok.len(), 1);
    let half = agent.wait_spans(1, WAIT, |s| server_spans_on(port)(s) && attr(s, "url") == "/status/202");
    assert_eq!(attr(&half[0], "status"), "202");
    std::thread::sleep(Duration::from_secs(1));
    let all: Vec<Value> = agent.spans().into_iter().filter(server_spans_on(port)).collect();
    for s in &all {
        let url = attr(s, "url");
        assert!(["/status/201", "/status/202", "/big/20000000"].contains(&url), "bogus span from garbage: {s:#}");
        assert_eq!(attr(s, "method"), "GET");
    }
    assert!(agent.proc.is_running(), "agent died");
    let status = agent.stop().expect("agent did not stop on SIGTERM");
    assert!(status.success(), "agent exited with {status}");
}

/// The text printer prints OBI's line format field by field.
#[test]
fn text_printer_format() {
    require_root();
    let port = free_port();
    let server = node_server(port);
    // OBI names the process after its executable (`node`); so does obi-rs
    // when asked to, for output that matches OBI's to the byte.
    let agent = Agent::builder()
        .env("OTEL_EBPF_OPEN_PORT", &port.to_string())
        .env("OTEL_EBPF_SERVICE_NAME_DEFAULT", "executable")
        .printer("text")
        .start();
    agent.wait_instrumented(server.pid(), WAIT);
    curl(&["-X", "POST", "-d", "0123456789", &format!("http://127.0.0.1:{port}/echo")]);
    let line = agent
        .proc
        .wait_line(|l| l.contains(" HTTP(subType=0) ") && l.contains(&format!(":{port}]")), WAIT)
        .expect("no text span line");
    // The route in parentheses comes from the default (heuristic) routes decorator, as in OBI.
    // 2026-11-25 06:40:01.123456 (1.2ms[1.2ms]) HTTP(subType=0) 200 POST /echo(/echo) [127.0.0.1 as 127.0.0.1:53210]->[127.0.0.1 as node:PORT] contentLen:10B responseLen:3B svc=[node nodejs] traceparent=[00-<32>-<16>[0000000000000000]-01]
    let re = regex::Regex::new(&format!(
        r"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{6}} \((\S+)\[(\S+)\]\) HTTP\(subType=0\) 200 POST /echo\(/echo\) \[127\.0\.0\.1 as 127\.0\.0\.1:(\d+)\]->\[127\.0\.0\.1 as node:{port}\] contentLen:10B responseLen:3B svc=\[node nodejs\] traceparent=\[00-[0-9a-f]{{32}}-[0-9a-f]{{16}}\[0000000000000000\]-01\]$"
    ))
    .unwrap();
    assert!(re.is_match(&line), "line does not match OBI's format:\n{line}");
    let caps = re.captures(&line).unwrap();
    assert!(caps[1].ends_with('s') && caps[2].ends_with('s'), "Go durations expected: {line}");
    let alive = agent.proc.wait_line(|l| l.contains(" ProcessAlive(subType=0) "), WAIT).expect("ProcessAlive line");
    assert!(alive.contains("svc=[node nodejs]"), "{alive}");
    drop(Command::new("true"));
}
