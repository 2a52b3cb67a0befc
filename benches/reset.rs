//! What a session reset costs on a real server, next to the round trips it is compared with:
//! a ping (`Sync`), a prepared `SELECT 1`, and `reset_session` (one round trip of short
//! statements), each on one connection to a local PostgreSQL primary (the test bed).
//!
//! Criterion measures each; then rounds of all three, interleaved, give the medians of
//! per-round ratios: `ratio reset reset/select1=<x> reset/ping=<y>`.
//!
//! `SEAWALL_BENCH_QUICK=1` skips criterion and runs fewer rounds.

use std::time::{Duration, Instant};

use criterion::Criterion;
use seawall::sqlx::reset_session;
use seawall::testbed::PgCluster;
use sqlx::{Connection, PgConnection};
use tokio::runtime::Runtime;

#[derive(Clone, Copy)]
enum Op {
    Ping,
    Select1,
    Reset,
}

const OPS: [(&str, Op); 3] = [
    ("ping", Op::Ping),
    ("select1", Op::Select1),
    ("reset", Op::Reset),
];

async fn once(conn: &mut PgConnection, op: Op) {
    match op {
        Op::Ping => conn.ping().await.unwrap(),
        Op::Select1 => {
            let _: i32 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        }
        Op::Reset => reset_session(conn).await.unwrap(),
    }
}

/// `n` calls of `op`: the time per call.
fn per_call(rt: &Runtime, conn: &mut PgConnection, op: Op, n: u32) -> Duration {
    rt.block_on(async {
        let t = Instant::now();
        for _ in 0..n {
            once(conn, op).await;
        }
        t.elapsed() / n
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::var_os("SEAWALL_BENCH_QUICK").is_some();
    let bed = PgCluster::start(0).expect("start a PostgreSQL primary (test bed)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut conn = rt
        .block_on(PgConnection::connect(&bed.primary_url()))
        .unwrap();
    for (_, op) in OPS {
        per_call(&rt, &mut conn, op, 50); // warm up (prepare, caches)
    }
    if !quick {
        let mut c = Criterion::default()
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1))
            .configure_from_args();
        let mut group = c.benchmark_group("session");
        for (name, op) in OPS {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    per_call(&rt, &mut conn, op, iters.max(1) as u32) * iters as u32
                })
            });
        }
        group.finish();
        c.final_summary();
    }
    let rounds = if quick { 7 } else { 21 };
    let (mut per_select, mut per_ping) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let ping = per_call(&rt, &mut conn, Op::Ping, 200).as_secs_f64();
        let select = per_call(&rt, &mut conn, Op::Select1, 200).as_secs_f64();
        let reset = per_call(&rt, &mut conn, Op::Reset, 200).as_secs_f64();
        per_select.push(reset / select);
        per_ping.push(reset / ping);
    }
    println!(
        "ratio reset reset/select1={:.2} reset/ping={:.2}",
        median(per_select),
        median(per_ping)
    );
}
