//! Protocol benchmarks: client and server in one process, over loopback TCP.
//!
//! Ids are read by tooling; keep them exactly:
//! - `net/roundtrip/{goliath_submit_noop,raw_framed_pingpong,tokio_spawn_per_request}`: one
//!   request in flight, a 64-byte payload. Goliath submits `echo <64 bytes>` and waits for its
//!   result (echo does no work, so it completes on the I/O thread that took the request, as
//!   the tokio peer's spawned task runs on its one thread; a `fib 1` round trip through a
//!   scheduler worker, and a request that submits no task, are printed beside it for
//!   comparison); the raw peer parses a 4-byte length and
//!   answers each frame; the tokio peer spawns a task per request. Also prints p50/p99,
//!   sampled with the contenders taking turns (250 round trips each) so all see the same minutes;
//!   each turn's first round trip, which finds the caches holding the other contenders' code,
//!   is left out of them and printed apart.
//!   The client and every server's network thread are pinned to one vCPU (the same for all;
//!   `GOLIATH_BENCH_UNPINNED=1` leaves placement to the kernel, see `roundtrip`).
//!   `GOLIATH_BENCH_SAMPLES=N` takes N round trips per contender for the printed percentiles
//!   (default 20,000) and skips criterion's own timing: for comparing two builds in turn.
//! - `net/pipelined/{goliath,tokio_spawn_per_request}`: one connection, 256 requests in flight,
//!   no-op tasks, timed for 20,000 requests.
//!
//! Run: `cargo bench --bench net`; ratios: `cargo run --release --example bench_report`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use goliath::config::{Config, WorkerCount};
use goliath::runtime::Node;
use goliath::runtime::net::frame::{self, FrameReader, FrameType};
use goliath::runtime::net::{
    Hello, Request, Response, ResponseView, Server, ServerConfig, SubmitRequest,
};
use goliath::runtime::task::TaskState;
use rustix::thread::CpuSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const PAYLOAD: usize = 64;
const PIPELINED_REQUESTS: usize = 20_000;
const WINDOW: usize = 256;
const LATENCY_SAMPLES: usize = 20_000;
/// Round trips each contender makes before the percentiles are sampled: more than a node's
/// default history holds (`history.tasks`).
const WARM_UP_ROUND_TRIPS: usize = 12_000;

fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// A goliath node serving on a free port, on its own I/O thread.
fn goliath_server() -> (Arc<Node>, Server) {
    let mut config = Config::default();
    config.scheduler.workers = WorkerCount::Fixed(workers());
    config.net.listen = "127.0.0.1:0".into();
    config.log.level = "warn".into();
    // The protocol against raw framing: memory-only (benches/wal.rs measures durable submits).
    config.wal.enabled = false;
    let server_config = ServerConfig::from_config(&config).expect("config");
    let node = Arc::new(Node::start(config).expect("node"));
    let io = node.io_handle().expect("io runtime");
    let server = io
        .block_on(Server::start(node.clone(), server_config))
        .expect("server");
    (node, server)
}

/// A one-thread runtime for a peer server, like the node's I/O thread.
fn peer_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Pins the calling thread to `cpu` (by default the one it runs on now) and returns it.
fn pin_current_thread(cpu: Option<usize>) -> usize {
    let cpu = cpu.unwrap_or_else(rustix::thread::sched_getcpu);
    let mut set = CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).expect("sched_setaffinity");
    cpu
}

/// Frames of a 4-byte big-endian length and a payload, read through one buffer: one read
/// syscall yields every frame that arrived. Every contender's client and the peers' servers
/// use it, so none pays a syscall per frame that the others do not.
struct Frames {
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

impl Frames {
    fn new() -> Self {
        Frames {
            buffer: vec![0; 1 << 16],
            start: 0,
            end: 0,
        }
    }

    /// The next whole frame's payload, if one is buffered.
    fn next(&mut self) -> Option<std::ops::Range<usize>> {
        let available = self.end - self.start;
        if available < 4 {
            return None;
        }
        let header: [u8; 4] = self.buffer[self.start..self.start + 4]
            .try_into()
            .expect("4 bytes");
        let length = u32::from_be_bytes(header) as usize;
        if available < 4 + length {
            return None;
        }
        let payload = self.start + 4..self.start + 4 + length;
        self.start += 4 + length;
        Some(payload)
    }

