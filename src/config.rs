//! Typed configuration: the shipped defaults, where a file is looked up, and errors that name
//! the file, line and key.
//!
//! Lookup order: `--config FILE`, then `$GOLIATH_CONFIG`, then
//! `$XDG_CONFIG_HOME/goliath/config.toml` (or `~/.config/goliath/config.toml`) when it exists,
//! else the defaults embedded from `config/goliath.toml`. A file only needs the keys it changes;
//! the rest keep their defaults. Command-line flags are applied on top with
//! [`Config::set_override`] and checked again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::runtime::gossip::wire::unseen_in_a_name;
use crate::runtime::suggest;
use crate::runtime::units::{self, HumanDuration, HumanSize};
use crate::runtime::wal::WalSync;

/// The shipped default configuration, every key commented.
pub const DEFAULT_TOML: &str = include_str!("../config/goliath.toml");

/// Largest arena the config accepts (slots); at 128 bytes a slot this is 2 GiB.
pub const MAX_ARENA_SLOTS: usize = 1 << 24;
/// Most worker threads the config accepts.
pub const MAX_WORKERS: usize = 1024;

/// The whole configuration of a node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`: identity.
    pub node: NodeConfig,
    /// `[scheduler]`: workers and time slices.
    pub scheduler: SchedulerConfig,
    /// `[arena]`: the task slot arena.
    pub arena: ArenaConfig,
    /// `[history]`: finished tasks kept.
    pub history: HistoryConfig,
    /// `[events]`: task event subscriptions.
    pub events: EventsConfig,
    /// `[exec]`: shell command tasks.
    pub exec: ExecConfig,
    /// `[net]`: the protocol listener.
    pub net: NetConfig,
    /// `[shutdown]`: how a node stops.
    pub shutdown: ShutdownConfig,
    /// `[log]`: log filter.
    pub log: LogConfig,
    /// `[console]`: the terminal console.
    pub console: ConsoleConfig,
    /// `[gossip]`: cluster membership.
    pub gossip: GossipConfig,
    /// `[wal]`: the write-ahead log.
    pub wal: WalConfig,
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Node name; empty means the host name.
    pub name: String,
    /// Cluster name; clients and peers must use the same.
    pub cluster: String,
    /// Idempotency keys remembered.
    pub idempotency_keys: usize,
    /// Where the node keeps its write-ahead log; empty means the default under
    /// `$XDG_DATA_HOME/goliath/<node name>`.
    pub data_dir: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            cluster: "goliath".to_string(),
            idempotency_keys: 100_000,
            data_dir: String::new(),
        }
    }
}

/// `[wal]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// Keep a write-ahead log (durable node); false keeps nothing on disk.
    pub enabled: bool,
    /// When an append counts as durable.
    pub sync: WalSync,
    /// Bytes per segment file (preallocated).
    #[serde(deserialize_with = "de_size")]
    pub segment_size: u64,
    /// How long the writer waits for more appends before writing a batch.
    #[serde(deserialize_with = "de_duration")]
    pub max_batch_delay: Duration,
    /// Log bytes between checkpoints (after which covered segments are deleted).
    #[serde(deserialize_with = "de_size")]
    pub checkpoint_every: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sync: WalSync::Always,
            segment_size: 16 << 20,
            max_batch_delay: Duration::ZERO,
            checkpoint_every: 64 << 20,
        }
    }
}

/// `[net]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetConfig {
    /// Address the protocol listener binds.
    pub listen: String,
    /// Largest frame accepted or sent.
    #[serde(deserialize_with = "de_size")]
    pub max_frame: u64,
    /// Requests in flight per connection before the node stops reading it.
    pub max_inflight: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to complete the handshake.
    #[serde(deserialize_with = "de_duration")]
    pub handshake_timeout: Duration,
    /// Time a client may take to send the rest of a frame it began, and to read any of the
    /// answers waiting for it, before it is disconnected.
    #[serde(deserialize_with = "de_duration")]
    pub stall_timeout: Duration,
    /// Tasks one connection may wait for at once (`submit --wait`).
    pub max_waiting: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7420".to_string(),
            max_frame: 1 << 20,
            max_inflight: 256,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(30),
            max_waiting: 65_536,
        }
    }
}

impl NetConfig {
    /// The listen address, parsed.
    pub fn listen_address(&self) -> Result<std::net::SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            let why = host_port_problem(&self.listen).unwrap_or_else(|| "is not an IP".into());
            format!(
                "= {:?} {why}; use IP:PORT, e.g. \"127.0.0.1:7420\"",
                self.listen
            )
        })
    }
}

/// How many worker threads to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerCount {
    /// One per available core.
    Auto,
    /// Exactly this many.
    Fixed(usize),
}

impl WorkerCount {
    /// The number of threads this resolves to on this machine.
    pub fn resolve(self) -> usize {
        match self {
            WorkerCount::Fixed(count) => count,
            WorkerCount::Auto => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

impl fmt::Display for WorkerCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerCount::Auto => f.write_str("auto"),
            WorkerCount::Fixed(count) => write!(f, "{count}"),
        }
    }
}

impl<'de> Deserialize<'de> for WorkerCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = WorkerCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\" or a number of workers")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<WorkerCount, E> {
                if value == "auto" {
                    Ok(WorkerCount::Auto)
                } else {
                    Err(E::custom(format!(
                        "expected \"auto\" or a number of workers, found \"{value}\""
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<WorkerCount, E> {
                usize::try_from(value).map(WorkerCount::Fixed).map_err(|_| {
                    E::custom(format!(
                        "workers must be \"auto\" or 1 to {MAX_WORKERS}, found {value}"
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<WorkerCount, E> {
                usize::try_from(value).map(WorkerCount::Fixed).map_err(|_| {
                    E::custom(format!(
                        "workers must be \"auto\" or 1 to {MAX_WORKERS}, found {value}"
                    ))
                })
            }
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

/// `[scheduler]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Worker threads.
    pub workers: WorkerCount,
    /// Longest run of a task before it is re-enqueued.
    #[serde(deserialize_with = "de_duration")]
    pub slice: Duration,
    /// How long an idle worker looks for work before parking.
    #[serde(deserialize_with = "de_duration")]
    pub spin_before_park: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            workers: WorkerCount::Auto,
            slice: Duration::from_millis(1),
            spin_before_park: Duration::from_micros(50),
        }
    }
}

/// `[arena]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArenaConfig {
    /// Task slots, a power of two.
    pub slots: usize,
}

impl Default for ArenaConfig {
    fn default() -> Self {
        Self { slots: 65_536 }
    }
}

/// `[history]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Finished tasks remembered.
    pub tasks: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { tasks: 10_000 }
    }
}

/// `[events]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Events buffered per subscriber.
    pub capacity: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { capacity: 4096 }
    }
}

/// `[exec]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecConfig {
    /// Whether `exec` tasks may run at all.
    pub enabled: bool,
    /// Whether `exec` tasks may be submitted over the network.
    pub remote: bool,
    /// Bytes kept per output stream.
    #[serde(deserialize_with = "de_size")]
    pub max_output: u64,
    /// Time between SIGTERM and SIGKILL.
    #[serde(deserialize_with = "de_duration")]
    pub kill_grace: Duration,
}

impl Default for ExecConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            remote: false,
            max_output: 64 << 10,
            kill_grace: Duration::from_secs(2),
        }
    }
}

/// `[shutdown]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long running tasks may finish before they are interrupted (to run again at the
    /// next start; cancelled on a memory-only node).
    #[serde(deserialize_with = "de_duration")]
    pub grace: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(5),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter directive.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
        }
    }
}

/// `[console]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// How often the console samples the node.
    #[serde(deserialize_with = "de_duration")]
    pub refresh: Duration,
    /// Most redraws per second.
    pub max_fps: u32,
    /// `dark`, `light` or `mono`.
    pub theme: String,
    /// Whether the mouse selects, focuses and scrolls.
    pub mouse: bool,
    /// Draw with ASCII only.
    pub ascii: bool,
    /// Most tasks fetched per sample for the tables.
    pub task_limit: usize,
    /// `[console.keys]`: action name → keys.
    pub keys: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            refresh: Duration::from_millis(500),
            max_fps: 10,
            theme: "dark".to_string(),
            mouse: true,
            ascii: false,
            task_limit: 1000,
            keys: crate::tui::keys::default_bindings(),
        }
    }
}

