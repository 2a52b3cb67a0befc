//! Chaos on real PostgreSQL: a primary and two streaming replicas from the test bed, a seawall
//! cluster of sqlx pools in front, steady write and read load, and then the primary killed
//! with `SIGKILL`, a replica frozen with `SIGSTOP`, servers restarted.
//!
//! Everything is bounded in time: each scenario runs under `tokio::time::timeout`, every query
//! under its own timeout, and every task is joined at the end (no hung task survives a
//! scenario). The scenarios run one at a time (a lock serialises the tests): the machine has
//! two cores, and the figures are latencies.
//!
//! The figures are printed in one line at the end of `kill9_and_sigstop_figures`:
//! `failover kill9_to_first_write_ms=… aggressive_kill9_to_first_write_ms=…
//! lost_acked_writes_async=… lost_acked_writes_sync=… replica_hang_max_wait_ms=…`.
//!
//! # Settings beyond the health and promotion profiles
//!
//! Detection is the health monitor's job; the application's own requests must not sit on the
//! dead primary meanwhile. The writers here give each write a 200 ms acquire deadline
//! ([`AcquireOptions::timeout`]) and retry, and every pool has a 500 ms connect timeout (the
//! default, 10 s, would hold a connect to a frozen server that long). Queries run under a
//! 1 s timeout. Nothing else is changed.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use seawall::cluster::{AcquireOptions, Cluster};
use seawall::failover::{HealthConfig, Promoted, PromotionConfig};
use seawall::pool::Pool;
use seawall::sqlx::{PgConnector, PgPromoter};
use seawall::testbed::{PgCluster, StopMode};
use seawall::ClusterEvent;
use tokio::task::JoinHandle;
use tokio::time::Instant;

type PgSeawall = Cluster<PgConnector>;

/// One scenario at a time, across tests.
static SERIAL: Mutex<()> = Mutex::new(());

