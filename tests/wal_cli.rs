//! The write-ahead log through the real binary: the data directory lock, fail-stop on a failed
//! fdatasync, a full disk, recovered exec tasks seeing their attempt, `goliath wal verify` and
//! `goliath wal dump`, and the WAL lines of `goliath status`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::binary::{RunningNode, goliath};
use goliath::runtime::TaskId;
use goliath::runtime::net::client::ConnectOptions;
use goliath::runtime::net::{Client, ClientError, Request, Response, SubmitRequest};

const SMALL: &[&str] = &[
    "--workers",
    "1",
    "--set",
    "wal.segment_size=64KiB",
    "--set",
    "wal.checkpoint_every=1GiB",
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Submits `specs` one request each, `concurrency` at a time, until all are done or the node
/// fails; returns the acknowledged (id, spec) pairs and the errors, joined.
fn submit_all(
    address: &str,
    specs: Vec<String>,
    concurrency: usize,
) -> (Vec<(TaskId, String)>, Option<String>) {
    runtime().block_on(async {
        let client = match Client::connect(address, &ConnectOptions::default()).await {
            Ok(client) => std::sync::Arc::new(client),
            Err(error) => return (Vec::new(), Some(error.to_string())),
        };
        let queue = std::sync::Arc::new(std::sync::Mutex::new(specs));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let client = client.clone();
            let queue = queue.clone();
            workers.spawn(async move {
                let mut acked = Vec::new();
                loop {
                    let Some(spec) = queue.lock().expect("queue").pop() else {
                        return (acked, None);
                    };
                    let request = Request::Submit(SubmitRequest {
                        specs: vec![spec.clone()],
                        idempotency_key: None,
                        wait: false,
                        report_ids: false,
                    });
                    match client.request(request).await {
                        Ok(Response::Submitted { ids, .. }) => {
                            acked.extend(ids.into_iter().map(|id| (id, spec.clone())))
                        }
                        Ok(other) => return (acked, Some(format!("unexpected {other:?}"))),
                        Err(error) => return (acked, Some(error.to_string())),
                    }
                }
            });
        }
        let mut acked = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        while let Some(result) = workers.join_next().await {
            let (got, error) = result.expect("no panic");
            acked.extend(got);
            errors.extend(error);
        }
        (acked, (!errors.is_empty()).then(|| errors.join("\n")))
    })
}

/// Looks up every id; returns those missing or with another spec.
fn missing(address: &str, acked: &[(TaskId, String)]) -> Vec<String> {
    runtime().block_on(async {
        let client = Client::connect(address, &ConnectOptions::default())
            .await
            .expect("connects");
        let mut missing = Vec::new();
        for (id, spec) in acked {
            match client.request(Request::Task { id: *id }).await {
                Ok(Response::Task(info)) if info.spec == *spec => {}
                Ok(Response::Task(info)) => {
                    missing.push(format!("{id}: spec {:?}, not {spec:?}", info.spec))
                }
                Ok(other) => missing.push(format!("{id}: {other:?}")),
                Err(ClientError::Remote(error)) => missing.push(format!("{id}: {error}")),
                Err(error) => panic!("{error}"),
            }
        }
        missing
    })
}

#[test]
fn a_segment_deleted_under_a_running_node_is_not_called_safe_on_disk_at_the_stop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = RunningNode::start_in(dir.path(), &["--workers", "1"]);
    assert!(node.client(&["submit", "sleep 1h"]).status.success());
    for entry in std::fs::read_dir(dir.path()).expect("lists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "seg") {
            std::fs::remove_file(&path).expect("remove");
        }
    }
    // The next append finds its segment gone and stops the node.
    let _ = node.client(&["submit", "echo b"]);
    assert_eq!(node.wait_exit(), Some(1), "{}", node.log());
    let log = node.log();
    assert!(log.contains("was deleted"), "{log}");
    assert!(!log.contains("safe on disk"), "{log}");
    assert!(log.contains("goliath wal repair --data-dir"), "{log}");
}

#[test]
fn a_lock_file_deleted_under_a_running_node_is_told_apart_from_a_lost_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = RunningNode::start_in(dir.path(), &["--workers", "1"]);
    assert!(node.client(&["submit", "sleep 1h"]).status.success());
    std::fs::remove_file(dir.path().join("LOCK")).expect("remove the lock");
    // The next append finds the lock gone and stops the node; the log itself is whole.
    let _ = node.client(&["submit", "echo b"]);
    assert_eq!(node.wait_exit(), Some(1), "{}", node.log());
    let log = node.log();
    assert!(
        log.contains("lock file") && log.contains("was removed while this node ran"),
        "{log}"
    );
    assert!(
        log.contains("Only its lock file was removed; the log reads whole"),
        "{log}"
    );
    assert!(!log.contains("is gone"), "{log}");
    // And a node starts there again with the task acknowledged before.
    let node = RunningNode::start_in(dir.path(), &["--workers", "1"]);
    let listed = node.client(&["tasks", "--json"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("sleep 1h"));
}

