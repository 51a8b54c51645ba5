//! The HTTP/2 connection decoder fed arbitrary kernel records on both sides.
//! The first byte picks where the input is cut into events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obi_protocols::http2::{H2Conn, Side};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let mut conn = H2Conn::new();
    let mut out = Vec::new();
    let step = 1 + cut as usize * 4;
    for (i, chunk) in rest.chunks(step).enumerate() {
        let side = if i % 2 == 0 { Side::Request } else { Side::Response };
        let _ = conn.feed(side, chunk, i as u64, 0, &mut out);
    }
    for ex in &out {
        assert!(ex.end_ts >= ex.start_ts);
    }
});
