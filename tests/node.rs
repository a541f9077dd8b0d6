//! The node end to end: real worker threads, timers and child processes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{config, wait_finished, wait_running};
use goliath::runtime::{
    Busy, CancelOutcome, CompletionReceiver, CompletionSender, KindArgs, LookupError, Node,
    NodeBuilder, Step, StepContext, SubmitError, TaskId, TaskInfo, TaskKind, TaskOutput, TaskQuery,
    TaskSpec, TaskState, completion_queue,
};

fn submit(node: &Node, text: &str) -> goliath::runtime::TaskId {
    let ids = node
        .submit_text(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(ids.len(), 1);
    ids[0]
}

#[test]
fn builtin_kinds_compute_correct_results() {
    let node = Node::start(config(2, 1024)).expect("node starts");
    let cases: Vec<(&str, TaskOutput)> = vec![
        ("fib 30", TaskOutput::Number(832_040)),
        ("fib 10", TaskOutput::Number(55)),
        ("primes 1000000", TaskOutput::Number(78_498)),
        ("primes 100", TaskOutput::Number(25)),
        ("primes 2", TaskOutput::Number(1)),
        ("primes 1", TaskOutput::Number(0)),
        ("echo some text", TaskOutput::Text("some text".into())),
        ("spin 20ms", TaskOutput::None),
        ("sleep 30ms", TaskOutput::None),
    ];
    let ids: Vec<_> = cases.iter().map(|(text, _)| submit(&node, text)).collect();
    for ((text, expected), id) in cases.iter().zip(ids) {
        let info = wait_finished(&node, id);
        assert_eq!(info.state, TaskState::Succeeded, "{text}: {:?}", info.error);
        assert_eq!(info.output.as_ref(), Some(expected), "{text}");
        assert_eq!(info.spec, *text);
    }
    // hash is deterministic and depends on the size.
    let a = wait_finished(&node, submit(&node, "hash 1MiB"));
    let b = wait_finished(&node, submit(&node, "hash 1MiB"));
    let c = wait_finished(&node, submit(&node, "hash 1000"));
    assert_eq!(a.output, b.output);
    assert_ne!(a.output, c.output);
    assert!(matches!(&a.output, Some(TaskOutput::Text(t)) if t.starts_with("crc32c:")));
}

#[test]
fn long_compute_runs_in_many_slices_and_still_gets_the_right_answer() {
    let mut cfg = config(1, 64);
    cfg.scheduler.slice = Duration::from_micros(100);
    let node = Node::start(cfg).expect("node starts");
    let fib = submit(&node, "fib 32");
    let primes = submit(&node, "primes 10000000");
    let fib = wait_finished(&node, fib);
    let primes = wait_finished(&node, primes);
    assert_eq!(fib.output, Some(TaskOutput::Number(2_178_309)));
    assert_eq!(primes.output, Some(TaskOutput::Number(664_579)));
    let snapshot = node.snapshot(0);
    assert!(
        snapshot.workers[0].slices > 10,
        "ran in slices: {:?}",
        snapshot.workers[0]
    );
}

#[test]
fn a_task_in_a_slot_a_cancelled_task_left_mid_way_starts_from_zero() {
    // One slot: every task takes the one the last left.
    let mut cfg = config(1, 1);
    cfg.scheduler.slice = Duration::from_micros(100);
    let node = Node::start(cfg).expect("node starts");
    let long = submit(&node, "fib 45");
    wait_running(&node, long);
    common::eventually(|| {
        let slices = node.snapshot(0).workers[0].slices;
        (slices > 5).then_some(()).ok_or(format!("{slices} slices"))
    });
    assert_eq!(node.cancel(long), Ok(CancelOutcome::Requested));
    assert_eq!(wait_finished(&node, long).state, TaskState::Cancelled);
    // Its progress (the recursion's path and partial sum) went with it.
    let next = wait_finished(&node, submit(&node, "fib 32"));
    assert_eq!(next.output, Some(TaskOutput::Number(2_178_309)));
}

#[test]
fn cancel_queued_task_never_starts_it() {
    let node = Node::start(config(1, 64)).expect("node starts");
    let blocker = submit(&node, "spin 30s");
    wait_running(&node, blocker);
    let queued = submit(&node, "spin 30s");
    assert_eq!(node.task(queued).expect("known").state, TaskState::Queued);
    assert_eq!(node.cancel(queued), Ok(CancelOutcome::Requested));
    assert_eq!(node.cancel(blocker), Ok(CancelOutcome::Requested));
    let queued = wait_finished(&node, queued);
    assert_eq!(queued.state, TaskState::Cancelled);
    assert_eq!(queued.run_us, 0, "a cancelled queued task does no work");
    let blocker = wait_finished(&node, blocker);
    assert_eq!(blocker.state, TaskState::Cancelled);
    assert!(blocker.run_us < 30_000_000);
}

#[test]
fn a_lookup_on_a_node_without_tasks_says_it_has_accepted_none() {
    let node = Node::start(config(1, 64)).expect("node starts");
    let error = node.task(TaskId(1)).expect_err("no task yet");
    assert_eq!(
        error.to_string(),
        "no task 1 on this node (it has accepted no task yet)"
    );
    let id = submit(&node, "echo one");
    let error = node.task(TaskId(id.0 + 1)).expect_err("not yet");
    assert_eq!(
        error.to_string(),
        format!(
            "no task {} on this node (ids so far go up to {})",
            id.0 + 1,
            id.0
        )
    );
}

#[test]
fn a_cancel_of_many_ids_answers_each_id_as_a_cancel_of_it_alone() {
    let mut cfg = config(1, 64);
    // Two rings (one worker, one shared) of four tasks each.
    cfg.history.tasks = 8;
    let node = Node::start(cfg).expect("node starts");
    // Echo finishes at submit, in the shared ring: the first of ten has left it.
    let echoes: Vec<TaskId> = (0..10)
        .map(|n| submit(&node, &format!("echo {n}")))
        .collect();
    let fib = wait_finished(&node, submit(&node, "fib 10")).id;
    let running = submit(&node, "spin 30s");
    wait_running(&node, running);
    let queued = submit(&node, "spin 30s");
    let newest = queued.0;
    let ids = [
        echoes[0],
        echoes[9],
        fib,
        running,
        queued,
        queued,
        TaskId(newest + 1),
        TaskId(newest + 100_000),
        TaskId(0),
    ];
    let results = node.cancel_many_pending(&ids);
    let answers: Vec<(TaskId, String)> = results
        .into_iter()
        .map(|(id, result)| {
            let answer = match result {
                Ok((CancelOutcome::Requested, _)) => "requested".to_string(),
                Ok((CancelOutcome::AlreadyFinished(state), _)) => format!("finished {state}"),
                Err(goliath::runtime::CancelError::Lookup(LookupError::Forgotten { .. })) => {
                    "forgotten".to_string()
                }
                Err(goliath::runtime::CancelError::Lookup(LookupError::Unknown { .. })) => {
                    "unknown".to_string()
                }
                Err(error) => format!("error {error}"),
            };
            (id, answer)
        })
        .collect();
    let expected: Vec<(TaskId, String)> = ids
        .iter()
        .zip([
            "forgotten",
            "finished succeeded",
            "finished succeeded",
            "requested",
            "requested",
            "requested",
            "unknown",
            "unknown",
            "unknown",
        ])
        .map(|(id, answer)| (*id, answer.to_string()))
        .collect();
    assert_eq!(answers, expected);
    assert_eq!(wait_finished(&node, running).state, TaskState::Cancelled);
    assert_eq!(wait_finished(&node, queued).state, TaskState::Cancelled);
    // Each answer is what the cancel of that id alone says.
    assert!(matches!(
        node.cancel(echoes[0]),
        Err(goliath::runtime::CancelError::Lookup(
            LookupError::Forgotten { .. }
        ))
    ));
    assert_eq!(
        node.cancel(fib),
        Ok(CancelOutcome::AlreadyFinished(TaskState::Succeeded))
    );
    assert!(matches!(
        node.cancel(TaskId(newest + 1)),
        Err(goliath::runtime::CancelError::Lookup(
            LookupError::Unknown { .. }
        ))
    ));
}

#[test]
fn echo_completes_at_submit_even_when_every_worker_is_busy() {
    // Echo does no work: it must not wait behind compute for a worker.
    let node = Node::start(config(1, 64)).expect("node starts");
    let blocker = submit(&node, "spin 30s");
    wait_running(&node, blocker);
    let mut events = node.subscribe();
    let echo = submit(&node, "echo still answered");
    let info = node.task(echo).expect("known");
    assert_eq!(info.state, TaskState::Succeeded);
    assert_eq!(info.output, Some(TaskOutput::Text("still answered".into())));
    assert_eq!(info.worker, None, "it never visited a worker");
    let mut states = Vec::new();
    while let Ok(Some(event)) = events.try_recv() {
        if event.id == echo {
            states.push(event.state);
        }
    }
    assert_eq!(
        states,
        [TaskState::Queued, TaskState::Running, TaskState::Succeeded]
    );
    assert_eq!(node.cancel(blocker), Ok(CancelOutcome::Requested));
    assert_eq!(wait_finished(&node, blocker).state, TaskState::Cancelled);
}

#[test]
fn a_finished_event_finds_its_task_finished_with_its_reason() {
    // A watcher looks the task up when an event arrives (the protocol's watch does, to name
    // the task and say why it ended): by then the task must read as finished, not running.
    let node = Node::start(config(2, 64)).expect("node starts");
    let mut events = node.subscribe();
    let ids = [
        submit(&node, "spin 10s timeout=20ms"),
        submit(&node, "sleep 10s timeout=20ms"),
    ];
    let mut seen = Vec::new();
    while seen.len() < ids.len() {
        let event = events
            .recv_timeout(common::LIVENESS)
            .expect("events flow")
            .expect("an event before the deadline");
        if event.state.is_finished() {
            let info = node.task(event.id).expect("known");
            assert_eq!(info.state, TaskState::TimedOut, "{info:?}");
            // A spin's budget is time on a worker; a sleep's is wall time.
            let expected = if info.spec.starts_with("spin") {
                "timed out after 20ms on a worker"
            } else {
                "timed out after 20ms"
            };
            assert_eq!(info.error.as_deref(), Some(expected));
            seen.push(event.id);
        }
    }
    seen.sort();
    assert_eq!(seen, ids);
}

#[test]
fn a_sleep_task_runs_on_no_worker_in_its_events_either() {
    let node = Node::start(config(1, 16)).expect("node starts");
    let mut events = node.subscribe();
    let id = submit(&node, "sleep 10ms");
    loop {
        let event = events
            .recv_timeout(common::LIVENESS)
            .expect("events flow")
            .expect("an event before the deadline");
        if event.id == id && event.state != TaskState::Queued {
            // Running, then succeeded: neither names a worker, as `goliath task` does not.
            assert_eq!(event.worker, None, "{event:?}");
            if event.state.is_finished() {
                break;
            }
        }
    }
    assert_eq!(node.task(id).expect("known").worker, None);
}

/// Waits until every worker is parked; returns their parks so far.
fn parks_once_all_parked(node: &Node) -> u64 {
    common::eventually(|| {
        let workers = node.snapshot(0).workers;
        if workers
            .iter()
            .all(|w| w.activity == goliath::runtime::WorkerActivity::Parked)
        {
            Ok(workers.iter().map(|w| w.parks).sum())
        } else {
            Err(format!("workers never parked: {workers:?}"))
        }
    })
}

#[test]
fn echo_submissions_wake_no_worker() {
    // Echo finishes on the submitting thread; a worker woken for it finds nothing, spins and
    // parks again (the parks counter shows it), which cost every echo round trip over the
    // protocol a futex call and a worker's spin on a shared core.
    let node = Node::start(config(2, 1024)).expect("node starts");
    let before = parks_once_all_parked(&node);
    for round in 0..200 {
        let batch = [goliath::runtime::Submission {
            spec: TaskSpec::echo(&format!("batch {round}")),
            copies: 2,
        }];
        node.submit_batch(&batch, None, None).expect("submits");
        submit(&node, "echo single");
    }
    // A woken worker would be searching now, or parked again with one more park.
    std::thread::sleep(Duration::from_millis(50));
    let after = parks_once_all_parked(&node);
    assert_eq!(after, before, "workers were woken for echo tasks");
    // The counter does move when there is work: the test can see a wake-up.
    let id = submit(&node, "fib 1");
    wait_finished(&node, id);
    std::thread::sleep(Duration::from_millis(50));
    assert!(parks_once_all_parked(&node) > after);
}

#[test]
fn cancel_running_sleeping_and_exec_tasks() {
    let node = Node::start(config(2, 64)).expect("node starts");
    let spinning = submit(&node, "spin 60s");
    let sleeping = submit(&node, "sleep 60s");
    let child = submit(&node, "exec -- sleep 60");
    for id in [spinning, sleeping, child] {
        wait_running(&node, id);
    }
    std::thread::sleep(Duration::from_millis(50));
    for id in [spinning, sleeping, child] {
        assert_eq!(node.cancel(id), Ok(CancelOutcome::Requested));
    }
    for id in [spinning, sleeping, child] {
        let info = wait_finished(&node, id);
        assert_eq!(info.state, TaskState::Cancelled, "{}", info.spec);
    }
    let child = node.task(child).expect("in history");
    match child.output {
        Some(TaskOutput::Process(process)) => {
            assert_eq!(process.signal, Some(15), "SIGTERM ended it")
        }
        other => panic!("exec output: {other:?}"),
    }
    assert_eq!(
        node.cancel(spinning),
        Ok(CancelOutcome::AlreadyFinished(TaskState::Cancelled))
    );
}

#[test]
fn exec_that_ignores_sigterm_is_killed_after_the_grace() {
    let mut cfg = config(1, 64);
    cfg.exec.kill_grace = Duration::from_millis(100);
    let node = Node::start(cfg).expect("node starts");
    let id = submit(
        &node,
        "exec -- sh -c 'trap \"\" TERM; echo ready; sleep 60'",
    );
    wait_running(&node, id);
    std::thread::sleep(Duration::from_millis(200));
    node.cancel(id).expect("known");
    let info = wait_finished(&node, id);
    assert_eq!(info.state, TaskState::Cancelled);
    match info.output {
        Some(TaskOutput::Process(process)) => {
            assert_eq!(process.signal, Some(9), "SIGKILL after the grace");
            assert_eq!(process.stdout, "ready\n");
        }
        other => panic!("exec output: {other:?}"),
    }
}

#[test]
fn timeouts_stop_compute_sleep_and_exec() {
    let node = Node::start(config(2, 64)).expect("node starts");
    let ids = [
        submit(&node, "spin 60s timeout=50ms"),
        submit(&node, "sleep 60s timeout=50ms"),
        submit(&node, "exec timeout=100ms -- sleep 60"),
        submit(&node, "fib 60 timeout=50ms"),
    ];
    for id in ids {
        let info = wait_finished(&node, id);
        assert_eq!(info.state, TaskState::TimedOut, "{}", info.spec);
        assert!(
            info.error
                .as_deref()
                .is_some_and(|e| e.starts_with("timed out after")),
            "{:?}",
            info.error
        );
    }
    let quick = wait_finished(&node, submit(&node, "sleep 10ms timeout=10s"));
    assert_eq!(quick.state, TaskState::Succeeded);
}

#[test]
fn a_compute_task_s_timeout_counts_its_time_on_a_worker_not_its_waits_between_slices() {
    // Ten copies of 100 ms of work share one worker slice by slice, so each takes about a
    // second from its first slice to its end; each ran 100 ms, well inside its 500 ms.
    let node = Node::start(config(1, 64)).expect("node starts");
    let ids = node
        .submit_text("spin 100ms x10 timeout=500ms")
        .expect("submitted");
    assert_eq!(ids.len(), 10);
    for id in ids {
        let info = wait_finished(&node, id);
        assert_eq!(info.state, TaskState::Succeeded, "{info:?}");
    }
    // A copy that needs more than its budget still times out.
    let long = wait_finished(&node, submit(&node, "spin 60s timeout=100ms"));
    assert_eq!(long.state, TaskState::TimedOut, "{long:?}");
}

#[test]
fn a_stop_counts_the_tasks_in_flight_when_it_began() {
    // What a node does first when told to stop (leaving the cluster) takes a moment: the
    // tasks that end meanwhile (here, cancelled) were in flight when the stop began.
    let node = Node::start(config(2, 64)).expect("node starts");
    let ending = node.submit_text("sleep 60s x5").expect("submitted");
    let long = submit(&node, "sleep 60s");
    node.stop_accepting();
    for &id in &ending {
        assert_eq!(node.cancel(id), Ok(CancelOutcome::Requested));
    }
    for id in ending {
        assert_eq!(wait_finished(&node, id).state, TaskState::Cancelled);
    }
    // The long sleep outlives the grace and is stopped.
    let report = node.shutdown(Duration::from_millis(200));
    assert_eq!(report.in_flight, 6, "{report:?}");
    assert_eq!(report.cancelled, 1, "{report:?}");
    assert_eq!(node.task(long).expect("known").state, TaskState::Cancelled);
}

#[test]
fn processes_an_exec_program_leaves_behind_end_with_its_task() {
    // `sleep 600 &` keeps the program's stdout open after the shell exits: the task used to
    // stay running until the sleep ended, and the sleep to outlive it.
    let node = Node::start(config(1, 64)).expect("node starts");
    let done = wait_finished(&node, submit(&node, "exec -- sh -c 'sleep 600 & echo $!'"));
    assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
    let Some(TaskOutput::Process(process)) = &done.output else {
        panic!("{done:?}");
    };
    let pid: u32 = process.stdout.trim().parse().expect("the sleep's pid");
    common::eventually(|| {
        common::process_gone(pid)
            .then_some(())
            .ok_or_else(|| format!("process {pid} still runs"))
    });
}

#[test]
fn an_exec_task_ends_with_its_program_though_a_process_outside_its_group_holds_the_output() {
    // `setsid sleep 600 &` leaves the group and holds stdout: the task used to run until the
    // sleep ended, and a cancel then lost the program's exit and output.
    let mut cfg = config(1, 64);
    cfg.exec.kill_grace = Duration::from_millis(100);
    let node = Node::start(cfg).expect("node starts");
    let done = wait_finished(
        &node,
        // The pause lets the sleep leave the group before the shell exits (before it has,
        // it is the group's, and ends with the program).
        submit(
            &node,
            "exec -- sh -c 'setsid sleep 600 & echo $!; sleep 0.5; echo done'",
        ),
    );
    let Some(TaskOutput::Process(process)) = &done.output else {
        panic!("{done:?}");
    };
    let pid: u32 = process
        .stdout
        .lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .expect("the sleep's pid");
    // It left the group on purpose: not the node's to stop.
    let still_runs = !common::process_gone(pid);
    common::signal(pid, "-KILL");
    assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
    assert_eq!(process.exit_code, Some(0));
    assert!(process.stdout.ends_with("done\n"), "{:?}", process.stdout);
    assert!(still_runs, "the escaped process runs on");
}

#[test]
fn exec_captures_output_exit_status_and_attempt() {
    let mut cfg = config(1, 64);
    cfg.exec.max_output = 16;
    let node = Node::start(cfg).expect("node starts");
    let ok = wait_finished(
        &node,
        submit(
            &node,
            "exec -- sh -c 'echo attempt=$GOLIATH_ATTEMPT; echo oops >&2'",
        ),
    );
    assert_eq!(ok.state, TaskState::Succeeded);
    match ok.output {
        Some(TaskOutput::Process(p)) => {
            assert_eq!(p.stdout, "attempt=1\n");
            assert_eq!(p.stderr, "oops\n");
            assert_eq!(p.exit_code, Some(0));
        }
        other => panic!("{other:?}"),
    }
    let failing = wait_finished(&node, submit(&node, "exec -- sh -c 'exit 3'"));
    assert_eq!(failing.state, TaskState::Failed);
    assert_eq!(failing.error.as_deref(), Some("exited with status 3"));
    let long = wait_finished(&node, submit(&node, "exec -- sh -c 'yes | head -c 100000'"));
    match long.output {
        Some(TaskOutput::Process(p)) => {
            assert_eq!(p.stdout.len(), 16);
            assert_eq!(p.stdout_truncated, 100_000 - 16, "the rest is counted");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_list_taken_while_tasks_finish_names_each_task_once() {
    // A task that finishes between the look at the live slots and the look at the history
    // was listed twice (running, and finished).
    let node = Node::start(config(2, 65_536)).expect("node starts");
    let mut doubled = Vec::new();
    for _ in 0..40 {
        let _ = node.submit_copies(&TaskSpec::fib(1), 2_000);
        let _ = node.submit_copies(&TaskSpec::sleep(Duration::from_millis(1)), 2_000);
        let listed = node.tasks(goliath::runtime::TaskQuery {
            state: None,
            limit: 5_000,
            before: None,
        });
        let mut ids: Vec<u64> = listed.iter().map(|task| task.id.0).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        if ids.len() != before {
            doubled.push(before - ids.len());
        }
    }
    assert!(doubled.is_empty(), "ids listed twice: {doubled:?}");
}

#[test]
fn tasks_that_finish_while_a_snapshot_counts_are_not_counted_as_running() {
    // Two workers and no sleep or exec: at most two tasks run at any instant. The count reads
    // each live slot's state after listing the slots; a slot whose task finished in between
    // (free again, or claimed by the next submission) used to be counted as running.
    let node = Node::start(config(2, 65_536)).expect("node starts");
    let mut most_running = 0;
    for _ in 0..15 {
        let mut submitted = 0;
        while submitted < 60_000 {
            match node.submit_copies(&TaskSpec::fib(1), 6_000) {
                Ok(ids) => submitted += ids.len(),
                Err(error) => {
                    assert!(
                        matches!(error.error, SubmitError::Busy(_)),
                        "{}",
                        error.error
                    );
                    std::thread::yield_now();
                }
            }
        }
        for _ in 0..5 {
            let counts = node.snapshot(0).counts;
            most_running = most_running.max(counts.running);
        }
    }
    // The walk over the slots is not an instant: a task that finishes behind it and the next
    // one starting ahead of it are both counted now and then (three on two workers, seen once
    // in CI). Slots counted after their task had finished gave dozens.
    assert!(
        most_running <= 4,
        "a snapshot counted {most_running} tasks running on two workers"
    );
}

#[test]
fn a_snapshot_keeps_running_tasks_that_newer_ones_would_crowd_out() {
    let node = Node::start(config(1, 256)).expect("node starts");
    let sleeping = node.submit_text("sleep 1h x3").expect("submitted");
    for id in &sleeping {
        wait_running(&node, *id);
    }
    let finished = node.submit_text("fib 3 x50").expect("submitted");
    for id in &finished {
        wait_finished(&node, *id);
    }
    let ids: Vec<TaskId> = node.snapshot(10).tasks.iter().map(|t| t.id).collect();
    let mut expected: Vec<TaskId> = finished[finished.len() - 7..].to_vec();
    expected.extend(&sleeping);
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(
        ids, expected,
        "the 3 running, then the 7 newest, newest first"
    );
    // A list is the newest, whatever their state.
    let listed: Vec<TaskId> = node
        .tasks(TaskQuery {
            state: None,
            limit: 10,
            before: None,
        })
        .iter()
        .map(|t| t.id)
        .collect();
    let mut newest = finished[finished.len() - 10..].to_vec();
    newest.reverse();
    assert_eq!(listed, newest);
}

/// A membership that reports this node's load as it was gossiped long ago.
struct StaleCluster;

impl goliath::runtime::gossip::ClusterSource for StaleCluster {
    fn cluster_snapshot(&self) -> goliath::runtime::gossip::ClusterSnapshot {
        use goliath::runtime::gossip::{
            ClusterSnapshot, GossipStats, LocalStatus, MemberCounts, MemberInfo, MemberLoad,
            MemberState,
        };
        ClusterSnapshot {
            cluster: "goliath".into(),
            local: "test".into(),
            generation: 1,
            incarnation: 0,
            gossip_address: "127.0.0.1:9".into(),
            status: LocalStatus::Active,
            local_health: 0,
            phi_threshold: 8.0,
            counts: MemberCounts::default(),
            members: vec![MemberInfo {
                name: "test".into(),
                generation: 1,
                incarnation: 0,
                state: MemberState::Alive,
                degraded: false,
                phi: 0.0,
                gossip_address: None,
                protocol_address: None,
                last_heard_unix_us: None,
                since_unix_us: 0,
                local: true,
                meta: Some(MemberLoad {
                    version: 1,
                    workers: 1,
                    queue_depth: 0,
                    arena_free: 64,
                    load: 97.0,
                }),
            }],
            events: Vec::new(),
            stats: GossipStats::default(),
        }
    }
}

#[test]
fn a_snapshot_gives_this_node_its_own_load_not_the_one_it_last_gossiped() {
    let node = Node::start(config(2, 64)).expect("node starts");
    node.set_cluster(Some(Arc::new(StaleCluster)));
    let ids = node.submit_text("sleep 1h x3").expect("submitted");
    for id in &ids {
        wait_running(&node, *id);
    }
    let snapshot = node.snapshot(0);
    let cluster = snapshot.cluster.as_ref().expect("membership");
    let me = cluster.members.iter().find(|m| m.local).expect("this node");
    let meta = me.meta.as_ref().expect("its load");
    assert_eq!(
        meta.load, 1.5,
        "3 tasks in flight on 2 workers, as of this snapshot"
    );
    assert_eq!(meta.arena_free, 61);
}

#[test]
fn task_lists_carry_the_start_of_each_output_and_a_task_all_of_it() {
    let node = Node::start(config(1, 64)).expect("node starts");
    let id = submit(&node, "exec -- sh -c 'yes | head -c 5000'");
    let whole = wait_finished(&node, id);
    match whole.output {
        Some(TaskOutput::Process(p)) => assert_eq!((p.stdout.len(), p.stdout_truncated), (5000, 0)),
        other => panic!("{other:?}"),
    }
    let listed = node.tasks(TaskQuery {
        state: None,
        limit: 10,
        before: None,
    });
    // What a watcher looks up at each event: the task without its output.
    let brief = node.task_with_output_up_to(id, 0).expect("remembered");
    assert_eq!(brief.spec, whole.spec);
    match brief.output {
        Some(TaskOutput::Process(p)) => {
            assert_eq!((p.stdout.len(), p.stdout_truncated), (0, 5000))
        }
        other => panic!("{other:?}"),
    }
    let limit = goliath::runtime::task::limits::LISTED_OUTPUT_MAX;
    match &listed.iter().find(|t| t.id == id).expect("listed").output {
        Some(TaskOutput::Process(p)) => {
            assert_eq!(p.stdout.len(), limit);
            assert_eq!(
                p.stdout_truncated,
                (5000 - limit) as u64,
                "the rest is counted"
            );
        }
        other => panic!("{other:?}"),
    }
    match node
        .snapshot(10)
        .tasks
        .iter()
        .find(|t| t.id == id)
        .map(|t| &t.output)
    {
        Some(Some(TaskOutput::Process(p))) => assert_eq!(p.stdout.len(), limit),
        other => panic!("{other:?}"),
    }
}

#[test]
fn exec_of_a_missing_program_is_refused_by_name() {
    let node = Node::start(config(1, 64)).expect("node starts");
    let error = node
        .submit_text("exec -- no-such-program-goliath --flag")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("'no-such-program-goliath' not found"),
        "{error}"
    );
    let mut cfg = config(1, 64);
    cfg.exec.enabled = false;
    let locked = Node::start(cfg).expect("node starts");
    let error = locked.submit(TaskSpec::exec(&["true"])).unwrap_err();
    assert_eq!(error, SubmitError::ExecDisabled);
}

#[test]
fn full_arena_returns_busy_at_once_and_recovers() {
    let node = Node::start(config(1, 4)).expect("node starts");
    let held: Vec<_> = (0..4).map(|_| submit(&node, "sleep 60s")).collect();
    let busy = node.submit(TaskSpec::fib(1)).unwrap_err();
    assert_eq!(
        busy,
        SubmitError::Busy(Busy {
            in_use: 4,
            capacity: 4,
            needed: 1,
        })
    );
    assert!(
        busy.to_string().contains("all 4 task slots are in use"),
        "{busy}"
    );
    let batch = node.submit_text("fib 1 x2").unwrap_err().to_string();
    assert!(batch.contains("busy"), "{batch}");
    let never = node.submit_text("fib 1 x5").unwrap_err().to_string();
    assert!(
        never.contains("batch of 5 tasks can never fit") && never.contains("4 task slots"),
        "a batch larger than the arena is not worth retrying: {never}"
    );
    assert_eq!(
        node.snapshot(0).arena.rejected,
        3,
        "the two busy refusals and the batch that can never fit"
    );
    node.cancel(held[0]).expect("known");
    wait_finished(&node, held[0]);
    let id = node.submit(TaskSpec::fib(5)).expect("a slot came back");
    assert_eq!(wait_finished(&node, id).output, Some(TaskOutput::Number(5)));
    assert_eq!(node.snapshot(0).arena.high_water, 4);
    // Two slots free now, but not four: the refusal says how many are free, not "all in
    // use". A slot is counted free just after its task shows finished: wait for the count.
    node.cancel(held[1]).expect("known");
    wait_finished(&node, held[1]);
    common::eventually(|| match node.snapshot(0).arena.in_use {
        2 => Ok(()),
        in_use => Err(format!("{in_use} slots in use")),
    });
    let partly = node.submit_text("fib 1 x4").unwrap_err().to_string();
    assert!(
        partly.contains("needs 4 task slots but only 2 of 4 are free (2 in flight)"),
        "{partly}"
    );
}

#[test]
fn a_batch_that_finished_before_anyone_looked_still_counts_in_the_high_water_mark() {
    let node = Node::start(config(1, 64)).expect("node starts");
    // Echo tasks finish inside their submit: the 5 slots were in use together only there.
    let ids = node.submit_text("echo peak x5").expect("submitted");
    for id in &ids {
        wait_finished(&node, *id);
    }
    let arena = node.snapshot(0).arena;
    assert_eq!(arena.in_use, 0);
    assert_eq!(
        arena.high_water, 5,
        "the batch's 5 slots were in use at once"
    );
}

#[test]
fn a_workers_queue_depth_counts_every_task_waiting_for_it() {
    // One worker, busy with a long task, so the batch waits in the submission queue until the
    // worker's periodic look there moves it to its own queue: the per-worker depth the
    // console shows must then count all of it.
    let node = Node::start(config(1, 64)).expect("node starts");
    let first = submit(&node, "spin 5s");
    wait_running(&node, first);
    let mut ids = node.submit_text("spin 5s x10").expect("submitted");
    ids.push(first);
    // The submission queue reads empty from the moment the worker claims the batch, a
    // little before the batch is on its deque: so wait until the worker's queue holds all
    // but the running task (a depth that never counts the batch fails here).
    common::eventually(|| {
        let snapshot = node.snapshot(0);
        let in_flight = snapshot.counts.queued + snapshot.counts.running;
        let depth = snapshot.workers[0].depth as u64;
        (snapshot.submission_queue_depth == 0 && in_flight == 11 && depth == in_flight - 1)
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "all but the running task wait in the worker's queue: {} in flight, {:?}",
                    in_flight, snapshot.workers
                )
            })
    });
    for id in ids {
        node.cancel(id).expect("known");
    }
}

