//! MQTT on one connection, seen from the client's process or the broker's:
//! frames both directions into control packets, pairs each CONNECT,
//! PUBLISH (QoS 1 and 2), SUBSCRIBE and UNSUBSCRIBE with its ack by packet
//! id, and makes one span per operation.
//!
//! - A span lasts from the first byte of the packet that opens it to the
//!   last byte of its ack: CONNACK, PUBACK (QoS 1), PUBCOMP (QoS 2, or a
//!   PUBREC whose reason code is a failure), SUBACK, UNSUBACK.
//! - A QoS 0 PUBLISH has no ack: its span lasts from its first to its last
//!   byte as captured (0 when one syscall carried it). Nothing is guessed.
//! - PINGREQ, PINGRESP, PUBREL, DISCONNECT and AUTH make no span: they are
//!   framed and checked (a malformed one stops parsing) and that is all.
//! - Operations unacknowledged when the connection closes make no span and
//!   are counted (`unanswered_requests`); acks without their packet are
//!   counted as `orphan_responses`.
//! - Bytes that are not MQTT, or uncaptured bytes that hide where the next
//!   packet starts, end parsing of the connection (`mqtt_malformed_conns`).

use obi_protocols::mqtt::{
    self, DecodeError, FixedHeader, Frame, FrameError, Framer, Packet, PacketType, Publish, Segment, Version,
};

use super::event::Event;
use super::session::{Detect, Feed, Finished, Io, Protocol, Session, SessionCx, Side};
use super::trace_ids;
use crate::span::{MqttOperation, MqttSpan, SpanDetail, TraceContext};
pub(crate) use relay::BrokerRelay;
use relay::{Received, fingerprint};

/// MQTT, recognised by the client's CONNECT, whole or (as Mosquitto reads
/// it) fixed header and body apart.
pub(crate) struct Mqtt;

impl Protocol for Mqtt {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn detect(&self, ev: &Event<'_>) -> Detect {
        match mqtt::looks_like_connect(ev.data) {
            Some(true) => return Detect::Yes { sender_is_client: Some(true) },
            None => return Detect::NeedMore,
            Some(false) => {}
        }
        if ev.is_send() {
            return Detect::No;
        }
        if mqtt::looks_like_connect_body(ev.data) {
            Detect::Yes { sender_is_client: Some(true) }
        } else if mqtt::is_connect_header_piece(ev.data) {
            Detect::NeedMore
        } else {
            Detect::No
        }
    }

    fn new_session(&self) -> Box<dyn Session> {
        Box::new(MqttSession::new())
    }
}

/// Bytes of a packet body kept for decoding (topic, ids, properties).
const MAX_KEEP: usize = 4096;
/// Operations waiting for an ack, per direction, beyond which the oldest is
/// dropped (and counted). Brokers bound in-flight messages per client far
/// lower by default (Mosquitto: 20); a linear scan stays cheap at this size.
const MAX_INFLIGHT: usize = 1024;
/// MQTT 5 topic aliases remembered per direction.
const MAX_ALIASES: usize = 64;

/// The ack an open operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaits {
    Connack,
    Puback,
    Pubrec,
    Pubcomp,
    Suback,
    Unsuback,
}

/// An operation waiting for its ack.
#[derive(Debug)]
struct Open {
    packet_id: u16,
    awaits: Awaits,
    span: MqttSpan,
    start_mono: u64,
    trace: TraceContext,
}

/// Per-connection state apart from the framers (so frames borrowed from a
/// framer can be handled while it is borrowed).
struct Conversation {
    version: Version,
    client_id: String,
    connect: Option<Open>,
    /// Operations opened by each side (`Side::Request` = the client), waiting for the other's ack.
    inflight: [Vec<Open>; 2],
    /// MQTT 5 topic aliases each side set.
    aliases: [Vec<(u16, String)>; 2],
    /// QoS 2 PUBLISHes a broker read, released to subscribers on PUBREL.
    awaiting_release: Vec<(u16, Received)>,
    /// When the packet in progress on each side began.
    packet_start: [u64; 2],
    last_kernel_span: [u8; 8],
    /// Why parsing stopped, once it did.
    failure: Option<String>,
}

struct MqttSession {
    framers: [Framer; 2],
    conv: Conversation,
    seen_data: bool,
}

