//! The SWIM state machine with Lifeguard and phi accrual, sans-IO.
//!
//! [`Swim`] takes received datagrams ([`Swim::handle_packet`]), the passing of time
//! ([`Swim::handle_timeout`] at [`Swim::poll_timeout`]) and commands (join, leave, new
//! metadata), and accumulates [`Output`]s — datagrams to send and membership events — that the
//! caller drains with [`Swim::drain_outputs`]. Time is a `u64` of microseconds on any
//! monotonic scale the caller picks; randomness comes from a seeded generator the core owns.
//! Nothing here touches a socket, a clock or a thread, which is what lets the simulator run a
//! thousand of these in virtual time and tests drive one by hand.
//!
//! The protocol, in order of a probe period:
//! - **Probe**: every `probe_interval × (1 + local health)` the next member of a shuffled
//!   round-robin order (members that phi marks degraded first) gets a `Ping`. No `Ack` within
//!   `probe_timeout × (1 + local health)`: `k` other members get a `PingReq` and probe it
//!   for us (forwarding the ack, or a `Nack` when they got none), and we ping it once more.
//!   No ack by the end of the period: we suspect it.
//! - **Suspicion** (Lifeguard): a suspect is declared dead after a timeout that starts at
//!   `suspicion_max_mult × min` and shrinks towards `min = suspicion_mult × max(2, log10 n) ×
//!   probe_interval` as independent accusers confirm it (log-scaled, `k` confirmations
//!   reach the minimum). A member that hears it is suspected refutes by raising its
//!   incarnation.
//! - **Local health** (Lifeguard): failed probes without the expected nacks, and having to
//!   refute, raise a score (0 to `awareness_max`); successful probes lower it. The score
//!   stretches our probe period and timeouts, so a slow node slows its own verdicts. A
//!   helper's missing nack counts only if the helper was heard from after it was asked, or
//!   if nobody was: helpers that crashed with the member probed say nothing about us (when
//!   10 of 15 members crashed at once, counting them stretched the survivors' verdicts 9×
//!   and the last crash took 79 s to be declared dead; now 9 s).
//! - **Dissemination**: updates ride on every packet and on `Gossip` packets sent to
//!   `gossip_fanout` random members every `gossip_interval`; each is sent at most
//!   `⌈retransmit_mult × log10(n + 2)⌉` times, fewest-sent first, in a bounded queue.
//! - **State exchange**: every `sync_interval × max(1, n / 32)` a random member (dead ones
//!   included, so partitions heal) gets our whole table in `Sync` packets and answers with
//!   its own. Dead entries received this way count as suspicions, so a live member can
//!   refute instead of being declared dead by stale news.
//! - **Joining**: a new member sends its entry to the seeds until one answers, takes the
//!   seed's table without spreading it (those members are news to it alone), and 20 ms
//!   later `Announce`s itself (with its metadata) directly to every member it learned. Each
//!   answers with an `Ack`; members that sent nothing back are announced to again one and
//!   two seconds later. When the table it got was incomplete (it spans many datagrams;
//!   `Sync` says how many entries), it exchanges tables with random members 2, 10 and 30 s
//!   later.
//! - **Hello**: a member that hears of a new member (a join or a restart) from a third party
//!   sends it its own entry directly: the newcomer's seed may not have known it.
//! - **Repairs**: a member that gets a packet from a member it does not know (which knew
//!   it) has a gap in its table, likely more than one, and exchanges tables with a random
//!   member a second later (at most one such exchange per 10 s). Every ack carries the
//!   number of live members its sender lists: when every ack for 5 s lists more than we
//!   do, members we never heard of exist and nothing will gossip them to us (a quiet
//!   cluster), so we exchange tables with that ack's sender (within the same limit of one
//!   repair per 10 s) and then hello the members we learn. A suspicion that expires
//!   without full confirmation is not enough to declare a member dead: we probe it
//!   ourselves first (direct, indirect, direct again) and declare it dead only if that
//!   fails too (these last checks go before any other probe, and a verdict whose check has
//!   not run yet waits for it, up to four more probe periods); if it answers, we tell it it
//!   is suspected (it refutes) and wait a whole suspicion again. A member that hears of a
//!   fresh suspicion probes the suspect at once with probability 8/n (so a real crash is
//!   confirmed within a period); every eighth probe period pings one member held dead (a
//!   live one answers and is taken back, or refutes).
//! - **Identity**: a member is a name plus a generation. A higher generation of a known name
//!   replaces the old one (a restart). Two live processes with one name: the newer
//!   generation wins, the older yields and says why ([`EventKind::NameConflict`]).
//! - **Phi accrual**: every packet received from a member is an arrival for its phi
//!   detector, measured against the cadence of probing in a cluster of the current size
//!   ([`Cadence`]). Phi never suspects or kills anyone; φ ≥ `phi_threshold` marks a member
//!   degraded, which probes it next (ahead of the round-robin order) and keeps it out of
//!   indirect probing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::phi::{Cadence, PhiSettings, PhiWindow};
use super::rng::SeededRng;
use super::wire::{
    self, Claim, MemberId, MemberMeta, Message, Name, PacketError, PacketHead, Update,
};
#[cfg(test)]
use super::wire::{Packet, WIRE_VERSION};

/// Settings of the core (from `[gossip]` in the config, or the simulator).
#[derive(Debug, Clone, PartialEq)]
pub struct SwimConfig {
    /// Cluster name; packets of other clusters are dropped.
    pub cluster: String,
    /// Time between probes.
    pub probe_interval: Duration,
    /// Time to wait for a direct ack before asking others.
    pub probe_timeout: Duration,
    /// Members asked to probe indirectly (`k`).
    pub indirect_probes: usize,
    /// Minimum suspicion = this × max(2, log10 n) × probe_interval.
    pub suspicion_mult: f64,
    /// Maximum suspicion (no confirmations) = this × the minimum.
    pub suspicion_max_mult: f64,
    /// Time between gossip rounds.
    pub gossip_interval: Duration,
    /// Members gossiped to per round.
    pub gossip_fanout: usize,
    /// Each update is sent at most this × ⌈log10(n + 1)⌉ times.
    pub retransmit_mult: u32,
    /// Base time between state exchanges (scaled up by n / 32).
    pub sync_interval: Duration,
    /// Largest datagram sent or accepted.
    pub max_packet: usize,
    /// Members remembered at most (dead ones are forgotten first).
    pub max_members: usize,
    /// Updates waiting for dissemination at most.
    pub max_queue: usize,
    /// Local health score cap.
    pub awareness_max: u32,
    /// Phi detector settings.
    pub phi: PhiSettings,
    /// φ at or above which a member is degraded.
    pub phi_threshold: f64,
    /// Dead and left members are forgotten after this long.
    pub dead_retention: Duration,
    /// First retry of a join that got no answer (doubling up to 30 s).
    pub join_retry: Duration,
}

impl Default for SwimConfig {
    fn default() -> Self {
        Self {
            cluster: "goliath".into(),
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(200),
            indirect_probes: 3,
            suspicion_mult: 0.7,
            suspicion_max_mult: 6.0,
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            retransmit_mult: 3,
            sync_interval: Duration::from_secs(60),
            max_packet: 1400,
            max_members: 4096,
            max_queue: 1024,
            awareness_max: 8,
            phi: PhiSettings::default(),
            phi_threshold: 8.0,
            dead_retention: Duration::from_secs(3600),
            join_retry: Duration::from_secs(1),
        }
    }
}

/// A join that no seed has answered yet (see [`Swim::join_pending`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPending {
    /// The seeds' gossip addresses.
    pub seeds: Vec<SocketAddr>,
    /// Join datagrams sent to them so far (each attempt goes to every seed).
    pub attempts: u32,
    /// The wait before the next attempt, µs.
    pub retry_us: u64,
}

/// A member's state as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Answering.
    Alive,
    /// Failed a probe; will be declared dead unless it refutes.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left on purpose.
    Left,
}

impl MemberState {
    /// Whether it counts as a member now (alive or suspect).
    pub fn is_up(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        })
    }
}

/// What happened to a member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A member we did not know is alive.
    Joined,
    /// A member is suspected of failure.
    Suspected {
        /// Who suspected it first.
        by: String,
    },
    /// A suspected or dead member refuted and is alive again.
    Alive,
    /// A member was declared failed.
    Failed,
    /// A member left on purpose.
    Left,
    /// A member restarted: a new generation replaced the old.
    Restarted {
        /// The generation it replaced.
        previous_generation: u64,
        /// Where the old generation was, when it was up and the new one is elsewhere: a
        /// restart on another port, or a second process given the member's name.
        moved_from: Option<String>,
    },
    /// Phi crossed the threshold.
    Degraded {
        /// φ at the time.
        phi: f64,
    },
    /// Phi fell back under the threshold.
    Recovered,
    /// This node was suspected or declared dead by another and refuted it.
    Refuted {
        /// The incarnation it moved to; 0 when the claim was made at `u32::MAX` and the
        /// node took the next generation of its name instead (the event's member names it).
        incarnation: u32,
        /// Whether it had been declared dead (else only suspected).
        declared_dead: bool,
    },
    /// This node's own process did not run for a while (stopped, or starved of CPU): the
    /// silence of others it saw meanwhile is not held against them.
    Paused {
        /// For how long, µs.
        micros: u64,
    },
    /// Another process uses this node's name with a newer generation: this node yields and
    /// stops gossiping.
    NameConflict {
        /// The winner's generation.
        winner_generation: u64,
        /// Where the winner is.
        winner_address: Option<String>,
    },
    /// Forgotten after `dead_retention`.
    Forgotten,
    /// An older process still gossips under this node's name (two nodes were given one name,
    /// or an earlier run of this one has not stopped): it is told to yield to this one.
    DisplacedOlder {
        /// The older process's generation.
        older_generation: u64,
        /// Where it sends from.
        older_address: String,
    },
}

/// A membership event: when, who, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberEvent {
    /// Core time, µs.
    pub at_us: u64,
    /// The member.
    pub member: MemberId,
    /// What happened.
    pub kind: EventKind,
    /// For a failure this node learned from another member's packet rather than concluded
    /// itself (its own probe and suspicion timeout): that member.
    pub told_by: Option<Name>,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this datagram.
    Send {
        /// Where.
        to: SocketAddr,
        /// What.
        bytes: Vec<u8>,
    },
    /// Report this event.
    Event(MemberEvent),
}

/// Counters of the core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipStats {
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Bytes sent (UDP payload).
    pub bytes_sent: u64,
    /// Datagrams received and accepted.
    pub packets_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Datagrams dropped as malformed (not decodable, bad field).
    pub malformed: u64,
    /// Datagrams dropped as longer than `gossip.max_packet`.
    pub oversized: u64,
    /// Datagrams dropped as another cluster's or another version's.
    pub foreign: u64,
    /// Datagrams dropped from an older generation of a known member, or sent as this node
    /// itself (its own packets sent back to it).
    pub stale: u64,
    /// Probes dropped as meant for a member of another name (a member holds another node at
    /// this node's address).
    pub misdirected: u64,
    /// Members not added because the table was full of live members.
    pub table_full: u64,
    /// Updates dropped because the dissemination queue was full.
    pub queue_dropped: u64,
    /// Probes sent.
    pub probes: u64,
    /// Probes that ended in a suspicion.
    pub probe_failures: u64,
    /// Times this node refuted a suspicion of itself.
    pub refutations: u64,
    /// State exchanges started because peers' acks listed more live members than we do.
    pub gap_exchanges: u64,
}

/// This node's own standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalStatus {
    /// Started with seeds to join through; has not heard from any other member yet.
    Joining,
    /// In the cluster.
    Active,
    /// Leaving: telling the others, no longer probing.
    Leaving,
    /// Yielded its name to a newer generation.
    Yielded,
}

/// A member as this node sees it (for views and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// Who.
    pub id: MemberId,
    /// Its state.
    pub state: MemberState,
    /// Its incarnation.
    pub incarnation: u32,
    /// Its gossip address, when known.
    pub address: Option<SocketAddr>,
    /// Its metadata, when known.
    pub meta: Option<MemberMeta>,
    /// φ now.
    pub phi: f64,
    /// φ ≥ threshold.
    pub degraded: bool,
    /// When a packet from it last arrived (core µs).
    pub last_heard_us: Option<u64>,
    /// Since when it is in its state (core µs).
    pub since_us: u64,
    /// Whether this is the local node.
    pub local: bool,
}

#[derive(Debug, Clone)]
struct Suspicion {
    started_us: u64,
    accusers: Vec<Name>,
    deadline_us: u64,
    last_chance: bool,
    /// A probe of ours (direct, indirect, direct again) failed after the suspicion expired
    /// unconfirmed: the last check, or a probe already under way when it expired.
    last_probe_failed: bool,
    /// Times the verdict waited because the last-chance probe had not run yet.
    deferrals: u8,
}

/// Times a verdict waits (a probe period and a probe timeout each) for a last-chance probe
/// still queued behind others, before it is given without one.
const MAX_VERDICT_DEFERRALS: u8 = 4;

/// A member's place in the table.
type Slot = u32;

/// Where an update comes from.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    /// Our own conclusion (a probe, a timer, a member's own packet header).
    Own,
    /// Piggybacked on a packet from this member.
    Packet(&'a Name),
    /// An entry of this member's table (state exchange or join).
    Table(&'a Name),
}

/// A member as it was when the reference was taken: a slot's epoch changes whenever the slot
/// is emptied, reused or takes a new generation, so a stale reference (in a timer, the
/// priority probe list, the dead list) is recognised instead of acting on another member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SlotRef {
    slot: Slot,
    epoch: u32,
}

/// One member, laid out by cache line: the name (what a lookup compares), then what every
/// packet about the member reads or writes, then its phi detector, then what is rarely
/// touched. Dense in the table, so a cluster of a thousand tables stays compact.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct Member {
    /// Whether the slot holds a member (a vacant slot keeps its last member's bytes).
    /// First, beside the name: a lookup checks both on one cache line.
    present: bool,
    state: MemberState,
    degraded: bool,
    incarnation: u32,
    id: MemberId,
    address: Option<SocketAddr>,
    since_us: u64,
    last_hint_us: u64,
    phi: PhiWindow,
    meta: Option<Box<MemberMeta>>,
    suspicion: Option<Box<Suspicion>>,
}

const NO_SLOT: u32 = u32::MAX;

/// How much later than this node's own clock a member's generation (its start time) may
/// be: clocks of members differ by far less than a day.
const GENERATION_SKEW_US: u64 = 86_400_000_000;

