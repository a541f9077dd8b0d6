//! The write-ahead log on real files with fdatasync: torn tails, damage, impossible lengths,
//! fail-stop, recovery into a node (ids, attempts, history, keys, cancels, arena size), and
//! checkpoints keeping the disk bounded, also when the checkpointer is slower than the load.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goliath::config::Config;
use goliath::runtime::wal::record::{self, HEADER_LEN};
use goliath::runtime::wal::{
    self, Faults, IdRange, Record, SpecRecord, WalError, WalOptions, WalSync,
};
use goliath::runtime::{
    BatchError, CancelError, CancelOutcome, Node, NodeBuilder, StartError, Submission, SubmitError,
    TaskId, TaskQuery, TaskSpec, TaskState,
};

// ---------------------------------------------------------------- allocation watch

struct WatchingAllocator;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    if WATCHING.with(Cell::get) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only notes
// the largest size requested on a watching thread.
unsafe impl GlobalAlloc for WatchingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: WatchingAllocator = WatchingAllocator;

// ---------------------------------------------------------------- helpers

const SEGMENT: u64 = 64 << 10;

fn options(dir: &Path) -> WalOptions {
    WalOptions {
        dir: dir.to_path_buf(),
        sync: WalSync::Always,
        segment_size: SEGMENT,
        max_batch_delay: Duration::ZERO,
        checkpoint_every: 1 << 30,
        history_limit: 100_000,
        key_limit: 1000,
        faults: None,
    }
}

fn echo(text: &str) -> SpecRecord<'_> {
    SpecRecord {
        kind: Cow::Borrowed("echo"),
        numbers: [0, 0],
        text: Some(Cow::Borrowed(text)),
        timeout_ns: 0,
    }
}

/// Writes `count` accepted records (ids 1..=count), each acknowledged before the next.
fn write_log(dir: &Path, count: u64, text_len: usize) {
    write_log_with(options(dir), count, text_len);
}

/// [`write_log`] with other options.
fn write_log_with(options: WalOptions, count: u64, text_len: usize) {
    let log = wal::open(options, &|_| Ok(()))
        .expect("opens")
        .start()
        .expect("starts");
    for id in 1..=count {
        let text = format!("{id:>width$}", width = text_len);
        // A time whose encoding ends in a non-zero byte, so every byte of a record matters.
        log.append_accepted(
            &[IdRange {
                first: id,
                count: 1,
            }],
            &echo(&text),
            None,
            0x0102_0304_0506_0708,
        )
        .expect("appends")
        .wait()
        .expect("durable");
    }
    log.shutdown();
}

/// The ids a node would run again after recovering `dir`.
fn live_ids(dir: &Path) -> Result<Vec<u64>, WalError> {
    let recovery = wal::open(options(dir), &|_| Ok(()))?;
    let mut ids: Vec<u64> = recovery.state().live.keys().copied().collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Every record: file, offset, record.
fn records(dir: &Path) -> Vec<(PathBuf, u64, Record)> {
    let mut out = Vec::new();
    let inspection = wal::inspect(dir, |path, offset, record, _| {
        out.push((path.to_path_buf(), offset, record.clone()));
    })
    .expect("inspects");
    assert!(inspection.healthy(), "{inspection:?}");
    out
}

/// The accepted records: (file, offset, payload length, first id).
fn accepted(dir: &Path) -> Vec<(PathBuf, usize, usize, u64)> {
    records(dir)
        .into_iter()
        .filter_map(|(path, offset, record)| match record {
            Record::Accepted(accepted) => {
                let bytes = std::fs::read(&path).expect("read");
                let frame = record::read_frame(&bytes, offset as usize, record::MAX_PAYLOAD)
                    .expect("valid")
                    .expect("frame");
                Some((
                    path,
                    offset as usize,
                    frame.payload.len(),
                    accepted.ids[0].first,
                ))
            }
            _ => None,
        })
        .collect()
}

/// A path's file name, as messages name files.
fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a file name")
        .to_string_lossy()
        .to_string()
}

fn damaged(result: Result<Vec<u64>, WalError>) -> String {
    match result {
        Err(error @ WalError::Damaged { .. }) => error.to_string(),
        other => panic!("expected the log to be refused as damaged, got {other:?}"),
    }
}

// ---------------------------------------------------------------- torn tails and damage

#[test]
fn records_written_under_a_larger_segment_size_are_recovered_under_a_smaller_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 20 KB records: more than a 64 KiB segment allows (a quarter of it), fine in 1 MiB ones.
    let large = WalOptions {
        segment_size: 1 << 20,
        ..options(dir.path())
    };
    assert!(options(dir.path()).max_payload() < 20_000);
    write_log_with(large, 3, 20_000);
    assert_eq!(
        live_ids(dir.path()).expect("recovers with the smaller segment size"),
        vec![1, 2, 3],
        "acknowledged records, the last one included, are whole records whatever the new size"
    );
}

#[test]
fn cutting_the_last_record_at_every_byte_keeps_exactly_the_whole_records_before_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 5, 100);
    let accepted = accepted(dir.path());
    let (path, offset, payload, first) = accepted.last().cloned().expect("records");
    assert_eq!(first, 5);
    let original = std::fs::read(&path).expect("read");
    let whole = offset + HEADER_LEN + payload;
    for cut in offset..whole {
        // The record cut short inside the preallocated file (zeros after the cut), as a
        // crash during its write leaves it. A cut within its trailing zero bytes (an
        // accepted record ends with the `None` of its request print) changes nothing.
        if original[cut..whole].iter().all(|&b| b == 0) {
            continue;
        }
        let mut zeroed = original.clone();
        zeroed[cut..whole].fill(0);
        std::fs::write(&path, &zeroed).expect("write");
        assert_eq!(
            live_ids(dir.path()).expect("torn tail"),
            vec![1, 2, 3, 4],
            "zeroed from {cut}"
        );
    }
    // The file itself cut short, anywhere: no crash does that to a segment written whole
    // before use, so it is damage, not a torn tail.
    for cut in [offset, offset + 1, whole - 1, whole] {
        std::fs::write(&path, &original[..cut]).expect("write");
        let error = damaged(live_ids(dir.path()));
        assert!(
            error.contains("cut short (truncated)"),
            "cut at {cut}: {error}"
        );
    }
    std::fs::write(&path, &original).expect("write");
    assert_eq!(live_ids(dir.path()).expect("whole"), vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_zeroed_sector_inside_the_last_record_drops_only_that_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 4, 3000);
    let (path, offset, payload, _) = accepted(dir.path()).last().cloned().expect("records");
    let mut bytes = std::fs::read(&path).expect("read");
    let sector = (offset / 512 + 1) * 512;
    assert!(
        sector + 512 <= offset + HEADER_LEN + payload,
        "a whole sector inside the record"
    );
    bytes[sector..sector + 512].fill(0);
    std::fs::write(&path, &bytes).expect("write");
    // `wal verify` names it by where it begins and its size, as a named object in JSON.
    let inspection = wal::inspect(dir.path(), |_, _, _, _| {}).expect("inspects");
    let torn = inspection
        .files
        .iter()
        .find_map(|file| file.torn.clone())
        .expect("a torn tail reported");
    assert_eq!(torn.offset, offset as u64, "{torn:?}");
    assert!(torn.bytes >= 3000, "{torn:?}");
    let json = serde_json::to_value(&torn).expect("JSON");
    assert!(
        json["offset"].is_u64() && json["bytes"].is_u64() && json["what"].is_string(),
        "{json}"
    );
    let recovery = wal::open(options(dir.path()), &|_| Ok(())).expect("a torn tail is recovered");
    let mut ids: Vec<u64> = recovery.state().live.keys().copied().collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3]);
    assert!(
        recovery.summary().dropped_bytes >= 3000,
        "the dropped bytes are counted: {:?}",
        recovery.summary()
    );
}

/// Writes ids 1..=`first` each acknowledged alone, then ids after that in one write of many
/// records (`batched` appends gathered by a batch delay); returns the file and the offset
/// where that last write begins.
fn write_log_ending_in_one_large_write(dir: &Path, first: u64, batched: u64) -> (PathBuf, usize) {
    let log = wal::open(
        WalOptions {
            max_batch_delay: Duration::from_millis(100),
            ..options(dir)
        },
        &|_| Ok(()),
    )
    .expect("opens")
    .start()
    .expect("starts");
    for id in 1..=first {
        log.append_accepted(
            &[IdRange {
                first: id,
                count: 1,
            }],
            &echo(&"y".repeat(300)),
            None,
            1,
        )
        .expect("appends")
        .wait()
        .expect("durable");
    }
    let tickets: Vec<_> = (first + 1..=first + batched)
        .map(|id| {
            log.append_accepted(
                &[IdRange {
                    first: id,
                    count: 1,
                }],
                &echo(&"x".repeat(300)),
                None,
                1,
            )
            .expect("appends")
        })
        .collect();
    for ticket in tickets {
        ticket.wait().expect("durable");
    }
    log.shutdown();
    drop(log);
    // The newest segment with records (newer ones are spares holding a header), and where
    // its last write begins.
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("lists")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let (path, at, last_write) = segments
        .into_iter()
        .rev()
        .find_map(|path| {
            let bytes = std::fs::read(&path).expect("read");
            let (mut at, mut last_write, mut records) = (0, 0, 0);
            while let Ok(Some(frame)) = record::read_frame(&bytes, at, record::MAX_PAYLOAD) {
                if frame.after_sync {
                    last_write = at;
                }
                at += frame.len;
                records += 1;
            }
            (records > 1).then_some((path, at, last_write))
        })
        .expect("a segment with records");
    assert!(
        at - last_write > 8 * 512,
        "the last write spans many sectors: {last_write}..{at}"
    );
    (path, last_write)
}

