//! What observers see of a node: the snapshot and task descriptions.
//!
//! These are the only types the console reads, locally or over the wire (`console --connect`
//! receives exactly these, encoded by the codec module), so a remote node renders exactly like a
//! local one. Times are Unix microseconds; durations are microseconds.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use super::arena::ArenaStats;
pub use super::gossip::view::{
    ClusterEvent, ClusterSnapshot, MemberCounts, MemberInfo, MemberLoad,
};
pub use super::gossip::{EventKind as MemberEventKind, LocalStatus, MemberState};
use super::host::HostStats;
use super::task::{TaskId, TaskOutput, TaskOutputView, TaskState};
use super::wal::WalSnapshot;

/// A point-in-time view of a node: cheap enough to take ten times a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    /// Identity and settings.
    pub node: NodeInfo,
    /// One entry per worker, in index order.
    pub workers: Vec<WorkerSnapshot>,
    /// Tasks waiting in the submission queue (not yet on a worker's deque).
    pub submission_queue_depth: usize,
    /// The task arena.
    pub arena: ArenaStats,
    /// Task counts by state.
    pub counts: TaskCounts,
    /// Tasks in flight and recently finished, newest first, up to the requested limit.
    pub tasks: Vec<TaskInfo>,
    /// The load of the node's machine, when it can be read.
    pub host: Option<HostStats>,
    /// Cluster membership as this node sees it; `None` when gossip is off.
    pub cluster: Option<ClusterSnapshot>,
    /// The write-ahead log; None for a memory-only node.
    pub wal: Option<WalSnapshot>,
}

impl NodeSnapshot {
    /// What the node gossips as its load: tasks waiting (the submission queue and every
    /// worker's deque), free arena slots, and tasks in flight per worker.
    pub fn load_figures(&self) -> (u32, u32, f32) {
        let depth =
            self.submission_queue_depth + self.workers.iter().map(|w| w.depth).sum::<usize>();
        let free = self.arena.capacity.saturating_sub(self.arena.in_use);
        let in_flight = self.counts.queued + self.counts.running;
        (
            u32::try_from(depth).unwrap_or(u32::MAX),
            u32::try_from(free).unwrap_or(u32::MAX),
            in_flight as f32 / self.workers.len().max(1) as f32,
        )
    }
}

/// Who the node is and how it is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Goliath version.
    pub version: String,
    /// Process id.
    pub pid: u32,
    /// When the node started (Unix µs).
    pub started_unix_us: u64,
    /// When this snapshot was taken (Unix µs).
    pub now_unix_us: u64,
    /// Protocol listen address, when the node serves one.
    pub listen: Option<String>,
    /// Time slice in µs.
    pub slice_us: u64,
    /// Whether submissions are accepted (false while shutting down).
    pub accepting: bool,
    /// Whether `exec` tasks are allowed.
    pub exec_enabled: bool,
    /// Whether `exec` tasks submitted over the protocol are taken (`exec.remote`; with
    /// `exec_enabled` only).
    pub exec_remote: bool,
    /// Task kinds this node runs, built-ins first.
    pub kinds: Vec<String>,
}

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerActivity {
    /// Running a task.
    Running,
    /// Looking for work (spinning before parking).
    Searching,
    /// Asleep until work arrives.
    Parked,
    /// Stopped (node shutting down).
    Stopped,
}

/// One worker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSnapshot {
    /// Worker index.
    pub index: u16,
    /// What it is doing.
    pub activity: WorkerActivity,
    /// Tasks in its deque now.
    pub depth: usize,
    /// Tasks it finished.
    pub executed: u64,
    /// Slices it ran.
    pub slices: u64,
    /// Tasks it stole from others.
    pub stole: u64,
    /// Tasks others stole from it.
    pub stolen_from: u64,
    /// Times it parked.
    pub parks: u64,
    /// The task it is running, if any.
    pub current: Option<TaskId>,
}

/// Task counts by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    /// Accepted since this start (tasks recovered from the log not counted).
    pub submitted: u64,
    /// Waiting for a worker now.
    pub queued: u64,
    /// Running now (on a worker or waiting on a timer or process).
    pub running: u64,
    /// Finished with a value.
    pub succeeded: u64,
    /// Finished with an error.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Timed out.
    pub timed_out: u64,
    /// Tasks this start recovered from the log to run again (accepted by an earlier run, in
    /// flight when it stopped): with `submitted`, what the tasks in flight and the finished
    /// counts add up to.
    pub recovered: u64,
}