/// `[gossip]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipConfig {
    /// Whether the node gossips at all.
    pub enabled: bool,
    /// UDP address gossip binds.
    pub bind: String,
    /// Address other members use to reach this one; empty means the bound address.
    pub advertise: String,
    /// Members to join through (`HOST:PORT`).
    #[serde(deserialize_with = "de_list")]
    pub join: Vec<String>,
    /// Largest datagram sent or accepted.
    #[serde(deserialize_with = "de_size")]
    pub max_packet: u64,
    /// Time between probes.
    #[serde(deserialize_with = "de_duration")]
    pub probe_interval: Duration,
    /// Time to wait for a direct ack.
    #[serde(deserialize_with = "de_duration")]
    pub probe_timeout: Duration,
    /// Members asked to probe indirectly.
    pub indirect_probes: usize,
    /// Minimum suspicion = this × max(2, log10 n) × probe_interval.
    pub suspicion_mult: Float,
    /// Maximum suspicion = this × the minimum.
    pub suspicion_max_mult: Float,
    /// Time between gossip rounds.
    #[serde(deserialize_with = "de_duration")]
    pub gossip_interval: Duration,
    /// Members gossiped to per round.
    pub gossip_fanout: usize,
    /// Each update is sent at most this × log10(n + 1) times.
    pub retransmit_mult: u32,
    /// Base time between state exchanges.
    #[serde(deserialize_with = "de_duration")]
    pub sync_interval: Duration,
    /// Members remembered at most.
    pub max_members: usize,
    /// Updates waiting to be spread at most.
    pub max_queue: usize,
    /// φ at or above which a member is marked degraded.
    pub phi_threshold: Float,
    /// Inter-arrival times kept per member for φ.
    pub phi_window: usize,
    /// Smallest standard deviation φ uses.
    #[serde(deserialize_with = "de_duration")]
    pub phi_min_std: Duration,
    /// Silence tolerated on top of the mean before φ grows.
    #[serde(deserialize_with = "de_duration")]
    pub phi_acceptable_pause: Duration,
    /// Dead and left members are forgotten after this long.
    #[serde(deserialize_with = "de_duration")]
    pub dead_retention: Duration,
    /// Least time between two metadata updates of this node.
    #[serde(deserialize_with = "de_duration")]
    pub meta_interval: Duration,
    /// Membership events kept for the console and `goliath members`.
    pub events: usize,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bind: "127.0.0.1:7421".to_string(),
            advertise: String::new(),
            join: Vec::new(),
            max_packet: 1400,
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(200),
            indirect_probes: 3,
            suspicion_mult: Float(0.7),
            suspicion_max_mult: Float(6.0),
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            retransmit_mult: 3,
            sync_interval: Duration::from_secs(60),
            max_members: 4096,
            max_queue: 1024,
            phi_threshold: Float(8.0),
            phi_window: 64,
            phi_min_std: Duration::from_millis(100),
            phi_acceptable_pause: Duration::from_millis(500),
            dead_retention: Duration::from_secs(3600),
            meta_interval: Duration::from_secs(5),
            events: 256,
        }
    }
}

/// Console themes.
pub const THEMES: [&str; 3] = ["dark", "light", "mono"];
impl GossipConfig {
    /// The bind address, parsed.
    pub fn bind_address(&self) -> Result<std::net::SocketAddr, String> {
        self.bind.parse().map_err(|_| {
            let why = host_port_problem(&self.bind).unwrap_or_else(|| "is not an IP".into());
            format!(
                "= {:?} {why}; use IP:PORT, e.g. \"127.0.0.1:7421\"",
                self.bind
            )
        })
    }
}

/// A floating-point setting, compared bit for bit (so configs stay `Eq`).
#[derive(Debug, Clone, Copy)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Float {}

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FloatVisitor;
        impl Visitor<'_> for FloatVisitor {
            type Value = Float;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number like 8 or 0.7")
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Float, E> {
                Ok(Float(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Float, E> {
                Ok(Float(value as f64))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Float, E> {
                Ok(Float(value as f64))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Float, E> {
                value
                    .trim()
                    .parse()
                    .map(Float)
                    .map_err(|_| E::custom(format!("expected a number, found \"{value}\"")))
            }
        }
        deserializer.deserialize_any(FloatVisitor)
    }
}

/// A list of strings, from a TOML array or one comma-separated string.
fn de_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct ListVisitor;
    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of addresses, or one string of them separated by commas")
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<Vec<String>, E> {
            if value.trim().is_empty() {
                return Ok(Vec::new());
            }
            let items: Vec<String> = value
                .split(',')
                .map(|item| item.trim().to_string())
                .collect();
            // `--join "$A,$B"` with B unset: one seed fewer than meant, without a word.
            if items.iter().any(String::is_empty) {
                return Err(E::custom(format!(
                    "{value:?} has an empty entry between commas (an unset variable?): list each address once"
                )));
            }
            Ok(items)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_any(ListVisitor)
}

fn de_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration with its unit, e.g. \"10ms\" (ns us ms s m h d)")
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<Duration, E> {
            units::parse_duration(value).map_err(E::custom)
        }
        // A bare 0 (no unit needed); any other bare number is refused for want of one.
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Duration, E> {
            if value == 0 {
                return Ok(Duration::ZERO);
            }
            Err(E::invalid_type(de::Unexpected::Signed(value), &self))
        }
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Duration, E> {
            if value == 0 {
                return Ok(Duration::ZERO);
            }
            Err(E::invalid_type(de::Unexpected::Unsigned(value), &self))
        }
    }
    deserializer.deserialize_any(DurationVisitor)
}

fn de_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct SizeVisitor;
    impl Visitor<'_> for SizeVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size like 4096 or \"64KiB\"")
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
            units::parse_size(value).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value)
                .map_err(|_| E::custom(format!("a size cannot be negative ({value})")))
        }
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }
    }
    deserializer.deserialize_any(SizeVisitor)
}

