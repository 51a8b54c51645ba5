//! Distributed traces: traceparent in, nesting, and injection out
//! (sockops + sk_msg), across real services in different runtimes.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn agent_for(ports: &[u16], extra_yaml: &str) -> Agent {
    let list: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    let ports_entry = if list.is_empty() { String::new() } else { format!("    - open_ports: {}\n", list.join(",")) };
    Agent::builder()
        .env("OTEL_EBPF_BPF_CONTEXT_PROPAGATION", "headers")
        .config(&format!("discovery:\n  instrument:\n{ports_entry}{extra_yaml}"))
        .start()
}

/// Two instrumented Python services (ports a, c) and the agent tracing them
/// with propagation on; the servers live as long as the returned handles.
fn two_python_services() -> (u16, u16, [Proc; 2], Agent) {
    let (pa, pc) = (free_port(), free_port());
    let a = python_server(pa);
    let c = python_server(pc);
    let agent = agent_for(&[pa, pc], "");
    agent.wait_instrumented(a.pid(), WAIT);
    agent.wait_instrumented(c.pid(), WAIT);
    (pa, pc, [a, c], agent)
}

fn parent(s: &Value) -> &str {
    field(s, "parentSpanID")
}

fn span_id(s: &Value) -> &str {
    field(s, "spanID")
}

fn trace(s: &Value) -> &str {
    field(s, "traceID")
}

/// curl -> Python -> Node.js -> Python: one trace, exact parent links.
#[test]
fn three_services_in_three_runtimes_form_one_trace() {
    require_root();
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let a = python_server(pa);
    let b = node_server(pb);
    let c = python_server(pc);
    let agent = agent_for(&[pa, pb, pc], "");
    for p in [&a, &b, &c] {
        agent.wait_instrumented(p.pid(), WAIT);
    }
    // Node.js parents its calls through the injected script: a request
    // already in flight when it arrives gets root calls instead.
    agent.wait_injected(b.pid(), WAIT);
    let inner = format!("http://127.0.0.1:{pc}/headers");
    let middle = format!("http://127.0.0.1:{pb}/call?url={}", enc(&inner));
    let out = curl(&[&format!("http://127.0.0.1:{pa}/call?url={}", enc(&middle))]);
    assert!(out.starts_with("called 200"), "{out}");

    let server_a = &agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == pa)[0];
    let client_a = &agent.wait_spans(1, WAIT, |s| is_type(s, "HTTPClient") && host_port(s) == pb)[0];
    let server_b = &agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == pb)[0];
    let client_b = &agent.wait_spans(1, WAIT, |s| is_type(s, "HTTPClient") && host_port(s) == pc)[0];
    let server_c = &agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == pc)[0];

    let chain = [server_a, client_a, server_b, client_b, server_c];
    for s in chain {
        assert_eq!(trace(s), trace(server_a), "one trace id across the chain: {s:#}");
    }
    assert_eq!(parent(server_a), "0000000000000000", "the first server is the root");
    assert_eq!(parent(client_a), span_id(server_a));
    assert_eq!(parent(server_b), span_id(client_a));
    assert_eq!(parent(client_b), span_id(server_b));
    assert_eq!(parent(server_c), span_id(client_b));
    // Named after its script (apps/http_server.js), not `node`.
    assert_eq!(field(server_b, "hostName"), "http_server");
}

/// A client call made from a thread the handler started cannot be tied to
/// the request by the kernel (a fresh thread looks like a pooled one): it
/// starts its own trace, which the called service continues.
#[test]
fn calls_from_child_threads_start_their_own_trace() {
    require_root();
    let (pa, pc, _servers, agent) = two_python_services();
    let inner = format!("http://127.0.0.1:{pc}/status/200");
    let out = curl(&[&format!("http://127.0.0.1:{pa}/call-in-thread?url={}", enc(&inner))]);
    assert!(out.starts_with("called 200"), "{out}");
    let server_a = &agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == pa)[0];
    let client = &agent.wait_spans(1, WAIT, |s| is_type(s, "HTTPClient") && host_port(s) == pc)[0];
    let server_c = &agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == pc)[0];
    assert_ne!(client["attributes"]["clientAddr"], Value::Null);
    assert_eq!(parent(client), "0000000000000000", "no guessed parent");
    assert_ne!(trace(client), trace(server_a));
    assert_eq!(parent(server_c), span_id(client));
    assert_eq!(trace(server_c), trace(client));
}

