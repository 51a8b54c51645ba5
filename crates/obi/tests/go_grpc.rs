//! Go gRPC clients under the real agent: a Go net/http server whose
//! handlers call a gRPC server (Python grpcio) with grpc-go (Debian's
//! golang-google-grpc-dev 1.33) and a Python HTTP server
//! with net/http,
//! 50 requests at once, 2 calls each. All gRPC calls share one HTTP/2
//! connection whose frames grpc-go's writer goroutine sends: the parent of
//! each stream comes from the probe on `NewStream`'s returns, on the
//! calling goroutine (the parent audit: right, root and wrong counts).
//! The app (apps/go_grpc_fanout) is built with Debian's Go 1.19 and 1.23
//! (scripts/install-deps.sh installs them and grpc-go's sources).

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::*;
use common::{audit, go};

const WAIT: Duration = Duration::from_secs(30);

/// The agent's line `msg` about `pid`.
fn log_line(agent: &Agent, pid: u32, msg: &str) -> String {
    let needle = format!(" pid={pid} ");
    agent
        .proc
        .wait_line(|l| l.contains(msg) && l.contains(&needle), WAIT)
        .unwrap_or_else(|| panic!("no {msg} for {pid}: {:#?}", agent.proc.lines()))
}

/// Sends 50 `/fanout/<via>-<i>/2?via=<via>` requests at once to the Go app
/// on `front`; waits for exactly 50 front spans, `grpc_calls` gRPC client
/// and server spans on `grpc_port` and `http_calls` HTTP client and server
/// spans on `http_port`, checks their methods, statuses and sizes, and
/// returns this burst's spans.
fn burst(agent: &Agent, front: u16, grpc_port: u16, http_port: u16, via: &str, grpc_calls: usize) -> Vec<Value> {
    let (n, calls) = (50, 2);
    let http_calls = n * calls - grpc_calls;
    let url = format!("http://127.0.0.1:{front}/fanout/{via}-{{i}}/{calls}?via={via}");
    let mut load =
        spawn("fanout-load", Command::new(python()).arg(apps_dir().join("concurrent_get.py")).args([&url, "50", "50"]));
    assert!(load.wait_exit(Duration::from_secs(120)).is_some_and(|s| s.success()), "load failed");
    assert_eq!(load.lines().last().map(String::as_str), Some("ok 50"), "{:#?}", load.lines());
    let leaf = format!("/leaf/{via}-");
    let ours = |s: &Value| attr(s, "url").starts_with(&leaf) || attr(s, "method").starts_with(&leaf);
    let fronts = agent.wait_spans(n, WAIT, |s| {
        is_type(s, "HTTP") && host_port(s) == front && attr(s, "url").starts_with(&format!("/fanout/{via}-"))
    });
    let grpc_clients = agent.wait_spans(grpc_calls, WAIT, |s| ours(s) && is_type(s, "GRPCClient"));
    let grpc_servers = agent.wait_spans(grpc_calls, WAIT, |s| ours(s) && is_type(s, "GRPC"));
    let http_clients = agent.wait_spans(http_calls, WAIT, |s| ours(s) && is_type(s, "HTTPClient"));
    let http_servers = agent.wait_spans(http_calls, WAIT, |s| ours(s) && is_type(s, "HTTP"));
    assert_eq!(
        (fronts.len(), grpc_clients.len(), grpc_servers.len(), http_clients.len(), http_servers.len()),
        (n, grpc_calls, grpc_calls, http_calls, http_calls),
        "spans of {via}"
    );
    for s in &fronts {
        assert_eq!((attr(s, "status"), attr(s, "responseLen")), ("200", "12"), "{s:#}");
    }
    // (The JSON printer, like OBI's, gives gRPC spans no sizes.)
    for s in grpc_clients.iter().chain(&grpc_servers) {
        assert_eq!((host_port(s), attr(s, "status")), (grpc_port, "0"), "{s:#}");
    }
    for s in http_clients.iter().chain(&http_servers) {
        assert_eq!(host_port(s), http_port, "{s:#}");
        assert_eq!((attr(s, "status"), attr(s, "responseLen")), ("200", "5"), "{s:#}");
    }
    // Every gRPC call of the burst went over the one HTTP/2 connection.
    let conns: std::collections::HashSet<&str> = grpc_servers.iter().map(|s| field(s, "peerPort")).collect();
    assert_eq!(conns.len(), 1, "{conns:?}");
    fronts.into_iter().chain(grpc_clients).chain(http_clients).collect()
}

/// The front (`binary`), its gRPC leaf (Python grpcio), a
/// Python HTTP leaf, and an agent instrumenting the three.
struct Setup {
    front: u16,
    grpc_port: u16,
    http_port: u16,
    go: Proc,
    agent: Agent,
    _leaves: (Proc, Proc),
}

