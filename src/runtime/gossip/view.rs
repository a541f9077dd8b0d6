//! What observers see of cluster membership: the types `NodeSnapshot::cluster`,
//! `goliath members` and the console's Cluster tab read, locally or over the wire. Times are
//! Unix microseconds.

use serde::{Deserialize, Serialize};

use super::swim::{EventKind, GossipStats, LocalStatus, MemberState};
use crate::runtime::units::ShortDuration;

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

impl ClusterSnapshot {
    /// A member's φ as views show it: none while the member is down (see
    /// [`MemberInfo::current_phi`]), and none from a node that has left or yielded its name,
    /// which no longer probes, so its members' silence grows without meaning anything (a
    /// healthy member showed φ 999 there).
    pub fn phi_of(&self, member: &MemberInfo) -> Option<f64> {
        match self.status {
            LocalStatus::Leaving | LocalStatus::Yielded => None,
            LocalStatus::Joining | LocalStatus::Active => member.current_phi(),
        }
    }
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

    /// Whether it said its arena is full: up, but refusing every task it is sent.
    pub fn arena_full(&self) -> bool {
        self.current_load().is_some_and(|load| load.arena_free == 0)
    }

    /// Its load as tables show it: `full` when it refuses every task (its arena is full,
    /// whatever its load), `-` when it is not up.
    pub fn load_shown(&self, decimals: usize) -> String {
        match self.current_load() {
            None => "-".to_string(),
            Some(_) if self.arena_full() => "full".to_string(),
            Some(load) => format!("{:.decimals$}", load.load),
        }
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

/// How a restart's two runs relate, in words. A generation is its run's start in µs since
/// 1970 (raised above the last start's when the clock went back), so the difference of two
/// is how long after the old run the new one started; generations that differ by less than a
/// millisecond or more than a year are not such times and are named as they are.
fn between_runs(previous: u64, generation: u64) -> String {
    const YEAR_US: u64 = 365 * 86_400 * 1_000_000;
    match generation.checked_sub(previous) {
        Some(after_us @ 1_000..YEAR_US) => format!(
            "its new run started {} after the start of the one it replaced",
            ShortDuration(std::time::Duration::from_micros(after_us))
        ),
        _ => format!("generation {previous} replaced by {generation}"),
    }
}

/// How a refutation answered: at its new incarnation, or (at incarnation 0) with a new
/// generation, the claim having been made at the last incarnation there is.
fn refuted_at(incarnation: u32, generation: u64) -> String {
    if incarnation == 0 {
        format!(
            "with a new generation, {generation}: the claim was made at the last incarnation there is, {}, which only a new generation outranks; forged or corrupted, since no member counts that far",
            u32::MAX
        )
    } else {
        format!("incarnation {incarnation}")
    }
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
            (
                EventKind::Refuted {
                    incarnation,
                    declared_dead: true,
                },
                Some(by),
            ) => format!(
                "this node had been declared dead ({by} said so) and refuted it ({}): a member had not heard from it for too long",
                refuted_at(*incarnation, generation)
            ),
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
                "{member} restarted ({})",
                between_runs(*previous_generation, generation)
            ),
            EventKind::Restarted {
                previous_generation,
                moved_from: Some(old),
            } => format!(
                "{member} restarted at another address ({}; the one replaced was at {old}, and alive); if that earlier process still runs, two nodes were given one name",
                between_runs(*previous_generation, generation)
            ),
            EventKind::Degraded { phi } => {
                format!("{member} is degraded (phi {phi:.1}: unusually long silence)")
            }
            EventKind::Recovered => format!("{member} recovered (phi back under the threshold)"),
            EventKind::Refuted {
                incarnation,
                declared_dead: false,
            } => format!(
                "this node was suspected and refuted it ({})",
                refuted_at(*incarnation, generation)
            ),
            EventKind::Refuted {
                incarnation,
                declared_dead: true,
            } => format!(
                "this node had been declared dead and refuted it ({}): a member had not heard from it for too long",
                refuted_at(*incarnation, generation)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn restart(previous_generation: u64, moved_from: Option<&str>) -> EventKind {
        EventKind::Restarted {
            previous_generation,
            moved_from: moved_from.map(String::from),
        }
    }

    #[test]
    fn a_restart_says_how_long_after_the_old_run_the_new_one_started() {
        // Generations are start times in µs: 3 min 29 s apart.
        let old = 1_796_288_348_925_590;
        let new = old + 209_000_000;
        assert_eq!(
            ClusterEvent::describe("beta", new, &restart(old, None)),
            "beta restarted (its new run started 3m29s after the start of the one it replaced)"
        );
        let moved = ClusterEvent::describe("beta", new, &restart(old, Some("10.0.0.7:7421")));
        assert!(
            moved.starts_with(
                "beta restarted at another address (its new run started 3m29s after the start of the one it replaced; the one replaced was at 10.0.0.7:7421, and alive)"
            ),
            "{moved}"
        );
        // A generation raised by one above a start from a clock that went back is no time.
        assert_eq!(
            ClusterEvent::describe("beta", old + 1, &restart(old, None)),
            format!("beta restarted (generation {old} replaced by {})", old + 1)
        );
    }

    #[test]
    fn a_refutation_by_a_new_generation_says_why_it_took_one() {
        let refuted = |incarnation| EventKind::Refuted {
            incarnation,
            declared_dead: true,
        };
        assert!(
            ClusterEvent::describe("me", 7, &refuted(3)).contains("refuted it (incarnation 3)")
        );
        let renewed = ClusterEvent::describe("me", 8, &refuted(0));
        assert!(
            renewed.contains("with a new generation, 8")
                && renewed.contains("last incarnation there is, 4294967295"),
            "{renewed}"
        );
    }
}
