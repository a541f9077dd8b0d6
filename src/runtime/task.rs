//! Tasks: ids, states, outputs, the text form typed everywhere (`spin 200ms x20 timeout=5s`),
//! and the kind registry embedders extend.
//!
//! The text form is parsed once at the edge into a [`TaskSpec`]: a kind id, two numbers and
//! optional text. That is all a task carries, so it fits in an arena slot and a tiny task
//! costs no heap allocation.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::kinds::StepContext;
use super::suggest;
use super::units::{self, HumanDuration, HumanSize};

/// A task's id: unique on its node, increasing in submission order, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for TaskId {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.trim().trim_start_matches('#');
        match digits.parse::<u64>() {
            // Control characters shown as their pictures: a terminal would act on an escape
            // sequence, and a writer that strips them would show another value.
            Ok(0) | Err(_) => Err(format!(
                "'{}' is not a task id (a whole number from 1)",
                crate::runtime::units::printable(text, false)
            )),
            Ok(value) => Ok(TaskId(value)),
        }
    }
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Accepted, waiting for a worker.
    Queued,
    /// On a worker, or waiting on its timer or child process.
    Running,
    /// Finished with a value.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped by a cancel request.
    Cancelled,
    /// Stopped because it ran past its `timeout=`.
    TimedOut,
}

impl TaskState {
    /// Every state, in life order.
    pub const ALL: [TaskState; 6] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
        TaskState::TimedOut,
    ];

    /// Whether the task is over.
    pub fn is_finished(self) -> bool {
        !matches!(self, TaskState::Queued | TaskState::Running)
    }

    /// The lowercase name used in text and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::TimedOut => "timed_out",
        }
    }

    /// The state's position in [`TaskState::ALL`] (0–5): how packed records (the history
    /// ring, the event ring) store it.
    pub fn code(self) -> u8 {
        match self {
            TaskState::Queued => 0,
            TaskState::Running => 1,
            TaskState::Succeeded => 2,
            TaskState::Failed => 3,
            TaskState::Cancelled => 4,
            TaskState::TimedOut => 5,
        }
    }

    /// The state with this [`TaskState::code`], if any.
    pub fn from_code(code: u8) -> Option<TaskState> {
        TaskState::ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_lowercase().replace('-', "_");
        // The other spellings people type: `timedout`, and the American `canceled`.
        let wanted = match wanted.as_str() {
            "timedout" => "timed_out",
            "canceled" => "cancelled",
            other => other,
        };
        TaskState::ALL
            .into_iter()
            .find(|s| s.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
                let hint = crate::runtime::suggest::closest(wanted, names.iter().copied())
                    .map(|name| format!("did you mean '{name}'? "))
                    .unwrap_or_default();
                format!(
                    "unknown state '{}'; {hint}use one of {}",
                    crate::runtime::units::printable(text, false),
                    names.join(", ")
                )
            })
    }
}

/// What a finished task produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutput {
    /// Nothing (spin, sleep, cancelled tasks).
    #[default]
    None,
    /// A number (fib, primes).
    Number(u64),
    /// Text (echo, hash). Shared: an echo's output is its spec's text.
    Text(Arc<str>),
    /// A child process's exit and output (exec).
    Process(Box<ProcessOutput>),
}

impl fmt::Display for TaskOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskOutput::None => Ok(()),
            TaskOutput::Number(value) => write!(f, "{value}"),
            TaskOutput::Text(text) => f.write_str(text),
            TaskOutput::Process(process) => {
                match (process.exit_code, process.signal) {
                    (Some(code), _) => write!(f, "exit {code}")?,
                    (None, Some(signal)) => write!(f, "signal {signal}")?,
                    (None, None) => f.write_str("no exit status")?,
                }
                let first_line = process.stdout.lines().next().unwrap_or("");
                if !first_line.is_empty() {
                    write!(f, ": {first_line}")?;
                }
                Ok(())
            }
        }
    }
}

/// A [`TaskOutput`] read where it lies in a frame, its text borrowed (see
/// [`crate::runtime::snapshot::TaskInfoView`]). Encodes as a `TaskOutput`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskOutputView<'a> {
    /// Nothing.
    None,
    /// A number.
    Number(u64),
    /// Text.
    Text(&'a str),
    /// A child process's exit and output.
    #[serde(borrow)]
    Process(ProcessOutputView<'a>),
}

/// A [`ProcessOutput`] read where it lies in a frame, its streams borrowed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessOutputView<'a> {
    /// Exit code, if the program exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Standard output as kept.
    pub stdout: &'a str,
    /// Standard error as kept.
    pub stderr: &'a str,
    /// Bytes of standard output beyond the bound, not kept.
    pub stdout_truncated: u64,
    /// Bytes of standard error beyond the bound, not kept.
    pub stderr_truncated: u64,
}

/// The exit and captured output of an `exec` task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessOutput {
    /// Exit code, if the program exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Standard output, up to `exec.max_output` bytes (lossy UTF-8).
    pub stdout: String,
    /// Standard error, up to `exec.max_output` bytes (lossy UTF-8).
    pub stderr: String,
    /// Bytes of standard output beyond the bound, not kept.
    pub stdout_truncated: u64,
    /// Bytes of standard error beyond the bound, not kept.
    pub stderr_truncated: u64,
}

impl ProcessOutput {
    /// A copy with at most `bytes` of each stream (cut at a character boundary), counting
    /// what is left out as not kept; only the kept bytes are copied.
    pub fn copy_at_most(&self, bytes: usize) -> ProcessOutput {
        let kept = |text: &str, cut: u64| {
            let end = crate::runtime::units::floor_char_boundary(text, bytes);
            (text[..end].to_owned(), cut + (text.len() - end) as u64)
        };
        let (stdout, stdout_truncated) = kept(&self.stdout, self.stdout_truncated);
        let (stderr, stderr_truncated) = kept(&self.stderr, self.stderr_truncated);
        ProcessOutput {
            exit_code: self.exit_code,
            signal: self.signal,
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
        }
    }

    /// Keeps at most `bytes` of each stream (cut at a character boundary), counting what is
    /// cut as not kept.
    pub fn keep_at_most(&mut self, bytes: usize) {
        for (text, cut) in [
            (&mut self.stdout, &mut self.stdout_truncated),
            (&mut self.stderr, &mut self.stderr_truncated),
        ] {
            let end = crate::runtime::units::floor_char_boundary(text, bytes);
            if end < text.len() {
                *cut += (text.len() - end) as u64;
                text.truncate(end);
                // Cut to be held (a wait's outcomes): the memory goes too.
                text.shrink_to_fit();
            }
        }
    }
}

/// Index of a kind in a node's registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KindId(pub(crate) u16);

impl KindId {
    /// `spin DURATION`: busy CPU for that long.
    pub const SPIN: KindId = KindId(0);
    /// `sleep DURATION`: a timer; holds no worker.
    pub const SLEEP: KindId = KindId(1);
    /// `fib N`: the Nth Fibonacci number by naive recursion.
    pub const FIB: KindId = KindId(2);
    /// `primes N`: how many primes are ≤ N.
    pub const PRIMES: KindId = KindId(3);
    /// `hash SIZE`: CRC32C of SIZE generated bytes.
    pub const HASH: KindId = KindId(4);
    /// `echo TEXT`: returns the text.
    pub const ECHO: KindId = KindId(5);
    /// `exec -- PROGRAM ARGS`: runs a program; holds no worker while it runs.
    pub const EXEC: KindId = KindId(6);
    pub(crate) const BUILTIN_COUNT: u16 = 7;

