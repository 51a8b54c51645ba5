//! Logging in OBI's format: Go `log/slog` text (or JSON) lines on stderr.
//!
//! ```text
//! time=2026-11-25T05:43:26.656Z level=INFO msg="instrumenting process" component=discover.traceAttacher cmd=/usr/bin/python3.11 pid=123
//! ```
//!
//! Callers pass `component` like any other field:
//! `tracing::info!(component = "discover.traceAttacher", cmd = %path, pid, "instrumenting process")`.
//! Fields of the enclosing spans come first (like slog's `Logger.With`),
//! then the event's fields, in the order they are written.
//!
//! Logs go to stderr so stdout carries only data (the trace printer's
//! spans): `OTEL_EBPF_TRACE_PRINTER=json obi | jq` works. Each line is
//! formatted into a buffer and written with one `write_all` under the stderr
//! lock, so concurrent log lines never interleave.

use std::fmt::{self, Write as _};
use std::io::{self, Write};

use chrono::{DateTime, FixedOffset, Local, Timelike};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber: slog-style lines on stderr, events below
/// `level` dropped. Does nothing if a global subscriber is already set.
pub(crate) fn init(level: LogLevel, format: LogFormat) {
    let _ = tracing::subscriber::set_global_default(subscriber(level, format, StderrWriter));
}

/// Like [`init`], writing to `writer`.
pub(crate) fn init_with<W>(level: LogLevel, format: LogFormat, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let _ = tracing::subscriber::set_global_default(subscriber(level, format, writer));
}

/// A subscriber writing to `writer` (see [`init`]); for tests and embedding.
pub(crate) fn subscriber<W>(level: LogLevel, format: LogFormat, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Registry::default().with(SlogLayer::new(format, writer).with_filter(level_filter(level)))
}

/// The `tracing` filter for a configured level.
pub(crate) fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

/// Writes each line to stderr with one `write_all` under the stderr lock,
/// then flushes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StderrWriter;

/// A locked stderr handle; see [`StderrWriter`].
pub(crate) struct LockedStderr(io::StderrLock<'static>);

impl Write for LockedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)?;
        self.0.flush()
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for StderrWriter {
    type Writer = LockedStderr;
    fn make_writer(&'a self) -> Self::Writer {
        LockedStderr(io::stderr().lock())
    }
}

/// A field value as recorded by `tracing`.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
}

