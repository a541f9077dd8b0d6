//! The console's link to a node: samples it every `refresh` and carries out [`Command`]s,
//! answering with [`Reply`]s. A local node is called directly (off the console thread); a
//! remote one over the protocol, reconnecting with backoff when the link drops. Either way the
//! console receives the same [`crate::runtime::NodeSnapshot`] type.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::state::{Command, Reply};
use crate::runtime::net::client::ConnectOptions;
use crate::runtime::net::{
    CancelOutcomeWire, Client, ClientError, Request, Response, SubmitRequest,
};
use crate::runtime::{CancelOutcome, Node, TaskId, TaskState};

/// Where the console's data comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A node in this process.
    Local(Arc<Node>),
    /// A node reached over the protocol.
    Remote {
        /// `HOST:PORT`.
        address: String,
        /// Handshake settings.
        options: ConnectOptions,
    },
}

/// Sampling settings.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// Time between samples.
    pub refresh: Duration,
    /// Most tasks per sample.
    pub task_limit: usize,
}

/// The first wait before reconnecting, doubled up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest wait before reconnecting.
pub const MAX_RETRY: Duration = Duration::from_secs(5);
/// The wait before asking again a node that refused the handshake (another cluster or
/// protocol version): that changes only when someone restarts it.
pub const REFUSED_RETRY: Duration = Duration::from_secs(30);

/// Runs until `commands` closes (the console quit) or `replies` does.
pub async fn run(
    source: Source,
    sampling: Sampling,
    commands: mpsc::Receiver<Command>,
    replies: mpsc::Sender<Reply>,
) {
    match source {
        Source::Local(node) => run_local(node, sampling, commands, replies).await,
        Source::Remote { address, options } => {
            run_remote(&address, &options, sampling, commands, replies).await
        }
    }
}

async fn run_local(
    node: Arc<Node>,
    sampling: Sampling,
    mut commands: mpsc::Receiver<Command>,
    replies: mpsc::Sender<Reply>,
) {
    let mut tick = tokio::time::interval(sampling.refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let sampled = node.clone();
                let limit = sampling.task_limit;
                let Ok(snapshot) = tokio::task::spawn_blocking(move || sampled.snapshot(limit)).await else {
                    return;
                };
                if replies.send(Reply::Snapshot(Box::new(snapshot))).await.is_err() {
                    return;
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { return };
                let node = node.clone();
                let replies = replies.clone();
                // Submits wait for durability; keep sampling meanwhile.
                tokio::spawn(async move {
                    let reply = tokio::task::spawn_blocking(move || local_reply(&node, command)).await;
                    if let Ok(reply) = reply {
                        let _ = replies.send(reply).await;
                    }
                });
            }
        }
    }
}

/// What a cancel did, for the status line: `finished` is the state of a task that had
/// already ended, `None` when the cancel was requested. The same for a local and a remote node.
fn cancel_text(finished: Option<TaskState>) -> String {
    match finished {
        None => "cancel requested".to_string(),
        // As the tables spell the state: "timed out", not "timed_out".
        Some(state) => format!(
            "already {}; nothing to cancel",
            crate::tui::view::state_label(state)
        ),
    }
}

