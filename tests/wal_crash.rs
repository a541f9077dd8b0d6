//! `wal_crash_recovery`: the real `goliath node` with small segments, 64 concurrent submitters
//! over the protocol recording every acknowledged id, SIGKILL at a random moment, restart, and
//! a check that every acknowledged task is there (lost = 0) and nothing appeared that was
//! never submitted, twice, or as part of a batch (unexpected = 0). The checkpoint interval is
//! small enough that checkpoints run (and are killed) during the cycles. 50 cycles by default;
//! `GOLIATH_CRASH_CYCLES=1000` for a soak run.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::binary::RunningNode;
use goliath::runtime::net::client::ConnectOptions;
use goliath::runtime::net::{Client, ClientError, Request, Response, SubmitRequest};
use goliath::runtime::{TaskId, TaskInfo};

const SUBMITTERS: usize = 64;
/// Requests per submitter per cycle: at most 64 × 64 × 3 = 12,288 tasks a cycle, so every
/// task of the last cycle fits in the history the node keeps (`history.tasks` below).
const REQUESTS_PER_CYCLE: u64 = 64;

const NODE_ARGS: &[&str] = &[
    "--workers",
    "2",
    "--set",
    "wal.segment_size=64KiB",
    "--set",
    "wal.checkpoint_every=128KiB",
    "--set",
    "history.tasks=40000",
    "--set",
    "node.idempotency_keys=100000",
];

/// A small xorshift generator: the seed is printed, so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// One submission: its idempotency key and its specs (one task each).
#[derive(Debug, Clone)]
struct Batch {
    key: String,
    specs: Vec<String>,
}

#[derive(Debug, Default)]
struct Cycle {
    /// Acknowledged tasks: id → spec.
    acked: HashMap<TaskId, String>,
    /// Batches sent without an answer (the node died): they may or may not be there.
    unanswered: Vec<Batch>,
    /// Every spec sent, answered or not.
    sent: HashSet<String>,
    /// Checkpoints the node had written while running, just before the kill (the one every
    /// start writes not counted), so the kills also land in and between checkpoints.
    checkpoints_while_running: u64,
}

async fn submitter(
    address: String,
    cycle: usize,
    index: usize,
    seed: u64,
    state: Arc<Mutex<Cycle>>,
) {
    let mut rng = Rng(seed | 1);
    let Ok(client) = Client::connect(&address, &ConnectOptions::default()).await else {
        return;
    };
    for number in 0..REQUESTS_PER_CYCLE {
        let key = format!("c{cycle}s{index}n{number}");
        let lines = 1 + rng.below(3) as usize;
        let specs: Vec<String> = (0..lines)
            .map(|line| format!("echo {key}l{line}"))
            .collect();
        {
            let mut state = state.lock().expect("state");
            state.sent.extend(specs.iter().cloned());
        }
        let request = Request::Submit(SubmitRequest {
            specs: specs.clone(),
            idempotency_key: Some(key.clone()),
            wait: false,
            report_ids: false,
        });
        match client.request(request).await {
            Ok(Response::Submitted { ids, duplicate }) => {
                assert!(!duplicate, "a fresh key came back as a duplicate");
                assert_eq!(ids.len(), specs.len(), "one id per spec");
                let mut state = state.lock().expect("state");
                for (id, spec) in ids.into_iter().zip(specs) {
                    assert!(
                        state.acked.insert(id, spec).is_none(),
                        "id {id} given twice"
                    );
                }
            }
            Ok(other) => panic!("unexpected answer {other:?}"),
            Err(_) => {
                // The node died (or refused while dying): nothing was acknowledged.
                state
                    .lock()
                    .expect("state")
                    .unanswered
                    .push(Batch { key, specs });
                return;
            }
        }
    }
}