#[test]
fn pages_of_the_last_write_lost_in_a_power_loss_drop_only_that_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, last_write) = write_log_ending_in_one_large_write(dir.path(), 5, 40);
    // The disk kept the write's later pages but not one in the middle: zeros, then whole
    // records. Those records were never acknowledged (their write did not finish), so the
    // log starts without them instead of refusing to start.
    let mut bytes = std::fs::read(&path).expect("read");
    let sector = (last_write / 512 + 4) * 512;
    bytes[sector..sector + 512].fill(0);
    std::fs::write(&path, &bytes).expect("write");
    let recovery =
        wal::open(options(dir.path()), &|_| Ok(())).expect("a torn last write is recovered");
    let mut ids: Vec<u64> = recovery.state().live.keys().copied().collect();
    ids.sort_unstable();
    assert!(
        ids.starts_with(&[1, 2, 3, 4, 5]) && ids.len() < 45,
        "every earlier write is kept, the damaged one is cut at the damage: {ids:?}"
    );
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "no gap");
}

#[test]
fn a_truncated_segment_refuses_to_start_instead_of_losing_what_it_held() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 40, 100);
    let (path, offset, _, _) = accepted(dir.path())[20].clone();
    // Cut at a record boundary: what is left reads as a clean end of a shorter file.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("opens");
    file.set_len(offset as u64).expect("truncates");
    drop(file);
    let error = damaged(live_ids(dir.path()));
    assert!(error.contains("cut short (truncated)"), "{error}");
    assert!(
        error.contains(&format!("at offset {offset}")),
        "named where it was cut: {error}"
    );
    // verify agrees, and counts the records before the cut as read, none as after damage.
    let inspection = wal::inspect(dir.path(), |_, _, _, _| {}).expect("inspects");
    let report = inspection
        .files
        .iter()
        .find(|f| f.file == path)
        .expect("the cut file");
    assert_eq!(
        report.damage.as_ref().map(|d| d.offset),
        Some(offset as u64)
    );
    assert_eq!(report.after_damage, 0);
    assert!(report.records >= 20, "{report:?}");
}

#[test]
fn a_flipped_byte_in_the_last_write_with_its_later_records_whole_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, last_write) = write_log_ending_in_one_large_write(dir.path(), 5, 40);
    // One byte of the last write's first record, its later records whole: no write cut
    // short leaves that (it leaves unwritten sectors, zeros), so the write may have been
    // acknowledged and the disk changed it since. It used to be dropped as a torn tail,
    // and the ids of its tasks handed out again.
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[last_write + 12] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    let error = damaged(live_ids(dir.path()));
    assert!(
        error.contains("damage to the disk's copy, not a write cut short"),
        "{error}"
    );
}

#[test]
fn damage_in_a_write_that_a_later_write_follows_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, last_write) = write_log_ending_in_one_large_write(dir.path(), 5, 40);
    // A sector of the write before the last one: that write was durable before the last
    // began, so this is damage to acknowledged records.
    let mut bytes = std::fs::read(&path).expect("read");
    let sector = (last_write / 512 - 1) * 512;
    bytes[sector..sector + 512].fill(0);
    std::fs::write(&path, &bytes).expect("write");
    let error = damaged(live_ids(dir.path()));
    assert!(error.contains("a later write begins at offset"), "{error}");
}

#[test]
fn a_bad_record_followed_by_whole_records_in_the_last_segment_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 6, 50);
    let (path, offset, _, first) = accepted(dir.path())[2].clone();
    assert_eq!(first, 3);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[offset + HEADER_LEN + 10] ^= 0x04;
    std::fs::write(&path, &bytes).expect("write");
    let message = damaged(live_ids(dir.path()));
    assert!(message.contains(&file_name(&path)), "{message}");
    assert!(message.contains(&format!("offset {offset}")), "{message}");
    assert!(message.contains("goliath wal verify"), "{message}");
}

/// Writes a log of three 64 KiB segments (1000 records of about 200 bytes) in `dir`; the
/// accepted records of the first, as [`accepted`] gives them.
fn accepted_in_the_first_of_three_segments(dir: &Path) -> Vec<(PathBuf, usize, usize, u64)> {
    write_log(dir, 1000, 180);
    let accepted = accepted(dir);
    let first_file = accepted[0].0.clone();
    assert!(
        accepted.iter().any(|a| a.0 != first_file),
        "the log spans segments"
    );
    accepted.into_iter().filter(|a| a.0 == first_file).collect()
}

#[test]
fn a_closed_segment_whose_last_records_became_zeros_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let in_first = accepted_in_the_first_of_three_segments(dir.path());
    // Its last three records and its end record zeroed, as pages a disk never wrote back
    // read: what is left ends cleanly at a record boundary.
    let (path, offset, _, _) = in_first[in_first.len() - 3].clone();
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[offset..].fill(0);
    std::fs::write(&path, &bytes).expect("write");
    let message = damaged(live_ids(dir.path()));
    assert!(message.contains(&file_name(&path)), "{message}");
    assert!(message.contains(&format!("offset {offset}")), "{message}");
    assert!(message.contains("without its end record"), "{message}");
    // `wal verify` finds it too.
    let inspection = wal::inspect(dir.path(), |_, _, _, _| {}).expect("inspects");
    let problem = inspection.first_problem().expect("damage found");
    assert!(problem.contains("without its end record"), "{problem}");
}

#[test]
fn stray_bytes_in_the_unused_spare_segment_do_not_make_the_segment_in_use_look_cut_short() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 300, 180);
    // The newest file is the spare the writer prepared: its header and nothing else.
    let segments: Vec<PathBuf> = {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "seg"))
            .collect();
        paths.sort();
        paths
    };
    let spare = segments.last().expect("segments").clone();
    let in_spare = records(dir.path())
        .into_iter()
        .filter(|(path, _, _)| *path == spare)
        .count();
    assert_eq!(in_spare, 1, "the spare holds its header only");
    // Bytes that no write of the log put there, well after the header: the writer never
    // wrote into the spare (the segment before it has no end record), so none of them were
    // acknowledged.
    let mut bytes = std::fs::read(&spare).expect("read");
    for (index, byte) in bytes[8192..8192 + 600].iter_mut().enumerate() {
        *byte = (index as u8).wrapping_mul(37) | 1;
    }
    std::fs::write(&spare, &bytes).expect("write");
    assert_eq!(
        live_ids(dir.path()).expect("the node starts"),
        (1..=300).collect::<Vec<u64>>()
    );
    let inspection = wal::inspect(dir.path(), |_, _, _, _| {}).expect("inspects");
    assert!(
        inspection.first_problem().is_none(),
        "{:?}",
        inspection.first_problem()
    );
}

#[test]
fn a_flipped_bit_in_a_middle_segment_refuses_to_start_naming_file_and_offset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let in_first = accepted_in_the_first_of_three_segments(dir.path());
    let (path, offset, payload, _) = in_first[in_first.len() / 2].clone();
    let mut bytes = std::fs::read(&path).expect("read");
    let middle = offset + HEADER_LEN + payload / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, &bytes).expect("write");
    let message = damaged(live_ids(dir.path()));
    assert!(message.contains(&file_name(&path)), "{message}");
    assert!(message.contains(&format!("offset {offset}")), "{message}");
    assert!(message.contains("checksum"), "{message}");
    assert!(message.contains("goliath wal verify"), "{message}");
}

#[test]
fn deleted_newest_segments_refuse_to_start_instead_of_losing_their_tasks() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 1000, 180);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("lists")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "the log spans segments: {segments:?}");
    let newest = segments.last().expect("a segment").clone();
    let refusal = |dir: &Path| match live_ids(dir) {
        Err(error @ WalError::Missing { .. }) => error.to_string(),
        other => panic!("a log without its newest segments must be refused, got {other:?}"),
    };
    // The newest two gone: nothing later is left to show a gap.
    for path in &segments[segments.len() - 2..] {
        std::fs::remove_file(path).expect("remove");
    }
    let message = refusal(dir.path());
    assert!(
        message.contains(&file_name(&segments[segments.len() - 2])),
        "{message}"
    );
    let inspection = wal::inspect(dir.path(), |_, _, _, _| {}).expect("inspects");
    assert!(!inspection.healthy(), "{inspection:?}");
    assert!(
        inspection
            .problems
            .iter()
            .any(|p| p.contains(&file_name(&newest)) && p.contains("missing")),
        "{inspection:?}"
    );
    // A newest-segment naming a segment far beyond: reported as one run, at once.
    let saved = std::fs::read_to_string(dir.path().join("newest-segment")).expect("reads");
    let log_id = saved
        .split_whitespace()
        .nth(1)
        .expect("a log id")
        .to_string();
    std::fs::write(
        dir.path().join("newest-segment"),
        format!("wal-7fffffffffffffff.seg {log_id}\n"),
    )
    .expect("write");
    let inspection = wal::inspect(dir.path(), |_, _, _, _| {}).expect("inspects");
    assert!(
        inspection
            .problems
            .iter()
            .any(|p| p.contains("to wal-7fffffffffffffff.seg are missing")),
        "{inspection:?}"
    );
    std::fs::write(dir.path().join("newest-segment"), saved).expect("write");
    // Every segment gone (`rm wal-*.seg`): still refused, not taken for a new log.
    for path in &segments[..segments.len() - 2] {
        std::fs::remove_file(path).expect("remove");
    }
    let message = refusal(dir.path());
    assert!(message.contains(&file_name(&segments[0])), "{message}");
}