    /// The registry index.
    pub fn index(self) -> u16 {
        self.0
    }
}

/// Parameters of one task: what the text form says, ready to run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskSpec {
    pub(crate) kind: KindId,
    pub(crate) numbers: [u64; 2],
    /// Echo text, or exec's argv joined with NUL bytes, or a custom kind's text. Shared:
    /// an echo's output, its history entry and every description of it hold this one copy.
    pub(crate) text: Option<Arc<str>>,
    pub(crate) timeout: Option<Duration>,
}

/// Largest values the built-in kinds accept.
pub mod limits {
    use std::time::Duration;
    /// `spin` at most an hour of CPU.
    pub const SPIN_MAX: Duration = Duration::from_secs(3600);
    /// `sleep` at most a week.
    pub const SLEEP_MAX: Duration = Duration::from_secs(7 * 86_400);
    /// Naive recursion costs about 1.6^N steps: fib 60 is already about two hours of CPU (fib 93,
    /// the largest that fits in 64 bits, would be millennia).
    pub const FIB_MAX: u64 = 60;
    /// `primes` up to 10^12.
    pub const PRIMES_MAX: u64 = 1_000_000_000_000;
    /// `hash` at most 64 GiB.
    pub const HASH_MAX: u64 = 64 << 30;
    /// Echo text at most 4 KiB.
    pub const ECHO_MAX: usize = 4096;
    /// Exec argv at most 64 KiB in all.
    pub const ARGV_MAX: usize = 64 << 10;
    /// Any task's text (a registered kind's included) at most 64 KiB: a task's record in the
    /// write-ahead log, and in its checkpoints with the task's output, must stay well within
    /// the log's 1 MiB record bound.
    pub const TEXT_MAX: usize = 64 << 10;
    /// Bytes of each output stream a task list carries (`tasks`, snapshots); a single
    /// task's description carries all the node kept.
    pub const LISTED_OUTPUT_MAX: usize = 1024;
    /// `xN` at most a million copies.
    pub const COPIES_MAX: u32 = 1_000_000;
    /// `timeout=` at most a week.
    pub const TIMEOUT_MAX: Duration = Duration::from_secs(7 * 86_400);
}

impl TaskSpec {
    /// `spin DURATION`.
    pub fn spin(duration: Duration) -> Self {
        Self::from_parts(KindId::SPIN, [duration_nanos(duration), 0], None)
    }
    /// `sleep DURATION`.
    pub fn sleep(duration: Duration) -> Self {
        Self::from_parts(KindId::SLEEP, [duration_nanos(duration), 0], None)
    }
    /// `fib N`.
    pub fn fib(n: u64) -> Self {
        Self::from_parts(KindId::FIB, [n.min(limits::FIB_MAX), 0], None)
    }
    /// `primes N`.
    pub fn primes(limit: u64) -> Self {
        Self::from_parts(KindId::PRIMES, [limit.min(limits::PRIMES_MAX), 0], None)
    }
    /// `hash SIZE`.
    pub fn hash(bytes: u64) -> Self {
        Self::from_parts(KindId::HASH, [bytes.min(limits::HASH_MAX), 0], None)
    }
    /// `echo TEXT`.
    pub fn echo(text: &str) -> Self {
        Self::from_parts(KindId::ECHO, [0, 0], Some(text.into()))
    }
    /// `exec -- PROGRAM ARGS…`. Arguments must not contain NUL bytes.
    pub fn exec<S: AsRef<str>>(argv: &[S]) -> Self {
        let joined: Vec<&str> = argv.iter().map(|a| a.as_ref()).collect();
        Self::from_parts(
            KindId::EXEC,
            [argv.len() as u64, 0],
            Some(joined.join(ARGV_SEPARATOR).into()),
        )
    }
    /// A task of a registered kind with its numbers and text.
    pub fn custom(kind: KindId, numbers: [u64; 2], text: Option<Box<str>>) -> Self {
        Self::from_parts(kind, numbers, text.map(Arc::from))
    }
    /// A task of any kind from its parts (a recovered task's, whose text is copied once).
    pub(crate) fn from_parts(kind: KindId, numbers: [u64; 2], text: Option<Arc<str>>) -> Self {
        Self {
            kind,
            numbers,
            text,
            timeout: None,
        }
    }
    /// Adds a time limit counted from the task's first run.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// The kind.
    pub fn kind(&self) -> KindId {
        self.kind
    }
    /// The time limit, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// For `exec`: the program and its arguments.
    pub fn argv(&self) -> Vec<&str> {
        match (&self.text, self.kind) {
            (Some(text), KindId::EXEC) => exec_argv(text).collect(),
            _ => Vec::new(),
        }
    }
    /// The numbers a kind parsed.
    pub fn numbers(&self) -> [u64; 2] {
        self.numbers
    }
    /// The text a kind parsed, if any.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A parsed line of the text form: one spec and how many copies to submit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    /// What to run.
    pub spec: TaskSpec,
    /// How many copies (`xN`, default 1).
    pub copies: u32,
}

impl Submission {
    /// How many tasks it makes: its copies, at least one (a `copies` of 0 means one).
    pub fn tasks(&self) -> u32 {
        self.copies.max(1)
    }
}

/// A batch's claimed slots, line by line: the slots were claimed in line order, each line's
/// copies in turn, and a batch cut short claimed none for the lines after the cut (their
/// slices are empty, as is the tail of the line it was cut in).
pub(crate) fn claimed_by_line<'a, T>(
    submissions: &'a [Submission],
    claimed: &'a [T],
) -> impl Iterator<Item = (&'a Submission, &'a [T])> {
    let mut rest = claimed;
    submissions.iter().map(move |submission| {
        let (line, after) = rest.split_at(rest.len().min(submission.tasks() as usize));
        rest = after;
        (submission, line)
    })
}

/// A text form that does not parse: what is wrong and at which column (1-based, in characters).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct SpecError {
    /// 1-based character column of the offending word.
    pub column: usize,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl SpecError {
    fn at(column: usize, message: impl Into<String>) -> Self {
        Self {
            column,
            message: message.into(),
        }
    }
}

/// One word of the text form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word<'a> {
    /// The word with quotes removed and escapes applied (a slice of the input when it had
    /// neither).
    pub text: Cow<'a, str>,
    /// 1-based character column where it starts.
    pub column: usize,
    /// Whether any part was quoted (quoted words are never options).
    pub quoted: bool,
}

/// Splits the text form into words: whitespace separates, `"…"` and `'…'` quote, `\` escapes.
pub fn split_words(input: &str) -> Result<Vec<Word<'_>>, SpecError> {
    split_words_with(input, true)
}

