//! Recovery, sans-IO: the scan of one segment's bytes (where the log ends, what is a torn tail
//! and what is damage) and the replay state that records are applied to.
//!
//! **Where the log ends.** Segments are zero-filled before use, so the written part ends at an
//! all-zero header. In any segment but the last, everything after that must be zero and every
//! record before it whole: anything else is damage, reported with its offset. In the last
//! segment a bad record (short, wrong checksum, impossible length) is a *torn tail* — the
//! write of an unacknowledged batch cut short — when no whole record follows it. A bad record
//! followed by a whole record is damage, wherever it is: the node refuses to start rather
//! than drop records that may have been acknowledged (the message notes an all-zero sector in
//! between, the mark a power loss mid-write can leave). A group of records cut short at the end of the
//! last segment was never acknowledged and is dropped whole.
//!
//! **Replay.** [`State`] applies groups in log order: accepted tasks become live, a started
//! record bumps the run number, a finished one moves the task to the bounded history, a cancel
//! marks it. The same state is loaded from and written to checkpoints, so a checkpoint plus
//! the segments after it replay to exactly what the segments alone would.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use super::record::{
    self, Accepted, CheckpointBegin, CheckpointEnd, CheckpointFinished, CheckpointKey,
    CheckpointTask, Finished, Frame, FrameError, IdRange, KeyRequest, Record, RecordType,
    SpecRecord,
};
use crate::runtime::task::TaskState;

/// Sector size assumed for torn-write detection.
pub const SECTOR: usize = 512;

/// Damage that stops recovery: what is wrong and the byte offset in the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("offset {offset}: {what}")]
pub struct Damage {
    /// Byte offset in the file.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

impl Damage {
    fn at(offset: usize, what: impl Into<String>) -> Self {
        Self {
            offset: offset as u64,
            what: what.into(),
        }
    }
}

/// How a segment's scan ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentScan {
    /// Offset just past the last whole group.
    pub end: usize,
    /// Whole records applied.
    pub records: u64,
    /// Bytes dropped from a torn tail (non-zero bytes after `end`).
    pub dropped_bytes: u64,
    /// Records of a group cut short that were dropped.
    pub dropped_records: u64,
    /// Why the tail was dropped, when it was.
    pub torn: Option<String>,
}

/// Offset one past the last non-zero byte at or after `from`, or `from` if all are zero.
fn nonzero_end(bytes: &[u8], from: usize) -> usize {
    let tail = bytes.get(from..).unwrap_or(&[]);
    match tail.iter().rposition(|&b| b != 0) {
        Some(last) => from + last + 1,
        None => from,
    }
}

/// Every whole, valid record at an aligned offset in `(after, limit)`, each offset looked at
/// (also inside a record found): how a reader resyncs after damage.
fn frames_after(bytes: &[u8], after: usize, limit: usize) -> impl Iterator<Item = Frame<'_>> {
    let first = (after / record::ALIGN + 1) * record::ALIGN;
    (first..limit.min(bytes.len()))
        .step_by(record::ALIGN)
        .filter_map(|at| {
            record::read_frame(bytes, at, record::MAX_PAYLOAD)
                .ok()
                .flatten()
        })
}

/// The first whole, valid record at an aligned offset in `(after, limit)`.
fn next_whole_record(bytes: &[u8], after: usize, limit: usize) -> Option<usize> {
    frames_after(bytes, after, limit)
        .next()
        .map(|frame| frame.offset)
}

/// Every whole, valid record after damage at `damaged`, one after another (a record found
/// inside one already taken is not taken). They are not replayed (what was between may be
/// lost); `goliath wal dump` shows them.
pub fn records_after_damage(bytes: &[u8], damaged: usize) -> Vec<Frame<'_>> {
    let mut taken_to = 0;
    frames_after(bytes, damaged, bytes.len())
        .filter(|frame| {
            let fresh = frame.offset >= taken_to;
            if fresh {
                taken_to = frame.offset + frame.len;
            }
            fresh
        })
        .collect()
}

/// The whole records in `(after, limit)` before the first that begins a write made after an
/// fdatasync, and where that one is, if any. Every aligned offset is looked at: skipping over
/// a record (a chance match inside the damaged bytes, say) could skip the mark that proves
/// the damage was acknowledged.
fn whole_records_after(bytes: &[u8], after: usize, limit: usize) -> (u64, Option<usize>) {
    let mut count = 0;
    for frame in frames_after(bytes, after, limit) {
        if frame.after_sync {
            return (count, Some(frame.offset));
        }
        count += 1;
    }
    (count, None)
}

