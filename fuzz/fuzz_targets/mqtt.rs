//! MQTT framer and decoder fed arbitrary bytes, cut into arbitrary
//! segments with gaps (bytes the kernel did not capture), under each version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obi_protocols::mqtt::{Framer, Segment, Version, decode, looks_like_connect};

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, rest)) = data.split_first() else { return };
    let _ = looks_like_connect(rest);
    let version = match cuts % 3 {
        0 => Version::V3_1,
        1 => Version::V3_1_1,
        _ => Version::V5,
    };
    let mut framer = Framer::new(64 + (cuts as usize & 0x30) * 8);
    let step = 1 + (cuts as usize >> 2);
    for (i, chunk) in rest.chunks(step).enumerate() {
        let seg = if i % 11 == 10 { Segment::Gap(chunk.len() as u64) } else { Segment::Bytes(chunk) };
        framer.feed(seg, &mut |r| {
            if let Ok(frame) = r {
                let _ = decode(&frame.header, frame.body, version);
            }
        });
    }
});
