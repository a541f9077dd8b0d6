//! The child nodes of `goliath demo`: their lifetime, and their log lines while the console
//! owns the terminal.
//!
//! A child's standard error inherited from a console would write its log lines straight
//! into the drawn screen, scrolling it under the console and leaving rows in the wrong
//! places until the next full redraw. With a console, each child's standard error is a pipe
//! instead: a thread reads it line by line and logs each line here, at the child's level and
//! under its name, so it reaches the console's log; when the pipe ends the thread says how
//! the child ended (a child that dies while the demo runs is news for the operator). Without
//! a console the children share the demo's standard error, as any headless node would.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest child log line passed on; the rest of a longer line is dropped.
const LINE_MAX: usize = 4096;

/// The running child nodes.
#[derive(Default)]
pub struct DemoChildren {
    children: Vec<Arc<Mutex<Child>>>,
    /// Set when the demo stops them, so their ends are not reported as failures.
    stopping: Arc<AtomicBool>,
}

fn lock(child: &Mutex<Child>) -> MutexGuard<'_, Child> {
    child
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DemoChildren {
    /// Starts `command` as the child node `name`. With `forward_log`, its standard error is
    /// read into this process's log (see the module docs). Returns the child's pid.
    pub fn spawn(
        &mut self,
        name: &str,
        command: &mut Command,
        forward_log: bool,
    ) -> std::io::Result<u32> {
        if forward_log {
            command.stderr(std::process::Stdio::piped());
        }
        let mut child = command.spawn()?;
        let pid = child.id();
        let stderr = child.stderr.take();
        let child = Arc::new(Mutex::new(child));
        if let Some(stderr) = stderr {
            let (owned_name, watched, stopping) =
                (name.to_string(), child.clone(), self.stopping.clone());
            let started = std::thread::Builder::new()
                .name(format!("goliath-{name}-log"))
                .spawn(move || forward(&owned_name, pid, stderr, &watched, &stopping));
            if let Err(error) = started {
                tracing::warn!("{name}: cannot read its log ({error}); its lines are lost");
            }
        }
        self.children.push(child);
        Ok(pid)
    }

    /// Asks every child to stop (closing its standard input is its cue to leave the cluster
    /// and exit) and waits up to `grace` for all of them; kills those still running then.
    pub fn stop(&mut self, grace: Duration) {
        self.stopping.store(true, Ordering::Relaxed);
        for child in &self.children {
            drop(lock(child).stdin.take());
        }
        let deadline = Instant::now() + grace;
        for child in &self.children {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = lock(child).try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut child = lock(child);
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Logs each line `stderr` gives, then how the child ended.
fn forward(name: &str, pid: u32, stderr: ChildStderr, child: &Mutex<Child>, stopping: &AtomicBool) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(LINE_MAX as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') && line.len() == LINE_MAX {
            // Drop the rest of an over-long line, a bounded piece at a time.
            let mut rest = Vec::with_capacity(LINE_MAX);
            loop {
                rest.clear();
                match (&mut reader)
                    .take(LINE_MAX as u64)
                    .read_until(b'\n', &mut rest)
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
        }
        let text = String::from_utf8_lossy(&line);
        let (level, message) = parse_line(&text);
        if message.is_empty() {
            continue;
        }
        use goliath::tui::log::DEMO_CHILD_TARGET as CHILD;
        match level {
            tracing::Level::ERROR => tracing::error!(target: CHILD, "{name}: {message}"),
            tracing::Level::WARN => tracing::warn!(target: CHILD, "{name}: {message}"),
            tracing::Level::INFO => tracing::info!(target: CHILD, "{name}: {message}"),
            tracing::Level::DEBUG => tracing::debug!(target: CHILD, "{name}: {message}"),
            _ => tracing::trace!(target: CHILD, "{name}: {message}"),
        }
    }
    // The pipe ends when the child exits; its status follows within moments.
    let deadline = Instant::now() + Duration::from_secs(2);
    let status = loop {
        match lock(child).try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {}
            _ => break None,
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if stopping.load(Ordering::Relaxed) {
        return;
    }
    match status {
        Some(status) if status.success() => {
            tracing::info!("{name} (pid {pid}) has exited ({status}) and left the cluster")
        }
        Some(status) => tracing::warn!(
            "{name} (pid {pid}) has stopped ({status}); the others will report it down"
        ),
        None => tracing::warn!("{name} (pid {pid}) closed its log; it may still be running"),
    }
}

/// The level and message of one line of a headless node's log (`<time>  WARN message`, as
/// its stderr writer formats it without colour). A line of another shape (a panic, an error
/// printed on the way out) is a warning as it is.
fn parse_line(line: &str) -> (tracing::Level, &str) {
    let line = line.trim();
    let parsed = line.split_once(' ').and_then(|(time, rest)| {
        if !time.ends_with('Z') || !time.contains('T') {
            return None;
        }
        let rest = rest.trim_start();
        let (word, message) = rest.split_once(' ').unwrap_or((rest, ""));
        let level = match word {
            "ERROR" => tracing::Level::ERROR,
            "WARN" => tracing::Level::WARN,
            "INFO" => tracing::Level::INFO,
            "DEBUG" => tracing::Level::DEBUG,
            "TRACE" => tracing::Level::TRACE,
            _ => return None,
        };
        Some((level, message.trim()))
    });
    parsed.unwrap_or((tracing::Level::WARN, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_log_line_gives_its_level_and_message() {
        assert_eq!(
            parse_line(
                "2026-12-02T05:30:25.694830Z  WARN demo-2 failed (declared dead) member=demo-2\n"
            ),
            (
                tracing::Level::WARN,
                "demo-2 failed (declared dead) member=demo-2"
            )
        );
        assert_eq!(
            parse_line("2026-12-02T05:30:25.694830Z ERROR the log failed: disk full"),
            (tracing::Level::ERROR, "the log failed: disk full")
        );
        assert_eq!(
            parse_line("2026-12-02T05:30:25Z  INFO node started"),
            (tracing::Level::INFO, "node started")
        );
    }

    #[test]
    fn other_lines_pass_as_they_are() {
        assert_eq!(
            parse_line("thread 'main' panicked at src/main.rs:1:1:\n"),
            (
                tracing::Level::WARN,
                "thread 'main' panicked at src/main.rs:1:1:"
            )
        );
        assert_eq!(
            parse_line("  WARN alone"),
            (tracing::Level::WARN, "WARN alone")
        );
        assert_eq!(parse_line("\n"), (tracing::Level::WARN, ""));
    }
}
