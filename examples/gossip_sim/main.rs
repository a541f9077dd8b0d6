//! Simulates cluster membership for Goliath's SWIM core and for foca (as shipped and
//! tuned) in one seeded, virtual-time world, and prints the comparison.
//!
//! ```text
//! cargo run --release --example gossip_sim -- --nodes 1000 --loss 0.01 --minutes 30 --seed 1 --json
//! ```
//!
//! With `--json` it prints one JSON array with one object per protocol (`goliath`,
//! `foca_lan`, `foca_tuned`) and the fields `protocol`, `detect_p50_s`, `detect_p99_s`,
//! `false_down`, `live_identity_changes`, `bytes_per_node_s`, `join_all_s`, `heal_full_s`
//! (tooling reads exactly these); without it, the same as a table with a few more columns.
//! The scenario and the metrics are described in `examples/gossip_sim/sim.rs`.

mod sim;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: gossip_sim --nodes N --loss P --minutes M --seed S [--json] [--protocol goliath|foca_lan|foca_tuned]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut nodes = 100usize;
    let mut loss = 0.01f64;
    let mut minutes = 5.0f64;
    let mut seed = 1u64;
    let mut json = false;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next();
        let ok = match arg.as_str() {
            "--nodes" => value().and_then(|v| v.parse().ok()).map(|v| nodes = v),
            "--loss" => value().and_then(|v| v.parse().ok()).map(|v| loss = v),
            "--minutes" => value().and_then(|v| v.parse().ok()).map(|v| minutes = v),
            "--seed" => value().and_then(|v| v.parse().ok()).map(|v| seed = v),
            "--protocol" => value().map(|v| only = Some(v)),
            "--json" => {
                json = true;
                Some(())
            }
            _ => None,
        };
        if ok.is_none() {
            eprintln!("gossip_sim: bad or incomplete argument {arg:?}");
            return usage();
        }
    }
    if !(2..=5000).contains(&nodes) || !(0.0..1.0).contains(&loss) || minutes <= 0.0 {
        eprintln!("gossip_sim: --nodes 2..5000, --loss in [0, 1), --minutes > 0");
        return usage();
    }
    let scenario = sim::Scenario::standard(nodes, loss, minutes, seed);
    let started = std::time::Instant::now();
    if std::env::var_os("GOSSIP_SIM_BYTES").is_some() {
        sim::debug_bytes_on();
    }
    let reports = match only.as_deref() {
        None => sim::run_all(&scenario),
        Some("goliath") => vec![sim::run(sim::Goliath::default(), &scenario)],
        Some("foca_lan") => vec![sim::run(sim::Foca::lan(), &scenario)],
        Some("foca_tuned") => vec![sim::run(sim::Foca::tuned(), &scenario)],
        Some(other) => {
            eprintln!("gossip_sim: unknown protocol {other:?}");
            return usage();
        }
    };
    if std::env::var_os("GOSSIP_SIM_BYTES").is_some() {
        sim::print_byte_counts();
    }
    if json {
        match serde_json::to_string(&reports) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("gossip_sim: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let show = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        println!(
            "N={nodes} loss={loss} minutes={minutes} seed={seed} ({:.1} s wall)",
            started.elapsed().as_secs_f64()
        );
        println!(
            "{:<11} {:>8} {:>8} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8}",
            "protocol",
            "det_p50",
            "det_p99",
            "false_down",
            "id_change",
            "B/node/s",
            "join_p99",
            "join_max",
            "heal",
            "roster",
            "crashes"
        );
        for r in &reports {
            println!(
                "{:<11} {:>8} {:>8} {:>10} {:>9} {:>9.1} {:>8} {:>8} {:>8} {:>9} {:>5}/{:<3}",
                r.protocol,
                show(r.detect_p50_s),
                show(r.detect_p99_s),
                r.false_down,
                r.live_identity_changes,
                r.bytes_per_node_s,
                show(r.join_all_s),
                show(r.join_max_s),
                show(r.heal_full_s),
                show(r.churn_roster_s),
                r.crashes - r.undetected,
                r.crashes
            );
        }
    }
    ExitCode::SUCCESS
}
