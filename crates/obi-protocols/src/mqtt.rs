//! MQTT 3.1, 3.1.1 and 5.0 control packets: framing a byte stream into
//! packets (fixed header and remaining length), and decoding the variable
//! header of each packet type into borrowed fields.
//!
//! Framing and decoding are separate because a packet's layout depends on
//! the protocol version, which only the connection's CONNECT tells. The
//! framer keeps at most a bounded prefix of each packet's body (a PUBLISH
//! payload is counted, never kept), survives packets split over many reads
//! and many packets in one read, and stays in step across bytes the kernel
//! did not capture as long as they fall inside a packet whose length it knows.

use thiserror::Error;

/// The largest remaining length the four-byte encoding can carry.
pub const MAX_REMAINING: u32 = 268_435_455;

/// The protocol level a CONNECT announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `MQIsdp`, level 3.
    V3_1,
    /// `MQTT`, level 4.
    V3_1_1,
    /// `MQTT`, level 5.
    V5,
}

impl Version {
    pub fn has_properties(self) -> bool {
        self == Version::V5
    }

    /// As written in attributes: `3.1`, `3.1.1`, `5.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V3_1 => "3.1",
            Version::V3_1_1 => "3.1.1",
            Version::V5 => "5.0",
        }
    }
}

/// The control packet types (the high nibble of the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Connect = 1,
    Connack = 2,
    Publish = 3,
    Puback = 4,
    Pubrec = 5,
    Pubrel = 6,
    Pubcomp = 7,
    Subscribe = 8,
    Suback = 9,
    Unsubscribe = 10,
    Unsuback = 11,
    Pingreq = 12,
    Pingresp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    fn from_nibble(n: u8) -> Option<PacketType> {
        use PacketType::*;
        Some(match n {
            1 => Connect,
            2 => Connack,
            3 => Publish,
            4 => Puback,
            5 => Pubrec,
            6 => Pubrel,
            7 => Pubcomp,
            8 => Subscribe,
            9 => Suback,
            10 => Unsubscribe,
            11 => Unsuback,
            12 => Pingreq,
            13 => Pingresp,
            14 => Disconnect,
            15 => Auth,
            _ => return None,
        })
    }

    /// The flags the specification fixes for this type (`None`: PUBLISH, whose flags vary).
    fn required_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::Pubrel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }
}

/// Why bytes are not MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Malformed {
    #[error("reserved packet type 0")]
    ReservedType,
    #[error("flags {flags:#x} are not allowed for {kind:?}")]
    BadFlags { kind: PacketType, flags: u8 },
    #[error("remaining length longer than four bytes")]
    BadLength,
    #[error("PUBLISH with QoS 3")]
    BadQos,
    #[error("{0:?} ends before its fields do")]
    Short(PacketType),
    #[error("{0:?} has bytes after its fields")]
    Long(PacketType),
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("unknown protocol name or level in CONNECT")]
    BadProtocol,
    #[error("reserved bit set in {0:?}")]
    ReservedBit(PacketType),
    #[error("unknown property {0:#x}")]
    BadProperty(u8),
    #[error("{0:?} without topic filters")]
    NoFilters(PacketType),
    #[error("AUTH before MQTT 5")]
    AuthBeforeV5,
}

/// The first bytes of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    pub kind: PacketType,
    /// Low nibble of the first byte.
    pub flags: u8,
    /// Bytes of variable header and payload.
    pub remaining: u32,
    /// Bytes of the fixed header itself (2..=5).
    pub len: usize,
}

/// What [`fixed_header`] makes of a packet's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Complete(FixedHeader),
    /// Too few bytes to tell; nothing wrong so far.
    Incomplete,
    Malformed(Malformed),
}

/// Reads the fixed header at the start of `data`.
pub fn fixed_header(data: &[u8]) -> Header {
    let Some(&first) = data.first() else { return Header::Incomplete };
    let Some(kind) = PacketType::from_nibble(first >> 4) else { return Header::Malformed(Malformed::ReservedType) };
    let flags = first & 0x0f;
    match kind.required_flags() {
        Some(f) if f != flags => return Header::Malformed(Malformed::BadFlags { kind, flags }),
        None if (flags >> 1) & 3 == 3 => return Header::Malformed(Malformed::BadQos),
        _ => {}
    }
    match varint(&data[1..]) {
        Ok(Some((remaining, n))) => Header::Complete(FixedHeader { kind, flags, remaining, len: 1 + n }),
        Ok(None) => Header::Incomplete,
        Err(e) => Header::Malformed(e),
    }
}

