//! MQTT end to end: the real Mosquitto broker from Debian, its
//! `mosquitto_pub`/`mosquitto_sub` clients and paho-mqtt from PyPI, the real
//! agent and eBPF. Spans are counted exactly on both the clients' and the
//! broker's side. Runs as root (see tests/common::require_root).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// A Mosquitto broker of our own on a free port (never the system service).
struct Broker {
    proc: Proc,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// `verbose` logs every packet (the keep-alive test reads PINGREQs from it).
    fn start(verbose: bool) -> Broker {
        Self::start_with(verbose, false)
    }

    /// `tls`: the listener takes TLS with a self-signed certificate
    /// (`cert.pem` in [`Broker::dir`]).
    fn start_with(verbose: bool, tls: bool) -> Broker {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        // Mosquitto started as root drops to its own user, which writes the
        // log and reads the certificate.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let conf = dir.path().join("mosquitto.conf");
        let log = dir.path().join("mosquitto.log");
        let log_types = if verbose { "log_type all\n" } else { "log_type error\nlog_type warning\n" };
        let mut tls_conf = String::new();
        if tls {
            let (cert, key) = self_signed_cert(dir.path());
            for f in [&cert, &key] {
                std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
            tls_conf = format!("certfile {}\nkeyfile {}\n", cert.display(), key.display());
        }
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{tls_conf}allow_anonymous true\npersistence false\nlog_dest file {}\n\
                 {log_types}max_queued_messages 0\n",
                log.display()
            ),
        )
        .unwrap();
        let proc = spawn("mosquitto", Command::new("mosquitto").arg("-c").arg(&conf));
        wait_port(port, Duration::from_secs(15));
        Broker { proc, port, log, _dir: dir }
    }

    fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Lines of the broker's log (Mosquitto flushes its log file, not its stdout).
    fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().filter(|l| l.contains(needle)).count()
    }

    fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while self.log_count(needle) == 0 {
            assert!(Instant::now() < deadline, "broker never logged {needle:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The agent tracing the broker (by port) and the clients of this broker
/// only (by command line: tests run in parallel, each with its own broker).
fn agent_for(broker: &Broker, printer: &str, extra: &[(&str, &str)]) -> Agent {
    let port = broker.port;
    let mut b = Agent::builder().printer(printer).config(&format!(
        "discovery:\n  instrument:\n    - open_ports: {port}\n    \
         - cmd_args: 'mosquitto_*ub -h 127.0.0.1 -p {port} *'\n    - cmd_args: '*mqtt_client.* {port} *'\n"
    ));
    for (k, v) in extra {
        b = b.env(k, v);
    }
    let agent = b.start();
    agent.wait_instrumented(broker.proc.pid(), WAIT);
    agent
}

/// A paho-mqtt client (tests/apps/mqtt_client.py) against `port`.
fn paho(port: u16, mode: &str, args: &[&str]) -> Proc {
    spawn(
        "paho",
        Command::new(venv_python()).arg(apps_dir().join("mqtt_client.py")).arg(mode).arg(port.to_string()).args(args),
    )
}

/// An mqtt.js client (tests/apps/mqtt_client.js) against `port`.
fn mqtt_js(port: u16, mode: &str, args: &[&str]) -> Proc {
    spawn(
        "mqtt.js",
        Command::new("node").arg(apps_dir().join("mqtt_client.js")).arg(mode).arg(port.to_string()).args(args),
    )
}

fn run_ok(p: &mut Proc, what: &str) {
    let status = p.wait_exit(Duration::from_secs(90));
    assert!(status.is_some_and(|s| s.success()), "{what} failed: {status:?} {:?}", p.lines());
}

fn mosquitto_pub(port: u16, args: &[&str]) {
    let out = Command::new("mosquitto_pub").args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args).output();
    assert!(out.as_ref().is_ok_and(|o| o.status.success()), "mosquitto_pub {args:?}: {out:?}");
}

fn is_mqtt(s: &Value) -> bool {
    field(s, "type").starts_with("MQTT")
}

fn on_port(port: u16) -> impl Fn(&Value) -> bool {
    move |s| is_mqtt(s) && host_port(s) == port
}

/// (type, clientId, operation, topic, qos, payloadSize, reasonCode, retain) of a span.
type Row = (String, String, String, String, String, String, String, String);

fn row(s: &Value) -> Row {
    (
        field(s, "type").to_string(),
        attr(s, "clientId").to_string(),
        attr(s, "operation").to_string(),
        attr(s, "topic").to_string(),
        attr(s, "qos").to_string(),
        attr(s, "payloadSize").to_string(),
        attr(s, "reasonCode").to_string(),
        attr(s, "retain").to_string(),
    )
}

/// What a span says of its message: (topic, qos, payload size, reason code, retain).
type Msg<'a> = (&'a str, u8, u32, &'a str, u8);

fn r(t: &str, id: &str, op: &str, (topic, qos, size, reason, retain): Msg<'_>) -> Row {
    (t.into(), id.into(), op.into(), topic.into(), qos.to_string(), size.to_string(), reason.into(), retain.to_string())
}

/// Spans of client `id`, sorted (the order across processes is not fixed).
fn rows_of(spans: &[Value], id: &str) -> Vec<Row> {
    let mut rows: Vec<Row> = spans.iter().filter(|s| attr(s, "clientId") == id).map(row).collect();
    rows.sort();
    rows
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort();
    rows
}

/// Mosquitto's own clients, each QoS, a retained message and wildcard
/// filters: every operation makes exactly one span on the client's side and
/// one on the broker's, acked ones last until their ack.
#[test]
fn mosquitto_clients_each_qos_retained_and_wildcards() {
    require_root();
    let broker = Broker::start(true);
    let port = broker.port;
    let agent = agent_for(&broker, "json", &[]);

    mosquitto_pub(port, &["-i", "ret-pub", "-q", "1", "-r", "-t", "retained/r1", "-m", "keep"]);
    let mut sub = spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-i", "sub-w", "-q", "2"])
            .args(["-t", "sensors/#", "-t", "retained/+", "-C", "4", "-v"]),
    );
    broker.wait_log("Sending SUBACK to sub-w");
    mosquitto_pub(port, &["-i", "pub-q0", "-q", "0", "-t", "sensors/a", "-m", "zero"]);
    mosquitto_pub(port, &["-i", "pub-q1", "-q", "1", "-t", "sensors/b/c", "-m", "one!!"]);
    mosquitto_pub(port, &["-i", "pub-q2", "-q", "2", "-t", "sensors/d", "-m", "two!!!"]);
    run_ok(&mut sub, "mosquitto_sub");
    assert_eq!(sub.lines().len(), 4, "{:?}", sub.lines());

    let spans = agent.wait_spans(28, WAIT, on_port(port));
    assert_eq!(spans.len(), 28, "{:#?}", spans.iter().map(row).collect::<Vec<_>>());
    let (c, s) = ("MQTTClient", "MQTTServer");
    for (id, topic, qos, size, retain) in
        [("ret-pub", "retained/r1", 1, 4, 1), ("pub-q0", "sensors/a", 0, 4, 0), ("pub-q1", "sensors/b/c", 1, 5, 0)]
            .into_iter()
            .chain([("pub-q2", "sensors/d", 2, 6, 0)])
    {
        let reason = if qos == 0 { "" } else { "0" };
        assert_eq!(
            rows_of(&spans, id),
            sorted(vec![
                r(c, id, "connect", ("", 0, 0, "0", 0)),
                r(c, id, "publish", (topic, qos, size, reason, retain)),
                r(s, id, "connect", ("", 0, 0, "0", 0)),
                r(s, id, "receive", (topic, qos, size, reason, retain)),
            ]),
            "{id}"
        );
    }
    // The subscriber: the retained message first (retain flag set), then one
    // delivery per publish at min(publish QoS, subscription QoS).
    let mut want = vec![r(c, "sub-w", "connect", ("", 0, 0, "0", 0)), r(s, "sub-w", "connect", ("", 0, 0, "0", 0))];
    want.push(r(c, "sub-w", "subscribe", ("sensors/#", 2, 0, "0", 0)));
    want.push(r(s, "sub-w", "subscribe", ("sensors/#", 2, 0, "0", 0)));
    for (topic, qos, size, retain) in [("retained/r1", 1, 4, 1), ("sensors/a", 0, 4, 0), ("sensors/b/c", 1, 5, 0)]
        .into_iter()
        .chain([("sensors/d", 2, 6, 0)])
    {
        let reason = if qos == 0 { "" } else { "0" };
        want.push(r(c, "sub-w", "process", (topic, qos, size, reason, retain)));
        want.push(r(s, "sub-w", "publish", (topic, qos, size, reason, retain)));
    }
    assert_eq!(rows_of(&spans, "sub-w"), sorted(want));

    // Fan-out: what the broker delivers for a PUBLISH it received is a
    // child of that receive (QoS 2 once released by PUBREL); the retained
    // copy sent on SUBSCRIBE is caused by no PUBLISH: a root.
    let broker_span = |op: &str, topic: &str| -> &Value {
        let found: Vec<&Value> = spans
            .iter()
            .filter(|x| field(x, "type") == "MQTTServer" && attr(x, "operation") == op && attr(x, "topic") == topic)
            .collect();
        assert_eq!(found.len(), 1, "{op} {topic}");
        found[0]
    };
    for topic in ["sensors/a", "sensors/b/c", "sensors/d"] {
        let (received, delivered) = (broker_span("receive", topic), broker_span("publish", topic));
        assert_eq!(field(delivered, "traceID"), field(received, "traceID"), "{topic}");
        assert_eq!(field(delivered, "parentSpanID"), field(received, "spanID"), "{topic}");
    }
    assert_eq!(field(broker_span("publish", "retained/r1"), "parentSpanID"), "0000000000000000");

    for sp in &spans {
        let client = field(sp, "type") == "MQTTClient";
        assert_eq!(field(sp, "kind"), if client { "SPAN_KIND_CLIENT" } else { "SPAN_KIND_SERVER" });
        assert_eq!(attr(sp, "serverPort"), port.to_string());
        if client {
            let exe = if attr(sp, "clientId") == "sub-w" { "mosquitto_sub" } else { "mosquitto_pub" };
            assert_eq!(field(sp, "peerName"), exe, "{sp}");
        }
        // Without an ack a span has no duration of its own: a QoS 0
        // publish seen by its sender is one write.
        if client && attr(sp, "operation") == "publish" && attr(sp, "qos") == "0" {
            assert_eq!(field(sp, "durationUSec"), "0", "{sp}");
        }
    }
}

