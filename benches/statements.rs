//! What statement statistics and the route memory cost per query.
//!
//! Two clusters over a driver whose connections and queries cost nothing, identical except that
//! one keeps statement statistics (the default) and the other does not, run the same
//! `cluster.execute(sql, ..)` loop over a mix of 24 statement shapes with changing literals.
//! The difference per query is the statistics' cost: the fingerprint and one record. A third
//! loop runs with statistics off but a non-empty route memory (one learned write), so every read
//! is fingerprinted and looked up: the memory's cost.
//!
//! The loops run interleaved round by round (the machine's speed drifts) and the bench prints
//! medians: `statements stats_overhead_ns=<n> memory_overhead_ns=<n> execute_ns=<n>
//! execute_nostats_ns=<n> ratio=<on/off>`. `SEAWALL_BENCH_QUICK=1` prints that line only.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use seawall::cluster::{BoxFuture, Cluster, ClusterConn};
use seawall::pool::Pool;
use tokio::runtime::Runtime;

mod common;
use common::{current_thread, median, Free};

fn pool(name: &str) -> Pool<Free> {
    Pool::builder(Free).name(name).max_size(16).build().unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Stats,
    NoStats,
    Memory,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Stats => "stats",
            Setup::NoStats => "no_stats",
            Setup::Memory => "memory",
        }
    }
}

fn cluster(rt: &Runtime, setup: Setup) -> Cluster<Free> {
    rt.block_on(async {
        let mut builder = Cluster::builder()
            .primary("primary", pool("primary"))
            .replica("replica-1", pool("replica-1"))
            .replica("replica-2", pool("replica-2"));
        if setup != Setup::Stats {
            builder = builder.statement_stats(None);
        }
        if setup == Setup::Memory {
            builder = builder.primary_statement("SELECT archive_order($1)");
        }
        builder.build().unwrap()
    })
}

/// 24 statement shapes, each with 16 literal variants: what a small application sends.
fn workload() -> Vec<String> {
    let shapes = [
        "SELECT id, name, email FROM users WHERE id = {} AND status = 'active' LIMIT 10",
        "SELECT * FROM orders WHERE customer_id = {} ORDER BY created_at DESC LIMIT 20",
        "SELECT count(*) FROM sessions WHERE user_id = {}",
        "UPDATE users SET last_seen = now() WHERE id = {}",
        "INSERT INTO events (user_id, kind) VALUES ({}, 'click')",
        "SELECT p.id, p.title FROM posts p JOIN tags t ON t.post_id = p.id WHERE t.name = 'x{}'",
    ];
    let mut all = Vec::new();
    for table in ["", "_archive", "_eu", "_us"] {
        for shape in shapes {
            let shape = shape
                .replacen("FROM users", &format!("FROM users{table}"), 1)
                .replacen("FROM orders", &format!("FROM orders{table}"), 1)
                .replacen("FROM sessions", &format!("FROM sessions{table}"), 1)
                .replacen("UPDATE users", &format!("UPDATE users{table}"), 1)
                .replacen("INTO events", &format!("INTO events{table}"), 1)
                .replacen("FROM posts", &format!("FROM posts{table}"), 1);
            for i in 0..16 {
                all.push(shape.replace("{}", &(i * 7919).to_string()));
            }
        }
    }
    all
}

fn noop<'c>(
    conn: &'c mut ClusterConn<Free>,
    _sql: &'c str,
) -> BoxFuture<'c, Result<(), std::io::Error>> {
    conn.set_rows(1);
    Box::pin(async { Ok(()) })
}

fn run(rt: &Runtime, cluster: &Cluster<Free>, sqls: &[String], iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters as usize {
            let sql = &sqls[i % sqls.len()];
            cluster.execute(black_box(sql), noop).await.unwrap();
        }
        start.elapsed()
    })
}

fn interleaved(rounds: usize, iters: u64) {
    let rt = current_thread();
    let sqls = workload();
    let setups = [Setup::Stats, Setup::NoStats, Setup::Memory];
    let clusters: Vec<_> = setups.iter().map(|&s| cluster(&rt, s)).collect();
    for c in &clusters {
        run(&rt, c, &sqls, iters / 4);
    }
    let mut per_op: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let (mut stats_overhead, mut memory_overhead, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let ns: Vec<f64> = clusters
            .iter()
            .map(|c| run(&rt, c, &sqls, iters).as_nanos() as f64 / iters as f64)
            .collect();
        stats_overhead.push(ns[0] - ns[1]);
        memory_overhead.push(ns[2] - ns[1]);
        ratio.push(ns[0] / ns[1]);
        for (all, n) in per_op.iter_mut().zip(&ns) {
            all.push(*n);
        }
    }
    let stats = clusters[0].statements();
    assert_eq!(stats.len(), 24, "one entry per statement shape");
    println!(
        "statements stats_overhead_ns={:.1} memory_overhead_ns={:.1} execute_ns={:.1} \
         execute_nostats_ns={:.1} ratio={:.3}",
        median(stats_overhead),
        median(memory_overhead),
        median(per_op[0].clone()),
        median(per_op[1].clone()),
        median(ratio),
    );
}

fn criterion_groups(c: &mut Criterion) {
    let rt = current_thread();
    let sqls = workload();
    let mut group = c.benchmark_group("statements");
    for setup in [Setup::Stats, Setup::NoStats, Setup::Memory] {
        let cluster = cluster(&rt, setup);
        group.bench_function(setup.name(), |b| {
            b.iter_custom(|iters| run(&rt, &cluster, &sqls, iters))
        });
    }
    group.finish();
}

fn main() {
    let quick = std::env::var_os("SEAWALL_BENCH_QUICK").is_some();
    if !quick {
        let mut c = Criterion::default()
            .configure_from_args()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        criterion_groups(&mut c);
        c.final_summary();
    }
    let rounds = if quick { 7 } else { 21 };
    interleaved(rounds, 20_000);
}
