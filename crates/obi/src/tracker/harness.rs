//! Drives one protocol session in unit tests: events in, finished
//! exchanges and counters out, without the tracker around it.

use super::broker_relay::BrokerRelay;
use super::session::{Feed, Finished, Io, Session, SessionCx, Side};
use super::trace_ids::TraceRemap;
use super::{TrackerSettings, TrackerStats};
use crate::span::TraceContext;

pub(crate) struct Harness<S: Session> {
    pub(crate) session: S,
    pub(crate) settings: TrackerSettings,
    pub(crate) remap: TraceRemap,
    pub(crate) stats: TrackerStats,
    pub(crate) finished: Vec<Finished>,
    /// We are the server of the connection.
    pub(crate) server: bool,
    /// The connection was seen from its opening (true unless a test says).
    pub(crate) from_start: bool,
    pub(crate) relay: BrokerRelay,
}

/// A kernel context with span id `[span; 8]` under trace `[7; 16]`, parent `[9; 8]`.
pub(crate) fn ctx(span: u8) -> TraceContext {
    TraceContext { trace_id: [7; 16], span_id: [span; 8], parent_span_id: [9; 8], flags: 1 }
}

impl<S: Session + Default> Harness<S> {
    /// A client-side session with default settings.
    pub(crate) fn client() -> Self {
        Harness {
            session: S::default(),
            settings: TrackerSettings { http_request_timeout_ns: 0, idle_conn_ns: 0, db_query_literals: false },
            remap: TraceRemap::default(),
            stats: TrackerStats::default(),
            finished: Vec::new(),
            server: false,
            from_start: true,
            relay: BrokerRelay::default(),
        }
    }
}

impl<S: Session> Harness<S> {
    /// One event: `data` captured, then `missing` bytes that were not.
    pub(crate) fn feed(
        &mut self,
        side: Side,
        ts: u64,
        kernel: Option<TraceContext>,
        data: &[u8],
        missing: u64,
    ) -> Feed {
        let io = Io { side, ts, tid: 1, msg_start: true, queued: None, kernel_ctx: kernel, data, missing, tail: &[] };
        let Harness { session, settings, remap, stats, finished, server, from_start, relay } = self;
        let from_start = *from_start;
        session.on_data(
            &io,
            &mut SessionCx { server: *server, from_start, pid: 1, settings, remap, stats, finished, relay },
        )
    }

    /// The client sends `data` in one write that the kernel gave context `[kernel; 8]`.
    pub(crate) fn send(&mut self, ts: u64, kernel: u8, data: &[u8]) -> Feed {
        self.feed(Side::Request, ts, Some(ctx(kernel)), data, 0)
    }

    /// The client reads `data` in one read.
    pub(crate) fn recv(&mut self, ts: u64, data: &[u8]) -> Feed {
        self.feed(Side::Response, ts, None, data, 0)
    }

    /// The connection closes.
    pub(crate) fn close(&mut self, ts: u64) {
        let Harness { session, settings, remap, stats, finished, server, from_start, relay } = self;
        let from_start = *from_start;
        session.on_close(
            ts,
            &mut SessionCx { server: *server, from_start, pid: 1, settings, remap, stats, finished, relay },
        );
    }
}
