//! The console's keymap: every action has a name, a description and default keys; the
//! `[console.keys]` table rebinds any of them (several keys per action, and two-key sequences
//! such as `g g`). The help overlay and the hint bar are generated from the live keymap, so
//! they always show what the keys really do.

use std::collections::BTreeMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::runtime::suggest;

/// Where an action applies, for grouping in the help overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Anywhere.
    General,
    /// Moving in tables, lists and panes.
    Navigation,
    /// Acting on the node.
    Tasks,
    /// The Logs tab.
    Logs,
}

impl Group {
    /// The heading shown in help.
    pub fn title(self) -> &'static str {
        match self {
            Group::General => "General",
            Group::Navigation => "Navigation",
            Group::Tasks => "Tasks",
            Group::Logs => "Logs tab",
        }
    }
}

macro_rules! actions {
    ($($variant:ident => $name:literal, $group:ident, $keys:expr, $help:literal;)*) => {
        /// Everything a key can do in the console.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $(
                #[doc = $help]
                $variant,
            )*
        }

        impl Action {
            /// Every action, in help order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// The name used in `[console.keys]`.
            pub fn name(self) -> &'static str {
                match self { $(Action::$variant => $name),* }
            }

            /// What it does, for the help overlay.
            pub fn description(self) -> &'static str {
                match self { $(Action::$variant => $help),* }
            }

            /// Its help group.
            pub fn group(self) -> Group {
                match self { $(Action::$variant => Group::$group),* }
            }

            /// The keys it has unless the config rebinds it.
            pub fn default_keys(self) -> &'static [&'static str] {
                match self { $(Action::$variant => $keys),* }
            }
        }
    };
}

actions! {
    Quit => "quit", General, &["q", "ctrl-c"], "quit (stops a local node)";
    Help => "help", General, &["?", "f1"], "show or hide this help";
    Palette => "palette", General, &[":"], "palette: submit, cancel IDs, task ID, tab, pause, help, q";
    NextTab => "next_tab", General, &["tab"], "next tab";
    PrevTab => "prev_tab", General, &["shift-tab"], "previous tab";
    Tab1 => "tab_1", General, &["1"], "tab 1 (Overview)";
    Tab2 => "tab_2", General, &["2"], "tab 2 (Tasks)";
    Tab3 => "tab_3", General, &["3"], "tab 3 (Logs)";
    Tab4 => "tab_4", General, &["4"], "tab 4 (Cluster)";
    Pause => "pause", General, &["space"], "pause or resume the display (the node keeps running)";
    Zoom => "zoom", General, &["e"], "zoom the focused pane, or back";
    Up => "up", Navigation, &["k", "up"], "select the row above / scroll up";
    Down => "down", Navigation, &["j", "down"], "select the row below / scroll down";
    Top => "top", Navigation, &["g g", "home"], "first row";
    Bottom => "bottom", Navigation, &["G", "end"], "last row";
    PageUp => "page_up", Navigation, &["pgup", "ctrl-b"], "one page up (Logs: scroll back, stops following)";
    PageDown => "page_down", Navigation, &["pgdn", "ctrl-f"], "one page down";
    FocusNext => "focus_next", Navigation, &["l", "ctrl-right"], "focus the next pane";
    FocusPrev => "focus_prev", Navigation, &["h", "ctrl-left"], "focus the previous pane";
    Open => "open", Navigation, &["enter"], "open the selected (or top) task's details";
    Back => "back", Navigation, &["esc"], "close, go back (Logs: follow new lines again)";
    Filter => "filter", Tasks, &["/"], "filter tasks by text (!text hides matches)";
    Sort => "sort", Tasks, &["s"], "sort tasks by the next column";
    SortReverse => "sort_reverse", Tasks, &["S"], "reverse the sort order";
    Submit => "submit", Tasks, &["n"], "submit tasks (e.g. spin 300ms x20)";
    Cancel => "cancel", Tasks, &["x"], "cancel the selected task (asks first)";
    LogTargets => "log_targets", Logs, &["t"], "show or hide the log target list";
    LogFocus => "log_focus", Logs, &["f"], "show only the selected target";
    LogShowMore => "log_show_more", Logs, &["right"], "show one more level for the target";
    LogShowLess => "log_show_less", Logs, &["left"], "show one level less for the target";
    LogCaptureMore => "log_capture_more", Logs, &["+"], "keep one more level for the target (a level that log.level drops never reaches the console)";
    LogCaptureLess => "log_capture_less", Logs, &["-"], "keep one level less for the target";
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Action {
    /// The action named `name` in `[console.keys]`.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// The tab index (0-based) a `tab_N` action selects.
    pub fn tab_index(self) -> Option<usize> {
        const TABS: [Action; 4] = [Action::Tab1, Action::Tab2, Action::Tab3, Action::Tab4];
        TABS.iter().position(|a| *a == self)
    }

    /// Whether `--readonly` removes this action.
    pub fn changes_the_node(self) -> bool {
        matches!(self, Action::Submit | Action::Cancel)
    }
}

/// One key with its modifiers. Characters carry their case, so `G` is shift-g.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyChord {
    /// The key.
    pub code: KeyCode,
    /// Ctrl and Alt (Shift is folded into characters and `shift-tab`).
    pub modifiers: KeyModifiers,
}

