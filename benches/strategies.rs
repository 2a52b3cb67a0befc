//! Read-routing strategies compared on a simulated cluster with one slow replica.
//!
//! The cluster is a primary and three replicas; `replica-3` is ten times slower than the others.
//! A seeded open-loop workload (Poisson arrivals, each arrival one read: acquire + one query)
//! runs under tokio's paused clock, so minutes of traffic take a fraction of a second and the
//! same seed always gives the same figures. It runs once per strategy: P2c (the default), round
//! robin, least in flight, weighted random, and an "oracle" that never uses the slow replica,
//! written here as a custom [`Balancer`] to show how users add their own.
//!
//! Printed: one row per strategy (requests, errors, share of reads on the slow replica, p50 /
//! p99 / max end-to-end latency on the simulated clock, after a warm-up) and the line
//! `ratio slow-replica p99 p2c/round_robin=<x> p2c/oracle=<y>`. Criterion then times the whole
//! simulated run per strategy, which benchmarks the simulator and the router together.
//!
//! `SEAWALL_BENCH_QUICK=1` prints the table only. `SEAWALL_SIM_SECS`, `SEAWALL_SIM_RATE` and
//! `SEAWALL_SIM_SEED` change the workload.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use seawall::balance::{Balancer, LeastInFlight, P2c, RoundRobin, WeightedRandom};
use seawall::breaker::BreakerConfig;
use seawall::cluster::Cluster;
use seawall::load::NodeLoad;
use seawall::pool::Pool;
use seawall::sim::{ServiceTime, SimBackend, SimConnector};
use tokio::time::Instant;

/// Mean service time of a fast node. Milliseconds, not microseconds: tokio's timer (and so the
/// paused clock) moves in whole milliseconds, which would flatten sub-millisecond figures.
const SERVICE: Duration = Duration::from_millis(5);
const SLOWDOWN: f64 = 10.0;
/// Queries a backend runs at once.
const CAPACITY: usize = 4;
const POOL_SIZE: usize = 16;
const SLOW: &str = "replica-3";
/// Figures start after this much simulated time, once the load model has seen every node.
const WARM_UP: Duration = Duration::from_secs(10);

/// The workload of one run.
#[derive(Debug, Clone, Copy)]
struct Workload {
    /// Simulated seconds of traffic.
    secs: u64,
    /// Mean arrivals per simulated second.
    rate: f64,
    seed: u64,
}

impl Workload {
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            std::env::var(name).ok()?.parse().ok()
        }
        Workload {
            secs: var("SEAWALL_SIM_SECS").unwrap_or(120),
            rate: var("SEAWALL_SIM_RATE").unwrap_or(200.0),
            seed: var("SEAWALL_SIM_SEED").unwrap_or(42),
        }
    }
}

/// The never-slow oracle: the fewest reads in flight among the nodes it is allowed to use.
///
/// A balancer only sees the candidates' [`NodeLoad`]s, so the bench tells it which replica is
/// slow the way a user would mark a node: a weight of 0 on that node (set in the oracle's run
/// only). It is the best a router can do without having to learn which node is slow.
#[derive(Default)]
struct Oracle {
    fallback: LeastInFlight,
}

impl Balancer for Oracle {
    fn pick(&self, nodes: &[&NodeLoad]) -> Option<usize> {
        (0..nodes.len())
            .filter(|&i| nodes[i].weight() > 0)
            .min_by_key(|&i| nodes[i].in_flight())
            // Every candidate marked out (the others are down): better than nothing.
            .or_else(|| self.fallback.pick(nodes))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    P2c,
    RoundRobin,
    LeastInFlight,
    WeightedRandom,
    Oracle,
}

impl Strategy {
    const ALL: [Strategy; 5] = [
        Strategy::P2c,
        Strategy::RoundRobin,
        Strategy::LeastInFlight,
        Strategy::WeightedRandom,
        Strategy::Oracle,
    ];

    fn name(self) -> &'static str {
        match self {
            Strategy::P2c => "p2c",
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastInFlight => "least_in_flight",
            Strategy::WeightedRandom => "weighted_random",
            Strategy::Oracle => "oracle",
        }
    }

