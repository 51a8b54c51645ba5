//! The two directions of an HTTP/1 connection on top of the shared engine.

use std::collections::VecDeque;

use super::engine::{Engine, Kind};
use super::head::{self, Expect, Framing, Parsed};
use super::{MessageEvent, Request, Response, Segment};

/// Methods of requests still waiting for a response, for framing responses.
/// Bounded: a peer that never answers cannot make it grow.
const MAX_EXPECTED: usize = 1024;

#[derive(Debug)]
pub(crate) struct RequestKind;

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
pub(crate) struct ResponseKind {
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
        // Interim responses (100 Continue) do not answer the request.
        if framing != Framing::Interim {
            self.expected.pop_front();
        }
    }
}

/// Requests flowing in one direction of a connection.
#[derive(Debug)]
pub struct RequestStream {
    engine: Engine<RequestKind>,
}

impl RequestStream {
    /// `max_head_bytes` caps the bytes buffered while a head arrives in pieces.
    pub fn new(max_head_bytes: usize) -> Self {
        RequestStream { engine: Engine::new(RequestKind, max_head_bytes) }
    }

    pub fn feed(&mut self, seg: Segment<'_>, out: &mut impl FnMut(MessageEvent<Request>)) {
        self.engine.feed(seg, out);
    }

    /// The peer started talking: a message whose end cannot be determined ends now.
    pub fn force_end(&mut self, out: &mut impl FnMut(MessageEvent<Request>)) {
        self.engine.force_end(out);
    }

    /// The connection closed: whatever is in progress ends.
    pub fn close(&mut self, out: &mut impl FnMut(MessageEvent<Request>)) {
        self.engine.close(out);
    }

    pub fn in_message(&self) -> bool {
        self.engine.in_message()
    }

    pub fn is_lost(&self) -> bool {
        self.engine.is_lost()
    }

    pub fn reset(&mut self) {
        self.engine.reset();
    }
}

/// Responses flowing in one direction of a connection.
#[derive(Debug)]
pub struct ResponseStream {
    engine: Engine<ResponseKind>,
}

impl ResponseStream {
    pub fn new(max_head_bytes: usize) -> Self {
        ResponseStream { engine: Engine::new(ResponseKind::default(), max_head_bytes) }
    }

    /// Announces a request sent on the connection, in order, so the response
    /// to a HEAD (no body) or CONNECT (tunnel) is framed right.
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

    pub fn force_end(&mut self, out: &mut impl FnMut(MessageEvent<Response>)) {
        self.engine.force_end(out);
    }

    /// The connection closed: a close-delimited body ends here, as does any
    /// message in progress.
    pub fn close(&mut self, out: &mut impl FnMut(MessageEvent<Response>)) {
        self.engine.close(out);
    }

    pub fn in_message(&self) -> bool {
        self.engine.in_message()
    }

    pub fn is_lost(&self) -> bool {
        self.engine.is_lost()
    }

    /// Forgets the position in the stream (the announced requests stay:
    /// their responses may still come).
    pub fn reset(&mut self) {
        self.engine.reset();
    }

    /// After a 101 (or a 2xx to CONNECT) later bytes are not HTTP/1.
    pub fn is_upgraded(&self) -> bool {
        self.engine.is_upgraded()
    }
}
