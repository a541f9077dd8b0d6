//! What frames carry: the handshake, requests, responses and stream items. Encoded by the
//! codec module; the same types serve the CLI, `console --connect` and tests.

use serde::{Deserialize, Serialize};

use crate::runtime::events::TaskEvent;
use crate::runtime::snapshot::{ClusterSnapshot, NodeSnapshot, TaskInfo, TaskInfoView, TaskQuery};
use crate::runtime::task::{TaskId, TaskState};

/// Client → node, right after the preamble.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Who is connecting (e.g. `goliath-cli 0.1.0`), for the node's logs.
    pub client: String,
    /// The cluster the client expects the node to be in.
    pub cluster: String,
}

/// Node → client: the handshake succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The node's name.
    pub node: String,
    /// The node's cluster.
    pub cluster: String,
    /// The node's goliath version.
    pub version: String,
    /// The largest request frame the node takes (`net.max_frame`): a client refuses to
    /// send a larger one instead of having the connection closed on it.
    pub max_frame: u32,
}

/// One request; the response comes on the same stream.
///
/// `S` is what a submit carries: a [`SubmitRequest`] (owned; what clients build and send) or,
/// in a [`RequestView`], a [`SubmitView`] (borrowed from the frame; what the server reads).
/// Both encode the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request<S = SubmitRequest> {
    /// Submit tasks in the text form.
    Submit(S),
    /// Cancel tasks.
    Cancel {
        /// Which.
        ids: Vec<TaskId>,
    },
    /// Describe one task.
    Task {
        /// Which.
        id: TaskId,
    },
    /// List tasks.
    Tasks(TaskQuery),
    /// The node snapshot.
    Status {
        /// Most tasks to include.
        task_limit: u32,
    },
    /// A stream of task events and/or snapshots until the client cancels the stream.
    Watch(WatchRequest),
    /// Stop the node (after the response is sent).
    Shutdown,
    /// Cluster membership as the node sees it.
    Members,
}

/// Tasks to submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// Lines of the text form, each with optional `xN` copies.
    pub specs: Vec<String>,
    /// A key that makes a retry of the same submission return the same ids.
    pub idempotency_key: Option<String>,
    /// Answer with the finished tasks instead of their ids.
    pub wait: bool,
    /// With `wait`: also send the ids as a [`StreamItem::Accepted`] on the request's stream
    /// once they are durable, unless the tasks have all finished by then (the answer names
    /// them anyway). A client that is stopped while it waits can then say which tasks it
    /// leaves running.
    pub report_ids: bool,
}

/// A [`Request`] as the server decodes it: a submit's text is borrowed from the frame
/// instead of copied into a `String` per spec (the submit path's largest cost in
/// allocations). Every other request is decoded as it is.
pub type RequestView<'a> = Request<SubmitView<'a>>;

/// A [`SubmitRequest`] with its text borrowed from the frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitView<'a> {
    /// Lines of the text form, each with optional `xN` copies.
    #[serde(borrow)]
    pub specs: SpecList<'a>,
    /// A key that makes a retry of the same submission return the same ids.
    #[serde(borrow)]
    pub idempotency_key: Option<&'a str>,
    /// Answer with the finished tasks instead of their ids.
    pub wait: bool,
    /// With `wait`: also send the ids as a [`StreamItem::Accepted`] on the request's stream
    /// once they are durable, unless the tasks have all finished by then (the answer names
    /// them anyway). A client that is stopped while it waits can then say which tasks it
    /// leaves running.
    pub report_ids: bool,
}

/// The specs of a [`SubmitView`], borrowed from the frame; the first (most submits have one)
/// is held inline, so a one-spec submit decodes without allocating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecList<'a> {
    first: Option<&'a str>,
    rest: Vec<&'a str>,
}

/// Room reserved up front for a list's specs at most, whatever length the frame announces
/// (the frame's size limit bounds the rest).
const SPECS_RESERVED: usize = 1024;

impl<'a> SpecList<'a> {
    /// How many specs.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The specs in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.first.into_iter().chain(self.rest.iter().copied())
    }
}

