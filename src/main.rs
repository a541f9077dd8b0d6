//! The `goliath` binary: parses the command line, loads the config, and runs a node, the
//! console or a client command. The only place that uses `anyhow` and decides exit codes.

/// `print!` for a command's output. A reader that went away (`goliath tasks | head -1`) is
/// written nothing more (a `watch` ends), where `print!` would panic; see [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` for a command's output; see [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` for messages to the user, which a closed standard error (`goliath tasks 2>&1
/// | head -1`) does not turn into a panic and exit 101: the message is lost, the command
/// ends with its own exit code.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` for messages to the user; see [`errln!`].
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

mod commands;
mod demo_children;
mod wal_commands;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use goliath::config::{Config, ConfigError, ConfigOrigin, DEFAULT_TOML};
use goliath::runtime::gossip::Cluster;
use goliath::runtime::net::client::ConnectOptions;
use goliath::runtime::net::{Client, Server, ServerConfig};
use goliath::runtime::{Node, NodeBuilder, TaskId, TaskState};
use goliath::tui::{ConsoleSettings, Source};

use commands::{ClientCommand, CommandError};

/// Exit codes, documented in README.md.
pub(crate) mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A task failed (`submit --wait`), or the node failed while running.
    pub const FAILURE: u8 = 1;
    /// A usage or config error: bad flag, bad config file, bad task spec.
    pub const USAGE: u8 = 2;
    /// No connection to the node (refused, timed out, dropped).
    pub const CONNECT: u8 = 3;
    /// The node refused the handshake: other cluster, other protocol version.
    pub const HANDSHAKE: u8 = 4;
    /// The node is busy (all task slots in use) or shutting down.
    pub const BUSY: u8 = 5;
    /// No such task.
    pub const NOT_FOUND: u8 = 6;
    /// Stopped by a second Ctrl-C / SIGTERM during shutdown.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Parser, Debug)]
#[command(name = "goliath", version, about = "A distributed compute runtime in one binary", long_about = None)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    // For bare `goliath` (the console on a local node); `node`, `console` and `demo` take
    // them too, after their name, and the two are merged (see `NodeArgs::merged`).
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    console: ConsoleArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Where the config comes from; every command reads it (clients for the node's address and
/// cluster name), so these go anywhere on the line.
#[derive(Args, Debug, Clone, Default)]
struct ConfigArgs {
    /// Config file (else $GOLIATH_CONFIG, else $XDG_CONFIG_HOME/goliath/config.toml or ~/.config/goliath/config.toml, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set a config key as the config file would (repeatable). A node (node, console, demo) takes any key; commands that talk to a node (submit, status, …) only net.* and node.cluster; console --connect also console.* and log.*; wal node.*, wal.*, history.*, gossip.bind and gossip.enabled.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// How the console looks and what it allows; each overrides `[console]` in the config.
#[derive(Args, Debug, Clone, Default)]
struct ConsoleArgs {
    /// Console: show the node but hide submit and cancel.
    #[arg(long)]
    readonly: bool,
    /// Console: no mouse (clicks and the wheel go to the terminal).
    #[arg(long)]
    no_mouse: bool,
    /// Console: ASCII only, for terminals without Unicode glyphs.
    #[arg(long)]
    ascii: bool,
    /// Console theme: dark, light or mono (NO_COLOR selects mono, unless this flag is given).
    #[arg(long, value_name = "THEME", value_parser = ["dark", "light", "mono"])]
    theme: Option<String>,
}

/// Settings for a local node; each overrides the config file.
#[derive(Args, Debug, Clone, Default)]
struct NodeArgs {
    /// From [`ConfigArgs`], set by [`NodeArgs::merged`].
    #[arg(skip)]
    config: Option<PathBuf>,
    /// From [`ConfigArgs`], set by [`NodeArgs::merged`].
    #[arg(skip)]
    overrides: Vec<String>,
    /// Node name (config node.name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Worker threads, or "auto" (config scheduler.workers).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    workers: Option<String>,
    /// Task slots in the arena, a power of two (config arena.slots).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    arena_slots: Option<String>,
    /// Address the protocol listens on (config net.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Allow listening on a non-loopback address without authentication.
    #[arg(long)]
    insecure_listen: bool,
    /// Data directory for the write-ahead log (config node.data_dir; default
    /// $XDG_DATA_HOME/goliath/<node name>).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// UDP address gossip listens on; turns gossip on (config gossip.bind).
    #[arg(long, value_name = "ADDR")]
    gossip: Option<String>,
    /// Join a cluster through members' gossip addresses; turns gossip on (config gossip.join).
    #[arg(long, value_name = "HOST:PORT,...")]
    join: Option<String>,
    /// Stop when standard input closes (used by `goliath demo` for its child nodes).
    #[arg(long, hide = true)]
    exit_with_stdin: bool,
}

use goliath::runtime::task::CLI_CANCEL_IDS_MAX;

/// The text form, for `goliath submit --help` (the README has the whole of it).
const SPEC_HELP: &str = "\
Task specs: several quoted one per argument (\"fib 30\" \"sleep 1s\"), or one spec as unquoted
words (spin 200ms x20):
  spin 200ms          busy CPU for that long (up to 1h)
  sleep 2s            wait on a timer, holding no worker (up to 7d)
  fib 35              Nth Fibonacci number by naive recursion (N up to 60)
  primes 10000000     count the primes up to N (N up to 10^12)
  hash 64MiB          CRC32C of that many generated bytes (up to 64GiB)
  echo some text      return the text (up to 4 KiB)
  exec -- cmd args    run a program, capturing its output (needs exec.remote = true on the node)
Options, after the kind (for exec before --, for echo at the end):
  xN                  N copies (up to 1000000), accepted whole or not at all
  timeout=5s          stop the task once it has used that long: spin, fib, primes and hash
                      count their time on a worker, sleep and exec the wall time from their
                      start (a run after a restart starts the budget again)
Durations: ns us ms s m h d. Sizes: B, KiB MiB GiB TiB (powers of 1024, also K M G T),
KB MB GB TB (powers of 1000).
Quote a word with spaces in it: echo \"two words\" or exec -- sh -c 'echo hi'.";

/// A node's protocol address as `--node` and `--connect` take it: `HOST:PORT` (a name or
/// an IP; IPv6 in brackets). Anything else is a usage error, not a failed connection.
fn node_address(text: &str) -> Result<String, String> {
    let example = "give the node's protocol address, e.g. 127.0.0.1:7420";
    if let Some((scheme, rest)) = text.split_once("://") {
        return Err(format!(
            "{text:?} is a URL; give HOST:PORT without `{scheme}://`, e.g. {}",
            rest.trim_end_matches('/')
        ));
    }
    let Some((host, port)) = text.rsplit_once(':').filter(|(host, _)| !host.is_empty()) else {
        return Err(format!("{text:?} is not HOST:PORT; {example}"));
    };
    // An IPv6 address without brackets: its last group read as a port.
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "{text:?} is not HOST:PORT; an IPv6 address goes in brackets, followed by the port, e.g. [::1]:7420"
        ));
    }
    match port.parse::<u64>() {
        Ok(1..=65535) => Ok(text.to_string()),
        Ok(port) => Err(format!(
            "{text:?}: port {port} is out of range (1 to 65535); {example}"
        )),
        Err(_) => Err(format!("{text:?} is not HOST:PORT; {example}")),
    }
}

/// An idempotency key: any text but blank (a blank one from an unset shell variable would
/// tie unrelated submissions together), at most `IDEMPOTENCY_KEY_MAX` bytes.
fn idempotency_key(text: &str) -> Result<String, String> {
    use goliath::runtime::node::IDEMPOTENCY_KEY_MAX;
    if text.trim().is_empty() {
        return Err(
            "an idempotency key cannot be blank; leave the flag out to submit without one".into(),
        );
    }
    if text.len() > IDEMPOTENCY_KEY_MAX {
        return Err(format!(
            "the key is {} bytes, more than the {IDEMPOTENCY_KEY_MAX} a key may have; use a shorter one (a UUID, or a hash of a longer name)",
            text.len()
        ));
    }
    Ok(text.to_string())
}

