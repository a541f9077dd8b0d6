//! A seeded discrete-event simulator of cluster membership in virtual time.
//!
//! It runs N members of one protocol — Goliath's SWIM core, or foca as shipped
//! (`Config::new_lan`) or tuned — over a network model with per-packet loss, delay, a
//! partition and crashes with restarts, and measures what users of a membership layer care
//! about. Nothing here is wall-clock: a run is a function of its seed.
//!
//! Scenario (times in virtual seconds):
//! 1. warm-up: members start 10 ms apart, each joining a random member already started,
//!    then 30 s to settle;
//! 2. churn for `minutes`: a random live member crashes every 60 s / `crashes_per_minute`
//!    and restarts (new generation, joining a random live member) `restart_after` later;
//! 3. drain: no new crashes; the last restart is followed until every live member lists
//!    every live member (`churn_roster_s`, from the last restart);
//! 4. partition: a random `partition_fraction` of members is cut off from the rest for
//!    `partition_for`, then healed; `heal_full_s` is the time from the heal until every
//!    live member lists every live member again.
//!
//! Metrics (per protocol, identities counted per generation):
//! - `detect_p50_s`/`detect_p99_s`: per crash during churn, the time until 99% of the live
//!   members that listed the crashed identity have declared it down (censored at the
//!   restart, i.e. counted as `restart_after`; a crash of a member nobody lists yet, just
//!   restarted, is not counted);
//! - `false_down`: "down" verdicts (first-hand or learned) on an identity that was alive,
//!   during churn and drain (phases 2 and 3: the network is whole then);
//! - `live_identity_changes`: live members that had to take a new identity, same phases
//!   (foca renews a member's identity when it learns it was declared down; Goliath refutes
//!   by raising its incarnation instead, and would only count here on a name conflict);
//! - `bytes_per_node_s`: UDP payload bytes sent during churn, per member per second;
//! - `join_all_s`: p99 over restarts of the time until 99.99% of the live members list
//!   the new identity (a restart that crashes again before that is not counted);
//! - `heal_full_s`: time from the heal until every live member lists every live member
//!   (`null`: not within `settle_cap`, 120 s);
//! - table only: `roster` (time from the last restart after churn to a full roster),
//!   `join_max`, and crashes seen by 99% before their restart.
//!
//! `GOSSIP_SIM_DEBUG=1` prints what is missing when a roster or a join lags and the wall
//! time of each phase, `GOSSIP_SIM_CPU=1` only the wall and CPU time and the events of each
//! phase, per protocol, `GOSSIP_SIM_BYTES=1` splits Goliath's bytes by message and update
//! kind, and `GOSSIP_SIM_TRACE=<index>` prints every datagram to, from or about that member
//! (decoded, for Goliath) and every verdict on it, with the virtual time.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use goliath::runtime::gossip::rng::SeededRng;
use goliath::runtime::gossip::{EventKind, MemberId, MemberMeta, Name, Output, Swim, SwimConfig};

const SECOND: u64 = 1_000_000;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Members.
    pub nodes: usize,
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Length of the churn phase, minutes.
    pub minutes: f64,
    /// Seed of everything random.
    pub seed: u64,
    /// Crashes per minute during churn.
    pub crashes_per_minute: f64,
    /// Time from a crash to the restart.
    pub restart_after: Duration,
    /// One-way delay, uniform in this range (µs).
    pub delay_us: (u64, u64),
    /// Share of members cut off in the partition (0 = no partition phase).
    pub partition_fraction: f64,
    /// How long the partition lasts.
    pub partition_for: Duration,
    /// Longest wait for a full roster after a heal or after churn.
    pub settle_cap: Duration,
}

impl Scenario {
    /// The scenario for N members, loss P, M minutes, seed S.
    pub fn standard(nodes: usize, loss: f64, minutes: f64, seed: u64) -> Scenario {
        Scenario {
            nodes,
            loss,
            minutes,
            seed,
            crashes_per_minute: 10.0,
            restart_after: Duration::from_secs(60),
            delay_us: (500, 2_000),
            partition_fraction: 0.3,
            partition_for: Duration::from_secs(90),
            // Four times the heal target (70 s): long enough to measure every protocol that
            // converges at all, and it keeps the runs of those that never do short.
            settle_cap: Duration::from_secs(120),
        }
    }
}

/// The measured outcome of one protocol.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// `goliath`, `foca_lan` or `foca_tuned`.
    pub protocol: &'static str,
    /// Median time until 99% see a crash as down, seconds.
    pub detect_p50_s: Option<f64>,
    /// 99th percentile of the same.
    pub detect_p99_s: Option<f64>,
    /// Down verdicts on live, reachable identities.
    pub false_down: u64,
    /// Phi's degraded flags on live, reachable identities (warm-up, churn and drain).
    #[serde(skip)]
    pub degraded_live: u64,
    /// Identity changes of live members.
    pub live_identity_changes: u64,
    /// Payload bytes per member per second during churn.
    pub bytes_per_node_s: f64,
    /// p99 of the time for a restarted member to be listed by 99.99%, seconds.
    pub join_all_s: Option<f64>,
    /// Time from the heal to a full roster, seconds (None: not within the cap).
    pub heal_full_s: Option<f64>,
    /// Time from the last restart after churn to a full roster (None: not within the cap).
    #[serde(skip)]
    pub churn_roster_s: Option<f64>,
    /// Crashes measured.
    #[serde(skip)]
    pub crashes: usize,
    /// Crashes not seen by 99% before the restart.
    #[serde(skip)]
    pub undetected: usize,
    /// Slowest join, seconds.
    #[serde(skip)]
    pub join_max_s: Option<f64>,
    /// Packets sent during churn.
    #[serde(skip)]
    pub packets: u64,
    /// Refutations by members alive at the end of the churn phase.
    #[serde(skip)]
    pub refutations: u64,
    /// The virtual time the run ended at, µs.
    #[serde(skip)]
    pub end_us: u64,
}

/// A membership notification, reduced to what the metrics need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// The observer lists this identity (index, generation).
    Up(u32, u32),
    /// The observer no longer lists it (down or left).
    Down(u32, u32),
    /// The observer itself took a new identity while alive.
    Renewed(u32),
    /// The observer's phi flags this identity degraded (Goliath only).
    Degraded(u32, u32),
}

/// What one step of a member asks for.
pub struct Effects<T> {
    /// Datagrams: (destination index, bytes).
    pub sends: Vec<(u32, Vec<u8>)>,
    /// Timers: (virtual µs, payload).
    pub timers: Vec<(u64, T)>,
    /// Notifications.
    pub notes: Vec<Note>,
    /// Datagram buffers to reuse, so a packet in flight costs no allocation.
    pub pool: Vec<Vec<u8>>,
}

impl<T> Default for Effects<T> {
    fn default() -> Self {
        Self {
            sends: Vec::new(),
            timers: Vec::new(),
            notes: Vec::new(),
            pool: Vec::new(),
        }
    }
}

/// Buffers kept for reuse at most (a few thousand packets are in flight at N = 1,000).
const POOL_CAP: usize = 1 << 14;

impl<T> Effects<T> {
    /// A buffer holding a copy of `bytes`, reused when one is free.
    pub fn buffer_from(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buffer = self.pool.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(bytes);
        buffer
    }

    /// Gives a buffer back for reuse.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        if self.pool.len() < POOL_CAP {
            self.pool.push(buffer);
        }
    }
}

/// A membership protocol the simulator can run.
pub trait Protocol: Sync {
    /// One member.
    type Node;
    /// A timer payload.
    type Timer: Clone;
    /// The name in reports.
    fn name(&self) -> &'static str;
    /// Starts member `index` in `generation`, joining `seed` (index, generation) if given.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        index: u32,
        generation: u32,
        cluster_size: usize,
        rng_seed: u64,
        join: Option<(u32, u32)>,
        now: u64,
        fx: &mut Effects<Self::Timer>,
    ) -> Self::Node;
    /// Delivers a datagram from `from`.
    fn packet(
        &self,
        node: &mut Self::Node,
        from: u32,
        bytes: &[u8],
        now: u64,
        fx: &mut Effects<Self::Timer>,
    );
    /// Takes back the buffer of a datagram that was delivered to (or lost on its way from)
    /// `node`, for reuse.
    fn recycle(&self, _node: &mut Self::Node, buffer: Vec<u8>, fx: &mut Effects<Self::Timer>) {
        fx.recycle(buffer);
    }
    /// Times `node` refuted a suspicion of itself (0 when the protocol does not say).
    fn refutations(&self, _node: &Self::Node) -> u64 {
        0
    }
    /// What `node` knows about `subject` (debugging).
    fn describe(&self, _node: &Self::Node, _subject: u32) -> String {
        String::new()
    }
    /// A datagram in words (tracing).
    fn explain(&self, _bytes: &[u8]) -> String {
        String::new()
    }
    /// Fires a timer.
    fn timer(
        &self,
        node: &mut Self::Node,
        timer: Self::Timer,
        now: u64,
        fx: &mut Effects<Self::Timer>,
    );
}

