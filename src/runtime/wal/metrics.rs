//! WAL metrics: an fsync latency histogram over a sliding window, records and bytes per
//! fsync, appends per second, and what a snapshot reports about the log.
//!
//! The window is [`BUCKETS`] buckets of [`BUCKET`] each; the writer adds to the newest, and a
//! snapshot merges them, so figures cover the last few seconds and successive snapshots make
//! a latency-over-time chart.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::runtime::lock;

/// Width of one bucket of the sliding window.
pub const BUCKET: Duration = Duration::from_millis(500);
/// Buckets in the window (the window is `BUCKET × BUCKETS`, 5 s).
pub const BUCKETS: usize = 10;

/// Highest latency the histogram tells apart (60 s, in ns); longer ones count as this.
const MAX_NS: u64 = 60_000_000_000;

#[derive(Debug, Clone)]
struct Bucket {
    started: Instant,
    latency: Histogram<u32>,
    fsyncs: u64,
    batches: u64,
    records: u64,
    bytes: u64,
}

impl Bucket {
    fn new(started: Instant) -> Self {
        Self {
            started,
            // 2 significant figures: 1% resolution, about 30 KiB per bucket.
            latency: Histogram::new_with_bounds(1, MAX_NS, 2)
                .expect("constant histogram bounds are valid"),
            fsyncs: 0,
            batches: 0,
            records: 0,
            bytes: 0,
        }
    }

    fn clear(&mut self, started: Instant) {
        self.started = started;
        self.latency.reset();
        self.fsyncs = 0;
        self.batches = 0;
        self.records = 0;
        self.bytes = 0;
    }
}

#[derive(Debug)]
struct Window {
    buckets: Vec<Bucket>,
    newest: usize,
}

impl Window {
    fn rotate(&mut self, now: Instant) {
        while now.duration_since(self.buckets[self.newest].started) >= BUCKET {
            let next_start = self.buckets[self.newest].started + BUCKET;
            self.newest = (self.newest + 1) % self.buckets.len();
            // After a long quiet spell, start the new bucket now rather than walking through
            // every empty one.
            let start = if now.duration_since(next_start) > BUCKET * BUCKETS as u32 {
                now
            } else {
                next_start
            };
            self.buckets[self.newest].clear(start);
        }
    }
}

/// Counters the writer and checkpointer update and snapshots read.
#[derive(Debug)]
pub struct Metrics {
    window: Mutex<Window>,
    /// Records appended since start.
    pub appended_records: AtomicU64,
    /// Records made durable since start.
    pub durable_records: AtomicU64,
    /// Bytes written since start.
    pub written_bytes: AtomicU64,
    /// fdatasync calls since start.
    pub fsyncs: AtomicU64,
    /// Batches written since start.
    pub batches: AtomicU64,
    /// Checkpoints written since start.
    pub checkpoints: AtomicU64,
    /// When the last checkpoint was written (Unix µs), 0 for none.
    pub last_checkpoint_unix_us: AtomicU64,
    /// Size of the last checkpoint.
    pub last_checkpoint_bytes: AtomicU64,
    /// Segments rolled over since start.
    pub segments_rolled: AtomicU64,
    /// Exponential average of a batch's write + fdatasync, ns (guides how long waiters spin).
    pub batch_ns_average: AtomicU64,
    /// The last checkpoint error, if checkpointing is failing.
    pub checkpoint_error: Mutex<Option<String>>,
    /// Times the writer waited for the checkpointer (closed segments over their bound).
    pub checkpoint_waits: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            window: Mutex::new(Window {
                buckets: (0..BUCKETS).map(|_| Bucket::new(now)).collect(),
                newest: 0,
            }),
            appended_records: AtomicU64::new(0),
            durable_records: AtomicU64::new(0),
            written_bytes: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            last_checkpoint_unix_us: AtomicU64::new(0),
            last_checkpoint_bytes: AtomicU64::new(0),
            segments_rolled: AtomicU64::new(0),
            batch_ns_average: AtomicU64::new(100_000),
            checkpoint_error: Mutex::new(None),
            checkpoint_waits: AtomicU64::new(0),
        }
    }
}

/// What the window holds, merged.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowFigures {
    /// Time the window covers.
    pub span: Duration,
    /// fdatasync latency percentiles and maximum, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Maximum, ns.
    pub max_ns: u64,
    /// fdatasync calls.
    pub fsyncs: u64,
    /// Batches written.
    pub batches: u64,
    /// Records written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl Metrics {
    /// Counts one fdatasync that took `elapsed`.
    pub fn record_fsync(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut window = lock(&self.window);
        window.rotate(now);
        let newest = window.newest;
        let bucket = &mut window.buckets[newest];
        bucket.latency.saturating_record(ns.min(MAX_NS));
        bucket.fsyncs += 1;
    }

    /// Counts one batch of `records` records and `bytes` bytes, written and (per the sync
    /// mode) made durable in `elapsed`.
    pub fn record_batch(&self, records: u64, bytes: u64, elapsed: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.durable_records.fetch_add(records, Ordering::Relaxed);
        self.written_bytes.fetch_add(bytes, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let average = self.batch_ns_average.load(Ordering::Relaxed);
        self.batch_ns_average
            .store(average - average / 8 + ns / 8, Ordering::Relaxed);
        let now = Instant::now();
        let mut window = lock(&self.window);
        window.rotate(now);
        let newest = window.newest;
        let bucket = &mut window.buckets[newest];
        bucket.batches += 1;
        bucket.records += records;
        bucket.bytes += bytes;
    }

    /// The window's figures now.
    pub fn window(&self) -> WindowFigures {
        let now = Instant::now();
        let mut window = lock(&self.window);
        window.rotate(now);
        let oldest = window
            .buckets
            .iter()
            .map(|b| b.started)
            .min()
            .unwrap_or(now);
        let mut merged = window.buckets[window.newest].latency.clone();
        merged.reset();
        let mut figures = WindowFigures {
            span: now.duration_since(oldest).min(BUCKET * BUCKETS as u32),
            ..WindowFigures::default()
        };
        for bucket in &window.buckets {
            if now.duration_since(bucket.started) > BUCKET * BUCKETS as u32 {
                continue;
            }
            let _ = merged.add(&bucket.latency);
            figures.fsyncs += bucket.fsyncs;
            figures.batches += bucket.batches;
            figures.records += bucket.records;
            figures.bytes += bucket.bytes;
        }
        drop(window);
        if !merged.is_empty() {
            figures.p50_ns = merged.value_at_quantile(0.50);
            figures.p99_ns = merged.value_at_quantile(0.99);
            figures.max_ns = merged.max();
        }
        figures
    }
}

