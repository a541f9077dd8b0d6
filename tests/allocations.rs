//! Steady state allocates nothing: after warm-up, submitting and completing tiny tasks costs
//! no heap allocation (the arena, queues and history are all pre-sized or already grown).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goliath::runtime::{Node, SubmitError, TaskSpec};

struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Submits `count` tiny tasks (retrying while the arena is full) and waits for all of them.
fn run_tiny_tasks(node: &Node, count: u64) {
    let deadline = Instant::now() + common::LIVENESS;
    let mut submitted = 0;
    while submitted < count {
        match node.submit(TaskSpec::fib(1)) {
            Ok(_) => submitted += 1,
            Err(SubmitError::Busy(_)) => std::thread::yield_now(),
            Err(other) => panic!("submit failed: {other}"),
        }
    }
    while node.in_flight() > 0 {
        assert!(Instant::now() < deadline, "tasks never finished");
        std::thread::sleep(Duration::from_micros(100));
    }
}

#[test]
fn steady_state_allocations() {
    let node = Node::start(common::config(2, 1 << 16)).expect("node starts");
    // Warm-up: thread-local state, deque buffers and history rings reach their size.
    run_tiny_tasks(&node, 200_000);
    const TASKS: u64 = 1_000_000;
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    run_tiny_tasks(&node, TASKS);
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    let per_task = allocations as f64 / TASKS as f64;
    println!("allocations per task: {per_task:.6} ({allocations} allocations for {TASKS} tasks)");
    let snapshot = node.snapshot(0);
    assert_eq!(snapshot.counts.succeeded, 1_200_000, "every task ran");
    assert!(
        per_task <= 0.01,
        "allocations per task: {per_task} (limit 0.01)"
    );
}
