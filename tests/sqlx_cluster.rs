//! A seawall cluster over a real PostgreSQL primary and two streaming replicas (the test bed):
//! routing checked by the servers themselves, lag-aware routing with real replay lag, session
//! hygiene, the classifier's corpus on a real replica, and the wrapped-`PgPool` mode.
//!
//! Most tests share one test bed through a reference count (see `tests/sqlx_pool.rs`); the lag
//! test pauses replay, so it starts its own to keep the others undisturbed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use seawall::classify::Route;
use seawall::cluster::{AcquireOptions, Cluster, Role};
use seawall::pool::Pool;
use seawall::sqlx::{cluster_from_pools, current_position, PgConnector, WalPosition};
use seawall::testbed::PgCluster;
use seawall::Error;
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Row};

fn shared_bed() -> Arc<PgCluster> {
    static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(bed) = shared.upgrade() {
        return bed;
    }
    let bed = Arc::new(start_bed());
    *shared = Arc::downgrade(&bed);
    bed
}

fn start_bed() -> PgCluster {
    let started = Instant::now();
    let bed = PgCluster::start(2).expect("start the PostgreSQL test bed");
    eprintln!(
        "test bed (primary + 2 replicas) started in {:?}",
        started.elapsed()
    );
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

/// A cluster over the bed's primary and the given replica nodes (named `replica-<index>`),
/// probed only when a test says so.
fn cluster(
    bed: &PgCluster,
    replicas: &[usize],
    size: usize,
    max_lag: Option<Duration>,
) -> Cluster<PgConnector> {
    let mut builder = Cluster::builder()
        .primary("primary", pool("primary", &bed.primary_url(), size))
        .max_replica_lag(max_lag)
        .probe_interval(None)
        .acquire_timeout(Duration::from_secs(10));
    for &i in replicas {
        let name = format!("replica-{i}");
        builder = builder.replica(name.clone(), pool(&name, &bed.url(i).unwrap(), size));
    }
    builder.build().unwrap()
}

/// `(pg_is_in_recovery(), inet_server_port())` of the server the connection is on.
async fn where_am_i(conn: &mut PgConnection) -> (bool, i32) {
    sqlx::query_as("SELECT pg_is_in_recovery(), inet_server_port()")
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn count(conn: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(conn)
        .await
        .unwrap()
}

fn port_of(bed: &PgCluster, node_name: &str) -> i32 {
    let i = match node_name {
        "primary" => bed.primary(),
        name => name.trim_start_matches("replica-").parse().unwrap(),
    };
    i32::from(bed.port(i).unwrap())
}

#[tokio::test]
async fn writes_and_transactions_on_the_primary_reads_on_replicas() {
    let bed = shared_bed();
    let cluster = cluster(&bed, &bed.replicas(), 4, None);
    let primary_port = port_of(&bed, "primary");

    let mut conn = cluster
        .route("CREATE TABLE routed (id int PRIMARY KEY, note text)")
        .await
        .unwrap();
    assert_eq!(conn.role(), Role::Primary);
    sqlx::raw_sql("CREATE TABLE routed (id int PRIMARY KEY, note text)")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);

    // The write reports, from inside the statement, where it ran.
    let insert =
        "INSERT INTO routed VALUES ($1, $2) RETURNING pg_is_in_recovery(), inet_server_port()";
    let mut conn = cluster.route(insert).await.unwrap();
    assert_eq!((conn.node_name(), conn.role()), ("primary", Role::Primary));
    let (in_recovery, port): (bool, i32) = sqlx::query_as(insert)
        .bind(1)
        .bind("single")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!((in_recovery, port), (false, primary_port));
    let written = current_position(&mut conn).await.unwrap();
    drop(conn);

    // Reads: replicas only. Held together, so the balancer spreads them over both.
    let read = "SELECT pg_is_in_recovery(), inet_server_port()";
    assert_eq!(cluster.classify(read).unwrap(), Route::Replica);
    let mut held = Vec::new();
    let mut ports = HashSet::new();
    for _ in 0..6 {
        let mut conn = cluster.route(read).await.unwrap();
        assert_eq!(conn.role(), Role::Replica, "{:#?}", cluster.snapshot());
        let (in_recovery, port): (bool, i32) =
            sqlx::query_as(read).fetch_one(&mut *conn).await.unwrap();
        assert!(in_recovery, "a read ran on a primary");
        assert_eq!(
            port,
            port_of(&bed, conn.node_name()),
            "{}",
            conn.node_name()
        );
        ports.insert(port);
        held.push(conn);
    }
    drop(held);
    assert_eq!(ports.len(), 2, "both replicas served reads: {ports:?}");

    // A transaction begun after `route("BEGIN")`: every statement on the primary, committed.
    let mut conn = cluster.route("BEGIN").await.unwrap();
    assert_eq!(conn.role(), Role::Primary);
    let mut tx = conn.begin().await.unwrap();
    for id in 2..=4 {
        sqlx::query("INSERT INTO routed VALUES ($1, 'tx')")
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(where_am_i(&mut tx).await, (false, primary_port));
    }
    sqlx::query("UPDATE routed SET note = 'tx-updated' WHERE id = 2")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drop(conn);

    // `write()`: a transaction rolled back leaves nothing.
    let mut conn = cluster.write().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("INSERT INTO routed VALUES (99, 'rolled back')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let rows: Vec<(i32, String)> = sqlx::query_as("SELECT id, note FROM routed ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let expected: Vec<(i32, String)> = [(1, "single"), (2, "tx-updated"), (3, "tx"), (4, "tx")]
        .into_iter()
        .map(|(i, s)| (i, s.to_owned()))
        .collect();
    assert_eq!(rows, expected);
    let committed = current_position(&mut conn).await.unwrap();
    assert!(committed > written);
    drop(conn);

    // And the replicas have them once they replayed the commit's position.
    for i in bed.replicas() {
        bed.wait_for_value(i, "SELECT count(*) FROM routed", "4")
            .unwrap();
    }
    cluster.probe_now().await;
    let mut conn = cluster
        .read_with(AcquireOptions::new().min_position(committed).replica_only())
        .await
        .unwrap();
    assert_eq!(count(&mut conn, "routed").await, 4);
}

#[tokio::test]
async fn lagging_replicas_are_skipped_until_they_catch_up() {
    let bed = tokio::task::spawn_blocking(start_bed).await.unwrap();
    let (paused, healthy) = (1, 2);
    let (paused_name, healthy_name) = ("replica-1", "replica-2");
    let max_lag = Duration::from_millis(250);
    bed.query(0, "CREATE TABLE lag_rows (id int, pad text)")
        .unwrap();
    for i in [paused, healthy] {
        bed.wait_for_value(i, "SELECT to_regclass('lag_rows') IS NOT NULL", "t")
            .unwrap();
    }
    // Clusters over both replicas and over the paused one alone, with and without a lag limit.
    let both_lag = cluster(&bed, &[paused, healthy], 2, Some(max_lag));
    let both = cluster(&bed, &[paused, healthy], 2, None);
    let alone_lag = cluster(&bed, &[paused], 2, Some(max_lag));
    let alone = cluster(&bed, &[paused], 2, None);
    let all = [&both_lag, &both, &alone_lag, &alone];
    let probe_all = || async {
        for c in all {
            c.probe_now().await;
        }
    };
    probe_all().await;
    let conn = alone_lag
        .read_with(AcquireOptions::new().replica_only())
        .await;
    assert_eq!(
        conn.unwrap().node_name(),
        paused_name,
        "caught up: eligible"
    );

    // Real lag: replay stops, the primary writes a few MB of WAL, the replica receives it.
    bed.pause_replay(paused).unwrap();
    tokio::time::sleep(max_lag * 2).await;
    let mut conn = both.write().await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO lag_rows SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let token = current_position(&mut conn).await.unwrap();
    drop(conn);
    bed.wait_for_value(healthy, "SELECT count(*) FROM lag_rows", "20000")
        .unwrap();
    let received = format!("SELECT pg_last_wal_receive_lsn() >= '{token}'::pg_lsn");
    bed.wait_for_value(paused, &received, "t").unwrap();
    probe_all().await;

    let snapshot = both.snapshot();
    let node = |name: &str| {
        snapshot
            .nodes
            .iter()
            .find(|n| &*n.name == name)
            .unwrap()
            .clone()
    };
    let (lagging, fine) = (node(paused_name), node(healthy_name));
    eprintln!(
        "paused replica: lag {:?}, replayed {} (token {token}); healthy: lag {:?}, replayed {}",
        lagging.replication_lag,
        WalPosition::new(lagging.replayed_position),
        fine.replication_lag,
        WalPosition::new(fine.replayed_position),
    );
    assert!(lagging.replication_lag.is_some_and(|lag| lag > max_lag));
    assert!(WalPosition::new(lagging.replayed_position) < token);
    assert_eq!(fine.replication_lag, Some(Duration::ZERO));
    assert!(WalPosition::new(fine.replayed_position) >= token);

    // With `max_replica_lag`, reads go to the healthy replica only ...
    for _ in 0..10 {
        let mut conn = both_lag.read().await.unwrap();
        assert_eq!(conn.node_name(), healthy_name);
        assert_eq!(where_am_i(&mut conn).await.1, port_of(&bed, healthy_name));
    }
    match alone_lag
        .read_with(AcquireOptions::new().replica_only())
        .await
    {
        Err(Error::NoReplica(why)) => assert_eq!((why.lagging, why.replicas), (1, 1), "{why}"),
        other => panic!("expected NoReplica, got {other:?}"),
    }

    // ... and without it, a read-your-writes token taken after the write does the same.
    let after_write = AcquireOptions::new().min_position(token);
    for _ in 0..10 {
        let mut conn = both.read_with(after_write).await.unwrap();
        assert_eq!(conn.node_name(), healthy_name);
        assert_eq!(
            count(&mut conn, "lag_rows").await,
            20000,
            "the write is visible"
        );
    }
    match alone.read_with(after_write.replica_only()).await {
        Err(Error::NoReplica(why)) => assert_eq!(why.behind_position, 1, "{why}"),
        other => panic!("expected NoReplica, got {other:?}"),
    }
    // Without the token the paused replica serves, and its data really is behind.
    let mut conn = alone
        .read_with(AcquireOptions::new().replica_only())
        .await
        .unwrap();
    assert_eq!(conn.node_name(), paused_name);
    assert_eq!(count(&mut conn, "lag_rows").await, 0, "replay is paused");
    drop(conn);
    // With the token and fallback allowed: the primary.
    let mut conn = alone.read_with(after_write).await.unwrap();
    assert_eq!(conn.role(), Role::Primary);
    assert_eq!(count(&mut conn, "lag_rows").await, 20000);
    drop(conn);

    // Replay resumes: after the next probe the replica is back for both kinds of read.
    let resumed = Instant::now();
    bed.resume_replay(paused).unwrap();
    bed.wait_for_value(paused, "SELECT count(*) FROM lag_rows", "20000")
        .unwrap();
    probe_all().await;
    eprintln!(
        "paused replica caught up and probed {:?} after resume",
        resumed.elapsed()
    );
    let conn = alone_lag
        .read_with(AcquireOptions::new().replica_only())
        .await;
    assert_eq!(conn.unwrap().node_name(), paused_name);
    let mut conn = alone.read_with(after_write.replica_only()).await.unwrap();
    assert_eq!(conn.node_name(), paused_name);
    assert_eq!(count(&mut conn, "lag_rows").await, 20000);
}

#[tokio::test]
async fn session_state_does_not_leak_to_the_next_borrower() {
    let bed = shared_bed();
    bed.query(
        bed.primary(),
        "DO $$ BEGIN CREATE ROLE leak_role; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
         CREATE TABLE IF NOT EXISTS leak_rows (x int); GRANT ALL ON leak_rows TO leak_role",
    )
    .unwrap();
    let replica = bed.replicas()[0];
    bed.wait_for_value(
        replica,
        "SELECT count(*) FROM pg_roles WHERE rolname = 'leak_role'",
        "1",
    )
    .unwrap();
    // One connection per node: the next borrower of a node gets the same session.
    let cluster = cluster(&bed, &[replica], 1, None);
    let replica_name = format!("replica-{replica}");

    for node in ["primary", replica_name.as_str()] {
        let mut conn = cluster.on(node).await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let mut dirt = vec!["SET ROLE leak_role", "SET statement_timeout = '4321s'"];
        if conn.role() == Role::Primary {
            dirt.push("CREATE TEMP TABLE leak_tmp (x int)");
        }
        // Left open, with an uncommitted row on the primary.
        dirt.push("BEGIN");
        if conn.role() == Role::Primary {
            dirt.push("INSERT INTO leak_rows VALUES (1)");
        }
        for sql in dirt {
            sqlx::raw_sql(sql).execute(&mut *conn).await.unwrap();
        }
        let user: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(user, "leak_role");
        drop(conn);

        let mut conn = cluster.on(node).await.unwrap();
        let (same_pid, user, timeout, tmp_gone, in_tx): (
            i32,
            String,
            String,
            bool,
            Option<String>,
        ) = sqlx::query_as(
            "SELECT pg_backend_pid(), current_user::text, current_setting('statement_timeout'), \
                 to_regclass('pg_temp.leak_tmp') IS NULL, txid_current_if_assigned()::text",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(same_pid, pid, "{node}: same session");
        assert_eq!(user, "postgres", "{node}: role reset");
        assert_eq!(timeout, "0", "{node}: settings reset");
        assert!(tmp_gone, "{node}: temp table dropped");
        assert_eq!(in_tx, None, "{node}: no transaction carried over");
        assert!(!conn.is_in_transaction(), "{node}");
        if conn.role() == Role::Primary {
            assert_eq!(
                count(&mut conn, "leak_rows").await,
                0,
                "uncommitted row rolled back"
            );
        }
        assert_eq!(
            conn.node().pool().state().totals.closed,
            0,
            "{node}: nothing discarded"
        );
    }
}

/// The classifier's corpus (`tests/data/classify_corpus.sql`): `(label, sql)` per case.
fn corpus() -> Vec<(String, String)> {
    let mut cases: Vec<(String, String)> = Vec::new();
    for line in include_str!("data/classify_corpus.sql").lines() {
        if let Some(label) = line.strip_prefix("-- @") {
            cases.push((label.trim().to_owned(), String::new()));
        } else if line.starts_with("-- ") || line.trim().is_empty() {
        } else if let Some((_, sql)) = cases.last_mut() {
            sql.push_str(line);
            sql.push('\n');
        }
    }
    cases
}

/// Tables, columns and a role for the corpus's read statements to be valid.
const CORPUS_SCHEMA: &str = r#"
CREATE ROLE app;
CREATE TABLE users (id bigint PRIMARY KEY, email text, name text, status text, active bool,
  created_at timestamptz, deleted_at timestamptz, last_login timestamptz);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, user_id bigint, total numeric,
  created_at timestamptz);
CREATE TABLE auth_user (id int, password text, last_login timestamptz, is_superuser bool,
  username text);
CREATE TABLE django_session (session_key text);
CREATE TABLE django_content_type (id int, app_label text, model text);
CREATE TABLE public."Post" (id int, title text, published bool, "authorId" int);
CREATE TABLE posts (id int, title text, author_id bigint, published_at timestamptz);
CREATE TABLE products (category_id int, price numeric);
CREATE TABLE memberships (user_id bigint, org_id bigint);
CREATE TABLE sessions (id bigint, token text, expires_at timestamptz);
CREATE TABLE events (id bigint, user_id bigint, payload jsonb, doc jsonb, created_at timestamptz);
CREATE TABLE customers (id bigint, name text, data jsonb);
CREATE TABLE articles (id int);
CREATE TABLE article_tags (article_id int, tag_id int);
CREATE TABLE tags (id int, name text, tag text);
CREATE TABLE documents (body text);
CREATE TABLE docs (title text, body text);
CREATE TABLE places (id int, lat float8, lon float8);
CREATE TABLE measurements (t timestamptz, v int) PARTITION BY RANGE (t);
CREATE TABLE measurements_2024 PARTITION OF measurements
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE hosts (ip inet);
CREATE TABLE jobs (id bigint, queue text, run_at timestamptz, priority int);
CREATE TABLE payments (user_id bigint, amount numeric, status text, created_at timestamptz);
CREATE TABLE t (name text, x int, id int, ts timestamptz);
CREATE TABLE people (id bigint, nickname text, first_name text, last_name text);
CREATE TABLE signups (id bigint, created_at timestamptz);
CREATE TABLE invoices (amount numeric);
CREATE TABLE schema_migrations (version text);
CREATE TABLE bans (user_id bigint);
CREATE TABLE results (id int, score int);
CREATE TABLE t1 (id int); CREATE TABLE t2 (id int); CREATE TABLE t3 (id int);
CREATE TABLE a (id int); CREATE TABLE b (id int);
CREATE TABLE runs (id bigint, started_at timestamptz);
CREATE TABLE metrics (a int, b int, c int, d int, e numeric);
CREATE TABLE items (id int, order_id bigint, price numeric);
CREATE TABLE "weird names" ("order" int, "select" int, "delete" int, "update" int);
CREATE TABLE accounts (id bigint, email text, digest bytea, balance numeric);
CREATE TABLE "insert" ("into" int, "for" int, "update" int);
CREATE TABLE categories (id int, parent_id int);
CREATE TABLE scores (game text, points int);
CREATE TABLE employees (department text, salary numeric);
CREATE TABLE tickets (status text);
CREATE TABLE sales (region text, product text, sales numeric);
CREATE TABLE daily_totals (day date, amount numeric);
CREATE TABLE players (name text, team text, joined date, score int);
CREATE TABLE logins (user_id bigint, created_at timestamptz);
CREATE TABLE order_items (order_id bigint, quantity int, unit_price numeric);
INSERT INTO users VALUES (1, 'a@b.c', 'Ada', 'active', true, now(), NULL, now());
INSERT INTO orders VALUES (1, 1, 1, 150, now());
"#;

/// SQLSTATE of "cannot execute ... in a read-only transaction".
const READ_ONLY_TRANSACTION: &str = "25006";

/// Runs `sql` on a replica connection inside a transaction that is rolled back. Statements
/// with `$n` parameters are prepared and executed with NULL for each parameter.
async fn run_rolled_back(conn: &mut PgConnection, sql: &str, n: usize) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
    let ran = async {
        if (1..=9).any(|i| sql.contains(&format!("${i}"))) {
            let name = format!("corpus_{n}");
            sqlx::raw_sql(AssertSqlSafe(format!("PREPARE {name} AS {sql}")))
                .execute(&mut *conn)
                .await?;
            let params: i32 = sqlx::raw_sql(AssertSqlSafe(format!(
                "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = '{name}'"
            )))
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
            let nulls = vec!["NULL"; params as usize].join(", ");
            let executed = sqlx::raw_sql(AssertSqlSafe(format!("EXECUTE {name}({nulls})")))
                .execute(&mut *conn)
                .await;
            sqlx::raw_sql(AssertSqlSafe(format!("DEALLOCATE {name}")))
                .execute(&mut *conn)
                .await
                .ok();
            executed.map(drop)
        } else {
            sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                .execute(&mut *conn)
                .await
                .map(drop)
        }
    }
    .await;
    sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await?;
    ran
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

#[tokio::test]
async fn classifier_corpus_reads_run_on_a_real_replica() {
    let bed = shared_bed();
    bed.query(bed.primary(), "CREATE SCHEMA corpus").unwrap();
    bed.query(
        bed.primary(),
        &format!("SET search_path = corpus; {CORPUS_SCHEMA}"),
    )
    .unwrap();
    for i in bed.replicas() {
        bed.wait_for_value(i, "SELECT count(*) FROM corpus.orders", "1")
            .unwrap();
    }
    let cluster = cluster(&bed, &bed.replicas(), 2, None);

    let cases = corpus();
    let (mut ran, mut other_errors, mut adapted) = (0, Vec::new(), 0);
    let mut read_only_violations = Vec::new();
    let mut to_replica = 0;
    for (n, (_, sql)) in cases.iter().enumerate() {
        if cluster.classify(sql).unwrap() != Route::Replica {
            continue;
        }
        to_replica += 1;
        let mut conn = cluster.route(sql).await.unwrap();
        assert_eq!(conn.role(), Role::Replica, "{sql}");
        sqlx::raw_sql("SET search_path = corpus, public")
            .execute(&mut *conn)
            .await
            .unwrap();
        // JDBC-style `=?` placeholders are not PostgreSQL syntax: numbered instead.
        let sql = if sql.contains("=?") {
            adapted += 1;
            sql.replacen("=?", "=$1", 1)
        } else {
            sql.clone()
        };
        match run_rolled_back(&mut conn, &sql, n).await {
            Ok(()) => ran += 1,
            Err(e) if sqlstate(&e).as_deref() == Some(READ_ONLY_TRANSACTION) => {
                read_only_violations.push(format!("{e}: {sql}"))
            }
            Err(e) => other_errors.push((
                sqlstate(&e).unwrap_or_default(),
                format!("{e}: {}", sql.trim()),
            )),
        }
    }
    println!(
        "corpus: {} statements, {to_replica} routed to a replica, {ran} ran on a replica \
         ({adapted} adapted), {} failed for other reasons, {} read-only violations",
        cases.len(),
        other_errors.len(),
        read_only_violations.len()
    );
    for (code, e) in &other_errors {
        println!("not run ({code}): {e}");
    }
    assert!(read_only_violations.is_empty(), "{read_only_violations:#?}");
    // Missing tables, columns or functions would mean the schema above is incomplete; what
    // remains are statements PostgreSQL itself rejects (counted and printed above).
    let missing: Vec<_> = other_errors
        .iter()
        .filter(|(code, _)| ["42P01", "42703", "42883", "3F000"].contains(&code.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the schema should cover every read: {missing:#?}"
    );
    assert_eq!(ran + other_errors.len(), to_replica);
    assert!(ran * 10 >= to_replica * 9, "only {ran} of {to_replica} ran");

    // The check can fail: statements the classifier sends to the primary do hit 25006 here.
    let mut conn = cluster
        .on(&format!("replica-{}", bed.replicas()[0]))
        .await
        .unwrap();
    sqlx::raw_sql("SET search_path = corpus, public")
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut refused = 0;
    let dml = [
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "TRUNCATE",
        "CREATE TABLE",
    ];
    for (n, (label, sql)) in cases.iter().enumerate() {
        let is_dml = dml
            .iter()
            .any(|k| sql.trim_start().to_uppercase().starts_with(k));
        if label != "write" || !is_dml || sql.contains(';') {
            continue;
        }
        assert_eq!(cluster.classify(sql).unwrap(), Route::Primary, "{sql}");
        if let Err(e) = run_rolled_back(&mut conn, sql, n).await {
            refused += usize::from(sqlstate(&e).as_deref() == Some(READ_ONLY_TRANSACTION));
        }
    }
    println!("corpus: {refused} primary-routed DML statements refused by the replica with 25006");
    assert!(refused > 0);
}

#[tokio::test]
async fn wrapped_pg_pools_serve_reads_and_writes() {
    let bed = shared_bed();
    let pg_pool = |url: String| {
        PgPoolOptions::new()
            .max_connections(3)
            .connect_lazy(&url)
            .unwrap()
    };
    let primary = pg_pool(bed.primary_url());
    let replicas: Vec<(String, sqlx::PgPool)> = bed
        .replicas()
        .into_iter()
        .map(|i| (format!("replica-{i}"), pg_pool(bed.url(i).unwrap())))
        .collect();
    let sqlx_pools: Vec<sqlx::PgPool> = std::iter::once(primary.clone())
        .chain(replicas.iter().map(|(_, p)| p.clone()))
        .collect();
    let cluster = cluster_from_pools(primary, replicas)
        .unwrap()
        .probe_interval(None)
        .build()
        .unwrap();
    for node in cluster.snapshot().nodes {
        assert_eq!(node.pool.max_size, 3, "sized from max_connections");
    }

    let mut conn = cluster.write().await.unwrap();
    sqlx::raw_sql("CREATE TABLE wrapped (id int, note text)")
        .execute(&mut **conn)
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    for id in 0..5 {
        sqlx::query("INSERT INTO wrapped VALUES ($1, 'w')")
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(
        where_am_i(&mut conn).await,
        (false, port_of(&bed, "primary"))
    );
    let token = current_position(&mut conn).await.unwrap();
    drop(conn);

    for i in bed.replicas() {
        bed.wait_for_value(i, "SELECT count(*) FROM wrapped", "5")
            .unwrap();
    }
    // Probes connect on their own, outside the wrapped pools: they take nothing from them.
    let sizes = || sqlx_pools.iter().map(|p| p.size()).collect::<Vec<_>>();
    let before = sizes();
    cluster.probe_now().await;
    assert_eq!(
        sizes(),
        before,
        "a probe took a connection from a wrapped pool"
    );
    let read = "SELECT count(*) FROM wrapped";
    for _ in 0..20 {
        let mut conn = cluster
            .route_with(read, AcquireOptions::new().min_position(token))
            .await
            .unwrap();
        assert_eq!(conn.role(), Role::Replica);
        let (in_recovery, port) = where_am_i(&mut conn).await;
        assert!(in_recovery);
        assert_eq!(port, port_of(&bed, conn.node_name()));
        let n: i64 = sqlx::query_scalar(read)
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(n, 5);
    }
    // Seawall keeps what it acquired: the sqlx pools never grew past their size, and a
    // checkout does not go back through sqlx's pool. (sqlx may keep one more: a connection it
    // opened for an acquire that a release satisfied first.)
    for (node, pg) in cluster.snapshot().nodes.iter().zip(&sqlx_pools) {
        assert!(
            pg.size() <= 3,
            "{}: {} sqlx connections",
            node.name,
            pg.size()
        );
        assert!(
            node.pool.size <= pg.size() as usize && pg.size() as usize <= node.pool.size + 1,
            "{}: seawall holds {} of sqlx's {}",
            node.name,
            node.pool.size,
            pg.size()
        );
        assert_eq!(node.pool.totals.closed, 0, "{}", node.name);
    }
    let primary_state = &cluster.snapshot().nodes[0];
    assert!(
        primary_state.replayed_position >= u64::from(token),
        "probed through the wrapper"
    );

    // Session state is reset in this mode too.
    let mut conn = cluster.write().await.unwrap();
    sqlx::raw_sql("SET statement_timeout = '777s'; BEGIN")
        .execute(&mut **conn)
        .await
        .unwrap();
    drop(conn);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = cluster.write().await.unwrap();
        let timeout: String = sqlx::query_scalar("SELECT current_setting('statement_timeout')")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(timeout, "0");
        assert!(!conn.is_in_transaction());
        held.push(conn);
    }
}

/// Wrapped `PgPool`s kept fully busy by seawall (more workers than connections, every
/// connection checked out): the health probe must not compete with the pool it judges, so no
/// node is marked down, and every node is up once the load stops. (Probes used to acquire from
/// the wrapped pool: they timed out, every node went down, and stayed down after the load.)
#[tokio::test]
async fn wrapped_pools_kept_busy_stay_up() {
    use seawall::failover::HealthConfig;
    use seawall::ClusterEvent;

    let bed = shared_bed();
    let pg_pool = |url: String| {
        PgPoolOptions::new()
            .max_connections(4)
            .connect_lazy(&url)
            .unwrap()
    };
    let replicas: Vec<(String, sqlx::PgPool)> = bed
        .replicas()
        .into_iter()
        .map(|i| (format!("replica-{i}"), pg_pool(bed.url(i).unwrap())))
        .collect();
    let cluster = cluster_from_pools(pg_pool(bed.primary_url()), replicas)
        .unwrap()
        .health(
            HealthConfig::default()
                .with_interval(Some(Duration::from_millis(100)))
                .with_timeout(Duration::from_millis(200))
                .with_thresholds(2, 1),
        )
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut events = cluster.subscribe();

    // 24 workers over 3 nodes of 4 connections: every connection stays checked out.
    let stop_at = Instant::now() + Duration::from_secs(3);
    let workers: Vec<_> = (0..24)
        .map(|i| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let (mut done, mut shed) = (0u32, Vec::new());
                while Instant::now() < stop_at {
                    let conn = if i % 3 == 0 {
                        cluster.write().await
                    } else {
                        cluster.read().await
                    };
                    match conn {
                        Ok(mut conn) => {
                            sqlx::raw_sql("SELECT pg_sleep(0.02)")
                                .execute(&mut **conn)
                                .await
                                .unwrap();
                            done += 1;
                        }
                        // Shedding under overload is the admission gate's job; a node taken
                        // for dead is what this test is about.
                        Err(e) => {
                            shed.push(e.to_string());
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
                (done, shed)
            })
        })
        .collect();
    let (mut done, mut shed) = (0, Vec::new());
    for w in workers {
        let (d, s) = w.await.unwrap();
        done += d;
        shed.extend(s);
    }
    eprintln!(
        "{done} statements ran, {} acquires shed; first: {:?}",
        shed.len(),
        shed.first()
    );
    assert!(done > 100, "only {done} statements ran");
    let busy = cluster.snapshot();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(
        !seen.iter().any(|e| matches!(
            e,
            ClusterEvent::NodeDown { .. } | ClusterEvent::PrimaryLost { .. }
        )),
        "a busy node was taken for a dead one: {seen:?}"
    );
    for node in cluster.snapshot().nodes {
        assert!(node.up, "{} down after the load: {:?}", node.name, seen);
    }
    assert!(
        busy.nodes.iter().all(|n| n.pool.size == 4),
        "the load did not fill every pool: {:?}",
        busy.nodes
            .iter()
            .map(|n| (&n.name, n.pool.size))
            .collect::<Vec<_>>()
    );
}

/// Runs `sql` as a simple query on a cluster handle.
async fn raw(conn: &mut seawall::ClusterConn<PgConnector>, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut **conn)
        .await
        .map(|_| ())
}

/// A function the application declared read-only but which inserts: the replica refuses it
/// with SQLSTATE 25006, the cluster runs it again on the primary and learns; inside a
/// transaction on a pinned replica handle the caller gets the typed error instead.
#[tokio::test]
async fn a_write_a_replica_refuses_is_retried_on_the_primary_and_learned() {
    let bed = shared_bed();
    let setup = "CREATE TABLE touched (id int); \
                 CREATE FUNCTION touch(i int) RETURNS int LANGUAGE sql \
                 AS $$ INSERT INTO touched VALUES (i) RETURNING i $$";
    let mut admin = PgConnection::connect(&bed.primary_url()).await.unwrap();
    sqlx::raw_sql(setup).execute(&mut admin).await.unwrap();
    for i in bed.replicas() {
        bed.wait_for_value(i, "SELECT to_regproc('touch') IS NOT NULL", "t")
            .unwrap();
    }
    let mut builder = Cluster::builder()
        .primary("primary", pool("primary", &bed.primary_url(), 2))
        .probe_interval(None)
        .classifier(seawall::classify::Classifier::new().with_read_only_function("touch"));
    for i in bed.replicas() {
        let name = format!("replica-{i}");
        builder = builder.replica(name.clone(), pool(&name, &bed.url(i).unwrap(), 2));
    }
    let cluster = builder.build().unwrap();

    let sql = "SELECT touch(1)";
    assert_eq!(cluster.classify(sql).unwrap(), Route::Replica);
    let (id, node) = cluster
        .execute(sql, |conn, sql| {
            Box::pin(async move {
                let id: i32 = sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_one(&mut **conn)
                    .await?;
                conn.set_rows(1);
                Ok((id, conn.node_name().to_owned()))
            })
        })
        .await
        .unwrap();
    assert_eq!((id, node.as_str()), (1, "primary"));
    assert_eq!(
        count(&mut admin, "touched").await,
        1,
        "ran once, on the primary"
    );
    let snapshot = cluster.snapshot();
    assert_eq!(snapshot.routes.retried_on_primary, 1);
    assert_eq!(snapshot.routes.learned_writes, 1);
    assert_eq!(cluster.classify("SELECT touch(2)").unwrap(), Route::Primary);
    let stats = cluster.statements();
    let touch = stats
        .iter()
        .find(|s| s.statement.starts_with("select touch("))
        .unwrap();
    assert_eq!((touch.calls, touch.errors, touch.rows), (2, 1, Some(1)));
    assert_eq!(touch.nodes.len(), 2, "the refusing replica and the primary");

    // Inside a transaction on a replica: not retried, typed, and the server's 25006 kept.
    let mut conn = cluster
        .read_with(AcquireOptions::new().replica_only())
        .await
        .unwrap();
    let replica = conn.node_name().to_owned();
    conn.execute("BEGIN", |c, sql| Box::pin(raw(c, sql)))
        .await
        .unwrap();
    assert!(conn.in_transaction());
    let err = conn
        .execute("SELECT touch(3)", |c, sql| Box::pin(raw(c, sql)))
        .await
        .unwrap_err();
    let Error::WriteOnReplica(e) = &err else {
        panic!("expected WriteOnReplica, got {err:?}");
    };
    assert_eq!(*e.node, *replica);
    assert_eq!(e.not_retried, seawall::NotRetried::InTransaction);
    let code = e
        .error
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|d| d.code().map(|c| c.into_owned()));
    assert_eq!(code.as_deref(), Some("25006"), "{err}");
    conn.execute("ROLLBACK", |c, sql| Box::pin(raw(c, sql)))
        .await
        .unwrap();
    drop(conn);
    assert_eq!(count(&mut admin, "touched").await, 1);
}

/// One libpq-style multi-host URL, replicas listed before the primary: `seawall::sqlx::connect`
/// asks the servers their roles, so writes land on the primary and reads on the replicas,
/// whatever the order; nodes are named `host:port`.
#[tokio::test]
async fn a_multi_host_url_finds_the_primary_whatever_the_order() {
    let bed = shared_bed();
    let host = |i: usize| format!("127.0.0.1:{}", bed.port(i).unwrap());
    let mut hosts: Vec<String> = bed.replicas().into_iter().map(host).collect();
    hosts.push(host(bed.primary()));
    let url = format!(
        "postgres://postgres@{}/postgres?target_session_attrs=read-write&application_name=multi",
        hosts.join(",")
    );
    let cluster = seawall::sqlx::connect(&url, 2).await.unwrap();
    assert_eq!(cluster.nodes().len(), 3);
    let mut conn = cluster.write().await.unwrap();
    assert_eq!(conn.node_name(), host(bed.primary()));
    assert!(
        !where_am_i(&mut conn).await.0,
        "the write went to a replica"
    );
    let name: String = sqlx::query_scalar("SELECT current_setting('application_name')")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(name, "multi");
    drop(conn);
    let conn = cluster.read().await.unwrap();
    assert!(
        hosts[..2].iter().any(|h| h == conn.node_name()),
        "{}",
        conn.node_name()
    );

    // Bad input: a typed error that names the problem, never the password.
    let e = seawall::sqlx::connect("postgres://u:Sup3rS3cret@h1,,h2/db", 2)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("empty host"), "{e}");
    assert!(!e.to_string().contains("Sup3rS3cret"), "{e}");
}

/// `Classifier::from_catalog`: the application's STABLE functions go to replicas (and run
/// there), its VOLATILE ones to the primary, read from the primary's catalog.
#[tokio::test]
async fn the_catalog_says_which_application_functions_are_read_only() {
    let bed = shared_bed();
    let mut admin = PgConnection::connect(&bed.primary_url()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS catalog_rows (x int); \
         CREATE OR REPLACE FUNCTION cat_lookup(k int) RETURNS bigint STABLE LANGUAGE sql AS \
         $$ SELECT count(*) FROM catalog_rows WHERE x = k $$; \
         CREATE OR REPLACE FUNCTION cat_record(k int) RETURNS int VOLATILE LANGUAGE sql AS \
         $$ INSERT INTO catalog_rows VALUES (k) RETURNING x $$; \
         CREATE OR REPLACE FUNCTION cat_mixed(k int) RETURNS int IMMUTABLE LANGUAGE sql AS $$ SELECT k $$; \
         CREATE OR REPLACE FUNCTION cat_mixed(k text) RETURNS int VOLATILE LANGUAGE sql AS $$ SELECT 1 $$",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let classifier = seawall::classify::Classifier::from_catalog(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        classifier
            .classify("SELECT cat_lookup($1)")
            .unwrap()
            .route(),
        Route::Replica
    );
    assert_eq!(
        classifier
            .classify("SELECT cat_record($1)")
            .unwrap()
            .route(),
        Route::Primary
    );
    assert_eq!(
        classifier.classify("SELECT cat_mixed($1)").unwrap().route(),
        Route::Primary,
        "one volatile overload makes the name a writer"
    );
    // Built-ins keep their own knowledge.
    assert_eq!(
        classifier.classify("SELECT nextval('s')").unwrap().route(),
        Route::Primary
    );
    // And the read-only one really runs on a replica.
    for replica in bed.replicas() {
        bed.wait_for_value(
            replica,
            "SELECT count(*) FROM pg_proc WHERE proname = 'cat_lookup'",
            "1",
        )
        .unwrap();
    }
    let cluster_classified = Cluster::builder()
        .primary("primary", pool("primary", &bed.primary_url(), 2))
        .replica(
            "replica-1",
            pool("replica-1", &bed.url(bed.replicas()[0]).unwrap(), 2),
        )
        .classifier(classifier)
        .probe_interval(None)
        .build()
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT cat_lookup(1)")
        .fetch_one(&cluster_classified)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(cluster_classified.snapshot().routes.reads_to_replica, 1);
}

/// Issue 11, item 5: a read right after a write, with the write's position, as a shop's request
/// handler does it. Probes run every 500 ms (the default), so the positions they report are
/// older than the write; the read asks a replica on the connection it takes instead of going to
/// the primary. Every read must see its own write, wherever it ran.
#[tokio::test]
async fn read_your_writes_right_after_a_write_stays_on_replicas() {
    let bed = shared_bed();
    let mut builder = Cluster::builder()
        .primary("primary", pool("primary", &bed.primary_url(), 4))
        .probe_interval(Some(Duration::from_millis(500)))
        .acquire_timeout(Duration::from_secs(10));
    for i in bed.replicas() {
        let name = format!("replica-{i}");
        builder = builder.replica(name.clone(), pool(&name, &bed.url(i).unwrap(), 4));
    }
    let cluster = builder.build().unwrap();
    cluster.probe_now().await;
    let mut conn = cluster.write().await.unwrap();
    sqlx::raw_sql("CREATE TABLE ryw (id int PRIMARY KEY)")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);

    const ROUNDS: i32 = 200;
    let mut on_replica = [0; 3];
    for (mode, wait) in [
        (0, Some(Duration::ZERO)),
        (1, Some(Duration::from_millis(50))),
        (2, None),
    ] {
        for k in 0..ROUNDS {
            let id = mode * 1000 + k;
            let mut conn = cluster.write().await.unwrap();
            sqlx::query("INSERT INTO ryw VALUES ($1)")
                .bind(id)
                .execute(&mut *conn)
                .await
                .unwrap();
            let token = seawall::sqlx::current_token(&mut conn).await.unwrap();
            drop(conn);
            let options = AcquireOptions::new().after(token).replay_wait(wait);
            let mut conn = cluster.read_with(options).await.unwrap();
            let seen: Option<i32> = sqlx::query_scalar("SELECT id FROM ryw WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
                .unwrap();
            assert_eq!(
                seen,
                Some(id),
                "read {k} (mode {mode}) on {} missed its own write",
                conn.node_name()
            );
            if conn.role() == Role::Replica {
                on_replica[mode as usize] += 1;
            }
        }
    }
    println!(
        "ryw rounds={ROUNDS} reads_on_replica_ask_once={} reads_on_replica_wait_50ms={} \
         reads_on_replica_probes_only={}",
        on_replica[0], on_replica[1], on_replica[2]
    );
    // Waiting up to 50 ms, a replica on loopback has replayed the write nearly every time.
    assert!(
        on_replica[1] >= ROUNDS * 95 / 100,
        "with a 50 ms replay wait only {} of {ROUNDS} reads stayed on a replica",
        on_replica[1]
    );
    // Asking once does better than the probes alone.
    assert!(
        on_replica[0] > on_replica[2],
        "asking once: {} of {ROUNDS} on a replica, probes only: {}",
        on_replica[0],
        on_replica[2]
    );
}