/// Where a client command connects.
#[derive(Args, Debug, Clone)]
struct Target {
    /// Node address (default: net.listen of this machine's config; 127.0.0.1:7420 in the shipped one).
    #[arg(long = "node", value_name = "ADDR", value_parser = node_address)]
    node: Option<String>,
    /// Print JSON (one document, or JSON lines for streams) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node without the console until SIGINT/SIGTERM/SIGHUP; logs go to stderr.
    Node {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The live console: on a local node (the default for bare `goliath`), or attached to a
    /// running node with --connect.
    Console {
        /// Attach to the node at this address instead of starting one here.
        #[arg(long, value_name = "ADDR", value_parser = node_address)]
        connect: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        console: ConsoleArgs,
    },
    /// Submit tasks: `goliath submit spin 200ms x20`, `goliath submit "fib 30" "sleep 1s"`, or `-` for one spec per line on stdin (blank lines and lines starting with # skipped).
    #[command(after_help = SPEC_HELP)]
    Submit {
        /// Wait for the tasks to finish and print their outcomes; exit 1 if any did not succeed.
        #[arg(long)]
        wait: bool,
        /// Submitting again with the same key returns the same ids instead of new tasks.
        #[arg(long, value_name = "KEY", value_parser = idempotency_key)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        target: Target,
        /// Task specs in the text form.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true, value_name = "SPEC")]
        specs: Vec<String>,
    },
    /// Cancel tasks by id: ids and ranges (`goliath cancel 7 28-127`).
    Cancel {
        #[command(flatten)]
        target: Target,
        /// Task ids, or ranges of ids like 28-127.
        #[arg(required = true, value_name = "ID", allow_negative_numbers = true)]
        ids: Vec<String>,
    },
    /// Describe one task.
    Task {
        #[command(flatten)]
        target: Target,
        /// Task id.
        #[arg(allow_negative_numbers = true)]
        id: TaskId,
    },
    /// List tasks, newest first.
    Tasks {
        /// Only tasks in this state (queued, running, succeeded, failed, cancelled, timed_out).
        #[arg(long, value_name = "STATE")]
        state: Option<TaskState>,
        /// At most this many (1 to 10000).
        #[arg(long, default_value_t = 50, value_name = "N", value_parser = task_limit, allow_negative_numbers = true)]
        limit: usize,
        /// Only tasks older than this id: the next page after a full one ends at this id.
        #[arg(long, value_name = "ID", allow_negative_numbers = true)]
        before: Option<TaskId>,
        #[command(flatten)]
        target: Target,
    },
    /// Show the node's status: workers, arena, task counts.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Print task events as they happen (Ctrl-C to stop).
    Watch {
        /// Also print a node summary this often, e.g. 1s (100ms at least).
        #[arg(long, value_name = "DURATION", value_parser = snapshot_period, allow_hyphen_values = true)]
        snapshots: Option<Duration>,
        #[command(flatten)]
        target: Target,
    },
    /// Ask the node to shut down (running tasks get shutdown.grace, then run again at its next start; a memory-only node cancels them)
    Shutdown {
        /// Return once the node has stopped (no longer listening, and on this machine its
        /// process gone), so a node can be started again right after.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Show configuration: the shipped defaults, or what this invocation would use.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Show cluster membership as the node sees it: members, states, phi, load, events.
    Members {
        #[command(flatten)]
        target: Target,
    },
    /// Run a local demo cluster: this node plus N-1 headless child nodes on loopback.
    Demo {
        /// Nodes in the demo cluster, this one included (1 to 32).
        #[arg(default_value_t = 3, value_name = "N", allow_negative_numbers = true, value_parser = demo_nodes)]
        nodes: usize,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        console: ConsoleArgs,
    },
    /// Inspect a node's write-ahead log (verify, dump: beside a running node, changing
    /// nothing), or repair a damaged one.
    Wal {
        #[command(subcommand)]
        action: WalAction,
    },
}

#[derive(Subcommand, Debug)]
enum WalAction {
    /// Check every record; exit 0 if a node would start on the directory, 1 if damaged.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: WalPlace,
    },
    /// Print every record (checkpoint, then segments) as text, or JSON lines.
    Dump {
        /// One JSON document per record.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: WalPlace,
    },
    /// Make a damaged log one a node starts on again, from every record still readable.
    ///
    /// What the damaged bytes held is lost: tasks accepted there are gone, and a task that
    /// finished there runs again. The old files are moved to a `damaged-<time>` directory
    /// inside the data directory, never deleted. The node must be stopped. Exit 0 when
    /// repaired or already healthy, 1 when it could not be done.
    Repair {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: WalPlace,
    },
}

/// Which node's log a `wal` command reads.
#[derive(Args, Debug, Clone, Default)]
struct WalPlace {
    /// The node's name (config node.name), which names its default data directory.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The node's data directory (config node.data_dir; default $XDG_DATA_HOME/goliath/<node name>).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    goliath::runtime::units::parse_duration(text).map_err(|e| e.to_string())
}

/// `tasks --limit`: 1 to 10000 (the node lists at most that many; 0 would list nothing).
/// `demo N`: how many nodes, said as a count (`-3` was "invalid digit found in string").
fn demo_nodes(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(nodes @ 1..=32) => Ok(nodes),
        _ => Err(format!(
            "{} is not a node count from 1 to 32",
            goliath::runtime::units::printable(text, false)
        )),
    }
}

fn task_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(limit @ 1..=10_000) => Ok(limit),
        _ => Err(format!("{text} is not a task count from 1 to 10000")),
    }
}

/// `watch --snapshots`: the node sends summaries at most every 100 ms, so a shorter period
/// is refused rather than quietly stretched.
fn snapshot_period(text: &str) -> Result<Duration, String> {
    let period = parse_duration_arg(text)?;
    if period < Duration::from_millis(100) {
        return Err(format!(
            "{text} is shorter than the 100ms the node sends summaries at most; use 100ms or more"
        ));
    }
    Ok(period)
}

// Parsed once per run: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Print the shipped default config file.
    Default,
    /// Print the config this invocation would use (file plus flags) and where it came from.
    Show {
        /// One JSON document: `from` (the file or the built-in defaults), `command_line`
        /// (the flags and --set entries on top of it) and `config` (every key).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// A failure with the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: exit::USAGE,
            error: error.into(),
        }
    }
    fn runtime(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: exit::FAILURE,
            error: error.into(),
        }
    }
}

impl From<CommandError> for Failure {
    fn from(error: CommandError) -> Self {
        Self {
            code: error.code,
            error: anyhow::anyhow!(error.message),
        }
    }
}

/// Whether this run is a client command (output then reports a node's answer).
static CLIENT_COMMAND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Whether that command changes something on the node (submit, cancel, shutdown).
static CHANGING_COMMAND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Whether anything was written to standard output.
static WROTE_STDOUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `--json` was asked for (before any `--`, after which words are spec text): a
/// failure is then a JSON document on standard output too, also one found before the
/// command reached a node (a spec, an id, the config, the options themselves).
fn json_requested(raw: &[std::ffi::OsString]) -> bool {
    raw.iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "--json")
}

/// With `--json` a script reads standard output: a failure is a document there too (the
/// same text goes to stderr), unless the command already printed its own (an interrupted
/// or disconnected wait, a watch's lines, a verify's report).
///
/// The document cannot be written (`>/dev/full`): said on stderr, and the failure keeps its
/// own exit code — written through [`write_stdout`], it became exit 1 with "the node had
/// answered (what it answered took effect)" for a submit that never reached a node.
fn print_json_failure(code: u8, message: &str) {
    use std::io::Write as _;
    // A stream's lines are JSON lines: its error is one more, so that a reader tells a
    // lost node from a clean end inside the stream.
    if WROTE_STDOUT.swap(true, std::sync::atomic::Ordering::Relaxed)
        && !STREAM_COMMAND.load(std::sync::atomic::Ordering::Relaxed)
    {
        return;
    }
    let document = serde_json::json!({ "error": { "message": message, "exit_code": code } });
    let mut stdout = std::io::stdout().lock();
    let written = writeln!(stdout, "{document}").and_then(|()| stdout.flush());
    if let Err(error) = written
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        errln!("goliath: cannot write the error as JSON to standard output: {error}");
    }
}

/// Whether this run is a stream with no end of its own (`watch`).
static STREAM_COMMAND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Whether the reader of standard output has gone (a closed pipe).
static STDOUT_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes a command's output (see [`out!`]). A closed pipe is no error: a stream (`watch`)
/// exits 0 at once; any other command writes nothing more and ends with its own exit code
/// (`cancel 999999 | true` still exits 6, which `set -o pipefail` sees). Any other failure
/// to write exits 1 saying so.
fn write_stdout(text: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    WROTE_STDOUT.store(true, relaxed);
    if STDOUT_GONE.load(relaxed) {
        return;
    }
    if let Err(error) = std::io::stdout().lock().write_fmt(text) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            if STREAM_COMMAND.load(relaxed) {
                std::process::exit(0);
            }
            STDOUT_GONE.store(true, relaxed);
            return;
        }
        // A client command's output follows the node's answer: what was asked was done, only
        // its report is lost (a script that retries a submit would submit it again).
        let done = match (CLIENT_COMMAND.load(relaxed), CHANGING_COMMAND.load(relaxed)) {
            // A stream's lines are lost from here on; the node is not asked anything.
            _ if STREAM_COMMAND.load(relaxed) => "; the watch ends",
            (true, true) => {
                "; the node had answered (what it answered took effect), only this report of it is lost"
            }
            (true, false) => "; the node had answered, only this report of it is lost",
            (false, _) => "",
        };
        errln!("goliath: cannot write to standard output: {error}{done}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    // This binary also starts `exec` tasks for its node (see `set_exec_launcher`).
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw
        .get(1)
        .is_some_and(|arg| arg == goliath::runtime::EXEC_LAUNCHER_ARG)
    {
        errln!("{}", goliath::runtime::run_exec_launcher(&raw[2..]));
        return ExitCode::from(goliath::runtime::EXEC_LAUNCHER_FAILED);
    }
    // /proc/self/exe as it is: it names this binary in the child too, even after the file
    // on disk was replaced by an upgrade.
    let this_binary = std::path::Path::new("/proc/self/exe");
    if this_binary.exists() {
        goliath::runtime::set_exec_launcher(this_binary.to_path_buf());
    } else if let Ok(program) = std::env::current_exe() {
        goliath::runtime::set_exec_launcher(program);
    }
    let json = json_requested(&raw);
    let cli = match Cli::try_parse_from(&raw) {
        Ok(cli) => cli,
        Err(error) => {
            if let Some(message) =
                misplaced_option(&error, &raw).or_else(|| node_flag_elsewhere(&error, &raw))
            {
                errln!("goliath: {message}");
                if json {
                    print_json_failure(exit::USAGE, &message);
                }
                return ExitCode::from(exit::USAGE);
            }
            // A long value is quoted by its start: clap echoes it, and so does the parser's
            // own message (a 5,000-character id came back twice).
            let long_value = match error.get(clap::error::ContextKind::InvalidValue) {
                Some(clap::error::ContextValue::String(value)) if value.chars().count() > 60 => {
                    Some(value)
                }
                _ => None,
            };
            if error.use_stderr() && (json || long_value.is_some()) {
                let mut text = error.render().to_string();
                if let Some(value) = long_value {
                    text =
                        text.replace(value.as_str(), &goliath::runtime::units::quoted_part(value));
                }
                err!("{text}");
                if json {
                    print_json_failure(exit::USAGE, &clap_error_text(&text));
                }
                return ExitCode::from(exit::USAGE);
            }
            // Help and version go to stdout: one that cannot be written (`>/dev/full`) is
            // an error, as for every other command's output (clap's own exit ignores it).
            if !error.use_stderr() {
                return match error
                    .print()
                    .and_then(|()| std::io::Write::flush(&mut std::io::stdout()))
                {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(write) if write.kind() == std::io::ErrorKind::BrokenPipe => {
                        ExitCode::SUCCESS
                    }
                    Err(write) => {
                        errln!("goliath: cannot write to standard output: {write}");
                        ExitCode::from(1)
                    }
                };
            }
            error.exit()
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            // Errors quote what they were given (specs, ids, names): shown, never sent to
            // the terminal as commands.
            let text = format!("{:#}", failure.error);
            let lines: Vec<_> = text
                .split('\n')
                .map(|line| goliath::runtime::units::printable(line, true))
                .collect();
            errln!("goliath: {}", lines.join("\n"));
            if json {
                print_json_failure(failure.code, &text);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// The first `--set KEY=VALUE` whose key is neither in one of `sections` (`"net."`) nor
/// `node.cluster`, which every command that talks to a node uses.
fn override_not_used<'a>(overrides: &'a [String], sections: &[&str]) -> Option<&'a String> {
    overrides.iter().find(|entry| {
        let key = entry
            .split_once('=')
            .map_or(entry.as_str(), |(key, _)| key)
            .trim();
        key != "node.cluster" && !sections.iter().any(|section| key.starts_with(section))
    })
}

/// clap's error text as one message for a JSON document: the lines that say what is wrong,
/// without its `error: ` and the usage and help lines after them ("the following required
/// arguments were not provided:" is followed by the arguments' names on lines of their own).
fn clap_error_text(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.strip_prefix("error: ").unwrap_or(line));
        }
    }
    parts.join(" ")
}

