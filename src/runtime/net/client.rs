//! The protocol client: one TCP connection, many requests in flight, used by the CLI, the
//! console's `--connect`, tests and benchmarks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};

use super::frame::{self, FrameError, FrameReader, FrameType, PREAMBLE_LEN};
use super::messages::{
    Hello, RemoteError, Request, Response, StreamItem, SubmitRequest, WatchRequest, Welcome,
};
use crate::runtime::lock;
use crate::runtime::task::TaskId;

/// Why a request could not be made or answered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// No TCP connection.
    #[error(
        "cannot connect to a goliath node at {address}: {reason}. {advice}{}",
        start_one_at(address, advice)
    )]
    Connect {
        /// Where.
        address: String,
        /// The OS's reason.
        reason: String,
        /// What to check: the host name when it did not resolve, else whether a node runs.
        advice: &'static str,
    },
    /// The node refused the handshake (wrong cluster, too many connections, …).
    #[error("the node at {address} refused the connection: {reason}")]
    Refused {
        /// Where.
        address: String,
        /// What the node said.
        reason: String,
    },
    /// The node has as many connections as it takes: try again later.
    #[error("the node at {address} is busy: {reason}")]
    Busy {
        /// Where.
        address: String,
        /// What the node said.
        reason: String,
    },
    /// The request is larger than the node takes in one frame.
    #[error("{reason}")]
    TooLarge {
        /// Sizes and what to do.
        reason: String,
    },
    /// The node speaks another protocol version, or is not a goliath node.
    #[error("{address} speaks another protocol: {reason}")]
    Protocol {
        /// Where.
        address: String,
        /// What differs.
        reason: String,
    },
    /// The node accepted the connection but did not answer the handshake in time.
    #[error(
        "the node at {address} accepted the connection but did not answer within {waited:?}: is it stopped (SIGSTOP), overloaded or out of file descriptors (its log says so), or is something else listening there?"
    )]
    Unresponsive {
        /// Where.
        address: String,
        /// How long the client waited.
        waited: std::time::Duration,
    },
    /// The connection ended.
    #[error("connection to the node closed: {reason}")]
    Closed {
        /// Why.
        reason: String,
    },
    /// The node answered with an error.
    #[error("{0}")]
    Remote(#[from] RemoteError),
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Cluster name presented in the handshake.
    pub cluster: String,
    /// Client name for the node's logs.
    pub client: String,
    /// Largest frame accepted.
    pub max_frame: u32,
    /// Limit for connecting and the handshake.
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            cluster: "goliath".to_string(),
            client: format!("goliath-client {}", env!("CARGO_PKG_VERSION")),
            max_frame: 16 << 20,
            timeout: Duration::from_secs(5),
        }
    }
}

enum Waiter {
    Once(oneshot::Sender<Result<Response, ClientError>>),
    Stream(mpsc::Sender<Result<StreamItem, ClientError>>),
    /// A `wait` submission that asked for its ids ahead of the answer.
    Reporting {
        accepted: Option<oneshot::Sender<Vec<TaskId>>>,
        answer: oneshot::Sender<Result<Response, ClientError>>,
    },
}

#[derive(Default)]
struct Pending {
    waiters: HashMap<u32, Waiter>,
    closed: Option<String>,
}

/// Owned by the `Client` handles (and open watch streams); dropping the last one drops the
/// write half, which closes the connection. The read task holds only `pending`.
struct Inner {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Arc<Mutex<Pending>>,
    next_stream: AtomicU32,
    max_frame: u32,
}

/// A connection to a node.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    welcome: Welcome,
    address: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("node", &self.welcome.node)
            .finish()
    }
}

/// The advice of a refused or unanswered connection: whether a node runs there (the
/// message then says how to start one at that address).
pub const NO_NODE: &str = "Is a node running there?";

/// After [`NO_NODE`], how to start a node at `address`: `goliath node` alone listens on the
/// config's `net.listen`, which need not be the address tried (`--node`, `--connect`).
fn start_one_at(address: &str, advice: &str) -> String {
    if advice == NO_NODE {
        format!(" Start one there with `goliath node --listen {address}`")
    } else {
        String::new()
    }
}

