//! The tracker fed with synthetic kernel records: span assembly, pairing,
//! trace context, holding spans of unnamed processes, ignoring junk.

use std::sync::Arc;

use super::*;
use crate::ebpf::abi::{ConnTuple, EventHdr, Tp};
use crate::span::{GrpcSpan, HttpSpan, SpanDetail, SpanKind};

fn http(s: &Span) -> &HttpSpan {
    match &s.detail {
        SpanDetail::Http(h) => h,
        other => panic!("not HTTP: {other:?}"),
    }
}

fn grpc(s: &Span) -> &GrpcSpan {
    match &s.detail {
        SpanDetail::Grpc(g) => g,
        other => panic!("not gRPC: {other:?}"),
    }
}

/// (path or gRPC method, status) of a span.
fn target_status(s: &Span) -> (&str, i32) {
    let sum = s.semantics().summary();
    (sum.target, sum.status as i32)
}

const PID: u32 = 4242;

fn tuple(lport: u16, rport: u16) -> ConnTuple {
    let mut t = ConnTuple { lport, rport, family: 2, ..Default::default() };
    for a in [&mut t.laddr, &mut t.raddr] {
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&[127, 0, 0, 1]);
    }
    t
}

fn tp(trace: u8, span: u8, parent: u8) -> Tp {
    Tp { trace_id: [trace; 16], span_id: [span; 8], parent_id: [parent; 8], flags: 1, valid: 1, _pad: [0; 6] }
}

struct Ev {
    hdr: EventHdr,
    data: Vec<u8>,
}

impl Ev {
    fn new(kind: u8, conn: u64, role: u8) -> Ev {
        let hdr = EventHdr {
            kind,
            role,
            tgid: PID,
            tid: PID + 1,
            conn_id: conn,
            tuple: if role == abi::ROLE_CLIENT { tuple(50000, 8080) } else { tuple(8080, 50000) },
            ..Default::default()
        };
        Ev { hdr, data: Vec::new() }
    }

    fn data(conn: u64, role: u8, dir: u8, ts: u64, bytes: &[u8]) -> Ev {
        let mut e = Ev::new(abi::EV_DATA, conn, role);
        e.hdr.dir = dir;
        e.hdr.ts_enter = ts;
        e.hdr.ts_exit = ts + 10;
        e.hdr.bytes = bytes.len() as u64;
        e.hdr.captured = bytes.len() as u16;
        e.data = bytes.to_vec();
        e
    }

    fn flags(mut self, f: u8, t: Tp) -> Ev {
        self.hdr.flags = f;
        self.hdr.tp = t;
        self
    }

    /// Only the first `n` bytes were captured.
    fn truncate(mut self, n: usize) -> Ev {
        self.data.truncate(n);
        self.hdr.captured = n as u16;
        self.hdr.flags |= abi::F_TRUNCATED;
        self
    }

    fn record(&self) -> Vec<u8> {
        let mut out = vec![0u8; EventHdr::SIZE];
        // SAFETY: writing a POD header into a buffer of exactly its size.
        unsafe { std::ptr::write_unaligned(out.as_mut_ptr() as *mut EventHdr, self.hdr) };
        out.extend_from_slice(&self.data);
        out
    }
}

fn tracker_with_service() -> Tracker {
    let mut t = Tracker::new(Clock::new(), 0);
    t.add_service(Arc::new(Service { name: "svc".into(), pid: PID, ..Default::default() }));
    t
}

const REQ: &[u8] = b"GET /users/7?x=1 HTTP/1.1\r\nHost: api:8080\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const START: u8 = abi::F_MSG_START | abi::F_REQUEST;

fn feed(t: &mut Tracker, evs: &[Ev]) {
    for e in evs {
        t.handle_record(&e.record());
    }
}

