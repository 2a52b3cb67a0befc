//! seawall's pool on the embedded simulated database: no database needed.
//!
//! Runs under Tokio's paused clock, so a few simulated seconds of traffic take milliseconds and
//! every run prints the same figures. It shows the three things a pool must get right when the
//! database gets into trouble, and the errors that say which trouble it is:
//!
//! 1. a steady load served by a small pool (state snapshot, acquire waits);
//! 2. a surge beyond the pool: acquires fail at their deadline with "pool saturated";
//! 3. an outage: acquires fail at their deadline with "cannot connect" and the last connect
//!    error, reconnects back off instead of storming, and the pool recovers by itself.
//!
//! ```text
//! cargo run --example demo
//! ```

use std::sync::Arc;
use std::time::Duration;

use seawall::pool::Pool;
use seawall::sim::{ServiceTime, SimBackend};
use seawall::Error;
use tokio::time::Instant;

const MAX_CONNECTING: usize = 2;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let db = SimBackend::builder("primary")
        .capacity(8)
        .service_time(ServiceTime::Exponential(Duration::from_millis(4)))
        .connect_latency(Duration::from_millis(20))
        .seed(42)
        .build();
    let pool = Pool::builder(db.connector())
        .name("primary")
        .max_size(8)
        .min_idle(2)
        .acquire_timeout(Duration::from_millis(250))
        .max_connecting(MAX_CONNECTING)
        .seed(7)
        .build()
        .expect("valid configuration");

    println!("== 1. steady load: 40 clients, one query each every 50 ms, for 2 s");
    let report = run_load(&pool, 40, Duration::from_millis(50), Duration::from_secs(2)).await;
    report.print();
    print_state(&pool);

    println!("\n== 2. surge: 1000 clients hammering a pool of 8");
    let report = run_load(
        &pool,
        1000,
        Duration::from_millis(1),
        Duration::from_secs(1),
    )
    .await;
    report.print();
    print_state(&pool);

    println!("\n== 3. outage: the database goes down for 3 s");
    db.set_down(true);
    let attempts_before = db.stats().connect_attempts;
    let report = run_load(&pool, 20, Duration::from_millis(50), Duration::from_secs(3)).await;
    report.print();
    println!(
        "   connect attempts during the outage: {} (backoff with jitter, at most {} at once)",
        db.stats().connect_attempts - attempts_before,
        MAX_CONNECTING
    );
    db.set_down(false);
    println!("   database back up");
    let report = run_load(&pool, 20, Duration::from_millis(50), Duration::from_secs(2)).await;
    report.print();
    print_state(&pool);

    pool.close().await;
    println!(
        "\npool closed; connections still open on the database: {}",
        db.stats().open_connections
    );
}

#[derive(Default)]
struct Report {
    ok: u64,
    errors: Vec<Error>,
    latencies: Vec<Duration>,
}

impl Report {
    fn print(&self) {
        let mut l = self.latencies.clone();
        l.sort();
        let q = |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)));
        println!(
            "   {} ok, {} failed; latency p50 {:?}, p99 {:?}",
            self.ok,
            self.errors.len(),
            q(0.5).copied().unwrap_or_default(),
            q(0.99).copied().unwrap_or_default()
        );
        // One example of each kind of error, as the application would log it.
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.errors {
            let kind = match e {
                Error::Timeout(t) => format!(
                    "timeout/{}",
                    t.cause.to_string().split(' ').next().unwrap_or("")
                ),
                other => format!("{other:?}").chars().take(12).collect(),
            };
            if seen.insert(kind) {
                println!("   error: {e}");
            }
        }
    }
}

async fn run_load(
    pool: &Pool<seawall::sim::SimConnector>,
    clients: usize,
    think: Duration,
    duration: Duration,
) -> Report {
    let report = Arc::new(parking_lot::Mutex::new(Report::default()));
    let end = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let pool = pool.clone();
        let report = report.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let start = Instant::now();
                let result = match pool.get().await {
                    Ok(mut conn) => conn.query("SELECT 1").await.map_err(|e| Error::Driver {
                        pool: pool.name().into(),
                        error: seawall::DriverError::new(e),
                    }),
                    Err(e) => Err(e),
                };
                {
                    let mut r = report.lock();
                    match result {
                        Ok(_) => {
                            r.ok += 1;
                            r.latencies.push(start.elapsed());
                        }
                        Err(e) => r.errors.push(e),
                    }
                }
                tokio::time::sleep(think).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    Arc::try_unwrap(report)
        .ok()
        .expect("tasks done")
        .into_inner()
}

fn print_state(pool: &Pool<seawall::sim::SimConnector>) {
    let s = pool.state();
    println!(
        "   pool `{}`: size {}/{} ({} idle, {} in use), waiters {}, connecting {}",
        s.name, s.size, s.max_size, s.idle, s.in_use, s.waiters, s.connecting
    );
    println!(
        "   totals: acquired {}, waited {}, timed out {}, broken {}, created {}, closed {}, connect failures {}",
        s.totals.acquired,
        s.totals.waited,
        s.totals.timed_out,
        s.totals.broken,
        s.totals.created,
        s.totals.closed,
        s.totals.connect_failures
    );
    println!(
        "   acquire wait: p50 {:?}, p99 {:?}, max {:?} over {} acquires",
        s.acquire_wait.p50, s.acquire_wait.p99, s.acquire_wait.max, s.acquire_wait.count
    );
}
