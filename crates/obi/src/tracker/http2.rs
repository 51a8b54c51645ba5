//! HTTP/2 and gRPC on one connection: the frame records the kernel sends go
//! to the protocol decoder, and finished streams become exchanges with the
//! trace context they belong to.

use obi_protocols::http2::{Desync, H2Conn, H2Exchange, Side};

use super::trace_ids;
use crate::span::TraceContext;

/// A finished stream and its trace context.
pub struct H2Done {
    pub ex: H2Exchange,
    pub ctx: TraceContext,
}

#[derive(Default)]
pub struct Http2Session {
    conn: H2Conn,
    done: Vec<H2Exchange>,
}

impl Http2Session {
    /// Feeds one event's records. `ts` is when its bytes count as sent or
    /// arrived; `tid` is the thread, kept with requests for the span.
    pub fn on_event(&mut self, side: Side, records: &[u8], ts: u64, tid: u32) -> Result<(), Desync> {
        self.conn.feed(side, records, ts, tid as u64, &mut self.done)
    }

    /// Streams finished since the last call, with their trace context:
    /// a `traceparent` the request carried is continued, else a new trace.
    pub fn drain(&mut self, out: &mut Vec<H2Done>) {
        for ex in self.done.drain(..) {
            let incoming = ex.request.traceparent.as_deref().and_then(trace_ids::parse_traceparent);
            let ctx = match incoming {
                Some((trace_id, parent_span_id, flags)) => {
                    TraceContext { trace_id, span_id: trace_ids::random_span_id(), parent_span_id, flags }
                }
                None => trace_ids::new_root(),
            };
            out.push(H2Done { ex, ctx });
        }
    }

    pub fn desync(&self) -> Option<Desync> {
        self.conn.desync()
    }

    pub fn stats(&self) -> obi_protocols::http2::conn::H2Stats {
        self.conn.stats
    }

    /// Forgets requests older than `older_than` that were never answered.
    pub fn expire(&mut self, older_than: u64) -> usize {
        self.conn.expire(older_than)
    }
}
