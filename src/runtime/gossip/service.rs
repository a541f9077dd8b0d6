//! The UDP edge of gossip: binds the socket, drives the sans-IO core on the node's I/O
//! runtime (one task), turns its outputs into datagrams, log lines and a bounded event log,
//! feeds it the node's metadata at a bounded rate, and serves [`ClusterSnapshot`]s.
//!
//! A fault layer ([`FaultRules`]) can drop, delay or block datagrams in both directions, so
//! tests exercise loss and partitions on real sockets without kernel help.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;

use super::phi::PhiSettings;
use super::rng::SeededRng;
use super::swim::{
    EventKind, JoinPending, LocalStatus, MemberEvent, MemberState, Output, Swim, SwimConfig,
};
use super::view::{ClusterEvent, ClusterSnapshot, MemberCounts, MemberInfo, MemberLoad};
use super::wire::{MemberId, MemberMeta, Name, PacketError};
use crate::config::Config;
use crate::runtime::lock;
use crate::runtime::log_budget::{Line, LineBudget};
use crate::runtime::node::Node;
use crate::runtime::units::ShortDuration;

/// Why gossip could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A setting is unusable.
    #[error("gossip: {0}")]
    Config(String),
    /// The UDP socket could not be bound.
    #[error(
        "gossip: cannot bind UDP {address}: {reason}; {}pick another with --gossip ADDR",
        crate::runtime::net::bind_advice(reason, *address).map(|advice| format!("{advice}: ")).unwrap_or_default()
    )]
    Bind {
        /// Where.
        address: SocketAddr,
        /// The OS error (in the message, not a source: printed once).
        reason: std::io::Error,
    },
    /// The node's I/O runtime is gone (the node is shutting down).
    #[error("gossip: the node is shutting down")]
    NodeStopped,
}

/// Something that can describe cluster membership (the running gossip service).
pub trait ClusterSource: Send + Sync {
    /// Membership now.
    fn cluster_snapshot(&self) -> ClusterSnapshot;
}

/// Faults injected into this node's gossip traffic (for tests and experiments).
#[derive(Debug, Clone, Default)]
pub struct FaultRules {
    /// Probability that a datagram (either direction) is dropped.
    pub loss: f64,
    /// Extra delay before each outgoing datagram.
    pub delay: Duration,
    /// Peers cut off entirely (both directions): a partition.
    pub blocked: HashSet<SocketAddr>,
}

/// The host part of a default node name: the host name as a name may hold it (at most 40
/// characters, no spaces or control characters), or `goliath` without one.
pub fn default_host_name() -> String {
    let host: String = super::super::node::host_name()
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .take(40)
        .collect();
    if host.is_empty() {
        "goliath".to_string()
    } else {
        host
    }
}

/// The node name used when `node.name` is empty: the host name, plus the gossip port when
/// gossip is on (so several nodes on one machine differ), or the process id when that port
/// is picked by the OS.
pub fn default_node_name(config: &Config) -> String {
    let host = default_host_name();
    if !config.gossip.enabled {
        return host;
    }
    match config.gossip.bind_address().map(|a| a.port()) {
        Ok(port) if port != 0 => format!("{host}-{port}"),
        _ => format!("{host}-{}", std::process::id()),
    }
}

/// The core's settings from the config.
pub fn swim_config(config: &Config) -> SwimConfig {
    let gossip = &config.gossip;
    SwimConfig {
        cluster: config.node.cluster.clone(),
        probe_interval: gossip.probe_interval,
        probe_timeout: gossip.probe_timeout,
        indirect_probes: gossip.indirect_probes,
        suspicion_mult: gossip.suspicion_mult.0,
        suspicion_max_mult: gossip.suspicion_max_mult.0,
        gossip_interval: gossip.gossip_interval,
        gossip_fanout: gossip.gossip_fanout,
        retransmit_mult: gossip.retransmit_mult,
        sync_interval: gossip.sync_interval,
        max_packet: usize::try_from(gossip.max_packet).unwrap_or(1400),
        max_members: gossip.max_members,
        max_queue: gossip.max_queue,
        awareness_max: 8,
        phi: PhiSettings {
            window: gossip.phi_window,
            min_std_us: u64::try_from(gossip.phi_min_std.as_micros()).unwrap_or(u64::MAX),
            acceptable_pause_us: u64::try_from(gossip.phi_acceptable_pause.as_micros())
                .unwrap_or(u64::MAX),
        },
        phi_threshold: gossip.phi_threshold.0,
        dead_retention: gossip.dead_retention,
        join_retry: Duration::from_secs(1),
    }
}

struct State {
    swim: Swim,
    events: VecDeque<ClusterEvent>,
    outputs: Vec<Output>,
    refutations: RefutationReport,
    flaps: FlapReport,
    event_budget: EventLogBudget,
}

struct Shared {
    state: Mutex<State>,
    /// The latest failure to send a packet, and where to: a join that goes unanswered
    /// because nothing can be sent to its seeds says so instead of blaming them.
    last_send_error: Mutex<Option<(SocketAddr, String)>>,
    faults: Mutex<FaultRules>,
    fault_rng: Mutex<SeededRng>,
    origin: Instant,
    origin_unix_us: u64,
    events_cap: usize,
    cluster: String,
    advertise: SocketAddr,
    /// Woken when something outside the loop (a seed resolved late) gave the core work to
    /// send.
    kick: tokio::sync::Notify,
    /// Seeds whose names have not resolved yet are still being looked up.
    resolving: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn unix_us(&self, core_us: u64) -> u64 {
        self.origin_unix_us.saturating_add(core_us)
    }

    fn drop_datagram(&self, peer: SocketAddr) -> bool {
        let faults = lock(&self.faults);
        if faults.blocked.contains(&peer) {
            return true;
        }
        faults.loss > 0.0 && lock(&self.fault_rng).unit() < faults.loss
    }
}

impl ClusterSource for Shared {
    fn cluster_snapshot(&self) -> ClusterSnapshot {
        let state = lock(&self.state);
        let now = self.now_us();
        let swim = &state.swim;
        let views = swim.members(now);
        let mut counts = MemberCounts::default();
        let members = views
            .into_iter()
            .map(|view| {
                match view.state {
                    MemberState::Alive => counts.alive += 1,
                    MemberState::Suspect => counts.suspect += 1,
                    MemberState::Dead => counts.dead += 1,
                    MemberState::Left => counts.left += 1,
                }
                if view.degraded && view.state.is_up() {
                    counts.degraded += 1;
                }
                MemberInfo {
                    name: view.id.name.to_string(),
                    generation: view.id.generation,
                    incarnation: view.incarnation,
                    state: view.state,
                    degraded: view.degraded,
                    phi: (view.phi * 100.0).round() / 100.0,
                    gossip_address: view.address.map(|a| a.to_string()),
                    protocol_address: view
                        .meta
                        .as_ref()
                        .map(|m| m.protocol_address.clone())
                        .filter(|a| !a.is_empty()),
                    last_heard_unix_us: view.last_heard_us.map(|t| self.unix_us(t)),
                    since_unix_us: self.unix_us(view.since_us),
                    local: view.local,
                    meta: view.meta.map(|m| MemberLoad {
                        version: m.version,
                        workers: m.workers,
                        queue_depth: m.queue_depth,
                        arena_free: m.arena_free,
                        load: m.load,
                    }),
                }
            })
            .collect();
        ClusterSnapshot {
            cluster: self.cluster.clone(),
            local: swim.id().name.to_string(),
            generation: swim.id().generation,
            incarnation: swim.incarnation(),
            gossip_address: self.advertise.to_string(),
            status: swim.status(),
            local_health: swim.awareness(),
            phi_threshold: swim.config().phi_threshold,
            counts,
            members,
            events: state.events.iter().cloned().collect(),
            stats: swim.stats(),
        }
    }
}

