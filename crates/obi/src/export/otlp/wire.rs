//! OTLP trace requests encoded straight from spans: the protobuf bytes of an
//! `ExportTraceServiceRequest` are written as spans arrive, without building
//! the message tree of [`super::convert`] (an owned string per attribute,
//! then a second pass to size every nested message). The bytes are the ones
//! prost writes for the tree `convert` builds (fields in tag order, proto3
//! defaults left out, oneof values always written): the tests compare them.
//!
//! Spans are grouped by process, as `convert::build_request` groups them:
//! one `ResourceSpans` per service, in the order the services first appear.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use prost::encoding::{encode_varint, encoded_len_varint};

use super::convert::{QueueSplit, queue_split, span_kind};
use crate::export::resource::{HostInfo, resource, scope};
use crate::service::Service;
use crate::span::{Span, TraceContext, Value};

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

fn key(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
    encode_varint(u64::from(field << 3 | wire_type), buf);
}

fn key_len(field: u32) -> usize {
    encoded_len_varint(u64::from(field << 3))
}

/// A length-delimited field of `len` bytes, without the bytes.
fn len_prefix(buf: &mut Vec<u8>, field: u32, len: usize) {
    key(buf, field, LEN);
    encode_varint(len as u64, buf);
}

fn bytes_field(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    len_prefix(buf, field, bytes.len());
    buf.extend_from_slice(bytes);
}

/// Size of a length-delimited field holding `len` bytes.
fn len_field_size(field: u32, len: usize) -> usize {
    key_len(field) + encoded_len_varint(len as u64) + len
}

/// An IP address as text, formatted on the stack.
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    fn new(addr: IpAddr) -> IpText {
        let mut t = IpText { buf: [0; 48], len: 0 };
        // The longest address text is 45 bytes: this never fails.
        let _ = write!(t, "{addr}");
        t
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// One `KeyValue` (field 9 of a span): the key and an `AnyValue` holding a
/// string or an int.
fn attribute(buf: &mut Vec<u8>, name: &str, value: Value<'_>) {
    let ip;
    let (any_len, text, int) = match value {
        Value::Int(i) => (key_len(3) + encoded_len_varint(i as u64), None, i),
        Value::Str(s) => (len_field_size(1, s.len()), Some(s), 0),
        Value::Ip(addr) => {
            ip = addr.map(IpText::new);
            let s = ip.as_ref().map_or("", IpText::as_str);
            (len_field_size(1, s.len()), Some(s), 0)
        }
    };
    let name_len = if name.is_empty() { 0 } else { len_field_size(1, name.len()) };
    len_prefix(buf, 9, name_len + len_field_size(2, any_len));
    if !name.is_empty() {
        bytes_field(buf, 1, name.as_bytes());
    }
    len_prefix(buf, 2, any_len);
    match text {
        Some(s) => bytes_field(buf, 1, s.as_bytes()),
        None => {
            key(buf, 3, VARINT);
            encode_varint(int as u64, buf);
        }
    }
}

/// The fields of one OTLP `Span` message.
struct SpanFields<'a> {
    trace_id: &'a [u8; 16],
    span_id: &'a [u8; 8],
    parent: Option<&'a [u8; 8]>,
    flags: u32,
    name: &'a str,
    kind: SpanKind,
    start: u64,
    end: u64,
    status: StatusCode,
}

/// Writes a `Span` message's fields (attributes from `attrs`, between the
/// end time and the status, where their tag puts them).
fn span_message(buf: &mut Vec<u8>, f: &SpanFields<'_>, attrs: impl FnOnce(&mut Vec<u8>)) {
    bytes_field(buf, 1, f.trace_id);
    bytes_field(buf, 2, f.span_id);
    if let Some(parent) = f.parent {
        bytes_field(buf, 4, parent);
    }
    if !f.name.is_empty() {
        bytes_field(buf, 5, f.name.as_bytes());
    }
    if f.kind as i32 != 0 {
        key(buf, 6, VARINT);
        encode_varint(f.kind as i32 as u64, buf);
    }
    for (field, t) in [(7, f.start), (8, f.end)] {
        if t != 0 {
            key(buf, field, FIXED64);
            buf.extend_from_slice(&t.to_le_bytes());
        }
    }
    attrs(buf);
    // The status is always present; its code only when not Unset.
    let code = f.status as i32;
    if code == 0 {
        len_prefix(buf, 15, 0);
    } else {
        len_prefix(buf, 15, key_len(3) + encoded_len_varint(code as u64));
        key(buf, 3, VARINT);
        encode_varint(code as u64, buf);
    }
    if f.flags != 0 {
        key(buf, 16, FIXED32);
        buf.extend_from_slice(&f.flags.to_le_bytes());
    }
}

