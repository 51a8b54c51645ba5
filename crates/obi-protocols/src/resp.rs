//! RESP (the Redis serialization protocol, versions 2 and 3), decoded as a
//! stream: bytes (and gaps the kernel did not capture) in, one [`Frame`] per
//! complete top-level value out. A client's frames are its commands (arrays
//! of bulk strings), a server's are its replies and, in RESP3, its pushes.
//!
//! Nothing is buffered but the current header line and the first bytes of
//! the top-level value's direct elements (enough to name a command and
//! write its query text), so a 100 MB `SET` costs no memory. Values are
//! length-prefixed, so a gap inside a bulk payload is skipped without
//! losing the framing; a gap anywhere else loses it for good.

use memchr::memchr;

/// Longest header line (`+OK`, `-ERR message`, `$5`...) accepted.
const MAX_LINE: usize = 64 * 1024;
/// Deepest nesting of aggregates accepted.
const MAX_DEPTH: usize = 32;
/// Elements of the top-level value kept (a command and its first arguments).
pub const MAX_PARTS: usize = 16;
/// Bytes kept of each of them.
pub const MAX_PART_LEN: usize = 128;
/// Largest length or count accepted (RESP's own limit is 512 MB).
const MAX_COUNT: i64 = 1 << 32;

/// The type of a top-level value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `+OK`
    Simple,
    /// `-ERR ...`
    Error,
    /// `:1`
    Integer,
    /// `$3\r\nfoo`
    Bulk,
    /// `*2 ...` (a command, or an array reply)
    Array,
    /// `$-1`, `*-1`, RESP3 `_`
    Null,
    /// RESP3 `>`: out-of-band data (pub/sub messages, invalidations), not a reply.
    Push,
    /// RESP3 `!`: an error as a bulk string.
    BlobError,
    /// RESP3 `%`, `~`, `,`, `#`, `(`, `=`.
    Other,
}

impl Kind {
    pub fn is_error(self) -> bool {
        matches!(self, Kind::Error | Kind::BlobError)
    }
}

/// A complete top-level value. Its parts are the value itself when it is a
/// string, error or integer, else its direct string elements (the first
/// [`MAX_PARTS`], each cut at [`MAX_PART_LEN`] bytes).
#[derive(Debug)]
pub struct Frame<'a> {
    pub kind: Kind,
    /// Elements of a top-level aggregate (0 otherwise).
    pub len: u64,
    parts: &'a [Part],
    buf: &'a [u8],
}

#[derive(Debug, Clone, Copy, Default)]
struct Part {
    start: u32,
    end: u32,
    cut: bool,
}

impl<'a> Frame<'a> {
    /// Parts kept (at most [`MAX_PARTS`]).
    pub fn parts(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let buf = self.buf;
        self.parts.iter().map(move |p| &buf[p.start as usize..p.end as usize])
    }

    pub fn part(&self, i: usize) -> Option<&'a [u8]> {
        self.parts.get(i).map(|p| &self.buf[p.start as usize..p.end as usize])
    }

    /// Whether part `i` was cut short (longer than [`MAX_PART_LEN`], or not captured).
    pub fn part_cut(&self, i: usize) -> bool {
        self.parts.get(i).is_some_and(|p| p.cut)
    }

    /// The parts of a command: a top-level array whose first element is a string.
    pub fn is_command(&self) -> bool {
        self.kind == Kind::Array && !self.parts.is_empty() && !self.parts[0].cut
    }
}

/// What the decoder hands out.
#[derive(Debug)]
pub enum Event<'a> {
    Frame(Frame<'a>),
    /// The bytes are not RESP (or a gap hid the framing): nothing more comes
    /// out until [`RespStream::reset`].
    Invalid,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a header line.
    Line,
    /// Reading a bulk payload, then its CRLF.
    Bulk { payload: u64, crlf: u8 },
}

/// An open aggregate: how many elements it still expects.
#[derive(Debug, Clone, Copy)]
struct Level {
    remaining: u64,
    /// An RESP3 attribute (`|`): it decorates the next value and is not one.
    attribute: bool,
}

/// One direction of a RESP connection.
#[derive(Debug)]
pub struct RespStream {
    state: State,
    line: Vec<u8>,
    stack: Vec<Level>,
    lost: bool,
    /// The top-level value being decoded.
    kind: Option<Kind>,
    len: u64,
    parts: Vec<Part>,
    buf: Vec<u8>,
    /// The bulk being read is kept as a part.
    keeping: bool,
}

