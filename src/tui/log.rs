//! The node's log in the console's log panes: a `tracing` layer that writes each event as
//! one line — its message first, then its fields as `key=value` in the order the code
//! names them — and hands it straight to tui-logger (its `Drain`, not the `log` facade, which
//! belongs to tracing's LogTracer), which keeps and draws the lines.
//!
//! tui-logger's own layer sorts the message in among the fields by name, so "node started"
//! came out as `arena_bytes: 8388608 arena_slots: 65536 node started node: vm workers: 2`.
//! This layer only formats; it must not keep lines itself (tui-logger's buffer is bounded).

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
                .module_path(metadata.module_path())
                .build(),
        );
    }
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
