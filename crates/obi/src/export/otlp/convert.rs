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
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan, Status};

use crate::export::resource::{HostInfo, kv, resource, scope};
use crate::service::Service;
use crate::span::{Span, TraceContext, Value as SpanValue};

/// The OTel span name (OBI's `TraceName()`), as the span's protocol gives it.
pub(crate) fn span_name(span: &Span) -> String {
    span.semantics().name().into_owned()
}

pub(crate) fn span_kind(kind: crate::span::SpanKind) -> SpanKind {
    match kind {
        crate::span::SpanKind::Server => SpanKind::Server,
        crate::span::SpanKind::Client => SpanKind::Client,
        crate::span::SpanKind::Internal => SpanKind::Internal,
    }
}

/// Error when the span's protocol says so; everything else is unset (OBI's
/// newer, semconv behaviour).
pub(crate) fn span_status(span: &Span) -> Status {
    let code = if span.semantics().is_error(span.kind) { StatusCode::Error } else { StatusCode::Unset };
    Status { message: String::new(), code: code as i32 }
}

fn any_value(v: SpanValue<'_>) -> Value {
    match v {
        SpanValue::Str(s) => Value::StringValue(s.to_string()),
        SpanValue::Int(i) => Value::IntValue(i),
        SpanValue::Ip(Some(addr)) => Value::StringValue(addr.to_string()),
        SpanValue::Ip(None) => Value::StringValue(String::new()),
    }
}

/// The attributes of a span (OBI's `traceAttributes`).
pub(crate) fn span_attributes(span: &Span) -> Vec<KeyValue> {
    let mut a = Vec::with_capacity(10);
    span.semantics().otel_attributes(span, &mut |key, value| a.push(kv(key, any_value(value))));
    // The traced service at the other end, when the agent knows it.
    if let Some(peer) = span.peer_service.as_ref().filter(|p| !p.name.is_empty()) {
        a.push(kv("peer.service", any_value(crate::span::Value::Str(&peer.name))));
    }
    a
}

