//! The one span model every protocol produces and every exporter consumes.
//!
//! A [`Span`] holds what all protocols share (who talked to whom, when, the
//! trace context, the service) and a [`SpanDetail`]: one variant per
//! protocol, whose own file (`http.rs`, `grpc.rs`...) answers everything
//! protocol-specific through [`Semantics`]: the span name, status, OTLP and
//! printer attributes, and its RED metric families. Exporters only call that
//! trait; they never match on protocols.

pub(crate) mod db;
mod grpc;
mod http;
mod memcached;
pub(crate) mod metric;
mod mqtt;
mod naming;
mod process;
mod redis;
mod sql;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use crate::service::Service;
pub(crate) use grpc::GrpcSpan;
pub(crate) use http::HttpSpan;
pub(crate) use memcached::MemcachedSpan;
pub(crate) use mqtt::{MqttOperation, MqttSpan};
pub(crate) use naming::{peer_name, printer_host_name, server_name};
pub(crate) use process::ProcessAlive;
pub(crate) use redis::RedisSpan;
pub(crate) use sql::SqlSpan;

/// Registers the protocols: one line each. Generates the [`SpanDetail`]
/// enum, its dispatch to [`Semantics`], and the list of metric families.
macro_rules! register_protocols {
    ($($variant:ident($ty:ty) => $families:path),* $(,)?) => {
        /// What is specific to the protocol of a span.
        #[derive(Debug, Clone)]
        pub(crate) enum SpanDetail {
            $($variant($ty)),*
        }

        impl SpanDetail {
            /// The protocol's answers about this span.
            pub(crate) fn semantics(&self) -> &dyn Semantics {
                match self {
                    $(SpanDetail::$variant(d) => d),*
                }
            }
        }

        /// Every RED metric family of every protocol, in exposition order.
        pub(crate) fn metric_families() -> impl Iterator<Item = &'static metric::FamilyDef> {
            std::iter::empty()$(.chain($families.iter()))*
        }
    };
}

register_protocols! {
    ProcessAlive(ProcessAlive) => process::FAMILIES,
    Http(HttpSpan) => http::FAMILIES,
    Grpc(GrpcSpan) => grpc::FAMILIES,
    Mqtt(MqttSpan) => mqtt::FAMILIES,
    Redis(RedisSpan) => redis::FAMILIES,
    Sql(SqlSpan) => sql::FAMILIES,
    Memcached(MemcachedSpan) => memcached::FAMILIES,
}

/// A span attribute value, borrowed from the span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Str(&'a str),
    Int(i64),
    /// An address (IPv4-mapped IPv6 already mapped to IPv4); empty when unknown.
    Ip(Option<IpAddr>),
}

impl Value<'_> {
    /// An address value; IPv4-mapped IPv6 addresses become IPv4.
    pub(crate) fn ip(addr: Option<IpAddr>) -> Value<'static> {
        Value::Ip(addr.map(normalize_ip))
    }
}

fn normalize_ip(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Receives attributes one at a time (OTLP builds key-values, the JSON
/// printer writes them out); keys are semantic-convention names.
pub(crate) type AttrSink<'s> = dyn FnMut(&'static str, Value<'_>) + 's;

/// The fields of OBI's one-line text format, whatever the protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary<'a> {
    /// OBI's sub type (0 for HTTP).
    pub(crate) sub_type: i32,
    pub(crate) status: i64,
    /// HTTP method, RPC transport method, DB operation...
    pub(crate) method: &'a str,
    /// URL path, RPC method path, statement...
    pub(crate) target: &'a str,
    /// Low-cardinality route; empty when unknown.
    pub(crate) route: &'a str,
    pub(crate) request_size: i64,
    pub(crate) response_size: i64,
}

/// Everything an exporter needs to know about one protocol's spans.
pub(crate) trait Semantics {
    /// OBI's event type name (`HTTP`, `HTTPClient`, `GRPC`...).
    fn type_name(&self, kind: SpanKind) -> &'static str;
    /// The name in `OTEL_EBPF_*_INSTRUMENTATIONS` that enables these spans;
    /// `None` for pseudo-spans that are never exported.
    fn instrumentation(&self) -> Option<&'static str>;
    /// The OTel span name.
    fn name(&self) -> Cow<'_, str>;
    /// Appends the OTel span name to `out` (exporters reuse one buffer).
    fn write_name(&self, out: &mut String) {
        out.push_str(&self.name());
    }
    /// Whether the span's status is an error.
    fn is_error(&self, kind: SpanKind) -> bool;
    /// The text printer's fields.
    fn summary(&self) -> Summary<'_>;
    /// The host the client asked for (HTTP `Host`, gRPC `:authority`), with
    /// its port if given: the best name of the server of a client span.
    fn requested_host(&self) -> Option<&str> {
        None
    }
    /// OTLP span attributes, in the order OBI writes them.
    fn otel_attributes(&self, span: &Span, out: &mut AttrSink<'_>);
    /// The JSON printer's `attributes` (OBI's `spanAttributes`), keys sorted.
    fn printer_attributes(&self, span: &Span, out: &mut AttrSink<'_>);
}

/// Server, client, or neither (pseudo-spans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SpanKind {
    Server,
    Client,
    Internal,
}

impl SpanKind {
    /// The OTel span kind as the JSON printer writes it.
    pub(crate) fn otel_name(self) -> &'static str {
        match self {
            SpanKind::Server => "SPAN_KIND_SERVER",
            SpanKind::Client => "SPAN_KIND_CLIENT",
            SpanKind::Internal => "SPAN_KIND_INTERNAL",
        }
    }
}

/// W3C trace context of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TraceContext {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    /// All zero for a root span.
    pub(crate) parent_span_id: [u8; 8],
    pub(crate) flags: u8,
}

