//! Streaming HTTP/1.0 and HTTP/1.1 message framing for one direction of a TCP
//! connection, as seen through syscall captures.
//!
//! The input is a sequence of [`Segment`]s: captured bytes, or a gap of
//! uncaptured bytes of known length whose last few bytes may be known. The
//! output is, per message, a [`MessageEvent::Head`] and later a
//! [`MessageEvent::End`]. Framing follows RFC 9112 §6: chunked, else
//! Content-Length, else (responses only) until the connection closes.
//!
//! Gaps are absorbed where framing survives them (inside a Content-Length body,
//! inside chunk data); elsewhere the stream says so ([`RequestStream::is_lost`])
//! and recovers on the next captured write that starts with a start line, on
//! `force_end`, or on `reset`.
//!
//! Byte accounting: `End::wire_bytes = header_bytes + body_bytes`, and across a
//! message every byte fed (captured or not) is counted exactly once. For a
//! chunked body, `body_bytes` is the body on the wire after the head: chunk-size
//! lines, extensions, CRLFs, the last chunk and trailers included (the decoded
//! payload size is not tracked).

mod chunked;
mod engine;
mod head;
mod stream;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use stream::{RequestStream, ResponseStream};

/// One piece of a byte stream, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Captured bytes.
    Bytes(&'a [u8]),
    /// `len` bytes that were not captured; `tail` holds the last of them (at most
    /// `len`; extra leading bytes are ignored), possibly none.
    Gap { len: u64, tail: &'a [u8] },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// As sent, e.g. "GET".
    pub method: String,
    /// Raw request-target, e.g. "/a/b?x=1" or "http://h/p". When the request line
    /// was cut, what was captured of it.
    pub target: String,
    /// `Http11` when the request line was cut before the version.
    pub version: Version,
    /// First Host header value.
    pub host: Option<String>,
    /// Value of the first `traceparent` header (name matched case-insensitively).
    pub traceparent: Option<String>,
    /// Valid Content-Length (`None` when absent, unparsable, or conflicting).
    pub content_length: Option<u64>,
    /// Transfer-Encoding with chunked as the last coding.
    pub chunked: bool,
    /// Request line + headers + the empty line; if the head was cut, the bytes seen of it.
    pub header_bytes: u64,
    /// `false` when the head was cut by a gap or the head-size cap.
    pub head_complete: bool,
    /// `Connection: close`, or HTTP/1.0 without `Connection: keep-alive`.
    pub connection_close: bool,
    /// `Connection: upgrade` together with an `Upgrade` header (websocket, h2c, ...).
    pub upgrade: bool,
}

impl Request {
    /// The target without query and fragment; for absolute-form ("http://h/p?q")
    /// just the path ("/p"; "/" when empty). Asterisk- and authority-form
    /// targets ("*", "host:443") are returned as they are.
    pub fn path(&self) -> &str {
        let t = &self.target;
        let t = &t[..t.find(['?', '#']).unwrap_or(t.len())];
        match t.find("://") {
            Some(i) if is_scheme(&t[..i]) => {
                let after_authority = &t[i + 3..];
                after_authority.find('/').map_or("/", |p| &after_authority[p..])
            }
            _ => t,
        }
    }
}

/// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub version: Version,
    /// Valid Content-Length header value, even where it does not frame a body
    /// (HEAD responses, 204, 304).
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// Status line + headers + the empty line; if the head was cut, the bytes seen of it.
    pub header_bytes: u64,
    pub head_complete: bool,
    /// `Connection: close`, or HTTP/1.0 without `Connection: keep-alive`.
    pub connection_close: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageEvent<H> {
    /// A message started and its head was parsed (maybe partially: see `head_complete`).
    Head(H),
    /// The message that last emitted `Head` is complete. `body_bytes` counts every
    /// body byte on the wire, captured or not (see the module docs for chunked).
    /// `declared` is the body length the head's framing states: its
    /// Content-Length, or 0 for a message without a body (a request without
    /// length, a response to HEAD, 204, 304). `None` for chunked,
    /// close-delimited and unknown (cut head) bodies, whose only size is the
    /// count. The two differ when the message ended early (the connection
    /// closed mid-body).
    End { body_bytes: u64, wire_bytes: u64, declared: Option<u64> },
    /// Bytes at a message boundary are not HTTP/1: the stream is lost until it
    /// resynchronises or is reset.
    Invalid,
}
