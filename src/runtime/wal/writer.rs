//! Group commit: appenders encode records into one shared, reused buffer under a short lock
//! and get a log sequence number (LSN); ONE writer thread swaps the buffer out, writes it with
//! one write, issues one fdatasync, and publishes the highest durable LSN, which acknowledges
//! every waiter of the batch at once.
//!
//! **Waiting.** A [`Ticket`] names an LSN. Blocking callers spin for about one batch time, then
//! park on a condvar; async callers (the protocol server) await a `tokio::sync::Notify`, so no
//! I/O thread ever blocks on the disk.
//!
//! **Fail-stop.** The first failed write or fdatasync ends the writer: the failure is kept,
//! every waiter — now and later — gets it, appends are refused, and nothing is retried (after
//! a failed fdatasync the kernel may have dropped the dirty pages; retrying could report
//! success for data that is gone).
//!
//! **Batches.** No delay is added by default, but a burst is taken whole: right after a batch
//! releases its waiters, the writer keeps collecting while waited-for appends arrive back to
//! back, briefly (see `take_burst_whole`), so W submitters in a closed loop make batches of W, not W/2. Records
//! nobody waits for (started, finished) never start a batch: they ride with the next one, or
//! go within [`LAZY_FLUSH`].
//!
//! **Segments.** A preparer thread keeps the next segment created (zero-filled, fdatasync'd,
//! renamed, directory fsync'd) before the writer needs it. A group never spans segments. When
//! a segment fills, the writer fdatasyncs it and hands it to the checkpointer thread; every
//! `wal.checkpoint_every` bytes of closed segments, that thread replays them into its own copy
//! of the state, writes a checkpoint and deletes the segments it covers. Closed segments
//! awaiting a checkpoint are bounded ([`backlog_limit`]): beyond the bound the writer waits for
//! the checkpointer before it opens the next segment, so a disk slower than the load slows
//! acknowledgements instead of filling up. A failing checkpointer is not waited for (its
//! error is in the metrics; disk use then grows).

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::metrics::{Metrics, WalSync};
use super::record::{self, EncodeError, GroupEncoder};
use super::recovery::{self, State};
use super::segment::{self, Io};
use crate::runtime::lock;

/// Appended bytes waiting for the writer beyond which new submissions are refused (records of
/// tasks already accepted — started, finished, cancelled — are always taken).
pub const MAX_PENDING_BYTES: usize = 64 << 20;

/// How long the writer spins for more work after a batch before it parks.
const WRITER_SPIN: Duration = Duration::from_micros(50);

/// While taking a burst whole, the longest gap between appends the writer waits out.
const BURST_GAP: Duration = Duration::from_micros(10);

/// The longest the writer keeps taking a burst that is still arriving back to back. Longer
/// than a batch takes: thousands of waiters released at once take longer than one fdatasync
/// to append again (about 270 ns each). Stopping at a batch's time split W = 4,096 into
/// batches of 60% of W, 1 ms into 78%; 2 ms gives 93% with a lower p99 (benches/wal.rs).
const BURST_CAP: Duration = Duration::from_millis(2);

/// Within [`BURST_CAP`], a burst is waited for at most this long per waiter the last batch
/// released, plus [`BURST_FLOOR`]: released waiters append again in well under a microsecond
/// each, while new submissions arriving on their own (open loop) are no burst to wait for —
/// with only the flat cap they kept the writer gathering for most of a round.
const BURST_PER_WAITER: Duration = Duration::from_micros(1);

/// See [`BURST_PER_WAITER`]: time for the first released waiter to wake up.
const BURST_FLOOR: Duration = Duration::from_micros(20);

/// Background records (nobody waits for them) are written at the latest this long after the
/// first of them was appended, when no acknowledged record takes them along sooner.
pub const LAZY_FLUSH: Duration = Duration::from_millis(5);

/// What an append is for: whether the writer hurries, and whether a writer far behind
/// refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendKind {
    /// A new submission: acknowledged once durable; refused while the writer is far behind.
    Submission,
    /// A record a caller waits for (a cancel): written at once, never refused.
    Waited,
    /// A record nobody waits for (started, finished): it rides along with the next batch
    /// someone waits for, or is written within [`LAZY_FLUSH`], so it never costs an
    /// acknowledgement an extra fdatasync.
    Background,
}

/// The log has failed (fail-stop) and acknowledges nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the write-ahead log failed and acknowledges nothing more: {failure}")]
pub struct DurabilityError {
    /// What failed, naming the operation and its file.
    pub failure: Arc<str>,
    /// What became of the records of the request that gets this error.
    pub fate: Unacknowledged,
}

/// What became of records the log failed before acknowledging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unacknowledged {
    /// Never written: they are not in the log, and no restart brings them back.
    NotWritten,
    /// Written, or being written, when the log failed, without an fdatasync known to have
    /// kept them: a restart may or may not find them.
    MaybeWritten,
}

impl DurabilityError {
    /// A failure for a request none of whose records were written.
    pub fn not_written(failure: Arc<str>) -> Self {
        Self {
            failure,
            fate: Unacknowledged::NotWritten,
        }
    }

    /// What the request's client is to know and do, after the failure itself.
    pub fn fate_note(&self) -> &'static str {
        match self.fate {
            Unacknowledged::NotWritten => "nothing from this request was written to the log",
            Unacknowledged::MaybeWritten => {
                "this request was not acknowledged, but its records were being written when the log failed and may be on disk: after the node starts again, `goliath tasks` shows whether its tasks are there, and a retry with the same idempotency key gives their ids instead of submitting them twice"
            }
        }
    }
}

