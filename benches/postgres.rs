//! `SELECT 1` through seawall and through sqlx's own pool, against a real PostgreSQL primary
//! started by the test bed: 32 tasks over 8 connections on a two-worker runtime. Then a mixed
//! read/write workload over a primary and two replicas.
//!
//! Modes of `select1` (each one checkout and one `SELECT 1`):
//! * `seawall`: `sqlx::query("SELECT 1").fetch_one(&cluster)` through seawall's
//!   `sqlx::Executor`, on a `Cluster` of the primary with default options (pool of 8, no ping
//!   before use, sessions reset only when a statement dirtied them: never here).
//! * `wrapped`: the same on a cluster over a `PgPool` (`cluster_from_pools`, defaults).
//! * `pool`: a bare seawall `Pool<PgConnector>` used as before the Executor existed
//!   (`fetch_one(&mut *pool.get().await?)`): the borrower reaches the connection itself, so the
//!   session gets the full reset on every return.
//! * `sqlx`: a `PgPool` with its defaults (`test_before_acquire = true`).
//! * `sqlx_noping`: the same with `test_before_acquire(false)`.
//!
//! After the criterion groups, the modes run interleaved round by round (same machine phase
//! for every mode of a round) and the bench prints the medians of per-round ratios of time
//! per query: `ratio select1 seawall/sqlx=<x> seawall/sqlx_noping=<y>`, then the same for the
//! other modes, and each mode's median throughput and p99 latency.
//!
//! `mixed`: 32 tasks, each query a point read (90%) or a one-row update (10%) of a 1,000-row
//! table, through seawall's Executor on a cluster of the primary and two replicas (pools of 8)
//! vs a `PgPool` of 8 on the primary alone (defaults); interleaved rounds, printed as
//! `ratio mixed seawall/sqlx throughput=<t>` (above 1: seawall serves more). All servers share
//! this machine's cores, so the replicas add connections and sessions, not hardware.
//!
//! `SEAWALL_BENCH_QUICK=1` skips criterion and runs fewer rounds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use seawall::cluster::Cluster;
use seawall::pool::Pool;
use seawall::sqlx::{PgConnector, PgPoolConnector};
use seawall::testbed::PgCluster;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::runtime::Runtime;

mod common;
use common::median;

const TASKS: usize = 32;
const CONNECTIONS: usize = 8;
const NAMES: [&str; 5] = ["seawall", "wrapped", "pool", "sqlx", "sqlx_noping"];

enum Mode {
    Seawall(Cluster<PgConnector>),
    Wrapped(Cluster<PgPoolConnector>),
    Pool(Pool<PgConnector>),
    Sqlx(PgPool),
}

fn sqlx_pool(url: &str, test_before_acquire: bool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(CONNECTIONS as u32)
        .test_before_acquire(test_before_acquire)
        .connect_lazy(url)
        .unwrap()
}

fn seawall_pool(name: &str, url: &str) -> Pool<PgConnector> {
    Pool::builder(PgConnector::from_url(url).unwrap())
        .name(name)
        .max_size(CONNECTIONS)
        .build()
        .unwrap()
}

impl Mode {
    async fn new(name: &str, url: &str) -> Mode {
        match name {
            "seawall" => Mode::Seawall(
                Cluster::builder()
                    .primary("primary", seawall_pool("primary", url))
                    .build()
                    .unwrap(),
            ),
            "wrapped" => Mode::Wrapped(
                seawall::sqlx::cluster_from_pools(sqlx_pool(url, true), Vec::<(String, _)>::new())
                    .unwrap()
                    .build()
                    .unwrap(),
            ),
            "pool" => Mode::Pool(seawall_pool(name, url)),
            "sqlx" => Mode::Sqlx(sqlx_pool(url, true)),
            "sqlx_noping" => Mode::Sqlx(sqlx_pool(url, false)),
            other => panic!("unknown mode {other}"),
        }
    }

    /// One checkout and one `SELECT 1`.
    async fn select1(&self) {
        let query = || sqlx::query_scalar::<_, i32>("SELECT 1");
        let one = match self {
            Mode::Seawall(cluster) => query().fetch_one(cluster).await,
            Mode::Wrapped(cluster) => query().fetch_one(cluster).await,
            Mode::Pool(pool) => query().fetch_one(&mut *pool.get().await.unwrap()).await,
            Mode::Sqlx(pool) => query().fetch_one(pool).await,
        };
        assert_eq!(one.unwrap(), 1);
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `TASKS` tasks doing `per_task` queries each: the wall time and every query's latency.
fn run(rt: &Runtime, mode: &Arc<Mode>, per_task: usize) -> (Duration, Vec<Duration>) {
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let mode = mode.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_task);
                    for _ in 0..per_task {
                        let began = Instant::now();
                        mode.select1().await;
                        latencies.push(began.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(TASKS * per_task);
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        (start.elapsed(), latencies)
    })
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

fn criterion_groups(c: &mut Criterion, rt: &Runtime, modes: &[Arc<Mode>]) {
    let mut group = c.benchmark_group("select1_32_tasks_8_connections");
    group.throughput(criterion::Throughput::Elements(1));
    for (name, mode) in NAMES.iter().zip(modes) {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let per_task = (iters as usize).div_ceil(TASKS);
                let (wall, _) = run(rt, mode, per_task);
                wall.mul_f64(iters as f64 / (per_task * TASKS) as f64)
            })
        });
    }
    group.finish();
}

