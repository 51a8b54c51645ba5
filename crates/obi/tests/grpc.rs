//! HTTP/2 and gRPC end to end: grpcio servers and clients, a Node.js http2
//! server, curl over h2c, the real agent and real eBPF. Runs as root.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn spans_of(t: &'static str, port: u16) -> impl Fn(&Value) -> bool {
    move |s| is_type(s, t) && host_port(s) == port
}

fn status(s: &Value) -> &str {
    attr(s, "status")
}

/// Unary, server-streaming and a failing call from an instrumented grpcio
/// client to a grpcio server: server and client spans with the right paths
/// and gRPC status codes.
#[test]
fn grpcio_unary_stream_and_error() {
    require_root();
    let port = free_port();
    let server = grpc_server(port);
    let agent = Agent::builder()
        .config(&format!(
            "discovery:\n  instrument:\n    - open_ports: {port}\n    - cmd_args: '*grpc_client.py * 127.0.0.1:{port}*'\n"
        ))
        .start();
    agent.wait_instrumented(server.pid(), WAIT);

    let unary = grpc_client(port, &["unary", "3"]);
    assert_eq!(unary.lines(), vec!["ok 3"]);
    let stream = grpc_client(port, &["stream", "5"]);
    assert_eq!(stream.lines(), vec!["ok 5"]);
    let fail = grpc_client(port, &["fail"]);
    assert_eq!(fail.lines(), vec!["ok 5"]);

    let servers = agent.wait_spans(5, WAIT, spans_of("GRPC", port));
    let by_method =
        |spans: &[Value], m: &str| spans.iter().filter(|s| attr(s, "method") == m).cloned().collect::<Vec<_>>();
    assert_eq!(servers.len(), 5, "{servers:#?}");
    let u = by_method(&servers, "/obi.test.Echo/Unary");
    assert_eq!(u.len(), 3);
    assert!(u.iter().all(|s| status(s) == "0" && field(s, "kind") == "SPAN_KIND_SERVER"), "{u:#?}");
    let st = by_method(&servers, "/obi.test.Echo/Stream");
    assert_eq!(st.len(), 1);
    assert_eq!(status(&st[0]), "0");
    let f = by_method(&servers, "/obi.test.Echo/Fail");
    assert_eq!(f.len(), 1);
    assert_eq!(status(&f[0]), "5", "NOT_FOUND from the trailers: {f:#?}");
    for s in &servers {
        assert_eq!(attr(s, "clientAddr"), "127.0.0.1");
        assert_eq!(attr(s, "serverPort"), port.to_string());
    }

    let clients = agent.wait_spans(5, WAIT, spans_of("GRPCClient", port));
    assert_eq!(clients.len(), 5, "{clients:#?}");
    assert_eq!(by_method(&clients, "/obi.test.Echo/Unary").len(), 3);
    assert_eq!(status(&by_method(&clients, "/obi.test.Echo/Fail")[0]), "5");
    assert!(clients.iter().all(|s| field(s, "kind") == "SPAN_KIND_CLIENT"));
}

/// 100 concurrent unary calls multiplexed on one HTTP/2 connection: 100
/// server spans, each with its own stream and the right path and status.
#[test]
fn hundred_concurrent_calls_on_one_connection() {
    require_root();
    let port = free_port();
    let server = grpc_server(port);
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);

    let client = grpc_client(port, &["concurrent", "100"]);
    assert_eq!(client.lines(), vec!["ok 100"]);
    let servers = agent.wait_spans(100, WAIT, spans_of("GRPC", port));
    assert_eq!(servers.len(), 100);
    assert!(servers.iter().all(|s| attr(s, "method") == "/obi.test.Echo/Unary" && status(s) == "0"));
    let conns: HashSet<&str> = servers.iter().map(|s| field(s, "peerPort")).collect();
    assert_eq!(conns.len(), 1, "all calls share one connection");
    let ids: HashSet<&str> = servers.iter().map(|s| field(s, "spanID")).collect();
    assert_eq!(ids.len(), 100);
}

