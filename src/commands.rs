//! The client commands of the binary (`submit`, `cancel`, `task`, `tasks`, `status`, `watch`,
//! `shutdown`): one request each over the protocol, printed for people or as JSON.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::time::Duration;

use goliath::runtime::gossip::LocalStatus;
use goliath::runtime::net::frame;
use goliath::runtime::net::{
    CancelOutcomeWire, Client, ClientError, RemoteErrorKind, Request, Response, StreamItem,
    SubmitRequest, WatchRequest,
};
use goliath::runtime::snapshot::{ClusterSnapshot, MemberState};
use goliath::runtime::task::quote_word;
use goliath::runtime::units::{HumanSize, ShortDuration, UtcTime, printable};
use goliath::runtime::{NodeSnapshot, TaskId, TaskInfo, TaskOutput, TaskQuery, TaskState};

use crate::exit;

/// A client command's failure: message and exit code.
#[derive(Debug)]
pub struct CommandError {
    pub code: u8,
    pub message: String,
}

impl CommandError {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<ClientError> for CommandError {
    fn from(error: ClientError) -> Self {
        let code = match &error {
            ClientError::Connect { .. }
            | ClientError::Unresponsive { .. }
            | ClientError::Closed { .. } => exit::CONNECT,
            ClientError::Refused { .. } | ClientError::Protocol { .. } => exit::HANDSHAKE,
            ClientError::Busy { .. } => exit::BUSY,
            ClientError::TooLarge { .. } => exit::USAGE,
            ClientError::Remote(remote) => match remote.kind {
                RemoteErrorKind::BadSpec { .. } => exit::USAGE,
                RemoteErrorKind::Busy { .. } | RemoteErrorKind::ShuttingDown => exit::BUSY,
                RemoteErrorKind::NotFound => exit::NOT_FOUND,
                RemoteErrorKind::ExecRefused { .. }
                | RemoteErrorKind::Invalid
                | RemoteErrorKind::Storage => exit::FAILURE,
            },
        };
        let message = match &error {
            ClientError::Remote(remote) => match remote.kind {
                RemoteErrorKind::Busy { .. } => format!("{remote}"),
                _ => remote.message.clone(),
            },
            // The CLI's own way to point elsewhere (the console's is --connect).
            ClientError::Connect { advice, .. }
                if *advice == goliath::runtime::net::client::NO_NODE =>
            {
                format!("{error}, or pass --node ADDR")
            }
            other => other.to_string(),
        };
        CommandError::new(code, message)
    }
}

/// Said (on stderr) when a submission's idempotency key was seen before.
const DUPLICATE_NOTE: &str = "goliath: this idempotency key was used before: these are the tasks it made then; nothing new was submitted";

/// What to run against a node.
pub enum ClientCommand {
    Submit {
        specs: Vec<String>,
        /// For specs read from standard input, the line each came from (1-based).
        stdin_lines: Option<Vec<usize>>,
        wait: bool,
        idempotency_key: Option<String>,
    },
    Cancel {
        ids: Vec<TaskId>,
    },
    Task {
        id: TaskId,
    },
    Tasks {
        state: Option<TaskState>,
        limit: usize,
        before: Option<TaskId>,
    },
    Status,
    Watch {
        snapshots: Option<Duration>,
    },
    Shutdown {
        /// Wait until the node has stopped.
        wait: bool,
    },
    Members,
}

impl ClientCommand {
    /// Whether the command changes something on the node (submit, cancel, shutdown).
    pub fn changes_node(&self) -> bool {
        matches!(
            self,
            ClientCommand::Submit { .. }
                | ClientCommand::Cancel { .. }
                | ClientCommand::Shutdown { .. }
        )
    }
}

/// `goliath submit`'s options, which must come before the specs.
const SUBMIT_OPTIONS: [&str; 4] = ["--wait", "--json", "--node", "--idempotency-key"];

/// Specs from standard input (`goliath submit -`): one per line, blank lines and `#`
/// comments skipped, each with the line it came from, for error messages.
pub fn stdin_specs() -> Result<(Vec<String>, Vec<usize>), CommandError> {
    bounded_spec_lines(std::io::stdin().lock(), STDIN_SPECS_MAX)
}

/// How much of standard input `goliath submit -` reads: four times the largest request a
/// node takes (`net.max_frame` at most 16 MiB), so comments and blank lines have room, and
/// a stream that never ends is refused instead of filling memory.
const STDIN_SPECS_MAX: u64 = 4 * goliath::codec::MAX_MESSAGE as u64;

/// Spec lines `goliath submit -` takes at most.
const STDIN_SPEC_LINES_MAX: usize = 1_000_000;

/// [`stdin_specs`] over any reader, refusing input longer than `limit` bytes.
fn bounded_spec_lines(
    input: impl std::io::Read,
    limit: u64,
) -> Result<(Vec<String>, Vec<usize>), CommandError> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut input.take(limit + 1), &mut bytes).map_err(|e| {
        CommandError::new(
            exit::USAGE,
            format!("cannot read specs from standard input: {e}"),
        )
    })?;
    if bytes.len() as u64 > limit {
        return Err(CommandError::new(
            exit::USAGE,
            format!(
                "standard input holds more than {} of specs, and one submission takes at most \
                 {} (net.max_frame's ceiling); split it and submit the parts one after another",
                HumanSize::exact(limit),
                HumanSize::exact(goliath::codec::MAX_MESSAGE as u64),
            ),
        ));
    }
    spec_lines_of(&bytes)
}

/// [`stdin_specs`] of the bytes read: a byte-order mark at the start is dropped (an editor's,
/// not part of the first kind's name), and text that is not UTF-8 is named by its line.
fn spec_lines_of(bytes: &[u8]) -> Result<(Vec<String>, Vec<usize>), CommandError> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let input = std::str::from_utf8(bytes).map_err(|error| {
        let line = bytes[..error.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        CommandError::new(
            exit::USAGE,
            format!("standard input, line {line}: not UTF-8 text (task specs are text)"),
        )
    })?;
    let mut numbers = Vec::new();
    let mut lines = Vec::new();
    for (index, line) in input.lines().enumerate() {
        // The indent stays: an error's column counts from the start of the line as written.
        let line = line.trim_end();
        if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        // A carriage return inside a line (old Mac line ends, `printf 'a\rb'`) ends a line
        // for the terminal that shows it: read as a space, it joined two specs into one task.
        if line.contains('\r') {
            return Err(CommandError::new(
                exit::USAGE,
                format!(
                    "standard input, line {}: {:?} holds a carriage return inside it, which ends a line on a terminal; a spec is one line: give one spec per line, with \\n or \\r\\n line ends",
                    index + 1,
                    printable(line, false)
                ),
            ));
        }
        // Each spec costs this side some 50 bytes besides its text: a count, not only the
        // text's size, bounds the memory (66 MB of one-letter lines took 2 GB).
        if lines.len() == STDIN_SPEC_LINES_MAX {
            return Err(CommandError::new(
                exit::USAGE,
                format!(
                    "standard input holds more than {STDIN_SPEC_LINES_MAX} specs (line {} is one more); one submission takes at most that many lines: split it, or give a spec copies with xN",
                    index + 1
                ),
            ));
        }
        numbers.push(index + 1);
        lines.push(line.to_string());
    }
    if lines.is_empty() {
        return Err(CommandError::new(
            exit::USAGE,
            "no task specs on standard input",
        ));
    }
    Ok((lines, numbers))
}

