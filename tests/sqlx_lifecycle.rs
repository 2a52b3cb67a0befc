//! What production needs around a pool, on real PostgreSQL (a primary and two replicas): a
//! password provider called for every new connection, `Cluster::close` leaving no server
//! session behind (checked in `pg_stat_activity` on every server), and `Cluster::ready`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seawall::cluster::{Cluster, NotReady};
use seawall::pool::Pool;
use seawall::sqlx::{cause, PgConnector};
use seawall::testbed::PgCluster;
use seawall::Error;

fn with_name(url: &str, name: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}

/// Sessions named `name` on server `i` of the bed.
fn sessions(bed: &PgCluster, i: usize, name: &str) -> usize {
    bed.query(
        i,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'"),
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap()
}

#[tokio::test]
async fn the_password_provider_is_called_for_every_new_connection() {
    let bed = PgCluster::start(0).expect("start the PostgreSQL test bed");
    let calls = Arc::new(AtomicUsize::new(0));
    let connector = PgConnector::from_url(&bed.primary_url())
        .unwrap()
        .password_provider({
            let calls = calls.clone();
            move || {
                let calls = calls.clone();
                async move {
                    // A token that changes every time, as a cloud IAM token would.
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    Ok(format!("token-{n}"))
                }
            }
        });
    let pool = Pool::builder(connector)
        .name("primary")
        .max_size(3)
        .build()
        .unwrap();
    let cluster = Cluster::builder()
        .primary("primary", pool)
        .probe_interval(None)
        .build()
        .unwrap();
    // Three statements at once: three connections, three calls; reused after that.
    let conns = [
        cluster.write().await.unwrap(),
        cluster.write().await.unwrap(),
        cluster.write().await.unwrap(),
    ];
    drop(conns);
    for _ in 0..20 {
        sqlx::query("SELECT 1").execute(&cluster).await.unwrap();
    }
    let created = cluster
        .node("primary")
        .unwrap()
        .pool()
        .state()
        .totals
        .created;
    assert_eq!(created, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "one call per connect");

    // A provider that fails fails the connect, with its reason.
    let failing = PgConnector::from_url(&bed.primary_url())
        .unwrap()
        .password_provider(|| async { Err("the secrets agent is unreachable".into()) });
    let cluster = Cluster::builder()
        .primary(
            "primary",
            Pool::builder(failing).name("primary").build().unwrap(),
        )
        .probe_interval(None)
        .acquire_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let e = sqlx::query("SELECT 1").execute(&cluster).await.unwrap_err();
    let seawall_error = cause(&e).expect("seawall's own error");
    assert!(
        seawall_error
            .to_string()
            .contains("the secrets agent is unreachable"),
        "{seawall_error}"
    );
}

#[tokio::test]
async fn close_leaves_no_session_on_any_server() {
    let bed = PgCluster::start(2).expect("start the PostgreSQL test bed");
    let name = "seawall_close_test";
    let pool = |node: &str, url: String| {
        Pool::builder(PgConnector::from_url(&with_name(&url, name)).unwrap())
            .name(node)
            .max_size(4)
            .build()
            .unwrap()
    };
    let mut builder = Cluster::builder()
        .primary("primary", pool("primary", bed.primary_url()))
        .probe_interval(Some(Duration::from_millis(200)));
    for i in bed.replicas() {
        builder = builder.replica(format!("replica-{i}"), pool("replica", bed.url(i).unwrap()));
    }
    let cluster = builder.build().unwrap();
    assert_eq!(cluster.ready(), Ok(()));

    // Work on every node, probes running, a handle still out when close begins.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                sqlx::query("SELECT pg_sleep(0.001)")
                    .execute(&cluster)
                    .await
                    .unwrap();
                sqlx::query("CREATE TEMP TABLE IF NOT EXISTS t (x int)")
                    .execute(&cluster)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let servers: Vec<usize> = (0..bed.len()).collect();
    let open: usize = servers.iter().map(|&i| sessions(&bed, i, name)).sum();
    assert!(open >= 3, "sessions were open before close: {open}");
    let held = cluster.write().await.unwrap();
    let closing = tokio::spawn({
        let cluster = cluster.clone();
        async move { cluster.close().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !closing.is_finished(),
        "close waits for the handle still out"
    );
    assert_eq!(cluster.ready(), Err(NotReady::Closed));
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), closing)
        .await
        .expect("close returns once everything is closed")
        .unwrap();

    // The servers see every session gone (their own bookkeeping may take a moment).
    let started = Instant::now();
    loop {
        let left: Vec<usize> = servers.iter().map(|&i| sessions(&bed, i, name)).collect();
        if left.iter().all(|&n| n == 0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "sessions left after close: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And nothing runs any more.
    let e = sqlx::query("SELECT 1").execute(&cluster).await.unwrap_err();
    assert!(matches!(cause(&e), Some(Error::Closed { .. })), "{e:?}");
}
