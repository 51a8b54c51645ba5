//! Redis client (and server) spans: the command as the name, `-ERR`
//! replies as errors, and Redis's `db.client.operation.duration` family.

use super::db::{self, DbCall, DbProtocol};
use super::metric::FamilyDef;
use super::{Span, SpanDetail};

/// What a Redis command and its reply add to a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RedisSpan {
    pub(crate) call: DbCall,
}

impl DbProtocol for RedisSpan {
    const CLIENT_TYPE: &'static str = "RedisClient";
    const SERVER_TYPE: &'static str = "RedisServer";
    const INSTRUMENTATION: &'static str = "redis";

    fn call(&self) -> &DbCall {
        &self.call
    }
}

fn is_redis(span: &Span) -> bool {
    matches!(span.detail, SpanDetail::Redis(_))
}

/// OBI's database client histogram, for Redis calls.
pub(super) static FAMILIES: &[FamilyDef] = &[db::client_family("redis", is_redis)];

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::span::SpanKind;
    use crate::span::db::DbError;
    use crate::span::fixtures::{Shape, span};

    fn redis_span(error: Option<DbError>) -> Span {
        let mut s = span(Shape::HttpClient, Arc::default(), "/", 0, 3);
        s.detail = SpanDetail::Redis(RedisSpan {
            call: DbCall {
                system: "redis",
                operation: "INCR".into(),
                query: "INCR k".into(),
                error,
                ..Default::default()
            },
        });
        s
    }

    fn otel(s: &Span) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        s.semantics().otel_attributes(s, &mut |k, v| out.push((k, format!("{v:?}"))));
        out
    }

    #[test]
    fn attributes_of_a_failed_call() {
        let s = redis_span(Some(DbError { code: "ERR".into(), message: "not an integer".into() }));
        let sem = s.semantics();
        assert_eq!((sem.type_name(SpanKind::Client), sem.type_name(SpanKind::Server)), ("RedisClient", "RedisServer"));
        assert_eq!(sem.name(), "INCR");
        assert!(sem.is_error(SpanKind::Client));
        let keys: Vec<&str> = otel(&s).iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "db.system.name",
                "db.operation.name",
                "db.query.text",
                "db.response.status_code",
                "error.type",
                "server.address",
                "server.port"
            ]
        );
        assert_eq!(otel(&s)[3].1, "Str(\"ERR\")");
        assert_eq!(FAMILIES[0].measure(&s), 0.003);
        assert!(FAMILIES[0].wants(&s));
    }

    #[test]
    fn a_successful_call_has_no_status_code() {
        let s = redis_span(None);
        assert!(!s.semantics().is_error(SpanKind::Client));
        assert!(otel(&s).iter().all(|(k, _)| *k != "db.response.status_code" && *k != "error.type"));
        assert_eq!(db::ERROR_TYPE.value(&s), crate::span::Value::Str(""));
    }
}
