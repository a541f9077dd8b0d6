//! Console benchmark: how long building one Overview frame takes for a busy node.
//!
//! Id read by tooling; keep it exactly: `console/frame/overview_16w` — a sample with 16
//! workers and 1,000 tasks (after a second sample, so rates and sparklines are drawn), one
//! full frame rendered into a 120×40 buffer: layout, widgets and the task table.
//!
//! Run: `cargo bench --bench console`.

use criterion::{Criterion, criterion_group, criterion_main};
use goliath::runtime::{
    ArenaStats, HostStats, Kinds, NodeInfo, NodeSnapshot, TaskCounts, TaskId, TaskInfo, TaskOutput,
    TaskState, WorkerActivity, WorkerSnapshot,
};
use goliath::tui::keys::Keymap;
use goliath::tui::state::{App, Options};
use goliath::tui::theme::{Glyphs, Theme, ThemeName};
use goliath::tui::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const START_US: u64 = 1_700_000_000_000_000;

fn sample(second: u64) -> NodeSnapshot {
    let now = START_US + second * 1_000_000;
    NodeSnapshot {
        node: NodeInfo {
            name: "bench".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            pid: 1,
            started_unix_us: START_US,
            now_unix_us: now,
            listen: Some("127.0.0.1:7420".into()),
            slice_us: 1000,
            accepting: true,
            exec_enabled: true,
            exec_remote: false,
            kinds: vec!["spin".into()],
        },
        workers: (0..16u16)
            .map(|index| WorkerSnapshot {
                index,
                activity: WorkerActivity::Running,
                depth: usize::from(index) * 13 % 97,
                executed: 50_000 * second * u64::from(index + 1),
                slices: 90_000 * second,
                stole: 300 * second,
                stolen_from: 280 * second,
                parks: 10,
                current: Some(TaskId(u64::from(index) + 1)),
            })
            .collect(),
        submission_queue_depth: 1_000,
        arena: ArenaStats {
            capacity: 65_536,
            in_use: 40_000,
            high_water: 52_000,
            bytes_reserved: 65_536 * 128,
            rejected: 17,
        },
        counts: TaskCounts {
            submitted: 800_000 * second,
            queued: 30_000,
            running: 10_000,
            succeeded: 700_000 * second,
            failed: 12,
            cancelled: 40,
            timed_out: 3,
            recovered: 0,
        },
        tasks: (0..1_000u64)
            .map(|n| {
                let state = TaskState::ALL[(n % 6) as usize];
                TaskInfo {
                    id: TaskId(1_000_000 - n),
                    spec: format!("fib {}", 20 + n % 15),
                    kind: "fib".into(),
                    state,
                    worker: Some((n % 16) as u16),
                    attempt: 1,
                    submitted_unix_us: now - n * 1_000,
                    started_unix_us: Some(now - n * 1_000 + 10),
                    finished_unix_us: state.is_finished().then_some(now - n * 500),
                    run_us: 400,
                    output: state.is_finished().then_some(TaskOutput::Number(n)),
                    error: None,
                }
            })
            .collect(),
        host: Some(HostStats {
            cpu_percent: 97.0,
            cpus: 16,
            memory_used_bytes: 9 << 30,
            memory_total_bytes: 64 << 30,
            load_average: 15.5,
        }),
        cluster: None,
        wal: None,
    }
}

fn frame(c: &mut Criterion) {
    let options = Options {
        readonly: false,
        theme: Theme::new(ThemeName::Dark),
        glyphs: Glyphs::new(false),
        mouse: true,
        remote: None,
        task_limit: 1000,
    };
    let mut app = App::new(options, Keymap::default(), Kinds::new());
    app.ingest(sample(10));
    app.ingest(sample(11));
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test terminal");
    let mut group = c.benchmark_group("console/frame");
    group.bench_function("overview_16w", |b| {
        b.iter(|| {
            let mut frame = terminal.get_frame();
            let hits = view::render(&mut frame, &app);
            std::hint::black_box(hits);
        })
    });
    group.finish();
}

criterion_group!(benches, frame);
criterion_main!(benches);
