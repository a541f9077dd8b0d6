//! The write-ahead log: what makes an acknowledged task survive the node being killed.
//!
//! - [`record`]: record framing and types (sans-IO).
//! - [`recovery`]: the segment scan (torn tail versus damage) and the replay state (sans-IO).
//! - [`segment`]: the data directory on disk — lock, names, preallocated segments, atomic files.
//! - `writer`: group commit (one writer thread), tickets, fail-stop, segment preparer and
//!   checkpointer threads.
//! - [`metrics`]: fsync latency over a sliding window and the snapshot type.
//! - [`repair`]: `goliath wal repair`, a damaged log made into a startable one from what is
//!   still readable, the old files kept aside.
//!
//! Lifecycle: [`open`] locks the data directory and replays the newest checkpoint plus the
//! segments after it into a [`Recovery`]; the node restores its tasks from
//! [`Recovery::state`]; [`Recovery::start`] writes a fresh checkpoint of that state (with the
//! requeued tasks' new run numbers), removes what it covers, creates the first new segment and
//! starts the threads. Appends return a [`Ticket`]; a submission is acknowledged only once its
//! ticket is durable.

pub mod metrics;
pub mod record;
pub mod recovery;
pub mod repair;
pub mod segment;
pub(crate) mod tasks;
mod writer;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use metrics::{RecoverySummary, WalSnapshot, WalSync};
pub use record::{IdRange, Record, RecordType, SpecRecord};
pub use recovery::{Damage, State};
pub use segment::{Faults, LOCK_FILE};
pub use writer::{
    AppendError, AppendKind, DurabilityError, LAZY_FLUSH, Ticket, Unacknowledged, backlog_limit,
};

use crate::config::Config;
use crate::runtime::lock;
use crate::runtime::units::HumanSize;
use record::{Accepted, Frame, GroupEncoder};
use segment::{Io, LockError};
use writer::{Checkpointer, LogShared, Preparer, Writer};

/// How a log is set up (from `[wal]` and `node.data_dir`).
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// The data directory.
    pub dir: PathBuf,
    /// Ack after fdatasync, or after write.
    pub sync: WalSync,
    /// Bytes per segment file.
    pub segment_size: u64,
    /// How long the writer waits for more appends before a batch (0: none).
    pub max_batch_delay: Duration,
    /// Log bytes between checkpoints.
    pub checkpoint_every: u64,
    /// Finished tasks kept (the history bound).
    pub history_limit: usize,
    /// Idempotency keys kept.
    pub key_limit: usize,
    /// Injected faults (tests only).
    pub faults: Option<Arc<Faults>>,
}

impl WalOptions {
    /// Options for a node named `node_name` from its config.
    pub fn from_config(config: &Config, node_name: &str) -> Result<WalOptions, WalError> {
        Ok(WalOptions {
            dir: data_dir(config, node_name)?,
            sync: config.wal.sync,
            segment_size: config.wal.segment_size,
            max_batch_delay: config.wal.max_batch_delay,
            checkpoint_every: config.wal.checkpoint_every,
            history_limit: config.history.tasks,
            key_limit: config.node.idempotency_keys,
            faults: None,
        })
    }

    /// The largest record payload with these options.
    pub fn max_payload(&self) -> usize {
        record::MAX_PAYLOAD.min((self.segment_size / 4) as usize)
    }

    /// The largest group (one submission's records) with these options.
    pub fn max_group(&self) -> usize {
        (self.segment_size / 2) as usize
    }
}

/// The data directory a node uses: `node.data_dir`, else `$XDG_DATA_HOME/goliath/<name>`
/// (or `~/.local/share/goliath/<name>`).
pub fn data_dir(config: &Config, node_name: &str) -> Result<PathBuf, WalError> {
    if !config.node.data_dir.is_empty() {
        return Ok(PathBuf::from(&config.node.data_dir));
    }
    default_data_dir(node_name).ok_or(WalError::NoDataDir)
}

/// `$XDG_DATA_HOME/goliath/<name>`, or `~/.local/share/goliath/<name>`; a relative
/// `XDG_DATA_HOME` is ignored (XDG base directory specification), so the directory does not
/// depend on where the node was started from.
pub fn default_data_dir(node_name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| std::path::Path::new(v).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local").join("share"))
        })?;
    let mut name = node_name.replace('/', "_");
    if name.is_empty() || name.starts_with('.') {
        name = format!("node-{name}");
    }
    Some(base.join("goliath").join(name))
}

/// Why a log could not be opened or started.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Another process holds the data directory.
    #[error(
        "data directory {} is in use by another goliath node (pid {pid}); stop that node, or give this one another --data-dir",
        dir.display()
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The holder's pid.
        pid: String,
    },
    /// A file operation failed.
    #[error("cannot {op} {}: {error}{}", path.display(), io_advice(op, error))]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error: in the message, not a `source()`, so a report that prints the chain
        /// does not say it twice.
        error: std::io::Error,
    },
    /// A file is damaged somewhere an acknowledged record may be.
    #[error(
        "the write-ahead log is damaged: {} at {damage}. The node will not start on a damaged log (it could lose acknowledged tasks); run `goliath wal verify --data-dir {}` for a full report, and `goliath wal repair --data-dir {}` to start again from what is still readable",
        file.display(),
        dir.display(),
        dir.display()
    )]
    Damaged {
        /// The data directory.
        dir: PathBuf,
        /// The damaged file.
        file: PathBuf,
        /// Where and what.
        damage: Damage,
    },
    /// A segment between the checkpoint and the newest segment the log created is missing.
    #[error(
        "the write-ahead log in {} is missing {} ({MISSING_RULE}): the tasks it acknowledged would be lost, so the node does not start; run `goliath wal verify --data-dir {}`. {} gone for good, `goliath wal repair --data-dir {}` accepts the loss ({})",
        dir.display(),
        missing,
        dir.display(),
        if *at_the_end { "If the newest segments are" } else { "If they are" },
        dir.display(),
        if *at_the_end {
            "it keeps the old files aside, and new ids skip past the lost ones"
        } else {
            "it keeps the rest, and the old files aside"
        }
    )]
    Missing {
        /// The data directory.
        dir: PathBuf,
        /// The missing file's name.
        missing: String,
        /// Whether it comes after every segment there is (the newest were lost), rather than
        /// in a gap between them.
        at_the_end: bool,
    },
    /// The disk is too full to start: a start writes a checkpoint and its first segment
    /// before it accepts anything (and prepares the next segment).
    #[error(
        "not enough free space in {} to start: the node writes a checkpoint of the recovered tasks ({}) and its first segment ({}) before it accepts anything, and prepares the next one; free at least {} there",
        dir.display(),
        HumanSize::approx(*checkpoint),
        HumanSize::approx(*segment),
        HumanSize::approx(checkpoint + 2 * segment)
    )]
    NoSpace {
        /// The data directory.
        dir: PathBuf,
        /// Bytes of the checkpoint.
        checkpoint: u64,
        /// Bytes of a segment.
        segment: u64,
    },
    /// No data directory could be chosen.
    #[error(
        "no data directory: set node.data_dir or pass --data-dir ($XDG_DATA_HOME and $HOME are both unset), or set wal.enabled = false for a node that keeps nothing on disk"
    )]
    NoDataDir,
}