impl Client {
    /// Connects and completes the handshake.
    pub async fn connect(address: &str, options: &ConnectOptions) -> Result<Client, ClientError> {
        let connect_error = |reason: String, advice: &'static str| ClientError::Connect {
            address: address.to_string(),
            reason,
            advice,
        };
        // Resolved apart from connecting, so a name that does not resolve is not blamed on
        // a missing node.
        let resolved: Vec<std::net::SocketAddr> =
            match tokio::time::timeout(options.timeout, tokio::net::lookup_host(address)).await {
                Err(_) => {
                    return Err(connect_error(
                        format!("the host name did not resolve within {:?}", options.timeout),
                        "Check the name and the DNS, or give an IP address",
                    ));
                }
                Ok(Err(error)) => {
                    return Err(connect_error(
                        format!("cannot resolve the host name: {error}"),
                        "Check the name, or give an IP address",
                    ));
                }
                Ok(Ok(addresses)) => addresses.collect(),
            };
        let mut stream = match tokio::time::timeout(
            options.timeout,
            TcpStream::connect(&resolved[..]),
        )
        .await
        {
            Err(_) => {
                return Err(connect_error(
                    format!("no answer within {:?}", options.timeout),
                    NO_NODE,
                ));
            }
            Ok(Err(error)) => {
                // Refused where this host has a UDP socket on that port: most likely a
                // node's gossip port, given for its protocol port.
                let gossip_port = error.kind() == std::io::ErrorKind::ConnectionRefused
                    && resolved.iter().any(|address| {
                        address.ip().is_loopback()
                            && crate::runtime::sys::udp_port_in_use(address.port())
                    });
                let advice = if gossip_port {
                    "This host has a UDP socket on that port, maybe a node's gossip port: a node's protocol address is its net.listen (127.0.0.1:7420 by default), which `goliath members` lists as PROTOCOL"
                } else {
                    NO_NODE
                };
                return Err(connect_error(error.to_string(), advice));
            }
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        let mut reader = FrameReader::new(options.max_frame);
        let welcome = match tokio::time::timeout(
            options.timeout,
            handshake(&mut stream, &mut reader, options, address),
        )
        .await
        {
            Err(_) => {
                return Err(ClientError::Unresponsive {
                    address: address.to_string(),
                    waited: options.timeout,
                });
            }
            Ok(result) => result?,
        };
        let (read_half, write_half) = stream.into_split();
        let inner = Arc::new(Inner {
            writer: tokio::sync::Mutex::new(write_half),
            pending: Arc::new(Mutex::new(Pending::default())),
            next_stream: AtomicU32::new(1),
            // What the node takes, if less than what this client would send.
            max_frame: options.max_frame.min(welcome.max_frame.max(1)),
        });
        tokio::spawn(read_loop(read_half, reader, inner.pending.clone()));
        Ok(Client {
            inner,
            welcome,
            address: address.to_string(),
        })
    }

    /// What the node said in the handshake.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The address connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn next_stream(&self) -> u32 {
        loop {
            let stream = self.inner.next_stream.fetch_add(1, Ordering::Relaxed);
            if stream != 0 {
                return stream;
            }
        }
    }

    async fn send_request(
        &self,
        stream: u32,
        request: &Request,
        waiter: Waiter,
    ) -> Result<(), ClientError> {
        {
            let mut pending = lock(&self.inner.pending);
            if let Some(reason) = &pending.closed {
                return Err(ClientError::Closed {
                    reason: reason.clone(),
                });
            }
            pending.waiters.insert(stream, waiter);
        }
        let mut bytes = Vec::new();
        if let Err(error) = frame::write_message(
            &mut bytes,
            FrameType::Request,
            stream,
            request,
            self.inner.max_frame,
        ) {
            lock(&self.inner.pending).waiters.remove(&stream);
            if let frame::MessageError::Frame(FrameError::TooLarge { length, max }) = error {
                return Err(ClientError::TooLarge {
                    reason: format!(
                        "this request takes {length} bytes, more than the {max} the node takes in one frame (its net.max_frame); send fewer or shorter specs at a time"
                    ),
                });
            }
            return Err(ClientError::Closed {
                reason: format!("request too large to send: {error}"),
            });
        }
        let mut writer = self.inner.writer.lock().await;
        if let Err(error) = writer.write_all(&bytes).await {
            lock(&self.inner.pending).waiters.remove(&stream);
            return Err(ClientError::Closed {
                reason: error.to_string(),
            });
        }
        Ok(())
    }

    /// Sends a request and waits for its response; an error response becomes
    /// [`ClientError::Remote`].
    pub async fn request(&self, request: Request) -> Result<Response, ClientError> {
        let stream = self.next_stream();
        let (sender, receiver) = oneshot::channel();
        self.send_request(stream, &request, Waiter::Once(sender))
            .await?;
        answer_of(receiver.await)
    }

    /// Submits and waits for the tasks to finish, like [`Client::request`] with
    /// [`SubmitRequest::wait`], and asks for the ids ahead of the answer: they arrive on
    /// `accepted` once the node has made the tasks durable (unless the tasks finished first;
    /// then only the answer comes). Whoever stops waiting early can say which tasks still run.
    pub async fn submit_and_wait(
        &self,
        request: SubmitRequest,
        accepted: oneshot::Sender<Vec<TaskId>>,
    ) -> Result<Response, ClientError> {
        let request = Request::Submit(SubmitRequest {
            wait: true,
            report_ids: true,
            ..request
        });
        let stream = self.next_stream();
        let (answer, receiver) = oneshot::channel();
        let waiter = Waiter::Reporting {
            accepted: Some(accepted),
            answer,
        };
        self.send_request(stream, &request, waiter).await?;
        answer_of(receiver.await)
    }

    /// Opens a watch stream.
    pub async fn watch(&self, request: WatchRequest) -> Result<WatchStream, ClientError> {
        let stream = self.next_stream();
        let (sender, receiver) = mpsc::channel(1024);
        self.send_request(stream, &Request::Watch(request), Waiter::Stream(sender))
            .await?;
        Ok(WatchStream {
            receiver,
            stream,
            inner: self.inner.clone(),
        })
    }
}

