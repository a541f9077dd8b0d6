//! The console's state and its pure update logic: a key, a click or a reply from the node goes
//! in, the state changes, and [`Command`]s for the connection come out. Nothing here touches
//! the terminal, the network or the clock beyond `Instant` stamps, so every behaviour is
//! tested without a terminal.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};
use tui_logger::{TuiWidgetEvent, TuiWidgetState};

use super::keys::{Action, KeyChord, Keymap, Resolved};
use super::theme::{Glyphs, Theme};
use crate::runtime::{Kinds, NodeInfo, NodeSnapshot, TaskId, TaskInfo, TaskState};

/// Samples kept for sparklines and charts.
pub const HISTORY_SAMPLES: usize = 120;
/// Submit prompt lines remembered.
pub const PROMPT_HISTORY: usize = 100;
/// How long a status message stays.
pub const STATUS_TTL: Duration = Duration::from_secs(8);
/// A status message younger than this is one the operator is still reading.
const FRESH_STATUS: Duration = Duration::from_secs(3);

/// How the console was started; fixed for its lifetime.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hide submit and cancel.
    pub readonly: bool,
    /// Colours.
    pub theme: Theme,
    /// Symbols.
    pub glyphs: Glyphs,
    /// Whether mouse events are enabled.
    pub mouse: bool,
    /// The address of a remote node (`--connect`), or None for the local node.
    pub remote: Option<String>,
    /// How many tasks the console asks the node to list (`console.task_limit`): a list that
    /// long may be the newest of more.
    pub task_limit: usize,
}

/// The tabs, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Workers, arena, tasks and logs at a glance.
    Overview,
    /// Every task, sortable and filterable, with details.
    Tasks,
    /// The log with targets and levels.
    Logs,
    /// Cluster membership (says how to turn gossip on when it is off).
    Cluster,
}

impl Tab {
    /// All tabs, in key order (`1`, `2`, …).
    pub const ALL: [Tab; 4] = [Tab::Overview, Tab::Tasks, Tab::Logs, Tab::Cluster];

    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Tasks => "Tasks",
            Tab::Logs => "Logs",
            Tab::Cluster => "Cluster",
        }
    }
}

/// The panes of the Overview tab, in focus order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    /// Per-worker deque depth and rates.
    Workers,
    /// Arena occupancy.
    Arena,
    /// Tasks finished per second over time.
    Throughput,
    /// The write-ahead log (durable nodes only).
    Wal,
    /// Recent tasks.
    Tasks,
    /// Cluster membership at a glance (when gossip is on).
    Cluster,
    /// The log tail.
    Log,
}

impl Pane {
    /// Focus order.
    pub const ALL: [Pane; 7] = [
        Pane::Workers,
        Pane::Arena,
        Pane::Throughput,
        Pane::Wal,
        Pane::Tasks,
        Pane::Cluster,
        Pane::Log,
    ];

    /// The pane's title.
    pub fn title(self) -> &'static str {
        match self {
            Pane::Workers => "Workers",
            Pane::Arena => "Arena",
            Pane::Throughput => "Throughput",
            Pane::Wal => "WAL",
            Pane::Cluster => "Cluster",
            Pane::Tasks => "Tasks",
            Pane::Log => "Log",
        }
    }
}

/// The columns a task table narrower than 100 columns leaves out.
pub const NARROW_HIDDEN: [SortColumn; 2] = [SortColumn::Kind, SortColumn::Attempt];

/// A column the task table can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// Task id (submission order).
    Id,
    /// Kind name.
    Kind,
    /// State.
    State,
    /// Worker.
    Worker,
    /// First run time.
    Started,
    /// Run duration.
    Duration,
    /// Attempt number.
    Attempt,
    /// The spec's text.
    Spec,
}

impl SortColumn {
    /// Cycle order.
    pub const ALL: [SortColumn; 8] = [
        SortColumn::Id,
        SortColumn::State,
        SortColumn::Kind,
        SortColumn::Worker,
        SortColumn::Started,
        SortColumn::Duration,
        SortColumn::Attempt,
        SortColumn::Spec,
    ];

    /// The column header.
    pub fn title(self) -> &'static str {
        match self {
            SortColumn::Id => "ID",
            SortColumn::Kind => "KIND",
            SortColumn::State => "STATE",
            SortColumn::Worker => "WORKER",
            SortColumn::Started => "STARTED",
            SortColumn::Duration => "DURATION",
            SortColumn::Attempt => "ATTEMPT",
            SortColumn::Spec => "SPEC",
        }
    }

    /// The next column in screen order, skipping those a narrow table leaves out.
    fn next(self, narrow: bool) -> SortColumn {
        let index = SortColumn::ALL.iter().position(|c| *c == self).unwrap_or(0);
        (1..=SortColumn::ALL.len())
            .map(|step| SortColumn::ALL[(index + step) % SortColumn::ALL.len()])
            .find(|column| !(narrow && NARROW_HIDDEN.contains(column)))
            .unwrap_or(SortColumn::Id)
    }
}

/// A one-line text input with a cursor (in characters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineInput {
    /// What is typed.
    pub text: String,
    /// Cursor position, in characters.
    pub cursor: usize,
    /// A problem with the text, shown under it.
    pub error: Option<String>,
    /// Where in the history ↑/↓ is (None: the line being typed).
    history_index: Option<usize>,
    /// The line being typed when history browsing began.
    draft: String,
    /// Enter sent the text and the node has not answered yet: the prompt stays open, its
    /// text held, so that a refusal lands where the operator is looking rather than in a
    /// prompt that reopens under the next key.
    pub sending: bool,
    /// `error` says the text was not sent (no connection): it goes once the node answers.
    pub unsent: bool,
}

impl LineInput {
    /// An input holding `text`, cursor at the end.
    pub fn with_text(text: &str) -> LineInput {
        LineInput {
            text: text.to_string(),
            cursor: text.chars().count(),
            ..LineInput::default()
        }
    }

    fn byte_index(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map(|(i, _)| i)
            .unwrap_or(self.text.len())
    }

    /// Applies an editing key; true if the text changed.
    fn edit(&mut self, key: &KeyEvent) -> bool {
        let control = key.modifiers.contains(KeyModifiers::CONTROL);
        let length = self.text.chars().count();
        match key.code {
            KeyCode::Char('u') if control => {
                let at = self.byte_index(self.cursor);
                self.text.replace_range(..at, "");
                self.cursor = 0;
                true
            }
            KeyCode::Char('w') if control => {
                let before: Vec<char> = self.text.chars().take(self.cursor).collect();
                let mut start = before.len();
                while start > 0 && before[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && before[start - 1] != ' ' {
                    start -= 1;
                }
                let (from, to) = (self.byte_index(start), self.byte_index(self.cursor));
                self.text.replace_range(from..to, "");
                self.cursor = start;
                true
            }
            KeyCode::Char('a') if control => {
                self.cursor = 0;
                false
            }
            KeyCode::Char('e') if control => {
                self.cursor = length;
                false
            }
            KeyCode::Char(c) if !control => {
                let at = self.byte_index(self.cursor);
                self.text.insert(at, c);
                self.cursor += 1;
                true
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let at = self.byte_index(self.cursor - 1);
                self.text.remove(at);
                self.cursor -= 1;
                true
            }
            KeyCode::Delete if self.cursor < length => {
                let at = self.byte_index(self.cursor);
                self.text.remove(at);
                true
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                false
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(length);
                false
            }
            KeyCode::Home => {
                self.cursor = 0;
                false
            }
            KeyCode::End => {
                self.cursor = length;
                false
            }
            _ => false,
        }
    }

    /// Inserts pasted `text` at the cursor as one line: line breaks and tabs become spaces,
    /// other control characters are dropped, and at most [`PASTE_MAX`] characters are taken.
    /// Returns whether the paste was cut.
    fn insert_pasted(&mut self, text: &str) -> bool {
        let at = self.byte_index(self.cursor);
        let mut kept = text.chars().filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        });
        let pasted: String = kept.by_ref().take(PASTE_MAX).collect();
        let cut = kept.next().is_some();
        let pasted = pasted.trim_end();
        self.text.insert_str(at, pasted);
        self.cursor += pasted.chars().count();
        cut
    }

    /// ↑ (`older`) or ↓ through `history` (oldest first).
    fn browse(&mut self, history: &VecDeque<String>, older: bool) {
        if history.is_empty() {
            return;
        }
        let next = match (self.history_index, older) {
            (None, true) => {
                self.draft = self.text.clone();
                Some(history.len() - 1)
            }
            (None, false) => None,
            (Some(i), true) => Some(i.saturating_sub(1)),
            (Some(i), false) if i + 1 < history.len() => Some(i + 1),
            (Some(_), false) => None,
        };
        self.history_index = next;
        let text = match next {
            Some(i) => history[i].clone(),
            None => std::mem::take(&mut self.draft),
        };
        self.cursor = text.chars().count();
        self.text = text;
    }
}

/// The most characters one paste puts into a prompt.
const PASTE_MAX: usize = 4096;

/// Failure reasons a cancel summary names; tasks failing for others are counted.
const FAILURES_NAMED: usize = 3;

/// One status line for the results of a cancel: the counts first (the status line shows a
/// few rows, and a long account is cut), then tasks with the same outcome together, their
/// ids as runs ("30 tasks (132–161): cancel requested · task 24: already succeeded …"),
/// requests first, failures grouped by reason. Runs past the first four are left out
/// (`…`), as are failure reasons past the first three; [`cancel_account`] has everything.
fn cancel_summary(results: Vec<(TaskId, Result<String, String>)>) -> String {
    cancel_text(results, 4, FAILURES_NAMED)
}

/// The longer account of a cancel, for the log: up to [`ACCOUNT_RUNS`] runs of ids per
/// outcome and [`ACCOUNT_REASONS`] failure reasons (every id of a cancel of thousands, one
/// line of the log, filled the Log pane; `goliath tasks` lists them all).
fn cancel_account(results: Vec<(TaskId, Result<String, String>)>) -> String {
    cancel_text(results, ACCOUNT_RUNS, ACCOUNT_REASONS)
}

/// Runs of ids per outcome the log's account of a cancel names.
const ACCOUNT_RUNS: usize = 32;
/// Failure reasons the log's account of a cancel names.
const ACCOUNT_REASONS: usize = 10;

fn cancel_text(
    results: Vec<(TaskId, Result<String, String>)>,
    runs: usize,
    reasons: usize,
) -> String {
    if let [(id, result)] = results.as_slice() {
        return match result {
            Ok(what) => format!("task {id}: {what}"),
            Err(error) => format!("cancel {id} failed: {error}"),
        };
    }
    let mut outcomes: Vec<(String, Vec<TaskId>)> = Vec::new();
    let mut failures: Vec<(String, Vec<TaskId>)> = Vec::new();
    for (id, result) in results {
        let (groups, text) = match result {
            Ok(what) => (&mut outcomes, what),
            // The reason without its id, so that tasks failing alike are one group.
            Err(error) => (&mut failures, without_task_id(&error, id)),
        };
        match groups.iter_mut().find(|(known, _)| *known == text) {
            Some((_, ids)) => ids.push(id),
            None => groups.push((text, vec![id])),
        }
    }
    let count =
        |groups: &[(String, Vec<TaskId>)]| groups.iter().map(|(_, ids)| ids.len()).sum::<usize>();
    let requested: usize = outcomes
        .iter()
        .filter(|(what, _)| what == "cancel requested")
        .map(|(_, ids)| ids.len())
        .sum();
    let others = count(&outcomes) - requested;
    let failed = count(&failures);
    // "failed" alone would read as the task state: say what did not happen.
    let head: Vec<String> = [
        (requested, "cancel requested"),
        (others, "already finished"),
        (failed, "not cancelled"),
    ]
    .into_iter()
    .filter(|(tasks, _)| *tasks > 0)
    .map(|(tasks, what)| format!("{tasks} {what}"))
    .collect();
    // Needed only when there is more than one outcome to count.
    let mut parts: Vec<String> = if head.len() > 1 {
        vec![format!("cancel: {}", head.join(", "))]
    } else {
        Vec::new()
    };
    // Requests first, the tasks there was nothing to do for after.
    outcomes.sort_by_key(|(what, _)| what != "cancel requested");
    parts.extend(
        outcomes
            .into_iter()
            .map(|(what, ids)| format!("{}: {what}", id_ranges(&ids, runs))),
    );
    let unnamed: usize = failures
        .iter()
        .skip(reasons)
        .map(|(_, ids)| ids.len())
        .sum();
    parts.extend(
        failures
            .into_iter()
            .take(reasons)
            .map(|(why, ids)| format!("cancel of {} failed: {why}", id_ranges(&ids, runs))),
    );
    if unnamed > 0 {
        parts.push(format!("{unnamed} more not cancelled"));
    }
    parts.join(" · ")
}

/// `error` with its "task ID" said as "task", so that tasks failing alike read alike. Only
/// that phrase is touched: an address or count that happens to hold the id's digits
/// ("the node at 127.0.0.1" for task 127) stays as it is.
fn without_task_id(error: &str, id: TaskId) -> String {
    let phrase = format!("task {id}");
    let mut from = 0;
    while let Some(found) = error[from..].find(&phrase) {
        let at = from + found;
        let end = at + phrase.len();
        if !error[end..].starts_with(|c: char| c.is_ascii_digit()) {
            return format!("{}task{}", &error[..at], &error[end..]);
        }
        from = end;
    }
    error.to_string()
}

/// `task 7`, or `N tasks (3–9, 12, 20–24)`: ids sorted, runs of consecutive ids as ranges,
/// at most `runs` of them (then `…`).
fn id_ranges(ids: &[TaskId], runs: usize) -> String {
    if let [id] = ids {
        return format!("task {id}");
    }
    let found = crate::runtime::task::id_runs(ids);
    let count: u64 = found.iter().map(|(first, last)| last.0 - first.0 + 1).sum();
    let mut shown: Vec<String> = found
        .iter()
        .take(runs)
        .map(|(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}–{last}")
            }
        })
        .collect();
    if found.len() > runs {
        shown.push("…".to_string());
    }
    format!("{count} tasks ({})", shown.join(", "))
}

/// The most ids one palette `cancel` takes (a range counts each id in it).
const CANCEL_IDS_MAX: u64 = 10_000;

/// The ids of a palette `cancel`: ids and ranges (`28-127`), separated by spaces or commas.
/// Past [`CANCEL_IDS_MAX`] the error points to the command line's larger limit.
fn parse_cancel_ids(text: &str) -> Result<Vec<TaskId>, String> {
    use crate::runtime::task::TaskIdsError;
    crate::runtime::task::parse_task_ids(text, CANCEL_IDS_MAX).map_err(|error| match error {
        TaskIdsError::Malformed(message) => message,
        TaskIdsError::TooMany(message) => format!(
            "{message} (or use `goliath cancel`, which takes up to {})",
            crate::runtime::task::CLI_CANCEL_IDS_MAX
        ),
    })
}

/// Adds `text` to the newest end of `history` (unless it is the newest already), forgetting
/// the oldest beyond [`PROMPT_HISTORY`].
fn remember(history: &mut VecDeque<String>, text: &str) {
    if history.back().map(String::as_str) != Some(text) {
        if history.len() == PROMPT_HISTORY {
            history.pop_front();
        }
        history.push_back(text.to_string());
    }
}

/// A modal layer over the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// The help, generated from the keymap.
    Help {
        /// Lines scrolled.
        scroll: u16,
    },
    /// `:` commands.
    Palette(LineInput),
    /// `n`: a task spec to submit.
    Submit(LineInput),
    /// `/`: the task filter being edited.
    Filter(LineInput),
    /// `x`: waiting for y/n.
    Confirm {
        /// The task to cancel.
        id: TaskId,
        /// Its spec, shown in the question.
        spec: String,
        /// Its state, shown in the question.
        state: TaskState,
    },
}