/// Turns `goliath submit` arguments into spec lines: one argument per spec when the first has
/// a space (`goliath submit "spin 1s" "fib 30"`), else all arguments form one spec
/// (`goliath submit spin 200ms x20`, `goliath submit exec -- sh -c 'echo hi'`). A lone `-`
/// (read by [`stdin_specs`]) is the caller's to check first. `escaped`: the specs followed
/// an explicit `--`, so words in them that look like options are spec text.
pub fn spec_lines(args: &[String], escaped: bool) -> Result<Vec<String>, CommandError> {
    // Everything after the first spec word is spec text: exec's own arguments may start
    // with '-' or end with a line break.
    let one_exec_spec = args
        .first()
        .is_some_and(|first| first.strip_prefix('\u{feff}').unwrap_or(first) == "exec");
    // What `submit -` drops from its lines, dropped here too: an editor's byte-order mark,
    // and a line end after a spec (`while read line` over a CRLF file keeps the CR), unless
    // it may be an exec program's own argument (`printf 'a\n'`).
    let trimmed: Vec<String> = args
        .iter()
        .enumerate()
        .map(|(index, arg)| {
            let arg = match index {
                0 => arg.strip_prefix('\u{feff}').unwrap_or(arg),
                _ => arg,
            };
            let ends_stripped = arg.trim_end_matches(['\r', '\n']);
            if one_exec_spec
                || arg.trim_start().starts_with("exec")
                || ends_stripped.contains(['\r', '\n'])
            {
                arg.to_string()
            } else {
                ends_stripped.to_string()
            }
        })
        .collect();
    let args = trimmed.as_slice();
    // An option written after the specs would be submitted as part of them. Outside an exec
    // spec such a word can only be a misplaced option, unless `--` said otherwise.
    if !one_exec_spec
        && !escaped
        && let Some(option) = args
            .iter()
            .skip(1)
            .find(|arg| SUBMIT_OPTIONS.contains(&arg.split('=').next().unwrap_or_default()))
    {
        return Err(CommandError::new(
            exit::USAGE,
            format!(
                "`{option}` after the task specs would be read as part of them; put options first, e.g. goliath submit {option}{} SPEC… (or, if it is text of the spec, put `--` before the specs)",
                // The options that take a value, given without one here.
                if matches!(option.as_str(), "--node" | "--idempotency-key") {
                    " VALUE"
                } else {
                    ""
                }
            ),
        ));
    }
    // A line break in a spec argument (`goliath submit "fib 5<newline>fib 6"`) is one spec
    // per line meant; an exec spec's own arguments may hold one (`sh -c` scripts).
    if let Some(spec) = args
        .iter()
        .filter(|_| !one_exec_spec)
        .find(|spec| spec.contains(['\n', '\r']) && !spec.trim_start().starts_with("exec"))
    {
        return Err(CommandError::new(
            exit::USAGE,
            format!(
                "the argument {:?} spans lines: a spec is one line; give each spec as an argument of its own, or one per line on standard input (`goliath submit -`)",
                printable(spec, false)
            ),
        ));
    }
    match args.first() {
        None => Err(CommandError::new(
            exit::USAGE,
            "no task spec given; e.g. goliath submit spin 200ms x20",
        )),
        Some(first) if first.contains(char::is_whitespace) => Ok(args.to_vec()),
        Some(_) => Ok(vec![
            args.iter()
                .map(|a| shell_word(a))
                .collect::<Vec<_>>()
                .join(" "),
        ]),
    }
}

/// Quotes an argument the shell already split, only when the text form would split it again.
fn shell_word(word: &str) -> String {
    if word.is_empty()
        || word
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        quote_word(word)
    } else {
        word.to_string()
    }
}