/// The spans of one process in the open batch.
struct Group {
    service: Arc<Service>,
    /// `Span` messages, each framed as field 2 of `ScopeSpans`.
    spans: Vec<u8>,
}

/// The open batch of an OTLP/protobuf traces exporter, encoded as spans
/// are added. Reused from batch to batch.
#[derive(Default)]
pub(crate) struct BatchEncoder {
    groups: Vec<Group>,
    /// Index in `groups` by the address of the service (kept alive by the group).
    by_service: HashMap<usize, usize>,
    /// One span's message while it is written (its length prefixes it).
    scratch: Vec<u8>,
    /// One span's name while it is written.
    name: String,
    /// OTLP spans in the batch (a split span is three).
    otlp_spans: usize,
    /// Buffers of the groups of the last batch, emptied, for the next one:
    /// a steady load writes into pages it already has instead of faulting
    /// in fresh ones (and growing them by doubling) for every batch.
    spare: Vec<Vec<u8>>,
    /// Bytes of the largest group of the last batch: a group that finds no
    /// spare buffer gets one that large.
    group_hint: usize,
}

/// The most a new group's buffer is given up front.
const MAX_GROUP_HINT: usize = 4 << 20;
/// Spare buffers are kept up to this many bytes in all.
const MAX_SPARE_BYTES: usize = 8 << 20;

impl BatchEncoder {
    /// OTLP spans in the open batch.
    pub(crate) fn len(&self) -> usize {
        self.otlp_spans
    }

    /// Adds the OTLP spans of `span` (see `convert::to_otlp_spans`); `trace`
    /// is its context after `convert::complete_ids`.
    pub(crate) fn add(&mut self, span: &Span, trace: &TraceContext) {
        let split = queue_split(span, trace);
        let next = self.groups.len();
        let i = *self.by_service.entry(Arc::as_ptr(&span.service) as usize).or_insert(next);
        if i == next {
            let spans = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(self.group_hint));
            self.groups.push(Group { service: span.service.clone(), spans });
        }
        self.name.clear();
        span.semantics().write_name(&mut self.name);
        let mut fields = SpanFields {
            trace_id: &trace.trace_id,
            span_id: &trace.span_id,
            parent: trace.has_parent().then_some(&trace.parent_span_id),
            flags: u32::from(trace.flags),
            name: &self.name,
            kind: span_kind(span.kind),
            start: span.request_start_ns.min(span.start_ns),
            end: span.end_ns,
            status: if span.semantics().is_error(span.kind) { StatusCode::Error } else { StatusCode::Unset },
        };
        let out = &mut self.groups[i].spans;
        let scratch = &mut self.scratch;
        let mut put = |f: &SpanFields<'_>, attrs: &mut dyn FnMut(&mut Vec<u8>)| {
            scratch.clear();
            span_message(scratch, f, attrs);
            bytes_field(out, 2, scratch);
        };
        let Some(QueueSplit { outer_id, queue_id }) = split else {
            put(&fields, &mut |buf| span_attributes(buf, span));
            self.otlp_spans += 1;
            return;
        };
        let child = |name, span_id, start, end| SpanFields {
            trace_id: &trace.trace_id,
            span_id,
            parent: Some(&outer_id),
            flags: u32::from(trace.flags),
            name,
            kind: SpanKind::Internal,
            start,
            end,
            status: StatusCode::Unset,
        };
        put(&child("in queue", &queue_id, span.request_start_ns, span.start_ns), &mut |_| {});
        put(&child("processing", &trace.span_id, span.start_ns, span.end_ns), &mut |_| {});
        fields.span_id = &outer_id;
        put(&fields, &mut |buf| span_attributes(buf, span));
        self.otlp_spans += 3;
    }

    /// The encoded request of the open batch, which is then empty, written
    /// into `out` (emptied first): a buffer of an earlier batch, whose pages
    /// the process already has (a fresh one of batch size is mapped and
    /// faulted in page by page: ~5 % of the agent's CPU at saturation).
    pub(crate) fn finish(&mut self, host: &HostInfo, mut out: Vec<u8>) -> Vec<u8> {
        let scope = scope();
        let scope_len = scope.encoded_len();
        let resources: Vec<_> = self.groups.iter().map(|g| resource(&g.service, host)).collect();
        let sizes: Vec<(usize, usize)> = self
            .groups
            .iter()
            .zip(&resources)
            .map(|(g, r)| {
                let scope_spans = len_field_size(1, scope_len) + g.spans.len();
                (scope_spans, len_field_size(1, r.encoded_len()) + len_field_size(2, scope_spans))
            })
            .collect();
        let total: usize = sizes.iter().map(|(_, rs)| len_field_size(1, *rs)).sum();
        out.clear();
        out.reserve(total);
        for ((g, r), (scope_spans, rs)) in self.groups.iter().zip(&resources).zip(sizes) {
            len_prefix(&mut out, 1, rs);
            len_prefix(&mut out, 1, r.encoded_len());
            r.encode_raw(&mut out);
            len_prefix(&mut out, 2, scope_spans);
            len_prefix(&mut out, 1, scope_len);
            scope.encode_raw(&mut out);
            out.extend_from_slice(&g.spans);
        }
        debug_assert_eq!(out.len(), total);
        self.group_hint = self.groups.iter().map(|g| g.spans.len()).max().unwrap_or(0).min(MAX_GROUP_HINT);
        self.clear();
        out
    }

    /// Forgets the open batch. The buffers of its groups are kept for the
    /// next one, but not one that was mostly unused: when the load drops,
    /// so does what the encoder holds.
    pub(crate) fn clear(&mut self) {
        let mut kept: usize = self.spare.iter().map(Vec::capacity).sum();
        for mut g in self.groups.drain(..) {
            if g.spans.len() >= g.spans.capacity() / 4 && kept + g.spans.capacity() <= MAX_SPARE_BYTES {
                kept += g.spans.capacity();
                g.spans.clear();
                self.spare.push(g.spans);
            }
        }
        self.by_service.clear();
        self.otlp_spans = 0;
    }
}

