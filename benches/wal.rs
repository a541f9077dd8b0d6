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
use goliath::runtime::net::frame::{self, FrameReader, FrameType};
use goliath::runtime::net::{Hello, Request, Response, Server, ServerConfig, SubmitRequest};
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
        // The bench appends accepted records of tasks that never finish: a checkpoint would
        // carry millions of them. Appends are what is measured; checkpoints have their test.
        checkpoint_every: 64 << 30,
        history_limit: config.history.tasks,
        key_limit: config.node.idempotency_keys,
        faults: None,
    };
    wal::open(options, &|_| Ok(()))
        .expect("opens")
        .start()
        .expect("starts")
}

/// `count` durable appends with at most `window` in flight — a new one as soon as the oldest
/// is durable — and returns the time taken. Latency is from an append to the moment its batch
/// was seen durable.
fn appends(
    log: &Wal,
    window: usize,
    count: u64,
    next_id: &AtomicU64,
    mut latency: Option<&mut Histogram<u64>>,
) -> Duration {
    let spec = spec();
    let mut in_flight: VecDeque<(Ticket, Instant)> = VecDeque::with_capacity(window);
    // The durable LSN last seen, and when.
    let mut seen = (0u64, Instant::now());
    let mut retire = |in_flight: &mut VecDeque<(Ticket, Instant)>, seen: &mut (u64, Instant)| {
        let Some((ticket, at)) = in_flight.pop_front() else {
            return;
        };
        if ticket.lsn() > seen.0 {
            ticket.wait().expect("durable");
            *seen = (log.durable_lsn(), Instant::now());
        }
        if let Some(latency) = latency.as_deref_mut() {
            latency.saturating_record(seen.1.duration_since(at).as_nanos() as u64);
        }
    };
    let start = Instant::now();
    for _ in 0..count {
        if in_flight.len() == window {
            retire(&mut in_flight, &mut seen);
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
    while !in_flight.is_empty() {
        retire(&mut in_flight, &mut seen);
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

/// A blocking protocol connection that speaks the same frames as `Client`, without a runtime:
/// the load generator must cost the node as little CPU as possible on a 2-core machine.
struct Lean {
    stream: std::net::TcpStream,
    reader: FrameReader,
    payload: Vec<u8>,
}

impl Lean {
    fn connect(address: &str) -> Lean {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let greeting = Hello {
            client: "wal-bench".into(),
            cluster: "goliath".into(),
        };
        let opening = frame::opening(&greeting, 1 << 20).expect("hello");
        stream.write_all(&opening).expect("send hello");
        let mut preamble = [0u8; frame::PREAMBLE_LEN];
        stream.read_exact(&mut preamble).expect("preamble");
        let request = Request::Submit(SubmitRequest {
            specs: vec!["fib 1".into()],
            idempotency_key: None,
            wait: true,
            report_ids: false,
        });
        let mut lean = Lean {
            stream,
            reader: FrameReader::new(16 << 20),
            payload: goliath::codec::encode("request", &request).expect("encodes"),
        };
        let (kind, _) = lean.next_response();
        assert_eq!(kind, FrameType::Welcome);
        lean
    }

    /// The next frame: its type and stream.
    fn next_response(&mut self) -> (FrameType, u32) {
        use std::io::Read;
        loop {
            if let Some((header, payload)) = self.reader.next_frame().expect("frame") {
                if header.frame_type == FrameType::Response {
                    match goliath::codec::decode::<Response>("response", payload) {
                        Ok(Response::Finished { .. }) => {}
                        other => panic!("{other:?}"),
                    }
                }
                return (header.frame_type, header.stream);
            }
            let spare = self.reader.spare().expect("room");
            let count = self.stream.read(spare).expect("read");
            assert!(count > 0, "node closed the connection");
            self.reader.filled(count);
        }
    }

    fn request(&self, stream: u32, out: &mut Vec<u8>) {
        frame::write_header(out, FrameType::Request, stream, self.payload.len() as u32);
        out.extend_from_slice(&self.payload);
    }
}

const CONNECTIONS: usize = 4;

/// The most `submit --wait fib 1` per second with 256 in flight over 4 connections, for 3 s.
fn closed_loop_rate(address: &str) -> f64 {
    use std::io::Write;
    let window = Duration::from_secs(3);
    let deadline = Instant::now() + window;
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let address = address.to_string();
            std::thread::spawn(move || {
                let mut lean = Lean::connect(&address);
                let mut out = Vec::new();
                let mut next = 1u32;
                for _ in 0..256 / CONNECTIONS {
                    lean.request(next, &mut out);
                    next += 1;
                }
                lean.stream.write_all(&out).expect("send");
                let mut done = 0u64;
                let mut in_flight = 256 / CONNECTIONS;
                while in_flight > 0 {
                    lean.next_response();
                    in_flight -= 1;
                    done += 1;
                    if Instant::now() < deadline {
                        out.clear();
                        lean.request(next, &mut out);
                        next = next.wrapping_add(1).max(1);
                        lean.stream.write_all(&out).expect("send");
                        in_flight += 1;
                    }
                }
                done
            })
        })
        .collect();
    let done: u64 = threads
        .into_iter()
        .map(|t| t.join().expect("no panic"))
        .sum();
    done as f64 / window.as_secs_f64()
}

/// `count` requests at `rate` per second, sent on schedule whatever the answers do (open
/// loop). Returns the latency from each request's scheduled time to its answer, and how late
/// the generator sent each one (so a late generator shows, rather than passing as the node's).
fn open_loop(address: &str, rate: f64, count: u64) -> (Histogram<u64>, Histogram<u64>) {
    use std::io::Write;
    let mut senders = Vec::new();
    let mut readers = Vec::new();
    let start = Instant::now() + Duration::from_millis(20);
    let interval = 1.0 / rate;
    // When request `index` (stream `index + 1`) is due.
    let due_at = move |index: u64| start + Duration::from_secs_f64(index as f64 * interval);
    for connection in 0..CONNECTIONS {
        let lean = Lean::connect(address);
        let writer = lean.stream.try_clone().expect("clone");
        senders.push((writer, lean.payload.clone()));
        readers.push(std::thread::spawn(move || {
            let mut lean = lean;
            let mut latency = histogram();
            let mine = (count as usize)
                .saturating_sub(connection)
                .div_ceil(CONNECTIONS);
            for _ in 0..mine {
                let (_, stream) = lean.next_response();
                let scheduled = due_at(u64::from(stream - 1));
                latency
                    .saturating_record(Instant::now().duration_since(scheduled).as_nanos() as u64);
            }
            latency
        }));
    }
    // Whatever is due goes out at once, one write per connection: a generator that paid one
    // send per request fell behind its own schedule on 2 cores and measured itself.
    let mut out: Vec<Vec<u8>> = vec![Vec::new(); CONNECTIONS];
    let mut lateness = histogram();
    let mut index = 0u64;
    while index < count {
        let now = Instant::now();
        let due = due_at(index);
        if now < due {
            if due - now > Duration::from_micros(300) {
                std::thread::sleep(due - now - Duration::from_micros(200));
            } else {
                std::thread::yield_now();
            }
            continue;
        }
        while index < count && due_at(index) <= now {
            let due = due_at(index);
            lateness.saturating_record(now.duration_since(due).as_nanos() as u64);
            let (_, payload) = &senders[index as usize % CONNECTIONS];
            let buffer = &mut out[index as usize % CONNECTIONS];
            frame::write_header(
                buffer,
                FrameType::Request,
                index as u32 + 1,
                payload.len() as u32,
            );
            buffer.extend_from_slice(payload);
            index += 1;
        }
        for (connection, buffer) in out.iter_mut().enumerate() {
            if !buffer.is_empty() {
                senders[connection].0.write_all(buffer).expect("send");
                buffer.clear();
            }
        }
    }
    let mut latency = histogram();
    for reader in readers {
        latency
            .add(reader.join().expect("no panic"))
            .expect("same bounds");
    }
    (latency, lateness)
}

/// End to end over loopback: the maximum rate of `submit --wait fib 1`, then an open loop at
/// half of it, latency counted from each request's scheduled send time. `durable` picks a node
/// with its WAL (the figure the issue asks for) or a memory-only one (the same path without
/// the disk, for comparison).
fn end_to_end(durable: bool) {
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
    config.wal.enabled = durable;
    let server_config = ServerConfig::from_config(&config).expect("config");
    let node = Arc::new(Node::start(config).expect("node"));
    let io = node.io_handle().expect("io runtime");
    let server = io
        .block_on(Server::start(node.clone(), server_config))
        .expect("server");
    let address = server.local_addr().to_string();
    let max_rate = closed_loop_rate(&address);
    let fractions: Vec<f64> = std::env::var("GOLIATH_E2E_FRACTIONS")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|f| f.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![0.5]);
    for fraction in fractions {
        let rate = max_rate * fraction;
        let (latency, lateness) = open_loop(&address, rate, (rate * 5.0) as u64);
        let wal = match node.snapshot(0).wal {
            Some(wal) => format!(
                "; WAL {:.1} records per fdatasync, fdatasync p50 {:.0}us p99 {:.0}us max {:.0}us",
                wal.records_per_fsync, wal.fsync_p50_us, wal.fsync_p99_us, wal.fsync_max_us
            ),
            None => String::new(),
        };
        println!(
            "wal/end_to_end/{}: submit --wait (fib 1) over loopback: max {max_rate:.0}/s closed loop (256 in flight); open loop at {:.0}% = {rate:.0}/s: n={} p50={:.1}us p99={:.1}us p99.9={:.1}us max={:.1}us; sent late by p50 {:.1}us p99 {:.1}us{wal}",
            if durable { "durable" } else { "memory_only" },
            fraction * 100.0,
            latency.len(),
            us(&latency, 0.5),
            us(&latency, 0.99),
            us(&latency, 0.999),
            latency.max() as f64 / 1000.0,
            us(&lateness, 0.5),
            us(&lateness, 0.99),
        );
    }
    drop(server);
    node.shutdown(Duration::from_secs(5));
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let only_e2e = std::env::var_os("GOLIATH_BENCH_E2E_ONLY").is_some();
    if !only_e2e {
        raw_fdatasync(&mut criterion);
    }
    // Before the append benches, which leave gigabytes for the kernel to write back.
    if std::env::var_os("GOLIATH_BENCH_SKIP_E2E").is_none() {
        end_to_end(true);
        end_to_end(false);
    }
    if !only_e2e {
        durable_submit(&mut criterion);
    }
    criterion.final_summary();
}
