//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod binary;
pub mod pty;

use std::time::{Duration, Instant};

use goliath::config::{Config, WorkerCount};
use goliath::runtime::{Node, TaskId, TaskInfo};

/// Upper bound for any wait in a test: a liveness guard, not a speed check.
pub const LIVENESS: Duration = Duration::from_secs(60);

pub fn config(workers: usize, slots: usize) -> Config {
    let mut config = Config::default();
    config.scheduler.workers = WorkerCount::Fixed(workers);
    config.arena.slots = slots;
    config.node.name = "test".into();
    // Many nodes run in one test process: memory-only unless a test asks for a WAL.
    config.wal.enabled = false;
    config
}

/// Waits until the task has finished and returns it; panics if it never does.
pub fn wait_finished(node: &Node, id: TaskId) -> TaskInfo {
    let deadline = Instant::now() + LIVENESS;
    loop {
        let info = node.task(id).unwrap_or_else(|e| panic!("task {id}: {e}"));
        if info.state.is_finished() {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} still {:?} after {LIVENESS:?}",
            info.state
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the task is running.
pub fn wait_running(node: &Node, id: TaskId) {
    let deadline = Instant::now() + LIVENESS;
    loop {
        let info = node.task(id).unwrap_or_else(|e| panic!("task {id}: {e}"));
        if info.started_unix_us.is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "task {id} never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}
