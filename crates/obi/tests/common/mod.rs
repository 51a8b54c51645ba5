//! Harness for the root-only integration tests: starts the real agent and
//! real servers/clients, and reads what the agent prints.
#![allow(dead_code)]

pub(crate) mod prom;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) mod audit;
pub(crate) mod go;

/// Fails fast with a clear message when the tests cannot run here.
pub(crate) fn require_root() {
    if std::env::var_os("OBI_SKIP_EBPF_TESTS").is_some() {
        eprintln!("OBI_SKIP_EBPF_TESTS is set: skipping");
        std::process::exit(0);
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "eBPF integration tests must run as root (or set OBI_SKIP_EBPF_TESTS=1)");
}

/// The real Python interpreter (not a pyenv shim, whose bash wrappers add
/// start-up time and extra processes).
pub(crate) fn python() -> PathBuf {
    static PY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().expect("python3");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// The test virtualenv's Python (grpcio, opentelemetry-proto), made by
/// scripts/install-deps.sh at $OBI_TEST_VENV (default /opt/obi-test-venv).
pub(crate) fn venv_python() -> PathBuf {
    let venv = std::env::var_os("OBI_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| "/opt/obi-test-venv".into());
    let py = venv.join("bin/python3");
    assert!(py.exists(), "{} is missing: run scripts/install-deps.sh (or set OBI_TEST_VENV)", py.display());
    py
}

pub(crate) fn apps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/apps")
}

/// A port nobody uses right now, below the kernel's ephemeral range
/// (`ip_local_port_range`), so neither a connection's local port nor a
/// `bind(0)` can ever be it: an agent selecting by open port (any local
/// socket, as OBI) must not select the process of a test running beside its
/// own, whose client happened to get that port for a connection. Successive
/// calls in one test binary never return the same port (each test gets its
/// own); the start is random, so a port a previous binary left in TIME_WAIT
/// is unlikely to come first (and is skipped when it does: it cannot be bound).
///
/// Bound, never listened on: a listen, even for an instant, would let the
/// agent of a test running beside this one select the test process itself,
/// and with it every child the tests spawn.
pub(crate) fn free_port() -> u16 {
    use socket2::{Domain, Socket, Type};
    use std::sync::atomic::AtomicU32;
    const LOW: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let high = ephemeral_range_start().max(LOW + 1_000);
    let span = high - LOW;
    let _ = NEXT.compare_exchange(u32::MAX, rand::random_range(0..span), Ordering::AcqRel, Ordering::Acquire);
    for _ in 0..span {
        let port = (LOW + NEXT.fetch_add(1, Ordering::AcqRel) % span) as u16;
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        if socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {high}");
}

/// The first port the kernel hands out by itself (connect, bind to 0).
fn ephemeral_range_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A child process killed (and reaped) on drop.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) name: String,
    /// stdout and stderr lines, in the order they arrived.
    output: Arc<Mutex<Vec<String>>>,
    /// stdout lines only (the agent's data: spans, never logs).
    stdout: Arc<Mutex<Vec<String>>>,
    /// How many of the two reader threads reached the end of their stream.
    streams_ended: Arc<AtomicUsize>,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lines the process printed so far, stdout and stderr merged.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Lines the process printed on stdout so far.
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub(crate) fn wait_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(l) = self.output.lock().unwrap().iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Its last lines may still be in the pipes: a loaded machine
                // once ran the test on before the agent's totals line was
                // read. Bounded: a forked child may hold the pipes open.
                let drained = Instant::now() + Duration::from_secs(3);
                while self.streams_ended.load(Ordering::Acquire) < 2 && Instant::now() < drained {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The whole process group: a server's workers (nginx's outlive a
        // killed master) and a forking server's children go with it. Left
        // behind, traced nginx workers slowed every later agent's detach
        // from 0.03 s to 1.9 s.
        // SAFETY: kill(2) on the group this Proc's child leads (spawn_reading).
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a command, collecting its stdout and stderr lines.
pub(crate) fn spawn(name: &str, cmd: &mut Command) -> Proc {
    spawn_reading(name, cmd.stdin(Stdio::null()))
}

/// Like [`spawn`], with a pipe to the command's stdin (`proc.child.stdin`):
/// a client that reads its input before connecting waits for the test.
pub(crate) fn spawn_with_stdin(name: &str, cmd: &mut Command) -> Proc {
    spawn_reading(name, cmd.stdin(Stdio::piped()))
}

fn spawn_reading(name: &str, cmd: &mut Command) -> Proc {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let output = Arc::new(Mutex::new(Vec::new()));
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let streams_ended = Arc::new(AtomicUsize::new(0));
    collect_lines(name, child.stdout.take().unwrap(), output.clone(), Some(stdout.clone()), streams_ended.clone());
    collect_lines(name, child.stderr.take().unwrap(), output.clone(), None, streams_ended.clone());
    Proc { child, name: name.to_string(), output, stdout, streams_ended }
}

/// Appends each line of `stream` to `merged` (and to `own`, if given) from a
/// thread of its own.
fn collect_lines(
    name: &str,
    stream: impl std::io::Read + Send + 'static,
    merged: Arc<Mutex<Vec<String>>>,
    own: Option<Arc<Mutex<Vec<String>>>>,
    ended: Arc<AtomicUsize>,
) {
    let tag = name.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if std::env::var_os("OBI_TEST_ECHO").is_some() {
                eprintln!("[{tag}] {line}");
            }
            if let Some(own) = &own {
                own.lock().unwrap().push(line.clone());
            }
            merged.lock().unwrap().push(line);
        }
        ended.fetch_add(1, Ordering::Release);
    });
}