impl TaskCounts {
    /// All finished tasks.
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed + self.cancelled + self.timed_out
    }
}

/// One task, in flight or finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Its id.
    pub id: TaskId,
    /// The text form it was submitted as (canonical).
    pub spec: String,
    /// Its kind's name (a built-in kind's is borrowed: describing a task copies no name).
    pub kind: Cow<'static, str>,
    /// Its state.
    pub state: TaskState,
    /// The worker running it or that ran it last.
    pub worker: Option<u16>,
    /// Run number (1, or more after a restart).
    pub attempt: u32,
    /// When it was accepted (Unix µs).
    pub submitted_unix_us: u64,
    /// When it first ran (Unix µs).
    pub started_unix_us: Option<u64>,
    /// When it finished (Unix µs).
    pub finished_unix_us: Option<u64>,
    /// Time spent on workers, µs.
    pub run_us: u64,
    /// What it produced, once finished.
    pub output: Option<TaskOutput>,
    /// Why it failed, was cancelled or timed out.
    pub error: Option<String>,
}

/// A [`TaskInfo`] read where it lies in a frame (see [`crate::runtime::net::ResponseView`]):
/// the same fields in the same order, its texts borrowed. Encodes as a `TaskInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfoView<'a> {
    /// Its id.
    pub id: TaskId,
    /// The text form it was submitted as (canonical).
    pub spec: &'a str,
    /// Its kind's name.
    pub kind: &'a str,
    /// Its state.
    pub state: TaskState,
    /// The worker running it or that ran it last.
    pub worker: Option<u16>,
    /// Run number (1, or more after a restart).
    pub attempt: u32,
    /// When it was accepted (Unix µs).
    pub submitted_unix_us: u64,
    /// When it first ran (Unix µs).
    pub started_unix_us: Option<u64>,
    /// When it finished (Unix µs).
    pub finished_unix_us: Option<u64>,
    /// Time spent on workers, µs.
    pub run_us: u64,
    /// What it produced, once finished.
    #[serde(borrow)]
    pub output: Option<TaskOutputView<'a>>,
    /// Why it failed, was cancelled or timed out.
    pub error: Option<&'a str>,
}

impl TaskInfo {
    /// Cuts the output to its first `bytes` bytes (at a character boundary): a process's
    /// streams count what is cut as truncated; a text ends with "…" when cut.
    pub fn trim_output(&mut self, bytes: usize) {
        match &mut self.output {
            Some(TaskOutput::Process(process)) => process.keep_at_most(bytes),
            Some(TaskOutput::Text(text)) if text.len() > bytes => {
                let kept = &text[..crate::runtime::units::floor_char_boundary(text, bytes)];
                *text = format!("{kept}…").into();
            }
            _ => {}
        }
    }

    /// Bytes of output text held (a process's two streams, or a text).
    pub fn output_bytes(&self) -> usize {
        match &self.output {
            Some(TaskOutput::Process(process)) => process.stdout.len() + process.stderr.len(),
            Some(TaskOutput::Text(text)) => text.len(),
            _ => 0,
        }
    }

    /// Time from first run to finish (or to `now_unix_us` while running), µs.
    pub fn duration_us(&self, now_unix_us: u64) -> Option<u64> {
        let started = self.started_unix_us?;
        Some(
            self.finished_unix_us
                .unwrap_or(now_unix_us)
                .saturating_sub(started),
        )
    }
}

/// Which tasks a listing wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskQuery {
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// At most this many, newest first.
    pub limit: usize,
    /// Only tasks older than this one (smaller ids): the cursor that pages through a long
    /// history, given the last id of the page before.
    pub before: Option<TaskId>,
}

impl TaskQuery {
    /// Whether a task with this id and state is one the query wants (the limit aside).
    pub fn takes(&self, id: TaskId, state: TaskState) -> bool {
        self.state.is_none_or(|s| s == state) && self.before.is_none_or(|before| id < before)
    }
}

impl Default for TaskQuery {
    fn default() -> Self {
        Self {
            state: None,
            limit: 100,
            before: None,
        }
    }
}
