//! HTTP/1 on one connection: recognises a request or status line, feeds
//! both directions to the stream parsers and pairs requests with responses
//! (in order, so pipelining works).

use std::collections::VecDeque;

use obi_protocols::http1::{MessageEvent, Request, RequestStream, Response, ResponseStream, Segment};

use super::event::Event;
use super::session::{Detect, Feed, Finished, Io, Protocol, Session, SessionCx, Side};
use super::trace_ids::{self, TraceRemap};
use crate::span::{HttpSpan, SpanDetail, TraceContext};

/// HTTP/1.x, recognised by its first line.
pub(crate) struct Http1;

impl Protocol for Http1 {
    fn name(&self) -> &'static str {
        "http1"
    }

    fn detect(&self, ev: &Event<'_>) -> Detect {
        let data = ev.data;
        if data.len() < 5 {
            return Detect::NeedMore;
        }
        if data.starts_with(b"HTTP/1.") {
            // A response first means we joined mid-exchange; parse from here.
            return Detect::Yes { sender_is_client: Some(false) };
        }
        // The HTTP/2 preface looks like a request line; it is not ours.
        if looks_like_request_line(data) && !data.starts_with(b"PRI * HTTP/2.0") {
            return Detect::Yes { sender_is_client: Some(true) };
        }
        Detect::No
    }

    fn new_session(&self) -> Box<dyn Session> {
        Box::new(Http1Session::new())
    }
}

/// `METHOD SP target`: an upper-case token of 3..=16 characters.
fn looks_like_request_line(data: &[u8]) -> bool {
    let Some(sp) = data.iter().take(17).position(|&b| b == b' ') else {
        return false;
    };
    (3..=16).contains(&sp)
        && data[..sp].iter().all(|&b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
        && data.get(sp + 1).is_some_and(|&b| b == b'/' || b == b'*' || b.is_ascii_alphanumeric())
}

/// Requests waiting for a response beyond this are dropped (and counted).
const MAX_PENDING: usize = 64;
/// Bytes of a head buffered across syscalls.
const MAX_HEAD: usize = 16 * 1024;

/// A request seen on the wire, waiting for its response.
#[derive(Debug)]
struct PendingRequest {
    pub(crate) req: Request,
    /// Monotonic ns: first byte of the request.
    pub(crate) start_mono: u64,
    /// Monotonic ns: when it reached the server's socket, if known.
    pub(crate) queued_mono: Option<u64>,
    pub(crate) ctx: TraceContext,
    pub(crate) body_bytes: u64,
}

/// A request with its response: everything a span needs from HTTP.
#[derive(Debug)]
struct Exchange {
    pub(crate) request: PendingRequest,
    pub(crate) status: u16,
    pub(crate) response_body_bytes: u64,
    /// Monotonic ns: last byte of the response.
    pub(crate) end_mono: u64,
}

/// What one event did to the session, beyond completed exchanges.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    /// Bytes at a message boundary were not HTTP/1.
    pub(crate) invalid: bool,
    /// Responses we could not pair with a request (we joined mid-connection).
    pub(crate) orphan_responses: u32,
    /// Requests dropped because too many were waiting.
    pub(crate) dropped_requests: u32,
    /// The connection switched protocols (101): stop parsing it.
    pub(crate) upgraded: bool,
}

struct Http1Session {
    requests: RequestStream,
    responses: ResponseStream,
    pending: VecDeque<PendingRequest>,
    /// Request whose head was parsed and whose body is still arriving.
    open_request: Option<PendingRequest>,
    /// Status of the response being received.
    response_status: Option<u16>,
    /// When the message currently being assembled on each side began.
    msg_start: [Option<u64>; 2],
    /// When the request being assembled reached the socket, if known.
    queued_since: Option<u64>,
    /// Span id of the last kernel context used, so one context is never
    /// given to two requests.
    last_kernel_span: [u8; 8],
    /// Exchanges completed by the current event (reused, not reallocated).
    done: Vec<Exchange>,
    /// Reused buffers for parser output (no allocation per event).
    req_events: Vec<MessageEvent<Request>>,
    resp_events: Vec<MessageEvent<Response>>,
}

