//! The task arena: every task in flight lives in one fixed, cache-line-aligned slot, allocated
//! once at start. Queues carry only slot indices.
//!
//! **Allocation.** Slots are handed out from a ring: a submission takes the next sequence
//! number from a shared cursor and claims slot `sequence mod capacity` with one CAS on the
//! slot's state. That slot was last used `capacity` claims ago, so it is almost always free;
//! when it is not (a long task still holds it) the claimer moves on to the next one. The set of
//! free slots is thus kept as a lock-free free *ring*: no shared list head for submitters and
//! workers to fight over, and a free is a single store into a slot the freeing worker already
//! holds in its cache.
//!
//! **Handles.** A task's id is its sequence number plus one. The id therefore names its slot
//! (`(id - 1) mod capacity`) and carries the slot's generation (`(id - 1) / capacity`): a stale
//! id — a cancel of a task that finished long ago — finds a slot holding a different id and
//! never touches the task now in it. Ids are never reused.
//!
//! **Accounting.** A claim is one sequence number taken from the cursor that did not have to be
//! skipped, so claims are `cursor − skipped` and cost nothing extra; frees are counted in
//! per-thread ledgers (cache-padded, one writer each, except the shared ledger used off the
//! workers). `in_use = claims − Σ frees`. A full arena is detected when several slots in a row
//! are taken and the counts agree it is full: the submission gets [`Busy`] at once.

use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_utils::CachePadded;
use serde::{Deserialize, Serialize};

use super::task::TaskId;

/// Slot states, stored in [`Slot::state`].
pub(crate) mod slot_state {
    /// Not in use.
    pub const FREE: u8 = 0;
    /// Taken by a submitter that is filling it in.
    pub const CLAIMED: u8 = 1;
    /// In a queue, waiting for a worker.
    pub const QUEUED: u8 = 2;
    /// On a worker.
    pub const RUNNING: u8 = 3;
    /// Waiting on a timer or child process, off the workers.
    pub const WAITING: u8 = 4;
}

/// Bits of [`Slot::flags`].
pub(crate) mod slot_flags {
    /// `text` holds something.
    pub const TEXT: u8 = 1;
    /// A completion sink waits for this task.
    pub const WATCHED: u8 = 2;
}

/// Sentinel for "no worker" in [`Slot::worker`].
pub(crate) const NO_WORKER: u16 = u16::MAX;

/// One task's state, inline. Two cache lines, aligned so no two slots share a line.
///
/// Every field is an atomic (plain loads and stores on x86) or behind the slot's own mutex, so
/// observers (snapshots, lookups) can read a slot while a worker runs it without `unsafe`.
/// Exactly one thread owns a slot's mutable fields at a time: the claimer until the index is
/// queued, then the worker that popped it, then the I/O thread if it waits off-worker.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct Slot {
    /// Id of the task in the slot (kept after it finishes, until the slot is claimed again).
    pub(crate) id: AtomicU64,
    /// Id of a task someone asked to cancel; the task is cancelled when this equals `id`.
    pub(crate) cancel_id: AtomicU64,
    /// The kind's two numbers.
    pub(crate) numbers: [AtomicU64; 2],
    /// The kind's progress between slices.
    pub(crate) progress: [AtomicU64; 4],
    /// Clock reading at submission.
    pub(crate) submitted_at: AtomicU64,
    /// Clock reading at first run; 0 before.
    pub(crate) started_at: AtomicU64,
    /// The `timeout=` in nanoseconds; 0 for none.
    pub(crate) timeout_ns: AtomicU64,
    /// Time spent on workers so far.
    pub(crate) run_ticks: AtomicU64,
    /// One of [`slot_state`].
    pub(crate) state: AtomicU8,
    /// [`slot_flags`]: whether `text` holds something (so tasks without text never take its
    /// lock) and whether someone waits for this task's completion.
    pub(crate) flags: AtomicU8,
    /// The kind's registry index.
    pub(crate) kind: AtomicU16,
    /// The worker running it or that ran it last; [`NO_WORKER`] if none yet.
    pub(crate) worker: AtomicU16,
    /// Run number: 1 for the first run, more after recovery (saturates at 65535).
    pub(crate) attempt: AtomicU16,
    /// Echo text, exec argv or a custom kind's text; most tasks have none.
    pub(crate) text: Mutex<Option<Arc<str>>>,
}