/// Where a configuration came from; named in every error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// `--config FILE`.
    Flag(PathBuf),
    /// `$GOLIATH_CONFIG`.
    Env(PathBuf),
    /// The per-user file under the XDG config directory.
    User(PathBuf),
    /// The defaults compiled into the binary.
    Embedded,
    /// A command-line flag overriding a key.
    CommandLine,
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigOrigin::Flag(path) => write!(f, "config file {} (from --config)", path.display()),
            ConfigOrigin::Env(path) => {
                write!(f, "config file {} (from $GOLIATH_CONFIG)", path.display())
            }
            ConfigOrigin::User(path) => write!(f, "config file {}", path.display()),
            ConfigOrigin::Embedded => f.write_str("embedded default config"),
            ConfigOrigin::CommandLine => f.write_str("command line"),
        }
    }
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {origin}: {error}")]
    Read {
        /// Which file.
        origin: ConfigOrigin,
        /// The I/O error: in the message, not a `source()`, so a report that prints the
        /// chain does not say it twice.
        error: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    #[error("{origin}, line {line}, column {column}{}: {message}", key.as_ref().map(|k| format!(", key `{}`", crate::runtime::units::quoted_part(k))).unwrap_or_default())]
    Syntax {
        /// Which file.
        origin: ConfigOrigin,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The full dotted key at that place, when there is one.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{origin}{}: `{}`{}{message}", line.map(|l| format!(", line {l}")).unwrap_or_default(), crate::runtime::units::quoted_part(key), if message.starts_with('=') { " " } else { ": " })]
    Invalid {
        /// Which file.
        origin: ConfigOrigin,
        /// 1-based line of the key, when it is in the file.
        line: Option<usize>,
        /// The full dotted key.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// A configuration together with where it came from.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The values.
    pub config: Config,
    /// Their origin.
    pub origin: ConfigOrigin,
    /// A value the file gives that is out of range or at odds with another (`workers = 0`,
    /// checkpoints larger than segments), with its line: an error unless the command line
    /// sets it right ([`Config::check_overrides_after`]).
    pub problem: Option<ConfigError>,
}

impl Config {
    /// Parses and checks a configuration text. Keys left out keep their defaults.
    pub fn parse(text: &str, origin: ConfigOrigin) -> Result<Config, ConfigError> {
        match Config::parse_deferring(text, origin)? {
            (_, Some(problem)) => Err(problem),
            (config, None) => Ok(config),
        }
    }

    /// Parses a configuration text; a value out of range or at odds with another is
    /// returned beside the config rather than as the error, so that the command line may
    /// still set it right. Text that is not a config (syntax, unknown keys, a value of the
    /// wrong type) is the error.
    pub fn parse_deferring(
        text: &str,
        origin: ConfigOrigin,
    ) -> Result<(Config, Option<ConfigError>), ConfigError> {
        // A byte-order mark (some Windows editors write one) is no part of the first key.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let config: Config =
            toml::from_str(text).map_err(|error| syntax_error(text, &origin, &error))?;
        if let Some((key, mut message)) = config.first_problem() {
            // An inline table (`scheduler = { workers = 0 }`) is found by its own key.
            let line = std::iter::successors(Some(key.as_str()), |prefix| {
                prefix.rsplit_once('.').map(|(shorter, _)| shorter)
            })
            .find_map(|prefix| find_key_line(text, prefix));
            if line.is_none() {
                message.push_str(&default_beside_written(text, &key, &message));
            }
            let problem = ConfigError::Invalid {
                origin,
                line,
                key,
                message,
            };
            return Ok((config, Some(problem)));
        }
        Ok((config, None))
    }

    /// Finds the configuration to use, in the documented lookup order.
    pub fn load(explicit: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
        let origin = if let Some(path) = explicit {
            ConfigOrigin::Flag(path.to_path_buf())
        } else if let Some(path) = std::env::var_os("GOLIATH_CONFIG").filter(|v| !v.is_empty()) {
            ConfigOrigin::Env(PathBuf::from(path))
        } else if let Some(path) = user_config_path().filter(|p| p.symlink_metadata().is_ok()) {
            // There in any form: a directory or a broken link in its place is an error to
            // show, not a reason to run on the defaults without a word.
            ConfigOrigin::User(path)
        } else {
            ConfigOrigin::Embedded
        };
        let text = match &origin {
            ConfigOrigin::Flag(path) | ConfigOrigin::Env(path) | ConfigOrigin::User(path) => {
                read_config_file(path).map_err(|error| ConfigError::Read {
                    origin: origin.clone(),
                    error,
                })?
            }
            ConfigOrigin::Embedded | ConfigOrigin::CommandLine => DEFAULT_TOML.to_string(),
        };
        let (config, problem) = Config::parse_deferring(&text, origin.clone())?;
        Ok(LoadedConfig {
            config,
            origin,
            problem,
        })
    }

    /// Applies a `--set key=value` style override (also used by dedicated flags) and checks
    /// the result. The key is the dotted name used in the file.
    pub fn set_override(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        self.set_override_read(key, value, true, true)
    }

    /// [`Config::set_override`] without the checks across keys, for several overrides given
    /// together; with `as_text`, for a flag whose value is text whatever it looks like
    /// (`--name '"a"'` names the node `"a"`, quotes and all), never read as TOML. Checked one
    /// at a time, `wal.segment_size=512MiB` then `wal.checkpoint_every=1GiB` was refused for
    /// the default checkpoint size in between. Call [`Config::check_overrides`] after the last.
    pub fn set_override_unchecked(
        &mut self,
        key: &str,
        value: &str,
        as_text: bool,
    ) -> Result<(), ConfigError> {
        self.set_override_read(key, value, !as_text, false)
    }

    /// The checks [`Config::set_override_unchecked`] left out, naming the command line.
    pub fn check_overrides(&self) -> Result<(), ConfigError> {
        match self.first_problem() {
            Some((key, message)) => Err(ConfigError::Invalid {
                origin: ConfigOrigin::CommandLine,
                line: None,
                key,
                message,
            }),
            None => Ok(()),
        }
    }

    /// [`Config::check_overrides`] after a file whose values had `file_problem`, given the
    /// keys the command line set (`set_here`): none once the command line set it right; the
    /// file's own error (it names the line) while the command line left it as it was; else
    /// the command line's, which says when the key it names is not one the command line set
    /// (`--set gossip.probe_interval=300ms` makes a file's `probe_timeout` too long). A file's
    /// message would say "not set here" of a key `--set` gave, even at its default value.
    pub fn check_overrides_after(
        &self,
        file_problem: Option<ConfigError>,
        set_here: &[&str],
    ) -> Result<(), ConfigError> {
        let Some((key, mut message)) = self.first_problem() else {
            return Ok(());
        };
        if !set_here.contains(&key.as_str()) {
            if let Some(problem @ ConfigError::Invalid { .. }) = file_problem
                && matches!(&problem, ConfigError::Invalid { key: file_key, message: file_message, .. }
                    if *file_key == key && file_message.starts_with(&message))
            {
                return Err(problem);
            }
            message.push_str(&format!(
                " (the command line does not set `{key}`: its value is the config file's or the default)"
            ));
        }
        Err(ConfigError::Invalid {
            origin: ConfigOrigin::CommandLine,
            line: None,
            key,
            message,
        })
    }

    fn set_override_read(
        &mut self,
        key: &str,
        value: &str,
        toml_allowed: bool,
        validate: bool,
    ) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: ConfigOrigin::CommandLine,
            line: None,
            key: key.to_string(),
            message,
        };
        let binding = key.starts_with("console.keys.");
        if !binding && !known_keys().iter().any(|known| known == key) {
            return Err(invalid(unknown_key_message(key)));
        }
        let (table, field) = key.split_once('.').unwrap_or(("", key));
        // The value as TOML when it is TOML (a number, `true`, `["q", "Esc"]`, `"text"`), and
        // as text (`200ms`, `127.0.0.1:7420`, or `--name 1` where the key wants text). A key
        // binding may be one key, unlisted.
        let literal = toml_allowed
            && toml::from_str::<toml::Table>(&format!("value = {value}"))
                .is_ok_and(|table| table.len() == 1);
        // TOML's own quoting: Rust's `{:?}` writes `\u{1b}`, which TOML refuses.
        let quoted = toml::Value::String(value.to_string()).to_string();
        let mut candidates = Vec::new();
        if literal {
            candidates.push(if binding && !value.trim_start().starts_with('[') {
                format!("[{value}]")
            } else {
                value.to_string()
            });
        }
        candidates.push(if binding {
            format!("[{quoted}]")
        } else {
            quoted
        });
        let base = self.to_table();
        let mut errors: Vec<ConfigError> = Vec::new();
        let mut accepted = None;
        for value_toml in candidates {
            let text = format!("[{table}]\n{field} = {value_toml}\n");
            let overlay: toml::Table = match toml::from_str(&text) {
                Ok(overlay) => overlay,
                Err(error) => {
                    errors.push(invalid(format!(
                        "cannot use value '{value}': {}",
                        error.message()
                    )));
                    continue;
                }
            };
            let mut merged = base.clone();
            merge_tables(&mut merged, overlay);
            let rendered = toml::to_string(&merged).unwrap_or_default();
            match toml::from_str::<Config>(&rendered) {
                Ok(config) => {
                    accepted = Some(config);
                    break;
                }
                Err(error) => errors.push(invalid(plain_message(error.message()))),
            }
        }
        let Some(config) = accepted else {
            // Read as TOML first (`-1` a number), then as text: when the text reading only
            // finds that the key takes no text, what the TOML reading said is the point.
            let last = errors.pop();
            let first = errors.into_iter().next();
            return Err(match (first, last) {
                (Some(first), Some(last))
                    if literal
                        && (last.to_string().contains("invalid type: string")
                            || last.to_string().contains(&format!("found {value:?}"))) =>
                {
                    first
                }
                (_, Some(last)) => last,
                (first, None) => {
                    first.unwrap_or_else(|| invalid(format!("cannot use value '{value}'")))
                }
            });
        };
        if validate {
            config.check_overrides()?;
        }
        *self = config;
        Ok(())
    }

    /// The configuration as a TOML table, in the file's own units.
    pub fn to_table(&self) -> toml::Table {
        let mut root = toml::Table::new();
        let mut section = |name: &str, entries: Vec<(&str, toml::Value)>| {
            let table: toml::Table = entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            root.insert(name.to_string(), toml::Value::Table(table));
        };
        let duration = |d: Duration| toml::Value::String(HumanDuration(d).to_string());
        let count = |n: usize| toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        section(
            "node",
            vec![
                ("name", toml::Value::String(self.node.name.clone())),
                ("cluster", toml::Value::String(self.node.cluster.clone())),
                ("idempotency_keys", count(self.node.idempotency_keys)),
                ("data_dir", toml::Value::String(self.node.data_dir.clone())),
            ],
        );
        section(
            "net",
            vec![
                ("listen", toml::Value::String(self.net.listen.clone())),
                (
                    "max_frame",
                    toml::Value::String(HumanSize::exact(self.net.max_frame).to_string()),
                ),
                ("max_inflight", count(self.net.max_inflight)),
                ("max_connections", count(self.net.max_connections)),
                ("handshake_timeout", duration(self.net.handshake_timeout)),
                ("stall_timeout", duration(self.net.stall_timeout)),
                ("max_waiting", count(self.net.max_waiting)),
            ],
        );
        section(
            "scheduler",
            vec![
                (
                    "workers",
                    match self.scheduler.workers {
                        WorkerCount::Auto => toml::Value::String("auto".into()),
                        WorkerCount::Fixed(n) => count(n),
                    },
                ),
                ("slice", duration(self.scheduler.slice)),
                (
                    "spin_before_park",
                    duration(self.scheduler.spin_before_park),
                ),
            ],
        );
        section("arena", vec![("slots", count(self.arena.slots))]);
        section("history", vec![("tasks", count(self.history.tasks))]);
        section("events", vec![("capacity", count(self.events.capacity))]);
        section(
            "exec",
            vec![
                ("enabled", toml::Value::Boolean(self.exec.enabled)),
                ("remote", toml::Value::Boolean(self.exec.remote)),
                (
                    "max_output",
                    toml::Value::String(HumanSize::exact(self.exec.max_output).to_string()),
                ),
                ("kill_grace", duration(self.exec.kill_grace)),
            ],
        );
        section("shutdown", vec![("grace", duration(self.shutdown.grace))]);
        section(
            "log",
            vec![("level", toml::Value::String(self.log.level.clone()))],
        );
        let keys: toml::Table = self
            .console
            .keys
            .iter()
            .map(|(action, keys)| {
                let list = keys.iter().cloned().map(toml::Value::String).collect();
                (action.clone(), toml::Value::Array(list))
            })
            .collect();
        section(
            "console",
            vec![
                ("refresh", duration(self.console.refresh)),
                (
                    "max_fps",
                    toml::Value::Integer(i64::from(self.console.max_fps)),
                ),
                ("theme", toml::Value::String(self.console.theme.clone())),
                ("mouse", toml::Value::Boolean(self.console.mouse)),
                ("ascii", toml::Value::Boolean(self.console.ascii)),
                ("task_limit", count(self.console.task_limit)),
                ("keys", toml::Value::Table(keys)),
            ],
        );
        let gossip = &self.gossip;
        let float = |value: Float| toml::Value::Float(value.0);
        section(
            "gossip",
            vec![
                ("enabled", toml::Value::Boolean(gossip.enabled)),
                ("bind", toml::Value::String(gossip.bind.clone())),
                ("advertise", toml::Value::String(gossip.advertise.clone())),
                (
                    "join",
                    toml::Value::Array(
                        gossip
                            .join
                            .iter()
                            .map(|a| toml::Value::String(a.clone()))
                            .collect(),
                    ),
                ),
                ("max_packet", count(gossip.max_packet as usize)),
                ("probe_interval", duration(gossip.probe_interval)),
                ("probe_timeout", duration(gossip.probe_timeout)),
                ("indirect_probes", count(gossip.indirect_probes)),
                ("suspicion_mult", float(gossip.suspicion_mult)),
                ("suspicion_max_mult", float(gossip.suspicion_max_mult)),
                ("gossip_interval", duration(gossip.gossip_interval)),
                ("gossip_fanout", count(gossip.gossip_fanout)),
                ("retransmit_mult", count(gossip.retransmit_mult as usize)),
                ("sync_interval", duration(gossip.sync_interval)),
                ("max_members", count(gossip.max_members)),
                ("max_queue", count(gossip.max_queue)),
                ("phi_threshold", float(gossip.phi_threshold)),
                ("phi_window", count(gossip.phi_window)),
                ("phi_min_std", duration(gossip.phi_min_std)),
                (
                    "phi_acceptable_pause",
                    duration(gossip.phi_acceptable_pause),
                ),
                ("dead_retention", duration(gossip.dead_retention)),
                ("meta_interval", duration(gossip.meta_interval)),
                ("events", count(gossip.events)),
            ],
        );
        section(
            "wal",
            vec![
                ("enabled", toml::Value::Boolean(self.wal.enabled)),
                ("sync", toml::Value::String(self.wal.sync.as_str().into())),
                (
                    "segment_size",
                    toml::Value::String(HumanSize::exact(self.wal.segment_size).to_string()),
                ),
                ("max_batch_delay", duration(self.wal.max_batch_delay)),
                (
                    "checkpoint_every",
                    toml::Value::String(HumanSize::exact(self.wal.checkpoint_every).to_string()),
                ),
            ],
        );
        root
    }

    /// The first out-of-range value, as (dotted key, what is wrong).
    pub fn first_problem(&self) -> Option<(String, String)> {
        let problem = |key: &str, message: String| Some((key.to_string(), message));
        if let WorkerCount::Fixed(n) = self.scheduler.workers
            && !(1..=MAX_WORKERS).contains(&n)
        {
            return problem(
                "scheduler.workers",
                format!("= {n} is out of range: use \"auto\" or 1 to {MAX_WORKERS}"),
            );
        }
        let slice = self.scheduler.slice;
        if slice < Duration::from_micros(10) || slice > Duration::from_secs(1) {
            return problem(
                "scheduler.slice",
                format!("= {} is out of range: use 10us to 1s", HumanDuration(slice)),
            );
        }
        if self.scheduler.spin_before_park > Duration::from_millis(10) {
            return problem(
                "scheduler.spin_before_park",
                format!(
                    "= {} is out of range: use 0s to 10ms",
                    HumanDuration(self.scheduler.spin_before_park)
                ),
            );
        }
        let slots = self.arena.slots;
        if slots == 0 || slots > MAX_ARENA_SLOTS || !slots.is_power_of_two() {
            let hint = if slots == 0 || slots > MAX_ARENA_SLOTS {
                String::new()
            } else {
                let above = slots.next_power_of_two();
                format!(" (nearest: {} or {above})", above / 2)
            };
            return problem(
                "arena.slots",
                format!(
                    "= {slots} is invalid: use a power of two from 1 to {MAX_ARENA_SLOTS}{hint}"
                ),
            );
        }
        // As the shipped config says: a million rows are 88 MB, reserved at start.
        if !(1..=1_000_000).contains(&self.history.tasks) {
            return problem(
                "history.tasks",
                format!("= {} is out of range: use 1 to 1000000", self.history.tasks),
            );
        }
        if !(16..=1 << 20).contains(&self.events.capacity) {
            return problem(
                "events.capacity",
                format!(
                    "= {} is out of range: use 16 to 1048576",
                    self.events.capacity
                ),
            );
        }
        // Both streams of one task fit in one answer of the protocol (64 MiB, `goliath task`).
        if self.exec.max_output > 16 << 20 {
            return problem(
                "exec.max_output",
                format!(
                    "= {} is out of range: use 0 to 16MiB",
                    HumanSize::exact(self.exec.max_output)
                ),
            );
        }
        if self.exec.kill_grace > Duration::from_secs(60) {
            return problem(
                "exec.kill_grace",
                format!(
                    "= {} is out of range: use 0s to 1m",
                    HumanDuration(self.exec.kill_grace)
                ),
            );
        }
        if self.shutdown.grace > Duration::from_secs(3600) {
            return problem(
                "shutdown.grace",
                format!(
                    "= {} is out of range: use 0s to 1h",
                    HumanDuration(self.shutdown.grace)
                ),
            );
        }
        if self.node.name.len() > 63 || self.node.name.chars().any(unseen_in_a_name) {
            return problem(
                "node.name",
                format!(
                    "= {:?} is invalid: use at most 63 bytes, no spaces, control or invisible characters",
                    self.node.name
                ),
            );
        }
        let cluster = &self.node.cluster;
        if cluster.is_empty() || cluster.len() > 63 || cluster.chars().any(unseen_in_a_name) {
            return problem(
                "node.cluster",
                format!(
                    "= {cluster:?} is invalid: use 1 to 63 bytes, no spaces, control or invisible characters"
                ),
            );
        }
        if !(1..=100_000_000).contains(&self.node.idempotency_keys) {
            return problem(
                "node.idempotency_keys",
                format!(
                    "= {} is out of range: use 1 to 100000000",
                    self.node.idempotency_keys
                ),
            );
        }
        if let Err(message) = self.net.listen_address() {
            return problem("net.listen", message);
        }
        if !(4096..=16 << 20).contains(&self.net.max_frame) {
            return problem(
                "net.max_frame",
                format!(
                    "= {} is out of range: use 4KiB to 16MiB",
                    HumanSize::exact(self.net.max_frame)
                ),
            );
        }
        if !(1..=65_536).contains(&self.net.max_inflight) {
            return problem(
                "net.max_inflight",
                format!(
                    "= {} is out of range: use 1 to 65536",
                    self.net.max_inflight
                ),
            );
        }
        if !(1..=1_000_000).contains(&self.net.max_connections) {
            return problem(
                "net.max_connections",
                format!(
                    "= {} is out of range: use 1 to 1000000",
                    self.net.max_connections
                ),
            );
        }
        if self.net.handshake_timeout.is_zero()
            || self.net.handshake_timeout > Duration::from_secs(600)
        {
            return problem(
                "net.handshake_timeout",
                format!(
                    "= {} is out of range: use more than 0s, up to 10m",
                    HumanDuration(self.net.handshake_timeout)
                ),
            );
        }
        if self.net.stall_timeout.is_zero() || self.net.stall_timeout > Duration::from_secs(3600) {
            return problem(
                "net.stall_timeout",
                format!(
                    "= {} is out of range: use more than 0s, up to 1h",
                    HumanDuration(self.net.stall_timeout)
                ),
            );
        }
        if !(1..=16_777_216).contains(&self.net.max_waiting) {
            return problem(
                "net.max_waiting",
                format!(
                    "= {} is out of range: use 1 to 16777216",
                    self.net.max_waiting
                ),
            );
        }
        let console = &self.console;
        if console.refresh < Duration::from_millis(100) || console.refresh > Duration::from_secs(60)
        {
            return problem(
                "console.refresh",
                format!(
                    "= {} is out of range: use 100ms to 1m",
                    HumanDuration(console.refresh)
                ),
            );
        }
        if !(1..=60).contains(&console.max_fps) {
            return problem(
                "console.max_fps",
                format!("= {} is out of range: use 1 to 60", console.max_fps),
            );
        }
        if !THEMES.contains(&console.theme.as_str()) {
            return problem(
                "console.theme",
                format!(
                    "= {:?} is not a theme: use one of {}",
                    console.theme,
                    THEMES.join(", ")
                ),
            );
        }
        if !(10..=100_000).contains(&console.task_limit) {
            return problem(
                "console.task_limit",
                format!("= {} is out of range: use 10 to 100000", console.task_limit),
            );
        }
        if let Err(error) = crate::tui::keys::Keymap::with_overrides(&console.keys) {
            return problem(&format!("console.keys.{}", error.action), error.message);
        }
        if let Some(problem) = self.wal_problem() {
            return Some(problem);
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return problem(
                "log.level",
                format!("= {:?} is not a log filter: {error}", self.log.level),
            );
        }
        if let Some(message) = log_level_problem(&self.log.level) {
            return problem("log.level", message);
        }
        self.gossip_problem()
    }

    /// The first out-of-range `[gossip]` value.
    fn gossip_problem(&self) -> Option<(String, String)> {
        let problem = |key: &str, message: String| Some((key.to_string(), message));
        let gossip = &self.gossip;
        if let Err(message) = gossip.bind_address() {
            return problem("gossip.bind", message);
        }
        if !gossip.advertise.is_empty() {
            let Ok(advertised) = gossip.advertise.parse::<std::net::SocketAddr>() else {
                return problem(
                    "gossip.advertise",
                    format!(
                        "= {:?} is not an address; use IP:PORT, or \"\" for the bound address",
                        gossip.advertise
                    ),
                );
            };
            // Others send to this address: one they cannot reach has the node suspected and
            // refuting it forever.
            if let Some(why) = unreachable_address(advertised) {
                return problem(
                    "gossip.advertise",
                    format!(
                        "= {:?} {why}: members could not reach this node there; give the IP:PORT others reach it at, or \"\" for the bound address",
                        gossip.advertise
                    ),
                );
            }
        }
        if gossip.join.len() > 64 {
            return problem(
                "gossip.join",
                format!("has {} entries: use at most 64", gossip.join.len()),
            );
        }
        if let Some((bad, why)) = gossip
            .join
            .iter()
            .find_map(|seed| Some((seed, host_port_problem(seed)?)))
        {
            return problem(
                "gossip.join",
                format!("entry {bad:?} {why}; give a seed's HOST:PORT, e.g. \"10.0.0.5:7421\""),
            );
        }
        if let Some((bad, why)) = gossip.join.iter().find_map(|seed| {
            if seed.rsplit_once(':').is_some_and(|(_, port)| port == "0") {
                return Some((seed, "has port 0"));
            }
            let address = seed.parse::<std::net::SocketAddr>().ok()?;
            unreachable_address(address).map(|why| (seed, why))
        }) {
            return problem(
                "gossip.join",
                format!("entry {bad:?} {why}: no member can be there; give a seed's IP:PORT"),
            );
        }
        let ranges: &[(&str, u64, u64, u64, &str)] = &[
            (
                "gossip.max_packet",
                gossip.max_packet,
                512,
                65_507,
                "512 to 65507 bytes",
            ),
            (
                "gossip.indirect_probes",
                gossip.indirect_probes as u64,
                0,
                16,
                "0 to 16",
            ),
            (
                "gossip.gossip_fanout",
                gossip.gossip_fanout as u64,
                1,
                16,
                "1 to 16",
            ),
            (
                "gossip.retransmit_mult",
                u64::from(gossip.retransmit_mult),
                1,
                16,
                "1 to 16",
            ),
            (
                "gossip.max_members",
                gossip.max_members as u64,
                2,
                1_000_000,
                "2 to 1000000",
            ),
            (
                "gossip.max_queue",
                gossip.max_queue as u64,
                16,
                1_000_000,
                "16 to 1000000",
            ),
            (
                "gossip.phi_window",
                gossip.phi_window as u64,
                2,
                10_000,
                "2 to 10000",
            ),
            (
                "gossip.events",
                gossip.events as u64,
                1,
                100_000,
                "1 to 100000",
            ),
        ];
        for &(key, value, low, high, allowed) in ranges {
            if !(low..=high).contains(&value) {
                return problem(key, format!("= {value} is out of range: use {allowed}"));
            }
        }
        let durations: &[(&str, Duration, Duration, Duration, &str)] = &[
            (
                "gossip.probe_interval",
                gossip.probe_interval,
                Duration::from_millis(10),
                Duration::from_secs(60),
                "10ms to 1m",
            ),
            (
                "gossip.probe_timeout",
                gossip.probe_timeout,
                Duration::from_millis(1),
                Duration::from_secs(60),
                "1ms to 1m, and less than gossip.probe_interval",
            ),
            (
                "gossip.gossip_interval",
                gossip.gossip_interval,
                Duration::from_millis(10),
                Duration::from_secs(10),
                "10ms to 10s",
            ),
            (
                "gossip.sync_interval",
                gossip.sync_interval,
                Duration::from_secs(1),
                Duration::from_secs(3600),
                "1s to 1h",
            ),
            (
                "gossip.phi_min_std",
                gossip.phi_min_std,
                Duration::from_millis(1),
                Duration::from_secs(60),
                "1ms to 1m",
            ),
            (
                "gossip.phi_acceptable_pause",
                gossip.phi_acceptable_pause,
                Duration::ZERO,
                Duration::from_secs(600),
                "0s to 10m",
            ),
            (
                "gossip.dead_retention",
                gossip.dead_retention,
                Duration::from_secs(1),
                Duration::from_secs(7 * 86_400),
                "1s to 7d",
            ),
            (
                "gossip.meta_interval",
                gossip.meta_interval,
                Duration::from_millis(100),
                Duration::from_secs(3600),
                "100ms to 1h",
            ),
        ];
        for &(key, value, low, high, allowed) in durations {
            if value < low || value > high {
                return problem(
                    key,
                    format!("= {} is out of range: use {allowed}", HumanDuration(value)),
                );
            }
        }
        if gossip.probe_timeout >= gossip.probe_interval {
            return problem(
                "gossip.probe_timeout",
                format!(
                    "= {} must be less than gossip.probe_interval ({})",
                    HumanDuration(gossip.probe_timeout),
                    HumanDuration(gossip.probe_interval)
                ),
            );
        }
        let floats: [(&str, Float, f64, f64); 3] = [
            ("gossip.suspicion_mult", gossip.suspicion_mult, 0.1, 100.0),
            (
                "gossip.suspicion_max_mult",
                gossip.suspicion_max_mult,
                1.0,
                100.0,
            ),
            ("gossip.phi_threshold", gossip.phi_threshold, 0.5, 100.0),
        ];
        for (key, value, low, high) in floats {
            if !(low..=high).contains(&value.0) {
                return problem(
                    key,
                    format!("= {value} is out of range: use {low} to {high}"),
                );
            }
        }
        None
    }
}

