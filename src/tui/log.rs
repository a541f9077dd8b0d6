//! The node's log in the console's log panes: a `tracing` layer that writes each event as
//! one line — its message first, then its fields as `key=value` in the order the code
//! names them — and hands it straight to tui-logger (its `Drain`, not the `log` facade, which
//! belongs to tracing's LogTracer), which keeps and draws the lines.
//!
//! tui-logger's own layer sorts the message in among the fields by name, so "node started"
//! came out as `arena_bytes: 8388608 arena_slots: 65536 node started node: vm workers: 2`.
//! This layer only formats; it must not keep lines itself (tui-logger's buffer is bounded).
//!
//! [`PaneFormatter`] lays the kept lines out in a pane: wrapped between words, continuation
//! rows indented (tui-logger's own formatter cut rows mid-word).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// Formats every event for the console's log panes (see the module docs). Install it after
/// `tui_logger::init_logger`, which starts tui-logger.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConsoleLogLayer;

impl<S: tracing::Subscriber> Layer<S> for ConsoleLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut line = EventLine::of(event);
        let metadata = event.metadata();
        // A `log` record relayed by tracing's LogTracer has the target `log` and its own
        // target in a field.
        let target = line.log_target.take();
        let target = target.as_deref().unwrap_or(metadata.target());
        let text = line.finish();
        // A child's line keeps where it came from for the panes that show no targets.
        let module_path = if target == DEMO_CHILD_TARGET {
            Some(DEMO_CHILD_TARGET)
        } else {
            metadata.module_path()
        };
        let (target, text) = pane_line(target, &text);
        let level = match *metadata.level() {
            tracing::Level::ERROR => log::Level::Error,
            tracing::Level::WARN => log::Level::Warn,
            tracing::Level::INFO => log::Level::Info,
            tracing::Level::DEBUG => log::Level::Debug,
            tracing::Level::TRACE => log::Level::Trace,
        };
        tui_logger::Drain::new().log(
            &log::Record::builder()
                .args(format_args!("{text}"))
                .level(level)
                .target(target)
                .file(metadata.file())
                .line(metadata.line())
                .module_path(module_path)
                .build(),
        );
    }
}

/// The target of a `goliath demo` child's lines (each begins with the child's name and a
/// colon): the console's panes file them under the child's name.
pub const DEMO_CHILD_TARGET: &str = "goliath::demo_child";

/// A line's target and text as the console's panes file them. This crate's own modules lose
/// the `goliath::runtime::` (or `goliath::`) every one of them shares, so a targets list as
/// narrow as 80 columns leaves tells `gossip::service`, `node` and `wal` apart; a demo
/// child's line goes under the child's name, which begins it.
fn pane_line<'a>(target: &'a str, text: &'a str) -> (&'a str, &'a str) {
    if target == DEMO_CHILD_TARGET
        && let Some((name, rest)) = text.split_once(": ")
    {
        return (name, rest);
    }
    let short = target
        .strip_prefix("goliath::runtime::")
        .or_else(|| target.strip_prefix("goliath::"))
        .unwrap_or(target);
    (short, text)
}

/// One event as a line: its message, then two spaces and its other fields as `key=value`,
/// separated by single spaces, in the order they were recorded. Text values that are empty or
/// hold whitespace, `=` or quotes are quoted, so every field reads back unambiguously.
#[derive(Debug, Default)]
struct EventLine {
    message: String,
    fields: String,
    /// The original target of a `log` record relayed by tracing's LogTracer.
    log_target: Option<String>,
}

impl EventLine {
    fn of(event: &tracing::Event<'_>) -> EventLine {
        let mut line = EventLine::default();
        event.record(&mut line);
        line
    }

    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value}", field.name());
    }

    fn finish(self) -> String {
        match (self.message.is_empty(), self.fields.is_empty()) {
            (_, true) => self.message,
            (true, false) => self.fields,
            (false, false) => format!("{}  {}", self.message, self.fields),
        }
    }
}

fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text
            .chars()
            .any(|c| c.is_whitespace() || c == '=' || c == '"' || c.is_control())
}

