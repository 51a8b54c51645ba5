//! The PostgreSQL wire protocol (version 3), decoded as a stream of
//! messages: bytes (and gaps the kernel did not capture) in, one
//! [`Message`] per complete message out, with the first bytes of its body.
//!
//! Every message but the client's first (startup, SSL or GSS request, with
//! no type byte) is a type byte and a length, so a gap inside a body is
//! skipped without losing the framing; a gap in a header loses it.

/// Body bytes kept per message (the query text of `Query` and `Parse`).
pub const MAX_KEPT: usize = 8192;
/// Largest message length accepted (the server's own limit is 1 GB).
const MAX_LEN: u32 = 1 << 30;

/// The protocol version 3.0 startup code.
pub const PROTOCOL_3: u32 = 196_608;
/// Code of an `SSLRequest`.
pub const SSL_REQUEST: u32 = 80_877_103;
/// Code of a `GSSENCRequest`.
pub const GSS_REQUEST: u32 = 80_877_104;
/// Code of a `CancelRequest`.
pub const CANCEL_REQUEST: u32 = 80_877_102;

/// A complete message.
#[derive(Debug)]
pub struct Message<'a> {
    /// The type byte; 0 for an untyped (startup) message.
    pub tag: u8,
    /// Body length.
    pub len: u32,
    /// The first bytes of the body (up to [`MAX_KEPT`]).
    pub body: &'a [u8],
    /// Part of the body was not kept (too long, or not captured).
    pub cut: bool,
}

impl Message<'_> {
    /// For an untyped message, its code (protocol version or request code).
    pub fn startup_code(&self) -> Option<u32> {
        (self.tag == 0).then(|| be32(self.body)).flatten()
    }
}

#[derive(Debug)]
pub enum Event<'a> {
    Message(Message<'a>),
    /// Not this protocol, or a gap hid the framing: nothing more comes out
    /// until [`MessageStream::reset`].
    Invalid,
}

/// One direction of a connection.
#[derive(Debug)]
pub struct MessageStream {
    /// The next message has no type byte (a client's first).
    untyped_next: bool,
    header: [u8; 5],
    have: usize,
    /// Body bytes still to come for the current message.
    remaining: u32,
    tag: u8,
    len: u32,
    body: Vec<u8>,
    cut: bool,
    lost: bool,
}

impl MessageStream {
    /// A stream whose first message is untyped (`startup`, the client side
    /// of a new connection) or not.
    pub fn new(startup: bool) -> Self {
        MessageStream {
            untyped_next: startup,
            header: [0; 5],
            have: 0,
            remaining: 0,
            tag: 0,
            len: 0,
            body: Vec::new(),
            cut: false,
            lost: false,
        }
    }