/// A variable byte integer: `Ok(None)` when more bytes are needed.
fn varint(data: &[u8]) -> Result<Option<(u32, usize)>, Malformed> {
    let mut value = 0u32;
    for i in 0..4 {
        let Some(&b) = data.get(i) else { return Ok(None) };
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err(Malformed::BadLength)
}

/// Whether `data` starts with a CONNECT: `Some(true)` yes, `Some(false)`
/// no, `None` too few bytes to tell. Strict (protocol name and level), so
/// that other protocols' bytes are not taken for MQTT.
pub fn looks_like_connect(data: &[u8]) -> Option<bool> {
    if data.is_empty() {
        return None;
    }
    if data[0] != 0x10 {
        return Some(false);
    }
    let (remaining, n) = match varint(&data[1..]) {
        Ok(Some(v)) => v,
        Ok(None) => return None,
        Err(_) => return Some(false),
    };
    let body = &data[1 + n..];
    // Protocol name, level and flags: 2 + 4 + 1 + 1 (MQTT) or 2 + 6 + 1 + 1 (MQIsdp).
    let want = if body.get(1) == Some(&6) { 10 } else { 8 };
    if (remaining as usize) < want + 2 {
        return Some(false);
    }
    if body.len() < want {
        // Compare what is there so a mismatch says no early.
        let prefix_ok = b"\x00\x04MQTT".starts_with(&body[..body.len().min(6)])
            || b"\x00\x06MQIsdp".starts_with(&body[..body.len().min(8)]);
        return if prefix_ok { None } else { Some(false) };
    }
    Some(protocol_version(&body[..want - 1]).is_some() && body[want - 1] & 1 == 0)
}

/// Whether `data` is the body of a CONNECT without its fixed header (a
/// reader that reads the fixed header separately, as Mosquitto does).
pub fn looks_like_connect_body(data: &[u8]) -> bool {
    let want = if data.get(1) == Some(&6) { 10 } else { 8 };
    data.len() >= want + 2 && protocol_version(&data[..want - 1]).is_some() && data[want - 1] & 1 == 0
}

/// Whether `data` is exactly a fixed header's first byte of a CONNECT, or
/// exactly one remaining-length integer: what a reader that reads the
/// fixed header piecewise gets before the CONNECT body.
pub fn is_connect_header_piece(data: &[u8]) -> bool {
    data == [0x10] || matches!(varint(data), Ok(Some((_, n))) if n == data.len())
}

/// The version a CONNECT's protocol name and level announce.
fn protocol_version(name_and_level: &[u8]) -> Option<Version> {
    match name_and_level {
        b"\x00\x04MQTT\x04" => Some(Version::V3_1_1),
        b"\x00\x04MQTT\x05" => Some(Version::V5),
        b"\x00\x06MQIsdp\x03" => Some(Version::V3_1),
        _ => None,
    }
}

/// A decoded control packet; strings borrow from the bytes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Connect(Connect<'a>),
    Connack(Connack<'a>),
    Publish(Publish<'a>),
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    Ack(PacketType, Ack),
    Subscribe(Subscribe<'a>),
    /// SUBACK and UNSUBACK.
    SubAck(PacketType, SubAck),
    Unsubscribe(Subscribe<'a>),
    Pingreq,
    Pingresp,
    Disconnect {
        reason: u8,
    },
    Auth {
        reason: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    pub version: Version,
    /// Empty when the client sent none or it was not captured.
    pub client_id: &'a str,
    pub clean_start: bool,
    pub keep_alive: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connack<'a> {
    pub session_present: bool,
    /// The return code (3.1.x) or reason code (5.0); 0 is success.
    pub reason: u8,
    /// MQTT 5: the client id the broker assigned to a client that sent none.
    pub assigned_client_id: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    /// Empty in MQTT 5 when a topic alias stands for it.
    pub topic: &'a str,
    /// Present for QoS 1 and 2.
    pub packet_id: Option<u16>,
    /// MQTT 5 topic alias.
    pub topic_alias: Option<u16>,
    /// Value of a `traceparent` user property (MQTT 5), if one was captured.
    pub traceparent: Option<&'a str>,
    /// Bytes of application payload.
    pub payload_len: u32,
    /// The part of the payload that was captured and kept.
    pub payload: &'a [u8],
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub packet_id: u16,
    /// 0 (success) unless MQTT 5 sent another.
    pub reason: u8,
}

/// SUBSCRIBE or UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe<'a> {
    pub packet_id: u16,
    /// The first topic filter.
    pub first_filter: &'a str,
    /// Topic filters in the packet (as far as captured).
    pub filters: u16,
    /// SUBSCRIBE: the highest QoS asked for.
    pub max_qos: u8,
}

/// SUBACK or UNSUBACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: u16,
    /// Reason codes in the packet (UNSUBACK before 5.0 has none).
    pub reasons: u16,
    /// The first reason code that is a failure (>= 0x80), if any.
    pub first_failure: Option<u8>,
    /// SUBACK: the highest QoS granted.
    pub max_granted_qos: u8,
}

/// Why a packet could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Not valid MQTT: the connection cannot be trusted any more.
    #[error("malformed packet: {0}")]
    Malformed(#[from] Malformed),
    /// The fields needed lie beyond the bytes captured.
    #[error("packet fields beyond the bytes captured")]
    Truncated,
}

/// A cursor over a packet body that tells running out of captured bytes
/// (`Truncated`) from a packet that is too short (`Malformed`).
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// The whole body, of which `data` may be a prefix.
    body_len: usize,
    kind: PacketType,
}

impl<'a> Reader<'a> {
    fn short(&self, need: usize) -> DecodeError {
        if self.pos + need > self.body_len {
            DecodeError::Malformed(Malformed::Short(self.kind))
        } else {
            DecodeError::Truncated
        }
    }

    fn left(&self) -> usize {
        self.body_len.saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.data.get(self.pos..self.pos + n) {
            Some(b) if self.pos + n <= self.body_len => {
                self.pos += n;
                Ok(b)
            }
            _ => Err(self.short(n)),
        }
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()? as usize;
        self.bytes(n)
    }

    fn string(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.binary()?;
        std::str::from_utf8(b).map_err(|_| Malformed::NotUtf8.into())
    }

    fn varint(&mut self) -> Result<u32, DecodeError> {
        let avail = &self.data[self.pos.min(self.data.len())..];
        match varint(avail)? {
            Some((v, n)) if self.pos + n <= self.body_len => {
                self.pos += n;
                Ok(v)
            }
            _ => Err(self.short(avail.len() + 1)),
        }
    }

    /// MQTT 5 properties: a length, then that many bytes, handed to `each`.
    /// Properties beyond the capture are skipped (their length is known),
    /// so the fields after them stay readable.
    fn properties(&mut self, mut each: impl FnMut(Property<'a>)) -> Result<(), DecodeError> {
        let len = self.varint()? as usize;
        if len > self.left() {
            return Err(Malformed::Short(self.kind).into());
        }
        let end = self.pos + len;
        let mut props = Reader { data: self.data, pos: self.pos, body_len: end, kind: self.kind };
        while props.pos < end {
            match props.property() {
                Ok(p) => each(p),
                Err(DecodeError::Truncated) => break,
                Err(e) => return Err(e),
            }
        }
        self.pos = end;
        Ok(())
    }

    fn property(&mut self) -> Result<Property<'a>, DecodeError> {
        let id = self.u8()?;
        Ok(match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => {
                self.u8()?;
                Property::Other
            }
            0x13 | 0x21 | 0x22 => {
                self.u16()?;
                Property::Other
            }
            0x23 => Property::TopicAlias(self.u16()?),
            0x02 | 0x11 | 0x18 | 0x27 => {
                self.bytes(4)?;
                Property::Other
            }
            0x0b => {
                self.varint()?;
                Property::Other
            }
            0x12 => Property::AssignedClientId(self.string()?),
            0x03 | 0x08 | 0x15 | 0x1a | 0x1c | 0x1f => {
                self.string()?;
                Property::Other
            }
            0x09 | 0x16 => {
                self.binary()?;
                Property::Other
            }
            0x26 => {
                let key = self.string()?;
                let value = self.string()?;
                Property::User(key, value)
            }
            other => return Err(Malformed::BadProperty(other).into()),
        })
    }

    /// The body must end here.
    fn end(&self) -> Result<(), DecodeError> {
        if self.pos == self.body_len { Ok(()) } else { Err(Malformed::Long(self.kind).into()) }
    }
}

/// The MQTT 5 properties this crate's callers use.
#[derive(Debug, Clone, Copy)]
enum Property<'a> {
    TopicAlias(u16),
    AssignedClientId(&'a str),
    User(&'a str, &'a str),
    Other,
}

/// Decodes a packet whose fixed header is `header` from its body, of which
/// `body` may be only a prefix (the rest was not kept or not captured).
/// `version` is the connection's (from its CONNECT; CONNECT itself says its own).
pub fn decode<'a>(header: &FixedHeader, body: &'a [u8], version: Version) -> Result<Packet<'a>, DecodeError> {
    let kind = header.kind;
    let mut r = Reader { data: body, pos: 0, body_len: header.remaining as usize, kind };
    let v5 = version.has_properties();
    match kind {
        PacketType::Connect => decode_connect(&mut r).map(Packet::Connect),
        PacketType::Connack => {
            let flags = r.u8()?;
            if flags & 0xfe != 0 {
                return Err(Malformed::ReservedBit(kind).into());
            }
            let reason = r.u8()?;
            let mut assigned_client_id = None;
            if v5 {
                r.properties(|p| {
                    if let Property::AssignedClientId(id) = p {
                        assigned_client_id = Some(id);
                    }
                })?;
            }
            r.end()?;
            Ok(Packet::Connack(Connack { session_present: flags & 1 == 1, reason, assigned_client_id }))
        }
        PacketType::Publish => decode_publish(header, &mut r, v5).map(Packet::Publish),
        PacketType::Puback | PacketType::Pubrec | PacketType::Pubrel | PacketType::Pubcomp => {
            let packet_id = r.u16()?;
            let mut reason = 0;
            if v5 && r.left() > 0 {
                reason = r.u8()?;
                if r.left() > 0 {
                    r.properties(|_| {})?;
                }
            }
            r.end()?;
            Ok(Packet::Ack(kind, Ack { packet_id, reason }))
        }
        PacketType::Subscribe | PacketType::Unsubscribe => {
            let packet_id = r.u16()?;
            if v5 {
                r.properties(|_| {})?;
            }
            let mut sub = Subscribe { packet_id, first_filter: "", filters: 0, max_qos: 0 };
            while r.left() > 0 {
                let filter = match r.string() {
                    Ok(f) => f,
                    // Filters after the first may lie beyond the capture.
                    Err(DecodeError::Truncated) if sub.filters > 0 => break,
                    Err(e) => return Err(e),
                };
                if kind == PacketType::Subscribe {
                    match r.u8() {
                        Ok(options) => sub.max_qos = sub.max_qos.max(options & 3),
                        Err(DecodeError::Truncated) if sub.filters > 0 => break,
                        Err(e) => return Err(e),
                    }
                }
                if sub.filters == 0 {
                    sub.first_filter = filter;
                }
                sub.filters = sub.filters.saturating_add(1);
            }
            if sub.filters == 0 {
                return Err(Malformed::NoFilters(kind).into());
            }
            Ok(if kind == PacketType::Subscribe { Packet::Subscribe(sub) } else { Packet::Unsubscribe(sub) })
        }
        PacketType::Suback | PacketType::Unsuback => {
            let packet_id = r.u16()?;
            if v5 {
                r.properties(|_| {})?;
            }
            let mut ack = SubAck { packet_id, reasons: 0, first_failure: None, max_granted_qos: 0 };
            while r.left() > 0 {
                let Ok(code) = r.u8() else { break };
                ack.reasons = ack.reasons.saturating_add(1);
                if code >= 0x80 {
                    ack.first_failure = ack.first_failure.or(Some(code));
                } else if kind == PacketType::Suback {
                    ack.max_granted_qos = ack.max_granted_qos.max(code);
                }
            }
            Ok(Packet::SubAck(kind, ack))
        }
        PacketType::Pingreq | PacketType::Pingresp => {
            r.end()?;
            Ok(if kind == PacketType::Pingreq { Packet::Pingreq } else { Packet::Pingresp })
        }
        PacketType::Disconnect | PacketType::Auth => {
            if kind == PacketType::Auth && !v5 {
                return Err(Malformed::AuthBeforeV5.into());
            }
            let mut reason = 0;
            if v5 && r.left() > 0 {
                reason = r.u8()?;
                if r.left() > 0 {
                    r.properties(|_| {})?;
                }
            }
            r.end()?;
            Ok(if kind == PacketType::Auth { Packet::Auth { reason } } else { Packet::Disconnect { reason } })
        }
    }
}

