//! Timelines on real PostgreSQL 15 (the test bed: a primary and two streaming replicas): the
//! probe reads each server's timeline, a promoted replica starts a new one at once, the old
//! primary (still writable: nobody stopped it) is fenced for its older timeline and takes no
//! more writes, and read-your-writes tokens carry their timeline across the failover.

use std::time::{Duration, Instant};

use seawall::cluster::{AcquireOptions, Cluster};
use seawall::failover::HealthConfig;
use seawall::pool::Pool;
use seawall::sqlx::{current_token, probe, PgConnector, WalToken};
use seawall::testbed::PgCluster;
use seawall::ClusterEvent;
use sqlx::{Connection, PgConnection};

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap()
}

async fn port_of(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT inet_server_port()")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Waits up to 10 s for `done`, polling every 20 ms.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timelines_fence_the_old_primary_and_qualify_tokens() {
    let bed = tokio::task::spawn_blocking(|| PgCluster::start(2).expect("start the test bed"))
        .await
        .unwrap();
    let (old, r0, r1) = (bed.primary(), bed.replicas()[0], bed.replicas()[1]);
    let urls: Vec<String> = (0..bed.len()).map(|i| bed.url(i).unwrap()).collect();
    let url = |i: usize| urls[i].clone();

    let mut conn = connect(&url(old)).await;
    sqlx::raw_sql("CREATE TABLE tl (id bigint PRIMARY KEY, port int DEFAULT inet_server_port())")
        .execute(&mut conn)
        .await
        .unwrap();
    let before = current_token(&mut conn).await.unwrap();
    assert_eq!(before.timeline(), Some(1), "{before}");
    assert_eq!(before.to_string().parse::<WalToken>(), Ok(before));
    for i in [r0, r1] {
        let mut c = connect(&url(i)).await;
        eventually("replicas stream timeline 1", async || {
            probe::timeline(&mut c).await.unwrap() == Some(1)
        })
        .await;
        assert_eq!(probe::status(&mut c).await.unwrap().timeline, Some(1));
    }

    let pool = |name: &str, i: usize| {
        Pool::builder(PgConnector::from_url(&url(i)).unwrap())
            .name(name)
            .max_size(4)
            .connect_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let cluster = Cluster::builder()
        .primary("old", pool("old", old))
        .replica("r0", pool("r0", r0))
        .replica("r1", pool("r1", r1))
        .health(
            HealthConfig::default()
                .with_interval(Some(Duration::from_millis(100)))
                .with_timeout(Duration::from_millis(500)),
        )
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut events = cluster.subscribe();
    let mut log = cluster.subscribe();
    let mut write = async |id: i64| -> i32 {
        let mut c = match cluster.write().await {
            Ok(c) => c,
            Err(e) => {
                let events: Vec<_> = std::iter::from_fn(|| log.try_recv().ok()).collect();
                panic!(
                    "write {id}: {e}\n{}\nevents: {events:?}",
                    cluster.snapshot()
                );
            }
        };
        sqlx::query("INSERT INTO tl (id) VALUES ($1)")
            .bind(id)
            .execute(&mut *c)
            .await
            .unwrap();
        port_of(&mut c).await
    };
    let old_port = i32::from(bed.port(old).unwrap());
    let new_port = i32::from(bed.port(r0).unwrap());
    assert_eq!(write(1).await, old_port);

    // r0 promoted behind seawall's back; the old primary keeps running, writable.
    let promoted = tokio::task::spawn_blocking(move || {
        bed.promote(r0).unwrap();
        bed
    });
    let bed = promoted.await.unwrap();
    let promoted_at = Instant::now();
    let mut c = connect(&url(r0)).await;
    let after = current_token(&mut c).await.unwrap();
    assert_eq!(after.timeline(), Some(2), "{after}");
    assert_eq!(probe::timeline(&mut c).await.unwrap(), Some(2));
    let mut c_old = connect(&url(old)).await;
    assert_eq!(probe::timeline(&mut c_old).await.unwrap(), Some(1));

    // Within a probe round or two, writes move to r0 and the old primary is fenced.
    let mut id = 100;
    let moved = loop {
        id += 1;
        if write(id).await == new_port {
            break promoted_at.elapsed();
        }
        assert!(
            promoted_at.elapsed() < Duration::from_secs(5),
            "writes never moved"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(cluster.node("old").unwrap().is_fenced());
    for _ in 0..50 {
        id += 1;
        assert_eq!(write(id).await, new_port, "a write reached the old primary");
    }
    let on_old: i64 = sqlx::query_scalar("SELECT count(*) FROM tl WHERE id > 100")
        .fetch_one(&mut c_old)
        .await
        .unwrap();
    let mut stale = None;
    while let Ok(e) = events.try_recv() {
        if let ClusterEvent::StaleTimeline {
            node,
            timeline,
            highest,
        } = e
        {
            stale = Some((node.to_string(), timeline, highest));
        }
    }
    assert_eq!(stale, Some(("old".to_owned(), 1, 2)));
    eprintln!("writes moved {moved:?} after the promotion; {on_old} write(s) reached the old primary before that");

    // Tokens: r1 still follows the old primary (timeline 1). A token from timeline 2 cannot be
    // read there, and a token from timeline 1 now reads on the primary.
    let why = cluster
        .pick_read_node(&AcquireOptions::new().after(after))
        .unwrap_err();
    assert!(why.older_timeline >= 1, "{why:?}");
    let why = cluster
        .pick_read_node(&AcquireOptions::new().after(before))
        .unwrap_err();
    assert!(why.older_timeline >= 1, "{why:?}");
    let mut c = cluster
        .read_with(AcquireOptions::new().after(before))
        .await
        .unwrap();
    assert_eq!(port_of(&mut c).await, new_port);
    drop(c);

    // r1 follows r0: it streams timeline 2, and serves timeline-2 tokens once it replayed them.
    let bed = tokio::task::spawn_blocking(move || {
        bed.follow(r1, r0).unwrap();
        bed
    })
    .await
    .unwrap();
    let token = {
        let mut c = cluster.write().await.unwrap();
        current_token(&mut c).await.unwrap()
    };
    eventually("r1 serves a timeline-2 token", async || {
        cluster
            .pick_read_node(&AcquireOptions::new().after(token))
            .is_ok_and(|n| n.name() == "r1")
    })
    .await;
    assert_eq!(cluster.node("r1").unwrap().timeline(), Some(2));

    // A role that may not see `pg_stat_wal_receiver` gets the last restart point's timeline: a
    // lower bound, never a newer timeline than the replica's.
    {
        let mut c = connect(&url(r0)).await;
        sqlx::raw_sql("CREATE ROLE app LOGIN")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let app_url = url(r1).replacen("postgres@", "app@", 1);
    assert_ne!(app_url, url(r1), "the test bed's URL names no user");
    let mut app = None;
    eventually("the role reaches r1", async || {
        app = PgConnection::connect(&app_url).await.ok();
        app.is_some()
    })
    .await;
    let mut app = app.unwrap();
    let seen = probe::timeline(&mut app).await.unwrap();
    eprintln!("r1's timeline as an unprivileged role: {seen:?} (2 as a superuser)");
    assert!(matches!(seen, Some(1 | 2)), "{seen:?}");
    drop(cluster);
    tokio::task::spawn_blocking(move || drop(bed))
        .await
        .unwrap();
}
