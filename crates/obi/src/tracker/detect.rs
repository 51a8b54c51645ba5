//! Guessing a connection's protocol from its first bytes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// Starts like an HTTP/1 request line.
    Http1Request,
    /// Starts like an HTTP/1 status line.
    Http1Response,
    /// The HTTP/2 connection preface.
    Http2Preface,
    /// An HTTP/2 SETTINGS frame: a server's first write, which may go out
    /// before the client's preface arrives (the kernel then switches the
    /// connection to frame capture).
    Http2Settings,
    /// A TLS record (handshake or application data): ciphertext.
    Tls,
    /// Too few bytes to tell.
    NeedMore,
    Unknown,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

pub fn detect(data: &[u8]) -> Detected {
    if data.len() < 5 {
        return Detected::NeedMore;
    }
    if data.starts_with(b"HTTP/1.") {
        return Detected::Http1Response;
    }
    if data.starts_with(&H2_PREFACE[..data.len().min(H2_PREFACE.len())]) && data.len() >= 8 {
        return Detected::Http2Preface;
    }
    if looks_like_h2_settings(data) {
        return Detected::Http2Settings;
    }
    if looks_like_request_line(data) {
        return Detected::Http1Request;
    }
    // TLS record: content type 20..=23, version 3.x.
    if (20..=23).contains(&data[0]) && data[1] == 3 && data[2] <= 4 {
        return Detected::Tls;
    }
    Detected::Unknown
}

/// A SETTINGS frame on stream 0: 6 bytes per setting, flags 0 or ACK.
fn looks_like_h2_settings(data: &[u8]) -> bool {
    let Some(h) = obi_protocols::http2::frame::FrameHeader::parse(data) else { return false };
    h.kind == obi_protocols::http2::frame::SETTINGS
        && h.stream == 0
        && h.flags & !1 == 0
        && h.len % 6 == 0
        && h.len <= 16384
        && data[5..9] == [0; 4]
}

/// `METHOD SP target`: an upper-case token of 3..=16 characters.
fn looks_like_request_line(data: &[u8]) -> bool {
    let Some(sp) = data.iter().take(17).position(|&b| b == b' ') else {
        return false;
    };
    (3..=16).contains(&sp)
        && data[..sp].iter().all(|&b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
        && data.get(sp + 1).is_some_and(|&b| b == b'/' || b == b'*' || b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_common_starts() {
        assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Detected::Http1Request);
        assert_eq!(detect(b"OPTIONS * HTTP/1.1\r\n"), Detected::Http1Request);
        assert_eq!(detect(b"CONNECT example.com:443 HTTP/1.1\r\n"), Detected::Http1Request);
        assert_eq!(detect(b"HTTP/1.1 200 OK\r\n"), Detected::Http1Response);
        assert_eq!(detect(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Detected::Http2Preface);
        assert_eq!(detect(&[0, 0, 12, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]), Detected::Http2Settings);
        assert_eq!(detect(&[0, 0, 0, 4, 1, 0, 0, 0, 0]), Detected::Http2Settings);
        assert_eq!(detect(&[0, 0, 7, 4, 0, 0, 0, 0, 0]), Detected::Unknown);
        assert_eq!(detect(&[22, 3, 1, 0, 200, 1]), Detected::Tls);
        assert_eq!(detect(b"GE"), Detected::NeedMore);
        assert_eq!(detect(b"\x00\x01\x02\x03\x04\x05"), Detected::Unknown);
        assert_eq!(detect(b"get / HTTP/1.1"), Detected::Unknown);
        assert_eq!(detect(b"*2\r\n$3\r\nGET\r\n"), Detected::Unknown);
    }
}
