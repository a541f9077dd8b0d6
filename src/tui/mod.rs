//! The terminal console: a live dashboard of one node (local, or remote with `--connect`)
//! that reads the node only through [`crate::runtime::NodeSnapshot`]s and replies — the same
//! types a remote console receives over the wire.
//!
//! Split as in tokio-console: pure data and its update logic (`state`), drawing (`view`),
//! and I/O (`conn` for the node, `console` for the terminal and the event loop).
//!
//! - [`keys`]: actions, default keys, `[console.keys]` rebinding.
//! - [`theme`]: dark, light and mono palettes; Unicode and ASCII glyphs.
//! - [`state`]: the state and its pure update logic (key → state → commands).
//! - [`view`]: drawing a frame from the state.
//! - [`conn`]: sampling the node and carrying out commands, locally or over the protocol.
//! - [`console`]: the terminal, input, signals and the event loop.
//! - [`log`]: the node's log as lines for the log panes (message first, then `key=value`).

pub mod conn;
pub mod console;
pub mod keys;
pub mod log;
pub mod state;
pub mod theme;
pub mod view;

pub use conn::Source;
pub use console::{ConsoleError, ConsoleSettings, run};