fn decode_connect<'a>(r: &mut Reader<'a>) -> Result<Connect<'a>, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    let version = match (name, level) {
        (b"MQTT", 4) => Version::V3_1_1,
        (b"MQTT", 5) => Version::V5,
        (b"MQIsdp", 3) => Version::V3_1,
        _ => return Err(Malformed::BadProtocol.into()),
    };
    let flags = r.u8()?;
    if flags & 1 != 0 {
        return Err(Malformed::ReservedBit(PacketType::Connect).into());
    }
    let keep_alive = r.u16()?;
    if version.has_properties() {
        r.properties(|_| {})?;
    }
    // The version matters to every later packet: a client id beyond the
    // capture leaves only the id unknown.
    let client_id = match r.string() {
        Err(DecodeError::Truncated) => "",
        other => other?,
    };
    Ok(Connect { version, client_id, clean_start: flags & 2 != 0, keep_alive })
}

fn decode_publish<'a>(header: &FixedHeader, r: &mut Reader<'a>, v5: bool) -> Result<Publish<'a>, DecodeError> {
    let qos = (header.flags >> 1) & 3;
    let topic = r.string()?;
    let packet_id = if qos > 0 { Some(r.u16()?) } else { None };
    let mut topic_alias = None;
    let mut traceparent = None;
    if v5 {
        r.properties(|p| match p {
            Property::TopicAlias(a) => topic_alias = Some(a),
            Property::User(k, v) if k.eq_ignore_ascii_case("traceparent") => traceparent = Some(v),
            _ => {}
        })?;
    }
    Ok(Publish {
        dup: header.flags & 8 != 0,
        qos,
        retain: header.flags & 1 != 0,
        topic,
        packet_id,
        topic_alias,
        traceparent,
        payload_len: (r.body_len - r.pos) as u32,
        payload: r.data.get(r.pos..).unwrap_or_default(),
    })
}