/// The argument clap did not know, as given (`--workers` or `--limit=3`), when that is
/// the error.
fn unknown_argument(error: &clap::Error) -> Option<&String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    match error.get(ContextKind::InvalidArg)? {
        ContextValue::String(given) => Some(given),
        _ => None,
    }
}

/// A flag of a node started here given to a command that asks a running node (`goliath
/// status --workers 3`): clap's usage line echoes only the flags given, so that `--node`
/// looked required; the message says where the flag belongs instead.
fn node_flag_elsewhere(error: &clap::Error, raw: &[std::ffi::OsString]) -> Option<String> {
    use clap::CommandFactory as _;
    let flag = unknown_argument(error)?.split('=').next()?;
    let long = flag.strip_prefix("--")?;
    let command = Cli::command();
    let name = raw
        .iter()
        .skip(1)
        .filter_map(|arg| arg.to_str())
        .find(|arg| command.find_subcommand(arg).is_some())?;
    let node = command.find_subcommand("node")?;
    if name == "node" || !node.get_arguments().any(|arg| arg.get_long() == Some(long)) {
        return None;
    }
    Some(format!(
        "{flag} is for a node started here (`goliath node`, `goliath console` or `goliath demo`), not for `goliath {name}`; `goliath {name} --help` lists its options"
    ))
}

/// An option of a subcommand given before it (`goliath --json status`): clap would suggest
/// some top-level flag that looks alike; the message says where the option goes instead.
fn misplaced_option(error: &clap::Error, raw: &[std::ffi::OsString]) -> Option<String> {
    use clap::CommandFactory as _;
    let given = unknown_argument(error)?;
    let flag = given.split('=').next()?.to_string();
    let position = raw.iter().position(|arg| {
        arg.to_str().is_some_and(|arg| {
            arg == given
                || arg
                    .strip_prefix(given.as_str())
                    .is_some_and(|rest| rest.starts_with('='))
        })
    })?;
    let given = raw[position].to_str()?;
    let command = Cli::command();
    // The first subcommand named after the flag, followed down its own subcommands
    // (`wal dump`), and whether the last of them takes that flag.
    let mut rest = raw[position + 1..].iter().filter_map(|arg| arg.to_str());
    let (mut name, mut subcommand) = rest.by_ref().find_map(|arg| {
        command
            .find_subcommand(arg)
            .map(|sub| (arg.to_string(), sub.clone()))
    })?;
    for arg in rest {
        match subcommand.find_subcommand(arg).cloned() {
            Some(sub) => {
                name = format!("{name} {arg}");
                subcommand = sub;
            }
            None => break,
        }
    }
    let taken = subcommand.get_arguments().find(|arg| {
        arg.get_long()
            .is_some_and(|long| format!("--{long}") == flag)
            || arg
                .get_short()
                .is_some_and(|short| format!("-{short}") == flag)
    })?;
    // With its value, when it takes one and it was given apart (`--limit 3`).
    let value = raw
        .get(position + 1)
        .and_then(|value| value.to_str())
        .filter(|_| taken.get_action().takes_values() && !given.contains('='))
        .map(|value| format!(" {value}"))
        .unwrap_or_default();
    Some(format!(
        "{flag} is an option of `goliath {name}`: put it after the command, e.g. `goliath {name} {given}{value}`"
    ))
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let Cli {
        config,
        node: outer_node,
        console: outer_console,
        command,
    } = cli;
    // Flags for a node or console given before a command that starts neither mean nothing
    // there: refuse them rather than ignore them.
    // `node_ok`: the node flags the command takes, `None` for all of them.
    let refuse_outer = |command: &str, node_ok: Option<&[&str]>, console_ok: bool| {
        let node_flag = outer_node
            .given()
            .into_iter()
            .find(|flag| node_ok.is_some_and(|ok| !ok.contains(flag)));
        let console_flag = outer_console.given().into_iter().find(|_| !console_ok);
        let refusal = match (node_flag, console_flag) {
            (Some(flag), _) => format!(
                "{flag} is for a node started here (`goliath node`, `goliath console`, `goliath demo` or bare `goliath`)"
            ),
            (None, Some(flag)) => format!(
                "{flag} is for the console (`goliath console`, `goliath demo` or bare `goliath`)"
            ),
            (None, None) => return Ok(()),
        };
        Err(Failure::usage(anyhow::anyhow!(
            "{refusal}, not for `goliath {command}`"
        )))
    };
    let client = |name: &str, target: Target, command: ClientCommand| {
        refuse_outer(name, Some(&[]), false)?;
        // A client uses the protocol's settings and the cluster name it must match; any
        // other key would change nothing, silently (`status --set scheduler.workers=3`).
        if let Some(entry) = override_not_used(&config.overrides, &["net."]) {
            return Err(Failure::usage(anyhow::anyhow!(
                "--set {entry} changes nothing for `goliath {name}`, which asks a running node (it keeps its own settings); a client takes net.* and node.cluster"
            )));
        }
        CLIENT_COMMAND.store(true, std::sync::atomic::Ordering::Relaxed);
        CHANGING_COMMAND.store(command.changes_node(), std::sync::atomic::Ordering::Relaxed);
        run_client(
            &NodeArgs::default().merged(&outer_node, &config),
            target,
            command,
        )
    };
    match command {
        Some(Command::Config {
            action: ConfigAction::Default,
        }) => {
            refuse_outer("config default", Some(&[]), false)?;
            // The shipped file, whatever is configured: a --config or --set here would
            // change nothing, so it is refused rather than ignored.
            if config.config.is_some() || !config.overrides.is_empty() {
                return Err(Failure::usage(anyhow::anyhow!(
                    "`goliath config default` prints the shipped defaults and takes no --config or --set; `goliath config show` prints the config they make"
                )));
            }
            out!("{DEFAULT_TOML}");
            Ok(exit::OK)
        }
        Some(Command::Config {
            action: ConfigAction::Show { json, node },
        }) => {
            refuse_outer("config show", None, false)?;
            let merged = node.merged(&outer_node, &config);
            let (config, origin) = load_config(&merged)?;
            // What the command line changed on top of it, so the origin line is not all.
            let mut changed: Vec<String> = merged.given_with_values();
            changed.extend(
                merged
                    .overrides
                    .iter()
                    .map(|entry| format!("--set {entry}")),
            );
            if json {
                let keys = serde_json::to_value(config.to_table()).map_err(Failure::runtime)?;
                let document = serde_json::json!({
                    "from": origin.to_string(),
                    "command_line": changed,
                    "config": keys,
                });
                outln!("{document}");
                return Ok(exit::OK);
            }
            outln!("# from: {origin}");
            if !changed.is_empty() {
                outln!("# with, from the command line: {}", changed.join(", "));
            }
            out!(
                "{}",
                toml::to_string(&config.to_table()).map_err(Failure::runtime)?
            );
            Ok(exit::OK)
        }
        Some(Command::Node { node }) => {
            refuse_outer("node", None, false)?;
            let node = node.merged(&outer_node, &config);
            run_headless(&node, load_config(&node)?, None)
        }
        Some(Command::Console {
            connect,
            node,
            console,
        }) => {
            let node = node.merged(&outer_node, &config);
            let console = console.merged(&outer_console);
            match connect {
                None => run_local_console(&node, load_config(&node)?, &console, &[]),
                Some(address) => {
                    // The attached node has its own settings; these would start one here.
                    if let Some(flag) = node.given().first() {
                        return Err(Failure::usage(anyhow::anyhow!(
                            "{flag} is for a node started here; `goliath console --connect {address}` attaches to a running node, which keeps its own settings"
                        )));
                    }
                    // Of the config, an attached console uses its own section, the log, the
                    // protocol's limits and the cluster name it must match.
                    if let Some(entry) =
                        override_not_used(&node.overrides, &["console.", "log.", "net."])
                    {
                        return Err(Failure::usage(anyhow::anyhow!(
                            "--set {entry} is for a node started here; `goliath console --connect {address}` attaches to a running node, which keeps its own settings (an attached console takes console.*, log.*, net.* and node.cluster)"
                        )));
                    }
                    run_remote_console(&node, &console, address)
                }
            }
        }
        Some(Command::Submit {
            wait,
            idempotency_key,
            target,
            specs,
        }) => {
            // An explicit `--` before the specs (taken by the parser, so the raw arguments
            // hold one more than the specs do) says every word after it is spec text:
            // `goliath submit -- echo --json`.
            let given_dashes = std::env::args()
                .skip_while(|arg| arg != "submit")
                .filter(|arg| arg == "--")
                .count();
            let escaped = given_dashes > specs.iter().filter(|spec| *spec == "--").count();
            // Specs take words that start with '-' (`exec -- tool --json`), so clap hands an
            // unknown option before them over as a spec; no spec starts with one, unless
            // after that `--`, where the word is read as a spec (and refused as one).
            if let Some(first) = specs.first()
                && first.starts_with('-')
                && first != "-"
                && !escaped
            {
                return Err(Failure::usage(anyhow::anyhow!(
                    "unknown option '{first}' for `goliath submit`; `goliath submit --help` lists its options, which go before the specs"
                )));
            }
            // `-` with other specs: `goliath submit - "fib 9"` or `- -` (several specs are
            // one argument each, so a lone `-` among them can only mean standard input).
            let several = specs.len() > 1 && specs[0].contains(' ');
            if (several && specs.iter().any(|spec| spec == "-"))
                || (specs.len() > 1 && specs[0] == "-")
            {
                return Err(Failure::usage(anyhow::anyhow!(
                    "`-` reads the specs from standard input and must be the only spec argument; put the others on standard input too"
                )));
            }
            let (specs, stdin_lines) = if specs.len() == 1 && specs[0] == "-" {
                let (specs, lines) = commands::stdin_specs()?;
                (specs, Some(lines))
            } else {
                (commands::spec_lines(&specs, escaped)?, None)
            };
            client(
                "submit",
                target,
                ClientCommand::Submit {
                    specs,
                    stdin_lines,
                    wait,
                    idempotency_key,
                },
            )
        }
        Some(Command::Cancel { target, ids }) => {
            let ids = goliath::runtime::task::parse_task_ids(&ids.join(" "), CLI_CANCEL_IDS_MAX)
                .map_err(|error| Failure::usage(anyhow::anyhow!("cancel: {error}")))?;
            client("cancel", target, ClientCommand::Cancel { ids })
        }
        Some(Command::Task { target, id }) => client("task", target, ClientCommand::Task { id }),
        Some(Command::Tasks {
            state,
            limit,
            before,
            target,
        }) => client(
            "tasks",
            target,
            ClientCommand::Tasks {
                state,
                limit,
                before,
            },
        ),
        Some(Command::Status { target }) => client("status", target, ClientCommand::Status),
        Some(Command::Watch { snapshots, target }) => {
            STREAM_COMMAND.store(true, std::sync::atomic::Ordering::Relaxed);
            client("watch", target, ClientCommand::Watch { snapshots })
        }
        Some(Command::Shutdown { wait, target }) => {
            client("shutdown", target, ClientCommand::Shutdown { wait })
        }
        Some(Command::Members { target }) => client("members", target, ClientCommand::Members),
        Some(Command::Demo {
            nodes,
            node,
            console,
        }) => run_demo(
            &node.merged(&outer_node, &config),
            &console.merged(&outer_console),
            nodes,
        ),
        Some(Command::Wal { action }) => {
            refuse_outer("wal", Some(&["--name", "--data-dir"]), false)?;
            let place = match &action {
                WalAction::Verify { place, .. }
                | WalAction::Dump { place, .. }
                | WalAction::Repair { place, .. } => place,
            };
            // The keys that say where the log is and how it is kept; any other would change
            // nothing, silently (`wal verify --set scheduler.workers=3`).
            if let Some(entry) = override_not_used(
                &config.overrides,
                &["node.", "wal.", "history.", "gossip.bind", "gossip.enabled"],
            ) {
                return Err(Failure::usage(anyhow::anyhow!(
                    "--set {entry} changes nothing for `goliath wal`, which reads a node's data directory; it takes node.*, wal.*, history.*, gossip.bind and gossip.enabled (which name the directory)"
                )));
            }
            let node = NodeArgs {
                name: place.name.clone(),
                data_dir: place.data_dir.clone(),
                ..NodeArgs::default()
            }
            .merged(&outer_node, &config);
            let (config, _) = load_config(&node)?;
            // The name a node with this config takes (the host name, plus the gossip port
            // when gossip is on), so the same config finds the same directory.
            if goliath::runtime::node::data_dir_named_by_pid(&config) {
                return Err(Failure::usage(anyhow::anyhow!(
                    "a node with this config takes its name, and so its data directory, from its process id (node.name is empty and gossip.bind has port 0); pass --data-dir DIR or --name NAME"
                )));
            }
            let name = goliath::runtime::node::node_name(&config);
            let dir = goliath::runtime::wal::data_dir(&config, &name).map_err(Failure::usage)?;
            Ok(match action {
                WalAction::Verify { json, .. } => wal_commands::verify(&dir, json)?,
                WalAction::Dump { json, .. } => wal_commands::dump(&dir, json)?,
                WalAction::Repair { json, .. } => {
                    let options = goliath::runtime::wal::WalOptions::from_config(&config, &name)
                        .map_err(Failure::usage)?;
                    wal_commands::repair(&dir, options.history_limit, options.key_limit, json)?
                }
            })
        }
        None => {
            let node = outer_node.merged(&NodeArgs::default(), &config);
            let loaded = load_config(&node)?;
            if on_terminal() {
                run_local_console(&node, loaded, &outer_console, &[])
            } else {
                run_headless(
                    &node,
                    loaded,
                    Some(
                        "no terminal on stdin/stdout: running a headless node, as `goliath node` does",
                    ),
                )
            }
        }
    }
}