#[test]
fn stale_id_after_slot_reuse_cannot_touch_the_new_task() {
    let node = Node::start(config(1, 2)).expect("node starts");
    let old = submit(&node, "fib 1");
    wait_finished(&node, old);
    // Cycle the two slots until a long task sits in the old task's slot.
    let mut newer = Vec::new();
    for _ in 0..4 {
        let id = submit(&node, "sleep 60s");
        newer.push(id);
        if (id.0 - old.0).is_multiple_of(2) {
            break;
        }
        node.cancel(id).expect("known");
        wait_finished(&node, id);
    }
    let reused = *newer.last().expect("submitted");
    assert_eq!((reused.0 - old.0) % 2, 0, "same slot");
    wait_running(&node, reused);
    assert_eq!(
        node.cancel(old),
        Ok(CancelOutcome::AlreadyFinished(TaskState::Succeeded))
    );
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        node.task(reused).expect("live").state,
        TaskState::Running,
        "the stale cancel did nothing"
    );
    assert_eq!(
        node.task(old).expect("in history").output,
        Some(TaskOutput::Number(1))
    );
}

#[test]
fn unknown_and_forgotten_ids_are_told_apart() {
    let mut cfg = config(1, 64);
    cfg.history.tasks = 2;
    let node = Node::start(cfg).expect("node starts");
    let first = submit(&node, "fib 1");
    wait_finished(&node, first);
    for _ in 0..4 {
        let id = submit(&node, "fib 1");
        wait_finished(&node, id);
    }
    let forgotten = node.task(first).unwrap_err();
    assert!(matches!(
        forgotten,
        LookupError::Forgotten {
            kept: 2,
            rings: 2,
            ..
        }
    ));
    assert!(
        forgotten.to_string().contains("split over 2 rings"),
        "{forgotten}"
    );
    let unknown = goliath::runtime::TaskId(1_000_000);
    let error = node.task(unknown).unwrap_err();
    assert!(matches!(error, LookupError::Unknown { .. }));
    assert!(error.to_string().contains("no task 1000000"), "{error}");
    assert!(node.cancel(unknown).is_err());
}

