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
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{self, CodecError};

/// The packet format version; a packet with another is dropped and counted.
pub const WIRE_VERSION: u8 = 1;
/// Longest member name, bytes.
pub const MAX_NAME: usize = 63;
/// Longest protocol address in member metadata, bytes.
pub const MAX_PROTOCOL_ADDRESS: usize = 64;
/// Smallest `gossip.max_packet` the core works with: a header, a message and one update.
pub const MIN_PACKET: usize = 512;

/// A member's name: cheap to clone, at most [`MAX_NAME`] bytes.
#[derive(Clone, Eq, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // By content, as equality is (the pointer check is only a shortcut).
        (*self.0).hash(state);
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        // Clones of one name share the allocation: most comparisons end here.
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl Name {
    /// A name, or an error when it is empty or longer than [`MAX_NAME`] bytes.
    pub fn new(text: &str) -> Result<Name, String> {
        if text.is_empty() || text.len() > MAX_NAME {
            return Err(format!(
                "member name {text:?} must be 1 to {MAX_NAME} bytes"
            ));
        }
        Ok(Name(Arc::from(text)))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Name::new(&text).map_err(serde::de::Error::custom)
    }
}

/// Who a member is: its name and the generation of the process carrying it. A restarted
/// node keeps its name and gets a new, higher generation, which replaces the old one.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberId {
    /// The node's name.
    pub name: Name,
    /// Changes (upwards) at every start.
    pub generation: u64,
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
    /// A probe: answer with [`Message::Ack`] and the same sequence number.
    Ping {
        /// Chosen by the prober.
        seq: u32,
    },
    /// The answer to a ping (direct, or forwarded by an indirect prober).
    Ack {
        /// The ping's sequence number.
        seq: u32,
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
}

/// Decodes and checks a received datagram.
pub fn decode_packet(
    bytes: &[u8],
    max_packet: usize,
    cluster: [u8; 4],
) -> Result<Packet, PacketError> {
    if bytes.len() > max_packet {
        return Err(PacketError::Oversized {
            length: bytes.len(),
            limit: max_packet,
        });
    }
    let packet: Packet = codec::decode_datagram("gossip packet", bytes)?;
    if packet.version != WIRE_VERSION {
        return Err(PacketError::Version(packet.version));
    }
    if packet.cluster != cluster {
        return Err(PacketError::ForeignCluster(packet.cluster));
    }
    for update in &packet.updates {
        if let Claim::Alive {
            meta: Some(meta), ..
        } = &update.claim
            && meta.protocol_address.len() > MAX_PROTOCOL_ADDRESS
        {
            return Err(PacketError::Invalid(format!(
                "protocol address of {} is {} bytes (at most {MAX_PROTOCOL_ADDRESS})",
                update.id,
                meta.protocol_address.len()
            )));
        }
    }
    Ok(packet)
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

/// The encoded length of one update (what it adds to a packet).
pub fn update_len(update: &Update) -> usize {
    codec::encode_datagram("gossip update", update)
        .map(|bytes| bytes.len())
        .unwrap_or(usize::MAX / 4)
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
            any::<u32>().prop_map(|seq| Message::Ping { seq }),
            any::<u32>().prop_map(|seq| Message::Ack { seq }),
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

    fn sample() -> Packet {
        Packet {
            version: WIRE_VERSION,
            cluster: cluster_tag("goliath"),
            from: MemberId {
                name: Name::new("a").expect("name"),
                generation: 1,
            },
            incarnation: 0,
            message: Message::Ping { seq: 1 },
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
    fn names_are_bounded() {
        assert!(Name::new("").is_err());
        assert!(Name::new(&"x".repeat(64)).is_err());
        assert!(Name::new(&"x".repeat(63)).is_ok());
        // A name of 64 bytes on the wire is refused by the decoder.
        let mut packet = sample();
        packet.updates.push(Update {
            id: MemberId {
                name: Name(Arc::from("y".repeat(64).as_str())),
                generation: 1,
            },
            incarnation: 0,
            claim: Claim::Dead,
        });
        let bytes = encode_packet(&packet, 1400).expect("encodes");
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
