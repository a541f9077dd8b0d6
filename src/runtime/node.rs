//! The node: starts the workers, arena and I/O thread from a config, and is the one API
//! everything else uses — the CLI server, the console, embedders and tests.
//!
//! ```no_run
//! use goliath::config::Config;
//! use goliath::runtime::{Node, TaskSpec};
//! let node = Node::start(Config::default())?;
//! let id = node.submit(TaskSpec::fib(30))?;
//! println!("{:?}", node.task(id)?.state);
//! node.shutdown(std::time::Duration::from_secs(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_deque::{Stealer, Worker};
use crossbeam_utils::CachePadded;

use super::arena::{Arena, Busy, NO_WORKER, SHARED_LEDGER, Slot, slot_flags, slot_state};
use super::clock::Clock;
use super::events::{EventBus, EventStream, TaskEvent};
use super::gossip::{ClusterSnapshot, ClusterSource};
use super::history::{FinishedTask, History, Record};
use super::host::HostSampler;
use super::injector::Injector;
use super::io::Offload;
use super::io_thread::IoThread;
use super::kinds;
use super::lock;
use super::scheduler::{self, FinishCounts, Sleepers, WorkerCore, WorkerStats, worker_state};
use super::snapshot::{
    NodeInfo, NodeSnapshot, TaskCounts, TaskInfo, TaskQuery, WorkerActivity, WorkerSnapshot,
};
use super::task::{
    KindId, Kinds, RegisterError, SpecError, Submission, TaskId, TaskKind, TaskOutput, TaskSpec,
    TaskState, claimed_by_line,
};
use super::wal::record::KeyRequest;
use super::wal::{self, DurabilityError, Faults, Ticket, Wal, WalError};
use crate::config::Config;

/// Why a submission was refused. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Every arena slot is in use.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The node is shutting down.
    #[error("node is shutting down and accepts no new tasks")]
    ShuttingDown,
    /// `exec` tasks are turned off.
    #[error("exec tasks are disabled on this node (exec.enabled = false)")]
    ExecDisabled,
    /// The spec cannot run here.
    #[error("{0}")]
    Invalid(String),
    /// The write-ahead log could not take the submission (it failed, or is far behind).
    #[error("{0}")]
    Storage(String),
}

impl From<wal::AppendError> for SubmitError {
    fn from(error: wal::AppendError) -> Self {
        match error {
            wal::AppendError::Encode(encode) => SubmitError::Invalid(encode.to_string()),
            wal::AppendError::Stopped => SubmitError::ShuttingDown,
            wal::AppendError::Failed(failed) => failed.into(),
            other => SubmitError::Storage(other.to_string()),
        }
    }
}

impl From<wal::DurabilityError> for SubmitError {
    /// With what became of the request, as a client waiting on the log hears it.
    fn from(error: wal::DurabilityError) -> Self {
        SubmitError::Storage(format!("{error}; {}", error.fate_note()))
    }
}

/// A batch (`xN`) stopped part-way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error} ({} of the batch were submitted)", submitted.len())]
pub struct BatchError {
    /// The tasks that were submitted before the error.
    pub submitted: Vec<TaskId>,
    /// Why the rest were not.
    pub error: SubmitError,
}

/// Text that could not be submitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitTextError {
    /// The text does not parse.
    #[error("{0}")]
    Spec(#[from] SpecError),
    /// The node refused it.
    #[error("{0}")]
    Submit(#[from] BatchError),
}

/// What ids a node has handed out, for a lookup of one it has not.
fn ids_so_far(last: u64) -> String {
    match last {
        0 => "it has accepted no task yet".into(),
        last => format!("ids so far go up to {last}"),
    }
}

/// A task id the node cannot describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No task with this id was ever accepted.
    #[error("no task {id} on this node ({})", ids_so_far(*last))]
    Unknown {
        /// The id asked for.
        id: TaskId,
        /// The highest id handed out so far.
        last: u64,
    },
    /// An id below the highest handed out that the node does not hold: a task that finished
    /// so long ago that the history no longer holds it, or an id skipped (the arena hands out
    /// ids by slot, so some numbers are never used).
    #[error(
        "no task {id} on this node now: if it ran, it finished and is no longer in the history (history.tasks = {kept}, split over {rings} rings, one per worker and one for sleep, exec and echo, each forgetting its oldest first); some ids are never handed out"
    )]
    Forgotten {
        /// The id asked for.
        id: TaskId,
        /// How many finished tasks are kept.
        kept: usize,
        /// The rings they are kept in: a busy ring forgets its tasks sooner than a quiet
        /// one, so fewer than `kept` tasks of one kind may be there.
        rings: usize,
    },
}

/// One id's answer from [`Node::cancel_many_pending`]: the outcome and the ticket that says
/// when its cancel is durable, or why it could not be made.
pub type CancelResultPending = (TaskId, Result<(CancelOutcome, Ticket), CancelError>);

/// Why a cancel request was not carried out durably.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// No such task (any more).
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The write-ahead log failed: the task stops now, but the request is not durable, so
    /// the task may run again after a restart.
    #[error(
        "{0}; the cancel of task {1} took effect but is not durable, so the task may run again at the next start"
    )]
    NotDurable(DurabilityError, TaskId),
    /// The node's log has already closed for its shutdown: the request cannot be recorded.
    #[error(
        "the node is shutting down and its log is closed, so the cancel of task {0} cannot be recorded: the task runs again at the next start"
    )]
    ShuttingDown(TaskId),
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The task will stop within one slice (or its child process is being terminated).
    Requested,
    /// The task had already finished in this state; nothing changed.
    AlreadyFinished(TaskState),
}

use super::completions::CompletionSender;

/// The result of [`Node::submit_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The ids, in submission order.
    pub ids: Vec<TaskId>,
    /// True when the idempotency key had been seen: these are the earlier ids and nothing
    /// new was submitted.
    pub duplicate: bool,
}

/// A batch accepted by [`Node::submit_batch_pending`]: the ids, and the ticket that says when
/// they are durable (acknowledge them only then).
#[derive(Debug, Clone)]
pub struct PendingBatch {
    /// The ids and whether they are a duplicate.
    pub outcome: BatchOutcome,
    /// Durable when this ticket is.
    pub ticket: Ticket,
}

/// Who waits for which watched task: one place per arena slot, so the submitter filling a
/// slot and the worker finishing another never contend for one lock. A place keeps its
/// sender after the task finished, until the slot is filled again: kept when the new task
/// has the same watcher (the usual case), replaced or dropped otherwise, on the submitting
/// thread (see `completions`). At most one kept sender per slot.
#[derive(Debug)]
struct Completions {
    watchers: Box<[Mutex<Option<CompletionSender>>]>,
}

impl Completions {
    fn new(slots: usize) -> Self {
        Self {
            watchers: (0..slots).map(|_| Mutex::new(None)).collect(),
        }
    }
}

/// Watchers of tasks submitted earlier, by id: a `submit --wait` retried under a used
/// idempotency key waits for tasks another connection submitted. Told when the task finishes,
/// as a watched submission is; without it, such a wait looked tasks up in the history, where
/// a batch larger than the history (or other work finishing meanwhile) had pushed them out.
/// Entries leave when their task finishes or their wait ends ([`LateWatch`]); the finishing
/// path looks at the table only while it holds any.
#[derive(Debug, Default)]
struct LateWatchers {
    /// Entries in `table`, read by every finishing task without taking the lock.
    count: CachePadded<AtomicUsize>,
    /// Each task's watchers (two retries of one key may wait at once).
    table: Mutex<std::collections::HashMap<TaskId, Vec<CompletionSender>>>,
}

/// A connection's watch of earlier tasks (see [`Node::watch_earlier`]); dropping it ends the
/// watch of those not finished yet.
pub struct LateWatch {
    shared: Arc<Shared>,
    ids: Vec<TaskId>,
    sender: CompletionSender,
}

impl std::fmt::Debug for LateWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateWatch").field("ids", &self.ids).finish()
    }
}

impl Drop for LateWatch {
    fn drop(&mut self) {
        let watchers = &self.shared.late_watchers;
        let mut table = lock(&watchers.table);
        for id in &self.ids {
            if let Some(senders) = table.get_mut(id) {
                senders.retain(|held| !held.same_queue(&self.sender));
                if senders.is_empty() {
                    table.remove(id);
                }
            }
        }
        watchers.count.store(table.len(), Ordering::Relaxed);
    }
}

/// Keys to what they made, and the keys in arrival order.
pub(crate) type KeyTable = (
    std::collections::HashMap<String, KeyEntry>,
    std::collections::VecDeque<String>,
);

/// What an idempotency key made: its task ids, the ticket of their accepted records, and a
/// print of the request (kept in the log with the key from format 5 on; a key recovered
/// from an older log has none, and is checked against its tasks instead).
#[derive(Debug, Clone)]
pub(crate) struct KeyEntry {
    pub ids: Vec<TaskId>,
    pub ticket: Ticket,
    pub request: Option<KeyRequest>,
}

/// A batch as its idempotency key remembers it: a hash of every line's spec and copies, and
/// the number of tasks asked for (more than the ids when the batch was cut short). Nothing is
/// formatted on the submit path: an error names the batches by their first specs then. The
/// hash (FNV-1a over each run of one spec: its kind's name, numbers, text, timeout and
/// copies) is the same in every build and on every machine, as the log keeps it.
fn request_print(kinds: &Kinds, submissions: &[Submission]) -> KeyRequest {
    struct Fnv(u64);
    impl Fnv {
        fn bytes(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                self.0 ^= u64::from(byte);
                self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
            }
        }
        fn run(&mut self, kinds: &Kinds, spec: &TaskSpec, copies: u64) {
            self.bytes(kinds.name(spec.kind).as_bytes());
            self.bytes(&[0xFF]);
            for number in spec.numbers {
                self.bytes(&number.to_le_bytes());
            }
            match &spec.text {
                Some(text) => {
                    self.bytes(&[1]);
                    self.bytes(text.as_bytes());
                    self.bytes(&[0xFF]);
                }
                None => self.bytes(&[0]),
            }
            let timeout_ns = spec.timeout.map_or(0, |t| t.as_nanos());
            self.bytes(&timeout_ns.to_le_bytes());
            self.bytes(&copies.to_le_bytes());
        }
    }
    let mut hasher = Fnv(0xCBF2_9CE4_8422_2325);
    let mut tasks = 0u64;
    // By runs of one spec, so `fib 3 x2` and `fib 3` `fib 3` (the same tasks) are the
    // same request.
    let mut run: Option<(&TaskSpec, u64)> = None;
    for submission in submissions {
        let copies = u64::from(submission.tasks());
        tasks += copies;
        match &mut run {
            Some((spec, count)) if **spec == submission.spec => *count += copies,
            _ => {
                if let Some((spec, count)) = run.replace((&submission.spec, copies)) {
                    hasher.run(kinds, spec, count);
                }
            }
        }
    }
    if let Some((spec, count)) = run {
        hasher.run(kinds, spec, count);
    }
    KeyRequest {
        hash: hasher.0,
        tasks,
    }
}

