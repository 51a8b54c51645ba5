//! SQL client spans (PostgreSQL; later MySQL): `OPERATION table` as the
//! name, the server's error code (SQLSTATE) as the status, and SQL's
//! `db.client.operation.duration` family.

use std::borrow::Cow;

use super::db::{self, DbCall};
use super::metric::FamilyDef;
use super::{AttrSink, Semantics, Span, SpanDetail, SpanKind, Summary, Value};

/// What an SQL statement and its result add to a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SqlSpan {
    pub(crate) call: DbCall,
}

impl Semantics for SqlSpan {
    fn type_name(&self, _kind: SpanKind) -> &'static str {
        "SQLClient"
    }

    fn instrumentation(&self) -> Option<&'static str> {
        Some("sql")
    }

    /// OBI's `OPERATION table`, `OPERATION`, or `SQL` when neither is known.
    fn name(&self) -> Cow<'_, str> {
        let c = &self.call;
        match (c.operation.is_empty(), c.collection.is_empty()) {
            (true, _) => Cow::Borrowed("SQL"),
            (false, true) => Cow::Borrowed(&c.operation),
            (false, false) => Cow::Owned(format!("{} {}", c.operation, c.collection)),
        }
    }

    fn is_error(&self, _kind: SpanKind) -> bool {
        self.call.error.is_some()
    }

    fn summary(&self) -> Summary<'_> {
        self.call.summary(&self.call.collection)
    }

    fn otel_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        self.call.otel_attributes(span, out);
    }

    fn printer_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        self.call.printer_attributes(span, out);
        out("table", Value::Str(&self.call.collection));
    }
}

fn is_sql(span: &Span) -> bool {
    matches!(span.detail, SpanDetail::Sql(_))
}

/// OBI's database client histogram, for SQL statements.
pub(super) static FAMILIES: &[FamilyDef] = &[db::client_family("sql", is_sql)];