    fn balancer(self, seed: u64) -> Box<dyn Balancer> {
        match self {
            Strategy::P2c => Box::new(P2c::with_seed(seed)),
            Strategy::RoundRobin => Box::new(RoundRobin::new()),
            Strategy::LeastInFlight => Box::new(LeastInFlight::new()),
            Strategy::WeightedRandom => Box::new(WeightedRandom::with_seed(seed)),
            Strategy::Oracle => Box::new(Oracle::default()),
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Report {
    strategy: Strategy,
    requests: usize,
    errors: usize,
    error_kinds: BTreeMap<String, usize>,
    slow_share: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn backend(name: &str, seed: u64) -> Arc<SimBackend> {
    SimBackend::builder(name)
        .primary(name == "primary")
        .capacity(CAPACITY)
        .service_time(ServiceTime::Exponential(SERVICE))
        .seed(seed)
        .build()
}

/// A short name for an acquire error: its variant, and the reason for a shed.
fn error_kind(e: &seawall::Error) -> String {
    match e {
        seawall::Error::Overloaded(o) => format!("overloaded({})", o.reason.as_str()),
        seawall::Error::Timeout(t) => format!("timeout({})", t.pool),
        seawall::Error::Unavailable(b) => format!("breaker({})", b.node),
        seawall::Error::NoReplica(_) => "no_replica".to_owned(),
        other => format!("{other}"),
    }
}

/// Builds the cluster and runs the workload; must run inside a paused-clock runtime.
async fn simulate(strategy: Strategy, workload: Workload) -> Report {
    let names = ["primary", "replica-1", "replica-2", SLOW];
    let dbs: Vec<Arc<SimBackend>> = names
        .iter()
        .enumerate()
        .map(|(i, name)| backend(name, workload.seed + i as u64))
        .collect();
    dbs[3].set_slowdown(SLOWDOWN);
    let pool = |db: &Arc<SimBackend>| {
        Pool::builder(db.connector())
            .name(db.name())
            .max_size(POOL_SIZE)
            .seed(workload.seed)
            .build()
            .unwrap()
    };
    let mut builder = Cluster::<SimConnector>::builder()
        .primary("primary", pool(&dbs[0]))
        .breaker(
            BreakerConfig::builder()
                .seed(workload.seed)
                .build()
                .unwrap(),
        );
    for db in &dbs[1..] {
        builder = builder.replica(db.name(), pool(db));
    }
    let cluster = builder
        .balancer(strategy.balancer(workload.seed))
        .build()
        .unwrap();
    if strategy == Strategy::Oracle {
        cluster.node(SLOW).unwrap().set_weight(0);
    }

    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let mut rng = SmallRng::seed_from_u64(workload.seed);
    let start = Instant::now();
    let end = start + Duration::from_secs(workload.secs);
    let measure_from = start + WARM_UP;
    let mut arrival = start;
    let mut tasks = Vec::new();
    let mut slow_before = None;
    loop {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        arrival += Duration::from_secs_f64(-u.ln() / workload.rate);
        if arrival >= end {
            break;
        }
        tokio::time::sleep_until(arrival).await;
        if slow_before.is_none() && arrival >= measure_from {
            slow_before = Some(dbs[3].stats().queries);
        }
        let cluster = cluster.clone();
        let (latencies, errors) = (latencies.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let began = Instant::now();
            let outcome = match cluster.read().await {
                Ok(mut conn) => conn.query("SELECT 1").await.map_err(|e| {
                    conn.report_error(&e);
                    format!("query: {e}")
                }),
                Err(e) => Err(error_kind(&e)),
            };
            if began < measure_from {
                return;
            }
            match outcome {
                Ok(_) => latencies.lock().push(began.elapsed()),
                Err(kind) => *errors.lock().entry(kind).or_default() += 1,
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let mut latencies = std::mem::take(&mut *latencies.lock());
    latencies.sort_unstable();
    let errors = std::mem::take(&mut *errors.lock());
    let error_count: usize = errors.values().sum();
    let replica_queries: u64 = dbs[1..].iter().map(|db| db.stats().queries).sum();
    let slow_queries = dbs[3].stats().queries - slow_before.unwrap_or(0);
    let total_after_warm_up = (latencies.len() + error_count) as f64;
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(dbs[0].stats().queries, 0, "no read should need the primary");
    assert!(replica_queries > 0);
    Report {
        strategy,
        requests: latencies.len() + error_count,
        errors: error_count,
        error_kinds: errors,
        slow_share: slow_queries as f64 / total_after_warm_up.max(1.0),
        p50: quantile(0.50),
        p99: quantile(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    }
}

fn run(strategy: Strategy, workload: Workload) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(simulate(strategy, workload))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(workload: Workload) {
    println!(
        "strategies: primary + 3 replicas ({SLOW} {SLOWDOWN}x slower), capacity {CAPACITY}, \
         service exp({SERVICE:?}), {} reads/s for {} s (first {WARM_UP:?} not counted), seed {}",
        workload.rate, workload.secs, workload.seed
    );
    println!(
        "{:<16} {:>9} {:>7} {:>8} {:>9} {:>9} {:>9}",
        "strategy", "requests", "errors", "slow%", "p50_ms", "p99_ms", "max_ms"
    );
    let reports: Vec<Report> = Strategy::ALL
        .iter()
        .map(|&strategy| run(strategy, workload))
        .collect();
    for r in &reports {
        println!(
            "{:<16} {:>9} {:>7} {:>8.2} {:>9.1} {:>9.1} {:>9.1}",
            r.strategy.name(),
            r.requests,
            r.errors,
            r.slow_share * 100.0,
            ms(r.p50),
            ms(r.p99),
            ms(r.max)
        );
    }
    for r in reports.iter().filter(|r| r.errors > 0) {
        println!("errors {}: {:?}", r.strategy.name(), r.error_kinds);
    }
    let p99 = |s: Strategy| ms(reports.iter().find(|r| r.strategy == s).unwrap().p99);
    println!(
        "ratio slow-replica p99 p2c/round_robin={:.3} p2c/oracle={:.3}",
        p99(Strategy::P2c) / p99(Strategy::RoundRobin),
        p99(Strategy::P2c) / p99(Strategy::Oracle)
    );
}

fn main() {
    let workload = Workload::from_env();
    report(workload);
    if std::env::var_os("SEAWALL_BENCH_QUICK").is_some() {
        return;
    }
    // The timed run is shorter: criterion repeats it.
    let timed = Workload {
        secs: 30,
        ..workload
    };
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = c.benchmark_group("simulated_run_30s");
    for strategy in Strategy::ALL {
        group.bench_function(strategy.name(), |b| {
            b.iter(|| black_box(run(strategy, timed)))
        });
    }
    group.finish();
    c.final_summary();
}
