//! The console end to end: the real binary on a real terminal, driven by keys.

mod common;

use common::binary::goliath;
use common::pty::PtyProcess;

/// `goliath ARGS` (the console on a local node) with a data directory of its own.
fn local_console(args: &[&str]) -> (std::process::Command, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("data dir");
    let mut command = goliath();
    command.args(args).arg("--data-dir").arg(data.path());
    (command, data)
}

/// Lines of the Tasks table that show `state` for a spec containing `spec`.
fn rows_with(screen: &str, spec: &str, state: &str) -> usize {
    screen
        .lines()
        .filter(|line| line.contains(spec) && line.contains(state))
        .count()
}

#[test]
fn submit_watch_cancel_and_quit_from_the_keyboard() {
    let (mut command, _data) = local_console(&["--listen", "127.0.0.1:0", "--workers", "2"]);
    command.env_remove("NO_COLOR");
    let mut console = PtyProcess::spawn(&command, 40, 120);
    console.wait_for("the Overview with a live, durable node", |s| {
        s.contains("1 Overview")
            && s.contains("live")
            && s.contains("Workers")
            && s.contains("WAL fsync")
    });
    assert!(
        console.alternate_screen(),
        "the console draws on the alternate screen"
    );
    assert!(!console.cooked(), "the console reads keys raw");
    console.wait_for("the log pane's line: message first, then its fields", |s| {
        s.contains("serving the goliath protocol  listen=127.0.0.1:")
    });

    // Submit twenty tasks through the prompt.
    console.type_text("n");
    console.wait_for("the submit prompt", |s| s.contains("Submit a task"));
    console.type_text("spin 300ms x20\r");
    console.wait_for("the submission confirmed", |s| {
        s.contains("submitted 20 tasks")
    });
    console.type_text("2");
    console.wait_for("all twenty finished in the table", |s| {
        rows_with(s, "spin 300ms", "succeeded") == 20
    });

    // A typo is explained under the prompt and nothing is submitted.
    console.type_text("n");
    console.type_text("spni 30s");
    console.wait_for("the parse error under the prompt", |s| {
        s.contains("did you mean 'spin'")
    });
    console.type_text("\x15spin 30s\r");
    console.wait_for("the long task running", |s| {
        rows_with(s, "spin 30s", "running") + rows_with(s, "spin 30s", "queued") == 1
    });

    // Cancel it: select the newest row, answer the question.
    console.type_text("gg");
    console.type_text("x");
    let question = console.wait_for("the confirmation", |s| s.contains("Cancel task 21"));
    assert!(question.contains("spin 30s"), "{question}");
    console.type_text("y");
    console.wait_for("the task cancelled", |s| {
        rows_with(s, "spin 30s", "cancelled") == 1
    });
    let screen = console.contents();
    assert_eq!(
        rows_with(&screen, "spni", ""),
        0,
        "the typo was never submitted"
    );

    // Quit: the node stops, the terminal is the shell's again.
    console.type_text("q");
    assert_eq!(console.wait_exit(), Some(0));
    assert!(!console.alternate_screen(), "left the alternate screen");
    assert!(!console.cursor_hidden(), "the cursor is visible again");
    assert!(!console.mouse_reporting(), "mouse reporting is off");
    assert!(console.cooked(), "line editing and echo are back");
    let output = String::from_utf8_lossy(&console.output()).to_string();
    assert!(output.contains("stopping node"), "{output}");
}

#[test]
fn quitting_says_which_running_tasks_the_stop_interrupted_and_that_they_run_again() {
    let (command, _data) = local_console(&[
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--set",
        "shutdown.grace=100ms",
    ]);
    let mut console = PtyProcess::spawn(&command, 30, 100);
    console.wait_for("the Overview", |s| {
        s.contains("1 Overview") && s.contains("live")
    });
    console.type_text("n");
    console.wait_for("the submit prompt", |s| s.contains("Submit a task"));
    console.type_text("sleep 60s\r");
    console.wait_for("the task running", |s| {
        s.lines()
            .any(|line| line.contains("sleep 1m") && line.contains('▶'))
    });
    console.type_text("q");
    assert_eq!(console.wait_exit(), Some(0));
    let output = String::from_utf8_lossy(&console.output()).to_string();
    assert!(
        output.contains("1 task was interrupted by the stop")
            && output.contains("the log keeps it, and it runs again at the next start"),
        "{output}"
    );
}

