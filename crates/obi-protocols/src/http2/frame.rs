//! HTTP/2 frame headers (RFC 9113 §4.1).

/// Length of a frame header on the wire.
pub const HEADER_LEN: usize = 9;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (24 bits).
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    /// Stream identifier (the reserved top bit cleared).
    pub stream: u32,
}

impl FrameHeader {
    /// Parses the 9-byte header at the start of `b`.
    pub fn parse(b: &[u8]) -> Option<FrameHeader> {
        let b: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Frames whose payload is (part of) an HPACK header block.
    pub fn carries_header_block(&self) -> bool {
        matches!(self.kind, HEADERS | PUSH_PROMISE | CONTINUATION)
    }

    /// Encodes the header (tests and fuzzing build wire data with it).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let l = self.len.to_be_bytes();
        let s = (self.stream & 0x7fff_ffff).to_be_bytes();
        [l[1], l[2], l[3], self.kind, self.flags, s[0], s[1], s[2], s[3]]
    }
}

/// The header-block fragment inside a HEADERS or PUSH_PROMISE payload:
/// strips the pad length, priority fields or promised stream id, and padding.
pub fn header_block_fragment<'a>(hdr: &FrameHeader, payload: &'a [u8]) -> Option<&'a [u8]> {
    let mut start = 0usize;
    let mut end = payload.len();
    if hdr.kind != CONTINUATION && hdr.has(FLAG_PADDED) {
        let pad = *payload.first()? as usize;
        start = 1;
        end = end.checked_sub(pad)?;
    }
    if hdr.kind == HEADERS && hdr.has(FLAG_PRIORITY) {
        start += 5;
    }
    if hdr.kind == PUSH_PROMISE {
        start += 4;
    }
    payload.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes() {
        let raw = [0, 0, 5, HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 0x80, 0, 0, 3];
        let h = FrameHeader::parse(&raw).unwrap();
        assert_eq!(h, FrameHeader { len: 5, kind: HEADERS, flags: 5, stream: 3 });
        assert_eq!(h.encode()[5], 0, "reserved bit is not re-encoded");
        assert!(FrameHeader::parse(&raw[..8]).is_none());
    }

    #[test]
    fn strips_padding_and_priority() {
        let h = FrameHeader { len: 0, kind: HEADERS, flags: FLAG_PADDED | FLAG_PRIORITY, stream: 1 };
        let payload = [2, 0, 0, 0, 0, 16, 0xaa, 0xbb, 0, 0];
        assert_eq!(header_block_fragment(&h, &payload), Some(&[0xaa, 0xbb][..]));
        let bad = [9, 1];
        assert_eq!(header_block_fragment(&h, &bad), None);
        let c = FrameHeader { len: 0, kind: CONTINUATION, flags: FLAG_PADDED, stream: 1 };
        assert_eq!(header_block_fragment(&c, &[1, 2]), Some(&[1, 2][..]));
    }
}
