//! SQL client spans (PostgreSQL, MySQL/MariaDB): `OPERATION table` as the
//! name, the server's error code (SQLSTATE; MySQL's error number) as the
//! status, and SQL's `db.client.operation.duration` family.

use std::borrow::Cow;

use super::db::{self, DbCall, DbProtocol};
use super::metric::FamilyDef;
use super::{AttrSink, Span, SpanDetail, Value};

/// What an SQL statement and its result add to a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SqlSpan {
    pub(crate) call: DbCall,
}

impl DbProtocol for SqlSpan {
    const CLIENT_TYPE: &'static str = "SQLClient";
    const SERVER_TYPE: &'static str = "SQLServer";
    const INSTRUMENTATION: &'static str = "sql";

    fn call(&self) -> &DbCall {
        &self.call
    }

    /// OBI's `OPERATION table`, `OPERATION`, or `SQL` when neither is known.
    fn span_name(&self) -> Cow<'_, str> {
        let c = &self.call;
        match (c.operation.is_empty(), c.collection.is_empty()) {
            (true, _) => Cow::Borrowed("SQL"),
            (false, true) => Cow::Borrowed(&c.operation),
            (false, false) => Cow::Owned(format!("{} {}", c.operation, c.collection)),
        }
    }

    /// The table, as OBI's SQL spans show it.
    fn target(&self) -> &str {
        &self.call.collection
    }

    fn more_printer_attributes(&self, out: &mut AttrSink<'_>) {
        out("table", Value::Str(&self.call.collection));
    }
}

fn is_sql(span: &Span) -> bool {
    matches!(span.detail, SpanDetail::Sql(_))
}

/// OBI's database client histogram, for SQL statements.
pub(super) static FAMILIES: &[FamilyDef] = &[db::client_family("sql", is_sql)];
