//! Colours and glyphs. Three themes: `dark` (default), `light` and `mono`. Mono makes no
//! colour calls at all — every style is built from modifiers (bold, reversed, dim, underline)
//! only — because under `NO_COLOR` crossterm answers a colour call with an SGR reset that would
//! wipe a reversed selection. States are always told apart by glyph as well as colour.

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols;

use crate::runtime::TaskState;

/// Which palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeName {
    /// Light text on a dark terminal.
    Dark,
    /// Dark text on a light terminal.
    Light,
    /// No colours: modifiers and glyphs only.
    Mono,
}

impl ThemeName {
    /// From the config's name; `NO_COLOR` (set and not empty) always means mono.
    pub fn resolve(name: &str, no_color: bool) -> ThemeName {
        if no_color {
            return ThemeName::Mono;
        }
        match name {
            "light" => ThemeName::Light,
            "mono" => ThemeName::Mono,
            _ => ThemeName::Dark,
        }
    }
}

/// Every style the views use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Which palette this is.
    pub name: ThemeName,
    /// Plain text.
    pub text: Style,
    /// Labels and less important text.
    pub muted: Style,
    /// Titles, the node name.
    pub title: Style,
    /// Border of the focused pane.
    pub focus_border: Style,
    /// Border of other panes.
    pub border: Style,
    /// The selected row.
    pub selected: Style,
    /// The active tab.
    pub tab_active: Style,
    /// Key names in hints and help.
    pub key: Style,
    /// Errors.
    pub error: Style,
    /// Warnings (paused, disconnected, busy).
    pub warning: Style,
    /// Good news.
    pub ok: Style,
    /// Filled part of gauges and bars.
    pub gauge: Style,
    /// Gauge when nearly full.
    pub gauge_high: Style,
    /// Sparklines.
    pub spark: Style,
    /// Second chart series.
    pub spark_alt: Style,
}

impl Theme {
    /// The theme for a name.
    pub fn new(name: ThemeName) -> Theme {
        let plain = Style::new();
        match name {
            ThemeName::Mono => Theme {
                name,
                text: plain,
                muted: plain.add_modifier(Modifier::DIM),
                title: plain.add_modifier(Modifier::BOLD),
                focus_border: plain.add_modifier(Modifier::BOLD),
                border: plain.add_modifier(Modifier::DIM),
                selected: plain.add_modifier(Modifier::REVERSED),
                tab_active: plain.add_modifier(Modifier::REVERSED | Modifier::BOLD),
                key: plain.add_modifier(Modifier::BOLD),
                error: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
                warning: plain.add_modifier(Modifier::BOLD),
                ok: plain,
                gauge: plain,
                gauge_high: plain.add_modifier(Modifier::BOLD),
                spark: plain,
                spark_alt: plain.add_modifier(Modifier::DIM),
            },
            ThemeName::Dark => Theme {
                name,
                text: plain.fg(Color::Gray),
                muted: plain.fg(Color::DarkGray),
                title: plain.fg(Color::Cyan).add_modifier(Modifier::BOLD),
                focus_border: plain.fg(Color::Cyan),
                border: plain.fg(Color::DarkGray),
                selected: plain.fg(Color::Black).bg(Color::Cyan),
                tab_active: plain
                    .fg(Color::Black)
                    .bg(Color::Cyan)
                    .add_modifier(Modifier::BOLD),
                key: plain.fg(Color::Yellow).add_modifier(Modifier::BOLD),
                error: plain.fg(Color::LightRed).add_modifier(Modifier::BOLD),
                warning: plain.fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ok: plain.fg(Color::Green),
                gauge: plain.fg(Color::Green),
                gauge_high: plain.fg(Color::LightRed),
                spark: plain.fg(Color::Cyan),
                spark_alt: plain.fg(Color::Magenta),
            },
            ThemeName::Light => Theme {
                name,
                text: plain.fg(Color::Black),
                muted: plain.fg(Color::DarkGray),
                title: plain.fg(Color::Blue).add_modifier(Modifier::BOLD),
                focus_border: plain.fg(Color::Blue),
                border: plain.fg(Color::Gray),
                selected: plain.fg(Color::White).bg(Color::Blue),
                tab_active: plain
                    .fg(Color::White)
                    .bg(Color::Blue)
                    .add_modifier(Modifier::BOLD),
                key: plain.fg(Color::Magenta).add_modifier(Modifier::BOLD),
                error: plain.fg(Color::Red).add_modifier(Modifier::BOLD),
                warning: plain
                    .fg(Color::Rgb(160, 90, 0))
                    .add_modifier(Modifier::BOLD),
                ok: plain.fg(Color::Green),
                gauge: plain.fg(Color::Green),
                gauge_high: plain.fg(Color::Red),
                spark: plain.fg(Color::Blue),
                spark_alt: plain.fg(Color::Magenta),
            },
        }
    }