impl Visit for EventLine {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else if field.name() == "log.target" {
            self.log_target = Some(value.to_string());
        } else if field.name().starts_with("log.") {
            // LogTracer's module path, file and line: where, not what.
        } else if needs_quotes(value) {
            self.field(field, format_args!("{value:?}"));
        } else {
            self.field(field, format_args!("{value}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_str(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let text = format!("{value:?}");
            if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
                // A string's Debug form (`?path`): already quoted and escaped.
                self.field(field, format_args!("{text}"));
            } else {
                // Other Debug forms, and `%value` fields (Display wrapped in Debug): the same
                // rules as text.
                self.record_str(field, &text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Records each event's line, as the console's layer would hand it to tui-logger.
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
            self.0.lock().unwrap().push(EventLine::of(event).finish());
        }
    }

    fn lines_of(emit: impl FnOnce()) -> Vec<String> {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(subscriber, emit);
        lines.lock().unwrap().clone()
    }

    #[test]
    fn panes_name_targets_without_the_crate_path_and_demo_children_by_name() {
        let line = pane_line;
        assert_eq!(
            line("goliath::runtime::gossip::service", "joined"),
            ("gossip::service", "joined")
        );
        assert_eq!(line("goliath::runtime::wal", "x").0, "wal");
        assert_eq!(line("goliath", "x").0, "goliath");
        assert_eq!(line("goliath::demo_children", "x").0, "demo_children");
        assert_eq!(line("mio::poll", "x").0, "mio::poll");
        assert_eq!(
            line(
                DEMO_CHILD_TARGET,
                "lab-2: lab-1 failed (declared dead)  member=lab-1"
            ),
            ("lab-2", "lab-1 failed (declared dead)  member=lab-1")
        );
    }

    #[test]
    fn a_pane_without_targets_still_names_the_demo_child_a_line_came_from() {
        let pane = |target| PaneFormatter {
            timestamp: "%H:%M:%S",
            long_level: false,
            target,
            styles: [ratatui::style::Style::default(); 5],
        };
        let overview = pane(false);
        assert_eq!(
            overview.shown_target("demo-2", Some(DEMO_CHILD_TARGET)),
            Some("demo-2")
        );
        assert_eq!(
            overview.shown_target("gossip::view", Some("goliath::runtime::gossip::view")),
            None
        );
        assert_eq!(overview.shown_target("mio::poll", None), None);
        let logs_tab = pane(true);
        assert_eq!(
            logs_tab.shown_target("gossip::view", None),
            Some("gossip::view")
        );
    }

    #[test]
    fn the_message_comes_first_and_fields_keep_their_order() {
        let lines = lines_of(|| {
            tracing::info!(
                node = "vm",
                workers = 2,
                arena_slots = 65536_u64,
                "node started"
            );
        });
        assert_eq!(lines, ["node started  node=vm workers=2 arena_slots=65536"]);
    }

    #[test]
    fn text_that_would_read_ambiguously_is_quoted() {
        let path = std::path::PathBuf::from("/data/goliath");
        let lines = lines_of(|| {
            tracing::warn!(
                config = "embedded default config",
                listen = %"127.0.0.1:7420",
                empty = "",
                equals = "a=b",
                dir = ?path,
                skipped = ?Option::<u32>::None,
                "starting"
            );
        });
        assert_eq!(
            lines,
            [concat!(
                "starting  config=\"embedded default config\" listen=127.0.0.1:7420 ",
                "empty=\"\" equals=\"a=b\" dir=\"/data/goliath\" skipped=None"
            )]
        );
    }

    #[test]
    fn a_log_record_relayed_by_log_tracer_keeps_only_its_message_and_own_fields() {
        let lines = lines_of(|| {
            tracing::event!(
                target: "log",
                tracing::Level::TRACE,
                log.target = "mio::poll",
                log.module_path = "mio::poll",
                log.file = "src/poll.rs",
                log.line = 576_u64,
                "registering event source with poller"
            );
        });
        assert_eq!(lines, ["registering event source with poller"]);
    }

    #[test]
    fn errors_read_as_their_message_and_lines_without_a_message_keep_their_fields() {
        let error = std::io::Error::other("disk full");
        let lines = lines_of(|| {
            tracing::error!(
                error = &error as &(dyn std::error::Error + 'static),
                "write failed"
            );
            tracing::info!(records = 3);
        });
        assert_eq!(lines, ["write failed  error=\"disk full\"", "records=3"]);
    }
}

/// How a console log pane lays out one record: time, level, optionally the target, then
/// the message, wrapped between words (a `key=value` field is one word) to the pane's
/// width, continuation rows indented. tui-logger's own formatter cut rows at the width,
/// mid-word (`listen=127.0.0.1:2110` / `1`).
pub struct PaneFormatter {
    /// The time's format (jiff's strftime).
    pub timestamp: &'static str,
    /// `ERROR`/`WARN `/… rather than `E`/`W`/….
    pub long_level: bool,
    /// Whether the record's target follows the level.
    pub target: bool,
    /// Styles by level: error, warn, info, debug, trace.
    pub styles: [ratatui::style::Style; 5],
}

impl PaneFormatter {
    /// The target a line shows after its level: every line's when the pane shows targets;
    /// else a `goliath demo` child's name alone, so that its lines (`this node did not run
    /// for 9.6s`) never read as the console's own node's.
    fn shown_target<'a>(&self, target: &'a str, module_path: Option<&str>) -> Option<&'a str> {
        (self.target || module_path == Some(DEMO_CHILD_TARGET)).then_some(target)
    }
}

/// Columns continuation rows are indented by.
const CONTINUATION_INDENT: usize = 9;

impl tui_logger::LogFormatter for PaneFormatter {
    fn min_width(&self) -> u16 {
        (CONTINUATION_INDENT + 4) as u16
    }