/// `` `fib 20` ``, or `` 3 tasks starting `fib 5` ``, from the first task as shown; with
/// `counted`, one task is `` 1 task (`fib 20`) `` (beside a batch of another size, a bare
/// spec read as if the two were the same work).
fn describe_batch(tasks: u64, first: &str, counted: bool) -> String {
    match tasks {
        1 if counted => format!("1 task ({first})"),
        1 => first.to_string(),
        _ => format!("{tasks} tasks starting {first}"),
    }
}

/// The longest idempotency key a node takes, bytes: room for any UUID, hash or job name,
/// while `node.idempotency_keys` keys stay small in memory, the log and checkpoints.
pub const IDEMPOTENCY_KEY_MAX: usize = 256;

/// At most this many of a recovered key's tasks are compared with a new request under the
/// key (each is a history lookup on the submitting thread).
const KEY_CHECK_TASKS: usize = 16;

/// Idempotency keys and the ids they produced, oldest forgotten first.
#[derive(Debug)]
pub(crate) struct IdempotencyKeys {
    pub entries: Mutex<KeyTable>,
    pub capacity: usize,
}

impl IdempotencyKeys {
    pub fn remember(
        entries: &mut KeyTable,
        capacity: usize,
        key: &str,
        ids: Vec<TaskId>,
        ticket: Ticket,
        request: Option<KeyRequest>,
    ) {
        let entry = KeyEntry {
            ids,
            ticket,
            request,
        };
        if entries.0.insert(key.to_string(), entry).is_none() {
            entries.1.push_back(key.to_string());
            while entries.1.len() > capacity {
                if let Some(oldest) = entries.1.pop_front() {
                    entries.0.remove(&oldest);
                }
            }
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A config value is out of range.
    #[error("invalid config: `{key}` {message}")]
    Config {
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A thread or the I/O runtime could not start.
    #[error("cannot start {what}: {error}")]
    Spawn {
        /// What failed to start.
        what: &'static str,
        /// The OS error: in the message, not a `source()`, so a report that prints the chain
        /// does not say it twice.
        error: std::io::Error,
    },
    /// The write-ahead log could not be opened or recovered.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The recovered tasks do not fit this node's arena.
    #[error("cannot recover the tasks in flight: {0}")]
    Recovery(String),
}

/// What a shutdown did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Tasks in flight when shutdown began.
    pub in_flight: usize,
    /// Tasks cancelled because they outlived the grace period.
    pub cancelled: usize,
    /// Tasks still not finished when the workers stopped.
    pub abandoned: usize,
}

/// How a task ended: its final state, output and error.
#[derive(Debug)]
pub(crate) struct Ending {
    pub state: TaskState,
    pub output: TaskOutput,
    pub error: Option<Box<str>>,
}

/// Where a task finished, which picks its counters and history ring.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FinishSite {
    Worker(usize),
    Offload,
}

/// Whether queueing an external submission wakes a parked worker at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Now: a single submission.
    Now,
    /// The caller wakes one worker after queueing a whole batch.
    Later,
}

/// Node state shared by workers, the I/O thread and API callers.
pub(crate) struct Shared {
    pub name: String,
    pub config: Config,
    pub arena: Arena,
    pub kinds: Kinds,
    pub injector: Injector,
    pub stealers: Box<[Stealer<u32>]>,
    pub worker_stats: Box<[CachePadded<WorkerStats>]>,
    pub offload_finished: FinishCounts,
    pub offload_executed: AtomicU64,
    pub sleepers: Sleepers,
    pub history: History,
    pub events: EventBus,
    pub clock: Clock,
    pub slice_ticks: u64,
    pub spin_ticks: u64,
    pub offload: Offload,
    /// Kinds known (built-in plus registered), checked on every submission.
    kind_count: u16,
    completions: Completions,
    late_watchers: LateWatchers,
    pub(crate) idempotency: IdempotencyKeys,
    accepting: AtomicBool,
    stopping: AtomicBool,
    listen: Mutex<Option<String>>,
    host: Mutex<HostSampler>,
    cluster: Mutex<Option<Arc<dyn ClusterSource>>>,
    /// The write-ahead log; None for a memory-only node.
    pub(crate) wal: Option<Wal>,
    /// Finished tasks recovered from the log at start, by id (read-only after start).
    pub(crate) recovered: Vec<TaskInfo>,
    /// When each task recovered in flight was first accepted (Unix µs), by id, sorted: the
    /// slot's clock reading can only say when this process queued it again. Read-only after
    /// start, and empty on a node that recovered nothing.
    pub(crate) recovered_submitted: Vec<(TaskId, u64)>,
    /// The process groups of running `exec` tasks, listed in the data directory.
    pub(crate) children: super::children::Children,
    /// Set while shutdown interrupts tasks: their cancellation is not logged, so they run
    /// again at the next start.
    pub(crate) interrupting: AtomicBool,
}

/// The error of a task the shutdown stopped on a node with a log (it runs again).
pub const INTERRUPTED: &str =
    "interrupted by the node's shutdown; it runs again when the node restarts";

