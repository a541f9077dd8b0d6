//! Drawing: one frame from the [`App`] state. Pure with respect to the state (it only reads
//! it) and returns where things landed ([`HitMap`]) for the mouse and for paging.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Axis, Block, Borders, Cell, Chart, Clear, Dataset, GraphType, Paragraph, RenderDirection, Row,
    Sparkline, Table, Wrap,
};
use tui_logger::{TuiLoggerTargetWidget, TuiLoggerWidget};

use super::keys::{Action, Group};
use super::log::PaneFormatter;
use super::state::{
    App, HitMap, Link, Listed, NARROW_HIDDEN, Overlay, Pane, Severity, SortColumn, Tab,
};
use crate::runtime::gossip::LocalStatus;
use crate::runtime::snapshot::{ClusterSnapshot, MemberInfo, MemberState};
use crate::runtime::units::{HumanSize, ShortDuration, printable};
use crate::runtime::{TaskInfo, TaskOutput, TaskState, WorkerActivity};

/// The smallest terminal the console draws in.
pub const MIN_WIDTH: u16 = 80;
/// The smallest terminal the console draws in.
pub const MIN_HEIGHT: u16 = 24;
/// Columns of the Logs tab's target list (at most a third of the screen): the longest
/// target, `goliath::runtime::gossip::service`, with its level letters and borders.
const LOG_TARGETS_WIDTH: u16 = 42;

/// Draws the whole screen and returns where things landed.
pub fn render(frame: &mut Frame, app: &App) -> HitMap {
    let area = frame.area();
    let mut hits = HitMap::default();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, app, area);
        hits.too_small = true;
    } else {
        let message = status_message(app);
        let [header, tabs, body, status] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(status_rows(message.as_ref(), area.width)),
        ])
        .areas(area);
        let badge = draw_header(frame, app, header);
        draw_tabs(frame, app, tabs, &mut hits);
        match app.tab {
            Tab::Overview => draw_overview(frame, app, body, &mut hits),
            Tab::Tasks => draw_tasks_tab(frame, app, body, &mut hits),
            Tab::Logs => draw_logs_tab(frame, app, body, &mut hits),
            Tab::Cluster => draw_cluster_tab(frame, app, body, &mut hits),
        }
        if matches!(app.link, Link::Down { .. } | Link::Unanswered { .. }) {
            // Figures from before the link went quiet: shown, but dimmed (the header's
            // figures too, all but the badge that says how old they are), so nobody takes
            // them for current ones.
            let buffer = frame.buffer_mut();
            buffer.set_style(header, Style::default().add_modifier(Modifier::DIM));
            buffer.set_style(badge, Style::default().remove_modifier(Modifier::DIM));
            buffer.set_style(body, Style::default().add_modifier(Modifier::DIM));
        }
        draw_status(frame, app, status, message);
        if let Some(overlay) = &app.overlay {
            // Over everything but the status line, however many rows it takes (a prompt
            // drawn over its first row left a two-row message half said).
            let above_status = Rect::new(
                area.x,
                area.y,
                area.width,
                area.height.saturating_sub(status.height.saturating_sub(1)),
            );
            draw_overlay(frame, app, overlay, above_status, &mut hits);
        }
    }
    if app.options.glyphs.ascii {
        asciify(frame.buffer_mut());
    }
    hits
}

/// Replaces every non-ASCII symbol left by widgets we do not draw ourselves (the log widget's
/// borders, for one) with an ASCII stand-in, so `--ascii` holds for the whole screen.
fn asciify(buffer: &mut Buffer) {
    for cell in buffer.content.iter_mut() {
        let symbol = cell.symbol();
        if symbol.is_ascii() {
            continue;
        }
        let replacement = match symbol {
            "─" | "━" | "═" | "╌" | "┄" => "-",
            "│" | "┃" | "║" | "╎" | "┆" => "|",
            "┌" | "┐" | "└" | "┘" | "╭" | "╮" | "╰" | "╯" | "├" | "┤" | "┬" | "┴" | "┼" | "╔"
            | "╗" | "╚" | "╝" => "+",
            "…" => "~",
            "–" | "—" => "-",
            "▲" | "↑" => "^",
            "▼" | "↓" => "v",
            "←" => "<",
            "→" => ">",
            "·" => "|",
            "•" => "*",
            "≥" => ">",
            "≤" => "<",
            "×" => "x",
            "φ" => "p",
            // Braille dots of the charts: blank stays blank, any dot becomes a star.
            "\u{2800}" => " ",
            braille
                if braille
                    .chars()
                    .all(|c| ('\u{2801}'..='\u{28ff}').contains(&c)) =>
            {
                "*"
            }
            _ => "?",
        };
        cell.set_symbol(replacement);
    }
}

/// Which of `columns` (each a width and a priority, 0 the most needed) to show in `room`
/// columns with `gap` between shown ones: taken by priority while they fit whole, so a
/// narrow window drops the least needed whole instead of cutting each one short.
fn keep_by_priority(columns: &[(usize, usize)], room: usize, gap: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_by_key(|&index| columns[index].1);
    let mut shown = vec![false; columns.len()];
    let mut used = 0;
    for index in order {
        let width = columns[index].0 + if used > 0 { gap } else { 0 };
        if used + width <= room {
            shown[index] = true;
            used += width;
        }
    }
    shown
}

/// `text` in lines of at most `columns` terminal columns, broken between words (a word
/// longer than a line is broken inside); an empty text is one empty line.
fn words_to_width(text: &str, columns: usize) -> Vec<String> {
    use unicode_width::UnicodeWidthStr as _;
    let columns = columns.max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let needed = if line.is_empty() { 0 } else { 1 } + word.width();
        if !line.is_empty() && line.width() + needed > columns {
            lines.push(std::mem::take(&mut line));
        }
        for piece in pieces_of_width(word, columns) {
            if !line.is_empty() && line.width() + 1 + piece.width() <= columns {
                line.push(' ');
            } else if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            line.push_str(piece);
        }
    }
    lines.push(line);
    lines
}

/// `text` in pieces of at most `columns` terminal columns each (a wide character is not
/// split); an empty text is one empty piece.
fn pieces_of_width(text: &str, columns: usize) -> Vec<&str> {
    use unicode_width::UnicodeWidthChar as _;
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut width = 0;
    for (at, c) in text.char_indices() {
        let w = c.width().unwrap_or(0);
        if width + w > columns && at > start {
            pieces.push(&text[start..at]);
            start = at;
            width = 0;
        }
        width += w;
    }
    pieces.push(&text[start..]);
    pieces
}

/// `line` with each tab replaced by the spaces to the next multiple of 8 columns, as a
/// terminal shows it (drawn as is, a tab would be dropped and the columns run together).
fn expand_tabs(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('\t') {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    let mut column = 0;
    for c in line.chars() {
        if c == '\t' {
            let spaces = 8 - column % 8;
            out.extend(std::iter::repeat_n(' ', spaces));
            column += spaces;
        } else {
            out.push(c);
            column += unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Rows `paragraph` (wrapped, no block) takes at `width` columns: ratatui's own count for the
/// wrapping it draws with, so scrolling stops at the last row and no blank rows are left.
fn wrapped_rows(paragraph: &Paragraph<'_>, width: u16) -> usize {
    paragraph.line_count(width.max(1))
}

fn too_small(frame: &mut Frame, app: &App, area: Rect) {
    let theme = &app.options.theme;
    // The way out as the keys are bound; with a prompt, the question or the help open only
    // Ctrl-C (see `App::on_key`).
    let open = match app.overlay {
        Some(Overlay::Submit(_) | Overlay::Palette(_) | Overlay::Filter(_)) => Some("A prompt"),
        Some(Overlay::Confirm { .. }) => Some("The cancel question"),
        Some(Overlay::Help { .. }) => Some("The help"),
        None => None,
    };
    let quit_key = if open.is_some() {
        "ctrl-c".to_string()
    } else {
        app.keymap
            .first_key(Action::Quit)
            .unwrap_or_else(|| "ctrl-c".to_string())
    };
    let lines = vec![
        Line::styled("Terminal too small", theme.warning),
        Line::raw(""),
        Line::raw(format!(
            "This window is {}×{}; the console needs at least {MIN_WIDTH}×{MIN_HEIGHT}.",
            area.width, area.height
        )),
        Line::raw(if let Some(open) = open {
            format!(
                "{open} is open: enlarge the window (or make the font smaller) to go on with it, or press {quit_key} to quit."
            )
        } else {
            format!("Enlarge the window (or make the font smaller), or press {quit_key} to quit.")
        }),
    ];
    // The rows it wraps to, so a narrow window still shows the whole text; a tiny one gets
    // the short form, the way out included.
    let centred = |lines: Vec<Line<'static>>| {
        Paragraph::new(Text::from(lines))
            .style(theme.text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true })
    };
    let mut paragraph = centred(lines);
    let mut rows = wrapped_rows(&paragraph, area.width);
    if rows > usize::from(area.height) {
        paragraph = centred(vec![
            Line::styled("Too small", theme.warning),
            Line::raw(format!("{}×{}", area.width, area.height)),
            Line::raw(format!("need {MIN_WIDTH}×{MIN_HEIGHT}")),
            Line::raw(format!("{quit_key} quits")),
        ]);
        rows = wrapped_rows(&paragraph, area.width);
    }
    let height = u16::try_from(rows).unwrap_or(u16::MAX).min(area.height);
    let top = area.y + area.height.saturating_sub(height) / 2;
    frame.render_widget(paragraph, Rect::new(area.x, top, area.width, height));
}

/// A bordered pane; the focused one stands out.
fn pane<'a>(app: &App, title: impl Into<Line<'a>>, focused: bool) -> Block<'a> {
    let theme = &app.options.theme;
    Block::default()
        .borders(Borders::ALL)
        .border_set(app.options.glyphs.border)
        .border_style(if focused {
            theme.focus_border
        } else {
            theme.border
        })
        .title(title.into().style(theme.title))
}

/// Draws the two header rows; returns where the link badge is.
fn draw_header(frame: &mut Frame, app: &App, area: Rect) -> Rect {
    let [line1, line2] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let badge = link_badge(app);
    let badge_width = badge.width() as u16;
    let [left, right] =
        Layout::horizontal([Constraint::Min(1), Constraint::Length(badge_width + 1)]).areas(line1);
    let room = usize::from(left.width);
    let first = header_line(app, None);
    // Judged at the figures' widest, so the form does not flip as cpu 9% becomes 13%.
    let first = if first.width() + header_figures_slack(app) > room {
        whole_items(header_line(app, Some(room)), room, app.options.glyphs.dot)
    } else {
        first
    };
    let second = counts_line(app, false);
    let second = if second.width() > usize::from(line2.width) {
        // Whole counts or none: "shutting dow" reads as a typo, not as a cut.
        whole_items(counts_line(app, true), usize::from(line2.width), "")
    } else {
        second
    };
    frame.render_widget(Paragraph::new(first), left);
    frame.render_widget(Paragraph::new(badge).alignment(Alignment::Right), right);
    frame.render_widget(Paragraph::new(second), line2);
    right
}

/// `line` cut to `room` columns between items, never inside one (`mem 4` of `mem 4.2GiB`
/// read as a figure): spans that do not fit whole are left out, with the separator
/// (`dot`) before them.
fn whole_items(line: Line<'static>, room: usize, dot: &str) -> Line<'static> {
    let mut kept: Vec<Span<'static>> = Vec::new();
    let mut width = 0;
    for span in line.spans {
        width += span.width();
        if width > room {
            break;
        }
        kept.push(span);
    }
    if kept
        .last()
        .is_some_and(|span| span.content.trim() == dot.trim())
    {
        kept.pop();
    }
    Line::from(kept)
}

/// Columns the full header's changing figures (uptime, tasks/s, cpu, memory used) may still
/// grow by, up to their usual widest: `59m59s`, `999.9k`, `100%`, `1023.9MiB`.
fn header_figures_slack(app: &App) -> usize {
    let Some(snapshot) = &app.view().snapshot else {
        return 0;
    };
    let info = &snapshot.node;
    let uptime = uptime_text(Duration::from_micros(
        info.now_unix_us.saturating_sub(info.started_unix_us),
    ));
    let rate = rate_text(app.view().series.rates.tasks_per_s);
    let mut slack = 6usize.saturating_sub(uptime.len()) + 6usize.saturating_sub(rate.len());
    if let Some(host) = &snapshot.host {
        let cpu = format!("{:.0}", host.cpu_percent);
        let used = HumanSize::approx(host.memory_used_bytes).to_string();
        slack += 3usize.saturating_sub(cpu.len()) + 9usize.saturating_sub(used.len());
    }
    slack
}

/// Identity and load; compact for a narrow terminal of `room` columns, where a name too
/// long for the line loses its middle (the header was left blank: nothing fit whole).
fn header_line(app: &App, room: Option<usize>) -> Line<'static> {
    let compact = room.is_some();
    let theme = &app.options.theme;
    let dot = Span::styled(format!(" {} ", app.options.glyphs.dot), theme.muted);
    let mut spans: Vec<Span> = Vec::new();
    if !compact {
        spans.push(Span::styled(" goliath ", theme.title));
    } else {
        spans.push(Span::raw(" "));
    }
    let Some(snapshot) = &app.view().snapshot else {
        spans.push(Span::styled(
            match &app.options.remote {
                Some(address) => match &app.link {
                    Link::Down { refused: true, .. } => format!("{address} refused the console"),
                    Link::Down { .. } => format!("no connection to {address}"),
                    _ => format!("connecting to {address}…"),
                },
                None => "starting the local node…".to_string(),
            },
            theme.muted,
        ));
        return Line::from(spans);
    };
    let info = &snapshot.node;
    let mut items: Vec<String> = vec![
        info.listen.clone().unwrap_or_else(|| "no listener".into()),
        format!(
            "up {}",
            uptime_text(Duration::from_micros(
                info.now_unix_us.saturating_sub(info.started_unix_us)
            ))
        ),
    ];
    let rate = rate_text(app.view().series.rates.tasks_per_s);
    if compact {
        items.push(format!("{}w", snapshot.workers.len()));
        items.push(format!("{rate}/s"));
    } else {
        items.push(match snapshot.workers.len() {
            1 => "1 worker".to_string(),
            count => format!("{count} workers"),
        });
        items.push(format!("{rate} tasks/s"));
    }
    if let Some(host) = &snapshot.host {
        items.push(format!("cpu {:.0}%", host.cpu_percent));
        items.push(if compact {
            format!("mem {}", HumanSize::approx(host.memory_used_bytes))
        } else {
            format!(
                "mem {}/{}",
                HumanSize::approx(host.memory_used_bytes),
                HumanSize::approx(host.memory_total_bytes)
            )
        });
    }
    let name = match room {
        Some(room) => {
            crate::runtime::units::cut_middle_to_width(&info.name, room.saturating_sub(1))
        }
        None => info.name.clone(),
    };
    spans.push(Span::styled(name, theme.text.add_modifier(Modifier::BOLD)));
    for item in items {
        spans.push(dot.clone());
        spans.push(Span::styled(item, theme.text));
    }
    Line::from(spans)
}

/// Task counts by state; `compact` drops the state names (the glyphs stay).
fn counts_line(app: &App, compact: bool) -> Line<'static> {
    let theme = &app.options.theme;
    let glyphs = &app.options.glyphs;
    let mut spans = vec![Span::raw(" ")];
    let Some(snapshot) = &app.view().snapshot else {
        return Line::from(spans);
    };
    let counts = &snapshot.counts;
    for (state, value) in [
        (TaskState::Queued, counts.queued),
        (TaskState::Running, counts.running),
        (TaskState::Succeeded, counts.succeeded),
        (TaskState::Failed, counts.failed),
        (TaskState::Cancelled, counts.cancelled),
        (TaskState::TimedOut, counts.timed_out),
    ] {
        let text = if compact {
            format!("{} {}", glyphs.state(state), value)
        } else {
            format!("{} {} {}", glyphs.state(state), state_label(state), value)
        };
        spans.push(Span::styled(text, theme.state(state)));
        spans.push(Span::raw("  "));
    }
    spans.push(Span::styled(
        format!("submitted {}", counts.submitted),
        theme.muted,
    ));
    if counts.recovered > 0 {
        // They finish in this start's counts too: said, so the counts add up.
        spans.push(Span::raw("  "));
        spans.push(Span::styled(
            format!("recovered {}", counts.recovered),
            theme.muted,
        ));
    }
    if !snapshot.node.accepting {
        spans.push(Span::styled("  shutting down", theme.warning));
    }
    Line::from(spans)
}

/// Live, paused, or disconnected — always visible at the top right.
fn link_badge(app: &App) -> Line<'static> {
    let theme = &app.options.theme;
    if app.paused() {
        return Line::styled("PAUSED (space resumes) ", theme.warning);
    }
    let shutting_down = app.node_shutting_down();
    match &app.link {
        Link::Connecting => Line::styled("connecting… ", theme.muted),
        Link::Up if shutting_down => Line::styled(
            match &app.options.remote {
                Some(address) => format!("shutting down {address} "),
                None => "shutting down ".to_string(),
            },
            theme.warning,
        ),
        Link::Up => Line::styled(
            match &app.options.remote {
                Some(address) => format!("live {address} "),
                None => "live ".to_string(),
            },
            theme.ok,
        ),
        Link::Unanswered { since } => Line::styled(
            format!("no answer for {}s ", since.elapsed().as_secs()),
            theme.warning,
        ),
        Link::Down {
            retry_at, refused, ..
        } => {
            let wait = retry_at.saturating_duration_since(Instant::now());
            // The figures below are the last ones received: say how old they are.
            let age = match app.live.received_at {
                Some(at) => format!(" · figures {} old", uptime_text(at.elapsed())),
                None => String::new(),
            };
            let state = if *refused {
                "refused"
            } else if shutting_down {
                "shut down"
            } else {
                "disconnected"
            };
            Line::styled(
                format!("{state}{age} · retrying in {}s ", wait.as_secs() + 1),
                theme.error,
            )
        }
    }
}

fn draw_tabs(frame: &mut Frame, app: &App, area: Rect, hits: &mut HitMap) {
    let theme = &app.options.theme;
    let mut x = area.x + 1;
    for (index, tab) in Tab::ALL.iter().enumerate() {
        let label = format!(" {} {} ", index + 1, tab.title());
        let width = label.chars().count() as u16;
        if x + width > area.x + area.width {
            break;
        }
        let rect = Rect::new(x, area.y, width, 1);
        let style = if *tab == app.tab {
            theme.tab_active
        } else {
            theme.text
        };
        frame.render_widget(Paragraph::new(Span::styled(label, style)), rect);
        hits.tabs.push((rect, index));
        x += width + 1;
    }
}

/// The message the status line shows instead of the key hints, if any: the latest status
/// message, or what is wrong with the link.
fn status_message(app: &App) -> Option<(String, Style)> {
    let theme = &app.options.theme;
    if let Some(status) = &app.status {
        let style = match status.severity {
            Severity::Info => theme.text,
            Severity::Warning => theme.warning,
            Severity::Error => theme.error,
        };
        return Some((format!(" {}", status.text), style));
    }
    match &app.link {
        Link::Down { error, .. } => {
            // It said so as it closed, or the last sample said it was shutting down: that
            // is why it is gone.
            let text = if app.node_said_shut_down {
                format!(
                    " the node shut down (it said so as it closed the connection); now: {error}"
                )
            } else if app.node_shutting_down() {
                format!(" the node shut down (it was shutting down when the link closed): {error}")
            } else {
                format!(" {error}")
            };
            Some((text, theme.error))
        }
        Link::Unanswered { since } => {
            let address = app.options.remote.as_deref().unwrap_or("the node");
            Some((
                format!(
                    " {address} has not answered for {}s: stopped (SIGSTOP) or overloaded? The figures shown are from before.",
                    since.elapsed().as_secs()
                ),
                theme.warning,
            ))
        }
        _ => None,
    }
}

/// Rows the status line takes at `width` columns: a long message wraps to up to three rows
/// rather than being cut (an error's advice is usually at its end).
fn status_rows(message: Option<&(String, Style)>, width: u16) -> u16 {
    message.map_or(1, |(text, _)| {
        let paragraph = Paragraph::new(text.as_str()).wrap(Wrap { trim: true });
        let rows = wrapped_rows(&paragraph, width);
        u16::try_from(rows).unwrap_or(3).clamp(1, 3)
    })
}

