//! Unit tests of the core with a recording runtime: packets are crafted by hand, outputs are
//! recorded and inspected, time is whatever the test says.

use super::*;
use crate::runtime::gossip::wire::{cluster_tag, decode_packet, encode_packet};

const MS: u64 = 1000;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// The probe print of a member named `name`.
fn print_of(name: &str) -> u8 {
    crate::runtime::gossip::wire::name_print(&Name::new(name).expect("name"))
}

/// A ping meant for the recorded core ("me").
fn ping_me(seq: u32) -> Message {
    Message::Ping {
        seq,
        target: print_of("me"),
    }
}

fn id(name: &str, generation: u64) -> MemberId {
    MemberId {
        name: Name::new(name).expect("name"),
        generation,
    }
}

/// Drives one core and records everything it asks for.
struct Recorder {
    swim: Swim,
    now: u64,
    sent: Vec<(SocketAddr, Packet)>,
    events: Vec<MemberEvent>,
}

impl Recorder {
    fn new(config: SwimConfig) -> Self {
        let swim = Swim::new(config, id("me", 1), addr(1), MemberMeta::default(), 42, 0);
        Recorder {
            swim,
            now: 0,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn record(&mut self) {
        let tag = cluster_tag("goliath");
        for output in self.swim.drain_outputs().collect::<Vec<_>>() {
            match output {
                Output::Send { to, bytes } => {
                    assert!(bytes.len() <= 1400, "packet of {} bytes", bytes.len());
                    let packet = decode_packet(&bytes, 1400, tag).expect("own packets decode");
                    self.sent.push((to, packet));
                }
                Output::Event(event) => self.events.push(event),
            }
        }
    }

    fn receive(&mut self, from: SocketAddr, packet: &Packet) {
        let bytes = encode_packet(packet, 1400).expect("encodes");
        self.swim
            .handle_packet(from, &bytes, self.now)
            .expect("accepted");
        self.record();
    }

    /// Advances time to `until`, firing timers on the way.
    fn run_until(&mut self, until: u64) {
        while let Some(at) = self.swim.poll_timeout() {
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            self.swim.handle_timeout(self.now);
            self.record();
        }
        self.now = until;
    }

    /// Runs timers until the first probe goes out; where to, and its sequence number.
    fn first_probe(&mut self) -> (SocketAddr, u32) {
        loop {
            let next = self.swim.poll_timeout().expect("timers");
            self.run_until(next);
            if let Some(probe) = self
                .take_sent()
                .into_iter()
                .find_map(|(to, p)| match p.message {
                    Message::Ping { seq, .. } => Some((to, seq)),
                    _ => None,
                })
            {
                return probe;
            }
        }
    }

    fn take_sent(&mut self) -> Vec<(SocketAddr, Packet)> {
        std::mem::take(&mut self.sent)
    }

    fn has_event(&self, name: &str, kind: impl Fn(&EventKind) -> bool) -> bool {
        self.events
            .iter()
            .any(|e| e.member.name.as_str() == name && kind(&e.kind))
    }

    /// The events in which this node says it had been declared dead and refuted it.
    fn refuted_deaths(&self) -> Vec<&MemberEvent> {
        self.events
            .iter()
            .filter(|event| {
                matches!(
                    event.kind,
                    EventKind::Refuted {
                        declared_dead: true,
                        ..
                    }
                )
            })
            .collect()
    }
}

fn packet(from: &MemberId, message: Message, updates: Vec<Update>) -> Packet {
    Packet {
        version: WIRE_VERSION,
        cluster: cluster_tag("goliath"),
        from: *from,
        incarnation: 0,
        message,
        updates,
    }
}

fn alive(member: &MemberId, port: u16) -> Update {
    Update {
        id: *member,
        incarnation: 0,
        claim: Claim::Alive {
            address: addr(port),
            meta: None,
        },
    }
}

/// A recorder that knows `count` other members a1..aN at ports 2.. (all alive).
fn with_members(count: u16) -> Recorder {
    let mut recorder = Recorder::new(SwimConfig::default());
    let first = id("a1", 1);
    let updates: Vec<Update> = (1..=count)
        .map(|i| alive(&id(&format!("a{i}"), 1), 1 + i))
        .collect();
    for chunk in updates.chunks(40) {
        recorder.receive(addr(2), &packet(&first, Message::Gossip, chunk.to_vec()));
    }
    recorder.take_sent();
    recorder
}

#[test]
fn a_ping_is_acked_to_its_sender_with_the_same_sequence() {
    let mut recorder = with_members(1);
    recorder.receive(addr(2), &packet(&id("a1", 1), ping_me(77), vec![]));
    let sent = recorder.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, addr(2));
    assert!(
        matches!(sent[0].1.message, Message::Ack { seq: 77, .. }),
        "{sent:?}"
    );
    assert_eq!(sent[0].1.from, id("me", 1));
}

#[test]
fn an_unanswered_probe_asks_helpers_then_suspects_then_declares_dead() {
    let mut recorder = with_members(4);
    assert_eq!(recorder.swim.up_count(), 4);
    let (target_address, seq) = recorder.first_probe();
    let start = recorder.now;
    // Nobody answers. After the ack timeout: ping-reqs to up to 3 others plus a second ping.
    recorder.run_until(start + 250 * MS);
    let sent = recorder.take_sent();
    let requests: Vec<_> = sent
        .iter()
        .filter(|(_, p)| matches!(p.message, Message::PingReq { seq: s, .. } if s == seq))
        .collect();
    assert_eq!(requests.len(), 3, "{sent:?}");
    assert!(requests.iter().all(|(to, _)| *to != target_address));
    assert!(sent.iter().any(|(to, p)| *to == target_address
        && matches!(p.message, Message::Ping { seq: s, .. } if s == seq)));
    // No acks, no nacks: at the end of the period the target is suspect, and we are less sure
    // of ourselves (Lifeguard: three nacks missing).
    recorder.run_until(start + 600 * MS);
    let suspect = recorder
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Suspected { .. }))
        .expect("suspected")
        .member;
    assert!(recorder.swim.awareness() > 0);
    // The suspect was told directly.
    assert!(recorder.take_sent().iter().any(|(to, p)| {
        *to == target_address
            && p.updates
                .iter()
                .any(|u| u.id == suspect && matches!(u.claim, Claim::Suspect { .. }))
    }));
    // Unconfirmed, it is declared dead after the maximum suspicion time and one more probe
    // of our own (periods stretched by our local health), which it fails too.
    recorder.run_until(start + 20_000 * MS);
    assert!(recorder.has_event(suspect.name.as_str(), |k| *k == EventKind::Failed));
    let (_, state, _) = recorder
        .swim
        .member_state(suspect.name.as_str())
        .expect("known");
    assert_eq!(state, MemberState::Dead);
}

#[test]
fn an_acked_probe_keeps_the_member_alive_and_lowers_awareness() {
    let mut recorder = with_members(2);
    for _ in 0..20 {
        let next = recorder.swim.poll_timeout().expect("timers");
        recorder.run_until(next);
        for (to, p) in recorder.take_sent() {
            if let Message::Ping { seq, .. } = p.message {
                let from = if to == addr(2) {
                    id("a1", 1)
                } else {
                    id("a2", 1)
                };
                recorder.receive(to, &packet(&from, Message::Ack { seq, members: 0 }, vec![]));
            }
        }
    }
    assert!(!recorder.has_event("a1", |k| matches!(k, EventKind::Suspected { .. })));
    assert!(!recorder.has_event("a2", |k| matches!(k, EventKind::Suspected { .. })));
    assert_eq!(recorder.swim.awareness(), 0);
}

#[test]
fn this_node_s_own_packet_sent_back_is_named_as_such_and_not_taken() {
    // A seed address that is an echo service returns the join this node sent it.
    let mut recorder = Recorder::new(SwimConfig::default());
    let bytes = encode_packet(
        &packet(&id("me", 1), ping_me(3), vec![alive(&id("a2", 1), 3)]),
        1400,
    )
    .expect("encodes");
    let result = recorder.swim.handle_packet(addr(9), &bytes, 0);
    assert!(matches!(result, Err(PacketError::Echoed)), "{result:?}");
    recorder.record();
    assert!(recorder.take_sent().is_empty(), "nothing answered");
    assert!(
        recorder.swim.member_state("a2").is_none(),
        "nothing learnt from it"
    );
    assert_eq!(recorder.swim.stats().stale, 1);
    assert_eq!(recorder.swim.stats().packets_received, 0);
}

#[test]
fn a_probe_meant_for_another_name_is_neither_answered_nor_learnt_from() {
    // A node that took over the address of a member that died: the cluster still probes
    // that member there.
    let mut recorder = Recorder::new(SwimConfig::default());
    let probe = Message::Ping {
        seq: 7,
        target: print_of("gone"),
    };
    let bytes = encode_packet(
        &packet(&id("a1", 1), probe, vec![alive(&id("a2", 1), 3)]),
        1400,
    )
    .expect("encodes");
    let result = recorder.swim.handle_packet(addr(2), &bytes, 0);
    assert!(
        matches!(&result, Err(PacketError::Misdirected { sender }) if sender.as_str() == "a1"),
        "{result:?}"
    );
    recorder.record();
    assert!(
        recorder.take_sent().is_empty(),
        "no ack for another member's probe"
    );
    assert!(
        recorder.swim.member_state("a1").is_none(),
        "the prober is not taken in"
    );
    assert!(
        recorder.swim.member_state("a2").is_none(),
        "nor what it carried"
    );
    assert_eq!(recorder.swim.stats().misdirected, 1);
    // A probe for this node's name is answered, whatever generation the prober means (a
    // restarted node answers for its earlier self, which it replaces).
    recorder.receive(addr(2), &packet(&id("a1", 1), ping_me(8), vec![]));
    assert!(
        recorder
            .take_sent()
            .iter()
            .any(|(to, p)| *to == addr(2) && matches!(p.message, Message::Ack { seq: 8, .. }))
    );
}

#[test]
fn an_ack_from_another_member_than_the_one_probed_answers_nothing() {
    let mut recorder = with_members(1);
    let a1_print = print_of("a1");
    // Another process, z9, answers every probe sent to a1's address, as a node of an older
    // version (or a print collision) would.
    let mut probes = 0;
    while recorder.now < 20_000 * MS {
        let next = recorder.swim.poll_timeout().expect("timers");
        recorder.run_until(next);
        for (to, p) in recorder.take_sent() {
            if let Message::Ping { seq, target } = p.message
                && to == addr(2)
                && target == a1_print
            {
                probes += 1;
                recorder.receive(
                    to,
                    &packet(&id("z9", 1), Message::Ack { seq, members: 0 }, vec![]),
                );
            }
        }
    }
    assert!(probes > 0, "a1 was probed");
    assert!(
        recorder.has_event("a1", |k| *k == EventKind::Failed),
        "z9's acks kept a1 alive: {:?}",
        recorder.events
    );
}