/// The attributes of a span (as `convert::span_attributes` lists them).
fn span_attributes(buf: &mut Vec<u8>, span: &Span) {
    span.semantics().otel_attributes(span, &mut |name, value| attribute(buf, name, value));
    if let Some(peer) = span.peer_service.as_ref().filter(|p| !p.name.is_empty()) {
        attribute(buf, "peer.service", Value::Str(&peer.name));
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    use super::*;
    use crate::export::otlp::convert::{build_request, complete_ids, to_otlp_spans};
    use crate::export::otlp::transport::Encoded;
    use crate::service::Language;
    use crate::span::fixtures::{self, Shape};
    use crate::span::{Endpoint, SpanKind as Kind};

    fn service(name: &str, pid: u32) -> Arc<Service> {
        Arc::new(Service {
            name: name.into(),
            namespace: if pid.is_multiple_of(2) { "shop".into() } else { String::new() },
            language: Language::Python,
            pid,
            instance_id: format!("node-1:{pid}"),
            resource_attributes: vec![("deployment.environment".into(), "prod".into())],
            ..Default::default()
        })
    }

    /// Spans of every shape, with and without ids, routes, Host headers,
    /// names of the peer, IPv6 and unknown addresses, a peer service, zero
    /// and negative sizes, and errors.
    fn variety() -> Vec<Span> {
        let (a, b) = (service("checkout", 4242), service("cart", 7));
        let mut out = Vec::new();
        for (i, shape) in [Shape::HttpServer, Shape::HttpClient, Shape::GrpcServer, Shape::GrpcClient]
            .into_iter()
            .cycle()
            .take(24)
            .enumerate()
        {
            let svc = if i % 3 == 0 { b.clone() } else { a.clone() };
            let status = [200, 404, 500, 0, 14, 2][i % 6];
            let mut s = fixtures::span(shape, svc, &format!("/users/{i}"), status, i as u64);
            if i % 2 == 0 {
                s.trace = TraceContext {
                    trace_id: [i as u8 + 1; 16],
                    span_id: [i as u8 + 2; 8],
                    parent_span_id: if i % 4 == 0 { [9; 8] } else { [0; 8] },
                    flags: (i % 3 == 0) as u8,
                };
            }
            match &mut s.detail {
                crate::span::SpanDetail::Http(h) => {
                    h.route = if i % 5 == 0 { String::new() } else { "/users/{id}".into() };
                    h.host_header = (i % 3 == 1).then(|| "shop.example:8080".into());
                    h.tls = i % 7 == 0;
                    h.request_body_size = -(i as i64 % 2);
                    h.response_body_size = 0;
                }
                crate::span::SpanDetail::Grpc(g) => g.authority = (i % 3 == 2).then(|| "grpc.example".into()),
                _ => {}
            }
            match i % 4 {
                0 => {
                    s.peer =
                        Endpoint { addr: Some("2001:db8::1".parse::<IpAddr>().unwrap()), port: 1, name: String::new() }
                }
                1 => s.peer = Endpoint::unknown(),
                2 => s.host.name = "named-host".into(),
                _ => s.peer_service = Some(service("inventory", 99)),
            }
            if i == 5 {
                s.start_ns = 0;
                s.request_start_ns = 0;
                s.end_ns = 0;
            }
            out.push(s);
        }
        out
    }

    /// What the message tree of `convert` encodes to, for the same spans
    /// and the same generated ids.
    fn reference(spans: &[(Span, TraceContext)], host: &HostInfo) -> Vec<u8> {
        let mut tree = Vec::new();
        for (s, t) in spans {
            to_otlp_spans(s, t, &mut |o| tree.push((s.service.clone(), o)));
        }
        build_request(tree, host).encode_to_vec()
    }

    #[test]
    fn bytes_are_those_of_the_message_tree() {
        let host = HostInfo { host_name: "node-1".into(), host_id: Some("abc".into()) };
        let spans: Vec<(Span, TraceContext)> = variety()
            .into_iter()
            .map(|s| {
                let t = complete_ids(&s.trace);
                (s, t)
            })
            .collect();
        let mut enc = BatchEncoder::default();
        // The second round is written into the first one's buffer, given
        // back once its request is no longer held (as the exporter does).
        let mut buffer = Vec::new();
        let mut reused = None;
        for round in 0..2 {
            for (s, t) in &spans {
                enc.add(s, t);
            }
            assert_eq!(enc.len(), spans.len(), "round {round}");
            let got = enc.finish(&host, std::mem::take(&mut buffer));
            assert_eq!(enc.len(), 0);
            assert_eq!(got, reference(&spans, &host), "round {round}");
            if let Some(ptr) = reused {
                assert_eq!(got.as_ptr(), ptr, "the buffer of the last batch is written again");
            }
            let request = Encoded::<ExportTraceServiceRequest>::protobuf(got);
            let attempt = request.clone();
            assert!(attempt.into_buffer().is_none(), "a request still held elsewhere is not taken back");
            buffer = request.into_buffer().expect("the last holder takes the buffer back");
            reused = Some(buffer.as_ptr());
        }
        // An empty batch is an empty request.
        assert!(enc.finish(&HostInfo::default(), Vec::new()).is_empty());
    }

    #[test]
    fn a_request_that_waited_is_three_spans_with_the_trees_shape() {
        let mut span = fixtures::span(Shape::HttpServer, service("checkout", 1), "/a", 200, 30);
        span.kind = Kind::Server;
        span.trace.parent_span_id = [0x11; 8];
        span.request_start_ns = 10_000_000;
        span.start_ns = 25_000_000;
        let trace = complete_ids(&span.trace);
        let mut enc = BatchEncoder::default();
        enc.add(&span, &trace);
        assert_eq!(enc.len(), 3);
        let req = ExportTraceServiceRequest::decode(enc.finish(&HostInfo::default(), Vec::new()).as_slice()).unwrap();
        let got = &req.resource_spans[0].scope_spans[0].spans;
        let mut want = Vec::new();
        to_otlp_spans(&span, &trace, &mut |o| want.push(o));
        assert_eq!(got.len(), 3);
        let names: Vec<&str> = got.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["in queue", "processing", "GET /a"]);
        let (queue, processing, server) = (&got[0], &got[1], &got[2]);
        assert_eq!(processing.span_id, trace.span_id.to_vec());
        assert_eq!(server.parent_span_id, vec![0x11; 8]);
        for child in [queue, processing] {
            assert_eq!(child.parent_span_id, server.span_id);
        }
        assert_ne!(queue.span_id, server.span_id);
        // Apart from the random ids, the tree's spans.
        for (g, w) in got.iter().zip(&want) {
            let strip = |s: &opentelemetry_proto::tonic::trace::v1::Span| {
                let mut s = s.clone();
                s.span_id.clear();
                s.parent_span_id.clear();
                s
            };
            assert_eq!(strip(g), strip(w));
        }
    }
}