/// Whether `[from, to)` shows a sector the disk never wrote: the part of the first sector from
/// `from` to its end is all zero, or a whole aligned sector inside the range is.
fn unwritten_sector_between(bytes: &[u8], from: usize, to: usize) -> bool {
    let to = to.min(bytes.len());
    if from >= to {
        return false;
    }
    let first_boundary = (from / SECTOR + 1) * SECTOR;
    if !from.is_multiple_of(SECTOR)
        && first_boundary <= to
        && bytes[from..first_boundary].iter().all(|&b| b == 0)
    {
        return true;
    }
    let mut sector = from.div_ceil(SECTOR) * SECTOR;
    while sector + SECTOR <= to {
        if bytes[sector..sector + SECTOR].iter().all(|&b| b == 0) {
            return true;
        }
        sector += SECTOR;
    }
    false
}

/// Scans one segment (or checkpoint) file's bytes, calling `on_group` with every whole group
/// in order. `last` selects the torn-tail rules of the last segment. An error from
/// `on_group` is damage at that group's offset.
///
/// Records are read up to the format's bound ([`record::MAX_PAYLOAD`]), never the bound of the
/// current `wal.segment_size`: records written under a larger segment size are whole records.
pub fn scan_segment<'a>(
    bytes: &'a [u8],
    last: bool,
    mut on_group: impl FnMut(&[Frame<'a>]) -> Result<(), String>,
) -> Result<SegmentScan, Damage> {
    let mut scan = SegmentScan::default();
    let mut group: Vec<Frame<'a>> = Vec::new();
    // Whether the segment marks its writes (format 2 on: its header is marked).
    let mut marks_writes = false;
    let mut at = 0;
    let stop: Option<FrameError> = loop {
        if at >= bytes.len() {
            break None;
        }
        match record::read_frame(bytes, at, record::MAX_PAYLOAD) {
            Ok(None) => break None,
            Ok(Some(frame)) => {
                at += frame.len;
                marks_writes |= frame.after_sync;
                let continues = frame.continues;
                group.push(frame);
                if !continues {
                    on_group(&group).map_err(|what| Damage::at(group[0].offset, what))?;
                    scan.records += group.len() as u64;
                    scan.end = at.min(bytes.len());
                    group.clear();
                }
            }
            Err(error) => break Some(error),
        }
    };
    let stopped_at = at.min(bytes.len());
    let data_end = nonzero_end(bytes, stopped_at);
    let cut_group = !group.is_empty();
    if stop.is_none() && data_end == stopped_at {
        // A clean end: zeros (or the end of the file) after the last record.
        if cut_group {
            if !last {
                return Err(Damage::at(
                    group[0].offset,
                    "a group of records is cut short at the end of a segment that is not the last",
                ));
            }
            scan.dropped_records = group.len() as u64;
            scan.dropped_bytes = (stopped_at - scan.end) as u64;
            scan.torn = Some(format!(
                "a group of {} records at offset {} was cut short (never acknowledged)",
                group.len(),
                scan.end
            ));
        }
        return Ok(scan);
    }
    let what = match &stop {
        Some(error) => error.to_string(),
        // Zeros where a record header should be, and data after them: a hole (lost pages)
        // with records after it, not data after the end.
        None => {
            let resumes = bytes[stopped_at..data_end]
                .iter()
                .position(|&b| b != 0)
                .map_or(data_end, |at| stopped_at + at);
            format!(
                "the records stop at offset {stopped_at} (zeros), but data resumes at offset {resumes}: a hole in the log"
            )
        }
    };
    if !last {
        let offset = stop.as_ref().map(FrameError::offset).unwrap_or(stopped_at);
        return Err(Damage::at(offset, what));
    }
    let bad = stopped_at;
    if marks_writes {
        // Every write began after the one before it was durable, and its first record is
        // marked: damage with no marked record after it lies in the last write, whose
        // records (the whole ones after the damage too) were never acknowledged, whatever
        // pages of it a power loss kept.
        let (after, next_write) = whole_records_after(bytes, bad, data_end);
        if let Some(next) = next_write {
            return Err(Damage::at(
                bad,
                format!(
                    "{what}, and a later write begins at offset {next}, so the damaged records were acknowledged: this is not a torn tail"
                ),
            ));
        }
        // Whole records after the damage, in the same write, with no sector between that
        // the disk never wrote: the write was not cut short there, so the damage is the
        // disk's (a flipped bit), and the write may have been acknowledged. A write cut
        // short leaves its unwritten sectors as the zeros the segment was filled with.
        if after > 0
            && let Some(next) = next_whole_record(bytes, bad, data_end)
            && !unwritten_sector_between(bytes, bad, next)
        {
            return Err(Damage::at(
                bad,
                format!(
                    "{what}, and the {after} records after it in the same write were written whole, with no unwritten sector between: this is damage to the disk's copy, not a write cut short, and that write may have been acknowledged"
                ),
            ));
        }
        // The cut group's whole records, the damaged one, and the whole ones after it.
        scan.dropped_records = group.len() as u64 + u64::from(stop.is_some()) + after;
        scan.dropped_bytes = (data_end - scan.end) as u64;
        scan.torn = Some(if after == 0 {
            what
        } else {
            format!(
                "{what}; the {after} whole records after it belong to the same write, which was cut short"
            )
        });
        return Ok(scan);
    }
    if let Some(next) = next_whole_record(bytes, bad, data_end) {
        let hint = if unwritten_sector_between(bytes, bad, next) {
            " (an all-zero sector lies between: what a power loss during a write can leave)"
        } else {
            ""
        };
        return Err(Damage::at(
            bad,
            format!(
                "{what}, and a whole record follows at offset {next}{hint}, so this is not a torn tail"
            ),
        ));
    }
    scan.dropped_records = group.len() as u64 + u64::from(stop.is_some());
    scan.dropped_bytes = (data_end - scan.end) as u64;
    scan.torn = Some(what);
    Ok(scan)
}

// ---------------------------------------------------------------- replay state

/// `spec` with a built-in kind's name as the binary's own copy: the state keeps a spec per
/// task (up to a million finished ones), and a name allocated for each cost ~32 bytes apiece.
fn interned(mut spec: SpecRecord<'static>) -> SpecRecord<'static> {
    if let Some(name) = crate::runtime::task::builtin_name(&spec.kind) {
        spec.kind = Cow::Borrowed(name);
    }
    spec
}

/// A task in flight, as the log knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTask {
    /// What it runs.
    pub spec: SpecRecord<'static>,
    /// Its current run number.
    pub attempt: u32,
    /// Whether that run began.
    pub started: bool,
    /// When that run began, when a start record said so (a checkpoint keeps only that it
    /// did).
    pub started_unix_us: Option<u64>,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
    /// When it was accepted.
    pub submitted_unix_us: u64,
}

/// A finished task, as the log knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedTask {
    /// What it ran.
    pub spec: SpecRecord<'static>,
    /// When it was accepted.
    pub submitted_unix_us: u64,
    /// How it ended.
    pub outcome: Finished<'static>,
}