impl Config {
    /// The first out-of-range `[wal]` or `node.data_dir` value.
    fn wal_problem(&self) -> Option<(String, String)> {
        let problem = |key: &str, message: String| Some((key.to_string(), message));
        let wal = &self.wal;
        if !(64 << 10..=1 << 30).contains(&wal.segment_size) {
            return problem(
                "wal.segment_size",
                format!(
                    "= {} is out of range: use 64KiB to 1GiB",
                    HumanSize::exact(wal.segment_size)
                ),
            );
        }
        if wal.max_batch_delay > Duration::from_millis(10) {
            return problem(
                "wal.max_batch_delay",
                format!(
                    "= {} is out of range: use 0s to 10ms",
                    HumanDuration(wal.max_batch_delay)
                ),
            );
        }
        if wal.checkpoint_every < wal.segment_size || wal.checkpoint_every > 64 << 30 {
            return problem(
                "wal.checkpoint_every",
                format!(
                    "= {} is out of range: use wal.segment_size ({}) to 64GiB",
                    HumanSize::exact(wal.checkpoint_every),
                    HumanSize::exact(wal.segment_size)
                ),
            );
        }
        if self.node.data_dir == "~" || self.node.data_dir.starts_with("~/") {
            return problem(
                "node.data_dir",
                format!(
                    "= {:?}: `~` is not expanded here (it would name a directory called `~`); write the full path",
                    self.node.data_dir
                ),
            );
        }
        if !self.node.data_dir.is_empty() && Path::new(&self.node.data_dir).is_relative() {
            return problem(
                "node.data_dir",
                format!(
                    "= {:?} is a relative path, which would name another directory for each directory a node is started from; write the full path (`--data-dir` takes one relative to the current directory)",
                    self.node.data_dir
                ),
            );
        }
        if self.node.data_dir.chars().any(|c| c.is_control()) {
            return problem(
                "node.data_dir",
                format!(
                    "= {:?} is invalid: no control characters",
                    self.node.data_dir
                ),
            );
        }
        None
    }
}