/// Fields in recording order.
#[derive(Debug, Default)]
struct Fields {
    message: Option<String>,
    pairs: Vec<(&'static str, Value)>,
}

impl Fields {
    fn push(&mut self, field: &Field, v: Value) {
        if field.name() == "message" {
            self.message = Some(match v {
                Value::Str(s) => s,
                other => value_text(&other),
            });
        } else {
            self.pairs.push((field.name(), v));
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::Str(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Str(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push(field, Value::I128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push(field, Value::U128(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::Str(value.to_string()));
    }
}

/// Span fields, stored in the span's extensions.
struct SpanFields(Vec<(&'static str, Value)>);

/// The layer that formats events as slog lines.
pub(crate) struct SlogLayer<W> {
    format: LogFormat,
    writer: W,
    clock: fn() -> DateTime<FixedOffset>,
}

fn local_now() -> DateTime<FixedOffset> {
    Local::now().fixed_offset()
}

impl<W> SlogLayer<W> {
    pub(crate) fn new(format: LogFormat, writer: W) -> Self {
        SlogLayer { format, writer, clock: local_now }
    }

    /// Replaces the clock (tests).
    #[cfg(test)]
    pub(crate) fn with_clock(mut self, clock: fn() -> DateTime<FixedOffset>) -> Self {
        self.clock = clock;
        self
    }
}

impl<S, W> Layer<S> for SlogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.pairs));
        }
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            match ext.get_mut::<SpanFields>() {
                Some(existing) => existing.0.extend(fields.pairs),
                None => ext.insert(SpanFields(fields.pairs)),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut pairs: Vec<(&'static str, Value)> = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(sf) = span.extensions().get::<SpanFields>() {
                    pairs.extend(sf.0.iter().cloned());
                }
            }
        }
        pairs.extend(fields.pairs);
        let time = (self.clock)();
        let level = level_name(*event.metadata().level());
        let msg = fields.message.unwrap_or_default();
        let line = match self.format {
            LogFormat::Text => format_text(time, level, &msg, &pairs),
            LogFormat::Json => format_json(time, level, &msg, &pairs),
        };
        let mut w = self.writer.make_writer_for(event.metadata());
        let _ = w.write_all(line.as_bytes());
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        // slog has no TRACE level.
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// Go's `2006-01-02T15:04:05.000Z07:00` (slog text handler): milliseconds,
/// `Z` for UTC, `+hh:mm` otherwise.
fn time_millis(t: DateTime<FixedOffset>) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    push_offset(&mut s, t);
    s
}

/// Go's `time.RFC3339Nano` (slog JSON handler): nanoseconds with trailing
/// zeros trimmed (no fraction when zero).
fn time_nanos(t: DateTime<FixedOffset>) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    push_offset(&mut s, t);
    s
}

fn push_offset(s: &mut String, t: DateTime<FixedOffset>) {
    let secs = t.offset().local_minus_utc();
    if secs == 0 {
        s.push('Z');
    } else {
        let sign = if secs < 0 { '-' } else { '+' };
        let a = secs.abs();
        let _ = write!(s, "{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60);
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::I64(i) => i.to_string(),
        Value::U64(u) => u.to_string(),
        Value::I128(i) => i.to_string(),
        Value::U128(u) => u.to_string(),
        Value::F64(f) => go_float(*f),
        Value::Bool(b) => b.to_string(),
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, as slog prints floats.
fn go_float(f: f64) -> String {
    crate::export::gofmt::GoFloat(f).to_string()
}

/// slog's `needsQuoting`: empty, or containing a space, `=`, `"`, a control
/// character, or a non-printable/space Unicode character. A backslash alone
/// does not need quoting.
fn needs_quoting(s: &str) -> bool {
    s.is_empty()
        || s.chars().any(|c| {
            if c.is_ascii() {
                c != '\\' && (c == ' ' || c == '=' || c == '"' || c.is_ascii_control())
            } else {
                c.is_whitespace() || c.is_control() || c == '\u{FFFD}'
            }
        })
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_text_string(out: &mut String, s: &str) {
    if needs_quoting(s) {
        go_quote(s, out);
    } else {
        out.push_str(s);
    }
}

/// One slog text line, newline included.
fn format_text(time: DateTime<FixedOffset>, level: &str, msg: &str, pairs: &[(&str, Value)]) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("time=");
    out.push_str(&time_millis(time));
    out.push_str(" level=");
    out.push_str(level);
    out.push_str(" msg=");
    push_text_string(&mut out, msg);
    for (k, v) in pairs {
        out.push(' ');
        push_text_string(&mut out, k);
        out.push('=');
        match v {
            Value::Str(s) => push_text_string(&mut out, s),
            other => out.push_str(&value_text(other)),
        }
    }
    out.push('\n');
    out
}

fn push_json_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::Value::String(s.to_string()).to_string());
}

/// One slog JSON line, newline included.
fn format_json(time: DateTime<FixedOffset>, level: &str, msg: &str, pairs: &[(&str, Value)]) -> String {
    let mut out = String::with_capacity(160);
    out.push_str("{\"time\":");
    push_json_string(&mut out, &time_nanos(time));
    out.push_str(",\"level\":");
    push_json_string(&mut out, level);
    out.push_str(",\"msg\":");
    push_json_string(&mut out, msg);
    for (k, v) in pairs {
        out.push(',');
        push_json_string(&mut out, k);
        out.push(':');
        match v {
            Value::Str(s) => push_json_string(&mut out, s),
            Value::F64(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => out.push_str(&n.to_string()),
                None => push_json_string(&mut out, &go_float(*f)),
            },
            other => out.push_str(&value_text(other)),
        }
    }
    out.push_str("}\n");
    out
}

/// Formats one text line outside `tracing`, for messages printed before
/// logging is initialised (e.g. `wrong configuration`).
pub(crate) fn text_line(level: LogLevel, msg: &str, fields: &[(&str, &str)]) -> String {
    let pairs: Vec<(&str, Value)> = fields.iter().map(|(k, v)| (*k, Value::Str(v.to_string()))).collect();
    format_text(local_now(), level.as_str(), msg, &pairs)
}

/// An in-memory log destination for tests that assert on log lines.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::{Arc, Mutex};

    fn fixed_utc() -> DateTime<FixedOffset> {
        FixedOffset::east_opt(0).unwrap().with_ymd_and_hms(2026, 11, 25, 5, 43, 26).unwrap()
            + chrono::Duration::nanoseconds(656_123_400)
    }

    fn fixed_cet() -> DateTime<FixedOffset> {
        FixedOffset::east_opt(3600).unwrap().with_ymd_and_hms(2026, 11, 25, 6, 43, 26).unwrap()
            + chrono::Duration::milliseconds(5)
    }

    fn capture(level: LogLevel, format: LogFormat, clock: fn() -> DateTime<FixedOffset>, f: impl FnOnce()) -> String {
        let buf = Captured::default();
        let sub = Registry::default()
            .with(SlogLayer::new(format, buf.clone()).with_clock(clock).with_filter(level_filter(level)));
        tracing::subscriber::with_default(sub, f);
        buf.text()
    }

    #[test]
    fn text_line_like_obi() {
        let out = capture(LogLevel::Info, LogFormat::Text, fixed_utc, || {
            let path = std::path::Path::new("/usr/bin/python3.11");
            let pid = 123u32;
            tracing::info!(
                component = "discover.traceAttacher",
                cmd = %path.display(),
                pid,
                ino = 456u64,
                r#type = "python",
                service = "",
                "instrumenting process"
            );
        });
        assert_eq!(
            out,
            "time=2026-11-25T05:43:26.656Z level=INFO msg=\"instrumenting process\" component=discover.traceAttacher \
             cmd=/usr/bin/python3.11 pid=123 ino=456 type=python service=\"\"\n"
        );
    }

    #[test]
    fn offsets_levels_and_filtering() {
        let out = capture(LogLevel::Warn, LogFormat::Text, fixed_cet, || {
            tracing::debug!("hidden");
            tracing::info!("hidden");
            tracing::warn!(interval = ?std::time::Duration::from_secs(5), "careful");
            tracing::error!(error = "no BTF found", "Unable to load eBPF watcher for process events");
        });
        assert_eq!(
            out,
            "time=2026-11-25T06:43:26.005+01:00 level=WARN msg=careful interval=5s\n\
             time=2026-11-25T06:43:26.005+01:00 level=ERROR msg=\"Unable to load eBPF watcher for process events\" \
             error=\"no BTF found\"\n"
        );
        let out = capture(LogLevel::Debug, LogFormat::Text, fixed_utc, || {
            tracing::debug!("shown");
            tracing::trace!("shown as debug? no: filtered");
        });
        assert_eq!(out, "time=2026-11-25T05:43:26.656Z level=DEBUG msg=shown\n");
    }

    #[test]
    fn quoting_rules() {
        let cases = [
            ("plain", "plain"),
            ("", "\"\""),
            ("a b", "\"a b\""),
            ("k=v", "\"k=v\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("back\\slash", "back\\slash"),
            ("back\\ slash", "\"back\\\\ slash\""),
            ("tab\there", "\"tab\\there\""),
            ("nl\n", "\"nl\\n\""),
            ("bell\u{1}", "\"bell\\x01\""),
            ("ünïcödé", "ünïcödé"),
            ("nb\u{a0}sp", "\"nb\\u00a0sp\""),
            ("/usr/bin/node", "/usr/bin/node"),
            ("[::1]:8080", "[::1]:8080"),
        ];
        for (input, want) in cases {
            let mut out = String::new();
            push_text_string(&mut out, input);
            assert_eq!(out, want, "input {input:?}");
        }
    }

    #[test]
    fn value_types() {
        let out = capture(LogLevel::Info, LogFormat::Text, fixed_utc, || {
            let err = io::Error::other("boom now");
            tracing::info!(
                neg = -5i64,
                ok = true,
                ratio = 0.25f64,
                big = 1e21f64,
                err = &err as &(dyn std::error::Error + 'static),
                "values"
            );
        });
        assert_eq!(
            out,
            "time=2026-11-25T05:43:26.656Z level=INFO msg=values neg=-5 ok=true ratio=0.25 big=1e+21 err=\"boom now\"\n"
        );
    }

    #[test]
    fn span_fields_come_first() {
        let out = capture(LogLevel::Info, LogFormat::Text, fixed_utc, || {
            let span = tracing::info_span!("x", component = "obi.Instrumenter");
            let _g = span.enter();
            tracing::info!(pid = 7, "Starting main node");
        });
        assert_eq!(
            out,
            "time=2026-11-25T05:43:26.656Z level=INFO msg=\"Starting main node\" component=obi.Instrumenter pid=7\n"
        );
    }

    #[test]
    fn json_line_like_slog() {
        let out = capture(LogLevel::Info, LogFormat::Json, fixed_utc, || {
            tracing::info!(component = "discover", pid = 12, ok = false, path = "a \"b\"", "instrumenting process");
        });
        assert_eq!(
            out,
            "{\"time\":\"2026-11-25T05:43:26.6561234Z\",\"level\":\"INFO\",\"msg\":\"instrumenting process\",\
             \"component\":\"discover\",\"pid\":12,\"ok\":false,\"path\":\"a \\\"b\\\"\"}\n"
        );
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["pid"], 12);
    }

    #[test]
    fn one_write_per_line() {
        #[derive(Clone, Default)]
        struct Counting(Arc<Mutex<Vec<Vec<u8>>>>);
        struct CountingWriter(Arc<Mutex<Vec<Vec<u8>>>>);
        impl Write for CountingWriter {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().push(b.to_vec());
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Counting {
            type Writer = CountingWriter;
            fn make_writer(&'a self) -> CountingWriter {
                CountingWriter(self.0.clone())
            }
        }
        let c = Counting::default();
        let sub = Registry::default().with(SlogLayer::new(LogFormat::Text, c.clone()).with_clock(fixed_utc));
        tracing::subscriber::with_default(sub, || {
            tracing::info!(a = 1, b = "two words", "first");
            tracing::info!("second");
        });
        let writes = c.0.lock().unwrap();
        assert_eq!(writes.len(), 2);
        assert!(writes.iter().all(|w| w.ends_with(b"\n") && w.iter().filter(|&&b| b == b'\n').count() == 1));
    }

    #[test]
    fn standalone_line() {
        let line = text_line(LogLevel::Error, "wrong configuration", &[("error", "bad \"x\"")]);
        assert!(line.starts_with("time="), "{line}");
        assert!(line.ends_with(" level=ERROR msg=\"wrong configuration\" error=\"bad \\\"x\\\"\"\n"), "{line}");
    }

    #[test]
    fn time_formats() {
        let t = FixedOffset::west_opt(5 * 3600 + 1800).unwrap().with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(time_millis(t), "2026-01-02T03:04:05.000-05:30");
        assert_eq!(time_nanos(t), "2026-01-02T03:04:05-05:30");
        assert_eq!(go_float(1.5e-5), "1.5e-05");
        assert_eq!(go_float(100000000.0), "1e+08");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
    }
}
