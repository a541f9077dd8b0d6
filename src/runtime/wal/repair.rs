//! `goliath wal repair`: a damaged log made into one a node starts on, keeping every record
//! that can still be read.
//!
//! Recovery refuses a damaged log rather than lose acknowledged tasks silently; repair is the
//! operator's way forward once they accept that loss. It reads what [`super::inspect`] reads —
//! the newest checkpoint, then the segments after it, the whole records found after damage
//! included — replays it into a [`State`], writes that state as a checkpoint numbered after
//! every file there is, moves the old files into a `damaged-…` directory beside them
//! (never deletes them) and names the newest segment again. It owns no format of its own: the
//! result is an ordinary checkpoint, which the next start reads as any other.
//!
//! Order on disk, so a crash at any point leaves either the old log or a repaired one: the
//! checkpoint is written (atomically) first; with the old `newest-segment` naming a segment
//! before it, that is already a log a node starts on (the old files are then covered by it).
//! Only then are the old files moved and `newest-segment` rewritten.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use super::record::{self, Record};
use super::recovery::State;
use super::segment::{self, Io};
use super::{Found, WalError, file_log_id, inspect, io_error, lock_dir, new_log_id, writer};
use crate::runtime::units::UtcTime;

/// New ids skip this many past the highest id read, so the id of a task lost in the damage
/// is not handed out again: one batch alone may hold up to `arena.slots` (at most 2^24) ids,
/// and a lost span may hold many batches, so the skip is far beyond either.
pub const ID_GAP: u64 = 1_000_000_000;

/// Ids of tasks lost in the damage that a repair lists (see [`Repaired::lost_ids`]).
pub const LOST_IDS_LISTED: usize = 100;

/// Tasks lost in the damage that a repair counts at most ([`Repaired::lost_ids_total`]).
pub const LOST_IDS_COUNTED: usize = 100_000;

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Repaired {
    /// The data directory.
    pub dir: PathBuf,
    /// The checkpoint written.
    pub checkpoint: PathBuf,
    /// Where the old files went.
    pub moved_to: PathBuf,
    /// The files moved there, by name.
    pub moved: Vec<String>,
    /// Records replayed.
    pub records: u64,
    /// Of those, records found after damage in their file.
    pub records_after_damage: u64,
    /// Whole records before damage not replayed because they begin the damaged record's
    /// group (a batch is recovered whole or not at all).
    pub batch_head_dropped: u64,
    /// Whole records after damage not replayed because they finish the damaged record's
    /// group.
    pub batch_tail_dropped: u64,
    /// Files skipped because they belong to another log (copied in from another directory).
    pub foreign: Vec<String>,
    /// What was wrong with this log's own files: one line per damaged file or problem, as
    /// `wal verify` says it (empty when only files of another log were in the way).
    pub damage: Vec<String>,
    /// Tasks in flight kept (they run again at the next start).
    pub in_flight: u64,
    /// Finished tasks kept in the history.
    pub history: u64,
    /// Idempotency keys kept.
    pub keys: u64,
    /// Tasks whose acceptance was lost in the damage but of which later records were read
    /// (it started or finished): dropped, as nothing says what they were.
    /// The first [`LOST_IDS_LISTED`] ids, lowest first.
    pub lost_ids: Vec<u64>,
    /// How many such tasks there were in all (counted up to [`LOST_IDS_COUNTED`]).
    pub lost_ids_total: u64,
    /// The highest task id any readable record names.
    pub max_id_read: u64,
    /// The id after which new ids continue.
    pub ids_continue_after: u64,
}

/// Why a repair did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The log could not be read, or the directory is locked.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The log is healthy: there is nothing to repair.
    #[error("the write-ahead log in {} is healthy: a node starts on it, there is nothing to repair", .0.display())]
    Healthy(PathBuf),
    /// An old file could not be moved aside; what the repair had done is undone.
    #[error(
        "cannot move {} aside into {}: {error}. {}",
        path.display(),
        moved_to.display(),
        match undo_failure {
            None => "Nothing was changed: the repair's new checkpoint was removed and the files moved so far were put back. Make the file movable (its directory's permissions, or an immutable attribute: lsattr) and run `goliath wal repair` again".to_string(),
            Some(undo) => format!("Undoing the repair failed too ({undo}): move the files in that directory back, remove the newest checkpoint the repair wrote, and run `goliath wal repair` again"),
        }
    )]
    MoveFailed {
        /// The file that could not be moved.
        path: PathBuf,
        /// Where the old files were going.
        moved_to: PathBuf,
        /// Why.
        error: std::io::Error,
        /// What went wrong while undoing, if anything did.
        undo_failure: Option<String>,
    },
    /// The repaired log does not verify (a defect of repair itself).
    #[error("the repaired log in {} does not verify ({problem}); the old files are in {}", dir.display(), moved_to.display())]
    Unverified {
        /// The data directory.
        dir: PathBuf,
        /// Where the old files are.
        moved_to: PathBuf,
        /// What `inspect` found.
        problem: String,
    },
}