impl Shared {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Whether any queue holds a task (used before parking and after a search).
    pub fn work_visible(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    #[inline]
    pub fn emit(&self, id: TaskId, state: TaskState, worker: Option<u16>, attempt: u32, now: u64) {
        if self.events.active() {
            self.events.publish(TaskEvent {
                id,
                state,
                worker,
                attempt,
                at_unix_us: self.clock.unix_us(now),
            });
        }
    }

    fn check_exec(&self, spec: &TaskSpec) -> Result<(), SubmitError> {
        if !self.config.exec.enabled {
            return Err(SubmitError::ExecDisabled);
        }
        let argv = spec.argv();
        let program = argv.first().copied().unwrap_or("");
        match program_problem(program) {
            Some(problem) => Err(SubmitError::Invalid(format!(
                "exec: program '{program}' {problem}"
            ))),
            None => Ok(()),
        }
    }

    /// Checks that a spec may be submitted now.
    fn check_submittable(&self, spec: &TaskSpec) -> Result<(), SubmitError> {
        if let Some(failure) = self.wal.as_ref().and_then(Wal::failure) {
            return Err(wal::DurabilityError::not_written(failure).into());
        }
        if !self.accepting.load(Ordering::Relaxed) {
            return Err(SubmitError::ShuttingDown);
        }
        if spec.kind.index() >= self.kind_count {
            return Err(SubmitError::Invalid(format!(
                "unknown task kind id {}",
                spec.kind.index()
            )));
        }
        if spec.kind == KindId::EXEC {
            self.check_exec(spec)?;
        }
        if let Some(text) = spec.text.as_deref()
            && text.len() > super::task::limits::TEXT_MAX
        {
            return Err(SubmitError::Invalid(format!(
                "a task's text is limited to {} bytes; this one has {}",
                super::task::limits::TEXT_MAX,
                text.len()
            )));
        }
        Ok(())
    }

    /// Accepts a task: claims a slot, logs it (with a WAL), fills it in, and queues its index
    /// — on the calling worker's deque when `local` is given, else on the submission queue.
    /// With a `watcher`, the finished task is sent to it. The ticket says when the task is
    /// durable; acknowledge it only then.
    pub fn submit_on(
        &self,
        spec: &TaskSpec,
        local: Option<&WorkerCore>,
        watcher: Option<&CompletionSender>,
    ) -> Result<(TaskId, Ticket), SubmitError> {
        self.check_submittable(spec)?;
        let (index, id) = self.arena.claim()?;
        let now = self.clock.now();
        let ticket = match &self.wal {
            None => Ticket::ready(),
            Some(wal) => match self.log_accepted(wal, spec, id, now) {
                Ok(ticket) => ticket,
                Err(error) => {
                    self.arena.hand_back(index);
                    return Err(error);
                }
            },
        };
        self.fill(index, spec.clone(), watcher, now, 1);
        self.publish_submitted(index, id, spec, local, now, Wake::Now)?;
        Ok((id, ticket))
    }

    /// Queues a task just submitted, except `echo`: it does no work, so it completes here, on
    /// the submitting thread, with no hop to a worker and back. It still passes through the
    /// slot, the log, the events and the history like any task; its worker is none. Returns
    /// whether the task was queued (false: it already finished, and no worker needs waking).
    pub(crate) fn publish_submitted(
        &self,
        index: u32,
        id: TaskId,
        spec: &TaskSpec,
        local: Option<&WorkerCore>,
        now: u64,
        wake: Wake,
    ) -> Result<bool, SubmitError> {
        if spec.kind != KindId::ECHO {
            return self.publish(index, id, local, now, 1, wake).map(|()| true);
        }
        let slot = self.arena.slot(index);
        self.emit(id, TaskState::Queued, None, 1, now);
        slot.started_at.store(now, Ordering::Relaxed);
        slot.state.store(slot_state::RUNNING, Ordering::Release);
        self.log_started(id, KindId::ECHO, 1, now);
        self.emit(id, TaskState::Running, None, 1, now);
        let ending = Ending {
            state: TaskState::Succeeded,
            // From the spec the slot was filled with, not through the slot's lock.
            output: kinds::echo(spec.text.as_ref()),
            error: None,
        };
        self.finish(index, id, ending, FinishSite::Offload, now);
        Ok(false)
    }

    /// Fills a claimed slot with a task.
    pub(crate) fn fill(
        &self,
        index: u32,
        spec: TaskSpec,
        watcher: Option<&CompletionSender>,
        now: u64,
        attempt: u16,
    ) {
        let slot = self.arena.slot(index);
        slot.cancel_id.store(0, Ordering::Relaxed);
        slot.numbers[0].store(spec.numbers[0], Ordering::Relaxed);
        slot.numbers[1].store(spec.numbers[1], Ordering::Relaxed);
        for cell in &slot.progress {
            cell.store(0, Ordering::Relaxed);
        }
        slot.submitted_at.store(now, Ordering::Relaxed);
        slot.started_at.store(0, Ordering::Relaxed);
        let timeout_ns = spec
            .timeout
            .map(|t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        slot.timeout_ns.store(timeout_ns, Ordering::Relaxed);
        slot.run_ticks.store(0, Ordering::Relaxed);
        slot.kind.store(spec.kind.index(), Ordering::Relaxed);
        slot.worker.store(NO_WORKER, Ordering::Relaxed);
        slot.attempt.store(attempt, Ordering::Relaxed);
        let previous_flags = slot.flags.load(Ordering::Relaxed);
        let mut flags = 0;
        if spec.text.is_some() {
            flags |= slot_flags::TEXT;
            *lock(&slot.text) = spec.text;
        }
        if let Some(watcher) = watcher {
            flags |= slot_flags::WATCHED;
            if let Some(place) = self.completions.watchers.get(index as usize) {
                let mut held = lock(place);
                // Usually the slot still holds this submitter's sender from its last task.
                if !held.as_ref().is_some_and(|held| held.same_queue(watcher)) {
                    *held = Some(watcher.clone());
                }
            }
        } else if previous_flags & slot_flags::WATCHED != 0
            && let Some(place) = self.completions.watchers.get(index as usize)
        {
            // The slot's last task was watched: its sender goes now, not at some later
            // watched fill (it may keep a closed connection's queue alive).
            drop(lock(place).take());
        }
        slot.flags.store(flags, Ordering::Relaxed);
    }

    /// Makes a filled slot visible and queues it. With [`Wake::Now`] a parked worker is woken
    /// if needed; with [`Wake::Later`] an external submission is queued without that check
    /// and the caller calls `sleepers.notify_after_injector_push()` once after its last
    /// task. Local pushes always check (`WorkerCore::push_local`).
    pub(crate) fn publish(
        &self,
        index: u32,
        id: TaskId,
        local: Option<&WorkerCore>,
        now: u64,
        attempt: u16,
        wake: Wake,
    ) -> Result<(), SubmitError> {
        let slot = self.arena.slot(index);
        slot.state.store(slot_state::QUEUED, Ordering::Release);
        self.emit(id, TaskState::Queued, None, u32::from(attempt), now);
        match local {
            Some(core) => core.push_local(index),
            None => {
                if self.injector.push(index).is_err() {
                    // Cannot happen: the queue holds as many indices as the arena has slots.
                    self.arena.release(index, SHARED_LEDGER);
                    return Err(SubmitError::Busy(Busy {
                        in_use: self.arena.in_use(),
                        capacity: self.arena.capacity(),
                        needed: 1,
                    }));
                }
                if wake == Wake::Now {
                    self.sleepers.notify_after_injector_push();
                }
            }
        }
        Ok(())
    }

    /// Records a finished task and frees its slot. The caller owns the slot.
    pub fn finish(&self, index: u32, id: TaskId, ending: Ending, site: FinishSite, now: u64) {
        let Ending {
            state,
            output,
            error,
        } = ending;
        // Stopped by the shutdown on a node with a log: nothing is logged, so the task runs
        // again at the next start. Whoever waits for it is not told it ended (it did not);
        // their connection closes with the node.
        let interrupted = state == TaskState::Cancelled
            && self.wal.is_some()
            && self.interrupting.load(Ordering::Relaxed);
        let error = if interrupted {
            Some(INTERRUPTED.into())
        } else {
            error
        };
        let slot = self.arena.slot(index);
        let kind = KindId(slot.kind.load(Ordering::Relaxed));
        let flags = slot.flags.load(Ordering::Relaxed);
        // Shared (a count, not a copy): the slot keeps its text until the task is in the
        // history, so a lookup in between still describes it whole (it used to read
        // `echo ""` for a finishing task).
        let text = if flags & slot_flags::TEXT != 0 {
            lock(&slot.text).clone()
        } else {
            None
        };
        let worker = slot.worker.load(Ordering::Relaxed);
        let worker = (worker != NO_WORKER).then_some(worker);
        let attempt = u32::from(slot.attempt.load(Ordering::Relaxed));
        let record = Record {
            id,
            kind,
            numbers: [
                slot.numbers[0].load(Ordering::Relaxed),
                slot.numbers[1].load(Ordering::Relaxed),
            ],
            timeout_ns: slot.timeout_ns.load(Ordering::Relaxed),
            state,
            worker,
            attempt,
            submitted_at: slot.submitted_at.load(Ordering::Relaxed),
            started_at: slot.started_at.load(Ordering::Relaxed),
            finished_at: now,
            run_ticks: slot.run_ticks.load(Ordering::Relaxed),
        };
        if let Some(wal) = &self.wal
            && !interrupted
        {
            self.log_finished(wal, &record, &output, error.as_deref());
        }
        // Described now (the history takes the output), sent once the task is in the
        // history: a client told its task finished finds it there at once (`submit --wait`,
        // then `tasks --state timed_out`, missed it now and then).
        let watched = (flags & slot_flags::WATCHED != 0 && !interrupted)
            .then(|| self.describe_finished(&record, &output, text.as_deref(), error.as_deref()));
        let late = if self.late_watchers.count.load(Ordering::Relaxed) != 0 && !interrupted {
            self.take_late_watchers(&record, &output, text.as_deref(), error.as_deref())
        } else {
            None
        };
        let ledger = match site {
            FinishSite::Worker(worker_index) => {
                self.history
                    .record(worker_index, &record, output, text, error);
                self.worker_stats[worker_index].finished.count(state, true);
                worker_index + 1
            }
            FinishSite::Offload => {
                self.history.record_offloaded(&record, output, text, error);
                self.offload_finished.count(state, false);
                self.offload_executed.fetch_add(1, Ordering::Relaxed);
                SHARED_LEDGER
            }
        };
        // Before the release: the slot's watcher place is the next submitter's after it.
        if let Some(info) = watched {
            self.deliver(index, info);
        }
        if let Some((senders, info)) = late {
            for sender in senders {
                sender.send(info.clone());
            }
        }
        if flags & slot_flags::TEXT != 0 {
            drop(lock(&slot.text).take());
        }
        self.arena.release(index, ledger);
        // After the release: a watcher that looks the task up on this event finds it
        // finished in the history, with its error, not still live in its slot. An
        // interrupted task did not end (it runs again at the next start), so watchers are not
        // told it did: their stream ends with the node's shutdown notice.
        if !interrupted {
            self.emit(id, state, worker, attempt, now);
        }
    }

    /// A finished task as its watchers are told it.
    #[cold]
    fn describe_finished(
        &self,
        record: &Record,
        output: &TaskOutput,
        text: Option<&str>,
        error: Option<&str>,
    ) -> TaskInfo {
        self.describe(record, output.clone(), text, error.map(Box::from))
    }

    /// Sends a finished watched task to whoever waits for it.
    #[cold]
    fn deliver(&self, index: u32, info: TaskInfo) {
        // Borrowed, not taken: the slot's next fill replaces or drops it, on the submitting
        // thread (see `completions`), so its reference count does not move to the workers.
        let Some(place) = self.completions.watchers.get(index as usize) else {
            return;
        };
        if let Some(sender) = lock(place).as_ref() {
            sender.send(info);
        }
    }

    /// The connections that wait for a finished task though another submitted it (see
    /// [`LateWatchers`]), taken from the table, with what to send them.
    #[cold]
    fn take_late_watchers(
        &self,
        record: &Record,
        output: &TaskOutput,
        text: Option<&str>,
        error: Option<&str>,
    ) -> Option<(Vec<CompletionSender>, TaskInfo)> {
        let senders = {
            let mut table = lock(&self.late_watchers.table);
            let senders = table.remove(&record.id);
            self.late_watchers
                .count
                .store(table.len(), Ordering::Relaxed);
            senders
        }?;
        let info = self.describe_finished(record, output, text, error);
        Some((senders, info))
    }

    /// Hands a `sleep` or `exec` task to the I/O thread.
    pub fn start_offloaded(self: &Arc<Self>, index: u32, id: TaskId, kind: KindId, deadline: u64) {
        self.offload.start(self.clone(), index, id, kind, deadline);
    }

    /// Asks a task to stop; with a WAL, the request is logged (the ticket says when it is
    /// durable), so a task whose cancel was acknowledged never runs again after a restart.
    fn cancel(&self, id: TaskId) -> Result<(CancelOutcome, Ticket), CancelError> {
        match self.cancel_in_memory(id)? {
            CancelOutcome::Requested => self.log_requested_cancel(id),
            finished => Ok((finished, Ticket::ready())),
        }
    }

    /// A cancel requested of a task in flight, logged (with a WAL): the ticket says when it
    /// is durable.
    fn log_requested_cancel(&self, id: TaskId) -> Result<(CancelOutcome, Ticket), CancelError> {
        let ticket = match &self.wal {
            Some(wal) => self.log_cancelled(wal, id)?,
            None => Ticket::ready(),
        };
        Ok((CancelOutcome::Requested, ticket))
    }

    fn cancel_in_memory(&self, id: TaskId) -> Result<CancelOutcome, LookupError> {
        if self.cancel_in_flight(id) {
            return Ok(CancelOutcome::Requested);
        }
        if !self.ever_accepted(id) {
            return Err(self.lookup_error(id));
        }
        // Its state alone: none of its output is copied.
        if let Some(task) = self.history.find(id, 0) {
            return Ok(CancelOutcome::AlreadyFinished(task.record.state));
        }
        self.recovered_task(id)
            .map(|task| CancelOutcome::AlreadyFinished(task.state))
            .ok_or_else(|| self.lookup_error(id))
    }

    /// Asks task `id` to stop if it holds a slot (queued, running, sleeping or waiting on
    /// its child); false when it does not.
    fn cancel_in_flight(&self, id: TaskId) -> bool {
        if let Some(index) = self.arena.find(id) {
            let slot = self.arena.slot(index);
            slot.cancel_id.store(id.0, Ordering::Release);
            if slot.id.load(Ordering::Acquire) == id.0 {
                self.offload.wake(id);
                return true;
            }
        }
        false
    }

    /// Whether the node has handed out id `id` (on this run or before a restart): ids above
    /// the newest are answered without looking through the history.
    fn ever_accepted(&self, id: TaskId) -> bool {
        id.0 != 0 && id.0 < self.arena.next_id()
    }

    /// [`Shared::cancel`] of each of `ids` in turn, stopping after the first error that is
    /// not a failed lookup (the log failed or closed: later ids are left alone). The ids not
    /// in flight are looked up in one pass over the history for all of them.
    fn cancel_many(&self, ids: &[TaskId]) -> Vec<CancelResultPending> {
        let mut results: Vec<CancelResultPending> = Vec::with_capacity(ids.len());
        // Where in `results` an id not in flight waits for the history's answer.
        let mut finished_at: Vec<usize> = Vec::new();
        for &id in ids {
            let result = if self.cancel_in_flight(id) {
                self.log_requested_cancel(id)
            } else {
                if self.ever_accepted(id) {
                    finished_at.push(results.len());
                }
                Err(CancelError::Lookup(self.lookup_error(id)))
            };
            let log_failed =
                matches!(result, Err(ref error) if !matches!(error, CancelError::Lookup(_)));
            results.push((id, result));
            if log_failed {
                break;
            }
        }
        if finished_at.is_empty() {
            return results;
        }
        let mut wanted: Vec<u64> = finished_at.iter().map(|&at| results[at].0.0).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let states = self.history.states_of(&wanted);
        for at in finished_at {
            let id = results[at].0;
            let state = match states.binary_search_by_key(&id.0, |&(found, _)| found) {
                Ok(found) => Some(states[found].1),
                Err(_) => self.recovered_task(id).map(|task| task.state),
            };
            if let Some(state) = state {
                results[at].1 = Ok((CancelOutcome::AlreadyFinished(state), Ticket::ready()));
            }
        }
        results
    }

    /// A finished task recovered from the log at start, while it is still kept.
    pub(crate) fn recovered_task(&self, id: TaskId) -> Option<&TaskInfo> {
        let kept = self.recovered_kept();
        kept.binary_search_by_key(&id, |task| task.id)
            .ok()
            .map(|at| &kept[at])
    }

    /// The finished tasks recovered at start that `history.tasks` still keeps: as tasks
    /// finish on this run they take the room of the oldest recovered ones, so the history
    /// stays within its bound (they used to stay listed for the life of the process).
    pub(crate) fn recovered_kept(&self) -> &[TaskInfo] {
        if self.recovered.is_empty() {
            return &[];
        }
        let room = u64::try_from(self.config.history.tasks)
            .unwrap_or(u64::MAX)
            .saturating_sub(self.finished_counts().finished());
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        &self.recovered[self.recovered.len().saturating_sub(room)..]
    }

    /// Tasks finished since this start, by final state (the live counts left at 0).
    fn finished_counts(&self) -> TaskCounts {
        let mut counts = TaskCounts::default();
        for finished in self
            .worker_stats
            .iter()
            .map(|s| &s.finished)
            .chain(std::iter::once(&self.offload_finished))
        {
            counts.succeeded += finished.succeeded.load(Ordering::Relaxed);
            counts.failed += finished.failed.load(Ordering::Relaxed);
            counts.cancelled += finished.cancelled.load(Ordering::Relaxed);
            counts.timed_out += finished.timed_out.load(Ordering::Relaxed);
        }
        counts
    }

    fn lookup_error(&self, id: TaskId) -> LookupError {
        let last = self.arena.next_id().saturating_sub(1);
        if self.ever_accepted(id) {
            LookupError::Forgotten {
                id,
                kept: self.config.history.tasks,
                rings: self.worker_stats.len() + 1,
            }
        } else {
            LookupError::Unknown { id, last }
        }
    }

    fn spec_text(
        &self,
        kind: KindId,
        numbers: [u64; 2],
        text: Option<&str>,
        timeout_ns: u64,
    ) -> String {
        let mut out = String::new();
        let timeout = (timeout_ns != 0).then(|| Duration::from_nanos(timeout_ns));
        self.kinds
            .format_into(&mut out, kind, numbers, text, timeout);
        out
    }

    /// When task `id` was accepted: its slot's clock reading `submitted_at`, unless it was
    /// recovered from the log, which knows when it was first accepted.
    fn submitted_unix_us(
        &self,
        id: TaskId,
        submitted_at: u64,
        clock: &super::clock::Conversion,
    ) -> u64 {
        if !self.recovered_submitted.is_empty()
            && let Ok(at) = self
                .recovered_submitted
                .binary_search_by_key(&id, |(recovered, _)| *recovered)
        {
            return self.recovered_submitted[at].1;
        }
        clock.unix_us(submitted_at)
    }

    /// Describes the task in a live slot, or None if the slot changed hands meanwhile.
    fn live_info(&self, index: u32) -> Option<TaskInfo> {
        let slot = self.arena.slot(index);
        let id = slot.id.load(Ordering::Acquire);
        let state = live_state(slot, Ordering::Acquire)?;
        let kind = KindId(slot.kind.load(Ordering::Relaxed));
        let numbers = [
            slot.numbers[0].load(Ordering::Relaxed),
            slot.numbers[1].load(Ordering::Relaxed),
        ];
        let text = if slot.flags.load(Ordering::Relaxed) & slot_flags::TEXT != 0 {
            lock(&slot.text).clone()
        } else {
            None
        };
        let timeout_ns = slot.timeout_ns.load(Ordering::Relaxed);
        let worker = slot.worker.load(Ordering::Relaxed);
        let attempt = u32::from(slot.attempt.load(Ordering::Relaxed));
        let submitted_at = slot.submitted_at.load(Ordering::Relaxed);
        let started_at = slot.started_at.load(Ordering::Relaxed);
        let run_ticks = slot.run_ticks.load(Ordering::Relaxed);
        if slot.id.load(Ordering::Acquire) != id
            || slot.state.load(Ordering::Acquire) == slot_state::FREE
        {
            return None;
        }
        let clock = self.clock.conversion();
        Some(TaskInfo {
            id: TaskId(id),
            spec: self.spec_text(kind, numbers, text.as_deref(), timeout_ns),
            kind: self.kinds.owned_name(kind),
            state,
            worker: (worker != NO_WORKER).then_some(worker),
            attempt,
            submitted_unix_us: self.submitted_unix_us(TaskId(id), submitted_at, &clock),
            started_unix_us: (started_at != 0).then(|| clock.unix_us(started_at)),
            finished_unix_us: None,
            run_us: clock.ticks_to_ns(run_ticks) / 1_000,
            output: None,
            error: None,
        })
    }

    fn finished_info(&self, task: FinishedTask) -> TaskInfo {
        self.describe(&task.record, task.output, task.text.as_deref(), task.error)
    }

    /// Describes a finished task.
    fn describe(
        &self,
        record: &Record,
        output: TaskOutput,
        text: Option<&str>,
        error: Option<Box<str>>,
    ) -> TaskInfo {
        let clock = self.clock.conversion();
        TaskInfo {
            id: record.id,
            spec: self.spec_text(record.kind, record.numbers, text, record.timeout_ns),
            kind: self.kinds.owned_name(record.kind),
            state: record.state,
            worker: record.worker,
            attempt: record.attempt,
            submitted_unix_us: self.submitted_unix_us(record.id, record.submitted_at, &clock),
            started_unix_us: (record.started_at != 0).then(|| clock.unix_us(record.started_at)),
            finished_unix_us: Some(clock.unix_us(record.finished_at)),
            run_us: clock.ticks_to_ns(record.run_ticks) / 1_000,
            output: Some(output),
            error: match record.state {
                TaskState::Cancelled => Some("cancelled".to_string()),
                TaskState::TimedOut => {
                    Some(super::scheduler::timed_out_message(record.timeout_ns, record.kind).into())
                }
                _ => error.map(String::from),
            },
        }
    }
}

/// The state the task in `slot` shows (its state read with `order`): queued until its first
/// slice, then running until it ends (on a worker, waiting off it, or queued again for its
/// next slice, as the one `running` event of `watch` says); `None` for a slot holding no
/// task in flight (free, or still being filled).
fn live_state(slot: &Slot, order: Ordering) -> Option<TaskState> {
    match slot.state.load(order) {
        slot_state::QUEUED if slot.started_at.load(Ordering::Relaxed) != 0 => {
            Some(TaskState::Running)
        }
        slot_state::QUEUED => Some(TaskState::Queued),
        slot_state::RUNNING | slot_state::WAITING => Some(TaskState::Running),
        _ => None,
    }
}

/// Why `program` cannot be run, or `None` when it can: a path is checked as given (and
/// told apart: missing, a directory, not executable), a bare name is looked up in PATH.
fn program_problem(program: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let problem = |path: &Path| match path.metadata() {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Some("does not exist".to_string())
        }
        Err(error) => Some(format!("cannot be read ({error})")),
        Ok(m) if m.is_dir() => Some("is a directory".to_string()),
        Ok(m) if !m.is_file() => Some("is not a regular file".to_string()),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => {
            Some("is not executable (no x permission)".to_string())
        }
        Ok(_) => None,
    };
    if program.is_empty() {
        return Some("is empty".to_string());
    }
    if program.contains('/') {
        let path = Path::new(program);
        return problem(path).map(|what| {
            // A relative path is the node's, not the submitter's: say from where.
            match std::env::current_dir() {
                Ok(dir) if path.is_relative() => format!(
                    "{what} (a relative path is taken from the node's working directory, {})",
                    dir.display()
                ),
                _ => what,
            }
        });
    }
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| problem(&dir.join(program)).is_none())
    });
    (!found).then(|| "not found in the node's PATH".to_string())
}

