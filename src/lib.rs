//! Goliath: a distributed compute runtime in one binary.
//!
//! - [`runtime`]: the node — work-stealing scheduler, task arena, tasks, history, events.
//! - [`codec`]: the one serialization module (bincode, size-limited).
//! - [`config`]: typed configuration with the shipped defaults.
//! - [`tui`]: the terminal console (reads the node only through snapshots and events).

pub mod codec;
pub mod config;
pub mod runtime;
pub mod tui;
