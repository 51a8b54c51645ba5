//! The agent's own connections to inspectors. They are real requests to a
//! traced process (`GET /json/list`, the WebSocket upgrade), but not the
//! app's traffic: their server spans must not reach traces or metrics.
//!
//! Written by the injection thread, read by the event loop for every span
//! batch: a few atomics, no lock. The last [`SLOTS`] connections are kept
//! (their spans may come out of the tracker after the injection ended).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::span::{Span, SpanKind};

const SLOTS: usize = 8;

#[derive(Debug, Default)]
pub(crate) struct OwnConnections {
    /// `pid << 32 | inspector port << 16 | our port`; 0 = empty.
    slots: [AtomicU64; SLOTS],
    next: AtomicUsize,
}

fn key(pid: u32, server_port: u16, client_port: u16) -> u64 {
    (u64::from(pid) << 32) | (u64::from(server_port) << 16) | u64::from(client_port)
}

impl OwnConnections {
    /// Our connection from `client_port` to `pid`'s inspector on `server_port`.
    pub(crate) fn record(&self, pid: u32, server_port: u16, client_port: u16) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % SLOTS;
        self.slots[i].store(key(pid, server_port, client_port), Ordering::Relaxed);
    }

    /// Whether any connection was ever recorded (most agents never inject).
    pub(crate) fn any(&self) -> bool {
        self.next.load(Ordering::Relaxed) != 0
    }

    /// Whether `span` is the server side of one of our connections.
    pub(crate) fn owns(&self, span: &Span) -> bool {
        if span.kind != SpanKind::Server {
            return false;
        }
        let k = key(span.service.pid, span.host.port, span.peer.port);
        self.slots.iter().any(|s| s.load(Ordering::Relaxed) == k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_connections() {
        let own = OwnConnections::default();
        assert!(!own.any());
        for port in 0..SLOTS as u16 + 2 {
            own.record(42, 9229, 40000 + port);
        }
        assert!(own.any());
        let has = |port| own.slots.iter().any(|s| s.load(Ordering::Relaxed) == key(42, 9229, port));
        assert!(!has(40000) && !has(40001), "the oldest are overwritten");
        assert!(has(40002) && has(40000 + SLOTS as u16 + 1));
        assert!(!has(40000 + SLOTS as u16 + 2));
    }
}