/// How bad a status message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something happened as asked.
    Info,
    /// Something needs attention.
    Warning,
    /// Something failed.
    Error,
}

/// Which of the node's tasks the list holds: the node sends every task in flight, then the
/// newest others, up to `console.task_limit`. A filter searches only those, and "0 of 1000"
/// must not read as "none on the node".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// Every task the node knows of.
    All,
    /// The newest only: the node has more.
    Newest,
    /// Tasks in flight only: they fill the limit, and no finished task is listed though
    /// some finished.
    InFlightOnly,
}

/// What the node's list holds (see [`Listed`]). The counts are since this start, so after a
/// restart only a full list says the history holds more.
impl Listed {
    /// What `snapshot`'s list holds, asked for with `task_limit`.
    pub fn of(snapshot: &NodeSnapshot, task_limit: usize) -> Listed {
        let c = &snapshot.counts;
        let capped = c.queued + c.running + c.finished() > snapshot.tasks.len() as u64
            || snapshot.tasks.len() >= task_limit;
        if !capped {
            Listed::All
        } else if c.finished() > 0 && snapshot.tasks.iter().all(|t| !t.state.is_finished()) {
            Listed::InFlightOnly
        } else {
            Listed::Newest
        }
    }

    /// `shown` tasks of the `total` listed, as titles say it: "3 of 10", "3 of the 10
    /// newest", "3 of 10 in flight".
    pub fn count(self, shown: usize, total: usize) -> String {
        match self {
            Listed::All => format!("{shown} of {total}"),
            Listed::Newest => format!("{shown} of the {total} newest"),
            Listed::InFlightOnly => format!("{shown} of {total} in flight"),
        }
    }
}

/// A message in the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The text.
    pub text: String,
    /// How bad.
    pub severity: Severity,
    /// When it disappears.
    pub until: Instant,
}

/// The link to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Waiting for the first answer.
    Connecting,
    /// Samples are arriving.
    Up,
    /// Connected, but the node has not answered the last sample request for a while (it is
    /// stopped or overloaded): what is shown is from before.
    Unanswered {
        /// When the unanswered request was sent.
        since: Instant,
    },
    /// The connection failed; the console retries.
    Down {
        /// Why.
        error: String,
        /// When the next attempt is made.
        retry_at: Instant,
        /// The node refused the handshake, rather than being out of reach.
        refused: bool,
    },
}

/// A task's detail view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// Which task.
    pub id: TaskId,
    /// What the node said about it (refreshed while open).
    pub info: Option<TaskInfo>,
    /// Why it could not be fetched.
    pub error: Option<String>,
    /// Lines scrolled.
    pub scroll: u16,
    /// Whether `info` is the node's whole record of the finished task, fetched by itself
    /// (a task list's copy cuts each output to 1 KiB): then no sample replaces it.
    pub complete: bool,
}

/// Rates derived from two samples in a row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// Tasks finished per second.
    pub tasks_per_s: f64,
    /// Steals per second, all workers.
    pub steals_per_s: f64,
    /// Steals per second, per worker.
    pub worker_steals_per_s: Vec<f64>,
    /// Tasks executed per second, per worker.
    pub worker_tasks_per_s: Vec<f64>,
}

/// What the status line says when Esc clears the task filter.
const FILTER_CLEARED: &str = "filter cleared";

/// Samples over time, kept by the console (so a remote console has them too).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Deque depth per worker, oldest first.
    pub depth: Vec<VecDeque<u64>>,
    /// Tasks finished per second, oldest first.
    pub tasks_per_s: VecDeque<u64>,
    /// WAL fdatasync latency (p50, p99) over the node's window, µs, oldest first; `None`
    /// for a sample whose window held no fdatasync (no latency, rather than a zero one).
    pub fsync_latency: VecDeque<Option<(f64, f64)>>,
    /// The latest rates.
    pub rates: Rates,
}

fn push_bounded<T>(ring: &mut VecDeque<T>, value: T) {
    if ring.len() == HISTORY_SAMPLES {
        ring.pop_front();
    }
    ring.push_back(value);
}

impl Series {
    /// Adds a sample, computing rates against the previous one.
    fn record(&mut self, previous: Option<&NodeSnapshot>, next: &NodeSnapshot) {
        if self.depth.len() != next.workers.len() {
            self.depth = vec![VecDeque::with_capacity(HISTORY_SAMPLES); next.workers.len()];
        }
        for (ring, worker) in self.depth.iter_mut().zip(&next.workers) {
            push_bounded(ring, worker.depth as u64);
        }
        if let Some(wal) = &next.wal {
            push_bounded(
                &mut self.fsync_latency,
                (wal.window_fsyncs > 0).then_some((wal.fsync_p50_us, wal.fsync_p99_us)),
            );
        }
        let Some(previous) = previous else {
            return;
        };
        let elapsed_us = next
            .node
            .now_unix_us
            .saturating_sub(previous.node.now_unix_us);
        if elapsed_us == 0 || previous.node.started_unix_us != next.node.started_unix_us {
            return;
        }
        let seconds = elapsed_us as f64 / 1e6;
        let per_second = |now: u64, before: u64| now.saturating_sub(before) as f64 / seconds;
        let tasks = per_second(next.counts.finished(), previous.counts.finished());
        let mut rates = Rates {
            tasks_per_s: tasks,
            ..Rates::default()
        };
        for (index, worker) in next.workers.iter().enumerate() {
            let before = previous.workers.get(index);
            let stole = per_second(worker.stole, before.map_or(worker.stole, |w| w.stole));
            let executed = per_second(
                worker.executed,
                before.map_or(worker.executed, |w| w.executed),
            );
            rates.steals_per_s += stole;
            rates.worker_steals_per_s.push(stole);
            rates.worker_tasks_per_s.push(executed);
        }
        push_bounded(&mut self.tasks_per_s, tasks.round() as u64);
        self.rates = rates;
    }
}

/// What changed when a sample comes from another process than the one before: another node
/// at the same address, or the same node restarted; `None` for the same process.
fn node_change(before: &NodeInfo, now: &NodeInfo) -> Option<String> {
    if before.name != now.name {
        Some(format!(
            "a different node answers now: {} (was {})",
            now.name, before.name
        ))
    } else if before.pid != now.pid || before.started_unix_us != now.started_unix_us {
        Some(format!(
            "node {} restarted (pid {}, was {})",
            now.name, now.pid, before.pid
        ))
    } else {
        None
    }
}

/// What is on screen: the latest sample and its history.
#[derive(Debug, Clone, Default)]
pub struct ViewData {
    /// The latest sample, once one arrived.
    pub snapshot: Option<NodeSnapshot>,
    /// History of samples.
    pub series: Series,
    /// When the latest sample arrived, to say how old the figures are once the node stops
    /// answering.
    pub received_at: Option<Instant>,
}

/// Where things were drawn in the last frame, for the mouse and for paging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HitMap {
    /// Each tab's title.
    pub tabs: Vec<(Rect, usize)>,
    /// Each Overview pane.
    pub panes: Vec<(Rect, Pane)>,
    /// The rows area of the task table on screen.
    pub task_rows: Option<Rect>,
    /// The tasks drawn in those rows, top first, and the index of the first among the
    /// table's rows: a click selects the task that was on screen under it, whatever has
    /// arrived or scrolled since.
    pub task_ids: Vec<TaskId>,
    /// See `task_ids`.
    pub task_offset: usize,
    /// The log pane or widget.
    pub log: Option<Rect>,
    /// The detail view.
    pub detail: Option<Rect>,
    /// The workers list.
    pub workers: Option<Rect>,
    /// The terminal is too small for the console: only its notice is drawn, and keys other
    /// than quit do nothing (an open prompt or question waits, out of sight, untouched).
    pub too_small: bool,
    /// How far the open help can scroll (its last line at the bottom).
    pub help_scroll_max: u16,
    /// How far the open task detail can scroll (its last row at the bottom).
    pub detail_scroll_max: u16,
    /// The Tasks tab's table is narrow: it leaves out [`NARROW_HIDDEN`], and sorting skips
    /// them.
    pub narrow_tasks: bool,
    /// Member rows the Cluster tab's table shows at once (its page for PgUp/PgDn).
    pub member_rows: usize,
}

/// Something the connection must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Submit one line of the text form.
    Submit(String),
    /// Cancel tasks (one reply for all, so the status line can report every one).
    Cancel(Vec<TaskId>),
    /// Fetch one task for the detail view.
    FetchTask(TaskId),
}

/// The node's answer to a [`Command`] or a sample.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A new sample.
    Snapshot(Box<NodeSnapshot>),
    /// The result of a submit.
    Submitted {
        /// What was submitted.
        text: String,
        /// The new ids, or why not.
        result: Result<Vec<TaskId>, String>,
        /// The node (or the console, before sending) refused it: nothing was taken, so the
        /// text may be edited and sent again. False when the outcome is unknown.
        refused: bool,
        /// It reached the node (false: not connected, so never sent).
        sent: bool,
    },
    /// The result of a cancel, per task in the order asked.
    Cancelled {
        /// Which task, and what happened or why not.
        results: Vec<(TaskId, Result<String, String>)>,
    },
    /// A task's description for the detail view.
    Task {
        /// Which task.
        id: TaskId,
        /// It, or why not.
        result: Result<Box<TaskInfo>, String>,
    },
    /// The node has not answered a sample request sent at `since` (it is still waited for).
    Unanswered {
        /// When the request was sent.
        since: Instant,
    },
    /// The link went down; retrying.
    Disconnected {
        /// Why.
        error: String,
        /// When the next attempt is made.
        retry_in: Duration,
        /// The node answered and refused the handshake (another cluster or protocol): a
        /// reason that will not pass by itself.
        refused: bool,
    },
}

/// The whole console state.
pub struct App {
    /// Fixed options.
    pub options: Options,
    /// The live keymap.
    pub keymap: Keymap,
    /// Current tab.
    pub tab: Tab,
    /// Focused Overview pane.
    pub focus: Pane,
    /// Whether the focused pane fills the body.
    pub zoomed: bool,
    /// The modal layer, if any.
    pub overlay: Option<Overlay>,
    /// What arrives from the node.
    pub live: ViewData,
    /// What is shown while paused.
    pub frozen: Option<ViewData>,
    /// The link to the node.
    pub link: Link,
    /// The selected task.
    pub selected: Option<TaskId>,
    /// First task row shown.
    pub task_offset: usize,
    /// The task filter (`!` inverts).
    pub filter: String,
    /// Sort column and direction.
    pub sort: (SortColumn, bool),
    /// Rows scrolled in the workers pane.
    pub workers_offset: usize,
    /// Rows scrolled in the Cluster tab's member table.
    pub members_offset: usize,
    /// The open detail view.
    pub detail: Option<Detail>,
    /// Submitted specs (from `n` or the palette's `submit`), oldest first.
    pub prompt_history: VecDeque<String>,
    /// Palette lines run, oldest first: a history apart, so ↑ at the submit prompt never
    /// offers `cancel 42` as a spec.
    pub palette_history: VecDeque<String>,
    /// The status line.
    pub status: Option<Status>,
    /// First key of a two-key binding.
    pub pending: Vec<KeyChord>,
    /// Where things were drawn last.
    pub hits: HitMap,
    /// The log widget's state (targets, levels, paging).
    pub log_state: TuiWidgetState,
    /// Whether the log was paged back and so no longer follows new lines (until Esc);
    /// tui-logger keeps that to itself, the titles say it.
    pub log_paged: bool,
    /// Whether the Logs tab hides its target list (`t`).
    pub log_targets_hidden: bool,
    /// Whether the log shows only the selected target's lines (`f`).
    pub log_focused: bool,
    /// Parses specs as they are typed (the node's kinds when local, the built-ins remotely).
    kinds: Kinds,
    /// Set when the user asked to quit.
    pub quit: bool,
    /// A frame must be drawn before the next key is taken (see `log_event`).
    pub draw_before_next_key: bool,
    /// The node said it shut down as it closed the connection (cleared by its next sample).
    pub node_said_shut_down: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("tab", &self.tab)
            .field("focus", &self.focus)
            .field("overlay", &self.overlay)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

/// Shorthand for "the update changed nothing the node must do".
const NOTHING: Vec<Command> = Vec::new();

/// Where a state sorts in the task table (by state, ascending): running, queued, failed,
/// timed out, cancelled, succeeded.
fn state_rank(state: TaskState) -> u8 {
    match state {
        TaskState::Running => 0,
        TaskState::Queued => 1,
        TaskState::Failed => 2,
        TaskState::TimedOut => 3,
        TaskState::Cancelled => 4,
        TaskState::Succeeded => 5,
    }
}

/// One command of the palette, as it is typed and as the console lists it.
struct PaletteCommand {
    name: &'static str,
    usage: &'static str,
    /// Changes the node's tasks, so a read-only console refuses it.
    writes: bool,
}

/// Every palette command, in the order the console lists them (`quit` is also taken for `q`).
const PALETTE_COMMANDS: [PaletteCommand; 7] = [
    PaletteCommand {
        name: "submit",
        usage: "submit SPEC",
        writes: true,
    },
    PaletteCommand {
        name: "cancel",
        usage: "cancel ID… or A-B",
        writes: true,
    },
    PaletteCommand {
        name: "task",
        usage: "task ID",
        writes: false,
    },
    PaletteCommand {
        name: "tab",
        usage: "tab NAME",
        writes: false,
    },
    PaletteCommand {
        name: "help",
        usage: "help",
        writes: false,
    },
    PaletteCommand {
        name: "pause",
        usage: "pause",
        writes: false,
    },
    PaletteCommand {
        name: "q",
        usage: "q",
        writes: false,
    },
];

impl App {
    /// A console with no data yet.
    pub fn new(options: Options, keymap: Keymap, kinds: Kinds) -> App {
        App {
            options,
            keymap,
            tab: Tab::Overview,
            focus: Pane::Tasks,
            zoomed: false,
            overlay: None,
            live: ViewData::default(),
            frozen: None,
            link: Link::Connecting,
            selected: None,
            task_offset: 0,
            filter: String::new(),
            sort: (SortColumn::Id, true),
            workers_offset: 0,
            members_offset: 0,
            detail: None,
            prompt_history: VecDeque::new(),
            palette_history: VecDeque::new(),
            status: None,
            pending: Vec::new(),
            hits: HitMap::default(),
            log_state: TuiWidgetState::new(),
            log_paged: false,
            log_targets_hidden: false,
            log_focused: false,
            kinds,
            quit: false,
            draw_before_next_key: false,
            node_said_shut_down: false,
        }
    }

    /// What to draw: the frozen data while paused, else the live data.
    pub fn view(&self) -> &ViewData {
        self.frozen.as_ref().unwrap_or(&self.live)
    }

    /// Whether the node is shutting down or shut down: its latest sample said it accepts
    /// nothing more, or it said it shut down as it closed the connection.
    pub fn node_shutting_down(&self) -> bool {
        // The node said so as it closed the connection, or its last sample did.
        self.node_said_shut_down
            || self
                .live
                .snapshot
                .as_ref()
                .is_some_and(|snapshot| !snapshot.node.accepting)
    }

    /// The node's clock now, as far as the console can tell: the last sample's reading, plus
    /// the time since it arrived while the link is down or unanswered (so the ages shown keep
    /// growing while no figures come); the sample's own reading while live or paused.
    pub fn node_now_us(&self) -> u64 {
        let sampled = self.sampled_now_us();
        let waiting = matches!(self.link, Link::Down { .. } | Link::Unanswered { .. });
        match (waiting && !self.paused(), self.view().received_at) {
            (true, Some(at)) => {
                sampled.saturating_add(u64::try_from(at.elapsed().as_micros()).unwrap_or(0))
            }
            _ => sampled,
        }
    }