/// The arena has no room for a submission: it is full, or a batch needs more slots than
/// are free (a batch is taken whole or not at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Busy {
    /// Slots in use when the submission was refused.
    pub in_use: usize,
    /// All slots.
    pub capacity: usize,
    /// Slots the refused submission needed (1 for one task).
    pub needed: usize,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let free = self.capacity.saturating_sub(self.in_use);
        if free == 0 {
            write!(
                f,
                "node busy: all {} task slots are in use; retry when some finish or raise arena.slots",
                self.capacity
            )
        } else {
            write!(
                f,
                "node busy: the submission needs {} task slots but only {free} of {} are free ({} in flight); submit fewer at once, retry when some finish, or raise arena.slots",
                self.needed, self.capacity, self.in_use
            )
        }
    }
}

impl std::error::Error for Busy {}

/// Arena counters, as shown in snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArenaStats {
    /// Slots in total.
    pub capacity: usize,
    /// Slots holding a task in flight.
    pub in_use: usize,
    /// Most slots in use at once (sampled every 64 claims, after each batch and at every
    /// snapshot).
    pub high_water: usize,
    /// Bytes reserved for slots at start.
    pub bytes_reserved: usize,
    /// Submissions refused for lack of slots (the arena full, or a batch larger than it).
    pub rejected: u64,
}

#[derive(Debug, Default)]
struct Ledger {
    frees: AtomicU64,
}

/// Ledger index for frees off the workers (several threads share it).
pub(crate) const SHARED_LEDGER: usize = 0;

/// How many taken slots in a row make a claimer check whether the arena is full.
const PROBES_BEFORE_COUNT: u64 = 8;

/// The fixed pool of task slots.
#[derive(Debug)]
pub struct Arena {
    slots: Box<[Slot]>,
    mask: u64,
    cursor: CachePadded<AtomicU64>,
    skipped: CachePadded<AtomicU64>,
    ledgers: Box<[CachePadded<Ledger>]>,
    high_water: AtomicUsize,
    rejected: AtomicU64,
}