/// [`split_words`]; with `slice_plain_words` false every word goes through [`quoted_word`]
/// (what the slicing shortcut must agree with).
fn split_words_with(input: &str, slice_plain_words: bool) -> Result<Vec<Word<'_>>, SpecError> {
    if slice_plain_words && input.is_ascii() {
        return split_ascii_words(input);
    }
    let mut words = Vec::new();
    // `rest` is what is left of the input; `column` counts the characters before it.
    let mut rest = input;
    let mut column = 0;
    loop {
        let trimmed = rest.trim_start();
        column += rest[..rest.len() - trimmed.len()].chars().count();
        if trimmed.is_empty() {
            return Ok(words);
        }
        let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
        let plain = &trimmed[..end];
        if slice_plain_words && !plain.contains(['"', '\'', '\\']) {
            // Most words: no quotes or escapes, so the word is the slice itself.
            words.push(Word {
                text: Cow::Borrowed(plain),
                column: column + 1,
                quoted: false,
            });
            column += plain.chars().count();
            rest = &trimmed[end..];
            continue;
        }
        let (word, used_bytes, used_chars) = quoted_word(trimmed, column)?;
        words.push(word);
        column += used_chars;
        rest = &trimmed[used_bytes..];
    }
}

/// Whether an ASCII byte is whitespace as [`char::is_whitespace`] sees it (which, unlike
/// [`u8::is_ascii_whitespace`], includes the vertical tab).
fn is_ascii_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Whether an ASCII byte starts a quote or an escape.
fn is_quote_or_escape(byte: u8) -> bool {
    matches!(byte, b'"' | b'\'' | b'\\')
}

/// [`split_words`] for ASCII text, where a character is a byte: one pass over the bytes
/// instead of character iteration and counting (the text form of almost every task).
fn split_ascii_words(input: &str) -> Result<Vec<Word<'_>>, SpecError> {
    let bytes = input.as_bytes();
    // Usually words of plain characters between spaces: one vectorised look says so, and
    // counts the spaces.
    let (quotes_or_other_space, spaces) = plain_look(bytes);
    if !quotes_or_other_space {
        let mut words = Vec::with_capacity(spaces + 1);
        let mut push = |start: usize, end: usize| {
            if end > start {
                words.push(Word {
                    text: Cow::Borrowed(&input[start..end]),
                    column: start + 1,
                    quoted: false,
                });
            }
        };
        // The search stops at the last space: what follows it is the last word, however
        // long (an echo's text after `echo `), and is not looked at again.
        let mut start = 0;
        for _ in 0..spaces {
            let Some(offset) = bytes[start..].iter().position(|&b| b == b' ') else {
                break;
            };
            push(start, start + offset);
            start += offset + 1;
        }
        push(start, bytes.len());
        return Ok(words);
    }
    let mut words = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if is_ascii_space(bytes[at]) {
            at += 1;
            continue;
        }
        let start = at;
        let mut quotes_or_escapes = false;
        while at < bytes.len() && !is_ascii_space(bytes[at]) {
            quotes_or_escapes |= is_quote_or_escape(bytes[at]);
            at += 1;
        }
        if quotes_or_escapes {
            let (word, used_bytes, _) = quoted_word(&input[start..], start)?;
            words.push(word);
            at = start + used_bytes;
        } else {
            words.push(Word {
                text: Cow::Borrowed(&input[start..at]),
                column: start + 1,
                quoted: false,
            });
        }
    }
    Ok(words)
}

/// One vectorised pass over ASCII text: whether it has quotes, escapes or whitespace other
/// than the space, and how many spaces.
fn plain_look(bytes: &[u8]) -> (bool, usize) {
    // Two folds without early exits: each compiles to whole-vector compares.
    let quotes_or_other_space = bytes.iter().fold(false, |found, &b| {
        found | is_quote_or_escape(b) | (is_ascii_space(b) & (b != b' '))
    });
    // Counted in bytes, a chunk at a time: sixteen lanes to a vector, where a `usize` count
    // of every byte took two.
    let spaces = bytes
        .chunks(usize::from(u8::MAX))
        .map(|chunk| {
            let in_chunk = chunk
                .iter()
                .fold(0u8, |count, &b| count + u8::from(b == b' '));
            usize::from(in_chunk)
        })
        .sum();
    (quotes_or_other_space, spaces)
}

/// One word with quotes or escapes at the start of `input` (no leading whitespace), whose
/// first character is at 0-based column `column`; returns it with the bytes and characters
/// it took.
fn quoted_word(input: &str, column: usize) -> Result<(Word<'static>, usize, usize), SpecError> {
    let mut text = String::new();
    let mut quoted = false;
    let mut used_chars = 0;
    let mut chars = input.char_indices().peekable();
    let mut used_bytes = input.len();
    while let Some(&(at, c)) = chars.peek() {
        if c.is_whitespace() {
            used_bytes = at;
            break;
        }
        chars.next();
        let index = column + used_chars;
        used_chars += 1;
        match c {
            '"' | '\'' => {
                quoted = true;
                let quote = c;
                let mut closed = false;
                while let Some((_, inner)) = chars.next() {
                    used_chars += 1;
                    if inner == quote {
                        closed = true;
                        break;
                    }
                    // As in sh: inside "…" a backslash escapes only `"` and itself, so
                    // `printf "a\n"` hands printf its `\n`.
                    if inner == '\\'
                        && quote == '"'
                        && let Some(&(_, escaped @ ('"' | '\\'))) = chars.peek()
                    {
                        chars.next();
                        used_chars += 1;
                        text.push(escaped);
                        continue;
                    }
                    text.push(inner);
                }
                if !closed {
                    return Err(SpecError::at(
                        index + 1,
                        format!("unterminated {quote} quote"),
                    ));
                }
            }
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    used_chars += 1;
                    text.push(escaped);
                }
            }
            other => text.push(other),
        }
    }
    let word = Word {
        text: Cow::Owned(text),
        column: column + 1,
        quoted,
    };
    Ok((word, used_bytes, used_chars))
}

/// How an `exec` task's text holds its program and arguments: joined by NUL, which no
/// argument may contain.
const ARGV_SEPARATOR: &str = "\0";

/// The program and arguments held in an `exec` task's text (also as the log records it).
pub fn exec_argv(text: &str) -> std::str::Split<'_, &'static str> {
    text.split(ARGV_SEPARATOR)
}

/// Quotes a word for the text form when it would not read back as itself.
pub fn quote_word(word: &str) -> String {
    let mut quoted = String::with_capacity(word.len());
    push_word(&mut quoted, word);
    quoted
}

/// Whether a word must be quoted to read back as itself.
fn needs_quotes(word: &str) -> bool {
    let special = if word.is_ascii() {
        // A fold, not `any`: without an early exit the compiler compares whole vectors.
        word.bytes().fold(false, |found, b| {
            found | is_ascii_space(b) | is_quote_or_escape(b)
        })
    } else {
        word.chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    };
    word.is_empty() || special || is_option_like(word)
}