/// Drives `rounds` submissions to a pool whose workers park at once when idle, so every
/// submission races a worker going to sleep. `submit` is given a pseudo-random number and
/// returns the ids it submitted; each round waits for all of them. A lost wake-up leaves a
/// task queued forever and the wait fails.
fn submit_park_stress(
    rounds: u32,
    seed: u64,
    submit: impl Fn(&Node, u64) -> Vec<goliath::runtime::TaskId>,
) {
    let mut cfg = config(2, 1024);
    cfg.scheduler.spin_before_park = Duration::ZERO;
    let node = Node::start(cfg).expect("node starts");
    let mut events = node.subscribe();
    let mut seed = seed;
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut pending = submit(&node, seed);
        while !pending.is_empty() {
            match events.recv_timeout(common::LIVENESS) {
                Ok(Some(event)) if event.state.is_finished() => {
                    pending.retain(|id| *id != event.id)
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    panic!("round {round}: tasks {pending:?} were never run (lost wake-up)")
                }
                Err(error) => panic!("round {round}: {error}"),
            }
        }
    }
    let snapshot = node.snapshot(0);
    assert!(
        snapshot.workers.iter().map(|w| w.parks).sum::<u64>() > 1000,
        "workers really parked"
    );
}

/// One task at a time, in bursts of 1–3.
#[test]
fn no_lost_wakeups_under_submit_park_stress() {
    submit_park_stress(20_000, 0x2545_F491_4F6C_DD1D, |node, random| {
        (0..1 + random % 3)
            .map(|_| node.submit(TaskSpec::fib(1)).expect("room"))
            .collect()
    });
}