fn local_reply(node: &Node, command: Command) -> Reply {
    match command {
        Command::Submit(text) => {
            let result = node.submit_text(&text).map_err(|e| e.to_string());
            Reply::Submitted {
                refused: result.is_err(),
                sent: true,
                text,
                result,
            }
        }
        Command::Cancel(ids) => {
            // Every request first, then one wait for the log: they share its group commit
            // (one durable wait per id took half a millisecond each, 2 s for 4,000 ids).
            let mut durable = crate::runtime::wal::Ticket::ready();
            let mut pending: Vec<(TaskId, Result<CancelOutcome, String>)> =
                Vec::with_capacity(ids.len());
            for (id, result) in node.cancel_many_pending(&ids) {
                let outcome = match result {
                    Ok((outcome, ticket)) => {
                        durable = durable.max(ticket);
                        Ok(outcome)
                    }
                    Err(error) => Err(error.to_string()),
                };
                pending.push((id, outcome));
            }
            let logged = durable
                .wait()
                .map_err(|error| format!("the log did not make the cancel durable: {error}"));
            Reply::Cancelled {
                results: pending
                    .into_iter()
                    .map(|(id, outcome)| {
                        let result = match (outcome, &logged) {
                            (Err(error), _) => Err(error),
                            (Ok(_), Err(error)) => Err(error.clone()),
                            (Ok(CancelOutcome::Requested), Ok(())) => Ok(cancel_text(None)),
                            (Ok(CancelOutcome::AlreadyFinished(state)), Ok(())) => {
                                Ok(cancel_text(Some(state)))
                            }
                        };
                        (id, result)
                    })
                    .collect(),
            }
        }
        Command::FetchTask(id) => Reply::Task {
            id,
            result: node.task(id).map(Box::new).map_err(|e| e.to_string()),
        },
    }
}

async fn run_remote(
    address: &str,
    options: &ConnectOptions,
    sampling: Sampling,
    mut commands: mpsc::Receiver<Command>,
    replies: mpsc::Sender<Reply>,
) {
    let mut retry = FIRST_RETRY;
    // What the log last said about the link: one line when it drops, and while it stays
    // down one more only when the reason changes, not one per retry.
    let mut last_error: Option<String> = None;
    loop {
        let mut refused = false;
        let error = match Client::connect(address, options).await {
            Ok(client) => {
                tracing::info!(node = %client.welcome().node, %address, "console connected");
                retry = FIRST_RETRY;
                match serve(client, sampling, &mut commands, &replies).await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(%address, %error, "console lost the node; retrying");
                        last_error = Some(error.clone());
                        error
                    }
                }
            }
            Err(error) => {
                // A refusal that will not change by itself (another cluster, another
                // protocol version): asked again only now and then, and said to be one.
                refused = matches!(
                    error,
                    ClientError::Refused { .. } | ClientError::Protocol { .. }
                );
                error.to_string()
            }
        };
        if last_error.as_deref() != Some(error.as_str()) {
            tracing::warn!(%address, %error, "console cannot reach the node; retrying");
            last_error = Some(error.clone());
        }
        let wait_for = if refused { REFUSED_RETRY } else { retry };
        if replies
            .send(Reply::Disconnected {
                error: error.clone(),
                retry_in: wait_for,
                refused,
            })
            .await
            .is_err()
        {
            return;
        }
        // Commands typed while disconnected are answered at once, not queued for later.
        let wait = tokio::time::sleep(wait_for);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    let _ = replies.send(failed(command, format!("not connected to {address}: {error}"))).await;
                }
            }
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// How long a sample request may go unanswered before the console says so: two refresh
/// periods, and never under two seconds.
fn unanswered_after(refresh: Duration) -> Duration {
    (refresh * 2).max(Duration::from_secs(2))
}

/// Serves one connection until it fails (Err with the reason) or the console quits (Ok).
async fn serve(
    client: Client,
    sampling: Sampling,
    commands: &mut mpsc::Receiver<Command>,
    replies: &mpsc::Sender<Reply>,
) -> Result<(), String> {
    let mut tick = tokio::time::interval(sampling.refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let task_limit = u32::try_from(sampling.task_limit).unwrap_or(u32::MAX);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // A node that accepted the connection but stopped answering (SIGSTOP, or
                // overloaded) keeps the connection open: after a while without an answer the
                // console says so, and goes on waiting (and taking commands) for it.
                let asked = Instant::now();
                let request = client.request(Request::Status { task_limit });
                tokio::pin!(request);
                let quiet = tokio::time::sleep(unanswered_after(sampling.refresh));
                tokio::pin!(quiet);
                let mut told = false;
                let response = loop {
                    tokio::select! {
                        response = &mut request => break response,
                        _ = &mut quiet, if !told => {
                            told = true;
                            if replies.send(Reply::Unanswered { since: asked }).await.is_err() {
                                return Ok(());
                            }
                        }
                        command = commands.recv() => {
                            let Some(command) = command else { return Ok(()) };
                            answer(&client, command, replies);
                        }
                    }
                };
                match response {
                    Ok(Response::Status(snapshot)) => {
                        if replies.send(Reply::Snapshot(snapshot)).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(other) => return Err(format!("unexpected answer to a status request: {other:?}")),
                    Err(error) => return Err(error.to_string()),
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { return Ok(()) };
                answer(&client, command, replies);
            }
        }
    }
}

