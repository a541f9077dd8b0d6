//! The node's side of the log: task state turned into records (accepted, started, finished,
//! cancelled) on the paths that change it, and recovered state turned back into arena slots,
//! history entries and idempotency keys at start.
//!
//! Records are encoded straight into the log's shared buffer from borrowed data (the kind's
//! name, the spec's text, ids on the stack), so logging a task allocates nothing in steady
//! state.
//!
//! Recovered tasks keep their ids: a task in flight goes back into the slot its id names,
//! `(id - 1) mod arena.slots`, and the arena's cursor starts after the highest id in the log,
//! so new ids never repeat old ones. With the same `arena.slots` those slots are all distinct
//! (two live tasks never share a slot); with a larger power of two they still are. A smaller
//! arena can make two recovered tasks want one slot: start is then refused with the fix.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use super::Wal;
use super::record::{
    self, Accepted, Cancelled, Finished, IdRange, KeyRequest, OutputRecord, RecordType, SpecRecord,
    Started,
};
use super::recovery::{FinishedTask, State};
use super::writer::{AppendError, AppendKind, DurabilityError, Ticket};
use crate::config::{Config, MAX_ARENA_SLOTS};
use crate::runtime::arena::SHARED_LEDGER;
use crate::runtime::history::Record as HistoryRecord;
use crate::runtime::lock;
use crate::runtime::node::{CancelError, IdempotencyKeys, Shared, StartError, SubmitError, Wake};
use crate::runtime::snapshot::TaskInfo;
use crate::runtime::task::{
    KindId, Kinds, ProcessOutput, Submission, TaskId, TaskOutput, TaskSpec, TaskState,
    claimed_by_line,
};

/// Whether a recovered task can run on this node: its kind is registered here, and exec is
/// on if it is an exec task.
pub fn runnable(kinds: &Kinds, config: &Config, spec: &SpecRecord<'_>) -> Result<(), String> {
    match kinds.lookup(&spec.kind) {
        None => Err(format!(
            "kind '{}' is not registered on this node, so the recovered task cannot run",
            spec.kind
        )),
        Some(KindId::EXEC) if !config.exec.enabled => Err(
            "exec tasks are disabled on this node (exec.enabled = false), so the recovered task cannot run"
                .to_string(),
        ),
        Some(_) => Ok(()),
    }
}

fn spec_record<'a>(kinds: &'a Kinds, spec: &'a TaskSpec) -> SpecRecord<'a> {
    SpecRecord {
        kind: Cow::Borrowed(kinds.name(spec.kind)),
        numbers: spec.numbers,
        text: spec.text.as_deref().map(Cow::Borrowed),
        timeout_ns: spec
            .timeout
            .map(|t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    }
}

fn task_spec(kinds: &Kinds, spec: &SpecRecord<'_>) -> Option<TaskSpec> {
    let kind = kinds.lookup(&spec.kind)?;
    let mut task = TaskSpec::from_parts(kind, spec.numbers, spec.text.as_deref().map(Arc::from));
    if spec.timeout_ns != 0 {
        task = task.with_timeout(Duration::from_nanos(spec.timeout_ns));
    }
    Some(task)
}

fn output_record(output: &TaskOutput) -> OutputRecord<'_> {
    match output {
        TaskOutput::None => OutputRecord::None,
        TaskOutput::Number(value) => OutputRecord::Number(*value),
        TaskOutput::Text(text) => OutputRecord::Text(Cow::Borrowed(
            record::summary(text, record::OUTPUT_SUMMARY).0,
        )),
        TaskOutput::Process(process) => {
            let (stdout, stdout_cut) = record::summary(&process.stdout, record::OUTPUT_SUMMARY);
            let (stderr, stderr_cut) = record::summary(&process.stderr, record::OUTPUT_SUMMARY);
            OutputRecord::Process {
                exit_code: process.exit_code,
                signal: process.signal,
                stdout: Cow::Borrowed(stdout),
                stderr: Cow::Borrowed(stderr),
                stdout_truncated: process.stdout_truncated.saturating_add(stdout_cut),
                stderr_truncated: process.stderr_truncated.saturating_add(stderr_cut),
            }
        }
    }
}

fn task_output(output: &OutputRecord<'_>) -> TaskOutput {
    match output {
        OutputRecord::None => TaskOutput::None,
        OutputRecord::Number(value) => TaskOutput::Number(*value),
        OutputRecord::Text(text) => TaskOutput::Text(Arc::from(&**text)),
        OutputRecord::Process {
            exit_code,
            signal,
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
        } => TaskOutput::Process(Box::new(ProcessOutput {
            exit_code: *exit_code,
            signal: *signal,
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
            stdout_truncated: *stdout_truncated,
            stderr_truncated: *stderr_truncated,
        })),
    }
}

