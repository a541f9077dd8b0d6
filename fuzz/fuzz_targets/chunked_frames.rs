//! Shared by the protocol fuzz targets: bytes fed to a frame reader in arbitrary chunks, as
//! a socket delivers them.

use goliath::runtime::net::frame::{FrameReader, FrameType};

/// Feeds `data` (its first byte picks the chunk size) to a frame reader and hands every
/// whole frame to `on_frame`, until the bytes end or the reader refuses them; asserts the
/// reader stays bounded.
pub fn for_each_frame(data: &[u8], mut on_frame: impl FnMut(FrameType, &[u8])) {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
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
                Ok(Some((header, payload))) => on_frame(header.frame_type, payload),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(reader.capacity() <= 64 * 1024, "the reader stays bounded");
    }
}