/// The same race for batches: a batch queues all its tasks, then wakes one worker once, so a
/// batch submitted as the workers go to sleep must still run whole.
#[test]
fn no_lost_wakeups_under_batch_submit_park_stress() {
    submit_park_stress(10_000, 0x9E37_79B9_7F4A_7C15, |node, random| {
        let copies = 1 + (random % 4) as u32;
        let ids = node.submit_copies(&TaskSpec::fib(1), copies).expect("room");
        assert_eq!(ids.len(), copies as usize);
        ids
    });
}

#[test]
fn shutdown_cancels_what_outlives_the_grace_and_refuses_new_work() {
    let node = Node::start(config(2, 64)).expect("node starts");
    let quick = submit(&node, "spin 10ms");
    let ids = [
        submit(&node, "spin 60s"),
        submit(&node, "sleep 60s"),
        submit(&node, "exec -- sleep 60"),
    ];
    for id in ids {
        wait_running(&node, id);
    }
    let report = node.shutdown(Duration::from_millis(100));
    assert!(report.in_flight >= 3);
    assert_eq!(report.cancelled, 3);
    assert_eq!(report.abandoned, 0);
    assert_eq!(
        node.submit(TaskSpec::fib(1)),
        Err(SubmitError::ShuttingDown)
    );
    assert_eq!(
        node.task(quick).expect("in history").state,
        TaskState::Succeeded
    );
    for id in ids {
        assert_eq!(
            node.task(id).expect("in history").state,
            TaskState::Cancelled
        );
    }
}

