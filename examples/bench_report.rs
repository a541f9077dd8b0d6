//! Prints the criterion results under `target/criterion` as a Markdown table, with the ratios
//! the issues set targets for. Run after `cargo bench`:
//!
//! ```text
//! cargo run --release --example bench_report
//! ```

use std::collections::BTreeMap;
use std::path::Path;

/// (label, numerator id, denominator id, target text). A ratio is numerator time ÷ denominator
/// time, so below 1 means the numerator is faster.
const RATIOS: &[(&str, &str, &str, &str)] = &[
    (
        "goliath vs tokio, external submit",
        "scheduler/external_submit/goliath",
        "scheduler/external_submit/tokio",
        "≤ 0.33 (≥ 3× faster)",
    ),
    (
        "goliath vs rayon, external submit",
        "scheduler/external_submit/goliath",
        "scheduler/external_submit/rayon",
        "≤ 0.33 (≥ 3× faster)",
    ),
    (
        "goliath vs floor, external submit",
        "scheduler/external_submit/goliath",
        "scheduler/external_submit/crossbeam_floor",
        "≤ 3",
    ),
    (
        "goliath vs tokio, spawn in task",
        "scheduler/spawn_in_task/goliath",
        "scheduler/spawn_in_task/tokio",
        "≤ 0.2 (≥ 5× faster)",
    ),
    (
        "goliath vs rayon_scope, spawn in task",
        "scheduler/spawn_in_task/goliath",
        "scheduler/spawn_in_task/rayon_scope",
        "≤ 0.5 (≥ 2× faster)",
    ),
    (
        "goliath vs thread_wake, idle wake-up (mean)",
        "scheduler/idle_wakeup/goliath",
        "scheduler/idle_wakeup/thread_wake",
        "p50 ≤ 1.2 (see printed p50)",
    ),
    (
        "goliath vs tokio, idle wake-up (mean)",
        "scheduler/idle_wakeup/goliath",
        "scheduler/idle_wakeup/tokio",
        "p99 ≤ 1 (see printed p99)",
    ),
    (
        "goliath vs raw, round trip",
        "net/roundtrip/goliath_submit_noop",
        "net/roundtrip/raw_framed_pingpong",
        "p50 ≤ 1.10, p99 ≤ 1.25",
    ),
    (
        "goliath vs tokio per request, pipelined",
        "net/pipelined/goliath",
        "net/pipelined/tokio_spawn_per_request",
        "≤ 0.33 (≥ 3× faster)",
    ),
    (
        "durable append, 1 in flight vs raw fdatasync (time per op)",
        "wal/durable_submit/w1",
        "wal/raw_fdatasync",
        "≤ 1.11 (rate ≥ 0.9× raw)",
    ),
    (
        "durable append, 16 in flight vs raw fdatasync (time per op)",
        "wal/durable_submit/w16",
        "wal/raw_fdatasync",
        "(group commit; latency and batch targets: see the bench's printed lines)",
    ),
    (
        "durable append, 256 in flight vs raw fdatasync (time per op)",
        "wal/durable_submit/w256",
        "wal/raw_fdatasync",
        "(w256 p50 latency ≤ 1.5× raw p50: printed by the bench)",
    ),
    (
        "durable append, 4096 in flight vs raw fdatasync (time per op)",
        "wal/durable_submit/w4096",
        "wal/raw_fdatasync",
        "(records per fdatasync ≥ 0.8×W: printed by the bench)",
    ),
];

fn read_estimates(dir: &Path, out: &mut BTreeMap<String, (f64, f64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            let estimates = path.join("new").join("estimates.json");
            if let Ok(text) = std::fs::read_to_string(&estimates)
                && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
                && let Ok(benchmark) =
                    std::fs::read_to_string(path.join("new").join("benchmark.json"))
                && let Ok(benchmark) = serde_json::from_str::<serde_json::Value>(&benchmark)
            {
                let id = benchmark["full_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let median = json["median"]["point_estimate"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                let mean = json["mean"]["point_estimate"].as_f64().unwrap_or(f64::NAN);
                out.insert(id, (median, mean));
            }
            read_estimates(&path, out);
        }
    }
}

fn human(nanos: f64) -> String {
    if nanos >= 1e9 {
        format!("{:.3} s", nanos / 1e9)
    } else if nanos >= 1e6 {
        format!("{:.2} ms", nanos / 1e6)
    } else if nanos >= 1e3 {
        format!("{:.2} µs", nanos / 1e3)
    } else {
        format!("{nanos:.0} ns")
    }
}

fn main() {
    let mut results = BTreeMap::new();
    read_estimates(Path::new("target/criterion"), &mut results);
    if results.is_empty() {
        eprintln!("no criterion results under target/criterion; run `cargo bench` first");
        std::process::exit(1);
    }
    println!("| benchmark id | median | mean |");
    println!("|---|---|---|");
    for (id, (median, mean)) in &results {
        println!("| `{id}` | {} | {} |", human(*median), human(*mean));
    }
    println!();
    println!("| ratio (median time) | value | target |");
    println!("|---|---|---|");
    for (label, numerator, denominator, target) in RATIOS {
        if let (Some((a, _)), Some((b, _))) = (results.get(*numerator), results.get(*denominator)) {
            println!("| {label} | {:.2} | {target} |", a / b);
        }
    }
}
