//! What observers see of cluster membership: the types `NodeSnapshot::cluster`,
//! `goliath members` and the console's Cluster tab read, locally or over the wire. Times are
//! Unix microseconds.

use serde::{Deserialize, Serialize};

use super::swim::{EventKind, GossipStats, LocalStatus, MemberState};

/// Membership as one node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// The cluster name (`node.cluster`).
    pub cluster: String,
    /// This node's member name.
    pub local: String,
    /// This node's generation (changes at every start).
    pub generation: u64,
    /// This node's incarnation (raised to refute suspicions).
    pub incarnation: u32,
    /// The gossip address others use for this node.
    pub gossip_address: String,
    /// This node's standing.
    pub status: LocalStatus,
    /// Lifeguard local health score (0 = healthy; higher stretches probe periods).
    pub local_health: u32,
    /// φ at or above which a member is marked degraded.
    pub phi_threshold: f64,
    /// Members by state.
    pub counts: MemberCounts,
    /// Every member, this node first, then by name.
    pub members: Vec<MemberInfo>,
    /// Recent membership events, oldest first (bounded by `gossip.events`).
    pub events: Vec<ClusterEvent>,
    /// Gossip counters.
    pub stats: GossipStats,
}

/// Members by state (this node included, as alive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCounts {
    /// Alive.
    pub alive: u32,
    /// Suspected.
    pub suspect: u32,
    /// Declared failed.
    pub dead: u32,
    /// Left on purpose.
    pub left: u32,
    /// Alive or suspect and φ at or above the threshold.
    pub degraded: u32,
}

/// One member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Its name.
    pub name: String,
    /// Its generation.
    pub generation: u64,
    /// Its incarnation.
    pub incarnation: u32,
    /// Its state.
    pub state: MemberState,
    /// φ ≥ `gossip.phi_threshold`.
    pub degraded: bool,
    /// φ now (0 until enough arrivals are known).
    pub phi: f64,
    /// Where it gossips.
    pub gossip_address: Option<String>,
    /// Where it serves the goliath protocol.
    pub protocol_address: Option<String>,
    /// When a packet from it last arrived (Unix µs).
    pub last_heard_unix_us: Option<u64>,
    /// Since when it is in its state (Unix µs).
    pub since_unix_us: u64,
    /// Whether this is the node answering.
    pub local: bool,
    /// What it reports about itself, when known.
    pub meta: Option<MemberLoad>,
}

impl MemberInfo {
    /// Its protocol address as tables show it: `-` when unknown, and marked `(its loopback)`
    /// when another member serves only on its own loopback while gossiping over a network,
    /// so nobody copies it into `--node` on another host.
    pub fn protocol_address_shown(&self) -> std::borrow::Cow<'_, str> {
        let Some(address) = self.protocol_address.as_deref() else {
            return "-".into();
        };
        let loopback = |text: &str| {
            text.parse::<std::net::SocketAddr>()
                .is_ok_and(|address| address.ip().is_loopback())
        };
        let gossips_over_a_network = self
            .gossip_address
            .as_deref()
            .is_some_and(|gossip| !loopback(gossip));
        if !self.local && loopback(address) && gossips_over_a_network {
            format!("{address} (its loopback)").into()
        } else {
            address.into()
        }
    }

    /// φ, while the member is up: a member that is down has no current phi, and its last one
    /// would mislead.
    pub fn current_phi(&self) -> Option<f64> {
        self.state.is_up().then_some(self.phi)
    }

    /// Its reported load, while it is up (see [`MemberInfo::current_phi`]).
    pub fn current_load(&self) -> Option<&MemberLoad> {
        self.meta.as_ref().filter(|_| self.state.is_up())
    }
}

/// A member's reported metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberLoad {
    /// Metadata version.
    pub version: u32,
    /// Worker threads.
    pub workers: u16,
    /// Tasks queued.
    pub queue_depth: u32,
    /// Free task slots.
    pub arena_free: u32,
    /// Tasks in flight per worker.
    pub load: f32,
}

/// A membership event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterEvent {
    /// When (Unix µs).
    pub at_unix_us: u64,
    /// The member's name.
    pub member: String,
    /// The member's generation.
    pub generation: u64,
    /// What happened.
    pub kind: EventKind,
    /// For a failure this node learned from another member rather than concluded from its
    /// own probes: that member.
    pub told_by: Option<String>,
    /// The same in words, for logs and the console.
    pub text: String,
}

impl ClusterEvent {
    /// Describes an event in a sentence; a failure learned from another member names it.
    pub fn describe_told(
        member: &str,
        generation: u64,
        kind: &EventKind,
        told_by: Option<&str>,
    ) -> String {
        match (kind, told_by) {
            (EventKind::Failed, Some(by)) => {
                format!("{member} failed (declared dead; {by} said so)")
            }
            _ => Self::describe(member, generation, kind),
        }
    }

    /// Describes an event in a sentence.
    pub fn describe(member: &str, generation: u64, kind: &EventKind) -> String {
        match kind {
            EventKind::Joined => format!("{member} joined"),
            EventKind::Suspected { by } => {
                format!("{member} is suspected (failed a probe by {by})")
            }
            EventKind::Alive => format!("{member} is alive again"),
            EventKind::Failed => format!("{member} failed (declared dead)"),
            EventKind::Left => format!("{member} left the cluster"),
            EventKind::Restarted {
                previous_generation,
                moved_from: None,
            } => format!(
                "{member} restarted (generation {previous_generation} replaced by {generation})"
            ),
            EventKind::Restarted {
                previous_generation,
                moved_from: Some(old),
            } => format!(
                "{member} restarted at another address (generation {previous_generation} at {old}, which was alive, replaced by {generation}); if that earlier process still runs, two nodes were given one name"
            ),
            EventKind::Degraded { phi } => {
                format!("{member} is degraded (phi {phi:.1}: unusually long silence)")
            }
            EventKind::Recovered => format!("{member} recovered (phi back under the threshold)"),
            EventKind::Refuted {
                incarnation,
                declared_dead: false,
            } => format!("this node was suspected and refuted it (incarnation {incarnation})"),
            EventKind::Refuted {
                incarnation,
                declared_dead: true,
            } => format!(
                "this node had been declared dead by the others and refuted it (incarnation {incarnation}): it was not heard from for too long"
            ),
            EventKind::Paused { micros } => format!(
                "this node did not run for {:.1}s (stopped, or starved of CPU); the others' silence meanwhile is not held against them",
                *micros as f64 / 1e6
            ),
            EventKind::NameConflict {
                winner_generation,
                winner_address,
            } => format!(
                "another process uses the name {member} with a newer generation ({winner_generation}{}); this node yields and stops gossiping: give each node its own --name",
                winner_address
                    .as_ref()
                    .map(|a| format!(", at {a}"))
                    .unwrap_or_default()
            ),
            EventKind::Forgotten => {
                format!("{member} forgotten (gone longer than gossip.dead_retention)")
            }
            EventKind::DisplacedOlder {
                older_generation,
                older_address,
            } => format!(
                "another process still gossips as {member} from {older_address} (generation {older_generation}); it is told to yield its name to this node. If it is not an earlier run of this node, two nodes share one name: give each its own --name"
            ),
        }
    }
}
