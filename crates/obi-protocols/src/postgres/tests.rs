use super::*;

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn startup() -> Vec<u8> {
    let params = b"user\0bob\0database\0app\0\0";
    let mut m = ((params.len() + 8) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&PROTOCOL_3.to_be_bytes());
    m.extend_from_slice(params);
    m
}

fn decode(stream: &mut MessageStream, chunks: &[&[u8]]) -> Vec<String> {
    let mut out = Vec::new();
    for c in chunks {
        stream.feed(c, &mut |e| {
            out.push(match e {
                Event::Message(m) => format!("{}:{}:{}", m.tag as char, m.len, String::from_utf8_lossy(m.body)),
                Event::Invalid => "INVALID".into(),
            })
        });
    }
    out
}

#[test]
fn startup_then_typed_messages() {
    let mut wire = startup();
    wire.extend(msg(b'Q', b"SELECT 1\0"));
    wire.extend(msg(b'S', b""));
    let mut s = MessageStream::new(true);
    let got = decode(&mut s, &[&wire]);
    assert_eq!(got.len(), 3);
    assert!(got[0].starts_with("\0:"), "{got:?}");
    assert_eq!(got[1], "Q:9:SELECT 1\0");
    assert_eq!(got[2], "S:0:");
    // Byte by byte: the same.
    let mut s = MessageStream::new(true);
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(decode(&mut s, &bytes), got);
}

#[test]
fn ssl_request_then_startup() {
    let mut s = MessageStream::new(true);
    let mut ssl = 8u32.to_be_bytes().to_vec();
    ssl.extend_from_slice(&SSL_REQUEST.to_be_bytes());
    let mut code = None;
    s.feed(&ssl, &mut |e| {
        if let Event::Message(m) = e {
            code = m.startup_code();
        }
    });
    assert_eq!(code, Some(SSL_REQUEST));
    s.expect_untyped();
    let got = decode(&mut s, &[&startup()]);
    assert_eq!(got.len(), 1);
}

#[test]
fn gaps_inside_bodies_keep_the_framing() {
    let mut s = MessageStream::new(false);
    let mut out = Vec::new();
    let body = vec![b'x'; 5000];
    let m = msg(b'D', &body);
    s.feed(&m[..1000], &mut |e| out.push(matches!(e, Event::Message(ref m) if m.cut && m.len == 5000)));
    s.gap(m.len() as u64 - 1000, &mut |e| out.push(matches!(e, Event::Message(ref m) if m.cut && m.len == 5000)));
    s.feed(&msg(b'Z', b"I"), &mut |e| out.push(matches!(e, Event::Message(ref m) if m.tag == b'Z')));
    assert_eq!(out, vec![true, true]);
}

#[test]
fn a_gap_in_a_header_or_garbage_is_invalid() {
    let mut s = MessageStream::new(false);
    assert_eq!(decode(&mut s, &[b"Q\0"]), Vec::<String>::new());
    let mut out = 0;
    s.gap(10, &mut |e| out += matches!(e, Event::Invalid) as i32);
    assert_eq!(out, 1);
    assert!(s.is_lost());
    let mut s = MessageStream::new(false);
    assert_eq!(decode(&mut s, &[b"Q\0\0\0\x02"]), vec!["INVALID"]);
    let mut s = MessageStream::new(false);
    assert_eq!(decode(&mut s, &[b"\x00\0\0\0\x08abcd"]), vec!["INVALID"]);
    let mut s = MessageStream::new(true);
    assert_eq!(decode(&mut s, &[b"GET / HTTP/1.1\r\n"]), vec!["INVALID"]);
}

#[test]
fn long_bodies_are_kept_in_part() {
    let mut s = MessageStream::new(false);
    let m = msg(b'Q', &vec![b'a'; MAX_KEPT + 10]);
    let mut seen = false;
    s.feed(&m, &mut |e| {
        let Event::Message(m) = e else { panic!() };
        assert!(m.cut && m.body.len() == MAX_KEPT);
        seen = true;
    });
    assert!(seen);
}

#[test]
fn message_bodies() {
    assert_eq!(parse_message(b"s1\0SELECT $1\0\0\0"), Some((&b"s1"[..], &b"SELECT $1"[..])));
    assert_eq!(parse_message(b"\0SELECT 'cut sh"), Some((&b""[..], &b"SELECT 'cut sh"[..])));
    assert_eq!(bind_message(b"p1\0s1\0\0\0"), Some((&b"p1"[..], &b"s1"[..])));
    assert_eq!(target_message(b"Sname\0"), Some((b'S', &b"name"[..])));
    assert_eq!(target_message(b"Xname\0"), None);
    let e = error_fields(b"SERROR\0VERROR\0C42P01\0Mrelation \"nope\" does not exist\0P15\0\0");
    assert_eq!(e, ServerError { code: b"42P01", message: b"relation \"nope\" does not exist" });
}

#[test]
fn startup_database_or_user() {
    let body = |params: &[u8]| [&PROTOCOL_3.to_be_bytes()[..], params].concat();
    assert_eq!(startup_database(&body(b"user\0bob\0database\0app\0\0")), "app");
    assert_eq!(startup_database(&body(b"user\0bob\0\0")), "bob");
    assert_eq!(startup_database(&body(b"user\0bob")), "");
    assert_eq!(startup_database(b""), "");
}

#[test]
fn detects_startup_strictly() {
    assert_eq!(looks_like_startup(&startup()), Some(true));
    let mut ssl = 8u32.to_be_bytes().to_vec();
    ssl.extend_from_slice(&SSL_REQUEST.to_be_bytes());
    assert_eq!(looks_like_startup(&ssl), Some(true));
    assert_eq!(looks_like_startup(&startup()[..6]), None);
    assert_eq!(looks_like_startup(&startup()[..3]), None);
    assert_eq!(looks_like_startup(b"PING\r\n"), Some(false), "a short message that cannot be a startup");
    assert_eq!(looks_like_startup(&startup()[..10]), None);
    let mut cancel = 16u32.to_be_bytes().to_vec();
    cancel.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    assert_eq!(looks_like_startup(&cancel), Some(false));
    assert_eq!(looks_like_startup(b"GET / HTTP/1.1\r\n"), Some(false));
    assert_eq!(looks_like_startup(b"*1\r\n$4\r\nPING\r\n"), Some(false));
    assert_eq!(looks_like_startup(&msg(b'Q', b"SELECT 1\0")), Some(false));
}