/// Counts of what a replay applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayCounts {
    /// Records applied.
    pub records: u64,
    /// Tasks accepted.
    pub accepted: u64,
    /// Finished records applied.
    pub finished: u64,
}

/// The state the log describes: tasks in flight, recent finished tasks, idempotency keys and
/// the highest id. Bounded: finished tasks and keys keep only the newest.
#[derive(Debug, Clone)]
pub struct State {
    /// Tasks in flight by id.
    pub live: HashMap<u64, LiveTask>,
    /// Finished tasks, oldest first, at most `finished_limit`.
    pub finished: VecDeque<FinishedTask>,
    /// Idempotency keys: their ids and the print of their request.
    pub keys: HashMap<String, KeptKey>,
    /// Keys, oldest first, at most `key_limit`.
    pub key_order: VecDeque<String>,
    /// The highest id handed out.
    pub max_id: u64,
    /// The log's id (see [`super::record::SegmentHeader::log_id`]); 0 until one is known.
    pub log_id: u64,
    /// What was applied.
    pub counts: ReplayCounts,
    finished_limit: usize,
    key_limit: usize,
}

/// An idempotency key as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptKey {
    /// The ids it produced.
    pub ids: Vec<IdRange>,
    /// The print of its request (format 5 on; `None` from older records).
    pub request: Option<KeyRequest>,
}

/// The state could not apply a record.
pub type ApplyError = String;

impl State {
    /// An empty state keeping up to `finished_limit` finished tasks and `key_limit` keys.
    pub fn new(finished_limit: usize, key_limit: usize) -> Self {
        Self {
            live: HashMap::new(),
            finished: VecDeque::new(),
            keys: HashMap::new(),
            key_order: VecDeque::new(),
            max_id: 0,
            log_id: 0,
            counts: ReplayCounts::default(),
            finished_limit: finished_limit.max(1),
            key_limit: key_limit.max(1),
        }
    }