pub async fn run(client: &Client, command: ClientCommand, json: bool) -> Result<u8, CommandError> {
    match command {
        ClientCommand::Submit {
            specs,
            stdin_lines,
            wait,
            idempotency_key,
        } => {
            let request = SubmitRequest {
                specs,
                idempotency_key,
                wait,
                report_ids: false,
            };
            // With --wait: the ids the node reported ahead of the outcomes, if it did.
            let (answer, accepted) = if wait {
                match submit_and_wait(client, request).await? {
                    Waited::Answer { answer, ids } => (answer, ids),
                    Waited::Interrupted { signal, ids } => {
                        let node = client.address();
                        return Err(interrupted_wait(signal, ids.as_deref(), node, json));
                    }
                }
            } else {
                (client.request(Request::Submit(request)).await, None)
            };
            let response = answer.map_err(|error| match error {
                ClientError::Remote(remote) => {
                    let line = match (remote.kind, &stdin_lines) {
                        (
                            RemoteErrorKind::BadSpec { index, .. }
                            | RemoteErrorKind::ExecRefused { index: Some(index) },
                            Some(lines),
                        ) => lines.get(index as usize).copied(),
                        _ => None,
                    };
                    let busy = matches!(remote.kind, RemoteErrorKind::Busy { .. });
                    let mut error: CommandError = ClientError::Remote(remote).into();
                    if let Some(line) = line {
                        error.message = format!("standard input, line {line}: {}", error.message);
                    }
                    if busy {
                        // Which node, and where the others' room shows: a cluster may
                        // have members with free slots.
                        error.message = format!(
                            "{} [node {} at {}; with gossip on, `goliath members --node {}` shows each member's load, \"full\" where it has no free slot, and its protocol address to submit to]",
                            error.message,
                            client.welcome().node,
                            client.address(),
                            client.address()
                        );
                    }
                    error
                }
                ClientError::Closed { .. } if wait => {
                    if json {
                        // As an interrupted wait does: a script reads on stdout which tasks
                        // the node had taken (null: the connection closed before it said).
                        outln!(
                            "{}",
                            serde_json::json!({
                                "disconnected": error.to_string(),
                                "ids": accepted.as_deref(),
                            })
                        );
                    }
                    let (which, them) = match accepted.as_deref() {
                        Some(ids) if !ids.is_empty() => named_tasks(ids),
                        _ => ("the tasks".to_string(), "them"),
                    };
                    // The outcomes come in one answer at the end: of several tasks some
                    // may have finished, and this side cannot tell which.
                    let message = if them == "it" {
                        format!(
                            "{error} before {which} finished; a node with a data directory \
                             runs it again when it restarts (`goliath tasks --node {}` there \
                             shows it)",
                            client.address()
                        )
                    } else {
                        format!(
                            "{error} before it answered for {which}; a node with a data \
                             directory runs those that had not finished again when it \
                             restarts (`goliath tasks --node {}` there shows them)",
                            client.address()
                        )
                    };
                    CommandError::new(exit::CONNECT, message)
                }
                ClientError::Closed { .. } => CommandError::new(
                    exit::CONNECT,
                    format!(
                        "{error}; whether the node took the submission is not known: \
                         `goliath tasks --node {}` shows what it holds once it answers, and \
                         a retry with the same --idempotency-key cannot submit it twice",
                        client.address()
                    ),
                ),
                error => error.into(),
            })?;
            match response {
                Response::Submitted { ids, duplicate } => {
                    if json {
                        // A struct: its keys keep the documented order.
                        #[derive(serde::Serialize)]
                        struct Submitted<'a> {
                            ids: &'a [TaskId],
                            duplicate: bool,
                        }
                        outln!(
                            "{}",
                            to_json(&Submitted {
                                ids: &ids,
                                duplicate
                            })
                        );
                    } else {
                        for id in ids {
                            outln!("{id}");
                        }
                    }
                    if duplicate {
                        errln!("{DUPLICATE_NOTE}");
                    }
                    Ok(exit::OK)
                }
                Response::Finished { tasks, duplicate } => {
                    let failed = tasks
                        .iter()
                        .filter(|t| t.state != TaskState::Succeeded)
                        .count();
                    if json {
                        outln!(
                            "{}",
                            to_json(&TaskList {
                                tasks: &tasks,
                                duplicate
                            })
                        );
                    } else {
                        out!("{}", task_table(&tasks, None));
                    }
                    if duplicate {
                        errln!("{DUPLICATE_NOTE}");
                    }
                    if !json && failed > 0 {
                        errln!("goliath: {failed} of {} tasks did not succeed", tasks.len());
                    }
                    Ok(if failed > 0 { exit::FAILURE } else { exit::OK })
                }
                other => Err(unexpected(&other)),
            }
        }
        // Each id once already (`parse_task_ids`): `cancel 7 7` is one request.
        ClientCommand::Cancel { ids } => match client.request(Request::Cancel { ids }).await? {
            Response::Cancelled { results } => {
                let missing = results
                    .iter()
                    .filter(|r| r.outcome == CancelOutcomeWire::NotFound)
                    .count();
                if json {
                    outln!("{}", serde_json::json!({ "results": results }));
                } else {
                    for result in &results {
                        match result.outcome {
                            CancelOutcomeWire::Requested => {
                                outln!("{}: cancel requested", result.id)
                            }
                            CancelOutcomeWire::AlreadyFinished(state) => {
                                outln!("{}: already {state}", result.id)
                            }
                            CancelOutcomeWire::NotFound => outln!(
                                "{}: not on this node (never handed out, or finished and no longer in its history)",
                                result.id
                            ),
                        }
                    }
                }
                Ok(if missing > 0 {
                    exit::NOT_FOUND
                } else {
                    exit::OK
                })
            }
            other => Err(unexpected(&other)),
        },
        ClientCommand::Task { id } => match client.request(Request::Task { id }).await? {
            Response::Task(info) => {
                if json {
                    outln!("{}", to_json(&info));
                } else {
                    out!("{}", task_detail(&info));
                }
                Ok(exit::OK)
            }
            other => Err(unexpected(&other)),
        },
        ClientCommand::Tasks {
            state,
            limit,
            before,
        } => match client
            .request(Request::Tasks(TaskQuery {
                state,
                limit,
                before,
            }))
            .await?
        {
            Response::Tasks(tasks) => {
                // A full page may have older tasks after it; the next page starts below its
                // last id.
                let next_before = if tasks.len() >= limit {
                    tasks.last().map(|task| task.id)
                } else {
                    None
                };
                if json {
                    outln!(
                        "{}",
                        to_json(&TaskPage {
                            tasks: &tasks,
                            next_before
                        })
                    );
                } else if tasks.is_empty() {
                    outln!("no tasks");
                } else {
                    // The running tasks' time so far, by the node's clock (its start times
                    // are; this machine's may differ): one more small request, only when
                    // something is running.
                    let now = if tasks.iter().any(|t| t.finished_unix_us.is_none()) {
                        match client.request(Request::Status { task_limit: 0 }).await {
                            Ok(Response::Status(snapshot)) => Some(snapshot.node.now_unix_us),
                            _ => None,
                        }
                    } else {
                        None
                    };
                    out!("{}", task_table(&tasks, now));
                    // After the table, where the eye ends; on stderr, so the table alone
                    // goes down a pipe.
                    if let Some(id) = next_before {
                        errln!(
                            "goliath: {} shown, the newest first; older ones may follow: add --before {} for the next page",
                            goliath::runtime::units::counted(tasks.len() as u64, "task", "tasks"),
                            id.0
                        );
                    }
                }
                Ok(exit::OK)
            }
            other => Err(unexpected(&other)),
        },
        ClientCommand::Status => match client.request(Request::Status { task_limit: 0 }).await? {
            Response::Status(snapshot) => {
                if json {
                    outln!(
                        "{}",
                        json_with_cluster(&snapshot, snapshot.cluster.as_ref(), "/cluster")
                    );
                } else {
                    out!("{}", status_text(&snapshot));
                }
                Ok(exit::OK)
            }
            other => Err(unexpected(&other)),
        },
        ClientCommand::Watch { snapshots } => {
            let request = WatchRequest {
                events: true,
                snapshot_every_ms: snapshots
                    .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
                task_limit: 0,
            };
            let mut stream = client.watch(request).await?;
            // With snapshots, a node that sends none for three periods is said to be silent
            // (once per silence), so a script can tell a stopped node from a quiet one.
            let silence = snapshots.map(|period| (period * 3).max(Duration::from_secs(3)));
            let mut silent_since: Option<std::time::Instant> = None;
            let mut last_heard = std::time::Instant::now();
            // A reader that closed the pipe is otherwise noticed only at the next write,
            // which on a quiet node may never come (`goliath watch --json | head -5` hung
            // once the burst it read had passed).
            let mut reader_gone = std::pin::pin!(reader_gone());
            loop {
                // `None` when the node was silent for `silence`.
                let waited = tokio::select! {
                    biased;
                    _ = &mut reader_gone => return Ok(exit::OK),
                    waited = async {
                        match silence {
                            Some(silence) => tokio::time::timeout(silence, stream.next()).await.ok(),
                            None => Some(stream.next().await),
                        }
                    } => waited,
                };
                let next = match waited {
                    Some(next) => next,
                    None => {
                        if silent_since.is_none() {
                            silent_since = Some(last_heard);
                            let seconds = last_heard.elapsed().as_secs();
                            errln!(
                                "goliath: nothing from the node for {seconds}s: stopped (SIGSTOP) or overloaded?"
                            );
                            // In the stream too: a JSON reader may not see stderr.
                            if json {
                                outln!(
                                    "{}",
                                    serde_json::json!({ "silent": { "seconds": seconds } })
                                );
                            }
                        }
                        continue;
                    }
                };
                let Some(item) = next else { break };
                last_heard = std::time::Instant::now();
                if let Some(since) = silent_since.take() {
                    let seconds = since.elapsed().as_secs();
                    errln!("goliath: the node answers again after {seconds}s");
                    if json {
                        outln!(
                            "{}",
                            serde_json::json!({ "answering": { "after_seconds": seconds } })
                        );
                    }
                }
                let item = match item {
                    // The node stopped and said so: the watch is over, as it would be at the
                    // end of a file; a crash or a lost connection stays an error.
                    Err(ClientError::Closed { reason }) if frame::is_shutdown_notice(&reason) => {
                        errln!("goliath: the node shut down; the watch is over");
                        return Ok(exit::OK);
                    }
                    item => item?,
                };
                if json {
                    let cluster = match &item {
                        StreamItem::Snapshot(snapshot) => snapshot.cluster.as_ref(),
                        _ => None,
                    };
                    outln!("{}", json_with_cluster(&item, cluster, "/snapshot/cluster"));
                    continue;
                }
                match item {
                    StreamItem::Event(event) => {
                        let worker = event
                            .worker
                            .map(|w| format!(" on worker {w}"))
                            .unwrap_or_default();
                        let spec = event
                            .spec
                            .as_deref()
                            .map(|spec| format!(" ({})", printable(spec, false)))
                            .unwrap_or_default();
                        // "cancelled: cancelled" says nothing twice.
                        let error = event
                            .error
                            .as_deref()
                            .filter(|error| *error != event.state.as_str())
                            .map(|error| format!(": {}", printable(error, false)))
                            .unwrap_or_default();
                        outln!(
                            "{} task {}{} {}{}{}",
                            UtcTime(event.at_unix_us),
                            event.id,
                            spec,
                            event.state,
                            worker,
                            error
                        );
                    }
                    StreamItem::Snapshot(snapshot) => outln!(
                        "{} node {}: {} queued, {} running, {} finished, arena {}/{}",
                        UtcTime(snapshot.node.now_unix_us),
                        snapshot.node.name,
                        snapshot.counts.queued,
                        snapshot.counts.running,
                        snapshot.counts.finished(),
                        snapshot.arena.in_use,
                        snapshot.arena.capacity
                    ),
                    StreamItem::Lagged { skipped } => {
                        outln!("(fell behind: {skipped} events skipped)")
                    }
                    // Only on a waiting submission's stream.
                    StreamItem::Accepted { .. } => {}
                }
            }
            Err(CommandError::new(
                exit::CONNECT,
                "the node ended the watch (shutting down?)",
            ))
        }
        ClientCommand::Members => match client.request(Request::Members).await? {
            Response::Members(Some(cluster)) => {
                if json {
                    outln!("{}", json_with_cluster(&cluster, Some(&cluster), ""));
                } else {
                    out!("{}", members_text(&cluster));
                }
                Ok(exit::OK)
            }
            Response::Members(None) => Err(CommandError::new(
                exit::FAILURE,
                format!(
                    "gossip is off on node {}: start it with --gossip ADDR or --join HOST:PORT (or gossip.enabled = true)",
                    client.welcome().node
                ),
            )),
            other => Err(unexpected(&other)),
        },
        ClientCommand::Shutdown { wait } => {
            // The node's pid, to tell when a node on this machine has exited (its data
            // directory unlocked), not only stopped listening.
            let pid = if wait {
                match client.request(Request::Status { task_limit: 0 }).await? {
                    Response::Status(snapshot) => Some(snapshot.node.pid),
                    other => return Err(unexpected(&other)),
                }
            } else {
                None
            };
            match client.request(Request::Shutdown).await? {
                Response::ShuttingDown => {}
                other => return Err(unexpected(&other)),
            }
            let node = &client.welcome().node;
            if wait {
                wait_until_stopped(client.address(), pid).await?;
            }
            if json {
                outln!(
                    "{}",
                    serde_json::json!({ "shutting_down": true, "stopped": wait, "node": node })
                );
            } else if wait {
                outln!("node {node} has stopped");
            } else {
                outln!("node {node} is shutting down");
            }
            Ok(exit::OK)
        }
    }
}

