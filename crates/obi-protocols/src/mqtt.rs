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

mod decode;
mod framer;

pub use decode::{Ack, Connack, Connect, DecodeError, Packet, Publish, SubAck, Subscribe, decode};
pub use framer::{Frame, FrameError, Framer, Segment};

#[cfg(test)]
mod tests;