#[test]
fn a_segment_copied_in_from_another_data_directory_refuses_to_start() {
    let ours = tempfile::tempdir().expect("temp dir");
    let theirs = tempfile::tempdir().expect("temp dir");
    write_log(ours.path(), 1000, 180);
    write_log(theirs.path(), 1000, 180);
    // Same name, same size, a valid segment in itself: only its log tells it apart.
    let name = "wal-0000000000000002.seg";
    std::fs::copy(theirs.path().join(name), ours.path().join(name)).expect("copy");
    let message = damaged(live_ids(ours.path()));
    assert!(message.contains(name), "{message}");
    assert!(message.contains("another write-ahead log"), "{message}");
    let inspection = wal::inspect(ours.path(), |_, _, _, _| {}).expect("inspects");
    assert!(!inspection.healthy(), "{inspection:?}");
    // Each directory's own log still starts.
    assert_eq!(live_ids(theirs.path()).expect("recovers").len(), 1000);
    // Copied under another number: named as another log's, not as a numbering slip.
    let renamed = tempfile::tempdir().expect("temp dir");
    write_log(renamed.path(), 1000, 180);
    std::fs::copy(
        theirs.path().join("wal-0000000000000003.seg"),
        renamed.path().join(name),
    )
    .expect("copy");
    let message = damaged(live_ids(renamed.path()));
    assert!(message.contains("another write-ahead log"), "{message}");
}

#[test]
fn a_checkpoint_copied_in_from_another_data_directory_refuses_to_start() {
    let checkpoints = |dir: &Path| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("lists")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "ckpt"))
            .collect();
        found.sort();
        found
    };
    let theirs = tempfile::tempdir().expect("temp dir");
    write_log(theirs.path(), 1000, 180);
    // A restart checkpoints everything: theirs now ends in a checkpoint numbered past
    // every segment of ours.
    wal::open(options(theirs.path()), &|_| Ok(()))
        .expect("opens")
        .start()
        .expect("starts")
        .shutdown();
    let their_newest = checkpoints(theirs.path()).pop().expect("a checkpoint");
    let name = their_newest.file_name().expect("name").to_owned();
    for same_name in [false, true] {
        let ours = tempfile::tempdir().expect("temp dir");
        write_log(ours.path(), 1000, 180);
        let target = if same_name {
            // Over our own checkpoint, under its name.
            checkpoints(ours.path()).pop().expect("our checkpoint")
        } else {
            ours.path().join(&name)
        };
        std::fs::copy(&their_newest, &target).expect("copy");
        let message = damaged(live_ids(ours.path()));
        assert!(
            message.contains(&file_name(&target)),
            "names the checkpoint: {message}"
        );
        assert!(message.contains("another write-ahead log"), "{message}");
        let mut ours_read = 0;
        let inspection = wal::inspect(ours.path(), |path, _, record, _| {
            if path != target && matches!(record, Record::Accepted(_)) {
                ours_read += 1;
            }
        })
        .expect("inspects");
        assert!(!inspection.healthy(), "{inspection:?}");
        if same_name {
            continue;
        }
        // Numbered past our checkpoint, theirs hid every file of ours from `verify`, and
        // `repair` then kept nothing (a log of 1,000 tasks in flight restarted empty). Our
        // own files are still read, and repair keeps all their tasks.
        assert_eq!(ours_read, 1000, "{inspection:?}");
        assert!(
            inspection.files.iter().any(|f| f.file == target
                && f.damage
                    .as_ref()
                    .is_some_and(|d| d.what.contains("move it out"))),
            "{inspection:?}"
        );
        let repaired = wal::repair::repair(ours.path(), 100_000, 1000).expect("repairs");
        assert_eq!(repaired.foreign, vec![file_name(&target)], "{repaired:?}");
        assert_eq!(repaired.in_flight, 1000, "{repaired:?}");
        assert!(
            repaired.damage.is_empty(),
            "nothing of ours lost: {repaired:?}"
        );
        assert_eq!(repaired.ids_continue_after, 1000);
        assert_eq!(
            live_ids(ours.path()).expect("recovers"),
            (1..=1000).collect::<Vec<u64>>()
        );
    }
}

/// Starts on `dir` `times` times with room for the checkpoint but not the segment after it
/// (a service manager restarting a node on a full disk): each is refused for lack of space.
fn starts_refused_with_room_for_the_checkpoint_only(dir: &Path, times: usize) {
    for _ in 0..times {
        let mut tight = options(dir);
        tight.faults = Some(Arc::new(
            Faults::parse(&format!("enospc_after_bytes={}", SEGMENT / 2)).expect("parses"),
        ));
        let refused = wal::open(tight, &|_| Ok(()))
            .expect("reads")
            .start()
            .expect_err("no room for the segment");
        assert!(matches!(refused, WalError::NoSpace { .. }), "{refused:?}");
    }
}

#[test]
fn a_start_on_a_full_disk_says_how_much_space_it_needs() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 200, 180);
    let mut full = options(dir.path());
    full.faults = Some(Arc::new(
        Faults::parse("enospc_after_bytes=100").expect("parses"),
    ));
    let refused = wal::open(full, &|_| Ok(()))
        .expect("reading needs no space")
        .start()
        .expect_err("no room for the checkpoint");
    assert!(matches!(refused, WalError::NoSpace { .. }), "{refused:?}");
    let message = refused.to_string();
    assert!(message.contains("free at least"), "{message}");
    // Nothing was lost: with room, the same log starts.
    assert_eq!(live_ids(dir.path()).expect("recovers").len(), 200);
    // Room for the checkpoint but not the segment after it, twice (a service manager
    // restarting the node on a full disk): each start rewrites the same checkpoint, and the
    // directory still starts once there is room.
    starts_refused_with_room_for_the_checkpoint_only(dir.path(), 2);
    assert_eq!(live_ids(dir.path()).expect("recovers").len(), 200);
    wal::open(options(dir.path()), &|_| Ok(()))
        .expect("opens")
        .start()
        .expect("starts once there is room")
        .shutdown();
}

#[test]
fn a_removed_checkpoint_is_named_as_such() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 1000, 180);
    // The checkpoint and the first segment it covered gone: what is missing is the
    // checkpoint, not the segment alone.
    std::fs::remove_file(dir.path().join("checkpoint-0000000000000001.ckpt")).expect("remove");
    std::fs::remove_file(dir.path().join("wal-0000000000000001.seg")).expect("remove");
    let refused = live_ids(dir.path()).expect_err("refused");
    let message = refused.to_string();
    assert!(
        message
            .contains("the checkpoint that covered the segments before wal-0000000000000002.seg"),
        "{message}"
    );
    assert!(!message.contains(") ("), "one aside at a time: {message}");
    assert!(
        message.contains(&format!(
            "goliath wal repair --data-dir {}",
            dir.path().display()
        )),
        "the repair named for this directory, not the default one: {message}"
    );
    let inspection = wal::inspect(dir.path(), |_, _, _, _| {}).expect("inspects");
    assert!(
        inspection
            .problems
            .iter()
            .any(|p| p.contains("the checkpoint that covered")),
        "{inspection:?}"
    );
}

#[test]
fn a_4_gib_record_length_is_an_error_without_allocating_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 1000, 180);
    let accepted = accepted(dir.path());
    let (path, offset, _, _) = accepted[10].clone();
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[offset..offset + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");
    LARGEST.store(0, Ordering::SeqCst);
    WATCHING.with(|w| w.set(true));
    let result = live_ids(dir.path());
    WATCHING.with(|w| w.set(false));
    let message = damaged(result);
    assert!(message.contains("4294967295"), "{message}");
    assert!(message.contains(&format!("offset {offset}")), "{message}");
    let largest = LARGEST.load(Ordering::SeqCst);
    assert!(
        largest < 1 << 20,
        "recovery allocated {largest} bytes at once; it reads 64 KiB segments"
    );
}

// ---------------------------------------------------------------- fail-stop