impl Shared {
    /// Logs one accepted task.
    pub(crate) fn log_accepted(
        &self,
        wal: &Wal,
        spec: &TaskSpec,
        id: TaskId,
        now: u64,
    ) -> Result<Ticket, SubmitError> {
        let ids = [IdRange {
            first: id.0,
            count: 1,
        }];
        let accepted = Accepted {
            ids: Cow::Borrowed(&ids),
            spec: spec_record(&self.kinds, spec),
            key: None,
            attempt: 1,
            submitted_unix_us: self.clock.unix_us(now),
            request: None,
        };
        let (_, ticket) = wal.append(AppendKind::Submission, |group| {
            group.push(RecordType::Accepted, &accepted)
        })?;
        Ok(ticket)
    }

    /// Logs a batch as one group: an accepted record per line, with that line's ids.
    pub(crate) fn log_batch(
        &self,
        wal: &Wal,
        submissions: &[Submission],
        claimed: &[(u32, TaskId)],
        key: Option<(&str, KeyRequest)>,
        now: u64,
    ) -> Result<Ticket, SubmitError> {
        let submitted_unix_us = self.clock.unix_us(now);
        let mut lines = Vec::with_capacity(submissions.len());
        for (submission, line) in claimed_by_line(submissions, claimed) {
            let mut ids = Vec::new();
            for (_, id) in line {
                record::push_id(&mut ids, id.0);
            }
            if !ids.is_empty() {
                lines.push((submission, ids));
            }
        }
        let (_, ticket) = wal.append(AppendKind::Submission, |group| {
            for (submission, ids) in &lines {
                // Long id lists (interleaved with other submitters) go in several records.
                for chunk in ids.chunks(8192) {
                    group.push(
                        RecordType::Accepted,
                        &Accepted {
                            ids: Cow::Borrowed(chunk),
                            spec: spec_record(&self.kinds, &submission.spec),
                            key: key.map(|(key, _)| Cow::Borrowed(key)),
                            attempt: 1,
                            submitted_unix_us,
                            request: key.map(|(_, request)| request),
                        },
                    )?;
                }
            }
            Ok(())
        })?;
        Ok(ticket)
    }

    /// Logs that a task began a run: nobody waits for it, but an exec task's start is
    /// written at once (its program waits for it, see `io::run_exec`), another's with the
    /// next batch.
    #[inline]
    pub(crate) fn log_started(&self, id: TaskId, kind: KindId, attempt: u32, now: u64) {
        if let Some(wal) = &self.wal {
            let started = Started {
                id: id.0,
                attempt,
                unix_us: self.clock.unix_us(now),
            };
            let append = if kind == KindId::EXEC {
                AppendKind::Waited
            } else {
                AppendKind::Background
            };
            let _ = wal.append(append, |group| group.push(RecordType::Started, &started));
        }
    }

    /// Logs how a task finished (not waited for; durable with the next batch).
    pub(crate) fn log_finished(
        &self,
        wal: &Wal,
        record: &HistoryRecord,
        output: &TaskOutput,
        error: Option<&str>,
    ) {
        let clock = self.clock.conversion();
        let finished = Finished {
            id: record.id.0,
            attempt: record.attempt,
            state: record.state,
            worker: record.worker,
            started_unix_us: (record.started_at != 0).then(|| clock.unix_us(record.started_at)),
            finished_unix_us: clock.unix_us(record.finished_at),
            run_us: clock.ticks_to_ns(record.run_ticks) / 1_000,
            output: output_record(output),
            error: error.map(|e| Cow::Borrowed(record::summary(e, record::OUTPUT_SUMMARY).0)),
        };
        let _ = wal.append(AppendKind::Background, |group| {
            group.push(RecordType::Finished, &finished)
        });
    }

    /// Logs a cancel request; the ticket says when it is durable.
    pub(crate) fn log_cancelled(&self, wal: &Wal, id: TaskId) -> Result<Ticket, CancelError> {
        let cancelled = Cancelled {
            id: id.0,
            unix_us: self.clock.unix_us(self.clock.now()),
        };
        match wal.append(AppendKind::Waited, |group| {
            group.push(RecordType::Cancelled, &cancelled)
        }) {
            Ok((_, ticket)) => Ok(ticket),
            Err(AppendError::Stopped) => Err(CancelError::ShuttingDown(id)),
            Err(AppendError::Failed(error)) => Err(CancelError::NotDurable(error, id)),
            // Only submissions are refused for a log that is behind, and a cancel record
            // always encodes: neither happens here, but neither is acknowledged if it did.
            Err(error @ (AppendError::Behind { .. } | AppendError::Encode(_))) => Err(
                CancelError::NotDurable(DurabilityError::not_written(error.to_string().into()), id),
            ),
        }
    }