/// Why an append was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The log failed earlier.
    #[error(transparent)]
    Failed(#[from] DurabilityError),
    /// The log is shutting down.
    #[error("the write-ahead log is shutting down")]
    Stopped,
    /// Too many bytes wait for the writer.
    #[error("the write-ahead log is {pending} bytes behind (limit {limit}); retry shortly")]
    Behind {
        /// Bytes waiting.
        pending: usize,
        /// The limit.
        limit: usize,
    },
    /// The records could not be encoded or are too large.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Closed segments awaiting a checkpoint.
#[derive(Debug)]
struct Backlog {
    /// Bytes of closed segments not yet covered by a checkpoint and removed.
    bytes: u64,
    /// The checkpointer failed or stopped: waiting for it would never end.
    checkpointer_stalled: bool,
}

/// The most bytes of closed segments that may await a checkpoint before the writer waits for
/// the checkpointer: two checkpoints' worth and a segment, so the checkpointer always has a
/// whole checkpoint's worth to work on while the writer goes on.
pub fn backlog_limit(checkpoint_every: u64, segment_size: u64) -> u64 {
    checkpoint_every
        .saturating_mul(2)
        .saturating_add(segment_size)
}

/// How often the writer says, at most, that it is waiting for the checkpointer.
const BACKLOG_WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Pending {
    buffer: Vec<u8>,
    /// LSN the next record gets (LSNs start at 1).
    next_lsn: u64,
    /// When the first background record now pending was appended.
    background_since: Option<Instant>,
    writer_idle: bool,
    stopping: bool,
}

/// State shared by appenders, waiters and the writer.
#[derive(Debug)]
pub(crate) struct LogShared {
    pending: Mutex<Pending>,
    writer_wake: Condvar,
    /// Highest LSN appended (mirrors `next_lsn - 1`, readable without the lock).
    appended: AtomicU64,
    /// Highest LSN of a record someone waits for.
    urgent: AtomicU64,
    /// Groups appended that someone waits for (each a waiter that may append again once
    /// released); changed only under the `pending` lock.
    urgent_groups: AtomicU64,
    /// Highest LSN durable (per the sync mode).
    durable: AtomicU64,
    /// Highest LSN the writer has started to write (set before the write): a record above
    /// `durable` and at most this may be on disk after a failure, one above it is not.
    writing: AtomicU64,
    failed: AtomicBool,
    failure: OnceLock<Arc<str>>,
    sync_waiters: AtomicUsize,
    sync_lock: Mutex<()>,
    sync_wake: Condvar,
    notify: tokio::sync::Notify,
    /// Closed segments the checkpointer has not yet removed, and whether it can remove them.
    backlog: Mutex<Backlog>,
    backlog_shrunk: Condvar,
    max_payload: usize,
    max_group: usize,
    pub metrics: Metrics,
}

impl LogShared {
    pub fn new(max_payload: usize, max_group: usize) -> Self {
        Self {
            pending: Mutex::new(Pending {
                buffer: Vec::with_capacity(1 << 16),
                next_lsn: 1,
                background_since: None,
                writer_idle: false,
                stopping: false,
            }),
            writer_wake: Condvar::new(),
            appended: AtomicU64::new(0),
            urgent: AtomicU64::new(0),
            urgent_groups: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            writing: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            failure: OnceLock::new(),
            sync_waiters: AtomicUsize::new(0),
            sync_lock: Mutex::new(()),
            sync_wake: Condvar::new(),
            notify: tokio::sync::Notify::new(),
            backlog: Mutex::new(Backlog {
                bytes: 0,
                checkpointer_stalled: false,
            }),
            backlog_shrunk: Condvar::new(),
            max_payload,
            max_group,
            metrics: Metrics::default(),
        }
    }

    /// The failure, once the log has failed.
    pub fn failure(&self) -> Option<Arc<str>> {
        if self.failed.load(Ordering::Acquire) {
            self.failure.get().cloned()
        } else {
            None
        }
    }

    /// The failure as the request whose last record is `lsn` gets it (`None`: a request
    /// that appended nothing).
    fn failed_error(&self, lsn: Option<u64>) -> DurabilityError {
        let failure = self
            .failure
            .get()
            .cloned()
            .unwrap_or_else(|| Arc::from("unknown failure"));
        let fate = match lsn {
            Some(lsn) if lsn <= self.writing.load(Ordering::SeqCst) => Unacknowledged::MaybeWritten,
            _ => Unacknowledged::NotWritten,
        };
        DurabilityError { failure, fate }
    }

    /// Appends one group built by `build`; returns its result and the group's last LSN.
    pub fn append<R>(
        &self,
        kind: AppendKind,
        build: impl FnOnce(&mut GroupEncoder<'_>) -> Result<R, EncodeError>,
    ) -> Result<(R, u64), AppendError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(self.failed_error(None).into());
        }
        let mut pending = lock(&self.pending);
        if pending.stopping {
            return Err(AppendError::Stopped);
        }
        if kind == AppendKind::Submission && pending.buffer.len() > MAX_PENDING_BYTES {
            return Err(AppendError::Behind {
                pending: pending.buffer.len(),
                limit: MAX_PENDING_BYTES,
            });
        }
        let mut group = GroupEncoder::new(&mut pending.buffer, self.max_payload, self.max_group);
        let result = build(&mut group)?;
        let (records, _) = group.finish()?;
        pending.next_lsn += records;
        let lsn = pending.next_lsn - 1;
        self.appended.store(lsn, Ordering::Release);
        let mut wake = false;
        if records > 0 {
            if kind == AppendKind::Background {
                // The writer only needs to hear of the first: it then sets its timer.
                if pending.background_since.is_none() {
                    pending.background_since = Some(Instant::now());
                    wake = pending.writer_idle;
                }
            } else {
                self.urgent.store(lsn, Ordering::Release);
                self.urgent_groups.fetch_add(1, Ordering::Release);
                wake = pending.writer_idle;
            }
        }
        if wake {
            pending.writer_idle = false;
        }
        drop(pending);
        if wake {
            self.writer_wake.notify_one();
        }
        if records > 0 {
            self.metrics
                .appended_records
                .fetch_add(records, Ordering::Relaxed);
        }
        Ok((result, lsn))
    }

    /// Whether `lsn` is durable, or the error if it never will be.
    fn check(&self, lsn: u64) -> Option<Result<(), DurabilityError>> {
        if self.durable.load(Ordering::SeqCst) >= lsn {
            Some(Ok(()))
        } else if self.failed.load(Ordering::SeqCst) {
            Some(Err(self.failed_error(Some(lsn))))
        } else {
            None
        }
    }

    /// Blocks until `lsn` is durable: spins for about one batch time, then parks.
    pub fn wait(&self, lsn: u64) -> Result<(), DurabilityError> {
        if let Some(result) = self.check(lsn) {
            return result;
        }
        let budget = Duration::from_nanos(
            (2 * self.metrics.batch_ns_average.load(Ordering::Relaxed)).clamp(20_000, 1_000_000),
        );
        let start = Instant::now();
        let mut spins = 0u32;
        while start.elapsed() < budget {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            if let Some(result) = self.check(lsn) {
                return result;
            }
            spins += 1;
            // Give the core away now and then: on a busy machine the writer may need it.
            if spins.is_multiple_of(16) {
                std::thread::yield_now();
            }
        }
        self.sync_waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = lock(&self.sync_lock);
        let result = loop {
            if let Some(result) = self.check(lsn) {
                break result;
            }
            guard = self
                .sync_wake
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        };
        drop(guard);
        self.sync_waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Resolves when `lsn` is durable.
    pub async fn wait_async(&self, lsn: u64) -> Result<(), DurabilityError> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(result) = self.check(lsn) {
                return result;
            }
            notified.await;
        }
    }

    /// Resolves when the log fails.
    pub async fn wait_failed(&self) -> Arc<str> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(failure) = self.failure() {
                return failure;
            }
            notified.await;
        }
    }

    fn wake_waiters(&self) {
        if self.sync_waiters.load(Ordering::SeqCst) > 0 {
            let _guard = lock(&self.sync_lock);
            self.sync_wake.notify_all();
        }
        self.notify.notify_waiters();
    }

    fn publish(&self, lsn: u64) {
        self.durable.store(lsn, Ordering::SeqCst);
        self.wake_waiters();
    }

    /// The checkpointer removed `bytes` of closed segments (or, with `stalled`, cannot).
    fn backlog_progress(&self, bytes: u64, stalled: bool) {
        let mut backlog = lock(&self.backlog);
        backlog.bytes = backlog.bytes.saturating_sub(bytes);
        backlog.checkpointer_stalled = stalled;
        drop(backlog);
        self.backlog_shrunk.notify_all();
    }

    /// Fail-stop: keeps the first failure, refuses appends, wakes every waiter.
    pub fn fail(&self, message: String) {
        if self.failure.set(Arc::from(message.as_str())).is_ok() {
            tracing::error!(error = %message, "write-ahead log failed: acknowledging nothing more");
        }
        self.failed.store(true, Ordering::SeqCst);
        lock(&self.pending).stopping = true;
        self.wake_backlog_waiter();
        // Wake sync waiters even if none registered yet: they re-check under the lock.
        {
            let _guard = lock(&self.sync_lock);
            self.sync_wake.notify_all();
        }
        self.notify.notify_waiters();
    }

    /// Asks the writer to write what is pending and stop.
    pub fn stop(&self) {
        let mut pending = lock(&self.pending);
        pending.stopping = true;
        drop(pending);
        self.writer_wake.notify_all();
        self.wake_backlog_waiter();
    }

    /// Wakes a writer waiting for the checkpointer after `stopping` was set: it checks
    /// `stopping` while holding the backlog lock, so taking that lock here first means it
    /// either already waits (and gets this notification) or has yet to look (and sees it).
    fn wake_backlog_waiter(&self) {
        drop(lock(&self.backlog));
        self.backlog_shrunk.notify_all();
    }

    /// The highest LSN durable.
    pub fn durable_lsn(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// The highest LSN appended.
    pub fn appended_lsn(&self) -> u64 {
        self.appended.load(Ordering::Acquire)
    }

    /// Records appended but not yet durable.
    pub fn pending_records(&self) -> u64 {
        self.appended
            .load(Ordering::Relaxed)
            .saturating_sub(self.durable.load(Ordering::Relaxed))
    }
}

