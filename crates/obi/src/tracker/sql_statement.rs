//! What the SQL wire protocols (PostgreSQL, MySQL) share: a statement as
//! spans show it (its query text, operation and table, read once when the
//! statement is sent or prepared), and a statement run becoming a span.

use obi_protocols::sql::{self, Dialect};

use super::session::{Finished, SessionCx};
use crate::span::db::DbCall;
use crate::span::{SpanDetail, SqlSpan, TraceContext};

#[derive(Debug, Default)]
pub(super) struct Statement {
    pub(super) query: String,
    pub(super) operation: String,
    pub(super) collection: String,
}

impl Statement {
    /// `text` as sent; `cut`: the capture missed its end (the text shows `...`).
    pub(super) fn new(text: &[u8], cut: bool, dialect: Dialect, keep_literals: bool) -> Statement {
        let text = String::from_utf8_lossy(text);
        let mut query = String::new();
        sql::query_text(&text, dialect, keep_literals, &mut query);
        if cut {
            query.push_str("...");
        }
        Statement {
            query,
            operation: sql::operation(&text).unwrap_or_default(),
            collection: sql::table(&text).unwrap_or_default(),
        }
    }

    pub(super) fn call(&self, system: &'static str, namespace: &str) -> DbCall {
        DbCall {
            system,
            operation: self.operation.clone(),
            namespace: namespace.to_string(),
            collection: self.collection.clone(),
            query: self.query.clone(),
            error: None,
        }
    }
}

/// A statement being run: becomes a span.
#[derive(Debug)]
pub(super) struct Op {
    pub(super) call: DbCall,
    pub(super) start_mono: u64,
    pub(super) ctx: TraceContext,
}

/// `op` answered at `end_mono`: its span.
pub(super) fn finish(op: Op, end_mono: u64, cx: &mut SessionCx<'_>) {
    cx.finished.push(Finished {
        detail: SpanDetail::Sql(SqlSpan { call: op.call }),
        start_mono: op.start_mono,
        queued_mono: None,
        end_mono,
        trace: cx.joined(op.ctx),
    });
}
