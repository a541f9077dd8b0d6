//! Scheduler benchmarks: goliath against tokio, rayon and a minimal crossbeam pool, all in one
//! process, same (system) allocator, same number of worker threads (one per core).
//!
//! Ids are read by tooling; keep them exactly:
//! - `scheduler/external_submit/{goliath,tokio,rayon,crossbeam_floor}`
//! - `scheduler/spawn_in_task/{goliath,tokio,rayon_scope}`
//! - `scheduler/idle_wakeup/{goliath,tokio,thread_wake}` (also prints p50/p99)
//!
//! Printed only (no criterion id): the external-submit million through
//! `Node::submit_copies` in batches of 8,192; and `crossbeam_floor` against the same pool
//! carrying what the issue asks of every task at the least (its own slot, written by the
//! submitter and read by a worker, and a clock read at submission and at the end).
//!
//! Run: `cargo bench --bench scheduler`; ratios: `cargo run --release --example bench_report`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use crossbeam_deque::{Steal, Stealer, Worker};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use goliath::config::{Config, WorkerCount};
use goliath::runtime::{
    KindArgs, KindId, Node, NodeBuilder, Step, StepContext, SubmitError, TaskKind, TaskOutput,
    TaskSpec,
};

const EXTERNAL_TASKS: u64 = 1_000_000;
const FANOUT_TASKS: u64 = 100_000;

fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// The same trivial work for every contender.
#[inline]
fn tiny_work(x: u64) -> u64 {
    black_box(x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7)
}

// ---------- per-thread completion counters (tokio, rayon, floor) ----------

struct Counters {
    slots: Vec<CachePadded<AtomicU64>>,
    next: AtomicU64,
}

