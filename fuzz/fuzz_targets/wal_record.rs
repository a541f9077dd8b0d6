//! Feeds arbitrary bytes to the WAL's record decoder and recovery scan, as recovery would read
//! a damaged segment or checkpoint: as the last segment, as a middle one, and as a checkpoint.
//! Nothing may panic, allocate beyond the bytes given, or accept a record whose checksum is
//! wrong. Run with `cargo +nightly fuzz run wal_record` from `fuzz/`. Crashes found become
//! regression tests in `src/runtime/wal/recovery.rs`.
#![no_main]

use goliath::runtime::wal::record::{self, Record};
use goliath::runtime::wal::recovery::{self, State};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else { return };
    let max_payload = if flags & 1 == 0 { record::MAX_PAYLOAD } else { 64 };
    // Frame by frame from every offset the flags pick.
    let start = usize::from(flags >> 1).min(bytes.len());
    if let Ok(Some(frame)) = record::read_frame(bytes, start, max_payload) {
        assert!(frame.offset + record::HEADER_LEN + frame.payload.len() <= bytes.len());
        assert!(frame.payload.len() <= max_payload);
        let _ = Record::decode(&frame);
    }
    let _ = record::group_prefix(bytes, usize::from(flags) * 64);
    // The whole scan, applying what it accepts, as recovery does.
    for last in [true, false] {
        let mut state = State::new(16, 16);
        if let Ok(scan) = recovery::scan_segment(bytes, last, |frames| {
            state.apply_group(frames)
        }) {
            assert!(scan.end <= bytes.len());
        }
    }
    let _ = recovery::load_checkpoint(bytes, &mut State::new(16, 16));
    let _ = recovery::has_data(bytes);
});
