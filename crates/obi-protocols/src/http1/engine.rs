//! The framing engine shared by both directions: head assembly across
//! segments, body framing, gap handling, loss and resynchronisation.
//!
//! A [`Segment::Gap`] is handled as "n unknown bytes, then the known tail": the
//! unknown part is absorbed where framing survives it (inside a Content-Length
//! body or inside chunk data) and the tail then goes through the same path as
//! captured bytes. Only captured bytes at the very start of a `Bytes` segment
//! (the start of a write) may resynchronise a lost stream.

use super::chunked::{ChunkStatus, ChunkedDecoder, TerminatorScan};
use super::head::{Framing, Parsed};
use super::{MessageEvent, Segment};

/// Heads shorter than this are re-parsed on every new piece (early garbage
/// detection); longer ones only when a line ends, since only then can they
/// complete. Keeps head assembly linear for tiny segments.
const EAGER_PARSE: usize = 64;
/// Floor for the head-size cap: a start line must fit.
pub(crate) const MIN_HEAD_CAP: usize = 64;

/// What differs between the request and the response direction.
pub(crate) trait Kind {
    type Head;
    /// Parses a head at the start of `buf` (see [`super::head::Parsed`]). Must be pure.
    fn parse(&self, buf: &[u8], cut: bool) -> Parsed<Self::Head>;
    fn header_bytes(head: &Self::Head) -> u64;
    /// A head with this framing was accepted.
    fn accepted(&mut self, _framing: Framing) {}
    /// The stream found its place again after being lost.
    fn resynced(&mut self) {}
}

#[derive(Debug)]
enum State {
    /// At a message boundary; `head_buf` may hold the start of a head.
    Idle,
    Body(Body),
    /// Position unknown: waiting for a write that starts with a start line.
    Lost,
    /// The connection no longer speaks HTTP/1.
    Upgraded,
}

#[derive(Debug)]
struct Body {
    framing: BodyFraming,
    header_bytes: u64,
    body_bytes: u64,
    /// Content-Length, when it frames the body.
    declared: Option<u64>,
}

#[derive(Debug)]
enum BodyFraming {
    Length {
        remaining: u64,
    },
    Chunked(ChunkedDecoder),
    /// Chunk framing lost to a gap or a syntax error: ends on a visible terminator.
    ChunkedLost(TerminatorScan),
    /// Ends when the connection closes (responses).
    Close,
    /// The head did not say; ends on `force_end` / `close`.
    Unknown,
}

#[derive(Debug)]
pub(crate) struct Engine<K> {
    pub(crate) kind: K,
    max_head: usize,
    /// A head being assembled across segments; never longer than `max_head`.
    head_buf: Vec<u8>,
    state: State,
}

impl<K: Kind> Engine<K> {
    pub(crate) fn new(kind: K, max_head: usize) -> Self {
        Engine { kind, max_head: max_head.max(MIN_HEAD_CAP), head_buf: Vec::new(), state: State::Idle }
    }

    pub(crate) fn feed<F: FnMut(MessageEvent<K::Head>)>(&mut self, seg: Segment<'_>, out: &mut F) {
        match seg {
            Segment::Bytes(data) => self.known(data, true, out),
            Segment::Gap { len, tail } => {
                let t = usize::try_from(len).map_or(tail.len(), |len| tail.len().min(len));
                let tail = &tail[tail.len() - t..];
                let unknown = len - t as u64;
                if unknown > 0 {
                    self.unknown(unknown, out);
                }
                self.known(tail, false, out);
            }
        }
    }

    /// Ends a message whose end cannot be determined from its framing.
    pub(crate) fn force_end<F: FnMut(MessageEvent<K::Head>)>(&mut self, out: &mut F) {
        if let State::Body(b) = &self.state
            && matches!(b.framing, BodyFraming::ChunkedLost(_) | BodyFraming::Close | BodyFraming::Unknown)
        {
            self.end(out);
        }
    }

    /// Ends whatever is in progress (a buffered partial head becomes a cut head), then resets.
    pub(crate) fn close<F: FnMut(MessageEvent<K::Head>)>(&mut self, out: &mut F) {
        if matches!(self.state, State::Idle) && !self.head_buf.is_empty() {
            self.cut_buffered(out);
        }
        if matches!(self.state, State::Body(_)) {
            self.end(out);
        }
        self.reset();
    }

    pub(crate) fn reset(&mut self) {
        self.head_buf.clear();
        self.state = State::Idle;
    }

    pub(crate) fn set_upgraded(&mut self) {
        self.head_buf.clear();
        self.state = State::Upgraded;
    }

    pub(crate) fn in_message(&self) -> bool {
        match self.state {
            State::Body(_) => true,
            State::Idle => !self.head_buf.is_empty(),
            State::Lost | State::Upgraded => false,
        }
    }

