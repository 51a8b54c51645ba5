use super::*;

fn commands(chunks: &[&[u8]]) -> Vec<String> {
    let mut s = CommandStream::default();
    let mut out = Vec::new();
    for c in chunks {
        s.feed(c, &mut |e| {
            out.push(match e {
                Event::Item(c) => format!("{}|{}|{}", c.name, c.keys, c.silent),
                Event::Invalid => "INVALID".into(),
            })
        });
    }
    out
}

fn responses(chunks: &[&[u8]]) -> Vec<String> {
    let mut s = ResponseStream::default();
    let mut out = Vec::new();
    for c in chunks {
        s.feed(c, &mut |e| {
            out.push(match e {
                Event::Item(r) => format!("{r:?}"),
                Event::Invalid => "INVALID".into(),
            })
        });
    }
    out
}

#[test]
fn commands_with_data_blocks() {
    let wire = b"set k1 0 60 5\r\nhello\r\nget k1 k2\r\ndelete k1 noreply\r\nincr n 5\r\ncas k 0 0 2 99\r\nab\r\ngat 10 a b\r\nstats\r\nquit\r\n";
    let want = vec![
        "set|k1|false",
        "get|k1 k2|false",
        "delete|k1|true",
        "incr|n|false",
        "cas|k|false",
        "gat|a b|false",
        "stats||false",
        "quit||true",
    ];
    assert_eq!(commands(&[wire]), want);
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(commands(&bytes), want);
}

#[test]
fn data_that_looks_like_a_command_is_data() {
    assert_eq!(commands(&[b"set k 0 0 13\r\nget x\r\nquit\r\n\r\nget k\r\n"]), vec!["set|k|false", "get|k|false"]);
}

#[test]
fn a_gap_in_a_data_block_is_skipped() {
    let mut s = CommandStream::default();
    let mut out = Vec::new();
    s.feed(b"set k 0 0 1000\r\nxx", &mut |e| out.push(matches!(e, Event::Item(_))));
    s.gap(1000, &mut |e| out.push(matches!(e, Event::Item(_))));
    s.feed(b"get k\r\n", &mut |e| out.push(matches!(e, Event::Item(_))));
    assert_eq!(out, vec![true, true]);
    let mut s = CommandStream::default();
    out.clear();
    s.feed(b"get ", &mut |_| {});
    s.gap(10, &mut |e| out.push(matches!(e, Event::Invalid)));
    assert_eq!(out, vec![true]);
}

#[test]
fn bad_commands_are_invalid() {
    assert_eq!(commands(&[b"GET / HTTP/1.1\r\n"]), vec!["INVALID"]);
    assert_eq!(commands(&[b"set k x 0 5\r\nhello\r\n"]), vec!["INVALID"]);
    assert_eq!(commands(&[b"set k 0 0 5 extra junk\r\n"]), vec!["INVALID"]);
    assert_eq!(commands(&[b"get\r\n"]), vec!["INVALID"]);
    assert_eq!(commands(&[b"mg k v\r\n"]), vec!["INVALID"]);
    assert_eq!(commands(&[b"get k\n"]), vec!["INVALID"]);
    assert_eq!(commands(&[&vec![b'g'; MAX_LINE + 1]]), vec!["INVALID"]);
}

#[test]
fn responses_of_every_shape() {
    let wire = b"STORED\r\nVALUE k1 0 5\r\nhello\r\nVALUE k2 3 2 77\r\nab\r\nEND\r\nEND\r\nNOT_FOUND\r\n42\r\n\
CLIENT_ERROR bad data chunk\r\nERROR\r\nSTAT pid 1\r\nSTAT uptime 2\r\nEND\r\nVERSION 1.6.18\r\n";
    assert_eq!(
        responses(&[wire]),
        vec![
            "Line(\"STORED\")",
            "End { items: 2 }",
            "End { items: 0 }",
            "Line(\"NOT_FOUND\")",
            "Line(\"42\")",
            "Error(\"CLIENT_ERROR\", \"bad data chunk\")",
            "Error(\"ERROR\", \"\")",
            "End { items: 2 }",
            "Line(\"VERSION 1.6.18\")",
        ]
    );
    assert_eq!(responses(&[b"VALUE k 0 x\r\n"]), vec!["INVALID"]);
    assert_eq!(responses(&[b"hello\r\n"]), vec!["INVALID"]);
    assert_eq!(responses(&[b"+OK\r\n"]), vec!["INVALID"]);
}

#[test]
fn detects_commands_strictly() {
    assert_eq!(looks_like_command(b"get k\r\n"), Some(true));
    assert_eq!(looks_like_command(b"set k 0 0 1\r\nx\r\n"), Some(true));
    assert_eq!(looks_like_command(b"delete k\r\n"), Some(true));
    assert_eq!(looks_like_command(b"ge"), None);
    assert_eq!(looks_like_command(b"stats\r\n"), Some(false));
    assert_eq!(looks_like_command(b"GET / HTTP/1.1\r\n"), Some(false));
    assert_eq!(looks_like_command(b"*1\r\n$4\r\nPING\r\n"), Some(false));
    assert_eq!(looks_like_command(b"getaway\r\n"), Some(false));
    assert_eq!(looks_like_command(b"\x80\x00"), Some(false));
}
