//! Go programs under the real agent: the binary is read without help
//! (release, functions, stripped or not) and logged; a binary the Go probes
//! cannot handle is said so, and its syscall-level spans still come; the
//! client calls of a Go net/http server get their parents from the
//! goroutine (the parent audit, 50 concurrent requests x 2 calls); Go's
//! own TLS (crypto/tls) is read as plaintext: HTTPS servers and clients,
//! HTTP/1.1 and HTTP/2, exact span counts.
//! The Go test app (apps/go_fanout.go) is built with Debian's toolchains
//! (scripts/install-deps.sh installs them).

mod common;

use common::audit::{self, Fanout};
use common::go;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(30);

/// Builds the Go test app with the toolchain in `goroot`.
fn go_app(goroot: &str, ldflags: &str, name: &str) -> PathBuf {
    go::build("build_go.sh", goroot, ldflags, name)
}

fn release(goroot: &str) -> String {
    go::release(goroot)
}

fn start_go_server(binary: &PathBuf, port: u16) -> Proc {
    start_server("go server", Command::new(binary).arg("-listen").arg(format!("127.0.0.1:{port}")))
}

/// The Go test app serving HTTPS (HTTP/1.1 and, by ALPN, HTTP/2) with the
/// certificate in `cert_dir`.
fn start_go_https_server(binary: &PathBuf, port: u16, cert_dir: &Path) -> Proc {
    let (cert, key) = self_signed_cert(cert_dir);
    start_server(
        "go https server",
        Command::new(binary)
            .arg("-listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key),
    )
}

/// Waits for the agent's line saying the Go probes are on `pid`.
fn wait_go_probes(agent: &Agent, pid: u32) {
    let needle = format!(" pid={pid} ");
    agent
        .proc
        .wait_line(|l| l.contains("msg=\"Go net/http and crypto/tls probes attached\"") && l.contains(&needle), WAIT)
        .unwrap_or_else(|| panic!("no Go probes on {pid}: {:#?}", agent.proc.lines()));
}

/// Go 1.19 stripped, Go 1.23 with symbols, and Go 1.15 (too old for the
/// Go probes), each serving one request.
#[test]
fn go_binaries_are_read_and_logged_and_old_ones_still_traced() {
    require_root();
    let apps = [
        (go_app("/usr/lib/go-1.19", "-s -w", "go119-stripped"), release("/usr/lib/go-1.19"), "gopclntab"),
        (go_app("/usr/lib/go-1.23", "", "go123"), release("/usr/lib/go-1.23"), "symtab"),
    ];
    let old = go_app("/usr/lib/go-1.15", "-s -w", "go115-stripped");
    let ports = [free_port(), free_port(), free_port()];
    let servers: Vec<Proc> = apps
        .iter()
        .map(|(bin, _, _)| bin)
        .chain([&old])
        .zip(ports)
        .map(|(bin, port)| start_go_server(bin, port))
        .collect();
    let selection = ports.map(|p| p.to_string()).join(",");
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &selection).start();
    for s in &servers {
        agent.wait_instrumented(s.pid(), WAIT);
    }
    let log_line = |pid: u32, msg: &str| {
        let needle = format!(" pid={pid} ");
        agent
            .proc
            .wait_line(|l| l.contains(msg) && l.contains(&needle), WAIT)
            .unwrap_or_else(|| panic!("no {msg} for pid {pid}: {:#?}", agent.proc.lines()))
    };
    for ((_, version, symbols), server) in apps.iter().zip(&servers) {
        let line = log_line(server.pid(), "msg=\"Go binary understood\"");
        assert!(line.contains(&format!(" go_version={version} ")), "{line}");
        assert!(line.contains(&format!(" symbols={symbols} ")), "{line}");
        for f in ["runtime.newproc1@0x", "net/http.(*conn).serve@0x", "net/http.(*persistConn).roundTrip@0x"] {
            assert!(line.contains(f), "{f} missing: {line}");
        }
    }
    let line = log_line(servers[2].pid(), "Go binary cannot be handled");
    assert!(line.contains("level=WARN"), "{line}");
    assert!(
        line.contains(&format!("Go {} is older than 1.17.0", release("/usr/lib/go-1.15"))),
        "the reason names the release: {line}"
    );
    assert!(line.contains("syscall-level spans"), "says what still works: {line}");
    let instrumenting =
        agent.proc.lines().into_iter().filter(|l| l.contains("msg=\"instrumenting process\"")).collect::<Vec<_>>();
    for s in &servers {
        let needle = format!(" pid={} ", s.pid());
        assert!(instrumenting.iter().any(|l| l.contains(&needle) && l.contains(" type=go ")), "{instrumenting:#?}");
    }

    // Every one of them, the too-old one included, is traced from its sockets.
    for p in ports {
        assert_eq!(curl(&[&format!("http://127.0.0.1:{p}/leaf")]).trim(), "leaf");
    }
    for p in ports {
        let spans = agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == p);
        assert_eq!(spans.len(), 1, "port {p}: {spans:#?}");
        assert_eq!(attr(&spans[0], "url"), "/leaf", "{:#}", spans[0]);
        assert_eq!(attr(&spans[0], "status"), "200", "{:#}", spans[0]);
    }
}

