//! Memcached end to end: a real `memcached` (Debian) on a free port,
//! pymemcache (PyPI) as the client, the real agent and real eBPF. Runs as
//! root.

mod common;

use std::process::Command;
use std::time::Duration;

use common::prom::*;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// set, get, multi-get, a miss, delete, an error and a `noreply` set: one
/// client span per answered command, none for the unanswered one; the
/// traced server shows the same commands as server spans.
#[test]
fn pymemcache_get_set_multi_get_errors() {
    require_root();
    let (port, prom) = (free_port(), free_port());
    let _server = spawn(
        "memcached",
        Command::new("memcached").args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0", "-u", "nobody"]),
    );
    wait_port(port, Duration::from_secs(15));
    let agent = Agent::builder()
        .config(&format!(
            "discovery:\n  instrument:\n    - cmd_args: '*memcached_client.py {port}'\n    - open_ports: {port}\n"
        ))
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .start();
    agent
        .proc
        .wait_line(|l| l.contains("instrumenting process") && l.contains("memcached"), WAIT)
        .expect("the server is instrumented");
    let mut client = spawn(
        "pymemcache",
        Command::new(venv_python()).arg(apps_dir().join("memcached_client.py")).arg(port.to_string()),
    );
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "client failed: {:?}", client.lines());
    let _ = client.wait_line(|l| l == "ok", WAIT);
    assert_eq!(client.lines().last().map(String::as_str), Some("ok"), "{:?}", client.lines());

    let want = [
        ("set", "set user:1", ""),
        ("set", "set user:2", ""),
        ("get", "get user:1", ""),
        ("get", "get user:1 user:2 user:3", ""),
        ("get", "get nope", ""),
        ("delete", "delete user:2", ""),
        ("incr", "incr user:1", "CLIENT_ERROR"),
        // `set fire ... noreply`: no response, no span.
        ("get", "get fire", ""),
    ];
    let want: Vec<(String, String, String)> =
        want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    let of = |s: &Value| is_type(s, "MemcachedClient") && host_port(s) == port;
    let spans = agent.wait_spans(want.len(), WAIT, of);
    assert_eq!(db_calls(&spans), want, "{spans:#?}");
    let err = spans.iter().find(|s| attr(s, "operation") == "incr").unwrap();
    assert_eq!(attr(err, "errorMessage"), "cannot increment or decrement non-numeric value");
    let servers = agent.wait_spans(want.len(), WAIT, |s| is_type(s, "MemcachedServer") && host_port(s) == port);
    assert_eq!(db_calls(&servers), want, "{servers:#?}");
    assert!(servers.iter().all(|s| field(s, "kind") == "SPAN_KIND_SERVER" && field(s, "hostName") == "memcached"));

    let name = "db_client_operation_duration_seconds_count";
    let mc = [("db_system_name", "memcached")];
    let samples = scrape_until(prom, WAIT, |s| total(s, name, &mc) >= want.len() as f64);
    // Client calls only: server spans feed no client histogram.
    assert_eq!(total(&samples, name, &mc), want.len() as f64);
    assert_eq!(total(&samples, name, &[("db_operation_name", "incr"), ("error_type", "CLIENT_ERROR")]), 1.0);
}