/// Running gossip: a handle that serves snapshots, exposes the fault layer, and stops it.
pub struct Cluster {
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    io: tokio::runtime::Handle,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts gossip for `node` as its config says (`[gossip]`, `node.name`,
    /// `node.cluster`): binds the UDP socket, joins the seeds, and registers with the node
    /// so its snapshots carry the membership. `Ok(None)` when gossip is off.
    pub fn start(node: &Arc<Node>) -> Result<Option<Cluster>, ClusterError> {
        match Self::bind(node.config())? {
            Some(socket) => Self::start_on(node, socket).map(Some),
            None => Ok(None),
        }
    }

    /// Binds the gossip socket as `config` says (`gossip.bind`), or `None` when gossip is
    /// off; [`Cluster::start_on`] then gossips on it. The binary binds before the node
    /// starts, so a taken port is said first.
    pub fn bind(config: &Config) -> Result<Option<std::net::UdpSocket>, ClusterError> {
        if !config.gossip.enabled {
            return Ok(None);
        }
        let bind = config.gossip.bind_address().map_err(ClusterError::Config)?;
        let socket = std::net::UdpSocket::bind(bind).map_err(|reason| ClusterError::Bind {
            address: bind,
            reason,
        })?;
        // A bind on every interface with no address to advertise is refused here, before
        // the node recovers its log and starts (and stops again).
        if config.gossip.advertise.is_empty() && bind.ip().is_unspecified() {
            let local_addr = socket.local_addr().map_err(|reason| ClusterError::Bind {
                address: bind,
                reason,
            })?;
            // The default route's interface settles it without looking the seeds up (a
            // second lookup at start would repeat their warnings); without one, a seed's may.
            if interface_address(local_addr, None).is_none() {
                let (seeds, unresolved) =
                    resolve_seeds(&config.gossip.join, local_addr, local_addr);
                if interface_address(local_addr, seeds.first().copied()).is_none() {
                    return Err(no_advertise_address(local_addr, &unresolved));
                }
            }
        }
        Ok(Some(socket))
    }

    /// Starts gossip for `node` on `std_socket` (from [`Cluster::bind`]).
    pub fn start_on(
        node: &Arc<Node>,
        std_socket: std::net::UdpSocket,
    ) -> Result<Cluster, ClusterError> {
        let config = node.config().clone();
        let bind = config.gossip.bind_address().map_err(ClusterError::Config)?;
        let io = node.io_handle().ok_or(ClusterError::NodeStopped)?;
        let local_addr = std_socket
            .local_addr()
            .map_err(|reason| ClusterError::Bind {
                address: bind,
                reason,
            })?;
        std_socket
            .set_nonblocking(true)
            .map_err(|reason| ClusterError::Bind {
                address: bind,
                reason,
            })?;
        if !bind.ip().is_loopback() {
            tracing::warn!(bind = %local_addr, "gossip listens on a non-loopback address WITHOUT authentication: anyone who can reach it can join this cluster or forge membership until cluster keys exist");
        }
        let configured = if config.gossip.advertise.is_empty() {
            local_addr
        } else {
            config
                .gossip
                .advertise
                .parse()
                .map_err(|_| ClusterError::Config("gossip.advertise is not IP:PORT".into()))?
        };
        let (mut seeds, unresolved) = resolve_seeds(&config.gossip.join, local_addr, configured);
        let advertise = if configured.ip().is_unspecified() {
            // Members reach each other at the address each advertises: 0.0.0.0 would send
            // every probe of this node back to the prober itself, and the node would be
            // suspected and refute without end.
            let chosen = interface_address(configured, seeds.first().copied())
                .ok_or_else(|| no_advertise_address(local_addr, &unresolved))?;
            let toward = match (seeds.first(), unresolved.is_empty()) {
                (Some(seed), _) => seed.to_string(),
                (None, true) => "its default route".to_string(),
                (None, false) => format!(
                    "its default route, as the seeds {} do not resolve yet: if they are on another network, this address is wrong",
                    unresolved.join(", ")
                ),
            };
            tracing::warn!(bind = %local_addr, advertise = %chosen, "gossip.advertise is empty and gossip listens on every interface: advertising {chosen}, this host's address toward {toward}; set gossip.advertise if the other members reach this node at another address");
            seeds.retain(|seed| *seed != chosen);
            chosen
        } else {
            configured
        };
        let name = Name::new(node.name()).map_err(ClusterError::Config)?;
        let origin = Instant::now();
        let origin_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        // A new generation at every start: the start time in µs, so a restart wins over the
        // process it replaces, and above the last start from this data directory, so it
        // does even when the clock was set back meanwhile.
        let generation = next_generation(node.data_dir(), origin_unix_us);
        let id = MemberId { name, generation };
        let listen = node.snapshot(0).node.listen;
        if let Some(listen) = listen
            .as_deref()
            .and_then(|text| text.parse::<SocketAddr>().ok())
            .filter(|listen| listen.ip().is_loopback() && !advertise.ip().is_loopback())
        {
            tracing::warn!(
                listen = %listen,
                advertise = %advertise,
                "the protocol listens on loopback only while gossip reaches other hosts: the other members list this node's protocol address as its loopback, and `goliath --node` from another host cannot reach it; to serve them, listen on an address they reach (--listen IP:PORT --insecure-listen)"
            );
        }
        let meta = MemberMeta {
            version: 0,
            protocol_address: protocol_address(listen.as_deref(), advertise),
            workers: u16::try_from(config.scheduler.workers.resolve()).unwrap_or(u16::MAX),
            queue_depth: 0,
            arena_free: u32::try_from(config.arena.slots).unwrap_or(u32::MAX),
            load: 0.0,
        };
        let seed = generation ^ u64::from(std::process::id()).rotate_left(32);
        let swim = Swim::new(swim_config(&config), id, advertise, meta, seed, 0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                swim,
                events: VecDeque::with_capacity(config.gossip.events.min(1024)),
                outputs: Vec::new(),
                refutations: RefutationReport::default(),
                flaps: FlapReport::default(),
                event_budget: EventLogBudget::default(),
            }),
            faults: Mutex::new(FaultRules::default()),
            last_send_error: Mutex::new(None),
            fault_rng: Mutex::new(SeededRng::new(seed.rotate_left(17))),
            origin,
            origin_unix_us,
            events_cap: config.gossip.events,
            cluster: config.node.cluster.clone(),
            advertise,
            kick: tokio::sync::Notify::new(),
            resolving: std::sync::atomic::AtomicBool::new(false),
        });
        {
            let mut state = lock(&shared.state);
            let now = shared.now_us();
            state.swim.join(&seeds, now);
            if !unresolved.is_empty() {
                state.swim.await_seeds();
            }
        }
        let socket = {
            let _guard = io.enter();
            UdpSocket::from_std(std_socket).map_err(|reason| ClusterError::Bind {
                address: bind,
                reason,
            })?
        };
        let (stop, stop_receiver) = tokio::sync::watch::channel(false);
        let unresolved_count = unresolved.len();
        if !unresolved.is_empty() {
            shared
                .resolving
                .store(true, std::sync::atomic::Ordering::Relaxed);
            io.spawn(resolve_later(
                shared.clone(),
                unresolved,
                local_addr,
                stop_receiver.clone(),
            ));
        }
        let task = io.spawn(run(
            shared.clone(),
            Arc::new(socket),
            stop_receiver,
            Arc::downgrade(node),
            config.gossip.meta_interval,
            usize::try_from(config.gossip.max_packet).unwrap_or(1400),
        ));
        node.set_cluster(Some(shared.clone() as Arc<dyn ClusterSource>));
        tracing::info!(
            member = %node.name(),
            gossip = %local_addr,
            advertise = %advertise,
            seeds = seeds.len(),
            seeds_not_resolved_yet = unresolved_count,
            "gossip started"
        );
        Ok(Cluster {
            shared,
            stop,
            task: Mutex::new(Some(task)),
            io,
            local_addr,
        })
    }

    /// The bound gossip address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Membership now.
    pub fn snapshot(&self) -> ClusterSnapshot {
        self.shared.cluster_snapshot()
    }

    /// Changes the injected faults.
    pub fn set_faults(&self, rules: FaultRules) {
        *lock(&self.shared.faults) = rules;
    }

    /// Leaves the cluster (tells the others, for up to a second) and stops gossiping. Safe
    /// to call more than once; called on drop.
    pub fn stop(&self) {
        let Some(task) = lock(&self.task).take() else {
            return;
        };
        let _ = self.stop.send(true);
        let wait = async {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called from async code, which must not block: the task finishes on its own.
            return;
        }
        self.io.block_on(wait);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The seeds of `join` that resolve now (this node's own addresses left out), and the
/// entries that do not resolve yet (a host name whose record is not published yet, as at a
/// cluster's first start), which [`resolve_later`] keeps trying.
fn resolve_seeds(
    join: &[String],
    local: SocketAddr,
    advertise: SocketAddr,
) -> (Vec<SocketAddr>, Vec<String>) {
    let mut seeds = Vec::new();
    let mut unresolved = Vec::new();
    let mut own = None;
    for entry in join {
        match entry.to_socket_addrs().map(|mut found| found.next()) {
            Ok(Some(address)) => {
                if address != local && address != advertise {
                    seeds.push(address);
                } else {
                    own = Some(entry);
                }
            }
            Ok(None) => {
                tracing::warn!(seed = %entry, "gossip.join: {entry} resolves to no address yet; trying again until it does");
                unresolved.push(entry.clone());
            }
            Err(error) => {
                tracing::warn!(seed = %entry, "gossip.join: cannot resolve {entry} ({error}); trying again until it resolves");
                unresolved.push(entry.clone());
            }
        }
    }
    // One join list for every member names each one's own address too: left out without a
    // word. A list of nothing else is likely a mistyped port, and the node would found a
    // cluster of its own instead of joining one.
    if let Some(entry) = own
        && seeds.is_empty()
        && unresolved.is_empty()
    {
        tracing::warn!(seed = %entry, "gossip.join names only this node's own gossip address ({entry}), so it joins no one and starts a cluster of its own; give another member's gossip address to join its cluster");
    }
    (seeds, unresolved)
}

/// Why a node bound to every interface has no address to advertise.
fn no_advertise_address(local_addr: SocketAddr, unresolved: &[String]) -> ClusterError {
    ClusterError::Config(format!(
        "gossip listens on {local_addr}, which is no address others can reach, and no interface address could be found for it ({}): set gossip.advertise to this node's IP:PORT as the other members reach it",
        if unresolved.is_empty() {
            "this host has no default route".to_string()
        } else {
            format!(
                "the seeds {} do not resolve yet, and this host has no default route",
                unresolved.join(", ")
            )
        }
    ))
}

/// The file in the data directory that holds the generation of the node's last start.
const GENERATION_FILE: &str = "gossip-generation";

/// This start's generation: the clock's time in µs (`clock_us`), raised above the last
/// generation started from `dir` when the clock is behind it. A clock set back (an NTP
/// step, a restored VM) would otherwise give a restart a generation below the process it
/// replaces, which the others still list as alive for a few seconds: the restart would
/// give way to its own dead predecessor. The new generation is written back (synced)
/// before it is used; a directory it cannot be written to costs the guarantee, with a
/// warning, not the start.
fn next_generation(dir: Option<&std::path::Path>, clock_us: u64) -> u64 {
    let clock = clock_us.max(1);
    let Some(dir) = dir else {
        return clock;
    };
    let path = dir.join(GENERATION_FILE);
    let last = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let generation = clock.max(last.saturating_add(1));
    if generation != clock {
        tracing::warn!(
            "this host's clock is behind the last start of this node ({last} µs since 1970 in {}): generation {generation} instead of {clock}, so this start still replaces the last",
            path.display()
        );
    }
    let written = crate::runtime::wal::segment::Io::default().write_file_atomically(
        dir,
        GENERATION_FILE,
        format!("{generation}\n").as_bytes(),
    );
    if let Err(error) = written {
        tracing::warn!(
            "cannot record this start's gossip generation in {}: {error}; a later start with the clock set back may give way to this one",
            path.display()
        );
    }
    generation
}

/// The address of this host's interface that packets to `toward` leave from (else toward
/// the default route), with `bound`'s port: what a node listening on every interface
/// advertises when `gossip.advertise` is empty. A connected UDP socket sends nothing; it only
/// asks the kernel for the route.
fn interface_address(bound: SocketAddr, toward: Option<SocketAddr>) -> Option<SocketAddr> {
    let (any, default_route): (SocketAddr, SocketAddr) = if bound.is_ipv4() {
        (
            SocketAddr::from(([0, 0, 0, 0], 0)),
            // TEST-NET-1 (RFC 5737): routed like any outside address, never answered.
            SocketAddr::from(([192, 0, 2, 1], 9)),
        )
    } else {
        (
            SocketAddr::from(([0u16; 8], 0)),
            // The documentation prefix (RFC 3849).
            SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 9)),
        )
    };
    let target = toward
        .filter(|seed| seed.is_ipv4() == bound.is_ipv4())
        .unwrap_or(default_route);
    let probe = std::net::UdpSocket::bind(any).ok()?;
    probe.connect(target).ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then(|| SocketAddr::new(ip, bound.port()))
}