/// A Go net/http server calling a Python server with net/http's client, 50
/// requests at once, 2 calls each, built by `goroot` with `ldflags`: calls
/// from the handler's goroutine are children of its request (100%); calls
/// from goroutines the handler starts, or from a worker pool, are roots (the
/// probes do not follow goroutine creation). Never a wrong parent.
fn go_net_http_parents(goroot: &str, ldflags: &str, name: &str) {
    require_root();
    let binary = go_app(goroot, ldflags, name);
    let (front, back) = (free_port(), free_port());
    let go = start_go_server(&binary, front);
    let leaf = python_server(back);
    let agent = Agent::builder()
        .env("OTEL_EBPF_BPF_CONTEXT_PROPAGATION", "headers")
        .env("OTEL_EBPF_OPEN_PORT", &format!("{front},{back}"))
        .start();
    agent.wait_instrumented(go.pid(), WAIT);
    agent.wait_instrumented(leaf.pid(), WAIT);
    wait_go_probes(&agent, go.pid());

    let release = release(goroot);
    let inline = Fanout { requests: 50, concurrency: 50, calls: 2, via: "inline" };
    let spans = audit::fanout_spans(&agent, front, back, &inline);
    let result = audit::parent_audit(&format!("go {release} {name} net/http, calls inline"), &spans);
    assert_eq!(result, audit::Audit { right: 100, root: 0, wrong: 0 });

    let spawned = Fanout { requests: 50, concurrency: 50, calls: 2, via: "goroutine" };
    let spans = audit::fanout_spans(&agent, front, back, &spawned);
    let result = audit::parent_audit(&format!("go {release} {name} net/http, calls from new goroutines"), &spans);
    assert_eq!(result, audit::Audit { right: 0, root: 100, wrong: 0 });

    // One keep-alive connection, 20 requests one after the other: one
    // serving goroutine whose socket moves from request to request.
    let base = format!("http%3A%2F%2F127.0.0.1%3A{back}");
    let paths: Vec<String> = (0..20).map(|i| format!("GET:/fanout/keepalive-{i}/2?via=inline&base={base}")).collect();
    let mut client = python_client(front, &paths.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()));
    assert_eq!(client.lines().iter().filter(|l| l.starts_with("200 ")).count(), 20, "{:#?}", client.lines());
    let ours = |s: &serde_json::Value| attr(s, "url").contains("/keepalive-");
    let clients = agent.wait_spans(40, WAIT, |s| ours(s) && is_type(s, "HTTPClient"));
    let fronts = agent.wait_spans(20, WAIT, |s| ours(s) && is_type(s, "HTTP") && host_port(s) == front);
    assert_eq!((fronts.len(), clients.len()), (20, 40));
    let spans: Vec<_> = agent.spans().into_iter().filter(ours).collect();
    let result = audit::parent_audit(&format!("go {release} {name} net/http, keep-alive, calls inline"), &spans);
    assert_eq!(result, audit::Audit { right: 40, root: 0, wrong: 0 });

    // A lazily grown worker pool: a worker started by one request serves
    // others, at once and in the next burst. Inheriting the creator's
    // request (what OBI does) put 45 of 100 calls of the first burst under
    // the wrong request here; roots instead.
    for burst in ["pool1", "pool2"] {
        let pooled = Fanout { requests: 50, concurrency: 50, calls: 2, via: burst };
        let spans = audit::fanout_spans(&agent, front, back, &pooled);
        let result =
            audit::parent_audit(&format!("go {release} {name} net/http, calls via a worker pool ({burst})"), &spans);
        assert_eq!(result, audit::Audit { right: 0, root: 100, wrong: 0 });
    }
}