#[test]
fn server_exchange_becomes_one_span_with_kernel_ids() {
    let mut t = tracker_with_service();
    feed(
        &mut t,
        &[
            Ev::new(abi::EV_CONN_OPEN, 1, abi::ROLE_SERVER),
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1_000, REQ).flags(START, tp(1, 2, 0)),
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_SEND, 5_000, RESP).flags(abi::F_MSG_START, tp(1, 2, 0)),
        ],
    );
    let spans = t.take_spans();
    assert_eq!(spans.len(), 1);
    let s = &spans[0];
    assert_eq!(s.kind, SpanKind::Server);
    let h = http(s);
    assert_eq!((h.method.as_str(), h.path.as_str(), h.status), ("GET", "/users/7", 200));
    assert_eq!((h.request_body_size, h.response_body_size), (0, 5));
    assert_eq!((s.peer.port, s.host.port), (50000, 8080));
    assert_eq!(s.trace.trace_id, [1; 16]);
    assert_eq!(s.trace.span_id, [2; 8]);
    assert!(!s.trace.has_parent());
    // Server spans run from the read's exit to the write's exit.
    assert_eq!(s.duration_ns(), (5_000 + 10) - (1_000 + 10));
    assert_eq!(s.service.name, "svc");
}

#[test]
fn client_exchange_keeps_the_kernel_parent() {
    let mut t = tracker_with_service();
    feed(
        &mut t,
        &[
            Ev::new(abi::EV_CONN_OPEN, 2, abi::ROLE_CLIENT),
            Ev::data(2, abi::ROLE_CLIENT, abi::DIR_SEND, 100, REQ).flags(START, tp(3, 4, 9)),
            Ev::data(2, abi::ROLE_CLIENT, abi::DIR_RECV, 900, RESP).flags(abi::F_MSG_START, tp(3, 4, 9)),
        ],
    );
    let s = &t.take_spans()[0];
    assert_eq!(s.kind, SpanKind::Client);
    assert_eq!(s.trace.parent_span_id, [9; 8]);
    assert_eq!(http(s).host_header.as_deref(), Some("api:8080"));
    assert_eq!((s.peer.port, s.host.port), (50000, 8080));
    // Client spans run from the send's entry to the read's exit.
    assert_eq!(s.duration_ns(), 910 - 100);
}

#[test]
fn incoming_traceparent_is_adopted_and_children_follow() {
    let mut t = tracker_with_service();
    let req = b"GET / HTTP/1.1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";
    feed(
        &mut t,
        &[
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1, req).flags(START, tp(1, 2, 0)),
            // A client call made while serving: the kernel parented it under its own trace id.
            Ev::data(2, abi::ROLE_CLIENT, abi::DIR_SEND, 2, REQ).flags(START, tp(1, 5, 2)),
            Ev::data(2, abi::ROLE_CLIENT, abi::DIR_RECV, 3, RESP).flags(abi::F_MSG_START, tp(1, 5, 2)),
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_SEND, 4, RESP).flags(abi::F_MSG_START, tp(1, 2, 0)),
        ],
    );
    let spans = t.take_spans();
    let server = spans.iter().find(|s| s.kind == SpanKind::Server).unwrap();
    let client = spans.iter().find(|s| s.kind == SpanKind::Client).unwrap();
    assert_eq!(server.trace.trace_id[..2], [0x0a, 0xf7]);
    assert_eq!(server.trace.parent_span_id[..2], [0xb7, 0xad]);
    assert_eq!(server.trace.span_id, [2; 8]);
    assert_eq!(client.trace.trace_id, server.trace.trace_id);
    assert_eq!(client.trace.parent_span_id, server.trace.span_id);
}

#[test]
fn pipelined_requests_get_distinct_ids_and_pair_in_order() {
    let mut t = tracker_with_service();
    let mut reqs = Vec::new();
    for p in ["/a", "/b", "/c"] {
        reqs.extend_from_slice(format!("GET {p} HTTP/1.1\r\n\r\n").as_bytes());
    }
    let mut resps = Vec::new();
    for code in [200, 404, 500] {
        resps.extend_from_slice(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes());
    }
    feed(
        &mut t,
        &[
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1, &reqs).flags(START, tp(1, 2, 0)),
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_SEND, 2, &resps).flags(abi::F_MSG_START, tp(1, 2, 0)),
        ],
    );
    let spans = t.take_spans();
    let got: Vec<(&str, i32)> = spans.iter().map(target_status).collect();
    assert_eq!(got, vec![("/a", 200), ("/b", 404), ("/c", 500)]);
    let ids: std::collections::HashSet<[u8; 8]> = spans.iter().map(|s| s.trace.span_id).collect();
    assert_eq!(ids.len(), 3);
}

