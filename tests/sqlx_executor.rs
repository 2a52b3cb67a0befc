//! `sqlx::Executor` for a cluster on real PostgreSQL (a primary and two streaming replicas):
//! plain sqlx queries routed by statement (checked by the servers: `pg_is_in_recovery()`),
//! refused writes retried on the primary and learned, transactions, streams, errors, the
//! wrapped-`PgPool` mode, and session hygiene: for each kind of session state, a statement
//! through the Executor that leaves it, and the next borrower of the same connection that must
//! not see it.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use seawall::classify::Classifier;
use seawall::cluster::Cluster;
use seawall::pool::Pool;
use seawall::sqlx::{cause, cluster_from_pools, PgConnector};
use seawall::testbed::PgCluster;
use seawall::Error;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Row};

fn shared_bed() -> Arc<PgCluster> {
    static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(bed) = shared.upgrade() {
        return bed;
    }
    let bed = Arc::new(PgCluster::start(2).expect("start the PostgreSQL test bed"));
    *shared = Arc::downgrade(&bed);
    bed
}

fn pool(name: &str, url: &str, max_size: usize) -> Pool<PgConnector> {
    Pool::builder(PgConnector::from_url(url).unwrap())
        .name(name)
        .max_size(max_size)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The bed's primary and both replicas, pools of `size`, probed only on demand.
fn cluster(bed: &PgCluster, size: usize, classifier: Classifier) -> Cluster<PgConnector> {
    let mut builder = Cluster::builder()
        .primary("primary", pool("primary", &bed.primary_url(), size))
        .classifier(classifier)
        .probe_interval(None)
        .acquire_timeout(Duration::from_secs(10));
    for i in bed.replicas() {
        let name = format!("replica-{i}");
        builder = builder.replica(name.clone(), pool(&name, &bed.url(i).unwrap(), size));
    }
    builder.build().unwrap()
}

/// The primary alone, one connection: every borrower gets the same session.
fn one_connection(bed: &PgCluster) -> Cluster<PgConnector> {
    Cluster::builder()
        .primary("primary", pool("primary", &bed.primary_url(), 1))
        .probe_interval(None)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn create_table(cluster: &Cluster<PgConnector>, table: &str) {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int PRIMARY KEY, port int)"
    )))
    .execute(cluster)
    .await
    .unwrap();
}

#[tokio::test]
async fn plain_sqlx_queries_are_routed_by_statement() {
    let bed = shared_bed();
    let cluster = cluster(&bed, 4, Classifier::new());
    let primary_port = i32::from(bed.port(bed.primary()).unwrap());
    create_table(&cluster, "routed_exec").await;

    // A write, through `&cluster`, lands on the primary (the server says so).
    let (in_recovery, port): (bool, i32) = sqlx::query_as(
        "INSERT INTO routed_exec VALUES ($1, inet_server_port()) \
         RETURNING pg_is_in_recovery(), port",
    )
    .bind(1)
    .fetch_one(&cluster)
    .await
    .unwrap();
    assert_eq!((in_recovery, port), (false, primary_port));
    let done = sqlx::query("UPDATE routed_exec SET port = port WHERE id = $1")
        .bind(1)
        .execute(&cluster)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);

    // Reads go to the replicas: query, query_as, query_scalar, fetch_all, fetch_optional.
    for _ in 0..10 {
        let on_replica: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&cluster)
            .await
            .unwrap();
        assert!(on_replica, "a read ran on the primary");
    }
    let rows = sqlx::query("SELECT g, pg_is_in_recovery() FROM generate_series(1, 5) g")
        .fetch_all(&cluster)
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.get::<bool, _>(1)));
    let none: Option<(i32,)> = sqlx::query_as("SELECT 1 WHERE false")
        .fetch_optional(&cluster)
        .await
        .unwrap();
    assert_eq!(none, None);

    let snapshot = cluster.snapshot();
    assert_eq!(snapshot.routes.reads_to_replica, 12, "{snapshot:#?}");
    // The statements are in the statistics, with their rows.
    let stats = cluster.statements();
    let generate = stats
        .iter()
        .find(|s| s.statement.contains("generate_series"))
        .expect("the statement is in the statistics");
    assert_eq!((generate.calls, generate.rows), (1, Some(5)));
}