/// The status line: `message` (from [`status_message`]) if there is one, else the key hints.
fn draw_status(frame: &mut Frame, app: &App, area: Rect, message: Option<(String, Style)>) {
    let theme = &app.options.theme;
    if let Some((text, style)) = message {
        frame.render_widget(
            Paragraph::new(Span::styled(text, style)).wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let hints = match &app.overlay {
        Some(overlay) => overlay_hints(app, overlay),
        None => main_hints(app),
    };
    let columns: Vec<(usize, usize)> = hints
        .iter()
        .map(|(key, label, priority)| {
            let width = Line::from(key.as_str()).width() + label.trim_end().chars().count();
            (width, *priority)
        })
        .collect();
    // One column of the line is its leading space; two spaces end each hint.
    let shown = keep_by_priority(&columns, usize::from(area.width).saturating_sub(1), 2);
    let mut spans = vec![Span::raw(" ")];
    for ((key, label, _), shown) in hints.into_iter().zip(shown) {
        if shown {
            spans.push(Span::styled(key, theme.key));
            spans.push(Span::styled(label, theme.muted));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A key hint of the status line: key, label (" label  ") and priority (0 the most needed:
/// a narrow window leaves out the least needed whole).
type Hint = (String, String, usize);

/// The keys an open overlay takes, most needed first: while one is open the main keys type
/// into it or close it, so hinting them (`q quit` under a prompt where `q` types a q) would
/// mislead.
fn overlay_hints(app: &App, overlay: &Overlay) -> Vec<Hint> {
    let hints = match overlay {
        Overlay::Submit(input) if input.sending => {
            vec![("esc", "close (the answer then shows here)")]
        }
        Overlay::Submit(_) => vec![
            ("enter", "submit"),
            ("esc", "close"),
            ("↑↓", "earlier specs"),
        ],
        Overlay::Palette(_) => vec![
            ("enter", "run"),
            ("esc", "close"),
            ("↑↓", "earlier commands"),
        ],
        Overlay::Filter(_) => vec![
            ("enter", "keep the filter"),
            ("esc", "clear it"),
            ("!", "text hides matches"),
        ],
        Overlay::Confirm { state, .. } if state.is_finished() => {
            vec![("esc", "close")]
        }
        Overlay::Confirm { .. } => vec![("y", "cancel the task"), ("n", "leave it running")],
        Overlay::Help { .. } => {
            let mut hints = Vec::new();
            if let (Some(down), Some(up)) = (
                app.keymap.first_key(Action::Down),
                app.keymap.first_key(Action::Up),
            ) {
                hints.push((format!("{down}/{up}"), "scroll"));
            }
            hints.push(("any other key".to_string(), "close"));
            if let Some(quit) = app.keymap.first_key(Action::Quit) {
                hints.push((quit, "quit"));
            }
            return numbered(hints);
        }
    };
    numbered(
        hints
            .into_iter()
            .map(|(key, label)| (key.to_string(), label))
            .collect(),
    )
}

/// (key, label) pairs as hints, each as needed as its place in the list says.
fn numbered(hints: Vec<(String, &str)>) -> Vec<Hint> {
    hints
        .into_iter()
        .enumerate()
        .map(|(priority, (key, label))| (key, format!(" {label}  "), priority))
        .collect()
}

/// The main keys, in screen order.
fn main_hints(app: &App) -> Vec<Hint> {
    // Task keys only where tasks are shown: on Logs and Cluster they did nothing (or, for
    // cancel, acted on a task out of sight).
    let tasks_shown = matches!(app.tab, Tab::Overview | Tab::Tasks);
    let mut hints: Vec<(Action, &str)> = vec![(Action::Help, "help")];
    if app.allows(Action::Submit) {
        hints.push((Action::Submit, "submit"));
        if tasks_shown {
            hints.push((Action::Cancel, "cancel"));
        }
    }
    if tasks_shown {
        hints.push((Action::Filter, "filter"));
    }
    hints.push((Action::Palette, "command"));
    if tasks_shown {
        hints.push((Action::Open, "details"));
    }
    let pause = if app.paused() { "resume" } else { "pause" };
    hints.extend([(Action::Pause, pause), (Action::Quit, "quit")]);
    // In a narrow window the hints that do not fit are left out whole, help and quit last
    // (a hint cut to its key, `q`, says nothing).
    let priority = |action: Action| match action {
        Action::Help => 0,
        Action::Quit => 1,
        Action::Submit => 2,
        Action::Cancel => 3,
        Action::Open => 4,
        Action::Filter => 5,
        Action::Palette => 6,
        _ => 7,
    };
    hints
        .into_iter()
        .filter_map(|(action, label)| {
            let key = app.keymap.first_key(action)?;
            Some((key.to_string(), format!(" {label}  "), priority(action)))
        })
        .collect()
}

fn draw_overview(frame: &mut Frame, app: &App, body: Rect, hits: &mut HitMap) {
    if app.zoomed {
        draw_pane(frame, app, app.focus, body, hits);
        hits.panes.push((body, app.focus));
        return;
    }
    let log_height = if body.height >= 30 { 8 } else { 6 };
    let [top, log] =
        Layout::vertical([Constraint::Min(6), Constraint::Length(log_height)]).areas(body);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(48), Constraint::Percentage(52)]).areas(top);
    let snapshot = app.view().snapshot.as_ref();
    let worker_count = snapshot.map_or(1, |s| s.workers.len()) as u16;
    let wal = snapshot.is_some_and(|s| s.wal.is_some());
    const ARENA_HEIGHT: u16 = 5;
    const THROUGHPUT_MIN: u16 = 3;
    // The WAL pane takes what it can use (numbers, then a latency chart), leaving the
    // throughput chart at least a few rows when there is room for it.
    let wal_height = if wal {
        left.height
            .saturating_sub(ARENA_HEIGHT + 4 + THROUGHPUT_MIN)
            .clamp(5, 12)
    } else {
        0
    };
    let workers_height = (worker_count + 2)
        .min(left.height.saturating_sub(ARENA_HEIGHT + wal_height))
        .max(3);
    // The throughput chart only when the rows left over hold one; otherwise they go to the
    // WAL pane (or the arena's), not to a blank gap.
    let spare = left
        .height
        .saturating_sub(workers_height + ARENA_HEIGHT + wal_height);
    let show_throughput = spare >= THROUGHPUT_MIN;
    let (arena_rows, throughput_rows, wal_rows) = if show_throughput {
        (
            Constraint::Length(ARENA_HEIGHT),
            Constraint::Min(0),
            Constraint::Length(wal_height),
        )
    } else if wal {
        (
            Constraint::Length(ARENA_HEIGHT),
            Constraint::Length(0),
            Constraint::Min(0),
        )
    } else {
        (
            Constraint::Min(ARENA_HEIGHT),
            Constraint::Length(0),
            Constraint::Length(0),
        )
    };
    let [workers, arena, throughput, wal_area] = Layout::vertical([
        Constraint::Length(workers_height),
        arena_rows,
        throughput_rows,
        wal_rows,
    ])
    .areas(left);
    let cluster_height = snapshot.and_then(|s| s.cluster.as_ref()).map_or(0, |c| {
        (c.members.len() as u16 + 3).clamp(4, right.height / 2)
    });
    let [tasks, cluster] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(cluster_height)]).areas(right);
    let mut panes = vec![(Pane::Workers, workers), (Pane::Arena, arena)];
    if show_throughput {
        panes.push((Pane::Throughput, throughput));
    }
    if wal {
        panes.push((Pane::Wal, wal_area));
    }
    panes.push((Pane::Tasks, tasks));
    if cluster_height > 0 {
        panes.push((Pane::Cluster, cluster));
    }
    panes.push((Pane::Log, log));
    for (pane, rect) in panes {
        draw_pane(frame, app, pane, rect, hits);
        hits.panes.push((rect, pane));
    }
}

fn draw_pane(frame: &mut Frame, app: &App, pane: Pane, area: Rect, hits: &mut HitMap) {
    let focused = app.focus == pane;
    match pane {
        Pane::Workers => draw_workers(frame, app, area, focused, hits),
        Pane::Arena => draw_arena(frame, app, area, focused),
        Pane::Throughput => draw_throughput(frame, app, area, focused),
        Pane::Wal => draw_wal(frame, app, area, focused),
        Pane::Cluster => draw_cluster_compact(frame, app, area, focused),
        Pane::Tasks => {
            let rows = app.task_rows();
            // The Tasks tab's filter applies here too: say so, or the pane passes for "the
            // newest tasks" while it shows a filtered few.
            // The pane's height less its borders and the column header: a pane that
            // cannot hold every row says how many it does.
            let visible = usize::from(area.height.saturating_sub(3));
            let total = app.view().snapshot.as_ref().map_or(0, |s| s.tasks.len());
            let listed_tasks = listed_tasks(app);
            let title = if app.filter.is_empty() {
                let listed = match listed_tasks {
                    Listed::All => rows.len().to_string(),
                    Listed::Newest => format!("the {} newest", rows.len()),
                    Listed::InFlightOnly => format!("{} in flight", rows.len()),
                };
                if rows.len() > visible {
                    format!("Tasks ({visible} of {listed} shown)")
                } else {
                    format!("Tasks ({listed} shown)")
                }
            } else {
                // The rows the filter takes: of the newest, not themselves the newest.
                let matched = listed_tasks.count(rows.len(), total);
                let shown = if rows.len() > visible {
                    format!(" ({visible} shown)")
                } else {
                    String::new()
                };
                format!("Tasks · filter \"{}\": {matched}{shown}", app.filter)
            };
            draw_task_table(
                frame,
                app,
                &rows,
                area,
                pane_block(app, title, focused),
                true,
                hits,
            );
        }
        Pane::Log => draw_log_pane(frame, app, area, focused, hits),
    }
}

fn pane_block<'a>(app: &App, title: String, focused: bool) -> Block<'a> {
    pane(app, format!(" {title} "), focused)
}

fn draw_workers(frame: &mut Frame, app: &App, area: Rect, focused: bool, hits: &mut HitMap) {
    let theme = &app.options.theme;
    let glyphs = &app.options.glyphs;
    let view = app.view();
    let Some(snapshot) = &view.snapshot else {
        frame.render_widget(pane_block(app, "Workers".into(), focused), area);
        return;
    };
    let total_depth: usize = snapshot.workers.iter().map(|w| w.depth).sum();
    let steals = rate_text(view.series.rates.steals_per_s);
    let mut title = format!(
        "Workers · depth {} · queue {} · steals {steals}/s",
        total_depth, snapshot.submission_queue_depth,
    );
    if title.chars().count() + 4 > usize::from(area.width) {
        title = format!("Workers · depth {total_depth} · steals {steals}/s");
    }
    // Rows for workers: the pane's height less its borders. When they do not all fit, the
    // title says which are shown, so a cut list is not taken for the whole.
    let visible = usize::from(area.height.saturating_sub(2));
    let count = snapshot.workers.len();
    if count > visible {
        let offset = app.workers_offset.min(count - visible);
        let shown = match visible {
            0 => format!(" · none of {count} shown"),
            1 => format!(" · w{offset} of {count}"),
            _ => format!(" · w{}–w{} of {count}", offset, offset + visible - 1),
        };
        let short = format!("Workers{shown}");
        title = if title.chars().count() + shown.chars().count() + 4 > usize::from(area.width) {
            short
        } else {
            format!("{title}{shown}")
        };
    }
    let block = pane_block(app, title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    hits.workers = Some(inner);
    if inner.height == 0 || inner.width < 20 {
        return;
    }
    let max_depth = snapshot
        .workers
        .iter()
        .map(|w| w.depth)
        .max()
        .unwrap_or(0)
        .max(1);
    let visible = usize::from(inner.height);
    let offset = app
        .workers_offset
        .min(snapshot.workers.len().saturating_sub(visible));
    // w00 ▶ 1234 ██████░░░░ ▁▂▃▅▇ 12.3k/s
    let bar_width: u16 = 10;
    let fixed: u16 = 4 + 2 + 6 + bar_width + 1 + 8;
    let spark_width = inner.width.saturating_sub(fixed);
    for (row, worker) in snapshot
        .workers
        .iter()
        .skip(offset)
        .take(visible)
        .enumerate()
    {
        let y = inner.y + row as u16;
        let activity = match (worker.activity, glyphs.ascii) {
            (WorkerActivity::Running, false) => "▶",
            (WorkerActivity::Searching, false) => "~",
            (WorkerActivity::Parked, false) => "z",
            (WorkerActivity::Stopped, false) => "■",
            (WorkerActivity::Running, true) => ">",
            (WorkerActivity::Searching, true) => "~",
            (WorkerActivity::Parked, true) => "z",
            (WorkerActivity::Stopped, true) => "#",
        };
        let filled = ((worker.depth as u64 * u64::from(bar_width)).div_ceil(max_depth as u64))
            .min(u64::from(bar_width)) as usize;
        let bar = format!(
            "{}{}",
            glyphs.bar_full.repeat(filled),
            glyphs.bar_empty.repeat(usize::from(bar_width) - filled)
        );
        let executed = view
            .series
            .rates
            .worker_tasks_per_s
            .get(usize::from(worker.index))
            .copied()
            .unwrap_or(0.0);
        let prefix = Line::from(vec![
            Span::styled(format!("w{:<2} ", worker.index), theme.muted),
            Span::styled(format!("{activity} "), theme.text),
            Span::styled(format!("{:>5} ", worker.depth), theme.text),
            Span::styled(bar, theme.gauge),
            Span::raw(" "),
        ]);
        frame.render_widget(Paragraph::new(prefix), Rect::new(inner.x, y, fixed - 8, 1));
        if spark_width > 0
            && let Some(history) = view.series.depth.get(usize::from(worker.index))
        {
            // Newest at the right edge.
            let data: Vec<u64> = history
                .iter()
                .rev()
                .take(usize::from(spark_width))
                .copied()
                .collect();
            let sparkline = Sparkline::default()
                .data(&data)
                .direction(RenderDirection::RightToLeft)
                .max(max_depth as u64)
                .bar_set(glyphs.bars.clone())
                .style(theme.spark);
            frame.render_widget(sparkline, Rect::new(inner.x + fixed - 8, y, spark_width, 1));
        }
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!("{:>6}/s", rate_text(executed)),
                theme.muted,
            ))
            .alignment(Alignment::Right),
            Rect::new(inner.x + inner.width - 8, y, 8, 1),
        );
    }
}