#[test]
fn a_failed_fdatasync_stops_every_acknowledgement_for_good() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = options(dir.path());
    // Start-up takes six fdatasyncs (checkpoint, segment, spare; each file and directory).
    let faults = Arc::new(Faults::parse("fsync_fail_after=10").expect("parses"));
    opts.faults = Some(faults.clone());
    let log = wal::open(opts, &|_| Ok(()))
        .expect("opens")
        .start()
        .expect("starts");
    let mut acknowledged = Vec::new();
    let failure = loop {
        let id = acknowledged.len() as u64 + 1;
        let ticket = log
            .append_accepted(
                &[IdRange {
                    first: id,
                    count: 1,
                }],
                &echo("x"),
                None,
                0,
            )
            .expect("appends until the failure");
        match ticket.wait() {
            Ok(()) => acknowledged.push(id),
            Err(error) => break error,
        }
        assert!(acknowledged.len() < 100, "the injected failure never came");
    };
    assert!(
        failure.to_string().contains("Input/output error"),
        "{failure}"
    );
    // Written before its fdatasync failed: a restart may find it, and its client is told so.
    assert_eq!(failure.fate, wal::Unacknowledged::MaybeWritten);
    assert!(failure.fate_note().contains("may be on disk"));
    assert!(log.failure().is_some());
    assert!(!log.snapshot().healthy);
    // Nothing more is taken, and nothing already waiting is acknowledged.
    assert!(
        log.append_accepted(
            &[IdRange {
                first: 999,
                count: 1
            }],
            &echo("y"),
            None,
            0
        )
        .is_err()
    );
    // The log's threads that sync (writer, segment preparer, checkpointer) may each have had
    // one sync fail on their way to stopping (the preparer finishes the spare segment it was
    // writing); none tries again. A thread that retried would make many more in the time
    // given here; once the log is shut down (its threads joined) the count is final.
    std::thread::sleep(Duration::from_millis(100));
    log.shutdown();
    drop(log);
    let failed = faults.failed_syncs();
    assert!(
        (1..=3).contains(&failed),
        "{failed} failed fdatasyncs: no fdatasync is retried"
    );
    // Every acknowledged record is on disk.
    let ids = live_ids(dir.path()).expect("recovers");
    for id in &acknowledged {
        assert!(ids.contains(id), "acknowledged {id} lost");
    }
}

/// A log on `opts` whose writer waits `batch_delay` before each batch, and `count`
/// accepted records of about 180 bytes appended to it at once (ids 1..=count, until an
/// append is refused), each with its ticket: they go out in batches that run over
/// segments' ends.
fn log_with_batched_appends(
    mut opts: WalOptions,
    batch_delay: Duration,
    count: u64,
) -> (wal::Wal, Vec<(u64, wal::Ticket)>) {
    opts.max_batch_delay = batch_delay;
    let log = wal::open(opts, &|_| Ok(()))
        .expect("opens")
        .start()
        .expect("starts");
    let text = "x".repeat(150);
    let mut tickets = Vec::new();
    for id in 1..=count {
        match log.append_accepted(
            &[IdRange {
                first: id,
                count: 1,
            }],
            &echo(&text),
            None,
            0,
        ) {
            Ok(ticket) => tickets.push((id, ticket)),
            Err(_) => break,
        }
    }
    (log, tickets)
}

#[test]
fn a_batch_cut_by_a_segment_that_cannot_be_created_acknowledges_what_the_closed_segment_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = options(dir.path());
    // Segments 1 and 2 are created; the disk is full for segment 3. 2,000 records fill
    // three segments of 64 KiB.
    opts.faults = Some(Arc::new(
        Faults::parse("segment_fail_from=3").expect("parses"),
    ));
    let (log, tickets) = log_with_batched_appends(opts, Duration::from_millis(20), 2_000);
    let mut acknowledged = Vec::new();
    let mut not_written = Vec::new();
    let mut maybe_written = 0;
    for (id, ticket) in &tickets {
        match ticket.wait() {
            Ok(()) => acknowledged.push(*id),
            Err(error) => {
                assert!(
                    error.to_string().contains("wal-0000000000000003.seg"),
                    "{error}"
                );
                match error.fate {
                    wal::Unacknowledged::NotWritten => not_written.push(*id),
                    wal::Unacknowledged::MaybeWritten => maybe_written += 1,
                }
            }
        }
    }
    assert!(log.failure().is_some(), "segment 3 was never needed");
    assert_eq!(maybe_written, 0, "no write or fdatasync failed");
    log.shutdown();
    drop(log);
    let ids = live_ids(dir.path()).expect("recovers");
    // Exactly the acknowledged records are in the log: the records the closing of segment
    // 2 made durable are acknowledged (before, their clients heard that nothing was, and
    // found them after the restart), and the records said not to be written are not there.
    assert_eq!(ids, acknowledged);
    assert!(!not_written.is_empty(), "some records waited for segment 3");
    assert!(not_written.iter().all(|id| !ids.contains(id)));
}

/// A disk that fills between segments: the log still works, but its state says that the
/// next segment could not be made ready, and what happens when the current one fills.
#[test]
fn a_next_segment_that_cannot_be_created_ahead_shows_in_the_logs_state_while_it_works() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = options(dir.path());
    // Segment 1 is created at the start; the disk is full for segment 2, asked for at once.
    opts.faults = Some(Arc::new(
        Faults::parse("segment_fail_from=2").expect("parses"),
    ));
    let log = wal::open(opts, &|_| Ok(()))
        .expect("opens")
        .start()
        .expect("starts");
    let problem = common::eventually(|| {
        log.snapshot()
            .next_segment_error
            .ok_or_else(|| "no problem shown".to_string())
    });
    for part in [
        "wal-0000000000000002.seg",
        "No space left on device",
        "ahead of time",
        "the log fails",
        "free space in",
    ] {
        assert!(problem.contains(part), "{part:?} missing from: {problem}");
    }
    let ticket = log
        .append_accepted(
            &[IdRange { first: 1, count: 1 }],
            &echo("still taken"),
            None,
            0,
        )
        .expect("appends");
    ticket
        .wait()
        .expect("durable: the current segment has room");
    let snapshot = log.snapshot();
    assert!(snapshot.healthy, "{snapshot:?}");
    assert_eq!(
        snapshot.next_segment_error.as_deref(),
        Some(problem.as_str())
    );
    // Once the current segment fills, the log fails, and its failure alone is shown.
    let text = "x".repeat(150);
    for id in 2..2_000 {
        let Ok(ticket) = log.append_accepted(
            &[IdRange {
                first: id,
                count: 1,
            }],
            &echo(&text),
            None,
            0,
        ) else {
            break;
        };
        if ticket.wait().is_err() {
            break;
        }
    }
    let failed = log.snapshot();
    assert!(
        !failed.healthy,
        "2,000 records of 150 bytes overflow a 64 KiB segment, and the next cannot be created: {failed:?}"
    );
    assert_eq!(failed.next_segment_error, None, "{failed:?}");
    log.shutdown();
}

#[test]
fn records_per_fsync_counts_the_fsyncs_that_close_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Appended within the writer's wait: one batch of some 180 KiB, over three segments of
    // 64 KiB, closing two of them.
    let (log, tickets) =
        log_with_batched_appends(options(dir.path()), Duration::from_millis(50), 1_000);
    assert_eq!(tickets.len(), 1_000);
    for (_, ticket) in &tickets {
        ticket.wait().expect("durable");
    }
    let snapshot = log.snapshot();
    assert!(snapshot.window_fsyncs >= 3, "{snapshot:?}");
    assert!(
        snapshot.records_per_fsync * snapshot.window_fsyncs as f64 <= 1_000.5,
        "{} records per fsync over {} fsyncs, for 1,000 records",
        snapshot.records_per_fsync,
        snapshot.window_fsyncs
    );
    log.shutdown();
}

// ---------------------------------------------------------------- recovery into a node

fn durable_config(dir: &Path, slots: usize) -> Config {
    let mut config = common::config(1, slots);
    config.wal.enabled = true;
    config.wal.segment_size = SEGMENT;
    config.wal.checkpoint_every = SEGMENT * 2;
    config.node.data_dir = dir.display().to_string();
    config.shutdown.grace = Duration::ZERO;
    config
}

/// Waits until nothing is in flight (a history this small can drop a task before a wait for
/// that one task looks).
fn all_finished(node: &Node) {
    common::eventually(|| {
        (node.in_flight() == 0)
            .then_some(())
            .ok_or_else(|| format!("{} in flight", node.in_flight()))
    });
}

#[test]
fn tasks_recovered_finished_give_way_to_newer_ones_within_the_history_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = durable_config(dir.path(), 64);
    config.history.tasks = 3;
    let before: Vec<TaskId> = {
        let node = Node::start(config.clone()).expect("starts");
        let ids = node.submit_text("fib 3 x3").expect("submits");
        all_finished(&node);
        node.shutdown(Duration::ZERO);
        ids
    };
    let node = Node::start(config).expect("restarts");
    let listed = |node: &Node| -> Vec<TaskId> {
        node.tasks(TaskQuery {
            state: None,
            limit: 100,
            before: None,
        })
        .iter()
        .map(|task| task.id)
        .collect()
    };
    let mut expected = before.clone();
    expected.reverse();
    assert_eq!(listed(&node), expected, "the recovered history");
    let newer = node.submit_text("fib 3 x2").expect("submits");
    all_finished(&node);
    let shown = listed(&node);
    assert_eq!(shown.len(), 3, "history.tasks = 3: {shown:?}");
    assert_eq!(shown, [newer[1], newer[0], before[2]]);
    assert!(
        node.task(before[0]).is_err(),
        "the oldest recovered task has aged out as any other"
    );
}