impl Http1Session {
    fn new() -> Self {
        Http1Session {
            requests: RequestStream::new(MAX_HEAD),
            responses: ResponseStream::new(MAX_HEAD),
            pending: VecDeque::new(),
            open_request: None,
            response_status: None,
            msg_start: [None, None],
            queued_since: None,
            last_kernel_span: [0; 8],
            done: Vec::new(),
            req_events: Vec::new(),
            resp_events: Vec::new(),
        }
    }

    /// Feeds one event; completed exchanges are appended to `done`.
    fn on_event(&mut self, ev: &Io<'_>, server: bool, remap: &mut TraceRemap, done: &mut Vec<Exchange>) -> Outcome {
        let mut out = Outcome::default();
        if self.responses.is_upgraded() {
            out.upgraded = true;
            return out;
        }
        let mut req_ev = std::mem::take(&mut self.req_events);
        let mut resp_ev = std::mem::take(&mut self.resp_events);
        match ev.side {
            Side::Request => {
                // The client talks again: a response with lost framing is over.
                self.responses.force_end(&mut |e| resp_ev.push(e));
                self.handle_responses(&mut resp_ev, ev.ts, done, &mut out);
                // Only a change of direction tells a lost stream where a new
                // message starts (the engine also resyncs on its own when a
                // write begins with a request line).
                if ev.msg_start && self.requests.is_lost() {
                    self.requests.reset();
                }
                if !self.requests.in_message() {
                    self.msg_start[Side::Request as usize] = Some(ev.ts);
                    self.queued_since = ev.queued;
                }
                self.requests.feed(Segment::Bytes(ev.data), &mut |e| req_ev.push(e));
                if ev.missing > 0 {
                    self.requests.feed(Segment::Gap { len: ev.missing, tail: ev.tail }, &mut |e| req_ev.push(e));
                }
                self.handle_requests(&mut req_ev, ev, server, remap, &mut out);
            }
            Side::Response => {
                // The server answers: a request with lost framing is over.
                self.requests.force_end(&mut |e| req_ev.push(e));
                self.handle_requests(&mut req_ev, ev, server, remap, &mut out);
                if ev.msg_start && self.responses.is_lost() {
                    self.responses.reset();
                }
                if !self.responses.in_message() {
                    self.msg_start[Side::Response as usize] = Some(ev.ts);
                }
                self.responses.feed(Segment::Bytes(ev.data), &mut |e| resp_ev.push(e));
                if ev.missing > 0 {
                    self.responses.feed(Segment::Gap { len: ev.missing, tail: ev.tail }, &mut |e| resp_ev.push(e));
                }
                self.handle_responses(&mut resp_ev, ev.ts, done, &mut out);
            }
        }
        self.req_events = req_ev;
        self.resp_events = resp_ev;
        out
    }

    /// The connection closed: close-delimited responses end now.
    fn close(&mut self, ts: u64, done: &mut Vec<Exchange>) -> Outcome {
        let mut out = Outcome::default();
        let mut resp_ev = std::mem::take(&mut self.resp_events);
        self.responses.close(&mut |e| resp_ev.push(e));
        self.handle_responses(&mut resp_ev, ts, done, &mut out);
        self.resp_events = resp_ev;
        out
    }

    /// Requests still waiting for a response.
    fn pending_len(&self) -> usize {
        self.pending.len() + self.open_request.is_some() as usize
    }

    /// Removes requests that waited longer than `timeout_ns` for a response.
    fn take_timed_out(&mut self, now: u64, timeout_ns: u64) -> Vec<PendingRequest> {
        let mut out = Vec::new();
        while self.pending.front().is_some_and(|p| now.saturating_sub(p.start_mono) > timeout_ns) {
            out.extend(self.pending.pop_front());
        }
        out
    }

