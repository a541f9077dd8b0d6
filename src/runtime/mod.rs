//! The node: scheduler, arena, tasks, history and events. Never imports `tui`; the console
//! sees a node only through [`Node::snapshot`], [`Node::tasks`] and [`Node::subscribe`].

pub mod arena;
pub(crate) mod children;
pub mod clock;
pub mod completions;
pub mod events;
pub mod gossip;
pub mod history;
pub mod host;
pub(crate) mod idhash;
pub(crate) mod injector;
mod io;
mod io_thread;
pub mod kinds;
pub mod log_budget;
pub mod net;
pub mod node;
pub mod scheduler;
pub mod snapshot;
pub mod suggest;
pub mod sys;
pub mod task;
pub mod units;
pub mod wal;

pub use arena::{ArenaStats, Busy};
pub use completions::{CompletionReceiver, CompletionSender, completion_queue};
pub use events::{EventError, EventStream, TaskEvent};
pub use host::HostStats;
pub use io::{EXEC_LAUNCHER_ARG, EXEC_LAUNCHER_FAILED, run_exec_launcher, set_exec_launcher};
pub use kinds::StepContext;
pub use node::{
    BatchError, BatchOutcome, CancelError, CancelOutcome, CancelResultPending, LookupError, Node,
    NodeBuilder, ShutdownReport, StartError, SubmitError, SubmitTextError,
};
pub use snapshot::{
    NodeInfo, NodeSnapshot, TaskCounts, TaskInfo, TaskQuery, WorkerActivity, WorkerSnapshot,
};
pub use task::{
    KindArgs, KindId, Kinds, ProcessOutput, SpecError, Step, Submission, TaskId, TaskKind,
    TaskOutput, TaskSpec, TaskState,
};

/// Locks a mutex, ignoring poisoning: every value behind our mutexes stays consistent even if
/// a holder panicked (each critical section is a single push, take or swap).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