    fn remember_key(&mut self, key: &str, ids: &[IdRange], request: Option<KeyRequest>) {
        if let Some(existing) = self.keys.get_mut(key) {
            existing.ids.extend_from_slice(ids);
            existing.request = existing.request.or(request);
            return;
        }
        self.keys.insert(
            key.to_string(),
            KeptKey {
                ids: ids.to_vec(),
                request,
            },
        );
        self.key_order.push_back(key.to_string());
        while self.key_order.len() > self.key_limit {
            if let Some(oldest) = self.key_order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
    }

    fn push_finished(&mut self, task: FinishedTask) {
        self.finished.push_back(task);
        while self.finished.len() > self.finished_limit {
            self.finished.pop_front();
        }
    }

    fn accept(&mut self, accepted: Accepted<'static>) {
        let spec = interned(accepted.spec);
        for range in accepted.ids.iter() {
            for id in range.ids() {
                self.max_id = self.max_id.max(id);
                self.counts.accepted += 1;
                self.live.entry(id).or_insert_with(|| LiveTask {
                    spec: spec.clone(),
                    attempt: accepted.attempt.max(1),
                    started: false,
                    started_unix_us: None,
                    cancel_requested: false,
                    submitted_unix_us: accepted.submitted_unix_us,
                });
            }
        }
        if let Some(key) = &accepted.key {
            self.remember_key(key, &accepted.ids, accepted.request);
        }
    }

    fn finish(&mut self, outcome: Finished<'static>) {
        self.counts.finished += 1;
        if let Some(task) = self.live.remove(&outcome.id) {
            self.push_finished(FinishedTask {
                spec: task.spec,
                submitted_unix_us: task.submitted_unix_us,
                outcome,
            });
        }
    }

    /// Applies one log record (segment and checkpoint records alike).
    pub fn apply(&mut self, record: Record) -> Result<(), ApplyError> {
        self.counts.records += 1;
        match record {
            Record::Segment(_) | Record::SegmentEnd(_) | Record::CheckpointEnd(_) => {}
            Record::CheckpointBegin(begin) => self.max_id = self.max_id.max(begin.max_id),
            Record::Accepted(accepted) => self.accept(accepted),
            Record::Started(started) => {
                if let Some(task) = self.live.get_mut(&started.id) {
                    task.attempt = task.attempt.max(started.attempt);
                    task.started = true;
                    task.started_unix_us = Some(started.unix_us);
                }
            }
            Record::Finished(finished) => self.finish(finished),
            Record::Cancelled(cancelled) => {
                if let Some(task) = self.live.get_mut(&cancelled.id) {
                    task.cancel_requested = true;
                }
            }
            Record::CheckpointTask(task) => {
                self.max_id = self.max_id.max(task.id);
                self.live.insert(
                    task.id,
                    LiveTask {
                        spec: interned(task.spec),
                        attempt: task.attempt,
                        started: task.started,
                        started_unix_us: None,
                        cancel_requested: task.cancel_requested,
                        submitted_unix_us: task.submitted_unix_us,
                    },
                );
            }
            Record::CheckpointFinished(task) => {
                self.max_id = self.max_id.max(task.outcome.id);
                self.push_finished(FinishedTask {
                    spec: interned(task.spec),
                    submitted_unix_us: task.submitted_unix_us,
                    outcome: task.outcome,
                });
            }
            Record::CheckpointKey(key) => self.remember_key(&key.key, &key.ids, key.request),
        }
        Ok(())
    }

    /// Decodes and applies a whole group.
    pub fn apply_group(&mut self, frames: &[Frame<'_>]) -> Result<(), ApplyError> {
        for frame in frames {
            let record = Record::decode(frame).map_err(|e| e.to_string())?;
            self.apply(record)?;
        }
        Ok(())
    }

    /// Makes a restarted node's view: every task in flight whose run began gets its next run
    /// number (one still queued keeps its own), and tasks whose cancel was requested, or
    /// that `runnable` refuses (an unknown kind, exec turned off), are finished. Returns how
    /// many tasks were requeued.
    pub fn restart(
        &mut self,
        now_unix_us: u64,
        runnable: &dyn Fn(&SpecRecord<'_>) -> Result<(), String>,
    ) -> RestartCounts {
        let mut counts = RestartCounts::default();
        let mut ids: Vec<u64> = self.live.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(task) = self.live.get_mut(&id) else {
                continue;
            };
            let ending = if task.cancel_requested {
                Some((TaskState::Cancelled, None))
            } else if let Err(why) = runnable(&task.spec) {
                counts.failed += 1;
                if counts.failed_ids.len() < FAILED_AT_START_NAMED {
                    counts.failed_ids.push(id);
                }
                if counts.failed_why.is_none() {
                    counts.failed_why = Some(why.clone());
                }
                Some((TaskState::Failed, Some(why)))
            } else {
                None
            };
            if let Some((state, error)) = ending {
                let attempt = task.attempt;
                // A task cancelled while it ran (an exec program given its kill grace when
                // the node died) keeps its start: "never started" would be untrue.
                let started_unix_us = task.started_unix_us.filter(|_| task.started);
                counts.finished += 1;
                self.finish(Finished {
                    id,
                    attempt,
                    state,
                    worker: None,
                    started_unix_us,
                    finished_unix_us: now_unix_us,
                    run_us: 0,
                    output: record::OutputRecord::None,
                    error: error.map(Cow::Owned),
                });
                self.counts.finished -= 1;
                continue;
            }
            // A run that began is on the log: an exec task's start is durable before its
            // program runs. Another kind's start may have been lost with the log's last
            // milliseconds, and is then counted once more than shown; nothing outside sees it.
            if task.started {
                counts.were_running += 1;
                task.attempt = task.attempt.saturating_add(1);
            } else {
                counts.were_queued += 1;
            }
            task.started = false;
            task.started_unix_us = None;
        }
        counts
    }

    /// The checkpoint records of this state, in file order.
    pub fn checkpoint_records(
        &self,
        next_segment: u64,
        created_unix_us: u64,
    ) -> impl Iterator<Item = Record> + '_ {
        let mut live: Vec<(&u64, &LiveTask)> = self.live.iter().collect();
        live.sort_unstable_by_key(|(id, _)| **id);
        let begin = Record::CheckpointBegin(CheckpointBegin {
            version: record::FORMAT_VERSION,
            next_segment,
            max_id: self.max_id,
            created_unix_us,
            log_id: self.log_id,
        });
        let tasks = live.into_iter().map(|(id, task)| {
            Record::CheckpointTask(CheckpointTask {
                id: *id,
                spec: task.spec.clone(),
                attempt: task.attempt,
                started: task.started,
                cancel_requested: task.cancel_requested,
                submitted_unix_us: task.submitted_unix_us,
            })
        });
        let finished = self.finished.iter().map(|task| {
            Record::CheckpointFinished(CheckpointFinished {
                spec: task.spec.clone(),
                submitted_unix_us: task.submitted_unix_us,
                outcome: task.outcome.clone(),
            })
        });
        let keys = self.key_records();
        let end = Record::CheckpointEnd(CheckpointEnd {
            live: self.live.len() as u64,
            finished: self.finished.len() as u64,
            keys: keys.len() as u64,
        });
        std::iter::once(begin)
            .chain(tasks)
            .chain(finished)
            .chain(keys)
            .chain(std::iter::once(end))
    }

    /// Key records, oldest key first; long id lists are split so each record stays small.
    fn key_records(&self) -> Vec<Record> {
        const RANGES_PER_RECORD: usize = 4096;
        let mut out = Vec::new();
        for key in &self.key_order {
            let Some(KeptKey { ids, request }) = self.keys.get(key) else {
                continue;
            };
            let request = *request;
            for chunk in ids.chunks(RANGES_PER_RECORD) {
                out.push(Record::CheckpointKey(CheckpointKey {
                    key: Cow::Owned(key.clone()),
                    ids: Cow::Owned(chunk.to_vec()),
                    request,
                }));
            }
            if ids.is_empty() {
                out.push(Record::CheckpointKey(CheckpointKey {
                    key: Cow::Owned(key.clone()),
                    ids: Cow::Owned(Vec::new()),
                    request,
                }));
            }
        }
        out
    }
}

/// What [`State::restart`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartCounts {
    /// Requeued tasks that had begun a run.
    pub were_running: u64,
    /// Requeued tasks that had not.
    pub were_queued: u64,
    /// Tasks finished at restart (cancel requested, or cannot run here).
    pub finished: u64,
    /// Of those, the ones that cannot run here (failed), with the first ids and the first
    /// reason, for the start to say so.
    pub failed: u64,
    pub failed_ids: Vec<u64>,
    pub failed_why: Option<String>,
}