/// How a `submit --wait` ended: the node answered (or the connection failed), or a signal
/// stopped the wait first.
enum Waited {
    Answer {
        answer: Result<Response, ClientError>,
        /// The submitted tasks, if the node said which before it answered.
        ids: Option<Vec<TaskId>>,
    },
    Interrupted {
        signal: &'static str,
        /// The submitted tasks, if the node had made them durable and said so.
        ids: Option<Vec<TaskId>>,
    },
}

/// Submits and waits for the outcomes, listening for SIGINT and SIGTERM meanwhile: a
/// stopped wait can still say which tasks it leaves running on the node. On a terminal,
/// says which tasks it waits for once the node has them.
async fn submit_and_wait(client: &Client, request: SubmitRequest) -> Result<Waited, CommandError> {
    let signal = crate::signal_listener().map_err(|error| {
        CommandError::new(
            exit::FAILURE,
            format!("cannot listen for Ctrl-C while waiting: {error}"),
        )
    })?;
    let (accepted, mut accepted_ids) = tokio::sync::oneshot::channel();
    let answer = client.submit_and_wait(request, accepted);
    tokio::pin!(answer, signal);
    let mut ids: Option<Vec<TaskId>> = None;
    let mut listening = true;
    loop {
        tokio::select! {
            // The ids may have come in just before, unpolled.
            answer = &mut answer => {
                let ids = ids.or_else(|| accepted_ids.try_recv().ok());
                return Ok(Waited::Answer { answer, ids });
            }
            signal = &mut signal => {
                let ids = ids.or_else(|| accepted_ids.try_recv().ok());
                return Ok(Waited::Interrupted { signal, ids });
            }
            received = &mut accepted_ids, if listening => {
                listening = false;
                if let Ok(list) = received {
                    if std::io::stderr().is_terminal() {
                        errln!("{}", waiting_note(&list));
                    }
                    ids = Some(list);
                }
            }
        }
    }
}

/// Said on a terminal while `submit --wait` waits.
fn waiting_note(ids: &[TaskId]) -> String {
    let (what, _) = named_tasks(ids);
    format!("goliath: waiting for {what}; Ctrl-C stops the wait, not the tasks")
}

/// Submitted tasks as a message names them, and the pronoun for them: `task 7` and "it",
/// or `3 tasks (41-43)` and "them".
fn named_tasks(ids: &[TaskId]) -> (String, &'static str) {
    match ids {
        [id] => (format!("task {id}"), "it"),
        _ => (format!("{} tasks ({})", ids.len(), id_ranges(ids)), "them"),
    }
}

/// What a `submit --wait` stopped by a signal says: the tasks keep running on the node, and
/// how to find or stop them. With `--json`, also `{"interrupted":…,"ids":[…]}` on stdout.
fn interrupted_wait(signal: &str, ids: Option<&[TaskId]>, node: &str, json: bool) -> CommandError {
    if json {
        outln!(
            "{}",
            serde_json::json!({ "interrupted": signal, "ids": ids })
        );
    }
    let message = match ids {
        // The commands name the node, so they go where the submission went.
        Some([id]) => format!(
            "{signal}: stopped waiting; the node has the task ({id}) and goes on with it: `goliath task --node {node} {id}` shows how it is doing, `goliath cancel --node {node} {id}` stops it"
        ),
        Some(ids) if !ids.is_empty() => {
            let list = id_ranges(ids);
            format!(
                "{signal}: stopped waiting; the node has the {} tasks ({list}) and goes on with those not finished: `goliath tasks --node {node}` shows how they are doing, `goliath cancel --node {node} {list}` stops them",
                ids.len()
            )
        }
        _ => format!(
            "{signal}: stopped waiting before the node had made the submission durable; `goliath tasks --node {node}` shows whether it took the tasks"
        ),
    };
    CommandError::new(exit::INTERRUPTED, message)
}

