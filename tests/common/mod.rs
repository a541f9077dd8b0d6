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

/// Checks every millisecond until `check` returns `Ok`; panics with its last `Err` (what
/// is still missing) if that takes longer than [`LIVENESS`].
pub fn eventually<T>(mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + LIVENESS;
    loop {
        match check() {
            Ok(value) => return value,
            Err(missing) => assert!(Instant::now() < deadline, "{missing} after {LIVENESS:?}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the task has finished and returns it; panics if it never does.
pub fn wait_finished(node: &Node, id: TaskId) -> TaskInfo {
    eventually(|| {
        let info = node.task(id).unwrap_or_else(|e| panic!("task {id}: {e}"));
        if info.state.is_finished() {
            Ok(info)
        } else {
            Err(format!("task {id} still {:?}", info.state))
        }
    })
}

/// Waits until the task is running.
pub fn wait_running(node: &Node, id: TaskId) {
    eventually(|| {
        let info = node.task(id).unwrap_or_else(|e| panic!("task {id}: {e}"));
        info.started_unix_us
            .map(|_| ())
            .ok_or_else(|| format!("task {id} never started"))
    })
}

/// Sends `signal` (as `kill` names it: "-STOP", "-INT") to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// Whether a process is gone (or a zombie waiting for a parent that is gone).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The lines a child's output stream gives, as they come, on a channel (read to its end on
/// a thread of its own, so a test can wait for one with a timeout).
pub fn lines_of(stream: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            // Read to the end even with nobody listening, so the child never blocks on a
            // full pipe.
            let _ = sender.send(line);
        }
    });
    lines
}

/// The pids of processes started with `marker` in their environment whose command line
/// (its arguments joined by spaces) contains `needle`.
pub fn processes_with(marker: &str, needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&environ).contains(marker)
            && String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(needle)
        {
            found.push(pid);
        }
    }
    found
}
