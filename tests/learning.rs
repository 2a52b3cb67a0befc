//! Routing that learns, statement statistics and the operator's snapshot, over simulated
//! backends under paused time.
//!
//! The simulated replicas refuse writes as PostgreSQL does in recovery: a statement the
//! classifier knows to write, or one calling a function declared as writing on the backend
//! (`archive_order` here), fails with `SimError::ReadOnly` and does nothing.

use std::sync::Arc;
use std::time::Duration;

use seawall::breaker::BreakerState;
use seawall::classify::{fingerprint, Classifier, Origin, Remembered, Route, RouteMemory};
use seawall::cluster::{Cluster, ClusterBuilder, Role};
use seawall::pool::Pool;
use seawall::sim::{query, SimBackend, SimConnector, SimError};
use seawall::statements::Table;
use seawall::{Error, NotRetried};

type Builder = ClusterBuilder<SimConnector>;

/// The application declared `archive_order` read-only, but it writes.
const ARCHIVE: &str = "SELECT archive_order(42)";

struct Sim {
    cluster: Cluster<SimConnector>,
    primary: Arc<SimBackend>,
    replica: Arc<SimBackend>,
}

fn backend(name: &str, primary: bool) -> Arc<SimBackend> {
    SimBackend::builder(name)
        .primary(primary)
        .writing_function("archive_order")
        .build()
}

fn pool(db: &Arc<SimBackend>) -> Pool<SimConnector> {
    Pool::builder(db.connector())
        .name(db.name())
        .max_size(4)
        .build()
        .unwrap()
}

impl Sim {
    fn new(configure: impl FnOnce(Builder) -> Builder) -> Sim {
        let primary = backend("primary", true);
        let replica = backend("replica", false);
        let builder = Cluster::builder()
            .primary("primary", pool(&primary))
            .replica("replica", pool(&replica))
            .probe_interval(None)
            .classifier(Classifier::new().with_read_only_function("archive_order"));
        Sim {
            cluster: configure(builder).build().unwrap(),
            primary,
            replica,
        }
    }