/// First wait before looking up unresolved seeds again; it doubles up to
/// [`RESOLVE_RETRY_MAX`].
const RESOLVE_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between lookups of a seed that does not resolve.
const RESOLVE_RETRY_MAX: Duration = Duration::from_secs(30);

/// Looks `entries` up again, with backoff, until each resolves or gossip stops, and hands
/// each one found to the core as a seed (a join not yet answered starts over with it).
/// Says once when a name resolves, and again at each doubling of the attempts when none
/// has.
async fn resolve_later(
    shared: Arc<Shared>,
    mut entries: Vec<String>,
    local: SocketAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut wait = RESOLVE_RETRY_FIRST;
    let mut attempts: u32 = 1;
    let mut warned_at: u32 = 1;
    while !entries.is_empty() {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
        attempts = attempts.saturating_add(1);
        let mut found = Vec::new();
        let mut index = 0;
        while index < entries.len() {
            let lookup = tokio::net::lookup_host(entries[index].as_str()).await;
            match lookup.map(|mut addresses| addresses.next()) {
                Ok(Some(address)) => {
                    let entry = entries.swap_remove(index);
                    tracing::info!(seed = %entry, "gossip.join: {entry} now resolves to {address}; joining through it");
                    if address != local && address != shared.advertise {
                        found.push(address);
                    }
                }
                _ => index += 1,
            }
        }
        if !found.is_empty() {
            let mut state = lock(&shared.state);
            let now = shared.now_us();
            state.swim.add_seeds(&found, now);
            drop(state);
            shared.kick.notify_one();
        }
        wait = (wait * 2).min(RESOLVE_RETRY_MAX);
        if !entries.is_empty() && attempts >= warned_at.saturating_mul(2) {
            warned_at = attempts;
            tracing::warn!(
                "gossip.join: {} still {} not resolve after {attempts} lookups; next lookup in {}",
                entries.join(", "),
                if entries.len() == 1 { "does" } else { "do" },
                ShortDuration(wait)
            );
        }
    }
    shared
        .resolving
        .store(false, std::sync::atomic::Ordering::Relaxed);
}