    pub(crate) fn is_lost(&self) -> bool {
        match &self.state {
            State::Lost => true,
            State::Body(b) => matches!(b.framing, BodyFraming::Unknown),
            State::Idle | State::Upgraded => false,
        }
    }

    pub(crate) fn is_upgraded(&self) -> bool {
        matches!(self.state, State::Upgraded)
    }

    /// Length and capacity of the head buffer (tests check the cap).
    #[cfg(test)]
    pub(crate) fn head_buffer(&self) -> (usize, usize) {
        (self.head_buf.len(), self.head_buf.capacity())
    }

    /// Captured bytes. `seg_start`: `data` starts a `Bytes` segment.
    fn known<F: FnMut(MessageEvent<K::Head>)>(&mut self, mut data: &[u8], mut seg_start: bool, out: &mut F) {
        let mut run_start = true;
        while !data.is_empty() {
            // Each arm consumes bytes or changes state in a way that consumes next time.
            let n = match self.state {
                State::Upgraded => return,
                State::Lost => {
                    if !(seg_start && self.starts_message(data)) {
                        return;
                    }
                    self.kind.resynced();
                    self.state = State::Idle;
                    0
                }
                State::Idle => self.head(data, out),
                State::Body(_) => self.body(data, run_start, out),
            };
            if n > 0 {
                seg_start = false;
                run_start = false;
            }
            data = &data[n..];
        }
    }

    /// Uncaptured bytes.
    fn unknown<F: FnMut(MessageEvent<K::Head>)>(&mut self, n: u64, out: &mut F) {
        match self.state {
            State::Upgraded | State::Lost => {}
            // Whole messages may hide in the gap.
            State::Idle if self.head_buf.is_empty() => self.state = State::Lost,
            State::Idle => {
                self.cut_buffered(out);
                self.skip_body(n, out);
            }
            State::Body(_) => self.skip_body(n, out),
        }
    }

    /// Head assembly at a message boundary; returns the bytes of `data` used.
    fn head<F: FnMut(MessageEvent<K::Head>)>(&mut self, data: &[u8], out: &mut F) -> usize {
        let cap = self.max_head;
        if self.head_buf.is_empty() {
            // Fast path: a head usually arrives whole in one write; parse it in place.
            let window = &data[..data.len().min(cap)];
            return match self.kind.parse(window, false) {
                Parsed::Head(head, framing) => {
                    let n = K::header_bytes(&head) as usize;
                    self.start(head, framing, out);
                    n
                }
                Parsed::Invalid => {
                    self.invalid(out);
                    0
                }
                _ if window.len() == cap => {
                    let parsed = self.kind.parse(window, true);
                    self.salvaged(parsed, out);
                    cap
                }
                _ => {
                    self.buffer(data);
                    data.len()
                }
            };
        }
        let old = self.head_buf.len();
        let take = data.len().min(cap - old);
        self.buffer(&data[..take]);
        let full = self.head_buf.len() == cap;
        if !full && old >= EAGER_PARSE && memchr::memchr(b'\n', &data[..take]).is_none() {
            return take;
        }
        match self.kind.parse(&self.head_buf, false) {
            Parsed::Head(head, framing) => {
                // The head completed within the new bytes (it was re-parsed at every line end).
                let n = (K::header_bytes(&head) as usize).saturating_sub(old);
                self.head_buf.clear();
                self.start(head, framing, out);
                n
            }
            Parsed::Invalid => {
                self.head_buf.clear();
                self.invalid(out);
                0
            }
            _ if full => {
                self.cut_buffered(out);
                take
            }
            _ => take,
        }
    }

    /// Body bytes; returns the bytes of `data` used. `run_start`: `data` begins a
    /// write or follows uncaptured bytes.
    fn body<F: FnMut(MessageEvent<K::Head>)>(&mut self, data: &[u8], run_start: bool, out: &mut F) -> usize {
        let State::Body(body) = &mut self.state else { return 0 };
        let (n, done) = match &mut body.framing {
            BodyFraming::Length { remaining } => {
                let n = (*remaining).min(data.len() as u64);
                *remaining -= n;
                (n as usize, *remaining == 0)
            }
            BodyFraming::Chunked(decoder) => {
                let step = decoder.feed(data);
                if step.status == ChunkStatus::Error {
                    body.framing = BodyFraming::ChunkedLost(TerminatorScan::default());
                }
                (step.consumed, step.status == ChunkStatus::Done)
            }
            BodyFraming::ChunkedLost(scan) => match scan.find(data, run_start) {
                Some(n) => (n, true),
                None => (data.len(), false),
            },
            BodyFraming::Close | BodyFraming::Unknown => (data.len(), false),
        };
        body.body_bytes = body.body_bytes.saturating_add(n as u64);
        if done {
            self.end(out);
        }
        n
    }

