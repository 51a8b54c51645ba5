//! The PostgreSQL message stream fed arbitrary bytes, cut into arbitrary
//! segments, with gaps; every message body goes through the body readers,
//! and the text of every `Query` and `Parse` through the SQL functions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obi_protocols::postgres::{self, Event, MessageStream};
use obi_protocols::sql::{self, Dialect};

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, rest)) = data.split_first() else { return };
    let _ = postgres::looks_like_startup(rest);
    let mut stream = MessageStream::new(cuts & 1 == 0);
    let mut text = String::new();
    let step = 1 + (cuts as usize >> 1);
    for (i, chunk) in rest.chunks(step).enumerate() {
        let mut on = |e: Event<'_>| {
            let Event::Message(m) = e else { return };
            let _ = m.startup_code();
            let _ = postgres::bind_message(m.body);
            let _ = postgres::target_message(m.body);
            let _ = postgres::error_fields(m.body);
            if let Some((_, q)) = postgres::parse_message(m.body) {
                let q = String::from_utf8_lossy(q);
                for dialect in [Dialect::Postgres, Dialect::MySql] {
                    text.clear();
                    sql::query_text(&q, dialect, cuts & 2 == 0, &mut text);
                    assert!(text.len() <= sql::MAX_TEXT);
                }
                let _ = sql::operation(&q);
                let _ = sql::table(&q);
            }
        };
        if i % 7 == 6 {
            stream.gap(chunk.len() as u64, &mut on);
        } else {
            stream.feed(chunk, &mut on);
        }
        if stream.is_lost() && i % 3 == 0 {
            stream.reset();
        }
    }
});