/// What to do about a failed file operation, where the error says more than its text.
fn io_advice(op: &str, error: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ReadOnlyFilesystem => {
            "; the node writes its log there: mount it read-write, or give the node another --data-dir"
        }
        ErrorKind::PermissionDenied => {
            "; the node writes its log there: give this user write access, or give the node another --data-dir"
        }
        ErrorKind::AlreadyExists | ErrorKind::NotADirectory if op == CREATE_DATA_DIR => {
            " (something that is not a directory is in the way): move it, or give the node another --data-dir"
        }
        _ => "",
    }
}

/// The operation named when the data directory cannot be created.
const CREATE_DATA_DIR: &str = "create the data directory";

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |error| WalError::Io {
        op,
        path: path.to_path_buf(),
        error,
    }
}

/// The checks a segment's groups get during recovery: the header first (with this segment's
/// number), then only log records.
struct SegmentCheck {
    seq: u64,
    /// A later segment holds records: this one was closed, and (format 4 on) must end with
    /// its end record.
    closed: bool,
    header_seen: bool,
    /// The format its header names.
    version: u32,
    /// Its end record was read.
    end_seen: bool,
    /// Bytes the file has.
    file_len: u64,
    /// The size the header says the segment was created with (0: not said).
    created_size: u64,
    /// The log id expected, then (once the header is read) the one known after this segment.
    log_id: u64,
}

/// A new log's id: random (std's hasher keys come from the OS), never 0.
fn new_log_id() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(writer::unix_now_us());
    hasher.write_u32(std::process::id());
    hasher.finish().max(1)
}

impl SegmentCheck {
    /// The verdict on a scan of this segment, shared by recovery and `wal verify`/`dump`:
    /// - a file shorter than the segment was created is damage where it was cut, whatever the
    ///   records before the cut say (they read as a clean end);
    /// - a segment without its header is damage at its start, never a torn tail: every
    ///   segment is created whole with its header (written, then renamed into place).
    fn verdict(
        &self,
        scan: Result<recovery::SegmentScan, Damage>,
    ) -> Result<recovery::SegmentScan, Damage> {
        if self.created_size > 0 && self.file_len > self.created_size {
            return Err(Damage {
                offset: self.created_size,
                what: format!(
                    "the file is {} bytes but the segment was created with {}: bytes were added after its end",
                    self.file_len, self.created_size
                ),
            });
        }
        if self.file_len < self.created_size {
            return Err(Damage {
                offset: self.file_len,
                what: format!(
                    "the file ends at {} bytes but the segment was created with {}: it was cut short (truncated), and whatever it held after that is missing",
                    self.file_len, self.created_size
                ),
            });
        }
        let scan = scan?;
        if !self.header_seen {
            return Err(Damage {
                offset: 0,
                what: "the segment has no header record".to_string(),
            });
        }
        if self.closed && self.version >= 4 && !self.end_seen {
            // Zeros where its last records were read as the segment's end: a closed
            // segment's records end with its end record, written before the next segment
            // took any.
            return Err(Damage {
                offset: scan.end as u64,
                what: format!(
                    "the segment's records stop at offset {} without its end record, though a later segment holds records: the records it held after that offset are lost (zeroed or never written), acknowledged tasks among them",
                    scan.end
                ),
            });
        }
        Ok(scan)
    }

    /// The checks for segment `seq`, a file of `file_len` bytes, before its scan, in the log
    /// `log_id` (0 while unknown: the first segment that names one sets it); `closed` when a
    /// later segment holds records.
    fn new(seq: u64, file_len: u64, log_id: u64, closed: bool) -> Self {
        SegmentCheck {
            seq,
            closed,
            header_seen: false,
            version: 0,
            end_seen: false,
            file_len,
            created_size: 0,
            log_id,
        }
    }