    fn handle_requests(
        &mut self,
        events: &mut Vec<MessageEvent<Request>>,
        ev: &Io<'_>,
        server: bool,
        remap: &mut TraceRemap,
        out: &mut Outcome,
    ) {
        for e in events.drain(..) {
            match e {
                MessageEvent::Head(req) => {
                    let start = self.msg_start[Side::Request as usize].take().unwrap_or(ev.ts);
                    let ctx = Self::context_for(&mut self.last_kernel_span, &req, ev, server, remap);
                    self.responses.expect_response(&req.method);
                    if let Some(prev) = self.open_request.take() {
                        push_pending(&mut self.pending, prev, out);
                    }
                    let queued_mono = self.queued_since.take();
                    // Known now: the server may answer before reading the body.
                    let body_bytes = request_body_size(&req, None);
                    self.open_request = Some(PendingRequest { req, start_mono: start, queued_mono, ctx, body_bytes });
                }
                MessageEvent::End { body_bytes, .. } => {
                    if let Some(mut open) = self.open_request.take() {
                        open.body_bytes = request_body_size(&open.req, Some(body_bytes));
                        push_pending(&mut self.pending, open, out);
                    }
                }
                MessageEvent::Invalid => out.invalid = true,
            }
        }
    }

    fn handle_responses(
        &mut self,
        events: &mut Vec<MessageEvent<Response>>,
        end: u64,
        done: &mut Vec<Exchange>,
        out: &mut Outcome,
    ) {
        for e in events.drain(..) {
            match e {
                MessageEvent::Head(resp) => self.response_status = Some(resp.status),
                MessageEvent::End { body_bytes, declared, .. } => {
                    let status = self.response_status.take().unwrap_or(0);
                    // Content-Length where it frames the body, as OBI reports it.
                    let body_bytes = declared.unwrap_or(body_bytes);
                    self.msg_start[Side::Response as usize] = None;
                    // A server may answer before reading the whole body.
                    if self.pending.is_empty()
                        && let Some(open) = self.open_request.take()
                    {
                        self.pending.push_back(open);
                    }
                    match self.pending.pop_front() {
                        Some(request) => {
                            done.push(Exchange { request, status, response_body_bytes: body_bytes, end_mono: end })
                        }
                        None => out.orphan_responses += 1,
                    }
                }
                MessageEvent::Invalid => out.invalid = true,
            }
        }
        if self.responses.is_upgraded() {
            out.upgraded = true;
        }
    }

    /// The trace context of a newly seen request.
    fn context_for(
        last_kernel_span: &mut [u8; 8],
        req: &Request,
        ev: &Io<'_>,
        server: bool,
        remap: &mut TraceRemap,
    ) -> TraceContext {
        let kernel = ev.kernel_ctx.filter(|k| k.span_id != *last_kernel_span);
        let mut ctx = match (kernel, ev.kernel_ctx) {
            (Some(k), _) => {
                *last_kernel_span = k.span_id;
                k
            }
            // Another request in the same message as the one that used the
            // kernel context: same parentage, its own span id.
            (None, Some(k)) if !server => TraceContext { span_id: trace_ids::random_span_id(), ..k },
            _ => trace_ids::new_root(),
        };
        if server {
            if let Some((trace, parent, flags)) = req.traceparent.as_deref().and_then(trace_ids::parse_traceparent) {
                if kernel.is_some() {
                    remap.insert(ctx.trace_id, trace, ev.ts);
                }
                ctx.trace_id = trace;
                ctx.parent_span_id = parent;
                ctx.flags = flags;
            }
        } else {
            remap.apply(&mut ctx);
        }
        ctx
    }
}

/// The request body size as OBI reports it: the Content-Length, whether or
/// not the server read the body. A chunked body has no declared length: it is
/// the bytes counted on the wire (chunk framing included), 0 until it ends.
/// Without either the request has no body; that includes a head cut by the
/// capture before any Content-Length (the bytes after the cut are mostly the
/// rest of the head, never to be counted as body).
fn request_body_size(req: &Request, counted: Option<u64>) -> u64 {
    if req.chunked { counted.unwrap_or(0) } else { req.content_length.unwrap_or(0) }
}