/// The largest config file read (1 MiB; the shipped one is about 20 KiB): `--config
/// /dev/zero` would otherwise read until memory ran out.
pub const MAX_CONFIG_FILE: u64 = 1 << 20;

/// The text of a config file, refused past [`MAX_CONFIG_FILE`].
fn read_config_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_FILE + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE {
        return Err(std::io::Error::other(format!(
            "it is larger than {}, which no config file is",
            HumanSize::exact(MAX_CONFIG_FILE)
        )));
    }
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("line {line} is not UTF-8 text (a config file is UTF-8 TOML)"),
        )
    })
}

/// When a problem is reported against a key the file does not set (its default applies),
/// the other keys the message names that the file does set, with their lines: the user
/// wrote those.
fn default_beside_written(text: &str, key: &str, message: &str) -> String {
    let written: Vec<String> = known_keys()
        .into_iter()
        .filter(|other| other != key && message.contains(other.as_str()))
        .filter_map(|other| {
            find_key_line(text, &other).map(|line| format!("{other} (line {line})"))
        })
        .collect();
    if written.is_empty() {
        return String::new();
    }
    format!(
        "; `{key}` is not set here (its default applies): set it too, or change {}",
        written.join(" or ")
    )
}

/// `$XDG_CONFIG_HOME/goliath/config.toml`, or `~/.config/goliath/config.toml`. A relative
/// `XDG_CONFIG_HOME` is ignored, as the XDG base directory specification says: which file
/// is read must not depend on the working directory.
pub fn user_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| Path::new(v).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(base.join("goliath").join("config.toml"))
}

