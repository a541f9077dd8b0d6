//! What gossip packets carry, and their checked decoding.
//!
//! One UDP datagram is one [`Packet`], encoded by the codec module (bincode, size-limited) and
//! never longer than `gossip.max_packet`. A packet names its sender (name and generation), the
//! sender's incarnation, the cluster (a CRC-32C tag of `node.cluster`), one message, and as
//! many piggybacked membership [`Update`]s as fit. [`decode_packet`] checks the length before
//! decoding, then the version, the cluster tag and every bounded field, so a packet from
//! another cluster or a hostile one is an error value, never a panic or a large allocation.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{self, CodecError};

/// The packet format version; a packet with another is dropped and counted.
pub const WIRE_VERSION: u8 = 4;
/// Longest member name, bytes.
pub const MAX_NAME: usize = 63;
/// Longest protocol address in member metadata, bytes.
pub const MAX_PROTOCOL_ADDRESS: usize = 64;
/// Smallest `gossip.max_packet` the core works with: a header, a message and one update.
pub const MIN_PACKET: usize = 512;

/// A member's name, at most [`MAX_NAME`] bytes, stored inline: copying one allocates nothing,
/// decoding one from a packet allocates nothing, and comparing two reads no other memory.
#[derive(Clone, Copy)]
pub struct Name {
    len: u8,
    bytes: [u8; MAX_NAME],
}

/// Characters a name may not hold: spaces and control characters, and the invisible ones
/// (zero-width spaces and joiners, the soft hyphen, direction overrides, the byte-order mark)
/// that made `n\u{200b}1` look like `n1` in every table and log.
pub fn unseen_in_a_name(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
        )
}

impl Name {
    /// A name, or an error when it is empty, longer than [`MAX_NAME`] bytes, or holds a
    /// character [`unseen_in_a_name`]: a name from a packet is printed in tables and logs,
    /// where a control character would reach the operator's terminal.
    pub fn new(text: &str) -> Result<Name, String> {
        if text.is_empty() || text.len() > MAX_NAME {
            return Err(format!(
                "member name {text:?} must be 1 to {MAX_NAME} bytes"
            ));
        }
        let plain = text.bytes().all(|b| b.is_ascii_graphic());
        if !plain && text.chars().any(unseen_in_a_name) {
            return Err(format!(
                "member name {text:?} holds a space, control or invisible character"
            ));
        }
        let mut bytes = [0u8; MAX_NAME];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Name {
            len: text.len() as u8,
            bytes,
        })
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only `new` fills the buffer, from a `&str` cut at its own length, zeros after it.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        // Whole buffers: `new` zero-fills past the text, so equal texts have equal buffers.
        // (Comparing word by word up to the length instead saved nothing measurable in the
        // simulator: the time a lookup spends here is the member's cache line arriving.)
        self.len == other.len && self.bytes == other.bytes
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl serde::de::Visitor<'_> for NameVisitor {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a member name of 1 to {MAX_NAME} bytes")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Name, E> {
                Name::new(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// Who a member is: its name and the generation of the process carrying it. A restarted
/// node keeps its name and gets a new, higher generation, which replaces the old one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
// Generation first, then the name, in this order in memory (repr(C)) and on the wire: the
// member table keeps both on the cache line a lookup reads anyway.
#[repr(C)]
pub struct MemberId {
    /// Changes (upwards) at every start.
    pub generation: u64,
    /// The node's name.
    pub name: Name,
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.name, self.generation)
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (generation {})", self.name, self.generation)
    }
}

/// What a member tells the cluster about itself. Versioned: a receiver keeps the highest
/// version it has seen. Small and bounded (about 30 bytes encoded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MemberMeta {
    /// Bumped by the member at every change.
    pub version: u32,
    /// The member's protocol address (`net.listen`), where clients and peers reach it.
    pub protocol_address: String,
    /// Worker threads.
    pub workers: u16,
    /// Tasks queued on the member (submission queue plus worker deques).
    pub queue_depth: u32,
    /// Free task slots in its arena.
    pub arena_free: u32,
    /// Tasks in flight per worker (queued plus running, divided by workers).
    pub load: f32,
}

