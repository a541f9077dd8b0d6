//! The process groups of running `exec` tasks, listed in the data directory while they run.
//!
//! A node killed outright (SIGKILL, OOM) cannot stop its `exec` children: the group leader
//! gets SIGKILL from the kernel when the node dies (see [`sys::kill_me_with_parent`]), but what
//! it started lives on. The node runs those tasks again at its next start, so without this a
//! task with side effects would run twice at once. The next start on the same data directory
//! stops what is left of the listed groups before it runs anything:
//! - a group whose leader is still there, with the start time listed, as a whole;
//! - once the leader is gone (a pid, and so a group id, can be taken again by anything),
//!   only the processes of the group whose environment carries this run's token
//!   (`GOLIATH_RUN`, given to every `exec` child and inherited by what it starts).
//!
//! Nothing from another boot (the journal names the boot) is touched.
//!
//! The list is a journal of lines: `run TOKEN BOOT` first, then `+GROUP START` when a group
//! starts and `-GROUP` when it ends, appended (one small write each, never fsynced: after a
//! power loss no process is left to stop) and rewritten compactly once it holds four times
//! the lines it needs.
//! Must not: block a worker (it is used from the I/O thread only), or signal a process that
//! is not shown to be this node's.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::lock;
use super::sys;

/// The list's file name in the data directory.
pub const FILE: &str = "exec-children";

/// The environment variable that carries a run's token to its `exec` children.
pub const RUN_VARIABLE: &str = "GOLIATH_RUN";

/// The running `exec` process groups of a node with a data directory.
#[derive(Debug, Default)]
pub(crate) struct Children {
    /// Where the list is kept; None for a memory-only node (its tasks never run again).
    path: Option<PathBuf>,
    /// This run's token, in every `exec` child's environment.
    token: String,
    /// The journal's first line: the token and this boot's id (read once, at start).
    header: String,
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
        use std::hash::{BuildHasher, Hasher};
        // Random keys of the standard hasher, the pid and the time: unique enough to tell
        // this run's processes from any other's.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let token = format!("{:016x}", hasher.finish());
        Self {
            path: dir.map(|dir| dir.join(FILE)),
            header: format!("run {token} {}\n", boot_id()),
            token,
            journal: Mutex::new(Journal::default()),
        }
    }

    /// This run's token, for the `exec` children's environment ([`RUN_VARIABLE`]).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Group `group` (its leader's pid) started.
    pub fn started(&self, group: u32) {
        let Some(start) = proc_stat(group).map(|s| s.start) else {
            // Already gone: nothing to stop later.
            return;
        };
        let mut journal = lock(&self.journal);
        journal.running.insert(group, start);
        if let Some(path) = &self.path {
            journal.append(path, &self.header, &format!("+{group} {start}\n"));
        }
    }

    /// Group `group` ended (its leader was waited for).
    pub fn ended(&self, group: u32) {
        let mut journal = lock(&self.journal);
        if journal.running.remove(&group).is_some()
            && let Some(path) = &self.path
        {
            journal.append(path, &self.header, &format!("-{group}\n"));
        }
    }

    /// SIGKILLs every running group whose leader is still the process that started it: for
    /// a node stopping at once (a second signal during its shutdown), which has no time to
    /// wait for its programs but must not leave them running behind it. Returns how many
    /// groups were signalled. The list stays: the next start finds the groups gone.
    pub fn kill_all(&self) -> usize {
        let journal = lock(&self.journal);
        journal
            .running
            .iter()
            .filter(|(group, start)| proc_stat(**group).is_some_and(|s| s.start == **start))
            .filter(|(group, _)| sys::signal_process_group(**group, sys::SIGKILL).is_ok())
            .count()
    }
}

impl Journal {
    /// Appends `line`; the first time, or once the journal holds four times the lines it
    /// needs, writes it afresh instead (which takes the line's change in too).
    fn append(&mut self, path: &Path, header: &str, line: &str) {
        let room = self.lines < COMPACT_FLOOR.max(4 * self.running.len());
        match self.file.as_mut() {
            Some(file) if room => match file.write_all(line.as_bytes()) {
                Ok(()) => self.lines += 1,
                Err(error) => warn_unlisted(path, &error),
            },
            _ => self.compact(path, header),
        }
    }

    /// Writes the list afresh: the header and the running groups (to a temporary file, then
    /// renamed).
    fn compact(&mut self, path: &Path, header: &str) {
        let mut text = header.to_string();
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
                self.lines = self.running.len() + 1;
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

/// Stops what is left of the process groups the list in `dir` names (see the module docs),
/// and removes the list. Called at start, with the directory locked, before any task runs.
/// Returns how many groups had something stopped; a list that cannot be removed afterwards
/// is only warned about.
pub fn stop_leftovers(dir: &Path) -> io::Result<usize> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut listed = BTreeMap::new();
    let mut run: Option<(&str, &str)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("run ") {
            let mut words = rest.split_whitespace();
            run = words
                .next()
                .map(|token| (token, words.next().unwrap_or("")));
            continue;
        }
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
    // From this boot only: start times count from boot, and nothing survives a reboot.
    let this_boot = run.is_some_and(|(_, boot)| !boot.is_empty() && boot == boot_id());
    if this_boot {
        let token = run.map(|(token, _)| token).unwrap_or("");
        let mut leaderless = BTreeSet::new();
        for (group, start) in listed {
            match proc_stat(group) {
                // The leader, still there: the whole group is ours.
                Some(leader) if leader.start == start => {
                    if sys::signal_process_group(group, sys::SIGKILL).is_ok() {
                        stopped += 1;
                    }
                }
                // The leader is gone (its pid may be someone else's now): only the group's
                // members that carry this run's token, never the whole group.
                Some(_) | None => {
                    leaderless.insert(group);
                }
            }
        }
        stopped += stop_members_with_token(&leaderless, token);
    }
    if let Err(error) = std::fs::remove_file(&path) {
        tracing::warn!(file = %path.display(), %error, "cannot remove the list of the previous run's exec processes");
    }
    Ok(stopped)
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), or "" if unknown.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_string())
        .unwrap_or_default()
}