// ------------------------------------------------------------------ Goliath

/// Goliath's SWIM core with its shipped defaults.
#[derive(Default)]
pub struct Goliath {
    /// The core's settings.
    pub config: SwimConfig,
}

/// A simulated member's name: "n" and three base-36 digits (5 bytes on the wire with its
/// length, plus a one-byte generation: the 6-byte identity foca gets too).
pub fn sim_name(index: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut text = String::from("n");
    for shift in [1296, 36, 1] {
        text.push(DIGITS[(index / shift % 36) as usize] as char);
    }
    text
}

fn sim_index(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('n')?;
    u32::from_str_radix(digits, 36).ok()
}

/// A member's simulated gossip address.
pub fn sim_address(index: u32) -> SocketAddr {
    let [_, a, b, c] = index.to_be_bytes();
    SocketAddr::from((Ipv4Addr::new(10, a, b, c), 7421))
}

fn sim_address_index(address: SocketAddr) -> Option<u32> {
    match address {
        SocketAddr::V4(v4) => {
            let [_, a, b, c] = v4.ip().octets();
            Some(u32::from_be_bytes([0, a, b, c]))
        }
        SocketAddr::V6(_) => None,
    }
}

/// A simulated member of Goliath: the core plus its last requested wake-up.
pub struct GoliathNode {
    swim: Swim,
    wake: Option<u64>,
}

fn goliath_flush(node: &mut GoliathNode, fx: &mut Effects<()>) {
    for output in node.swim.drain_outputs() {
        match output {
            Output::Send { to, bytes } => {
                if DEBUG_BYTES.load(std::sync::atomic::Ordering::Relaxed) {
                    debug_bytes(&bytes);
                }
                if let Some(index) = sim_address_index(to) {
                    fx.sends.push((index, bytes));
                }
            }
            Output::Event(event) => {
                let Some(index) = sim_index(event.member.name.as_str()) else {
                    continue;
                };
                let generation = event.member.generation as u32;
                match event.kind {
                    EventKind::Joined | EventKind::Alive => {
                        fx.notes.push(Note::Up(index, generation))
                    }
                    EventKind::Restarted {
                        previous_generation,
                        ..
                    } => {
                        fx.notes.push(Note::Down(index, previous_generation as u32));
                        fx.notes.push(Note::Up(index, generation));
                    }
                    EventKind::Failed | EventKind::Left => {
                        fx.notes.push(Note::Down(index, generation))
                    }
                    EventKind::NameConflict { .. } => fx.notes.push(Note::Renewed(generation)),
                    EventKind::Degraded { .. } => fx.notes.push(Note::Degraded(index, generation)),
                    _ => {}
                }
            }
        }
    }
    let next = node.swim.poll_timeout();
    if let Some(at) = next
        && node.wake.is_none_or(|w| at < w)
    {
        node.wake = Some(at);
        fx.timers.push((at, ()));
    }
}

static DEBUG_BYTES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static DEBUG_WANTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static BYTE_COUNTS: std::sync::Mutex<Vec<(String, u64, u64, u64)>> =
    std::sync::Mutex::new(Vec::new());

fn debug_bytes(bytes: &[u8]) {
    use goliath::runtime::gossip::wire;
    let Ok(packet) = wire::decode_packet(bytes, 1400, wire::cluster_tag("goliath")) else {
        return;
    };
    let kind = format!("{:?}", packet.message)
        .split([' ', '{'])
        .next()
        .unwrap_or("")
        .to_string();
    let updates: u64 = packet
        .updates
        .iter()
        .map(|u| wire::update_len(u) as u64)
        .sum();
    let mut counts = BYTE_COUNTS.lock().unwrap();
    for u in &packet.updates {
        let claim = match &u.claim {
            wire::Claim::Alive { meta: Some(_), .. } => "U:alive+meta",
            wire::Claim::Alive { .. } => "U:alive",
            wire::Claim::Suspect { .. } => "U:suspect",
            wire::Claim::Dead => "U:dead",
            wire::Claim::Left => "U:left",
        };
        let claim = if matches!(packet.message, wire::Message::Sync { .. }) {
            format!("S{claim}")
        } else {
            claim.to_string()
        };
        let len = wire::update_len(u) as u64;
        match counts.iter_mut().find(|c| c.0 == claim) {
            Some(c) => {
                c.1 += 1;
                c.2 += len;
            }
            None => counts.push((claim, 1, len, 0)),
        }
    }
    match counts.iter_mut().find(|c| c.0 == kind) {
        Some(c) => {
            c.1 += 1;
            c.2 += bytes.len() as u64;
            c.3 += updates;
        }
        None => counts.push((kind, 1, bytes.len() as u64, updates)),
    }
}

/// Prints bytes by message kind (debugging).
pub fn print_byte_counts() {
    for c in BYTE_COUNTS.lock().unwrap().iter() {
        eprintln!(
            "{:<10} packets {:>9} bytes {:>11} update bytes {:>11}",
            c.0, c.1, c.2, c.3
        );
    }
}

/// Turns on byte accounting by message kind.
pub fn debug_bytes_on() {
    DEBUG_WANTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn debug_bytes_measuring(on: bool) {
    let wanted = DEBUG_WANTED.load(std::sync::atomic::Ordering::Relaxed);
    DEBUG_BYTES.store(on && wanted, std::sync::atomic::Ordering::Relaxed);
}

/// Metadata of the size a real node gossips.
pub fn sim_meta(index: u32) -> MemberMeta {
    MemberMeta {
        version: 1,
        protocol_address: format!("10.0.{}.{}:7420", index / 256, index % 256),
        workers: 8,
        queue_depth: 0,
        arena_free: 65_536,
        load: 0.0,
    }
}

impl Protocol for Goliath {
    type Node = GoliathNode;
    type Timer = ();

    fn name(&self) -> &'static str {
        "goliath"
    }

    fn start(
        &self,
        index: u32,
        generation: u32,
        _cluster_size: usize,
        rng_seed: u64,
        join: Option<(u32, u32)>,
        now: u64,
        fx: &mut Effects<()>,
    ) -> GoliathNode {
        let id = MemberId {
            name: Name::new(&sim_name(index)).expect("simulated names are valid"),
            generation: u64::from(generation),
        };
        let mut swim = Swim::new(
            self.config.clone(),
            id,
            sim_address(index),
            sim_meta(index),
            rng_seed,
            now,
        );
        if let Some((seed, _)) = join {
            swim.join(&[sim_address(seed)], now);
        }
        let mut node = GoliathNode { swim, wake: None };
        goliath_flush(&mut node, fx);
        node
    }

    fn recycle(&self, node: &mut GoliathNode, buffer: Vec<u8>, _fx: &mut Effects<()>) {
        node.swim.recycle(buffer);
    }

    fn refutations(&self, node: &GoliathNode) -> u64 {
        node.swim.stats().refutations
    }

    fn describe(&self, node: &GoliathNode, subject: u32) -> String {
        if sim_name(subject) == node.swim.id().name.as_str() {
            return format!(
                "self: {:?} up {} stats {:?}",
                node.swim.status(),
                node.swim.up_count(),
                node.swim.stats()
            );
        }
        format!("{:?}", node.swim.member_state(&sim_name(subject)))
    }

    fn explain(&self, bytes: &[u8]) -> String {
        use goliath::runtime::gossip::wire;
        match wire::decode_packet(bytes, usize::MAX, wire::cluster_tag("goliath")) {
            Ok(packet) => {
                let updates: Vec<String> = packet
                    .updates
                    .iter()
                    .map(|u| {
                        let claim = match &u.claim {
                            wire::Claim::Alive { meta: Some(_), .. } => "alive+meta".to_string(),
                            wire::Claim::Alive { .. } => "alive".to_string(),
                            wire::Claim::Suspect { accuser } => format!("suspect by {accuser}"),
                            wire::Claim::Dead => "dead".to_string(),
                            wire::Claim::Left => "left".to_string(),
                        };
                        format!("{:?}@{} {claim}", u.id, u.incarnation)
                    })
                    .collect();
                format!(
                    "{:?}@{} {:?} [{}]",
                    packet.from,
                    packet.incarnation,
                    packet.message,
                    updates.join(", ")
                )
            }
            Err(error) => format!("undecodable: {error}"),
        }
    }

    fn packet(
        &self,
        node: &mut GoliathNode,
        from: u32,
        bytes: &[u8],
        now: u64,
        fx: &mut Effects<()>,
    ) {
        let _ = node.swim.handle_packet(sim_address(from), bytes, now);
        goliath_flush(node, fx);
    }

    fn timer(&self, node: &mut GoliathNode, _timer: (), now: u64, fx: &mut Effects<()>) {
        // `wake` is never later than the core's first timer (and `None` only when it has
        // none), so a wake-up that is not due is one superseded by an earlier request: the
        // core has nothing to do now, and is not woken for nothing.
        if node.wake.is_none_or(|w| w > now) {
            return;
        }
        node.wake = None;
        node.swim.handle_timeout(now);
        goliath_flush(node, fx);
    }
}