/// Sends `command` to the node in a task of its own, its reply to `replies`: samples go on
/// while it waits.
fn answer(client: &Client, command: Command, replies: &mpsc::Sender<Reply>) {
    let client = client.clone();
    let replies = replies.clone();
    tokio::spawn(async move {
        let reply = remote_reply(&client, command).await;
        let _ = replies.send(reply).await;
    });
}

async fn remote_reply(client: &Client, command: Command) -> Reply {
    match command {
        Command::Submit(text) => {
            let request = Request::Submit(SubmitRequest {
                specs: vec![text.clone()],
                idempotency_key: None,
                wait: false,
                report_ids: false,
            });
            let (result, refused) = match client.request(request).await {
                Ok(Response::Submitted { ids, .. }) => (Ok(ids), false),
                Ok(other) => (Err(unexpected(&other)), matches!(other, Response::Error(_))),
                Err(error) => {
                    let refused =
                        matches!(error, ClientError::Remote(_) | ClientError::Busy { .. });
                    (Err(error.to_string()), refused)
                }
            };
            Reply::Submitted {
                text,
                result,
                refused,
                sent: true,
            }
        }
        Command::Cancel(ids) => {
            // Up to 10,000 ids: looked up by id, not searched for one by one.
            let outcomes: Result<std::collections::HashMap<TaskId, CancelOutcomeWire>, String> =
                match client.request(Request::Cancel { ids: ids.clone() }).await {
                    Ok(Response::Cancelled { results }) => {
                        Ok(results.iter().map(|r| (r.id, r.outcome)).collect())
                    }
                    Ok(other) => Err(unexpected(&other)),
                    Err(error) => Err(error.to_string()),
                };
            let results = ids
                .into_iter()
                .map(|id| {
                    let result = match outcomes.as_ref().map(|found| found.get(&id).copied()) {
                        Ok(Some(CancelOutcomeWire::Requested)) => Ok(cancel_text(None)),
                        Ok(Some(CancelOutcomeWire::AlreadyFinished(state))) => {
                            Ok(cancel_text(Some(state)))
                        }
                        Ok(Some(CancelOutcomeWire::NotFound) | None) => {
                            Err(format!("no task {id} on this node"))
                        }
                        Err(error) => Err(error.clone()),
                    };
                    (id, result)
                })
                .collect();
            Reply::Cancelled { results }
        }
        Command::FetchTask(id) => Reply::Task {
            id,
            result: match client.request(Request::Task { id }).await {
                Ok(Response::Task(info)) => Ok(Box::new(info)),
                Ok(other) => Err(unexpected(&other)),
                Err(error) => Err(error.to_string()),
            },
        },
    }
}

fn unexpected(response: &Response) -> String {
    match response {
        Response::Error(error) => error.message.clone(),
        other => format!("unexpected answer: {other:?}"),
    }
}

