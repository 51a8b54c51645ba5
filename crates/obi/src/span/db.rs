//! What every database and cache client call shares, whatever its wire
//! protocol: the OpenTelemetry `db.*` attributes and the readers of the
//! `db.client.operation.duration` histogram's attributes. Each protocol's
//! span side (`redis.rs`...) holds a [`DbCall`] and declares its own family
//! (so `instrumentations` can pick `redis` or `sql`) under the one OBI name.

use super::metric::{Attr, FamilyDef, Measure, SERVER_ADDRESS, SERVER_PORT};
use super::naming::{server_address, server_name, write_server_port};
use std::borrow::Cow;

use super::{AttrSink, Semantics, Span, SpanDetail, SpanKind, Summary, Value};

/// The span side of one database protocol: its call, and what OBI calls
/// its spans. Every such type is a [`Semantics`] through the impl below.
pub(crate) trait DbProtocol {
    /// OBI's printer type of client spans (`RedisClient`, `SQLClient`).
    const CLIENT_TYPE: &'static str;
    /// ... and of server spans (`RedisServer`, `SQLServer`: OBI has no SQL
    /// server spans; the name follows its Redis one).
    const SERVER_TYPE: &'static str;
    /// The name `instrumentations` lists enable it by.
    const INSTRUMENTATION: &'static str;

    fn call(&self) -> &DbCall;

    /// The span name: the operation (a Redis or memcached command).
    fn span_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.call().operation)
    }

    /// What the text printer shows as the path: the query text.
    fn target(&self) -> &str {
        &self.call().query
    }

    /// JSON printer attributes beyond the shared ones (keys sorting after `statement`).
    fn more_printer_attributes(&self, _out: &mut AttrSink<'_>) {}
}

impl<T: DbProtocol> Semantics for T {
    fn type_name(&self, kind: SpanKind) -> &'static str {
        if kind == SpanKind::Server { T::SERVER_TYPE } else { T::CLIENT_TYPE }
    }

    fn instrumentation(&self) -> Option<&'static str> {
        Some(T::INSTRUMENTATION)
    }

    fn name(&self) -> Cow<'_, str> {
        self.span_name()
    }

    /// The server answered with an error (status 1, OBI's "DB error flag").
    fn is_error(&self, _kind: SpanKind) -> bool {
        self.call().error.is_some()
    }

    fn summary(&self) -> Summary<'_> {
        self.call().summary(self.target())
    }

    fn otel_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        self.call().otel_attributes(span, out);
    }

    fn printer_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        self.call().printer_attributes(span, out);
        self.more_printer_attributes(out);
    }
}

/// A database call: what the OTel database conventions describe.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DbCall {
    /// `db.system.name`: `redis`, `postgresql`...
    pub(crate) system: &'static str,
    /// `db.operation.name`: the command or SQL verb (`GET`, `SELECT`).
    pub(crate) operation: String,
    /// `db.namespace`: the database, when the connection's start was seen; empty otherwise.
    pub(crate) namespace: String,
    /// `db.collection.name`: the table, when the statement names one; empty otherwise.
    pub(crate) collection: String,
    /// `db.query.text`: literals replaced by `?` unless configured otherwise; never a password.
    pub(crate) query: String,
    /// The server's error, if it answered with one.
    pub(crate) error: Option<DbError>,
}

/// An error the database answered with.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DbError {
    /// `db.response.status_code`: Redis error prefix (`ERR`, `WRONGTYPE`),
    /// SQLSTATE, MySQL error number.
    pub(crate) code: String,
    pub(crate) message: String,
}

static NO_CALL: DbCall = DbCall {
    system: "",
    operation: String::new(),
    namespace: String::new(),
    collection: String::new(),
    query: String::new(),
    error: None,
};

impl DbCall {
    /// The call of a database span (empty for other spans, which database
    /// families never record).
    pub(crate) fn of(span: &Span) -> &DbCall {
        match &span.detail {
            SpanDetail::Redis(r) => &r.call,
            SpanDetail::Sql(q) => &q.call,
            SpanDetail::Memcached(m) => &m.call,
            _ => &NO_CALL,
        }
    }