#[tokio::test]
async fn a_write_a_replica_refuses_runs_on_the_primary_and_is_learned() {
    let bed = shared_bed();
    // The application wrongly says this function is read-only.
    let cluster = cluster(
        &bed,
        2,
        Classifier::new().with_read_only_function("bump_exec"),
    );
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS bumps_exec (n int); \
         CREATE OR REPLACE FUNCTION bump_exec(k int) RETURNS boolean LANGUAGE sql AS \
         $$ INSERT INTO bumps_exec VALUES (k); SELECT pg_is_in_recovery() $$",
    )
    .execute(&cluster)
    .await
    .unwrap();
    bed.wait_for_value(
        bed.replicas()[0],
        "SELECT count(*) FROM pg_proc WHERE proname = 'bump_exec'",
        "1",
    )
    .unwrap();
    bed.wait_for_value(
        bed.replicas()[1],
        "SELECT count(*) FROM pg_proc WHERE proname = 'bump_exec'",
        "1",
    )
    .unwrap();

    let in_recovery: bool = sqlx::query_scalar("SELECT bump_exec($1)")
        .bind(7)
        .fetch_one(&cluster)
        .await
        .unwrap();
    assert!(!in_recovery, "it ran on the primary in the end");
    let routes = cluster.snapshot().routes;
    assert_eq!((routes.retried_on_primary, routes.learned_writes), (1, 1));
    // Learned: the next one goes straight to the primary.
    let in_recovery: bool = sqlx::query_scalar("SELECT bump_exec($1)")
        .bind(8)
        .fetch_one(&cluster)
        .await
        .unwrap();
    assert!(!in_recovery);
    assert_eq!(cluster.snapshot().routes.retried_on_primary, 1);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM bumps_exec WHERE n IN (7, 8)")
        .fetch_one(&mut *cluster.write().await.unwrap())
        .await
        .unwrap();
    assert_eq!(n, 2, "each ran exactly once");
}

#[tokio::test]
async fn transactions_stay_on_one_primary_connection() {
    let bed = shared_bed();
    let cluster = cluster(&bed, 4, Classifier::new());
    create_table(&cluster, "tx_exec").await;

    let mut tx = cluster.begin().await.unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert!(
        !in_recovery,
        "a read inside a transaction stays on the primary"
    );
    sqlx::query("INSERT INTO tx_exec VALUES (1, 0)")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = cluster.begin().await.unwrap();
    sqlx::query("INSERT INTO tx_exec VALUES (2, 0)")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    {
        let mut tx = cluster.begin().await.unwrap();
        sqlx::query("INSERT INTO tx_exec VALUES (3, 0)")
            .execute(&mut tx)
            .await
            .unwrap();
        // Dropped without a commit: rolled back before its connection is reused.
    }
    // `&mut *tx` is the PgConnection, as with sqlx's own transactions.
    let mut tx = cluster.begin().await.unwrap();
    sqlx::query("INSERT INTO tx_exec VALUES (4, 0)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM tx_exec ORDER BY id")
        .fetch_all(&mut *cluster.write().await.unwrap())
        .await
        .unwrap();
    assert_eq!(ids, [1, 4]);

    // A read-only transaction runs on a replica and refuses writes (once the table is there).
    for replica in bed.replicas() {
        bed.wait_for_value(replica, "SELECT count(*) FROM tx_exec", "2")
            .unwrap();
    }
    let mut tx = cluster.begin_read_only().await.unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert!(in_recovery);
    let refused = sqlx::query("INSERT INTO tx_exec VALUES (5, 0)")
        .execute(&mut tx)
        .await
        .unwrap_err();
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("25006")
    );
}