/// Starts a server script and waits for its "ready" line.
pub(crate) fn start_server(name: &str, cmd: &mut Command) -> Proc {
    let p = spawn(name, cmd);
    p.wait_line(|l| l.starts_with("ready"), Duration::from_secs(15))
        .unwrap_or_else(|| panic!("{name} did not become ready"));
    p
}

pub(crate) fn python_server(port: u16) -> Proc {
    start_server("py-server", Command::new(python()).arg(apps_dir().join("http_server.py")).arg(port.to_string()))
}

/// The grpcio test server (tests/apps/grpc_server.py) on the test venv's Python.
pub(crate) fn grpc_server(port: u16) -> Proc {
    start_server(
        "grpc-server",
        Command::new(venv_python()).arg(apps_dir().join("grpc_server.py")).arg(port.to_string()),
    )
}

/// Runs the grpcio test client against 127.0.0.1:`port` and waits for it to
/// succeed. It sleeps 500 ms first so the agent instruments it before its
/// first connection (a connection whose preface it missed is not decoded).
pub(crate) fn grpc_client(port: u16, args: &[&str]) -> Proc {
    let mut p = spawn(
        "grpc-client",
        Command::new(venv_python())
            .arg(apps_dir().join("grpc_client.py"))
            .arg("--wait-ms=500")
            .arg(format!("127.0.0.1:{port}"))
            .args(args),
    );
    assert!(p.wait_exit(Duration::from_secs(60)).is_some_and(|s| s.success()), "grpc client {args:?} failed");
    p
}

pub(crate) fn node_server(port: u16) -> Proc {
    start_server("node-server", Command::new("node").arg(apps_dir().join("http_server.js")).arg(port.to_string()))
}

/// `python3 -m http.server` (the stdlib server, HTTP/1.0) serving `dir`.
pub(crate) fn stdlib_http_server(port: u16, dir: &std::path::Path) -> Proc {
    let p = spawn(
        "python-http.server",
        Command::new(python())
            .args(["-u", "-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(dir),
    );
    wait_port(port, Duration::from_secs(15));
    p
}

pub(crate) fn wait_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on port {port}");
}

/// Runs curl and returns (stdout, pid it had).
pub(crate) fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-s", "-S", "--max-time", "20"]).args(args).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The python keep-alive client; returns its printed lines once it exits.
pub(crate) fn python_client(port: u16, requests: &[&str], extra: &[&str]) -> Proc {
    spawn(
        "py-client",
        Command::new(python())
            .arg(apps_dir().join("http_client.py"))
            .args(["127.0.0.1", &port.to_string()])
            .args(requests)
            .args(extra),
    )
}

/// The agent under test, printing spans as JSON.
pub(crate) struct Agent {
    pub(crate) proc: Proc,
    /// The YAML file given with --config, removed with the agent.
    pub(crate) config_file: Option<tempfile::NamedTempFile>,
}

/// A failing test shows the end of its agent's log: a CI failure is then
/// readable without a re-run (spans on stdout are left out).
impl Drop for Agent {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let stdout: std::collections::HashSet<String> = self.proc.stdout_lines().into_iter().collect();
        let logs: Vec<String> = self.proc.lines().into_iter().filter(|l| !stdout.contains(l)).collect();
        eprintln!("--- the agent's last {} log lines ---", logs.len().min(60));
        for line in &logs[logs.len().saturating_sub(60)..] {
            eprintln!("{line}");
        }
    }
}