/// Encoded as the `Vec<String>` of a [`SubmitRequest`].
impl Serialize for SpecList<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for SpecList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Specs<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Specs<'a> {
            type Value = SpecList<'a>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a list of task specs")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SpecList<'a>, A::Error> {
                let Some(first) = seq.next_element::<&'de str>()? else {
                    return Ok(SpecList::default());
                };
                let more = seq.size_hint().unwrap_or(0).min(SPECS_RESERVED);
                let mut rest = Vec::with_capacity(more);
                while let Some(spec) = seq.next_element::<&'de str>()? {
                    rest.push(spec);
                }
                Ok(SpecList {
                    first: Some(first),
                    rest,
                })
            }
        }

        deserializer.deserialize_seq(Specs(std::marker::PhantomData))
    }
}

/// What a watch stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    /// Send task events.
    pub events: bool,
    /// Send a snapshot this often (milliseconds, at least 100), or never.
    pub snapshot_every_ms: Option<u32>,
    /// Most tasks per snapshot.
    pub task_limit: u32,
}

/// The answer to a request.
///
/// `T` is how a task is described: a [`TaskInfo`] (owned; what the node builds and most
/// clients read) or, in a [`ResponseView`], a [`TaskInfoView`] (its text borrowed from the
/// frame). Both encode the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response<T = TaskInfo> {
    /// The tasks were accepted.
    Submitted {
        /// Their ids, in submission order.
        ids: Vec<TaskId>,
        /// True when the idempotency key had been seen and these are the earlier ids.
        duplicate: bool,
    },
    /// The submitted tasks finished (for `wait`).
    Finished {
        /// In submission order.
        tasks: Vec<T>,
        /// True when the idempotency key had been seen.
        duplicate: bool,
    },
    /// What each cancel did.
    Cancelled {
        /// One per id asked, in order.
        results: Vec<CancelResult>,
    },
    /// One task.
    Task(T),
    /// A list of tasks.
    Tasks(Vec<T>),
    /// The node snapshot.
    Status(Box<NodeSnapshot>),
    /// The node is shutting down.
    ShuttingDown,
    /// The request failed.
    Error(RemoteError),
    /// Cluster membership; `None` when gossip is off on the node.
    Members(Option<Box<ClusterSnapshot>>),
}

/// A [`Response`] read where it lies in the frame: a task's spec, kind, output and error
/// are borrowed instead of copied into a `String` each, so a client that only looks at an
/// answer (a `wait` round trip's `Finished`) allocates nothing per text. Decode it with
/// [`crate::codec::decode_borrowed`].
pub type ResponseView<'a> = Response<TaskInfoView<'a>>;

/// One cancel's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelResult {
    /// The task.
    pub id: TaskId,
    /// What happened.
    pub outcome: CancelOutcomeWire,
}

/// What a cancel did, on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcomeWire {
    /// The task will stop.
    Requested,
    /// The task had already finished in this state.
    AlreadyFinished(TaskState),
    /// No such task (or forgotten).
    NotFound,
}

/// One item of a watch stream. In JSON (`goliath watch --json`) each item is one object
/// keyed by its kind: `{"event": …}`, `{"snapshot": …}` or `{"lagged": {"skipped": N}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamItem {
    /// A task changed state.
    Event(WatchedEvent),
    /// A snapshot of the node.
    Snapshot(Box<NodeSnapshot>),
    /// The watcher fell behind and this many events were skipped.
    Lagged {
        /// How many.
        skipped: u64,
    },
    /// On a `wait` submission's stream (never a watch's), asked for by
    /// [`SubmitRequest::report_ids`]: its tasks are accepted and durable, with these ids, and
    /// the answer follows when they have finished.
    Accepted {
        /// In submission order.
        ids: Vec<TaskId>,
    },
}

/// A task event as a watcher receives it: the change, and which task it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedEvent {
    /// Which task.
    pub id: TaskId,
    /// Its new state.
    pub state: TaskState,
    /// The worker involved, if any.
    pub worker: Option<u16>,
    /// Its run number.
    pub attempt: u32,
    /// When, in Unix microseconds.
    pub at_unix_us: u64,
    /// The task's text form, while the node still remembers the task (its history is
    /// bounded, so a watcher far behind may get an event without it).
    pub spec: Option<String>,
    /// Why it failed, was cancelled or timed out; only on those events.
    pub error: Option<String>,
}