/// Lays `overlay` over `base`, table by table: a key it names replaces that key only, so
/// `--set console.keys.quit=q` keeps the file's other key bindings.
fn merge_tables(base: &mut toml::Table, overlay: toml::Table) {
    for (name, value) in overlay {
        match (base.get_mut(&name), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(inner)) => {
                merge_tables(existing, inner)
            }
            (_, value) => {
                base.insert(name, value);
            }
        }
    }
}

/// A bare word in a log filter that is not a level. tracing reads it as a target to show
/// at every level, so `level = "warnn"` would silently hide every line, warnings included.
fn log_level_problem(filter: &str) -> Option<String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    if filter
        .split(',')
        .all(|directive| directive.trim().is_empty())
    {
        return Some(format!(
            "= {filter:?} names no level, and would hide every line; use one of {} (`off` to log nothing)",
            LEVELS.join(", ")
        ));
    }
    filter
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty() && !directive.contains(['=', '[']))
        .find(|word| !LEVELS.iter().any(|level| level.eq_ignore_ascii_case(word)))
        .map(|word| {
            let hint = suggest::closest(word, LEVELS.iter().copied())
                .map(|level| format!("did you mean `{level}`? "))
                .unwrap_or_default();
            format!(
                "= {filter:?}: `{word}` is not a level ({}); {hint}to show one target's lines write `{word}=info`",
                LEVELS.join(", ")
            )
        })
}

/// Every known key, dotted, for suggestions: derived from the typed defaults, so it can
/// never disagree with what the parser accepts.
fn known_keys() -> Vec<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            let dotted = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value.as_table() {
                Some(inner) => walk(&dotted, inner, out),
                None => out.push(dotted),
            }
        }
    }
    let mut keys = Vec::new();
    walk("", &Config::default().to_table(), &mut keys);
    keys
}

/// Every known key and table, dotted: an unknown key may be a misspelt table (`[schedular]`).
fn known_names() -> Vec<String> {
    let keys = known_keys();
    let mut names: Vec<String> = keys
        .iter()
        .flat_map(|key| {
            key.match_indices('.')
                .map(|(dot, _)| key[..dot].to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names.extend(keys);
    names
}

/// What to say of a dotted key no setting has, in a file or on the command line: the
/// nearest key or table, else the keys its table has.
fn unknown_key_message(full: &str) -> String {
    // Quoted by its start: a 3,000-character key need not come back whole.
    let shown = crate::runtime::units::quoted_part(full);
    let keys = known_keys();
    let keys_of = |table: &str| -> Vec<&str> {
        keys.iter()
            .filter_map(|k| {
                k.strip_prefix(table)
                    .and_then(|rest| rest.strip_prefix('.'))
            })
            .collect()
    };
    let names = known_names();
    if names.iter().any(|name| name == full) {
        // A table given where a key goes (`--set scheduler=3`).
        return format!(
            "unknown key `{shown}`: it is a table; [{full}] has: {}",
            keys_of(full).join(", ")
        );
    }
    if let Some((table, last)) = full.rsplit_once('.')
        && !table.contains('.')
        && names.iter().any(|name| name == last)
    {
        if table == last {
            // `[node]` then `node.name = …`.
            return format!(
                "unknown key `{shown}`: this is under [{table}] already; write its keys without `{last}.` in front"
            );
        }
        return format!(
            "unknown key `{shown}`: `{last}` is a table of its own; put its keys under [{last}], not under [{table}]"
        );
    }
    if let Some(suggestion) = suggest::closest(full, names.iter().map(String::as_str)) {
        return format!("unknown key `{shown}`; did you mean `{suggestion}`?");
    }
    if !full.contains('.') {
        // A key written above every table header: which table it belongs in.
        if let Some(home) = keys
            .iter()
            .find(|key| key.rsplit_once('.').is_some_and(|(_, last)| last == full))
        {
            let table = home.rsplit_once('.').map(|(t, _)| t).unwrap_or_default();
            return format!(
                "unknown key `{shown}`: keys belong in a table; did you mean `{home}` (under [{table}])?"
            );
        }
    }
    let table = full.rsplit_once('.').map(|(t, _)| t).unwrap_or("");
    let siblings = keys_of(table);
    if siblings.is_empty() {
        format!("unknown key `{shown}`")
    } else {
        format!(
            "unknown key `{shown}`; [{table}] has: {}",
            siblings.join(", ")
        )
    }
}

fn syntax_error(text: &str, origin: &ConfigOrigin, error: &toml::de::Error) -> ConfigError {
    let offset = error.span().map(|span| span.start).unwrap_or(0);
    let (line, column) = line_and_column(text, offset);
    let key = key_at(text, line);
    let mut message = plain_message(error.message());
    if message.starts_with("unknown field")
        && let Some(line_key) = &key
    {
        // In an inline table (`scheduler = { wokers = 2 }`) the line's key is the table's;
        // the unknown one is the field the message names.
        let field = message.split('`').nth(1).unwrap_or_default();
        let parts: Vec<&str> = line_key.split('.').collect();
        let full = if field.is_empty() {
            line_key.clone()
        } else if let Some(at) = parts.iter().rposition(|part| *part == field) {
            // A dotted key (`[node]` then `scheduler.workers = 3`): unknown from the
            // component the message names.
            parts[..=at].join(".")
        } else {
            format!("{line_key}.{field}")
        };
        message = unknown_key_message(&full);
    }
    if let Some(words) = key.as_deref().and_then(key_words)
        && (message.starts_with("invalid type") || message.starts_with("expected one of"))
    {
        // `sync = true`, `theme = false`: the words the key takes, not only its type.
        let quoted: Vec<String> = words.iter().map(|word| format!("\"{word}\"")).collect();
        let found = message
            .strip_prefix("invalid type: ")
            .and_then(|rest| rest.split(", expected").next())
            .map(|found| format!(", not {found}"))
            .unwrap_or_default();
        message = format!("expected one of {}{found}", quoted.join(", "));
    }
    if let Some(name) = text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|raw| raw.trim().strip_prefix("[["))
        .and_then(|rest| rest.split("]]").next())
    {
        let name = name.trim();
        message = format!(
            "`[[{name}]]` makes a list of tables; each of this file's tables takes one pair of brackets: [{name}]"
        );
    }
    ConfigError::Syntax {
        origin: origin.clone(),
        line,
        column,
        key,
        message,
    }
}

/// The words a key takes, for the keys that take one of a few (said when given a value of
/// another type, which serde reports by type only).
fn key_words(key: &str) -> Option<Vec<&'static str>> {
    match key {
        "wal.sync" => Some(vec![WalSync::Always.as_str(), WalSync::Never.as_str()]),
        "console.theme" => Some(THEMES.to_vec()),
        _ => None,
    }
}

/// A deserializer's message in the config's words: `usize` is "a whole number (0 or
/// more)", `struct SchedulerConfig` "a table".
fn plain_message(message: &str) -> String {
    let mut message = message.trim().replace(" as i128", "");
    for integer in ["usize", "u64", "u32", "u16", "u8"] {
        message = message.replace(
            &format!("expected {integer}"),
            "expected a whole number (0 or more)",
        );
    }
    message = message.replace("expected f64", "expected a number");
    // toml's words for a value that should have been one of an enum's names.
    if message == "wanted string or table" {
        message =
            "expected one of this key's words, in quotes (`goliath config default` lists them)"
                .to_string();
    }
    if let Some(at) = message.find("expected struct ") {
        let rest = &message[at + "expected struct ".len()..];
        let end = rest
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        message = format!("{}expected a table{}", &message[..at], &rest[end..]);
    }
    message
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// The dotted key defined on a 1-based line: the enclosing `[table]` plus the line's key.
fn key_at(text: &str, line: usize) -> Option<String> {
    let mut table = String::new();
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if let Some(header) = table_header(trimmed) {
            table = header;
            if index + 1 == line {
                return Some(table.clone());
            }
            continue;
        }
        if index + 1 == line {
            let (key, _) = trimmed.split_once('=')?;
            let key = key.trim().trim_matches('"');
            if key.is_empty() {
                return None;
            }
            return Some(if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            });
        }
    }
    None
}

