//! Framing-only decoder for the chunked transfer coding (RFC 9112 §7.1).
//!
//! The decoder never copies body data: it only tracks where the body ends, so
//! it can run over captured bytes and skip over uncaptured ones while the skip
//! stays inside chunk data. It is lenient where real peers are (bare LF line
//! ends, whitespace before extensions) and strict elsewhere, so that losing
//! sync is noticed rather than guessed through.
//!
//! [`TerminatorScan`] is the fallback once sync is lost: it looks for the
//! last-chunk terminator `\r\n0\r\n\r\n` in whatever bytes are still captured.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// Longest chunk-size in hex digits: 16 digits fill a u64.
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkStatus {
    /// The body ended (last chunk and trailers consumed).
    Done,
    /// All input consumed; the body goes on.
    More,
    /// The byte at `consumed` cannot appear here: chunk framing is lost.
    Error,
}

/// Result of [`ChunkedDecoder::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkStep {
    /// Bytes of the input that belong to the body (up to the end, or the error).
    pub consumed: usize,
    pub status: ChunkStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Expecting the first hex digit of a chunk-size.
    #[default]
    SizeStart,
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size, before `;` or the line end.
    SizeWs {
        size: u64,
    },
    /// Inside chunk extensions: anything up to the line end.
    Ext {
        size: u64,
    },
    /// Saw CR of the size line.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    /// Expecting the CRLF after chunk data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    Trailer,
    /// Saw CR ending a trailer line; `last` when the line was empty.
    TrailerLf {
        last: bool,
    },
    Done,
}

/// Tracks chunk framing across any number of `feed` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ChunkedDecoder {
    state: State,
}

impl ChunkedDecoder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Advances over `data`, stopping right after the body ends.
    pub(crate) fn feed(&mut self, data: &[u8]) -> ChunkStep {
        let mut i = 0;
        while i < data.len() {
            let rest = &data[i..];
            match self.state {
                // Bulk paths: chunk data and free-form lines are skipped, not stepped through.
                State::Data { remaining } => {
                    let n = remaining.min(rest.len() as u64);
                    i += n as usize;
                    let remaining = remaining - n;
                    self.state = if remaining == 0 { State::DataCr } else { State::Data { remaining } };
                    continue;
                }
                State::Ext { .. } | State::Trailer => match memchr::memchr2(b'\r', b'\n', rest) {
                    Some(p) => i += p,
                    None => return ChunkStep { consumed: data.len(), status: ChunkStatus::More },
                },
                State::Done => return ChunkStep { consumed: i, status: ChunkStatus::Done },
                _ => {}
            }
            let b = data[i];
            match self.step(b) {
                Some(next) => self.state = next,
                None => return ChunkStep { consumed: i, status: ChunkStatus::Error },
            }
            i += 1;
            if self.state == State::Done {
                return ChunkStep { consumed: i, status: ChunkStatus::Done };
            }
        }
        ChunkStep { consumed: data.len(), status: ChunkStatus::More }
    }

    /// Skips `n` uncaptured bytes; `false` when they may hold framing (sync lost).
    pub(crate) fn skip(&mut self, n: u64) -> bool {
        if n == 0 {
            return true;
        }
        match self.state {
            State::Data { remaining } if n <= remaining => {
                let remaining = remaining - n;
                self.state = if remaining == 0 { State::DataCr } else { State::Data { remaining } };
                true
            }
            _ => false,
        }
    }

    /// One byte outside the bulk paths; `None` on a framing error.
    fn step(&self, b: u8) -> Option<State> {
        let next = match (self.state, b) {
            (State::SizeStart, _) => State::Size { size: hex(b)?.into(), digits: 1 },
            (State::Size { size, digits }, _) if hex(b).is_some() => {
                if digits >= MAX_SIZE_DIGITS {
                    return None;
                }
                State::Size { size: size << 4 | u64::from(hex(b)?), digits: digits + 1 }
            }
            (State::Size { size, .. } | State::SizeWs { size }, b' ' | b'\t') => State::SizeWs { size },
            (State::Size { size, .. } | State::SizeWs { size }, b';') => State::Ext { size },
            (State::Size { size, .. } | State::SizeWs { size } | State::Ext { size }, b'\r') => State::SizeLf { size },
            (
                State::Size { size, .. } | State::SizeWs { size } | State::Ext { size } | State::SizeLf { size },
                b'\n',
            ) => {
                if size == 0 {
                    State::TrailerStart
                } else {
                    State::Data { remaining: size }
                }
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataCr | State::DataLf, b'\n') => State::SizeStart,
            (State::TrailerStart, b'\r') => State::TrailerLf { last: true },
            (State::TrailerStart, b'\n') | (State::TrailerLf { last: true }, b'\n') => State::Done,
            (State::TrailerStart, _) => State::Trailer,
            (State::Trailer, b'\r') => State::TrailerLf { last: false },
            (State::Trailer, b'\n') | (State::TrailerLf { last: false }, b'\n') => State::TrailerStart,
            _ => return None,
        };
        Some(next)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The last chunk without trailers, preceded by the CRLF ending the previous chunk.
const TERMINATOR: &[u8; 7] = b"\r\n0\r\n\r\n";
/// The terminator when a write starts with it (the previous CRLF is out of sight).
const BARE_TERMINATOR: &[u8] = b"0\r\n\r\n";
const KEEP: usize = TERMINATOR.len() - 1;

static FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(TERMINATOR));