#[test]
fn a_lock_taken_over_by_a_second_node_is_named_not_called_a_disk_fault() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = RunningNode::start_in(dir.path(), &["--workers", "1"]);
    assert!(first.client(&["submit", "sleep 1h"]).status.success());
    // The first node's spare segment made first: else the second node may create its first
    // segment under the same name at the same moment, and one of the two fails to start it.
    let spare = dir.path().join("wal-0000000000000002.seg");
    common::eventually(|| {
        spare
            .exists()
            .then_some(())
            .ok_or_else(|| format!("no {}", spare.display()))
    });
    // The lock removed, a second node starts on the directory and takes a lock of its own.
    std::fs::remove_file(dir.path().join("LOCK")).expect("remove the lock");
    let second = RunningNode::start_in(dir.path(), &["--workers", "1"]);
    let _ = first.client(&["submit", "echo b"]);
    assert_eq!(first.wait_exit(), Some(1), "{}", first.log());
    let log = first.log();
    assert!(
        log.contains(&format!(
            "Another goliath node (pid {}) holds the directory now",
            second.child.id()
        )),
        "{log}"
    );
    assert!(!log.contains("fix the disk"), "{log}");
}

#[test]
fn a_data_directory_moved_under_a_running_node_is_not_called_lost() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("data");
    let mut node = RunningNode::start_in(&dir, &["--workers", "1"]);
    assert!(node.client(&["submit", "sleep 1h"]).status.success());
    let moved = parent.path().join("moved");
    std::fs::rename(&dir, &moved).expect("move the directory");
    let _ = node.client(&["submit", "echo b"]);
    assert_eq!(node.wait_exit(), Some(1), "{}", node.log());
    let log = node.log();
    assert!(
        log.contains("if it was moved or renamed, a node started on its new path"),
        "{log}"
    );
    // Which it does.
    let node = RunningNode::start_in(&moved, &["--workers", "1"]);
    let listed = node.client(&["tasks", "--json"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("sleep 1h"));
}

#[test]
fn a_node_started_on_another_nodes_data_directory_is_told_it_takes_over_that_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let grace = ["--set", "shutdown.grace=100ms"];
    let mut first = RunningNode::start_in(dir.path(), &[&["--name", "q1"][..], &grace].concat());
    assert!(first.client(&["submit", "sleep 1h"]).status.success());
    assert!(first.client(&["shutdown"]).status.success());
    assert_eq!(first.wait_exit(), Some(0), "{}", first.log());
    assert!(
        !first.log().contains("last used by node"),
        "{}",
        first.log()
    );
    let mut second = RunningNode::start_in(dir.path(), &[&["--name", "q2"][..], &grace].concat());
    // Its log has the warning by the time it serves (the warning comes before).
    let log = second.log();
    assert!(
        log.contains("last used by node q1 and this node is q2")
            && log.contains("tasks in flight, which run here: 1;")
            && log.contains("--name q1"),
        "{log}"
    );
    assert!(second.client(&["shutdown"]).status.success());
    assert_eq!(second.wait_exit(), Some(0), "{}", second.log());
    // Once taken over, the directory is that node's: its next start is not warned.
    let third = RunningNode::start_in(dir.path(), &[&["--name", "q2"][..], &grace].concat());
    assert!(
        !third.log().contains("last used by node"),
        "{}",
        third.log()
    );
}

#[test]
fn a_memory_only_start_says_it_leaves_the_log_in_its_default_directory_unrecovered() {
    let data = tempfile::tempdir().expect("temp dir");
    let home = data.path().to_str().expect("UTF-8 path");
    let env = [("XDG_DATA_HOME", home)];
    let dir = data.path().join("goliath").join("keeper");
    let mut first = RunningNode::start_with_env(
        &dir,
        &["--name", "keeper", "--set", "shutdown.grace=100ms"],
        &env,
    );
    assert!(first.client(&["submit", "sleep 1h"]).status.success());
    assert!(first.client(&["shutdown"]).status.success());
    assert_eq!(first.wait_exit(), Some(0), "{}", first.log());
    let mut memory_only = common::binary::spawn_node(
        "127.0.0.1:0",
        &["--name", "keeper", "--set", "wal.enabled=false"],
        &env,
    );
    let log = common::lines_of(memory_only.stderr.take().expect("stderr"));
    let deadline = Instant::now() + common::LIVENESS;
    let mut warned = false;
    loop {
        let line = log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the node starts");
        warned |= line.contains("does not recover the log an earlier run of node keeper left");
        if line.contains("serving the goliath protocol") {
            break;
        }
    }
    let _ = memory_only.kill();
    let _ = memory_only.wait();
    assert!(warned, "no warning of the log left unrecovered");
}