#[test]
fn an_ack_forwarded_by_a_helper_answers_the_probe() {
    let mut recorder = with_members(4);
    let (target_address, seq) = recorder.first_probe();
    let start = recorder.now;
    // The target does not answer directly; after the ack timeout, helpers are asked.
    recorder.run_until(start + 250 * MS);
    let helper = recorder
        .take_sent()
        .into_iter()
        .find_map(|(to, p)| match p.message {
            Message::PingReq { seq: s, .. } if s == seq => Some(to),
            _ => None,
        })
        .expect("a helper asked");
    // Members a1…a4 sit at ports 2…5.
    let helper_id = id(&format!("a{}", helper.port() - 1), 1);
    recorder.receive(
        helper,
        &packet(&helper_id, Message::Ack { seq, members: 0 }, vec![]),
    );
    recorder.run_until(start + 2_000 * MS);
    let target = format!("a{}", target_address.port() - 1);
    assert!(
        !recorder.has_event(&target, |k| matches!(k, EventKind::Suspected { .. })),
        "the forwarded ack was not taken: {:?}",
        recorder.events
    );
}

#[test]
fn a_relay_forwards_only_the_ack_of_the_member_it_probes() {
    let mut recorder = with_members(2);
    let requester = addr(3);
    recorder.receive(
        requester,
        &packet(
            &id("a2", 1),
            Message::PingReq {
                seq: 40,
                target: id("a1", 1),
                address: addr(2),
            },
            vec![],
        ),
    );
    let a1_print = print_of("a1");
    let relayed = recorder
        .take_sent()
        .into_iter()
        .find_map(|(to, p)| match p.message {
            Message::Ping { seq, target } if to == addr(2) => Some((seq, target)),
            _ => None,
        });
    let Some((seq, target)) = relayed else {
        panic!("no relayed probe");
    };
    assert_eq!(target, a1_print, "the relayed probe names a1");
    let forwarded = |recorder: &mut Recorder| {
        recorder
            .take_sent()
            .iter()
            .any(|(to, p)| *to == requester && matches!(p.message, Message::Ack { seq: 40, .. }))
    };
    recorder.receive(
        addr(2),
        &packet(&id("z9", 1), Message::Ack { seq, members: 0 }, vec![]),
    );
    assert!(!forwarded(&mut recorder), "z9's ack was passed off as a1's");
    recorder.receive(
        addr(2),
        &packet(&id("a1", 1), Message::Ack { seq, members: 0 }, vec![]),
    );
    assert!(forwarded(&mut recorder), "a1's ack was not forwarded");
}

#[test]
fn independent_confirmations_shorten_the_suspicion() {
    let time_to_dead = |confirmations: usize| {
        let mut recorder = with_members(8);
        let accusers: Vec<Name> = (2..2 + confirmations + 1)
            .map(|i| Name::new(&format!("a{i}")).expect("name"))
            .collect();
        let updates = accusers
            .iter()
            .map(|accuser| Update {
                id: id("a1", 1),
                incarnation: 0,
                claim: Claim::Suspect { accuser: *accuser },
            })
            .collect();
        recorder.receive(addr(3), &packet(&id("a2", 1), Message::Gossip, updates));
        let mut at = 0;
        while !recorder.has_event("a1", |k| *k == EventKind::Failed) {
            at += 100 * MS;
            recorder.run_until(at);
            assert!(at < 60_000 * MS, "never declared dead");
        }
        at
    };
    let lone = time_to_dead(0);
    let confirmed = time_to_dead(3);
    assert!(
        confirmed < lone,
        "3 confirmations: {confirmed} µs, none: {lone} µs"
    );
}

#[test]
fn a_suspected_node_refutes_with_a_higher_incarnation() {
    let mut recorder = with_members(2);
    let accusation = Update {
        id: id("me", 1),
        incarnation: 0,
        claim: Claim::Suspect {
            accuser: Name::new("a1").expect("name"),
        },
    };
    recorder.receive(
        addr(2),
        &packet(&id("a1", 1), Message::Gossip, vec![accusation]),
    );
    assert_eq!(recorder.swim.incarnation(), 1);
    assert!(recorder.has_event("me", |k| *k
        == EventKind::Refuted {
            incarnation: 1,
            declared_dead: false
        }));
    assert_eq!(recorder.swim.stats().refutations, 1);
    // The refutation rides on the next packet.
    recorder.receive(addr(2), &packet(&id("a1", 1), ping_me(5), vec![]));
    let sent = recorder.take_sent();
    assert!(sent.iter().any(|(_, p)| p.incarnation == 1
        && p.updates.iter().any(|u| u.id == id("me", 1)
            && u.incarnation == 1
            && matches!(u.claim, Claim::Alive { .. }))));
    // Being declared dead at the new incarnation is refuted too.
    let death = Update {
        id: id("me", 1),
        incarnation: 1,
        claim: Claim::Dead,
    };
    recorder.receive(addr(2), &packet(&id("a1", 1), Message::Gossip, vec![death]));
    assert_eq!(recorder.swim.incarnation(), 2);
}

#[test]
fn a_claim_at_the_last_incarnation_is_answered_with_a_new_generation() {
    for claim in [
        Claim::Dead,
        Claim::Suspect {
            accuser: Name::new("a1").expect("name"),
        },
    ] {
        let mut recorder = with_members(2);
        let forged = Update {
            id: id("me", 1),
            incarnation: u32::MAX,
            claim: claim.clone(),
        };
        recorder.receive(
            addr(2),
            &packet(&id("a1", 1), Message::Gossip, vec![forged]),
        );
        // No incarnation outranks u32::MAX: the node takes the next generation of its name.
        assert_eq!(*recorder.swim.id(), id("me", 2), "{claim:?}");
        assert_eq!(recorder.swim.incarnation(), 0);
        assert!(recorder.has_event("me", |k| matches!(
            k,
            EventKind::Refuted { incarnation: 0, .. }
        )));
        // Its packets speak as the new generation and carry it alive.
        recorder.receive(addr(2), &packet(&id("a1", 1), ping_me(7), vec![]));
        let sent = recorder.take_sent();
        let ack = sent
            .iter()
            .find(|(_, p)| matches!(p.message, Message::Ack { seq: 7, .. }))
            .expect("the ping is answered");
        assert_eq!(ack.1.from, id("me", 2));
        assert!(sent.iter().any(|(_, p)| {
            p.updates
                .iter()
                .any(|u| u.id == id("me", 2) && matches!(u.claim, Claim::Alive { .. }))
        }));
    }
    // A member that held the old generation dead at u32::MAX takes the new one as alive.
    let mut observer = with_members(2);
    let dead = Update {
        id: id("a1", 1),
        incarnation: u32::MAX,
        claim: Claim::Dead,
    };
    observer.receive(addr(3), &packet(&id("a2", 1), Message::Gossip, vec![dead]));
    let (_, state, _) = observer.swim.member_state("a1").expect("known");
    assert_eq!(state, MemberState::Dead);
    observer.receive(addr(2), &packet(&id("a1", 2), ping_me(1), vec![]));
    let (member, state, _) = observer.swim.member_state("a1").expect("known");
    assert_eq!((member.generation, state), (2, MemberState::Alive));
}

#[test]
fn a_paused_node_that_hears_its_suspicion_and_then_its_death_says_it_was_declared_dead() {
    let mut recorder = with_members(2);
    let claim = |claim| Update {
        id: id("me", 1),
        incarnation: 0,
        claim,
    };
    let suspicion = claim(Claim::Suspect {
        accuser: Name::new("a1").expect("name"),
    });
    // Both arrive at once after the pause, the suspicion first.
    recorder.receive(
        addr(2),
        &packet(
            &id("a1", 1),
            Message::Gossip,
            vec![suspicion, claim(Claim::Dead)],
        ),
    );
    assert_eq!(
        recorder.swim.incarnation(),
        1,
        "one refutation answers both"
    );
    assert!(recorder.has_event("me", |k| *k
        == EventKind::Refuted {
            incarnation: 1,
            declared_dead: true
        }));
    // Who said so, as a failure learned from another member names it.
    let refuted = *recorder.refuted_deaths().first().expect("recorded");
    assert_eq!(
        refuted.told_by.as_ref().map(|name| name.as_str()),
        Some("a1")
    );
    // Told once: the same death heard again from another member says nothing more.
    recorder.receive(
        addr(3),
        &packet(&id("a2", 1), Message::Gossip, vec![claim(Claim::Dead)]),
    );
    assert_eq!(recorder.refuted_deaths().len(), 1);
    // A stale death from before an older refutation is not news.
    let mut quiet = with_members(2);
    quiet.receive(
        addr(2),
        &packet(
            &id("a1", 1),
            Message::Gossip,
            vec![claim(Claim::Suspect {
                accuser: Name::new("a1").expect("name"),
            })],
        ),
    );
    quiet.receive(
        addr(2),
        &packet(
            &id("a1", 1),
            Message::Gossip,
            vec![Update {
                id: id("me", 1),
                incarnation: 1,
                claim: Claim::Suspect {
                    accuser: Name::new("a1").expect("name"),
                },
            }],
        ),
    );
    assert_eq!(quiet.swim.incarnation(), 2);
    quiet.receive(
        addr(2),
        &packet(&id("a1", 1), Message::Gossip, vec![claim(Claim::Dead)]),
    );
    assert!(!quiet.has_event("me", |k| matches!(
        k,
        EventKind::Refuted {
            declared_dead: true,
            ..
        }
    )));
}

#[test]
fn a_restarted_member_replaces_its_old_generation() {
    let mut recorder = with_members(2);
    recorder.receive(addr(2), &packet(&id("a1", 2), ping_me(1), vec![]));
    assert!(recorder.has_event("a1", |k| *k
        == EventKind::Restarted {
            previous_generation: 1,
            moved_from: None,
        }));
    assert!(
        !recorder
            .events
            .iter()
            .any(|e| e.member == id("a1", 2) && e.kind == EventKind::Joined),
        "a restart is reported once, not also as a join: {:?}",
        recorder.events
    );
    let (member, state, _) = recorder.swim.member_state("a1").expect("known");
    assert_eq!((member.generation, state), (2, MemberState::Alive));
    // News about the old generation is ignored from now on.
    let stale = Update {
        id: id("a1", 1),
        incarnation: 9,
        claim: Claim::Dead,
    };
    recorder.receive(addr(3), &packet(&id("a2", 1), Message::Gossip, vec![stale]));
    let (member, state, _) = recorder.swim.member_state("a1").expect("known");
    assert_eq!((member.generation, state), (2, MemberState::Alive));
    // Packets from the old generation are dropped and counted.
    recorder.receive(addr(2), &packet(&id("a1", 1), ping_me(2), vec![]));
    assert_eq!(recorder.swim.stats().stale, 1);
    assert!(
        recorder
            .take_sent()
            .iter()
            .all(|(_, p)| !matches!(p.message, Message::Ack { seq: 2, .. }))
    );
}

