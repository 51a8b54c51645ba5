use super::*;

/// What the decoder made of `chunks`: (kind, len, parts) per frame, and
/// "INVALID" markers.
fn decode(chunks: &[&[u8]]) -> Vec<String> {
    let mut s = RespStream::new();
    let mut out = Vec::new();
    for c in chunks {
        s.feed(c, &mut |e| out.push(show(e)));
    }
    out
}

fn show(e: Event<'_>) -> String {
    match e {
        Event::Frame(f) => {
            let parts: Vec<String> = f.parts().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
            format!("{:?}/{} {}", f.kind, f.len, parts.join(","))
        }
        Event::Invalid => "INVALID".into(),
    }
}

fn text(wire: &[u8], keep: bool) -> String {
    let mut s = RespStream::new();
    let mut out = String::new();
    s.feed(wire, &mut |e| {
        if let Event::Frame(f) = e {
            command_text(&f, keep, &mut out)
        }
    });
    out
}

#[test]
fn commands_and_pipelines() {
    let wire = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    assert_eq!(decode(&[wire]), vec!["Array/3 SET,key,value", "Array/2 GET,key"]);
    // Byte by byte: same frames.
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(decode(&bytes), vec!["Array/3 SET,key,value", "Array/2 GET,key"]);
}

#[test]
fn replies_resp2() {
    let wire =
        b"+OK\r\n-ERR unknown command 'FOO'\r\n:42\r\n$-1\r\n*-1\r\n$5\r\nhello\r\n*2\r\n$1\r\na\r\n:1\r\n*0\r\n";
    assert_eq!(
        decode(&[wire]),
        vec![
            "Simple/0 OK",
            "Error/0 ERR unknown command 'FOO'",
            "Integer/0 42",
            "Null/0 ",
            "Null/0 ",
            "Bulk/0 hello",
            "Array/2 a,1",
            "Array/0 ",
        ]
    );
}

#[test]
fn replies_resp3() {
    let wire = b"_\r\n,3.14\r\n#t\r\n(123\r\n!21\r\nSYNTAX invalid syntax\r\n=15\r\ntxt:Some string\r\n\
%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n~1\r\n+x\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n\
|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:7\r\n";
    assert_eq!(
        decode(&[wire]),
        vec![
            "Null/0 ",
            "Other/0 3.14",
            "Other/0 t",
            "Other/0 123",
            "BlobError/0 SYNTAX invalid syntax",
            "Other/0 txt:Some string",
            "Other/4 a,1,b,2",
            "Other/1 x",
            "Push/3 message,ch,hi",
            // The attribute decorates the array; it is not a frame.
            "Array/1 7",
        ]
    );
}

#[test]
fn nested_elements_are_not_parts() {
    let wire = b"*2\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";
    assert_eq!(decode(&[wire]), vec!["Array/2 c"]);
}

#[test]
fn gaps_inside_bulk_payloads_are_skipped() {
    let mut s = RespStream::new();
    let mut out = Vec::new();
    s.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123", &mut |e| out.push(show(e)));
    s.gap(6, &mut |e| out.push(show(e)));
    s.feed(b"\r\n*1\r\n$4\r\nPING\r\n", &mut |e| out.push(show(e)));
    assert_eq!(out, vec!["Array/3 SET,k,0123", "Array/1 PING"]);
    // A gap covering the payload's CRLF too.
    let mut s = RespStream::new();
    out.clear();
    s.feed(b"$4\r\nab", &mut |e| out.push(show(e)));
    s.gap(4, &mut |e| out.push(show(e)));
    s.feed(b"+OK\r\n", &mut |e| out.push(show(e)));
    assert_eq!(out, vec!["Bulk/0 ab", "Simple/0 OK"]);
}

#[test]
fn a_gap_in_a_header_loses_the_framing() {
    let mut s = RespStream::new();
    let mut out = Vec::new();
    s.feed(b"*3\r\n$3\r\nSET\r\n", &mut |e| out.push(show(e)));
    s.gap(10, &mut |e| out.push(show(e)));
    s.feed(b"+OK\r\n", &mut |e| out.push(show(e)));
    assert_eq!(out, vec!["INVALID"]);
    assert!(s.is_lost());
    s.reset();
    s.feed(b"+OK\r\n", &mut |e| out.push(show(e)));
    assert_eq!(out, vec!["INVALID", "Simple/0 OK"]);
}