/// An incoming traceparent is continued, not replaced.
#[test]
fn incoming_traceparent_is_continued() {
    require_root();
    let (pa, pc, _servers, agent) = two_python_services();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let inner = format!("http://127.0.0.1:{pc}/headers");
    let out = curl(&["-H", &format!("traceparent: {tp}"), &format!("http://127.0.0.1:{pa}/call?url={}", enc(&inner))]);
    assert!(out.starts_with("called 200"), "{out}");
    let server_a = &agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == pa)[0];
    assert_eq!(trace(server_a), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(parent(server_a), "00f067aa0ba902b7");
    let server_c = &agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == pc)[0];
    assert_eq!(trace(server_c), "4bf92f3577b34da6a3ce929d0e0e4736", "the next service continues the same trace");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Runs raw_client.py (instrumented) against the echo server; returns what
/// the server received for each request.
/// Runs the raw client once `agent` has chosen it: only chosen processes
/// have a traceparent injected, and the client connects at once otherwise.
fn send_raw(agent: &Agent, port: u16, writes: &[Vec<u8>], responses: usize, pause_ms: u64) -> Vec<Vec<u8>> {
    let case = serde_json::json!({
        "writes": writes.iter().map(|w| hex(w)).collect::<Vec<_>>(),
        "responses": responses,
        "pause_ms": pause_ms,
        "wait_stdin": true,
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), case.to_string()).unwrap();
    let mut p = spawn_with_stdin(
        "raw-client",
        Command::new(python()).arg(apps_dir().join("raw_client.py")).arg(port.to_string()).arg(file.path()),
    );
    agent.wait_instrumented(p.pid(), WAIT);
    std::io::Write::write_all(p.child.stdin.as_mut().unwrap(), b"go\n").unwrap();
    assert!(p.wait_exit(WAIT).is_some_and(|s| s.success()), "raw client failed");
    let line = p.lines().pop().expect("raw client output");
    let v: Value = serde_json::from_str(&line).unwrap();
    v["echoed"].as_array().unwrap().iter().map(|h| unhex(h.as_str().unwrap())).collect()
}

/// Removes one `traceparent: ...\r\n` line, checking it is well formed.
fn strip_one_traceparent(received: &[u8]) -> (Vec<u8>, Option<String>) {
    let text = received.to_vec();
    let lower = String::from_utf8_lossy(&text).to_ascii_lowercase();
    let Some(start) = lower.find("\r\ntraceparent: ").map(|i| i + 2) else { return (text, None) };
    let end = start + lower[start..].find("\r\n").unwrap() + 2;
    let line = String::from_utf8_lossy(&text[start..end - 2]).into_owned();
    assert!(
        !lower[end..].contains("\r\ntraceparent:") && !lower[..start].contains("traceparent"),
        "more than one traceparent: {lower}"
    );
    let mut rest = text[..start].to_vec();
    rest.extend_from_slice(&text[end..]);
    (rest, Some(line))
}