    /// Runs `sql` through `Cluster::execute`; returns the node that answered.
    async fn execute(&self, sql: &str) -> Result<String, Error> {
        self.cluster
            .execute(sql, |conn, sql| {
                Box::pin(async move {
                    conn.query(sql).await?;
                    Ok(conn.node_name().to_owned())
                })
            })
            .await
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_refused_by_a_replica_is_retried_on_the_primary_and_learned() {
    let sim = Sim::new(|b| b);
    assert_eq!(sim.cluster.classify(ARCHIVE).unwrap(), Route::Replica);

    // The replica refuses it; the caller gets the primary's result.
    assert_eq!(sim.execute(ARCHIVE).await.unwrap(), "primary");
    assert_eq!(sim.replica.stats().refused_writes, 1);
    assert_eq!(sim.primary.stats().queries, 1);

    // Learned: the same statement with other literals goes straight to the primary.
    for id in 0..20 {
        let sql = format!("select  ARCHIVE_ORDER({id})");
        assert_eq!(sim.cluster.classify(&sql).unwrap(), Route::Primary);
        assert_eq!(sim.execute(&sql).await.unwrap(), "primary");
        let conn = sim.cluster.route(&sql).await.unwrap();
        assert_eq!(conn.role(), Role::Primary);
    }
    assert_eq!(sim.replica.stats().refused_writes, 1, "refused once only");
    // Reads still go to the replica.
    assert_eq!(sim.execute("SELECT 1").await.unwrap(), "replica");

    let remembered = sim.cluster.route_memory().entries();
    assert_eq!(remembered.len(), 1);
    assert_eq!(remembered[0].fingerprint, fingerprint(ARCHIVE));
    assert_eq!(remembered[0].route, Route::Primary);
    assert_eq!(remembered[0].origin, Origin::Learned);
    assert_eq!(
        remembered[0].statement.as_deref(),
        Some("select archive_order(?)")
    );

    let routes = sim.cluster.snapshot().routes;
    assert_eq!(routes.retried_on_primary, 1);
    assert_eq!(routes.learned_writes, 1);
    assert_eq!(routes.failed(), 0);
    // A refused write is the router's mistake, not the replica's: its breaker saw no failure.
    let breaker = sim.cluster.node("replica").unwrap().breaker().snapshot();
    assert_eq!(breaker.failed_calls, 0);
    assert_eq!(breaker.state, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn inside_a_transaction_a_refused_write_is_a_typed_error_not_a_retry() {
    let sim = Sim::new(|b| b);
    let mut conn = sim.cluster.read().await.unwrap();
    assert_eq!(conn.role(), Role::Replica);
    conn.execute("BEGIN", query).await.unwrap();
    assert!(conn.in_transaction());
    conn.execute("SELECT 1", query).await.unwrap();
    let err = conn.execute(ARCHIVE, query).await.unwrap_err();
    let Error::WriteOnReplica(e) = &err else {
        panic!("expected WriteOnReplica, got {err:?}");
    };
    assert_eq!(e.not_retried, NotRetried::InTransaction);
    assert_eq!(&*e.node, "replica");
    assert_eq!(e.fingerprint, fingerprint(ARCHIVE));
    assert!(e.error.downcast_ref::<SimError>().is_some());
    let text = err.to_string();
    assert!(text.contains("replica `replica`"), "{text}");
    assert!(text.contains("inside a transaction"), "{text}");
    assert_eq!(
        sim.primary.stats().queries,
        0,
        "never retried on the primary"
    );
    conn.execute("ROLLBACK", query).await.unwrap();
    assert!(!conn.in_transaction());
    drop(conn);

    // It was learned all the same.
    assert_eq!(sim.cluster.classify(ARCHIVE).unwrap(), Route::Primary);
    let routes = sim.cluster.snapshot().routes;
    assert_eq!(
        (routes.failed_write_on_replica, routes.retried_on_primary),
        (1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_pinned_handle_never_moves() {
    let sim = Sim::new(|b| b);
    let mut conn = sim.cluster.read().await.unwrap();
    let err = conn.execute(ARCHIVE, query).await.unwrap_err();
    assert!(
        matches!(&err, Error::WriteOnReplica(e) if e.not_retried == NotRetried::Pinned),
        "{err:?}"
    );
    assert!(err.to_string().contains("pinned"), "{err}");
    assert_eq!(sim.primary.stats().queries, 0);
}

#[tokio::test(start_paused = true)]
async fn declared_statements_route_as_told_but_never_send_a_write_to_a_replica() {
    let sim = Sim::new(|b| {
        b.primary_statement("SELECT balance FROM accounts WHERE id = $1")
            .replica_statement("SELECT monthly_report($1, $2)")
            .replica_statement("DELETE FROM sessions WHERE id = 1")
    });
    let c = &sim.cluster;
    assert_eq!(
        c.classify("SELECT balance FROM accounts WHERE id = 7")
            .unwrap(),
        Route::Primary
    );
    assert_eq!(
        c.classify("SELECT monthly_report(2026, 11)").unwrap(),
        Route::Replica
    );
    // Declared read, but the classifier knows it writes: the primary.
    assert_eq!(
        c.classify("DELETE FROM sessions WHERE id = 2").unwrap(),
        Route::Primary
    );
    // A primary hint is the statement's own word.
    assert_eq!(
        c.classify("/* seawall:primary */ SELECT monthly_report(1, 2)")
            .unwrap(),
        Route::Primary
    );
    let declared = c.route_memory().entries();
    assert_eq!(declared.len(), 3);
    assert!(declared.iter().all(|e| e.origin == Origin::Declared));
    // A declaration is the application's word: a refusal does not override it silently, the
    // statement is retried on the primary each time instead.
    let sim = Sim::new(|b| b.replica_statement(ARCHIVE));
    assert_eq!(sim.execute(ARCHIVE).await.unwrap(), "primary");
    assert_eq!(sim.cluster.classify(ARCHIVE).unwrap(), Route::Replica);
}

#[tokio::test(start_paused = true)]
async fn learned_routes_survive_a_restart_as_text() {
    let sim = Sim::new(|b| b);
    sim.execute(ARCHIVE).await.unwrap();
    let saved: Vec<String> = sim
        .cluster
        .route_memory()
        .entries()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(saved.len(), 1);

    let restarted =
        Sim::new(|b| b.remember(saved.iter().map(|l| l.parse::<Remembered>().unwrap())));
    assert_eq!(restarted.cluster.classify(ARCHIVE).unwrap(), Route::Primary);
    assert_eq!(restarted.execute(ARCHIVE).await.unwrap(), "primary");
    assert_eq!(restarted.replica.stats().refused_writes, 0);
}

#[tokio::test(start_paused = true)]
async fn the_learned_set_is_bounded() {
    let sim = Sim::new(|b| b.route_memory(RouteMemory::new(8)));
    for i in 0..40 {
        // Distinct statements (different column names), all refused by the replica.
        let sql = format!("SELECT archive_order(c{i}) FROM t");
        assert_eq!(sim.execute(&sql).await.unwrap(), "primary");
    }
    let memory = sim.cluster.route_memory();
    assert!(memory.len() <= 8, "{} remembered", memory.len());
    assert_eq!(memory.evicted() as usize + memory.len(), 40);
    assert_eq!(sim.cluster.snapshot().routes.learned_writes, 40);
    // The most recent is kept.
    assert_eq!(
        sim.cluster
            .classify("SELECT archive_order(c39) FROM t")
            .unwrap(),
        Route::Primary
    );
}

#[tokio::test(start_paused = true)]
async fn statement_errors_say_where_and_stay_out_of_the_breaker() {
    let primary = backend("primary", true);
    let replica = SimBackend::builder("replica")
        .primary(false)
        .query_error_rate(1.0)
        .build();
    let cluster = Cluster::builder()
        .primary("primary", pool(&primary))
        .replica("replica", pool(&replica))
        .probe_interval(None)
        .build()
        .unwrap();
    for _ in 0..30 {
        let err = cluster
            .execute("SELECT * FROM t WHERE id = 1", query)
            .await
            .unwrap_err();
        let Error::Statement(e) = &err else {
            panic!("expected Statement, got {err:?}");
        };
        assert_eq!((&*e.node, e.role), ("replica", Role::Replica));
        assert_eq!(e.retried_from, None);
        let text = err.to_string();
        assert!(text.contains("failed on replica `replica` after"), "{text}");
    }
    // The caller's errors (SimError::Query is `Ignored`) do not open the breaker.
    assert_eq!(
        cluster.node("replica").unwrap().breaker().state(),
        BreakerState::Closed
    );
    let stats = cluster.statements();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].calls, stats[0].errors), (30, 30));
    assert_eq!(cluster.snapshot().routes.failed_statement, 30);
}

#[tokio::test(start_paused = true)]
async fn statement_statistics_per_fingerprint() {
    let sim = Sim::new(|b| b);
    for id in 0..50u64 {
        let sql = format!("SELECT * FROM orders WHERE id = {id}");
        sim.cluster
            .execute(&sql, move |conn, sql| {
                Box::pin(async move {
                    let took = conn.query(sql).await?;
                    conn.set_rows(id % 3);
                    Ok(took)
                })
            })
            .await
            .unwrap();
    }
    for _ in 0..5 {
        sim.execute("UPDATE orders SET state = 'paid' WHERE id = 3")
            .await
            .unwrap();
    }
    let stats = sim.cluster.statements();
    assert_eq!(stats.len(), 2);
    // Most total time first: 50 reads of 1 ms each before 5 writes.
    let reads = &stats[0];
    assert_eq!(reads.statement, "select * from orders where id = ?");
    assert_eq!(reads.calls, 50);
    assert_eq!(reads.errors, 0);
    assert_eq!(reads.rows, Some((0..50u64).map(|id| id % 3).sum()));
    assert_eq!(reads.nodes, vec![(Arc::from("replica"), 50)]);
    // The simulator serves each query in exactly 1 ms of paused time.
    assert_eq!(reads.total, Duration::from_millis(50));
    assert_eq!(reads.mean, Duration::from_millis(1));
    assert_eq!(reads.max, Duration::from_millis(1));
    assert!(reads.p50 >= Duration::from_millis(1) && reads.p50 <= Duration::from_micros(1125));
    let writes = &stats[1];
    assert_eq!((writes.calls, writes.rows), (5, None));
    assert_eq!(writes.nodes, vec![(Arc::from("primary"), 5)]);

    let table = Table(&stats).to_string();
    assert!(
        table.contains("select * from orders where id = ?"),
        "{table}"
    );
    assert!(table.contains("replica:50"), "{table}");

    sim.cluster.reset_statements();
    assert!(sim.cluster.statements().is_empty());

    let off = Sim::new(|b| b.statement_stats(None));
    off.execute("SELECT 1").await.unwrap();
    assert!(off.cluster.statements().is_empty());
    assert_eq!(off.cluster.snapshot().statements_tracked, None);
    assert!(Cluster::<SimConnector>::builder()
        .primary("p", pool(&backend("p", true)))
        .statement_stats(Some(0))
        .build()
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_reads_as_a_table() {
    let sim = Sim::new(|b| b.primary_read_share(0.5));
    for _ in 0..10 {
        sim.execute("SELECT 1").await.unwrap();
    }
    sim.execute("UPDATE t SET x = 1").await.unwrap();
    sim.execute(ARCHIVE).await.unwrap();
    sim.replica.set_down(true);
    for _ in 0..5 {
        sim.cluster.probe_now().await;
    }
    let snapshot = sim.cluster.snapshot();
    let routes = snapshot.routes;
    assert_eq!(routes.reads_to_replica, 11);
    assert_eq!(routes.writes, 2, "the update and the retry");
    assert_eq!(routes.retried_on_primary, 1);
    let text = snapshot.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("node") && lines[0].contains("breaker"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("primary") && lines[1].contains(" up "),
        "{text}"
    );
    assert!(
        lines[2].starts_with("replica") && lines[2].contains("down"),
        "{text}"
    );
    assert!(text.contains("11 reads to replicas"), "{text}");
    assert!(text.contains("1 retried on the primary"), "{text}");
    assert!(text.contains("remembered routes: 1"), "{text}");
    let learned = format!(
        "{} primary select archive_order(?) (learned",
        fingerprint(ARCHIVE)
    );
    assert!(text.contains(&learned), "{text}");
    assert_eq!(snapshot.remembered.len(), 1);
    assert!(text.contains("statements tracked: 3"), "{text}");
}

mod never_a_write_to_a_replica {
    use super::*;
    use proptest::prelude::*;
    use seawall::classify::{classify, Hint, Verdict};

    const STATEMENTS: &[&str] = &[
        "SELECT * FROM t WHERE id = 1",
        "SELECT my_fn(2)",
        "SELECT archive_order(3)",
        "UPDATE t SET x = 4",
        "DELETE FROM t WHERE id = 5",
        "INSERT INTO t VALUES (6)",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "SELECT * FROM t FOR UPDATE",
        "/* seawall:replica */ SELECT my_fn(7)",
        "/* seawall:primary */ SELECT 8",
        "SELECT nextval('s')",
        "BEGIN",
        "SET search_path = x",
    ];

    #[derive(Debug, Clone)]
    enum Step {
        DeclareReplica(usize),
        DeclarePrimary(usize),
        Learn(usize),
        Forget(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        let i = 0..STATEMENTS.len();
        prop_oneof![
            i.clone().prop_map(Step::DeclareReplica),
            i.clone().prop_map(Step::DeclarePrimary),
            i.clone().prop_map(Step::Learn),
            i.prop_map(Step::Forget),
        ]
    }

    proptest! {
        /// Whatever is declared, learned or forgotten, a statement the classifier knows to write
        /// is never routed to a replica, and one learned or declared for the primary goes there.
        #[test]
        fn declarations_and_learning_never_route_a_known_write_to_a_replica(
            steps in proptest::collection::vec(step(), 0..24)
        ) {
            let memory = RouteMemory::new(4);
            for s in &steps {
                match *s {
                    Step::DeclareReplica(i) => {
                        memory.declare(STATEMENTS[i], Route::Replica);
                    }
                    Step::DeclarePrimary(i) => {
                        memory.declare(STATEMENTS[i], Route::Primary);
                    }
                    Step::Learn(i) => {
                        memory.learn_write(fingerprint(STATEMENTS[i]), STATEMENTS[i]);
                    }
                    Step::Forget(i) => {
                        memory.forget(fingerprint(STATEMENTS[i]));
                    }
                }
            }
            let sim = Sim::new(|b| b.route_memory(memory));
            let remembered = sim.cluster.route_memory().entries();
            for sql in STATEMENTS {
                let route = sim.cluster.classify(sql).unwrap();
                let c = classify(sql).unwrap();
                if c.verdict() == Verdict::Writes || c.hint() == Some(Hint::Primary) {
                    prop_assert_eq!(route, Route::Primary, "{}", sql);
                }
                // Whatever is still remembered for the primary (learned entries may have been
                // evicted, capacity 4) sends the statement there.
                let to_primary = remembered
                    .iter()
                    .any(|e| e.fingerprint == fingerprint(sql) && e.route == Route::Primary);
                if to_primary {
                    prop_assert_eq!(route, Route::Primary, "{}", sql);
                }
            }
        }
    }
}
