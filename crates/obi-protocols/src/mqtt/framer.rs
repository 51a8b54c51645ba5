//! Splitting one direction of a connection into packets: headers split
//! across reads, several packets per read, bounded body prefixes, and
//! uncaptured bytes inside packets of known length.

use super::{FixedHeader, Header, Malformed, fixed_header};

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
