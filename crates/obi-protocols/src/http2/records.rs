//! The records the kernel sends for HTTP/2 connections: instead of the
//! first bytes of a buffer, every frame header and every header-block byte,
//! so no HEADERS block is ever cut off. Layout per record:
//! `[u16 len, little endian][u8 kind][len bytes]`.

pub const REC_FRAME: u8 = 1;
pub const REC_PAYLOAD: u8 = 2;
pub const REC_LOST: u8 = 3;
pub const REC_PREFACE: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A 9-byte frame header.
    Frame(&'a [u8]),
    /// The next bytes of a header-carrying frame's payload.
    Payload(&'a [u8]),
    /// The kernel lost frame sync: nothing more comes for this direction.
    Lost,
    /// The client connection preface went by here.
    Preface,
    /// Unknown kind or a record cut short: the rest cannot be trusted.
    Malformed,
}

/// Iterates over the records in an event's data.
pub struct Records<'a> {
    data: &'a [u8],
}

impl<'a> Records<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Records { data }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.data.is_empty() {
            return None;
        }
        let &[l0, l1, kind, ..] = self.data else {
            self.data = &[];
            return Some(Record::Malformed);
        };
        let len = u16::from_le_bytes([l0, l1]) as usize;
        let Some(body) = self.data.get(3..3 + len) else {
            self.data = &[];
            return Some(Record::Malformed);
        };
        self.data = &self.data[3 + len..];
        Some(match kind {
            REC_FRAME if len == super::frame::HEADER_LEN => Record::Frame(body),
            REC_PAYLOAD => Record::Payload(body),
            REC_LOST => Record::Lost,
            REC_PREFACE => Record::Preface,
            _ => {
                self.data = &[];
                Record::Malformed
            }
        })
    }
}

/// Appends one record (tests and fuzzing build kernel-like input with it).
pub fn push_record(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_records_and_stops_at_garbage() {
        let mut buf = Vec::new();
        push_record(&mut buf, REC_PREFACE, &[]);
        push_record(&mut buf, REC_FRAME, &[0; 9]);
        push_record(&mut buf, REC_PAYLOAD, b"abc");
        push_record(&mut buf, REC_LOST, &[]);
        let got: Vec<_> = Records::new(&buf).collect();
        assert_eq!(got, vec![Record::Preface, Record::Frame(&[0; 9]), Record::Payload(b"abc"), Record::Lost]);

        let mut cut = buf.clone();
        cut.truncate(buf.len() - 5);
        assert_eq!(Records::new(&cut).last(), Some(Record::Malformed));
        assert_eq!(Records::new(&[5, 0]).collect::<Vec<_>>(), vec![Record::Malformed]);
        let mut odd = Vec::new();
        push_record(&mut odd, 9, b"x");
        push_record(&mut odd, REC_PREFACE, b"");
        assert_eq!(Records::new(&odd).collect::<Vec<_>>(), vec![Record::Malformed]);
    }
}
