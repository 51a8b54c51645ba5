//! Properties: arbitrary input never panics or grows memory, and valid
//! traffic split anywhere comes out exactly as it went in.

use proptest::prelude::*;

use super::*;

/// Splits `data` at the given fractions into Bytes/Gap segments.
fn segments<'a>(data: &'a [u8], cuts: &[(u16, bool)]) -> Vec<Segment<'a>> {
    let mut points: Vec<usize> = cuts.iter().map(|(c, _)| *c as usize % (data.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut prev = 0;
    for (i, p) in points.iter().copied().chain(std::iter::once(data.len())).enumerate() {
        if p > prev {
            let gap = cuts.get(i).is_some_and(|c| c.1);
            let piece = &data[prev..p];
            if gap {
                let t = piece.len().min(16);
                out.push(Segment::Gap { len: piece.len() as u64, tail: &piece[piece.len() - t..] });
            } else {
                out.push(Segment::Bytes(piece));
            }
        }
        prev = p;
    }
    out
}

#[derive(Debug, Clone)]
struct Msg {
    method: &'static str,
    path: String,
    body: usize,
    chunked: bool,
    status: u16,
    resp_body: usize,
    resp_chunked: bool,
}

fn msg() -> impl Strategy<Value = Msg> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]),
        "/[a-z0-9/]{0,20}",
        0usize..300,
        any::<bool>(),
        prop::sample::select(vec![200u16, 201, 204, 301, 304, 404, 500]),
        0usize..300,
        any::<bool>(),
    )
        .prop_map(|(method, path, body, chunked, status, resp_body, resp_chunked)| Msg {
            method,
            path,
            body,
            chunked,
            status,
            resp_body,
            resp_chunked,
        })
}

fn encode_body(out: &mut Vec<u8>, n: usize, chunked: bool) {
    if chunked {
        let mut left = n;
        while left > 0 {
            let c = left.min(37);
            out.extend_from_slice(format!("{c:x}\r\n").as_bytes());
            out.extend(std::iter::repeat_n(b'b', c));
            out.extend_from_slice(b"\r\n");
            left -= c;
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend(std::iter::repeat_n(b'b', n));
    }
}

fn framing_header(n: usize, chunked: bool) -> String {
    if chunked { "Transfer-Encoding: chunked\r\n".to_string() } else { format!("Content-Length: {n}\r\n") }
}

fn resp_has_body(m: &Msg) -> bool {
    m.method != "HEAD" && m.status != 204 && m.status != 304
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_input_never_panics(data in prop::collection::vec(any::<u8>(), 0..2000),
                                    cuts in prop::collection::vec((any::<u16>(), any::<bool>()), 0..12)) {
        let mut req = RequestStream::new(256);
        let mut resp = ResponseStream::new(256);
        resp.expect_response("GET");
        let mut n = 0usize;
        for seg in segments(&data, &cuts) {
            req.feed(seg, &mut |_| n += 1);
            resp.feed(seg, &mut |_| n += 1);
            req.force_end(&mut |_| n += 1);
        }
        resp.close(&mut |_| n += 1);
        req.close(&mut |_| n += 1);
        // The head buffer never exceeds its cap.
        prop_assert!(req.head_buffer().1 <= 256);
        prop_assert!(resp.head_buffer().1 <= 256);
    }

    #[test]
    fn valid_traffic_round_trips(msgs in prop::collection::vec(msg(), 1..8),
                                 cuts in prop::collection::vec((any::<u16>(), Just(false)), 0..10)) {
        let mut reqs = Vec::new();
        let mut resps = Vec::new();
        for m in &msgs {
            reqs.extend_from_slice(format!("{} {} HTTP/1.1\r\nHost: h\r\n{}\r\n", m.method, if m.path.is_empty() { "/" } else { &m.path }, framing_header(m.body, m.chunked)).as_bytes());
            encode_body(&mut reqs, m.body, m.chunked);
            if resp_has_body(m) {
                resps.extend_from_slice(format!("HTTP/1.1 {} X\r\n{}\r\n", m.status, framing_header(m.resp_body, m.resp_chunked)).as_bytes());
                encode_body(&mut resps, m.resp_body, m.resp_chunked);
            } else {
                resps.extend_from_slice(format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n\r\n", m.status, m.resp_body).as_bytes());
            }
        }

        let mut events = Vec::new();
        let mut rs = RequestStream::new(8192);
        for seg in segments(&reqs, &cuts) {
            rs.feed(seg, &mut |e| events.push(e));
        }
        let heads: Vec<&Request> = events.iter().filter_map(|e| if let MessageEvent::Head(h) = e { Some(h) } else { None }).collect();
        prop_assert_eq!(heads.len(), msgs.len());
        for (h, m) in heads.iter().zip(&msgs) {
            prop_assert_eq!(&h.method, m.method);
            prop_assert_eq!(h.chunked, m.chunked);
        }
        let bodies: Vec<u64> = events.iter().filter_map(|e| if let MessageEvent::End { body_bytes, .. } = e { Some(*body_bytes) } else { None }).collect();
        prop_assert_eq!(bodies.len(), msgs.len());
        for (b, m) in bodies.iter().zip(&msgs) {
            if !m.chunked {
                prop_assert_eq!(*b, m.body as u64);
            }
        }
        prop_assert!(!events.iter().any(|e| matches!(e, MessageEvent::Invalid)));

        let mut events = Vec::new();
        let mut ps = ResponseStream::new(8192);
        for m in &msgs {
            ps.expect_response(m.method);
        }
        for seg in segments(&resps, &cuts) {
            ps.feed(seg, &mut |e| events.push(e));
        }
        let statuses: Vec<u16> = events.iter().filter_map(|e| if let MessageEvent::Head(h) = e { Some(h.status) } else { None }).collect();
        prop_assert_eq!(statuses, msgs.iter().map(|m| m.status).collect::<Vec<_>>());
        let bodies: Vec<u64> = events.iter().filter_map(|e| if let MessageEvent::End { body_bytes, .. } = e { Some(*body_bytes) } else { None }).collect();
        prop_assert_eq!(bodies.len(), msgs.len());
        for (b, m) in bodies.iter().zip(&msgs) {
            if !resp_has_body(m) {
                prop_assert_eq!(*b, 0);
            } else if !m.resp_chunked {
                prop_assert_eq!(*b, m.resp_body as u64);
            }
        }
    }
}
