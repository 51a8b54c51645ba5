//! The HPACK decoder (loona-hpack, which our HTTP/2 decoding relies on) fed
//! arbitrary header blocks, several in a row so the dynamic table is used.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = loona_hpack::Decoder::new();
    decoder.set_max_allowed_table_size(1 << 20);
    for block in data.split(|&b| b == 0xfe) {
        if decoder.decode_with_cb(block, |_, _| {}).is_err() {
            break;
        }
    }
});
