//! The `goliath` binary: parses the command line, loads the config, and runs a node, the
//! console or a client command. The only place that uses `anyhow` and decides exit codes.

mod commands;
mod wal_commands;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use goliath::config::{Config, ConfigError, ConfigOrigin, DEFAULT_TOML};
use goliath::runtime::net::client::ConnectOptions;
use goliath::runtime::net::{Client, Server, ServerConfig};
use goliath::runtime::{NodeBuilder, TaskId, TaskState};

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
    node: NodeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Settings for a local node; each overrides the config file.
#[derive(Args, Debug, Clone, Default)]
struct NodeArgs {
    /// Config file (else $GOLIATH_CONFIG, else ~/.config/goliath/config.toml, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Node name (config node.name).
    #[arg(long, global = true, value_name = "NAME")]
    name: Option<String>,
    /// Worker threads, or "auto" (config scheduler.workers).
    #[arg(long, global = true, value_name = "N")]
    workers: Option<String>,
    /// Task slots in the arena, a power of two (config arena.slots).
    #[arg(long, global = true, value_name = "N")]
    arena_slots: Option<String>,
    /// Address the protocol listens on (config net.listen).
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Option<String>,
    /// Allow listening on a non-loopback address without authentication.
    #[arg(long, global = true)]
    insecure_listen: bool,
    /// Data directory for the write-ahead log (config node.data_dir; default
    /// $XDG_DATA_HOME/goliath/<node name>).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Set any config key, e.g. --set scheduler.slice=2ms (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Where a client command connects.
#[derive(Args, Debug, Clone)]
struct Target {
    /// Node address (default: this machine's config net.listen, 127.0.0.1:7420).
    #[arg(long = "node", value_name = "ADDR")]
    node: Option<String>,
    /// Print JSON (one document, or JSON lines for streams) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node without the console until SIGINT/SIGTERM; logs go to stderr.
    Node,
    /// Submit tasks: `goliath submit spin 200ms x20`, `goliath submit "fib 30" "sleep 1s"`, or `-` for one spec per line on stdin.
    Submit {
        /// Wait for the tasks to finish and print their outcomes; exit 1 if any did not succeed.
        #[arg(long)]
        wait: bool,
        /// Submitting again with the same key returns the same ids instead of new tasks.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        #[command(flatten)]
        target: Target,
        /// Task specs in the text form.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true, value_name = "SPEC")]
        specs: Vec<String>,
    },
    /// Cancel tasks by id.
    Cancel {
        #[command(flatten)]
        target: Target,
        /// Task ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<TaskId>,
    },
    /// Describe one task.
    Task {
        #[command(flatten)]
        target: Target,
        /// Task id.
        id: TaskId,
    },
    /// List tasks, newest first.
    Tasks {
        /// Only tasks in this state (queued, running, succeeded, failed, cancelled, timed_out).
        #[arg(long, value_name = "STATE")]
        state: Option<TaskState>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
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
        /// Also print a node summary this often, e.g. 1s.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
        snapshots: Option<Duration>,
        #[command(flatten)]
        target: Target,
    },
    /// Ask the node to shut down (it finishes or cancels running tasks first).
    Shutdown {
        #[command(flatten)]
        target: Target,
    },
    /// Show or check configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Inspect a node's write-ahead log (works beside a running node; changes nothing).
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
    },
    /// Print every record (checkpoint, then segments) as text, or JSON lines.
    Dump {
        /// One JSON document per record.
        #[arg(long)]
        json: bool,
    },
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    goliath::runtime::units::parse_duration(text).map_err(|e| e.to_string())
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Print the shipped default config file.
    Default,
    /// Print the config this invocation would use (file plus flags) and where it came from.
    Show,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("goliath: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let client = |target: Target, command: ClientCommand| run_client(&cli.node, target, command);
    match cli.command {
        Some(Command::Config {
            action: ConfigAction::Default,
        }) => {
            print!("{DEFAULT_TOML}");
            Ok(exit::OK)
        }
        Some(Command::Config {
            action: ConfigAction::Show,
        }) => {
            let (config, origin) = load_config(&cli.node)?;
            println!("# from: {origin}");
            print!(
                "{}",
                toml::to_string(&config.to_table()).map_err(Failure::runtime)?
            );
            Ok(exit::OK)
        }
        Some(Command::Node) => run_headless(&cli.node, None),
        Some(Command::Submit {
            wait,
            idempotency_key,
            target,
            specs,
        }) => {
            let specs = commands::spec_lines(&specs)?;
            client(
                target,
                ClientCommand::Submit {
                    specs,
                    wait,
                    idempotency_key,
                },
            )
        }
        Some(Command::Cancel { target, ids }) => client(target, ClientCommand::Cancel { ids }),
        Some(Command::Task { target, id }) => client(target, ClientCommand::Task { id }),
        Some(Command::Tasks {
            state,
            limit,
            target,
        }) => client(target, ClientCommand::Tasks { state, limit }),
        Some(Command::Status { target }) => client(target, ClientCommand::Status),
        Some(Command::Watch { snapshots, target }) => {
            client(target, ClientCommand::Watch { snapshots })
        }
        Some(Command::Shutdown { target }) => client(target, ClientCommand::Shutdown),
        Some(Command::Wal { action }) => {
            let (config, _) = load_config(&cli.node)?;
            let name = if config.node.name.is_empty() {
                goliath::runtime::node::host_name()
            } else {
                config.node.name.clone()
            };
            let dir = goliath::runtime::wal::data_dir(&config, &name).map_err(Failure::usage)?;
            Ok(match action {
                WalAction::Verify { json } => wal_commands::verify(&dir, json)?,
                WalAction::Dump { json } => wal_commands::dump(&dir, json)?,
            })
        }
        None => {
            if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
                run_headless(
                    &cli.node,
                    Some("the console is not built yet; running a headless node (Ctrl-C stops it)"),
                )
            } else {
                run_headless(
                    &cli.node,
                    Some(
                        "no terminal on stdin/stdout: running a headless node, as `goliath node` does",
                    ),
                )
            }
        }
    }
}

