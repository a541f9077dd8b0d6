//! Feeds arbitrary bytes to the protocol's frame reader and message decoders, in arbitrary
//! chunks, as a server would receive them. Run with `cargo +nightly fuzz run frame_decoder`
//! from `fuzz/`. Crashes found become regression tests in `src/runtime/net/frame.rs`.
#![no_main]

use goliath::runtime::net::frame::{FrameReader, FrameType};
use goliath::runtime::net::{Hello, Request, RequestView};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else { return };
    let mut reader = FrameReader::new(4096);
    let mut chunks = bytes.chunks(usize::from(split).max(1));
    let mut pending: &[u8] = &[];
    loop {
        if pending.is_empty() {
            match chunks.next() {
                Some(chunk) => pending = chunk,
                None => break,
            }
        }
        let Ok(taken) = reader.push(pending) else { return };
        pending = &pending[taken..];
        loop {
            match reader.next_frame() {
                Ok(Some((header, payload))) => match header.frame_type {
                    FrameType::Hello => {
                        let _ = goliath::codec::decode::<Hello>("hello", payload);
                    }
                    _ => {
                        let _ = goliath::codec::decode::<Request>("request", payload);
                        let _ = goliath::codec::decode_borrowed::<RequestView<'_>>(
                            "request", payload,
                        );
                    }
                },
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(reader.capacity() <= 64 * 1024, "the reader stays bounded");
    }
});