impl NodeArgs {
    /// These flags (given after a command's name) over `outer` (given before it), with the
    /// config file and `--set` entries of `config`.
    fn merged(&self, outer: &NodeArgs, config: &ConfigArgs) -> NodeArgs {
        let pick = |inner: &Option<String>, outer: &Option<String>| inner.clone().or(outer.clone());
        NodeArgs {
            config: config.config.clone(),
            overrides: config.overrides.clone(),
            name: pick(&self.name, &outer.name),
            workers: pick(&self.workers, &outer.workers),
            arena_slots: pick(&self.arena_slots, &outer.arena_slots),
            listen: pick(&self.listen, &outer.listen),
            insecure_listen: self.insecure_listen || outer.insecure_listen,
            data_dir: self.data_dir.clone().or(outer.data_dir.clone()),
            gossip: pick(&self.gossip, &outer.gossip),
            join: pick(&self.join, &outer.join),
            exit_with_stdin: self.exit_with_stdin || outer.exit_with_stdin,
        }
    }

    /// Each flag given, with its value as typed (`None` for a switch).
    fn given_flags(&self) -> Vec<(&'static str, Option<String>)> {
        let valued = |value: &Option<String>| value.clone().map(Some);
        let switch = |on: bool| on.then_some(None);
        let data_dir = self
            .data_dir
            .as_ref()
            .map(|dir| Some(dir.display().to_string()));
        [
            ("--name", valued(&self.name)),
            ("--workers", valued(&self.workers)),
            ("--arena-slots", valued(&self.arena_slots)),
            ("--listen", valued(&self.listen)),
            ("--insecure-listen", switch(self.insecure_listen)),
            ("--data-dir", data_dir),
            ("--gossip", valued(&self.gossip)),
            ("--join", valued(&self.join)),
            ("--exit-with-stdin", switch(self.exit_with_stdin)),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.map(|value| (flag, value)))
        .collect()
    }

    /// The flags given, by name.
    fn given(&self) -> Vec<&'static str> {
        self.given_flags()
            .into_iter()
            .map(|(flag, _)| flag)
            .collect()
    }

    /// The flags given, each with its value as typed (`--arena-slots 8`), for `config show`:
    /// a flag's name alone left a script to read every key to learn what it set.
    fn given_with_values(&self) -> Vec<String> {
        self.given_flags()
            .into_iter()
            .map(|(flag, value)| match value {
                Some(value) => format!("{flag} {value}"),
                None => flag.to_string(),
            })
            .collect()
    }

    /// Where a config came from (`origin`), and which flags changed it: the node's start log
    /// said "embedded default config" also for a node started with `--set`s.
    fn origin_with_changes(&self, origin: &str) -> String {
        let changed: Vec<&str> = self
            .given()
            .into_iter()
            .filter(|flag| !matches!(*flag, "--insecure-listen" | "--exit-with-stdin"))
            .chain((!self.overrides.is_empty()).then_some("--set"))
            .collect();
        if changed.is_empty() {
            origin.to_string()
        } else {
            format!("{origin}, changed by {}", changed.join(" "))
        }
    }
}

impl ConsoleArgs {
    /// These flags (given after `console` or `demo`) over `outer` (given before it).
    fn merged(&self, outer: &ConsoleArgs) -> ConsoleArgs {
        ConsoleArgs {
            readonly: self.readonly || outer.readonly,
            no_mouse: self.no_mouse || outer.no_mouse,
            ascii: self.ascii || outer.ascii,
            theme: self.theme.clone().or(outer.theme.clone()),
        }
    }

