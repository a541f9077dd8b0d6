//! The work-stealing scheduler: one worker thread per core, each owning a FIFO Chase-Lev deque
//! (`crossbeam_deque::Worker`) of `u32` slot indices; every worker's `Stealer` is shared.
//!
//! A worker looks for work in this order: its own deque; the bounded submission queue
//! (`injector`; taking, with the same compare-and-swap, a share of the backlog onto its deque
//! so others can steal it; every 61st task it looks there first, so external submissions are
//! never starved by local work); then the other workers' deques, in a random order, stealing
//! half a batch at a time.
//!
//! **Idle and wake-up.** An idle worker searches for `scheduler.spin_before_park`, looking
//! for work and yielding its core between looks, counted as *searching* (only while fewer
//! than half the workers, at least one, are searching: searchers must not hold every core
//! the I/O thread and the rest of the machine need), then registers as parked, issues a
//! SeqCst fence, looks once more, and parks. A submitter pushes (the submission queue's tail
//! moves with a SeqCst read-modify-write; a deque push is followed by a SeqCst fence) and
//! wakes one parked worker only if nobody is searching. Either the submitter sees the
//! registration or the worker's last look sees the task, so no wake-up is lost (the test
//! `no_lost_wakeups_under_submit_park_stress` would hang otherwise). A woken worker counts as
//! searching; when the last searcher finds work and more is visible it wakes the next
//! sleeper, so a burst wakes workers one at a time instead of all at once.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;

use crossbeam_deque::{Steal, Worker};
use crossbeam_utils::CachePadded;

use super::arena::{NO_WORKER, slot_state};
use super::kinds::{self, Scratch, StepContext};
use super::node::{Ending, FinishSite, Shared, SubmitError};
use super::task::{KindId, Step, TaskId, TaskOutput, TaskSpec, TaskState};

/// What a worker is doing, in [`WorkerStats::state`].
pub(crate) mod worker_state {
    pub const RUNNING: u8 = 0;
    pub const SEARCHING: u8 = 1;
    pub const PARKED: u8 = 2;
    pub const STOPPED: u8 = 3;
}

/// Most tasks moved from the submission queue to a worker's deque at once. Kept below the
/// deque's minimum capacity (64) so steady traffic never resizes (allocates) it.
const INJECT_BATCH: usize = 32;
/// Most tasks taken in one steal.
const STEAL_BATCH: usize = 32;
/// Every this many tasks a worker checks the submission queue before its own deque.
const FAIRNESS_INTERVAL: u32 = 61;
/// ... and at least this often while it runs tasks: with long slices (up to 1 s), every 61
/// tasks left a new submission queued for a minute behind running tasks.
const FAIRNESS_TIME_NS: u64 = 10_000_000;

/// Counts of finished tasks by final state.
#[derive(Debug, Default)]
pub(crate) struct FinishCounts {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub cancelled: AtomicU64,
    pub timed_out: AtomicU64,
}

impl FinishCounts {
    pub fn count(&self, state: TaskState, single_writer: bool) {
        let counter = match state {
            TaskState::Succeeded => &self.succeeded,
            TaskState::Failed => &self.failed,
            TaskState::Cancelled => &self.cancelled,
            TaskState::TimedOut => &self.timed_out,
            TaskState::Queued | TaskState::Running => return,
        };
        bump(counter, single_writer);
    }
}