/// SIGKILLs every live process of one of `groups` whose environment holds
/// `GOLIATH_RUN=token`, in one pass over `/proc`; returns how many groups had one.
fn stop_members_with_token(groups: &BTreeSet<u32>, token: &str) -> usize {
    if groups.is_empty() || token.is_empty() {
        return 0;
    }
    let wanted = format!("{RUN_VARIABLE}={token}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut touched = BTreeSet::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(stat) = proc_stat(pid).filter(|s| !s.zombie && groups.contains(&s.group)) else {
            continue;
        };
        let carries_token = std::fs::read(entry.path().join("environ")).is_ok_and(|environ| {
            environ
                .split(|byte| *byte == 0)
                .any(|variable| variable == wanted.as_bytes())
        });
        if carries_token && sys::signal_process(pid, sys::SIGKILL).is_ok() {
            touched.insert(stat.group);
        }
    }
    touched.len()
}

/// What `/proc/<pid>/stat` says of a process that matters here.
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    /// Exited, not yet reaped.
    zombie: bool,
    /// Its process group.
    group: u32,
    /// When it started (clock ticks since boot).
    start: u64,
}

/// `/proc/<pid>/stat` read; None if there is no such process.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parentheses) start after the
    // last ')': state is field 3 (index 0 after it), pgrp field 5, starttime field 22.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        zombie: *fields.first()? == "Z",
        group: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
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

    /// `sleep 60` as the leader of its own process group, as an exec task's child is.
    fn sleeping_leader() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .expect("sleep starts")
    }

    #[test]
    fn a_listed_group_still_running_is_stopped_and_a_reused_pid_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let children = Children::new(Some(dir.path()));
        let mut leader = sleeping_leader();
        let group = leader.id();
        children.started(group);
        let listed = std::fs::read_to_string(dir.path().join(FILE)).expect("listed");
        assert!(listed.starts_with("run "), "{listed}");
        assert!(listed.contains(&format!("\n+{group} ")), "{listed}");
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
        let mut leader = sleeping_leader();
        children.started(leader.id());
        let _ = leader.kill();
        let _ = leader.wait();
        children.ended(leader.id());
        let listed = std::fs::read_to_string(dir.path().join(FILE)).expect("listed");
        let lines: Vec<&str> = listed.lines().collect();
        assert_eq!(lines.len(), 3, "{listed}");
        assert!(
            lines[0].starts_with(&format!("run {} ", children.token())),
            "{listed}"
        );
        assert!(
            lines[1].starts_with(&format!("+{} ", leader.id())),
            "{listed}"
        );
        assert_eq!(lines[2], format!("-{}", leader.id()));
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
        // Two members: one that carries the run's token (as whatever an exec task starts
        // does), one that does not (as a process that took the group id over would not).
        let leader = std::process::Command::new("sh")
            .args([
                "-c",
                "sleep 60 >/dev/null & echo $!; env -u GOLIATH_RUN sleep 60 >/dev/null & echo $!",
            ])
            .env(RUN_VARIABLE, children.token())
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh starts");
        let group = leader.id();
        children.started(group);
        let output = leader.wait_with_output().expect("sh ends");
        let members: Vec<u32> = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(|pid| pid.parse().expect("a pid"))
            .collect();
        let [ours, stranger] = members[..] else {
            panic!("{members:?}")
        };
        assert!(!gone(ours) && !gone(stranger));
        // Until `env` has replaced itself with `sleep`, the stranger's environment is the
        // one `sh` gave it, token included: wait for both to be `sleep` (under a loaded
        // test run, the scan below came first and took the stranger for one of ours).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for pid in [ours, stranger] {
            while std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map_or(true, |name| name.trim() != "sleep")
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{pid} never ran sleep"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        assert_eq!(stop_leftovers(dir.path()).expect("stops"), 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !gone(ours) {
            assert!(std::time::Instant::now() < deadline, "{ours} still runs");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!gone(stranger), "a process without the token is left alone");
        let _ = sys::signal_process(stranger, sys::SIGKILL);
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
    fn a_list_from_another_boot_stops_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut leader = sleeping_leader();
        let group = leader.id();
        let start = proc_stat(group).map(|s| s.start).expect("running");
        std::fs::write(
            dir.path().join(FILE),
            format!("run 0123 another-boot\n+{group} {start}\n"),
        )
        .expect("writes");
        assert_eq!(stop_leftovers(dir.path()).expect("reads"), 0);
        assert!(!gone(group), "start times of another boot say nothing");
        let _ = leader.kill();
        let _ = leader.wait();
    }

    #[test]
    fn the_start_time_of_a_process_is_read_past_a_name_with_parentheses() {
        assert!(proc_stat(std::process::id()).map(|s| s.start).is_some());
        assert_eq!(proc_stat(u32::MAX).map(|s| s.start), None);
    }
}
