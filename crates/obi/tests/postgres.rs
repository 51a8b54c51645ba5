//! PostgreSQL end to end: a cluster of its own (Debian `postgresql`, run as
//! the postgres user in a temporary directory on a free port, SCRAM
//! passwords over TCP), psycopg and asyncpg (PyPI), node-postgres (npm) and
//! `pgbench` as clients, the real agent and real eBPF. Runs as root.

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

/// A cluster in a temporary directory, listening on 127.0.0.1:`port` with
/// role `obi` (password [`PASSWORD`]); stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn start(port: u16) -> Cluster {
        Cluster::start_with(port, false)
    }

    /// `tls`: the server also offers SSL, with a self-signed certificate.
    fn start_with(port: u16, tls: bool) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        std::fs::write(path.join("pw"), "postgres\n").unwrap();
        let mut ssl_options = String::new();
        if tls {
            let (cert, key) = self_signed_cert(path);
            ssl_options = format!(" -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}", cert.display(), key.display());
        }
        run(&mut {
            let mut c = Command::new("chown");
            c.args(["-R", "postgres:postgres"]).arg(path);
            c
        });
        run(&mut {
            let mut c = as_postgres("initdb");
            c.arg("-D").arg(path.join("data")).args(["-U", "postgres", "--auth-local=trust"]);
            c.args(["--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])
                .arg(format!("--pwfile={}", path.join("pw").display()));
            c
        });
        run(&mut {
            let mut c = as_postgres("pg_ctl");
            c.arg("-D").arg(path.join("data")).arg("-l").arg(path.join("log")).args(["-w", "-o"]);
            c.arg(format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{ssl_options}", path.display()));
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
        run(&mut {
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

#[test]
fn psycopg_simple_extended_prepared_pipeline_copy() {
    psycopg_traffic(false);
}

/// The same traffic over SSL: the plaintext comes from the OpenSSL probes
/// on the copy of OpenSSL that psycopg-binary bundles (`libssl-<hash>.so.3`,
/// loaded after the interpreter's own libssl), the same spans exactly.
#[test]
fn psycopg_over_ssl_through_the_openssl_probes() {
    psycopg_traffic(true);
}

fn psycopg_traffic(tls: bool) {
    require_root();
    let (port, prom) = (free_port(), free_port());
    let _cluster = Cluster::start_with(port, tls);
    let agent = Agent::builder()
        .config(&format!("discovery:\n  instrument:\n    - cmd_args: '*pg_client.py {port} *'\n"))
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .start();
    let mut client = spawn(
        "psycopg",
        Command::new(venv_python())
            .arg(apps_dir().join("pg_client.py"))
            .args([&port.to_string(), PASSWORD])
            .args(tls.then_some("--ssl")),
    );
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "client failed: {:?}", client.lines());
    let _ = client.wait_line(|l| l == "ok", WAIT);
    assert_eq!(client.lines().last().map(String::as_str), Some("ok"), "{:?}", client.lines());
    let ssl = format!("ssl {}", if tls { "True" } else { "False" });
    assert_eq!(client.lines(), [ssl.as_str(), "select apple", "error 42P01", "count 6", "ok"]);

    let want = psycopg_calls();
    let spans = expect_sql_spans(&agent, port, &want, PASSWORD);
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

/// What `pg_client.py` runs, as (operation, table, statement, errorCode) in
/// order: the spans its calls make on either side of the connection.
fn psycopg_calls() -> [(&'static str, &'static str, &'static str, &'static str); 14] {
    let insert = ("INSERT", "items", "INSERT INTO items (id, name) VALUES ($1, $2)", "");
    let update = ("UPDATE", "items", "UPDATE items SET name = $1 WHERE id = $2", "");
    [
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
    ]
}

/// Spans of `operation` on `table` among `spans`.
fn count(spans: &[Value], operation: &str, table: &str) -> usize {
    spans.iter().filter(|s| attr(s, "operation") == operation && attr(s, "table") == table).count()
}

/// `pgbench` in the simple, prepared and extended protocols (the last with
/// a script that pipelines three statements per transaction): the spans
/// of each statement equal the transactions the tool reports, and nothing
/// was lost on the way.
#[test]
fn pgbench_counts_match_in_every_protocol() {
    require_root();
    let (port, prom) = (free_port(), free_port());
    let cluster = Cluster::start(port);
    // Tables for 100,000 accounts, made over the Unix socket (not traced).
    run(&mut {
        let mut c = as_postgres("pgbench");
        c.args(["-i", "-q", "-s", "1", "-h"]).arg(cluster.path()).args(["-p", &port.to_string(), "postgres"]);
        c
    });
    let agent = Agent::builder()
        .printer("json")
        .config(&format!("discovery:\n  instrument:\n    - cmd_args: '*pgbench -h 127.0.0.1 -p {port} *'\n"))
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .env("OTEL_EBPF_INTERNAL_METRICS_EXPORTER", "prometheus")
        .start();
    let (clients, per_client) = (4, 250);
    let txs = clients * per_client;
    let pipeline = std::fs::read_to_string(apps_dir().join("pgbench_pipeline.sql")).unwrap();
    let mut seen = 0;
    for mode in ["simple", "prepared", "pipeline"] {
        // pgbench reads its scripts before it connects: one of them is a FIFO
        // that is written only once the agent instruments pgbench, so that
        // every connection is seen from its first byte. For the builtin
        // tpcb-like runs, the FIFO's script has weight 0 (never chosen).
        let fifo = cluster.path().join(format!("{mode}.fifo"));
        run(&mut {
            let mut c = Command::new("mkfifo");
            c.arg(&fifo);
            c
        });
        let (protocol, scripts, script) = match mode {
            "pipeline" => ("extended", format!("-f {}", fifo.display()), pipeline.clone()),
            _ => (mode, format!("-b tpcb-like -f {}@0", fifo.display()), "\\set x 1\n".to_string()),
        };
        let args = format!(
            "-h 127.0.0.1 -p {port} -U obi -n -c {clients} -j 2 -t {per_client} -M {protocol} {scripts} postgres"
        );
        let mut bench =
            spawn("pgbench", Command::new(pg_bin("pgbench")).args(args.split(' ')).env("PGPASSWORD", PASSWORD));
        agent.wait_instrumented(bench.pid(), WAIT);
        std::fs::write(&fifo, script).unwrap();
        assert!(bench.wait_exit(Duration::from_secs(180)).is_some_and(|s| s.success()), "{:?}", bench.lines());
        // Its output may still be on the way through the pipe.
        let processed = format!("number of transactions actually processed: {txs}/{txs}");
        let printed = |l: &str| l.contains(&processed);
        assert!(bench.wait_line(printed, WAIT).is_some(), "{mode}: {:?}", bench.lines());
        let failed = |l: &str| l.contains("number of failed transactions: 0 ");
        assert!(bench.wait_line(failed, WAIT).is_some(), "{:?}", bench.lines());

        let per_tx = if mode == "pipeline" { 3 } else { 7 };
        let spans = agent.wait_spans(seen + per_tx * txs, Duration::from_secs(90), |s| {
            sql_client_of(port)(s)
                && (attr(s, "table").starts_with("pgbench_") || ["BEGIN", "END"].contains(&attr(s, "operation")))
        });
        eprintln!("pgbench -M {protocol} ({mode}): {} spans so far", spans.len());
        seen = spans.len();
    }
    let spans: Vec<Value> = agent.spans().into_iter().filter(sql_client_of(port)).collect();
    let total_spans = spans.len();
    let exported = "obi_exporter_spans_total";
    let internal = internal_when(prom, exported, total_spans as f64, WAIT);
    let bench_statement = |s: &Value| {
        let op_table = (attr(s, "operation"), attr(s, "table"));
        ["BEGIN", "END"].contains(&op_table.0)
            || [
                ("UPDATE", "pgbench_accounts"),
                ("SELECT", "pgbench_accounts"),
                ("UPDATE", "pgbench_tellers"),
                ("UPDATE", "pgbench_branches"),
                ("INSERT", "pgbench_history"),
            ]
            .contains(&op_table)
    };
    // Besides, the two queries of pgbench's setup, once per builtin run.
    let mut setup: Vec<&str> = spans.iter().filter(|s| !bench_statement(s)).map(|s| attr(s, "statement")).collect();
    setup.sort_unstable();
    assert_eq!(setup.len(), 4, "{setup:#?}");
    assert_eq!(setup[0], "select count(*) from pgbench_branches");
    assert_eq!(setup[1], setup[0]);
    assert!(setup[2].starts_with("select o.n, p.partstrat,") && setup[3] == setup[2], "{setup:#?}");
    // tpcb-like, twice (simple and prepared): one of each per transaction.
    for (op, table) in [("UPDATE", "pgbench_tellers"), ("UPDATE", "pgbench_branches"), ("INSERT", "pgbench_history")] {
        assert_eq!(count(&spans, op, table), 2 * txs, "{op} {table}");
    }
    assert_eq!(count(&spans, "BEGIN", ""), 2 * txs);
    assert_eq!(count(&spans, "END", ""), 2 * txs);
    // ... plus, from the pipelines, one UPDATE and two SELECTs per transaction.
    assert_eq!(count(&spans, "UPDATE", "pgbench_accounts"), 3 * txs);
    assert_eq!(count(&spans, "SELECT", "pgbench_accounts"), 4 * txs);
    assert!(spans.iter().all(|s| attr(s, "errorCode").is_empty()));
    assert_eq!(total_spans, 17 * txs + 4);
    eprintln!("pgbench: {total_spans} SQL spans for {} benchmark statements and 4 setup queries", 17 * txs);

    // Every span of pgbench reached the exporters (the tracker's own span
    // count also holds spans of programs traced provisionally between their
    // exec and their rejection by discovery: other processes on this host).
    assert_eq!(total(&internal, "obi_exporter_spans_total", &[("sink", "metrics")]), total_spans as f64);
    assert_nothing_lost(&internal);
    let name = "db_client_operation_duration_seconds_count";
    let samples = scrape_until(prom, WAIT, |s| total(s, name, &[]) >= total_spans as f64);
    assert_eq!(total(&samples, name, &[("db_system_name", "postgresql")]), total_spans as f64);
}

/// PostgreSQL calls under concurrency take their request as parent: a
/// threaded Python server (psycopg, a connection per thread) answers 50
/// requests, 10 at a time, each with two queries naming the request (kept in
/// the statement with OTEL_EBPF_DB_QUERY_LITERALS). psycopg waits for its
/// socket in epoll_wait on a set holding only that socket (seen with
/// strace); the kernel counts each set's members, so such a wait is not
/// taken for an event loop (before, every call here was a root).
#[test]
fn postgres_calls_under_concurrency_take_their_request_as_parent() {
    require_root();
    let (front, pg) = (free_port(), free_port());
    let _cluster = Cluster::start(pg);
    let app = start_server(
        "pg-fanout",
        Command::new(venv_python()).arg(apps_dir().join("db_fanout_server.py")).args([
            front.to_string(),
            "postgres".into(),
            pg.to_string(),
            PASSWORD.into(),
        ]),
    );
    let agent = Agent::builder()
        .env("OTEL_EBPF_DB_QUERY_LITERALS", "true")
        .config(&format!("discovery:\n  instrument:\n    - open_ports: {front}\n"))
        .start();
    agent.wait_instrumented(app.pid(), WAIT);
    let (requests, calls) = (50, 2);
    let spans = common::audit::db_fanout_spans(&agent, front, requests, calls, |s| {
        sql_client_of(pg)(s) && attr(s, "statement").starts_with("SELECT 'leaf:db-")
    });
    let audit = common::audit::parent_audit("postgres_calls_under_concurrency", &spans);
    // psycopg waits for its socket in an epoll set of that one socket: not
    // an event loop, so every call takes its request as parent.
    assert_eq!((audit.right, audit.wrong, audit.total()), (requests * calls, 0, requests * calls), "{audit:?}");
}

/// asyncpg (PyPI), an asyncio client with its own habits: every statement
/// with arguments is prepared in a round trip of its own (Parse/Describe)
/// and then run by name from its cache, executemany sends many
/// Bind/Execute before one Sync, a pool runs queries on four connections at
/// once and resets each connection it takes back. One span per statement
/// the server ran or refused, with the text it was prepared with.
#[test]
fn asyncpg_statement_cache_executemany_and_pool() {
    require_root();
    let port = free_port();
    let _cluster = Cluster::start(port);
    let agent = Agent::builder()
        .config(&format!("discovery:\n  instrument:\n    - cmd_args: '*asyncpg_client.py {port} *'\n"))
        .start();
    let mut client = spawn(
        "asyncpg",
        Command::new(venv_python()).arg(apps_dir().join("asyncpg_client.py")).args([&port.to_string(), PASSWORD]),
    );
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "client failed: {:?}", client.lines());
    assert_eq!(client.lines(), ["select f1", "error 42P01", "counts 3", "ok"]);
    let insert = ("INSERT", "fruit", "INSERT INTO fruit (id, name) VALUES ($1, $2)", "");
    let update = ("UPDATE", "fruit", "UPDATE fruit SET name = $1 WHERE id = $2", "");
    let count = ("SELECT", "fruit", "SELECT count(*) FROM fruit WHERE id >= $1", "");
    let reset = ("SELECT", "", "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;", "");
    let mut want = vec![
        ("CREATE", "fruit", "CREATE TABLE fruit (id int PRIMARY KEY, name text)", ""),
        insert,
        insert,
        insert,
        ("SELECT", "fruit", "SELECT name FROM fruit WHERE id = $1", ""),
        update,
        update,
        update,
        update,
        ("BEGIN", "", "BEGIN;", ""),
        ("DELETE", "fruit", "DELETE FROM fruit WHERE id = $1", ""),
        ("COMMIT", "", "COMMIT;", ""),
        // Refused when asyncpg prepared it: no Execute was ever sent.
        ("SELECT", "nope", "SELECT * FROM nope WHERE id = $1", "42P01"),
    ];
    // The pool's eight queries and the reset of each connection it took
    // back: their order across four connections is the event loop's.
    want.extend([count; 8]);
    want.extend([reset; 8]);
    let spans = agent.wait_spans(want.len(), WAIT, sql_client_of(port));
    let mut got = common::sql_calls(&spans);
    let (serial, pooled) = got.split_at_mut(13);
    pooled.sort();
    let mut want: Vec<_> =
        want.iter().map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string())).collect();
    want[13..].sort();
    assert_eq!([serial, pooled].concat(), want, "{spans:#?}");
    assert!(!agent.proc.lines().iter().any(|l| l.contains(PASSWORD)), "the password leaked");
}

/// node-postgres (npm `pg`) on Node.js: simple queries, parameterised ones
/// (the unnamed statement), a named prepared statement run three times
/// (parsed once), a transaction, an error, and a pool of four connections
/// running eight queries at once. One span per statement, exact.
#[test]
fn node_postgres_queries_prepared_transaction_and_pool() {
    require_root();
    let port = free_port();
    let _cluster = Cluster::start(port);
    let agent = Agent::builder()
        .config(&format!("discovery:\n  instrument:\n    - cmd_args: '*node_pg_client.js {port} *'\n"))
        .start();
    let mut client = spawn(
        "node-postgres",
        Command::new("node").arg(apps_dir().join("node_pg_client.js")).args([&port.to_string(), PASSWORD]),
    );
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "client failed: {:?}", client.lines());
    assert_eq!(client.lines(), ["select r2", "error 42P01", "counts 3", "ok"]);
    let insert = ("INSERT", "veg", "INSERT INTO veg (id, name) VALUES ($1, $2)", "");
    // Parsed once under its name, then bound and executed by name.
    let rename = ("UPDATE", "veg", "UPDATE veg SET name = $1 WHERE id = $2", "");
    let mut want = vec![
        ("CREATE", "veg", "CREATE TABLE veg (id int PRIMARY KEY, name text)", ""),
        insert,
        insert,
        insert,
        rename,
        rename,
        rename,
        ("SELECT", "veg", "SELECT name FROM veg WHERE id = $1", ""),
        ("BEGIN", "", "BEGIN", ""),
        ("DELETE", "veg", "DELETE FROM veg WHERE id = $1", ""),
        ("COMMIT", "", "COMMIT", ""),
        ("SELECT", "nope", "SELECT * FROM nope WHERE id = $1", "42P01"),
    ];
    want.extend([("SELECT", "veg", "SELECT count(*) AS n FROM veg WHERE id >= $1", ""); 8]);
    expect_sql_spans(&agent, port, &want, PASSWORD);
}

/// A traced PostgreSQL: each backend (a process the postmaster forks per
/// connection) gives a server span per statement of an untraced client,
/// the same statements the client's spans show; server spans feed no
/// client histogram.
#[test]
fn traced_server_shows_a_server_span_per_statement() {
    require_root();
    let (port, prom) = (free_port(), free_port());
    let _cluster = Cluster::start(port);
    let agent = agent_for_db_server(port, prom, "bin/postgres");
    let mut client = spawn(
        "psycopg",
        Command::new(venv_python()).arg(apps_dir().join("pg_client.py")).args([&port.to_string(), PASSWORD]),
    );
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "client failed: {:?}", client.lines());
    let spans = expect_sql_server_spans(&agent, (port, prom), &psycopg_calls(), "postgres", PASSWORD);
    let failed = spans.iter().find(|s| attr(s, "errorCode") == "42P01").unwrap();
    assert_eq!(attr(failed, "errorMessage"), "relation \"nope\" does not exist");
}