/// One membership fact, piggybacked on packets and spread epidemically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The member.
    pub id: MemberId,
    /// Its incarnation: only the member raises it, to refute a suspicion.
    pub incarnation: u32,
    /// What is claimed.
    pub claim: Claim,
}

/// What an update claims about a member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Claim {
    /// Alive at this gossip address; metadata when it changed (or on join).
    Alive {
        /// Where it receives gossip.
        address: SocketAddr,
        /// Its metadata, when the update carries it.
        meta: Option<MemberMeta>,
    },
    /// Suspected of having failed, by `accuser`.
    Suspect {
        /// Who suspects it (independent accusers shorten the suspicion).
        accuser: Name,
    },
    /// Declared failed.
    Dead,
    /// Left the cluster on purpose.
    Left,
}

/// The message part of a packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// A probe: answer with [`Message::Ack`] and the same sequence number, if `target` is
    /// this node's.
    Ping {
        /// Chosen by the prober.
        seq: u32,
        /// [`name_print`] of the member the prober means. A process of another name at that
        /// address (one that took over a dead member's port) does not answer, and its ack
        /// would not count if it did: the prober takes acks only from the member probed.
        target: u8,
    },
    /// The answer to a ping (direct, or forwarded by an indirect prober).
    Ack {
        /// The ping's sequence number.
        seq: u32,
        /// Live members the sender lists, itself included. A receiver that lists fewer, ack
        /// after ack, has a gap in its table and exchanges tables with the sender.
        members: u32,
    },
    /// Please probe `target` for me and forward its ack (or a nack).
    PingReq {
        /// The requester's sequence number, echoed in the forwarded ack or nack.
        seq: u32,
        /// Who to probe.
        target: MemberId,
        /// Where it receives gossip.
        address: SocketAddr,
    },
    /// The indirect prober got no ack from the target in time (Lifeguard).
    Nack {
        /// The requester's sequence number.
        seq: u32,
    },
    /// Updates only.
    Gossip,
    /// A part of the sender's whole membership table (state exchange, join). With `reply`
    /// the receiver answers with its own table.
    Sync {
        /// Whether the receiver should answer with its table.
        reply: bool,
        /// Entries in the whole table (all parts), so a receiver can tell it missed some.
        total: u32,
    },
    /// A member that just joined, telling us of itself (its update rides along): answer with
    /// an `Ack` of sequence 0, so it knows we heard and does not tell us again.
    Announce,
}

/// One datagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Packet {
    /// [`WIRE_VERSION`].
    pub version: u8,
    /// CRC-32C of the cluster name, little-endian.
    pub cluster: [u8; 4],
    /// The sender.
    pub from: MemberId,
    /// The sender's incarnation.
    pub incarnation: u32,
    /// What the packet asks or answers.
    pub message: Message,
    /// Piggybacked membership updates (or table entries for [`Message::Sync`]).
    pub updates: Vec<Update>,
}

/// A member name's print in a [`Message::Ping`]: the low byte of the name's CRC-32C. One
/// byte, as every probe carries it: a print that collides (one name in 256) only lets a
/// process of another name answer, and the prober refuses that ack (its sender is not the
/// member probed), so the print spares the wrong node from being drawn in, and tells it why.
pub fn name_print(name: &Name) -> u8 {
    crc32c::crc32c(name.as_bytes()).to_le_bytes()[0]
}

/// The cluster tag carried in every packet.
pub fn cluster_tag(cluster: &str) -> [u8; 4] {
    crc32c::crc32c(cluster.as_bytes()).to_le_bytes()
}

/// Why a received datagram was dropped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PacketError {
    /// Longer than `gossip.max_packet`.
    #[error("gossip packet of {length} bytes is longer than gossip.max_packet ({limit})")]
    Oversized {
        /// Its length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a valid packet.
    #[error("malformed gossip packet: {0}")]
    Malformed(#[from] CodecError),
    /// Another packet format version.
    #[error("gossip packet version {0} is not {WIRE_VERSION}")]
    Version(u8),
    /// From another cluster (different `node.cluster`).
    #[error("gossip packet from another cluster (tag {0:02x?})")]
    ForeignCluster([u8; 4]),
    /// A field out of its bounds.
    #[error("invalid gossip packet: {0}")]
    Invalid(String),
    /// Its sender's generation (start time, Unix µs) lies more than a day after this node's
    /// clock: forged or corrupt, or this node's clock is behind.
    #[error(
        "gossip packet from a process whose generation {0} lies more than a day after this node's clock"
    )]
    FutureGeneration(u64),
    /// This node's own packet, sent back to it: the address it went to sends back what it
    /// receives (not a goliath node), or is this node's own.
    #[error("this node's own gossip packet came back")]
    Echoed,
    /// A probe meant for a member of another name: the sender holds that member at this
    /// node's address (most likely a node that ran here before).
    #[error("gossip probe from {sender} meant for another member than this node")]
    Misdirected {
        /// Who probed.
        sender: Name,
    },
}

