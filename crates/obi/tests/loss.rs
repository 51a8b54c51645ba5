//! No silent loss, no leaks (issue #20): forking servers, requests split
//! into tiny writes, churn of connections the agent ignores, and sockets
//! moved to fds 0/1 (busybox httpd, inetd). Counts are exact, the kernel
//! maps go back to their base size, and the `totals` line adds up.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

const WAIT: Duration = Duration::from_secs(30);

/// One GET on a connection of its own; returns the response.
fn get_once(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Reads one response with a Content-Length from a keep-alive connection.
fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

fn http_server_spans(agent: &Agent, port: u16, n: usize) -> Vec<Value> {
    agent.wait_spans(n, WAIT, |s| is_type(s, "HTTP") && host_port(s) == port)
}

/// The `key=value` pairs of the agent's `totals` line (after it stopped);
/// `maps` is split into its own `name=count` pairs, prefixed `map.`.
fn totals(agent: &Agent) -> HashMap<String, u64> {
    let line = agent
        .proc
        .lines()
        .into_iter()
        .find(|l| l.contains("msg=totals"))
        .unwrap_or_else(|| panic!("no totals line: {:#?}", agent.proc.lines()));
    let mut out = HashMap::new();
    let maps_at = line.find("maps=\"").expect("maps field") + 6;
    let maps = &line[maps_at..maps_at + line[maps_at..].find('"').unwrap()];
    for kv in maps.split(' ') {
        if let Some((k, v)) = kv.split_once('=') {
            out.insert(format!("map.{k}"), v.parse().unwrap());
        }
    }
    for kv in line.split(' ') {
        if let Some((k, v)) = kv.split_once('=')
            && let Ok(v) = v.parse::<u64>()
        {
            out.entry(k.to_string()).or_insert(v);
        }
    }
    out
}

/// The counter table adds up: every event the kernel wrote was read, and
/// every span the tracker made was handed to the sinks or counted dropped.
fn assert_totals_add_up(t: &HashMap<String, u64>) {
    let v = |k: &str| *t.get(k).unwrap_or_else(|| panic!("{k} missing from totals: {t:?}"));
    assert_eq!(v("kernel_events"), v("events_read"), "kernel events not all read: {t:?}");
    assert_eq!(v("ringbuf_full"), 0, "{t:?}");
    assert_eq!(
        v("spans"),
        v("spans_emitted") + v("unnamed_spans_dropped") + v("own_spans_dropped"),
        "spans made != emitted + dropped: {t:?}"
    );
}

/// 200 connections to a server that forks a child per connection: 200
/// spans, each named like the server, none dropped; the exited children
/// leave nothing in traced_pids; the totals add up.
#[test]
fn forking_server_children_lose_nothing_and_leave_nothing() {
    require_root();
    let port = free_port();
    let server = start_server(
        "forking-server",
        Command::new(python()).arg(apps_dir().join("forking_server.py")).arg(port.to_string()).arg("fork"),
    );
    let mut agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);
    for i in 0..200 {
        let resp = get_once(port, &format!("/fork/{i}"));
        assert!(resp.starts_with("HTTP/1.1 200") && resp.ends_with(&format!("path /fork/{i}\n")), "{resp}");
    }
    let spans = http_server_spans(&agent, port, 200);
    let mut routes: Vec<&str> = spans.iter().map(|s| attr(s, "url")).collect();
    routes.sort_unstable();
    routes.dedup();
    assert_eq!(spans.len(), 200, "spans of forked children (distinct urls {})", routes.len());
    assert_eq!(routes.len(), 200);
    for s in &spans {
        assert_eq!(field(s, "hostName"), field(&spans[0], "hostName"), "{s:#}");
        assert_ne!(field(s, "hostName"), "", "{s:#}");
        assert_eq!(attr(s, "status"), "200");
    }
    // Let the last children's exits reach the agent.
    std::thread::sleep(Duration::from_secs(2));
    assert!(agent.stop().is_some_and(|s| s.success()));
    let t = totals(&agent);
    eprintln!("totals: {t:?}");
    assert_eq!(t["map.traced_pids"], 1, "only the server itself stays traced: {t:?}");
    assert_eq!(t["unnamed_spans_dropped"], 0, "{t:?}");
    assert_totals_add_up(&t);
}

/// Sends `request` on `s` in the given pieces, `pause` apart (no Nagle, so
/// each piece is its own segment and, paced, its own read on the server).
fn send_in_pieces(s: &mut TcpStream, request: &[u8], pieces: &[usize], pause: Duration) {
    let mut at = 0;
    for &n in pieces {
        s.write_all(&request[at..at + n]).unwrap();
        s.flush().unwrap();
        at += n;
        std::thread::sleep(pause);
    }
    s.write_all(&request[at..]).unwrap();
}

