//! Decoding one control packet's variable header and payload into borrowed
//! fields, for the connection's protocol version.

use thiserror::Error;

use super::{FixedHeader, Malformed, PacketType, Version, varint};

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