/// Appends a word to `out`, quoted when it would not read back as itself.
fn push_word(out: &mut String, word: &str) {
    if !needs_quotes(word) {
        out.push_str(word);
        return;
    }
    out.reserve(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Whether an echo's text reads back as itself written unquoted after `echo `: words that
/// need no quotes (nor look like options: `needs_quotes` checks) with single spaces between.
fn reads_back_unquoted(text: &str) -> bool {
    if text.is_ascii() {
        // One word, the usual echo: one vectorised look instead of a split.
        let (quotes_or_other_space, spaces) = plain_look(text.as_bytes());
        if quotes_or_other_space {
            return false;
        }
        if spaces == 0 {
            return !text.is_empty() && !is_option_like(text);
        }
    }
    !text.is_empty() && text.split(' ').all(|w| !w.is_empty() && !needs_quotes(w))
}

fn is_option_like(word: &str) -> bool {
    parse_copies_word(word).is_some() || word.starts_with("timeout=")
}

/// The count of an `xN` word, as written; `x-1` is one too (a negative count, refused as
/// copies rather than taken for an argument).
fn parse_copies_word(word: &str) -> Option<&str> {
    let digits = word.strip_prefix('x').or_else(|| word.strip_prefix('×'))?;
    let unsigned = digits.strip_prefix('-').unwrap_or(digits);
    (!unsigned.is_empty() && unsigned.chars().all(|c| c.is_ascii_digit())).then_some(digits)
}

/// What a step of a task did.
#[derive(Debug)]
pub enum Step {
    /// Not done; run again in a later slice.
    Yield,
    /// Finished with this output.
    Done(TaskOutput),
    /// Finished with this error.
    Fail(String),
}

/// Arguments a registered kind parsed from its words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindArgs {
    /// Up to two numbers, kept inline in the task's slot.
    pub numbers: [u64; 2],
    /// Optional text, kept beside the slot.
    pub text: Option<Box<str>>,
}

/// A kind of task an embedding program registers by name (see `NodeBuilder::register_kind`).
///
/// A kind runs in slices: [`TaskKind::step`] is called repeatedly until it returns
/// [`Step::Done`] or [`Step::Fail`]; between calls it keeps its state in
/// [`StepContext::progress`]. A step should return [`Step::Yield`] when
/// [`StepContext::should_yield`] says so, which is how cancellation and fairness work.
pub trait TaskKind: Send + Sync + 'static {
    /// The name typed in the text form.
    fn name(&self) -> &str;
    /// One usage line, e.g. `"resize WIDTH HEIGHT"`, shown in help and errors.
    fn usage(&self) -> &str;
    /// Parses the words after the name.
    fn parse(&self, args: &[&str]) -> Result<KindArgs, String>;
    /// Writes the arguments back in the text form (without the name).
    fn format_args(&self, args: &KindArgs) -> String {
        let mut parts: Vec<String> = Vec::new();
        if args.numbers != [0, 0] {
            parts.push(args.numbers[0].to_string());
        }
        if let Some(text) = &args.text {
            parts.push(quote_word(text));
        }
        parts.join(" ")
    }
    /// Runs one slice of the task.
    fn step(&self, ctx: &mut StepContext<'_>) -> Step;
}

/// The task kinds a node knows: the built-ins first, then registered ones.
#[derive(Clone)]
pub struct Kinds {
    custom: Vec<Arc<dyn TaskKind>>,
}

impl fmt::Debug for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

const BUILTIN_NAMES: [&str; KindId::BUILTIN_COUNT as usize] =
    ["spin", "sleep", "fib", "primes", "hash", "echo", "exec"];

/// The binary's own copy of a built-in kind's name, if `name` is one.
pub fn builtin_name(name: &str) -> Option<&'static str> {
    BUILTIN_NAMES
        .iter()
        .copied()
        .find(|builtin| *builtin == name)
}
const BUILTIN_USAGE: [&str; KindId::BUILTIN_COUNT as usize] = [
    "spin DURATION        busy CPU for that long, e.g. spin 200ms",
    "sleep DURATION       wait on a timer without holding a worker, e.g. sleep 2s",
    "fib N                Nth Fibonacci number by naive recursion (N ≤ 60), e.g. fib 35",
    "primes N             count the primes ≤ N (N ≤ 10^12), e.g. primes 10000000",
    "hash SIZE            CRC32C of SIZE generated bytes (≤ 64GiB), e.g. hash 64MiB",
    "echo TEXT            return the text, e.g. echo hello",
    "exec -- PROGRAM ARGS run a program, capture its output, e.g. exec -- ls -l",
];

/// Why a kind could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The name is taken.
    #[error("a task kind named '{0}' already exists")]
    Duplicate(String),
    /// The name is not a single lowercase word.
    #[error(
        "task kind name '{0}' must be 1-32 characters of a-z, 0-9, '_' or '-', starting with a letter"
    )]
    BadName(String),
    /// Too many kinds.
    #[error("at most {0} task kinds can be registered")]
    TooMany(usize),
}

impl Default for Kinds {
    fn default() -> Self {
        Self::new()
    }
}

impl Kinds {
    /// Only the built-in kinds.
    pub fn new() -> Self {
        Self { custom: Vec::new() }
    }

    /// Adds a kind; its id is returned.
    pub fn register(&mut self, kind: Arc<dyn TaskKind>) -> Result<KindId, RegisterError> {
        let name = kind.name().to_string();
        let valid = !name.is_empty()
            && name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid || parse_copies_word(&name).is_some() {
            return Err(RegisterError::BadName(name));
        }
        if self.lookup(&name).is_some() {
            return Err(RegisterError::Duplicate(name));
        }
        let limit = usize::from(u16::MAX - KindId::BUILTIN_COUNT);
        if self.custom.len() >= limit {
            return Err(RegisterError::TooMany(limit));
        }
        self.custom.push(kind);
        Ok(KindId(
            KindId::BUILTIN_COUNT + (self.custom.len() - 1) as u16,
        ))
    }

    /// The id of a kind by name.
    pub fn lookup(&self, name: &str) -> Option<KindId> {
        if let Some(index) = BUILTIN_NAMES.iter().position(|n| *n == name) {
            return Some(KindId(index as u16));
        }
        self.custom
            .iter()
            .position(|k| k.name() == name)
            .map(|index| KindId(KindId::BUILTIN_COUNT + index as u16))
    }

    /// Every kind's name, built-ins first.
    pub fn names(&self) -> Vec<&str> {
        BUILTIN_NAMES
            .iter()
            .copied()
            .chain(self.custom.iter().map(|k| k.name()))
            .collect()
    }

    /// Every kind's usage line.
    pub fn usage_lines(&self) -> Vec<String> {
        BUILTIN_USAGE
            .iter()
            .map(|line| line.to_string())
            .chain(self.custom.iter().map(|k| k.usage().to_string()))
            .collect()
    }

