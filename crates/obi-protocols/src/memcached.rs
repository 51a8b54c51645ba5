//! The memcached text protocol, decoded as a stream: a client's commands
//! (one line, then a data block for storage commands) and a server's
//! responses (one line, or `VALUE`/`STAT` lines closed by `END`). Data
//! blocks are length-prefixed, so a gap inside one is skipped; a gap in a
//! line loses the framing. Meta commands (`mg`, `ms`...) and the binary
//! protocol are not decoded.

use memchr::memchr;

/// Longest command or response line accepted (keys are at most 250 bytes).
const MAX_LINE: usize = 8 * 1024;
/// Keys of a retrieval command kept.
pub const MAX_KEYS: usize = 8;

/// What kind of command a line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `set k flags exptime bytes [noreply]` (and `cas`: one more number).
    Storage { numbers: usize },
    /// `get k1 k2...`; `gat exptime k1...` has a number first.
    Retrieval { skip: usize },
    /// `delete k [noreply]`, `incr k v [noreply]`, `touch k exptime [noreply]`.
    Keyed,
    /// `stats`, `version`, `flush_all`, `verbosity`: no key.
    Admin,
    /// `quit`: no response.
    Quit,
}

fn shape(name: &[u8]) -> Option<Shape> {
    Some(match name {
        b"set" | b"add" | b"replace" | b"append" | b"prepend" => Shape::Storage { numbers: 3 },
        b"cas" => Shape::Storage { numbers: 4 },
        b"get" | b"gets" => Shape::Retrieval { skip: 0 },
        b"gat" | b"gats" => Shape::Retrieval { skip: 1 },
        b"delete" | b"incr" | b"decr" | b"touch" => Shape::Keyed,
        b"stats" | b"version" | b"flush_all" | b"verbosity" => Shape::Admin,
        b"quit" => Shape::Quit,
        _ => return None,
    })
}

/// A client command.
#[derive(Debug, PartialEq, Eq)]
pub struct Command<'a> {
    /// `get`, `set`...
    pub name: &'a str,
    /// The keys it names (at most [`MAX_KEYS`]), space-separated.
    pub keys: &'a str,
    /// The server will not answer (`noreply`, `quit`).
    pub silent: bool,
}

/// A complete server response.
#[derive(Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// `END` after zero or more `VALUE` (or `STAT`) lines: `items` of them.
    End { items: u32 },
    /// `ERROR`, `CLIENT_ERROR ...`, `SERVER_ERROR ...`: (code, message).
    Error(&'a str, &'a str),
    /// Any other one-line response (`STORED`, `NOT_FOUND`, `DELETED`, a number...).
    Line(&'a str),
}

#[derive(Debug)]
pub enum Event<T> {
    Item(T),
    /// Not memcached text: nothing more comes out until `reset`.
    Invalid,
}

/// Bytes to skip (a data block and its CRLF) or a line to read.
#[derive(Debug, Default)]
struct Framer {
    line: Vec<u8>,
    skip: u64,
    lost: bool,
}

impl Framer {
    /// Calls `on_line` for each complete line (without CRLF); it returns
    /// the data bytes that follow the line (skipped), or `Err` when the
    /// line is not this protocol. Returns whether the framing was lost.
    fn feed(&mut self, mut data: &[u8], on_line: &mut dyn FnMut(&[u8]) -> Result<u64, ()>) -> bool {
        while !data.is_empty() && !self.lost {
            if self.skip > 0 {
                let n = (self.skip as usize).min(data.len());
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            let (chunk, complete) = match memchr(b'\n', data) {
                Some(i) => (&data[..=i], true),
                None => (data, false),
            };
            data = &data[chunk.len()..];
            if self.line.len() + chunk.len() > MAX_LINE {
                self.lost = true;
                return true;
            }
            self.line.extend_from_slice(chunk);
            if complete {
                let line = std::mem::take(&mut self.line);
                let parsed = match line.strip_suffix(b"\r\n") {
                    Some(l) => on_line(l),
                    None => Err(()),
                };
                self.line = line;
                self.line.clear();
                match parsed {
                    Ok(skip) => self.skip = skip,
                    Err(()) => {
                        self.lost = true;
                        return true;
                    }
                }
            }
        }
        false
    }

    /// `len` bytes not captured: only a data block can be skipped.
    /// Returns whether the framing was lost.
    fn gap(&mut self, len: u64) -> bool {
        if self.lost || len == 0 {
            return false;
        }
        if self.skip >= len {
            self.skip -= len;
            false
        } else {
            self.lost = true;
            true
        }
    }
}

/// The client side of a connection.
#[derive(Debug, Default)]
pub struct CommandStream {
    framer: Framer,
}

impl CommandStream {
    pub fn is_lost(&self) -> bool {
        self.framer.lost
    }

    pub fn reset(&mut self) {
        self.framer = Framer::default();
    }