    /// The node's clock at its last sample, for how long running tasks have run: while the
    /// node does not answer, what they do is not known, so their time stops with the figures
    /// (ages, "… ago", go on: see [`App::node_now_us`]).
    pub fn sampled_now_us(&self) -> u64 {
        self.view()
            .snapshot
            .as_ref()
            .map_or(0, |s| s.node.now_unix_us)
    }

    /// Whether the display is paused.
    pub fn paused(&self) -> bool {
        self.frozen.is_some()
    }

    /// Shows a message in the status line.
    pub fn tell(&mut self, severity: Severity, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            severity,
            until: Instant::now() + STATUS_TTL,
        });
    }

    /// When, after `now`, the screen must be redrawn even without input or data (a message
    /// expiring, a countdown moving on).
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let status = self.status.as_ref().map(|s| s.until);
        let retry = match &self.link {
            // The countdown shows whole seconds: the next redraw is when it next changes,
            // and none once the retry is due (the link's next reply comes then).
            Link::Down { retry_at, .. } if *retry_at > now => {
                let remaining = *retry_at - now;
                Some(
                    (*retry_at - Duration::from_secs(remaining.as_secs()))
                        .max(now + Duration::from_millis(1)),
                )
            }
            // The count of seconds without an answer goes on.
            Link::Unanswered { since } => Some(
                *since + Duration::from_secs(now.saturating_duration_since(*since).as_secs() + 1),
            ),
            _ => None,
        };
        status.into_iter().chain(retry).min()
    }

    /// Drops an expired status message.
    pub fn expire(&mut self, now: Instant) {
        if self.status.as_ref().is_some_and(|s| s.until <= now) {
            self.status = None;
        }
    }

    /// The Overview panes the node has data for, in focus order (no WAL pane for a
    /// memory-only node, no Cluster pane without gossip).
    pub fn panes(&self) -> Vec<Pane> {
        let snapshot = self.view().snapshot.as_ref();
        let wal = snapshot.is_some_and(|s| s.wal.is_some());
        let cluster = snapshot.is_some_and(|s| s.cluster.is_some());
        Pane::ALL
            .iter()
            .copied()
            .filter(|pane| match pane {
                Pane::Wal => wal,
                Pane::Cluster => cluster,
                _ => true,
            })
            .collect()
    }

    /// The problem with a spec, if any. A kind this console does not know but the node
    /// reports (registered by the node's embedder) is left for the node to check.
    pub fn check_spec(&self, text: &str) -> Option<String> {
        let first = text.split_whitespace().next().unwrap_or("");
        let node_only = self.kinds.lookup(first).is_none()
            && self
                .view()
                .snapshot
                .as_ref()
                .is_some_and(|s| s.node.kinds.iter().any(|k| k == first));
        if node_only {
            return None;
        }
        self.kinds.parse(text).err().map(|error| error.to_string())
    }

    /// Whether `action` is available (`--readonly` removes submit and cancel).
    pub fn allows(&self, action: Action) -> bool {
        !(self.options.readonly && action.changes_the_node())
    }

    /// The tasks of the table: filtered and sorted.
    pub fn task_rows(&self) -> Vec<&TaskInfo> {
        let Some(snapshot) = &self.view().snapshot else {
            return Vec::new();
        };
        let (invert, needle) = match self.filter.strip_prefix('!') {
            Some(rest) => (true, rest.to_lowercase()),
            None => (false, self.filter.to_lowercase()),
        };
        let mut rows: Vec<&TaskInfo> = snapshot
            .tasks
            .iter()
            .filter(|task| {
                if needle.is_empty() {
                    return true;
                }
                // The state as the table shows it ("timed out") and as the CLI names it
                // ("timed_out"): either finds it.
                let haystack = format!(
                    "{} {} {} {}",
                    task.id,
                    task.state,
                    crate::tui::view::state_label(task.state),
                    task.spec
                )
                .to_lowercase();
                haystack.contains(&needle) != invert
            })
            .collect();
        let now = snapshot.node.now_unix_us;
        let (column, descending) = self.sort;
        rows.sort_by(|a, b| {
            let order = match column {
                SortColumn::Id => a.id.cmp(&b.id),
                SortColumn::Kind => a.kind.cmp(&b.kind),
                // What needs attention first: work in progress, then what went wrong.
                SortColumn::State => state_rank(a.state).cmp(&state_rank(b.state)),
                SortColumn::Worker => a.worker.cmp(&b.worker),
                SortColumn::Started => a.started_unix_us.cmp(&b.started_unix_us),
                SortColumn::Duration => a.duration_us(now).cmp(&b.duration_us(now)),
                SortColumn::Attempt => a.attempt.cmp(&b.attempt),
                // Numbers in specs compared as numbers (`fib 9` before `fib 10`), durations
                // and sizes by value (`sleep 90s` before `sleep 5m`).
                SortColumn::Spec => crate::runtime::units::spec_order(&a.spec, &b.spec),
            }
            .then(a.id.cmp(&b.id));
            if descending { order.reverse() } else { order }
        });
        rows
    }

    /// The index of the selected task among `rows`.
    pub fn selected_index(&self, rows: &[&TaskInfo]) -> Option<usize> {
        let id = self.selected?;
        rows.iter().position(|t| t.id == id)
    }

    /// A new sample from the node.
    pub fn ingest(&mut self, snapshot: NodeSnapshot) {
        if let Link::Unanswered { since } = self.link {
            // Said on screen while it lasted; the log keeps it once it is over.
            tracing::warn!(
                "node {} did not answer for {:.1}s (stopped or overloaded); it answers again",
                snapshot.node.name,
                since.elapsed().as_secs_f64()
            );
        }
        self.link = Link::Up;
        // Connected again: "not sent: not connected" under an open prompt no longer holds.
        if let Some(Overlay::Submit(input)) = &mut self.overlay
            && input.unsent
        {
            input.unsent = false;
            input.error = None;
        }
        let mut previous = self.live.snapshot.take();
        if let Some(before) = &previous
            && let Some(change) = node_change(&before.node, &snapshot.node)
        {
            // Another process answers now: its figures do not continue the old ones.
            self.live.series = Series::default();
            tracing::warn!("{change}; the charts start again");
            self.tell(
                Severity::Warning,
                format!("{change}; the charts start again"),
            );
            // Task ids keep their meaning only across a restart of the same node from its
            // log. Otherwise an open question or detail is about a task the new process
            // does not have, whatever task holds that id there now.
            if before.node.name != snapshot.node.name || snapshot.wal.is_none() {
                if matches!(self.overlay, Some(Overlay::Confirm { .. })) {
                    self.overlay = None;
                }
                self.detail = None;
            }
            previous = None;
        }
        // An open cancel question follows its task: it must not ask about a state of before.
        if let Some(Overlay::Confirm { id, state, .. }) = &mut self.overlay
            && let Some(task) = snapshot.tasks.iter().find(|t| t.id == *id)
        {
            *state = task.state;
        }
        if let Some(detail) = &mut self.detail
            && !detail.complete
            && let Some(task) = snapshot.tasks.iter().find(|t| t.id == detail.id)
            && task.state.is_finished()
        {
            detail.info = Some(task.clone());
        }
        // The selected task left the list (newer tasks pushed it out of the newest listed):
        // no row is highlighted any more, and the view stayed where it was, over unrelated
        // rows. It goes back to the top, and says why.
        if self.frozen.is_none()
            && let Some(id) = self.selected
            && previous
                .as_ref()
                .is_some_and(|before| before.tasks.iter().any(|t| t.id == id))
            && !snapshot.tasks.iter().any(|t| t.id == id)
        {
            self.selected = None;
            self.task_offset = 0;
            // Why it went: it finished while tasks in flight fill the list (no finished
            // task is listed then), or newer tasks pushed it out of the newest.
            let was_in_flight = previous.as_ref().is_some_and(|before| {
                before
                    .tasks
                    .iter()
                    .any(|t| t.id == id && !t.state.is_finished())
            });
            let in_flight_only =
                Listed::of(&snapshot, self.options.task_limit) == Listed::InFlightOnly;
            let why = if was_in_flight && in_flight_only {
                format!(
                    "task {id} ended and is not listed while tasks in flight fill the list; `:task {id}` shows it"
                )
            } else {
                format!("task {id} left the list of the newest tasks; `:task {id}` shows it")
            };
            let detail_open = self.detail.as_ref().is_some_and(|detail| detail.id == id);
            // What the operator just did to it (a cancel's answer) stays in view: the reason
            // the row went is added, not put in its place. An open detail of the task says
            // all there is.
            let fresh = self.status.as_ref().filter(|status| {
                status.until.saturating_duration_since(Instant::now()) + FRESH_STATUS > STATUS_TTL
                    && status.text.starts_with(&format!("task {id}:"))
            });
            match fresh {
                _ if detail_open => {}
                Some(status) => {
                    let text = format!("{}; it is no longer listed", status.text);
                    let severity = status.severity;
                    self.tell(severity, text);
                }
                None => self.tell(Severity::Info, why),
            }
        }
        self.live.series.record(previous.as_ref(), &snapshot);
        self.live.snapshot = Some(snapshot);
        self.live.received_at = Some(Instant::now());
        self.node_said_shut_down = false;
    }

    /// A reply from the connection.
    pub fn on_reply(&mut self, reply: Reply) -> Vec<Command> {
        match reply {
            Reply::Snapshot(snapshot) => {
                self.ingest(*snapshot);
                match &self.detail {
                    Some(detail) if !detail.complete => vec![Command::FetchTask(detail.id)],
                    _ => NOTHING,
                }
            }
            Reply::Submitted {
                text,
                result,
                refused,
                sent,
            } => {
                // The prompt that sent it, still open and waiting: it takes the answer.
                let waiting = match &mut self.overlay {
                    Some(Overlay::Submit(input)) if input.sending && input.text.trim() == text => {
                        Some(input)
                    }
                    _ => None,
                };
                if let Some(input) = waiting {
                    input.sending = false;
                    match &result {
                        Ok(_) => self.overlay = None,
                        Err(error) if refused => {
                            tracing::warn!(spec = %text, "submit refused: {error}");
                            input.error = Some(if sent {
                                format!("refused by the node: {error}")
                            } else {
                                format!("not sent: {error}")
                            });
                            input.unsent = !sent;
                            return NOTHING;
                        }
                        // Not known whether the node took it: not offered again.
                        Err(_) => self.overlay = None,
                    }
                }
                match result {
                    Ok(ids) => {
                        let summary = match ids.as_slice() {
                            [] => "nothing submitted".to_string(),
                            [one] => format!("submitted task {one}: {text}"),
                            // Ids skip numbers when the arena's slots turn over unevenly:
                            // runs, not one range that would name ids of other tasks.
                            [_, _, ..] => {
                                format!("submitted {}: {text}", id_ranges(&ids, 4))
                            }
                        };
                        self.tell(Severity::Info, summary);
                    }
                    Err(error) => {
                        // Sent from the palette, or from a prompt closed while it waited: the
                        // status line says why, and how to get the text back to edit it (a
                        // prompt reopened by the answer took the keys typed after Enter).
                        if refused {
                            tracing::warn!(spec = %text, "submit refused: {error}");
                            self.tell(
                                Severity::Error,
                                format!(
                                    "submit {}: {error} (n, then ↑, brings the spec back to edit)",
                                    if sent {
                                        "refused by the node"
                                    } else {
                                        "not sent"
                                    }
                                ),
                            );
                        } else {
                            self.tell(Severity::Error, format!("submit failed: {error}"));
                        }
                    }
                }
                NOTHING
            }
            Reply::Cancelled { results } => {
                let failed = results.iter().any(|(_, result)| result.is_err());
                let text = cancel_summary(results.clone());
                let account = cancel_account(results);
                if account != text {
                    // The status line shows a few rows; the log keeps the whole account.
                    tracing::info!("{account}");
                }
                let severity = if failed {
                    Severity::Error
                } else {
                    Severity::Info
                };
                self.tell(severity, text);
                NOTHING
            }
            Reply::Task { id, result } => {
                if let Some(detail) = &mut self.detail
                    && detail.id == id
                {
                    match result {
                        Ok(info) => {
                            detail.complete = info.state.is_finished();
                            detail.info = Some(*info);
                            detail.error = None;
                        }
                        // Nothing to show (`:task` of an id the node does not have): back to
                        // the list, saying why, rather than "loading…" for ever.
                        Err(error) if detail.info.is_none() => {
                            self.detail = None;
                            self.tell(Severity::Warning, error);
                        }
                        Err(error) => detail.error = Some(error),
                    }
                }
                NOTHING
            }
            Reply::Unanswered { since } => {
                self.link = Link::Unanswered { since };
                NOTHING
            }
            Reply::Disconnected {
                error,
                retry_in,
                refused,
            } => {
                // Said as the node closed the connection; the failed reconnects after it
                // (connection refused) do not make it less true.
                if crate::runtime::net::frame::is_shutdown_notice(&error) {
                    self.node_said_shut_down = true;
                }
                self.link = Link::Down {
                    error,
                    retry_at: Instant::now() + retry_in,
                    refused,
                };
                NOTHING
            }
        }
    }

    /// Text pasted into the terminal (bracketed paste): it goes into the open prompt as
    /// text, never as keys — a pasted "x" must not ask to cancel a task, nor a pasted
    /// newline submit. With no prompt open it is ignored, and the status line says so.
    pub fn on_paste(&mut self, text: &str) -> Vec<Command> {
        if self.hits.too_small {
            return NOTHING;
        }
        let mut overlay = self.overlay.take();
        // Terminals paste line breaks as carriage returns.
        let mut lines = text
            .split(['\r', '\n'])
            .filter(|line| !line.trim().is_empty());
        let first_line = lines.next();
        let more_lines = lines.count();
        // A spec or a command is one line: lines pasted into the submit prompt or the
        // palette, joined, made one other task (`exec -- a` and `exec -- b` ran
        // `a exec -- b`). They take the first, and say why.
        let first_only = match &overlay {
            Some(Overlay::Submit(_)) => Some(
                "a spec is one line; submit the others after it, or all at once with `goliath submit -` (one spec per line)",
            ),
            Some(Overlay::Palette(_)) => Some("a command is one line; give the others after it"),
            _ => None,
        }
        .filter(|_| more_lines > 0);
        let cut = match &mut overlay {
            Some(Overlay::Submit(input) | Overlay::Palette(input)) if first_only.is_some() => {
                Some(input.insert_pasted(first_line.unwrap_or_default()))
            }
            Some(Overlay::Submit(input) | Overlay::Palette(input) | Overlay::Filter(input)) => {
                Some(input.insert_pasted(text))
            }
            _ => None,
        };
        if let Some(open) = overlay.as_mut().filter(|_| cut.is_some()) {
            self.after_edit(open);
        }
        let mut status_note = None;
        if let (Some(why), Some(Overlay::Submit(input) | Overlay::Palette(input))) =
            (first_only, overlay.as_mut())
        {
            let note = format!(
                "{} lines pasted: the prompt took the first, as {why}",
                more_lines + 1
            );
            // Said in the prompt, unless the first line's own error is there: then on the
            // status line, so that neither hides the other.
            if input.error.is_none() {
                input.error = Some(note);
            } else {
                status_note = Some(note);
            }
        }
        self.overlay = overlay;
        if let Some(note) = status_note {
            self.tell(Severity::Warning, note);
        }
        match cut {
            Some(true) => self.tell(
                Severity::Warning,
                format!("the paste was cut to its first {PASTE_MAX} characters"),
            ),
            Some(false) => {}
            None => {
                let prompts = if self.allows(Action::Submit) {
                    "submit, : command or / filter"
                } else {
                    ": command or / filter"
                };
                self.tell(
                    Severity::Info,
                    format!("paste ignored: open a prompt first ({prompts})"),
                );
            }
        }
        NOTHING
    }

    /// What follows a change of a prompt's text: the submit prompt checks its spec (a
    /// blank one is no error yet), the palette its `submit` line's spec (and forgets any
    /// other error), and the task table follows the filter as it is typed.
    fn after_edit(&mut self, overlay: &mut Overlay) {
        match overlay {
            Overlay::Submit(input) => {
                input.unsent = false;
                input.error = self
                    .check_spec(&input.text)
                    .filter(|_| !input.text.trim().is_empty());
            }
            Overlay::Palette(input) => {
                // A `submit` line's spec is checked as it is typed, as the submit prompt's.
                let spec = input
                    .text
                    .trim_start()
                    .strip_prefix("submit")
                    .filter(|rest| rest.starts_with(char::is_whitespace))
                    .map(str::trim)
                    .filter(|spec| !spec.is_empty());
                input.error = spec.and_then(|spec| {
                    self.check_spec(spec)
                        .map(|error| format!("`{spec}`: {error}"))
                });
            }
            Overlay::Filter(input) => {
                self.set_filter(&input.text);
                self.task_offset = 0;
            }
            _ => {}
        }
    }

    /// A key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        // Ctrl-C quits as in any terminal program, also when `quit` is bound to other keys,
        // unless it was bound to another action itself.
        let chord = KeyChord::from_event(&key);
        let resolved = self.keymap.resolve(&[], chord);
        let quits = match resolved {
            Resolved::Action(action) => action == Action::Quit,
            Resolved::Unbound => {
                key.code == KeyCode::Char('c') && key.modifiers == KeyModifiers::CONTROL
            }
            Resolved::Pending => false,
        };
        if key.code == KeyCode::Char('z')
            && key.modifiers == KeyModifiers::CONTROL
            && resolved == Resolved::Unbound
        {
            // Terminal programs suspend on Ctrl-Z; this one says why it does not.
            let why = match &self.options.remote {
                None => {
                    "this console hosts its node, which would stop answering its cluster and clients while suspended"
                }
                Some(_) => "quit it and attach again with `goliath console --connect`",
            };
            self.tell(
                Severity::Info,
                format!("ctrl-z does not suspend the console: {why}"),
            );
            return NOTHING;
        }
        if self.hits.too_small {
            // Nothing else is on screen: a key must not answer a question the operator
            // cannot see. With a prompt open the quit key is likely a letter typed into it
            // blind (`q` of "seq"), and with the cancel question or the help open a `q`
            // meant to close it would stop the node and its tasks: then only Ctrl-C quits.
            let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers == KeyModifiers::CONTROL;
            self.quit |= if self.overlay.is_some() {
                ctrl_c
            } else {
                quits
            };
            return NOTHING;
        }
        if let Some(overlay) = self.overlay.take() {
            return self.on_overlay_key(overlay, key);
        }
        if quits && self.pending.is_empty() {
            return self.perform(Action::Quit);
        }
        let pending = std::mem::take(&mut self.pending);
        match self.keymap.resolve(&pending, chord) {
            Resolved::Action(action) => self.perform(action),
            Resolved::Pending => {
                self.pending = vec![chord];
                NOTHING
            }
            Resolved::Unbound if !pending.is_empty() => {
                // The first key led nowhere: treat this key on its own.
                match self.keymap.resolve(&[], chord) {
                    Resolved::Action(action) => self.perform(action),
                    Resolved::Pending => {
                        self.pending = vec![chord];
                        NOTHING
                    }
                    Resolved::Unbound => NOTHING,
                }
            }
            Resolved::Unbound => NOTHING,
        }
    }

    /// Does what an action names.
    pub fn perform(&mut self, action: Action) -> Vec<Command> {
        if !self.allows(action) {
            self.tell(
                Severity::Warning,
                "read-only console (--readonly): submit and cancel are off",
            );
            return NOTHING;
        }
        if let Some(index) = action.tab_index() {
            if let Some(tab) = Tab::ALL.get(index) {
                self.switch_tab(*tab);
            }
            return NOTHING;
        }
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.overlay = Some(Overlay::Help { scroll: 0 }),
            Action::Palette => self.overlay = Some(Overlay::Palette(LineInput::default())),
            Action::Submit => self.overlay = Some(Overlay::Submit(LineInput::default())),
            Action::Filter => {
                if self.tab != Tab::Tasks {
                    self.switch_tab(Tab::Tasks);
                }
                self.overlay = Some(Overlay::Filter(LineInput::with_text(&self.filter)));
            }
            Action::Cancel => self.ask_cancel(),
            Action::NextTab | Action::PrevTab => {
                let count = Tab::ALL.len();
                let index = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                let next = if action == Action::NextTab {
                    (index + 1) % count
                } else {
                    (index + count - 1) % count
                };
                self.switch_tab(Tab::ALL[next]);
            }
            Action::Pause => {
                if self.frozen.take().is_none() {
                    self.frozen = Some(self.live.clone());
                    self.tell(
                        Severity::Warning,
                        "display paused (the node keeps running); space resumes",
                    );
                } else {
                    self.tell(Severity::Info, "display resumed");
                }
            }
            Action::Zoom if self.tab == Tab::Overview => self.zoomed = !self.zoomed,
            Action::FocusNext | Action::FocusPrev if self.tab == Tab::Overview => {
                let panes = self.panes();
                let count = panes.len();
                let index = panes.iter().position(|p| *p == self.focus).unwrap_or(0);
                let next = if action == Action::FocusNext {
                    (index + 1) % count
                } else {
                    (index + count - 1) % count
                };
                self.focus = panes[next];
            }
            Action::Open => return self.open_selected(),
            Action::Back => self.back(),
            Action::Sort => {
                let next = self.sort.0.next(self.hits.narrow_tasks);
                self.sort = (next, next == SortColumn::Id);
                self.tell(
                    Severity::Info,
                    format!("sorted by {}", self.sort.0.title().to_lowercase()),
                );
            }
            Action::SortReverse => self.sort.1 = !self.sort.1,
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.page(-1),
            Action::PageDown => self.page(1),
            Action::Top => self.move_to(false),
            Action::Bottom => self.move_to(true),
            Action::LogTargets => self.log_event(TuiWidgetEvent::HideKey),
            Action::LogFocus => self.log_event(TuiWidgetEvent::FocusKey),
            Action::LogShowMore => self.log_event(TuiWidgetEvent::RightKey),
            Action::LogShowLess => self.log_event(TuiWidgetEvent::LeftKey),
            Action::LogCaptureMore => self.log_event(TuiWidgetEvent::PlusKey),
            Action::LogCaptureLess => self.log_event(TuiWidgetEvent::MinusKey),
            _ => {}
        }
        NOTHING
    }

    /// Said until the node answers a submission (a slow or stopped node can take a while),
    /// so it is not submitted again for want of an answer.
    fn tell_submitting(&mut self, text: &str) {
        self.tell(
            Severity::Info,
            format!(
                "submitting {}… (waiting for the node)",
                crate::runtime::units::printable(text, false)
            ),
        );
    }

    /// Sets the task filter; a "filter cleared" still on the status line no longer holds.
    fn set_filter(&mut self, text: &str) {
        self.filter = text.trim().to_string();
        if !self.filter.is_empty()
            && self
                .status
                .as_ref()
                .is_some_and(|status| status.text == FILTER_CLEARED)
        {
            self.status = None;
        }
    }

    /// Esc: closes the detail view, else unzooms, else follows the log again, else clears
    /// the filter.
    fn back(&mut self) {
        if self.detail.take().is_some() {
            return;
        }
        if self.zoomed {
            self.zoomed = false;
        } else if self.tab == Tab::Logs || (self.tab == Tab::Overview && self.focus == Pane::Log) {
            self.log_state.transition(TuiWidgetEvent::EscapeKey);
            self.log_paged = false;
        } else if !self.filter.is_empty() && self.tab == Tab::Tasks {
            self.filter.clear();
            self.tell(Severity::Info, FILTER_CLEARED);
        }
    }

    /// A page of the log back (`direction` < 0) or on; back stops following new lines.
    fn page_log(&mut self, direction: isize) {
        self.log_paged |= direction < 0;
        self.log_state.transition(if direction < 0 {
            TuiWidgetEvent::PrevPageKey
        } else {
            TuiWidgetEvent::NextPageKey
        });
    }

    fn log_event(&mut self, event: TuiWidgetEvent) {
        if self.tab == Tab::Logs {
            if event == TuiWidgetEvent::HideKey {
                self.log_targets_hidden = !self.log_targets_hidden;
            }
            if event == TuiWidgetEvent::FocusKey {
                self.log_focused = !self.log_focused;
            }
            self.log_state.transition(event);
            // The log widget learns the selected target's next level only when it is drawn:
            // a second ←/→/+/- before a frame did nothing (of four quick presses, two
            // counted). The console draws before it takes the next key.
            self.draw_before_next_key |= matches!(
                event,
                TuiWidgetEvent::LeftKey
                    | TuiWidgetEvent::RightKey
                    | TuiWidgetEvent::PlusKey
                    | TuiWidgetEvent::MinusKey
            );
        }
    }

    fn switch_tab(&mut self, tab: Tab) {
        self.tab = tab;
        self.zoomed = false;
    }

    /// Whether keys move the task selection (rather than a pane's scroll or the log).
    fn navigates_tasks(&self) -> bool {
        match self.tab {
            Tab::Tasks => self.detail.is_none(),
            Tab::Overview => self.focus == Pane::Tasks,
            Tab::Logs | Tab::Cluster => false,
        }
    }

    fn move_by(&mut self, delta: isize) {
        if let Some(detail) = &mut self.detail
            && self.tab == Tab::Tasks
        {
            // From where the view is, not from past its end (`G` asks for the end of an
            // output that may still grow; a k after it must move up at once).
            let max = self.hits.detail_scroll_max;
            let from = detail.scroll.min(max);
            let step = u16::try_from(delta.unsigned_abs()).unwrap_or(u16::MAX);
            detail.scroll = if delta < 0 {
                from.saturating_sub(step)
            } else {
                from.saturating_add(step).min(max)
            };
            return;
        }
        if self.tab == Tab::Logs {
            self.log_state.transition(if delta < 0 {
                TuiWidgetEvent::UpKey
            } else {
                TuiWidgetEvent::DownKey
            });
            return;
        }
        if self.tab == Tab::Overview && self.focus == Pane::Workers {
            let workers = self.view().snapshot.as_ref().map_or(0, |s| s.workers.len());
            self.workers_offset = offset_by(self.workers_offset, delta, workers);
            return;
        }
        if self.tab == Tab::Cluster {
            // The view keeps the last page full: an offset past it is drawn as the last page.
            let members = self.member_count();
            let last_page = members.saturating_sub(self.hits.member_rows.max(1));
            self.members_offset =
                offset_by(self.members_offset.min(last_page), delta, last_page + 1);
            return;
        }
        if self.tab == Tab::Overview && self.focus == Pane::Log {
            self.page_log(delta);
            return;
        }
        if !self.navigates_tasks() {
            return;
        }
        let rows = self.task_rows();
        if rows.is_empty() {
            return;
        }
        let next = match self.selected_index(&rows) {
            Some(index) => offset_by(index, delta, rows.len()),
            None => 0,
        };
        self.selected = Some(rows[next].id);
        self.keep_selection_visible(next);
    }

    fn page(&mut self, direction: isize) {
        if self.tab == Tab::Logs || (self.tab == Tab::Overview && self.focus == Pane::Log) {
            self.page_log(direction);
            return;
        }
        if self.tab == Tab::Cluster {
            let height = self.hits.member_rows.max(1) as isize;
            self.move_by(direction * height);
            return;
        }
        let height = self
            .hits
            .task_rows
            .or(self.hits.detail)
            .map_or(10, |r| r.height.max(1) as isize);
        if self.navigates_tasks() {
            // The view moves a page with the selection, as in less and k9s: moved by the
            // selection alone, the first PgUp from the bottom scrolled the view one row.
            let page = height.unsigned_abs();
            let rows = self.task_rows().len();
            self.task_offset = if direction < 0 {
                self.task_offset.saturating_sub(page)
            } else {
                (self.task_offset + page).min(rows.saturating_sub(page))
            };
        }
        self.move_by(direction * height);
    }

    fn move_to(&mut self, end: bool) {
        if let Some(detail) = &mut self.detail
            && self.tab == Tab::Tasks
        {
            detail.scroll = if end { u16::MAX / 2 } else { 0 };
            return;
        }
        if !self.navigates_tasks() {
            if self.tab == Tab::Overview && self.focus == Pane::Workers {
                let workers = self.view().snapshot.as_ref().map_or(0, |s| s.workers.len());
                self.workers_offset = if end { workers.saturating_sub(1) } else { 0 };
            }
            if self.tab == Tab::Cluster {
                self.members_offset = if end { self.member_count() } else { 0 };
            }
            return;
        }
        let rows = self.task_rows();
        let index = if end { rows.len().saturating_sub(1) } else { 0 };
        if let Some(task) = rows.get(index) {
            self.selected = Some(task.id);
            self.keep_selection_visible(index);
        }
    }

    /// Members in the Cluster tab's table.
    fn member_count(&self) -> usize {
        self.view()
            .snapshot
            .as_ref()
            .and_then(|s| s.cluster.as_ref())
            .map_or(0, |c| c.members.len())
    }

    fn keep_selection_visible(&mut self, index: usize) {
        let height = self.hits.task_rows.map_or(10, |r| r.height.max(1) as usize);
        if index < self.task_offset {
            self.task_offset = index;
        } else if index >= self.task_offset + height {
            self.task_offset = index + 1 - height;
        }
    }

    /// The selected task while it is shown: one the filter hides is not acted on (`x` would
    /// otherwise ask to cancel a task the operator cannot see).
    fn selected_task(&self) -> Option<&TaskInfo> {
        let id = self.selected?;
        self.task_rows().into_iter().find(|t| t.id == id)
    }

    fn open_selected(&mut self) -> Vec<Command> {
        if !(self.tab == Tab::Tasks || (self.tab == Tab::Overview && self.focus == Pane::Tasks)) {
            return NOTHING;
        }
        // With nothing selected, Enter opens the top row, as in k9s (cancelling never
        // picks a task by itself).
        let task = match self.selected_task() {
            Some(task) => Some(task.clone()),
            None => self.task_rows().first().map(|task| (*task).clone()),
        };
        let Some(task) = task else {
            let why = if !self.filter.is_empty() {
                "no task matches the filter (Esc clears it)"
            } else if self.allows(Action::Submit) {
                "no task to open yet: press n to submit one"
            } else {
                "no task to open yet"
            };
            self.tell(Severity::Warning, why);
            return NOTHING;
        };
        self.selected = Some(task.id);
        self.tab = Tab::Tasks;
        self.zoomed = false;
        let id = task.id;
        self.detail = Some(Detail {
            id,
            info: Some(task),
            error: None,
            scroll: 0,
            complete: false,
        });
        vec![Command::FetchTask(id)]
    }

    fn ask_cancel(&mut self) {
        if !matches!(self.tab, Tab::Overview | Tab::Tasks) {
            // The selection lives on a table not on screen: never cancel what is not seen.
            self.tell(
                Severity::Info,
                "x cancels the task selected on the Tasks tab (2) or the Overview (1)",
            );
            return;
        }
        if self.tab == Tab::Overview && self.focus != Pane::Tasks {
            // The Overview's task pane shows its top rows while another pane has the focus,
            // so the selection may be out of sight, as Enter's is.
            self.tell(
                Severity::Info,
                "x cancels the task selected in the Tasks pane: focus it first (h/l), or open the Tasks tab (2)",
            );
            return;
        }
        let Some(task) = self.selected_task().cloned() else {
            self.tell(
                Severity::Warning,
                "select a task to cancel first (j/k or click in a task table)",
            );
            return;
        };
        if task.state.is_finished() {
            self.tell(
                Severity::Info,
                format!(
                    "task {} already {}; nothing to cancel",
                    task.id,
                    crate::tui::view::state_label(task.state)
                ),
            );
            return;
        }
        // The question's keys take the bottom line: a message from before ("sorted by id", or
        // the warning of an `x` with no task selected) would hide them, and the question is
        // the newest thing on screen.
        self.status = None;
        self.overlay = Some(Overlay::Confirm {
            id: task.id,
            spec: task.spec,
            state: task.state,
        });
    }

    fn on_overlay_key(&mut self, overlay: Overlay, key: KeyEvent) -> Vec<Command> {
        let control_c = key.code == KeyCode::Char('c') && key.modifiers == KeyModifiers::CONTROL;
        if control_c {
            // Ctrl-C always leaves an overlay, never types.
            return NOTHING;
        }
        match overlay {
            Overlay::Help { scroll } => {
                let chord = KeyChord::from_event(&key);
                let pending = std::mem::take(&mut self.pending);
                let last = self.hits.help_scroll_max;
                let scroll = match self.keymap.resolve(&pending, chord) {
                    Resolved::Action(Action::Down) => scroll.saturating_add(1).min(last),
                    Resolved::Action(Action::Up) => scroll.saturating_sub(1),
                    Resolved::Action(Action::PageDown) => scroll.saturating_add(10).min(last),
                    Resolved::Action(Action::PageUp) => scroll.saturating_sub(10),
                    Resolved::Action(Action::Bottom) => last,
                    Resolved::Action(Action::Top) => 0,
                    Resolved::Pending => {
                        // The first key of two (g of g g): wait for the second.
                        self.pending = vec![chord];
                        scroll
                    }
                    Resolved::Action(Action::Quit) => {
                        self.quit = true;
                        return NOTHING;
                    }
                    _ => return NOTHING,
                };
                self.overlay = Some(Overlay::Help { scroll });
                NOTHING
            }
            Overlay::Confirm { id, spec, state } => match key.code {
                // The task ended while the question was open: nothing left to cancel.
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter if state.is_finished() => {
                    self.tell(
                        Severity::Info,
                        format!("task {id} already {state}; nothing to cancel"),
                    );
                    NOTHING
                }
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    vec![Command::Cancel(vec![id])]
                }
                // Closed on a task that ended meanwhile: nothing was left running.
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc if state.is_finished() => {
                    NOTHING
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    self.tell(Severity::Info, format!("task {id} left running"));
                    NOTHING
                }
                _ => {
                    self.overlay = Some(Overlay::Confirm { id, spec, state });
                    NOTHING
                }
            },
            // Waiting for the node: Esc closes (its answer then goes to the status line),
            // other keys wait with the text (the answer comes in a moment).
            Overlay::Submit(input) if input.sending => {
                if key.code != KeyCode::Esc {
                    self.overlay = Some(Overlay::Submit(input));
                }
                NOTHING
            }
            Overlay::Submit(mut input) => match key.code {
                KeyCode::Esc => NOTHING,
                KeyCode::Up | KeyCode::Down => {
                    input.browse(&self.prompt_history, key.code == KeyCode::Up);
                    let mut overlay = Overlay::Submit(input);
                    self.after_edit(&mut overlay);
                    self.overlay = Some(overlay);
                    NOTHING
                }
                KeyCode::Enter => {
                    let text = input.text.trim().to_string();
                    if text.is_empty() {
                        return NOTHING;
                    }
                    if let Some(error) = self.check_spec(&text) {
                        input.error = Some(error);
                        self.overlay = Some(Overlay::Submit(input));
                        return NOTHING;
                    }
                    remember(&mut self.prompt_history, &text);
                    input.sending = true;
                    input.error = None;
                    self.overlay = Some(Overlay::Submit(input));
                    vec![Command::Submit(text)]
                }
                _ => {
                    let edited = input.edit(&key);
                    let mut overlay = Overlay::Submit(input);
                    if edited {
                        self.after_edit(&mut overlay);
                    }
                    self.overlay = Some(overlay);
                    NOTHING
                }
            },
            Overlay::Filter(mut input) => match key.code {
                // Esc drops the filter typed (it applies as it is typed), as in k9s; Enter
                // keeps it.
                KeyCode::Esc => {
                    if !self.filter.is_empty() {
                        self.filter.clear();
                        self.task_offset = 0;
                        self.tell(Severity::Info, FILTER_CLEARED);
                    }
                    NOTHING
                }
                KeyCode::Enter => {
                    self.set_filter(&input.text);
                    NOTHING
                }
                _ => {
                    input.edit(&key);
                    let mut overlay = Overlay::Filter(input);
                    self.after_edit(&mut overlay);
                    self.overlay = Some(overlay);
                    NOTHING
                }
            },
            Overlay::Palette(mut input) => match key.code {
                KeyCode::Esc => NOTHING,
                KeyCode::Up | KeyCode::Down => {
                    input.browse(&self.palette_history, key.code == KeyCode::Up);
                    self.overlay = Some(Overlay::Palette(input));
                    NOTHING
                }
                KeyCode::Enter => match self.run_palette(&input.text) {
                    Ok(commands) => commands,
                    Err(error) => {
                        input.error = Some(error);
                        self.overlay = Some(Overlay::Palette(input));
                        NOTHING
                    }
                },
                _ => {
                    let edited = input.edit(&key);
                    let mut overlay = Overlay::Palette(input);
                    if edited {
                        self.after_edit(&mut overlay);
                    }
                    self.overlay = Some(overlay);
                    NOTHING
                }
            },
        }
    }

    /// The palette's commands as the console lists them, joined by `separator`; a
    /// read-only console lists only those that change nothing, and says so.
    pub fn palette_commands(&self, separator: &str) -> String {
        let writes = self.allows(Action::Submit);
        let listed: Vec<&str> = PALETTE_COMMANDS
            .iter()
            .filter(|command| writes || !command.writes)
            .map(|command| command.usage)
            .collect();
        let list = listed.join(separator);
        if writes {
            list
        } else {
            format!("{list} (read-only: no submit or cancel)")
        }
    }

    /// Runs a palette line: `submit SPEC`, `cancel ID…`, `task ID`, `tab NAME|N`, `help`,
    /// `pause`, `q`.
    fn run_palette(&mut self, line: &str) -> Result<Vec<Command>, String> {
        let line = line.trim();
        let (command, rest) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(c, r)| (c, r.trim()));
        match command {
            "" => Ok(NOTHING),
            "q" | "quit" | "q!" => {
                self.quit = true;
                Ok(NOTHING)
            }
            "help" => {
                self.overlay = Some(Overlay::Help { scroll: 0 });
                Ok(NOTHING)
            }
            "pause" => Ok(self.perform(Action::Pause)),
            "submit" | "cancel" if !self.allows(Action::Submit) => {
                Err("read-only console (--readonly): submit and cancel are off".to_string())
            }
            "submit" => {
                if rest.is_empty() {
                    return Err("submit what? e.g. `submit spin 300ms x20`".to_string());
                }
                if let Some(error) = self.check_spec(rest) {
                    // The column counts in the spec, not in the palette line.
                    return Err(format!("`{rest}`: {error}"));
                }
                remember(&mut self.palette_history, line);
                remember(&mut self.prompt_history, rest);
                self.tell_submitting(rest);
                Ok(vec![Command::Submit(rest.to_string())])
            }
            "cancel" => {
                let ids = parse_cancel_ids(rest)?;
                if ids.is_empty() {
                    return Err(
                        "cancel which tasks? e.g. `cancel 42` or `cancel 28-127`".to_string()
                    );
                }
                remember(&mut self.palette_history, line);
                Ok(vec![Command::Cancel(ids)])
            }
            "task" => {
                // Any task the node keeps, listed or not: the Tasks tab lists the newest
                // console.task_limit only, and a big batch's first tasks drop out of it.
                if rest.is_empty() {
                    return Err("task which? e.g. `task 42` opens task 42's details".to_string());
                }
                let id = rest.parse::<TaskId>()?;
                remember(&mut self.palette_history, line);
                let listed = self
                    .view()
                    .snapshot
                    .as_ref()
                    .and_then(|s| s.tasks.iter().find(|t| t.id == id).cloned());
                if listed.is_some() {
                    self.selected = Some(id);
                }
                self.tab = Tab::Tasks;
                self.zoomed = false;
                self.detail = Some(Detail {
                    id,
                    info: listed,
                    error: None,
                    scroll: 0,
                    complete: false,
                });
                Ok(vec![Command::FetchTask(id)])
            }
            "tab" => {
                let wanted = rest.to_lowercase();
                let tab = Tab::ALL
                    .iter()
                    .enumerate()
                    .find(|(i, t)| {
                        t.title().to_lowercase() == wanted || (i + 1).to_string() == wanted
                    })
                    .map(|(_, t)| *t)
                    .or_else(|| {
                        // A prefix naming one tab (`clu`), as k9s takes them.
                        let mut matching = Tab::ALL
                            .iter()
                            .filter(|t| t.title().to_lowercase().starts_with(&wanted));
                        match (matching.next(), matching.next()) {
                            (Some(tab), None) => Some(*tab),
                            _ => None,
                        }
                    })
                    .ok_or_else(|| {
                        let names: Vec<String> =
                            Tab::ALL.iter().map(|t| t.title().to_lowercase()).collect();
                        let guess = crate::runtime::suggest::closest(
                            &wanted,
                            names.iter().map(String::as_str),
                        )
                        .map(|name| format!("did you mean '{name}'? "))
                        .unwrap_or_default();
                        format!("no tab '{rest}'; {guess}tabs: {}", names.join(", "))
                    })?;
                self.switch_tab(tab);
                Ok(NOTHING)
            }
            other => Err(
                match crate::runtime::suggest::closest(
                    other,
                    PALETTE_COMMANDS
                        .iter()
                        .map(|command| command.name)
                        .chain(["quit"]),
                ) {
                    Some(close) => format!("unknown command '{other}'; did you mean '{close}'?"),
                    None => format!(
                        "unknown command '{other}'; commands: {}",
                        self.palette_commands(", ")
                    ),
                },
            ),
        }
    }

    /// A mouse event, located with the last frame's [`HitMap`].
    pub fn on_mouse(&mut self, mouse: MouseEvent) -> Vec<Command> {
        if !self.options.mouse || self.overlay.is_some() || self.hits.too_small {
            return NOTHING;
        }
        let at = Position::new(mouse.column, mouse.row);
        match mouse.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if let Some((_, index)) = self.hits.tabs.iter().find(|(r, _)| r.contains(at)) {
                    let index = *index;
                    if let Some(tab) = Tab::ALL.get(index) {
                        self.switch_tab(*tab);
                    }
                    return NOTHING;
                }
                if self.tab == Tab::Overview
                    && let Some((_, pane)) = self.hits.panes.iter().find(|(r, _)| r.contains(at))
                {
                    self.focus = *pane;
                }
                if let Some(rows) = self.hits.task_rows
                    && rows.contains(at)
                    && let Some(&id) = self.hits.task_ids.get(usize::from(at.y - rows.y))
                {
                    self.selected = Some(id);
                    // Keep the table where it was drawn: the offset the view chose may differ
                    // from the one last asked for.
                    self.task_offset = self.hits.task_offset;
                }
                NOTHING
            }
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                let delta = if mouse.kind == MouseEventKind::ScrollUp {
                    -3
                } else {
                    3
                };
                if self.tab == Tab::Overview
                    && let Some((_, pane)) = self.hits.panes.iter().find(|(r, _)| r.contains(at))
                {
                    self.focus = *pane;
                }
                self.move_by(delta);
                NOTHING
            }
            _ => NOTHING,
        }
    }
}

