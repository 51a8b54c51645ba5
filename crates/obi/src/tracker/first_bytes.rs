//! The first bytes of a connection, gathered over several reads or writes
//! until protocol detection can decide: a client writing its request line
//! a byte at a time (or a first write of 1–4 bytes) is still recognised,
//! and its request is parsed from its first byte.

use super::event::Event;
use crate::ebpf::abi::{self, EventHdr};

/// Bytes gathered at most: the largest capture of one syscall. A protocol
/// that cannot tell by then never will.
pub(crate) const MAX_FIRST_BYTES: usize = abi::MAX_CAPTURE;

/// One message's first bytes in one direction, contiguous, as one event:
/// the header of its first event (times, flags, trace context) with the
/// byte counts of all of them.
#[derive(Debug)]
pub(crate) struct FirstBytes {
    hdr: EventHdr,
    data: Vec<u8>,
    tail: Vec<u8>,
}

impl FirstBytes {
    /// Starts from an event detection could not decide on.
    pub(crate) fn new(ev: &Event<'_>) -> FirstBytes {
        FirstBytes { hdr: ev.hdr, data: ev.data.to_vec(), tail: ev.tail.to_vec() }
    }

    /// Adds the next event of the connection; false when it cannot follow
    /// these bytes (other direction, a gap in what was captured, too many
    /// bytes): the caller starts over from it.
    pub(crate) fn extend(&mut self, ev: &Event<'_>) -> bool {
        let contiguous = self.hdr.dir == ev.hdr.dir && self.hdr.bytes == self.data.len() as u64;
        if !contiguous || self.data.len() + ev.data.len() > MAX_FIRST_BYTES {
            return false;
        }
        self.data.extend_from_slice(ev.data);
        self.tail.clear();
        self.tail.extend_from_slice(ev.tail);
        self.hdr.bytes += ev.hdr.bytes;
        self.hdr.captured = self.data.len() as u16;
        self.hdr.ts_exit = ev.hdr.ts_exit;
        // Truncation is the last event's: earlier ones were whole.
        self.hdr.flags = (self.hdr.flags & !abi::F_TRUNCATED) | (ev.hdr.flags & abi::F_TRUNCATED);
        true
    }

    /// The gathered bytes as one event.
    pub(crate) fn event(&self) -> Event<'_> {
        Event { hdr: self.hdr, data: &self.data, tail: &self.tail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(dir: u8, data: &'a [u8], bytes: u64, ts: u64) -> Event<'a> {
        let hdr =
            EventHdr { dir, bytes, captured: data.len() as u16, ts_enter: ts, ts_exit: ts + 1, ..Default::default() };
        Event { hdr, data, tail: &[] }
    }

    #[test]
    fn joins_contiguous_bytes_of_one_direction_keeping_the_first_times() {
        let mut fb = FirstBytes::new(&ev(abi::DIR_RECV, b"G", 1, 10));
        assert!(fb.extend(&ev(abi::DIR_RECV, b"ET", 2, 20)));
        assert!(fb.extend(&ev(abi::DIR_RECV, b" / HTTP/1.1\r\n", 13, 30)));
        let e = fb.event();
        assert_eq!(e.data, b"GET / HTTP/1.1\r\n");
        assert_eq!((e.hdr.bytes, e.hdr.ts_enter, e.hdr.ts_exit), (16, 10, 31));
        assert_eq!(e.missing(), 0);
    }

    #[test]
    fn refuses_the_other_direction_a_gap_or_too_many_bytes() {
        let mut fb = FirstBytes::new(&ev(abi::DIR_RECV, b"GE", 2, 0));
        assert!(!fb.extend(&ev(abi::DIR_SEND, b"x", 1, 0)));
        let mut gap = FirstBytes::new(&ev(abi::DIR_RECV, b"GE", 9, 0));
        assert!(!gap.extend(&ev(abi::DIR_RECV, b"T", 1, 0)));
        let big = vec![b'a'; MAX_FIRST_BYTES];
        assert!(!fb.extend(&ev(abi::DIR_RECV, &big, big.len() as u64, 0)));
    }
}
