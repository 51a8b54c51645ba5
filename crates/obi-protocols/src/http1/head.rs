//! Parsing of one message head (start line + header fields) with httparse, and
//! the body framing the head implies (RFC 9112 §6).
//!
//! Parsing is stateless: the stream re-parses its (bounded) head buffer as
//! bytes arrive. A head known to be cut (a gap, or the size cap) is "salvaged":
//! httparse's partial parse still yields the start line and every complete
//! header line before the cut.

use httparse::{EMPTY_HEADER, Header, ParserConfig, Status};

use super::{Request, Response, Version};

/// Header slots tried on the stack; a head with more falls back to a heap array
/// big enough for any head of that size (rare, so the allocation is fine).
const STACK_SLOTS: usize = 48;
/// Longest accepted method token: longer ones are almost surely not HTTP.
pub(crate) const MAX_METHOD_LEN: usize = 16;

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    Length(u64),
    Chunked,
    /// A response body that runs until the connection closes.
    Close,
    /// The head does not tell (cut head, bad Content-Length, unknown transfer coding of a request).
    Unknown,
    /// An interim 1xx response (not 101): it is dropped silently.
    Interim,
    /// 101, or 2xx to CONNECT: no body, and the connection stops speaking HTTP/1.
    Tunnel,
}

/// Outcome of parsing a buffer that starts at a message boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed<H> {
    /// A head: complete, or salvaged from a cut buffer (`head_complete == false`).
    Head(H, Framing),
    /// Valid so far, more bytes needed; `start_line` once the start line was seen whole.
    /// Only when not cut.
    Partial { start_line: bool },
    /// Cut before anything identifying (method / status code) was seen. Only when cut.
    Nothing,
    /// Not an HTTP/1 message.
    Invalid,
}

/// What the request a response answers implies for its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Expect {
    #[default]
    Other,
    /// HEAD: the response never has a body.
    Head,
    /// CONNECT: a 2xx response turns the connection into a tunnel.
    Connect,
}

impl Expect {
    pub(crate) fn from_method(method: &str) -> Self {
        if method.eq_ignore_ascii_case("HEAD") {
            Expect::Head
        } else if method.eq_ignore_ascii_case("CONNECT") {
            Expect::Connect
        } else {
            Expect::Other
        }
    }
}

/// Parses a request head at the start of `buf`; `cut` when no more bytes of it will come.
pub(crate) fn parse_request(buf: &[u8], cut: bool) -> Parsed<Request> {
    if !method_prefix_ok(buf) {
        return Parsed::Invalid;
    }
    let mut slots = [EMPTY_HEADER; STACK_SLOTS];
    if let Some(parsed) = request_with(buf, cut, &mut slots) {
        return parsed;
    }
    let mut slots = vec![EMPTY_HEADER; max_headers(buf)];
    request_with(buf, cut, &mut slots).unwrap_or(Parsed::Invalid)
}

/// Parses a response head at the start of `buf`, answering a request of kind `expect`.
pub(crate) fn parse_response(buf: &[u8], cut: bool, expect: Expect) -> Parsed<Response> {
    let mut slots = [EMPTY_HEADER; STACK_SLOTS];
    if let Some(parsed) = response_with(buf, cut, expect, &mut slots) {
        return parsed;
    }
    let mut slots = vec![EMPTY_HEADER; max_headers(buf)];
    response_with(buf, cut, expect, &mut slots).unwrap_or(Parsed::Invalid)
}

/// More header lines than `buf` can hold ("a:\n" is the shortest).
fn max_headers(buf: &[u8]) -> usize {
    buf.len() / 3 + 1
}

fn request_config() -> ParserConfig {
    let mut config = ParserConfig::default();
    // We observe, we do not enforce: one malformed field must not hide the message.
    config.ignore_invalid_headers_in_requests(true);
    config
}

fn response_config() -> ParserConfig {
    let mut config = ParserConfig::default();
    config
        .ignore_invalid_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true);
    config
}

