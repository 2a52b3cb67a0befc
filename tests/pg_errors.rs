//! Errors that must name the root cause, reproduced on the real test bed the way an
//! application meets them (issue 15, item 7): a wrong password on the primary, a "primary" URL
//! that points at a replica, reads right after `build()` with a lag bound (lag not known yet),
//! and a busy replica told apart from an unreachable one. Each error's text is checked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use seawall::admission::AdmissionConfig;
use seawall::cluster::{AcquireOptions, Cluster};
use seawall::pool::Pool;
use seawall::sqlx::PgConnector;
use seawall::testbed::{PgCluster, StopMode};
use seawall::Error;

fn bed() -> Arc<PgCluster> {
    Arc::new(PgCluster::start(2).expect("start the PostgreSQL test bed"))
}

fn pool(name: &str, url: &str, size: usize) -> Pool<PgConnector> {
    Pool::builder(PgConnector::from_url(url).unwrap())
        .name(name)
        .max_size(size)
        .build()
        .unwrap()
}

#[tokio::test]
async fn each_error_names_its_root_cause() {
    let pg = bed();
    let port = |i: usize| pg.port(i).unwrap();

    // 1. A wrong password on the primary: the write's error names the node and the server's
    //    refusal, not only "no primary".
    pg.add_password_role(0, "app", "right").unwrap();
    let wrong = format!("postgres://app:wrong@127.0.0.1:{}/postgres", port(0));
    let cluster = Cluster::builder()
        .primary("primary", pool("primary", &wrong, 2))
        .acquire_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = cluster.write().await.unwrap_err();
    let text = err.to_string();
    println!("wrong password: {text}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(text.contains("`primary`"), "{text}");
    assert!(text.contains("password authentication failed"), "{text}");
    cluster.close().await;

    // 2. The "primary" URL points at a replica: the error says the node is a replica.
    let cluster = Cluster::builder()
        .primary("primary", pool("primary", &pg.url(1).unwrap(), 2))
        .acquire_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    cluster.probe_now().await;
    let err = cluster.write().await.unwrap_err();
    let text = err.to_string();
    println!("primary URL on a replica: {text}");
    assert!(matches!(err, Error::NoPrimary { .. }), "{text}");
    assert!(text.contains("`primary` (replica"), "{text}");
    cluster.close().await;

    // 3. Reads right after build() with a lag bound (the README's snippet): before the first
    //    probe the lag is not known; no read fails for it, and a replica-only read says "not
    //    known yet", not "lagging".
    let build = || {
        let mut b = Cluster::builder()
            .primary("primary", pool("primary", &pg.url(0).unwrap(), 4))
            .max_replica_lag(Some(Duration::from_secs(2)))
            .acquire_timeout(Duration::from_secs(2));
        for i in [1, 2] {
            let name = format!("replica-{i}");
            b = b.replica(name.clone(), pool(&name, &pg.url(i).unwrap(), 4));
        }
        b.build().unwrap()
    };
    let cluster = build();
    let err = cluster
        .read_with(AcquireOptions::new().replica_only())
        .await
        .unwrap_err();
    let text = err.to_string();
    println!("lag unknown: {text}");
    assert!(text.contains("2 with lag not known yet"), "{text}");
    assert!(!text.contains("lagging"), "{text}");
    cluster.close().await;
    let cluster = build();
    let mut failed = 0;
    for _ in 0..32 {
        failed += usize::from(cluster.read().await.is_err());
    }
    assert_eq!(failed, 0, "reads right after build()");
    cluster.close().await;

    // 4. A busy replica and an unreachable one, in one error.
    let cluster = Cluster::builder()
        .primary("primary", pool("primary", &pg.url(0).unwrap(), 1))
        .replica("replica-1", pool("replica-1", &pg.url(1).unwrap(), 1))
        .replica("replica-2", pool("replica-2", &pg.url(2).unwrap(), 1))
        .admission(AdmissionConfig {
            max_queue: 0,
            codel: None,
        })
        .probe_interval(None)
        .acquire_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    // replica-1 is busy: its only connection is held.
    let _held = cluster.on("replica-1").await.unwrap();
    // replica-2 is unreachable: stopped (its pool never connected).
    pg.stop_node(2, StopMode::Fast).unwrap();
    let err = cluster
        .read_with(AcquireOptions::new().replica_only())
        .await
        .unwrap_err();
    let text = err.to_string();
    println!("busy and unreachable: {text}");
    let Error::NoReplica(why) = &err else {
        panic!("{text}")
    };
    assert_eq!((why.refused, why.unreachable), (1, 1), "{text}");
    assert!(text.contains("1 busy (refused at once)"), "{text}");
    assert!(text.contains("1 unreachable (connects failing)"), "{text}");
    assert!(text.contains("`replica-2` (replica"), "{text}");
    assert!(text.contains("connect:"), "{text}");
    drop(_held);
    cluster.close().await;
}