#[test]
fn shutdown_drains_tasks_that_finish_within_the_grace() {
    let node = Node::start(config(2, 64)).expect("node starts");
    let ids = node.submit_text("spin 20ms x6").expect("submitted");
    let report = node.shutdown(Duration::from_secs(30));
    assert_eq!(report.cancelled, 0);
    for id in ids {
        assert_eq!(
            node.task(id).expect("in history").state,
            TaskState::Succeeded
        );
    }
}

/// A registered kind that fans out `numbers[0]` children of kind `leaf`.
struct FanOut {
    leaf: goliath::runtime::KindId,
}
impl TaskKind for FanOut {
    fn name(&self) -> &str {
        "fanout"
    }
    fn usage(&self) -> &str {
        "fanout N"
    }
    fn parse(&self, args: &[&str]) -> Result<KindArgs, String> {
        let n = args
            .first()
            .and_then(|a| a.parse().ok())
            .ok_or("needs a count")?;
        Ok(KindArgs {
            numbers: [n, 0],
            text: None,
        })
    }
    fn step(&self, ctx: &mut StepContext<'_>) -> Step {
        let total = ctx.numbers()[0];
        while ctx.progress()[0] < total {
            if let Err(error) = ctx.spawn(TaskSpec::custom(self.leaf, [0, 0], None)) {
                return Step::Fail(error.to_string());
            }
            ctx.progress()[0] += 1;
            if ctx.should_yield() {
                return Step::Yield;
            }
        }
        Step::Done(TaskOutput::Number(total))
    }
}