#[tokio::test]
async fn streams_and_errors_are_sqlx_own() {
    let bed = shared_bed();
    let cluster = cluster(&bed, 2, Classifier::new());
    create_table(&cluster, "errors_exec").await;

    // A stream of many rows, read to the end; then one dropped after three rows.
    use futures_util::TryStreamExt;
    let n = sqlx::query("SELECT g FROM generate_series(1, 10000) g")
        .fetch(&cluster)
        .try_fold(0_u64, |n, _| async move { Ok(n + 1) })
        .await
        .unwrap();
    assert_eq!(n, 10_000);
    {
        let mut rows = sqlx::query("SELECT g FROM generate_series(1, 100000) g").fetch(&cluster);
        for _ in 0..3 {
            rows.try_next().await.unwrap().unwrap();
        }
    }
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&cluster)
        .await
        .unwrap();
    assert_eq!(one, 1);

    // The database's error is sqlx's own, SQLSTATE and all; no seawall cause.
    sqlx::query("INSERT INTO errors_exec VALUES (1, 0)")
        .execute(&cluster)
        .await
        .unwrap();
    let duplicate = sqlx::query("INSERT INTO errors_exec VALUES (1, 0)")
        .execute(&cluster)
        .await
        .unwrap_err();
    let db = duplicate.as_database_error().expect("a database error");
    assert!(db.is_unique_violation(), "{duplicate}");
    assert!(cause(&duplicate).is_none());
    assert!(matches!(
        sqlx::query("SELECT 1 WHERE false")
            .fetch_one(&cluster)
            .await
            .unwrap_err(),
        sqlx::Error::RowNotFound
    ));

    // seawall's own refusal carries its cause: here an acquire that found the only connection
    // taken until its deadline (shed from the admission queue at the deadline).
    let tiny = Cluster::builder()
        .primary("primary", pool("primary", &bed.primary_url(), 1))
        .probe_interval(None)
        .acquire_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let held = tiny.write().await.unwrap();
    let timed_out = sqlx::query("SELECT 1").execute(&tiny).await.unwrap_err();
    assert!(
        matches!(
            cause(&timed_out),
            Some(Error::Timeout(_) | Error::Overloaded(_))
        ),
        "{timed_out:?}"
    );
    drop(held);
}

#[tokio::test]
async fn the_same_code_runs_on_wrapped_pools() {
    let bed = shared_bed();
    let pg = |url: String| {
        PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy(&url)
            .unwrap()
    };
    let replicas = bed
        .replicas()
        .into_iter()
        .map(|i| (format!("replica-{i}"), pg(bed.url(i).unwrap())));
    let cluster = cluster_from_pools(pg(bed.primary_url()), replicas)
        .unwrap()
        .probe_interval(None)
        .build()
        .unwrap();
    let on_replica: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&cluster)
        .await
        .unwrap();
    assert!(on_replica);
    let mut tx = cluster.begin().await.unwrap();
    let on_replica: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert!(!on_replica);
    tx.commit().await.unwrap();
    // A pinned handle is an executor too, at the same depth in both modes.
    let mut conn = cluster.write().await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    // And an `Acquire`, for code written against sqlx's trait.
    assert_eq!(generic_acquire(&mut conn).await, 2);
}

async fn generic_acquire<'c>(db: impl sqlx::Acquire<'c, Database = sqlx::Postgres>) -> i32 {
    let mut tx = db.begin().await.unwrap();
    let two: i32 = sqlx::query_scalar("SELECT 2")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    two
}

/// One kind of session state: what leaves it, and what the next borrower sees (the same
/// answer as on a fresh session).
struct Dirt {
    name: &'static str,
    leave: &'static str,
    check: &'static str,
    /// The connection is closed rather than reset (a new backend serves the next borrower).
    closed: bool,
}