#[inline]
fn bump(counter: &AtomicU64, shared: bool) {
    if shared {
        counter.fetch_add(1, Ordering::Relaxed);
    } else {
        // One writer: a plain load and store, no locked instruction.
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

impl Arena {
    /// Allocates `capacity` slots (a power of two) and `owned_ledgers` single-writer ledgers
    /// (indices `1..=owned_ledgers`) beside the shared one (index 0).
    pub fn new(capacity: usize, owned_ledgers: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        let slots: Box<[Slot]> = (0..capacity).map(|_| Slot::default()).collect();
        let ledgers = (0..=owned_ledgers)
            .map(|_| CachePadded::new(Ledger::default()))
            .collect();
        Self {
            slots,
            mask: capacity as u64 - 1,
            cursor: CachePadded::new(AtomicU64::new(0)),
            skipped: CachePadded::new(AtomicU64::new(0)),
            ledgers,
            high_water: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slot at an index. Indices come only from [`Arena::claim`] and [`Arena::find`].
    #[inline]
    pub(crate) fn slot(&self, index: u32) -> &Slot {
        &self.slots[index as usize]
    }

    /// Claims a free slot for a new task. The slot is left `CLAIMED` with its id set; the
    /// caller fills it in and publishes it.
    pub(crate) fn claim(&self) -> Result<(u32, TaskId), Busy> {
        let mut misses: u64 = 0;
        loop {
            let sequence = self.cursor.fetch_add(1, Ordering::Relaxed);
            let index = (sequence & self.mask) as u32;
            let slot = &self.slots[index as usize];
            if slot.state.load(Ordering::Relaxed) == slot_state::FREE
                && slot
                    .state
                    .compare_exchange(
                        slot_state::FREE,
                        slot_state::CLAIMED,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                let id = sequence + 1;
                slot.id.store(id, Ordering::Release);
                if sequence & 63 == 0 {
                    self.note_in_use();
                }
                return Ok((index, TaskId(id)));
            }
            misses += 1;
            self.skipped.fetch_add(1, Ordering::Relaxed);
            if misses.is_multiple_of(PROBES_BEFORE_COUNT) || misses > self.mask {
                let in_use = self.in_use();
                if in_use >= self.capacity() || misses > self.mask.saturating_mul(2) + 1 {
                    self.high_water
                        .fetch_max(in_use.min(self.capacity()), Ordering::Relaxed);
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(Busy {
                        in_use: in_use.min(self.capacity()),
                        capacity: self.capacity(),
                        needed: 1,
                    });
                }
            }
        }
    }

    /// Raises the high-water mark to the slots in use now, if that is higher (claims do so
    /// themselves at every 64th sequence number only, sparing most a read of the ledgers).
    /// It writes only when the mark grows: the mark sits beside the slot table's address,
    /// which every thread reads at every slot access.
    pub(crate) fn note_in_use(&self) {
        let in_use = self.in_use().min(self.capacity());
        if in_use > self.high_water.load(Ordering::Relaxed) {
            self.high_water.fetch_max(in_use, Ordering::Relaxed);
        }
    }

    /// Counts a submission refused for lack of slots that never claimed any: a batch larger
    /// than the arena, which can never fit.
    pub(crate) fn count_refused(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a submission of `needed` tasks refused before claiming (a batch that cannot
    /// fit) and describes it.
    pub(crate) fn refuse(&self, needed: usize) -> Busy {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let in_use = self.in_use().min(self.capacity());
        Busy {
            in_use,
            capacity: self.capacity(),
            needed,
        }
    }

    /// Returns a claimed slot to the ring, counted in `ledger`. The caller must be the slot's
    /// owner and be done with its fields.
    pub(crate) fn release(&self, index: u32, ledger: usize) {
        self.slots[index as usize]
            .state
            .store(slot_state::FREE, Ordering::Release);
        bump(&self.ledgers[ledger].frees, ledger == SHARED_LEDGER);
    }

    /// Returns a slot claimed for a submission that was then refused (its batch did not fit
    /// whole, or the log refused it): free again, and not counted as a claim, so "tasks
    /// submitted" counts only accepted tasks. The id it took stays used.
    pub(crate) fn hand_back(&self, index: u32) {
        self.slots[index as usize]
            .state
            .store(slot_state::FREE, Ordering::Release);
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// The index of the live slot holding task `id`, if the task is still in flight.
    pub(crate) fn find(&self, id: TaskId) -> Option<u32> {
        let sequence = id.0.checked_sub(1)?;
        let index = (sequence & self.mask) as u32;
        let slot = &self.slots[index as usize];
        if slot.id.load(Ordering::Acquire) != id.0 {
            return None;
        }
        match slot.state.load(Ordering::Acquire) {
            slot_state::FREE | slot_state::CLAIMED => None,
            _ => Some(index),
        }
    }

    /// Puts recovered tasks back before the node starts: each `(index, id)` slot is taken
    /// (left `CLAIMED`; the caller fills and publishes it) and new ids continue after
    /// `max_id`, so they never repeat an id from before the restart.
    pub(crate) fn restore(&self, tasks: &[(u32, TaskId)], max_id: u64) {
        for (index, id) in tasks {
            let slot = &self.slots[*index as usize];
            slot.state.store(slot_state::CLAIMED, Ordering::Relaxed);
            slot.id.store(id.0, Ordering::Release);
        }
        self.cursor.store(max_id, Ordering::SeqCst);
        // Claims are `cursor − skipped`: count exactly the restored tasks as claimed.
        self.skipped
            .store(max_id.saturating_sub(tasks.len() as u64), Ordering::SeqCst);
    }

    /// The id the next submission will get (ids below it have been handed out).
    pub fn next_id(&self) -> u64 {
        self.cursor.load(Ordering::Relaxed) + 1
    }

    /// Slots in use now.
    pub fn in_use(&self) -> usize {
        let frees = self.ledgers.iter().fold(0u64, |sum, ledger| {
            sum.wrapping_add(ledger.frees.load(Ordering::Relaxed))
        });
        let claims = self.claims();
        usize::try_from(claims.saturating_sub(frees)).unwrap_or(usize::MAX)
    }

    /// Slots claimed since start (tasks accepted).
    pub fn claims(&self) -> u64 {
        let skipped = self.skipped.load(Ordering::Relaxed);
        self.cursor.load(Ordering::Relaxed).saturating_sub(skipped)
    }

    /// The arena's counters.
    pub fn stats(&self) -> ArenaStats {
        let in_use = self.in_use().min(self.capacity());
        let high_water = self
            .high_water
            .fetch_max(in_use, Ordering::Relaxed)
            .max(in_use);
        ArenaStats {
            capacity: self.capacity(),
            in_use,
            high_water,
            bytes_reserved: std::mem::size_of_val::<[Slot]>(&self.slots),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    /// Indices of slots holding a task in flight, newest first, stopping once `in_use` have
    /// been found (so an almost idle arena is scanned only as far as its live tasks).
    pub(crate) fn live_indices(&self) -> Vec<u32> {
        let expected = self.in_use();
        let mut found = Vec::with_capacity(expected.min(self.capacity()));
        if expected == 0 {
            return found;
        }
        let start = self.cursor.load(Ordering::Relaxed);
        for back in 1..=self.slots.len() as u64 {
            let index = (start.wrapping_sub(back) & self.mask) as u32;
            let state = self.slots[index as usize].state.load(Ordering::Acquire);
            if state != slot_state::FREE && state != slot_state::CLAIMED {
                found.push(index);
                if found.len() >= expected {
                    break;
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_two_cache_lines_and_aligned() {
        assert_eq!(std::mem::size_of::<Slot>(), 128);
        assert_eq!(std::mem::align_of::<Slot>(), 64);
        let arena = Arena::new(4, 1);
        let address = arena.slot(1) as *const Slot as usize;
        assert_eq!(address % 64, 0);
        assert_eq!(arena.stats().bytes_reserved, 4 * 128);
    }

    fn publish(arena: &Arena, index: u32) {
        arena
            .slot(index)
            .state
            .store(slot_state::QUEUED, Ordering::Release);
    }

    #[test]
    fn full_arena_is_busy_at_once_and_recovers() {
        let arena = Arena::new(4, 1);
        let mut held = Vec::new();
        for _ in 0..4 {
            let (index, id) = arena.claim().expect("room");
            publish(&arena, index);
            held.push((index, id));
        }
        assert_eq!(
            arena.claim(),
            Err(Busy {
                in_use: 4,
                capacity: 4,
                needed: 1,
            })
        );
        assert_eq!(
            arena.claim(),
            Err(Busy {
                in_use: 4,
                capacity: 4,
                needed: 1,
            })
        );
        assert_eq!(arena.stats().rejected, 2);
        assert_eq!(arena.stats().high_water, 4);
        arena.release(held[2].0, 1);
        let (index, id) = arena.claim().expect("one slot came back");
        assert_eq!(index, held[2].0, "the only free slot is reused");
        assert!(id > held[3].1, "ids keep increasing");
        assert_eq!(arena.stats().in_use, 4);
    }

    #[test]
    fn stale_id_never_finds_a_reused_slot() {
        let arena = Arena::new(2, 1);
        let (first_index, first_id) = arena.claim().expect("room");
        publish(&arena, first_index);
        assert_eq!(arena.find(first_id), Some(first_index));
        arena.release(first_index, 1);
        assert_eq!(arena.find(first_id), None, "a finished task is not live");
        // Claim until the same slot is reused by a newer task.
        let mut reused = None;
        for _ in 0..4 {
            let (index, id) = arena.claim().expect("room");
            publish(&arena, index);
            if index == first_index {
                reused = Some(id);
                break;
            }
            arena.release(index, 1);
        }
        let reused = reused.expect("slot was reused");
        assert_ne!(reused, first_id);
        assert_eq!(
            arena.find(first_id),
            None,
            "the stale id does not see the new task"
        );
        assert_eq!(arena.find(reused), Some(first_index));
        assert_eq!(arena.find(TaskId(0)), None);
    }

    #[test]
    fn long_task_is_skipped_not_overwritten() {
        let arena = Arena::new(4, 1);
        let (long_index, long_id) = arena.claim().expect("room");
        publish(&arena, long_index);
        for _ in 0..20 {
            let (index, _) = arena.claim().expect("room");
            assert_ne!(index, long_index);
            publish(&arena, index);
            arena.release(index, 1);
        }
        assert_eq!(arena.find(long_id), Some(long_index));
        assert_eq!(arena.live_indices(), vec![long_index]);
    }

    #[test]
    fn concurrent_claims_and_frees_balance() {
        let arena = std::sync::Arc::new(Arena::new(64, 4));
        let threads: Vec<_> = (1..=4)
            .map(|ledger| {
                let arena = arena.clone();
                std::thread::spawn(move || {
                    let mut ids = Vec::new();
                    for _ in 0..10_000 {
                        if let Ok((index, id)) = arena.claim() {
                            publish(&arena, index);
                            ids.push(id);
                            arena.release(index, ledger);
                        }
                    }
                    ids
                })
            })
            .collect();
        let mut all: Vec<TaskId> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("no panic"))
            .collect();
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "no id handed out twice");
        assert_eq!(arena.in_use(), 0);
    }
}
