//! The MySQL client/server protocol (MariaDB speaks it too), decoded as a
//! stream of packets: bytes (and gaps the kernel did not capture) in, one
//! [`Packet`] per complete packet out, with the first bytes of its payload.
//!
//! A packet is a 3-byte little-endian payload length, a sequence id and
//! the payload; a payload of 2^24-1 bytes continues in the next packet and
//! the two are one [`Packet`]. A gap inside a payload is skipped; a gap in
//! a header loses the framing. The readers below decode the few payloads
//! spans need: the server greeting, the client's login, OK/ERR/EOF, a
//! prepared statement's answer.

/// Payload bytes kept per packet (the query text of `COM_QUERY`).
pub const MAX_KEPT: usize = 8192;
/// A physical packet this long continues in the next one.
const CONTINUED: u32 = 0xff_ffff;

pub const COM_QUIT: u8 = 0x01;
pub const COM_INIT_DB: u8 = 0x02;
pub const COM_QUERY: u8 = 0x03;
pub const COM_FIELD_LIST: u8 = 0x04;
pub const COM_REFRESH: u8 = 0x07;
pub const COM_STATISTICS: u8 = 0x09;
pub const COM_PROCESS_KILL: u8 = 0x0c;
pub const COM_DEBUG: u8 = 0x0d;
pub const COM_PING: u8 = 0x0e;
pub const COM_CHANGE_USER: u8 = 0x11;
pub const COM_STMT_PREPARE: u8 = 0x16;
pub const COM_STMT_EXECUTE: u8 = 0x17;
pub const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
pub const COM_STMT_CLOSE: u8 = 0x19;
pub const COM_STMT_RESET: u8 = 0x1a;
pub const COM_SET_OPTION: u8 = 0x1b;
pub const COM_STMT_FETCH: u8 = 0x1c;
pub const COM_RESET_CONNECTION: u8 = 0x1f;

/// Capability: the client names a database in its login.
pub const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
/// Capability: packets are compressed (not decoded here).
pub const CLIENT_COMPRESS: u32 = 0x20;
/// Capability: 4.1 protocol (SQLSTATE in ERR, status in OK/EOF).
pub const CLIENT_PROTOCOL_41: u32 = 0x200;
/// Capability: the connection switches to TLS after the login's first part.
pub const CLIENT_SSL: u32 = 0x800;
/// Capability: the auth response is one length byte and the bytes.
pub const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
/// Capability: the auth response is a length-encoded string.
pub const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x20_0000;
/// Capability: result sets end with an OK packet and send no EOF after
/// their column definitions.
pub const CLIENT_DEPRECATE_EOF: u32 = 0x100_0000;
/// Capability (MySQL 8.0.23+): `COM_QUERY` carries query attributes before its text.
pub const CLIENT_QUERY_ATTRIBUTES: u32 = 0x800_0000;

/// Status flag: another result set follows.
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
/// Status flag: a cursor was opened (rows come with `COM_STMT_FETCH`).
pub const SERVER_STATUS_CURSOR_EXISTS: u16 = 0x0040;

/// A complete (logical) packet.
#[derive(Debug)]
pub struct Packet<'a> {
    /// Sequence id of its first physical packet.
    pub seq: u8,
    /// Payload length (saturating at `u32::MAX`).
    pub len: u32,
    /// The first bytes of the payload (up to [`MAX_KEPT`]).
    pub payload: &'a [u8],
    /// Part of the payload was not kept (too long, or not captured).
    pub cut: bool,
}

#[derive(Debug)]
pub enum Event<'a> {
    Packet(Packet<'a>),
    /// A gap hid the framing: nothing more comes out until [`PacketStream::reset`].
    Invalid,
}

/// One direction of a connection.
#[derive(Debug, Default)]
pub struct PacketStream {
    header: [u8; 4],
    have: usize,
    /// Payload bytes still to come for the current physical packet.
    remaining: u32,
    /// The current physical packet is full: another continues the payload.
    continues: bool,
    /// The current logical packet has started (a continuation is expected).
    open: bool,
    seq: u8,
    len: u32,
    payload: Vec<u8>,
    cut: bool,
    lost: bool,
}

impl PacketStream {
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Between packets.
    pub fn at_boundary(&self) -> bool {
        self.have == 0 && !self.open
    }

    /// The sequence id of a packet whose header came and whose payload has
    /// not all come yet.
    pub fn started_seq(&self) -> Option<u8> {
        (self.open && !self.lost).then_some(self.seq)
    }

