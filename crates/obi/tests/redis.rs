//! Redis end to end: a real `redis-server` (Debian) on a free port, redis-py
//! (PyPI) and `redis-benchmark` as clients, the real agent and real eBPF.
//! Runs as root.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use common::prom::*;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// `redis-server` on `port` with a config of its own in a temporary
/// directory (no persistence, loopback only); killed on drop.
struct RedisServer {
    proc: Proc,
    _dir: tempfile::TempDir,
}

fn redis_server(port: u16) -> RedisServer {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("redis.conf");
    let text = format!(
        "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\nlogfile \"\"\ndaemonize no\n",
        dir.path().display()
    );
    std::fs::write(&conf, text).unwrap();
    let proc = spawn("redis-server", Command::new("redis-server").arg(&conf));
    wait_port(port, Duration::from_secs(15));
    RedisServer { proc, _dir: dir }
}

fn of(t: &'static str, port: u16) -> impl Fn(&Value) -> bool {
    move |s| is_type(s, t) && host_port(s) == port
}

fn count_ops(spans: &[Value], op: &str) -> usize {
    spans.iter().filter(|s| attr(s, "operation") == op).count()
}

/// redis-py on RESP2 and RESP3: plain commands, an error, a pipeline, a
/// transaction and pub/sub give exactly one client span per command, with
/// the server's spans matching them one for one.
#[test]
fn redis_py_commands_pipeline_transaction_pubsub() {
    require_root();
    let (port, prom) = (free_port(), free_port());
    let server = redis_server(port);
    let agent = Agent::builder()
        .config(&format!(
            "discovery:\n  instrument:\n    - open_ports: {port}\n    - cmd_args: '*redis_client.py {port}'\n"
        ))
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .start();
    agent.wait_instrumented(server.proc.pid(), WAIT);

    let mut client =
        spawn("redis-py", Command::new(venv_python()).arg(apps_dir().join("redis_client.py")).arg(port.to_string()));
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "client failed: {:?}", client.lines());
    let _ = client.wait_line(|l| l == "ok", WAIT);
    assert_eq!(client.lines().last().map(String::as_str), Some("ok"), "{:?}", client.lines());

    // What redis-py sends, in order (MONITOR confirms all but `CLIENT SETINFO`,
    // which Redis 7.0 rejects before monitors see it). Each connection starts
    // with the two `CLIENT SETINFO`; RESP3's with `HELLO 3` first.
    let setinfo = [("CLIENT", "CLIENT SETINFO LIB-NAME ?", "ERR"), ("CLIENT", "CLIENT SETINFO LIB-VER ?", "ERR")];
    let mut want: Vec<(&str, &str, &str)> = Vec::new();
    want.extend(setinfo);
    want.extend([("SET", "SET user:1 ?", ""), ("GET", "GET user:1", ""), ("INCRBY", "INCRBY user:1 ?", "ERR")]);
    // A 100 kB value: the uncaptured middle of its bulk string is skipped.
    want.extend([("SET", "SET big ?", ""), ("GET", "GET big", "")]);
    want.extend(setinfo);
    want.extend([("RPUSH", "RPUSH list ?", ""); 5]);
    want.extend([("MULTI", "MULTI", ""), ("INCRBY", "INCRBY counter ?", ""), ("INCRBY", "INCRBY counter ?", "")]);
    want.push(("EXEC", "EXEC", ""));
    want.extend(setinfo);
    want.push(("SUBSCRIBE", "SUBSCRIBE news", ""));
    want.extend([("PUBLISH", "PUBLISH news ?", ""); 3]);
    want.push(("HELLO", "HELLO 3", ""));
    want.extend(setinfo);
    want.extend([("SET", "SET k3 ?", ""), ("GET", "GET k3", "")]);
    let want: Vec<(String, String, String)> =
        want.into_iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();

    let clients = agent.wait_spans(want.len(), WAIT, of("RedisClient", port));
    assert_eq!(db_calls(&clients), want, "{clients:#?}");
    assert!(clients.iter().all(|s| field(s, "kind") == "SPAN_KIND_CLIENT" && attr(s, "serverAddr") == "127.0.0.1"));

    // The pipeline: one write, five spans with their own ids and one parentage.
    let rpush: Vec<&Value> = clients.iter().filter(|s| attr(s, "operation") == "RPUSH").collect();
    let ids: HashSet<&str> = rpush.iter().map(|s| field(s, "spanID")).collect();
    assert_eq!(ids.len(), 5, "{rpush:#?}");
    let parentage: HashSet<(&str, &str)> =
        rpush.iter().map(|s| (field(s, "traceID"), field(s, "parentSpanID"))).collect();
    assert_eq!(parentage.len(), 1, "{rpush:#?}");
    let err = clients.iter().find(|s| attr(s, "operation") == "INCRBY").unwrap();
    assert_eq!(attr(err, "errorMessage"), "value is not an integer or out of range");

    // The traced server answered the same commands.
    let servers = agent.wait_spans(want.len(), WAIT, of("RedisServer", port));
    let mut got: Vec<String> = servers.iter().map(|s| attr(s, "operation").to_string()).collect();
    let mut sent: Vec<String> = want.iter().map(|w| w.0.clone()).collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent);
    assert!(servers.iter().all(|s| field(s, "kind") == "SPAN_KIND_SERVER"));

    // One histogram count per client call.
    let name = "db_client_operation_duration_seconds_count";
    let redis = [("db_system_name", "redis")];
    let samples = scrape_until(prom, WAIT, |s| total(s, name, &redis) >= want.len() as f64);
    assert_eq!(total(&samples, name, &redis), want.len() as f64);
    assert_eq!(total(&samples, name, &[("db_operation_name", "CLIENT"), ("error_type", "ERR")]), 8.0);
    assert!(client.lines().contains(&"big 100000".to_string()), "{:?}", client.lines());
    assert_eq!(total(&samples, name, &[("db_operation_name", "INCRBY"), ("error_type", "ERR")]), 1.0);
    // Successes carry no error_type (an empty label is no label).
    assert_eq!(total(&samples, name, &[("db_operation_name", "INCRBY")]), 3.0);
    assert_eq!(count_ops(&clients, "RPUSH"), 5);
}

