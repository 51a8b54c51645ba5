//! HTTP/2 decoding from kernel-style records built with a real HPACK encoder.

use loona_hpack::Encoder;
use proptest::prelude::*;

use super::conn::{Desync, H2Conn, H2Exchange, MAX_OPEN_STREAMS, Side};
use super::frame::*;
use super::records::*;

/// Builds what the kernel would report for one direction: frame headers,
/// header-block payloads in pieces of at most 1024 bytes, DATA not copied.
struct Wire {
    hpack: Encoder<'static>,
    out: Vec<u8>,
}

impl Wire {
    fn new() -> Self {
        Wire { hpack: Encoder::new(), out: Vec::new() }
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> &mut Self {
        let hdr = FrameHeader { len: payload.len() as u32, kind, flags, stream };
        push_record(&mut self.out, REC_FRAME, &hdr.encode());
        if hdr.carries_header_block() {
            for piece in payload.chunks(1024) {
                push_record(&mut self.out, REC_PAYLOAD, piece);
            }
        }
        self
    }

    fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) -> &mut Self {
        let block = self.hpack.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        let flags = FLAG_END_HEADERS | if end_stream { FLAG_END_STREAM } else { 0 };
        self.frame(HEADERS, flags, stream, &block)
    }

    fn data(&mut self, stream: u32, len: usize, end_stream: bool) -> &mut Self {
        self.frame(DATA, if end_stream { FLAG_END_STREAM } else { 0 }, stream, &vec![0; len])
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

fn grpc_request(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "POST".into()),
        (":scheme", "http".into()),
        (":path", path.into()),
        (":authority", "localhost:50051".into()),
        ("content-type", "application/grpc".into()),
        ("te", "trailers".into()),
    ]
}

fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(n, s)| (*n, s.as_str())).collect()
}

fn feed(conn: &mut H2Conn, side: Side, data: &[u8], ts: u64) -> Vec<H2Exchange> {
    let mut out = Vec::new();
    conn.feed(side, data, ts, 7, &mut out).unwrap();
    out
}

#[test]
fn unary_grpc_call_with_trailers() {
    let (mut req, mut resp) = (Wire::new(), Wire::new());
    let mut conn = H2Conn::new();
    let r = req.frame(SETTINGS, 0, 0, &[]).headers(1, &as_refs(&grpc_request("/helloworld.Greeter/SayHello")), false);
    let first = r.data(1, 12, true).take();
    assert!(feed(&mut conn, Side::Request, &first, 100).is_empty());
    resp.headers(1, &[(":status", "200"), ("content-type", "application/grpc")], false).data(1, 20, false);
    let second = resp.headers(1, &[("grpc-status", "0"), ("grpc-message", "")], true).take();
    let done = feed(&mut conn, Side::Response, &second, 250);
    assert_eq!(done.len(), 1);
    let ex = &done[0];
    assert_eq!(ex.stream, 1);
    assert_eq!(ex.request.method, "POST");
    assert_eq!(ex.request.path, "/helloworld.Greeter/SayHello");
    assert_eq!(ex.request.authority, "localhost:50051");
    assert!(ex.request.is_grpc());
    assert_eq!((ex.status, ex.grpc_status), (200, Some(0)));
    assert_eq!((ex.request_body_bytes, ex.response_body_bytes), (12, 20));
    assert_eq!((ex.start_ts, ex.end_ts, ex.reset, ex.tag), (100, 250, false, 7));
    assert_eq!(conn.open_streams(), 0);
}

#[test]
fn trailers_only_error_and_plain_http2() {
    let (mut req, mut resp) = (Wire::new(), Wire::new());
    let mut conn = H2Conn::new();
    req.headers(1, &as_refs(&grpc_request("/pkg.Svc/Missing")), false).data(1, 5, true);
    req.headers(3, &[(":method", "GET"), (":scheme", "http"), (":path", "/index.html"), (":authority", "h")], true);
    feed(&mut conn, Side::Request, &req.take(), 1);
    resp.headers(1, &[(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "5")], true);
    resp.headers(3, &[(":status", "404")], false).data(3, 9, true);
    let done = feed(&mut conn, Side::Response, &resp.take(), 2);
    assert_eq!(done.len(), 2);
    assert_eq!((done[0].status, done[0].grpc_status), (200, Some(5)));
    assert_eq!(done[1].request.path, "/index.html");
    assert!(!done[1].request.is_grpc());
    assert_eq!((done[1].status, done[1].grpc_status, done[1].response_body_bytes), (404, None, 9));
}

