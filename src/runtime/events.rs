//! Task events for subscribers (`goliath watch` over the protocol, embedders).
//!
//! One bounded ring shared by every subscriber, written by every thread that changes a
//! task's state. Publishing takes a sequence number with one atomic add and writes the
//! event into its entry under that entry's sequence word (odd while being written), so
//! publishers never wait for each other or for a subscriber; each subscriber keeps its own
//! cursor. A subscriber that falls more than `events.capacity` events behind skips ahead and
//! is told how many it missed. With no subscribers, publishing costs one relaxed load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::task::{TaskId, TaskState};

/// A task changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEvent {
    /// Which task.
    pub id: TaskId,
    /// Its new state.
    pub state: TaskState,
    /// The worker involved, if any.
    pub worker: Option<u16>,
    /// Its run number.
    pub attempt: u32,
    /// When, in Unix microseconds.
    pub at_unix_us: u64,
}

/// Why no event was returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The subscriber fell behind; this many events were skipped.
    #[error("fell behind; {0} events skipped")]
    Lagged(u64),
    /// The node shut down.
    #[error("the node shut down")]
    Closed,
}

/// Bit layout of [`Entry::packed`]: [`TaskState::code`] in bits 0–7, worker in 8–23, "has a
/// worker" in bit 24, attempt in 32–63.
fn pack(event: &TaskEvent) -> u64 {
    let state = u64::from(event.state.code());
    let worker = match event.worker {
        Some(worker) => (u64::from(worker) << 8) | (1 << 24),
        None => 0,
    };
    state | worker | (u64::from(event.attempt) << 32)
}

fn unpack(id: u64, packed: u64, at_unix_us: u64) -> TaskEvent {
    let state = TaskState::from_code((packed & 0xFF) as u8).unwrap_or(TaskState::Queued);
    TaskEvent {
        id: TaskId(id),
        state,
        worker: (packed & (1 << 24) != 0).then_some(((packed >> 8) & 0xFFFF) as u16),
        attempt: (packed >> 32) as u32,
        at_unix_us,
    }
}

/// One event. `seq` is `2n + 2` once event number `n` is in it, `2n + 1` while it is being
/// written, 0 before the first.
#[derive(Debug, Default)]
struct Entry {
    seq: AtomicU64,
    id: AtomicU64,
    packed: AtomicU64,
    at_unix_us: AtomicU64,
}

#[derive(Debug)]
struct Ring {
    entries: Box<[Entry]>,
    mask: u64,
    /// Events ever published (the next one's number).
    head: CachePadded<AtomicU64>,
    closed: AtomicBool,
    /// Live subscriptions; publishers skip building events while it is 0.
    subscribers: AtomicUsize,
    /// Subscribers waiting in [`EventStream::recv`] for the next publish.
    sleeping: CachePadded<AtomicUsize>,
    wake: Notify,
}

impl Ring {
    fn capacity(&self) -> u64 {
        self.mask + 1
    }

    fn publish(&self, event: &TaskEvent) {
        let number = self.head.fetch_add(1, Ordering::AcqRel);
        let entry = &self.entries[(number & self.mask) as usize];
        let writing = number.wrapping_mul(2).wrapping_add(1);
        // Take the entry: from an even (settled) sequence older than ours. An odd one is an
        // older publisher still writing (wait for it); a newer one means ours was already
        // overwritten by the time we got here, and is dropped as a lagging reader would.
        let mut current = entry.seq.load(Ordering::Acquire);
        let mut spins = 0u32;
        loop {
            if current >= writing {
                return;
            }
            if current & 1 == 1 {
                // Only when the ring lapped during one write, i.e. that writer was
                // preempted: give it the core now and then instead of spinning out a slice.
                spins += 1;
                if spins.is_multiple_of(64) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                current = entry.seq.load(Ordering::Acquire);
                continue;
            }
            match entry.seq.compare_exchange_weak(
                current,
                writing,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        fence(Ordering::Release);
        entry.id.store(event.id.0, Ordering::Relaxed);
        entry.packed.store(pack(event), Ordering::Relaxed);
        entry.at_unix_us.store(event.at_unix_us, Ordering::Relaxed);
        entry.seq.store(writing + 1, Ordering::Release);
        // Pairs with the fetch_add in `recv`: either the sleeper sees this event when it
        // looks again, or this sees the sleeper and wakes it.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) > 0 {
            self.wake.notify_waiters();
        }
    }
}

/// The node's event ring.
#[derive(Debug)]
pub(crate) struct EventBus {
    ring: Arc<Ring>,
}

impl EventBus {
    /// A bus keeping the last `capacity` events (rounded up to a power of two).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        Self {
            ring: Arc::new(Ring {
                entries: (0..capacity).map(|_| Entry::default()).collect(),
                mask: capacity as u64 - 1,
                head: CachePadded::new(AtomicU64::new(0)),
                closed: AtomicBool::new(false),
                subscribers: AtomicUsize::new(0),
                sleeping: CachePadded::new(AtomicUsize::new(0)),
                wake: Notify::new(),
            }),
        }
    }

    /// Whether anyone listens; check before building an event.
    #[inline]
    pub fn active(&self) -> bool {
        self.ring.subscribers.load(Ordering::Relaxed) > 0
    }

    /// Adds an event for every subscriber (nothing once closed).
    pub fn publish(&self, event: TaskEvent) {
        if !self.ring.closed.load(Ordering::Relaxed) {
            self.ring.publish(&event);
        }
    }

    /// A subscription to events published from now on.
    pub fn subscribe(&self) -> EventStream {
        self.ring.subscribers.fetch_add(1, Ordering::Relaxed);
        EventStream {
            cursor: self.ring.head.load(Ordering::Acquire),
            ring: self.ring.clone(),
        }
    }

    /// No more events; subscribers drain what is buffered, then see [`EventError::Closed`].
    pub fn close(&self) {
        self.ring.closed.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        self.ring.wake.notify_waiters();
    }
}