#[test]
fn large_response_with_truncated_captures() {
    let mut t = tracker_with_service();
    let mut body = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    let head_len = body.len();
    body.resize(head_len + 100_000, b'x');
    feed(
        &mut t,
        &[
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1, REQ).flags(START, tp(1, 2, 0)),
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_SEND, 2, &body[..60_000])
                .flags(abi::F_MSG_START, tp(1, 2, 0))
                .truncate(1024),
        ],
    );
    assert!(t.take_spans().is_empty(), "40000 body bytes are still to come");
    feed(&mut t, &[Ev::data(1, abi::ROLE_SERVER, abi::DIR_SEND, 3, &body[60_000..]).truncate(1024)]);
    let spans = t.take_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(http(&spans[0]).response_body_size, 100_000);
}

#[test]
fn close_delimited_response_ends_at_close() {
    let mut t = tracker_with_service();
    feed(
        &mut t,
        &[
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1, REQ).flags(START, tp(1, 2, 0)),
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_SEND, 2, b"HTTP/1.0 200 OK\r\n\r\nbody...")
                .flags(abi::F_MSG_START, tp(1, 2, 0)),
        ],
    );
    assert!(t.take_spans().is_empty());
    let mut close = Ev::new(abi::EV_CONN_CLOSE, 1, abi::ROLE_SERVER);
    close.hdr.ts_enter = 50;
    feed(&mut t, &[close]);
    let spans = t.take_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(http(&spans[0]).response_body_size, 7);
}

#[test]
fn garbage_connection_is_ignored_without_spans() {
    let mut t = tracker_with_service();
    feed(
        &mut t,
        &[Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1, b"\x00\x13\x37garbage\xff\xfe").flags(START, tp(1, 2, 0))],
    );
    assert!(t.take_spans().is_empty());
    assert_eq!(t.take_ignored(), vec![1]);
    assert_eq!(t.stats().ignored_conns, 1);
    // Later bytes on the ignored connection are skipped.
    feed(&mut t, &[Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 2, REQ)]);
    assert!(t.take_spans().is_empty());
}

#[test]
fn ignored_connections_count_once_their_process_is_named() {
    // Watched from its exec, not named yet: its garbage connection waits.
    let mut t = Tracker::new(Clock::new(), 0);
    let garbage = b"\x00\x13\x37garbage\xff\xfe";
    feed(&mut t, &[Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1, garbage).flags(START, tp(1, 2, 0))]);
    assert_eq!(t.stats().ignored_conns, 0);
    t.add_service(Arc::new(Service { name: "svc".into(), pid: PID, ..Default::default() }));
    assert_eq!(t.stats().ignored_conns, 1, "named: its connection counts");
    // Another process watched from its exec and rejected: never counted.
    let mut other = Ev::data(2, abi::ROLE_SERVER, abi::DIR_RECV, 1, garbage).flags(START, tp(1, 2, 0));
    other.hdr.tgid = PID + 1;
    feed(&mut t, &[other]);
    t.reject(PID + 1);
    t.add_service(Arc::new(Service { name: "later".into(), pid: PID + 1, ..Default::default() }));
    assert_eq!(t.stats().ignored_conns, 1);
}