/// An entry of the table's index: a slot and the high half of its name's hash, so that
/// probing past other names compares 4 bytes in the index instead of reading each member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexEntry {
    slot: Slot,
    tag: u32,
}

const EMPTY_ENTRY: IndexEntry = IndexEntry {
    slot: NO_SLOT,
    tag: 0,
};

fn hash_tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// The member table: members in a dense vector, found by name through an open-addressing
/// index of slot numbers (4 bytes per entry, linear probing). A lookup reads one index line
/// and the member itself, whose name is stored inline; nothing is allocated per packet.
/// Names come from cluster members and the table is bounded (`gossip.max_members`), so
/// colliding names can slow lookups but not grow memory.
#[derive(Debug, Default)]
struct Table {
    /// Members by slot; vacant ones have `present == false`.
    slots: Vec<Member>,
    /// Per slot: changes whenever the slot is emptied, reused or takes a new generation.
    epochs: Vec<u32>,
    vacant: Vec<Slot>,
    index: Vec<IndexEntry>,
    len: usize,
}

/// FNV-1a over the name's bytes, then mixed so that similar short names spread over the index.
fn name_hash(name: &Name) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 32;
    hash = hash.wrapping_mul(0xd6e8_feb8_6659_fd93);
    hash ^ (hash >> 32)
}

impl Table {
    fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.index.len().wrapping_sub(1)
    }

    fn find(&self, name: &Name) -> Option<Slot> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.mask();
        let hash = name_hash(name);
        let tag = hash_tag(hash);
        let mut at = hash as usize & mask;
        loop {
            let entry = self.index[at];
            if entry.slot == NO_SLOT {
                return None;
            }
            if entry.tag == tag && self.get(entry.slot).is_some_and(|m| m.id.name == *name) {
                return Some(entry.slot);
            }
            at = (at + 1) & mask;
        }
    }

    fn get(&self, slot: Slot) -> Option<&Member> {
        self.slots.get(slot as usize).filter(|m| m.present)
    }

    fn get_mut(&mut self, slot: Slot) -> Option<&mut Member> {
        self.slots.get_mut(slot as usize).filter(|m| m.present)
    }

    fn slot_ref(&self, slot: Slot) -> SlotRef {
        SlotRef {
            slot,
            epoch: self.epochs.get(slot as usize).copied().unwrap_or(0),
        }
    }

    fn resolve(&self, at: SlotRef) -> Option<&Member> {
        if self.epochs.get(at.slot as usize) != Some(&at.epoch) {
            return None;
        }
        self.get(at.slot)
    }

    /// Puts a new identity in `slot` (a restart): references to the old one go stale.
    fn replace(&mut self, slot: Slot, member: Member) {
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = member;
            entry.present = true;
            self.epochs[slot as usize] = self.epochs[slot as usize].wrapping_add(1);
        }
    }

    /// Adds a member whose name is not in the table; returns its slot.
    fn insert(&mut self, member: Member) -> Slot {
        if (self.len + 1) * 2 > self.index.len() {
            self.grow_index();
        }
        let name = member.id.name;
        let slot = match self.vacant.pop() {
            Some(slot) => {
                self.slots[slot as usize] = member;
                self.slots[slot as usize].present = true;
                self.epochs[slot as usize] = self.epochs[slot as usize].wrapping_add(1);
                slot
            }
            None => {
                self.slots.push(member);
                if let Some(last) = self.slots.last_mut() {
                    last.present = true;
                }
                self.epochs.push(0);
                (self.slots.len() - 1) as Slot
            }
        };
        self.len += 1;
        self.place(&name, slot);
        slot
    }

    fn place(&mut self, name: &Name, slot: Slot) {
        let mask = self.mask();
        let hash = name_hash(name);
        let mut at = hash as usize & mask;
        while self.index[at].slot != NO_SLOT {
            at = (at + 1) & mask;
        }
        self.index[at] = IndexEntry {
            slot,
            tag: hash_tag(hash),
        };
    }

    fn grow_index(&mut self) {
        let size = (self.index.len() * 2).max(16);
        self.index = vec![EMPTY_ENTRY; size];
        for slot in 0..self.slots.len() {
            if let Some(name) = self.get(slot as Slot).map(|m| m.id.name) {
                self.place(&name, slot as Slot);
            }
        }
    }

    /// Empties `slot`; returns the member it held.
    fn remove(&mut self, slot: Slot) -> Option<Member> {
        let name = self.get(slot)?.id.name;
        let mask = self.mask();
        let mut at = name_hash(&name) as usize & mask;
        while self.index[at].slot != slot {
            if self.index[at].slot == NO_SLOT {
                return None;
            }
            at = (at + 1) & mask;
        }
        // Backward-shift deletion: later entries of the probe run move up when their home
        // position allows, so no tombstones are needed.
        let mut hole = at;
        let mut next = at;
        loop {
            next = (next + 1) & mask;
            let moved = self.index[next];
            if moved.slot == NO_SLOT {
                break;
            }
            let home = self
                .get(moved.slot)
                .map_or(next, |m| name_hash(&m.id.name) as usize & mask);
            let stays = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !stays {
                self.index[hole] = moved;
                hole = next;
            }
        }
        self.index[hole] = EMPTY_ENTRY;
        self.epochs[slot as usize] = self.epochs[slot as usize].wrapping_add(1);
        self.vacant.push(slot);
        self.len -= 1;
        let member = &mut self.slots[slot as usize];
        member.present = false;
        // The slot keeps the bytes; what it owns on the heap goes now.
        Some(Member {
            present: true,
            phi: std::mem::take(&mut member.phi),
            meta: member.meta.take(),
            suspicion: member.suspicion.take(),
            ..*member
        })
    }

    fn iter(&self) -> impl Iterator<Item = (Slot, &Member)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, member)| member.present)
            .map(|(slot, member)| (slot as Slot, member))
    }
}

#[derive(Debug, Clone)]
struct Probe {
    seq: u32,
    target: SlotRef,
    /// The target's name: only its ack answers the probe.
    target_name: Name,
    address: SocketAddr,
    acked: bool,
    /// When the helpers were asked (0: not yet).
    asked_us: u64,
}

/// A member asked to probe our target indirectly.
#[derive(Debug, Clone, Copy)]
struct Helper {
    address: SocketAddr,
    member: SlotRef,
    /// It sent a nack (a forwarded ack ends the probe itself).
    answered: bool,
}

#[derive(Debug, Clone, Copy)]
struct Relay {
    seq: u32,
    origin: SocketAddr,
    origin_seq: u32,
    /// The member probed for the origin: only its ack is forwarded.
    target: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Probe,
    AckTimeout { seq: u32 },
    Gossip,
    Sync,
    Suspicion { target: SlotRef, incarnation: u32 },
    Relay { seq: u32 },
    JoinRetry,
    JoinSync,
    SeedCheck,
    Reannounce { round: u8 },
    Repair,
    Reap,
}

/// One probe period in this many also pings a random dead member (see `reconnect`).
const RECONNECT_EVERY: usize = 8;
/// Members expected to probe a fresh suspect at once (see `apply`).
const PROMPT_PROBERS: f64 = 8.0;
/// Most indirect probes relayed for others at once.
const MAX_RELAYS: usize = 256;
/// Members whose phi is re-evaluated per probe period.
const PHI_SCAN: usize = 16;
/// How late past its earliest due timer the core may be called before that is taken for a
/// pause of this process, µs.
const LOCAL_PAUSE_US: u64 = 1_000_000;
/// Members (of those that held it dead and heard of its return from others) that tell a
/// member back from the dead that it had been declared dead, on average.
const DEAD_NOTICE_TELLERS: usize = 4;
/// Least time between two "you are suspected/dead" hints to one member, µs.
const HINT_INTERVAL_US: u64 = 1_000_000;
/// Time between sweeps for forgotten members, µs.
const REAP_INTERVAL_US: u64 = 10_000_000;
/// Unit of the follow-up state exchanges after a join, µs.
const JOIN_SYNC_US: u64 = 1_000_000;
/// Least time between two repair exchanges, µs (see `repair_soon`).
const REPAIR_INTERVAL_US: u64 = 10_000_000;
/// Wait from a sign of a gap to the repair exchange, µs (lets a burst of signs coalesce).
const REPAIR_DELAY_US: u64 = 1_000_000;
/// How long every ack must list more live members than we do before we exchange tables
/// with its sender, µs: longer than members disagree while news of a crash or a join
/// spreads, so churn alone does not start exchanges.
const GAP_CONFIRM_US: u64 = 5_000_000;
/// Wait from a seed's first answer to our announcement, µs.
const ANNOUNCE_DELAY_US: u64 = 20_000;
/// Time between announcement rounds after a join, µs.
const ANNOUNCE_RETRY_US: u64 = 1_000_000;
/// Announcement rounds after a join at most.
const ANNOUNCE_ROUNDS: u8 = 3;
/// Longest wait between join attempts, µs.
const MAX_JOIN_RETRY_US: u64 = 30_000_000;
/// How often an active member looks for seeds it no longer knows, µs (see
/// `Timer::SeedCheck`).
const SEED_CHECK_US: u64 = 60_000_000;
/// The longest wait between joins sent to one seed that stays unknown, µs.
const MAX_SEED_REJOIN_US: u64 = 300_000_000;
/// Datagram buffers kept for reuse at most (see [`Swim::recycle`]).
const SPARE_BUFFERS: usize = 32;
/// The dissemination queue's key for this node's own updates.
const SELF_KEY: u32 = u32::MAX;