    /// The flags given, by name.
    fn given(&self) -> Vec<&'static str> {
        [
            ("--readonly", self.readonly),
            ("--no-mouse", self.no_mouse),
            ("--ascii", self.ascii),
            ("--theme", self.theme.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }
}

/// Loads the config in the documented order and applies command-line overrides.
fn load_config(args: &NodeArgs) -> Result<(Config, String), Failure> {
    let loaded = Config::load(args.config.as_deref()).map_err(Failure::usage)?;
    let mut config = loaded.config;
    // A value the file gets wrong is told (with its line) after the command line had its
    // say: `--set` can set it right without editing the file.
    let file_problem = loaded.problem;
    // A flag given an empty value (`--join "$SEEDS"` with SEEDS unset) would otherwise fall
    // back to the default without a word: a node meant to join would found its own cluster.
    for (flag, value) in [
        ("--name", &args.name),
        ("--listen", &args.listen),
        ("--gossip", &args.gossip),
        ("--join", &args.join),
    ] {
        if value.as_ref().is_some_and(|value| value.trim().is_empty()) {
            return Err(Failure::usage(anyhow::anyhow!(
                "{flag} is given an empty value; give one, or leave {flag} out for the default"
            )));
        }
    }
    if args
        .data_dir
        .as_ref()
        .is_some_and(|dir| dir.as_os_str().is_empty())
    {
        return Err(Failure::usage(anyhow::anyhow!(
            "--data-dir is given an empty value; give one, or leave --data-dir out for the default"
        )));
    }
    // Every flag and `--set` first, the checks across keys once after the last.
    let mut text = |key: &str, value: &str| {
        config
            .set_override_unchecked(key, value, true)
            .map_err(Failure::usage)
    };
    if let Some(name) = &args.name {
        text("node.name", name)?;
    }
    if let Some(listen) = &args.listen {
        text("net.listen", listen)?;
    }
    if let Some(gossip) = &args.gossip {
        text("gossip.bind", gossip)?;
    }
    if let Some(join) = &args.join {
        text("gossip.join", join)?;
    }
    if let Some(dir) = &args.data_dir {
        // Relative to the current directory, as a path on the command line is; made whole
        // here, so logs, status and the lock name the directory wherever they are read.
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        let dir = dir.to_str().ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "--data-dir {} is not valid UTF-8",
                dir.display()
            ))
        })?;
        text("node.data_dir", dir)?;
    }
    let mut apply = |key: &str, value: &str| {
        config
            .set_override_unchecked(key, value, false)
            .map_err(Failure::usage)
    };
    if args.gossip.is_some() || args.join.is_some() {
        apply("gossip.enabled", "true")?;
    }
    if let Some(workers) = &args.workers {
        apply("scheduler.workers", workers)?;
    }
    if let Some(slots) = &args.arena_slots {
        apply("arena.slots", slots)?;
    }
    // The flags that set a key, for telling apart a `--set` of the same key.
    let flags: [(&str, &str, bool); 7] = [
        ("node.name", "--name", args.name.is_some()),
        ("scheduler.workers", "--workers", args.workers.is_some()),
        ("arena.slots", "--arena-slots", args.arena_slots.is_some()),
        ("net.listen", "--listen", args.listen.is_some()),
        ("gossip.bind", "--gossip", args.gossip.is_some()),
        ("gossip.join", "--join", args.join.is_some()),
        ("node.data_dir", "--data-dir", args.data_dir.is_some()),
    ];
    // The keys the command line sets: its flags given, then each --set.
    let mut set_here: Vec<&str> = flags
        .iter()
        .filter(|(_, _, given)| *given)
        .map(|(key, _, _)| *key)
        .collect();
    for entry in &args.overrides {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(Failure::usage(ConfigError::Invalid {
                origin: ConfigOrigin::CommandLine,
                line: None,
                key: entry.clone(),
                message: "needs the form --set key=value, e.g. --set scheduler.slice=2ms".into(),
            }));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(Failure::usage(ConfigError::Invalid {
                origin: ConfigOrigin::CommandLine,
                line: None,
                key: entry.clone(),
                message:
                    "names no key: use the form --set key=value, e.g. --set scheduler.slice=2ms"
                        .into(),
            }));
        }
        // Both on one command line: one of them would be dropped without a word.
        if let Some((_, flag, _)) = flags.iter().find(|(k, _, given)| *given && *k == key) {
            return Err(Failure::usage(anyhow::anyhow!(
                "both {flag} and --set {key}= are given, and set the same thing; give one of them"
            )));
        }
        apply(key, value.trim())?;
        set_here.push(key);
    }
    config
        .check_overrides_after(file_problem, &set_here)
        .map_err(Failure::usage)?;
    // `--set gossip.enabled=false` after the flag that turned it on: the flag would be
    // dropped without a word, and `members` would then ask for the flag that was given.
    if !config.gossip.enabled
        && let Some(flag) = [("--gossip", &args.gossip), ("--join", &args.join)]
            .into_iter()
            .find_map(|(flag, value)| value.is_some().then_some(flag))
    {
        return Err(Failure::usage(anyhow::anyhow!(
            "{flag} turns gossip on, and --set gossip.enabled=false turns it off; drop one of them"
        )));
    }
    // Seeds given on the command line with gossip left off: the node would join no one,
    // with only a warning in its log to say so.
    if !config.gossip.enabled
        && !config.gossip.join.is_empty()
        && set_on_command_line(&args.overrides, "gossip.join")
    {
        return Err(Failure::usage(anyhow::anyhow!(
            "--set gossip.join gives seeds to join, but gossip is off (gossip.enabled = false); add --set gossip.enabled=true, or give the seeds with --join, which turns gossip on"
        )));
    }
    // A memory-only node keeps nothing on disk: a directory given for it, perhaps one that
    // holds a log of acknowledged tasks, would be ignored without a word.
    if let Some(dir) = &args.data_dir
        && !config.wal.enabled
    {
        return Err(Failure::usage(anyhow::anyhow!(
            "--data-dir {} means nothing with wal.enabled = false: a memory-only node keeps nothing on disk (and would not recover a log there); drop one of them",
            dir.display()
        )));
    }
    Ok((config, loaded.origin.to_string()))
}

fn init_logging(config: &Config) {
    // RUST_LOG, when set and valid, wins over log.level; set but invalid, it is said so
    // once logging is up rather than dropped without a word.
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .map(|value| (tracing_subscriber::EnvFilter::try_new(&value), value));
    let mut env_problem = None;
    let filter = match from_env {
        Some((Ok(filter), _)) => filter,
        Some((Err(error), value)) => {
            env_problem = Some((value, error.to_string()));
            tracing_subscriber::EnvFilter::new(&config.log.level)
        }
        None => tracing_subscriber::EnvFilter::new(&config.log.level),
    };
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // The message, then its fields two spaces apart, as the console's log pane writes them
    // (a demo's console shows its children's lines too; one space ran fields into the
    // message when a line wrapped).
    use tracing_subscriber::field::MakeExt;
    let fields = tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        if field.name() == "message" {
            return write!(writer, "{value:?}");
        }
        // A value with a space in it is quoted, so a script splitting on `key=` can tell
        // where it ends (text values are written as they read, without quotes).
        let text = format!("{value:?}");
        if text.contains(char::is_whitespace) && !text.starts_with('"') {
            write!(writer, "{field}={text:?}")
        } else {
            write!(writer, "{field}={text}")
        }
    })
    .delimited("  ");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .fmt_fields(fields)
        // A log nobody reads any more (`goliath node 2>&1 | head`, a dead `tee`) must not
        // take the node down: a failed write is dropped, not reported with `eprintln!`
        // (which panics on a closed stderr and killed the thread that logged).
        .log_internal_errors(false)
        .try_init();
    if let Some((value, error)) = env_problem {
        tracing::warn!(
            "RUST_LOG={value:?} is not a log filter ({error}); using log.level = {:?} instead",
            config.log.level
        );
    }
}

/// Runs one client command against a node.
fn run_client(args: &NodeArgs, target: Target, command: ClientCommand) -> Result<u8, Failure> {
    let (config, _) = load_config(args)?;
    let address = target.node.unwrap_or_else(|| config.net.listen.clone());
    let options = ConnectOptions {
        cluster: config.node.cluster.clone(),
        max_frame: u32::try_from(config.net.max_frame.max(16 << 20)).unwrap_or(u32::MAX),
        ..ConnectOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    let result: Result<u8, CommandError> = runtime.block_on(async {
        let client = Client::connect(&address, &options)
            .await
            .map_err(CommandError::from)?;
        commands::run(&client, command, target.json).await
    });
    Ok(result?)
}

/// Checks the listen address: anything but loopback needs `--insecure-listen`.
fn check_listen(config: &Config, insecure: bool) -> Result<ServerConfig, Failure> {
    let server = ServerConfig::from_config(config)
        .map_err(|message| Failure::usage(anyhow::anyhow!("net.listen {message}")))?;
    if !server.listen.ip().is_loopback() && !insecure {
        return Err(Failure::usage(anyhow::anyhow!(
            "refusing to listen on {}: the protocol has no authentication yet, so anyone who can reach that address could submit tasks. Listen on a loopback address, or pass --insecure-listen to accept that",
            server.listen
        )));
    }
    Ok(server)
}

/// Says, once the listener is bound, that a non-loopback one has no authentication.
fn warn_if_insecure(server: &ServerConfig) {
    if !server.listen.ip().is_loopback() {
        tracing::warn!(listen = %server.listen, "listening on a non-loopback address WITHOUT authentication (--insecure-listen): anyone who can reach it can submit and cancel tasks");
    }
}

/// A node started by this process, with its protocol server.
struct LocalNode {
    node: Arc<Node>,
    server: Server,
    cluster: Option<Cluster>,
    grace: Duration,
}

/// Starts a node and its protocol server from the config (flags applied). Logging must be set
/// up by the caller.
/// Descriptors a node holds besides its clients' connections: its log (segments, the next
/// one, the directory, a checkpoint), sockets, the console's terminal, a few exec tasks.
const OPEN_FILES_BESIDES_CONNECTIONS: u64 = 256;

/// Raises the open-file limit as far as the hard limit allows, and warns when even that is
/// short of `net.max_connections`: clients and `exec` tasks would take the descriptors the
/// log needs for its next segment.
fn check_open_file_limit(config: &Config) {
    let limit = goliath::runtime::sys::raise_open_file_limit();
    if limit.now != limit.before {
        tracing::debug!(before = ?limit.before, now = ?limit.now, "raised the open-file limit");
    }
    let connections = u64::try_from(config.net.max_connections).unwrap_or(u64::MAX);
    let needed = connections.saturating_add(OPEN_FILES_BESIDES_CONNECTIONS);
    if let Some(now) = limit.now
        && now < needed
    {
        tracing::warn!(
            open_file_limit = now,
            "the open-file limit ({now}, its hard limit allows no more) is short of the {needed} descriptors net.max_connections = {connections} and the node's own need: clients beyond it wait unanswered and the log waits for a descriptor to create its next segment; raise the hard limit (ulimit -Hn, LimitNOFILE= in a systemd unit) or lower net.max_connections"
        );
    }
}

fn start_local(config: Config, insecure_listen: bool, origin: &str) -> Result<LocalNode, Failure> {
    let server_config = check_listen(&config, insecure_listen)?;
    // A node given no name and no data directory would share the other node's; one given a
    // name shares it only if the other has the same name.
    let name_advice = match (config.node.name.as_str(), config.node.data_dir.is_empty()) {
        (_, false) => "`".to_string(),
        ("", true) => {
            " --name NAME` (a name of its own gives it a data directory of its own)".to_string()
        }
        (name, true) => format!(
            "` (and another --name if the node there is also named {name}: the name picks the data directory)"
        ),
    };
    let listen_failure = |error: std::io::Error| {
        let listen = server_config.listen;
        Failure::runtime(match error.kind() {
            std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
                "cannot listen on {listen}: {error}. Is another goliath node using it? Reach it with `--node {listen}` (its console: `goliath console --connect {listen}`), or start this one beside it with `--listen 127.0.0.1:0{}",
                name_advice
            ),
            _ => match goliath::runtime::net::bind_advice(&error, listen) {
                Some(advice) => anyhow::anyhow!(
                    "cannot listen on {listen}: {error}; {advice}: pick another with --listen ADDR"
                ),
                None => anyhow::anyhow!(
                    "cannot listen on {listen}: {error}; pick another address with --listen ADDR"
                ),
            },
        })
    };
    // The sockets first, once: a taken port is reported before the log is recovered and the
    // node started (and stopped again), and nothing can take the address in between.
    let listener = std::net::TcpListener::bind(server_config.listen).map_err(listen_failure)?;
    warn_if_insecure(&server_config);
    let gossip_socket = Cluster::bind(&config).map_err(Failure::runtime)?;
    tracing::info!(config = %origin, "starting node");
    check_open_file_limit(&config);
    if !config.wal.enabled && !config.node.data_dir.is_empty() {
        tracing::warn!(
            data_dir = %config.node.data_dir,
            "node.data_dir is set but wal.enabled = false: this node keeps nothing on disk and does not recover the log there"
        );
    }
    if !config.gossip.enabled && !config.gossip.join.is_empty() {
        tracing::warn!(
            join = %config.gossip.join.join(","),
            "gossip.join is set but gossip.enabled = false: gossip is off and this node joins no one; set gossip.enabled = true (or pass --join)"
        );
    }
    let grace = config.shutdown.grace;
    let mut builder = NodeBuilder::new(config);
    // Fault injection for the WAL's fail-stop and disk-full tests; never set in production.
    if let Some(spec) = std::env::var_os("GOLIATH_WAL_FAULT").filter(|v| !v.is_empty()) {
        let spec = spec.to_string_lossy();
        let faults = goliath::runtime::wal::Faults::parse(&spec)
            .map_err(|message| Failure::usage(anyhow::anyhow!("GOLIATH_WAL_FAULT: {message}")))?;
        tracing::warn!(faults = %spec, "GOLIATH_WAL_FAULT is set: WAL writes and fdatasyncs will fail on purpose");
        builder.wal_faults(Arc::new(faults));
    }
    let node = Arc::new(builder.start().map_err(Failure::runtime)?);
    let io = node
        .io_handle()
        .ok_or_else(|| Failure::runtime(anyhow::anyhow!("the node's I/O runtime is gone")))?;
    // Gossip before the server answers anything: a client that connects as soon as the port
    // answers (a script, a test) must not be told that gossip is off while it is starting.
    // Its metadata names the protocol address, known from the bound listener.
    node.set_listen_address(
        listener
            .local_addr()
            .ok()
            .map(|address| address.to_string()),
    );
    let cluster = gossip_socket
        .map(|socket| Cluster::start_on(&node, socket))
        .transpose()
        .map_err(Failure::runtime)?;
    let server = io
        .block_on(Server::start_on(
            node.clone(),
            server_config.clone(),
            listener,
        ))
        .map_err(listen_failure)?;
    tracing::info!(listen = %server.local_addr(), "serving the goliath protocol");
    Ok(LocalNode {
        node,
        server,
        cluster,
        grace,
    })
}

