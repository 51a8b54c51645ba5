//! A real Go program nobody here wrote: Debian's InfluxDB 1.6 (`influxd`,
//! built by Debian's Go 1.19) under concurrent writes and queries, over
//! plain HTTP and over HTTPS (Go's crypto/tls, read through the Go probes):
//! exactly one server span per request, with method, route and status.
//! InfluxDB makes no outgoing calls here (usage reporting off), so there is
//! no client span of its own to parent. Each test runs its own `influxd` on
//! free ports in a temporary directory (scripts/install-deps.sh installs the
//! package; policy-rc.d keeps the system service from starting).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(30);
/// Writes and queries per instance, sent at the same time, 20 at once each.
const REQUESTS: usize = 100;

/// An `influxd` on `port` (its RPC port next to it) with its data in `dir`;
/// HTTPS with the certificate and key given.
fn influxd(dir: &Path, port: u16, tls: Option<(&Path, &Path)>) -> Proc {
    let mut cmd = Command::new("/usr/bin/influxd");
    cmd.env("INFLUXDB_REPORTING_DISABLED", "true")
        .env("INFLUXDB_BIND_ADDRESS", format!("127.0.0.1:{}", free_port()))
        .env("INFLUXDB_META_DIR", dir.join("meta"))
        .env("INFLUXDB_DATA_DIR", dir.join("data"))
        .env("INFLUXDB_DATA_WAL_DIR", dir.join("wal"))
        .env("INFLUXDB_HTTP_BIND_ADDRESS", format!("127.0.0.1:{port}"))
        .env("INFLUXDB_DATA_QUERY_LOG_ENABLED", "false")
        .env("INFLUXDB_HTTP_LOG_ENABLED", "false");
    if let Some((cert, key)) = tls {
        cmd.env("INFLUXDB_HTTP_HTTPS_ENABLED", "true")
            .env("INFLUXDB_HTTP_HTTPS_CERTIFICATE", cert)
            .env("INFLUXDB_HTTP_HTTPS_PRIVATE_KEY", key);
    }
    let p = spawn("influxd", &mut cmd);
    p.wait_line(|l| l.contains("msg=\"Listening on HTTP\""), WAIT)
        .unwrap_or_else(|| panic!("influxd did not listen: {:#?}", p.lines()));
    p
}

/// `REQUESTS` requests to `base` + `path(i)`, 20 at once; curl's extra
/// options before them. Returns the statuses, sorted.
fn burst(extra: &[&str], base: &str, path: impl Fn(usize) -> String) -> Vec<String> {
    let urls: Vec<String> = (0..REQUESTS).map(|i| format!("{base}{}", path(i))).collect();
    let mut args = vec!["-k", "-Z", "--parallel-max", "20", "-w", "%{http_code}\\n"];
    args.extend(extra);
    for url in &urls {
        args.extend(["-o", "/dev/null", url.as_str()]);
    }
    let mut statuses: Vec<String> = curl(&args).lines().map(str::to_owned).collect();
    statuses.sort();
    statuses
}

#[test]
fn influxdb_writes_and_queries_over_http_and_https() {
    require_root();
    if !Path::new("/usr/bin/influxd").exists() {
        panic!("/usr/bin/influxd missing: run scripts/install-deps.sh");
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let (plain_port, tls_port) = (free_port(), free_port());
    let plain = influxd(&dir.path().join("plain"), plain_port, None);
    let tls = influxd(&dir.path().join("tls"), tls_port, Some((&cert, &key)));
    let bases =
        [(plain_port, format!("http://127.0.0.1:{plain_port}")), (tls_port, format!("https://127.0.0.1:{tls_port}"))];
    for (_, base) in &bases {
        let created = curl(&["-k", "-XPOST", &format!("{base}/query"), "--data-urlencode", "q=CREATE DATABASE load"]);
        assert!(created.contains("statement_id"), "{created}");
    }
    let agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &format!("{plain_port},{tls_port}")).start();
    for p in [&plain, &tls] {
        agent.wait_instrumented(p.pid(), WAIT);
        let needle = format!(" pid={} ", p.pid());
        let understood = agent
            .proc
            .wait_line(|l| l.contains("msg=\"Go binary understood\"") && l.contains(&needle), WAIT)
            .unwrap_or_else(|| panic!("influxd not understood: {:#?}", agent.proc.lines()));
        assert!(understood.contains("crypto/tls.(*Conn).Read@0x"), "{understood}");
        agent
            .proc
            .wait_line(
                |l| l.contains("msg=\"Go net/http and crypto/tls probes attached\"") && l.contains(&needle),
                WAIT,
            )
            .unwrap_or_else(|| panic!("no Go probes on influxd: {:#?}", agent.proc.lines()));
    }

    for (_, base) in &bases {
        // Writes and queries at the same time.
        let writes = std::thread::scope(|scope| {
            let writes = scope
                .spawn(|| burst(&["--data-binary", "cpu,host=a value=1"], base, |i| format!("/write?db=load&req={i}")));
            let queries = burst(&[], base, |i| format!("/query?db=load&q=SELECT+count(*)+FROM+cpu&req={i}"));
            assert_eq!(queries, vec!["200".to_string(); REQUESTS], "{base} queries");
            writes.join().unwrap()
        });
        assert_eq!(writes, vec!["204".to_string(); REQUESTS], "{base} writes");
    }

    for (port, base) in &bases {
        let spans = agent.wait_spans(2 * REQUESTS, WAIT, |s| is_type(s, "HTTP") && host_port(s) == *port);
        let count = |method: &str, url: &str, status: &str| {
            spans
                .iter()
                .filter(|s| (attr(s, "method"), attr(s, "url"), attr(s, "status")) == (method, url, status))
                .count()
        };
        assert_eq!(
            (count("POST", "/write", "204"), count("GET", "/query", "200"), spans.len()),
            (REQUESTS, REQUESTS, 2 * REQUESTS),
            "{base}: {spans:#?}"
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let all = agent.spans();
    for (port, base) in &bases {
        let on_port = all.iter().filter(|s| host_port(s) == *port).count();
        assert_eq!(on_port, 2 * REQUESTS, "{base}: nothing else from the port (ciphertext, duplicates)");
    }
    let own_calls = all.iter().filter(|s| field(s, "kind") == "SPAN_KIND_CLIENT" && field(s, "peerName") == "influxd");
    assert_eq!(own_calls.count(), 0, "influxd makes no outgoing call here");
}