/// Heuristic end detection for a chunked body whose framing was lost.
///
/// Remembers the last few contiguous bytes so a terminator split across
/// segments is still found; uncaptured bytes break contiguity ([`Self::reset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TerminatorScan {
    recent: [u8; KEEP],
    len: usize,
}

impl TerminatorScan {
    /// Bytes of `data` up to and including a terminator, if one is found.
    /// `run_start`: `data` starts a write or follows uncaptured bytes, so a
    /// bare `0\r\n\r\n` there counts (the previous CRLF is unknown).
    pub(crate) fn find(&mut self, data: &[u8], run_start: bool) -> Option<usize> {
        if run_start && data.starts_with(BARE_TERMINATOR) {
            return Some(BARE_TERMINATOR.len());
        }
        // A terminator straddling the previous bytes and `data`, earliest end first.
        for k in (1..=self.len).rev() {
            let (head, tail) = TERMINATOR.split_at(k);
            if self.recent[..self.len].ends_with(head) && data.starts_with(tail) {
                return Some(tail.len());
            }
        }
        if let Some(p) = FINDER.find(data) {
            return Some(p + TERMINATOR.len());
        }
        self.remember(data);
        None
    }

    /// Uncaptured bytes came in between: what was remembered is not adjacent any more.
    pub(crate) fn reset(&mut self) {
        self.len = 0;
    }

    fn remember(&mut self, data: &[u8]) {
        if data.len() >= KEEP {
            self.recent.copy_from_slice(&data[data.len() - KEEP..]);
            self.len = KEEP;
            return;
        }
        let keep_old = (KEEP - data.len()).min(self.len);
        self.recent.copy_within(self.len - keep_old..self.len, 0);
        self.recent[keep_old..keep_old + data.len()].copy_from_slice(data);
        self.len = keep_old + data.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dec: &mut ChunkedDecoder, data: &[u8]) -> ChunkStep {
        dec.feed(data)
    }

    #[test]
    fn whole_body_in_one_go() {
        let body = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\nNEXT";
        let mut d = ChunkedDecoder::new();
        assert_eq!(run(&mut d, body), ChunkStep { consumed: body.len() - 4, status: ChunkStatus::Done });
    }

    #[test]
    fn byte_by_byte_with_extensions_and_trailers() {
        let body = b"A;name=\"v\"\r\n0123456789\r\n1 ; x\r\nZ\r\n0;last\r\nExpires: never\r\nX: y\r\n\r\n";
        let mut d = ChunkedDecoder::new();
        for (i, b) in body.iter().enumerate() {
            let step = d.feed(std::slice::from_ref(b));
            if i + 1 == body.len() {
                assert_eq!(step, ChunkStep { consumed: 1, status: ChunkStatus::Done });
            } else {
                assert_eq!(step.status, ChunkStatus::More, "at {i}");
            }
        }
    }

    #[test]
    fn bare_lf_line_ends() {
        let mut d = ChunkedDecoder::new();
        let body = b"3\nabc\n0\n\n";
        assert_eq!(d.feed(body), ChunkStep { consumed: body.len(), status: ChunkStatus::Done });
    }

    #[test]
    fn errors_report_offset() {
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"3\r\nabcX"), ChunkStep { consumed: 6, status: ChunkStatus::Error });
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"zz"), ChunkStep { consumed: 0, status: ChunkStatus::Error });
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"11111111111111111"), ChunkStep { consumed: 16, status: ChunkStatus::Error });
    }

    #[test]
    fn skip_inside_data_only() {
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"10\r\n0123").status, ChunkStatus::More);
        assert!(d.skip(10));
        assert!(!d.skip(3), "crosses the chunk end");
        let mut d = ChunkedDecoder::new();
        d.feed(b"10\r\n0123");
        assert!(d.skip(12));
        assert_eq!(d.feed(b"\r\n0\r\n\r\n").status, ChunkStatus::Done);
    }

    #[test]
    fn terminator_scan() {
        let mut s = TerminatorScan::default();
        assert_eq!(s.find(b"xx\r\n0\r\n\r\nGET", false), Some(9));
        assert_eq!(s.find(b"0\r\n\r\n", true), Some(5));
        assert_eq!(s.find(b"0\r\n\r\n", false), None);
        let mut s = TerminatorScan::default();
        assert_eq!(s.find(b"data\r\n0", false), None);
        assert_eq!(s.find(b"\r", false), None);
        assert_eq!(s.find(b"\n\r\nrest", false), Some(3));
        let mut s = TerminatorScan::default();
        assert_eq!(s.find(b"data\r\n0", false), None);
        s.reset();
        assert_eq!(s.find(b"\r\n\r\n", false), None);
    }
}