#[test]
fn sigterm_restores_the_terminal_and_stops_the_node() {
    let (command, _data) = local_console(&["--listen", "127.0.0.1:0", "--workers", "1"]);
    let mut console = PtyProcess::spawn(&command, 30, 100);
    console.wait_for("the Overview", |s| {
        s.contains("1 Overview") && s.contains("live")
    });
    let pid = console.child.id();
    // setsid --wait runs the console as its child; signal the console itself.
    let console_pid = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()
        .and_then(|c| {
            c.split_whitespace()
                .next()
                .and_then(|p| p.parse::<i32>().ok())
        })
        .unwrap_or(pid as i32);
    common::signal(console_pid as u32, "-TERM");
    assert_eq!(console.wait_exit(), Some(0));
    assert!(!console.alternate_screen());
    assert!(console.cooked(), "line editing and echo are back");
    // The alternate screen is emptied, the cursor at its top, just before it is left: tmux
    // pushed the rows above the cursor into the shell's scrollback when the window had grown.
    let output = console.output();
    let find_last = |needle: &[u8]| output.windows(needle.len()).rposition(|w| w == needle);
    let leave = find_last(b"\x1b[?1049l").expect("left the alternate screen");
    let emptied = find_last(b"\x1b[2J\x1b[1;1H").expect("emptied before leaving");
    assert!(
        emptied < leave && leave - emptied < 64,
        "emptied at byte {emptied}, left at {leave}"
    );
}

#[test]
fn too_small_a_terminal_says_the_size_needed_and_q_still_quits() {
    let (command, _data) = local_console(&["--listen", "127.0.0.1:0", "--workers", "1"]);
    let mut console = PtyProcess::spawn(&command, 20, 70);
    console.wait_for("the size message", |s| {
        s.contains("Terminal too small") && s.contains("70×20") && s.contains("80×24")
    });
    console.type_text("q");
    assert_eq!(console.wait_exit(), Some(0));
}

#[test]
fn keys_typed_faster_than_one_read_are_all_taken() {
    let (command, _data) = local_console(&["--listen", "127.0.0.1:0", "--workers", "1"]);
    let mut console = PtyProcess::spawn(&command, 30, 100);
    console.wait_for("the Overview", |s| {
        s.contains("1 Overview") && s.contains("live")
    });
    console.type_text("n");
    console.wait_for("the submit prompt", |s| s.contains("Submit a task"));
    // Well over one read of the terminal (1 KiB) in one write, Enter last: as typed by a
    // macro tool or tmux send-keys. The end used to wait in the kernel for the next key.
    let words: Vec<String> = (0..500).map(|i| format!("w{i:04}")).collect();
    console.type_text(&format!("echo {}\r", words.join(" ")));
    console.wait_for("the long echo submitted", |s| {
        s.contains("submitted task 1")
    });
    console.type_text("q");
    assert_eq!(console.wait_exit(), Some(0));
}