/// paho-mqtt, MQTT 5: a `traceparent` user property is continued by every
/// span of the message (publisher, broker in and out, subscriber); MQTT
/// 3.1.1 keep-alive pings make no span; a client that dies without
/// DISCONNECT leaves its will delivered and nothing else.
#[test]
fn paho_traceparent_keepalive_and_unclean_disconnect() {
    require_root();
    let broker = Broker::start(true);
    let port = broker.port;
    let agent = agent_for(&broker, "json", &[]);

    let mut sub = paho(port, "sub", &["--v5", "--id", "sub5", "--topic", "home/#", "--qos", "1", "--count", "2"]);
    sub.wait_line(|l| l == "ready", WAIT).expect("subscriber ready");
    let tp_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let tp_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{tp_trace}-{tp_span}-01");
    let mut publisher = paho(
        port,
        "pub",
        &["--v5", "--id", "pub5", "--topic", "home/kitchen", "--qos", "1", "--traceparent", &traceparent],
    );
    run_ok(&mut publisher, "paho publisher");

    // Keep-alive: a 1 s keep-alive, silent for 3.5 s.
    let mut idle = paho(port, "idle", &["--id", "idle1", "--keepalive", "1", "--seconds", "3.5"]);
    run_ok(&mut idle, "idle client");
    let pings = broker.log_count("Received PINGREQ from idle1");
    assert!(pings >= 2, "expected keep-alive pings, the broker logged {pings}");

    // Unclean disconnect: the will goes to the subscriber.
    let mut die = paho(port, "die", &["--id", "dier", "--topic", "x/#", "--will", "home/will"]);
    assert_eq!(die.wait_exit(WAIT).and_then(|s| s.code()), Some(3), "{:?}", die.lines());
    run_ok(&mut sub, "paho subscriber");
    assert!(sub.lines().contains(&"received 2".to_string()), "{:?}", sub.lines());

    let spans = agent.wait_spans(18, WAIT, on_port(port));
    let (c, s) = ("MQTTClient", "MQTTServer");
    assert_eq!(
        rows_of(&spans, "pub5"),
        sorted(vec![
            r(c, "pub5", "connect", ("", 0, 0, "0", 0)),
            r(c, "pub5", "publish", ("home/kitchen", 1, 2, "0", 0)),
            r(s, "pub5", "connect", ("", 0, 0, "0", 0)),
            r(s, "pub5", "receive", ("home/kitchen", 1, 2, "0", 0)),
        ])
    );
    assert_eq!(
        rows_of(&spans, "sub5"),
        sorted(vec![
            r(c, "sub5", "connect", ("", 0, 0, "0", 0)),
            r(c, "sub5", "subscribe", ("home/#", 1, 0, "0", 0)),
            r(c, "sub5", "process", ("home/kitchen", 1, 2, "0", 0)),
            r(c, "sub5", "process", ("home/will", 1, 4, "0", 0)),
            r(s, "sub5", "connect", ("", 0, 0, "0", 0)),
            r(s, "sub5", "subscribe", ("home/#", 1, 0, "0", 0)),
            r(s, "sub5", "publish", ("home/kitchen", 1, 2, "0", 0)),
            r(s, "sub5", "publish", ("home/will", 1, 4, "0", 0)),
        ])
    );
    // Pings: no span, only the CONNECT on each side.
    assert_eq!(
        rows_of(&spans, "idle1"),
        sorted(vec![r(c, "idle1", "connect", ("", 0, 0, "0", 0)), r(s, "idle1", "connect", ("", 0, 0, "0", 0))])
    );
    assert_eq!(
        rows_of(&spans, "dier"),
        sorted(vec![
            r(c, "dier", "connect", ("", 0, 0, "0", 0)),
            r(c, "dier", "subscribe", ("x/#", 1, 0, "0", 0)),
            r(s, "dier", "connect", ("", 0, 0, "0", 0)),
            r(s, "dier", "subscribe", ("x/#", 1, 0, "0", 0)),
        ])
    );
    assert_eq!(spans.len(), 18, "{:#?}", spans.iter().map(row).collect::<Vec<_>>());

    // The message's spans all continue the publisher's traceparent: its
    // own, the broker's receive and the subscriber's process are children
    // of the span it names; the broker's delivery is a child of its receive.
    let kitchen: Vec<&Value> = spans.iter().filter(|s| attr(s, "topic") == "home/kitchen").collect();
    assert_eq!(kitchen.len(), 4);
    let receive = kitchen.iter().find(|s| attr(s, "operation") == "receive").expect("broker receive");
    for sp in &kitchen {
        assert_eq!(field(sp, "traceID"), tp_trace, "{sp}");
        let parent = if field(sp, "type") == "MQTTServer" && attr(sp, "operation") == "publish" {
            field(receive, "spanID")
        } else {
            tp_span
        };
        assert_eq!(field(sp, "parentSpanID"), parent, "{sp}");
    }
    // MQTT 3.1.1 has nowhere to carry one: the will's spans are roots.
    for sp in spans.iter().filter(|s| attr(s, "topic") == "home/will") {
        assert_ne!(field(sp, "traceID"), tp_trace);
    }
}