async fn run(
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    node: Weak<Node>,
    meta_interval: Duration,
    max_packet: usize,
) {
    let mut buffer = vec![0u8; 65_536];
    let mut meta_tick = tokio::time::interval(meta_interval);
    // When this node's metadata last went round: unchanged, it goes again every
    // META_REFRESH, so a member that missed it is late by that much at most.
    let mut meta_sent_at = Instant::now();
    meta_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_meta: Option<(u32, u32, u32)> = None;
    let mut join_report = JoinReport::default();
    let mut strangers = StrangerReport::default();
    let mut table_full = TableFullReport::default();
    flush(&shared, &socket).await;
    loop {
        let next = lock(&shared.state).swim.poll_timeout();
        let sleep_for = next
            .map(|at| Duration::from_micros(at.saturating_sub(shared.now_us())))
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok((length, from)) => {
                    if !shared.drop_datagram(from) {
                        let mut state = lock(&shared.state);
                        let now = shared.now_us();
                        if let Err(error) = state.swim.handle_packet(from, &buffer[..length.min(max_packet + 1)], now) {
                            tracing::debug!(%from, "dropped a gossip packet: {error}");
                            strangers.report(from, &error, &shared.cluster, shared.advertise);
                        }
                    }
                }
                Err(error) => {
                    // ICMP errors (a peer gone) surface here on some systems; not fatal.
                    tracing::debug!("gossip receive error: {error}");
                }
            },
            _ = tokio::time::sleep(sleep_for) => {
                let mut state = lock(&shared.state);
                let now = shared.now_us();
                state.swim.handle_timeout(now);
                table_full.check(state.swim.stats().table_full, state.swim.config().max_members);
            }
            _ = meta_tick.tick() => {
                if let Some(node) = node.upgrade() {
                    let snapshot = node.snapshot(0);
                    let workers = snapshot.workers.len().max(1);
                    let (depth, free, load) = snapshot.load_figures();
                    let key = (depth, free, (load * 100.0) as u32);
                    if last_meta == Some(key) {
                        if meta_sent_at.elapsed() >= META_REFRESH {
                            meta_sent_at = Instant::now();
                            lock(&shared.state).swim.refresh_meta();
                        }
                    } else {
                        last_meta = Some(key);
                        meta_sent_at = Instant::now();
                        let mut state = lock(&shared.state);
                        let mut meta = state.swim.meta().clone();
                        meta.workers = u16::try_from(workers).unwrap_or(u16::MAX);
                        meta.queue_depth = key.0;
                        meta.arena_free = key.1;
                        meta.load = load;
                        if snapshot.node.listen.is_some() {
                            meta.protocol_address =
                                protocol_address(snapshot.node.listen.as_deref(), shared.advertise);
                        }
                        state.swim.set_meta(meta);
                    }
                }
            }
            _ = shared.kick.notified() => {}
            _ = stop.changed() => {
                leave(&shared, &socket).await;
                return;
            }
        }
        // Once the join is settled there is nothing more to report: no lock per packet.
        // Seeds still being looked up are not settled, even with none to join yet.
        if !join_report.done {
            let state = lock(&shared.state);
            let pending = state.swim.join_pending();
            if pending.is_some() || !shared.resolving.load(std::sync::atomic::Ordering::Relaxed) {
                join_report.send_error = lock(&shared.last_send_error).clone();
                join_report.check(pending);
            }
        }
        flush(&shared, &socket).await;
    }
}

/// Says when no seed answers a join (a mistyped `--join` otherwise leaves a node alone
/// without a word), at the 3rd attempt and then at each doubling of the attempts (about
/// 3 s, 1 min, 4 min … after start); and says so once a seed answers after such a warning.
#[derive(Debug, Default)]
struct JoinReport {
    /// Attempts at the last warning; 0 when none was given.
    warned_at: u32,
    /// A seed answered: nothing more to say.
    done: bool,
    /// The latest failure to send any packet, and where to, if one happened.
    send_error: Option<(SocketAddr, String)>,
}

/// Says, at most once a minute per sender (and for at most [`STRANGERS_KEPT`] senders at a
/// time), that gossip packets from another cluster or protocol version are dropped (without
/// it, a node started with the wrong `node.cluster` learned only that no seed answered), or
/// that probes meant for another member go unanswered.
#[derive(Debug, Default)]
struct StrangerReport {
    warned: HashMap<SocketAddr, Instant>,
    /// When probes meant for another member were last reported.
    misdirected_warned: Option<Instant>,
}

/// How often probes meant for another member are reported, whoever sends them.
const MISDIRECTED_EVERY: Duration = Duration::from_secs(600);

/// Senders [`StrangerReport`] remembers.
const STRANGERS_KEPT: usize = 64;
/// How often one sender is reported.
const STRANGER_EVERY: Duration = Duration::from_secs(60);

impl StrangerReport {
    /// Logs why packets from `from` were dropped, at most every [`STRANGER_EVERY`] per
    /// sender; returns the warning's text when it logged one (for tests).
    fn report(
        &mut self,
        from: SocketAddr,
        error: &PacketError,
        cluster: &str,
        own: SocketAddr,
    ) -> Option<String> {
        let now = Instant::now();
        if let PacketError::Misdirected { sender } = error {
            // Every member probes a node it holds dead now and then, for as long as it
            // keeps it: one warning names the first, and comes again at most every
            // MISDIRECTED_EVERY.
            if self
                .misdirected_warned
                .is_some_and(|at| now.duration_since(at) < MISDIRECTED_EVERY)
            {
                return None;
            }
            self.misdirected_warned = Some(now);
            let message = format!(
                "gossip probes from {sender} at {from} are meant for a member of another name at this node's address: not answered. {sender} lists a node that gossiped here before this one; it holds that node dead once it stops answering, and stops probing here once it forgets it (gossip.dead_retention); `goliath members --json` counts them (stats.misdirected)"
            );
            tracing::warn!(%from, "{message}");
            return Some(message);
        }
        // Every dropped packet comes here: the sender's rate first, the text only when said.
        if self
            .warned
            .get(&from)
            .is_some_and(|at| now.duration_since(*at) < STRANGER_EVERY)
        {
            return None;
        }
        if self.warned.len() >= STRANGERS_KEPT {
            self.warned
                .retain(|_, at| now.duration_since(*at) < STRANGER_EVERY);
            if self.warned.len() >= STRANGERS_KEPT {
                return None;
            }
        }
        self.warned.insert(from, now);
        let member_advice = || {
            format!(
                "If that node should be a member, start it with node.cluster = \"{cluster}\" and the same goliath version"
            )
        };
        // Something that is not a goliath node at an address this node sends to (a seed
        // mistyped as another service's port) answers with its own bytes, or with ours.
        let address_advice = || {
            "Check that --join / gossip.join names members' gossip addresses (UDP), not another service's".to_string()
        };
        let (what, advice) = match error {
            PacketError::ForeignCluster(_) => (
                format!(
                    "belong to another cluster (its node.cluster is not this node's \"{cluster}\")"
                ),
                member_advice(),
            ),
            PacketError::Version(_) => (
                "speak another gossip protocol version".to_string(),
                member_advice(),
            ),
            PacketError::FutureGeneration(_) => (
                "claim a process start more than a day after this node's clock (forged or corrupt, or this node's clock is behind)".to_string(),
                "If this node's clock is right, something on the network sends forged gossip: gossip is unauthenticated; keep it on loopback or a private network".to_string(),
            ),
            PacketError::Malformed(_) | PacketError::Invalid(_) => {
                (format!("are not goliath gossip ({error})"), address_advice())
            }
            PacketError::Oversized { length, limit } => (
                format!("are longer ({length} bytes) than this node's gossip.max_packet ({limit})"),
                "Give every member the same gossip.max_packet".to_string(),
            ),
            // Sent to itself: a member it was told of lists this node's own address (a node
            // that gossiped from here before, dead now), not a seed of the wrong kind.
            PacketError::Echoed if from == own => (
                "are this node's own, sent to itself: a member it was told of is listed at this node's address (one that gossiped from here before, dead now)".to_string(),
                "Nothing to do: it stops once that member is forgotten (gossip.dead_retention); `goliath members` lists it".to_string(),
            ),
            PacketError::Echoed => (
                "are this node's own, sent back: that address returns what it is sent, so no goliath node is there".to_string(),
                address_advice(),
            ),
            // Said above.
            PacketError::Misdirected { .. } => return None,
        };
        let message = format!("gossip packets from {from} {what}: dropped. {advice}");
        tracing::warn!(%from, "{message}");
        Some(message)
    }
}

