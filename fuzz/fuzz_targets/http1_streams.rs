//! HTTP/1 request and response framers fed arbitrary bytes, cut into
//! arbitrary segments, with gaps (bytes the kernel did not capture).
#![no_main]

use libfuzzer_sys::fuzz_target;
use obi_protocols::http1::{RequestStream, ResponseStream, Segment};

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, rest)) = data.split_first() else { return };
    let mut req = RequestStream::new(4096);
    let mut resp = ResponseStream::new(4096);
    resp.expect_response(if cuts & 1 == 0 { "GET" } else { "HEAD" });
    let step = 1 + (cuts as usize >> 1);
    for (i, chunk) in rest.chunks(step).enumerate() {
        let seg =
            if i % 7 == 6 { Segment::Gap { len: chunk.len() as u64 * 3, tail: chunk } } else { Segment::Bytes(chunk) };
        req.feed(seg, &mut |_| {});
        let seg = if i % 5 == 4 { Segment::Gap { len: chunk.len() as u64, tail: &[] } } else { Segment::Bytes(chunk) };
        resp.feed(seg, &mut |_| {});
    }
    req.close(&mut |_| {});
    resp.close(&mut |_| {});
});
