//! The STOMP decoder on arbitrary bytes, fed in arbitrary pieces: it never panics, never holds
//! more than its limit, and every frame it accepts survives encoding and decoding again.
#![no_main]

use stomp_codec::{Decoder, Limits, Wire, decode_all, to_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_frame_bytes: 4096,
        max_headers: 8,
        max_header_line: 512,
    };
    // The first byte chooses where the input is cut into pieces.
    let (cut, bytes) = data.split_first().map_or((1, data), |(c, rest)| (*c as usize + 1, rest));
    let mut decoder = Decoder::new(limits);
    for piece in bytes.chunks(cut) {
        decoder.push(piece);
        loop {
            match decoder.next_inbound() {
                Ok(Some(Wire::Frame(frame))) => {
                    let again = decode_all(&to_bytes(&frame), Limits {
                        max_frame_bytes: usize::MAX,
                        max_headers: usize::MAX,
                        max_header_line: usize::MAX,
                    })
                    .expect("an accepted frame encodes to a valid one");
                    // The encoder adds a content-length to frames with a body.
                    let strip = |f: &chat_relay::stomp::Frame| {
                        let mut f = f.clone();
                        f.headers.retain(|(name, _)| name != "content-length");
                        f
                    };
                    assert_eq!(again.len(), 1);
                    let Wire::Frame(again) = &again[0] else { panic!("a frame") };
                    assert_eq!(strip(again), strip(&frame));
                }
                Ok(Some(Wire::Heartbeat)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(decoder.buffered() <= limits.max_frame_bytes + cut);
    }
});