/// Says when members were left out because the member table is full (`gossip.max_members`),
/// at most every [`TABLE_FULL_EVERY`]: the table then lists part of the cluster, and only a
/// counter in `goliath members --json` told.
#[derive(Debug, Default)]
struct TableFullReport {
    /// The count at the last warning.
    warned_count: u64,
    warned_at: Option<Instant>,
}

/// How often a full member table is reported.
const TABLE_FULL_EVERY: Duration = Duration::from_secs(600);

impl TableFullReport {
    /// Looks at the count of members left out; returns what it logged (for tests).
    fn check(&mut self, left_out: u64, max_members: usize) -> Option<String> {
        if left_out <= self.warned_count
            || self
                .warned_at
                .is_some_and(|at| at.elapsed() < TABLE_FULL_EVERY)
        {
            return None;
        }
        let message = format!(
            "the member table is full (gossip.max_members = {max_members}, this node not counted): members it heard of were left out ({} times since the last warning), so it lists part of the cluster; raise gossip.max_members",
            left_out - self.warned_count
        );
        tracing::warn!("{message}");
        self.warned_count = left_out;
        self.warned_at = Some(Instant::now());
        Some(message)
    }
}

/// Says when this node keeps being suspected: refutations at the rate of a member the others
/// do not reach (a `gossip.advertise` that names no address of it, a firewall that passes
/// its packets one way). Each refutation alone says little; this many says where to look.
#[derive(Default)]
struct RefutationReport {
    /// When the latest refutations were, up to [`REFUTATIONS_TO_WARN`].
    recent: VecDeque<Instant>,
    warned_at: Option<Instant>,
    /// The generation and incarnation the latest refutation took: one episode (a suspicion
    /// refuted, then the death verdict that followed it heard) counts once. The generation
    /// too: each claim at the last incarnation is answered with a new generation, all at
    /// incarnation 0.
    taken: Option<(u64, u32)>,
}

/// Other members that fail and come back again and again: after [`FLAPS_TO_WARN`] failures
/// of one member within [`REFUTATION_WINDOW`], one warning names it, and its failures and
/// returns go to the debug log while they come that often (every member logged a warning
/// and an info line every 3 s for a member advertising a wrong address, for as long as it
/// ran).
#[derive(Default)]
struct FlapReport {
    /// Per member (at most [`FLAP_MEMBERS_TRACKED`]): its latest failures, and when it was
    /// last warned about.
    members: HashMap<String, (VecDeque<Instant>, Option<Instant>)>,
}

/// Membership events logged one by one per [`EVENT_LOG_WINDOW`]; the rest are counted and
/// summed up when the window ends (all are kept in the event ring, `goliath members`).
struct EventLogBudget(LineBudget);

/// See [`EventLogBudget`].
const EVENT_LOG_WINDOW: Duration = Duration::from_secs(10);
/// See [`EventLogBudget`].
const EVENTS_LOGGED_PER_WINDOW: u32 = 20;

impl Default for EventLogBudget {
    fn default() -> Self {
        Self(LineBudget::new(EVENT_LOG_WINDOW, EVENTS_LOGGED_PER_WINDOW))
    }
}

impl EventLogBudget {
    /// Whether an event at `now` may be logged one by one.
    fn take(&mut self, now: Instant) -> bool {
        self.summarize(now);
        matches!(self.0.admit(now), Line::Log { .. })
    }

    /// Once the window of unlogged events has ended, says how many there were; returns
    /// what it logged (for tests).
    fn summarize(&mut self, now: Instant) -> Option<String> {
        if !self.0.has_unlogged() || !self.0.window_ended(now) {
            return None;
        }
        let message = format!(
            "{} more membership events in {} were not logged one by one (`goliath members --json` lists the latest; a burst of joins from one sender may be forged: gossip is unauthenticated)",
            self.0.take_unlogged(),
            ShortDuration(self.0.window())
        );
        tracing::info!("{message}");
        Some(message)
    }
}

/// Failures of one member within [`REFUTATION_WINDOW`] that make it flapping.
const FLAPS_TO_WARN: usize = 5;
/// Members whose failures are kept at once; the one heard of least recently gives way.
const FLAP_MEMBERS_TRACKED: usize = 256;

impl FlapReport {
    /// Counts a failure (`Failed`) or return (`Alive`) of `member` at `now`; whether it is
    /// flapping (then the event goes to the debug log). The warning is logged here.
    fn record(&mut self, now: Instant, member: &str, kind: &EventKind) -> bool {
        if !self.members.contains_key(member) && self.members.len() >= FLAP_MEMBERS_TRACKED {
            let stalest = self
                .members
                .iter()
                .min_by_key(|(_, (failures, _))| failures.back().copied())
                .map(|(name, _)| name.clone());
            if let Some(stalest) = stalest {
                self.members.remove(&stalest);
            }
        }
        let (failures, warned_at) = self.members.entry(member.to_string()).or_default();
        if matches!(kind, EventKind::Failed) {
            failures.push_back(now);
            while failures.len() > FLAPS_TO_WARN {
                failures.pop_front();
            }
        }
        let flapping = failures.len() == FLAPS_TO_WARN
            && failures
                .front()
                .is_some_and(|first| now.saturating_duration_since(*first) <= REFUTATION_WINDOW);
        if !flapping {
            return false;
        }
        let quiet =
            warned_at.is_none_or(|at| now.saturating_duration_since(at) >= REFUTATION_WARN_EVERY);
        if quiet && matches!(kind, EventKind::Failed) {
            *warned_at = Some(now);
            let within = failures
                .front()
                .map(|first| now.saturating_duration_since(*first))
                .unwrap_or_default();
            tracing::warn!(
                member = %member,
                "{member} failed and came back {FLAPS_TO_WARN} times within {}: the others may not reach it at the gossip address it advertises, or a firewall passes its packets one way only (its own log says which); while this lasts its failures and returns go to the debug log",
                ShortDuration(within)
            );
            return false;
        }
        true
    }
}