fn draw_arena(frame: &mut Frame, app: &App, area: Rect, focused: bool) {
    let theme = &app.options.theme;
    let glyphs = &app.options.glyphs;
    let block = pane_block(app, "Arena".into(), focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(snapshot) = &app.view().snapshot else {
        return;
    };
    let arena = &snapshot.arena;
    let capacity = arena.capacity.max(1);
    let percent = arena.in_use as f64 * 100.0 / capacity as f64;
    let width = usize::from(inner.width.saturating_sub(9)).max(1);
    let filled = (arena.in_use * width).div_ceil(capacity).min(width);
    // The high-water mark stands right of the filled cells whenever it is above the use of
    // the moment, also when both fall in one cell (it was hidden under the fill then).
    let mut mark = (arena.high_water * width / capacity).min(width.saturating_sub(1));
    if arena.high_water > arena.in_use {
        mark = mark.max(filled).min(width.saturating_sub(1));
    }
    let mut bar = Vec::with_capacity(width + 2);
    let style = if percent >= 90.0 {
        theme.gauge_high
    } else {
        theme.gauge
    };
    for cell in 0..width {
        let (symbol, cell_style) = if cell == mark && mark >= filled {
            (glyphs.high_water, theme.warning)
        } else if cell < filled {
            (glyphs.bar_full, style)
        } else {
            (glyphs.bar_empty, theme.muted)
        };
        bar.push(Span::styled(symbol, cell_style));
    }
    bar.push(Span::styled(format!(" {percent:5.1}%"), theme.text));
    let lines = vec![
        Line::from(bar),
        Line::from(vec![
            Span::styled("in use ", theme.muted),
            Span::styled(format!("{}/{}", arena.in_use, arena.capacity), theme.text),
            Span::styled("  high water ", theme.muted),
            Span::styled(arena.high_water.to_string(), theme.text),
        ]),
        Line::from(vec![
            Span::styled("rejected ", theme.muted),
            Span::styled(
                arena.rejected.to_string(),
                if arena.rejected > 0 {
                    theme.warning
                } else {
                    theme.text
                },
            ),
            Span::styled("  reserved ", theme.muted),
            Span::styled(
                HumanSize::approx(arena.bytes_reserved as u64).to_string(),
                theme.text,
            ),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_throughput(frame: &mut Frame, app: &App, area: Rect, focused: bool) {
    let theme = &app.options.theme;
    let series = &app.view().series;
    // The peak and the chart's scale are those of the samples drawn: a burst that scrolled
    // out of a narrow pane left a peak in the title and a scale that flattened everything
    // drawn after it.
    let room = usize::from(area.width.saturating_sub(2));
    let data: Vec<u64> = series
        .tasks_per_s
        .iter()
        .rev()
        .take(room)
        .copied()
        .collect();
    let peak = data.iter().copied().max().unwrap_or(0);
    // The title drops whole items from its end rather than cut one: "peak 100.2" of 100.2k
    // reads as another figure.
    let title = Line::from(vec![
        Span::styled(" Throughput", theme.title),
        Span::styled(
            format!(" · {} tasks/s", rate_text(series.rates.tasks_per_s)),
            theme.muted,
        ),
        Span::styled(
            if peak > 0 {
                // Samples are whole tasks per second: the rate shown beside may be a fraction
                // above the highest ("80.1 tasks/s · peak 80.0").
                let peak = (peak as f64).max(series.rates.tasks_per_s);
                format!(" · peak {}", rate_text(peak))
            } else {
                String::new()
            },
            theme.muted,
        ),
    ]);
    let mut title = whole_items(title, room, "");
    if title.width() < room {
        title.spans.push(Span::raw(" "));
    }
    let block = pane(app, title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // Until a task finishes the chart is all zeros, which draws nothing: an empty pane that
    // looks broken. The note stays until there is something to draw.
    if peak == 0 {
        let note = if series.tasks_per_s.iter().any(|&rate| rate > 0) {
            "no task finished lately"
        } else {
            "finished tasks per second appear here"
        };
        frame.render_widget(Paragraph::new(Span::styled(note, theme.muted)), inner);
        return;
    }
    let sparkline = Sparkline::default()
        .data(&data)
        .direction(RenderDirection::RightToLeft)
        .max(peak.max(1))
        .bar_set(app.options.glyphs.bars.clone())
        .style(theme.spark);
    frame.render_widget(sparkline, inner);
}

fn draw_wal(frame: &mut Frame, app: &App, area: Rect, focused: bool) {
    let theme = &app.options.theme;
    let view = app.view();
    let Some(snapshot) = &view.snapshot else {
        return;
    };
    let Some(wal) = &snapshot.wal else {
        return;
    };
    let now = app.node_now_us();
    // Each line and the title drop whole items from their end rather than cut one: "sync
    // alwa" or a size without its unit reads as a figure.
    let room = usize::from(area.width.saturating_sub(2));
    let dot = || Span::styled(" · ", theme.muted);
    let never = wal.sync == crate::runtime::wal::WalSync::Never;
    let title = if wal.healthy {
        Line::from(vec![
            Span::styled(if never { " WAL " } else { " WAL fsync " }, theme.title),
            // The sync mode before the window: `sync never` must not be the item dropped.
            Span::styled(
                format!("· sync {} ", wal.sync.as_str()),
                if never { theme.warning } else { theme.muted },
            ),
            // Under a second old, "0s window" says nothing.
            Span::styled(
                if wal.window_us >= 1_000_000 {
                    format!("· {} window ", window_seconds(wal.window_us))
                } else {
                    String::new()
                },
                theme.muted,
            ),
        ])
    } else {
        Line::from(vec![
            Span::styled(" WAL ", theme.title),
            Span::styled("FAILED: acknowledging nothing ", theme.error),
        ])
    };
    let block = pane(app, whole_items(title, room, ""), focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let us = |value: f64| short_us(value.round() as u64);
    // A batch is one write and, unless sync is never, one fdatasync.
    let per = if never { "write" } else { "fsync" };
    let latency = if never {
        whole_items(
            Line::from(vec![Span::styled(
                "no fdatasync: acknowledged once written",
                theme.warning,
            )]),
            room,
            "",
        )
    } else if wal.window_fsyncs == 0 {
        // Percentiles of nothing would read as 0 ns: say what the window holds instead.
        whole_items(
            Line::from(vec![
                Span::styled(
                    if wal.window_us >= 1_000_000 {
                        format!("no fdatasync in the last {}", window_seconds(wal.window_us))
                    } else {
                        "no fdatasync yet".to_string()
                    },
                    theme.muted,
                ),
                Span::styled(format!(" ({} since start)", wal.fsyncs), theme.muted),
            ]),
            room,
            "",
        )
    } else {
        Line::from(vec![
            Span::styled(format!("p50 {}", us(wal.fsync_p50_us)), theme.spark),
            Span::styled(format!("  p99 {}", us(wal.fsync_p99_us)), theme.spark_alt),
            Span::styled(format!("  max {}", us(wal.fsync_max_us)), theme.text),
        ])
    };
    let mut lines = vec![latency];
    if let Some(failure) = &wal.failure {
        lines.push(Line::styled(failure.clone(), theme.error));
    }
    if let Some(problem) = &wal.next_segment_error {
        // The log works on, for now (a failed log has none): said before the figures,
        // where the eye goes first.
        lines.push(Line::styled(
            format!("next segment not ready: {problem}"),
            theme.warning,
        ));
    }
    lines.push(whole_items(
        Line::from(vec![
            Span::styled(
                format!("{} appends/s", rate_text(wal.appends_per_sec)),
                theme.text,
            ),
            dot(),
            Span::styled(
                format!("{:.1} rec/{per}", wal.records_per_fsync),
                theme.muted,
            ),
            dot(),
            Span::styled(
                format!(
                    "{}/{per}",
                    HumanSize::approx(wal.bytes_per_fsync.round() as u64)
                ),
                theme.muted,
            ),
        ]),
        room,
        " · ",
    ));
    let checkpoint = match (&wal.checkpoint_error, wal.last_checkpoint_unix_us) {
        (Some(error), _) => format!("checkpoint failing: {error}"),
        (None, Some(at)) => format!("checkpoint {} ago", short_us(now.saturating_sub(at))),
        (None, None) => "no checkpoint yet".to_string(),
    };
    let checkpoint = if wal.checkpoint_waits > 0 && wal.checkpoint_error.is_none() {
        format!(
            "{checkpoint} · acks waited for it {}×",
            wal.checkpoint_waits
        )
    } else {
        checkpoint
    };
    let checkpoint_style = if wal.checkpoint_error.is_some() {
        theme.warning
    } else {
        theme.muted
    };
    // The checkpoint's age (or its failure) first: a narrow pane drops the files' size and
    // count before it. A failure too long for the line is shown as far as it goes.
    if unicode_width::UnicodeWidthStr::width(checkpoint.as_str()) > room {
        lines.push(Line::styled(checkpoint, checkpoint_style));
    } else {
        lines.push(whole_items(
            Line::from(vec![
                Span::styled(checkpoint, checkpoint_style),
                dot(),
                Span::styled(format!("{} seg", wal.segments), theme.muted),
                dot(),
                Span::styled(HumanSize::approx(wal.disk_bytes).to_string(), theme.muted),
            ]),
            room,
            " · ",
        ));
    }
    let text_height = (lines.len() as u16).min(inner.height);
    frame.render_widget(
        Paragraph::new(lines),
        Rect::new(inner.x, inner.y, inner.width, text_height),
    );
    let chart_area = Rect::new(
        inner.x,
        inner.y + text_height,
        inner.width,
        inner.height - text_height,
    );
    let measured = view.series.fsync_latency.iter().flatten().count();
    if chart_area.height >= 3 && measured >= 2 {
        draw_latency_chart(frame, app, chart_area);
    }
}

/// p50 and p99 fdatasync latency over the samples the console has seen.
fn draw_latency_chart(frame: &mut Frame, app: &App, area: Rect) {
    let theme = &app.options.theme;
    let series = &app.view().series.fsync_latency;
    let width = usize::from(area.width.saturating_sub(8)).max(2);
    let shown: Vec<Option<(f64, f64)>> = series.iter().rev().take(width).rev().copied().collect();
    // Samples without an fdatasync have no point: the line bridges them, it never dips to 0.
    let points = |pick: fn(&(f64, f64)) -> f64| -> Vec<(f64, f64)> {
        shown
            .iter()
            .enumerate()
            .filter_map(|(i, sample)| sample.as_ref().map(|sample| (i as f64, pick(sample))))
            .collect()
    };
    let p50 = points(|(p50, _)| *p50);
    let p99 = points(|(_, p99)| *p99);
    let top = p99.iter().map(|(_, p99)| *p99).fold(1.0f64, f64::max) * 1.1;
    let (p50_marker, p99_marker) = if app.options.theme.name == super::theme::ThemeName::Mono {
        (symbols::Marker::Braille, symbols::Marker::Dot)
    } else {
        (symbols::Marker::Braille, symbols::Marker::Braille)
    };
    let datasets = vec![
        Dataset::default()
            .name("p50")
            .marker(p50_marker)
            .graph_type(GraphType::Line)
            .style(theme.spark)
            .data(&p50),
        Dataset::default()
            .name("p99")
            .marker(p99_marker)
            .graph_type(GraphType::Line)
            .style(theme.spark_alt)
            .data(&p99),
    ];
    let chart = Chart::new(datasets)
        .x_axis(Axis::default().bounds([0.0, (shown.len().max(2) - 1) as f64]))
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels([
                    Span::styled("0", theme.muted),
                    Span::styled(short_us(top as u64), theme.muted),
                ])
                .style(theme.muted),
        )
        // The numbers above name the lines (same colours); a legend would cover the data.
        .legend_position(None);
    frame.render_widget(chart, area);
}

/// The glyph of a member state, plus `*` when phi marks it degraded.
fn member_glyph(app: &App, state: MemberState) -> &'static str {
    match (state, app.options.glyphs.ascii) {
        (MemberState::Alive, false) => "●",
        (MemberState::Suspect, false) => "◐",
        (MemberState::Dead | MemberState::Left, false) => "✕",
        (MemberState::Alive, true) => "o",
        (MemberState::Suspect, true) => "?",
        (MemberState::Dead | MemberState::Left, true) => "x",
    }
}

fn member_style(app: &App, state: MemberState) -> Style {
    let theme = &app.options.theme;
    match state {
        MemberState::Alive => theme.ok,
        MemberState::Suspect => theme.warning,
        MemberState::Dead => theme.error,
        MemberState::Left => theme.muted,
    }
}

fn member_state_label(state: MemberState) -> &'static str {
    match state {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Dead => "dead",
        MemberState::Left => "left",
    }
}

fn member_counts(app: &App, cluster: &ClusterSnapshot, compact: bool) -> Vec<Span<'static>> {
    let theme = &app.options.theme;
    let counts = &cluster.counts;
    let mut spans = Vec::new();
    for (state, count) in [
        (MemberState::Alive, counts.alive),
        (MemberState::Suspect, counts.suspect),
        (MemberState::Dead, counts.dead),
    ] {
        // ASCII's o ? x say less than ● ◐ ✕ (and ? is the help key): the compact form
        // names the state there too.
        let text = if compact && app.options.glyphs.ascii {
            format!(
                "{}{} {} ",
                member_glyph(app, state),
                count,
                member_state_label(state)
            )
        } else if compact {
            format!("{}{} ", member_glyph(app, state), count)
        } else {
            format!(
                "{} {} {}  ",
                member_glyph(app, state),
                count,
                member_state_label(state)
            )
        };
        spans.push(Span::styled(text, member_style(app, state)));
    }
    if compact {
        // Left members show ✕ too: counted apart, so the ✕ count matches the dead rows.
        if counts.left > 0 {
            spans.push(Span::styled(format!("{} left ", counts.left), theme.muted));
        }
        return spans;
    }
    if counts.left > 0 {
        spans.push(Span::styled(format!("{} left  ", counts.left), theme.muted));
    }
    if counts.degraded > 0 {
        spans.push(Span::styled(
            format!("{} degraded", counts.degraded),
            theme.warning,
        ));
    }
    spans
}

/// One member as a line: glyph, name, phi, last heard, and load when it fits in `width`
/// columns whole (a load cut to "lo" says nothing). Names take `name_column` columns (see
/// [`member_name_column`]) and heard times [`HEARD_COLUMN`], so the pane's lines align.
fn member_line(
    app: &App,
    cluster: &ClusterSnapshot,
    member: &MemberInfo,
    now: u64,
    width: u16,
    name_column: usize,
) -> Line<'static> {
    let theme = &app.options.theme;
    let heard = if member.local {
        "this node".to_string()
    } else {
        member.last_heard_unix_us.map_or_else(
            || "never heard".to_string(),
            |at| format!("{} ago", short_us(now.saturating_sub(at))),
        )
    };
    let mut heard = format!("{heard:<HEARD_COLUMN$}");
    let mut load = if member.current_load().is_some() {
        format!("  load {}", member.load_shown(1))
    } else {
        String::new()
    };
    // A name too long for its column loses its middle, so phi and heard stay in sight and
    // names differing at the end stay apart.
    let name = crate::runtime::units::cut_middle_to_width(&member.name, name_column);
    let name_width = unicode_width::UnicodeWidthStr::width(name.as_str());
    let fixed = member_line_around_name(app) + name_column;
    if fixed + heard.chars().count() + load.chars().count() > usize::from(width) {
        load.clear();
        // Too narrow for the load: a member that refuses every task still says so, in the
        // place of when it was last heard from (why it is among those needing a look).
        if member.arena_full() {
            heard = format!("{:<HEARD_COLUMN$}", "full");
        }
    }
    let phi = cluster
        .phi_of(member)
        .map_or_else(|| format!("{:<5}", "-"), |phi| format!("{phi:<5.1}"));
    Line::from(vec![
        Span::styled(
            format!(
                "{}{} ",
                member_glyph(app, member.state),
                if member.degraded { "*" } else { " " }
            ),
            member_style(app, member.state),
        ),
        Span::styled(
            format!(
                "{name}{}",
                " ".repeat(name_column.saturating_sub(name_width))
            ),
            theme.text,
        ),
        Span::styled(
            format!(
                " {}{phi}",
                if app.options.glyphs.ascii {
                    "phi "
                } else {
                    "φ"
                },
            ),
            theme.muted,
        ),
        // Padded only when a load follows it, so the loads line up.
        Span::styled(
            format!(
                " {}{load}",
                if load.is_empty() {
                    heard.trim_end()
                } else {
                    heard.as_str()
                }
            ),
            theme.muted,
        ),
    ])
}

/// Columns a heard time takes in the Overview's member lines (`999.9ms ago`, `never heard`).
const HEARD_COLUMN: usize = 11;

/// Columns of a member line besides the name, heard and load: glyph and flag, the space
/// before phi, its label and value, and the space before heard.
fn member_line_around_name(app: &App) -> usize {
    let phi_label = if app.options.glyphs.ascii { 5 } else { 2 };
    3 + phi_label + 5 + 1
}

/// The name column of the Overview's member lines: as wide as the longest name shown (at
/// least 14), and no wider than leaves room for phi and heard in `width` columns.
fn member_name_column(app: &App, members: &[&MemberInfo], width: u16) -> usize {
    let longest = members
        .iter()
        .map(|m| unicode_width::UnicodeWidthStr::width(m.name.as_str()))
        .max()
        .unwrap_or(0)
        .max(14);
    let room = usize::from(width).saturating_sub(member_line_around_name(app) + HEARD_COLUMN);
    longest.min(room).max(14)
}

/// This node, then the members that need a look (down, suspect, degraded, or refusing work
/// with a full arena), then the alive, then those that left; by name within each, numbers
/// in names compared as numbers (`n2` before `n10`).
fn members_by_attention(cluster: &ClusterSnapshot) -> Vec<&MemberInfo> {
    let attention = |m: &MemberInfo| match m.state {
        _ if m.local => 0,
        MemberState::Suspect | MemberState::Dead => 1,
        _ if m.degraded || m.arena_full() => 1,
        MemberState::Alive => 2,
        MemberState::Left => 3,
    };
    let mut members: Vec<&MemberInfo> = cluster.members.iter().collect();
    members.sort_by(|a, b| {
        attention(a)
            .cmp(&attention(b))
            .then_with(|| crate::runtime::units::natural_order(&a.name, &b.name))
    });
    members
}

fn draw_cluster_compact(frame: &mut Frame, app: &App, area: Rect, focused: bool) {
    let Some(snapshot) = &app.view().snapshot else {
        return;
    };
    let Some(cluster) = &snapshot.cluster else {
        return;
    };
    let mut title = vec![Span::styled(" Cluster ", app.options.theme.title)];
    title.extend(member_counts(app, cluster, area.width < 60));
    title.push(Span::raw(" "));
    let block = pane(app, Line::from(title), focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // This node, then the members that need a look (down, suspect, degraded), then the rest:
    // when they do not all fit, the ones cut are healthy, and the last line says how many.
    let members = members_by_attention(cluster);
    let rows = usize::from(inner.height);
    let shown = if members.len() > rows {
        rows.saturating_sub(1)
    } else {
        members.len()
    };
    let now = app.node_now_us();
    let name_column = member_name_column(app, &members[..shown], inner.width);
    let mut lines: Vec<Line> = members
        .iter()
        .take(shown)
        .map(|m| member_line(app, cluster, m, now, inner.width, name_column))
        .collect();
    if shown < members.len() {
        lines.push(Line::styled(
            format!("… {} more on the Cluster tab (4)", members.len() - shown),
            app.options.theme.muted,
        ));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The widest NAME column of the Cluster tab; longer names lose their middle to `…`.
const NAME_WIDTH_MAX: usize = 40;

/// A member's name as the Cluster tab shows it: this node's marked.
fn member_name_shown(member: &MemberInfo) -> String {
    if member.local {
        format!("{} (this)", member.name)
    } else {
        member.name.clone()
    }
}

fn draw_cluster_tab(frame: &mut Frame, app: &App, area: Rect, hits: &mut HitMap) {
    let theme = &app.options.theme;
    let Some(snapshot) = &app.view().snapshot else {
        frame.render_widget(pane(app, " Cluster ", true), area);
        return;
    };
    let Some(cluster) = &snapshot.cluster else {
        let block = pane(app, " Cluster ", true);
        let lines = vec![
            Line::styled(
                "Gossip is off on this node, so it knows no other members.",
                theme.text,
            ),
            Line::raw(""),
            Line::styled(
                "Start nodes with --gossip ADDR (and --join HOST:PORT to join one), set gossip.enabled = true,",
                theme.muted,
            ),
            Line::styled(
                "or try `goliath demo` for a three-node cluster on this machine.",
                theme.muted,
            ),
        ];
        frame.render_widget(
            Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
            area,
        );
        return;
    };
    let now = app.node_now_us();
    let yielded = cluster.status == LocalStatus::Yielded;
    let [notice_area, area] =
        Layout::vertical([Constraint::Length(u16::from(yielded)), Constraint::Min(1)]).areas(area);
    if yielded {
        frame.render_widget(
            Paragraph::new(Span::styled(
                " This node yielded its name to a newer process and stopped gossiping: the members below are as it last knew them.",
                theme.warning,
            )),
            notice_area,
        );
    }
    // The table takes the rows its members need, the events the rest; when members need
    // more, the events keep a third and the table scrolls.
    let table_wanted = u16::try_from(cluster.members.len() + 3).unwrap_or(u16::MAX);
    let events_wanted = u16::try_from(cluster.events.len() + 2).unwrap_or(u16::MAX);
    let events_height = area
        .height
        .saturating_sub(table_wanted)
        .max(area.height / 3)
        .min(events_wanted)
        .max(3);
    let [table_area, events_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(events_height)]).areas(area);
    // The counts first: a narrow window cuts the title from the right, and this node's
    // generation matters less than how many members are down.
    let mut title = vec![Span::styled(
        format!(" Cluster {} · ", cluster.cluster),
        theme.title,
    )];
    title.extend(member_counts(app, cluster, false));
    // This node's part whole, or shorter, or not at all: never cut mid-number.
    let status = format!("{:?}", cluster.status).to_lowercase();
    let room = usize::from(table_area.width.saturating_sub(2))
        .saturating_sub(title.iter().map(Span::width).sum::<usize>());
    if let Some(part) = [
        format!(
            " · this node {} ({status}, generation {}, incarnation {}) ",
            cluster.local, cluster.generation, cluster.incarnation
        ),
        format!(" · this node {} ({status}) ", cluster.local),
    ]
    .into_iter()
    .find(|part| part.chars().count() <= room)
    {
        title.push(Span::styled(part, theme.title));
    }
    let rows_visible = usize::from(table_area.height.saturating_sub(3));
    hits.member_rows = rows_visible;
    let offset = app
        .members_offset
        .min(cluster.members.len().saturating_sub(rows_visible));
    let mut block = pane(app, Line::from(title), true);
    if cluster.members.len() > rows_visible {
        // Never a member out of sight without a word: which rows show, and how to see more.
        let last = (offset + rows_visible).min(cluster.members.len());
        block = block.title_bottom(Line::styled(
            format!(
                " members {}-{last} of {} · j/k, PgUp/PgDn scroll ",
                offset + 1,
                cluster.members.len()
            ),
            theme.muted,
        ));
    }
    frame.render_widget(block, table_area);
    // Columns by how much an operator needs them; a narrow window drops the last ones
    // whole rather than cutting every address short.
    // PROTOCOL widens for an address marked "(its loopback)".
    let protocol_width = cluster
        .members
        .iter()
        .map(|m| m.protocol_address_shown().chars().count())
        .fold(21, usize::max);
    // NAME as wide as the longest name (at least 18; at most 40, or what the other columns
    // leave when all of them fit): names that differ only at the end (`worker-euw1-001`,
    // `-002`) were cut to the same 18 columns with no mark, and a 41-column name was cut
    // beside 60 empty ones.
    let mut columns_spec: [(&str, u16, u8); 9] = [
        ("NAME", 0, 0),
        ("STATE", 12, 1),
        // A narrow table keeps what says which member is busy (LOAD) and where to send it
        // work (PROTOCOL) before its gossip address.
        ("PHI", 6, 4),
        ("INC", 5, 7),
        ("GOSSIP", 21, 6),
        (
            "PROTOCOL",
            u16::try_from(protocol_width).unwrap_or(u16::MAX),
            5,
        ),
        ("HEARD", 12, 2),
        // Tasks in flight per worker, and the queue depth: two columns, so that a narrow
        // table drops the second whole. DEPTH, not QUEUED: it counts indices waiting in the
        // submission queue and the deques, running tasks between slices among them, so it
        // disagreed with the header's count of tasks queued.
        ("LOAD", 7, 3),
        ("DEPTH", 8, 8),
    ];
    let room = usize::from(table_area.width.saturating_sub(2));
    // The other columns and the spaces between all nine.
    let others: usize = columns_spec[1..]
        .iter()
        .map(|(_, width, _)| usize::from(*width) + 1)
        .sum();
    let name_width = cluster
        .members
        .iter()
        .map(|m| unicode_width::UnicodeWidthStr::width(member_name_shown(m).as_str()))
        .fold(18, usize::max)
        .min(NAME_WIDTH_MAX.max(room.saturating_sub(others)));
    columns_spec[0].1 = u16::try_from(name_width).unwrap_or(18);
    let columns: Vec<(usize, usize)> = columns_spec
        .iter()
        .map(|(_, width, priority)| (usize::from(*width), usize::from(*priority)))
        .collect();
    let shown = keep_by_priority(&columns, room, 1);
    let pick = |cells: Vec<Cell<'static>>| -> Vec<Cell<'static>> {
        cells
            .into_iter()
            .zip(&shown)
            .filter_map(|(cell, keep)| keep.then_some(cell))
            .collect()
    };
    let members = members_by_attention(cluster);
    let rows = members
        .into_iter()
        .skip(offset)
        .take(rows_visible)
        .map(|member| {
            let heard = if member.local {
                "-".to_string()
            } else {
                member.last_heard_unix_us.map_or_else(
                    || "never".to_string(),
                    |at| format!("{} ago", short_us(now.saturating_sub(at))),
                )
            };
            let load = member.load_shown(1);
            let queued = member
                .current_load()
                .map_or_else(|| "-".to_string(), |m| m.queue_depth.to_string());
            let phi = cluster
                .phi_of(member)
                .map_or_else(|| "-".to_string(), |phi| format!("{phi:.1}"));
            let state = format!(
                "{} {}{}",
                member_glyph(app, member.state),
                member_state_label(member.state),
                if member.degraded { " *" } else { "" }
            );
            let name =
                crate::runtime::units::cut_middle_to_width(&member_name_shown(member), name_width);
            Row::new(pick(vec![
                Cell::from(name),
                Cell::from(Span::styled(state, member_style(app, member.state))),
                Cell::from(phi),
                Cell::from(member.incarnation.to_string()),
                Cell::from(member.gossip_address.clone().unwrap_or_else(|| "-".into())),
                Cell::from(member.protocol_address_shown().into_owned()),
                Cell::from(heard),
                Cell::from(load),
                Cell::from(queued),
            ]))
            .style(theme.text)
        });
    let widths: Vec<Constraint> = columns_spec
        .iter()
        .zip(&shown)
        .filter(|(_, keep)| **keep)
        .map(|((_, width, _), _)| Constraint::Length(*width))
        .collect();
    let headers = pick(
        columns_spec
            .iter()
            .map(|column| Cell::from(column.0))
            .collect(),
    );
    let table = Table::new(rows, widths)
        .header(Row::new(headers).style(theme.muted.add_modifier(Modifier::BOLD)))
        .column_spacing(1);
    let table_inner = Rect::new(
        table_area.x + 1,
        table_area.y + 1,
        table_area.width.saturating_sub(2),
        table_area.height.saturating_sub(2),
    );
    frame.render_widget(table, table_inner);
    // Never events out of sight without a word: how many of those kept show.
    let rows = usize::from(events_area.height.saturating_sub(2));
    let shown = if cluster.events.len() > rows {
        format!(
            "newest {rows} of {} (goliath members --json lists all) · ",
            cluster.events.len()
        )
    } else {
        String::new()
    };
    let events_block = pane(
        app,
        format!(
            " Membership events · {shown}{} {:.1} marks degraded (*) · {} packets in, {} out ",
            if app.options.glyphs.ascii {
                "phi >="
            } else {
                "φ ≥"
            },
            cluster.phi_threshold,
            cluster.stats.packets_received,
            cluster.stats.packets_sent
        ),
        false,
    );
    let events_inner = events_block.inner(events_area);
    frame.render_widget(events_block, events_area);
    let lines: Vec<Line> = cluster
        .events
        .iter()
        .rev()
        .take(usize::from(events_inner.height))
        .map(|event| {
            let age = format!(
                "{:>9} ago  ",
                short_us(now.saturating_sub(event.at_unix_us))
            );
            // A long event (a restart names two generations) ends in `…` where it is cut.
            let room = usize::from(events_inner.width).saturating_sub(age.chars().count());
            Line::from(vec![
                Span::styled(age, theme.muted),
                Span::styled(
                    crate::runtime::units::cut_to_width(&event.text, room),
                    theme.text,
                ),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), events_inner);
}

fn draw_log_pane(frame: &mut Frame, app: &App, area: Rect, focused: bool, hits: &mut HitMap) {
    let block = pane_block(app, log_title(app), focused);
    hits.log = Some(area);
    let widget = log_widget(app, "%H:%M:%S", false, false).block(block);
    frame.render_widget(widget, area);
}

/// tui-logger's log pane in the theme, on the console's log state, its records laid out by
/// [`PaneFormatter`] (wrapped between words): the Overview's Log pane and the Logs tab
/// differ only in block, timestamp, level and target columns.
fn log_widget<'a>(
    app: &'a App,
    timestamp: &'static str,
    long_level: bool,
    target: bool,
) -> TuiLoggerWidget<'a> {
    let theme = &app.options.theme;
    TuiLoggerWidget::default()
        .style(theme.text)
        .formatter(Box::new(PaneFormatter {
            timestamp,
            long_level,
            target,
            styles: [
                theme.error,
                theme.warning,
                theme.text,
                theme.muted,
                theme.muted,
            ],
        }))
        .state(&app.log_state)
}

/// The WAL's figures window in seconds as `goliath status` says it, to a tenth (`5s`, `4.8s`
/// while the node is younger than the window).
fn window_seconds(window_us: u64) -> String {
    let tenths = (window_us + 50_000) / 100_000;
    if tenths.is_multiple_of(10) {
        format!("{}s", tenths / 10)
    } else {
        format!("{}.{}s", tenths / 10, tenths % 10)
    }
}

fn log_title(app: &App) -> String {
    let mut title = match &app.options.remote {
        Some(_) => "Log (this console; the node logs on its own host)".to_string(),
        None => "Log".to_string(),
    };
    if app.log_focused {
        // At the levels lit for it: with all of them dark the pane is empty, and the title
        // is all that says why (tui-logger does not tell which levels a target shows).
        title.push_str(" · the selected target only, at its lit levels (→ shows more, f all)");
    }
    if app.log_paged {
        title.push_str(" · paged back, new lines not shown (esc follows)");
    }
    title
}

fn draw_logs_tab(frame: &mut Frame, app: &App, area: Rect, hits: &mut HitMap) {
    let theme = &app.options.theme;
    hits.log = Some(area);
    // tui-logger's smart widget titles the log with a rate taken between its first and last
    // kept lines, which stays at a startup burst's rate on an idle node: the two panes it
    // combines are drawn here instead, without that figure.
    let log_area = if app.log_targets_hidden {
        area
    } else {
        let [targets_area, log_area] = Layout::horizontal([
            Constraint::Length(LOG_TARGETS_WIDTH.min(area.width / 3)),
            Constraint::Min(10),
        ])
        .areas(area);
        // tui-logger marks each target's levels with their initials, lit where shown, then
        // writes `:` and the target: the title starts right after the corner, so its letters
        // stand over the rows' own.
        let targets_block = Block::default()
            .title("EWIDT:target · levels lit: shown ")
            .title_bottom(" ←→ shown · +- kept · t hides ")
            .borders(Borders::ALL)
            .border_set(app.options.glyphs.border)
            .border_style(theme.focus_border);
        let targets = TuiLoggerTargetWidget::default()
            .block(targets_block.clone())
            .style(theme.text)
            .highlight_style(theme.selected)
            .style_show(theme.text)
            // Kept but not shown: dim; not kept at all: no letter (tui-logger's blank).
            .style_hide(theme.muted)
            .state(&app.log_state);
        frame.render_widget(targets, targets_area);
        // tui-logger writes a target longer than the pane over its right border; the border
        // is drawn again on top (a block draws only its edges and title).
        frame.render_widget(targets_block, targets_area);
        log_area
    };
    let log = log_widget(app, "%H:%M:%S%.3f", true, true).block(
        Block::default()
            .title(format!(" {} ", log_title(app)))
            .borders(Borders::ALL)
            .border_set(app.options.glyphs.border)
            .border_style(theme.focus_border),
    );
    frame.render_widget(log, log_area);
}

fn draw_tasks_tab(frame: &mut Frame, app: &App, area: Rect, hits: &mut HitMap) {
    if let Some(detail) = &app.detail {
        draw_detail(frame, app, detail, area, hits);
        return;
    }
    let rows = app.task_rows();
    let total = app.view().snapshot.as_ref().map_or(0, |s| s.tasks.len());
    let (column, descending) = app.sort;
    // The node lists the newest tasks only (console.task_limit): a filter searches those,
    // and "0 of 1000" must not read as "none on the node". The counts are since this start,
    // so after a restart only a full list says the history holds more.
    let listed = listed_tasks(app);
    // Each part long and short; the short forms when the long ones do not fit, then cut
    // with a mark. The sort comes before the note on unlisted tasks, so a narrow window
    // keeps it.
    let counted = format!("Tasks · {}", listed.count(rows.len(), total));
    let mut parts: Vec<(String, String)> = vec![match listed {
        Listed::All => (counted.clone(), counted),
        Listed::Newest => (
            counted,
            format!("Tasks · {} of {} newest", rows.len(), total),
        ),
        // Tasks in flight fill the list: the finished ones, newer or not, are not in it.
        Listed::InFlightOnly => (format!("{counted} (no finished task listed)"), counted),
    }];
    if !app.filter.is_empty() {
        let part = format!(" · filter \"{}\"", app.filter);
        parts.push((part.clone(), part));
    }
    let arrow = if descending { "▼" } else { "▲" };
    let sort = format!(" · by {} {arrow}", column.title().to_lowercase());
    parts.push((sort.clone(), sort));
    // Sorted by a column a narrow table leaves out (chosen in a wider window): say so, or
    // the order looks like none.
    if area.width.saturating_sub(2) < NARROW_TABLE_WIDTH && NARROW_HIDDEN.contains(&column) {
        parts.push((" (not shown at this width)".into(), " (hidden)".into()));
    }
    // The node sends every running task and the newest others, up to console.task_limit:
    // say how many in flight that leaves out, so a filter's "0" is not read as "none".
    if let Some(unlisted) = unlisted_in_flight(app) {
        parts.push((
            format!(" · {unlisted} more in flight not listed (console.task_limit)"),
            format!(" · {unlisted} more in flight"),
        ));
    }
    // The room inside the corners and the title's padding.
    let room = usize::from(area.width.saturating_sub(4));
    let long: String = parts.iter().map(|(long, _)| long.as_str()).collect();
    let title = if long.chars().count() <= room {
        long
    } else {
        let short: String = parts.iter().map(|(_, short)| short.as_str()).collect();
        crate::runtime::units::cut_to_width(&short, room)
    };
    let block = pane_block(app, title, true);
    draw_task_table(frame, app, &rows, area, block, false, hits);
}

/// Tasks in flight the node did not send (the list holds every running task and the newest
/// others, up to console.task_limit), if any.
fn unlisted_in_flight(app: &App) -> Option<u64> {
    let snapshot = app.view().snapshot.as_ref()?;
    let listed = snapshot
        .tasks
        .iter()
        .filter(|t| !t.state.is_finished())
        .count() as u64;
    let in_flight = snapshot.counts.queued + snapshot.counts.running;
    (in_flight > listed).then(|| in_flight - listed)
}

fn listed_tasks(app: &App) -> Listed {
    app.view()
        .snapshot
        .as_ref()
        .map_or(Listed::All, |snapshot| {
            Listed::of(snapshot, app.options.task_limit)
        })
}

/// Below this many columns inside its borders, the full task table leaves out
/// [`NARROW_HIDDEN`] (see [`narrow_columns`]).
const NARROW_TABLE_WIDTH: u16 = 100;

/// The full task table's columns without KIND and ATTEMPT when `narrow`: the spec names
/// its kind, the detail view its attempt, and at 80 columns SPEC kept only 10 without this.
fn narrow_columns<T>(columns: Vec<T>, narrow: bool) -> Vec<T> {
    if !narrow {
        return columns;
    }
    columns
        .into_iter()
        .enumerate()
        // The table's columns are SortColumn::ALL's, in order (SPEC last).
        .filter(|(index, _)| {
            SortColumn::ALL
                .get(*index)
                .is_none_or(|column| !NARROW_HIDDEN.contains(column))
        })
        .map(|(_, column)| column)
        .collect()
}

/// A task table; `compact` is the Overview's narrower form.
/// The task table; `compact` (the Overview pane) leaves out columns.
fn draw_task_table(
    frame: &mut Frame,
    app: &App,
    rows: &[&TaskInfo],
    area: Rect,
    block: Block,
    compact: bool,
    hits: &mut HitMap,
) {
    // The Overview pane, unless focused (being navigated), shows the top of the list, not
    // wherever the Tasks tab's selection scrolled it.
    let fixed_offset = (compact && app.focus != Pane::Tasks).then_some(0);
    let theme = &app.options.theme;
    let glyphs = &app.options.glyphs;
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    let now = app.node_now_us();
    let sampled_now = app.sampled_now_us();
    let (sort_column, descending) = app.sort;
    let arrow = if descending { "▼" } else { "▲" };
    let header_cell = |column: SortColumn, label: &'static str| {
        if column == sort_column && !compact {
            Cell::from(format!("{label}{arrow}"))
        } else {
            Cell::from(label)
        }
    };
    let rows_area = Rect::new(inner.x, inner.y + 1, inner.width, inner.height - 1);
    let narrow = inner.width < NARROW_TABLE_WIDTH;
    if !compact {
        hits.narrow_tasks = narrow;
    }
    let page = usize::from(rows_area.height);
    let selected = app.selected_index(rows);
    let offset = match (fixed_offset, selected) {
        (Some(offset), _) => offset,
        (None, Some(index)) if index < app.task_offset => index,
        (None, Some(index)) if index >= app.task_offset + page => index + 1 - page,
        _ => app.task_offset.min(rows.len().saturating_sub(page)),
    };
    if app.tab == Tab::Tasks || app.focus == Pane::Tasks {
        hits.task_rows = Some(rows_area);
        hits.task_offset = offset;
        hits.task_ids = rows.iter().skip(offset).take(page).map(|t| t.id).collect();
    }
    // As wide as the longest id listed: a cut id reads as another task's.
    let id_digits = rows
        .iter()
        .map(|task| task.id.0)
        .max()
        .map_or(1, |id| id.to_string().len());
    let id_width = u16::try_from(id_digits).unwrap_or(20);
    let (header, widths): (Vec<Cell>, Vec<Constraint>) = if compact {
        (
            vec![
                header_cell(SortColumn::Id, "ID"),
                Cell::from("ST"),
                Cell::from("SPEC"),
                Cell::from("W"),
                Cell::from("TIME"),
            ],
            vec![
                // The spec fills what is left, so the id is kept whole before it.
                Constraint::Length(id_width.max(7)),
                Constraint::Length(2),
                Constraint::Fill(1),
                Constraint::Length(4),
                Constraint::Length(8),
            ],
        )
    } else {
        (
            narrow_columns(
                vec![
                    header_cell(SortColumn::Id, "ID"),
                    header_cell(SortColumn::State, "STATE"),
                    header_cell(SortColumn::Kind, "KIND"),
                    header_cell(SortColumn::Worker, "WORKER"),
                    header_cell(SortColumn::Started, "STARTED"),
                    header_cell(SortColumn::Duration, "DURATION"),
                    header_cell(SortColumn::Attempt, "ATTEMPT"),
                    header_cell(SortColumn::Spec, "SPEC"),
                ],
                narrow,
            ),
            narrow_columns(
                vec![
                    Constraint::Length(id_width.max(8)),
                    Constraint::Length(12),
                    Constraint::Length(7),
                    Constraint::Length(7),
                    Constraint::Length(11),
                    Constraint::Length(9),
                    Constraint::Length(8),
                    Constraint::Min(10),
                ],
                narrow,
            ),
        )
    };
    // The width the table gives SPEC (its columns laid out as the table lays them out), so a
    // spec cut short ends in `…` rather than at the column's edge as if it ended there.
    let spec_index = if compact { 2 } else { widths.len() - 1 };
    let spec_width = Layout::horizontal(widths.clone())
        .flex(ratatui::layout::Flex::Start)
        .spacing(1)
        .split(Rect::new(0, 0, inner.width, 1))
        .get(spec_index)
        .map_or(usize::MAX, |column| usize::from(column.width));
    let spec_cell = |task: &TaskInfo| {
        Cell::from(crate::runtime::units::cut_to_width(
            &printable(&task.spec, false),
            spec_width,
        ))
    };
    let table_rows = rows
        .iter()
        .enumerate()
        .skip(offset)
        .take(page)
        .map(|(index, task)| {
            // On the selected row the state takes the row's colours: its own colour may be
            // the selection's background (running is cyan, the dark theme's selection too).
            let state_style = if Some(index) == selected {
                theme.selected
            } else {
                theme.state(task.state)
            };
            let state_cell = Cell::from(Line::from(vec![
                Span::styled(glyphs.state(task.state), state_style),
                Span::raw(" "),
                Span::styled(
                    if compact {
                        String::new()
                    } else {
                        state_label(task.state).to_string()
                    },
                    state_style,
                ),
            ]));
            let worker = task
                .worker
                .map_or_else(|| "-".to_string(), |w| format!("w{w}"));
            let duration = task
                .duration_us(sampled_now)
                .map_or_else(|| "-".to_string(), short_us);
            let style = if Some(index) == selected {
                theme.selected
            } else {
                theme.text
            };
            let cells = if compact {
                vec![
                    Cell::from(task.id.to_string()),
                    state_cell,
                    spec_cell(task),
                    Cell::from(worker),
                    Cell::from(duration),
                ]
            } else {
                let started = task.started_unix_us.map_or_else(
                    || "-".to_string(),
                    |at| format!("{} ago", short_us(now.saturating_sub(at))),
                );
                narrow_columns(
                    vec![
                        Cell::from(task.id.to_string()),
                        state_cell,
                        Cell::from(task.kind.clone()),
                        Cell::from(worker),
                        Cell::from(started),
                        Cell::from(duration),
                        Cell::from(task.attempt.to_string()),
                        spec_cell(task),
                    ],
                    narrow,
                )
            };
            Row::new(cells).style(style)
        });
    let table = Table::new(table_rows, widths)
        .header(Row::new(header).style(theme.muted.add_modifier(Modifier::BOLD)))
        .column_spacing(1);
    frame.render_widget(table, inner);
    // Rows out of view, on the bottom border: tasks that arrive above a selection kept
    // further down would otherwise come in unseen.
    let below = rows.len().saturating_sub(offset + page);
    if (offset > 0 || below > 0) && area.height > inner.height && area.width > 4 {
        let home = app.keymap.first_key(Action::Top);
        let mut parts = Vec::new();
        if offset > 0 {
            parts.push(match &home {
                Some(key) => format!("↑ {offset} above ({key}: top)"),
                None => format!("↑ {offset} above"),
            });
        }
        if below > 0 {
            parts.push(format!("↓ {below} below"));
        }
        let text = format!(" {} ", parts.join(" · "));
        let room = usize::from(area.width - 4);
        let text = crate::runtime::units::cut_to_width(&text, room);
        let border = Rect::new(area.x + 2, area.y + area.height - 1, area.width - 4, 1);
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(text, theme.muted)).right_aligned()),
            border,
        );
    }
    if rows.is_empty() {
        let message = if app.view().snapshot.is_none() {
            match &app.link {
                // Why is on the header's right; the error itself on the Logs tab.
                Link::Down {
                    refused: true,
                    error,
                    ..
                } => {
                    // The error names who refused, or that no node answers there at all.
                    format!("cannot attach: {error}")
                }
                Link::Down { error, .. } => format!("no connection to the node: {error}"),
                _ => "waiting for the node…".to_string(),
            }
        } else if !app.filter.is_empty()
            && let Some(unlisted) = unlisted_in_flight(app)
        {
            format!(
                "no task listed matches \"{}\", but {unlisted} more in flight are not listed (console.task_limit), nor finished ones: `goliath tasks --state STATE` lists them all",
                app.filter
            )
        } else if !app.filter.is_empty() && listed_tasks(app) == Listed::InFlightOnly {
            format!(
                "no task in flight matches \"{}\": finished tasks are not listed while tasks in flight fill console.task_limit (goliath tasks lists them)",
                app.filter
            )
        } else if !app.filter.is_empty() && app.tab == Tab::Tasks {
            format!("no task matches \"{}\" (esc clears the filter)", app.filter)
        } else if !app.filter.is_empty() {
            format!(
                "no task matches \"{}\" (the Tasks tab's filter; esc there clears it)",
                app.filter
            )
        } else if app.allows(Action::Submit) {
            format!(
                "no tasks yet: press {} to submit one (e.g. spin 300ms x20)",
                app.keymap
                    .first_key(Action::Submit)
                    .unwrap_or_else(|| ":".into())
            )
        } else {
            "no tasks yet".to_string()
        };
        // Cut with a mark on a narrow pane: "(e.g" read as the whole hint.
        // Over the empty rows, wrapped (a node's refusal says why at length); cut with a
        // mark only where even they do not hold it.
        let width = usize::from(rows_area.width.max(1));
        let paragraph =
            Paragraph::new(Span::styled(message.clone(), theme.muted)).wrap(Wrap { trim: true });
        if wrapped_rows(&paragraph, rows_area.width.max(1)) <= usize::from(rows_area.height) {
            frame.render_widget(paragraph, rows_area);
        } else {
            let message = crate::runtime::units::cut_to_width(&message, width);
            frame.render_widget(
                Paragraph::new(Span::styled(message, theme.muted)),
                Rect::new(rows_area.x, rows_area.y, rows_area.width, 1),
            );
        }
    }
}