impl KeyChord {
    /// A chord from a terminal key event, normalised so it compares equal to a parsed one.
    pub fn from_event(event: &KeyEvent) -> KeyChord {
        let mut modifiers = event.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        let code = match event.code {
            KeyCode::Char(c) if modifiers.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            KeyCode::Tab if event.modifiers.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            other => other,
        };
        if code == KeyCode::BackTab {
            modifiers.remove(KeyModifiers::SHIFT);
        }
        KeyChord { code, modifiers }
    }

    /// Parses `q`, `G`, `ctrl-c`, `alt-x`, `shift-tab`, `enter`, `pgup`, `f1`, `space`, ….
    pub fn parse(text: &str) -> Result<KeyChord, String> {
        let mut modifiers = KeyModifiers::NONE;
        let mut rest = text;
        let mut shift = false;
        loop {
            let lower = rest.to_ascii_lowercase();
            if rest.len() > 1 && lower.starts_with("ctrl-") {
                modifiers |= KeyModifiers::CONTROL;
                rest = &rest[5..];
            } else if rest.len() > 1 && lower.starts_with("alt-") {
                modifiers |= KeyModifiers::ALT;
                rest = &rest[4..];
            } else if rest.len() > 1 && lower.starts_with("shift-") {
                shift = true;
                rest = &rest[6..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) if !c.is_whitespace() && !c.is_control() => {
                let c = if modifiers.contains(KeyModifiers::CONTROL) {
                    c.to_ascii_lowercase()
                } else if shift {
                    c.to_ascii_uppercase()
                } else {
                    c
                };
                KeyCode::Char(c)
            }
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" if shift => KeyCode::BackTab,
                "tab" => KeyCode::Tab,
                "backtab" => KeyCode::BackTab,
                "space" => KeyCode::Char(' '),
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "pgup" | "pageup" => KeyCode::PageUp,
                "pgdn" | "pgdown" | "pagedown" => KeyCode::PageDown,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "insert" | "ins" => KeyCode::Insert,
                name => match name.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
                    Some(n @ 1..=12) => KeyCode::F(n),
                    _ => {
                        // A misspelt name gets the nearest, as a misspelt action does.
                        const NAMES: [&str; 17] = [
                            "enter",
                            "esc",
                            "tab",
                            "backtab",
                            "space",
                            "up",
                            "down",
                            "left",
                            "right",
                            "pgup",
                            "pgdn",
                            "home",
                            "end",
                            "backspace",
                            "delete",
                            "insert",
                            "return",
                        ];
                        if let Some(near) = crate::runtime::suggest::closest(name, NAMES) {
                            return Err(format!(
                                "unknown key '{text}'; did you mean '{}'?",
                                text.replacen(rest, near, 1)
                            ));
                        }
                        return Err(format!(
                            "unknown key '{text}': use a character (q, G, ?), a name (enter, esc, tab, space, up, down, left, right, pgup, pgdn, home, end, backspace, delete, f1-f12) with optional ctrl-, alt- or shift-"
                        ));
                    }
                },
            },
        };
        Ok(KeyChord { code, modifiers })
    }
}

impl fmt::Display for KeyChord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("shift-tab"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("pgup"),
            KeyCode::PageDown => f.write_str("pgdn"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("delete"),
            KeyCode::Insert => f.write_str("insert"),
            KeyCode::F(n) => write!(f, "f{n}"),
            _ => f.write_str("?"),
        }
    }
}

/// One or two chords pressed in a row.
pub type KeySequence = Vec<KeyChord>;

