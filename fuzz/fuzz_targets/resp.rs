//! The RESP decoder fed arbitrary bytes, cut into arbitrary segments, with
//! gaps; every frame it hands out is turned into query text both ways.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obi_protocols::resp::{self, Event, RespStream};

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, rest)) = data.split_first() else { return };
    let _ = resp::looks_like_command(rest);
    let mut stream = RespStream::new();
    let mut text = String::new();
    let step = 1 + (cuts as usize >> 1);
    for (i, chunk) in rest.chunks(step).enumerate() {
        let mut on = |e: Event<'_>| {
            if let Event::Frame(f) = e {
                let _ = resp::command_name(&f);
                text.clear();
                resp::command_text(&f, cuts & 1 == 0, &mut text);
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