/// `None` when `slots` is too small for the head.
fn request_with<'b>(buf: &'b [u8], cut: bool, slots: &mut [Header<'b>]) -> Option<Parsed<Request>> {
    let mut req = httparse::Request::new(slots);
    let (header_bytes, complete) = match request_config().parse_request(&mut req, buf) {
        Ok(Status::Complete(len)) => (len, true),
        Ok(Status::Partial) if !cut => return Some(Parsed::Partial { start_line: req.version.is_some() }),
        Ok(Status::Partial) => (buf.len(), false),
        Err(httparse::Error::TooManyHeaders) => return None,
        Err(_) => return Some(Parsed::Invalid),
    };
    let Some(method) = req.method else { return Some(Parsed::Nothing) };
    let target = match req.path {
        Some(path) => path.to_owned(),
        // The request line itself was cut: keep what was seen of the target.
        None => target_prefix(buf, method.len()),
    };
    let version = if req.version == Some(0) { Version::Http10 } else { Version::Http11 };
    let fields = Fields::scan(seen(req.headers), true);
    let framing = if complete { fields.request_framing() } else { Framing::Unknown };
    let request = Request {
        method: method.to_owned(),
        target,
        version: version.clone(),
        content_length: fields.content_length(),
        chunked: fields.te == Some(true),
        header_bytes: header_bytes as u64,
        head_complete: complete,
        connection_close: fields.closes(&version),
        upgrade: fields.conn_upgrade && fields.upgrade_header,
        host: fields.host,
        traceparent: fields.traceparent,
    };
    Some(Parsed::Head(request, framing))
}

/// `None` when `slots` is too small for the head.
fn response_with<'b>(buf: &'b [u8], cut: bool, expect: Expect, slots: &mut [Header<'b>]) -> Option<Parsed<Response>> {
    let mut resp = httparse::Response::new(slots);
    let (header_bytes, complete) = match response_config().parse_response(&mut resp, buf) {
        Ok(Status::Complete(len)) => (len, true),
        Ok(Status::Partial) if !cut => return Some(Parsed::Partial { start_line: resp.reason.is_some() }),
        Ok(Status::Partial) => (buf.len(), false),
        Err(httparse::Error::TooManyHeaders) => return None,
        Err(_) => return Some(Parsed::Invalid),
    };
    let Some(status) = resp.code else { return Some(Parsed::Nothing) };
    if status < 100 {
        return Some(Parsed::Invalid);
    }
    let version = if resp.version == Some(0) { Version::Http10 } else { Version::Http11 };
    let fields = Fields::scan(seen(resp.headers), false);
    let framing = match fields.response_framing(status, expect) {
        f @ (Framing::Tunnel | Framing::Interim) => f,
        f if complete => f,
        _ => Framing::Unknown,
    };
    if framing == Framing::Interim && !complete {
        // A cut interim response carries nothing worth reporting.
        return Some(Parsed::Nothing);
    }
    let response = Response {
        status,
        version: version.clone(),
        content_length: fields.content_length(),
        chunked: fields.te == Some(true),
        header_bytes: header_bytes as u64,
        head_complete: complete,
        connection_close: fields.closes(&version),
    };
    Some(Parsed::Head(response, framing))
}

/// The header lines httparse filled in. After a partial parse it hands back all
/// slots; parsed ones come first and have a non-empty name.
fn seen<'a, 'b>(headers: &'a [Header<'b>]) -> &'a [Header<'b>] {
    let n = headers.iter().position(|h| h.name.is_empty()).unwrap_or(headers.len());
    &headers[..n]
}

/// Cheap early rejection httparse does not do: the method must be 1..=16 token chars.
fn method_prefix_ok(buf: &[u8]) -> bool {
    let start = leading_empty_lines(buf);
    for (i, &b) in buf[start..].iter().enumerate() {
        if b == b' ' {
            return i > 0;
        }
        if i == MAX_METHOD_LEN || !is_tchar(b) {
            return false;
        }
    }
    true
}

/// Bytes of CR/LF before the start line (httparse skips empty lines; so do we).
fn leading_empty_lines(buf: &[u8]) -> usize {
    buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len())
}

/// RFC 9110 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What was captured of a request-target cut before its end.
fn target_prefix(buf: &[u8], method_len: usize) -> String {
    let start = leading_empty_lines(buf) + method_len + 1;
    let rest = buf.get(start..).unwrap_or_default();
    let end = rest.iter().position(|&b| b <= b' ' || b == 0x7f).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

/// Content-Length as seen so far over all its field lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Length {
    #[default]
    Absent,
    Valid(u64),
    /// Unparsable or conflicting values (RFC 9112 §6.3 makes this unrecoverable).
    Invalid,
}

/// The header fields that matter to us, folded over all field lines.
#[derive(Debug, Default)]
struct Fields {
    host: Option<String>,
    traceparent: Option<String>,
    length: Length,
    /// `Some(last coding is chunked)` when Transfer-Encoding is present.
    te: Option<bool>,
    conn_close: bool,
    conn_keep_alive: bool,
    conn_upgrade: bool,
    upgrade_header: bool,
}

