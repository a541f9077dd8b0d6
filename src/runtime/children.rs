//! The process groups of running `exec` tasks, listed in the data directory while they run.
//!
//! A node killed outright (SIGKILL, OOM) cannot stop its `exec` children: the group leader
//! gets SIGKILL from the kernel when the node dies (see [`sys::kill_me_with_parent`]), but what
//! it started lives on. The node runs those tasks again at its next start, so without this a
//! task with side effects would run twice at once. The list names each group with its
//! leader's start time, so a reused pid is never taken for a leftover; the next start on the
//! same data directory stops every listed group that is still there before it runs anything.
//!
//! The list is a journal of lines, `+GROUP START` when a group starts and `-GROUP` when it
//! ends, appended (one small write each, never fsynced: after a power loss no process is left
//! to stop) and rewritten compactly once it holds four times the lines it needs.
//! Must not: block a worker (it is used from the I/O thread only), or signal a process whose
//! start time does not match.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::lock;
use super::sys;

/// The list's file name in the data directory.
pub const FILE: &str = "exec-children";

/// The running `exec` process groups of a node with a data directory.
#[derive(Debug, Default)]
pub(crate) struct Children {
    /// Where the list is kept; None for a memory-only node (its tasks never run again).
    path: Option<PathBuf>,
    journal: Mutex<Journal>,
}

#[derive(Debug, Default)]
struct Journal {
    /// Group id → the leader's start time (clock ticks since boot).
    running: BTreeMap<u32, u64>,
    /// The list, open for appending (opened at the first start).
    file: Option<File>,
    /// Lines in the file.
    lines: usize,
}

/// Lines the journal may hold before it is compacted, at least.
const COMPACT_FLOOR: usize = 64;

impl Children {
    /// The list of the node with data directory `dir` (none without one).
    pub fn new(dir: Option<&Path>) -> Self {
        Self {
            path: dir.map(|dir| dir.join(FILE)),
            journal: Mutex::new(Journal::default()),
        }
    }

    /// Group `group` (its leader's pid) started.
    pub fn started(&self, group: u32) {
        let Some(path) = &self.path else { return };
        let Some(start) = process_start_time(group) else {
            // Already gone: nothing to stop later.
            return;
        };
        let mut journal = lock(&self.journal);
        journal.running.insert(group, start);
        journal.append(path, &format!("+{group} {start}\n"));
    }

    /// Group `group` ended (its leader was waited for).
    pub fn ended(&self, group: u32) {
        let Some(path) = &self.path else { return };
        let mut journal = lock(&self.journal);
        if journal.running.remove(&group).is_some() {
            journal.append(path, &format!("-{group}\n"));
        }
    }
}

impl Journal {
    fn append(&mut self, path: &Path, line: &str) {
        if self.lines >= COMPACT_FLOOR.max(4 * self.running.len()) {
            self.compact(path);
            return;
        }
        let result = match &mut self.file {
            Some(file) => file.write_all(line.as_bytes()),
            None => OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .and_then(|mut file| {
                    file.write_all(line.as_bytes())?;
                    self.file = Some(file);
                    Ok(())
                }),
        };
        match result {
            Ok(()) => self.lines += 1,
            Err(error) => warn_unlisted(path, &error),
        }
    }

    /// Rewrites the list with the running groups only (to a temporary file, then renamed).
    fn compact(&mut self, path: &Path) {
        let mut text = String::new();
        for (group, start) in &self.running {
            text.push_str(&format!("+{group} {start}\n"));
        }
        let temp = path.with_extension("tmp");
        let result = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .and_then(|()| std::fs::rename(&temp, path))
            .and_then(|()| OpenOptions::new().append(true).open(path));
        match result {
            Ok(file) => {
                self.file = Some(file);
                self.lines = self.running.len();
            }
            Err(error) => {
                self.file = None;
                warn_unlisted(path, &error);
            }
        }
    }
}

fn warn_unlisted(path: &Path, error: &io::Error) {
    tracing::warn!(file = %path.display(), %error, "cannot update the list of running exec processes; after a crash they may be left running");
}

/// Stops the process groups the list in `dir` names that are still there (the leader's start
/// time matching), and removes the list. Called at start, with the directory locked, before
/// any task runs. Returns how many groups were stopped.
pub fn stop_leftovers(dir: &Path) -> io::Result<usize> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut listed = BTreeMap::new();
    for line in text.lines() {
        if let Some(ended) = line.strip_prefix('-') {
            if let Ok(group) = ended.trim().parse::<u32>() {
                listed.remove(&group);
            }
            continue;
        }
        let mut words = line.trim_start_matches('+').split_whitespace();
        if let (Some(Ok(group)), Some(Ok(start))) = (
            words.next().map(str::parse::<u32>),
            words.next().map(str::parse::<u64>),
        ) {
            listed.insert(group, start);
        }
    }
    let mut stopped = 0;
    for (group, start) in listed {
        // The leader itself, or (once it died and was reaped, as the kernel's SIGKILL at the
        // node's death does to it) a live member of its group that started after it: a group
        // id is only taken again by a process with that pid, which is not there.
        let ours = match process_start_time(group) {
            Some(leader_start) => leader_start == start,
            None => group_has_member_since(group, start),
        };
        if ours && sys::signal_process_group(group, sys::SIGKILL).is_ok() {
            stopped += 1;
        }
    }
    std::fs::remove_file(&path)?;
    Ok(stopped)
}