/// Leaves the cluster, stops the node with its grace period, then stops the server. A second
/// SIGINT/SIGTERM during the grace period exits at once. The server serves until the end:
/// clients can watch the running tasks finish, and a submission during the grace period is
/// told the node is shutting down (exit 5) instead of finding nobody there.
fn stop_local(
    local: LocalNode,
    announce: impl FnOnce(),
    conclude: impl FnOnce(&goliath::runtime::ShutdownReport),
) -> Result<u8, Failure> {
    let LocalNode {
        node,
        server,
        cluster,
        grace,
    } = local;
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    // Listening from here on, before leaving the cluster (which takes a moment): a signal
    // that arrives before the listener exists is taken by the handler of the console (or
    // of the first wait) and lost, so the second Ctrl-C would do nothing.
    let second_signal = {
        let _context = signals.enter();
        signal_listener().map_err(Failure::runtime)?
    };
    // Said once the second signal is listened for, so one sent on reading it is never lost.
    announce();
    let stopping = node.clone();
    signals.spawn(async move {
        let _ = second_signal.await;
        // The programs of running exec tasks (and what they started) would outlive the node.
        let killed = stopping.kill_exec_processes();
        let in_flight = stopping.in_flight();
        let durable = stopping.data_dir().is_some();
        let mut said = "goliath: second signal, stopping now".to_string();
        if in_flight > 0 {
            let counted = |one, many| goliath::runtime::units::counted(in_flight as u64, one, many);
            said.push_str(&if durable {
                format!(
                    "; {} again at the next start",
                    counted("task in flight runs", "tasks in flight run")
                )
            } else {
                format!(
                    "; {} (this node kept no log)",
                    counted("task in flight is gone", "tasks in flight are gone")
                )
            });
        }
        if killed > 0 {
            let groups = goliath::runtime::units::counted(
                killed as u64,
                "running exec task",
                "running exec tasks",
            );
            said.push_str(&format!(" (killed the process groups of {groups})"));
        }
        errln!("{said}");
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
    // Refused from the moment the stop begins, not once the cluster has been left.
    node.stop_accepting();
    if let Some(cluster) = cluster {
        cluster.stop();
    }
    let report = std::thread::scope(|scope| {
        let shutdown = scope.spawn(|| node.shutdown(grace));
        signals.block_on(async {
            while !shutdown.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        shutdown.join()
    });
    server.stop();
    if let Ok(report) = &report {
        conclude(report);
    }
    match report {
        Ok(report) if report.abandoned > 0 => Err(Failure::runtime(anyhow::anyhow!(
            "{} did not stop in time",
            goliath::runtime::units::counted(report.abandoned as u64, "task", "tasks")
        ))),
        Ok(_) => Ok(exit::OK),
        Err(_) => Err(Failure::runtime(anyhow::anyhow!("shutdown panicked"))),
    }
}

/// What a console's stop says of the tasks it interrupted (none: nothing).
fn interrupted_note(interrupted: usize, durable: bool) -> Option<String> {
    let (tasks, them, they, are) = match interrupted {
        0 => return None,
        1 => ("1 task was".to_string(), "it", "it runs", "is"),
        count => (format!("{count} tasks were"), "them", "they run", "are"),
    };
    Some(if durable {
        format!(
            "{tasks} interrupted by the stop; the log keeps {them}, and {they} again at the next start on this data directory"
        )
    } else {
        format!(
            "{tasks} interrupted by the stop and {are} gone: this node kept no log (wal.enabled = false)"
        )
    })
}

/// Runs a headless node on `config` (loaded by the caller from `args`, whose flags that are
/// not settings, `--insecure-listen` and `--exit-with-stdin`, apply here), its protocol
/// server and (when configured) gossip until SIGINT, SIGTERM, SIGHUP, a `shutdown` request or
/// (with `--exit-with-stdin`) the end of standard input, then leaves the cluster and shuts the
/// node down with the configured grace. A second signal during shutdown exits at once.
fn run_headless(
    args: &NodeArgs,
    (config, origin): (Config, String),
    note: Option<&str>,
) -> Result<u8, Failure> {
    init_logging(&config);
    if let Some(note) = note {
        tracing::info!("{note}");
    }
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    // Listened for before the node says it serves: a signal sent as soon as it does (a
    // script, a test) found no handler yet and took the default, ending it without a word.
    let signal = {
        let _runtime = signals.enter();
        signal_listener().map_err(Failure::runtime)?
    };
    let origin = args.origin_with_changes(&origin);
    let local = start_local(config, args.insecure_listen, &origin)?;
    let mut shutdown_signal = local.server.shutdown_signal();
    let stdin_closed = watch_stdin(args.exit_with_stdin);
    let node = local.node.clone();
    let reason = signals.block_on(async {
        tokio::select! {
            name = signal => Ok(name.to_string()),
            _ = shutdown_signal.wait_for(|requested| *requested) => Ok("a shutdown request".to_string()),
            _ = stdin_closed => Ok("standard input closed (the demo parent is gone)".to_string()),
            failure = node.wal_failed() => Err(failure),
        }
    });
    drop(signals);
    match reason {
        Ok(reason) => {
            let grace = local.grace;
            // The node logs what its stop interrupted.
            stop_local(
                local,
                || {
                    tracing::info!(reason = %reason, grace = ?grace, "shutting down; send SIGINT/SIGTERM/SIGHUP again to stop at once");
                },
                |_| {},
            )
        }
        Err(failure) => fail_stop(local, &failure),
    }
}

/// The write-ahead log failed: nothing more can be acknowledged. Stops accepting connections,
/// gives the submitters already waiting a moment to receive the error (they all have it the
/// instant the log failed), stops the node and says why.
fn fail_stop(local: LocalNode, failure: &str) -> Result<u8, Failure> {
    local.server.stop();
    if let Some(cluster) = local.cluster {
        cluster.stop();
    }
    std::thread::sleep(Duration::from_millis(250));
    local.node.shutdown(Duration::ZERO);
    let data_dir = local.node.data_dir().map(std::path::Path::to_path_buf);
    let dir = data_dir
        .as_ref()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    // Safe on disk only while the directory this node locked is still there.
    let lock_there = data_dir
        .as_ref()
        .is_some_and(|dir| dir.join(goliath::runtime::wal::segment::LOCK_FILE).exists());
    let dir_there = data_dir.as_ref().is_some_and(|dir| dir.is_dir());
    // What a start would find, read now that the node has stopped: a deleted segment leaves
    // a log no node starts on, and "safe on disk" would be untrue.
    let log_problem = data_dir.as_ref().filter(|_| dir_there).and_then(|dir| {
        goliath::runtime::wal::inspect(dir, |_, _, _, _| {})
            .ok()?
            .first_problem()
    });
    // Another process holding the lock now (the lock file replaced by a node started on
    // the directory): the disk is fine, and a start here is refused while it runs.
    let other_holder = data_dir
        .as_ref()
        .filter(|_| lock_there)
        .and_then(|dir| goliath::runtime::wal::segment::lock_holder(dir))
        .filter(|pid| *pid != std::process::id().to_string());
    let next = match (dir_there, lock_there, log_problem) {
        (true, true, _) if let Some(pid) = other_holder => format!(
            "Another goliath node (pid {pid}) holds the directory now, and both wrote to it: stop that node, then run `goliath wal verify --data-dir {dir}` before a node starts there again"
        ),
        (true, true, None) => {
            "Acknowledged tasks are safe on disk; fix the disk, then start the node again to recover them".to_string()
        }
        (true, _, Some(problem)) => format!(
            "The log as left is not one a node starts on ({problem}): what it lacks is lost. `goliath wal repair --data-dir {dir}` keeps everything still readable"
        ),
        (true, false, None) => {
            // Only the lock is gone: the log reads whole, but while there was no lock another
            // node could have opened the directory too.
            "Only its lock file was removed; the log reads whole. Make sure no other goliath node runs on this directory, then start the node again to recover the acknowledged tasks".to_string()
        }
        (false, _, _) => {
            "The directory is no longer there: if it was moved or renamed, a node started on its new path (--data-dir) recovers what this one acknowledged; if it was removed, that is gone. Find what moved or removed it before a node starts there again".to_string()
        }
    };
    Err(Failure::runtime(anyhow::anyhow!(
        "stopping: {failure} (data directory {dir}). {next}"
    )))
}

/// The console settings from the config and the flags.
fn console_settings(config: &Config, args: &ConsoleArgs) -> ConsoleSettings {
    ConsoleSettings {
        config: config.console.clone(),
        readonly: args.readonly,
        no_mouse: args.no_mouse,
        ascii: args.ascii,
        theme: args.theme.clone(),
        shutdown: None,
    }
}

/// Sends the log to the console's log panes (tui-logger) instead of the terminal.
fn init_console_logging(config: &Config) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|text| !text.trim().is_empty())
        .unwrap_or_else(|| config.log.level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // The filter decides what is kept: tui-logger shows all it is given. Libraries that log
    // through the `log` facade (mio) reach the filter through the LogTracer that `try_init`
    // installs (tui-logger's tracing support leaves the facade to it). The Logs tab's level
    // letters start at the filter's level, so a level the filter drops is not shown as kept.
    let shown = match directives.trim().to_ascii_lowercase().as_str() {
        "off" => tui_logger::LevelFilter::Off,
        "error" => tui_logger::LevelFilter::Error,
        "warn" => tui_logger::LevelFilter::Warn,
        "info" => tui_logger::LevelFilter::Info,
        "debug" => tui_logger::LevelFilter::Debug,
        _ => tui_logger::LevelFilter::Trace,
    };
    let _ = tui_logger::init_logger(tui_logger::LevelFilter::Trace);
    tui_logger::set_default_level(shown);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(goliath::tui::log::ConsoleLogLayer)
        .try_init();
}

/// Whether standard input and output are a terminal (where the console can run).
fn on_terminal() -> bool {
    std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

/// The console draws on a terminal: without one (a pipe, /dev/null, a service manager) it
/// is a usage error that says what to run instead. `goliath demo` checks for itself.
fn need_terminal() -> Result<(), Failure> {
    if on_terminal() {
        return Ok(());
    }
    Err(Failure::usage(anyhow::anyhow!(
        "the console needs a terminal on stdin and stdout; without one, run `goliath node` for a headless node, or use the client commands (`goliath status`, `goliath watch`)"
    )))
}

/// The console on a node started here; quitting the console stops the node.
fn run_local_console(
    args: &NodeArgs,
    (config, origin): (Config, String),
    console: &ConsoleArgs,
    notes: &[String],
) -> Result<u8, Failure> {
    let settings = console_settings(&config, console);
    // Check the keymap before starting anything, so a bad [console.keys] is a usage error.
    goliath::tui::console::build_app(&settings, None, goliath::runtime::Kinds::new())
        .map_err(Failure::usage)?;
    need_terminal()?;
    init_console_logging(&config);
    for note in notes {
        tracing::warn!("{note}");
    }
    let origin = args.origin_with_changes(&origin);
    let local = start_local(config, args.insecure_listen, &origin)?;
    // The console closes on a `goliath shutdown` request or when the write-ahead log fails.
    let (stop, stop_requested) = tokio::sync::watch::channel(false);
    let mut shutdown_signal = local.server.shutdown_signal();
    let node = local.node.clone();
    if let Some(io) = local.node.io_handle() {
        io.spawn(async move {
            tokio::select! {
                _ = shutdown_signal.wait_for(|requested| *requested) => {}
                _ = node.wal_failed() => {}
            }
            let _ = stop.send(true);
        });
    }
    let settings = ConsoleSettings {
        shutdown: Some(stop_requested.clone()),
        ..settings
    };
    let result = goliath::tui::run(Source::Local(local.node.clone()), settings);
    if let Err(error) = result {
        let _ = stop_local(local, || {}, |_| {});
        return Err(Failure::runtime(error));
    }
    if let Some(failure) = local.node.wal_failure() {
        return fail_stop(local, &failure);
    }
    let requested = *stop_requested.borrow();
    let (name, grace) = (local.node.name().to_string(), local.grace);
    let durable = local.node.snapshot(0).wal.is_some();
    stop_local(
        local,
        || {
            errln!(
                "goliath: stopping node {name}{} (running tasks get up to {grace:?}; Ctrl-C again stops at once)",
                if requested {
                    " on a shutdown request"
                } else {
                    ""
                },
            )
        },
        // The console's log went with its screen: what the stop left undone is said here.
        |report| {
            if let Some(line) = interrupted_note(report.cancelled, durable) {
                errln!("goliath: {line}");
            }
        },
    )
}

/// The console attached to a running node; quitting leaves the node running.
fn run_remote_console(
    args: &NodeArgs,
    console: &ConsoleArgs,
    address: String,
) -> Result<u8, Failure> {
    let (config, _) = load_config(args)?;
    let settings = console_settings(&config, console);
    goliath::tui::console::build_app(&settings, None, goliath::runtime::Kinds::new())
        .map_err(Failure::usage)?;
    need_terminal()?;
    init_console_logging(&config);
    let options = ConnectOptions {
        cluster: config.node.cluster.clone(),
        max_frame: u32::try_from(config.net.max_frame.max(16 << 20)).unwrap_or(u32::MAX),
        client: format!("goliath-console {}", env!("CARGO_PKG_VERSION")),
        ..ConnectOptions::default()
    };
    goliath::tui::run(Source::Remote { address, options }, settings).map_err(Failure::runtime)?;
    Ok(exit::OK)
}

/// With `enabled`, resolves when standard input reaches end of file: a `goliath demo` child
/// holds the read end of a pipe whose write end only its parent has, and the kernel closes
/// that end when the parent exits for any reason, SIGKILL included. (Preferred over
/// `PR_SET_PDEATHSIG`, which needs `unsafe` in `pre_exec` and is Linux-only.) Never resolves
/// otherwise.
fn watch_stdin(enabled: bool) -> impl std::future::Future<Output = ()> {
    let (closed, receiver) = tokio::sync::oneshot::channel::<()>();
    if enabled {
        let spawned = std::thread::Builder::new()
            .name("goliath-stdin".into())
            .spawn(move || {
                let mut sink = [0u8; 256];
                let mut stdin = std::io::stdin();
                while let Ok(read) = std::io::Read::read(&mut stdin, &mut sink) {
                    if read == 0 {
                        break;
                    }
                }
                let _ = closed.send(());
            });
        if let Err(error) = spawned {
            tracing::warn!("cannot watch standard input: {error}");
        }
    } else {
        std::mem::forget(closed);
    }
    async move {
        let _ = receiver.await;
    }
}

/// `goliath demo N`: N-1 child nodes (`goliath node`) on free loopback ports that join
/// this one, and this node in the foreground. Children exit with this process, however it
/// ends (see [`watch_stdin`]); on a normal exit they are asked to stop first.
///
/// The first node keeps what the command line and config ask for: its name (`--name`, else
/// `demo-0`), `--join`, and its addresses, so that `goliath submit` without `--node` reaches
/// it. An address the user did not give that is taken (another node runs here) is swapped
/// for a free port, and the console's log says so; port 0 becomes a free port, since the
/// children must know where to join.
fn run_demo(args: &NodeArgs, console: &ConsoleArgs, nodes: usize) -> Result<u8, Failure> {
    if !(1..=32).contains(&nodes) {
        return Err(Failure::usage(anyhow::anyhow!(
            "demo: {nodes} nodes is out of range: use 1 to 32"
        )));
    }
    let on_terminal = on_terminal();
    let (mut config, origin) = load_config(args)?;
    if !config.gossip.enabled && set_on_command_line(&args.overrides, "gossip.enabled") {
        // The demo's nodes find each other by gossip, so it turns gossip on: this --set
        // would be overruled without a word.
        return Err(Failure::usage(anyhow::anyhow!(
            "demo: its nodes find each other by gossip, and --set gossip.enabled=false turns it off; drop that --set"
        )));
    }
    // The children are named after the first node: two demos with other --names on one
    // machine then use other data directories too (both named demo-N, the second demo's
    // children found the first's directories locked and exited).
    let first_name = args.name.clone().unwrap_or_else(|| "demo-0".to_string());
    let family = args.name.as_deref().unwrap_or("demo");
    let child_name = |i: usize| format!("{family}-{i}");
    let longest = child_name(nodes.saturating_sub(1));
    let max_name = goliath::runtime::gossip::wire::MAX_NAME;
    if nodes > 1 && longest.len() > max_name {
        return Err(Failure::usage(anyhow::anyhow!(
            "demo: the children are named after --name, and {longest:?} is over {max_name} bytes: use a shorter --name"
        )));
    }
    let ports = free_ports(nodes).map_err(Failure::runtime)?;
    let mut notes = Vec::new();
    let first_listen = demo_address(
        DemoSocket::Protocol,
        args.listen.as_deref(),
        &config.net.listen,
        ports[0].0,
        &mut notes,
    )?;
    let first_gossip = demo_address(
        DemoSocket::Gossip,
        args.gossip.as_deref(),
        &config.gossip.bind,
        ports[0].1,
        &mut notes,
    )?;
    let gossip_of = |i: usize| format!("127.0.0.1:{}", ports[i].1);
    let listen_of = |i: usize| format!("127.0.0.1:{}", ports[i].0);
    let exe = std::env::current_exe().map_err(Failure::runtime)?;
    let mut children = demo_children::DemoChildren::default();
    for i in 1..nodes {
        let mut command = std::process::Command::new(&exe);
        command
            .arg("node")
            .args(["--listen", &listen_of(i)])
            .args(["--gossip", &gossip_of(i)])
            .args(["--join", &first_gossip])
            .args(["--name", &child_name(i)])
            .args(["--set", "log.level=warn"])
            .arg("--exit-with-stdin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null());
        if let Some(path) = &args.config {
            command.arg("--config").arg(path);
        }
        if let Some(workers) = &args.workers {
            command.args(["--workers", workers]);
        }
        if let Some(slots) = &args.arena_slots {
            command.args(["--arena-slots", slots]);
        }
        // Each child has its own name, addresses, seed and data directory: the same
        // setting for all of them would make them collide.
        for entry in overrides_without(&args.overrides, &PER_NODE_KEYS) {
            command.args(["--set", entry]);
        }
        // The per-node settings a config file may give that no flag above replaces are the
        // first node's: a child takes the default of its own (its own data directory, not
        // the first node's lock; its bound address, not the first node's advertised one).
        for (key, value) in [
            ("node.data_dir", &config.node.data_dir),
            ("gossip.advertise", &config.gossip.advertise),
        ] {
            if !value.is_empty() {
                command.args(["--set", &format!("{key}=\"\"")]);
            }
        }
        // With the console on the terminal, a child's log lines reach its log pane instead
        // of the screen.
        let pid = children
            .spawn(&child_name(i), &mut command, on_terminal)
            .map_err(|error| {
                Failure::runtime(anyhow::anyhow!(
                    "demo: cannot start child node {i} ({}): {error}",
                    exe.display()
                ))
            })?;
        if !on_terminal {
            errln!(
                "goliath demo: started {} (pid {pid}, listen {}, gossip {})",
                child_name(i),
                listen_of(i),
                gossip_of(i)
            );
        }
    }
    // The first node runs on the config loaded above (flags and --set applied once), with
    // the addresses chosen for it.
    config.net.listen = first_listen.clone();
    config.gossip.bind = first_gossip.clone();
    config.gossip.enabled = true;
    config.node.name = first_name.clone();
    let loaded = (config, origin);
    let outcome = if on_terminal {
        run_local_console(args, loaded, console, &notes)
    } else {
        for note in &notes {
            errln!("goliath demo: {note}");
        }
        errln!(
            "goliath demo: {} in the foreground (listen {first_listen}, gossip {first_gossip}); try `goliath members --node {first_listen}`",
            first_name,
        );
        run_headless(
            args,
            loaded,
            Some("demo: no terminal, so the first node runs headless (Ctrl-C stops the demo)"),
        )
    };
    children.stop(Duration::from_secs(10));
    outcome
}

/// Settings each demo node gets its own value of (see [`run_demo`]).
const PER_NODE_KEYS: [&str; 6] = [
    "node.name",
    "node.data_dir",
    "net.listen",
    "gossip.bind",
    "gossip.advertise",
    "gossip.join",
];

/// Whether a `--set` entry sets `key`.
fn set_on_command_line(overrides: &[String], key: &str) -> bool {
    overrides
        .iter()
        .any(|entry| entry.split_once('=').is_some_and(|(k, _)| k.trim() == key))
}

/// The `--set key=value` entries whose key is not one of `keys`.
fn overrides_without<'a>(
    overrides: &'a [String],
    keys: &'a [&str],
) -> impl Iterator<Item = &'a String> + 'a {
    overrides.iter().filter(move |entry| {
        let key = entry.split_once('=').map_or(entry.as_str(), |(key, _)| key);
        !keys.contains(&key.trim())
    })
}

/// Which of the demo's first node's sockets [`demo_address`] chooses an address for.
#[derive(Clone, Copy)]
enum DemoSocket {
    Protocol,
    Gossip,
}

/// The first demo node's address for `socket`: `asked` on the command line as given (port 0
/// replaced by `free_port`); else `configured` when it can be bound now, else loopback on
/// `free_port`, with a note in `notes` saying why.
fn demo_address(
    socket: DemoSocket,
    asked: Option<&str>,
    configured: &str,
    free_port: u16,
    notes: &mut Vec<String>,
) -> Result<String, Failure> {
    let (flag, key) = match socket {
        DemoSocket::Protocol => ("--listen", "net.listen"),
        DemoSocket::Gossip => ("--gossip", "gossip.bind"),
    };
    let wanted = asked.unwrap_or(configured);
    let mut address: std::net::SocketAddr = wanted.parse().map_err(|error| {
        let origin = if asked.is_some() {
            flag.to_string()
        } else {
            format!("config {key}")
        };
        Failure::usage(anyhow::anyhow!(
            "demo: {origin} {wanted:?} is not an IP address and port ({error}), e.g. 127.0.0.1:7420"
        ))
    })?;
    if address.port() == 0 {
        address.set_port(free_port);
        return Ok(address.to_string());
    }
    let free = match socket {
        DemoSocket::Protocol => std::net::TcpListener::bind(address).map(drop),
        DemoSocket::Gossip => std::net::UdpSocket::bind(address).map(drop),
    };
    match free {
        Ok(()) => Ok(address.to_string()),
        // Asked for by name: said before any child starts, not after the demo announced it.
        Err(error) if asked.is_some() => Err(Failure::runtime(anyhow::anyhow!(
            "demo: {flag} {address} cannot be bound ({error}); leave {flag} out and the demo picks a free port"
        ))),
        Err(error) => {
            let instead = format!("127.0.0.1:{free_port}");
            let why = if error.kind() == std::io::ErrorKind::AddrInUse {
                "is in use (another node?)".to_string()
            } else {
                format!("cannot be bound ({error})")
            };
            notes.push(format!(
                "{key} {address} {why}, so the demo's first node uses {instead}{}",
                match socket {
                    DemoSocket::Protocol => format!(": reach it with --node {instead}"),
                    DemoSocket::Gossip => String::new(),
                }
            ));
            Ok(instead)
        }
    }
}

/// `count` pairs of free loopback ports (TCP for the protocol, UDP for gossip), found by
/// binding port 0. Another program could take one before the node binds it; the node then
/// says which address is in use.
fn free_ports(count: usize) -> std::io::Result<Vec<(u16, u16)>> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..count {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        ports.push((tcp.local_addr()?.port(), udp.local_addr()?.port()));
        held.push((tcp, udp));
    }
    Ok(ports)
}

/// SIGTERM, SIGINT or SIGHUP, listened for from the moment this is called (inside a tokio
/// runtime): the returned future resolves with the name of the first that arrives after the
/// call. SIGHUP (the ssh session or terminal that started the process went away) stops as
/// SIGTERM does; left to its default it ended a node at once, with no grace and no word.
fn signal_listener() -> std::io::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
            _ = hangup.recv() => "SIGHUP",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_takes_a_free_port_when_the_configured_one_is_taken_and_says_so() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let configured = taken.local_addr().expect("address").to_string();
        let mut notes = Vec::new();
        let address = demo_address(DemoSocket::Protocol, None, &configured, 40001, &mut notes)
            .unwrap_or_else(|failure| panic!("{:#}", failure.error));
        assert_eq!(address, "127.0.0.1:40001");
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains(&configured) && notes[0].contains("--node 127.0.0.1:40001"),
            "the note names the taken address and how to reach the node: {}",
            notes[0]
        );
    }

    #[test]
    fn the_demo_keeps_a_free_configured_address_and_an_asked_one() {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let configured = probe.local_addr().expect("address").to_string();
        drop(probe);
        let mut notes = Vec::new();
        let kept = demo_address(DemoSocket::Gossip, None, &configured, 40002, &mut notes)
            .unwrap_or_else(|failure| panic!("{:#}", failure.error));
        assert_eq!(kept, configured);
        // Asked for on the command line: used as given when free, never swapped.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let asked = probe.local_addr().expect("address").to_string();
        drop(probe);
        let used = demo_address(
            DemoSocket::Protocol,
            Some(&asked),
            "127.0.0.1:7420",
            40003,
            &mut notes,
        )
        .unwrap_or_else(|failure| panic!("{:#}", failure.error));
        assert_eq!(used, asked);
        let zero = demo_address(
            DemoSocket::Gossip,
            Some("127.0.0.1:0"),
            "127.0.0.1:7421",
            40004,
            &mut notes,
        )
        .unwrap_or_else(|failure| panic!("{:#}", failure.error));
        assert_eq!(
            zero, "127.0.0.1:40004",
            "port 0 becomes a port children can join"
        );
        assert!(notes.is_empty(), "nothing was swapped: {notes:?}");
    }

    #[test]
    fn an_asked_demo_address_that_is_taken_fails_before_anything_starts() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let asked = taken.local_addr().expect("address").to_string();
        let mut notes = Vec::new();
        let Err(failure) = demo_address(
            DemoSocket::Protocol,
            Some(&asked),
            "127.0.0.1:7420",
            40006,
            &mut notes,
        ) else {
            panic!("a taken --listen is refused");
        };
        let message = format!("{:#}", failure.error);
        assert!(
            message.contains(&format!("--listen {asked} cannot be bound"))
                && message.contains("leave --listen out"),
            "{message}"
        );
    }

    #[test]
    fn the_demo_children_get_no_setting_that_must_differ_per_node() {
        let overrides: Vec<String> = [
            "net.listen=127.0.0.1:7600",
            "scheduler.slice=2ms",
            " node.name = x",
            "gossip.bind=127.0.0.1:7601",
            "node.data_dir=/srv/goliath",
        ]
        .map(String::from)
        .to_vec();
        let kept: Vec<&String> = overrides_without(&overrides, &PER_NODE_KEYS).collect();
        assert_eq!(kept, ["scheduler.slice=2ms"]);
    }

    #[test]
    fn a_demo_address_that_is_not_one_is_a_usage_error_naming_its_origin() {
        let mut notes = Vec::new();
        let Err(failure) = demo_address(
            DemoSocket::Protocol,
            Some("localhost"),
            "127.0.0.1:7420",
            40005,
            &mut notes,
        ) else {
            panic!("an address without a port is refused");
        };
        assert_eq!(failure.code, exit::USAGE);
        let message = format!("{:#}", failure.error);
        assert!(
            message.contains("--listen") && message.contains("\"localhost\""),
            "{message}"
        );
    }

    #[test]
    fn the_interrupted_note_agrees_in_number() {
        assert_eq!(interrupted_note(0, true), None);
        assert_eq!(
            interrupted_note(1, true).as_deref(),
            Some(
                "1 task was interrupted by the stop; the log keeps it, and it runs again at the next start on this data directory"
            )
        );
        assert!(
            interrupted_note(2, true)
                .is_some_and(|note| note.contains("2 tasks were") && note.contains("they run"))
        );
        assert!(interrupted_note(1, false).is_some_and(|note| note.contains("and is gone")));
    }
}