impl TraceContext {
    #[cfg(test)]
    pub(crate) fn is_valid(&self) -> bool {
        self.trace_id != [0; 16] && self.span_id != [0; 8]
    }

    pub(crate) fn has_parent(&self) -> bool {
        self.parent_span_id != [0; 8]
    }

    pub(crate) fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// One side of a connection: raw IP and port, plus a resolved name if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) addr: Option<IpAddr>,
    pub(crate) port: u16,
    /// Resolved name (service name, DNS...); empty when unresolved.
    pub(crate) name: String,
}

impl Endpoint {
    pub(crate) fn unknown() -> Self {
        Endpoint { addr: None, port: 0, name: String::new() }
    }
}

/// A finished exchange (or a pseudo-span).
///
/// `peer` is always the side that sent the request (the client) and `host`
/// the side that answered it, for server and client spans alike, as in OBI.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub(crate) kind: SpanKind,
    pub(crate) detail: SpanDetail,
    pub(crate) peer: Endpoint,
    pub(crate) host: Endpoint,
    /// Wall clock, ns since the Unix epoch: when the first request byte was seen.
    pub(crate) request_start_ns: u64,
    /// Wall clock: when the handler started (same as `request_start_ns` when unknown).
    pub(crate) start_ns: u64,
    /// Wall clock: when the last response byte was seen.
    pub(crate) end_ns: u64,
    pub(crate) trace: TraceContext,
    pub(crate) service: Arc<Service>,
    /// The traced service at the other end, when it runs on this host: the
    /// server of a client span (OTel `peer.service`). None when unknown.
    pub(crate) peer_service: Option<Arc<Service>>,
}

impl Span {
    pub(crate) fn semantics(&self) -> &dyn Semantics {
        self.detail.semantics()
    }

    pub(crate) fn is_client(&self) -> bool {
        self.kind == SpanKind::Client
    }

    /// Total duration, `end - request_start`, in nanoseconds.
    pub(crate) fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.request_start_ns)
    }

    /// Handler duration, `end - start`, in nanoseconds.
    pub(crate) fn handler_duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// The pseudo-span OBI prints when it starts instrumenting a process.
    pub(crate) fn process_alive(service: Arc<Service>, now_ns: u64) -> Span {
        Span {
            kind: SpanKind::Internal,
            detail: SpanDetail::ProcessAlive(ProcessAlive),
            peer: Endpoint::unknown(),
            host: Endpoint { addr: None, port: 0, name: service.name.clone() },
            request_start_ns: now_ns,
            start_ns: now_ns,
            end_ns: now_ns,
            trace: TraceContext::default(),
            service,
            peer_service: None,
        }
    }
}

/// Spans for unit tests of the exporters.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// The protocol and side of a test span.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Shape {
        HttpServer,
        HttpClient,
        GrpcServer,
        GrpcClient,
    }

    /// A span of `shape` for `path` (gRPC: the method path) with `status`,
    /// from 10.0.0.1:40000 to 127.0.0.1:8080, 10 request and 100 response
    /// bytes, lasting `dur_ms`.
    pub(crate) fn span(shape: Shape, service: Arc<Service>, path: &str, status: i32, dur_ms: u64) -> Span {
        let (kind, detail) = match shape {
            Shape::HttpServer | Shape::HttpClient => (
                if shape == Shape::HttpServer { SpanKind::Server } else { SpanKind::Client },
                SpanDetail::Http(HttpSpan {
                    method: "GET".into(),
                    path: path.into(),
                    route: path.into(),
                    status: status as u16,
                    request_body_size: 10,
                    response_body_size: 100,
                    host_header: None,
                    tls: false,
                }),
            ),
            Shape::GrpcServer | Shape::GrpcClient => (
                if shape == Shape::GrpcServer { SpanKind::Server } else { SpanKind::Client },
                SpanDetail::Grpc(GrpcSpan {
                    http_method: "POST".into(),
                    method: path.into(),
                    status,
                    request_body_size: 10,
                    response_body_size: 100,
                    authority: None,
                }),
            ),
        };
        Span {
            kind,
            detail,
            peer: Endpoint { addr: Some(IpAddr::from([10, 0, 0, 1])), port: 40000, name: String::new() },
            host: Endpoint {
                addr: Some(IpAddr::V6(std::net::Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped())),
                port: 8080,
                name: String::new(),
            },
            request_start_ns: 1_000_000_000,
            start_ns: 1_000_000_000,
            end_ns: 1_000_000_000 + dur_ms * 1_000_000,
            trace: TraceContext::default(),
            service,
            peer_service: None,
        }
    }

    pub(crate) fn http(span: &mut Span) -> &mut HttpSpan {
        match &mut span.detail {
            SpanDetail::Http(h) => h,
            other => panic!("not an HTTP span: {other:?}"),
        }
    }

    pub(crate) fn grpc(span: &mut Span) -> &mut GrpcSpan {
        match &mut span.detail {
            SpanDetail::Grpc(g) => g,
            other => panic!("not a gRPC span: {other:?}"),
        }
    }
}