/// A promise that appended records become durable. Cheap to clone; waiting allocates nothing.
#[derive(Debug, Clone)]
pub struct Ticket {
    lsn: u64,
    log: Option<Arc<LogShared>>,
}

impl Ticket {
    /// A ticket that is already durable (memory-only nodes, nothing appended).
    pub fn ready() -> Ticket {
        Ticket { lsn: 0, log: None }
    }

    pub(crate) fn new(log: &Arc<LogShared>, lsn: u64) -> Ticket {
        Ticket {
            lsn,
            log: (lsn > 0).then(|| log.clone()),
        }
    }

    /// The later of two tickets (waiting for it waits for both).
    pub fn max(self, other: Ticket) -> Ticket {
        if other.lsn > self.lsn { other } else { self }
    }

    /// The log sequence number this ticket waits for (0 for a ready ticket).
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// Whether the records are durable now (an error if they never will be).
    pub fn is_durable(&self) -> Result<bool, DurabilityError> {
        match &self.log {
            None => Ok(true),
            Some(log) => match log.check(self.lsn) {
                Some(Ok(())) => Ok(true),
                Some(Err(error)) => Err(error),
                None => Ok(false),
            },
        }
    }

    /// Blocks until the records are durable.
    pub fn wait(&self) -> Result<(), DurabilityError> {
        match &self.log {
            None => Ok(()),
            Some(log) => log.wait(self.lsn),
        }
    }

    /// Resolves when the records are durable; never blocks a thread.
    pub async fn durable(&self) -> Result<(), DurabilityError> {
        match &self.log {
            None => Ok(()),
            Some(log) => log.wait_async(self.lsn).await,
        }
    }
}

// ---------------------------------------------------------------- segment preparer

#[derive(Debug, Default)]
struct PrepareState {
    requested: Option<u64>,
    working: Option<u64>,
    ready: Option<(u64, std::io::Result<(File, u64)>)>,
    stopping: bool,
    /// The writer waits for the segment being created: no more pauses.
    needed_now: bool,
    /// Why the last segment asked for could not be created ahead of time, until one is
    /// created (here or by the writer): what the log's state shows while it still works.
    problem: Option<String>,
}

impl PrepareState {
    /// Whether the segment being created is to be finished without pauses: the writer
    /// waits for it, or the log stops.
    fn in_a_hurry(&self) -> bool {
        self.needed_now || self.stopping
    }
}

/// The pause between the pieces of zeros of a segment created ahead of time. 256 KiB per
/// 2 ms is at most 128 MiB/s of zeros, less the pieces' own writing: a 16 MiB segment is
/// ready in about 170 ms, well before a log writing 30 MB/s fills the current one; a faster
/// log that catches up ends the pauses (`needed_now`), and so does a stopping log.
const PREPARE_PAUSE: Duration = Duration::from_millis(2);

/// Out of file descriptors, the writer tries again to create its next segment after this
/// long, doubling up to [`DESCRIPTOR_RETRY_MAX`], and warns again every
/// [`DESCRIPTOR_WARN_EVERY`] of waiting.
const DESCRIPTOR_RETRY_FIRST: Duration = Duration::from_millis(10);
const DESCRIPTOR_RETRY_MAX: Duration = Duration::from_millis(500);
const DESCRIPTOR_WARN_EVERY: Duration = Duration::from_secs(60);

/// The CPU priority (nice value) of the segment preparer and the checkpointer: below the
/// threads that acknowledge submissions, whose cores their work would otherwise take (the
/// preparer copies a segment of zeros, the checkpointer replays whole segments), but not so
/// low that a node whose cores are busy with tasks starves them (nice 19 would give them
/// about 1.5% of a busy core; 10, about 10%), since the writer waits for each at times: for
/// the next segment when it catches up, for the checkpointer when its backlog is over the
/// limit.
const BACKGROUND_NICE: i32 = 10;