/// The name a node on `config` takes: `node.name`, or when that is empty the host name plus
/// the gossip port (see [`super::gossip::default_node_name`]). It also names the default
/// data directory, so `goliath wal` finds a node's log from the same config.
pub fn node_name(config: &Config) -> String {
    if config.node.name.is_empty() {
        super::gossip::default_node_name(config)
    } else {
        config.node.name.clone()
    }
}

/// Whether a node on `config` finds its default data directory by a name that comes from
/// its process id (no `node.name`, no `node.data_dir`, gossip on a port the OS picks): then
/// the next start looks elsewhere, and `goliath wal` cannot find it from the config.
pub fn data_dir_named_by_pid(config: &Config) -> bool {
    config.node.name.is_empty()
        && config.node.data_dir.is_empty()
        && config.gossip.enabled
        && config.gossip.bind_address().is_ok_and(|a| a.port() == 0)
}

/// A memory-only node (`wal.enabled = false`) whose default data directory holds the log of
/// an earlier run under its name: its tasks are not recovered now, and a user expecting them
/// hears why (they come back at the next start with the log on).
fn warn_of_a_log_not_recovered(name: &str) {
    let Some(dir) = wal::default_data_dir(name) else {
        return;
    };
    let Ok(listing) = wal::segment::list(&dir) else {
        return;
    };
    if listing.segments.is_empty() && listing.checkpoints.is_empty() {
        return;
    }
    tracing::warn!(
        dir = %dir.display(),
        "wal.enabled = false: this node keeps nothing on disk and does not recover the log an earlier run of node {name} left in its data directory; the tasks there wait for a start with wal.enabled = true"
    );
}

/// The file in the data directory naming the node that last started on it.
const OWNER_FILE: &str = "node-name";

/// Warns when the data directory (locked by now) was last used by a node of another name: a
/// node given another's `--data-dir` takes over its log — that node's tasks in flight run
/// here, and the cluster lists that one as dead — which is meant when a node is renamed and a
/// mistake otherwise. Then records this node's name there.
fn note_the_directory_owner(dir: &std::path::Path, name: &str, in_flight: usize, history: usize) {
    let path = dir.join(OWNER_FILE);
    let last = std::fs::read_to_string(&path).ok();
    let last = last.as_deref().map(|text| text.trim_end_matches('\n'));
    if last == Some(name) {
        return;
    }
    if let Some(last) = last
        && in_flight + history > 0
    {
        tracing::warn!(
            dir = %dir.display(),
            "this data directory was last used by node {} and this node is {}: it takes over that node's log (tasks in flight, which run here: {in_flight}; finished tasks in its history: {history}). If that is not meant, stop this node and give it its own --data-dir (or start it as --name {})",
            super::units::printable(last, false),
            super::units::printable(name, false),
            super::units::printable(last, false),
        );
    }
    if let Err(error) = wal::segment::Io::default().write_file_atomically(
        dir,
        OWNER_FILE,
        format!("{name}\n").as_bytes(),
    ) {
        tracing::warn!(
            "cannot record this node's name in {}: {error}; a node of another name started on this directory later is not warned that it takes over this one's log",
            path.display()
        );
    }
}