#[test]
fn a_restarted_node_keeps_ids_attempts_submission_times_history_keys_and_cancels() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Submitted under a key before the restart, and again after it.
    let batch = [
        Submission {
            spec: TaskSpec::echo("a"),
            copies: 2,
        },
        Submission {
            spec: TaskSpec::sleep(Duration::from_secs(600)),
            copies: 1,
        },
    ];
    let (sleeping, submitted_unix_us, finished, cancelled, keyed) = {
        let node = Node::start(durable_config(dir.path(), 64)).expect("starts");
        let finished = node.submit(TaskSpec::fib(20)).expect("submits");
        common::wait_finished(&node, finished);
        let sleeping = node
            .submit_copies(&TaskSpec::sleep(Duration::from_secs(600)), 3)
            .expect("submits");
        let submitted_unix_us = node.task(sleeping[0]).expect("known").submitted_unix_us;
        let cancelled = node
            .submit(TaskSpec::sleep(Duration::from_secs(600)))
            .expect("submits");
        common::wait_running(&node, cancelled);
        assert_eq!(node.cancel(cancelled), Ok(CancelOutcome::Requested));
        common::wait_finished(&node, cancelled);
        let keyed = node
            .submit_batch(&batch, Some("key-1"), None)
            .expect("submits");
        for echo in &keyed.ids[..2] {
            common::wait_finished(&node, *echo);
        }
        node.shutdown(Duration::ZERO);
        (sleeping, submitted_unix_us, finished, cancelled, keyed.ids)
    };
    // The restart is at least this much later than the submission, so a submission time
    // taken from the restart cannot pass for the original.
    std::thread::sleep(Duration::from_millis(20));
    let node = Node::start(durable_config(dir.path(), 64)).expect("restarts");
    for id in &sleeping {
        let info = node.task(*id).expect("recovered");
        assert!(!info.state.is_finished(), "{info:?}");
        assert_eq!(info.attempt, 2, "run again with attempt + 1");
        assert_eq!(info.spec, "sleep 10m");
        assert_eq!(
            info.submitted_unix_us, submitted_unix_us,
            "a recovered task was submitted when it was first accepted, not at the restart"
        );
    }
    assert_eq!(node.cancel(sleeping[0]), Ok(CancelOutcome::Requested));
    common::wait_finished(&node, sleeping[0]);
    assert_eq!(
        node.task(sleeping[0]).expect("finished").submitted_unix_us,
        submitted_unix_us,
        "and its history entry says so too"
    );
    let info = node.task(finished).expect("back in the history");
    assert_eq!(info.state, TaskState::Succeeded);
    assert_eq!(
        info.output,
        Some(goliath::runtime::TaskOutput::Number(6765))
    );
    assert_eq!(
        node.task(cancelled).expect("kept").state,
        TaskState::Cancelled
    );
    let again = node
        .submit_batch(&batch, Some("key-1"), None)
        .expect("duplicate");
    assert!(again.duplicate);
    assert_eq!(again.ids, keyed, "the key still names the same tasks");
    let other = node.submit_batch(
        &[Submission {
            spec: TaskSpec::echo("other"),
            copies: 3,
        }],
        Some("key-1"),
        None,
    );
    match other {
        Err(BatchError {
            submitted,
            error: SubmitError::Invalid(message),
        }) => {
            assert!(submitted.is_empty());
            assert!(
                message.contains("`echo a`") && message.contains("`echo other` now"),
                "the recovered key compares its request: {message}"
            );
        }
        other => panic!("other work under a recovered key: {other:?}"),
    }
    // More work than the key named (its first tasks the same) is other work too.
    let mut more = batch.to_vec();
    more.push(Submission {
        spec: TaskSpec::sleep(Duration::from_secs(3600)),
        copies: 1,
    });
    match node.submit_batch(&more, Some("key-1"), None) {
        Err(BatchError {
            submitted,
            error: SubmitError::Invalid(message),
        }) => {
            assert!(submitted.is_empty());
            assert!(
                message.contains("3 tasks starting `echo a` then, 4 tasks"),
                "{message}"
            );
        }
        other => panic!("more work under a recovered key: {other:?}"),
    }
    let newest = *keyed.iter().max().expect("ids");
    let fresh = node.submit(TaskSpec::fib(1)).expect("submits");
    assert!(
        fresh > newest,
        "new ids continue after the old ones: {fresh} > {newest}"
    );
    let listed = node.tasks(goliath::runtime::TaskQuery {
        state: Some(TaskState::Succeeded),
        limit: 100,
        before: None,
    });
    assert!(
        listed.iter().any(|t| t.id == finished),
        "listed too: {listed:?}"
    );
    let snapshot = node.snapshot(0);
    assert_eq!(
        snapshot.counts.submitted, 1,
        "the one task submitted since the restart (the keyed batch was a duplicate), not the recovered ones"
    );
    let wal = snapshot.wal.expect("a durable node reports its WAL");
    assert!(wal.healthy);
    assert_eq!(
        wal.recovered.requeued_queued + wal.recovered.requeued_running,
        4
    );
    assert_eq!(wal.data_dir, dir.path().display().to_string());
}

#[test]
fn a_smaller_arena_that_cannot_hold_the_recovered_tasks_is_refused_and_a_larger_one_works() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ids = {
        let node = Node::start(durable_config(dir.path(), 8)).expect("starts");
        let ids = node
            .submit_copies(&TaskSpec::sleep(Duration::from_secs(600)), 8)
            .expect("submits");
        node.shutdown(Duration::ZERO);
        ids
    };
    match Node::start(durable_config(dir.path(), 4)) {
        Err(error @ StartError::Recovery(_)) => {
            let message = error.to_string();
            assert!(message.contains("arena.slots"), "{message}");
            assert!(message.contains('8'), "says what would fit: {message}");
        }
        other => panic!("expected a recovery error, got {other:?}"),
    }
    let node = Node::start(durable_config(dir.path(), 16)).expect("a larger arena works");
    for id in &ids {
        let info = node.task(*id).expect("same id");
        assert!(!info.state.is_finished(), "{info:?}");
        assert_eq!(info.spec, "sleep 10m");
    }
    assert_eq!(node.in_flight(), 8);
    // The refused start changed nothing: the log still holds the same tasks.
    drop(node);
    let node = Node::start(durable_config(dir.path(), 8)).expect("original size");
    assert_eq!(node.in_flight(), 8);
}

#[test]
fn the_arena_size_a_refused_recovery_names_is_one_that_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        // Ids 1, 5 and 6 in flight: in 4 slots, 1 and 5 would share the first.
        let node = Node::start(durable_config(dir.path(), 8)).expect("starts");
        let hour = TaskSpec::sleep(Duration::from_secs(3600));
        node.submit_copies(&hour, 1).expect("submits");
        for id in node.submit_text("fib 1 x3").expect("submits") {
            common::wait_finished(&node, id);
        }
        node.submit_copies(&hour, 2).expect("submits");
        node.shutdown(Duration::ZERO);
    }
    let named = match Node::start(durable_config(dir.path(), 2)) {
        Err(error @ StartError::Recovery(_)) => {
            let message = error.to_string();
            let named = message
                .split("arena.slots = ")
                .nth(2)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|size| size.parse::<usize>().ok());
            named.unwrap_or_else(|| panic!("names a size to start with: {message}"))
        }
        other => panic!("expected a recovery error, got {other:?}"),
    };
    assert_eq!(named, 8, "4 slots would not hold ids 1 and 5 apart");
    let node = Node::start(durable_config(dir.path(), named)).expect("the size named works");
    assert_eq!(node.in_flight(), 3);
}

#[test]
fn a_node_whose_lock_file_is_removed_or_replaced_acknowledges_nothing_more() {
    for replace in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let node = Node::start(durable_config(dir.path(), 64)).expect("starts");
        node.submit_text("fib 3")
            .expect("acknowledged while the directory is its own");
        let lock = dir.path().join("LOCK");
        std::fs::remove_file(&lock).expect("remove LOCK");
        if replace {
            // As a second node would, once the first's LOCK is gone.
            std::fs::write(&lock, b"99999\n").expect("a new LOCK");
        }
        // The writer looks before a batch, at most once a millisecond: past that, the next
        // submission finds out.
        std::thread::sleep(Duration::from_millis(5));
        let refused = node
            .submit_text("fib 3")
            .expect_err("nothing is acknowledged once the directory is not its own");
        let message = refused.to_string();
        let expected = if replace {
            "was replaced"
        } else {
            "was removed while this node ran"
        };
        assert!(message.contains(expected), "{message}");
        assert!(node.submit_text("fib 3").is_err(), "and nothing after it");
    }
}

#[test]
fn an_idle_node_whose_segment_is_deleted_stops_acknowledging_without_a_submission() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(durable_config(dir.path(), 64)).expect("starts");
    node.submit_text("fib 3").expect("acknowledged");
    for entry in std::fs::read_dir(dir.path()).expect("lists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "seg") {
            std::fs::remove_file(&path).expect("remove a segment");
        }
    }
    // Nobody submits: the idle writer looks on its own (once a second).
    let failure = common::eventually(|| {
        node.snapshot(0)
            .wal
            .and_then(|wal| wal.failure)
            .ok_or_else(|| "the log still reports healthy".to_string())
    });
    assert!(failure.contains("was deleted"), "{failure}");
    assert!(node.submit_text("fib 3").is_err());
}

/// A node for the disk-bound tests: small segments and checkpoints, a short history.
fn compacting_config(dir: &Path) -> Config {
    let mut config = durable_config(dir, 1 << 12);
    config.history.tasks = 100;
    config.node.idempotency_keys = 100;
    config.scheduler.workers = goliath::config::WorkerCount::Fixed(2);
    config
}