    pub fn feed(&mut self, data: &[u8], emit: &mut dyn FnMut(Event<Command<'_>>)) {
        let mut on_line = |line: &[u8]| match parse_command(line) {
            Some((cmd, skip)) => {
                emit(Event::Item(cmd));
                Ok(skip)
            }
            None => Err(()),
        };
        if self.framer.feed(data, &mut on_line) {
            emit(Event::Invalid);
        }
    }

    pub fn gap(&mut self, len: u64, emit: &mut dyn FnMut(Event<Command<'_>>)) {
        if self.framer.gap(len) {
            emit(Event::Invalid);
        }
    }
}

/// A command line: the command and the data bytes that follow it.
fn parse_command(line: &[u8]) -> Option<(Command<'_>, u64)> {
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    let name = words.next()?;
    let shape = shape(name.as_bytes())?;
    let rest: Vec<&str> = words.collect();
    let noreply = rest.last() == Some(&"noreply");
    let keys_at = |from: usize| -> Option<&str> {
        let first = rest.get(from)?;
        let last = rest.iter().skip(from).take(MAX_KEYS).rfind(|w| **w != "noreply")?;
        // The keys are one slice of the line: from the first to the last kept.
        let start = first.as_ptr() as usize - text.as_ptr() as usize;
        let end = last.as_ptr() as usize - text.as_ptr() as usize + last.len();
        Some(&text[start..end])
    };
    let (keys, skip) = match shape {
        Shape::Storage { numbers } => {
            let bytes: u64 = rest.get(3)?.parse().ok()?;
            let expected = 1 + numbers + noreply as usize;
            if rest.len() != expected || !rest[1..=numbers].iter().all(|n| n.parse::<u64>().is_ok()) {
                return None;
            }
            (rest.first().copied()?, bytes + 2)
        }
        Shape::Retrieval { skip } => {
            if skip == 1 && rest.first()?.parse::<i64>().is_err() {
                return None;
            }
            (keys_at(skip)?, 0)
        }
        Shape::Keyed => (rest.first().copied()?, 0),
        Shape::Admin | Shape::Quit => ("", 0),
    };
    let silent = noreply || shape == Shape::Quit;
    Some((Command { name, keys, silent }, skip))
}

/// The server side of a connection.
#[derive(Debug, Default)]
pub struct ResponseStream {
    framer: Framer,
    items: u32,
}

impl ResponseStream {
    pub fn is_lost(&self) -> bool {
        self.framer.lost
    }

    pub fn feed(&mut self, data: &[u8], emit: &mut dyn FnMut(Event<Response<'_>>)) {
        let items = &mut self.items;
        let mut on_line = |line: &[u8]| -> Result<u64, ()> {
            let text = std::str::from_utf8(line).map_err(|_| ())?;
            let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
            match word {
                // VALUE <key> <flags> <bytes> [<cas>], then the data.
                "VALUE" => {
                    let bytes = rest.split(' ').nth(2).and_then(|b| b.parse::<u64>().ok()).ok_or(())?;
                    *items += 1;
                    Ok(bytes + 2)
                }
                "STAT" => {
                    *items += 1;
                    Ok(0)
                }
                "END" => {
                    emit(Event::Item(Response::End { items: std::mem::take(items) }));
                    Ok(0)
                }
                "ERROR" | "CLIENT_ERROR" | "SERVER_ERROR" => {
                    *items = 0;
                    emit(Event::Item(Response::Error(word, rest)));
                    Ok(0)
                }
                _ if !word.is_empty()
                    && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit()) =>
                {
                    emit(Event::Item(Response::Line(text)));
                    Ok(0)
                }
                _ => Err(()),
            }
        };
        if self.framer.feed(data, &mut on_line) {
            emit(Event::Invalid);
        }
    }

    pub fn gap(&mut self, len: u64, emit: &mut dyn FnMut(Event<Response<'_>>)) {
        if self.framer.gap(len) {
            emit(Event::Invalid);
        }
    }
}

/// Whether `data` starts like a memcached text command: a known command
/// word followed by a space or the end of the line. `None`: too few bytes.
pub fn looks_like_command(data: &[u8]) -> Option<bool> {
    let end = data.iter().position(|&b| b == b' ' || b == b'\r');
    let Some(end) = end else {
        // Still within the first word.
        let prefix = data.len() <= 9 && data.iter().all(u8::is_ascii_lowercase);
        let could_be = ["set", "add", "replace", "append", "prepend", "cas", "get", "gets", "gat", "gats", "delete"]
            .iter()
            .any(|w| w.as_bytes().starts_with(data));
        return if prefix && could_be { None } else { Some(false) };
    };
    // Admin commands alone are too common words to claim a connection.
    Some(matches!(shape(&data[..end]), Some(Shape::Storage { .. } | Shape::Retrieval { .. } | Shape::Keyed)))
}

#[cfg(test)]
mod tests;