/// Refutations within [`REFUTATION_WINDOW`] that make a warning.
const REFUTATIONS_TO_WARN: usize = 5;
/// See [`REFUTATIONS_TO_WARN`].
const REFUTATION_WINDOW: Duration = Duration::from_secs(60);
/// How often the warning of [`RefutationReport`] is repeated at most.
const REFUTATION_WARN_EVERY: Duration = Duration::from_secs(600);

impl RefutationReport {
    /// Whether the latest refutations came as often as a warning takes.
    fn often(&self, now: Instant) -> bool {
        self.recent.len() == REFUTATIONS_TO_WARN
            && self
                .recent
                .front()
                .is_some_and(|first| now.saturating_duration_since(*first) <= REFUTATION_WINDOW)
    }

    /// Counts a refutation made at `now`, taking `incarnation` of `generation`; returns what
    /// it logged (for tests). A second event of one episode (the same generation and
    /// incarnation) is not counted again.
    fn record(
        &mut self,
        now: Instant,
        advertise: SocketAddr,
        (generation, incarnation): (u64, u32),
    ) -> Option<String> {
        if self.taken.replace((generation, incarnation)) == Some((generation, incarnation)) {
            return None;
        }
        self.recent.push_back(now);
        while self.recent.len() > REFUTATIONS_TO_WARN {
            self.recent.pop_front();
        }
        let within = self
            .recent
            .front()
            .map(|first| now.saturating_duration_since(*first));
        let often = self.often(now);
        let quiet = self
            .warned_at
            .is_none_or(|at| now.saturating_duration_since(at) >= REFUTATION_WARN_EVERY);
        if !(often && quiet) {
            return None;
        }
        let message = format!(
            "this node was suspected, and refuted it, {REFUTATIONS_TO_WARN} times within {}: the others may not reach it at the gossip address it advertises, {advertise} (set gossip.advertise to the address they reach it at), or a firewall passes its packets one way only",
            crate::runtime::units::ShortDuration(within.unwrap_or_default())
        );
        tracing::warn!("{message}");
        self.warned_at = Some(now);
        Some(message)
    }
}

/// How often unchanged metadata is sent round again (see `Swim::refresh_meta`).
const META_REFRESH: Duration = Duration::from_secs(30);

/// Unanswered join attempts before the first warning.
const JOIN_ATTEMPTS_BEFORE_WARNING: u32 = 3;

impl JoinReport {
    /// Looks at the join's state after a turn; returns what it logged (for tests).
    fn check(&mut self, pending: Option<JoinPending>) -> Option<String> {
        if self.done {
            return None;
        }
        let Some(pending) = pending else {
            self.done = true;
            if self.warned_at == 0 {
                return None;
            }
            // The latest attempt may be the one answered, moments after the warning that
            // counted it: "after N unanswered" would contradict that warning.
            let message = format!(
                "a seed answered: joined the cluster (the warning above counted {} attempts)",
                self.warned_at
            );
            tracing::info!("{message}");
            return Some(message);
        };
        let due = if self.warned_at == 0 {
            JOIN_ATTEMPTS_BEFORE_WARNING
        } else {
            self.warned_at.saturating_mul(2)
        };
        if pending.attempts < due {
            return None;
        }
        self.warned_at = pending.attempts;
        let seeds: Vec<String> = pending.seeds.iter().map(ToString::to_string).collect();
        // A failed send to a seed: not the seeds' silence, the packets never left.
        let what = match &self.send_error {
            Some((to, error)) if pending.seeds.contains(to) => format!(
                "this node cannot send its join to the seeds ({} attempts to {}): sending fails here: {error} (to {to}). Check that gossip.bind and the seeds use the same address family (IPv4 or IPv6) and that this host has a route to them",
                pending.attempts,
                seeds.join(", ")
            ),
            _ => format!(
                "no seed has answered this node's join ({} attempts to {}): it stays alone until one does. Check --join / gossip.join (members' gossip addresses, UDP), that those ports are reachable, and that the seeds are in this node's cluster (node.cluster; a seed drops packets from another cluster and says so in its log)",
                pending.attempts,
                seeds.join(", ")
            ),
        };
        let message = format!(
            "{what}; next try in {}",
            ShortDuration(Duration::from_micros(pending.retry_us))
        );
        tracing::warn!("{message}");
        Some(message)
    }
}

/// Tells the cluster we leave, then keeps gossiping for up to a second so it spreads.
async fn leave(shared: &Arc<Shared>, socket: &Arc<UdpSocket>) {
    let (status, members) = {
        let mut state = lock(&shared.state);
        let before = (state.swim.status(), state.swim.up_count());
        let now = shared.now_us();
        state.swim.leave(now);
        before
    };
    match status {
        LocalStatus::Yielded => {
            tracing::info!(
                "stopped; gossip had already stopped (this node gave way to a newer process with its name)"
            );
            return;
        }
        LocalStatus::Joining if members == 0 => {
            tracing::info!(
                "stopped gossiping; no seed had answered, so there was no cluster to leave"
            );
            return;
        }
        _ => {}
    }
    flush(shared, socket).await;
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let spread = lock(&shared.state).swim.leave_spread();
        if spread {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        {
            let mut state = lock(&shared.state);
            let now = shared.now_us();
            state.swim.handle_timeout(now);
        }
        flush(shared, socket).await;
    }
    tracing::info!("left the cluster");
}

async fn flush(shared: &Arc<Shared>, socket: &Arc<UdpSocket>) {
    let outputs = {
        let mut state = lock(&shared.state);
        let mut outputs = std::mem::take(&mut state.outputs);
        state.swim.take_outputs(&mut outputs);
        for output in &outputs {
            if let Output::Event(event) = output {
                let cluster_event = to_cluster_event(shared, event);
                // One per suspicion: a refutation that then learns of a death verdict is
                // the same episode. Once they come this often, the report says it, and
                // each one alone goes to the debug log (a flapping node wrote a warning
                // a second).
                let now = Instant::now();
                let flapping = match event.kind {
                    EventKind::Refuted { incarnation, .. } => {
                        let taken = (event.member.generation, incarnation);
                        state.refutations.record(now, shared.advertise, taken);
                        state.refutations.often(now)
                    }
                    // Another member failing and coming back again and again (one the
                    // others cannot reach at the address it advertises): said once, then
                    // its swings go to the debug log while they last.
                    EventKind::Failed | EventKind::Alive => {
                        state.flaps.record(now, &cluster_event.member, &event.kind)
                    }
                    _ => false,
                };
                // Another member's comings and goings, past a budget per window, are
                // counted and summed up: thousands of members announced at once (forged, or a
                // big cluster joined) wrote a line each.
                let to_debug = flapping
                    || (matches!(
                        event.kind,
                        EventKind::Joined
                            | EventKind::Alive
                            | EventKind::Failed
                            | EventKind::Left
                            | EventKind::Restarted { .. }
                            | EventKind::Forgotten
                    ) && !state.event_budget.take(now));
                if to_debug {
                    tracing::debug!(member = %cluster_event.member, "{}", cluster_event.text);
                } else {
                    log_event(&cluster_event, &event.kind);
                }
                if state.events.len() >= shared.events_cap {
                    state.events.pop_front();
                }
                state.events.push_back(cluster_event);
            }
        }
        if state.event_budget.0.has_unlogged() {
            state.event_budget.summarize(Instant::now());
        }
        outputs
    };
    let delay = lock(&shared.faults).delay;
    let mut spent = Vec::new();
    for output in outputs {
        if let Output::Send { to, bytes } = output {
            if shared.drop_datagram(to) {
                spent.push(bytes);
                continue;
            }
            if delay.is_zero() {
                if let Err(error) = socket.send_to(&bytes, to).await {
                    tracing::debug!(%to, "gossip send failed: {error}");
                    *lock(&shared.last_send_error) = Some((to, error.to_string()));
                }
                spent.push(bytes);
            } else {
                let socket = socket.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = socket.send_to(&bytes, to).await;
                });
            }
        }
    }
    if !spent.is_empty() {
        // The core reuses a few buffers for its next packets.
        let mut state = lock(&shared.state);
        for bytes in spent {
            state.swim.recycle(bytes);
        }
    }
}

