use super::*;
use crate::tracker::harness::{Harness, ctx};

type H = Harness<RedisSession>;

/// (operation, query, error code, start, end) of each finished span.
fn spans(h: &H) -> Vec<(String, String, String, u64, u64)> {
    h.finished
        .iter()
        .map(|f| {
            let SpanDetail::Redis(r) = &f.detail else { panic!("not redis") };
            (r.call.operation.clone(), r.call.query.clone(), r.call.error_code().to_string(), f.start_mono, f.end_mono)
        })
        .collect()
}

fn cmd(words: &[&str]) -> Vec<u8> {
    let mut w = format!("*{}\r\n", words.len()).into_bytes();
    for x in words {
        w.extend_from_slice(format!("${}\r\n{x}\r\n", x.len()).as_bytes());
    }
    w
}

#[test]
fn pipeline_of_three_is_three_spans_with_one_parent() {
    let mut h = H::client();
    let mut write = cmd(&["SET", "k", "v"]);
    write.extend(cmd(&["GET", "k"]));
    write.extend(cmd(&["INCR", "k"]));
    assert_eq!(h.send(100, 1, &write), Feed::Ok);
    assert_eq!(h.recv(200, b"+OK\r\n$1\r\nv\r\n-ERR value is not an integer or out of range\r\n"), Feed::Ok);
    assert_eq!(
        spans(&h),
        vec![
            ("SET".into(), "SET k ?".into(), "".into(), 100, 200),
            ("GET".into(), "GET k".into(), "".into(), 100, 200),
            ("INCR".into(), "INCR k".into(), "ERR".into(), 100, 200),
        ]
    );
    let ids: Vec<[u8; 8]> = h.finished.iter().map(|f| f.trace.span_id).collect();
    assert_eq!(ids[0], [1; 8], "the first command has the kernel's span id");
    assert!(ids[1] != ids[0] && ids[2] != ids[0] && ids[1] != ids[2], "{ids:?}");
    assert!(h.finished.iter().all(|f| f.trace.parent_span_id == [9; 8] && f.trace.trace_id == [7; 16]));
    let SpanDetail::Redis(r) = &h.finished[2].detail else { panic!() };
    assert_eq!(r.call.error.as_ref().unwrap().message, "value is not an integer or out of range");
}

#[test]
fn replies_split_across_reads_and_commands_across_writes() {
    let mut h = H::client();
    let w = cmd(&["SET", "key", "value"]);
    h.send(10, 1, &w[..7]);
    h.send(11, 1, &w[7..]);
    h.recv(20, b"+O");
    assert!(h.finished.is_empty());
    h.recv(21, b"K\r\n");
    assert_eq!(spans(&h), vec![("SET".into(), "SET key ?".into(), "".into(), 10, 21)]);
    // Next exchange: a new kernel context.
    h.send(30, 2, &cmd(&["PING"]));
    h.recv(31, b"+PONG\r\n");
    assert_eq!(h.finished[1].trace.span_id, [2; 8]);
}

