//! HTTP/2 and gRPC on one connection. The kernel recognises the client
//! preface and from then on sends frame records (`F_H2`); they go to the
//! protocol decoder, and finished streams become HTTP or gRPC spans with
//! the trace context they carried.

use obi_protocols::http2::frame::{FrameHeader, SETTINGS};
use obi_protocols::http2::records::{Record, Records};
use obi_protocols::http2::{H2Conn, H2Exchange};

use super::event::Event;
use super::session::{Detect, Feed, Finished, Io, Protocol, Session, SessionCx, Side};
use super::trace_ids;
use crate::ebpf::abi;
use crate::span::{GrpcSpan, HttpSpan, SpanDetail, TraceContext};

/// HTTP/2 (h2c, h2 inside TLS, and gRPC over either).
pub(crate) struct Http2;

impl Protocol for Http2 {
    fn name(&self) -> &'static str {
        "http2"
    }

    fn claims(&self, ev: &Event<'_>) -> bool {
        ev.has(abi::F_H2)
    }

    fn detect(&self, ev: &Event<'_>) -> Detect {
        if ev.has(abi::F_H2) {
            // Whoever sends the preface is the client.
            let preface = Records::new(ev.data).any(|r| r == Record::Preface);
            return Detect::Yes { sender_is_client: preface.then_some(true) };
        }
        // A server's first SETTINGS may go out before the client's preface
        // arrives; frame records follow once the kernel sees the preface.
        if looks_like_settings(ev.data) { Detect::NeedMore } else { Detect::No }
    }

    fn new_session(&self) -> Box<dyn Session> {
        Box::new(Http2Session::default())
    }
}

/// A SETTINGS frame on stream 0: 6 bytes per setting, flags 0 or ACK.
fn looks_like_settings(data: &[u8]) -> bool {
    let Some(h) = FrameHeader::parse(data) else { return false };
    h.kind == SETTINGS && h.stream == 0 && h.flags & !1 == 0 && h.len % 6 == 0 && h.len <= 16384 && data[5..9] == [0; 4]
}

#[derive(Default)]
struct Http2Session {
    conn: H2Conn,
    done: Vec<H2Exchange>,
    parents: StreamParents,
}

/// Parents a runtime named for client streams (Go's grpc-go probe, which
/// knows the calling goroutine's server request), until their stream
/// finishes. A stream id is never reused on a connection, so a parent
/// cannot reach another stream; one whose stream finished first (the
/// runtime was slower than the answer) is never used and ages out.
#[derive(Default)]
struct StreamParents(Vec<(u32, Option<TraceContext>, u64)>);

/// More pending than this: the oldest is dropped (counted unused).
const MAX_STREAM_PARENTS: usize = 4096;

impl StreamParents {
    /// Records a parent; returns how many were dropped to make room.
    fn insert(&mut self, stream: u32, parent: Option<TraceContext>, ts: u64) -> u64 {
        let dropped = if self.0.len() >= MAX_STREAM_PARENTS { u64::from(self.0.remove(0).0 != stream) } else { 0 };
        self.0.retain(|(s, _, _)| *s != stream);
        self.0.push((stream, parent, ts));
        dropped
    }

    /// The parent named for `stream`, if any (`Some(None)`: a root).
    fn take(&mut self, stream: u32) -> Option<Option<TraceContext>> {
        let at = self.0.iter().position(|(s, _, _)| *s == stream)?;
        Some(self.0.swap_remove(at).1)
    }

    /// Forgets the parents recorded before `older_than`; returns how many.
    fn expire(&mut self, older_than: u64) -> u64 {
        let before = self.0.len();
        self.0.retain(|(_, _, ts)| *ts >= older_than);
        (before - self.0.len()) as u64
    }
}

impl Session for Http2Session {
    fn on_data(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) -> Feed {
        let side = match io.side {
            Side::Request => obi_protocols::http2::Side::Request,
            Side::Response => obi_protocols::http2::Side::Response,
        };
        if let Err(why) = self.conn.feed(side, io.data, io.ts, io.tid as u64, &mut self.done) {
            cx.stats.h2_desynced_conns += 1;
            tracing::debug!(component = "tracker", reason = ?why, "HTTP/2 decoding lost sync; no more spans from this connection");
        }
        for ex in self.done.drain(..) {
            let named = if cx.server { None } else { self.parents.take(ex.stream) };
            let mut done = finished(ex, named);
            if named.is_some_and(|p| p.is_some()) {
                done.trace = cx.joined(done.trace);
            }
            cx.finished.push(done);
        }
        if self.conn.desync().is_some() { Feed::Lost } else { Feed::Ok }
    }

