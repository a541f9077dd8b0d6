//! The data directory on disk: file names, the exclusive lock, preallocated segments,
//! checkpoint files written atomically, directory fsyncs, and the fault hook tests use to make
//! writes and fdatasyncs fail.
//!
//! Layout of a data directory:
//!
//! ```text
//! LOCK                             held (flock) by the running node; holds its pid
//! wal-0000000000000007.seg         segments, zero-filled to wal.segment_size, records from 0
//! checkpoint-0000000000000007.ckpt the state after every segment below 7
//! *.tmp                            a file being created; removed at start
//! ```
//!
//! A new file — segment or checkpoint — is written under a temporary name, fdatasync'd,
//! renamed into place, and the directory fsync'd, so a name that exists always refers to a
//! whole, durable file.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::record::{self, RecordType, SegmentHeader};

/// Name of the lock file.
pub const LOCK_FILE: &str = "LOCK";

/// The file naming the newest segment the log has created and the log's id
/// (`wal-….seg 0123456789abcdef` and a newline), rewritten atomically after each new segment
/// is durable. Recovery needs every segment from the checkpoint to that one: without it,
/// deleting the newest segments would go unseen, and the tasks they acknowledged (and their
/// ids, which a node would hand out again) with them. The id, kept apart from the segments
/// and the checkpoint, tells which of them was copied in from another log.
pub const NEWEST_FILE: &str = "newest-segment";

/// What [`NEWEST_FILE`] says: the newest segment, and the log's id (`None` when written
/// before the file held one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Newest {
    /// The newest segment created.
    pub seq: u64,
    /// The log's id.
    pub log_id: Option<u64>,
}

/// The text of [`NEWEST_FILE`] naming segment `seq` (0: none created yet) of log `log_id`,
/// as [`read_newest`] reads it.
pub fn newest_text(seq: u64, log_id: u64) -> String {
    format!("{} {log_id:016x}\n", segment_name(seq))
}

/// What [`NEWEST_FILE`] says: `None` when there is no such file (a new directory, or one
/// written before the file existed); an `InvalidData` error when it names no segment.
pub fn read_newest(dir: &Path) -> io::Result<Option<Newest>> {
    let text = match std::fs::read_to_string(dir.join(NEWEST_FILE)) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut words = text.split_whitespace();
    let seq = words
        .next()
        .and_then(|name| parse_hex(name, "wal-", ".seg"));
    let log_id = words.next().map(|id| u64::from_str_radix(id, 16));
    match (seq, log_id) {
        (Some(seq), None) => Ok(Some(Newest { seq, log_id: None })),
        (Some(seq), Some(Ok(id))) => Ok(Some(Newest {
            seq,
            log_id: Some(id),
        })),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{NEWEST_FILE} does not name a segment and a log id: {:?}",
                text.trim_end()
            ),
        )),
    }
}

/// The runs of segments from `first` through `newest` (the newest the log created) that
/// are not in `present`, as `(first, last)` pairs in order: segments recovery needs and
/// cannot read. Found from the gaps between the segments there are, so a `newest` of any
/// size (a damaged `newest-segment`) costs nothing.
pub fn missing_runs(
    present: &BTreeMap<u64, PathBuf>,
    first: u64,
    newest: Option<u64>,
) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let mut expected = first;
    for &seq in present.range(first..).map(|(seq, _)| seq) {
        if seq > expected {
            runs.push((expected, seq - 1));
        }
        expected = seq.saturating_add(1);
    }
    let end = present.keys().next_back().copied().max(newest).unwrap_or(0);
    if end >= expected {
        runs.push((expected, end));
    }
    runs
}

/// File name of segment `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("wal-{seq:016x}.seg")
}

/// File name of the checkpoint covering segments below `next_segment`.
pub fn checkpoint_name(next_segment: u64) -> String {
    format!("checkpoint-{next_segment:016x}.ckpt")
}

fn parse_hex(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// The files of a data directory, by kind.
#[derive(Debug, Default)]
pub struct Listing {
    /// Segments by sequence number.
    pub segments: BTreeMap<u64, PathBuf>,
    /// Checkpoints by the segment they start replay at.
    pub checkpoints: BTreeMap<u64, PathBuf>,
    /// Leftover temporary files.
    pub temps: Vec<PathBuf>,
}

/// Lists a data directory.
pub fn list(dir: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if let Some(seq) = parse_hex(name, "wal-", ".seg") {
            listing.segments.insert(seq, path);
        } else if let Some(seq) = parse_hex(name, "checkpoint-", ".ckpt") {
            listing.checkpoints.insert(seq, path);
        } else if name.ends_with(".tmp") {
            listing.temps.push(path);
        }
    }
    Ok(listing)
}