    pub fn reset(&mut self) {
        self.have = 0;
        self.remaining = 0;
        self.open = false;
        self.continues = false;
        self.lost = false;
    }

    fn fail(&mut self, emit: &mut dyn FnMut(Event<'_>)) {
        self.lost = true;
        emit(Event::Invalid);
    }

    pub fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(Event<'_>)) {
        while !data.is_empty() && !self.lost {
            if self.have < 4 {
                let n = (4 - self.have).min(data.len());
                self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                data = &data[n..];
                if self.have == 4 {
                    self.start_payload();
                    if self.remaining == 0 {
                        self.end_physical(emit);
                    }
                }
                continue;
            }
            let n = (self.remaining as usize).min(data.len());
            let room = MAX_KEPT.saturating_sub(self.payload.len());
            self.payload.extend_from_slice(&data[..n.min(room)]);
            self.cut |= n > room;
            self.remaining -= n as u32;
            data = &data[n..];
            if self.remaining == 0 {
                self.end_physical(emit);
            }
        }
    }

    /// `len` bytes not captured: only a payload can be skipped.
    pub fn gap(&mut self, len: u64, emit: &mut dyn FnMut(Event<'_>)) {
        if self.lost || len == 0 {
            return;
        }
        if self.have == 4 && len <= self.remaining as u64 {
            self.remaining -= len as u32;
            self.cut = true;
            if self.remaining == 0 {
                self.end_physical(emit);
            }
        } else {
            self.fail(emit);
        }
    }

    fn start_payload(&mut self) {
        let len = u32::from_le_bytes([self.header[0], self.header[1], self.header[2], 0]);
        if !self.open {
            self.open = true;
            self.seq = self.header[3];
            self.len = 0;
            self.payload.clear();
            self.cut = false;
        }
        self.len = self.len.saturating_add(len);
        self.remaining = len;
        self.continues = len == CONTINUED;
    }

    fn end_physical(&mut self, emit: &mut dyn FnMut(Event<'_>)) {
        self.have = 0;
        if self.continues {
            return;
        }
        self.open = false;
        emit(Event::Packet(Packet { seq: self.seq, len: self.len, payload: &self.payload, cut: self.cut }));
    }
}

/// A length-encoded integer at the start of `b`, and what follows it.
pub fn lenenc(b: &[u8]) -> Option<(u64, &[u8])> {
    let (&first, rest) = b.split_first()?;
    let n = match first {
        0..=0xfa => return Some((first.into(), rest)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = rest.get(..n)?;
    let mut v = [0u8; 8];
    v[..n].copy_from_slice(bytes);
    Some((u64::from_le_bytes(v), &rest[n..]))
}

fn le16(b: &[u8]) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(..2)?.try_into().ok()?))
}

fn le32(b: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?))
}

/// A NUL-terminated string at the start of `b`, and what follows it.
fn cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((&b[..end], &b[end + 1..]))
}

/// The server's greeting (protocol version 10).
#[derive(Debug, PartialEq, Eq)]
pub struct Greeting<'a> {
    pub server_version: &'a [u8],
    /// The server's capabilities (both halves; 0 for halves not sent).
    pub capabilities: u32,
}

/// Reads a greeting payload.
pub fn greeting(payload: &[u8]) -> Option<Greeting<'_>> {
    let (&10, rest) = payload.split_first()? else { return None };
    let (server_version, rest) = cstr(rest)?;
    // Connection id, 8 bytes of the scramble, a filler.
    let rest = rest.get(13..)?;
    let low = le16(rest).unwrap_or(0) as u32;
    // Charset, status, then the capabilities' upper half.
    let high = rest.get(5..).and_then(le16).unwrap_or(0) as u32;
    Some(Greeting { server_version, capabilities: low | high << 16 })
}

/// Whether `data` starts like a server greeting: sequence 0, protocol
/// version 10, a printable version string. `None`: too few bytes to tell.
pub fn looks_like_greeting(data: &[u8]) -> Option<bool> {
    let Some(head) = data.get(..5) else {
        return if data.len() >= 4 && data[3] != 0 { Some(false) } else { None };
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]);
    if head[3] != 0 || head[4] != 10 || !(20..=1024).contains(&len) {
        return Some(false);
    }
    let version = &data[5..data.len().min(4 + len as usize)];
    match version.iter().position(|&c| c == 0) {
        Some(0) => Some(false),
        Some(n) => Some(version[..n].iter().all(|c| c.is_ascii_graphic()) && n + 14 <= len as usize),
        None if version.len() < 64 && version.iter().all(|c| c.is_ascii_graphic()) => None,
        None => Some(false),
    }
}

