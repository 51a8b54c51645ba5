//! A decoded kernel event: the fixed header plus borrowed payload.

use std::net::{IpAddr, Ipv6Addr};

use crate::ebpf::abi::{self, ConnTuple, EventHdr};

pub(crate) struct Event<'a> {
    pub(crate) hdr: EventHdr,
    /// First `hdr.captured` bytes of what the syscall moved.
    pub(crate) data: &'a [u8],
    /// Last bytes of the buffer when the middle was not captured.
    pub(crate) tail: &'a [u8],
}

impl<'a> Event<'a> {
    /// Decodes a ring-buffer record; `None` if it is malformed.
    pub(crate) fn decode(record: &'a [u8]) -> Option<Event<'a>> {
        let hdr = EventHdr::read(record)?;
        let end = EventHdr::SIZE.checked_add(hdr.captured as usize)?;
        let data = record.get(EventHdr::SIZE..end)?;
        let tail_len = (hdr.tail_len as usize).min(abi::TAIL_LEN);
        // The header is a copy, so the tail is sliced from the record itself.
        let tail_off = std::mem::offset_of!(EventHdr, tail);
        let tail = record.get(tail_off..tail_off + tail_len)?;
        Some(Event { hdr, data, tail })
    }

    pub(crate) fn is_send(&self) -> bool {
        self.hdr.dir == abi::DIR_SEND
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.hdr.flags & flag != 0
    }

    /// Bytes the syscall moved that are not in `data`.
    pub(crate) fn missing(&self) -> u64 {
        self.hdr.bytes.saturating_sub(self.data.len() as u64)
    }
}

/// Local and remote address of a connection tuple.
pub(crate) fn endpoints(t: &ConnTuple) -> ((IpAddr, u16), (IpAddr, u16)) {
    ((to_ip(t.laddr), t.lport), (to_ip(t.raddr), t.rport))
}

fn to_ip(raw: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(raw);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hdr: EventHdr, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; EventHdr::SIZE];
        // SAFETY: writing a POD header into a buffer of exactly its size.
        unsafe { std::ptr::write_unaligned(out.as_mut_ptr() as *mut EventHdr, hdr) };
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn decodes_payload_and_tail() {
        let mut h = EventHdr { captured: 3, bytes: 10, tail_len: 2, ..Default::default() };
        h.tail[..2].copy_from_slice(b"yz");
        let rec = record(h, b"abc");
        let ev = Event::decode(&rec).unwrap();
        assert_eq!(ev.data, b"abc");
        assert_eq!(ev.tail, b"yz");
        assert_eq!(ev.missing(), 7);
    }

    #[test]
    fn rejects_short_or_lying_records() {
        assert!(Event::decode(&[0u8; 10]).is_none());
        let h = EventHdr { captured: 100, ..Default::default() };
        assert!(Event::decode(&record(h, b"short")).is_none());
    }

    #[test]
    fn maps_v4_mapped_addresses_to_v4() {
        let mut t = ConnTuple::default();
        t.laddr[10] = 0xff;
        t.laddr[11] = 0xff;
        t.laddr[12..].copy_from_slice(&[127, 0, 0, 1]);
        t.lport = 80;
        let ((l, lp), _) = endpoints(&t);
        assert_eq!(l.to_string(), "127.0.0.1");
        assert_eq!(lp, 80);
    }
}