impl Fields {
    /// `strings`: also copy out Host and traceparent (requests only).
    fn scan(headers: &[Header<'_>], strings: bool) -> Self {
        let mut f = Fields::default();
        for h in headers {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                f.length = match (f.length, parse_length(h.value)) {
                    (_, None) | (Length::Invalid, _) => Length::Invalid,
                    (Length::Absent, Some(n)) => Length::Valid(n),
                    (Length::Valid(old), Some(n)) if old == n => Length::Valid(n),
                    (Length::Valid(_), Some(_)) => Length::Invalid,
                };
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                // Codings apply in order; only the last one decides framing (RFC 9112 §6.3).
                if let Some(last) = list(h.value).last() {
                    f.te = Some(last.eq_ignore_ascii_case(b"chunked"));
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in list(h.value) {
                    f.conn_close |= token.eq_ignore_ascii_case(b"close");
                    f.conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                    f.conn_upgrade |= token.eq_ignore_ascii_case(b"upgrade");
                }
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                f.upgrade_header |= !trim(h.value).is_empty();
            } else if strings && f.host.is_none() && name.eq_ignore_ascii_case(b"host") {
                f.host = Some(String::from_utf8_lossy(h.value).into_owned());
            } else if strings && f.traceparent.is_none() && name.eq_ignore_ascii_case(b"traceparent") {
                f.traceparent = Some(String::from_utf8_lossy(h.value).into_owned());
            }
        }
        f
    }

    fn content_length(&self) -> Option<u64> {
        match self.length {
            Length::Valid(n) => Some(n),
            _ => None,
        }
    }

    /// HTTP/1.0 closes unless asked to keep alive; HTTP/1.1 stays open unless asked to close.
    fn closes(&self, version: &Version) -> bool {
        self.conn_close || (*version == Version::Http10 && !self.conn_keep_alive)
    }

    fn request_framing(&self) -> Framing {
        match (self.te, self.length) {
            (Some(true), _) => Framing::Chunked,
            // A request whose last coding is not chunked cannot be framed (RFC 9112 §6.3 p4).
            (Some(false), _) | (None, Length::Invalid) => Framing::Unknown,
            (None, Length::Valid(n)) => Framing::Length(n),
            (None, Length::Absent) => Framing::Empty,
        }
    }

    fn response_framing(&self, status: u16, expect: Expect) -> Framing {
        match status {
            101 => return Framing::Tunnel,
            100..=199 => return Framing::Interim,
            200..=299 if expect == Expect::Connect => return Framing::Tunnel,
            204 | 304 => return Framing::Empty,
            _ if expect == Expect::Head => return Framing::Empty,
            _ => {}
        }
        match (self.te, self.length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::Close,
            (None, Length::Valid(n)) => Framing::Length(n),
            (None, Length::Invalid) => Framing::Unknown,
            (None, Length::Absent) => Framing::Close,
        }
    }
}

/// A Content-Length value: digits, or a list of identical digit strings ("42, 42").
fn parse_length(value: &[u8]) -> Option<u64> {
    let mut result = None;
    for item in value.split(|&b| b == b',') {
        let item = trim(item);
        if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = item.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
        match result {
            Some(prev) if prev != n => return None,
            _ => result = Some(n),
        }
    }
    result
}

/// Non-empty elements of a comma-separated field value.
fn list(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim).filter(|s| !s.is_empty())
}