/// An alive update as relayed in an epidemic wave about a join, restart or refutation:
/// without metadata (the member announces its metadata directly; only metadata changes
/// spread with it).
fn without_meta(mut update: Update) -> Update {
    if let Claim::Alive { meta, .. } = &mut update.claim {
        *meta = None;
    }
    update
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A seed this node joins through, and when it may send it a join again while the seed is
/// unknown to its table (see `Timer::SeedCheck`).
#[derive(Debug, Clone, Copy)]
struct Seed {
    address: SocketAddr,
    /// When a join may next be sent, µs (0: whenever the check finds it unknown).
    rejoin_at_us: u64,
    /// The wait after that join, µs; doubles while the seed stays unknown.
    rejoin_wait_us: u64,
}

/// The SWIM core of one node.
#[derive(Debug)]
pub struct Swim {
    config: SwimConfig,
    tag: [u8; 4],
    me: MemberId,
    incarnation: u32,
    /// The incarnation the last suspicion refuted, while no death at it has been heard: a
    /// paused node hears the suspicion and the death that followed it at once, and the death
    /// (at that old incarnation, so no longer to refute) must still be told.
    refuted_suspicion: Option<u32>,
    address: SocketAddr,
    meta: MemberMeta,
    status: LocalStatus,
    table: Table,
    /// Slots in SWIM's shuffled round-robin probe order.
    probe_order: Vec<Slot>,
    probe_cursor: usize,
    phi_cursor: usize,
    /// Members to probe at the next periods, ahead of the round robin (degraded by phi, or
    /// freshly suspected).
    probe_first: Vec<SlotRef>,
    /// Suspects whose suspicion expired unconfirmed, awaiting our own last check: probed
    /// before anything else, oldest first (each member at most once, so no longer than the
    /// member table).
    last_checks: std::collections::VecDeque<SlotRef>,
    /// Members that went dead (checked and pruned lazily), for reconnect pings.
    dead: Vec<SlotRef>,
    probe: Option<Probe>,
    next_seq: u32,
    relays: Vec<Relay>,
    queue: Dissemination,
    timers: BinaryHeap<Reverse<(u64, u64, Timer)>>,
    timer_order: u64,
    rng: SeededRng,
    seeds: Vec<Seed>,
    join_retry_us: u64,
    /// Join attempts sent to the seeds so far.
    join_attempts: u32,
    awareness: u32,
    stats: GossipStats,
    out: Vec<Output>,
    up_count: usize,
    seed_answered: bool,
    /// When an older process of this node's name was last told of this one, µs.
    older_self_told_us: u64,
    /// Generation of the older process of this name last reported by
    /// [`EventKind::DisplacedOlder`] (0: none yet).
    older_self_reported: u64,
    /// The last table answer: who sent it, its size, entries received so far.
    sync_tally: Option<(SocketAddr, u32, u32)>,
    /// Spare datagram buffers (see [`Swim::recycle`]).
    buffers: Vec<Vec<u8>>,
    /// Decoded updates of the packet being handled (reused).
    incoming: Vec<Update>,
    /// Addresses picked for indirect probes or gossip (reused).
    picked: Vec<SocketAddr>,
    /// The slots of `picked`, in the same order.
    picked_slots: Vec<Slot>,
    /// The helpers of the current probe.
    helpers: Vec<Helper>,
    /// The latest time any member was heard from directly, µs.
    last_arrival_us: u64,
    /// The encoded start of our packet headers (see [`wire::encode_head_prefix`]) and the
    /// incarnation it was encoded at: copied into each packet instead of encoded again.
    head_prefix: Vec<u8>,
    head_prefix_incarnation: Option<u32>,
    /// The latest time the caller gave us, µs.
    now_us: u64,
    /// Whether a gossip tick is scheduled (ticks stop while there is nothing to spread).
    gossip_armed: bool,
    /// The next gossip tick, or where the ticks would be had they not stopped.
    gossip_next_us: u64,
    /// No member is down since before this (a lower bound), so reaping can wait.
    earliest_down_us: Option<u64>,
    /// A repair exchange is scheduled (see `repair_soon`).
    repair_pending: bool,
    /// When the last repair exchange went out (a gap exchange counts as one).
    last_repair_us: Option<u64>,
    /// Since when every ack we got listed more live members than we do (see `count_gap`).
    behind_since_us: Option<u64>,
    /// When our announcement after joining began (see `announce`).
    announced_us: Option<u64>,
    /// Until then we are a fresh joiner: members we learn from tables are news only to us.
    joined_until_us: u64,
    /// Set while applying a table of a fresh joiner (see `insert_member`).
    learning_quietly: bool,
}

impl Swim {
    /// A core for the member `me`, reachable at `address`, at time `now_us`. It probes and
    /// gossips from the start; call [`Swim::join`] to contact seeds.
    pub fn new(
        config: SwimConfig,
        me: MemberId,
        address: SocketAddr,
        meta: MemberMeta,
        seed: u64,
        now_us: u64,
    ) -> Swim {
        let tag = wire::cluster_tag(&config.cluster);
        let mut swim = Swim {
            config,
            tag,
            me,
            incarnation: 0,
            refuted_suspicion: None,
            address,
            meta,
            status: LocalStatus::Joining,
            table: Table::default(),
            probe_order: Vec::new(),
            probe_cursor: 0,
            phi_cursor: 0,
            probe_first: Vec::new(),
            last_checks: std::collections::VecDeque::new(),
            dead: Vec::new(),
            probe: None,
            next_seq: 1,
            relays: Vec::new(),
            queue: Dissemination::default(),
            timers: BinaryHeap::new(),
            timer_order: 0,
            rng: SeededRng::new(seed),
            seeds: Vec::new(),
            join_retry_us: 0,
            join_attempts: 0,
            awareness: 0,
            stats: GossipStats::default(),
            out: Vec::new(),
            up_count: 0,
            seed_answered: false,
            older_self_told_us: 0,
            older_self_reported: 0,
            sync_tally: None,
            buffers: Vec::new(),
            incoming: Vec::new(),
            picked: Vec::new(),
            picked_slots: Vec::new(),
            helpers: Vec::new(),
            last_arrival_us: 0,
            head_prefix: Vec::new(),
            head_prefix_incarnation: None,
            now_us,
            gossip_armed: true,
            gossip_next_us: now_us,
            earliest_down_us: None,
            repair_pending: false,
            last_repair_us: None,
            behind_since_us: None,
            announced_us: None,
            joined_until_us: 0,
            learning_quietly: false,
        };
        let jitter = swim
            .rng
            .below(micros(swim.config.probe_interval).max(1) as usize) as u64;
        swim.schedule(now_us + jitter, Timer::Probe);
        let jitter = swim
            .rng
            .below(micros(swim.config.gossip_interval).max(1) as usize) as u64;
        swim.gossip_next_us = now_us + jitter;
        swim.schedule(now_us + jitter, Timer::Gossip);
        let sync = micros(swim.config.sync_interval).max(1000);
        let jitter = swim.rng.below(sync as usize) as u64;
        swim.schedule(now_us + jitter, Timer::Sync);
        swim.schedule(now_us + REAP_INTERVAL_US, Timer::Reap);
        swim
    }

    /// This node's identity.
    pub fn id(&self) -> &MemberId {
        &self.me
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// This node's standing.
    pub fn status(&self) -> LocalStatus {
        self.status
    }

    /// Lifeguard's local health score (0 = healthy).
    pub fn awareness(&self) -> u32 {
        self.awareness
    }

    /// The counters.
    pub fn stats(&self) -> GossipStats {
        self.stats
    }

    /// The settings.
    pub fn config(&self) -> &SwimConfig {
        &self.config
    }

    /// Members other than this node that are alive or suspect.
    pub fn up_count(&self) -> usize {
        self.up_count
    }

    /// Contacts seeds (their gossip addresses) with our state and asks for theirs; retries
    /// with backoff until some member answers. Without seeds (other than this node's own
    /// address) the node founds its cluster and is active at once.
    pub fn join(&mut self, seeds: &[SocketAddr], now_us: u64) {
        self.now_us = self.now_us.max(now_us);
        self.seeds.clear();
        if self.status == LocalStatus::Joining {
            // The first member of its cluster unless a seed is given: others join it.
            self.status = LocalStatus::Active;
        }
        self.add_seeds(seeds, now_us);
    }

    /// Says that seeds are still being looked up: a node alone so far is joining, not the
    /// founder of a cluster of one (until a seed resolves and answers, or another member
    /// contacts it).
    pub fn await_seeds(&mut self) {
        if self.status == LocalStatus::Active && self.up_count == 0 && !self.seed_answered {
            self.status = LocalStatus::Joining;
        }
    }

    /// Adds seeds found after the start (a seed's host name that resolves only later): a
    /// join not yet answered by a seed starts over with them, from the first retry interval.
    /// Seeds already known, and this node's own address, are left out.
    pub fn add_seeds(&mut self, seeds: &[SocketAddr], now_us: u64) {
        self.now_us = self.now_us.max(now_us);
        // A node leaving, or one that gave way, joins nothing (a name resolved during the
        // leave must not announce it alive again).
        if !matches!(self.status, LocalStatus::Joining | LocalStatus::Active) {
            return;
        }
        let had_seeds = !self.seeds.is_empty();
        let mut added = false;
        for &address in seeds {
            if address != self.address && !self.seeds.iter().any(|s| s.address == address) {
                self.seeds.push(Seed {
                    address,
                    rejoin_at_us: 0,
                    rejoin_wait_us: SEED_CHECK_US,
                });
                added = true;
            }
        }
        if !added {
            return;
        }
        if !had_seeds {
            self.schedule(now_us + SEED_CHECK_US, Timer::SeedCheck);
        }
        if self.seed_answered {
            return;
        }
        if self.up_count == 0 && self.status == LocalStatus::Active {
            // Alone so far: joining, not a cluster of one.
            self.status = LocalStatus::Joining;
        }
        let pending = self.join_retry_us != 0;
        self.join_retry_us = micros(self.config.join_retry).max(1000);
        self.send_join();
        if !pending {
            self.schedule(now_us + self.join_retry_us, Timer::JoinRetry);
        }
    }

    /// Sends a join to each seed that this member's table does not hold (by address) alive,
    /// suspect or dead, when its wait is over; the wait doubles while the seed stays so, up
    /// to [`MAX_SEED_REJOIN_US`], and starts over once it is held again.
    ///
    /// Two sides of a partition that lasts longer than `dead_retention` forget each other,
    /// and nothing would ever bring them together again: the seeds a member joined through
    /// are how it finds the rest once more. A seed that left is joined the same way: a
    /// founder restarted gracefully has no seed of its own and hears from nobody (left
    /// members get no reconnect pings). A seed known as dead is left to the reconnect pings,
    /// so a crashed seed's restart does not draw a join (and a whole table in answer) from
    /// every member.
    fn check_seeds(&mut self, now_us: u64) {
        for index in 0..self.seeds.len() {
            let address = self.seeds[index].address;
            let known = self.table.iter().any(|(_, member)| {
                member.address == Some(address) && member.state != MemberState::Left
            });
            let seed = &mut self.seeds[index];
            if known {
                seed.rejoin_at_us = 0;
                seed.rejoin_wait_us = SEED_CHECK_US;
                continue;
            }
            if now_us < seed.rejoin_at_us {
                continue;
            }
            seed.rejoin_at_us = now_us + seed.rejoin_wait_us;
            seed.rejoin_wait_us = (seed.rejoin_wait_us * 2).min(MAX_SEED_REJOIN_US);
            self.send_join_to(address);
        }
    }

    /// A join that no seed has answered yet: the seeds and the attempts so far. `None`
    /// without seeds or once one has answered.
    pub fn join_pending(&self) -> Option<JoinPending> {
        (!self.seed_answered && !self.seeds.is_empty()).then(|| JoinPending {
            seeds: self.seeds.iter().map(|seed| seed.address).collect(),
            attempts: self.join_attempts,
            retry_us: self.join_retry_us,
        })
    }

    /// One join attempt: a join to every seed.
    fn send_join(&mut self) {
        self.join_attempts = self.join_attempts.saturating_add(1);
        for index in 0..self.seeds.len() {
            self.send_join_to(self.seeds[index].address);
        }
    }

    /// A join to `seed`: this node alone, asking for the seed's table in answer.
    fn send_join_to(&mut self, seed: SocketAddr) {
        let mine = [self.self_update(true)];
        self.send_table_to(seed, &mine, true);
    }

    /// Leaves the cluster: tells `gossip_fanout` members at once, keeps gossiping the leave
    /// and stops probing. The caller keeps driving the core for a moment so it spreads.
    pub fn leave(&mut self, now_us: u64) {
        if self.status == LocalStatus::Yielded {
            return;
        }
        self.now_us = self.now_us.max(now_us);
        self.status = LocalStatus::Leaving;
        let update = Update {
            id: self.me,
            incarnation: self.incarnation,
            claim: Claim::Left,
        };
        self.enqueue(SELF_KEY, update);
        self.gossip_round(now_us);
    }

    /// Whether our leave has been sent at least `gossip_fanout` times.
    pub fn leave_spread(&self) -> bool {
        !self
            .queue
            .holds_below(SELF_KEY, self.config.gossip_fanout as u32)
    }

    /// New metadata for this node: gossiped to everyone (callers bound the rate).
    pub fn set_meta(&mut self, mut meta: MemberMeta) {
        meta.version = self.meta.version.wrapping_add(1);
        self.meta = meta;
        if self.status == LocalStatus::Active || self.status == LocalStatus::Joining {
            let update = self.self_update(true);
            self.enqueue(SELF_KEY, update);
        }
    }

    /// Sends this node's metadata round once more, at its version: each change is
    /// piggybacked a bounded number of times, and a member that missed every copy kept the
    /// old figures until the next change or state exchange (a loaded node read as idle).
    /// Members that have it ignore it.
    pub fn refresh_meta(&mut self) {
        if self.status == LocalStatus::Active {
            let update = self.self_update(true);
            self.enqueue(SELF_KEY, update);
        }
    }

    /// This node's metadata.
    pub fn meta(&self) -> &MemberMeta {
        &self.meta
    }

    /// The next time [`Swim::handle_timeout`] has work, core µs.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes the accumulated outputs.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.out.drain(..)
    }

    /// Moves the accumulated outputs into `into`.
    pub fn take_outputs(&mut self, into: &mut Vec<Output>) {
        into.append(&mut self.out);
    }

    /// Gives back the buffer of an [`Output::Send`] once it is sent (or of any received
    /// datagram), so the next packet is encoded without an allocation. Optional; a few are
    /// kept, the rest dropped.
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.buffers.len() < SPARE_BUFFERS && buffer.capacity() <= 4 * self.config.max_packet {
            buffer.clear();
            self.buffers.push(buffer);
        }
    }

    /// Every member, this node first.
    pub fn members(&self, now_us: u64) -> Vec<MemberView> {
        let mut views = Vec::with_capacity(self.table.len() + 1);
        views.push(MemberView {
            id: self.me,
            // A node that yielded its name stopped gossiping by its own choice, as one that
            // leaves does: it is not dead (it still runs and serves).
            state: match self.status {
                LocalStatus::Leaving | LocalStatus::Yielded => MemberState::Left,
                _ => MemberState::Alive,
            },
            incarnation: self.incarnation,
            address: Some(self.address),
            meta: Some(self.meta.clone()),
            phi: 0.0,
            degraded: false,
            last_heard_us: Some(now_us),
            since_us: 0,
            local: true,
        });
        let mut others: Vec<&Member> = self.table.iter().map(|(_, m)| m).collect();
        others.sort_by_key(|a| a.id.name);
        views.extend(others.into_iter().map(|m| MemberView {
            id: m.id,
            state: m.state,
            incarnation: m.incarnation,
            address: m.address,
            meta: m.meta.as_deref().cloned(),
            // A node that yielded or is leaving probes nobody any more: silence measures
            // nothing.
            phi: if m.state.is_up()
                && matches!(self.status, LocalStatus::Joining | LocalStatus::Active)
            {
                m.phi.phi(now_us, self.phi_cadence(), &self.config.phi)
            } else {
                0.0
            },
            degraded: m.degraded,
            last_heard_us: m.phi.last_heard_us(),
            since_us: m.since_us,
            local: false,
        }));
        views
    }

    /// One member's state, if known.
    pub fn member_state(&self, name: &str) -> Option<(MemberId, MemberState, u32)> {
        let name = Name::new(name).ok()?;
        let slot = self.table.find(&name)?;
        self.table.get(slot).map(|m| (m.id, m.state, m.incarnation))
    }

    // ---------------------------------------------------------------- timers

    fn schedule(&mut self, at_us: u64, timer: Timer) {
        self.timer_order += 1;
        self.timers.push(Reverse((at_us, self.timer_order, timer)));
    }

    fn scale(&self, duration: Duration) -> u64 {
        micros(duration).saturating_mul(u64::from(self.awareness) + 1)
    }

    /// How often probing alone has a member heard from: what phi measures silences against.
    fn phi_cadence(&self) -> Cadence {
        Cadence {
            members: self.up_count,
            probe_interval_us: self.scale(self.config.probe_interval),
        }
    }

    /// Runs every timer due at `now_us`.
    pub fn handle_timeout(&mut self, now_us: u64) {
        self.observe_time(now_us);
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now_us {
                break;
            }
            let Some(Reverse((_, _, timer))) = self.timers.pop() else {
                break;
            };
            self.fire(timer, now_us);
        }
    }

    /// Moves the core's clock to `now_us`. The runtime calls [`Swim::handle_timeout`] when
    /// the earliest timer is due: a call that comes much later than that means this process
    /// did not run meanwhile.
    fn observe_time(&mut self, now_us: u64) {
        // Late for a timer, and the clock jumped since the last call: the calls that follow
        // (the overdue timers, the packets queued meanwhile) are late too, but belong to the
        // same pause.
        if let Some(Reverse((due, _, _))) = self.timers.peek()
            && now_us > due.saturating_add(LOCAL_PAUSE_US)
            && now_us > self.now_us.saturating_add(LOCAL_PAUSE_US)
        {
            let from = (*due).max(self.now_us);
            self.after_local_pause(from, now_us);
        }
        self.now_us = self.now_us.max(now_us);
    }

    /// This process did not run from `from` to `to`: nobody could be heard meanwhile, so that
    /// silence says nothing about the others. Their phi windows skip it, and the probe in
    /// flight (whose answer could not be read) is dropped instead of suspecting its target.
    fn after_local_pause(&mut self, from: u64, to: u64) {
        self.probe = None;
        for member in self.table.slots.iter_mut().filter(|m| m.present) {
            member.phi.skip_silence_until(to);
        }
        self.self_event(to, EventKind::Paused { micros: to - from });
    }

    fn fire(&mut self, timer: Timer, now_us: u64) {
        if self.status == LocalStatus::Yielded {
            return;
        }
        match timer {
            Timer::Probe => {
                self.finish_probe(now_us);
                if self.status != LocalStatus::Leaving {
                    self.scan_phi(now_us);
                    self.start_probe(now_us);
                    if self.rng.below(RECONNECT_EVERY) == 0 {
                        self.reconnect();
                    }
                }
                let next = now_us + self.scale(self.config.probe_interval);
                self.schedule(next, Timer::Probe);
            }
            Timer::AckTimeout { seq } => self.ack_timeout(seq, now_us),
            Timer::Gossip => {
                self.gossip_round(now_us);
                let next = now_us + micros(self.config.gossip_interval).max(1000);
                self.gossip_next_us = next;
                if self.queue.is_empty() {
                    // Nothing to spread: the ticks stop until something is queued.
                    self.gossip_armed = false;
                } else {
                    self.schedule(next, Timer::Gossip);
                }
            }
            Timer::Sync => {
                // Every tick with probability 1 / scale: the cluster as a whole exchanges
                // state at a steady rate that follows its size at once, with no phase
                // lock from a common start.
                if self.status == LocalStatus::Active
                    && self.rng.unit() * (self.sync_scale() as f64) < 1.0
                {
                    self.sync_with_random(now_us);
                }
                let next = now_us + micros(self.config.sync_interval).max(1000);
                self.schedule(next, Timer::Sync);
            }
            Timer::Suspicion {
                target,
                incarnation,
            } => self.suspicion_expired(target, incarnation, now_us),
            Timer::Relay { seq } => {
                if let Some(at) = self.relays.iter().position(|r| r.seq == seq) {
                    let relay = self.relays.swap_remove(at);
                    self.send(
                        relay.origin,
                        Message::Nack {
                            seq: relay.origin_seq,
                        },
                        false,
                    );
                }
            }
            Timer::JoinRetry => {
                // Until a seed itself answers: members that joined through us make us
                // "active" too, and stopping then would leave us an island with them.
                if !self.seed_answered
                    && !self.seeds.is_empty()
                    && matches!(self.status, LocalStatus::Joining | LocalStatus::Active)
                {
                    self.send_join();
                    self.join_retry_us = (self.join_retry_us * 2).min(MAX_JOIN_RETRY_US);
                    self.schedule(now_us + self.join_retry_us, Timer::JoinRetry);
                }
            }
            Timer::SeedCheck => {
                if self.status == LocalStatus::Active && self.seed_answered {
                    self.check_seeds(now_us);
                }
                if matches!(self.status, LocalStatus::Joining | LocalStatus::Active) {
                    self.schedule(now_us + SEED_CHECK_US, Timer::SeedCheck);
                }
            }
            Timer::JoinSync => {
                // Only while the last table we were sent arrived incomplete.
                let complete = self
                    .sync_tally
                    .is_some_and(|(_, expected, got)| got >= expected);
                if self.status == LocalStatus::Active && !complete {
                    self.sync_with_random(now_us);
                }
            }
            Timer::Reannounce { round: 0 } => {
                if self.status == LocalStatus::Active {
                    self.announce(now_us);
                }
            }
            Timer::Reannounce { round } => {
                if self.status == LocalStatus::Active {
                    self.announce_to_unanswered(now_us);
                    if round + 1 < ANNOUNCE_ROUNDS {
                        self.schedule(
                            now_us + ANNOUNCE_RETRY_US,
                            Timer::Reannounce { round: round + 1 },
                        );
                    }
                }
            }
            Timer::Repair => {
                self.repair_pending = false;
                if self.status == LocalStatus::Active {
                    self.last_repair_us = Some(now_us);
                    self.sync_with_random(now_us);
                }
            }
            Timer::Reap => {
                self.reap(now_us);
                self.schedule(now_us + REAP_INTERVAL_US, Timer::Reap);
            }
        }
    }

    fn sync_scale(&self) -> u64 {
        (self.up_count as u64 + 1).div_ceil(32).max(1)
    }

    // ---------------------------------------------------------------- probing

    /// Sequence numbers cycle through 1..=250, one byte on the wire: a probe lives less
    /// than a period, so 250 periods apart nothing can be confused.
    fn next_seq(&mut self) -> u32 {
        self.next_seq = if self.next_seq >= 250 {
            1
        } else {
            self.next_seq + 1
        };
        self.next_seq
    }

    fn probeable(member: &Member) -> bool {
        member.state.is_up() && member.address.is_some()
    }

    fn pick_probe_target(&mut self) -> Option<Slot> {
        while let Some(check) = self.last_checks.pop_front() {
            // Still owed: a suspect that refuted or answered meanwhile needs no check.
            if self.table.resolve(check).is_some_and(|m| {
                Self::probeable(m)
                    && m.state == MemberState::Suspect
                    && m.suspicion.as_ref().is_some_and(|s| s.last_chance)
            }) {
                return Some(check.slot);
            }
        }
        while let Some(first) = self.probe_first.pop() {
            if self.table.resolve(first).is_some_and(Self::probeable) {
                return Some(first.slot);
            }
        }
        let len = self.probe_order.len();
        for _ in 0..len {
            if self.probe_cursor >= self.probe_order.len() {
                self.probe_cursor = 0;
                let mut order = std::mem::take(&mut self.probe_order);
                self.rng.shuffle(&mut order);
                self.probe_order = order;
            }
            let slot = self.probe_order[self.probe_cursor];
            self.probe_cursor += 1;
            if self.table.get(slot).is_some_and(Self::probeable) {
                return Some(slot);
            }
        }
        None
    }

    fn start_probe(&mut self, now_us: u64) {
        let Some(slot) = self.pick_probe_target() else {
            return;
        };
        let Some((address, target_name)) = self
            .table
            .get(slot)
            .and_then(|m| Some((m.address?, m.id.name)))
        else {
            return;
        };
        let seq = self.next_seq();
        self.probe = Some(Probe {
            seq,
            target: self.table.slot_ref(slot),
            target_name,
            address,
            acked: false,
            asked_us: 0,
        });
        self.helpers.clear();
        self.stats.probes += 1;
        let target = wire::name_print(&target_name);
        self.send(address, Message::Ping { seq, target }, true);
        let at = now_us + self.scale(self.config.probe_timeout);
        self.schedule(at, Timer::AckTimeout { seq });
    }

    fn ack_timeout(&mut self, seq: u32, now_us: u64) {
        let Some(probe) = &self.probe else { return };
        if probe.seq != seq || probe.acked {
            return;
        }
        let target = probe.target;
        let address = probe.address;
        let Some(target_id) = self.table.resolve(target).map(|m| m.id) else {
            return;
        };
        let mut helpers = std::mem::take(&mut self.picked);
        self.pick_members(self.config.indirect_probes, &mut helpers, |slot, m| {
            slot != target.slot && m.state == MemberState::Alive && !m.degraded
        });
        for helper in &helpers {
            self.send(
                *helper,
                Message::PingReq {
                    seq,
                    target: target_id,
                    address,
                },
                true,
            );
        }
        self.helpers.clear();
        for (&address, &slot) in helpers.iter().zip(&self.picked_slots) {
            self.helpers.push(Helper {
                address,
                member: self.table.slot_ref(slot),
                answered: false,
            });
        }
        self.picked = helpers;
        if let Some(probe) = &mut self.probe {
            probe.asked_us = now_us;
        }
        // One more direct try: under loss, cheaper than a false suspicion.
        let target = wire::name_print(&target_id.name);
        self.send(address, Message::Ping { seq, target }, false);
    }

    /// The helpers of the probe that ended whose silence counts against our own health: those
    /// that sent no nack (nor a forwarded ack) although we heard from them after asking, or
    /// all silent ones if we heard from nobody since (then the fault is likely ours).
    fn missing_nacks(&self, asked_us: u64) -> u32 {
        let heard_anyone = self.last_arrival_us >= asked_us;
        let mut missing = 0;
        for helper in self.helpers.iter().filter(|h| !h.answered) {
            let Some(member) = self.table.resolve(helper.member) else {
                continue;
            };
            let heard_helper = member.phi.last_heard_us().is_some_and(|at| at >= asked_us);
            if heard_helper || !heard_anyone {
                missing += 1;
            }
        }
        missing
    }

    fn finish_probe(&mut self, now_us: u64) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        if probe.acked {
            self.answered_while_suspect(probe.target, probe.address, now_us);
            return;
        }
        // Lifeguard: helpers that did not even nack hint that the fault is ours.
        let missing = self.missing_nacks(probe.asked_us);
        if missing > 0 {
            self.awareness = (self.awareness + missing).min(self.config.awareness_max);
        }
        let Some(member) = self.table.resolve(probe.target) else {
            return;
        };
        if !member.state.is_up() {
            return;
        }
        self.stats.probe_failures += 1;
        let slot = probe.target.slot;
        let update = Update {
            id: member.id,
            incarnation: member.incarnation,
            claim: Claim::Suspect {
                accuser: self.me.name,
            },
        };
        if member.state == MemberState::Suspect {
            // Already suspected by others: our failed probe is an independent confirmation.
            let first_accuser = member
                .suspicion
                .as_ref()
                .and_then(|s| s.accusers.first().copied());
            if let Some(suspicion) = self.table.get_mut(slot).and_then(|m| m.suspicion.as_mut())
                && suspicion.last_chance
            {
                suspicion.last_probe_failed = true;
            }
            if self.confirm(slot, self.me.name, now_us)
                && let Some(accuser) = first_accuser
                && let Some(address) = self
                    .table
                    .find(&accuser)
                    .and_then(|s| self.table.get(s))
                    .and_then(|m| m.address)
            {
                // Tell the first accuser, whose timer decides first: one packet, where
                // spreading every confirmation would cost a dissemination wave each.
                self.send_updates_to(address, &[update]);
            }
            return;
        }
        if self.apply(update.clone(), now_us, Source::Own) {
            // Tell the suspect directly as well, so it can refute at once if it is alive.
            self.send_updates_to(probe.address, &[update]);
        }
    }

    /// A member we hold suspect answered our probe (perhaps through a helper, so we did not
    /// see its incarnation): it lives. We tell it that it is suspected, so it refutes to us,
    /// and a suspicion that was about to end gets a whole timeout again for that refutation.
    fn answered_while_suspect(&mut self, target: SlotRef, address: SocketAddr, now_us: u64) {
        let Some(member) = self.table.resolve(target) else {
            return;
        };
        if member.state != MemberState::Suspect {
            return;
        }
        let incarnation = member.incarnation;
        let last_chance = member.suspicion.as_ref().is_some_and(|s| s.last_chance);
        if last_chance {
            let mut suspicion = member.suspicion.clone().unwrap_or_else(|| {
                Box::new(Suspicion {
                    started_us: now_us,
                    accusers: Vec::new(),
                    deadline_us: now_us,
                    last_chance: false,
                    last_probe_failed: false,
                    deferrals: 0,
                })
            });
            suspicion.started_us = now_us;
            suspicion.last_chance = false;
            suspicion.last_probe_failed = false;
            suspicion.deferrals = 0;
            suspicion.deadline_us = self.suspicion_deadline(&suspicion);
            let deadline = suspicion.deadline_us;
            if let Some(member) = self.table.get_mut(target.slot) {
                member.suspicion = Some(suspicion);
            }
            self.schedule(
                deadline,
                Timer::Suspicion {
                    target,
                    incarnation,
                },
            );
        }
        self.hint(target.slot, address, now_us);
    }

    /// Pings a random member we hold dead. A live one answers: its header then carries a
    /// higher incarnation (it is alive again to us), or we tell it that it is held dead and
    /// it refutes. This mends what a lost update left behind, after a partition heals too.
    fn reconnect(&mut self) {
        // Members that are no longer dead (taken back, restarted, forgotten) leave the list
        // here, so the pick is among the dead only: after a partition heals most of the
        // list is stale, and the few still held dead must not wait behind it.
        let table = &self.table;
        self.dead.retain(|r| {
            table
                .resolve(*r)
                .is_some_and(|m| m.state == MemberState::Dead && m.address.is_some())
        });
        if self.dead.is_empty() {
            return;
        }
        let index = self.rng.below(self.dead.len());
        if let Some((address, name)) = self
            .table
            .resolve(self.dead[index])
            .and_then(|m| Some((m.address?, m.id.name)))
            // A member that died where this node now gossips: the probe would come back.
            && address != self.address
        {
            let target = wire::name_print(&name);
            self.send(address, Message::Ping { seq: 0, target }, false);
        }
    }

    /// Picks up to `count` distinct addresses of members `accept` takes, at random, into
    /// `chosen` (cleared first).
    fn pick_members(
        &mut self,
        count: usize,
        chosen: &mut Vec<SocketAddr>,
        accept: impl Fn(Slot, &Member) -> bool,
    ) {
        chosen.clear();
        self.picked_slots.clear();
        let len = self.probe_order.len();
        if len == 0 || count == 0 {
            return;
        }
        let mut tries = 0;
        while chosen.len() < count && tries < count * 8 + 16 {
            tries += 1;
            let slot = self.probe_order[self.rng.below(len)];
            if let Some(member) = self.table.get(slot)
                && let Some(address) = member.address
                && accept(slot, member)
                && !chosen.contains(&address)
            {
                chosen.push(address);
                self.picked_slots.push(slot);
            }
        }
        if chosen.len() < count && len <= count * 8 {
            // Few members: take every eligible one rather than trust sampling.
            for &slot in &self.probe_order {
                if chosen.len() >= count {
                    break;
                }
                if let Some(member) = self.table.get(slot)
                    && let Some(address) = member.address
                    && accept(slot, member)
                    && !chosen.contains(&address)
                {
                    chosen.push(address);
                    self.picked_slots.push(slot);
                }
            }
        }
    }

    fn scan_phi(&mut self, now_us: u64) {
        let len = self.probe_order.len();
        if len == 0 {
            return;
        }
        let threshold = self.config.phi_threshold;
        // Small clusters: every member every period. Large ones: a few per period (phi
        // matters most where members hear from each other often, i.e. small clusters).
        let budget = if len <= PHI_SCAN * 4 {
            len
        } else {
            PHI_SCAN / 4
        };
        for _ in 0..budget {
            if self.phi_cursor >= len {
                self.phi_cursor = 0;
            }
            let slot = self.probe_order[self.phi_cursor];
            self.phi_cursor += 1;
            let slot_ref = self.table.slot_ref(slot);
            let phi_settings = self.config.phi;
            let cadence = self.phi_cadence();
            let Some(member) = self.table.get_mut(slot) else {
                continue;
            };
            if !member.state.is_up() {
                member.degraded = false;
                continue;
            }
            let phi = member.phi.phi(now_us, cadence, &phi_settings);
            let degraded = phi >= threshold;
            if degraded != member.degraded {
                member.degraded = degraded;
                let id = member.id;
                if degraded {
                    self.probe_first.push(slot_ref);
                    // To a tenth, as the text gives it: `members --json` printed 17 digits.
                    let phi = (phi * 10.0).round() / 10.0;
                    self.event(now_us, id, EventKind::Degraded { phi });
                } else {
                    self.event(now_us, id, EventKind::Recovered);
                }
            }
        }
    }

    // ---------------------------------------------------------------- suspicion

    fn suspicion_bounds_us(&self) -> (f64, f64) {
        let n = (self.up_count + 1) as f64;
        let min = self.config.suspicion_mult
            * n.log10().max(2.0)
            * self.config.probe_interval.as_micros() as f64;
        (min, min * self.config.suspicion_max_mult.max(1.0))
    }

    fn suspicion_deadline(&self, suspicion: &Suspicion) -> u64 {
        self.deadline_with(suspicion.started_us, suspicion.accusers.len())
    }

    /// The deadline of a suspicion that started at `started_us` with `accusers` accusers.
    fn deadline_with(&self, started_us: u64, accusers: usize) -> u64 {
        let (min, max) = self.suspicion_bounds_us();
        let expected = self
            .config
            .indirect_probes
            .min(self.up_count.saturating_sub(1))
            .max(1) as f64;
        let confirmations = accusers.saturating_sub(1) as f64;
        let fraction = ((confirmations + 1.0).ln() / (expected + 1.0).ln()).min(1.0);
        let timeout = (max - (max - min) * fraction).max(min);
        started_us + timeout as u64
    }

    fn suspicion_expired(&mut self, target: SlotRef, incarnation: u32, now_us: u64) {
        let Some(member) = self.table.resolve(target) else {
            return;
        };
        if member.incarnation != incarnation || member.state != MemberState::Suspect {
            return;
        }
        let Some(suspicion) = &member.suspicion else {
            return;
        };
        if suspicion.deadline_us > now_us {
            return;
        }
        // A suspicion that expired without full confirmation is not enough to declare a
        // member dead: we probe it ourselves first, with the whole protocol (direct ping,
        // indirect pings through k members, a second direct ping). A live member whose
        // refutation we missed answers, hears that it is suspected and refutes to us; under
        // 5% loss one such probe fails about once in 10^4, where a single ping failed one
        // time in ten. Only a member that fails our own probe as well is declared dead.
        let confirmed = suspicion.accusers.len() > self.config.indirect_probes;
        if !confirmed && !suspicion.last_chance && member.address.is_some() {
            // Probed at the next period, judged at the one after.
            let wait =
                2 * self.scale(self.config.probe_interval) + self.scale(self.config.probe_timeout);
            self.hold_for_last_check(target, incarnation, now_us + wait, false);
            return;
        }
        // The last-chance probe can wait behind others (several suspicions expiring at
        // once): judging before it ran declared live members dead (one in a simulated
        // 1,000-member, 30-minute run at 5% loss, when these probes still queued behind
        // every other urgent probe). Wait for it, a bounded number of times.
        if !confirmed
            && suspicion.last_chance
            && !suspicion.last_probe_failed
            && suspicion.deferrals < MAX_VERDICT_DEFERRALS
        {
            let wait =
                self.scale(self.config.probe_interval) + self.scale(self.config.probe_timeout);
            self.hold_for_last_check(target, incarnation, now_us + wait, true);
            return;
        }
        let update = Update {
            id: member.id,
            incarnation,
            claim: Claim::Dead,
        };
        self.apply(update, now_us, Source::Own);
    }

    /// Holds the verdict on `target` until `deadline_us` for our own last check of it. The
    /// first time (`overdue` false) the check joins the back of the queue; a check still
    /// not run at its verdict (`overdue`) goes to the front, unless it is the probe under way.
    fn hold_for_last_check(
        &mut self,
        target: SlotRef,
        incarnation: u32,
        deadline_us: u64,
        overdue: bool,
    ) {
        if let Some(suspicion) = self
            .table
            .get_mut(target.slot)
            .and_then(|m| m.suspicion.as_mut())
        {
            if overdue {
                suspicion.deferrals += 1;
            } else {
                suspicion.last_chance = true;
            }
            suspicion.deadline_us = deadline_us;
        }
        let under_way = self.probe.as_ref().is_some_and(|p| p.target == target);
        if !self.last_checks.contains(&target) {
            if !overdue {
                self.last_checks.push_back(target);
            } else if !under_way {
                self.last_checks.push_front(target);
            }
        }
        self.schedule(
            deadline_us,
            Timer::Suspicion {
                target,
                incarnation,
            },
        );
    }

    // ---------------------------------------------------------------- dissemination

    fn retransmit_limit(&self) -> u32 {
        let n = (self.up_count + 2) as f64;
        ((f64::from(self.config.retransmit_mult) * n.log10()).ceil() as u32).max(2)
    }

    fn enqueue(&mut self, key: u32, update: Update) {
        if self.queue.push(key, &update, self.config.max_queue.max(1)) {
            self.stats.queue_dropped += 1;
        }
        self.arm_gossip();
    }

    /// Schedules the next gossip tick if they had stopped: at the next point of the tick
    /// grid they would have kept, so stopping them changes nothing but the work.
    fn arm_gossip(&mut self) {
        if self.gossip_armed {
            return;
        }
        let interval = micros(self.config.gossip_interval).max(1000);
        let mut at = self.gossip_next_us;
        if at < self.now_us {
            at += (self.now_us - at).div_ceil(interval) * interval;
        }
        self.gossip_armed = true;
        self.schedule(at, Timer::Gossip);
    }

    fn gossip_round(&mut self, _now_us: u64) {
        if self.queue.is_empty() || self.status == LocalStatus::Yielded {
            return;
        }
        let mut targets = std::mem::take(&mut self.picked);
        self.pick_members(self.config.gossip_fanout, &mut targets, |_, m| {
            m.state.is_up()
        });
        for &target in &targets {
            if self.queue.is_empty() {
                break;
            }
            self.send(target, Message::Gossip, true);
        }
        self.picked = targets;
    }

    /// After joining: tells every member we learned about of ourselves, with our metadata,
    /// directly. One small packet per member (bounded by the table), and it makes a join
    /// known to nearly everyone within one round trip, where epidemic spreading alone leaves
    /// a member now and then waiting for a probe; the epidemic update then carries no
    /// metadata. Members answer; those that did not are told again a second and two seconds
    /// later, so a lost datagram does not leave a member ignorant of us.
    fn announce(&mut self, now_us: u64) {
        self.announced_us = Some(now_us);
        self.announce_to_unanswered(now_us);
        self.schedule(now_us + ANNOUNCE_RETRY_US, Timer::Reannounce { round: 1 });
    }

    /// Announces us to every member that has sent us nothing since the announcement began
    /// (any packet from a member means it has us in its table; an `Announce` is answered).
    fn announce_to_unanswered(&mut self, _now_us: u64) {
        let Some(since) = self.announced_us else {
            return;
        };
        let mine = self.self_update(true);
        let targets: Vec<SocketAddr> = self
            .table
            .iter()
            .filter(|(_, m)| m.state.is_up())
            .filter(|(_, m)| m.phi.last_heard_us().is_none_or(|heard| heard < since))
            .filter_map(|(_, m)| m.address)
            .collect();
        for target in targets {
            self.send_with(target, Message::Announce, std::slice::from_ref(&mine));
        }
    }

    /// Schedules a state exchange with a random member shortly (at most one per
    /// `REPAIR_INTERVAL_US`): a sign that our table has gaps was seen.
    fn repair_soon(&mut self, now_us: u64) {
        if self.repair_pending
            || self
                .last_repair_us
                .is_some_and(|last| now_us < last + REPAIR_INTERVAL_US)
        {
            return;
        }
        self.repair_pending = true;
        self.schedule(now_us + REPAIR_DELAY_US, Timer::Repair);
    }

    /// Tells a member we learned of from a third party that we exist (with our metadata).
    fn hello(&mut self, to: SocketAddr) {
        if self.status != LocalStatus::Active {
            return;
        }
        let mine = self.self_update(true);
        self.send_updates_to(to, std::slice::from_ref(&mine));
    }

    // ---------------------------------------------------------------- sending

    fn take_buffer(&mut self) -> Vec<u8> {
        let mut buffer = self
            .buffers
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.config.max_packet.min(64 * 1024)));
        buffer.clear();
        buffer
    }

    /// Queues `buffer` (a header of `head` bytes, then updates) for sending to `to`.
    fn emit(&mut self, to: SocketAddr, mut buffer: Vec<u8>, head: usize) {
        if buffer.len() > self.config.max_packet {
            // Only a bug in the size accounting gets here: send without updates.
            buffer.truncate(head);
            if wire::encode_update_count(&mut buffer, 0).is_err()
                || buffer.len() > self.config.max_packet
            {
                return;
            }
        }
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += buffer.len() as u64;
        self.out.push(Output::Send { to, bytes: buffer });
    }

    /// A buffer holding the header of a packet with `message`; `None` when it cannot be
    /// encoded (it always can: the fields are bounded).
    fn begin(&mut self, message: &Message) -> Option<(Vec<u8>, usize)> {
        if self.head_prefix_incarnation != Some(self.incarnation) {
            self.head_prefix.clear();
            wire::encode_head_prefix(&mut self.head_prefix, self.tag, &self.me, self.incarnation)
                .ok()?;
            self.head_prefix_incarnation = Some(self.incarnation);
        }
        let mut buffer = self.take_buffer();
        buffer.extend_from_slice(&self.head_prefix);
        match wire::encode_message(&mut buffer, message) {
            Ok(_) => {
                let head = buffer.len();
                Some((buffer, head))
            }
            Err(_) => {
                self.recycle(buffer);
                None
            }
        }
    }

    fn send(&mut self, to: SocketAddr, message: Message, piggyback: bool) {
        if self.status == LocalStatus::Yielded {
            return;
        }
        let Some((mut buffer, head)) = self.begin(&message) else {
            return;
        };
        let written = if piggyback && !self.queue.is_empty() {
            // The header plus a one-byte count, with room for a longer count.
            let budget = self.config.max_packet.saturating_sub(head + 1 + 3);
            let limit = self.retransmit_limit();
            self.queue.select_into(budget, limit, &mut buffer)
        } else {
            wire::encode_update_count(&mut buffer, 0).map(|_| ())
        };
        if written.is_err() {
            buffer.truncate(head);
            if wire::encode_update_count(&mut buffer, 0).is_err() {
                return;
            }
        }
        self.emit(to, buffer, head);
    }

    fn send_updates_to(&mut self, to: SocketAddr, updates: &[Update]) {
        self.send_with(to, Message::Gossip, updates);
    }

    /// Sends `message` with exactly `updates`.
    fn send_with(&mut self, to: SocketAddr, message: Message, updates: &[Update]) {
        let Some((mut buffer, head)) = self.begin(&message) else {
            return;
        };
        let mut written = wire::encode_update_count(&mut buffer, updates.len()).map(|_| ());
        for update in updates {
            if written.is_ok() {
                written = wire::encode_update(&mut buffer, update).map(|_| ());
            }
        }
        if written.is_err() {
            buffer.truncate(head);
            if wire::encode_update_count(&mut buffer, 0).is_err() {
                return;
            }
        }
        self.emit(to, buffer, head);
    }

    fn self_update(&self, with_meta: bool) -> Update {
        Update {
            id: self.me,
            incarnation: self.incarnation,
            claim: Claim::Alive {
                address: self.address,
                meta: with_meta.then(|| self.meta.clone()),
            },
        }
    }

    fn member_update(member: &Member, with_meta: bool) -> Update {
        let claim = match member.state {
            MemberState::Alive => match member.address {
                Some(address) => Claim::Alive {
                    address,
                    meta: if with_meta {
                        member.meta.as_deref().cloned()
                    } else {
                        None
                    },
                },
                None => Claim::Suspect {
                    accuser: member.id.name,
                },
            },
            MemberState::Suspect => Claim::Suspect {
                accuser: member
                    .suspicion
                    .as_ref()
                    .and_then(|s| s.accusers.first().copied())
                    .unwrap_or(member.id.name),
            },
            MemberState::Dead => Claim::Dead,
            MemberState::Left => Claim::Left,
        };
        Update {
            id: member.id,
            incarnation: member.incarnation,
            claim,
        }
    }

    /// Sends `entries` (plus nothing else) to `to` as `Sync` packets of at most
    /// `max_packet` bytes; only the first asks for a reply.
    fn send_table_to(&mut self, to: SocketAddr, entries: &[Update], reply: bool) {
        let probe = Message::Sync {
            reply,
            total: u32::MAX,
        };
        // The header plus a one-byte count, with room for a longer count.
        let base = wire::head_len(&self.me, self.incarnation, &probe) + 1;
        let budget = self.config.max_packet.saturating_sub(base + 3);
        let fits = |entry: &Update| wire::update_len(entry) <= budget;
        let total = u32::try_from(entries.iter().filter(|e| fits(e)).count()).unwrap_or(u32::MAX);
        let mut first = true;
        let mut start = 0;
        while start < entries.len() || first {
            // Take entries while they fit.
            let mut used = 0;
            let mut end = start;
            let mut count = 0;
            while end < entries.len() {
                let size = wire::update_len(&entries[end]);
                if size > budget {
                    end += 1;
                    continue;
                }
                if used + size > budget && count > 0 {
                    break;
                }
                used += size;
                count += 1;
                end += 1;
            }
            let message = Message::Sync {
                reply: reply && first,
                total,
            };
            let Some((mut buffer, head)) = self.begin(&message) else {
                return;
            };
            let mut written = wire::encode_update_count(&mut buffer, count).map(|_| ());
            for entry in entries[start..end].iter().filter(|e| fits(e)) {
                if written.is_ok() {
                    written = wire::encode_update(&mut buffer, entry).map(|_| ());
                }
            }
            if written.is_err() {
                self.recycle(buffer);
                return;
            }
            self.emit(to, buffer, head);
            first = false;
            start = end;
        }
    }

    /// Our whole table (ourselves first) into `entries`.
    fn fill_table(&self, entries: &mut Vec<Update>, with_meta: bool) {
        entries.clear();
        entries.push(self.self_update(true));
        entries.extend(
            self.table
                .iter()
                .map(|(_, m)| Self::member_update(m, with_meta)),
        );
    }

    fn send_table(&mut self, to: SocketAddr, with_meta: bool, reply: bool) {
        let mut entries = Vec::with_capacity(self.table.len() + 1);
        self.fill_table(&mut entries, with_meta);
        self.send_table_to(to, &entries, reply);
    }

    fn sync_with_random(&mut self, _now_us: u64) {
        let mut targets = std::mem::take(&mut self.picked);
        self.pick_members(1, &mut targets, |_, m| m.state != MemberState::Left);
        let target = targets.first().copied();
        self.picked = targets;
        if let Some(target) = target {
            let with_meta = self.table.len() <= 64;
            self.send_table(target, with_meta, true);
        }
    }

    // ---------------------------------------------------------------- receiving

    /// Handles one received datagram from `from` at `now_us`. Bad packets are counted in
    /// [`Swim::stats`] and dropped.
    pub fn handle_packet(
        &mut self,
        from: SocketAddr,
        bytes: &[u8],
        now_us: u64,
    ) -> Result<(), PacketError> {
        if self.status == LocalStatus::Yielded {
            return Ok(());
        }
        self.observe_time(now_us);
        let mut updates = std::mem::take(&mut self.incoming);
        updates.clear();
        let decoded =
            wire::decode_packet_into(bytes, self.config.max_packet, self.tag, &mut updates);
        let head = match decoded {
            Ok(head) => head,
            Err(error) => {
                match &error {
                    PacketError::Oversized { .. } => self.stats.oversized += 1,
                    PacketError::ForeignCluster(_) | PacketError::Version(_) => {
                        self.stats.foreign += 1
                    }
                    PacketError::Malformed(_)
                    | PacketError::Invalid(_)
                    | PacketError::FutureGeneration(_) => self.stats.malformed += 1,
                    // Checked once decoded, below.
                    PacketError::Misdirected { .. } | PacketError::Echoed => {}
                }
                self.incoming = updates;
                return Err(error);
            }
        };
        if head.from == self.me {
            // Only this process sends as this generation of this name.
            self.stats.stale += 1;
            self.incoming = updates;
            return Err(PacketError::Echoed);
        }
        // A generation is a process's start time (Unix µs): one later than this node's clock
        // allows is corrupt or forged, and would have made this node yield its name to it
        // (one datagram did) or replace a live member by it.
        if !self.plausible_generation(head.from.generation, now_us) {
            self.stats.malformed += 1;
            self.incoming = updates;
            return Err(PacketError::FutureGeneration(head.from.generation));
        }
        let before = updates.len();
        updates.retain(|update| self.plausible_generation(update.id.generation, now_us));
        self.stats.malformed += (before - updates.len()) as u64;
        if let Message::Ping { target, .. } = head.message
            && target != wire::name_print(&self.me.name)
            && head.from.name != self.me.name
        {
            // Neither answered nor learnt from: the sender is told nothing that would make
            // this node stand in for the member it means.
            self.stats.misdirected += 1;
            self.incoming = updates;
            return Err(PacketError::Misdirected {
                sender: head.from.name,
            });
        }
        self.stats.packets_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        self.handle_decoded(from, head, &mut updates, now_us);
        updates.clear();
        self.incoming = updates;
        Ok(())
    }

    /// Whether a member's `generation` (its start time, Unix µs) can be true: at most a day
    /// later than this node's own start plus the time it has run (clocks of members differ
    /// by less).
    fn plausible_generation(&self, generation: u64, now_us: u64) -> bool {
        generation
            <= self
                .me
                .generation
                .saturating_add(now_us)
                .saturating_add(GENERATION_SKEW_US)
    }

    fn handle_decoded(
        &mut self,
        from: SocketAddr,
        head: PacketHead,
        updates: &mut Vec<Update>,
        now_us: u64,
    ) {
        if updates.len() > 1 {
            // Look the members up once before applying anything: the lookups do not depend
            // on each other, so their cache misses overlap instead of coming one at a time
            // (a table answer carries dozens of updates). Nothing is changed here.
            for update in updates.iter() {
                std::hint::black_box(self.table.find(&update.id.name));
            }
        }
        let PacketHead {
            from: sender,
            incarnation,
            message,
            ..
        } = head;
        if sender.name == self.me.name {
            self.heard_own_name(&sender, from, &message, updates, now_us);
            return;
        }
        let Some((is_new, unknown_name)) = self.contact(&sender, incarnation, from, now_us) else {
            self.stats.stale += 1;
            return;
        };
        if unknown_name && !matches!(message, Message::Announce | Message::Sync { .. }) {
            // It knew us and we did not know it: our table has a gap (the seed we joined
            // through lacked it, or we missed its join), and likely more than one.
            self.repair_soon(now_us);
        }
        if self.status == LocalStatus::Joining {
            self.status = LocalStatus::Active;
        }
        self.heard_from_seed(from, now_us);
        match message {
            Message::Ping { seq, .. } => self.send(from, self.ack(seq), true),
            Message::Ack { seq, members } => {
                self.count_gap(members, from, now_us);
                self.on_ack(seq, &sender.name, from);
            }
            Message::Nack { seq } => {
                if self.probe.as_ref().is_some_and(|probe| probe.seq == seq) {
                    self.helper_answered(from);
                }
            }
            Message::PingReq {
                seq,
                target,
                address,
            } => {
                if target.name != self.me.name && self.relays.len() < MAX_RELAYS {
                    let my_seq = self.next_seq();
                    self.relays.retain(|r| r.seq != my_seq);
                    self.relays.push(Relay {
                        seq: my_seq,
                        origin: from,
                        origin_seq: seq,
                        target: target.name,
                    });
                    let target = wire::name_print(&target.name);
                    self.send(
                        address,
                        Message::Ping {
                            seq: my_seq,
                            target,
                        },
                        true,
                    );
                    let wait = micros(self.config.probe_interval)
                        .saturating_sub(micros(self.config.probe_timeout))
                        * 4
                        / 5;
                    self.schedule(now_us + wait.max(1000), Timer::Relay { seq: my_seq });
                }
            }
            Message::Gossip => {}
            Message::Announce => self.send(from, self.ack(0), true),
            Message::Sync { reply, total } => {
                if !reply {
                    // Tally the parts of an answer, to know whether we got the whole table.
                    let parts = u32::try_from(updates.len()).unwrap_or(u32::MAX);
                    self.sync_tally = match self.sync_tally {
                        Some((sender, expected, got)) if sender == from => {
                            Some((sender, expected, got.saturating_add(parts)))
                        }
                        _ => Some((from, total, parts)),
                    };
                }
                // Apply theirs first, so a reply already carries any refutation.
                self.learning_quietly = now_us < self.joined_until_us;
                for update in updates.drain(..) {
                    self.apply(update, now_us, Source::Table(&sender.name));
                }
                self.learning_quietly = false;
                if reply {
                    let with_meta = is_new || self.table.len() <= 64;
                    self.send_table(from, with_meta, false);
                }
                return;
            }
        }
        for update in updates.drain(..) {
            self.apply(update, now_us, Source::Packet(&sender.name));
        }
    }

    /// An ack with sequence `seq`, carrying how many live members we list.
    fn ack(&self, seq: u32) -> Message {
        Message::Ack {
            seq,
            members: u32::try_from(self.up_count + 1).unwrap_or(u32::MAX),
        }
    }

    /// An ack from `from` says it lists `members` live members. When every ack for
    /// `GAP_CONFIRM_US` lists more than we do, our table has a gap that gossip will not
    /// fill (nothing about the missing member is being spread): exchange tables with the
    /// sender, at most once per `REPAIR_INTERVAL_US` together with the other repairs.
    fn count_gap(&mut self, members: u32, from: SocketAddr, now_us: u64) {
        let ours = u32::try_from(self.up_count + 1).unwrap_or(u32::MAX);
        if members <= ours {
            self.behind_since_us = None;
            return;
        }
        let since = *self.behind_since_us.get_or_insert(now_us);
        if now_us < since.saturating_add(GAP_CONFIRM_US)
            || self.status != LocalStatus::Active
            || self.repair_pending
            || self
                .last_repair_us
                .is_some_and(|last| now_us < last + REPAIR_INTERVAL_US)
        {
            return;
        }
        self.behind_since_us = None;
        self.last_repair_us = Some(now_us);
        self.stats.gap_exchanges += 1;
        let with_meta = self.table.len() <= 64;
        self.send_table(from, with_meta, true);
    }

    /// A nack for our probe from `from`: that helper answered (see [`Swim::missing_nacks`]).
    fn helper_answered(&mut self, from: SocketAddr) {
        if let Some(helper) = self.helpers.iter_mut().find(|h| h.address == from) {
            helper.answered = true;
        }
    }

    /// An ack with sequence `seq` from `sender` at `from`: it answers our probe, or one we
    /// relay, only when it comes from the member probed (another process may hold its old
    /// address), or, for our probe, from a helper forwarding the member's ack (the helper
    /// checked whose it was).
    fn on_ack(&mut self, seq: u32, sender: &Name, from: SocketAddr) {
        if let Some(probe) = &mut self.probe
            && probe.seq == seq
            && !probe.acked
            && (probe.target_name == *sender || probe.address != from)
        {
            probe.acked = true;
            self.awareness = self.awareness.saturating_sub(1);
            return;
        }
        if let Some(at) = self
            .relays
            .iter()
            .position(|r| r.seq == seq && r.target == *sender)
        {
            let relay = self.relays.swap_remove(at);
            self.send(relay.origin, self.ack(relay.origin_seq), false);
        }
    }

    /// `sender` spoke to us from `from` at `incarnation`: first-hand news that it is alive.
    fn heard_alive(&mut self, sender: &MemberId, incarnation: u32, from: SocketAddr, now_us: u64) {
        self.apply(
            Update {
                id: *sender,
                incarnation,
                claim: Claim::Alive {
                    address: from,
                    meta: None,
                },
            },
            now_us,
            Source::Own,
        );
    }

    /// The first packet from a seed answers the join.
    fn heard_from_seed(&mut self, from: SocketAddr, now_us: u64) {
        if self.seed_answered || !self.seeds.iter().any(|seed| seed.address == from) {
            return;
        }
        self.seed_answered = true;
        // Announce once the rest of the seed's table (a few datagrams) is in.
        self.schedule(now_us + ANNOUNCE_DELAY_US, Timer::Reannounce { round: 0 });
        // The seed's table came in many datagrams, some may be lost: while the last table we
        // got was incomplete, exchange tables with a random member 2, 10 and 30 s later, so a
        // joiner converges quickly even under heavy loss.
        for seconds in [2, 10, 30] {
            self.schedule(now_us + seconds * JOIN_SYNC_US, Timer::JoinSync);
        }
        self.joined_until_us = now_us + 35 * JOIN_SYNC_US;
    }

    /// A packet sent under this node's own name: from a newer process (this one yields, and
    /// hands it its table first) or from an older one (told of this one, and its table, if
    /// it hands one over as it yields, taken in).
    fn heard_own_name(
        &mut self,
        sender: &MemberId,
        from: SocketAddr,
        message: &Message,
        updates: &mut Vec<Update>,
        now_us: u64,
    ) {
        if sender.generation > self.me.generation {
            if self.status != LocalStatus::Yielded {
                // A handover: the newer process may know nobody else (it joined through this
                // node's address), and once this one is quiet it would never hear of the
                // cluster, nor why. Our table tells it both.
                let with_meta = self.table.len() <= 64;
                self.send_table(from, with_meta, false);
            }
            self.yield_name(sender, Some(from), now_us);
            return;
        }
        self.stats.stale += 1;
        if sender.generation == self.me.generation
            || !matches!(self.status, LocalStatus::Joining | LocalStatus::Active)
        {
            return;
        }
        if self.older_self_reported != sender.generation {
            // Once per older process: the one that yields says so in its own log, and the one
            // that took the name over should say it too.
            self.older_self_reported = sender.generation;
            self.self_event(
                now_us,
                EventKind::DisplacedOlder {
                    older_generation: sender.generation,
                    older_address: from.to_string(),
                },
            );
        }
        self.tell_older_self(from, now_us);
        if matches!(message, Message::Sync { .. }) {
            // Its table, handed over as it yields: the members it knew, so this one joins
            // them (itself excepted). A seed that answers so has answered the join.
            self.heard_from_seed(from, now_us);
            for update in updates.drain(..) {
                if update.id.name != self.me.name {
                    self.apply(update, now_us, Source::Table(&sender.name));
                }
            }
        }
    }

    /// Direct contact from `sender` (the header of a packet it sent). Returns whether it is
    /// new to us and whether its name was unknown, or `None` when it is an older generation
    /// than we know (drop the packet).
    fn contact(
        &mut self,
        sender: &MemberId,
        incarnation: u32,
        from: SocketAddr,
        now_us: u64,
    ) -> Option<(bool, bool)> {
        let found = self.table.find(&sender.name);
        let known = found.and_then(|slot| {
            self.table
                .get(slot)
                .map(|m| (slot, m.id.generation, m.state, m.incarnation))
        });
        let is_new = match known {
            Some((slot, generation, state, _)) if generation > sender.generation => {
                // An older process of a member we know by a newer one: still running (two
                // nodes were given one name). Without this it would never hear of its
                // successor, since everyone drops its packets, and would declare them dead.
                // Any claim of the newer generation but dead or left makes it yield.
                if matches!(state, MemberState::Alive | MemberState::Suspect) {
                    self.hint_with(slot, from, now_us, |member| {
                        Self::member_update(member, false)
                    });
                }
                return None;
            }
            Some((slot, generation, state, known_incarnation))
                if generation == sender.generation =>
            {
                if incarnation > known_incarnation {
                    // Alive at a higher incarnation than we hold it at, whatever the state:
                    // a refutation we hear first-hand (also after a partition heals).
                    self.heard_alive(sender, incarnation, from, now_us);
                } else if state != MemberState::Alive && incarnation <= known_incarnation {
                    // It talks to us but we hold it suspect or dead: tell it, so it refutes.
                    self.hint(slot, from, now_us);
                }
                false
            }
            _ => {
                self.heard_alive(sender, incarnation, from, now_us);
                true
            }
        };
        let phi_settings = self.config.phi;
        let up_count = self.up_count;
        // Applying an update never moves a member to another slot, so only a member just
        // added needs looking up again.
        let slot = match found {
            Some(slot) => Some(slot),
            None => self.table.find(&sender.name),
        };
        if let Some(member) = slot.and_then(|slot| self.table.get_mut(slot))
            && member.id.generation == sender.generation
        {
            member.phi.heard(now_us, up_count, &phi_settings);
            self.last_arrival_us = now_us;
            if member.address.is_none() {
                member.address = Some(from);
            }
        }
        Some((is_new, found.is_none()))
    }

    /// Tells a member we hold suspect or dead so, so it refutes.
    fn hint(&mut self, slot: Slot, to: SocketAddr, now_us: u64) {
        let accuser = self.me.name;
        // Named as the accuser, we get the refutation straight back.
        self.hint_with(slot, to, now_us, |member| Update {
            id: member.id,
            incarnation: member.incarnation,
            claim: Claim::Suspect { accuser },
        });
    }

    /// Sends `to` one update about the member in `slot`, made by `update`; at most once per
    /// hint interval per member, so a flood of packets cannot make this node flood back.
    fn hint_with(
        &mut self,
        slot: Slot,
        to: SocketAddr,
        now_us: u64,
        update: impl FnOnce(&Member) -> Update,
    ) {
        let Some(member) = self.table.get_mut(slot) else {
            return;
        };
        if now_us < member.last_hint_us + HINT_INTERVAL_US && member.last_hint_us != 0 {
            return;
        }
        member.last_hint_us = now_us.max(1);
        let update = update(member);
        self.send_updates_to(to, &[update]);
    }

    /// Tells an older process of this node's own name at `to` that this one carries it now,
    /// so it yields; at most once per hint interval, as [`Swim::hint_with`].
    fn tell_older_self(&mut self, to: SocketAddr, now_us: u64) {
        if self.older_self_told_us != 0 && now_us < self.older_self_told_us + HINT_INTERVAL_US {
            return;
        }
        self.older_self_told_us = now_us.max(1);
        let update = self.self_update(false);
        self.send_updates_to(to, &[update]);
    }

    fn yield_name(&mut self, winner: &MemberId, address: Option<SocketAddr>, now_us: u64) {
        if self.status == LocalStatus::Yielded {
            return;
        }
        self.status = LocalStatus::Yielded;
        self.queue.clear();
        self.probe = None;
        self.self_event(
            now_us,
            EventKind::NameConflict {
                winner_generation: winner.generation,
                winner_address: address.map(|a| a.to_string()),
            },
        );
    }

    /// An event about this node itself.
    fn self_event(&mut self, at_us: u64, kind: EventKind) {
        self.event(at_us, self.me, kind);
    }

    /// Names the member whose packet or member table carried the news of the event just
    /// recorded, when one did: an operator comparing members' accounts asks who said so.
    fn name_teller(&mut self, source: Source<'_>) {
        if let Source::Packet(sender) | Source::Table(sender) = source
            && let Some(Output::Event(event)) = self.out.last_mut()
        {
            event.told_by = Some(*sender);
        }
    }

    fn event(&mut self, at_us: u64, member: MemberId, kind: EventKind) {
        self.out.push(Output::Event(MemberEvent {
            at_us,
            member,
            kind,
            told_by: None,
        }));
    }

    /// Applies one update; returns whether it changed our view (and was queued to spread).
    /// A dead entry in a table (state exchange) only counts as a suspicion by its sender. A
    /// new member we hear of from a third party gets a hello from us (see `hello`).
    fn apply(&mut self, update: Update, now_us: u64, source: Source<'_>) -> bool {
        if update.id.name == self.me.name {
            self.apply_to_self(update, now_us, source);
            return false;
        }
        let says_down = matches!(update.claim, Claim::Dead | Claim::Left);
        // From the member itself: its packet's header, or its own update riding on it.
        let first_hand = match source {
            Source::Own => true,
            Source::Packet(sender) => *sender == update.id.name,
            Source::Table(_) => false,
        };
        let update = match (update.claim, source) {
            (Claim::Dead, Source::Table(sender)) => Update {
                id: update.id,
                incarnation: update.incarnation,
                claim: Claim::Suspect { accuser: *sender },
            },
            (claim, _) => Update {
                id: update.id,
                incarnation: update.incarnation,
                claim,
            },
        };
        // Heard of a new member from a third party: it may not know us (its seed's table
        // may have lacked us), and it learns of us from the hello.
        let hello = match (&update.claim, source) {
            (Claim::Alive { address, .. }, Source::Packet(sender)) if *sender != update.id.name => {
                Some(*address)
            }
            (Claim::Alive { address, .. }, Source::Table(sender))
                if *sender != update.id.name && !self.learning_quietly =>
            {
                Some(*address)
            }
            _ => None,
        };
        let Some(slot) = self.table.find(&update.id.name) else {
            // A member this node never knew, or has forgotten, said to be down: nothing to
            // learn. Taking it in would start its retention over here, and (as a table's
            // "dead" is taken as "suspect") have it "join" and "fail" again — and then spread
            // it back to members that had already forgotten it, round and round.
            if says_down {
                return false;
            }
            let inserted = self.insert_member(update, now_us, None);
            if inserted && let Some(address) = hello {
                self.hello(address);
            }
            return inserted;
        };
        let Some(member) = self.table.get(slot) else {
            return false;
        };
        if update.id.generation < member.id.generation {
            return false;
        }
        if update.id.generation > member.id.generation {
            let previous = member.id.generation;
            let was_up = member.state.is_up();
            let old_id = member.id;
            let old_address = member.address;
            // Replace in place: the member keeps its place in the probe order.
            self.queue.remove(slot);
            let changed = self.insert_member(update.clone(), now_us, Some(slot));
            if let Some(member) = self.table.get_mut(slot)
                && member.address.is_none()
            {
                member.address = old_address;
            }
            if matches!(update.claim, Claim::Alive { .. } | Claim::Suspect { .. }) {
                let moved_from = match (&update.claim, old_address) {
                    (Claim::Alive { address, .. }, Some(old)) if was_up && *address != old => {
                        Some(old.to_string())
                    }
                    _ => None,
                };
                self.event(
                    now_us,
                    update.id,
                    EventKind::Restarted {
                        previous_generation: previous,
                        moved_from,
                    },
                );
            } else if was_up {
                self.event(now_us, old_id, EventKind::Failed);
            }
            if changed && let Some(address) = hello {
                self.hello(address);
            }
            return changed;
        }
        let (state, incarnation) = (member.state, member.incarnation);
        match update.claim.clone() {
            Claim::Alive { address, meta } => {
                if update.incarnation > incarnation {
                    let was = state;
                    self.set_state(slot, MemberState::Alive, update.incarnation, now_us);
                    if let Some(member) = self.table.get_mut(slot) {
                        member.address = Some(address);
                        if let Some(meta) = meta
                            && member
                                .meta
                                .as_ref()
                                .is_none_or(|m| meta.version > m.version)
                        {
                            member.meta = Some(Box::new(meta));
                        }
                    }
                    if was != MemberState::Alive {
                        self.event(now_us, update.id, EventKind::Alive);
                    }
                    // Back from a pause, it may have heard only its suspicion (sent to it
                    // directly, and waiting in its socket), not its death: tell it, so that
                    // its own account says it was declared dead. Those it speaks to tell it,
                    // and of those who hear of it from others, about DEAD_NOTICE_TELLERS.
                    if was == MemberState::Dead
                        && (first_hand
                            || self.rng.below(self.up_count.max(1)) < DEAD_NOTICE_TELLERS)
                    {
                        self.hint_with(slot, address, now_us, |member| Update {
                            id: member.id,
                            incarnation,
                            claim: Claim::Dead,
                        });
                    }
                    self.enqueue(slot, without_meta(update));
                    true
                } else if update.incarnation == incarnation && state == MemberState::Alive {
                    let Some(member) = self.table.get_mut(slot) else {
                        return false;
                    };
                    let mut changed = false;
                    if member.address != Some(address) {
                        member.address = Some(address);
                        changed = true;
                    }
                    let mut meta_changed = false;
                    if let Some(meta) = meta {
                        match &member.meta {
                            // First metadata we hear of (from its announcement or a state
                            // exchange): keep it, nothing to spread.
                            None => member.meta = Some(Box::new(meta)),
                            Some(known) if meta.version > known.version => {
                                member.meta = Some(Box::new(meta));
                                meta_changed = true;
                            }
                            Some(_) => {}
                        }
                    }
                    if meta_changed {
                        self.enqueue(slot, update);
                    } else if changed {
                        self.enqueue(slot, without_meta(update));
                    }
                    changed || meta_changed
                } else {
                    false
                }
            }
            Claim::Suspect { accuser } => {
                let fresh = (state == MemberState::Alive && update.incarnation >= incarnation)
                    || (state == MemberState::Suspect && update.incarnation > incarnation);
                if fresh {
                    self.set_state(slot, MemberState::Suspect, update.incarnation, now_us);
                    // A few members (about PROMPT_PROBERS of the cluster) probe a fresh
                    // suspect at their next period instead of in turn, so a real crash
                    // gathers its confirmations in about a period, not in several seconds.
                    if accuser != self.me.name
                        && self.rng.unit() * (self.up_count.max(1) as f64) < PROMPT_PROBERS
                    {
                        let slot_ref = self.table.slot_ref(slot);
                        self.probe_first.push(slot_ref);
                    }
                    self.start_suspicion(slot, accuser, now_us);
                    self.event(
                        now_us,
                        update.id,
                        EventKind::Suspected {
                            by: accuser.to_string(),
                        },
                    );
                    self.enqueue(slot, update);
                    true
                } else if state == MemberState::Suspect && update.incarnation == incarnation {
                    // A confirmation shortens our timer; only its accuser spreads it, so
                    // confirmations do not each cost another dissemination wave.
                    self.confirm(slot, accuser, now_us);
                    false
                } else {
                    false
                }
            }
            Claim::Dead => {
                if state.is_up() && update.incarnation >= incarnation {
                    self.set_state(slot, MemberState::Dead, update.incarnation, now_us);
                    self.event(now_us, update.id, EventKind::Failed);
                    // Said with the verdict: this node's own, or news from another member.
                    self.name_teller(source);
                    self.enqueue(slot, update);
                    true
                } else {
                    false
                }
            }
            Claim::Left => {
                if state != MemberState::Left && update.incarnation >= incarnation {
                    self.set_state(slot, MemberState::Left, update.incarnation, now_us);
                    self.event(now_us, update.id, EventKind::Left);
                    self.enqueue(slot, update);
                    true
                } else {
                    false
                }
            }
        }
    }

    fn apply_to_self(&mut self, update: Update, now_us: u64, source: Source<'_>) {
        if update.id.generation > self.me.generation {
            let address = match &update.claim {
                Claim::Alive { address, .. } => Some(*address),
                _ => None,
            };
            if !matches!(update.claim, Claim::Dead | Claim::Left) {
                // Heard of from a third member: the newer process has not heard from this
                // one, and would never say that it displaced a live process (the README's
                // promise) nor where it ran. Our table, sent to it as a handover, tells it.
                if let Some(to) = address
                    && self.status != LocalStatus::Yielded
                {
                    let with_meta = self.table.len() <= 64;
                    self.send_table(to, with_meta, false);
                }
                self.yield_name(&update.id, address, now_us);
            }
            return;
        }
        if update.id.generation < self.me.generation || self.status == LocalStatus::Yielded {
            return;
        }
        let refute = match update.claim {
            Claim::Alive { .. } => update.incarnation > self.incarnation,
            Claim::Suspect { .. } | Claim::Dead => update.incarnation >= self.incarnation,
            Claim::Left => {
                self.status != LocalStatus::Leaving && update.incarnation >= self.incarnation
            }
        };
        if self.status == LocalStatus::Leaving {
            return;
        }
        if !refute {
            // The death that followed a suspicion already refuted: the refutation answers it
            // too (it carries a higher incarnation), but the node was declared dead, and says so.
            if matches!(update.claim, Claim::Dead)
                && self.refuted_suspicion == Some(update.incarnation)
            {
                self.refuted_suspicion = None;
                self.self_event(
                    now_us,
                    EventKind::Refuted {
                        incarnation: self.incarnation,
                        declared_dead: true,
                    },
                );
                self.name_teller(source);
            }
            return;
        }
        match update.incarnation.checked_add(1) {
            Some(next) => self.incarnation = next,
            // Claimed at the last incarnation there is (forged, or corrupted on the way): no
            // higher one can answer it, and the node would stay suspected or dead to every
            // member for good. A new generation of this name outranks any claim about the
            // old one; the others take it as this node restarted.
            None => self.renew_generation(),
        }
        self.refuted_suspicion = None;
        if !matches!(update.claim, Claim::Alive { .. }) {
            self.awareness = (self.awareness + 1).min(self.config.awareness_max);
            self.stats.refutations += 1;
            let declared_dead = matches!(update.claim, Claim::Dead);
            if !declared_dead {
                self.refuted_suspicion = Some(update.incarnation);
            }
            self.self_event(
                now_us,
                EventKind::Refuted {
                    incarnation: self.incarnation,
                    declared_dead,
                },
            );
            if declared_dead {
                self.name_teller(source);
            }
        }
        let mine = self.self_update(false);
        self.enqueue(SELF_KEY, mine.clone());
        // The accuser would declare us dead first: tell it directly as well.
        if let Claim::Suspect { accuser } = &update.claim
            && let Some(address) = self
                .table
                .find(accuser)
                .and_then(|s| self.table.get(s))
                .and_then(|m| m.address)
        {
            self.send_updates_to(address, &[mine]);
        }
    }

    /// Takes the next generation of this node's name, at incarnation 0 (see the refutation
    /// of a claim made at `u32::MAX`).
    fn renew_generation(&mut self) {
        self.me.generation = self.me.generation.saturating_add(1);
        self.incarnation = 0;
        // The cached packet head names the old generation.
        self.head_prefix_incarnation = None;
    }

    /// Puts the member of `update` in the table: in a new slot (`into` = `None`; the table
    /// may have to forget a dead member first), or in place of the old generation in `into`.
    /// Returns whether it is up (and was queued to spread).
    fn insert_member(&mut self, update: Update, now_us: u64, into: Option<Slot>) -> bool {
        if into.is_none() && self.table.len() >= self.config.max_members && !self.evict_one() {
            self.stats.table_full += 1;
            return false;
        }
        let (state, address, meta, accuser) = match update.claim.clone() {
            Claim::Alive { address, meta } => (MemberState::Alive, Some(address), meta, None),
            Claim::Suspect { accuser } => (MemberState::Suspect, None, None, Some(accuser)),
            Claim::Dead => (MemberState::Dead, None, None, None),
            Claim::Left => (MemberState::Left, None, None, None),
        };
        let member = Member {
            present: true,
            id: update.id,
            incarnation: update.incarnation,
            state,
            degraded: false,
            address,
            since_us: now_us,
            last_hint_us: 0,
            phi: PhiWindow::default(),
            meta: meta.map(Box::new),
            suspicion: None,
        };
        let slot = match into {
            Some(slot) => {
                if self.table.get(slot).is_some_and(|m| m.state.is_up()) {
                    self.up_count = self.up_count.saturating_sub(1);
                }
                self.table.replace(slot, member);
                slot
            }
            None => {
                let slot = self.table.insert(member);
                // A new member goes to a random place in the probe order (SWIM's round
                // robin).
                let at = self.rng.below(self.probe_order.len() + 1);
                self.probe_order.insert(at, slot);
                if at < self.probe_cursor {
                    self.probe_cursor += 1;
                }
                slot
            }
        };
        if state.is_up() {
            self.up_count += 1;
            // A new generation in place of the old is reported by the caller as a restart,
            // once, not also as a join.
            if into.is_none() {
                self.event(now_us, update.id, EventKind::Joined);
            }
        }
        if state == MemberState::Dead {
            let slot_ref = self.table.slot_ref(slot);
            self.dead.push(slot_ref);
        }
        if !state.is_up() {
            self.note_down(now_us);
        }
        if self.dead.len() > 2 * self.config.max_members {
            let table = &self.table;
            self.dead.retain(|r| {
                table
                    .resolve(*r)
                    .is_some_and(|m| m.state == MemberState::Dead)
            });
            self.dead.sort_unstable();
            self.dead.dedup();
        }
        if let Some(accuser) = accuser {
            self.start_suspicion(slot, accuser, now_us);
        }
        // A fresh joiner learning the cluster from tables: those members are news to it
        // alone, and spreading each would cost the cluster a wave per member per join.
        let spread = state.is_up() && !self.learning_quietly;
        if spread {
            self.enqueue(slot, without_meta(update));
        }
        spread
    }

    fn evict_one(&mut self) -> bool {
        let victim = self
            .table
            .iter()
            .filter(|(_, m)| !m.state.is_up())
            .min_by_key(|(_, m)| m.since_us)
            .map(|(slot, _)| slot);
        match victim {
            Some(slot) => {
                self.remove_member(slot);
                true
            }
            None => false,
        }
    }

    fn remove_member(&mut self, slot: Slot) {
        if let Some(member) = self.table.remove(slot) {
            if member.state.is_up() {
                self.up_count = self.up_count.saturating_sub(1);
            }
            if let Some(index) = self.probe_order.iter().position(|s| *s == slot) {
                self.probe_order.remove(index);
                if index < self.probe_cursor {
                    self.probe_cursor -= 1;
                }
            }
            self.queue.remove(slot);
        }
    }

    fn set_state(&mut self, slot: Slot, state: MemberState, incarnation: u32, now_us: u64) {
        let slot_ref = self.table.slot_ref(slot);
        let Some(member) = self.table.get_mut(slot) else {
            return;
        };
        let was_up = member.state.is_up();
        let went_dead = member.state != state && state == MemberState::Dead;
        if member.state != state {
            member.since_us = now_us;
        }
        member.state = state;
        member.incarnation = incarnation;
        if state != MemberState::Suspect {
            member.suspicion = None;
        }
        if !state.is_up() {
            member.degraded = false;
        }
        if !was_up && state.is_up() {
            // Back from dead or left, maybe on another member's word: its silence while down
            // is no silence of a live member (phi read 999 and flagged it degraded a moment
            // after it was said to be alive again).
            member.phi.skip_silence_until(now_us);
        }
        if went_dead {
            self.dead.push(slot_ref);
        }
        if !state.is_up() {
            self.note_down(now_us);
        }
        match (was_up, state.is_up()) {
            (true, false) => self.up_count = self.up_count.saturating_sub(1),
            (false, true) => self.up_count += 1,
            _ => {}
        }
    }

    fn start_suspicion(&mut self, slot: Slot, accuser: Name, now_us: u64) {
        let mut suspicion = Suspicion {
            started_us: now_us,
            accusers: vec![accuser],
            deadline_us: 0,
            last_chance: false,
            last_probe_failed: false,
            deferrals: 0,
        };
        suspicion.deadline_us = self.suspicion_deadline(&suspicion);
        let deadline = suspicion.deadline_us;
        let target = self.table.slot_ref(slot);
        let Some(member) = self.table.get_mut(slot) else {
            return;
        };
        member.suspicion = Some(Box::new(suspicion));
        let timer = Timer::Suspicion {
            target,
            incarnation: member.incarnation,
        };
        self.schedule(deadline, timer);
    }

    /// Counts an independent accuser; returns whether it was new.
    fn confirm(&mut self, slot: Slot, accuser: Name, _now_us: u64) -> bool {
        let cap = self.config.indirect_probes + 1;
        let target = self.table.slot_ref(slot);
        let Some(member) = self.table.get(slot) else {
            return false;
        };
        let incarnation = member.incarnation;
        let Some(suspicion) = &member.suspicion else {
            return false;
        };
        if suspicion.accusers.contains(&accuser) || suspicion.accusers.len() >= cap {
            return false;
        }
        let mut deadline = self.deadline_with(suspicion.started_us, suspicion.accusers.len() + 1);
        // Waiting for our last check: one more accuser that still leaves the suspicion
        // unconfirmed must not bring the verdict forward past the check.
        if suspicion.last_chance && suspicion.accusers.len() < self.config.indirect_probes {
            deadline = deadline.max(suspicion.deadline_us);
        }
        if let Some(suspicion) = self
            .table
            .get_mut(slot)
            .and_then(|m| m.suspicion.as_deref_mut())
        {
            suspicion.accusers.push(accuser);
            suspicion.deadline_us = deadline;
        }
        self.schedule(
            deadline,
            Timer::Suspicion {
                target,
                incarnation,
            },
        );
        true
    }

    fn note_down(&mut self, since_us: u64) {
        self.earliest_down_us = Some(self.earliest_down_us.map_or(since_us, |e| e.min(since_us)));
    }

    fn reap(&mut self, now_us: u64) {
        let retention = micros(self.config.dead_retention);
        // No member has been down long enough yet: nothing to look for.
        match self.earliest_down_us {
            None => return,
            Some(earliest) if now_us.saturating_sub(earliest) < retention => return,
            Some(_) => {}
        }
        let expired: Vec<(Slot, MemberId)> = self
            .table
            .iter()
            .filter(|(_, m)| !m.state.is_up() && now_us.saturating_sub(m.since_us) >= retention)
            .map(|(slot, m)| (slot, m.id))
            .collect();
        for (slot, id) in expired {
            self.remove_member(slot);
            self.event(now_us, id, EventKind::Forgotten);
        }
        self.earliest_down_us = self
            .table
            .iter()
            .filter(|(_, m)| !m.state.is_up())
            .map(|(_, m)| m.since_us)
            .min();
    }
}