#[test]
fn a_second_node_on_a_locked_directory_exits_naming_it_and_the_holders_pid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = RunningNode::start_in(dir.path(), &["--workers", "1"]);
    let second = goliath()
        .args(["node", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&dir.path().display().to_string()),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())),
        "{stderr}"
    );
}

#[test]
fn a_failed_fdatasync_makes_the_node_stop_acknowledging_and_exit_naming_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = RunningNode::start_with_env(
        dir.path(),
        SMALL,
        &[("GOLIATH_WAL_FAULT", "fsync_fail_after=40")],
    );
    let specs: Vec<String> = (0..2000).map(|i| format!("echo fsync-{i}")).collect();
    let (acked, error) = submit_all(&node.address, specs, 8);
    let error = error.expect("submissions failed once the fdatasync did");
    assert!(!acked.is_empty(), "some were acknowledged first");
    assert!(error.contains("write-ahead log failed"), "{error}");
    let code = node.wait_exit();
    assert_eq!(code, Some(1), "a non-zero exit");
    let log = node.log();
    assert!(log.contains("Input/output error"), "names the error: {log}");
    assert!(log.contains("write-ahead log failed"), "{log}");
    drop(node);
    let node = RunningNode::start_in(dir.path(), SMALL);
    let lost = missing(&node.address, &acked);
    assert!(
        lost.is_empty(),
        "{} acknowledged tasks lost: {lost:?}",
        lost.len()
    );
}

/// A tmpfs mounted on a directory (root only), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        // GOLIATH_TEST_NO_TMPFS forces the injected-ENOSPC path (what CI without root runs).
        if std::env::var_os("GOLIATH_TEST_NO_TMPFS").is_some() {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { dir })
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .expect("remount");
        assert!(status.success());
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_fails_submissions_and_every_acknowledged_task_survives_a_restart() {
    // A real full disk needs a small filesystem: a tmpfs, which takes root. Without it the
    // same failure is injected through the WAL's I/O hook (ENOSPC after a byte budget).
    let disk = SmallDisk::mount("768k");
    let fallback = tempfile::tempdir().expect("temp dir");
    let (dir, env): (&Path, Vec<(&str, &str)>) = match &disk {
        Some(disk) => (disk.path(), Vec::new()),
        None => {
            eprintln!("no tmpfs (not root?): injecting ENOSPC through GOLIATH_WAL_FAULT");
            (
                fallback.path(),
                vec![("GOLIATH_WAL_FAULT", "enospc_after_bytes=720000")],
            )
        }
    };
    let mut node = RunningNode::start_with_env(dir, SMALL, &env);
    let filler = "x".repeat(3000);
    let specs: Vec<String> = (0..1000).map(|i| format!("echo {i:04} {filler}")).collect();
    let (acked, error) = submit_all(&node.address, specs, 4);
    let error = error.expect("the disk filled up");
    assert!(!acked.is_empty());
    assert!(error.contains("write-ahead log failed"), "{error}");
    assert_eq!(node.wait_exit(), Some(1));
    let log = node.log();
    assert!(
        log.contains("No space left on device"),
        "names the error: {log}"
    );
    // The advice names room for what the restart writes: its checkpoint, at least.
    let advised = log
        .split("free at least ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|size| goliath::runtime::units::parse_size(size).ok())
        .unwrap_or_else(|| panic!("no advice on the space to free: {log}"));
    drop(node);
    // Space comes back; the node recovers everything it acknowledged.
    if let Some(disk) = &disk {
        disk.grow("16m");
    }
    let node = RunningNode::start_in(dir, SMALL);
    let lost = missing(&node.address, &acked);
    assert!(
        lost.is_empty(),
        "{} acknowledged tasks lost: {lost:?}",
        lost.len()
    );
    let checkpoint = std::fs::read_dir(dir)
        .expect("lists")
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".ckpt"))
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.len())
        .max()
        .unwrap_or(0);
    assert!(
        advised >= checkpoint,
        "the advice ({advised} bytes) is less than the restart's checkpoint ({checkpoint})"
    );
}