/// mqtt.js (Node.js), MQTT 3.1.1 and 5.0: the same spans, on both sides.
#[test]
fn mqtt_js_publisher_and_subscriber() {
    require_root();
    let broker = Broker::start(false);
    let port = broker.port;
    let agent = agent_for(&broker, "json", &[]);

    let mut sub = mqtt_js(port, "sub", &["--id", "js-sub", "--topic", "js/#", "--qos", "2", "--count", "2", "--v5"]);
    sub.wait_line(|l| l == "ready", WAIT).expect("mqtt.js subscriber ready");
    let mut one = mqtt_js(port, "pub", &["--id", "js-pub1", "--topic", "js/a", "--qos", "1", "--count", "1"]);
    run_ok(&mut one, "mqtt.js publisher");
    let mut two = mqtt_js(port, "pub", &["--id", "js-pub2", "--topic", "js/b", "--qos", "2", "--count", "1", "--v5"]);
    run_ok(&mut two, "mqtt.js publisher");
    run_ok(&mut sub, "mqtt.js subscriber");

    let spans = agent.wait_spans(16, WAIT, on_port(port));
    let (c, s) = ("MQTTClient", "MQTTServer");
    let mut want_client = Vec::new();
    for (id, topic, qos) in [("js-pub1", "js/a", 1), ("js-pub2", "js/b", 2)] {
        assert_eq!(
            rows_of(&spans, id),
            sorted(vec![r(s, id, "connect", ("", 0, 0, "0", 0)), r(s, id, "receive", (topic, qos, 2, "0", 0))]),
            "{id}"
        );
        want_client.push(r(c, "", "connect", ("", 0, 0, "0", 0)));
        want_client.push(r(c, "", "publish", (topic, qos, 2, "0", 0)));
    }
    assert_eq!(
        rows_of(&spans, "js-sub").into_iter().filter(|row| row.0 == s).collect::<Vec<_>>(),
        sorted(vec![
            r(s, "js-sub", "connect", ("", 0, 0, "0", 0)),
            r(s, "js-sub", "subscribe", ("js/#", 2, 0, "0", 0)),
            r(s, "js-sub", "publish", ("js/a", 1, 2, "0", 0)),
            r(s, "js-sub", "publish", ("js/b", 2, 2, "0", 0)),
        ])
    );
    // mqtt.js writes its CONNECT with writev in more pieces than the kernel
    // walks (8 iovecs): the client side captured the header, not the client
    // id, which stays unknown (empty) there rather than guessed.
    want_client.push(r(c, "", "connect", ("", 0, 0, "0", 0)));
    want_client.push(r(c, "", "subscribe", ("js/#", 2, 0, "0", 0)));
    want_client.push(r(c, "", "process", ("js/a", 1, 2, "0", 0)));
    want_client.push(r(c, "", "process", ("js/b", 2, 2, "0", 0)));
    let client: Vec<Row> = spans.iter().filter(|sp| field(sp, "type") == c).map(row).collect();
    assert_eq!(sorted(client), sorted(want_client));
    assert_eq!(spans.len(), 16);
    for sp in spans.iter().filter(|sp| field(sp, "type") == c) {
        // Named after its script (apps/mqtt_client.js), not `node`.
        assert_eq!(field(sp, "peerName"), "mqtt_client", "{sp}");
    }
}

