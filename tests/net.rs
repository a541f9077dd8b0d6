//! The protocol server and client on real loopback sockets: the handshake, every kind of bad
//! input, backpressure, multiplexing, and the requests the CLI makes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use goliath::config::Config;
use goliath::runtime::net::client::ConnectOptions;
use goliath::runtime::net::frame::{self, FrameReader, FrameType};
use goliath::runtime::net::{
    CancelOutcomeWire, Client, ClientError, RemoteErrorKind, Request, Response, Server,
    ServerConfig, StreamItem, SubmitRequest, WatchRequest,
};
use goliath::runtime::{Node, TaskId, TaskOutput, TaskQuery, TaskState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Fixture {
    node: Arc<Node>,
    server: Server,
    runtime: tokio::runtime::Runtime,
}

impl Fixture {
    fn new(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = common::config(2, 1 << 14);
        config.net.listen = "127.0.0.1:0".into();
        adjust(&mut config);
        let server_config = ServerConfig::from_config(&config).expect("valid");
        let node = Arc::new(Node::start(config).expect("node starts"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime
            .block_on(Server::start(node.clone(), server_config))
            .expect("listens");
        Self {
            node,
            server,
            runtime,
        }
    }

    fn address(&self) -> String {
        self.server.local_addr().to_string()
    }

    fn client(&self) -> Client {
        let address = self.address();
        self.runtime
            .block_on(Client::connect(&address, &ConnectOptions::default()))
            .expect("connects")
    }

    fn request(&self, client: &Client, request: Request) -> Result<Response, ClientError> {
        self.runtime.block_on(client.request(request))
    }

    fn submit_wait(&self, client: &Client, specs: &[&str]) -> Vec<goliath::runtime::TaskInfo> {
        let request = Request::Submit(SubmitRequest {
            specs: specs.iter().map(|s| s.to_string()).collect(),
            idempotency_key: None,
            wait: true,
            report_ids: false,
        });
        match self.request(client, request) {
            Ok(Response::Finished { tasks, .. }) => tasks,
            other => panic!("submit --wait: {other:?}"),
        }
    }

    /// Sends raw bytes on a fresh connection and returns everything the node sends back
    /// until it closes the connection.
    fn raw_exchange(&self, bytes: &[u8]) -> Vec<u8> {
        self.exchange(bytes, true)
    }

    /// [`Fixture::raw_exchange`] with the client's side left open after the bytes: only the
    /// node can end the connection.
    fn raw_exchange_left_open(&self, bytes: &[u8]) -> Vec<u8> {
        self.exchange(bytes, false)
    }

    fn exchange(&self, bytes: &[u8], close_after: bool) -> Vec<u8> {
        let address = self.address();
        let bytes = bytes.to_vec();
        self.runtime.block_on(async move {
            let mut stream = TcpStream::connect(&address).await.expect("connects");
            stream.write_all(&bytes).await.expect("sends");
            if close_after {
                let _ = stream.shutdown().await;
            }
            let mut received = Vec::new();
            tokio::time::timeout(common::LIVENESS, stream.read_to_end(&mut received))
                .await
                .expect("node closes")
                .ok();
            received
        })
    }
}

/// The text of the first `Error` frame after the node's preamble.
fn error_text(received: &[u8]) -> String {
    assert!(
        received.len() >= frame::PREAMBLE_LEN,
        "node sent only {} bytes",
        received.len()
    );
    let mut reader = FrameReader::new(1 << 20);
    reader
        .push(&received[frame::PREAMBLE_LEN..])
        .expect("valid frames");
    while let Some((header, payload)) = reader.next_frame().expect("valid frames") {
        if header.frame_type == FrameType::Error {
            return String::from_utf8_lossy(payload).into_owned();
        }
    }
    panic!("no error frame in {received:?}");
}

fn handshake_bytes() -> Vec<u8> {
    let hello = goliath::runtime::net::Hello {
        client: "test".into(),
        cluster: "goliath".into(),
    };
    frame::opening(&hello, 1 << 20).expect("encodes")
}

fn assert_still_serving(fixture: &Fixture) {
    let client = fixture.client();
    let tasks = fixture.submit_wait(&client, &["fib 20"]);
    assert_eq!(tasks[0].output, Some(TaskOutput::Number(6765)));
}

#[test]
fn garbage_and_wrong_magic_get_an_error_and_the_node_keeps_serving() {
    let fixture = Fixture::new(|_| {});
    let http = fixture.raw_exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        error_text(&http).contains("not a goliath connection"),
        "{}",
        error_text(&http)
    );
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let garbage = fixture.raw_exchange(&noise);
    assert!(
        error_text(&garbage).contains("expected magic"),
        "{}",
        error_text(&garbage)
    );
    assert_still_serving(&fixture);
    assert_eq!(
        fixture
            .server
            .stats()
            .rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[test]
fn version_and_cluster_mismatches_name_both_sides() {
    let fixture = Fixture::new(|_| {});
    let mut other_version = handshake_bytes();
    // The version follows the magic, big-endian: one this build does not speak.
    let other = frame::PROTOCOL_VERSION + 1;
    other_version[4..6].copy_from_slice(&other.to_be_bytes());
    let text = error_text(&fixture.raw_exchange(&other_version));
    assert!(
        text.contains(&format!("version {}", frame::PROTOCOL_VERSION))
            && text.contains(&format!("version {other}")),
        "{text}"
    );

    let address = fixture.address();
    let options = ConnectOptions {
        cluster: "staging".into(),
        ..ConnectOptions::default()
    };
    let error = fixture
        .runtime
        .block_on(Client::connect(&address, &options))
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ClientError::Refused { .. }), "{message}");
    assert!(
        message.contains("\"goliath\"") && message.contains("\"staging\""),
        "{message}"
    );
}

#[test]
fn unknown_frame_type_undecodable_payload_and_huge_length_close_with_errors() {
    let fixture = Fixture::new(|_| {});
    let mut unknown = handshake_bytes();
    frame::write_frame(&mut unknown, FrameType::Request, 1, b"x");
    let at = unknown.len() - 13;
    unknown[at] = 99;
    assert!(error_text(&fixture.raw_exchange(&unknown)).contains("unknown frame type 99"));

    let mut undecodable = handshake_bytes();
    frame::write_frame(&mut undecodable, FrameType::Request, 5, &[0xff; 9]);
    let text = error_text(&fixture.raw_exchange(&undecodable));
    assert!(
        text.contains("stream 5") && text.contains("does not decode"),
        "{text}"
    );

    let mut huge = handshake_bytes();
    frame::write_header(&mut huge, FrameType::Request, 1, u32::MAX);
    let text = error_text(&fixture.raw_exchange(&huge));
    assert!(
        text.contains("4294967295") && text.contains("net.max_frame"),
        "{text}"
    );

    let mut from_client = handshake_bytes();
    frame::write_frame(&mut from_client, FrameType::Response, 1, b"");
    assert!(error_text(&fixture.raw_exchange(&from_client)).contains("unexpected Response frame"));
    assert_still_serving(&fixture);
}

#[test]
fn a_frame_cut_mid_way_is_rejected_and_others_are_served() {
    let fixture = Fixture::new(|_| {});
    let mut cut = handshake_bytes();
    let request: Request = Request::Status { task_limit: 5 };
    frame::write_message(&mut cut, FrameType::Request, 1, &request, 1 << 20).expect("encodes");
    cut.truncate(cut.len() - 3);
    let received = fixture.raw_exchange(&cut);
    assert!(received.len() >= frame::PREAMBLE_LEN, "welcome came back");
    assert_still_serving(&fixture);
    assert_eq!(
        fixture
            .server
            .stats()
            .rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "logged once as a rejection"
    );
}

#[test]
fn a_client_that_resets_its_connection_is_not_a_rejection() {
    let fixture = Fixture::new(|_| {});
    let stats = || fixture.server.stats();
    {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(fixture.address()).expect("connects");
        stream
            .write_all(&handshake_bytes())
            .expect("handshake sent");
        // The welcome arrives, then this end closes with it unread: the kernel resets the
        // connection instead of closing it, as for a client killed mid-exchange.
        let mut first = [0u8; 1];
        stream.peek(&mut first).expect("the welcome came");
    }
    common::eventually(|| {
        let open = stats().open.load(std::sync::atomic::Ordering::Relaxed);
        (open == 0).then_some(()).ok_or(format!("{open} open"))
    });
    assert_eq!(
        stats().rejected.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a client that went away was refused nothing"
    );
    assert_still_serving(&fixture);
}

#[test]
fn handshake_timeout_and_connection_limit() {
    let fixture = Fixture::new(|config| {
        config.net.handshake_timeout = Duration::from_millis(200);
        config.net.max_connections = 2;
    });
    let address = fixture.address();
    let silent = fixture.runtime.block_on(async move {
        // Connect and say nothing: the node gives up after the handshake timeout.
        let mut stream = TcpStream::connect(&address).await.expect("connects");
        let mut received = Vec::new();
        tokio::time::timeout(common::LIVENESS, stream.read_to_end(&mut received))
            .await
            .expect("node closes")
            .ok();
        received
    });
    assert!(
        error_text(&silent).contains("handshake not completed"),
        "{}",
        error_text(&silent)
    );
    let first = fixture.client();
    let second = fixture.client();
    let address = fixture.address();
    let third = fixture
        .runtime
        .block_on(Client::connect(&address, &ConnectOptions::default()))
        .unwrap_err();
    assert!(
        third.to_string().contains("too many connections"),
        "{third}"
    );
    assert!(
        matches!(third, ClientError::Busy { .. }),
        "a full node is busy (try again), not a refusal: {third:?}"
    );
    drop((first, second));
}

#[test]
fn a_client_that_stops_halfway_through_a_frame_is_disconnected() {
    let fixture = Fixture::new(|config| {
        config.net.stall_timeout = Duration::from_millis(300);
    });
    let mut bytes = handshake_bytes();
    // A request frame that says 1,000 bytes follow, of which 10 come.
    let mut whole = Vec::new();
    frame::write_frame(&mut whole, FrameType::Request, 1, &[0u8; 1000]);
    bytes.extend_from_slice(&whole[..whole.len() - 990]);
    // The write side stays open: only the node's timer can end this.
    let received = fixture.raw_exchange_left_open(&bytes);
    let text = error_text(&received);
    assert!(
        text.contains("did not send the rest") && text.contains("net.stall_timeout"),
        "{text}"
    );
    assert_still_serving(&fixture);
}

#[test]
fn a_client_that_reads_none_of_its_answers_is_disconnected_and_others_are_served() {
    let fixture = Fixture::new(|config| {
        config.net.stall_timeout = Duration::from_millis(500);
    });
    // Enough finished tasks that each list answer is large.
    let client = fixture.client();
    fixture.submit_wait(&client, &["fib 1 x2000"]);
    drop(client);
    let address = fixture.address();
    let stats = fixture.server.stats();
    let stalled = fixture.runtime.block_on(async move {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("small receive buffer");
        let mut stream = socket
            .connect(address.parse().expect("address"))
            .await
            .expect("connects");
        let mut bytes = handshake_bytes();
        for stream_id in 1..=200u32 {
            let request: Request = Request::Tasks(TaskQuery {
                state: None,
                limit: 10_000,
                before: None,
            });
            frame::write_message(&mut bytes, FrameType::Request, stream_id, &request, 1 << 20)
                .expect("encodes");
        }
        stream.write_all(&bytes).await.expect("sends");
        // Reads nothing from here on, and keeps the connection.
        stream
    });
    // The node gives up on it: its connection closes though the client never did.
    common::eventually(
        || match stats.rejected.load(std::sync::atomic::Ordering::Relaxed) {
            0 => Err("the stalled client was never disconnected".to_string()),
            _ => Ok(()),
        },
    );
    common::eventually(
        || match stats.open.load(std::sync::atomic::Ordering::Relaxed) {
            0 => Ok(()),
            open => Err(format!("{open} connections still open")),
        },
    );
    assert_still_serving(&fixture);
    drop(stalled);
}

#[test]
fn ten_thousand_connections_opened_and_dropped() {
    let fixture = Fixture::new(|_| {});
    let address = fixture.address();
    fixture.runtime.block_on(async {
        for round in 0..100 {
            let mut open = Vec::with_capacity(100);
            for _ in 0..100 {
                open.push(
                    TcpStream::connect(&address)
                        .await
                        .unwrap_or_else(|e| panic!("round {round}: {e}")),
                );
            }
            drop(open);
        }
    });
    assert_still_serving(&fixture);
    let stats = fixture.server.stats();
    assert!(stats.accepted.load(std::sync::atomic::Ordering::Relaxed) >= 10_000);
    common::eventually(
        || match stats.open.load(std::sync::atomic::Ordering::Relaxed) {
            0 => Ok(()),
            open => Err(format!("{open} connections were never cleaned up")),
        },
    );
}

#[test]
fn submit_cancel_churn_from_one_client_does_not_starve_others() {
    let fixture = Fixture::new(|_| {});
    let churner = fixture.client();
    let other = fixture.client();
    let churn = fixture.runtime.spawn(async move {
        for _ in 0..2_000 {
            let submitted = churner
                .request(Request::Submit(SubmitRequest {
                    specs: vec!["spin 1s".into()],
                    idempotency_key: None,
                    wait: false,
                    report_ids: false,
                }))
                .await;
            if let Ok(Response::Submitted { ids, .. }) = submitted {
                let _ = churner.request(Request::Cancel { ids }).await;
            }
        }
    });
    for _ in 0..50 {
        let tasks = fixture.submit_wait(&other, &["echo served"]);
        assert_eq!(tasks[0].output, Some(TaskOutput::Text("served".into())));
    }
    fixture.runtime.block_on(churn).expect("churn finished");
}

#[test]
fn many_requests_in_flight_are_answered_out_of_order() {
    let fixture = Fixture::new(|_| {});
    let client = fixture.client();
    let order = fixture.runtime.block_on(async {
        let slow = client.request(Request::Submit(SubmitRequest { specs: vec!["sleep 300ms".into()], idempotency_key: None, wait: true, report_ids: false }));
        let fast = client.request(Request::Status { task_limit: 0 });
        tokio::pin!(slow);
        tokio::select! {
            _ = &mut slow => "slow first",
            fast = fast => { assert!(matches!(fast, Ok(Response::Status(_)))); slow.await.expect("slow answered"); "fast first" }
        }
    });
    assert_eq!(order, "fast first");
}

#[test]
fn echo_waits_are_answered_at_once_beside_a_wait_still_running() {
    let fixture = Fixture::new(|_| {});
    let client = fixture.client();
    let wait_for = |spec: String| {
        Request::Submit(SubmitRequest {
            specs: vec![spec],
            idempotency_key: None,
            wait: true,
            report_ids: false,
        })
    };
    fixture.runtime.block_on(async {
        let slow = client.request(wait_for("sleep 2s".into()));
        tokio::pin!(slow);
        // Each echo finishes inside its submit and is answered at once, with its own
        // outcome, while the sleep's wait stays open on the same connection.
        for n in 0..20 {
            let answer = tokio::select! {
                answer = client.request(wait_for(format!("echo quick-{n}"))) => answer,
                slow = &mut slow => panic!("the sleep was answered before echo {n}: {slow:?}"),
            };
            match answer {
                Ok(Response::Finished {
                    tasks,
                    duplicate: false,
                }) => {
                    assert_eq!(tasks.len(), 1);
                    assert_eq!(
                        tasks[0].output,
                        Some(TaskOutput::Text(format!("quick-{n}").into()))
                    );
                }
                other => panic!("echo {n}: {other:?}"),
            }
        }
        match slow.await {
            Ok(Response::Finished { tasks, .. }) => {
                assert_eq!(tasks.len(), 1);
                assert_eq!(tasks[0].state, TaskState::Succeeded);
            }
            other => panic!("sleep: {other:?}"),
        }
    });
}

#[test]
fn every_copy_in_a_batch_has_its_own_text() {
    let fixture = Fixture::new(|_| {});
    let client = fixture.client();
    let specs = ["echo first x3", "echo second", "echo third x2"];
    let tasks = fixture.submit_wait(&client, &specs);
    let outputs: Vec<Option<TaskOutput>> = tasks.into_iter().map(|task| task.output).collect();
    let expected: Vec<Option<TaskOutput>> = ["first", "first", "first", "second", "third", "third"]
        .into_iter()
        .map(|text| Some(TaskOutput::Text(text.into())))
        .collect();
    assert_eq!(outputs, expected);
}

#[test]
fn submit_wait_cancel_task_tasks_and_status() {
    let fixture = Fixture::new(|_| {});
    let client = fixture.client();
    let tasks = fixture.submit_wait(&client, &["fib 10 x2", "echo hi", "spin 10ms timeout=1ms"]);
    let states: Vec<TaskState> = tasks.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        vec![
            TaskState::Succeeded,
            TaskState::Succeeded,
            TaskState::Succeeded,
            TaskState::TimedOut
        ]
    );
    let ids = match fixture.request(
        &client,
        Request::Submit(SubmitRequest {
            specs: vec!["spin 60s".into()],
            idempotency_key: None,
            wait: false,
            report_ids: false,
        }),
    ) {
        Ok(Response::Submitted {
            ids,
            duplicate: false,
        }) => ids,
        other => panic!("{other:?}"),
    };
    common::wait_running(&fixture.node, ids[0]);
    let cancelled = fixture.request(
        &client,
        Request::Cancel {
            ids: vec![ids[0], goliath::runtime::TaskId(999_999)],
        },
    );
    match cancelled {
        Ok(Response::Cancelled { results }) => {
            assert_eq!(results[0].outcome, CancelOutcomeWire::Requested);
            assert_eq!(results[1].outcome, CancelOutcomeWire::NotFound);
        }
        other => panic!("{other:?}"),
    }
    common::wait_finished(&fixture.node, ids[0]);
    match fixture.request(&client, Request::Task { id: ids[0] }) {
        Ok(Response::Task(info)) => assert_eq!(info.state, TaskState::Cancelled),
        other => panic!("{other:?}"),
    }
    match fixture.request(
        &client,
        Request::Tasks(TaskQuery {
            state: Some(TaskState::TimedOut),
            limit: 10,
            before: None,
        }),
    ) {
        Ok(Response::Tasks(list)) => assert_eq!(list.len(), 1),
        other => panic!("{other:?}"),
    }
    match fixture.request(&client, Request::Status { task_limit: 3 }) {
        Ok(Response::Status(snapshot)) => {
            assert_eq!(snapshot.tasks.len(), 3);
            assert_eq!(
                snapshot.node.listen.as_deref(),
                Some(fixture.address().as_str())
            );
        }
        other => panic!("{other:?}"),
    }
    let missing = fixture
        .request(
            &client,
            Request::Task {
                id: goliath::runtime::TaskId(999_999),
            },
        )
        .unwrap_err();
    assert!(
        matches!(missing, ClientError::Remote(ref e) if e.kind == RemoteErrorKind::NotFound),
        "{missing}"
    );
}

#[test]
fn bad_specs_busy_and_exec_refusal_are_remote_errors() {
    let fixture = Fixture::new(|config| config.arena.slots = 4);
    let client = fixture.client();
    let submit = |specs: &[&str]| {
        fixture.request(
            &client,
            Request::Submit(SubmitRequest {
                specs: specs.iter().map(|s| s.to_string()).collect(),
                idempotency_key: None,
                wait: false,
                report_ids: false,
            }),
        )
    };
    let bad = submit(&["fib 1", "spni 2s"]).unwrap_err();
    match bad {
        ClientError::Remote(error) => {
            assert_eq!(
                error.kind,
                RemoteErrorKind::BadSpec {
                    index: 1,
                    column: 1
                }
            );
            assert!(
                error.message.contains("did you mean 'spin'"),
                "{}",
                error.message
            );
        }
        other => panic!("{other}"),
    }
    let never = submit(&["sleep 60s x5"]).unwrap_err();
    assert!(
        matches!(never, ClientError::Remote(ref e) if e.kind == RemoteErrorKind::Invalid && e.message.contains("can never fit")),
        "a batch larger than the arena is not worth retrying: {never}"
    );
    let exec = submit(&["exec -- true"]).unwrap_err();
    assert!(
        matches!(exec, ClientError::Remote(ref e) if matches!(e.kind, RemoteErrorKind::ExecRefused { .. })),
        "{exec}"
    );
    assert!(exec.to_string().contains("exec.remote"), "{exec}");
    submit(&["sleep 60s x4"]).expect("fills the arena");
    let busy = submit(&["sleep 60s"]).unwrap_err();
    assert!(
        matches!(busy, ClientError::Remote(ref e) if matches!(e.kind, RemoteErrorKind::Busy { capacity: 4, .. })),
        "{busy}"
    );
    assert!(
        busy.to_string().contains("(nothing of it was submitted)"),
        "a retry submits nothing twice: {busy}"
    );

    let open = Fixture::new(|config| config.exec.remote = true);
    let client = open.client();
    let tasks = open.submit_wait(&client, &["exec -- echo remote"]);
    assert_eq!(tasks[0].state, TaskState::Succeeded);
}

#[test]
fn a_wait_on_a_key_whose_tasks_are_forgotten_says_so_and_makes_up_no_outcome() {
    // One worker: the history is kept per worker, and with two the first task could stay
    // in the ring of a worker the later ones never ran on.
    let fixture = Fixture::new(|config| {
        config.history.tasks = 4;
        config.scheduler.workers = goliath::config::WorkerCount::Fixed(1);
    });
    let client = fixture.client();
    let keyed = || fixture.request(&client, keyed_submit(&["fib 20"], "job-42", true));
    match keyed() {
        Ok(Response::Finished { tasks, duplicate }) => {
            assert!(!duplicate);
            assert_eq!(tasks[0].state, TaskState::Succeeded);
        }
        other => panic!("{other:?}"),
    }
    // Enough newer tasks to push it out of the history.
    match fixture.request(
        &client,
        Request::Submit(SubmitRequest {
            specs: vec!["fib 1 x40".into()],
            idempotency_key: None,
            wait: true,
            report_ids: false,
        }),
    ) {
        Ok(Response::Finished { tasks, .. }) => assert_eq!(tasks.len(), 40),
        other => panic!("{other:?}"),
    }
    match keyed() {
        Err(ClientError::Remote(error)) => {
            assert_eq!(error.kind, RemoteErrorKind::NotFound, "{error}");
            assert!(
                error.message.contains("outcome cannot be told"),
                "{}",
                error.message
            );
        }
        other => panic!("an outcome made up for a forgotten task: {other:?}"),
    }
}

/// A submit of `specs` under the idempotency key `key`.
fn keyed_submit(specs: &[&str], key: &str, wait: bool) -> Request {
    Request::Submit(SubmitRequest {
        specs: specs.iter().map(|s| s.to_string()).collect(),
        idempotency_key: Some(key.into()),
        wait,
        report_ids: false,
    })
}

#[test]
fn idempotency_key_returns_the_same_ids() {
    let fixture = Fixture::new(|_| {});
    let client = fixture.client();
    let submit =
        |wait: bool| fixture.request(&client, keyed_submit(&["fib 5 x3"], "batch-7", wait));
    let (first, duplicate) = match submit(false) {
        Ok(Response::Submitted { ids, duplicate }) => (ids, duplicate),
        other => panic!("{other:?}"),
    };
    assert!(!duplicate);
    match submit(false) {
        Ok(Response::Submitted { ids, duplicate }) => {
            assert!(duplicate);
            assert_eq!(ids, first);
        }
        other => panic!("{other:?}"),
    }
    match submit(true) {
        Ok(Response::Finished { tasks, duplicate }) => {
            assert!(duplicate);
            assert_eq!(tasks.iter().map(|t| t.id).collect::<Vec<_>>(), first);
            assert!(
                tasks
                    .iter()
                    .all(|t| t.output == Some(TaskOutput::Number(5)))
            );
        }
        other => panic!("{other:?}"),
    }
    // The same key for other work is refused, not answered with the first tasks.
    let reused = |specs: &[&str]| fixture.request(&client, keyed_submit(specs, "batch-7", false));
    for (specs, says) in [
        (
            &["fib 6 x3"][..],
            "3 tasks starting `fib 5` then, 3 tasks starting `fib 6` now",
        ),
        (
            &["fib 5 x2"][..],
            "3 tasks starting `fib 5` then, 2 tasks starting `fib 5` now",
        ),
        (
            &["fib 5 x4"][..],
            "3 tasks starting `fib 5` then, 4 tasks starting `fib 5` now",
        ),
        (
            // One task of the same spec: counted, so it does not read as the same work.
            &["fib 5"][..],
            "3 tasks starting `fib 5` then, 1 task (`fib 5`) now",
        ),
        (
            &["fib 5 x2", "fib 7"][..],
            "3 tasks starting `fib 5` then; now as many, the same first, other specs after it",
        ),
    ] {
        match reused(specs) {
            Ok(Response::Error(error)) => {
                assert_eq!(error.kind, RemoteErrorKind::Invalid, "{error:?}");
                assert!(
                    error.message.contains("batch-7")
                        && error.message.contains(says)
                        && error.message.contains("nothing was submitted"),
                    "{}",
                    error.message
                );
            }
            Err(ClientError::Remote(error)) => {
                assert_eq!(error.kind, RemoteErrorKind::Invalid, "{error:?}");
                assert!(error.message.contains(says), "{}", error.message);
            }
            other => panic!("{specs:?}: {other:?}"),
        }
    }
    // A key longer than a node keeps is refused (a client other than the CLI may send one).
    let long_key = fixture.request(&client, keyed_submit(&["fib 5"], &"k".repeat(257), false));
    match long_key {
        Ok(Response::Error(error)) | Err(ClientError::Remote(error)) => {
            assert_eq!(error.kind, RemoteErrorKind::Invalid, "{error:?}");
            assert!(
                error.message.contains("257 bytes, more than the 256"),
                "{}",
                error.message
            );
        }
        other => panic!("{other:?}"),
    }
    let status = fixture.request(&client, Request::Status { task_limit: 0 });
    match status {
        Ok(Response::Status(snapshot)) => {
            assert_eq!(snapshot.counts.submitted, 3, "nothing more was submitted")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_wait_retried_under_its_key_gets_outcomes_the_history_has_no_room_for() {
    // A history of 8 keeps 2 or 3 sleeps: of 5 that finish together, most leave it at once.
    let fixture = Fixture::new(|config| config.history.tasks = 8);
    let client = fixture.client();
    let submit =
        |wait: bool| fixture.request(&client, keyed_submit(&["sleep 300ms x5"], "retried", wait));
    // The first submit's connection is gone (the client retries after losing it).
    let first = match submit(false) {
        Ok(Response::Submitted { ids, .. }) => ids,
        other => panic!("{other:?}"),
    };
    match submit(true) {
        Ok(Response::Finished { tasks, duplicate }) => {
            assert!(duplicate);
            assert_eq!(tasks.iter().map(|t| t.id).collect::<Vec<_>>(), first);
            assert!(
                tasks.iter().all(|t| t.state == TaskState::Succeeded),
                "{tasks:?}"
            );
        }
        other => panic!("the retried wait lost its tasks: {other:?}"),
    }
}

#[test]
fn a_reader_that_stops_reading_is_throttled_not_buffered() {
    let fixture = Fixture::new(|config| {
        config.net.max_inflight = 4;
        config.history.tasks = 2_000;
    });
    let client = fixture.client();
    fixture.submit_wait(&client, &["fib 1 x1000"]);
    let address = fixture.address();
    let sent = fixture.runtime.block_on(async move {
        let mut stream = TcpStream::connect(&address).await.expect("connects");
        stream.write_all(&handshake_bytes()).await.expect("hello");
        let mut request = Vec::new();
        // 8,000 ids: a 40 KB request with a 100 KB answer.
        let ids = (1..=8_000).map(goliath::runtime::TaskId).collect();
        frame::write_message(
            &mut request,
            FrameType::Request,
            1,
            &Request::<SubmitRequest>::Cancel { ids },
            1 << 20,
        )
        .expect("encodes");
        // Keep sending big requests without reading a single answer (up to 800 MB).
        let mut sent = 0u32;
        while sent < 20_000 {
            match tokio::time::timeout(Duration::from_secs(2), stream.write_all(&request)).await {
                Ok(Ok(())) => sent += 1,
                _ => break,
            }
        }
        (sent, stream)
    });
    let served = fixture
        .server
        .stats()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sent.0 < 20_000,
        "the node stopped reading: the client's writes blocked after {}",
        sent.0
    );
    assert!(
        served < 500,
        "served {served} requests although the client read no answer"
    );
    drop(sent);
    assert_still_serving(&fixture);
}

#[test]
fn a_slow_watcher_lags_instead_of_buffering() {
    let fixture = Fixture::new(|config| config.events.capacity = 64);
    let watcher = fixture.client();
    let mut stream = fixture
        .runtime
        .block_on(watcher.watch(WatchRequest {
            events: true,
            snapshot_every_ms: Some(100),
            task_limit: 10,
        }))
        .expect("watch opens");
    let worker = fixture.client();
    for _ in 0..20 {
        fixture.submit_wait(&worker, &["fib 1 x1000"]);
    }
    let (lagged, snapshots) = fixture.runtime.block_on(async {
        let mut lagged = 0u64;
        let mut snapshots = 0;
        let mut events = 0;
        // Read what piled up, then stop once both kinds of item were seen.
        while lagged == 0 || snapshots == 0 || events == 0 {
            let item = tokio::time::timeout(common::LIVENESS, stream.next())
                .await
                .expect("stream alive")
                .expect("open");
            match item.expect("item") {
                StreamItem::Lagged { skipped } => lagged += skipped,
                StreamItem::Snapshot(_) => snapshots += 1,
                StreamItem::Event(_) => events += 1,
                StreamItem::Accepted { ids } => panic!("a watch was sent submitted ids {ids:?}"),
            }
        }
        (lagged, snapshots)
    });
    assert!(lagged > 0, "the watcher was told it fell behind");
    assert!(snapshots >= 1);
    drop(stream);
    assert_still_serving(&fixture);
}

#[test]
fn a_stream_id_reused_while_in_flight_is_refused_not_lost() {
    let fixture = Fixture::new(|_| {});
    let wait = Request::Submit(SubmitRequest {
        specs: vec!["sleep 5s".into()],
        idempotency_key: None,
        wait: true,
        report_ids: false,
    });
    let mut bytes = handshake_bytes();
    for _ in 0..2 {
        frame::write_message(&mut bytes, FrameType::Request, 7, &wait, 1 << 20).expect("encodes");
    }
    let text = error_text(&fixture.raw_exchange(&bytes));
    assert!(
        text.contains("stream 7 is already in use"),
        "the client is told, instead of one answer vanishing: {text}"
    );
    assert_still_serving(&fixture);
}

#[test]
fn answers_larger_than_a_frame_arrive_whole_in_pieces() {
    // A small frame limit, so modest answers need several frames.
    let fixture = Fixture::new(|config| config.net.max_frame = 4096);
    let client = fixture.client();
    let response = fixture.request(
        &client,
        Request::Submit(SubmitRequest {
            specs: vec!["fib 5 x2000".into()],
            idempotency_key: None,
            wait: true,
            report_ids: false,
        }),
    );
    match response {
        Ok(Response::Finished { tasks, .. }) => {
            assert_eq!(tasks.len(), 2000);
            assert!(
                tasks
                    .iter()
                    .all(|t| t.output == Some(TaskOutput::Number(5)))
            );
        }
        other => panic!("every outcome of the wait: {other:?}"),
    }
    match fixture.request(
        &client,
        Request::Tasks(TaskQuery {
            state: None,
            limit: 2000,
            before: None,
        }),
    ) {
        Ok(Response::Tasks(list)) => assert_eq!(list.len(), 2000),
        other => panic!("the whole list: {other:?}"),
    }
    assert_still_serving(&fixture);
}

#[test]
fn a_wait_whose_outcomes_pass_the_codec_and_answer_limits_still_returns_every_task() {
    let fixture = Fixture::new(|config| {
        config.arena.slots = 1 << 15;
        config.exec.remote = true;
    });
    let client = fixture.client();
    let text = "t".repeat(4000);
    // About 24 MB of outcomes: more than one frame and more than the codec's usual 16 MiB.
    match fixture.request(
        &client,
        Request::Submit(SubmitRequest {
            specs: vec![format!("echo {text} x6000")],
            idempotency_key: None,
            wait: true,
            report_ids: false,
        }),
    ) {
        Ok(Response::Finished { tasks, .. }) => {
            assert_eq!(tasks.len(), 6000);
            assert_eq!(
                tasks[0].output,
                Some(TaskOutput::Text(text.as_str().into()))
            );
        }
        other => panic!("{:?}", other.map(|_| "another answer")),
    }
    // About 75 MB of exec output: more than an answer may take whole, so each output comes
    // cut to its start (as in a task list), and every task is there.
    let big = "exec x570 -- sh -c 'head -c 65536 /dev/zero | tr \"\\0\" a; head -c 65536 /dev/zero | tr \"\\0\" b >&2'";
    match fixture.request(
        &client,
        Request::Submit(SubmitRequest {
            specs: vec![big.to_string()],
            idempotency_key: None,
            wait: true,
            report_ids: false,
        }),
    ) {
        Ok(Response::Finished { tasks, .. }) => {
            assert_eq!(tasks.len(), 570, "every task, with its id and verdict");
            assert!(tasks.iter().all(|t| t.state == TaskState::Succeeded));
            match &tasks[0].output {
                Some(TaskOutput::Process(process)) => {
                    let listed = goliath::runtime::task::limits::LISTED_OUTPUT_MAX;
                    assert_eq!(process.stdout.len(), listed);
                    assert_eq!(process.stdout_truncated, (65536 - listed) as u64);
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{:?}", other.map(|_| "another answer")),
    }
    // Too large even so (4 KB specs, 17,000 of them): refused, saying the tasks ran and how
    // to see them, so nobody submits them again.
    match fixture.request(
        &client,
        Request::Submit(SubmitRequest {
            specs: vec![format!("echo {text} x17000")],
            idempotency_key: None,
            wait: true,
            report_ids: false,
        }),
    ) {
        Err(ClientError::Remote(error)) => assert!(
            error
                .message
                .contains("17000 tasks were accepted and have finished")
                && error.message.contains("goliath tasks"),
            "{}",
            error.message
        ),
        other => panic!("{:?}", other.map(|_| "an answer")),
    }
}

#[test]
fn a_wait_that_asks_for_its_ids_gets_them_while_its_tasks_still_run() {
    let fixture = Fixture::new(|_| {});
    let client = fixture.client();
    let (accepted, ids) = tokio::sync::oneshot::channel();
    let request = SubmitRequest {
        specs: vec!["sleep 300ms x2".into(), "fib 10".into()],
        idempotency_key: None,
        wait: false,
        report_ids: false,
    };
    let (early, answer) = fixture.runtime.block_on(async {
        let answer = client.submit_and_wait(request, accepted);
        tokio::pin!(answer);
        let early = tokio::select! {
            ids = ids => ids.expect("the ids are reported"),
            answer = &mut answer => panic!("answered before the ids came: {answer:?}"),
        };
        (early, answer.await)
    });
    match answer {
        Ok(Response::Finished { tasks, duplicate }) => {
            assert!(!duplicate);
            let finished: Vec<TaskId> = tasks.iter().map(|task| task.id).collect();
            assert_eq!(early, finished, "the same tasks, in submission order");
            assert!(tasks.iter().all(|task| task.state == TaskState::Succeeded));
        }
        other => panic!("submit_and_wait: {other:?}"),
    }
    assert_still_serving(&fixture);
}

#[test]
fn a_server_of_another_kind_is_named_as_not_a_goliath_node() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let error = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let address = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accepts");
            let _ = stream.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n").await;
            let mut ignored = Vec::new();
            let _ = stream.read_to_end(&mut ignored).await;
        });
        Client::connect(&address, &ConnectOptions::default())
            .await
            .expect_err("not a node")
    });
    let text = error.to_string();
    assert!(matches!(error, ClientError::Protocol { .. }), "{text}");
    assert!(
        text.contains("not a goliath node (it began with \"HTTP/1.0\")")
            && text.contains("check the address and port")
            && !text.contains("frame type"),
        "{text}"
    );
}

#[test]
fn a_batch_near_the_largest_frame_is_taken_whole() {
    let fixture = Fixture::new(|config| {
        config.net.max_frame = 16 << 20;
        config.arena.slots = 1 << 19;
    });
    let client = fixture.client();
    // 400,000 specs of 37 bytes: 15 MiB on the wire, within the frame limit, but more than
    // 16 MiB as bincode counts them decoded (each length prefix at 8 bytes). It used to close
    // the connection with the submission's outcome unknown.
    let specs = vec!["echo some text here to make it longer".to_string(); 400_000];
    match fixture.request(
        &client,
        Request::Submit(SubmitRequest {
            specs,
            idempotency_key: None,
            wait: false,
            report_ids: false,
        }),
    ) {
        Ok(Response::Submitted { ids, .. }) => assert_eq!(ids.len(), 400_000),
        other => panic!("the whole batch taken: {other:?}"),
    }
    let tasks = fixture.submit_wait(&client, &["fib 20"]);
    assert_eq!(
        tasks[0].output,
        Some(TaskOutput::Number(6765)),
        "same connection"
    );
}

#[test]
fn a_client_still_sending_an_oversized_frame_reads_why_it_was_refused() {
    let fixture = Fixture::new(|_| {});
    let address = fixture.address();
    let received = fixture.runtime.block_on(async move {
        let stream = TcpStream::connect(&address).await.expect("connects");
        let (mut reading, mut writing) = stream.into_split();
        let mut opening = handshake_bytes();
        frame::write_header(&mut opening, FrameType::Request, 1, 64 << 20);
        // The body follows as a client that does not read while it writes sends it: the
        // node refuses the frame at its header, with most of the body still to come.
        let sender = tokio::spawn(async move {
            writing.write_all(&opening).await.expect("sends");
            let chunk = vec![0u8; 64 << 10];
            for _ in 0..1024 {
                if writing.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let _ = sender.await;
        let mut received = Vec::new();
        let _ = tokio::time::timeout(common::LIVENESS, reading.read_to_end(&mut received)).await;
        received
    });
    let text = error_text(&received);
    assert!(text.contains("net.max_frame"), "{text}");
    assert_still_serving(&fixture);
}