/// A subscription to a node's task events. Dropping it unsubscribes.
#[derive(Debug)]
pub struct EventStream {
    ring: Arc<Ring>,
    /// The number of the next event to read.
    cursor: u64,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.ring.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EventStream {
    /// The next event.
    pub async fn recv(&mut self) -> Result<TaskEvent, EventError> {
        loop {
            if let Some(event) = self.try_recv()? {
                return Ok(event);
            }
            let ring = self.ring.clone();
            let woken = ring.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            ring.sleeping.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let again = self.try_recv();
            if !matches!(again, Ok(None)) {
                ring.sleeping.fetch_sub(1, Ordering::Relaxed);
                if let Some(event) = again? {
                    return Ok(event);
                }
                continue;
            }
            // Also when the next event's number is taken but its entry is still being
            // written: its publisher looks for sleepers after it lands and wakes this one.
            woken.await;
            ring.sleeping.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Result<Option<TaskEvent>, EventError> {
        let ring = &*self.ring;
        loop {
            let head = ring.head.load(Ordering::Acquire);
            if self.cursor >= head {
                if ring.closed.load(Ordering::Acquire) && ring.head.load(Ordering::Acquire) == head
                {
                    return Err(EventError::Closed);
                }
                return Ok(None);
            }
            if head - self.cursor > ring.capacity() {
                // On to the middle of what is kept, not its oldest entry: that is the next one
                // a publisher overwrites, so a subscriber still a little slower than the
                // events would lag again at every event, told of one skipped each time. Half
                // a ring of room makes it one notice per half ring at most.
                let resume = head - ring.capacity() / 2;
                let skipped = resume - self.cursor;
                self.cursor = resume;
                return Err(EventError::Lagged(skipped));
            }
            let entry = &ring.entries[(self.cursor & ring.mask) as usize];
            let expected = self.cursor.wrapping_mul(2).wrapping_add(2);
            let seq = entry.seq.load(Ordering::Acquire);
            if seq < expected {
                // Taken but not written yet (its publisher is mid-write).
                return Ok(None);
            }
            if seq == expected {
                let event = unpack(
                    entry.id.load(Ordering::Relaxed),
                    entry.packed.load(Ordering::Relaxed),
                    entry.at_unix_us.load(Ordering::Relaxed),
                );
                fence(Ordering::Acquire);
                if entry.seq.load(Ordering::Relaxed) == expected {
                    self.cursor += 1;
                    return Ok(Some(event));
                }
            }
            // Overwritten by a newer event: the head is now far enough ahead that the next
            // pass reports the lag.
            std::hint::spin_loop();
        }
    }

    /// Blocks the calling (non-async) thread for the next event, up to `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<TaskEvent>, EventError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.try_recv()? {
                return Ok(Some(event));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64) -> TaskEvent {
        TaskEvent {
            id: TaskId(id),
            state: TaskState::ALL[(id % 6) as usize],
            worker: (!id.is_multiple_of(3)).then_some((id % 65_536) as u16),
            attempt: (id % 7) as u32 + 1,
            at_unix_us: 1_700_000_000_000_000u64.wrapping_add(id),
        }
    }

    #[test]
    fn every_field_survives_the_ring() {
        for id in [0, 1, 2, 3, 5, 65_535, 65_536, u64::MAX] {
            let original = TaskEvent {
                attempt: u32::MAX - (id % 3) as u32,
                ..event(id)
            };
            let packed = pack(&original);
            assert_eq!(unpack(original.id.0, packed, original.at_unix_us), original);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_event_survives_packing(
            id in proptest::prelude::any::<u64>(),
            state in 0usize..6,
            worker in proptest::option::of(proptest::prelude::any::<u16>()),
            attempt in proptest::prelude::any::<u32>(),
            at_unix_us in proptest::prelude::any::<u64>(),
        ) {
            let original = TaskEvent {
                id: TaskId(id),
                state: TaskState::ALL[state],
                worker,
                attempt,
                at_unix_us,
            };
            proptest::prop_assert_eq!(unpack(id, pack(&original), at_unix_us), original);
        }
    }

    #[test]
    fn a_subscriber_sees_events_from_its_start_in_order() {
        let bus = EventBus::new(16);
        assert!(!bus.active());
        bus.publish(event(1));
        let mut stream = bus.subscribe();
        assert!(bus.active());
        assert_eq!(
            stream.try_recv(),
            Ok(None),
            "nothing from before it subscribed"
        );
        for id in 2..=10 {
            bus.publish(event(id));
        }
        for id in 2..=10 {
            assert_eq!(stream.try_recv(), Ok(Some(event(id))));
        }
        assert_eq!(stream.try_recv(), Ok(None));
        drop(stream);
        assert!(!bus.active(), "dropping the stream unsubscribes");
    }

    #[test]
    fn a_subscriber_that_falls_behind_is_told_how_many_it_missed() {
        let bus = EventBus::new(8);
        let mut slow = bus.subscribe();
        let mut fast = bus.subscribe();
        for id in 0..20 {
            bus.publish(event(id));
            assert_eq!(fast.try_recv(), Ok(Some(event(id))));
        }
        // It resumes half a ring behind the newest, so that it has room to catch up.
        assert_eq!(slow.try_recv(), Err(EventError::Lagged(16)));
        for id in 16..20 {
            assert_eq!(slow.try_recv(), Ok(Some(event(id))));
        }
        assert_eq!(slow.try_recv(), Ok(None));
    }

    #[test]
    fn a_subscriber_a_little_slower_than_the_events_is_not_told_of_each_one_it_misses() {
        // Two events published for each one read: lagging once per event would give one
        // notice per read; with room to catch up, one per few ring lengths.
        let bus = EventBus::new(64);
        let mut slow = bus.subscribe();
        let mut notices = 0;
        let mut read = 0;
        for id in 0..10_000 {
            bus.publish(event(id));
            if id % 2 == 0 {
                match slow.try_recv() {
                    Ok(Some(_)) => read += 1,
                    Err(EventError::Lagged(skipped)) => {
                        notices += 1;
                        assert!(skipped >= 32, "{skipped}");
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        assert!(
            notices <= 10_000 / 32,
            "{notices} notices for {read} events read"
        );
        assert!(read > 4_000, "{read}");
    }

    #[test]
    fn closing_lets_subscribers_drain_then_says_closed() {
        let bus = EventBus::new(8);
        let mut stream = bus.subscribe();
        bus.publish(event(1));
        bus.close();
        bus.publish(event(2));
        assert_eq!(stream.try_recv(), Ok(Some(event(1))));
        assert_eq!(stream.try_recv(), Err(EventError::Closed));
    }

    #[test]
    fn concurrent_publishers_lose_nothing_a_subscriber_keeps_up_with() {
        let bus = Arc::new(EventBus::new(1 << 16));
        let mut stream = bus.subscribe();
        let per_thread = 20_000u64;
        let threads: Vec<_> = (0..3u64)
            .map(|t| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        bus.publish(event(t * per_thread + i));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let mut seen = vec![false; (3 * per_thread) as usize];
        while let Some(got) = stream.try_recv().unwrap() {
            assert_eq!(got, event(got.id.0), "an event arrives whole");
            assert!(!seen[got.id.0 as usize], "event {} twice", got.id.0);
            seen[got.id.0 as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "every event arrives");
    }

    #[test]
    fn under_concurrent_overwrites_a_reader_gets_whole_events_or_a_lag() {
        let bus = Arc::new(EventBus::new(4));
        let mut stream = bus.subscribe();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2u64)
            .map(|t| {
                let (bus, stop) = (bus.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut id = t;
                    while !stop.load(Ordering::Relaxed) {
                        bus.publish(event(id));
                        id += 2;
                    }
                })
            })
            .collect();
        let mut whole = 0;
        let mut lags = 0;
        while whole < 20_000 {
            match stream.try_recv() {
                Ok(Some(got)) => {
                    assert_eq!(got, event(got.id.0), "no torn event");
                    whole += 1;
                }
                Ok(None) => std::hint::spin_loop(),
                Err(EventError::Lagged(skipped)) => {
                    assert!(skipped > 0);
                    lags += 1;
                }
                Err(EventError::Closed) => panic!("not closed"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.join().unwrap();
        }
        // Laps depend on how the threads are scheduled, so they are not asserted; what is
        // asserted is that every event read is whole.
        eprintln!("{whole} whole events, {lags} lags");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_subscriber_wakes_for_each_publish_and_for_close() {
        let bus = Arc::new(EventBus::new(64));
        let mut stream = bus.subscribe();
        let publisher = {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for id in 0..1_000 {
                    bus.publish(event(id));
                    if id % 100 == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                bus.close();
            })
        };
        let mut next = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(30), stream.recv()).await {
                Ok(Ok(got)) => {
                    assert_eq!(got, event(next));
                    next += 1;
                }
                Ok(Err(EventError::Lagged(skipped))) => next += skipped,
                Ok(Err(EventError::Closed)) => break,
                Err(_) => panic!("recv never woke (at event {next})"),
            }
        }
        publisher.join().unwrap();
        assert_eq!(next, 1_000, "every event seen or counted as skipped");
    }
}