/// The counters of the `totals` line the agent logs when it stops.
fn totals(agent: &mut Agent) -> BTreeMap<String, u64> {
    assert!(agent.stop().is_some(), "agent did not stop");
    let line = agent
        .proc
        .lines()
        .into_iter()
        .find(|l| l.contains("msg=totals") || l.contains("msg=\"totals\""))
        .expect("totals line");
    line.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// Bytes that are not MQTT after a valid CONNECT: the broker's connection is
/// no longer parsed and counted; the agent goes on with other connections.
#[test]
fn malformed_packet_is_counted_and_stops_parsing() {
    require_root();
    let broker = Broker::start(false);
    let port = broker.port;
    let mut agent = agent_for(&broker, "json", &[]);

    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    use std::io::{Read, Write};
    let mut connect = vec![0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 2];
    connect.extend_from_slice(b"rw");
    stream.write_all(&connect).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    stream.write_all(&[0x30, 5, 0, 1, b't', b'h', b'i']).unwrap();
    // Packet type 0 is reserved: malformed. Mosquitto drops the connection.
    stream.write_all(&[0x00, 0x00, 0x30, 5, 0, 1, b't', b'h', b'i']).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);

    // Parsing the other connections goes on.
    mosquitto_pub(port, &["-i", "after", "-q", "1", "-t", "t", "-m", "ok"]);
    let spans = agent.wait_spans(6, WAIT, on_port(port));
    let (c, s) = ("MQTTClient", "MQTTServer");
    assert_eq!(
        rows_of(&spans, "rw"),
        sorted(vec![r(s, "rw", "connect", ("", 0, 0, "0", 0)), r(s, "rw", "receive", ("t", 0, 2, "", 0))])
    );
    assert_eq!(rows_of(&spans, "after").len(), 4, "{:#?}", spans.iter().map(row).collect::<Vec<_>>());
    assert_eq!(rows_of(&spans, "after")[0], r(c, "after", "connect", ("", 0, 0, "0", 0)));
    assert_eq!(spans.len(), 6);
    assert!(agent.proc.is_running());
    let t = totals(&mut agent);
    assert_eq!(t.get("mqtt_malformed_conns"), Some(&1), "{t:?}");
}