const WRITE_DEADLINE: Duration = Duration::from_millis(200);
const READ_DEADLINE: Duration = Duration::from_millis(300);
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
const POOL_SIZE: usize = 4;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` under the suite's lock, on a fresh runtime, within `limit`.
fn scenario<F: Future>(limit: Duration, f: F) -> F::Output {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    runtime().block_on(async {
        tokio::time::timeout(limit, f)
            .await
            .unwrap_or_else(|_| panic!("scenario still running after {limit:?}"))
    })
}

/// Blocking test-bed calls, off the runtime's workers (there are only two).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn start_bed() -> Arc<PgCluster> {
    let started = std::time::Instant::now();
    let pg = PgCluster::start(2).expect("start the PostgreSQL test bed");
    pg.query(0, "CREATE TABLE chaos (id bigint PRIMARY KEY)")
        .unwrap();
    eprintln!("test bed up in {:?}", started.elapsed());
    Arc::new(pg)
}

fn pool(pg: &PgCluster, i: usize) -> Pool<PgConnector> {
    Pool::builder(PgConnector::from_url(&pg.url(i).unwrap()).unwrap())
        .name(format!("n{i}"))
        .max_size(POOL_SIZE)
        .connect_timeout(ms(500))
        .acquire_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

fn index(name: &str) -> usize {
    name.trim_start_matches('n').parse().unwrap()
}

/// Every event with the instant it was seen.
type EventLog = Arc<Mutex<Vec<(Instant, ClusterEvent)>>>;

fn record_events(cluster: &PgSeawall) -> (EventLog, JoinHandle<()>) {
    let log: EventLog = Arc::default();
    let mut rx = cluster.subscribe();
    let sink = log.clone();
    let task = tokio::spawn(async move {
        while let Ok(event) = rx.recv().await {
            let mut log = sink.lock().unwrap_or_else(PoisonError::into_inner);
            log.push((Instant::now(), event));
        }
    });
    (log, task)
}

fn first_event(log: &EventLog, name: &str, node: &str) -> Option<Instant> {
    log.lock()
        .unwrap()
        .iter()
        .find(|(_, e)| {
            e.name() == name
                && match e {
                    ClusterEvent::NodeDown { node: n, .. } | ClusterEvent::NodeUp { node: n } => {
                        &**n == node
                    }
                    _ => true,
                }
        })
        .map(|(t, _)| *t)
}

// ---- Load ----

/// An acknowledged write: its id, the node that committed it, when.
#[derive(Debug, Clone)]
struct Ack {
    id: i64,
    node: String,
    at: Instant,
}

/// Reads with their time and the node that served them (`None`: the read failed).
type ReadLog = Arc<Mutex<Vec<(Instant, Option<String>)>>>;

/// A promotion the hook saw, and how re-pointing the other replicas went.
type Followed = (Promoted, Result<(), String>);

/// What a load task saw.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

struct Load {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    writes: Arc<Tally>,
    reads: Arc<Tally>,
    /// Read results with their time: (when, the node that served it if it succeeded).
    read_log: ReadLog,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// `writers` writers inserting increasing ids (writer `w` of `n` takes the ids `w + 1`,
    /// `w + 1 + n`, ...), and `readers` readers.
    fn start(cluster: &PgSeawall, writers: usize, readers: usize) -> Load {
        let mut load = Load {
            stop: Arc::default(),
            acks: Arc::default(),
            writes: Arc::default(),
            reads: Arc::default(),
            read_log: Arc::default(),
            tasks: Vec::new(),
        };
        for w in 0..writers {
            load.tasks.push(tokio::spawn(writer(
                cluster.clone(),
                (w as i64 + 1, writers as i64),
                load.stop.clone(),
                load.acks.clone(),
                load.writes.clone(),
            )));
        }
        for _ in 0..readers {
            load.tasks.push(tokio::spawn(reader(
                cluster.clone(),
                load.stop.clone(),
                load.reads.clone(),
                load.read_log.clone(),
            )));
        }
        load
    }

    /// Stops every task and waits for them (each is bounded by its deadlines).
    async fn stop(self) -> Load {
        self.stop.store(true, Ordering::Relaxed);
        let mut this = self;
        for task in std::mem::take(&mut this.tasks) {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("a load task hung")
                .expect("a load task panicked");
        }
        this
    }

    fn acks(&self) -> Vec<Ack> {
        self.acks.lock().unwrap().clone()
    }
}

async fn writer(
    cluster: PgSeawall,
    (first, stride): (i64, i64),
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    tally: Arc<Tally>,
) {
    let mut id = first - stride;
    while !stop.load(Ordering::Relaxed) {
        id += stride;
        let options = AcquireOptions::new().timeout(WRITE_DEADLINE);
        match insert_once(&cluster, options, id).await {
            Ok(node) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                acks.lock().unwrap().push(Ack {
                    id,
                    node,
                    at: Instant::now(),
                });
            }
            Err(_) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(ms(2)).await;
            }
        }
    }
}

/// One insert of `id` on the primary, under `QUERY_TIMEOUT`: the node that committed it, or
/// the error.
async fn insert_once(
    cluster: &PgSeawall,
    options: AcquireOptions,
    id: i64,
) -> Result<String, String> {
    let mut conn = cluster
        .write_with(options)
        .await
        .map_err(|e| e.to_string())?;
    let insert = sqlx::query("INSERT INTO chaos (id) VALUES ($1)")
        .bind(id)
        .execute(&mut *conn);
    match tokio::time::timeout(QUERY_TIMEOUT, insert).await {
        Ok(Ok(_)) => Ok(conn.node_name().to_owned()),
        Ok(Err(e)) => {
            conn.report_error(&e);
            Err(e.to_string())
        }
        Err(_) => {
            conn.mark_failed();
            Err("insert timed out".to_owned())
        }
    }
}

async fn reader(cluster: PgSeawall, stop: Arc<AtomicBool>, tally: Arc<Tally>, log: ReadLog) {
    while !stop.load(Ordering::Relaxed) {
        let served = read_once(&cluster).await.ok().map(|(_, node)| node);
        let ok = served.is_some();
        let counter = if ok { &tally.ok } else { &tally.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        log.lock().unwrap().push((Instant::now(), served));
        if !ok {
            tokio::time::sleep(ms(2)).await;
        }
    }
}

/// One read: acquire and `SELECT 1`, within `READ_DEADLINE` in all. Returns the time the
/// acquire took and the node, or the error.
async fn read_once(cluster: &PgSeawall) -> Result<(Duration, String), String> {
    let start = Instant::now();
    let mut conn = cluster
        .read_with(AcquireOptions::new().timeout(READ_DEADLINE))
        .await
        .map_err(|e| e.to_string())?;
    let acquired = start.elapsed();
    let left = READ_DEADLINE.saturating_sub(acquired).max(ms(1));
    let select = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&mut *conn);
    match tokio::time::timeout(left, select).await {
        Ok(Ok(_)) => Ok((acquired, conn.node_name().to_owned())),
        Ok(Err(e)) => {
            conn.report_error(&e);
            Err(e.to_string())
        }
        Err(_) => {
            conn.mark_failed();
            Err("read timed out".to_owned())
        }
    }
}

/// Waits until no pool has a connection in use (returned connections are reset in the
/// background first).
async fn no_connection_in_use(cluster: &PgSeawall) {
    let start = Instant::now();
    loop {
        let in_use: Vec<(String, usize)> = cluster
            .snapshot()
            .nodes
            .iter()
            .map(|n| (n.name.to_string(), n.pool.in_use))
            .collect();
        if in_use.iter().all(|(_, n)| *n == 0) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "connections still in use: {in_use:?}"
        );
        tokio::time::sleep(ms(20)).await;
    }
}

// ---- kill -9 of the primary ----

/// What one kill of the primary measured.
#[derive(Debug)]
struct Kill9 {
    to_first_write: Duration,
    lost_acked: usize,
    acked_before_kill: usize,
    read_failures: u64,
    reads_during_failover: usize,
    longest_read_gap: Duration,
}

/// Kills the primary under load, with automatic promotion; the hook re-points the other
/// replica. With `sync`, commits wait for one replica (`ANY 1 (n1, n2)`).
async fn kill9_primary(health: HealthConfig, rules: PromotionConfig, sync: bool) -> Kill9 {
    let pg = blocking(start_bed).await;
    if sync {
        let pg = pg.clone();
        blocking(move || {
            // ALTER SYSTEM cannot run in a transaction block: separate calls.
            pg.query(
                0,
                "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (n1, n2)'",
            )
            .unwrap();
            pg.query(0, "SELECT pg_reload_conf()").unwrap();
            pg.wait_for_value(
                0,
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'quorum'",
                "2",
            )
            .unwrap();
            assert_eq!(pg.query(0, "SHOW synchronous_commit").unwrap(), "on");
        })
        .await;
    }

    let followed: Arc<Mutex<Vec<Followed>>> = Arc::default();
    let hook = {
        let pg = pg.clone();
        let followed = followed.clone();
        move |p: &Promoted| {
            let new = index(&p.new_primary);
            let others: Vec<usize> = p.replicas.iter().map(|r| index(r)).collect();
            let (pg, followed, p) = (pg.clone(), followed.clone(), p.clone());
            // The hook runs on the runtime: re-point from a blocking thread.
            tokio::task::spawn_blocking(move || {
                let result = others
                    .iter()
                    .try_for_each(|&i| pg.follow(i, new))
                    .map_err(|e| e.to_string());
                followed.lock().unwrap().push((p, result));
            });
        }
    };
    let cluster = Cluster::builder()
        .primary("n0", pool(&pg, 0))
        .replica("n1", pool(&pg, 1))
        .replica("n2", pool(&pg, 2))
        .health(health)
        .auto_failover(PgPromoter::new(Duration::from_secs(10)), rules)
        .single_instance()
        .on_promoted(hook)
        .acquire_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let (events, event_task) = record_events(&cluster);

    let load = Load::start(&cluster, 4, 2);
    tokio::time::sleep(ms(1000)).await;
    assert!(
        load.writes.ok.load(Ordering::Relaxed) > 10,
        "writes before the kill"
    );

    let killed_at = Instant::now();
    {
        let pg = pg.clone();
        blocking(move || pg.kill9(0)).await.unwrap();
    }
    // Until the first write committed by another node.
    let first_write = loop {
        let found = load
            .acks
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.at > killed_at && a.node != "n0")
            .map(|a| a.at);
        if let Some(at) = found {
            break at;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "no write on a new primary 20 s after the kill; events: {:?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(ms(5)).await;
    };
    tokio::time::sleep(ms(1000)).await;
    let load = load.stop().await;
    no_connection_in_use(&cluster).await;

    let promoted = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            ClusterEvent::Promoted(p) => Some(p.clone()),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(promoted.len(), 1, "one promotion: {promoted:?}");
    let new = index(&promoted[0].new_primary);
    assert_eq!(&*promoted[0].old_primary, "n0");
    // The hook re-pointed the other replica: it streams from the new primary.
    let other = 3 - new;
    {
        let pg = pg.clone();
        blocking(move || {
            pg.wait_for_value(
                new,
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                "1",
            )
            .unwrap();
            assert_eq!(pg.query(other, "SELECT pg_is_in_recovery()").unwrap(), "t");
        })
        .await;
    }
    let follow = followed.lock().unwrap().clone();
    assert_eq!(follow.len(), 1);
    assert_eq!(follow[0].1, Ok(()));
    let mut others: Vec<&str> = follow[0].0.replicas.iter().map(|r| &**r).collect();
    others.sort();
    assert_eq!(others, [format!("n{other}")]);

    // Acknowledged writes missing on the new primary.
    let acks = load.acks();
    let present: HashSet<i64> = {
        let pg = pg.clone();
        blocking(move || pg.query(new, "SELECT id FROM chaos").unwrap())
            .await
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    };
    let lost = acks.iter().filter(|a| !present.contains(&a.id)).count();
    let acked_before_kill = acks.iter().filter(|a| a.node == "n0").count();
    assert!(acks
        .iter()
        .filter(|a| a.node != "n0")
        .all(|a| a.node == format!("n{new}")));

    // Reads during the failover: from the kill to one second after the first new write.
    let window_end = first_write + ms(1000);
    let read_log = load.read_log.lock().unwrap().clone();
    let in_window: Vec<_> = read_log
        .iter()
        .filter(|(t, _)| *t >= killed_at && *t <= window_end)
        .collect();
    let read_failures = in_window.iter().filter(|(_, ok)| ok.is_none()).count() as u64;
    let mut longest_read_gap = Duration::ZERO;
    let mut last_ok = killed_at;
    for (t, ok) in &in_window {
        if ok.is_some() {
            longest_read_gap = longest_read_gap.max(*t - last_ok);
            last_ok = *t;
        }
    }
    longest_read_gap = longest_read_gap.max(window_end - last_ok);

    drop(cluster);
    event_task.abort();
    let result = Kill9 {
        to_first_write: first_write - killed_at,
        lost_acked: lost,
        acked_before_kill,
        read_failures,
        reads_during_failover: in_window.len(),
        longest_read_gap,
    };
    eprintln!(
        "kill9 (health {:?}, {:?}, sync {sync}): {result:?}; writes ok {} failed {}; events {:?}",
        health.interval,
        rules,
        load.writes.ok.load(Ordering::Relaxed),
        load.writes.failed.load(Ordering::Relaxed),
        events
            .lock()
            .unwrap()
            .iter()
            .map(|(t, e)| format!(
                "{}@{}ms",
                e.name(),
                t.saturating_duration_since(killed_at).as_millis()
            ))
            .collect::<Vec<_>>()
    );
    blocking(move || drop(pg)).await;
    result
}

// ---- SIGSTOP of a replica ----

/// What freezing a replica measured.
#[derive(Debug)]
struct Hang {
    max_acquire_wait: Duration,
    max_request: Duration,
    failed_reads: usize,
    reads: usize,
    down_after: Duration,
    up_after_sigcont: Duration,
}

async fn sigstop_replica() -> Hang {
    let pg = blocking(start_bed).await;
    let cluster = Cluster::builder()
        .primary("n0", pool(&pg, 0))
        .replica("n1", pool(&pg, 1))
        .replica("n2", pool(&pg, 2))
        .health(HealthConfig::aggressive())
        .acquire_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let (events, event_task) = record_events(&cluster);
    // Warm the pools, then keep a writer running (reads are measured here, one by one).
    for _ in 0..50 {
        read_once(&cluster).await.unwrap();
    }
    let writes = Load::start(&cluster, 1, 0);

    let stopped_at = Instant::now();
    {
        let pg = pg.clone();
        blocking(move || pg.sigstop(1)).await.unwrap();
    }
    let mut max_acquire_wait = Duration::ZERO;
    let mut max_request = Duration::ZERO;
    let mut failed_reads = 0;
    let mut reads = 0;
    let mut served_after_down = HashSet::new();
    // Four concurrent readers for 2 s.
    let mut readers = Vec::new();
    for _ in 0..4 {
        let cluster = cluster.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while stopped_at.elapsed() < Duration::from_secs(2) {
                let start = Instant::now();
                let result = read_once(&cluster).await;
                let down = !cluster.node("n1").unwrap().is_up();
                seen.push((start.elapsed(), result, down));
            }
            seen
        }));
    }
    for reader in readers {
        for (took, result, down) in reader.await.unwrap() {
            reads += 1;
            max_request = max_request.max(took);
            match result {
                Ok((acquired, node)) => {
                    max_acquire_wait = max_acquire_wait.max(acquired);
                    if down {
                        served_after_down.insert(node);
                    }
                }
                Err(_) => {
                    failed_reads += 1;
                    // A failed acquire waited its whole time.
                    max_acquire_wait = max_acquire_wait.max(took);
                }
            }
        }
    }
    let down_at = first_event(&events, "node_down", "n1").expect("n1 marked down");
    assert!(!served_after_down.contains("n1"), "{served_after_down:?}");
    assert!(served_after_down.contains("n2"), "{served_after_down:?}");

    let continued_at = Instant::now();
    {
        let pg = pg.clone();
        blocking(move || pg.sigcont(1)).await.unwrap();
    }
    let up_at = loop {
        if let Some(t) = first_event(&events, "node_up", "n1") {
            break t;
        }
        assert!(
            continued_at.elapsed() < Duration::from_secs(10),
            "n1 not readmitted; events {:?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(ms(10)).await;
    };
    assert!(cluster.node("n1").unwrap().is_up());
    let writes = writes.stop().await;
    assert_eq!(
        writes.writes.failed.load(Ordering::Relaxed),
        0,
        "writes went on"
    );
    no_connection_in_use(&cluster).await;
    drop(cluster);
    event_task.abort();
    blocking(move || drop(pg)).await;
    Hang {
        max_acquire_wait,
        max_request,
        failed_reads,
        reads,
        down_after: down_at - stopped_at,
        up_after_sigcont: up_at.saturating_duration_since(continued_at),
    }
}

#[test]
fn kill9_and_sigstop_figures() {
    let default = scenario(Duration::from_secs(60), async {
        kill9_primary(HealthConfig::default(), PromotionConfig::default(), false).await
    });
    let aggressive = scenario(Duration::from_secs(60), async {
        kill9_primary(
            HealthConfig::aggressive(),
            PromotionConfig::aggressive(),
            false,
        )
        .await
    });
    let sync = scenario(Duration::from_secs(60), async {
        kill9_primary(
            HealthConfig::aggressive(),
            PromotionConfig::aggressive(),
            true,
        )
        .await
    });
    let hang = scenario(Duration::from_secs(60), sigstop_replica());
    eprintln!("kill9 default {default:?}");
    eprintln!("kill9 aggressive {aggressive:?}");
    eprintln!("kill9 aggressive sync {sync:?}");
    eprintln!("sigstop {hang:?}");
    println!(
        "failover kill9_to_first_write_ms={} aggressive_kill9_to_first_write_ms={} \
         lost_acked_writes_async={} lost_acked_writes_sync={} replica_hang_max_wait_ms={}",
        default.to_first_write.as_millis(),
        aggressive.to_first_write.as_millis(),
        default.lost_acked + aggressive.lost_acked,
        sync.lost_acked,
        hang.max_acquire_wait.as_millis(),
    );

    // The goals.
    assert!(
        default.to_first_write <= Duration::from_secs(3),
        "{default:?}"
    );
    assert!(
        aggressive.to_first_write <= Duration::from_secs(1),
        "{aggressive:?}"
    );
    assert_eq!(sync.lost_acked, 0, "{sync:?}");
    for run in [&default, &aggressive, &sync] {
        assert!(run.acked_before_kill > 10, "{run:?}");
        assert_eq!(run.read_failures, 0, "reads never stop: {run:?}");
        assert!(run.reads_during_failover > 0, "{run:?}");
        assert!(run.longest_read_gap < ms(500), "reads never stop: {run:?}");
    }
    // No read acquire waits past its deadline (a little slack for the scheduler).
    assert!(hang.max_acquire_wait <= READ_DEADLINE + ms(50), "{hang:?}");
    assert!(hang.max_request <= READ_DEADLINE + ms(50), "{hang:?}");
    assert!(hang.reads > 100, "{hang:?}");
    // Only reads that picked the frozen replica before it was marked down can fail.
    assert!(hang.failed_reads * 20 < hang.reads, "{hang:?}");
    // Aggressive probes: two timeouts of 100 ms, every 100 ms; readmitted at the first good one.
    assert!(hang.down_after < ms(1000), "{hang:?}");
    assert!(hang.up_after_sigcont < ms(1000), "{hang:?}");
}

// ---- Clean restarts ----

/// Connection attempts a pool made so far (opened or failed).
fn attempts(cluster: &PgSeawall, node: &str) -> u64 {
    let totals = cluster.node(node).unwrap().pool().state().totals;
    totals.created + totals.connect_failures
}

#[test]
fn restarts_reconnect_with_backoff_and_leak_nothing() {
    restarts(false);
}

#[test]
fn a_restarted_replica_takes_reads_within_3_s() {
    restarts(true);
}

/// Restarts replica n1, then primary n0 (clean stop, 1 s down, start) under load. The primary
/// must take writes again within 3 s of its stop; the replica must be readmitted (`NodeUp`)
/// within 3 s, and with `replica_reads`, serve reads again within 3 s.
fn restarts(replica_reads: bool) {
    let back_within = Duration::from_secs(3);
    scenario(Duration::from_secs(90), async {
        let pg = blocking(start_bed).await;
        let cluster = Cluster::builder()
            .primary("n0", pool(&pg, 0))
            .replica("n1", pool(&pg, 1))
            .replica("n2", pool(&pg, 2))
            .health(HealthConfig::aggressive())
            .acquire_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let (events, event_task) = record_events(&cluster);
        // A writer and four readers: far more requests than connections.
        let load = Load::start(&cluster, 1, 4);
        tokio::time::sleep(ms(500)).await;

        let mut report = Vec::new();
        for (i, node) in [(1, "n1"), (0, "n0")] {
            let before = attempts(&cluster, node);
            let requests_before = load.writes.ok.load(Ordering::Relaxed)
                + load.writes.failed.load(Ordering::Relaxed)
                + load.reads.ok.load(Ordering::Relaxed)
                + load.reads.failed.load(Ordering::Relaxed);
            let stopped_at = Instant::now();
            {
                let pg = pg.clone();
                blocking(move || {
                    pg.stop_node(i, StopMode::Fast).unwrap();
                    std::thread::sleep(Duration::from_secs(1));
                    pg.start_node(i).unwrap();
                })
                .await;
            }
            let restarted = Instant::now();
            let down_for = restarted - stopped_at;
            // Until the node serves work again (a write on the primary, a read on the replica).
            let back = loop {
                let served = if i == 0 {
                    load.acks
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|a| a.at > restarted && a.node == node)
                } else if replica_reads {
                    load.read_log
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|(t, n)| *t > restarted && n.as_deref() == Some(node))
                } else {
                    cluster.node(node).unwrap().is_up()
                };
                if served {
                    break stopped_at.elapsed();
                }
                assert!(
                    stopped_at.elapsed() < back_within,
                    "{node} not serving {back_within:?} after its stop; events {:?}",
                    events.lock().unwrap()
                );
                tokio::time::sleep(ms(10)).await;
            };
            // Let it settle: the pool refills to what the load needs.
            tokio::time::sleep(ms(500)).await;
            let requests = load.writes.ok.load(Ordering::Relaxed)
                + load.writes.failed.load(Ordering::Relaxed)
                + load.reads.ok.load(Ordering::Relaxed)
                + load.reads.failed.load(Ordering::Relaxed)
                - requests_before;
            let made = attempts(&cluster, node) - before;
            report.push(format!(
                "{node}: down {down_for:?}, taking work again after {back:?}, \
                 {made} connection attempts for {requests} requests"
            ));
            // No storm: a handful of connects (at most `max_connecting` at once, with backoff),
            // not one per request.
            assert!(
                made <= 40,
                "{node}: {made} connection attempts for {requests} requests"
            );
            assert!(
                requests > 10 * made,
                "{node}: {made} attempts for {requests} requests"
            );
        }
        let load = load.stop().await;
        no_connection_in_use(&cluster).await;
        // Nothing leaked on the servers either: each node holds at most its pool's connections
        // (open, or being opened: a connect in flight has its session before the pool counts
        // it) plus the monitor's probe connection (plus psql asking).
        for i in 0..3 {
            let pg = pg.clone();
            let sessions: usize = blocking(move || {
                pg.query(
                    i,
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
                )
                .unwrap()
            })
            .await
            .parse()
            .unwrap();
            let state = cluster.node(&format!("n{i}")).unwrap().pool().state();
            let size = state.size + state.connecting;
            assert!(
                sessions <= size + 2,
                "n{i}: {sessions} sessions, pool size {} + {} connecting",
                state.size,
                state.connecting
            );
        }
        eprintln!(
            "restarts: {report:?}; writes ok {} failed {}, reads ok {} failed {}; events {:?}",
            load.writes.ok.load(Ordering::Relaxed),
            load.writes.failed.load(Ordering::Relaxed),
            load.reads.ok.load(Ordering::Relaxed),
            load.reads.failed.load(Ordering::Relaxed),
            events
                .lock()
                .unwrap()
                .iter()
                .map(|(_, e)| e.name())
                .collect::<Vec<_>>()
        );
        drop(cluster);
        event_task.abort();
        blocking(move || drop(pg)).await;
    });
}

/// A fast restart of the primary (stop, start at once: about a second down) under 200 writers,
/// pools of 16, 1 s acquire deadlines and the library's defaults otherwise (health monitor,
/// breaker, backoff). Writes must resume within 1 s of the server accepting connections again,
/// the pool must not storm the server, and nothing may leak.
#[test]
fn a_fast_primary_restart_costs_about_its_own_length() {
    scenario(Duration::from_secs(120), async {
        let pg = blocking(start_bed).await;
        let node_pool = |i: usize| {
            Pool::builder(PgConnector::from_url(&pg.url(i).unwrap()).unwrap())
                .name(format!("n{i}"))
                .max_size(16)
                .build()
                .unwrap()
        };
        let cluster = Cluster::builder()
            .primary("n0", node_pool(0))
            .replica("n1", node_pool(1))
            .acquire_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let (events, event_task) = record_events(&cluster);
        let stop = Arc::new(AtomicBool::new(false));
        let acks: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let failed = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..200)
            .map(|w| {
                let (cluster, stop, acks, failed) =
                    (cluster.clone(), stop.clone(), acks.clone(), failed.clone());
                tokio::spawn(async move {
                    let mut id = 1_000_000 * (w + 1);
                    while !stop.load(Ordering::Relaxed) {
                        id += 1;
                        match insert_once(&cluster, AcquireOptions::new(), id).await {
                            Ok(_) => acks.lock().unwrap().push(Instant::now()),
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(ms(10)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            !acks.lock().unwrap().is_empty(),
            "no write before the restart"
        );

        let stopped_at = Instant::now();
        {
            let pg = pg.clone();
            blocking(move || {
                pg.stop_node(0, StopMode::Fast).unwrap();
                pg.start_node(0).unwrap();
            })
            .await;
        }
        // `start_node` returns once the server accepts connections.
        let back = Instant::now();
        let attempts_before = attempts(&cluster, "n0");
        let resumed = loop {
            if let Some(t) = acks.lock().unwrap().iter().find(|t| **t >= back) {
                break Some(*t - back);
            }
            if back.elapsed() > Duration::from_secs(30) {
                break None;
            }
            tokio::time::sleep(ms(5)).await;
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let attempts = attempts(&cluster, "n0") - attempts_before;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("a writer hung")
                .unwrap();
        }
        no_connection_in_use(&cluster).await;
        let sessions: usize = {
            let pg = pg.clone();
            blocking(move || {
                pg.query(
                    0,
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
                )
                .unwrap()
            })
            .await
            .parse()
            .unwrap()
        };
        let size = cluster.node("n0").unwrap().pool().state().size;
        let names: Vec<_> = events
            .lock()
            .unwrap()
            .iter()
            .map(|(t, e)| (t.duration_since(stopped_at), e.name()))
            .collect();
        eprintln!(
            "restart: down {:?}, first write {resumed:?} after the server accepted again, \
             {attempts} connection attempts in the second after, {} writes ok, {} failed, \
             {sessions} server sessions for a pool of {size}; events {names:?}",
            back - stopped_at,
            acks.lock().unwrap().len(),
            failed.load(Ordering::Relaxed),
        );
        let resumed = resumed.expect("no write in the 30 s after the server came back");
        assert!(
            resumed <= Duration::from_secs(1),
            "writes resumed {resumed:?} after the server accepted again"
        );
        assert!(attempts <= 64, "{attempts} connection attempts: a storm");
        // The pool's connections plus the monitor's probe plus psql asking.
        assert!(
            sessions <= size + 2,
            "{sessions} sessions, pool size {size}"
        );
        drop(cluster);
        event_task.abort();
        blocking(move || drop(pg)).await;
    });
}

/// Connections killed on the server (`pg_terminate_backend`) while borrowed and while idle: the
/// borrower's statement fails with an error naming the node, the dead connections are closed
/// rather than returned, reads after the kill fail at most once per dead idle connection, and
/// the pool's count agrees with the server's sessions afterwards (nothing leaked).
#[test]
fn connections_terminated_on_the_server_are_discarded_and_nothing_leaks() {
    scenario(Duration::from_secs(90), async {
        const APP: &str = "seawall-terminate-drill";
        let pg = Arc::new(blocking(|| PgCluster::start(0).expect("test bed")).await);
        let url = format!("{}?application_name={APP}", pg.url(0).unwrap());
        let pool = Pool::builder(PgConnector::from_url(&url).unwrap())
            .name("n0")
            .max_size(4)
            .build()
            .unwrap();
        let cluster = Cluster::builder()
            .primary("n0", pool)
            .probe_interval(None)
            .build()
            .unwrap();
        let run = |sql: &'static str| {
            let cluster = cluster.clone();
            async move {
                cluster
                    .execute(sql, |c, sql| Box::pin(raw_statement(c, sql)))
                    .await
            }
        };
        let terminate = |pg: Arc<PgCluster>, filter: String| {
            blocking(move || {
                pg.query(
                    0,
                    &format!(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE application_name = '{APP}' {filter}"
                    ),
                )
                .unwrap()
            })
        };
        // Four connections opened and idle.
        let held: Vec<_> = futures_four(&cluster).await;
        drop(held);
        // Returned connections are reset in the background first.
        no_connection_in_use(&cluster).await;
        assert_eq!(cluster.node("n0").unwrap().pool().state().idle, 4);

        // Borrowed: killed under the borrower.
        let mut conn = cluster.write().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        terminate(pg.clone(), format!("AND pid = {pid}")).await;
        let failed = sqlx::query("SELECT 1").execute(&mut *conn).await;
        let error = failed.expect_err("a terminated connection answered");
        conn.report_error(&error);
        drop(conn);
        let state = cluster.node("n0").unwrap().pool().state();
        assert_eq!(state.totals.broken, 1, "{state:?}");
        assert_eq!(state.size, 3, "the dead connection was returned: {state:?}");

        // Idle: every idle connection killed; each read that meets one fails once, naming the
        // node, and the dead connection is closed.
        let killed: usize = terminate(pg.clone(), String::new()).await.parse().unwrap();
        let mut failures = Vec::new();
        for _ in 0..10 {
            if let Err(e) = run("SELECT 1").await {
                failures.push(e.to_string());
            }
        }
        assert!(
            failures.len() <= killed,
            "{} failures for {killed} killed: {failures:?}",
            failures.len()
        );
        assert!(failures.iter().all(|e| e.contains("`n0`")), "{failures:?}");
        assert!(run("SELECT 1").await.is_ok());

        // Nothing leaked: the pool's connections are the server's sessions. Both sides may be
        // in motion for a moment: a backend whose client closed its connection exits on its own
        // time, and a connect still in flight (`connecting`) already has its session on the
        // server before the pool counts it. A leak is a difference that stays.
        no_connection_in_use(&cluster).await;
        let count_sessions = || {
            let pg = pg.clone();
            async move {
                blocking(move || {
                    pg.query(
                        0,
                        &format!(
                            "SELECT count(*) FROM pg_stat_activity \
                             WHERE application_name = '{APP}'"
                        ),
                    )
                    .unwrap()
                })
                .await
                .parse::<usize>()
                .unwrap()
            }
        };
        let settle = Instant::now();
        let (mut sessions, mut state) = (
            count_sessions().await,
            cluster.node("n0").unwrap().pool().state(),
        );
        while (sessions != state.size || state.connecting > 0)
            && settle.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            state = cluster.node("n0").unwrap().pool().state();
            sessions = count_sessions().await;
        }
        assert_eq!(sessions, state.size, "{state:?}");
        eprintln!(
            "terminate drill: killed 1 borrowed and {killed} idle connections; {} of 10 reads \
             failed after the idle kill ({:?}); pool {} connections = {sessions} server sessions, \
             {} broken discarded",
            failures.len(),
            failures.first(),
            state.size,
            state.totals.broken
        );
        drop(cluster);
        blocking(move || drop(pg)).await;
    });
}

/// Four handles at once from the primary (so the pool opens four connections).
async fn futures_four(cluster: &PgSeawall) -> Vec<seawall::ClusterConn<PgConnector>> {
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(cluster.write().await.unwrap());
    }
    held
}

async fn raw_statement(
    c: &mut seawall::ClusterConn<PgConnector>,
    sql: &str,
) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut **c)
        .await
        .map(|_| ())
}