fn to_cluster_event(shared: &Shared, event: &MemberEvent) -> ClusterEvent {
    let member = event.member.name.to_string();
    ClusterEvent {
        at_unix_us: shared.unix_us(event.at_us),
        text: ClusterEvent::describe_told(
            &member,
            event.member.generation,
            &event.kind,
            event.told_by.as_ref().map(|name| name.as_str()),
        ),
        member,
        generation: event.member.generation,
        kind: event.kind.clone(),
        told_by: event.told_by.as_ref().map(|name| name.to_string()),
    }
}

fn log_event(event: &ClusterEvent, kind: &EventKind) {
    match kind {
        EventKind::NameConflict { .. } => {
            tracing::error!(member = %event.member, "{}", event.text)
        }
        EventKind::Failed
        | EventKind::Refuted { .. }
        | EventKind::Paused { .. }
        | EventKind::DisplacedOlder { .. }
        | EventKind::Restarted {
            moved_from: Some(_),
            ..
        } => {
            tracing::warn!(member = %event.member, "{}", event.text)
        }
        EventKind::Joined | EventKind::Alive | EventKind::Left | EventKind::Restarted { .. } => {
            tracing::info!(member = %event.member, "{}", event.text)
        }
        EventKind::Suspected { .. }
        | EventKind::Degraded { .. }
        | EventKind::Recovered
        | EventKind::Forgotten => tracing::debug!(member = %event.member, "{}", event.text),
    }
}

