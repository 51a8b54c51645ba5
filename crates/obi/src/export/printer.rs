//! The trace printer (`trace_printer: text | json | json_indent`): writes each
//! batch of spans to an output stream in OBI's formats
//! (`pkg/export/debug/debug.go` and `request.Span.MarshalJSON`).
//!
//! One deliberate difference from OBI: the text timestamp. OBI formats it with
//! the Go layout `2006-01-02 15:04:05.12345`, which does not print fractional
//! seconds but month, day, hour, minute and second again after the dot. We
//! print the real microseconds instead: `2025-11-08 14:57:00.118257`.
//!
//! Names follow OBI's name resolver, which runs before the printer there:
//! for server (and other non-client) spans an unresolved host is named after
//! the service, for client spans an unresolved peer is. OBI's text printer
//! then appends `.<namespace>` to the name of the instrumented side.

use std::io::{self, Write};
use std::net::IpAddr;

use chrono::{DateTime, Datelike, FixedOffset, Local, NaiveDateTime, Timelike, Utc};

use super::gofmt::GoDuration;
use crate::span::{Endpoint, Span, Value, peer_name, printer_host_name, server_name};

/// Output format of the trace printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrinterFormat {
    /// One line per span.
    Text,
    /// One JSON array per batch, on one line.
    Json,
    /// One JSON array per batch, indented like Go's `json.MarshalIndent(v, "", " ")`.
    JsonIndent,
}

impl PrinterFormat {
    /// Parses OBI's `trace_printer` values that print spans: `text`, `json`,
    /// `json_indent`. Returns `None` for anything else (`disabled`, `counter`...).
    #[cfg(test)]
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "text" => Some(PrinterFormat::Text),
            "json" => Some(PrinterFormat::Json),
            "json_indent" => Some(PrinterFormat::JsonIndent),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PrinterFormat::Text => "text",
            PrinterFormat::Json => "json",
            PrinterFormat::JsonIndent => "json_indent",
        }
    }
}

/// Runs a printer on its own thread, printing each batch from `rx` to
/// stdout, until the queue closes. Writes to a slow terminal never block
/// the event loop: the queue in front of it is bounded and drops.
pub(crate) fn spawn_printer(
    format: PrinterFormat,
    mut rx: tokio::sync::mpsc::Receiver<super::fanout::SpanBatch>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("trace-printer".into())
        .spawn(move || {
            let mut printer = TracePrinter::new(format, Box::new(io::stdout()));
            while let Some(batch) = rx.blocking_recv() {
                if let Err(err) = printer.print_batch(&batch) {
                    // A closed stdout (piped into `head`) is not worth dying for.
                    tracing::debug!(component = "export.Printer", error = %err, "cannot print spans");
                }
            }
        })
        .expect("spawning the printer thread")
}

/// A buffer grown beyond this by one huge batch is given back afterwards.
const MAX_RETAINED_BUFFER: usize = 4 << 20;
const INITIAL_BUFFER: usize = 16 << 10;

/// Formats batches of spans and writes each batch with a single `write_all`.
pub(crate) struct TracePrinter {
    format: PrinterFormat,
    out: Box<dyn Write + Send>,
    /// Reused for every batch.
    buf: Vec<u8>,
    /// Time zone of the text timestamps; `None` is the local time zone.
    offset: Option<FixedOffset>,
}

impl TracePrinter {
    pub(crate) fn new(format: PrinterFormat, out: Box<dyn Write + Send>) -> Self {
        TracePrinter { format, out, buf: Vec::with_capacity(INITIAL_BUFFER), offset: None }
    }

    /// Prints text timestamps at a fixed UTC offset instead of local time
    /// (JSON output has Unix timestamps only and is not affected).
    #[cfg(test)]
    pub(crate) fn with_fixed_offset(mut self, offset: FixedOffset) -> Self {
        self.offset = Some(offset);
        self
    }

