//! The membership simulator (examples/gossip_sim) run with fixed seeds as tests: small
//! clusters and short virtual times, so a debug build finishes in seconds. Each asserts an
//! invariant of the protocol on Goliath's SWIM core.

#[path = "../examples/gossip_sim/sim.rs"]
mod sim;

use std::time::Duration;

use sim::{Goliath, Scenario, run};

fn scenario(nodes: usize, loss: f64, minutes: f64, seed: u64) -> Scenario {
    Scenario {
        nodes,
        loss,
        minutes,
        seed,
        crashes_per_minute: 0.0,
        restart_after: Duration::from_secs(30),
        delay_us: (500, 2_000),
        partition_fraction: 0.0,
        partition_for: Duration::from_secs(30),
        settle_cap: Duration::from_secs(120),
    }
}

#[test]
fn no_live_member_is_declared_down_without_loss() {
    for seed in [1, 2] {
        let report = run(Goliath::default(), &scenario(24, 0.0, 2.0, seed));
        assert_eq!(report.false_down, 0, "seed {seed}: {report:?}");
        assert_eq!(report.live_identity_changes, 0, "seed {seed}: {report:?}");
        // Nor flagged degraded by phi while the cluster forms, grows to 24 and runs: a
        // member's silence that SWIM's own probing makes ordinary is no alarm.
        assert_eq!(report.degraded_live, 0, "seed {seed}: {report:?}");
        assert!(
            report.churn_roster_s.is_some(),
            "seed {seed}: roster never full: {report:?}"
        );
    }
}

#[test]
fn every_crashed_member_is_declared_down_everywhere() {
    let mut setup = scenario(24, 0.01, 2.0, 3);
    setup.crashes_per_minute = 6.0;
    let report = run(Goliath::default(), &setup);
    assert!(report.crashes >= 10, "{report:?}");
    assert_eq!(
        report.undetected, 0,
        "every crash seen as down by 99%: {report:?}"
    );
    assert!(
        report.detect_p99_s.is_some_and(|p99| p99 < 30.0),
        "{report:?}"
    );
    // And the restarted members are listed everywhere again.
    assert!(report.churn_roster_s.is_some(), "{report:?}");
    assert_eq!(report.false_down, 0, "{report:?}");
}

#[test]
fn suspected_live_members_refute_and_are_never_declared_down() {
    // Heavy loss makes probes fail now and then: members get suspected and must refute.
    let report = run(Goliath::default(), &scenario(16, 0.10, 3.0, 4));
    assert!(
        report.refutations > 0,
        "the loss caused no suspicion: {report:?}"
    );
    assert_eq!(report.false_down, 0, "{report:?}");
    assert_eq!(report.live_identity_changes, 0, "{report:?}");
}

#[test]
fn a_healed_partition_converges_to_a_full_roster() {
    let mut setup = scenario(30, 0.01, 0.5, 5);
    setup.partition_fraction = 0.3;
    setup.partition_for = Duration::from_secs(40);
    let report = run(Goliath::default(), &setup);
    let heal = report.heal_full_s.expect("full roster after the heal");
    assert!(heal < 120.0, "{report:?}");
}

#[test]
fn the_json_report_has_exactly_the_fields_tooling_reads() {
    let mut setup = scenario(8, 0.0, 0.2, 6);
    setup.crashes_per_minute = 10.0;
    let report = run(Goliath::default(), &setup);
    let value = serde_json::to_value(&report).expect("serializes");
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bytes_per_node_s",
            "detect_p50_s",
            "detect_p99_s",
            "false_down",
            "heal_full_s",
            "join_all_s",
            "live_identity_changes",
            "protocol",
        ]
    );
    assert_eq!(value["protocol"], "goliath");
}
