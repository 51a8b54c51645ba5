use super::*;
use crate::tracker::harness::Harness;

type H = Harness<McSession>;

/// (operation, query, error code, start, end) of each finished span.
fn spans(h: &H) -> Vec<(String, String, String, u64, u64)> {
    h.finished
        .iter()
        .map(|f| {
            let SpanDetail::Memcached(m) = &f.detail else { panic!("not memcached") };
            (m.call.operation.clone(), m.call.query.clone(), m.call.error_code().to_string(), f.start_mono, f.end_mono)
        })
        .collect()
}

#[test]
fn get_set_multi_get_and_noreply() {
    let mut h = H::client();
    h.send(1, 1, b"set k 0 0 5\r\nhello\r\nset q 0 0 1 noreply\r\nx\r\nget k q missing\r\n");
    h.recv(2, b"STORED\r\nVALUE k 0 5\r\nhel");
    h.recv(3, b"lo\r\nVALUE q 0 1\r\nx\r\nEND\r\n");
    assert_eq!(
        spans(&h),
        vec![
            ("set".into(), "set k".into(), "".into(), 1, 2),
            ("get".into(), "get k q missing".into(), "".into(), 1, 3),
        ]
    );
    let ids: Vec<[u8; 8]> = h.finished.iter().map(|f| f.trace.span_id).collect();
    assert!(ids[0] == [1; 8] && ids[1] != ids[0]);
}

#[test]
fn errors_are_errors_and_misses_are_not() {
    let mut h = H::client();
    h.send(1, 1, b"incr n 1\r\ndelete gone\r\ntouch k 10\r\n");
    h.recv(2, b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\nNOT_FOUND\r\nTOUCHED\r\n");
    let got: Vec<(String, String)> = spans(&h).into_iter().map(|s| (s.0, s.2)).collect();
    assert_eq!(
        got,
        vec![("incr".into(), "CLIENT_ERROR".into()), ("delete".into(), "".into()), ("touch".into(), "".into())]
    );
}

#[test]
fn garbage_drops_the_connection_and_is_counted() {
    let mut h = H::client();
    h.send(1, 1, b"get k\r\n");
    assert_eq!(h.recv(2, b"+OK\r\n"), Feed::Lost);
    assert!(h.finished.is_empty());
    assert_eq!((h.stats.parse_failures, h.stats.unanswered_requests), (1, 1));
}

#[test]
fn detection() {
    use crate::ebpf::abi::EventHdr;
    let detect = |data: &[u8]| Memcached.detect(&Event { hdr: EventHdr::default(), data, tail: &[] });
    assert_eq!(detect(b"get k\r\n"), Detect::Yes { sender_is_client: Some(true) });
    assert_eq!(detect(b"ge"), Detect::NeedMore);
    assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Detect::No);
}