fn draw_detail(
    frame: &mut Frame,
    app: &App,
    detail: &super::state::Detail,
    area: Rect,
    hits: &mut HitMap,
) {
    let theme = &app.options.theme;
    let glyphs = &app.options.glyphs;
    let title = format!("Task {} · esc back · j/k scroll", detail.id);
    let block = pane_block(app, title, true);
    let inner = block.inner(area);
    hits.detail = Some(inner);
    let now = app.node_now_us();
    let mut lines: Vec<Line> = Vec::new();
    let field = |name: &str, value: String, style: Style| {
        Line::from(vec![
            Span::styled(format!("{name:<11}"), theme.muted),
            Span::styled(value, style),
        ])
    };
    if let Some(error) = &detail.error {
        lines.push(Line::styled(
            format!("could not refresh: {error}"),
            theme.error,
        ));
    }
    match &detail.info {
        None => lines.push(Line::styled("loading…", theme.muted)),
        Some(task) => {
            let state_style = theme.state(task.state);
            lines.push(field(
                "state",
                format!("{} {}", glyphs.state(task.state), state_label(task.state)),
                state_style,
            ));
            // A spec longer than the pane goes on under itself (cut by columns, not at
            // words: its spaces are part of it), not at the pane's left edge.
            let spec = printable(&task.spec, false);
            let room = usize::from(inner.width).saturating_sub(11).max(1);
            for (index, piece) in pieces_of_width(&spec, room).into_iter().enumerate() {
                lines.push(field(
                    if index == 0 { "spec" } else { "" },
                    piece.to_string(),
                    theme.text,
                ));
            }
            lines.push(field("kind", task.kind.to_string(), theme.text));
            lines.push(field(
                "worker",
                task.worker.map_or_else(|| "-".into(), |w| format!("w{w}")),
                theme.text,
            ));
            lines.push(field("attempt", task.attempt.to_string(), theme.text));
            let ago = |at: u64| format!("{} ago", short_us(now.saturating_sub(at)));
            lines.push(field("submitted", ago(task.submitted_unix_us), theme.text));
            if let Some(started) = task.started_unix_us {
                lines.push(field(
                    "started",
                    {
                        let since = short_us(started.saturating_sub(task.submitted_unix_us));
                        // Run 2 on: earlier runs and restarts, not only a wait in the queue.
                        if task.attempt > 1 {
                            format!(
                                "{} (run {}, {since} after it was accepted)",
                                ago(started),
                                task.attempt
                            )
                        } else {
                            format!("{} (waited {since})", ago(started))
                        }
                    },
                    theme.text,
                ));
            }
            if let Some(finished) = task.finished_unix_us {
                lines.push(field("finished", ago(finished), theme.text));
            }
            if let Some(duration) = task.duration_us(app.sampled_now_us()) {
                lines.push(field(
                    "duration",
                    format!(
                        "{} (on workers {})",
                        short_us(duration),
                        short_us(task.run_us)
                    ),
                    theme.text,
                ));
            }
            if let Some(error) = &task.error {
                lines.push(field(
                    "error",
                    printable(error, false).into_owned(),
                    theme.error,
                ));
            }
            match &task.output {
                None => {}
                Some(TaskOutput::None) => {
                    lines.push(field("outcome", "no value".into(), theme.muted))
                }
                Some(TaskOutput::Number(value)) => {
                    lines.push(field("outcome", value.to_string(), theme.ok))
                }
                Some(TaskOutput::Text(text)) => lines.push(field(
                    "outcome",
                    printable(text, false).into_owned(),
                    theme.ok,
                )),
                Some(TaskOutput::Process(process)) => {
                    let status = match (process.exit_code, process.signal) {
                        (Some(code), _) => format!("exit code {code}"),
                        (None, Some(signal)) => format!("killed by signal {signal}"),
                        (None, None) => "no exit status".to_string(),
                    };
                    lines.push(field("outcome", status, theme.text));
                    for (name, text, cut) in [
                        ("stdout", &process.stdout, process.stdout_truncated),
                        ("stderr", &process.stderr, process.stderr_truncated),
                    ] {
                        let heading = if cut > 0 {
                            format!("{name} ({cut} more bytes not kept)")
                        } else {
                            name.to_string()
                        };
                        lines.push(Line::styled(heading, theme.title));
                        if text.is_empty() {
                            lines.push(Line::styled("  (empty)", theme.muted));
                            continue;
                        }
                        // Split at line feeds only: a carriage return is shown (as ␍), as the
                        // CLI shows it, not dropped with the line feed after it.
                        // Cut to the pane's width here, each piece under the indent (the
                        // paragraph's own wrapping put the rest of a long line at column 0,
                        // level with the stdout/stderr headings).
                        let room = usize::from(inner.width.saturating_sub(2)).max(1);
                        for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
                            let shown = printable(&expand_tabs(line), false).into_owned();
                            for piece in pieces_of_width(&shown, room) {
                                lines.push(Line::styled(format!("  {piece}"), theme.text));
                            }
                        }
                    }
                }
            }
        }
    }
    // Scrolling counts wrapped rows: a long output without line breaks is one line of many
    // rows, and counting lines left all but its first screen out of reach.
    let paragraph = Paragraph::new(lines).wrap(Wrap { trim: false });
    let rows = wrapped_rows(&paragraph, inner.width);
    let max_scroll = u16::try_from(rows)
        .unwrap_or(u16::MAX)
        .saturating_sub(inner.height);
    hits.detail_scroll_max = max_scroll;
    let paragraph = paragraph
        .block(block)
        .scroll((detail.scroll.min(max_scroll), 0));
    frame.render_widget(paragraph, area);
}

