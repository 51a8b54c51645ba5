use super::*;
use crate::span::SpanDetail;
use crate::tracker::harness::Harness;

type H = Harness<MySession>;

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    p
}

fn greeting(version: &str, capabilities: u32) -> Vec<u8> {
    let mut g = vec![10];
    g.extend_from_slice(version.as_bytes());
    g.push(0);
    g.extend_from_slice(&[1, 0, 0, 0]);
    g.extend_from_slice(b"abcdefgh\0");
    g.extend_from_slice(&(capabilities as u16).to_le_bytes());
    g.push(8);
    g.extend_from_slice(&2u16.to_le_bytes());
    g.extend_from_slice(&((capabilities >> 16) as u16).to_le_bytes());
    g.extend_from_slice(&[21; 11]);
    g.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
    packet(0, &g)
}

const CAPS: u32 = mysql::CLIENT_PROTOCOL_41 | mysql::CLIENT_SECURE_CONNECTION | mysql::CLIENT_CONNECT_WITH_DB;
const PASSWORD: &[u8] = b"hunter2-secret!!";

fn login(capabilities: u32) -> Vec<u8> {
    let mut l = capabilities.to_le_bytes().to_vec();
    l.extend_from_slice(&[0; 28]);
    l.extend_from_slice(b"obi\0");
    l.push(PASSWORD.len() as u8);
    l.extend_from_slice(PASSWORD);
    l.extend_from_slice(b"shop\0mysql_native_password\0");
    packet(1, &l)
}

fn ok(seq: u8, status: u16) -> Vec<u8> {
    let mut p = vec![0, 0, 0];
    p.extend_from_slice(&status.to_le_bytes());
    p.extend_from_slice(&[0, 0]);
    packet(seq, &p)
}

fn eof(seq: u8, status: u16) -> Vec<u8> {
    let mut p = vec![0xfe, 0, 0];
    p.extend_from_slice(&status.to_le_bytes());
    packet(seq, &p)
}

/// The OK that ends rows when EOF is deprecated.
fn ok_fe(seq: u8, status: u16) -> Vec<u8> {
    let mut p = vec![0xfe, 0, 0];
    p.extend_from_slice(&status.to_le_bytes());
    p.extend_from_slice(&[0, 0]);
    packet(seq, &p)
}

fn err(seq: u8, code: u16, state: &str, message: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    p.extend_from_slice(state.as_bytes());
    p.extend_from_slice(message.as_bytes());
    packet(seq, &p)
}

fn coldef(seq: u8) -> Vec<u8> {
    packet(seq, b"\x03def\x03obi\x01t\x01t\x01v\x01v\x0c\x3f\0\x0b\0\0\0\x03\0\0\0\0\0")
}

fn row(seq: u8, value: &str) -> Vec<u8> {
    let mut p = vec![value.len() as u8];
    p.extend_from_slice(value.as_bytes());
    packet(seq, &p)
}

fn command(code: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![code];
    p.extend_from_slice(body);
    packet(0, &p)
}

fn query(sql: &str) -> Vec<u8> {
    command(mysql::COM_QUERY, sql.as_bytes())
}

fn execute(id: u32) -> Vec<u8> {
    let mut b = id.to_le_bytes().to_vec();
    b.extend_from_slice(&[0, 1, 0, 0, 0]);
    command(mysql::COM_STMT_EXECUTE, &b)
}

fn prepare_ok(id: u32, columns: u16, params: u16) -> Vec<u8> {
    let mut p = vec![0];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&columns.to_le_bytes());
    p.extend_from_slice(&params.to_le_bytes());
    p.extend_from_slice(&[0, 0, 0]);
    packet(1, &p)
}

/// A one-column result set of `rows`, EOF-style or deprecated-EOF-style.
fn result(rows: &[&str], deprecate_eof: bool) -> Vec<u8> {
    let mut out = packet(1, b"\x01");
    out.extend(coldef(2));
    let mut seq = 3;
    if !deprecate_eof {
        out.extend(eof(seq, 2));
        seq += 1;
    }
    for r in rows {
        out.extend(row(seq, r));
        seq = seq.wrapping_add(1);
    }
    out.extend(if deprecate_eof { ok_fe(seq, 2) } else { eof(seq, 2) });
    out
}