impl MqttSession {
    fn new() -> Self {
        MqttSession {
            framers: [Framer::new(MAX_KEEP), Framer::new(MAX_KEEP)],
            conv: Conversation {
                version: Version::V3_1_1,
                client_id: String::new(),
                connect: None,
                inflight: [Vec::new(), Vec::new()],
                aliases: [Vec::new(), Vec::new()],
                awaiting_release: Vec::new(),
                packet_start: [0; 2],
                last_kernel_span: [0; 8],
                failure: None,
            },
            seen_data: false,
        }
    }
}

impl MqttSession {
    /// Operations still waiting for an ack.
    fn open_operations(&self) -> u64 {
        (self.conv.inflight.iter().map(Vec::len).sum::<usize>() + self.conv.connect.is_some() as usize) as u64
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Request => Side::Response,
        Side::Response => Side::Request,
    }
}

impl Conversation {
    fn on_frame(&mut self, frame: Result<Frame<'_>, FrameError>, side: Side, io: &Io<'_>, cx: &mut SessionCx<'_>) {
        let start = std::mem::replace(&mut self.packet_start[side as usize], io.ts);
        let frame = match frame {
            Ok(f) => f,
            Err(FrameError::Malformed(m)) => return self.fail(format!("malformed packet: {m}")),
            Err(FrameError::LostFraming) => {
                return self.fail("uncaptured bytes hide where the next packet starts".into());
            }
        };
        // CONNECT says its own version; everything else is read with the connection's.
        match mqtt::decode(&frame.header, frame.body, self.version) {
            Ok(packet) => self.on_packet(packet, &frame.header, side, start, io, cx),
            Err(DecodeError::Truncated) => {
                cx.stats.mqtt_unreadable_packets += 1;
                tracing::debug!(component = "mqtt", kind = ?frame.header.kind, "packet fields beyond the capture");
            }
            Err(DecodeError::Malformed(m)) => self.fail(format!("malformed {:?}: {m}", frame.header.kind)),
        }
    }

    fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }

    fn on_packet(
        &mut self,
        packet: Packet<'_>,
        header: &FixedHeader,
        side: Side,
        start: u64,
        io: &Io<'_>,
        cx: &mut SessionCx<'_>,
    ) {
        let end = io.ts;
        match packet {
            Packet::Connect(c) if side == Side::Request => {
                self.version = c.version;
                self.client_id = c.client_id.to_string();
                let span = self.span(MqttOperation::Connect, String::new(), cx.server);
                let trace = self.trace(io, side, None, cx);
                if self
                    .connect
                    .replace(Open { packet_id: 0, awaits: Awaits::Connack, span, start_mono: start, trace })
                    .is_some()
                {
                    cx.stats.unanswered_requests += 1;
                }
            }
            Packet::Connack(c) if side == Side::Response => {
                if let Some(id) = c.assigned_client_id {
                    self.client_id = id.to_string();
                }
                match self.connect.take() {
                    Some(mut open) => {
                        open.span.client_id.clone_from(&self.client_id);
                        open.span.reason = Some(c.reason);
                        finish(open, end, cx);
                    }
                    None => cx.stats.orphan_responses += 1,
                }
            }
            Packet::Publish(p) => self.on_publish(p, side, start, io, cx),
            Packet::Ack(kind, ack) => {
                // PUBREL goes the other way in the middle of a QoS 2 flow: no span of its own.
                if kind == PacketType::Pubrel {
                    if cx.server
                        && side == Side::Request
                        && let Some(i) = self.awaiting_release.iter().position(|(id, _)| *id == ack.packet_id)
                    {
                        let (_, received) = self.awaiting_release.swap_remove(i);
                        cx.relay.received(cx.pid, received);
                    }
                    return;
                }
                let opener = other(side);
                let awaits = match kind {
                    PacketType::Puback => Awaits::Puback,
                    PacketType::Pubrec => Awaits::Pubrec,
                    _ => Awaits::Pubcomp,
                };
                let list = &mut self.inflight[opener as usize];
                let Some(i) = list.iter().position(|o| o.packet_id == ack.packet_id && o.awaits == awaits) else {
                    cx.stats.orphan_responses += 1;
                    return;
                };
                if kind == PacketType::Pubrec && ack.reason < 0x80 {
                    list[i].awaits = Awaits::Pubcomp;
                    return;
                }
                let mut open = list.remove(i);
                open.span.reason = Some(ack.reason);
                finish(open, end, cx);
            }
            Packet::Subscribe(s) | Packet::Unsubscribe(s) if side == Side::Request => {
                let (operation, awaits) = if header.kind == PacketType::Subscribe {
                    (MqttOperation::Subscribe, Awaits::Suback)
                } else {
                    (MqttOperation::Unsubscribe, Awaits::Unsuback)
                };
                let mut span = self.span(operation, s.first_filter.to_string(), cx.server);
                span.filters = s.filters;
                span.qos = s.max_qos;
                let trace = self.trace(io, side, None, cx);
                self.open(side, Open { packet_id: s.packet_id, awaits, span, start_mono: start, trace }, cx);
            }
            Packet::SubAck(kind, ack) if side == Side::Response => {
                let awaits = if kind == PacketType::Suback { Awaits::Suback } else { Awaits::Unsuback };
                let list = &mut self.inflight[Side::Request as usize];
                let Some(i) = list.iter().position(|o| o.packet_id == ack.packet_id && o.awaits == awaits) else {
                    cx.stats.orphan_responses += 1;
                    return;
                };
                let mut open = list.remove(i);
                open.span.reason = Some(ack.first_failure.unwrap_or(0));
                finish(open, end, cx);
            }
            // Keep-alive, session end and re-authentication make no span.
            Packet::Pingreq | Packet::Pingresp | Packet::Disconnect { .. } | Packet::Auth { .. } => {}
            // Packets only one side may send, sent by the other.
            _ => self.fail(format!("{:?} sent by the wrong side", header.kind)),
        }
    }

    fn on_publish(&mut self, p: Publish<'_>, side: Side, start: u64, io: &Io<'_>, cx: &mut SessionCx<'_>) {
        let Some(topic) = self.resolve_topic(&p, side) else {
            // An alias set before we started watching: the topic is unknown.
            cx.stats.mqtt_unreadable_packets += 1;
            return;
        };
        let operation =
            if side == Side::Request { MqttOperation::PublishFromClient } else { MqttOperation::PublishFromBroker };
        let mut span = self.span(operation, topic, cx.server);
        span.qos = p.qos;
        span.retain = p.retain;
        span.dup = p.dup;
        span.payload_size = p.payload_len;
        let trace = self.publish_trace(&span.topic, &p, side, io, cx);
        let Some(packet_id) = p.packet_id else {
            return finish(Open { packet_id: 0, awaits: Awaits::Puback, span, start_mono: start, trace }, io.ts, cx);
        };
        let awaits = if p.qos == 1 { Awaits::Puback } else { Awaits::Pubrec };
        // A retransmission (DUP) of a packet still waiting is the same operation.
        if p.dup && self.inflight[side as usize].iter().any(|o| o.packet_id == packet_id && o.awaits == awaits) {
            return;
        }
        self.open(side, Open { packet_id, awaits, span, start_mono: start, trace }, cx);
    }

    /// A PUBLISH's context: on a broker, a delivery is a child of the
    /// PUBLISH it copies when that is certain (see [`BrokerRelay`]), and a
    /// received PUBLISH is remembered for its deliveries.
    fn publish_trace(
        &mut self,
        topic: &str,
        p: &Publish<'_>,
        side: Side,
        io: &Io<'_>,
        cx: &mut SessionCx<'_>,
    ) -> TraceContext {
        if cx.server
            && side == Side::Response
            && !p.retain
            && let Some(src) = cx.relay.source(cx.pid, io.tid, topic, p)
        {
            return TraceContext {
                trace_id: src.trace_id,
                span_id: trace_ids::random_span_id(),
                parent_span_id: src.span_id,
                flags: src.flags,
            };
        }
        let trace = self.trace(io, side, p.traceparent, cx);
        if cx.server
            && side == Side::Request
            && let Some(head) = fingerprint(p)
        {
            let received = Received { tid: io.tid, topic: topic.to_string(), payload_len: p.payload_len, head, trace };
            if let (2, Some(id)) = (p.qos, p.packet_id) {
                if self.awaiting_release.len() >= MAX_INFLIGHT {
                    self.awaiting_release.remove(0);
                }
                self.awaiting_release.retain(|(i, _)| *i != id);
                self.awaiting_release.push((id, received.clone()));
            }
            cx.relay.received(cx.pid, received);
        }
        trace
    }

    /// The topic of a PUBLISH, through MQTT 5 topic aliases.
    fn resolve_topic(&mut self, p: &Publish<'_>, side: Side) -> Option<String> {
        let aliases = &mut self.aliases[side as usize];
        match (p.topic.is_empty(), p.topic_alias) {
            (false, Some(alias)) => {
                aliases.retain(|(a, _)| *a != alias);
                if aliases.len() >= MAX_ALIASES {
                    aliases.remove(0);
                }
                aliases.push((alias, p.topic.to_string()));
                Some(p.topic.to_string())
            }
            (true, Some(alias)) => aliases.iter().find(|(a, _)| *a == alias).map(|(_, t)| t.clone()),
            _ => Some(p.topic.to_string()),
        }
    }

    fn open(&mut self, side: Side, open: Open, cx: &mut SessionCx<'_>) {
        let list = &mut self.inflight[side as usize];
        if list.len() >= MAX_INFLIGHT {
            list.remove(0);
            cx.stats.unanswered_requests += 1;
        }
        list.push(open);
    }

    fn span(&self, operation: MqttOperation, topic: String, broker: bool) -> MqttSpan {
        MqttSpan {
            operation,
            broker,
            topic,
            filters: 0,
            client_id: self.client_id.clone(),
            version: self.version.as_str(),
            qos: 0,
            retain: false,
            dup: false,
            payload_size: 0,
            reason: None,
        }
    }

    /// The trace context of an operation: the kernel's for the first
    /// packet of a client's send (so the thread's other calls nest the same
    /// way as for HTTP), a new root otherwise; an MQTT 5 `traceparent`
    /// user property makes it a child of the sender's span.
    fn trace(&mut self, io: &Io<'_>, side: Side, traceparent: Option<&str>, cx: &mut SessionCx<'_>) -> TraceContext {
        let kernel = io.kernel_ctx.filter(|k| side == Side::Request && k.span_id != self.last_kernel_span);
        let mut ctx = match kernel {
            Some(k) => {
                self.last_kernel_span = k.span_id;
                k
            }
            None => trace_ids::new_root(),
        };
        match traceparent.and_then(trace_ids::parse_traceparent) {
            Some((trace, parent, flags)) => {
                if cx.server && kernel.is_some() {
                    cx.remap.insert(ctx.trace_id, trace, io.ts);
                }
                ctx.trace_id = trace;
                ctx.parent_span_id = parent;
                ctx.flags = flags;
            }
            None if !cx.server => cx.remap.apply(&mut ctx),
            None => {}
        }
        ctx
    }
}

