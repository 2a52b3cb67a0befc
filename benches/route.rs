//! What routing costs on top of the pool: `cluster.read().await` + drop on an uncontended cluster
//! (a primary and two replicas, default policies, idle connections) next to a bare
//! `pool.get().await` + drop on one of the same pools.
//!
//! The connection is trivial, so the difference is the router's own work: choosing a replica
//! (topology lock, breaker and lag checks, the balancer's pick), the breaker call, the admission
//! gate, the load model, and on drop the reports to all three.
//!
//! Besides the criterion groups, the bench runs both loops interleaved round by round and prints
//! the medians: `route overhead_ns=<n> read_ns=<n> pool_get_ns=<n>`, and the flight
//! recorder's cost per query, the same read on a cluster without it interleaved:
//! `recorder overhead_ns=<n> read_ns=<n> read_without_recorder_ns=<n>`. `SEAWALL_BENCH_QUICK=1`
//! prints that line only; `SEAWALL_BENCH_PROFILE=read|pool_get|write|route` runs one loop for
//! five seconds, for `perf record`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use seawall::cluster::{AcquireOptions, Cluster};
use seawall::pool::Pool;
use tokio::runtime::Runtime;

mod common;
use common::{current_thread, median, Free};

const POOL_SIZE: usize = 16;

fn pool(name: &str) -> Pool<Free> {
    Pool::builder(Free)
        .name(name)
        .max_size(POOL_SIZE)
        .build()
        .unwrap()
}

/// A primary and two replicas with default policies, every pool warmed with idle connections.
fn cluster(rt: &Runtime) -> Cluster<Free> {
    cluster_with(rt, true)
}

/// The same, with or without the flight recorder (whose query-time histogram is the only part
/// of it on the query path).
fn cluster_with(rt: &Runtime, recorder: bool) -> Cluster<Free> {
    rt.block_on(async {
        let mut builder = Cluster::builder()
            .primary("primary", pool("primary"))
            .replica("replica-1", pool("replica-1"))
            .replica("replica-2", pool("replica-2"));
        if !recorder {
            builder = builder.flight_recorder(None);
        }
        let cluster = builder.build().unwrap();
        for name in ["primary", "replica-1", "replica-2"] {
            let pool = cluster.node(name).unwrap().pool().clone();
            let held: Vec<_> = open_idle(&pool, 4).await;
            drop(held);
        }
        cluster
    })
}

/// Opens `n` connections at once, so that the pool keeps `n` idle ones.
async fn open_idle(pool: &Pool<Free>, n: usize) -> Vec<seawall::Pooled<Free>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
    held
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// The routing decision alone: filters and balancer over the replicas.
    Decide,
    Read,
    Write,
    Route,
    PoolGet,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Decide => "decide",
            Op::Read => "read",
            Op::Write => "write",
            Op::Route => "route",
            Op::PoolGet => "pool_get",
        }
    }
}

/// `iters` acquisitions + drops of one kind; returns the elapsed time.
fn run(rt: &Runtime, cluster: &Cluster<Free>, pool: &Pool<Free>, op: Op, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        match op {
            Op::Decide => {
                let options = AcquireOptions::new();
                for _ in 0..iters {
                    black_box(cluster.pick_read_node(black_box(&options)).unwrap());
                }
            }
            Op::Read => {
                for _ in 0..iters {
                    drop(black_box(cluster.read().await.unwrap()));
                }
            }
            Op::Write => {
                for _ in 0..iters {
                    drop(black_box(cluster.write().await.unwrap()));
                }
            }
            Op::Route => {
                for _ in 0..iters {
                    let sql = black_box("SELECT id, name FROM users WHERE id = $1");
                    drop(black_box(cluster.route(sql).await.unwrap()));
                }
            }
            Op::PoolGet => {
                for _ in 0..iters {
                    drop(black_box(pool.get().await.unwrap()));
                }
            }
        }
        start.elapsed()
    })
}

/// Read and pool get, interleaved round by round so that both see the same machine phase; and
/// the read again on a cluster without the flight recorder, for the recorder's cost per query.
fn interleaved(rounds: usize, iters: u64) {
    let rt = current_thread();
    let cluster = cluster(&rt);
    let pool = cluster.node("replica-1").unwrap().pool().clone();
    let unrecorded = cluster_with(&rt, false);
    let unrecorded_pool = unrecorded.node("replica-1").unwrap().pool().clone();
    run(&rt, &cluster, &pool, Op::Read, iters / 4);
    run(&rt, &cluster, &pool, Op::PoolGet, iters / 4);
    run(&rt, &unrecorded, &unrecorded_pool, Op::Read, iters / 4);
    let (mut read, mut get, mut overhead, mut decide) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut bare, mut recorder) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let per_op =
            |cluster, pool, op| run(&rt, cluster, pool, op, iters).as_nanos() as f64 / iters as f64;
        let d = per_op(&cluster, &pool, Op::Decide);
        let r = per_op(&cluster, &pool, Op::Read);
        let g = per_op(&cluster, &pool, Op::PoolGet);
        let u = per_op(&unrecorded, &unrecorded_pool, Op::Read);
        decide.push(d);
        read.push(r);
        get.push(g);
        overhead.push(r - g);
        bare.push(u);
        recorder.push(r - u);
    }
    let read = median(read);
    println!(
        "route decision_ns={:.1} overhead_ns={:.1} read_ns={read:.1} pool_get_ns={:.1}",
        median(decide),
        median(overhead),
        median(get)
    );
    println!(
        "recorder overhead_ns={:.1} read_ns={read:.1} read_without_recorder_ns={:.1}",
        median(recorder),
        median(bare)
    );
}

fn criterion_groups(c: &mut Criterion) {
    let rt = current_thread();
    let cluster = cluster(&rt);
    let pool = cluster.node("replica-1").unwrap().pool().clone();
    let mut group = c.benchmark_group("route");
    for op in [Op::Decide, Op::PoolGet, Op::Read, Op::Write, Op::Route] {
        group.bench_function(op.name(), |b| {
            b.iter_custom(|iters| run(&rt, &cluster, &pool, op, iters))
        });
    }
    group.finish();
}

/// One loop for five seconds, for a profiler.
fn profile(which: &str) {
    let op = [Op::Decide, Op::Read, Op::Write, Op::Route, Op::PoolGet]
        .into_iter()
        .find(|op| op.name() == which)
        .expect("read, write, route or pool_get");
    let rt = current_thread();
    let cluster = cluster(&rt);
    let pool = cluster.node("replica-1").unwrap().pool().clone();
    let start = Instant::now();
    let (mut n, mut spent) = (0u64, Duration::ZERO);
    while start.elapsed() < Duration::from_secs(5) {
        spent += run(&rt, &cluster, &pool, op, 100_000);
        n += 100_000;
    }
    println!(
        "profile {which}: {:.1} ns/op",
        spent.as_nanos() as f64 / n as f64
    );
}

fn main() {
    if let Ok(which) = std::env::var("SEAWALL_BENCH_PROFILE") {
        return profile(&which);
    }
    let quick = std::env::var_os("SEAWALL_BENCH_QUICK").is_some();
    if !quick {
        let mut c = Criterion::default().configure_from_args();
        criterion_groups(&mut c);
        c.final_summary();
    }
    interleaved(if quick { 7 } else { 21 }, 200_000);
}
