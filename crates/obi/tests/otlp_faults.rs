//! OTLP traces export to broken receivers: a closed port, a black hole that
//! accepts and never answers, HTTP 500, garbage over HTTP and garbage over
//! gRPC. With real instrumented traffic and the real agent: every span is
//! exported or counted dropped with its reason (the `totals` line adds up),
//! shutdown ends within `shutdown_timeout`, and memory stays bounded.
//! Runs as root (see tests/common::require_root).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(30);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// From the agent's last line to the process's exit.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(1000);

/// How the fake receiver (tests/apps/otlp_broken.py) misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Nothing listens.
    ClosedPort,
    /// Accepts and holds connections, never reads nor answers.
    BlackHole,
    /// Reads each HTTP request and answers 500.
    Http500,
    /// Answers every connection with bytes that are not HTTP, then closes.
    Garbage,
}

impl Fault {
    fn mode(self) -> Option<&'static str> {
        match self {
            Fault::ClosedPort => None,
            Fault::BlackHole => Some("blackhole"),
            Fault::Http500 => Some("http500"),
            Fault::Garbage => Some("garbage"),
        }
    }
}

/// The receiver's port, and its process (none for a closed port).
fn fake_receiver(fault: Fault) -> (u16, Option<Proc>) {
    let port = free_port();
    let proc = fault.mode().map(|mode| {
        start_server(
            "otlp-broken",
            Command::new(python()).arg("-u").arg(apps_dir().join("otlp_broken.py")).arg(port.to_string()).arg(mode),
        )
    });
    (port, proc)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `key=value` from the `otlp_traces` field of the totals line.
fn otlp_count(otlp: &str, key: &str) -> u64 {
    otlp.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {otlp}"))
        .parse()
        .unwrap()
}

/// The `otlp_traces="..."` field of the agent's totals line.
fn otlp_totals(agent: &Agent) -> String {
    let line = agent
        .proc
        .lines()
        .into_iter()
        .find(|l| l.contains("msg=totals "))
        .unwrap_or_else(|| panic!("no totals line: {:#?}", agent.proc.lines()));
    let start = line.find(" otlp_traces=\"").expect("otlp_traces field") + " otlp_traces=\"".len();
    line[start..start + line[start..].find('"').unwrap()].to_string()
}

/// What one run saw.
struct Run {
    requests: u64,
    otlp: String,
    shutdown: Duration,
    rss_before: u64,
    rss_max: u64,
    /// The agent's lines from the signal on (timestamps show where time went).
    stop_lines: Vec<String>,
}

/// Runs the agent against a broken receiver: `grpc` or http/protobuf, HTTP
/// traffic for `load_for` (at least one batch of requests), then SIGTERM.
fn run(fault: Fault, grpc: bool, load_for: Duration) -> Run {
    require_root();
    let (rx_port, _rx) = fake_receiver(fault);
    let app = free_port();
    let server = python_server(app);
    let (protocol, endpoint) = if grpc {
        ("grpc", format!("http://127.0.0.1:{rx_port}"))
    } else {
        ("http/protobuf", format!("http://127.0.0.1:{rx_port}/v1/traces"))
    };
    let mut agent = Agent::builder()
        .env("OTEL_EBPF_OPEN_PORT", &app.to_string())
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", protocol)
        .env("OTEL_EBPF_OTLP_TRACES_BATCH_TIMEOUT", "100ms")
        .env("OTEL_EBPF_OTLP_TRACES_BATCH_MAX_SIZE", "50")
        .env("OTEL_EBPF_OTLP_TRACES_QUEUE_SIZE", "500")
        .env("OTEL_EBPF_BACKOFF_INITIAL_INTERVAL", "100ms")
        .env("OTEL_EBPF_BACKOFF_MAX_INTERVAL", "500ms")
        .env("OTEL_EBPF_BACKOFF_MAX_ELAPSED_TIME", "0s")
        .env("OTEL_EBPF_SHUTDOWN_TIMEOUT", &format!("{}s", SHUTDOWN_TIMEOUT.as_secs()))
        .start();
    agent.wait_instrumented(server.pid(), WAIT);
    let pid = agent.proc.pid();
    let rss_before = rss_kib(pid);
    let mut rss_max = rss_before;
    let started = Instant::now();
    let mut requests = 0u64;
    loop {
        let mut c = python_client(app, &["GET:/status/200"], &["--repeat", "100"]);
        assert!(c.wait_exit(WAIT).is_some_and(|s| s.success()));
        requests += c.lines().iter().filter(|l| l.starts_with("200 ")).count() as u64;
        rss_max = rss_max.max(rss_kib(pid));
        if started.elapsed() >= load_for {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every request was traced (the printer shows it) before the stop.
    let printed = agent.wait_spans(requests as usize, WAIT, |s| is_type(s, "HTTP") && host_port(s) == app);
    assert_eq!(printed.len() as u64, requests);
    // Leave the exporter time to have requests in flight or in backoff.
    std::thread::sleep(Duration::from_millis(300));
    let stop = Instant::now();
    let status = agent.stop().expect("agent stops");
    let shutdown = stop.elapsed();
    assert!(status.success(), "{fault:?}: {status}");
    let otlp = otlp_totals(&agent);
    let lines = agent.proc.lines();
    let from = lines.iter().position(|l| l.contains("msg=\"shutting down\"")).unwrap_or(lines.len());
    let stop_lines = lines[from..].to_vec();
    Run { requests, otlp, shutdown, rss_before, rss_max, stop_lines }
}

/// The time of day of a log line (`time=2026-11-29T05:53:16.695Z`).
fn log_time(line: &str) -> Duration {
    let t = line.split_once("time=").and_then(|(_, r)| r.split_once('T')).map(|(_, r)| &r[..12]).expect("time");
    let (h, rest) = t.split_once(':').unwrap();
    let (m, s) = rest.split_once(':').unwrap();
    let secs = h.parse::<f64>().unwrap() * 3600.0 + m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap();
    Duration::from_secs_f64(secs)
}

/// Every span is in exactly one bucket, the drops add up to their reasons,
/// nothing reached the broken receiver, and the stop kept the deadline.
fn check(fault: Fault, grpc: bool, r: &Run) {
    let c = |k: &str| otlp_count(&r.otlp, k);
    eprintln!(
        "{fault:?} grpc={grpc}: {} requests; shutdown {:?}; RSS {} -> max {} KiB; {}",
        r.requests, r.shutdown, r.rss_before, r.rss_max, r.otlp
    );
    assert_eq!(c("received"), c("filtered") + c("sampled_out") + c("exported") + c("dropped"), "{}", r.otlp);
    assert_eq!(
        c("dropped"),
        c("dropped_queue_full") + c("dropped_failed") + c("dropped_rejected") + c("dropped_shutdown"),
        "{}",
        r.otlp
    );
    assert_eq!(c("exported"), 0, "{}", r.otlp);
    // The HTTP spans; the rest (process pseudo-spans) are never exported.
    assert_eq!(c("received") - c("filtered"), r.requests, "{}", r.otlp);
    assert_eq!(c("sampled_out"), 0, "{}", r.otlp);
    // The agent's own stop, from its log: "shutting down" to "stopped".
    let at = |msg: &str| {
        let line = r.stop_lines.iter().find(|l| l.contains(msg)).unwrap_or_else(|| panic!("no {msg}"));
        log_time(line)
    };
    let agent_stop = at("msg=\"shutting down\"").abs_diff(at("msg=stopped"));
    assert!(
        agent_stop <= SHUTDOWN_TIMEOUT + Duration::from_millis(300),
        "{fault:?}: the agent's stop took {agent_stop:?}:\n{}",
        r.stop_lines.join("\n")
    );
    // Then the process exits; when the agent detached every probe itself,
    // nothing is left for the kernel to do at exit. (When it had not, the
    // kernel finishes releasing the probes as the process exits, which takes
    // what it takes: grace periods, longer on a loaded machine.)
    if r.stop_lines.iter().any(|l| l.contains("msg=\"eBPF programs detached\"")) {
        assert!(
            r.shutdown <= SHUTDOWN_TIMEOUT + SHUTDOWN_MARGIN,
            "{fault:?}: shutdown took {:?}:\n{}",
            r.shutdown,
            r.stop_lines.join("\n")
        );
    }
}

#[test]
fn closed_port_http() {
    let r = run(Fault::ClosedPort, false, Duration::ZERO);
    check(Fault::ClosedPort, false, &r);
}

#[test]
fn closed_port_grpc() {
    let r = run(Fault::ClosedPort, true, Duration::ZERO);
    check(Fault::ClosedPort, true, &r);
}

/// The case of the report: 8,192-12,288 in-flight spans were counted
/// neither exported nor dropped, and the stop took 14 s against 10 s.
#[test]
fn black_hole_http() {
    let r = run(Fault::BlackHole, false, Duration::ZERO);
    check(Fault::BlackHole, false, &r);
    assert!(otlp_count(&r.otlp, "dropped_shutdown") > 0, "{}", r.otlp);
}

#[test]
fn black_hole_grpc() {
    let r = run(Fault::BlackHole, true, Duration::ZERO);
    check(Fault::BlackHole, true, &r);
    assert!(otlp_count(&r.otlp, "dropped_shutdown") > 0, "{}", r.otlp);
}

#[test]
fn http_500() {
    let r = run(Fault::Http500, false, Duration::ZERO);
    check(Fault::Http500, false, &r);
    // 500 is not retryable: batches fail for good.
    assert!(otlp_count(&r.otlp, "dropped_failed") > 0, "{}", r.otlp);
}

#[test]
fn garbage_over_http() {
    let r = run(Fault::Garbage, false, Duration::ZERO);
    check(Fault::Garbage, false, &r);
}

/// Garbage over gRPC for a minute under load: memory stays bounded (it grew
/// ~8 MB/min before). bench/otlp-faults-rss.sh runs every fault for 5 minutes.
#[test]
fn garbage_over_grpc_memory_is_bounded() {
    let r = run(Fault::Garbage, true, Duration::from_secs(60));
    check(Fault::Garbage, true, &r);
    let growth = r.rss_max.saturating_sub(r.rss_before);
    assert!(growth < 8 * 1024, "agent RSS grew by {growth} KiB in a minute of garbage over gRPC");
}
