//! Finished tasks, kept in bounded rings with their outcome for lookups, listings and the
//! console.
//!
//! One ring per worker (plus one for tasks finished off-worker), each behind its own mutex, so
//! workers never contend when recording; readers merge the rings by finish time. The total
//! kept is `history.tasks`, split evenly across the rings; the oldest entry of a ring is
//! forgotten first. Rings grow to their bound during warm-up and then only overwrite.

use std::sync::Mutex;

use crossbeam_utils::CachePadded;

use super::lock;
use super::task::{KindId, TaskId, TaskOutput, TaskState};

/// A task that has finished, with everything needed to describe it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FinishedTask {
    pub id: TaskId,
    pub kind: KindId,
    pub numbers: [u64; 2],
    pub text: Option<Box<str>>,
    pub timeout_ns: u64,
    pub state: TaskState,
    pub output: TaskOutput,
    pub error: Option<Box<str>>,
    pub worker: Option<u16>,
    pub attempt: u32,
    pub submitted_ns: u64,
    pub started_ns: u64,
    pub finished_ns: u64,
    pub run_ns: u64,
}

#[derive(Debug, Default)]
struct Ring {
    entries: Vec<FinishedTask>,
    oldest: usize,
    bound: usize,
}

impl Ring {
    fn push(&mut self, task: FinishedTask) {
        if self.entries.len() < self.bound {
            if self.entries.len() == self.entries.capacity() {
                let grow = self
                    .entries
                    .len()
                    .max(64)
                    .min(self.bound - self.entries.len());
                self.entries.reserve_exact(grow);
            }
            self.entries.push(task);
        } else {
            self.entries[self.oldest] = task;
            self.oldest = (self.oldest + 1) % self.bound;
        }
    }
}

/// The bounded store of finished tasks.
#[derive(Debug)]
pub(crate) struct History {
    rings: Box<[CachePadded<Mutex<Ring>>]>,
}

impl History {
    /// `total` entries split over `rings` rings (each keeps at least one).
    pub fn new(total: usize, rings: usize) -> Self {
        let rings = rings.max(1);
        let bound = total.div_ceil(rings).max(1);
        Self {
            rings: (0..rings)
                .map(|_| {
                    CachePadded::new(Mutex::new(Ring {
                        entries: Vec::new(),
                        oldest: 0,
                        bound,
                    }))
                })
                .collect(),
        }
    }

    /// Records a finished task in ring `ring` (a worker index, or the last ring).
    pub fn record(&self, ring: usize, task: FinishedTask) {
        let ring = ring.min(self.rings.len() - 1);
        lock(&self.rings[ring]).push(task);
    }

    /// The index of the ring for tasks finished off the workers.
    pub fn offload_ring(&self) -> usize {
        self.rings.len() - 1
    }

    /// The finished task with this id, if it is still remembered.
    pub fn find(&self, id: TaskId) -> Option<FinishedTask> {
        self.rings
            .iter()
            .find_map(|ring| lock(ring).entries.iter().find(|t| t.id == id).cloned())
    }

    /// Up to `limit` finished tasks accepted by `keep`, newest id first.
    pub fn recent(&self, limit: usize, keep: impl Fn(&FinishedTask) -> bool) -> Vec<FinishedTask> {
        let mut found: Vec<FinishedTask> = Vec::new();
        for ring in self.rings.iter() {
            let ring = lock(ring);
            found.extend(ring.entries.iter().filter(|t| keep(t)).cloned());
        }
        found.sort_unstable_by(|a, b| b.id.cmp(&a.id));
        found.truncate(limit);
        found
    }

    /// Entries remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rings.iter().map(|ring| lock(ring).entries.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64) -> FinishedTask {
        FinishedTask {
            id: TaskId(id),
            kind: KindId::FIB,
            numbers: [1, 0],
            text: None,
            timeout_ns: 0,
            state: TaskState::Succeeded,
            output: TaskOutput::Number(1),
            error: None,
            worker: Some(0),
            attempt: 1,
            submitted_ns: id,
            started_ns: id,
            finished_ns: id,
            run_ns: 0,
        }
    }

    #[test]
    fn keeps_only_the_newest_up_to_the_bound() {
        let history = History::new(4, 2);
        for id in 1..=10 {
            history.record((id % 2) as usize, task(id));
        }
        assert_eq!(history.len(), 4);
        let ids: Vec<u64> = history
            .recent(10, |_| true)
            .iter()
            .map(|t| t.id.0)
            .collect();
        assert_eq!(ids, vec![10, 9, 8, 7]);
        assert!(history.find(TaskId(3)).is_none());
        assert_eq!(history.find(TaskId(9)).map(|t| t.id), Some(TaskId(9)));
    }

    #[test]
    fn recent_filters_and_limits() {
        let history = History::new(100, 3);
        for id in 1..=30 {
            let mut t = task(id);
            if id % 3 == 0 {
                t.state = TaskState::Failed;
            }
            history.record((id % 3) as usize, t);
        }
        let failed = history.recent(4, |t| t.state == TaskState::Failed);
        let ids: Vec<u64> = failed.iter().map(|t| t.id.0).collect();
        assert_eq!(ids, vec![30, 27, 24, 21]);
    }
}