#[inline]
pub(crate) fn bump(counter: &AtomicU64, single_writer: bool) {
    if single_writer {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    } else {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One worker's counters; each on its own cache lines, written by its worker (except
/// `stolen_from`, which thieves add to) and readable at any time.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub executed: AtomicU64,
    pub slices: AtomicU64,
    pub stole: AtomicU64,
    pub stolen_from: AtomicU64,
    pub parks: AtomicU64,
    pub finished: FinishCounts,
    pub state: AtomicU8,
    pub current: AtomicU64,
}

/// Parked workers and the searching count: the wake-up protocol described in the module docs.
///
/// Parked workers are bits in a few words (bit set = parked), so registering, waking and
/// checking take one atomic each and no lock.
#[derive(Debug)]
pub(crate) struct Sleepers {
    parked: Box<[AtomicU64]>,
    /// Workers looking for work. Written at every search start and end, read by every
    /// notify: on its own cache line, so those writes do not evict the node's read-mostly
    /// fields (clock, limits, queue handles) that sit beside `Sleepers` in `Shared`.
    num_searching: CachePadded<AtomicUsize>,
    threads: Box<[OnceLock<Thread>]>,
}

impl Sleepers {
    pub fn new(workers: usize) -> Self {
        Self {
            parked: (0..workers.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            num_searching: CachePadded::new(AtomicUsize::new(0)),
            threads: (0..workers).map(|_| OnceLock::new()).collect(),
        }
    }

    fn bit(worker: usize) -> (usize, u64) {
        (worker / 64, 1u64 << (worker % 64))
    }

    /// Call after making work visible (a deque push): wakes one parked worker unless one is
    /// already searching.
    #[inline]
    pub fn notify_one(&self) {
        fence(Ordering::SeqCst);
        self.notify_after_injector_push();
    }

    /// [`Sleepers::notify_one`] without its fence, for callers whose work became visible
    /// through [`Injector::push`](super::injector::Injector::push): that push moves the tail
    /// with a sequentially consistent read-modify-write, so these sequentially consistent
    /// loads cannot be ordered before it, and a worker that registers as parked (or stops
    /// searching) and then reads the tail cannot miss the task while this call misses the
    /// worker. Skipping the fence spares the submitter a wait for its queued stores (the
    /// filled slot, the queue cell), which are usually cache misses.
    #[inline]
    pub fn notify_after_injector_push(&self) {
        if self.num_searching.load(Ordering::SeqCst) != 0 {
            return;
        }
        if self
            .parked
            .iter()
            .all(|word| word.load(Ordering::SeqCst) == 0)
        {
            return;
        }
        self.wake_one();
    }

    #[cold]
    fn wake_one(&self) {
        for (word_index, word) in self.parked.iter().enumerate() {
            let mut bits = word.load(Ordering::SeqCst);
            while bits != 0 {
                if self.num_searching.load(Ordering::SeqCst) != 0 {
                    return;
                }
                // The highest bit: workers with high indices sleep first, leaving low ones warm.
                let bit = 1u64 << (63 - bits.leading_zeros());
                match word.compare_exchange(bits, bits & !bit, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => {
                        self.num_searching.fetch_add(1, Ordering::SeqCst);
                        let worker = word_index * 64 + bit.trailing_zeros() as usize;
                        if let Some(thread) = self.threads.get(worker).and_then(|t| t.get()) {
                            thread.unpark();
                        }
                        return;
                    }
                    Err(current) => bits = current,
                }
            }
        }
    }

    /// Wakes every parked worker (at shutdown).
    pub fn wake_all(&self) {
        for (word_index, word) in self.parked.iter().enumerate() {
            let bits = word.swap(0, Ordering::SeqCst);
            for offset in 0..64 {
                if bits & (1 << offset) != 0
                    && let Some(thread) = self
                        .threads
                        .get(word_index * 64 + offset)
                        .and_then(|t| t.get())
                {
                    thread.unpark();
                }
            }
        }
    }

    /// Counts the caller as searching unless `limit` workers already are: an idle worker
    /// spins only while fewer than half the workers do, so spinners never hold every core
    /// that the I/O thread, timers and other processes need.
    fn try_begin_search(&self, limit: usize) -> bool {
        let mut current = self.num_searching.load(Ordering::SeqCst);
        loop {
            if current >= limit {
                return false;
            }
            match self.num_searching.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Returns whether this was the last searcher.
    fn end_search(&self) -> bool {
        self.num_searching.fetch_sub(1, Ordering::SeqCst) == 1
    }

    fn register(&self, worker: usize) {
        let (word, bit) = Self::bit(worker);
        self.parked[word].fetch_or(bit, Ordering::SeqCst);
    }

    fn is_parked(&self, worker: usize) -> bool {
        let (word, bit) = Self::bit(worker);
        self.parked[word].load(Ordering::Acquire) & bit != 0
    }

    /// Takes `worker` off the parked set; false if a waker already did (and counted it as
    /// searching).
    fn deregister(&self, worker: usize) -> bool {
        let (word, bit) = Self::bit(worker);
        self.parked[word].fetch_and(!bit, Ordering::SeqCst) & bit != 0
    }
}

/// The parts of a worker that a running task may touch (to spawn onto its deque).
pub struct WorkerCore {
    pub(crate) shared: Arc<Shared>,
    pub(crate) index: usize,
    pub(crate) deque: Worker<u32>,
}

impl WorkerCore {
    pub(crate) fn spawn_local(&self, spec: TaskSpec) -> Result<TaskId, SubmitError> {
        // Logged, not waited for: a worker never blocks on the disk. The child is durable
        // with the next batch, before its parent's finished record can be.
        self.shared
            .submit_on(&spec, Some(self), None)
            .map(|(id, _)| id)
    }

    /// Pushes a slot onto this worker's deque and wakes a sleeper if there is more here than
    /// this worker can run next.
    pub(crate) fn push_local(&self, index: u32) {
        self.deque.push(index);
        if self.deque.len() > 1 {
            self.shared.sleepers.notify_one();
        }
    }

    fn stats(&self) -> &WorkerStats {
        &self.shared.worker_stats[self.index]
    }
}

/// A worker thread's own state.
struct WorkerThread {
    core: WorkerCore,
    scratch: Scratch,
    rng: u64,
    searching: bool,
    tick: u32,
    /// Last clock reading, reused as the next task's start while the worker stays busy.
    now_ticks: u64,
    now_valid: bool,
    /// The clock when this worker last looked at the submission queue, and
    /// [`FAIRNESS_TIME_NS`] in clock ticks.
    submitted_checked_at: u64,
    fairness_ticks: u64,
    /// A task that yielded found the submission queue unchecked for [`FAIRNESS_TIME_NS`]:
    /// the next task is taken from there first.
    submitted_due: bool,
}

/// Runs a worker until the node stops.
pub(crate) fn run_worker(core: WorkerCore) {
    let seed =
        0x9E37_79B9_7F4A_7C15u64 ^ ((core.index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let fairness_ticks = core.shared.clock.ns_to_ticks(FAIRNESS_TIME_NS);
    let mut worker = WorkerThread {
        core,
        scratch: Scratch::default(),
        rng: seed,
        searching: false,
        tick: 0,
        now_ticks: 0,
        now_valid: false,
        submitted_checked_at: 0,
        fairness_ticks,
        submitted_due: false,
    };
    let _ = worker.core.shared.sleepers.threads[worker.core.index].set(std::thread::current());
    worker.main_loop();
}

impl WorkerThread {
    fn main_loop(&mut self) {
        loop {
            if let Some(index) = self.next_task() {
                self.found_work();
                self.run(index);
                continue;
            }
            self.now_valid = false;
            if self.core.shared.is_stopping() {
                break;
            }
            if let Some(index) = self.spin() {
                self.found_work();
                self.run(index);
                continue;
            }
            if !self.park() {
                break;
            }
        }
        if self.searching {
            self.core.shared.sleepers.end_search();
            self.searching = false;
        }
        self.core
            .stats()
            .state
            .store(worker_state::STOPPED, Ordering::Relaxed);
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn next_task(&mut self) -> Option<u32> {
        self.tick = self.tick.wrapping_add(1);
        if (self.submitted_due || self.tick.is_multiple_of(FAIRNESS_INTERVAL))
            && let Some(index) = self.take_submitted()
        {
            return Some(index);
        }
        if let Some(index) = self.core.deque.pop() {
            return Some(index);
        }
        self.take_submitted().or_else(|| self.steal())
    }

    /// Takes one task from the submission queue and, with the same compare-and-swap, a share
    /// of the backlog onto the deque (where idle workers can steal it).
    fn take_submitted(&mut self) -> Option<u32> {
        self.submitted_due = false;
        if self.now_valid {
            self.submitted_checked_at = self.now_ticks;
        }
        let shared = &self.core.shared;
        let mut taken = [0u32; INJECT_BATCH + 1];
        let count = shared
            .injector
            .pop_share(&mut taken, shared.worker_stats.len());
        let (&first, rest) = taken[..count].split_first()?;
        for &index in rest {
            self.core.deque.push(index);
        }
        if !rest.is_empty() {
            shared.sleepers.notify_one();
        }
        Some(first)
    }

    fn steal(&mut self) -> Option<u32> {
        let count = self.core.shared.stealers.len();
        if count <= 1 {
            return None;
        }
        let start = (self.next_random() % count as u64) as usize;
        loop {
            let mut retry = false;
            for offset in 0..count {
                let victim = (start + offset) % count;
                if victim == self.core.index {
                    continue;
                }
                let before = self.core.deque.len();
                match self.core.shared.stealers[victim]
                    .steal_batch_with_limit_and_pop(&self.core.deque, STEAL_BATCH)
                {
                    Steal::Success(index) => {
                        let taken = (self.core.deque.len() - before) as u64 + 1;
                        let stats = self.core.stats();
                        stats.stole.store(
                            stats.stole.load(Ordering::Relaxed) + taken,
                            Ordering::Relaxed,
                        );
                        self.core.shared.worker_stats[victim]
                            .stolen_from
                            .fetch_add(taken, Ordering::Relaxed);
                        return Some(index);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    fn found_work(&mut self) {
        self.core
            .stats()
            .state
            .store(worker_state::RUNNING, Ordering::Relaxed);
        if self.searching {
            self.searching = false;
            let sleepers = &self.core.shared.sleepers;
            if sleepers.end_search() && self.core.shared.work_visible() {
                sleepers.notify_one();
            }
        }
    }

    /// Looks for work for `spin_before_park`; counted as searching.
    fn spin(&mut self) -> Option<u32> {
        let spin_ticks = self.core.shared.spin_ticks;
        if spin_ticks == 0 {
            return None;
        }
        if !self.searching {
            let limit = (self.core.shared.worker_stats.len() / 2).max(1);
            if !self.core.shared.sleepers.try_begin_search(limit) {
                return None;
            }
            self.searching = true;
        }
        self.core
            .stats()
            .state
            .store(worker_state::SEARCHING, Ordering::Relaxed);
        let deadline = self.core.shared.clock.now() + spin_ticks;
        loop {
            if let Some(index) = self.next_task() {
                return Some(index);
            }
            if self.core.shared.clock.now() >= deadline || self.core.shared.is_stopping() {
                return None;
            }
            // Between looks the core goes to whoever else is runnable on it. On a machine
            // whose cores are all taken (workers plus the threads that submit), a searcher
            // that only paused between looks held a core the submitter needed, and the
            // million-task external submission ran 5-15% slower than when it yields at every
            // empty look. A yield costs about a microsecond when nothing else wants the core,
            // so a searcher still notices new work within about that.
            std::thread::yield_now();
        }
    }

    /// Parks until woken. Returns false when the node is stopping.
    fn park(&mut self) -> bool {
        let index = self.core.index;
        let shared = &self.core.shared;
        let sleepers = &shared.sleepers;
        if self.searching {
            self.searching = false;
            sleepers.end_search();
        }
        sleepers.register(index);
        fence(Ordering::SeqCst);
        if shared.work_visible() || shared.is_stopping() {
            if !sleepers.deregister(index) {
                // A waker took us off the list and counted us as searching.
                self.searching = true;
            }
            return !shared.is_stopping();
        }
        let stats = self.core.stats();
        stats.state.store(worker_state::PARKED, Ordering::Relaxed);
        stats
            .parks
            .store(stats.parks.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        loop {
            std::thread::park();
            if !sleepers.is_parked(index) {
                self.searching = !shared.is_stopping();
                if !self.searching {
                    // Woken for shutdown: not counted as searching.
                    return false;
                }
                return true;
            }
            if shared.is_stopping() {
                sleepers.deregister(index);
                return false;
            }
        }
    }

    fn now(&mut self) -> u64 {
        if !self.now_valid {
            self.now_ticks = self.core.shared.clock.now();
            self.now_valid = true;
        }
        self.now_ticks
    }

    /// Runs one slice of the task in slot `index`.
    fn run(&mut self, index: u32) {
        let now = self.now();
        let core = &self.core;
        let shared: &Shared = &core.shared;
        let slot = shared.arena.slot(index);
        let id = TaskId(slot.id.load(Ordering::Acquire));
        let me = core.index as u16;
        let stats = &shared.worker_stats[core.index];
        stats.current.store(id.0, Ordering::Relaxed);
        if slot.cancel_id.load(Ordering::Relaxed) == id.0 {
            finish_on_worker(
                core,
                index,
                id,
                TaskState::Cancelled,
                TaskOutput::None,
                Some("cancelled".into()),
                now,
            );
            return;
        }
        let kind = KindId(slot.kind.load(Ordering::Relaxed));
        // `sleep` and `exec` wait on the I/O thread and hold no worker.
        let offloaded = kind == KindId::SLEEP || kind == KindId::EXEC;
        let mut started = slot.started_at.load(Ordering::Relaxed);
        if started == 0 {
            started = now;
            slot.started_at.store(now, Ordering::Relaxed);
            slot.worker.store(me, Ordering::Relaxed);
            let attempt = u32::from(slot.attempt.load(Ordering::Relaxed));
            shared.log_started(id, kind, attempt, now);
            shared.emit(
                id,
                TaskState::Running,
                (!offloaded).then_some(me),
                attempt,
                now,
            );
        }
        let timeout = slot.timeout_ns.load(Ordering::Relaxed);
        let run_before = slot.run_ticks.load(Ordering::Relaxed);
        // A task on the workers has `timeout` of time on a worker: its slices add up, the
        // waits between them (other tasks' slices) do not, so a batch of copies sharing the
        // workers is not timed out for sharing them. `sleep` and `exec` hold no worker: theirs
        // is wall time from the start.
        let deadline = if timeout == 0 {
            u64::MAX
        } else if offloaded {
            started.saturating_add(shared.clock.ns_to_ticks(timeout))
        } else {
            now.saturating_add(shared.clock.ns_to_ticks(timeout).saturating_sub(run_before))
        };
        if now >= deadline {
            finish_on_worker(
                core,
                index,
                id,
                TaskState::TimedOut,
                TaskOutput::None,
                Some(timed_out_message(timeout, kind)),
                now,
            );
            return;
        }
        slot.worker.store(me, Ordering::Relaxed);
        slot.state.store(slot_state::RUNNING, Ordering::Relaxed);
        if offloaded {
            slot.state.store(slot_state::WAITING, Ordering::Release);
            slot.worker.store(NO_WORKER, Ordering::Relaxed);
            core.shared.start_offloaded(index, id, kind, deadline);
            stats.current.store(0, Ordering::Relaxed);
            return;
        }
        let mut ctx = StepContext {
            id,
            numbers: [
                slot.numbers[0].load(Ordering::Relaxed),
                slot.numbers[1].load(Ordering::Relaxed),
            ],
            progress: [
                slot.progress[0].load(Ordering::Relaxed),
                slot.progress[1].load(Ordering::Relaxed),
                slot.progress[2].load(Ordering::Relaxed),
                slot.progress[3].load(Ordering::Relaxed),
            ],
            text: &slot.text,
            slice_end: now.saturating_add(shared.slice_ticks).min(deadline),
            started_at: now,
            clock: &shared.clock,
            cancel_id: &slot.cancel_id,
            worker: core,
            scratch: &mut self.scratch,
        };
        let step = if kind.index() < KindId::BUILTIN_COUNT {
            kinds::step_builtin(kind, &mut ctx)
        } else {
            match shared.kinds.custom(kind) {
                Some(custom) => custom.step(&mut ctx),
                None => Step::Fail(format!("unknown task kind id {}", kind.index())),
            }
        };
        let progress = ctx.progress;
        let end = shared.clock.now();
        self.now_ticks = end;
        slot.run_ticks
            .store(run_before + end.saturating_sub(now), Ordering::Relaxed);
        stats
            .slices
            .store(stats.slices.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        match step {
            Step::Done(output) => {
                finish_on_worker(core, index, id, TaskState::Succeeded, output, None, end)
            }
            Step::Fail(error) => finish_on_worker(
                core,
                index,
                id,
                TaskState::Failed,
                TaskOutput::None,
                Some(error.into()),
                end,
            ),
            Step::Yield => {
                if slot.cancel_id.load(Ordering::Relaxed) == id.0 {
                    finish_on_worker(
                        core,
                        index,
                        id,
                        TaskState::Cancelled,
                        TaskOutput::None,
                        Some("cancelled".into()),
                        end,
                    );
                } else if end >= deadline {
                    let error = Some(timed_out_message(timeout, kind));
                    finish_on_worker(
                        core,
                        index,
                        id,
                        TaskState::TimedOut,
                        TaskOutput::None,
                        error,
                        end,
                    );
                } else {
                    // Only a task that yields runs long enough for this to matter: checked
                    // here, not per task (a check per task cost 15% of tiny tasks' rate).
                    if end.saturating_sub(self.submitted_checked_at) >= self.fairness_ticks {
                        self.submitted_due = true;
                    }
                    for (cell, value) in slot.progress.iter().zip(progress) {
                        cell.store(value, Ordering::Relaxed);
                    }
                    slot.state.store(slot_state::QUEUED, Ordering::Release);
                    stats.current.store(0, Ordering::Relaxed);
                    core.push_local(index);
                }
            }
        }
    }
}

fn finish_on_worker(
    core: &WorkerCore,
    index: u32,
    id: TaskId,
    state: TaskState,
    output: TaskOutput,
    error: Option<Box<str>>,
    now: u64,
) {
    let shared = &core.shared;
    shared.finish(
        index,
        id,
        Ending {
            state,
            output,
            error,
        },
        FinishSite::Worker(core.index),
        now,
    );
    let stats = &shared.worker_stats[core.index];
    stats.executed.store(
        stats.executed.load(Ordering::Relaxed) + 1,
        Ordering::Relaxed,
    );
    stats.current.store(0, Ordering::Relaxed);
}

/// Why a task timed out. A task of `kind` on the workers had its timeout as time on a
/// worker: said so, or "after 1s" beside the seconds it took from its start reads wrong.
pub(crate) fn timed_out_message(timeout_ns: u64, kind: KindId) -> Box<str> {
    let budget = super::units::HumanDuration(std::time::Duration::from_nanos(timeout_ns));
    if kind == KindId::SLEEP || kind == KindId::EXEC {
        format!("timed out after {budget}").into()
    } else {
        format!("timed out after {budget} on a worker").into()
    }
}
