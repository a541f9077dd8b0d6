//! Finished tasks, kept in bounded rings with their outcome for lookups, listings and the
//! console.
//!
//! One ring per worker, plus one for tasks finished off the workers. A ring has one writer and
//! takes no lock to record a task: each entry's fixed-size part (ids, times, a numeric output)
//! is a row of atomics under a sequence number (a seqlock: the writer makes the number odd,
//! writes, makes it even; readers retry when it changed), so recording costs plain stores.
//! Heap parts — echo text, exec output, failure messages — sit behind a lock in the entry,
//! tagged with their task's id, touched only by tasks that have them. The total kept is `history.tasks`, split evenly
//! across rings; the oldest entry of a ring is overwritten first.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex};

use crossbeam_utils::CachePadded;

use super::lock;
use super::snapshot::TaskQuery;
use super::task::{KindId, TaskId, TaskOutput, TaskState};

/// A task that has finished, with everything needed to describe it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FinishedTask {
    pub record: Record,
    pub output: TaskOutput,
    pub text: Option<Arc<str>>,
    pub error: Option<Box<str>>,
}

/// The fixed-size facts of a finished task, as its finisher records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub id: TaskId,
    pub kind: KindId,
    pub numbers: [u64; 2],
    pub timeout_ns: u64,
    pub state: TaskState,
    pub worker: Option<u16>,
    pub attempt: u32,
    pub submitted_at: u64,
    pub started_at: u64,
    pub finished_at: u64,
    pub run_ticks: u64,
}

/// The heap parts of a finished task.
#[derive(Debug, Clone, Default)]
struct Extras {
    text: Option<Arc<str>>,
    output: Option<TaskOutput>,
    error: Option<Box<str>>,
}

const NO_WORKER: u64 = 0xFFFF;
const OUTPUT_NONE: u64 = 0;
const OUTPUT_NUMBER: u64 = 1;
const OUTPUT_EXTRA: u64 = 2;
const HAS_EXTRAS: u64 = 1 << 63;

/// `meta` layout: kind (bits 0–15), state (16–18), worker (19–34, 0xFFFF none), attempt
/// (35–50), output tag (51–52), extras flag (63).
fn pack_meta(task: &Record, output_tag: u64, has_extras: bool) -> u64 {
    u64::from(task.kind.index())
        | u64::from(task.state.code()) << 16
        | task.worker.map(u64::from).unwrap_or(NO_WORKER) << 19
        | u64::from(task.attempt.min(0xFFFF)) << 35
        | output_tag << 51
        | if has_extras { HAS_EXTRAS } else { 0 }
}

/// The fixed-size part of an entry, as read.
#[derive(Debug, Clone, Copy)]
struct Core {
    id: u64,
    meta: u64,
    numbers: [u64; 2],
    timeout_ns: u64,
    submitted_at: u64,
    started_at: u64,
    finished_at: u64,
    run_ticks: u64,
    output_value: u64,
}

impl Core {
    fn state(&self) -> TaskState {
        TaskState::from_code(((self.meta >> 16) & 0x7) as u8).unwrap_or(TaskState::Failed)
    }
    fn has_extras(&self) -> bool {
        self.meta & HAS_EXTRAS != 0
    }
    fn into_task(self, extras: Extras) -> FinishedTask {
        let worker = (self.meta >> 19) & 0xFFFF;
        let output = match (self.meta >> 51) & 0x3 {
            OUTPUT_NUMBER => TaskOutput::Number(self.output_value),
            OUTPUT_EXTRA => extras.output.unwrap_or_default(),
            _ => TaskOutput::None,
        };
        FinishedTask {
            record: Record {
                id: TaskId(self.id),
                kind: KindId((self.meta & 0xFFFF) as u16),
                numbers: self.numbers,
                timeout_ns: self.timeout_ns,
                state: self.state(),
                worker: (worker != NO_WORKER).then_some(worker as u16),
                attempt: ((self.meta >> 35) & 0xFFFF) as u32,
                submitted_at: self.submitted_at,
                started_at: self.started_at,
                finished_at: self.finished_at,
                run_ticks: self.run_ticks,
            },
            output,
            text: extras.text,
            error: extras.error,
        }
    }
}