#[test]
fn a_recovered_exec_task_runs_again_alone_and_sees_its_attempt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("first-run.pid");
    let args = [
        "--workers",
        "1",
        "--set",
        "exec.remote=true",
        "--set",
        "wal.segment_size=64KiB",
    ];
    let data = dir.path().join("data");
    let mut node = RunningNode::start_in(&data, &args);
    // The first run starts a child of its own and waits for it.
    let script = format!(
        "if [ \"$GOLIATH_ATTEMPT\" = 1 ]; then sleep 600 & echo $$ $! > {}.tmp; mv {0}.tmp {0}; wait; fi; echo attempt=$GOLIATH_ATTEMPT",
        pid_file.display()
    );
    let submitted = node.json(&["submit", "exec", "--", "sh", "-c", &script]);
    let id = submitted["ids"][0].as_u64().expect("id");
    let deadline = Instant::now() + common::LIVENESS;
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pids: Vec<u32> = std::fs::read_to_string(&pid_file)
        .expect("pids")
        .split_whitespace()
        .map(|pid| pid.parse().expect("a pid"))
        .collect();
    let [shell, sleeper] = pids[..] else {
        panic!("two pids: {pids:?}")
    };
    // SIGKILL: the node gets no chance to record anything more, or to stop its children.
    node.child.kill().expect("kill");
    let _ = node.child.wait();
    drop(node);
    // The kernel stops the task's process with the node; what that process started is
    // still there, and would run beside the task's next run.
    common::eventually(|| {
        common::process_gone(shell)
            .then_some(())
            .ok_or_else(|| format!("the exec process {shell} outlived the node"))
    });
    assert!(
        !common::process_gone(sleeper),
        "the grandchild lives on until the restart"
    );
    let node = RunningNode::start_in(&data, &args);
    common::eventually(|| {
        common::process_gone(sleeper)
            .then_some(())
            .ok_or_else(|| format!("the restart left {sleeper} from the first run running"))
    });
    assert!(
        node.log()
            .contains("stopped the exec processes the previous run of this node left running"),
        "{}",
        node.log()
    );
    let deadline = Instant::now() + common::LIVENESS;
    let info = loop {
        let info = node.json(&["task", &id.to_string()]);
        if info["state"] == "succeeded" || info["state"] == "failed" {
            break info;
        }
        assert!(
            Instant::now() < deadline,
            "the recovered task never finished: {info}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(info["state"], "succeeded", "{info}");
    assert_eq!(info["attempt"], 2, "{info}");
    assert_eq!(
        info["output"]["process"]["stdout"].as_str().map(str::trim),
        Some("attempt=2"),
        "{info}"
    );
}

/// `goliath wal ARGS… --data-dir DIR`.
/// A command's standard output read as JSON lines (`wal dump --json`).
fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn wal_tool(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    goliath()
        .arg("wal")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("runs")
}

#[test]
fn wal_commands_refuse_a_set_key_that_would_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let refused = wal_tool(&["verify", "--set", "scheduler.workers=3"], dir.path());
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        text.contains("--set scheduler.workers=3 changes nothing for `goliath wal`"),
        "{text}"
    );
    // A file where the directory should be is named as such.
    let file = dir.path().join("node.toml");
    std::fs::write(&file, "").expect("written");
    let output = wal_tool(&["verify"], &file);
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("node.toml is not a directory"), "{text}");
    assert_eq!(output.status.code(), Some(2));
    // A key that says how the log is kept is taken: the verdict is about the directory.
    let taken = wal_tool(&["verify", "--set", "wal.sync=never"], dir.path());
    let text = String::from_utf8_lossy(&taken.stderr);
    assert!(!text.contains("changes nothing"), "{text}");
}