impl Counters {
    fn new(threads: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: (0..threads + 1)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            next: AtomicU64::new(0),
        })
    }
    fn total(&self) -> u64 {
        self.slots.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

thread_local! {
    static COUNTER_SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

fn register_thread(counters: &Counters) {
    let index = counters.next.fetch_add(1, Ordering::Relaxed) as usize;
    COUNTER_SLOT.with(|slot| slot.set(index.min(counters.slots.len() - 1)));
}

#[inline]
fn count_done(counters: &Counters) {
    let index = COUNTER_SLOT.with(|slot| slot.get());
    let counter = &counters.slots[index.min(counters.slots.len() - 1)];
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Waits for the contender to finish, polling every 20 µs. The waiting thread sleeps between
/// polls: a thread that spins (even yielding) stays runnable, and with two workers on two
/// vCPUs the scheduler may then leave both workers sharing one vCPU while the waiter holds
/// the other, halving any contender's speed for the whole run.
fn wait_for(mut done: impl FnMut() -> bool) {
    while !done() {
        std::thread::sleep(Duration::from_micros(20));
    }
}

// ---------- goliath kinds ----------

struct Tiny;
impl TaskKind for Tiny {
    fn name(&self) -> &str {
        "tiny"
    }
    fn usage(&self) -> &str {
        "tiny"
    }
    fn parse(&self, _: &[&str]) -> Result<KindArgs, String> {
        Ok(KindArgs::default())
    }
    fn step(&self, ctx: &mut StepContext<'_>) -> Step {
        tiny_work(ctx.numbers()[0]);
        Step::Done(TaskOutput::None)
    }
}

struct FanOut {
    leaf: KindId,
}
impl TaskKind for FanOut {
    fn name(&self) -> &str {
        "fanout"
    }
    fn usage(&self) -> &str {
        "fanout N"
    }
    fn parse(&self, _: &[&str]) -> Result<KindArgs, String> {
        Ok(KindArgs::default())
    }
    fn step(&self, ctx: &mut StepContext<'_>) -> Step {
        let total = ctx.numbers()[0];
        while ctx.progress()[0] < total {
            let next = ctx.progress()[0];
            match ctx.spawn(TaskSpec::custom(self.leaf, [next, 0], None)) {
                Ok(_) => ctx.progress()[0] += 1,
                Err(SubmitError::Busy(_)) => return Step::Yield,
                Err(error) => return Step::Fail(error.to_string()),
            }
            if ctx.progress()[0] % 1024 == 0 && ctx.should_yield() {
                return Step::Yield;
            }
        }
        Step::Done(TaskOutput::None)
    }
}

struct Stamp {
    stamped: Arc<AtomicU64>,
    origin: Instant,
}
impl TaskKind for Stamp {
    fn name(&self) -> &str {
        "stamp"
    }
    fn usage(&self) -> &str {
        "stamp"
    }
    fn parse(&self, _: &[&str]) -> Result<KindArgs, String> {
        Ok(KindArgs::default())
    }
    fn step(&self, _: &mut StepContext<'_>) -> Step {
        self.stamped
            .store(self.origin.elapsed().as_nanos() as u64, Ordering::Release);
        Step::Done(TaskOutput::None)
    }
}

struct GoliathBench {
    node: Node,
    tiny: KindId,
    fanout: KindId,
    stamp: KindId,
    stamped: Arc<AtomicU64>,
    origin: Instant,
}

fn goliath_node(slots: usize) -> GoliathBench {
    let mut config = Config::default();
    config.scheduler.workers = WorkerCount::Fixed(workers());
    config.arena.slots = slots;
    config.log.level = "warn".into();
    // Pure scheduling against tokio and rayon: no write-ahead log.
    config.wal.enabled = false;
    let origin = Instant::now();
    let stamped = Arc::new(AtomicU64::new(0));
    let mut builder = NodeBuilder::new(config);
    let tiny = builder.register_kind(Arc::new(Tiny)).expect("kind");
    let fanout = builder
        .register_kind(Arc::new(FanOut { leaf: tiny }))
        .expect("kind");
    let stamp = builder
        .register_kind(Arc::new(Stamp {
            stamped: stamped.clone(),
            origin,
        }))
        .expect("kind");
    GoliathBench {
        node: builder.start().expect("node"),
        tiny,
        fanout,
        stamp,
        stamped,
        origin,
    }
}

// ---------- the floor: a minimal pool moving u32 indices ----------

/// What the floor's pool moves and runs per task; each kind compiles to its own pool, so the
/// bare floor runs exactly its loop.
trait FloorTasks: Send + Sync + 'static {
    /// Makes task `sequence` ready on the submitting thread; returns the index to queue.
    fn prepare(&self, sequence: u64) -> u32;
    /// Runs the task at `index` on a pool thread.
    fn run(&self, index: u32);
}

/// The floor proper: a bare index, no task state.
struct BareIndex;

impl FloorTasks for BareIndex {
    #[inline]
    fn prepare(&self, sequence: u64) -> u32 {
        sequence as u32
    }
    #[inline]
    fn run(&self, index: u32) {
        tiny_work(u64::from(index));
    }
}

struct Floor<T: FloorTasks = BareIndex> {
    queue: Arc<ArrayQueue<u32>>,
    tasks: Arc<T>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl<T: FloorTasks> Floor<T> {
    fn start(threads: usize, tasks: T) -> Self {
        let tasks = Arc::new(tasks);
        let queue = Arc::new(ArrayQueue::new(1 << 16));
        let counters = Counters::new(threads);
        let stop = Arc::new(AtomicBool::new(false));
        let deques: Vec<Worker<u32>> = (0..threads).map(|_| Worker::new_fifo()).collect();
        let stealers: Arc<Vec<Stealer<u32>>> =
            Arc::new(deques.iter().map(|d| d.stealer()).collect());
        let handles = deques
            .into_iter()
            .enumerate()
            .map(|(me, local)| {
                let (queue, counters, stop, stealers, tasks) = (
                    queue.clone(),
                    counters.clone(),
                    stop.clone(),
                    stealers.clone(),
                    tasks.clone(),
                );
                std::thread::spawn(move || {
                    register_thread(&counters);
                    while !stop.load(Ordering::Relaxed) {
                        let task = local.pop().or_else(|| queue.pop()).or_else(|| {
                            stealers
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| *i != me)
                                .find_map(|(_, s)| match s.steal_batch_and_pop(&local) {
                                    Steal::Success(t) => Some(t),
                                    _ => None,
                                })
                        });
                        match task {
                            Some(index) => {
                                tasks.run(index);
                                count_done(&counters);
                            }
                            None => std::thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        Self {
            queue,
            tasks,
            counters,
            stop,
            threads: handles,
        }
    }

    /// Submits the million from this thread and waits until all have run.
    fn run_million(&self) {
        let start = self.counters.total();
        for i in 0..EXTERNAL_TASKS {
            let mut index = self.tasks.prepare(i);
            while let Err(back) = self.queue.push(index) {
                index = back;
                std::thread::yield_now();
            }
        }
        wait_for(|| self.counters.total() - start == EXTERNAL_TASKS);
    }
}

/// The least a task needs beyond its index, per the issue: a slot of its own written by the
/// submitter and read by a worker (one cache line moving between cores), and a clock read at
/// submission and at the end (its timings; the start is the previous task's end).
#[repr(align(64))]
#[derive(Default)]
struct FloorSlot {
    number: AtomicU64,
    submitted_at: AtomicU64,
    finished_at: AtomicU64,
    busy: AtomicBool,
}

struct SlotRing {
    slots: Vec<FloorSlot>,
    clock: goliath::runtime::clock::Clock,
}

impl SlotRing {
    fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity).map(|_| FloorSlot::default()).collect(),
            clock: goliath::runtime::clock::Clock::new(),
        }
    }
}

impl FloorTasks for SlotRing {
    /// Writes task `sequence` into its slot (waiting while the slot's last task runs).
    fn prepare(&self, sequence: u64) -> u32 {
        let index = (sequence as usize) & (self.slots.len() - 1);
        let slot = &self.slots[index];
        while slot.busy.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        slot.number.store(sequence, Ordering::Relaxed);
        slot.submitted_at.store(self.clock.now(), Ordering::Relaxed);
        slot.busy.store(true, Ordering::Relaxed);
        index as u32
    }

    fn run(&self, index: u32) {
        let slot = &self.slots[index as usize];
        tiny_work(slot.number.load(Ordering::Relaxed) ^ slot.submitted_at.load(Ordering::Relaxed));
        slot.finished_at.store(self.clock.now(), Ordering::Relaxed);
        slot.busy.store(false, Ordering::Release);
    }
}

impl<T: FloorTasks> Drop for Floor<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn tokio_runtime(counters: &Arc<Counters>) -> tokio::runtime::Runtime {
    let on_start = counters.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .on_thread_start(move || register_thread(&on_start))
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn rayon_pool(counters: &Arc<Counters>) -> rayon::ThreadPool {
    let on_start = counters.clone();
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers())
        .start_handler(move |_| register_thread(&on_start))
        .build()
        .expect("rayon pool")
}

fn external_submit(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler/external_submit");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(criterion::Throughput::Elements(EXTERNAL_TASKS));

    {
        let bench = goliath_node(1 << 16);
        group.bench_function("goliath", |b| {
            b.iter(|| {
                let mut submitted = 0;
                while submitted < EXTERNAL_TASKS {
                    match bench
                        .node
                        .submit(TaskSpec::custom(bench.tiny, [submitted, 0], None))
                    {
                        Ok(_) => submitted += 1,
                        Err(SubmitError::Busy(_)) => std::thread::yield_now(),
                        Err(error) => panic!("{error}"),
                    }
                }
                wait_for(|| bench.node.in_flight() == 0);
            })
        });
    }
    {
        let counters = Counters::new(workers());
        let runtime = tokio_runtime(&counters);
        group.bench_function("tokio", |b| {
            b.iter(|| {
                let start = counters.total();
                for i in 0..EXTERNAL_TASKS {
                    let counters = counters.clone();
                    runtime.spawn(async move {
                        tiny_work(i);
                        count_done(&counters);
                    });
                }
                wait_for(|| counters.total() - start == EXTERNAL_TASKS);
            })
        });
    }
    {
        let counters = Counters::new(workers());
        let pool = rayon_pool(&counters);
        group.bench_function("rayon", |b| {
            b.iter(|| {
                let start = counters.total();
                for i in 0..EXTERNAL_TASKS {
                    let counters = counters.clone();
                    pool.spawn(move || {
                        tiny_work(i);
                        count_done(&counters);
                    });
                }
                wait_for(|| counters.total() - start == EXTERNAL_TASKS);
            })
        });
    }
    {
        let floor = Floor::start(workers(), BareIndex);
        group.bench_function("crossbeam_floor", |b| b.iter(|| floor.run_million()));
    }
    group.finish();
    batch_submit_figure();
    floor_with_slots_figure();
}

/// Printed beside the ids above, not a criterion id: `crossbeam_floor` against the same pool
/// moving, besides the index, what the issue asks each task to carry at the least — its own
/// 64-byte slot and a clock read at submission and at the end. Seven rounds of each, in
/// turn; medians.
fn floor_with_slots_figure() {
    let bare = Floor::start(workers(), BareIndex);
    let slotted = Floor::start(workers(), SlotRing::new(1 << 16));
    let mut bare_rounds = Vec::new();
    let mut slotted_rounds = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        bare.run_million();
        bare_rounds.push(started.elapsed());
        let started = Instant::now();
        slotted.run_million();
        slotted_rounds.push(started.elapsed());
    }
    let median = |rounds: &mut Vec<Duration>| {
        rounds.sort();
        rounds[rounds.len() / 2].as_secs_f64() * 1e3
    };
    let (bare_ms, slotted_ms) = (median(&mut bare_rounds), median(&mut slotted_rounds));
    println!(
        "scheduler/external_submit/crossbeam_floor with a slot and two clock reads per task (printed only): median {slotted_ms:.2} ms against {bare_ms:.2} ms bare ({:.2}x), 7 rounds each in turn",
        slotted_ms / bare_ms
    );
}

/// Printed beside the ids above, not a criterion id: the same million tiny tasks submitted
/// through `Node::submit_copies` in batches of 8,192 (what `xN` copies and protocol
/// batches use), median of seven rounds.
fn batch_submit_figure() {
    const BATCH: u32 = 8192;
    let bench = goliath_node(1 << 16);
    let mut rounds: Vec<Duration> = (0..7)
        .map(|_| {
            let started = Instant::now();
            let mut submitted = 0u64;
            while submitted < EXTERNAL_TASKS {
                match bench
                    .node
                    .submit_copies(&TaskSpec::custom(bench.tiny, [submitted, 0], None), BATCH)
                {
                    Ok(ids) => submitted += ids.len() as u64,
                    Err(error) if matches!(error.error, SubmitError::Busy(_)) => {
                        submitted += error.submitted.len() as u64;
                        std::thread::sleep(Duration::from_micros(20))
                    }
                    Err(error) => panic!("{}", error.error),
                }
            }
            wait_for(|| bench.node.in_flight() == 0);
            started.elapsed()
        })
        .collect();
    rounds.sort();
    println!(
        "scheduler/external_submit/goliath in batches of {BATCH} (printed only): median {:.2} ms over {} rounds",
        rounds[rounds.len() / 2].as_secs_f64() * 1e3,
        rounds.len()
    );
}

fn spawn_in_task(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler/spawn_in_task");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(criterion::Throughput::Elements(FANOUT_TASKS));
    {
        let bench = goliath_node(1 << 17);
        group.bench_function("goliath", |b| {
            b.iter(|| {
                bench
                    .node
                    .submit(TaskSpec::custom(bench.fanout, [FANOUT_TASKS, 0], None))
                    .expect("room");
                wait_for(|| bench.node.in_flight() == 0);
            })
        });
    }
    {
        let counters = Counters::new(workers());
        let runtime = tokio_runtime(&counters);
        group.bench_function("tokio", |b| {
            b.iter(|| {
                let start = counters.total();
                let inner = counters.clone();
                runtime.spawn(async move {
                    for i in 0..FANOUT_TASKS {
                        let counters = inner.clone();
                        tokio::spawn(async move {
                            tiny_work(i);
                            count_done(&counters);
                        });
                    }
                    count_done(&inner);
                });
                wait_for(|| counters.total() - start == FANOUT_TASKS + 1);
            })
        });
    }
    {
        let counters = Counters::new(workers());
        let pool = rayon_pool(&counters);
        group.bench_function("rayon_scope", |b| {
            b.iter(|| {
                pool.scope(|scope| {
                    scope.spawn(|scope| {
                        for i in 0..FANOUT_TASKS {
                            scope.spawn(move |_| {
                                tiny_work(i);
                            });
                        }
                    });
                });
            })
        });
    }
    group.finish();
}

/// Wake-ups measured for the p50/p99 printout (criterion reports the mean).
const WAKE_SAMPLES: usize = 2_000;

/// Lets the pool go idle (its workers park) before each wake-up.
const IDLE_GAP: Duration = Duration::from_micros(500);

/// Prints p50/p99/max of `WAKE_SAMPLES` wake-ups, then benchmarks the mean with criterion.
fn bench_wakeup(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut wake: impl FnMut() -> u64,
) {
    let mut samples: Vec<u64> = (0..WAKE_SAMPLES)
        .map(|_| {
            std::thread::sleep(IDLE_GAP);
            wake()
        })
        .collect();
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64 / 1_000.0;
    println!(
        "scheduler/idle_wakeup/{name}: n={} p10={:.1}us p25={:.1}us p50={:.1}us p75={:.1}us p90={:.1}us p99={:.1}us max={:.1}us",
        samples.len(),
        at(0.10),
        at(0.25),
        at(0.50),
        at(0.75),
        at(0.90),
        at(0.99),
        at(1.0)
    );
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    std::thread::sleep(IDLE_GAP);
                    Duration::from_nanos(wake())
                })
                .sum()
        })
    });
}

