//! `goliath wal verify` and `goliath wal dump`: read a data directory without starting a node
//! (and without taking its lock, so they work beside a running node).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

use goliath::runtime::task::{exec_argv, quote_word};
use goliath::runtime::units::{HumanSize, UtcTime, counted, printable};
use goliath::runtime::wal::record::{OutputRecord, SpecRecord};
use goliath::runtime::wal::{self, Found, IdRange, Inspection, Record};

use crate::commands::CommandError;
use crate::exit;

fn file_name(path: &Path) -> Cow<'_, str> {
    path.file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_else(|| path.to_string_lossy())
}

fn usage(message: String) -> CommandError {
    CommandError {
        code: exit::USAGE,
        message,
    }
}

fn no_data_dir(dir: &Path) -> CommandError {
    if dir.exists() && !dir.is_dir() {
        return usage(format!(
            "{} is not a directory; pass the node's --data-dir (or --name, for the default location)",
            dir.display()
        ));
    }
    // The data directories beside it (a node's default one is named after the node, which
    // has the gossip port in it when gossip is on): the one meant is usually among them.
    let mut siblings: Vec<String> = dir
        .parent()
        .and_then(|parent| std::fs::read_dir(parent).ok())
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join(wal::segment::LOCK_FILE).exists())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    siblings.sort();
    let beside = match (siblings.len(), dir.parent()) {
        (0, _) | (_, None) => String::new(),
        (1, Some(parent)) => format!(
            "; the data directory beside it, in {}, is {} (pass it as --data-dir)",
            parent.display(),
            siblings[0]
        ),
        (_, Some(parent)) => format!(
            "; the data directories beside it, in {}, are {} (pass --data-dir with one of them)",
            parent.display(),
            siblings.join(", ")
        ),
    };
    usage(format!(
        "no data directory at {}; pass the node's --data-dir (or --name, for the default location){beside}",
        dir.display()
    ))
}

// Every node's directory has its lock file from its first start; a directory with neither
// that nor log files is some other directory (its parent, say), not an empty log.
fn not_a_data_dir(dir: &Path) -> CommandError {
    usage(format!(
        "{} is not a goliath data directory (no LOCK file, wal-*.seg segments or checkpoint); pass the node's --data-dir, or --name for the default location",
        dir.display()
    ))
}

fn inspect(
    dir: &Path,
    each: impl FnMut(&Path, u64, &Record, wal::Found),
) -> Result<Inspection, CommandError> {
    if !dir.is_dir() {
        return Err(no_data_dir(dir));
    }
    let inspection = wal::inspect(dir, each).map_err(|error| CommandError {
        code: exit::FAILURE,
        message: error.to_string(),
    })?;
    if inspection.files.is_empty() && !dir.join(wal::segment::LOCK_FILE).exists() {
        return Err(not_a_data_dir(dir));
    }
    Ok(inspection)
}