#[test]
fn wal_verify_and_dump_report_a_healthy_log_and_name_damage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = RunningNode::start_in(dir.path(), SMALL);
    let idle = node.client(&["status"]);
    let text = String::from_utf8_lossy(&idle.stdout);
    assert!(
        text.contains("fsync   none in the last"),
        "no figures before anything was written: {text}"
    );
    let filler = "y".repeat(1000);
    let specs: Vec<String> = (0..150).map(|i| format!("echo {i:03} {filler}")).collect();
    let (acked, error) = submit_all(&node.address, specs, 4);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(acked.len(), 150);
    let status = node.client(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("wal       healthy; sync always"), "{text}");
    assert!(text.contains("fsync   p50"), "{text}");
    let json = node.json(&["status"]);
    assert_eq!(json["wal"]["healthy"], true, "{json}");
    assert!(json["wal"]["fsyncs"].as_u64().unwrap_or(0) > 0, "{json}");
    // Beside a running node: verify works and says the node holds the directory.
    let verify = wal_tool(&["verify"], dir.path());
    let report = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(0), "{report}");
    assert!(
        report.contains(&format!("pid {}", node.child.id())),
        "{report}"
    );
    assert!(
        report.contains("once the node holding it has stopped"),
        "no promise that a node starts on a directory another holds: {report}"
    );
    node.child.kill().expect("kill");
    let _ = node.child.wait();
    drop(node);
    let dump = wal_tool(&["dump", "--json"], dir.path());
    assert_eq!(dump.status.code(), Some(0));
    let lines = json_lines(&dump.stdout);
    let accepted: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["record"]["type"] == "accepted")
        .collect();
    assert_eq!(accepted.len(), 150);
    assert_eq!(accepted[0]["record"]["spec"]["kind"], "echo");
    let text_dump = wal_tool(&["dump"], dir.path());
    let text = String::from_utf8_lossy(&text_dump.stdout);
    assert!(text.contains("accepted ids="), "{text}");
    assert!(
        text.contains(&format!("spec=[echo 000 {filler}]")),
        "the task as it was typed: {text}"
    );
    // Damage in a segment that is not the last: verify and start both name file and offset.
    let (file, offset) = lines
        .iter()
        .filter(|line| line["record"]["type"] == "accepted")
        .map(|line| {
            (
                line["file"].as_str().expect("file").to_string(),
                line["offset"].as_u64().expect("offset"),
            )
        })
        .nth(5)
        .expect("a record in the first segment");
    let path = dir.path().join(&file);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[offset as usize + 40] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    let verify = wal_tool(&["verify"], dir.path());
    let report = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&file) && report.contains(&format!("offset {offset}")),
        "{report}"
    );
    assert!(report.contains("DAMAGED"), "{report}");
    assert!(
        report.contains("whole records after it, which `dump` shows"),
        "{report}"
    );
    let verify_json = wal_tool(&["verify", "--json"], dir.path());
    let json: serde_json::Value =
        serde_json::from_slice(&verify_json.stdout).expect("one JSON document");
    let damaged = json["inspection"]["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["damage"].is_object()))
        .expect("a damaged file");
    let end = damaged["end"].as_u64().unwrap_or(0);
    assert!(
        end > 0 && end <= offset,
        "the readable part ends at or before the damaged record: {damaged}"
    );
    // dump still shows every record it can read: the damaged one is the only one missing,
    // and those after it in its file are marked.
    let damaged_dump = wal_tool(&["dump", "--json"], dir.path());
    assert_eq!(damaged_dump.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&damaged_dump.stderr);
    assert!(
        stderr.contains("whole records found after it are shown"),
        "{stderr}"
    );
    let shown = json_lines(&damaged_dump.stdout);
    let accepted_shown = shown
        .iter()
        .filter(|line| line["record"]["type"] == "accepted")
        .count();
    assert_eq!(accepted_shown, 149, "all but the damaged record");
    assert!(
        shown
            .iter()
            .filter(|line| line["after_damage"] == true)
            .all(|line| line["file"] == file.as_str())
    );
    assert!(shown.iter().any(|line| line["after_damage"] == true));
    let start = goliath()
        .args(["node", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(start.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&start.stderr);
    assert!(stderr.contains(&file), "{stderr}");
    assert!(stderr.contains(&format!("offset {offset}")), "{stderr}");
    assert!(stderr.contains("goliath wal verify"), "{stderr}");
}

#[test]
fn sync_never_acknowledges_without_fdatasync_and_survives_a_killed_node() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = [
        "--workers",
        "1",
        "--set",
        "wal.sync=never",
        "--set",
        "wal.segment_size=1MiB",
    ];
    let mut node = RunningNode::start_in(dir.path(), &args);
    let specs: Vec<String> = (0..300).map(|i| format!("echo never-{i}")).collect();
    let (acked, error) = submit_all(&node.address, specs, 8);
    assert!(error.is_none(), "{error:?}");
    let status = node.json(&["status"]);
    assert_eq!(status["wal"]["sync"], "never", "{status}");
    assert_eq!(
        status["wal"]["fsyncs"], 0,
        "acknowledged after write(2), no fdatasync per batch: {status}"
    );
    // The process dies; the page cache keeps what was written.
    node.child.kill().expect("kill");
    let _ = node.child.wait();
    drop(node);
    let node = RunningNode::start_in(dir.path(), &args);
    let lost = missing(&node.address, &acked);
    assert!(
        lost.is_empty(),
        "{} acknowledged tasks lost: {lost:?}",
        lost.len()
    );
}

#[test]
fn verify_names_the_holders_pid_as_a_number_and_a_lock_left_without_a_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = RunningNode::start_in(dir.path(), SMALL);
    let verify = wal_tool(&["verify", "--json"], dir.path());
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).expect("JSON");
    assert_eq!(
        report["inspection"]["locked_by"],
        serde_json::json!(node.child.id()),
        "{report}"
    );
    assert_eq!(report["writable"], true, "{report}");
    assert!(node.client(&["shutdown"]).status.success());
    assert_eq!(node.wait_exit(), Some(0));
    // Every file but the lock deleted: as a start warns, verify notes it.
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|name| name != "LOCK") {
            std::fs::remove_file(&path).expect("remove");
        }
    }
    let verify = wal_tool(&["verify"], dir.path());
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(
        text.contains("a node's lock file is here but no log file"),
        "{text}"
    );
}

