//! Feeds arbitrary bytes to the protocol's frame reader and message decoders, in arbitrary
//! chunks, as a server would receive them. Run with `cargo +nightly fuzz run frame_decoder`
//! from `fuzz/`. Crashes found become regression tests in `src/runtime/net/frame.rs`.
#![no_main]

#[path = "chunked_frames.rs"]
mod chunked_frames;

use goliath::runtime::net::frame::FrameType;
use goliath::runtime::net::{Hello, Request, RequestView};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    chunked_frames::for_each_frame(data, |frame_type, payload| match frame_type {
        FrameType::Hello => {
            let _ = goliath::codec::decode::<Hello>("hello", payload);
        }
        _ => {
            let _ = goliath::codec::decode::<Request>("request", payload);
            let _ = goliath::codec::decode_borrowed::<RequestView<'_>>("request", payload);
        }
    });
});
