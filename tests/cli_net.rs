//! The real binary end to end: a `goliath node` process driven by the real CLI.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::binary::{RunningNode, goliath};

fn wait_for_state(node: &RunningNode, id: u64, wanted: &str) -> serde_json::Value {
    let deadline = Instant::now() + common::LIVENESS;
    loop {
        let task = node.json(&["task", &id.to_string()]);
        if task["state"] == wanted {
            return task;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} never became {wanted}: {task}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn submit_wait_cancel_watch_status_and_shutdown_through_the_cli() {
    let mut node = RunningNode::start(&["--workers", "2", "--set", "exec.remote=true"]);

    let submitted = node.json(&["submit", "spin", "50ms", "x3"]);
    assert_eq!(submitted["ids"].as_array().map(Vec::len), Some(3));
    assert_eq!(submitted["duplicate"], false);
    let raw = node.client(&["submit", "--json", "fib 1"]);
    let raw = String::from_utf8_lossy(&raw.stdout);
    assert!(
        raw.starts_with("{\"ids\":[") && raw.trim_end().ends_with(",\"duplicate\":false}"),
        "the keys in the README's order: {raw}"
    );

    let finished = node.json(&["submit", "--wait", "fib 20", "echo hello there"]);
    let tasks = finished["tasks"].as_array().expect("tasks");
    assert_eq!(tasks[0]["state"], "succeeded");
    assert_eq!(tasks[0]["output"]["number"], 6765);
    assert_eq!(tasks[1]["output"]["text"], "hello there");

    let failing = node.client(&[
        "submit",
        "--wait",
        "exec",
        "--",
        "sh",
        "-c",
        "echo out; exit 3",
    ]);
    assert_eq!(
        failing.status.code(),
        Some(1),
        "a failed task makes --wait exit 1"
    );
    let text = String::from_utf8_lossy(&failing.stdout);
    assert!(
        text.contains("failed") && text.contains("exited with status 3"),
        "{text}"
    );
    // A program that passes the submit's checks but cannot be started (its interpreter is
    // missing) fails as a start failure, not as a program that exited with 127.
    let scripts = tempfile::tempdir().expect("temp dir");
    let script = scripts.path().join("no-interpreter");
    std::fs::write(&script, "#!/nonexistent/interpreter\n").expect("write");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let unstartable = node.client(&[
        "submit",
        "--wait",
        "--json",
        "exec",
        "--",
        &script.display().to_string(),
    ]);
    assert_eq!(unstartable.status.code(), Some(1));
    let answer: serde_json::Value =
        serde_json::from_slice(&unstartable.stdout).expect("one JSON document");
    let task = &answer["tasks"][0];
    assert_eq!(task["state"], "failed", "{task}");
    let error = task["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("exec: cannot start") && error.contains("No such file"),
        "{task}"
    );

    // Cancel a running spin.
    let id = node.json(&["submit", "spin 60s"])["ids"][0]
        .as_u64()
        .expect("id");
    wait_for_state(&node, id, "running");
    // An id given twice is one request, answered once.
    let cancel = node.client(&["cancel", &id.to_string(), &id.to_string()]);
    let answer = String::from_utf8_lossy(&cancel.stdout);
    assert_eq!(answer.matches("cancel requested").count(), 1, "{answer}");
    assert_eq!(answer.lines().count(), 1, "{answer}");
    let cancelled = wait_for_state(&node, id, "cancelled");
    assert_eq!(cancelled["error"], "cancelled");
    // A range, as the console's palette takes it: each id in it answered once.
    let ranged = node.client(&["cancel", &format!("{id}-{}", id + 2), &id.to_string()]);
    let answer = String::from_utf8_lossy(&ranged.stdout);
    assert!(
        answer.starts_with(&format!("{id}: already cancelled")),
        "{answer}"
    );
    assert_eq!(answer.lines().count(), 3, "{answer}");

    // Watch events as JSON lines while tasks run.
    let mut watch = goliath()
        .args(["watch", "--json", "--node", &node.address])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch runs");
    std::thread::sleep(Duration::from_millis(300));
    let ids: Vec<u64> = node.json(&["submit", "fib 15 x5"])["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let mut succeeded = std::collections::HashSet::new();
    while succeeded.len() < ids.len() {
        let line = lines.next().expect("watch keeps printing").expect("line");
        let item: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        // Each event says which task it is about.
        assert_eq!(item["event"]["spec"], "fib 15", "{line}");
        if item["event"]["state"] == "succeeded" {
            assert!(item["event"]["error"].is_null(), "{line}");
            succeeded.insert(item["event"]["id"].as_u64().expect("id"));
        }
    }
    assert!(ids.iter().all(|id| succeeded.contains(id)));
    // A task that ends badly: its event carries the reason.
    let timed_out = node.json(&["submit", "spin 10s timeout=50ms"])["ids"][0]
        .as_u64()
        .expect("id");
    loop {
        let line = lines.next().expect("watch keeps printing").expect("line");
        let item: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if item["event"]["id"] == timed_out && item["event"]["state"] == "timed_out" {
            assert_eq!(item["event"]["spec"], "spin 10s timeout=50ms", "{line}");
            let error = item["event"]["error"].as_str().unwrap_or_default();
            assert!(error.contains("50ms"), "{line}");
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();

    let status = node.json(&["status"]);
    assert_eq!(status["workers"].as_array().map(Vec::len), Some(2));
    assert!(status["counts"]["succeeded"].as_u64().expect("count") >= 10);
    let listed = node.json(&["tasks", "--state", "cancelled"]);
    assert_eq!(listed["tasks"].as_array().map(Vec::len), Some(1));

    // --wait returns once the node is gone: its process has exited by then.
    let shutdown = node.client(&["shutdown", "--wait"]);
    assert!(shutdown.status.success());
    assert!(
        String::from_utf8_lossy(&shutdown.stdout).contains("has stopped"),
        "{shutdown:?}"
    );
    assert!(
        node.child.try_wait().expect("waits").is_some(),
        "the node still ran when shutdown --wait returned"
    );
}

#[test]
fn shutdown_wait_returns_when_the_node_exits_though_another_takes_its_address() {
    // As a supervisor would: the next node starts on the same address the moment the first
    // one exits. The wait is for the process it asked, not for the port.
    let port = common::binary::free_tcp_port();
    let address = format!("127.0.0.1:{port}");
    let dirs = [
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    ];
    let binary = env!("CARGO_BIN_EXE_goliath");
    let script = format!(
        "{binary} node --listen {address} --data-dir {first} 2>/dev/null; exec {binary} node --listen {address} --data-dir {second} 2>/dev/null",
        first = dirs[0].path().display(),
        second = dirs[1].path().display(),
    );
    let mut supervisor = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("XDG_CONFIG_HOME", "/nonexistent-goliath-test")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("sh runs");
    common::eventually(|| {
        TcpStream::connect(&address)
            .map(drop)
            .map_err(|e| format!("first node not up: {e}"))
    });
    let mut wait = goliath()
        .args(["shutdown", "--wait", "--node", &address])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client runs");
    let status = common::eventually(|| {
        wait.try_wait()
            .expect("waits")
            .ok_or_else(|| "shutdown --wait still waiting".to_string())
    });
    let mut stderr = String::new();
    if let Some(mut pipe) = wait.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(status.success(), "{stderr}");
    // The second node runs on: stop it.
    common::eventually(|| {
        TcpStream::connect(&address)
            .map(drop)
            .map_err(|e| format!("second node not up: {e}"))
    });
    assert!(
        goliath()
            .args(["shutdown", "--wait", "--node", &address])
            .status()
            .expect("client runs")
            .success()
    );
    let _ = supervisor.wait();
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let node = RunningNode::start(&["--workers", "1", "--arena-slots", "4"]);
    let code = |args: &[&str]| node.client(args).status.code();
    // Exits with `expected` and says `says` on stderr.
    let fails = |args: &[&str], expected: i32, says: &str| {
        let output = node.client(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(expected), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    assert_eq!(code(&["submit", "spni", "1s"]), Some(2), "bad spec");
    // After `--` a word like an option is spec text, refused as a spec, not as an option.
    fails(&["submit", "--", "--json"], 2, "bad task spec");
    assert_eq!(code(&["task", "424242"]), Some(6), "no such task");
    // With --json the failure is a document on stdout too, beside the text on stderr.
    let missing = node.client(&["task", "--json", "424242"]);
    assert_eq!(missing.status.code(), Some(6));
    let document: serde_json::Value =
        serde_json::from_slice(&missing.stdout).expect("one JSON document");
    assert_eq!(document["error"]["exit_code"], 6, "{document}");
    assert!(
        document["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("424242")),
        "{document}"
    );
    assert!(!missing.stderr.is_empty());
    // Also for failures found before the node is asked: an id, a spec line, the options.
    for args in [
        &["cancel", "--json", "abc"][..],
        &["submit", "--json", "echo a", "--wait"],
        &["tasks", "--json", "--limit", "0"],
        &["--json", "status"],
    ] {
        let refused = node.client(args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        let document: serde_json::Value = serde_json::from_slice(&refused.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: one JSON document: {e}"));
        assert_eq!(document["error"]["exit_code"], 2, "{args:?}: {document}");
        let message = document["error"]["message"].as_str().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !message.is_empty() && stderr.contains(message),
            "{args:?}: the same text on stderr: {message} / {stderr}"
        );
    }
    // A reader that closed the pipe does not turn the outcome into success.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let closed = goliath()
        .args(["cancel", "--node", &node.address, "424242"])
        .stdout(writer)
        .output()
        .expect("runs");
    assert_eq!(closed.status.code(), Some(6), "{closed:?}");
    // A missing argument is named in the document, not only on clap's next line.
    let refused = node.client(&["task", "--json"]);
    assert_eq!(refused.status.code(), Some(2));
    let document: serde_json::Value = serde_json::from_slice(&refused.stdout).expect("JSON");
    let message = document["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("not provided") && message.contains("<ID>"),
        "{document}"
    );
    // Control characters in a message show as symbols, one way in every message.
    let refused = node.client(&["submit", "fib 1", "sp\u{1b}[2Jin 1s"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("bad task spec #2 (\"sp\u{241b}[2Jin 1s\")"),
        "{stderr}"
    );
    let key_used = |spec: &str| node.client(&["submit", "--idempotency-key", "k\u{1b}", spec]);
    assert_eq!(key_used("fib 3").status.code(), Some(0));
    let reused = key_used("fib 4");
    let stderr = String::from_utf8_lossy(&reused.stderr);
    assert!(
        stderr.contains("idempotency key \"k\u{241b}\" was first used"),
        "{stderr}"
    );
    let missing = node.client(&["cancel", "424242"]);
    assert_eq!(missing.status.code(), Some(6), "no such task to cancel");
    let said = String::from_utf8_lossy(&missing.stdout);
    assert!(said.contains("424242: not on this node"), "{said}");
    // A batch larger than the arena is refused (retrying would never help), not "busy".
    fails(&["submit", "sleep 60s x8"], 1, "can never fit");
    let other_cluster = goliath()
        .args([
            "status",
            "--node",
            &node.address,
            "--set",
            "node.cluster=staging",
        ])
        .output()
        .expect("runs");
    assert_eq!(other_cluster.status.code(), Some(4), "cluster mismatch");
    assert!(String::from_utf8_lossy(&other_cluster.stderr).contains("\"staging\""));
    fails(&["submit", "exec", "--", "true"], 1, "exec.remote");
    // Nothing listens on this port: bind one and close it to get a free one.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .to_string();
    let refused = goliath()
        .args(["status", "--node", &free])
        .output()
        .expect("runs");
    assert_eq!(refused.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("goliath node --listen {free}`"))
            && stderr.contains("--node ADDR"),
        "says what to do, at the address tried (not the config's): {stderr}"
    );
    // A name that does not resolve (`.invalid` never does) is not a missing node.
    let unresolved = goliath()
        .args(["status", "--node", "no-such-host.invalid:7420"])
        .output()
        .expect("runs");
    assert_eq!(unresolved.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&unresolved.stderr);
    assert!(
        stderr.contains("Check the name") && !stderr.contains("Start one there"),
        "points at the name: {stderr}"
    );
    // Last, as it leaves every slot taken.
    assert_eq!(
        code(&["submit", "sleep 60s x4"]),
        Some(0),
        "fills the arena"
    );
    fails(&["submit", "sleep 60s"], 5, "all 4 task slots are in use");
    // It names the node and where a cluster's other members show their room.
    fails(&["submit", "sleep 60s"], 5, &format!("at {}", node.address));
    fails(&["submit", "sleep 60s"], 5, "goliath members --node");
}

#[test]
fn non_loopback_listen_needs_the_insecure_flag() {
    let output = goliath()
        .args(["node", "--listen", "0.0.0.0:0"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--insecure-listen"));
    let node = RunningNode::start_at("0.0.0.0:0", &["--insecure-listen"]);
    assert!(
        node.log().contains("WITHOUT authentication"),
        "{}",
        node.log()
    );
}

#[test]
fn clients_holding_large_unfinished_frames_share_a_bounded_budget_of_node_memory() {
    let node = RunningNode::start(&[
        "--workers",
        "1",
        "--set",
        "net.max_frame=4MiB",
        "--set",
        "net.stall_timeout=3s",
    ]);
    assert!(node.client(&["status"]).status.success());
    let before = node.rss_kib();
    // 40 clients each declare a 4 MiB request and send all of it but its last byte: 160 MiB
    // if the node buffered every one. Each writes on a thread of its own, as those the
    // node does not read from yet block.
    let address = node.address.clone();
    let clients: Vec<_> = (0..40)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&address).expect("connects");
                let hello = goliath::runtime::net::Hello {
                    client: "test".into(),
                    cluster: "goliath".into(),
                };
                let mut bytes =
                    goliath::runtime::net::frame::opening(&hello, 4 << 20).expect("encodes");
                let mut frame = Vec::new();
                goliath::runtime::net::frame::write_frame(
                    &mut frame,
                    goliath::runtime::net::frame::FrameType::Request,
                    1,
                    &vec![1u8; (4 << 20) - 64],
                );
                frame.pop();
                bytes.extend_from_slice(&frame);
                // Ends with an error once the node closes a stalled connection.
                let _ = stream.write_all(&bytes);
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest);
            })
        })
        .collect();
    let mut most = before;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        most = most.max(node.rss_kib());
        std::thread::sleep(Duration::from_millis(20));
    }
    let grown_mib = most.saturating_sub(before) / 1024;
    // The budget is 64 MiB; a little more for the connections themselves.
    assert!(grown_mib <= 80, "the node grew by {grown_mib} MiB");
    for client in clients {
        let _ = client.join();
    }
    assert!(node.client(&["status"]).status.success());
}

#[test]
fn many_clients_asking_for_long_lists_at_once_start_a_bounded_number_of_threads() {
    let node = RunningNode::start(&["--workers", "1"]);
    assert!(
        node.client(&["submit", "--wait", "fib 1 x3000"])
            .status
            .success()
    );
    let pid = node.child.id();
    let blocking_threads = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|name| name.starts_with("goliath-io-bloc"))
            })
            .count()
    };
    // 200 clients each asking for four long lists, none reading the answers.
    let mut clients = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(&node.address).expect("connects");
        let hello = goliath::runtime::net::Hello {
            client: "test".into(),
            cluster: "goliath".into(),
        };
        let mut bytes = goliath::runtime::net::frame::opening(&hello, 1 << 20).expect("encodes");
        for stream_id in 1..=4 {
            let request: goliath::runtime::net::Request =
                goliath::runtime::net::Request::Tasks(goliath::runtime::TaskQuery {
                    state: None,
                    limit: 10_000,
                    before: None,
                });
            goliath::runtime::net::frame::write_message(
                &mut bytes,
                goliath::runtime::net::frame::FrameType::Request,
                stream_id,
                &request,
                1 << 20,
            )
            .expect("encodes");
        }
        stream.write_all(&bytes).expect("sends");
        clients.push(stream);
    }
    let mut most = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        most = most.max(blocking_threads());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(most <= 8, "{most} blocking threads");
    drop(clients);
    assert!(node.client(&["status"]).status.success());
}

