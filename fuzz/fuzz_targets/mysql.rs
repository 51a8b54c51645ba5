//! The MySQL packet stream fed arbitrary bytes, cut into arbitrary
//! segments, with gaps; every packet goes through the payload readers, and
//! the text of every `COM_QUERY` and `COM_STMT_PREPARE` through the SQL functions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obi_protocols::mysql::{self, Event, PacketStream};
use obi_protocols::sql::{self, Dialect};

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, rest)) = data.split_first() else { return };
    let _ = mysql::looks_like_greeting(rest);
    let _ = mysql::looks_like_greeting_payload(rest);
    let _ = mysql::looks_like_command(rest);
    let _ = mysql::looks_like_tls_login(rest);
    let _ = mysql::ends_with_terminator(rest);
    let mut stream = PacketStream::default();
    let mut text = String::new();
    let step = 1 + (cuts as usize >> 1);
    for (i, chunk) in rest.chunks(step).enumerate() {
        let mut on = |e: Event<'_>| {
            let Event::Packet(p) = e else { return };
            assert!(p.payload.len() <= mysql::MAX_KEPT);
            let b = p.payload;
            let _ = mysql::greeting(b);
            let _ = mysql::login(b);
            let _ = mysql::error(b);
            let _ = mysql::status(b, p.len);
            let _ = mysql::is_eof(b, p.len);
            let _ = mysql::is_terminator(b, p.len);
            let _ = mysql::prepared(b);
            let _ = mysql::column_count(b);
            let _ = mysql::statement_id(b);
            let _ = mysql::lenenc(b);
            let _ = b.get(1..).map(mysql::query_text_after_attributes);
            if let Some((&(mysql::COM_QUERY | mysql::COM_STMT_PREPARE), q)) = b.split_first() {
                let q = String::from_utf8_lossy(q);
                text.clear();
                sql::query_text(&q, Dialect::MySql, cuts & 2 == 0, &mut text);
                assert!(text.len() <= sql::MAX_TEXT);
                let _ = sql::operation(&q);
                let _ = sql::table(&q);
            }
        };
        if i % 7 == 6 {
            stream.gap(chunk.len() as u64, &mut on);
        } else {
            stream.feed(chunk, &mut on);
        }
        let _ = stream.started_seq();
        if stream.is_lost() && i % 3 == 0 {
            stream.reset();
        }
    }
});
