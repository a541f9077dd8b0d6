//! Protocol benchmarks: client and server in one process, over loopback TCP.
//!
//! Ids are read by tooling; keep them exactly:
//! - `net/roundtrip/{goliath_submit_noop,raw_framed_pingpong,tokio_spawn_per_request}`: one
//!   request in flight, a 64-byte payload. Goliath submits `echo <64 bytes>` and waits for its
//!   result (the task runs on a scheduler worker); the raw peer parses a 4-byte length and
//!   answers each frame; the tokio peer spawns a task per request. Also prints p50/p99.
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
use goliath::runtime::net::{Hello, Request, Response, Server, ServerConfig, SubmitRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const PAYLOAD: usize = 64;
const PIPELINED_REQUESTS: usize = 20_000;
const WINDOW: usize = 256;
const LATENCY_SAMPLES: usize = 5_000;

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

/// Frames: 4-byte big-endian length, then the payload.
async fn read_frame(stream: &mut (impl AsyncReadExt + Unpin), buffer: &mut Vec<u8>) -> bool {
    let mut length = [0u8; 4];
    if stream.read_exact(&mut length).await.is_err() {
        return false;
    }
    buffer.resize(u32::from_be_bytes(length) as usize, 0);
    stream.read_exact(buffer).await.is_ok()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

/// The raw peer: answers each frame with the same frame, inline.
async fn raw_echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                while read_frame(&mut stream, &mut buffer).await {
                    if stream.write_all(&frame(&buffer)).await.is_err() {
                        break;
                    }
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
                let mut buffer = Vec::new();
                while read_frame(&mut reader, &mut buffer).await {
                    let request = std::mem::take(&mut buffer);
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
    async fn connect(address: &str, spec: &str) -> LeanClient {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let _ = stream.set_nodelay(true);
        let mut hello = frame::preamble().to_vec();
        let greeting = Hello {
            client: "bench".into(),
            cluster: "goliath".into(),
        };
        frame::write_message(&mut hello, FrameType::Hello, 0, &greeting, 1 << 20).expect("hello");
        stream.write_all(&hello).await.expect("send hello");
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
        let request = Request::Submit(SubmitRequest {
            specs: vec![spec.to_string()],
            idempotency_key: None,
            wait: true,
        });
        frame::write_message(
            &mut client.request,
            FrameType::Request,
            1,
            &request,
            1 << 20,
        )
        .expect("request");
        client
    }

    async fn next_frame(&mut self) -> (FrameType, Vec<u8>) {
        loop {
            if let Some((header, payload)) = self.reader.next_frame().expect("frame") {
                return (header.frame_type, payload.to_vec());
            }
            let spare = self.reader.spare().expect("room");
            let count = self.stream.read(spare).await.expect("read");
            assert!(count > 0, "node closed");
            self.reader.filled(count);
        }
    }

    /// Sends the submit request on a fresh stream id (bytes 4..8 of the frame header).
    async fn send(&mut self) {
        self.request[4..8].copy_from_slice(&self.next_stream.to_be_bytes());
        self.next_stream = self.next_stream.wrapping_add(1).max(1);
        self.stream.write_all(&self.request).await.expect("send");
    }

    async fn receive(&mut self) {
        let (kind, payload) = self.next_frame().await;
        assert_eq!(kind, FrameType::Response);
        match goliath::codec::decode::<Response>("response", &payload) {
            Ok(Response::Finished { .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    async fn roundtrip(&mut self) -> Duration {
        let start = Instant::now();
        self.send().await;
        self.receive().await;
        start.elapsed()
    }
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn percentiles(name: &str, mut samples: Vec<u64>) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64 / 1_000.0;
    println!(
        "net/roundtrip/{name}: n={} p50={:.1}us p99={:.1}us max={:.1}us",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// One framed request at a time over a raw connection; returns the time of one round trip.
async fn raw_roundtrip(stream: &mut TcpStream, request: &[u8], buffer: &mut Vec<u8>) -> Duration {
    let start = Instant::now();
    stream.write_all(request).await.expect("send");
    assert!(read_frame(stream, buffer).await, "answer");
    start.elapsed()
}

fn echo_spec() -> String {
    format!("echo {}", "x".repeat(PAYLOAD))
}

fn roundtrip(c: &mut Criterion) {
    let mut group = c.benchmark_group("net/roundtrip");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(4));
    let client_rt = client_runtime();
    {
        let (_node, server) = goliath_server();
        let address = server.local_addr().to_string();
        let mut client = client_rt.block_on(LeanClient::connect(&address, &echo_spec()));
        let samples = client_rt.block_on(async {
            let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
            for _ in 0..LATENCY_SAMPLES {
                samples.push(client.roundtrip().await.as_nanos() as u64);
            }
            samples
        });
        percentiles("goliath_submit_noop", samples);
        group.bench_function("goliath_submit_noop", |b| {
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
    for (name, start_server) in [("raw_framed_pingpong", 0), ("tokio_spawn_per_request", 1)] {
        let peer = peer_runtime();
        let address = peer.block_on(async {
            if start_server == 0 {
                raw_echo_server().await
            } else {
                spawn_per_request_server().await
            }
        });
        let mut stream = client_rt
            .block_on(TcpStream::connect(&address))
            .expect("connect");
        let _ = stream.set_nodelay(true);
        let request = frame(&[b'x'; PAYLOAD]);
        let mut buffer = Vec::new();
        let samples = client_rt.block_on(async {
            let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
            for _ in 0..LATENCY_SAMPLES {
                samples.push(
                    raw_roundtrip(&mut stream, &request, &mut buffer)
                        .await
                        .as_nanos() as u64,
                );
            }
            samples
        });
        percentiles(name, samples);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                client_rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += raw_roundtrip(&mut stream, &request, &mut buffer).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
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
        group.bench_function("goliath", |b| {
            b.iter(|| {
                client_rt.block_on(async {
                    // Keep WINDOW requests in flight: send one more per answer read.
                    let mut sent = 0;
                    while sent < WINDOW.min(PIPELINED_REQUESTS) {
                        client.send().await;
                        sent += 1;
                    }
                    for _ in 0..PIPELINED_REQUESTS {
                        client.receive().await;
                        if sent < PIPELINED_REQUESTS {
                            client.send().await;
                            sent += 1;
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
                    // Keep WINDOW requests in flight: send one more per answer read.
                    let mut sent = 0;
                    let mut batch = Vec::new();
                    while sent < WINDOW.min(PIPELINED_REQUESTS) {
                        batch.extend_from_slice(&request);
                        sent += 1;
                    }
                    writer.write_all(&batch).await.expect("send");
                    let mut buffer = Vec::new();
                    for _ in 0..PIPELINED_REQUESTS {
                        assert!(read_frame(&mut reader, &mut buffer).await);
                        if sent < PIPELINED_REQUESTS {
                            writer.write_all(&request).await.expect("send");
                            sent += 1;
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
