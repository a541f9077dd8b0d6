//! Tasks that wait without holding a worker: `sleep` on a timer and `exec` on a child process.
//!
//! A worker hands such a task here and moves on; the task stays in its arena slot (it is still
//! in flight) and is finished from the I/O thread. Cancellation wakes the waiting future
//! directly; an `exec` child, started as the leader of its own process group, then gets
//! SIGTERM and, after `exec.kill_grace`, SIGKILL — so its own children stop too.

use std::collections::HashMap;
use std::future::Future;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;

use super::lock;
use super::node::{Ending, FinishSite, Shared};
use super::scheduler::timed_out_message;
use super::sys;
use super::task::{KindId, ProcessOutput, TaskId, TaskOutput, TaskState, exec_argv};

/// The argument that makes the `goliath` binary an exec launcher (see [`set_exec_launcher`]).
pub const EXEC_LAUNCHER_ARG: &str = "__exec-task";

/// The program `exec` tasks are started through, once set.
static EXEC_LAUNCHER: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Starts `exec` tasks through `program` (the `goliath` binary itself): it is called as
/// `program __exec-task NODE_PID -- ARGV…`, asks the kernel to kill it when the node dies
/// (as [`sys::kill_me_with_parent`] does) and then replaces itself with `ARGV`. Started
/// that way, a child needs no code run between fork and exec, so the standard library
/// spawns it with `posix_spawn` (a vfork) instead of `fork`, whose cost grows with the
/// node's memory: at 127 MB resident, 200 `exec true` took 2.2 s through `fork` (copying
/// and then tearing down the page tables each time) against 0.2 s on a fresh node.
/// Without a launcher (an embedder's own binary), children are forked as before. The first
/// call wins.
pub fn set_exec_launcher(program: std::path::PathBuf) {
    let _ = EXEC_LAUNCHER.set(program);
}

/// The launcher's side, in the child: `args` are what follows [`EXEC_LAUNCHER_ARG`] (the
/// node's pid, `--`, the task's argv). Returns only on failure, with the line to print on
/// standard error (as it is) before exiting with [`EXEC_LAUNCHER_FAILED`].
pub fn run_exec_launcher(args: &[std::ffi::OsString]) -> String {
    use std::os::unix::process::CommandExt as _;
    let Some(node_pid) = args
        .first()
        .and_then(|pid| pid.to_str())
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return format!("goliath: {EXEC_LAUNCHER_ARG}: the first argument must be the node's pid");
    };
    let argv = match args.get(1).map(|dashes| dashes == "--") {
        Some(true) if args.len() > 2 => &args[2..],
        _ => {
            return format!(
                "goliath: {EXEC_LAUNCHER_ARG}: expected `-- PROGRAM ARGS…` after the pid"
            );
        }
    };
    if let Err(error) = sys::kill_me_with_parent(node_pid) {
        return format!("goliath: exec: the node (pid {node_pid}) is gone: {error}");
    }
    let error = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    let why = if error.kind() == std::io::ErrorKind::NotFound {
        missing_beyond_the_program(std::path::Path::new(&argv[0]))
    } else {
        None
    };
    format!(
        "{LAUNCHER_FAILED}'{}': {error}{}",
        argv[0].to_string_lossy(),
        why.map(|why| format!(" ({why})")).unwrap_or_default()
    )
}

/// Why starting `program` found nothing although the file is there: the interpreter its
/// `#!` line names is missing (or a library it needs). `None` when the file itself is not
/// found.
fn missing_beyond_the_program(program: &std::path::Path) -> Option<String> {
    use std::io::Read as _;
    let path = if program.components().count() > 1 {
        program.to_path_buf()
    } else {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())?
    };
    let mut start = Vec::new();
    std::fs::File::open(&path)
        .ok()?
        .take(256)
        .read_to_end(&mut start)
        .ok()?;
    let interpreter = start
        .strip_prefix(b"#!")
        .and_then(|rest| rest.split(|b| *b == b'\n').next())
        .map(|line| String::from_utf8_lossy(line).trim().to_string())
        .and_then(|line| line.split_whitespace().next().map(str::to_string));
    Some(match interpreter {
        Some(interpreter) => format!(
            "the file is there; the interpreter its #! line names, {interpreter}, is missing"
        ),
        None => "the file is there; a library or loader it needs is missing".to_string(),
    })
}