/// The start of a packet's header, up to its message: the same for every packet a member
/// sends at one incarnation, so a sender can encode it once (see [`encode_head_prefix`]).
#[derive(Serialize)]
struct HeadPrefixRef<'a> {
    version: u8,
    cluster: [u8; 4],
    from: &'a MemberId,
    incarnation: u32,
}

/// A received packet without its updates (see [`decode_packet_into`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PacketHead {
    /// [`WIRE_VERSION`].
    pub version: u8,
    /// CRC-32C of the cluster name, little-endian.
    pub cluster: [u8; 4],
    /// The sender.
    pub from: MemberId,
    /// The sender's incarnation.
    pub incarnation: u32,
    /// What the packet asks or answers.
    pub message: Message,
}

/// Decodes and checks a received datagram.
pub fn decode_packet(
    bytes: &[u8],
    max_packet: usize,
    cluster: [u8; 4],
) -> Result<Packet, PacketError> {
    let mut updates = Vec::new();
    let head = decode_packet_into(bytes, max_packet, cluster, &mut updates)?;
    Ok(Packet {
        version: head.version,
        cluster: head.cluster,
        from: head.from,
        incarnation: head.incarnation,
        message: head.message,
        updates,
    })
}

/// Decodes and checks a received datagram, appending its updates to `updates` (a buffer the
/// caller reuses, so a packet costs no allocation) and returning the rest. Lengths are
/// checked before anything is decoded; a claimed update count is never allocated up front.
pub fn decode_packet_into(
    bytes: &[u8],
    max_packet: usize,
    cluster: [u8; 4],
    updates: &mut Vec<Update>,
) -> Result<PacketHead, PacketError> {
    if bytes.len() > max_packet {
        return Err(PacketError::Oversized {
            length: bytes.len(),
            limit: max_packet,
        });
    }
    let (head, mut at) = codec::decode_datagram_prefix::<PacketHead>("gossip packet", bytes)?;
    if head.version != WIRE_VERSION {
        return Err(PacketError::Version(head.version));
    }
    if head.cluster != cluster {
        return Err(PacketError::ForeignCluster(head.cluster));
    }
    let (count, used) = codec::decode_datagram_prefix::<u64>("gossip packet", &bytes[at..])?;
    at += used;
    let start = updates.len();
    for _ in 0..count {
        // Every update takes at least one byte: a false count runs out of bytes here.
        let decoded = codec::decode_datagram_prefix::<Update>("gossip update", &bytes[at..]);
        let (update, used) = match decoded {
            Ok(decoded) => decoded,
            Err(error) => {
                updates.truncate(start);
                return Err(error.into());
            }
        };
        at += used;
        if let Err(error) = check_update(&update) {
            updates.truncate(start);
            return Err(error);
        }
        updates.push(update);
    }
    if at != bytes.len() {
        updates.truncate(start);
        return Err(PacketError::Malformed(CodecError::Trailing {
            what: "gossip packet",
            extra: bytes.len() - at,
        }));
    }
    Ok(head)
}

fn check_update(update: &Update) -> Result<(), PacketError> {
    let Claim::Alive {
        meta: Some(meta), ..
    } = &update.claim
    else {
        return Ok(());
    };
    let address = &meta.protocol_address;
    if address.len() > MAX_PROTOCOL_ADDRESS {
        return Err(PacketError::Invalid(format!(
            "protocol address of {} is {} bytes (at most {MAX_PROTOCOL_ADDRESS})",
            update.id,
            address.len()
        )));
    }
    // Printed in `goliath members` and the console as names are: a control character (an
    // escape sequence that retitles the operator's terminal) is refused as in a name.
    if address.chars().any(unseen_in_a_name) {
        return Err(PacketError::Invalid(format!(
            "protocol address of {} holds a space, control or invisible character",
            update.id
        )));
    }
    Ok(())
}