fn table_header(trimmed: &str) -> Option<String> {
    let inner = match trimmed.strip_prefix("[[") {
        Some(rest) => rest.split("]]").next()?,
        None => trimmed.strip_prefix('[')?.split(']').next()?,
    };
    Some(inner.trim().to_string())
}

/// The 1-based line defining a dotted key, if the text has one.
pub fn find_key_line(text: &str, dotted: &str) -> Option<usize> {
    let mut table = String::new();
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if let Some(header) = table_header(trimmed) {
            table = header;
            continue;
        }
        if let Some((key, _)) = trimmed.split_once('=') {
            let key = key.trim().trim_matches('"');
            let full = if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            };
            if full == dotted {
                return Some(index + 1);
            }
        }
    }
    None
}

/// Why no packet sent to `address` can reach a node, if none can: port 0, an unspecified
/// (`0.0.0.0`, `::`) or a broadcast or multicast IP.
/// Why `text` is not `HOST:PORT` (a host name or an IP, IPv6 in brackets, and a port from 1
/// to 65535), or None when it is. Port 0 passes: callers that refuse it say why.
fn host_port_problem(text: &str) -> Option<String> {
    if let Some((scheme, rest)) = text.split_once("://") {
        return Some(format!(
            "is a URL, not HOST:PORT (`{}`, without `{scheme}://`)",
            rest.trim_end_matches('/')
        ));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Some("is not HOST:PORT (no port)".into());
    };
    if host.is_empty() {
        return Some("is not HOST:PORT (no host before the port)".into());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Some(
            "is not HOST:PORT: an IPv6 address goes in brackets, followed by the port, e.g. [::1]:7421"
                .into(),
        );
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '@'))
    {
        return Some(format!(
            "has {host:?} for a host, which is no host name or IP"
        ));
    }
    match port.parse::<u64>() {
        Ok(0..=65535) => None,
        Ok(port) => Some(format!("has port {port}, out of range (1 to 65535)")),
        Err(_) => Some(format!("has {port:?} for a port, which is no number")),
    }
}

