//! `SELECT 1` through seawall and through sqlx's own pool, against a real PostgreSQL primary
//! started by the test bed: 32 tasks over 8 connections on a two-worker runtime.
//!
//! Modes:
//! * `seawall`: a seawall `Pool<PgConnector>` with default settings (ping only after 10 s
//!   idle; session reset on every return).
//! * `seawall_noreset`: the same with `SessionReset::Never`, to show what the reset costs.
//! * `wrapped`: a seawall pool over a `PgPool` (`PgPoolConnector`, default settings).
//! * `sqlx`: a `PgPool` with its defaults (`test_before_acquire = true`).
//! * `sqlx_noping`: the same with `test_before_acquire(false)`.
//!
//! After the criterion groups, the modes run interleaved round by round (same machine phase
//! for every mode of a round) and the bench prints the medians of per-round ratios of time
//! per query: `ratio select1 seawall/sqlx=<x> seawall/sqlx_noping=<y>`, then the same for the
//! wrapped and no-reset modes, and each mode's median throughput and p99 latency.
//! `SEAWALL_BENCH_QUICK=1` skips criterion and runs fewer rounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use seawall::pool::Pool;
use seawall::sqlx::{PgConnector, PgPoolConnector, SessionReset};
use seawall::testbed::PgCluster;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::runtime::Runtime;

mod common;
use common::median;

const TASKS: usize = 32;
const CONNECTIONS: usize = 8;
const NAMES: [&str; 5] = [
    "seawall",
    "seawall_noreset",
    "wrapped",
    "sqlx",
    "sqlx_noping",
];

enum Mode {
    Seawall(Pool<PgConnector>),
    Wrapped(Pool<PgPoolConnector>),
    Sqlx(PgPool),
}

impl Mode {
    async fn new(name: &str, url: &str) -> Mode {
        let sqlx_pool = |test_before_acquire: bool| {
            PgPoolOptions::new()
                .max_connections(CONNECTIONS as u32)
                .test_before_acquire(test_before_acquire)
                .connect_lazy(url)
                .unwrap()
        };
        let seawall = |reset: SessionReset| {
            let connector = PgConnector::from_url(url).unwrap().session_reset(reset);
            Pool::builder(connector)
                .name(name)
                .max_size(CONNECTIONS)
                .build()
                .unwrap()
        };
        match name {
            "seawall" => Mode::Seawall(seawall(SessionReset::Always)),
            "seawall_noreset" => Mode::Seawall(seawall(SessionReset::Never)),
            "wrapped" => Mode::Wrapped(
                seawall::sqlx::pool_builder(name, sqlx_pool(true))
                    .build()
                    .unwrap(),
            ),
            "sqlx" => Mode::Sqlx(sqlx_pool(true)),
            "sqlx_noping" => Mode::Sqlx(sqlx_pool(false)),
            other => panic!("unknown mode {other}"),
        }
    }

    /// One checkout and one `SELECT 1`.
    async fn select1(&self) {
        let query = || sqlx::query_scalar::<_, i32>("SELECT 1");
        let one = match self {
            Mode::Seawall(pool) => query().fetch_one(&mut *pool.get().await.unwrap()).await,
            Mode::Wrapped(pool) => query().fetch_one(&mut **pool.get().await.unwrap()).await,
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
    let (seawall, noreset, wrapped, sqlx, noping) = (0, 1, 2, 3, 4);
    println!(
        "ratio select1 seawall/sqlx={:.3} seawall/sqlx_noping={:.3}",
        ratio(seawall, sqlx),
        ratio(seawall, noping)
    );
    println!(
        "ratio select1 wrapped/sqlx={:.3} wrapped/sqlx_noping={:.3}",
        ratio(wrapped, sqlx),
        ratio(wrapped, noping)
    );
    println!(
        "ratio select1 seawall_noreset/sqlx={:.3} seawall_noreset/sqlx_noping={:.3}",
        ratio(noreset, sqlx),
        ratio(noreset, noping)
    );
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
}
