//! The protocol server: accepts connections, checks the handshake, and serves requests against
//! a [`Node`], many in flight per connection and answered out of order.
//!
//! Per connection: one task reads frames, handles requests and writes the answers. Each turn
//! it handles everything ready without waiting (finished tasks, whole frames already
//! buffered, frames from its helper tasks), then writes all the answers that produced in one
//! write, so a burst costs one syscall and no hop through another task. Watch streams and
//! answers waiting for durability run as helper tasks that hand frames to it through a bounded
//! queue. At most `net.max_inflight` requests are in flight; beyond that the connection stops
//! reading (TCP pushes back on the client), it never buffers without bound. A watch stream sends events with backpressure —
//! a slow watcher lags and is told how many events it skipped — and snapshots only when the
//! queue has room, so a slow watcher loses intermediate snapshots, not memory.
//!
//! Every framing or handshake error closes the connection with an `Error` frame that says why,
//! and is logged once for that connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::frame::{self, FrameReader, FrameType, PREAMBLE_LEN};
use super::messages::{
    CancelOutcomeWire, CancelResult, Hello, RemoteError, RemoteErrorKind, RequestView, Response,
    StreamItem, SubmitView, WatchRequest, WatchedEvent, Welcome,
};
use crate::config::Config;
use crate::runtime::completions::{
    Completion, CompletionReceiver, CompletionSender, completion_queue,
};
use crate::runtime::events::EventError;
use crate::runtime::idhash::IdMap;
use crate::runtime::log_budget::{Line, LineBudget};
use crate::runtime::node::{
    BatchError, CancelError, CancelOutcome, LateWatch, LookupError, Node, OpenConnection,
    SubmitError,
};
use crate::runtime::snapshot::{TaskInfo, TaskQuery};
use crate::runtime::task::{KindId, Submission, TaskId};
use crate::runtime::wal::{DurabilityError, Ticket};

/// Server settings, from `[net]`, `[node]` and `[exec]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Largest frame.
    pub max_frame: u32,
    /// Requests in flight per connection.
    pub max_inflight: usize,
    /// Connections at once.
    pub max_connections: usize,
    /// Time allowed for the handshake.
    pub handshake_timeout: Duration,
    /// Time a client may take to send the rest of a frame it began, or to read any of its
    /// answers, before it is disconnected.
    pub stall_timeout: Duration,
    /// Tasks a connection may wait for.
    pub max_waiting: usize,
    /// The cluster name clients must present.
    pub cluster: String,
    /// Whether exec tasks may be submitted over the network.
    pub exec_remote: bool,
    /// Whether exec tasks run on this node at all (`exec.enabled`): when not, that is the
    /// refusal to give, not `exec.remote`'s.
    pub exec_enabled: bool,
}

impl ServerConfig {
    /// Settings from a node config.
    pub fn from_config(config: &Config) -> Result<ServerConfig, String> {
        Ok(ServerConfig {
            listen: config.net.listen_address()?,
            max_frame: u32::try_from(config.net.max_frame).unwrap_or(u32::MAX),
            max_inflight: config.net.max_inflight,
            max_connections: config.net.max_connections,
            handshake_timeout: config.net.handshake_timeout,
            stall_timeout: config.net.stall_timeout,
            max_waiting: config.net.max_waiting,
            cluster: config.node.cluster.clone(),
            exec_remote: config.exec.remote,
            exec_enabled: config.exec.enabled,
        })
    }
}

/// Server counters.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections closed for a protocol error.
    pub rejected: AtomicU64,
    /// Requests served.
    pub requests: AtomicU64,
}

/// A running server. Dropping it stops accepting (open connections end with the runtime).
pub struct Server {
    local_addr: SocketAddr,
    stats: Arc<ServerStats>,
    shutdown_requested: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

struct Context {
    node: Arc<Node>,
    config: ServerConfig,
    stats: Arc<ServerStats>,
    shutdown_request: watch::Sender<bool>,
    /// How many rejected connections were logged lately (a flood is counted, not logged).
    rejections: std::sync::Mutex<LineBudget>,
    /// Bytes all connections together may hold for frames larger than a read
    /// ([`frame_budget_bytes`]): a client may declare a frame of `net.max_frame` and send
    /// all of it but the last byte, and a thousand of them would hold a thousand frames.
    frame_budget: Arc<Semaphore>,
}

/// The frame budget: four of the largest frames, and at least 64 MiB.
fn frame_budget_bytes(max_frame: u32) -> usize {
    (4 * max_frame as usize).max(64 << 20)
}

impl Server {
    /// Binds the listener and starts serving on the current tokio runtime.
    pub async fn start(node: Arc<Node>, config: ServerConfig) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(config.listen)?;
        Self::start_on(node, config, listener).await
    }