/// A session past its login; the server offers `capabilities`.
fn logged_in(version: &str, capabilities: u32, client_capabilities: u32) -> H {
    let mut h = H::client();
    assert_eq!(h.recv(0, &greeting(version, capabilities)), Feed::Ok);
    assert_eq!(h.send(0, 0, &login(client_capabilities)), Feed::Ok);
    assert_eq!(h.recv(0, &ok(2, 2)), Feed::Ok);
    assert_eq!(h.session.conv.phase, Phase::Commands);
    h
}

fn mariadb() -> H {
    logged_in("5.5.5-10.11.6-MariaDB-0+deb12u1", u32::MAX, CAPS)
}

/// (name, query, error code, error message, start, end) of each finished span.
fn spans(h: &H) -> Vec<(String, String, String, String, u64, u64)> {
    use crate::span::Semantics;
    h.finished
        .iter()
        .map(|f| {
            let SpanDetail::Sql(s) = &f.detail else { panic!("not sql") };
            let msg = s.call.error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
            (
                s.name().into_owned(),
                s.call.query.clone(),
                s.call.error_code().to_string(),
                msg,
                f.start_mono,
                f.end_mono,
            )
        })
        .collect()
}

/// `packets` with sequence ids from `first` on, wrapping.
fn numbered(mut packets: Vec<u8>, first: u8) -> Vec<u8> {
    let (mut seq, mut at) = (first, 0);
    while at < packets.len() {
        let len = u32::from_le_bytes([packets[at], packets[at + 1], packets[at + 2], 0]) as usize;
        packets[at + 3] = seq;
        seq = seq.wrapping_add(1);
        at += 4 + len;
    }
    packets
}

fn names(h: &H) -> Vec<String> {
    spans(h).into_iter().map(|s| s.0).collect()
}

#[test]
fn queries_with_rows_ok_and_an_error() {
    let mut h = mariadb();
    h.send(10, 1, &query("SELECT v FROM t WHERE id = 42"));
    h.recv(20, &result(&["a", "b"], false));
    h.send(30, 2, &query("INSERT INTO t VALUES ('x', 3.5)"));
    h.recv(40, &ok(1, 2));
    h.send(50, 3, &query("SELECT * FROM nope"));
    assert_eq!(h.recv(60, &err(1, 1146, "42S02", "Table 'shop.nope' doesn't exist")), Feed::Ok);
    assert_eq!(
        spans(&h),
        vec![
            ("SELECT t".into(), "SELECT v FROM t WHERE id = ?".into(), "".into(), "".into(), 10, 20),
            ("INSERT t".into(), "INSERT INTO t VALUES (?, ?)".into(), "".into(), "".into(), 30, 40),
            (
                "SELECT nope".into(),
                "SELECT * FROM nope".into(),
                "1146".into(),
                "(42S02) Table 'shop.nope' doesn't exist".into(),
                50,
                60
            ),
        ]
    );
    let SpanDetail::Sql(q) = &h.finished[0].detail else { panic!() };
    assert_eq!((q.call.system, q.call.namespace.as_str()), ("mariadb", "shop"));
    assert_eq!(h.finished[0].trace.span_id, [1; 8]);
    assert_eq!((h.stats.parse_failures, h.stats.unanswered_requests), (0, 0));
}

#[test]
fn a_mysql_server_is_mysql_and_deprecated_eof_results_end_with_ok() {
    let caps = CAPS | mysql::CLIENT_DEPRECATE_EOF;
    let mut h = logged_in("8.0.36", caps, caps);
    h.send(10, 1, &query("SELECT v FROM t"));
    h.recv(20, &result(&["a"], true));
    h.send(30, 2, &query("SELECT v FROM t LIMIT 0"));
    h.recv(40, &result(&[], true));
    assert_eq!(names(&h), ["SELECT t", "SELECT t"]);
    let SpanDetail::Sql(q) = &h.finished[0].detail else { panic!() };
    assert_eq!(q.call.system, "mysql");
}

#[test]
fn answers_split_across_reads_and_commands_across_sends() {
    let mut h = mariadb();
    let q = query("SELECT v FROM t");
    h.send(10, 1, &q[..3]);
    h.send(11, 1, &q[3..]);
    let r = result(&["a", "b", "c"], false);
    for (i, b) in r.iter().enumerate() {
        assert_eq!(h.recv(20 + i as u64, &[*b]), Feed::Ok);
    }
    let end = 20 + r.len() as u64 - 1;
    assert_eq!(spans(&h)[0].4..spans(&h)[0].5, 10..end, "starts with the first byte sent, ends with the last read");
}

