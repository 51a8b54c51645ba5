//! grpc-go's client in a Go binary: its release, and the offsets of the
//! struct fields the gRPC probe reads, for the releases they are known for.
//!
//! The release is read from the user agent grpc-go compiles in
//! (`grpc-go/1.33.3`, a constant in `.rodata` of every binary that links
//! its client): module builds and GOPATH builds (Debian's) alike have it,
//! while only module builds list grpc-go in `.go.buildinfo`. Every copy of
//! it must name the same minor release, else none is trusted.

use super::elf;

/// The function whose `ret` instructions the gRPC probe is placed on: it
/// creates a client stream on the calling goroutine and returns it.
pub(crate) const NEW_STREAM: &str = "google.golang.org/grpc/internal/transport.(*http2Client).NewStream";

const USER_AGENT_PREFIX: &[u8] = b"grpc-go/";

/// Byte offsets (amd64) of what the probe reads: the `*Stream` NewStream
/// returns holds its `id` and its transport `ct` (`*http2Client`), whose
/// `conn` is the `net.Conn` the socket is found from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GrpcOffsets {
    pub(crate) stream_id: u32,
    pub(crate) stream_ct: u32,
    pub(crate) client_conn: u32,
}

/// `(major, minor)` releases and their offsets, checked against the DWARF
/// of the test app built with Debian's grpc-go 1.33.3 by Go 1.19 and 1.23
/// (`internal/transport.Stream.id` 0, `.ct` 24, `http2Client.conn` 72).
/// Other releases moved these fields (1.60s split `Stream` into client and
/// server types): they are not guessed.
const KNOWN: [((u16, u16), GrpcOffsets); 1] = [((1, 33), GrpcOffsets { stream_id: 0, stream_ct: 24, client_conn: 72 })];

/// grpc-go's client as found in a binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GrpcClient {
    pub(crate) major: u16,
    pub(crate) minor: u16,
    pub(crate) offsets: GrpcOffsets,
}

/// Why the gRPC probe is not placed (its calls stay roots).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum GrpcError {
    #[error("no grpc-go release string (\"grpc-go/1.x\") in .rodata: release unknown")]
    NoRelease,
    #[error("grpc-go release strings disagree ({0}.{1} and {2}.{3})")]
    Ambiguous(u16, u16, u16, u16),
    #[error("grpc-go {0}.{1}: its struct offsets are not known to this agent (known: 1.33)")]
    Unknown(u16, u16),
    #[error("{NEW_STREAM}: {0}")]
    Returns(String),
}

/// The release and offsets of the grpc-go client linked into `file`.
pub(crate) fn client(file: &object::File<'_>) -> Result<GrpcClient, GrpcError> {
    let (_, rodata) = elf::section(file, ".rodata").ok_or(GrpcError::NoRelease)?;
    let (major, minor) = release(rodata)?;
    KNOWN
        .iter()
        .find(|(release, _)| *release == (major, minor))
        .map(|&(_, offsets)| GrpcClient { major, minor, offsets })
        .ok_or(GrpcError::Unknown(major, minor))
}

/// `(major, minor)` of every `grpc-go/<major>.<minor>.` in `data`, which
/// must all agree. Only what a `.` ends is read: Go lays string constants
/// end to end, so the patch number may run into the next string.
fn release(data: &[u8]) -> Result<(u16, u16), GrpcError> {
    let mut found: Option<(u16, u16)> = None;
    let mut at = 0;
    while let Some(pos) = find(&data[at..], USER_AGENT_PREFIX) {
        let start = at + pos + USER_AGENT_PREFIX.len();
        at = start;
        let Some((major, rest)) = number_then_dot(&data[start..]) else { continue };
        let Some((minor, _)) = number_then_dot(rest) else { continue };
        match found {
            None => found = Some((major, minor)),
            Some((a, b)) if (a, b) != (major, minor) => return Err(GrpcError::Ambiguous(a, b, major, minor)),
            Some(_) => {}
        }
    }
    found.ok_or(GrpcError::NoRelease)
}

/// A decimal number (1 to 4 digits) followed by `.`, and what follows the dot.
fn number_then_dot(b: &[u8]) -> Option<(u16, &[u8])> {
    let digits = b.iter().take(5).position(|c| !c.is_ascii_digit())?;
    if digits == 0 || digits > 4 || b[digits] != b'.' {
        return None;
    }
    let n = std::str::from_utf8(&b[..digits]).ok()?.parse().ok()?;
    Some((n, &b[digits + 1..]))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_is_read_up_to_the_minor() {
        assert_eq!(release(b"xxgrpc-go/1.33.3grpc-trace-bin\0grpc-go/1.33.3"), Ok((1, 33)));
        assert_eq!(release(b"grpc-go/1.66.0-dev"), Ok((1, 66)));
        // A patch running into the next string does not matter.
        assert_eq!(release(b"grpc-go/1.33.32006-01-02"), Ok((1, 33)));
    }

    #[test]
    fn missing_or_disagreeing_releases_are_refused() {
        assert_eq!(release(b"no user agent here"), Err(GrpcError::NoRelease));
        assert_eq!(release(b"grpc-go/x.y grpc-go/1"), Err(GrpcError::NoRelease));
        assert_eq!(release(b"grpc-go/1.33.3 grpc-go/1.34.0"), Err(GrpcError::Ambiguous(1, 33, 1, 34)));
        assert_eq!(release(b"grpc-go/1.33"), Err(GrpcError::NoRelease));
    }

    #[test]
    fn only_known_releases_get_offsets() {
        assert!(KNOWN.iter().any(|(r, _)| *r == (1, 33)));
        assert!(!KNOWN.iter().any(|(r, _)| *r == (1, 34)));
        assert_eq!(
            GrpcError::Unknown(1, 60).to_string(),
            "grpc-go 1.60: its struct offsets are not known to this agent (known: 1.33)"
        );
    }
}
