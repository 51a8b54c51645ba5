//! PostgreSQL end to end: a cluster of its own (Debian `postgresql`, run as
//! the postgres user in a temporary directory on a free port, SCRAM
//! passwords over TCP), psycopg (PyPI) and `pgbench` as clients, the real
//! agent and real eBPF. Runs as root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::prom::*;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "s3cret-pw";

/// The newest PostgreSQL server binaries Debian installed.
fn pg_bin(tool: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("postgresql is installed")
        .flatten()
        .map(|e| e.path())
        .collect();
    versions.sort();
    versions.last().expect("a postgresql version").join("bin").join(tool)
}

fn as_postgres(tool: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(pg_bin(tool));
    c
}

fn run(mut cmd: Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A cluster in a temporary directory, listening on 127.0.0.1:`port` with
/// role `obi` (password [`PASSWORD`]); stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn start(port: u16) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        std::fs::write(path.join("pw"), "postgres\n").unwrap();
        run({
            let mut c = Command::new("chown");
            c.args(["-R", "postgres:postgres"]).arg(path);
            c
        });
        run({
            let mut c = as_postgres("initdb");
            c.arg("-D").arg(path.join("data")).args(["-U", "postgres", "--auth-local=trust"]);
            c.args(["--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])
                .arg(format!("--pwfile={}", path.join("pw").display()));
            c
        });
        run({
            let mut c = as_postgres("pg_ctl");
            c.arg("-D").arg(path.join("data")).arg("-l").arg(path.join("log")).args(["-w", "-o"]);
            c.arg(format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", path.display()));
            c.arg("start");
            c
        });
        let cluster = Cluster { dir, port };
        cluster.psql(&format!("CREATE ROLE obi LOGIN SUPERUSER PASSWORD '{PASSWORD}'"));
        cluster
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs SQL as postgres over the Unix socket (not traced: not TCP).
    fn psql(&self, sql: &str) {
        run({
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "psql", "-q", "-h"]).arg(self.path());
            c.args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql]);
            c
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ =
            as_postgres("pg_ctl").arg("-D").arg(self.path().join("data")).args(["-m", "immediate", "stop"]).output();
    }
}

fn of(port: u16) -> impl Fn(&Value) -> bool {
    move |s| is_type(s, "SQLClient") && host_port(s) == port
}

/// (operation, table, statement, errorCode) of each span, in start order.
fn calls(spans: &[Value]) -> Vec<(String, String, String, String)> {
    let mut spans = spans.to_vec();
    spans.sort_by_key(|s| field(s, "start").parse::<u64>().unwrap_or(0));
    spans
        .iter()
        .map(|s| {
            let a = |k| attr(s, k).to_string();
            (a("operation"), a("table"), a("statement"), a("errorCode"))
        })
        .collect()
}

#[test]
fn psycopg_simple_extended_prepared_pipeline_copy() {
    require_root();
    let (port, prom) = (free_port(), free_port());
    let _cluster = Cluster::start(port);
    let agent = Agent::builder()
        .config(&format!("discovery:\n  instrument:\n    - cmd_args: '*pg_client.py {port} *'\n"))
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .start();
    let mut client = spawn(
        "psycopg",
        Command::new(venv_python()).arg(apps_dir().join("pg_client.py")).args([&port.to_string(), PASSWORD]),
    );
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "client failed: {:?}", client.lines());
    assert_eq!(client.lines().last().map(String::as_str), Some("ok"), "{:?}", client.lines());
    assert_eq!(client.lines(), ["select apple", "error 42P01", "count 6", "ok"]);

    let insert = ("INSERT", "items", "INSERT INTO items (id, name) VALUES ($1, $2)", "");
    let update = ("UPDATE", "items", "UPDATE items SET name = $1 WHERE id = $2", "");
    let want = [
        // Simple query protocol, two statements: one span, named after the first.
        (
            "CREATE",
            "items",
            "CREATE TABLE items (id int PRIMARY KEY, name text); CREATE INDEX items_name ON items (name)",
            "",
        ),
        insert,
        ("SELECT", "items", "SELECT name FROM items WHERE id = $1", ""),
        ("SELECT", "nope", "SELECT * FROM nope WHERE id = $1", "42P01"),
        // Prepared once, executed three times: the text comes from the Parse.
        update,
        update,
        update,
        // The pipeline.
        insert,
        insert,
        insert,
        ("DELETE", "items", "DELETE FROM items WHERE id = $1", ""),
        ("COPY", "items", "COPY items (id, name) FROM STDIN", ""),
        ("SELECT", "items", "SELECT count(*) FROM items", ""),
        // The password is never shown.
        ("ALTER", "", "ALTER ROLE obi PASSWORD ?", ""),
    ];
    let want: Vec<(String, String, String, String)> =
        want.iter().map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string())).collect();
    let spans = agent.wait_spans(want.len(), WAIT, of(port));
    assert_eq!(calls(&spans), want, "{spans:#?}");
    assert!(spans.iter().all(|s| field(s, "kind") == "SPAN_KIND_CLIENT" && attr(s, "serverAddr") == "127.0.0.1"));
    assert!(!agent.proc.lines().iter().any(|l| l.contains(PASSWORD)), "the password leaked");
    let failed = spans.iter().find(|s| attr(s, "errorCode") == "42P01").unwrap();
    assert_eq!(attr(failed, "errorMessage"), "relation \"nope\" does not exist");

    // The pipeline's four statements: own span ids, one parentage.
    let mut sorted = spans.clone();
    sorted.sort_by_key(|s| field(s, "start").parse::<u64>().unwrap_or(0));
    let pipeline = &sorted[7..11];
    let ids: std::collections::HashSet<&str> = pipeline.iter().map(|s| field(s, "spanID")).collect();
    assert_eq!(ids.len(), 4);
    let parentage: std::collections::HashSet<(&str, &str)> =
        pipeline.iter().map(|s| (field(s, "traceID"), field(s, "parentSpanID"))).collect();
    assert_eq!(parentage.len(), 1, "{pipeline:#?}");

    let name = "db_client_operation_duration_seconds_count";
    let pg = [("db_system_name", "postgresql")];
    let samples = scrape_until(prom, WAIT, |s| total(s, name, &pg) >= want.len() as f64);
    assert_eq!(total(&samples, name, &pg), want.len() as f64);
    assert_eq!(total(&samples, name, &[("db_operation_name", "INSERT")]), 4.0);
    assert_eq!(total(&samples, name, &[("db_operation_name", "SELECT"), ("error_type", "42P01")]), 1.0);
}
