//! Steady state allocates nothing: after warm-up, submitting and completing tiny tasks costs
//! no heap allocation (the arena, queues and history are all pre-sized or already grown).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goliath::runtime::net::frame::{self, FrameReader, FrameType};
use goliath::runtime::net::{Hello, Request, Server, ServerConfig, SubmitRequest};
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

/// The counter is process-wide: the tests count one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn count_alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
    let _alone = count_alone();
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

/// A blocking protocol client that allocates nothing per round trip: the request is encoded
/// once and answers are read into a fixed buffer, so what the counter sees is the node's.
struct EchoClient {
    stream: std::net::TcpStream,
    request: Vec<u8>,
    reader: FrameReader,
    next_stream: u32,
}

impl EchoClient {
    fn connect(address: std::net::SocketAddr, spec: &str) -> EchoClient {
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let greeting = Hello {
            client: "allocation test".into(),
            cluster: "goliath".into(),
        };
        let opening = frame::opening(&greeting, 1 << 20).expect("hello");
        stream.write_all(&opening).expect("send hello");
        let mut preamble = [0u8; frame::PREAMBLE_LEN];
        stream.read_exact(&mut preamble).expect("preamble");
        let mut request = Vec::new();
        let submit = Request::Submit(SubmitRequest {
            specs: vec![spec.to_string()],
            idempotency_key: None,
            wait: true,
            report_ids: false,
        });
        frame::write_message(&mut request, FrameType::Request, 1, &submit, 1 << 20)
            .expect("request");
        let mut client = EchoClient {
            stream,
            request,
            reader: FrameReader::new(1 << 20),
            next_stream: 1,
        };
        assert_eq!(client.next_frame(), FrameType::Welcome);
        client
    }

    fn next_frame(&mut self) -> FrameType {
        loop {
            if let Some((header, _)) = self.reader.next_frame().expect("frame") {
                return header.frame_type;
            }
            let spare = self.reader.spare().expect("room");
            let count = self.stream.read(spare).expect("read");
            assert!(count > 0, "node closed the connection");
            self.reader.filled(count);
        }
    }

    /// One submit-and-wait round trip on a fresh stream id.
    fn round_trip(&mut self) {
        frame::set_stream(&mut self.request, self.next_stream);
        self.next_stream += 1;
        self.stream.write_all(&self.request).expect("send");
        assert_eq!(self.next_frame(), FrameType::Response);
    }
}

/// Heap allocations per `submit --wait` round trip of an echo task through the protocol
/// server (decode, parse, slot, history, answer): each one costs the round trip time on the
/// node's I/O thread, so the count is held down. Prints `allocations per echo round trip: X`.
#[test]
fn echo_round_trip_allocations() {
    let _alone = count_alone();
    let mut config = common::config(2, 1 << 12);
    config.net.listen = "127.0.0.1:0".into();
    let server_config = ServerConfig::from_config(&config).expect("server config");
    let node = std::sync::Arc::new(Node::start(config).expect("node starts"));
    let io = node.io_handle().expect("I/O runtime");
    let server = io
        .block_on(Server::start(node.clone(), server_config))
        .expect("server starts");
    let mut client = EchoClient::connect(server.local_addr(), &format!("echo {}", "x".repeat(64)));
    // Warm-up: past the history's size, so its ring and the connection's tables are grown.
    for _ in 0..20_000 {
        client.round_trip();
    }
    const ROUND_TRIPS: u64 = 20_000;
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..ROUND_TRIPS {
        client.round_trip();
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    let per_round_trip = allocations as f64 / ROUND_TRIPS as f64;
    println!("allocations per echo round trip: {per_round_trip:.2}");
    assert_eq!(
        node.snapshot(0).counts.succeeded,
        40_000,
        "every echo was answered"
    );
    assert!(
        per_round_trip <= ECHO_ROUND_TRIP_ALLOCATIONS,
        "allocations per echo round trip: {per_round_trip} (limit {ECHO_ROUND_TRIP_ALLOCATIONS})"
    );
}

/// The most allocations one echo round trip may make on the node.
const ECHO_ROUND_TRIP_ALLOCATIONS: f64 = 9.5;