fn parse_sequence(text: &str) -> Result<KeySequence, String> {
    let chords = text
        .split_whitespace()
        .map(KeyChord::parse)
        .collect::<Result<Vec<_>, _>>()?;
    match chords.len() {
        1 | 2 => Ok(chords),
        0 => Err("an empty key; write a key such as \"q\" or \"ctrl-c\"".to_string()),
        _ => Err(format!(
            "'{text}' has {} keys; a binding is one key or two in a row (\"g g\")",
            chords.len()
        )),
    }
}

fn format_sequence(sequence: &[KeyChord]) -> String {
    sequence
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a key press means, given the keys pressed just before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// A complete binding.
    Action(Action),
    /// The start of a two-key binding: wait for the next key.
    Pending,
    /// Bound to nothing.
    Unbound,
}

/// A `[console.keys]` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`console.keys.{action}`: {message}")]
pub struct KeymapError {
    /// The action name as written.
    pub action: String,
    /// What is wrong.
    pub message: String,
}

/// The live bindings: action → key sequences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: Vec<(KeySequence, Action)>,
}

impl Default for Keymap {
    fn default() -> Self {
        let mut bindings = Vec::new();
        for action in Action::ALL {
            for key in action.default_keys() {
                if let Ok(sequence) = parse_sequence(key) {
                    bindings.push((sequence, *action));
                }
            }
        }
        Keymap { bindings }
    }
}