    /// Reads once; false when the peer closed.
    async fn fill(&mut self, stream: &mut (impl AsyncReadExt + Unpin)) -> bool {
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buffer.len() {
            self.buffer.resize(self.buffer.len() * 2, 0);
        }
        matches!(stream.read(&mut self.buffer[self.end..]).await, Ok(n) if n > 0 && {
            self.end += n;
            true
        })
    }

    /// Waits for the next frame; None when the peer closed.
    async fn read(
        &mut self,
        stream: &mut (impl AsyncReadExt + Unpin),
    ) -> Option<std::ops::Range<usize>> {
        loop {
            if let Some(frame) = self.next() {
                return Some(frame);
            }
            if !self.fill(stream).await {
                return None;
            }
        }
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

/// The raw peer: answers each frame with the same frame, inline, as soon as it is read.
async fn raw_echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut frames = Frames::new();
                let mut answers = Vec::new();
                while frames.fill(&mut stream).await {
                    while let Some(payload) = frames.next() {
                        answers.extend_from_slice(&frame(&frames.buffer[payload]));
                    }
                    if stream.write_all(&answers).await.is_err() {
                        break;
                    }
                    answers.clear();
                }
            });
        }
    });
    address
}

/// The tokio peer: a task per request; answers go back through a writer task.
async fn spawn_per_request_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let (mut reader, mut writer) = stream.into_split();
            let (sender, mut answers) = mpsc::channel::<Vec<u8>>(WINDOW * 2);
            tokio::spawn(async move {
                let mut batch = Vec::new();
                while let Some(first) = answers.recv().await {
                    batch.extend_from_slice(&first);
                    while let Ok(more) = answers.try_recv() {
                        batch.extend_from_slice(&more);
                    }
                    if writer.write_all(&batch).await.is_err() {
                        break;
                    }
                    batch.clear();
                }
            });
            tokio::spawn(async move {
                let mut frames = Frames::new();
                while let Some(payload) = frames.read(&mut reader).await {
                    let request = frames.buffer[payload].to_vec();
                    let sender = sender.clone();
                    tokio::spawn(async move {
                        let _ = sender.send(frame(&request)).await;
                    });
                }
            });
        }
    });
    address
}

/// A lean goliath-protocol client: the same frames `Client` sends, written and read on the
/// calling task (no reader task, no per-request channel), as lean as the peers' clients.
struct LeanClient {
    stream: TcpStream,
    reader: FrameReader,
    request: Vec<u8>,
    /// The next stream id: every request in flight needs its own.
    next_stream: u32,
}

impl LeanClient {
    /// A connection that submits `spec` and waits for its result.
    async fn connect(address: &str, spec: &str) -> LeanClient {
        let request = Request::Submit(SubmitRequest {
            specs: vec![spec.to_string()],
            idempotency_key: None,
            wait: true,
            report_ids: false,
        });
        Self::connect_sending(address, &request).await
    }

    /// A connection that sends `request` each round trip.
    async fn connect_sending(address: &str, request: &Request) -> LeanClient {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let _ = stream.set_nodelay(true);
        let greeting = Hello {
            client: "bench".into(),
            cluster: "goliath".into(),
        };
        let opening = frame::opening(&greeting, 1 << 20).expect("hello");
        stream.write_all(&opening).await.expect("send hello");
        let mut preamble = [0u8; frame::PREAMBLE_LEN];
        stream.read_exact(&mut preamble).await.expect("preamble");
        let mut client = LeanClient {
            stream,
            reader: FrameReader::new(16 << 20),
            request: Vec::new(),
            next_stream: 1,
        };
        let (header, _) = client.next_frame().await;
        assert_eq!(header, FrameType::Welcome);
        frame::write_message(&mut client.request, FrameType::Request, 1, request, 1 << 20)
            .expect("request");
        client
    }

    /// Reads what the node sent next into the frame reader.
    async fn read_more(&mut self) {
        let spare = self.reader.spare().expect("room");
        let count = self.stream.read(spare).await.expect("read");
        assert!(count > 0, "node closed");
        self.reader.filled(count);
    }