/// Loads the config in the documented order and applies command-line overrides.
fn load_config(args: &NodeArgs) -> Result<(Config, String), Failure> {
    let loaded = Config::load(args.config.as_deref()).map_err(Failure::usage)?;
    let mut config = loaded.config;
    let mut apply =
        |key: &str, value: &str| config.set_override(key, value).map_err(Failure::usage);
    if let Some(name) = &args.name {
        apply("node.name", name)?;
    }
    if let Some(workers) = &args.workers {
        apply("scheduler.workers", workers)?;
    }
    if let Some(slots) = &args.arena_slots {
        apply("arena.slots", slots)?;
    }
    if let Some(listen) = &args.listen {
        apply("net.listen", listen)?;
    }
    if let Some(dir) = &args.data_dir {
        let dir = dir.to_str().ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "--data-dir {} is not valid UTF-8",
                dir.display()
            ))
        })?;
        apply("node.data_dir", dir)?;
    }
    for entry in &args.overrides {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(Failure::usage(ConfigError::Invalid {
                origin: ConfigOrigin::CommandLine,
                line: None,
                key: entry.clone(),
                message: "needs the form --set key=value, e.g. --set scheduler.slice=2ms".into(),
            }));
        };
        apply(key.trim(), value.trim())?;
    }
    Ok((config, loaded.origin.to_string()))
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
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
    runtime.block_on(async {
        let client = Client::connect(&address, &options)
            .await
            .map_err(CommandError::from)?;
        Ok(commands::run(&client, command, target.json).await?)
    })
}

/// Checks the listen address: anything but loopback needs `--insecure-listen`.
fn check_listen(config: &Config, insecure: bool) -> Result<ServerConfig, Failure> {
    let server = ServerConfig::from_config(config)
        .map_err(|message| Failure::usage(anyhow::anyhow!("net.listen {message}")))?;
    if !server.listen.ip().is_loopback() {
        if !insecure {
            return Err(Failure::usage(anyhow::anyhow!(
                "refusing to listen on {}: the protocol has no authentication yet, so anyone who can reach that address could submit tasks. Listen on a loopback address, or pass --insecure-listen to accept that",
                server.listen
            )));
        }
        tracing::warn!(listen = %server.listen, "listening on a non-loopback address WITHOUT authentication (--insecure-listen): anyone who can reach it can submit and cancel tasks");
    }
    Ok(server)
}

/// Runs a node and its protocol server until SIGINT, SIGTERM or a `shutdown` request, then
/// shuts it down with the configured grace. A second signal during shutdown exits at once.
fn run_headless(args: &NodeArgs, note: Option<&str>) -> Result<u8, Failure> {
    let (config, origin) = load_config(args)?;
    init_logging(&config);
    let server_config = check_listen(&config, args.insecure_listen)?;
    if let Some(note) = note {
        tracing::info!("{note}");
    }
    tracing::info!(config = %origin, "starting node");
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
    let server = io.block_on(Server::start(node.clone(), server_config.clone())).map_err(|error| {
        Failure::runtime(anyhow::anyhow!("cannot listen on {}: {error}; is another node using it? pick another with --listen", server_config.listen))
    })?;
    tracing::info!(listen = %server.local_addr(), "serving the goliath protocol");
    let mut shutdown_signal = server.shutdown_signal();
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    let reason = signals.block_on(async {
        tokio::select! {
            signal = wait_for_signal() => signal.map(|name| Ok(name.to_string())),
            _ = shutdown_signal.wait_for(|requested| *requested) => Ok(Ok("a shutdown request".to_string())),
            failure = node.wal_failed() => Ok(Err(failure)),
        }
    });
    let reason = match reason.map_err(Failure::runtime)? {
        Ok(reason) => reason,
        Err(failure) => {
            // Fail-stop: nothing more can be acknowledged. Stop accepting connections, give
            // the submitters already waiting a moment to receive the error (they all have it
            // the instant the log failed), then stop and say why.
            server.stop();
            std::thread::sleep(Duration::from_millis(250));
            node.shutdown(Duration::ZERO);
            let dir = node
                .data_dir()
                .map(|dir| dir.display().to_string())
                .unwrap_or_default();
            return Err(Failure::runtime(anyhow::anyhow!(
                "stopping: {failure} (data directory {dir}). Acknowledged tasks are safe on disk; fix the disk, then start the node again to recover them"
            )));
        }
    };
    tracing::info!(reason = %reason, grace = ?grace, "shutting down; send SIGINT/SIGTERM again to stop at once");
    server.stop();
    signals.spawn(async {
        let _ = wait_for_signal().await;
        eprintln!("goliath: second signal, stopping now");
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
    let report = std::thread::scope(|scope| {
        let shutdown = scope.spawn(|| node.shutdown(grace));
        signals.block_on(async {
            while !shutdown.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        shutdown.join()
    });
    match report {
        Ok(report) if report.abandoned > 0 => Err(Failure::runtime(anyhow::anyhow!(
            "{} tasks did not stop in time",
            report.abandoned
        ))),
        Ok(_) => Ok(exit::OK),
        Err(_) => Err(Failure::runtime(anyhow::anyhow!("shutdown panicked"))),
    }
}

async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}
