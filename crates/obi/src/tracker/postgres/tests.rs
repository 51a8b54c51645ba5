use super::*;
use crate::span::SpanDetail;
use crate::tracker::harness::{Harness, ctx};

type H = Harness<PgSession>;

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn startup() -> Vec<u8> {
    let params = b"user\0bob\0\0";
    let mut m = ((params.len() + 8) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&postgres::PROTOCOL_3.to_be_bytes());
    m.extend_from_slice(params);
    m
}

fn ssl_request() -> Vec<u8> {
    let mut m = 8u32.to_be_bytes().to_vec();
    m.extend_from_slice(&postgres::SSL_REQUEST.to_be_bytes());
    m
}

fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', format!("{sql}\0").as_bytes())
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    msg(b'P', format!("{name}\0{sql}\0\0\0").as_bytes())
}

fn bind(portal: &str, stmt: &str) -> Vec<u8> {
    msg(b'B', format!("{portal}\0{stmt}\0\0\0\0\0\0\0").as_bytes())
}

fn execute(portal: &str) -> Vec<u8> {
    msg(b'E', format!("{portal}\0\0\0\0\0").as_bytes())
}

fn error(code: &str, message: &str) -> Vec<u8> {
    msg(b'E', format!("SERROR\0C{code}\0M{message}\0\0").as_bytes())
}

fn ready() -> Vec<u8> {
    msg(b'Z', b"I")
}