fn idle_wakeup(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler/idle_wakeup");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(20));
    group.measurement_time(Duration::from_millis(30));
    {
        let bench = goliath_node(1 << 10);
        bench_wakeup(&mut group, "goliath", || {
            bench.stamped.store(0, Ordering::Relaxed);
            let sent = bench.origin.elapsed().as_nanos() as u64;
            bench
                .node
                .submit(TaskSpec::custom(bench.stamp, [0, 0], None))
                .expect("room");
            wait_for_stamp(&bench.stamped);
            bench.stamped.load(Ordering::Acquire).saturating_sub(sent)
        });
    }
    {
        let counters = Counters::new(workers());
        let runtime = tokio_runtime(&counters);
        let origin = Instant::now();
        let stamped = Arc::new(AtomicU64::new(0));
        bench_wakeup(&mut group, "tokio", || {
            stamped.store(0, Ordering::Relaxed);
            let sent = origin.elapsed().as_nanos() as u64;
            let target = stamped.clone();
            runtime.spawn(async move {
                target.store(origin.elapsed().as_nanos() as u64, Ordering::Release);
            });
            wait_for_stamp(&stamped);
            stamped.load(Ordering::Acquire).saturating_sub(sent)
        });
    }
    {
        let origin = Instant::now();
        let stamped = Arc::new(AtomicU64::new(0));
        let wanted = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let sleeper = {
            let (stamped, wanted, stop) = (stamped.clone(), wanted.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    std::thread::park();
                    if wanted.swap(false, Ordering::AcqRel) {
                        stamped.store(origin.elapsed().as_nanos() as u64, Ordering::Release);
                    }
                }
            })
        };
        bench_wakeup(&mut group, "thread_wake", || {
            stamped.store(0, Ordering::Relaxed);
            let sent = origin.elapsed().as_nanos() as u64;
            wanted.store(true, Ordering::Release);
            sleeper.thread().unpark();
            wait_for_stamp(&stamped);
            stamped.load(Ordering::Acquire).saturating_sub(sent)
        });
        stop.store(true, Ordering::Release);
        sleeper.thread().unpark();
        let _ = sleeper.join();
    }
    group.finish();
}

/// Waits for the woken side to stamp, yielding the CPU at once: a woken thread that the kernel
/// placed on this core runs immediately instead of after a spin (the same for every contender).
fn wait_for_stamp(stamped: &AtomicU64) {
    while stamped.load(Ordering::Acquire) == 0 {
        std::thread::yield_now();
    }
}

criterion_group!(benches, external_submit, spawn_in_task, idle_wakeup);
criterion_main!(benches);