#[test]
fn parse_failures_count_once_their_process_is_named() {
    // An HTTP request answered with bytes that are no HTTP response.
    let exchange = |conn: u64, pid: u32| {
        let mut req = Ev::data(conn, abi::ROLE_SERVER, abi::DIR_RECV, 1, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .flags(START | abi::F_REQUEST, tp(1, 2, 0));
        let mut resp = Ev::data(conn, abi::ROLE_SERVER, abi::DIR_SEND, 2, b"\x00\x13garbage\xff\r\n\r\n")
            .flags(START, tp(1, 2, 0));
        req.hdr.tgid = pid;
        resp.hdr.tgid = pid;
        [req, resp]
    };
    let mut t = tracker_with_service();
    feed(&mut t, &exchange(1, PID));
    assert_eq!(t.stats().parse_failures, 1, "a named process's failure counts at once");

    // Watched from its exec, not named yet: held until it is.
    feed(&mut t, &exchange(2, PID + 1));
    assert_eq!(t.stats().parse_failures, 1);
    t.add_service(Arc::new(Service { name: "later".into(), pid: PID + 1, ..Default::default() }));
    assert_eq!(t.stats().parse_failures, 2, "named: its failure counts");

    // Rejected: never counted.
    feed(&mut t, &exchange(3, PID + 2));
    t.reject(PID + 2);
    t.add_service(Arc::new(Service { name: "reused".into(), pid: PID + 2, ..Default::default() }));
    assert_eq!(t.stats().parse_failures, 2);
}

#[test]
fn tls_connections_are_ignored() {
    let mut t = tracker_with_service();
    feed(
        &mut t,
        &[Ev::data(1, abi::ROLE_CLIENT, abi::DIR_SEND, 1, &[22, 3, 1, 0, 200, 1, 0, 0]).flags(START, tp(1, 2, 0))],
    );
    assert_eq!(t.take_ignored(), vec![1]);
}

#[test]
fn responses_without_requests_are_orphans() {
    let mut t = tracker_with_service();
    feed(&mut t, &[Ev::data(1, abi::ROLE_UNKNOWN, abi::DIR_SEND, 1, RESP).flags(abi::F_MSG_START, Tp::default())]);
    assert!(t.take_spans().is_empty());
    assert_eq!(t.stats().orphan_responses, 1);
}

#[test]
fn spans_of_unnamed_processes_wait_for_their_name() {
    let mut t = Tracker::new(Clock::new(), 0);
    feed(
        &mut t,
        &[
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1, REQ).flags(START, tp(1, 2, 0)),
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_SEND, 2, RESP).flags(abi::F_MSG_START, tp(1, 2, 0)),
        ],
    );
    assert!(t.take_spans().is_empty(), "held until discovery names pid {PID}");
    t.add_service(Arc::new(Service { name: "late".into(), pid: PID, ..Default::default() }));
    let spans = t.take_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].service.name, "late");
}

#[test]
fn rejected_processes_lose_their_held_spans() {
    let mut t = Tracker::new(Clock::new(), 0);
    feed(
        &mut t,
        &[
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1, REQ).flags(START, tp(1, 2, 0)),
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_SEND, 2, RESP).flags(abi::F_MSG_START, tp(1, 2, 0)),
        ],
    );
    t.reject(PID);
    assert!(t.take_spans().is_empty());
    assert_eq!(t.stats().unnamed_spans_dropped, 1);
}

#[test]
fn gone_processes_keep_their_held_spans_until_named_or_the_hold_ends() {
    let mut t = Tracker::new(Clock::new(), 0);
    feed(
        &mut t,
        &[
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1, REQ).flags(START, tp(1, 2, 0)),
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_SEND, 2, RESP).flags(abi::F_MSG_START, tp(1, 2, 0)),
        ],
    );
    // Exited before discovery named it from its exec record.
    t.remove_service(PID);
    assert!(t.take_spans().is_empty());
    t.add_service(Arc::new(Service { name: "from-exec".into(), pid: PID, ..Default::default() }));
    let spans = t.take_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].service.name, "from-exec");
    assert_eq!(t.stats().unnamed_spans_dropped, 0);
}