/// One entry: atomics under a sequence number (0 = never written, odd = being written).
#[derive(Debug, Default)]
struct Entry {
    seq: AtomicU64,
    id: AtomicU64,
    meta: AtomicU64,
    numbers: [AtomicU64; 2],
    timeout_ns: AtomicU64,
    submitted_at: AtomicU64,
    started_at: AtomicU64,
    finished_at: AtomicU64,
    run_ticks: AtomicU64,
    output_value: AtomicU64,
    /// The heap parts of the task in this entry, tagged with its id; kept next to the entry
    /// so recording touches no table shared by every entry (a lookup there missed the cache).
    extras: Mutex<Option<Box<TaggedExtras>>>,
}

/// Heap parts and the id of the task they belong to.
#[derive(Debug)]
struct TaggedExtras {
    id: u64,
    extras: Extras,
}

impl Entry {
    fn write(&self, core: &Core) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.id.store(core.id, Ordering::Relaxed);
        self.meta.store(core.meta, Ordering::Relaxed);
        self.numbers[0].store(core.numbers[0], Ordering::Relaxed);
        self.numbers[1].store(core.numbers[1], Ordering::Relaxed);
        self.timeout_ns.store(core.timeout_ns, Ordering::Relaxed);
        self.submitted_at
            .store(core.submitted_at, Ordering::Relaxed);
        self.started_at.store(core.started_at, Ordering::Relaxed);
        self.finished_at.store(core.finished_at, Ordering::Relaxed);
        self.run_ticks.store(core.run_ticks, Ordering::Relaxed);
        self.output_value
            .store(core.output_value, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// A consistent copy, or None if never written (or the writer kept changing it).
    fn read(&self) -> Option<Core> {
        for _ in 0..64 {
            let before = self.seq.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let core = Core {
                id: self.id.load(Ordering::Relaxed),
                meta: self.meta.load(Ordering::Relaxed),
                numbers: [
                    self.numbers[0].load(Ordering::Relaxed),
                    self.numbers[1].load(Ordering::Relaxed),
                ],
                timeout_ns: self.timeout_ns.load(Ordering::Relaxed),
                submitted_at: self.submitted_at.load(Ordering::Relaxed),
                started_at: self.started_at.load(Ordering::Relaxed),
                finished_at: self.finished_at.load(Ordering::Relaxed),
                run_ticks: self.run_ticks.load(Ordering::Relaxed),
                output_value: self.output_value.load(Ordering::Relaxed),
            };
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return Some(core);
            }
        }
        None
    }