fn unreachable_address(address: std::net::SocketAddr) -> Option<&'static str> {
    let ip = address.ip();
    if address.port() == 0 {
        Some("has port 0")
    } else if ip.is_unspecified() {
        Some("is no one address (it means every interface)")
    } else if ip.is_multicast() || matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast()) {
        Some("is a broadcast or multicast address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> ConfigOrigin {
        ConfigOrigin::Flag(PathBuf::from("test.toml"))
    }

    #[test]
    fn embedded_defaults_match_the_typed_defaults() {
        let parsed =
            Config::parse(DEFAULT_TOML, ConfigOrigin::Embedded).expect("embedded config parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn every_known_key_is_in_the_shipped_file() {
        let keys = known_keys();
        assert!(keys.len() >= 20, "{keys:?}");
        for key in keys {
            assert!(
                find_key_line(DEFAULT_TOML, &key).is_some(),
                "{key} missing from config/goliath.toml"
            );
        }
    }

    #[test]
    fn a_config_file_that_is_not_utf8_names_the_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, b"[node]\nname = \"\xff\"\n").expect("written");
        let error = read_config_file(&path).expect_err("not UTF-8");
        assert!(
            error.to_string().starts_with("line 2 is not UTF-8 text"),
            "{error}"
        );
    }

    #[test]
    fn a_command_line_that_changes_a_file_s_problem_is_blamed_for_its_own_value() {
        let text = "[wal]\nsegment_size = \"128MiB\"\n";
        let parse = || Config::parse_deferring(text, origin()).expect("parses");
        let (config, problem) = parse();
        let Some(ConfigError::Invalid { message, .. }) = &problem else {
            panic!("the default checkpoint size is below 128MiB segments: {problem:?}");
        };
        assert!(
            message.contains("not set here") && message.contains("line 2"),
            "{message}"
        );
        // Nothing on the command line touches it: the file's error, with its line.
        let error = config
            .check_overrides_after(problem, &["scheduler.slice"])
            .expect_err("still wrong");
        assert!(error.to_string().contains("test.toml"), "{error}");
        // The command line sets the key, still wrong: its own value, not "not set here".
        let mut changed = config.clone();
        changed
            .set_override_unchecked("wal.checkpoint_every", "64MiB", false)
            .expect("a size");
        let error = changed
            .check_overrides_after(parse().1, &["wal.checkpoint_every"])
            .expect_err("64MiB is below 128MiB segments");
        let text = error.to_string();
        assert!(
            text.starts_with("command line") && text.contains("64MiB") && !text.contains("not set"),
            "{text}"
        );
        // Set right: no error.
        let mut fixed = config;
        fixed
            .set_override_unchecked("wal.checkpoint_every", "256MiB", false)
            .expect("a size");
        assert!(
            fixed
                .check_overrides_after(parse().1, &["wal.checkpoint_every"])
                .is_ok()
        );
        // The command line makes a key it does not set wrong: it says so.
        let (mut config, problem) =
            Config::parse_deferring("[gossip]\nprobe_timeout = \"400ms\"\n", origin())
                .expect("parses");
        assert!(problem.is_none(), "{problem:?}");
        config
            .set_override_unchecked("gossip.probe_interval", "300ms", false)
            .expect("a duration");
        let text = config
            .check_overrides_after(problem, &["gossip.probe_interval"])
            .expect_err("the timeout is longer than the interval")
            .to_string();
        assert!(
            text.contains("400ms") && text.contains("does not set `gossip.probe_timeout`"),
            "{text}"
        );
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let config = Config::parse("[arena]\nslots = 1024\n", origin()).expect("valid");
        assert_eq!(config.arena.slots, 1024);
        assert_eq!(config.history, HistoryConfig::default());
    }

    #[test]
    fn unknown_key_names_key_line_and_suggestion() {
        let text = "[scheduler]\nslice = \"1ms\"\nwokers = 4\n";
        let error = Config::parse(text, origin()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("test.toml"), "{message}");
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("scheduler.wokers"), "{message}");
        assert!(
            message.contains("did you mean `scheduler.workers`"),
            "{message}"
        );
    }

    #[test]
    fn a_command_line_error_reads_like_a_file_one_key_then_colon() {
        let mut config = Config::default();
        for (key, value, begins) in [
            (
                "scheduler.wokers",
                "3",
                "command line: `scheduler.wokers`: unknown key",
            ),
            (
                "console.mouse",
                "maybe",
                "command line: `console.mouse`: invalid type",
            ),
            // A range error reads as the setting written out: `key` = value is ...
            ("arena.slots", "0", "command line: `arena.slots` = 0 is"),
        ] {
            let error = config.set_override(key, value).unwrap_err().to_string();
            assert!(error.starts_with(begins), "{error}");
        }
    }

    #[test]
    fn a_log_level_that_is_no_level_is_refused_with_the_nearest_one() {
        let message = Config::parse("[log]\nlevel = \"warnn\"\n", origin())
            .unwrap_err()
            .to_string();
        assert!(message.contains("log.level"), "{message}");
        assert!(message.contains("did you mean `warn`"), "{message}");
        for good in [
            "warn",
            "INFO",
            "goliath=debug,warn",
            "off",
            "info,mio=trace",
        ] {
            let text = format!("[log]\nlevel = {good:?}\n");
            assert!(Config::parse(&text, origin()).is_ok(), "{good}");
        }
    }

    #[test]
    fn mistyped_value_names_key_and_line() {
        let text = "[arena]\n\nslots = \"many\"\n";
        let message = Config::parse(text, origin()).unwrap_err().to_string();
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("arena.slots"), "{message}");
        // In the config's words, not the deserializer's.
        assert!(
            message.contains("expected a whole number (0 or more)"),
            "{message}"
        );
        assert!(!message.contains("usize"), "{message}");
        let message = Config::parse("scheduler = 5\n", origin())
            .unwrap_err()
            .to_string();
        assert!(message.contains("expected a table"), "{message}");
        assert!(!message.contains("SchedulerConfig"), "{message}");
    }

    #[test]
    fn an_unknown_key_in_an_inline_table_is_named_not_its_table() {
        let text = "scheduler = { workers = 2, wokers = 3 }\n";
        let message = Config::parse(text, origin()).unwrap_err().to_string();
        assert!(
            message.contains("unknown key `scheduler.wokers`; did you mean `scheduler.workers`"),
            "{message}"
        );
    }

    #[test]
    fn a_negative_number_given_with_set_is_judged_as_a_number() {
        for (key, wanted) in [
            ("scheduler.workers", "1 to 1024, found -1"),
            (
                "node.idempotency_keys",
                "integer `-1`, expected a whole number",
            ),
        ] {
            let message = Config::default()
                .set_override(key, "-1")
                .unwrap_err()
                .to_string();
            assert!(message.contains(wanted), "{key}: {message}");
            assert!(!message.contains("string"), "{key}: {message}");
        }
    }

    #[test]
    fn bad_duration_explains_the_units() {
        let message = Config::parse("[scheduler]\nslice = \"1 fortnight\"\n", origin())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("line 2") && message.contains("scheduler.slice"),
            "{message}"
        );
        assert!(message.contains("fortnight"), "{message}");
    }

    #[test]
    fn zero_and_absurd_sizes_are_rejected_with_the_line() {
        let cases = [
            ("[scheduler]\nworkers = 0\n", "scheduler.workers", 2),
            ("[arena]\nslots = 0\n", "arena.slots", 2),
            ("[arena]\nslots = 1000\n", "arena.slots", 2),
            ("[arena]\n# comment\nslots = 4294967296\n", "arena.slots", 3),
            ("[scheduler]\nslice = \"0s\"\n", "scheduler.slice", 2),
            ("[history]\ntasks = 0\n", "history.tasks", 2),
        ];
        for (text, key, line) in cases {
            match Config::parse(text, origin()) {
                Err(ConfigError::Invalid {
                    key: k, line: l, ..
                }) => {
                    assert_eq!(k, key, "{text}");
                    assert_eq!(l, Some(line), "{text}");
                }
                other => panic!("{text}: expected Invalid, got {other:?}"),
            }
        }
        let message = Config::parse("[arena]\nslots = 1000\n", origin())
            .unwrap_err()
            .to_string();
        assert!(message.contains("512 or 1024"), "{message}");
    }

    #[test]
    fn syntax_error_names_line() {
        let message = Config::parse("[arena\nslots = 4\n", origin())
            .unwrap_err()
            .to_string();
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn overrides_apply_and_are_checked() {
        let mut config = Config::default();
        config
            .set_override("scheduler.workers", "3")
            .expect("valid override");
        assert_eq!(config.scheduler.workers, WorkerCount::Fixed(3));
        config
            .set_override("scheduler.slice", "2ms")
            .expect("valid override");
        assert_eq!(config.scheduler.slice, Duration::from_millis(2));
        let error = config
            .set_override("arena.slots", "0")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("arena.slots") && error.contains("command line"),
            "{error}"
        );
        assert_eq!(
            config.arena.slots, 65_536,
            "a rejected override leaves the config unchanged"
        );
        assert!(config.set_override("arena.nonsense", "1").is_err());
        let misspelt = config
            .set_override("scheduler.wokers", "3")
            .unwrap_err()
            .to_string();
        assert!(
            misspelt.contains("did you mean `scheduler.workers`"),
            "{misspelt}"
        );
        let table = config
            .set_override("scheduler", "3")
            .unwrap_err()
            .to_string();
        assert!(table.contains("unknown key `scheduler`"), "{table}");
        for name in ["1", "nan", "true"] {
            config.set_override("node.name", name).expect("any text");
            assert_eq!(config.node.name, name);
        }
    }

    #[test]
    fn a_text_flag_is_taken_as_typed_and_odd_characters_reach_the_name_check() {
        let mut config = Config::default();
        config
            .set_override_unchecked("node.name", "\"quoted\"", true)
            .expect("quotes are name characters");
        config.check_overrides().expect("a valid name");
        assert_eq!(
            config.node.name, "\"quoted\"",
            "quotes kept, not read as TOML"
        );
        let error = config
            .set_override("node.name", "red\u{1b}[31m")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("control") && !error.contains("unicode"),
            "the name's own check answers, not TOML's escapes: {error}"
        );
        for invisible in ["n\u{200b}1", "n\u{00ad}1", "n\u{202e}1", "\u{feff}n1"] {
            let error = config
                .set_override("node.name", invisible)
                .expect_err(invisible)
                .to_string();
            assert!(error.contains("invisible"), "{invisible:?}: {error}");
        }
        config
            .set_override("node.name", "nœud-東京-1")
            .expect("letters of any script are fine");
    }

    #[test]
    fn advertise_and_seed_addresses_no_packet_can_reach_are_refused() {
        for (key, value, expected) in [
            ("gossip.advertise", "127.0.0.1:0", "port 0"),
            ("gossip.advertise", "0.0.0.0:7421", "every interface"),
            ("gossip.advertise", "[::]:7421", "every interface"),
            ("gossip.advertise", "255.255.255.255:7421", "broadcast"),
            ("gossip.join", "127.0.0.1:0", "port 0"),
            ("gossip.join", "localhost:0", "port 0"),
            (
                "gossip.join",
                "http://127.0.0.1:7421",
                "is a URL, not HOST:PORT (`127.0.0.1:7421`, without `http://`)",
            ),
            (
                "gossip.join",
                "seed.example:7421/",
                "for a port, which is no number",
            ),
            ("gossip.join", "127.0.0.1:99999", "port 99999, out of range"),
            ("gossip.join", "seed.example", "no port"),
            ("gossip.join", ":7421", "no host before the port"),
            ("net.listen", "127.0.0.1:99999", "port 99999, out of range"),
            ("gossip.join", "::1:7421", "brackets"),
            ("gossip.join", "a/b:7421", "no host name or IP"),
            ("gossip.bind", "127.0.0.1:99999", "port 99999, out of range"),
            (
                "gossip.join",
                "10.0.0.1:7421,0.0.0.0:7421",
                "every interface",
            ),
        ] {
            let mut config = Config::default();
            let error = config
                .set_override(key, value)
                .expect_err(value)
                .to_string();
            assert!(
                error.contains(key) && error.contains(expected),
                "{key}={value}: {error}"
            );
        }
        let mut config = Config::default();
        config
            .set_override("gossip.advertise", "192.0.2.7:7421")
            .expect("a reachable address");
        config
            .set_override("gossip.join", "seed.example:7421,10.0.0.1:7421")
            .expect("host names and addresses");
    }

    #[test]
    fn overrides_take_lists_and_keep_the_other_key_bindings() {
        let mut config =
            Config::parse("[console.keys]\nhelp = [\"F1\"]\n", origin()).expect("valid");
        config
            .set_override("console.keys.quit", "[\"q\", \"F10\"]")
            .expect("a list");
        assert_eq!(
            config.console.keys.get("quit"),
            Some(&vec!["q".to_string(), "F10".to_string()])
        );
        config
            .set_override("console.keys.quit", "x")
            .expect("one key, unlisted");
        assert_eq!(
            config.console.keys.get("quit"),
            Some(&vec!["x".to_string()])
        );
        assert_eq!(
            config.console.keys.get("help"),
            Some(&vec!["F1".to_string()])
        );
    }
}