impl WatchedEvent {
    /// The event with what the node knows of its task (`None` when it is forgotten).
    pub fn new(event: TaskEvent, task: Option<TaskInfo>) -> Self {
        let (spec, error) = match task {
            Some(task) if task.id == event.id => {
                let error = matches!(
                    event.state,
                    TaskState::Failed | TaskState::Cancelled | TaskState::TimedOut
                )
                .then_some(task.error)
                .flatten();
                (Some(task.spec), error)
            }
            _ => (None, None),
        };
        Self {
            id: event.id,
            state: event.state,
            worker: event.worker,
            attempt: event.attempt,
            at_unix_us: event.at_unix_us,
            spec,
            error,
        }
    }
}

/// Why a request failed, with enough detail for the client to say what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// The kind, which picks the CLI's exit code.
    pub kind: RemoteErrorKind,
    /// A sentence naming what and where.
    pub message: String,
}

/// Kinds of request failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteErrorKind {
    /// A spec did not parse (index of the spec, 1-based column).
    BadSpec {
        /// Which spec (0-based).
        index: u32,
        /// Column in it.
        column: u32,
    },
    /// The arena is full.
    Busy {
        /// Slots in use.
        in_use: u64,
        /// All slots.
        capacity: u64,
    },
    /// No such task.
    NotFound,
    /// The node is shutting down.
    ShuttingDown,
    /// `exec` over the network is off (`exec.remote = false`) or exec is disabled.
    ExecRefused {
        /// The first exec spec of the batch, from 0, when the refusal is of one.
        index: Option<u32>,
    },
    /// Anything else the node refused.
    Invalid,
    /// The node's write-ahead log failed or is far behind: nothing was acknowledged.
    Storage,
}

#[cfg(test)]
pub(crate) mod strategies {
    //! proptest strategies for every message type.
    use super::*;
    use crate::runtime::arena::ArenaStats;
    use crate::runtime::snapshot::{NodeInfo, TaskCounts, WorkerActivity, WorkerSnapshot};
    use crate::runtime::task::{ProcessOutput, TaskOutput};
    use crate::runtime::wal::{RecoverySummary, WalSnapshot, WalSync};
    use proptest::prelude::*;

    pub fn task_id() -> impl Strategy<Value = TaskId> {
        any::<u64>().prop_map(TaskId)
    }

    pub fn state() -> impl Strategy<Value = TaskState> {
        prop::sample::select(TaskState::ALL.to_vec())
    }

    fn text() -> impl Strategy<Value = String> {
        ".{0,24}"
    }