    fn sequence(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
struct Ring {
    entries: Box<[Entry]>,
    /// The entry the next record goes to (wraps to 0 after the last). Only the writer
    /// changes it; `History::find` reads it to walk back from the newest entry.
    next: AtomicUsize,
    /// Serialises writers for the ring shared by off-worker threads.
    writer: Mutex<()>,
}

impl Ring {
    fn new(bound: usize) -> Self {
        Self {
            entries: (0..bound).map(|_| Entry::default()).collect(),
            next: AtomicUsize::new(0),
            writer: Mutex::new(()),
        }
    }

    /// Records a task. The caller is this ring's only writer.
    fn push(
        &self,
        task: &Record,
        output: TaskOutput,
        text: Option<Arc<str>>,
        error: Option<Box<str>>,
    ) {
        // `next` stays below the length, which is at least one (see `History::new`); the
        // check keeps an index out of range impossible without a division per record.
        let position = match self.next.load(Ordering::Relaxed) {
            position if position < self.entries.len() => position,
            _ => 0,
        };
        let entry = &self.entries[position];
        let (output_tag, output_value, output_extra) = match output {
            TaskOutput::None => (OUTPUT_NONE, 0, None),
            TaskOutput::Number(value) => (OUTPUT_NUMBER, value, None),
            other => (OUTPUT_EXTRA, 0, Some(other)),
        };
        // Cancelled and timed-out messages are rebuilt from the state; only others are kept.
        let failed = task.state == TaskState::Failed;
        let error = error.filter(|_| failed);
        let has_extras = text.is_some() || output_extra.is_some() || error.is_some();
        let meta = pack_meta(task, output_tag, has_extras);
        let core = Core {
            id: task.id.0,
            meta,
            numbers: task.numbers,
            timeout_ns: task.timeout_ns,
            submitted_at: task.submitted_at,
            started_at: task.started_at,
            finished_at: task.finished_at,
            run_ticks: task.run_ticks,
            output_value,
        };
        // Only this writer changes entries, so its own reads need no sequence check.
        let had_extras = entry.seq.load(Ordering::Relaxed) != 0
            && entry.meta.load(Ordering::Relaxed) & HAS_EXTRAS != 0;
        if has_extras || had_extras {
            let mut place = lock(&entry.extras);
            if has_extras {
                let extras = Extras {
                    text,
                    output: output_extra,
                    error,
                };
                match place.as_mut() {
                    Some(tagged) => {
                        tagged.id = task.id.0;
                        tagged.extras = extras;
                    }
                    None => {
                        *place = Some(Box::new(TaggedExtras {
                            id: task.id.0,
                            extras,
                        }))
                    }
                }
            } else {
                *place = None;
            }
        }
        entry.write(&core);
        let following = position + 1;
        self.next.store(
            if following == self.entries.len() {
                0
            } else {
                following
            },
            Ordering::Relaxed,
        );
    }

    /// The heap parts of the task `core` describes, from `entry`, with at most
    /// `output_max` bytes of each exec output stream copied (empty if the entry moved on to
    /// another task meanwhile: the caller's sequence check then drops the copy).
    fn extras_of(entry: &Entry, core: &Core, output_max: usize) -> Extras {
        if !core.has_extras() {
            return Extras::default();
        }
        match lock(&entry.extras).as_deref() {
            Some(tagged) if tagged.id == core.id => Extras {
                text: tagged.extras.text.clone(),
                output: tagged.extras.output.as_ref().map(|output| match output {
                    TaskOutput::Process(process) => {
                        TaskOutput::Process(Box::new(process.copy_at_most(output_max)))
                    }
                    other => other.clone(),
                }),
                error: tagged.extras.error.clone(),
            },
            _ => Extras::default(),
        }
    }

    /// The task in `entry`, with its heap parts, when it is consistent and `keep` takes it.
    fn task_in(
        entry: &Entry,
        keep: &dyn Fn(&Core) -> bool,
        output_max: usize,
    ) -> Option<FinishedTask> {
        let core = entry.read()?;
        if !keep(&core) {
            return None;
        }
        let sequence = entry.sequence();
        let extras = Self::extras_of(entry, &core, output_max);
        (entry.sequence() == sequence).then(|| core.into_task(extras))
    }

    /// The entry written `age` records before the cursor `next` (read once by the caller, so
    /// a record written meanwhile cannot shift the walk past an entry), if the ring has that
    /// many.
    fn entry_back(&self, next: usize, age: usize) -> Option<&Entry> {
        let len = self.entries.len();
        if age >= len {
            return None;
        }
        Some(&self.entries[(next.min(len - 1) + len - 1 - age) % len])
    }
}

/// The bounded store of finished tasks.
#[derive(Debug)]
pub(crate) struct History {
    /// One per worker plus one shared; each on its own cache lines, since every worker
    /// writes its ring's cursor at every finish (two rings on one line made the workers'
    /// finishes fight over it).
    rings: Box<[CachePadded<Ring>]>,
}

impl History {
    /// `total` entries split over `rings` rings as evenly as whole entries allow, so that
    /// they keep `total` together (each keeps at least one).
    pub fn new(total: usize, rings: usize) -> Self {
        let rings = rings.max(1);
        let (share, extra) = (total / rings, total % rings);
        Self {
            rings: (0..rings)
                .map(|ring| CachePadded::new(Ring::new((share + usize::from(ring < extra)).max(1))))
                .collect(),
        }
    }

    /// Records a task in worker ring `ring`; the caller must be that worker.
    pub fn record(
        &self,
        ring: usize,
        task: &Record,
        output: TaskOutput,
        text: Option<Arc<str>>,
        error: Option<Box<str>>,
    ) {
        let ring = ring.min(self.rings.len() - 1);
        self.rings[ring].push(task, output, text, error);
    }

    /// Records a task finished off the workers (any thread).
    pub fn record_offloaded(
        &self,
        task: &Record,
        output: TaskOutput,
        text: Option<Arc<str>>,
        error: Option<Box<str>>,
    ) {
        let ring = &self.rings[self.rings.len() - 1];
        let _writer = lock(&ring.writer);
        ring.push(task, output, text, error);
    }

    /// The finished task with this id, if it is still remembered, with at most `output_max`
    /// bytes of each exec output stream.
    pub fn find(&self, id: TaskId, output_max: usize) -> Option<FinishedTask> {
        // Newest first across every ring: a task that has just finished (what a watcher
        // looks up on its event) is found in the first steps instead of after a scan of
        // the whole history; one long gone still costs the whole scan.
        let keep = |core: &Core| core.id == id.0;
        let cursors: Vec<usize> = self
            .rings
            .iter()
            .map(|ring| ring.next.load(Ordering::Relaxed))
            .collect();
        let longest = self.rings.iter().map(|ring| ring.entries.len()).max()?;
        (0..longest).find_map(|age| {
            self.rings
                .iter()
                .zip(&cursors)
                .filter_map(|(ring, &next)| ring.entry_back(next, age))
                .find_map(|entry| Ring::task_in(entry, &keep, output_max))
        })
    }

    /// The final state of each task of `ids` (sorted, without repeats) still remembered, as
    /// `(id, state)` sorted by id: one pass over the whole history for all of them, where a
    /// [`History::find`] per id walks it once per id (a cancel of 100,000 ids that had
    /// left the history held the protocol server for 23 s).
    pub fn states_of(&self, ids: &[u64]) -> Vec<(u64, TaskState)> {
        let mut states = Vec::new();
        for ring in &self.rings {
            for entry in &ring.entries {
                if let Some(core) = entry.read()
                    && ids.binary_search(&core.id).is_ok()
                {
                    states.push((core.id, core.state()));
                }
            }
        }
        states.sort_unstable_by_key(|&(id, _)| id);
        states
    }

    /// Up to `limit` finished tasks that `query` takes (its own limit aside), newest id
    /// first, each with at most `output_max` bytes of each exec output stream.
    ///
    /// Only the chosen tasks' heap parts are copied: a console asks ten times a second for
    /// its page of tasks, and copying every remembered task's text and output to keep a
    /// few would cost in proportion to the whole history. An entry overwritten between the
    /// choice and the copy is left out; it was the oldest of its ring.
    pub fn recent(&self, limit: usize, query: &TaskQuery, output_max: usize) -> Vec<FinishedTask> {
        let keep = |core: &Core| query.takes(TaskId(core.id), core.state());
        // (task id, ring, entry) of every consistent entry that `keep` takes.
        let mut chosen: Vec<(u64, usize, usize)> = Vec::new();
        for (ring_index, ring) in self.rings.iter().enumerate() {
            for (entry_index, entry) in ring.entries.iter().enumerate() {
                if let Some(core) = entry.read()
                    && keep(&core)
                {
                    chosen.push((core.id, ring_index, entry_index));
                }
            }
        }
        let newest_first = |found: &(u64, usize, usize)| std::cmp::Reverse(found.0);
        if chosen.len() > limit {
            chosen.select_nth_unstable_by_key(limit, newest_first);
            chosen.truncate(limit);
        }
        chosen.sort_unstable_by_key(newest_first);
        chosen
            .into_iter()
            .filter_map(|(id, ring, entry)| {
                let same_task = |core: &Core| core.id == id && keep(core);
                Ring::task_in(&self.rings[ring].entries[entry], &same_task, output_max)
            })
            .collect()
    }

    /// Entries remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rings
            .iter()
            .map(|ring| ring.entries.iter().filter(|e| e.read().is_some()).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::task::ProcessOutput;
    use std::sync::Arc;

    fn record(history: &History, ring: usize, task: FinishedTask) {
        history.record(ring, &task.record, task.output, task.text, task.error);
    }

    fn task(id: u64) -> FinishedTask {
        FinishedTask {
            record: Record {
                id: TaskId(id),
                kind: KindId::FIB,
                numbers: [id, 0],
                timeout_ns: 0,
                state: TaskState::Succeeded,
                worker: Some(1),
                attempt: 1,
                submitted_at: id,
                started_at: id + 1,
                finished_at: id + 2,
                run_ticks: 1,
            },
            output: TaskOutput::Number(id * 10),
            text: None,
            error: None,
        }
    }

    #[test]
    fn keeps_only_the_newest_up_to_the_bound() {
        let history = History::new(4, 2);
        for id in 1..=10 {
            record(&history, (id % 2) as usize, task(id));
        }
        assert_eq!(history.len(), 4);
        let ids: Vec<u64> = history
            .recent(10, &TaskQuery::default(), usize::MAX)
            .iter()
            .map(|t| t.record.id.0)
            .collect();
        assert_eq!(ids, vec![10, 9, 8, 7]);
        assert!(history.find(TaskId(3), usize::MAX).is_none());
        assert_eq!(
            history.find(TaskId(9), usize::MAX),
            Some(task(9)),
            "every field reads back"
        );
    }

    #[test]
    fn the_rings_keep_exactly_the_total_asked_for() {
        for (total, rings) in [(2000, 3), (10, 4), (7, 7), (100, 1)] {
            let history = History::new(total, rings);
            for id in 1..=(3 * total as u64) {
                record(&history, (id % rings as u64) as usize, task(id));
            }
            assert_eq!(history.len(), total, "{total} over {rings} rings");
        }
    }

    #[test]
    fn find_walks_every_ring_back_from_its_newest_entry() {
        // Rings of unequal fill, each wrapped past its end several times: every kept task is
        // found, whatever its age and ring, and no forgotten one is.
        let history = History::new(9, 3);
        for id in 1..=40u64 {
            let ring = if id % 5 == 0 { 2 } else { (id % 2) as usize };
            record(&history, ring, task(id));
        }
        let kept: Vec<u64> = history
            .recent(100, &TaskQuery::default(), usize::MAX)
            .iter()
            .map(|t| t.record.id.0)
            .collect();
        assert_eq!(kept.len(), 9);
        for id in 1..=40u64 {
            let found = history.find(TaskId(id), usize::MAX);
            assert_eq!(found.is_some(), kept.contains(&id), "task {id}");
            if let Some(found) = found {
                assert_eq!(found, task(id));
            }
        }
    }

    #[test]
    fn recent_filters_by_state_and_limits() {
        let history = History::new(100, 3);
        for id in 1..=30 {
            let mut t = task(id);
            if id % 3 == 0 {
                t.record.state = TaskState::Failed;
                t.error = Some("boom".into());
            }
            record(&history, (id % 3) as usize, t);
        }
        let failed = history.recent(
            4,
            &TaskQuery {
                state: Some(TaskState::Failed),
                ..TaskQuery::default()
            },
            usize::MAX,
        );
        let ids: Vec<u64> = failed.iter().map(|t| t.record.id.0).collect();
        assert_eq!(ids, vec![30, 27, 24, 21]);
        assert_eq!(failed[0].error.as_deref(), Some("boom"));
    }

    /// Entries holding heap parts, over every ring.
    fn extras_kept(history: &History) -> usize {
        history
            .rings
            .iter()
            .flat_map(|ring| ring.entries.iter())
            .filter(|entry| lock(&entry.extras).is_some())
            .count()
    }

    #[test]
    fn heap_parts_round_trip_and_are_dropped_with_their_entry() {
        let history = History::new(2, 1);
        let mut echo = task(1);
        echo.record.kind = KindId::ECHO;
        echo.text = Some("hello".into());
        echo.output = TaskOutput::Text("hello".into());
        record(&history, 0, echo.clone());
        assert_eq!(history.find(TaskId(1), usize::MAX), Some(echo));
        record(&history, 0, task(2));
        record(&history, 0, task(3));
        assert!(history.find(TaskId(1), usize::MAX).is_none());
        assert_eq!(
            extras_kept(&history),
            0,
            "the overwritten entry's text is gone"
        );
    }

    #[test]
    fn recent_copies_at_most_the_bound_of_each_output_and_find_the_whole() {
        let history = History::new(8, 2);
        let mut exec = task(7);
        exec.record.kind = KindId::EXEC;
        exec.output = TaskOutput::Process(Box::new(ProcessOutput {
            exit_code: Some(0),
            signal: None,
            stdout: "é".repeat(600),
            stderr: "warn".into(),
            stdout_truncated: 5,
            stderr_truncated: 0,
        }));
        record(&history, 1, exec.clone());
        record(&history, 0, task(8));
        let listed = history.recent(1, &TaskQuery::default(), 1001);
        let ids: Vec<u64> = listed.iter().map(|t| t.record.id.0).collect();
        assert_eq!(ids, vec![8], "the limit keeps the newest");
        let listed = history.recent(8, &TaskQuery::default(), 1001);
        let TaskOutput::Process(process) = &listed[1].output else {
            panic!("exec output listed: {:?}", listed[1].output);
        };
        assert_eq!(
            process.stdout,
            "é".repeat(500),
            "cut at a character boundary"
        );
        assert_eq!(process.stdout_truncated, 5 + 200, "what was cut is counted");
        assert_eq!(process.stderr, "warn");
        assert_eq!(process.stderr_truncated, 0);
        assert_eq!(
            history.find(TaskId(7), usize::MAX),
            Some(exec),
            "a lookup has the whole"
        );
    }

    #[test]
    fn cancelled_and_timed_out_keep_their_state_without_extras() {
        let history = History::new(8, 1);
        let mut cancelled = task(5);
        cancelled.record.state = TaskState::Cancelled;
        cancelled.error = Some("cancelled".into());
        cancelled.output = TaskOutput::None;
        record(&history, 0, cancelled);
        let back = history.find(TaskId(5), usize::MAX).expect("kept");
        assert_eq!(back.record.state, TaskState::Cancelled);
        assert_eq!(extras_kept(&history), 0);
    }

    #[test]
    fn readers_never_see_a_torn_entry() {
        let history = Arc::new(History::new(8, 1));
        let writer = {
            let history = history.clone();
            std::thread::spawn(move || {
                for id in 1..200_000u64 {
                    record(&history, 0, task(id));
                }
            })
        };
        while !writer.is_finished() {
            for t in history.recent(8, &TaskQuery::default(), usize::MAX) {
                assert_eq!(t.record.numbers[0], t.record.id.0, "fields of one task");
                assert_eq!(t.output, TaskOutput::Number(t.record.id.0 * 10));
                assert_eq!(t.record.finished_at, t.record.id.0 + 2);
            }
        }
        writer.join().expect("writer");
    }
}