// ------------------------------------------------------------------ foca

/// foca's identity in the simulator: a 4-byte address and a 2-byte generation (6 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FocaId {
    addr: [u8; 4],
    generation: [u8; 2],
}

impl FocaId {
    fn new(index: u32, generation: u32) -> Self {
        Self {
            addr: index.to_be_bytes(),
            generation: (generation as u16).to_be_bytes(),
        }
    }
    fn index(&self) -> u32 {
        u32::from_be_bytes(self.addr)
    }
    fn generation(&self) -> u32 {
        u32::from(u16::from_be_bytes(self.generation))
    }
}

impl foca::Identity for FocaId {
    type Addr = [u8; 4];

    fn renew(&self) -> Option<Self> {
        Some(FocaId::new(self.index(), self.generation() + 1))
    }

    fn addr(&self) -> [u8; 4] {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation() > adversary.generation()
    }
}

/// foca's generator: our seeded SplitMix64 behind rand 0.10's trait.
pub struct FocaRng(SeededRng);

impl rand::TryRng for FocaRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0.next_u64() as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.0.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

type FocaInstance = foca::Foca<FocaId, foca::PostcardCodec, FocaRng, foca::NoCustomBroadcast>;

/// foca, shipped (`new_lan`) or tuned.
pub struct Foca {
    tuned: bool,
}

impl Foca {
    /// As shipped: `Config::new_lan(n)`.
    pub fn lan() -> Self {
        Self { tuned: false }
    }
    /// `new_lan` with a 500 ms probe, a 200 ms ack wait and 3 s from suspect to down.
    pub fn tuned() -> Self {
        Self { tuned: true }
    }
    fn config(&self, cluster_size: usize) -> foca::Config {
        let size = NonZeroU32::new(cluster_size.max(1) as u32).unwrap_or(NonZeroU32::MIN);
        let mut config = foca::Config::new_lan(size);
        if self.tuned {
            config.probe_period = Duration::from_millis(500);
            config.probe_rtt = Duration::from_millis(200);
            config.suspect_to_down_after = Duration::from_secs(3);
        }
        config
    }
}

struct FocaRuntime<'a> {
    fx: &'a mut Effects<foca::Timer<FocaId>>,
    now: u64,
}

impl foca::Runtime<FocaId> for FocaRuntime<'_> {
    fn notify(&mut self, notification: foca::Notification<'_, FocaId>) {
        match notification {
            foca::Notification::MemberUp(id) => {
                self.fx.notes.push(Note::Up(id.index(), id.generation()))
            }
            foca::Notification::MemberDown(id) => {
                self.fx.notes.push(Note::Down(id.index(), id.generation()))
            }
            foca::Notification::Rename(old, new) => {
                self.fx
                    .notes
                    .push(Note::Down(old.index(), old.generation()));
                self.fx.notes.push(Note::Up(new.index(), new.generation()));
            }
            foca::Notification::Rejoin(new) => self.fx.notes.push(Note::Renewed(new.generation())),
            _ => {}
        }
    }

    fn send_to(&mut self, to: FocaId, data: &[u8]) {
        let buffer = self.fx.buffer_from(data);
        self.fx.sends.push((to.index(), buffer));
    }

    fn submit_after(&mut self, event: foca::Timer<FocaId>, after: Duration) {
        let at = self.now + u64::try_from(after.as_micros()).unwrap_or(u64::MAX / 2);
        self.fx.timers.push((at, event));
    }
}

impl Protocol for Foca {
    type Node = FocaInstance;
    type Timer = foca::Timer<FocaId>;

    fn name(&self) -> &'static str {
        if self.tuned { "foca_tuned" } else { "foca_lan" }
    }

    fn start(
        &self,
        index: u32,
        generation: u32,
        cluster_size: usize,
        rng_seed: u64,
        join: Option<(u32, u32)>,
        now: u64,
        fx: &mut Effects<Self::Timer>,
    ) -> FocaInstance {
        let mut foca = foca::Foca::new(
            FocaId::new(index, generation),
            self.config(cluster_size),
            FocaRng(SeededRng::new(rng_seed)),
            foca::PostcardCodec,
        );
        if let Some((seed, seed_generation)) = join {
            let _ = foca.announce(FocaId::new(seed, seed_generation), FocaRuntime { fx, now });
        }
        foca
    }

    fn packet(
        &self,
        node: &mut FocaInstance,
        _from: u32,
        bytes: &[u8],
        now: u64,
        fx: &mut Effects<Self::Timer>,
    ) {
        let _ = node.handle_data(bytes, FocaRuntime { fx, now });
    }

    fn timer(
        &self,
        node: &mut FocaInstance,
        timer: Self::Timer,
        now: u64,
        fx: &mut Effects<Self::Timer>,
    ) {
        let _ = node.handle_timer(timer, FocaRuntime { fx, now });
    }
}

// ------------------------------------------------------------------ the engine

enum Event<T> {
    Deliver { to: u32, from: u32, bytes: Vec<u8> },
    Timer { node: u32, epoch: u32, timer: T },
    Crash,
    Restart { node: u32 },
    PartitionStart,
    PartitionEnd,
    CheckJoin { node: u32 },
}

/// The pending events, popped in order of (time, insertion order): a calendar of 1,024 µs
/// buckets covering about four seconds ahead (almost every packet and timer lands there, and
/// only the current bucket is kept as a heap, small and in cache), plus a heap for the rest.
/// The order is exactly a binary heap's over (time, insertion order), so a run does not
/// depend on how the queue is built.
struct EventQueue<E> {
    /// Events of the bucket being drained.
    current: BinaryHeap<Reverse<Item<E>>>,
    /// Buckets after the current one, as a ring.
    ring: Vec<Vec<Item<E>>>,
    /// Events at or after the end of the ring.
    far: BinaryHeap<Reverse<Item<E>>>,
    /// Absolute number of the current bucket (time >> BUCKET_SHIFT).
    base: u64,
    /// Events in the ring.
    in_ring: usize,
    order: u64,
    /// Emptied bucket vectors, the last emptied last: a bucket that gets its first event
    /// takes one (with room, and likely still in cache) instead of growing a new one.
    spare: Vec<Vec<Item<E>>>,
}

/// Emptied bucket vectors kept for reuse at most.
const SPARE_BUCKETS: usize = 64;

const BUCKET_SHIFT: u32 = 10;
const RING_BUCKETS: u64 = 4096;

struct Item<E> {
    at: u64,
    order: u64,
    event: E,
}

impl<E> PartialEq for Item<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl<E> Eq for Item<E> {}
impl<E> PartialOrd for Item<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Item<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

impl<E> EventQueue<E> {
    fn new() -> Self {
        EventQueue {
            current: BinaryHeap::new(),
            ring: (0..RING_BUCKETS).map(|_| Vec::new()).collect(),
            far: BinaryHeap::new(),
            base: 0,
            in_ring: 0,
            order: 0,
            spare: Vec::new(),
        }
    }