/// `rounds` batches of 500 tasks, each waited for; returns the most disk the log used at the
/// end of a round and the last task's id.
fn sustained_load(node: &Node, rounds: usize) -> (u64, TaskId) {
    let mut largest = 0;
    let mut last = TaskId(0);
    for round in 0..rounds {
        let batch = [Submission {
            spec: TaskSpec::echo(&format!("round {round} with some text to fill the log")),
            copies: 500,
        }];
        let outcome = node
            .submit_batch(&batch, Some(&format!("round-{round}")), None)
            .expect("submits");
        last = *outcome.ids.last().expect("ids");
        let deadline = Instant::now() + common::LIVENESS;
        while node.in_flight() > 0 {
            assert!(Instant::now() < deadline, "tasks never finished");
            std::thread::sleep(Duration::from_millis(1));
        }
        let wal = node.snapshot(0).wal.expect("wal");
        largest = largest.max(wal.disk_bytes);
    }
    (largest, last)
}

/// Stops `node`, starts a new one on the same directory, and checks that the task `last`
/// came back finished.
fn restart_and_find(node: Node, config: Config, last: TaskId) -> Node {
    node.shutdown(Duration::ZERO);
    drop(node);
    let node = Node::start(config).expect("restarts");
    let info = node.task(last).expect("the newest task is in the history");
    assert_eq!(info.state, TaskState::Succeeded);
    node
}

#[test]
fn inspecting_beside_a_node_whose_checkpoints_remove_segments_never_fails_on_a_healthy_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(compacting_config(dir.path())).expect("starts");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let inspections = std::thread::scope(|scope| {
        let inspector = scope.spawn(|| {
            let mut inspections = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // As `wal verify` and `wal dump` do, beside the running node: segments the
                // checkpointer removes meanwhile must not look like a damaged log.
                let inspection = wal::inspect(dir.path(), |_, _, _, _| {})
                    .unwrap_or_else(|error| panic!("inspection {inspections}: {error}"));
                assert!(
                    inspection.healthy(),
                    "inspection {inspections}: {:?}",
                    inspection.first_problem()
                );
                inspections += 1;
            }
            inspections
        });
        sustained_load(&node, 40);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        inspector.join()
    });
    let inspections = match inspections {
        Ok(count) => count,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let checkpoints = node.snapshot(0).wal.expect("wal").checkpoints;
    assert!(
        inspections > 10 && checkpoints > 5,
        "{inspections} inspections across {checkpoints} checkpoints"
    );
}

#[test]
fn checkpoints_keep_the_disk_bounded_under_sustained_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = compacting_config(dir.path());
    let bound = config.wal.checkpoint_every + 4 * SEGMENT + (256 << 10);
    let node = Node::start(config.clone()).expect("starts");
    let (largest, last) = sustained_load(&node, 60);
    // 30,000 tasks wrote ~90,000 records (several MiB); the checkpointer deletes covered
    // segments, and the writer waits for it when it falls behind (the test below). Wait for
    // it to catch up before the final figure.
    let deadline = Instant::now() + common::LIVENESS;
    loop {
        let wal = node.snapshot(0).wal.expect("wal");
        assert!(wal.checkpoints > 2, "checkpoints were written: {wal:?}");
        if wal.disk_bytes <= bound {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "disk use stayed at {} > {bound}",
            wal.disk_bytes
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let written = node.snapshot(0).wal.expect("wal").bytes;
    assert!(
        written > 4 * bound,
        "the load wrote {written} bytes, more than the bound"
    );
    assert!(
        largest <= 3 * bound,
        "disk use peaked at {largest} (bound {bound})"
    );
    let node = restart_and_find(node, config, last);
    assert!(
        node.snapshot(0)
            .wal
            .expect("wal")
            .recovered
            .checkpoint
            .is_some()
    );
    let fresh = node.submit(TaskSpec::fib(1)).expect("submits");
    assert!(fresh > last);
}

#[test]
fn a_failing_checkpoint_names_its_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = compacting_config(dir.path());
    // A directory in the way of each of the next checkpoints' temporary files.
    // The first, written at the start, is let through.
    for seq in 2..200u64 {
        std::fs::create_dir(dir.path().join(format!("checkpoint-{seq:016x}.ckpt.tmp")))
            .expect("mkdir");
    }
    let node = Node::start(config.clone()).expect("starts");
    let _ = sustained_load(&node, 5);
    let error = common::eventually(|| {
        node.snapshot(0)
            .wal
            .expect("wal")
            .checkpoint_error
            .ok_or_else(|| "no checkpoint has failed yet".to_string())
    });
    let expected = dir.path().join("checkpoint-");
    assert!(
        error.contains(&format!("writing the checkpoint {}", expected.display())),
        "{error}"
    );
    drop(node);
    // A start, whose checkpoint is in the way of the same directories, names the file too.
    let Err(refused) = Node::start(config) else {
        panic!("a start with its checkpoint in the way is refused");
    };
    let message = refused.to_string();
    assert!(
        message.contains(&format!(
            "cannot write (as its .tmp file, then renamed) the checkpoint {}",
            expected.display()
        )),
        "{message}"
    );
}

#[test]
fn a_checkpointer_slower_than_the_load_makes_the_writer_wait_instead_of_filling_the_disk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = compacting_config(dir.path());
    let mut builder = NodeBuilder::new(config.clone());
    builder.wal_faults(Arc::new(
        Faults::parse("checkpoint_delay_ms=100").expect("parses"),
    ));
    let node = builder.start().expect("starts");
    let (largest, last) = sustained_load(&node, 80);
    // Closed segments awaiting a checkpoint stay within the backlog limit; beside them, the
    // segment that crossed it, the open one, the prepared next one, and the checkpoints.
    let bound =
        wal::backlog_limit(config.wal.checkpoint_every, SEGMENT) + 3 * SEGMENT + (256 << 10);
    let wal = node.snapshot(0).wal.expect("wal");
    assert!(
        wal.bytes > 4 * bound,
        "the load wrote {} bytes, too little to overrun the bound",
        wal.bytes
    );
    assert!(
        largest <= bound,
        "disk use peaked at {largest} (bound {bound}) with a slow checkpointer"
    );
    assert!(wal.checkpoint_error.is_none(), "{:?}", wal.checkpoint_error);
    assert!(
        wal.checkpoint_waits > 0,
        "the writer never had to wait: the test did not outrun the checkpointer"
    );
    restart_and_find(node, config, last);
}

#[test]
fn a_closed_segment_that_could_not_be_read_once_is_checkpointed_later_not_never() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = compacting_config(dir.path());
    let faults = Arc::new(Faults::parse("segment_reads_fail=1").expect("parses"));
    let mut builder = NodeBuilder::new(config.clone());
    builder.wal_faults(faults.clone());
    let node = builder.start().expect("starts");
    let (_, last) = sustained_load(&node, 80);
    assert_eq!(faults.segment_reads_failing(), 0, "no segment was read");
    let wal = node.snapshot(0).wal.expect("wal");
    // Checkpoints went on after the failed read, and the log's disk use came back within
    // its bound (while the checkpointer was put off, the writer did not wait for it, so it
    // may have been over it for a while).
    assert!(wal.checkpoint_error.is_none(), "{:?}", wal.checkpoint_error);
    assert!(wal.checkpoints > 1, "{wal:?}");
    let bound =
        wal::backlog_limit(config.wal.checkpoint_every, SEGMENT) + 3 * SEGMENT + (256 << 10);
    assert!(wal.bytes > 4 * bound, "the load wrote too little: {wal:?}");
    assert!(
        wal.disk_bytes <= bound,
        "disk use ends at {} (bound {bound})",
        wal.disk_bytes
    );
    restart_and_find(node, config, last);
}

#[test]
fn a_second_node_on_the_same_directory_is_refused_naming_it_and_the_holder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _first = Node::start(durable_config(dir.path(), 8)).expect("starts");
    match Node::start(durable_config(dir.path(), 8)) {
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains(&dir.path().display().to_string()),
                "{message}"
            );
            assert!(
                message.contains(&format!("pid {}", std::process::id())),
                "{message}"
            );
        }
        Ok(_) => panic!("two nodes on one data directory"),
    }
}

#[test]
fn a_node_with_a_failing_disk_refuses_submissions_with_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut builder = NodeBuilder::new(durable_config(dir.path(), 64));
    builder.wal_faults(Arc::new(
        Faults::parse("fsync_fail_after=12").expect("parses"),
    ));
    let node = builder.start().expect("starts");
    let mut acknowledged = Vec::new();
    let error = loop {
        match node.submit(TaskSpec::sleep(Duration::from_secs(600))) {
            Ok(id) => acknowledged.push(id),
            Err(error) => break error,
        }
        assert!(acknowledged.len() < 100, "the injected failure never came");
    };
    assert!(
        error.to_string().contains("write-ahead log failed"),
        "{error}"
    );
    assert!(node.wal_failure().is_some());
    // Every later one, told that nothing of it reached the log (as a client waiting on the
    // log is told what became of its request).
    let later = node
        .submit(TaskSpec::fib(1))
        .expect_err("and every later one")
        .to_string();
    assert!(
        later.contains("nothing from this request was written to the log"),
        "{later}"
    );
    let running = acknowledged[0];
    match node.cancel(running) {
        Err(CancelError::NotDurable(_, id)) => assert_eq!(id, running),
        other => panic!("a cancel the failed log cannot record is not acknowledged: {other:?}"),
    }
    node.shutdown(Duration::ZERO);
    drop(node);
    let node = Node::start(durable_config(dir.path(), 64)).expect("recovers");
    for id in acknowledged {
        assert!(node.task(id).is_ok(), "acknowledged {id} lost");
    }
}

