//! The vocabulary protocols use to declare their RED metric families: a
//! histogram's names, what it measures, which spans feed it, and which
//! attributes it can carry. The metrics store (`export::metrics`) builds
//! its series from these declarations and knows no protocol.

use super::naming::{peer_name, server_address, server_port};
use super::{Span, SpanKind, Value};

/// What a histogram measures.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Measure {
    /// `end - request_start`, in seconds (the duration buckets).
    Duration,
    /// A size in bytes (the size buckets).
    Size(fn(&Span) -> i64),
}

/// One attribute a family may carry, with the function that reads it from
/// a span without allocating.
#[derive(Clone, Copy)]
pub(crate) struct Attr {
    otel: &'static str,
    prom: &'static str,
    read: fn(&Span) -> Value<'_>,
}

impl Attr {
    /// `prom` must be `otel` with dots as underscores (checked by a test).
    pub(crate) const fn new(otel: &'static str, prom: &'static str, read: fn(&Span) -> Value<'_>) -> Attr {
        Attr { otel, prom, read }
    }

    /// OTel name (`http.request.method`).
    pub(crate) fn otel(&self) -> &'static str {
        self.otel
    }

    /// Prometheus label name (`http_request_method`).
    pub(crate) fn prom(&self) -> &'static str {
        self.prom
    }

    pub(crate) fn value<'s>(&self, span: &'s Span) -> Value<'s> {
        (self.read)(span)
    }
}

impl PartialEq for Attr {
    fn eq(&self, other: &Self) -> bool {
        self.otel == other.otel
    }
}

impl std::fmt::Debug for Attr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.otel)
    }
}

/// `server.address`: see [`server_address`].
pub(crate) const SERVER_ADDRESS: Attr = Attr::new("server.address", "server_address", server_address);
/// `server.port`: empty when unknown, like an unknown address (a label set
/// keeps its keys; see [`server_port`]).
pub(crate) const SERVER_PORT: Attr =
    Attr::new("server.port", "server_port", |s| server_port(s).map_or(Value::Str(""), Value::Int));
/// `client.address`: the client's resolved name, else its address.
pub(crate) const CLIENT_ADDRESS: Attr = Attr::new("client.address", "client_address", peer_name);

/// One metric family (a histogram).
#[derive(Debug)]
pub(crate) struct FamilyDef {
    /// OTel name, e.g. `http.server.request.duration`.
    pub(crate) otel: &'static str,
    /// Prometheus name with the unit suffix, e.g. `http_server_request_duration_seconds`.
    pub(crate) prom: &'static str,
    /// OTel unit (`s`, `By`).
    pub(crate) unit: &'static str,
    pub(crate) help: &'static str,
    pub(crate) measure: Measure,
    /// The instrumentation (`http`, `grpc`...) that enables this family.
    pub(crate) instrumentation: &'static str,
    /// The spans this family records: their kind and protocol.
    pub(crate) kind: SpanKind,
    pub(crate) records: fn(&Span) -> bool,
    /// Attributes that can be selected, in label order.
    pub(crate) available: &'static [Attr],
    /// Attributes reported when `attributes.select` says nothing.
    pub(crate) defaults: &'static [Attr],
}

impl FamilyDef {
    /// Whether a span is recorded into this family.
    pub(crate) fn wants(&self, span: &Span) -> bool {
        span.kind == self.kind && (self.records)(span)
    }

    /// The value a span adds to this histogram.
    pub(crate) fn measure(&self, span: &Span) -> f64 {
        match self.measure {
            Measure::Duration => span.duration_ns() as f64 / 1e9,
            Measure::Size(read) => read(span).max(0) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prom_names_are_otel_names_with_underscores() {
        for def in super::super::metric_families() {
            for a in def.available.iter().chain(def.defaults) {
                assert_eq!(a.prom(), a.otel().replace('.', "_"), "{}", def.otel);
            }
            assert!(def.defaults.iter().all(|d| def.available.contains(d)), "{}", def.otel);
        }
    }

    /// A peer the kernel did not see has no port: spans leave `server.port`
    /// out and metrics give it an empty label, never 0.
    #[test]
    fn an_unknown_server_port_is_left_out() {
        use super::{SERVER_PORT, Span, Value};
        use crate::span::fixtures::{Shape, span};
        for shape in [Shape::HttpServer, Shape::HttpClient, Shape::GrpcServer, Shape::GrpcClient] {
            let mut s = span(shape, Default::default(), "/a", 200, 1);
            let keys = |s: &Span| {
                let mut keys = Vec::new();
                s.semantics().otel_attributes(s, &mut |k, v| keys.push((k, format!("{v:?}"))));
                keys
            };
            assert!(keys(&s).contains(&("server.port", "Int(8080)".into())), "{shape:?}");
            assert_eq!(SERVER_PORT.value(&s), Value::Int(8080));
            s.host.addr = None;
            s.host.port = 0;
            assert!(keys(&s).iter().all(|(k, _)| *k != "server.port"), "{shape:?}: {:?}", keys(&s));
            assert_eq!(SERVER_PORT.value(&s), Value::Str(""));
        }
    }
}