/// The reply to a command that could not be sent.
fn failed(command: Command, error: String) -> Reply {
    match command {
        Command::Submit(text) => Reply::Submitted {
            text,
            result: Err(error),
            // Never sent: the node took nothing.
            refused: true,
            sent: false,
        },
        Command::Cancel(ids) => Reply::Cancelled {
            results: ids.into_iter().map(|id| (id, Err(error.clone()))).collect(),
        },
        Command::FetchTask(id) => Reply::Task {
            id,
            result: Err(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, WorkerCount};
    use crate::runtime::net::{Server, ServerConfig};

    #[test]
    fn a_cancel_of_a_finished_task_names_its_state_as_the_tables_do() {
        assert_eq!(
            cancel_text(Some(TaskState::TimedOut)),
            "already timed out; nothing to cancel"
        );
        assert_eq!(cancel_text(None), "cancel requested");
    }

    #[test]
    fn a_remote_cancel_gives_each_id_its_own_outcome() {
        let mut config = Config::default();
        config.scheduler.workers = WorkerCount::Fixed(1);
        config.arena.slots = 64;
        config.wal.enabled = false;
        config.net.listen = "127.0.0.1:0".into();
        let server_config = ServerConfig::from_config(&config).expect("valid");
        let node = Arc::new(Node::start(config).expect("node starts"));
        let sleeping = node.submit_text("sleep 1h").expect("accepted")[0];
        let finished = node.submit_text("fib 3").expect("accepted")[0];
        while !node.task(finished).is_ok_and(|t| t.state.is_finished()) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let reply = runtime.block_on(async {
            let server = Server::start(node.clone(), server_config)
                .await
                .expect("listens");
            let address = server.local_addr().to_string();
            let client = Client::connect(&address, &ConnectOptions::default())
                .await
                .expect("connects");
            let unknown = TaskId(finished.0 + 1000);
            remote_reply(&client, Command::Cancel(vec![unknown, finished, sleeping])).await
        });
        let Reply::Cancelled { results } = reply else {
            panic!("a cancel's reply: {reply:?}");
        };
        let by_id: Vec<(u64, Result<String, String>)> =
            results.into_iter().map(|(id, r)| (id.0, r)).collect();
        assert_eq!(
            by_id,
            vec![
                (
                    finished.0 + 1000,
                    Err(format!("no task {} on this node", finished.0 + 1000))
                ),
                (finished.0, Ok(cancel_text(Some(TaskState::Succeeded)))),
                (sleeping.0, Ok(cancel_text(None))),
            ]
        );
        node.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn a_local_cancel_of_many_waits_for_the_log_once_and_gives_each_id_its_outcome() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.scheduler.workers = WorkerCount::Fixed(1);
        config.arena.slots = 4096;
        config.node.data_dir = dir.path().display().to_string();
        let node = Node::start(config).expect("node starts");
        let ids = node.submit_text("sleep 1h x2000").expect("accepted");
        let unknown = TaskId(ids[ids.len() - 1].0 + 1000);
        let mut asked = ids.clone();
        asked.push(unknown);
        let Reply::Cancelled { results } = local_reply(&node, Command::Cancel(asked)) else {
            panic!("a cancel's reply");
        };
        assert_eq!(results.len(), 2001);
        assert!(
            results[..2000]
                .iter()
                .all(|(_, result)| result.as_deref() == Ok("cancel requested")),
            "{:?}",
            &results[..3]
        );
        let (id, result) = &results[2000];
        assert_eq!(*id, unknown);
        assert!(
            result
                .as_ref()
                .is_err_and(|e| e.starts_with(&format!("no task {unknown} on this node"))),
            "{result:?}"
        );
        // Durable: a restart finds them cancelled, not queued to run again.
        node.shutdown(Duration::from_secs(5));
        drop(node);
        let mut config = Config::default();
        config.scheduler.workers = WorkerCount::Fixed(1);
        config.arena.slots = 4096;
        config.node.data_dir = dir.path().display().to_string();
        let node = Node::start(config).expect("restarts");
        assert!(
            node.task(ids[0])
                .is_ok_and(|task| task.state == TaskState::Cancelled),
            "{:?}",
            node.task(ids[0])
        );
        node.shutdown(Duration::from_secs(5));
    }
}
