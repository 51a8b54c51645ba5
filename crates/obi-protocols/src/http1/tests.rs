//! Behaviour of the two streams on realistic traffic shapes.

use super::*;

fn feed_req(s: &mut RequestStream, segs: &[Segment<'_>]) -> Vec<MessageEvent<Request>> {
    let mut out = Vec::new();
    for seg in segs {
        s.feed(*seg, &mut |e| out.push(e));
    }
    out
}

fn feed_resp(s: &mut ResponseStream, segs: &[Segment<'_>]) -> Vec<MessageEvent<Response>> {
    let mut out = Vec::new();
    for seg in segs {
        s.feed(*seg, &mut |e| out.push(e));
    }
    out
}

fn heads<H: Clone>(events: &[MessageEvent<H>]) -> Vec<H> {
    events.iter().filter_map(|e| if let MessageEvent::Head(h) = e { Some(h.clone()) } else { None }).collect()
}

fn ends<H>(events: &[MessageEvent<H>]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter_map(|e| {
            if let MessageEvent::End { body_bytes, wire_bytes, .. } = e {
                Some((*body_bytes, *wire_bytes))
            } else {
                None
            }
        })
        .collect()
}

const GET: &[u8] = b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";

#[test]
fn get_without_body() {
    let mut s = RequestStream::new(8192);
    let ev = feed_req(&mut s, &[Segment::Bytes(GET)]);
    let h = &heads(&ev)[0];
    assert_eq!(h.method, "GET");
    assert_eq!(h.target, "/a/b?x=1");
    assert_eq!(h.path(), "/a/b");
    assert_eq!(h.host.as_deref(), Some("example.com"));
    assert_eq!(h.traceparent.as_deref(), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    assert!(h.head_complete);
    assert_eq!(ends(&ev), vec![(0, GET.len() as u64)]);
    assert!(!s.in_message());
}

#[test]
fn post_with_content_length_over_three_segments() {
    let mut s = RequestStream::new(8192);
    let head = b"POST /upload HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
    let ev = feed_req(&mut s, &[Segment::Bytes(head), Segment::Bytes(b"0123"), Segment::Bytes(b"456789")]);
    assert_eq!(heads(&ev)[0].content_length, Some(10));
    assert_eq!(ends(&ev), vec![(10, head.len() as u64 + 10)]);
}

#[test]
fn content_length_body_survives_gaps() {
    let mut s = RequestStream::new(8192);
    let head = b"POST /big HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
    let mut first = head.to_vec();
    first.extend_from_slice(&[b'x'; 900]);
    let ev = feed_req(&mut s, &[Segment::Bytes(&first), Segment::Gap { len: 99_100, tail: b"xxxx" }]);
    assert_eq!(ends(&ev), vec![(100_000, head.len() as u64 + 100_000)]);
    // The next request parses normally.
    let ev = feed_req(&mut s, &[Segment::Bytes(GET)]);
    assert_eq!(heads(&ev).len(), 1);
}

const CHUNKED: &[u8] =
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";

#[test]
fn chunked_response_in_one_segment() {
    let mut s = ResponseStream::new(8192);
    s.expect_response("GET");
    let ev = feed_resp(&mut s, &[Segment::Bytes(CHUNKED)]);
    let head_len = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".len() as u64;
    assert!(heads(&ev)[0].chunked);
    assert_eq!(ends(&ev), vec![(CHUNKED.len() as u64 - head_len, CHUNKED.len() as u64)]);
}

#[test]
fn chunked_response_split_at_every_position() {
    for cut in 1..CHUNKED.len() {
        for cut2 in cut..CHUNKED.len() {
            let mut s = ResponseStream::new(8192);
            s.expect_response("GET");
            let ev = feed_resp(
                &mut s,
                &[
                    Segment::Bytes(&CHUNKED[..cut]),
                    Segment::Bytes(&CHUNKED[cut..cut2]),
                    Segment::Bytes(&CHUNKED[cut2..]),
                ],
            );
            assert_eq!(heads(&ev).len(), 1, "cut at {cut}/{cut2}");
            assert_eq!(ends(&ev).len(), 1, "cut at {cut}/{cut2}");
            assert_eq!(ends(&ev)[0].1, CHUNKED.len() as u64);
        }
    }
}

#[test]
fn chunked_gap_ends_on_visible_terminator() {
    let mut s = ResponseStream::new(8192);
    s.expect_response("GET");
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\n";
    let ev = feed_resp(&mut s, &[Segment::Bytes(head)]);
    assert_eq!(heads(&ev).len(), 1);
    // 0x4000 data bytes were not captured, but so were the chunk framing of later chunks.
    let ev = feed_resp(&mut s, &[Segment::Gap { len: 50_000, tail: b"xxxxxxxx\r\n0\r\n\r\n" }]);
    assert_eq!(ends(&ev).len(), 1);
    assert_eq!(ends(&ev)[0].1, head.len() as u64 + 50_000);
}

#[test]
fn chunked_terminator_in_its_own_write() {
    let mut s = ResponseStream::new(8192);
    s.expect_response("GET");
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut ev = feed_resp(&mut s, &[Segment::Bytes(head), Segment::Bytes(b"3\r\nabc\r\n")]);
    assert!(ends(&ev).is_empty());
    ev.extend(feed_resp(&mut s, &[Segment::Bytes(b"0\r\n\r\n")]));
    assert_eq!(ends(&ev).len(), 1);
}

#[test]
fn ten_pipelined_gets_in_one_segment() {
    let mut all = Vec::new();
    for i in 0..10 {
        all.extend_from_slice(format!("GET /item/{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    let mut s = RequestStream::new(8192);
    let ev = feed_req(&mut s, &[Segment::Bytes(&all)]);
    let paths: Vec<String> = heads(&ev).iter().map(|h| h.path().to_string()).collect();
    assert_eq!(paths, (0..10).map(|i| format!("/item/{i}")).collect::<Vec<_>>());
    assert_eq!(ends(&ev).len(), 10);
    // Head, End alternate.
    for pair in ev.chunks(2) {
        assert!(matches!(pair[0], MessageEvent::Head(_)));
        assert!(matches!(pair[1], MessageEvent::End { .. }));
    }
}

#[test]
fn pipelined_responses_with_mixed_framing() {
    let mut s = ResponseStream::new(8192);
    for m in ["GET", "HEAD", "GET", "GET"] {
        s.expect_response(m);
    }
    let mut all = Vec::new();
    all.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    all.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"); // HEAD: no body
    all.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
    all.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno");
    let ev = feed_resp(&mut s, &[Segment::Bytes(&all)]);
    let statuses: Vec<u16> = heads(&ev).iter().map(|h| h.status).collect();
    assert_eq!(statuses, vec![200, 200, 204, 404]);
    let bodies: Vec<u64> = ends(&ev).iter().map(|e| e.0).collect();
    assert_eq!(bodies, vec![3, 0, 0, 2]);
}

#[test]
fn interim_100_continue_is_skipped() {
    let mut s = ResponseStream::new(8192);
    s.expect_response("POST");
    let ev = feed_resp(&mut s, &[Segment::Bytes(b"HTTP/1.1 100 Continue\r\n\r\n")]);
    assert!(ev.is_empty());
    let ev = feed_resp(&mut s, &[Segment::Bytes(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")]);
    assert_eq!(heads(&ev)[0].status, 201);
    assert_eq!(ends(&ev).len(), 1);
}

#[test]
fn not_modified_has_no_body() {
    let mut s = ResponseStream::new(8192);
    s.expect_response("GET");
    let ev = feed_resp(&mut s, &[Segment::Bytes(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n")]);
    assert_eq!(ends(&ev)[0].0, 0);
}

#[test]
fn switching_protocols_upgrades_the_stream() {
    let mut s = ResponseStream::new(8192);
    s.expect_response("GET");
    let ev = feed_resp(
        &mut s,
        &[Segment::Bytes(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello")],
    );
    assert_eq!(heads(&ev)[0].status, 101);
    assert_eq!(ends(&ev).len(), 1);
    assert!(s.is_upgraded());
    assert!(feed_resp(&mut s, &[Segment::Bytes(b"HTTP/1.1 200 OK\r\n\r\n")]).is_empty());
}

#[test]
fn close_delimited_response_ends_on_close() {
    let mut s = ResponseStream::new(8192);
    s.expect_response("GET");
    let head = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n";
    let mut ev =
        feed_resp(&mut s, &[Segment::Bytes(head), Segment::Bytes(b"<html>"), Segment::Gap { len: 1000, tail: b"" }]);
    assert!(ends(&ev).is_empty());
    assert!(s.in_message());
    s.close(&mut |e| ev.push(e));
    assert_eq!(ends(&ev), vec![(1006, head.len() as u64 + 1006)]);
}

#[test]
fn request_head_split_at_every_byte() {
    for cut in 1..GET.len() {
        let mut s = RequestStream::new(8192);
        let ev = feed_req(&mut s, &[Segment::Bytes(&GET[..cut]), Segment::Bytes(&GET[cut..])]);
        let h = heads(&ev);
        assert_eq!(h.len(), 1, "cut at {cut}");
        assert_eq!(h[0].path(), "/a/b");
        assert!(h[0].traceparent.is_some(), "cut at {cut}");
        assert_eq!(ends(&ev), vec![(0, GET.len() as u64)], "cut at {cut}");
    }
}

#[test]
fn head_cut_by_a_gap_keeps_method_and_target() {
    let mut s = RequestStream::new(8192);
    let ev = feed_req(
        &mut s,
        &[
            Segment::Bytes(b"GET /very/long/path HTTP/1.1\r\nCookie: aaaa"),
            Segment::Gap { len: 5000, tail: b"aa\r\n\r\n" },
        ],
    );
    let h = heads(&ev);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].method, "GET");
    assert_eq!(h[0].path(), "/very/long/path");
    assert!(!h[0].head_complete);
    // Framing is unknown: the message ends when the peer answers.
    let mut ev = Vec::new();
    s.force_end(&mut |e| ev.push(e));
    assert_eq!(ends(&ev).len(), 1);
}

#[test]
fn garbage_is_invalid_once_and_resyncs_on_a_new_request() {
    let mut s = RequestStream::new(8192);
    let ev = feed_req(&mut s, &[Segment::Bytes(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage")]);
    assert_eq!(ev, vec![MessageEvent::Invalid]);
    assert!(s.is_lost());
    assert!(feed_req(&mut s, &[Segment::Bytes(b"more garbage \x00\x01")]).is_empty());
    let ev = feed_req(&mut s, &[Segment::Bytes(GET)]);
    assert_eq!(heads(&ev).len(), 1);
    assert!(!s.is_lost());
}

#[test]
fn lowercase_method_token_is_accepted_but_binary_is_not() {
    let mut s = RequestStream::new(8192);
    assert_eq!(feed_req(&mut s, &[Segment::Bytes(b"\x00\x01\x02 / HTTP/1.1\r\n\r\n")]), vec![MessageEvent::Invalid]);
    let mut s = RequestStream::new(8192);
    assert_eq!(
        feed_req(&mut s, &[Segment::Bytes(b"AVERYVERYLONGMETHODNAME / HTTP/1.1\r\n\r\n")]),
        vec![MessageEvent::Invalid]
    );
}

#[test]
fn path_forms() {
    let req = |target: &str| Request {
        method: "GET".into(),
        target: target.into(),
        version: Version::Http11,
        host: None,
        traceparent: None,
        content_length: None,
        chunked: false,
        header_bytes: 0,
        head_complete: true,
        connection_close: false,
        upgrade: false,
    };
    assert_eq!(req("/a?b=c").path(), "/a");
    assert_eq!(req("/a#frag").path(), "/a");
    assert_eq!(req("http://h:8080/p/q?x").path(), "/p/q");
    assert_eq!(req("http://h").path(), "/");
    assert_eq!(req("*").path(), "*");
    assert_eq!(req("example.com:443").path(), "example.com:443");
}

#[test]
fn head_buffer_is_capped() {
    let mut s = RequestStream::new(128);
    let mut ev = Vec::new();
    s.feed(Segment::Bytes(b"GET /x HTTP/1.1\r\n"), &mut |e| ev.push(e));
    for _ in 0..100 {
        s.feed(Segment::Bytes(b"X-Filler: 0123456789\r\n"), &mut |e| ev.push(e));
    }
    let h = heads(&ev);
    assert_eq!(h.len(), 1, "a head over the cap is reported as cut");
    assert!(!h[0].head_complete);
}

fn declared<H>(events: &[MessageEvent<H>]) -> Vec<Option<u64>> {
    events
        .iter()
        .filter_map(|e| if let MessageEvent::End { declared, .. } = e { Some(*declared) } else { None })
        .collect()
}

#[test]
fn declared_body_follows_the_framing() {
    let mut s = RequestStream::new(8192);
    let post = b"POST /p HTTP/1.1\r\nContent-Length: 17\r\n\r\n0123456789abcdefg";
    let chunked = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let ev = feed_req(&mut s, &[Segment::Bytes(GET), Segment::Bytes(post), Segment::Bytes(chunked)]);
    assert_eq!(declared(&ev), vec![Some(0), Some(17), None]);

    let mut s = ResponseStream::new(8192);
    for m in ["HEAD", "GET", "GET", "GET"] {
        s.expect_response(m);
    }
    let ev = feed_resp(
        &mut s,
        &[
            Segment::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"),
            Segment::Bytes(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"),
            Segment::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
            Segment::Bytes(b"HTTP/1.1 200 OK\r\n\r\nclose-delimited"),
        ],
    );
    let mut ev = ev;
    s.close(&mut |e| ev.push(e));
    assert_eq!(declared(&ev), vec![Some(0), Some(0), Some(3), None]);
}

#[test]
fn a_body_cut_short_still_declares_its_length() {
    let mut s = ResponseStream::new(8192);
    s.expect_response("GET");
    let mut ev = feed_resp(&mut s, &[Segment::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")]);
    s.close(&mut |e| ev.push(e));
    assert_eq!(ends(&ev), vec![(3, 43)]);
    assert_eq!(declared(&ev), vec![Some(100)]);
}

#[test]
fn a_head_cut_by_a_gap_declares_nothing() {
    let mut s = RequestStream::new(8192);
    let mut ev = feed_req(
        &mut s,
        &[Segment::Bytes(b"GET /x HTTP/1.1\r\nCookie: aaaa"), Segment::Gap { len: 578, tail: b"aa\r\n\r\n" }],
    );
    s.force_end(&mut |e| ev.push(e));
    assert_eq!(declared(&ev), vec![None]);
}