#[test]
fn a_newer_process_with_our_name_wins_and_we_yield() {
    let mut recorder = with_members(1);
    recorder.receive(addr(9), &packet(&id("me", 5), ping_me(1), vec![]));
    assert_eq!(recorder.swim.status(), LocalStatus::Yielded);
    assert!(recorder.has_event("me", |k| matches!(
        k,
        EventKind::NameConflict {
            winner_generation: 5,
            ..
        }
    )));
    // It hands its table to the newer process, which may know nobody else.
    let sent = recorder.take_sent();
    let handed = updates_sent_to(&sent, addr(9));
    assert!(
        sent.iter()
            .any(|(to, p)| *to == addr(9) && matches!(p.message, Message::Sync { .. })),
        "{sent:?}"
    );
    assert!(
        handed.iter().any(|u| u.id.name == id("a1", 1).name),
        "{handed:?}"
    );
    // A yielded node sends nothing more.
    recorder.run_until(10_000 * MS);
    assert!(recorder.take_sent().is_empty());
    // Its own view: it left (it still runs), and it measures nobody's silence.
    let views = recorder.swim.members(recorder.now);
    assert_eq!(views[0].state, MemberState::Left, "{:?}", views[0]);
    assert!(views.iter().all(|v| v.phi == 0.0), "{views:?}");
}

/// The updates sent to `to`, from every packet sent there.
fn updates_sent_to(sent: &[(SocketAddr, Packet)], to: SocketAddr) -> Vec<Update> {
    sent.iter()
        .filter(|(at, _)| *at == to)
        .flat_map(|(_, p)| p.updates.clone())
        .collect()
}

#[test]
fn an_older_process_with_our_name_is_told_of_us_and_otherwise_ignored() {
    let mut recorder = Recorder::new(SwimConfig::default());
    recorder.swim.me.generation = 10;
    recorder.receive(addr(9), &packet(&id("me", 5), ping_me(1), vec![]));
    assert_eq!(recorder.swim.status(), LocalStatus::Joining);
    assert_eq!(recorder.swim.stats().stale, 1);
    // Told that generation 10 carries the name, so that it yields.
    let told = updates_sent_to(&recorder.take_sent(), addr(9));
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].id, id("me", 10));
    assert!(matches!(told[0].claim, Claim::Alive { .. }));
    // The table it hands over as it yields: this node learns the members it knew.
    recorder.receive(
        addr(9),
        &packet(
            &id("me", 5),
            Message::Sync {
                reply: false,
                total: 2,
            },
            vec![alive(&id("me", 5), 9), alive(&id("a7", 1), 7)],
        ),
    );
    assert!(
        recorder.swim.member_state("a7").is_some(),
        "joined through the handover"
    );
    assert!(
        recorder.swim.member_state("me").is_none(),
        "not itself as a member"
    );
    // This node says so too, once for that process: it may be another node given our name.
    let displaced = |recorder: &Recorder| {
        recorder
            .events
            .iter()
            .filter(|e| {
                e.kind
                    == EventKind::DisplacedOlder {
                        older_generation: 5,
                        older_address: addr(9).to_string(),
                    }
            })
            .count()
    };
    assert_eq!(displaced(&recorder), 1, "{:?}", recorder.events);
    recorder.now += 5_000 * MS;
    recorder.receive(addr(9), &packet(&id("me", 5), ping_me(2), vec![]));
    assert_eq!(
        displaced(&recorder),
        1,
        "reported once: {:?}",
        recorder.events
    );
}

#[test]
fn an_older_process_of_a_known_member_is_told_of_its_successor_once_a_second() {
    let mut recorder = with_members(1);
    // a1 restarted, or a second process took its name: generation 2 at port 7.
    recorder.receive(
        addr(7),
        &packet(&id("a1", 2), Message::Gossip, vec![alive(&id("a1", 2), 7)]),
    );
    // It was alive at port 2: the event says where it moved from, as that may be a second
    // process given the name.
    assert!(
        recorder.has_event("a1", |k| *k
            == EventKind::Restarted {
                previous_generation: 1,
                moved_from: Some(addr(2).to_string()),
            }),
        "{:?}",
        recorder.events
    );
    recorder.take_sent();
    // Generation 1 is still running and pings us from its old address.
    for round in 0..3 {
        recorder.now += 100 * MS;
        recorder.receive(addr(2), &packet(&id("a1", 1), ping_me(round), vec![]));
    }
    let sent = recorder.take_sent();
    // Not answered as a member, but told once who carries its name now.
    assert!(
        sent.iter()
            .all(|(_, p)| !matches!(p.message, Message::Ack { .. })),
        "{sent:?}"
    );
    let told = updates_sent_to(&sent, addr(2));
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].id, id("a1", 2));
    assert!(matches!(told[0].claim, Claim::Alive { address, .. } if address == addr(7)));
    // A second later it is told again if it still talks.
    recorder.now += 1_000 * MS;
    recorder.receive(addr(2), &packet(&id("a1", 1), ping_me(9), vec![]));
    assert_eq!(updates_sent_to(&recorder.take_sent(), addr(2)).len(), 1);
}

#[test]
fn an_older_process_that_hears_of_its_successor_yields() {
    // The other side of the two tests above: the update reaches the older process.
    let mut recorder = with_members(1);
    recorder.receive(
        addr(2),
        &packet(&id("a1", 1), Message::Gossip, vec![alive(&id("me", 7), 30)]),
    );
    assert_eq!(recorder.swim.status(), LocalStatus::Yielded);
    // It hands its table to the newer process, which has not heard from it (it joined
    // through another member): so the newer one learns that it displaced a live process.
    let sent = recorder.take_sent();
    let handover = sent
        .iter()
        .find(|(to, packet)| *to == addr(30) && matches!(packet.message, Message::Sync { .. }));
    let (_, handover) = handover.expect("a handover to the successor");
    let mut newer = Recorder {
        swim: Swim::new(
            SwimConfig::default(),
            id("me", 7),
            addr(30),
            MemberMeta::default(),
            43,
            0,
        ),
        now: 0,
        sent: Vec::new(),
        events: Vec::new(),
    };
    newer.receive(addr(1), handover);
    assert!(
        newer.has_event("me", |kind| matches!(
            kind,
            EventKind::DisplacedOlder { older_generation: 1, older_address } if older_address == &addr(1).to_string()
        )),
        "{:?}",
        newer.events
    );
}

#[test]
fn bad_packets_are_counted_and_dropped() {
    let mut recorder = with_members(1);
    let error = recorder
        .swim
        .handle_packet(addr(2), &[1, 2, 3], 0)
        .unwrap_err();
    assert!(matches!(error, PacketError::Malformed(_)), "{error}");
    let mut foreign = packet(&id("a1", 1), ping_me(1), vec![]);
    foreign.cluster = cluster_tag("other");
    let bytes = encode_packet(&foreign, 1400).expect("encodes");
    assert!(recorder.swim.handle_packet(addr(2), &bytes, 0).is_err());
    assert!(
        recorder
            .swim
            .handle_packet(addr(2), &vec![0; 5000], 0)
            .is_err()
    );
    let stats = recorder.swim.stats();
    assert_eq!((stats.malformed, stats.foreign, stats.oversized), (1, 1, 1));
    recorder.record();
    assert!(recorder.take_sent().is_empty(), "no answer to bad packets");
}

#[test]
fn dead_entries_in_a_state_exchange_only_raise_suspicion() {
    let mut recorder = with_members(3);
    let dead = Update {
        id: id("a2", 1),
        incarnation: 0,
        claim: Claim::Dead,
    };
    recorder.receive(
        addr(2),
        &packet(
            &id("a1", 1),
            Message::Sync {
                reply: false,
                total: 1,
            },
            vec![dead],
        ),
    );
    let (_, state, _) = recorder.swim.member_state("a2").expect("known");
    assert_eq!(state, MemberState::Suspect);
    // The suspect refutes in time: alive again, never dead.
    let refute = Update {
        id: id("a2", 1),
        incarnation: 1,
        claim: Claim::Alive {
            address: addr(3),
            meta: None,
        },
    };
    recorder.receive(
        addr(3),
        &packet(&id("a3", 1), Message::Gossip, vec![refute]),
    );
    let (_, state, incarnation) = recorder.swim.member_state("a2").expect("known");
    assert_eq!((state, incarnation), (MemberState::Alive, 1));
    assert!(!recorder.has_event("a2", |k| *k == EventKind::Failed));
}

#[test]
fn a_member_back_from_the_dead_is_told_it_was_declared_dead() {
    let mut recorder = with_members(2);
    let dead = Update {
        id: id("a1", 1),
        incarnation: 0,
        claim: Claim::Dead,
    };
    recorder.receive(addr(3), &packet(&id("a2", 1), Message::Gossip, vec![dead]));
    let (_, state, _) = recorder.swim.member_state("a1").expect("known");
    assert_eq!(state, MemberState::Dead);
    recorder.run_until(recorder.now + 2_000 * MS);
    recorder.take_sent();
    // a1 speaks again, at a higher incarnation (it refuted a suspicion it heard).
    let mut back = packet(&id("a1", 1), ping_me(3), vec![]);
    back.incarnation = 1;
    recorder.receive(addr(2), &back);
    let (_, state, _) = recorder.swim.member_state("a1").expect("known");
    assert_eq!(state, MemberState::Alive);
    let told = recorder.take_sent().into_iter().any(|(to, p)| {
        to == addr(2)
            && p.updates.iter().any(|u| {
                u.id == id("a1", 1) && u.incarnation == 0 && matches!(u.claim, Claim::Dead)
            })
    });
    assert!(told, "a1 was not told it had been declared dead");
    // Heard of from a third member instead: in a small cluster, told as well.
    let mut recorder = with_members(2);
    let dead = Update {
        id: id("a1", 1),
        incarnation: 0,
        claim: Claim::Dead,
    };
    recorder.receive(addr(3), &packet(&id("a2", 1), Message::Gossip, vec![dead]));
    recorder.run_until(recorder.now + 2_000 * MS);
    recorder.take_sent();
    let back = Update {
        id: id("a1", 1),
        incarnation: 1,
        claim: Claim::Alive {
            address: addr(2),
            meta: None,
        },
    };
    recorder.receive(addr(3), &packet(&id("a2", 1), Message::Gossip, vec![back]));
    let told = recorder.take_sent().into_iter().any(|(to, p)| {
        to == addr(2)
            && p.updates
                .iter()
                .any(|u| u.id == id("a1", 1) && matches!(u.claim, Claim::Dead))
    });
    assert!(told, "a1 was not told, though a2 said it was back");
}

#[test]
fn a_member_said_to_be_down_that_this_node_does_not_know_stays_unknown() {
    let mut recorder = with_members(2);
    for (claim, source) in [
        (Claim::Dead, Message::Gossip),
        (Claim::Left, Message::Gossip),
        (
            Claim::Dead,
            Message::Sync {
                reply: false,
                total: 1,
            },
        ),
        (
            Claim::Left,
            Message::Sync {
                reply: false,
                total: 1,
            },
        ),
    ] {
        // A member forgotten here (or never known) that a peer still lists as down: the
        // state exchange of a peer that learned of the death later, say.
        let gone = Update {
            id: id("gone", 1),
            incarnation: 3,
            claim,
        };
        recorder.receive(addr(2), &packet(&id("a1", 1), source, vec![gone]));
        assert!(recorder.swim.member_state("gone").is_none());
    }
    recorder.run_until(60_000 * MS);
    assert!(
        !recorder.has_event("gone", |_| true),
        "no 'joined' then 'failed' for a member long gone: {:?}",
        recorder.events
    );
}