#[test]
fn multi_statement_query_is_one_span_ending_with_the_last_result() {
    let mut h = mariadb();
    h.send(10, 1, &query("UPDATE t SET v = 1; SELECT v FROM t"));
    let mut answer = ok(1, 2 | mysql::SERVER_MORE_RESULTS_EXISTS);
    // The second result continues the sequence.
    answer.extend(numbered(result(&["1"], false), 2));
    h.recv(20, &answer[..9]);
    assert!(h.finished.is_empty());
    h.recv(30, &answer[9..]);
    assert_eq!(spans(&h).iter().map(|s| (s.0.as_str(), s.5)).collect::<Vec<_>>(), [("UPDATE t", 30)]);
}

#[test]
fn prepared_statements_map_ids_to_text() {
    let mut h = mariadb();
    h.send(1, 1, &command(mysql::COM_STMT_PREPARE, b"SELECT v FROM t WHERE id = ?"));
    let mut answer = prepare_ok(7, 1, 1);
    answer.extend(cat(&[coldef(2), eof(3, 2), coldef(4), eof(5, 2)]));
    h.recv(2, &answer);
    assert!(h.finished.is_empty(), "preparing is not running");
    for ts in [10, 20, 30] {
        h.send(ts, ts as u8, &execute(7));
        h.recv(ts + 5, &result(&["a"], false));
    }
    // Closed: its id no longer has text.
    h.send(40, 40, &command(mysql::COM_STMT_CLOSE, &7u32.to_le_bytes()));
    h.send(41, 41, &execute(7));
    h.recv(42, &err(1, 1243, "HY000", "Unknown prepared statement handler (7) given to mysqld_stmt_execute"));
    // A failed prepare is a span: the statement never runs.
    h.send(50, 50, &command(mysql::COM_STMT_PREPARE, b"SELECT * FROM nope WHERE id = ?"));
    h.recv(51, &err(1, 1146, "42S02", "Table 'shop.nope' doesn't exist"));
    let got: Vec<_> = spans(&h).into_iter().map(|s| (s.0, s.1, s.2)).collect();
    let select = ("SELECT t".to_string(), "SELECT v FROM t WHERE id = ?".to_string(), String::new());
    assert_eq!(
        got,
        [
            select.clone(),
            select.clone(),
            select,
            ("SQL".into(), "".into(), "1243".into()),
            ("SELECT nope".into(), "SELECT * FROM nope WHERE id = ?".into(), "1146".into())
        ]
    );
    assert_eq!(h.stats.parse_failures, 0);
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn prepare_without_eof_and_pipelined_execute_of_the_last_prepared() {
    let caps = CAPS | mysql::CLIENT_DEPRECATE_EOF;
    let mut h = logged_in("5.5.5-10.11.6-MariaDB", caps, caps);
    // MariaDB's execute-direct: prepare and execute (id -1) in one send.
    let mut w = command(mysql::COM_STMT_PREPARE, b"DELETE FROM t WHERE id = ?");
    w.extend(execute(LAST_PREPARED));
    h.send(1, 1, &w);
    h.recv(2, &cat(&[prepare_ok(3, 0, 1), coldef(2), ok(1, 2)]));
    assert_eq!(names(&h), ["DELETE t"]);
}

#[test]
fn ping_init_db_quit_are_followed_not_spans() {
    let mut h = mariadb();
    h.send(1, 1, &command(mysql::COM_PING, b""));
    h.recv(2, &ok(1, 2));
    h.send(3, 2, &command(mysql::COM_INIT_DB, b"other"));
    h.recv(4, &ok(1, 2));
    h.send(5, 3, &query("SELECT 1"));
    h.recv(6, &result(&["1"], false));
    h.send(7, 4, &command(mysql::COM_QUIT, b""));
    h.close(8);
    assert_eq!(names(&h), ["SELECT"]);
    let SpanDetail::Sql(q) = &h.finished[0].detail else { panic!() };
    assert_eq!(q.call.namespace, "other");
    assert_eq!((h.stats.parse_failures, h.stats.unanswered_requests), (0, 0));
}

#[test]
fn use_switches_the_namespace() {
    let mut h = mariadb();
    h.send(1, 1, &query("USE `other`"));
    h.recv(2, &ok(1, 2));
    h.send(3, 2, &query("SELECT 1"));
    h.recv(4, &result(&["1"], false));
    let namespaces: Vec<&str> = h
        .finished
        .iter()
        .map(|f| match &f.detail {
            SpanDetail::Sql(q) => q.call.namespace.as_str(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(namespaces, ["shop", "other"]);
}

#[test]
fn mysql_8_query_attributes_come_before_the_text() {
    let caps = CAPS | mysql::CLIENT_QUERY_ATTRIBUTES;
    let mut h = logged_in("8.0.36", caps, caps);
    // No attributes: a count of 0, one set, then the text.
    h.send(1, 1, &command(mysql::COM_QUERY, b"\x00\x01SELECT v FROM t WHERE id = 4"));
    h.recv(2, &result(&["a"], false));
    // One attribute: the text's start is not guessed.
    h.send(3, 2, &command(mysql::COM_QUERY, b"\x01\x01\x00\x01\xfe\x00\x01a\x01xSELECT 1"));
    h.recv(4, &result(&["1"], false));
    let got: Vec<_> = spans(&h).into_iter().map(|s| (s.0, s.1)).collect();
    assert_eq!(got, [("SELECT t".into(), "SELECT v FROM t WHERE id = ?".into()), ("SQL".into(), String::new())]);
    // Joined after the login: a body that starts with a NUL has attributes.
    let mut h = H::client();
    h.send(1, 1, &query("SELECT 1"));
    h.recv(2, &result(&["1"], false));
    h.send(3, 2, &command(mysql::COM_QUERY, b"\x00\x01SELECT 2"));
    h.recv(4, &result(&["2"], false));
    assert_eq!(spans(&h).into_iter().map(|s| s.1).collect::<Vec<_>>(), ["SELECT ?", "SELECT ?"]);
}

#[test]
fn the_login_and_its_password_are_never_spans() {
    let mut h = mariadb();
    h.send(1, 1, &query("SET PASSWORD = PASSWORD('hunter2')"));
    h.recv(2, &ok(1, 2));
    h.send(3, 2, &query("CREATE USER u IDENTIFIED BY 'hunter2'"));
    h.recv(4, &ok(1, 2));
    let texts: Vec<String> = spans(&h).into_iter().map(|s| s.1).collect();
    assert_eq!(texts, ["SET PASSWORD = PASSWORD(?)", "CREATE USER u IDENTIFIED BY ?"]);
    h.settings.db_query_literals = true;
    h.send(5, 3, &query("CREATE USER v IDENTIFIED BY 'hunter2'"));
    h.recv(6, &ok(1, 2));
    assert_eq!(spans(&h)[2].1, "CREATE USER v IDENTIFIED BY ?");
    assert!(!format!("{:?}", h.finished).contains("hunter2"));
}

#[test]
fn a_greeting_read_apart_from_its_header() {
    // The tracker recognises the connection from the payload; the header
    // read before it was not kept.
    let g = greeting("5.5.5-10.11.19-MariaDB-0+deb12u1", u32::MAX);
    assert_eq!(mysql::looks_like_greeting_payload(&g[4..]), Some(true));
    let mut h = H::client();
    assert_eq!(h.recv(0, &g[4..]), Feed::Ok);
    assert_eq!(h.send(0, 0, &login(CAPS)), Feed::Ok);
    assert_eq!(h.recv(0, &ok(2, 2)[..4]), Feed::Ok);
    assert_eq!(h.recv(0, &ok(2, 2)[4..]), Feed::Ok);
    h.send(10, 1, &query("SELECT 1"));
    for p in [packet(1, b"\x01"), coldef(2), eof(3, 2), row(4, "1"), eof(5, 2)] {
        h.recv(20, &p[..4]);
        h.recv(21, &p[4..]);
    }
    assert_eq!(names(&h), ["SELECT"]);
    let SpanDetail::Sql(q) = &h.finished[0].detail else { panic!() };
    assert_eq!(q.call.system, "mariadb");
}

#[test]
fn tls_stops_parsing_without_a_failure() {
    let mut h = H::client();
    h.recv(0, &greeting("8.0.36", u32::MAX));
    let mut ssl = (CAPS | mysql::CLIENT_SSL).to_le_bytes().to_vec();
    ssl.extend_from_slice(&[0; 28]);
    assert_eq!(h.send(1, 1, &packet(1, &ssl)), Feed::Lost);
    assert_eq!(h.stats.parse_failures, 0);
}

#[test]
fn tls_plaintext_starts_with_the_login() {
    let caps = CAPS | mysql::CLIENT_SSL;
    let mut full = login(caps);
    full[3] = 2;
    assert_eq!(mysql::looks_like_tls_login(&full), Some(true));
    assert_eq!(mysql::looks_like_tls_login(&login(caps)), Some(false), "sequence 1");
    assert_eq!(mysql::looks_like_tls_login(&full[..10]), None);
    let mut h = H::client();
    assert_eq!(h.send(0, 0, &full), Feed::Ok);
    assert_eq!(h.recv(1, &ok(3, 2)), Feed::Ok);
    h.send(10, 1, &query("SELECT v FROM t"));
    h.recv(20, &result(&["a"], false));
    assert_eq!(names(&h), ["SELECT t"]);
    let SpanDetail::Sql(q) = &h.finished[0].detail else { panic!() };
    assert_eq!((q.call.system, q.call.namespace.as_str()), ("mysql", "shop"));
}

#[test]
fn joined_after_the_login_the_first_command_starts_it() {
    let mut h = H::client();
    h.send(1, 1, &query("SELECT v FROM t"));
    // Unknown EOF mode: the packet after the definitions tells.
    h.recv(2, &result(&["a"], false));
    h.send(3, 2, &query("SELECT v FROM t"));
    h.recv(4, &result(&[], false));
    assert_eq!(names(&h), ["SELECT t", "SELECT t"]);
    let SpanDetail::Sql(q) = &h.finished[0].detail else { panic!() };
    assert_eq!((q.call.system, q.call.namespace.as_str()), ("mysql", ""));
}

#[test]
fn rows_hidden_by_a_gap_end_with_the_read_that_ends_with_their_terminator() {
    let mut h = mariadb();
    h.send(1, 1, &query("SELECT v FROM t"));
    let many: Vec<String> = (0..500).map(|i| format!("row number {i}")).collect();
    let rows: Vec<&str> = many.iter().map(String::as_str).collect();
    // Sequence ids wrap past 255.
    let r = numbered(result(&rows, false), 1);
    // The kernel captured 4096 bytes of a first read and 4096 + the tail of a second.
    let half = r.len() / 2;
    let first = &r[..half];
    let second = &r[half..];
    assert_eq!(h.feed(Side::Response, 5, None, &first[..4096], (first.len() - 4096) as u64), Feed::Ok);
    assert!(h.finished.is_empty());
    let io = Io {
        side: Side::Response,
        ts: 9,
        tid: 1,
        msg_start: false,
        queued: None,
        kernel_ctx: None,
        data: &second[..4096],
        missing: (second.len() - 4096) as u64,
        tail: &second[second.len() - 16..],
    };
    let Harness { session, settings, remap, stats, finished, server, relay, .. } = &mut h;
    let feed = session.on_data(
        &io,
        &mut SessionCx { server: *server, from_start: true, pid: 1, settings, remap, stats, finished, relay },
    );
    assert_eq!(feed, Feed::Ok);
    assert_eq!(spans(&h).iter().map(|s| (s.0.as_str(), s.5)).collect::<Vec<_>>(), [("SELECT t", 9)]);
    // The next answer is read normally.
    h.send(10, 2, &query("SELECT 1"));
    h.recv(11, &result(&["1"], false));
    assert_eq!(names(&h), ["SELECT t", "SELECT"]);
    assert_eq!(h.stats.parse_failures, 0);
}

#[test]
fn malformed_answers_drop_the_connection_and_are_counted() {
    // Garbage where an answer should be.
    let mut h = mariadb();
    h.send(1, 1, &query("SELECT v FROM t"));
    assert_eq!(h.recv(2, b"HTTP/1.1 200 OK\r\n\r\n"), Feed::Lost);
    assert_eq!((h.stats.parse_failures, h.stats.unanswered_requests), (1, 1));
    assert!(h.finished.is_empty());
    // An answer out of sequence.
    let mut h = mariadb();
    h.send(1, 1, &query("SELECT v FROM t"));
    assert_eq!(h.recv(2, &ok(5, 2)), Feed::Lost);
    assert!(h.finished.is_empty());
    // An unknown command.
    let mut h = mariadb();
    assert_eq!(h.send(1, 1, &command(0x7f, b"zz")), Feed::Lost);
    assert_eq!(h.stats.parse_failures, 1);
    // An answer nobody asked for.
    let mut h = mariadb();
    assert_eq!(h.recv(1, &ok(1, 2)), Feed::Lost);
    // Not a column definition.
    let mut h = mariadb();
    h.send(1, 1, &query("SELECT v FROM t"));
    assert_eq!(h.recv(2, &cat(&[packet(1, b"\x01"), packet(2, b"\x05hello")])), Feed::Lost);
    assert!(h.finished.is_empty());
}

/// A traced server reads the commands and writes the answers: the same
/// spans as its client's, each its own trace once the kernel's context
/// (given to the read that started it) has been used.
#[test]
fn the_server_side_gives_the_same_spans() {
    let mut h = H::client();
    h.server = true;
    assert_eq!(h.recv(0, &greeting("5.5.5-10.11.6-MariaDB-0+deb12u1", u32::MAX)), Feed::Ok);
    assert_eq!(h.send(0, 0, &login(CAPS)), Feed::Ok);
    assert_eq!(h.recv(0, &ok(2, 2)), Feed::Ok);
    assert_eq!(h.send(10, 5, &query("SELECT v FROM t WHERE id = 1")), Feed::Ok);
    assert_eq!(h.recv(20, &result(&["apple"], false)), Feed::Ok);
    assert_eq!(h.send(30, 5, &query("SELECT * FROM nope")), Feed::Ok);
    assert_eq!(h.recv(40, &err(1, 1146, "42S02", "Table 'obi.nope' doesn't exist")), Feed::Ok);
    let got: Vec<(String, String, u64, u64)> = spans(&h)
        .into_iter()
        .map(|(name, query, code, _, start, end)| (name, query + " " + &code, start, end))
        .collect();
    assert_eq!(
        got,
        [
            ("SELECT t".to_string(), "SELECT v FROM t WHERE id = ? ".to_string(), 10, 20),
            ("SELECT nope".to_string(), "SELECT * FROM nope 1146".to_string(), 30, 40)
        ]
    );
    assert_eq!(h.finished[0].trace, crate::tracker::harness::ctx(5));
    assert_ne!(h.finished[1].trace.trace_id, [7; 16], "a server's next request is a trace of its own");
    assert_eq!(h.stats.parse_failures, 0);
}

#[test]
fn detection_from_a_greeting_or_a_first_statement() {
    assert_eq!(mysql::looks_like_greeting(&greeting("5.5.5-10.11.6-MariaDB", u32::MAX)), Some(true));
    assert_eq!(mysql::looks_like_command(&query("select 1")), Some(true));
    assert_eq!(mysql::looks_like_command(&packet(0, b"\x03\x00\x01garbage")), Some(false));
}

#[test]
fn random_bytes_after_a_login_never_panic_nor_make_spans_without_a_command() {
    // xorshift: the same sequence every run.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..2000 {
        let mut h = mariadb();
        let mut sent_commands = 0;
        for step in 0..8 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Plausible headers now and then, so that answers get parsed deep.
            if next() % 2 == 0 && len > 4 {
                bytes[..3].copy_from_slice(&((len as u32 - 4).to_le_bytes()[..3]));
                bytes[3] = (next() % 3) as u8;
            }
            let feed = if step % 2 == 0 {
                if bytes.len() > 4 && bytes[3] == 0 {
                    sent_commands += 1;
                }
                h.send(step, 1, &bytes)
            } else {
                h.feed(Side::Response, step, None, &bytes, next() % 3)
            };
            if feed == Feed::Lost {
                break;
            }
        }
        h.close(100);
        assert!(h.finished.len() <= sent_commands, "a span without a command");
    }
}

#[test]
fn garbage_from_the_client_is_told_at_its_header() {
    let mut h = H::client();
    h.recv(0, &greeting("8.0.36", u32::MAX));
    assert_eq!(h.send(1, 1, b"GARBAGE\r\n"), Feed::Lost);
    assert_eq!(h.stats.parse_failures, 1);
    let mut h = mariadb();
    assert_eq!(h.send(1, 1, b"GET / HTTP/1.1\r\n\r\n"), Feed::Lost);
}