/// The most ids of tasks failed at a restart that the start's warning names.
pub const FAILED_AT_START_NAMED: usize = 20;

/// Reads a whole checkpoint file's bytes into a state; checks its first and last records and
/// the counts. Returns the begin record.
pub fn load_checkpoint(bytes: &[u8], state: &mut State) -> Result<CheckpointBegin, Damage> {
    let mut begin: Option<CheckpointBegin> = None;
    let mut end: Option<CheckpointEnd> = None;
    let mut keys = 0u64;
    let mut finished = 0u64;
    let mut live = 0u64;
    let scan = scan_segment(bytes, false, |frames| {
        for frame in frames {
            let record = Record::decode(frame).map_err(|e| e.to_string())?;
            if end.is_some() {
                return Err("records after the checkpoint's end record".to_string());
            }
            match &record {
                Record::CheckpointBegin(b) => {
                    if begin.is_some() {
                        return Err("a second checkpoint begin record".to_string());
                    }
                    if b.version > record::FORMAT_VERSION {
                        return Err(format!(
                            "written by a newer goliath (format {}, this one reads up to {})",
                            b.version,
                            record::FORMAT_VERSION
                        ));
                    }
                    begin = Some(*b);
                }
                _ if begin.is_none() => {
                    return Err("the checkpoint does not start with a begin record".to_string());
                }
                Record::CheckpointEnd(e) => end = Some(*e),
                Record::CheckpointTask(_) => live += 1,
                Record::CheckpointFinished(_) => finished += 1,
                Record::CheckpointKey(_) => keys += 1,
                other => {
                    return Err(format!(
                        "a {} record does not belong in a checkpoint",
                        other.record_type().name()
                    ));
                }
            }
            state.apply(record)?;
        }
        Ok(())
    })?;
    let (Some(begin), Some(end)) = (begin, end) else {
        return Err(Damage::at(
            scan.end,
            "the checkpoint ends without its end record",
        ));
    };
    if (end.live, end.finished, end.keys) != (live, finished, keys) {
        return Err(Damage::at(
            scan.end,
            format!(
                "the end record counts {}/{}/{} tasks/finished/keys but the file holds {live}/{finished}/{keys}",
                end.live, end.finished, end.keys
            ),
        ));
    }
    Ok(begin)
}