#[test]
fn garbage_is_invalid_once() {
    assert_eq!(decode(&[b"GET / HTTP/1.1\r\n\r\n", b"+OK\r\n"]), vec!["INVALID"]);
    assert_eq!(decode(&[b"$abc\r\n"]), vec!["INVALID"]);
    assert_eq!(decode(&[b"$3\r\nabcX\r\n"]), vec!["INVALID"]);
    assert_eq!(decode(&[b"*-2\r\n"]), vec!["INVALID"]);
    assert_eq!(decode(&[b"+OK\n"]), vec!["INVALID"]);
    let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
    assert_eq!(decode(&[&deep]), vec!["INVALID"]);
    let long = vec![b'+'; MAX_LINE + 1];
    assert_eq!(decode(&[&long]), vec!["INVALID"]);
}

#[test]
fn long_elements_are_cut() {
    let mut wire = b"*2\r\n$3\r\nSET\r\n$200\r\n".to_vec();
    wire.extend(std::iter::repeat_n(b'x', 200));
    wire.extend_from_slice(b"\r\n");
    let mut s = RespStream::new();
    s.feed(&wire, &mut |e| {
        let Event::Frame(f) = e else { panic!() };
        assert_eq!(f.part(1).unwrap().len(), MAX_PART_LEN);
        assert!(f.part_cut(1) && !f.part_cut(0));
    });
}

#[test]
fn detects_commands_strictly() {
    assert_eq!(looks_like_command(b"*3\r\n$3\r\nSET\r\n"), Some(true));
    assert_eq!(looks_like_command(b"*1\r\n$8\r\nJSON.GET\r\n"), Some(true));
    assert_eq!(looks_like_command(b"*1\r\n$4\r\nping"), Some(true));
    assert_eq!(looks_like_command(b""), None);
    assert_eq!(looks_like_command(b"*"), None);
    assert_eq!(looks_like_command(b"*3\r"), None);
    assert_eq!(looks_like_command(b"*3\r\n$3\r\nSE"), None);
    assert_eq!(looks_like_command(b"+OK\r\n"), Some(false));
    assert_eq!(looks_like_command(b"*0\r\n"), Some(false));
    assert_eq!(looks_like_command(b"*3\r\n:1\r\n"), Some(false));
    assert_eq!(looks_like_command(b"*3\r\n$3\r\n1ET\r\n"), Some(false));
    assert_eq!(looks_like_command(b"*3x\r\n"), Some(false));
    assert_eq!(looks_like_command(b"GET / HTTP/1.1\r\n"), Some(false));
    assert_eq!(looks_like_command(b"PING\r\n"), Some(false));
    assert_eq!(looks_like_command(b"*1234567890123456\r\n"), Some(false));
}

#[test]
fn query_text_hides_literals_and_passwords() {
    let cmd = |words: &[&str]| {
        let mut w = format!("*{}\r\n", words.len()).into_bytes();
        for x in words {
            w.extend_from_slice(format!("${}\r\n{x}\r\n", x.len()).as_bytes());
        }
        w
    };
    assert_eq!(text(&cmd(&["SET", "user:1", "alice"]), false), "SET user:1 ?");
    assert_eq!(text(&cmd(&["SET", "user:1", "alice"]), true), "SET user:1 alice");
    assert_eq!(text(&cmd(&["get", "k"]), false), "get k");
    assert_eq!(text(&cmd(&["CONFIG", "GET", "save"]), false), "CONFIG GET save");
    assert_eq!(text(&cmd(&["AUTH", "s3cret"]), true), "AUTH ?");
    assert_eq!(text(&cmd(&["AUTH", "bob", "s3cret"]), true), "AUTH ? ?");
    assert_eq!(text(&cmd(&["HELLO", "3", "AUTH", "bob", "pw", "SETNAME", "x"]), true), "HELLO 3 AUTH ? ? SETNAME x");
    assert_eq!(text(&cmd(&["ACL", "SETUSER", "bob", "on", ">pw"]), true), "ACL SETUSER bob ? ?");
    assert_eq!(text(&cmd(&["CONFIG", "SET", "requirepass", "pw"]), true), "CONFIG SET requirepass ?");
    assert_eq!(text(&cmd(&["CONFIG", "SET", "maxmemory", "1mb"]), true), "CONFIG SET maxmemory 1mb");
    assert_eq!(
        text(&cmd(&["MIGRATE", "h", "1", "k", "0", "5", "AUTH", "pw", "KEYS"]), true),
        "MIGRATE h 1 k 0 5 AUTH ? ?"
    );
    let many: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let mut words = vec!["RPUSH"];
    words.extend(many.iter().map(String::as_str));
    assert!(text(&cmd(&words), true).ends_with(" 14 ..."), "{}", text(&cmd(&words), true));
}

#[test]
fn command_names() {
    let mut s = RespStream::new();
    let mut names = Vec::new();
    s.feed(b"*1\r\n$4\r\nping\r\n+OK\r\n*1\r\n:1\r\n", &mut |e| {
        if let Event::Frame(f) = e {
            names.push(command_name(&f));
        }
    });
    assert_eq!(names, vec![Some("PING".to_string()), None, None]);
}