    /// Queues `event` at `at` (never before the last popped time).
    fn push(&mut self, at: u64, event: E) {
        self.order += 1;
        let item = Item {
            at,
            order: self.order,
            event,
        };
        let bucket = at >> BUCKET_SHIFT;
        if bucket <= self.base {
            self.current.push(Reverse(item));
        } else if bucket < self.base + RING_BUCKETS {
            let slot = &mut self.ring[(bucket % RING_BUCKETS) as usize];
            if slot.capacity() == 0
                && let Some(spare) = self.spare.pop()
            {
                *slot = spare;
            }
            slot.push(item);
            self.in_ring += 1;
        } else {
            self.far.push(Reverse(item));
        }
    }

    /// The time of the next event.
    fn peek_time(&mut self) -> Option<u64> {
        if self.current.is_empty() && !self.advance() {
            return None;
        }
        self.current.peek().map(|Reverse(item)| item.at)
    }

    /// Takes the next event.
    fn pop(&mut self) -> Option<(u64, E)> {
        if self.current.is_empty() && !self.advance() {
            return None;
        }
        self.current
            .pop()
            .map(|Reverse(item)| (item.at, item.event))
    }

    /// Moves to the next bucket that holds events; false when none is left.
    fn advance(&mut self) -> bool {
        while self.current.is_empty() {
            if self.in_ring == 0 {
                // Nothing within the ring: jump to the earliest far event.
                let Some(Reverse(first)) = self.far.peek() else {
                    return false;
                };
                self.base = (first.at >> BUCKET_SHIFT).max(self.base + 1);
            } else {
                self.base += 1;
            }
            // Far events that the ring now covers move into it (or into the current bucket).
            while let Some(Reverse(first)) = self.far.peek() {
                let bucket = first.at >> BUCKET_SHIFT;
                if bucket >= self.base + RING_BUCKETS {
                    break;
                }
                let Some(Reverse(item)) = self.far.pop() else {
                    break;
                };
                if bucket <= self.base {
                    self.current.push(Reverse(item));
                } else {
                    self.ring[(bucket % RING_BUCKETS) as usize].push(item);
                    self.in_ring += 1;
                }
            }
            let slot = (self.base % RING_BUCKETS) as usize;
            let mut items = std::mem::take(&mut self.ring[slot]);
            self.in_ring -= items.len();
            let mut heap = std::mem::take(&mut self.current).into_vec();
            heap.extend(items.drain(..).map(Reverse));
            self.current = BinaryHeap::from(heap);
            if items.capacity() > 0 && self.spare.len() < SPARE_BUCKETS {
                self.spare.push(items);
            }
        }
        true
    }
}

struct Tracked {
    index: u32,
    generation: u32,
    since: u64,
    needed: usize,
    count: usize,
    done: Option<u64>,
}

struct World<P: Protocol> {
    protocol: P,
    scenario: Scenario,
    rng: SeededRng,
    now: u64,
    queue: EventQueue<Event<P::Timer>>,
    nodes: Vec<Option<P::Node>>,
    live: Vec<bool>,
    generation: Vec<u32>,
    epoch: Vec<u32>,
    side: Vec<bool>,
    partitioned: bool,
    /// listed[observer * n + subject] = generation listed as up (0 = none).
    listed: Vec<u32>,
    pairs_up: u64,
    live_count: usize,
    crashes: Vec<Tracked>,
    joins: Vec<Tracked>,
    false_down: u64,
    degraded_live: u64,
    renewals: u64,
    measuring_bytes: bool,
    bytes: u64,
    packets: u64,
    churn_until: u64,
    last_restart: u64,
    /// `GOSSIP_SIM_TRACE=index`: print every datagram and verdict about that member.
    trace: Option<u32>,
    pending_restarts: usize,
    fx: Effects<P::Timer>,
    /// Events handled so far.
    events: u64,
    /// When several protocols run side by side: this run's lane of the shared pace.
    pace: Option<Lane>,
    /// The virtual time at which to report to the pace next.
    next_pace_us: u64,
}

/// How much less CPU time a run may expect to need than as many others as there are cores
/// before it waits for them (hysteresis: without it the waiting run would change at every
/// report).
const PACE_SLACK_S: f64 = 0.5;
/// Virtual time a run must reach before its CPU per virtual second is trusted as an
/// estimate; before that it never waits.
const PACE_ESTIMATE_AFTER_US: u64 = 5 * SECOND;
/// The CPU per virtual second of a run is measured over its last this much virtual time: a
/// run's cost per virtual second drifts (foca's member list grows with the identities it
/// renews, and its scans with it), so its average so far says too little of what is left.
const PACE_RATE_WINDOW_US: u64 = 60 * SECOND;

/// Shares the cores among runs so that they end together, as long as that leaves no core
/// idle.
///
/// Three protocols on two cores, each on its own thread, share the cores evenly: the
/// cheapest finishes first and the dearest then runs alone on one core while the other
/// idles. Here each run reports, once a virtual second, its virtual time and its CPU time;
/// from them it expects to need (CPU per virtual second over the last minute of virtual
/// time) × (virtual time left) more.
/// A run that expects to need less than as many others as there are cores waits, but only
/// while that many others are running, so no core idles. The dearest never waits, the
/// runs approach their ends together, and the wall time approaches half the CPU time.
/// Only two runs hold the two cores at a time, instead of three taking turns and evicting
/// each other's caches. Waiting changes nothing in a run (each is a function of its seed),
/// only when its thread gets a core. Where thread CPU time cannot be read, every run
/// expects to need nothing, nobody waits, and the cores are shared evenly.
#[derive(Debug)]
pub struct Pace {
    lanes: Mutex<Lanes>,
    moved: Condvar,
    cores: usize,
    /// The latest virtual time any run can reach (the scenario's caps all used).
    end_us: u64,
}

#[derive(Debug)]
struct Lanes {
    /// Per lane: the CPU seconds it expects to need still (`0` once finished, so a finished
    /// lane is never dearer than another; infinite before its estimate is trusted).
    remaining_s: Vec<f64>,
    /// Per lane: its reports (virtual time, CPU seconds) of the last
    /// [`PACE_RATE_WINDOW_US`], and the last one before them.
    reports: Vec<std::collections::VecDeque<(u64, f64)>>,
    /// Lanes not finished.
    running: usize,
    /// Lanes waiting in [`Pace::reach`].
    waiting: usize,
}

impl Pace {
    /// A pace for `lanes` runs on `cores` cores, none of which goes past virtual time
    /// `end_us`.
    pub fn new(lanes: usize, cores: usize, end_us: u64) -> Self {
        Self {
            lanes: Mutex::new(Lanes {
                remaining_s: vec![f64::INFINITY; lanes],
                reports: vec![std::collections::VecDeque::from([(0, 0.0)]); lanes],
                running: lanes,
                waiting: 0,
            }),
            moved: Condvar::new(),
            cores: cores.max(1),
            end_us,
        }
    }

    /// Records the report of a run at virtual time `now_us` having used `cpu_s` in its
    /// `reports`, and returns the CPU seconds it expects to need still: its CPU per virtual
    /// second since the last report at least [`PACE_RATE_WINDOW_US`] old (or its first),
    /// times the virtual time left.
    fn expected_remaining_s(
        &self,
        reports: &mut std::collections::VecDeque<(u64, f64)>,
        now_us: u64,
        cpu_s: f64,
    ) -> f64 {
        reports.push_back((now_us, cpu_s));
        let window_start = now_us.saturating_sub(PACE_RATE_WINDOW_US);
        while reports.len() > 2 && reports[1].0 <= window_start {
            reports.pop_front();
        }
        let (then_us, then_cpu_s) = reports[0];
        let span_us = now_us.saturating_sub(then_us);
        if now_us < PACE_ESTIMATE_AFTER_US || span_us == 0 {
            return f64::INFINITY;
        }
        (cpu_s - then_cpu_s).max(0.0) / span_us as f64 * self.end_us.saturating_sub(now_us) as f64
    }