/// Whether `data` is a greeting's payload without its header (clients
/// that read a packet's header and its payload separately): protocol
/// version 10, a version string that starts with a digit, and the fixed
/// fields after it. `None`: too few bytes to tell.
pub fn looks_like_greeting_payload(data: &[u8]) -> Option<bool> {
    let Some((&10, rest)) = data.split_first() else {
        return if data.is_empty() { None } else { Some(false) };
    };
    if rest.first().is_some_and(|c| !c.is_ascii_digit()) {
        return Some(false);
    }
    match rest.iter().position(|&c| c == 0) {
        // Connection id, scramble, filler, capabilities, charset, status,
        // capabilities, scramble length, 10 reserved bytes.
        Some(n) if n < 64 && rest[..n].iter().all(|c| c.is_ascii_graphic()) && rest[..n].contains(&b'.') => {
            let fixed = &rest[n + 1..];
            if fixed.len() >= 31 { Some(true) } else { None }
        }
        None if rest.len() < 64 && rest.iter().all(|c| c.is_ascii_graphic()) => None,
        _ => Some(false),
    }
}

/// Statements a client's first `COM_QUERY` or `COM_STMT_PREPARE` may
/// start with, when the connection was joined after its greeting.
const VERBS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "CREATE",
    "DROP",
    "ALTER",
    "SET",
    "SHOW",
    "BEGIN",
    "START",
    "COMMIT",
    "ROLLBACK",
    "CALL",
    "WITH",
    "USE",
    "EXPLAIN",
    "DESCRIBE",
    "TRUNCATE",
    "LOCK",
    "UNLOCK",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "SAVEPOINT",
    "RELEASE",
    "LOAD",
    "DO",
    "GRANT",
    "REVOKE",
    "FLUSH",
];

/// Whether `data` starts like a client command: sequence 0, `COM_QUERY`
/// or `COM_STMT_PREPARE`, and text that starts with an SQL verb. `None`:
/// too few bytes to tell.
pub fn looks_like_command(data: &[u8]) -> Option<bool> {
    let Some(head) = data.get(..5) else {
        return if data.len() >= 4 && data[3] != 0 { Some(false) } else { None };
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    if head[3] != 0 || !matches!(head[4], COM_QUERY | COM_STMT_PREPARE) || len < 3 {
        return Some(false);
    }
    let text = &data[5..data.len().min(4 + len)];
    let text = text.trim_ascii_start();
    let word_len = text.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    if word_len == text.len() && text.len() < 12 && 4 + len > data.len() {
        return None;
    }
    let word = &text[..word_len];
    Some(VERBS.iter().any(|v| v.as_bytes().eq_ignore_ascii_case(word)))
}

/// Whether `data` starts like the login a client sends once TLS is up
/// (what the OpenSSL probes see first): sequence 2, 4.1 and TLS
/// capabilities, and the reserved bytes zero. `None`: too few bytes to tell.
pub fn looks_like_tls_login(data: &[u8]) -> Option<bool> {
    let Some(head) = data.get(..8) else {
        return if data.len() >= 4 && data[3] != 2 { Some(false) } else { None };
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]);
    let caps = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let needed = CLIENT_PROTOCOL_41 | CLIENT_SSL;
    if head[3] != 2 || !(34..=8192).contains(&len) || caps & needed != needed {
        return Some(false);
    }
    // Max packet size, charset, then 19 of the 23 reserved bytes (MariaDB
    // puts its own capabilities in the last 4).
    data.get(13..32).map(|reserved| reserved.iter().all(|&b| b == 0))
}

/// What the client's login (or its first part, before TLS) says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Login<'a> {
    pub capabilities: u32,
    /// Only the first part: the client asks for TLS, the rest comes encrypted.
    pub ssl_request: bool,
    /// The database it connects to, if it names one.
    pub database: Option<&'a [u8]>,
}

/// Reads a 4.1 login (handshake response); the password is skipped, never returned.
pub fn login(payload: &[u8]) -> Option<Login<'_>> {
    let capabilities = le32(payload)?;
    if capabilities & CLIENT_PROTOCOL_41 == 0 {
        return None;
    }
    // Max packet size, charset, 23 reserved bytes.
    let rest = payload.get(32..)?;
    if rest.is_empty() {
        return Some(Login { capabilities, ssl_request: capabilities & CLIENT_SSL != 0, database: None });
    }
    let (_user, rest) = cstr(rest)?;
    let rest = if capabilities & CLIENT_PLUGIN_AUTH_LENENC != 0 {
        let (n, rest) = lenenc(rest)?;
        rest.get(usize::try_from(n).ok()?..)?
    } else if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let (&n, rest) = rest.split_first()?;
        rest.get(n as usize..)?
    } else {
        cstr(rest)?.1
    };
    let database = if capabilities & CLIENT_CONNECT_WITH_DB != 0 { cstr(rest).map(|(d, _)| d) } else { None };
    Some(Login { capabilities, ssl_request: false, database })
}

