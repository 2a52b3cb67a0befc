//! Following Patroni on real components: etcd and a 3-member Patroni cluster of PostgreSQL 15 on
//! loopback (`scripts/patroni-testbed.sh`, installed from Debian's packages by
//! `scripts/test.sh`), a seawall cluster following it through `topology::Patroni`, and a steady
//! write and read load through three drills:
//!
//! * a planned switchover: no request may fail (writes wait for the new leader);
//! * `kill -9` of the leader's postmaster: the first write on the new leader after Patroni
//!   names it (`follow_ms`);
//! * the leader's Patroni frozen (SIGSTOP) while its PostgreSQL stays writable: once Patroni
//!   names another leader, no write may reach the old one.
//!
//! It prints `patroni follow_ms=… switchover_failed_requests=… switchover_hold_ms=…
//! writes_on_fenced=…`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::cluster::{AcquireOptions, Cluster};
use seawall::failover::HealthConfig;
use seawall::pool::Pool;
use seawall::sqlx::PgConnector;
use seawall::topology::{Patroni, TopologySource};
use tokio::time::Instant;

#[path = "support/patroni_bed.rs"]
mod patroni_bed;
use patroni_bed::{blocking, Bed};

type PgSeawall = Cluster<PgConnector>;

const WRITE_HOLD: Duration = Duration::from_secs(8);

fn cluster(bed: &Bed, leader: &str) -> PgSeawall {
    let pool = |i: usize| {
        Pool::builder(PgConnector::from_url(&bed.urls[i]).unwrap())
            .name(format!("n{i}"))
            .max_size(4)
            .connect_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let mut builder = Cluster::builder()
        .health(
            HealthConfig::default()
                .with_interval(Some(Duration::from_millis(100)))
                .with_timeout(Duration::from_millis(300)),
        )
        .topology(Patroni::new(&bed.apis).unwrap())
        .topology_interval(Duration::from_millis(100))
        .acquire_timeout(WRITE_HOLD);
    for i in 0..3 {
        let name = format!("n{i}");
        builder = if name == leader {
            builder.primary(name, pool(i))
        } else {
            builder.replica(name, pool(i))
        };
    }
    builder.build().unwrap()
}

/// An acknowledged write: the node that committed it and when.
#[derive(Clone, Debug)]
struct Ack {
    node: String,
    at: Instant,
}

#[derive(Default)]
struct Load {
    stop: AtomicBool,
    acks: Mutex<Vec<Ack>>,
    failed_writes: AtomicU64,
    failed_reads: AtomicU64,
    reads: AtomicU64,
    /// The longest a write waited (acquire and statement).
    longest_write: Mutex<Duration>,
    errors: Mutex<Vec<String>>,
}

impl Load {
    fn failures(&self) -> u64 {
        self.failed_writes.load(Ordering::Relaxed) + self.failed_reads.load(Ordering::Relaxed)
    }

    /// The five most recent errors, newest first.
    fn last_errors(&self) -> Vec<String> {
        let errors = self.errors.lock().unwrap();
        errors.iter().rev().take(5).cloned().collect()
    }

    fn first_ack_on(&self, node: &str, after: Instant) -> Option<Instant> {
        let acks = self.acks.lock().unwrap();
        acks.iter()
            .find(|a| a.node == node && a.at >= after)
            .map(|a| a.at)
    }
}

fn insert<'c>(
    c: &'c mut seawall::ClusterConn<PgConnector>,
    sql: &'c str,
    id: i64,
) -> seawall::cluster::BoxFuture<'c, Result<String, sqlx::Error>> {
    Box::pin(async move {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(id)
            .execute(&mut **c)
            .await?;
        Ok(c.node_name().to_owned())
    })
}

fn count<'c>(
    c: &'c mut seawall::ClusterConn<PgConnector>,
    sql: &'c str,
) -> seawall::cluster::BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut **c)
            .await
            .map(|_| ())
    })
}