pub(crate) struct AgentBuilder {
    /// A command the agent runs under (e.g. `setpriv ...`), if any.
    wrapper: Vec<String>,
    env: Vec<(String, String)>,
    config: Option<String>,
    printer: String,
}

impl AgentBuilder {
    pub(crate) fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// YAML config file contents.
    pub(crate) fn config(mut self, yaml: &str) -> Self {
        self.config = Some(yaml.to_string());
        self
    }

    /// Runs the agent as `wrapper... obi`.
    pub(crate) fn wrapped(mut self, wrapper: &[&str]) -> Self {
        self.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        self
    }

    pub(crate) fn printer(mut self, p: &str) -> Self {
        self.printer = p.to_string();
        self
    }

    pub(crate) fn start(self) -> Agent {
        let mut cmd = match self.wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(env!("CARGO_BIN_EXE_obi"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_obi")),
        };
        cmd.env_clear();
        // OTEL_EBPF_BTF_IGNORE_KERNEL=true runs a suite in the no-BTF mode.
        for k in ["PATH", "HOME", "TZ", "OBI_DEBUG_EVENTS", "OTEL_EBPF_BTF_IGNORE_KERNEL"] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd.env("OTEL_EBPF_TRACE_PRINTER", &self.printer)
            .env("OTEL_EBPF_LOG_LEVEL", "DEBUG")
            .env("OTEL_EBPF_DISCOVERY_POLL_INTERVAL", "500ms");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let config_file = self.config.as_ref().map(|yaml| {
            let mut file = tempfile::Builder::new().prefix("obi-test-").suffix(".yml").tempfile().unwrap();
            file.write_all(yaml.as_bytes()).unwrap();
            cmd.arg("--config").arg(file.path());
            file
        });
        let proc = spawn("obi", &mut cmd);
        let agent = Agent { proc, config_file };
        agent
            .proc
            .wait_line(|l| l.contains("msg=\"obi-rs started\""), Duration::from_secs(30))
            .unwrap_or_else(|| panic!("agent did not start: {:#?}", agent.proc.lines()));
        agent
    }
}

impl Agent {
    pub(crate) fn builder() -> AgentBuilder {
        AgentBuilder { wrapper: Vec::new(), env: Vec::new(), config: None, printer: "json".into() }
    }

    /// Waits until the agent logged that it instruments `pid`.
    pub(crate) fn wait_instrumented(&self, pid: u32, timeout: Duration) {
        let needle = format!(" pid={pid} ");
        self.proc
            .wait_line(|l| l.contains("msg=\"instrumenting process\"") && l.contains(&needle), timeout)
            .unwrap_or_else(|| panic!("pid {pid} was not instrumented; agent said: {:#?}", self.proc.lines()));
    }

    /// Waits until the agent injected its Node.js script into `pid`
    /// (crates/obi/src/nodejs); client calls are parented by it from then on.
    pub(crate) fn wait_injected(&self, pid: u32, timeout: Duration) {
        let needle = format!(" pid={pid} ");
        self.proc
            .wait_line(|l| l.contains("msg=\"Script successfully injected\"") && l.contains(&needle), timeout)
            .unwrap_or_else(|| panic!("no script injected into pid {pid}; agent said: {:#?}", self.proc.lines()));
    }

    pub(crate) fn instrumented(&self, pid: u32) -> bool {
        let needle = format!(" pid={pid} ");
        self.proc.lines().iter().any(|l| l.contains("msg=\"instrumenting process\"") && l.contains(&needle))
    }

    /// Every span printed so far (JSON printer: one array per stdout line).
    pub(crate) fn spans(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for line in self.proc.stdout_lines() {
            if line.starts_with('[')
                && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&line)
            {
                out.extend(items);
            }
        }
        out
    }

    /// Waits until at least `n` spans match, then a little longer to catch
    /// extras; returns all matching spans.
    pub(crate) fn wait_spans(&self, n: usize, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<Value> = self.spans().into_iter().filter(|s| pred(s)).collect();
            if found.len() >= n || Instant::now() >= deadline {
                if found.len() >= n {
                    std::thread::sleep(Duration::from_millis(700));
                    return self.spans().into_iter().filter(|s| pred(s)).collect();
                }
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the agent with SIGTERM and returns its exit status.
    pub(crate) fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_exit(Duration::from_secs(20))
    }
}

/// Helpers to read span JSON.
pub(crate) fn attr<'a>(span: &'a Value, key: &str) -> &'a str {
    span["attributes"][key].as_str().unwrap_or("")
}

pub(crate) fn field<'a>(span: &'a Value, key: &str) -> &'a str {
    span[key].as_str().unwrap_or("")
}