struct Leaf {
    runs: Arc<AtomicU64>,
}
impl TaskKind for Leaf {
    fn name(&self) -> &str {
        "leaf"
    }
    fn usage(&self) -> &str {
        "leaf"
    }
    fn parse(&self, _args: &[&str]) -> Result<KindArgs, String> {
        Ok(KindArgs::default())
    }
    fn step(&self, _ctx: &mut StepContext<'_>) -> Step {
        self.runs.fetch_add(1, Ordering::Relaxed);
        Step::Done(TaskOutput::None)
    }
}

#[test]
fn registered_kinds_spawn_children_that_other_workers_steal() {
    let runs = Arc::new(AtomicU64::new(0));
    let mut builder = NodeBuilder::new(config(2, 1 << 16));
    let leaf = builder
        .register_kind(Arc::new(Leaf { runs: runs.clone() }))
        .expect("registers");
    builder
        .register_kind(Arc::new(FanOut { leaf }))
        .expect("registers");
    let node = builder.start().expect("node starts");
    let root = submit(&node, "fanout 20000");
    assert_eq!(
        wait_finished(&node, root).output,
        Some(TaskOutput::Number(20_000))
    );
    // A leaf bumps `runs` inside its step; the worker counts the task as
    // executed just after the step returns, so wait for both to settle.
    let deadline = std::time::Instant::now() + common::LIVENESS;
    let executed_total =
        |node: &Node| -> u64 { node.snapshot(0).workers.iter().map(|w| w.executed).sum() };
    while runs.load(Ordering::Relaxed) < 20_000 || executed_total(&node) < 20_001 {
        assert!(
            std::time::Instant::now() < deadline,
            "children never all ran: {} leaf runs, {} executed",
            runs.load(Ordering::Relaxed),
            executed_total(&node)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let snapshot = node.snapshot(0);
    assert!(snapshot.node.kinds.contains(&"fanout".to_string()));
    assert_eq!(runs.load(Ordering::Relaxed), 20_000, "each child ran once");
    let executed: u64 = snapshot.workers.iter().map(|w| w.executed).sum();
    assert_eq!(executed, 20_001, "the root and each child counted once");
    let stole: u64 = snapshot.workers.iter().map(|w| w.stole).sum();
    let stolen_from: u64 = snapshot.workers.iter().map(|w| w.stolen_from).sum();
    assert_eq!(stole, stolen_from, "every steal is counted on both sides");
}

#[test]
fn snapshot_and_listing_describe_the_node() {
    let node = Node::start(config(2, 64)).expect("node starts");
    let done = submit(&node, "fib 20");
    wait_finished(&node, done);
    let failed = submit(&node, "exec -- false");
    wait_finished(&node, failed);
    let running = submit(&node, "sleep 60s");
    wait_running(&node, running);
    let snapshot = node.snapshot(10);
    assert_eq!(snapshot.node.name, "test");
    assert_eq!(snapshot.workers.len(), 2);
    assert_eq!(snapshot.counts.succeeded, 1);
    assert_eq!(snapshot.counts.failed, 1);
    assert_eq!(snapshot.counts.running, 1);
    assert_eq!(snapshot.arena.in_use, 1);
    let ids: Vec<_> = snapshot.tasks.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![running, failed, done], "newest first");
    let failures = node.tasks(TaskQuery {
        state: Some(TaskState::Failed),
        limit: 10,
        before: None,
    });
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].spec, "exec -- false");
    let live = node.tasks(TaskQuery {
        state: Some(TaskState::Running),
        limit: 10,
        before: None,
    });
    assert_eq!(live.iter().map(|t| t.id).collect::<Vec<_>>(), vec![running]);
    node.cancel(running).expect("known");
}