/// The I/O side: a tokio runtime handle and the cancel signals of waiting tasks.
pub(crate) struct Offload {
    handle: tokio::runtime::Handle,
    waiters: Mutex<HashMap<u64, Arc<Notify>>>,
}

impl Offload {
    pub fn new(handle: tokio::runtime::Handle) -> Self {
        Self {
            handle,
            waiters: Mutex::new(HashMap::new()),
        }
    }

    pub fn start(&self, shared: Arc<Shared>, index: u32, id: TaskId, kind: KindId, deadline: u64) {
        if kind == KindId::EXEC {
            self.handle.spawn(run_exec(shared, index, id, deadline));
        } else {
            self.handle.spawn(run_sleep(shared, index, id, deadline));
        }
    }

    fn register(&self, id: TaskId) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        lock(&self.waiters).insert(id.0, notify.clone());
        notify
    }

    fn unregister(&self, id: TaskId) {
        lock(&self.waiters).remove(&id.0);
    }

    /// Wakes a waiting task so it sees its cancel request.
    pub fn wake(&self, id: TaskId) {
        if let Some(notify) = lock(&self.waiters).get(&id.0) {
            notify.notify_one();
        }
    }
}

/// Sleeps until the clock reading `tick`, or forever for `u64::MAX`.
async fn until_tick(shared: &Shared, tick: u64) {
    if tick == u64::MAX {
        std::future::pending::<()>().await;
    }
    let target = shared.clock.instant_at(tick);
    tokio::time::sleep_until(tokio::time::Instant::from_std(target)).await;
}

async fn run_sleep(shared: Arc<Shared>, index: u32, id: TaskId, deadline: u64) {
    let slot = shared.arena.slot(index);
    let notify = shared.offload.register(id);
    let started = slot.started_at.load(Ordering::Relaxed);
    let end = started.saturating_add(
        shared
            .clock
            .ns_to_ticks(slot.numbers[0].load(Ordering::Relaxed)),
    );
    let (state, error) = if slot.cancel_id.load(Ordering::Acquire) == id.0 {
        (TaskState::Cancelled, Some("cancelled".into()))
    } else {
        tokio::select! {
            _ = until_tick(&shared, end.min(deadline)) => {
                if end <= deadline {
                    (TaskState::Succeeded, None)
                } else {
                    (TaskState::TimedOut, Some(timed_out_message(slot.timeout_ns.load(Ordering::Relaxed), KindId::SLEEP)))
                }
            }
            _ = notify.notified() => (TaskState::Cancelled, Some("cancelled".into())),
        }
    };
    shared.offload.unregister(id);
    let now = shared.clock.now();
    shared.finish(
        index,
        id,
        Ending {
            state,
            output: TaskOutput::None,
            error,
        },
        FinishSite::Offload,
        now,
    );
}

