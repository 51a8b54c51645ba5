//! Spans to OTLP, shaped as OBI shapes them (`pkg/export/otel/traces.go`):
//! span names, kinds, semantic-convention attributes, status, and one
//! resource per instrumented process.
//!
//! Addresses follow OBI's name resolver: the instrumented side of a span is
//! named after its service when it has no other name (the server of a
//! server span, the client of a client span); the other side is its
//! resolved name or its IP address.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan, Status};

use crate::export::resource::{HostInfo, kv_int, kv_str, resource, scope};
use crate::service::Service;
use crate::span::{Span, SpanType, TraceContext};

/// OBI's `TraceName()`: `METHOD route` or `METHOD` for HTTP, the full method
/// path for gRPC.
pub fn span_name(span: &Span) -> String {
    match span.span_type {
        SpanType::HttpServer | SpanType::HttpClient => {
            if span.route.is_empty() {
                span.method.clone()
            } else {
                format!("{} {}", span.method, span.route)
            }
        }
        SpanType::GrpcServer | SpanType::GrpcClient => span.path.clone(),
        SpanType::ProcessAlive => "process".to_string(),
    }
}

pub fn span_kind(t: SpanType) -> SpanKind {
    if t.is_server() {
        SpanKind::Server
    } else if t.is_client() {
        SpanKind::Client
    } else {
        SpanKind::Internal
    }
}

/// Error for 5xx (and no response) on servers, 4xx/5xx on clients; gRPC
/// servers for UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
/// UNAVAILABLE, DATA_LOSS; gRPC clients for any non-OK code. Everything else
/// is unset (OBI's newer, semconv behaviour).
pub fn span_status(span: &Span) -> Status {
    let s = span.status;
    let error = match span.span_type {
        SpanType::HttpServer => s == 0 || s >= 500,
        SpanType::HttpClient => s == 0 || s >= 400,
        SpanType::GrpcServer => matches!(s, 2 | 4 | 12 | 13 | 14 | 15),
        SpanType::GrpcClient => s != 0,
        SpanType::ProcessAlive => false,
    };
    let code = if error { StatusCode::Error } else { StatusCode::Unset };
    Status { message: String::new(), code: code as i32 }
}

/// The client side's name: resolved name, the service for client spans,
/// else the IP address.
fn client_address(span: &Span) -> String {
    if !span.peer.name.is_empty() {
        span.peer.name.clone()
    } else if span.span_type.is_client() {
        span.service.name.clone()
    } else {
        span.peer.addr_string()
    }
}

/// The server side's name: resolved name, the service for server spans,
/// the Host header's host for HTTP client spans, else the IP address.
fn server_address(span: &Span) -> String {
    if !span.host.name.is_empty() {
        return span.host.name.clone();
    }
    if !span.span_type.is_client() {
        return span.service.name.clone();
    }
    if let Some(h) = span.host_header.as_deref().map(host_without_port).filter(|h| !h.is_empty()) {
        return h.to_string();
    }
    span.host.addr_string()
}

fn host_without_port(h: &str) -> &str {
    let h = h.trim();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => h,
    }
}