    fn format(
        &self,
        width: usize,
        record: &tui_logger::ExtLogRecord,
    ) -> Vec<ratatui::text::Line<'_>> {
        let (style, long, short) = match record.level {
            log::Level::Error => (self.styles[0], "ERROR", "E"),
            log::Level::Warn => (self.styles[1], "WARN ", "W"),
            log::Level::Info => (self.styles[2], "INFO ", "I"),
            log::Level::Debug => (self.styles[3], "DEBUG", "D"),
            log::Level::Trace => (self.styles[4], "TRACE", "T"),
        };
        let mut head = format!("{} ", record.timestamp.strftime(self.timestamp));
        head.push_str(if self.long_level { long } else { short });
        head.push(' ');
        if let Some(target) = self.shown_target(record.target(), record.module_path()) {
            head.push_str(target);
            head.push_str(": ");
        }
        let mut rows = Vec::new();
        for (index, text) in record.msg().lines().enumerate() {
            let text = if index == 0 {
                format!("{head}{text}")
            } else {
                text.to_string()
            };
            wrap_words(&text, width, index > 0, &mut rows);
        }
        rows.into_iter()
            .map(|row| ratatui::text::Line::styled(row, style))
            .collect()
    }
}

/// `text` in rows of at most `width` columns, broken between words (a word wider than a
/// row is broken where it must); rows after the first, and the first too when `indented`,
/// start with [`CONTINUATION_INDENT`] spaces.
fn wrap_words(text: &str, width: usize, indented: bool, rows: &mut Vec<String>) {
    use unicode_width::UnicodeWidthChar;
    let indent = if width > CONTINUATION_INDENT * 2 {
        CONTINUATION_INDENT
    } else {
        0
    };
    let width = width.max(1);
    let new_row = |continued: bool| -> (String, usize) {
        if continued {
            (" ".repeat(indent), indent)
        } else {
            (String::new(), 0)
        }
    };
    let (mut row, mut used) = new_row(indented);
    let mut row_has_text = false;
    for word in text.split_inclusive(' ') {
        let word_width: usize = word.chars().map(|c| c.width().unwrap_or(0)).sum();
        let visible_width = word_width - (word.len() - word.trim_end_matches(' ').len());
        if row_has_text && used + visible_width > width {
            rows.push(row.trim_end().to_string());
            (row, used) = new_row(true);
            row_has_text = false;
        }
        for c in word.chars() {
            let c_width = c.width().unwrap_or(0);
            if used + c_width > width {
                if c == ' ' {
                    continue;
                }
                rows.push(row.trim_end().to_string());
                (row, used) = new_row(true);
            }
            row.push(c);
            used += c_width;
            row_has_text = true;
        }
    }
    if row_has_text || rows.is_empty() {
        rows.push(row.trim_end().to_string());
    }
}

#[cfg(test)]
mod wrap_tests {
    use super::*;

    #[test]
    fn rows_break_between_words_and_continue_indented() {
        let mut rows = Vec::new();
        let text =
            "14:43:16.164 INFO  goliath serving the goliath protocol  listen=127.0.0.1:21101";
        wrap_words(text, 76, false, &mut rows);
        assert_eq!(
            rows,
            [
                "14:43:16.164 INFO  goliath serving the goliath protocol",
                "         listen=127.0.0.1:21101",
            ]
        );
        // A word wider than a row is broken where it must be.
        let mut rows = Vec::new();
        wrap_words(&format!("a {}", "x".repeat(30)), 20, false, &mut rows);
        assert_eq!(rows[0], "a");
        assert!(rows.iter().all(|row| row.chars().count() <= 20), "{rows:?}");
        assert_eq!(rows.concat().matches('x').count(), 30);
    }
}