#[test]
fn a_sync_request_is_answered_with_the_whole_table_within_the_packet_limit() {
    let mut recorder = with_members(200);
    recorder.receive(
        addr(500),
        &packet(
            &id("joiner", 1),
            Message::Sync {
                reply: true,
                total: 1,
            },
            vec![],
        ),
    );
    let sent = recorder.take_sent();
    let replies: Vec<_> = sent
        .iter()
        .filter(|(to, p)| *to == addr(500) && matches!(p.message, Message::Sync { .. }))
        .collect();
    assert!(replies.len() > 1, "200 members do not fit one packet");
    let entries: usize = replies.iter().map(|(_, p)| p.updates.len()).sum();
    assert_eq!(entries, 202, "every member, the joiner and ourselves");
    assert!(recorder.has_event("joiner", |k| *k == EventKind::Joined));
}

#[test]
fn leaving_tells_others_and_stops_probing() {
    let mut recorder = with_members(3);
    recorder.swim.leave(recorder.now);
    recorder.record();
    let sent = recorder.take_sent();
    assert!(sent.len() >= 3, "{sent:?}");
    assert!(sent.iter().all(|(_, p)| {
        p.updates
            .iter()
            .any(|u| u.id == id("me", 1) && u.claim == Claim::Left)
    }));
    recorder.run_until(5_000 * MS);
    assert!(
        recorder
            .take_sent()
            .iter()
            .all(|(_, p)| !matches!(p.message, Message::Ping { .. }))
    );
}

#[test]
fn a_death_this_node_refutes_from_a_member_table_names_the_member_that_sent_it() {
    let mut recorder = with_members(2);
    // After a long pause the first word may be a state exchange, not gossip.
    recorder.receive(
        addr(3),
        &packet(
            &id("a2", 1),
            Message::Sync {
                reply: false,
                total: 1,
            },
            vec![Update {
                id: id("me", 1),
                incarnation: 0,
                claim: Claim::Dead,
            }],
        ),
    );
    let refuted = *recorder
        .refuted_deaths()
        .first()
        .expect("refuted as a death");
    assert_eq!(
        refuted.told_by.as_ref().map(|name| name.as_str()),
        Some("a2"),
        "{refuted:?}"
    );
}

#[test]
fn a_member_said_alive_again_is_not_judged_by_its_silence_while_dead() {
    let mut recorder = with_members(2);
    let member = id("a1", 1);
    for _ in 0..10 {
        recorder.now += 500 * MS;
        recorder.receive(addr(2), &packet(&member, Message::Gossip, Vec::new()));
    }
    let teller = id("a2", 1);
    let news = |claim, incarnation| Update {
        id: member,
        incarnation,
        claim,
    };
    recorder.receive(
        addr(3),
        &packet(&teller, Message::Gossip, vec![news(Claim::Dead, 0)]),
    );
    // Twenty seconds on (a partition: this node runs all along, so the time is a1's
    // silence, not a pause of its own), a2 hears it again and says so; this node has not
    // heard a1 itself yet.
    let heal = recorder.now + 20_000 * MS;
    recorder.run_until(heal);
    recorder.now = heal;
    let alive = Claim::Alive {
        address: addr(2),
        meta: None,
    };
    recorder.receive(
        addr(3),
        &packet(&teller, Message::Gossip, vec![news(alive, 1)]),
    );
    let view = recorder
        .swim
        .members(recorder.now + 100 * MS)
        .into_iter()
        .find(|m| m.id.name == member.name)
        .expect("known");
    assert_eq!(view.state, MemberState::Alive);
    assert!(
        view.phi < 1.0,
        "phi {} from the silence while it was dead",
        view.phi
    );
}

#[test]
fn a_leaving_node_measures_no_phi_of_members_it_no_longer_hears() {
    let mut recorder = with_members(1);
    let member = id("a1", 1);
    // Heard every half second, long enough for phi to have a window.
    for _ in 0..10 {
        recorder.now += 500 * MS;
        recorder.receive(addr(2), &packet(&member, Message::Gossip, Vec::new()));
    }
    // Ten seconds on (the view only reads the time it is given).
    let later = recorder.now + 10_000 * MS;
    let phi_of = |swim: &Swim| {
        swim.members(later)
            .into_iter()
            .find(|m| m.id.name == member.name)
            .map(|m| (m.state, m.phi))
    };
    let (_, silent_phi) = phi_of(&recorder.swim).expect("known");
    assert!(silent_phi > 8.0, "ten silent seconds: phi {silent_phi}");
    recorder.swim.leave(recorder.now);
    assert_eq!(
        phi_of(&recorder.swim),
        Some((MemberState::Alive, 0.0)),
        "a node that left hears nobody: the silence says nothing of the member"
    );
}

#[test]
fn a_node_without_seeds_founds_its_cluster_and_is_active() {
    let mut recorder = Recorder::new(SwimConfig::default());
    recorder.swim.join(&[addr(1)], 0);
    assert_eq!(
        recorder.swim.status(),
        LocalStatus::Active,
        "its own address is no seed"
    );
    assert_eq!(recorder.swim.join_pending(), None);
    recorder.record();
    assert!(recorder.take_sent().is_empty(), "nobody to contact");
}

#[test]
fn a_joining_node_contacts_seeds_until_answered() {
    let mut recorder = Recorder::new(SwimConfig::default());
    recorder.swim.join(&[addr(7)], 0);
    recorder.record();
    let first = recorder.take_sent();
    assert!(first.iter().any(|(to, p)| *to == addr(7)
        && matches!(p.message, Message::Sync { reply: true, .. })
        && p.updates.iter().any(|u| u.id == id("me", 1))));
    recorder.run_until(3_500 * MS);
    let retries = recorder
        .take_sent()
        .iter()
        .filter(|(to, p)| *to == addr(7) && matches!(p.message, Message::Sync { reply: true, .. }))
        .count();
    assert!(retries >= 1);
    // The service warns from what the core says about the unanswered join.
    let pending = recorder.swim.join_pending().expect("no seed has answered");
    assert_eq!(pending.seeds, &[addr(7)]);
    assert_eq!(pending.attempts as usize, 1 + retries);
    seed_answers(&mut recorder);
    assert_eq!(recorder.swim.status(), LocalStatus::Active);
    assert_eq!(recorder.swim.join_pending(), None, "the seed answered");
    recorder.run_until(60_000 * MS);
    assert!(!recorder.take_sent().iter().any(|(to, p)| *to == addr(7)
        && matches!(p.message, Message::Sync { reply: true, .. })
        && p.updates.len() == 1));
}

/// The seed `seed` at `addr(7)` answers a join with a table holding nobody else.
fn seed_answers(recorder: &mut Recorder) {
    recorder.receive(
        addr(7),
        &packet(
            &id("seed", 1),
            Message::Sync {
                reply: false,
                total: 1,
            },
            vec![],
        ),
    );
}

/// Join requests (a table exchange asking for an answer, carrying this node alone; a state
/// exchange carries the whole table) sent to `to`.
fn joins_to(sent: &[(SocketAddr, Packet)], to: SocketAddr) -> usize {
    sent.iter()
        .filter(|(at, p)| {
            *at == to
                && matches!(p.message, Message::Sync { reply: true, .. })
                && p.updates.len() == 1
                && p.updates[0].id == id("me", 1)
        })
        .count()
}

#[test]
fn a_seed_found_after_the_start_is_joined_through() {
    // A seed's name that resolves only later: the node that started alone joins through it
    // once the service hands it over, and is joining, not a cluster of one, meanwhile.
    let mut recorder = Recorder::new(SwimConfig::default());
    recorder.swim.join(&[], 0);
    assert_eq!(recorder.swim.status(), LocalStatus::Active);
    recorder.run_until(5_000 * MS);
    recorder.take_sent();
    recorder.swim.add_seeds(&[addr(7), addr(1)], recorder.now);
    recorder.record();
    assert_eq!(recorder.swim.status(), LocalStatus::Joining);
    assert_eq!(joins_to(&recorder.take_sent(), addr(7)), 1, "joins at once");
    let pending = recorder.swim.join_pending().expect("waiting for the seed");
    assert_eq!(pending.seeds, &[addr(7)], "its own address is no seed");
    recorder.run_until(8_500 * MS);
    assert!(joins_to(&recorder.take_sent(), addr(7)) >= 1, "and retries");
}

#[test]
fn a_member_rejoins_through_a_seed_its_table_has_forgotten() {
    // The two sides of a partition longer than dead_retention forget each other; the seed
    // this member joined through, once forgotten, is how the sides meet again.
    let config = SwimConfig {
        dead_retention: Duration::from_secs(5),
        ..SwimConfig::default()
    };
    let mut recorder = Recorder::new(config);
    recorder.swim.join(&[addr(7)], 0);
    recorder.record();
    seed_answers(&mut recorder);
    recorder.take_sent();
    // Nobody answers from here on: the seed is suspected, declared dead, then forgotten.
    recorder.run_until(59_000 * MS);
    assert!(
        recorder.has_event("seed", |kind| matches!(kind, EventKind::Forgotten)),
        "{:?}",
        recorder.events
    );
    assert_eq!(
        joins_to(&recorder.take_sent(), addr(7)),
        0,
        "not before the check"
    );
    recorder.run_until(61_000 * MS);
    assert_eq!(
        joins_to(&recorder.take_sent(), addr(7)),
        1,
        "a join at the check"
    );
    // Still unknown: the next joins come at doubling waits (60 s after, then 120 s).
    recorder.run_until(119_000 * MS);
    assert_eq!(joins_to(&recorder.take_sent(), addr(7)), 0);
    recorder.run_until(121_000 * MS);
    assert_eq!(joins_to(&recorder.take_sent(), addr(7)), 1);
    recorder.run_until(239_000 * MS);
    assert_eq!(joins_to(&recorder.take_sent(), addr(7)), 0);
    recorder.run_until(241_000 * MS);
    assert_eq!(joins_to(&recorder.take_sent(), addr(7)), 1);
}

#[test]
fn a_seed_that_left_is_joined_again() {
    // A founder restarted gracefully has no seed of its own: the members that joined
    // through it find it again, where they would otherwise keep it as "left".
    let mut recorder = Recorder::new(SwimConfig::default());
    recorder.swim.join(&[addr(7)], 0);
    recorder.record();
    let seed = id("seed", 1);
    seed_answers(&mut recorder);
    recorder.run_until(1_000 * MS);
    recorder.receive(
        addr(7),
        &packet(
            &seed,
            Message::Gossip,
            vec![Update {
                id: seed,
                incarnation: 0,
                claim: Claim::Left,
            }],
        ),
    );
    assert!(recorder.has_event("seed", |kind| matches!(kind, EventKind::Left)));
    recorder.take_sent();
    recorder.run_until(61_000 * MS);
    assert_eq!(joins_to(&recorder.take_sent(), addr(7)), 1);
}

