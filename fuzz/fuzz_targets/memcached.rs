//! The memcached command and response streams fed arbitrary bytes, cut
//! into arbitrary segments, with gaps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obi_protocols::memcached::{self, CommandStream, ResponseStream};

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, rest)) = data.split_first() else { return };
    let _ = memcached::looks_like_command(rest);
    let mut commands = CommandStream::default();
    let mut responses = ResponseStream::default();
    let step = 1 + (cuts as usize >> 1);
    for (i, chunk) in rest.chunks(step).enumerate() {
        if i % 7 == 6 {
            commands.gap(chunk.len() as u64, &mut |_| {});
            responses.gap(chunk.len() as u64, &mut |_| {});
        } else {
            commands.feed(chunk, &mut |_| {});
            responses.feed(chunk, &mut |_| {});
        }
        if commands.is_lost() && i % 3 == 0 {
            commands.reset();
        }
    }
});
