//! The public per-direction streams: the framing engine bound to request or
//! response heads.

use std::collections::VecDeque;

use super::engine::{Engine, Kind};
use super::head::{self, Expect, Framing, Parsed};
use super::{MessageEvent, Request, Response, Segment};

/// Announced requests remembered for framing responses; older ones are dropped
/// first (their responses were most likely lost).
const MAX_EXPECTED: usize = 1024;

#[derive(Debug)]
struct RequestKind;

impl Kind for RequestKind {
    type Head = Request;

    fn parse(&self, buf: &[u8], cut: bool) -> Parsed<Request> {
        head::parse_request(buf, cut)
    }

    fn header_bytes(head: &Request) -> u64 {
        head.header_bytes
    }
}

#[derive(Debug, Default)]
struct ResponseKind {
    /// One entry per announced request whose final response has not started yet.
    expected: VecDeque<Expect>,
}

impl Kind for ResponseKind {
    type Head = Response;

    fn parse(&self, buf: &[u8], cut: bool) -> Parsed<Response> {
        head::parse_response(buf, cut, self.expected.front().copied().unwrap_or_default())
    }

    fn header_bytes(head: &Response) -> u64 {
        head.header_bytes
    }

    fn accepted(&mut self, framing: Framing) {
        // Interim responses precede the final one for the same request.
        if framing != Framing::Interim {
            self.expected.pop_front();
        }
    }

    fn resynced(&mut self) {
        self.keep_newest();
    }
}

impl ResponseKind {
    /// After losing our place, responses to older requests were most likely in
    /// the unseen bytes; the next response answers the newest request.
    fn keep_newest(&mut self) {
        let stale = self.expected.len().saturating_sub(1);
        self.expected.drain(..stale);
    }
}

/// Requests sent on one connection (client to server), framed one after another.
#[derive(Debug)]
pub struct RequestStream {
    engine: Engine<RequestKind>,
}

impl RequestStream {
    /// `max_head_bytes` caps a head (request line + headers): a longer one is
    /// reported as cut (`head_complete == false`). Values below 64 count as 64.
    pub fn new(max_head_bytes: usize) -> Self {
        RequestStream { engine: Engine::new(RequestKind, max_head_bytes) }
    }

    pub fn feed(&mut self, seg: Segment<'_>, out: &mut impl FnMut(MessageEvent<Request>)) {
        self.engine.feed(seg, out);
    }

    /// The peer started talking: a request whose end cannot be told from its
    /// framing (cut head, unusable length) ends now. Requests with known framing
    /// go on (the server may answer `100 Continue` before the body), and a
    /// partially received head keeps waiting for its remaining bytes.
    pub fn force_end(&mut self, out: &mut impl FnMut(MessageEvent<Request>)) {
        self.engine.force_end(out);
    }

    /// The connection closed: any request in progress ends (a partially received
    /// head is reported as cut), then the stream is as after [`Self::reset`].
    pub fn close(&mut self, out: &mut impl FnMut(MessageEvent<Request>)) {
        self.engine.close(out);
    }

    /// A message started and has not ended: its head is being received, or
    /// `Head` was emitted and `End` was not yet.
    pub fn in_message(&self) -> bool {
        self.engine.in_message()
    }

    /// The stream cannot tell where the next message starts: after `Invalid`, a
    /// gap at a message boundary or past a message end, or while a request with
    /// unknown framing (cut head) is in progress. It recovers by itself when a
    /// `Bytes` segment starts with a request line, or on `force_end` for the
    /// latter case.
    pub fn is_lost(&self) -> bool {
        self.engine.is_lost()
    }

    /// Forgets everything; the next bytes are a message boundary. Emits nothing.
    pub fn reset(&mut self) {
        self.engine.reset();
    }

    /// The connection switched protocols (e.g. the response stream
    /// [`ResponseStream::is_upgraded`] after an upgrade or CONNECT): later bytes are
    /// ignored until `reset`. Any message in progress is dropped silently.
    pub fn set_upgraded(&mut self) {
        self.engine.set_upgraded();
    }

    pub fn is_upgraded(&self) -> bool {
        self.engine.is_upgraded()
    }

    #[cfg(test)]
    pub(crate) fn head_buffer(&self) -> (usize, usize) {
        self.engine.head_buffer()
    }
}

/// Responses received on one connection (server to client).
#[derive(Debug)]
pub struct ResponseStream {
    engine: Engine<ResponseKind>,
}

impl ResponseStream {
    /// See [`RequestStream::new`].
    pub fn new(max_head_bytes: usize) -> Self {
        ResponseStream { engine: Engine::new(ResponseKind::default(), max_head_bytes) }
    }

    /// Announces one request sent on the connection, in order, so its response is
    /// framed right (HEAD: no body; CONNECT: 2xx opens a tunnel). Responses to
    /// unannounced requests are framed as if to GET. At most 1024 announcements
    /// are kept; beyond that the oldest is dropped.
    pub fn expect_response(&mut self, method: &str) {
        let expected = &mut self.engine.kind.expected;
        if expected.len() >= MAX_EXPECTED {
            expected.pop_front();
        }
        expected.push_back(Expect::from_method(method));
    }

    pub fn feed(&mut self, seg: Segment<'_>, out: &mut impl FnMut(MessageEvent<Response>)) {
        self.engine.feed(seg, out);
    }

    /// The peer started talking: a response whose end cannot be told from its
    /// framing (close-delimited, chunked with lost framing, cut head) ends now.
    pub fn force_end(&mut self, out: &mut impl FnMut(MessageEvent<Response>)) {
        self.engine.force_end(out);
    }

    /// The connection closed: a close-delimited body ends here; any response in
    /// progress ends (a partially received head is reported as cut). Afterwards
    /// the stream is new: no announcements, not upgraded.
    pub fn close(&mut self, out: &mut impl FnMut(MessageEvent<Response>)) {
        self.engine.close(out);
        self.engine.kind.expected.clear();
    }

    /// See [`RequestStream::in_message`].
    pub fn in_message(&self) -> bool {
        self.engine.in_message()
    }

    /// See [`RequestStream::is_lost`] (resynchronises on a status line).
    pub fn is_lost(&self) -> bool {
        self.engine.is_lost()
    }

    /// Forgets the framing state (the next bytes are a message boundary, not
    /// upgraded). Of the announced requests only the newest is kept: after
    /// losing our place, the next response most likely answers it. Emits nothing.
    pub fn reset(&mut self) {
        self.engine.reset();
        self.engine.kind.keep_newest();
    }

    /// After a 101 response, or a 2xx response to CONNECT: later bytes are not
    /// HTTP/1 and are ignored until `reset` or `close`.
    pub fn is_upgraded(&self) -> bool {
        self.engine.is_upgraded()
    }

    #[cfg(test)]
    pub(crate) fn head_buffer(&self) -> (usize, usize) {
        self.engine.head_buffer()
    }
}