    /// A kind's name for a description that outlives the registry: built-in names are
    /// borrowed, a registered kind's is copied.
    pub fn owned_name(&self, kind: KindId) -> Cow<'static, str> {
        match BUILTIN_NAMES.get(usize::from(kind.0)) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(self.name(kind).to_string()),
        }
    }

    /// The name of a kind id ("?" for an id this registry does not have).
    pub fn name(&self, kind: KindId) -> &str {
        if kind.0 < KindId::BUILTIN_COUNT {
            BUILTIN_NAMES[usize::from(kind.0)]
        } else {
            self.custom
                .get(usize::from(kind.0 - KindId::BUILTIN_COUNT))
                .map(|k| k.name())
                .unwrap_or("?")
        }
    }

    pub(crate) fn custom(&self, kind: KindId) -> Option<&Arc<dyn TaskKind>> {
        kind.0
            .checked_sub(KindId::BUILTIN_COUNT)
            .and_then(|i| self.custom.get(usize::from(i)))
    }

    /// Parses one line of the text form.
    pub fn parse(&self, input: &str) -> Result<Submission, SpecError> {
        let mut words = split_words(input)?;
        // `goliath submit ""` arrives as one empty quoted word: as empty as a blank line.
        let empty = matches!(words.as_slice(), [only] if only.text.is_empty());
        let Some(first) = words.first().filter(|_| !empty) else {
            return Err(SpecError::at(
                1,
                format!("empty task; try one of: {}", self.names().join(", ")),
            ));
        };
        let Some(kind) = self.lookup(&first.text) else {
            if !first.quoted && is_option_like(&first.text) {
                // `goliath submit "fib 25" x3`: the option became a spec of its own.
                return Err(SpecError::at(
                    first.column,
                    format!(
                        "'{}' is an option of a task, not a task: put it after the task, in the same spec (e.g. \"fib 25 {}\"; for exec before the --, as in \"exec {} -- cmd\")",
                        units::quoted_part(&first.text),
                        units::quoted_part(&first.text),
                        units::quoted_part(&first.text)
                    ),
                ));
            }
            let message = match suggest::closest(&first.text, self.names()) {
                Some(near) => format!(
                    "unknown kind '{}'; did you mean '{near}'?",
                    units::quoted_part(&first.text)
                ),
                None => format!(
                    "unknown kind '{}'; known kinds: {}",
                    units::quoted_part(&first.text),
                    self.names().join(", ")
                ),
            };
            return Err(SpecError::at(first.column, message));
        };
        let kind_column = first.column;
        let rest = &mut words[1..];
        let is_option = |w: &Word| !w.quoted && is_option_like(&w.text);
        // Split off options: for exec only before `--`; for echo only trailing; else anywhere
        // (moved behind the arguments, each group in its order: a stable sort of a few words,
        // which allocates nothing).
        let (option_words, args, after_dashdash): (&[Word], &[Word], Option<&[Word]>) =
            if kind == KindId::EXEC {
                let dash = rest.iter().position(|w| w.text == "--" && !w.quoted);
                let (before, after) = rest.split_at(dash.unwrap_or(rest.len()));
                (before, &[], dash.map(|_| &after[1..]))
            } else if kind == KindId::ECHO {
                let trailing = rest.iter().rev().take_while(|w| is_option(w)).count();
                let (args, options) = rest.split_at(rest.len() - trailing);
                (options, args, None)
            } else {
                rest.sort_by_key(is_option);
                let (args, options) = rest.split_at(rest.partition_point(|w| !is_option(w)));
                (options, args, None)
            };
        let mut copies: Option<u32> = None;
        let mut timeout: Option<Duration> = None;
        for word in option_words {
            if let Some(digits) = parse_copies_word(&word.text) {
                if copies.is_some() {
                    return Err(SpecError::at(word.column, "copies given twice"));
                }
                let n = digits.parse::<u64>().unwrap_or(u64::MAX);
                if n == 0 || n > u64::from(limits::COPIES_MAX) {
                    return Err(SpecError::at(
                        word.column,
                        format!("copies must be x1 to x{}", limits::COPIES_MAX),
                    ));
                }
                copies = Some(n as u32);
            } else if let Some(value) = word.text.strip_prefix("timeout=") {
                if timeout.is_some() {
                    return Err(SpecError::at(word.column, "timeout given twice"));
                }
                let d = units::parse_duration(value).map_err(|e| {
                    SpecError::at(word.column + "timeout=".len(), format!("timeout: {e}"))
                })?;
                if d.is_zero() || d > limits::TIMEOUT_MAX {
                    return Err(SpecError::at(
                        word.column,
                        "timeout must be more than 0s and at most 7d",
                    ));
                }
                timeout = Some(d);
            } else if kind == KindId::EXEC && after_dashdash.is_none() {
                return Err(SpecError::at(
                    word.column,
                    "exec needs `--` before the command, e.g. exec -- ls -l",
                ));
            } else if kind == KindId::EXEC {
                return Err(SpecError::at(
                    word.column,
                    format!(
                        "unexpected '{}' before `--`; exec takes only xN and timeout= there, e.g. exec timeout=5s -- ls -l",
                        units::quoted_part(&word.text)
                    ),
                ));
            }
        }
        let mut spec = self.parse_args(kind, kind_column, args, after_dashdash, input)?;
        spec.timeout = timeout;
        Ok(Submission {
            spec,
            copies: copies.unwrap_or(1),
        })
    }

    fn parse_args(
        &self,
        kind: KindId,
        kind_column: usize,
        args: &[Word],
        after_dashdash: Option<&[Word]>,
        input: &str,
    ) -> Result<TaskSpec, SpecError> {
        // Counted only for an error: most inputs parse.
        let end_column = || input.chars().count() + 1;
        let name = self.name(kind);
        let usage = |kind: KindId| -> String {
            BUILTIN_USAGE
                .get(usize::from(kind.0))
                .map(|u| u.split("  ").next().unwrap_or(u).trim().to_string())
                .unwrap_or_default()
        };
        let one_arg = |what: &str| -> Result<&Word, SpecError> {
            match args {
                [] => Err(SpecError::at(
                    end_column(),
                    format!("{name} needs {what}: {}", usage(kind)),
                )),
                [one] => Ok(one),
                [_, extra, ..] => Err(SpecError::at(
                    extra.column,
                    format!(
                        "unexpected '{}': {name} takes one argument ({})",
                        units::quoted_part(&extra.text),
                        usage(kind)
                    ),
                )),
            }
        };
        match kind {
            KindId::SPIN | KindId::SLEEP => {
                let word = one_arg("a duration")?;
                let d = units::parse_duration(&word.text)
                    .map_err(|e| SpecError::at(word.column, e.to_string()))?;
                let max = if kind == KindId::SPIN {
                    limits::SPIN_MAX
                } else {
                    limits::SLEEP_MAX
                };
                if d > max {
                    return Err(SpecError::at(
                        word.column,
                        format!("{name} is limited to {}", HumanDuration(max)),
                    ));
                }
                Ok(if kind == KindId::SPIN {
                    TaskSpec::spin(d)
                } else {
                    TaskSpec::sleep(d)
                })
            }
            KindId::FIB | KindId::PRIMES => {
                let word = one_arg("a number")?;
                let n = units::parse_count(&word.text)
                    .map_err(|e| SpecError::at(word.column, e.to_string()))?;
                let max = if kind == KindId::FIB {
                    limits::FIB_MAX
                } else {
                    limits::PRIMES_MAX
                };
                if n > max {
                    let why = if kind == KindId::FIB {
                        " (naive recursion costs about 1.6^N steps: fib 60 already takes about two hours of CPU)"
                    } else {
                        ""
                    };
                    return Err(SpecError::at(
                        word.column,
                        format!("{name} is limited to {max}{why}"),
                    ));
                }
                Ok(if kind == KindId::FIB {
                    TaskSpec::fib(n)
                } else {
                    TaskSpec::primes(n)
                })
            }
            KindId::HASH => {
                let word = one_arg("a size")?;
                let bytes = units::parse_size(&word.text)
                    .map_err(|e| SpecError::at(word.column, e.to_string()))?;
                if bytes > limits::HASH_MAX {
                    return Err(SpecError::at(
                        word.column,
                        format!("hash is limited to {}", HumanSize::exact(limits::HASH_MAX)),
                    ));
                }
                Ok(TaskSpec::hash(bytes))
            }
            KindId::ECHO => {
                let text: Cow<'_, str> = match args {
                    [single] => Cow::Borrowed(&*single.text),
                    words => {
                        let mut joined = String::with_capacity(
                            words.iter().map(|w| w.text.len() + 1).sum::<usize>(),
                        );
                        for (index, word) in words.iter().enumerate() {
                            if index > 0 {
                                joined.push(' ');
                            }
                            joined.push_str(&word.text);
                        }
                        Cow::Owned(joined)
                    }
                };
                if text.len() > limits::ECHO_MAX {
                    return Err(SpecError::at(
                        args.first().map_or(kind_column, |word| word.column),
                        format!("echo text is limited to {} bytes", limits::ECHO_MAX),
                    ));
                }
                Ok(TaskSpec::echo(&text))
            }
            KindId::EXEC => {
                let Some(argv) = after_dashdash else {
                    return Err(SpecError::at(
                        end_column(),
                        "exec needs `--` before the command, e.g. exec -- ls -l",
                    ));
                };
                let Some(program) = argv.first() else {
                    return Err(SpecError::at(
                        end_column(),
                        "exec needs a program after `--`, e.g. exec -- ls -l",
                    ));
                };
                if program.text.is_empty() {
                    return Err(SpecError::at(
                        program.column,
                        "exec: the program name is empty",
                    ));
                }
                if let Some(bad) = argv.iter().find(|w| w.text.contains('\0')) {
                    return Err(SpecError::at(
                        bad.column,
                        "exec: arguments cannot contain NUL bytes",
                    ));
                }
                let total: usize = argv.iter().map(|w| w.text.len() + 1).sum();
                if total > limits::ARGV_MAX {
                    return Err(SpecError::at(
                        program.column,
                        format!("exec: the command is limited to {} bytes", limits::ARGV_MAX),
                    ));
                }
                let words: Vec<&str> = argv.iter().map(|w| &*w.text).collect();
                Ok(TaskSpec::exec(&words))
            }
            custom => {
                let Some(kind_impl) = self.custom(custom) else {
                    return Err(SpecError::at(
                        kind_column,
                        format!("unknown kind id {}", custom.0),
                    ));
                };
                let words: Vec<&str> = args.iter().map(|w| &*w.text).collect();
                let parsed = kind_impl.parse(&words).map_err(|message| {
                    SpecError::at(
                        args.first().map(|w| w.column).unwrap_or_else(end_column),
                        format!("{name}: {message} (usage: {})", kind_impl.usage()),
                    )
                })?;
                Ok(TaskSpec::custom(custom, parsed.numbers, parsed.text))
            }
        }
    }

    /// Writes a spec back in the text form, which [`Kinds::parse`] reads back to the same spec.
    pub fn format(&self, spec: &TaskSpec) -> String {
        let mut out = String::new();
        self.format_into(
            &mut out,
            spec.kind,
            spec.numbers,
            spec.text.as_deref(),
            spec.timeout,
        );
        out
    }

    /// Writes a task's canonical text form, from its parts, onto `out` (what
    /// [`Kinds::format`] returns, without a spec to own the text or a string per part).
    pub fn format_into(
        &self,
        out: &mut String,
        kind: KindId,
        numbers: [u64; 2],
        text: Option<&str>,
        timeout: Option<Duration>,
    ) {
        use fmt::Write;
        let name = self.name(kind);
        out.reserve(name.len() + 1 + text.map_or(24, |text| text.len() + 2));
        out.push_str(name);
        // `write!` into a String cannot fail.
        match kind {
            KindId::SPIN | KindId::SLEEP => {
                let _ = write!(out, " {}", HumanDuration(Duration::from_nanos(numbers[0])));
            }
            KindId::FIB | KindId::PRIMES => {
                let _ = write!(out, " {}", numbers[0]);
            }
            KindId::HASH => {
                let _ = write!(out, " {}", HumanSize::exact(numbers[0]));
            }
            KindId::ECHO => {
                let text = text.unwrap_or("");
                out.push(' ');
                if reads_back_unquoted(text) {
                    out.push_str(text);
                } else {
                    push_word(out, text);
                }
            }
            KindId::EXEC => {}
            custom => {
                if let Some(kind) = self.custom(custom) {
                    let args = kind.format_args(&KindArgs {
                        numbers,
                        text: text.map(Box::from),
                    });
                    if !args.is_empty() {
                        out.push(' ');
                        out.push_str(&args);
                    }
                }
            }
        }
        if let Some(timeout) = timeout {
            let _ = write!(out, " timeout={}", HumanDuration(timeout));
        }
        if kind == KindId::EXEC {
            out.push_str(" --");
            for arg in text.into_iter().flat_map(exec_argv) {
                out.push(' ');
                push_word(out, arg);
            }
        }
    }
}

