use super::*;

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    p
}

/// (seq, len, payload, cut) of a packet.
type Decoded = (u8, u32, Vec<u8>, bool);

/// Each packet, or None for Invalid.
fn decode(chunks: &[&[u8]], gaps: &[(usize, u64)]) -> Vec<Option<Decoded>> {
    let mut s = PacketStream::default();
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let mut on = |e: Event<'_>| {
            out.push(match e {
                Event::Packet(p) => Some((p.seq, p.len, p.payload.to_vec(), p.cut)),
                Event::Invalid => None,
            })
        };
        s.feed(c, &mut on);
        for &(_, n) in gaps.iter().filter(|g| g.0 == i) {
            s.gap(n, &mut on);
        }
    }
    out
}

#[test]
fn packets_split_across_reads_and_several_per_read() {
    let mut bytes = packet(0, b"\x03SELECT 1");
    bytes.extend(packet(0, b"\x0e"));
    bytes.extend(packet(1, b""));
    for cut in 0..bytes.len() {
        let got = decode(&[&bytes[..cut], &bytes[cut..]], &[]);
        assert_eq!(
            got,
            [
                Some((0, 9, b"\x03SELECT 1".to_vec(), false)),
                Some((0, 1, b"\x0e".to_vec(), false)),
                Some((1, 0, vec![], false))
            ],
            "cut at {cut}"
        );
    }
}

#[test]
fn a_gap_inside_a_payload_is_skipped_a_gap_in_a_header_is_not() {
    let p = packet(3, &[7u8; 100]);
    let got = decode(&[&p[..10], &p[60..]], &[(0, 50)]);
    assert_eq!(got, [Some((3, 100, [7u8; 50].to_vec(), true))]);
    let got = decode(&[&p[..2]], &[(0, 10)]);
    assert_eq!(got, [None]);
}

#[test]
fn a_full_packet_continues_in_the_next() {
    let mut bytes = vec![0xff, 0xff, 0xff, 0];
    bytes.push(COM_QUERY);
    let mut s = PacketStream::default();
    let mut got = Vec::new();
    let mut on = |e: Event<'_>| {
        if let Event::Packet(p) = e {
            got.push((p.seq, p.len, p.payload.len(), p.cut));
        }
    };
    s.feed(&bytes, &mut on);
    s.gap(CONTINUED as u64 - 1, &mut on);
    s.feed(&packet(1, b"xyz"), &mut on);
    assert_eq!(got, [(0, CONTINUED + 3, 4, true)]);
}

fn greeting_payload(version: &str) -> Vec<u8> {
    let mut g = vec![10];
    g.extend_from_slice(version.as_bytes());
    g.push(0);
    g.extend_from_slice(&[1, 0, 0, 0]); // connection id
    g.extend_from_slice(b"abcdefgh\0");
    g.extend_from_slice(&0xf7feu16.to_le_bytes());
    g.push(8);
    g.extend_from_slice(&2u16.to_le_bytes());
    g.extend_from_slice(&0x81bfu16.to_le_bytes());
    g.extend_from_slice(&[21; 11]);
    g.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
    g
}

#[test]
fn greetings_are_recognised_and_read() {
    let g = packet(0, &greeting_payload("5.5.5-10.11.6-MariaDB-0+deb12u1"));
    assert_eq!(looks_like_greeting(&g), Some(true));
    assert_eq!(looks_like_greeting(&g[..12]), None);
    assert_eq!(looks_like_greeting(&g[..3]), None);
    let read = greeting(&g[4..]).unwrap();
    assert_eq!(read.server_version, b"5.5.5-10.11.6-MariaDB-0+deb12u1");
    assert_eq!(read.capabilities, 0x81bf_f7fe);
    assert_ne!(read.capabilities & CLIENT_DEPRECATE_EOF, 0);
    // Not greetings: HTTP, a command, a second packet, binary noise.
    for not in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &packet(0, b"\x03SELECT 1"),
        &packet(1, &greeting_payload("8.0")),
        b"\x50\0\0\0\x0a\x01\x02",
    ] {
        assert_eq!(looks_like_greeting(not), Some(false), "{not:?}");
    }
}