/// Requests whose first bytes come in reads too short to tell the protocol
/// (a byte at a time, or a first write of 1 to 4 bytes on a keep-alive
/// connection) are all traced, each exactly once.
#[test]
fn requests_split_into_tiny_first_writes_are_all_traced() {
    require_root();
    let port = free_port();
    let server = python_server(port);
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);
    let pause = Duration::from_millis(5);
    let request = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes();

    // One connection, two requests, every byte written on its own.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    for i in 0..2 {
        let req = request(&format!("/leaf/bytewise/{i}"));
        send_in_pieces(&mut s, &req, &vec![1; req.len() - 1], pause);
        assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
    }
    drop(s);
    // A first write of 1..=4 bytes, then the rest; two more requests whole.
    for first in 1..=4 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        for i in 0..3 {
            let req = request(&format!("/leaf/first{first}/{i}"));
            let pieces: &[usize] = if i == 0 { &[first] } else { &[] };
            send_in_pieces(&mut s, &req, pieces, pause);
            assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
        }
    }

    let spans = http_server_spans(&agent, port, 14);
    let mut urls: Vec<&str> = spans.iter().map(|s| attr(s, "url")).collect();
    urls.sort_unstable();
    let mut want: Vec<String> = (0..2).map(|i| format!("/leaf/bytewise/{i}")).collect();
    want.extend((1..=4).flat_map(|f| (0..3).map(move |i| format!("/leaf/first{f}/{i}"))));
    want.sort_unstable();
    assert_eq!(urls, want, "one span per request");
    for s in &spans {
        assert_eq!(attr(s, "method"), "GET");
        assert_eq!(attr(s, "status"), "200");
    }
}

/// The same on the client side: a traced client whose requests start with
/// tiny writes gets one client span per request.
#[test]
fn client_requests_split_into_tiny_first_writes_are_all_traced() {
    require_root();
    let port = free_port();
    let _server = python_server(port);
    let agent =
        Agent::builder().config("discovery:\n  instrument:\n    - cmd_args: '*tiny_writes_client.py*'\n").start();
    let mut client = spawn_with_stdin(
        "tiny-writes-client",
        Command::new(python()).arg(apps_dir().join("tiny_writes_client.py")).arg(port.to_string()),
    );
    agent.wait_instrumented(client.pid(), WAIT);
    client.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "{:?}", client.lines());
    assert!(client.lines().contains(&"done 14".to_string()), "{:?}", client.lines());

    let spans = agent.wait_spans(14, WAIT, |s| is_type(s, "HTTPClient") && host_port(s) == port);
    let mut urls: Vec<&str> = spans.iter().map(|s| attr(s, "url")).collect();
    urls.sort_unstable();
    let mut want: Vec<String> = (0..2).map(|i| format!("/leaf/client-bytewise/{i}")).collect();
    want.extend((1..=4).flat_map(|f| (0..3).map(move |i| format!("/leaf/client-first{f}/{i}"))));
    want.sort_unstable();
    assert_eq!(urls, want, "one client span per request");
    for s in &spans {
        assert_eq!(attr(s, "method"), "GET");
        assert_eq!(attr(s, "status"), "200");
    }
}

/// Bytes no parser recognises.
const NOT_A_PROTOCOL: &[u8] = b"\x01\x7fzz-no-protocol-zz\x00\xfe\n";