#[test]
fn verify_agrees_with_start_and_refuses_a_directory_that_is_not_a_log() {
    // Not a data directory (its parent, say): not "an empty, healthy log".
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let verify = wal_tool(&["verify"], elsewhere.path());
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert_eq!(verify.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a goliath data directory"), "{stderr}");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = RunningNode::start_in(dir.path(), SMALL);
    let (acked, error) = submit_all(&node.address, vec!["fib 3".to_string(); 20], 4);
    assert!(error.is_none() && acked.len() == 20, "{error:?}");
    assert!(node.client(&["shutdown"]).status.success());
    assert_eq!(node.wait_exit(), Some(0));
    // The newest segment holds only its header (prepared ahead): damage it there.
    let newest = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "seg"))
        .max()
        .expect("a segment");
    let mut bytes = std::fs::read(&newest).expect("read");
    bytes[5] ^= 0xff;
    std::fs::write(&newest, &bytes).expect("write");
    let verify = wal_tool(&["verify"], dir.path());
    let report = String::from_utf8_lossy(&verify.stdout);
    let start = goliath()
        .args(["node", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    // Whatever the one says, the other agrees: here, both refuse.
    assert_eq!(
        start.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&start.stderr)
    );
    assert_eq!(verify.status.code(), Some(1), "{report}");
    assert!(report.contains("no header record"), "{report}");
}

#[test]
fn wal_dump_shows_control_characters_in_task_text_as_their_pictures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = RunningNode::start_in(dir.path(), SMALL);
    let submitted = node.client(&["submit", "echo \u{1b}[2Jcleared"]);
    assert!(submitted.status.success(), "{submitted:?}");
    node.child.kill().expect("kill");
    let _ = node.child.wait();
    drop(node);
    let dump = wal_tool(&["dump"], dir.path());
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("␛[2Jcleared"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    // A dump that cannot be written (a full disk) is an error, not a silent success.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full opens");
    let output = goliath()
        .args(["wal", "dump", "--data-dir"])
        .arg(dir.path())
        .stdout(full)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the dump is incomplete"), "{stderr}");
}

#[test]
fn wal_dump_names_the_segments_a_checkpoint_covers_as_their_files_are_named() {
    // Segment and checkpoint numbers are hexadecimal in file names; "below 24" beside a
    // file named …18 read as if it covered that file. The dump names files instead.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = RunningNode::start_in(
        dir.path(),
        &[
            "--workers",
            "1",
            "--set",
            "wal.segment_size=64KiB",
            "--set",
            "wal.checkpoint_every=64KiB",
        ],
    );
    let filler = "z".repeat(1000);
    let specs: Vec<String> = (0..400).map(|i| format!("echo {i:03} {filler}")).collect();
    let (acked, error) = submit_all(&node.address, specs, 4);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(acked.len(), 400);
    let newest_checkpoint = || {
        std::fs::read_dir(dir.path())
            .expect("lists")
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("checkpoint-") && name.ends_with(".ckpt"))
            .max()
            .ok_or_else(|| "no checkpoint yet".to_string())
    };
    common::eventually(newest_checkpoint);
    node.child.kill().expect("kill");
    let _ = node.child.wait();
    drop(node);
    let checkpoint = newest_checkpoint().expect("the checkpoint stays");
    let dump = wal_tool(&["dump"], dir.path());
    let text = String::from_utf8_lossy(&dump.stdout);
    let digits = &checkpoint["checkpoint-".len()..checkpoint.len() - ".ckpt".len()];
    assert!(
        text.contains(&format!(
            "{checkpoint}@0 checkpoint covers the segments before wal-{digits}.seg"
        )),
        "{}",
        text.lines().take(3).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn a_file_where_the_data_directory_should_be_is_named_as_in_the_way() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "hi").expect("write");
    let started = goliath()
        .args(["node", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&file)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert_eq!(started.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("something that is not a directory is in the way")
            && stderr.contains("another --data-dir"),
        "{stderr}"
    );
}

#[test]
fn wal_repair_names_the_tasks_whose_submission_was_lost_though_later_records_were_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = RunningNode::start_in(dir.path(), SMALL);
    for _ in 0..6 {
        let waited = node.client(&["submit", "--wait", "sleep 20ms"]);
        assert!(waited.status.success(), "{waited:?}");
    }
    node.child.kill().expect("kill");
    let _ = node.child.wait();
    drop(node);
    // The third task's acceptance is damaged; its start and finish, in later batches, read.
    let dump = wal_tool(&["dump", "--json"], dir.path());
    let lines = json_lines(&dump.stdout);
    let damaged = lines
        .iter()
        .filter(|line| line["record"]["type"] == "accepted")
        .nth(2)
        .expect("a third acceptance");
    let lost_id = damaged["record"]["ids"][0]["first"].as_u64().expect("id");
    let path = dir.path().join(damaged["file"].as_str().expect("file"));
    let offset = damaged["offset"].as_u64().expect("offset") as usize;
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[offset + 20] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    // The same damage, repaired with the report in text, in a copy of the directory.
    let copy = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(dir.path()).expect("list").flatten() {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).expect("copy");
        }
    }
    let text = wal_tool(&["repair"], copy.path());
    let report = String::from_utf8_lossy(&text.stdout);
    assert!(
        report.contains(&format!(
            "lost      1 task whose submission was in the damage, though later records of it were read (started or finished): {lost_id};"
        )),
        "{report}"
    );
    let repair = wal_tool(&["repair", "--json"], dir.path());
    let json: serde_json::Value = serde_json::from_slice(&repair.stdout).expect("JSON");
    assert_eq!(
        json["report"]["lost_ids"],
        serde_json::json!([lost_id]),
        "{json}"
    );
    assert_eq!(json["report"]["lost_ids_total"], 1, "{json}");
}