#[test]
fn forks_take_their_parents_name_and_execs_wait_for_a_new_one() {
    const CHILD: u32 = PID + 1;
    let mut t = Tracker::new(Clock::new(), 0);
    let parent = Service { name: "launcher".into(), pid: PID, instance_id: format!("h:{PID}"), ..Default::default() };
    t.add_service(Arc::new(parent));
    assert!(t.adopt_fork(CHILD, PID));
    assert!(!t.adopt_fork(CHILD + 1, CHILD + 7), "a fork of an unnamed process is not named");
    let served = |t: &mut Tracker, ts: u64| {
        let ev = |dir, ts, data: &[u8], flags| {
            let mut e = Ev::data(1, abi::ROLE_SERVER, dir, ts, data).flags(flags, tp(1, 2, 0));
            e.hdr.tgid = CHILD;
            e
        };
        let evs = [ev(abi::DIR_RECV, ts, REQ, START), ev(abi::DIR_SEND, ts + 1, RESP, abi::F_MSG_START)];
        feed(t, &evs);
    };
    served(&mut t, 10);
    let spans = t.take_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!((spans[0].service.name.as_str(), spans[0].service.pid), ("launcher", CHILD));
    assert_eq!(spans[0].service.instance_id, format!("h:{CHILD}"));
    // It exec'd at 100: what ends after is the new program's.
    t.unname(CHILD, 100);
    served(&mut t, 200);
    assert!(t.take_spans().is_empty(), "held until discovery names the new program");
    t.add_service(Arc::new(Service { name: "handler".into(), pid: CHILD, ..Default::default() }));
    let spans = t.take_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].service.name, "handler");
}

#[test]
fn unanswered_requests_time_out_as_408() {
    let mut t = Tracker::new(Clock::new(), 1_000_000);
    t.add_service(Arc::new(Service { name: "svc".into(), pid: PID, ..Default::default() }));
    feed(&mut t, &[Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1, REQ).flags(START, tp(1, 2, 0))]);
    t.tick(10);
    assert!(t.take_spans().is_empty());
    t.tick(5_000_000);
    let spans = t.take_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(http(&spans[0]).status, 408);
}

#[test]
fn malformed_records_are_counted_not_fatal() {
    let mut t = tracker_with_service();
    t.handle_record(&[1, 2, 3]);
    let mut e = Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1, REQ);
    e.hdr.captured = 4000; // claims more than the record holds
    t.handle_record(&e.record());
    assert_eq!(t.stats().malformed_events, 2);
}

/// Kernel-style HTTP/2 records for one header block (no HPACK indexing
/// beyond the static table, so each block decodes on its own).
fn h2_headers(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
    use obi_protocols::http2::frame::{FrameHeader, HEADERS};
    use obi_protocols::http2::records::{REC_FRAME, REC_PAYLOAD, push_record};
    let mut out = Vec::new();
    let hdr = FrameHeader { len: block.len() as u32, kind: HEADERS, flags, stream };
    push_record(&mut out, REC_FRAME, &hdr.encode());
    push_record(&mut out, REC_PAYLOAD, block);
    out
}