impl Keymap {
    /// The default keymap with `[console.keys]` applied: each listed action gets exactly the
    /// keys given (an empty list unbinds it), and a key given to an action is taken away from
    /// any other action's defaults.
    ///
    /// An action listed with exactly its default keys changes nothing and is not counted as
    /// given: the shipped file (and so a copy of it, and the table `--set` merges into) lists
    /// every action, and `cancel = ["n"]` there must take `n` from `submit` as it does in a
    /// file that lists `cancel` alone.
    pub fn with_overrides(
        overrides: &BTreeMap<String, Vec<String>>,
    ) -> Result<Keymap, KeymapError> {
        let mut map = Keymap::default();
        let mut assigned: Vec<(KeySequence, Action)> = Vec::new();
        let defaults = default_bindings();
        for (name, keys) in overrides {
            if defaults.get(name) == Some(keys) {
                continue;
            }
            let action = Action::from_name(name).ok_or_else(|| {
                let names = Action::ALL.iter().map(|a| a.name());
                KeymapError {
                    action: name.clone(),
                    message: match suggest::closest(name, names) {
                        Some(close) => {
                            format!("unknown action '{name}'; did you mean '{close}'?")
                        }
                        None => format!(
                            "unknown action '{name}'; actions are: {}",
                            Action::ALL
                                .iter()
                                .map(|a| a.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    },
                }
            })?;
            if action == Action::Quit && keys.is_empty() {
                return Err(KeymapError {
                    action: name.clone(),
                    message: "quit needs at least one key".to_string(),
                });
            }
            map.bindings.retain(|(_, a)| *a != action);
            for key in keys {
                let sequence = parse_sequence(key).map_err(|message| KeymapError {
                    action: name.clone(),
                    message,
                })?;
                if let Some((_, other)) = assigned.iter().find(|(s, _)| conflicts(s, &sequence)) {
                    return Err(KeymapError {
                        action: name.clone(),
                        message: format!(
                            "key '{key}' is also given to `{other}`; a key can do one thing"
                        ),
                    });
                }
                assigned.push((sequence, action));
            }
        }
        map.bindings
            .retain(|(sequence, _)| !assigned.iter().any(|(taken, _)| conflicts(taken, sequence)));
        map.bindings.extend(assigned);
        map.bindings.sort_by_key(|(_, action)| *action);
        Ok(map)
    }

    /// Actions that `overrides` left with no key without unbinding them: each had default
    /// keys, was not given keys of its own, and lost every one to an action that was (`cancel
    /// = ["n"]` takes `n` from `submit`). Each is said with the keys it lost and who took
    /// them, for the console to warn about at start.
    pub fn left_keyless(&self, overrides: &BTreeMap<String, Vec<String>>) -> Vec<String> {
        let defaults = default_bindings();
        let given = |action: Action| {
            overrides
                .get(action.name())
                .is_some_and(|keys| defaults.get(action.name()) != Some(keys))
        };
        Action::ALL
            .iter()
            .filter(|action| {
                !action.default_keys().is_empty()
                    && !given(**action)
                    && self.keys_for(**action).is_empty()
            })
            .map(|action| {
                let lost: Vec<String> = action
                    .default_keys()
                    .iter()
                    .map(|key| {
                        let taker = parse_sequence(key).ok().and_then(|sequence| {
                            self.bindings
                                .iter()
                                .find(|(taken, _)| conflicts(taken, &sequence))
                                .map(|(_, other)| other.name())
                        });
                        match taker {
                            Some(other) => format!("{key} to `{other}`"),
                            None => key.to_string(),
                        }
                    })
                    .collect();
                format!("`{}` lost {}", action.name(), lost.join(", "))
            })
            .collect()
    }

    /// Resolves the keys pressed so far (`pending`, at most one) followed by `chord`.
    pub fn resolve(&self, pending: &[KeyChord], chord: KeyChord) -> Resolved {
        let mut typed: KeySequence = pending.to_vec();
        typed.push(chord);
        let mut prefix = false;
        for (sequence, action) in &self.bindings {
            if *sequence == typed {
                return Resolved::Action(*action);
            }
            if sequence.len() > typed.len() && sequence.starts_with(&typed) {
                prefix = true;
            }
        }
        if prefix {
            Resolved::Pending
        } else {
            Resolved::Unbound
        }
    }

    /// The keys bound to `action`, as written in help ("q, ctrl-c").
    pub fn keys_for(&self, action: Action) -> Vec<String> {
        self.bindings
            .iter()
            .filter(|(_, a)| *a == action)
            .map(|(sequence, _)| format_sequence(sequence))
            .collect()
    }

    /// The first key bound to `action`, for hints ("n submit").
    pub fn first_key(&self, action: Action) -> Option<String> {
        self.keys_for(action).into_iter().next()
    }
}

/// Two bindings conflict when they are equal or one is the first key of the other.
fn conflicts(a: &[KeyChord], b: &[KeyChord]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// The default bindings as `[console.keys]` entries, for the shipped config and its check.
pub fn default_bindings() -> BTreeMap<String, Vec<String>> {
    Action::ALL
        .iter()
        .map(|a| {
            (
                a.name().to_string(),
                a.default_keys().iter().map(|k| k.to_string()).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn terminal_events_match_parsed_keys() {
        let cases = [
            ("q", key(KeyCode::Char('q'), KeyModifiers::NONE)),
            ("G", key(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            ("shift-g", key(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            ("ctrl-c", key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            ("shift-tab", key(KeyCode::BackTab, KeyModifiers::SHIFT)),
            ("shift-tab", key(KeyCode::Tab, KeyModifiers::SHIFT)),
            ("space", key(KeyCode::Char(' '), KeyModifiers::NONE)),
            ("pgdn", key(KeyCode::PageDown, KeyModifiers::NONE)),
            ("f1", key(KeyCode::F(1), KeyModifiers::NONE)),
            ("?", key(KeyCode::Char('?'), KeyModifiers::SHIFT)),
        ];
        for (text, event) in cases {
            assert_eq!(
                KeyChord::parse(text).unwrap(),
                KeyChord::from_event(&event),
                "{text}"
            );
        }
    }

    #[test]
    fn every_default_key_parses_and_no_two_actions_share_one() {
        let map = Keymap::default();
        let parsed: usize = Action::ALL.iter().map(|a| a.default_keys().len()).sum();
        assert_eq!(map.bindings.len(), parsed);
        for (i, (a, action_a)) in map.bindings.iter().enumerate() {
            for (b, action_b) in &map.bindings[i + 1..] {
                assert!(
                    !conflicts(a, b),
                    "{action_a} and {action_b} share {}",
                    format_sequence(a)
                );
            }
        }
    }

    #[test]
    fn two_key_sequences_wait_for_the_second_key() {
        let map = Keymap::default();
        let g = KeyChord::parse("g").unwrap();
        assert_eq!(map.resolve(&[], g), Resolved::Pending);
        assert_eq!(map.resolve(&[g], g), Resolved::Action(Action::Top));
        let z = KeyChord::parse("z").unwrap();
        assert_eq!(map.resolve(&[g], z), Resolved::Unbound);
    }

    #[test]
    fn overrides_replace_an_actions_keys_and_take_them_from_others() {
        let mut overrides = BTreeMap::new();
        overrides.insert("cancel".to_string(), vec!["d".to_string(), "delete".into()]);
        overrides.insert("help".to_string(), vec!["q".to_string()]);
        overrides.insert("quit".to_string(), vec!["ctrl-q".to_string()]);
        let map = Keymap::with_overrides(&overrides).unwrap();
        let press = |k: &str| map.resolve(&[], KeyChord::parse(k).unwrap());
        assert_eq!(press("d"), Resolved::Action(Action::Cancel));
        assert_eq!(press("delete"), Resolved::Action(Action::Cancel));
        assert_eq!(press("x"), Resolved::Unbound);
        assert_eq!(press("q"), Resolved::Action(Action::Help));
        assert_eq!(press("ctrl-q"), Resolved::Action(Action::Quit));
        assert_eq!(press("ctrl-c"), Resolved::Unbound);
        assert_eq!(map.keys_for(Action::Cancel), vec!["d", "delete"]);
    }

    #[test]
    fn bad_entries_name_the_action_and_what_is_wrong() {
        let check = |name: &str, keys: &[&str], wanted: &str| {
            let mut overrides = BTreeMap::new();
            overrides.insert(
                name.to_string(),
                keys.iter().map(|k| k.to_string()).collect(),
            );
            let error = Keymap::with_overrides(&overrides).unwrap_err();
            let text = error.to_string();
            assert!(text.contains(&format!("console.keys.{name}")), "{text}");
            assert!(text.contains(wanted), "{text}");
        };
        check("qiut", &["q"], "did you mean 'quit'");
        check("quit", &["ctrl-banana"], "unknown key 'ctrl-banana'");
        // A misspelt key name gets the nearest, its modifiers kept.
        check(
            "cancel",
            &["d", "delet"],
            "unknown key 'delet'; did you mean 'delete'?",
        );
        check("quit", &["ctrl-entr"], "did you mean 'ctrl-enter'?");
        check("quit", &[], "at least one key");
        check("top", &["g g g"], "one key or two");
        let mut clash = BTreeMap::new();
        clash.insert("cancel".to_string(), vec!["d".to_string()]);
        clash.insert("submit".to_string(), vec!["d".to_string()]);
        let text = Keymap::with_overrides(&clash).unwrap_err().to_string();
        assert!(text.contains("also given to `cancel`"), "{text}");
    }

    #[test]
    fn a_key_moved_in_a_full_listing_leaves_its_old_action_unbound() {
        // Every action listed (the shipped file, or the table `--set` merges into), one
        // changed: the key moves, as when the file lists that action alone.
        let mut full = default_bindings();
        full.insert("cancel".to_string(), vec!["n".to_string()]);
        let mut alone = BTreeMap::new();
        alone.insert("cancel".to_string(), vec!["n".to_string()]);
        let map = Keymap::with_overrides(&full).expect("n moves to cancel");
        assert_eq!(map, Keymap::with_overrides(&alone).expect("valid"));
        assert_eq!(
            map.resolve(&[], parse_sequence("n").unwrap()[0]),
            Resolved::Action(Action::Cancel)
        );
        assert!(
            map.keys_for(Action::Submit).is_empty(),
            "submit lost its only key"
        );
    }

    #[test]
    fn an_action_left_keyless_by_another_is_named_with_its_taker_but_not_one_unbound_on_purpose() {
        let keyless = |pairs: &[(&str, &[&str])]| {
            let mut overrides = default_bindings();
            for (name, keys) in pairs {
                let keys = keys.iter().map(|key| key.to_string()).collect();
                overrides.insert(name.to_string(), keys);
            }
            Keymap::with_overrides(&overrides)
                .expect("valid")
                .left_keyless(&overrides)
        };
        assert!(keyless(&[]).is_empty(), "the defaults leave none");
        assert_eq!(
            keyless(&[("cancel", &["n"])]),
            ["`submit` lost n to `cancel`"]
        );
        // Given a key of its own, or unbound by the user, it is no surprise.
        assert!(keyless(&[("cancel", &["n"]), ("submit", &["a"])]).is_empty());
        assert!(keyless(&[("submit", &[])]).is_empty());
        // One key of two taken: the other still works.
        assert!(keyless(&[("cancel", &["j"])]).is_empty());
        // Both taken.
        assert_eq!(
            keyless(&[("submit", &["j", "down"])]),
            ["`down` lost j to `submit`, down to `submit`"]
        );
    }

    #[test]
    fn default_bindings_round_trip_to_the_default_keymap() {
        assert_eq!(
            Keymap::with_overrides(&default_bindings()).unwrap(),
            Keymap::default()
        );
    }
}