fn push_pending(pending: &mut VecDeque<PendingRequest>, req: PendingRequest, outcome: &mut Outcome) {
    if pending.len() >= MAX_PENDING {
        pending.pop_front();
        outcome.dropped_requests += 1;
    }
    pending.push_back(req);
}

impl Http1Session {
    /// Hands finished exchanges to the tracker as spans' HTTP parts.
    fn finish(&mut self, cx: &mut SessionCx<'_>) {
        for ex in self.done.drain(..) {
            let mut trace = ex.request.ctx;
            if !cx.server {
                cx.remap.apply(&mut trace);
            }
            let req = ex.request.req;
            cx.finished.push(Finished {
                detail: SpanDetail::Http(HttpSpan {
                    path: req.path().to_string(),
                    method: req.method,
                    route: String::new(),
                    status: ex.status,
                    request_body_size: ex.request.body_bytes as i64,
                    response_body_size: ex.response_body_bytes as i64,
                    host_header: req.host,
                    // Set from the connection when the span is built.
                    tls: false,
                }),
                start_mono: ex.request.start_mono,
                queued_mono: ex.request.queued_mono,
                end_mono: ex.end_mono,
                trace,
            });
        }
    }

    fn count(outcome: &Outcome, cx: &mut SessionCx<'_>) {
        cx.stats.orphan_responses += outcome.orphan_responses as u64;
        cx.stats.unanswered_requests += outcome.dropped_requests as u64;
    }
}

impl Session for Http1Session {
    fn on_data(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) -> Feed {
        let mut done = std::mem::take(&mut self.done);
        let outcome = self.on_event(io, cx.server, cx.remap, &mut done);
        self.done = done;
        Self::count(&outcome, cx);
        self.finish(cx);
        if outcome.upgraded {
            // After `101 Switching Protocols` the bytes are another protocol:
            // HTTP/2 (h2c upgrade; the kernel then sends frame records once it
            // sees the client preface) or something we ignore on sight.
            Feed::Upgraded
        } else if outcome.invalid {
            Feed::Invalid
        } else {
            Feed::Ok
        }
    }

    fn on_close(&mut self, ts: u64, cx: &mut SessionCx<'_>) {
        let mut done = std::mem::take(&mut self.done);
        let outcome = self.close(ts, &mut done);
        self.done = done;
        Self::count(&outcome, cx);
        cx.stats.unanswered_requests += self.pending_len() as u64;
        self.finish(cx);
    }

    /// Requests without a response for too long are reported as 408, as OBI does.
    fn tick(&mut self, now_mono: u64, cx: &mut SessionCx<'_>) {
        let timeout = cx.settings.http_request_timeout_ns;
        if timeout == 0 {
            return;
        }
        for request in self.take_timed_out(now_mono, timeout) {
            let end_mono = request.start_mono + timeout;
            self.done.push(Exchange { request, status: 408, response_body_bytes: 0, end_mono });
        }
        self.finish(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::abi::EventHdr;

    fn detect(data: &[u8]) -> Detect {
        let ev = Event { hdr: EventHdr::default(), data, tail: &[] };
        Http1.detect(&ev)
    }

    #[test]
    fn detects_request_and_status_lines() {
        let request = Detect::Yes { sender_is_client: Some(true) };
        assert_eq!(detect(b"GET / HTTP/1.1\r\n"), request);
        assert_eq!(detect(b"OPTIONS * HTTP/1.1\r\n"), request);
        assert_eq!(detect(b"CONNECT example.com:443 HTTP/1.1\r\n"), request);
        assert_eq!(detect(b"HTTP/1.1 200 OK\r\n"), Detect::Yes { sender_is_client: Some(false) });
        assert_eq!(detect(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Detect::No);
        assert_eq!(detect(&[22, 3, 1, 0, 200, 1]), Detect::No);
        assert_eq!(detect(b"GE"), Detect::NeedMore);
        assert_eq!(detect(b"\x00\x01\x02\x03\x04\x05"), Detect::No);
        assert_eq!(detect(b"get / HTTP/1.1"), Detect::No);
        assert_eq!(detect(b"*2\r\n$3\r\nGET\r\n"), Detect::No);
    }
}