fn interleaved(rt: &Runtime, modes: &[Arc<Mode>], rounds: usize, per_task: usize) {
    let queries = (TASKS * per_task) as f64;
    let mut per_query: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut tails: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for _ in 0..rounds {
        for (i, mode) in modes.iter().enumerate() {
            let (wall, latencies) = run(rt, mode, per_task);
            per_query[i].push(wall.as_nanos() as f64 / queries);
            tails[i].push(p99(latencies).as_nanos() as f64);
        }
    }
    let ratio = |a: usize, b: usize| {
        median(
            per_query[a]
                .iter()
                .zip(&per_query[b])
                .map(|(x, y)| x / y)
                .collect(),
        )
    };
    for (i, name) in NAMES.iter().enumerate() {
        let ns = median(per_query[i].clone());
        println!(
            "interleaved select1 {name}: median {:.0} queries/s, {:.1} µs/query, p99 {:.0} µs over {rounds} rounds",
            1e9 / ns,
            ns / 1e3,
            median(tails[i].clone()) / 1e3
        );
    }
    let (seawall, wrapped, pool, sqlx, noping) = (0, 1, 2, 3, 4);
    for (name, mode) in [("seawall", seawall), ("wrapped", wrapped), ("pool", pool)] {
        println!(
            "ratio select1 {name}/sqlx={:.3} {name}/sqlx_noping={:.3}",
            ratio(mode, sqlx),
            ratio(mode, noping)
        );
    }
}

/// The mixed workload's two sides.
enum Mixed {
    Seawall(Cluster<PgConnector>),
    Sqlx(PgPool),
}

const ROWS: i32 = 1000;

impl Mixed {
    /// One query: every tenth an update, the rest point reads.
    async fn query(&self, i: u64) {
        let id = (i.wrapping_mul(2_654_435_761) % ROWS as u64) as i32 + 1;
        if i % 10 == 0 {
            let update = sqlx::query("UPDATE mixed SET n = n + 1 WHERE id = $1").bind(id);
            let done = match self {
                Mixed::Seawall(cluster) => update.execute(cluster).await,
                Mixed::Sqlx(pool) => update.execute(pool).await,
            };
            assert_eq!(done.unwrap().rows_affected(), 1);
        } else {
            let read = sqlx::query_scalar::<_, i64>("SELECT n FROM mixed WHERE id = $1").bind(id);
            let n = match self {
                Mixed::Seawall(cluster) => read.fetch_optional(cluster).await,
                Mixed::Sqlx(pool) => read.fetch_optional(pool).await,
            };
            assert!(n.unwrap().is_some());
        }
    }
}

/// `TASKS` tasks doing `per_task` mixed queries each: queries per second.
fn run_mixed(rt: &Runtime, side: &Arc<Mixed>, per_task: usize) -> f64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let side = side.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        side.query(NEXT.fetch_add(1, Ordering::Relaxed)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        (TASKS * per_task) as f64 / start.elapsed().as_secs_f64()
    })
}

fn mixed(rt: &Runtime, rounds: usize) {
    let bed = PgCluster::start(2).expect("start a primary and two replicas (test bed)");
    bed.query(
        bed.primary(),
        &format!(
            "CREATE TABLE mixed (id int PRIMARY KEY, n bigint NOT NULL); \
             INSERT INTO mixed SELECT g, 0 FROM generate_series(1, {ROWS}) g"
        ),
    )
    .expect("create the table");
    for replica in bed.replicas() {
        bed.wait_for_value(replica, "SELECT count(*) FROM mixed", &ROWS.to_string())
            .expect("the table reaches the replica");
    }
    let seawall = rt.block_on(async {
        let mut builder =
            Cluster::builder().primary("primary", seawall_pool("primary", &bed.primary_url()));
        for i in bed.replicas() {
            let name = format!("replica-{i}");
            builder = builder.replica(name.clone(), seawall_pool(&name, &bed.url(i).unwrap()));
        }
        builder.build().unwrap()
    });
    let sqlx = rt.block_on(async { sqlx_pool(&bed.primary_url(), true) });
    let sides = [
        Arc::new(Mixed::Seawall(seawall)),
        Arc::new(Mixed::Sqlx(sqlx)),
    ];
    for side in &sides {
        run_mixed(rt, side, 50); // connect and warm up
    }
    let mut throughput = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, side) in sides.iter().enumerate() {
            throughput[i].push(run_mixed(rt, side, 100));
        }
    }
    let ratio = median(
        throughput[0]
            .iter()
            .zip(&throughput[1])
            .map(|(a, b)| a / b)
            .collect(),
    );
    println!(
        "interleaved mixed: seawall (primary + 2 replicas) median {:.0} queries/s, sqlx (primary) {:.0} queries/s over {rounds} rounds",
        median(throughput[0].clone()),
        median(throughput[1].clone())
    );
    println!("ratio mixed seawall/sqlx throughput={ratio:.3}");
    rt.block_on(async move { drop(sides) });
}

fn main() {
    let quick = std::env::var_os("SEAWALL_BENCH_QUICK").is_some();
    let bed = PgCluster::start(0).expect("start a PostgreSQL primary (test bed)");
    let url = bed.primary_url();
    let rt = runtime();
    let modes: Vec<Arc<Mode>> = NAMES
        .iter()
        .map(|name| Arc::new(rt.block_on(Mode::new(name, &url))))
        .collect();
    for mode in &modes {
        run(&rt, mode, 50); // connect and warm up
    }
    if !quick {
        let mut c = Criterion::default()
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1))
            .configure_from_args();
        criterion_groups(&mut c, &rt, &modes);
        c.final_summary();
    }
    let rounds = if quick { 7 } else { 21 };
    interleaved(&rt, &modes, rounds, 100);
    // A dropped `PoolConnection` (held by the wrapped pool) spawns its return: drop in the
    // runtime.
    rt.block_on(async move { drop(modes) });
    drop(bed);
    mixed(&rt, rounds);
}