fn draw_overlay(frame: &mut Frame, app: &App, overlay: &Overlay, area: Rect, hits: &mut HitMap) {
    let theme = &app.options.theme;
    match overlay {
        Overlay::Help { scroll } => hits.help_scroll_max = draw_help(frame, app, *scroll, area),
        Overlay::Confirm { id, spec, state } => {
            let rect = centered(area, 60, 6);
            frame.render_widget(Clear, rect);
            // The second line: the task's text, or what becomes of a cancel sent now. A node
            // that is only slow to answer still gets it (the connection holds it until then).
            let link_note = match &app.link {
                Link::Up => None,
                Link::Unanswered { .. } => {
                    Some("the node is not answering: it gets the cancel when it does")
                }
                Link::Connecting | Link::Down { .. } => {
                    Some("not connected to the node: the cancel cannot be sent now")
                }
            };
            let lines = if state.is_finished() {
                // It ended while the question was open.
                vec![
                    Line::from(vec![
                        Span::styled("Task ", theme.text),
                        Span::styled(id.to_string(), theme.title),
                        Span::styled(
                            format!(" ended ({}): nothing to cancel", state_label(*state)),
                            theme.text,
                        ),
                    ]),
                    Line::styled(printable(spec, false).into_owned(), theme.muted),
                    Line::raw(""),
                    Line::from(vec![
                        Span::styled("esc", theme.key),
                        Span::styled(": close", theme.text),
                    ]),
                ]
            } else {
                vec![
                    Line::from(vec![
                        Span::styled("Cancel task ", theme.text),
                        Span::styled(id.to_string(), theme.title),
                        Span::styled(format!(" ({})?", state_label(*state)), theme.text),
                    ]),
                    match link_note {
                        None => Line::styled(printable(spec, false).into_owned(), theme.muted),
                        Some(note) => Line::styled(note, theme.warning),
                    },
                    Line::raw(""),
                    Line::from(vec![
                        Span::styled("y", theme.key),
                        Span::styled(" / enter: cancel it    ", theme.text),
                        Span::styled("n", theme.key),
                        Span::styled(" / esc: keep it", theme.text),
                    ]),
                ]
            };
            frame.render_widget(
                Paragraph::new(lines).block(pane(app, " Confirm ", true)),
                rect,
            );
        }
        Overlay::Submit(input) => {
            // Two rows under the input for the hint or an error, more for a long error (a
            // node's refusal says what to do), up to half the screen.
            let error_rows = input.error.as_ref().map_or(2, |error| {
                let inner_width = area.width.saturating_sub(2).max(1);
                let rows = wrapped_rows(
                    &Paragraph::new(error.as_str()).wrap(Wrap { trim: true }),
                    inner_width,
                );
                u16::try_from(rows).unwrap_or(u16::MAX).max(2)
            });
            let rect = bottom_box(area, (3 + error_rows).min(area.height / 2).max(5));
            frame.render_widget(Clear, rect);
            let hint = Line::styled(
                "e.g. spin 300ms x20 · fib 35 · sleep 2s · primes 1000000 · exec -- cmd args · timeout=5s · ↑/↓ history · enter submit · esc close",
                theme.muted,
            );
            let under = match &input.error {
                Some(error) => Line::styled(error.clone(), theme.error),
                None if input.sending => Line::styled(
                    "sending… waiting for the node's answer (esc closes; the answer then goes to the status line)",
                    theme.muted,
                ),
                None => hint,
            };
            draw_input(frame, app, " Submit a task ", "> ", input, under, rect);
        }
        Overlay::Palette(input) => {
            let rect = bottom_box(area, 5);
            frame.render_widget(Clear, rect);
            let under = match &input.error {
                Some(error) => Line::styled(error.clone(), theme.error),
                None => Line::styled(app.palette_commands(" · "), theme.muted),
            };
            draw_input(frame, app, " Command ", ": ", input, under, rect);
        }
        Overlay::Filter(input) => {
            let rect = bottom_box(area, 5);
            frame.render_widget(Clear, rect);
            let under = Line::styled(
                "matches id, state and spec · !text hides matches · enter keep · esc clear",
                theme.muted,
            );
            draw_input(frame, app, " Filter tasks ", "/ ", input, under, rect);
        }
    }
}

fn draw_input(
    frame: &mut Frame,
    app: &App,
    title: &str,
    prompt: &str,
    input: &super::state::LineInput,
    under: Line,
    rect: Rect,
) {
    let theme = &app.options.theme;
    let block = pane(app, title.to_string(), true);
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let prompt_width =
        u16::try_from(unicode_width::UnicodeWidthStr::width(prompt)).unwrap_or(u16::MAX);
    let room = usize::from(inner.width.saturating_sub(prompt_width));
    let (shown, cursor_column) = input_window(&input.text, input.cursor, room);
    let line = Line::from(vec![
        Span::styled(prompt.to_string(), theme.key),
        Span::styled(shown, theme.text),
    ]);
    frame.render_widget(
        Paragraph::new(line),
        Rect::new(inner.x, inner.y, inner.width, 1),
    );
    if inner.height > 1 {
        frame.render_widget(
            Paragraph::new(under).wrap(Wrap { trim: true }),
            Rect::new(inner.x, inner.y + 1, inner.width, inner.height - 1),
        );
    }
    let cursor_x = inner
        .x
        .saturating_add(prompt_width)
        .saturating_add(u16::try_from(cursor_column).unwrap_or(u16::MAX));
    frame.set_cursor_position((
        cursor_x.min(inner.x + inner.width.saturating_sub(1)),
        inner.y,
    ));
}

/// The part of a one-line input's `text` to draw in `room` terminal columns so that the
/// cursor (at character `cursor`) is in sight, and the column the cursor is drawn at.
/// Columns are display widths (a CJK character or an emoji takes two). A line scrolled
/// sideways starts with `…`; what does not fit on the right is cut by the drawing.
fn input_window(text: &str, cursor: usize, room: usize) -> (String, usize) {
    use unicode_width::UnicodeWidthChar;
    let chars: Vec<char> = text.chars().collect();
    let cursor = cursor.min(chars.len());
    let width = |c: char| c.width().unwrap_or(0);
    let before: usize = chars[..cursor].iter().map(|&c| width(c)).sum();
    // One column stays free for the cursor itself.
    if before < room {
        return (text.to_string(), before);
    }
    // Scrolled: the marker and the cursor take a column each. The cursor goes two thirds of
    // the way across, so some of what follows it is in sight too, or further right when the
    // rest of the line fits after it.
    let after: usize = chars[cursor..].iter().map(|&c| width(c)).sum();
    let target = room
        .saturating_sub(1 + after)
        .max(room * 2 / 3)
        .min(room.saturating_sub(1));
    let mut start = cursor;
    let mut used = 2;
    while start > 0 && used + width(chars[start - 1]) <= target + 1 {
        start -= 1;
        used += width(chars[start]);
    }
    let shown: String = std::iter::once('…')
        .chain(chars[start..].iter().copied())
        .collect();
    (shown, used - 1)
}

/// Draws the help; returns the furthest it can scroll.
fn draw_help(frame: &mut Frame, app: &App, scroll: u16, area: Rect) -> u16 {
    let theme = &app.options.theme;
    let rect = centered(
        area,
        area.width.saturating_sub(8).min(96),
        area.height.saturating_sub(4),
    );
    frame.render_widget(Clear, rect);
    let inner_width = rect.width.saturating_sub(2);
    let mut lines: Vec<Line> = Vec::new();
    for group in [Group::General, Group::Navigation, Group::Tasks, Group::Logs] {
        let actions: Vec<Action> = Action::ALL
            .iter()
            .copied()
            .filter(|a| a.group() == group && app.allows(*a))
            .collect();
        if actions.is_empty() {
            continue;
        }
        lines.push(Line::styled(group.title(), theme.title));
        for action in actions {
            let mut keys = app.keymap.keys_for(action);
            // Ctrl-C quits whatever `quit` is bound to, unless bound to another action.
            if action == Action::Quit && !keys.iter().any(|key| key == "ctrl-c") {
                use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
                let ctrl_c = crate::tui::keys::KeyChord::from_event(&KeyEvent::new(
                    KeyCode::Char('c'),
                    KeyModifiers::CONTROL,
                ));
                if app.keymap.resolve(&[], ctrl_c) == crate::tui::keys::Resolved::Unbound {
                    keys.push("ctrl-c".to_string());
                }
            }
            let keys = if keys.is_empty() {
                "(unbound)".to_string()
            } else {
                keys.join(", ")
            };
            // The arrows by name where the screen draws no arrows (`?` is itself a key).
            let keys = if app.options.glyphs.ascii {
                keys.replace('↑', "up")
                    .replace('↓', "down")
                    .replace('←', "left")
                    .replace('→', "right")
            } else {
                keys
            };
            let description = match action {
                Action::Palette if !app.allows(Action::Submit) => {
                    format!("command palette: {}", app.palette_commands(", "))
                }
                // Said for this console: attached, quitting leaves the node running.
                Action::Quit if app.options.remote.is_some() => {
                    "quit (the attached node keeps running)".to_string()
                }
                Action::Quit => "quit and stop this console's node".to_string(),
                _ => action.description().to_string(),
            };
            // A description longer than its column goes on under itself, not at the left
            // edge under the keys.
            let head = format!("  {keys:<18}");
            let name = format!("{:<17}", action.name());
            let indent = head.chars().count() + name.chars().count();
            let pieces = words_to_width(
                &description,
                usize::from(inner_width).saturating_sub(indent),
            );
            for (index, piece) in pieces.into_iter().enumerate() {
                lines.push(if index == 0 {
                    Line::from(vec![
                        Span::styled(head.clone(), theme.key),
                        Span::styled(name.clone(), theme.muted),
                        Span::styled(piece, theme.text),
                    ])
                } else {
                    Line::styled(format!("{}{piece}", " ".repeat(indent)), theme.text)
                });
            }
        }
        lines.push(Line::raw(""));
    }
    lines.push(Line::styled("In a prompt", theme.title));
    for piece in words_to_width(
        "enter accept · esc close · ←/→ home end move · backspace/delete · ctrl-u delete to the start · ctrl-w delete word · ↑/↓ history",
        usize::from(inner_width).saturating_sub(2),
    ) {
        lines.push(Line::styled(format!("  {piece}"), theme.text));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Keys are rebound in [console.keys] of the config (goliath config default shows them).",
        theme.muted,
    ));
    if !app.options.mouse {
        lines.push(Line::styled(
            "Mouse is off (--no-mouse or console.mouse = false).",
            theme.muted,
        ));
    } else {
        lines.push(Line::styled(
            "Mouse: click a tab, a pane or a row; the wheel scrolls.",
            theme.muted,
        ));
    }
    let title = if app.options.readonly {
        " Help · read-only console · esc closes "
    } else {
        " Help · esc closes · j/k scroll "
    };
    let inner_height = rect.height.saturating_sub(2);
    // Wrapped, not cut: at 80 columns many descriptions are longer than the box. Scrolling
    // counts the wrapped rows.
    let paragraph = Paragraph::new(lines).wrap(Wrap { trim: false });
    let rows = wrapped_rows(&paragraph, rect.width.saturating_sub(2));
    let max_scroll = u16::try_from(rows)
        .unwrap_or(u16::MAX)
        .saturating_sub(inner_height);
    frame.render_widget(
        paragraph
            .block(pane(app, title, true))
            .scroll((scroll.min(max_scroll), 0)),
        rect,
    );
    max_scroll
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}

fn bottom_box(area: Rect, height: u16) -> Rect {
    let height = height.min(area.height);
    Rect::new(
        area.x,
        area.y + area.height - height - 1,
        area.width,
        height,
    )
}

/// The label of a state in tables.
pub fn state_label(state: TaskState) -> &'static str {
    match state {
        TaskState::TimedOut => "timed out",
        other => other.as_str(),
    }
}

/// Microseconds for people.
fn short_us(us: u64) -> String {
    ShortDuration(Duration::from_micros(us)).to_string()
}

