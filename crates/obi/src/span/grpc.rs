//! gRPC spans: the full method path as the name, gRPC status codes, the
//! `rpc.*` semantic-convention attributes and the RPC RED histograms.

use std::borrow::Cow;

use super::metric::{Attr, CLIENT_ADDRESS, FamilyDef, Measure, SERVER_ADDRESS, SERVER_PORT};
use super::naming::{peer_name, server_address, server_name, write_server_port};
use super::{AttrSink, Semantics, Span, SpanDetail, SpanKind, Summary, Value};

/// What a gRPC call adds to a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GrpcSpan {
    /// The HTTP/2 method that carried the call (`POST`).
    pub(crate) http_method: String,
    /// `/package.Service/Method`.
    pub(crate) method: String,
    /// The gRPC status code.
    pub(crate) status: i32,
    pub(crate) request_body_size: i64,
    pub(crate) response_body_size: i64,
    /// The request's `:authority`, when sent.
    pub(crate) authority: Option<String>,
}

static NOT_GRPC: GrpcSpan = GrpcSpan {
    http_method: String::new(),
    method: String::new(),
    status: 0,
    request_body_size: 0,
    response_body_size: 0,
    authority: None,
};

impl GrpcSpan {
    fn of(span: &Span) -> &GrpcSpan {
        match &span.detail {
            SpanDetail::Grpc(g) => g,
            _ => &NOT_GRPC,
        }
    }
}

impl Semantics for GrpcSpan {
    fn type_name(&self, kind: SpanKind) -> &'static str {
        if kind == SpanKind::Client { "GRPCClient" } else { "GRPC" }
    }

    fn instrumentation(&self) -> Option<&'static str> {
        Some("grpc")
    }

    fn name(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.method)
    }

    /// Servers: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
    /// UNAVAILABLE, DATA_LOSS (the codes that are the server's fault);
    /// clients: any code but OK.
    fn is_error(&self, kind: SpanKind) -> bool {
        match kind {
            SpanKind::Client => self.status != 0,
            _ => matches!(self.status, 2 | 4 | 12 | 13 | 14 | 15),
        }
    }

    fn summary(&self) -> Summary<'_> {
        Summary {
            sub_type: 0,
            status: self.status.into(),
            method: &self.http_method,
            target: &self.method,
            route: "",
            request_size: self.request_body_size,
            response_size: self.response_body_size,
        }
    }

    fn requested_host(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    fn otel_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        out("rpc.method", Value::Str(&self.method));
        out("rpc.system", Value::Str("grpc"));
        out("rpc.grpc.status_code", Value::Int(self.status.into()));
        if !span.is_client() {
            out("client.address", peer_name(span));
        }
        out("server.address", server_address(span));
        write_server_port(span, out);
    }

    fn printer_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        if !span.is_client() {
            out("clientAddr", peer_name(span));
        }
        out("method", Value::Str(&self.method));
        out("serverAddr", server_name(span));
        out("serverPort", Value::Int(span.host.port.into()));
        out("status", Value::Int(self.status.into()));
    }
}

const METHOD: Attr = Attr::new("rpc.method", "rpc_method", |s| Value::Str(&GrpcSpan::of(s).method));
const SYSTEM: Attr = Attr::new("rpc.system", "rpc_system", |_| Value::Str("grpc"));
const STATUS: Attr =
    Attr::new("rpc.grpc.status_code", "rpc_grpc_status_code", |s| Value::Int(GrpcSpan::of(s).status.into()));

const SERVER_ATTRS: &[Attr] = &[METHOD, SYSTEM, STATUS, SERVER_ADDRESS, SERVER_PORT, CLIENT_ADDRESS];
const CLIENT_ATTRS: &[Attr] = &[METHOD, SYSTEM, STATUS, SERVER_ADDRESS, SERVER_PORT];
const DEFAULTS: &[Attr] = &[METHOD, SYSTEM, STATUS, SERVER_ADDRESS];

fn is_grpc(span: &Span) -> bool {
    matches!(span.detail, SpanDetail::Grpc(_))
}

/// OBI's RPC histograms.
pub(super) static FAMILIES: &[FamilyDef] = &[
    FamilyDef {
        otel: "rpc.server.duration",
        prom: "rpc_server_duration_seconds",
        unit: "s",
        help: "duration of RPC service calls from the server side, in seconds",
        measure: Measure::Duration,
        instrumentation: "grpc",
        kind: SpanKind::Server,
        records: is_grpc,
        available: SERVER_ATTRS,
        defaults: DEFAULTS,
    },
    FamilyDef {
        otel: "rpc.client.duration",
        prom: "rpc_client_duration_seconds",
        unit: "s",
        help: "duration of RPC service calls from the client side, in seconds",
        measure: Measure::Duration,
        instrumentation: "grpc",
        kind: SpanKind::Client,
        records: is_grpc,
        available: CLIENT_ATTRS,
        defaults: DEFAULTS,
    },
];
