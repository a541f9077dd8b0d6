//! A budget of log lines per window: past it, lines are counted instead, and the count is
//! said later. One flood (rejected connections, forged gossip members) must not write a
//! line per item.

use std::time::{Duration, Instant};

/// Lines logged in the current window, and those counted instead since the count was last
/// said.
#[derive(Debug, Clone)]
pub struct LineBudget {
    window: Duration,
    per_window: u32,
    window_start: Option<Instant>,
    logged: u32,
    unlogged: u64,
}

/// Whether to log one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Log it, saying how many went unlogged before it; `last` when no other is logged in
    /// this window.
    Log { unlogged_before: u64, last: bool },
    /// Count it only.
    Count,
}

impl LineBudget {
    /// At most `per_window` lines per `window`.
    pub const fn new(window: Duration, per_window: u32) -> Self {
        Self {
            window,
            per_window,
            window_start: None,
            logged: 0,
            unlogged: 0,
        }
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether a line at `now` is logged or counted.
    pub fn admit(&mut self, now: Instant) -> Line {
        if self.window_ended(now) {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged >= self.per_window {
            self.unlogged += 1;
            return Line::Count;
        }
        self.logged += 1;
        Line::Log {
            unlogged_before: std::mem::take(&mut self.unlogged),
            last: self.logged == self.per_window,
        }
    }

    /// Whether the window that began with the first line logged in it has ended at `now`
    /// (or none began yet).
    pub fn window_ended(&self, now: Instant) -> bool {
        self.window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window)
    }

    /// The lines counted and not yet said, which are said now.
    pub fn take_unlogged(&mut self) -> u64 {
        std::mem::take(&mut self.unlogged)
    }

    /// Whether lines were counted and not yet said.
    pub fn has_unlogged(&self) -> bool {
        self.unlogged > 0
    }
}