#[test]
fn multi_exec_is_a_span_per_command() {
    let mut h = H::client();
    let mut w = cmd(&["MULTI"]);
    w.extend(cmd(&["INCR", "a"]));
    w.extend(cmd(&["INCR", "b"]));
    w.extend(cmd(&["EXEC"]));
    h.send(1, 1, &w);
    h.recv(2, b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n:1\r\n");
    let ops: Vec<String> = spans(&h).into_iter().map(|s| s.0).collect();
    assert_eq!(ops, vec!["MULTI", "INCR", "INCR", "EXEC"]);
}

#[test]
fn resp3_pushes_are_not_replies() {
    let mut h = H::client();
    h.send(1, 1, &cmd(&["HELLO", "3"]));
    h.recv(2, b"%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n");
    h.send(3, 2, &cmd(&["SUBSCRIBE", "a", "b"]));
    // An invalidation push before the confirmation is skipped.
    h.recv(4, b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
    h.recv(5, b">3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n>3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n");
    assert_eq!(h.send(6, 3, &cmd(&["GET", "k"])), Feed::Ok);
    assert_eq!(h.recv(7, b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n$-1\r\n"), Feed::Ok);
    let ops: Vec<(String, u64)> = spans(&h).into_iter().map(|s| (s.0, s.4)).collect();
    assert_eq!(ops, vec![("HELLO".into(), 2), ("SUBSCRIBE".into(), 4), ("GET".into(), 7)]);
    assert_eq!(h.stats.orphan_responses, 0);
}

#[test]
fn resp2_subscriber_is_dropped_after_its_confirmation() {
    let mut h = H::client();
    h.send(1, 1, &cmd(&["SUBSCRIBE", "a", "b"]));
    let feed = h.recv(2, b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n");
    assert_eq!(feed, Feed::Lost);
    assert_eq!(spans(&h).len(), 1);
    assert_eq!(h.stats.orphan_responses, 0);
    assert_eq!(h.stats.parse_failures, 0, "a subscriber is not a failure");
}

#[test]
fn garbage_drops_the_connection_and_is_counted() {
    let mut h = H::client();
    h.send(1, 1, &cmd(&["GET", "a"]));
    assert_eq!(h.recv(2, b"HTTP/1.1 200 OK\r\n\r\n"), Feed::Lost);
    assert!(h.finished.is_empty());
    assert_eq!(h.stats.parse_failures, 1);
    assert_eq!(h.stats.unanswered_requests, 1);
    // A command array whose first element is not a name.
    let mut h = H::client();
    assert_eq!(h.send(1, 1, b"*1\r\n:5\r\n"), Feed::Lost);
}

#[test]
fn a_gap_in_a_value_keeps_the_pairing() {
    let mut h = H::client();
    let mut w = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000\r\n".to_vec();
    w.extend(std::iter::repeat_n(b'x', 100));
    // 4900 payload bytes and the CRLF were not captured.
    assert_eq!(h.feed(Side::Request, 1, Some(ctx(1)), &w, 4902), Feed::Ok);
    h.recv(2, b"+OK\r\n");
    assert_eq!(spans(&h), vec![("SET".into(), "SET k ?".into(), "".into(), 1, 2)]);
}

#[test]
fn a_gap_in_a_header_drops_the_connection() {
    let mut h = H::client();
    assert_eq!(h.feed(Side::Request, 1, Some(ctx(1)), &cmd(&["PING"]), 50), Feed::Lost);
    assert_eq!(h.stats.parse_failures, 1);
}

#[test]
fn unanswered_commands_are_counted_at_close() {
    let mut h = H::client();
    h.send(1, 1, &cmd(&["BLPOP", "q", "0"]));
    h.close(5);
    assert_eq!(h.stats.unanswered_requests, 1);
    assert!(h.finished.is_empty());
}

#[test]
fn orphan_replies_are_counted_not_spans() {
    let mut h = H::client();
    assert_eq!(h.recv(1, b"+OK\r\n"), Feed::Ok);
    assert!(h.finished.is_empty());
    assert_eq!(h.stats.orphan_responses, 1);
}

#[test]
fn literals_kept_when_configured() {
    let mut h = H::client();
    h.settings.db_query_literals = true;
    h.send(1, 1, &cmd(&["SET", "k", "v"]));
    h.send(1, 1, &cmd(&["AUTH", "pw"]));
    h.recv(2, b"+OK\r\n+OK\r\n");
    let q: Vec<String> = spans(&h).into_iter().map(|s| s.1).collect();
    assert_eq!(q, vec!["SET k v", "AUTH ?"]);
}

#[test]
fn server_side_commands_get_new_traces_after_the_first() {
    let mut h = H::client();
    h.server = true;
    let mut w = cmd(&["GET", "a"]);
    w.extend(cmd(&["GET", "b"]));
    h.send(1, 1, &w);
    h.recv(2, b"$-1\r\n$-1\r\n");
    assert_eq!(h.finished[0].trace.span_id, [1; 8]);
    assert_ne!(h.finished[1].trace.trace_id, [7; 16]);
}

#[test]
fn detection() {
    use crate::ebpf::abi::EventHdr;
    let detect = |data: &[u8]| Redis.detect(&Event { hdr: EventHdr::default(), data, tail: &[] });
    assert_eq!(detect(b"*1\r\n$4\r\nPING\r\n"), Detect::Yes { sender_is_client: Some(true) });
    assert_eq!(detect(b"*1\r\n$4"), Detect::NeedMore);
    assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Detect::No);
    assert_eq!(detect(b"+OK\r\n"), Detect::No);
}

/// (operation, db.namespace) of each finished span.
fn namespaces(h: &H) -> Vec<(String, String)> {
    h.finished
        .iter()
        .map(|f| {
            let SpanDetail::Redis(r) = &f.detail else { panic!("not redis") };
            (r.call.operation.clone(), r.call.namespace.clone())
        })
        .collect()
}

#[test]
fn the_database_is_zero_until_a_select_succeeds() {
    let mut h = H::client();
    h.send(1, 1, &cmd(&["GET", "a"]));
    h.recv(2, b"$-1\r\n");
    // Pipelined behind the SELECT: already on database 3.
    let mut w = cmd(&["SELECT", "3"]);
    w.extend(cmd(&["GET", "b"]));
    w.extend(cmd(&["SELECT", "99"]));
    w.extend(cmd(&["GET", "c"]));
    h.send(3, 2, &w);
    h.recv(4, b"+OK\r\n$-1\r\n-ERR DB index is out of range\r\n$-1\r\n");
    // RESET goes back to database 0.
    h.send(5, 3, &cmd(&["RESET"]));
    h.recv(6, b"+RESET\r\n");
    let want = [("GET", "0"), ("SELECT", "3"), ("GET", "3"), ("SELECT", "3"), ("GET", "3"), ("RESET", "0")];
    let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(namespaces(&h), want);
}

#[test]
fn no_database_is_guessed() {
    // Joined midway: the connection may have selected any database before.
    let mut h = H::client();
    h.from_start = false;
    h.send(1, 1, &cmd(&["GET", "a"]));
    h.recv(2, b"$-1\r\n");
    assert_eq!(namespaces(&h), [("GET".to_string(), String::new())]);
    // A SELECT queued in a transaction: its effect is not known here.
    let mut h = H::client();
    let mut w = cmd(&["MULTI"]);
    w.extend(cmd(&["SELECT", "2"]));
    w.extend(cmd(&["EXEC"]));
    w.extend(cmd(&["GET", "x"]));
    h.send(1, 1, &w);
    h.recv(2, b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n$-1\r\n");
    assert_eq!(namespaces(&h).last().unwrap(), &("GET".to_string(), String::new()));
}