    /// Prints one batch: a line per span (text), or one JSON array followed by
    /// a newline (json, json_indent; `[]` for an empty batch).
    pub(crate) fn print_batch(&mut self, spans: &[Span]) -> io::Result<()> {
        self.buf.clear();
        match self.format {
            PrinterFormat::Text => {
                for span in spans {
                    write_text_span(&mut self.buf, span, self.offset);
                }
            }
            PrinterFormat::Json => write_json_batch(&mut self.buf, spans, false),
            PrinterFormat::JsonIndent => write_json_batch(&mut self.buf, spans, true),
        }
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.out.flush()?;
        }
        if self.buf.capacity() > MAX_RETAINED_BUFFER {
            self.buf = Vec::with_capacity(INITIAL_BUFFER);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Values

/// Writes an address (IPv4-mapped IPv6 as IPv4) without allocating. Address
/// text never needs JSON escaping.
fn write_addr(buf: &mut Vec<u8>, addr: Option<IpAddr>) {
    let _ = match addr {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => write!(buf, "{v4}"),
            None => write!(buf, "{v6}"),
        },
        Some(IpAddr::V4(v4)) => write!(buf, "{v4}"),
        None => Ok(()),
    };
}

fn write_value_text(buf: &mut Vec<u8>, value: Value<'_>) {
    let _ = match value {
        Value::Str(s) => buf.write_all(s.as_bytes()),
        Value::Int(n) => write!(buf, "{n}"),
        Value::Ip(addr) => {
            write_addr(buf, addr);
            Ok(())
        }
    };
}

// ---------------------------------------------------------------------------
// Text format

/// One line in OBI's format:
/// `%s (%s[%s]) %s(subType=%d) %v %s %s%s [%s:%d]->[%s:%d] contentLen:%dB responseLen:%dB svc=[%s %s] traceparent=[%s]`
fn write_text_span(buf: &mut Vec<u8>, span: &Span, offset: Option<FixedOffset>) {
    let sem = span.semantics();
    let sum = sem.summary();
    write_timestamp(buf, span.start_ns, offset);
    let _ = write!(
        buf,
        " ({}[{}]) {}(subType={}) {} {} {}",
        GoDuration(span.duration_ns()),
        GoDuration(span.handler_duration_ns()),
        sem.type_name(span.kind),
        sum.sub_type,
        sum.status,
        sum.method,
        sum.target,
    );
    if !sum.route.is_empty() {
        buf.push(b'(');
        buf.extend_from_slice(sum.route.as_bytes());
        buf.push(b')');
    }

    // The namespace suffix goes to the instrumented side: the peer of a client
    // span, the host of any other span. (OBI also suffixes the other side with
    // the remote namespace, which only Kubernetes metadata provides.)
    let ns = span.service.namespace.as_str();
    let client = span.is_client();
    buf.extend_from_slice(b" [");
    write_endpoint_text(buf, &span.peer, peer_name(span), if client { ns } else { "" });
    buf.extend_from_slice(b"]->[");
    write_endpoint_text(buf, &span.host, server_name(span), if client { "" } else { ns });

    let _ = write!(buf, "] contentLen:{}B responseLen:{}B svc=[", sum.request_size, sum.response_size);
    // Service.Job(): `namespace/name` or `name`.
    if !ns.is_empty() {
        buf.extend_from_slice(ns.as_bytes());
        buf.push(b'/');
    }
    buf.extend_from_slice(span.service.name.as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(span.service.language.as_str().as_bytes());
    buf.extend_from_slice(b"] traceparent=[");
    if span.trace.trace_id != [0; 16] {
        buf.extend_from_slice(b"00-");
        write_hex(buf, &span.trace.trace_id);
        buf.push(b'-');
        write_hex(buf, &span.trace.span_id);
        buf.push(b'[');
        write_hex(buf, &span.trace.parent_span_id);
        buf.extend_from_slice(b"]-");
        write_hex(buf, &[span.trace.flags]);
    }
    buf.extend_from_slice(b"]\n");
}

/// `<addr> as <name>[.<ns>]:<port>`
fn write_endpoint_text(buf: &mut Vec<u8>, ep: &Endpoint, name: Value<'_>, ns: &str) {
    write_addr(buf, ep.addr);
    buf.extend_from_slice(b" as ");
    write_value_text(buf, name);
    if !ns.is_empty() {
        buf.push(b'.');
        buf.extend_from_slice(ns.as_bytes());
    }
    let _ = write!(buf, ":{}", ep.port);
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` in local time (or at `offset`).
fn write_timestamp(buf: &mut Vec<u8>, ns: u64, offset: Option<FixedOffset>) {
    let secs = (ns / 1_000_000_000) as i64;
    let nanos = (ns % 1_000_000_000) as u32;
    // Any u64 of nanoseconds (up to year 2554) is within chrono's range.
    let utc = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap_or_default();
    let t: NaiveDateTime = match offset {
        Some(off) => utc.with_timezone(&off).naive_local(),
        None => utc.with_timezone(&Local).naive_local(),
    };
    let _ = write!(
        buf,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 1_000
    );
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_hex(buf: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        buf.push(HEX[(b >> 4) as usize]);
        buf.push(HEX[(b & 0x0f) as usize]);
    }
}

// ---------------------------------------------------------------------------
// JSON format

/// A `serde_json` formatter that escapes strings like Go's `encoding/json`:
/// on top of serde_json's escaping (which matches Go's for `"`, `\`, and
/// control characters, with `\b \f \n \r \t` short forms as in Go >= 1.22) it
/// escapes `<`, `>`, `&` (Go's default HTML-safe escaping) and U+2028/U+2029.
struct GoJsonEscape;

impl serde_json::ser::Formatter for GoJsonEscape {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let (escape, len): (&[u8], usize) = match bytes[i] {
                b'<' => (b"\\u003c", 1),
                b'>' => (b"\\u003e", 1),
                b'&' => (b"\\u0026", 1),
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => (b"\\u2028", 3),
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => (b"\\u2029", 3),
                _ => {
                    i += 1;
                    continue;
                }
            };
            writer.write_all(&bytes[start..i])?;
            writer.write_all(escape)?;
            i += len;
            start = i;
        }
        writer.write_all(&bytes[start..])
    }
}

/// Writes JSON text with Go's layout, either compact or as
/// `json.MarshalIndent(v, "", " ")` would.
struct JsonOut<'b> {
    buf: &'b mut Vec<u8>,
    indent: bool,
}