pub(crate) fn is_type(span: &Value, t: &str) -> bool {
    field(span, "type") == t
}

pub(crate) fn host_port(span: &Value) -> u16 {
    field(span, "hostPort").parse().unwrap_or(0)
}

/// Sends raw bytes on a new connection and reads until close or timeout.
pub(crate) fn raw_exchange(port: u16, bytes: &[u8], read_timeout: Duration) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(read_timeout)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// A certificate for `localhost` and 127.0.0.1 (not a CA: rustls refuses CA
/// certificates as server certificates) and its key, in `dir`.
pub(crate) fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl req failed");
    (cert, key)
}

/// Runs a command to its end; fails the test with its output if it fails.
pub(crate) fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SQL client spans to the server on `port`.
pub(crate) fn sql_client_of(port: u16) -> impl Fn(&Value) -> bool {
    move |s| is_type(s, "SQLClient") && host_port(s) == port
}

/// SQL spans as (operation, table, statement, errorCode), in start order.
pub(crate) fn sql_calls(spans: &[Value]) -> Vec<(String, String, String, String)> {
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

/// Waits for the SQL client spans to the server on `port` and checks them
/// against `want` (operation, table, statement, errorCode, in start
/// order): client spans to 127.0.0.1, and `password` nowhere in the
/// agent's output. Returns them.
pub(crate) fn expect_sql_spans(
    agent: &Agent,
    port: u16,
    want: &[(&str, &str, &str, &str)],
    password: &str,
) -> Vec<Value> {
    let want: Vec<(String, String, String, String)> =
        want.iter().map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string())).collect();
    let spans = agent.wait_spans(want.len(), Duration::from_secs(30), sql_client_of(port));
    assert_eq!(sql_calls(&spans), want, "{spans:#?}");
    assert!(spans.iter().all(|s| field(s, "kind") == "SPAN_KIND_CLIENT" && attr(s, "serverAddr") == "127.0.0.1"));
    assert!(!agent.proc.lines().iter().any(|l| l.contains(password)), "the password leaked");
    spans
}

/// An agent tracing the database server that listens on `port` (selected
/// by its port, Prometheus on `prom`), once a process whose command line
/// holds `server` is instrumented.
pub(crate) fn agent_for_db_server(port: u16, prom: u16, server: &str) -> Agent {
    let agent = Agent::builder()
        .config(&format!("discovery:\n  instrument:\n    - open_ports: {port}\n"))
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .start();
    agent
        .proc
        .wait_line(|l| l.contains("instrumenting process") && l.contains(server), Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{server} was not instrumented"));
    agent
}

/// Waits for the server spans of the SQL server on `port` and checks them
/// against `want` (as [`expect_sql_spans`] does for clients): server spans,
/// named `host_name`, roots (no caller's context reaches a database),
/// nothing else from that port, `password` nowhere, and no client
/// histogram fed by them. Returns them.
pub(crate) fn expect_sql_server_spans(
    agent: &Agent,
    (port, prom): (u16, u16),
    want: &[(&str, &str, &str, &str)],
    host_name: &str,
    password: &str,
) -> Vec<Value> {
    let want: Vec<(String, String, String, String)> =
        want.iter().map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string())).collect();
    let spans =
        agent.wait_spans(want.len(), Duration::from_secs(30), |s| is_type(s, "SQLServer") && host_port(s) == port);
    assert_eq!(sql_calls(&spans), want, "{spans:#?}");
    for s in &spans {
        assert_eq!(field(s, "kind"), "SPAN_KIND_SERVER");
        assert_eq!(field(s, "hostName"), host_name);
        assert_eq!(field(s, "parentSpanID"), "0000000000000000", "no caller's context reaches a database");
    }
    assert!(!agent.proc.lines().iter().any(|l| l.contains(password)), "the password leaked");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.spans().iter().filter(|s| host_port(s) == port).count(), want.len());
    let samples = prom::scrape_until(prom, Duration::from_secs(30), |s| !s.is_empty());
    assert_eq!(prom::total(&samples, "db_client_operation_duration_seconds_count", &[]), 0.0);
    spans
}

/// Database spans as (operation, statement, errorCode), in start order.
pub(crate) fn db_calls(spans: &[Value]) -> Vec<(String, String, String)> {
    let mut spans = spans.to_vec();
    spans.sort_by_key(|s| field(s, "start").parse::<u64>().unwrap_or(0));
    spans
        .iter()
        .map(|s| (attr(s, "operation").to_string(), attr(s, "statement").to_string(), attr(s, "errorCode").to_string()))
        .collect()
}