#[test]
fn a_node_whose_seeds_are_still_being_looked_up_is_joining() {
    let mut recorder = Recorder::new(SwimConfig::default());
    recorder.swim.join(&[], 0);
    recorder.swim.await_seeds();
    assert_eq!(recorder.swim.status(), LocalStatus::Joining);
}

#[test]
fn a_known_seed_draws_no_join_even_when_dead() {
    // A crashed seed is left to the reconnect pings: its restart must not draw a join (and
    // a whole table in answer) from every member.
    let mut recorder = joined();
    recorder.take_sent();
    recorder.run_until(600_000 * MS);
    let seed = recorder
        .swim
        .members(recorder.now)
        .into_iter()
        .find(|m| m.id == id("seed", 1))
        .expect("the seed is still listed");
    assert_eq!(seed.state, MemberState::Dead, "the premise: a dead seed");
    assert_eq!(joins_to(&recorder.take_sent(), addr(7)), 0);
}

#[test]
fn queued_updates_never_push_a_packet_over_the_limit() {
    let mut recorder = with_members(1);
    let updates: Vec<Update> = (0..40)
        .map(|i| {
            alive(
                &id(&format!("member-with-a-rather-long-name-{i:03}"), 1),
                100 + i,
            )
        })
        .collect();
    for chunk in updates.chunks(10) {
        recorder.receive(
            addr(2),
            &packet(&id("a1", 1), Message::Gossip, chunk.to_vec()),
        );
    }
    recorder.run_until(2_000 * MS);
    // `record` asserts every packet is at most 1400 bytes; the queue was drained into them.
    assert!(
        recorder
            .take_sent()
            .iter()
            .any(|(_, p)| p.updates.len() > 5)
    );
}

#[test]
fn a_member_heard_only_through_relays_becomes_degraded_and_is_probed_first() {
    let mut recorder = with_members(6);
    // Members a1…a6 sit at ports 2…7.
    let a5 = addr(6);
    // Everyone answers our probes for 20 s: phi learns how often we hear from a5.
    let mut at = 0;
    for _ in 0..200 {
        at += 100 * MS;
        recorder.run_until(at);
        let sent = recorder.take_sent();
        answer_pings(&mut recorder, &sent);
    }
    assert!(
        recorder
            .events
            .iter()
            .all(|e| matches!(e.kind, EventKind::Joined)),
        "{:?}",
        recorder.events
    );
    recorder.events.clear();
    // Then a5's path to us breaks one way: it answers no ping of ours, but the helpers we ask
    // reach it and forward its acks. SWIM keeps it alive; only phi sees it fall silent.
    let cut_at = at;
    let degraded =
        |recorder: &Recorder| recorder.has_event("a5", |k| matches!(k, EventKind::Degraded { .. }));
    let mut relayed = 0;
    while !degraded(&recorder) {
        at += 100 * MS;
        assert!(
            at < cut_at + 60_000 * MS,
            "never degraded: {:?}",
            recorder.events
        );
        recorder.run_until(at);
        let sent = recorder.take_sent();
        let (to_a5, to_others): (Vec<_>, Vec<_>) = sent.into_iter().partition(|(to, _)| *to == a5);
        assert!(
            to_a5
                .iter()
                .all(|(_, p)| !matches!(p.message, Message::PingReq { .. }))
        );
        answer_pings(&mut recorder, &to_others);
        for (helper, p) in &to_others {
            if let Message::PingReq { seq, target, .. } = p.message
                && target.name.as_str() == "a5"
            {
                let helper_id = id(&format!("a{}", helper.port() - 1), 1);
                recorder.receive(
                    *helper,
                    &packet(&helper_id, Message::Ack { seq, members: 0 }, vec![]),
                );
                relayed += 1;
            }
        }
    }
    assert!(relayed > 0, "a5 was probed through helpers");
    assert!(
        !recorder.has_event("a5", |k| matches!(k, EventKind::Suspected { .. })),
        "the forwarded acks keep a5 alive: {:?}",
        recorder.events
    );
    // Nobody else was flagged: the others answered every probe of ours.
    assert!(
        recorder
            .events
            .iter()
            .all(|e| e.member.name.as_str() == "a5"),
        "{:?}",
        recorder.events
    );
    // The event gives phi to a tenth, as its text does.
    let phi = recorder.events.iter().find_map(|e| match e.kind {
        EventKind::Degraded { phi } => Some(phi),
        _ => None,
    });
    assert!(
        phi.is_some_and(|phi| phi >= 8.0 && (phi * 10.0 - (phi * 10.0).round()).abs() < 1e-9),
        "{phi:?}"
    );
    let views = recorder.swim.members(recorder.now);
    let a5_view = views
        .iter()
        .find(|v| v.id.name.as_str() == "a5")
        .expect("a5");
    assert!(a5_view.phi >= 8.0 && a5_view.degraded, "{a5_view:?}");
    // Degraded means probed in the next probe period, ahead of its round-robin turn.
    recorder.run_until(at + 600 * MS);
    assert!(
        recorder
            .take_sent()
            .iter()
            .any(|(to, p)| *to == a5 && matches!(p.message, Message::Ping { .. }))
    );
}

#[test]
fn a_member_keeps_what_every_packet_touches_in_its_first_two_cache_lines() {
    assert_eq!(std::mem::align_of::<Member>(), 64);
    // The presence flag and the name share the first line: a lookup reads one line of the
    // member it finds.
    assert_eq!(std::mem::offset_of!(Member, present), 0);
    assert!(std::mem::offset_of!(Member, id) <= 8);
    for end in [
        std::mem::offset_of!(Member, incarnation) + 4,
        std::mem::offset_of!(Member, state) + 1,
        std::mem::offset_of!(Member, address) + std::mem::size_of::<Option<SocketAddr>>(),
        std::mem::offset_of!(Member, last_hint_us) + 8,
    ] {
        assert!(end <= 128, "a hot field ends at byte {end}");
    }
}

fn test_member(name: &str) -> Member {
    Member {
        present: true,
        id: id(name, 1),
        incarnation: 0,
        state: MemberState::Alive,
        degraded: false,
        address: None,
        since_us: 0,
        last_hint_us: 0,
        phi: PhiWindow::default(),
        meta: None,
        suspicion: None,
    }
}

#[test]
fn the_member_table_finds_every_name_through_inserts_and_removals() {
    let mut table = Table::default();
    let mut expected: std::collections::BTreeMap<String, Slot> = Default::default();
    let mut rng = SeededRng::new(9);
    for round in 0..4000u32 {
        let name = format!("m{}", rng.below(600));
        match (expected.get(&name).copied(), round % 3) {
            (Some(slot), 0) => {
                let removed = table.remove(slot).expect("present");
                assert_eq!(removed.id.name.as_str(), name);
                expected.remove(&name);
            }
            (None, _) => {
                let slot = table.insert(test_member(&name));
                expected.insert(name, slot);
            }
            _ => {}
        }
        if round % 97 == 0 {
            for (name, slot) in &expected {
                let key = Name::new(name).expect("name");
                assert_eq!(table.find(&key), Some(*slot), "{name} after round {round}");
            }
            assert_eq!(table.len(), expected.len());
            assert_eq!(table.find(&Name::new("absent").expect("name")), None);
        }
    }
}

#[test]
fn a_vacant_slot_holds_no_member_though_it_keeps_its_bytes() {
    let mut table = Table::default();
    let kept = table.insert(test_member("kept"));
    let gone = table.insert(test_member("gone"));
    let removed = table.remove(gone).expect("present");
    assert_eq!(removed.id.name.as_str(), "gone");
    assert!(table.get(gone).is_none());
    assert!(table.get_mut(gone).is_none());
    assert!(table.remove(gone).is_none(), "removed once only");
    assert_eq!(table.find(&Name::new("gone").expect("name")), None);
    let listed: Vec<Slot> = table.iter().map(|(slot, _)| slot).collect();
    assert_eq!(listed, vec![kept]);
    assert_eq!(table.len(), 1);
}

#[test]
fn a_reused_slot_does_not_answer_for_its_old_member() {
    let mut table = Table::default();
    let first = table.insert(test_member("old"));
    let old_ref = table.slot_ref(first);
    table.remove(first);
    let second = table.insert(test_member("new"));
    assert_eq!(first, second, "the slot is reused");
    assert!(table.resolve(old_ref).is_none());
    assert!(table.resolve(table.slot_ref(second)).is_some());
    let before = table.slot_ref(second);
    table.replace(second, test_member("new"));
    assert!(
        table.resolve(before).is_none(),
        "a new generation is a new identity"
    );
}

fn queued_names(queue: &mut Dissemination, budget: usize, limit: u32) -> Vec<String> {
    let mut buffer = Vec::new();
    queue
        .select_into(budget, limit, &mut buffer)
        .expect("encodes");
    let (count, mut at) =
        crate::codec::decode_datagram_prefix::<u64>("count", &buffer).expect("count");
    let mut names = Vec::new();
    for _ in 0..count {
        let (update, used) =
            crate::codec::decode_datagram_prefix::<Update>("update", &buffer[at..])
                .expect("update");
        at += used;
        names.push(update.id.name.to_string());
    }
    names
}

#[test]
fn the_queue_sends_fewest_sent_newest_first_and_drops_at_the_limit() {
    let mut queue = Dissemination::default();
    let update = |name: &str| Update {
        id: id(name, 1),
        incarnation: 0,
        claim: Claim::Dead,
    };
    for (key, name) in ["alpha-a", "alpha-b", "alpha-c"].into_iter().enumerate() {
        queue.push(key as u32, &update(name), 16);
    }
    let one = wire::update_len(&update("alpha-a"));
    // Room for two: the two newest.
    assert_eq!(queued_names(&mut queue, 2 * one, 3), ["alpha-c", "alpha-b"]);
    // Now "alpha-a" is the only one never sent.
    assert_eq!(queued_names(&mut queue, 2 * one, 3), ["alpha-a", "alpha-c"]);
    // A replaced update starts over.
    let newer = update("alpha-c");
    queue.push(2, &newer, 16);
    assert_eq!(queued_names(&mut queue, one, 3), ["alpha-c"]);
    // Each goes after `limit` sends.
    for _ in 0..10 {
        queued_names(&mut queue, 8 * one, 3);
    }
    assert!(queue.is_empty());
}

#[test]
fn a_full_queue_drops_its_most_sent_oldest_update() {
    let mut queue = Dissemination::default();
    let update = |name: &str| Update {
        id: id(name, 1),
        incarnation: 0,
        claim: Claim::Left,
    };
    let one = wire::update_len(&update("alpha-a"));
    queue.push(0, &update("alpha-a"), 2);
    queue.push(1, &update("alpha-b"), 2);
    assert_eq!(queued_names(&mut queue, one, 9), ["alpha-b"]);
    assert!(queue.push(2, &update("alpha-c"), 2), "full: one dropped");
    assert!(!queue.holds_below(1, 9), "the sent one went");
    assert!(queue.holds_below(0, 9) && queue.holds_below(2, 9));
}

