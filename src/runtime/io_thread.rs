//! The node's I/O thread: one tokio current-thread runtime, driven by a thread of its own,
//! on which the protocol server, the membership service, `sleep` and `exec` tasks and the
//! log's acknowledgements run. Other threads reach it through its [`Handle`].
//!
//! A current-thread runtime rather than a one-worker multi-thread one: the latter keeps
//! scheduling statistics (two clock reads and a `powf` per batch of polled tasks) and an
//! idle-worker state machine around every park, which an echo round trip over the protocol
//! paid at every request (see BENCHMARKS.md). Everything spawned here must not block: slow
//! work goes to `spawn_blocking`.

use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Threads for blocking work (task lists and snapshots for clients, name lookups), at most:
/// more are queued. Each is CPU work of milliseconds; tokio's default (512) let a few
/// hundred clients asking for lists at once start a thread each.
const BLOCKING_THREADS: usize = 8;

/// How long stopping waits for blocking work (`spawn_blocking`) still running.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// How long [`IoThread::stop`] waits for the thread: its grace, and as long again for the
/// tasks to be dropped and the thread to end.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The running I/O thread. Dropping it stops the runtime.
#[derive(Debug)]
pub(crate) struct IoThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Disconnected when the thread is about to end.
    finished: std::sync::mpsc::Receiver<()>,
}

impl IoThread {
    /// Builds the runtime and starts the thread named `name` that drives it.
    pub(crate) fn start(name: &str) -> std::io::Result<IoThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .thread_name(format!("{name}-blocking"))
            .max_blocking_threads(BLOCKING_THREADS)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stop_requested) = oneshot::channel::<()>();
        let (finishing, finished) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _finishing = finishing;
                // Ends on a stop request, or when the sender is dropped.
                let _ = runtime.block_on(stop_requested);
                runtime.shutdown_timeout(STOP_GRACE);
            })?;
        Ok(IoThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
            finished,
        })
    }

    /// The runtime's handle, to spawn on it or `block_on` from another thread.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the runtime (its tasks are dropped at their next await) and waits for the
    /// thread, at most [`STOP_WAIT`] — unless called from async code, which must not
    /// block (it may even be running on this very thread): then the thread finishes on its
    /// own. A task that blocks the thread instead of awaiting would hold it forever; the
    /// wait gives up on it then, and says so.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else {
            return;
        };
        if Handle::try_current().is_ok() {
            return;
        }
        match self.finished.recv_timeout(STOP_WAIT) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
                waited_ms = STOP_WAIT.as_millis() as u64,
                "the I/O thread did not stop: a task on it blocks instead of awaiting; leaving it behind"
            ),
            // Disconnected: the thread is at its end.
            _ => {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn spawned_tasks_run_on_the_named_thread_and_timers_fire() {
        let io = IoThread::start("io-test").expect("start");
        let name = io.handle().block_on(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            io.handle()
                .spawn(async { std::thread::current().name().map(String::from) })
                .await
                .expect("join")
        });
        assert_eq!(name.as_deref(), Some("io-test"));
    }

    #[test]
    fn stopping_ends_the_thread_and_drops_its_tasks() {
        let mut io = IoThread::start("io-test").expect("start");
        let dropped = Arc::new(AtomicBool::new(false));
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let guard = SetOnDrop(dropped.clone());
        io.handle().spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        io.stop();
        assert!(
            dropped.load(Ordering::SeqCst),
            "the pending task was not dropped"
        );
    }

    #[test]
    fn stopping_gives_up_on_a_task_that_blocks_the_thread() {
        let mut io = IoThread::start("io-test").expect("start");
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, blocking) = std::sync::mpsc::channel::<()>();
        io.handle().spawn(async move {
            let _ = started.send(());
            // Blocks the thread (what tasks must not do) until the test lets it go.
            let _ = released.recv();
        });
        blocking.recv().expect("the blocking task started");
        // A watchdog turns a stop that never returns into a failure instead of a hang.
        let (stopped, stop_returned) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            io.stop();
            let _ = stopped.send(());
        });
        let returned = stop_returned.recv_timeout(Duration::from_secs(60));
        let _ = release.send(());
        assert!(returned.is_ok(), "stop waited for a blocked thread");
    }
}
