//! MySQL end to end against MariaDB: a server of its own (Debian
//! `mariadb-server`, `mariadb-install-db` in a temporary directory, run on
//! a free port), PyMySQL and mysql-connector-python (PyPI) and `mysqlslap`
//! as clients, the real agent and real eBPF. Runs as root.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::prom::*;
use common::*;

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "s3cret-my-pw";

/// A MariaDB server in a temporary directory on 127.0.0.1:`port`, with
/// user `obi` (password [`PASSWORD`]) and database `obi`; killed on drop.
struct Server {
    dir: tempfile::TempDir,
    child: Child,
}

impl Server {
    fn start(port: u16) -> Server {
        Server::start_with(port, false)
    }

    /// With TLS, on a self-signed certificate (`cert.pem` in [`Server::path`]).
    fn start_tls(port: u16) -> Server {
        Server::start_with(port, true)
    }

    fn start_with(port: u16, tls: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Temporary tables in a directory of its own: two bootstraps at once
        // in /tmp failed ("Could not remove temporary table ... error: 2").
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        run(Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--user=root", "--auth-root-authentication-method=socket", "--skip-test-db"]));
        let mut more = Vec::new();
        if tls {
            let (cert, key) = self_signed_cert(dir.path());
            more = vec![format!("--ssl-cert={}", cert.display()), format!("--ssl-key={}", key.display())];
        }
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--log-error={}", dir.path().join("log").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0"])
            .args(&more)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        let server = Server { dir, child };
        let deadline = Instant::now() + WAIT;
        while !server.sql_ok("SELECT 1") {
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start: {:?}",
                std::fs::read_to_string(server.path().join("log"))
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server.sql(&format!(
            "CREATE USER obi@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON *.* TO obi@'127.0.0.1'; CREATE DATABASE obi"
        ));
        server
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn client(&self) -> Command {
        let mut c = Command::new("mariadb");
        c.arg("--no-defaults").arg(format!("--socket={}", self.path().join("sock").display())).args(["-u", "root"]);
        c
    }

    fn sql_ok(&self, sql: &str) -> bool {
        self.client().args(["-e", sql]).output().is_ok_and(|o| o.status.success())
    }

    /// Runs SQL as root over the Unix socket (not traced: not TCP).
    fn sql(&self, sql: &str) {
        run(self.client().args(["-e", sql]));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` with a pipe to its stdin, waits until the agent instruments
/// it, then writes `input` (the client connects only after reading it).
fn gated(agent: &Agent, name: &str, cmd: &mut Command, input: &str) -> Proc {
    let mut proc = spawn_with_stdin(name, cmd);
    agent.wait_instrumented(proc.pid(), WAIT);
    let mut stdin = proc.child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    proc
}

/// The agent, selecting the test app `script` run against `port`; its
/// Prometheus port; the app, run to its end (`extra` arguments after the
/// port and password).
/// Waits until `pid` has loaded libssl and the agent has attached its
/// OpenSSL probes: a TLS login written before them is never seen in plaintext.
fn wait_tls_probes(agent: &Agent, pid: u32) {
    let deadline = std::time::Instant::now() + WAIT;
    while !std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default().contains("libssl") {
        assert!(std::time::Instant::now() < deadline, "{pid} never loaded libssl");
        std::thread::sleep(Duration::from_millis(20));
    }
    let needle = format!("pid={pid}");
    agent
        .proc
        .wait_line(|l| l.contains("msg=\"OpenSSL probes attached\"") && l.contains(&needle), WAIT)
        .unwrap_or_else(|| panic!("no OpenSSL probes for {pid}"));
}

fn run_app(script: &str, port: u16, extra: &[&str]) -> (Agent, u16, Proc) {
    let prom = free_port();
    let agent = Agent::builder()
        .config(&format!("discovery:\n  instrument:\n    - cmd_args: '*{script} {port} *'\n"))
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .env("OTEL_EBPF_INTERNAL_METRICS_EXPORTER", "prometheus")
        .start();
    let mut cmd = Command::new(venv_python());
    cmd.arg(apps_dir().join(script)).args([&port.to_string(), PASSWORD]).args(extra);
    let mut proc = spawn_with_stdin(script, &mut cmd);
    agent.wait_instrumented(proc.pid(), WAIT);
    if script.contains("tls") {
        wait_tls_probes(&agent, proc.pid());
    }
    proc.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut app = proc;
    assert!(app.wait_exit(WAIT).is_some_and(|s| s.success()), "{script} failed: {:?}", app.lines());
    let _ = app.wait_line(|l| l == "ok", WAIT);
    (agent, prom, app)
}

#[test]
fn pymysql_queries_and_connector_prepared_statements() {
    require_root();
    let port = free_port();
    let _server = Server::start(port);
    let (agent, prom, client) = run_app("mysql_client.py", port, &[]);
    assert_eq!(
        client.lines(),
        ["select apple", "error 1146", "rows 5000", "big 100000", "count 1", "error 1146 42S02", "ok"]
    );

    let want = mysql_client_calls();
    let spans = expect_sql_spans(&agent, port, &want, PASSWORD);
    for failed in spans.iter().filter(|s| attr(s, "errorCode") == "1146") {
        assert_eq!(attr(failed, "errorMessage"), "(42S02) Table 'obi.nope' doesn't exist");
    }

    let name = "db_client_operation_duration_seconds_count";
    let maria = [("db_system_name", "mariadb")];
    let samples = scrape_until(prom, WAIT, |s| total(s, name, &maria) >= want.len() as f64);
    assert_eq!(total(&samples, name, &maria), want.len() as f64);
    assert_eq!(total(&samples, name, &[("db_operation_name", "UPDATE")]), 3.0);
    assert_eq!(total(&samples, name, &[("db_operation_name", "SELECT"), ("error_type", "1146")]), 2.0);
}

/// What `mysql_client.py` runs, as (operation, table, statement, errorCode)
/// in order: the spans its calls make on either side of the connection.
fn mysql_client_calls() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    let update = ("UPDATE", "items", "UPDATE items SET name = ? WHERE id = ?", "");
    vec![
        // PyMySQL: every statement is a COM_QUERY with its literals in it.
        ("SET", "", "SET NAMES utf8mb4", ""),
        ("CREATE", "items", "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(?))", ""),
        ("INSERT", "items", "INSERT INTO items (id, name) VALUES (?, ?)", ""),
        ("SELECT", "items", "SELECT name FROM items WHERE id = ?", ""),
        ("SELECT", "nope", "SELECT * FROM nope WHERE id = ?", "1146"),
        // (ping and select_db: no spans) 5000 rows, far more than a read's capture.
        ("SELECT", "seq_1_to_5000", "SELECT seq FROM seq_1_to_5000", ""),
        ("SELECT", "", "SELECT REPEAT(?, ?)", ""),
        // mysql-connector-python: its session setup, then one prepare and
        // three executions (the text comes from the prepare), one more
        // prepared SELECT, and a prepare that fails (a span: it never runs).
        ("SET", "", "SET NAMES ? COLLATE ?", ""),
        ("SET", "", "SET @@session.autocommit = ON", ""),
        update,
        update,
        update,
        ("SELECT", "items", "SELECT count(*) FROM items WHERE name = ?", ""),
        ("SELECT", "nope", "SELECT * FROM nope WHERE id = ?", "1146"),
    ]
}

/// The number after `label` in the tool's report.
fn reported(lines: &[String], label: &str) -> usize {
    let line = lines.iter().find(|l| l.contains(label)).unwrap_or_else(|| panic!("no {label:?} in {lines:#?}"));
    line.rsplit(' ').next().unwrap().trim().parse().unwrap()
}

/// `mysqlslap`, 8 clients running three statements in turn: the spans
/// equal the queries the tool reports, and nothing was lost on the way.
#[test]
fn mysqlslap_counts_match() {
    require_root();
    let (port, prom) = (free_port(), free_port());
    let server = Server::start(port);
    server.sql("CREATE TABLE obi.slap (id INT PRIMARY KEY AUTO_INCREMENT, v INT); INSERT INTO obi.slap (v) VALUES (1), (2), (3)");
    let agent = Agent::builder()
        .config(&format!(
            "discovery:\n  instrument:\n    - cmd_args: '*mysqlslap --no-defaults -h 127.0.0.1 -P {port} *'\n"
        ))
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .env("OTEL_EBPF_INTERNAL_METRICS_EXPORTER", "prometheus")
        .start();
    let (clients, queries) = (8, 8000);
    // --no-defaults must come first.
    let args = format!(
        "--no-defaults -h 127.0.0.1 -P {port} -u obi -p --create-schema=obi --no-drop --iterations=1 \
         --concurrency={clients} --number-of-queries={queries} --delimiter=;"
    );
    let statements =
        "SELECT v FROM slap WHERE id = 2;UPDATE slap SET v = v + 1 WHERE id = 1;INSERT INTO slap (v) VALUES (7)";
    let mut cmd = Command::new("mysqlslap");
    cmd.args(args.split_whitespace()).arg(format!("--query={statements}"));
    // Without a terminal the password prompt reads stdin: the tool waits
    // there, before connecting, until the agent instruments it.
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut bench = gated(&agent, "mysqlslap", &mut cmd, &format!("{PASSWORD}\n"));
    assert!(bench.wait_exit(Duration::from_secs(180)).is_some_and(|s| s.success()), "{:?}", bench.lines());
    let _ = bench.wait_line(|l| l.contains("Average number of queries per client"), WAIT);
    let lines = bench.lines();
    let ran = reported(&lines, "Number of clients running queries:")
        * reported(&lines, "Average number of queries per client:");
    assert_eq!(ran, queries, "{lines:?}");

    let spans = agent.wait_spans(ran, Duration::from_secs(90), sql_client_of(port));
    let count = |op: &str| spans.iter().filter(|s| attr(s, "operation") == op && attr(s, "table") == "slap").count();
    eprintln!(
        "mysqlslap: {} spans for {ran} queries (SELECT {}, UPDATE {}, INSERT {})",
        spans.len(),
        count("SELECT"),
        count("UPDATE"),
        count("INSERT")
    );
    assert_eq!(spans.len(), ran);
    assert_eq!(count("SELECT") + count("UPDATE") + count("INSERT"), ran);
    assert!(spans.iter().all(|s| attr(s, "errorCode").is_empty()));
    let exported = "obi_exporter_spans_total";
    let internal = internal_when(prom, exported, ran as f64, WAIT);
    assert_eq!(total(&internal, exported, &[("sink", "metrics")]), ran as f64);
    assert_nothing_lost(&internal);
    let name = "db_client_operation_duration_seconds_count";
    let samples = scrape_until(prom, WAIT, |s| total(s, name, &[]) >= ran as f64);
    assert_eq!(total(&samples, name, &[("db_system_name", "mariadb")]), ran as f64);
}

/// Malformed traffic on the server's port: no span, no crash, the
/// connections dropped from parsing and counted; the good one is a span.
#[test]
fn malformed_traffic_is_dropped_and_counted() {
    require_root();
    let port = free_port();
    let _server = Server::start(port);
    let (agent, prom, _) = run_app("mysql_garbage.py", port, &[]);
    let spans = agent.wait_spans(2, WAIT, sql_client_of(port));
    let got: Vec<(String, String, String)> = db_calls(&spans);
    let want = [("SET", "SET NAMES utf8mb4", ""), ("SELECT", "SELECT ?", "")];
    let want: Vec<(String, String, String)> =
        want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(got, want);
    let _ = internal_when(prom, "obi_ignored_connections_total", 1.0, WAIT);
    // Published once a second: let them settle, then read them again.
    std::thread::sleep(Duration::from_secs(2));
    let internal = internal_when(prom, "obi_ignored_connections_total", 1.0, WAIT);
    assert_eq!(total(&internal, "obi_parse_failures_total", &[]), 1.0, "the login that is not one");
    assert_eq!(total(&internal, "obi_ignored_connections_total", &[]), 1.0, "the noise");
    assert_eq!(total(&internal, "obi_exporter_spans_total", &[("sink", "metrics")]), 2.0);
}

/// A TLS connection: the socket's side stops at the TLS request (not a
/// failure); the plaintext, through the OpenSSL probes, is parsed from the
/// rest of the login on, without the greeting (so `db.system.name` is `mysql`).
#[test]
fn tls_connection_through_the_openssl_probes() {
    require_root();
    let port = free_port();
    let server = Server::start_tls(port);
    let cert = server.path().join("cert.pem");
    let (agent, prom, client) = run_app("mysql_tls.py", port, &[cert.to_str().unwrap()]);
    assert_eq!(client.lines(), ["cipher True", "error 1146", "ok"]);
    let spans = agent.wait_spans(3, WAIT, sql_client_of(port));
    let want = [
        ("SET", "SET NAMES utf8mb4", ""),
        ("SHOW", "SHOW STATUS LIKE ?", ""),
        ("SELECT", "SELECT ? FROM nope", "1146"),
    ];
    let want: Vec<(String, String, String)> =
        want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(db_calls(&spans), want, "{spans:#?}");
    assert!(!agent.proc.lines().iter().any(|l| l.contains(PASSWORD)), "the password leaked");
    let name = "db_client_operation_duration_seconds_count";
    let samples = scrape_until(prom, WAIT, |s| total(s, name, &[]) >= 3.0);
    assert_eq!(total(&samples, name, &[("db_system_name", "mysql")]), 3.0);
    let internal = internal_when(prom, "obi_exporter_spans_total", 3.0, WAIT);
    assert_eq!(total(&internal, "obi_parse_failures_total", &[]), 0.0);
    assert_eq!(total(&internal, "obi_ignored_connections_total", &[]), 0.0);
}

/// A traced MariaDB (one process, a thread per connection): a server span
/// per statement of untraced PyMySQL and mysql-connector clients, the same
/// statements their client spans show (prepared ones with the text of
/// their prepare); server spans feed no client histogram.
#[test]
fn traced_server_shows_a_server_span_per_statement() {
    require_root();
    let (port, prom) = (free_port(), free_port());
    let _server = Server::start(port);
    let agent = agent_for_db_server(port, prom, "mariadbd");
    let mut cmd = Command::new(venv_python());
    cmd.arg(apps_dir().join("mysql_client.py")).args([&port.to_string(), PASSWORD]);
    let mut client = spawn_with_stdin("mysql_client.py", &mut cmd);
    client.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "client failed: {:?}", client.lines());
    let spans = expect_sql_server_spans(&agent, (port, prom), &mysql_client_calls(), "mariadbd", PASSWORD);
    for failed in spans.iter().filter(|s| attr(s, "errorCode") == "1146") {
        assert_eq!(attr(failed, "errorMessage"), "(42S02) Table 'obi.nope' doesn't exist");
    }
}
