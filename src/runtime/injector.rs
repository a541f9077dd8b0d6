//! The submission queue: a bounded, lock-free, many-producer many-consumer ring of arena slot
//! indices, through which tasks submitted from outside the workers reach them.
//!
//! Each cell is one 64-bit word holding a turn stamp (high half) and a slot index (low half),
//! so a producer publishes an index with a single store, and eight cells share a cache line.
//! A producer at position `p` may fill the cell once its stamp reads `p` and leaves it at
//! `p + 1`; a consumer at `p` may empty it once it reads `p + 1` and leaves it at
//! `p + capacity`, the turn of the producer one lap later. Positions are 64-bit and never
//! wrap; stamps are their low 32 bits, which is enough because a position is always
//! re-checked by a compare-and-swap on the full 64-bit counter before it is used.
//!
//! Unlike a one-at-a-time queue, a consumer can take several indices with one
//! compare-and-swap ([`Injector::pop_share`]): a worker moving a share of the backlog onto its
//! deque pays one contended atomic for the lot, not one per task.
//!
//! Ordering for parking: [`Injector::push`] moves the tail with a sequentially consistent
//! read-modify-write, and [`Injector::is_empty`] reads both ends sequentially consistently,
//! so a producer that then checks the parked workers with sequentially consistent loads (no
//! fence needed) and a worker that registers as parked and then checks the queue cannot both
//! miss each other.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::{Backoff, CachePadded};

/// A bounded queue of `u32` slot indices; see the module documentation.
pub(crate) struct Injector {
    /// Next position to take from.
    head: CachePadded<AtomicU64>,
    /// Next position to fill.
    tail: CachePadded<AtomicU64>,
    cells: Box<[AtomicU64]>,
    mask: u64,
}

fn cell_word(stamp: u64, index: u32) -> u64 {
    (stamp << 32) | u64::from(index)
}

/// The stamp half of a cell word, compared with a position's low 32 bits.
fn stamp_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// How far `stamp` is ahead of the position `position` (negative: behind), with wrap-around.
fn stamp_lead(stamp: u32, position: u64) -> i32 {
    stamp.wrapping_sub(position as u32) as i32
}