impl JsonOut<'_> {
    fn newline(&mut self, depth: usize) {
        if self.indent {
            self.buf.push(b'\n');
            self.buf.resize(self.buf.len() + depth, b' ');
        }
    }

    /// Starts an object member; `key` must need no escaping.
    fn key(&mut self, depth: usize, first: bool, key: &str) {
        if !first {
            self.buf.push(b',');
        }
        self.newline(depth);
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(if self.indent { b"\": " } else { b"\":" });
    }

    fn str(&mut self, s: &str) {
        let mut ser = serde_json::Serializer::with_formatter(&mut *self.buf, GoJsonEscape);
        // Writing to a Vec cannot fail.
        let _ = serde::Serializer::serialize_str(&mut ser, s);
    }

    /// Any value as a JSON string (OBI's attributes are all strings).
    fn value(&mut self, value: Value<'_>) {
        match value {
            Value::Str(s) => self.str(s),
            Value::Int(n) => self.num(n),
            Value::Ip(addr) => {
                self.buf.push(b'"');
                write_addr(self.buf, addr);
                self.buf.push(b'"');
            }
        }
    }

    /// A number as a JSON string, like Go's `json:",string"` option.
    fn num(&mut self, n: impl std::fmt::Display) {
        let _ = write!(self.buf, "\"{n}\"");
    }

    fn hex(&mut self, bytes: &[u8]) {
        self.buf.push(b'"');
        write_hex(self.buf, bytes);
        self.buf.push(b'"');
    }

    /// A string map written by `attrs`, which gives keys sorted, as Go
    /// sorts map keys.
    fn attrs(&mut self, depth: usize, span: &Span) {
        self.buf.push(b'{');
        let mut first = true;
        let mut last_key = "";
        span.semantics().printer_attributes(span, &mut |key, value| {
            debug_assert!(last_key < key, "attribute keys must be sorted");
            last_key = key;
            self.key(depth + 1, first, key);
            self.value(value);
            first = false;
        });
        if !first {
            self.newline(depth);
        }
        self.buf.push(b'}');
    }
}

/// `json.Marshal(spans)` / `json.MarshalIndent(spans, "", " ")` plus `\n`.
fn write_json_batch(buf: &mut Vec<u8>, spans: &[Span], indent: bool) {
    let mut j = JsonOut { buf, indent };
    j.buf.push(b'[');
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            j.buf.push(b',');
        }
        j.newline(1);
        write_json_span(&mut j, span, 1);
    }
    if !spans.is_empty() {
        j.newline(0);
    }
    j.buf.extend_from_slice(b"]\n");
}