    /// The next message is untyped (a startup message after the server
    /// declined SSL).
    pub fn expect_untyped(&mut self) {
        self.untyped_next = true;
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Between messages.
    pub fn at_boundary(&self) -> bool {
        self.have == 0
    }

    pub fn reset(&mut self) {
        self.have = 0;
        self.remaining = 0;
        self.lost = false;
    }

    fn header_len(&self) -> usize {
        if self.untyped_next { 4 } else { 5 }
    }

    fn fail(&mut self, emit: &mut dyn FnMut(Event<'_>)) {
        self.lost = true;
        emit(Event::Invalid);
    }

    pub fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(Event<'_>)) {
        while !data.is_empty() && !self.lost {
            let hl = self.header_len();
            if self.have < hl {
                let n = (hl - self.have).min(data.len());
                self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                data = &data[n..];
                if self.have == hl && !self.start_body() {
                    return self.fail(emit);
                }
                if self.have == hl && self.remaining == 0 {
                    self.done(emit);
                }
                continue;
            }
            let n = (self.remaining as usize).min(data.len());
            let room = MAX_KEPT.saturating_sub(self.body.len());
            self.body.extend_from_slice(&data[..n.min(room)]);
            self.cut |= n > room;
            self.remaining -= n as u32;
            data = &data[n..];
            if self.remaining == 0 {
                self.done(emit);
            }
        }
    }

    /// `len` bytes not captured: only a body can be skipped.
    pub fn gap(&mut self, len: u64, emit: &mut dyn FnMut(Event<'_>)) {
        if self.lost || len == 0 {
            return;
        }
        if self.have == self.header_len() && len <= self.remaining as u64 {
            self.remaining -= len as u32;
            self.cut = true;
            if self.remaining == 0 {
                self.done(emit);
            }
        } else {
            self.fail(emit);
        }
    }

    /// The header is complete: check it and expect its body.
    fn start_body(&mut self) -> bool {
        let (tag, len) = if self.untyped_next {
            (0, u32::from_be_bytes([self.header[0], self.header[1], self.header[2], self.header[3]]))
        } else {
            (self.header[0], u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]))
        };
        let min = if tag == 0 { 8 } else { 4 };
        let valid_tag = self.untyped_next || tag.is_ascii_alphanumeric();
        if len < min || len > MAX_LEN || !valid_tag {
            return false;
        }
        self.tag = tag;
        self.len = len - 4;
        self.remaining = len - 4;
        self.body.clear();
        self.cut = false;
        true
    }

    fn done(&mut self, emit: &mut dyn FnMut(Event<'_>)) {
        self.have = 0;
        self.untyped_next = false;
        emit(Event::Message(Message { tag: self.tag, len: self.len, body: &self.body, cut: self.cut }));
    }
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// A NUL-terminated string at the start of `b`, and what follows it.
pub fn cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((&b[..end], &b[end + 1..]))
}

/// `Parse`: (statement name, query text).
pub fn parse_message(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (name, rest) = cstr(body)?;
    // The query may be cut short by the capture: take what there is.
    let query = cstr(rest).map_or(rest, |(q, _)| q);
    Some((name, query))
}

/// `Bind`: (portal, statement name).
pub fn bind_message(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (portal, rest) = cstr(body)?;
    let (stmt, _) = cstr(rest)?;
    Some((portal, stmt))
}

/// `Close` and `Describe`: (`S`tatement or `P`ortal, name).
pub fn target_message(body: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = body.split_first()?;
    let (name, _) = cstr(rest)?;
    matches!(kind, b'S' | b'P').then_some((kind, name))
}

/// The fields of an `ErrorResponse` that spans report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServerError<'a> {
    /// `C`: the SQLSTATE.
    pub code: &'a [u8],
    /// `M`: the primary message.
    pub message: &'a [u8],
}

/// Reads an `ErrorResponse` body.
pub fn error_fields(body: &[u8]) -> ServerError<'_> {
    let mut out = ServerError::default();
    let mut rest = body;
    while let Some((&field, r)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let Some((value, r)) = cstr(r) else { break };
        match field {
            b'C' => out.code = value,
            b'M' => out.message = value,
            _ => {}
        }
        rest = r;
    }
    out
}

/// The database a startup message's body names: its `database`
/// parameter, else its `user` (the server's default); empty if neither.
pub fn startup_database(body: &[u8]) -> &str {
    let mut params = body.get(4..).unwrap_or_default();
    let (mut database, mut user) = (None, None);
    while let Some((name, rest)) = cstr(params) {
        let Some((value, rest)) = cstr(rest) else { break };
        match name {
            b"database" => database = Some(value),
            b"user" => user = Some(value),
            _ => {}
        }
        params = rest;
    }
    database.or(user).and_then(|v| std::str::from_utf8(v).ok()).unwrap_or_default()
}

/// Whether `data` starts like a client's first message on a connection: a
/// version 3 startup message (whose first parameter is a name), or an SSL
/// or GSS encryption request. `None`: too few bytes to tell.
pub fn looks_like_startup(data: &[u8]) -> Option<bool> {
    // The length comes first: a startup message is 9 to 10,000 bytes, a
    // request 8; anything else is not worth waiting for.
    let plausible = |len: u32| (8..=10_000).contains(&len);
    let (Some(len), Some(code)) = (be32(data), data.get(4..8).and_then(be32)) else {
        return match be32(data) {
            Some(len) if !plausible(len) => Some(false),
            _ => None,
        };
    };
    match code {
        SSL_REQUEST | GSS_REQUEST => Some(len == 8),
        PROTOCOL_3 => {
            if !(9..=10_000).contains(&len) {
                return Some(false);
            }
            // The first parameter name (`user`, `database`...).
            let params = &data[8..];
            match params.iter().position(|&c| c == 0) {
                Some(0) => Some(false),
                Some(n) => Some(params[..n].iter().all(|&c| c.is_ascii_lowercase() || c == b'_')),
                None if params.len() < 32 => {
                    if params.iter().all(|&c| c.is_ascii_lowercase() || c == b'_') {
                        None
                    } else {
                        Some(false)
                    }
                }
                None => Some(false),
            }
        }
        _ => Some(false),
    }
}

#[cfg(test)]
mod tests;