/// Reads a stream to its end, or until `stop` turns true (what is there to read first is
/// read first), keeping the first `max` bytes and counting the rest.
async fn capture<R: AsyncRead + Unpin>(
    reader: Option<R>,
    max: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (Vec<u8>, u64) {
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let Some(mut reader) = reader else {
        return (kept, dropped);
    };
    let mut buffer = [0u8; 8192];
    loop {
        tokio::select! {
            biased;
            read = reader.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let take = n.min(max.saturating_sub(kept.len()));
                    kept.extend_from_slice(&buffer[..take]);
                    dropped += (n - take) as u64;
                }
            },
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
    (kept, dropped)
}

/// How long the output is read after the program and what it left in its group have ended:
/// `exec.kill_grace`, at least 100 ms. Past it, what still holds the pipes is a process the
/// program moved out of its group (`setsid cmd &`), which used to keep the task running as
/// long as that process ran (ten minutes for a `setsid sleep 600`).
fn output_drain(grace: Duration) -> Duration {
    grace.max(Duration::from_millis(100))
}

type Finished = (
    std::io::Result<std::process::ExitStatus>,
    (Vec<u8>, u64),
    (Vec<u8>, u64),
);

/// Processes a finished program left running in its process group (`cmd &` in a script):
/// they end with the task, as at a cancel (SIGTERM, then SIGKILL after `grace`). Left alone,
/// one that held the program's output open kept the task running with no end, and any other
/// ran on until the node's next start stopped it.
async fn stop_left_behind(group: u32, grace: Duration) {
    let alive = || sys::process_group_runs(group);
    if !alive() {
        return;
    }
    let _ = sys::signal_process_group(group, sys::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while alive() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if alive() {
        let _ = sys::signal_process_group(group, sys::SIGKILL);
    }
}

/// Stops a process group: SIGTERM, then SIGKILL after `grace`; waits for `work` to end.
async fn terminate<F: Future<Output = Finished> + Unpin>(
    group: Option<u32>,
    grace: Duration,
    work: &mut F,
) -> Finished {
    if let Some(group) = group {
        let _ = sys::signal_process_group(group, sys::SIGTERM);
    }
    if let Ok(finished) = tokio::time::timeout(grace, &mut *work).await {
        return finished;
    }
    if let Some(group) = group {
        let _ = sys::signal_process_group(group, sys::SIGKILL);
    }
    match tokio::time::timeout(Duration::from_secs(5), &mut *work).await {
        Ok(finished) => finished,
        Err(_) => (
            Err(std::io::Error::other(
                "the program did not exit after SIGKILL",
            )),
            (Vec::new(), 0),
            (Vec::new(), 0),
        ),
    }
}

async fn run_exec(shared: Arc<Shared>, index: u32, id: TaskId, deadline: u64) {
    let slot = shared.arena.slot(index);
    let notify = shared.offload.register(id);
    let argv: Vec<String> = exec_argv(lock(&slot.text).as_deref().unwrap_or(""))
        .map(String::from)
        .collect();
    let attempt = u32::from(slot.attempt.load(Ordering::Relaxed));
    let max = usize::try_from(shared.config.exec.max_output).unwrap_or(usize::MAX);
    // The program runs only once its start is on disk (the worker logged it, written at
    // once): after a crash, a run number above 1 then means an earlier run of the program
    // began, and GOLIATH_ATTEMPT can be trusted for cleaning up after it.
    let start_lost = match &shared.wal {
        Some(wal) => wal.ticket_now().durable().await.err(),
        None => None,
    };
    let (state, output, error) = if slot.cancel_id.load(Ordering::Acquire) == id.0 {
        (
            TaskState::Cancelled,
            TaskOutput::None,
            Some("cancelled".into()),
        )
    } else if let Some(failure) = start_lost {
        (
            TaskState::Failed,
            TaskOutput::None,
            Some(
                format!("exec: not started, since its start could not be logged: {failure}").into(),
            ),
        )
    } else {
        let node_pid = std::process::id();
        let mut command = match EXEC_LAUNCHER.get() {
            Some(launcher) => {
                let mut command = tokio::process::Command::new(launcher);
                command
                    .arg(EXEC_LAUNCHER_ARG)
                    .arg(node_pid.to_string())
                    .arg("--")
                    .args(&argv);
                command
            }
            None => {
                let mut command = tokio::process::Command::new(&argv[0]);
                command.args(&argv[1..]);
                // SAFETY: the closure runs in the forked child before exec; it only calls
                // `kill_me_with_parent`, which makes async-signal-safe system calls and
                // allocates nothing, as a child of a multi-threaded process requires.
                unsafe {
                    command.pre_exec(move || sys::kill_me_with_parent(node_pid));
                }
                command
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("GOLIATH_TASK_ID", id.0.to_string())
            .env(super::children::RUN_VARIABLE, shared.children.token())
            .env("GOLIATH_ATTEMPT", attempt.to_string())
            .process_group(0)
            .kill_on_drop(true);
        match command.spawn() {
            Err(spawn_error) => {
                warn_if_out_of_descriptors(&spawn_error);
                (
                    TaskState::Failed,
                    TaskOutput::None,
                    Some(format!("exec: cannot start '{}': {spawn_error}", argv[0]).into()),
                )
            }
            Ok(mut child) => {
                let group = child.id();
                if let Some(group) = group {
                    shared.children.started(group);
                }
                let stdout = child.stdout.take();
                let stderr = child.stderr.take();
                let grace = shared.config.exec.kill_grace;
                // Read on a task of their own: the pipes stay open as long as anything the
                // program started holds them, which may be after it exits.
                let (stop_reading, reading_stopped) = tokio::sync::watch::channel(false);
                let mut captures = tokio::spawn(async move {
                    tokio::join!(
                        capture(stdout, max, reading_stopped.clone()),
                        capture(stderr, max, reading_stopped)
                    )
                });
                let mut work = Box::pin(async move {
                    let status = child.wait().await;
                    if let Some(group) = group {
                        stop_left_behind(group, grace).await;
                    }
                    let read = match tokio::time::timeout(output_drain(grace), &mut captures).await
                    {
                        Ok(read) => read,
                        Err(_) => {
                            tracing::warn!(
                                task = id.0,
                                "exec task: its program has exited, but a process it started outside its process group (setsid, a daemon) still holds its output open; the task ends with the output read so far, and that process runs on"
                            );
                            let _ = stop_reading.send(true);
                            captures.await
                        }
                    };
                    let (out, err) = read.unwrap_or(((Vec::new(), 0), (Vec::new(), 0)));
                    (status, out, err)
                });
                let (stopped_as, finished) = tokio::select! {
                    finished = &mut work => (None, finished),
                    _ = notify.notified() => (Some(TaskState::Cancelled), terminate(group, grace, &mut work).await),
                    _ = until_tick(&shared, deadline) => (Some(TaskState::TimedOut), terminate(group, grace, &mut work).await),
                };
                if let Some(group) = group {
                    shared.children.ended(group);
                }
                match launcher_failure(stopped_as, &finished) {
                    // The program never ran: said as a start failure, not as its exit code.
                    Some(error) => (TaskState::Failed, TaskOutput::None, Some(error.into())),
                    None => describe_exit(
                        stopped_as,
                        finished,
                        slot.timeout_ns.load(Ordering::Relaxed),
                        max,
                    ),
                }
            }
        }
    };
    shared.offload.unregister(id);
    let now = shared.clock.now();
    shared.finish(
        index,
        id,
        Ending {
            state,
            output,
            error,
        },
        FinishSite::Offload,
        now,
    );
}

/// Says in the node's log, at most once a minute, that exec tasks fail because the node is
/// out of file descriptors (the operator's limit, not the tasks' fault).
fn warn_if_out_of_descriptors(error: &std::io::Error) {
    use std::sync::atomic::AtomicU64;
    static LAST_WARNED_S: AtomicU64 = AtomicU64::new(0);
    // EMFILE (this process's limit) and ENFILE (the system's).
    if !matches!(error.raw_os_error(), Some(24 | 23)) {
        return;
    }
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let last = LAST_WARNED_S.load(Ordering::Relaxed);
    if (last == 0 || now_s >= last + 60)
        && LAST_WARNED_S
            .compare_exchange(last, now_s.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            %error,
            "exec tasks fail to start: this node is out of file descriptors (each running exec task holds about 6); raise the node's open-file limit (ulimit -n) or run fewer exec tasks at once"
        );
    }
}

/// Exit code of a launcher that could not start the task's program.
pub const EXEC_LAUNCHER_FAILED: u8 = 127;
/// How a launcher's failure to start the task's program begins, on its standard error.
const LAUNCHER_FAILED: &str = "goliath: exec: cannot start ";

/// The start failure a launcher reported (its exit code and its one line on standard error,
/// nothing on standard output), if that is how the child ended: the error to give the task
/// instead of "exited with status 127".
fn launcher_failure(stopped_as: Option<TaskState>, finished: &Finished) -> Option<String> {
    let (status, (stdout, _), (stderr, _)) = finished;
    let code = status.as_ref().ok().and_then(|status| status.code());
    if EXEC_LAUNCHER.get().is_none()
        || stopped_as.is_some()
        || code != Some(i32::from(EXEC_LAUNCHER_FAILED))
        || !stdout.is_empty()
    {
        return None;
    }
    let text = String::from_utf8_lossy(stderr);
    let line = text.strip_suffix('\n').unwrap_or(&text);
    (line.starts_with(LAUNCHER_FAILED) && !line.contains('\n'))
        .then(|| line.trim_start_matches("goliath: ").to_string())
}

/// `bytes` as text (lossy UTF-8, as `String::from_utf8_lossy`: U+FFFD for each sequence
/// that is not UTF-8) of at most
/// `max` bytes, and how many of `bytes` did not fit.
fn lossy_within(bytes: &[u8], max: usize) -> (String, u64) {
    const REPLACEMENT: &str = "\u{FFFD}";
    let mut text = String::with_capacity(bytes.len().min(max));
    let mut taken = 0;
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let room = max - text.len();
        if valid.len() > room {
            let mut end = room;
            while !valid.is_char_boundary(end) {
                end -= 1;
            }
            text.push_str(&valid[..end]);
            taken += end;
            break;
        }
        text.push_str(valid);
        taken += valid.len();
        if chunk.invalid().is_empty() {
            continue;
        }
        if max - text.len() < REPLACEMENT.len() {
            break;
        }
        text.push_str(REPLACEMENT);
        taken += chunk.invalid().len();
    }
    (text, (bytes.len() - taken) as u64)
}

fn describe_exit(
    stopped_as: Option<TaskState>,
    finished: Finished,
    timeout_ns: u64,
    max_output: usize,
) -> (TaskState, TaskOutput, Option<Box<str>>) {
    use std::os::unix::process::ExitStatusExt;
    let (status, (stdout, stdout_truncated), (stderr, stderr_truncated)) = finished;
    // The text kept takes no more than `exec.max_output` bytes: a byte that is not UTF-8
    // becomes U+FFFD, three bytes, so 64 KiB of binary output would otherwise be kept (and
    // sent) as 192 KiB. Bounded by the captured length instead, one such byte cut the last
    // two bytes of a short output.
    let (stdout, stdout_cut) = lossy_within(&stdout, max_output.max(stdout.len()));
    let (stderr, stderr_cut) = lossy_within(&stderr, max_output.max(stderr.len()));
    let mut output = ProcessOutput {
        exit_code: None,
        signal: None,
        stdout,
        stderr,
        stdout_truncated: stdout_truncated.saturating_add(stdout_cut),
        stderr_truncated: stderr_truncated.saturating_add(stderr_cut),
    };
    let wait_error = match status {
        Ok(status) => {
            output.exit_code = status.code();
            output.signal = status.signal();
            None
        }
        Err(error) => Some(error.to_string()),
    };
    let process = TaskOutput::Process(Box::new(output.clone()));
    match stopped_as {
        Some(TaskState::Cancelled) => (TaskState::Cancelled, process, Some("cancelled".into())),
        Some(_) => (
            TaskState::TimedOut,
            process,
            Some(timed_out_message(timeout_ns, KindId::EXEC)),
        ),
        None => match (wait_error, output.exit_code, output.signal) {
            (Some(error), _, _) => (
                TaskState::Failed,
                process,
                Some(format!("exec: waiting for the program failed: {error}").into()),
            ),
            (None, Some(0), _) => (TaskState::Succeeded, process, None),
            (None, Some(code), _) => (
                TaskState::Failed,
                process,
                Some(format!("exited with status {code}").into()),
            ),
            (None, None, Some(signal)) => (
                TaskState::Failed,
                process,
                Some(format!("killed by signal {signal}").into()),
            ),
            (None, None, None) => (
                TaskState::Failed,
                process,
                Some("exited without a status".into()),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_output_text_never_takes_more_bytes_than_were_captured() {
        // Valid text is kept whole.
        assert_eq!(lossy_within(b"plain", 5), ("plain".to_string(), 0));
        assert_eq!(
            lossy_within("h\u{e9}!".as_bytes(), 4),
            ("h\u{e9}!".to_string(), 0)
        );
        // Bytes that are not UTF-8 become U+FFFD (three bytes each) while they fit, and
        // what does not fit is counted.
        let binary = vec![0xffu8; 1000];
        let (text, cut) = lossy_within(&binary, binary.len());
        assert_eq!((text.len(), cut), (999, 667));
        assert!(text.chars().all(|c| c == '\u{FFFD}'));
        let alternating: Vec<u8> = (0..1000).flat_map(|_| [b'a', 0xff]).collect();
        let (text, cut) = lossy_within(&alternating, alternating.len());
        // Each pair of bytes becomes 4 of text: half of them fit.
        assert_eq!((text.len(), cut), (2000, 1000));
        assert!(text.starts_with("a\u{FFFD}a"));
        // A character is never split: the bound falls inside "é".
        let (text, cut) = lossy_within("ab\u{e9}".as_bytes(), 3);
        assert_eq!((text.as_str(), cut), ("ab", 2));
    }

    #[test]
    fn the_exec_launcher_refuses_arguments_it_cannot_run_without_starting_anything() {
        let args = |list: &[&str]| -> Vec<std::ffi::OsString> {
            list.iter().map(std::ffi::OsString::from).collect()
        };
        let said = run_exec_launcher(&args(&["not-a-pid", "--", "true"]));
        assert!(said.contains("must be the node's pid"), "{said}");
        let said = run_exec_launcher(&args(&["42", "true"]));
        assert!(said.contains("expected `-- PROGRAM ARGS…`"), "{said}");
        let said = run_exec_launcher(&args(&["42", "--"]));
        assert!(said.contains("expected `-- PROGRAM ARGS…`"), "{said}");
    }
}