/// `redis-benchmark -P 16`: sixteen commands per write. The spans of each
/// command equal the requests the tool reports completed, the histogram
/// counts them all, and nothing was lost on the way.
#[test]
fn redis_benchmark_pipelined_counts_match() {
    require_root();
    let (port, prom) = (free_port(), free_port());
    let _server = redis_server(port);
    let agent = Agent::builder()
        .config(&format!("discovery:\n  instrument:\n    - cmd_args: '*redis-benchmark -h 127.0.0.1 -p {port} *'\n"))
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .env("OTEL_EBPF_INTERNAL_METRICS_EXPORTER", "prometheus")
        .start();
    let n: u64 = 10_000;
    for (command, stdin) in [("SET", "value"), ("GET", "key:1")] {
        // With -x the tool reads the command's last argument from stdin
        // before it connects: it is written once the agent instruments it,
        // so that every connection is seen from its first byte.
        let args = format!("-h 127.0.0.1 -p {port} -n {n} -P 16 -c 10 -x {command}");
        let args = if command == "SET" { format!("{args} key:1") } else { args };
        let mut bench = spawn_with_stdin("redis-benchmark", Command::new("redis-benchmark").args(args.split(' ')));
        agent.wait_instrumented(bench.pid(), WAIT);
        {
            use std::io::Write;
            let mut input = bench.child.stdin.take().unwrap();
            input.write_all(stdin.as_bytes()).unwrap();
        }
        assert!(bench.wait_exit(Duration::from_secs(120)).is_some_and(|s| s.success()), "{:?}", bench.lines());
        // Its output may still be on the way through the pipe.
        let _ = bench.wait_line(|l| l.contains("requests completed in"), WAIT);
        let completed: Vec<u64> = bench
            .lines()
            .iter()
            .filter_map(|l| l.trim().split_once(" requests completed in ").map(|(c, _)| c.trim().to_string()))
            .filter_map(|c| c.parse().ok())
            .collect();
        assert_eq!(completed, vec![n], "{command}: {:?}", bench.lines());
    }

    let spans = agent.wait_spans(2 * n as usize, Duration::from_secs(60), of("RedisClient", port));
    assert_eq!(count_ops(&spans, "SET"), n as usize);
    assert_eq!(count_ops(&spans, "GET"), n as usize);
    // Besides them, only the tool's own `CONFIG GET save` and `appendonly`, once a run.
    let config: Vec<&str> =
        spans.iter().filter(|s| attr(s, "operation") == "CONFIG").map(|s| attr(s, "statement")).collect();
    assert_eq!(config, ["CONFIG GET save", "CONFIG GET appendonly"].repeat(2));
    assert_eq!(spans.len(), 2 * n as usize + 4);
    let ids: HashSet<&str> = spans.iter().map(|s| field(s, "spanID")).collect();
    assert_eq!(ids.len(), spans.len(), "every span has its own id");
    let name = "db_client_operation_duration_seconds_count";
    let set = [("db_system_name", "redis"), ("db_operation_name", "SET")];
    let samples = scrape_until(prom, WAIT, |s| total(s, name, &set) >= n as f64);
    assert_eq!(total(&samples, name, &set), n as f64);
    assert_eq!(total(&samples, name, &[("db_operation_name", "GET")]), n as f64);

    let internal = internal_when(prom, "obi_exporter_spans_total", spans.len() as f64, WAIT);
    // Every span of the tool reached the exporters (see postgres.rs).
    assert_eq!(total(&internal, "obi_exporter_spans_total", &[("sink", "metrics")]), spans.len() as f64);
    assert_nothing_lost(&internal);
    eprintln!("redis-benchmark: {} spans ({n} SET, {n} GET)", spans.len());
}