/// The dissemination queue's rules written the plain way, to check the queue against.
#[derive(Default)]
struct QueueModel {
    /// (key, order, times sent, size).
    entries: Vec<(u32, u64, u32, usize)>,
    order: u64,
}

impl QueueModel {
    fn push(&mut self, key: u32, size: usize, cap: usize) {
        self.entries.retain(|e| e.0 != key);
        if self.entries.len() >= cap
            && let Some(victim) = self
                .entries
                .iter()
                .enumerate()
                .max_by_key(|(_, e)| (e.2, std::cmp::Reverse(e.1)))
                .map(|(at, _)| at)
        {
            self.entries.remove(victim);
        }
        self.order += 1;
        self.entries.push((key, self.order, 0, size));
    }

    fn select(&mut self, mut budget: usize, limit: u32) -> Vec<u32> {
        let mut candidates = self.entries.clone();
        candidates.sort_by_key(|e| (e.2, std::cmp::Reverse(e.1)));
        let mut chosen = Vec::new();
        for (key, _, _, size) in candidates {
            if budget < 8 {
                break;
            }
            if size <= budget {
                budget -= size;
                chosen.push(key);
            }
        }
        for entry in &mut self.entries {
            if chosen.contains(&entry.0) {
                entry.2 += 1;
            }
        }
        self.entries.retain(|e| e.2 < limit);
        chosen
    }
}

#[test]
fn the_queue_chooses_as_its_rules_say_over_many_random_steps() {
    let mut rng = SeededRng::new(11);
    let mut queue = Dissemination::default();
    let mut model = QueueModel::default();
    // Accusations by names of 1 to 40 bytes: updates of many sizes.
    let update = |key: u32, accuser: usize| Update {
        id: id(&format!("m{key}"), 1),
        incarnation: 0,
        claim: Claim::Suspect {
            accuser: Name::new(&"a".repeat(accuser)).expect("name"),
        },
    };
    let (cap, limit) = (24, 5);
    for step in 0..20_000 {
        match rng.below(10) {
            0..=4 => {
                let key = rng.below(40) as u32;
                let update = update(key, 1 + rng.below(40));
                queue.push(key, &update, cap);
                model.push(key, wire::update_len(&update), cap);
            }
            5 => {
                let key = rng.below(40) as u32;
                queue.remove(key);
                model.entries.retain(|e| e.0 != key);
            }
            _ => {
                let budget = rng.below(400);
                let got: Vec<u32> = queued_names(&mut queue, budget, limit)
                    .iter()
                    .map(|name| name[1..].parse().expect("a key"))
                    .collect();
                assert_eq!(got, model.select(budget, limit), "step {step}");
            }
        }
        assert_eq!(queue.len, model.entries.len(), "step {step}");
    }
}

/// Answers every ping the recorder sent to a member a1..aN (ports 2..) with an ack.
fn answer_pings(recorder: &mut Recorder, sent: &[(SocketAddr, Packet)]) {
    for (to, p) in sent {
        if let Message::Ping { seq, .. } = p.message
            && let SocketAddr::V4(v4) = to
            && v4.port() >= 2
            && v4.port() < 100
        {
            let member = id(&format!("a{}", v4.port() - 1), 1);
            recorder.receive(
                *to,
                &packet(&member, Message::Ack { seq, members: 0 }, vec![]),
            );
        }
    }
}

/// Member a2 (at port 3) gossips that `target` is suspect at incarnation 0.
fn a2_accuses(recorder: &mut Recorder, target: MemberId) {
    let accusation = Update {
        id: target,
        incarnation: 0,
        claim: Claim::Suspect {
            accuser: Name::new("a2").expect("name"),
        },
    };
    recorder.receive(
        addr(3),
        &packet(&id("a2", 1), Message::Gossip, vec![accusation]),
    );
}

#[test]
fn a_suspect_that_answers_our_own_probe_is_not_declared_dead() {
    let mut recorder = with_members(4);
    let a1 = id("a1", 1);
    // a2 says a1 is suspect; we hold it suspect too but have not checked it ourselves.
    a2_accuses(&mut recorder, a1);
    let (_, state, _) = recorder.swim.member_state("a1").expect("known");
    assert_eq!(state, MemberState::Suspect);
    // a1 answers every ping but never learns it is suspected (its refutations get lost):
    // its suspicion expires again and again, and each time our own probe finds it alive.
    let mut hinted = 0;
    let mut pinged = 0;
    let start = recorder.now;
    while recorder.now < start + 30_000 * MS {
        let next = recorder.swim.poll_timeout().expect("timers");
        recorder.run_until(next);
        let sent = recorder.take_sent();
        for (to, p) in &sent {
            if *to == addr(2) {
                pinged += usize::from(matches!(p.message, Message::Ping { .. }));
                hinted += usize::from(
                    p.updates
                        .iter()
                        .any(|u| u.id == a1 && matches!(u.claim, Claim::Suspect { .. })),
                );
            }
        }
        answer_pings(&mut recorder, &sent);
    }
    assert!(
        !recorder.has_event("a1", |k| *k == EventKind::Failed),
        "a member that answers our probes is never declared dead"
    );
    assert!(pinged >= 2 && hinted >= 1, "pinged {pinged}, told {hinted}");
    // Once its refutation arrives, it is alive again.
    let refutation = Update {
        id: a1,
        incarnation: 1,
        claim: Claim::Alive {
            address: addr(2),
            meta: None,
        },
    };
    recorder.receive(addr(2), &packet(&a1, Message::Gossip, vec![refutation]));
    let (_, state, incarnation) = recorder.swim.member_state("a1").expect("known");
    assert_eq!((state, incarnation), (MemberState::Alive, 1));
}

#[test]
fn suspects_whose_last_checks_queue_up_are_all_checked_before_a_verdict() {
    // a2 accuses five members at once. They all answer pings but never hear that they are
    // suspected (their refutations get lost), so all five suspicions expire together and
    // five last-chance probes queue up for one probe per period. A verdict given before its
    // member's probe ran would declare a live member dead.
    let mut recorder = with_members(8);
    let accused: Vec<MemberId> = [1, 3, 4, 5, 6]
        .iter()
        .map(|i| id(&format!("a{i}"), 1))
        .collect();
    let accusations: Vec<Update> = accused
        .iter()
        .map(|member| Update {
            id: *member,
            incarnation: 0,
            claim: Claim::Suspect {
                accuser: Name::new("a2").expect("name"),
            },
        })
        .collect();
    recorder.receive(addr(3), &packet(&id("a2", 1), Message::Gossip, accusations));
    let start = recorder.now;
    let mut checked = std::collections::BTreeSet::new();
    while recorder.now < start + 60_000 * MS {
        let next = recorder.swim.poll_timeout().expect("timers");
        recorder.run_until(next);
        let sent = recorder.take_sent();
        for (to, p) in &sent {
            if matches!(p.message, Message::Ping { seq, .. } if seq != 0) {
                checked.insert(*to);
            }
        }
        answer_pings(&mut recorder, &sent);
    }
    for member in &accused {
        let name = member.name.as_str();
        assert!(
            !recorder.has_event(name, |k| *k == EventKind::Failed),
            "{name} answers every probe yet was declared dead (probed: {checked:?})"
        );
    }
    // Each of them was checked: a1 at port 2, a3..a6 at ports 4..7.
    for port in [2, 4, 5, 6, 7] {
        assert!(
            checked.contains(&addr(port)),
            "port {port} never probed: {checked:?}"
        );
    }
}

#[test]
fn a_suspect_that_fails_our_own_probe_too_is_declared_dead() {
    let mut recorder = with_members(4);
    let a1 = id("a1", 1);
    a2_accuses(&mut recorder, a1);
    let start = recorder.now;
    let mut probes = std::collections::BTreeSet::new();
    while recorder.now < start + 30_000 * MS
        && !recorder.has_event("a1", |k| *k == EventKind::Failed)
    {
        let next = recorder.swim.poll_timeout().expect("timers");
        recorder.run_until(next);
        let sent = recorder.take_sent();
        // The others answer, a1 does not (it crashed).
        let others: Vec<_> = sent
            .iter()
            .filter(|(to, _)| *to != addr(2))
            .cloned()
            .collect();
        for (to, p) in &sent {
            if let Message::Ping { seq, .. } = p.message
                && *to == addr(2)
                && seq != 0
            {
                probes.insert(seq);
            }
        }
        answer_pings(&mut recorder, &others);
    }
    assert!(recorder.has_event("a1", |k| *k == EventKind::Failed));
    // A prompt probe on hearing of the suspicion, and our own last check at its end.
    assert!(probes.len() >= 2, "probes of a1: {probes:?}");
}

#[test]
fn a_member_heard_of_from_a_third_party_gets_a_hello() {
    let mut recorder = with_members(2);
    let newcomer = id("b9", 1);
    recorder.receive(
        addr(3),
        &packet(&id("a2", 1), Message::Gossip, vec![alive(&newcomer, 50)]),
    );
    let sent = recorder.take_sent();
    let hello = sent
        .iter()
        .find(|(to, _)| *to == addr(50))
        .expect("a hello to the newcomer");
    assert!(
        hello
            .1
            .updates
            .iter()
            .any(|u| u.id == id("me", 1) && matches!(u.claim, Claim::Alive { meta: Some(_), .. }))
    );
    // A member that tells us of itself gets no hello: it knows us.
    recorder.receive(
        addr(51),
        &packet(&id("b8", 1), Message::Gossip, vec![alive(&id("b8", 1), 51)]),
    );
    assert!(!recorder.take_sent().iter().any(|(to, _)| *to == addr(51)));
}

#[test]
fn an_announcement_is_answered() {
    let mut recorder = with_members(2);
    let newcomer = id("b9", 1);
    recorder.receive(
        addr(50),
        &packet(&newcomer, Message::Announce, vec![alive(&newcomer, 50)]),
    );
    let sent = recorder.take_sent();
    assert!(
        sent.iter()
            .any(|(to, p)| *to == addr(50) && matches!(p.message, Message::Ack { seq: 0, .. }))
    );
    assert!(recorder.swim.member_state("b9").is_some());
}

/// A core that joins through a seed at port 7, whose table lists a1..a3 (ports 2..4).
fn joined() -> Recorder {
    let mut recorder = Recorder::new(SwimConfig::default());
    recorder.swim.join(&[addr(7)], 0);
    recorder.record();
    recorder.take_sent();
    let table: Vec<Update> = (1..=3)
        .map(|i| alive(&id(&format!("a{i}"), 1), 1 + i))
        .collect();
    recorder.receive(
        addr(7),
        &packet(
            &id("seed", 1),
            Message::Sync {
                reply: false,
                total: 4,
            },
            table,
        ),
    );
    recorder
}