/// Whether a segment holds anything past its header: whether a record begins right after
/// it. The writer only writes into a segment after the one before it was fdatasync'd, so
/// segments after the last one with data are unused spares, and the one with data is where
/// a torn tail can be. The writer writes a segment from its header on, so bytes further in
/// with nothing right after the header were never a write of the log (a spare is still
/// scanned as a last segment, which drops them, or refuses whole records among them). A
/// segment whose header is not valid counts as holding data (it is then checked as
/// strictly as possible).
pub fn has_data(bytes: &[u8]) -> bool {
    match record::read_frame(bytes, 0, record::MAX_PAYLOAD) {
        Ok(Some(header)) => {
            let first = header.len.min(bytes.len());
            let first_record = &bytes[first..bytes.len().min(first + record::HEADER_LEN)];
            first_record.iter().any(|&b| b != 0)
        }
        Ok(None) => nonzero_end(bytes, 0) > 0,
        Err(_) => true,
    }
}

/// Whether a record type may appear in a segment after its header.
pub fn belongs_in_segment(record_type: RecordType) -> bool {
    matches!(
        record_type,
        RecordType::Accepted
            | RecordType::Started
            | RecordType::Finished
            | RecordType::Cancelled
            | RecordType::SegmentEnd
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wal::record::{
        Cancelled, GroupEncoder, MAX_PAYLOAD, SegmentHeader, Started,
    };

    fn spec(kind: &str) -> SpecRecord<'static> {
        SpecRecord {
            kind: Cow::Owned(kind.to_string()),
            numbers: [1, 0],
            text: None,
            timeout_ns: 0,
        }
    }

    fn accepted(first: u64, count: u32, key: Option<&str>) -> Record {
        Record::Accepted(Accepted {
            ids: Cow::Owned(vec![IdRange { first, count }]),
            spec: spec("fib"),
            key: key.map(|k| Cow::Owned(k.to_string())),
            attempt: 1,
            submitted_unix_us: 5,
            request: key.map(|_| KeyRequest { hash: 7, tasks: 3 }),
        })
    }

    fn finished(id: u64) -> Record {
        Record::Finished(Finished {
            id,
            attempt: 1,
            state: TaskState::Succeeded,
            worker: Some(0),
            started_unix_us: Some(6),
            finished_unix_us: 7,
            run_us: 1,
            output: record::OutputRecord::Number(1),
            error: None,
        })
    }

    fn segment(groups: &[Vec<Record>]) -> Vec<u8> {
        let mut bytes = Vec::new();
        record::encode_one(
            &mut bytes,
            RecordType::Segment,
            &SegmentHeader {
                version: 1,
                segment: 1,
                created_unix_us: 0,
                size: 0,
                log_id: 0,
            },
        )
        .expect("encodes");
        for group in groups {
            let mut encoder = GroupEncoder::new(&mut bytes, MAX_PAYLOAD, usize::MAX);
            for record in group {
                record.push_to(&mut encoder).expect("encodes");
            }
            encoder.finish().expect("fits");
        }
        bytes
    }

    fn replay(bytes: &[u8], last: bool) -> Result<(State, SegmentScan), Damage> {
        let mut state = State::new(100, 100);
        let scan = scan_segment(bytes, last, |frames| state.apply_group(frames))?;
        Ok((state, scan))
    }

    #[test]
    fn replay_tracks_live_finished_keys_and_cancels() {
        let bytes = segment(&[
            vec![accepted(1, 3, Some("k"))],
            vec![finished(2)],
            vec![Record::Cancelled(Cancelled { id: 3, unix_us: 9 })],
        ]);
        let (mut state, scan) = replay(&bytes, true).expect("valid");
        assert_eq!(scan.records, 4);
        assert_eq!(state.max_id, 3);
        let mut live: Vec<u64> = state.live.keys().copied().collect();
        live.sort();
        assert_eq!(live, vec![1, 3]);
        assert_eq!(state.finished.len(), 1);
        assert_eq!(state.keys["k"].ids, vec![IdRange { first: 1, count: 3 }]);
        let counts = state.restart(100, &|_| Ok(()));
        assert_eq!(
            counts.finished, 1,
            "the cancelled task is finished at restart"
        );
        assert_eq!(
            state.live[&1].attempt, 1,
            "never started: its first run is still to come"
        );
        assert_eq!(
            state.finished.back().map(|t| t.outcome.state),
            Some(TaskState::Cancelled)
        );
        assert_eq!(
            state
                .finished
                .back()
                .and_then(|t| t.outcome.started_unix_us),
            None,
            "cancelled while queued: it never started"
        );
    }

    #[test]
    fn a_task_cancelled_while_running_keeps_its_start_when_the_restart_ends_it() {
        let bytes = segment(&[
            vec![accepted(1, 1, None)],
            vec![Record::Started(Started {
                id: 1,
                attempt: 1,
                unix_us: 5,
            })],
            vec![Record::Cancelled(Cancelled { id: 1, unix_us: 9 })],
        ]);
        let (mut state, _) = replay(&bytes, true).expect("valid");
        state.restart(100, &|_| Ok(()));
        let ended = state.finished.back().expect("finished at restart");
        assert_eq!(ended.outcome.state, TaskState::Cancelled);
        assert_eq!(ended.outcome.started_unix_us, Some(5));
        assert_eq!(ended.outcome.attempt, 1);
    }

    #[test]
    fn a_task_whose_run_began_comes_back_with_the_next_run_number() {
        let bytes = segment(&[
            vec![accepted(1, 2, None)],
            vec![Record::Started(Started {
                id: 2,
                attempt: 1,
                unix_us: 5,
            })],
        ]);
        let (mut state, _) = replay(&bytes, true).expect("valid");
        let counts = state.restart(100, &|_| Ok(()));
        assert_eq!((counts.were_running, counts.were_queued), (1, 1));
        assert_eq!(state.live[&1].attempt, 1, "queued at the stop");
        assert_eq!(state.live[&2].attempt, 2, "began a run before the stop");
        // Started again after this restart, and stopped once more: its third run.
        let mut again = state.clone();
        again
            .apply(Record::Started(Started {
                id: 2,
                attempt: 2,
                unix_us: 6,
            }))
            .expect("applies");
        again.restart(100, &|_| Ok(()));
        assert_eq!(again.live[&2].attempt, 3);
        assert_eq!(again.live[&1].attempt, 1);
    }

    #[test]
    fn zero_fill_after_the_log_is_a_clean_end() {
        let mut bytes = segment(&[vec![accepted(1, 1, None)]]);
        let used = bytes.len();
        bytes.resize(4096, 0);
        let (_, scan) = replay(&bytes, false).expect("clean");
        assert_eq!(
            (scan.end, scan.dropped_bytes, scan.torn.clone()),
            (used, 0, None)
        );
    }

    #[test]
    fn a_group_cut_short_in_the_last_segment_is_dropped_whole() {
        let mut bytes = segment(&[
            vec![accepted(1, 1, None)],
            vec![accepted(2, 1, Some("k")), accepted(3, 1, Some("k"))],
        ]);
        // Remove the group's last record (keep the first, flagged "continues").
        let whole = bytes.len();
        let mut at = 0;
        let mut starts = Vec::new();
        while let Ok(Some(frame)) = record::read_frame(&bytes, at, MAX_PAYLOAD) {
            starts.push(at);
            at += frame.len;
        }
        bytes.truncate(*starts.last().expect("records"));
        bytes.resize(whole + 512, 0);
        let (state, scan) = replay(&bytes, true).expect("torn tail");
        assert_eq!(state.live.len(), 1, "only the first group");
        assert!(state.keys.is_empty());
        assert_eq!(scan.dropped_records, 1);
        assert!(replay(&bytes, false).is_err(), "not allowed mid-log");
    }

    #[test]
    fn damage_in_a_middle_segment_names_the_offset() {
        let mut bytes = segment(&[vec![accepted(1, 1, None)], vec![accepted(2, 1, None)]]);
        let second = record::read_frame(&bytes, 0, MAX_PAYLOAD)
            .expect("ok")
            .expect("frame")
            .len;
        bytes[second + 12] ^= 0x10;
        let damage = replay(&bytes, false).expect_err("damaged");
        assert_eq!(damage.offset, second as u64);
        assert!(damage.what.contains("checksum"), "{damage}");
    }

    #[test]
    fn a_hole_of_zeros_with_records_after_it_is_named_as_one() {
        let groups: Vec<Vec<Record>> = (1..=3).map(|id| vec![accepted(id, 1, None)]).collect();
        let mut bytes = segment(&groups);
        let first = record::read_frame(&bytes, 0, MAX_PAYLOAD)
            .expect("ok")
            .expect("frame")
            .len;
        let second = record::read_frame(&bytes, first, MAX_PAYLOAD)
            .expect("ok")
            .expect("frame")
            .len;
        // The second record, zeroed whole: the scan stops at its start, the third follows.
        bytes[first..first + second].fill(0);
        let damage = replay(&bytes, false).expect_err("damaged");
        assert_eq!(damage.offset, first as u64);
        assert!(
            damage.what.contains(&format!(
                "the records stop at offset {first} (zeros), but data resumes at offset {}",
                first + second
            )),
            "{damage}"
        );
    }

    #[test]
    fn a_bad_record_followed_by_whole_records_is_damage_even_in_the_last_segment() {
        let mut bytes = segment(&[
            vec![accepted(1, 1, None)],
            vec![accepted(2, 1, None)],
            vec![accepted(3, 1, None)],
        ]);
        let mut at = 0;
        let mut starts = Vec::new();
        while let Ok(Some(frame)) = record::read_frame(&bytes, at, MAX_PAYLOAD) {
            starts.push(at);
            at += frame.len;
        }
        bytes[starts[2] + 11] ^= 1;
        let damage = replay(&bytes, true).expect_err("not torn");
        assert_eq!(damage.offset, starts[2] as u64);
        assert!(damage.what.contains("a whole record follows"), "{damage}");
    }

    #[test]
    fn unwritten_sectors_are_recognised() {
        let mut bytes = vec![1u8; 2048];
        bytes[512..1024].fill(0);
        assert!(unwritten_sector_between(&bytes, 100, 1500));
        assert!(!unwritten_sector_between(&bytes, 100, 1000));
        let mut tail = vec![1u8; 1024];
        tail[300..512].fill(0);
        assert!(unwritten_sector_between(&tail, 300, 800));
        assert!(!unwritten_sector_between(&tail, 299, 800));
    }

    #[test]
    fn checkpoint_round_trips_the_state() {
        let bytes = segment(&[
            vec![accepted(1, 5, Some("a"))],
            vec![finished(2), finished(4)],
            vec![accepted(9, 1, Some("b"))],
        ]);
        let (state, _) = replay(&bytes, true).expect("valid");
        let mut file = Vec::new();
        for record in state.checkpoint_records(3, 42) {
            let mut group = GroupEncoder::new(&mut file, MAX_PAYLOAD, usize::MAX);
            record.push_to(&mut group).expect("encodes");
            group.finish().expect("fits");
        }
        let mut loaded = State::new(100, 100);
        let begin = load_checkpoint(&file, &mut loaded).expect("loads");
        assert_eq!((begin.next_segment, begin.max_id), (3, 9));
        assert_eq!(loaded.live, state.live);
        assert_eq!(loaded.finished, state.finished);
        assert_eq!(loaded.keys, state.keys);
        assert_eq!(loaded.key_order, state.key_order);
        // A checkpoint cut short is refused.
        let cut = &file[..file.len() - 16];
        assert!(load_checkpoint(cut, &mut State::new(10, 10)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_scan(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            last in proptest::prelude::any::<bool>(),
        ) {
            let mut state = State::new(10, 10);
            let _ = scan_segment(&bytes, last, |frames| state.apply_group(frames));
            let _ = load_checkpoint(&bytes, &mut State::new(10, 10));
            let _ = has_data(&bytes);
        }

        #[test]
        fn damaging_a_valid_segment_never_panics_and_never_invents_tasks(
            flips in proptest::collection::vec((0usize..4096, 0u8..8), 1..4),
        ) {
            let bytes = segment(&[
                vec![accepted(1, 2, Some("k"))],
                vec![finished(1)],
                vec![accepted(3, 1, None), accepted(4, 1, None)],
            ]);
            let mut damaged = bytes.clone();
            for (at, bit) in flips {
                let at = at % damaged.len();
                damaged[at] ^= 1 << bit;
            }
            if let Ok((state, _)) = replay(&damaged, true) {
                for id in state.live.keys() {
                    proptest::prop_assert!((1..=4).contains(id), "invented task {}", id);
                }
            }
        }
    }

    #[test]
    fn bounds_keep_the_newest() {
        let mut state = State::new(2, 2);
        for id in 1..=5 {
            state
                .apply(accepted(id, 1, Some(&format!("k{id}"))))
                .expect("applies");
            state.apply(finished(id)).expect("applies");
        }
        let ids: Vec<u64> = state.finished.iter().map(|t| t.outcome.id).collect();
        assert_eq!(ids, vec![4, 5]);
        assert_eq!(
            state.key_order,
            VecDeque::from(vec!["k4".to_string(), "k5".to_string()])
        );
        assert_eq!(state.max_id, 5);
    }
}