    pub(crate) fn error_code(&self) -> &str {
        self.error.as_ref().map_or("", |e| e.code.as_str())
    }

    /// The text printer's fields: the operation, and `target` (the query
    /// text, or the table) as the path; status 1 for an error, as OBI.
    pub(crate) fn summary<'a>(&'a self, target: &'a str) -> Summary<'a> {
        Summary {
            sub_type: 0,
            status: self.error.is_some().into(),
            method: &self.operation,
            target,
            route: "",
            request_size: 0,
            response_size: 0,
        }
    }

    /// The JSON printer's attributes every database span has (keys sorted;
    /// a protocol may add keys that sort after `statement`).
    pub(crate) fn printer_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        if let Some(e) = &self.error {
            out("errorCode", Value::Str(&e.code));
            out("errorMessage", Value::Str(&e.message));
        }
        out("operation", Value::Str(&self.operation));
        out("serverAddr", server_name(span));
        out("serverPort", Value::Int(span.host.port.into()));
        out("statement", Value::Str(&self.query));
    }

    /// OTLP attributes of the call, as the OTel database conventions name them.
    pub(crate) fn otel_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        out("db.system.name", Value::Str(self.system));
        out("db.operation.name", Value::Str(&self.operation));
        if !self.namespace.is_empty() {
            out("db.namespace", Value::Str(&self.namespace));
        }
        if !self.collection.is_empty() {
            out("db.collection.name", Value::Str(&self.collection));
        }
        if !self.query.is_empty() {
            out("db.query.text", Value::Str(&self.query));
        }
        if let Some(e) = &self.error {
            out("db.response.status_code", Value::Str(&e.code));
            out("error.type", Value::Str(&e.code));
        }
        out("server.address", server_address(span));
        write_server_port(span, out);
    }
}

/// `db.operation.name`.
pub(crate) const OPERATION: Attr =
    Attr::new("db.operation.name", "db_operation_name", |s| Value::Str(&DbCall::of(s).operation));
/// `db.collection.name` (empty when unknown).
pub(crate) const COLLECTION: Attr =
    Attr::new("db.collection.name", "db_collection_name", |s| Value::Str(&DbCall::of(s).collection));
/// `error.type`: the status code of a failed call, empty otherwise.
pub(crate) const ERROR_TYPE: Attr = Attr::new("error.type", "error_type", |s| Value::Str(DbCall::of(s).error_code()));
/// `db.response.status_code`, empty on success.
pub(crate) const STATUS_CODE: Attr =
    Attr::new("db.response.status_code", "db_response_status_code", |s| Value::Str(DbCall::of(s).error_code()));

/// `db.system.name`.
const SYSTEM: Attr = Attr::new("db.system.name", "db_system_name", |s| Value::Str(DbCall::of(s).system));
const AVAILABLE: &[Attr] = &[OPERATION, SYSTEM, ERROR_TYPE, COLLECTION, STATUS_CODE, SERVER_ADDRESS, SERVER_PORT];
/// OBI's defaults for database metrics.
const DEFAULTS: &[Attr] = &[OPERATION, SYSTEM, ERROR_TYPE];

/// OBI's database client histogram, for the client spans `records` picks
/// (one protocol's), enabled by `instrumentation`. Every protocol's family
/// has the same name: the exposition writes them as one metric.
pub(crate) const fn client_family(instrumentation: &'static str, records: fn(&Span) -> bool) -> FamilyDef {
    FamilyDef {
        otel: "db.client.operation.duration",
        prom: "db_client_operation_duration_seconds",
        unit: "s",
        help: "duration of db client operations, in seconds",
        measure: Measure::Duration,
        instrumentation,
        kind: SpanKind::Client,
        records,
        available: AVAILABLE,
        defaults: DEFAULTS,
    }
}