fn complete(tag: &str) -> Vec<u8> {
    msg(b'C', format!("{tag}\0").as_bytes())
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// A client session past its startup.
fn started() -> H {
    let mut h = H::client();
    assert_eq!(h.send(0, 0, &startup()), Feed::Ok);
    assert_eq!(h.recv(0, &cat(&[msg(b'R', &[0, 0, 0, 0]), msg(b'K', &[0; 8]), ready()])), Feed::Ok);
    h
}

/// (name, query, error code, start, end) of each finished span.
fn spans(h: &H) -> Vec<(String, String, String, u64, u64)> {
    use crate::span::Semantics;
    h.finished
        .iter()
        .map(|f| {
            let SpanDetail::Sql(s) = &f.detail else { panic!("not sql") };
            (s.name().into_owned(), s.call.query.clone(), s.call.error_code().to_string(), f.start_mono, f.end_mono)
        })
        .collect()
}

#[test]
fn simple_query_with_rows_and_an_error() {
    let mut h = started();
    h.send(10, 1, &query("SELECT name FROM users WHERE id = 42"));
    h.recv(20, &cat(&[msg(b'T', b"\0\x01"), msg(b'D', b"row"), complete("SELECT 1")]));
    assert!(h.finished.is_empty(), "a simple query ends with ReadyForQuery");
    h.recv(21, &ready());
    h.send(30, 2, &query("SELECT * FROM nope"));
    h.recv(40, &cat(&[error("42P01", "relation \"nope\" does not exist"), ready()]));
    assert_eq!(
        spans(&h),
        vec![
            ("SELECT users".into(), "SELECT name FROM users WHERE id = ?".into(), "".into(), 10, 21),
            ("SELECT nope".into(), "SELECT * FROM nope".into(), "42P01".into(), 30, 40),
        ]
    );
    assert_eq!(h.finished[0].trace.span_id, [1; 8]);
    let SpanDetail::Sql(q) = &h.finished[0].detail else { panic!() };
    assert_eq!(
        (q.call.system, q.call.namespace.as_str()),
        ("postgresql", "bob"),
        "the startup's user names the database"
    );
}

#[test]
fn extended_protocol_remembers_statements_and_portals() {
    let mut h = started();
    // A named statement, prepared once, then executed twice through portals.
    h.send(1, 1, &cat(&[parse("s1", "UPDATE t SET v = $1 WHERE id = $2"), msg(b'S', b"")]));
    h.recv(2, &cat(&[msg(b'1', b""), ready()]));
    assert!(h.finished.is_empty(), "preparing is not running");
    for (i, ts) in [(2u8, 10u64), (3, 20)] {
        h.send(ts, i, &cat(&[bind("", "s1"), execute(""), msg(b'S', b"")]));
        h.recv(ts + 5, &cat(&[msg(b'2', b""), complete("UPDATE 1"), ready()]));
    }
    let update = ("UPDATE t".to_string(), "UPDATE t SET v = $1 WHERE id = $2".to_string(), String::new());
    let got: Vec<_> = spans(&h).into_iter().map(|s| (s.0, s.1, s.2)).collect();
    assert_eq!(got, vec![update.clone(), update]);
    // Closed: a later Bind of it executes without known text.
    h.send(30, 4, &cat(&[msg(b'C', b"Ss1\0"), bind("", "s1"), execute(""), msg(b'S', b"")]));
    h.recv(35, &cat(&[msg(b'3', b""), error("26000", "prepared statement \"s1\" does not exist"), ready()]));
    assert_eq!(spans(&h)[2].0, "SQL");
    let SpanDetail::Sql(q) = &h.finished[2].detail else { panic!() };
    assert_eq!(q.call.system, "postgresql");
    assert_eq!(spans(&h)[2].2, "26000");
}

#[test]
fn pipelined_executes_are_spans_with_one_parentage() {
    let mut h = started();
    let mut w = Vec::new();
    for sql in ["INSERT INTO t VALUES ($1)", "INSERT INTO t VALUES ($1)", "DELETE FROM t WHERE id = $1"] {
        w.extend(cat(&[parse("", sql), bind("", ""), msg(b'D', b"P\0"), execute("")]));
    }
    w.extend(msg(b'S', b""));
    h.send(1, 5, &w);
    let one = cat(&[msg(b'1', b""), msg(b'2', b""), msg(b'n', b"")]);
    h.recv(2, &cat(&[one.clone(), complete("INSERT 0 1"), one.clone()]));
    h.recv(3, &cat(&[complete("INSERT 0 1"), one, complete("DELETE 1"), ready()]));
    let got: Vec<(String, u64)> = spans(&h).into_iter().map(|s| (s.0, s.4)).collect();
    assert_eq!(got, vec![("INSERT t".into(), 2), ("INSERT t".into(), 3), ("DELETE t".into(), 3)]);
    let ids: Vec<[u8; 8]> = h.finished.iter().map(|f| f.trace.span_id).collect();
    assert_eq!(ids[0], [5; 8]);
    assert!(ids[1] != ids[0] && ids[2] != ids[1] && ids[2] != ids[0]);
    assert!(h.finished.iter().all(|f| f.trace.parent_span_id == [9; 8]));
}

#[test]
fn a_failed_parse_fails_its_execute_and_the_rest_is_skipped() {
    let mut h = started();
    let w = cat(&[
        parse("", "SELEC 1"),
        bind("", ""),
        execute(""),
        parse("", "SELECT 2"),
        bind("", ""),
        execute(""),
        msg(b'S', b""),
    ]);
    h.send(1, 1, &w);
    h.recv(2, &cat(&[error("42601", "syntax error at or near \"SELEC\""), ready()]));
    let got: Vec<(String, String)> = spans(&h).into_iter().map(|s| (s.1, s.2)).collect();
    assert_eq!(got, vec![("SELEC ?".to_string(), "42601".to_string())]);
    assert_eq!(h.stats.unanswered_requests, 1, "the second Execute never ran");
    // The connection goes on.
    h.send(3, 2, &query("SELECT 3"));
    h.recv(4, &cat(&[complete("SELECT 1"), ready()]));
    assert_eq!(spans(&h).len(), 2);
}

#[test]
fn copy_is_one_span() {
    let mut h = started();
    h.send(1, 1, &query("COPY t FROM STDIN"));
    h.recv(2, &msg(b'G', b"\0\0\0"));
    h.send(3, 1, &cat(&[msg(b'd', b"1\tx\n"), msg(b'c', b"")]));
    h.recv(4, &cat(&[complete("COPY 1"), ready()]));
    assert_eq!(spans(&h), vec![("COPY t".into(), "COPY t FROM STDIN".into(), "".into(), 1, 4)]);
}

#[test]
fn ssl_refused_goes_on_in_plaintext_and_accepted_stops() {
    let mut h = H::client();
    assert_eq!(h.send(0, 0, &ssl_request()), Feed::Ok);
    assert_eq!(h.recv(1, b"N"), Feed::Ok);
    assert_eq!(h.send(2, 0, &startup()), Feed::Ok);
    h.recv(3, &ready());
    h.send(4, 1, &query("SELECT 1"));
    h.recv(5, &cat(&[complete("SELECT 1"), ready()]));
    assert_eq!(spans(&h).len(), 1);

    let mut h = H::client();
    h.send(0, 0, &ssl_request());
    assert_eq!(h.recv(1, b"S"), Feed::Lost);
    assert_eq!(h.stats.parse_failures, 0, "TLS is not a failure");
}

#[test]
fn passwords_and_authentication_make_no_span() {
    let mut h = started();
    h.send(1, 1, &msg(b'p', b"hunter2\0"));
    h.recv(2, &cat(&[msg(b'R', &[0, 0, 0, 0]), ready()]));
    h.settings.db_query_literals = true;
    h.send(3, 2, &query("ALTER ROLE bob PASSWORD 'hunter2'"));
    h.recv(4, &cat(&[complete("ALTER ROLE"), ready()]));
    assert_eq!(spans(&h).len(), 1);
    assert_eq!(spans(&h)[0].1, "ALTER ROLE bob PASSWORD ?");
}

#[test]
fn garbage_drops_the_connection_and_is_counted() {
    let mut h = started();
    h.send(1, 1, &query("SELECT 1"));
    assert_eq!(h.recv(2, b"HTTP/1.1 200 OK\r\n\r\n"), Feed::Lost);
    assert!(h.finished.is_empty());
    assert_eq!((h.stats.parse_failures, h.stats.unanswered_requests), (1, 1));
    // A reply nobody asked for.
    let mut h = started();
    assert_eq!(h.recv(1, &complete("SELECT 1")), Feed::Lost);
    assert_eq!(h.stats.parse_failures, 1);
}

#[test]
fn a_gap_in_a_long_query_keeps_the_pairing() {
    let mut h = started();
    let sql = format!("SELECT '{}' FROM t", "x".repeat(3000));
    let q = query(&sql);
    assert_eq!(h.feed(Side::Request, 1, Some(ctx(1)), &q[..1000], q.len() as u64 - 1000), Feed::Ok);
    h.recv(2, &cat(&[complete("SELECT 1"), ready()]));
    let spans = spans(&h);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].0, "SELECT");
    assert!(spans[0].1.starts_with("SELECT ?") && spans[0].1.ends_with("..."), "{}", spans[0].1);
}

