//! The `goliath` binary: parses the command line, loads the config, and runs a node, the
//! console or a client command. The only place that uses `anyhow` and decides exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use goliath::config::{Config, ConfigError, DEFAULT_TOML};
use goliath::runtime::Node;

/// Exit codes, documented in README.md.
mod exit {
    /// A usage or config error: bad flag, bad config file, bad task spec.
    pub const USAGE: u8 = 2;
    /// The node failed while running.
    pub const FAILURE: u8 = 1;
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
    /// Set any config key, e.g. --set scheduler.slice=2ms (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node without the console until SIGINT/SIGTERM; logs go to stderr.
    Node,
    /// Show or check configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("goliath: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Some(Command::Config {
            action: ConfigAction::Default,
        }) => {
            print!("{DEFAULT_TOML}");
            Ok(())
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
            Ok(())
        }
        Some(Command::Node) => run_headless(&cli.node, None),
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
    for entry in &args.overrides {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(Failure::usage(ConfigError::Invalid {
                origin: goliath::config::ConfigOrigin::CommandLine,
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

/// Runs a node until SIGINT or SIGTERM, then shuts it down with the configured grace. A second
/// signal during shutdown exits at once.
fn run_headless(args: &NodeArgs, note: Option<&str>) -> Result<(), Failure> {
    let (config, origin) = load_config(args)?;
    init_logging(&config);
    if let Some(note) = note {
        tracing::info!("{note}");
    }
    tracing::info!(config = %origin, "starting node");
    let grace = config.shutdown.grace;
    let node = Node::start(config).map_err(Failure::runtime)?;
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    let signal_name = signals
        .block_on(wait_for_signal())
        .map_err(Failure::runtime)?;
    tracing::info!(signal = signal_name, grace = ?grace, "shutting down; send the signal again to stop at once");
    signals.spawn(async {
        let _ = wait_for_signal().await;
        eprintln!("goliath: second signal, stopping now");
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
    let report = std::thread::scope(|scope| {
        let shutdown = scope.spawn(|| node.shutdown(grace));
        // Keep polling the signal runtime while shutdown runs.
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
        Ok(_) => Ok(()),
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