    /// Records that `lane` reached `now_us` having used `cpu_s` of CPU, then waits while
    /// at least as many other lanes as there are cores expect to need more (by
    /// [`PACE_SLACK_S`]) and that many others are running (not waiting). The dearest never
    /// waits.
    fn reach(&self, lane: usize, now_us: u64, cpu_s: f64) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = self.expected_remaining_s(&mut lanes.reports[lane], now_us, cpu_s);
        lanes.remaining_s[lane] = mine;
        self.moved.notify_all();
        loop {
            let dearer = (0..lanes.remaining_s.len())
                .filter(|&other| other != lane && lanes.remaining_s[other] > mine + PACE_SLACK_S)
                .count();
            let others_running = lanes.running - lanes.waiting - 1;
            if dearer < self.cores || others_running < self.cores {
                return;
            }
            lanes.waiting += 1;
            lanes = self
                .moved
                .wait(lanes)
                .unwrap_or_else(PoisonError::into_inner);
            lanes.waiting -= 1;
        }
    }

    /// Takes `lane` out: nobody waits for it any more.
    fn finish(&self, lane: usize) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        lanes.remaining_s[lane] = 0.0;
        lanes.running -= 1;
        self.moved.notify_all();
    }
}

/// One run's place in a [`Pace`]; dropping it (the run ended, or panicked) releases the
/// others from waiting for it.
#[derive(Debug)]
pub struct Lane {
    pace: Arc<Pace>,
    index: usize,
    /// The run's thread CPU time when it started, seconds.
    cpu_origin_s: f64,
}

impl Lane {
    /// Reports the run at virtual time `now_us` (see [`Pace::reach`]).
    fn reach(&self, now_us: u64) {
        self.pace
            .reach(self.index, now_us, thread_cpu_s() - self.cpu_origin_s);
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.pace.finish(self.index);
    }
}

impl<P: Protocol> World<P> {
    fn new(protocol: P, scenario: Scenario) -> Self {
        let n = scenario.nodes;
        let rng = SeededRng::new(scenario.seed ^ 0x5157_494D);
        World {
            protocol,
            rng,
            now: 0,
            queue: EventQueue::new(),
            nodes: (0..n).map(|_| None).collect(),
            live: vec![false; n],
            generation: vec![0; n],
            epoch: vec![0; n],
            side: vec![false; n],
            partitioned: false,
            listed: vec![0; n * n],
            pairs_up: 0,
            live_count: 0,
            crashes: Vec::new(),
            joins: Vec::new(),
            false_down: 0,
            degraded_live: 0,
            renewals: 0,
            measuring_bytes: false,
            bytes: 0,
            packets: 0,
            churn_until: 0,
            last_restart: 0,
            trace: std::env::var("GOSSIP_SIM_TRACE")
                .ok()
                .and_then(|v| v.parse().ok()),
            pending_restarts: 0,
            fx: Effects::default(),
            events: 0,
            pace: None,
            next_pace_us: 0,
            scenario,
        }
    }

    fn push(&mut self, at: u64, event: Event<P::Timer>) {
        self.queue.push(at, event);
    }

    fn counts(&self, observer: usize, subject: usize) -> bool {
        observer != subject
            && self.live[observer]
            && self.live[subject]
            && self.listed[observer * self.scenario.nodes + subject] == self.generation[subject]
    }

    fn set_listed(&mut self, observer: usize, subject: usize, generation: u32) {
        let before = self.counts(observer, subject);
        self.listed[observer * self.scenario.nodes + subject] = generation;
        let after = self.counts(observer, subject);
        match (before, after) {
            (false, true) => self.pairs_up += 1,
            (true, false) => self.pairs_up -= 1,
            _ => {}
        }
    }

    fn debug_join(&self, index: u32) {
        let n = self.scenario.nodes;
        let i = index as usize;
        for o in 0..n {
            if o != i
                && self.live[o]
                && self.listed[o * n + i] != self.generation[i]
                && let Some(node) = self.nodes[o].as_ref()
            {
                eprintln!(
                    "  observer {o} listed {} knows {}",
                    self.listed[o * n + i],
                    self.protocol.describe(node, index)
                );
            }
        }
    }

    fn full_roster(&self) -> bool {
        let live = self.live_count as u64;
        self.pairs_up == live * live.saturating_sub(1)
    }

    /// (observer, subject, listed generation, live generation) for live pairs not listed.
    fn missing(&self) -> Vec<(usize, usize, u32, u32)> {
        let n = self.scenario.nodes;
        let mut out = Vec::new();
        for o in 0..n {
            for s in 0..n {
                if o != s && self.live[o] && self.live[s] && !self.counts(o, s) {
                    out.push((o, s, self.listed[o * n + s], self.generation[s]));
                }
            }
        }
        out
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        !self.partitioned || self.side[a] == self.side[b]
    }

    fn start_node(&mut self, index: u32, join: Option<(u32, u32)>) {
        let i = index as usize;
        self.generation[i] += 1;
        self.epoch[i] += 1;
        self.live[i] = true;
        self.live_count += 1;
        let n = self.scenario.nodes;
        for subject in 0..n {
            self.listed[i * n + subject] = 0;
        }
        let seed = self.rng.next_u64();
        let mut fx = std::mem::take(&mut self.fx);
        let node = self
            .protocol
            .start(index, self.generation[i], n, seed, join, self.now, &mut fx);
        self.nodes[i] = Some(node);
        self.apply_effects(index, &mut fx);
        self.fx = fx;
    }

    fn random_live(&mut self, except: usize) -> Option<usize> {
        let n = self.scenario.nodes;
        for _ in 0..64 {
            let candidate = self.rng.below(n);
            if candidate != except && self.live[candidate] && self.nodes[candidate].is_some() {
                return Some(candidate);
            }
        }
        (0..n).find(|&c| c != except && self.live[c])
    }

    fn crash(&mut self, index: usize) {
        let n = self.scenario.nodes;
        let mut lost = 0;
        for other in 0..n {
            if self.counts(index, other) {
                lost += 1;
            }
            if self.counts(other, index) {
                lost += 1;
            }
        }
        self.pairs_up -= lost;
        let observers = (0..n)
            .filter(|&o| {
                o != index && self.live[o] && self.listed[o * n + index] == self.generation[index]
            })
            .count();
        self.live[index] = false;
        self.live_count -= 1;
        // A join still spreading when its member crashes again is not a join to measure.
        self.joins
            .retain(|j| !(j.index == index as u32 && j.done.is_none()));
        // Nor is a member that crashes before it lists a joiner one of the live members the
        // join must reach: without this, a join whose observers counted a member that
        // crashed at the same instant waited for the next restart to list it (6 s at 10
        // crashes a minute), and p99 measured the crash schedule.
        let now = self.now;
        for join in self.joins.iter_mut().filter(|j| j.done.is_none()) {
            let subject = join.index as usize;
            if subject != index && self.listed[index * n + subject] != join.generation {
                join.needed = join.needed.saturating_sub(1);
                if join.count >= join.needed {
                    join.done = Some(now);
                }
            }
        }
        self.nodes[index] = None;
        self.epoch[index] += 1;
        // A member that crashes before anyone lists it (restarted at the same instant) has
        // nothing to detect.
        if self.now < self.churn_until && observers > 0 {
            self.crashes.push(Tracked {
                index: index as u32,
                generation: self.generation[index],
                since: self.now,
                needed: ((observers as f64) * 0.99).ceil() as usize,
                count: 0,
                done: None,
            });
        }
    }