/// Literal header field without indexing, new name.
fn lit(name: &str, value: &str) -> Vec<u8> {
    let mut b = vec![0x00, name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    b.push(value.len() as u8);
    b.extend_from_slice(value.as_bytes());
    b
}

#[test]
fn grpc_over_http2_records_becomes_a_grpc_span() {
    use obi_protocols::http2::records::{REC_PREFACE, push_record};
    let mut t = tracker_with_service();
    // The server's SETTINGS goes out before the client's preface arrives:
    // raw bytes that must not get the connection ignored.
    let settings = [0u8, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
    let mut request = Vec::new();
    push_record(&mut request, REC_PREFACE, &[]);
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.extend(lit(":path", "/pkg.Svc/Get"));
    block.extend(lit("content-type", "application/grpc"));
    block.extend(lit("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    request.extend(h2_headers(1, 0x4 | 0x1, &block));
    let mut response = h2_headers(1, 0x4, &[0x88]); // :status 200
    response.extend(h2_headers(1, 0x4 | 0x1, &lit("grpc-status", "7")));
    let h2 = abi::F_H2 | abi::F_MSG_START;
    feed(
        &mut t,
        &[
            Ev::new(abi::EV_CONN_OPEN, 9, abi::ROLE_SERVER),
            Ev::data(9, abi::ROLE_SERVER, abi::DIR_SEND, 500, &settings).flags(abi::F_MSG_START, Tp::default()),
            Ev::data(9, abi::ROLE_SERVER, abi::DIR_RECV, 1_000, &request).flags(h2, Tp::default()),
            Ev::data(9, abi::ROLE_SERVER, abi::DIR_SEND, 4_000, &response).flags(h2, Tp::default()),
        ],
    );
    let spans = t.take_spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let s = &spans[0];
    assert_eq!(s.kind, SpanKind::Server);
    let g = grpc(s);
    assert_eq!((g.http_method.as_str(), g.method.as_str(), g.status), ("POST", "/pkg.Svc/Get", 7));
    assert_eq!(s.trace.trace_id[..2], [0x0a, 0xf7]);
    assert_eq!(s.trace.parent_span_id, [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]);
    assert_eq!(t.stats().h2_desynced_conns, 0);
}

/// A runtime's parent for a client stream (Go's grpc-go probe) goes to that
/// stream's span alone: stream 1 gets the named parent, stream 3 the named
/// root, stream 5 (none named) a root; a parent for a stream that never
/// comes, or for a connection that is not HTTP/2, is counted unused.
#[test]
fn named_stream_parents_go_to_their_streams() {
    use obi_protocols::http2::records::{REC_PREFACE, push_record};
    let mut t = tracker_with_service();
    let request = |stream: u32| {
        let mut b = vec![0x83, 0x86];
        b.extend(lit(":path", &format!("/leaf/{stream}")));
        b.extend(lit("content-type", "application/grpc"));
        h2_headers(stream, 0x4 | 0x1, &b)
    };
    let mut first = Vec::new();
    push_record(&mut first, REC_PREFACE, &[]);
    first.extend(request(1));
    first.extend(request(3));
    first.extend(request(5));
    let mut response = Vec::new();
    for stream in [5, 3, 1] {
        response.extend(h2_headers(stream, 0x4, &[0x88]));
        response.extend(h2_headers(stream, 0x4 | 0x1, &lit("grpc-status", "0")));
    }
    let parent = |conn: u64, stream: u64, tp: Tp| {
        let mut e = Ev::new(abi::EV_H2_STREAM_PARENT, conn, abi::ROLE_CLIENT);
        e.hdr.bytes = stream;
        e.hdr.tp = tp;
        e
    };
    let h2 = abi::F_H2 | abi::F_MSG_START;
    feed(
        &mut t,
        &[
            Ev::new(abi::EV_CONN_OPEN, 7, abi::ROLE_CLIENT),
            Ev::data(7, abi::ROLE_CLIENT, abi::DIR_SEND, 1_000, &first).flags(h2, Tp::default()),
            parent(7, 1, tp(0xaa, 0xbb, 0)),
            parent(7, 3, Tp::default()),
            parent(7, 9, tp(0xcc, 0xdd, 0)),
            parent(8, 1, tp(0xcc, 0xdd, 0)),
            Ev::data(7, abi::ROLE_CLIENT, abi::DIR_RECV, 4_000, &response).flags(h2, Tp::default()),
        ],
    );
    let spans = t.take_spans();
    let by_path = |path: &str| spans.iter().find(|s| grpc(s).method == path).unwrap();
    let named = by_path("/leaf/1");
    assert_eq!((named.trace.trace_id, named.trace.parent_span_id), ([0xaa; 16], [0xbb; 8]));
    assert_ne!(named.trace.span_id, [0xbb; 8]);
    for root in ["/leaf/3", "/leaf/5"] {
        let s = by_path(root);
        assert_eq!(s.trace.parent_span_id, [0; 8], "{root}");
        assert_ne!(s.trace.trace_id, [0xaa; 16], "{root}");
    }
    // Stream 9's waits for its stream; connection 8 is unknown.
    assert_eq!(t.stats().stream_parents_unused, 1);
}

#[test]
fn h2c_upgrade_switches_to_http2_and_websockets_are_ignored() {
    use obi_protocols::http2::records::{REC_PREFACE, push_record};
    let upgrade_req = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    let switching = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    let mut t = tracker_with_service();
    let mut preface_and_request = Vec::new();
    push_record(&mut preface_and_request, REC_PREFACE, &[]);
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    block.extend(lit(":path", "/after-upgrade"));
    preface_and_request.extend(h2_headers(3, 0x4 | 0x1, &block));
    let response = h2_headers(3, 0x4 | 0x1, &[0x89]); // :status 204
    let h2 = abi::F_H2 | abi::F_MSG_START;
    feed(
        &mut t,
        &[
            Ev::new(abi::EV_CONN_OPEN, 5, abi::ROLE_SERVER),
            Ev::data(5, abi::ROLE_SERVER, abi::DIR_RECV, 1_000, upgrade_req).flags(START, tp(1, 2, 0)),
            Ev::data(5, abi::ROLE_SERVER, abi::DIR_SEND, 2_000, switching).flags(abi::F_MSG_START, tp(1, 2, 0)),
            Ev::data(5, abi::ROLE_SERVER, abi::DIR_RECV, 3_000, &preface_and_request).flags(h2, Tp::default()),
            Ev::data(5, abi::ROLE_SERVER, abi::DIR_SEND, 4_000, &response).flags(h2, Tp::default()),
        ],
    );
    let spans = t.take_spans();
    let got: Vec<(&str, i32)> = spans.iter().map(target_status).collect();
    assert_eq!(got, vec![("/", 101), ("/after-upgrade", 204)]);
    assert!(t.take_ignored().is_empty());

    // A WebSocket after its 101: the frames are not parsed, the kernel is told to stop.
    let ws_req = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let ws_resp = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    feed(
        &mut t,
        &[
            Ev::new(abi::EV_CONN_OPEN, 6, abi::ROLE_SERVER),
            Ev::data(6, abi::ROLE_SERVER, abi::DIR_RECV, 1_000, ws_req).flags(START, tp(1, 3, 0)),
            Ev::data(6, abi::ROLE_SERVER, abi::DIR_SEND, 2_000, ws_resp).flags(abi::F_MSG_START, tp(1, 3, 0)),
            Ev::data(6, abi::ROLE_SERVER, abi::DIR_RECV, 3_000, &[0x81, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9])
                .flags(abi::F_MSG_START, Tp::default()),
        ],
    );
    assert_eq!(t.take_spans().len(), 1);
    assert_eq!(t.take_ignored(), vec![6]);
}

/// A server that answers before reading the body (nginx `return 500;`):
/// the request body size is its Content-Length, not the bytes read.
#[test]
fn request_body_size_is_the_content_length_even_if_unread() {
    let mut t = tracker_with_service();
    let head = b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n";
    let resp = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nbad";
    feed(
        &mut t,
        &[
            Ev::new(abi::EV_CONN_OPEN, 1, abi::ROLE_SERVER),
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1_000, head).flags(START, tp(1, 2, 0)),
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_SEND, 5_000, resp).flags(abi::F_MSG_START, tp(1, 2, 0)),
            // The body, read (and discarded) after the answer.
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 6_000, b"0123456789abcdefg").flags(START, tp(1, 3, 0)),
        ],
    );
    let spans = t.take_spans();
    assert_eq!(spans.len(), 1);
    let h = http(&spans[0]);
    assert_eq!((h.status, h.request_body_size, h.response_body_size), (500, 17, 3));
}

/// A head longer than the capture: the uncaptured rest of the head is not
/// body, and a GET without Content-Length has none.
#[test]
fn a_head_longer_than_the_capture_has_no_body() {
    let mut t = tracker_with_service();
    let mut head = b"GET /big-cookie HTTP/1.1\r\nHost: a\r\nCookie: ".to_vec();
    head.extend(std::iter::repeat_n(b'c', 1500));
    head.extend_from_slice(b"\r\n\r\n");
    let cut = Ev::data(1, abi::ROLE_SERVER, abi::DIR_RECV, 1_000, &head).flags(START, tp(1, 2, 0)).truncate(1024);
    feed(
        &mut t,
        &[
            Ev::new(abi::EV_CONN_OPEN, 1, abi::ROLE_SERVER),
            cut,
            Ev::data(1, abi::ROLE_SERVER, abi::DIR_SEND, 5_000, RESP).flags(abi::F_MSG_START, tp(1, 2, 0)),
        ],
    );
    let spans = t.take_spans();
    assert_eq!(spans.len(), 1);
    let h = http(&spans[0]);
    assert_eq!((h.method.as_str(), h.path.as_str()), ("GET", "/big-cookie"));
    assert_eq!((h.request_body_size, h.response_body_size), (0, 5));
}
