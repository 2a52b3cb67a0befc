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

/// A wrapped `PgPool` takes its password from the provider too (sqlx's own pool cannot rotate
/// one): with scram authentication on, a rotation plus the old sessions killed costs a few
/// failed statements at most, and every connection after it uses the new password.
#[tokio::test]
async fn a_wrapped_pool_rotates_its_password_without_a_restart() {
    use seawall::sqlx::PgPoolConnector;
    let bed = PgCluster::start(0).expect("start the PostgreSQL test bed");
    bed.add_password_role(0, "rotating", "v1").unwrap();
    let url = format!(
        "postgres://rotating:stale@127.0.0.1:{}/postgres",
        bed.port(0).unwrap()
    );
    let pg = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy(&url)
        .unwrap();
    // The password is checked: the URL's own is refused.
    let refused = sqlx::query("SELECT 1").execute(&pg).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("password authentication failed"),
        "{refused}"
    );

    let current = Arc::new(parking_lot::Mutex::new("v1".to_owned()));
    let calls = Arc::new(AtomicUsize::new(0));
    let connector = PgPoolConnector::new(pg).password_provider({
        let (current, calls) = (current.clone(), calls.clone());
        move || {
            let password = current.lock().clone();
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok(password) }
        }
    });
    let cluster = Cluster::builder()
        .primary(
            "primary",
            Pool::builder(connector)
                .name("primary")
                .max_size(2)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    for _ in 0..5 {
        sqlx::query("SELECT 1").execute(&cluster).await.unwrap();
    }
    let before = calls.load(Ordering::SeqCst);
    assert!(before >= 1, "the provider was never asked");

    // Rotate, and end every session that logged in with the old password.
    bed.query(0, "ALTER ROLE rotating PASSWORD 'v2'").unwrap();
    *current.lock() = "v2".to_owned();
    bed.query(
        0,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'rotating'",
    )
    .unwrap();
    let started = Instant::now();
    let mut failed = 0;
    let mut ok = 0;
    while ok < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no statement succeeded after the rotation ({failed} failed)"
        );
        match sqlx::query("SELECT 1").execute(&cluster).await {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                assert!(
                    !e.to_string().contains("password authentication failed"),
                    "a connect used the old password: {e}"
                );
            }
        }
    }
    println!("after the rotation: {failed} statements failed on killed sessions, then {ok} ok");
    assert!(failed <= 2, "{failed}");
    assert!(
        calls.load(Ordering::SeqCst) > before,
        "no new connect asked"
    );
    let sessions: usize = bed
        .query(
            0,
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'rotating'",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(sessions >= 1, "the new sessions are the rotated role's");
    cluster.close().await;
}