#[test]
fn with_sync_never_every_write_is_a_boundary_recovery_does_not_cross() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log_with(
        WalOptions {
            sync: WalSync::Never,
            ..options(dir.path())
        },
        5,
        100,
    );
    // Each record was acknowledged alone, at write(2): each begins a write and is marked, so
    // damage to any but the last is followed by a mark and refuses the start.
    let (path, offset, _, _) = accepted(dir.path())[1].clone();
    let bytes = std::fs::read(&path).expect("read");
    let frame = record::read_frame(&bytes, offset, record::MAX_PAYLOAD)
        .expect("valid")
        .expect("frame");
    assert!(
        frame.after_sync,
        "a write acknowledged without fdatasync is marked"
    );
    let mut damaged_bytes = bytes.clone();
    damaged_bytes[offset + 12] ^= 0x01;
    std::fs::write(&path, &damaged_bytes).expect("write");
    let error = damaged(live_ids(dir.path()));
    assert!(error.contains("a later write begins"), "{error}");
}

// ---------------------------------------------------------------- repair

#[test]
fn repair_skips_a_segment_of_another_log_and_keeps_every_record_of_its_own() {
    let ours = tempfile::tempdir().expect("temp dir");
    let theirs = tempfile::tempdir().expect("temp dir");
    write_log(ours.path(), 1000, 180);
    write_log(theirs.path(), 1000, 180);
    let name = "wal-0000000000000002.seg";
    let ours_there: Vec<u64> = accepted(ours.path())
        .into_iter()
        .filter(|(path, ..)| file_name(path) == name)
        .map(|(.., id)| id)
        .collect();
    assert!(!ours_there.is_empty());
    std::fs::copy(theirs.path().join(name), ours.path().join(name)).expect("copy");
    let repaired = wal::repair::repair(ours.path(), 100_000, 1000).expect("repairs");
    assert_eq!(repaired.foreign, vec![name.to_string()]);
    assert!(
        repaired.moved.iter().any(|moved| moved == name),
        "{repaired:?}"
    );
    // In the place of one of ours, the file cost what ours held: said, and ids skip on.
    assert!(
        repaired.damage.iter().any(|line| line.contains(name)),
        "{repaired:?}"
    );
    assert!(repaired.ids_continue_after > 1000 + wal::repair::ID_GAP / 2);
    // Nothing of the other log's was taken; every task of ours outside that file is back.
    let expected: Vec<u64> = (1..=1000).filter(|id| !ours_there.contains(id)).collect();
    assert_eq!(live_ids(ours.path()).expect("recovers"), expected);
    assert_eq!(repaired.in_flight, expected.len() as u64);
    // The file kept aside is the other log's, byte for byte.
    assert_eq!(
        std::fs::read(repaired.moved_to.join(name)).expect("kept"),
        std::fs::read(theirs.path().join(name)).expect("theirs")
    );
}

#[test]
fn a_segment_of_another_log_numbered_past_ours_is_named_and_ours_are_not_called_damaged() {
    let ours = tempfile::tempdir().expect("temp dir");
    let theirs = tempfile::tempdir().expect("temp dir");
    write_log(ours.path(), 1000, 180);
    write_log(theirs.path(), 2000, 180);
    let newest = accepted(ours.path())
        .into_iter()
        .map(|(path, ..)| path)
        .max()
        .expect("segments");
    let number = u64::from_str_radix(
        file_name(&newest)
            .trim_start_matches("wal-")
            .trim_end_matches(".seg"),
        16,
    )
    .expect("a segment number");
    let name = format!("wal-{:016x}.seg", number + 1);
    std::fs::copy(theirs.path().join(&name), ours.path().join(&name)).expect("copy");
    // A start refuses, naming the copied file, not our newest segment as one that lost
    // its last records.
    let message = damaged(live_ids(ours.path()));
    assert!(
        message.contains(&name) && message.contains("another write-ahead log"),
        "{message}"
    );
    let inspection = wal::inspect(ours.path(), |_, _, _, _| {}).expect("inspects");
    let damaged_files: Vec<String> = inspection
        .files
        .iter()
        .filter(|file| file.damage.is_some())
        .map(|file| file_name(&file.file))
        .collect();
    assert_eq!(damaged_files, vec![name.clone()], "{inspection:?}");
    let repaired = wal::repair::repair(ours.path(), 100_000, 1000).expect("repairs");
    assert_eq!(repaired.foreign, vec![name]);
    // Nothing of ours was lost: no damage to report, and ids go on without a gap.
    assert!(repaired.damage.is_empty(), "{repaired:?}");
    assert_eq!(repaired.ids_continue_after, 1000);
    assert_eq!(
        live_ids(ours.path()).expect("recovers"),
        (1..=1000).collect::<Vec<u64>>()
    );
}

#[test]
fn repair_after_the_newest_segments_are_lost_keeps_the_rest_and_skips_past_their_ids() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 1000, 180);
    let accepted = accepted(dir.path());
    let mut segments: Vec<PathBuf> = accepted.iter().map(|(path, ..)| path.clone()).collect();
    segments.dedup();
    assert!(segments.len() >= 3, "{segments:?}");
    let newest = segments.last().expect("a segment").clone();
    let kept: Vec<u64> = accepted
        .iter()
        .filter(|(path, ..)| *path != newest)
        .map(|(.., id)| *id)
        .collect();
    std::fs::remove_file(&newest).expect("remove");
    assert!(matches!(
        live_ids(dir.path()),
        Err(WalError::Missing { .. })
    ));
    let repaired = wal::repair::repair(dir.path(), 100_000, 1000).expect("repairs");
    assert!(
        repaired
            .damage
            .iter()
            .any(|line| line.contains(&file_name(&newest)) && line.contains("missing")),
        "{repaired:?}"
    );
    let highest = kept.iter().copied().max().expect("kept some");
    assert_eq!(repaired.max_id_read, highest);
    assert_eq!(repaired.ids_continue_after, highest + wal::repair::ID_GAP);
    let recovery = wal::open(options(dir.path()), &|_| Ok(())).expect("starts after repair");
    assert_eq!(recovery.state().max_id, highest + wal::repair::ID_GAP);
    let mut live: Vec<u64> = recovery.state().live.keys().copied().collect();
    live.sort_unstable();
    assert_eq!(live, kept);
    // The repaired log is an ordinary one: it starts, takes appends and recovers them.
    let log = recovery.start().expect("starts");
    log.append_accepted(
        &[IdRange {
            first: highest + wal::repair::ID_GAP + 1,
            count: 1,
        }],
        &echo("after the repair"),
        None,
        1,
    )
    .expect("appends")
    .wait()
    .expect("durable");
    log.shutdown();
    drop(log);
    assert_eq!(
        live_ids(dir.path()).expect("recovers").len(),
        kept.len() + 1
    );
    // A second repair finds nothing to do.
    assert!(matches!(
        wal::repair::repair(dir.path(), 100_000, 1000),
        Err(wal::repair::RepairError::Healthy(_))
    ));
}

#[test]
fn repair_trusts_the_files_over_a_damaged_newest_segment_and_skips_ids_past_a_cut_end() {
    // `newest-segment` with a log id one digit off: every file still belongs to the log.
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 1000, 180);
    let newest = dir.path().join("newest-segment");
    let text = std::fs::read_to_string(&newest).expect("reads");
    let (name, id) = text.trim().split_once(' ').expect("name and id");
    let flipped = if id.ends_with('0') { "1" } else { "0" };
    std::fs::write(
        &newest,
        format!("{name} {}{flipped}\n", &id[..id.len() - 1]),
    )
    .expect("write");
    let refused = live_ids(dir.path())
        .expect_err("refused as it is")
        .to_string();
    assert!(
        refused.contains("newest-segment") && refused.contains("copied in"),
        "newest-segment is the one named, not the log's files: {refused}"
    );
    let inspection = wal::inspect(dir.path(), |_, _, _, _| {}).expect("inspects");
    assert!(
        inspection.files.iter().all(|file| file.damage.is_none()),
        "no file of the log is called another log's: {inspection:?}"
    );
    assert!(
        inspection
            .problems
            .iter()
            .any(|problem| problem.starts_with("newest-segment")),
        "{inspection:?}"
    );
    let repaired = wal::repair::repair(dir.path(), 100_000, 1000).expect("repairs");
    assert!(repaired.foreign.is_empty(), "{repaired:?}");
    assert_eq!(repaired.in_flight, 1000);
    assert_eq!(
        live_ids(dir.path()).expect("recovers"),
        (1..=1000).collect::<Vec<_>>()
    );

    // The newest segment with data cut short at a record: what was cut may have held higher
    // ids than any read, though a prepared empty segment follows it.
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 40, 100);
    let (path, offset, _, first_lost) = accepted(dir.path())[30].clone();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("opens");
    file.set_len(offset as u64).expect("truncates");
    drop(file);
    let repaired = wal::repair::repair(dir.path(), 100_000, 1000).expect("repairs");
    assert_eq!(repaired.max_id_read, first_lost - 1);
    let recovery = wal::open(options(dir.path()), &|_| Ok(())).expect("starts");
    assert!(
        recovery.state().max_id >= 40,
        "new ids must not reuse the lost 31..=40: continue after {}",
        recovery.state().max_id
    );

    // An empty `newest-segment` is damage a node names, with the way forward.
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 5, 50);
    std::fs::write(dir.path().join("newest-segment"), "").expect("write");
    let message = damaged(live_ids(dir.path()));
    assert!(message.contains("newest-segment"), "{message}");
    assert!(message.contains("goliath wal repair"), "{message}");
}