/// The attributes of a span (OBI's `traceAttributes`).
pub fn span_attributes(span: &Span) -> Vec<KeyValue> {
    let mut a = Vec::with_capacity(10);
    match span.span_type {
        SpanType::HttpServer => {
            a.push(kv_str("http.request.method", &span.method));
            a.push(kv_int("http.response.status_code", span.status as i64));
            a.push(kv_str("url.path", &span.path));
            a.push(kv_str("client.address", client_address(span)));
            a.push(kv_str("server.address", server_address(span)));
            a.push(kv_int("server.port", span.host.port as i64));
            a.push(kv_int("http.request.body.size", span.request_body_size));
            a.push(kv_int("http.response.body.size", span.response_body_size));
            if !span.route.is_empty() {
                a.push(kv_str("http.route", &span.route));
            }
        }
        SpanType::HttpClient => {
            // The scheme is not captured; 443 is taken as HTTPS.
            let scheme = if span.host.port == 443 { "https" } else { "http" };
            a.push(kv_str("http.request.method", &span.method));
            a.push(kv_int("http.response.status_code", span.status as i64));
            if let Some(host) = span.host_header.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
                a.push(kv_str("url.full", format!("{scheme}://{host}{}", span.path)));
            } else {
                a.push(kv_str("url.full", &span.path));
            }
            a.push(kv_str("http.scheme", scheme));
            a.push(kv_str("server.address", server_address(span)));
            a.push(kv_int("server.port", span.host.port as i64));
            a.push(kv_int("http.request.body.size", span.request_body_size));
            a.push(kv_int("http.response.body.size", span.response_body_size));
        }
        SpanType::GrpcServer | SpanType::GrpcClient => {
            a.push(kv_str("rpc.method", &span.path));
            a.push(kv_str("rpc.system", "grpc"));
            a.push(kv_int("rpc.grpc.status_code", span.status as i64));
            if span.span_type == SpanType::GrpcServer {
                a.push(kv_str("client.address", client_address(span)));
            }
            a.push(kv_str("server.address", server_address(span)));
            a.push(kv_int("server.port", span.host.port as i64));
        }
        SpanType::ProcessAlive => {}
    }
    a
}

/// Gives a span without ids random ones (OBI generates a trace id when the
/// kernel had none), so that every exported span is valid.
pub fn complete_ids(trace: &TraceContext) -> TraceContext {
    let mut t = *trace;
    if t.trace_id == [0; 16] {
        t.trace_id = rand::random();
        t.flags |= 1;
    }
    if t.span_id == [0; 8] {
        t.span_id = rand::random();
    }
    t
}

/// One span in OTLP form; `trace` is the span's context after
/// [`complete_ids`].
pub fn to_otlp(span: &Span, trace: &TraceContext) -> OtlpSpan {
    OtlpSpan {
        trace_id: trace.trace_id.to_vec(),
        span_id: trace.span_id.to_vec(),
        trace_state: String::new(),
        parent_span_id: if trace.has_parent() { trace.parent_span_id.to_vec() } else { Vec::new() },
        flags: trace.flags as u32,
        name: span_name(span),
        kind: span_kind(span.span_type) as i32,
        start_time_unix_nano: span.request_start_ns.min(span.start_ns),
        end_time_unix_nano: span.end_ns,
        attributes: span_attributes(span),
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Some(span_status(span)),
    }
}