/// A node named by default (the host name, plus the gossip port with gossip on) whose data
/// directory is new warns when directories beside it hold logs of this host's other default
/// names: turning gossip on, or moving its port, gives the node another name and so another
/// directory, and its acknowledged tasks looked lost.
fn warn_of_logs_under_other_default_names(name: &str) {
    let Some(dir) = wal::default_data_dir(name) else {
        return;
    };
    if dir.join(wal::segment::LOCK_FILE).exists() {
        return;
    }
    let host = super::gossip::default_host_name();
    let Some(parent) = dir.parent() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let mut others: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let file_name = entry.file_name();
            let other = file_name.to_string_lossy();
            let default_name = other == host
                || other
                    .strip_prefix(host.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|port| {
                        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                    });
            // A directory a live node holds is that node's, not one this node may have
            // left behind under another name.
            default_name
                && other != name
                && wal::segment::list(&entry.path()).is_ok_and(|listing| {
                    !listing.segments.is_empty() || !listing.checkpoints.is_empty()
                })
                && wal::segment::lock_holder(&entry.path()).is_none()
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    if others.is_empty() {
        return;
    }
    others.sort();
    tracing::warn!(
        data_dir = %dir.display(),
        "this node is named {name} by default, and its data directory is new; beside it in {}, {} {} the log of a node this host ran under another default name (the host name, plus the gossip port when gossip is on). If this node is that one, stop it and start it with --name set to that name to recover its tasks",
        parent.display(),
        others.join(", "),
        if others.len() == 1 { "holds" } else { "hold" }
    );
}

/// The host name, for a node without `node.name`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| "goliath".to_string())
}

/// Sets up a node: config plus any task kinds the embedding program adds.
pub struct NodeBuilder {
    config: Config,
    kinds: Kinds,
    wal_faults: Option<Arc<Faults>>,
}

impl NodeBuilder {
    /// A builder with the built-in kinds.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            kinds: Kinds::new(),
            wal_faults: None,
        }
    }

    /// Makes the WAL's writes and fdatasyncs fail as `faults` says. For tests of fail-stop
    /// and full disks only.
    #[doc(hidden)]
    pub fn wal_faults(&mut self, faults: Arc<Faults>) {
        self.wal_faults = Some(faults);
    }

    /// Adds a task kind, typed by its name in the text form.
    pub fn register_kind(&mut self, kind: Arc<dyn TaskKind>) -> Result<KindId, RegisterError> {
        self.kinds.register(kind)
    }

    /// Starts the workers and the I/O thread.
    pub fn start(self) -> Result<Node, StartError> {
        let config = self.config;
        if let Some((key, message)) = config.first_problem() {
            return Err(StartError::Config { key, message });
        }
        let workers = config.scheduler.workers.resolve().max(1);
        let capacity = config.arena.slots;
        let name = node_name(&config);
        if config.wal.enabled && data_dir_named_by_pid(&config) {
            tracing::warn!(
                name = %name,
                "this node's name comes from its process id (node.name is empty and gossip.bind has port 0), and so does its default data directory: the next start will not find the tasks logged by this one; set --name or --data-dir"
            );
        }
        if config.wal.enabled && config.node.name.is_empty() && config.node.data_dir.is_empty() {
            warn_of_logs_under_other_default_names(&name);
        }
        if !config.wal.enabled && config.node.data_dir.is_empty() {
            warn_of_a_log_not_recovered(&name);
        }
        let io = IoThread::start("goliath-io").map_err(|error| StartError::Spawn {
            what: "the I/O thread",
            error,
        })?;
        let clock = Clock::new();
        let kinds = self.kinds;
        let recovery = if config.wal.enabled {
            let mut options = wal::WalOptions::from_config(&config, &name)?;
            options.faults = self.wal_faults;
            let recovery = wal::open(options, &|spec| wal::tasks::runnable(&kinds, &config, spec))?;
            note_the_directory_owner(
                recovery.dir(),
                &name,
                recovery.state().live.len(),
                recovery.state().finished.len(),
            );
            // The directory is locked, so the node that listed these is gone; its `exec`
            // tasks run again below, so whatever they left running is stopped first.
            match super::children::stop_leftovers(recovery.dir()) {
                Ok(0) => {}
                Ok(stopped) => tracing::warn!(
                    groups = stopped,
                    "stopped the exec processes the previous run of this node left running (it ended without stopping them); their tasks run again, unless they were cancelled"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    "cannot read the list of exec processes the previous run left; some may still be running"
                ),
            }
            Some(recovery)
        } else {
            None
        };
        let kind_count = u16::try_from(kinds.names().len()).unwrap_or(u16::MAX);
        let slice_ticks =
            clock.ns_to_ticks(u64::try_from(config.scheduler.slice.as_nanos()).unwrap_or(u64::MAX));
        let spin_ticks = clock.ns_to_ticks(
            u64::try_from(config.scheduler.spin_before_park.as_nanos()).unwrap_or(u64::MAX),
        );
        let deques: Vec<Worker<u32>> = (0..workers).map(|_| Worker::new_fifo()).collect();
        let mut shared = Shared {
            name,
            arena: Arena::new(capacity, workers),
            kinds,
            injector: Injector::new(capacity),
            stealers: deques.iter().map(|d| d.stealer()).collect(),
            worker_stats: (0..workers)
                .map(|_| CachePadded::new(WorkerStats::default()))
                .collect(),
            offload_finished: FinishCounts::default(),
            offload_executed: AtomicU64::new(0),
            sleepers: Sleepers::new(workers),
            history: History::new(config.history.tasks, workers + 1),
            events: EventBus::new(config.events.capacity),
            clock,
            slice_ticks,
            spin_ticks,
            offload: Offload::new(io.handle().clone()),
            kind_count,
            completions: Completions::new(capacity),
            late_watchers: LateWatchers::default(),
            idempotency: IdempotencyKeys {
                entries: Mutex::new(Default::default()),
                capacity: config.node.idempotency_keys,
            },
            accepting: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            listen: Mutex::new(None),
            host: Mutex::new(HostSampler::new()),
            cluster: Mutex::new(None),
            wal: None,
            recovered: Vec::new(),
            recovered_submitted: Vec::new(),
            children: super::children::Children::new(recovery.as_ref().map(|r| r.dir())),
            interrupting: AtomicBool::new(false),
            config,
        };
        if let Some(recovery) = recovery {
            shared.restore(recovery.state())?;
            shared.wal = Some(recovery.start()?);
        }
        let shared = Arc::new(shared);
        let mut threads = Vec::with_capacity(workers);
        for (index, deque) in deques.into_iter().enumerate() {
            let core = WorkerCore {
                shared: shared.clone(),
                index,
                deque,
            };
            let spawned = std::thread::Builder::new()
                .name(format!("goliath-worker-{index}"))
                .spawn(move || scheduler::run_worker(core));
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(source) => {
                    shared.stopping.store(true, Ordering::SeqCst);
                    shared.sleepers.wake_all();
                    for thread in threads {
                        let _ = thread.join();
                    }
                    return Err(StartError::Spawn {
                        what: "a worker thread",
                        error: source,
                    });
                }
            }
        }
        tracing::info!(
            node = %shared.name,
            workers,
            arena_slots = capacity,
            arena_bytes = shared.arena.stats().bytes_reserved,
            "node started"
        );
        Ok(Node {
            shared,
            threads: Mutex::new(threads),
            io: Mutex::new(Some(io)),
            stopped: AtomicBool::new(false),
            stop_began: Mutex::new(None),
            farewell: Farewell::default(),
        })
    }
}

/// A running node. Dropping it shuts it down without a grace period.
pub struct Node {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    io: Mutex<Option<IoThread>>,
    stopped: AtomicBool,
    /// When the stop began ([`Node::stop_accepting`]) and the tasks in flight then: the
    /// grace counts from there, and the stop's report names those tasks.
    stop_began: Mutex<Option<(Instant, usize)>>,
    farewell: Farewell,
}

/// Lets the protocol's open connections tell their clients the node is stopping (rather
/// than just closing, as a crash would) before the I/O thread they run on ends.
#[derive(Debug, Default)]
struct Farewell {
    listeners: Arc<Mutex<Listeners>>,
}

/// The protocol connections open on a node, each told through its completion queue when the
/// node stops serving. At most one entry per open connection (`net.max_connections`).
#[derive(Debug, Default)]
struct Listeners {
    /// The node stopped serving: a connection opened after it is told at once.
    said: bool,
    next_key: u64,
    open: Vec<(u64, CompletionSender)>,
}

/// How long a stopping node waits for its connections to say goodbye.
const FAREWELL_WAIT: Duration = Duration::from_millis(250);

impl Farewell {
    /// Registers a connection's queue; see [`Node::farewell`].
    fn open(&self, completions: &CompletionSender) -> OpenConnection {
        let mut listeners = lock(&self.listeners);
        if listeners.said {
            completions.tell_node_stopping();
        }
        let key = listeners.next_key;
        listeners.next_key += 1;
        listeners.open.push((key, completions.clone()));
        OpenConnection {
            listeners: self.listeners.clone(),
            key,
        }
    }