/// A traced server (a backend) reads the messages and writes the results:
/// the same spans as its client's, each its own trace once the kernel's
/// context (given to the read that started it) has been used.
#[test]
fn the_server_side_gives_the_same_spans() {
    let mut h = H::client();
    h.server = true;
    assert_eq!(h.send(0, 0, &startup()), Feed::Ok);
    assert_eq!(h.recv(0, &cat(&[msg(b'R', &[0, 0, 0, 0]), msg(b'K', &[0; 8]), ready()])), Feed::Ok);
    assert_eq!(h.send(10, 5, &query("SELECT 1")), Feed::Ok);
    assert_eq!(h.recv(20, &cat(&[complete("SELECT 1"), ready()])), Feed::Ok);
    assert_eq!(h.send(30, 5, &query("DELETE FROM t")), Feed::Ok);
    assert_eq!(h.recv(40, &cat(&[complete("DELETE 0"), ready()])), Feed::Ok);
    let got: Vec<(String, String, u64, u64)> =
        spans(&h).into_iter().map(|(name, query, _, start, end)| (name, query, start, end)).collect();
    assert_eq!(
        got,
        [
            ("SELECT".to_string(), "SELECT ?".to_string(), 10, 20),
            ("DELETE t".to_string(), "DELETE FROM t".to_string(), 30, 40)
        ]
    );
    assert_eq!(h.finished[0].trace, ctx(5));
    assert_ne!(h.finished[1].trace.trace_id, [7; 16], "a server's next request is a trace of its own");
}

#[test]
fn detection() {
    use crate::ebpf::abi::EventHdr;
    let detect = |data: &[u8]| Postgres.detect(&Event { hdr: EventHdr::default(), data, tail: &[] });
    assert_eq!(detect(&startup()), Detect::Yes { sender_is_client: Some(true) });
    assert_eq!(detect(&ssl_request()), Detect::Yes { sender_is_client: Some(true) });
    assert_eq!(detect(&startup()[..5]), Detect::NeedMore);
    assert_eq!(detect(&query("SELECT 1")), Detect::No);
    assert_eq!(detect(b"*1\r\n$4\r\nPING\r\n"), Detect::No);
}

#[test]
fn a_refused_prepare_is_the_failed_call() {
    // asyncpg prepares in a round trip of its own (Parse, Describe, Sync):
    // the server refusing the statement is the call that failed.
    let mut h = started();
    h.send(
        10,
        7,
        &cat(&[
            parse("__asyncpg_stmt_1__", "SELECT * FROM nope WHERE id = $1"),
            msg(b'D', b"S__asyncpg_stmt_1__\0"),
            msg(b'S', b""),
        ]),
    );
    h.recv(20, &cat(&[error("42P01", "relation \"nope\" does not exist"), ready()]));
    assert_eq!(
        spans(&h),
        vec![("SELECT nope".into(), "SELECT * FROM nope WHERE id = $1".into(), "42P01".into(), 10, 20)]
    );
    assert_eq!(h.finished[0].trace.span_id, [7; 8], "the kernel's context of the send");
    // A prepare the server accepts is no call; its later execution is.
    h.send(30, 8, &cat(&[parse("s2", "SELECT now()"), msg(b'D', b"Ss2\0"), msg(b'S', b"")]));
    h.recv(40, &cat(&[msg(b'1', b""), msg(b't', b"\0\0"), msg(b'T', b"\0\x01"), ready()]));
    assert_eq!(h.finished.len(), 1);
    h.send(50, 9, &cat(&[bind("", "s2"), execute(""), msg(b'S', b"")]));
    h.recv(60, &cat(&[msg(b'2', b""), complete("SELECT 1"), ready()]));
    assert_eq!(spans(&h)[1], ("SELECT".into(), "SELECT now()".into(), "".into(), 50, 60));
}