#[test]
fn zero_and_absurd_sizes_refuse_to_start() {
    let mut cfg = config(1, 64);
    cfg.scheduler.workers = goliath::config::WorkerCount::Fixed(0);
    let error = Node::start(cfg).unwrap_err().to_string();
    assert!(error.contains("scheduler.workers"), "{error}");
    let mut cfg = config(1, 64);
    cfg.arena.slots = 0;
    let error = Node::start(cfg).unwrap_err().to_string();
    assert!(error.contains("arena.slots"), "{error}");
}

/// Waits for the next finished task on `receiver`; panics if none comes.
fn next_completion(receiver: &CompletionReceiver) -> TaskInfo {
    common::eventually(|| {
        receiver
            .try_recv()
            .ok_or_else(|| "no completion arrived".to_string())
    })
}

/// A slot keeps the last watcher's sender after its task finished (it is dropped when the
/// slot is next filled by a watched submission): a later task in the same slot must reach
/// its own watcher, and an unwatched one nobody.
#[test]
fn a_reused_slot_delivers_to_its_current_watcher_only() {
    // One slot: every task below lands in it.
    let node = Node::start(config(1, 1)).expect("node starts");
    let (first_sender, first) = completion_queue();
    let (second_sender, second) = completion_queue();
    let submit = |text: &str, watcher: Option<&CompletionSender>| {
        let submission = node.parse(text).expect("spec");
        let batch = node
            .submit_batch_pending(std::slice::from_ref(&submission), None, watcher)
            .expect("submitted");
        batch.outcome.ids[0]
    };
    let watched = submit("fib 10", Some(&first_sender));
    assert_eq!(next_completion(&first).id, watched);
    // Delivered before its slot is freed: the next submit waits for the slot.
    wait_finished(&node, watched);
    let unwatched = submit("fib 11", None);
    wait_finished(&node, unwatched);
    let other = submit("fib 12", Some(&second_sender));
    let delivered = next_completion(&second);
    assert_eq!(delivered.id, other);
    assert_eq!(delivered.output, Some(TaskOutput::Number(144)));
    wait_finished(&node, other);
    let echoed = submit("echo again", Some(&first_sender));
    assert_eq!(next_completion(&first).id, echoed);
    assert!(
        first.try_recv().is_none(),
        "the first watcher got only its own tasks"
    );
    assert!(
        second.try_recv().is_none(),
        "the second watcher got only its own task"
    );
}

/// A batch of one task without a key (what `goliath submit SPEC` sends) takes the single
/// submit's path: its answers must be the batch's all the same.
#[test]
fn a_one_task_batch_is_answered_like_any_batch() {
    let node = Node::start(config(1, 1)).expect("node starts");
    let (sender, receiver) = completion_queue();
    let submit = |text: &str, watcher: Option<&CompletionSender>| {
        let submission = node.parse(text).expect("spec");
        node.submit_batch_pending(std::slice::from_ref(&submission), None, watcher)
    };
    let echoed = submit("echo one", Some(&sender)).expect("submitted");
    assert_eq!(echoed.outcome.ids.len(), 1);
    assert!(!echoed.outcome.duplicate);
    let delivered = next_completion(&receiver);
    assert_eq!(delivered.id, echoed.outcome.ids[0]);
    assert_eq!(delivered.output, Some(TaskOutput::Text("one".into())));
    wait_finished(&node, delivered.id);
    let held = submit("sleep 60s", None).expect("submitted").outcome.ids;
    let Err(full) = submit("fib 1", None) else {
        panic!("a second task fit in one slot");
    };
    assert!(full.submitted.is_empty());
    assert_eq!(
        full.error,
        SubmitError::Busy(Busy {
            in_use: 1,
            capacity: 1,
            needed: 1,
        })
    );
    let Err(missing) = submit("exec -- no-such-program-goliath", None) else {
        panic!("an exec of a missing program was taken");
    };
    assert!(missing.submitted.is_empty());
    assert!(
        missing
            .error
            .to_string()
            .contains("'no-such-program-goliath' not found"),
        "{}",
        missing.error
    );
    assert_eq!(
        node.snapshot(0).arena.rejected,
        1,
        "the full arena's refusal is counted, the bad spec's is not"
    );
    node.cancel(held[0]).expect("known");
    wait_finished(&node, held[0]);
}

/// A watch of tasks submitted earlier gets each when it finishes, and nothing once the
/// watch is dropped.
#[test]
fn a_watch_of_earlier_tasks_gets_them_until_it_is_dropped() {
    let node = Node::start(config(1, 16)).expect("node starts");
    let first = submit(&node, "sleep 200ms");
    let second = submit(&node, "sleep 400ms");
    let (sender, receiver) = completion_queue();
    let watch = node.watch_earlier(&[first, second], &sender);
    let delivered = next_completion(&receiver);
    assert_eq!(delivered.id, first);
    assert_eq!(delivered.state, TaskState::Succeeded);
    drop(watch);
    wait_finished(&node, second);
    assert!(
        receiver.try_recv().is_none(),
        "a task finished after the watch was dropped was sent"
    );
    // Two watchers of one task (two retries of one key at once) both get it, and one that
    // stops watching leaves the other's watch in place.
    let third = submit(&node, "sleep 300ms");
    let (first_sender, first_receiver) = completion_queue();
    let (second_sender, second_receiver) = completion_queue();
    let (dropped_sender, dropped_receiver) = completion_queue();
    let _first = node.watch_earlier(&[third], &first_sender);
    let _second = node.watch_earlier(&[third], &second_sender);
    drop(node.watch_earlier(&[third], &dropped_sender));
    assert_eq!(next_completion(&first_receiver).id, third);
    assert_eq!(next_completion(&second_receiver).id, third);
    assert!(dropped_receiver.try_recv().is_none());
}

#[test]
fn a_keyed_batch_with_a_refused_spec_takes_nothing_and_leaves_its_key_free() {
    let mut cfg = config(1, 64);
    cfg.exec.enabled = false;
    let node = Node::start(cfg).expect("node starts");
    let batch = [
        node.parse("fib 10").expect("parses"),
        node.parse("exec -- true").expect("parses"),
    ];
    // The exec line is refused before anything is taken: the fib line is not submitted
    // (it used to be, and the key was bound to it).
    for _ in 0..2 {
        let refused = node
            .submit_batch(&batch, Some("k"), None)
            .expect_err("exec is disabled");
        assert_eq!(refused.error, SubmitError::ExecDisabled);
        assert!(refused.submitted.is_empty(), "{:?}", refused.submitted);
    }
    assert_eq!(node.in_flight(), 0);
    assert_eq!(node.snapshot(0).counts.succeeded, 0);
    let other = node
        .submit_batch(&[node.parse("fib 11").expect("parses")], Some("k"), None)
        .expect("the key was never bound");
    assert!(!other.duplicate);
}

