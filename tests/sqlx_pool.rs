//! A seawall pool of sqlx connections against a real PostgreSQL primary and replica.
//!
//! The tests share one test bed (a primary and one replica) through a reference count: the
//! first test to need it starts it, the last one holding it stops it. Tests that overlap (the
//! harness runs them on several threads) share it; if they run one after another
//! (`--test-threads=1`), each starts its own, which is slower but still cleans up. A `static`
//! holding the cluster would never be dropped, leaving servers behind after the run.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use seawall::pool::Pool;
use seawall::sqlx::{probe, reset_session, PgConnector, Role, WalPosition};
use seawall::testbed::PgCluster;
use seawall::Error;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

fn cluster() -> Arc<PgCluster> {
    static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cluster) = shared.upgrade() {
        return cluster;
    }
    let started = Instant::now();
    let cluster = Arc::new(PgCluster::start(1).expect("start the PostgreSQL test bed"));
    eprintln!("test bed started in {:?}", started.elapsed());
    *shared = Arc::downgrade(&cluster);
    cluster
}

fn pool(url: &str, max_size: usize) -> Pool<PgConnector> {
    Pool::builder(PgConnector::from_url(url).unwrap())
        .max_size(max_size)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn backend_pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn text(conn: &mut PgConnection, sql: &'static str) -> String {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

#[tokio::test]
async fn queries_and_transactions_go_through_the_pool() {
    let cluster = cluster();
    let pool = pool(&cluster.primary_url(), 4);

    let mut conn = pool.get().await.unwrap();
    let two: i32 = sqlx::query_scalar("SELECT $1::int4 + 1")
        .bind(1)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(two, 2);
    conn.execute("CREATE TABLE tx_test (x int)").await.unwrap();

    // Committed, rolled back, and dropped without a decision (sqlx rolls back).
    let mut tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO tx_test VALUES (1)").await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO tx_test VALUES (2)").await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO tx_test VALUES (3)").await.unwrap();
    drop(tx);
    drop(conn);

    let mut other = pool.get().await.unwrap();
    let rows: Vec<i32> = sqlx::query_scalar("SELECT x FROM tx_test ORDER BY x")
        .fetch_all(&mut *other)
        .await
        .unwrap();
    assert_eq!(rows, vec![1]);
    assert!(!other.is_in_transaction());
}

#[tokio::test]
async fn reset_leaves_a_clean_session_for_the_next_borrower() {
    let cluster = cluster();
    // One connection, so the next borrower gets the same session.
    let pool = pool(&cluster.primary_url(), 1);
    let mut observer = PgConnection::connect(&cluster.primary_url()).await.unwrap();

    let mut conn = pool.get().await.unwrap();
    let pid = backend_pid(&mut conn).await;
    conn.execute(
        "DO $$ BEGIN CREATE ROLE reset_probe_role; \
         EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    )
    .await
    .unwrap();
    conn.execute("CREATE TABLE IF NOT EXISTS reset_rows (x int)")
        .await
        .unwrap();
    conn.execute("CREATE SEQUENCE IF NOT EXISTS reset_seq")
        .await
        .unwrap();
    conn.execute("GRANT SELECT, INSERT ON reset_rows TO reset_probe_role")
        .await
        .unwrap();
    // Every kind of session state, each by plain SQL (invisible to sqlx) ...
    for sql in [
        "SET search_path = pg_catalog",
        "SET statement_timeout = '1234s'",
        "SET application_name = 'dirty'",
        "CREATE TEMP TABLE reset_tmp (x int)",
        "SELECT pg_advisory_lock(4242)",
        "LISTEN reset_channel",
        "SELECT nextval('public.reset_seq')",
        "BEGIN",
        "DECLARE held CURSOR WITH HOLD FOR SELECT 1",
        "COMMIT",
        "SET ROLE reset_probe_role",
        // ... and finally an open transaction with an uncommitted row.
        "BEGIN",
        "INSERT INTO public.reset_rows VALUES (1)",
    ] {
        sqlx::raw_sql(sql).execute(&mut *conn).await.unwrap();
    }
    assert_eq!(
        text(&mut conn, "SELECT current_user::text").await,
        "reset_probe_role"
    );
    assert_eq!(
        leftovers(&mut conn).await,
        (false, 1, 1, 1),
        "the state is there"
    );
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(4242)")
        .fetch_one(&mut observer)
        .await
        .unwrap();
    assert!(!locked, "the borrower holds the lock");
    drop(conn); // returned: the reset runs in the background

    let mut conn = pool.get().await.unwrap();
    assert_eq!(backend_pid(&mut conn).await, pid, "same session");
    assert_eq!(
        text(&mut conn, "SELECT current_user::text").await,
        "postgres"
    );
    assert_eq!(
        text(&mut conn, "SELECT session_user::text").await,
        "postgres"
    );
    assert_eq!(
        text(&mut conn, "SHOW search_path").await,
        "\"$user\", public"
    );
    assert_eq!(text(&mut conn, "SHOW statement_timeout").await, "0");
    assert_eq!(text(&mut conn, "SHOW application_name").await, "");
    assert_eq!(leftovers(&mut conn).await, (true, 0, 0, 0), "and gone");
    let currval = sqlx::query("SELECT currval('public.reset_seq')")
        .fetch_one(&mut *conn)
        .await;
    assert!(currval.is_err(), "sequence state discarded: {currval:?}");
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(4242)")
        .fetch_one(&mut observer)
        .await
        .unwrap();
    assert!(locked, "the advisory lock was released");
    let in_tx: Option<String> = sqlx::query_scalar("SELECT txid_current_if_assigned()::text")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(in_tx, None, "no transaction carried over");
    drop(conn);

    // A failed transaction (refuses everything but ROLLBACK) is reset too.
    let mut conn = pool.get().await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await.unwrap();
    assert!(sqlx::raw_sql("SELECT 1/0")
        .execute(&mut *conn)
        .await
        .is_err());
    drop(conn);
    let mut conn = pool.get().await.unwrap();
    assert_eq!(
        backend_pid(&mut conn).await,
        pid,
        "same session, still usable"
    );
    assert_eq!(text(&mut conn, "SELECT 'clean'").await, "clean");
    assert_eq!(pool.state().totals.closed, 0, "no connection was discarded");
}

/// Temp table missing?, channels listened to, held cursors, rows in `reset_rows`.
async fn leftovers(conn: &mut PgConnection) -> (bool, i64, i64, i64) {
    sqlx::query_as(
        "SELECT to_regclass('pg_temp.reset_tmp') IS NULL, \
         (SELECT count(*) FROM pg_listening_channels()), \
         (SELECT count(*) FROM pg_cursors WHERE name = 'held'), \
         (SELECT count(*) FROM public.reset_rows)",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn prepared_statements_survive_the_reset() {
    let cluster = cluster();
    let pool = pool(&cluster.primary_url(), 1);
    let query = "SELECT $1::int4 * 2";

    let mut conn = pool.get().await.unwrap();
    let pid = backend_pid(&mut conn).await;
    let v: i32 = sqlx::query_scalar(query)
        .bind(21)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(v, 42);
    let cached = conn.cached_statements_size();
    assert!(cached >= 1);
    drop(conn);

    let mut conn = pool.get().await.unwrap();
    assert_eq!(backend_pid(&mut conn).await, pid);
    assert_eq!(conn.cached_statements_size(), cached, "sqlx's cache kept");
    let on_server: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_prepared_statements")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(
        on_server >= cached as i64,
        "{on_server} on the server, {cached} cached"
    );
    let v: i32 = sqlx::query_scalar(query)
        .bind(5)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(v, 10, "the cached statement still runs");

    // What DISCARD ALL would have done: the cached statement is gone behind sqlx's back.
    conn.execute(sqlx::raw_sql("DISCARD ALL")).await.unwrap();
    let broken = sqlx::query_scalar::<_, i32>(query)
        .bind(5)
        .fetch_one(&mut *conn)
        .await;
    let e = broken.unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    conn.discard();
}

#[tokio::test]
async fn probes_report_roles_positions_and_lag() {
    let cluster = cluster();
    let replica_index = cluster.replicas()[0];
    let primary_pool = pool(&cluster.primary_url(), 2);
    let replica_pool = pool(&cluster.url(replica_index).unwrap(), 2);
    let mut primary = primary_pool.get().await.unwrap();
    let mut replica = replica_pool.get().await.unwrap();

    assert_eq!(probe::role(&mut primary).await.unwrap(), Role::Primary);
    assert_eq!(probe::role(&mut replica).await.unwrap(), Role::Replica);
    let status = probe::status(&mut primary).await.unwrap();
    assert_eq!(status.role, Role::Primary);
    assert_eq!((status.received, status.replay_age), (None, None));

    // A write moves the primary's position; the replica replays up to it.
    let before = probe::wal_position(&mut primary).await.unwrap();
    primary
        .execute("CREATE TABLE probe_rows AS SELECT generate_series(1, 1000) AS x")
        .await
        .unwrap();
    let written = probe::wal_position(&mut primary).await.unwrap();
    assert!(written > before, "{written} after {before}");
    let text: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&mut *primary)
        .await
        .unwrap();
    assert!(text.parse::<WalPosition>().unwrap() >= written);
    let caught_up = wait_replayed(&mut replica, written).await;
    eprintln!("replica replayed {written} after {caught_up:?}");
    let status = probe::status(&mut replica).await.unwrap();
    assert_eq!(status.role, Role::Replica);
    assert_eq!(status.bytes_behind(written), 0);
    assert!(status.received.unwrap() >= status.position);
    assert!(status.replay_age.is_some(), "a transaction was replayed");

    // Paused replay: received moves on, the replay position does not: real lag, measured.
    cluster.pause_replay(replica_index).unwrap();
    let paused_at = probe::wal_position(&mut replica).await.unwrap();
    primary
        .execute("INSERT INTO probe_rows SELECT generate_series(1, 1000)")
        .await
        .unwrap();
    let written = probe::wal_position(&mut primary).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let lagging = loop {
        let s = probe::status(&mut replica).await.unwrap();
        if s.received.is_some_and(|r| r >= written) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "replica never received {written}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        lagging.position, paused_at,
        "replay stands still while paused"
    );
    assert!(lagging.bytes_behind(written) > 0, "{lagging:?}");
    assert_eq!(
        lagging.replay_backlog(),
        Some(lagging.received.unwrap().bytes_since(lagging.position))
    );
    assert!(lagging.replay_backlog().unwrap() > 0, "{lagging:?}");
    eprintln!(
        "paused replica: {} bytes behind, backlog {:?}, replay age {:?}",
        lagging.bytes_behind(written),
        lagging.replay_backlog(),
        lagging.replay_age
    );
    cluster.resume_replay(replica_index).unwrap();
    wait_replayed(&mut replica, written).await;
}

async fn wait_replayed(replica: &mut PgConnection, target: WalPosition) -> Duration {
    let started = Instant::now();
    loop {
        let at = probe::wal_position(replica).await.unwrap();
        if at >= target {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "replica stuck at {at}, waiting for {target}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn passwords_never_show_in_debug_or_errors() {
    let cluster = cluster();
    let port = cluster.port(cluster.primary()).unwrap();
    // Trust authentication ignores the password: the connection works.
    let url = format!("postgres://postgres:Sup3rS3cret@127.0.0.1:{port}/postgres");
    let connector = PgConnector::from_url(&url).unwrap();
    let shown = format!("{connector:?}");
    assert!(!shown.contains("Sup3rS3cret"), "{shown}");
    assert!(shown.contains(&port.to_string()), "{shown}");
    let pool = Pool::builder(connector).name("secret").build().unwrap();
    let conn = pool.get().await.unwrap();
    let shown = format!("{pool:?} {conn:?} {:?}", pool.connector());
    assert!(!shown.contains("Sup3rS3cret"), "{shown}");
    drop(conn);

    // A server that is not there: the connect error says why, without the password.
    let dead = format!(
        "postgres://postgres:Sup3rS3cret@127.0.0.1:{}/postgres",
        closed_port()
    );
    let pool = Pool::builder(PgConnector::from_url(&dead).unwrap())
        .acquire_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let err = pool.get().await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, Error::Timeout(_)), "{shown}");
    assert!(!shown.contains("Sup3rS3cret"), "{shown}");
    assert!(
        shown.contains("cannot connect") || shown.contains("connecting"),
        "{shown}"
    );
}

/// A loopback port with nobody listening.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `reset_session` restores what a borrower changed (its cost is measured by the `reset` bench).
#[tokio::test]
async fn reset_session_restores_the_defaults() {
    let cluster = cluster();
    let mut conn = PgConnection::connect(&cluster.primary_url()).await.unwrap();
    conn.execute("SET work_mem = '7MB'").await.unwrap();
    reset_session(&mut conn).await.unwrap();
    let work_mem: String = sqlx::query_scalar("SHOW work_mem")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(work_mem, "4MB", "the reset restored the default");
    // Dynamic SQL needs an explicit promise that it is safe.
    let one: i32 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT {}", 1)))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
}