/// Bytes the directory's WAL files take on disk, and how many segments there are.
pub fn disk_usage(dir: &Path) -> (u64, u64) {
    let Ok(listing) = list(dir) else {
        return (0, 0);
    };
    let size = |path: &PathBuf| path.metadata().map(|m| m.len()).unwrap_or(0);
    let bytes = listing.segments.values().map(size).sum::<u64>()
        + listing.checkpoints.values().map(size).sum::<u64>()
        + listing.temps.iter().map(size).sum::<u64>();
    (bytes, listing.segments.len() as u64)
}

/// Creates the data directory (mode 0700: task specs may hold secrets) if it is missing,
/// and makes its creation durable: a new directory's entry lives in its parent, so the
/// parent of every directory created here is fsynced (else a power loss soon after the first
/// start could take the directory, and the log in it, away).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|path| !path.as_os_str().is_empty() && !path.exists()) {
        missing.push(path);
        at = path.parent();
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    for created in missing {
        match created.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent)?,
            _ => sync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

/// Fsyncs a directory, making creations, renames and removals in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The exclusive hold on a data directory; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

impl DirLock {
    /// Device and inode of the locked `LOCK` file, to tell later whether the path still
    /// names it.
    pub fn identity(&self) -> io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt as _;
        let metadata = self.file.metadata()?;
        Ok((metadata.dev(), metadata.ino()))
    }
}

/// Why a data directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; its pid as written in the lock file.
    Held {
        /// The holder's pid, or "unknown".
        pid: String,
    },
    /// The lock file could not be opened or locked.
    Io(io::Error),
}

/// Times [`lock_dir`] tries before it calls the directory held: [`lock_holder`] (used by
/// `goliath wal verify` and `dump`) holds a shared lock for an instant, which must not make a
/// starting node refuse its own directory.
const LOCK_TRIES: u32 = 5;
/// The pause between those tries.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// Takes the exclusive lock of `dir` (flock on `dir/LOCK`) and writes our pid into it.
pub fn lock_dir(dir: &Path) -> Result<DirLock, LockError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(LockError::Io)?;
    let mut tries = 1;
    let mut attempt = file.try_lock();
    while matches!(attempt, Err(std::fs::TryLockError::WouldBlock)) && tries < LOCK_TRIES {
        std::thread::sleep(LOCK_RETRY);
        tries += 1;
        attempt = file.try_lock();
    }
    match attempt {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let pid = text.trim();
            return Err(LockError::Held {
                pid: if pid.is_empty() {
                    "unknown".to_string()
                } else {
                    pid.to_string()
                },
            });
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(LockError::Io(error)),
    }
    file.set_len(0).map_err(LockError::Io)?;
    file.seek(SeekFrom::Start(0)).map_err(LockError::Io)?;
    writeln!(file, "{}", std::process::id()).map_err(LockError::Io)?;
    Ok(DirLock { file })
}

/// The pid in `dir/LOCK` when a process holds the lock now; writes nothing, and holds the
/// lock only for an instant (a shared lock, which conflicts only with a holder; a node
/// starting in that instant retries, see [`lock_dir`]).
pub fn lock_holder(dir: &Path) -> Option<String> {
    let mut file = File::open(dir.join(LOCK_FILE)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(_) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Some(text.trim().to_string()).filter(|pid| !pid.is_empty())
        }
    }
}

/// Injected I/O faults, for tests of fail-stop and full disks. Counters only ever go down.
#[derive(Debug)]
pub struct Faults {
    /// fdatasync calls that still succeed; after that every one fails with EIO.
    syncs_left: AtomicU64,
    /// Bytes that may still be written; a write past this fails with ENOSPC.
    bytes_left: AtomicU64,
    /// How long the checkpointer sleeps before each checkpoint (a disk slower than the load).
    checkpoint_delay_ms: AtomicU64,
    /// Segments numbered from this one cannot be created (ENOSPC): the disk fills between
    /// segments, while the records of the one being written still fit.
    segments_fail_from: AtomicU64,
    /// fdatasync calls made to fail so far.
    failed_syncs: AtomicU64,
    /// Reads of closed segments (the checkpointer's) that still fail with EMFILE, as when
    /// the node has no file descriptor left.
    segment_reads_failing: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            syncs_left: AtomicU64::new(u64::MAX),
            bytes_left: AtomicU64::new(u64::MAX),
            checkpoint_delay_ms: AtomicU64::new(0),
            segments_fail_from: AtomicU64::new(u64::MAX),
            failed_syncs: AtomicU64::new(0),
            segment_reads_failing: AtomicU64::new(0),
        }
    }
}

