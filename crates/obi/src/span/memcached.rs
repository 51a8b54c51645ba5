//! Memcached client spans: the command as the name, `ERROR`,
//! `CLIENT_ERROR` and `SERVER_ERROR` as errors, and memcached's
//! `db.client.operation.duration` family.

use std::borrow::Cow;

use super::db::{self, DbCall};
use super::metric::FamilyDef;
use super::{AttrSink, Semantics, Span, SpanDetail, SpanKind, Summary};

/// What a memcached command and its response add to a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MemcachedSpan {
    pub(crate) call: DbCall,
}

impl Semantics for MemcachedSpan {
    /// OBI prints no memcached spans; named like its other database clients.
    fn type_name(&self, kind: SpanKind) -> &'static str {
        if kind == SpanKind::Server { "MemcachedServer" } else { "MemcachedClient" }
    }

    fn instrumentation(&self) -> Option<&'static str> {
        Some("memcached")
    }

    fn name(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.call.operation)
    }

    fn is_error(&self, _kind: SpanKind) -> bool {
        self.call.error.is_some()
    }

    fn summary(&self) -> Summary<'_> {
        self.call.summary(&self.call.query)
    }

    fn otel_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        self.call.otel_attributes(span, out);
    }

    fn printer_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        self.call.printer_attributes(span, out);
    }
}

fn is_memcached(span: &Span) -> bool {
    matches!(span.detail, SpanDetail::Memcached(_))
}

/// OBI's database client histogram, for memcached commands.
pub(super) static FAMILIES: &[FamilyDef] = &[db::client_family("memcached", is_memcached)];
