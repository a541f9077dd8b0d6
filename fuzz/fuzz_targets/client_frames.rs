//! Feeds arbitrary bytes to the frame reader and the answer decoders in arbitrary chunks, as
//! the CLI client and a `--connect` console receive them from a node (a buggy or hostile
//! node must not crash them). Run with `cargo +nightly fuzz run client_frames` from `fuzz/`.
//! Crashes found become regression tests in `src/runtime/net/messages.rs`.

#![no_main]

#[path = "chunked_frames.rs"]
mod chunked_frames;

use goliath::runtime::net::frame::{self, FrameType};
use goliath::runtime::net::{Response, ResponseView, StreamItem, Welcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A node's answer starts with the preamble: check it as the client does, then read on.
    if let Some(preamble) = data
        .get(1..=frame::PREAMBLE_LEN)
        .and_then(|bytes| <&[u8; frame::PREAMBLE_LEN]>::try_from(bytes).ok())
    {
        let _ = frame::check_preamble(preamble);
    }
    chunked_frames::for_each_frame(data, |frame_type, payload| match frame_type {
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
            let _ = goliath::codec::decode_borrowed::<ResponseView<'_>>("response", payload);
        }
    });
});