    async fn next_frame(&mut self) -> (FrameType, Vec<u8>) {
        loop {
            if let Some((header, payload)) = self.reader.next_frame().expect("frame") {
                return (header.frame_type, payload.to_vec());
            }
            self.read_more().await;
        }
    }

    /// Sends the submit request on a fresh stream id.
    async fn send(&mut self) {
        frame::set_stream(&mut self.request, self.next_stream);
        self.next_stream = self.next_stream.wrapping_add(1).max(1);
        self.stream.write_all(&self.request).await.expect("send");
    }

    /// Reads the next frame and checks it is the answer asked for (a `Finished` task that
    /// succeeded, or an empty cancel's), decoding it where it lies in the read buffer.
    async fn receive(&mut self) {
        loop {
            if let Some((header, payload)) = self.reader.next_frame().expect("frame") {
                check_answer(header.frame_type, payload);
                return;
            }
            self.read_more().await;
        }
    }

    /// Sends `count` requests in one write, each on a fresh stream id.
    async fn send_many(&mut self, count: usize, batch: &mut Vec<u8>) {
        batch.clear();
        for _ in 0..count {
            frame::set_stream(&mut self.request, self.next_stream);
            self.next_stream = self.next_stream.wrapping_add(1).max(1);
            batch.extend_from_slice(&self.request);
        }
        self.stream.write_all(batch).await.expect("send");
    }

    /// Reads once (unless answers are already buffered) and counts the whole answers that
    /// arrived, checking their frame type only — as the peers' clients count frames without
    /// looking into them. (The round-trip bench decodes every answer.)
    async fn receive_available(&mut self) -> usize {
        let mut count = 0;
        loop {
            while let Some((header, _)) = self.reader.next_frame().expect("frame") {
                assert_eq!(header.frame_type, FrameType::Response);
                count += 1;
            }
            if count > 0 {
                return count;
            }
            self.read_more().await;
        }
    }

    async fn roundtrip(&mut self) -> Duration {
        let start = Instant::now();
        self.send().await;
        self.receive().await;
        start.elapsed()
    }
}

