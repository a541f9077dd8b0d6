//! Goliath: a distributed compute runtime in one binary.
//!
//! - [`runtime`]: the node — work-stealing scheduler, task arena, tasks, history, events.
//! - [`config`]: typed configuration with the shipped defaults.
//! - [`tui`]: the terminal console (reads the node only through snapshots and events).

pub mod config;
pub mod runtime;
pub mod tui;