fn finish(open: Open, end_mono: u64, cx: &mut SessionCx<'_>) {
    cx.finished.push(Finished {
        detail: SpanDetail::Mqtt(open.span),
        start_mono: open.start_mono,
        // Spans are ack latencies, not requests waiting to be served.
        queued_mono: None,
        end_mono: end_mono.max(open.start_mono),
        trace: open.trace,
    });
}

impl Session for MqttSession {
    fn on_data(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) -> Feed {
        let s = io.side as usize;
        let framer = &mut self.framers[s];
        // Mosquitto reads a packet's fixed header apart from its body: a
        // connection detected from the CONNECT body starts inside it.
        if !self.seen_data && io.side == Side::Request && mqtt::looks_like_connect_body(io.data) {
            let remaining = io.data.len() as u64 + io.missing;
            framer.resume_in_body(FixedHeader {
                kind: PacketType::Connect,
                flags: 0,
                remaining: remaining.min(u64::from(mqtt::MAX_REMAINING)) as u32,
                len: 2,
            });
            self.conv.packet_start[s] = io.ts;
        }
        self.seen_data = true;
        if cx.server && io.side == Side::Request {
            cx.relay.read_started(cx.pid);
        }
        if !framer.in_packet() {
            self.conv.packet_start[s] = io.ts;
        }
        let conv = &mut self.conv;
        framer.feed(Segment::Bytes(io.data), &mut |f| conv.on_frame(f, io.side, io, cx));
        // The tail is the buffer's last bytes: those of it past the capture
        // sit at known offsets after the hole (a writev whose last iovec was
        // not captured is often whole again with them).
        let tail = &io.tail[io.tail.len().saturating_sub(io.missing.min(usize::MAX as u64) as usize)..];
        let hole = io.missing - tail.len() as u64;
        if hole > 0 {
            framer.feed(Segment::Gap(hole), &mut |f| conv.on_frame(f, io.side, io, cx));
        }
        if !tail.is_empty() {
            framer.feed(Segment::Bytes(tail), &mut |f| conv.on_frame(f, io.side, io, cx));
        }
        match &self.conv.failure {
            None => Feed::Ok,
            Some(why) => {
                cx.stats.mqtt_malformed_conns += 1;
                cx.stats.unanswered_requests += self.open_operations();
                tracing::debug!(component = "mqtt", reason = %why, "connection no longer parsed");
                Feed::Lost
            }
        }
    }

    fn on_close(&mut self, _ts: u64, cx: &mut SessionCx<'_>) {
        cx.stats.unanswered_requests += self.open_operations();
    }
}

mod relay;
#[cfg(test)]
mod tests;