    fn check(&mut self, frames: &[Frame<'_>]) -> Result<(), String> {
        if !self.header_seen {
            let [frame] = frames else {
                return Err("the segment does not start with its header record".to_string());
            };
            let Ok(Record::Segment(header)) = Record::decode(frame) else {
                return Err("the segment does not start with its header record".to_string());
            };
            // Whose log first: a segment copied in from another directory, renamed or not, is
            // named as that, not as a numbering slip.
            if header.log_id != 0 {
                if self.log_id != 0 && header.log_id != self.log_id {
                    return Err(format!(
                        "the segment belongs to another write-ahead log (log id {:016x}, where this directory's is {:016x}): it was copied in from another data directory; move it out of this one",
                        header.log_id, self.log_id
                    ));
                }
                self.log_id = header.log_id;
            }
            if header.segment != self.seq {
                return Err(format!(
                    "the header says segment {} but the file name says {}",
                    header.segment, self.seq
                ));
            }
            if header.version > record::FORMAT_VERSION {
                return Err(format!(
                    "written by a newer goliath (format {}, this one reads up to {})",
                    header.version,
                    record::FORMAT_VERSION
                ));
            }
            self.created_size = header.size;
            self.version = header.version;
            self.header_seen = true;
            return Ok(());
        }
        if self.end_seen {
            return Err("a record follows the segment's end record".to_string());
        }
        for (index, frame) in frames.iter().enumerate() {
            if frame.record_type != RecordType::SegmentEnd {
                continue;
            }
            let Ok(Record::SegmentEnd(end)) = Record::decode(frame) else {
                return Err("the segment's end record does not decode".to_string());
            };
            if end.segment != self.seq {
                return Err(format!(
                    "the end record says segment {} but the file name says {}",
                    end.segment, self.seq
                ));
            }
            if index + 1 != frames.len() {
                return Err("a record follows the segment's end record".to_string());
            }
            self.end_seen = true;
        }
        if let Some(frame) = frames
            .iter()
            .find(|f| !recovery::belongs_in_segment(f.record_type))
        {
            return Err(format!(
                "a {} record does not belong in a segment",
                frame.record_type.name()
            ));
        }
        Ok(())
    }
}

/// Index of the segment a crash may have left a torn tail in: the newest one with records
/// (newer ones are unused spares). 0 when none has any.
fn tail_segment(
    segments: &[(u64, PathBuf)],
    log_id: u64,
    buffer: &mut Vec<u8>,
    read: impl Fn(&Path, &mut Vec<u8>) -> std::io::Result<()>,
) -> Result<usize, (PathBuf, std::io::Error)> {
    for (index, (_, path)) in segments.iter().enumerate().rev() {
        // A segment of another log (copied in, numbered past this log's) holds none of this
        // log's records: it does not make this log's newest segment a closed one, whose
        // missing end record would then be reported as lost records.
        if log_id != 0 && file_log_id(path).is_some_and(|other| other != log_id) {
            continue;
        }
        read(path, buffer).map_err(|e| (path.clone(), e))?;
        if recovery::has_data(buffer) {
            return Ok(index);
        }
    }
    Ok(0)
}

/// A data directory replayed and locked, not yet started.
pub struct Recovery {
    lock: segment::DirLock,
    options: WalOptions,
    state: State,
    /// The first segment the new log writes.
    next_segment: u64,
    summary: RecoverySummary,
    started: Instant,
}

impl std::fmt::Debug for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovery")
            .field("dir", &self.options.dir)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// The log id in a file's first record (a segment header or a checkpoint's beginning), if
/// that record reads: which log a file belongs to, whatever its name says.
pub(crate) fn file_log_id(path: &Path) -> Option<u64> {
    use std::io::Read as _;
    // Both first records are a few dozen bytes.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut bytes)
        .ok()?;
    let frame = record::read_frame(&bytes, 0, bytes.len()).ok()??;
    match Record::decode(&frame).ok()? {
        Record::Segment(header) => Some(header.log_id),
        Record::CheckpointBegin(begin) => Some(begin.log_id),
        _ => None,
    }
    .filter(|id| *id != 0)
}

/// When `newest-segment` names a log that none of the files belong to (all those that name
/// one agree on another), that other log's id and how many files carry it: `newest-segment`
/// is then the stray, copied in from another data directory, not every file. One file is
/// read when the first agrees with it, as it does on every healthy start.
fn files_disown_newest(
    listing: &segment::Listing,
    newest_log: Option<u64>,
) -> Option<(u64, usize)> {
    let named = newest_log.filter(|id| *id != 0)?;
    let mut files = listing
        .checkpoints
        .values()
        .rev()
        .chain(listing.segments.values());
    let first = files.find_map(|path| file_log_id(path))?;
    if first == named {
        return None;
    }
    let mut count = 1;
    for path in files {
        match file_log_id(path) {
            Some(id) if id == first => count += 1,
            Some(_) => return None,
            None => {}
        }
    }
    Some((first, count))
}

/// What is wrong with a `newest-segment` that names another log than its files.
fn disowning_newest_damage(named: u64, files_log: u64, count: usize) -> Damage {
    Damage {
        offset: 0,
        what: format!(
            "it names log {named:016x}, but all {count} of the files here that name a log belong to log {files_log:016x}: it was likely copied in from another data directory (the other files are this log's)"
        ),
    }
}

/// Takes the data directory's lock, as a node does: refused, naming the holder, while
/// another process holds it.
fn lock_dir(dir: &Path) -> Result<segment::DirLock, WalError> {
    segment::lock_dir(dir).map_err(|error| match error {
        LockError::Held { pid } => WalError::Locked {
            dir: dir.to_path_buf(),
            pid,
        },
        LockError::Io(error) => WalError::Io {
            op: "lock",
            path: dir.join(segment::LOCK_FILE),
            error,
        },
    })
}

/// Locks `options.dir` (creating it if missing) and replays it. `runnable` says whether a
/// task in flight can still run on this node (its kind is known); those that cannot are
/// finished as failed. Nothing on disk changes until [`Recovery::start`], but for a new
/// directory's lock file and `newest-segment`.
pub fn open(
    options: WalOptions,
    runnable: &dyn Fn(&SpecRecord<'_>) -> Result<(), String>,
) -> Result<Recovery, WalError> {
    let started = Instant::now();
    let dir = options.dir.clone();
    segment::create_dir(&dir).map_err(io_error(CREATE_DATA_DIR, &dir))?;
    // Every start leaves a checkpoint and a segment beside its lock file: a lock file alone
    // is a log whose files were all deleted.
    let used_before = dir.join(segment::LOCK_FILE).exists();
    let lock = lock_dir(&dir)?;
    let listing = segment::list(&dir).map_err(io_error("list", &dir))?;
    let mut state = State::new(options.history_limit, options.key_limit);
    let mut summary = RecoverySummary::default();
    let mut buffer = Vec::new();
    let damaged = |file: &Path, damage: Damage| WalError::Damaged {
        dir: dir.clone(),
        file: file.to_path_buf(),
        damage,
    };
    let newest_path = dir.join(segment::NEWEST_FILE);
    let newest = segment::read_newest(&dir).map_err(|error| match error.kind() {
        // Bytes that name no segment (empty, garbled): damage, with the way forward.
        std::io::ErrorKind::InvalidData => WalError::Damaged {
            dir: dir.clone(),
            file: newest_path.clone(),
            damage: Damage {
                offset: 0,
                what: error.to_string(),
            },
        },
        _ => io_error("read", &newest_path)(error),
    })?;
    let newest_log = newest.and_then(|n| n.log_id);
    if let Some((files_log, count)) = files_disown_newest(&listing, newest_log) {
        return Err(WalError::Damaged {
            dir: dir.clone(),
            file: newest_path.clone(),
            damage: disowning_newest_damage(newest_log.unwrap_or(0), files_log, count),
        });
    }
    // Two ways a start cannot tell whether segments were deleted, and so skips ids: files
    // without `newest-segment`, or a lock file without any log file.
    let no_files = listing.segments.is_empty() && listing.checkpoints.is_empty();
    let newest_lost = newest.is_none() && !no_files;
    let emptied = newest.is_none() && no_files && used_before;
    if emptied {
        tracing::warn!(
            dir = %dir.display(),
            "this data directory has a node's lock file but no log file: a first start stopped within its first moments, or the log's files were deleted (then the tasks they held are lost). New task ids skip {} so that none of theirs is handed out again",
            repair::ID_GAP
        );
    }
    if newest_lost {
        // Written at every new segment since it exists; without it nothing tells whether
        // the newest segments were deleted.
        tracing::warn!(
            dir = %dir.display(),
            "{} is missing beside the log's files, so this start cannot tell whether its newest segments were deleted. New task ids skip {} so that none such a segment held is handed out again; the tasks and idempotency keys it held would be lost. The file is written again from here on",
            segment::NEWEST_FILE,
            repair::ID_GAP
        );
    }
    let mut first_segment = 1;
    // The log's id: as `newest-segment` names it, else as the checkpoint and segments give
    // it (0 while none has).
    let mut log_id = newest.and_then(|n| n.log_id).unwrap_or(0);
    if newest.is_none() && no_files && !used_before {
        // A new directory: `newest-segment` first, naming no segment yet, so that a first
        // start stopped before its first segment (killed, a full disk) leaves a directory
        // the next start knows as new, not as one whose files were deleted.
        log_id = new_log_id();
        Io::new(options.faults.clone())
            .write_file_atomically(
                &dir,
                segment::NEWEST_FILE,
                segment::newest_text(0, log_id).as_bytes(),
            )
            .map_err(io_error("write", &newest_path))?;
    }
    if let Some((&seq, path)) = listing.checkpoints.iter().next_back() {
        segment::read_into(path, &mut buffer).map_err(io_error("read", path))?;
        let begin = recovery::load_checkpoint(&buffer, &mut state)
            .map_err(|damage| damaged(path, damage))?;
        check_checkpoint(&begin, seq, newest_created(newest, &listing), log_id)
            .map_err(|damage| damaged(path, damage))?;
        first_segment = seq;
        summary.checkpoint = Some(seq);
        if log_id == 0 {
            log_id = begin.log_id;
        }
    }
    if let Some(&run) =
        segment::missing_runs(&listing.segments, first_segment, newest.map(|n| n.seq)).first()
    {
        return Err(WalError::Missing {
            dir: dir.clone(),
            missing: missing_text(&listing, run),
            at_the_end: listing
                .segments
                .keys()
                .next_back()
                .is_none_or(|&last| run.0 > last),
        });
    }
    let segments: Vec<(u64, PathBuf)> = listing
        .segments
        .range(first_segment..)
        .map(|(seq, path)| (*seq, path.clone()))
        .collect();
    let tail =
        tail_segment(&segments, log_id, &mut buffer, segment::read_into).map_err(|(path, e)| {
            WalError::Io {
                op: "read",
                path,
                error: e,
            }
        })?;
    // Replaying a large log takes seconds; say so before, not only after.
    let bytes: u64 = segments
        .iter()
        .filter_map(|(_, path)| path.metadata().ok())
        .map(|metadata| metadata.len())
        .sum();
    tracing::info!(
        dir = %dir.display(),
        checkpoint = summary.checkpoint.map(segment::checkpoint_name).unwrap_or_else(|| "none".into()),
        segments = segments.len(),
        bytes = %crate::runtime::units::HumanSize::approx(bytes),
        "replaying the write-ahead log"
    );
    for (index, (seq, path)) in segments.iter().enumerate() {
        let last = index >= tail;
        segment::read_into(path, &mut buffer).map_err(io_error("read", path))?;
        let mut check = SegmentCheck::new(*seq, buffer.len() as u64, log_id, !last);
        let result = recovery::scan_segment(&buffer, last, |frames| {
            check.check(frames)?;
            state.apply_group(frames)
        });
        let scan = check
            .verdict(result)
            .map_err(|damage| damaged(path, damage))?;
        log_id = check.log_id;
        summary.segments += 1;
        if let Some(reason) = &scan.torn {
            summary.dropped_bytes += scan.dropped_bytes;
            tracing::warn!(
                file = %path.display(),
                offset = scan.end,
                dropped_bytes = scan.dropped_bytes,
                dropped_records = scan.dropped_records,
                reason = %reason,
                "dropped the torn tail of the last WAL segment (it was never acknowledged)"
            );
        }
    }
    summary.records = state.counts.records;
    if newest_lost || emptied {
        // As `wal repair` does for a loss it cannot measure: acknowledged ids of deleted
        // segments were handed out again (and scripts holding them saw other tasks).
        state.max_id = state.max_id.saturating_add(repair::ID_GAP);
    }
    // A log written before log ids (or a new one) takes a new id from here on.
    state.log_id = if log_id != 0 { log_id } else { new_log_id() };
    let restart = state.restart(writer::unix_now_us(), runnable);
    summary.requeued_running = restart.were_running;
    summary.requeued_queued = restart.were_queued;
    summary.finished_at_start = restart.finished;
    if let Some(why) = &restart.failed_why {
        // Acknowledged work ended by this start's config: said, not left for `goliath tasks`.
        let ids: Vec<String> = restart.failed_ids.iter().map(u64::to_string).collect();
        let more = restart
            .failed
            .saturating_sub(restart.failed_ids.len() as u64);
        tracing::warn!(
            failed = restart.failed,
            "{} recovered from the log cannot run on this start and {} failed for good: {why} (ids {}{}); `goliath task ID` shows each one's spec, to submit again where it can run",
            crate::runtime::units::counted(restart.failed, "task", "tasks"),
            if restart.failed == 1 { "is" } else { "are" },
            ids.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    summary.history = state.finished.len() as u64;
    summary.keys = state.keys.len() as u64;
    summary.max_id = state.max_id;
    // The next segment follows the newest one; a checkpoint with no segment after it (a
    // start that stopped between writing it and creating its segment) is written again
    // under its own number, so a run of failed starts never numbers a checkpoint past the
    // segments this log created.
    let newest_segment = listing.segments.keys().next_back().copied().unwrap_or(0);
    Ok(Recovery {
        lock,
        options,
        state,
        next_segment: (newest_segment + 1).max(first_segment),
        summary,
        started,
    })
}

impl Recovery {
    /// The data directory (locked by this recovery).
    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// The replayed state: tasks to run again (with their new run numbers), finished tasks,
    /// idempotency keys and the highest id.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// What was found.
    pub fn summary(&self) -> &RecoverySummary {
        &self.summary
    }

    /// Writes the checkpoint of the recovered state, removes what it covers, creates the first
    /// new segment and starts the writer, preparer and checkpointer threads.
    pub fn start(self) -> Result<Wal, WalError> {
        let Recovery {
            lock: dir_lock,
            options,
            state,
            next_segment,
            mut summary,
            started,
        } = self;
        let dir = options.dir.clone();
        let io = Io::new(options.faults.clone());
        if let Ok(listing) = segment::list(&dir) {
            for temp in listing.temps {
                let _ = std::fs::remove_file(temp);
            }
        }
        let lock_identity = dir_lock
            .identity()
            .map_err(io_error("look at the lock file in", &dir))?;
        let mut buffer = Vec::new();
        // A full disk is said with the space a start needs; other errors as they are.
        let start_error = |op: &'static str, path: PathBuf, checkpoint: u64| {
            let dir = &dir;
            move |error: std::io::Error| match error.kind() {
                std::io::ErrorKind::StorageFull => WalError::NoSpace {
                    dir: dir.clone(),
                    checkpoint,
                    segment: options.segment_size,
                },
                _ => io_error(op, &path)(error),
            }
        };
        let checkpoint_bytes =
            writer::write_checkpoint(&dir, &io, &state, next_segment, &mut buffer).map_err(
                |error| {
                    start_error(
                        "write (as its .tmp file, then renamed) the checkpoint",
                        dir.join(segment::checkpoint_name(next_segment)),
                        buffer.len() as u64,
                    )(error)
                },
            )?;
        writer::remove_covered(&dir, &io, next_segment, state.log_id);
        let (file, start) = io
            .create_segment(
                &dir,
                next_segment,
                options.segment_size,
                state.log_id,
                writer::unix_now_us(),
            )
            .map_err(start_error(
                "create the first segment in",
                dir.clone(),
                checkpoint_bytes as u64,
            ))?;
        let log = Arc::new(LogShared::new(options.max_payload(), options.max_group()));
        log.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
        log.metrics
            .last_checkpoint_unix_us
            .store(writer::unix_now_us(), Ordering::Relaxed);
        log.metrics
            .last_checkpoint_bytes
            .store(checkpoint_bytes as u64, Ordering::Relaxed);
        let preparer = Arc::new(Preparer::new(
            dir.clone(),
            options.segment_size,
            state.log_id,
            io.clone(),
        ));
        let (closed_sender, closed_receiver) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(body)
                .map_err(io_error("start a WAL thread for", &dir))
        };
        {
            let preparer = preparer.clone();
            threads.push(spawn("goliath-wal-prep", Box::new(move || preparer.run()))?);
        }
        preparer.request(next_segment + 1);
        let writer = Writer {
            log: log.clone(),
            io: io.clone(),
            sync: options.sync,
            max_batch_delay: options.max_batch_delay,
            segment_size: options.segment_size,
            seq: next_segment,
            file,
            offset: start,
            data_start: start,
            synced: true,
            preparer: preparer.clone(),
            closed: closed_sender,
            backlog_limit: writer::backlog_limit(options.checkpoint_every, options.segment_size),
            checkpoint_every: options.checkpoint_every,
            backlog_warned: None,
            dir: dir.clone(),
            lock_identity,
            directory_checked: None,
        };
        let writer_thread = spawn("goliath-wal-writer", Box::new(move || writer.run()));
        let writer_thread = match writer_thread {
            Ok(handle) => handle,
            Err(error) => {
                preparer.stop();
                return Err(error);
            }
        };
        threads.push(writer_thread);
        let checkpointer = Checkpointer {
            dir: dir.clone(),
            io,
            state,
            next_segment,
            checkpoint_every: options.checkpoint_every,
            log: log.clone(),
            closed: closed_receiver,
        };
        let checkpointer_thread = spawn(
            "goliath-wal-checkpoint",
            Box::new(move || checkpointer.run()),
        );
        match checkpointer_thread {
            Ok(handle) => threads.push(handle),
            Err(error) => {
                log.stop();
                preparer.stop();
                return Err(error);
            }
        }
        summary.took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        tracing::info!(
            data_dir = %dir.display(),
            sync = options.sync.as_str(),
            checkpoint = summary.checkpoint.map(segment::checkpoint_name),
            segments = summary.segments,
            records = summary.records,
            requeued = summary.requeued_running + summary.requeued_queued,
            history = summary.history,
            dropped_bytes = summary.dropped_bytes,
            took_ms = summary.took_us / 1000,
            "write-ahead log recovered"
        );
        Ok(Wal {
            log,
            preparer,
            threads: Mutex::new(threads),
            options,
            summary,
            _lock: dir_lock,
        })
    }
}

/// A running log.
pub struct Wal {
    log: Arc<LogShared>,
    preparer: Arc<Preparer>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    options: WalOptions,
    summary: RecoverySummary,
    _lock: segment::DirLock,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.options.dir)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Appends one group of records built by `build` and returns a ticket for it.
    pub fn append<R>(
        &self,
        kind: AppendKind,
        build: impl FnOnce(&mut GroupEncoder<'_>) -> Result<R, record::EncodeError>,
    ) -> Result<(R, Ticket), AppendError> {
        let (result, lsn) = self.log.append(kind, build)?;
        Ok((result, Ticket::new(&self.log, lsn)))
    }

    /// Appends one accepted record (tasks `ids`, all running `spec`).
    pub fn append_accepted(
        &self,
        ids: &[IdRange],
        spec: &SpecRecord<'_>,
        key: Option<&str>,
        submitted_unix_us: u64,
    ) -> Result<Ticket, AppendError> {
        let accepted = Accepted {
            ids: Cow::Borrowed(ids),
            spec: spec.clone(),
            key: key.map(Cow::Borrowed),
            attempt: 1,
            submitted_unix_us,
            request: None,
        };
        self.append(AppendKind::Submission, |group| {
            group.push(RecordType::Accepted, &accepted)
        })
        .map(|(_, ticket)| ticket)
    }

    /// The highest log sequence number that is durable (see [`Ticket::lsn`]).
    pub fn durable_lsn(&self) -> u64 {
        self.log.durable_lsn()
    }

    /// A ticket for everything appended so far.
    pub fn ticket_now(&self) -> Ticket {
        Ticket::new(&self.log, self.log.appended_lsn())
    }

    /// The failure, once the log has failed.
    pub fn failure(&self) -> Option<Arc<str>> {
        self.log.failure()
    }

    /// Resolves when the log fails (never, if it does not).
    pub async fn failed(&self) -> Arc<str> {
        self.log.wait_failed().await
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// What was recovered at start.
    pub fn recovered(&self) -> &RecoverySummary {
        &self.summary
    }

    /// The figures a snapshot shows.
    pub fn snapshot(&self) -> WalSnapshot {
        let metrics = &self.log.metrics;
        let window = metrics.window();
        let span = window.span.as_secs_f64();
        // Per fdatasync of the writer (a batch's, and the one closing each full segment: a
        // batch of 60,000 records over several segments is not "60,000 per fsync"); with
        // `sync = never`, which makes none, per batch written.
        let divisor = match self.options.sync {
            WalSync::Never => window.batches,
            WalSync::Always => window.fsyncs,
        };
        let per_batch = |value: u64| {
            if divisor == 0 {
                0.0
            } else {
                value as f64 / divisor as f64
            }
        };
        let (disk_bytes, segments) = segment::disk_usage(&self.options.dir);
        let failure = self.log.failure();
        let healthy = failure.is_none();
        let last_checkpoint = metrics.last_checkpoint_unix_us.load(Ordering::Relaxed);
        WalSnapshot {
            data_dir: self.options.dir.display().to_string(),
            sync: self.options.sync,
            healthy,
            failure: failure.map(|f| f.to_string()),
            window_us: u64::try_from(window.span.as_micros()).unwrap_or(u64::MAX),
            fsync_p50_us: window.p50_ns as f64 / 1000.0,
            fsync_p99_us: window.p99_ns as f64 / 1000.0,
            fsync_max_us: window.max_ns as f64 / 1000.0,
            window_fsyncs: window.fsyncs,
            records_per_fsync: per_batch(window.records),
            bytes_per_fsync: per_batch(window.bytes),
            appends_per_sec: if span > 0.0 {
                window.records as f64 / span
            } else {
                0.0
            },
            records: metrics.appended_records.load(Ordering::Relaxed),
            bytes: metrics.written_bytes.load(Ordering::Relaxed),
            fsyncs: metrics.fsyncs.load(Ordering::Relaxed),
            pending_records: self.log.pending_records(),
            segments,
            disk_bytes,
            last_checkpoint_unix_us: (last_checkpoint != 0).then_some(last_checkpoint),
            last_checkpoint_bytes: metrics.last_checkpoint_bytes.load(Ordering::Relaxed),
            checkpoint_waits: metrics.checkpoint_waits.load(Ordering::Relaxed),
            checkpoints: metrics.checkpoints.load(Ordering::Relaxed),
            checkpoint_error: lock(&metrics.checkpoint_error).clone(),
            // A warning while the log works; once it failed, the failure says it all.
            next_segment_error: healthy.then(|| self.preparer.problem()).flatten(),
            recovered: self.summary.clone(),
        }
    }

    /// Writes what is pending, makes it durable, and stops the threads. Safe to call twice.
    pub fn shutdown(&self) {
        self.log.stop();
        let threads: Vec<JoinHandle<()>> = lock(&self.threads).drain(..).collect();
        let mut threads = threads.into_iter();
        // The preparer first waits for nothing; the writer must finish before the
        // checkpointer (which ends when the writer hangs up).
        self.preparer.stop();
        for thread in threads.by_ref() {
            let _ = thread.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// ---------------------------------------------------------------- inspection

/// What a checkpoint must agree with, shared by recovery and `wal verify`: its file name
/// (`seq`), the newest segment the log created (a checkpoint covers only segments that
/// existed, so at most the one after it), and the log's id.
fn check_checkpoint(
    begin: &record::CheckpointBegin,
    seq: u64,
    newest: Option<u64>,
    log_id: u64,
) -> Result<(), Damage> {
    let damage = |what: String| Damage { offset: 0, what };
    if log_id != 0 && begin.log_id != 0 && begin.log_id != log_id {
        return Err(damage(foreign_checkpoint_text(begin.log_id, log_id)));
    }
    if begin.next_segment != seq {
        return Err(damage(format!(
            "the checkpoint says it covers the segments before {} but its name says before {}",
            segment::segment_name(begin.next_segment),
            segment::segment_name(seq)
        )));
    }
    if let Some(newest) = newest
        && seq > newest.saturating_add(1)
    {
        return Err(damage(format!(
            "the checkpoint covers the segments before {}, but the newest segment this log created is {} ({}): it comes from another log",
            segment::segment_name(seq),
            segment::segment_name(newest),
            segment::NEWEST_FILE
        )));
    }
    Ok(())
}

/// What is wrong with a checkpoint of log `other` in the directory of log `log_id`.
fn foreign_checkpoint_text(other: u64, log_id: u64) -> String {
    format!(
        "the checkpoint belongs to another write-ahead log (log id {other:016x}, where this directory's files name {log_id:016x}): it was copied in from another data directory; move it out of this one"
    )
}

/// The newest segment the log is known to have created: the one `newest-segment` names, or
/// a newer one on disk (created just before a crash kept it from being named); `None`
/// without `newest-segment` (a directory from before it), when nothing is known.
fn newest_created(newest: Option<segment::Newest>, listing: &segment::Listing) -> Option<u64> {
    let on_disk = listing.segments.keys().next_back().copied();
    newest.map(|n| n.seq.max(on_disk.unwrap_or(0)))
}

/// A run of missing segments (`first` to `last`) as the messages name it: with no
/// checkpoint, segments missing from the first up to one that is there are the ones a
/// removed checkpoint covered.
fn missing_text(listing: &segment::Listing, (first, last): (u64, u64)) -> String {
    let run = if first == last {
        segment::segment_name(first)
    } else {
        format!(
            "{} to {}",
            segment::segment_name(first),
            segment::segment_name(last)
        )
    };
    match last.checked_add(1) {
        Some(next)
            if first == 1
                && listing.checkpoints.is_empty()
                && listing.segments.contains_key(&next) =>
        {
            format!(
                "the checkpoint that covered the segments before {}, and {run} with it",
                segment::segment_name(next)
            )
        }
        _ => run,
    }
}

/// Which segments recovery needs, as the errors say it.
const MISSING_RULE: &str = "every segment from the checkpoint to the newest one the log created, which `newest-segment` names, must be there";

/// The end of a segment that a crash left mid-write, never acknowledged: recovery drops it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TornTail {
    /// Where it begins (after the last whole record).
    pub offset: u64,
    /// How many bytes it holds.
    pub bytes: u64,
    /// What is wrong with it.
    pub what: String,
}

/// What `goliath wal verify` found in one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileReport {
    /// The file.
    pub file: PathBuf,
    /// "checkpoint" or "segment".
    pub kind: &'static str,
    /// Its size.
    pub size: u64,
    /// Whole records in it.
    pub records: u64,
    /// Offset after the last whole record (in a damaged file, the last one before the
    /// damage).
    pub end: u64,
    /// A torn tail recovery would drop.
    pub torn: Option<TornTail>,
    /// Damage that stops recovery.
    pub damage: Option<Damage>,
    /// Whole records found after the damage (not replayed; `dump` shows them).
    pub after_damage: u64,
    /// Whole records before the damage in the batch the damaged record is in (not
    /// replayed, since the batch cannot be whole; `dump` shows them).
    pub batch_before_damage: u64,
    /// A segment closed with its end record: the log wrote on into the next one.
    pub closed: bool,
}

/// What `goliath wal verify` found in a data directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Inspection {
    /// The directory.
    pub dir: PathBuf,
    /// Every checkpoint and segment recovery would read, in order.
    pub files: Vec<FileReport>,
    /// Problems that are not inside one file (missing segments).
    pub problems: Vec<String>,
    /// What does not stop a start but an operator should know: files of another log
    /// numbered before the checkpoint (no node reads or removes them), a missing
    /// `newest-segment`.
    pub notes: Vec<String>,
    /// The pid of a node holding the directory, if one does (in JSON a number, as `status`
    /// gives a pid; the lock file's text if it holds no number).
    #[serde(serialize_with = "pid_as_number")]
    pub locked_by: Option<String>,
}

/// A pid held as text, serialized as the number it is.
fn pid_as_number<S: serde::Serializer>(
    pid: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match pid.as_deref().map(|text| (text, text.parse::<u32>())) {
        None => serializer.serialize_none(),
        Some((_, Ok(number))) => serializer.serialize_u32(number),
        Some((text, Err(_))) => serializer.serialize_str(text),
    }
}

impl Inspection {
    /// Whether a node would start on this directory without refusing.
    pub fn healthy(&self) -> bool {
        self.problems.is_empty() && self.files.iter().all(|f| f.damage.is_none())
    }

    /// The first thing that keeps a node from starting, as one line: a problem across files,
    /// else the first damaged file and where; `None` for a healthy log.
    pub fn first_problem(&self) -> Option<String> {
        self.problems.first().cloned().or_else(|| {
            self.files.iter().find_map(|file| {
                file.damage
                    .as_ref()
                    .map(|damage| format!("{}: {damage}", file.file.display()))
            })
        })
    }
}

/// Where [`inspect`] found a whole record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Before any damage in its file: recovery replays it.
    Readable,
    /// Before the damage, and in the group the damaged record belongs to: whole and
    /// checksummed, but the batch it began can no longer be whole, so recovery does not
    /// replay it (it names acknowledged tasks).
    StartsDamagedBatch,
    /// After damage in its file (recovery does not read it).
    AfterDamage,
    /// After damage, and part of the group the damaged record began (its header said the
    /// group goes on, and no new write began before this record): the rest of a batch that
    /// can no longer be whole.
    FinishesDamagedBatch,
}

impl Found {
    /// Whether it lies after damage in its file.
    pub fn after_damage(self) -> bool {
        matches!(self, Found::AfterDamage | Found::FinishesDamagedBatch)
    }

    /// Whether it belongs to the batch a damaged record is in (before or after it).
    pub fn in_damaged_batch(self) -> bool {
        matches!(
            self,
            Found::StartsDamagedBatch | Found::FinishesDamagedBatch
        )
    }
}

/// What [`open_listing`] found.
struct OpenedListing {
    /// `newest-segment`, read before the listing.
    newest_read: std::io::Result<Option<segment::Newest>>,
    listing: segment::Listing,
    /// The files to read, by path, open.
    opened: std::collections::HashMap<PathBuf, std::fs::File>,
}

/// `newest-segment`, the listing of `dir`, and the files an inspection reads (the newest
/// checkpoint and the segments from it on) opened. Beside a running node a checkpoint can
/// remove listed segments before they are opened: the listing is then taken again, a few
/// times at most.
fn open_listing(dir: &Path) -> Result<OpenedListing, WalError> {
    const ATTEMPTS: usize = 5;
    let mut attempt = 1;
    loop {
        // `newest-segment` before the listing: beside a running node, a segment created in
        // between is then in the listing, never named but missing from it.
        let newest_read = segment::read_newest(dir);
        let listing = segment::list(dir).map_err(io_error("list", dir))?;
        let checkpoint = listing.checkpoints.iter().next_back();
        let first_segment = checkpoint.map_or(1, |(seq, _)| *seq);
        let wanted = checkpoint.map(|(_, path)| path).into_iter().chain(
            listing
                .segments
                .range(first_segment..)
                .map(|(_, path)| path),
        );
        let opened: Result<std::collections::HashMap<PathBuf, std::fs::File>, _> = wanted
            .map(|path| {
                std::fs::File::open(path)
                    .map(|file| (path.clone(), file))
                    .map_err(|error| (path, error))
            })
            .collect();
        match opened {
            Ok(opened) => {
                return Ok(OpenedListing {
                    newest_read,
                    listing,
                    opened,
                });
            }
            Err((path, error))
                if error.kind() != std::io::ErrorKind::NotFound || attempt >= ATTEMPTS =>
            {
                return Err(io_error("open", path)(error));
            }
            // Removed since the listing: list again.
            Err(_) => attempt += 1,
        }
    }
}

/// Reads every file recovery would read — newest checkpoint, then the segments after it —
/// checking every record, and calls `each` with every whole record (file, offset, record,
/// and where it was [`Found`]).
/// Changes nothing on disk; it only looks at the lock (see [`segment::lock_holder`], which
/// holds a shared lock for an instant), so it works beside a running node.
pub fn inspect(
    dir: &Path,
    mut each: impl FnMut(&Path, u64, &Record, Found),
) -> Result<Inspection, WalError> {
    let OpenedListing {
        newest_read,
        listing,
        opened,
    } = open_listing(dir)?;
    // Read through the handles opened with the listing: a file a running node removes
    // meanwhile (a checkpoint made its segments unneeded) is still read whole.
    let read = |path: &Path, buffer: &mut Vec<u8>| -> std::io::Result<()> {
        match opened.get(path) {
            Some(file) => {
                use std::io::{Read as _, Seek as _};
                buffer.clear();
                let mut file = file;
                file.seek(std::io::SeekFrom::Start(0))?;
                file.read_to_end(buffer).map(|_| ())
            }
            None => segment::read_into(path, buffer),
        }
    };
    let mut inspection = Inspection {
        dir: dir.to_path_buf(),
        locked_by: segment::lock_holder(dir),
        ..Inspection::default()
    };
    let mut buffer = Vec::new();
    let mut first_segment = 1;
    let newest_read_ok = newest_read.as_ref().ok().copied();
    let newest = match newest_read {
        Ok(newest) => newest,
        Err(error) => {
            inspection
                .problems
                .push(format!("cannot read {}: {error}", segment::NEWEST_FILE));
            None
        }
    };
    // The log's id: as `newest-segment` names it, else as the files read so far give it
    // (0 while none has); as the files give it when `newest-segment` alone names another.
    let newest_log = newest.and_then(|n| n.log_id);
    let mut log_id = newest_log.unwrap_or(0);
    if let Some((files_log, count)) = files_disown_newest(&listing, newest_log) {
        inspection.problems.push(format!(
            "{}: {}",
            segment::NEWEST_FILE,
            disowning_newest_damage(log_id, files_log, count).what
        ));
        log_id = files_log;
    }
    // `check`: a segment's number and the log id it must have; returns the log id known
    // after the file.
    let mut report_file = |path: &Path,
                           kind: &'static str,
                           last: bool,
                           check: Option<(u64, u64)>,
                           buffer: &mut Vec<u8>,
                           inspection: &mut Inspection|
     -> Result<u64, WalError> {
        read(path, buffer).map_err(io_error("read", path))?;
        let file_len = buffer.len() as u64;
        let mut segment_check =
            check.map(|(seq, log_id)| SegmentCheck::new(seq, file_len, log_id, !last));
        // Records read before any damage, so a damaged file's count agrees with `dump`.
        let mut readable = 0;
        let mut readable_end = 0;
        let result = recovery::scan_segment(buffer, last, |frames| {
            if let Some(check) = segment_check.as_mut() {
                check.check(frames)?;
            }
            for frame in frames {
                let record = Record::decode(frame).map_err(|e| e.to_string())?;
                each(path, frame.offset as u64, &record, Found::Readable);
                readable += 1;
                readable_end = (frame.offset + frame.len) as u64;
            }
            Ok(())
        });
        let mut report = FileReport {
            file: path.to_path_buf(),
            kind,
            size: buffer.len() as u64,
            records: readable,
            end: readable_end,
            torn: None,
            damage: None,
            after_damage: 0,
            batch_before_damage: 0,
            closed: false,
        };
        let result = match &segment_check {
            Some(check) => check.verdict(result),
            None => result,
        };
        match result {
            Ok(scan) => {
                report.records = scan.records;
                report.end = scan.end as u64;
                report.torn = scan.torn.map(|what| TornTail {
                    offset: scan.end as u64,
                    bytes: scan.dropped_bytes,
                    what,
                });
            }
            Err(damage) => {
                let damaged_at = usize::try_from(damage.offset).unwrap_or(usize::MAX);
                // The whole records of the damaged record's batch before it: read, but
                // left out with their batch (a batch is replayed whole or not at all).
                let mut at = usize::try_from(readable_end).unwrap_or(usize::MAX);
                while at < damaged_at {
                    let Ok(Some(frame)) = record::read_frame(buffer, at, record::MAX_PAYLOAD)
                    else {
                        break;
                    };
                    if frame.offset + frame.len > damaged_at {
                        break;
                    }
                    at += frame.len;
                    if let Ok(record) = Record::decode(&frame) {
                        each(
                            path,
                            frame.offset as u64,
                            &record,
                            Found::StartsDamagedBatch,
                        );
                        report.batch_before_damage += 1;
                    }
                }
                // The damaged record's header says whether its group goes on: the records
                // after it up to the one that ends the group finish that batch, unless a new
                // write (marked after an fdatasync) begins first.
                let mut in_batch = record::header_continues(buffer, damaged_at).unwrap_or(false);
                for frame in recovery::records_after_damage(buffer, damaged_at) {
                    in_batch &= !frame.after_sync;
                    let found = if in_batch {
                        in_batch = frame.continues;
                        Found::FinishesDamagedBatch
                    } else {
                        Found::AfterDamage
                    };
                    if let Ok(record) = Record::decode(&frame) {
                        each(path, frame.offset as u64, &record, found);
                        report.after_damage += 1;
                    }
                }
                report.damage = Some(damage);
            }
        }
        report.closed = segment_check.as_ref().is_some_and(|check| check.end_seen);
        inspection.files.push(report);
        Ok(segment_check.map_or(0, |check| check.log_id))
    };
    // The checkpoint read is this log's newest. A newer one of another log (copied in from
    // another data directory) is damage a start refuses, reported as such; the log's own
    // files are still all read, so `verify` reports them and `repair` keeps what they hold.
    let own_log = |path: &Path| log_id == 0 || file_log_id(path).is_none_or(|id| id == log_id);
    let checkpoint = listing
        .checkpoints
        .iter()
        .rev()
        .find(|(_, path)| own_log(path));
    let foreign_newer: Vec<&PathBuf> = listing
        .checkpoints
        .iter()
        .rev()
        .take_while(|(seq, _)| checkpoint.is_none_or(|(own, _)| *seq > own))
        .map(|(_, path)| path)
        .collect();
    for path in &foreign_newer {
        let other = file_log_id(path).unwrap_or(0);
        inspection.files.push(FileReport {
            file: path.to_path_buf(),
            kind: "checkpoint",
            size: path.metadata().map_or(0, |metadata| metadata.len()),
            records: 0,
            end: 0,
            torn: None,
            damage: Some(Damage {
                offset: 0,
                what: foreign_checkpoint_text(other, log_id),
            }),
            after_damage: 0,
            batch_before_damage: 0,
            closed: false,
        });
    }
    if let Some((&seq, path)) = checkpoint {
        first_segment = seq;
        report_file(
            path,
            "checkpoint",
            false,
            None,
            &mut buffer,
            &mut inspection,
        )?;
        // A checkpoint must also load as one.
        if inspection.files.last().is_some_and(|f| f.damage.is_none()) {
            let checked =
                recovery::load_checkpoint(&buffer, &mut State::new(1, 1)).and_then(|begin| {
                    check_checkpoint(&begin, seq, newest_created(newest, &listing), log_id)
                        .map(|()| begin)
                });
            match checked {
                Ok(begin) => {
                    if log_id == 0 {
                        log_id = begin.log_id;
                    }
                }
                Err(damage) => {
                    if let Some(report) = inspection.files.last_mut() {
                        report.damage = Some(damage);
                    }
                }
            }
        }
    }
    let segments: Vec<(u64, PathBuf)> = listing
        .segments
        .range(first_segment..)
        .map(|(seq, path)| (*seq, path.clone()))
        .collect();
    let tail =
        tail_segment(&segments, log_id, &mut buffer, read).map_err(|(path, e)| WalError::Io {
            op: "read",
            path,
            error: e,
        })?;
    // One line per run of missing segments.
    for run in segment::missing_runs(&listing.segments, first_segment, newest.map(|n| n.seq)) {
        let verb = if run.0 == run.1 { "is" } else { "are" };
        inspection.problems.push(format!(
            "{} {verb} missing ({MISSING_RULE})",
            missing_text(&listing, run)
        ));
    }
    for (index, (seq, path)) in segments.iter().enumerate() {
        let last = index >= tail;
        log_id = report_file(
            path,
            "segment",
            last,
            Some((*seq, log_id)),
            &mut buffer,
            &mut inspection,
        )?;
    }
    if matches!(newest_read_ok, Some(None)) && !inspection.files.is_empty() {
        inspection.notes.push(format!(
            "{} is missing: nothing can tell whether the newest segments were deleted (their tasks would be lost; a start warns and skips 1000000000 ids, so none of theirs is handed out again)",
            segment::NEWEST_FILE
        ));
    }
    // As a start warns: a lock file says a node used the directory, and no log file is left.
    if matches!(newest_read_ok, Some(None))
        && inspection.files.is_empty()
        && dir.join(segment::LOCK_FILE).exists()
    {
        inspection.notes.push(format!(
            "a node's lock file is here but no log file: a first start stopped within its first moments, or the log's files were deleted (then the tasks they held are lost; a start warns and skips {} ids, so none of theirs is handed out again)",
            repair::ID_GAP
        ));
    }
    // Files before the checkpoint are not read (a start removes them), except that one of
    // another log is left there: named, since it is no part of this log.
    let read_checkpoint = checkpoint.map(|(seq, _)| *seq);
    let covered = listing.segments.range(..first_segment).chain(
        listing
            .checkpoints
            .iter()
            .filter(|(seq, path)| Some(**seq) != read_checkpoint && !foreign_newer.contains(path)),
    );
    for (_, path) in covered {
        if let Some(other) = file_log_id(path).filter(|id| log_id != 0 && *id != log_id) {
            inspection.notes.push(format!(
                "{} belongs to another write-ahead log (log id {other:016x}); no node reads or removes it: move it out of the data directory",
                path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned())
            ));
        }
    }
    Ok(inspection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use record::{Cancelled, SegmentEnd, SegmentHeader};

    /// A segment of format `version`: its header, one record, and its end record if `ended`.
    fn segment_bytes(version: u32, ended: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        let header = SegmentHeader {
            version,
            segment: 7,
            created_unix_us: 0,
            size: 0,
            log_id: 0,
        };
        record::encode_one(&mut bytes, RecordType::Segment, &header).expect("header");
        let cancel = Cancelled { id: 1, unix_us: 0 };
        record::encode_one(&mut bytes, RecordType::Cancelled, &cancel).expect("record");
        if ended {
            let end = SegmentEnd { segment: 7 };
            record::encode_one(&mut bytes, RecordType::SegmentEnd, &end).expect("end");
        }
        bytes.resize(bytes.len() + 4096, 0);
        bytes
    }

    fn verdict(bytes: &[u8], closed: bool) -> Result<recovery::SegmentScan, Damage> {
        let mut check = SegmentCheck::new(7, bytes.len() as u64, 0, closed);
        let scan = recovery::scan_segment(bytes, !closed, |frames| check.check(frames));
        check.verdict(scan)
    }

    #[test]
    fn a_segment_longer_than_it_was_created_is_named_so() {
        let mut bytes = Vec::new();
        let header = SegmentHeader {
            version: 4,
            segment: 7,
            created_unix_us: 0,
            size: 4096,
            log_id: 0,
        };
        record::encode_one(&mut bytes, RecordType::Segment, &header).expect("header");
        bytes.resize(4096, 0);
        assert!(verdict(&bytes, false).is_ok());
        bytes.extend_from_slice(b"garbage");
        let damage = verdict(&bytes, false).expect_err("longer");
        assert_eq!(damage.offset, 4096);
        assert!(
            damage.what.contains("bytes were added after its end"),
            "{damage}"
        );
    }

    #[test]
    fn a_closed_segment_needs_its_end_record_from_format_4_on() {
        assert!(verdict(&segment_bytes(4, true), true).is_ok());
        let damage = verdict(&segment_bytes(4, false), true).expect_err("no end record");
        assert!(damage.what.contains("without its end record"), "{damage}");
        // The newest segment has none yet; one written before format 4 never has one.
        assert!(verdict(&segment_bytes(4, false), false).is_ok());
        assert!(verdict(&segment_bytes(3, false), true).is_ok());
        // Nothing may follow the end record.
        let mut after_end = segment_bytes(4, true);
        let at = after_end.len() - 4096;
        let cancel = Cancelled { id: 2, unix_us: 0 };
        let mut more = Vec::new();
        record::encode_one(&mut more, RecordType::Cancelled, &cancel).expect("record");
        after_end[at..at + more.len()].copy_from_slice(&more);
        let damage = verdict(&after_end, true).expect_err("a record after the end");
        assert!(
            damage.what.contains("follows the segment's end record"),
            "{damage}"
        );
    }
}