    /// The style of a task state.
    pub fn state(&self, state: TaskState) -> Style {
        if self.name == ThemeName::Mono {
            return match state {
                TaskState::Failed | TaskState::TimedOut => {
                    Style::new().add_modifier(Modifier::BOLD)
                }
                TaskState::Running => Style::new().add_modifier(Modifier::UNDERLINED),
                TaskState::Cancelled => Style::new().add_modifier(Modifier::DIM),
                _ => Style::new(),
            };
        }
        let light = self.name == ThemeName::Light;
        let color = match state {
            TaskState::Queued => {
                if light {
                    Color::DarkGray
                } else {
                    Color::Gray
                }
            }
            TaskState::Running => {
                if light {
                    Color::Blue
                } else {
                    Color::LightCyan
                }
            }
            TaskState::Succeeded => Color::Green,
            TaskState::Failed => Color::Red,
            TaskState::Cancelled => Color::Yellow,
            TaskState::TimedOut => Color::Magenta,
        };
        Style::new().fg(color)
    }
}

/// Symbols for terminals with and without Unicode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glyphs {
    /// Whether these are the ASCII ones.
    pub ascii: bool,
    /// Pane borders.
    pub border: symbols::border::Set<'static>,
    /// Sparkline bars.
    pub bars: symbols::bar::Set<'static>,
    /// Filled and empty cells of a horizontal bar.
    pub bar_full: &'static str,
    /// Empty cell of a horizontal bar.
    pub bar_empty: &'static str,
    /// The high-water mark on a gauge.
    pub high_water: &'static str,
    /// Separator in the header.
    pub dot: &'static str,
    /// Pointer at the selected row.
    pub pointer: &'static str,
    /// Horizontal ellipsis for cut text.
    pub ellipsis: &'static str,
}

const ASCII_BORDER: symbols::border::Set<'static> = symbols::border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

const ASCII_BARS: symbols::bar::Set<'static> = symbols::bar::Set {
    full: "#",
    seven_eighths: "#",
    three_quarters: "=",
    five_eighths: "=",
    half: "-",
    three_eighths: "-",
    one_quarter: ".",
    one_eighth: ".",
    empty: " ",
};

impl Glyphs {
    /// Unicode or ASCII glyphs.
    pub fn new(ascii: bool) -> Glyphs {
        if ascii {
            Glyphs {
                ascii,
                border: ASCII_BORDER,
                bars: ASCII_BARS,
                bar_full: "#",
                bar_empty: ".",
                high_water: "|",
                dot: "|",
                pointer: ">",
                ellipsis: "~",
            }
        } else {
            Glyphs {
                ascii,
                border: symbols::border::ROUNDED,
                bars: symbols::bar::NINE_LEVELS,
                bar_full: "█",
                bar_empty: "░",
                high_water: "┃",
                dot: "·",
                pointer: "▶",
                ellipsis: "…",
            }
        }
    }

    /// The glyph of a task state.
    pub fn state(&self, state: TaskState) -> &'static str {
        match (state, self.ascii) {
            (TaskState::Queued, false) => "◌",
            (TaskState::Running, false) => "▶",
            (TaskState::Succeeded, false) => "✔",
            (TaskState::Failed, false) => "✖",
            (TaskState::Cancelled, false) => "⊘",
            (TaskState::TimedOut, false) => "⧗",
            (TaskState::Queued, true) => ".",
            (TaskState::Running, true) => ">",
            (TaskState::Succeeded, true) => "+",
            (TaskState::Failed, true) => "x",
            (TaskState::Cancelled, true) => "-",
            (TaskState::TimedOut, true) => "!",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_makes_no_colour_calls() {
        let theme = Theme::new(ThemeName::Mono);
        let styles = [
            theme.text,
            theme.muted,
            theme.title,
            theme.focus_border,
            theme.border,
            theme.selected,
            theme.tab_active,
            theme.key,
            theme.error,
            theme.warning,
            theme.ok,
            theme.gauge,
            theme.gauge_high,
            theme.spark,
            theme.spark_alt,
        ];
        for style in styles
            .into_iter()
            .chain(TaskState::ALL.map(|s| theme.state(s)))
        {
            assert_eq!(style.fg, None, "{style:?}");
            assert_eq!(style.bg, None, "{style:?}");
        }
    }

    #[test]
    fn no_color_wins_over_the_configured_theme() {
        assert_eq!(ThemeName::resolve("dark", true), ThemeName::Mono);
        assert_eq!(ThemeName::resolve("light", false), ThemeName::Light);
    }

    #[test]
    fn every_state_has_a_distinct_glyph_in_both_sets() {
        for ascii in [false, true] {
            let glyphs = Glyphs::new(ascii);
            let mut seen: Vec<&str> = TaskState::ALL.iter().map(|s| glyphs.state(*s)).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), TaskState::ALL.len());
            if ascii {
                assert!(seen.iter().all(|g| g.is_ascii()));
            }
        }
    }
}