#[test]
fn hundred_multiplexed_streams_share_the_dynamic_table() {
    let (mut req, mut resp) = (Wire::new(), Wire::new());
    let mut conn = H2Conn::new();
    let ids: Vec<u32> = (0..100).map(|i| 1 + 2 * i).collect();
    for &id in &ids {
        let mut h = grpc_request("/echo.Echo/Unary");
        h.push(("x-call", format!("call-{id}")));
        req.headers(id, &as_refs(&h), false).data(id, 10, true);
    }
    // The requests arrive in many events, cut at arbitrary record boundaries.
    let wire = req.take();
    for (at, chunk) in split_at_records(&wire, 7).into_iter().enumerate() {
        assert!(feed(&mut conn, Side::Request, chunk, at as u64).is_empty());
    }
    assert_eq!(conn.open_streams(), 100);
    // Answered in reverse order.
    let mut done = Vec::new();
    for &id in ids.iter().rev() {
        resp.headers(id, &[(":status", "200"), ("content-type", "application/grpc")], false).data(id, 3, false);
        resp.headers(id, &[("grpc-status", if id % 3 == 0 { "13" } else { "0" })], true);
        done.extend(feed(&mut conn, Side::Response, &resp.take(), 1000 + id as u64));
    }
    assert_eq!(done.len(), 100);
    for ex in &done {
        assert_eq!(ex.request.path, "/echo.Echo/Unary");
        assert_eq!(ex.grpc_status, Some(if ex.stream % 3 == 0 { 13 } else { 0 }));
        assert_eq!(ex.end_ts, 1000 + ex.stream as u64);
    }
    assert!(conn.stats.header_blocks >= 300);
}

/// Splits a record stream into events of about `n` records each.
fn split_at_records(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut cuts = vec![0];
    let (mut pos, mut count) = (0, 0);
    while pos < data.len() {
        let len = u16::from_le_bytes([data[pos], data[pos + 1]]) as usize;
        pos += 3 + len;
        count += 1;
        if count % n == 0 {
            cuts.push(pos);
        }
    }
    cuts.push(data.len());
    cuts.dedup();
    cuts.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

#[test]
fn continuation_frames_and_large_blocks() {
    let mut enc = Encoder::new();
    let big = "v".repeat(3000);
    let block = enc.encode([
        (&b":method"[..], &b"GET"[..]),
        (b":path", b"/big"),
        (b":scheme", b"https"),
        (b"x-big", big.as_bytes()),
    ]);
    let (a, rest) = block.split_at(1000);
    let (b, c) = rest.split_at(1500);
    let mut w = Wire::new();
    w.frame(HEADERS, FLAG_END_STREAM, 5, a).frame(CONTINUATION, 0, 5, b).frame(CONTINUATION, FLAG_END_HEADERS, 5, c);
    let mut conn = H2Conn::new();
    feed(&mut conn, Side::Request, &w.take(), 1);
    let mut r = Wire::new();
    let done = feed(&mut conn, Side::Response, &r.headers(5, &[(":status", "204")], true).take(), 2);
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].request.path.as_str(), done[0].request.scheme.as_str(), done[0].status),
        ("/big", "https", 204)
    );
}

#[test]
fn padded_and_prioritised_headers() {
    let mut enc = Encoder::new();
    let block = enc.encode([(&b":method"[..], &b"GET"[..]), (b":path", b"/padded")]);
    let mut payload = vec![3u8]; // pad length
    payload.extend_from_slice(&[0x80, 0, 0, 1, 200]); // exclusive dependency on 1, weight
    payload.extend_from_slice(&block);
    payload.extend_from_slice(&[0, 0, 0]);
    let mut w = Wire::new();
    w.frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM | FLAG_PADDED | FLAG_PRIORITY, 3, &payload);
    let mut conn = H2Conn::new();
    feed(&mut conn, Side::Request, &w.take(), 1);
    let mut r = Wire::new();
    let done = feed(&mut conn, Side::Response, &r.headers(3, &[(":status", "200")], true).take(), 2);
    assert_eq!(done[0].request.path, "/padded");
}

#[test]
fn reset_stream_and_orphans() {
    let mut conn = H2Conn::new();
    let mut w = Wire::new();
    feed(&mut conn, Side::Request, &w.headers(1, &as_refs(&grpc_request("/s.S/Cancel")), false).take(), 1);
    let done = feed(&mut conn, Side::Request, &w.frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]).take(), 9);
    assert_eq!(done.len(), 1);
    assert!(done[0].reset);
    assert_eq!(done[0].end_ts, 9);
    // A response for a stream we never saw the request of: counted, not emitted.
    let mut r = Wire::new();
    assert!(feed(&mut conn, Side::Response, &r.headers(11, &[(":status", "200")], true).take(), 3).is_empty());
    assert_eq!(conn.stats.orphan_frames, 1);
    assert!(feed(&mut conn, Side::Response, &r.frame(GOAWAY, 0, 0, &[0; 8]).take(), 4).is_empty());
    assert_eq!(conn.stats.goaways, 1);
}

#[test]
fn kernel_loss_desyncs_for_good() {
    let mut conn = H2Conn::new();
    let mut w = Wire::new();
    let mut data = w.headers(1, &as_refs(&grpc_request("/a.B/C")), true).take();
    push_record(&mut data, REC_LOST, &[]);
    let mut out = Vec::new();
    assert_eq!(conn.feed(Side::Request, &data, 1, 0, &mut out), Err(Desync::KernelLost));
    assert_eq!(conn.desync(), Some(Desync::KernelLost));
    // Inert afterwards: no error reported twice, nothing emitted.
    let mut r = Wire::new();
    assert_eq!(conn.feed(Side::Response, &r.headers(1, &[(":status", "200")], true).take(), 2, 0, &mut out), Ok(()));
    assert!(out.is_empty());
}