/// One span object, keys in the order of OBI's `Span.MarshalJSON`.
fn write_json_span(j: &mut JsonOut<'_>, span: &Span, depth: usize) {
    let d = depth + 1;
    let duration = span.duration_ns();
    let handler_duration = span.handler_duration_ns();

    j.buf.push(b'{');
    j.key(d, true, "type");
    j.str(span.semantics().type_name(span.kind));
    j.key(d, false, "peer");
    j.value(Value::ip(span.peer.addr));
    j.key(d, false, "peerPort");
    j.num(span.peer.port);
    j.key(d, false, "host");
    j.value(Value::ip(span.host.addr));
    j.key(d, false, "hostPort");
    j.num(span.host.port);
    j.key(d, false, "traceID");
    j.hex(&span.trace.trace_id);
    j.key(d, false, "spanID");
    j.hex(&span.trace.span_id);
    j.key(d, false, "parentSpanID");
    j.hex(&span.trace.parent_span_id);
    // uint8 with `json:",string"`: decimal, e.g. "1".
    j.key(d, false, "traceFlags");
    j.num(span.trace.flags);
    j.key(d, false, "peerName");
    j.value(peer_name(span));
    j.key(d, false, "hostName");
    j.value(printer_host_name(span));
    j.key(d, false, "kind");
    j.str(span.kind.otel_name());
    j.key(d, false, "start");
    j.num(span.request_start_ns / 1_000);
    j.key(d, false, "handlerStart");
    j.num(span.start_ns / 1_000);
    j.key(d, false, "end");
    j.num(span.end_ns / 1_000);
    j.key(d, false, "duration");
    j.num(GoDuration(duration));
    j.key(d, false, "durationUSec");
    j.num(duration / 1_000);
    j.key(d, false, "handlerDuration");
    j.num(GoDuration(handler_duration));
    j.key(d, false, "handlerDurationUSec");
    j.num(handler_duration / 1_000);
    j.key(d, false, "attributes");
    j.attrs(d, span);
    j.newline(depth);
    j.buf.push(b'}');
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::{Arc, Mutex};

    use chrono::TimeZone;
    use serde_json::Value;

    use crate::span::fixtures::http;
    use crate::span::{GrpcSpan, HttpSpan, SpanDetail, SpanKind};

    use super::*;
    use crate::service::{Language, Service};
    use crate::span::TraceContext;

    /// Collects everything written, and counts `write` calls.
    #[derive(Clone, Default)]
    struct Capture {
        data: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
    }

    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.data.lock().unwrap().extend_from_slice(b);
            *self.writes.lock().unwrap() += 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.data.lock().unwrap())).unwrap()
        }
        fn writes(&self) -> usize {
            *self.writes.lock().unwrap()
        }
    }

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    fn print_with(format: PrinterFormat, spans: &[Span]) -> String {
        let cap = Capture::default();
        let mut p = TracePrinter::new(format, Box::new(cap.clone())).with_fixed_offset(utc());
        p.print_batch(spans).unwrap();
        cap.take()
    }

    fn service(name: &str, namespace: &str, language: Language) -> Arc<Service> {
        Arc::new(Service { name: name.into(), namespace: namespace.into(), language, pid: 1234, ..Default::default() })
    }

    fn ep(ip: [u8; 4], port: u16, name: &str) -> Endpoint {
        Endpoint { addr: Some(IpAddr::V4(Ipv4Addr::from(ip))), port, name: name.into() }
    }

    fn hex_bytes<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// Nanoseconds since the epoch of a UTC wall-clock time.
    fn utc_ns(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ns: u32) -> u64 {
        let t = Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap();
        t.timestamp() as u64 * 1_000_000_000 + ns as u64
    }

    /// The HTTP server span of the reference line in obi.md.
    fn reference_span() -> Span {
        let start = utc_ns(2025, 11, 8, 14, 57, 0, 118_257_345);
        let end = start + 5_976_471;
        Span {
            kind: SpanKind::Server,
            detail: SpanDetail::Http(HttpSpan {
                method: "GET".into(),
                path: "/".into(),
                route: "/".into(),
                status: 200,
                request_body_size: 64,
                response_body_size: 1973,
                host_header: None,
                tls: false,
            }),
            peer: ep([127, 0, 0, 1], 46486, ""),
            host: ep([127, 0, 0, 1], 1880, ""),
            request_start_ns: end - 17_069_032,
            start_ns: start,
            end_ns: end,
            trace: TraceContext {
                trace_id: hex_bytes("dd663fa576d6fdb8abec6894f5317772"),
                span_id: hex_bytes("5a7708a3834bcebe"),
                parent_span_id: [0; 8],
                flags: 1,
            },
            service: service("node", "", Language::NodeJs),
            peer_service: None,
        }
    }

    const REFERENCE_LINE: &str = "2025-11-08 14:57:00.118257 (17.069032ms[5.976471ms]) HTTP(subType=0) 200 GET /(/) \
        [127.0.0.1 as 127.0.0.1:46486]->[127.0.0.1 as node:1880] contentLen:64B responseLen:1973B \
        svc=[node nodejs] traceparent=[00-dd663fa576d6fdb8abec6894f5317772-5a7708a3834bcebe[0000000000000000]-01]\n";

    /// The span of OBI's own printer tests (`debug_test.go`), with IP addresses.
    fn obi_test_span() -> Span {
        let base = utc_ns(2025, 1, 2, 3, 4, 5, 0);
        Span {
            kind: SpanKind::Server,
            detail: SpanDetail::Http(HttpSpan {
                method: "method".into(),
                path: "path".into(),
                route: "route".into(),
                status: 200,
                request_body_size: 1024,
                response_body_size: 2048,
                host_header: None,
                tls: false,
            }),
            peer: ep([10, 0, 0, 1], 1234, "peername"),
            host: ep([10, 0, 0, 2], 5678, "hostname"),
            request_start_ns: base + 10_000,
            start_ns: base + 15_000,
            end_ns: base + 35_000,
            trace: TraceContext {
                trace_id: [1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                span_id: [1, 2, 3, 0, 0, 0, 0, 0],
                parent_span_id: [1, 2, 4, 0, 0, 0, 0, 0],
                flags: 1,
            },
            service: service("bar", "foo", Language::Go),
            peer_service: None,
        }
    }

    fn client_span() -> Span {
        let start = utc_ns(2025, 6, 1, 12, 0, 0, 500_000_000);
        Span {
            kind: SpanKind::Client,
            detail: SpanDetail::Http(HttpSpan {
                method: "POST".into(),
                path: "/api/orders".into(),
                route: String::new(),
                status: 201,
                request_body_size: 120,
                response_body_size: 33,
                host_header: Some("orders:8080".into()),
                tls: false,
            }),
            peer: ep([10, 0, 0, 5], 51234, ""),
            host: ep([10, 0, 0, 9], 8080, ""),
            request_start_ns: start,
            start_ns: start,
            end_ns: start + 2_500_000,
            trace: TraceContext {
                trace_id: hex_bytes("0af7651916cd43dd8448eb211c80319c"),
                span_id: hex_bytes("b7ad6b7169203331"),
                parent_span_id: hex_bytes("00f067aa0ba902b7"),
                flags: 0,
            },
            service: service("frontend", "shop", Language::Python),
            peer_service: None,
        }
    }

    fn grpc_span(client: bool) -> Span {
        let start = utc_ns(2025, 6, 1, 12, 0, 1, 0);
        Span {
            kind: if client { SpanKind::Client } else { SpanKind::Server },
            detail: SpanDetail::Grpc(GrpcSpan {
                http_method: String::new(),
                method: "/helloworld.Greeter/SayHello".into(),
                status: 0,
                request_body_size: 10,
                response_body_size: 20,
                authority: None,
            }),
            peer: ep([10, 0, 0, 5], 40000, ""),
            host: ep([10, 0, 0, 6], 50051, ""),
            request_start_ns: start,
            start_ns: start + 1_000,
            end_ns: start + 1_501_000,
            trace: TraceContext::default(),
            service: service("greeter", "", Language::Go),
            peer_service: None,
        }
    }

    #[test]
    fn text_reference_example() {
        assert_eq!(print_with(PrinterFormat::Text, &[reference_span()]), REFERENCE_LINE);
    }

    #[test]
    fn text_timestamp_uses_the_time_zone() {
        let cap = Capture::default();
        let tokyo = FixedOffset::east_opt(9 * 3600).unwrap();
        let mut p = TracePrinter::new(PrinterFormat::Text, Box::new(cap.clone())).with_fixed_offset(tokyo);
        p.print_batch(&[reference_span()]).unwrap();
        let out = cap.take();
        assert!(out.starts_with("2025-11-08 23:57:00.118257 (17.069032ms"), "{out}");

        // Local time (whatever the machine's zone is): same line after the timestamp.
        let cap = Capture::default();
        let mut p = TracePrinter::new(PrinterFormat::Text, Box::new(cap.clone()));
        let span = reference_span();
        p.print_batch(std::slice::from_ref(&span)).unwrap();
        let out = cap.take();
        let local = Local.timestamp_nanos(span.start_ns as i64).format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        assert_eq!(out[..26], local);
        assert_eq!(out[26..], REFERENCE_LINE[26..]);
    }

    #[test]
    fn text_obi_printer_test_span() {
        // OBI's expectation, minus the Kubernetes-only `.otherns` peer suffix.
        let want = "2025-01-02 03:04:05.000015 (25µs[20µs]) HTTP(subType=0) 200 method path(route) \
            [10.0.0.1 as peername:1234]->[10.0.0.2 as hostname.foo:5678] contentLen:1024B responseLen:2048B \
            svc=[foo/bar go] traceparent=[00-01020300000000000000000000000000-0102030000000000[0102040000000000]-01]\n";
        assert_eq!(print_with(PrinterFormat::Text, &[obi_test_span()]), want);
    }

    #[test]
    fn text_client_span_without_route() {
        let want = "2025-06-01 12:00:00.500000 (2.5ms[2.5ms]) HTTPClient(subType=0) 201 POST /api/orders \
            [10.0.0.5 as frontend.shop:51234]->[10.0.0.9 as 10.0.0.9:8080] contentLen:120B responseLen:33B \
            svc=[shop/frontend python] traceparent=[00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331[00f067aa0ba902b7]-00]\n";
        assert_eq!(print_with(PrinterFormat::Text, &[client_span()]), want);
    }

    #[test]
    fn text_server_span_without_route_or_trace() {
        let mut span = grpc_span(false);
        span.peer.addr = Some(IpAddr::V6(Ipv4Addr::new(192, 168, 1, 7).to_ipv6_mapped()));
        span.host.addr = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        let want = "2025-06-01 12:00:01.000001 (1.501ms[1.5ms]) GRPC(subType=0) 0  /helloworld.Greeter/SayHello \
            [192.168.1.7 as 192.168.1.7:40000]->[::1 as greeter:50051] contentLen:10B responseLen:20B \
            svc=[greeter go] traceparent=[]\n";
        assert_eq!(print_with(PrinterFormat::Text, &[span]), want);
    }

    #[test]
    fn text_process_alive() {
        let svc = service("node", "", Language::NodeJs);
        let now = utc_ns(2025, 11, 8, 14, 57, 0, 118_257_000);
        let want = "2025-11-08 14:57:00.118257 (0s[0s]) ProcessAlive(subType=0) 0   [ as :0]->[ as node:0] \
            contentLen:0B responseLen:0B svc=[node nodejs] traceparent=[]\n";
        assert_eq!(print_with(PrinterFormat::Text, &[Span::process_alive(svc.clone(), now)]), want);

        // Same output when the host name is left empty: it falls back to the service name.
        let mut span = Span::process_alive(svc, now);
        span.host.name.clear();
        assert_eq!(print_with(PrinterFormat::Text, &[span]), want);
    }

    #[test]
    fn text_batch_is_one_write() {
        let cap = Capture::default();
        let mut p = TracePrinter::new(PrinterFormat::Text, Box::new(cap.clone())).with_fixed_offset(utc());
        let spans = vec![reference_span(), client_span(), grpc_span(true)];
        p.print_batch(&spans).unwrap();
        assert_eq!(cap.writes(), 1);
        let out = cap.take();
        assert_eq!(out.lines().count(), 3);
        assert!(out.starts_with(REFERENCE_LINE));

        // Buffer reuse: the next batch holds only its own spans.
        p.print_batch(&spans[1..2]).unwrap();
        assert_eq!(cap.writes(), 2);
        assert_eq!(cap.take().lines().count(), 1);

        // Empty batch: nothing written.
        p.print_batch(&[]).unwrap();
        assert_eq!(cap.writes(), 2);
        assert_eq!(cap.take(), "");
    }

    #[test]
    fn text_does_not_escape() {
        let mut span = reference_span();
        http(&mut span).path = "/a<b>&c".into();
        http(&mut span).route.clear();
        let out = print_with(PrinterFormat::Text, &[span]);
        assert!(out.contains(" 200 GET /a<b>&c [127.0.0.1 as"), "{out}");
    }

    fn obi_test_json_times(span: &Span) -> (String, String, String) {
        (
            (span.request_start_ns / 1000).to_string(),
            (span.start_ns / 1000).to_string(),
            (span.end_ns / 1000).to_string(),
        )
    }

    #[test]
    fn json_obi_printer_test_span() {
        let span = obi_test_span();
        let (start, handler_start, end) = obi_test_json_times(&span);
        let want = format!(
            concat!(
                r#"[{{"type":"HTTP","peer":"10.0.0.1","peerPort":"1234","host":"10.0.0.2","hostPort":"5678","#,
                r#""traceID":"01020300000000000000000000000000","spanID":"0102030000000000","#,
                r#""parentSpanID":"0102040000000000","traceFlags":"1","peerName":"peername","hostName":"hostname","#,
                r#""kind":"SPAN_KIND_SERVER","start":"{}","handlerStart":"{}","end":"{}","#,
                r#""duration":"25µs","durationUSec":"25","handlerDuration":"20µs","handlerDurationUSec":"20","#,
                r#""attributes":{{"clientAddr":"peername","contentLen":"1024","method":"method","responseLen":"2048","#,
                r#""route":"route","serverAddr":"hostname","serverPort":"5678","status":"200","url":"path"}}}}]"#,
                "\n"
            ),
            start, handler_start, end
        );
        assert_eq!(print_with(PrinterFormat::Json, &[span]), want);
    }

    #[test]
    fn json_indent_obi_printer_test_span() {
        let span = obi_test_span();
        let (start, handler_start, end) = obi_test_json_times(&span);
        let want = format!(
            r#"[
 {{
  "type": "HTTP",
  "peer": "10.0.0.1",
  "peerPort": "1234",
  "host": "10.0.0.2",
  "hostPort": "5678",
  "traceID": "01020300000000000000000000000000",
  "spanID": "0102030000000000",
  "parentSpanID": "0102040000000000",
  "traceFlags": "1",
  "peerName": "peername",
  "hostName": "hostname",
  "kind": "SPAN_KIND_SERVER",
  "start": "{start}",
  "handlerStart": "{handler_start}",
  "end": "{end}",
  "duration": "25µs",
  "durationUSec": "25",
  "handlerDuration": "20µs",
  "handlerDurationUSec": "20",
  "attributes": {{
   "clientAddr": "peername",
   "contentLen": "1024",
   "method": "method",
   "responseLen": "2048",
   "route": "route",
   "serverAddr": "hostname",
   "serverPort": "5678",
   "status": "200",
   "url": "path"
  }}
 }}
]
"#
        );
        assert_eq!(print_with(PrinterFormat::JsonIndent, &[span]), want);
    }

    #[test]
    fn json_indent_process_alive_matches_obi_example() {
        // From OBI's examples documentation (`trace_printer: json_indent`).
        let now = 1_759_922_777_016_787_123;
        let span = Span::process_alive(service("httpserver", "", Language::Go), now);
        let want = r#"[
 {
  "type": "ProcessAlive",
  "peer": "",
  "peerPort": "0",
  "host": "",
  "hostPort": "0",
  "traceID": "00000000000000000000000000000000",
  "spanID": "0000000000000000",
  "parentSpanID": "0000000000000000",
  "traceFlags": "0",
  "peerName": "",
  "hostName": "httpserver",
  "kind": "SPAN_KIND_INTERNAL",
  "start": "1759922777016787",
  "handlerStart": "1759922777016787",
  "end": "1759922777016787",
  "duration": "0s",
  "durationUSec": "0",
  "handlerDuration": "0s",
  "handlerDurationUSec": "0",
  "attributes": {}
 }
]
"#;
        assert_eq!(print_with(PrinterFormat::JsonIndent, &[span]), want);
    }

    #[test]
    fn json_empty_batch() {
        assert_eq!(print_with(PrinterFormat::Json, &[]), "[]\n");
        assert_eq!(print_with(PrinterFormat::JsonIndent, &[]), "[]\n");
    }

    const SPAN_KEYS: [&str; 20] = [
        "type",
        "peer",
        "peerPort",
        "host",
        "hostPort",
        "traceID",
        "spanID",
        "parentSpanID",
        "traceFlags",
        "peerName",
        "hostName",
        "kind",
        "start",
        "handlerStart",
        "end",
        "duration",
        "durationUSec",
        "handlerDuration",
        "handlerDurationUSec",
        "attributes",
    ];

    fn attr_keys(v: &Value) -> Vec<&str> {
        v["attributes"].as_object().unwrap().keys().map(|k| k.as_str()).collect()
    }

    #[test]
    fn json_batch_parses_back() {
        let spans = vec![
            reference_span(),
            client_span(),
            grpc_span(false),
            grpc_span(true),
            Span::process_alive(service("node", "", Language::NodeJs), 5),
        ];
        for format in [PrinterFormat::Json, PrinterFormat::JsonIndent] {
            let cap = Capture::default();
            let mut p = TracePrinter::new(format, Box::new(cap.clone()));
            p.print_batch(&spans).unwrap();
            assert_eq!(cap.writes(), 1);
            let out = cap.take();
            assert!(out.ends_with("]\n"));
            assert_eq!(out.lines().count() == 1, format == PrinterFormat::Json);
            let v: Value = serde_json::from_str(&out).unwrap();
            let arr = v.as_array().unwrap();
            assert_eq!(arr.len(), 5);
            for obj in arr {
                assert_eq!(obj.as_object().unwrap().len(), SPAN_KEYS.len());
            }

            let http = &arr[0];
            assert_eq!(http["type"], "HTTP");
            assert_eq!(http["peer"], "127.0.0.1");
            assert_eq!(http["peerPort"], "46486");
            assert_eq!(http["hostPort"], "1880");
            assert_eq!(http["traceID"], "dd663fa576d6fdb8abec6894f5317772");
            assert_eq!(http["spanID"], "5a7708a3834bcebe");
            assert_eq!(http["parentSpanID"], "0000000000000000");
            assert_eq!(http["traceFlags"], "1");
            assert_eq!(http["peerName"], "127.0.0.1");
            assert_eq!(http["hostName"], "node");
            assert_eq!(http["kind"], "SPAN_KIND_SERVER");
            assert_eq!(http["start"], (spans[0].request_start_ns / 1000).to_string());
            assert_eq!(http["handlerStart"], (spans[0].start_ns / 1000).to_string());
            assert_eq!(http["end"], (spans[0].end_ns / 1000).to_string());
            assert_eq!(http["duration"], "17.069032ms");
            assert_eq!(http["durationUSec"], "17069");
            assert_eq!(http["handlerDuration"], "5.976471ms");
            assert_eq!(http["handlerDurationUSec"], "5976");
            assert_eq!(
                attr_keys(http),
                [
                    "clientAddr",
                    "contentLen",
                    "method",
                    "responseLen",
                    "route",
                    "serverAddr",
                    "serverPort",
                    "status",
                    "url"
                ]
            );
            assert_eq!(http["attributes"]["clientAddr"], "127.0.0.1");
            assert_eq!(http["attributes"]["serverAddr"], "node");
            assert_eq!(http["attributes"]["serverPort"], "1880");
            assert_eq!(http["attributes"]["contentLen"], "64");
            assert_eq!(http["attributes"]["responseLen"], "1973");
            assert_eq!(http["attributes"]["url"], "/");

            let client = &arr[1];
            assert_eq!(client["type"], "HTTPClient");
            assert_eq!(client["kind"], "SPAN_KIND_CLIENT");
            assert_eq!(client["traceFlags"], "0");
            assert_eq!(client["peerName"], "frontend");
            // OBI leaves HostName empty for an unresolved client-span host.
            assert_eq!(client["hostName"], "");
            assert_eq!(
                attr_keys(client),
                ["clientAddr", "contentLen", "method", "responseLen", "serverAddr", "serverPort", "status", "url"]
            );
            assert_eq!(client["attributes"]["contentLen"], "120");
            assert_eq!(client["attributes"]["responseLen"], "33");
            assert_eq!(client["attributes"]["clientAddr"], "frontend");
            assert_eq!(client["attributes"]["serverAddr"], "10.0.0.9");
            assert_eq!(client["attributes"]["serverPort"], "8080");
            assert_eq!(client["attributes"]["status"], "201");
            assert_eq!(client["attributes"]["url"], "/api/orders");

            let grpc = &arr[2];
            assert_eq!(grpc["type"], "GRPC");
            assert_eq!(grpc["traceID"], "00000000000000000000000000000000");
            assert_eq!(attr_keys(grpc), ["clientAddr", "method", "serverAddr", "serverPort", "status"]);
            assert_eq!(grpc["attributes"]["method"], "/helloworld.Greeter/SayHello");
            assert_eq!(grpc["attributes"]["status"], "0");
            assert_eq!(grpc["attributes"]["clientAddr"], "10.0.0.5");
            assert_eq!(grpc["attributes"]["serverAddr"], "greeter");
            assert_eq!(grpc["duration"], "1.501ms");
            assert_eq!(grpc["durationUSec"], "1501");
            assert_eq!(grpc["handlerDurationUSec"], "1500");

            let grpc_client = &arr[3];
            assert_eq!(grpc_client["type"], "GRPCClient");
            assert_eq!(grpc_client["kind"], "SPAN_KIND_CLIENT");
            assert_eq!(attr_keys(grpc_client), ["method", "serverAddr", "serverPort", "status"]);
            assert_eq!(grpc_client["attributes"]["serverAddr"], "10.0.0.6");
            assert_eq!(grpc_client["attributes"]["serverPort"], "50051");

            let alive = &arr[4];
            assert_eq!(alive["type"], "ProcessAlive");
            assert_eq!(alive["kind"], "SPAN_KIND_INTERNAL");
            assert!(alive["attributes"].as_object().unwrap().is_empty());
        }
    }

    #[test]
    fn json_key_order() {
        let spans = vec![reference_span(), client_span()];
        let out = print_with(PrinterFormat::JsonIndent, &spans);
        // Members of the span objects are the lines indented by exactly two spaces.
        let keys: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("  \"") && !l.starts_with("   "))
            .map(|l| l[3..].split('"').next().unwrap())
            .collect();
        let want: Vec<&str> = SPAN_KEYS.iter().chain(SPAN_KEYS.iter()).copied().collect();
        assert_eq!(keys, want);

        // The compact form has the same members in the same order.
        let compact = print_with(PrinterFormat::Json, &spans);
        let mut pos = 0;
        for key in want {
            let needle = format!("\"{key}\":");
            pos += compact[pos..].find(&needle).unwrap_or_else(|| panic!("{key} out of order"));
        }
    }

    #[test]
    fn json_escapes_like_go() {
        let mut span = reference_span();
        http(&mut span).method = "GET".into();
        http(&mut span).path = "/a<b>&c\"d\\e\nf\u{1}g\u{2028}h\u{2029}i\u{8}\u{c}\r\t\u{7f}é/".into();
        http(&mut span).route = "<script>".into();
        let out = print_with(PrinterFormat::Json, std::slice::from_ref(&span));
        assert!(
            out.contains(
                &(r#""url":"/a\u003cb\u003e\u0026c\"d\\e\nf\u0001g\u2028h\u2029i\b\f\r\t"#.to_owned() + "\u{7f}é/\"")
            ),
            "{out}"
        );
        assert!(out.contains(r#""route":"\u003cscript\u003e""#), "{out}");
        assert!(!out.contains('<') && !out.contains('>') && !out.contains('&'));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["attributes"]["url"], http(&mut span.clone()).path.as_str());
        assert_eq!(v[0]["attributes"]["route"], "<script>");

        let indented = print_with(PrinterFormat::JsonIndent, std::slice::from_ref(&span));
        assert!(indented.contains(r#""route": "\u003cscript\u003e""#), "{indented}");
    }

    #[test]
    fn json_escapes_names() {
        let mut span = client_span();
        span.service = service("a&b", "", Language::Go);
        span.host.name = "x<y".into();
        let out = print_with(PrinterFormat::Json, &[span]);
        assert!(out.contains(r#""peerName":"a\u0026b","hostName":"x\u003cy""#), "{out}");
        assert!(out.contains(r#""clientAddr":"a\u0026b""#), "{out}");
    }

    #[test]
    fn format_names() {
        for f in [PrinterFormat::Text, PrinterFormat::Json, PrinterFormat::JsonIndent] {
            assert_eq!(PrinterFormat::from_name(f.as_str()), Some(f));
        }
        assert_eq!(PrinterFormat::from_name("disabled"), None);
        assert_eq!(PrinterFormat::from_name("counter"), None);
    }
}