#[test]
fn wal_repair_keeps_every_readable_task_moves_the_old_files_aside_and_the_node_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = RunningNode::start_in(dir.path(), SMALL);
    let filler = "z".repeat(1000);
    let specs: Vec<String> = (0..150).map(|i| format!("echo {i:03} {filler}")).collect();
    let (acked, error) = submit_all(&node.address, specs, 4);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(acked.len(), 150);
    // Refused beside the running node, naming it.
    let beside = wal_tool(&["repair"], dir.path());
    let stderr = String::from_utf8_lossy(&beside.stderr);
    assert_eq!(beside.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", node.child.id()))
            && stderr.contains(&format!("`kill -TERM {}`", node.child.id()))
            && !stderr.contains("another --data-dir"),
        "{stderr}"
    );
    node.child.kill().expect("kill");
    let _ = node.child.wait();
    drop(node);
    // A healthy log is left as it is.
    let healthy = wal_tool(&["repair"], dir.path());
    let text = String::from_utf8_lossy(&healthy.stdout);
    assert_eq!(healthy.status.code(), Some(0), "{text}");
    assert!(
        text.contains("is healthy") && text.contains("nothing was changed"),
        "{text}"
    );
    let healthy = wal_tool(&["repair", "--json"], dir.path());
    let json: serde_json::Value = serde_json::from_slice(&healthy.stdout).expect("JSON");
    assert_eq!(json["repaired"], false, "{json}");
    assert_eq!(json["healthy"], true, "{json}");
    // Damage one record in the first segment, which later segments follow.
    let dump = wal_tool(&["dump", "--json"], dir.path());
    let lines = json_lines(&dump.stdout);
    let damaged = lines
        .iter()
        .filter(|line| line["record"]["type"] == "accepted")
        .nth(5)
        .expect("a record in the first segment");
    let file = damaged["file"].as_str().expect("file").to_string();
    let offset = damaged["offset"].as_u64().expect("offset");
    let lost_id = damaged["record"]["ids"][0]["first"].as_u64().expect("id");
    let path = dir.path().join(&file);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[offset as usize + 40] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    let refused = goliath()
        .args(["node", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("goliath wal repair"),
        "the way forward is named: {stderr}"
    );
    let repair = wal_tool(&["repair"], dir.path());
    let report = String::from_utf8_lossy(&repair.stdout);
    assert_eq!(
        repair.status.code(),
        Some(0),
        "{report}{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    assert!(
        report.contains(&format!("{file} is damaged at offset {offset}")),
        "{report}"
    );
    assert!(
        report.contains("whole records found after damage"),
        "{report}"
    );
    assert!(
        report.contains("a node now starts on this directory"),
        "{report}"
    );
    // The old files are kept, moved into one directory beside the log.
    let aside: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("damaged-"))
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(aside[0].join(&file)).expect("the damaged file, kept"),
        bytes
    );
    assert!(!path.exists(), "moved, not copied");
    // dump reads them there, the damage included.
    let old_dump = wal_tool(&["dump"], &aside[0]);
    assert_eq!(old_dump.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&old_dump.stdout).contains("(after the damage)"),
        "{}",
        String::from_utf8_lossy(&old_dump.stdout)
    );
    let verify = wal_tool(&["verify"], dir.path());
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // Every task but the one whose record was damaged is back, with its spec.
    let node = RunningNode::start_in(dir.path(), SMALL);
    let gone = missing(&node.address, &acked);
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(gone[0].starts_with(&format!("{lost_id}:")), "{gone:?}");
    // New ids continue after the highest one read: nothing is handed out twice.
    let highest = acked.iter().map(|(id, _)| id.0).max().unwrap_or(0);
    let submitted = node.json(&["submit", "echo after"]);
    let new_id = submitted["ids"][0].as_u64().expect("an id");
    assert!(new_id > highest, "{new_id} after {highest}");
}