#[test]
fn rejects_broken_framing_and_hpack() {
    let cases: Vec<(Vec<u8>, Desync)> = vec![
        // An index beyond both tables.
        (
            {
                let mut w = Wire::new();
                w.frame(HEADERS, FLAG_END_HEADERS, 1, &[0xff, 0x7f]).take()
            },
            Desync::Hpack,
        ),
        // A DATA frame inside a header block.
        (
            {
                let mut w = Wire::new();
                w.frame(HEADERS, 0, 1, &[0x82]).frame(DATA, 0, 1, &[]).take()
            },
            Desync::Interleaved,
        ),
        // CONTINUATION of another stream.
        (
            {
                let mut w = Wire::new();
                w.frame(HEADERS, 0, 1, &[0x82]).frame(CONTINUATION, FLAG_END_HEADERS, 3, &[0x84]).take()
            },
            Desync::Interleaved,
        ),
        // Payload with no frame before it.
        (
            {
                let mut v = Vec::new();
                push_record(&mut v, REC_PAYLOAD, b"xx");
                v
            },
            Desync::Malformed,
        ),
        // More payload than the frame said.
        (
            {
                let mut v = Vec::new();
                push_record(&mut v, REC_FRAME, &FrameHeader { len: 1, kind: HEADERS, flags: 4, stream: 1 }.encode());
                push_record(&mut v, REC_PAYLOAD, &[0x82, 0x84]);
                v
            },
            Desync::Malformed,
        ),
        // Padding longer than the payload.
        (
            {
                let mut w = Wire::new();
                w.frame(HEADERS, FLAG_END_HEADERS | FLAG_PADDED, 1, &[9, 0x82]).take()
            },
            Desync::Malformed,
        ),
    ];
    for (data, why) in cases {
        let mut conn = H2Conn::new();
        let mut out = Vec::new();
        assert_eq!(conn.feed(Side::Request, &data, 1, 0, &mut out), Err(why), "{data:?}");
    }
}

#[test]
fn open_streams_are_capped_and_expire() {
    let mut conn = H2Conn::new();
    let mut w = Wire::new();
    for i in 0..(MAX_OPEN_STREAMS as u32 + 10) {
        w.headers(1 + 2 * i, &[(":method", "GET"), (":path", "/x")], true);
    }
    feed(&mut conn, Side::Request, &w.take(), 5);
    assert_eq!(conn.open_streams(), MAX_OPEN_STREAMS);
    assert_eq!(conn.stats.dropped_streams, 10);
    assert_eq!(conn.expire(6), MAX_OPEN_STREAMS);
}

proptest! {
    #[test]
    fn arbitrary_records_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048), side in any::<bool>()) {
        let mut conn = H2Conn::new();
        let mut out = Vec::new();
        let side = if side { Side::Request } else { Side::Response };
        let _ = conn.feed(side, &data, 1, 0, &mut out);
        let _ = conn.feed(Side::Response, &data, 2, 0, &mut out);
    }

    /// Frame headers and header blocks with random content, well framed:
    /// HPACK garbage must be an error, not a panic.
    #[test]
    fn random_header_blocks_never_panic(blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8)) {
        let mut w = Wire::new();
        for (i, b) in blocks.iter().enumerate() {
            w.frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1 + 2 * i as u32, b);
        }
        let mut conn = H2Conn::new();
        let mut out = Vec::new();
        let _ = conn.feed(Side::Request, &w.take(), 1, 0, &mut out);
    }

    /// However the kernel cuts the records into events, the result is the same.
    #[test]
    fn event_boundaries_do_not_matter(n in 1usize..20, calls in 1usize..30) {
        let (mut req, mut resp) = (Wire::new(), Wire::new());
        for i in 0..calls as u32 {
            req.headers(1 + 2 * i, &as_refs(&grpc_request(&format!("/p.S/M{}", i % 4))), false).data(1 + 2 * i, 10, true);
            resp.headers(1 + 2 * i, &[(":status", "200"), ("content-type", "application/grpc")], false);
            resp.headers(1 + 2 * i, &[("grpc-status", "0")], true);
        }
        let (rq, rs) = (req.take(), resp.take());
        let mut whole = H2Conn::new();
        let mut expect = feed(&mut whole, Side::Request, &rq, 1);
        expect.extend(feed(&mut whole, Side::Response, &rs, 2));
        let mut split = H2Conn::new();
        let mut got = Vec::new();
        for c in split_at_records(&rq, n) {
            got.extend(feed(&mut split, Side::Request, c, 1));
        }
        for c in split_at_records(&rs, n) {
            got.extend(feed(&mut split, Side::Response, c, 2));
        }
        prop_assert_eq!(got.len(), calls);
        prop_assert_eq!(got, expect);
    }
}