    /// Puts the recovered state back: tasks in flight into the slots their ids name (queued
    /// again, with their new run numbers), finished tasks into the recovered history,
    /// idempotency keys into the key table. Called once, before the workers start.
    pub(crate) fn restore(&mut self, state: &State) -> Result<(), StartError> {
        let capacity = self.arena.capacity();
        let mut live: Vec<(u64, &super::recovery::LiveTask)> =
            state.live.iter().map(|(id, task)| (*id, task)).collect();
        live.sort_unstable_by_key(|(id, _)| *id);
        let slot_of = |id: u64, capacity: usize| (id.saturating_sub(1) % capacity as u64) as u32;
        // The smallest arena (from `from` slots up) in which every recovered task has a slot
        // of its own: what a refusal tells the operator to start with, so that following it
        // works the first time.
        let enough_from = |from: usize| {
            let mut enough = from.next_power_of_two();
            while enough < MAX_ARENA_SLOTS && {
                let mut seen = std::collections::HashSet::new();
                !live.iter().all(|(id, _)| seen.insert(slot_of(*id, enough)))
            } {
                enough *= 2;
            }
            enough
        };
        if live.len() > capacity {
            return Err(StartError::Recovery(format!(
                "{} tasks were in flight but this node has arena.slots = {capacity}; start with arena.slots = {} (or the value used before) until they have finished",
                live.len(),
                enough_from(live.len())
            )));
        }
        let mut taken = std::collections::HashMap::with_capacity(live.len());
        for (id, _) in &live {
            if let Some(other) = taken.insert(slot_of(*id, capacity), *id) {
                let enough = enough_from(capacity.saturating_mul(2));
                return Err(StartError::Recovery(format!(
                    "recovered tasks {other} and {id} would share arena slot {} because arena.slots ({capacity}) is smaller than when they were accepted; start with arena.slots = {enough} (or the value used before) until they have finished",
                    slot_of(*id, capacity)
                )));
            }
        }
        let placed: Vec<(u32, TaskId)> = live
            .iter()
            .map(|(id, _)| (slot_of(*id, capacity), TaskId(*id)))
            .collect();
        self.arena.restore(&placed, state.max_id);
        let now = self.clock.now();
        for ((index, id), (_, task)) in placed.iter().zip(&live) {
            let Some(spec) = task_spec(&self.kinds, &task.spec) else {
                // `runnable` finished tasks of unknown kinds before this point.
                self.arena.release(*index, SHARED_LEDGER);
                continue;
            };
            let attempt = u16::try_from(task.attempt).unwrap_or(u16::MAX);
            self.fill(*index, spec, None, now, attempt);
            if self
                .publish(*index, *id, None, now, attempt, Wake::Now)
                .is_err()
            {
                return Err(StartError::Recovery(
                    "the submission queue is smaller than the recovered tasks".to_string(),
                ));
            }
        }
        self.recovered_submitted = placed
            .iter()
            .zip(&live)
            .map(|((_, id), (_, task))| (*id, task.submitted_unix_us))
            .collect();
        let mut recovered: Vec<TaskInfo> = state
            .finished
            .iter()
            .map(|task| self.recovered_info(task))
            .collect();
        recovered.sort_unstable_by_key(|task| task.id);
        recovered.dedup_by_key(|task| task.id);
        self.recovered = recovered;
        let mut entries = lock(&self.idempotency.entries);
        for key in &state.key_order {
            if let Some(kept) = state.keys.get(key) {
                let ids = kept
                    .ids
                    .iter()
                    .flat_map(|range| range.ids())
                    .map(TaskId)
                    .collect();
                IdempotencyKeys::remember(
                    &mut entries,
                    self.idempotency.capacity,
                    key,
                    ids,
                    Ticket::ready(),
                    kept.request,
                );
            }
        }
        Ok(())
    }

    fn recovered_info(&self, task: &FinishedTask) -> TaskInfo {
        let outcome = &task.outcome;
        let spec = match task_spec(&self.kinds, &task.spec) {
            Some(spec) => self.kinds.format(&spec),
            None => {
                let mut text = task.spec.kind.to_string();
                for number in task.spec.numbers.iter().filter(|n| **n != 0) {
                    text.push_str(&format!(" {number}"));
                }
                if let Some(extra) = &task.spec.text {
                    text.push(' ');
                    text.push_str(&extra.replace('\0', " "));
                }
                text
            }
        };
        TaskInfo {
            id: TaskId(outcome.id),
            spec,
            kind: task.spec.kind.to_string().into(),
            state: outcome.state,
            worker: outcome.worker,
            attempt: outcome.attempt,
            submitted_unix_us: task.submitted_unix_us,
            started_unix_us: outcome.started_unix_us,
            finished_unix_us: Some(outcome.finished_unix_us),
            run_us: outcome.run_us,
            output: Some(task_output(&outcome.output)),
            error: match outcome.state {
                TaskState::Cancelled => {
                    Some(outcome.error.as_deref().unwrap_or("cancelled").to_string())
                }
                _ => outcome.error.as_deref().map(String::from),
            },
        }
    }
}