/// `goliath wal verify`: checks every record; exit 0 when a node would start on the
/// directory, 1 when it would refuse.
pub fn verify(dir: &Path, json: bool) -> Result<u8, CommandError> {
    let inspection = inspect(dir, |_, _, _, _| {})?;
    let healthy = inspection.healthy();
    // A healthy log in a directory a node cannot write to is no log a node starts on: the
    // exit code says whether one would (as `--help` promises), the text and JSON say why.
    let unwritable = not_writable(&inspection.dir);
    let writable = unwritable.is_none();
    if json {
        let value = serde_json::json!({
            "healthy": healthy,
            "writable": writable,
            "inspection": inspection
        });
        outln!("{value}");
    } else {
        out!("{}", verify_text(&inspection, unwritable.as_ref()));
    }
    Ok(if healthy && writable {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// Why a node could not write in `dir`, judged without changing anything: opening the LOCK
/// file a node left there for writing (no LOCK, no verdict).
fn not_writable(dir: &Path) -> Option<std::io::Error> {
    let lock = dir.join(goliath::runtime::wal::LOCK_FILE);
    match std::fs::OpenOptions::new().write(true).open(lock) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Some(error),
        _ => None,
    }
}

/// The report of `wal verify`; `unwritable` is why a node could not write in the directory.
fn verify_text(inspection: &Inspection, unwritable: Option<&std::io::Error>) -> String {
    let mut out = String::new();
    let _ = write!(out, "data directory {}", inspection.dir.display());
    match &inspection.locked_by {
        Some(pid) => {
            let _ = writeln!(
                out,
                " (in use by node pid {pid}: its last segment may be changing)"
            );
        }
        None => out.push('\n'),
    }
    if inspection.files.is_empty() {
        let _ = writeln!(out, "  no checkpoint and no segments: an empty log");
    }
    for file in &inspection.files {
        let name = file_name(&file.file);
        let status = match (&file.damage, &file.torn) {
            (Some(damage), _) if file.batch_before_damage > 0 => format!(
                "DAMAGED at {damage} ({} of its batch before it and {} after it, which `dump` shows; recovery reads neither)",
                counted(file.batch_before_damage, "whole record", "whole records"),
                file.after_damage
            ),
            (Some(damage), _) if file.after_damage > 0 => format!(
                "DAMAGED at {damage} ({} whole records after it, which `dump` shows)",
                file.after_damage
            ),
            (Some(damage), _) => format!("DAMAGED at {damage}"),
            (None, Some(torn)) => format!(
                "torn tail: {} bytes from offset {} are dropped at start (never acknowledged): {}",
                torn.bytes, torn.offset, torn.what
            ),
            (None, None) => "ok".to_string(),
        };
        let _ = writeln!(
            out,
            "  {name:<34} {:>8} {:<7}  {:>10}  {status}",
            file.records,
            if file.records == 1 {
                "record"
            } else {
                "records"
            },
            HumanSize::approx(file.size).to_string()
        );
    }
    for problem in &inspection.problems {
        let _ = writeln!(out, "  PROBLEM: {problem}");
    }
    for note in &inspection.notes {
        let _ = writeln!(out, "  NOTE: {note}");
    }
    if inspection.healthy() && inspection.locked_by.is_some() {
        let _ = writeln!(
            out,
            "healthy: nothing here stops a node from starting on this directory once the node holding it has stopped"
        );
    } else if let (true, Some(error)) = (inspection.healthy(), unwritable) {
        let _ = writeln!(
            out,
            "healthy, but a node cannot start on this directory: it cannot write there ({error}); mount it read-write or fix its permissions"
        );
    } else if inspection.healthy() {
        let _ = writeln!(out, "healthy: a node will start on this directory");
    } else {
        let _ = writeln!(
            out,
            "damaged: a node refuses to start on this directory, since starting could lose acknowledged tasks. `goliath wal dump` shows the records that are still readable; `goliath wal repair` makes a log of them that a node starts on (the old files kept aside)."
        );
    }
    out
}

/// `goliath wal dump`: every readable record, as text or JSON lines.
pub fn dump(dir: &Path, json: bool) -> Result<u8, CommandError> {
    let mut failed_write: Option<std::io::Error> = None;
    let inspection = inspect(dir, |path, offset, record, found| {
        let after_damage = found.after_damage();
        let before_damage = found == Found::StartsDamagedBatch;
        if failed_write.is_some() {
            return;
        }
        let line = if json {
            let mut line = serde_json::json!({
                "file": file_name(path),
                "offset": offset,
                "record": record,
            });
            if after_damage {
                line["after_damage"] = serde_json::Value::Bool(true);
            }
            if found.in_damaged_batch() {
                line["in_damaged_batch"] = serde_json::Value::Bool(true);
            }
            line.to_string()
        } else {
            // Specs, outputs and keys come from whoever submitted: shown, never sent to
            // the terminal as commands (JSON carries them as they are).
            format!(
                "{}@{offset} {}{}",
                file_name(path),
                printable(&describe(record), false),
                if after_damage {
                    "  (after the damage)"
                } else if before_damage {
                    "  (in the damaged batch, before the damage)"
                } else {
                    ""
                }
            )
        };
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout(), "{line}") {
            // Stop printing: quietly for a closed pipe (`| head`), else said below.
            failed_write = Some(error);
        }
    })?;
    if let Some(error) = failed_write
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(CommandError {
            code: exit::FAILURE,
            message: format!("cannot write to standard output: {error}; the dump is incomplete"),
        });
    }
    for file in &inspection.files {
        if let Some(damage) = &file.damage {
            let before = match file.batch_before_damage {
                0 => String::new(),
                count => format!(
                    "the {} before it in its batch are shown, marked \"in the damaged batch\" (whole, but recovery leaves out a batch that cannot be whole); ",
                    counted(count, "whole record", "whole records")
                ),
            };
            let after = match file.after_damage {
                0 => "no whole record follows it".to_string(),
                count => format!(
                    "the {count} whole records found after it are shown, marked \"after the damage\" (recovery does not read them; whatever lay between is lost)"
                ),
            };
            errln!(
                "goliath: {} is damaged at {damage}; {before}{after}",
                file_name(&file.file)
            );
        }
    }
    for problem in &inspection.problems {
        errln!("goliath: {problem}");
    }
    Ok(if inspection.healthy() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// `goliath wal repair`: makes a damaged log one a node starts on, from every record still
/// readable; the old files are moved aside, never deleted. Exit 0 when repaired (or healthy
/// already), 1 when it cannot be done.
pub fn repair(
    dir: &Path,
    history_limit: usize,
    key_limit: usize,
    json: bool,
) -> Result<u8, CommandError> {
    if !dir.is_dir() {
        return Err(no_data_dir(dir));
    }
    let listing = wal::segment::list(dir).map_err(|error| CommandError {
        code: exit::FAILURE,
        message: format!("cannot list {}: {error}", dir.display()),
    })?;
    if listing.segments.is_empty()
        && listing.checkpoints.is_empty()
        && !dir.join(wal::segment::LOCK_FILE).exists()
    {
        return Err(not_a_data_dir(dir));
    }
    let repaired = match wal::repair::repair(dir, history_limit, key_limit) {
        Ok(repaired) => repaired,
        Err(wal::repair::RepairError::Healthy(_)) => {
            if json {
                outln!(
                    "{}",
                    serde_json::json!({ "repaired": false, "healthy": true, "dir": dir })
                );
            } else {
                outln!(
                    "goliath: the write-ahead log in {} is healthy: a node starts on it; nothing was changed",
                    dir.display()
                );
            }
            return Ok(exit::OK);
        }
        Err(wal::repair::RepairError::Wal(wal::WalError::Locked { dir, pid })) => {
            // Not "give this one another --data-dir": the directory is the point.
            return Err(CommandError {
                code: exit::FAILURE,
                message: format!(
                    "a goliath node (pid {pid}) is running on {}: stop it first (`kill -TERM {pid}`, or `goliath shutdown --node ADDR` with the address it listens on), then run `goliath wal repair` again; nothing was changed",
                    dir.display()
                ),
            });
        }
        Err(error) => {
            return Err(CommandError {
                code: exit::FAILURE,
                message: error.to_string(),
            });
        }
    };
    if json {
        outln!(
            "{}",
            serde_json::json!({ "repaired": true, "healthy": true, "report": repaired })
        );
    } else {
        outln!("{}", repair_text(&repaired));
    }
    Ok(exit::OK)
}

fn repair_text(repaired: &wal::repair::Repaired) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "repaired the write-ahead log in {}",
        repaired.dir.display()
    );
    for damage in &repaired.damage {
        let _ = writeln!(out, "  was       {}", printable(damage, false));
    }
    let _ = writeln!(
        out,
        "  read      {} records{}",
        repaired.records,
        match repaired.records_after_damage {
            0 => String::new(),
            after => format!(" ({after} of them whole records found after damage)"),
        }
    );
    let batch_dropped = match (repaired.batch_head_dropped, repaired.batch_tail_dropped) {
        (0, 0) => None,
        (0, after) => Some(format!(
            "{} after the damage",
            counted(after, "whole record", "whole records")
        )),
        (before, 0) => Some(format!(
            "{} before the damage",
            counted(before, "whole record", "whole records")
        )),
        (before, after) => Some(format!(
            "{} before the damage and {after} after it",
            counted(before, "whole record", "whole records")
        )),
    };
    if let Some(dropped) = batch_dropped {
        let _ = writeln!(
            out,
            "  dropped   {dropped}: the rest of the batch the damaged record is in (a batch is kept whole or not at all; `goliath wal dump` on the moved files shows them)"
        );
    }
    for name in &repaired.foreign {
        let _ = writeln!(
            out,
            "  skipped   {name}: it belongs to another log (copied in from another data directory)"
        );
    }
    let _ = writeln!(
        out,
        "  kept      {} in flight (they run again at the next start), {} finished in the history, {}",
        counted(repaired.in_flight, "task", "tasks"),
        repaired.history,
        counted(repaired.keys, "idempotency key", "idempotency keys")
    );
    if repaired.damage.is_empty() {
        // Only files of another log were in the way: nothing of this one is lost.
        let _ = writeln!(
            out,
            "  lost      nothing: only files of another log were in the way; new ids continue after {}",
            repaired.ids_continue_after
        );
    } else {
        let _ = writeln!(
            out,
            "  lost      whatever the damaged bytes held, which cannot be read: tasks accepted there are gone, and a task that finished there runs again"
        );
        if repaired.lost_ids_total > 0 {
            // Tasks whose acceptance was in the damage but whose later records were read:
            // known by id only, so dropped; they may have run, even to the end.
            let listed: Vec<String> = repaired.lost_ids.iter().map(u64::to_string).collect();
            let more = repaired
                .lost_ids_total
                .saturating_sub(repaired.lost_ids.len() as u64);
            let _ = writeln!(
                out,
                "  lost      {} whose submission was in the damage, though later records of {} were read (started or finished): {}{}; they may have run, even to the end (`goliath wal dump` on the moved files shows what was read), and a retry under their idempotency key submits them again",
                counted(repaired.lost_ids_total, "task", "tasks"),
                if repaired.lost_ids_total == 1 {
                    "it"
                } else {
                    "them"
                },
                listed.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(
            out,
            "  ids       new ids continue after {} (the highest id read, {}, plus {}): a task lost in the damage may have had a higher id, and none is handed out again",
            repaired.ids_continue_after,
            repaired.max_id_read,
            wal::repair::ID_GAP
        );
    }
    let _ = writeln!(
        out,
        "  moved     the old files ({}) to {}: `goliath wal dump --data-dir` on it shows what they held; delete it once you no longer need it",
        repaired.moved.len(),
        repaired.moved_to.display()
    );
    let _ = write!(
        out,
        "a node now starts on this directory ({} holds the repaired log)",
        file_name(&repaired.checkpoint)
    );
    out
}

fn ids_text(ids: &[IdRange]) -> String {
    ids.iter()
        .map(|range| match range.count {
            0 | 1 => range.first.to_string(),
            _ => format!("{}..={}", range.first, range.last()),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A logged spec in the text form a user typed (`spec=[fib 20]`) when its kind is built in;
/// a kind some embedder registered is shown by its parts, which only it can read.
fn spec_text(spec: &SpecRecord<'_>) -> String {
    let kinds = goliath::runtime::task::Kinds::new();
    if let Some(kind) = kinds.lookup(&spec.kind) {
        let mut text = String::from("spec=[");
        kinds.format_into(
            &mut text,
            kind,
            spec.numbers,
            spec.text.as_deref(),
            (spec.timeout_ns != 0).then(|| std::time::Duration::from_nanos(spec.timeout_ns)),
        );
        text.push(']');
        return text;
    }
    let mut text = format!("kind={}", spec.kind);
    if spec.numbers != [0, 0] {
        let _ = write!(text, " numbers={},{}", spec.numbers[0], spec.numbers[1]);
    }
    if let Some(words) = &spec.text {
        if spec.kind == "exec" {
            // exec's argv, NUL-separated: each argument quoted on its own, so their
            // boundaries survive ("sh -c 'echo a; exit 3'" is three arguments, not six), and
            // a one-word command still reads as an argv.
            let argv: Vec<String> = exec_argv(words).map(quote_word).collect();
            let _ = write!(text, " argv=[{}]", argv.join(" "));
        } else {
            let _ = write!(text, " text={}", quote_word(words));
        }
    }
    if spec.timeout_ns != 0 {
        let _ = write!(text, " timeout_ns={}", spec.timeout_ns);
    }
    text
}

fn output_text(output: &OutputRecord<'_>) -> String {
    match output {
        OutputRecord::None => "-".to_string(),
        OutputRecord::Number(value) => value.to_string(),
        OutputRecord::Text(text) => quote_word(text),
        OutputRecord::Process {
            exit_code, signal, ..
        } => match (exit_code, signal) {
            (Some(code), _) => format!("exit:{code}"),
            (None, Some(signal)) => format!("signal:{signal}"),
            (None, None) => "no-exit-status".to_string(),
        },
    }
}

/// One record as a line of text.
fn describe(record: &Record) -> String {
    match record {
        // The number as the file names it (hex) beside the decimal: "segment 20" is
        // wal-0000000000000014.seg.
        Record::Segment(header) => format!(
            "segment {} ({}) version={} log={:016x} created={}",
            header.segment,
            goliath::runtime::wal::segment::segment_name(header.segment),
            header.version,
            header.log_id,
            UtcTime(header.created_unix_us)
        ),
        Record::Accepted(accepted) => format!(
            "accepted ids={} {}{} attempt={} at={}",
            ids_text(&accepted.ids),
            spec_text(&accepted.spec),
            accepted
                .key
                .as_ref()
                .map(|key| format!(" key={}", quote_word(key)))
                .unwrap_or_default(),
            accepted.attempt,
            UtcTime(accepted.submitted_unix_us)
        ),
        Record::Started(started) => format!(
            "started id={} attempt={} at={}",
            started.id,
            started.attempt,
            UtcTime(started.unix_us)
        ),
        Record::Finished(finished) => format!(
            "finished id={} state={} attempt={} output={}{} at={}",
            finished.id,
            finished.state,
            finished.attempt,
            output_text(&finished.output),
            finished
                .error
                .as_ref()
                .map(|error| format!(" error={}", quote_word(error)))
                .unwrap_or_default(),
            UtcTime(finished.finished_unix_us)
        ),
        Record::Cancelled(cancelled) => format!(
            "cancelled id={} at={}",
            cancelled.id,
            UtcTime(cancelled.unix_us)
        ),
        Record::CheckpointBegin(begin) => format!(
            "checkpoint covers the segments before {} max_id={} version={} log={:016x} created={}",
            goliath::runtime::wal::segment::segment_name(begin.next_segment),
            begin.max_id,
            begin.version,
            begin.log_id,
            UtcTime(begin.created_unix_us)
        ),
        Record::CheckpointTask(task) => format!(
            "in-flight id={} {} attempt={}{}{}",
            task.id,
            spec_text(&task.spec),
            task.attempt,
            if task.started { " started" } else { "" },
            if task.cancel_requested {
                " cancel-requested"
            } else {
                ""
            }
        ),
        Record::CheckpointFinished(task) => format!(
            "history id={} {} state={} attempt={} output={}{}",
            task.outcome.id,
            spec_text(&task.spec),
            task.outcome.state,
            task.outcome.attempt,
            output_text(&task.outcome.output),
            task.outcome
                .error
                .as_ref()
                .map(|error| format!(" error={}", quote_word(error)))
                .unwrap_or_default()
        ),
        Record::CheckpointKey(key) => {
            format!("key {} ids={}", quote_word(&key.key), ids_text(&key.ids))
        }
        Record::SegmentEnd(end) => format!(
            "segment end: segment {} ({}) closed, the log goes on in the next",
            end.segment,
            goliath::runtime::wal::segment::segment_name(end.segment)
        ),
        Record::CheckpointEnd(end) => format!(
            "checkpoint end: {} in flight, {} finished, {} key records",
            end.live, end.finished, end.keys
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &'static str, text: &'static str) -> SpecRecord<'static> {
        SpecRecord {
            kind: Cow::Borrowed(kind),
            numbers: [0, 0],
            text: Some(Cow::Borrowed(text)),
            timeout_ns: 0,
        }
    }

    #[test]
    fn a_built_in_kind_reads_as_the_text_form_and_exec_keeps_its_argument_boundaries() {
        assert_eq!(
            spec_text(&spec("exec", "sh\0-c\0echo a; exit 3")),
            "spec=[exec -- sh -c \"echo a; exit 3\"]"
        );
        assert_eq!(spec_text(&spec("exec", "true")), "spec=[exec -- true]");
        assert_eq!(
            spec_text(&spec("echo", "hello there")),
            "spec=[echo hello there]"
        );
        let spin = SpecRecord {
            kind: Cow::Borrowed("spin"),
            numbers: [200_000_000, 0],
            text: None,
            timeout_ns: 5_000_000_000,
        };
        assert_eq!(spec_text(&spin), "spec=[spin 200ms timeout=5s]");
    }

    #[test]
    fn a_kind_this_binary_does_not_know_is_shown_by_its_parts() {
        assert_eq!(
            spec_text(&spec("resize", "a b")),
            "kind=resize text=\"a b\""
        );
    }
}