/// The protocol address other members are told: the listen address, except that one on
/// every interface (`0.0.0.0:7420`, which names no host) is told as the IP this node
/// advertises for gossip, with the listen port. At most 64 characters (the wire's bound).
fn protocol_address(listen: Option<&str>, advertise: SocketAddr) -> String {
    let Some(listen) = listen else {
        return String::new();
    };
    match listen.parse::<SocketAddr>() {
        Ok(address) if address.ip().is_unspecified() => {
            SocketAddr::new(advertise.ip(), address.port()).to_string()
        }
        _ => listen.chars().take(64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_suspected_again_and_again_is_told_to_check_its_advertised_address() {
        let advertise: SocketAddr = "10.77.0.99:7421".parse().expect("address");
        let start = Instant::now();
        let mut report = RefutationReport::default();
        // Fewer than five within any minute: nothing said.
        let mut incarnation = 0;
        let mut refute = |report: &mut RefutationReport, second: u64| {
            incarnation += 1;
            report.record(
                start + Duration::from_secs(second),
                advertise,
                (1, incarnation),
            )
        };
        for second in [0, 30, 60, 90, 120, 121, 122] {
            assert_eq!(refute(&mut report, second), None, "at {second} s");
        }
        // The death verdict of the last episode, heard after its refutation: not counted
        // (it would make five).
        assert_eq!(
            report.record(start + Duration::from_secs(122), advertise, (1, 7)),
            None
        );
        assert!(!report.often(start + Duration::from_secs(122)));
        // 90, 120, 121, 122, 123: five within 33 s.
        let warning = refute(&mut report, 123).expect("five within a minute");
        assert!(
            warning.contains("5 times within") && warning.contains("10.77.0.99:7421"),
            "{warning}"
        );
        // Said once, not at every refutation after; meanwhile each is "often" (logged at
        // debug), until they slow down.
        for second in 124..140 {
            assert_eq!(refute(&mut report, second), None);
            assert!(report.often(start + Duration::from_secs(second)));
        }
        assert!(!report.often(start + Duration::from_secs(400)));
    }

    #[test]
    fn claims_at_the_last_incarnation_answered_with_new_generations_each_count() {
        let advertise: SocketAddr = "10.77.0.99:7421".parse().expect("address");
        let start = Instant::now();
        let mut report = RefutationReport::default();
        // Each answered with the next generation, all at incarnation 0: five episodes.
        let said: Vec<Option<String>> = (2..=6u64)
            .map(|generation| {
                report.record(
                    start + Duration::from_secs(generation),
                    advertise,
                    (generation, 0),
                )
            })
            .collect();
        assert!(said[..4].iter().all(Option::is_none), "{said:?}");
        assert!(said[4].is_some(), "five within a minute: {said:?}");
    }

    #[test]
    fn a_burst_of_membership_events_is_logged_up_to_a_budget_then_summed_up() {
        let start = Instant::now();
        let at = |millis: u64| start + Duration::from_millis(millis);
        let mut budget = EventLogBudget::default();
        let logged = (0..6_000u64).filter(|i| budget.take(at(*i / 10))).count();
        assert_eq!(
            logged, EVENTS_LOGGED_PER_WINDOW as usize,
            "one window's worth, one by one"
        );
        assert_eq!(budget.summarize(at(900)), None, "said when the window ends");
        let summary = budget.summarize(at(10_000)).expect("summed up");
        assert!(
            summary.starts_with(&format!(
                "{} more membership events",
                6_000 - EVENTS_LOGGED_PER_WINDOW
            )),
            "{summary}"
        );
        assert_eq!(budget.summarize(at(20_000)), None, "once");
        // A new window logs again.
        assert!(budget.take(at(20_001)));
    }

    #[test]
    fn own_packets_sent_to_itself_are_not_blamed_on_a_seed() {
        let own: SocketAddr = "127.0.0.1:25757".parse().expect("address");
        let echo: SocketAddr = "127.0.0.1:9".parse().expect("address");
        let mut report = StrangerReport::default();
        // Sent to itself (a dead member listed at its address): nothing to fix in --join.
        let itself = report
            .report(own, &PacketError::Echoed, "goliath", own)
            .expect("said");
        assert!(
            itself.contains("sent to itself") && !itself.contains("--join"),
            "{itself}"
        );
        // Sent back by another address: that is no goliath node, and the seeds are named.
        let back = report
            .report(echo, &PacketError::Echoed, "goliath", own)
            .expect("said");
        assert!(
            back.contains("sent back") && back.contains("--join"),
            "{back}"
        );
    }

    #[test]
    fn a_member_failing_again_and_again_is_warned_of_once_then_its_swings_go_to_debug() {
        let start = Instant::now();
        let at = |second: u64| start + Duration::from_secs(second);
        let mut report = FlapReport::default();
        // Four failures and returns within a minute: each logged as usual.
        for second in [0, 3, 6, 9] {
            assert!(!report.record(at(second), "n11", &EventKind::Failed));
            assert!(!report.record(at(second + 1), "n11", &EventKind::Alive));
        }
        // Another member's swings are its own.
        assert!(!report.record(at(10), "n2", &EventKind::Failed));
        // The fifth failure is warned of (and logged); from then on they go to debug.
        assert!(!report.record(at(12), "n11", &EventKind::Failed));
        assert!(report.record(at(13), "n11", &EventKind::Alive));
        assert!(report.record(at(15), "n11", &EventKind::Failed));
        assert!(report.record(at(16), "n11", &EventKind::Alive));
        // Once they slow down (fewer than five in a minute), each is logged again.
        assert!(!report.record(at(200), "n11", &EventKind::Failed));
        assert!(!report.record(at(201), "n11", &EventKind::Alive));
    }

    #[test]
    fn a_full_member_table_is_reported_once_then_at_most_every_ten_minutes() {
        let mut report = TableFullReport::default();
        assert_eq!(report.check(0, 2), None, "nothing left out, nothing said");
        let warning = report.check(14, 2).expect("warned");
        assert!(
            warning.contains("gossip.max_members = 2, this node not counted")
                && warning.contains("14 times"),
            "{warning}"
        );
        assert_eq!(report.check(20, 2), None, "not again within ten minutes");
    }

    #[test]
    fn a_protocol_listening_on_every_interface_is_told_as_the_gossip_ip() {
        let advertise: SocketAddr = "10.77.0.1:7421".parse().expect("address");
        assert_eq!(
            protocol_address(Some("0.0.0.0:7420"), advertise),
            "10.77.0.1:7420"
        );
        assert_eq!(
            protocol_address(Some("[::]:7420"), advertise),
            "10.77.0.1:7420"
        );
        assert_eq!(
            protocol_address(Some("10.77.0.9:7420"), advertise),
            "10.77.0.9:7420",
            "a concrete address as it is"
        );
        assert_eq!(
            protocol_address(Some("127.0.0.1:7420"), advertise),
            "127.0.0.1:7420"
        );
        assert_eq!(protocol_address(None, advertise), "");
    }

    #[test]
    fn a_start_from_a_data_directory_takes_a_generation_above_the_last() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(next_generation(Some(dir.path()), 5_000), 5_000);
        // The clock set back: still above the last start.
        assert_eq!(next_generation(Some(dir.path()), 1_000), 5_001);
        assert_eq!(next_generation(Some(dir.path()), 1_000), 5_002);
        // The clock ahead again: the clock's value.
        assert_eq!(next_generation(Some(dir.path()), 9_000), 9_000);
        assert_eq!(
            next_generation(None, 1_000),
            1_000,
            "no directory, the clock"
        );
        let listing = crate::runtime::wal::segment::list(dir.path()).expect("lists");
        assert!(
            listing.temps.is_empty(),
            "nothing the log takes for its own"
        );
    }

    #[test]
    fn an_interface_address_toward_a_seed_is_one_the_seed_can_reach() {
        let bound = SocketAddr::from(([0, 0, 0, 0], 7421));
        let toward = SocketAddr::from(([127, 0, 0, 1], 7422));
        assert_eq!(
            interface_address(bound, Some(toward)),
            Some(SocketAddr::from(([127, 0, 0, 1], 7421)))
        );
    }

    #[test]
    fn an_unanswered_join_is_reported_with_backoff_and_its_end_once() {
        let seeds = [SocketAddr::from(([127, 0, 0, 1], 7599))];
        let pending = |attempts| {
            Some(JoinPending {
                seeds: seeds.to_vec(),
                attempts,
                retry_us: 4_000_000,
            })
        };
        let mut report = JoinReport::default();
        let warnings: Vec<u32> = (1..=30)
            .filter(|&attempts| report.check(pending(attempts)).is_some())
            .collect();
        assert_eq!(
            warnings,
            [3, 6, 12, 24],
            "the 3rd attempt, then at each doubling"
        );
        let mut report = JoinReport::default();
        let warning = report.check(pending(3)).expect("warned");
        assert!(
            warning.contains("127.0.0.1:7599")
                && warning.contains("--join")
                && warning.contains("next try in 4.00s"),
            "{warning}"
        );
        let answered = report.check(None).expect("the end of the wait is told");
        assert!(
            answered.contains("joined the cluster (the warning above counted 3 attempts)"),
            "{answered}"
        );

        assert_eq!(report.check(None), None, "said once");
        // A join answered before any warning needs no word.
        let mut report = JoinReport::default();
        assert_eq!(report.check(pending(1)), None);
        assert_eq!(report.check(None), None);
        // Packets that cannot leave (an IPv6 socket, an IPv4 seed) are not the seeds' silence.
        let mut report = JoinReport {
            send_error: Some((
                seeds[0],
                "Network is unreachable (os error 101)".to_string(),
            )),
            ..JoinReport::default()
        };
        let warning = report.check(pending(3)).expect("warned");
        assert!(
            warning.contains("cannot send its join to the seeds")
                && warning.contains("Network is unreachable")
                && warning.contains("same address family")
                && !warning.contains("no seed has answered"),
            "{warning}"
        );
        // A failed send elsewhere says nothing about the seeds.
        let elsewhere = SocketAddr::from(([10, 0, 0, 9], 7421));
        let mut report = JoinReport {
            send_error: Some((elsewhere, "Network is unreachable".to_string())),
            ..JoinReport::default()
        };
        let warning = report.check(pending(3)).expect("warned");
        assert!(warning.contains("no seed has answered"), "{warning}");
    }

    #[test]
    fn the_shipped_config_gives_the_core_its_defaults() {
        // The simulator measures SwimConfig::default(); a node runs what the config says.
        // They must be the same protocol.
        assert_eq!(swim_config(&Config::default()), SwimConfig::default());
    }

    #[test]
    fn default_names_differ_per_gossip_port() {
        let mut config = Config::default();
        let host = default_node_name(&config);
        config.gossip.enabled = true;
        config.gossip.bind = "127.0.0.1:7421".into();
        let first = default_node_name(&config);
        config.gossip.bind = "127.0.0.1:7422".into();
        let second = default_node_name(&config);
        assert_eq!(first, format!("{host}-7421"));
        assert_ne!(first, second);
        assert!(Name::new(&first).is_ok());
    }

    #[test]
    fn a_node_with_gossip_on_serves_its_membership() {
        let mut config = Config::default();
        config.scheduler.workers = crate::config::WorkerCount::Fixed(1);
        config.arena.slots = 64;
        config.gossip.enabled = true;
        config.gossip.bind = "127.0.0.1:0".into();
        config.node.name = "solo".into();
        let node = Arc::new(Node::start(config).expect("node starts"));
        assert!(node.cluster().is_none(), "nothing before gossip starts");
        let cluster = Cluster::start(&node)
            .expect("gossip starts")
            .expect("gossip is on");
        let view = node
            .snapshot(0)
            .cluster
            .expect("the snapshot carries membership");
        assert_eq!(view.local, "solo");
        assert_eq!(view.counts.alive, 1);
        assert_eq!(view.members.len(), 1);
        assert!(view.members[0].local);
        assert_eq!(view.gossip_address, cluster.local_addr().to_string());
        cluster.stop();
        node.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn gossip_off_means_no_cluster() {
        let mut config = Config::default();
        config.scheduler.workers = crate::config::WorkerCount::Fixed(1);
        config.arena.slots = 64;
        let node = Arc::new(Node::start(config).expect("node starts"));
        assert!(Cluster::start(&node).expect("no error").is_none());
        assert!(node.snapshot(0).cluster.is_none());
    }
}