#[test]
fn wal_commands_look_where_a_node_with_the_same_config_keeps_its_log() {
    let home = tempfile::tempdir().expect("temp dir");
    let config = home.path().join("gossip.toml");
    std::fs::write(
        &config,
        "[gossip]\nenabled = true\nbind = \"127.0.0.1:17999\"\n",
    )
    .expect("write");
    // Another node's directory beside the one looked for.
    let other = home.path().join("goliath").join("builder-7");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("LOCK"), "").expect("write");
    // `goliath wal ACTION --config FILE` with the data home above: a usage error, and what
    // it said.
    let refused = |action: &str| {
        let output = goliath()
            .args(["wal", action, "--config"])
            .arg(&config)
            .env("XDG_DATA_HOME", home.path())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        stderr
    };
    let stderr = refused("verify");
    // A node with gossip on is named after its host and gossip port, and so is its directory.
    assert!(stderr.contains("-17999;"), "{stderr}");
    assert!(
        stderr.contains("is builder-7 (pass it as --data-dir)"),
        "{stderr}"
    );
    // A name taken from the process id cannot be found from the config: said so.
    std::fs::write(
        &config,
        "[gossip]\nenabled = true\nbind = \"127.0.0.1:0\"\n",
    )
    .expect("write");
    let stderr = refused("dump");
    assert!(stderr.contains("from its process id"), "{stderr}");
}

#[test]
fn a_task_still_queued_at_a_crash_keeps_its_run_number_and_one_that_ran_gets_the_next() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["--workers", "1"];
    let mut node = RunningNode::start_in(dir.path(), &args);
    // A long queue on one worker: at the kill, the first tasks have run and the last not.
    let submitted = node.json(&["submit", "fib 22 x20000"]);
    let ids: Vec<u64> = submitted["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    let (first, last) = (ids[0], ids[ids.len() - 1]);
    wait_for(&node, first, |info| info["state"] != "queued");
    node.child.kill().expect("kill");
    let _ = node.child.wait();
    drop(node);
    let node = RunningNode::start_in(dir.path(), &args);
    let recovered = &node.json(&["status"])["wal"]["recovered"];
    assert!(
        recovered["requeued_queued"].as_u64() > Some(0),
        "{recovered}"
    );
    let last_info = wait_for(&node, last, |info| info["state"] == "succeeded");
    assert_eq!(last_info["attempt"], 1, "never ran before: {last_info}");
    // The counts add up: the recovered tasks finish in this start's counts, and are counted
    // as recovered, not as submitted.
    assert!(node.client(&["submit", "fib 3 x5"]).status.success());
    let counts = common::eventually(|| {
        let counts = node.json(&["status"])["counts"].clone();
        let number = |key: &str| counts[key].as_u64().unwrap_or(0);
        let finished: u64 = ["succeeded", "failed", "cancelled", "timed_out"]
            .iter()
            .map(|key| number(key))
            .sum();
        (number("queued") + number("running") == 0)
            .then(|| (number("submitted"), number("recovered"), finished))
            .ok_or_else(|| format!("still in flight: {counts}"))
    });
    let (submitted, recovered, finished) = counts;
    assert_eq!(submitted, 5, "{counts:?}");
    assert!(recovered > 0, "{counts:?}");
    assert_eq!(submitted + recovered, finished, "{counts:?}");
    let text = String::from_utf8_lossy(&node.client(&["status"]).stdout).into_owned();
    assert!(
        text.contains(&format!(
            "5 submitted (and {recovered} recovered from the log)"
        )),
        "{text}"
    );
}

/// Looks task `id` up until `done` holds for it; returns it.
fn wait_for(
    node: &RunningNode,
    id: u64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + common::LIVENESS;
    loop {
        let info = node.json(&["task", &id.to_string()]);
        if done(&info) {
            return info;
        }
        assert!(Instant::now() < deadline, "task {id}: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn wal_dump_shows_the_error_of_a_task_the_checkpoint_keeps_in_the_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = RunningNode::start_in(dir.path(), &["--workers", "1"]);
    let waited = node.client(&["submit", "--wait", "spin 1s timeout=5ms"]);
    assert_eq!(waited.status.code(), Some(1), "{waited:?}");
    // Stopped cleanly: its finish is on disk (a kill could take it, logged with the next
    // batch, along).
    let stopped = node.client(&["shutdown", "--wait"]);
    assert!(stopped.status.success(), "{stopped:?}");
    drop(node);
    // The next start writes a checkpoint of what it recovered: the task is in its history.
    let next = RunningNode::start_in(dir.path(), &["--workers", "1"]);
    let stopped = next.client(&["shutdown", "--wait"]);
    assert!(stopped.status.success(), "{stopped:?}");
    drop(next);
    let dump = wal_tool(&["dump"], dir.path());
    let text = String::from_utf8_lossy(&dump.stdout);
    let history = text
        .lines()
        .find(|line| line.contains("history id=1 "))
        .unwrap_or_else(|| panic!("no history record of task 1: {text}"));
    assert!(
        history.contains("state=timed_out")
            && history.contains("error=\"timed out after 5ms on a worker\""),
        "{history}"
    );
}