/// Connects, writes `bytes` and resets the connection (SO_LINGER 0: no
/// TIME_WAIT left on either side, and the peer sees it closed at once).
fn send_and_reset(port: u16, bytes: &[u8]) {
    use std::os::fd::AsRawFd;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(bytes).unwrap();
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket we own, with a correctly sized value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// 20,000 short connections of no known protocol, each closed by its peer
/// before the agent could mark it ignored: the kernel's ignored_conns table
/// ends near empty (it held ~16k dead entries, full for good, before), and
/// a connection ignored afterwards is still skipped in the kernel.
#[test]
fn ignored_connections_leave_the_kernel_table_when_they_close() {
    require_root();
    let port = free_port();
    let prom = free_port();
    let server = start_server(
        "sink-server",
        Command::new(python()).arg(apps_dir().join("sink_server.py")).arg(port.to_string()),
    );
    let mut agent = Agent::builder()
        .env("OTEL_EBPF_OPEN_PORT", &port.to_string())
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .env("OTEL_EBPF_INTERNAL_METRICS_EXPORTER", "prometheus")
        .start();
    agent.wait_instrumented(server.pid(), WAIT);
    let started = Instant::now();
    const CHURN: usize = 20_000;
    for _ in 0..CHURN {
        send_and_reset(port, NOT_A_PROTOCOL);
    }
    eprintln!("{CHURN} connections in {:?}", started.elapsed());
    let internal = prom::internal_when(prom, "obi_ignored_connections_total", CHURN as f64, WAIT);
    assert_eq!(prom::total(&internal, "obi_ignored_connections_total", &[]), CHURN as f64);
    let ignored_before = prom::total(&internal, "obi_ebpf_ignored_syscalls_total", &[]);

    // One more connection: marked ignored after its first bytes, its next
    // reads are skipped in the kernel.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(NOT_A_PROTOCOL).unwrap();
    prom::internal_when(prom, "obi_ignored_connections_total", (CHURN + 1) as f64, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..20 {
        s.write_all(NOT_A_PROTOCOL).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(s);
    std::thread::sleep(Duration::from_secs(2));
    let internal = prom::parse(&prom::scrape(prom, "/internal/metrics"));
    let skipped = prom::total(&internal, "obi_ebpf_ignored_syscalls_total", &[]) - ignored_before;
    assert!(skipped >= 19.0, "reads of the ignored connection skipped in the kernel: {skipped}");
    let full = prom::total(&internal, "obi_ebpf_table_full_total", &[("table", "ignored_connections")]);
    assert_eq!(full, 0.0);

    assert!(agent.stop().is_some_and(|s| s.success()));
    let t = totals(&agent);
    eprintln!("totals: {t:?}");
    assert!(t["map.ignored_conns"] <= 16, "ignored_conns left: {t:?}");
    assert_eq!(t["map.conn_state"], 0, "{t:?}");
    assert_totals_add_up(&t);
    assert!(started.elapsed() < Duration::from_secs(90), "{:?}", started.elapsed());
}

/// A directory of small files for busybox httpd to serve, removed on drop
/// (a fixed path under /tmp piled up one per run).
fn www_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(&format!("obi-loss-{name}-")).tempdir().unwrap();
    for i in 0..N_DUP {
        std::fs::write(dir.path().join(format!("f{i}.txt")), format!("file {i}\n")).unwrap();
    }
    dir
}

/// Requests per server in the fd 0/1 tests.
const N_DUP: usize = 50;

/// Sends N_DUP requests (one connection each), checking each got its file;
/// returns the server spans of `port` once N_DUP of them arrived (or the
/// wait ran out).
fn get_files(agent: &Agent, port: u16) -> Vec<Value> {
    for i in 0..N_DUP {
        let resp = get_once(port, &format!("/f{i}.txt"));
        assert!(
            resp.starts_with("HTTP/1.") && resp.contains(" 200 ") && resp.ends_with(&format!("file {i}\n")),
            "{resp}"
        );
    }
    http_server_spans(agent, port, N_DUP)
}

/// Each request traced exactly once, as a GET answered 200, by `service`.
fn assert_each_file_traced_once(spans: &[Value], service: &str, totals: &HashMap<String, u64>) {
    let mut urls: Vec<&str> = spans.iter().map(|s| attr(s, "url")).collect();
    urls.sort_unstable();
    let mut want: Vec<String> = (0..N_DUP).map(|i| format!("/f{i}.txt")).collect();
    want.sort_unstable();
    assert_eq!(urls, want, "one span per request; totals: {totals:?}");
    for s in spans {
        assert_eq!(attr(s, "status"), "200", "{s:#}");
        assert_eq!(attr(s, "method"), "GET");
        assert_eq!(field(s, "hostName"), service, "{s:#}");
    }
}

/// busybox httpd forks a child per connection, which moves the socket to
/// fds 0 and 1 (dup2) and closes the original: every request traced once.
#[test]
fn busybox_httpd_children_on_fds_0_and_1_are_traced() {
    require_root();
    let port = free_port();
    let dir = www_dir("busybox");
    let server = spawn(
        "busybox-httpd",
        Command::new("busybox").args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"]).arg(dir.path()),
    );
    wait_port(port, WAIT);
    let mut agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);
    let spans = get_files(&agent, port);
    std::thread::sleep(Duration::from_secs(2));
    assert!(agent.stop().is_some_and(|s| s.success()));
    let t = totals(&agent);
    assert_each_file_traced_once(&spans, "busybox", &t);
    assert_eq!(t["map.traced_pids"], 1, "{t:?}");
    assert_totals_add_up(&t);
}

/// An inetd-style launcher: accept, fork, dup2 the socket to fds 0 and 1,
/// exec the handler (busybox httpd -i): every request traced once.
#[test]
fn inetd_style_handlers_on_fds_0_and_1_are_traced() {
    require_root();
    let port = free_port();
    let dir = www_dir("inetd");
    let busybox = String::from_utf8(Command::new("which").arg("busybox").output().unwrap().stdout).unwrap();
    let server = start_server(
        "inetd",
        Command::new(python())
            .arg(apps_dir().join("forking_server.py"))
            .arg(port.to_string())
            .args(["inetd", busybox.trim(), "httpd", "-i", "-h"])
            .arg(dir.path()),
    );
    let mut agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);
    let spans = get_files(&agent, port);
    std::thread::sleep(Duration::from_secs(2));
    assert!(agent.stop().is_some_and(|s| s.success()));
    let t = totals(&agent);
    // The handler is busybox: named so once it exec'd, not after the launcher.
    assert_each_file_traced_once(&spans, "busybox", &t);
    assert_eq!(t["map.traced_pids"], 1, "{t:?}");
    assert_totals_add_up(&t);
}