    fn apply_effects(&mut self, node: u32, fx: &mut Effects<P::Timer>) {
        let observer = node as usize;
        let epoch = self.epoch[observer];
        for (at, timer) in fx.timers.drain(..) {
            let at = at.max(self.now);
            self.push(at, Event::Timer { node, epoch, timer });
        }
        let n = self.scenario.nodes;
        let mut sends = std::mem::take(&mut fx.sends);
        for (to, bytes) in sends.drain(..) {
            if self.measuring_bytes {
                self.bytes += bytes.len() as u64;
                self.packets += 1;
            }
            let target = to as usize;
            let lost = target >= n
                || target == observer
                || self.rng.unit() < self.scenario.loss
                || !self.reachable(observer, target);
            if let Some(traced) = self.trace
                && (traced == node
                    || traced == to
                    || self.protocol.explain(&bytes).contains(&sim_name(traced)))
            {
                eprintln!(
                    "{:.3} {node}->{to}{} {}",
                    self.now as f64 / 1e6,
                    if lost { " LOST" } else { "" },
                    self.protocol.explain(&bytes)
                );
            }
            if lost {
                match self.nodes[observer].as_mut() {
                    Some(sender) => self.protocol.recycle(sender, bytes, fx),
                    None => fx.recycle(bytes),
                }
                continue;
            }
            let (low, high) = self.scenario.delay_us;
            let delay = low + self.rng.below((high - low + 1) as usize) as u64;
            self.push(
                self.now + delay,
                Event::Deliver {
                    to,
                    from: node,
                    bytes,
                },
            );
        }
        fx.sends = sends;
        for note in fx.notes.drain(..) {
            if let Some(traced) = self.trace {
                let about = match note {
                    Note::Up(subject, _) | Note::Down(subject, _) | Note::Degraded(subject, _) => {
                        subject
                    }
                    Note::Renewed(_) => node,
                };
                if about == traced || node == traced {
                    eprintln!("{:.3} note at {node}: {note:?}", self.now as f64 / 1e6);
                }
            }
            match note {
                Note::Up(subject, generation) => {
                    let s = subject as usize;
                    if s >= n || s == observer {
                        continue;
                    }
                    if generation >= self.listed[observer * n + s] {
                        self.set_listed(observer, s, generation);
                        if self.live[observer] {
                            for join in self.joins.iter_mut().rev() {
                                if join.index == subject
                                    && join.generation == generation
                                    && join.done.is_none()
                                {
                                    join.count += 1;
                                    if join.count >= join.needed {
                                        join.done = Some(self.now);
                                        if std::env::var_os("GOSSIP_SIM_DEBUG").is_some()
                                            && self.now - join.since > 3 * SECOND
                                        {
                                            eprintln!(
                                                "slow join of {subject}#{generation} at {:.1}s took {:.1}s; last observer {observer}",
                                                join.since as f64 / 1e6,
                                                (self.now - join.since) as f64 / 1e6
                                            );
                                        }
                                    }
                                    break;
                                }
                            }
                        }
                    }
                }
                Note::Down(subject, generation) => {
                    let s = subject as usize;
                    if s >= n || s == observer {
                        continue;
                    }
                    if self.live[s]
                        && self.generation[s] == generation
                        && self.reachable(observer, s)
                    {
                        self.false_down += 1;
                    }
                    if self.listed[observer * n + s] == generation {
                        self.set_listed(observer, s, 0);
                        for crash in self.crashes.iter_mut().rev() {
                            if crash.index == subject
                                && crash.generation == generation
                                && crash.done.is_none()
                            {
                                crash.count += 1;
                                if crash.count >= crash.needed {
                                    crash.done = Some(self.now);
                                }
                                break;
                            }
                        }
                    }
                }
                Note::Degraded(subject, generation) => {
                    let s = subject as usize;
                    if s < n
                        && self.live[s]
                        && self.generation[s] == generation
                        && self.reachable(observer, s)
                    {
                        self.degraded_live += 1;
                    }
                }
                Note::Renewed(generation) => {
                    if self.live[observer] {
                        self.renewals += 1;
                        // The member lives on under a new identity: the old one is gone.
                        let old = self.generation[observer];
                        let mut lost = 0;
                        for other in 0..n {
                            if self.counts(other, observer) {
                                lost += 1;
                            }
                        }
                        self.pairs_up -= lost;
                        self.generation[observer] = generation.max(old + 1);
                        for other in 0..n {
                            if self.counts(other, observer) {
                                self.pairs_up += 1;
                            }
                        }
                    }
                }
            }
        }
    }

    fn step(&mut self, event: Event<P::Timer>) {
        match event {
            Event::Deliver { to, from, bytes } => {
                let i = to as usize;
                let mut fx = std::mem::take(&mut self.fx);
                match self.nodes[i].as_mut() {
                    Some(node) if self.live[i] => {
                        self.protocol.packet(node, from, &bytes, self.now, &mut fx);
                        self.protocol.recycle(node, bytes, &mut fx);
                    }
                    _ => {
                        fx.recycle(bytes);
                        self.fx = fx;
                        return;
                    }
                }
                self.apply_effects(to, &mut fx);
                self.fx = fx;
            }
            Event::Timer { node, epoch, timer } => {
                let i = node as usize;
                if !self.live[i] || self.epoch[i] != epoch {
                    return;
                }
                let mut fx = std::mem::take(&mut self.fx);
                if let Some(state) = self.nodes[i].as_mut() {
                    self.protocol.timer(state, timer, self.now, &mut fx);
                }
                self.apply_effects(node, &mut fx);
                self.fx = fx;
            }
            Event::Crash => {
                if self.now >= self.churn_until {
                    return;
                }
                let n = self.scenario.nodes;
                let mut victim = None;
                for _ in 0..64 {
                    let candidate = self.rng.below(n);
                    if self.live[candidate] {
                        victim = Some(candidate);
                        break;
                    }
                }
                if let Some(victim) = victim {
                    self.crash(victim);
                    self.pending_restarts += 1;
                    let at = self.now + micros(self.scenario.restart_after);
                    self.push(
                        at,
                        Event::Restart {
                            node: victim as u32,
                        },
                    );
                }
                let gap =
                    (60.0 * SECOND as f64 / self.scenario.crashes_per_minute.max(0.001)) as u64;
                self.push(self.now + gap, Event::Crash);
            }
            Event::Restart { node } => {
                let i = node as usize;
                self.pending_restarts = self.pending_restarts.saturating_sub(1);
                if self.live[i] {
                    return;
                }
                if std::env::var_os("GOSSIP_SIM_DEBUG").is_some() {
                    let n = self.scenario.nodes;
                    if let Some(c) = self
                        .crashes
                        .iter()
                        .rev()
                        .find(|c| c.index == node && c.done.is_none())
                    {
                        let still: Vec<usize> = (0..n)
                            .filter(|&o| self.live[o] && self.listed[o * n + i] == c.generation)
                            .collect();
                        eprintln!(
                            "undetected crash of {node}#{} at {:.1}s: {}/{} down, still listed by {:?}",
                            c.generation,
                            c.since as f64 / 1e6,
                            c.count,
                            c.needed,
                            still
                        );
                    }
                }
                let seed = self.random_live(i).map(|s| (s as u32, self.generation[s]));
                let n = self.scenario.nodes;
                let observers = (0..n).filter(|&o| o != i && self.live[o]).count();
                self.start_node(node, seed);
                if std::env::var_os("GOSSIP_SIM_DEBUG").is_some() {
                    self.push(self.now + 3 * SECOND, Event::CheckJoin { node });
                }
                self.last_restart = self.now;
                self.joins.push(Tracked {
                    index: node,
                    generation: self.generation[i],
                    since: self.now,
                    needed: ((observers as f64) * 0.9999).ceil() as usize,
                    count: 0,
                    done: None,
                });
            }
            Event::PartitionStart => {
                let n = self.scenario.nodes;
                let mut indices: Vec<usize> = (0..n).collect();
                self.rng.shuffle(&mut indices);
                let cut = ((n as f64) * self.scenario.partition_fraction).round() as usize;
                for (rank, index) in indices.into_iter().enumerate() {
                    self.side[index] = rank < cut;
                }
                self.partitioned = true;
            }
            Event::PartitionEnd => self.partitioned = false,
            Event::CheckJoin { node } => {
                if let Some(join) = self.joins.iter().rev().find(|j| j.index == node)
                    && join.done.is_none()
                {
                    eprintln!(
                        "join of {node}#{} at {:.1}s not done after 3 s ({}/{}):",
                        join.generation,
                        join.since as f64 / 1e6,
                        join.count,
                        join.needed
                    );
                    self.debug_join(node);
                }
            }
        }
    }

    /// Runs events up to `until` (inclusive); stops early when `stop` says so (checked after
    /// each event). Returns the time it stopped at.
    fn run_until(&mut self, until: u64, stop: impl Fn(&Self) -> bool) -> Option<u64> {
        while let Some(at) = self.queue.peek_time() {
            if at > until {
                break;
            }
            let Some((at, event)) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.events += 1;
            self.step(event);
            if at >= self.next_pace_us {
                self.next_pace_us = at + SECOND;
                if let Some(lane) = &self.pace {
                    lane.reach(at);
                }
            }
            if stop(self) {
                return Some(self.now);
            }
        }
        self.now = until;
        None
    }
}

/// CPU time the calling thread has used, seconds (Linux's `/proc/thread-self/schedstat`;
/// 0 where that is missing). Three protocols share two cores, so wall time says little.
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX / 2)
}

fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Runs the whole scenario for one protocol.
pub fn run<P: Protocol>(protocol: P, scenario: &Scenario) -> Report {
    run_paced(protocol, scenario, None)
}

/// Between the starts of consecutive members in the warm-up.
const START_STAGGER_US: u64 = 10_000;
/// The rest of the warm-up, after the last member started.
const WARM_AFTER_STARTS_US: u64 = 30 * SECOND;
/// From the end of the drain to the start of the partition.
const PARTITION_AFTER_US: u64 = 10 * SECOND;

/// The latest virtual time a run of `scenario` can reach: every phase that waits for a
/// full roster waits its whole cap.
fn latest_end_us(scenario: &Scenario) -> u64 {
    let warm = scenario.nodes as u64 * START_STAGGER_US + WARM_AFTER_STARTS_US;
    let churn = (scenario.minutes * 60.0 * SECOND as f64) as u64;
    let cap = micros(scenario.settle_cap);
    let drain = micros(scenario.restart_after) + cap;
    let partition = if scenario.partition_fraction > 0.0 {
        PARTITION_AFTER_US + micros(scenario.partition_for) + cap
    } else {
        0
    };
    warm + churn + drain + partition
}

/// Runs the whole scenario for one protocol, kept to a pace if given a lane of one.
fn run_paced<P: Protocol>(protocol: P, scenario: &Scenario, pace: Option<Lane>) -> Report {
    let wall = std::time::Instant::now();
    let cpu = thread_cpu_s();
    let mut world = World::new(protocol, scenario.clone());
    world.pace = pace.map(|mut lane| {
        lane.cpu_origin_s = cpu;
        lane
    });
    let n = scenario.nodes;
    // Warm-up: staggered starts, each joining a random member already running.
    for index in 0..n {
        world.run_until(index as u64 * START_STAGGER_US, |_| false);
        let seed = if index == 0 {
            None
        } else {
            let pick = world.rng.below(index);
            Some((pick as u32, world.generation[pick]))
        };
        world.start_node(index as u32, seed);
    }
    let warm = n as u64 * START_STAGGER_US + WARM_AFTER_STARTS_US;
    let debug = std::env::var_os("GOSSIP_SIM_DEBUG").is_some();
    let show_cpu = debug || std::env::var_os("GOSSIP_SIM_CPU").is_some();
    let phase = |name: &str, world: &World<P>| {
        if show_cpu {
            eprintln!(
                "{}: {name} done at {:.0} s simulated, {:.1} s wall, {:.1} s CPU, {} events",
                world.protocol.name(),
                world.now as f64 / SECOND as f64,
                wall.elapsed().as_secs_f64(),
                thread_cpu_s() - cpu,
                world.events
            );
        }
    };
    world.run_until(warm, |_| false);
    phase("warm-up", &world);
    // Churn.
    let churn = (scenario.minutes * 60.0 * SECOND as f64) as u64;
    world.churn_until = warm + churn;
    world.measuring_bytes = true;
    debug_bytes_measuring(true);
    if scenario.crashes_per_minute > 0.0 {
        world.push(warm + 1, Event::Crash);
    }
    if debug {
        // Minute by minute, to see whether a protocol's cost per simulated minute drifts.
        let mut at = warm;
        while at < warm + churn {
            at = (at + 60 * SECOND).min(warm + churn);
            world.run_until(at, |_| false);
            phase("churn minute", &world);
        }
    }
    world.run_until(warm + churn, |_| false);
    phase("churn", &world);
    world.measuring_bytes = false;
    debug_bytes_measuring(false);
    let bytes = world.bytes;
    let packets = world.packets;
    let refutations = world
        .nodes
        .iter()
        .flatten()
        .map(|node| world.protocol.refutations(node))
        .sum();
    if std::env::var_os("GOSSIP_SIM_DEBUG").is_some() {
        let missing = world.missing();
        eprintln!(
            "{}: after warm-up {} pairs missing: {:?}",
            world.protocol.name(),
            missing.len(),
            &missing[..missing.len().min(20)]
        );
        let mut subjects: Vec<usize> = missing.iter().map(|m| m.1).collect();
        subjects.sort();
        subjects.dedup();
        subjects
            .retain(|&s| missing.iter().filter(|m| m.1 == s).count() > world.scenario.nodes / 2);
        for subject in subjects.into_iter().take(3) {
            if let Some(node) = world.nodes[subject].as_ref() {
                eprintln!(
                    "  {subject}: {}",
                    world.protocol.describe(node, subject as u32)
                );
            }
        }
    }
    // Drain: no new crashes; pending restarts still happen. Then wait for a full roster.
    let cap = micros(scenario.settle_cap);
    let churn_roster_s = world
        .run_until(warm + churn + micros(scenario.restart_after) + cap, |w| {
            w.pending_restarts == 0 && w.full_roster()
        })
        .map(|at| (at.saturating_sub(world.last_restart)) as f64 / SECOND as f64);
    if std::env::var_os("GOSSIP_SIM_DEBUG").is_some() {
        let missing = world.missing();
        eprintln!(
            "{}: after drain {} pairs missing: {:?}",
            world.protocol.name(),
            missing.len(),
            &missing[..missing.len().min(20)]
        );
        for m in missing.iter().take(6) {
            for (a, b) in [(m.0, m.1), (m.1, m.0)] {
                if let Some(node) = world.nodes[a].as_ref() {
                    eprintln!(
                        "  {a} about {b}: {}",
                        world.protocol.describe(node, b as u32)
                    );
                }
            }
        }
    }
    phase("drain", &world);
    // Verdicts while the network is whole (churn and drain); the partition's are its own.
    let false_down = world.false_down;
    let degraded_live = world.degraded_live;
    let renewals = world.renewals;
    // Partition, then heal.
    let mut heal_full_s = None;
    if scenario.partition_fraction > 0.0 {
        let start = world.now + PARTITION_AFTER_US;
        world.push(start, Event::PartitionStart);
        let end = start + micros(scenario.partition_for);
        world.push(end, Event::PartitionEnd);
        world.run_until(end, |_| false);
        if std::env::var_os("GOSSIP_SIM_DEBUG").is_some() {
            // Every 5 s up to the cap, not past it: the pace assumes no run goes further.
            for step in 1..=(cap / (5 * SECOND)) {
                world.run_until(end + step * 5 * SECOND, |_| false);
                let live = world.live_count as u64;
                eprintln!(
                    "  heal +{}s: {} pairs missing",
                    step * 5,
                    live * (live - 1) - world.pairs_up
                );
                if step == 4 {
                    for m in world.missing().iter().take(8) {
                        for (a, b) in [(m.0, m.1), (m.1, m.0)] {
                            if let Some(node) = world.nodes[a].as_ref() {
                                eprintln!(
                                    "    {a} about {b}: {}",
                                    world.protocol.describe(node, b as u32)
                                );
                            }
                        }
                    }
                }
            }
        }
        heal_full_s = world
            .run_until(end + cap, |w| !w.partitioned && w.full_roster())
            .map(|at| (at - end) as f64 / SECOND as f64);
        if std::env::var_os("GOSSIP_SIM_DEBUG").is_some() {
            let missing = world.missing();
            eprintln!(
                "{}: after heal {} pairs missing: {:?}",
                world.protocol.name(),
                missing.len(),
                &missing[..missing.len().min(10)]
            );
            for m in missing.iter().take(5) {
                if let Some(node) = world.nodes[m.0].as_ref() {
                    eprintln!(
                        "  {} about {}: {} / self {}",
                        m.0,
                        m.1,
                        world.protocol.describe(node, m.1 as u32),
                        world.protocol.describe(node, m.0 as u32)
                    );
                }
                if let Some(node) = world.nodes[m.1].as_ref() {
                    eprintln!(
                        "  {} about {}: {} / self {}",
                        m.1,
                        m.0,
                        world.protocol.describe(node, m.0 as u32),
                        world.protocol.describe(node, m.1 as u32)
                    );
                }
            }
        }
    }
    phase("partition and heal", &world);
    let restart_us = micros(scenario.restart_after);
    let mut detections: Vec<f64> = world
        .crashes
        .iter()
        .map(|c| {
            let took = c
                .done
                .map(|d| d - c.since)
                .unwrap_or(restart_us)
                .min(restart_us);
            took as f64 / SECOND as f64
        })
        .collect();
    let undetected = world
        .crashes
        .iter()
        .filter(|c| c.done.is_none_or(|d| d - c.since >= restart_us))
        .count();
    let mut joins: Vec<f64> = world
        .joins
        .iter()
        .map(|j| {
            j.done
                .map(|d| (d - j.since) as f64 / SECOND as f64)
                .unwrap_or(f64::INFINITY)
        })
        .collect();
    let join_max = joins
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let seconds = churn as f64 / SECOND as f64;
    let report = Report {
        protocol: world.protocol.name(),
        detect_p50_s: percentile(&mut detections, 50.0).map(round),
        detect_p99_s: percentile(&mut detections, 99.0).map(round),
        false_down,
        degraded_live,
        live_identity_changes: renewals,
        bytes_per_node_s: round(bytes as f64 / (n as f64 * seconds.max(1e-9))),
        join_all_s: percentile(&mut joins, 99.0)
            .filter(|v| v.is_finite())
            .map(round),
        heal_full_s: heal_full_s.map(round),
        churn_roster_s: churn_roster_s.map(round),
        crashes: world.crashes.len(),
        undetected,
        join_max_s: join_max.filter(|v| v.is_finite()).map(round),
        packets,
        refutations,
        end_us: world.now,
    };
    let events = world.events;
    drop(world);
    if show_cpu {
        eprintln!(
            "{}: all done, {:.1} s wall, {:.1} s CPU, {events} events, {} degraded flags on live members",
            report.protocol,
            wall.elapsed().as_secs_f64(),
            thread_cpu_s() - cpu,
            report.degraded_live
        );
    }
    report
}