    fn output() -> impl Strategy<Value = TaskOutput> {
        prop_oneof![
            Just(TaskOutput::None),
            any::<u64>().prop_map(TaskOutput::Number),
            text().prop_map(|text| TaskOutput::Text(text.into())),
            (
                any::<Option<i32>>(),
                any::<Option<i32>>(),
                text(),
                text(),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(
                    |(exit_code, signal, stdout, stderr, stdout_truncated, stderr_truncated)| {
                        TaskOutput::Process(Box::new(ProcessOutput {
                            exit_code,
                            signal,
                            stdout,
                            stderr,
                            stdout_truncated,
                            stderr_truncated,
                        }))
                    }
                ),
        ]
    }

    pub fn task_info() -> impl Strategy<Value = TaskInfo> {
        (
            (
                task_id(),
                text(),
                text(),
                state(),
                any::<Option<u16>>(),
                any::<u32>(),
            ),
            (
                any::<u64>(),
                any::<Option<u64>>(),
                any::<Option<u64>>(),
                any::<u64>(),
                proptest::option::of(output()),
                proptest::option::of(text()),
            ),
        )
            .prop_map(
                |(
                    (id, spec, kind, state, worker, attempt),
                    (submitted, started, finished, run_us, output, error),
                )| TaskInfo {
                    id,
                    spec,
                    kind: kind.into(),
                    state,
                    worker,
                    attempt,
                    submitted_unix_us: submitted,
                    started_unix_us: started,
                    finished_unix_us: finished,
                    run_us,
                    output,
                    error,
                },
            )
    }

    fn event() -> impl Strategy<Value = WatchedEvent> {
        (
            task_id(),
            state(),
            any::<Option<u16>>(),
            any::<u32>(),
            any::<u64>(),
            proptest::option::of(text()),
            proptest::option::of(text()),
        )
            .prop_map(|(id, state, worker, attempt, at_unix_us, spec, error)| {
                WatchedEvent {
                    id,
                    state,
                    worker,
                    attempt,
                    at_unix_us,
                    spec,
                    error,
                }
            })
    }

    fn worker() -> impl Strategy<Value = WorkerSnapshot> {
        (
            any::<u16>(),
            0usize..4,
            any::<usize>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(task_id()),
        )
            .prop_map(
                |(index, activity, depth, executed, slices, stole, stolen_from, parks, current)| {
                    WorkerSnapshot {
                        index,
                        activity: [
                            WorkerActivity::Running,
                            WorkerActivity::Searching,
                            WorkerActivity::Parked,
                            WorkerActivity::Stopped,
                        ][activity],
                        depth,
                        executed,
                        slices,
                        stole,
                        stolen_from,
                        parks,
                        current,
                    }
                },
            )
    }

    pub fn wal_snapshot() -> impl Strategy<Value = WalSnapshot> {
        (
            (
                text(),
                any::<bool>(),
                proptest::option::of(text()),
                any::<[u64; 8]>(),
            ),
            (
                proptest::array::uniform6(0.0f64..1e9),
                proptest::option::of(any::<u64>()),
                proptest::option::of(text()),
                proptest::option::of(any::<u64>()),
                any::<[u64; 6]>(),
                proptest::option::of(text()),
            ),
        )
            .prop_map(
                |(
                    (data_dir, always, failure, counts),
                    (
                        figures,
                        last_checkpoint,
                        checkpoint_error,
                        checkpoint,
                        recovered,
                        next_segment_error,
                    ),
                )| WalSnapshot {
                    data_dir,
                    sync: if always {
                        WalSync::Always
                    } else {
                        WalSync::Never
                    },
                    healthy: failure.is_none(),
                    failure,
                    window_us: counts[0],
                    fsync_p50_us: figures[0],
                    fsync_p99_us: figures[1],
                    fsync_max_us: figures[2],
                    window_fsyncs: counts[1],
                    records_per_fsync: figures[3],
                    bytes_per_fsync: figures[4],
                    appends_per_sec: figures[5],
                    records: counts[2],
                    bytes: counts[3],
                    fsyncs: counts[4],
                    pending_records: counts[5],
                    segments: counts[6],
                    disk_bytes: counts[7],
                    last_checkpoint_unix_us: last_checkpoint,
                    last_checkpoint_bytes: counts[0] / 3,
                    checkpoint_waits: counts[2] / 5,
                    checkpoints: counts[1] / 3,
                    checkpoint_error,
                    next_segment_error,
                    recovered: RecoverySummary {
                        checkpoint,
                        segments: recovered[0],
                        records: recovered[1],
                        requeued_running: recovered[2],
                        requeued_queued: recovered[3],
                        finished_at_start: recovered[4],
                        history: recovered[5],
                        keys: recovered[0] / 2,
                        dropped_bytes: recovered[1] / 2,
                        max_id: recovered[2] / 2,
                        took_us: recovered[3] / 2,
                    },
                },
            )
    }

    pub fn snapshot() -> impl Strategy<Value = NodeSnapshot> {
        (
            text(),
            any::<u32>(),
            any::<u64>(),
            proptest::collection::vec(worker(), 0..4),
            any::<usize>(),
            any::<[u64; 8]>(),
            proptest::collection::vec(task_info(), 0..3),
            proptest::option::of(wal_snapshot()),
        )
            .prop_map(|(name, pid, now, workers, depth, numbers, tasks, wal)| {
                NodeSnapshot {
                    node: NodeInfo {
                        name,
                        version: "0.1.0".into(),
                        pid,
                        started_unix_us: now / 2,
                        now_unix_us: now,
                        listen: Some("127.0.0.1:7420".into()),
                        slice_us: 1000,
                        accepting: now % 2 == 0,
                        exec_enabled: true,
                        exec_remote: false,
                        kinds: vec!["spin".into()],
                    },
                    workers,
                    submission_queue_depth: depth,
                    arena: ArenaStats {
                        capacity: 65_536,
                        in_use: (numbers[0] % 65_536) as usize,
                        high_water: (numbers[1] % 65_536) as usize,
                        bytes_reserved: 1 << 23,
                        rejected: numbers[2],
                    },
                    counts: TaskCounts {
                        submitted: numbers[3],
                        queued: numbers[4],
                        running: numbers[5],
                        succeeded: numbers[6],
                        failed: 0,
                        cancelled: 0,
                        timed_out: 0,
                        recovered: numbers[7],
                    },
                    tasks,
                    host: (now % 3 != 0).then(|| crate::runtime::HostStats {
                        cpu_percent: (numbers[0] % 1001) as f32 / 10.0,
                        cpus: (numbers[1] % 512) as u16,
                        memory_used_bytes: numbers[2] / 2,
                        memory_total_bytes: numbers[2],
                        load_average: (numbers[3] % 10_000) as f32 / 100.0,
                    }),
                    cluster: None,
                    wal,
                }
            })
    }

    pub fn cluster() -> impl Strategy<Value = ClusterSnapshot> {
        use crate::runtime::gossip::{
            ClusterEvent, EventKind, GossipStats, LocalStatus, MemberCounts, MemberInfo,
            MemberLoad, MemberState,
        };
        let member = (
            text(),
            any::<u64>(),
            any::<u32>(),
            0usize..4,
            any::<bool>(),
            0.0f64..1000.0,
            proptest::option::of(text()),
            any::<Option<u64>>(),
            any::<u64>(),
            proptest::option::of((any::<u16>(), any::<u32>(), any::<u32>(), 0.0f32..100.0)),
        )
            .prop_map(
                |(
                    name,
                    generation,
                    incarnation,
                    state,
                    degraded,
                    phi,
                    address,
                    heard,
                    since,
                    meta,
                )| {
                    MemberInfo {
                        name,
                        generation,
                        incarnation,
                        state: [
                            MemberState::Alive,
                            MemberState::Suspect,
                            MemberState::Dead,
                            MemberState::Left,
                        ][state],
                        degraded,
                        phi,
                        gossip_address: address.clone(),
                        protocol_address: address,
                        last_heard_unix_us: heard,
                        since_unix_us: since,
                        local: degraded,
                        meta: meta.map(|(workers, queue_depth, arena_free, load)| MemberLoad {
                            version: 1,
                            workers,
                            queue_depth,
                            arena_free,
                            load,
                        }),
                    }
                },
            );
        let event = (text(), any::<u64>(), any::<u64>(), 0usize..7, text()).prop_map(
            |(member, generation, at, kind, by)| {
                let told_by = (kind == 6).then(|| by.clone());
                let kind = match kind {
                    0 => EventKind::Joined,
                    1 => EventKind::Suspected { by },
                    2 => EventKind::Restarted {
                        previous_generation: generation / 2,
                        moved_from: None,
                    },
                    3 => EventKind::Restarted {
                        previous_generation: generation / 2,
                        moved_from: Some(by),
                    },
                    4 => EventKind::DisplacedOlder {
                        older_generation: generation / 3,
                        older_address: by,
                    },
                    5 => EventKind::NameConflict {
                        winner_generation: generation,
                        winner_address: Some(by),
                    },
                    _ => EventKind::Failed,
                };
                ClusterEvent {
                    at_unix_us: at,
                    text: ClusterEvent::describe_told(
                        &member,
                        generation,
                        &kind,
                        told_by.as_deref(),
                    ),
                    member,
                    generation,
                    kind,
                    told_by,
                }
            },
        );
        (
            text(),
            any::<u64>(),
            any::<u32>(),
            proptest::collection::vec(member, 0..4),
            proptest::collection::vec(event, 0..4),
            any::<[u32; 5]>(),
            any::<[u64; 4]>(),
        )
            .prop_map(
                |(local, generation, incarnation, members, events, counts, numbers)| {
                    ClusterSnapshot {
                        cluster: "goliath".into(),
                        local,
                        generation,
                        incarnation,
                        gossip_address: "127.0.0.1:7421".into(),
                        status: LocalStatus::Active,
                        local_health: counts[4] % 9,
                        phi_threshold: 8.0,
                        counts: MemberCounts {
                            alive: counts[0],
                            suspect: counts[1],
                            dead: counts[2],
                            left: counts[3],
                            degraded: 0,
                        },
                        members,
                        events,
                        stats: GossipStats {
                            packets_sent: numbers[0],
                            bytes_sent: numbers[1],
                            packets_received: numbers[2],
                            bytes_received: numbers[3],
                            ..GossipStats::default()
                        },
                    }
                },
            )
    }

    fn remote_error() -> impl Strategy<Value = RemoteError> {
        let kind = prop_oneof![
            (any::<u32>(), any::<u32>())
                .prop_map(|(index, column)| RemoteErrorKind::BadSpec { index, column }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(in_use, capacity)| RemoteErrorKind::Busy { in_use, capacity }),
            Just(RemoteErrorKind::NotFound),
            Just(RemoteErrorKind::ShuttingDown),
            proptest::option::of(any::<u32>())
                .prop_map(|index| RemoteErrorKind::ExecRefused { index }),
            Just(RemoteErrorKind::Invalid),
            Just(RemoteErrorKind::Storage),
        ];
        (kind, text()).prop_map(|(kind, message)| RemoteError { kind, message })
    }

    pub fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (
                proptest::collection::vec(text(), 0..4),
                proptest::option::of(text()),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(
                    |(specs, idempotency_key, wait, report_ids)| Request::Submit(SubmitRequest {
                        specs,
                        idempotency_key,
                        wait,
                        report_ids
                    })
                ),
            proptest::collection::vec(task_id(), 0..5).prop_map(|ids| Request::Cancel { ids }),
            task_id().prop_map(|id| Request::Task { id }),
            (
                proptest::option::of(state()),
                any::<usize>(),
                proptest::option::of(task_id())
            )
                .prop_map(|(state, limit, before)| Request::Tasks(TaskQuery {
                    state,
                    limit,
                    before
                })),
            any::<u32>().prop_map(|task_limit| Request::Status { task_limit }),
            (any::<bool>(), any::<Option<u32>>(), any::<u32>()).prop_map(
                |(events, snapshot_every_ms, task_limit)| Request::Watch(WatchRequest {
                    events,
                    snapshot_every_ms,
                    task_limit
                })
            ),
            Just(Request::Shutdown),
            Just(Request::Members),
        ]
    }