#[test]
fn go_1_19_stripped_net_http_parents() {
    go_net_http_parents("/usr/lib/go-1.19", "-s -w", "go119-stripped-parents");
}

#[test]
fn go_1_23_net_http_parents() {
    go_net_http_parents("/usr/lib/go-1.23", "", "go123-parents");
}

#[test]
fn go_1_23_stripped_net_http_parents() {
    go_net_http_parents("/usr/lib/go-1.23", "-s -w", "go123-stripped-parents");
}

/// One curl run over HTTPS: `urls` (on one connection, or all at once with
/// `parallel`), `extra` options; returns "<status> <HTTP version>" per URL.
fn curl_https(version_flag: &str, parallel: bool, extra: &[&str], urls: &[String]) -> Vec<String> {
    let mut args: Vec<&str> = vec!["-k", version_flag, "-w", "%{http_code} %{http_version}\\n"];
    if parallel {
        args.extend(["-Z", "--parallel-max", "50"]);
    }
    args.extend(extra);
    for url in urls {
        args.extend(["-o", "/dev/null", url.as_str()]);
    }
    curl(&args).lines().map(str::to_owned).collect()
}

/// A Go net/http HTTPS server (crypto/tls, self-signed certificate) built by
/// `goroot` with `ldflags`, for HTTP/1.1 and HTTP/2 (curl): 20 requests one
/// after the other on one connection (statuses 200-503), 50 at once (HTTP/1.1:
/// 50 connections; HTTP/2: 50 streams on one), 5 POSTs of 1000 bytes, a
/// 300,000-byte response (HTTP/2: many DATA frames over many TLS writes,
/// walked frame by frame). Every
/// request gives exactly one server span with its method, URL, status and
/// sizes, and nothing else comes from the port (the socket's ciphertext is
/// not reported).
fn go_https_server(goroot: &str, ldflags: &str, name: &str) {
    require_root();
    let binary = go_app(goroot, ldflags, name);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start_go_https_server(&binary, port, dir.path());
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &port.to_string()).start();
    agent.wait_instrumented(server.pid(), WAIT);
    wait_go_probes(&agent, server.pid());

    let body = dir.path().join("body");
    std::fs::write(&body, vec![b'x'; 1000]).unwrap();
    let post = format!("@{}", body.display());
    let codes = ["200", "201", "404", "500", "503"];
    // (url, method, status, request body bytes)
    let mut expected: Vec<(String, &str, &str, &str)> = Vec::new();
    let mut bigs = Vec::new();
    for (flag, version, tag) in [("--http1.1", "1.1", "h1"), ("--http2", "2", "h2")] {
        let url = |path: &str| format!("https://127.0.0.1:{port}{path}");
        let seq: Vec<(String, &str)> =
            (0..20).map(|i| (format!("/status/{}/{tag}-seq-{i}", codes[i % 5]), codes[i % 5])).collect();
        let par: Vec<(String, &str)> = (0..50).map(|i| (format!("/status/200/{tag}-par-{i}"), "200")).collect();
        let posts: Vec<(String, &str)> = (0..5).map(|i| (format!("/status/201/{tag}-post-{i}"), "201")).collect();
        for (paths, parallel, extra, method, sent) in [
            (&seq, false, &[][..], "GET", "0"),
            (&par, true, &[][..], "GET", "0"),
            (&posts, false, &["--data-binary", post.as_str()][..], "POST", "1000"),
        ] {
            let urls: Vec<String> = paths.iter().map(|(p, _)| url(p)).collect();
            let mut got = curl_https(flag, parallel, extra, &urls);
            let mut want: Vec<String> = paths.iter().map(|(_, code)| format!("{code} {version}")).collect();
            // Parallel transfers finish in any order.
            got.sort();
            want.sort();
            assert_eq!(got, want, "curl {flag}");
            expected.extend(paths.iter().map(|(p, code)| (p.clone(), method, *code, sent)));
        }
        let big = format!("/big/300000/{tag}");
        assert_eq!(curl_https(flag, false, &[], &[url(&big)]), vec![format!("200 {version}")]);
        bigs.push(big);
    }

    let total = expected.len() + bigs.len();
    let spans = agent.wait_spans(total, WAIT, |s| is_type(s, "HTTP") && host_port(s) == port);
    assert_eq!(spans.len(), total, "{spans:#?}");
    for big in &bigs {
        let found: Vec<_> = spans.iter().filter(|s| attr(s, "url") == big).collect();
        assert_eq!(found.len(), 1, "exactly one span for {big}: {found:#?}");
        assert_eq!(attr(found[0], "status"), "200", "{:#}", found[0]);
    }
    // HTTP/1.1 sends it chunked (its size then counts the chunk framing, as
    // for plaintext); HTTP/2's DATA frames carry exactly the body.
    let h2_big = spans.iter().find(|s| attr(s, "url") == "/big/300000/h2").unwrap();
    assert_eq!(attr(h2_big, "responseLen"), "300000", "{h2_big:#}");
    for (path, method, status, sent) in &expected {
        let found: Vec<_> = spans.iter().filter(|s| attr(s, "url") == path).collect();
        assert_eq!(found.len(), 1, "exactly one span for {path}: {found:#?}");
        let s = found[0];
        let got = (attr(s, "method"), attr(s, "status"), attr(s, "contentLen"), attr(s, "responseLen"));
        assert_eq!(got, (*method, *status, *sent, "5"), "{path}: {s:#}");
    }
    std::thread::sleep(Duration::from_secs(1));
    let from_port = agent.spans().into_iter().filter(|s| host_port(s) == port).count();
    assert_eq!(from_port, total, "no other span from the HTTPS port (ciphertext, duplicates)");
    let needle = format!(" pid={} ", server.pid());
    assert!(
        agent.proc.lines().iter().any(|l| l.contains("through Go crypto/tls uprobes") && l.contains(&needle)),
        "the agent says how it reads this process's TLS"
    );
}

