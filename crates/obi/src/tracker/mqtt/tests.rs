//! The MQTT session fed packets as the kernel delivers them: split, batched,
//! truncated, from the client's and the broker's side.

use super::*;
use crate::ebpf::abi::EventHdr;
use crate::tracker::broker_relay::BrokerRelay;
use crate::tracker::trace_ids::TraceRemap;
use crate::tracker::{TrackerSettings, TrackerStats};

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn s(v: &str) -> Vec<u8> {
    let mut out = (v.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(v.as_bytes());
    out
}

fn connect(level: u8, id: &str) -> Vec<u8> {
    let mut body = s("MQTT");
    body.extend_from_slice(&[level, 2, 0, 60]);
    if level == 5 {
        body.push(0);
    }
    body.extend(s(id));
    packet(0x10, &body)
}

fn publish(qos: u8, topic: &str, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = s(topic);
    if qos > 0 {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &body)
}

fn ack(first: u8, id: u16) -> Vec<u8> {
    packet(first, &id.to_be_bytes())
}

/// A session and what it reported.
struct Harness {
    session: MqttSession,
    server: bool,
    settings: TrackerSettings,
    remap: TraceRemap,
    stats: TrackerStats,
    finished: Vec<Finished>,
    relay: BrokerRelay,
    lost: bool,
}

impl Harness {
    fn new(server: bool) -> Self {
        Harness {
            session: MqttSession::new(),
            server,
            settings: TrackerSettings { http_request_timeout_ns: 0, idle_conn_ns: 0, db_query_literals: false },
            remap: TraceRemap::default(),
            stats: TrackerStats::default(),
            finished: Vec::new(),
            relay: BrokerRelay::default(),
            lost: false,
        }
    }

    fn feed(&mut self, side: Side, ts: u64, data: &[u8], missing: u64) {
        self.feed_tail(side, ts, data, missing, &[]);
    }

    fn feed_tail(&mut self, side: Side, ts: u64, data: &[u8], missing: u64, tail: &[u8]) {
        let io = Io { side, ts, tid: 1, msg_start: false, queued: None, kernel_ctx: None, data, missing, tail };
        let mut cx = SessionCx {
            server: self.server,
            from_start: true,
            pid: 7,
            settings: &self.settings,
            remap: &mut self.remap,
            stats: &mut self.stats,
            finished: &mut self.finished,
            relay: &mut self.relay,
        };
        if self.session.on_data(&io, &mut cx) == Feed::Lost {
            self.lost = true;
        }
    }

    fn close(&mut self) {
        let mut cx = SessionCx {
            server: self.server,
            from_start: true,
            pid: 7,
            settings: &self.settings,
            remap: &mut self.remap,
            stats: &mut self.stats,
            finished: &mut self.finished,
            relay: &mut self.relay,
        };
        self.session.on_close(0, &mut cx);
    }

    /// (name, qos, payload size, reason, start, end) of each span so far.
    fn spans(&self) -> Vec<(String, u8, u32, Option<u8>, u64, u64)> {
        self.finished
            .iter()
            .map(|f| match &f.detail {
                SpanDetail::Mqtt(m) => (
                    crate::span::Semantics::name(m).into_owned(),
                    m.qos,
                    m.payload_size,
                    m.reason,
                    f.start_mono,
                    f.end_mono,
                ),
                other => panic!("not MQTT: {other:?}"),
            })
            .collect()
    }
}

fn detect(data: &[u8], send: bool) -> Detect {
    let hdr = EventHdr {
        dir: if send { crate::ebpf::abi::DIR_SEND } else { 1 - crate::ebpf::abi::DIR_SEND },
        ..Default::default()
    };
    Mqtt.detect(&Event { hdr, data, tail: &[] })
}

#[test]
fn detects_a_connect_whole_or_piecewise() {
    let c = connect(4, "c");
    let yes = Detect::Yes { sender_is_client: Some(true) };
    assert_eq!(detect(&c, true), yes);
    assert_eq!(detect(&c, false), yes);
    // Mosquitto's reads: the type byte, the length byte, then the body.
    assert_eq!(detect(&c[..1], false), Detect::NeedMore);
    assert_eq!(detect(&c[1..2], false), Detect::NeedMore);
    assert_eq!(detect(&c[2..], false), yes);
    assert_eq!(detect(&c[2..], true), Detect::No);
    assert_eq!(detect(b"GET / HTTP/1.1\r\n", false), Detect::No);
    assert_eq!(detect(&[0x16, 3, 1, 0, 200, 1], true), Detect::No);
}

#[test]
fn client_spans_cover_each_operation_until_its_ack() {
    let mut h = Harness::new(false);
    h.feed(Side::Request, 100, &connect(4, "sensor"), 0);
    h.feed(Side::Response, 200, &[0x20, 2, 0, 0], 0);
    let mut sub = vec![0, 1];
    sub.extend(s("cmd/#"));
    sub.push(1);
    h.feed(Side::Request, 300, &packet(0x82, &sub), 0);
    h.feed(Side::Response, 350, &[0x90, 3, 0, 1, 1], 0);
    h.feed(Side::Request, 400, &publish(0, "t/0", 0, b"zero"), 0);
    h.feed(Side::Request, 500, &publish(1, "t/1", 2, b"one"), 0);
    h.feed(Side::Response, 550, &ack(0x40, 2), 0);
    h.feed(Side::Request, 600, &publish(2, "t/2", 3, b"two!"), 0);
    h.feed(Side::Response, 610, &ack(0x50, 3), 0);
    h.feed(Side::Request, 620, &ack(0x62, 3), 0);
    h.feed(Side::Response, 690, &ack(0x70, 3), 0);
    // Pings make no span.
    h.feed(Side::Request, 700, &[0xc0, 0], 0);
    h.feed(Side::Response, 710, &[0xd0, 0], 0);
    let mut unsub = vec![0, 4];
    unsub.extend(s("cmd/#"));
    h.feed(Side::Request, 800, &packet(0xa2, &unsub), 0);
    h.feed(Side::Response, 820, &ack(0xb0, 4), 0);
    h.feed(Side::Request, 900, &[0xe0, 0], 0);
    h.close();
    assert_eq!(
        h.spans(),
        vec![
            ("connect".into(), 0, 0, Some(0), 100, 200),
            ("subscribe cmd/#".into(), 1, 0, Some(0), 300, 350),
            ("publish t/0".into(), 0, 4, None, 400, 400),
            ("publish t/1".into(), 1, 3, Some(0), 500, 550),
            ("publish t/2".into(), 2, 4, Some(0), 600, 690),
            ("unsubscribe cmd/#".into(), 0, 0, Some(0), 800, 820),
        ]
    );
    assert_eq!((h.stats.unanswered_requests, h.stats.orphan_responses), (0, 0));
    let SpanDetail::Mqtt(m) = &h.finished[3].detail else { panic!() };
    assert_eq!((m.client_id.as_str(), m.version, m.broker), ("sensor", "3.1.1", false));
}

#[test]
fn deliveries_are_processed_until_the_subscribers_ack() {
    let mut h = Harness::new(false);
    h.feed(Side::Request, 100, &connect(4, "sub"), 0);
    h.feed(Side::Response, 110, &[0x20, 2, 0, 0], 0);
    // The broker's packet ids are its own: same id as a client publish in flight.
    h.feed(Side::Request, 200, &publish(1, "mine", 7, b"x"), 0);
    h.feed(Side::Response, 300, &publish(1, "theirs", 7, b"yy"), 0);
    h.feed(Side::Request, 340, &ack(0x40, 7), 0);
    h.feed(Side::Response, 400, &ack(0x40, 7), 0);
    let spans = h.spans();
    assert_eq!(spans[1], ("process theirs".into(), 1, 2, Some(0), 300, 340));
    assert_eq!(spans[2], ("publish mine".into(), 1, 1, Some(0), 200, 400));
}

#[test]
fn broker_side_reads_headers_apart_and_names_its_view() {
    let mut h = Harness::new(true);
    let c = connect(5, "dev");
    // Mosquitto reads one byte, then the length, then the body; detection
    // saw the body, so the session starts there.
    h.feed(Side::Request, 100, &c[2..], 0);
    h.feed(Side::Response, 150, &[0x20, 3, 0, 0, 0], 0);
    let p = {
        let mut body = s("t");
        body.extend_from_slice(&[0, 9, 0]);
        body.extend_from_slice(b"hello");
        packet(0x32, &body)
    };
    h.feed(Side::Request, 200, &p[..1], 0);
    h.feed(Side::Request, 201, &p[1..2], 0);
    h.feed(Side::Request, 202, &p[2..], 0);
    h.feed(Side::Response, 250, &[0x40, 2, 0, 9], 0);
    // QoS 2 delivery to this client, refused at PUBREC with 0x87.
    let mut d = s("t");
    d.extend_from_slice(&[0, 1, 0]);
    d.extend_from_slice(b"hello");
    h.feed(Side::Response, 300, &packet(0x34, &d), 0);
    h.feed(Side::Request, 330, &[0x50, 3, 0, 1, 0x87], 0);
    assert!(!h.lost);
    assert_eq!(
        h.spans(),
        vec![
            ("connect".into(), 0, 0, Some(0), 100, 150),
            ("receive t".into(), 1, 5, Some(0), 200, 250),
            ("publish t".into(), 2, 5, Some(0x87), 300, 330),
        ]
    );
    assert!(crate::span::Semantics::is_error(
        match &h.finished[2].detail {
            SpanDetail::Mqtt(m) => m,
            _ => unreachable!(),
        },
        crate::span::SpanKind::Server
    ));
}

#[test]
fn traceparent_of_mqtt5_is_continued() {
    let mut h = Harness::new(true);
    h.feed(Side::Request, 100, &connect(5, "dev"), 0);
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut props = vec![0x26];
    props.extend(s("traceparent"));
    props.extend(s(tp));
    let mut body = s("t");
    body.push(props.len() as u8);
    body.extend(props);
    body.extend_from_slice(b"v");
    h.feed(Side::Request, 200, &packet(0x30, &body), 0);
    let f = h.finished.last().unwrap();
    assert_eq!(
        f.trace.trace_id,
        [0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c]
    );
    assert_eq!(f.trace.parent_span_id, [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]);
}

#[test]
fn topic_aliases_are_resolved() {
    let mut h = Harness::new(false);
    h.feed(Side::Request, 100, &connect(5, "dev"), 0);
    let with_alias = |topic: &str| {
        let mut body = s(topic);
        body.extend_from_slice(&[3, 0x23, 0, 1]);
        body.extend_from_slice(b"v");
        packet(0x30, &body)
    };
    h.feed(Side::Request, 200, &with_alias("long/topic/name"), 0);
    h.feed(Side::Request, 300, &with_alias(""), 0);
    let names: Vec<String> = h.spans().into_iter().map(|s| s.0).collect();
    assert_eq!(names, ["publish long/topic/name", "publish long/topic/name"]);
}

#[test]
fn big_payloads_with_uncaptured_middles_keep_framing() {
    let mut h = Harness::new(false);
    h.feed(Side::Request, 100, &connect(4, "c"), 0);
    let big = publish(1, "big", 5, &vec![b'x'; 100_000]);
    // The kernel captured the first 4096 bytes of the write.
    h.feed(Side::Request, 200, &big[..4096], (big.len() - 4096) as u64);
    h.feed(Side::Response, 300, &ack(0x40, 5), 0);
    assert!(!h.lost);
    assert_eq!(h.spans()[0], ("publish big".into(), 1, 100_000, Some(0), 200, 300));
}

#[test]
fn the_tail_fills_what_the_capture_missed() {
    let mut h = Harness::new(false);
    // mqtt.js writes its CONNECT with writev; the kernel captured the first
    // iovec and the tail holds the client id.
    let c = connect(4, "js-pub1");
    let (head, rest) = c.split_at(c.len() - 7);
    h.feed_tail(Side::Request, 100, head, 7, rest);
    h.feed(Side::Response, 110, &[0x20, 2, 0, 0], 0);
    // A big write whose tail holds the start of the next packet.
    let mut big = publish(0, "big", 0, &vec![b'x'; 5000]);
    let ping = [0xc0, 0];
    big.extend_from_slice(&ping);
    big.extend(publish(0, "after", 0, b"v"));
    let tail = &big[big.len() - 16..];
    h.feed_tail(Side::Request, 200, &big[..4096], (big.len() - 4096) as u64, tail);
    assert!(!h.lost);
    let names: Vec<String> = h.spans().into_iter().map(|s| s.0).collect();
    assert_eq!(names, ["connect", "publish big", "publish after"]);
    let SpanDetail::Mqtt(m) = &h.finished[0].detail else { panic!() };
    assert_eq!(m.client_id, "js-pub1");
}

#[test]
fn malformed_bytes_stop_parsing_and_are_counted() {
    let mut h = Harness::new(true);
    h.feed(Side::Request, 100, &connect(4, "c"), 0);
    h.feed(Side::Request, 150, &publish(1, "t", 1, b"x"), 0);
    h.feed(Side::Request, 200, &[0x00, 0x00, 0x01], 0);
    assert!(h.lost);
    assert_eq!(h.stats.mqtt_malformed_conns, 1);
    // The CONNECT and the PUBLISH never got their acks.
    assert_eq!(h.stats.unanswered_requests, 2);
}

#[test]
fn unacked_operations_at_close_are_counted_not_reported() {
    let mut h = Harness::new(false);
    h.feed(Side::Request, 100, &connect(4, "c"), 0);
    h.feed(Side::Response, 110, &[0x20, 2, 0, 0], 0);
    h.feed(Side::Request, 200, &publish(1, "t", 1, b"x"), 0);
    h.feed(Side::Response, 210, &ack(0x40, 99), 0);
    h.close();
    assert_eq!(h.spans().len(), 1);
    assert_eq!((h.stats.unanswered_requests, h.stats.orphan_responses), (1, 1));
}

/// Two broker-side connections of one process sharing its relay.
struct Broker {
    conns: [MqttSession; 2],
    settings: TrackerSettings,
    remap: TraceRemap,
    stats: TrackerStats,
    finished: Vec<Finished>,
    relay: BrokerRelay,
}

impl Broker {
    fn new() -> Self {
        let mut b = Broker {
            conns: [MqttSession::new(), MqttSession::new()],
            settings: TrackerSettings { http_request_timeout_ns: 0, idle_conn_ns: 0, db_query_literals: false },
            remap: TraceRemap::default(),
            stats: TrackerStats::default(),
            finished: Vec::new(),
            relay: BrokerRelay::default(),
        };
        b.feed(0, Side::Request, 1, &connect(4, "publisher"), 1);
        b.feed(1, Side::Request, 2, &connect(4, "subscriber"), 1);
        b.finished.clear();
        b
    }

    fn feed(&mut self, conn: usize, side: Side, ts: u64, data: &[u8], tid: u32) {
        let io = Io { side, ts, tid, msg_start: false, queued: None, kernel_ctx: None, data, missing: 0, tail: &[] };
        let mut cx = SessionCx {
            server: true,
            from_start: true,
            pid: 7,
            settings: &self.settings,
            remap: &mut self.remap,
            stats: &mut self.stats,
            finished: &mut self.finished,
            relay: &mut self.relay,
        };
        assert_eq!(self.conns[conn].on_data(&io, &mut cx), Feed::Ok);
    }

    /// (trace id, span id, parent span id) of the span finished at `i`.
    fn ids(&self, i: usize) -> ([u8; 16], [u8; 8], [u8; 8]) {
        let t = self.finished[i].trace;
        (t.trace_id, t.span_id, t.parent_span_id)
    }
}

#[test]
fn a_brokers_deliveries_are_children_of_the_publish_they_copy() {
    let mut b = Broker::new();
    b.feed(0, Side::Request, 100, &publish(0, "t", 0, b"hello"), 1);
    b.feed(1, Side::Response, 110, &publish(0, "t", 0, b"hello"), 1);
    let (received, delivered) = (b.ids(0), b.ids(1));
    assert_eq!(delivered.0, received.0, "same trace");
    assert_eq!(delivered.2, received.1, "child of the received PUBLISH");
}

#[test]
fn a_qos2_publish_is_relayed_when_released() {
    let mut b = Broker::new();
    b.feed(0, Side::Request, 100, &publish(2, "t", 5, b"hello"), 1);
    b.feed(0, Side::Response, 101, &ack(0x50, 5), 1);
    b.feed(0, Side::Request, 102, &ack(0x62, 5), 1);
    b.feed(1, Side::Response, 103, &publish(1, "t", 1, b"hello"), 1);
    b.feed(0, Side::Response, 104, &ack(0x70, 5), 1);
    b.feed(1, Side::Request, 105, &ack(0x40, 1), 1);
    // Finished: the delivery (acked at 105) after the receive (completed at 104).
    let (received, delivered) = (b.ids(0), b.ids(1));
    assert_eq!(delivered.0, received.0);
    assert_eq!(delivered.2, received.1);
}

#[test]
fn a_delivery_after_another_read_or_of_other_content_stays_a_root() {
    let mut b = Broker::new();
    // Another read of the broker between the PUBLISH and the delivery.
    b.feed(0, Side::Request, 100, &publish(0, "t", 0, b"hello"), 1);
    b.feed(1, Side::Request, 105, &[0xc0, 0], 1);
    b.feed(1, Side::Response, 110, &publish(0, "t", 0, b"hello"), 1);
    // Other payload, other topic, other thread, a retained copy.
    b.feed(0, Side::Request, 200, &publish(0, "t", 0, b"hello"), 1);
    b.feed(1, Side::Response, 210, &publish(0, "t", 0, b"HELLO"), 1);
    b.feed(1, Side::Response, 211, &publish(0, "u", 0, b"hello"), 1);
    b.feed(1, Side::Response, 212, &publish(0, "t", 0, b"hello"), 2);
    let mut retained = publish(0, "t", 0, b"hello");
    retained[0] |= 1;
    b.feed(1, Side::Response, 213, &retained, 1);
    // Two PUBLISHes in one read: which one a delivery copies is unknown.
    let mut two = publish(0, "t", 0, b"hello");
    two.extend(publish(0, "t", 0, b"hello"));
    b.feed(0, Side::Request, 300, &two, 1);
    b.feed(1, Side::Response, 310, &publish(0, "t", 0, b"hello"), 1);
    let deliveries: Vec<usize> = (0..b.finished.len())
        .filter(|&i| matches!(&b.finished[i].detail, SpanDetail::Mqtt(m) if m.operation == MqttOperation::PublishFromBroker))
        .collect();
    assert_eq!(deliveries.len(), 6);
    for i in deliveries {
        assert_eq!(b.ids(i).2, [0; 8], "delivery {i} must be a root");
    }
}
