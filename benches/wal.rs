//! Write-ahead log benchmarks, on the filesystem the project builds on (`target/tmp`, or
//! `$GOLIATH_BENCH_DIR`): the raw fdatasync floor and durable appends through the WAL, in one
//! process run.
//!
//! Ids are read by tooling; keep them exactly:
//! - `wal/raw_fdatasync`: overwrite 4 KiB at offset 0 of a preallocated file, then fdatasync —
//!   the floor every durable acknowledgement pays.
//! - `wal/durable_submit/{w1,w16,w256,w4096}`: appends of an accepted record (what `submit fib
//!   30` logs), each waited for until durable, with W in flight from one submitter: a new
//!   append as soon as the oldest is durable. Time per append = 1 / throughput.
//!
//! Also printed (not criterion ids): raw fdatasync p50/p99; per W, append→durable latency
//! p50/p99, records per fdatasync and appends per second; and the end-to-end durable
//! `submit --wait` → result latency over loopback TCP at half the measured maximum rate, open
//! loop (requests sent on a fixed schedule, latency counted from the scheduled time).
//!
//! Run: `cargo bench --bench wal`; ratios: `cargo run --release --example bench_report`.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use goliath::config::{Config, WorkerCount};
use goliath::runtime::Node;
use goliath::runtime::net::client::ConnectOptions;
use goliath::runtime::net::{Client, Request, Response, Server, ServerConfig, SubmitRequest};
use goliath::runtime::wal::{self, IdRange, SpecRecord, Ticket, Wal, WalOptions, WalSync};
use hdrhistogram::Histogram;

const WINDOWS: [usize; 4] = [1, 16, 256, 4096];