#[test]
fn a_joiner_announces_itself_until_every_member_answered() {
    let mut recorder = joined();
    recorder.run_until(recorder.now + 100 * MS);
    let announced = |sent: &[(SocketAddr, Packet)], port: u16| {
        sent.iter().any(|(to, p)| {
            *to == addr(port)
                && p.message == Message::Announce
                && p.updates.iter().any(|u| u.id == id("me", 1))
        })
    };
    let first = recorder.take_sent();
    assert!((2..=4).all(|port| announced(&first, port)), "{first:?}");
    // a1 answers; a2 and a3 do not (lost): they are told again, a1 is not.
    recorder.receive(
        addr(2),
        &packet(&id("a1", 1), Message::Ack { seq: 0, members: 0 }, vec![]),
    );
    recorder.run_until(recorder.now + 1_100 * MS);
    let second = recorder.take_sent();
    assert!(!announced(&second, 2));
    assert!(announced(&second, 3) && announced(&second, 4));
    // At most three rounds.
    recorder.run_until(recorder.now + 10_000 * MS);
    let later = recorder.take_sent();
    let rounds = later
        .iter()
        .filter(|(to, p)| *to == addr(3) && p.message == Message::Announce)
        .count();
    assert_eq!(rounds, 1, "one more round, then no more");
}

#[test]
fn a_fresh_joiner_does_not_spread_the_members_its_seed_told_it_of() {
    let mut recorder = joined();
    recorder.run_until(recorder.now + 1_500 * MS);
    let sent = recorder.take_sent();
    let relayed = sent.iter().any(|(_, p)| {
        p.updates
            .iter()
            .any(|u| u.id.name.as_str().starts_with('a') && matches!(u.claim, Claim::Alive { .. }))
    });
    assert!(!relayed, "{sent:?}");
    assert_eq!(recorder.swim.up_count(), 4, "it knows them all");
}

#[test]
fn a_member_that_knew_us_when_we_did_not_know_it_starts_a_repair_exchange() {
    let mut recorder = with_members(3);
    recorder.run_until(recorder.now + 100 * MS);
    recorder.take_sent();
    recorder.receive(addr(60), &packet(&id("stranger", 1), ping_me(9), vec![]));
    recorder.run_until(recorder.now + 1_500 * MS);
    let sent = recorder.take_sent();
    assert!(
        sent.iter()
            .any(|(_, p)| matches!(p.message, Message::Sync { reply: true, .. })),
        "{sent:?}"
    );
}

/// A datagram on the fake network: (delivery time, send order, to, from, bytes).
type InFlight = (u64, u64, usize, SocketAddr, Vec<u8>);

/// Several cores on a fake network that delivers every datagram 1 ms after it is sent.
struct Cluster {
    cores: Vec<Swim>,
    /// Crashed cores: they run no timers, and datagrams to them are lost.
    crashed: Vec<bool>,
    /// Cores on the far side of a partition: datagrams between the sides are lost.
    far_side: Vec<bool>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    now: u64,
}

impl Cluster {
    /// Members m0..m{count-1} at ports 1..=count; each knows every other one except the
    /// pairs in `strangers`. Each learns its table quietly (nothing queued to spread), as
    /// a cluster that has long stopped gossiping about its members.
    fn quiet(count: usize, config: &SwimConfig, strangers: &[(usize, usize)]) -> Cluster {
        let ids: Vec<MemberId> = (0..count).map(|i| id(&format!("m{i}"), 1)).collect();
        let port = |i: usize| u16::try_from(i + 1).expect("port");
        let mut cores = Vec::new();
        for (i, me) in ids.iter().enumerate() {
            let mut core = Swim::new(
                config.clone(),
                *me,
                addr(port(i)),
                MemberMeta::default(),
                7 + i as u64,
                0,
            );
            core.status = LocalStatus::Active;
            core.learning_quietly = true;
            for (j, other) in ids.iter().enumerate() {
                let stranger = strangers.contains(&(i, j)) || strangers.contains(&(j, i));
                if j != i && !stranger {
                    let told_by =
                        ids[(0..count).find(|&k| k != i && k != j).expect("a third")].name;
                    core.apply(alive(other, port(j)), 0, Source::Table(&told_by));
                }
            }
            core.learning_quietly = false;
            core.drain_outputs().for_each(drop);
            assert!(core.queue.is_empty(), "m{i} has nothing to spread");
            cores.push(core);
        }
        Cluster {
            crashed: vec![false; cores.len()],
            far_side: vec![false; cores.len()],
            cores,
            in_flight: BinaryHeap::new(),
            order: 0,
            now: 0,
        }
    }

    fn lists(&self, who: usize, whom: usize) -> bool {
        let name = Name::new(&format!("m{whom}")).expect("name");
        let core = &self.cores[who];
        core.table
            .find(&name)
            .and_then(|slot| core.table.get(slot))
            .is_some_and(|m| m.state.is_up())
    }

    fn collect(&mut self, from: usize) {
        let from_address = addr(u16::try_from(from + 1).expect("port"));
        let outputs: Vec<Output> = self.cores[from].drain_outputs().collect();
        for output in outputs {
            if let Output::Send { to, bytes } = output {
                let to = usize::from(to.port()) - 1;
                if to < self.cores.len() {
                    self.order += 1;
                    self.in_flight.push(Reverse((
                        self.now + MS,
                        self.order,
                        to,
                        from_address,
                        bytes,
                    )));
                }
            }
        }
    }

    /// Runs every core and the network until `until`.
    fn run_until(&mut self, until: u64) {
        loop {
            let timer = (0..self.cores.len())
                .filter(|&i| !self.crashed[i])
                .filter_map(|i| self.cores[i].poll_timeout().map(|at| (at, i)))
                .min();
            let packet = self.in_flight.peek().map(|Reverse(p)| p.0);
            match (timer, packet) {
                (Some((at, i)), packet) if at <= until && packet.is_none_or(|p| at < p) => {
                    self.now = self.now.max(at);
                    self.cores[i].handle_timeout(self.now);
                    self.collect(i);
                }
                (_, Some(at)) if at <= until => {
                    let Some(Reverse((_, _, to, from, bytes))) = self.in_flight.pop() else {
                        break;
                    };
                    self.now = self.now.max(at);
                    let from_index = usize::from(from.port()) - 1;
                    if self.crashed[to] || self.far_side[to] != self.far_side[from_index] {
                        continue;
                    }
                    self.cores[to]
                        .handle_packet(from, &bytes, self.now)
                        .expect("accepted");
                    self.collect(to);
                }
                _ => break,
            }
        }
        self.now = until;
    }
}

#[test]
fn two_live_strangers_in_a_quiet_cluster_find_each_other_within_seconds() {
    // m0 and m1 both know m2..m7 (and are known by them) but not each other, and nothing is
    // left to gossip: only a probe of one by the other or the periodic state exchange
    // (set to an hour here) would bring them together without help.
    let config = SwimConfig {
        sync_interval: Duration::from_secs(3600),
        ..SwimConfig::default()
    };
    let mut cluster = Cluster::quiet(8, &config, &[(0, 1)]);
    cluster.run_until(1_000 * MS);
    assert!(
        !cluster.lists(0, 1) && !cluster.lists(1, 0),
        "a gap to close"
    );
    assert!(
        cluster.lists(0, 2) && cluster.lists(2, 1),
        "the others know both"
    );
    cluster.run_until(10_000 * MS);
    assert!(cluster.lists(0, 1), "m0 lists m1");
    assert!(cluster.lists(1, 0), "m1 lists m0");
    let exchanges =
        |cluster: &Cluster| -> u64 { cluster.cores.iter().map(|c| c.stats().gap_exchanges).sum() };
    let closed_with = exchanges(&cluster);
    assert!(
        (1..=2).contains(&closed_with),
        "{closed_with} gap exchanges"
    );
    // Once the tables agree, acks no longer start exchanges.
    cluster.run_until(120_000 * MS);
    assert_eq!(exchanges(&cluster), closed_with, "none in a whole cluster");
    for who in 0..8 {
        assert_eq!(
            cluster.cores[who].up_count(),
            7,
            "m{who} lists everyone, falsely no one down"
        );
    }
}

#[test]
fn a_pause_of_this_process_is_not_held_against_the_others() {
    let mut recorder = with_members(5);
    // Everyone talks every 300 ms, and our probes are answered.
    for i in 0..40u64 {
        recorder.run_until(i * 300 * MS);
        for member in 1..=5u16 {
            recorder.receive(
                addr(1 + member),
                &packet(&id(&format!("a{member}"), 1), Message::Gossip, vec![]),
            );
        }
        let sent = recorder.take_sent();
        answer_pings(&mut recorder, &sent);
    }
    recorder.events.clear();
    // The process is stopped for 20 s (SIGSTOP): the runtime calls in late.
    let resumed = recorder.now + 20_000 * MS;
    recorder.now = resumed;
    // Packets queued meanwhile come in first, then the overdue timers fire.
    recorder.receive(addr(2), &packet(&id("a1", 1), Message::Gossip, vec![]));
    recorder.swim.handle_timeout(resumed + 1);
    recorder.record();
    let pauses: Vec<u64> = recorder
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Paused { micros } => Some(micros),
            _ => None,
        })
        .collect();
    assert_eq!(
        pauses.len(),
        1,
        "one pause, one event: {:?}",
        recorder.events
    );
    assert!(pauses[0] >= 19_000_000, "{pauses:?}");
    // The next probe periods: nobody is degraded or suspected for the silence we caused.
    let sent = recorder.take_sent();
    answer_pings(&mut recorder, &sent);
    for step in 1..=4u64 {
        recorder.run_until(resumed + step * 250 * MS);
        let sent = recorder.take_sent();
        answer_pings(&mut recorder, &sent);
    }
    assert!(
        !recorder.events.iter().any(|e| matches!(
            e.kind,
            EventKind::Degraded { .. } | EventKind::Suspected { .. } | EventKind::Failed
        )),
        "{:?}",
        recorder.events
    );
}

/// Runs `cluster` in steps of 100 ms until `done` holds, for at most `limit_us`; the time it
/// took, µs (None: not within the limit).
fn time_until(
    cluster: &mut Cluster,
    limit_us: u64,
    done: impl Fn(&Cluster) -> bool,
) -> Option<u64> {
    let start = cluster.now;
    while cluster.now < start + limit_us {
        cluster.run_until(cluster.now + 100 * MS);
        if done(cluster) {
            return Some(cluster.now - start);
        }
    }
    None
}

#[test]
fn ten_of_fifteen_members_crashing_at_once_are_declared_dead_within_seconds() {
    let mut cluster = Cluster::quiet(15, &SwimConfig::default(), &[]);
    cluster.run_until(10_000 * MS);
    for crashed in 5..15 {
        cluster.crashed[crashed] = true;
    }
    // Most helpers a survivor asks are among the crashed and cannot nack. Counted against
    // the survivors' own health, their silence stretched every probe and suspicion 9×: the
    // last crashed member was declared dead after 79 s.
    let took = time_until(&mut cluster, 120_000 * MS, |cluster| {
        (0..5).all(|survivor| (5..15).all(|crashed| !cluster.lists(survivor, crashed)))
    });
    assert!(
        took.is_some_and(|took| took <= 15_000 * MS),
        "took {took:?} µs"
    );
    for survivor in 0..5 {
        assert!(cluster.cores[survivor].awareness() <= 2);
    }
}