/// Runs the submitters until the node is killed after `kill_after`.
fn run_cycle(node: &mut RunningNode, cycle: usize, kill_after: Duration, rng: &mut Rng) -> Cycle {
    let state = Arc::new(Mutex::new(Cycle::default()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..SUBMITTERS {
            tasks.spawn(submitter(
                node.address.clone(),
                cycle,
                index,
                rng.next(),
                state.clone(),
            ));
        }
        tokio::time::sleep(kill_after).await;
        let checkpoints = match Client::connect(&node.address, &ConnectOptions::default()).await {
            Ok(client) => match client.request(Request::Status { task_limit: 0 }).await {
                Ok(Response::Status(snapshot)) => snapshot.wal.map(|wal| wal.checkpoints),
                _ => None,
            },
            Err(_) => None,
        };
        node.child.kill().expect("SIGKILL");
        state.lock().expect("state").checkpoints_while_running =
            checkpoints.unwrap_or(0).saturating_sub(1);
        let _ = node.child.wait();
        while let Some(result) = tasks.join_next().await {
            result.expect("a submitter panicked");
        }
    });
    Arc::try_unwrap(state)
        .expect("submitters done")
        .into_inner()
        .expect("state")
}

async fn lookup(client: &Client, id: TaskId) -> Option<TaskInfo> {
    match client.request(Request::Task { id }).await {
        Ok(Response::Task(info)) => Some(info),
        Ok(other) => panic!("unexpected answer {other:?}"),
        Err(ClientError::Remote(_)) => None,
        Err(error) => panic!("lookup of {id}: {error}"),
    }
}

/// What a check found.
#[derive(Debug, Default)]
struct Check {
    lost: Vec<String>,
    unexpected: Vec<String>,
    recovered_unanswered: usize,
    max_id: u64,
}

/// Checks the restarted node against what the last cycle saw, then resubmits the unanswered
/// batches with their keys (each must come back whole as a duplicate, or be new).
fn check(address: &str, previous_max: u64, cycle: &Cycle, next: &mut Cycle) -> Check {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = Arc::new(
            Client::connect(address, &ConnectOptions::default())
                .await
                .expect("connects to the restarted node"),
        );
        let Ok(Response::Status(snapshot)) =
            client.request(Request::Status { task_limit: 0 }).await
        else {
            panic!("no status");
        };
        let max_id = snapshot.wal.expect("durable node").recovered.max_id;
        let mut report = Check {
            max_id,
            ..Check::default()
        };
        // Every id the last run may have handed out: one listing (newest first) covers them
        // when there are fewer than its limit; any left over are looked up one by one.
        const LIMIT: usize = 10_000;
        let mut found: HashMap<TaskId, TaskInfo> = HashMap::new();
        let listing = client
            .request(Request::Tasks(goliath::runtime::TaskQuery {
                state: None,
                limit: LIMIT,
                before: None,
            }))
            .await;
        let Ok(Response::Tasks(tasks)) = listing else {
            panic!("listing failed: {listing:?}");
        };
        let complete = tasks.len() < LIMIT;
        let oldest_listed = tasks.last().map(|t| t.id.0).unwrap_or(u64::MAX);
        for task in tasks {
            if task.id.0 > previous_max {
                found.insert(task.id, task);
            }
        }
        if !complete {
            for id in previous_max + 1..oldest_listed.min(max_id + 1) {
                if let Some(info) = lookup(&client, TaskId(id)).await {
                    found.insert(info.id, info);
                }
            }
        }
        for (id, spec) in &cycle.acked {
            match found.get(id) {
                Some(info) if info.spec == *spec => {}
                Some(info) => report
                    .lost
                    .push(format!("{id}: acknowledged as {spec:?}, now {:?}", info.spec)),
                None => report.lost.push(format!("{id} ({spec}) is gone")),
            }
        }
        let mut seen: HashMap<&str, TaskId> = HashMap::new();
        for (id, info) in &found {
            if !cycle.sent.contains(&info.spec) {
                report
                    .unexpected
                    .push(format!("{id}: {:?} was never submitted", info.spec));
            }
            if let Some(other) = seen.insert(info.spec.as_str(), *id) {
                report
                    .unexpected
                    .push(format!("{:?} exists twice: {other} and {id}", info.spec));
            }
        }
        // Unanswered batches are all or nothing, and their keys still hold after the restart.
        for batch in &cycle.unanswered {
            let present: Vec<TaskId> = batch
                .specs
                .iter()
                .filter_map(|spec| seen.get(spec.as_str()).copied())
                .collect();
            if !present.is_empty() && present.len() != batch.specs.len() {
                report.unexpected.push(format!(
                    "batch {} came back in part: {} of {}",
                    batch.key,
                    present.len(),
                    batch.specs.len()
                ));
            }
            let retry = Request::Submit(SubmitRequest {
                specs: batch.specs.clone(),
                idempotency_key: Some(batch.key.clone()),
                wait: false,
                report_ids: false,
            });
            match client.request(retry).await {
                Ok(Response::Submitted { ids, duplicate }) => {
                    if duplicate == present.is_empty()
                        || (duplicate && ids != present)
                    {
                        report.unexpected.push(format!(
                            "retry of {} answered {ids:?} duplicate={duplicate}, but the node holds {present:?}",
                            batch.key
                        ));
                    }
                    if duplicate {
                        report.recovered_unanswered += 1;
                    } else {
                        for (id, spec) in ids.into_iter().zip(&batch.specs) {
                            next.acked.insert(id, spec.clone());
                        }
                    }
                    next.sent.extend(batch.specs.iter().cloned());
                }
                other => panic!("retry of {}: {other:?}", batch.key),
            }
        }
        report
    })
}