/// Encodes a packet; errors when it is longer than `max_packet`.
pub fn encode_packet(packet: &Packet, max_packet: usize) -> Result<Vec<u8>, CodecError> {
    let bytes = codec::encode_datagram("gossip packet", packet)?;
    if bytes.len() > max_packet {
        return Err(CodecError::Encode {
            what: "gossip packet",
            message: format!(
                "{} bytes is longer than gossip.max_packet ({max_packet})",
                bytes.len()
            ),
        });
    }
    Ok(bytes)
}

/// Appends a packet's header (everything before its updates) to `buffer`; returns its
/// length. Followed by [`encode_update_count`] and that many [`encode_update`], the bytes are
/// exactly [`encode_packet`]'s.
pub fn encode_head(
    buffer: &mut Vec<u8>,
    cluster: [u8; 4],
    from: &MemberId,
    incarnation: u32,
    message: &Message,
) -> Result<usize, CodecError> {
    let before = buffer.len();
    let prefix = encode_head_prefix(buffer, cluster, from, incarnation)?;
    match encode_message(buffer, message) {
        Ok(message) => Ok(prefix + message),
        Err(error) => {
            buffer.truncate(before);
            Err(error)
        }
    }
}

/// Appends the start of a packet's header, everything before its message; returns its
/// length. Followed by [`encode_message`], the bytes are exactly [`encode_head`]'s, so a
/// sender can keep them and copy them into each packet it sends at this incarnation.
pub fn encode_head_prefix(
    buffer: &mut Vec<u8>,
    cluster: [u8; 4],
    from: &MemberId,
    incarnation: u32,
) -> Result<usize, CodecError> {
    let prefix = HeadPrefixRef {
        version: WIRE_VERSION,
        cluster,
        from,
        incarnation,
    };
    codec::encode_datagram_into("gossip packet", &prefix, buffer)
}

/// Appends a packet's message, the end of its header (see [`encode_head_prefix`]).
pub fn encode_message(buffer: &mut Vec<u8>, message: &Message) -> Result<usize, CodecError> {
    codec::encode_datagram_into("gossip packet", message, buffer)
}

/// Appends the number of updates that follow.
pub fn encode_update_count(buffer: &mut Vec<u8>, count: usize) -> Result<usize, CodecError> {
    codec::encode_datagram_into("gossip packet", &(count as u64), buffer)
}

/// Appends one update.
pub fn encode_update(buffer: &mut Vec<u8>, update: &Update) -> Result<usize, CodecError> {
    codec::encode_datagram_into("gossip update", update, buffer)
}

/// The encoded length of one update (what it adds to a packet), computed without encoding.
pub fn update_len(update: &Update) -> usize {
    codec::encoded_datagram_len("gossip update", update).unwrap_or(usize::MAX / 4)
}