/// Runs of consecutive ids, first and last of each, in id order (each id once): what
/// [`parse_task_ids`] reads back when written as `first-last`.
pub fn id_runs(ids: &[TaskId]) -> Vec<(TaskId, TaskId)> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(TaskId, TaskId)> = Vec::new();
    for id in sorted {
        match runs.last_mut() {
            Some((_, last)) if last.0.checked_add(1) == Some(id.0) => *last = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// The most ids one `goliath cancel` sends (ranges counted id by id): about 800 KB of
/// request, under the node's default frame limit.
pub const CLI_CANCEL_IDS_MAX: u64 = 100_000;

/// The bounds a word of a cancel's ids names: `28-127`, `28..127` or `28–127` (a range), or
/// `28` (first and last the same, not a range).
fn id_bounds(word: &str) -> (&str, &str) {
    match word
        .split_once("..")
        .or_else(|| word.split_once('-'))
        .or_else(|| word.split_once('–'))
    {
        Some((first, last)) => (first, last),
        None => (word, word),
    }
}

/// How many distinct ids the ids and ranges of `text` name (words that are neither are
/// left out), counted from the ranges merged, never by expanding them.
fn distinct_ids(text: &str) -> u128 {
    let mut ranges: Vec<(u64, u64)> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(|word| {
            let (first, last) = id_bounds(word);
            let first = first.parse::<TaskId>().ok()?.0;
            let last = last.parse::<TaskId>().ok()?.0;
            (first <= last).then_some((first, last))
        })
        .collect();
    ranges.sort_unstable();
    let mut total: u128 = 0;
    let mut covered_to: Option<u64> = None;
    for (first, last) in ranges {
        let start = match covered_to {
            Some(end) if end >= last => continue,
            Some(end) if end >= first => end + 1,
            _ => first,
        };
        total += u128::from(last - start) + 1;
        covered_to = Some(last);
    }
    total
}

/// Why the ids of a cancel were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskIdsError {
    /// A word that is neither an id nor a range of them, or a range that ends before it
    /// starts.
    #[error("{0}")]
    Malformed(String),
    /// More distinct ids than one cancel takes.
    #[error("{0}")]
    TooMany(String),
}

/// Task ids as people type them for a cancel: ids and ranges (`28-127`, `28..127`),
/// separated by spaces or commas; each id once, in the order first given. At most `max`
/// distinct ids in all, however they are written (ids given twice or ranges that overlap
/// count once), and a range is never expanded past it.
pub fn parse_task_ids(text: &str, max: u64) -> Result<Vec<TaskId>, TaskIdsError> {
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for word in text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
    {
        let (first, last) = id_bounds(word);
        let shown = crate::runtime::units::quoted_part(word);
        let bad = || {
            TaskIdsError::Malformed(format!(
                "'{shown}' is not a task id (a whole number from 1) or a range of ids like 28-127"
            ))
        };
        let first: TaskId = first.parse().map_err(|_| bad())?;
        let last: TaskId = last.parse().map_err(|_| bad())?;
        if last < first {
            return Err(TaskIdsError::Malformed(format!(
                "'{shown}': the range ends before it starts"
            )));
        }
        // Counted without overflow: `1-18446744073709551615` must be refused, not wrap to a
        // small count and then be expanded.
        let span = last.0 - first.0;
        if span >= max {
            return Err(TaskIdsError::TooMany(format!(
                "'{shown}' names {} tasks: at most {max} in one cancel; cancel them in parts",
                u128::from(span) + 1
            )));
        }
        for id in (first.0..=last.0).map(TaskId) {
            // Each task once, in the order first given: `cancel 11 11` is one request.
            if seen.insert(id) {
                ids.push(id);
                if ids.len() as u64 > max {
                    return Err(TaskIdsError::TooMany(format!(
                        "at most {max} tasks in one cancel, and these ids and ranges name {}; cancel them in parts",
                        distinct_ids(text)
                    )));
                }
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_id_or_state_shows_its_control_characters() {
        let error = "1\u{1b}[2J".parse::<TaskId>().expect_err("not an id");
        assert!(error.contains("'1␛[2J'"), "{error}");
        let error = "x\u{1b}[2J".parse::<TaskState>().expect_err("not a state");
        assert!(error.contains("'x␛[2J'"), "{error}");
    }

    #[test]
    fn a_cancel_takes_at_most_max_distinct_ids_however_written() {
        // Ranges that overlap, and ids given twice, count once.
        assert_eq!(
            parse_task_ids("1-6 4-10 3", 10).map(|ids| ids.len()),
            Ok(10)
        );
        // Single ids count as ranges do.
        let error = parse_task_ids("1-9 20 21", 10)
            .expect_err("11 ids")
            .to_string();
        assert!(error.contains("at most 10 tasks in one cancel"), "{error}");
        assert!(error.contains("name 11;"), "{error}");
        let error = parse_task_ids("1-5 1-5 6-12", 10)
            .expect_err("12 ids")
            .to_string();
        assert!(
            error.contains("name 12;"),
            "the total of distinct ids: {error}"
        );
        assert!(!error.contains("'21'"), "no one word is to blame: {error}");
        // A range alone past the limit says how many it names, without expanding it.
        let error = parse_task_ids("1-18446744073709551615", 10)
            .expect_err("huge")
            .to_string();
        assert!(
            error.contains("names 18446744073709551615 tasks"),
            "{error}"
        );
    }

    #[test]
    fn state_codes_are_positions_in_all_and_read_back() {
        for (position, state) in TaskState::ALL.iter().enumerate() {
            assert_eq!(usize::from(state.code()), position);
            assert_eq!(TaskState::from_code(state.code()), Some(*state));
        }
        assert_eq!(TaskState::from_code(6), None);
    }
    #[test]
    fn claimed_slots_split_by_line_and_a_cut_leaves_later_lines_empty() {
        let lines: Vec<Submission> = ["fib 1 x2", "fib 2", "fib 3 x3", "fib 4"]
            .iter()
            .map(|text| parse(text).expect("spec"))
            .collect();
        let by_line = |claimed: &[u32]| -> Vec<Vec<u32>> {
            claimed_by_line(&lines, claimed)
                .map(|(_, line)| line.to_vec())
                .collect()
        };
        assert_eq!(
            by_line(&[1, 2, 3, 4, 5, 6, 7]),
            [vec![1, 2], vec![3], vec![4, 5, 6], vec![7]]
        );
        // Cut inside the third line: it got one of its three, the last line none.
        assert_eq!(
            by_line(&[1, 2, 3, 4]),
            [vec![1, 2], vec![3], vec![4], vec![]]
        );
        assert_eq!(lines[2].tasks(), 3);
    }

    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Submission, SpecError> {
        Kinds::new().parse(text)
    }

    proptest! {
        #[test]
        fn sliced_words_split_like_words_taken_one_character_at_a_time(
            input in proptest::string::string_regex("[a-z \t\"'\\\\é\u{3000}=×0-9]{0,40}").expect("regex")
        ) {
            splits_like_the_reference(split_words, &input)?;
        }

        #[test]
        fn any_echo_text_formats_to_a_spec_that_reads_back_the_same(
            text in proptest::string::string_regex("[a-c x0-9=\t\n\u{b}\"'\\\\é\u{3000}×]{0,24}").expect("regex")
        ) {
            let kinds = Kinds::new();
            let spec = TaskSpec::echo(&text);
            let formatted = kinds.format(&spec);
            let again = kinds.parse(&formatted).map(|s| s.spec);
            prop_assert_eq!(again, Ok(spec), "{:?} formatted as {:?}", text, formatted);
        }

        #[test]
        fn long_ascii_specs_split_like_words_taken_one_character_at_a_time(
            // Past 255 spaces: they are counted a chunk of bytes at a time.
            input in proptest::string::string_regex("[a-c ]{200,1200}").expect("regex")
        ) {
            splits_like_the_reference(split_ascii_words, &input)?;
        }

        #[test]
        fn the_one_look_at_an_echo_text_agrees_with_checking_each_word(
            text in proptest::string::string_regex("(x|x-|[a-c ]|[0-9]|timeout=|\\t|\"|é|×){0,12}").expect("regex")
        ) {
            let each_word =
                !text.is_empty() && text.split(' ').all(|w| !w.is_empty() && !needs_quotes(w));
            prop_assert_eq!(reads_back_unquoted(&text), each_word, "{:?}", text);
        }

        #[test]
        fn ascii_words_split_like_words_taken_one_character_at_a_time(
            input in proptest::string::string_regex("[a-c \t\n\r\u{b}\u{c}\u{1c}-\u{1f}\"'\\\\=x0-9]{0,40}").expect("regex")
        ) {
            splits_like_the_reference(split_ascii_words, &input)?;
        }
    }

    /// `split` gives the words (columns, quoting, errors) of the character-at-a-time split.
    fn splits_like_the_reference(
        split: fn(&str) -> Result<Vec<Word<'_>>, SpecError>,
        input: &str,
    ) -> Result<(), TestCaseError> {
        let ours = split(input).map_err(|e| (e.column, e.to_string()));
        let reference = split_words_with(input, false).map_err(|e| (e.column, e.to_string()));
        prop_assert_eq!(ours, reference);
        Ok(())
    }

    #[test]
    fn every_builtin_kind_parses() {
        let table: Vec<(&str, TaskSpec, u32)> = vec![
            ("spin 200ms", TaskSpec::spin(Duration::from_millis(200)), 1),
            ("sleep 2s", TaskSpec::sleep(Duration::from_secs(2)), 1),
            ("fib 35", TaskSpec::fib(35), 1),
            ("primes 10000000", TaskSpec::primes(10_000_000), 1),
            ("primes 10_000_000", TaskSpec::primes(10_000_000), 1),
            ("hash 64MiB", TaskSpec::hash(64 << 20), 1),
            ("echo some text", TaskSpec::echo("some text"), 1),
            ("echo", TaskSpec::echo(""), 1),
            ("echo \"x3\"", TaskSpec::echo("x3"), 1),
            ("echo 'two  spaces'", TaskSpec::echo("two  spaces"), 1),
            (
                "exec -- ls -l /tmp",
                TaskSpec::exec(&["ls", "-l", "/tmp"]),
                1,
            ),
            (
                "exec -- sh -c 'echo hi'",
                TaskSpec::exec(&["sh", "-c", "echo hi"]),
                1,
            ),
            (
                "spin 300ms x20",
                TaskSpec::spin(Duration::from_millis(300)),
                20,
            ),
            ("x3 fib 10", TaskSpec::fib(10), 1),
            ("echo hi x3", TaskSpec::echo("hi"), 3),
            (
                "fib 30 timeout=5s x2",
                TaskSpec::fib(30).with_timeout(Duration::from_secs(5)),
                2,
            ),
            (
                "exec timeout=1s x2 -- true",
                TaskSpec::exec(&["true"]).with_timeout(Duration::from_secs(1)),
                2,
            ),
            // As in sh: inside "…" a backslash escapes only `"` and itself.
            (
                r#"exec -- printf "a\377\n""#,
                TaskSpec::exec(&["printf", r"a\377\n"]),
                1,
            ),
            (
                r#"echo "say \"hi\" \\ then \x""#,
                TaskSpec::echo(r#"say "hi" \ then \x"#),
                1,
            ),
            (r"echo a\ b", TaskSpec::echo("a b"), 1),
        ];
        for (text, spec, copies) in table {
            if text == "x3 fib 10" {
                assert!(parse(text).is_err(), "a leading option is not a kind");
                continue;
            }
            let parsed = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.spec, spec, "{text}");
            assert_eq!(parsed.copies, copies, "{text}");
        }
    }

    #[test]
    fn unknown_kind_suggests_the_closest() {
        let error = parse("spni 200ms").unwrap_err();
        assert_eq!(error.column, 1);
        assert_eq!(error.message, "unknown kind 'spni'; did you mean 'spin'?");
        let error = parse("  frobnicate").unwrap_err();
        assert_eq!(error.column, 3);
        assert!(
            error.message.contains("known kinds: spin, sleep"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_lone_option_is_told_to_go_with_its_task() {
        for (input, word) in [("x3", "x3"), (" timeout=5s", "timeout=5s")] {
            let error = parse(input).unwrap_err();
            assert!(
                error
                    .message
                    .contains(&format!("'{word}' is an option of a task"))
                    && error.message.contains(&format!("\"fib 25 {word}\""))
                    && error.message.contains(&format!("\"exec {word} -- cmd\"")),
                "{input:?}: {}",
                error.message
            );
        }
        assert_eq!(parse(" x3").unwrap_err().column, 2);
    }

    #[test]
    fn errors_point_at_the_offending_word() {
        let cases: Vec<(&str, usize, &str)> = vec![
            ("spin", 5, "spin needs a duration"),
            ("spin 200", 6, "with a unit"),
            ("spin 2 fortnights", 8, "unexpected 'fortnights'"),
            ("spin 2h", 6, "limited to 1h"),
            ("fib 61", 5, "limited to 60 (naive recursion"),
            ("fib -1", 5, "not a whole number"),
            ("primes 1e7", 8, "not a whole number"),
            ("hash 1PiB", 6, "unknown unit"),
            ("spin 1s x0", 9, "copies must be"),
            ("spin 1ms x-1", 10, "copies must be"),
            ("''", 1, "empty task"),
            ("spin 1s x2 x3", 12, "copies given twice"),
            ("spin 1s timeout=soon", 17, "timeout"),
            ("exec ls", 6, "needs `--`"),
            ("exec", 5, "needs `--`"),
            ("exec --", 8, "needs a program"),
            ("exec -l -- ls", 6, "unexpected '-l'"),
            ("echo \"open", 6, "unterminated"),
            ("", 1, "empty task"),
        ];
        for (text, column, fragment) in cases {
            let error = parse(text).expect_err(text);
            assert_eq!(error.column, column, "{text}: {error}");
            assert!(error.message.contains(fragment), "{text}: {error}");
        }
    }

    #[test]
    fn format_reads_back_to_the_same_spec() {
        let kinds = Kinds::new();
        for text in [
            "spin 200ms",
            "sleep 1.5s",
            "fib 35 timeout=5s",
            "primes 10000000",
            "hash 64MiB",
            "hash 1000",
            "echo hello world",
            "echo 'x3'",
            "echo \"a  b\"",
            "echo ''",
            "exec -- sh -c 'echo hi; exit 3'",
            "exec timeout=2s -- \"/bin/with space\" arg",
            r#"exec -- printf "a\377\n" '\q'"#,
        ] {
            let spec = kinds.parse(text).expect(text).spec;
            let formatted = kinds.format(&spec);
            let again = kinds
                .parse(&formatted)
                .unwrap_or_else(|e| panic!("{formatted}: {e}"))
                .spec;
            assert_eq!(again, spec, "{text} -> {formatted}");
        }
        assert_eq!(
            kinds.format(&TaskSpec::spin(Duration::from_millis(1500))),
            "spin 1500ms"
        );
    }

    #[test]
    fn task_ids_and_states_parse_from_text() {
        assert_eq!("42".parse::<TaskId>(), Ok(TaskId(42)));
        assert_eq!("#7".parse::<TaskId>(), Ok(TaskId(7)));
        assert!("0".parse::<TaskId>().is_err());
        assert!("abc".parse::<TaskId>().is_err());
        assert_eq!("timed-out".parse::<TaskState>(), Ok(TaskState::TimedOut));
        assert_eq!("Running".parse::<TaskState>(), Ok(TaskState::Running));
        assert!("sleeping".parse::<TaskState>().is_err());
        assert_eq!("canceled".parse::<TaskState>(), Ok(TaskState::Cancelled));
        assert_eq!("timedout".parse::<TaskState>(), Ok(TaskState::TimedOut));
        let error = "suceeded".parse::<TaskState>().unwrap_err();
        assert!(error.contains("did you mean 'succeeded'?"), "{error}");
    }

    struct Resize;
    impl TaskKind for Resize {
        fn name(&self) -> &str {
            "resize"
        }
        fn usage(&self) -> &str {
            "resize WIDTH"
        }
        fn parse(&self, args: &[&str]) -> Result<KindArgs, String> {
            let [width] = args else {
                return Err("needs one width".into());
            };
            let width = width
                .parse()
                .map_err(|_| format!("'{width}' is not a width"))?;
            Ok(KindArgs {
                numbers: [width, 0],
                text: None,
            })
        }
        fn step(&self, _ctx: &mut StepContext<'_>) -> Step {
            Step::Done(TaskOutput::None)
        }
    }

    #[test]
    fn registered_kinds_parse_format_and_suggest() {
        let mut kinds = Kinds::new();
        let id = kinds.register(Arc::new(Resize)).expect("registers");
        assert_eq!(kinds.lookup("resize"), Some(id));
        let parsed = kinds.parse("resize 640 x2").expect("parses");
        assert_eq!(parsed.spec.numbers, [640, 0]);
        assert_eq!(parsed.copies, 2);
        assert_eq!(kinds.format(&parsed.spec), "resize 640");
        let error = kinds.parse("resize wide").unwrap_err();
        assert!(
            error.message.contains("'wide' is not a width")
                && error.message.contains("usage: resize WIDTH")
        );
        assert_eq!(
            kinds.parse("resise 1").unwrap_err().message,
            "unknown kind 'resise'; did you mean 'resize'?"
        );
        assert!(matches!(
            kinds.register(Arc::new(Resize)),
            Err(RegisterError::Duplicate(_))
        ));
    }
}