/// One piece of a direction's byte stream.
#[derive(Debug, Clone, Copy)]
pub enum Segment<'a> {
    Bytes(&'a [u8]),
    /// This many bytes passed without being captured.
    Gap(u64),
}

/// A framed packet: its header and the part of its body that was kept.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub header: FixedHeader,
    /// The body, or a prefix of it when it was longer than the framer keeps
    /// or was not all captured.
    pub body: &'a [u8],
}

/// What the framer says about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Bytes at a packet boundary are not a valid fixed header.
    Malformed(Malformed),
    /// Uncaptured bytes covered a packet boundary: where the next packet
    /// starts is unknown.
    LostFraming,
}

/// Splits one direction of a connection into packets.
#[derive(Debug)]
pub struct Framer {
    /// Bytes of a fixed header split across reads.
    head: [u8; 5],
    head_len: usize,
    /// The packet whose body is arriving.
    current: Option<FixedHeader>,
    /// Body bytes still to come.
    left: u32,
    /// Kept prefix of the body.
    kept: Vec<u8>,
    /// A gap fell inside the kept window: keep nothing more.
    kept_closed: bool,
    max_keep: usize,
    failed: bool,
}

impl Framer {
    /// A framer that keeps at most `max_keep` bytes of each body.
    pub fn new(max_keep: usize) -> Self {
        Framer {
            head: [0; 5],
            head_len: 0,
            current: None,
            left: 0,
            kept: Vec::new(),
            kept_closed: false,
            max_keep,
            failed: false,
        }
    }