    /// Tells every connection, then waits until each has closed or [`FAREWELL_WAIT`] passed.
    fn say(&self) {
        {
            let mut listeners = lock(&self.listeners);
            listeners.said = true;
            for (_, connection) in &listeners.open {
                connection.tell_node_stopping();
            }
        }
        let deadline = Instant::now() + FAREWELL_WAIT;
        while !lock(&self.listeners).open.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Held by an open protocol connection; see [`Node::farewell`].
#[derive(Debug)]
pub(crate) struct OpenConnection {
    listeners: Arc<Mutex<Listeners>>,
    key: u64,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let mut listeners = lock(&self.listeners);
        if let Some(at) = listeners.open.iter().position(|(key, _)| *key == self.key) {
            listeners.open.swap_remove(at);
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node with the built-in task kinds.
    pub fn start(config: Config) -> Result<Node, StartError> {
        NodeBuilder::new(config).start()
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The config the node runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The task kinds this node knows.
    pub fn kinds(&self) -> &Kinds {
        &self.shared.kinds
    }

    /// Parses the text form with this node's kinds.
    pub fn parse(&self, text: &str) -> Result<Submission, SpecError> {
        self.shared.kinds.parse(text)
    }

    /// Writes a spec in the text form.
    pub fn format(&self, spec: &TaskSpec) -> String {
        self.shared.kinds.format(spec)
    }

    /// Submits one task. `Busy` at once when the arena is full; with a WAL, returns once the
    /// task is durable.
    pub fn submit(&self, spec: TaskSpec) -> Result<TaskId, SubmitError> {
        let (id, ticket) = self.shared.submit_on(&spec, None, None)?;
        ticket.wait()?;
        Ok(id)
    }

    /// Submits one task without waiting for the WAL: the ticket says when it is durable
    /// (acknowledge it only then).
    pub fn submit_pending(&self, spec: TaskSpec) -> Result<(TaskId, Ticket), SubmitError> {
        self.shared.submit_on(&spec, None, None)
    }

    /// Submits `copies` of a task. Refuses the whole batch, before claiming any of it, when it
    /// cannot fit (a single task is refused by its claim).
    pub fn submit_copies(&self, spec: &TaskSpec, copies: u32) -> Result<Vec<TaskId>, BatchError> {
        let submission = Submission {
            spec: spec.clone(),
            copies,
        };
        self.submit_batch(std::slice::from_ref(&submission), None, None)
            .map(|outcome| outcome.ids)
    }

    /// Submits several parsed lines (each with its copies) as one batch, refused whole when it
    /// cannot fit. With an `idempotency_key` seen before, nothing is submitted and the earlier
    /// ids come back (`duplicate`), or, when this batch differs from the earlier one (other
    /// specs or copies), [`SubmitError::Invalid`] says how; a batch cut short by an error is
    /// remembered with the ids it got, so a retry never runs a task twice. With a `watcher`,
    /// each finished task is sent to it. With a WAL, returns once the batch is durable.
    pub fn submit_batch(
        &self,
        submissions: &[Submission],
        idempotency_key: Option<&str>,
        watcher: Option<&CompletionSender>,
    ) -> Result<BatchOutcome, BatchError> {
        match self.submit_batch_pending(submissions, idempotency_key, watcher) {
            Ok(pending) => match pending.ticket.wait() {
                Ok(()) => Ok(pending.outcome),
                Err(error) => Err(BatchError {
                    submitted: Vec::new(),
                    error: error.into(),
                }),
            },
            Err(error) => {
                if !error.submitted.is_empty() {
                    // Those that were submitted are acknowledged by the error: make them durable.
                    if let Err(failure) = self.log_ticket().wait() {
                        return Err(BatchError {
                            submitted: Vec::new(),
                            error: failure.into(),
                        });
                    }
                }
                Err(error)
            }
        }
    }

    /// [`Node::submit_batch`] without waiting for the WAL: the batch is durable when the
    /// returned ticket is (a duplicate's ticket is the original submission's). The whole
    /// batch is one group in the log: after a crash it is recovered whole or not at all.
    pub fn submit_batch_pending(
        &self,
        submissions: &[Submission],
        idempotency_key: Option<&str>,
        watcher: Option<&CompletionSender>,
    ) -> Result<PendingBatch, BatchError> {
        let shared = &self.shared;
        if let ([one], None) = (submissions, idempotency_key)
            && one.tasks() == 1
        {
            // One task, no key: the single submit, without the batch's claim list and
            // line bookkeeping. It checks, claims, logs and queues the same way.
            return match shared.submit_on(&one.spec, None, watcher) {
                Ok((id, ticket)) => Ok(PendingBatch {
                    outcome: BatchOutcome {
                        ids: vec![id],
                        duplicate: false,
                    },
                    ticket,
                }),
                Err(error) => Err(BatchError {
                    submitted: Vec::new(),
                    error,
                }),
            };
        }
        if let Some(key) = idempotency_key
            && key.len() > IDEMPOTENCY_KEY_MAX
        {
            // Keys are kept in memory, in the log and in checkpoints, up to
            // node.idempotency_keys of them: each must be small.
            return Err(BatchError {
                submitted: Vec::new(),
                error: SubmitError::Invalid(format!(
                    "the idempotency key is {} bytes, more than the {IDEMPOTENCY_KEY_MAX} \
                     a key may have; nothing was submitted: use a shorter key (a UUID, or \
                     a hash of a longer name)",
                    key.len()
                )),
            });
        }
        let mut keys = idempotency_key.map(|key| (key, lock(&shared.idempotency.entries)));
        let earlier = keys
            .as_ref()
            .and_then(|(key, entries)| entries.0.get(*key).cloned());
        if let Some(KeyEntry {
            ids,
            ticket,
            request,
        }) = earlier
        {
            // Any earlier tasks are looked up without the keys' lock.
            drop(keys);
            if let Some(difference) = self.key_reuse_difference(submissions, &ids, request) {
                return Err(BatchError {
                    submitted: Vec::new(),
                    error: SubmitError::Invalid(format!(
                        "idempotency key {:?} was first used for other work ({difference}); \
                         nothing was submitted: use a new key for new work",
                        super::units::printable(idempotency_key.unwrap_or_default(), false)
                    )),
                });
            }
            return Ok(PendingBatch {
                outcome: BatchOutcome {
                    ids,
                    duplicate: true,
                },
                ticket,
            });
        }
        let total: u64 = submissions.iter().map(|s| u64::from(s.tasks())).sum();
        let arena = &shared.arena;
        if total > arena.capacity() as u64 {
            // Busy would tell the caller to retry, and no retry can ever fit it. Counted with
            // the refusals all the same: the arena's size refused it.
            arena.count_refused();
            return Err(BatchError {
                submitted: Vec::new(),
                error: SubmitError::Invalid(format!(
                    "a batch of {total} tasks can never fit: this node has {} task slots \
                     (arena.slots); submit it in parts of at most that many, or raise arena.slots",
                    arena.capacity()
                )),
            });
        }
        // A batch that cannot fit whole is refused before any of it is claimed. One task
        // needs no such check (its claim says Busy itself), and skipping it spares every
        // single submit a read of each worker's free counter, a cache line that worker
        // writes at every task it finishes.
        if total > 1 && total > arena.capacity().saturating_sub(arena.in_use()) as u64 {
            return Err(BatchError {
                submitted: Vec::new(),
                error: SubmitError::Busy(
                    arena.refuse(usize::try_from(total).unwrap_or(usize::MAX)),
                ),
            });
        }
        // Every spec is checked before any is taken: an `exec` of a missing program third in
        // a batch used to leave the first two submitted (and an idempotency key bound to them).
        if let Some((index, error)) = submissions.iter().enumerate().find_map(|(index, s)| {
            shared
                .check_submittable(&s.spec)
                .err()
                .map(|error| (index, error))
        }) {
            // Which of several specs: the error alone ("program not found") left the sender
            // to guess, in a batch read from a file.
            let error = match error {
                SubmitError::Invalid(message) if submissions.len() > 1 => {
                    SubmitError::Invalid(format!(
                        "spec #{} of the {}: {message}; nothing of the batch was submitted",
                        index + 1,
                        submissions.len()
                    ))
                }
                other => other,
            };
            return Err(BatchError {
                submitted: Vec::new(),
                error,
            });
        }
        // Claim every slot first, so the batch is logged as one group before any of it runs.
        let mut claimed: Vec<(u32, TaskId)> =
            Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for submission in submissions {
            for _ in 0..submission.tasks() {
                match shared.arena.claim() {
                    Ok(slot) => claimed.push(slot),
                    Err(busy) => {
                        // Full (for a batch: others took the room counted above). A batch is
                        // taken whole or not at all, so the slots claimed so far go back.
                        for (index, _) in &claimed {
                            shared.arena.hand_back(*index);
                        }
                        return Err(BatchError {
                            submitted: Vec::new(),
                            error: SubmitError::Busy(busy),
                        });
                    }
                }
            }
        }
        let mut failure = None;
        if claimed.len() > 1 {
            // Single claims sample the high-water mark every 64th time only; a batch's peak
            // is known here, once, at the cost of reading the free counters again.
            shared.arena.note_in_use();
        }
        let now = shared.clock.now();
        let request = idempotency_key.map(|_| request_print(&shared.kinds, submissions));
        let ticket = match &shared.wal {
            Some(wal) if !claimed.is_empty() => {
                let key = idempotency_key.zip(request);
                match shared.log_batch(wal, submissions, &claimed, key, now) {
                    Ok(ticket) => ticket,
                    Err(error) => {
                        for (index, _) in &claimed {
                            shared.arena.hand_back(*index);
                        }
                        return Err(BatchError {
                            submitted: Vec::new(),
                            error,
                        });
                    }
                }
            }
            _ => Ticket::ready(),
        };
        let mut queued = false;
        for (submission, line) in claimed_by_line(submissions, &claimed) {
            for (index, id) in line {
                shared.fill(*index, submission.spec.clone(), watcher, now, 1);
                // One wake-up for the whole batch, after its last task: a woken worker that
                // finds more wakes the next (see `scheduler`).
                match shared.publish_submitted(
                    *index,
                    *id,
                    &submission.spec,
                    None,
                    now,
                    Wake::Later,
                ) {
                    Ok(was_queued) => queued |= was_queued,
                    Err(error) => {
                        failure.get_or_insert(error);
                    }
                }
            }
        }
        // Only for work a worker can take: waking one for tasks that already finished (echo)
        // cost every echo round trip a futex call and a worker's spin on its core.
        if queued {
            shared.sleepers.notify_after_injector_push();
        }
        // In place: the claimed list's buffer becomes the id list.
        let ids: Vec<TaskId> = claimed.into_iter().map(|(_, id)| id).collect();
        if let Some((key, entries)) = keys.as_mut()
            && !ids.is_empty()
        {
            IdempotencyKeys::remember(
                entries,
                shared.idempotency.capacity,
                key,
                ids.clone(),
                ticket.clone(),
                request,
            );
        }
        match failure {
            None => Ok(PendingBatch {
                outcome: BatchOutcome {
                    ids,
                    duplicate: false,
                },
                ticket,
            }),
            Some(error) => Err(BatchError {
                submitted: ids,
                error,
            }),
        }
    }

    /// For a repeated idempotency key: how this submission differs from the one that first
    /// used the key (its tasks `ids`, and its print when the key was used since this start),
    /// or None when they match. With a print the whole request is compared, whatever became
    /// of its tasks; a batch cut short by an error matches a retry of the same request. A
    /// recovered key has no print: its first [`KEY_CHECK_TASKS`] tasks are compared with
    /// this request's, and tasks the node no longer keeps count as matching.
    fn key_reuse_difference(
        &self,
        submissions: &[Submission],
        ids: &[TaskId],
        request: Option<KeyRequest>,
    ) -> Option<String> {
        if let Some(earlier) = request {
            let now = request_print(&self.shared.kinds, submissions);
            if now == earlier {
                return None;
            }
            // The batches by their first specs: the earlier one's from its first task (the
            // key's ids are never empty), or by id if the node no longer keeps it.
            let first_id = ids.first().copied().unwrap_or(TaskId(0));
            let earlier_first = self.task(first_id).ok().map(|task| task.spec);
            let now_first = submissions
                .first()
                .map_or_else(String::new, |s| self.format(&s.spec));
            let counted = earlier.tasks != now.tasks;
            let then = describe_batch(
                earlier.tasks,
                &earlier_first
                    .as_deref()
                    .map_or_else(|| format!("task {first_id}"), |spec| format!("`{spec}`")),
                counted,
            );
            return Some(
                if now.tasks == earlier.tasks && earlier_first.as_deref() == Some(&now_first) {
                    format!("{then} then; now as many, the same first, other specs after it")
                } else {
                    let now = describe_batch(now.tasks, &format!("`{now_first}`"), counted);
                    format!("{then} then, {now} now")
                },
            );
        }
        // Recovered from a log of format 4 or older (no print kept): the count, then the
        // first specs.
        let total: u64 = submissions.iter().map(|s| u64::from(s.tasks())).sum();
        if total != ids.len() as u64 {
            let then = super::units::counted(ids.len() as u64, "task", "tasks");
            return Some(format!("{then} then, {total} now"));
        }
        let specs = submissions
            .iter()
            .flat_map(|s| std::iter::repeat_n(&s.spec, s.tasks() as usize));
        for (id, spec) in ids.iter().zip(specs).take(KEY_CHECK_TASKS) {
            let spec = self.format(spec);
            match self.task(*id) {
                Ok(earlier) if earlier.spec != spec => {
                    return Some(format!("task {id} was `{}`, now `{spec}`", earlier.spec));
                }
                _ => {}
            }
        }
        None
    }

    /// A ticket for everything logged so far (ready for a memory-only node).
    pub fn log_ticket(&self) -> Ticket {
        self.shared
            .wal
            .as_ref()
            .map(Wal::ticket_now)
            .unwrap_or_else(Ticket::ready)
    }

    /// Parses and submits one line of the text form (with its `xN` copies).
    pub fn submit_text(&self, text: &str) -> Result<Vec<TaskId>, SubmitTextError> {
        let submission = self.parse(text)?;
        Ok(self.submit_copies(&submission.spec, submission.copies)?)
    }

    /// Asks a task to stop. A queued task never starts; a running one stops within one slice;
    /// a sleeping one wakes; an exec child gets SIGTERM, then SIGKILL after `exec.kill_grace`.
    /// With a WAL, returns once the request is durable (it then holds across restarts).
    pub fn cancel(&self, id: TaskId) -> Result<CancelOutcome, CancelError> {
        let (outcome, ticket) = self.shared.cancel(id)?;
        ticket
            .wait()
            .map_err(|error| CancelError::NotDurable(error, id))?;
        Ok(outcome)
    }

    /// [`Node::cancel`] without waiting for the WAL: the request is durable when the ticket is.
    pub fn cancel_pending(&self, id: TaskId) -> Result<(CancelOutcome, Ticket), CancelError> {
        self.shared.cancel(id)
    }

    /// [`Node::cancel_pending`] of each of `ids` in turn, stopping after the first error
    /// that is not a failed lookup (the log failed: later ids are left alone). Tasks no
    /// longer in flight are looked up in one pass over the history for all of them, so a
    /// range of 100,000 ids costs about one pass, not one per id.
    pub fn cancel_many_pending(&self, ids: &[TaskId]) -> Vec<CancelResultPending> {
        self.shared.cancel_many(ids)
    }

    /// Why the write-ahead log failed, once it has (the node then acknowledges nothing).
    pub fn wal_failure(&self) -> Option<String> {
        self.shared
            .wal
            .as_ref()
            .and_then(Wal::failure)
            .map(|failure| failure.to_string())
    }

    /// Resolves when the write-ahead log fails; never, for a memory-only node.
    pub async fn wal_failed(&self) -> String {
        match &self.shared.wal {
            Some(wal) => wal.failed().await.to_string(),
            None => std::future::pending().await,
        }
    }

    /// The data directory, for a node with a write-ahead log.
    pub fn data_dir(&self) -> Option<&Path> {
        self.shared.wal.as_ref().map(Wal::dir)
    }

    /// Describes one task, in flight or remembered in the history.
    pub fn task(&self, id: TaskId) -> Result<TaskInfo, LookupError> {
        self.task_with_output_up_to(id, usize::MAX)
    }

    /// One task as [`Node::task`] describes it, with at most `bytes` of each `exec` output
    /// stream (the rest counted as not kept): what a watcher needs of a task at each of its
    /// events, without copying everything it printed each time.
    pub fn task_with_output_up_to(
        &self,
        id: TaskId,
        bytes: usize,
    ) -> Result<TaskInfo, LookupError> {
        if let Some(index) = self.shared.arena.find(id)
            && let Some(info) = self.shared.live_info(index)
            && info.id == id
        {
            return Ok(info);
        }
        if !self.shared.ever_accepted(id) {
            return Err(self.shared.lookup_error(id));
        }
        match self.shared.history.find(id, bytes) {
            Some(task) => Ok(self.shared.finished_info(task)),
            None => match self.shared.recovered_task(id) {
                Some(task) => {
                    // As from the history: only exec streams are cut (a recovered task keeps
                    // at most 4 KiB of each, so the copy is small).
                    let mut task = task.clone();
                    if let Some(TaskOutput::Process(process)) = &mut task.output {
                        process.keep_at_most(bytes);
                    }
                    Ok(task)
                }
                None => Err(self.shared.lookup_error(id)),
            },
        }
    }

    /// Lists tasks, in flight and finished, newest first.
    pub fn tasks(&self, query: TaskQuery) -> Vec<TaskInfo> {
        self.collect_tasks(query, None, false)
    }

    /// The tasks a list or a snapshot carries: up to `query.limit`, newest first. With
    /// `running_first` (the console's snapshot), every running task is kept (up to the limit)
    /// and the newest others fill the rest, so work in progress is never crowded out by a
    /// burst of newer queued or finished tasks.
    fn collect_tasks(
        &self,
        query: TaskQuery,
        counts: Option<&mut TaskCounts>,
        running_first: bool,
    ) -> Vec<TaskInfo> {
        let shared = &self.shared;
        let wants_live = query.state.is_none_or(|s| !s.is_finished());
        let wants_finished = query.state.is_none_or(|s| s.is_finished());
        let newest_first = |candidate: &(u64, u32)| std::cmp::Reverse(candidate.0);
        // (task id, slot index) of the live tasks the query takes, by state; ids and
        // states only, so a node with 60,000 queued tasks copies no spec to list 1,000.
        let mut running_slots: Vec<(u64, u32)> = Vec::new();
        let mut queued_slots: Vec<(u64, u32)> = Vec::new();
        let mut queued = 0u64;
        let mut running = 0u64;
        if wants_live || counts.is_some() {
            for index in shared.arena.live_indices() {
                let slot = shared.arena.slot(index);
                // Read again: the slot was live when listed, but its task may have finished
                // since (free, or claimed by a newer submission). Those are not counted: under
                // load they inflated `running` to dozens on two workers.
                let Some(task_state) = live_state(slot, Ordering::Relaxed) else {
                    continue;
                };
                let (count, slots) = if task_state == TaskState::Queued {
                    (&mut queued, &mut queued_slots)
                } else {
                    (&mut running, &mut running_slots)
                };
                *count += 1;
                let id = slot.id.load(Ordering::Acquire);
                if wants_live && query.limit > 0 && query.takes(TaskId(id), task_state) {
                    slots.push((id, index));
                }
            }
        }
        if let Some(counts) = counts {
            counts.queued = queued;
            counts.running = running;
        }
        let newest = |slots: &mut Vec<(u64, u32)>, limit: usize| {
            if slots.len() > limit {
                slots.select_nth_unstable_by_key(limit, newest_first);
                slots.truncate(limit);
            }
        };
        let infos = |slots: &[(u64, u32)]| -> Vec<TaskInfo> {
            slots
                .iter()
                .filter_map(|&(_, index)| shared.live_info(index))
                .filter(|info| query.takes(info.id, info.state))
                .collect()
        };
        let mut pinned = Vec::new();
        if running_first {
            newest(&mut running_slots, query.limit);
            pinned = infos(&running_slots);
            running_slots.clear();
        }
        let room = query.limit - pinned.len().min(query.limit);
        newest(&mut running_slots, room);
        newest(&mut queued_slots, room);
        let mut all = infos(&running_slots);
        all.extend(infos(&queued_slots));
        if wants_finished {
            let finished =
                shared
                    .history
                    .recent(room, &query, super::task::limits::LISTED_OUTPUT_MAX);
            all.extend(finished.into_iter().map(|t| shared.finished_info(t)));
            all.extend(
                shared
                    .recovered_kept()
                    .iter()
                    .rev()
                    .filter(|task| query.takes(task.id, task.state))
                    .take(room)
                    .cloned(),
            );
        }
        all.sort_unstable_by_key(|task| std::cmp::Reverse(task.id));
        all.truncate(room);
        all.append(&mut pinned);
        // A task that finished while it was being listed is both live and in the history:
        // listed once, as it ended (the finished copy first, then the others dropped).
        all.sort_unstable_by_key(|task| (std::cmp::Reverse(task.id), !task.state.is_finished()));
        all.dedup_by_key(|task| task.id);
        // A list carries the start of each output: 10,000 exec tasks with all they printed
        // would be hundreds of megabytes. `task` has the whole of one. The history copied
        // only that start already; recovered tasks are cut here.
        for task in &mut all {
            if let Some(TaskOutput::Process(process)) = &mut task.output {
                process.keep_at_most(super::task::limits::LISTED_OUTPUT_MAX);
            }
        }
        all
    }

    /// A view of the whole node with up to `task_limit` tasks: every running one (up to the
    /// limit), then the newest others.
    pub fn snapshot(&self, task_limit: usize) -> NodeSnapshot {
        let shared = &self.shared;
        let now = shared.clock.now();
        let workers: Vec<WorkerSnapshot> = shared
            .worker_stats
            .iter()
            .enumerate()
            .map(|(index, stats)| {
                let current = stats.current.load(Ordering::Relaxed);
                WorkerSnapshot {
                    index: index as u16,
                    activity: match stats.state.load(Ordering::Relaxed) {
                        worker_state::RUNNING => WorkerActivity::Running,
                        worker_state::SEARCHING => WorkerActivity::Searching,
                        worker_state::PARKED => WorkerActivity::Parked,
                        _ => WorkerActivity::Stopped,
                    },
                    depth: shared.stealers[index].len(),
                    executed: stats.executed.load(Ordering::Relaxed),
                    slices: stats.slices.load(Ordering::Relaxed),
                    stole: stats.stole.load(Ordering::Relaxed),
                    stolen_from: stats.stolen_from.load(Ordering::Relaxed),
                    parks: stats.parks.load(Ordering::Relaxed),
                    current: (current != 0).then_some(TaskId(current)),
                }
            })
            .collect();
        let mut counts = shared.finished_counts();
        let arena = shared.arena.stats();
        let tasks = self.collect_tasks(
            TaskQuery {
                limit: task_limit,
                ..TaskQuery::default()
            },
            Some(&mut counts),
            true,
        );
        // The tasks recovered from the log were accepted by an earlier run, not since this
        // start, though they hold slots the way new ones do.
        counts.submitted = shared
            .arena
            .claims()
            .saturating_sub(shared.recovered_submitted.len() as u64);
        counts.recovered = shared.recovered_submitted.len() as u64;
        let mut snapshot = NodeSnapshot {
            node: NodeInfo {
                name: shared.name.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                pid: std::process::id(),
                started_unix_us: shared.clock.origin_unix_us(),
                now_unix_us: shared.clock.unix_us(now),
                listen: lock(&shared.listen).clone(),
                slice_us: u64::try_from(shared.config.scheduler.slice.as_micros())
                    .unwrap_or(u64::MAX),
                accepting: shared.accepting.load(Ordering::Relaxed),
                exec_enabled: shared.config.exec.enabled,
                exec_remote: shared.config.exec.enabled && shared.config.exec.remote,
                kinds: shared.kinds.names().into_iter().map(String::from).collect(),
            },
            workers,
            submission_queue_depth: shared.injector.len(),
            arena,
            counts,
            tasks,
            host: lock(&shared.host).sample(),
            cluster: self.cluster(),
            wal: shared.wal.as_ref().map(Wal::snapshot),
        };
        // This node's own row: the figures of this very snapshot, not those it last gossiped
        // (sent at a bounded rate, so seconds old under a changing load).
        let (queue_depth, arena_free, load) = snapshot.load_figures();
        if let Some(meta) = snapshot
            .cluster
            .as_mut()
            .and_then(|c| c.members.iter_mut().find(|m| m.local))
            .and_then(|me| me.meta.as_mut())
        {
            meta.queue_depth = queue_depth;
            meta.arena_free = arena_free;
            meta.load = load;
        }
        snapshot
    }

    /// Cluster membership, when gossip runs on this node.
    pub fn cluster(&self) -> Option<ClusterSnapshot> {
        let source = lock(&self.shared.cluster).clone();
        source.map(|source| source.cluster_snapshot())
    }

    /// Connects (or disconnects) the gossip service whose membership snapshots carry.
    pub fn set_cluster(&self, source: Option<Arc<dyn ClusterSource>>) {
        *lock(&self.shared.cluster) = source;
    }

    /// Subscribes to task events (queued, running, finished).
    pub fn subscribe(&self) -> EventStream {
        self.shared.events.subscribe()
    }

    /// Watches tasks submitted earlier (the ids a used idempotency key made): each sent to
    /// `watcher` when it finishes, as a task submitted with it is. A task that has finished
    /// already is not sent (the caller looks those up). Several watchers may watch one task.
    /// The watch ends when the returned guard is dropped.
    pub fn watch_earlier(&self, ids: &[TaskId], watcher: &CompletionSender) -> LateWatch {
        let watchers = &self.shared.late_watchers;
        let mut table = lock(&watchers.table);
        for id in ids {
            let senders = table.entry(*id).or_default();
            if !senders.iter().any(|held| held.same_queue(watcher)) {
                senders.push(watcher.clone());
            }
        }
        watchers.count.store(table.len(), Ordering::Relaxed);
        LateWatch {
            shared: self.shared.clone(),
            ids: ids.to_vec(),
            sender: watcher.clone(),
        }
    }

    /// Records the protocol address the node serves, for snapshots.
    pub fn set_listen_address(&self, address: Option<String>) {
        *lock(&self.shared.listen) = address;
    }

    /// The I/O runtime, for serving the protocol beside the node.
    pub fn io_handle(&self) -> Option<tokio::runtime::Handle> {
        lock(&self.io).as_ref().map(|io| io.handle().clone())
    }

    /// Tasks in flight (queued, running or waiting). Allocates nothing; cheap to poll.
    pub fn in_flight(&self) -> usize {
        self.shared.arena.in_use()
    }

    /// Whether the node still accepts submissions.
    pub fn is_accepting(&self) -> bool {
        self.shared.accepting.load(Ordering::Relaxed)
    }

    /// For a protocol connection: `completions` is told when the node stops serving (its
    /// tasks are done; the I/O thread ends next; see [`CompletionSender::tell_node_stopping`]),
    /// at once if it already has. The node waits a moment, before it ends the I/O thread,
    /// for the token returned to be dropped, so the connection can tell its client why.
    pub(crate) fn farewell(&self, completions: &CompletionSender) -> OpenConnection {
        self.farewell.open(completions)
    }

    /// Refuses new tasks from now on (as shutting down), before [`Node::shutdown`]: for
    /// what a stop does first (leaving the cluster takes a moment), so no task is accepted
    /// after the stop began.
    pub fn stop_accepting(&self) {
        self.begin_stop();
    }

    /// Refuses new tasks, and returns when the stop began and the tasks in flight then
    /// (taken at the first call).
    fn begin_stop(&self) -> (Instant, usize) {
        self.shared.accepting.store(false, Ordering::SeqCst);
        *lock(&self.stop_began).get_or_insert_with(|| (Instant::now(), self.shared.arena.in_use()))
    }

    /// SIGKILLs the process groups of the `exec` tasks running now, for a process about to
    /// exit without [`Node::shutdown`] (a second signal during the grace period): what they
    /// started would otherwise live on behind it. Their tasks are not finished: a node with a
    /// data directory runs them again at its next start. Returns how many groups it signalled.
    pub fn kill_exec_processes(&self) -> usize {
        self.shared.children.kill_all()
    }

    /// Stops accepting tasks, lets those in flight finish for up to `grace` (counted from
    /// [`Node::stop_accepting`] when that came first), cancels the rest, and stops the
    /// workers and the I/O thread. Safe to call more than once.
    pub fn shutdown(&self, grace: Duration) -> ShutdownReport {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return ShutdownReport::default();
        }
        let shared = &self.shared;
        let (began, in_flight) = self.begin_stop();
        let wait_until_idle = |deadline: Instant| {
            while shared.arena.in_use() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        // A grace too long to add is as good as waiting for every task.
        wait_until_idle(began.checked_add(grace).unwrap_or_else(far_future));
        let mut cancelled = 0;
        if shared.arena.in_use() > 0 {
            // With a WAL, tasks stopped here are interrupted, not cancelled: nothing is logged
            // for them, so they run again at the next start.
            shared.interrupting.store(true, Ordering::SeqCst);
            for index in shared.arena.live_indices() {
                let id = TaskId(shared.arena.slot(index).id.load(Ordering::Acquire));
                if shared.cancel_in_memory(id) == Ok(CancelOutcome::Requested) {
                    cancelled += 1;
                }
            }
            let bound = shared.config.exec.kill_grace
                + Duration::from_secs(2)
                + shared.config.scheduler.slice * 4;
            wait_until_idle(Instant::now() + bound);
        }
        let abandoned = shared.arena.in_use();
        shared.stopping.store(true, Ordering::SeqCst);
        shared.sleepers.wake_all();
        for thread in lock(&self.threads).drain(..) {
            let _ = thread.join();
        }
        shared.events.close();
        // Clients hear that the node stopped, not just a closed connection.
        self.farewell.say();
        // Taken out first: the lock is not held while the thread finishes its tasks.
        let io = lock(&self.io).take();
        if let Some(mut io) = io {
            io.stop();
        }
        if let Some(wal) = &shared.wal {
            wal.shutdown();
            if cancelled > 0 || abandoned > 0 {
                tracing::info!(
                    interrupted = cancelled,
                    "tasks interrupted by the shutdown will run again at the next start"
                );
            }
        }
        if abandoned > 0 {
            tracing::warn!(abandoned, "node stopped with tasks still in flight");
        }
        // Neutral on purpose: with a log these tasks were interrupted (and said so above, as
        // running again at the next start), without one cancelled.
        tracing::info!(
            node = %shared.name,
            in_flight_at_shutdown = in_flight,
            stopped_after_grace = cancelled,
            abandoned,
            "node stopped"
        );
        ShutdownReport {
            in_flight,
            cancelled,
            abandoned,
        }
    }
}

/// An instant later than any wait needs (a year from now).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `receiver` has heard that the node stops serving.
    fn told_of_the_stop(receiver: &super::super::completions::CompletionReceiver) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        matches!(
            receiver.poll_recv(&mut cx),
            std::task::Poll::Ready(super::super::completions::Completion::NodeStopping)
        )
    }

    #[test]
    fn every_open_connection_and_any_opened_later_hears_the_farewell_and_leaves_no_entry() {
        use super::super::completions::completion_queue;
        let farewell = Farewell::default();
        let (sender, early) = completion_queue();
        let open_early = farewell.open(&sender);
        assert!(!told_of_the_stop(&early));
        // Waits its moment (FAREWELL_WAIT) for the connection still open, then goes on.
        farewell.say();
        assert!(told_of_the_stop(&early));
        let (sender, late) = completion_queue();
        let open_late = farewell.open(&sender);
        assert!(
            told_of_the_stop(&late),
            "opened after the stop: told at once"
        );
        drop((open_early, open_late));
        assert!(
            lock(&farewell.listeners).open.is_empty(),
            "closed connections leave"
        );
    }

    #[test]
    fn a_finished_echo_keeps_its_text_once_for_its_spec_and_its_output() {
        let mut config = Config::default();
        config.scheduler.workers = crate::config::WorkerCount::Fixed(1);
        config.wal.enabled = false;
        let node = Node::start(config).expect("node");
        let text = "x".repeat(64);
        let id = node.submit(TaskSpec::echo(&text)).expect("submit");
        let kept = node
            .shared
            .history
            .find(id, usize::MAX)
            .expect("in the history");
        let (Some(spec_text), TaskOutput::Text(output)) = (&kept.text, &kept.output) else {
            panic!("an echo keeps its text and its output: {kept:?}");
        };
        assert_eq!(&**output, text);
        // The default history of 10,000 echoes of 4 KiB (the most an echo takes) holds
        // 41 MB of text this way, 82 MB with the output a copy.
        assert!(
            Arc::ptr_eq(spec_text, output),
            "the spec's text and the output are one allocation"
        );
        node.shutdown(Duration::ZERO);
    }

    fn fib(n: u64, copies: u32) -> Submission {
        Submission {
            spec: TaskSpec::fib(n),
            copies,
        }
    }

    #[test]
    fn a_request_print_is_the_same_in_every_build_and_counts_runs_of_one_spec() {
        let kinds = Kinds::new();
        let print = request_print(&kinds, &[fib(5, 3)]);
        assert_eq!(print.tasks, 3);
        // The log keeps it: a print that changed between builds would call a retry after an
        // upgrade other work.
        assert_eq!(print.hash, 0xe205_b84b_3dc3_0fe9, "{:#018x}", print.hash);
        // The same tasks in other lines are the same request; other work is not.
        assert_eq!(request_print(&kinds, &[fib(5, 1), fib(5, 2)]), print);
        assert_ne!(request_print(&kinds, &[fib(6, 3)]).hash, print.hash);
        assert_ne!(request_print(&kinds, &[fib(5, 2), fib(5, 2)]), print);
        let echo = |text: &str| Submission {
            spec: TaskSpec::echo(text),
            copies: 1,
        };
        assert_ne!(
            request_print(&kinds, &[echo("ab"), echo("c")]).hash,
            request_print(&kinds, &[echo("a"), echo("bc")]).hash,
            "texts are delimited"
        );
    }
}