fn check_answer(kind: FrameType, payload: &[u8]) {
    assert_eq!(kind, FrameType::Response);
    match goliath::codec::decode_borrowed::<ResponseView<'_>>("response", payload) {
        Ok(Response::Finished { tasks, .. }) if matches!(tasks.as_slice(), [task] if task.state == TaskState::Succeeded) =>
            {}
        Ok(Response::Cancelled { results }) if results.is_empty() => {}
        other => panic!("{other:?}"),
    }
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Prints `net/roundtrip/{label}: n=… p50=… p99=… max=…` for round-trip times in ns.
fn percentiles(label: &str, mut samples: Vec<u64>) {
    if samples.is_empty() {
        return;
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64 / 1_000.0;
    println!(
        "net/roundtrip/{label}: n={} p50={:.1}us p99={:.1}us max={:.1}us",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// One framed request at a time over a raw connection; returns the time of one round trip.
async fn raw_roundtrip(stream: &mut TcpStream, request: &[u8], frames: &mut Frames) -> Duration {
    let start = Instant::now();
    stream.write_all(request).await.expect("send");
    assert!(frames.read(stream).await.is_some(), "answer");
    start.elapsed()
}

fn echo_spec() -> String {
    format!("echo {}", "x".repeat(PAYLOAD))
}

/// A plain framed connection to a peer server (raw or tokio), with its buffers.
struct PeerClient {
    stream: TcpStream,
    request: Vec<u8>,
    frames: Frames,
}

impl PeerClient {
    async fn connect(address: &str) -> PeerClient {
        let stream = TcpStream::connect(address).await.expect("connect");
        let _ = stream.set_nodelay(true);
        PeerClient {
            stream,
            request: frame(&[b'x'; PAYLOAD]),
            frames: Frames::new(),
        }
    }

    async fn roundtrip(&mut self) -> Duration {
        raw_roundtrip(&mut self.stream, &self.request, &mut self.frames).await
    }
}

/// A round-trip client of either protocol.
enum Contender {
    Goliath(LeanClient),
    Peer(PeerClient),
}

impl Contender {
    async fn roundtrip(&mut self) -> Duration {
        match self {
            Contender::Goliath(client) => client.roundtrip().await,
            Contender::Peer(client) => client.roundtrip().await,
        }
    }
}

/// Round trips per contender for the printed percentiles asked for by
/// `GOLIATH_BENCH_SAMPLES` (then criterion's timing is skipped), if any.
fn samples_asked() -> Option<usize> {
    std::env::var("GOLIATH_BENCH_SAMPLES").ok().map(|samples| {
        samples
            .parse()
            .expect("GOLIATH_BENCH_SAMPLES: a number of round trips")
    })
}

/// Round trips per contender before the next one takes over in the interleaved sampling.
const BLOCK: usize = 250;

fn roundtrip(c: &mut Criterion) {
    let mut group = c.benchmark_group("net/roundtrip");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(4));
    let client_rt = client_runtime();
    let raw_rt = peer_runtime();
    let raw_address = raw_rt.block_on(raw_echo_server());
    let tokio_rt = peer_runtime();
    let tokio_address = tokio_rt.block_on(spawn_per_request_server());
    let (node, server) = goliath_server();
    // Where each server's thread lands decided most of its figure on this VM: a server
    // thread on the client's vCPU answers in ~20 us, one on the other vCPU pays the host's
    // wake of a halted vCPU twice per round trip (~110 us), and the kernel keeps each thread
    // where it woke last, so one run's placement — a lottery that Goliath's I/O thread lost
    // in most runs and raw's or tokio's server in others — held for the whole run. The
    // client and every server's network thread are therefore put on the client's vCPU, the
    // same for every contender; Goliath's scheduler workers stay free to use every core.
    // `GOLIATH_BENCH_UNPINNED=1` leaves placement to the kernel.
    let client_affinity = rustix::thread::sched_getaffinity(None).expect("sched_getaffinity");
    if std::env::var_os("GOLIATH_BENCH_UNPINNED").is_none() {
        let cpu = pin_current_thread(None);
        for handle in [
            raw_rt.handle().clone(),
            tokio_rt.handle().clone(),
            node.io_handle().expect("io runtime"),
        ] {
            let pinned = client_rt
                .block_on(handle.spawn(async move { pin_current_thread(Some(cpu)) }))
                .expect("pinning task");
            assert_eq!(pinned, cpu, "a server thread is on the client's vCPU");
        }
        println!("net/roundtrip: client and server network threads pinned to vCPU {cpu}");
    }
    let address = server.local_addr().to_string();
    // (name, client, whether criterion times it too). For comparison only (not tooling ids):
    // `goliath_submit_fib1_on_worker`, the same round trip with a task that runs on a
    // scheduler worker, hop there and back included; `goliath_request_without_task`, a cancel
    // of no ids (framing, decoding, the connection's turn and an answer, but no task to
    // parse, claim, run, record, describe and encode): what the protocol layer costs alone.
    let mut contenders = client_rt.block_on(async {
        [
            (
                "goliath_submit_noop",
                Contender::Goliath(LeanClient::connect(&address, &echo_spec()).await),
                true,
            ),
            (
                "goliath_submit_fib1_on_worker",
                Contender::Goliath(LeanClient::connect(&address, "fib 1").await),
                false,
            ),
            (
                "goliath_request_without_task",
                Contender::Goliath(
                    LeanClient::connect_sending(&address, &Request::Cancel { ids: Vec::new() })
                        .await,
                ),
                false,
            ),
            (
                "raw_framed_pingpong",
                Contender::Peer(PeerClient::connect(&raw_address).await),
                true,
            ),
            (
                "tokio_spawn_per_request",
                Contender::Peer(PeerClient::connect(&tokio_address).await),
                true,
            ),
        ]
    });
    // The percentiles: the contenders take turns, BLOCK round trips each, so all of them
    // sample the same minutes of a shared machine whose speed drifts (this VM's loopback
    // round trip moves between about 25 and 150 us from one minute to the next).
    let samples_asked = samples_asked();
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); contenders.len()];
    // Each turn's first round trip, kept apart: it follows the other contenders' turns,
    // whose code and data the caches then hold, so it measures the bench's turn-taking (a
    // cold start, two to five times a warm round trip), not one request in flight. Counted
    // with the samples, these 0.4% fell, most of them, in each contender's slowest 1%, so
    // p99 partly measured how cold each one starts (BENCHMARKS.md, 2026-12-04 night).
    // Printed apart.
    let mut turn_starts: Vec<Vec<u64>> = vec![Vec::new(); contenders.len()];
    client_rt.block_on(async {
        // Steady state first: until a node's history is full (10,000 tasks by default), each
        // finished echo keeps its text there, and glibc grows the I/O thread's heap one page
        // (one mprotect, one page fault) per ~17 tasks — a fresh node's cost, which the
        // samples taken during the fill counted in one round trip of 17. Every contender
        // makes the same number of round trips before sampling.
        for (_, client, _) in contenders.iter_mut() {
            for _ in 0..WARM_UP_ROUND_TRIPS {
                client.roundtrip().await;
            }
        }
        for _ in 0..samples_asked.unwrap_or(LATENCY_SAMPLES) / BLOCK {
            for (((_, client, _), samples), turn_starts) in contenders
                .iter_mut()
                .zip(&mut samples)
                .zip(&mut turn_starts)
            {
                turn_starts.push(client.roundtrip().await.as_nanos() as u64);
                for _ in 0..BLOCK {
                    samples.push(client.roundtrip().await.as_nanos() as u64);
                }
            }
        }
    });
    for (((name, _, _), samples), turn_starts) in contenders.iter().zip(samples).zip(turn_starts) {
        percentiles(name, samples);
        percentiles(
            &format!("{name}: first round trip of each turn (after the others')"),
            turn_starts,
        );
    }
    for (name, client, timed) in &mut contenders {
        if !*timed || samples_asked.is_some() {
            continue;
        }
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                client_rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += client.roundtrip().await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
    // The next groups' threads are spawned from this one and inherit its mask.
    rustix::thread::sched_setaffinity(None, &client_affinity).expect("sched_setaffinity");
}

fn pipelined(c: &mut Criterion) {
    let mut group = c.benchmark_group("net/pipelined");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(6));
    group.throughput(criterion::Throughput::Elements(PIPELINED_REQUESTS as u64));
    let client_rt = client_runtime();
    {
        let (_node, server) = goliath_server();
        let address = server.local_addr().to_string();
        let mut client = client_rt.block_on(LeanClient::connect(&address, "fib 1"));
        let mut batch = Vec::new();
        group.bench_function("goliath", |b| {
            b.iter(|| {
                client_rt.block_on(async {
                    // Keep WINDOW requests in flight: as answers arrive, send as many more.
                    let mut sent = WINDOW.min(PIPELINED_REQUESTS);
                    client.send_many(sent, &mut batch).await;
                    let mut received = 0;
                    while received < PIPELINED_REQUESTS {
                        let answered = client.receive_available().await;
                        received += answered;
                        let more = answered.min(PIPELINED_REQUESTS - sent);
                        if more > 0 {
                            client.send_many(more, &mut batch).await;
                            sent += more;
                        }
                    }
                })
            })
        });
    }
    {
        let peer = peer_runtime();
        let address = peer.block_on(spawn_per_request_server());
        let stream = client_rt
            .block_on(TcpStream::connect(&address))
            .expect("connect");
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let request = frame(b"noop");
        group.bench_function("tokio_spawn_per_request", |b| {
            b.iter(|| {
                client_rt.block_on(async {
                    // Keep WINDOW requests in flight: as answers arrive, send as many more.
                    let mut sent = WINDOW.min(PIPELINED_REQUESTS);
                    writer.write_all(&request.repeat(sent)).await.expect("send");
                    let mut frames = Frames::new();
                    let mut received = 0;
                    while received < PIPELINED_REQUESTS {
                        assert!(frames.fill(&mut reader).await, "peer closed");
                        let mut answered = 0;
                        while frames.next().is_some() {
                            answered += 1;
                        }
                        received += answered;
                        let more = answered.min(PIPELINED_REQUESTS - sent);
                        if more > 0 {
                            writer.write_all(&request.repeat(more)).await.expect("send");
                            sent += more;
                        }
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, roundtrip, pipelined);
criterion_main!(benches);