/// The text of a `COM_QUERY` body (after the command byte) sent with
/// query attributes: `None` when attributes are set (their values' sizes
/// depend on their types: the text's start is not worth guessing).
pub fn query_text_after_attributes(body: &[u8]) -> Option<&[u8]> {
    let (count, rest) = lenenc(body)?;
    let (_sets, rest) = lenenc(rest)?;
    (count == 0).then_some(rest)
}

/// An ERR packet's fields.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerError<'a> {
    pub code: u16,
    /// The SQLSTATE (empty before protocol 4.1).
    pub state: &'a [u8],
    pub message: &'a [u8],
}

/// Reads an ERR packet (`0xff`).
pub fn error(payload: &[u8]) -> Option<ServerError<'_>> {
    let (&0xff, rest) = payload.split_first()? else { return None };
    let code = le16(rest)?;
    let rest = &rest[2..];
    match rest.split_first() {
        Some((b'#', r)) if r.len() >= 5 => Some(ServerError { code, state: &r[..5], message: &r[5..] }),
        _ => Some(ServerError { code, state: b"", message: rest }),
    }
}

/// MariaDB's progress reports travel as ERR packets with this code.
pub const PROGRESS_REPORT: u16 = 0xffff;

/// Whether a packet of `len` bytes starting `payload` is an EOF packet
/// (an OK packet is never shorter than 7 bytes).
pub fn is_eof(payload: &[u8], len: u32) -> bool {
    payload.first() == Some(&0xfe) && len < 7
}

/// Whether a packet ends a result set: EOF, or an OK packet with the
/// `0xfe` header (a row starting with `0xfe` is at least 2^24 bytes).
pub fn is_terminator(payload: &[u8], len: u32) -> bool {
    payload.first() == Some(&0xfe) && len < CONTINUED
}

/// The status flags of an OK (`0x00`/`0xfe`) or EOF packet, if it has them.
pub fn status(payload: &[u8], len: u32) -> Option<u16> {
    if is_eof(payload, len) {
        return payload.get(3..).and_then(le16);
    }
    let (_, rest) = lenenc(payload.get(1..)?)?;
    let (_, rest) = lenenc(rest)?;
    le16(rest)
}

/// A `COM_STMT_PREPARE` answer's `OK` fields.
#[derive(Debug, PartialEq, Eq)]
pub struct Prepared {
    pub statement_id: u32,
    pub columns: u16,
    pub params: u16,
}

/// Reads a `COM_STMT_PREPARE` OK packet.
pub fn prepared(payload: &[u8]) -> Option<Prepared> {
    let (&0, rest) = payload.split_first()? else { return None };
    Some(Prepared { statement_id: le32(rest)?, columns: le16(rest.get(4..)?)?, params: le16(rest.get(6..)?)? })
}

/// A result set's first packet: its column count, and whether column
/// definitions follow (MariaDB may skip them for cached metadata).
pub fn column_count(payload: &[u8]) -> Option<(u64, bool)> {
    let (n, rest) = lenenc(payload)?;
    match rest {
        [] | [1] => Some((n, true)),
        [0] => Some((n, false)),
        _ => None,
    }
}

/// The statement id a `COM_STMT_EXECUTE`, `_CLOSE`, `_RESET`, `_FETCH`
/// or `_SEND_LONG_DATA` payload names.
pub fn statement_id(payload: &[u8]) -> Option<u32> {
    le32(payload.get(1..)?)
}

/// Whether `tail`, the last bytes of a read, ends with a packet that ends
/// a result set; its status flags if so.
pub fn ends_with_terminator(bytes: &[u8]) -> Option<u16> {
    // An EOF is 9 bytes, an OK with the 0xfe header usually 11.
    let tail = &bytes[bytes.len().saturating_sub(16)..];
    for plen in 5..=tail.len().saturating_sub(4) {
        let p = &tail[tail.len() - plen - 4..];
        let len = u32::from_le_bytes([p[0], p[1], p[2], 0]);
        let payload = &p[4..];
        if len as usize == plen && is_terminator(payload, len) && (plen == 5 || plen >= 7) {
            return status(payload, len);
        }
    }
    None
}

#[cfg(test)]
mod tests;