/// Repairs the log in `dir` (see the module header), keeping at most `history_limit`
/// finished tasks and `key_limit` idempotency keys, as a node with these limits would.
/// Takes the directory's lock: refused while a node runs on it.
pub fn repair(dir: &Path, history_limit: usize, key_limit: usize) -> Result<Repaired, RepairError> {
    let _lock = lock_dir(dir)?;
    let listing = segment::list(dir).map_err(io_error("list", dir))?;
    let newest = segment::read_newest(dir).ok().flatten();
    // Each file's log, from its first record (none where that record is damaged).
    let file_logs: Vec<(&PathBuf, u64)> = listing
        .checkpoints
        .values()
        .rev()
        .chain(listing.segments.values())
        .filter_map(|path| Some((path, file_log_id(path)?)))
        .collect();
    // The log's id: the one most of its files carry (a damaged `newest-segment` must not
    // disown them all), `newest-segment`'s on a tie or when no file names one.
    let mut log_id = most_common(
        file_logs.iter().map(|(_, id)| *id),
        newest.and_then(|n| n.log_id),
    )
    .unwrap_or(0);
    let foreign_paths: Vec<&Path> = file_logs
        .iter()
        .filter(|(_, id)| log_id != 0 && *id != log_id)
        .map(|(path, _)| path.as_path())
        .collect();
    let foreign: Vec<String> = foreign_paths.iter().map(|path| file_name(path)).collect();
    let mut state = State::new(history_limit, key_limit);
    let mut records = 0;
    let mut records_after_damage = 0;
    let mut batch_head_dropped = 0;
    let mut batch_tail_dropped = 0;
    // Every id any record names, also of tasks whose acceptance was lost.
    let mut max_id_read = 0;
    // Tasks named by a record that did not fit (their acceptance was lost).
    let mut lost: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
    let inspection = inspect(dir, |path, _offset, record, found| {
        if foreign_paths.contains(&path) {
            return;
        }
        max_id_read = max_id_read.max(highest_id(record));
        // A batch is kept whole or not at all: the rest of a damaged one goes with it.
        match found {
            Found::StartsDamagedBatch => {
                batch_head_dropped += 1;
                return;
            }
            Found::FinishesDamagedBatch => {
                batch_tail_dropped += 1;
                return;
            }
            Found::Readable | Found::AfterDamage => {}
        }
        // A record that does not fit what came before (a finish of a task whose acceptance
        // was lost) changes nothing: replay ignores it.
        // Of a task not in flight: its acceptance was lost (replay passes over these). Not a
        // cancel's record: one may follow its task's finish (it finished as it was asked).
        if let Record::Started(record::Started { id, .. })
        | Record::Finished(record::Finished { id, .. }) = record
            && !state.live.contains_key(id)
            && lost.len() < LOST_IDS_COUNTED
        {
            // Once per task, though a task may leave both; bounded.
            lost.insert(*id);
        }
        if state.apply(record.clone()).is_ok() {
            records += 1;
            records_after_damage += u64::from(found.after_damage());
        }
    })?;
    if inspection.healthy() {
        return Err(RepairError::Healthy(dir.to_path_buf()));
    }
    // A segment of another log numbered within this log's own took the place of one of this
    // log's: what that one held is lost. So did one numbered right after this log's newest
    // segment when that one is closed (the log wrote on into the next). One numbered past
    // an open newest segment (in the place of an unused spare at most), or a checkpoint of
    // another log beside this log's own, only stood in the way.
    let newest_own = inspection
        .files
        .iter()
        .filter(|report| {
            report.kind == "segment" && !foreign_paths.contains(&report.file.as_path())
        })
        .filter_map(|report| {
            let (seq, _) = listing
                .segments
                .iter()
                .find(|(_, path)| **path == report.file)?;
            Some((*seq, report.closed))
        })
        .max();
    let replaced_own = listing.segments.iter().any(|(seq, path)| {
        foreign_paths.contains(&path.as_path())
            && newest_own.is_none_or(|(own, closed)| *seq <= own || (closed && *seq == own + 1))
    });
    // Damage in this log's own files: a file of another log in the way is none, one in the
    // place of this log's own is.
    let mut damage: Vec<String> = inspection
        .files
        .iter()
        .filter(|report| replaced_own || !foreign_paths.contains(&report.file.as_path()))
        .filter_map(|report| {
            let at = report.damage.as_ref()?;
            Some(format!("{} is damaged at {at}", file_name(&report.file)))
        })
        .collect();
    damage.extend(inspection.problems.iter().cloned());
    // Ids of tasks whose acceptance was in the lost bytes may lie above every id read (the
    // lost part may be the log's end, or what follows it may name only older tasks), and
    // nothing tells how far: new ids skip well past them. With nothing of this log's lost
    // (only files of another log were in the way), ids go on as before.
    let max_id_read = max_id_read.max(state.max_id);
    state.max_id = if damage.is_empty() {
        max_id_read
    } else {
        max_id_read.saturating_add(ID_GAP)
    };
    if log_id == 0 {
        log_id = new_log_id();
    }
    state.log_id = log_id;
    // Numbered after every file there is (and the segment `newest-segment` names), so it is
    // the newest checkpoint and covers them all.
    let last = listing
        .segments
        .keys()
        .chain(listing.checkpoints.keys())
        .copied()
        .chain(newest.map(|n| n.seq))
        .max()
        .unwrap_or(0);
    let next_segment = last.saturating_add(1);
    let io = Io::default();
    let mut buffer = Vec::new();
    writer::write_checkpoint(dir, &io, &state, next_segment, &mut buffer)
        .map_err(io_error("write a checkpoint in", dir))?;
    let checkpoint = dir.join(segment::checkpoint_name(next_segment));
    let moved_to = aside_dir(dir)?;
    let mut moved = Vec::new();
    let old_files = listing
        .segments
        .values()
        .chain(listing.checkpoints.values())
        .chain(&listing.temps)
        .cloned()
        .chain(Some(dir.join(segment::NEWEST_FILE)).filter(|path| path.exists()));
    move_aside(
        dir,
        old_files,
        &moved_to,
        &mut moved,
        &checkpoint,
        |from, to| std::fs::rename(from, to),
    )?;
    segment::sync_dir(&moved_to).map_err(io_error("fsync", &moved_to))?;
    // The checkpoint covers the segments before it, so the newest one the log created is the
    // one before it; a start creates the next.
    if last > 0 {
        io.replace_file(
            dir,
            segment::NEWEST_FILE,
            segment::newest_text(last, log_id).as_bytes(),
        )
        .map_err(io_error("write", &dir.join(segment::NEWEST_FILE)))?;
    }
    io.sync_dir(dir).map_err(io_error("fsync", dir))?;
    let check = inspect(dir, |_, _, _, _| {})?;
    if let Some(problem) = check.first_problem() {
        return Err(RepairError::Unverified {
            dir: dir.to_path_buf(),
            moved_to,
            problem,
        });
    }
    Ok(Repaired {
        dir: dir.to_path_buf(),
        checkpoint,
        moved_to,
        moved,
        records,
        records_after_damage,
        batch_head_dropped,
        batch_tail_dropped,
        foreign,
        damage,
        in_flight: state.live.len() as u64,
        history: state.finished.len() as u64,
        keys: state.keys.len() as u64,
        lost_ids: lost.iter().copied().take(LOST_IDS_LISTED).collect(),
        lost_ids_total: lost.len() as u64,
        max_id_read,
        ids_continue_after: state.max_id,
    })
}