const DIRT: &[Dirt] = &[
    Dirt {
        name: "SET",
        leave: "SET search_path TO leaked, public",
        check: "SELECT current_setting('search_path')",
        closed: false,
    },
    Dirt {
        name: "set_config",
        leave: "SELECT set_config('application_name', 'leaked', false)",
        check: "SELECT current_setting('application_name')",
        closed: false,
    },
    Dirt {
        name: "SET ROLE",
        leave: "SET ROLE pg_read_all_data",
        check: "SELECT current_user::text",
        closed: false,
    },
    Dirt {
        name: "LISTEN",
        leave: "LISTEN leaked",
        check: "SELECT count(*)::text FROM pg_listening_channels()",
        closed: false,
    },
    Dirt {
        name: "temporary table",
        leave: "CREATE TEMP TABLE leaked (x int)",
        check: "SELECT (to_regclass('pg_temp.leaked') IS NOT NULL)::text",
        closed: false,
    },
    Dirt {
        name: "advisory lock",
        leave: "SELECT pg_advisory_lock(4242)",
        check: "SELECT count(*)::text FROM pg_locks \
                WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        closed: false,
    },
    Dirt {
        name: "cursor WITH HOLD",
        leave: "DECLARE leaked CURSOR WITH HOLD FOR SELECT 1",
        check: "SELECT count(*)::text FROM pg_cursors",
        closed: false,
    },
    Dirt {
        name: "open transaction",
        leave: "BEGIN; SET LOCAL application_name = 'leaked'",
        check: "SELECT current_setting('application_name')",
        closed: false,
    },
    Dirt {
        name: "PREPARE",
        leave: "PREPARE leaked AS SELECT 1",
        check: "SELECT count(*)::text FROM pg_prepared_statements WHERE name = 'leaked'",
        closed: true,
    },
];

#[tokio::test]
async fn no_session_state_reaches_the_next_borrower() {
    let bed = shared_bed();
    let cluster = one_connection(&bed);
    let pid = || async {
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&cluster)
            .await
            .unwrap()
    };
    for dirt in DIRT {
        let check = || async {
            sqlx::query_scalar::<_, String>(dirt.check)
                .fetch_one(&cluster)
                .await
                .unwrap()
        };
        let clean = check().await;
        let before = pid().await;
        sqlx::raw_sql(dirt.leave).execute(&cluster).await.unwrap();
        // The next borrower, on the same (one) connection or its replacement.
        let seen = check().await;
        assert_eq!(seen, clean, "{}: the next borrower saw it", dirt.name);
        let after = pid().await;
        if dirt.closed {
            assert_ne!(before, after, "{}: closed, not reused", dirt.name);
        } else {
            assert_eq!(before, after, "{}: reset in place, not closed", dirt.name);
        }
    }
    // Reaching the PgConnection itself makes the session unknown: the full reset.
    let mut conn = cluster.write().await.unwrap();
    sqlx::query("SET search_path TO raw_leak")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(&cluster)
        .await
        .unwrap();
    assert!(!path.contains("raw_leak"), "{path}");
}

#[tokio::test]
async fn only_dirtied_sessions_are_reset() {
    let bed = shared_bed();
    let cluster = one_connection(&bed);
    let resets = || {
        cluster
            .node("primary")
            .unwrap()
            .pool()
            .state()
            .totals
            .resets
    };
    // Reads and plain writes leave nothing: no reset round trip on return.
    create_table(&cluster, "clean_exec").await;
    for i in 0..20 {
        sqlx::query_scalar::<_, i32>("SELECT $1")
            .bind(i)
            .fetch_one(&cluster)
            .await
            .unwrap();
        sqlx::query("INSERT INTO clean_exec VALUES ($1, 0)")
            .bind(i)
            .execute(&cluster)
            .await
            .unwrap();
    }
    let mut tx = cluster.begin().await.unwrap();
    sqlx::query("UPDATE clean_exec SET port = 1")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(resets(), 0, "clean sessions were reset");
    // A statement that leaves state: one reset.
    sqlx::query("SET work_mem = '8MB'")
        .execute(&cluster)
        .await
        .unwrap();
    let work_mem: String = sqlx::query_scalar("SHOW work_mem")
        .fetch_one(&cluster)
        .await
        .unwrap();
    assert_ne!(work_mem, "8MB");
    assert_eq!(resets(), 1);
}