impl Faults {
    /// Parses `fsync_fail_after=N`, `enospc_after_bytes=N`, `checkpoint_delay_ms=N`,
    /// `segment_fail_from=N` and `segment_reads_fail=N`, comma-separated.
    pub fn parse(spec: &str) -> Result<Faults, String> {
        let faults = Faults::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not key=value"))?;
            let value: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("'{value}' is not a whole number in '{part}'"))?;
            match key.trim() {
                "fsync_fail_after" => faults.syncs_left.store(value, Ordering::SeqCst),
                "enospc_after_bytes" => faults.bytes_left.store(value, Ordering::SeqCst),
                "checkpoint_delay_ms" => faults.checkpoint_delay_ms.store(value, Ordering::SeqCst),
                "segment_fail_from" => faults.segments_fail_from.store(value, Ordering::SeqCst),
                "segment_reads_fail" => faults.segment_reads_failing.store(value, Ordering::SeqCst),
                other => {
                    return Err(format!(
                        "unknown fault '{other}'; use fsync_fail_after=N, enospc_after_bytes=N, checkpoint_delay_ms=N, segment_fail_from=N or segment_reads_fail=N"
                    ));
                }
            }
        }
        Ok(faults)
    }

    fn take(counter: &AtomicU64, amount: u64) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                if left == u64::MAX {
                    Some(left)
                } else {
                    left.checked_sub(amount)
                }
            })
            .is_ok()
    }

    /// Called before every fdatasync.
    pub fn before_sync(&self) -> io::Result<()> {
        if Self::take(&self.syncs_left, 1) {
            Ok(())
        } else {
            self.failed_syncs.fetch_add(1, Ordering::SeqCst);
            Err(io::Error::from_raw_os_error(libc::EIO))
        }
    }

    /// How many fdatasync calls were made to fail (a log that retries one makes more).
    pub fn failed_syncs(&self) -> u64 {
        self.failed_syncs.load(Ordering::SeqCst)
    }

    /// Reads of closed segments still to fail (`segment_reads_fail`).
    pub fn segment_reads_failing(&self) -> u64 {
        self.segment_reads_failing.load(Ordering::SeqCst)
    }

    /// Called before every write of `bytes`.
    pub fn before_write(&self, bytes: usize) -> io::Result<()> {
        if Self::take(&self.bytes_left, bytes as u64) {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
    }
}

/// File operations, with the fault hook in front when one is set.
#[derive(Debug, Clone, Default)]
pub struct Io {
    faults: Option<std::sync::Arc<Faults>>,
}

impl Io {
    /// Plain I/O, or I/O through `faults`.
    pub fn new(faults: Option<std::sync::Arc<Faults>>) -> Self {
        Self { faults }
    }

    /// Reads the closed segment at `path` whole into `buffer` (for the checkpointer).
    pub fn read_segment(&self, path: &Path, buffer: &mut Vec<u8>) -> io::Result<()> {
        if let Some(faults) = &self.faults
            && faults
                .segment_reads_failing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok()
        {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        read_into(path, buffer)
    }

    /// Called by the checkpointer before it writes a checkpoint: sleeps as the faults say.
    pub fn before_checkpoint(&self) {
        if let Some(faults) = &self.faults {
            let delay = faults.checkpoint_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                std::thread::sleep(std::time::Duration::from_millis(delay));
            }
        }
    }