/// Runs all three protocols (on three threads) and returns their reports in order
/// `goliath`, `foca_lan`, `foca_tuned`.
pub fn run_all(scenario: &Scenario) -> Vec<Report> {
    // One thread per protocol, sharing the cores so that they end together (see `Pace`):
    // on two cores the wall time is about half the CPU time rather than the dearest run's
    // plus a share.
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let pace = Arc::new(Pace::new(3, cores, latest_end_us(scenario)));
    let lane = |index: usize| {
        Some(Lane {
            pace: Arc::clone(&pace),
            index,
            cpu_origin_s: 0.0,
        })
    };
    std::thread::scope(|scope| {
        let ours = scope.spawn(|| run_paced(Goliath::default(), scenario, lane(0)));
        let lan = scope.spawn(|| run_paced(Foca::lan(), scenario, lane(1)));
        let tuned = run_paced(Foca::tuned(), scenario, lane(2));
        let ours = ours.join().expect("goliath simulation");
        let lan = lan.join().expect("foca_lan simulation");
        vec![ours, lan, tuned]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds every wait below: a lost wake-up fails the test instead of hanging it.
    const LIVENESS: Duration = Duration::from_secs(60);

    /// Reports `lane` at virtual time `at`, having used `cpu_s`, on a thread of its own; the
    /// receiver hears when the report returned (the lane went on).
    fn reach_on_thread(
        pace: &Arc<Pace>,
        lane: usize,
        at: u64,
        cpu_s: f64,
    ) -> (std::thread::JoinHandle<()>, std::sync::mpsc::Receiver<()>) {
        let (went_on, hears) = std::sync::mpsc::channel();
        let pace = Arc::clone(pace);
        let thread = std::thread::spawn(move || {
            pace.reach(lane, at, cpu_s);
            let _ = went_on.send(());
        });
        (thread, hears)
    }

    /// Waits until `count` lanes wait; fails if `went_on` hears first.
    fn until_waiting(pace: &Pace, count: usize, went_on: &std::sync::mpsc::Receiver<()>) {
        let deadline = std::time::Instant::now() + LIVENESS;
        while pace.lanes.lock().map_or(0, |lanes| lanes.waiting) < count {
            assert!(
                went_on.try_recv().is_err(),
                "a lane that expects to need the least went on while two others could use both cores"
            );
            assert!(std::time::Instant::now() < deadline, "no lane waited");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_run_that_expects_to_need_least_waits_only_while_the_others_keep_every_core_busy() {
        let end = 1_000 * SECOND;
        // Three lanes on two cores. Lane 0 expects 99 s more (1 s of CPU for 10 of 1,000
        // virtual seconds); lanes 1 and 2 have no estimate yet, so they count as dearer.
        let pace = Arc::new(Pace::new(3, 2, end));
        let (cheap, released) = reach_on_thread(&pace, 0, 10 * SECOND, 1.0);
        until_waiting(&pace, 1, &released);
        // Lane 1 now expects 10 s more: it does not wait (lane 0 does, a core would idle),
        // and lane 0, no longer the one that needs least, goes on.
        let (second, went_on) = reach_on_thread(&pace, 1, 500 * SECOND, 10.0);
        assert!(
            went_on.recv_timeout(LIVENESS).is_ok(),
            "a second lane waited while the first did: a core would idle"
        );
        second.join().expect("lane 1");
        assert!(
            released.recv_timeout(LIVENESS).is_ok(),
            "lane 0 still waits though lane 1 now expects to need less"
        );
        cheap.join().expect("lane 0");
        // At its next report lane 1 waits for lanes 0 and 2...
        let (last, released) = reach_on_thread(&pace, 1, 501 * SECOND, 10.0);
        until_waiting(&pace, 1, &released);
        // ...until lane 2 ends: then only lane 0 runs besides it, and lane 1 goes on.
        drop(Lane {
            pace: Arc::clone(&pace),
            index: 2,
            cpu_origin_s: 0.0,
        });
        assert!(
            released.recv_timeout(LIVENESS).is_ok(),
            "the waiting lane was not released when a lane ended"
        );
        last.join().expect("lane 1");
    }

    #[test]
    fn a_run_expects_to_need_what_its_last_minute_cost_not_its_average() {
        let pace = Pace::new(3, 2, 1_000 * SECOND);
        let mut reports = std::collections::VecDeque::from([(0, 0.0)]);
        assert!(
            pace.expected_remaining_s(&mut reports, 2 * SECOND, 0.1)
                .is_infinite()
        );
        // 1 s of CPU for the first 100 virtual seconds, then 10 s for the next 100.
        let _ = pace.expected_remaining_s(&mut reports, 100 * SECOND, 1.0);
        let remaining = pace.expected_remaining_s(&mut reports, 200 * SECOND, 11.0);
        // 0.1 s per virtual second lately, for 800 s more (the average would say 44 s).
        assert!(
            (remaining - 80.0).abs() < 1e-6,
            "expected 80 s, got {remaining}"
        );
        assert!(reports.len() <= 2, "old reports are dropped");
    }

    #[test]
    fn no_run_goes_past_the_latest_end_its_pace_assumes() {
        let scenario = Scenario::standard(12, 0.05, 0.5, 1);
        let end = latest_end_us(&scenario);
        for report in [
            run_paced(Goliath::default(), &scenario, None),
            run_paced(Foca::lan(), &scenario, None),
        ] {
            assert!(
                report.end_us > 30 * SECOND && report.end_us <= end,
                "{} ended at {} us; the pace assumes at most {end} us",
                report.protocol,
                report.end_us
            );
        }
    }

    #[test]
    fn the_event_queue_pops_in_time_then_insertion_order() {
        // A reference: every event pushed so far, popped by (time, insertion order).
        let mut queue = EventQueue::new();
        let mut reference: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
        let mut rng = SeededRng::new(7);
        let mut now = 0u64;
        let mut pushed = 0u64;
        let mut popped = 0;
        for _ in 0..20_000 {
            if rng.below(3) > 0 || reference.is_empty() {
                // Mostly near (same bucket, the ring), sometimes far beyond the ring.
                let ahead = match rng.below(10) {
                    0 => rng.below(20_000_000) as u64,
                    1..=3 => rng.below(1_024) as u64,
                    _ => rng.below(4_000_000) as u64,
                };
                pushed += 1;
                queue.push(now + ahead, pushed);
                reference.push(Reverse((now + ahead, pushed)));
            } else {
                let Reverse((at, id)) = reference.pop().expect("not empty");
                assert_eq!(queue.peek_time(), Some(at));
                assert_eq!(queue.pop(), Some((at, id)));
                now = at;
                popped += 1;
            }
        }
        while let Some(Reverse((at, id))) = reference.pop() {
            assert_eq!(queue.pop(), Some((at, id)));
        }
        assert_eq!(queue.pop(), None);
        assert!(popped > 1_000);
    }
}
