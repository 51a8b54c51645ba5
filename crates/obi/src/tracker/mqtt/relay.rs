//! Broker fan-out: which PUBLISH a broker's delivery copies, when that is certain.

use std::collections::HashMap;

use obi_protocols::mqtt::Publish;

use crate::span::TraceContext;

/// Payload bytes compared to tell a delivered message from another.
const FINGERPRINT: usize = 64;

/// A PUBLISH a broker process just read: its deliveries written before the
/// broker reads anything else are copies of it.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) tid: u32,
    pub(super) topic: String,
    pub(super) payload_len: u32,
    pub(super) head: [u8; FINGERPRINT],
    pub(super) trace: TraceContext,
}

#[derive(Debug)]
enum Slot {
    One(Received),
    /// Several PUBLISHes in one read: which one a delivery copies is unknown.
    Many,
}

/// Links a broker's deliveries to the PUBLISH they copy (fan-out), per
/// broker process. Only what is certain links: the delivery is written by
/// the thread that read the PUBLISH, before that process reads anything
/// else, with the same topic, size and first payload bytes, and without the
/// retain flag (retained copies go out on SUBSCRIBE, not on receipt).
/// A QoS 2 PUBLISH counts as read again when its PUBREL is (brokers release
/// it to subscribers then). Deliveries the broker queued and sent later,
/// after other reads, stay roots.
#[derive(Debug, Default)]
pub(crate) struct BrokerRelay {
    last: HashMap<u32, Slot>,
}

impl BrokerRelay {
    pub(crate) fn forget(&mut self, pid: u32) {
        self.last.remove(&pid);
    }

    /// The broker process reads: whatever it read before is no longer what it relays.
    pub(super) fn read_started(&mut self, pid: u32) {
        self.last.remove(&pid);
    }

    pub(super) fn received(&mut self, pid: u32, r: Received) {
        self.last.entry(pid).and_modify(|s| *s = Slot::Many).or_insert(Slot::One(r));
    }

    /// The context of the PUBLISH a delivery copies, if certain.
    pub(super) fn source(&self, pid: u32, tid: u32, topic: &str, p: &Publish<'_>) -> Option<TraceContext> {
        let Some(Slot::One(r)) = self.last.get(&pid) else { return None };
        let head = fingerprint(p)?;
        (r.tid == tid && r.topic == topic && r.payload_len == p.payload_len && r.head == head).then_some(r.trace)
    }
}

/// The first payload bytes, zero-padded; `None` when fewer were captured.
pub(super) fn fingerprint(p: &Publish<'_>) -> Option<[u8; FINGERPRINT]> {
    let n = (p.payload_len as usize).min(FINGERPRINT);
    let captured = p.payload.get(..n)?;
    let mut head = [0u8; FINGERPRINT];
    head[..n].copy_from_slice(captured);
    Some(head)
}