    /// Writes all of `bytes` at `offset`.
    pub fn write_at(&self, file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            faults.before_write(bytes.len())?;
        }
        file.write_all_at(bytes, offset)
    }

    /// fdatasync.
    pub fn sync_data(&self, file: &File) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            faults.before_sync()?;
        }
        file.sync_data()
    }

    /// Directory fsync.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            faults.before_sync()?;
        }
        sync_dir(dir)
    }

    /// Writes `bytes` as `dir/name` atomically: temp file, fdatasync, rename, directory fsync.
    pub fn write_file_atomically(&self, dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.replace_file(dir, name, bytes)?;
        self.sync_dir(dir)
    }

    /// Writes `bytes` as `dir/name` whole or not at all (temp file, fdatasync, rename), the
    /// rename made durable by the directory's next fsync rather than one of its own: after a
    /// crash the file holds the new bytes or the old ones, never a part.
    pub fn replace_file(&self, dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temp = dir.join(format!("{name}.tmp"));
        let result = (|| {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            self.write_at(&file, bytes, 0)?;
            self.sync_data(&file)?;
            std::fs::rename(&temp, dir.join(name))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// Creates segment `seq` of `size` bytes: its header record, then zeros to the end,
    /// written under a temporary name, fdatasync'd, renamed and the directory fsync'd.
    /// Returns the open file and the offset where records start.
    pub fn create_segment(
        &self,
        dir: &Path,
        seq: u64,
        size: u64,
        log_id: u64,
        created_unix_us: u64,
    ) -> io::Result<(File, u64)> {
        self.create_segment_paced(dir, seq, size, log_id, created_unix_us, None)
    }

    /// [`Io::create_segment`], with `pause`: the zeros go out [`PACED_CHUNK`] bytes at a
    /// time, each piece fdatasync'd before `pause` is called and the next is written. A
    /// segment written whole and then fdatasync'd puts all its zeros between the live log's
    /// next fdatasync and the disk (on the test machine: 8–15 ms stalls of acknowledgements
    /// at every segment change); in paced pieces, an fdatasync of the live log waits for at
    /// most one piece. `pause` sleeps between pieces and says whether to go on pacing: once
    /// it says no (the segment is needed now), the rest is written whole.
    pub fn create_segment_paced(
        &self,
        dir: &Path,
        seq: u64,
        size: u64,
        log_id: u64,
        created_unix_us: u64,
        pause: Option<&dyn Fn() -> bool>,
    ) -> io::Result<(File, u64)> {
        if let Some(faults) = &self.faults
            && seq >= faults.segments_fail_from.load(Ordering::SeqCst)
        {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let name = segment_name(seq);
        let temp = dir.join(format!("{name}.tmp"));
        let result = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            let mut header = Vec::with_capacity(64);
            record::encode_one(
                &mut header,
                RecordType::Segment,
                &SegmentHeader {
                    version: record::FORMAT_VERSION,
                    segment: seq,
                    created_unix_us,
                    size,
                    log_id,
                },
            )
            .map_err(io::Error::other)?;
            // Nothing precedes the header: it counts as written after a sync.
            record::mark_after_sync(&mut header);
            // Real zeros, not a hole or fallocate's unwritten extents: later writes are then
            // overwrites of allocated blocks, and a torn write leaves zeros behind.
            let chunk_len = if pause.is_some() {
                PACED_CHUNK
            } else {
                1 << 20
            };
            let chunk = vec![0u8; chunk_len.min(size as usize).max(header.len())];
            let mut pacing = pause;
            let mut at = 0u64;
            while at < size {
                let take = chunk.len().min((size - at) as usize);
                self.write_at(&file, &chunk[..take], at)?;
                at += take as u64;
                if let Some(pause) = pacing
                    && at < size
                {
                    self.sync_data(&file)?;
                    if !pause() {
                        pacing = None;
                    }
                }
            }
            self.write_at(&file, &header, 0)?;
            self.sync_data(&file)?;
            std::fs::rename(&temp, dir.join(&name))?;
            self.sync_dir(dir)?;
            // Only once the segment is durable: the file never names one that was not. Its
            // rename needs no directory fsync of its own (one per segment, each a journal
            // commit competing with the log's fdatasyncs): until the next one makes it
            // durable, a crash leaves it naming the segment before, and recovery counts a
            // newer segment on disk as created all the same.
            self.replace_file(dir, NEWEST_FILE, newest_text(seq, log_id).as_bytes())?;
            Ok((file, header.len() as u64))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }
}

/// Bytes of zeros a paced segment creation writes between pauses.
pub const PACED_CHUNK: usize = 256 << 10;

/// Reads a whole file into `buffer` (reusing its allocation).
pub fn read_into(path: &Path, buffer: &mut Vec<u8>) -> io::Result<()> {
    buffer.clear();
    File::open(path)?.read_to_end(buffer)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        for seq in [1u64, 0xabc, u64::MAX] {
            std::fs::write(dir.path().join(segment_name(seq)), b"").expect("write");
            std::fs::write(dir.path().join(checkpoint_name(seq)), b"").expect("write");
        }
        std::fs::write(dir.path().join("wal-12.seg"), b"").expect("write");
        std::fs::write(dir.path().join("x.tmp"), b"").expect("write");
        let listing = list(dir.path()).expect("lists");
        assert_eq!(
            listing.segments.keys().copied().collect::<Vec<_>>(),
            vec![1, 0xabc, u64::MAX]
        );
        assert_eq!(listing.checkpoints.len(), 3);
        assert_eq!(listing.temps.len(), 1);
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let held = lock_dir(dir.path()).expect("first lock");
        match lock_dir(dir.path()) {
            Err(LockError::Held { pid }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
        lock_dir(dir.path()).expect("free again");
    }

    #[test]
    fn a_look_at_the_holder_does_not_make_a_starting_node_refuse_its_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(lock_dir(dir.path()).expect("creates the lock file"));
        // What `lock_holder` does, held a little longer than it would.
        let looking = File::open(dir.path().join(LOCK_FILE)).expect("opens");
        looking.try_lock_shared().expect("shared lock");
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(15));
            drop(looking);
        });
        lock_dir(dir.path()).expect("waits out a look instead of calling the directory held");
        release.join().expect("joins");
    }

    #[test]
    fn nested_data_directories_are_created_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let nested = dir.path().join("a").join("b").join("c");
        create_dir(&nested).expect("creates");
        create_dir(&nested).expect("and again, as it exists");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&nested)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn segments_are_zero_filled_with_a_header() {
        let dir = tempfile::tempdir().expect("temp dir");
        let io = Io::default();
        let (_, start) = io
            .create_segment(dir.path(), 3, 8192, 5, 1)
            .expect("creates");
        let bytes = std::fs::read(dir.path().join(segment_name(3))).expect("read");
        assert_eq!(bytes.len(), 8192);
        let frame = record::read_frame(&bytes, 0, record::MAX_PAYLOAD)
            .expect("valid")
            .expect("header");
        assert_eq!(frame.record_type, RecordType::Segment);
        assert_eq!(frame.len as u64, start);
        assert!(bytes[start as usize..].iter().all(|&b| b == 0));
        assert!(list(dir.path()).expect("lists").temps.is_empty());
    }

    #[test]
    fn a_segment_created_in_paced_pieces_is_the_segment_created_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let io = Io::default();
        // Not a multiple of the piece: the last piece is short.
        let size = 4 * PACED_CHUNK as u64 + 4096;
        io.create_segment(dir.path(), 1, size, 5, 7)
            .expect("creates whole");
        // Creates segment `seq` in paced pieces with a pause that answers `go_on`; returns
        // how many pauses it took.
        let create_paced = |seq: u64, go_on: bool| {
            let pauses = std::cell::Cell::new(0);
            let pause = || {
                pauses.set(pauses.get() + 1);
                go_on
            };
            io.create_segment_paced(dir.path(), seq, size, 5, 7, Some(&pause))
                .expect("creates in pieces");
            pauses.get()
        };
        assert_eq!(
            create_paced(2, true),
            4,
            "a pause between each two of the five pieces"
        );
        // A pause that says the segment is needed now is the last one.
        assert_eq!(create_paced(3, false), 1, "no pause after the first no");
        let whole = std::fs::read(dir.path().join(segment_name(1))).expect("read");
        let paced = std::fs::read(dir.path().join(segment_name(2))).expect("read");
        let hurried = std::fs::read(dir.path().join(segment_name(3))).expect("read");
        assert_eq!(paced.len(), whole.len());
        assert_eq!(hurried.len(), whole.len());
        // The headers differ only in the segment number they name.
        let start = record::read_frame(&whole, 0, record::MAX_PAYLOAD)
            .expect("valid")
            .expect("header")
            .len;
        assert_eq!(paced[start..], whole[start..]);
        assert_eq!(hurried[start..], whole[start..]);
        assert!(paced[start..].iter().all(|&b| b == 0));
    }

    #[test]
    fn faults_fail_syncs_and_writes_after_their_budget() {
        let faults = std::sync::Arc::new(
            Faults::parse("fsync_fail_after=1, enospc_after_bytes=10").expect("parses"),
        );
        let io = Io::new(Some(faults));
        let dir = tempfile::tempdir().expect("temp dir");
        let file = File::create(dir.path().join("f")).expect("create");
        io.write_at(&file, &[1; 10], 0).expect("within budget");
        let full = io.write_at(&file, &[1], 10).expect_err("no space");
        assert_eq!(full.raw_os_error(), Some(libc::ENOSPC));
        io.sync_data(&file).expect("first sync");
        assert_eq!(
            io.sync_data(&file).expect_err("fails").raw_os_error(),
            Some(libc::EIO)
        );
        assert!(Faults::parse("bogus=1").is_err());
    }
}
