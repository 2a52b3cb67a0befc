//! Recovery from a transient outage, under paused time: a primary that goes away for about a
//! second must cost about a second of writes, with the library's defaults and hundreds of
//! writers hammering it with short deadlines (the shape of a surge meeting a restart).
//!
//! The cycle this guards against: connect backoff carried over into every new connect,
//! half-open breaker trials that time out before any connect is tried and re-open the breaker,
//! an open breaker that keeps every caller away from the pool so that nothing reconnects.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use seawall::cluster::{Cluster, Role};
use seawall::failover::HealthConfig;
use seawall::pool::Pool;
use seawall::sim::{self, SimBackend, SimConnector};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Writes acknowledged, and when each was.
#[derive(Default)]
struct Commits {
    at: Mutex<Vec<Instant>>,
    failed: AtomicU64,
}

/// `writers` tasks, each writing in a loop with the cluster's 1 s deadline until `until` or
/// `stop`.
fn start_writers(
    cluster: &Cluster<SimConnector>,
    writers: usize,
    until: Instant,
    stop: &Arc<AtomicBool>,
    commits: &Arc<Commits>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|_| {
            let cluster = cluster.clone();
            let commits = commits.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    match cluster.execute("UPDATE t SET x = x + 1", sim::query).await {
                        Ok(_) => commits.at.lock().push(Instant::now()),
                        Err(_) => {
                            commits.failed.fetch_add(1, Ordering::Relaxed);
                            // A caller that failed fast does not spin: it tries again soon.
                            tokio::time::sleep(ms(10)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

/// The primary (pool 16, defaults otherwise) down for `outage`, with 200 writers: returns how
/// long after the server came back the first write committed.
async fn restart(outage: Duration, seed: u64, health: HealthConfig) -> Duration {
    let primary = SimBackend::builder("primary")
        .primary(true)
        .seed(seed)
        .build();
    let pool = Pool::builder(primary.connector())
        .name("primary")
        .max_size(16)
        .seed(seed)
        .build()
        .unwrap();
    let cluster = Cluster::builder()
        .primary("primary", pool)
        .acquire_timeout(Duration::from_secs(1))
        .health(health)
        .build()
        .unwrap();
    let commits = Arc::new(Commits::default());
    let until = Instant::now() + Duration::from_secs(2) + outage + Duration::from_secs(30);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = start_writers(&cluster, 200, until, &stop, &commits);

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!commits.at.lock().is_empty(), "no write before the outage");
    primary.set_down(true);
    tokio::time::sleep(outage).await;
    primary.set_down(false);
    let back = Instant::now();
    // Watch until the first write after the server's return (or the end of the run).
    let first = loop {
        let first = commits.at.lock().iter().copied().find(|t| *t >= back);
        if first.is_some() || Instant::now() >= until {
            break first;
        }
        tokio::time::sleep(ms(5)).await;
    };
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let node = cluster.node("primary").unwrap();
    assert_eq!(node.role(), Role::Primary);
    match first {
        Some(t) => {
            println!(
                "outage {outage:?} seed {seed}: first write {:?} after the server came back",
                t - back
            );
            t - back
        }
        None => panic!(
            "no write committed in the {:?} after the server came back; {} failed; node {:?}",
            until - back,
            commits.failed.load(Ordering::Relaxed),
            node.snapshot()
        ),
    }
}

/// A 1.2 s outage with 200 writers, 1 s deadlines and the library's defaults: writes resume
/// within 1 s of the server accepting connections again.
#[tokio::test(start_paused = true)]
async fn writes_resume_within_1s_of_a_short_outage() {
    for seed in 1..=5 {
        let resumed = restart(ms(1200), seed, HealthConfig::default()).await;
        assert!(
            resumed <= Duration::from_secs(1),
            "seed {seed}: writes resumed {resumed:?} after the server came back"
        );
    }
}

/// Shorter (the node is never marked down) and longer outages: the cost is about the outage's
/// own length, not a multiple of it.
#[tokio::test(start_paused = true)]
async fn writes_resume_within_1s_of_longer_outages() {
    for (outage, seed) in [
        (ms(400), 10),
        (ms(3_000), 11),
        (ms(8_000), 12),
        (ms(20_000), 13),
    ] {
        let resumed = restart(outage, seed, HealthConfig::default()).await;
        assert!(
            resumed <= Duration::from_secs(1),
            "outage {outage:?}: writes resumed {resumed:?} after the server came back"
        );
    }
}

/// Without a health monitor nothing but callers reaches the node: the breaker's half-open trials
/// must be honest (a trial that times out while the pool waits out its backoff is not a failed
/// connect), or they re-open it with a doubled interval, over and over. Writes resume within the
/// breaker's first open interval (5 s, jittered down) plus a second.
#[tokio::test(start_paused = true)]
async fn without_a_monitor_writes_resume_after_one_breaker_interval() {
    for seed in 21..=23 {
        let resumed = restart(ms(1200), seed, HealthConfig::default().with_interval(None)).await;
        assert!(
            resumed <= Duration::from_secs(6),
            "seed {seed}: writes resumed {resumed:?} after the server came back"
        );
    }
}

/// The pool's backoff is one schedule anchored at the last failure: once it has passed, the
/// next acquire connects at once, however many connects failed before. (A connect task used to
/// start with a fresh sleep sized by the failure count: 1.6-5 s after a streak, longer than a
/// caller's whole deadline.) And a wait that ends while the pool waits out that backoff says so
/// (`BackingOff`), instead of claiming a connect failed during it.
#[tokio::test(start_paused = true)]
async fn backoff_is_anchored_at_the_last_failure() {
    use seawall::backoff::BackoffConfig;
    use seawall::{Error, WaitCause};

    let db = SimBackend::builder("db").seed(5).build();
    let pool = Pool::builder(db.connector())
        .name("db")
        .max_size(4)
        .seed(5)
        .connect_backoff(BackoffConfig {
            initial: ms(500),
            max: Duration::from_secs(4),
        })
        .build()
        .unwrap();
    db.set_down(true);
    // A streak of failures: acquires keep the connect task retrying for 10 s.
    let streak = pool.get_timeout(Duration::from_secs(10)).await;
    assert!(matches!(
        streak,
        Err(Error::Timeout(ref t)) if matches!(t.cause, WaitCause::ConnectFailing { .. })
    ));
    let failures = pool.state().totals.connect_failures;
    assert!(failures >= 4, "{failures} failures");

    // Right after the streak, within the backoff: no connect is tried during a short wait.
    let early = pool.get_timeout(ms(50)).await;
    match early {
        Err(Error::Timeout(t)) => match t.cause {
            WaitCause::BackingOff {
                failures: f,
                retry_in,
                ..
            } => {
                assert_eq!(f, failures);
                assert!(retry_in > Duration::ZERO && retry_in <= Duration::from_secs(4));
            }
            other => panic!("expected BackingOff, got {other:?}"),
        },
        other => panic!("expected a timeout, got {:?}", other.map(|_| ())),
    }
    assert_eq!(pool.state().totals.connect_failures, failures);

    // The backend comes back; once the backoff has run out, an acquire connects at once.
    db.set_down(false);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let started = Instant::now();
    let conn = pool.get_timeout(ms(100)).await;
    assert!(conn.is_ok(), "no connection 5 s after the last failure");
    assert!(started.elapsed() <= ms(5), "took {:?}", started.elapsed());
}

/// A driver whose new connections are all broken at once (its `has_broken` always says so).
struct BornBroken(SimConnector);

#[async_trait::async_trait]
impl seawall::driver::Connector for BornBroken {
    type Connection = seawall::sim::SimConnection;
    type Error = seawall::sim::SimError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        self.0.connect().await
    }

    fn has_broken(&self, _conn: &mut Self::Connection) -> bool {
        true
    }
}

/// New connections that fail their first checkout check are failed connects: the pool backs
/// off instead of replacing them at once (20,074 connects in 200 ms before), and the timeout
/// names that cause instead of "still connecting".
#[tokio::test(start_paused = true)]
async fn connections_broken_at_birth_are_not_replaced_in_a_storm() {
    use seawall::{Error, WaitCause};

    let db = SimBackend::builder("db").seed(9).build();
    let pool = Pool::builder(BornBroken(db.connector()))
        .name("db")
        .max_size(4)
        .seed(9)
        .build()
        .unwrap();
    let e = pool.get_timeout(ms(200)).await.unwrap_err();
    let connects = db.stats().connect_attempts;
    assert!(connects <= 10, "{connects} connects in 200 ms");
    match &e {
        Error::Timeout(t) => match &t.cause {
            WaitCause::ConnectFailing { last_error, .. }
            | WaitCause::BackingOff { last_error, .. } => {
                assert!(
                    last_error
                        .to_string()
                        .contains("broken at its first checkout"),
                    "{e}"
                );
            }
            other => panic!("cause {other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // Over 10 s the backoff grows: a few dozen connects, not thousands.
    let _ = pool.get_timeout(Duration::from_secs(10)).await;
    let connects = db.stats().connect_attempts;
    assert!(connects <= 30, "{connects} connects in 10 s");
}