/// Strips optional whitespace (and folded line breaks) around a value.
fn trim(s: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = s.iter().position(|b| !ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ws(b)).map_or(start, |p| p + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(buf: &[u8], cut: bool) -> (Request, Framing) {
        match parse_request(buf, cut) {
            Parsed::Head(r, f) => (r, f),
            other => panic!("expected a head, got {other:?}"),
        }
    }

    fn resp(buf: &[u8], expect: Expect) -> (Response, Framing) {
        match parse_response(buf, false, expect) {
            Parsed::Head(r, f) => (r, f),
            other => panic!("expected a head, got {other:?}"),
        }
    }

    #[test]
    fn request_fields() {
        let buf = b"POST /x?y=1 HTTP/1.1\r\nHost: example.com\r\nTraceParent: 00-aa-bb-01\r\n\
                    traceparent: second\r\nContent-Length: 5\r\nConnection: keep-alive, Upgrade\r\n\
                    Upgrade: websocket\r\n\r\nhello";
        let (r, f) = req(buf, false);
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/x?y=1");
        assert_eq!(r.version, Version::Http11);
        assert_eq!(r.host.as_deref(), Some("example.com"));
        assert_eq!(r.traceparent.as_deref(), Some("00-aa-bb-01"));
        assert_eq!(r.content_length, Some(5));
        assert!(!r.chunked && r.head_complete && !r.connection_close && r.upgrade);
        assert_eq!(r.header_bytes as usize, buf.len() - 5);
        assert_eq!(f, Framing::Length(5));
    }

    #[test]
    fn request_framing_rules() {
        let f = |s: &str| req(s.as_bytes(), false).1;
        assert_eq!(f("GET / HTTP/1.1\r\n\r\n"), Framing::Empty);
        assert_eq!(
            f("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(f("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), Framing::Unknown);
        assert_eq!(f("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n"), Framing::Length(7));
        assert_eq!(f("POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n"), Framing::Unknown);
        assert_eq!(f("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), Framing::Unknown);
        assert_eq!(f("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"), Framing::Unknown);
    }

    #[test]
    fn connection_close_defaults() {
        assert!(req(b"GET / HTTP/1.0\r\n\r\n", false).0.connection_close);
        assert!(!req(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", false).0.connection_close);
        assert!(req(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false).0.connection_close);
    }

    #[test]
    fn response_framing_rules() {
        let f = |s: &str, e| resp(s.as_bytes(), e).1;
        assert_eq!(f("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", Expect::Other), Framing::Length(3));
        assert_eq!(f("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", Expect::Head), Framing::Empty);
        assert_eq!(f("HTTP/1.1 200 OK\r\n\r\n", Expect::Connect), Framing::Tunnel);
        assert_eq!(f("HTTP/1.1 407 No\r\nContent-Length: 0\r\n\r\n", Expect::Connect), Framing::Length(0));
        assert_eq!(f("HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", Expect::Other), Framing::Empty);
        assert_eq!(f("HTTP/1.1 304 Not Modified\r\n\r\n", Expect::Other), Framing::Empty);
        assert_eq!(f("HTTP/1.1 100 Continue\r\n\r\n", Expect::Other), Framing::Interim);
        assert_eq!(f("HTTP/1.1 101 Switching\r\n\r\n", Expect::Other), Framing::Tunnel);
        assert_eq!(f("HTTP/1.0 200 OK\r\n\r\n", Expect::Other), Framing::Close);
        assert_eq!(f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", Expect::Other), Framing::Close);
        assert_eq!(f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Expect::Other), Framing::Chunked);
        let (r, _) = resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Expect::Other);
        assert!(r.chunked && r.content_length.is_none());
    }

    #[test]
    fn partial_and_invalid() {
        assert_eq!(parse_request(b"GET / HT", false), Parsed::Partial { start_line: false });
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHo", false), Parsed::Partial { start_line: true });
        assert_eq!(parse_request(b"GET / HTTP/2.0\r\n", false), Parsed::Invalid);
        assert_eq!(parse_request(b"\x16\x03\x01\x02\x00", false), Parsed::Invalid);
        assert_eq!(parse_request(b"ABCDEFGHIJKLMNOPQ / HTTP/1.1\r\n", false), Parsed::Invalid);
        assert!(matches!(parse_request(b"ABCDEFGHIJKLMNOP / HTTP/1.1\r\n\r\n", false), Parsed::Head(..)));
        assert_eq!(parse_request(b"GE", true), Parsed::Nothing);
        assert_eq!(parse_response(b"HTTP/1.1 2", false, Expect::Other), Parsed::Partial { start_line: false });
        assert_eq!(parse_response(b"HTTP/2 200", false, Expect::Other), Parsed::Invalid);
        assert_eq!(parse_response(b"HTTP/1.1 099 x\r\n\r\n", false, Expect::Other), Parsed::Invalid);
        assert_eq!(parse_response(b"HTTP/1.1 100 Cont", true, Expect::Other), Parsed::Nothing);
    }

    #[test]
    fn salvage_cut_heads() {
        let (r, f) = req(b"GET /very/long/pa", true);
        assert_eq!((r.method.as_str(), r.target.as_str(), r.head_complete), ("GET", "/very/long/pa", false));
        assert_eq!((r.header_bytes, f), (17, Framing::Unknown));
        let (r, _) = req(b"PUT /a HTTP/1.0\r\nHost: h\r\nContent-Length: 9\r\nX-Cut: abc", true);
        assert_eq!(r.host.as_deref(), Some("h"));
        assert_eq!(r.content_length, Some(9));
        assert_eq!(r.version, Version::Http10);
        match parse_response(b"HTTP/1.1 503 Busy\r\nContent-Le", true, Expect::Other) {
            Parsed::Head(r, Framing::Unknown) => assert_eq!((r.status, r.head_complete), (503, false)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn many_headers_fall_back_to_heap() {
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        buf.extend_from_slice(b"Host: late\r\nContent-Length: 2\r\n\r\n");
        let (r, f) = req(&buf, false);
        assert_eq!(r.host.as_deref(), Some("late"));
        assert_eq!(f, Framing::Length(2));
    }
}