    /// Uncaptured body bytes (no-op unless a body is in progress).
    fn skip_body<F: FnMut(MessageEvent<K::Head>)>(&mut self, n: u64, out: &mut F) {
        let State::Body(body) = &mut self.state else { return };
        let mut overrun = false;
        match &mut body.framing {
            BodyFraming::Length { remaining } => {
                let k = n.min(*remaining);
                *remaining -= k;
                body.body_bytes = body.body_bytes.saturating_add(k);
                overrun = n > k;
                if *remaining == 0 {
                    self.end(out);
                }
            }
            BodyFraming::Chunked(decoder) => {
                body.body_bytes = body.body_bytes.saturating_add(n);
                if !decoder.skip(n) {
                    body.framing = BodyFraming::ChunkedLost(TerminatorScan::default());
                }
            }
            BodyFraming::ChunkedLost(scan) => {
                body.body_bytes = body.body_bytes.saturating_add(n);
                scan.reset();
            }
            BodyFraming::Close | BodyFraming::Unknown => body.body_bytes = body.body_bytes.saturating_add(n),
        }
        if overrun {
            // The gap runs past the message end: the next message start is unseen.
            self.state = State::Lost;
        }
    }

    /// A head was parsed: report it and set up its body.
    fn start<F: FnMut(MessageEvent<K::Head>)>(&mut self, head: K::Head, framing: Framing, out: &mut F) {
        let header_bytes = K::header_bytes(&head);
        self.kind.accepted(framing);
        let body = match framing {
            Framing::Interim => return,
            Framing::Empty | Framing::Length(0) | Framing::Tunnel => None,
            Framing::Length(n) => Some(BodyFraming::Length { remaining: n }),
            Framing::Chunked => Some(BodyFraming::Chunked(ChunkedDecoder::new())),
            Framing::Close => Some(BodyFraming::Close),
            Framing::Unknown => Some(BodyFraming::Unknown),
        };
        let declared = match framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        out(MessageEvent::Head(head));
        self.state = match body {
            Some(framing) => State::Body(Body { framing, header_bytes, body_bytes: 0, declared }),
            None => {
                out(MessageEvent::End { body_bytes: 0, wire_bytes: header_bytes, declared: Some(0) });
                if framing == Framing::Tunnel { State::Upgraded } else { State::Idle }
            }
        };
    }

    /// The buffered partial head will get no more bytes: salvage what it has.
    fn cut_buffered<F: FnMut(MessageEvent<K::Head>)>(&mut self, out: &mut F) {
        let parsed = self.kind.parse(&self.head_buf, true);
        self.head_buf.clear();
        self.salvaged(parsed, out);
    }

    fn salvaged<F: FnMut(MessageEvent<K::Head>)>(&mut self, parsed: Parsed<K::Head>, out: &mut F) {
        match parsed {
            Parsed::Head(head, framing) => self.start(head, framing, out),
            Parsed::Invalid => self.invalid(out),
            // Too little to report: we only know we lost our place.
            Parsed::Partial { .. } | Parsed::Nothing => self.state = State::Lost,
        }
    }

    fn invalid<F: FnMut(MessageEvent<K::Head>)>(&mut self, out: &mut F) {
        out(MessageEvent::Invalid);
        self.head_buf.clear();
        self.state = State::Lost;
    }

    fn end<F: FnMut(MessageEvent<K::Head>)>(&mut self, out: &mut F) {
        if let State::Body(b) = std::mem::replace(&mut self.state, State::Idle) {
            let wire_bytes = b.header_bytes.saturating_add(b.body_bytes);
            out(MessageEvent::End { body_bytes: b.body_bytes, wire_bytes, declared: b.declared });
        }
    }

    /// Whether `data` (the start of a write) begins with a plausible start line.
    fn starts_message(&self, data: &[u8]) -> bool {
        let window = &data[..data.len().min(self.max_head)];
        matches!(self.kind.parse(window, false), Parsed::Head(..) | Parsed::Partial { start_line: true })
    }

    /// Appends to the head buffer, growing it at most to the cap.
    fn buffer(&mut self, bytes: &[u8]) {
        let need = self.head_buf.len() + bytes.len();
        debug_assert!(need <= self.max_head);
        if need > self.head_buf.capacity() {
            let target = (2 * self.head_buf.capacity()).clamp(need, self.max_head.max(need));
            self.head_buf.reserve_exact(target - self.head_buf.len());
        }
        self.head_buf.extend_from_slice(bytes);
    }
}