/// A `traceparent` in gRPC metadata is continued by the server span.
#[test]
fn traceparent_from_grpc_metadata() {
    require_root();
    let port = free_port();
    let server = grpc_server(port);
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    grpc_client(port, &["traceparent", tp]);
    let spans = agent.wait_spans(1, WAIT, spans_of("GRPC", port));
    assert_eq!(spans.len(), 1);
    assert_eq!(field(&spans[0], "traceID"), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(field(&spans[0], "parentSpanID"), "b7ad6b7169203331");
    assert_ne!(field(&spans[0], "spanID"), "b7ad6b7169203331");
}

/// Node.js http2 server hit by curl over h2c (prior knowledge): HTTP server
/// spans from the server, HTTP client spans from curl.
#[test]
fn node_http2_server_and_curl() {
    require_root();
    let port = free_port();
    let server =
        start_server("node-h2", Command::new("node").arg(apps_dir().join("http2_server.js")).arg(port.to_string()));
    let agent = Agent::builder()
        .config(&format!("discovery:\n  instrument:\n    - open_ports: {port}\n    - exe_path: '*/curl'\n"))
        .start();
    agent.wait_instrumented(server.pid(), WAIT);

    // One curl per URL: curl 7.88 fails reusing a prior-knowledge h2c
    // connection to Node ("Error in the HTTP2 framing layer"), agent or not.
    for (path, code) in [("/", "200"), ("/status/404", "404"), ("/status/500", "500"), ("/big/100000?x=1", "200")] {
        let out = curl(&[
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            &format!("http://127.0.0.1:{port}{path}"),
        ]);
        assert_eq!(out, format!("{code} 2"), "{path}");
    }

    let servers = agent.wait_spans(4, WAIT, spans_of("HTTP", port));
    assert_eq!(servers.len(), 4, "{servers:#?}");
    let find = |spans: &[Value], url: &str| spans.iter().find(|s| attr(s, "url") == url).cloned().unwrap_or_default();
    assert_eq!(status(&find(&servers, "/")), "200");
    assert_eq!(status(&find(&servers, "/status/404")), "404");
    assert_eq!(status(&find(&servers, "/status/500")), "500");
    let big = find(&servers, "/big/100000");
    assert_eq!(attr(&big, "method"), "GET");
    assert_eq!(attr(&big, "responseLen"), "100000", "DATA frame lengths add up: {big:#}");
    let clients = agent.wait_spans(4, WAIT, spans_of("HTTPClient", port));
    assert_eq!(clients.len(), 4, "{clients:#?}");
    assert_eq!(status(&find(&clients, "/status/500")), "500");
}

/// HTTP/2 inside TLS (ALPN h2): a Node.js secure http2 server (OpenSSL
/// linked into node) traced through uprobes, two connections in a row (Node
/// reuses the SSL object's address for the second).
#[test]
fn http2_over_tls() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let port = free_port();
    let server = start_server(
        "node-h2-tls",
        Command::new("node")
            .arg(apps_dir().join("http2_server.js"))
            .arg(port.to_string())
            .arg("--tls")
            .arg(&cert)
            .arg(&key),
    );
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);
    // OpenSSL uprobes attach to a process after it is found; give that a moment.
    agent.proc.wait_line(|l| l.contains("OpenSSL uprobes") && l.contains(&format!("pid={}", server.pid())), WAIT);

    for (path, code) in [("/", "200"), ("/status/503", "503")] {
        let out = curl(&[
            "--http2",
            "-k",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            &format!("https://localhost:{port}{path}"),
        ]);
        assert_eq!(out, format!("{code} 2"), "{path}");
    }
    let servers = agent.wait_spans(2, WAIT, spans_of("HTTP", port));
    assert_eq!(servers.len(), 2, "{servers:#?}");
    let urls: HashSet<(&str, &str)> = servers.iter().map(|s| (attr(s, "url"), status(s))).collect();
    assert_eq!(urls, HashSet::from([("/", "200"), ("/status/503", "503")]));
    // curl's side is not asserted: a 20 ms curl is usually done before its
    // libssl uprobes are attached (see docs/tls.md).
}