/// The encoded length of a packet header with `message` (see [`encode_head`]).
pub fn head_len(from: &MemberId, incarnation: u32, message: &Message) -> usize {
    let prefix = HeadPrefixRef {
        version: WIRE_VERSION,
        cluster: [0; 4],
        from,
        incarnation,
    };
    let prefix = codec::encoded_datagram_len("gossip packet", &prefix);
    let message = codec::encoded_datagram_len("gossip packet", message);
    match (prefix, message) {
        (Ok(prefix), Ok(message)) => prefix + message,
        _ => usize::MAX / 4,
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    //! proptest strategies for packets.
    use super::*;
    use proptest::prelude::*;

    pub fn name() -> impl Strategy<Value = Name> {
        "[a-z0-9.-]{1,20}".prop_map(|text| Name::new(&text).expect("valid name"))
    }

    pub fn member_id() -> impl Strategy<Value = MemberId> {
        (name(), any::<u64>()).prop_map(|(name, generation)| MemberId { name, generation })
    }

    pub fn address() -> impl Strategy<Value = SocketAddr> {
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
    }

    pub fn meta() -> impl Strategy<Value = MemberMeta> {
        (
            any::<u32>(),
            "[0-9.:]{0,21}",
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            0.0f32..1000.0,
        )
            .prop_map(
                |(version, protocol_address, workers, queue_depth, arena_free, load)| MemberMeta {
                    version,
                    protocol_address,
                    workers,
                    queue_depth,
                    arena_free,
                    load,
                },
            )
    }

    pub fn claim() -> impl Strategy<Value = Claim> {
        prop_oneof![
            (address(), proptest::option::of(meta()))
                .prop_map(|(address, meta)| Claim::Alive { address, meta }),
            name().prop_map(|accuser| Claim::Suspect { accuser }),
            Just(Claim::Dead),
            Just(Claim::Left),
        ]
    }

    pub fn update() -> impl Strategy<Value = Update> {
        (member_id(), any::<u32>(), claim()).prop_map(|(id, incarnation, claim)| Update {
            id,
            incarnation,
            claim,
        })
    }

    pub fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u32>(), any::<u8>()).prop_map(|(seq, target)| Message::Ping { seq, target }),
            (any::<u32>(), any::<u32>()).prop_map(|(seq, members)| Message::Ack { seq, members }),
            (any::<u32>(), member_id(), address()).prop_map(|(seq, target, address)| {
                Message::PingReq {
                    seq,
                    target,
                    address,
                }
            }),
            any::<u32>().prop_map(|seq| Message::Nack { seq }),
            Just(Message::Gossip),
            (any::<bool>(), any::<u32>()).prop_map(|(reply, total)| Message::Sync { reply, total }),
            Just(Message::Announce),
        ]
    }

    pub fn packet() -> impl Strategy<Value = Packet> {
        (
            member_id(),
            any::<u32>(),
            message(),
            proptest::collection::vec(update(), 0..12),
        )
            .prop_map(|(from, incarnation, message, updates)| Packet {
                version: WIRE_VERSION,
                cluster: cluster_tag("goliath"),
                from,
                incarnation,
                message,
                updates,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::*;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn name_equality_follows_the_text(a in "[a-c]{1,63}", b in "[a-c]{1,63}") {
            let (name_a, name_b) = (Name::new(&a).expect("a"), Name::new(&b).expect("b"));
            prop_assert_eq!(name_a == name_b, a == b);
            prop_assert_eq!(name_a.as_str(), a.as_str());
        }
    }

    fn sample() -> Packet {
        Packet {
            version: WIRE_VERSION,
            cluster: cluster_tag("goliath"),
            from: MemberId {
                name: Name::new("a").expect("name"),
                generation: 1,
            },
            incarnation: 0,
            message: Message::Ping {
                seq: 1,
                target: name_print(&Name::new("b").expect("name")),
            },
            updates: Vec::new(),
        }
    }

    #[test]
    fn foreign_cluster_old_version_and_oversized_packets_are_refused() {
        let bytes = encode_packet(&sample(), 1400).expect("encodes");
        assert_eq!(
            decode_packet(&bytes, 1400, cluster_tag("other")),
            Err(PacketError::ForeignCluster(cluster_tag("goliath")))
        );
        let mut old = sample();
        old.version = 0;
        let bytes = encode_packet(&old, 1400).expect("encodes");
        assert_eq!(
            decode_packet(&bytes, 1400, cluster_tag("goliath")),
            Err(PacketError::Version(0))
        );
        let big = vec![0u8; 1401];
        assert!(matches!(
            decode_packet(&big, 1400, cluster_tag("goliath")),
            Err(PacketError::Oversized { length: 1401, .. })
        ));
    }

    #[test]
    fn names_are_equal_exactly_when_their_texts_are() {
        let name = |text: &str| Name::new(text).expect("valid name");
        assert_eq!(name("node-1"), name("node-1"));
        assert_ne!(name("node-1"), name("node-10"));
        assert_ne!(name("node-10"), name("node-1"));
        assert_ne!(name("node-1"), name("node-2"));
        assert_eq!(name(&"x".repeat(63)), name(&"x".repeat(63)));
        assert_ne!(name(&"x".repeat(63)), name(&"x".repeat(62)));
        assert_ne!(name(&"x".repeat(63)), name(&format!("{}y", "x".repeat(62))));
        // A decoded name equals the one it was encoded from (the decoder builds it anew).
        let bytes = crate::codec::encode("name", &name("a")).expect("encodes");
        let decoded: Name = crate::codec::decode("name", &bytes).expect("decodes");
        assert_eq!(decoded, name("a"));
    }

    #[test]
    fn names_are_bounded() {
        assert!(Name::new("").is_err());
        for unseen in [
            "\u{1}a2-z1",
            "q\u{10}2",
            "a\u{1b}[31m",
            "n 1",
            "n\u{200b}1",
            "n\u{202e}1",
        ] {
            assert!(Name::new(unseen).is_err(), "{unseen:?}");
        }
        assert!(
            Name::new("nœud-1").is_ok(),
            "letters beyond ASCII are names"
        );
        assert!(Name::new(&"x".repeat(64)).is_err());
        assert!(Name::new(&"x".repeat(63)).is_ok());
        // A name of 64 bytes on the wire is refused by the decoder.
        #[derive(Serialize)]
        struct LongName {
            name: String,
            generation: u64,
            incarnation: u32,
            claim: Claim,
        }
        let mut bytes = Vec::new();
        let from = sample().from;
        encode_head(
            &mut bytes,
            cluster_tag("goliath"),
            &from,
            0,
            &Message::Gossip,
        )
        .expect("head");
        encode_update_count(&mut bytes, 1).expect("count");
        let long = LongName {
            name: "y".repeat(64),
            generation: 1,
            incarnation: 0,
            claim: Claim::Dead,
        };
        codec::encode_datagram_into("update", &long, &mut bytes).expect("encodes");
        assert!(matches!(
            decode_packet(&bytes, 1400, cluster_tag("goliath")),
            Err(PacketError::Malformed(_))
        ));
    }

    #[test]
    fn encoding_refuses_packets_over_the_limit() {
        let mut packet = sample();
        for generation in 0..200 {
            packet.updates.push(Update {
                id: MemberId {
                    name: Name::new("member-with-a-long-name").expect("name"),
                    generation,
                },
                incarnation: 0,
                claim: Claim::Dead,
            });
        }
        assert!(encode_packet(&packet, 1400).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn packets_round_trip(packet in packet()) {
            let bytes = codec::encode_datagram("gossip packet", &packet).expect("encodes");
            let decoded = decode_packet(&bytes, codec::MAX_DATAGRAM, cluster_tag("goliath"));
            prop_assert_eq!(decoded, Ok(packet));
        }

        #[test]
        fn update_len_is_what_it_adds(packet in packet(), update in update()) {
            let before = codec::encode_datagram("p", &packet).expect("encodes").len();
            let mut longer = packet.clone();
            longer.updates.push(update.clone());
            let after = codec::encode_datagram("p", &longer).expect("encodes").len();
            // The update's bytes, plus at most one more byte of the list's length prefix.
            prop_assert!(after - before >= update_len(&update));
            prop_assert!(after - before <= update_len(&update) + 2);
        }

        #[test]
        fn a_packet_encoded_in_parts_is_the_packet(packet in packet()) {
            let whole = encode_packet(&packet, codec::MAX_DATAGRAM).expect("encodes");
            let mut parts = Vec::new();
            let head = encode_head(&mut parts, packet.cluster, &packet.from, packet.incarnation, &packet.message).expect("head");
            prop_assert_eq!(head, head_len(&packet.from, packet.incarnation, &packet.message));
            encode_update_count(&mut parts, packet.updates.len()).expect("count");
            for update in &packet.updates {
                let added = encode_update(&mut parts, update).expect("update");
                prop_assert_eq!(added, update_len(update));
            }
            prop_assert_eq!(parts, whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = decode_packet(&bytes, 1400, cluster_tag("goliath"));
        }

        #[test]
        fn corrupted_packets_never_panic(packet in packet(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let mut bytes = codec::encode_datagram("gossip packet", &packet).expect("encodes");
            for (index, value) in flips {
                let at = index.index(bytes.len());
                bytes[at] ^= value;
            }
            let _ = decode_packet(&bytes, codec::MAX_DATAGRAM, cluster_tag("goliath"));
        }
    }
}