impl Injector {
    /// A queue holding up to `capacity` indices (rounded up to a power of two).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2).next_power_of_two();
        Self {
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            cells: (0..capacity as u64)
                .map(|position| AtomicU64::new(cell_word(position, 0)))
                .collect(),
            mask: capacity as u64 - 1,
        }
    }

    /// How many indices the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.cells.len()
    }

    /// Appends `index`; gives it back when the queue is full.
    pub fn push(&self, index: u32) -> Result<(), u32> {
        let backoff = Backoff::new();
        let mut position = self.tail.load(Ordering::Relaxed);
        loop {
            let cell = &self.cells[(position & self.mask) as usize];
            let lead = stamp_lead(stamp_of(cell.load(Ordering::Acquire)), position);
            if lead == 0 {
                match self.tail.compare_exchange_weak(
                    position,
                    position + 1,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        cell.store(cell_word(position + 1, index), Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => {
                        position = current;
                        continue;
                    }
                }
            }
            if lead < 0 {
                // The cell still holds the index from one lap ago. Full only if the head is
                // a whole lap behind; otherwise a consumer has taken the position (moved the
                // head) and not yet emptied the cell, and will within a few instructions,
                // unless it was preempted there: wait for it, yielding after a few looks.
                let head = self.head.load(Ordering::SeqCst);
                if position.wrapping_sub(head) > self.mask {
                    return Err(index);
                }
                backoff.snooze();
            }
            // Another producer filled this position (or we waited): from the tail again.
            position = self.tail.load(Ordering::Relaxed);
        }
    }

    /// Takes the oldest index, if any is ready.
    #[cfg(test)]
    pub fn pop(&self) -> Option<u32> {
        let mut one = [0u32; 1];
        (self.pop_share(&mut one, 1) == 1).then_some(one[0])
    }

    /// Takes the oldest ready index and, with it, up to a `1 / share_of` part of the rest of
    /// the backlog (at most `into.len()` in all), with one compare-and-swap. Writes them to
    /// the front of `into` in queue order and returns how many it took (0: none is ready).
    /// The tail is read only once an index is ready, so polling an empty queue does not
    /// pull the producers' cache line away from them.
    pub fn pop_share(&self, into: &mut [u32], share_of: usize) -> usize {
        if into.is_empty() {
            return 0;
        }
        let mut position = self.head.load(Ordering::Relaxed);
        'retry: loop {
            let mut limit = 1;
            let mut ready = 0;
            while ready < limit {
                let at = position + ready as u64;
                let word = self.cells[(at & self.mask) as usize].load(Ordering::Acquire);
                let lead = stamp_lead(stamp_of(word), at + 1);
                if lead != 0 {
                    if ready > 0 {
                        break;
                    }
                    if lead < 0 {
                        // Not filled yet: empty, or its producer is between moving the tail
                        // and storing the index (it notifies after storing).
                        return 0;
                    }
                    // Another consumer took this position: start again from the head.
                    position = self.head.load(Ordering::Relaxed);
                    continue 'retry;
                }
                into[ready] = word as u32;
                ready += 1;
                if ready == 1 && into.len() > 1 {
                    let rest = self
                        .tail
                        .load(Ordering::Relaxed)
                        .saturating_sub(position + 1);
                    let share =
                        usize::try_from(rest / share_of.max(1) as u64).unwrap_or(usize::MAX);
                    limit = share.saturating_add(1).min(into.len());
                }
            }
            match self.head.compare_exchange_weak(
                position,
                position + ready as u64,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let lap = self.mask + 1;
                    for at in position..position + ready as u64 {
                        self.cells[(at & self.mask) as usize]
                            .store(cell_word(at + lap, 0), Ordering::Release);
                    }
                    return ready;
                }
                Err(current) => position = current,
            }
        }
    }

    /// Indices queued or being queued now (a snapshot; it may be stale at once).
    pub fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) == tail {
                return usize::try_from(tail.saturating_sub(head))
                    .unwrap_or(usize::MAX)
                    .min(self.capacity());
            }
        }
    }

    /// Whether no index is queued or being queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn indices_come_out_in_order_and_a_full_queue_gives_the_index_back() {
        let queue = Injector::new(4);
        assert_eq!(queue.capacity(), 4);
        assert_eq!(queue.pop(), None);
        for index in [7, 8, 9, 10] {
            assert_eq!(queue.push(index), Ok(()));
        }
        assert_eq!(queue.push(11), Err(11));
        assert_eq!(queue.len(), 4);
        assert_eq!(queue.pop(), Some(7));
        assert_eq!(queue.push(11), Ok(()));
        let mut batch = [0; 8];
        assert_eq!(queue.pop_share(&mut batch, 1), 4);
        assert_eq!(&batch[..4], &[8, 9, 10, 11]);
        assert!(queue.is_empty());
        assert_eq!(queue.pop_share(&mut batch, 1), 0);
    }

    #[test]
    fn a_share_is_the_first_index_and_that_part_of_the_rest() {
        let queue = Injector::new(16);
        for index in 0..10 {
            assert_eq!(queue.push(index), Ok(()));
        }
        let mut batch = [0; 16];
        // 1 + 9 / 2.
        assert_eq!(queue.pop_share(&mut batch, 2), 5);
        assert_eq!(&batch[..5], &[0, 1, 2, 3, 4]);
        // 1 + 4 / 3.
        assert_eq!(queue.pop_share(&mut batch, 3), 2);
        assert_eq!(&batch[..2], &[5, 6]);
        assert_eq!(queue.pop_share(&mut batch[..1], 1), 1);
        assert_eq!(batch[0], 7);
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn a_batch_takes_no_more_than_asked_and_laps_reuse_every_cell() {
        let queue = Injector::new(8);
        let mut next_in = 0u32;
        let mut next_out = 0u32;
        let mut batch = [0; 3];
        // Many laps of the ring, with the queue part full, so each cell is reused with its
        // stamp a lap further on every time (the 32-bit wrap has its own test).
        for _ in 0..1000 {
            while queue.push(next_in).is_ok() {
                next_in += 1;
            }
            let taken = queue.pop_share(&mut batch, 1);
            assert_eq!(taken, 3);
            for index in &batch[..taken] {
                assert_eq!(*index, next_out);
                next_out += 1;
            }
        }
        while let Some(index) = queue.pop() {
            assert_eq!(index, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
    }

    #[test]
    fn a_push_waits_for_a_consumer_that_took_the_cell_and_has_not_emptied_it() {
        let queue = Arc::new(Injector::new(4));
        for index in 0..4 {
            assert_eq!(queue.push(index), Ok(()));
        }
        // A consumer moved the head past position 0 and stopped (preempted) before emptying
        // its cell; another took the rest. Three cells are free and one is about to be.
        queue.head.store(1, Ordering::SeqCst);
        for expected in 1..4 {
            assert_eq!(queue.pop(), Some(expected));
        }
        assert!(queue.is_empty());
        let pusher = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.push(9))
        };
        // Give the push time to look at the cell (a push that refuses returns at once; one
        // that waits is still running), then the stalled consumer resumes and empties its
        // cell, and the push lands in it.
        for _ in 0..200 {
            if pusher.is_finished() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        queue.cells[0].store(cell_word(4, 0), Ordering::Release);
        assert_eq!(
            pusher.join().expect("pusher"),
            Ok(()),
            "not full: it must not refuse"
        );
        assert_eq!(queue.pop(), Some(9));
    }

    #[test]
    fn stamps_survive_the_32_bit_wrap_of_positions() {
        let queue = Injector::new(4);
        let start = (1u64 << 32) - 6;
        queue.head.store(start, Ordering::Relaxed);
        queue.tail.store(start, Ordering::Relaxed);
        for (offset, cell) in queue.cells.iter().enumerate() {
            // The stamp each cell would carry after `start` positions went by: the first
            // position at or after `start` that falls on it.
            let mut position = start;
            while position & queue.mask != offset as u64 {
                position += 1;
            }
            cell.store(cell_word(position, 0), Ordering::Relaxed);
        }
        for round in 0..20u32 {
            assert_eq!(queue.push(round), Ok(()));
            assert_eq!(queue.push(round + 100), Ok(()));
            assert_eq!(queue.pop(), Some(round));
            assert_eq!(queue.pop(), Some(round + 100));
        }
        assert!(queue.tail.load(Ordering::Relaxed) > 1 << 32);
    }

    #[test]
    fn concurrent_producers_and_batch_consumers_lose_and_repeat_nothing() {
        const PRODUCERS: u32 = 3;
        const PER_PRODUCER: u32 = 50_000;
        let queue = Arc::new(Injector::new(64));
        let producers_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for n in 0..PER_PRODUCER {
                        let mut index = producer * PER_PRODUCER + n;
                        while let Err(back) = queue.push(index) {
                            index = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..3)
            .map(|consumer| {
                let (queue, producers_done) = (queue.clone(), producers_done.clone());
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut batch = [0u32; 5];
                    loop {
                        let taken = if consumer == 0 {
                            usize::from(queue.pop().map(|i| batch[0] = i).is_some())
                        } else {
                            queue.pop_share(&mut batch[..consumer + 1], consumer)
                        };
                        if taken > 0 {
                            seen.extend_from_slice(&batch[..taken]);
                        } else if producers_done.load(Ordering::Acquire) && queue.is_empty() {
                            break;
                        } else {
                            std::thread::yield_now();
                        }
                    }
                    seen
                })
            })
            .collect();
        for producer in producers {
            producer.join().expect("producer");
        }
        producers_done.store(true, Ordering::Release);
        let mut all = HashSet::new();
        let mut count = 0;
        for consumer in consumers {
            for index in consumer.join().expect("consumer") {
                count += 1;
                assert!(all.insert(index), "index {index} came out twice");
            }
        }
        assert_eq!(count, PRODUCERS * PER_PRODUCER);
        assert!(queue.is_empty());
    }
}