/// Groups converted spans by process into one export request.
pub fn build_request(spans: Vec<(Arc<Service>, OtlpSpan)>, host: &HostInfo) -> ExportTraceServiceRequest {
    let mut index: HashMap<*const Service, usize> = HashMap::new();
    let mut out: Vec<ResourceSpans> = Vec::new();
    // Keeps each `Arc` alive while its pointer is a key.
    let mut services: Vec<Arc<Service>> = Vec::new();
    for (svc, span) in spans {
        let i = *index.entry(Arc::as_ptr(&svc)).or_insert_with(|| {
            out.push(ResourceSpans {
                resource: Some(resource(&svc, host)),
                scope_spans: vec![ScopeSpans { scope: Some(scope()), spans: Vec::new(), schema_url: String::new() }],
                schema_url: String::new(),
            });
            services.push(svc.clone());
            out.len() - 1
        });
        out[i].scope_spans[0].spans.push(span);
    }
    ExportTraceServiceRequest { resource_spans: out }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    use super::*;
    use crate::export::resource::SCOPE_NAME;
    use crate::service::Language;
    use crate::span::Endpoint;

    fn service() -> Arc<Service> {
        Arc::new(Service {
            name: "checkout".into(),
            namespace: "shop".into(),
            language: Language::Python,
            pid: 4242,
            instance_id: "node-1:4242".into(),
            resource_attributes: vec![
                ("deployment.environment".into(), "prod".into()),
                ("service.name".into(), "x".into()),
            ],
            ..Default::default()
        })
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn http_server_span() -> Span {
        Span {
            span_type: SpanType::HttpServer,
            sub_type: 0,
            method: "GET".into(),
            path: "/users/42".into(),
            route: String::new(),
            status: 200,
            peer: Endpoint { addr: ip("::ffff:10.0.0.7"), port: 51234, name: String::new() },
            host: Endpoint { addr: ip("10.0.0.1"), port: 8080, name: String::new() },
            request_body_size: 12,
            response_body_size: 3456,
            host_header: Some("shop.example:8080".into()),
            request_start_ns: 1_000,
            start_ns: 1_000,
            end_ns: 5_000,
            trace: TraceContext { trace_id: [0xab; 16], span_id: [0xcd; 8], parent_span_id: [0; 8], flags: 1 },
            service: service(),
            tid: 1,
        }
    }

    /// Attributes as (key, value-as-text, is-int) for exact comparisons.
    fn attrs(kvs: &[KeyValue]) -> Vec<(String, String)> {
        kvs.iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(s)) => format!("{s:?}"),
                    Some(Value::IntValue(i)) => i.to_string(),
                    other => format!("{other:?}"),
                };
                (kv.key.clone(), v)
            })
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn http_server_span_has_obi_attributes() {
        let span = http_server_span();
        let o = to_otlp(&span, &complete_ids(&span.trace));
        assert_eq!(o.name, "GET");
        assert_eq!(o.kind, SpanKind::Server as i32);
        assert_eq!(o.trace_id, vec![0xab; 16]);
        assert_eq!(o.span_id, vec![0xcd; 8]);
        assert!(o.parent_span_id.is_empty());
        assert_eq!(o.flags, 1);
        assert_eq!((o.start_time_unix_nano, o.end_time_unix_nano), (1_000, 5_000));
        assert_eq!(o.status, Some(Status { message: String::new(), code: StatusCode::Unset as i32 }));
        assert_eq!(
            attrs(&o.attributes),
            pairs(&[
                ("http.request.method", "\"GET\""),
                ("http.response.status_code", "200"),
                ("url.path", "\"/users/42\""),
                ("client.address", "\"10.0.0.7\""),
                ("server.address", "\"checkout\""),
                ("server.port", "8080"),
                ("http.request.body.size", "12"),
                ("http.response.body.size", "3456"),
            ])
        );
        let mut routed = span.clone();
        routed.route = "/users/{id}".into();
        let o = to_otlp(&routed, &routed.trace);
        assert_eq!(o.name, "GET /users/{id}");
        assert_eq!(attrs(&o.attributes).last().unwrap(), &("http.route".to_string(), "\"/users/{id}\"".to_string()));
    }

    #[test]
    fn http_client_span_has_url_full_and_host_header_address() {
        let mut span = http_server_span();
        span.span_type = SpanType::HttpClient;
        span.method = "POST".into();
        span.status = 404;
        span.trace.parent_span_id = [0x11; 8];
        let o = to_otlp(&span, &span.trace);
        assert_eq!(o.name, "POST");
        assert_eq!(o.kind, SpanKind::Client as i32);
        assert_eq!(o.parent_span_id, vec![0x11; 8]);
        assert_eq!(o.status.unwrap().code, StatusCode::Error as i32);
        assert_eq!(
            attrs(&o.attributes),
            pairs(&[
                ("http.request.method", "\"POST\""),
                ("http.response.status_code", "404"),
                ("url.full", "\"http://shop.example:8080/users/42\""),
                ("http.scheme", "\"http\""),
                ("server.address", "\"shop.example\""),
                ("server.port", "8080"),
                ("http.request.body.size", "12"),
                ("http.response.body.size", "3456"),
            ])
        );
        // Without a Host header: the path and the IP address.
        span.host_header = None;
        let a = attrs(&to_otlp(&span, &span.trace).attributes);
        assert!(a.contains(&("url.full".into(), "\"/users/42\"".into())));
        assert!(a.contains(&("server.address".into(), "\"10.0.0.1\"".into())));
    }

    #[test]
    fn grpc_spans() {
        let mut span = http_server_span();
        span.span_type = SpanType::GrpcServer;
        span.path = "/helloworld.Greeter/SayHello".into();
        span.status = 14;
        let o = to_otlp(&span, &span.trace);
        assert_eq!(o.name, "/helloworld.Greeter/SayHello");
        assert_eq!(o.status.unwrap().code, StatusCode::Error as i32);
        assert_eq!(
            attrs(&o.attributes),
            pairs(&[
                ("rpc.method", "\"/helloworld.Greeter/SayHello\""),
                ("rpc.system", "\"grpc\""),
                ("rpc.grpc.status_code", "14"),
                ("client.address", "\"10.0.0.7\""),
                ("server.address", "\"checkout\""),
                ("server.port", "8080"),
            ])
        );
        span.status = 5; // NOT_FOUND is not a server error
        assert_eq!(span_status(&span).code, StatusCode::Unset as i32);
        span.span_type = SpanType::GrpcClient;
        assert_eq!(span_status(&span).code, StatusCode::Error as i32);
        assert_eq!(span_kind(span.span_type), SpanKind::Client);
        assert!(!attrs(&span_attributes(&span)).iter().any(|(k, _)| k == "client.address"));
    }

    #[test]
    fn http_status_rules() {
        let mut span = http_server_span();
        for (t, code, error) in [
            (SpanType::HttpServer, 200, false),
            (SpanType::HttpServer, 404, false),
            (SpanType::HttpServer, 500, true),
            (SpanType::HttpServer, 0, true),
            (SpanType::HttpClient, 302, false),
            (SpanType::HttpClient, 400, true),
            (SpanType::HttpClient, 503, true),
        ] {
            span.span_type = t;
            span.status = code;
            let want = if error { StatusCode::Error } else { StatusCode::Unset };
            assert_eq!(span_status(&span).code, want as i32, "{t:?} {code}");
        }
    }

    #[test]
    fn missing_ids_are_generated() {
        let t = complete_ids(&TraceContext::default());
        assert!(t.is_valid());
        assert!(t.sampled());
        assert!(!t.has_parent());
    }

    #[test]
    fn resource_and_grouping() {
        let host = HostInfo { host_name: "node-1".into(), host_id: Some("abc".into()) };
        let a = http_server_span();
        let mut b = http_server_span();
        b.service =
            Arc::new(Service { name: "other".into(), pid: 7, instance_id: "node-1:7".into(), ..Default::default() });
        let req = build_request(
            vec![
                (a.service.clone(), to_otlp(&a, &a.trace)),
                (b.service.clone(), to_otlp(&b, &b.trace)),
                (a.service.clone(), to_otlp(&a, &a.trace)),
            ],
            &host,
        );
        assert_eq!(req.resource_spans.len(), 2);
        let r0 = &req.resource_spans[0];
        assert_eq!(r0.scope_spans[0].spans.len(), 2);
        assert_eq!(r0.scope_spans[0].scope.as_ref().unwrap().name, SCOPE_NAME);
        assert_eq!(
            attrs(&r0.resource.as_ref().unwrap().attributes),
            pairs(&[
                ("service.name", "\"checkout\""),
                ("service.namespace", "\"shop\""),
                ("service.instance.id", "\"node-1:4242\""),
                ("telemetry.sdk.language", "\"python\""),
                ("telemetry.sdk.name", "\"opentelemetry-ebpf-instrumentation\""),
                ("telemetry.sdk.version", &format!("{:?}", env!("CARGO_PKG_VERSION"))),
                ("host.name", "\"node-1\""),
                ("host.id", "\"abc\""),
                ("process.pid", "4242"),
                ("deployment.environment", "\"prod\""),
            ])
        );
        let r1 = attrs(&req.resource_spans[1].resource.as_ref().unwrap().attributes);
        assert!(!r1.iter().any(|(k, _)| k == "service.namespace"));
        assert_eq!(req.resource_spans[1].scope_spans[0].spans.len(), 1);
    }
}
