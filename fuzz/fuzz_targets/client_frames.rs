//! Feeds arbitrary bytes to the frame reader and the answer decoders in arbitrary chunks, as
//! the CLI client and a `--connect` console receive them from a node (a buggy or hostile
//! node must not crash them). Run with `cargo +nightly fuzz run client_frames` from `fuzz/`.
//! Crashes found become regression tests in `src/runtime/net/messages.rs`.

#![no_main]

use goliath::runtime::net::frame::{self, FrameReader, FrameType};
use goliath::runtime::net::{Response, StreamItem, Welcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    // A node's answer starts with the preamble: check it as the client does, then read on.
    if bytes.len() >= frame::PREAMBLE_LEN {
        let mut preamble = [0u8; frame::PREAMBLE_LEN];
        preamble.copy_from_slice(&bytes[..frame::PREAMBLE_LEN]);
        let _ = frame::check_preamble(&preamble);
    }
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
        let Ok(taken) = reader.push(pending) else {
            return;
        };
        pending = &pending[taken..];
        loop {
            match reader.next_frame() {
                Ok(Some((header, payload))) => match header.frame_type {
                    FrameType::Welcome => {
                        let _ = goliath::codec::decode::<Welcome>("welcome", payload);
                    }
                    FrameType::StreamItem => {
                        let _ = goliath::codec::decode::<StreamItem>("stream item", payload);
                    }
                    FrameType::Error => {
                        let _ = String::from_utf8_lossy(payload);
                    }
                    _ => {
                        let _ = goliath::codec::decode::<Response>("response", payload);
                    }
                },
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(reader.capacity() <= 64 * 1024, "the reader stays bounded");
    }
});