/// An uptime: `42s`, `5m07s`, `3h12m`, `2d04h`.
fn uptime_text(uptime: Duration) -> String {
    let seconds = uptime.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d{:02}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

/// A rate for people: `0`, `12.5`, `830`, `12.3k`, `4.1M`.
fn rate_text(rate: f64) -> String {
    if rate < 0.05 {
        "0".to_string()
    } else if rate < 100.0 {
        format!("{rate:.1}")
    } else if rate < 10_000.0 {
        format!("{rate:.0}")
    } else if rate < 10_000_000.0 {
        format!("{:.1}k", rate / 1_000.0)
    } else {
        format!("{:.1}M", rate / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    //! Whole screens rendered into a test backend and compared with reviewed snapshots
    //! (`src/tui/snapshots/`). The samples are fixed, so times and ids are stable.
    use super::*;
    use crate::runtime::Kinds;
    use crate::runtime::{ProcessOutput, TaskId};
    use crate::tui::keys::Keymap;
    use crate::tui::state::tests::{options, snapshot, status_text, task};
    use crate::tui::state::{Detail, LineInput};
    use crate::tui::theme::{Glyphs, Theme, ThemeName};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::style::Color;

    fn tasks(count: u64) -> Vec<TaskInfo> {
        (1..=count)
            .rev()
            .map(|id| {
                let state = TaskState::ALL[(id % 6) as usize];
                let spec = match id % 4 {
                    0 => "spin 300ms".to_string(),
                    1 => format!("fib {}", 20 + id % 10),
                    2 => "sleep 2s".to_string(),
                    _ => "exec -- ls -l /tmp".to_string(),
                };
                task(id, state, &spec)
            })
            .collect()
    }

    /// An app that asks the node for `task_limit` tasks (`console.task_limit`), no sample yet.
    fn app_listing(task_limit: usize) -> App {
        App::new(
            crate::tui::state::Options {
                task_limit,
                ..options()
            },
            Keymap::default(),
            Kinds::new(),
        )
    }

    fn app_with(workers: usize, task_count: u64) -> App {
        let mut app = App::new(options(), Keymap::default(), Kinds::new());
        app.ingest(snapshot(workers, tasks(task_count), 10));
        app.ingest(snapshot(workers, tasks(task_count), 12));
        app
    }

    fn draw(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let mut hits = HitMap::default();
        terminal.draw(|frame| hits = render(frame, app)).unwrap();
        app.hits = hits;
        terminal
    }

    #[test]
    fn overview_80x24() {
        let mut app = app_with(2, 12);
        insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
    }

    #[test]
    fn the_throughput_pane_says_what_it_will_show_until_a_task_finishes() {
        let mut app = App::new(options(), Keymap::default(), Kinds::new());
        let counts = snapshot(2, Vec::new(), 10).counts;
        for second in [10, 11, 12] {
            // Nothing finishes between samples.
            let mut sample = snapshot(2, Vec::new(), second);
            sample.counts = counts;
            app.ingest(sample);
        }
        assert!(
            !app.view().series.tasks_per_s.is_empty(),
            "samples came in, all of them zero"
        );
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(
            text.contains("finished tasks per second appear here"),
            "{text}"
        );
    }

    #[test]
    fn tasks_that_arrive_above_the_selection_out_of_view_are_counted_on_the_border() {
        let mut app = app_with(2, 60);
        app.tab = Tab::Tasks;
        // The selection far down the list, so the view scrolls to it.
        app.selected = Some(TaskId(5));
        let bottom_border = |app: &mut App| {
            let text = format!("{}", draw(app, 100, 24).backend());
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            // The Tasks pane's bottom border is above the status line.
            lines[lines.len() - 2].clone()
        };
        let before = bottom_border(&mut app);
        let above = |line: &str| {
            line.split("↑ ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|count| count.parse::<usize>().ok())
        };
        let first = above(&before).expect("rows above the view are counted");
        assert!(before.contains("(g g: top)"), "{before}");
        // Ten newer tasks come in above: the view stays on the selection, and says so.
        app.ingest(snapshot(2, tasks(70), 14));
        let after = bottom_border(&mut app);
        assert_eq!(above(&after), Some(first + 10), "{after}");
    }

    #[test]
    fn long_ids_are_shown_whole_in_the_overview_and_the_tasks_tab() {
        let big: Vec<TaskInfo> = [12_570_126u64, 12_570_130, 9_876_543_210_123]
            .iter()
            .map(|id| task(*id, TaskState::Running, "sleep 1m"))
            .collect();
        let mut app = App::new(options(), Keymap::default(), Kinds::new());
        app.ingest(snapshot(2, big.clone(), 10));
        app.ingest(snapshot(2, big, 12));
        for tab in [Tab::Overview, Tab::Tasks] {
            app.tab = tab;
            for width in [80, 120] {
                let text = format!("{}", draw(&mut app, width, 30).backend());
                for id in ["12570126", "12570130", "9876543210123"] {
                    assert!(
                        text.contains(id),
                        "{tab:?} at {width}: {id} whole in\n{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn tabs_in_output_become_the_spaces_a_terminal_shows() {
        assert_eq!(expand_tabs("RED\ttab"), "RED     tab");
        assert_eq!(expand_tabs("\tx\ty"), "        x       y");
        assert_eq!(expand_tabs("日本\tz"), "日本    z", "by display width");
        assert_eq!(expand_tabs("plain"), "plain");
    }

    #[test]
    fn an_input_keeps_its_cursor_in_sight_at_its_display_column() {
        assert_eq!(input_window("fib 30", 6, 20), ("fib 30".to_string(), 6));
        assert_eq!(
            input_window("日本語 ok", 3, 20),
            ("日本語 ok".to_string(), 6)
        );
        // Ten columns: the marker, eight characters before the cursor, the cursor.
        let long = "echo abcdefghijklmnop";
        assert_eq!(input_window(long, 21, 10), ("…ijklmnop".to_string(), 9));
        // The cursor inside a long line: two thirds across, what follows it in sight.
        assert_eq!(
            input_window(long, 13, 10),
            ("…defghijklmnop".to_string(), 6)
        );
        // Wide characters are counted by their columns.
        assert_eq!(input_window("日本語日本語", 6, 6), ("…本語".to_string(), 5));
    }

    #[test]
    fn the_submit_prompt_shows_the_end_of_a_long_line_and_its_cursor() {
        let mut app = app_with(2, 3);
        let long = (1..=30)
            .map(|i| format!("word{i:02}"))
            .collect::<Vec<_>>()
            .join(" ");
        let text = format!("echo {long} END");
        app.overlay = Some(Overlay::Submit(super::super::state::LineInput::with_text(
            &text,
        )));
        let mut terminal = draw(&mut app, 80, 24);
        let screen = terminal.backend().buffer().clone();
        let row = (0..24)
            .map(|y| {
                (0..80)
                    .map(|x| screen[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .find(|row| row.contains("> "))
            .expect("the prompt is drawn");
        assert!(
            row.contains("word30 END"),
            "the end of the line is in sight: {row:?}"
        );
        let cursor = terminal.get_cursor_position().expect("cursor");
        let end = row.find("END").expect("END");
        let column = row[..end].chars().count() as u16 + 3;
        assert_eq!(
            cursor.x, column,
            "the cursor follows the last character: {row:?}"
        );
    }

    #[test]
    fn the_overview_task_pane_names_the_filter_and_shows_the_top_unless_focused() {
        let mut app = app_with(2, 300);
        app.filter = "spin".to_string();
        // A selection far down the filtered list, as the Tasks tab left it.
        let rows: Vec<TaskId> = app.task_rows().iter().map(|t| t.id).collect();
        app.selected = rows.last().copied();
        app.focus = Pane::Workers;
        // A full list: the node has more. The filter's rows are some of the newest.
        app.options.task_limit = 300;
        let terminal = draw(&mut app, 120, 40);
        let text = format!("{}", terminal.backend());
        assert!(
            text.contains(&format!(
                "Tasks · filter \"spin\": {} of the 300 newest (",
                rows.len()
            )),
            "{text}"
        );
        let first = format!("│{} ", rows[0]);
        assert!(
            text.lines()
                .any(|line| line.contains(&first) && line.contains("spin")),
            "{text}"
        );
    }

    #[test]
    fn control_characters_in_task_text_show_as_their_pictures() {
        let mut app = app_with(2, 3);
        let mut sample = snapshot(2, tasks(3), 14);
        sample.tasks[0].spec = "echo \u{1b}[31mred\rback".into();
        app.ingest(sample);
        app.tab = Tab::Tasks;
        let text = format!("{}", draw(&mut app, 160, 40).backend());
        assert!(text.contains("echo ␛[31mred␍back"), "{text}");
    }

    #[test]
    fn help_says_what_quitting_does_to_the_node() {
        let mut app = app_with(2, 3);
        app.overlay = Some(Overlay::Help { scroll: 0 });
        let local = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(
            local.contains("quit and stop this console's node"),
            "{local}"
        );
        app.options.remote = Some("127.0.0.1:7420".into());
        let remote = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(
            remote.contains("quit (the attached node keeps running)"),
            "{remote}"
        );
    }

    #[test]
    fn a_workers_pane_too_short_for_all_says_which_it_shows() {
        let mut app = app_with(16, 3);
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        let title = text
            .lines()
            .find(|line| line.contains("Workers"))
            .expect("the pane is drawn");
        assert!(title.contains("w0–w"), "{title}");
        assert!(title.contains("of 16"), "{title}");
    }

    #[test]
    fn the_tasks_title_counts_the_tasks_in_flight_the_list_leaves_out() {
        let mut app = app_with(2, 12);
        let mut sample = snapshot(2, tasks(12), 14);
        let listed = sample
            .tasks
            .iter()
            .filter(|t| !t.state.is_finished())
            .count() as u64;
        sample.counts.queued = 5000;
        sample.counts.running = 2;
        app.ingest(sample);
        app.tab = Tab::Tasks;
        let text = format!("{}", draw(&mut app, 160, 40).backend());
        let expected = format!(
            "{} more in flight not listed (console.task_limit)",
            5002 - listed
        );
        assert!(text.contains(&expected), "{text}");
        // A filter that matches none of those listed does not say none in flight matches:
        // the unlisted ones may.
        app.filter = "no such spec".into();
        let text = format!("{}", draw(&mut app, 160, 40).backend());
        let expected = format!(
            "no task listed matches \"no such spec\", but {} more in flight are not listed",
            5002 - listed
        );
        assert!(text.contains(&expected), "{text}");
    }

    #[test]
    fn a_list_filled_by_tasks_in_flight_says_no_finished_task_is_in_it() {
        // 1,500 sleepers and 300 newer finished echoes, a limit of 12: the node sends the
        // tasks in flight only, so a filter for finished ones must not say "none".
        let mut app = app_listing(12);
        let mut sample = snapshot(2, tasks(12), 14);
        for task in &mut sample.tasks {
            task.state = TaskState::Running;
            task.spec = "sleep 1h".into();
        }
        sample.counts.queued = 0;
        sample.counts.running = 1500;
        sample.counts.succeeded = 300;
        app.ingest(sample);
        app.tab = Tab::Tasks;
        let text = format!("{}", draw(&mut app, 160, 40).backend());
        assert!(
            text.contains("Tasks · 12 of 12 in flight (no finished task listed)")
                && !text.contains("newest"),
            "{text}"
        );
        app.filter = "succeeded".into();
        let text = format!("{}", draw(&mut app, 160, 40).backend());
        assert!(
            text.contains("no task listed matches \"succeeded\"")
                && text.contains("nor finished ones"),
            "{text}"
        );
        app.tab = Tab::Overview;
        let text = format!("{}", draw(&mut app, 160, 40).backend());
        assert!(text.contains("0 of 12 in flight"), "{text}");
    }

    #[test]
    fn after_a_restart_a_full_list_of_recovered_tasks_says_it_holds_the_newest_only() {
        // The history came back from the log: the counts (since this start) are all zero,
        // but a list as long as console.task_limit may be the newest of many more.
        use crate::runtime::TaskCounts;
        let mut app = app_listing(12);
        let mut sample = snapshot(2, tasks(12), 14);
        sample.counts = TaskCounts::default();
        app.ingest(sample.clone());
        app.tab = Tab::Tasks;
        let title = |app: &mut App| {
            let text = format!("{}", draw(app, 160, 40).backend());
            let line = text.lines().find(|line| line.contains("Tasks ·"));
            line.map(str::to_string).unwrap_or(text)
        };
        assert!(
            title(&mut app).contains("12 of the 12 newest"),
            "{}",
            title(&mut app)
        );
        // A shorter list is all there is.
        sample.tasks.truncate(5);
        app.ingest(sample);
        let shorter = title(&mut app);
        assert!(
            shorter.contains("5 of 5 ") && !shorter.contains("newest"),
            "{shorter}"
        );
    }

    #[test]
    fn a_node_that_stopped_before_any_sample_said_so_is_named_shut_down_by_its_farewell() {
        use crate::tui::state::Reply;
        // An idle node stops within one sampling period: no sample says it is shutting
        // down, but it says so as it closes the connection.
        let mut app = app_with(2, 3);
        app.ingest(snapshot(2, tasks(3), 14));
        for (error, named) in [
            (
                format!(
                    "connection to the node closed: {}",
                    crate::runtime::net::frame::SHUTDOWN_NOTICE
                ),
                true,
            ),
            // The reconnects after it fail otherwise: still shut down, as it said.
            (
                "cannot connect to a goliath node at 127.0.0.1:7420: Connection refused"
                    .to_string(),
                true,
            ),
        ] {
            app.on_reply(Reply::Disconnected {
                error,
                retry_in: Duration::from_secs(2),
                refused: false,
            });
            let terminal = draw(&mut app, 120, 40);
            let text = format!("{}", terminal.backend());
            let first = text.lines().next().expect("a header").to_string();
            assert_eq!(first.contains("shut down · figures"), named, "{first}");
            assert_eq!(first.contains("disconnected · figures"), !named, "{first}");
            assert_eq!(
                text.contains("the node shut down (it said so as it closed the connection)"),
                named,
                "{text}"
            );
        }
        // A crash says nothing as it closes: disconnected.
        let mut app = app_with(2, 3);
        app.ingest(snapshot(2, tasks(3), 14));
        app.on_reply(Reply::Disconnected {
            error: "connection to the node closed: the node closed the connection".into(),
            retry_in: Duration::from_secs(2),
            refused: false,
        });
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        let first = text.lines().next().expect("a header").to_string();
        assert!(first.contains("disconnected · figures"), "{first}");
        // A sample from the node again: whatever it says now holds.
        app.node_said_shut_down = true;
        app.ingest(snapshot(2, tasks(3), 15));
        assert!(!app.node_shutting_down());
    }

    #[test]
    fn figures_from_a_lost_node_are_dimmed_and_aged_and_a_shutdown_is_named() {
        use crate::tui::state::Reply;
        let mut app = app_with(2, 3);
        let mut last = snapshot(2, tasks(3), 14);
        last.node.accepting = false;
        app.ingest(last);
        let header_row = |terminal: &Terminal<TestBackend>| {
            let text = format!("{}", terminal.backend());
            text.lines().next().expect("a header").to_string()
        };
        let first = header_row(&draw(&mut app, 120, 40));
        assert!(
            first.contains("shutting down "),
            "not 'live' while it shuts down: {first}"
        );
        app.on_reply(Reply::Disconnected {
            error: "the node closed the connection".into(),
            retry_in: Duration::from_secs(2),
            refused: false,
        });
        let terminal = draw(&mut app, 120, 40);
        let text = format!("{}", terminal.backend());
        let first = header_row(&terminal);
        assert!(
            first.contains("shut down · figures 0s old · retrying in"),
            "{first}"
        );
        assert!(
            text.contains("the node shut down (it was shutting down"),
            "{text}"
        );
        let buffer = terminal.backend().buffer();
        let dimmed = |x: u16, y: u16| buffer[(x, y)].modifier.contains(Modifier::DIM);
        assert!(
            dimmed(1, 0) && dimmed(1, 1),
            "the header's figures are dimmed"
        );
        assert!(dimmed(1, 5), "the body is dimmed");
        assert!(!dimmed(119 - 2, 0), "the badge is not");
        // A refused handshake says so instead of "disconnected".
        app.on_reply(Reply::Disconnected {
            error: "cluster mismatch".into(),
            retry_in: Duration::from_secs(30),
            refused: true,
        });
        let first = header_row(&draw(&mut app, 120, 40));
        assert!(first.contains("refused · figures"), "{first}");
    }

    #[test]
    fn a_prompt_leaves_a_two_row_status_message_whole() {
        use crate::tui::state::Reply;
        let mut app = app_with(2, 3);
        app.overlay = Some(Overlay::Submit(LineInput::with_text("fib 3")));
        let long = format!("first part {} last words", "x ".repeat(70));
        app.on_reply(Reply::Disconnected {
            error: long,
            retry_in: Duration::from_secs(2),
            refused: false,
        });
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        let status = status_message(&app)
            .map(|(text, _)| text)
            .unwrap_or_default();
        assert!(
            status_rows(Some(&(status.clone(), Style::default())), 80) >= 2,
            "{status}"
        );
        let first_words: String = status
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains(&first_words),
            "{first_words:?} covered: {text}"
        );
    }

    #[test]
    fn help_lists_ctrl_c_with_quit_when_quit_is_bound_elsewhere_and_ctrl_c_still_quits() {
        let mut app = app_with(2, 3);
        let mut overrides = std::collections::BTreeMap::new();
        overrides.insert("quit".to_string(), vec!["ctrl-q".to_string()]);
        app.keymap = Keymap::with_overrides(&overrides).unwrap();
        app.overlay = Some(Overlay::Help { scroll: 0 });
        let text = format!("{}", draw(&mut app, 120, 60).backend());
        assert!(text.contains("ctrl-q, ctrl-c"), "{text}");
        // Bound to another action, Ctrl-C no longer quits, and the help does not say it does.
        overrides.insert("help".to_string(), vec!["ctrl-c".to_string()]);
        app.keymap = Keymap::with_overrides(&overrides).unwrap();
        let text = format!("{}", draw(&mut app, 120, 60).backend());
        assert!(!text.contains("ctrl-q, ctrl-c"), "{text}");
    }

    #[test]
    fn help_lines_too_long_for_the_box_go_on_under_their_description() {
        let mut app = app_with(2, 3);
        app.tab = Tab::Logs;
        // Far enough down to show the Logs group's keys.
        app.overlay = Some(Overlay::Help { scroll: 30 });
        let text = format!("{}", draw(&mut app, 80, 40).backend());
        let continued = text
            .lines()
            .find(|line| line.contains("never reaches the console"))
            .unwrap_or_else(|| panic!("the description is shown: {text}"));
        // Under the description column (37 columns into the box), not at its left edge.
        // The help box is drawn over a pane: its content is after the second border.
        let inside = continued.split('│').nth(2).unwrap_or_default();
        assert!(
            inside.starts_with(&" ".repeat(37)),
            "a continued line at the box's edge: {continued:?}"
        );
    }

    #[test]
    fn the_log_title_says_when_it_shows_one_target() {
        use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        let mut app = app_with(2, 3);
        app.tab = Tab::Logs;
        app.on_key(KeyEvent::new(KeyCode::Char('f'), KeyModifiers::NONE));
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(
            text.contains("the selected target only, at its lit levels (→ shows more, f all)"),
            "{text}"
        );
        app.on_key(KeyEvent::new(KeyCode::Char('f'), KeyModifiers::NONE));
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(!text.contains("selected target only"), "{text}");
    }

    #[test]
    fn the_key_hints_offer_to_resume_while_paused() {
        use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        let mut app = app_with(2, 3);
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(text.contains("pause"), "{text}");
        app.on_key(KeyEvent::new(KeyCode::Char(' '), KeyModifiers::NONE));
        assert!(app.paused());
        app.status = None;
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        let last = text.lines().last().unwrap_or_default().to_string();
        assert!(last.contains("resume") && !last.contains("pause"), "{last}");
    }

    #[test]
    fn the_bottom_line_names_the_keys_of_the_open_prompt_not_the_main_ones() {
        use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        let press = |app: &mut App, code: KeyCode| {
            app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
        };
        let last_line = |app: &mut App| {
            let text = format!("{}", draw(app, 120, 40).backend());
            text.lines().last().unwrap_or_default().to_string()
        };
        let mut app = app_with(2, 3);
        assert!(last_line(&mut app).contains("q quit"));
        for (key, expected) in [
            (':', "enter run"),
            ('/', "enter keep the filter"),
            ('n', "enter submit"),
        ] {
            press(&mut app, KeyCode::Char(key));
            // `q` types into the prompt: the line must not offer it as quit.
            press(&mut app, KeyCode::Char('q'));
            assert!(!app.quit, "q typed into the {key} prompt");
            let line = last_line(&mut app);
            assert!(
                line.contains(expected) && line.contains("esc") && !line.contains("quit"),
                "{key}: {line}"
            );
            press(&mut app, KeyCode::Esc);
            app.status = None;
            assert!(last_line(&mut app).contains("q quit"), "after {key}");
        }
    }

    #[test]
    fn a_long_tasks_title_keeps_its_sort_and_is_cut_with_a_mark() {
        let mut app = App::new(options(), Keymap::default(), Kinds::new());
        for second in [10, 12] {
            let mut sample = snapshot(2, tasks(12), second);
            sample.counts.running += 5_000;
            app.ingest(sample);
        }
        app.tab = Tab::Tasks;
        app.filter = "spin".into();
        for width in [80u16, 100, 140] {
            let text = format!("{}", draw(&mut app, width, 24).backend());
            let title = text
                .lines()
                .find(|line| line.contains("Tasks ·"))
                .unwrap_or_default()
                .to_string();
            assert!(title.contains("by id"), "{width}: {title}");
            assert!(
                title.contains("more in flight") || title.contains('…'),
                "{width}: {title}"
            );
        }
    }

    #[test]
    fn the_selected_row_shows_its_state_in_the_rows_colours() {
        for theme in [ThemeName::Dark, ThemeName::Light] {
            let options = crate::tui::state::Options {
                theme: Theme::new(theme),
                ..options()
            };
            let mut app = App::new(options, Keymap::default(), Kinds::new());
            let running = vec![
                task(2, TaskState::Running, "spin 5s"),
                task(1, TaskState::Running, "spin 5s"),
            ];
            for second in [10, 12] {
                app.ingest(snapshot(2, running.clone(), second));
            }
            app.tab = Tab::Tasks;
            app.selected = Some(TaskId(2));
            let terminal = draw(&mut app, 120, 30);
            let buffer = terminal.backend().buffer();
            let area = *buffer.area();
            // The running glyph on the selected row is in the selection's colours (cyan or
            // blue on a cyan or blue background was unreadable), elsewhere in its own.
            let selected = Theme::new(theme).selected;
            let mut on_selection = 0;
            for y in 0..area.height {
                for x in 0..area.width {
                    let cell = &buffer[(x, y)];
                    if cell.symbol() == "▶" && Some(cell.bg) == selected.bg {
                        on_selection += 1;
                        assert_eq!(Some(cell.fg), selected.fg, "{theme:?}: ▶ at {x},{y}");
                    }
                }
            }
            assert_eq!(
                on_selection, 1,
                "{theme:?}: the selected row shows its state"
            );
        }
    }

    #[test]
    fn a_sort_by_a_column_a_narrow_table_leaves_out_says_so() {
        let mut app = app_with(2, 12);
        app.tab = Tab::Tasks;
        app.sort = (SortColumn::Kind, false);
        let title = |app: &mut App, width: u16| {
            let text = format!("{}", draw(app, width, 24).backend());
            text.lines()
                .find(|line| line.contains("by kind"))
                .unwrap_or_default()
                .to_string()
        };
        assert!(
            title(&mut app, 80).contains("by kind ▲ (not shown at this width)"),
            "{}",
            title(&mut app, 80)
        );
        assert!(
            !title(&mut app, 140).contains("not shown"),
            "{}",
            title(&mut app, 140)
        );
    }

    #[test]
    fn a_console_refused_before_any_figures_says_so_everywhere() {
        use crate::tui::state::Reply;
        let remote = crate::tui::state::Options {
            remote: Some("127.0.0.1:7420".into()),
            ..options()
        };
        let mut app = App::new(remote, Keymap::default(), Kinds::new());
        app.on_reply(Reply::Disconnected {
            error: "the node is in cluster \"goliath\", not \"other\"".into(),
            retry_in: Duration::from_secs(30),
            refused: true,
        });
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        let first = text.lines().next().expect("a header").to_string();
        assert!(
            first.contains("127.0.0.1:7420 refused the console") && !first.contains("connecting"),
            "{first}"
        );
        assert!(
            text.contains("cannot attach: the node is in cluster")
                && !text.contains("waiting for the node"),
            "{text}"
        );
        // At 80 columns the reason wraps over the empty rows rather than losing its end.
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        assert!(text.contains("\"other\""), "{text}");
        // A submit typed meanwhile is not said to be refused by a node never reached.
        app.on_reply(crate::tui::state::tests::refusal(
            "fib 3",
            "not connected to 127.0.0.1:7420: refused",
            false,
        ));
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(text.contains("not sent: not connected"), "{text}");
        assert!(!text.contains("refused by the node"), "{text}");
    }

    #[test]
    fn the_throughput_peak_and_scale_are_those_of_the_samples_drawn() {
        let mut app = app_with(2, 3);
        // A burst long ago, then a steady 25 tasks/s: at 80 columns the pane draws only the
        // newest samples, and the burst is not among them.
        let series = &mut app.live.series.tasks_per_s;
        series.clear();
        series.push_back(39_900);
        series.extend(std::iter::repeat_n(25, 200));
        app.live.series.rates.tasks_per_s = 25.0;
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(text.contains("peak 25.0"), "{text}");
        assert!(!text.contains("39.9k"), "{text}");
        // Where the title has no room for the peak, the peak goes whole: `peak 25.` (or
        // `peak 100.2` of 100.2k) reads as another figure.
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        assert!(text.contains("Throughput · 25.0 tasks/s ─"), "{text}");
        assert!(!text.contains("peak"), "{text}");
        // Nothing finished in the samples drawn: said, not an empty chart under an old peak.
        let series = &mut app.live.series.tasks_per_s;
        series.clear();
        series.push_back(39_900);
        series.extend(std::iter::repeat_n(0, 200));
        app.live.series.rates.tasks_per_s = 0.0;
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(text.contains("no task finished lately"), "{text}");
        assert!(!text.contains("peak"), "{text}");
        // Samples are whole tasks per second: a peak never reads below the rate beside it.
        let series = &mut app.live.series.tasks_per_s;
        series.clear();
        series.extend(std::iter::repeat_n(80, 50));
        app.live.series.rates.tasks_per_s = 80.1;
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(text.contains("80.1 tasks/s · peak 80.1"), "{text}");
    }

    #[test]
    fn another_process_at_the_address_starts_the_charts_again_and_is_named() {
        let mut app = app_with(2, 3);
        assert!(!app.live.series.tasks_per_s.is_empty());
        let mut restarted = snapshot(2, tasks(3), 20);
        restarted.node.pid += 1;
        restarted.node.started_unix_us += 15_000_000;
        app.ingest(restarted);
        assert!(
            app.live.series.tasks_per_s.is_empty(),
            "no rate across processes"
        );
        let said = status_text(&app);
        assert!(
            said.contains("node alpha restarted (pid 4243, was 4242)"),
            "{said}"
        );
        let mut other = snapshot(2, tasks(3), 22);
        other.node.name = "beta".into();
        app.ingest(other);
        let said = status_text(&app);
        assert!(
            said.contains("a different node answers now: beta (was alpha)"),
            "{said}"
        );
        // The same process again changes nothing.
        app.status = None;
        let mut same = snapshot(2, tasks(3), 23);
        same.node.name = "beta".into();
        app.ingest(same);
        assert!(app.status.is_none());
    }

    #[test]
    fn help_jumps_to_its_end_and_back_and_scrolls_no_further() {
        use crossterm::event::{KeyCode, KeyEvent};
        let mut app = app_with(2, 3);
        app.overlay = Some(Overlay::Help { scroll: 0 });
        draw(&mut app, 80, 24);
        let last = app.hits.help_scroll_max;
        assert!(last > 0, "the help is longer than 24 rows");
        let scroll = |app: &App| match app.overlay {
            Some(Overlay::Help { scroll }) => scroll,
            ref other => panic!("help open: {other:?}"),
        };
        app.on_key(KeyEvent::from(KeyCode::Char('G')));
        assert_eq!(scroll(&app), last, "G: the end, help still open");
        // At the end, the help's last row of text sits on the box's last row: no blank rows.
        let terminal = draw(&mut app, 80, 24);
        let text = format!("{}", terminal.backend());
        let lines: Vec<Vec<char>> = text.lines().map(|line| line.chars().collect()).collect();
        let top = lines
            .iter()
            .position(|line| String::from_iter(line).contains(" Help "))
            .expect("the help box is drawn");
        let border = app.options.glyphs.border;
        let glyph = |corner: &str| corner.chars().next().expect("a corner glyph");
        let column = lines[top]
            .iter()
            .position(|&c| c == glyph(border.top_left))
            .expect("top left corner");
        let bottom = (top + 1..lines.len())
            .find(|&row| lines[row].get(column) == Some(&glyph(border.bottom_left)))
            .expect("the help box's bottom");
        let right = lines[top][column..]
            .iter()
            .position(|&c| c == glyph(border.top_right))
            .expect("top right corner")
            + column;
        let last_row = String::from_iter(&lines[bottom - 1][column + 1..right]);
        assert!(
            !last_row.trim().is_empty(),
            "the end of the help fills the box:\n{text}"
        );
        app.on_key(KeyEvent::from(KeyCode::Char('j')));
        assert_eq!(scroll(&app), last, "no further than the end");
        app.on_key(KeyEvent::from(KeyCode::Char('k')));
        assert_eq!(scroll(&app), last - 1, "one up moves at once");
        app.on_key(KeyEvent::from(KeyCode::Char('g')));
        app.on_key(KeyEvent::from(KeyCode::Char('g')));
        assert_eq!(scroll(&app), 0, "g g: the top");
    }

    #[test]
    fn a_click_selects_the_task_drawn_under_it() {
        let mut app = app_with(2, 200);
        app.on_key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Char('2'),
        ));
        // A selection far down with the asked-for offset still at the top, as after a
        // filter is cleared: the view scrolls to the selection on its own.
        let far = app.task_rows()[150].id;
        app.selected = Some(far);
        app.task_offset = 0;
        let terminal = draw(&mut app, 120, 40);
        let rows = app.hits.task_rows.expect("the table is drawn");
        let third_row: String = (rows.x..rows.x + rows.width)
            .map(|x| {
                terminal.backend().buffer()[(x, rows.y + 2)]
                    .symbol()
                    .to_string()
            })
            .collect();
        let shown: u64 = third_row
            .split_whitespace()
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("an id first: {third_row:?}"));
        app.on_mouse(crossterm::event::MouseEvent {
            kind: crossterm::event::MouseEventKind::Down(crossterm::event::MouseButton::Left),
            column: rows.x + 3,
            row: rows.y + 2,
            modifiers: crossterm::event::KeyModifiers::NONE,
        });
        assert_eq!(app.selected, Some(TaskId(shown)), "{third_row:?}");
        let redrawn = draw(&mut app, 120, 40);
        let same_row: String = (rows.x..rows.x + rows.width)
            .map(|x| {
                redrawn.backend().buffer()[(x, rows.y + 2)]
                    .symbol()
                    .to_string()
            })
            .collect();
        assert_eq!(
            same_row.split_whitespace().next(),
            Some(shown.to_string().as_str()),
            "the table stays put"
        );
    }

    #[test]
    fn the_header_drops_whole_items_when_narrow() {
        // A remote node's listen address is long, and the badge takes room on the right.
        let mut app = App::new(options(), Keymap::default(), Kinds::new());
        for second in [10, 12] {
            let mut sample = snapshot(2, tasks(3), second);
            sample.node.listen = Some("[fd00:1234:5678::abcd]:7420".into());
            app.ingest(sample);
        }
        for width in 80..=110 {
            let terminal = draw(&mut app, width, 24);
            let first_row: String = (0..width)
                .map(|x| terminal.backend().buffer()[(x, 0)].symbol().to_string())
                .collect();
            if let Some((_, after)) = first_row.split_once("mem ") {
                let figure = after.split_whitespace().next().unwrap_or_default();
                assert!(figure.ends_with('B'), "{width}: {first_row:?}");
            }
            if let Some((_, after)) = first_row.split_once("cpu ") {
                let figure = after.split_whitespace().next().unwrap_or_default();
                assert!(figure.ends_with('%'), "{width}: {first_row:?}");
            }
        }
    }

    #[test]
    fn the_header_keeps_its_form_while_the_figures_change() {
        // At any width, cpu 9% and cpu 13% (or 100%) give the same form of the header: the
        // one that leaves out "goliath" and "workers" must not come and go each second.
        let form = |cpu: f32, width: u16| {
            let mut app = App::new(options(), Keymap::default(), Kinds::new());
            for second in [10, 12] {
                let mut sample = snapshot(2, tasks(3), second);
                if let Some(host) = &mut sample.host {
                    host.cpu_percent = cpu;
                }
                app.ingest(sample);
            }
            let terminal = draw(&mut app, width, 24);
            let first_row: String = (0..width)
                .map(|x| terminal.backend().buffer()[(x, 0)].symbol().to_string())
                .collect();
            first_row.contains("workers")
        };
        let mut full_seen = false;
        for width in 80..=140 {
            let full = form(9.0, width);
            full_seen |= full;
            assert_eq!(full, form(13.0, width), "width {width}");
            assert_eq!(full, form(100.0, width), "width {width}");
        }
        assert!(full_seen, "the full form never fit");
    }

    #[test]
    fn a_name_longer_than_the_header_loses_its_middle_not_the_whole_header() {
        // 63 bytes, the longest name; a remote console's badge takes 33 columns of the 80.
        let name = "build-farm-europe-west1-rack-17-a-very-long-host-name-node-0042";
        let remote = crate::tui::state::Options {
            remote: Some("[fd00:1234:5678::abcd]:7420".into()),
            ..options()
        };
        let mut app = App::new(remote, Keymap::default(), Kinds::new());
        for second in [10, 12] {
            let mut sample = snapshot(2, tasks(3), second);
            sample.node.name = name.into();
            app.ingest(sample);
        }
        for width in [80, 90] {
            let terminal = draw(&mut app, width, 24);
            let first_row: String = (0..width)
                .map(|x| terminal.backend().buffer()[(x, 0)].symbol().to_string())
                .collect();
            assert!(
                first_row.contains("build-farm") && first_row.contains("node-0042"),
                "{width}: {first_row:?}"
            );
            assert!(first_row.contains('…'), "{width}: {first_row:?}");
        }
    }

    #[test]
    fn the_counts_line_drops_whole_counts_when_narrow() {
        let mut app = App::new(options(), Keymap::default(), Kinds::new());
        for second in [10, 12] {
            let mut sample = snapshot(2, tasks(3), second);
            sample.node.accepting = false;
            let big = 123_456;
            sample.counts = crate::runtime::snapshot::TaskCounts {
                submitted: big,
                queued: big,
                running: big,
                succeeded: big,
                failed: big,
                cancelled: big,
                timed_out: big,
                recovered: big,
            };
            app.ingest(sample);
        }
        let mut seen_cut = 0;
        for width in 80..=140 {
            let terminal = draw(&mut app, width, 24);
            let row: String = (0..width)
                .map(|x| terminal.backend().buffer()[(x, 1)].symbol().to_string())
                .collect();
            if row.contains("shutting") {
                seen_cut += 1;
                assert!(row.contains("shutting down"), "{width}: {row:?}");
            }
        }
        assert!(seen_cut > 0, "some width shows the shutting-down note");
    }

    #[test]
    fn overview_120x40_with_16_workers() {
        let mut app = app_with(16, 200);
        insta::assert_snapshot!(draw(&mut app, 120, 40).backend());
    }

    #[test]
    fn at_80_columns_the_tasks_tab_keeps_room_for_the_spec() {
        let mut app = app_with(2, 12);
        app.tab = Tab::Tasks;
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        assert!(text.contains("exec -- ls -l /tmp"), "{text}");
        assert!(!text.contains("ATTEMPT"), "dropped whole: {text}");
    }

    #[test]
    fn tasks_tab_filtered_and_sorted_120x40() {
        let mut app = app_with(2, 60);
        app.tab = Tab::Tasks;
        app.filter = "spin".into();
        app.sort = (SortColumn::Id, false);
        app.selected = Some(TaskId(8));
        insta::assert_snapshot!(draw(&mut app, 120, 40).backend());
    }

    #[test]
    fn task_detail_with_process_output() {
        let mut app = app_with(2, 5);
        let mut info = task(5, TaskState::Failed, "exec -- sh -c 'echo hi; exit 3'");
        info.output = Some(TaskOutput::Process(Box::new(ProcessOutput {
            exit_code: Some(3),
            signal: None,
            stdout: "hi\n".into(),
            stderr: "warning: something\n".into(),
            stdout_truncated: 0,
            stderr_truncated: 1200,
        })));
        info.error = Some("exit code 3".into());
        open_detail(&mut app, info, 0);
        insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
    }

    #[test]
    fn a_carriage_return_in_output_is_shown_not_dropped() {
        let mut app = app_with(2, 5);
        let mut info = task(5, TaskState::Succeeded, "exec -- printf");
        info.output = Some(exited_ok("first\r\nsecond\n", ""));
        open_detail(&mut app, info, 0);
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        assert!(text.contains("  first␍"), "{text}");
        assert!(text.contains("  second"), "{text}");
        assert!(text.contains("(empty)"), "stderr: {text}");
    }

    #[test]
    fn a_long_output_line_goes_on_under_its_indent() {
        assert_eq!(pieces_of_width("abcdef", 4), ["abcd", "ef"]);
        assert_eq!(pieces_of_width("", 4), [""]);
        assert_eq!(
            pieces_of_width("日本語", 4),
            ["日本", "語"],
            "wide characters whole"
        );
        let mut app = app_with(2, 5);
        let mut info = task(5, TaskState::Succeeded, "exec -- yes");
        info.output = Some(exited_ok(&format!("{}\n", "x".repeat(300)), ""));
        open_detail(&mut app, info, 0);
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        let rows: Vec<&str> = text.lines().filter(|line| line.contains("xxxx")).collect();
        assert!(rows.len() >= 4, "{text}");
        for row in rows {
            let inside = row.trim_start_matches('"').trim_start_matches('│');
            assert!(inside.starts_with("  x"), "{row}");
        }
        // So does a long spec, under its value.
        let mut app = app_with(2, 5);
        let spec = format!("echo {}", "y".repeat(150));
        open_detail(&mut app, task(5, TaskState::Succeeded, &spec), 0);
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        let rows: Vec<&str> = text.lines().filter(|line| line.contains("yyyy")).collect();
        assert!(rows.len() >= 2, "{text}");
        let continued = rows[1].trim_start_matches('"').trim_start_matches('│');
        assert!(
            continued.starts_with(&format!("{}y", " ".repeat(11))),
            "{}",
            rows[1]
        );
    }

    /// The output of a process that exited 0, both streams whole.
    fn exited_ok(stdout: &str, stderr: &str) -> TaskOutput {
        TaskOutput::Process(Box::new(ProcessOutput {
            exit_code: Some(0),
            signal: None,
            stdout: stdout.into(),
            stderr: stderr.into(),
            stdout_truncated: 0,
            stderr_truncated: 0,
        }))
    }

    /// Shows `info` in the Tasks tab's detail view, scrolled `scroll` rows.
    #[test]
    fn after_the_end_of_a_detail_one_key_up_scrolls_up_at_once() {
        let mut app = app_with(2, 5);
        let mut info = task(5, TaskState::Succeeded, "exec -- seq 1 200");
        let lines: Vec<String> = (1..=200).map(|n| format!("line {n}")).collect();
        info.output = Some(exited_ok(&lines.join("\n"), ""));
        open_detail(&mut app, info, 0);
        draw(&mut app, 80, 24);
        let top_line = |app: &mut App| {
            let text = format!("{}", draw(app, 80, 24).backend());
            text.lines()
                .find_map(|line| line.split("line ").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0)
        };
        let first = top_line(&mut app);
        // End, then j past it: the view stays at the end.
        app.perform(Action::Bottom);
        let at_end = top_line(&mut app);
        assert!(at_end > first, "{at_end}");
        for _ in 0..30 {
            app.perform(Action::Down);
        }
        assert_eq!(top_line(&mut app), at_end);
        // One k moves up one row, at once.
        app.perform(Action::Up);
        assert_eq!(top_line(&mut app), at_end - 1);
        app.perform(Action::PageUp);
        assert!(top_line(&mut app) < at_end - 1);
    }

    #[test]
    fn a_running_tasks_time_stops_with_the_figures_while_the_node_does_not_answer() {
        use crate::tui::state::Reply;
        let mut app = app_with(2, 12);
        let running = app
            .view()
            .snapshot
            .as_ref()
            .and_then(|s| s.tasks.iter().find(|t| t.state == TaskState::Running))
            .cloned()
            .expect("a running task in the sample");
        open_detail(&mut app, running, 0);
        let duration_line = |app: &mut App| {
            let text = format!("{}", draw(app, 120, 40).backend());
            text.lines()
                .find(|line| line.contains("duration"))
                .map(str::to_string)
                .unwrap_or(text)
        };
        let before = duration_line(&mut app);
        app.live.received_at = Instant::now().checked_sub(Duration::from_secs(5));
        app.on_reply(Reply::Disconnected {
            error: "connection refused".into(),
            retry_in: Duration::from_secs(2),
            refused: false,
        });
        // Whether it still runs is not known: its time is not counted on as if it did.
        assert_eq!(duration_line(&mut app), before);
    }

    fn open_detail(app: &mut App, info: TaskInfo, scroll: u16) {
        app.tab = Tab::Tasks;
        app.detail = Some(Detail {
            id: info.id,
            info: Some(info),
            error: None,
            scroll,
            complete: true,
        });
    }

    #[test]
    fn a_long_output_without_line_breaks_scrolls_to_its_stderr() {
        let mut app = app_with(2, 5);
        let mut info = task(5, TaskState::Succeeded, "exec -- sh -c yes");
        info.output = Some(exited_ok(&"a".repeat(20_000), "the stderr line"));
        // As far as End takes it.
        open_detail(&mut app, info, u16::MAX / 2);
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        assert!(text.contains("the stderr line"), "{text}");
    }

    #[test]
    fn too_small_says_the_size_needed() {
        let mut app = app_with(2, 3);
        let terminal = draw(&mut app, 60, 20);
        insta::assert_snapshot!(terminal.backend());
        let text = format!("{}", terminal.backend());
        assert!(text.contains("60×20"), "{text}");
        assert!(text.contains("80×24"), "{text}");
        assert!(app.hits.tabs.is_empty(), "nothing to click on");
        // Narrow and short: the wrapped text is shown whole, to its last words.
        for (width, height) in [(40, 15), (30, 12)] {
            let text = format!("{}", draw(&mut app, width, height).backend());
            assert!(text.contains("quit."), "{width}×{height}:\n{text}");
        }
        // Tiny: the short form, the way out still said.
        for (width, height) in [(20, 5), (12, 4)] {
            let text = format!("{}", draw(&mut app, width, height).backend());
            assert!(text.contains("q quits"), "{width}×{height}:\n{text}");
            assert!(app.hits.too_small);
        }
        // The key as bound, and Ctrl-C when a prompt would take a letter.
        let mut overrides = std::collections::BTreeMap::new();
        overrides.insert("quit".to_string(), vec!["ctrl-q".to_string()]);
        app.keymap = Keymap::with_overrides(&overrides).unwrap();
        let text = format!("{}", draw(&mut app, 60, 20).backend());
        assert!(text.contains("ctrl-q to quit"), "{text}");
        app.overlay = Some(Overlay::Submit(Default::default()));
        let text = format!("{}", draw(&mut app, 60, 20).backend());
        assert!(
            text.contains("A prompt is open") && text.contains("ctrl-c"),
            "{text}"
        );
        app.overlay = Some(Overlay::Help { scroll: 0 });
        let text = format!("{}", draw(&mut app, 60, 20).backend());
        assert!(
            text.contains("The help is open") && text.contains("ctrl-c to quit"),
            "{text}"
        );
    }

    #[test]
    fn help_lists_the_live_keymap() {
        let mut overrides = std::collections::BTreeMap::new();
        overrides.insert("cancel".to_string(), vec!["d".to_string()]);
        let mut app = App::new(
            options(),
            Keymap::with_overrides(&overrides).unwrap(),
            Kinds::new(),
        );
        app.ingest(snapshot(2, tasks(3), 1));
        app.overlay = Some(Overlay::Help { scroll: 0 });
        let terminal = draw(&mut app, 120, 40);
        insta::assert_snapshot!(terminal.backend());
        let text = format!("{}", terminal.backend());
        assert!(
            text.lines()
                .any(|l| l.contains(" d ") && l.contains("cancel")),
            "the rebound key shows in help:\n{text}"
        );
    }

    #[test]
    fn a_log_paged_back_says_it_no_longer_follows_until_esc() {
        let mut app = app_with(2, 3);
        app.tab = Tab::Logs;
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(!text.contains("paged back"), "{text}");
        app.on_key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::PageUp,
        ));
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(
            text.contains("paged back, new lines not shown (esc follows)"),
            "{text}"
        );
        app.on_key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Esc,
        ));
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(!text.contains("paged back"), "following again: {text}");
    }

    #[test]
    fn the_wal_window_is_told_to_a_tenth_of_a_second_as_status_tells_it() {
        assert_eq!(window_seconds(5_000_000), "5s");
        assert_eq!(window_seconds(4_847_286), "4.8s");
        assert_eq!(window_seconds(4_960_000), "5s");
        assert_eq!(window_seconds(30_000), "0s");
    }

    #[test]
    fn ascii_help_names_the_arrow_keys() {
        let mut app = app_with(2, 3);
        app.options.glyphs = Glyphs::new(true);
        app.overlay = Some(Overlay::Help { scroll: 0 });
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(
            text.lines()
                .any(|l| l.contains("k, up ") && l.contains("up")),
            "{text}"
        );
        assert!(
            !text.contains("k, ?"),
            "an arrow read as the help key: {text}"
        );
    }

    #[test]
    fn readonly_help_and_hints_leave_out_submit_and_cancel() {
        let mut app = app_with(2, 3);
        app.options.readonly = true;
        app.overlay = Some(Overlay::Help { scroll: 0 });
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(!text.contains("submit tasks"), "{text}");
        assert!(!text.contains("cancel the selected"), "{text}");
        assert!(!text.contains("n submit"), "{text}");
        assert!(!text.contains("submit SPEC"), "{text}");
        app.overlay = Some(Overlay::Palette(LineInput::with_text("")));
        let text = format!("{}", draw(&mut app, 120, 40).backend());
        assert!(!text.contains("submit SPEC"), "{text}");
        assert!(text.contains("read-only"), "{text}");
    }

    #[test]
    fn submit_prompt_with_an_error() {
        let mut app = app_with(2, 3);
        let mut input = LineInput::with_text("spni 3s");
        input.error = app.check_spec("spni 3s");
        app.overlay = Some(Overlay::Submit(input));
        insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
    }

    #[test]
    fn a_long_refusal_under_the_submit_prompt_is_shown_whole() {
        let mut app = app_with(2, 3);
        let mut input = LineInput::with_text("exec -- echo hi");
        input.error = Some(
            "refused by the node: exec tasks are refused over the network: this node runs \
             programs only for its own console and clients on its machine; set \
             exec.remote = true in its config to allow them (anyone who can reach its \
             listen address could then run programs as its user)"
                .to_string(),
        );
        app.overlay = Some(Overlay::Submit(input));
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        let joined: String = text
            .lines()
            .map(|line| line.trim_matches(|c: char| c == '"' || c == '│' || c == ' '))
            .collect::<Vec<_>>()
            .join(" ");
        for part in [
            "refused by the node",
            "exec.remote = true",
            "run programs as its user)",
        ] {
            assert!(joined.contains(part), "{part} in\n{text}");
        }
    }

    #[test]
    fn cancel_confirmation() {
        let mut app = app_with(2, 3);
        app.overlay = Some(Overlay::Confirm {
            id: TaskId(3),
            spec: "spin 5s".into(),
            state: TaskState::Running,
        });
        insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
    }

    #[test]
    fn cancel_question_says_what_becomes_of_the_cancel_on_each_link() {
        let mut app = app_with(2, 3);
        app.overlay = Some(Overlay::Confirm {
            id: TaskId(3),
            spec: "spin 5s".into(),
            state: TaskState::Running,
        });
        let sent_later = "the node is not answering: it gets the cancel when it does";
        let not_sent = "not connected to the node: the cancel cannot be sent now";
        // A stopped node keeps its connection, and the cancel reaches it when it resumes.
        app.link = Link::Unanswered {
            since: Instant::now(),
        };
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        assert!(
            text.contains(sent_later) && !text.contains(not_sent),
            "{text}"
        );
        app.link = Link::Down {
            error: "refused".into(),
            retry_at: Instant::now(),
            refused: false,
        };
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        assert!(
            text.contains(not_sent) && !text.contains(sent_later),
            "{text}"
        );
        app.link = Link::Up;
        let text = format!("{}", draw(&mut app, 80, 24).backend());
        assert!(
            text.contains("spin 5s") && !text.contains(not_sent),
            "{text}"
        );
    }

    #[test]
    fn mono_draws_without_a_single_colour() {
        let mut app = app_with(4, 30);
        app.options.theme = Theme::new(ThemeName::Mono);
        app.selected = Some(TaskId(29));
        let terminal = draw(&mut app, 80, 24);
        insta::assert_snapshot!(terminal.backend());
        let buffer = terminal.backend().buffer();
        for cell in buffer.content.iter() {
            assert_eq!(cell.fg, Color::Reset, "{cell:?}");
            assert_eq!(cell.bg, Color::Reset, "{cell:?}");
        }
        let selected_row = buffer
            .content
            .iter()
            .filter(|c| c.modifier.contains(Modifier::REVERSED))
            .count();
        assert!(selected_row > 10, "the selection shows as reversed text");
    }

    #[test]
    fn ascii_draws_only_ascii() {
        let mut app = app_with(4, 30);
        app.options.glyphs = Glyphs::new(true);
        let terminal = draw(&mut app, 80, 24);
        insta::assert_snapshot!(terminal.backend());
        for cell in terminal.backend().buffer().content.iter() {
            assert!(cell.symbol().is_ascii(), "{:?}", cell.symbol());
        }
        // The too-small screen's sizes read as sizes, with no `?` for a glyph.
        for (width, height) in [(40, 10), (20, 5)] {
            let text = format!("{}", draw(&mut app, width, height).backend());
            assert!(text.contains(&format!("{width}x{height}")), "{text}");
            assert!(text.contains("80x24") && !text.contains('?'), "{text}");
        }
    }

    #[test]
    fn rows_drawn_are_the_rows_clicked() {
        let mut app = app_with(2, 20);
        app.tab = Tab::Tasks;
        draw(&mut app, 100, 30);
        let rows = app.hits.task_rows.expect("the table registered its rows");
        let click = crossterm::event::MouseEvent {
            kind: crossterm::event::MouseEventKind::Down(crossterm::event::MouseButton::Left),
            column: rows.x + 2,
            row: rows.y + 3,
            modifiers: crossterm::event::KeyModifiers::NONE,
        };
        app.on_mouse(click);
        assert_eq!(app.selected, Some(TaskId(17)), "fourth row, newest first");
    }
}

#[cfg(test)]
mod panel_tests {
    //! The WAL and Cluster panels from fixed samples.
    use super::*;
    use crate::runtime::Kinds;
    use crate::runtime::gossip::{EventKind, GossipStats, LocalStatus, MemberCounts, MemberLoad};
    use crate::runtime::snapshot::ClusterEvent;
    use crate::runtime::wal::{RecoverySummary, WalSnapshot, WalSync};
    use crate::tui::keys::Keymap;
    use crate::tui::state::tests::{options, snapshot, task};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    const NOW: u64 = 1_700_000_000_000_000;

    fn wal(second: u64, healthy: bool) -> WalSnapshot {
        WalSnapshot {
            data_dir: "/var/lib/goliath/alpha".into(),
            sync: WalSync::Always,
            healthy,
            failure: (!healthy).then(|| "fdatasync of segment 3 failed: EIO".to_string()),
            window_us: 5_000_000,
            fsync_p50_us: 110.0 + (second % 5) as f64 * 10.0,
            fsync_p99_us: 220.0 + (second % 3) as f64 * 40.0,
            fsync_max_us: 1_200.0,
            window_fsyncs: 40_000,
            records_per_fsync: 46.5,
            bytes_per_fsync: 5_900.0,
            appends_per_sec: 372_000.0,
            records: 9_000_000,
            bytes: 1 << 30,
            fsyncs: 200_000,
            pending_records: 12,
            segments: 3,
            disk_bytes: 48 << 20,
            last_checkpoint_unix_us: Some(NOW + second * 1_000_000 - 12_000_000),
            last_checkpoint_bytes: 2 << 20,
            checkpoint_waits: 0,
            checkpoints: 4,
            checkpoint_error: None,
            next_segment_error: None,
            recovered: RecoverySummary::default(),
        }
    }

    fn member(name: &str, state: MemberState, phi: f64, local: bool) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            generation: 1_700_000_000_000_001,
            incarnation: u32::from(state == MemberState::Suspect),
            state,
            degraded: phi >= 8.0,
            phi,
            gossip_address: Some(format!("127.0.0.1:74{}", name.len() + 20)),
            protocol_address: Some(format!("127.0.0.1:73{}", name.len() + 20)),
            last_heard_unix_us: (!local).then_some(NOW + 11_700_000),
            since_unix_us: NOW,
            local,
            meta: Some(MemberLoad {
                version: 3,
                workers: 2,
                queue_depth: 4,
                arena_free: 65_530,
                load: 0.5,
            }),
        }
    }

    fn cluster() -> ClusterSnapshot {
        let members = vec![
            member("alpha", MemberState::Alive, 0.0, true),
            member("beta", MemberState::Alive, 0.4, false),
            member("gamma", MemberState::Suspect, 9.1, false),
            member("delta", MemberState::Dead, 0.0, false),
        ];
        let event = |seconds: u64, name: &str, kind: EventKind| ClusterEvent {
            at_unix_us: NOW + seconds * 1_000_000,
            member: name.into(),
            generation: 1,
            text: ClusterEvent::describe(name, 1, &kind),
            kind,
            told_by: None,
        };
        ClusterSnapshot {
            cluster: "goliath".into(),
            local: "alpha".into(),
            generation: 1_700_000_000_000_001,
            incarnation: 0,
            gossip_address: "127.0.0.1:7421".into(),
            status: LocalStatus::Active,
            local_health: 0,
            phi_threshold: 8.0,
            counts: MemberCounts {
                alive: 2,
                suspect: 1,
                dead: 1,
                left: 0,
                degraded: 1,
            },
            members,
            events: vec![
                event(1, "beta", EventKind::Joined),
                event(2, "gamma", EventKind::Joined),
                event(3, "delta", EventKind::Joined),
                event(8, "delta", EventKind::Failed),
                event(11, "gamma", EventKind::Suspected { by: "beta".into() }),
            ],
            stats: GossipStats::default(),
        }
    }

    fn app(workers: usize, with_wal: bool, with_cluster: bool) -> App {
        let mut app = App::new(options(), Keymap::default(), Kinds::new());
        for second in 1..=12 {
            let mut sample = snapshot(
                workers,
                vec![
                    task(3, crate::runtime::TaskState::Running, "spin 5s"),
                    task(2, crate::runtime::TaskState::Succeeded, "fib 30"),
                ],
                second,
            );
            sample.wal = with_wal.then(|| wal(second, true));
            sample.cluster = with_cluster.then(cluster);
            app.ingest(sample);
        }
        app
    }

    fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| drop(render(frame, app))).unwrap();
        terminal
    }

    #[test]
    fn overview_with_wal_and_cluster_120x40() {
        let app = app(4, true, true);
        let terminal = draw(&app, 120, 40);
        insta::assert_snapshot!(terminal.backend());
        let text = format!("{}", terminal.backend());
        assert!(text.contains("WAL"), "{text}");
        assert!(text.contains("p99"), "{text}");
        assert!(text.contains("gamma"), "{text}");
    }

    #[test]
    fn overview_with_wal_and_cluster_80x24() {
        let app = app(2, true, true);
        insta::assert_snapshot!(draw(&app, 80, 24).backend());
    }

    #[test]
    fn the_arena_gauge_shows_the_high_water_mark_also_in_the_cell_of_the_use() {
        for (in_use, high_water, marked) in [(10, 50, true), (2_629, 2_751, true), (50, 50, false)]
        {
            let mut app = app(2, true, true);
            let mut sample = snapshot(2, Vec::new(), 13);
            sample.arena.in_use = in_use;
            sample.arena.high_water = high_water;
            app.ingest(sample);
            let text = format!("{}", draw(&app, 140, 40).backend());
            let gauge = text
                .lines()
                .find(|line| line.contains('%') && line.contains('░'))
                .unwrap_or_else(|| panic!("no gauge: {text}"));
            assert_eq!(
                gauge.contains('┃'),
                marked,
                "{in_use}/{high_water}: {gauge}"
            );
        }
    }

    #[test]
    fn the_cluster_tab_shows_a_long_name_whole_where_the_window_has_room() {
        let long_name = "h7-very-long-node-name-for-testing-widths-and-more";
        let shown = |width: u16| {
            let mut app = app(2, true, true);
            let mut sample = snapshot(2, Vec::new(), 13);
            let mut long = cluster();
            long.members[1].name = long_name.into();
            sample.cluster = Some(long);
            app.ingest(sample);
            app.tab = Tab::Cluster;
            format!("{}", draw(&app, width, 30).backend())
        };
        let wide = shown(200);
        assert!(wide.contains(long_name), "{wide}");
        // Where the other columns need the room, it loses its middle.
        let narrow = shown(120);
        assert!(
            !narrow.contains(long_name) && narrow.contains("h7-very-long-node-na…"),
            "{narrow}"
        );
    }

    #[test]
    fn the_overview_member_lines_align_also_with_a_long_name() {
        for width in [80u16, 120] {
            let mut app = app(2, true, true);
            let mut sample = snapshot(2, Vec::new(), 13);
            let mut long = cluster();
            long.members[1].name = "qa4-averyveryverylongmembername-xyz".into();
            sample.cluster = Some(long);
            app.ingest(sample);
            let text = format!("{}", draw(&app, width, 30).backend());
            // Where φ stands on each member line of the pane: one column for all.
            let columns: Vec<usize> = text
                .lines()
                .filter(|line| line.contains(" φ"))
                .map(|line| {
                    let at = line.rfind(" φ").unwrap_or(0);
                    unicode_width::UnicodeWidthStr::width(&line[..at])
                })
                .collect();
            assert!(columns.len() >= 4, "{text}");
            assert!(
                columns.windows(2).all(|w| w[0] == w[1]),
                "{columns:?}\n{text}"
            );
        }
    }

    #[test]
    fn a_membership_event_too_long_for_the_pane_ends_in_a_mark() {
        let mut app = app(2, true, true);
        let mut sample = snapshot(2, Vec::new(), 13);
        let mut with_restart = cluster();
        let kind = EventKind::Restarted {
            previous_generation: 1_796_288_348_925_590,
            moved_from: None,
        };
        with_restart.events.push(ClusterEvent {
            at_unix_us: NOW + 12_000_000,
            member: "beta".into(),
            generation: 1_796_288_348_999_999,
            text: ClusterEvent::describe("beta", 1_796_288_348_999_999, &kind),
            kind,
            told_by: None,
        });
        sample.cluster = Some(with_restart);
        app.ingest(sample);
        app.tab = crate::tui::state::Tab::Cluster;
        let text = format!("{}", draw(&app, 80, 24).backend());
        let line = text
            .lines()
            .find(|line| line.contains("beta restarted"))
            .unwrap_or_else(|| panic!("no restart line: {text}"));
        assert!(line.contains("…"), "cut without a mark: {line}");
        // More events than the pane holds: its title says how many of how many show.
        let mut sample = snapshot(2, Vec::new(), 14);
        let mut busy = cluster();
        let first = busy.events[0].clone();
        busy.events = std::iter::repeat_n(first, 40).collect();
        sample.cluster = Some(busy);
        app.ingest(sample);
        let text = format!("{}", draw(&app, 80, 24).backend());
        assert!(text.contains("Membership events · newest "), "{text}");
        assert!(text.contains(" of 40 "), "{text}");
    }

    #[test]
    fn ascii_member_counts_name_their_states() {
        let mut app = app(2, true, true);
        app.options.glyphs = crate::tui::theme::Glyphs::new(true);
        // At 80 columns the Overview's pane takes the compact form.
        let text = format!("{}", draw(&app, 80, 24).backend());
        assert!(
            text.contains("o2 alive ?1 suspect x1 dead"),
            "the glyphs alone say little in ASCII: {text}"
        );
    }

    #[test]
    fn memory_only_node_without_gossip_shows_no_wal_or_cluster_pane() {
        let app = app(2, false, false);
        let text = format!("{}", draw(&app, 120, 40).backend());
        assert!(!text.contains("╭ WAL"), "{text}");
        assert!(!text.contains("╭ Cluster"), "{text}");
    }

    #[test]
    fn the_overview_leaves_no_blank_rows_where_the_throughput_chart_does_not_fit() {
        for with_wal in [true, false] {
            let app = app(2, with_wal, false);
            for height in 24..=32 {
                let terminal = draw(&app, 80, height);
                let buffer = terminal.backend().buffer();
                let rows: Vec<String> = (0..height)
                    .map(|y| (0..80).map(|x| buffer[(x, y)].symbol()).collect())
                    .collect();
                let first = rows.iter().position(|row| row.contains("Workers"));
                let log = rows.iter().rposition(|row| row.starts_with('╭'));
                let (Some(first), Some(log)) = (first, log) else {
                    panic!("panes drawn at 80x{height}:\n{}", rows.join("\n"));
                };
                // Every row of the left column, from the Workers pane to the log, is in a
                // pane: its first cell is a border.
                for (y, row) in rows.iter().enumerate().take(log).skip(first) {
                    assert!(
                        row.starts_with(['│', '╭', '╰']),
                        "row {y} at 80x{height} (wal {with_wal}) is blank:\n{}",
                        rows.join("\n")
                    );
                }
            }
        }
    }

    #[test]
    fn a_failed_log_is_impossible_to_miss() {
        let mut app = app(2, true, false);
        let mut sample = snapshot(2, Vec::new(), 13);
        sample.wal = Some(wal(13, false));
        app.ingest(sample);
        let text = format!("{}", draw(&app, 120, 40).backend());
        assert!(text.contains("FAILED: acknowledging nothing"), "{text}");
        assert!(text.contains("EIO"), "{text}");
    }

    #[test]
    fn a_next_segment_not_ready_is_shown_with_its_reason_while_the_log_works() {
        let mut app = app(2, true, false);
        let mut sample = snapshot(2, Vec::new(), 13);
        let mut filling = wal(13, true);
        filling.next_segment_error = Some(
            "No space left on device (os error 28), creating segment wal-0000000000000007.seg (16 MiB) ahead of time; when the current one fills, the log fails and the node acknowledges nothing more: free space in /var/lib/goliath/alpha".into(),
        );
        sample.wal = Some(filling);
        app.ingest(sample);
        let text = format!("{}", draw(&app, 120, 40).backend());
        assert!(
            text.contains("next segment not ready: No space left on device"),
            "{text}"
        );
        assert!(!text.contains("FAILED"), "the log still works: {text}");
    }

    #[test]
    fn an_idle_log_says_it_has_no_latency_to_show() {
        let mut app = app(2, false, false);
        // Several seconds without an fdatasync: no chart of zeros either (it drew two flat
        // lines at 0 under a "1us" scale, as if the disk answered instantly).
        for second in 13..20 {
            let mut sample = snapshot(2, Vec::new(), second);
            let mut idle = wal(second, true);
            idle.window_fsyncs = 0;
            idle.fsync_p50_us = 0.0;
            idle.fsync_p99_us = 0.0;
            idle.fsync_max_us = 0.0;
            sample.wal = Some(idle);
            app.ingest(sample);
        }
        let text = format!("{}", draw(&app, 120, 40).backend());
        assert!(
            text.contains("no fdatasync in the last 5s (200000 since start)"),
            "{text}"
        );
        assert!(!text.contains("p50 0ns"), "{text}");
        assert!(!text.contains("1us"), "{text}");
        // A log just started has no window to speak of.
        let mut sample = snapshot(2, Vec::new(), 20);
        let mut fresh = wal(20, true);
        fresh.window_fsyncs = 0;
        fresh.window_us = 20_000;
        sample.wal = Some(fresh);
        app.ingest(sample);
        let text = format!("{}", draw(&app, 120, 40).backend());
        assert!(text.contains("no fdatasync yet"), "{text}");
        assert!(!text.contains("0s window"), "{text}");
    }

    #[test]
    fn a_log_that_never_syncs_says_so_and_counts_per_write() {
        let mut app = app(2, false, false);
        for second in 13..16 {
            let mut sample = snapshot(2, Vec::new(), second);
            let mut never = wal(second, true);
            never.sync = crate::runtime::wal::WalSync::Never;
            never.window_fsyncs = 0;
            sample.wal = Some(never);
            app.ingest(sample);
        }
        let text = format!("{}", draw(&app, 120, 40).backend());
        assert!(
            text.contains("no fdatasync: acknowledged once written"),
            "{text}"
        );
        assert!(
            text.contains("rec/write") && !text.contains("rec/fsync"),
            "{text}"
        );
        assert!(!text.contains("WAL fsync"), "{text}");
    }

    #[test]
    fn compact_member_counts_count_left_members_apart_from_dead_ones() {
        let app = app(2, false, true);
        let mut cluster = cluster();
        cluster.counts.left = 1;
        let text: String = member_counts(&app, &cluster, true)
            .iter()
            .map(|span| span.content.to_string())
            .collect();
        assert!(text.contains("✕1") && text.contains("1 left"), "{text}");
    }

    #[test]
    fn a_member_with_a_full_arena_says_so_in_the_overview_at_any_width() {
        let mut app = app(2, true, false);
        let mut sample = snapshot(2, Vec::new(), 13);
        let mut members = cluster();
        for member in &mut members.members {
            if member.name == "beta"
                && let Some(meta) = member.meta.as_mut()
            {
                meta.arena_free = 0;
            }
        }
        sample.cluster = Some(members);
        app.ingest(sample);
        for width in [80, 140] {
            let text = format!("{}", draw(&app, width, 40).backend());
            let beta = text
                .lines()
                .find(|line| line.contains(" beta "))
                .unwrap_or_default();
            assert!(beta.contains("full"), "{width} columns: {text}");
        }
    }

    #[test]
    fn a_narrow_cluster_tab_drops_columns_instead_of_cutting_addresses() {
        let mut app = app(2, true, true);
        app.tab = Tab::Cluster;
        let text = format!("{}", draw(&app, 80, 24).backend());
        // What says which member is busy stays; the addresses go, dropped whole (at 100
        // columns the protocol address, where to send work, comes back before the gossip
        // address).
        assert!(text.contains("LOAD"), "{text}");
        assert!(!text.contains("GOSSIP"), "dropped whole: {text}");
        let wider = format!("{}", draw(&app, 100, 24).backend());
        assert!(
            wider.contains("PROTOCOL") && !wider.contains("GOSSIP"),
            "{wider}"
        );
        // Every address shown is whole (the fixture's are 127.0.0.1:74NN).
        for (at, _) in text.match_indices("127.0.0.1:") {
            let port = &text[at + 10..at + 14];
            assert!(port.chars().all(|c| c.is_ascii_digit()), "{port}: {text}");
        }
        assert!(text.contains("300.0ms ago"), "{text}");
    }

    #[test]
    fn ages_keep_growing_while_the_node_does_not_answer() {
        use crate::tui::state::{Link, Reply};
        let mut app = app(2, true, true);
        app.tab = Tab::Cluster;
        // The last sample arrived 5 s ago and the link has been down since.
        app.live.received_at = Instant::now().checked_sub(Duration::from_secs(5));
        app.on_reply(Reply::Disconnected {
            error: "connection refused".into(),
            retry_in: Duration::from_secs(2),
            refused: false,
        });
        assert!(matches!(app.link, Link::Down { .. }));
        let text = format!("{}", draw(&app, 120, 40).backend());
        assert!(!text.contains("300.0ms ago"), "not frozen: {text}");
        // 300 ms at the sample, 5 s since (and the few ms this test took).
        assert!(text.contains("5.3") && text.contains("s ago"), "{text}");
    }

    #[test]
    fn cluster_tab() {
        let mut app = app(2, true, true);
        app.tab = Tab::Cluster;
        insta::assert_snapshot!(draw(&app, 120, 40).backend());
    }

    #[test]
    fn a_small_cluster_pane_shows_the_members_that_need_a_look_and_counts_the_rest() {
        let mut app = app(2, true, true);
        if let Some(snapshot) = app.live.snapshot.as_mut()
            && let Some(cluster) = snapshot.cluster.as_mut()
        {
            for index in 0..12 {
                cluster.members.push(member(
                    &format!("healthy{index:02}"),
                    MemberState::Alive,
                    0.2,
                    false,
                ));
            }
            cluster
                .members
                .push(member("zulu", MemberState::Dead, 0.0, false));
        }
        let text = format!("{}", draw(&app, 80, 24).backend());
        assert!(
            text.contains("zulu"),
            "a dead member is never the one cut: {text}"
        );
        assert!(text.contains("more on the Cluster tab (4)"), "{text}");
        assert!(!text.contains(" lo│"), "no load cut short: {text}");
        app.options.glyphs = crate::tui::theme::Glyphs::new(true);
        let ascii = format!("{}", draw(&app, 80, 24).backend());
        for cut in [" l|", " lo|", " loa|", " load|"] {
            assert!(!ascii.contains(cut), "no load cut short in ASCII: {ascii}");
        }
    }

    #[test]
    fn the_cluster_tab_shows_members_needing_a_look_first_and_scrolls_to_the_rest() {
        use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        let mut app = app(2, true, true);
        app.tab = Tab::Cluster;
        if let Some(snapshot) = app.live.snapshot.as_mut()
            && let Some(cluster) = snapshot.cluster.as_mut()
        {
            for index in 1..=12 {
                let state = if index == 9 {
                    MemberState::Dead
                } else {
                    MemberState::Alive
                };
                cluster
                    .members
                    .push(member(&format!("m{index}"), state, 0.2, false));
            }
        }
        let draw_and_keep_hits = |app: &mut App| {
            let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
            let mut hits = HitMap::default();
            terminal.draw(|frame| hits = render(frame, app)).unwrap();
            app.hits = hits;
            format!("{}", terminal.backend())
        };
        let first = draw_and_keep_hits(&mut app);
        assert!(first.contains("m9 "), "the dead member is not cut: {first}");
        assert!(first.contains("of 16"), "says which rows show: {first}");
        assert!(!first.contains("m12 "), "too many for 80x24: {first}");
        app.on_key(KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT));
        let last = draw_and_keep_hits(&mut app);
        assert!(last.contains("m12 "), "G scrolls to the last: {last}");
        assert!(last.contains("16 of 16"), "{last}");
        let m8 = last.find("m8 ").expect("m8 shown");
        let m10 = last.find("m10 ").expect("m10 shown");
        assert!(m8 < m10, "numbers in names in number order: {last}");
        app.on_key(KeyEvent::new(KeyCode::Char('k'), KeyModifiers::NONE));
        let up = draw_and_keep_hits(&mut app);
        assert!(!up.contains("m12 "), "k scrolls back at once: {up}");
    }

    #[test]
    fn cluster_names_differing_at_the_end_are_told_apart_and_cut_names_are_marked() {
        let mut app = app(2, true, true);
        app.tab = Tab::Cluster;
        if let Some(snapshot) = app.live.snapshot.as_mut()
            && let Some(cluster) = snapshot.cluster.as_mut()
        {
            for name in [
                "cluster-worker-euw1-001",
                "cluster-worker-euw1-002",
                "a-name-far-longer-than-the-widest-column-allows-001",
                "a-name-far-longer-than-the-widest-column-allows-002",
            ] {
                cluster
                    .members
                    .push(member(name, MemberState::Alive, 0.2, false));
            }
        }
        let text = format!("{}", draw(&app, 120, 40).backend());
        assert!(
            text.contains("cluster-worker-euw1-001") && text.contains("cluster-worker-euw1-002"),
            "{text}"
        );
        // Cut to 40 columns in the middle where the other columns take the rest: the ends
        // that differ stay in sight.
        for end in ["001", "002"] {
            let cut = format!("a-name-far-longer-th…t-column-allows-{end}");
            assert!(text.contains(&cut), "{cut} in\n{text}");
        }
        // The Overview's panel cuts them to its width too, keeping phi and heard in sight.
        app.tab = Tab::Overview;
        for (width, height) in [(80, 60), (120, 60)] {
            let text = format!("{}", draw(&app, width, height).backend());
            for end in ["001", "002"] {
                let line = text
                    .lines()
                    .find(|line| line.contains("a-name") && line.contains(end))
                    .unwrap_or_else(|| panic!("member {end} listed at {width}:\n{text}"));
                assert!(line.contains("φ") && line.contains(" ago"), "{line}");
            }
        }
    }

    #[test]
    fn natural_order_compares_numbers_in_names_by_value() {
        let mut names = vec!["n10", "n2", "n1", "a", "n02b", "n2a", "m"];
        names.sort_by(|a, b| crate::runtime::units::natural_order(a, b));
        assert_eq!(names, ["a", "m", "n1", "n2", "n2a", "n02b", "n10"]);
    }

    #[test]
    fn a_long_status_message_wraps_instead_of_losing_its_end() {
        let mut app = app(2, true, true);
        let message = "submit failed: exec: program 'no-such-program' not found (looked in PATH); \
                       install it or give its full path, and check exec.enabled on the node";
        app.tell(Severity::Error, message);
        let text = format!("{}", draw(&app, 80, 24).backend());
        assert!(text.contains("exec.enabled on the node"), "{text}");
        let short = format!("{}", draw(&app, 200, 40).backend());
        assert!(short.contains("exec.enabled on the node"), "{short}");
    }

    #[test]
    fn a_yielded_node_says_its_member_table_is_as_last_known() {
        let mut app = app(2, true, true);
        app.tab = Tab::Cluster;
        let plain = format!("{}", draw(&app, 120, 40).backend());
        assert!(!plain.contains("yielded its name"), "{plain}");
        if let Some(snapshot) = app.live.snapshot.as_mut()
            && let Some(cluster) = snapshot.cluster.as_mut()
        {
            cluster.status = LocalStatus::Yielded;
        }
        let text = format!("{}", draw(&app, 120, 40).backend());
        assert!(
            text.contains("yielded its name to a newer process and stopped gossiping"),
            "{text}"
        );
    }

    #[test]
    fn cluster_tab_says_how_to_turn_gossip_on() {
        let mut app = app(2, true, false);
        app.tab = Tab::Cluster;
        let text = format!("{}", draw(&app, 100, 30).backend());
        assert!(text.contains("Gossip is off"), "{text}");
        assert!(text.contains("--gossip"), "{text}");
    }

    #[test]
    fn ascii_panels_stay_ascii() {
        let mut app = app(2, true, true);
        app.options.glyphs = crate::tui::theme::Glyphs::new(true);
        for tab in [Tab::Overview, Tab::Cluster, Tab::Logs] {
            app.tab = tab;
            let terminal = draw(&app, 120, 40);
            for cell in terminal.backend().buffer().content.iter() {
                assert!(cell.symbol().is_ascii(), "{tab:?}: {:?}", cell.symbol());
            }
            if tab == Tab::Logs {
                // The level letters are explained, and the arrows read as arrows.
                let text = format!("{}", terminal.backend());
                assert!(text.contains("+EWIDT:target | levels lit"), "{text}");
                assert!(text.contains("<> shown | +- kept | t hides"), "{text}");
            }
        }
    }
}