/// Whether a live (not zombie) process of process group `group` started at or after `start`.
fn group_has_member_since(group: u32, start: u64) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()));
        is_pid
            && std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    let fields: Vec<&str> = rest.split_whitespace().collect();
                    let state = fields.first()?;
                    let pgrp: u32 = fields.get(2)?.parse().ok()?;
                    let started: u64 = fields.get(19)?.parse().ok()?;
                    Some(*state != "Z" && pgrp == group && started >= start)
                })
                .unwrap_or(false)
    })
}

/// When process `pid` started (clock ticks since boot), from `/proc/<pid>/stat`; None if there
/// is no such process.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parentheses) start after the
    // last ')': state is field 3, so starttime (field 22) is the 20th after it.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[test]
    fn a_listed_group_still_running_is_stopped_and_a_reused_pid_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let children = Children::new(Some(dir.path()));
        let mut leader = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .expect("sleep starts");
        let group = leader.id();
        children.started(group);
        let listed = std::fs::read_to_string(dir.path().join(FILE)).expect("listed");
        assert!(listed.starts_with(&format!("+{group} ")), "{listed}");
        // A line for our own pid with another start time: a pid reused since.
        let me = std::process::id();
        std::fs::write(
            dir.path().join(FILE),
            format!("{listed}{me} 1\nnot a line\n"),
        )
        .expect("writes");
        assert_eq!(stop_leftovers(dir.path()).expect("stops"), 1);
        let _ = leader.wait();
        assert!(gone(group));
        assert!(!dir.path().join(FILE).exists(), "the list is removed");
        assert_eq!(stop_leftovers(dir.path()).expect("nothing to do"), 0);
    }

    #[test]
    fn an_ended_group_leaves_the_list_and_a_memory_only_node_keeps_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let children = Children::new(Some(dir.path()));
        let mut leader = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .expect("sleep starts");
        children.started(leader.id());
        let _ = leader.kill();
        let _ = leader.wait();
        children.ended(leader.id());
        let listed = std::fs::read_to_string(dir.path().join(FILE)).expect("listed");
        let lines: Vec<&str> = listed.lines().collect();
        assert_eq!(lines.len(), 2, "{listed}");
        assert!(
            lines[0].starts_with(&format!("+{} ", leader.id())),
            "{listed}"
        );
        assert_eq!(lines[1], format!("-{}", leader.id()));
        // Nothing left to stop.
        assert_eq!(stop_leftovers(dir.path()).expect("reads"), 0);
        let memory_only = Children::new(None);
        memory_only.started(std::process::id());
        memory_only.ended(std::process::id());
    }

    #[test]
    fn the_journal_is_compacted_so_it_stays_small_under_many_short_tasks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let children = Children::new(Some(dir.path()));
        // Our own pid stands for a group that keeps running throughout.
        let me = std::process::id();
        children.started(me);
        for _ in 0..500 {
            let mut leader = std::process::Command::new("true")
                .process_group(0)
                .spawn()
                .expect("true starts");
            let group = leader.id();
            children.started(group);
            let _ = leader.wait();
            children.ended(group);
        }
        let listed = std::fs::read_to_string(dir.path().join(FILE)).expect("listed");
        assert!(listed.lines().count() <= COMPACT_FLOOR + 2, "{listed}");
        assert!(
            listed.contains(&format!("+{me} ")),
            "the running one is kept: {listed}"
        );
    }

    #[test]
    fn a_group_whose_leader_is_gone_is_still_stopped_through_its_members() {
        let dir = tempfile::tempdir().expect("temp dir");
        let children = Children::new(Some(dir.path()));
        // A leader that starts a member of its group and exits (as the kernel's SIGKILL at
        // the node's death leaves it), reaped at once.
        let leader = std::process::Command::new("sh")
            .args(["-c", "sleep 60 >/dev/null & echo $!"])
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh starts");
        let group = leader.id();
        children.started(group);
        let output = leader.wait_with_output().expect("sh ends");
        let member: u32 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("the member's pid");
        assert!(!gone(member));
        assert_eq!(stop_leftovers(dir.path()).expect("stops"), 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !gone(member) {
            assert!(std::time::Instant::now() < deadline, "{member} still runs");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        use std::os::unix::fs::PermissionsExt;
        // The next run's list.
        Children::new(Some(dir.path())).started(std::process::id());
        let mode = std::fs::metadata(dir.path().join(FILE))
            .expect("listed")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "private, like the rest of the data directory"
        );
    }

    #[test]
    fn the_start_time_of_a_process_is_read_past_a_name_with_parentheses() {
        assert!(process_start_time(std::process::id()).is_some());
        assert_eq!(process_start_time(u32::MAX), None);
    }
}