    fn stream_parent(&mut self, stream: u32, parent: Option<TraceContext>, ts: u64) -> bool {
        self.parents.insert(stream, parent, ts) == 0
    }

    /// Forgets streams idle as long as a connection may be.
    fn tick(&mut self, now_mono: u64, cx: &mut SessionCx<'_>) {
        let older_than = now_mono.saturating_sub(cx.settings.idle_conn_ns);
        cx.stats.unanswered_requests += self.conn.expire(older_than) as u64;
        cx.stats.stream_parents_unused += self.parents.expire(older_than);
    }
}

/// A finished stream as a span's protocol part: gRPC when its content type
/// says so, else HTTP. A `traceparent` the request carried is continued;
/// else a client stream whose parent a runtime named (`named`: `Some(None)`
/// is a root) is that parent's child; else a new trace starts.
fn finished(ex: H2Exchange, named: Option<Option<TraceContext>>) -> Finished {
    let incoming = ex.request.traceparent.as_deref().and_then(trace_ids::parse_traceparent);
    let trace = match (incoming, named) {
        (Some((trace_id, parent_span_id, flags)), _) => {
            TraceContext { trace_id, span_id: trace_ids::random_span_id(), parent_span_id, flags }
        }
        (None, Some(Some(parent))) => TraceContext {
            trace_id: parent.trace_id,
            span_id: trace_ids::random_span_id(),
            parent_span_id: parent.span_id,
            flags: parent.flags,
        },
        (None, _) => trace_ids::new_root(),
    };
    let grpc = ex.request.is_grpc();
    let authority = (!ex.request.authority.is_empty()).then_some(ex.request.authority);
    let detail = if grpc {
        SpanDetail::Grpc(GrpcSpan {
            status: grpc_status(ex.grpc_status, ex.reset),
            http_method: ex.request.method,
            method: ex.request.path,
            request_body_size: ex.request_body_bytes as i64,
            response_body_size: ex.response_body_bytes as i64,
            authority,
        })
    } else {
        let mut path = ex.request.path;
        if let Some(q) = path.find('?') {
            path.truncate(q);
        }
        SpanDetail::Http(HttpSpan {
            method: ex.request.method,
            path,
            route: String::new(),
            status: ex.status,
            request_body_size: ex.request_body_bytes as i64,
            response_body_size: ex.response_body_bytes as i64,
            host_header: authority,
            // Set from the connection when the span is built.
            tls: false,
        })
    };
    // Streams share their connection: a per-socket arrival time says nothing
    // about one stream's wait.
    Finished { detail, start_mono: ex.start_ts, queued_mono: None, end_mono: ex.end_ts, trace }
}

/// The gRPC status of a finished call: `grpc-status` when the server sent
/// one; a reset stream is CANCELLED (1); otherwise UNKNOWN (2).
fn grpc_status(grpc_status: Option<u32>, reset: bool) -> i32 {
    match grpc_status {
        Some(code) => code.min(i32::MAX as u32) as i32,
        None if reset => 1,
        None => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::abi::EventHdr;

    #[test]
    fn stream_parents_are_taken_once_and_age_out() {
        let mut p = StreamParents::default();
        assert_eq!(p.insert(1, None, 10), 0);
        assert_eq!(p.insert(3, Some(trace_ids::new_root()), 20), 0);
        assert!(matches!(p.take(1), Some(None)));
        assert!(p.take(1).is_none());
        assert_eq!(p.expire(25), 1);
        assert!(p.take(3).is_none());
        for stream in 0..MAX_STREAM_PARENTS as u32 {
            assert_eq!(p.insert(stream * 2 + 1, None, 30), 0);
        }
        assert_eq!(p.insert(u32::MAX, None, 40), 1, "the oldest makes room");
    }

    #[test]
    fn waits_on_a_servers_settings_and_rejects_other_bytes() {
        let detect = |data: &[u8]| Http2.detect(&Event { hdr: EventHdr::default(), data, tail: &[] });
        assert_eq!(detect(&[0, 0, 12, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]), Detect::NeedMore);
        assert_eq!(detect(&[0, 0, 0, 4, 1, 0, 0, 0, 0]), Detect::NeedMore);
        assert_eq!(detect(&[0, 0, 7, 4, 0, 0, 0, 0, 0]), Detect::No);
        assert_eq!(detect(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Detect::No);
        assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Detect::No);
    }
}