    pub fn response() -> impl Strategy<Value = Response> {
        let cancel = (
            task_id(),
            prop_oneof![
                Just(CancelOutcomeWire::Requested),
                state().prop_map(CancelOutcomeWire::AlreadyFinished),
                Just(CancelOutcomeWire::NotFound),
            ],
        )
            .prop_map(|(id, outcome)| CancelResult { id, outcome });
        prop_oneof![
            (proptest::collection::vec(task_id(), 0..5), any::<bool>())
                .prop_map(|(ids, duplicate)| Response::Submitted { ids, duplicate }),
            (proptest::collection::vec(task_info(), 0..3), any::<bool>())
                .prop_map(|(tasks, duplicate)| Response::Finished { tasks, duplicate }),
            proptest::collection::vec(cancel, 0..4)
                .prop_map(|results| Response::Cancelled { results }),
            task_info().prop_map(Response::Task),
            proptest::collection::vec(task_info(), 0..3).prop_map(Response::Tasks),
            snapshot().prop_map(|s| Response::Status(Box::new(s))),
            Just(Response::ShuttingDown),
            remote_error().prop_map(Response::Error),
            proptest::option::of(cluster()).prop_map(|c| Response::Members(c.map(Box::new))),
            (snapshot(), cluster()).prop_map(|(mut s, c)| {
                s.cluster = Some(c);
                Response::Status(Box::new(s))
            }),
        ]
    }