/// `index` moved by `delta`, kept within `0..count`.
fn offset_by(index: usize, delta: isize, count: usize) -> usize {
    if count == 0 {
        return 0;
    }
    let moved = if delta < 0 {
        index.saturating_sub(delta.unsigned_abs())
    } else {
        index.saturating_add(delta as usize)
    };
    moved.min(count - 1)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::runtime::{ArenaStats, NodeInfo, TaskCounts, WorkerActivity, WorkerSnapshot};
    use crate::tui::theme::ThemeName;

    pub fn options() -> Options {
        Options {
            readonly: false,
            theme: Theme::new(ThemeName::Dark),
            glyphs: Glyphs::new(false),
            mouse: true,
            remote: None,
            task_limit: 1000,
        }
    }

    pub fn task(id: u64, state: TaskState, spec: &str) -> TaskInfo {
        let finished = state.is_finished();
        TaskInfo {
            id: TaskId(id),
            spec: spec.to_string(),
            kind: spec
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_string()
                .into(),
            state,
            worker: (state != TaskState::Queued).then_some((id % 2) as u16),
            attempt: 1,
            submitted_unix_us: 1_700_000_000_000_000 + id * 1_000,
            started_unix_us: (state != TaskState::Queued)
                .then_some(1_700_000_000_000_000 + id * 1_000 + 500),
            finished_unix_us: finished.then_some(1_700_000_000_000_000 + id * 1_000 + 300_500),
            run_us: 300_000,
            output: finished.then_some(crate::runtime::TaskOutput::None),
            error: (state == TaskState::Failed).then(|| "boom".to_string()),
        }
    }

    /// A sample with `workers` workers and the given tasks, taken at `now_s` seconds.
    pub fn snapshot(workers: usize, tasks: Vec<TaskInfo>, now_s: u64) -> NodeSnapshot {
        NodeSnapshot {
            node: NodeInfo {
                name: "alpha".to_string(),
                version: "0.1.0".to_string(),
                pid: 4242,
                started_unix_us: 1_700_000_000_000_000,
                now_unix_us: 1_700_000_000_000_000 + now_s * 1_000_000,
                listen: Some("127.0.0.1:7420".to_string()),
                slice_us: 1000,
                accepting: true,
                exec_enabled: true,
                exec_remote: false,
                kinds: vec!["spin".into(), "sleep".into()],
            },
            workers: (0..workers)
                .map(|index| WorkerSnapshot {
                    index: index as u16,
                    activity: if index % 3 == 0 {
                        WorkerActivity::Running
                    } else {
                        WorkerActivity::Parked
                    },
                    depth: (index * 7) % 40,
                    executed: 1000 * now_s * (index as u64 + 1),
                    slices: 2000 * now_s,
                    stole: 10 * now_s * index as u64,
                    stolen_from: 5 * now_s,
                    parks: 3,
                    current: None,
                })
                .collect(),
            submission_queue_depth: 3,
            arena: ArenaStats {
                capacity: 65_536,
                in_use: 1_200,
                high_water: 9_000,
                bytes_reserved: 65_536 * 128,
                rejected: 2,
            },
            counts: TaskCounts {
                submitted: 1_000 * now_s,
                queued: 1,
                running: 1,
                succeeded: 900 * now_s,
                failed: 10,
                cancelled: 5,
                timed_out: 1,
                recovered: 0,
            },
            tasks,
            host: Some(crate::runtime::HostStats {
                cpu_percent: 37.5,
                cpus: 2,
                memory_used_bytes: 3 << 30,
                memory_total_bytes: 24 << 30,
                load_average: 0.7,
            }),
            cluster: None,
            wal: None,
        }
    }

    pub fn app() -> App {
        App::new(options(), Keymap::default(), Kinds::new())
    }

    /// The status line's text, empty when none.
    pub fn status_text(app: &App) -> String {
        app.status
            .as_ref()
            .map(|status| status.text.clone())
            .unwrap_or_default()
    }

    /// A console on the Tasks tab with three tasks, asking whether to cancel the one in
    /// flight; that task.
    fn asking_to_cancel() -> (App, TaskInfo) {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "2");
        let open = three_tasks()
            .into_iter()
            .find(|t| !t.state.is_finished())
            .expect("a task in flight");
        app.selected = Some(open.id);
        app.tell(
            Severity::Warning,
            "select a task to cancel first (j/k or click in a task table)",
        );
        press(&mut app, "x");
        assert!(matches!(app.overlay, Some(Overlay::Confirm { .. })));
        // The question's keys show on the bottom line, not a message from before.
        assert!(app.status.is_none(), "{:?}", app.status);
        (app, open)
    }

    fn press(app: &mut App, key: &str) -> Vec<Command> {
        let mut all = Vec::new();
        for word in key.split(' ') {
            let chord = KeyChord::parse(word).unwrap();
            let mut modifiers = chord.modifiers;
            if matches!(chord.code, KeyCode::Char(c) if c.is_ascii_uppercase()) {
                modifiers |= KeyModifiers::SHIFT;
            }
            all.extend(app.on_key(KeyEvent::new(chord.code, modifiers)));
        }
        all
    }

    fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
    }

    fn three_tasks() -> Vec<TaskInfo> {
        vec![
            task(3, TaskState::Running, "spin 5s"),
            task(2, TaskState::Succeeded, "fib 30"),
            task(1, TaskState::Queued, "sleep 2s"),
        ]
    }

    #[test]
    fn number_keys_and_tab_switch_tabs() {
        let mut app = app();
        press(&mut app, "2");
        assert_eq!(app.tab, Tab::Tasks);
        press(&mut app, "tab");
        assert_eq!(app.tab, Tab::Logs);
        press(&mut app, "tab");
        assert_eq!(app.tab, Tab::Cluster);
        press(&mut app, "tab");
        assert_eq!(app.tab, Tab::Overview);
        press(&mut app, "shift-tab");
        assert_eq!(app.tab, Tab::Cluster);
        press(&mut app, "4");
        assert_eq!(app.tab, Tab::Cluster);
    }

    #[test]
    fn page_up_from_the_bottom_moves_the_view_a_page_with_the_selection() {
        let mut app = app();
        let tasks: Vec<TaskInfo> = (1..=50)
            .map(|id| task(id, TaskState::Succeeded, "fib 5"))
            .collect();
        app.ingest(snapshot(2, tasks, 1));
        press(&mut app, "2");
        app.hits.task_rows = Some(Rect::new(0, 0, 80, 10));
        press(&mut app, "G");
        let rows = app.task_rows();
        assert_eq!(app.selected_index(&rows), Some(49));
        assert_eq!(app.task_offset, 40);
        press(&mut app, "pageup");
        let rows = app.task_rows();
        assert_eq!(app.selected_index(&rows), Some(39));
        assert_eq!(app.task_offset, 30, "the view moved a page, not a row");
        press(&mut app, "pagedown");
        assert_eq!(app.task_offset, 40);
    }

    #[test]
    fn a_selected_task_that_leaves_the_list_is_said_and_the_view_goes_back_to_the_top() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "2");
        app.selected = Some(TaskId(1));
        app.task_offset = 2;
        // Newer tasks pushed task 1 out of the newest listed.
        let mut newer = vec![task(4, TaskState::Queued, "fib 5")];
        newer.extend(three_tasks().into_iter().filter(|t| t.id != TaskId(1)));
        app.ingest(snapshot(2, newer, 2));
        assert_eq!(app.selected, None);
        assert_eq!(app.task_offset, 0);
        let said = app
            .status
            .as_ref()
            .map(|s| s.text.clone())
            .unwrap_or_default();
        assert!(said.contains("task 1 left the list"), "{said}");
    }

    #[test]
    fn a_cancelled_task_that_ends_unlisted_keeps_the_cancel_said_and_the_reason_added() {
        // The list holds tasks in flight only (as many as the limit): a task that ends drops
        // out of it at once. The cancel's answer stays in view, with why the row went.
        let mut app = app();
        app.options.task_limit = 3;
        let running = |ids: &[u64]| {
            ids.iter()
                .map(|&id| task(id, TaskState::Running, "sleep 1h"))
                .collect::<Vec<_>>()
        };
        app.ingest(snapshot(2, running(&[1, 2, 3]), 1));
        press(&mut app, "2");
        app.selected = Some(TaskId(2));
        app.on_reply(Reply::Cancelled {
            results: vec![(TaskId(2), Ok("cancel requested".into()))],
        });
        app.ingest(snapshot(2, running(&[1, 3, 4]), 2));
        let said = status_text(&app);
        assert!(
            said.starts_with("task 2: cancel requested") && said.contains("no longer listed"),
            "{said}"
        );
        // Without a fresh word about it, the reason is that it ended, not that newer tasks
        // pushed it out of the newest.
        app.status = None;
        app.selected = Some(TaskId(3));
        app.ingest(snapshot(2, running(&[1, 4, 5]), 3));
        let said = status_text(&app);
        assert!(
            said.contains("task 3 ended and is not listed while tasks in flight fill the list"),
            "{said}"
        );
        // With its detail open, the detail says it all.
        app.status = None;
        app.selected = Some(TaskId(4));
        app.detail = Some(Detail {
            id: TaskId(4),
            info: None,
            error: None,
            scroll: 0,
            complete: false,
        });
        app.ingest(snapshot(2, running(&[1, 5, 6]), 4));
        assert!(app.status.is_none(), "{}", status_text(&app));
    }

    #[test]
    fn j_k_gg_and_shift_g_move_the_selection_in_the_table() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "2");
        press(&mut app, "j");
        assert_eq!(app.selected, Some(TaskId(3)), "first j selects the newest");
        press(&mut app, "j");
        assert_eq!(app.selected, Some(TaskId(2)));
        press(&mut app, "G");
        assert_eq!(app.selected, Some(TaskId(1)));
        press(&mut app, "j");
        assert_eq!(app.selected, Some(TaskId(1)), "stays on the last row");
        press(&mut app, "g g");
        assert_eq!(app.selected, Some(TaskId(3)));
        press(&mut app, "k");
        assert_eq!(app.selected, Some(TaskId(3)));
    }

    #[test]
    fn selection_follows_the_task_when_new_rows_arrive() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "2");
        press(&mut app, "j j");
        assert_eq!(app.selected, Some(TaskId(2)));
        let mut more = vec![task(4, TaskState::Queued, "spin 1s")];
        more.extend(three_tasks());
        app.ingest(snapshot(2, more, 2));
        let rows = app.task_rows();
        assert_eq!(app.selected_index(&rows), Some(2));
        assert_eq!(app.selected, Some(TaskId(2)));
    }

    #[test]
    fn cancel_acts_only_on_a_task_on_screen() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "2");
        press(&mut app, "j");
        assert!(app.selected.is_some());
        for tab in ["3", "4"] {
            press(&mut app, tab);
            press(&mut app, "x");
            assert!(
                app.overlay.is_none(),
                "no cancel of a task selected out of sight on tab {tab}"
            );
        }
        press(&mut app, "2");
        press(&mut app, "x");
        assert!(matches!(app.overlay, Some(Overlay::Confirm { .. })));
        app.overlay = None;
        // On the Overview, once the focus left the Tasks pane (which then shows its top
        // rows), x and Enter leave the selection alone until the focus comes back.
        press(&mut app, "1");
        press(&mut app, "l");
        assert_ne!(app.focus, Pane::Tasks);
        press(&mut app, "x");
        assert!(app.overlay.is_none(), "no cancel from another pane's focus");
        assert!(
            status_text(&app).contains("focus it first"),
            "{}",
            status_text(&app)
        );
        press(&mut app, "h");
        assert_eq!(app.focus, Pane::Tasks);
        press(&mut app, "x");
        assert!(matches!(app.overlay, Some(Overlay::Confirm { .. })));
    }

    #[test]
    fn filter_narrows_and_bang_inverts() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "/");
        assert_eq!(app.tab, Tab::Tasks, "/ on Overview jumps to the Tasks tab");
        type_text(&mut app, "spin");
        let ids: Vec<u64> = app.task_rows().iter().map(|t| t.id.0).collect();
        assert_eq!(ids, vec![3]);
        press(&mut app, "enter");
        assert!(app.overlay.is_none());
        app.filter = "!spin".into();
        let ids: Vec<u64> = app.task_rows().iter().map(|t| t.id.0).collect();
        assert_eq!(ids, vec![2, 1]);
        let mut tasks = three_tasks();
        tasks.push(task(4, TaskState::TimedOut, "sleep 1m timeout=1s"));
        app.ingest(snapshot(2, tasks, 2));
        for typed in ["timed out", "timed_out"] {
            app.filter = typed.into();
            let ids: Vec<u64> = app.task_rows().iter().map(|t| t.id.0).collect();
            assert_eq!(ids, vec![4], "the state as shown and as named: {typed}");
        }
        press(&mut app, "esc");
        assert!(app.filter.is_empty(), "esc on the table clears the filter");
        assert_eq!(
            app.status.as_ref().map(|s| s.text.as_str()),
            Some("filter cleared")
        );
        press(&mut app, "/");
        type_text(&mut app, "fib");
        assert!(
            app.status.is_none(),
            "a new filter: 'filter cleared' no longer holds"
        );
        // Esc in the prompt drops what was typed there, at once.
        press(&mut app, "esc");
        assert!(app.overlay.is_none());
        assert!(app.filter.is_empty(), "esc in the prompt clears the filter");
        assert_eq!(app.task_rows().len(), 4);
        press(&mut app, "/");
        type_text(&mut app, "spin");
        press(&mut app, "enter");
        assert_eq!(app.filter, "spin", "enter keeps it");
    }

    #[test]
    fn ctrl_c_quits_also_when_quit_is_bound_to_other_keys_unless_it_was_rebound() {
        let keyed = |action: &str, keys: &[&str]| {
            let mut overrides = std::collections::BTreeMap::new();
            overrides.insert(
                action.to_string(),
                keys.iter().map(|key| key.to_string()).collect(),
            );
            App::new(
                options(),
                Keymap::with_overrides(&overrides).unwrap(),
                Kinds::new(),
            )
        };
        let mut app = keyed("quit", &["ctrl-q"]);
        press(&mut app, "q");
        assert!(!app.quit, "q is no longer quit");
        press(&mut app, "ctrl-c");
        assert!(app.quit, "ctrl-c still is");
        let mut app = keyed("help", &["ctrl-c"]);
        press(&mut app, "ctrl-c");
        assert!(!app.quit, "ctrl-c bound to help is help");
        assert!(matches!(app.overlay, Some(Overlay::Help { .. })));
    }

    #[test]
    fn sort_cycles_columns_and_reverses() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "s");
        assert_eq!(
            app.sort.0,
            SortColumn::State,
            "the columns' order on screen"
        );
        press(&mut app, "s");
        assert_eq!(app.sort.0, SortColumn::Kind);
        let kinds: Vec<&str> = app.task_rows().iter().map(|t| &*t.kind).collect();
        assert_eq!(kinds, vec!["fib", "sleep", "spin"]);
        press(&mut app, "S");
        let kinds: Vec<&str> = app.task_rows().iter().map(|t| &*t.kind).collect();
        assert_eq!(kinds, vec!["spin", "sleep", "fib"]);
        // A narrow table leaves KIND and ATTEMPT out, and sorting skips them.
        app.hits.narrow_tasks = true;
        let mut seen = Vec::new();
        for _ in 0..SortColumn::ALL.len() {
            press(&mut app, "s");
            seen.push(app.sort.0);
        }
        assert!(!seen.contains(&SortColumn::Kind) && !seen.contains(&SortColumn::Attempt));
        assert!(seen.contains(&SortColumn::Duration) && seen.contains(&SortColumn::Id));
        // SPEC is a column too, its numbers compared as numbers.
        assert!(seen.contains(&SortColumn::Spec));
        app.sort = (SortColumn::Spec, false);
        let mut tasks = three_tasks();
        tasks.push(task(9, TaskState::Queued, "fib 10"));
        tasks.push(task(8, TaskState::Queued, "fib 9"));
        tasks.push(task(10, TaskState::Queued, "sleep 5m"));
        tasks.push(task(11, TaskState::Queued, "sleep 90s"));
        app.ingest(snapshot(2, tasks, 2));
        let specs: Vec<&str> = app.task_rows().iter().map(|t| t.spec.as_str()).collect();
        let position = |spec| specs.iter().position(|s| *s == spec);
        assert!(position("fib 9") < position("fib 10"), "{specs:?}");
        // Durations by value, not by their digits.
        assert!(position("sleep 90s") < position("sleep 5m"), "{specs:?}");
    }

    #[test]
    fn submit_prompt_shows_parse_errors_as_you_type_and_submits_nothing_bad() {
        let mut app = app();
        press(&mut app, "n");
        type_text(&mut app, "spni 3s");
        let Some(Overlay::Submit(input)) = &app.overlay else {
            panic!("prompt open");
        };
        let error = input.error.clone().expect("an error under the prompt");
        assert!(error.contains("did you mean 'spin'"), "{error}");
        assert_eq!(press(&mut app, "enter"), NOTHING, "a bad spec is not sent");
        assert!(matches!(app.overlay, Some(Overlay::Submit(_))));
        for _ in 0..7 {
            press(&mut app, "backspace");
        }
        type_text(&mut app, "spin 300ms x20");
        let Some(Overlay::Submit(input)) = &app.overlay else {
            panic!("prompt open");
        };
        assert_eq!(input.error, None);
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::Submit("spin 300ms x20".into())]
        );
        // The prompt waits for the node's answer, and closes when it takes the tasks.
        assert!(submit_input(&app).sending);
        app.on_reply(taken("spin 300ms x20", vec![TaskId(1)]));
        assert!(app.overlay.is_none());
    }

    #[test]
    fn the_palette_checks_a_submit_lines_spec_as_it_is_typed() {
        let mut app = app();
        press(&mut app, ":");
        type_text(&mut app, "submit fib 99");
        let error = |app: &App| match &app.overlay {
            Some(Overlay::Palette(input)) => input.error.clone(),
            _ => panic!("palette open"),
        };
        let shown = error(&app).expect("an error as it is typed");
        assert!(shown.starts_with("`fib 99`: column 5"), "{shown}");
        press(&mut app, "backspace");
        assert_eq!(error(&app), None, "fib 9 is fine");
        // Other commands are checked when run, not while typed.
        for _ in 0.."submit fib 9".len() {
            press(&mut app, "backspace");
        }
        type_text(&mut app, "tab nowhere");
        assert_eq!(error(&app), None);
    }

    #[test]
    fn submit_prompt_history_walks_back_and_forth() {
        let mut app = app();
        for spec in ["fib 30", "sleep 1s"] {
            press(&mut app, "n");
            type_text(&mut app, spec);
            press(&mut app, "enter");
            app.on_reply(taken(spec, vec![TaskId(1)]));
        }
        press(&mut app, "n");
        type_text(&mut app, "ech");
        let text = |app: &App| match &app.overlay {
            Some(Overlay::Submit(input)) => input.text.clone(),
            _ => panic!("prompt open"),
        };
        press(&mut app, "up");
        assert_eq!(text(&app), "sleep 1s");
        press(&mut app, "up");
        assert_eq!(text(&app), "fib 30");
        press(&mut app, "up");
        assert_eq!(text(&app), "fib 30");
        press(&mut app, "down");
        assert_eq!(text(&app), "sleep 1s");
        press(&mut app, "down");
        assert_eq!(text(&app), "ech", "back to the draft");
    }

    #[test]
    fn a_cancel_of_many_is_summed_up_by_outcome() {
        let mut results: Vec<(TaskId, Result<String, String>)> = (132..=161)
            .map(|id| (TaskId(id), Ok("cancel requested".to_string())))
            .collect();
        results.push((
            TaskId(24),
            Ok("already succeeded; nothing to cancel".into()),
        ));
        for id in [99_999, 99_998, 99_997, 99_996] {
            results.push((TaskId(id), Err(format!("no task {id} on this node"))));
        }
        results.insert(0, (TaskId(20), Ok("already cancelled".into())));
        results.push((TaskId(5), Err("the log failed: disk full".into())));
        assert_eq!(
            cancel_summary(results.clone()),
            "cancel: 30 cancel requested, 2 already finished, 5 not cancelled · 30 tasks (132–161): \
             cancel requested · task 20: already cancelled · task 24: already succeeded; \
             nothing to cancel · cancel of 4 tasks (99996–99999) failed: no task on this \
             node · cancel of task 5 failed: the log failed: disk full"
        );
        let many: Vec<(TaskId, Result<String, String>)> = (1..=10)
            .map(|id| (TaskId(id * 2), Err(format!("reason {id}"))))
            .collect();
        let summary = cancel_summary(many.clone());
        assert!(summary.ends_with("· 7 more not cancelled"), "{summary}");
        assert!(!summary.contains("0 cancel requested"), "{summary}");
        let account = cancel_account(many);
        assert!(
            account.contains("reason 10") && !account.contains("more not cancelled"),
            "{account}"
        );
        // The log's account of a cancel of thousands stays a line or two.
        let scattered: Vec<(TaskId, Result<String, String>)> = (1..=4000)
            .map(|id| (TaskId(id * 2), Ok("cancel requested".to_string())))
            .collect();
        let account = cancel_account(scattered);
        assert!(account.len() < 600, "{} bytes: {account}", account.len());
        assert!(account.starts_with("4000 tasks (2, 4, 6"), "{account}");
        assert_eq!(
            id_ranges(&[9, 1, 2, 3, 5, 7, 8, 11, 13].map(TaskId), 4),
            "9 tasks (1–3, 5, 7–9, 11, …)"
        );
    }

    #[test]
    fn a_failure_reason_loses_only_its_task_id() {
        assert_eq!(
            without_task_id("no task 12 on this node", TaskId(12)),
            "no task on this node"
        );
        assert_eq!(
            without_task_id("the node at 127.0.0.1:7420 did not answer", TaskId(127)),
            "the node at 127.0.0.1:7420 did not answer"
        );
        assert_eq!(
            without_task_id("task 120 and task 12 failed", TaskId(12)),
            "task 120 and task failed"
        );
    }

    #[test]
    fn the_palette_cancels_ranges() {
        assert_eq!(
            parse_cancel_ids("3-5, 9 11..12 4 9"),
            Ok([3, 4, 5, 9, 11, 12].map(TaskId).to_vec()),
            "each once"
        );
        assert!(
            parse_cancel_ids("5-3")
                .unwrap_err()
                .contains("ends before it starts")
        );
        assert!(
            parse_cancel_ids("1-100000")
                .unwrap_err()
                .contains("at most 10000")
        );
        assert!(
            parse_cancel_ids("7 1-18446744073709551615")
                .unwrap_err()
                .contains("at most 10000")
        );
        assert!(
            parse_cancel_ids("x-3")
                .unwrap_err()
                .contains("range of ids like 28-127")
        );
        assert!(
            parse_cancel_ids("abc")
                .unwrap_err()
                .contains("not a task id")
        );
        let mut app = app();
        press(&mut app, ":");
        type_text(&mut app, "cancel 28-30");
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::Cancel([28, 29, 30].map(TaskId).to_vec())]
        );
    }

    #[test]
    fn the_palette_opens_any_task_by_id_listed_or_not() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        // Not in the list (the node lists the newest only): fetched from the node.
        press(&mut app, ":");
        type_text(&mut app, "task 12345");
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::FetchTask(TaskId(12345))]
        );
        assert_eq!(app.tab, Tab::Tasks);
        let detail = app.detail.as_ref().expect("the detail view is open");
        assert_eq!((detail.id, detail.info.is_none()), (TaskId(12345), true));
        // The node's answer fills it, or says why not: with nothing to show, back to the
        // list, the reason in the status line.
        app.on_reply(Reply::Task {
            id: TaskId(12345),
            result: Err("no task 12345 on this node".into()),
        });
        assert!(app.detail.is_none());
        assert_eq!(status_text(&app), "no task 12345 on this node");
        // A listed one shows at once, and is selected.
        press(&mut app, ":");
        type_text(&mut app, "task 2");
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::FetchTask(TaskId(2))]
        );
        assert!(app.detail.as_ref().is_some_and(|d| d.info.is_some()));
        assert_eq!(app.selected, Some(TaskId(2)));
        // Not an id: said in the palette, which stays open.
        press(&mut app, "esc");
        press(&mut app, ":");
        type_text(&mut app, "task fib");
        assert_eq!(press(&mut app, "enter"), NOTHING);
        match &app.overlay {
            Some(Overlay::Palette(input)) => {
                let error = input.error.as_deref().unwrap_or_default();
                assert!(error.contains("'fib' is not a task id"), "{error}");
            }
            other => panic!("the palette stays open: {other:?}"),
        }
        // No task is 0: refused as cancel refuses it.
        press(&mut app, "esc");
        press(&mut app, ":");
        type_text(&mut app, "task 0");
        assert_eq!(press(&mut app, "enter"), NOTHING);
        assert!(matches!(app.overlay, Some(Overlay::Palette(_))));
    }

    #[test]
    fn a_log_level_key_asks_for_a_frame_before_the_next_key() {
        let mut app = app();
        press(&mut app, "3");
        press(&mut app, "j");
        assert!(
            !app.draw_before_next_key,
            "moving in the target list needs no frame"
        );
        for key in ["left", "right", "+", "-"] {
            app.draw_before_next_key = false;
            press(&mut app, key);
            assert!(app.draw_before_next_key, "{key}");
        }
        // Elsewhere the keys do not reach the log widget.
        app.draw_before_next_key = false;
        press(&mut app, "2");
        press(&mut app, "left");
        assert!(!app.draw_before_next_key);
    }

    #[test]
    fn a_too_small_terminal_answers_no_hidden_question_and_quits_by_ctrl_c_while_one_is_open() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "2");
        press(&mut app, "j");
        press(&mut app, "x");
        assert!(matches!(app.overlay, Some(Overlay::Confirm { .. })));
        app.hits.too_small = true;
        assert_eq!(
            press(&mut app, "y"),
            NOTHING,
            "the hidden question is not answered"
        );
        assert!(
            matches!(app.overlay, Some(Overlay::Confirm { .. })),
            "still asked"
        );
        press(&mut app, "3");
        assert_eq!(app.tab, Tab::Tasks);
        press(&mut app, "q");
        assert!(
            !app.quit,
            "a `q` meant for the hidden question does not stop the node"
        );
        press(&mut app, "ctrl-c");
        assert!(app.quit, "Ctrl-C quits");
        let mut plain = self::app();
        plain.hits.too_small = true;
        press(&mut plain, "q");
        assert!(plain.quit, "with nothing open the quit key quits");
    }

    #[test]
    fn a_q_typed_into_a_prompt_hidden_by_a_too_small_terminal_does_not_quit() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "n");
        assert!(matches!(app.overlay, Some(Overlay::Submit(_))));
        app.hits.too_small = true;
        press(&mut app, "q");
        assert!(
            !app.quit,
            "`q` of a spec typed blind does not stop the node"
        );
        press(&mut app, "ctrl-c");
        assert!(app.quit, "Ctrl-C still quits");
    }

    /// The node's answer to a submit of `text` that it took, as `ids`.
    pub fn taken(text: &str, ids: Vec<TaskId>) -> Reply {
        Reply::Submitted {
            text: text.into(),
            result: Ok(ids),
            refused: false,
            sent: true,
        }
    }

    /// A submit of `text` refused with `error`, by the node (`sent`) or before sending.
    pub fn refusal(text: &str, error: &str, sent: bool) -> Reply {
        Reply::Submitted {
            text: text.into(),
            result: Err(error.into()),
            refused: true,
            sent,
        }
    }

    /// The open submit prompt's input; a panic when it is not open.
    fn submit_input(app: &App) -> &LineInput {
        match &app.overlay {
            Some(Overlay::Submit(input)) => input,
            other => panic!("the submit prompt is not open: {other:?}"),
        }
    }

    #[test]
    fn a_paste_is_text_in_the_prompt_never_keys() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "2");
        press(&mut app, "j");
        press(&mut app, "n");
        // A paste holding a newline and an "x": as keys, it would submit and then ask to
        // cancel the selected task.
        assert_eq!(app.on_paste("fib 5\nx\n"), NOTHING);
        let input = submit_input(&app);
        // A spec is one line: the prompt takes the first, and says so under it.
        assert_eq!(input.text, "fib 5");
        assert_eq!(input.cursor, 5);
        let error = input.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("2 lines pasted: the prompt took the first"),
            "{error}"
        );
        press(&mut app, "esc");
        // Terminals paste line breaks as carriage returns. Joined, these two lines were one
        // other task (`echo line1 echo line2`), which Enter submitted.
        press(&mut app, "n");
        app.on_paste("echo line1\recho line2\r");
        let input = submit_input(&app);
        assert_eq!(input.text, "echo line1");
        let error = input.error.as_deref().unwrap_or_default();
        assert!(error.contains("2 lines pasted"), "{error}");
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::Submit("echo line1".into())]
        );
        press(&mut app, "esc");
        press(&mut app, "n");
        app.on_paste("fib 5\n");
        let input = submit_input(&app);
        assert_eq!((input.text.as_str(), &input.error), ("fib 5", &None));
        press(&mut app, "esc");
        press(&mut app, "n");
        app.on_paste(&"y".repeat(PASTE_MAX + 10));
        assert!(
            app.status
                .as_ref()
                .is_some_and(|s| s.text.contains("cut to its first 4096"))
        );
        match &app.overlay {
            Some(Overlay::Submit(input)) => assert_eq!(input.text.len(), PASTE_MAX),
            other => panic!("the prompt stays open: {other:?}"),
        }
        press(&mut app, "esc");
        assert_eq!(app.on_paste("x"), NOTHING, "no prompt: ignored");
        assert!(app.overlay.is_none(), "nothing asked");
        assert!(
            app.status
                .as_ref()
                .is_some_and(|s| s.text.contains("paste ignored"))
        );
    }

    #[test]
    fn ctrl_z_says_why_it_does_not_suspend() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        assert_eq!(press(&mut app, "ctrl-z"), NOTHING);
        assert!(!app.quit);
        let said = status_text(&app);
        assert!(
            said.contains("ctrl-z does not suspend the console"),
            "{said}"
        );
    }

    #[test]
    fn lines_pasted_into_the_palette_run_the_first_command_only() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, ":");
        app.on_paste("submit echo a\nsubmit echo b\n");
        let input = match &app.overlay {
            Some(Overlay::Palette(input)) => input,
            other => panic!("the palette is open: {other:?}"),
        };
        // Joined, the two were one task `echo a submit echo b`.
        assert_eq!(input.text, "submit echo a");
        let error = input.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("2 lines pasted: the prompt took the first"),
            "{error}"
        );
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::Submit("echo a".into())]
        );
        // A first line with an error of its own keeps it; the note goes to the status line.
        press(&mut app, "n");
        app.on_paste("spni 1s\nfib 5\n");
        let input = submit_input(&app);
        assert_eq!(input.text, "spni 1s");
        let error = input.error.as_deref().unwrap_or_default();
        assert!(error.contains("did you mean 'spin'"), "{error}");
        let said = status_text(&app);
        assert!(said.contains("2 lines pasted"), "{said}");
    }

    #[test]
    fn palette_lines_have_a_history_of_their_own() {
        let mut app = app();
        press(&mut app, ":");
        type_text(&mut app, "cancel 7");
        press(&mut app, "enter");
        press(&mut app, ":");
        type_text(&mut app, "submit fib 3");
        press(&mut app, "enter");
        press(&mut app, "n");
        press(&mut app, "up");
        press(&mut app, "up");
        match &app.overlay {
            Some(Overlay::Submit(input)) => {
                assert_eq!(input.text, "fib 3", "only specs at the submit prompt")
            }
            other => panic!("prompt open: {other:?}"),
        }
        press(&mut app, "esc");
        press(&mut app, ":");
        press(&mut app, "up");
        press(&mut app, "up");
        match &app.overlay {
            Some(Overlay::Palette(input)) => assert_eq!(input.text, "cancel 7"),
            other => panic!("palette open: {other:?}"),
        }
    }

    #[test]
    fn cancel_asks_first_and_only_yes_cancels() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "2");
        press(&mut app, "j");
        assert_eq!(press(&mut app, "x"), NOTHING);
        assert!(matches!(
            app.overlay,
            Some(Overlay::Confirm { id: TaskId(3), .. })
        ));
        assert_eq!(press(&mut app, "n"), NOTHING);
        assert!(app.overlay.is_none());
        press(&mut app, "x");
        assert_eq!(press(&mut app, "y"), vec![Command::Cancel(vec![TaskId(3)])]);
    }

    #[test]
    fn cancel_of_a_finished_task_explains_instead_of_asking() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "2");
        press(&mut app, "j j");
        press(&mut app, "x");
        assert!(app.overlay.is_none());
        let status = app.status.clone().expect("a message");
        assert!(status.text.contains("already succeeded"), "{}", status.text);
    }

    #[test]
    fn readonly_hides_submit_and_cancel() {
        let mut app = app();
        app.options.readonly = true;
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "n");
        assert!(app.overlay.is_none());
        press(&mut app, "2");
        press(&mut app, "j");
        press(&mut app, "x");
        assert!(app.overlay.is_none());
        press(&mut app, ":");
        type_text(&mut app, "submit fib 3");
        assert_eq!(press(&mut app, "enter"), NOTHING);
    }

    #[test]
    fn an_unknown_palette_command_lists_the_commands_this_console_takes() {
        let palette_error = |app: &mut App, line: &str| {
            press(app, ":");
            type_text(app, line);
            press(app, "enter");
            let error = match &app.overlay {
                Some(Overlay::Palette(input)) => input.error.clone().unwrap_or_default(),
                _ => panic!("palette stays open on an error"),
            };
            press(app, "esc");
            error
        };
        let mut app = app();
        assert_eq!(
            palette_error(&mut app, "frobnicate"),
            "unknown command 'frobnicate'; commands: submit SPEC, cancel ID… or A-B, task ID, tab NAME, help, pause, q"
        );
        assert!(palette_error(&mut app, "quiet").contains("did you mean 'quit'"));
        app.options.readonly = true;
        assert_eq!(
            palette_error(&mut app, "frobnicate"),
            "unknown command 'frobnicate'; commands: task ID, tab NAME, help, pause, q (read-only: no submit or cancel)"
        );
    }

    /// A console asking to cancel a task that then finishes, the question still open.
    fn asked_then_finished() -> App {
        let (mut app, open) = asking_to_cancel();
        let mut later = three_tasks();
        for task in &mut later {
            if task.id == open.id {
                task.state = TaskState::Succeeded;
            }
        }
        app.ingest(snapshot(2, later, 2));
        app
    }

    #[test]
    fn a_cancel_question_follows_its_task_and_asks_nothing_once_it_ended() {
        // It finishes while the question is open.
        let mut app = asked_then_finished();
        match &app.overlay {
            Some(Overlay::Confirm { state, .. }) => assert_eq!(*state, TaskState::Succeeded),
            other => panic!("the question stays open: {other:?}"),
        }
        assert_eq!(press(&mut app, "y"), NOTHING, "no cancel is sent");
        let said = status_text(&app);
        assert!(
            said.contains("already succeeded; nothing to cancel"),
            "{said}"
        );
        // Closed with Esc instead: nothing is said to be "left running".
        let mut app = asked_then_finished();
        assert_eq!(press(&mut app, "esc"), NOTHING);
        assert!(app.overlay.is_none());
        let said = status_text(&app);
        assert!(!said.contains("left running"), "{said}");
    }

    #[test]
    fn a_cancel_question_closes_when_a_memory_only_node_restarts() {
        let (mut app, _) = asking_to_cancel();
        // The same address, a new process without a log: its task of that id is another.
        let mut restarted = snapshot(2, three_tasks(), 2);
        restarted.node.pid += 1;
        restarted.node.started_unix_us += 1_000_000;
        assert!(restarted.wal.is_none());
        app.ingest(restarted);
        assert!(app.overlay.is_none(), "{:?}", app.overlay);
    }

    #[test]
    fn sorting_by_state_puts_work_in_progress_first_then_failures() {
        let mut app = app();
        let mut tasks = three_tasks();
        let states = [
            TaskState::Succeeded,
            TaskState::Failed,
            TaskState::Running,
            TaskState::Queued,
        ];
        let template = tasks[0].clone();
        tasks.clear();
        for (index, state) in states.iter().enumerate() {
            let mut task = template.clone();
            task.id = TaskId(index as u64 + 1);
            task.state = *state;
            tasks.push(task);
        }
        app.ingest(snapshot(2, tasks, 1));
        app.sort = (SortColumn::State, false);
        let order: Vec<TaskState> = app.task_rows().iter().map(|t| t.state).collect();
        assert_eq!(
            order,
            vec![
                TaskState::Running,
                TaskState::Queued,
                TaskState::Failed,
                TaskState::Succeeded
            ]
        );
    }

    #[test]
    fn palette_runs_commands_and_explains_mistakes() {
        let mut app = app();
        press(&mut app, ":");
        type_text(&mut app, "cancel 7, 9");
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::Cancel(vec![TaskId(7), TaskId(9)])]
        );
        // A palette line that fails: the palette stays open, saying why.
        let refused = |app: &mut App, line: &str| {
            press(app, ":");
            type_text(app, line);
            press(app, "enter");
            let Some(Overlay::Palette(input)) = &app.overlay else {
                panic!("palette stays open on an error");
            };
            let error = input.error.clone().unwrap_or_default();
            press(app, "esc");
            error
        };
        let error = refused(&mut app, "sbumit fib 3");
        assert!(error.contains("did you mean 'submit'"), "{error}");
        let error = refused(&mut app, "tab clustr");
        assert!(
            error.contains("no tab 'clustr'; did you mean 'cluster'?"),
            "{error}"
        );
        press(&mut app, ":");
        type_text(&mut app, "submit fib 3O");
        assert!(
            press(&mut app, "enter").is_empty(),
            "nothing bad is submitted"
        );
        let Some(Overlay::Palette(input)) = &app.overlay else {
            panic!("palette stays open on an error");
        };
        assert_eq!(
            input.error.as_deref(),
            Some("`fib 3O`: column 5: '3O' is not a whole number"),
            "the column is counted in the spec it names"
        );
        press(&mut app, "esc");
        press(&mut app, ":");
        type_text(&mut app, "tab logs");
        press(&mut app, "enter");
        assert_eq!(app.tab, Tab::Logs);
        // A prefix naming one tab is that tab.
        press(&mut app, ":");
        type_text(&mut app, "tab clu");
        press(&mut app, "enter");
        assert_eq!(app.tab, Tab::Cluster);
        press(&mut app, ":");
        type_text(&mut app, "q");
        press(&mut app, "enter");
        assert!(app.quit);
    }

    #[test]
    fn enter_opens_details_and_esc_goes_back() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "j");
        assert_eq!(
            app.selected,
            Some(TaskId(3)),
            "Overview's task pane has focus"
        );
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::FetchTask(TaskId(3))]
        );
        assert_eq!(app.tab, Tab::Tasks);
        assert_eq!(app.detail.as_ref().map(|d| d.id), Some(TaskId(3)));
        let follow_up = app.on_reply(Reply::Snapshot(Box::new(snapshot(2, three_tasks(), 2))));
        assert_eq!(
            follow_up,
            vec![Command::FetchTask(TaskId(3))],
            "a running task's detail is refreshed with each sample"
        );
        press(&mut app, "esc");
        assert!(app.detail.is_none());
    }

    #[test]
    fn a_finished_tasks_whole_record_is_kept_over_the_lists_cut_copy() {
        use crate::runtime::task::{ProcessOutput, TaskOutput};
        let with_stdout = |bytes: usize, truncated: u64| {
            let mut info = task(2, TaskState::Succeeded, "exec -- yes");
            info.output = Some(TaskOutput::Process(Box::new(ProcessOutput {
                exit_code: Some(0),
                stdout: "y".repeat(bytes),
                stdout_truncated: truncated,
                ..Default::default()
            })));
            info
        };
        let mut app = app();
        // Lists carry each output's first 1 KiB; the node keeps 64 KiB.
        let listed = || vec![with_stdout(1024, 99_000)];
        app.ingest(snapshot(2, listed(), 1));
        press(&mut app, "2");
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::FetchTask(TaskId(2))]
        );
        app.on_reply(Reply::Task {
            id: TaskId(2),
            result: Ok(Box::new(with_stdout(65_536, 34_464))),
        });
        let follow_up = app.on_reply(Reply::Snapshot(Box::new(snapshot(2, listed(), 2))));
        assert!(follow_up.is_empty(), "nothing more to fetch: {follow_up:?}");
        let shown = app.detail.as_ref().and_then(|d| d.info.clone());
        match shown.and_then(|info| info.output) {
            Some(TaskOutput::Process(process)) => {
                assert_eq!(process.stdout.len(), 65_536);
                assert_eq!(process.stdout_truncated, 34_464);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn enter_with_nothing_selected_opens_the_top_row() {
        let mut app = app();
        press(&mut app, "2");
        press(&mut app, "enter");
        assert!(app.detail.is_none(), "no tasks: nothing opens");
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "x");
        assert!(app.overlay.is_none(), "cancel never picks a task by itself");
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::FetchTask(TaskId(3))],
            "the top row: the newest task"
        );
        assert_eq!(app.selected, Some(TaskId(3)));
        assert_eq!(app.detail.as_ref().map(|d| d.id), Some(TaskId(3)));
    }

    #[test]
    fn a_task_the_filter_hides_is_neither_cancelled_nor_opened() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "2");
        press(&mut app, "j");
        assert_eq!(app.selected, Some(TaskId(3)), "spin 5s, running");
        app.filter = "sleep".into();
        press(&mut app, "x");
        assert!(
            app.overlay.is_none(),
            "no confirmation for the hidden task 3"
        );
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::FetchTask(TaskId(1))],
            "enter opens the top shown row, not the hidden selection"
        );
    }

    #[test]
    fn pause_freezes_the_display_while_data_keeps_arriving() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        press(&mut app, "space");
        assert!(app.paused());
        app.ingest(snapshot(2, vec![task(9, TaskState::Queued, "fib 3")], 2));
        assert_eq!(
            app.task_rows().len(),
            3,
            "the display shows the paused sample"
        );
        press(&mut app, "space");
        assert_eq!(app.task_rows().len(), 1, "resuming shows the newest sample");
    }

    #[test]
    fn zoom_and_focus_move_between_overview_panes() {
        let mut app = app();
        assert_eq!(app.focus, Pane::Tasks);
        press(&mut app, "l");
        assert_eq!(app.focus, Pane::Log);
        press(&mut app, "h h h h");
        assert_eq!(
            app.focus,
            Pane::Workers,
            "no WAL or Cluster pane without their data"
        );
        press(&mut app, "e");
        assert!(app.zoomed);
        press(&mut app, "esc");
        assert!(!app.zoomed);
    }

    #[test]
    fn rates_come_from_two_samples() {
        let mut app = app();
        app.ingest(snapshot(2, Vec::new(), 1));
        app.ingest(snapshot(2, Vec::new(), 3));
        let rates = &app.live.series.rates;
        // finished = 900*now + 16: (2716 - 916) / 2 s.
        assert!((rates.tasks_per_s - 900.0).abs() < 1e-6, "{rates:?}");
        // worker 1 stole 10*now*1: (30 - 10) / 2 s.
        assert!((rates.worker_steals_per_s[1] - 10.0).abs() < 1e-6);
        assert_eq!(app.live.series.depth[1].len(), 2);
    }

    #[test]
    fn clicks_pick_tabs_panes_and_rows() {
        let mut app = app();
        app.ingest(snapshot(2, three_tasks(), 1));
        app.hits = HitMap {
            tabs: vec![(Rect::new(0, 1, 10, 1), 0), (Rect::new(10, 1, 8, 1), 1)],
            panes: vec![(Rect::new(0, 3, 40, 10), Pane::Workers)],
            task_rows: Some(Rect::new(0, 5, 80, 10)),
            task_ids: vec![TaskId(3), TaskId(2), TaskId(1)],
            ..HitMap::default()
        };
        let click = |column, row| MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column,
            row,
            modifiers: KeyModifiers::NONE,
        };
        app.on_mouse(click(12, 1));
        assert_eq!(app.tab, Tab::Tasks);
        app.on_mouse(click(3, 6));
        assert_eq!(app.selected, Some(TaskId(2)), "second row");
        app.on_mouse(click(3, 1));
        assert_eq!(app.tab, Tab::Overview);
        app.on_mouse(click(3, 4));
        assert_eq!(app.focus, Pane::Workers);
        app.options.mouse = false;
        app.on_mouse(click(12, 1));
        assert_eq!(app.tab, Tab::Overview, "--no-mouse ignores clicks");
    }

    #[test]
    fn a_refusal_of_a_prompt_closed_while_it_waited_goes_to_the_status_line() {
        let mut app = app();
        press(&mut app, "n");
        type_text(&mut app, "exec -- ls");
        assert_eq!(
            press(&mut app, "enter"),
            vec![Command::Submit("exec -- ls".into())]
        );
        // The operator closes the waiting prompt and moves on before the node answers.
        press(&mut app, "esc");
        assert!(app.overlay.is_none());
        press(&mut app, "4");
        app.on_reply(refusal(
            "exec -- ls",
            "exec tasks are not accepted over the network",
            true,
        ));
        assert!(app.overlay.is_none(), "{:?}", app.overlay);
        let status = app.status.clone().unwrap();
        assert_eq!(status.severity, Severity::Error);
        assert!(
            status
                .text
                .contains("submit refused by the node: exec tasks")
                && status.text.contains("n, then ↑"),
            "{}",
            status.text
        );
        // As said: the prompt's history holds the spec.
        press(&mut app, "n");
        press(&mut app, "up");
        assert_eq!(submit_input(&app).text, "exec -- ls");
        // A palette submit never opens the prompt for its refusal: the status line says it.
        press(&mut app, "esc");
        press(&mut app, ":");
        type_text(&mut app, "submit echo a x70000");
        press(&mut app, "enter");
        app.on_reply(refusal(
            "echo a x70000",
            "a batch of 70000 tasks can never fit",
            true,
        ));
        assert!(app.overlay.is_none(), "{:?}", app.overlay);
        assert!(
            status_text(&app).contains("can never fit"),
            "{}",
            status_text(&app)
        );
    }

    #[test]
    fn a_prompt_not_sent_for_want_of_a_connection_clears_that_once_connected() {
        let mut app = app();
        press(&mut app, "n");
        type_text(&mut app, "fib 3");
        press(&mut app, "enter");
        app.on_reply(refusal(
            "fib 3",
            "not connected to 127.0.0.1:7420: refused",
            false,
        ));
        let error = submit_input(&app).error.clone().unwrap_or_default();
        assert!(error.starts_with("not sent: not connected"), "{error}");
        app.ingest(snapshot(2, Vec::new(), 20));
        assert_eq!(submit_input(&app).error, None, "connected again");
        assert_eq!(submit_input(&app).text, "fib 3", "the text waits for Enter");
    }

    #[test]
    fn replies_land_in_the_status_line() {
        let mut app = app();
        app.on_reply(taken("spin 1s x3", vec![TaskId(4), TaskId(5), TaskId(6)]));
        assert!(app.status.as_ref().unwrap().text.contains("3 tasks (4–6)"));
        assert!(app.overlay.is_none());
        press(&mut app, "n");
        type_text(&mut app, "spin 1s");
        press(&mut app, "enter");
        // Keys while it waits change nothing (the answer comes in a moment).
        type_text(&mut app, "4");
        app.on_reply(refusal(
            "spin 1s",
            "node busy: all 8 task slots are in use; retry when some finish or raise arena.slots",
            true,
        ));
        // The node took nothing: the prompt says why under the text, to edit or retry
        // (said there, not also in the status line the prompt would half cover).
        assert!(
            !status_text(&app).contains("all 8 task slots"),
            "{}",
            status_text(&app)
        );
        let input = submit_input(&app);
        assert_eq!(input.text, "spin 1s");
        let error = input.error.as_deref().unwrap_or_default();
        assert!(error.contains("all 8 task slots"), "{error}");
        assert_eq!(press(&mut app, "esc"), NOTHING);
        // An outcome not known (the connection closed on the way) is told, not offered again.
        app.on_reply(Reply::Submitted {
            text: "spin 1s".into(),
            result: Err("connection to the node closed: reset".into()),
            refused: false,
            sent: true,
        });
        assert!(app.overlay.is_none(), "{:?}", app.overlay);
        let status = app.status.clone().unwrap();
        assert_eq!(status.severity, Severity::Error);
        assert!(
            status.text.contains("connection to the node closed"),
            "{}",
            status.text
        );
        // A cancel of several tasks reports every one, and a miss makes it an error.
        app.on_reply(Reply::Cancelled {
            results: vec![
                (TaskId(22), Ok("cancel requested".into())),
                (
                    TaskId(24),
                    Ok("already succeeded; nothing to cancel".into()),
                ),
                (TaskId(999), Err("no task 999 on this node".into())),
            ],
        });
        let status = app.status.clone().unwrap();
        assert_eq!(status.severity, Severity::Error);
        for part in [
            "task 22: cancel requested",
            "task 24: already succeeded",
            "cancel of task 999 failed: no task on this node",
        ] {
            assert!(status.text.contains(part), "{}", status.text);
        }
        app.on_reply(Reply::Disconnected {
            error: "connection refused".into(),
            retry_in: Duration::from_secs(1),
            refused: false,
        });
        assert!(matches!(app.link, Link::Down { .. }));
        app.ingest(snapshot(1, Vec::new(), 1));
        assert_eq!(app.link, Link::Up);
        let since = Instant::now();
        app.on_reply(Reply::Unanswered { since });
        assert_eq!(app.link, Link::Unanswered { since });
        app.status = None;
        assert_eq!(
            app.next_deadline(since + Duration::from_millis(2500)),
            Some(since + Duration::from_secs(3)),
            "the seconds without an answer are counted on screen"
        );
        app.ingest(snapshot(1, Vec::new(), 1));
        assert_eq!(app.link, Link::Up, "an answer ends it");
        // A retry countdown is redrawn when its whole seconds change, and not once it is due.
        let now = Instant::now();
        app.link = Link::Down {
            error: "refused".into(),
            retry_at: now + Duration::from_millis(4500),
            refused: false,
        };
        assert_eq!(
            app.next_deadline(now),
            Some(now + Duration::from_millis(500)),
            "when '5s' becomes '4s'"
        );
        assert_eq!(
            app.next_deadline(now + Duration::from_secs(5)),
            None,
            "no busy loop once the retry is due"
        );
    }
}