/// How the log makes appends durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalSync {
    /// Acknowledge after fdatasync returned: survives power loss.
    Always,
    /// Acknowledge after write(2): survives the process dying, not the machine.
    Never,
}

impl WalSync {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WalSync::Always => "always",
            WalSync::Never => "never",
        }
    }
}

/// What the node recovered at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverySummary {
    /// The checkpoint replay started from (its first segment), if there was one.
    pub checkpoint: Option<u64>,
    /// Segments replayed after it.
    pub segments: u64,
    /// Records replayed (checkpoint and segments).
    pub records: u64,
    /// Tasks queued again that had begun running.
    pub requeued_running: u64,
    /// Tasks queued again that had not begun.
    pub requeued_queued: u64,
    /// Tasks finished at start (their cancel was requested, or they cannot run here).
    pub finished_at_start: u64,
    /// Finished tasks returned to the history.
    pub history: u64,
    /// Idempotency keys restored.
    pub keys: u64,
    /// Bytes of a torn tail dropped (never acknowledged).
    pub dropped_bytes: u64,
    /// Highest task id in the log; new ids start above it.
    pub max_id: u64,
    /// How long recovery took, µs.
    pub took_us: u64,
}

/// The log as a snapshot shows it (`goliath status`, the console's WAL panel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalSnapshot {
    /// The data directory.
    pub data_dir: String,
    /// The sync mode.
    pub sync: WalSync,
    /// False once a write or fdatasync failed: the node acknowledges nothing more.
    pub healthy: bool,
    /// The failure, once there is one.
    pub failure: Option<String>,
    /// The span the window figures cover, µs.
    pub window_us: u64,
    /// fdatasync latency over the window: median, µs.
    pub fsync_p50_us: f64,
    /// 99th percentile, µs.
    pub fsync_p99_us: f64,
    /// Maximum, µs.
    pub fsync_max_us: f64,
    /// fdatasync calls in the window.
    pub window_fsyncs: u64,
    /// Records per batch (one write, one fdatasync) over the window.
    pub records_per_fsync: f64,
    /// Bytes per batch over the window.
    pub bytes_per_fsync: f64,
    /// Records appended per second over the window.
    pub appends_per_sec: f64,
    /// Records appended since start.
    pub records: u64,
    /// Bytes written since start.
    pub bytes: u64,
    /// fdatasync calls since start.
    pub fsyncs: u64,
    /// Records appended but not yet durable.
    pub pending_records: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Bytes the WAL takes on disk (segments are preallocated to `wal.segment_size`).
    pub disk_bytes: u64,
    /// When the last checkpoint was written (Unix µs).
    pub last_checkpoint_unix_us: Option<u64>,
    /// Size of the last checkpoint.
    pub last_checkpoint_bytes: u64,
    /// Times acknowledgements waited for the checkpointer because closed segments awaiting
    /// a checkpoint reached their bound (a disk slower than the load).
    pub checkpoint_waits: u64,
    /// Checkpoints written since start.
    pub checkpoints: u64,
    /// The last checkpoint error, while checkpoints fail (the log keeps working; disk grows).
    pub checkpoint_error: Option<String>,
    /// Why the next segment could not be created ahead of time, while that is so and the
    /// log still works (`None` once it failed: `failure` says why): the text says what
    /// happens when its current segment fills (a full disk fails it; out of file
    /// descriptors, acknowledgements wait).
    pub next_segment_error: Option<String>,
    /// What the node recovered at start.
    pub recovered: RecoverySummary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_reports_percentiles_and_rates() {
        let metrics = Metrics::default();
        for micros in 1..=100u64 {
            metrics.record_fsync(Duration::from_micros(micros));
        }
        metrics.record_batch(40, 4000, Duration::from_micros(50));
        metrics.record_batch(60, 6000, Duration::from_micros(50));
        let figures = metrics.window();
        assert!((49_000..=51_500).contains(&figures.p50_ns), "{figures:?}");
        assert!((98_000..=100_500).contains(&figures.p99_ns), "{figures:?}");
        assert!((99_000..=101_000).contains(&figures.max_ns), "{figures:?}");
        assert_eq!(figures.fsyncs, 100);
        assert_eq!(
            (figures.batches, figures.records, figures.bytes),
            (2, 100, 10_000)
        );
    }
}
