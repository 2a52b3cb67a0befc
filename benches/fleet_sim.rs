//! What a simulated application instance costs as the fleet grows (issue 13).
//!
//! One short run of the fleet's adaptive set-up (`seawall::sim::fleet::run_setup`: every
//! instance with its own cluster, pool and Vegas limiter against one simulated primary that
//! degrades past its knee) under tokio's paused clock, at N = 10, 20, 40 and 80 instances. The
//! primary grows with the fleet (knee 4 N, `max_connections` 12 N), so every instance gets the
//! same arrival rate and does the same work whatever N: the wall time per instance should not
//! depend on N.
//!
//! Printed first, from rounds timed here (the order of N alternating per round, median of 5):
//! `ratio fleet_sim per_instance_us n10=<a> n20=<b> n40=<c> n80=<d> growth_80_vs_10=<d/a>`;
//! linear cost means growth ≈ 1. Criterion then times each run.
//!
//! `SEAWALL_BENCH_QUICK=1` prints the ratio line only.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use seawall::sim::fleet::{run_setup, FleetConfig};

const SIZES: [usize; 4] = [10, 20, 40, 80];
const ROUNDS: usize = 5;

/// A fleet of `n` instances, each with the same share of a primary sized after the fleet: half
/// a second of normal load, one second of surge, half a second of recovery.
fn config(n: usize) -> FleetConfig {
    FleetConfig {
        instances: n,
        knee: 4 * n,
        max_connections: 12 * n,
        pooler_cap: 4 * n,
        phase_durations: [
            Duration::from_millis(500),
            Duration::from_secs(1),
            Duration::from_millis(500),
        ],
        ..FleetConfig::default()
    }
}

/// One adaptive run of `config` on a fresh paused runtime; returns the requests it served.
fn run(config: &FleetConfig) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let report = rt
        .block_on(run_setup(config, "adaptive"))
        .expect("a valid configuration");
    report.instances.iter().map(|r| r.records().len()).sum()
}

fn main() {
    let configs: Vec<FleetConfig> = SIZES.iter().map(|&n| config(n)).collect();
    // Warm-up: allocator, page cache, CPU frequency.
    run(&configs[0]);
    let mut per_instance = vec![Vec::new(); SIZES.len()];
    for round in 0..ROUNDS {
        let mut order: Vec<usize> = (0..SIZES.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let start = Instant::now();
            let requests = run(&configs[i]);
            let took = start.elapsed();
            assert!(requests > 0, "the run served nothing");
            per_instance[i].push(took.as_secs_f64() * 1e6 / SIZES[i] as f64);
        }
    }
    let medians: Vec<f64> = per_instance.into_iter().map(common::median).collect();
    let figures: Vec<String> = SIZES
        .iter()
        .zip(&medians)
        .map(|(n, us)| format!("n{n}={us:.0}"))
        .collect();
    println!(
        "ratio fleet_sim per_instance_us {} growth_80_vs_10={:.2}",
        figures.join(" "),
        medians[SIZES.len() - 1] / medians[0]
    );
    if std::env::var_os("SEAWALL_BENCH_QUICK").is_some() {
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut group = c.benchmark_group("fleet_sim_2s");
    for (n, config) in SIZES.iter().zip(&configs) {
        group.bench_function(format!("instances_{n}"), |b| {
            b.iter(|| black_box(run(config)))
        });
    }
    group.finish();
    c.final_summary();
}