/// Updates waiting to be spread, at most one per member (a newer one replaces the queued one
/// and starts over), keyed by the member's slot ([`SELF_KEY`] for this node). Entries live
/// in a slab; buckets list them by how often they were sent, each oldest to newest, with
/// their sizes, so choosing the fewest-sent, newest ones for a packet is one pass over small
/// records with no sort, and only the chosen updates are read.
#[derive(Debug, Default)]
struct Dissemination {
    entries: Vec<Queued>,
    free: Vec<u32>,
    by_slot: Vec<u32>,
    own: Option<u32>,
    buckets: Vec<Vec<Listed>>,
    len: usize,
    order: u64,
    /// (bucket, position) of the updates chosen for the packet being written (reused).
    chosen: Vec<(u32, u32)>,
    /// Scratch bucket for merges (reused).
    merged: Vec<Listed>,
}

#[derive(Debug, Clone)]
struct Queued {
    /// The update, encoded once when queued (it is sent several times); the buffer stays
    /// with the slab entry for the next update queued there.
    bytes: Vec<u8>,
    key: u32,
    transmits: u32,
    /// Its place in the queue's order (as its bucket lists it).
    order: u64,
}

/// An entry as its bucket lists it.
#[derive(Debug, Clone, Copy)]
struct Listed {
    order: u64,
    entry: u32,
    size: u32,
}