#[test]
fn go_1_19_stripped_https_server() {
    go_https_server("/usr/lib/go-1.19", "-s -w", "go119-stripped-https");
}

#[test]
fn go_1_23_https_server() {
    go_https_server("/usr/lib/go-1.23", "", "go123-https");
}

/// A Go net/http server whose handler calls a Go HTTPS server with net/http's
/// client (crypto/tls on both sides), 50 requests at once, 2 calls each,
/// over HTTP/1.1 and over HTTP/2 (`-h2`), and from a front that serves HTTPS
/// itself: exact counts of server and client spans on both sides. HTTP/1.1
/// client calls get their parent from roundTrip's hint (100% right), HTTPS
/// front or not; HTTP/2 client calls do not go through it and are roots,
/// never a thread's guess.
fn go_https_client(goroot: &str, ldflags: &str, name: &str) {
    require_root();
    let binary = go_app(goroot, ldflags, name);
    let dir = tempfile::tempdir().unwrap();
    let (h1_front, h2_front, tls_front, back) = (free_port(), free_port(), free_port(), free_port());
    let leaf = start_go_https_server(&binary, back, dir.path());
    let front = |port: u16, h2: bool| {
        let mut cmd = Command::new(&binary);
        cmd.arg("-listen").arg(format!("127.0.0.1:{port}")).arg("-insecure");
        if h2 {
            cmd.arg("-h2");
        }
        start_server("go front", &mut cmd)
    };
    let (h1, h2) = (front(h1_front, false), front(h2_front, true));
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let https_front = start_server(
        "go https front",
        Command::new(&binary)
            .arg("-listen")
            .arg(format!("127.0.0.1:{tls_front}"))
            .args(["-insecure", "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key),
    );
    let agent =
        Agent::builder().env("OTEL_EBPF_OPEN_PORT", &format!("{h1_front},{h2_front},{tls_front},{back}")).start();
    for p in [&leaf, &h1, &h2, &https_front] {
        agent.wait_instrumented(p.pid(), WAIT);
        wait_go_probes(&agent, p.pid());
    }

    let release = release(goroot);
    let load = |via| Fanout { requests: 50, concurrency: 50, calls: 2, via };
    let h1_spans = audit::fanout_spans_to(&agent, h1_front, "https", back, &load("tls1"));
    let result = audit::parent_audit(&format!("go {release} {name} net/http over TLS, HTTP/1.1"), &h1_spans);
    assert_eq!(result, audit::Audit { right: 100, root: 0, wrong: 0 });
    let h2_spans = audit::fanout_spans_to(&agent, h2_front, "https", back, &load("tls2"));
    let result = audit::parent_audit(&format!("go {release} {name} net/http over TLS, HTTP/2"), &h2_spans);
    assert_eq!(result, audit::Audit { right: 0, root: 100, wrong: 0 });

    // The HTTPS front, 50 requests at once (curl: one connection each).
    let base = format!("https%3A%2F%2F127.0.0.1%3A{back}");
    let urls: Vec<String> = (0..50)
        .map(|i| format!("https://127.0.0.1:{tls_front}/fanout/tlsfront-{i}/2?via=inline&base={base}"))
        .collect();
    let statuses = curl_https("--http1.1", true, &[], &urls);
    assert_eq!(statuses, vec!["200 1.1".to_string(); 50]);
    let ours = |s: &serde_json::Value| attr(s, "url").contains("/tlsfront-");
    let fronts = agent.wait_spans(50, WAIT, |s| ours(s) && is_type(s, "HTTP") && host_port(s) == tls_front);
    let clients = agent.wait_spans(100, WAIT, |s| ours(s) && is_type(s, "HTTPClient") && host_port(s) == back);
    let backs = agent.wait_spans(100, WAIT, |s| ours(s) && is_type(s, "HTTP") && host_port(s) == back);
    assert_eq!((fronts.len(), clients.len(), backs.len()), (50, 100, 100));
    let tls_front_spans: Vec<_> = agent.spans().into_iter().filter(ours).collect();
    let result =
        audit::parent_audit(&format!("go {release} {name} HTTPS server calling over TLS, HTTP/1.1"), &tls_front_spans);
    assert_eq!(result, audit::Audit { right: 100, root: 0, wrong: 0 });

    for s in h1_spans.iter().chain(&h2_spans).chain(&tls_front_spans).filter(|s| is_type(s, "HTTPClient")) {
        assert_eq!((attr(s, "method"), attr(s, "status")), ("GET", "200"), "{s:#}");
    }
    std::thread::sleep(Duration::from_secs(1));
    let at_back = agent.spans().into_iter().filter(|s| host_port(s) == back).count();
    assert_eq!(at_back, 600, "300 client and 300 server spans on the HTTPS port, nothing else");
}

#[test]
fn go_1_19_https_client() {
    go_https_client("/usr/lib/go-1.19", "", "go119-https-client");
}

#[test]
fn go_1_23_stripped_https_client() {
    go_https_client("/usr/lib/go-1.23", "-s -w", "go123-stripped-https-client");
}