/// GET over a plain socket: the scrape must not come from a process the
/// kernel might capture (a curl child of this test had its /metrics
/// exchange captured and counted as a span of an unnamed process).
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// Sums the samples of `name` whose label set contains all of `labels`.
fn metric(page: &str, name: &str, labels: &[&str]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// 1,000 QoS 1 messages a second for 10 s through the broker: every one
/// makes its four spans, and no counter of the kernel or the agent says
/// anything was lost.
#[test]
fn thousand_messages_a_second_for_ten_seconds() {
    require_root();
    let broker = Broker::start(false);
    let port = broker.port;
    let prom = free_port();
    let agent = agent_for(
        &broker,
        "json",
        &[("OTEL_EBPF_PROMETHEUS_PORT", &prom.to_string()), ("OTEL_EBPF_INTERNAL_METRICS_EXPORTER", "prometheus")],
    );
    let n = 10_000;
    let count = n.to_string();
    let mut sub = paho(port, "sub", &["--id", "rate-sub", "--topic", "rate/#", "--qos", "1", "--count", &count]);
    sub.wait_line(|l| l == "ready", WAIT).expect("subscriber ready");
    let started = Instant::now();
    let mut publisher = paho(
        port,
        "pub",
        &["--id", "rate-pub", "--topic", "rate/x", "--qos", "1", "--count", &count, "--rate", "1000"],
    );
    run_ok(&mut publisher, "publisher");
    run_ok(&mut sub, "subscriber");
    eprintln!("{:?} in {:?}", publisher.lines(), started.elapsed());
    assert!(sub.lines().contains(&format!("received {n}")), "{:?}", sub.lines().last());

    // Connect x2 and subscribe on each side, plus four spans per message.
    let want_spans = 4 * n + 6;
    let deadline = Instant::now() + WAIT;
    let exported = |page: &str| metric(page, "obi_exporter_spans_total", &["sink=\"metrics\""]);
    let (page, internal) = loop {
        let (page, internal) = (http_get(prom, "/metrics"), http_get(prom, "/internal/metrics"));
        if exported(&internal) >= want_spans as f64 || Instant::now() >= deadline {
            break (page, internal);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    // Per client, side and operation.
    let mut by_op: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    let spans = agent.wait_spans(want_spans, WAIT, on_port(port));
    // Fan-out links: a delivery is a root or the child of a receive, and no
    // receive (one subscriber) has two deliveries.
    let is = |sp: &Value, op: &str| field(sp, "type") == "MQTTServer" && attr(sp, "operation") == op;
    let receives: std::collections::HashSet<&str> =
        spans.iter().filter(|sp| is(sp, "receive")).map(|sp| field(sp, "spanID")).collect();
    let mut parents = std::collections::HashSet::new();
    for d in spans.iter().filter(|sp| is(sp, "publish")) {
        let parent = field(d, "parentSpanID");
        if parent != "0000000000000000" {
            assert!(receives.contains(parent), "delivery with a parent that is no receive: {d}");
            assert!(parents.insert(parent), "two deliveries of one receive: {d}");
        }
    }
    eprintln!("{} of {n} deliveries linked to their receive", parents.len());
    for sp in &spans {
        *by_op
            .entry((field(sp, "type").into(), attr(sp, "clientId").into(), attr(sp, "operation").into()))
            .or_default() += 1;
    }
    let want: BTreeMap<(String, String, String), usize> = [
        ("MQTTClient", "rate-pub", "connect", 1),
        ("MQTTClient", "rate-pub", "publish", n),
        ("MQTTClient", "rate-sub", "connect", 1),
        ("MQTTClient", "rate-sub", "subscribe", 1),
        ("MQTTClient", "rate-sub", "process", n),
        ("MQTTServer", "rate-pub", "connect", 1),
        ("MQTTServer", "rate-pub", "receive", n),
        ("MQTTServer", "rate-sub", "connect", 1),
        ("MQTTServer", "rate-sub", "subscribe", 1),
        ("MQTTServer", "rate-sub", "publish", n),
    ]
    .into_iter()
    .map(|(t, id, op, k)| ((t.to_string(), id.to_string(), op.to_string()), k))
    .collect();
    for lost in [
        "obi_ebpf_ringbuf_dropped_events_total",
        "obi_ebpf_table_full_total",
        "obi_exporter_dropped_spans_total",
        "obi_unanswered_requests_total",
        "obi_orphan_responses_total",
        "obi_mqtt_malformed_connections_total",
        "obi_mqtt_unreadable_packets_total",
    ] {
        assert_eq!(metric(&internal, lost, &[]), 0.0, "{lost}");
    }
    assert_eq!(by_op, want);
    let others: Vec<Value> =
        agent.spans().into_iter().filter(|s| !on_port(port)(s) && !is_type(s, "ProcessAlive")).collect();
    assert!(others.is_empty(), "{others:#?}");
    // Every span of this test reached the exporters. (`obi_spans_total` and
    // `obi_unnamed_spans_dropped_total` are not compared: on a host shared
    // with other test runs, spans of a process this test never started were
    // seen captured, held and dropped as unnamed; pids wrap at 32768 there.
    // The exact counts above cover every span of ours.)
    assert_eq!(exported(&internal), want_spans as f64, "{internal}");
    let printed = metric(&internal, "obi_exporter_spans_total", &["sink=\"trace_printer\""]);
    assert_eq!(printed, (want_spans + 3) as f64, "three ProcessAlive and the MQTT spans: {internal}");
    assert_eq!(
        metric(&page, "messaging_publish_duration_seconds_count", &["messaging_destination_name=\"rate/x\""]),
        n as f64
    );
    assert_eq!(
        metric(&page, "messaging_process_duration_seconds_count", &["messaging_destination_name=\"rate/x\""]),
        n as f64
    );
}

/// OTLP export: span names, kinds and the messaging attributes of a
/// publish, as a real OTLP receiver (tests/apps/otlp_receiver.py) gets them.
#[test]
fn otlp_export_of_mqtt_spans() {
    require_root();
    let broker = Broker::start(false);
    let port = broker.port;
    let grpc = free_port();
    let rx = start_server(
        "otlp-receiver",
        Command::new(venv_python())
            .arg("-u")
            .arg(apps_dir().join("otlp_receiver.py"))
            .args(["--grpc", &grpc.to_string()]),
    );
    let _agent = agent_for(
        &broker,
        "disabled",
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &format!("http://127.0.0.1:{grpc}")),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EBPF_OTLP_TRACES_BATCH_TIMEOUT", "100ms"),
        ],
    );
    mosquitto_pub(port, &["-i", "otlp-pub", "-q", "1", "-t", "otlp/t", "-m", "hello"]);

    let publish = |s: &Value| s["attributes"]["messaging.destination.name"] == "otlp/t";
    let deadline = Instant::now() + WAIT;
    let spans = loop {
        let spans: Vec<Value> = rx
            .lines()
            .iter()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|s| publish(s))
            .collect();
        if spans.len() >= 2 || Instant::now() >= deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let by_kind = |k: &str| spans.iter().find(|s| s["kind"] == k).unwrap_or_else(|| panic!("no {k}: {spans:#?}"));
    for (kind, name, op, op_type) in [
        ("SPAN_KIND_CLIENT", "publish otlp/t", "publish", "send"),
        ("SPAN_KIND_SERVER", "receive otlp/t", "receive", "receive"),
    ] {
        let s = by_kind(kind);
        assert_eq!(s["name"], name);
        assert_eq!(s["status"]["code"], "STATUS_CODE_UNSET");
        let mut attrs = s["attributes"].clone();
        let server_address = attrs.as_object_mut().unwrap().remove("server.address");
        assert!(server_address.is_some(), "{s}");
        let mut want = serde_json::json!({
            "messaging.system": "mqtt",
            "messaging.operation.name": op,
            "messaging.operation.type": op_type,
            "messaging.destination.name": "otlp/t",
            "messaging.client.id": "otlp-pub",
            "messaging.message.body.size": 5,
            "messaging.mqtt.retain": 0,
            "messaging.mqtt.qos": 1,
            "messaging.mqtt.reason_code": 0,
            "network.protocol.name": "mqtt",
            "network.protocol.version": "3.1.1",
            "server.port": port,
        });
        if kind == "SPAN_KIND_SERVER" {
            want["client.address"] = "127.0.0.1".into();
        } else {
            // The broker is traced on this host and answered first: named.
            want["peer.service"] = "mosquitto".into();
        }
        assert_eq!(attrs, want, "{kind}");
    }
}

/// MQTT over TLS: Mosquitto uses OpenSSL, whose plaintext the uprobes hand
/// to the same MQTT parsing: the broker's spans are exact. (The clients'
/// side, paho-mqtt over Python's ssl, is not asserted: its TLS sessions were
/// seen not tied to their sockets, spans without addresses, and in some runs
/// one client's spans missing; see docs/mqtt.md.)
#[test]
fn mqtt_over_tls_broker_side() {
    require_root();
    let broker = Broker::start_with(false, true);
    let port = broker.port;
    let agent = agent_for(&broker, "json", &[]);
    let cafile = broker.dir().join("cert.pem");
    let cafile = cafile.to_str().unwrap();
    let mut one = paho(port, "pub", &["--cafile", cafile, "--id", "tls-pub", "--qos", "1", "--topic", "tls/t"]);
    run_ok(&mut one, "paho over TLS");
    let mut two =
        paho(port, "pub", &["--cafile", cafile, "--id", "tls-pub2", "--qos", "2", "--topic", "tls/u", "--v5"]);
    run_ok(&mut two, "paho over TLS");

    let spans = agent.wait_spans(4, WAIT, |sp| field(sp, "type") == "MQTTServer");
    let s = "MQTTServer";
    for (id, topic, qos) in [("tls-pub", "tls/t", 1), ("tls-pub2", "tls/u", 2)] {
        assert_eq!(
            rows_of(&spans, id),
            sorted(vec![r(s, id, "connect", ("", 0, 0, "0", 0)), r(s, id, "receive", (topic, qos, 2, "0", 0))]),
            "{id}"
        );
    }
    assert_eq!(spans.len(), 4);
    for sp in &spans {
        assert_eq!(host_port(sp), port, "{sp}");
        assert_eq!(field(sp, "peer"), "127.0.0.1", "{sp}");
    }
    // The clients' side is not asserted: its spans sometimes come without
    // addresses (a TLS client whose first SSL call is not tied to its socket;
    // see docs/mqtt.md). The tie fix for paho's wake-up socket removed one
    // cause, not all.
}