#[test]
fn first_commands_are_recognised() {
    assert_eq!(looks_like_command(&packet(0, b"\x03SELECT 1")), Some(true));
    assert_eq!(looks_like_command(&packet(0, b"\x16 insert into t values (?)")), Some(true));
    assert_eq!(looks_like_command(&packet(0, b"\x03SEL")[..7]), None);
    assert_eq!(looks_like_command(&packet(0, b"\x03hello world")), Some(false));
    assert_eq!(looks_like_command(&packet(0, b"\x0e")), Some(false));
    assert_eq!(looks_like_command(&packet(1, b"\x03SELECT 1")), Some(false));
    assert_eq!(looks_like_command(b"*1\r\n$4\r\nPING\r\n"), Some(false));
}

#[test]
fn logins_give_the_database_never_the_password() {
    let mut l = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_CONNECT_WITH_DB).to_le_bytes().to_vec();
    l.extend_from_slice(&[0; 28]);
    l.extend_from_slice(b"obi\0\x04pw!!shop\0mysql_native_password\0");
    let got = login(&l).unwrap();
    assert_eq!(got.database, Some(&b"shop"[..]));
    assert!(!got.ssl_request);
    let mut ssl = (CLIENT_PROTOCOL_41 | CLIENT_SSL).to_le_bytes().to_vec();
    ssl.extend_from_slice(&[0; 28]);
    assert_eq!(
        login(&ssl),
        Some(Login { capabilities: CLIENT_PROTOCOL_41 | CLIENT_SSL, ssl_request: true, database: None })
    );
}

#[test]
fn ok_err_eof_and_prepare_answers() {
    assert_eq!(
        error(b"\xff\x7a\x04#42S02Table 'obi.nope' doesn't exist"),
        Some(ServerError { code: 1146, state: b"42S02", message: b"Table 'obi.nope' doesn't exist" })
    );
    assert!(is_eof(b"\xfe\0\0\x02\0", 5));
    assert!(!is_eof(b"\xfe\0\0\x02\0\0\0", 7));
    assert!(is_terminator(b"\xfe\0\0\x02\0\0\0", 7));
    assert_eq!(status(b"\xfe\0\0\x0a\0", 5), Some(0x0a));
    assert_eq!(status(b"\0\x01\x05\x08\0\0\0", 7), Some(8));
    assert_eq!(prepared(b"\0\x07\0\0\0\x02\0\x01\0\0\0\0"), Some(Prepared { statement_id: 7, columns: 2, params: 1 }));
    assert_eq!(column_count(b"\x03"), Some((3, true)));
    assert_eq!(column_count(b"\x03\x00"), Some((3, false)));
    assert_eq!(column_count(b"\x03de"), None);
    assert_eq!(lenenc(b"\xfc\x01\x02x"), Some((0x201, &b"x"[..])));
    assert_eq!(lenenc(b"\xff"), None);
    assert_eq!(statement_id(b"\x17\x05\0\0\0\0\x01\0\0\0"), Some(5));
}

#[test]
fn a_terminator_is_found_at_the_end_of_a_read() {
    let mut tail = b"row bytes".to_vec();
    tail.extend(packet(9, b"\xfe\0\0\x22\0"));
    assert_eq!(ends_with_terminator(&tail), Some(0x22));
    let mut tail = b"r".to_vec();
    tail.extend(packet(9, b"\xfe\0\0\x02\0\0\0"));
    assert_eq!(ends_with_terminator(&tail), Some(2));
    assert_eq!(ends_with_terminator(b"0123456789abcdef"), None);
}

#[test]
fn a_greeting_payload_alone_is_recognised() {
    let g = greeting_payload("5.5.5-10.11.19-MariaDB-0+deb12u1");
    assert_eq!(looks_like_greeting_payload(&g), Some(true));
    assert_eq!(looks_like_greeting_payload(&g[..20]), None);
    assert_eq!(looks_like_greeting_payload(b"\n\nHello"), Some(false));
    assert_eq!(looks_like_greeting_payload(b"\n1.2\0short"), None);
    assert_eq!(looks_like_greeting_payload(b"GET /"), Some(false));
}