#[test]
fn a_segment_of_another_log_older_than_the_checkpoint_is_named_and_never_removed() {
    let ours = tempfile::tempdir().expect("temp dir");
    let theirs = tempfile::tempdir().expect("temp dir");
    let mut compacting = options(ours.path());
    compacting.checkpoint_every = SEGMENT;
    write_log_with(compacting, 1000, 180);
    write_log(theirs.path(), 1000, 180);
    let name = "wal-0000000000000001.seg";
    assert!(
        !ours.path().join(name).exists(),
        "a checkpoint covers it and removed it"
    );
    std::fs::copy(theirs.path().join(name), ours.path().join(name)).expect("copy");
    let inspection = wal::inspect(ours.path(), |_, _, _, _| {}).expect("inspects");
    assert!(inspection.healthy(), "no part of this log: {inspection:?}");
    assert!(
        inspection
            .notes
            .iter()
            .any(|stray| stray.contains(name) && stray.contains("another write-ahead log")),
        "{inspection:?}"
    );
    // A start removes this log's covered files, not another's.
    let log = wal::open(options(ours.path()), &|_| Ok(()))
        .expect("opens")
        .start()
        .expect("starts");
    log.shutdown();
    drop(log);
    assert!(ours.path().join(name).exists(), "left where it was");
}

#[test]
fn a_log_whose_files_were_all_deleted_skips_ids_and_a_new_one_does_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fresh = wal::open(options(dir.path()), &|_| Ok(())).expect("opens");
    assert_eq!(
        fresh.state().max_id,
        0,
        "a new directory starts at the first id"
    );
    drop(fresh);
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 5, 50);
    for entry in std::fs::read_dir(dir.path()).expect("lists") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|name| name != "LOCK") {
            std::fs::remove_file(&path).expect("remove");
        }
    }
    let recovery = wal::open(options(dir.path()), &|_| Ok(())).expect("opens");
    assert_eq!(
        recovery.state().max_id,
        wal::repair::ID_GAP,
        "the deleted log's ids are not handed out again"
    );
}

#[test]
fn a_first_start_stopped_before_its_first_segment_leaves_a_directory_that_starts_as_new() {
    // Killed after the lock (the recovery dropped unstarted), then a full disk with room for
    // the checkpoint but not the segment (a service manager restarting it twice).
    let dir = tempfile::tempdir().expect("temp dir");
    drop(wal::open(options(dir.path()), &|_| Ok(())).expect("opens"));
    starts_refused_with_room_for_the_checkpoint_only(dir.path(), 2);
    let inspection = wal::inspect(dir.path(), |_, _, _, _| {}).expect("inspects");
    assert!(
        inspection.healthy() && inspection.notes.is_empty(),
        "nothing to warn of: {inspection:?}"
    );
    let recovery = wal::open(options(dir.path()), &|_| Ok(())).expect("opens");
    assert_eq!(
        recovery.state().max_id,
        0,
        "no id is skipped: none was ever handed out"
    );
    recovery
        .start()
        .expect("starts once there is room")
        .shutdown();
    assert_eq!(live_ids(dir.path()).expect("recovers"), Vec::<u64>::new());
}

#[test]
fn a_missing_newest_segment_file_is_noted_since_nothing_else_knows_deleted_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), 5, 50);
    let inspection = wal::inspect(dir.path(), |_, _, _, _| {}).expect("inspects");
    assert!(inspection.notes.is_empty(), "{inspection:?}");
    std::fs::remove_file(dir.path().join("newest-segment")).expect("remove");
    let inspection = wal::inspect(dir.path(), |_, _, _, _| {}).expect("inspects");
    assert!(
        inspection.healthy(),
        "a start is not refused: {inspection:?}"
    );
    assert!(
        inspection
            .notes
            .iter()
            .any(|note| note.contains("newest-segment is missing")),
        "{inspection:?}"
    );
    // Deleted newest segments would have held ids past the ones left: a start skips ids so
    // that none of theirs is handed out again.
    let recovery = wal::open(options(dir.path()), &|_| Ok(())).expect("opens");
    assert_eq!(
        recovery.state().max_id,
        5 + wal::repair::ID_GAP,
        "ids skip past any a deleted segment held"
    );
    drop(recovery);
    // Written again at that start: the next one skips nothing more.
    wal::open(options(dir.path()), &|_| Ok(()))
        .expect("opens")
        .start()
        .expect("starts")
        .shutdown();
    let recovery = wal::open(options(dir.path()), &|_| Ok(())).expect("opens");
    assert_eq!(recovery.state().max_id, 5 + wal::repair::ID_GAP);
}

#[test]
fn repair_drops_a_damaged_batch_whole_and_keeps_what_follows_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (batch_ids, later) = {
        let node = Node::start(durable_config(dir.path(), 1024)).expect("starts");
        // One batch of 40 specs: one group of 40 records.
        let batch: Vec<Submission> = (0..40)
            .map(|i| Submission {
                spec: TaskSpec::sleep(Duration::from_secs(3600 + i)),
                copies: 1,
            })
            .collect();
        let batch_ids = node.submit_batch(&batch, None, None).expect("submits").ids;
        let later = node
            .submit(TaskSpec::sleep(Duration::from_secs(7200)))
            .expect("submits");
        node.shutdown(Duration::ZERO);
        (batch_ids, later)
    };
    // Damage the batch's 20th record: its first 19 read, its last 20 are found after it.
    let (path, offset, payload, first) = accepted(dir.path())
        .into_iter()
        .find(|(_, _, _, first)| *first == batch_ids[19].0)
        .expect("the 20th record");
    assert_eq!(first, batch_ids[19].0);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[offset + HEADER_LEN + payload / 2] ^= 0x10;
    std::fs::write(&path, &bytes).expect("write");
    // `verify` and `dump` show the batch's whole records on both sides of the damage, each
    // marked: they name acknowledged tasks a repair leaves out.
    let mut found = Vec::new();
    let inspection = wal::inspect(dir.path(), |_, _, record, how| {
        if let Record::Accepted(accepted) = record {
            found.push((accepted.ids[0].first, how));
        }
    })
    .expect("inspects");
    let batch_found: Vec<(u64, wal::Found)> = found
        .iter()
        .copied()
        .filter(|(id, _)| batch_ids.iter().any(|batch| batch.0 == *id))
        .collect();
    let expected: Vec<(u64, wal::Found)> = batch_ids
        .iter()
        .enumerate()
        .filter(|(at, _)| *at != 19)
        .map(|(at, id)| {
            let how = if at < 19 {
                wal::Found::StartsDamagedBatch
            } else {
                wal::Found::FinishesDamagedBatch
            };
            (id.0, how)
        })
        .collect();
    assert_eq!(batch_found, expected);
    let damaged = inspection
        .files
        .iter()
        .find(|file| file.damage.is_some())
        .expect("a damaged file");
    assert_eq!(damaged.batch_before_damage, 19, "{damaged:?}");
    let repaired = wal::repair::repair(dir.path(), 100_000, 1000).expect("repairs");
    assert_eq!(repaired.batch_head_dropped, 19, "{repaired:?}");
    assert_eq!(repaired.batch_tail_dropped, 20, "{repaired:?}");
    let recovery = wal::open(options(dir.path()), &|_| Ok(())).expect("starts");
    let live = &recovery.state().live;
    assert!(
        batch_ids.iter().all(|id| !live.contains_key(&id.0)),
        "none of the damaged batch, not its head and not its tail: {:?}",
        live.keys().collect::<Vec<_>>()
    );
    assert!(
        live.contains_key(&later.0),
        "the task after the batch is kept"
    );
}

#[test]
fn a_key_tells_other_work_from_its_request_after_a_restart_when_its_tasks_left_the_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = compacting_config(dir.path());
    let node = Node::start(config.clone()).expect("starts");
    let request = |n| {
        [Submission {
            spec: TaskSpec::fib(n),
            copies: 3,
        }]
    };
    let first = node
        .submit_batch(&request(5), Some("k1"), None)
        .expect("submits");
    all_finished(&node);
    // Enough tasks of the same kind to push the key's tasks out of a history of 100, over
    // several checkpoints (the key then lives in checkpoints, not only in its records).
    for _ in 0..4 {
        let crowd = [Submission {
            spec: TaskSpec::fib(1),
            copies: 200,
        }];
        node.submit_batch(&crowd, None, None).expect("submits");
        all_finished(&node);
    }
    node.shutdown(Duration::ZERO);
    drop(node);
    let node = Node::start(config).expect("restarts");
    assert!(
        node.task(first.ids[0]).is_err(),
        "the key's tasks have left the history"
    );
    // The same request under the key is the same submission: its ids, nothing new.
    let again = node
        .submit_batch(&request(5), Some("k1"), None)
        .expect("a retry");
    assert!(again.duplicate);
    assert_eq!(again.ids, first.ids);
    // Other work under it is refused, as before the restart. With only the key's ids in the
    // log and none of its tasks left to compare, it was taken as a duplicate without a word.
    let other = node
        .submit_batch(&request(6), Some("k1"), None)
        .expect_err("other work under a used key");
    let message = other.error.to_string();
    assert!(message.contains("first used for other work"), "{message}");
    assert_eq!(node.in_flight(), 0, "nothing was submitted");
}
