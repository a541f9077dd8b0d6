//! Feeds arbitrary bytes to the gossip packet decoder and to a SWIM core, as a node would
//! receive them from the network. Run with `cargo +nightly fuzz run gossip_packet` from
//! `fuzz/`. Crashes found become regression tests in `src/runtime/gossip/wire.rs`.
#![no_main]

use std::net::SocketAddr;

use goliath::runtime::gossip::wire::{cluster_tag, decode_packet};
use goliath::runtime::gossip::{MemberId, MemberMeta, Name, Swim, SwimConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_packet(data, 1400, cluster_tag("goliath"));
    let me = MemberId {
        name: Name::new("fuzz").expect("valid name"),
        generation: 1,
    };
    let address: SocketAddr = ([127, 0, 0, 1], 7421).into();
    let mut swim = Swim::new(SwimConfig::default(), me, address, MemberMeta::default(), 1, 0);
    let from: SocketAddr = ([127, 0, 0, 1], 7422).into();
    let _ = swim.handle_packet(from, data, 1_000);
    swim.handle_timeout(10_000_000);
    let outputs: Vec<_> = swim.drain_outputs().collect();
    for output in outputs {
        if let goliath::runtime::gossip::Output::Send { bytes, .. } = output {
            assert!(bytes.len() <= 1400, "a packet over the limit");
        }
    }
});