/// What reaches the next service is the request the app sent plus exactly
/// one well-formed traceparent line, for every request shape.
#[test]
fn injection_never_corrupts_requests() {
    require_root();
    let port = free_port();
    let _echo = start_server(
        "raw-echo",
        Command::new(python()).arg(apps_dir().join("raw_echo_server.py")).arg(port.to_string()),
    );
    let agent = agent_for(&[], "    - cmd_args: '*raw_client.py*'\n");
    let re = regex::Regex::new(r"^traceparent: 00-[0-9a-f]{32}-[0-9a-f]{16}-01$").unwrap();

    // A plain GET: injected right after the request line.
    let get = b"GET /plain?q=1 HTTP/1.1\r\nHost: svc\r\nUser-Agent: t\r\n\r\n".to_vec();
    let got = send_raw(&agent, port, std::slice::from_ref(&get), 1, 0);
    let (rest, tp) = strip_one_traceparent(&got[0]);
    assert_eq!(rest, get, "bytes other than the header changed");
    let tp = tp.expect("a traceparent must be injected");
    assert!(re.is_match(&tp), "{tp}");
    assert!(String::from_utf8_lossy(&got[0]).starts_with("GET /plain?q=1 HTTP/1.1\r\ntraceparent: "));
    // The client span carries the ids that were sent.
    let client = &agent.wait_spans(1, WAIT, |s| is_type(s, "HTTPClient") && attr(s, "url") == "/plain")[0];
    assert_eq!(tp, format!("traceparent: 00-{}-{}-01", trace(client), span_id(client)));

    // A 200 KB POST: body byte-exact.
    let mut post = b"POST /upload HTTP/1.1\r\nHost: svc\r\nContent-Length: 200000\r\n\r\n".to_vec();
    post.extend((0..200_000u32).map(|i| (i % 251) as u8));
    let got = send_raw(&agent, port, std::slice::from_ref(&post), 1, 0);
    let (rest, tp) = strip_one_traceparent(&got[0]);
    assert!(tp.is_some());
    assert!(rest == post, "POST body changed");

    // 8 KB of headers.
    let mut big = b"GET /big-headers HTTP/1.1\r\nHost: svc\r\n".to_vec();
    for i in 0..100 {
        big.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(64)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    let got = send_raw(&agent, port, std::slice::from_ref(&big), 1, 0);
    let (rest, tp) = strip_one_traceparent(&got[0]);
    assert!(tp.is_some());
    assert!(rest == big, "large head changed");

    // The app already propagates: left exactly as sent.
    let own = b"GET /own HTTP/1.1\r\nHost: svc\r\nTraceParent: 00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01\r\n\r\n".to_vec();
    let got = send_raw(&agent, port, std::slice::from_ref(&own), 1, 0);
    assert_eq!(got[0], own, "a request with its own traceparent must not change");
    let own_first =
        b"GET /own2 HTTP/1.1\r\ntraceparent: 00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01\r\n\r\n".to_vec();
    let got = send_raw(&agent, port, std::slice::from_ref(&own_first), 1, 0);
    assert_eq!(got[0], own_first, "a traceparent right after the request line counts too");

    // Request line split over two writes: not touched, still intact.
    let split = b"GET /split HTTP/1.1\r\nHost: svc\r\n\r\n".to_vec();
    let got = send_raw(&agent, port, &[split[..7].to_vec(), split[7..].to_vec()], 1, 50);
    assert_eq!(got[0], split);

    // Pipelined requests in one write, then keep-alive requests: each
    // arrives intact, with at most one header each.
    let mut pipelined = Vec::new();
    for p in ["/p1", "/p2", "/p3"] {
        pipelined.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: svc\r\n\r\n").as_bytes());
    }
    let got = send_raw(&agent, port, &[pipelined], 3, 0);
    for (i, p) in ["/p1", "/p2", "/p3"].iter().enumerate() {
        let (rest, _) = strip_one_traceparent(&got[i]);
        assert_eq!(rest, format!("GET {p} HTTP/1.1\r\nHost: svc\r\n\r\n").into_bytes());
    }
    let ka: Vec<Vec<u8>> = (0..5).map(|i| format!("GET /ka{i} HTTP/1.1\r\nHost: svc\r\n\r\n").into_bytes()).collect();
    let mut writes = Vec::new();
    for w in &ka {
        writes.push(w.clone());
    }
    // Sequential keep-alive requests on one connection (the client waits
    // for nothing between them here, so they may also coalesce).
    let got = send_raw(&agent, port, &writes, 5, 100);
    for (i, w) in ka.iter().enumerate() {
        let (rest, _) = strip_one_traceparent(&got[i]);
        assert_eq!(&rest, w);
    }
    let stats = agent.proc.lines().iter().filter(|l| l.contains("inject")).cloned().collect::<Vec<_>>();
    eprintln!("{stats:#?}");
}

/// Every downstream server span continues the trace of the client span that
/// called it (injection carries each call's own context, roots included).
fn assert_downstream_follows_clients(spans: &[Value], pc: u16) {
    let clients: HashMap<&str, &Value> =
        spans.iter().filter(|s| is_type(s, "HTTPClient") && host_port(s) == pc).map(|s| (span_id(s), s)).collect();
    for sc in spans.iter().filter(|s| is_type(s, "HTTP") && host_port(s) == pc) {
        let cl = clients.get(parent(sc)).unwrap_or_else(|| panic!("downstream span without its client: {sc:#}"));
        assert_eq!(trace(sc), trace(cl));
    }
}

/// 200 concurrent requests through a threaded server, each making its two
/// calls from the thread serving it: every client span is the child of its
/// own server span (no cross-talk between threads).
#[test]
fn concurrent_requests_keep_their_parents() {
    require_root();
    let (pa, pc, _servers, agent) = two_python_services();
    let spans = audit::fanout_spans(
        &agent,
        pa,
        pc,
        &audit::Fanout { requests: 200, concurrency: 100, calls: 2, via: "inline" },
    );
    let audit = audit::parent_audit("python threaded server, calls inline", &spans);
    assert_eq!(audit, audit::Audit { right: 400, root: 0, wrong: 0 });
    let parents: HashSet<&str> =
        spans.iter().filter(|s| is_type(s, "HTTPClient") && host_port(s) == pc).map(parent).collect();
    assert_eq!(parents.len(), 200, "each request parents exactly its own two calls");
    assert_downstream_follows_clients(&spans, pc);
}

/// Calls handed to other threads (a fresh thread per call, or a shared pool
/// whose threads are created lazily by whichever request needed one first):
/// the kernel cannot tell which request such a thread works for, so its calls
/// start their own traces. Never the wrong request.
#[test]
fn calls_from_other_threads_are_roots_never_wrong() {
    require_root();
    let (pa, pc, _servers, agent) = two_python_services();
    for via in ["thread", "pool"] {
        let spans =
            audit::fanout_spans(&agent, pa, pc, &audit::Fanout { requests: 60, concurrency: 30, calls: 2, via });
        let audit = audit::parent_audit(&format!("python threaded server, calls via {via}"), &spans);
        assert_eq!(audit.wrong, 0, "{via}: {audit:?}");
        assert_downstream_follows_clients(&spans, pc);
    }
}

/// Injection only ever touches HTTP/1 requests: a traced client speaking
/// HTTP/2 with prior knowledge (whose preface starts "PRI * HTTP/2.0\r\n")
/// or TLS (a ClientHello holding 0x0a bytes) must go through untouched.
/// Before the fix, a traceparent line went into both and curl failed (HTTP/2
/// framing error 16, TLS handshake error 35).
#[test]
fn injection_leaves_http2_and_tls_clients_alone() {
    require_root();
    let h2_port = free_port();
    let h2 =
        start_server("node-h2", Command::new("node").arg(apps_dir().join("http2_server.js")).arg(h2_port.to_string()));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let tls_port = free_port();
    let tls = start_server(
        "py-https",
        Command::new(python())
            .arg(apps_dir().join("http_server.py"))
            .arg(tls_port.to_string())
            .arg("--tls")
            .args([&cert, &key]),
    );
    // Only this test's curls: a selector of every curl would inject into
    // the requests of tests running at the same time (it did: their first
    // server span got a parent).
    let own_curls = format!("    - cmd_args: '*127.0.0.1:{h2_port}/*'\n    - cmd_args: '*127.0.0.1:{tls_port}/*'\n");
    let agent = agent_for(&[h2_port, tls_port], &own_curls);
    agent.wait_instrumented(h2.pid(), WAIT);
    agent.wait_instrumented(tls.pid(), WAIT);
    for i in 0..5 {
        let out = curl(&[
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            &format!("http://127.0.0.1:{h2_port}/h2/{i}"),
        ]);
        assert_eq!(out, "200 2", "h2c request {i} through a traced curl");
        let out =
            curl(&["-k", "-o", "/dev/null", "-w", "%{http_code}", &format!("https://127.0.0.1:{tls_port}/status/200")]);
        assert_eq!(out, "200", "HTTPS request {i} through a traced curl");
    }
    // The HTTP/2 exchanges were still traced on both sides.
    let h2_servers = agent.wait_spans(5, WAIT, |s| is_type(s, "HTTP") && host_port(s) == h2_port);
    assert_eq!(h2_servers.len(), 5, "{h2_servers:#?}");
}

/// From its exec until discovery decides, every new process is watched
/// (so a selected one loses no early span), but only a selected one may have
/// its traffic changed. Before the fix, curl runs nobody selected had a
/// traceparent put into their requests by any agent that watched execs (in
/// the suite, by the agent of another test running at the same time).
#[test]
fn unselected_processes_are_never_injected() {
    require_root();
    let port = free_port();
    let _echo = start_server(
        "raw-echo",
        Command::new(python()).arg(apps_dir().join("raw_echo_server.py")).arg(port.to_string()),
    );
    // A selection by command line: the agent watches every exec.
    let agent = agent_for(&[], "    - cmd_args: '*selects-nothing-at-all*'\n");
    for i in 0..20 {
        let out = curl(&[&format!("http://127.0.0.1:{port}/unselected/{i}")]);
        assert!(out.starts_with(&format!("GET /unselected/{i} HTTP/1.1\r\n")), "request {i} did not arrive: {out:?}");
        assert!(
            !out.to_ascii_lowercase().contains("traceparent"),
            "request {i} of an unselected curl changed: {out:?}"
        );
    }
    assert!(agent.spans().iter().all(|s| attr(s, "url") != "/unselected/0"), "an unselected process was reported");
}