fn setup(binary: &std::path::Path) -> Setup {
    let (front, grpc_port, http_port) = (free_port(), free_port(), free_port());
    // The gRPC leaf is a Python grpcio server, which reads frames in pieces
    // small enough to split a frame header over two reads (the kernel's
    // HTTP/2 walk carries such a header over: bpf/include/obi/h2.bpf.h).
    let grpc_leaf = start_server(
        "grpcio leaf",
        Command::new(venv_python()).arg(apps_dir().join("grpc_leaf_server.py")).arg(grpc_port.to_string()),
    );
    let http_leaf = python_server(http_port);
    let go = start_server(
        "go grpc front",
        Command::new(binary)
            .arg("-listen")
            .arg(format!("127.0.0.1:{front}"))
            .arg("-grpc")
            .arg(format!("127.0.0.1:{grpc_port}"))
            .arg("-http")
            .arg(format!("http://127.0.0.1:{http_port}")),
    );
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &format!("{front},{grpc_port},{http_port}")).start();
    for p in [&go, &grpc_leaf, &http_leaf] {
        agent.wait_instrumented(p.pid(), WAIT);
    }
    Setup { front, grpc_port, http_port, go, agent, _leaves: (grpc_leaf, http_leaf) }
}

/// Calls from the handler's goroutine, gRPC only and gRPC with net/http:
/// 100% right parents; calls from goroutines the handler starts: roots.
fn go_grpc_parents(goroot: &str, ldflags: &str, name: &str) {
    require_root();
    let binary = go::build("build_go_grpc.sh", goroot, ldflags, name);
    let Setup { front, grpc_port, http_port, go, agent, _leaves } = setup(&binary);
    let understood = log_line(&agent, go.pid(), "msg=\"Go binary understood\"");
    assert!(understood.contains(" grpc=1.33 "), "{understood}");
    assert!(understood.contains("(*http2Client).NewStream@0x"), "{understood}");
    let attached = log_line(&agent, go.pid(), "msg=\"Go net/http and crypto/tls probes attached\"");
    assert!(attached.contains(" grpc=true"), "{attached}");

    let release = go::release(goroot);
    let spans = burst(&agent, front, grpc_port, http_port, "grpc", 100);
    let result = audit::parent_audit(&format!("go {release} {name} grpc-go, calls inline"), &spans);
    assert_eq!(result, audit::Audit { right: 100, root: 0, wrong: 0 });

    let spans = burst(&agent, front, grpc_port, http_port, "mixed", 50);
    let result = audit::parent_audit(&format!("go {release} {name} grpc-go and net/http, calls inline"), &spans);
    assert_eq!(result, audit::Audit { right: 100, root: 0, wrong: 0 });

    let spans = burst(&agent, front, grpc_port, http_port, "grpc-goroutine", 100);
    let result = audit::parent_audit(&format!("go {release} {name} grpc-go, calls from new goroutines"), &spans);
    assert_eq!(result, audit::Audit { right: 0, root: 100, wrong: 0 });
}

#[test]
fn go_1_19_stripped_grpc_parents() {
    go_grpc_parents("/usr/lib/go-1.19", "-s -w", "go119-stripped-grpc");
}

#[test]
fn go_1_23_grpc_parents() {
    go_grpc_parents("/usr/lib/go-1.23", "", "go123-grpc");
}

#[test]
fn go_1_23_stripped_grpc_parents() {
    go_grpc_parents("/usr/lib/go-1.23", "-s -w", "go123-stripped-grpc");
}

/// A grpc-go whose release the agent has no offsets for (the app with its
/// compiled-in user agent changed from 1.33 to 1.34): the agent says so and
/// its gRPC calls are roots, never guessed; net/http calls keep their parents.
#[test]
fn unknown_grpc_release_calls_are_roots() {
    require_root();
    let built = go::build("build_go_grpc.sh", "/usr/lib/go-1.23", "-s -w", "go123-stripped-grpc-unknown");
    let mut bytes = std::fs::read(&built).unwrap();
    let (from, to) = (b"grpc-go/1.33.", b"grpc-go/1.34.");
    let mut patched = 0;
    while let Some(at) = bytes.windows(from.len()).position(|w| w == from) {
        bytes[at..at + to.len()].copy_from_slice(to);
        patched += 1;
    }
    assert!(patched > 0, "no grpc-go user agent in the app");
    let binary = built.with_file_name("go123-stripped-grpc-1.34");
    std::fs::write(&binary, &bytes).unwrap();
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let Setup { front, grpc_port, http_port, go, agent, _leaves } = setup(&binary);
    let understood = log_line(&agent, go.pid(), "msg=\"Go binary understood\"");
    assert!(understood.contains(" grpc=unknown "), "{understood}");
    let warning = log_line(&agent, go.pid(), "grpc-go client not followed");
    assert!(warning.contains("level=WARN") && warning.contains("grpc-go 1.34"), "{warning}");
    let attached = log_line(&agent, go.pid(), "msg=\"Go net/http and crypto/tls probes attached\"");
    assert!(attached.contains(" grpc=false"), "{attached}");

    let spans = burst(&agent, front, grpc_port, http_port, "mixed", 50);
    let grpc_calls: Vec<Value> = spans.iter().filter(|s| !is_type(s, "HTTPClient")).cloned().collect();
    let result = audit::parent_audit("go 1.23.5 grpc-go 1.34 (unknown), gRPC calls", &grpc_calls);
    assert_eq!(result, audit::Audit { right: 0, root: 50, wrong: 0 });
    let result = audit::parent_audit("go 1.23.5 grpc-go 1.34 (unknown), net/http calls", &spans);
    assert_eq!(result, audit::Audit { right: 50, root: 50, wrong: 0 });
}