fn bench_root() -> PathBuf {
    std::env::var_os("GOLIATH_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

fn bench_dir(name: &str) -> tempfile::TempDir {
    let root = bench_root();
    std::fs::create_dir_all(&root).expect("bench directory");
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(root)
        .expect("temp dir")
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("bounds")
}

fn us(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn raw_fdatasync(c: &mut Criterion) {
    let dir = bench_dir("raw");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("raw"))
        .expect("file");
    let block = [0x5au8; 4096];
    file.write_all_at(&block, 0).expect("write");
    file.sync_all().expect("sync");
    let mut latency = histogram();
    for _ in 0..3000 {
        let start = Instant::now();
        file.write_all_at(&block, 0).expect("write");
        file.sync_data().expect("fdatasync");
        latency.saturating_record(start.elapsed().as_nanos() as u64);
    }
    println!(
        "wal/raw_fdatasync: n={} p50={:.1}us p99={:.1}us max={:.1}us ({:.0}/s at p50)",
        latency.len(),
        us(&latency, 0.5),
        us(&latency, 0.99),
        latency.max() as f64 / 1000.0,
        1e6 / us(&latency, 0.5)
    );
    let mut group = c.benchmark_group("wal");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("raw_fdatasync", |b| {
        b.iter(|| {
            file.write_all_at(&block, 0).expect("write");
            file.sync_data().expect("fdatasync");
        })
    });
    group.finish();
}

fn spec() -> SpecRecord<'static> {
    SpecRecord {
        kind: Cow::Borrowed("fib"),
        numbers: [30, 0],
        text: None,
        timeout_ns: 0,
    }
}

fn open_wal(dir: &std::path::Path) -> Wal {
    let config = Config::default();
    let options = WalOptions {
        dir: dir.to_path_buf(),
        sync: WalSync::Always,
        segment_size: config.wal.segment_size,
        max_batch_delay: config.wal.max_batch_delay,
        checkpoint_every: config.wal.checkpoint_every,
        history_limit: config.history.tasks,
        key_limit: config.node.idempotency_keys,
        faults: None,
    };
    wal::open(options, &|_| Ok(()))
        .expect("opens")
        .start()
        .expect("starts")
}

/// `count` durable appends with at most `window` in flight; returns the time taken.
fn appends(
    log: &Wal,
    window: usize,
    count: u64,
    next_id: &AtomicU64,
    mut latency: Option<&mut Histogram<u64>>,
) -> Duration {
    let spec = spec();
    let mut in_flight: VecDeque<(Ticket, Instant)> = VecDeque::with_capacity(window);
    let settle = |in_flight: &mut VecDeque<(Ticket, Instant)>,
                  latency: &mut Option<&mut Histogram<u64>>| {
        let now = Instant::now();
        while let Some((ticket, at)) = in_flight.front() {
            if !matches!(ticket.is_durable(), Ok(true)) {
                break;
            }
            if let Some(latency) = latency.as_deref_mut() {
                latency.saturating_record(now.duration_since(*at).as_nanos() as u64);
            }
            in_flight.pop_front();
        }
    };
    let start = Instant::now();
    for _ in 0..count {
        if in_flight.len() == window {
            if let Some((ticket, _)) = in_flight.front() {
                ticket.wait().expect("durable");
            }
            settle(&mut in_flight, &mut latency);
        }
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let at = Instant::now();
        let ticket = log
            .append_accepted(
                &[IdRange {
                    first: id,
                    count: 1,
                }],
                &spec,
                None,
                1,
            )
            .expect("appends");
        in_flight.push_back((ticket, at));
    }
    while let Some((ticket, _)) = in_flight.back() {
        ticket.wait().expect("durable");
        settle(&mut in_flight, &mut latency);
    }
    start.elapsed()
}

fn durable_submit(c: &mut Criterion) {
    let dir = bench_dir("durable");
    let log = open_wal(dir.path());
    let next_id = AtomicU64::new(1);
    let mut group = c.benchmark_group("wal");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for window in WINDOWS {
        // A measured pass first, for latency and batch figures.
        let count = (40 * window as u64).max(20_000);
        let before = log.snapshot();
        let mut latency = histogram();
        let took = appends(&log, window, count, &next_id, Some(&mut latency));
        let after = log.snapshot();
        let records = after.records - before.records;
        let fsyncs = (after.fsyncs - before.fsyncs).max(1);
        println!(
            "wal/durable_submit/w{window}: {:.0} appends/s; append→durable p50={:.1}us p99={:.1}us; {:.1} records per fdatasync ({:.0}% of W)",
            count as f64 / took.as_secs_f64(),
            us(&latency, 0.5),
            us(&latency, 0.99),
            records as f64 / fsyncs as f64,
            100.0 * records as f64 / fsyncs as f64 / window as f64
        );
        group.bench_with_input(
            BenchmarkId::new("durable_submit", format!("w{window}")),
            &window,
            |b, &window| b.iter_custom(|iters| appends(&log, window, iters, &next_id, None)),
        );
    }
    group.finish();
    log.shutdown();
}

/// End to end over loopback: the maximum rate of durable `submit --wait fib 1`, then an open
/// loop at half of it, latency counted from each request's scheduled send time.
fn end_to_end() {
    let dir = bench_dir("e2e");
    let mut config = Config::default();
    config.scheduler.workers = WorkerCount::Fixed(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    );
    config.net.listen = "127.0.0.1:0".into();
    config.log.level = "warn".into();
    config.node.data_dir = dir.path().display().to_string();
    let server_config = ServerConfig::from_config(&config).expect("config");
    let node = Arc::new(Node::start(config).expect("node"));
    let io = node.io_handle().expect("io runtime");
    let server = io
        .block_on(Server::start(node.clone(), server_config))
        .expect("server");
    let address = server.local_addr().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let request = || {
        Request::Submit(SubmitRequest {
            specs: vec!["fib 1".into()],
            idempotency_key: None,
            wait: true,
        })
    };
    let client = Arc::new(
        runtime
            .block_on(Client::connect(&address, &ConnectOptions::default()))
            .expect("connects"),
    );
    // Closed loop, 256 in flight, for 3 s: the maximum rate.
    let done = Arc::new(AtomicU64::new(0));
    let window = Duration::from_secs(3);
    runtime.block_on(async {
        let deadline = Instant::now() + window;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..256 {
            let client = client.clone();
            let done = done.clone();
            tasks.spawn(async move {
                while Instant::now() < deadline {
                    match client.request(request()).await {
                        Ok(Response::Finished { .. }) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        other => panic!("{other:?}"),
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    let max_rate = done.load(Ordering::Relaxed) as f64 / window.as_secs_f64();
    // Open loop at half of it for 5 s.
    let rate = max_rate / 2.0;
    let count = (rate * 5.0) as u64;
    let latency = runtime.block_on(async {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let start = tokio::time::Instant::now();
        for index in 0..count {
            let scheduled = start + Duration::from_secs_f64(index as f64 / rate);
            tokio::time::sleep_until(scheduled).await;
            let client = client.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                match client.request(request()).await {
                    Ok(Response::Finished { .. }) => {
                        let _ = sender.send(scheduled.elapsed().as_nanos() as u64);
                    }
                    other => panic!("{other:?}"),
                }
            });
        }
        drop(sender);
        let mut latency = histogram();
        while let Some(ns) = receiver.recv().await {
            latency.saturating_record(ns);
        }
        latency
    });
    let wal = node.snapshot(0).wal.expect("durable node");
    println!(
        "wal/end_to_end: durable submit --wait (fib 1) over loopback: max {max_rate:.0}/s closed loop (256 in flight); open loop at {rate:.0}/s: n={} p50={:.1}us p99={:.1}us p99.9={:.1}us max={:.1}us; WAL {:.1} records per fdatasync, fdatasync p50 {:.0}us",
        latency.len(),
        us(&latency, 0.5),
        us(&latency, 0.99),
        us(&latency, 0.999),
        latency.max() as f64 / 1000.0,
        wal.records_per_fsync,
        wal.fsync_p50_us
    );
    drop(server);
    node.shutdown(Duration::from_secs(5));
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    raw_fdatasync(&mut criterion);
    durable_submit(&mut criterion);
    if std::env::var_os("GOLIATH_BENCH_SKIP_E2E").is_none() {
        end_to_end();
    }
    criterion.final_summary();
}