/// Malformed and unknown bytes on a Redis port: no span for them, the
/// connections are dropped from parsing and counted, and the good commands
/// around them are traced (client and traced server alike).
#[test]
fn malformed_traffic_is_dropped_and_counted() {
    require_root();
    let (port, prom) = (free_port(), free_port());
    let server = redis_server(port);
    let agent = Agent::builder()
        .config(&format!(
            "discovery:\n  instrument:\n    - open_ports: {port}\n    - cmd_args: '*redis_garbage.py {port}'\n"
        ))
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string())
        .env("OTEL_EBPF_INTERNAL_METRICS_EXPORTER", "prometheus")
        .start();
    agent.wait_instrumented(server.proc.pid(), WAIT);
    let mut client =
        spawn("redis-garbage", Command::new(python()).arg(apps_dir().join("redis_garbage.py")).arg(port.to_string()));
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()));
    let _ = client.wait_line(|l| l == "ok", WAIT);
    assert_eq!(client.lines(), vec!["ok"]);

    let clients = agent.wait_spans(2, WAIT, of("RedisClient", port));
    let servers = agent.wait_spans(2, WAIT, of("RedisServer", port));
    std::thread::sleep(Duration::from_secs(1));
    for spans in [&clients, &servers] {
        assert_eq!(db_calls(spans), vec![("PING".into(), "PING".into(), "".into()); 2], "{spans:#?}");
    }
    let internal = internal_when(prom, "obi_parse_failures_total", 2.0, WAIT);

    // The array that is not a command, on each side; the two non-RESP
    // connections, on each side.
    assert_eq!(total(&internal, "obi_parse_failures_total", &[]), 2.0);
    assert_eq!(total(&internal, "obi_ignored_connections_total", &[]), 4.0);
    assert_eq!(total(&internal, "obi_exporter_spans_total", &[("sink", "metrics")]), 4.0);
}