    /// Part of a packet has been seen and the rest is awaited.
    pub fn in_packet(&self) -> bool {
        self.head_len > 0 || self.current.is_some()
    }

    /// The next bytes are the body of a packet with this header (whose
    /// header bytes went by before framing started).
    pub fn resume_in_body(&mut self, header: FixedHeader) {
        self.head_len = 0;
        self.current = Some(header);
        self.left = header.remaining;
        self.kept.clear();
        self.kept_closed = false;
    }

    /// The framer met an error and ignores everything from then on.
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    /// Feeds a segment; each complete packet is handed to `out`. After an
    /// error, `out` gets it once and nothing more ever comes.
    pub fn feed(&mut self, seg: Segment<'_>, out: &mut dyn FnMut(Result<Frame<'_>, FrameError>)) {
        if self.failed {
            return;
        }
        match seg {
            Segment::Gap(len) => self.gap(len, out),
            Segment::Bytes(mut data) => {
                while !data.is_empty() && !self.failed {
                    data = match self.current {
                        Some(_) => self.body_bytes(data, out),
                        None => self.header_bytes(data, out),
                    };
                }
            }
        }
    }

    fn fail(&mut self, e: FrameError, out: &mut dyn FnMut(Result<Frame<'_>, FrameError>)) {
        self.failed = true;
        self.kept = Vec::new();
        out(Err(e));
    }

    fn gap(&mut self, len: u64, out: &mut dyn FnMut(Result<Frame<'_>, FrameError>)) {
        if len == 0 {
            return;
        }
        if self.current.is_none() || u64::from(self.left) < len {
            // A boundary inside the gap (or the gap starts at one): which
            // bytes after it start a packet cannot be known.
            return self.fail(FrameError::LostFraming, out);
        }
        self.left -= len as u32;
        self.kept_closed = true;
        if self.left == 0 {
            self.emit_current(out);
        }
    }

    /// Consumes fixed-header bytes; returns what is left of `data`.
    fn header_bytes<'d>(&mut self, data: &'d [u8], out: &mut dyn FnMut(Result<Frame<'_>, FrameError>)) -> &'d [u8] {
        // Fast path: a whole packet at the start of `data`, nothing buffered.
        if self.head_len == 0
            && let Header::Complete(h) = fixed_header(data)
            && data.len() >= h.len + h.remaining as usize
        {
            let end = h.len + h.remaining as usize;
            let body = &data[h.len..end];
            out(Ok(Frame { header: h, body: &body[..body.len().min(self.max_keep)] }));
            return &data[end..];
        }
        let take = (5 - self.head_len).min(data.len());
        self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
        let buffered = self.head_len + take;
        match fixed_header(&self.head[..buffered]) {
            Header::Incomplete => {
                self.head_len = buffered;
                &[]
            }
            Header::Malformed(m) => {
                self.fail(FrameError::Malformed(m), out);
                &[]
            }
            Header::Complete(h) => {
                // Bytes of `data` that belonged to the header.
                let used = h.len - self.head_len;
                self.head_len = 0;
                self.current = Some(h);
                self.left = h.remaining;
                self.kept.clear();
                self.kept_closed = false;
                if h.remaining == 0 {
                    self.emit_current(out);
                }
                &data[used..]
            }
        }
    }

    fn body_bytes<'d>(&mut self, data: &'d [u8], out: &mut dyn FnMut(Result<Frame<'_>, FrameError>)) -> &'d [u8] {
        let n = (self.left as usize).min(data.len());
        if !self.kept_closed {
            let room = self.max_keep.saturating_sub(self.kept.len());
            self.kept.extend_from_slice(&data[..n.min(room)]);
        }
        self.left -= n as u32;
        if self.left == 0 {
            self.emit_current(out);
        }
        &data[n..]
    }

    fn emit_current(&mut self, out: &mut dyn FnMut(Result<Frame<'_>, FrameError>)) {
        if let Some(header) = self.current.take() {
            out(Ok(Frame { header, body: &self.kept }));
        }
        self.kept.clear();
        self.kept_closed = false;
    }
}

#[cfg(test)]
mod tests;