#[test]
fn a_bad_key_binding_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys.toml");
    std::fs::write(&path, "[console.keys]\nqiut = [\"q\"]\n").expect("write");
    let output = goliath()
        .args(["console", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("console.keys.qiut"), "{stderr}");
    assert!(stderr.contains("did you mean 'quit'"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

#[test]
fn the_console_without_a_terminal_says_what_to_run_instead() {
    for args in [
        &["console"][..],
        &["console", "--connect", "127.0.0.1:9"][..],
    ] {
        let output = goliath()
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("needs a terminal"), "{stderr}");
        assert!(stderr.contains("goliath node"), "{stderr}");
    }
}

#[test]
fn connect_renders_a_remote_node_says_when_it_stops_answering_and_reconnects_after_it_restarts() {
    let port = common::binary::free_tcp_port();
    let address = format!("127.0.0.1:{port}");
    let start_node = || {
        common::binary::RunningNode::start_at(&address, &["--workers", "2", "--name", "remote-a"])
    };
    let mut node = start_node();
    let mut command = goliath();
    command.args(["console", "--connect", &address]);
    let mut console = PtyProcess::spawn(&command, 40, 120);
    console.wait_for("the remote node's name", |s| {
        s.contains("remote-a") && s.contains(&format!("live {address}"))
    });
    let output = node.client(&["submit", "fib 20 x3"]);
    assert!(output.status.success());
    console.type_text("2");
    console.wait_for("the remote tasks", |s| {
        rows_with(s, "fib 20", "succeeded") == 3
    });

    // A stopped node keeps the connection open but answers nothing: the console says so
    // instead of showing the last figures as live.
    let pid = node.child.id();
    common::signal(pid, "-STOP");
    console.wait_for("the node's silence", |s| {
        s.contains("no answer for") && s.contains("has not answered for")
    });
    // The count goes on by itself, without a key pressed.
    console.wait_for("the silence counted", |s| s.contains("no answer for 4s"));
    common::signal(pid, "-CONT");
    console.wait_for("the answers back", |s| {
        s.contains(&format!("live {address}")) && !s.contains("no answer for")
    });

    node.child.kill().expect("kill node");
    node.wait_exit();
    console.wait_for("the lost link", |s| {
        s.contains("disconnected · figures") && s.contains("old · retrying in")
    });
    // Three refused retries later (0.5, 1 and 2 s apart) the log has said it once each:
    // the link dropped, and the node cannot be reached — not once per retry.
    console.wait_for("a 4 s retry wait", |s| s.contains("retrying in 4s"));
    console.type_text("3");
    // The tab is drawn in one frame, but the pty may hand it over in pieces: wait for its
    // last expected line, then count.
    let logs = console.wait_for("the Logs tab", |s| {
        s.contains("EWIDT:target") && s.contains("console cannot reach the node")
    });
    assert_eq!(logs.matches("console lost the node").count(), 1, "{logs}");
    assert_eq!(
        logs.matches("console cannot reach the node").count(),
        1,
        "{logs}"
    );
    console.type_text("1");

    let _restarted = start_node();
    console.wait_for("the link back", |s| s.contains(&format!("live {address}")));
    // exec over the network is refused (exec.remote is off): the prompt comes back with the
    // text and the node's reason, not closed with the reason only in the status line.
    console.type_text("n");
    console.wait_for("the submit prompt", |s| s.contains("Submit a task"));
    console.type_text("exec -- true\r");
    console.wait_for("the refusal in the prompt", |s| {
        s.contains("Submit a task")
            && s.contains("> exec -- true")
            && s.contains("refused by the node")
            && s.contains("exec.remote")
    });
    console.type_text("\x1b");
    console.wait_for("the prompt closed", |s| !s.contains("Submit a task"));
    console.type_text("q");
    assert_eq!(console.wait_exit(), Some(0));
    assert!(console.cooked());
}

/// CPU time (user + system) of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// Not a test but a measurement (BENCHMARKS.md, "Console"): the CPU an idle console with a
/// live local node uses at the default refresh, over 30 s. Run with
/// `cargo test --release --test console -- --ignored --nocapture console_idle_cpu`.
#[test]
#[ignore = "a 30-second measurement, not a check"]
fn console_idle_cpu() {
    let (command, _data) = local_console(&["--listen", "127.0.0.1:0"]);
    let console = PtyProcess::spawn(&command, 40, 120);
    console.wait_for("the Overview", |s| {
        s.contains("1 Overview") && s.contains("live")
    });
    let pid = console.program_pid() as u32;
    std::thread::sleep(std::time::Duration::from_secs(5));
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let window = std::time::Duration::from_secs(30);
    let before = cpu_ticks(pid);
    let started = std::time::Instant::now();
    std::thread::sleep(window);
    let used = (cpu_ticks(pid) - before) as f64 / ticks_per_second;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "console idle CPU: {:.2}% of one core ({used:.2} s of CPU in {seconds:.1} s, refresh 500ms)",
        used / seconds * 100.0
    );
}

#[test]
fn cluster_tab_shows_the_gossiping_local_node() {
    let (command, _data) = local_console(&[
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--gossip",
        "127.0.0.1:0",
        "--name",
        "solo",
    ]);
    let mut console = PtyProcess::spawn(&command, 40, 120);
    console.wait_for("the compact membership pane", |s| s.contains("╭ Cluster"));
    console.type_text("4");
    console.wait_for("this node alive in the member table", |s| {
        s.lines()
            .any(|line| line.contains("solo (this)") && line.contains("alive"))
    });
    console.type_text("q");
    assert_eq!(console.wait_exit(), Some(0));
}

#[test]
fn demo_children_log_into_the_console_not_over_its_screen() {
    let data_home = tempfile::tempdir().expect("temp data home");
    let mut command = goliath();
    // Without colour, a child's log line written to the terminal as it is reads
    // "…Z  WARN …" (with colour, escape codes sit between, and the check below could not
    // fail).
    command
        .env("XDG_DATA_HOME", data_home.path())
        .env("NO_COLOR", "1")
        .args(["demo", "3", "--workers", "1"])
        .args(["--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0"]);
    let mut console = PtyProcess::spawn(&command, 40, 120);
    console.wait_for("the compact membership pane", |s| s.contains("╭ Cluster"));
    console.type_text("4");
    console.wait_for("three members alive", |s| {
        ["demo-0", "demo-1", "demo-2"].iter().all(|name| {
            s.lines()
                .any(|line| line.contains(name) && line.contains("alive"))
        })
    });
    let marker = data_home.path().to_string_lossy().into_owned();
    let killed = common::processes_with(&marker, "demo-2");
    assert_eq!(killed.len(), 1, "one child named demo-2: {killed:?}");
    common::signal(killed[0], "-KILL");
    // demo-1 logs the verdict at WARN, the level the children log at: before, its line went
    // to the terminal and scrolled the console's screen under it.
    console.wait_for("demo-2 dead", |s| {
        s.lines()
            .any(|line| line.contains("demo-2") && line.contains("dead"))
    });
    console.type_text("3");
    let logs = console.wait_for(
        "the demo's note of the child's end, and demo-1's verdict",
        |s| {
            s.contains(&format!("demo-2 (pid {}) has stopped", killed[0]))
                && s.contains("demo-1: demo-2 failed")
        },
    );
    let raw = String::from_utf8_lossy(&console.output()).into_owned();
    assert!(
        !raw.contains("Z  WARN") && !raw.contains("Z  INFO"),
        "a child's log line was written to the terminal as it is:\n{logs}"
    );
    console.type_text("q");
    assert_eq!(console.wait_exit(), Some(0));
}

#[test]
fn a_paste_lands_in_the_prompt_as_text() {
    let (command, _data) = local_console(&["--listen", "127.0.0.1:0", "--workers", "1"]);
    let mut console = PtyProcess::spawn(&command, 40, 120);
    console.wait_for("the Overview", |s| s.contains("1 Overview"));
    let asked = String::from_utf8_lossy(&console.output()).contains("\x1b[?2004h");
    assert!(asked, "the console asks the terminal for bracketed paste");
    console.type_text("n");
    console.wait_for("the submit prompt", |s| s.contains("Submit a task"));
    // A terminal with bracketed paste wraps the pasted text; its newline and "x" must not
    // act as Enter and the cancel key.
    console.type_text("\x1b[200~sleep 30s\rx\r\x1b[201~");
    // A spec is one line: the prompt keeps the first and says so.
    console.wait_for(
        "the pasted first line in the open prompt, and a note",
        |s| {
            s.contains("Submit a task")
                && s.contains("> sleep 30s")
                && !s.contains("> sleep 30s x")
                && s.contains("2 lines pasted")
        },
    );
    console.type_text("\x1b");
    console.wait_for("the prompt closed, nothing submitted or asked", |s| {
        !s.contains("Submit a task") && s.contains("submitted 0") && !s.contains("Cancel task")
    });
    console.type_text("q");
    assert_eq!(console.wait_exit(), Some(0));
}