#[test]
fn copies_and_the_same_spec_repeated_are_the_same_request_under_a_key() {
    let node = Node::start(config(1, 64)).expect("node starts");
    let copies = node
        .submit_batch(&[node.parse("fib 3 x2").expect("parses")], Some("k"), None)
        .expect("submits");
    let repeated = [
        node.parse("fib 3").expect("parses"),
        node.parse("fib 3").expect("parses"),
    ];
    let again = node
        .submit_batch(&repeated, Some("k"), None)
        .expect("the same two tasks: a duplicate");
    assert!(again.duplicate);
    assert_eq!(again.ids, copies.ids);
    // A third copy is more work.
    let more = node.submit_batch(&[node.parse("fib 3 x3").expect("parses")], Some("k"), None);
    assert!(
        matches!(&more, Err(refused) if matches!(&refused.error, SubmitError::Invalid(m) if m.contains("2 tasks starting `fib 3` then, 3 tasks starting `fib 3` now"))),
        "{more:?}"
    );
}

#[test]
fn exec_of_a_program_that_cannot_run_says_why() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::start(config(1, 16)).expect("node starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("x.sh");
    std::fs::write(&script, "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    for (spec, says) in [
        ("exec -- /nonexistent/prog".to_string(), "does not exist"),
        (
            format!("exec -- {}", dir.path().display()),
            "is a directory",
        ),
        (format!("exec -- {}", script.display()), "is not executable"),
        (
            "exec -- no-such-program-here".to_string(),
            "not found in the node's PATH",
        ),
        // A relative path is the node's: the error says from where.
        (
            "exec -- ./no-such-dir/prog".to_string(),
            "does not exist (a relative path is taken from the node's working directory, /",
        ),
    ] {
        let error = node.submit_text(&spec).unwrap_err().to_string();
        assert!(error.contains(says), "{spec}: {error}");
    }
}

#[test]
fn a_registered_kinds_text_is_bounded_so_its_log_record_always_fits() {
    let runs = Arc::new(AtomicU64::new(0));
    let mut builder = NodeBuilder::new(config(1, 64));
    let leaf = builder
        .register_kind(Arc::new(Leaf { runs }))
        .expect("registers");
    let node = builder.start().expect("node starts");
    let limit = goliath::runtime::task::limits::TEXT_MAX;
    let fits = node.submit(TaskSpec::custom(
        leaf,
        [0, 0],
        Some("t".repeat(limit).into()),
    ));
    assert!(fits.is_ok(), "{fits:?}");
    match node.submit(TaskSpec::custom(
        leaf,
        [0, 0],
        Some("t".repeat(limit + 1).into()),
    )) {
        Err(SubmitError::Invalid(message)) => {
            assert!(message.contains("limited to 65536 bytes"), "{message}")
        }
        other => panic!("an oversized text is refused: {other:?}"),
    }
}

#[test]
fn a_task_between_its_slices_is_listed_and_counted_as_running_not_queued() {
    // Four spinners on one worker: each runs a slice, then waits in the deque for its next.
    let node = Node::start(config(1, 64)).expect("node starts");
    let ids = node.submit_text("spin 1h x4").expect("submitted");
    for id in &ids {
        wait_running(&node, *id);
    }
    let running = node.tasks(TaskQuery {
        state: Some(TaskState::Running),
        limit: 10,
        before: None,
    });
    assert_eq!(
        running.len(),
        4,
        "every started task is running: {running:?}"
    );
    let queued = node.tasks(TaskQuery {
        state: Some(TaskState::Queued),
        limit: 10,
        before: None,
    });
    assert!(
        queued.is_empty(),
        "none waits for a first slice: {queued:?}"
    );
    let counts = node.snapshot(0).counts;
    assert_eq!((counts.running, counts.queued), (4, 0), "{counts:?}");
    for id in ids {
        node.cancel(id).expect("cancel");
    }
}

#[test]
fn a_listing_before_an_id_pages_through_live_and_finished_tasks_alike() {
    // One worker busy with a spinner; finished tasks in the history, queued ones behind it.
    let node = Node::start(config(1, 64)).expect("node starts");
    let finished = node.submit_text("fib 3 x3").expect("submitted");
    for id in &finished {
        wait_finished(&node, *id);
    }
    let spinner = node.submit_text("spin 1h").expect("submitted")[0];
    wait_running(&node, spinner);
    let queued = node.submit_text("fib 3 x3").expect("submitted");
    let mut all: Vec<TaskId> = finished
        .iter()
        .chain([&spinner])
        .chain(&queued)
        .copied()
        .collect();
    all.sort_unstable_by(|a, b| b.cmp(a));

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = node.tasks(TaskQuery {
            state: None,
            limit: 2,
            before,
        });
        seen.extend(page.iter().map(|task| task.id));
        if page.len() < 2 {
            break;
        }
        before = page.last().map(|task| task.id);
    }
    assert_eq!(seen, all, "every task once, newest first, across pages");

    // With a state whose tasks cannot change (the queued ones may run meanwhile: the
    // worker takes from the queue between its spinner's slices): the finished tasks older
    // than the newest finished one.
    let older_finished = node.tasks(TaskQuery {
        state: Some(TaskState::Succeeded),
        limit: 10,
        before: Some(finished[2]),
    });
    let ids: Vec<TaskId> = older_finished.iter().map(|task| task.id).collect();
    assert_eq!(ids, vec![finished[1], finished[0]]);
    node.cancel(spinner).expect("cancel");
}

#[test]
fn a_new_task_gets_a_turn_within_a_slice_or_so_even_with_long_slices_behind_running_ones() {
    // One worker, long slices, two spins that keep it busy for many slices: a task submitted
    // after them used to wait 61 slices (the fairness count), here longer than both spins.
    let mut cfg = config(1, 64);
    cfg.scheduler.slice = Duration::from_millis(100);
    let node = Node::start(cfg).expect("starts");
    let spins = node.submit_text("spin 10s x2").expect("spins");
    wait_running(&node, spins[0]);
    let slices = || node.snapshot(0).workers[0].slices;
    let before = slices();
    let late = submit(&node, "fib 1");
    let finished = wait_finished(&node, late);
    assert_eq!(finished.state, TaskState::Succeeded);
    // Its own slice, the one under way when it came, and a few more at most (the counts are
    // read while the worker runs); not 61.
    let waited = slices() - before;
    assert!(waited <= 10, "the new task waited {waited} slices");
    for &spin in &spins {
        let info = node.task(spin).expect("spin");
        assert!(
            !info.state.is_finished(),
            "the new task waited for the spins to end: {info:?}"
        );
        node.cancel(spin).expect("cancels");
    }
}