#[test]
fn a_node_cut_off_alone_slows_its_verdicts_while_the_rest_declare_it_dead() {
    let mut cluster = Cluster::quiet(7, &SwimConfig::default(), &[]);
    cluster.run_until(10_000 * MS);
    cluster.far_side[0] = true;
    let rest_done = time_until(&mut cluster, 60_000 * MS, |cluster| {
        (1..7).all(|member| !cluster.lists(member, 0))
    })
    .expect("the rest declare the lone node dead");
    assert!(rest_done <= 10_000 * MS, "{rest_done} µs");
    // It hears nobody: every helper's missing nack counts against its own health, and it
    // takes its time before it declares six members dead.
    let awareness = cluster.cores[0].awareness();
    assert!(awareness >= 4, "{awareness}");
    let alone_done = time_until(&mut cluster, 120_000 * MS, |cluster| {
        (1..7).all(|member| !cluster.lists(0, member))
    })
    .expect("the lone node declares the rest dead in the end");
    assert!(
        rest_done + alone_done >= 30_000 * MS,
        "{rest_done} + {alone_done} µs"
    );
}

#[test]
fn a_helper_heard_from_without_a_nack_counts_against_our_health_a_silent_one_does_not() {
    let mut recorder = with_members(4);
    let (_, seq) = recorder.first_probe();
    let start = recorder.now;
    recorder.run_until(start + 250 * MS);
    let helpers: Vec<SocketAddr> = recorder
        .take_sent()
        .into_iter()
        .filter_map(|(to, p)| match p.message {
            Message::PingReq { seq: s, .. } if s == seq => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(helpers.len(), 3, "{helpers:?}");
    // One helper is heard from after it was asked, but sends no nack: the fault may be
    // ours. The other two stay silent: they may be down, as the target is.
    let heard = helpers[0];
    let heard_id = id(&format!("a{}", heard.port() - 1), 1);
    recorder.receive(heard, &packet(&heard_id, Message::Gossip, vec![]));
    let before = recorder.swim.awareness();
    recorder.run_until(start + 600 * MS);
    assert_eq!(recorder.swim.awareness(), before + 1);
}

/// Hands `bytes` (as from port 2) to the core, which must refuse them and count one more
/// malformed packet.
fn refused_as_malformed(recorder: &mut Recorder, bytes: &[u8]) {
    let malformed = recorder.swim.stats().malformed;
    assert!(
        recorder
            .swim
            .handle_packet(addr(2), bytes, recorder.now)
            .is_err()
    );
    assert_eq!(recorder.swim.stats().malformed, malformed + 1);
}

#[test]
fn a_packet_naming_a_member_with_a_control_character_is_dropped_as_malformed() {
    let mut recorder = with_members(2);
    let news = alive(&id("Qq-z1", 1), 9);
    let mut bytes =
        encode_packet(&packet(&id("a1", 1), Message::Gossip, vec![news]), 1400).expect("encodes");
    // The same packet with the name's first byte made a control character (a mutated or
    // forged datagram): printed, it would reach the operator's terminal as is.
    let at = bytes
        .windows(5)
        .position(|window| window == b"Qq-z1")
        .expect("the name is in the packet");
    bytes[at] = 0x01;
    refused_as_malformed(&mut recorder, &bytes);
    recorder.record();
    assert!(recorder.swim.member_state("\u{1}q-z1").is_none());
    assert_eq!(recorder.swim.up_count(), 2, "{:?}", recorder.events);
}

#[test]
fn a_failure_learned_from_another_member_names_it_and_our_own_verdict_does_not() {
    let mut recorder = with_members(4);
    let verdict = Update {
        id: id("a1", 1),
        incarnation: 0,
        claim: Claim::Dead,
    };
    recorder.receive(
        addr(3),
        &packet(&id("a2", 1), Message::Gossip, vec![verdict]),
    );
    let failed = recorder
        .events
        .iter()
        .find(|e| e.member.name.as_str() == "a1" && e.kind == EventKind::Failed)
        .expect("a1 declared dead");
    assert_eq!(
        failed.told_by.map(|n| n.to_string()),
        Some("a2".to_string())
    );
    assert_eq!(
        crate::runtime::gossip::ClusterEvent::describe_told(
            "a1",
            1,
            &failed.kind,
            failed.told_by.as_ref().map(|n| n.as_str())
        ),
        "a1 failed (declared dead; a2 said so)"
    );
    // Our own probe and suspicion: no one else named.
    let (_, _) = recorder.first_probe();
    let start = recorder.now;
    recorder.run_until(start + 60_000 * MS);
    let own = recorder
        .events
        .iter()
        .find(|e| e.member.name.as_str() != "a1" && e.kind == EventKind::Failed)
        .expect("a member that never answers is declared dead");
    assert_eq!(own.told_by, None);
}

#[test]
fn a_packet_whose_member_metadata_holds_an_escape_sequence_is_dropped_as_malformed() {
    let mut recorder = with_members(2);
    let forged = Update {
        id: id("a9", 1),
        incarnation: 0,
        claim: Claim::Alive {
            address: addr(10),
            meta: Some(MemberMeta {
                version: 1,
                // An OSC sequence: printed raw by `goliath members`, it retitled the terminal.
                protocol_address: "\u{1b}]0;pwned\u{7}abcxx".into(),
                ..MemberMeta::default()
            }),
        },
    };
    let bytes =
        encode_packet(&packet(&id("a1", 1), Message::Gossip, vec![forged]), 1400).expect("encodes");
    refused_as_malformed(&mut recorder, &bytes);
    assert!(recorder.swim.member_state("a9").is_none());
}

/// The verdict times BENCHMARKS.md gives for local health (virtual time, so the same on
/// every machine): `cargo test --lib verdict_times -- --ignored --nocapture`. Prints only;
/// the tests above assert the bounds.
#[test]
#[ignore = "prints figures for BENCHMARKS.md"]
fn verdict_times_after_a_mass_crash_and_partitions() {
    let seconds = |us: Option<u64>| {
        us.map_or("never".to_string(), |us| {
            format!("{:.1} s", us as f64 / 1e6)
        })
    };
    let mut cluster = Cluster::quiet(15, &SwimConfig::default(), &[]);
    cluster.run_until(10_000 * MS);
    for crashed in 5..15 {
        cluster.crashed[crashed] = true;
    }
    let took = time_until(&mut cluster, 200_000 * MS, |cluster| {
        (0..5).all(|survivor| (5..15).all(|crashed| !cluster.lists(survivor, crashed)))
    });
    println!(
        "10 of 15 crash: the last declared dead by all survivors after {}",
        seconds(took)
    );
    for cut in 1..=3usize {
        let mut cluster = Cluster::quiet(7, &SwimConfig::default(), &[]);
        cluster.run_until(10_000 * MS);
        for member in 0..cut {
            cluster.far_side[member] = true;
        }
        let start = cluster.now;
        let (mut small_side, mut large_side) = (None, None);
        while (small_side.is_none() || large_side.is_none()) && cluster.now < start + 200_000 * MS {
            cluster.run_until(cluster.now + 100 * MS);
            let elapsed = Some(cluster.now - start);
            if small_side.is_none() && (0..cut).all(|w| (cut..7).all(|d| !cluster.lists(w, d))) {
                small_side = elapsed;
            }
            if large_side.is_none() && (cut..7).all(|w| (0..cut).all(|d| !cluster.lists(w, d))) {
                large_side = elapsed;
            }
        }
        println!(
            "{cut} of 7 cut off: they declare the other {} dead after {}; the others them after {}",
            7 - cut,
            seconds(small_side),
            seconds(large_side)
        );
    }
}

#[test]
fn unchanged_metadata_sent_round_again_reaches_a_member_that_missed_every_copy() {
    let mut recorder = with_members(3);
    // Piggybacked on probes and gossip (a state exchange carries the whole table, now and
    // then: not what a member that missed the change waits for).
    let carries_meta = |sent: &[(SocketAddr, Packet)], version: u32| {
        sent.iter().any(|(_, packet)| {
            !matches!(packet.message, Message::Sync { .. }) && packet.updates.iter().any(|u| {
                u.id == id("me", 1)
                    && matches!(&u.claim, Claim::Alive { meta: Some(meta), .. } if meta.version == version)
            })
        })
    };
    let mut meta = recorder.swim.meta().clone();
    meta.load = 50.0;
    recorder.swim.set_meta(meta);
    let version = recorder.swim.meta().version;
    // Every copy of the change goes out (and is lost), until its retransmits are spent;
    // the members answer the probes, so none is suspected.
    let step = |recorder: &mut Recorder, until: u64| {
        let mut all = Vec::new();
        while let Some(next) = recorder.swim.poll_timeout().filter(|at| *at <= until) {
            recorder.run_until(next);
            let sent = recorder.take_sent();
            answer_pings(recorder, &sent);
            all.extend(sent);
        }
        all
    };
    let first = step(&mut recorder, 5_000 * MS);
    assert!(carries_meta(&first, version), "the change goes out");
    let later = step(&mut recorder, 30_000 * MS);
    assert!(
        !carries_meta(&later, version),
        "still going round after 30 s"
    );
    recorder.swim.refresh_meta();
    assert_eq!(recorder.swim.meta().version, version, "the same version");
    let again = step(&mut recorder, 35_000 * MS);
    assert!(carries_meta(&again, version), "{again:?}");
}

#[test]
fn a_generation_later_than_a_day_past_this_nodes_clock_is_dropped_not_obeyed() {
    let mut recorder = with_members(1);
    let future = 1 + recorder.now + 2 * 86_400_000_000;
    // A packet under this node's own name from a "process" started in two days: this node
    // would have yielded its name to it.
    let bytes =
        encode_packet(&packet(&id("me", future), ping_me(1), vec![]), 1400).expect("encodes");
    let refused = recorder.swim.handle_packet(addr(9), &bytes, recorder.now);
    assert!(matches!(refused, Err(PacketError::FutureGeneration(g)) if g == future));
    assert_eq!(recorder.swim.status(), LocalStatus::Active);
    // Nor does an update about a member of such a generation replace the live one, or add
    // a member.
    recorder.receive(
        addr(2),
        &packet(
            &id("a1", 1),
            Message::Gossip,
            vec![alive(&id("a1", future), 7), alive(&id("b1", future), 8)],
        ),
    );
    let (a1, _, _) = recorder.swim.member_state("a1").expect("a1");
    assert_eq!(a1.generation, 1);
    assert!(recorder.swim.member_state("b1").is_none());
    assert_eq!(recorder.swim.stats().malformed, 3);
    // A restart within the bound is one.
    let restarted = id("a1", 1 + recorder.now + 3_600_000_000);
    recorder.receive(addr(2), &packet(&restarted, Message::Gossip, vec![]));
    let (a1, _, _) = recorder.swim.member_state("a1").expect("a1");
    assert_eq!(a1.generation, restarted.generation);
}