/// Ids as `goliath cancel` takes them: runs of consecutive ids as ranges (`7 9-12`).
fn id_ranges(ids: &[TaskId]) -> String {
    goliath::runtime::task::id_runs(ids)
        .iter()
        .map(|(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The longest `goliath shutdown --wait` waits.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(300);

/// Waits until the node at `address` has stopped: when it runs on this machine (a loopback
/// address) and its process `pid` can be watched, until that process has exited, so a node
/// started right after finds the port and the data directory free (a node a supervisor
/// starts at once on the same address is another process: it does not hold this wait for
/// its whole 5 minutes); else until the address refuses connections.
async fn wait_until_stopped(address: &str, pid: Option<u32>) -> Result<(), CommandError> {
    let local = tokio::net::lookup_host(address)
        .await
        .map(|mut found| found.all(|at| at.ip().is_loopback()))
        .unwrap_or(false);
    let watched = pid.filter(|pid| local && process_runs(*pid));
    let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
    loop {
        // What still shows the node, if anything: its process, else its port.
        let still = match watched {
            Some(pid) => process_runs(pid).then_some("running"),
            None => tokio::net::TcpStream::connect(address)
                .await
                .is_ok()
                .then_some("listening"),
        };
        let Some(still) = still else {
            return Ok(());
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(CommandError::new(
                exit::FAILURE,
                format!(
                    "the node at {address} is still {still} {}s after it was asked to shut down; its tasks may still be finishing (shutdown.grace)",
                    SHUTDOWN_WAIT.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether process `pid` runs on this machine as a goliath node: listed in /proc, not a
/// zombie (one that has exited and waits for its parent to collect it), and running the
/// same program as this command (a node in a container reports the pid it has there, which
/// on the host is some other process).
fn process_runs(pid: u32) -> bool {
    let program = |pid: &str| {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .and_then(|path| path.file_name().map(|name| name.to_owned()))
    };
    // Unreadable (another user's process) counts as not ours: the port alone then decides.
    let theirs = program(&pid.to_string());
    if theirs.is_none() || theirs != program("self") {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which may hold spaces: after the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// `{"tasks": […], "duplicate": B}` of `submit --wait --json`, each task's fields in the
/// order of `goliath task --json`: built from the structs, not through `json!`, whose map
/// would sort them by name.
#[derive(serde::Serialize)]
struct TaskList<'a> {
    tasks: &'a [TaskInfo],
    duplicate: bool,
}

/// `goliath tasks --json`: a page of tasks, and where the next one starts (`null` when this
/// one was not full, so nothing older is left).
#[derive(serde::Serialize)]
struct TaskPage<'a> {
    tasks: &'a [TaskInfo],
    next_before: Option<TaskId>,
}

/// `document` as JSON, with the member table `cluster` it holds at `pointer` (a JSON
/// pointer; `""` for the document itself) as `members --json` shows every table: `null`
/// where the tables show `-`. Without a table, the document as it is.
fn json_with_cluster<T: serde::Serialize>(
    document: &T,
    cluster: Option<&ClusterSnapshot>,
    pointer: &str,
) -> String {
    let Some(cluster) = cluster else {
        return to_json(document);
    };
    // Edited as a value: its keys keep their order (serde_json's `preserve_order`).
    let mut value = match serde_json::to_value(document) {
        Ok(value) => value,
        Err(_) => return to_json(document),
    };
    if let Some(table) = value.pointer_mut(pointer) {
        blank_what_is_not_current(table, cluster);
    }
    to_json(&value)
}

/// A member table's JSON with `null` where the tables show `-`: the phi of a member that
/// is not up (its last one, or 0 from a node that is leaving, would read as healthy) and
/// the load a member that is not up reported last.
fn blank_what_is_not_current(value: &mut serde_json::Value, cluster: &ClusterSnapshot) {
    let Some(members) = value
        .get_mut("members")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return;
    };
    for (member, json) in cluster.members.iter().zip(members) {
        if cluster.phi_of(member).is_none() {
            json["phi"] = serde_json::Value::Null;
        }
        if member.current_load().is_none() {
            json["meta"] = serde_json::Value::Null;
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot render JSON: {e}\"}}"))
}

fn unexpected(response: &Response) -> CommandError {
    CommandError::new(
        exit::FAILURE,
        format!("unexpected answer from the node: {response:?}"),
    )
}

fn output_line(info: &TaskInfo) -> String {
    if let Some(error) = &info.error {
        return error.clone();
    }
    match &info.output {
        Some(TaskOutput::Process(process)) => {
            // The first line, marked when more follows (as a cut line is), so a table row
            // is not taken for the whole output.
            let mut lines = process.stdout.lines();
            let first = lines.next().unwrap_or("");
            if lines.any(|line| !line.is_empty()) {
                format!("{first} …")
            } else {
                first.to_string()
            }
        }
        Some(output) => output.to_string(),
        None => String::new(),
    }
}

/// A table of tasks: id, state, kind, worker, attempt, duration, output.
///
/// TIME is from first run to finish; for a task still running, to `now_unix_us` (or `-`
/// without it).
pub fn task_table(tasks: &[TaskInfo], now_unix_us: Option<u64>) -> String {
    let mut out = String::new();
    // As wide as the longest id: ids skip a billion after a repair, and a wider one used to
    // push its row out of line.
    let id_width = tasks
        .iter()
        .map(|task| task.id.to_string().len())
        .max()
        .unwrap_or(0)
        .max(8);
    let _ = writeln!(
        out,
        "{:>id_width$}  {:<9}  {:<24}  {:>6}  {:>3}  {:>9}  OUTPUT",
        "ID", "STATE", "SPEC", "WORKER", "TRY", "TIME"
    );
    for task in tasks {
        let spec = fit_columns(&printable(&task.spec, false), 24);
        let worker = task
            .worker
            .map(|w| w.to_string())
            .unwrap_or_else(|| "-".into());
        let time = task
            .finished_unix_us
            .or(now_unix_us)
            .and_then(|end| task.duration_us(end))
            .map(|us| ShortDuration(Duration::from_micros(us)).to_string())
            .unwrap_or_else(|| "-".into());
        let output = fit_columns(&printable(&output_line(task), false), 60)
            .trim_end()
            .to_string();
        let _ = writeln!(
            out,
            "{:>id_width$}  {:<9}  {}  {:>6}  {:>3}  {:>9}  {}",
            task.id, task.state, spec, worker, task.attempt, time, output
        );
    }
    out
}

/// `text` in exactly `columns` terminal columns: cut with `…` when wider (a CJK character
/// takes two columns, so counting characters would push the next column right), padded
/// with spaces when narrower.
fn fit_columns(text: &str, columns: usize) -> String {
    use unicode_width::UnicodeWidthStr as _;
    let mut fitted = goliath::runtime::units::cut_to_width(text, columns);
    let used = fitted.width();
    fitted.extend(std::iter::repeat_n(' ', columns.saturating_sub(used)));
    fitted
}

fn task_detail(info: &TaskInfo) -> String {
    // From one Unix µs time to a later one, as a short duration.
    let between =
        |from: u64, to: u64| ShortDuration(Duration::from_micros(to.saturating_sub(from)));
    let mut out = String::new();
    let _ = writeln!(out, "task      {}", info.id);
    let _ = writeln!(out, "spec      {}", printable(&info.spec, false));
    let _ = writeln!(out, "state     {}", info.state);
    if let Some(worker) = info.worker {
        let _ = writeln!(out, "worker    {worker}");
    }
    let _ = writeln!(out, "attempt   {}", info.attempt);
    let _ = writeln!(out, "submitted {}", UtcTime(info.submitted_unix_us));
    if let Some(started) = info.started_unix_us {
        // A run after a restart: the time since acceptance holds the earlier runs and the
        // time the node was down, not only a wait in the queue.
        let waited = if info.attempt > 1 {
            format!(
                "run {}; {} after it was accepted, earlier runs and restarts included",
                info.attempt,
                between(info.submitted_unix_us, started)
            )
        } else {
            format!("queued {}", between(info.submitted_unix_us, started))
        };
        let _ = writeln!(out, "started   {} ({waited})", UtcTime(started));
    }
    if let Some(finished) = info.finished_unix_us {
        match info.started_unix_us {
            Some(started) => {
                let _ = writeln!(
                    out,
                    "finished  {} (took {}, {} on workers)",
                    UtcTime(finished),
                    between(started, finished),
                    ShortDuration(Duration::from_micros(info.run_us))
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "finished  {} (never started; queued {})",
                    UtcTime(finished),
                    between(info.submitted_unix_us, finished)
                );
            }
        }
    }
    if let Some(error) = &info.error {
        let _ = writeln!(out, "error     {}", printable(error, false));
    }
    match &info.output {
        Some(TaskOutput::Process(process)) => {
            let status = match (process.exit_code, process.signal) {
                (Some(code), _) => format!("exit code {code}"),
                (None, Some(signal)) => format!("killed by signal {signal}"),
                _ => "no exit status".into(),
            };
            let _ = writeln!(out, "exit      {status}");
            for (name, text, truncated) in [
                ("stdout", &process.stdout, process.stdout_truncated),
                ("stderr", &process.stderr, process.stderr_truncated),
            ] {
                if text.is_empty() && truncated == 0 {
                    continue;
                }
                let _ = writeln!(out, "{name}:");
                for line in text.lines() {
                    let _ = writeln!(out, "  {}", printable(line, true));
                }
                if truncated > 0 {
                    let _ = writeln!(
                        out,
                        "  … {truncated} more bytes not kept (beyond exec.max_output or, for a task from before a restart, beyond the 4 KiB the log keeps)"
                    );
                }
            }
        }
        Some(TaskOutput::None) | None => {}
        Some(output) => {
            let _ = writeln!(out, "output    {}", printable(&output.to_string(), false));
        }
    }
    out
}

/// The membership table: one line per member, glyph ● alive, ◐ suspect, ✕ dead or left.
/// Membership events `goliath members` prints (the newest); `--json` gives every one kept.
const MEMBERS_TEXT_EVENTS: usize = 10;

fn members_text(cluster: &ClusterSnapshot) -> String {
    let mut out = String::new();
    let now = cluster
        .members
        .iter()
        .find(|m| m.local)
        .and_then(|m| m.last_heard_unix_us)
        .unwrap_or(0);
    let standing = match cluster.status {
        LocalStatus::Joining => "joining: no member has answered yet",
        LocalStatus::Active => "active",
        LocalStatus::Leaving => "leaving",
        LocalStatus::Yielded => {
            "yielded its name to a newer process and stopped gossiping: the members below are as it last knew them"
        }
    };
    let _ = writeln!(
        out,
        "cluster {} as seen by {} ({standing}; generation {}, incarnation {}, local health {}/8{})",
        cluster.cluster,
        cluster.local,
        cluster.generation,
        cluster.incarnation,
        cluster.local_health,
        if cluster.local_health > 0 {
            format!(
                ": its own probes have been failing, so it probes and decides {}x slower",
                cluster.local_health + 1
            )
        } else {
            String::new()
        }
    );
    let counts = &cluster.counts;
    let _ = writeln!(
        out,
        "{} alive, {} suspect, {} dead, {} left{}",
        counts.alive,
        counts.suspect,
        counts.dead,
        counts.left,
        if counts.degraded > 0 {
            format!(
                ", {} degraded (phi >= {})",
                counts.degraded, cluster.phi_threshold
            )
        } else {
            String::new()
        }
    );
    // Columns as wide as their longest entry (names take up to 63 bytes, IPv6 addresses
    // more than 21 characters), so every row lines up.
    let name_width = cluster
        .members
        .iter()
        .map(|m| m.name.chars().count())
        .fold(24, usize::max);
    let length = |address: &Option<String>| address.as_deref().map_or(1, |a| a.chars().count());
    let address_width = cluster
        .members
        .iter()
        .map(|m| length(&m.gossip_address).max(m.protocol_address_shown().chars().count()))
        .fold(21, usize::max);
    let _ = writeln!(
        out,
        "  {:<name_width$} {:<8} {:>6} {:>5}  {:<address_width$} {:<address_width$} {:>11} {:>6}",
        "NAME", "STATE", "PHI", "INC", "GOSSIP", "PROTOCOL", "HEARD", "LOAD"
    );
    // By name, numbers in names by value (`n2` before `n10`), as the console lists them.
    let mut members: Vec<_> = cluster.members.iter().collect();
    members.sort_by(|a, b| goliath::runtime::units::natural_order(&a.name, &b.name));
    for member in members {
        let glyph = match member.state {
            MemberState::Alive => "●",
            MemberState::Suspect => "◐",
            MemberState::Dead | MemberState::Left => "✕",
        };
        let state = if member.degraded && member.state.is_up() {
            format!("{}*", member.state)
        } else {
            member.state.to_string()
        };
        let heard = if member.local {
            "-".to_string()
        } else {
            member
                .last_heard_unix_us
                .map(|t| {
                    ShortDuration(Duration::from_micros(now.saturating_sub(t))).to_string() + " ago"
                })
                .unwrap_or_else(|| "never".into())
        };
        let phi = cluster
            .phi_of(member)
            .map_or_else(|| "-".to_string(), |phi| format!("{phi:.1}"));
        let load = member.load_shown(2);
        let _ = writeln!(
            out,
            "{glyph} {:<name_width$} {:<8} {:>6} {:>5}  {:<address_width$} {:<address_width$} {:>11} {:>6}",
            member.name,
            state,
            phi,
            member.incarnation,
            member.gossip_address.as_deref().unwrap_or("-"),
            member.protocol_address_shown(),
            heard,
            load
        );
    }
    if !cluster.events.is_empty() {
        let kept = cluster.events.len();
        if kept > MEMBERS_TEXT_EVENTS {
            let _ = writeln!(
                out,
                "recent events (the last {MEMBERS_TEXT_EVENTS} of {kept} kept; --json lists them all):"
            );
        } else {
            let _ = writeln!(out, "recent events:");
        }
        for event in cluster.events.iter().rev().take(MEMBERS_TEXT_EVENTS).rev() {
            let _ = writeln!(out, "  {} {}", UtcTime(event.at_unix_us), event.text);
        }
    }
    out
}

fn status_text(snapshot: &NodeSnapshot) -> String {
    let node = &snapshot.node;
    let mut out = String::new();
    let uptime = Duration::from_micros(node.now_unix_us.saturating_sub(node.started_unix_us));
    let _ = writeln!(
        out,
        "node      {} (goliath {}, pid {})",
        node.name, node.version, node.pid
    );
    if let Some(listen) = &node.listen {
        let _ = writeln!(out, "listen    {listen}");
    }
    let _ = writeln!(out, "uptime    {}", ShortDuration(uptime));
    let _ = writeln!(
        out,
        "accepting {}",
        if node.accepting {
            "yes"
        } else {
            "no (shutting down)"
        }
    );
    let _ = writeln!(
        out,
        "exec      {}",
        match (node.exec_enabled, node.exec_remote) {
            (false, _) => "disabled (exec.enabled = false)",
            (true, false) => "local only: over the network refused (exec.remote = false)",
            (true, true) => "enabled, also over the network (exec.remote = true)",
        }
    );
    let counts = &snapshot.counts;
    let _ = writeln!(
        out,
        "tasks     {} queued, {} running now; since this start {} submitted{}, {} succeeded, {} failed, {} cancelled, {} timed out",
        counts.queued,
        counts.running,
        counts.submitted,
        // Recovered tasks finish in this start's counts: said, so the counts add up.
        if counts.recovered > 0 {
            format!(" (and {} recovered from the log)", counts.recovered)
        } else {
            String::new()
        },
        counts.succeeded,
        counts.failed,
        counts.cancelled,
        counts.timed_out
    );
    let arena = &snapshot.arena;
    let _ = writeln!(
        out,
        "arena     {}/{} slots in use (high water {}), {} refused",
        arena.in_use, arena.capacity, arena.high_water, arena.rejected
    );
    if let Some(wal) = &snapshot.wal {
        out.push_str(&wal_text(wal));
    } else {
        let _ = writeln!(
            out,
            "wal       off (memory only: a restart forgets every task)"
        );
    }
    match &snapshot.cluster {
        Some(cluster) => {
            let standing = match cluster.status {
                LocalStatus::Joining => "joining (no seed has answered yet)",
                LocalStatus::Active => "active",
                LocalStatus::Leaving => "leaving",
                LocalStatus::Yielded => "NOT GOSSIPING: gave way to a newer process with its name",
            };
            let counts = &cluster.counts;
            let _ = writeln!(
                out,
                "cluster   {} as {} at {}, {standing}: {} alive, {} suspect, {} dead, {} left (goliath members)",
                cluster.cluster,
                cluster.local,
                cluster.gossip_address,
                counts.alive,
                counts.suspect,
                counts.dead,
                counts.left
            );
        }
        None => {
            let _ = writeln!(
                out,
                "cluster   off (gossip is off: --gossip or --join turns it on)"
            );
        }
    }
    let _ = writeln!(
        out,
        "workers   {} (submission queue {})",
        snapshot.workers.len(),
        snapshot.submission_queue_depth
    );
    for worker in &snapshot.workers {
        let _ = writeln!(
            out,
            "  #{:<3} {:<9} depth {:>5}  executed {:>10}  stole {:>8}  stolen {:>8}  parks {:>7}",
            worker.index,
            format!("{:?}", worker.activity).to_lowercase(),
            worker.depth,
            worker.executed,
            worker.stole,
            worker.stolen_from,
            worker.parks
        );
    }
    out
}

/// Resolves once the reader of standard output has gone (a closed pipe or socket); never
/// for a terminal or a file. A thread waits in poll(2) for it.
async fn reader_gone() {
    let (gone, noticed) = tokio::sync::oneshot::channel();
    let watcher = std::thread::Builder::new()
        .name("goliath-stdout-reader".into())
        .spawn(move || {
            if goliath::runtime::sys::wait_until_reader_gone(std::io::stdout()) {
                let _ = gone.send(());
            }
        });
    if watcher.is_err() || noticed.await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The WAL lines of `goliath status`.
fn wal_text(wal: &goliath::runtime::wal::WalSnapshot) -> String {
    use goliath::runtime::units::HumanSize;
    let mut out = String::new();
    let health = match &wal.failure {
        None => "healthy".to_string(),
        Some(failure) => format!("FAILED, acknowledging nothing: {failure}"),
    };
    let _ = writeln!(
        out,
        "wal       {health}; sync {}; {}",
        wal.sync.as_str(),
        wal.data_dir
    );
    let never = wal.sync == goliath::runtime::wal::WalSync::Never;
    if never {
        let _ = writeln!(
            out,
            "  fsync   none: wal.sync = never acknowledges once written (the last moments are lost on power loss)"
        );
    } else if wal.window_fsyncs == 0 {
        // Nothing to measure: zeros would read as an impossibly fast disk.
        let _ = writeln!(
            out,
            "  fsync   none in the last {:.1}s (nothing was written)",
            wal.window_us as f64 / 1e6
        );
    } else {
        let _ = writeln!(
            out,
            "  fsync   p50 {:.0}µs  p99 {:.0}µs  max {:.0}µs over the last {:.1}s ({} fsync{})",
            wal.fsync_p50_us,
            wal.fsync_p99_us,
            wal.fsync_max_us,
            wal.window_us as f64 / 1e6,
            wal.window_fsyncs,
            if wal.window_fsyncs == 1 { "" } else { "s" }
        );
    }
    let _ = writeln!(
        out,
        "  batches {:.1} records, {} per {}; {:.0} appends/s; {} pending",
        wal.records_per_fsync,
        HumanSize::approx(wal.bytes_per_fsync as u64),
        if never { "write" } else { "fsync" },
        wal.appends_per_sec,
        wal.pending_records
    );
    let checkpoint = match wal.last_checkpoint_unix_us {
        Some(at) => format!(
            "last checkpoint {} ({})",
            UtcTime(at),
            HumanSize::approx(wal.last_checkpoint_bytes)
        ),
        None => "no checkpoint yet".to_string(),
    };
    let _ = writeln!(
        out,
        "  disk    {} in {} segments; {checkpoint}",
        HumanSize::approx(wal.disk_bytes),
        wal.segments
    );
    if let Some(error) = &wal.checkpoint_error {
        let _ = writeln!(out, "  CHECKPOINTS FAILING (disk use grows): {error}");
    }
    if let Some(problem) = &wal.next_segment_error {
        let _ = writeln!(out, "  NEXT SEGMENT NOT READY: {problem}");
    }
    if wal.checkpoint_waits > 0 {
        let _ = writeln!(
            out,
            "  checkpoints fell behind: acknowledgements waited for them {} times (a disk slower than the load, or checkpoints, {} the last, large beside wal.checkpoint_every; the node's log says which)",
            wal.checkpoint_waits,
            HumanSize::approx(wal.last_checkpoint_bytes)
        );
    }
    let recovered = &wal.recovered;
    // Tasks the start ended (their cancel was asked, or they cannot run here) are not among
    // those to run again: said, or a start that failed exec tasks read as if it had none.
    let ended = match recovered.finished_at_start {
        0 => String::new(),
        count => format!(
            ", {} ended at start (cancelled before the stop, or unable to run here: the node's log names them)",
            count
        ),
    };
    let _ = writeln!(
        out,
        "  start   recovered {} to run again ({} had started){ended}, {} in the history, {} keys; {} torn bytes dropped",
        goliath::runtime::units::counted(
            recovered.requeued_running + recovered.requeued_queued,
            "task",
            "tasks"
        ),
        recovered.requeued_running,
        recovered.history,
        recovered.keys,
        recovered.dropped_bytes
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unquoted_words_form_one_spec_and_quoted_args_are_separate() {
        assert_eq!(
            spec_lines(&args(&["spin", "200ms", "x20"]), false)
                .ok()
                .map(|v| v.join("|")),
            Some("spin 200ms x20".into())
        );
        assert_eq!(
            spec_lines(&args(&["spin 1s", "fib 30"]), false)
                .ok()
                .map(|v| v.join("|")),
            Some("spin 1s|fib 30".into())
        );
        assert_eq!(
            spec_lines(&args(&["exec", "--", "sh", "-c", "echo hi"]), false)
                .ok()
                .map(|v| v.join("|")),
            Some("exec -- sh -c \"echo hi\"".into())
        );
        assert!(spec_lines(&[], false).is_err());
    }

    #[test]
    fn an_option_after_the_specs_is_a_usage_error_except_inside_an_exec_spec() {
        for list in [
            &["fib 30", "sleep 1s", "--wait"][..],
            &["spin", "200ms", "x20", "--json"][..],
            &["fib", "30", "--node=127.0.0.1:7420"][..],
        ] {
            match spec_lines(&args(list), false) {
                Err(error) => {
                    assert_eq!(error.code, exit::USAGE, "{list:?}");
                    assert!(
                        error.message.contains("put options first"),
                        "{}",
                        error.message
                    );
                }
                Ok(lines) => panic!("{list:?} submitted as {lines:?}"),
            }
        }
        assert_eq!(
            spec_lines(&args(&["exec", "--", "mytool", "--json"]), false)
                .ok()
                .map(|v| v.join("|")),
            Some("exec -- mytool --json".into()),
            "an exec command's own options stay its own"
        );
        // The example names what the option needs.
        let error = spec_lines(&args(&["fib", "5", "--node", "h:1"]), false).err();
        assert!(
            error.is_some_and(|e| e.message.contains("goliath submit --node VALUE SPEC")),
            "the example gives --node its value"
        );
    }

    #[test]
    fn specs_on_standard_input_are_read_up_to_a_bound() {
        let input = "fib 310\n".repeat(128);
        let Ok((lines, _)) = bounded_spec_lines(input.as_bytes(), 1024) else {
            panic!("input of exactly the limit is read");
        };
        assert_eq!(lines.len(), 128);
        // A stream that never ends is refused once it passes the limit.
        let endless = std::io::Read::chain(input.as_bytes(), std::io::repeat(b'#'));
        let Err(error) = bounded_spec_lines(endless, 1024) else {
            panic!("endless input accepted");
        };
        assert_eq!(error.code, exit::USAGE);
        assert!(
            error.message.contains("more than 1KiB of specs") && error.message.contains("split it"),
            "{}",
            error.message
        );
        // A count bounds the lines kept too (each costs more than its text).
        let many = "x\n".repeat(STDIN_SPEC_LINES_MAX + 1);
        let Err(error) = spec_lines_of(many.as_bytes()) else {
            panic!("{} lines accepted", STDIN_SPEC_LINES_MAX + 1);
        };
        assert!(
            error
                .message
                .contains("more than 1000000 specs (line 1000001 is one more)"),
            "{}",
            error.message
        );
    }

    #[test]
    fn specs_on_standard_input_keep_their_indent_so_error_columns_match_the_line() {
        let Ok((lines, numbers)) =
            spec_lines_of(b"  spni 1s \n   # indented comment\n \t\nfib 3\n")
        else {
            panic!("specs");
        };
        assert_eq!(lines, ["  spni 1s", "fib 3"]);
        assert_eq!(numbers, [1, 4]);
        let error = goliath::runtime::Kinds::new()
            .parse(&lines[0])
            .expect_err("an unknown kind");
        assert_eq!(error.column, 3, "{}", error.message);
    }

    #[test]
    fn specs_on_standard_input_skip_a_byte_order_mark_and_name_a_line_not_utf8() {
        let Ok((lines, numbers)) =
            spec_lines_of("\u{feff}echo bom\n# a comment\n\nfib 3\n".as_bytes())
        else {
            panic!("specs");
        };
        assert_eq!(lines, ["echo bom", "fib 3"]);
        assert_eq!(numbers, [1, 4]);
        let Err(error) = spec_lines_of(b"echo a\n\xff\n") else {
            panic!("not UTF-8");
        };
        assert!(
            error.message.contains("line 2: not UTF-8"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_line_end_after_a_spec_argument_and_a_byte_order_mark_are_dropped_as_on_standard_input() {
        assert_eq!(
            spec_lines(&args(&["fib 5\r", "echo a\r\n"]), false).expect("taken"),
            ["fib 5", "echo a"]
        );
        assert_eq!(
            spec_lines(&args(&["\u{feff}fib", "5\r"]), false).expect("taken"),
            ["fib 5"]
        );
        // An exec program's own arguments keep theirs.
        assert_eq!(
            spec_lines(&args(&["exec", "--", "printf", "a\n"]), false).expect("taken"),
            ["exec -- printf \"a\n\""]
        );
        // A carriage return inside a line of standard input joined two specs into one task.
        let Err(error) = spec_lines_of(b"fib 5\r\necho a\recho b\n") else {
            panic!("refused");
        };
        assert!(
            error.message.starts_with("standard input, line 2: ")
                && error.message.contains("carriage return inside it"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_spec_argument_spanning_lines_is_refused_unless_an_exec_argument_holds_the_break() {
        let error = spec_lines(&args(&["fib 5\nfib 6"]), false).expect_err("refused");
        assert_eq!(error.code, exit::USAGE);
        assert!(
            error
                .message
                .contains("argument \"fib 5␊fib 6\" spans lines"),
            "{}",
            error.message
        );
        assert!(spec_lines(&args(&["exec", "--", "sh", "-c", "echo a\necho b"]), false).is_ok());
        assert!(spec_lines(&args(&["exec -- sh -c 'echo a\necho b'", "fib 5"]), false).is_ok());
    }

    fn task(id: u64, state: TaskState, started: u64, finished: Option<u64>) -> TaskInfo {
        TaskInfo {
            id: TaskId(id),
            spec: "sleep 20s".into(),
            kind: "sleep".into(),
            state,
            worker: None,
            attempt: 1,
            submitted_unix_us: started,
            started_unix_us: Some(started),
            finished_unix_us: finished,
            run_us: 0,
            output: None,
            error: None,
        }
    }

    #[test]
    fn tables_and_views_show_control_characters_instead_of_sending_them_to_the_terminal() {
        let mut info = task(9, TaskState::Succeeded, 1, Some(2));
        info.spec = "echo \u{1b}[31mred\nline".into();
        info.output = Some(TaskOutput::Process(Box::new(
            goliath::runtime::ProcessOutput {
                stdout: "a\rb\x07\tc\nnext \u{1b}]0;title\u{7}\n".into(),
                ..Default::default()
            },
        )));
        let table = task_table(std::slice::from_ref(&info), None);
        assert_eq!(table.lines().count(), 2, "one row: {table}");
        let detail = task_detail(&info);
        for text in [&table, &detail] {
            assert!(
                !text
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t'),
                "{text:?}"
            );
        }
        assert!(table.contains("echo ␛[31mred␊line"), "{table}");
        assert!(detail.contains("  a␍b␇\tc"), "{detail}");
        assert!(detail.contains("  next ␛]0;title␇"), "{detail}");
    }

    #[test]
    fn a_row_marks_an_exec_output_of_more_than_one_line() {
        let mut info = task(9, TaskState::Succeeded, 1, Some(2));
        for (stdout, shown) in [("x\ny\n", "x …"), ("x\n", "x"), ("x\n\n", "x")] {
            info.output = Some(TaskOutput::Process(Box::new(
                goliath::runtime::ProcessOutput {
                    stdout: stdout.into(),
                    ..Default::default()
                },
            )));
            assert_eq!(output_line(&info), shown, "{stdout:?}");
        }
    }

    #[test]
    fn a_task_cancelled_in_the_queue_says_it_never_started_instead_of_took_zero() {
        let mut info = task(
            4,
            TaskState::Cancelled,
            1_700_000_000_000_000,
            Some(1_700_000_002_500_000),
        );
        info.started_unix_us = None;
        let detail = task_detail(&info);
        assert!(detail.contains("(never started; queued 2.50s)"), "{detail}");
        assert!(!detail.contains("took"), "{detail}");
        info.started_unix_us = Some(1_700_000_001_000_000);
        let detail = task_detail(&info);
        assert!(detail.contains("(took 1.50s, 0ns on workers)"), "{detail}");
        assert!(detail.contains("(queued 1.00s)"), "{detail}");
        // A later run: the time since acceptance is not a wait in the queue.
        info.attempt = 2;
        let detail = task_detail(&info);
        assert!(
            detail.contains(
                "(run 2; 1.00s after it was accepted, earlier runs and restarts included)"
            ),
            "{detail}"
        );
    }

    /// The TIME column of the table's only row.
    fn time_column(table: &str) -> String {
        let row = table.lines().nth(1).unwrap_or_default();
        // ID, STATE, the spec's two words, WORKER, TRY, TIME.
        row.split_whitespace()
            .nth(6)
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn a_running_tasks_time_is_its_time_so_far_and_never_a_false_zero() {
        let started = 1_700_000_000_000_000;
        let running = [task(3, TaskState::Running, started, None)];
        assert_eq!(
            time_column(&task_table(&running, Some(started + 5_200_000))),
            "5.20s"
        );
        assert_eq!(time_column(&task_table(&running, None)), "-");
        let finished = [task(
            3,
            TaskState::Succeeded,
            started,
            Some(started + 20_000_000),
        )];
        assert_eq!(time_column(&task_table(&finished, None)), "20.00s");
    }

    #[test]
    fn wide_characters_in_a_spec_keep_the_columns_in_line() {
        use unicode_width::UnicodeWidthStr as _;
        let started = 1_700_000_000_000_000;
        let rows: Vec<TaskInfo> = [
            "echo 日本",
            "echo 日本語の長いテキストはここで切れる",
            "fib 30",
        ]
        .into_iter()
        .enumerate()
        .map(|(i, spec)| TaskInfo {
            spec: spec.into(),
            worker: Some(7),
            ..task(
                // One id past a repair's skip, wider than the column's usual 8.
                if i == 0 { 1_000_000_001 } else { i as u64 + 1 },
                TaskState::Succeeded,
                started,
                Some(started + 1),
            )
        })
        .collect();
        let table = task_table(&rows, None);
        // The header's WORKER ends where every row's worker number ends, in columns.
        let end_of = |line: &str, needle: &str| {
            let at = line.find(needle).expect("present") + needle.len();
            line[..at].width()
        };
        let mut lines = table.lines();
        let header = end_of(lines.next().expect("header"), "WORKER");
        for row in lines {
            assert_eq!(end_of(row, "     7"), header, "{table}");
        }
        assert!(table.contains('…'), "the long spec is cut: {table}");
    }

    #[test]
    fn members_of_a_down_member_show_no_phi_or_load_and_columns_line_up() {
        use goliath::runtime::gossip::{GossipStats, MemberCounts, MemberLoad};
        use goliath::runtime::snapshot::MemberInfo;
        const NOW: u64 = 1_700_000_000_000_000;
        let member = |name: &str, state: MemberState, local: bool, heard_ago_us: u64| MemberInfo {
            name: name.into(),
            generation: 1,
            incarnation: 0,
            state,
            degraded: false,
            phi: 2.5,
            gossip_address: Some("127.0.0.1:7421".into()),
            protocol_address: Some("127.0.0.1:7420".into()),
            last_heard_unix_us: Some(NOW - heard_ago_us),
            since_unix_us: NOW,
            local,
            meta: Some(MemberLoad {
                version: 1,
                workers: 2,
                queue_depth: 3,
                arena_free: 60,
                load: 0.75,
            }),
        };
        let cluster = ClusterSnapshot {
            cluster: "goliath".into(),
            local: "alpha".into(),
            generation: 1,
            incarnation: 0,
            gossip_address: "127.0.0.1:7421".into(),
            status: LocalStatus::Active,
            local_health: 0,
            phi_threshold: 8.0,
            counts: MemberCounts::default(),
            members: vec![
                member("alpha", MemberState::Alive, true, 0),
                member("beta", MemberState::Alive, false, 291_600),
                // A name longer than the column's usual 24: every row still lines up.
                member(
                    &format!("gamma-{}", "x".repeat(54)),
                    MemberState::Dead,
                    false,
                    28_520_000,
                ),
            ],
            events: Vec::new(),
            stats: GossipStats::default(),
        };
        // The JSON says `null` where the table says `-`, its keys in the documented order.
        let json = json_with_cluster(&cluster, Some(&cluster), "");
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert!(
            json.starts_with("{\"cluster\":\"goliath\",\"local\":"),
            "{json}"
        );
        assert_eq!(value["members"][1]["phi"], 2.5, "{json}");
        assert_eq!(value["members"][1]["meta"]["load"], 0.75, "{json}");
        assert!(value["members"][2]["phi"].is_null(), "{json}");
        assert!(value["members"][2]["meta"].is_null(), "{json}");
        let text = members_text(&cluster);
        assert!(
            text.contains("as seen by alpha (active; generation 1,"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        let row = |name: &str| {
            lines
                .iter()
                .find(|l| l.contains(name))
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        // glyph, name, state, phi, inc, gossip, protocol, heard (2 words), load
        assert_eq!(row("beta")[3], "2.5", "{text}");
        assert_eq!(row("beta")[9], "0.75", "{text}");
        assert_eq!(row("gamma")[3], "-", "a dead member has no phi: {text}");
        assert_eq!(row("gamma")[9], "-", "nor a current load: {text}");
        // A member whose arena is full refuses every task, whatever its load says.
        let mut full = cluster.clone();
        if let Some(meta) = full.members[1].meta.as_mut() {
            meta.arena_free = 0;
        }
        let text_full = members_text(&full);
        let beta = text_full
            .lines()
            .find(|l| l.contains("beta"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default();
        assert_eq!(beta[9], "full", "{text_full}");
        let header = lines
            .iter()
            .find(|l| l.contains("HEARD"))
            .copied()
            .unwrap_or("");
        // Columns in characters: the state glyphs take several bytes.
        let end_column = |line: &str, word: &str| {
            line.find(word)
                .map(|at| line[..at].chars().count() + word.len())
        };
        let heard_end = end_column(header, "HEARD");
        for name in ["beta", "gamma"] {
            let line = lines
                .iter()
                .find(|l| l.contains(name))
                .copied()
                .unwrap_or("");
            assert_eq!(
                end_column(line, " ago"),
                heard_end,
                "HEARD is right-aligned under its header:\n{header}\n{line}"
            );
        }
        // A member gossiping over a network but serving only its own loopback is marked, and
        // its row still lines up; on one host (all loopback) nothing is marked.
        let mut remote = cluster.clone();
        remote.members[1].gossip_address = Some("10.77.0.2:7421".into());
        let text = members_text(&remote);
        let lines: Vec<&str> = text.lines().collect();
        let beta = lines
            .iter()
            .find(|l| l.contains("beta"))
            .copied()
            .unwrap_or("");
        assert!(beta.contains("127.0.0.1:7420 (its loopback)"), "{text}");
        let header = lines
            .iter()
            .find(|l| l.contains("HEARD"))
            .copied()
            .unwrap_or("");
        assert_eq!(
            end_column(beta, " ago"),
            end_column(header, "HEARD"),
            "{text}"
        );
        assert_eq!(
            text.matches("its loopback").count(),
            1,
            "only the remote one: {text}"
        );
        // Of many events kept, the newest ten are printed, and the heading says so.
        use goliath::runtime::gossip::ClusterEvent;
        let mut busy = cluster.clone();
        busy.events = (0..73u64)
            .map(|i| ClusterEvent {
                at_unix_us: NOW + i,
                member: "beta".into(),
                generation: 1,
                kind: goliath::runtime::gossip::EventKind::Alive,
                told_by: None,
                text: format!("event {i}"),
            })
            .collect();
        let text = members_text(&busy);
        assert!(
            text.contains("recent events (the last 10 of 73 kept; --json lists them all):"),
            "{text}"
        );
        assert!(
            text.contains("event 72") && text.contains("event 63"),
            "{text}"
        );
        assert!(!text.contains("event 62"), "{text}");
    }
}