impl Dissemination {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.free.clear();
        self.by_slot.clear();
        self.own = None;
        self.buckets.clear();
        self.len = 0;
    }

    fn entry_of(&self, key: u32) -> Option<u32> {
        if key == SELF_KEY {
            self.own
        } else {
            self.by_slot
                .get(key as usize)
                .copied()
                .filter(|&e| e != NO_SLOT)
        }
    }

    fn set_entry(&mut self, key: u32, entry: Option<u32>) {
        if key == SELF_KEY {
            self.own = entry;
            return;
        }
        let index = key as usize;
        if self.by_slot.len() <= index {
            self.by_slot.resize(index + 1, NO_SLOT);
        }
        self.by_slot[index] = entry.unwrap_or(NO_SLOT);
    }

    /// Forgets an entry that is in no bucket any more.
    fn release(&mut self, entry: u32) {
        let key = self.entries[entry as usize].key;
        self.set_entry(key, None);
        self.free.push(entry);
        self.len -= 1;
    }

    fn remove(&mut self, key: u32) {
        let Some(entry) = self.entry_of(key) else {
            return;
        };
        let Queued {
            transmits, order, ..
        } = self.entries[entry as usize];
        // Buckets are sorted by order: found by bisection, not by a scan.
        if let Some(bucket) = self.buckets.get_mut(transmits as usize)
            && let Ok(at) = bucket.binary_search_by_key(&order, |l| l.order)
        {
            bucket.remove(at);
        }
        self.release(entry);
    }

    /// Queues `update` for `key`; returns true when the queue was full and the most-sent,
    /// oldest entry was dropped for it.
    fn push(&mut self, key: u32, update: &Update, cap: usize) -> bool {
        self.remove(key);
        let mut dropped = false;
        if self.len >= cap
            && let Some(fullest) = self.buckets.iter().rposition(|b| !b.is_empty())
        {
            let victim = self.buckets[fullest].remove(0);
            self.release(victim.entry);
            dropped = true;
        }
        if self.buckets.is_empty() {
            self.buckets.push(Vec::new());
        }
        self.order += 1;
        let entry = match self.free.pop() {
            Some(entry) => entry,
            None => {
                self.entries.push(Queued {
                    bytes: Vec::new(),
                    key,
                    transmits: 0,
                    order: 0,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let queued = &mut self.entries[entry as usize];
        queued.key = key;
        queued.transmits = 0;
        queued.order = self.order;
        queued.bytes.clear();
        // An update that cannot be encoded (its fields are bounded, so none) never fits.
        let size = wire::encode_update(&mut queued.bytes, update).unwrap_or_else(|_| {
            queued.bytes.clear();
            usize::MAX / 4
        });
        self.buckets[0].push(Listed {
            order: self.order,
            entry,
            size: u32::try_from(size).unwrap_or(u32::MAX),
        });
        self.set_entry(key, Some(entry));
        self.len += 1;
        dropped
    }

    /// Whether `key` has an update sent fewer than `times` times.
    fn holds_below(&self, key: u32, times: u32) -> bool {
        self.entry_of(key)
            .is_some_and(|e| self.entries[e as usize].transmits < times)
    }

    /// Writes the updates that fit in `budget` bytes to `buffer` (their count, then each),
    /// fewest-sent first and newest first among equals; counts the send, and forgets
    /// updates sent `limit` times.
    fn select_into(
        &mut self,
        mut budget: usize,
        limit: u32,
        buffer: &mut Vec<u8>,
    ) -> Result<(), crate::codec::CodecError> {
        let mut chosen = std::mem::take(&mut self.chosen);
        chosen.clear();
        for (transmits, bucket) in self.buckets.iter().enumerate() {
            if budget < 8 {
                break;
            }
            for (at, listed) in bucket.iter().enumerate().rev() {
                if budget < 8 {
                    break;
                }
                let size = listed.size as usize;
                if size <= budget {
                    budget -= size;
                    chosen.push((transmits as u32, at as u32));
                }
            }
        }
        let written = wire::encode_update_count(buffer, chosen.len()).map(|_| ());
        if written.is_ok() {
            for &(transmits, at) in &chosen {
                let entry = self.buckets[transmits as usize][at as usize].entry;
                buffer.extend_from_slice(&self.entries[entry as usize].bytes);
            }
        }
        if written.is_ok() {
            self.advance(&chosen, limit);
        }
        self.chosen = chosen;
        written
    }

    /// Moves the sent entries one bucket up (or out at `limit`). `chosen` lists them bucket
    /// by bucket, fewest-sent first, each bucket's from its end (newest) backwards.
    fn advance(&mut self, chosen: &[(u32, u32)], limit: u32) {
        let mut end = chosen.len();
        // Highest bucket first, so entries moved into a bucket are never its chosen ones.
        while end > 0 {
            let transmits = chosen[end - 1].0;
            let mut start = end - 1;
            while start > 0 && chosen[start - 1].0 == transmits {
                start -= 1;
            }
            let next = transmits + 1;
            // The group's positions descend; walk them ascending and compact the bucket in
            // one pass, collecting the sent ones oldest to newest.
            let mut moving = std::mem::take(&mut self.merged);
            moving.clear();
            let bucket = &mut self.buckets[transmits as usize];
            let mut positions = chosen[start..end]
                .iter()
                .rev()
                .map(|c| c.1 as usize)
                .peekable();
            let first = positions.peek().copied().unwrap_or(bucket.len());
            let mut write = first;
            for read in first..bucket.len() {
                if positions.peek() == Some(&read) {
                    positions.next();
                    moving.push(bucket[read]);
                } else {
                    bucket[write] = bucket[read];
                    write += 1;
                }
            }
            bucket.truncate(write);
            for listed in &moving {
                self.entries[listed.entry as usize].transmits = next;
            }
            if next >= limit {
                for listed in moving.drain(..) {
                    self.release(listed.entry);
                }
            }
            if !moving.is_empty() {
                while self.buckets.len() <= next as usize {
                    self.buckets.push(Vec::new());
                }
                let target = &mut self.buckets[next as usize];
                // Merge, oldest to newest; usually the moved ones are the newest and go last.
                let first = target.partition_point(|l| l.order < moving[0].order);
                if first == target.len() {
                    target.extend_from_slice(&moving);
                } else {
                    // One pass from the back: the tail of the bucket from `first` on and the
                    // moved entries, both sorted, merged in place (no shift per entry).
                    let old_len = target.len();
                    target.resize(old_len + moving.len(), moving[0]);
                    let mut read = old_len;
                    let mut write = target.len();
                    let mut rest = moving.len();
                    while rest > 0 {
                        write -= 1;
                        if read > first && target[read - 1].order > moving[rest - 1].order {
                            read -= 1;
                            target[write] = target[read];
                        } else {
                            rest -= 1;
                            target[write] = moving[rest];
                        }
                    }
                }
            }
            self.merged = moving;
            end = start;
        }
    }
}

#[cfg(test)]
mod tests;