/// Redis calls nest under the server request that made them: a threaded
/// Python server (redis-py, one shared pool) answers 50 requests, 10 at a
/// time, each with two GETs on keys naming the request. Every Redis client
/// span must be the child of its own request's server span (the parent
/// audit, summed over the suite): 100 right, 0 wrong, 0 roots.
#[test]
fn redis_calls_nest_under_their_server_request() {
    require_root();
    let (front, rport) = (free_port(), free_port());
    let _redis = redis_server(rport);
    let app = start_server(
        "redis-fanout",
        Command::new(venv_python()).arg(apps_dir().join("db_fanout_server.py")).args([
            front.to_string(),
            "redis".into(),
            rport.to_string(),
        ]),
    );
    let agent = Agent::builder().config(&format!("discovery:\n  instrument:\n    - open_ports: {front}\n")).start();
    agent.wait_instrumented(app.pid(), WAIT);

    let (requests, calls) = (50, 2);
    let spans = common::audit::db_fanout_spans(&agent, front, requests, calls, |s| {
        is_type(s, "RedisClient") && host_port(s) == rport && attr(s, "statement").starts_with("GET leaf:db-")
    });
    let audit = common::audit::parent_audit("redis_calls_nest_under_their_server_request", &spans);
    assert_eq!(audit, common::audit::Audit { right: requests * calls, root: 0, wrong: 0 });
}

/// ioredis (npm) on Node.js: plain commands, an error, a pipeline, a
/// transaction and twenty commands in flight at once on one connection
/// give one client span per command, matched one for one by the traced
/// server's spans.
#[test]
fn ioredis_commands_pipeline_transaction_and_commands_in_flight() {
    require_root();
    let port = free_port();
    let server = redis_server(port);
    let agent = Agent::builder()
        .config(&format!(
            "discovery:\n  instrument:\n    - open_ports: {port}\n    - cmd_args: '*ioredis_client.js {port}'\n"
        ))
        .start();
    agent.wait_instrumented(server.proc.pid(), WAIT);
    let mut client =
        spawn("ioredis", Command::new("node").arg(apps_dir().join("ioredis_client.js")).arg(port.to_string()));
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "client failed: {:?}", client.lines());
    assert_eq!(client.lines(), ["get ada", "error ERR", "multi 2 5", "missing 20", "ok"]);
    // ioredis 6 speaks RESP3 (HELLO 3) and names itself (CLIENT SETINFO,
    // which Redis 7.0 refuses) on connecting.
    let mut want: Vec<(String, String, String)> = vec![
        ("HELLO", "hello 3", ""),
        ("CLIENT", "client SETINFO LIB-VER ?", "ERR"),
        ("CLIENT", "client SETINFO LIB-NAME ?", "ERR"),
        ("SET", "set user:1 ?", ""),
        ("GET", "get user:1", ""),
        ("INCRBY", "incrby user:1 ?", "ERR"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    want.extend(std::iter::repeat_n(("RPUSH".into(), "rpush list ?".into(), String::new()), 5));
    for (op, text) in
        [("MULTI", "multi"), ("INCRBY", "incrby counter ?"), ("INCRBY", "incrby counter ?"), ("EXEC", "exec")]
    {
        want.push((op.into(), text.into(), String::new()));
    }
    want.extend((0..20).map(|i| ("GET".to_string(), format!("get missing:{i}"), String::new())));
    let clients = agent.wait_spans(want.len(), WAIT, of("RedisClient", port));
    assert_eq!(db_calls(&clients), want, "{clients:#?}");
    // The twenty in flight at once: each its own span.
    let gets: Vec<&Value> = clients.iter().filter(|s| attr(s, "statement").starts_with("get missing:")).collect();
    assert_eq!(gets.iter().map(|s| field(s, "spanID")).collect::<HashSet<_>>().len(), 20);
    // Named after its script, not `node`.
    assert!(clients.iter().all(|s| field(s, "peerName") == "ioredis_client"), "{clients:#?}");

    let servers = agent.wait_spans(want.len(), WAIT, of("RedisServer", port));
    let mut got: Vec<String> = servers.iter().map(|s| attr(s, "operation").to_string()).collect();
    let mut sent: Vec<String> = want.iter().map(|w| w.0.clone()).collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent);
}