    pub fn stream_item() -> impl Strategy<Value = StreamItem> {
        prop_oneof![
            event().prop_map(StreamItem::Event),
            snapshot().prop_map(|s| StreamItem::Snapshot(Box::new(s))),
            any::<u64>().prop_map(|skipped| StreamItem::Lagged { skipped }),
            proptest::collection::vec(task_id(), 0..5).prop_map(|ids| StreamItem::Accepted { ids }),
        ]
    }

    pub fn hello() -> impl Strategy<Value = Hello> {
        (text(), text()).prop_map(|(client, cluster)| Hello { client, cluster })
    }

    pub fn welcome() -> impl Strategy<Value = Welcome> {
        (text(), text(), text(), any::<u32>()).prop_map(|(node, cluster, version, max_frame)| {
            Welcome {
                node,
                cluster,
                version,
                max_frame,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::*;
    use super::*;
    use crate::runtime::net::frame::{FrameReader, FrameType, write_message};
    use proptest::prelude::*;

    fn round_trip<T>(frame_type: FrameType, value: &T) -> T
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        let mut bytes = Vec::new();
        write_message(&mut bytes, frame_type, 42, value, 16 << 20).expect("encodes");
        let mut reader = FrameReader::new(16 << 20);
        assert_eq!(reader.push(&bytes).expect("valid"), bytes.len());
        let (header, payload) = reader.next_frame().expect("valid").expect("whole frame");
        assert_eq!((header.frame_type, header.stream), (frame_type, 42));
        crate::codec::decode(frame_type_name(frame_type), payload).expect("decodes")
    }

    fn frame_type_name(frame_type: FrameType) -> &'static str {
        match frame_type {
            FrameType::Hello => "hello",
            FrameType::Welcome => "welcome",
            FrameType::Request => "request",
            FrameType::Response => "response",
            _ => "stream item",
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn requests_round_trip(request in request()) {
            prop_assert_eq!(round_trip(FrameType::Request, &request), request);
        }

        #[test]
        fn requests_read_the_same_through_the_servers_borrowed_view(request in request()) {
            let bytes = crate::codec::encode("request", &request).expect("encodes");
            let view: RequestView<'_> =
                crate::codec::decode_borrowed("request", &bytes).expect("decodes");
            // The view holds everything the request said: it encodes back to the same bytes.
            prop_assert_eq!(crate::codec::encode("request", &view).expect("encodes"), bytes);
        }

        #[test]
        fn responses_round_trip(response in response()) {
            prop_assert_eq!(round_trip(FrameType::Response, &response), response);
        }

        #[test]
        fn responses_read_the_same_through_a_clients_borrowed_view(response in response()) {
            let bytes = crate::codec::encode("response", &response).expect("encodes");
            let view: ResponseView<'_> =
                crate::codec::decode_borrowed("response", &bytes).expect("decodes");
            // Every field of every task is in the view: it encodes back to the same bytes.
            prop_assert_eq!(crate::codec::encode("response", &view).expect("encodes"), bytes);
        }

        #[test]
        fn stream_items_round_trip(item in stream_item()) {
            prop_assert_eq!(round_trip(FrameType::StreamItem, &item), item);
        }

        #[test]
        fn handshake_messages_round_trip(hello in hello(), welcome in welcome()) {
            prop_assert_eq!(round_trip(FrameType::Hello, &hello), hello);
            prop_assert_eq!(round_trip(FrameType::Welcome, &welcome), welcome);
        }

        #[test]
        fn arbitrary_payloads_never_panic_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = crate::codec::decode::<Request>("request", &bytes);
            let _ = crate::codec::decode_borrowed::<RequestView<'_>>("request", &bytes);
            let _ = crate::codec::decode::<Response>("response", &bytes);
            let _ = crate::codec::decode_borrowed::<ResponseView<'_>>("response", &bytes);
            let _ = crate::codec::decode::<StreamItem>("stream item", &bytes);
            let _ = crate::codec::decode::<Hello>("hello", &bytes);
        }
    }
}
