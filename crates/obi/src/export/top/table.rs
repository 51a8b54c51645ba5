//! One row per service and operation (server or client side, protocol,
//! method and route): totals since start and a rolling window. Rows are
//! found by hashing the span's borrowed fields, so a span of a known row
//! costs no allocation; the number of rows is capped and the spans that
//! would have needed one more are counted.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::window::Window;
use crate::span::{Span, SpanKind};

/// Rows kept at most; what is beyond is counted in [`Table::dropped_spans`].
pub(crate) const MAX_ROWS: usize = 500;

pub(crate) type RowId = u32;

/// What identifies a row, borrowed from a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RowKey<'a> {
    pub(crate) service: &'a str,
    pub(crate) kind: SpanKind,
    /// OBI's event type (`HTTP`, `HTTPClient`, `REDIS`...).
    pub(crate) protocol: &'static str,
    pub(crate) method: &'a str,
    /// Low-cardinality route; empty when the protocol has none.
    pub(crate) route: &'a str,
}

impl<'a> RowKey<'a> {
    /// The row of a span; `None` for pseudo-spans that are never exported.
    pub(crate) fn of(span: &'a Span) -> Option<RowKey<'a>> {
        let sem = span.semantics();
        sem.instrumentation()?;
        let sum = sem.summary();
        Some(RowKey {
            service: &span.service.name,
            kind: span.kind,
            protocol: sem.type_name(span.kind),
            method: sum.method,
            route: sum.route,
        })
    }
}

pub(crate) struct Row {
    pub(crate) service: String,
    pub(crate) kind: SpanKind,
    pub(crate) protocol: &'static str,
    pub(crate) method: String,
    pub(crate) route: String,
    /// Since the row appeared.
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) first_seen_ns: u64,
    pub(crate) window: Window,
}

impl Row {
    fn key(&self) -> RowKey<'_> {
        RowKey {
            service: &self.service,
            kind: self.kind,
            protocol: self.protocol,
            method: &self.method,
            route: &self.route,
        }
    }

    /// `GET /users/*`, or the method alone.
    pub(crate) fn operation(&self) -> String {
        if self.route.is_empty() { self.method.clone() } else { format!("{} {}", self.method, self.route) }
    }
}

#[derive(Default)]
pub(crate) struct Table {
    rows: Vec<Row>,
    index: HashTable<RowId>,
    hasher: DefaultHashBuilder,
    /// Spans not counted because [`MAX_ROWS`] rows existed already.
    pub(crate) dropped_spans: u64,
}

impl Table {
    /// Counts `span` in its row, creating the row if there is room.
    /// Returns the row, or `None` if the span was not counted.
    pub(crate) fn record(&mut self, span: &Span) -> Option<RowId> {
        let key = RowKey::of(span)?;
        let id = match self.find(&key) {
            Some(id) => id,
            None => self.insert(key, span.end_ns)?,
        };
        let row = &mut self.rows[id as usize];
        let error = span.semantics().is_error(span.kind);
        row.requests += 1;
        row.errors += u64::from(error);
        row.window.record(span.end_ns, span.duration_ns(), error);
        Some(id)
    }

    fn find(&self, key: &RowKey<'_>) -> Option<RowId> {
        let hash = self.hasher.hash_one(key);
        self.index.find(hash, |&id| self.rows[id as usize].key() == *key).copied()
    }

    fn insert(&mut self, key: RowKey<'_>, now_ns: u64) -> Option<RowId> {
        if self.rows.len() >= MAX_ROWS {
            self.dropped_spans += 1;
            return None;
        }
        let id = self.rows.len() as RowId;
        self.rows.push(Row {
            service: key.service.to_string(),
            kind: key.kind,
            protocol: key.protocol,
            method: key.method.to_string(),
            route: key.route.to_string(),
            requests: 0,
            errors: 0,
            first_seen_ns: now_ns,
            window: Window::default(),
        });
        let hasher = &self.hasher;
        let rows = &self.rows;
        let hash = hasher.hash_one(key);
        self.index.insert_unique(hash, id, |&id| hasher.hash_one(rows[id as usize].key()));
        Some(id)
    }

    pub(crate) fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub(crate) fn row(&self, id: RowId) -> &Row {
        &self.rows[id as usize]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::service::Service;
    use crate::span::fixtures::{Shape, span};

    fn service(name: &str) -> Arc<Service> {
        Arc::new(Service { name: name.into(), ..Service::default() })
    }

    #[test]
    fn rows_by_service_side_and_route() {
        let mut t = Table::default();
        let (a, b) = (service("a"), service("b"));
        let ok = span(Shape::HttpServer, a.clone(), "/users", 200, 5);
        let err = span(Shape::HttpServer, a.clone(), "/users", 500, 5);
        let other_service = span(Shape::HttpServer, b, "/users", 200, 5);
        let client = span(Shape::HttpClient, a.clone(), "/users", 404, 5);
        let r1 = t.record(&ok).unwrap();
        assert_eq!(t.record(&err), Some(r1));
        assert_ne!(t.record(&other_service), Some(r1));
        let rc = t.record(&client).unwrap();
        assert_ne!(rc, r1);
        assert_eq!(t.rows().len(), 3);
        let row = t.row(r1);
        assert_eq!((row.service.as_str(), row.requests, row.errors), ("a", 2, 1));
        assert_eq!((row.protocol, row.operation()), ("HTTP", "GET /users".to_string()));
        // A client 404 is an error on the client side.
        assert_eq!((t.row(rc).protocol, t.row(rc).errors), ("HTTPClient", 1));
    }

    #[test]
    fn pseudo_spans_have_no_row() {
        let mut t = Table::default();
        assert_eq!(t.record(&Span::process_alive(service("a"), 1)), None);
        assert!(t.rows().is_empty());
        assert_eq!(t.dropped_spans, 0);
    }

    #[test]
    fn rows_are_capped_and_the_rest_counted() {
        let mut t = Table::default();
        let a = service("a");
        for i in 0..MAX_ROWS + 10 {
            t.record(&span(Shape::HttpServer, a.clone(), &format!("/p{i}"), 200, 1));
        }
        // Known rows still count.
        t.record(&span(Shape::HttpServer, a.clone(), "/p0", 200, 1));
        assert_eq!(t.rows().len(), MAX_ROWS);
        assert_eq!(t.dropped_spans, 10);
        assert_eq!(t.row(0).requests, 2);
    }
}