/// Garbage after a valid preface: the connection is given up (counted), no
/// bogus span, and the next connection is traced as usual.
#[test]
fn malformed_frames_do_not_break_later_connections() {
    require_root();
    let port = free_port();
    let server =
        start_server("node-h2", Command::new("node").arg(apps_dir().join("http2_server.js")).arg(port.to_string()));
    let mut agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);

    let mut junk = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    junk.extend_from_slice(&[0xff; 64]);
    raw_exchange(port, &junk, Duration::from_millis(500));
    let mut bad_hpack = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bad_hpack.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS
    bad_hpack.extend_from_slice(&[0, 0, 2, 1, 5, 0, 0, 0, 1, 0xff, 0x7f]); // HEADERS, bad index
    raw_exchange(port, &bad_hpack, Duration::from_millis(500));

    let out = curl(&[
        "--http2-prior-knowledge",
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert_eq!(out, "200");
    let servers = agent.wait_spans(1, WAIT, spans_of("HTTP", port));
    assert_eq!(servers.len(), 1, "only the good request: {servers:#?}");
    assert_eq!(attr(&servers[0], "url"), "/");
    agent.stop();
    let totals = agent.proc.lines().into_iter().find(|l| l.contains("msg=totals")).unwrap_or_default();
    assert!(totals.contains("h2_desynced_conns=2"), "{totals}");
}

/// Runs h2_split_client.py (frame headers cut across writes on its side,
/// read 5 bytes at a time, so both directions of both ends see split frame
/// headers) against the Node.js http2 server: every request one server and
/// one client span with the right path and status, and no connection given
/// up. `tls`: the same inside TLS (ALPN h2), where the split is in the
/// plaintext that SSL_write/SSL_read see.
fn split_frame_headers(tls: bool) {
    require_root();
    const N: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut node = Command::new("node");
    node.arg(apps_dir().join("http2_server.js")).arg(port.to_string());
    let mut client_cmd = Command::new(python());
    client_cmd.arg(apps_dir().join("h2_split_client.py")).arg(port.to_string()).arg(N.to_string());
    if tls {
        let (cert, key) = self_signed_cert(dir.path());
        node.arg("--tls").arg(cert).arg(key);
        client_cmd.arg("--tls");
    }
    let server = start_server("node-h2", &mut node);
    let mut agent = Agent::builder()
        .config(&format!(
            "discovery:\n  instrument:\n    - open_ports: {port}\n    - cmd_args: '*h2_split_client.py {port} *'\n"
        ))
        .start();
    agent.wait_instrumented(server.pid(), WAIT);
    let mut client = spawn_with_stdin("h2-split-client", &mut client_cmd);
    agent.wait_instrumented(client.pid(), WAIT);
    if tls {
        for pid in [server.pid(), client.pid()] {
            agent.proc.wait_line(|l| l.contains("OpenSSL probes attached") && l.contains(&format!("pid={pid} ")), WAIT);
        }
    }
    client.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(client.wait_exit(Duration::from_secs(60)).is_some_and(|s| s.success()), "{:?}", client.lines());
    let want_statuses: Vec<&str> = (0..N).map(|i| if i % 2 == 0 { "200" } else { "other" }).collect();
    assert_eq!(client.stdout_lines(), vec![format!("done {N} {}", want_statuses.join(","))]);

    let mut want: Vec<(String, &str)> = (0..N)
        .map(|i| if i % 2 == 0 { (format!("/split/{i}"), "200") } else { ("/status/404".into(), "404") })
        .collect();
    want.sort();
    for t in ["HTTP", "HTTPClient"] {
        // The Python TLS client's spans sometimes carry no peer address
        // (port 0: a separate TLS issue, not the frame walk's); only this
        // test's client is traced (cmd_args has the port).
        let select =
            move |s: &Value| is_type(s, t) && (host_port(s) == port || (tls && t == "HTTPClient" && host_port(s) == 0));
        let spans = agent.wait_spans(N, WAIT, select);
        let mut got: Vec<(String, &str)> = spans.iter().map(|s| (attr(s, "url").to_string(), status(s))).collect();
        got.sort();
        assert_eq!(got, want, "{t}: one span per request");
        assert!(spans.iter().all(|s| attr(s, "method") == "GET"), "{spans:#?}");
    }
    agent.stop();
    let totals = agent.proc.lines().into_iter().find(|l| l.contains("msg=totals")).unwrap_or_default();
    assert!(totals.contains(" h2_desynced_conns=0 "), "{totals}");
}

/// h2c: frame headers split across read()/write() calls on both ends.
#[test]
fn frame_headers_split_across_syscalls() {
    split_frame_headers(false);
}

/// HTTP/2 over TLS: frame headers split across SSL_write/SSL_read calls.
#[test]
fn frame_headers_split_across_tls_records() {
    split_frame_headers(true);
}