/// What a request's answer channel gave: an error response becomes
/// [`ClientError::Remote`], a dropped channel a closed connection.
fn answer_of(
    received: Result<Result<Response, ClientError>, oneshot::error::RecvError>,
) -> Result<Response, ClientError> {
    match received {
        Ok(Ok(Response::Error(error))) => Err(ClientError::Remote(error)),
        Ok(result) => result,
        Err(_) => Err(ClientError::Closed {
            reason: "the connection ended".into(),
        }),
    }
}

async fn handshake(
    stream: &mut TcpStream,
    reader: &mut FrameReader,
    options: &ConnectOptions,
    address: &str,
) -> Result<Welcome, ClientError> {
    let hello = Hello {
        client: options.client.clone(),
        cluster: options.cluster.clone(),
    };
    let bytes = frame::opening(&hello, options.max_frame).map_err(|e| ClientError::Protocol {
        address: address.to_string(),
        reason: e.to_string(),
    })?;
    let closed = |e: std::io::Error| ClientError::Closed {
        reason: e.to_string(),
    };
    stream.write_all(&bytes).await.map_err(closed)?;
    let mut preamble = [0u8; PREAMBLE_LEN];
    stream
        .read_exact(&mut preamble)
        .await
        .map_err(|e| match e.kind() {
            // Closed or reset before it said anything: a node that died or dropped the
            // connection (whatever listens there, it gave no sign of another protocol).
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => ClientError::Closed {
                reason: format!(
                    "the node at {address} closed the connection before answering the handshake ({e})"
                ),
            },
            _ => ClientError::Protocol {
                address: address.to_string(),
                reason: format!("no goliath handshake came back ({e})"),
            },
        })?;
    let version_error = frame::check_preamble(&preamble).err();
    if let Some(FrameError::BadMagic(_)) = version_error {
        // Another kind of server (HTTP, SSH, …): what follows is not in frames either.
        return Err(ClientError::Protocol {
            address: address.to_string(),
            reason: format!(
                "it is not a goliath node (it began with \"{}\"); check the address and port",
                crate::runtime::units::printable(&String::from_utf8_lossy(&preamble), false)
            ),
        });
    }
    loop {
        let next = reader.next_frame().map_err(|e| ClientError::Protocol {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
        if let Some((header, payload)) = next {
            return match header.frame_type {
                FrameType::Error => {
                    let reason = String::from_utf8_lossy(payload).into_owned();
                    Err(if reason.starts_with(frame::BUSY_REFUSAL) {
                        ClientError::Busy {
                            address: address.to_string(),
                            reason,
                        }
                    } else {
                        ClientError::Refused {
                            address: address.to_string(),
                            reason,
                        }
                    })
                }
                FrameType::Welcome if version_error.is_none() => {
                    crate::codec::decode::<Welcome>("welcome", payload).map_err(|e| {
                        ClientError::Protocol {
                            address: address.to_string(),
                            reason: e.to_string(),
                        }
                    })
                }
                _ => Err(ClientError::Protocol {
                    address: address.to_string(),
                    reason: version_error
                        .map(|e: FrameError| e.to_string())
                        .unwrap_or_else(|| format!("unexpected {:?} frame", header.frame_type)),
                }),
            };
        }
        let spare = reader.spare().map_err(|e| ClientError::Protocol {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
        let count = stream.read(spare).await.map_err(closed)?;
        if count == 0 {
            return Err(ClientError::Closed {
                reason: "the node closed the connection during the handshake".into(),
            });
        }
        reader.filled(count);
    }
}

async fn read_loop(
    mut read_half: tokio::net::tcp::OwnedReadHalf,
    mut reader: FrameReader,
    pending: Arc<Mutex<Pending>>,
) {
    // Leading pieces of responses too large for one frame, by stream.
    let mut parts: HashMap<u32, Vec<u8>> = HashMap::new();
    let reason = loop {
        match reader.next_frame() {
            Err(error) => break format!("bad frame from the node: {error}"),
            Ok(Some((header, payload))) => {
                match header.frame_type {
                    FrameType::ResponsePart => {
                        let joined = parts.entry(header.stream).or_default();
                        if joined.len() + payload.len() > frame::MAX_RESPONSE {
                            break format!(
                                "the node sent an answer larger than {} bytes",
                                frame::MAX_RESPONSE
                            );
                        }
                        joined.extend_from_slice(payload);
                    }
                    FrameType::Response => {
                        let response = match parts.remove(&header.stream) {
                            Some(mut joined)
                                if joined.len() + payload.len() <= frame::MAX_RESPONSE =>
                            {
                                joined.extend_from_slice(payload);
                                crate::codec::decode_large::<Response>("response", &joined)
                            }
                            Some(_) => {
                                break format!(
                                    "the node sent an answer larger than {} bytes",
                                    frame::MAX_RESPONSE
                                );
                            }
                            None => crate::codec::decode_large::<Response>("response", payload),
                        };
                        let waiter = lock(&pending).waiters.remove(&header.stream);
                        if let Some(
                            Waiter::Once(sender) | Waiter::Reporting { answer: sender, .. },
                        ) = waiter
                        {
                            let _ = sender.send(response.map_err(|e| ClientError::Closed {
                                reason: e.to_string(),
                            }));
                        }
                    }
                    FrameType::StreamItem => {
                        let item = crate::codec::decode_large::<StreamItem>("stream item", payload)
                            .map_err(|e| ClientError::Closed {
                                reason: e.to_string(),
                            });
                        let sender = match lock(&pending).waiters.get_mut(&header.stream) {
                            Some(Waiter::Stream(sender)) => Some(sender.clone()),
                            Some(Waiter::Reporting { accepted, .. }) => {
                                if let (Ok(StreamItem::Accepted { ids }), Some(accepted)) =
                                    (item, accepted.take())
                                {
                                    let _ = accepted.send(ids);
                                }
                                continue;
                            }
                            _ => None,
                        };
                        if let Some(sender) = sender
                            && sender.send(item).await.is_err()
                        {
                            lock(&pending).waiters.remove(&header.stream);
                        }
                    }
                    FrameType::StreamEnd => {
                        lock(&pending).waiters.remove(&header.stream);
                    }
                    FrameType::Error => break String::from_utf8_lossy(payload).into_owned(),
                    other => break format!("unexpected {other:?} frame from the node"),
                }
                continue;
            }
            Ok(None) => {}
        }
        let spare = match reader.spare() {
            Ok(spare) => spare,
            Err(error) => break format!("bad frame from the node: {error}"),
        };
        match read_half.read(spare).await {
            Ok(0) => break "the node closed the connection".to_string(),
            Ok(count) => reader.filled(count),
            Err(error) => break error.to_string(),
        }
    };
    let waiters = {
        let mut pending = lock(&pending);
        pending.closed = Some(reason.clone());
        std::mem::take(&mut pending.waiters)
    };
    for (_, waiter) in waiters {
        match waiter {
            Waiter::Once(sender) | Waiter::Reporting { answer: sender, .. } => {
                let _ = sender.send(Err(ClientError::Closed {
                    reason: reason.clone(),
                }));
            }
            Waiter::Stream(sender) => {
                let _ = sender.try_send(Err(ClientError::Closed {
                    reason: reason.clone(),
                }));
            }
        }
    }
}

/// Items of a watch; dropping it asks the node to stop the stream.
pub struct WatchStream {
    receiver: mpsc::Receiver<Result<StreamItem, ClientError>>,
    stream: u32,
    inner: Arc<Inner>,
}

impl WatchStream {
    /// The next item; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Result<StreamItem, ClientError>> {
        self.receiver.recv().await
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        lock(&self.inner.pending).waiters.remove(&self.stream);
        let inner = self.inner.clone();
        let stream = self.stream;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut bytes = Vec::new();
                frame::write_frame(&mut bytes, FrameType::CancelStream, stream, &[]);
                let _ = inner.writer.lock().await.write_all(&bytes).await;
            });
        }
    }
}