/// The value seen most often (`preferred` among those tied for most, else the first of them),
/// or `preferred` when there is none.
fn most_common(values: impl Iterator<Item = u64>, preferred: Option<u64>) -> Option<u64> {
    let mut counts: Vec<(u64, usize)> = Vec::new();
    for value in values {
        match counts.iter_mut().find(|(seen, _)| *seen == value) {
            Some((_, count)) => *count += 1,
            None => counts.push((value, 1)),
        }
    }
    let most = counts.iter().map(|(_, count)| *count).max()?;
    let tied = counts.iter().filter(|(_, count)| *count == most);
    preferred
        .filter(|p| tied.clone().any(|(value, _)| value == p))
        .or_else(|| tied.clone().next().map(|(value, _)| *value))
        .or(preferred)
}

/// The highest task id a record names.
fn highest_id(record: &Record) -> u64 {
    let highest = |ids: &[record::IdRange]| ids.iter().map(|range| range.last()).max().unwrap_or(0);
    match record {
        Record::Accepted(accepted) => highest(&accepted.ids),
        Record::Started(started) => started.id,
        Record::Finished(finished) => finished.id,
        Record::Cancelled(cancelled) => cancelled.id,
        Record::CheckpointBegin(begin) => begin.max_id,
        Record::CheckpointTask(task) => task.id,
        Record::CheckpointFinished(task) => task.outcome.id,
        Record::CheckpointKey(key) => highest(&key.ids),
        Record::Segment(_) | Record::SegmentEnd(_) | Record::CheckpointEnd(_) => 0,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Moves `files` into `moved_to`, naming each in `moved`. When one cannot be moved, what the
/// repair did is undone (the files moved so far put back, its new `checkpoint` removed):
/// left half done, the next start would read the new checkpoint and delete the old files it
/// covers instead of keeping them aside.
fn move_aside(
    dir: &Path,
    files: impl Iterator<Item = PathBuf>,
    moved_to: &Path,
    moved: &mut Vec<String>,
    checkpoint: &Path,
    rename: impl Fn(&Path, &Path) -> std::io::Result<()>,
) -> Result<(), RepairError> {
    for path in files {
        let name = file_name(&path);
        if let Err(error) = rename(&path, &moved_to.join(&name)) {
            let mut undo_failure = None;
            for name in moved.iter().rev() {
                if let Err(undo) = std::fs::rename(moved_to.join(name), dir.join(name)) {
                    undo_failure.get_or_insert(format!("putting back {name}: {undo}"));
                }
            }
            if let Err(undo) = std::fs::remove_file(checkpoint) {
                undo_failure.get_or_insert(format!("removing {}: {undo}", checkpoint.display()));
            }
            if undo_failure.is_none() {
                let _ = std::fs::remove_dir(moved_to);
            }
            let _ = segment::sync_dir(dir);
            moved.clear();
            return Err(RepairError::MoveFailed {
                path,
                moved_to: moved_to.to_path_buf(),
                error,
                undo_failure,
            });
        }
        moved.push(name);
    }
    Ok(())
}

/// A new directory beside the log for its old files: `damaged-<UTC time>`, made durable.
fn aside_dir(dir: &Path) -> Result<PathBuf, WalError> {
    let stamp = UtcTime(writer::unix_now_us()).to_string();
    // 2026-12-02T16:05:01.123Z → 2026-12-02T16-05-01Z: no colons in a file name.
    let stamp = format!("{}Z", stamp.get(..19).unwrap_or(&stamp).replace(':', "-"));
    let mut attempt = 1;
    loop {
        let name = match attempt {
            1 => format!("damaged-{stamp}"),
            n => format!("damaged-{stamp}-{n}"),
        };
        let path = dir.join(name);
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {
                segment::sync_dir(dir).map_err(io_error("fsync", dir))?;
                return Ok(path);
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(error) => return Err(io_error("create", &path)(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_cannot_be_moved_aside_undoes_the_repair() {
        let dir = tempfile::tempdir().expect("temp dir");
        let names = [
            "wal-0000000000000001.seg",
            "wal-0000000000000002.seg",
            "wal-0000000000000003.seg",
        ];
        for name in names {
            std::fs::write(dir.path().join(name), name).expect("write");
        }
        let checkpoint = dir.path().join("checkpoint-0000000000000004.ckpt");
        std::fs::write(&checkpoint, "new").expect("write");
        let moved_to = dir.path().join("damaged-test");
        std::fs::create_dir(&moved_to).expect("mkdir");
        let mut moved = Vec::new();
        let refused = move_aside(
            dir.path(),
            names.iter().map(|name| dir.path().join(name)),
            &moved_to,
            &mut moved,
            &checkpoint,
            |from, to| {
                if from.ends_with(names[2]) {
                    Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
                } else {
                    std::fs::rename(from, to)
                }
            },
        )
        .expect_err("the third cannot move");
        let message = refused.to_string();
        assert!(message.contains("Nothing was changed"), "{message}");
        for name in names {
            assert_eq!(
                std::fs::read_to_string(dir.path().join(name)).expect("back in place"),
                name
            );
        }
        assert!(!checkpoint.exists(), "the repair's checkpoint is removed");
        assert!(!moved_to.exists(), "the empty aside directory is removed");
        assert!(moved.is_empty());
    }
}