impl Default for RespStream {
    fn default() -> Self {
        Self::new()
    }
}

impl RespStream {
    pub fn new() -> Self {
        RespStream {
            state: State::Line,
            line: Vec::new(),
            stack: Vec::new(),
            lost: false,
            kind: None,
            len: 0,
            parts: Vec::with_capacity(MAX_PARTS),
            buf: Vec::new(),
            keeping: false,
        }
    }

    /// Forgets everything: the next byte starts a value.
    pub fn reset(&mut self) {
        self.state = State::Line;
        self.line.clear();
        self.stack.clear();
        self.lost = false;
        self.start_frame();
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Between values: nothing of a value has been read.
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Line) && self.line.is_empty() && self.stack.is_empty() && self.kind.is_none()
    }

    fn start_frame(&mut self) {
        self.kind = None;
        self.len = 0;
        self.parts.clear();
        self.buf.clear();
        self.keeping = false;
    }

    fn fail(&mut self, emit: &mut dyn FnMut(Event<'_>)) {
        self.lost = true;
        emit(Event::Invalid);
    }

    /// Decodes captured bytes.
    pub fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(Event<'_>)) {
        while !data.is_empty() && !self.lost {
            match self.state {
                State::Line => {
                    let (chunk, complete) = match memchr(b'\n', data) {
                        Some(i) => (&data[..=i], true),
                        None => (data, false),
                    };
                    data = &data[chunk.len()..];
                    if self.line.len() + chunk.len() > MAX_LINE {
                        return self.fail(emit);
                    }
                    self.line.extend_from_slice(chunk);
                    if complete {
                        self.on_line(emit);
                    }
                }
                State::Bulk { payload, crlf } if payload > 0 => {
                    let n = (payload.min(data.len() as u64)) as usize;
                    if self.keeping {
                        self.keep(&data[..n]);
                    }
                    data = &data[n..];
                    self.state = State::Bulk { payload: payload - n as u64, crlf };
                }
                State::Bulk { crlf, .. } => {
                    let expected = if crlf == 2 { b'\r' } else { b'\n' };
                    if data[0] != expected {
                        return self.fail(emit);
                    }
                    data = &data[1..];
                    if crlf == 2 {
                        self.state = State::Bulk { payload: 0, crlf: 1 };
                    } else {
                        self.state = State::Line;
                        self.keeping = false;
                        self.value_done(emit);
                    }
                }
            }
        }
    }

    /// `len` bytes the kernel did not capture. Only a bulk payload (and its
    /// CRLF) can be skipped; anywhere else the framing is lost.
    pub fn gap(&mut self, len: u64, emit: &mut dyn FnMut(Event<'_>)) {
        if self.lost || len == 0 {
            return;
        }
        match self.state {
            State::Bulk { payload, crlf } if len <= payload + crlf as u64 => {
                if self.keeping
                    && let Some(p) = self.parts.last_mut()
                {
                    p.cut = true;
                }
                let skipped_crlf = len.saturating_sub(payload);
                let crlf = crlf - skipped_crlf as u8;
                self.state = State::Bulk { payload: payload.saturating_sub(len), crlf };
                if crlf == 0 {
                    self.state = State::Line;
                    self.keeping = false;
                    self.value_done(emit);
                }
            }
            _ => self.fail(emit),
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let Some(p) = self.parts.last_mut() else { return };
        let room = MAX_PART_LEN - (p.end - p.start) as usize;
        let n = bytes.len().min(room);
        self.buf.extend_from_slice(&bytes[..n]);
        p.end += n as u32;
        if n < bytes.len() {
            p.cut = true;
        }
    }

    /// Whether a value starting now is a direct element of the top-level
    /// value (or the top-level value itself) and so is kept.
    fn keeps_next(&self) -> bool {
        let top_level = self.stack.is_empty() || (self.stack.len() == 1 && !self.stack[0].attribute);
        top_level && self.parts.len() < MAX_PARTS
    }

    fn begin_part(&mut self, content: &[u8], whole: bool) {
        let start = self.buf.len() as u32;
        self.parts.push(Part { start, end: start, cut: false });
        if whole {
            self.keep(content);
        }
    }

    fn on_line(&mut self, emit: &mut dyn FnMut(Event<'_>)) {
        let line = std::mem::take(&mut self.line);
        let ok = line.len() >= 3 && line.ends_with(b"\r\n");
        if !ok {
            self.line = line;
            return self.fail(emit);
        }
        let (ty, body) = (line[0], &line[1..line.len() - 2]);
        let at_top = self.stack.is_empty();
        let is_attr = ty == b'|';
        if at_top && !is_attr && self.kind.is_none() {
            self.kind = Some(match ty {
                b'+' => Kind::Simple,
                b'-' => Kind::Error,
                b':' => Kind::Integer,
                b'$' => Kind::Bulk,
                b'*' => Kind::Array,
                b'_' => Kind::Null,
                b'>' => Kind::Push,
                b'!' => Kind::BlobError,
                _ => Kind::Other,
            });
        }
        let keep = !is_attr && self.keeps_next();
        let result = match ty {
            b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => {
                if keep {
                    self.begin_part(body, true);
                }
                Ok(true)
            }
            b'$' | b'!' | b'=' => match parse_count(body) {
                Some(-1) if ty == b'$' => {
                    if at_top {
                        self.kind = Some(Kind::Null);
                    }
                    Ok(true)
                }
                Some(n) if n >= 0 => {
                    if keep {
                        self.begin_part(b"", false);
                        self.keeping = true;
                    }
                    self.state = State::Bulk { payload: n as u64, crlf: 2 };
                    Ok(false)
                }
                _ => Err(()),
            },
            b'*' | b'~' | b'>' | b'%' | b'|' => match parse_count(body) {
                Some(-1) if ty == b'*' => {
                    if at_top {
                        self.kind = Some(Kind::Null);
                    }
                    Ok(true)
                }
                Some(n) if n >= 0 => {
                    let n = if matches!(ty, b'%' | b'|') { n as u64 * 2 } else { n as u64 };
                    if at_top && !is_attr {
                        self.len = n;
                    }
                    if n == 0 {
                        Ok(!is_attr)
                    } else if self.stack.len() >= MAX_DEPTH {
                        Err(())
                    } else {
                        self.stack.push(Level { remaining: n, attribute: is_attr });
                        Ok(false)
                    }
                }
                _ => Err(()),
            },
            _ => Err(()),
        };
        self.line = line;
        self.line.clear();
        match result {
            Ok(true) => self.value_done(emit),
            Ok(false) => {}
            Err(()) => self.fail(emit),
        }
    }

    /// A value ended: close the aggregates it completes, and hand out the
    /// top-level value when it is complete.
    fn value_done(&mut self, emit: &mut dyn FnMut(Event<'_>)) {
        while let Some(top) = self.stack.last_mut() {
            top.remaining -= 1;
            if top.remaining > 0 {
                return;
            }
            let attribute = top.attribute;
            self.stack.pop();
            if attribute {
                // The attribute is complete; the value it decorates is next.
                return;
            }
        }
        let frame = Frame { kind: self.kind.unwrap_or(Kind::Other), len: self.len, parts: &self.parts, buf: &self.buf };
        emit(Event::Frame(frame));
        self.start_frame();
    }
}

fn parse_count(body: &[u8]) -> Option<i64> {
    let (neg, digits) = match body.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, body),
    };
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0i64, |n, &d| n * 10 + (d - b'0') as i64);
    if n > MAX_COUNT {
        return None;
    }
    Some(if neg { -n } else { n })
}

/// Whether `data` starts like a RESP command: `*<n>\r\n$<len>\r\n<NAME>`
/// with a name of letters (and `.`, `_`, `-` after the first, for module
/// commands such as `JSON.GET`). `None`: too few bytes to tell.
pub fn looks_like_command(data: &[u8]) -> Option<bool> {
    let mut i = 0;
    let n = match header(data, &mut i, b'*') {
        Header::Value(n) => n,
        Header::More => return None,
        Header::Bad => return Some(false),
    };
    if !(1..=1 << 20).contains(&n) {
        return Some(false);
    }
    let len = match header(data, &mut i, b'$') {
        Header::Value(n) => n,
        Header::More => return None,
        Header::Bad => return Some(false),
    };
    if !(1..=64).contains(&len) {
        return Some(false);
    }
    let name = &data[i..data.len().min(i + len as usize)];
    let ok =
        name.iter().enumerate().all(|(j, &b)| b.is_ascii_alphabetic() || (j > 0 && matches!(b, b'.' | b'_' | b'-')));
    if !ok {
        Some(false)
    } else if name.len() < len as usize {
        None
    } else {
        Some(true)
    }
}

enum Header {
    Value(i64),
    More,
    Bad,
}

/// Reads `<ty><digits>\r\n` at `*i`, moving `*i` past it.
fn header(data: &[u8], i: &mut usize, ty: u8) -> Header {
    let Some(&first) = data.get(*i) else { return Header::More };
    if first != ty {
        return Header::Bad;
    }
    let rest = &data[*i + 1..];
    let Some(cr) = rest.iter().position(|&b| !(b.is_ascii_digit() || b == b'-')) else {
        return if rest.len() <= 12 { Header::More } else { Header::Bad };
    };
    let Some(n) = parse_count(&rest[..cr]) else { return Header::Bad };
    match (rest[cr], rest.get(cr + 1)) {
        (b'\r', None) => Header::More,
        (b'\r', Some(b'\n')) => {
            *i += 1 + cr + 2;
            Header::Value(n)
        }
        _ => Header::Bad,
    }
}

/// Commands whose second word is a subcommand (`CONFIG GET`, `CLIENT SETNAME`).
const CONTAINERS: &[&[u8]] = &[
    b"ACL",
    b"CLIENT",
    b"CLUSTER",
    b"COMMAND",
    b"CONFIG",
    b"FUNCTION",
    b"LATENCY",
    b"MEMORY",
    b"MODULE",
    b"OBJECT",
    b"PUBSUB",
    b"SCRIPT",
    b"SLOWLOG",
    b"XGROUP",
    b"XINFO",
];

/// The command's name, upper-cased (`None` if the frame is not a command).
pub fn command_name(frame: &Frame<'_>) -> Option<String> {
    if !frame.is_command() {
        return None;
    }
    let name = frame.part(0)?;
    let ok = name.first().is_some_and(u8::is_ascii_alphabetic) && name.iter().all(u8::is_ascii_graphic);
    ok.then(|| String::from_utf8_lossy(name).to_ascii_uppercase())
}

/// A command as query text: its words separated by spaces. Arguments past
/// the first key are literals and shown as `?` unless `keep_literals`;
/// passwords (`AUTH`, `HELLO ... AUTH`, `MIGRATE ... AUTH`, `ACL SETUSER`
/// rules, `CONFIG SET requirepass`) are `?` always. Elements that were not
/// captured whole end in `...`, and a command with more elements than were
/// kept ends in ` ...`.
pub fn command_text(frame: &Frame<'_>, keep_literals: bool, out: &mut String) {
    let parts: Vec<&[u8]> = frame.parts().collect();
    let Some(&name) = parts.first() else { return };
    let is = |p: &[u8], w: &[u8]| p.eq_ignore_ascii_case(w);
    let container = CONTAINERS.iter().any(|c| is(name, c)) && parts.len() > 1;
    let first_arg = if container { 2 } else { 1 };
    let mut secret_from = usize::MAX;
    if is(name, b"AUTH") {
        secret_from = 1;
    } else if container && is(name, b"ACL") && is(parts[1], b"SETUSER") {
        secret_from = 3;
    } else if container && is(name, b"CONFIG") && is(parts[1], b"SET") {
        // CONFIG SET name value [name value...]: values of secret names.
        secret_from = 0;
    }
    for (i, &p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let after_auth = i >= 2
            && (is(name, b"HELLO") || is(name, b"MIGRATE"))
            && parts[i.saturating_sub(2)..i].iter().any(|w| is(w, b"AUTH") || is(w, b"AUTH2"))
            && !is(p, b"AUTH")
            && !is(p, b"AUTH2");
        let config_secret = secret_from == 0
            && i >= 3
            && i % 2 == 1
            && [&b"requirepass"[..], b"masterauth", b"masteruser"].iter().any(|w| is(parts[i - 1], w));
        let secret = (secret_from > 0 && i >= secret_from) || after_auth || config_secret;
        let literal = i > first_arg && !keep_literals;
        if i > 0 && (secret || literal) {
            out.push('?');
            continue;
        }
        out.push_str(&String::from_utf8_lossy(p));
        if frame.part_cut(i) {
            out.push_str("...");
        }
    }
    if frame.len > parts.len() as u64 {
        out.push_str(" ...");
    }
}

#[cfg(test)]
mod tests;
