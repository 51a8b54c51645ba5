//! Memcached client spans: the command as the name, `ERROR`,
//! `CLIENT_ERROR` and `SERVER_ERROR` as errors, and memcached's
//! `db.client.operation.duration` family.

use super::db::{self, DbCall, DbProtocol};
use super::metric::FamilyDef;
use super::{Span, SpanDetail};

/// What a memcached command and its response add to a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MemcachedSpan {
    pub(crate) call: DbCall,
}

impl DbProtocol for MemcachedSpan {
    const CLIENT_TYPE: &'static str = "MemcachedClient";
    const SERVER_TYPE: &'static str = "MemcachedServer";
    const INSTRUMENTATION: &'static str = "memcached";

    fn call(&self) -> &DbCall {
        &self.call
    }
}

fn is_memcached(span: &Span) -> bool {
    matches!(span.detail, SpanDetail::Memcached(_))
}

/// OBI's database client histogram, for memcached commands.
pub(super) static FAMILIES: &[FamilyDef] = &[db::client_family("memcached", is_memcached)];