    /// Starts serving on `listener`, bound by the caller (the binary binds before the node
    /// starts, so a taken port is said first and the address cannot be taken in between).
    pub async fn start_on(
        node: Arc<Node>,
        config: ServerConfig,
        listener: std::net::TcpListener,
    ) -> std::io::Result<Server> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let local_addr = listener.local_addr()?;
        let stats = Arc::new(ServerStats::default());
        let (shutdown_request, shutdown_requested) = watch::channel(false);
        let (stop, stopped) = watch::channel(false);
        node.set_listen_address(Some(local_addr.to_string()));
        let frame_budget = Arc::new(Semaphore::new(frame_budget_bytes(config.max_frame)));
        let context = Arc::new(Context {
            node,
            config,
            stats: stats.clone(),
            shutdown_request,
            rejections: std::sync::Mutex::new(rejection_budget()),
            frame_budget,
        });
        tokio::spawn(accept_loop(listener, context, stopped));
        Ok(Server {
            local_addr,
            stats,
            shutdown_requested,
            stop,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// Resolves when a client sent `Shutdown`.
    pub async fn shutdown_requested(&mut self) {
        let _ = self
            .shutdown_requested
            .wait_for(|requested| *requested)
            .await;
    }

    /// A receiver that turns true when a client asks the node to shut down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown_requested.clone()
    }

    /// Stops accepting connections.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How often a listener whose accepts keep failing says so.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(60);

async fn accept_loop(
    listener: TcpListener,
    context: Arc<Context>,
    mut stopped: watch::Receiver<bool>,
) {
    // Failed accepts since the last warning, and when that was: one line a minute, not
    // twenty a second while the node has no file descriptor left.
    let mut failed_accepts = 0u64;
    let mut warned_at: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                failed_accepts += 1;
                if warned_at.is_none_or(|at| at.elapsed() >= ACCEPT_WARN_EVERY) {
                    warned_at = Some(tokio::time::Instant::now());
                    let open = context.stats.open.load(Ordering::Relaxed);
                    let advice = if crate::runtime::sys::out_of_file_descriptors(&error) {
                        format!(
                            "; the node has no file descriptor left ({open} client connections open): new clients wait unanswered until one closes; {}",
                            crate::runtime::sys::OUT_OF_DESCRIPTORS_ADVICE
                        )
                    } else {
                        String::new()
                    };
                    tracing::warn!(%error, failed_accepts, "accept failed; retrying every 50ms{advice}");
                    failed_accepts = 0;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        context.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let open = context.stats.open.fetch_add(1, Ordering::Relaxed) + 1;
        let context = context.clone();
        tokio::spawn(async move {
            let result = if open > context.config.max_connections {
                refuse(
                    stream,
                    &format!(
                        "{} ({} open); try again later",
                        frame::BUSY_REFUSAL,
                        context.config.max_connections
                    ),
                )
                .await
            } else {
                serve_connection(stream, peer, &context).await
            };
            match result {
                Err(Rejection::Silent) => {
                    tracing::debug!(%peer, "connection closed before the handshake")
                }
                Err(Rejection::Io(error)) if client_went_away(&error) => {
                    // A client killed or timed out mid-exchange: nothing was refused.
                    tracing::debug!(%peer, %error, "the client closed the connection")
                }
                Err(reason) => {
                    context.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    let verdict = context
                        .rejections
                        .lock()
                        .map(|mut log| log.admit(std::time::Instant::now()))
                        .unwrap_or(Line::Log {
                            unlogged_before: 0,
                            last: false,
                        });
                    match verdict {
                        Line::Log {
                            unlogged_before: 0,
                            last: false,
                        } => {
                            tracing::warn!(%peer, %reason, "connection rejected");
                        }
                        Line::Log {
                            unlogged_before,
                            last,
                        } => {
                            let more = if last {
                                format!(
                                    "; further rejections in the next {}s are counted, not logged one by one",
                                    REJECTION_WINDOW.as_secs()
                                )
                            } else {
                                String::new()
                            };
                            tracing::warn!(%peer, %reason, unlogged_before, "connection rejected{more}");
                            if last {
                                say_unlogged_rejections_later(context.clone());
                            }
                        }
                        Line::Count => {}
                    }
                }
                Ok(()) => {}
            }
            context.stats.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Says, when the window ends, how many rejections were counted and not logged: the next
/// rejection logged would carry the count, but after a flood none may come.
fn say_unlogged_rejections_later(context: Arc<Context>) {
    tokio::spawn(async move {
        tokio::time::sleep(REJECTION_WINDOW).await;
        let unlogged = context
            .rejections
            .lock()
            .map(|mut log| log.take_unlogged())
            .unwrap_or(0);
        if unlogged > 0 {
            tracing::warn!(
                rejected = unlogged,
                "{unlogged} more connections were rejected in the last {}s (counted, not logged one by one)",
                REJECTION_WINDOW.as_secs()
            );
        }
    });
}

/// Rejected connections logged per [`REJECTION_WINDOW`], at most: a client that opens bad
/// connections in a loop (or a flood against a full node) must not write a log line each.
const REJECTIONS_LOGGED: u32 = 10;

/// See [`REJECTIONS_LOGGED`].
const REJECTION_WINDOW: Duration = Duration::from_secs(10);

/// The budget of rejection lines.
fn rejection_budget() -> LineBudget {
    LineBudget::new(REJECTION_WINDOW, REJECTIONS_LOGGED)
}

/// Why a connection was closed early; logged once (within [`REJECTIONS_LOGGED`]).
#[derive(Debug, thiserror::Error)]
enum Rejection {
    #[error("{0}")]
    Protocol(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer connected and left without sending a byte (port checks, load balancers).
    #[error("closed before the handshake")]
    Silent,
}

/// An error that says the peer reset the connection, not that anything was wrong with what
/// it sent. (A frame cut short by the peer's close is still a rejection: the node got part
/// of a request.)
fn client_went_away(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}

/// Writes all of `bytes`, unless the client takes none of them for `stall` (it stopped
/// reading: a stuck `goliath watch`, a client that only sends): then the connection is
/// closed, rather than held with its answers for ever. A write that goes through at once
/// (the usual case) sets no timer.
async fn write_unless_stalled(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    mut bytes: &[u8],
    stall: Duration,
) -> Result<(), Rejection> {
    while !bytes.is_empty() {
        let written = match writer.try_write(bytes) {
            // The socket is full: wait for room, but not for ever.
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(stall, writer.write(bytes)).await {
                    Ok(result) => result,
                    Err(_) => {
                        return Err(Rejection::Protocol(format!(
                            "the client read none of its answers for {} (net.stall_timeout); {} bytes were waiting",
                            crate::runtime::units::HumanDuration(stall),
                            bytes.len()
                        )));
                    }
                }
            }
            other => other,
        };
        match written {
            Ok(0) => return Err(Rejection::Io(std::io::ErrorKind::WriteZero.into())),
            Ok(count) => bytes = &bytes[count..],
            Err(error) => return Err(Rejection::Io(error)),
        }
    }
    Ok(())
}

/// Sends our preamble and an `Error` frame with `message`, and closes.
async fn refuse(mut stream: TcpStream, message: &str) -> Result<(), Rejection> {
    let mut bytes = frame::preamble().to_vec();
    frame::write_frame(&mut bytes, FrameType::Error, 0, message.as_bytes());
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bytes)).await;
    let _ = stream.shutdown().await;
    Err(Rejection::Protocol(message.to_string()))
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    context: &Arc<Context>,
) -> Result<(), Rejection> {
    let _ = stream.set_nodelay(true);
    let config = &context.config;
    let mut reader = FrameReader::new(config.max_frame);
    let hello = match tokio::time::timeout(
        config.handshake_timeout,
        read_hello(&mut stream, &mut reader),
    )
    .await
    {
        Err(_) => {
            return refuse(
                stream,
                &format!(
                    "handshake not completed within {:?}",
                    config.handshake_timeout
                ),
            )
            .await;
        }
        Ok(Err(None)) => return Err(Rejection::Silent),
        Ok(Err(Some(message))) => return refuse(stream, &message).await,
        Ok(Ok(hello)) => hello,
    };
    if hello.cluster != config.cluster {
        let message = format!(
            "cluster mismatch: this node is in cluster \"{}\", the client expects \"{}\"; point the client at a node of its cluster or set node.cluster",
            config.cluster, hello.cluster
        );
        return refuse(stream, &message).await;
    }
    let welcome = Welcome {
        node: context.node.name().to_string(),
        cluster: config.cluster.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        max_frame: config.max_frame,
    };
    let mut bytes = frame::preamble().to_vec();
    frame::write_message(
        &mut bytes,
        FrameType::Welcome,
        0,
        &welcome,
        config.max_frame,
    )
    .map_err(|e| Rejection::Protocol(e.to_string()))?;
    stream.write_all(&bytes).await?;
    tracing::debug!(%peer, client = %hello.client, "client connected");

    let (mut read_half, write_half) = stream.into_split();
    let mut connection = Connection::new(context.clone(), write_half);
    let result = connection.run(&mut read_half, &mut reader).await;
    connection.close().await;
    result
}

/// Reads the preamble and the Hello frame. `Err(None)`: the peer left without sending a byte.
async fn read_hello(
    stream: &mut TcpStream,
    reader: &mut FrameReader,
) -> Result<Hello, Option<String>> {
    let mut preamble = [0u8; PREAMBLE_LEN];
    let mut got = 0;
    while got < PREAMBLE_LEN {
        match stream.read(&mut preamble[got..]).await {
            Ok(0) if got == 0 => return Err(None),
            Ok(0) => return Err(Some("connection closed during the handshake".to_string())),
            Ok(count) => got += count,
            Err(_) if got == 0 => return Err(None),
            Err(error) => {
                return Err(Some(format!(
                    "connection failed during the handshake: {error}"
                )));
            }
        }
    }
    frame::check_preamble(&preamble).map_err(|e| Some(e.to_string()))?;
    loop {
        if let Some((header, payload)) = reader.next_frame().map_err(|e| Some(e.to_string()))? {
            if header.frame_type != FrameType::Hello {
                return Err(Some(format!(
                    "expected a Hello frame first, got {:?}",
                    header.frame_type
                )));
            }
            return crate::codec::decode::<Hello>("hello", payload)
                .map_err(|e| Some(e.to_string()));
        }
        let spare = reader.spare().map_err(|e| Some(e.to_string()))?;
        let count = stream.read(spare).await.map_err(|e| Some(e.to_string()))?;
        if count == 0 {
            return Err(Some("connection closed during the handshake".to_string()));
        }
        reader.filled(count);
    }
}

/// What a wait on the client's socket found: bytes read, or (held back) bytes peeked at.
enum ClientBytes {
    Read(usize),
    Peeked(usize),
}

/// A frame to send, with the in-flight permit it releases once written.
enum Outgoing {
    Response(u32, Response, Option<OwnedSemaphorePermit>),
    Item(u32, StreamItem),
    End(u32, Option<OwnedSemaphorePermit>),
}

fn encode_outgoing(buffer: &mut Vec<u8>, outgoing: Outgoing, max_frame: u32) {
    match outgoing {
        Outgoing::Response(stream, response, _permit) => {
            let mut response = response;
            let mut result = frame::write_response(buffer, stream, &response, max_frame);
            if matches!(result, Err(frame::MessageError::ResponseTooLarge { .. }))
                && trim_outputs(&mut response)
            {
                // Too large with every output: the start of each output, as a list has.
                result = frame::write_response(buffer, stream, &response, max_frame);
            }
            if let Err(error) = result {
                let message = match &response {
                    Response::Finished { tasks, .. } => format!(
                        "the {} tasks were accepted and have finished, but the answer with their outcomes could not be sent: {error}; list them with `goliath tasks`, and wait for fewer tasks at a time",
                        tasks.len()
                    ),
                    _ => format!("the response could not be sent: {error}; ask for fewer tasks"),
                };
                let fallback: Response = Response::Error(RemoteError {
                    kind: RemoteErrorKind::Invalid,
                    message,
                });
                let _ =
                    frame::write_message(buffer, FrameType::Response, stream, &fallback, max_frame);
            }
        }
        Outgoing::Item(stream, item) => {
            let _ = frame::write_message(buffer, FrameType::StreamItem, stream, &item, max_frame);
        }
        Outgoing::End(stream, _permit) => {
            frame::write_frame(buffer, FrameType::StreamEnd, stream, &[])
        }
    }
}

/// Cuts each output of a task list or a wait's outcomes to its first
/// [`LISTED_OUTPUT_MAX`](crate::runtime::task::limits::LISTED_OUTPUT_MAX) bytes (a
/// process's cut counted as truncated, a text's marked with an ellipsis), in place; false
/// for other responses.
fn trim_outputs(response: &mut Response) -> bool {
    let (Response::Finished { tasks, .. } | Response::Tasks(tasks)) = response else {
        return false;
    };
    for task in tasks {
        task.trim_output(crate::runtime::task::limits::LISTED_OUTPUT_MAX);
    }
    true
}

/// A `submit` with `wait` whose tasks have not all finished (or are not yet durable).
struct PendingWait {
    tasks: Vec<Option<TaskInfo>>,
    remaining: usize,
    duplicate: bool,
    /// The accepted records are durable: the answer may go out once all tasks finished.
    durable: bool,
    permit: OwnedSemaphorePermit,
    /// Tells this wait from a later one on the same stream id, for the polls' answers.
    serial: u64,
    /// The polls of an earlier submission's tasks, stopped when the wait ends early.
    polls: Vec<tokio::task::AbortHandle>,
    /// The node's watch of an earlier submission's tasks (ended with the wait): they come in
    /// as this connection's own do, also those the history has no room to keep; the polls
    /// find those that had finished before it began.
    _late: Option<LateWatch>,
    /// The ids to send as [`StreamItem::Accepted`] once durable, if the client asked.
    report: Option<Vec<TaskId>>,
    /// Output bytes held for the answer; past [`WAIT_OUTPUT_BUDGET`] every output is cut as
    /// a list's are (`outputs_cut`), now and as the rest finish.
    output_bytes: usize,
    outputs_cut: bool,
}

/// The most output a wait holds for its answer whole (64 MiB, what one answer may carry at
/// most, so an answer holding more would be cut anyway). Each finished exec task's output
/// was held whole until the last task finished: 5,000 tasks of 128 KiB took 1.8 GB.
const WAIT_OUTPUT_BUDGET: usize = crate::runtime::net::frame::MAX_RESPONSE;

impl PendingWait {
    /// Holds `info` as the outcome at `index`; false if that place was filled already.
    fn hold(&mut self, index: usize, mut info: TaskInfo) -> bool {
        let Some(place) = self.tasks.get_mut(index).filter(|place| place.is_none()) else {
            return false;
        };
        if self.outputs_cut {
            info.trim_output(crate::runtime::task::limits::LISTED_OUTPUT_MAX);
        }
        self.output_bytes += info.output_bytes();
        *place = Some(info);
        if !self.outputs_cut && self.output_bytes > WAIT_OUTPUT_BUDGET {
            self.outputs_cut = true;
            self.output_bytes = 0;
            for task in self.tasks.iter_mut().flatten() {
                task.trim_output(crate::runtime::task::limits::LISTED_OUTPUT_MAX);
                self.output_bytes += task.output_bytes();
            }
        }
        true
    }
}

/// The most parsed specs whose buffer a connection keeps for the next request.
const SUBMISSIONS_KEPT: usize = 64;

/// Encoded frames waiting to be written are flushed once they pass this many bytes, and
/// whenever the connection is about to wait.
const FLUSH_AT: usize = 256 * 1024;

/// Cancels of at most this many ids run on the protocol runtime itself; longer lists (a
/// range of up to 100,000) run on a blocking thread, so the others' requests go on.
const CANCEL_INLINE_IDS: usize = 64;

struct Connection {
    context: Arc<Context>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    /// Frames encoded by this task and not yet written. Written whenever the connection is
    /// about to wait, so a burst of answers leaves in one write.
    out: Vec<u8>,
    /// A sender for helper tasks (watch streams, answers waiting for durability); the
    /// connection reads `queued` and writes what they send, in the order it arrives.
    outgoing: mpsc::Sender<Outgoing>,
    queued: mpsc::Receiver<Outgoing>,
    /// The write side failed: the peer is gone, nothing more can reach it.
    write_failed: bool,
    permits: Arc<Semaphore>,
    completions: CompletionSender,
    completed: CompletionReceiver,
    waits: IdMap<u32, PendingWait>,
    /// Parsed specs of the request being handled (kept between requests, emptied).
    submissions: Vec<Submission>,
    waiting_for: IdMap<TaskId, (u32, usize)>,
    watches: IdMap<u32, tokio::task::JoinHandle<()>>,
    polls: tokio::task::JoinSet<(u32, u64, usize, Result<TaskInfo, LookupError>)>,
    /// The serial the next wait gets.
    next_wait_serial: u64,
    /// `wait` submissions whose accepted records are on their way to disk.
    durables: tokio::task::JoinSet<(u32, Result<(), DurabilityError>)>,
    /// Registers `completions` with the node, which says through it that it stops serving
    /// (the client is told, and the connection ends) and waits a moment for it to close.
    _open: OpenConnection,
}

impl Connection {
    fn new(context: Arc<Context>, writer: tokio::net::tcp::OwnedWriteHalf) -> Self {
        let (completions, completed) = completion_queue();
        let (outgoing, queued) = mpsc::channel::<Outgoing>(context.config.max_inflight + 64);
        let permits = Arc::new(Semaphore::new(context.config.max_inflight));
        // Opened as the node stopped: told at once.
        let open = context.node.farewell(&completions);
        Self {
            _open: open,
            context,
            writer,
            out: Vec::with_capacity(16 * 1024),
            outgoing,
            queued,
            write_failed: false,
            permits,
            completions,
            completed,
            waits: IdMap::default(),
            submissions: Vec::new(),
            waiting_for: IdMap::default(),
            watches: IdMap::default(),
            polls: tokio::task::JoinSet::new(),
            next_wait_serial: 0,
            durables: tokio::task::JoinSet::new(),
        }
    }

    /// Serves requests until the client leaves or breaks the protocol.
    ///
    /// Each turn handles, without waiting, everything that is ready — finished tasks, frames
    /// from helper tasks, and the whole frames already buffered (one permit each) — then
    /// writes what that produced in one go and waits for the next thing to do. Without a
    /// permit it does not read (backpressure: TCP pushes back on the client).
    async fn run(
        &mut self,
        read_half: &mut tokio::net::tcp::OwnedReadHalf,
        reader: &mut FrameReader,
    ) -> Result<(), Rejection> {
        let mut permit: Option<OwnedSemaphorePermit> = None;
        // When the frame the client began must have arrived whole (net.stall_timeout):
        // counted only while this side reads, not while it holds the client back.
        let mut frame_deadline: Option<tokio::time::Instant> = None;
        // The node-wide budget this connection holds for a frame larger than a read (its
        // buffer beyond `READ_CHUNK`): taken before the buffer grows, given back when it
        // shrinks.
        let mut frame_bytes: Option<OwnedSemaphorePermit> = None;
        // Whether bytes the client sent wait unread while this side holds it back: then
        // only a freed permit makes the next move.
        let mut unread_waiting = false;
        loop {
            // This turn takes what finishes during it itself (an echo finishes inside its
            // submit): no wake-up, and no second, empty poll of this task per request.
            self.completed.stop_waking();
            let mut frames_taken = false;
            loop {
                if permit.is_none() {
                    permit = self.permits.clone().try_acquire_owned().ok();
                }
                let Some(held) = permit.take() else { break };
                let (header, payload) = match reader.next_frame() {
                    Err(error) => return Err(self.fatal(error.to_string())),
                    Ok(None) => {
                        permit = Some(held);
                        break;
                    }
                    Ok(Some(frame)) => frame,
                };
                frames_taken = true;
                self.frame(header, payload, held).await?;
                if self.out.len() >= FLUSH_AT {
                    self.flush().await?;
                }
            }
            // Whatever finished meanwhile (also tasks that completed at submit, like echo)
            // goes out in this turn's write.
            self.take_ready();
            self.flush().await?;
            let pending = reader.pending();
            let budget_short = match self.take_frame_budget(reader, &mut frame_bytes) {
                Ok(short) => short,
                Err(error) => return Err(self.fatal(error.to_string())),
            };
            let spare = match permit {
                Some(_) if budget_short > 0 => None,
                Some(_) => match reader.spare() {
                    Ok(spare) => Some(spare),
                    Err(error) => return Err(self.fatal(error.to_string())),
                },
                None => None,
            };
            let reading = spare.is_some();
            if reading {
                unread_waiting = false;
            }
            // Held back at its in-flight limit, a client that leaves must still be seen to:
            // a watch holding the only permit (net.max_inflight = 1) never ends by itself,
            // and its connection stayed open, in CLOSE-WAIT, for good.
            let watching_close = !reading && !unread_waiting;
            let budget_wait = (budget_short > 0).then(|| self.context.frame_budget.clone());
            // Only helper tasks (watches, answers waiting for durability) send on the queue,
            // and this connection keeps a sender of its own: with no helper alive and
            // nothing queued, nothing can arrive there, and the queue is not polled.
            let helpers_may_send = self.outgoing.strong_count() > 1 || !self.queued.is_empty();
            // A frame taken means the bytes after it begin a new one: its time starts now.
            frame_deadline = match (reading, pending) {
                (true, 0) | (false, _) => None,
                (true, _) => frame_deadline.filter(|_| !frames_taken).or_else(|| {
                    Some(tokio::time::Instant::now() + self.context.config.stall_timeout)
                }),
            };
            let permits = &self.permits;
            tokio::select! {
                biased;
                // The node's stop comes first, ahead of any task still queued.
                completion = self.completed.recv() => match completion {
                    Completion::Task(info) => self.completed_task(info),
                    Completion::NodeStopping => {
                        self.say_node_stopped();
                        return Ok(());
                    }
                },
                Some(item) = self.queued.recv(), if helpers_may_send => self.encode(item),
                Some(Ok((stream, serial, index, result))) = self.polls.join_next(), if !self.polls.is_empty() => {
                    self.polled(stream, serial, index, result);
                }
                Some(Ok((stream, result))) = self.durables.join_next(), if !self.durables.is_empty() => {
                    self.made_durable(stream, result);
                }
                // Cloned only when polled: select! builds every branch's future each turn,
                // and a connection holding a permit (the usual turn) needs none.
                acquired = async { permits.clone().acquire_owned().await }, if permit.is_none() => match acquired {
                    Ok(acquired) => permit = Some(acquired),
                    Err(_) => return Ok(()),
                },
                more = async {
                    match budget_wait {
                        Some(budget) => budget.acquire_many_owned(budget_short).await,
                        None => std::future::pending().await,
                    }
                }, if budget_short > 0 => match more {
                    Ok(more) => match frame_bytes.as_mut() {
                        Some(held) => held.merge(more),
                        None => frame_bytes = Some(more),
                    },
                    Err(_) => return Ok(()),
                },
                () = async {
                    match frame_deadline {
                        Some(deadline) => tokio::time::sleep_until(deadline).await,
                        None => std::future::pending().await,
                    }
                }, if frame_deadline.is_some() => {
                    return Err(self.fatal(format!(
                        "the client began a frame and did not send the rest within {} (net.stall_timeout): {} bytes of it received",
                        crate::runtime::units::HumanDuration(self.context.config.stall_timeout),
                        reader.pending()
                    )));
                }
                io = async {
                    match spare {
                        Some(spare) => read_half.read(spare).await.map(ClientBytes::Read),
                        // Peeked, not read: a request is taken only with a permit.
                        None => read_half.peek(&mut [0u8; 1]).await.map(ClientBytes::Peeked),
                    }
                }, if reading || watching_close => {
                    let count = match io? {
                        // A peek of nothing: the client closed its side, as a read of
                        // nothing says below.
                        ClientBytes::Read(count) | ClientBytes::Peeked(count @ 0) => count,
                        ClientBytes::Peeked(_) => {
                            unread_waiting = true;
                            continue;
                        }
                    };
                    if count == 0 {
                        if reader.pending() > 0 {
                            return Err(Rejection::Protocol(format!(
                                "connection closed in the middle of a frame ({} bytes of it received)",
                                reader.pending()
                            )));
                        }
                        // The client closed its side: finish what is in flight, then stop.
                        drop(permit);
                        self.drain().await;
                        return Ok(());
                    }
                    reader.filled(count);
                }
            }
        }
    }

    /// Takes from the node-wide frame budget what the frame being received needs beyond a
    /// read's worth, or gives back what a shrunk buffer no longer holds. Returns how many
    /// more bytes of budget it must wait for (0: it may read).
    fn take_frame_budget(
        &self,
        reader: &mut FrameReader,
        frame_bytes: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<u32, frame::FrameError> {
        let extra = reader.needed()?.saturating_sub(frame::READ_CHUNK);
        let held = frame_bytes
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        if extra == 0 {
            if held > 0 && reader.shrink()? {
                *frame_bytes = None;
            }
            return Ok(0);
        }
        if extra <= held {
            return Ok(0);
        }
        let short = u32::try_from(extra - held).unwrap_or(u32::MAX);
        match self
            .context
            .frame_budget
            .clone()
            .try_acquire_many_owned(short)
        {
            Ok(more) => {
                match frame_bytes.as_mut() {
                    Some(held) => held.merge(more),
                    None => *frame_bytes = Some(more),
                }
                Ok(0)
            }
            Err(_) => Ok(short),
        }
    }

    /// Handles what is ready without waiting: finished tasks, frames from helper tasks,
    /// settled polls and durability waits — until nothing is, or [`FLUSH_AT`] bytes of
    /// answers wait to be written (the rest is taken after the write).
    fn take_ready(&mut self) {
        while self.out.len() < FLUSH_AT {
            if let Some(info) = self.completed.try_recv() {
                self.completed_task(info);
            } else if let Ok(item) = self.queued.try_recv() {
                self.encode(item);
            } else if let Some(Ok((stream, serial, index, result))) = self.polls.try_join_next() {
                self.polled(stream, serial, index, result);
            } else if let Some(Ok((stream, result))) = self.durables.try_join_next() {
                self.made_durable(stream, result);
            } else {
                return;
            }
        }
    }

    /// One frame from the client, holding the permit its request takes.
    async fn frame(
        &mut self,
        header: frame::FrameHeader,
        payload: &[u8],
        permit: OwnedSemaphorePermit,
    ) -> Result<(), Rejection> {
        match header.frame_type {
            FrameType::Request => {
                // Every framed request decodes within the codec's request limit
                // (`MAX_REQUEST_CLAIM`): one that does not is malformed.
                let request =
                    match crate::codec::decode_borrowed::<RequestView<'_>>("request", payload) {
                        Ok(request) => request,
                        Err(error) => {
                            return Err(self.fatal(format!(
                                "request on stream {} does not decode: {error}",
                                header.stream
                            )));
                        }
                    };
                if self.waits.contains_key(&header.stream)
                    || self.watches.contains_key(&header.stream)
                {
                    // Answering both on one stream would leave the client unable to tell
                    // them apart; dropping one would leave it waiting forever.
                    return Err(self.fatal(format!(
                        "stream {} is already in use by a request in flight; give each request its own stream id",
                        header.stream
                    )));
                }
                self.context.stats.requests.fetch_add(1, Ordering::Relaxed);
                self.handle(header.stream, request, permit).await;
                Ok(())
            }
            FrameType::CancelStream => {
                drop(permit);
                if let Some(watch) = self.watches.remove(&header.stream) {
                    watch.abort();
                }
                Ok(())
            }
            other => Err(self.fatal(format!("unexpected {other:?} frame from a client"))),
        }
    }

    /// Writes every encoded frame.
    async fn flush(&mut self) -> Result<(), Rejection> {
        if self.out.is_empty() || self.write_failed {
            self.out.clear();
            return Ok(());
        }
        let result = write_unless_stalled(
            &mut self.writer,
            &self.out,
            self.context.config.stall_timeout,
        )
        .await;
        self.out.clear();
        if self.out.capacity() > 1 << 20 {
            self.out.shrink_to(64 * 1024);
        }
        if let Err(error) = result {
            self.write_failed = true;
            return Err(error);
        }
        Ok(())
    }

    fn encode(&mut self, outgoing: Outgoing) {
        encode_outgoing(&mut self.out, outgoing, self.context.config.max_frame);
    }

    /// Waits for outstanding `wait` submissions after the client stopped sending.
    async fn drain(&mut self) {
        while !self.waits.is_empty() && !self.write_failed {
            self.completed.stop_waking();
            self.take_ready();
            if self.waits.is_empty() || self.flush().await.is_err() {
                break;
            }
            tokio::select! {
                completion = self.completed.recv() => match completion {
                    Completion::Task(info) => self.completed_task(info),
                    Completion::NodeStopping => {
                        self.say_node_stopped();
                        break;
                    }
                },
                Some(item) = self.queued.recv() => self.encode(item),
                Some(Ok((stream, serial, index, result))) = self.polls.join_next(), if !self.polls.is_empty() => {
                    self.polled(stream, serial, index, result);
                }
                Some(Ok((stream, result))) = self.durables.join_next(), if !self.durables.is_empty() => {
                    self.made_durable(stream, result);
                }
                else => break,
            }
        }
    }

    /// Stops the helper tasks, writes what they and this task still had to say (answers
    /// waiting for durability included), and closes the write side.
    async fn close(mut self) {
        for (_, watch) in self.watches.drain() {
            watch.abort();
        }
        self.polls.abort_all();
        self.durables.abort_all();
        let Connection {
            context,
            mut writer,
            mut out,
            outgoing,
            mut queued,
            write_failed,
            ..
        } = self;
        drop(outgoing);
        if write_failed {
            return;
        }
        let stall = context.config.stall_timeout;
        // Helper tasks still running hold senders; the queue ends when the last one is done.
        while let Some(item) = queued.recv().await {
            encode_outgoing(&mut out, item, context.config.max_frame);
            if out.len() >= FLUSH_AT {
                if write_unless_stalled(&mut writer, &out, stall)
                    .await
                    .is_err()
                {
                    return;
                }
                out.clear();
            }
        }
        if write_unless_stalled(&mut writer, &out, stall).await.is_ok() {
            let _ = writer.shutdown().await;
        }
    }

    /// Sends `response` once `ticket` is durable (or the log's failure instead), without
    /// holding up this connection's other requests.
    fn send_when_durable(
        &mut self,
        stream: u32,
        ticket: Ticket,
        response: Response,
        permit: OwnedSemaphorePermit,
    ) {
        if matches!(ticket.is_durable(), Ok(true)) {
            return self.send(stream, response, permit);
        }
        let outgoing = self.outgoing.clone();
        tokio::spawn(async move {
            let response = match ticket.durable().await {
                Ok(()) => response,
                Err(error) => Response::Error(storage_error(&error)),
            };
            let _ = outgoing
                .send(Outgoing::Response(stream, response, Some(permit)))
                .await;
        });
    }

    /// A `wait` submission's accepted records are durable (or never will be).
    fn made_durable(&mut self, stream: u32, result: Result<(), DurabilityError>) {
        match result {
            Ok(()) => {
                let Some(wait) = self.waits.get_mut(&stream) else {
                    return;
                };
                wait.durable = true;
                if wait.remaining == 0 {
                    self.answer_wait(stream);
                } else {
                    self.report_accepted(stream);
                }
            }
            Err(error) => {
                if let Some(wait) = self.waits.remove(&stream) {
                    self.waiting_for
                        .retain(|_, (waiting, _)| *waiting != stream);
                    self.send(stream, Response::Error(storage_error(&error)), wait.permit);
                }
            }
        }
    }

    fn answer_wait(&mut self, stream: u32) {
        if let Some(wait) = self.waits.remove(&stream) {
            // `filter_map`, not `flatten`: it collects in place, reusing the buffer (an
            // `Option<TaskInfo>` is as large as a `TaskInfo`), one allocation less per answer.
            #[allow(clippy::filter_map_identity)]
            let tasks = wait.tasks.into_iter().filter_map(|task| task).collect();
            let response = Response::Finished {
                tasks,
                duplicate: wait.duplicate,
            };
            self.send(stream, response, wait.permit);
        }
    }

    /// Whatever the client still waits for will not come from this run of the node: it
    /// hears why, instead of a bare close, like after a crash.
    fn say_node_stopped(&mut self) {
        let notice = frame::SHUTDOWN_NOTICE;
        frame::write_frame(&mut self.out, FrameType::Error, 0, notice.as_bytes());
    }

    /// Encodes an `Error` frame behind the answers already encoded; the connection closes
    /// after it. Returns the rejection to log.
    fn fatal(&mut self, message: String) -> Rejection {
        frame::write_frame(&mut self.out, FrameType::Error, 0, message.as_bytes());
        Rejection::Protocol(message)
    }

    fn send(&mut self, stream: u32, response: Response, permit: OwnedSemaphorePermit) {
        self.encode(Outgoing::Response(stream, response, Some(permit)));
    }

    async fn handle(
        &mut self,
        stream: u32,
        request: RequestView<'_>,
        permit: OwnedSemaphorePermit,
    ) {
        let node = self.context.node.clone();
        let response = match request {
            RequestView::Submit(submit) => return self.submit(stream, submit, permit),
            RequestView::Watch(watch) => return self.watch(stream, watch, permit),
            RequestView::Cancel { ids } => {
                // A long list (a range of ids) is answered off this runtime, as lists are:
                // its lookups and log appends must not hold every other client up.
                let results = if ids.len() > CANCEL_INLINE_IDS {
                    match tokio::task::spawn_blocking(move || node.cancel_many_pending(&ids)).await
                    {
                        Ok(results) => results,
                        Err(_) => {
                            let response = internal("cancelling the tasks failed");
                            return self.send(stream, response, permit);
                        }
                    }
                } else {
                    node.cancel_many_pending(&ids)
                };
                let mut ticket = Ticket::ready();
                let mut answers = Vec::with_capacity(results.len());
                let mut refused = None;
                for (id, result) in results {
                    let outcome = match result {
                        Ok((CancelOutcome::Requested, logged)) => {
                            ticket = ticket.clone().max(logged);
                            CancelOutcomeWire::Requested
                        }
                        Ok((CancelOutcome::AlreadyFinished(state), _)) => {
                            CancelOutcomeWire::AlreadyFinished(state)
                        }
                        Err(CancelError::Lookup(_)) => CancelOutcomeWire::NotFound,
                        Err(error) => {
                            refused = Some(error);
                            break;
                        }
                    };
                    answers.push(CancelResult { id, outcome });
                }
                let response = match refused {
                    // No cancel of this request is acknowledged when one could not be
                    // recorded: the client reports the error, not a partial success.
                    Some(error) => Response::Error(cancel_error(&error)),
                    None => Response::Cancelled { results: answers },
                };
                return self.send_when_durable(stream, ticket, response, permit);
            }
            RequestView::Task { id } => match node.task(id) {
                Ok(info) => Response::Task(info),
                Err(error) => Response::Error(lookup_error(error)),
            },
            RequestView::Tasks(query) => {
                let query = TaskQuery {
                    limit: query.limit.min(10_000),
                    ..query
                };
                match tokio::task::spawn_blocking(move || node.tasks(query)).await {
                    Ok(tasks) => Response::Tasks(tasks),
                    Err(_) => internal("listing tasks failed"),
                }
            }
            RequestView::Status { task_limit } => {
                let limit = task_limit.min(10_000) as usize;
                match tokio::task::spawn_blocking(move || node.snapshot(limit)).await {
                    Ok(snapshot) => Response::Status(Box::new(snapshot)),
                    Err(_) => internal("taking the snapshot failed"),
                }
            }
            RequestView::Shutdown => {
                // Refused from before the answer: a submission sent once `shutdown` returned
                // is never taken.
                node.stop_accepting();
                let _ = self.context.shutdown_request.send(true);
                Response::ShuttingDown
            }
            // Through a snapshot: this node's own row then carries its figures of now, as
            // `status` shows them, not those it last gossiped (seconds old under load).
            RequestView::Members => {
                match tokio::task::spawn_blocking(move || node.snapshot(0).cluster).await {
                    Ok(cluster) => Response::Members(cluster.map(Box::new)),
                    Err(_) => internal("taking the membership snapshot failed"),
                }
            }
        };
        self.send(stream, response, permit);
    }

    fn submit(&mut self, stream: u32, request: SubmitView<'_>, permit: OwnedSemaphorePermit) {
        // One buffer for every request's parsed specs instead of one allocation each.
        let mut submissions = std::mem::take(&mut self.submissions);
        self.submit_parsed(stream, request, permit, &mut submissions);
        submissions.clear();
        if submissions.capacity() <= SUBMISSIONS_KEPT {
            self.submissions = submissions;
        }
    }

    fn submit_parsed(
        &mut self,
        stream: u32,
        request: SubmitView<'_>,
        permit: OwnedSemaphorePermit,
        submissions: &mut Vec<Submission>,
    ) {
        let node = &self.context.node;
        for (index, text) in request.specs.iter().enumerate() {
            match node.parse(text) {
                Ok(submission) => submissions.push(submission),
                Err(error) => {
                    let kind = RemoteErrorKind::BadSpec {
                        index: index as u32,
                        column: error.column as u32,
                    };
                    let message = if request.specs.len() == 1 {
                        format!("bad task spec: {error}")
                    } else {
                        // Named by its start: a 5,000-byte line need not come back whole.
                        // Control characters shown as symbols, as in every other message.
                        let start = crate::runtime::units::cut_to_width(text, 60);
                        let start = crate::runtime::units::printable(&start, false);
                        format!("bad task spec #{} ({start:?}): {error}", index + 1)
                    };
                    return self.send(
                        stream,
                        Response::Error(RemoteError { kind, message }),
                        permit,
                    );
                }
            }
        }
        let first_exec = submissions
            .iter()
            .position(|s: &Submission| s.spec.kind() == KindId::EXEC);
        if let Some(index) = first_exec
            && self.context.config.exec_enabled
            && !self.context.config.exec_remote
        {
            let refusal = "exec tasks submitted over the network are refused on this node (exec.remote = false); set exec.remote = true in its config to allow them";
            // In a batch, which spec: a script's line 40 of 80 is otherwise a search.
            let message = match request.specs.iter().nth(index) {
                Some(text) if request.specs.len() > 1 => format!(
                    "spec #{} ({:?}): {refusal}",
                    index + 1,
                    crate::runtime::units::cut_to_width(text, 60)
                ),
                _ => refusal.to_string(),
            };
            return self.send(
                stream,
                Response::Error(RemoteError {
                    kind: RemoteErrorKind::ExecRefused {
                        index: u32::try_from(index).ok(),
                    },
                    message,
                }),
                permit,
            );
        }
        let total: usize = submissions.iter().map(|s| s.tasks() as usize).sum();
        if request.wait && self.waiting_for.len() + total > self.context.config.max_waiting {
            let message = format!(
                "this connection already waits for {} tasks; waiting for {total} more would pass net.max_waiting ({}), so nothing was submitted: wait for fewer at once (split the batch), submit without --wait, or raise net.max_waiting on the node",
                self.waiting_for.len(),
                self.context.config.max_waiting
            );
            let error = RemoteError {
                kind: RemoteErrorKind::Invalid,
                message,
            };
            return self.send(stream, Response::Error(error), permit);
        }
        let watcher = request.wait.then_some(&self.completions);
        let outcome = node.submit_batch_pending(submissions, request.idempotency_key, watcher);
        match outcome {
            Err(BatchError { submitted, error }) => {
                if request.wait && !submitted.is_empty() {
                    // Those that were submitted still finish; nobody waits for them.
                    tracing::debug!(count = submitted.len(), "a wait batch stopped part-way");
                }
                // The error tells how many were submitted: they must be durable first.
                let ticket = if submitted.is_empty() {
                    Ticket::ready()
                } else {
                    node.log_ticket()
                };
                let response = Response::Error(submit_error(error, &submitted));
                self.send_when_durable(stream, ticket, response, permit);
            }
            Ok(pending) if !request.wait => {
                let outcome = pending.outcome;
                let response = Response::Submitted {
                    ids: outcome.ids,
                    duplicate: outcome.duplicate,
                };
                self.send_when_durable(stream, pending.ticket, response, permit);
            }
            Ok(pending) => {
                let durable = matches!(pending.ticket.is_durable(), Ok(true));
                if !durable {
                    let ticket = pending.ticket.clone();
                    self.durables
                        .spawn(async move { (stream, ticket.durable().await) });
                }
                let outcome = pending.outcome;
                let count = outcome.ids.len();
                // One task that finished inside its submit (echo does) and is durable: with
                // its outcome first in the queue, the answer goes out without the wait's
                // bookkeeping. Otherwise (queued behind another wait's, or still running)
                // it is waited for as usual.
                if let ([id], true, false) = (outcome.ids.as_slice(), durable, outcome.duplicate)
                    && let Some(info) = self.completed.try_recv_task(*id)
                {
                    let response = Response::Finished {
                        tasks: vec![info],
                        duplicate: false,
                    };
                    return self.send(stream, response, permit);
                }
                let report = request.report_ids.then(|| outcome.ids.clone());
                for (index, id) in outcome.ids.iter().enumerate() {
                    self.waiting_for.insert(*id, (stream, index));
                }
                let serial = self.next_wait_serial;
                self.next_wait_serial += 1;
                let mut polls = Vec::new();
                let late = outcome
                    .duplicate
                    .then(|| node.watch_earlier(&outcome.ids, &self.completions));
                if outcome.duplicate {
                    // The earlier submission was not watched by us: poll those tasks.
                    for (index, id) in outcome.ids.into_iter().enumerate() {
                        let node = node.clone();
                        polls.push(self.polls.spawn(async move {
                            (stream, serial, index, poll_until_finished(&node, id).await)
                        }));
                    }
                }
                self.waits.insert(
                    stream,
                    PendingWait {
                        tasks: vec![None; count],
                        remaining: count,
                        duplicate: outcome.duplicate,
                        durable,
                        permit,
                        serial,
                        polls,
                        _late: late,
                        report,
                        output_bytes: 0,
                        outputs_cut: false,
                    },
                );
                if durable {
                    self.report_accepted(stream);
                }
            }
        }
    }

    /// Tells a waiting client its tasks' ids once they are durable, if it asked and they
    /// have not all finished (then the answer, which names them, follows at once).
    fn report_accepted(&mut self, stream: u32) {
        let Some(wait) = self.waits.get_mut(&stream) else {
            return;
        };
        if wait.remaining > 0
            && let Some(ids) = wait.report.take()
        {
            self.encode(Outgoing::Item(stream, StreamItem::Accepted { ids }));
        }
    }

    fn completed_task(&mut self, info: TaskInfo) {
        if let Some((stream, index)) = self.waiting_for.get(&info.id).copied() {
            self.resolve(stream, index, info);
        }
    }

    /// A task of an earlier submission (found through its idempotency key) finished, or
    /// turned out to be unknown: then its outcome cannot be told, and the wait ends with
    /// an error that says so rather than an outcome made up for it.
    fn polled(
        &mut self,
        stream: u32,
        serial: u64,
        index: usize,
        result: Result<TaskInfo, LookupError>,
    ) {
        // A poll of a wait that ended early, its stream id since taken by another request.
        if self
            .waits
            .get(&stream)
            .is_none_or(|wait| wait.serial != serial)
        {
            return;
        }
        let error = match result {
            Ok(info) => return self.resolve(stream, index, info),
            Err(error) => error,
        };
        // Gone from the history, but perhaps sent by the watch before it left: those sent
        // are queued ahead of this answer.
        while let Some(info) = self.completed.try_recv() {
            self.completed_task(info);
        }
        if self
            .waits
            .get(&stream)
            .is_none_or(|wait| wait.serial != serial || wait.tasks[index].is_some())
        {
            return;
        }
        let Some(wait) = self.waits.remove(&stream) else {
            return;
        };
        for poll in &wait.polls {
            poll.abort();
        }
        self.waiting_for.retain(|_, (waiter, _)| *waiter != stream);
        let (tasks, their) = if wait.tasks.len() == 1 {
            ("task was", "its")
        } else {
            ("tasks were", "their")
        };
        let response = Response::Error(RemoteError {
            kind: RemoteErrorKind::NotFound,
            message: format!(
                "this idempotency key's {tasks} submitted earlier, and {their} outcome cannot be told: {error}; `goliath submit` without --wait returns the key's ids"
            ),
        });
        self.send(stream, response, wait.permit);
    }

    fn resolve(&mut self, stream: u32, index: usize, info: TaskInfo) {
        self.waiting_for.remove(&info.id);
        let Some(wait) = self.waits.get_mut(&stream) else {
            return;
        };
        if wait.hold(index, info) {
            wait.remaining -= 1;
        }
        if wait.remaining == 0 && wait.durable {
            self.answer_wait(stream);
        }
    }

    fn watch(&mut self, stream: u32, request: WatchRequest, permit: OwnedSemaphorePermit) {
        let node = self.context.node.clone();
        let outgoing = self.outgoing.clone();
        let handle = tokio::spawn(async move {
            let mut events = request.events.then(|| node.subscribe());
            let period = request
                .snapshot_every_ms
                .map(|ms| Duration::from_millis(u64::from(ms.max(100))));
            // After a stall (the node stopped, or this thread busy), one snapshot, not one
            // per missed period, all alike.
            let mut ticker = period.map(|period| {
                let mut ticker = tokio::time::interval(period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                ticker
            });
            let limit = request.task_limit.min(10_000) as usize;
            loop {
                let item = tokio::select! {
                    event = async { match events.as_mut() { Some(events) => events.recv().await, None => std::future::pending().await } } => {
                        match event {
                            Ok(event) => StreamItem::Event(WatchedEvent::new(event, node.task_with_output_up_to(event.id, 0).ok())),
                            Err(EventError::Lagged(skipped)) => StreamItem::Lagged { skipped },
                            // The node is stopping (its events end just before it tells
                            // every connection so): no end of stream, which the client
                            // could not tell from any other; the farewell says why.
                            Err(EventError::Closed) => std::future::pending().await,
                        }
                    }
                    _ = async { match ticker.as_mut() { Some(ticker) => { ticker.tick().await; } None => std::future::pending().await } } => {
                        let node = node.clone();
                        let Ok(snapshot) = tokio::task::spawn_blocking(move || node.snapshot(limit)).await else { break };
                        // Only when there is room: a slow watcher skips snapshots.
                        match outgoing.try_send(Outgoing::Item(stream, StreamItem::Snapshot(Box::new(snapshot)))) {
                            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => continue,
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                };
                if outgoing.send(Outgoing::Item(stream, item)).await.is_err() {
                    return;
                }
            }
            let _ = outgoing.send(Outgoing::End(stream, Some(permit))).await;
        });
        self.watches.insert(stream, handle);
    }
}

/// Waits for a task found through an idempotency key (not watched by this connection);
/// an error once the node no longer knows it.
async fn poll_until_finished(node: &Node, id: TaskId) -> Result<TaskInfo, LookupError> {
    // Each look copies no output; the whole task is taken once, when it has finished.
    // Those still running when the wait began come through the node's watch too: this finds
    // the others, and a task the node no longer knows.
    while !node.task_with_output_up_to(id, 0)?.state.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.task(id)
}

fn internal(message: &str) -> Response {
    Response::Error(RemoteError {
        kind: RemoteErrorKind::Invalid,
        message: message.to_string(),
    })
}

fn lookup_error(error: LookupError) -> RemoteError {
    RemoteError {
        kind: RemoteErrorKind::NotFound,
        message: error.to_string(),
    }
}

fn submit_error(error: SubmitError, submitted: &[TaskId]) -> RemoteError {
    let suffix = if submitted.is_empty() {
        // Busy is worth retrying: say that a retry submits nothing twice.
        match error {
            SubmitError::Busy(_) => " (nothing of it was submitted)".to_string(),
            _ => String::new(),
        }
    } else {
        format!(" ({} of the batch were submitted first)", submitted.len())
    };
    let kind = match &error {
        SubmitError::Busy(busy) => RemoteErrorKind::Busy {
            in_use: busy.in_use as u64,
            capacity: busy.capacity as u64,
        },
        SubmitError::ShuttingDown => RemoteErrorKind::ShuttingDown,
        SubmitError::ExecDisabled => RemoteErrorKind::ExecRefused { index: None },
        SubmitError::Invalid(_) => RemoteErrorKind::Invalid,
        SubmitError::Storage(_) => RemoteErrorKind::Storage,
    };
    RemoteError {
        kind,
        message: format!("{error}{suffix}"),
    }
}

fn cancel_error(error: &CancelError) -> RemoteError {
    RemoteError {
        kind: match error {
            CancelError::Lookup(_) => RemoteErrorKind::NotFound,
            CancelError::NotDurable(..) => RemoteErrorKind::Storage,
            CancelError::ShuttingDown(_) => RemoteErrorKind::ShuttingDown,
        },
        message: error.to_string(),
    }
}

fn storage_error(error: &DurabilityError) -> RemoteError {
    RemoteError {
        kind: RemoteErrorKind::Storage,
        message: format!("{error}; {}", error.fate_note()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::task::{ProcessOutput, TaskOutput, TaskState, limits::LISTED_OUTPUT_MAX};

    fn finished_exec(id: u64, stdout_bytes: usize) -> TaskInfo {
        TaskInfo {
            id: TaskId(id),
            spec: "exec -- tool".into(),
            kind: "exec".into(),
            state: TaskState::Succeeded,
            worker: None,
            attempt: 1,
            submitted_unix_us: 1,
            started_unix_us: Some(2),
            finished_unix_us: Some(3),
            run_us: 0,
            output: Some(TaskOutput::Process(Box::new(ProcessOutput {
                exit_code: Some(0),
                stdout: "a".repeat(stdout_bytes),
                ..ProcessOutput::default()
            }))),
            error: None,
        }
    }

    #[test]
    fn a_flood_of_rejected_connections_is_counted_not_logged_line_by_line() {
        let start = std::time::Instant::now();
        let mut log = rejection_budget();
        let lines: Vec<Line> = (0..1000).map(|_| log.admit(start)).collect();
        let logged: Vec<&Line> = lines.iter().filter(|line| **line != Line::Count).collect();
        assert_eq!(logged.len(), REJECTIONS_LOGGED as usize);
        assert_eq!(
            *logged[logged.len() - 1],
            Line::Log {
                unlogged_before: 0,
                last: true
            }
        );
        // The next window's first line says how many went unlogged (unless the line at the
        // window's end said so already: then nobody says them twice).
        let mut said_at_the_end = log.clone();
        assert_eq!(
            said_at_the_end.take_unlogged(),
            1000 - u64::from(REJECTIONS_LOGGED)
        );
        assert_eq!(said_at_the_end.take_unlogged(), 0);
        let later = start + REJECTION_WINDOW;
        assert_eq!(
            log.admit(later),
            Line::Log {
                unlogged_before: 1000 - u64::from(REJECTIONS_LOGGED),
                last: false
            }
        );
        assert_eq!(
            log.admit(later),
            Line::Log {
                unlogged_before: 0,
                last: false
            }
        );
    }

    #[test]
    fn a_wait_holds_whole_outputs_up_to_its_budget_then_cuts_every_one() {
        let permit = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a permit");
        let mut wait = PendingWait {
            tasks: vec![None; 3],
            remaining: 3,
            duplicate: false,
            durable: true,
            permit,
            serial: 1,
            polls: Vec::new(),
            _late: None,
            report: None,
            output_bytes: 0,
            outputs_cut: false,
        };
        let half = WAIT_OUTPUT_BUDGET / 2 + 1;
        assert!(wait.hold(0, finished_exec(1, half)));
        assert!(!wait.outputs_cut, "within the budget: whole");
        assert_eq!(wait.output_bytes, half);
        assert!(!wait.hold(0, finished_exec(1, 1)), "a place is filled once");
        assert!(wait.hold(1, finished_exec(2, half)));
        assert!(wait.hold(2, finished_exec(3, half)));
        assert!(wait.outputs_cut);
        assert_eq!(wait.output_bytes, 3 * LISTED_OUTPUT_MAX);
        for task in wait.tasks.iter().flatten() {
            let Some(TaskOutput::Process(process)) = &task.output else {
                panic!("an exec outcome");
            };
            assert_eq!(process.stdout.len(), LISTED_OUTPUT_MAX);
            assert_eq!(process.stdout_truncated, (half - LISTED_OUTPUT_MAX) as u64);
            assert!(
                process.stdout.capacity() < 2 * LISTED_OUTPUT_MAX,
                "memory given back"
            );
        }
    }
}
