//! Cluster membership: SWIM gossip with Lifeguard and phi accrual.
//!
//! - [`wire`]: the packet format and its checked decoding.
//! - [`swim`]: the protocol state machine, sans-IO (bytes and times in, datagrams and events
//!   out).
//! - [`phi`]: the phi accrual detector behind the "degraded" flag.
//! - [`rng`]: the seeded generator the core owns.
//! - [`service`]: the UDP edge: socket, fault layer, metadata, snapshots ([`Cluster`]).
//! - [`view`]: the membership types observers read ([`ClusterSnapshot`]).
//!
//! What phi does to the verdict: nothing on its own. SWIM's probes, indirect probes and
//! suspicion timeouts alone decide that a member is suspect or dead. A member whose φ
//! reaches `gossip.phi_threshold` is marked *degraded* (shown to operators), is probed at the
//! next probe period ahead of the round-robin order, and is not asked to probe others
//! indirectly. A degraded member that answers that probe gets a fresh arrival and its φ
//! falls back; one that does not is suspected by the normal rules. Phi is measured against
//! the cadence probing alone gives (see [`phi`]), so it flags a member SWIM keeps alive
//! through relays while it answers this node nothing directly, not one SWIM's own probe is
//! about to check in its turn.

pub mod phi;
pub mod rng;
pub mod service;
pub mod swim;
pub mod view;
pub mod wire;

pub use service::{
    Cluster, ClusterError, ClusterSource, FaultRules, default_host_name, default_node_name,
};
pub use view::{ClusterEvent, ClusterSnapshot, MemberCounts, MemberInfo, MemberLoad};

pub use swim::{
    EventKind, GossipStats, JoinPending, LocalStatus, MemberEvent, MemberState, MemberView, Output,
    Swim, SwimConfig,
};
pub use wire::{Claim, MemberId, MemberMeta, Message, Name, Packet, PacketError, Update};