#[test]
fn a_4_gib_length_prefix_costs_the_node_no_memory_and_rejections_are_logged_without_flooding() {
    let node = RunningNode::start(&["--workers", "1"]);
    let handshake = || {
        let mut stream = TcpStream::connect(&node.address).expect("connects");
        let hello = goliath::runtime::net::Hello {
            client: "test".into(),
            cluster: "goliath".into(),
        };
        let bytes = goliath::runtime::net::frame::opening(&hello, 1 << 20).expect("encodes");
        stream.write_all(&bytes).expect("sends");
        stream
    };
    // Warm the node up so the measurement sees only this request.
    assert!(node.client(&["status"]).status.success());
    let before = node.rss_kib();
    let mut rejected = 0;
    for _ in 0..20 {
        let mut stream = handshake();
        let mut header = Vec::new();
        goliath::runtime::net::frame::write_header(
            &mut header,
            goliath::runtime::net::frame::FrameType::Request,
            1,
            u32::MAX,
        );
        stream.write_all(&header).expect("sends");
        let mut reply = Vec::new();
        stream
            .set_read_timeout(Some(common::LIVENESS))
            .expect("timeout");
        let _ = stream.read_to_end(&mut reply);
        assert!(
            String::from_utf8_lossy(&reply).contains("exceeds the limit"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        rejected += 1;
    }
    for garbage in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5],
    ] {
        let mut stream = TcpStream::connect(&node.address).expect("connects");
        stream.write_all(garbage).expect("sends");
        let _ = stream.read_to_end(&mut Vec::new());
        rejected += 1;
    }
    let grown = node.rss_kib().saturating_sub(before);
    assert!(grown < 1024, "node memory grew by {grown} KiB");
    assert!(
        node.client(&["status"]).status.success(),
        "the node still serves"
    );
    // One line per rejected connection, up to 10 in 10 s: the rest of a flood is counted.
    let logged = rejected.min(10);
    assert!(rejected > logged, "the test floods");
    let deadline = Instant::now() + common::LIVENESS;
    while node.log().matches("connection rejected").count() < logged {
        assert!(
            Instant::now() < deadline,
            "rejections not logged:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = node.log();
    assert_eq!(
        log.matches("connection rejected").count(),
        logged,
        "one line per rejected connection, then none: {log}"
    );
    assert!(
        log.contains("further rejections in the next 10s are counted, not logged one by one"),
        "{log}"
    );
    // When the 10 s end, the count is said, with no later rejection to carry it.
    let summary = format!(
        "{} more connections were rejected in the last 10s",
        rejected - logged
    );
    let deadline = Instant::now() + Duration::from_secs(10) + common::LIVENESS;
    while !node.log().contains(&summary) {
        assert!(Instant::now() < deadline, "no '{summary}':\n{}", node.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!node.log().contains("panicked"), "{}", node.log());
}

/// `goliath submit [options] -` on `node`, with `input` on standard input.
fn submit_stdin(node: &RunningNode, options: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = goliath()
        .arg("submit")
        .args(options)
        .args(["--node", &node.address, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("writes");
    child.wait_with_output().expect("exits")
}

#[test]
fn submit_reads_specs_from_stdin() {
    let node = RunningNode::start(&["--workers", "1"]);
    let output = submit_stdin(
        &node,
        &["--wait", "--json"],
        b"# a batch\nfib 10\n\necho from stdin\n",
    );
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(json["tasks"][1]["output"]["text"], "from stdin");
    // Each task's fields in the documented order, as `goliath task --json` prints them.
    let raw = String::from_utf8_lossy(&output.stdout);
    assert!(raw.starts_with(r#"{"tasks":[{"id":"#), "{raw}");
    let listed = node.client(&["tasks", "--json"]);
    let raw = String::from_utf8_lossy(&listed.stdout);
    assert!(raw.starts_with(r#"{"tasks":[{"id":"#), "{raw}");

    // A bad spec is named by its line on standard input, comments and blanks counted.
    let output = submit_stdin(&node, &[], b"\n# c\nfib 2\n\nfib 200\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("standard input, line 5"), "{stderr}");
    // A refused exec in a batch is named by its line too.
    let output = submit_stdin(&node, &[], b"fib 1\n# c\nexec -- true\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("standard input, line 3: spec #2 (\"exec -- true\")")
            && stderr.contains("exec.remote = false"),
        "{stderr}"
    );
    // A long bad line is named by its start, not echoed whole.
    let long = format!("fib 2\nfib 3 {}\n", "y".repeat(5000));
    let output = submit_stdin(&node, &[], long.as_bytes());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("standard input, line 2") && stderr.len() < 1000,
        "{stderr}"
    );
}

#[test]
fn a_long_listing_pages_through_every_task_once_with_the_cursor_it_prints() {
    let node = RunningNode::start(&["--workers", "1"]);
    // Seven that succeed and two that time out (`submit --wait` exits 1 for those).
    let output = node.client(&[
        "submit",
        "--wait",
        "--json",
        "fib 5 x7",
        "spin 10s timeout=1ms x2",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let submitted: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let mut expected: Vec<u64> = submitted["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|task| task["id"].as_u64())
        .collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(expected.len(), 9, "{submitted}");

    // Pages of 4, each started below the last id of the one before, until one is not full.
    let mut seen = Vec::new();
    let mut before: Option<u64> = None;
    for _ in 0..5 {
        let mut args = vec!["tasks".to_string(), "--limit".into(), "4".into()];
        if let Some(id) = before {
            args.extend(["--before".to_string(), id.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let page = node.json(&args);
        seen.extend(
            page["tasks"]
                .as_array()
                .expect("tasks")
                .iter()
                .filter_map(|task| task["id"].as_u64()),
        );
        match page["next_before"].as_u64() {
            Some(id) => before = Some(id),
            None => {
                assert!(page["next_before"].is_null(), "{page}");
                break;
            }
        }
    }
    assert_eq!(seen, expected, "every task once, newest first");

    // The cursor and the state filter together; the text form says where the next page starts.
    let failed = node.json(&["tasks", "--state", "timed_out", "--limit", "1"]);
    let newest_failure = failed["next_before"].as_u64().expect("a full page");
    let older = node.json(&[
        "tasks",
        "--state",
        "timed_out",
        "--before",
        &newest_failure.to_string(),
    ]);
    let older = older["tasks"].as_array().expect("tasks");
    assert_eq!(older.len(), 1, "{older:?}");
    assert!(older[0]["id"].as_u64() < Some(newest_failure));
    let text = node.client(&["tasks", "--limit", "3"]);
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(
        stderr.contains(&format!("--before {}", expected[2])),
        "{stderr}"
    );
    assert!(text.status.success(), "{stderr}");
}

#[test]
fn the_largest_output_a_node_keeps_can_be_read_back_also_when_it_is_not_utf8() {
    // Past the largest bound a task's two streams would not fit one answer: refused.
    let refused = goliath()
        .args(["config", "show", "--set", "exec.max_output=17MiB"])
        .output()
        .expect("runs");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("use 0 to 16MiB"));
    let node = RunningNode::start(&[
        "--workers",
        "1",
        "--set",
        "exec.remote=true",
        "--set",
        "exec.max_output=16MiB",
    ]);
    // More than 16 MiB of bytes that are not UTF-8 on each stream.
    let binary = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(binary.path(), vec![0xffu8; 17_000_000]).expect("write");
    let path = binary.path().to_str().expect("UTF-8 path");
    let spec = format!("exec -- sh -c 'cat {path}; cat {path} >&2'");
    let waited = node.json(&["submit", "--wait", &spec]);
    let id = waited["tasks"][0]["id"].as_u64().expect("id");
    let output = node.client(&["task", "--json", &id.to_string()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let task: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let process = &task["output"]["process"];
    for (stream, truncated) in [
        ("stdout", "stdout_truncated"),
        ("stderr", "stderr_truncated"),
    ] {
        let text = process[stream].as_str().expect("text");
        assert!(
            text.len() <= 16 << 20 && text.len() > 16_000_000,
            "{stream}: {} bytes",
            text.len()
        );
        assert!(text.chars().all(|c| c == '\u{FFFD}'));
        // Every byte the program wrote is kept as a replacement or counted as cut.
        let kept = (text.len() / 3) as u64;
        assert_eq!(
            kept + process[truncated].as_u64().expect("count"),
            17_000_000
        );
    }
    // A short output with a byte that is not UTF-8 is kept whole, its last line too.
    let waited = node.json(&[
        "submit",
        "--wait",
        r#"exec -- sh -c "printf '\\377' >&2; printf 'a\\377bcdef\\nline2\\n'""#,
    ]);
    let process = &waited["tasks"][0]["output"]["process"];
    assert_eq!(process["stdout"], "a\u{FFFD}bcdef\nline2\n", "{waited}");
    assert_eq!(process["stdout_truncated"], 0, "{waited}");
    assert_eq!(process["stderr"], "\u{FFFD}", "{waited}");
    assert_eq!(process["stderr_truncated"], 0, "{waited}");
}

#[test]
fn a_batch_with_one_spec_the_node_refuses_submits_none_of_it() {
    let node = RunningNode::start(&["--workers", "1", "--set", "exec.remote=true"]);
    let specs = ["echo A", "exec -- no-such-program-here", "echo B"];
    for key in [None, Some("batch-7")] {
        let mut args = vec!["submit", "--json"];
        if let Some(key) = key {
            args.extend(["--idempotency-key", key]);
        }
        args.extend(specs);
        let output = node.client(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("no-such-program-here"), "{stderr}");
        assert!(stderr.contains("spec #2 of the 3"), "which one: {stderr}");
        assert!(!stderr.contains("submitted first"), "{stderr}");
    }
    let tasks = node.json(&["tasks"]);
    assert_eq!(
        tasks["tasks"].as_array().map(Vec::len),
        Some(0),
        "nothing of the batch was taken: {tasks}"
    );
    // The key is not bound to a part of the batch: the same work, fixed, is new work.
    let fixed = node.json(&[
        "submit",
        "--idempotency-key",
        "batch-7",
        "echo A",
        "exec -- true",
        "echo B",
    ]);
    assert_eq!(fixed["duplicate"], false, "{fixed}");
    assert_eq!(fixed["ids"].as_array().map(Vec::len), Some(3), "{fixed}");
}

#[test]
fn a_reused_idempotency_key_returns_the_first_ids_and_refuses_other_work() {
    let node = RunningNode::start(&["--workers", "1"]);
    let first = node.client(&["submit", "--idempotency-key", "nightly-7", "fib 20"]);
    assert!(first.status.success());
    assert!(
        !String::from_utf8_lossy(&first.stderr).contains("used before"),
        "a first use is not a duplicate"
    );
    let again = node.client(&["submit", "--idempotency-key", "nightly-7", "fib 20"]);
    assert!(again.status.success());
    assert_eq!(again.stdout, first.stdout, "the same ids");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("used before") && stderr.contains("nothing new was submitted"),
        "{stderr}"
    );
    // With --json too, beside `"duplicate":true`.
    let json = node.client(&[
        "submit",
        "--json",
        "--idempotency-key",
        "nightly-7",
        "fib 20",
    ]);
    assert!(json.status.success());
    assert!(String::from_utf8_lossy(&json.stdout).contains("\"duplicate\":true"));
    assert!(String::from_utf8_lossy(&json.stderr).contains("used before"));
    let other = node.client(&["submit", "--idempotency-key", "nightly-7", "fib 21"]);
    assert_eq!(other.status.code(), Some(1), "other work under a used key");
    assert!(
        other.stdout.is_empty(),
        "no ids for work that was not submitted"
    );
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        stderr.contains("first used for other work")
            && stderr.contains("`fib 20` then, `fib 21` now"),
        "{stderr}"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `goliath tasks | head -1`: the reader goes away before the output is written.
    let node = RunningNode::start(&["--workers", "1"]);
    let submitted = node.client(&["submit", "--wait", "fib 10 x3"]);
    assert!(submitted.status.success());
    for args in [
        vec!["tasks"],
        vec!["task", "1"],
        vec!["status", "--json"],
        vec!["watch", "--snapshots", "100ms"],
    ] {
        let mut child = goliath()
            .args(&args)
            .args(["--node", &node.address])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("client runs");
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("stderr reads");
        let status = child.wait().expect("client exits");
        assert!(status.success(), "{args:?}: {status:?} {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    // A watch of a node that stays quiet has nothing to write, yet it ends once its reader
    // has gone (`goliath watch --json | head -5` after the burst head read).
    for args in [vec!["watch"], vec!["watch", "--json"]] {
        let mut child = goliath()
            .args(&args)
            .args(["--node", &node.address])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("client runs");
        std::thread::sleep(Duration::from_millis(300));
        drop(child.stdout.take());
        let status = common::eventually(|| {
            child
                .try_wait()
                .expect("waits")
                .ok_or_else(|| format!("{args:?} still runs after its reader closed the pipe"))
        });
        assert!(status.success(), "{args:?}: {status:?}");
    }
    // Output that cannot be written (a full disk) is an error, and it says the submit was
    // done all the same: a script must not take it for a refusal and submit again.
    // A client command of `node` whose standard output is /dev/full.
    let into_full_disk = |args: &[&str]| {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full opens");
        let (command, rest) = args.split_first().expect("a command");
        goliath()
            .args([command, "--node", &node.address])
            .args(rest)
            .stdout(full)
            .output()
            .expect("client runs")
    };
    let output = into_full_disk(&["submit", "fib 11"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write to standard output")
            && stderr.contains("took effect), only this report of it is lost"),
        "{stderr}"
    );
    let listed = node.json(&["task", "4"]);
    assert_eq!(listed["spec"], "fib 11", "{listed}");
    // A command that changes nothing does not speak of something taking effect.
    let output = into_full_disk(&["tasks"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("only this report of it is lost") && !stderr.contains("took effect"),
        "{stderr}"
    );
}

#[test]
fn a_wait_cut_short_by_shutdown_does_not_report_a_task_that_will_run_again_as_cancelled() {
    let data = tempfile::tempdir().expect("temp dir");
    let args = ["--workers", "1", "--set", "shutdown.grace=100ms"];
    let mut node = RunningNode::start_in(data.path(), &args);
    let waiting = goliath()
        .args([
            "submit",
            "--wait",
            "--json",
            "--node",
            &node.address,
            "sleep 60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client runs");
    // The client submits in its own time: wait until the node knows the task.
    // (Every 20 ms, not eventually's every millisecond: each look starts a process.)
    let deadline = Instant::now() + common::LIVENESS;
    while !node.client(&["task", "1"]).status.success() {
        assert!(Instant::now() < deadline, "the task never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_state(&node, 1, "running");
    assert!(node.client(&["shutdown"]).status.success());
    let waited = waiting.wait_with_output().expect("client exits");
    let stdout = String::from_utf8_lossy(&waited.stdout);
    let stderr = String::from_utf8_lossy(&waited.stderr);
    // Not "cancelled" with exit 1: the connection went away before the task finished.
    assert_eq!(waited.status.code(), Some(3), "{stdout}{stderr}");
    assert!(!stdout.contains("cancelled"), "{stdout}");
    // It names the task, and why the connection closed.
    assert!(
        stderr.contains("the node shut down before task 1 finished")
            && stderr.contains("runs it again when it restarts"),
        "{stderr}"
    );
    // With --json a script reads the same on stdout: the tasks the node took, and why the
    // wait ended without their outcomes (exit 3 alone is also a node never reached).
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON document");
    assert_eq!(report["ids"], serde_json::json!([1]), "{report}");
    assert!(
        report["disconnected"]
            .as_str()
            .is_some_and(|why| why.contains("shut down")),
        "{report}"
    );
    assert_eq!(node.wait_exit(), Some(0));

    // And it does run again.
    let node = RunningNode::start_in(data.path(), &args);
    let task = wait_for_state(&node, 1, "running");
    assert_eq!(task["spec"], "sleep 1m");
    assert_eq!(task["attempt"], 2);
}

#[test]
fn a_node_that_never_answers_and_an_address_without_a_port_are_told_apart() {
    // `goliath status` at an address: its exit code and what it said.
    let status_at = |address: &str| {
        let output = goliath()
            .args(["status", "--node", address])
            .output()
            .expect("runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // A listener that never reads: the connection opens (the kernel accepts it), no
    // handshake answer comes — as from a node stopped with SIGSTOP.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = silent.local_addr().expect("addr").to_string();
    let (code, stderr) = status_at(&address);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("did not answer within"), "{stderr}");
    assert!(!stderr.contains("another protocol"), "{stderr}");
    drop(silent);

    // A listener that accepts and closes at once, as a node killed mid-handshake does: a
    // dropped connection (3, worth a retry), not another protocol (4).
    let closing = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = closing.local_addr().expect("addr").to_string();
    let closer = std::thread::spawn(move || {
        if let Ok((stream, _)) = closing.accept() {
            drop(stream);
        }
    });
    let (code, stderr) = status_at(&address);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("closed the connection before answering"),
        "{stderr}"
    );
    closer.join().expect("joins");

    for args in [
        ["status", "--node", "127.0.0.1"],
        ["console", "--connect", "localhost"],
    ] {
        let output = goliath().args(args).output().expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("is not HOST:PORT"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_submission_during_the_shutdown_grace_is_told_the_node_is_shutting_down() {
    // With gossip on, a stop leaves the cluster first (which takes a moment): tasks sent
    // meanwhile used to be accepted.
    let mut node = RunningNode::start(&[
        "--workers",
        "1",
        "--set",
        "shutdown.grace=5s",
        "--gossip",
        "127.0.0.1:0",
        "--name",
        "grace-test",
    ]);
    let id = node.json(&["submit", "spin 60s"])["ids"][0]
        .as_u64()
        .expect("id");
    wait_for_state(&node, id, "running");
    assert!(node.client(&["shutdown"]).status.success());
    // Refused from the moment `shutdown` has answered.
    let output = node.client(&["submit", "fib 1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    // Still answering while the running task has its grace (a spin between two slices
    // shows as queued).
    let state = node.json(&["task", &id.to_string()])["state"].clone();
    assert!(state == "running" || state == "queued", "{state}");
    assert_eq!(node.wait_exit(), Some(0));
}

#[test]
fn a_node_whose_default_name_changed_with_gossip_is_told_where_its_log_is() {
    // Named by default, a node is the host name without gossip and host-PORT with it: its
    // default data directory moves, and its tasks looked lost without a word.
    let data_home = tempfile::tempdir().expect("temp dir");
    let start = |extra: &[&str]| {
        let port = common::binary::free_tcp_port();
        let address = format!("127.0.0.1:{port}");
        let mut args = vec!["--workers", "1"];
        args.extend_from_slice(extra);
        let data_home = data_home.path().to_str().expect("a UTF-8 temporary path");
        let mut child =
            common::binary::spawn_node(&address, &args, &[("XDG_DATA_HOME", data_home)]);
        let stderr = child.stderr.take().expect("stderr");
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.push_str(&line);
            log.push('\n');
            if line.contains("serving the goliath protocol") {
                break;
            }
        }
        let stop = goliath()
            .args(["shutdown", "--wait", "--node", &address])
            .output()
            .expect("runs");
        assert!(stop.status.success(), "{log}");
        let _ = child.wait();
        log
    };
    let first = start(&[]);
    assert!(!first.contains("default name"), "{first}");
    let gossip_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free port")
        .port();
    let gossip = format!("127.0.0.1:{gossip_port}");
    let second = start(&["--gossip", &gossip]);
    let first_dir = std::fs::read_dir(data_home.path().join("goliath"))
        .expect("lists")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| !name.ends_with(&format!("-{gossip_port}")))
        .expect("the first node's directory");
    assert!(
        second.contains("another default name") && second.contains(&first_dir),
        "{second}"
    );
    // A directory a running node holds is that node's: not named to a third one.
    let home = data_home.path().to_str().expect("a UTF-8 temporary path");
    let _holder = RunningNode::start_with_env(
        &data_home.path().join("goliath").join(&first_dir),
        &["--workers", "1"],
        &[("XDG_DATA_HOME", home)],
    );
    let other_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free port")
        .port();
    let third = start(&["--gossip", &format!("127.0.0.1:{other_port}")]);
    assert!(!third.contains(&format!("{first_dir},")), "{third}");
    assert!(!third.contains(&format!("{first_dir} holds")), "{third}");
}

#[test]
fn an_exec_whose_interpreter_is_missing_says_so_not_that_the_file_is() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("uses-a-missing-shell");
    std::fs::write(&script, "#!/nonexistent/goliath-test-shell -e\necho hi\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let node = RunningNode::start(&["--workers", "1", "--set", "exec.remote=true"]);
    let spec = format!("exec -- {}", script.display());
    let output = node.client(&["submit", "--wait", "--json", &spec]);
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    let error = answer["tasks"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("/nonexistent/goliath-test-shell") && error.contains("#!"),
        "{answer}"
    );
}

#[test]
fn an_invalid_rust_log_is_named_not_dropped_without_a_word() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = RunningNode::start_with_env(
        dir.path(),
        &["--workers", "1"],
        &[("RUST_LOG", "goliath=verbose")],
    );
    let log = node.log();
    assert!(
        log.contains("RUST_LOG") && log.contains("is not a log filter"),
        "{log}"
    );
}

#[test]
fn a_hangup_stops_a_node_gracefully_as_sigterm_does() {
    let mut node = RunningNode::start(&["--workers", "1"]);
    common::signal(node.child.id(), "-HUP");
    assert_eq!(node.wait_exit(), Some(0), "{}", node.log());
    assert!(node.log().contains("shutting down"), "{}", node.log());
}

#[test]
fn a_node_whose_log_nobody_reads_any_more_keeps_serving_and_stops_cleanly() {
    // `goliath node 2>&1 | head -1`: the reader of the log goes away.
    let port = common::binary::free_tcp_port();
    let address = format!("127.0.0.1:{port}");
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().to_str().expect("a UTF-8 temporary path");
    let mut child =
        common::binary::spawn_node(&address, &["--workers", "1", "--data-dir", data_dir], &[]);
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains("serving the goliath protocol")),
        "the node announced itself"
    );
    drop(lines);
    let client = |args: &[&str]| {
        goliath()
            .arg(args[0])
            .args(["--node", &address])
            .args(&args[1..])
            .output()
            .expect("client runs")
    };
    // Each of these makes the node log a line into the closed pipe.
    for _ in 0..3 {
        let output = client(&["submit", "--wait", "fib 5"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(client(&["shutdown"]).status.success());
    let status = common::eventually(|| {
        child
            .try_wait()
            .expect("wait")
            .ok_or_else(|| "the node has not stopped".to_string())
    });
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_second_sigint_during_the_grace_period_stops_at_once_also_while_leaving_the_cluster() {
    // Gossip on: leaving the cluster is the first step of the shutdown, and a second signal
    // sent then used to be taken by the first wait's handler and lost.
    let mut node = RunningNode::start(&[
        "--workers",
        "1",
        "--gossip",
        "127.0.0.1:0",
        "--set",
        "shutdown.grace=60s",
    ]);
    let id = node.json(&["submit", "spin 120s"])["ids"][0]
        .as_u64()
        .expect("id");
    wait_for_state(&node, id, "running");
    // 130 at once, not 0 after the 60 s grace (wait_exit gives up long before that).
    assert_eq!(signal_twice(&mut node, "-INT"), Some(130), "{}", node.log());
}

/// Sends `signal` to `node`, waits until its shutdown has begun, sends it again; the exit code.
fn signal_twice(node: &mut RunningNode, signal: &str) -> Option<i32> {
    let pid = node.child.id();
    common::signal(pid, signal);
    common::eventually(|| {
        node.log()
            .contains("send SIGINT/SIGTERM/SIGHUP again")
            .then_some(())
            .ok_or_else(|| format!("no shutdown: {}", node.log()))
    });
    common::signal(pid, signal);
    node.wait_exit()
}

#[test]
fn the_advice_for_a_taken_protocol_port_starts_a_second_node_when_followed() {
    let data = tempfile::tempdir().expect("temp dir");
    let home = data.path().to_str().expect("UTF-8 path");
    let env = [("XDG_DATA_HOME", home)];
    // The first node in the default data directory of its name.
    let first_dir = data.path().join("goliath").join("here");
    let first =
        RunningNode::start_with_env(&first_dir, &["--name", "here", "--workers", "1"], &env);
    // A second one with the same settings cannot have its port...
    let taken = goliath()
        .args(["node", "--listen", &first.address, "--name", "here"])
        .env("XDG_DATA_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert_eq!(taken.status.code(), Some(1), "{stderr}");
    let advice = "--listen 127.0.0.1:0` (and another --name if the node there is also named here";
    assert!(stderr.contains(advice), "{stderr}");
    // ...and doing as it says starts one (without the name it would take the first one's
    // data directory and be refused).
    let mut second =
        common::binary::spawn_node("127.0.0.1:0", &["--name", "there", "--workers", "1"], &env);
    let log = common::lines_of(second.stderr.take().expect("stderr"));
    let deadline = Instant::now() + common::LIVENESS;
    loop {
        let line = log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the second node starts");
        if line.contains("serving the goliath protocol") {
            break;
        }
        assert!(!line.contains("ERROR"), "{line}");
    }
    let _ = second.kill();
    let _ = second.wait();
    drop(first);
}

#[test]
fn a_second_signal_kills_the_running_exec_programs_and_what_they_started() {
    let marker = format!("GOLIATH_TEST_SECOND_SIGNAL={}", std::process::id());
    let (name, value) = marker.split_once('=').expect("a variable");
    let data = tempfile::tempdir().expect("temp dir");
    let mut node = RunningNode::start_with_env(
        data.path(),
        &[
            "--workers",
            "1",
            "--set",
            "exec.remote=true",
            "--set",
            "shutdown.grace=60s",
        ],
        &[(name, value)],
    );
    // The shell forks both sleeps: killing the shell alone would leave them running.
    let id = node.json(&["submit", "exec -- sh -c 'sleep 3601 & sleep 3602'"])["ids"][0]
        .as_u64()
        .expect("id");
    wait_for_state(&node, id, "running");
    // The shell and its two sleeps.
    common::eventually(
        || match common::processes_with(&marker, "sleep 360").len() {
            3 => Ok(()),
            count => Err(format!("{count} of the 3 processes running")),
        },
    );
    assert_eq!(
        signal_twice(&mut node, "-TERM"),
        Some(130),
        "{}",
        node.log()
    );
    common::eventually(|| match common::processes_with(&marker, "sleep 360") {
        left if left.is_empty() => Ok(()),
        left => Err(format!("left running: {left:?}")),
    });
    assert!(
        node.log()
            .contains("1 task in flight runs again at the next start (killed the process groups of 1 running exec task)"),
        "{}",
        node.log()
    );
}

#[test]
fn a_request_larger_than_the_node_takes_is_a_usage_error_before_it_is_sent() {
    let node = RunningNode::start(&["--workers", "1", "--set", "net.max_frame=4KiB"]);
    let specs: Vec<String> = (0..200)
        .map(|i| format!("echo spec number {i:>40}"))
        .collect();
    let mut args = vec!["submit"];
    args.extend(specs.iter().map(String::as_str));
    let output = node.client(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("more than the 4096 the node takes in one frame"),
        "{stderr}"
    );
    // The node still serves, and got nothing.
    let status = node.client(&["status", "--json"]);
    assert!(status.status.success());
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["counts"]["submitted"], 0, "{status}");
}

#[test]
fn a_wait_stopped_by_ctrl_c_names_the_tasks_it_leaves_on_the_node_and_how_to_stop_them() {
    let node = RunningNode::start(&["--workers", "1"]);
    let mut command = goliath();
    command.args(["submit", "--node", &node.address, "--wait", "sleep 60s x3"]);
    let mut waiting = common::pty::PtyProcess::spawn(&command, 12, 200);
    // On a terminal the wait says what it waits for once the node has the tasks durably.
    let screen = waiting.wait_for("the tasks waited for", |screen| {
        screen.contains("waiting for 3 tasks (")
    });
    let ids = screen
        .split("waiting for 3 tasks (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("ids in the note")
        .to_string();
    waiting.type_text("\x03");
    assert_eq!(waiting.wait_exit(), Some(130), "{}", waiting.contents());
    waiting.wait_for("what the stopped wait leaves on the node", |screen| {
        screen.contains(&format!(
            "SIGINT: stopped waiting; the node has the 3 tasks ({ids})"
        )) && screen.contains(&format!(
            "`goliath cancel --node {} {ids}` stops them",
            node.address
        ))
    });
    // The tasks were left running, and the cancel the message suggests stops all of them.
    let mut cancel = vec!["cancel"];
    cancel.extend(ids.split(' '));
    let cancelled = node.client(&cancel);
    assert!(
        cancelled.status.success(),
        "{}",
        String::from_utf8_lossy(&cancelled.stderr)
    );
    let listed = node.json(&["tasks"]);
    let states: Vec<&str> = listed["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|task| task["state"].as_str())
        .collect();
    assert_eq!(states.len(), 3, "{listed}");
    assert!(
        states
            .iter()
            .all(|state| *state == "cancelled" || *state == "running"),
        "{listed}"
    );
    for task in listed["tasks"].as_array().expect("tasks") {
        wait_for_state(&node, task["id"].as_u64().expect("id"), "cancelled");
    }
}

#[test]
fn a_watch_ends_cleanly_when_the_node_shuts_down_and_with_an_error_when_it_dies() {
    for stop in ["shutdown", "SIGKILL"] {
        let mut node = RunningNode::start(&["--workers", "1", "--set", "shutdown.grace=100ms"]);
        // Running through the stop: interrupted, so it runs again at the next start.
        let interrupted = node.json(&["submit", "sleep 60s"])["ids"][0]
            .as_u64()
            .expect("id");
        let mut watch = goliath()
            .args(["watch", "--json", "--node", &node.address])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("watch runs");
        let lines = common::lines_of(watch.stdout.take().expect("stdout"));
        // Watching once one of the tasks submitted meanwhile shows up.
        let deadline = Instant::now() + common::LIVENESS;
        loop {
            node.json(&["submit", "fib 5"]);
            if lines.recv_timeout(Duration::from_millis(100)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "the watch never showed an event");
        }
        if stop == "shutdown" {
            assert!(node.client(&["shutdown", "--wait"]).status.success());
        } else {
            common::signal(node.child.id(), "-KILL");
        }
        let watched = watch.wait_with_output().expect("watch ends");
        let stderr = String::from_utf8_lossy(&watched.stderr);
        // Not reported as ended: it did not end.
        let rest: Vec<String> = lines.iter().collect();
        assert!(
            !rest
                .iter()
                .any(|line| line.contains(&format!("\"id\":{interrupted},"))
                    && line.contains("cancelled")),
            "{rest:?}"
        );
        // The stream itself tells the two apart: a lost node ends it with an error line.
        let last = rest.last().cloned().unwrap_or_default();
        if stop == "shutdown" {
            // The node said it stopped: the watch is over, not broken.
            assert_eq!(watched.status.code(), Some(0), "{stderr}");
            assert!(
                stderr.contains("the node shut down; the watch is over"),
                "{stderr}"
            );
            assert!(!last.starts_with("{\"error\""), "{rest:?}");
        } else {
            assert_eq!(watched.status.code(), Some(3), "{stderr}");
            assert!(
                stderr.contains("connection to the node closed") && !stderr.contains("shut down"),
                "{stderr}"
            );
            let error: serde_json::Value = serde_json::from_str(&last).expect("a JSON line");
            assert_eq!(error["error"]["exit_code"], 3, "{rest:?}");
        }
        let _ = node.wait_exit();
    }
}

#[test]
fn a_watch_with_snapshots_says_when_the_node_goes_silent_and_when_it_answers_again() {
    let node = RunningNode::start(&["--workers", "1"]);
    let mut watch = goliath()
        .args(["watch", "--snapshots", "100ms", "--node", &node.address])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch runs");
    let mut stdout = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let first = stdout.next().expect("a snapshot").expect("line");
    assert!(first.contains("queued"), "{first}");
    std::thread::spawn(move || for _ in stdout.by_ref() {});
    let said = common::lines_of(watch.stderr.take().expect("stderr"));
    common::signal(node.child.id(), "-STOP");
    let silent = said.recv_timeout(common::LIVENESS);
    common::signal(node.child.id(), "-CONT");
    let silent = silent.expect("the silence is told");
    assert!(
        silent.contains("nothing from the node for") && silent.contains("stopped (SIGSTOP)"),
        "{silent}"
    );
    let back = said
        .recv_timeout(common::LIVENESS)
        .expect("the return is told");
    assert!(back.contains("the node answers again"), "{back}");
    let _ = watch.kill();
    let _ = watch.wait();

    // A JSON reader is told in the stream itself.
    let mut watch = goliath()
        .args([
            "watch",
            "--json",
            "--snapshots",
            "100ms",
            "--node",
            &node.address,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch runs");
    let lines = common::lines_of(watch.stdout.take().expect("stdout"));
    let next_with = |key: &str| loop {
        let line = lines
            .recv_timeout(common::LIVENESS)
            .unwrap_or_else(|_| panic!("a {key} line"));
        let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        if value.get(key).is_some() {
            break value;
        }
    };
    next_with("snapshot");
    common::signal(node.child.id(), "-STOP");
    let silent = next_with("silent");
    common::signal(node.child.id(), "-CONT");
    assert!(silent["silent"]["seconds"].is_u64(), "{silent}");
    let back = next_with("answering");
    assert!(back["answering"]["after_seconds"].is_u64(), "{back}");
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn a_double_dash_before_the_specs_makes_option_like_words_spec_text() {
    let node = RunningNode::start(&["--workers", "1"]);
    let refused = node.client(&["submit", "--wait", "echo", "--json"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("put `--` before the specs"), "{stderr}");
    let taken = node.json(&["submit", "--wait", "--", "echo", "--json"]);
    assert_eq!(taken["tasks"][0]["spec"], "echo --json", "{taken}");
    assert_eq!(taken["tasks"][0]["output"]["text"], "--json", "{taken}");
}

#[test]
fn a_nodes_gossip_port_given_for_its_protocol_port_is_named_as_such() {
    let node = RunningNode::start(&[
        "--workers",
        "1",
        "--gossip",
        "127.0.0.1:0",
        "--name",
        "ports-test",
    ]);
    let gossip = common::eventually(|| {
        node.log()
            .split("gossip=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .ok_or_else(|| "gossip has not started".to_string())
    });
    let output = goliath()
        .args(["status", "--node", &gossip])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("maybe a node's gossip port"), "{stderr}");
    assert!(!stderr.contains("Start one there"), "{stderr}");
}

#[test]
fn a_refused_batch_counts_as_nothing_submitted_and_exec_refusals_name_the_setting_to_change() {
    let node = RunningNode::start(&[
        "--set",
        "wal.segment_size=64KiB",
        "--set",
        "exec.enabled=false",
    ]);
    let text = "x".repeat(4000);
    let specs: Vec<String> = (0..20).map(|_| format!("echo {text}")).collect();
    let mut args = vec!["submit"];
    args.extend(specs.iter().map(String::as_str));
    let output = node.client(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused: {stderr}");
    assert!(stderr.contains("half of wal.segment_size"), "{stderr}");
    let status = node.json(&["status"]);
    assert_eq!(status["counts"]["submitted"], 0, "{status}");
    assert_eq!(status["arena"]["in_use"], 0, "{status}");
    assert!(
        node.client(&["submit", "--wait", "fib 10"])
            .status
            .success()
    );
    assert_eq!(node.json(&["status"])["counts"]["submitted"], 1);
    // exec.enabled = false is the refusal to name, not exec.remote (also false).
    let output = node.client(&["submit", "exec", "--", "true"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("exec.enabled = false") && !stderr.contains("exec.remote"),
        "{stderr}"
    );
    // Status says beforehand whether an exec over the network would be taken.
    let status = node.json(&["status"]);
    assert_eq!(status["node"]["exec_remote"], false, "{status}");
    let remote = RunningNode::start(&["--set", "exec.remote=true"]);
    assert_eq!(remote.json(&["status"])["node"]["exec_remote"], true);
    let local = RunningNode::start(&[]);
    let text = local.client(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("exec      local only: over the network refused (exec.remote = false)"),
        "{text}"
    );
    assert_eq!(local.json(&["status"])["node"]["exec_remote"], false);
}

#[test]
fn status_of_a_log_that_never_syncs_says_so_and_counts_per_write() {
    let node = RunningNode::start(&["--set", "wal.sync=never"]);
    // Its start log says the config was changed from the command line.
    let log = node.log();
    assert!(
        log.lines().any(|line| line.contains("starting node")
            && line.contains("changed by")
            && line.contains("--set")),
        "{log}"
    );
    let submitted = node.client(&["submit", "--wait", "fib 10 x20"]);
    assert!(submitted.status.success());
    let status = node.client(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("wal.sync = never acknowledges once written"),
        "{text}"
    );
    assert!(
        text.contains("per write") && !text.contains("per fsync"),
        "{text}"
    );
    // And counts them: the records written, per write.
    let wal = &node.json(&["status"])["wal"];
    assert!(wal["records"].as_u64() > Some(0), "{wal}");
    assert!(wal["records_per_fsync"].as_f64() > Some(0.0), "{wal}");
}

#[test]
fn a_watch_that_leaves_frees_its_connection_also_at_the_in_flight_limit() {
    // One connection, one request in flight: the watch holds the only permit, so the node
    // reads nothing more from it, and must still see the client leave.
    let node = RunningNode::start(&[
        "--set",
        "net.max_connections=1",
        "--set",
        "net.max_inflight=1",
    ]);
    // Without snapshots: a watch that writes would be seen to leave at its next write.
    let start_watch = || {
        goliath()
            .args(["watch", "--node", &node.address])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watch runs")
    };
    let mut watch = start_watch();
    common::eventually(|| {
        // A probe that held the only connection as the watch came is refused it (busy):
        // the watch exits and starts again.
        if watch.try_wait().expect("waits").is_some() {
            watch = start_watch();
        }
        let busy = node.client(&["status"]);
        (busy.status.code() == Some(5) && watch.try_wait().expect("waits").is_none())
            .then_some(())
            .ok_or_else(|| "the watch has not taken the connection yet".to_string())
    });
    watch.kill().expect("killed");
    watch.wait().expect("reaped");
    common::eventually(|| {
        let status = node.client(&["status"]);
        status.status.success().then_some(()).ok_or_else(|| {
            format!(
                "the node still refuses: {}",
                String::from_utf8_lossy(&status.stderr)
            )
        })
    });
}

/// Runs `goliath node` under the open-file limit `ulimit` sets with `limit` (`-n 96`: soft
/// and hard, which the node cannot raise; `-Sn 64`: soft only), its standard error on a
/// channel of lines.
fn node_with_open_file_limit(
    limit: &str,
    address: &str,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit {limit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_goliath"))
        .args(["node", "--listen", address])
        .args(args)
        .env_remove("GOLIATH_CONFIG")
        .env_remove("RUST_LOG")
        .env("XDG_CONFIG_HOME", "/nonexistent-goliath-test")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let lines = common::lines_of(child.stderr.take().expect("stderr"));
    (child, lines)
}

/// Waits for a line of `lines` containing `wanted`; panics naming what came instead if the
/// node stops first (its stream ends) or none comes within the liveness bound.
fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, wanted: &str, seen: &mut String) {
    let deadline = Instant::now() + common::LIVENESS;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(wanted) {
                    return;
                }
            }
            Err(_) => panic!("no line with {wanted:?}; the node's log:\n{seen}"),
        }
    }
}

#[test]
fn a_node_out_of_file_descriptors_holds_acknowledgements_until_one_is_free_then_goes_on() {
    use goliath::runtime::net::client::ConnectOptions;
    use goliath::runtime::net::{Client, Hello, Request, Response, SubmitRequest, frame};

    let data = tempfile::tempdir().expect("temp dir");
    let address = format!("127.0.0.1:{}", common::binary::free_tcp_port());
    let (mut child, lines) = node_with_open_file_limit(
        "-n 96",
        &address,
        &[
            "--data-dir",
            data.path().to_str().expect("utf-8"),
            "--workers",
            "1",
            "--set",
            "wal.segment_size=64KiB",
            "--set",
            "wal.checkpoint_every=64KiB",
        ],
    );
    let mut log = String::new();
    wait_for_line(&lines, "serving the goliath protocol", &mut log);
    // Named at start: the hard limit leaves net.max_connections no room.
    assert!(log.contains("the open-file limit (96"), "{log}");

    // A client connected while descriptors are left, submitting once told to, until told
    // to stop. Whether a given segment finds no descriptor is a race: the node's own
    // closes (the old segment's, the checkpointer's) free one now and then, and the accept
    // loop, the preparer, the checkpointer and the writer each may take it first. Batches
    // go on until the writer has waited at least once.
    let (go, told) = std::sync::mpsc::channel::<()>();
    let (connected, ready) = std::sync::mpsc::channel::<()>();
    const MAX_BATCHES: usize = 400;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_seen = std::sync::Arc::clone(&stop);
    let submitter_address = address.clone();
    let submitter = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let client = Client::connect(&submitter_address, &ConnectOptions::default())
                .await
                .expect("connects");
            connected.send(()).expect("test waits");
            told.recv().expect("told to go");
            let mut acknowledged = 0;
            for batch in 0..MAX_BATCHES {
                if stop_seen.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let specs = (0..100)
                    .map(|line| format!("echo batch {batch} line {line} {}", "x".repeat(64)))
                    .collect();
                let request = Request::Submit(SubmitRequest {
                    specs,
                    idempotency_key: None,
                    wait: false,
                    report_ids: false,
                });
                match client.request(request).await {
                    Ok(Response::Submitted { ids, .. }) => acknowledged += ids.len(),
                    other => return Err(format!("batch {batch}: {other:?}")),
                }
            }
            Ok(acknowledged)
        })
    });
    ready
        .recv_timeout(common::LIVENESS)
        .expect("the submitter connects");

    // Every descriptor the node has left taken by clients that said hello and stay.
    let opening = frame::opening(
        &Hello {
            client: "holder".into(),
            cluster: "goliath".into(),
        },
        1 << 20,
    )
    .expect("hello");
    let held: Vec<TcpStream> = (0..150)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).expect("the kernel takes it");
            stream.write_all(&opening).expect("hello sent");
            stream
        })
        .collect();
    wait_for_line(&lines, "no file descriptor left", &mut log);

    // Every 100 tasks take about a quarter of a 64 KiB segment: the log needs new ones, and
    // in time finds no descriptor to create one. It waits, and says so, instead of failing
    // for good.
    go.send(()).expect("submitter waits");
    wait_for_line(
        &lines,
        "no file descriptor to create the next segment",
        &mut log,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the node stopped: {log}"
    );
    drop(held);
    let acknowledged = submitter
        .join()
        .expect("submitter")
        .unwrap_or_else(|error| panic!("{error}; the node's log:\n{log}"));
    assert!(acknowledged >= 100, "{acknowledged} acknowledged");
    wait_for_line(&lines, "a file descriptor came free", &mut log);

    // The node goes on whole: the log healthy, every task accepted, and checkpoints
    // written as more segments close.
    let node_address = address.clone();
    let status = || {
        let output = goliath()
            .args(["status", "--json", "--node", &node_address])
            .output()
            .expect("status runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("JSON")
    };
    let before = status();
    assert_eq!(before["wal"]["healthy"], true, "{before}");
    assert_eq!(
        before["counts"]["submitted"].as_u64(),
        Some(acknowledged as u64),
        "every task acknowledged, and none more: {before}"
    );
    let checkpoints = before["wal"]["checkpoints"].as_u64().expect("checkpoints");
    let deadline = Instant::now() + common::LIVENESS;
    loop {
        let more = goliath()
            .args([
                "submit",
                "--node",
                &address,
                "echo",
                &"y".repeat(200),
                "x200",
            ])
            .output()
            .expect("submit runs");
        assert!(
            more.status.success(),
            "{}",
            String::from_utf8_lossy(&more.stderr)
        );
        let now = status();
        // With descriptors again, the next segment is made ready ahead again too.
        if now["wal"]["checkpoints"].as_u64() > Some(checkpoints)
            && now["wal"]["checkpoint_error"].is_null()
            && now["wal"]["next_segment_error"].is_null()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint written again: {now}"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_node_raises_a_low_soft_open_file_limit_to_its_hard_limit() {
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    let wanted = hard.map_or(1 << 20, |hard| hard.min(1 << 20));
    assert!(
        wanted > 64,
        "the hard limit ({hard:?}) leaves nothing to raise"
    );
    let data = tempfile::tempdir().expect("temp dir");
    let address = format!("127.0.0.1:{}", common::binary::free_tcp_port());
    let (mut child, lines) = node_with_open_file_limit(
        "-Sn 64",
        &address,
        &["--data-dir", data.path().to_str().expect("utf-8")],
    );
    let mut log = String::new();
    wait_for_line(&lines, "serving the goliath protocol", &mut log);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).expect("limits");
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .expect("a Max open files line");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(soft, wanted.to_string(), "{limits}");
    assert!(
        !log.contains("open-file limit"),
        "no warning with room: {log}"
    );
}

#[test]
fn exec_tasks_a_restart_with_exec_off_cannot_run_are_named_as_failed_not_passed_over() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut first = RunningNode::start_in(
        data.path(),
        &["--workers", "1", "--set", "exec.remote=true"],
    );
    let submitted = first.json(&["submit", "exec -- sleep 600", "sleep 10m"]);
    let exec_id = submitted["ids"][0].as_u64().expect("exec id");
    let sleep_id = submitted["ids"][1].as_u64().expect("sleep id");
    wait_for_state(&first, exec_id, "running");
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    drop(first);

    let second = RunningNode::start_in(data.path(), &["--set", "exec.enabled=false"]);
    let log = second.log();
    let warning = log
        .lines()
        .find(|line| line.contains("cannot run on this start"))
        .unwrap_or_else(|| panic!("no warning of the failed task: {log}"));
    assert!(
        warning.contains("WARN")
            && warning.contains("1 task recovered")
            && warning.contains(&format!("ids {exec_id})"))
            && warning.contains("exec.enabled = false"),
        "{warning}"
    );
    let status = second.client(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("recovered 1 task to run again") && status.contains("1 ended at start"),
        "{status}"
    );
    assert_eq!(
        second.json(&["task", &exec_id.to_string()])["state"],
        "failed"
    );
    assert_eq!(
        second.json(&["task", &sleep_id.to_string()])["state"],
        "running"
    );
}