#[test]
fn wal_crash_recovery() {
    let cycles: usize = std::env::var("GOLIATH_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed = std::env::var("GOLIATH_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    println!("wal_crash_recovery: {cycles} cycles, GOLIATH_CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let mut previous = Cycle::default();
    let mut previous_log = String::new();
    let mut previous_max = 0u64;
    let (mut acked_total, mut unanswered_total, mut recovered_unanswered) =
        (0usize, 0usize, 0usize);
    let mut checkpoints_total = 0u64;
    for cycle in 0..=cycles {
        let phase = Instant::now();
        let mut node = RunningNode::start_in(dir.path(), NODE_ARGS);
        let started_in = phase.elapsed();
        let mut current = Cycle::default();
        let report = check(&node.address, previous_max, &previous, &mut current);
        if std::env::var_os("GOLIATH_CRASH_VERBOSE").is_some() {
            eprintln!(
                "cycle {cycle}: start {:?}, check {:?} ({} ids up to {})",
                started_in,
                phase.elapsed() - started_in,
                report.max_id - previous_max.min(report.max_id),
                report.max_id
            );
        }
        if !report.lost.is_empty() || !report.unexpected.is_empty() {
            // Keep the evidence: the data directory and the node's log.
            let kept = dir.keep();
            eprintln!(
                "wal_crash_recovery: cycle {cycle} failed; data directory kept at {}; node log:\n{}",
                kept.display(),
                node.log()
            );
            let _ = std::fs::write(kept.join("node.log"), node.log());
            let _ = std::fs::write(kept.join("previous-node.log"), &previous_log);
            panic!(
                "cycle {cycle} (seed {seed}): lost {} {:?}; unexpected {} {:?}",
                report.lost.len(),
                &report.lost[..report.lost.len().min(10)],
                report.unexpected.len(),
                &report.unexpected[..report.unexpected.len().min(10)]
            );
        }
        recovered_unanswered += report.recovered_unanswered;
        if cycle == cycles {
            break;
        }
        let retried = current.acked.clone();
        let kill_after = Duration::from_millis(rng.below(501));
        let mut seen = run_cycle(&mut node, cycle, kill_after, &mut rng);
        previous_log = node.log();
        acked_total += seen.acked.len() + retried.len();
        checkpoints_total += seen.checkpoints_while_running;
        unanswered_total += seen.unanswered.len();
        seen.acked.extend(retried);
        seen.sent.extend(current.sent);
        previous_max = report.max_id;
        previous = seen;
    }
    println!(
        "wal_crash_recovery: {cycles} cycles in {:.1}s: {acked_total} tasks acknowledged, lost 0, unexpected 0; {unanswered_total} batches unanswered at the kill, {recovered_unanswered} of them found durable and returned whole as duplicates on retry; {checkpoints_total} checkpoints written while the node ran",
        started.elapsed().as_secs_f64()
    );
    assert!(
        cycles < 10 || checkpoints_total > 0,
        "the checkpointer never ran between the kills, so crashes around checkpoints went untested"
    );
}