fn start_load(cluster: &PgSeawall, load: &Arc<Load>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let (cluster, load) = (cluster.clone(), load.clone());
        tasks.push(tokio::spawn(async move {
            let mut id = w * 1_000_000;
            while !load.stop.load(Ordering::Relaxed) {
                id += 1;
                let t = Instant::now();
                let result = cluster
                    .execute_with(
                        "INSERT INTO follow (id) VALUES ($1)",
                        AcquireOptions::new().timeout(WRITE_HOLD),
                        move |c, sql| insert(c, sql, id),
                    )
                    .await;
                let took = t.elapsed();
                {
                    let mut longest = load.longest_write.lock().unwrap();
                    *longest = (*longest).max(took);
                }
                match result {
                    Ok(node) => load.acks.lock().unwrap().push(Ack {
                        node,
                        at: Instant::now(),
                    }),
                    Err(e) => {
                        load.failed_writes.fetch_add(1, Ordering::Relaxed);
                        load.errors.lock().unwrap().push(format!("write: {e}"));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for _ in 0..2 {
        let (cluster, load) = (cluster.clone(), load.clone());
        tasks.push(tokio::spawn(async move {
            while !load.stop.load(Ordering::Relaxed) {
                let result = cluster
                    .execute_with(
                        "SELECT count(*) FROM follow",
                        AcquireOptions::new().timeout(WRITE_HOLD),
                        |c, sql| count(c, sql),
                    )
                    .await;
                match result {
                    Ok(()) => {
                        load.reads.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        load.failed_reads.fetch_add(1, Ordering::Relaxed);
                        load.errors.lock().unwrap().push(format!("read: {e}"));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tasks
}

/// Polls Patroni until it names a leader other than `old`: the new leader's name and when it
/// was first seen named.
async fn named_leader_other_than(apis: &[String], old: &str) -> (String, Instant) {
    let patroni = Patroni::new(apis).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(t) = patroni.fetch().await {
            if let Some(l) = t.leader().filter(|l| &*l.name != old) {
                return (l.name.to_string(), Instant::now());
            }
        }
        assert!(
            Instant::now() < deadline,
            "Patroni named no new leader in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seawall_follows_patroni() {
    let bed = Arc::new(blocking(|| Bed::start("patroni-test", false)).await);
    let leader = bed.leader();
    {
        let url = bed.urls[leader[1..].parse::<usize>().unwrap()].clone();
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE follow (id bigint PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    // Every replica has the table before reads may land there.
    for url in bed.urls.clone() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let there: Option<String> = sqlx::query_scalar("SELECT to_regclass('follow')::text")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            if there.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "the table never reached {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let cluster = cluster(&bed, &leader);
    let load = Arc::new(Load::default());
    let tasks = start_load(&cluster, &load);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !load.acks.lock().unwrap().is_empty(),
        "no write before the drills"
    );

    // 1. Planned switchover: nothing fails.
    let failed_before = load.failures();
    *load.longest_write.lock().unwrap() = Duration::ZERO;
    {
        let bed = bed.clone();
        blocking(move || bed.run(&["switchover"])).await;
    }
    let (new_leader, _) = named_leader_other_than(&bed.apis, &leader).await;
    {
        let bed = bed.clone();
        blocking(move || bed.run(&["wait-healthy", "60"])).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let switchover_failed = load.failures() - failed_before;
    let switchover_hold = *load.longest_write.lock().unwrap();
    assert!(
        load.first_ack_on(&new_leader, Instant::now() - Duration::from_secs(1))
            .is_some(),
        "no write on the new leader {new_leader} after the switchover"
    );

    // 2. kill -9 of the leader's postmaster: follow_ms from Patroni naming the new leader.
    let leader = new_leader;
    {
        let bed = bed.clone();
        let leader = leader.clone();
        blocking(move || bed.run(&["kill-pg", &leader])).await;
    }
    let (new_leader, named_at) = named_leader_other_than(&bed.apis, &leader).await;
    let follow = loop {
        if let Some(at) = load.first_ack_on(&new_leader, named_at) {
            break at.saturating_duration_since(named_at);
        }
        assert!(
            named_at.elapsed() < Duration::from_secs(15),
            "no write on {new_leader} 15 s after Patroni named it; errors {:?}",
            load.last_errors()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    {
        let bed = bed.clone();
        blocking(move || bed.run(&["wait-healthy", "60"])).await;
    }

    // 3. The leader's Patroni frozen, its PostgreSQL still writable: once another leader is
    // named, no write reaches the frozen one.
    let frozen = new_leader;
    {
        let bed = bed.clone();
        let frozen = frozen.clone();
        blocking(move || bed.run(&["freeze-patroni", &frozen])).await;
    }
    let (named, named_at) = named_leader_other_than(&bed.apis, &frozen).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_on_fenced = load
        .acks
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.node == frozen && a.at > named_at + Duration::from_millis(150))
        .count();
    let on_new = load.first_ack_on(&named, named_at).is_some();
    {
        let bed = bed.clone();
        let frozen = frozen.clone();
        blocking(move || bed.run(&["thaw-patroni", &frozen])).await;
    }

    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(15), t)
            .await
            .expect("a load task hung")
            .unwrap();
    }
    println!(
        "patroni follow_ms={} switchover_failed_requests={switchover_failed} \
         switchover_hold_ms={} writes_on_fenced={writes_on_fenced}",
        follow.as_millis(),
        switchover_hold.as_millis()
    );
    eprintln!(
        "writes ok {}, failed {}; reads ok {}, failed {}; last errors {:?}",
        load.acks.lock().unwrap().len(),
        load.failed_writes.load(Ordering::Relaxed),
        load.reads.load(Ordering::Relaxed),
        load.failed_reads.load(Ordering::Relaxed),
        load.last_errors()
    );
    assert_eq!(
        switchover_failed, 0,
        "requests failed during a planned switchover"
    );
    assert!(
        follow <= Duration::from_millis(500),
        "followed the new leader after {follow:?}"
    );
    assert_eq!(writes_on_fenced, 0, "writes reached the frozen old leader");
    assert!(on_new, "no write on {named} after the freeze");
    drop(cluster);
    blocking(move || drop(bed)).await;
}