/// Creates the next segment ahead of time on its own thread.
#[derive(Debug)]
pub(crate) struct Preparer {
    state: Mutex<PrepareState>,
    wake: Condvar,
    dir: PathBuf,
    size: u64,
    /// The log the segments belong to.
    log_id: u64,
    io: Io,
}

impl Preparer {
    pub fn new(dir: PathBuf, size: u64, log_id: u64, io: Io) -> Self {
        Self {
            state: Mutex::new(PrepareState::default()),
            wake: Condvar::new(),
            dir,
            size,
            log_id,
            io,
        }
    }

    /// Asks for segment `seq` to be created in the background.
    pub fn request(&self, seq: u64) {
        lock(&self.state).requested = Some(seq);
        self.wake.notify_all();
    }

    /// The preparer thread's loop.
    pub fn run(&self) {
        lower_background_priority("segment preparer");
        loop {
            let mut state = lock(&self.state);
            let seq = loop {
                if state.stopping {
                    return;
                }
                if let Some(seq) = state.requested.take() {
                    break seq;
                }
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            };
            state.working = Some(seq);
            drop(state);
            // Pauses; false (no more pauses, nor a sync per piece) once the segment is
            // needed now or the log stops.
            let pause = || {
                let mut state = lock(&self.state);
                if !state.in_a_hurry() {
                    state = self
                        .wake
                        .wait_timeout(state, PREPARE_PAUSE)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
                !state.in_a_hurry()
            };
            let result = self.io.create_segment_paced(
                &self.dir,
                seq,
                self.size,
                self.log_id,
                unix_now_us(),
                Some(&pause),
            );
            if let Err(error) = &result {
                tracing::warn!(segment = %segment::segment_name(seq), %error, "cannot create the next WAL segment yet; will try again when it is needed");
            }
            let mut state = lock(&self.state);
            state.problem = match &result {
                Ok(_) => None,
                Err(error) => Some(self.problem_text(seq, error)),
            };
            state.working = None;
            state.needed_now = false;
            state.ready = Some((seq, result));
            drop(state);
            self.wake.notify_all();
        }
    }

    /// Why the next segment could not be created ahead of time, while that is so: the log
    /// works on, and the text says what happens when its current segment fills.
    pub fn problem(&self) -> Option<String> {
        lock(&self.state).problem.clone()
    }

    fn problem_text(&self, seq: u64, error: &std::io::Error) -> String {
        let then = if crate::runtime::sys::out_of_file_descriptors(error) {
            format!(
                "when the current one fills, acknowledgements wait for a file descriptor: {}",
                crate::runtime::sys::OUT_OF_DESCRIPTORS_ADVICE
            )
        } else if error.kind() == std::io::ErrorKind::StorageFull {
            format!(
                "when the current one fills, the log fails and the node acknowledges nothing more: free space in {}",
                self.dir.display()
            )
        } else {
            "it is tried again when the current one fills, and the log fails if that fails too"
                .to_string()
        };
        // The reason first: a narrow console pane shows the start of the line.
        format!(
            "{error}, creating segment {} ({}) ahead of time; {then}",
            segment::segment_name(seq),
            crate::runtime::units::HumanSize::approx(self.size)
        )
    }

    /// Segment `seq`, ready: the prepared one, or created now if preparing it failed.
    pub fn take(&self, seq: u64) -> std::io::Result<(File, u64)> {
        let taken = self.take_or_create(seq);
        if taken.is_ok() {
            lock(&self.state).problem = None;
        }
        taken
    }

    fn take_or_create(&self, seq: u64) -> std::io::Result<(File, u64)> {
        let mut state = lock(&self.state);
        loop {
            if let Some((ready_seq, _)) = &state.ready
                && *ready_seq == seq
                && let Some((_, result)) = state.ready.take()
            {
                match result {
                    Ok(segment) => return Ok(segment),
                    Err(_) => break,
                }
            }
            // A request the preparer has not taken up is not waited for once it stops: it
            // never will take it up.
            if state.working == Some(seq) || (state.requested == Some(seq) && !state.stopping) {
                state.needed_now = true;
                self.wake.notify_all();
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            break;
        }
        drop(state);
        // One more attempt here; if the disk is still full this fails the log. Out of file
        // descriptors, it waits for one instead (nothing was written, so nothing is retried
        // on the same data): clients or exec tasks holding them all for a moment stopped the
        // log for good, and the node with it.
        let began = Instant::now();
        let mut pause = DESCRIPTOR_RETRY_FIRST;
        let mut warned_at: Option<Instant> = None;
        loop {
            let error = match self.io.create_segment(
                &self.dir,
                seq,
                self.size,
                self.log_id,
                unix_now_us(),
            ) {
                Ok(segment) => {
                    if warned_at.is_some() {
                        tracing::info!(segment = %segment::segment_name(seq), waited = ?began.elapsed(), "WAL: a file descriptor came free; acknowledgements go on");
                    }
                    return Ok(segment);
                }
                Err(error) if crate::runtime::sys::out_of_file_descriptors(&error) => error,
                Err(error) => return Err(error),
            };
            if warned_at.is_none_or(|at| at.elapsed() >= DESCRIPTOR_WARN_EVERY) {
                warned_at = Some(Instant::now());
                tracing::warn!(segment = %segment::segment_name(seq), %error, waited = ?began.elapsed(), "WAL: no file descriptor to create the next segment; acknowledgements wait until one is closed: {}", crate::runtime::sys::OUT_OF_DESCRIPTORS_ADVICE);
            }
            let state = lock(&self.state);
            if state.stopping {
                return Err(error);
            }
            let (state, _) = self
                .wake
                .wait_timeout(state, pause)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if state.stopping {
                return Err(error);
            }
            drop(state);
            pause = (pause * 2).min(DESCRIPTOR_RETRY_MAX);
        }
    }

    /// Stops the thread.
    pub fn stop(&self) {
        lock(&self.state).stopping = true;
        self.wake.notify_all();
    }
}

/// Puts the calling WAL thread (`what`) at [`BACKGROUND_NICE`]; where the system refuses,
/// it keeps its priority and says so at debug level.
fn lower_background_priority(what: &str) {
    if let Err(error) = crate::runtime::sys::lower_thread_priority(BACKGROUND_NICE) {
        tracing::debug!(%error, "the WAL {what} keeps its normal CPU priority");
    }
}

/// Now as Unix µs.
pub(crate) fn unix_now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------- writer thread

/// A batch the writer could not write whole.
struct BatchFailure {
    /// What failed, naming the operation and its file.
    error: String,
    /// The last LSN of the batch that was kept all the same (the batch's first LSN less one
    /// if none was).
    kept: u64,
}

/// The writer thread's own state.
pub(crate) struct Writer {
    pub log: Arc<LogShared>,
    pub io: Io,
    pub sync: WalSync,
    pub max_batch_delay: Duration,
    pub segment_size: u64,
    pub seq: u64,
    pub file: File,
    pub offset: u64,
    pub data_start: u64,
    /// Whether the next write's first record is flagged [`record::mark_after_sync`], which
    /// recovery reads as a boundary no power loss crosses: set after an fdatasync, for a
    /// fresh segment, and after every write with `wal.sync = never` (which acknowledges
    /// before the disk has it, so every write is a boundary of what was acknowledged).
    pub synced: bool,
    pub preparer: Arc<Preparer>,
    /// Each closed segment and its size, to the checkpointer.
    pub closed: Sender<(u64, u64)>,
    /// See [`backlog_limit`].
    pub backlog_limit: u64,
    /// `wal.checkpoint_every`, which a waiting writer's warning weighs checkpoints against.
    pub checkpoint_every: u64,
    /// When the writer last said it waits for the checkpointer.
    pub backlog_warned: Option<Instant>,
    /// The data directory.
    pub dir: PathBuf,
    /// Device and inode of the `LOCK` file this node holds.
    pub lock_identity: (u64, u64),
    /// When [`Writer::directory_still_ours`] last looked before a batch (`None`: not yet).
    pub directory_checked: Option<Instant>,
}

/// How often an idle writer checks that the data directory is still the one it locked.
const DIRECTORY_CHECK: Duration = Duration::from_secs(1);
/// How often a busy one does, before a batch: at most a millisecond of acknowledgements can
/// follow a change, and a log with `wal.sync = never`, whose batches take microseconds,
/// does not spend two `stat` calls on each.
const DIRECTORY_CHECK_BUSY: Duration = Duration::from_millis(1);

impl Writer {
    /// The writer thread's loop: take a batch, write it, fdatasync, publish. Ends on stop
    /// (after writing what is pending) or on the first failure.
    pub fn run(mut self) {
        let log = self.log.clone();
        let mut batch: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut taken: u64 = 0;
        // Waited-for groups: taken into batches so far, acknowledged by the last batch (the
        // waiters it released may append again), and already pending when it did (appended
        // during its fdatasync). Background records are not counted: nobody re-appends them.
        let mut urgent_taken: u64 = 0;
        let mut released: u64 = 0;
        let mut carried: u64 = 0;
        let mut published_at = Instant::now();
        loop {
            // Spin a little (a waiter released by the last batch usually appends again within
            // microseconds), then yield the core while still looking, then park.
            let now = Instant::now();
            let spin_until = now + WRITER_SPIN / 5;
            let look_until = now + WRITER_SPIN;
            loop {
                if log.urgent.load(Ordering::Acquire) > taken {
                    break;
                }
                let now = Instant::now();
                if now >= look_until {
                    break;
                }
                if now < spin_until {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            let mut pending = lock(&log.pending);
            loop {
                if pending.stopping || log.urgent.load(Ordering::Acquire) > taken {
                    break;
                }
                let Some(since) = pending.background_since else {
                    pending.writer_idle = true;
                    let (guard, waited) = log
                        .writer_wake
                        .wait_timeout(pending, DIRECTORY_CHECK)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    pending = guard;
                    if waited.timed_out()
                        && !pending.stopping
                        && log.urgent.load(Ordering::Acquire) <= taken
                    {
                        // Idle: the directory is looked at all the same, so a node whose
                        // directory went away stops now, not at its next submission.
                        drop(pending);
                        if let Err(error) = self.directory_still_ours() {
                            log.fail(error);
                            return;
                        }
                        pending = lock(&log.pending);
                    }
                    continue;
                };
                let due = since + LAZY_FLUSH;
                let now = Instant::now();
                if now >= due {
                    break;
                }
                pending.writer_idle = true;
                pending = log
                    .writer_wake
                    .wait_timeout(pending, due - now)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|poisoned| poisoned.into_inner().0);
            }
            pending.writer_idle = false;
            if log.failed.load(Ordering::Acquire) {
                return;
            }
            if pending.buffer.is_empty() {
                // Stopping with nothing left.
                drop(pending);
                self.close();
                return;
            }
            if !self.max_batch_delay.is_zero() && !pending.stopping {
                drop(pending);
                std::thread::sleep(self.max_batch_delay);
                pending = lock(&log.pending);
            } else if released > 1
                && !pending.stopping
                && published_at.elapsed() < Duration::from_millis(1)
            {
                drop(pending);
                self.take_burst_whole(urgent_taken, carried, released);
                pending = lock(&log.pending);
            }
            std::mem::swap(&mut pending.buffer, &mut batch);
            pending.background_since = None;
            let end = pending.next_lsn - 1;
            let urgent_now = log.urgent_groups.load(Ordering::Acquire);
            drop(pending);
            let records = end - taken;
            let started = Instant::now();
            if self
                .directory_checked
                .is_none_or(|at| started.saturating_duration_since(at) >= DIRECTORY_CHECK_BUSY)
            {
                self.directory_checked = Some(started);
                if let Err(error) = self.directory_still_ours() {
                    log.fail(error);
                    return;
                }
            }
            match self.write_batch(&mut batch, taken) {
                Ok(()) => {
                    log.metrics
                        .record_batch(records, batch.len() as u64, started.elapsed());
                    log.publish(end);
                    published_at = Instant::now();
                    carried = log
                        .urgent_groups
                        .load(Ordering::Acquire)
                        .saturating_sub(urgent_now);
                    released = urgent_now - urgent_taken;
                    urgent_taken = urgent_now;
                    taken = end;
                }
                Err(BatchFailure { error, kept }) => {
                    // The groups a closed segment's fdatasync kept before the failure are
                    // acknowledged: a restart finds them, so their clients must not hear
                    // that nothing was.
                    if kept > taken {
                        log.publish(kept);
                    }
                    log.fail(error);
                    return;
                }
            }
            batch.clear();
            if batch.capacity() > 16 << 20 {
                batch.shrink_to(1 << 16);
            }
        }
    }

    /// Group commit without added delay takes whatever is pending the moment the writer
    /// looks — right after releasing the last batch's waiters, before they could append again —
    /// so a steady window of W in flight splits into alternating full and tiny batches (W/2
    /// records per fdatasync). Instead, while waited-for appends keep arriving back to back
    /// (gaps under [`BURST_GAP`]), the writer takes the burst whole: until what was pending
    /// plus as many as the last batch released have arrived (`carried + released` waited-for
    /// groups since the `taken`-th), and never for longer than [`BURST_CAP`] or than the
    /// released waiters take to come back ([`BURST_PER_WAITER`]). Appends that trickle in end
    /// the wait within one gap. Background records neither count nor prolong the wait: with
    /// them counted, a node running its tasks kept the writer gathering for the whole cap.
    fn take_burst_whole(&self, taken: u64, carried: u64, released: u64) {
        let log = &self.log;
        let start = Instant::now();
        let target = carried + released;
        let cap = BURST_CAP.min(BURST_FLOOR + BURST_PER_WAITER * released.min(1 << 20) as u32);
        let mut seen = log.urgent_groups.load(Ordering::Acquire);
        let mut changed = start;
        loop {
            let appended = log.urgent_groups.load(Ordering::Acquire);
            if appended.saturating_sub(taken) >= target {
                return;
            }
            let now = Instant::now();
            if appended != seen {
                seen = appended;
                changed = now;
            } else if now.duration_since(changed) >= BURST_GAP {
                return;
            }
            if now.duration_since(start) >= cap {
                return;
            }
            // Yield, not spin: on a busy machine the appender may be waiting for this core.
            std::thread::yield_now();
        }
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        let started = Instant::now();
        self.io.sync_data(&self.file)?;
        self.log.metrics.record_fsync(started.elapsed());
        self.synced = true;
        Ok(())
    }

    /// Writes `batch`, whose records follow LSN `taken` (rolling to new segments as they
    /// fill) and, with `wal.sync = always`, fdatasyncs it. The error names the operation that
    /// failed and its file, and says up to which LSN the batch was kept all the same (by the
    /// fdatasync that closed a segment, or by a write with `wal.sync = never`).
    fn write_batch(&mut self, batch: &mut [u8], taken: u64) -> Result<(), BatchFailure> {
        let mut rest = batch;
        // The last LSN written, and the last kept.
        let mut written = taken;
        let mut kept = taken;
        while !rest.is_empty() {
            // The end of every segment is kept for its end record (see `roll`).
            let room = self
                .segment_size
                .saturating_sub(record::SEGMENT_END_LEN as u64)
                .saturating_sub(self.offset) as usize;
            let (take, records) = record::group_prefix_counted(rest, room);
            if take == 0 {
                if self.offset == self.data_start {
                    return Err(BatchFailure {
                        error: format!(
                            "a group of records is larger than a whole segment ({})",
                            segment::segment_name(self.seq)
                        ),
                        kept,
                    });
                }
                self.roll(&mut kept, written)
                    .map_err(|error| BatchFailure { error, kept })?;
                continue;
            }
            let (chunk, after) = std::mem::take(&mut rest).split_at_mut(take);
            let chunk_end = written + records;
            // Before the write: from here on a failure may leave these records on disk.
            self.log.writing.store(chunk_end, Ordering::SeqCst);
            self.write_records(chunk, "writing segment")
                .map_err(|error| BatchFailure { error, kept })?;
            written = chunk_end;
            if self.sync == WalSync::Never {
                kept = written;
            }
            rest = after;
            if !rest.is_empty() {
                self.roll(&mut kept, written)
                    .map_err(|error| BatchFailure { error, kept })?;
            }
        }
        if self.sync == WalSync::Always {
            self.sync_named()
                .map_err(|error| BatchFailure { error, kept })?;
        }
        Ok(())
    }

    /// Before a batch is written (at most once per [`DIRECTORY_CHECK_BUSY`]), and once per
    /// [`DIRECTORY_CHECK`] while idle: whether
    /// the data directory still holds the `LOCK` this node took, and the segment being
    /// written is still in it. Removed or replaced (the directory deleted, `LOCK` removed
    /// and another node started on it, segments deleted), what this node writes is no
    /// longer what a restart would read, so nothing more may be acknowledged. Two `stat`
    /// calls, a few microseconds against a batch's fdatasync.
    fn directory_still_ours(&self) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt as _;
        let path = self.dir.join(segment::LOCK_FILE);
        match std::fs::metadata(&path) {
            Ok(found) if (found.dev(), found.ino()) == self.lock_identity => {}
            Ok(_) => {
                return Err(format!(
                    "the data directory's lock file {} was replaced while this node ran: another node may be using {} now",
                    path.display(),
                    self.dir.display()
                ));
            }
            Err(_) if !self.dir.is_dir() => {
                return Err(format!(
                    "the data directory {} was removed while this node ran: a restart would not find what it acknowledged",
                    self.dir.display()
                ));
            }
            Err(error) => {
                return Err(format!(
                    "the data directory's lock file {} was removed while this node ran ({error}): another node could now start on {} and write to the same log, so this one acknowledges nothing more",
                    path.display(),
                    self.dir.display()
                ));
            }
        }
        match self.file.metadata() {
            Ok(open) if open.nlink() == 0 => Err(format!(
                "segment {} was deleted from {} while this node wrote it: a restart would not find what it holds",
                segment::segment_name(self.seq),
                self.dir.display()
            )),
            _ => Ok(()),
        }
    }

    /// [`Writer::sync_data`], its error naming the segment.
    fn sync_named(&mut self) -> Result<(), String> {
        self.sync_data().map_err(|error| {
            format!(
                "fdatasync of segment {}: {error}",
                segment::segment_name(self.seq)
            )
        })
    }

    /// Writes whole records at the segment's end and moves past them; `what` names the write
    /// in an error. With sync = never a write is acknowledged as soon as it is made, so every
    /// write is a boundary recovery must not cross; else only one after an fdatasync is.
    fn write_records(&mut self, records: &mut [u8], what: &str) -> Result<(), String> {
        if self.synced || self.sync == WalSync::Never {
            record::mark_after_sync(records);
            self.synced = false;
        }
        self.io
            .write_at(&self.file, records, self.offset)
            .map_err(|error| {
                format!(
                    "{what} {} at offset {}: {error}",
                    segment::segment_name(self.seq),
                    self.offset
                )
            })?;
        self.offset += records.len() as u64;
        Ok(())
    }

    /// Closes the full segment with its end record (durable in both sync modes, before the
    /// next segment takes any record) and moves to the next. Recovery needs the end record of
    /// every segment but the newest: without it, a closed segment's lost last records (zeros
    /// on disk) would read as the segment's clean end. Once the closing fdatasync is done,
    /// everything written (up to LSN `written`) is kept: `kept` is raised to it, so a failure
    /// to create the next segment still acknowledges it.
    fn roll(&mut self, kept: &mut u64, written: u64) -> Result<(), String> {
        let mut end = Vec::with_capacity(record::SEGMENT_END_LEN);
        record::encode_one(
            &mut end,
            record::RecordType::SegmentEnd,
            &record::SegmentEnd { segment: self.seq },
        )
        .map_err(|error| {
            format!(
                "encoding the end record of segment {}: {error}",
                segment::segment_name(self.seq)
            )
        })?;
        self.write_records(&mut end, "writing the end record of segment")?;
        self.sync_named()?;
        *kept = written;
        // Segments are created whole at `segment_size`.
        let closed_bytes = self.segment_size;
        let next = self.seq + 1;
        let (file, start) = self.preparer.take(next).map_err(|error| {
            let advice = if error.kind() == std::io::ErrorKind::StorageFull {
                // A start writes a checkpoint of what it recovers, then a segment; the node
                // then prepares the next. The checkpoint holds at most the last one plus what
                // the log took since (the closed segments awaiting one, and this one): the
                // last checkpoint alone (48 bytes early on) asked for half of what the
                // restart then needed.
                let last = self
                    .log
                    .metrics
                    .last_checkpoint_bytes
                    .load(Ordering::Relaxed);
                let since = lock(&self.log.backlog).bytes + closed_bytes;
                let checkpoint = last + since;
                format!(
                    "; free at least {} there: the restart's checkpoint of the tasks kept (up to {}: the last checkpoint and the log written since) and two segments (a start short of space says exactly what it needs)",
                    crate::runtime::units::HumanSize::approx(2 * self.segment_size + checkpoint),
                    crate::runtime::units::HumanSize::approx(checkpoint)
                )
            } else if crate::runtime::sys::out_of_file_descriptors(&error) {
                format!(
                    "; the node was out of file descriptors as it stopped: {}",
                    crate::runtime::sys::OUT_OF_DESCRIPTORS_ADVICE
                )
            } else {
                String::new()
            };
            format!(
                "creating the next segment {} ({}) in {}: {error}{advice}",
                segment::segment_name(next),
                crate::runtime::units::HumanSize::approx(self.segment_size),
                self.dir.display()
            )
        })?;
        let closed = self.seq;
        self.file = file;
        self.seq = next;
        self.offset = start;
        self.data_start = start;
        // Created whole and synced by the preparer.
        self.synced = true;
        self.preparer.request(next + 1);
        self.log
            .metrics
            .segments_rolled
            .fetch_add(1, Ordering::Relaxed);
        lock(&self.log.backlog).bytes += closed_bytes;
        if self.closed.send((closed, closed_bytes)).is_err() {
            self.log.backlog_progress(0, true);
        }
        self.wait_for_checkpointer();
        Ok(())
    }

    /// While closed segments awaiting a checkpoint are over their limit and the checkpointer
    /// is working, waits for it.
    fn wait_for_checkpointer(&mut self) {
        let log = &self.log;
        let mut backlog = lock(&log.backlog);
        if backlog.bytes <= self.backlog_limit || backlog.checkpointer_stalled {
            return;
        }
        if self
            .backlog_warned
            .is_none_or(|at| at.elapsed() >= BACKLOG_WARN_EVERY)
        {
            self.backlog_warned = Some(Instant::now());
            // Why, when it can be told: a checkpoint writes the whole state (every task in
            // flight, the history, the keys), and one larger than the log that triggers it
            // cannot keep up however fast the disk (28,000 tasks recovered on segments of
            // 64 KiB said "the disk is slower than the load").
            let checkpoint_every = self.checkpoint_every;
            let last_checkpoint = log.metrics.last_checkpoint_bytes.load(Ordering::Relaxed);
            let why = if last_checkpoint > checkpoint_every {
                format!(
                    "each checkpoint writes the whole state, {} the last time, more than the {} of log (wal.checkpoint_every) that starts one: raise wal.checkpoint_every",
                    crate::runtime::units::HumanSize::approx(last_checkpoint),
                    crate::runtime::units::HumanSize::approx(checkpoint_every)
                )
            } else {
                "a disk slower than the load, or a checkpoint under way of a state large beside wal.checkpoint_every: each writes every task in flight, the history and the keys".to_string()
            };
            tracing::warn!(
                awaiting_bytes = backlog.bytes,
                limit_bytes = self.backlog_limit,
                "WAL: acknowledgements wait for the checkpointer: closed segments awaiting a checkpoint reached 2 × wal.checkpoint_every + one segment ({why})"
            );
        }
        log.metrics.checkpoint_waits.fetch_add(1, Ordering::Relaxed);
        // A stopping node does not wait: what is pending gets written, and the bound is
        // exceeded by at most the last segments.
        while backlog.bytes > self.backlog_limit
            && !backlog.checkpointer_stalled
            && !lock(&log.pending).stopping
        {
            backlog = log
                .backlog_shrunk
                .wait(backlog)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// On a clean stop: makes everything written durable (it already is with `always`).
    fn close(&mut self) {
        if self.sync == WalSync::Never
            && let Err(error) = self.sync_data()
        {
            self.log.fail(format!(
                "fdatasync at shutdown of {}: {error}",
                segment::segment_name(self.seq)
            ));
        }
    }
}

// ---------------------------------------------------------------- checkpointer thread

/// The checkpointer thread: replays closed segments into its own state, writes checkpoints and
/// removes the segments they cover.
pub(crate) struct Checkpointer {
    pub dir: PathBuf,
    pub io: Io,
    pub state: State,
    /// The first segment not yet applied to `state`.
    pub next_segment: u64,
    pub checkpoint_every: u64,
    pub log: Arc<LogShared>,
    pub closed: Receiver<(u64, u64)>,
}

impl Checkpointer {
    /// Runs until the writer hangs up. Closed segments are only counted until a checkpoint
    /// is due; then they are replayed (in order) into the state, the checkpoint is written and
    /// the segments it covers are removed — no replay work or memory before it is needed.
    pub fn run(mut self) {
        // However this thread ends, the writer must not wait for it any more.
        struct Stalled(Arc<LogShared>);
        impl Drop for Stalled {
            fn drop(&mut self) {
                self.0.backlog_progress(0, true);
            }
        }
        let _stalled_on_exit = Stalled(self.log.clone());
        lower_background_priority("checkpointer");
        let mut buffer = Vec::new();
        let mut waiting: Vec<u64> = Vec::new();
        let mut since_checkpoint = 0u64;
        let mut broken = false;
        while let Ok((seq, bytes)) = self.closed.recv() {
            if broken {
                continue;
            }
            since_checkpoint += bytes;
            waiting.push(seq);
            if since_checkpoint < self.checkpoint_every {
                continue;
            }
            let mut applied = 0;
            let mut failure = None;
            for &seq in &waiting {
                match self.apply_segment(seq, &mut buffer) {
                    Ok(_) => applied += 1,
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            waiting.drain(..applied);
            match failure {
                // The log itself is fine (the segment is durable); only compaction stops, so
                // nothing is deleted that has not been replayed.
                Some(ApplyFailure::Damaged(error)) => {
                    tracing::error!(%error, "WAL checkpointing stopped; the log keeps working but its disk use now grows");
                    *lock(&self.log.metrics.checkpoint_error) = Some(error);
                    self.log.backlog_progress(0, true);
                    broken = true;
                    continue;
                }
                // A segment that could not be read now (no file descriptor left, say) is
                // read again after the next one closes: stopping for good let the log grow
                // until the disk was full.
                Some(ApplyFailure::Unread(error)) => {
                    tracing::warn!(%error, "WAL checkpoint put off; will try again after the next segment");
                    *lock(&self.log.metrics.checkpoint_error) = Some(error);
                    self.log.backlog_progress(0, true);
                    continue;
                }
                None => {}
            }
            self.io.before_checkpoint();
            match write_checkpoint(
                &self.dir,
                &self.io,
                &self.state,
                self.next_segment,
                &mut buffer,
            ) {
                Ok(bytes) => {
                    let covered = since_checkpoint;
                    since_checkpoint = 0;
                    let metrics = &self.log.metrics;
                    metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
                    metrics
                        .last_checkpoint_unix_us
                        .store(unix_now_us(), Ordering::Relaxed);
                    metrics
                        .last_checkpoint_bytes
                        .store(bytes as u64, Ordering::Relaxed);
                    *lock(&metrics.checkpoint_error) = None;
                    remove_covered(&self.dir, &self.io, self.next_segment, self.state.log_id);
                    self.log.backlog_progress(covered, false);
                }
                Err(error) => {
                    let no_space = error.kind() == std::io::ErrorKind::StorageFull;
                    let message = format!(
                        "writing the checkpoint {} ({}; written as its .tmp file, then renamed): {error}{}",
                        self.dir
                            .join(segment::checkpoint_name(self.next_segment))
                            .display(),
                        crate::runtime::units::HumanSize::approx(buffer.len() as u64),
                        if no_space {
                            "; free at least that much there (the log keeps working, but its disk use grows until a checkpoint is written)"
                        } else {
                            ""
                        }
                    );
                    tracing::warn!(error = %message, "WAL checkpoint failed; will try again after the next segment");
                    *lock(&self.log.metrics.checkpoint_error) = Some(message);
                    self.log.backlog_progress(0, true);
                }
            }
            if buffer.capacity() > 64 << 20 {
                buffer = Vec::new();
            }
        }
    }

    fn apply_segment(&mut self, seq: u64, buffer: &mut Vec<u8>) -> Result<u64, ApplyFailure> {
        if seq != self.next_segment {
            return Err(ApplyFailure::Damaged(format!(
                "segment {seq} closed but segment {} was expected next",
                self.next_segment
            )));
        }
        let path = self.dir.join(segment::segment_name(seq));
        self.io
            .read_segment(&path, buffer)
            .map_err(|e| ApplyFailure::Unread(format!("reading {}: {e}", path.display())))?;
        let state = &mut self.state;
        let scan = recovery::scan_segment(buffer, false, |frames| state.apply_group(frames))
            .map_err(|damage| {
                ApplyFailure::Damaged(format!("{} is damaged at {damage}", path.display()))
            })?;
        self.next_segment = seq + 1;
        Ok(scan.end as u64)
    }
}

/// Why the checkpointer could not replay a closed segment.
enum ApplyFailure {
    /// It could not be read now; nothing of it was replayed, and it is tried again later.
    Unread(String),
    /// It is not what the log wrote (or not the one expected next): checkpoints stop.
    Damaged(String),
}

/// Writes the checkpoint of `state` covering segments below `next_segment`; returns its size.
pub(crate) fn write_checkpoint(
    dir: &std::path::Path,
    io: &Io,
    state: &State,
    next_segment: u64,
    buffer: &mut Vec<u8>,
) -> std::io::Result<usize> {
    buffer.clear();
    for record in state.checkpoint_records(next_segment, unix_now_us()) {
        let mut group = GroupEncoder::new(buffer, record::MAX_PAYLOAD, usize::MAX);
        record.push_to(&mut group).map_err(std::io::Error::other)?;
        group.finish().map_err(std::io::Error::other)?;
    }
    io.write_file_atomically(dir, &segment::checkpoint_name(next_segment), buffer)?;
    Ok(buffer.len())
}

/// Removes segments below `next_segment` and checkpoints older than the one for it, those of
/// the log `log_id` (a file of another log, copied in, is left where it is and named).
pub(crate) fn remove_covered(dir: &std::path::Path, io: &Io, next_segment: u64, log_id: u64) {
    let Ok(listing) = segment::list(dir) else {
        return;
    };
    let foreign = |path: &std::path::Path| {
        let other = super::file_log_id(path).filter(|id| log_id != 0 && *id != log_id);
        if let Some(other) = other {
            tracing::warn!(file = %path.display(), log = %format!("{other:016x}"), "not removing a file of another write-ahead log from the data directory (copied in from another?); move it out");
        }
        other.is_some()
    };
    let mut removed = false;
    for (seq, path) in listing.segments.range(..next_segment) {
        if foreign(path) {
            continue;
        }
        match std::fs::remove_file(path) {
            Ok(()) => removed = true,
            Err(error) => {
                tracing::warn!(segment = %segment::segment_name(*seq), %error, "cannot remove a WAL segment a checkpoint covers")
            }
        }
    }
    for (_, path) in listing.checkpoints.range(..next_segment) {
        if !foreign(path) && std::fs::remove_file(path).is_ok() {
            removed = true;
        }
    }
    if removed && let Err(error) = io.sync_dir(dir) {
        tracing::warn!(%error, "fsync of the data directory after removing covered segments failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_the_preparer_stopped_before_taking_up_is_not_waited_for() {
        let dir = tempfile::tempdir().expect("temp dir");
        let preparer = Arc::new(Preparer::new(
            dir.path().to_path_buf(),
            64 << 10,
            5,
            Io::default(),
        ));
        // Requested, then stopped before its thread took the request up (none runs here):
        // what a log stopping right after a segment change sees.
        preparer.request(2);
        preparer.stop();
        let (done, hears) = std::sync::mpsc::channel();
        let taker = Arc::clone(&preparer);
        let thread = std::thread::spawn(move || {
            let _ = done.send(taker.take(2).map(|(_, start)| start));
        });
        let start = hears
            .recv_timeout(Duration::from_secs(60))
            .expect("take waited for a preparer that had stopped");
        assert!(start.expect("created on the taker's thread") > 0);
        thread.join().expect("taker");
        assert!(dir.path().join(segment::segment_name(2)).exists());
    }
}
