//! The one span model every protocol produces and every exporter consumes.

use std::net::IpAddr;
use std::sync::Arc;

use crate::service::Service;

/// What a span describes; names follow OBI's `EventType.String()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanType {
    /// Pseudo-span printed once when a process starts being instrumented.
    ProcessAlive,
    HttpServer,
    HttpClient,
    GrpcServer,
    GrpcClient,
}

impl SpanType {
    /// The name OBI's printers use (`HTTP`, `HTTPClient`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SpanType::ProcessAlive => "ProcessAlive",
            SpanType::HttpServer => "HTTP",
            SpanType::HttpClient => "HTTPClient",
            SpanType::GrpcServer => "GRPC",
            SpanType::GrpcClient => "GRPCClient",
        }
    }

    pub fn is_server(self) -> bool {
        matches!(self, SpanType::HttpServer | SpanType::GrpcServer)
    }

    pub fn is_client(self) -> bool {
        matches!(self, SpanType::HttpClient | SpanType::GrpcClient)
    }

    /// OTel span kind name as the JSON printer writes it.
    pub fn kind_name(self) -> &'static str {
        if self.is_client() {
            "SPAN_KIND_CLIENT"
        } else if self.is_server() {
            "SPAN_KIND_SERVER"
        } else {
            "SPAN_KIND_INTERNAL"
        }
    }
}

/// W3C trace context of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero for a root span.
    pub parent_span_id: [u8; 8],
    pub flags: u8,
}

impl TraceContext {
    pub fn is_valid(&self) -> bool {
        self.trace_id != [0; 16] && self.span_id != [0; 8]
    }

    pub fn has_parent(&self) -> bool {
        self.parent_span_id != [0; 8]
    }

    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// One side of a connection: raw IP and port, plus a resolved name if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: Option<IpAddr>,
    pub port: u16,
    /// Resolved name (service name, DNS...); empty when unresolved.
    pub name: String,
}

impl Endpoint {
    pub fn unknown() -> Self {
        Endpoint { addr: None, port: 0, name: String::new() }
    }

    /// The address as text; IPv4-mapped IPv6 addresses print as IPv4.
    pub fn addr_string(&self) -> String {
        match self.addr {
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            },
            Some(IpAddr::V4(v4)) => v4.to_string(),
            None => String::new(),
        }
    }

    /// OBI's `SpanPeer`/`SpanHost`: the name if resolved, else the address.
    pub fn display_name(&self) -> String {
        if self.name.is_empty() { self.addr_string() } else { self.name.clone() }
    }
}

/// A finished request/response exchange (or a pseudo-span).
///
/// `peer` is always the side that sent the request (the client) and `host`
/// the side that answered it, for server and client spans alike, as in OBI.
#[derive(Debug, Clone)]
pub struct Span {
    pub span_type: SpanType,
    /// OBI's sub type (0 for plain HTTP).
    pub sub_type: i32,
    /// HTTP method (or RPC/DB operation).
    pub method: String,
    /// URL path without the query string (gRPC: `/pkg.Service/Method`).
    pub path: String,
    /// Low-cardinality route; empty when unknown.
    pub route: String,
    /// HTTP status code (gRPC status for gRPC spans).
    pub status: i32,
    pub peer: Endpoint,
    pub host: Endpoint,
    /// Request body size in bytes.
    pub request_body_size: i64,
    /// Response body size in bytes.
    pub response_body_size: i64,
    /// Host header of the request, when captured (client spans build `url.full` from it).
    pub host_header: Option<String>,
    /// Wall clock, ns since the Unix epoch: when the first request byte was seen.
    pub request_start_ns: u64,
    /// Wall clock: when the handler started (same as `request_start_ns` when unknown).
    pub start_ns: u64,
    /// Wall clock: when the last response byte was seen.
    pub end_ns: u64,
    pub trace: TraceContext,
    pub service: Arc<Service>,
    /// Thread that handled the request.
    pub tid: u32,
}

impl Span {
    /// Total duration, `end - request_start`, in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.request_start_ns)
    }

    /// Handler duration, `end - start`, in nanoseconds.
    pub fn handler_duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// The pseudo-span OBI prints when it starts instrumenting a process.
    pub fn process_alive(service: Arc<Service>, now_ns: u64) -> Span {
        Span {
            span_type: SpanType::ProcessAlive,
            sub_type: 0,
            method: String::new(),
            path: String::new(),
            route: String::new(),
            status: 0,
            peer: Endpoint::unknown(),
            host: Endpoint { addr: None, port: 0, name: service.name.clone() },
            request_body_size: 0,
            response_body_size: 0,
            host_header: None,
            request_start_ns: now_ns,
            start_ns: now_ns,
            end_ns: now_ns,
            trace: TraceContext::default(),
            tid: 0,
            service,
        }
    }
}
