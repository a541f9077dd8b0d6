//! The real `goliath` binary: config lookup, errors and exit codes, headless node lifecycle.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn goliath() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_goliath"));
    // A clean environment: no user config, no inherited overrides.
    command
        .env_remove("GOLIATH_CONFIG")
        .env_remove("RUST_LOG")
        .env("XDG_CONFIG_HOME", "/nonexistent-goliath-test");
    command
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs `config show` with `command`'s environment and flags, checks it succeeds, and returns
/// what it printed.
fn config_show(command: &mut Command) -> String {
    succeeded(command.args(["config", "show"]))
}

/// Runs `command`, checks it succeeds, and returns what it printed.
fn succeeded(command: &mut Command) -> String {
    let output = command.output().expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `config show ARGS…`, which must succeed: what it printed.
fn config_show_args(args: &[&str]) -> String {
    succeeded(goliath().args(["config", "show"]).args(args))
}

/// `config show --config FILE`, which must fail with a usage error: what it said.
fn config_file_error(file: &Path) -> String {
    usage_error(&["config", "show", "--config", file.to_str().expect("utf-8")])
}

#[test]
fn config_default_prints_the_shipped_file() {
    let output = goliath()
        .args(["config", "default"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        goliath::config::DEFAULT_TOML
    );
}

#[test]
fn overrides_given_together_are_checked_together() {
    // Each alone breaks a rule between the two keys (checkpoints larger than segments).
    let shown = config_show_args(&[
        "--set",
        "wal.segment_size=512MiB",
        "--set",
        "wal.checkpoint_every=1GiB",
    ]);
    assert!(
        shown.contains("512MiB") && shown.contains("1GiB"),
        "{shown}"
    );
    // Still checked: the pair that breaks the rule is refused, naming the command line.
    let output = goliath()
        .args(["config", "show", "--set", "wal.segment_size=512MiB"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("command line"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn config_lookup_order_is_flag_then_env_then_user_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flag = write(dir.path(), "flag.toml", "[arena]\nslots = 1024\n");
    let env = write(dir.path(), "env.toml", "[arena]\nslots = 2048\n");
    std::fs::create_dir_all(dir.path().join("xdg/goliath")).expect("mkdir");
    write(
        &dir.path().join("xdg/goliath"),
        "config.toml",
        "[arena]\nslots = 4096\n",
    );
    let xdg = dir.path().join("xdg");
    let by_flag = config_show(
        goliath()
            .env("XDG_CONFIG_HOME", &xdg)
            .env("GOLIATH_CONFIG", &env)
            .arg("--config")
            .arg(&flag),
    );
    assert!(
        by_flag.contains("slots = 1024") && by_flag.contains("from --config"),
        "{by_flag}"
    );
    let by_env = config_show(
        goliath()
            .env("XDG_CONFIG_HOME", &xdg)
            .env("GOLIATH_CONFIG", &env),
    );
    assert!(
        by_env.contains("slots = 2048") && by_env.contains("$GOLIATH_CONFIG"),
        "{by_env}"
    );
    let by_user = config_show(goliath().env("XDG_CONFIG_HOME", &xdg));
    assert!(by_user.contains("slots = 4096"), "{by_user}");
    let embedded = config_show(&mut goliath());
    assert!(
        embedded.contains("slots = 65536") && embedded.contains("embedded default config"),
        "{embedded}"
    );
    let flags_win = config_show(goliath().arg("--config").arg(&flag).args([
        "--arena-slots",
        "256",
        "--set",
        "scheduler.slice=2ms",
    ]));
    assert!(
        flags_win.contains("slots = 256") && flags_win.contains("slice = \"2ms\""),
        "{flags_win}"
    );
}

#[test]
fn bad_config_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(
        dir.path(),
        "bad.toml",
        "[scheduler]\nslice = \"1ms\"\nwokers = 2\n",
    );
    let output = goliath()
        .arg("--config")
        .arg(&path)
        .arg("node")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml")
            && stderr.contains("line 3")
            && stderr.contains("scheduler.wokers"),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean `scheduler.workers`"),
        "{stderr}"
    );

    let zero = goliath()
        .args(["--workers", "0", "node"])
        .output()
        .expect("runs");
    assert_eq!(zero.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("scheduler.workers"));

    let missing = goliath()
        .args(["--config", "/nonexistent/goliath.toml", "node"])
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("/nonexistent/goliath.toml"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "the reason once, not once per error in the chain: {stderr}"
    );

    // A misspelt table is an unknown key too, and gets the same suggestion.
    let table = write(dir.path(), "table.toml", "[schedular]\nworkers = 2\n");
    let misspelt = goliath()
        .arg("--config")
        .arg(&table)
        .arg("node")
        .output()
        .expect("runs");
    assert_eq!(misspelt.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&misspelt.stderr);
    assert!(stderr.contains("did you mean `scheduler`"), "{stderr}");

    let bad_set = goliath()
        .args(["--set", "arena.slots", "node"])
        .output()
        .expect("runs");
    assert_eq!(bad_set.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_set.stderr).contains("key=value"));

    // A misspelt key on the command line gets the nearest key too.
    let misspelt_set = goliath()
        .args(["--set", "scheduler.wokers=3", "config", "show"])
        .output()
        .expect("runs");
    assert_eq!(misspelt_set.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&misspelt_set.stderr);
    assert!(
        stderr.contains("did you mean `scheduler.workers`"),
        "{stderr}"
    );
}

#[test]
fn a_blank_or_overlong_idempotency_key_is_a_usage_error() {
    // Refused before any connection is tried (no node listens on port 9); so is a key
    // longer than a node keeps.
    let long_key = "k".repeat(257);
    for (key, says) in [
        (" ", "cannot be blank"),
        (long_key.as_str(), "257 bytes, more than the 256"),
    ] {
        let output = goliath()
            .args([
                "submit",
                "--idempotency-key",
                key,
                "--node",
                "127.0.0.1:9",
                "fib 3",
            ])
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{says}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// A node's or console's flag where it means nothing is refused, not ignored; client
/// commands list only what they use.
#[test]
fn flags_for_a_node_or_console_are_refused_where_they_mean_nothing() {
    let refused = |args: &[&str], flag: &str, target: &str| {
        let output = goliath().args(args).output().expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(target),
            "{args:?} names {flag} and {target}: {stderr}"
        );
    };
    refused(&["tasks", "--workers", "3"], "--workers", "goliath tasks");
    refused(&["--workers", "3", "status"], "--workers", "goliath status");
    refused(
        &["--theme", "light", "node"],
        "--theme",
        "is for the console",
    );
    refused(&["node", "--readonly"], "--readonly", "goliath node");
    refused(
        &["--gossip", "127.0.0.1:0", "wal", "verify"],
        "--gossip",
        "goliath wal",
    );
    let help = goliath().args(["status", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    for wanted in ["--node", "--json", "--config", "--set"] {
        assert!(help.contains(wanted), "status takes {wanted}: {help}");
    }
    for unwanted in ["--workers", "--gossip", "--theme", "--data-dir"] {
        assert!(
            !help.contains(unwanted),
            "status does not take {unwanted}: {help}"
        );
    }
    // Before or after the command's name, a node's flags reach it (here: checked and refused).
    for args in [["--workers", "0", "node"], ["node", "--workers", "0"]] {
        let output = goliath().args(args).output().expect("runs");
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains("scheduler.workers"));
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the state field.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn headless_node_idles_without_cpu_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut child = goliath()
        .args(["node", "--workers", "2", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(500));
    // Clock ticks are 10 ms here; parked workers use none. 5 ticks over 2 s is 2.5% of a core.
    // Up to three windows: on a loaded machine the start (segment files, first checkpoint)
    // can run into the first; a node that spins uses more in every one.
    let mut used = u64::MAX;
    for _ in 0..3 {
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(2));
        used = cpu_ticks(pid) - before;
        if used <= 5 {
            break;
        }
    }
    assert!(
        used <= 5,
        "an idle node used {used} clock ticks of CPU in each of three 2 s windows"
    );
    // kill(1) keeps the test free of FFI.
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "node did not stop");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(exit.code(), Some(0));
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    assert!(
        log.contains("node started") && log.contains("node stopped"),
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal"
    );
}

#[test]
fn bare_goliath_without_a_terminal_runs_headless_and_says_so() {
    let data = tempfile::tempdir().expect("temp dir");
    let child = goliath()
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    let output = child.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(0));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("no terminal") && log.contains("headless"),
        "{log}"
    );
}

#[test]
fn a_data_directory_that_cannot_be_made_is_named_with_its_reason_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "a-file", "");
    let output = goliath()
        .arg("node")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(file.join("data"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot create the data directory") && stderr.contains("a-file/data"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("Not a directory").count(),
        1,
        "the reason once: {stderr}"
    );
}

#[test]
fn a_taken_port_is_reported_before_the_node_starts_and_its_reason_once() {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let data = tempfile::tempdir().expect("temp dir");
    for (flag, address) in [
        ("--listen", tcp.local_addr().expect("addr").to_string()),
        ("--gossip", udp.local_addr().expect("addr").to_string()),
    ] {
        let output = goliath()
            .args(["node", flag, &address])
            .arg("--data-dir")
            .arg(data.path())
            .args(if flag == "--gossip" {
                &["--listen", "127.0.0.1:0"][..]
            } else {
                &[][..]
            })
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{flag}: {stderr}");
        assert!(stderr.contains(&address), "{flag}: {stderr}");
        assert!(!stderr.contains("node started"), "{flag}: {stderr}");
        assert_eq!(stderr.matches("os error").count(), 1, "{flag}: {stderr}");
    }
}

#[test]
fn values_that_mean_nothing_are_usage_errors_and_submit_help_lists_the_kinds() {
    for args in [
        &["tasks", "--limit", "0", "--node", "127.0.0.1:9"][..],
        &["watch", "--snapshots", "1us", "--node", "127.0.0.1:9"][..],
        &["config", "default", "--set", "scheduler.workers=2"][..],
    ] {
        let output = goliath().args(args).output().expect("runs");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let help = goliath().args(["submit", "--help"]).output().expect("runs");
    let text = String::from_utf8_lossy(&help.stdout);
    for kind in [
        "spin", "sleep", "fib", "primes", "hash", "echo", "exec", "timeout=",
    ] {
        assert!(text.contains(kind), "{kind}: {text}");
    }
}

/// Runs the binary with `args`, checks it exits 2 (a usage error), and returns what it said.
fn usage_error(args: &[&str]) -> String {
    let output = goliath().args(args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    stderr
}

#[test]
fn a_data_directory_for_a_memory_only_node_is_refused() {
    let stderr = usage_error(&[
        "node",
        "--data-dir",
        "/nonexistent/goliath-test",
        "--set",
        "wal.enabled=false",
        "--listen",
        "127.0.0.1:0",
        // Were it to start, it stops at once: its standard input is closed.
        "--exit-with-stdin",
    ]);
    assert!(
        stderr.contains("means nothing with wal.enabled = false"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_option_before_the_specs_is_named_as_an_option() {
    let stderr = usage_error(&["submit", "--bogus", "fib", "1", "--node", "127.0.0.1:9"]);
    assert!(
        stderr.contains("unknown option '--bogus' for `goliath submit`"),
        "{stderr}"
    );
}

#[test]
fn an_option_of_a_command_given_before_it_is_told_where_it_goes() {
    let stderr = usage_error(&["--json", "status"]);
    assert!(
        stderr.contains("--json is an option of `goliath status`: put it after the command, e.g. `goliath status --json`"),
        "not clap's look-alike --join: {stderr}"
    );
    let stderr = usage_error(&["--limit", "3", "tasks"]);
    assert!(stderr.contains("`goliath tasks --limit 3`"), "{stderr}");
    let stderr = usage_error(&["--json", "wal", "dump", "--data-dir", "/nonexistent"]);
    assert!(stderr.contains("`goliath wal dump --json`"), "{stderr}");
    // Not an option of the command either: clap's own message.
    let stderr = usage_error(&["--bogus", "status"]);
    assert!(stderr.contains("unexpected argument '--bogus'"), "{stderr}");
}

#[test]
fn a_console_attached_to_a_node_refuses_the_flags_of_a_node_started_here() {
    for (args, flag) in [
        (
            &["console", "--connect", "127.0.0.1:9", "--workers", "3"][..],
            "--workers",
        ),
        (
            &[
                "--join",
                "127.0.0.1:9",
                "console",
                "--connect",
                "127.0.0.1:9",
            ][..],
            "--join",
        ),
        (
            &[
                "console",
                "--connect",
                "127.0.0.1:9",
                "--set",
                "scheduler.workers=3",
            ][..],
            "--set scheduler.workers=3",
        ),
    ] {
        // Refused before it looks for a terminal (the test has none) or the node.
        let stderr = usage_error(args);
        assert!(
            stderr.contains(&format!("{flag} is for a node started here")),
            "{args:?}: {stderr}"
        );
    }
    // A node's flag after a client command: said so, not clap's usage line of the flags
    // given (which made --node look required).
    let stderr = usage_error(&["status", "--node", "127.0.0.1:9", "--workers", "3"]);
    assert!(
        stderr.contains("--workers is for a node started here")
            && stderr.contains("not for `goliath status`")
            && !stderr.contains("Usage:"),
        "{stderr}"
    );
    // What an attached console uses is taken: it gets as far as wanting a terminal.
    let output = goliath()
        .args(["console", "--connect", "127.0.0.1:9"])
        .args([
            "--set",
            "console.theme=\"light\"",
            "--set",
            "node.cluster=\"x\"",
        ])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs a terminal"), "{stderr}");
}

#[test]
fn config_show_names_what_the_command_line_changed() {
    let output = goliath()
        .args([
            "config",
            "show",
            "--workers",
            "3",
            "--set",
            "exec.max_output=1MiB",
        ])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let header: Vec<&str> = text.lines().take(2).collect();
    assert!(header[1].contains("--workers 3"), "{text}");
    assert!(header[1].contains("--set exec.max_output=1MiB"), "{text}");
}

#[test]
fn config_show_json_is_one_document_with_origin_changes_and_every_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "node.toml", "[scheduler]\nworkers = 3\n");
    let shown = config_show_args(&[
        "--json",
        "--config",
        file.to_str().expect("utf-8"),
        "--set",
        "exec.max_output=1MiB",
        "--arena-slots",
        "8",
    ]);
    let document: serde_json::Value = serde_json::from_str(&shown).expect("one JSON document");
    let from = document["from"].as_str().expect("from");
    assert!(from.contains("node.toml"), "{document}");
    assert_eq!(
        document["command_line"],
        serde_json::json!(["--arena-slots 8", "--set exec.max_output=1MiB"])
    );
    assert_eq!(document["config"]["arena"]["slots"], 8);
    // The file's value, the command line's, and a default no one set.
    assert_eq!(document["config"]["scheduler"]["workers"], 3);
    assert_eq!(document["config"]["exec"]["max_output"], "1MiB");
    assert_eq!(document["config"]["scheduler"]["slice"], "1ms");
}

#[test]
fn a_key_given_with_set_moves_from_its_default_action() {
    // `n` submits by default; --set gives it to cancel, as a file listing `cancel` would.
    let output = goliath()
        .args(["config", "show", "--set", r#"console.keys.cancel=["n"]"#])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(r#"cancel = ["n"]"#), "{text}");
    // Two actions given one key on the same command line still clash.
    let output = goliath()
        .args(["config", "show"])
        .args(["--set", r#"console.keys.cancel=["d"]"#])
        .args(["--set", r#"console.keys.submit=["d"]"#])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("a key can do one thing"), "{stderr}");
}

#[test]
fn node_addresses_that_cannot_be_one_say_what_is_wrong_with_them() {
    for (address, says) in [
        (
            "::1",
            "an IPv6 address goes in brackets, followed by the port",
        ),
        (
            "http://127.0.0.1:7420/",
            "give HOST:PORT without `http://`, e.g. 127.0.0.1:7420",
        ),
        ("127.0.0.1:99999", "port 99999 is out of range (1 to 65535)"),
        ("127.0.0.1:0", "port 0 is out of range"),
        ("localhost", "is not HOST:PORT"),
    ] {
        let stderr = usage_error(&["status", "--node", address]);
        assert!(stderr.contains(says), "{address}: {stderr}");
    }
}

#[test]
fn a_flag_and_a_set_of_the_same_key_are_refused_instead_of_one_winning() {
    for args in [
        &[
            "config",
            "show",
            "--listen",
            "127.0.0.1:17527",
            "--set",
            "net.listen=127.0.0.1:17526",
        ][..],
        &[
            "config",
            "show",
            "--set",
            "scheduler.workers=1",
            "--workers",
            "3",
        ][..],
    ] {
        let stderr = usage_error(args);
        assert!(
            stderr.contains("set the same thing; give one of them"),
            "{args:?}: {stderr}"
        );
    }
    // Different keys still go together.
    let output = goliath()
        .args([
            "config",
            "show",
            "--workers",
            "3",
            "--set",
            "arena.slots=1024",
        ])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn config_sources_that_are_there_but_unusable_are_errors_not_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A directory, then a broken link, where the user's config file should be.
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("goliath/config.toml")).expect("mkdir");
    let output = goliath()
        .env("XDG_CONFIG_HOME", &xdg)
        .args(["config", "show"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("config.toml"), "{stderr}");
    std::fs::remove_dir(xdg.join("goliath/config.toml")).expect("rmdir");
    std::os::unix::fs::symlink(
        dir.path().join("gone.toml"),
        xdg.join("goliath/config.toml"),
    )
    .expect("symlink");
    let output = goliath()
        .env("XDG_CONFIG_HOME", &xdg)
        .args(["config", "show"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2), "a broken link is no config");
    // A relative XDG_CONFIG_HOME is ignored (the XDG specification): which file is read
    // must not depend on the working directory.
    std::fs::create_dir_all(dir.path().join("rel/goliath")).expect("mkdir");
    write(
        &dir.path().join("rel/goliath"),
        "config.toml",
        "[arena]\nslots = 4096\n",
    );
    let stdout = config_show(
        goliath()
            .current_dir(dir.path())
            .env("XDG_CONFIG_HOME", "rel")
            .env("HOME", "/nonexistent-goliath-test"),
    );
    assert!(
        stdout.contains("slots = 65536") && stdout.contains("embedded default config"),
        "{stdout}"
    );
    // A file far larger than any config (here 2 MiB of comment) is refused, not read whole.
    let huge = write(dir.path(), "huge.toml", &"#".repeat(2 << 20));
    let stderr = config_file_error(&huge);
    assert!(stderr.contains("larger than"), "{stderr}");
}

#[test]
fn a_byte_order_mark_does_not_hide_the_line_or_the_table_of_a_bad_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "bom.toml", "\u{feff}[scheduler]\nwokers = 2\n");
    let stderr = config_file_error(&file);
    assert!(
        stderr.contains("line 2") && stderr.contains("did you mean `scheduler.workers`"),
        "{stderr}"
    );
    let file = write(
        dir.path(),
        "bom0.toml",
        "\u{feff}[scheduler]\nworkers = 0\n",
    );
    let stderr = config_file_error(&file);
    assert!(stderr.contains("line 2"), "{stderr}");
}

#[test]
fn contradictions_and_holes_in_the_settings_are_named() {
    // The flag that turns gossip on, and --set turning it off: one would be dropped.
    let stderr = usage_error(&[
        "config",
        "show",
        "--join",
        "127.0.0.1:7421",
        "--set",
        "gossip.enabled=false",
    ]);
    assert!(stderr.contains("--join turns gossip on"), "{stderr}");
    // Seeds by --set with gossip off: the node would join no one.
    let stderr = usage_error(&["config", "show", "--set", "gossip.join=127.0.0.1:7421"]);
    assert!(stderr.contains("but gossip is off"), "{stderr}");
    // A demo turns gossip on: an explicit --set turning it off would be overruled.
    let stderr = usage_error(&["demo", "2", "--set", "gossip.enabled=false"]);
    assert!(
        stderr.contains("demo: its nodes find each other by gossip"),
        "{stderr}"
    );
    // `--join "$A,$B"` with B unset.
    let stderr = usage_error(&["config", "show", "--join", "127.0.0.1:7421,"]);
    assert!(stderr.contains("empty entry between commas"), "{stderr}");
    let stderr = usage_error(&["config", "show", "--join", ","]);
    assert!(stderr.contains("empty entry between commas"), "{stderr}");
    // A log filter of nothing would hide every line.
    let stderr = usage_error(&["config", "show", "--set", "log.level="]);
    assert!(stderr.contains("names no level"), "{stderr}");
    // `~` is not expanded in a TOML value.
    let stderr = usage_error(&["config", "show", "--set", "node.data_dir=~/goliath"]);
    assert!(stderr.contains("`~` is not expanded"), "{stderr}");
    // A relative data directory in a config file would follow the directory a node is
    // started from; on the command line it is relative to that directory, and made whole.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "rel.toml", "[node]\ndata_dir = \"gdata\"\n");
    let stderr = config_file_error(&file);
    assert!(
        stderr.contains("node.data_dir") && stderr.contains("relative path"),
        "{stderr}"
    );
    let shown = goliath()
        .current_dir(dir.path())
        .args(["config", "show", "--data-dir", "gdata"])
        .output()
        .expect("runs");
    let shown = String::from_utf8_lossy(&shown.stdout);
    let whole = dir.path().join("gdata");
    assert!(
        shown.contains(&format!("data_dir = \"{}\"", whole.display())),
        "{shown}"
    );
    // A problem found in a key the file leaves at its default names the key it does set.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "seg.toml", "[wal]\n\nsegment_size = \"1GiB\"\n");
    let stderr = config_file_error(&file);
    assert!(
        stderr.contains("wal.checkpoint_every") && stderr.contains("wal.segment_size (line 3)"),
        "{stderr}"
    );
}

#[test]
fn negative_numbers_are_told_what_the_option_takes() {
    for (args, expected) in [
        (
            &["tasks", "--node", "127.0.0.1:1", "--limit", "-1"][..],
            "-1 is not a task count from 1 to 10000",
        ),
        (
            &["watch", "--node", "127.0.0.1:1", "--snapshots", "-1s"][..],
            "'-1s' is not a duration",
        ),
        (
            &["config", "show", "--workers", "-1"][..],
            "workers must be \"auto\" or 1 to 1024, found -1",
        ),
        (&["demo", "-3"][..], "-3 is not a node count from 1 to 32"),
        (
            &["tasks", "--node", "127.0.0.1:1", "--before", "-5"][..],
            "'-5' is not a task id (a whole number from 1)",
        ),
        (
            &["task", "--node", "127.0.0.1:1", "-5"][..],
            "'-5' is not a task id",
        ),
        (
            &["cancel", "--node", "127.0.0.1:1", "-5"][..],
            "'-5' is not a task id (a whole number from 1)",
        ),
    ] {
        let stderr = usage_error(args);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn the_command_line_can_set_right_a_value_the_file_gets_wrong() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Segments of 1 GiB leave the default checkpoint size out of range; 0 workers is.
    let segments = write(dir.path(), "seg.toml", "[wal]\nsegment_size = \"1GiB\"\n");
    let workers = write(dir.path(), "w0.toml", "[scheduler]\nworkers = 0\n");
    let path = |file: &Path| file.to_str().expect("utf-8").to_string();
    let stdout = config_show(goliath().args([
        "--config",
        &path(&segments),
        "--set",
        "wal.checkpoint_every=2GiB",
    ]));
    assert!(stdout.contains("checkpoint_every = \"2GiB\""), "{stdout}");
    let stdout = config_show(goliath().args(["--config", &path(&workers), "--workers", "2"]));
    assert!(stdout.contains("workers = 2"), "{stdout}");
    // Left wrong, the file's error names its line, whatever else the command line sets.
    let stderr = usage_error(&[
        "config",
        "show",
        "--config",
        &path(&workers),
        "--set",
        "arena.slots=1024",
    ]);
    assert!(
        stderr.contains("w0.toml")
            && stderr.contains("line 2")
            && stderr.contains("scheduler.workers"),
        "{stderr}"
    );
    assert!(config_file_error(&workers).contains("line 2"));
}

#[test]
fn a_value_of_the_wrong_type_is_told_what_the_key_takes() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (text, expected) in [
        ("[scheduler]\nslice = 10\n", "a duration with its unit"),
        (
            "[wal]\nsync = true\n",
            "expected one of \"always\", \"never\"",
        ),
        (
            "[console]\ntheme = false\n",
            "expected one of \"dark\", \"light\", \"mono\", not boolean `false`",
        ),
    ] {
        let file = write(dir.path(), "typed.toml", text);
        let stderr = config_file_error(&file);
        assert!(
            stderr.contains(expected) && stderr.contains("line 2"),
            "{stderr}"
        );
    }
}

#[test]
fn keys_in_the_wrong_place_are_told_where_they_belong() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (text, expected) in [
        (
            "[node]\nscheduler.workers = 3\n",
            "`scheduler` is a table of its own; put its keys under [scheduler], not under [node]",
        ),
        (
            "[node]\nnode.name = \"a\"\n",
            "this is under [node] already; write its keys without `node.` in front",
        ),
        (
            "[[scheduler]]\nworkers = 3\n",
            "key `scheduler`: `[[scheduler]]` makes a list of tables",
        ),
        (
            "workers = 2\n",
            "did you mean `scheduler.workers` (under [scheduler])?",
        ),
        (
            "scheduler = { workers = 0 }\n",
            "line 1: `scheduler.workers` = 0",
        ),
    ] {
        let file = write(dir.path(), "placed.toml", text);
        let stderr = config_file_error(&file);
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
    }
    let stderr = usage_error(&["config", "show", "--set", "=x"]);
    assert!(stderr.contains("names no key"), "{stderr}");
}

#[test]
fn a_duration_of_zero_needs_no_unit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "zero.toml", "[wal]\nmax_batch_delay = 0\n");
    let stdout = config_show(
        goliath()
            .arg("--config")
            .arg(&file)
            .args(["--set", "exec.kill_grace=0"]),
    );
    assert!(
        stdout.contains("max_batch_delay = \"0ns\"") || stdout.contains("max_batch_delay = \"0s\""),
        "{stdout}"
    );
}

/// `goliath` with `args`, its standard output /dev/full (every write fails: disk full).
fn into_a_full_disk(args: &[&str]) -> std::process::Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full opens");
    goliath().args(args).stdout(full).output().expect("runs")
}

#[test]
fn help_that_cannot_be_written_is_an_error_and_a_closed_pipe_is_not() {
    for args in [&["--help"][..], &["task", "--help"], &["--version"]] {
        let output = into_a_full_disk(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write to standard output"),
            "{stderr}"
        );
    }
    let mut child = goliath()
        .arg("--help")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    drop(child.stdout.take());
    assert!(child.wait().expect("exits").success());
}

#[test]
fn a_client_command_refuses_a_set_that_would_change_nothing() {
    let stderr = usage_error(&[
        "status",
        "--node",
        "127.0.0.1:1",
        "--set",
        "scheduler.workers=3",
    ]);
    assert!(
        stderr.contains("--set scheduler.workers=3 changes nothing for `goliath status`"),
        "{stderr}"
    );
    // The protocol's settings and the cluster name are a client's own: taken.
    let output = goliath()
        .args([
            "status",
            "--node",
            "127.0.0.1:1",
            "--set",
            "net.max_frame=1MiB",
        ])
        .args(["--set", "node.cluster=staging"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(3), "only the connection fails");
}

#[test]
fn a_json_error_that_cannot_be_written_keeps_the_failures_exit_code() {
    // Nothing listens on port 1: the node was never reached, so nothing took effect.
    for (args, expected) in [
        (
            &["submit", "--node", "127.0.0.1:1", "--json", "fib", "3"][..],
            3,
        ),
        (
            &["submit", "--node", "127.0.0.1:1", "--json", "spni"][..],
            3,
        ),
        (
            &["tasks", "--node", "127.0.0.1:1", "--json", "--limit", "0"][..],
            2,
        ),
    ] {
        let output = into_a_full_disk(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(expected), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write the error as JSON") && !stderr.contains("took effect"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_closed_standard_error_keeps_the_exit_code() {
    // `cmd 2>&1 | grep -m1 …`: the reader may go before the message is written.
    for (args, expected) in [
        (&["tasks", "--node", "127.0.0.1:1", "--limit", "0"][..], 2),
        (&["task", "--node", "127.0.0.1:1", "5"][..], 3),
    ] {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let output = goliath().args(args).stderr(writer).output().expect("runs");
        assert_eq!(
            output.status.code(),
            Some(expected),
            "{args:?}: not a panic"
        );
    }
}

#[test]
fn a_long_bad_value_is_quoted_by_its_start() {
    let long_id = "7".repeat(5000);
    let long_state = "q".repeat(3000);
    for args in [
        vec!["task", "--node", "127.0.0.1:9", &long_id],
        vec!["cancel", "--node", "127.0.0.1:9", &long_id],
        vec!["tasks", "--node", "127.0.0.1:9", "--state", &long_state],
    ] {
        let stderr = usage_error(&args);
        assert!(
            stderr.len() < 400 && stderr.contains('…'),
            "{}: {} bytes: {stderr}",
            args[0],
            stderr.len()
        );
    }
}

#[test]
fn a_long_unknown_config_key_is_quoted_by_its_start() {
    let key = format!("scheduler.{}", "q".repeat(3000));
    let stderr = usage_error(&["config", "show", "--set", &format!("{key}=1")]);
    assert!(
        stderr.len() < 400 && stderr.contains("unknown key") && stderr.contains('…'),
        "{} bytes: {stderr}",
        stderr.len()
    );
}