/// Gives a span without ids random ones (OBI generates a trace id when the
/// kernel had none), so that every exported span is valid.
pub(crate) fn complete_ids(trace: &TraceContext) -> TraceContext {
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
pub(crate) fn to_otlp(span: &Span, trace: &TraceContext) -> OtlpSpan {
    OtlpSpan {
        trace_id: trace.trace_id.to_vec(),
        span_id: trace.span_id.to_vec(),
        trace_state: String::new(),
        parent_span_id: if trace.has_parent() { trace.parent_span_id.to_vec() } else { Vec::new() },
        flags: trace.flags as u32,
        name: span_name(span),
        kind: span_kind(span.kind) as i32,
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

/// Below this wait, "in queue" is the wake-up of a thread that was already
/// waiting for the bytes, not a queue: the span is not split (its start
/// still counts from the arrival).
const MIN_QUEUE_SPLIT_NS: u64 = 1_000_000;

/// The new ids of a span split for its wait in queue (see [`to_otlp_spans`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueSplit {
    /// The server span's new id, parent of the two children.
    pub(crate) outer_id: [u8; 8],
    /// The id of the `in queue` child.
    pub(crate) queue_id: [u8; 8],
}

/// Whether `span` is exported as OBI's three spans (a server request that
/// waited before its handler read it), with their new ids.
pub(crate) fn queue_split(span: &Span, trace: &TraceContext) -> Option<QueueSplit> {
    let waited = span.start_ns.saturating_sub(span.request_start_ns);
    if span.kind != crate::span::SpanKind::Server || waited < MIN_QUEUE_SPLIT_NS {
        return None;
    }
    let outer_id = random_distinct(&trace.span_id, &trace.span_id);
    Some(QueueSplit { outer_id, queue_id: random_distinct(&outer_id, &trace.span_id) })
}

/// The OTLP spans of one span: the span itself, or, for a server request
/// that waited before its handler read it, OBI's shape: the server span
/// (new span id) with two internal children, `in queue` (arrival to
/// handler start) and `processing` (handler start to end, with the span's
/// own id so its client calls stay its children).
pub(crate) fn to_otlp_spans(span: &Span, trace: &TraceContext, out: &mut impl FnMut(OtlpSpan)) {
    let whole = to_otlp(span, trace);
    let Some(QueueSplit { outer_id, queue_id }) = queue_split(span, trace) else {
        out(whole);
        return;
    };
    let child = |name: &str, span_id: Vec<u8>, start: u64, end: u64| OtlpSpan {
        trace_id: whole.trace_id.clone(),
        span_id,
        parent_span_id: outer_id.to_vec(),
        flags: whole.flags,
        name: name.to_string(),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        status: Some(Status::default()),
        ..Default::default()
    };
    out(child("in queue", queue_id.to_vec(), span.request_start_ns, span.start_ns));
    out(child("processing", trace.span_id.to_vec(), span.start_ns, span.end_ns));
    out(OtlpSpan { span_id: outer_id.to_vec(), ..whole });
}

/// A random span id different from the two given.
fn random_distinct(a: &[u8; 8], b: &[u8; 8]) -> [u8; 8] {
    loop {
        let id = crate::tracker::trace_ids::random_span_id();
        if id != *a && id != *b {
            return id;
        }
    }
}

/// Groups converted spans by process into one export request.
pub(crate) fn build_request(spans: Vec<(Arc<Service>, OtlpSpan)>, host: &HostInfo) -> ExportTraceServiceRequest {
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
    use crate::span::fixtures;
    use crate::span::{HttpSpan, SpanDetail, SpanKind as Kind};

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
            kind: Kind::Server,
            detail: SpanDetail::Http(HttpSpan {
                method: "GET".into(),
                path: "/users/42".into(),
                route: String::new(),
                status: 200,
                request_body_size: 12,
                response_body_size: 3456,
                host_header: Some("shop.example:8080".into()),
                tls: false,
            }),
            peer: Endpoint { addr: ip("::ffff:10.0.0.7"), port: 51234, name: String::new() },
            host: Endpoint { addr: ip("10.0.0.1"), port: 8080, name: String::new() },
            request_start_ns: 1_000,
            start_ns: 1_000,
            end_ns: 5_000,
            trace: TraceContext { trace_id: [0xab; 16], span_id: [0xcd; 8], parent_span_id: [0; 8], flags: 1 },
            service: service(),
            peer_service: None,
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
                ("url.scheme", "\"http\""),
                ("client.address", "\"10.0.0.7\""),
                ("server.address", "\"checkout\""),
                ("server.port", "8080"),
                ("http.request.body.size", "12"),
                ("http.response.body.size", "3456"),
            ])
        );
        let mut routed = span.clone();
        fixtures::http(&mut routed).route = "/users/{id}".into();
        let o = to_otlp(&routed, &routed.trace);
        assert_eq!(o.name, "GET /users/{id}");
        assert_eq!(attrs(&o.attributes).last().unwrap(), &("http.route".to_string(), "\"/users/{id}\"".to_string()));
        // TLS plaintext (the OpenSSL probes) is https.
        let mut tls = span.clone();
        fixtures::http(&mut tls).tls = true;
        let a = attrs(&to_otlp(&tls, &tls.trace).attributes);
        assert!(a.contains(&("url.scheme".into(), "\"https\"".into())), "{a:?}");
    }

    #[test]
    fn http_client_span_has_url_full_and_host_header_address() {
        let mut span = http_server_span();
        span.kind = crate::span::SpanKind::Client;
        fixtures::http(&mut span).method = "POST".into();
        fixtures::http(&mut span).status = 404;
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
        fixtures::http(&mut span).host_header = None;
        let a = attrs(&to_otlp(&span, &span.trace).attributes);
        assert!(a.contains(&("url.full".into(), "\"/users/42\"".into())));
        assert!(a.contains(&("server.address".into(), "\"10.0.0.1\"".into())));
        // The scheme follows TLS, not the port.
        fixtures::http(&mut span).host_header = Some("shop.example".into());
        fixtures::http(&mut span).tls = true;
        let a = attrs(&to_otlp(&span, &span.trace).attributes);
        assert!(a.contains(&("url.full".into(), "\"https://shop.example/users/42\"".into())), "{a:?}");
        assert!(a.contains(&("http.scheme".into(), "\"https\"".into())), "{a:?}");
    }

    #[test]
    fn grpc_spans() {
        let mut span = http_server_span();
        span.detail = crate::span::SpanDetail::Grpc(crate::span::GrpcSpan {
            http_method: "POST".into(),
            method: "/helloworld.Greeter/SayHello".into(),
            status: 14,
            ..Default::default()
        });
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
        fixtures::grpc(&mut span).status = 5; // NOT_FOUND is not a server error
        assert_eq!(span_status(&span).code, StatusCode::Unset as i32);
        span.kind = crate::span::SpanKind::Client;
        assert_eq!(span_status(&span).code, StatusCode::Error as i32);
        assert_eq!(span_kind(span.kind), SpanKind::Client);
        assert!(!attrs(&span_attributes(&span)).iter().any(|(k, _)| k == "client.address"));
    }

    #[test]
    fn http_status_rules() {
        use crate::span::SpanKind::{Client, Server};
        let mut span = http_server_span();
        for (t, code, error) in [
            (Server, 200, false),
            (Server, 404, false),
            (Server, 500, true),
            (Server, 0, true),
            (Client, 302, false),
            (Client, 400, true),
            (Client, 503, true),
        ] {
            span.kind = t;
            fixtures::http(&mut span).status = code;
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

    fn split(span: &Span) -> Vec<OtlpSpan> {
        let mut out = Vec::new();
        to_otlp_spans(span, &span.trace, &mut |s| out.push(s));
        out
    }

    #[test]
    fn a_request_that_waited_gets_in_queue_and_processing_children() {
        let mut span = http_server_span();
        span.trace.parent_span_id = [0x11; 8];
        span.request_start_ns = 10_000_000;
        span.start_ns = 25_000_000;
        span.end_ns = 30_000_000;
        let out = split(&span);
        let names: Vec<&str> = out.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["in queue", "processing", "GET"]);
        let (queue, processing, server) = (&out[0], &out[1], &out[2]);
        assert_eq!(server.kind, SpanKind::Server as i32);
        assert_eq!(server.parent_span_id, vec![0x11; 8], "the server span keeps the caller as parent");
        assert_ne!(server.span_id, vec![0xcd; 8], "the server span gets a new id");
        assert_eq!((server.start_time_unix_nano, server.end_time_unix_nano), (10_000_000, 30_000_000));
        assert_eq!(processing.span_id, vec![0xcd; 8], "processing keeps the id client calls point at");
        for child in [queue, processing] {
            assert_eq!(child.kind, SpanKind::Internal as i32);
            assert_eq!(child.parent_span_id, server.span_id);
            assert_eq!(child.trace_id, server.trace_id);
        }
        assert_ne!(queue.span_id, server.span_id);
        assert_eq!((queue.start_time_unix_nano, queue.end_time_unix_nano), (10_000_000, 25_000_000));
        assert_eq!((processing.start_time_unix_nano, processing.end_time_unix_nano), (25_000_000, 30_000_000));
    }

    #[test]
    fn short_waits_and_client_spans_stay_whole() {
        let mut span = http_server_span();
        span.request_start_ns = 10_000_000;
        span.start_ns = 10_500_000;
        span.end_ns = 12_000_000;
        let out = split(&span);
        assert_eq!(out.len(), 1, "a wake-up, not a queue");
        assert_eq!(out[0].start_time_unix_nano, 10_000_000, "the span still starts at the arrival");
        span.kind = Kind::Client;
        span.start_ns = 20_000_000;
        assert_eq!(split(&span).len(), 1);
    }
}
