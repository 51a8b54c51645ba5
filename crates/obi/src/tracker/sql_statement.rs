//! An SQL statement as spans show it, shared by the SQL wire protocols
//! (PostgreSQL, MySQL): its query text, operation and table, read once
//! when the statement is sent or prepared.

use obi_protocols::sql::{self, Dialect};

use crate::span::db::DbCall;

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
