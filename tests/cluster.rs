//! The cluster end to end, over simulated backends under paused time: where statements land,
//! when reads fall back to the primary, how lag, read-your-writes positions, breakers and
//! admission limits steer the router, and what the errors say.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use seawall::admission::{AdmissionConfig, ShedReason};
use seawall::balance::{P2c, RoundRobin};
use seawall::breaker::{BreakerConfig, BreakerState, SlidingWindow};
use seawall::classify::Route;
use seawall::cluster::{AcquireOptions, Cluster, ClusterBuilder, LimiterKind, NotReady, Role};
use seawall::limit::Fixed;
use seawall::pool::Pool;
use seawall::sim::{ServiceTime, SimBackend, SimConnector};
use seawall::{Error, NoReplica};
use tokio::time::{sleep, Instant};

type Builder = ClusterBuilder<SimConnector>;

/// A cluster of simulated backends named `primary`, `replica-1`, `replica-2`, ...
struct Sim {
    cluster: Cluster<SimConnector>,
    primary: Arc<SimBackend>,
    replicas: Vec<Arc<SimBackend>>,
}

fn backend(name: &str, primary: bool, seed: u64) -> Arc<SimBackend> {
    SimBackend::builder(name)
        .primary(primary)
        .seed(seed)
        .build()
}

fn pool(db: &Arc<SimBackend>, size: usize) -> Pool<SimConnector> {
    Pool::builder(db.connector())
        .name(db.name())
        .max_size(size)
        .build()
        .unwrap()
}

impl Sim {
    /// `replicas` replicas, every pool of `pool_size`; probes off (tests call `probe_now`) and
    /// a seeded P2c, unless `configure` says otherwise.
    fn new(replicas: usize, pool_size: usize, configure: impl FnOnce(Builder) -> Builder) -> Sim {
        let primary = backend("primary", true, 1);
        let replicas: Vec<_> = (1..=replicas)
            .map(|i| backend(&format!("replica-{i}"), false, 1 + i as u64))
            .collect();
        let mut builder = Cluster::builder()
            .primary("primary", pool(&primary, pool_size))
            .probe_interval(None)
            .balancer(P2c::with_seed(7));
        for db in &replicas {
            builder = builder.replica(db.name(), pool(db, pool_size));
        }
        Sim {
            cluster: configure(builder).build().unwrap(),
            primary,
            replicas,
        }
    }

    fn replica(&self, i: usize) -> &Arc<SimBackend> {
        &self.replicas[i - 1]
    }

    fn replica_queries(&self) -> Vec<u64> {
        self.replicas.iter().map(|db| db.stats().queries).collect()
    }

    /// Reads `n` times (one query each) and returns the node names that served them.
    async fn reads(&self, n: usize, options: AcquireOptions) -> Vec<String> {
        let mut served = Vec::new();
        for _ in 0..n {
            let mut conn = self.cluster.read_with(options).await.unwrap();
            conn.query("SELECT 1").await.unwrap();
            served.push(conn.node_name().to_owned());
        }
        served
    }

    fn node_breaker(&self, name: &str) -> BreakerState {
        self.cluster.node(name).unwrap().breaker().state()
    }
}

fn no_replica(result: Result<seawall::ClusterConn<SimConnector>, Error>) -> NoReplica {
    match result {
        Err(Error::NoReplica(why)) => why,
        other => panic!("expected NoReplica, got {other:?}"),
    }
}

/// Opens after 4 calls of which at least half failed; stays open 8–10 s.
fn touchy_breaker() -> BreakerConfig {
    BreakerConfig::builder()
        .window(SlidingWindow::Count { calls: 4 })
        .minimum_calls(4)
        .open_interval(Duration::from_secs(10), Duration::from_secs(60))
        .seed(1)
        .build()
        .unwrap()
}

/// Runs `n` queries on the named node that fail in transport and reports each.
async fn fail_on(cluster: &Cluster<SimConnector>, name: &str, n: usize) {
    for _ in 0..n {
        let mut conn = cluster.on(name).await.unwrap();
        let err = conn.query("SELECT 1").await.unwrap_err();
        conn.report_error(&err);
    }
}

fn fixed_limit(limit: usize) -> LimiterKind {
    LimiterKind::Custom(Arc::new(move |_, _| Box::new(Fixed::new(limit))))
}

fn no_queue() -> AdmissionConfig {
    AdmissionConfig {
        max_queue: 0,
        codel: None,
    }
}

// ---- Where statements land ----

#[tokio::test(start_paused = true)]
async fn writes_land_on_the_primary() {
    let sim = Sim::new(2, 8, |b| b);
    let statements = [
        "INSERT INTO t VALUES (1)",
        "BEGIN",
        "SELECT * FROM t WHERE id = 1 FOR UPDATE",
        "/* seawall:primary */ SELECT 1",
        "-- seawall:primary\nSELECT count(*) FROM t",
        "SELECT nextval('s')",
        "WITH gone AS (DELETE FROM jobs RETURNING id) SELECT count(*) FROM gone",
    ];
    for sql in statements {
        assert_eq!(sim.cluster.classify(sql).unwrap(), Route::Primary, "{sql}");
        let mut conn = sim.cluster.route(sql).await.unwrap();
        assert_eq!(conn.node_name(), "primary", "{sql}");
        assert_eq!(conn.role(), Role::Primary, "{sql}");
        conn.query(sql).await.unwrap();
    }
    let mut conn = sim.cluster.write().await.unwrap();
    assert_eq!(conn.role(), Role::Primary);
    conn.query("UPDATE t SET x = 1").await.unwrap();
    drop(conn);

    assert_eq!(sim.primary.stats().queries, statements.len() as u64 + 1);
    assert_eq!(sim.replica_queries(), [0, 0]);
}

#[tokio::test(start_paused = true)]
async fn provable_reads_land_on_replicas() {
    let sim = Sim::new(2, 8, |b| b);
    let statements = [
        "SELECT id FROM users WHERE email = 'x@y' LIMIT 1",
        "SELECT 'DELETE FROM t'",
        "WITH r AS (SELECT 1) SELECT * FROM r",
        "/* seawall:replica */ SELECT my_report_fn()",
    ];
    for sql in statements {
        assert_eq!(sim.cluster.classify(sql).unwrap(), Route::Replica, "{sql}");
        let mut conn = sim.cluster.route(sql).await.unwrap();
        assert_eq!(conn.role(), Role::Replica, "{sql}");
        assert!(conn.node_name().starts_with("replica-"), "{sql}");
        conn.query(sql).await.unwrap();
    }
    for _ in 0..6 {
        let mut conn = sim.cluster.read().await.unwrap();
        assert_eq!(conn.role(), Role::Replica);
        conn.query("SELECT 1").await.unwrap();
    }
    assert_eq!(sim.primary.stats().queries, 0);
    assert_eq!(sim.replica_queries().iter().sum::<u64>(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_hint_is_a_classify_error_and_acquires_nothing() {
    let sim = Sim::new(1, 8, |b| b);
    for sql in [
        "/* seawall:foo */ SELECT 1",
        "/* seawall:replcia */ SELECT 1",
    ] {
        let err = sim.cluster.route(sql).await.unwrap_err();
        assert!(matches!(err, Error::Classify(_)), "{sql}: {err:?}");
        assert!(err.to_string().contains("seawall:primary"), "{err}");
        assert!(matches!(sim.cluster.classify(sql), Err(Error::Classify(_))));
    }
    for node in sim.cluster.snapshot().nodes {
        assert_eq!(node.pool.size, 0, "{}", node.name);
        assert_eq!(node.admission.admitted, 0, "{}", node.name);
    }
}

#[tokio::test(start_paused = true)]
async fn a_pinned_handle_runs_a_sequence_on_one_connection() {
    let sim = Sim::new(2, 8, |b| b);
    let mut conn = sim.cluster.route("BEGIN").await.unwrap();
    let id = conn.id();
    for sql in [
        "BEGIN",
        "SELECT * FROM t FOR UPDATE",
        "UPDATE t SET x = 1",
        "COMMIT",
    ] {
        conn.query(sql).await.unwrap();
        assert_eq!(conn.id(), id);
    }
    let primary = sim.cluster.node("primary").unwrap();
    assert_eq!(primary.pool().state().in_use, 1);
    assert_eq!(primary.load().in_flight(), 1);
    drop(conn);
    assert_eq!(sim.primary.stats().queries, 4);
    assert_eq!(sim.primary.stats().connects, 1);
    assert_eq!(primary.pool().state().in_use, 0);
    assert_eq!(primary.load().in_flight(), 0);

    // A read handle pins a replica connection the same way.
    let mut read = sim.cluster.read().await.unwrap();
    let (node, id) = (read.node_name().to_owned(), read.id());
    for _ in 0..3 {
        read.query("SELECT 1").await.unwrap();
        assert_eq!(read.id(), id);
    }
    drop(read);
    let db = sim.replicas.iter().find(|db| db.name() == node).unwrap();
    assert_eq!(db.stats().queries, 3);
}

// ---- Falling back to the primary, within its budget ----

#[tokio::test(start_paused = true)]
async fn a_primary_alone_takes_every_read_like_a_pool() {
    let sim = Sim::new(0, 2, |b| b);
    let reads = [
        sim.cluster.read().await.unwrap(),
        sim.cluster.read().await.unwrap(),
    ];
    assert!(reads.iter().all(|r| r.role() == Role::Primary));
    // The pool is full: the third waits its turn instead of failing.
    let third = tokio::spawn({
        let cluster = sim.cluster.clone();
        async move { cluster.read().await.map(|c| c.role()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!third.is_finished());
    drop(reads);
    assert_eq!(third.await.unwrap().unwrap(), Role::Primary);
    assert_eq!(sim.cluster.snapshot().fallback_reads_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn when_no_replica_can_serve_reads_use_the_primary_within_its_read_share() {
    // Pool of 4 and a share of 0.5: two fallback reads at once. The one replica's lag is
    // unknown (no probe yet), so it may not serve.
    let sim = Sim::new(1, 4, |b| {
        b.primary_read_share(0.5)
            .max_replica_lag(Some(Duration::from_secs(1)))
    });
    let first = sim.cluster.read().await.unwrap();
    let second = sim.cluster.route("SELECT 1").await.unwrap();
    assert_eq!(first.role(), Role::Primary);
    assert_eq!(second.role(), Role::Primary);
    assert_eq!(sim.cluster.snapshot().fallback_reads_in_flight, 2);

    let before = Instant::now();
    let why = no_replica(sim.cluster.read().await);
    assert_eq!(
        Instant::now(),
        before,
        "past the budget a read fails at once"
    );
    // Unknown is not lagging: no probe has answered yet.
    assert_eq!((why.replicas, why.lagging, why.lag_unknown), (1, 0, 1));
    assert!(why.fallback_allowed);
    assert_eq!(why.fallback_in_flight, 2);
    assert_eq!(why.fallback_budget, 2);
    let text = Error::NoReplica(why).to_string();
    assert!(
        text.contains("1 configured, 1 with lag not known yet"),
        "{text}"
    );
    assert!(text.contains("2/2 fallback reads"), "{text}");

    // Writes are not limited by the read budget.
    let write = sim.cluster.write().await.unwrap();
    assert_eq!(write.role(), Role::Primary);

    drop(first);
    assert_eq!(sim.cluster.snapshot().fallback_reads_in_flight, 1);
    let third = sim.cluster.read().await.unwrap();
    assert_eq!(third.role(), Role::Primary);
    drop((second, third, write));
    assert_eq!(sim.cluster.snapshot().fallback_reads_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn a_zero_read_share_never_sends_reads_to_the_primary() {
    let sim = Sim::new(0, 8, |b| b.primary_read_share(0.0));
    let why = no_replica(sim.cluster.read().await);
    assert!(why.fallback_allowed);
    assert_eq!(why.fallback_budget, 0);
    assert_eq!(sim.primary.stats().connects, 0);
}

#[tokio::test(start_paused = true)]
async fn reads_fall_back_when_every_replica_breaker_is_open() {
    let sim = Sim::new(2, 4, |b| {
        b.breaker(touchy_breaker()).primary_read_share(0.25)
    });
    for i in 1..=2 {
        sim.replica(i).set_break_rate(1.0);
        fail_on(&sim.cluster, sim.replica(i).name(), 4).await;
        assert_eq!(sim.node_breaker(sim.replica(i).name()), BreakerState::Open);
    }
    let replica_queries = sim.replica_queries();

    let fallback = sim.cluster.read().await.unwrap();
    assert_eq!(fallback.role(), Role::Primary);
    // Budget 4 × 0.25 = 1, taken: the next read says why it has nowhere to go.
    let why = no_replica(sim.cluster.read().await);
    assert_eq!(why.replicas, 2);
    assert_eq!(why.breaker_open, 2);
    assert_eq!((why.lagging, why.behind_position, why.refused), (0, 0, 0));
    assert_eq!((why.fallback_in_flight, why.fallback_budget), (1, 1));
    let text = Error::NoReplica(why).to_string();
    assert!(text.contains("2 breaker open"), "{text}");
    assert!(text.contains("1/1"), "{text}");
    assert_eq!(sim.replica_queries(), replica_queries);
}

#[tokio::test(start_paused = true)]
async fn reads_fall_back_when_every_replica_lags_and_come_back_when_they_catch_up() {
    let sim = Sim::new(2, 4, |b| {
        b.max_replica_lag(Some(Duration::from_secs(1)))
            .primary_read_share(0.25)
    });
    for db in &sim.replicas {
        db.set_lag(Some(Duration::from_secs(5)));
    }
    sim.cluster.probe_now().await;

    let fallback = sim.cluster.read().await.unwrap();
    assert_eq!(fallback.node_name(), "primary");
    let why = no_replica(sim.cluster.read().await);
    assert_eq!(why.lagging, 2);
    assert_eq!(why.breaker_open, 0);
    assert!(Error::NoReplica(why).to_string().contains("2 lagging"));
    drop(fallback);

    for db in &sim.replicas {
        db.set_lag(Some(Duration::from_millis(200)));
    }
    sim.cluster.probe_now().await;
    let served = sim.reads(10, AcquireOptions::new()).await;
    assert!(
        served.iter().all(|n| n.starts_with("replica-")),
        "{served:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn replica_only_reads_never_fall_back() {
    let sim = Sim::new(1, 8, |b| b.breaker(touchy_breaker()));
    sim.replica(1).set_break_rate(1.0);
    fail_on(&sim.cluster, "replica-1", 4).await;

    let why = no_replica(
        sim.cluster
            .read_with(AcquireOptions::new().replica_only())
            .await,
    );
    assert!(!why.fallback_allowed);
    assert_eq!(why.breaker_open, 1);
    assert_eq!(why.fallback_budget, 0);
    let text = Error::NoReplica(why).to_string();
    assert!(text.contains("may not go to the primary"), "{text}");
    assert_eq!(sim.primary.stats().connects, 0);

    // Without replicas at all, the same.
    let bare = Sim::new(0, 8, |b| b);
    let why = no_replica(
        bare.cluster
            .read_with(AcquireOptions::new().replica_only())
            .await,
    );
    assert_eq!(why.replicas, 0);
    assert!(!why.fallback_allowed);
}

// ---- Replication lag ----

#[tokio::test(start_paused = true)]
async fn a_lagging_replica_is_skipped_until_it_catches_up() {
    let sim = Sim::new(2, 8, |b| {
        b.max_replica_lag(Some(Duration::from_secs(1)))
            .balancer(RoundRobin::new())
    });
    // Before any probe the lag is unknown: no freshness bound can be vouched for.
    let conn = sim.cluster.read().await.unwrap();
    assert_eq!(conn.role(), Role::Primary);
    drop(conn);

    sim.cluster.probe_now().await;
    let served = sim.reads(10, AcquireOptions::new()).await;
    assert_eq!(served.iter().filter(|n| *n == "replica-1").count(), 5);
    assert_eq!(served.iter().filter(|n| *n == "replica-2").count(), 5);

    sim.replica(1).set_lag(Some(Duration::from_millis(1500)));
    sim.cluster.probe_now().await;
    let snapshot = sim.cluster.snapshot();
    assert_eq!(
        snapshot.nodes[1].replication_lag,
        Some(Duration::from_millis(1500))
    );
    let served = sim.reads(10, AcquireOptions::new()).await;
    assert!(served.iter().all(|n| n == "replica-2"), "{served:?}");

    // Exactly at the bound is fresh enough.
    sim.replica(1).set_lag(Some(Duration::from_secs(1)));
    sim.cluster.probe_now().await;
    let served = sim.reads(10, AcquireOptions::new()).await;
    assert_eq!(served.iter().filter(|n| *n == "replica-1").count(), 5);
}

#[tokio::test(start_paused = true)]
async fn background_probes_notice_lag_within_the_probe_interval() {
    let sim = Sim::new(2, 8, |b| {
        b.max_replica_lag(Some(Duration::from_secs(1)))
            .probe_interval(Some(Duration::from_millis(500)))
            .balancer(RoundRobin::new())
    });
    sleep(Duration::from_millis(600)).await;
    let served = sim.reads(4, AcquireOptions::new()).await;
    assert!(served.iter().any(|n| n == "replica-1"), "{served:?}");

    sim.replica(1).set_lag(Some(Duration::from_secs(30)));
    sleep(Duration::from_millis(500)).await;
    let served = sim.reads(10, AcquireOptions::new()).await;
    assert!(served.iter().all(|n| n == "replica-2"), "{served:?}");

    sim.replica(1).set_lag(None); // a healthy replica reports zero lag
    sleep(Duration::from_millis(500)).await;
    let served = sim.reads(10, AcquireOptions::new()).await;
    assert_eq!(served.iter().filter(|n| *n == "replica-1").count(), 5);
}

// ---- Read-your-writes ----

#[tokio::test(start_paused = true)]
async fn read_your_writes_uses_only_replicas_that_replayed_the_position() {
    let sim = Sim::new(2, 8, |b| b);
    sim.primary.set_position(300);
    sim.replica(1).set_position(100);
    sim.replica(2).set_position(200);
    sim.cluster.probe_now().await;

    let at = |p: u64| AcquireOptions::new().min_position(p);
    let served = sim.reads(10, at(150)).await;
    assert!(served.iter().all(|n| n == "replica-2"), "{served:?}");
    let served = sim.reads(10, at(200)).await; // exactly replayed is enough
    assert!(served.iter().all(|n| n == "replica-2"), "{served:?}");

    let conn = sim.cluster.read_with(at(250)).await.unwrap();
    assert_eq!(conn.role(), Role::Primary);
    drop(conn);
    let why = no_replica(sim.cluster.read_with(at(250).replica_only()).await);
    assert_eq!(why.behind_position, 2);
    assert!(Error::NoReplica(why)
        .to_string()
        .contains("2 behind the requested position"));

    sim.replica(1).set_position(300);
    sim.cluster.probe_now().await;
    let served = sim.reads(10, at(250)).await;
    assert!(served.iter().all(|n| n == "replica-1"), "{served:?}");
    assert_eq!(sim.cluster.snapshot().nodes[1].replayed_position, 300);
}

#[tokio::test(start_paused = true)]
async fn read_your_writes_asks_a_replica_when_its_probe_is_stale() {
    let sim = Sim::new(1, 8, |b| b.probe_interval(None));
    sim.primary.set_position(300);
    sim.replica(1).set_position(100);
    sim.cluster.probe_now().await;
    // The replica replays the write after its last probe: asked on the connection the read
    // takes, it says so, and the read stays there.
    sim.replica(1).set_position(300);
    let at = AcquireOptions::new().min_position(300u64);
    let conn = sim.cluster.read_with(at).await.unwrap();
    assert_eq!(conn.node_name(), "replica-1");
    drop(conn);
    // What it said is kept for the next reads.
    assert_eq!(sim.cluster.snapshot().nodes[1].replayed_position, 300);

    // Behind, asked once (the default): the read falls back to the primary at once.
    sim.primary.set_position(500);
    let at = AcquireOptions::new().min_position(500u64);
    let started = Instant::now();
    let conn = sim.cluster.read_with(at).await.unwrap();
    assert_eq!(conn.role(), Role::Primary);
    assert!(
        started.elapsed() < Duration::from_millis(5),
        "{:?}",
        started.elapsed()
    );
    drop(conn);

    // With a replay wait, the read waits for the replica to catch up.
    let replica = sim.replica(1).clone();
    tokio::spawn(async move {
        sleep(Duration::from_millis(20)).await;
        replica.set_position(500);
    });
    let started = Instant::now();
    let conn = sim
        .cluster
        .read_with(at.replay_wait(Some(Duration::from_millis(100))))
        .await
        .unwrap();
    assert_eq!(conn.node_name(), "replica-1");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(20) && waited < Duration::from_millis(40),
        "{waited:?}"
    );
    drop(conn);

    // A replica that does not catch up within the wait: the primary, after the wait.
    sim.primary.set_position(700);
    let at = AcquireOptions::new().min_position(700u64);
    let started = Instant::now();
    let conn = sim
        .cluster
        .read_with(at.replay_wait(Some(Duration::from_millis(30))))
        .await
        .unwrap();
    assert_eq!(conn.role(), Role::Primary);
    assert!(
        started.elapsed() <= Duration::from_millis(31),
        "{:?}",
        started.elapsed()
    );
    drop(conn);

    // `None` never asks: positions come from probes only.
    sim.replica(1).set_position(700);
    let conn = sim.cluster.read_with(at.replay_wait(None)).await.unwrap();
    assert_eq!(conn.role(), Role::Primary);
    drop(conn);
}

// ---- Breakers ----

#[tokio::test(start_paused = true)]
async fn a_replica_with_broken_connections_is_cut_off_by_its_breaker() {
    let sim = Sim::new(2, 8, |b| {
        b.breaker(touchy_breaker()).balancer(RoundRobin::new())
    });
    sim.replica(1).set_break_rate(1.0);
    let mut failed = 0;
    for _ in 0..20 {
        let mut conn = sim.cluster.read().await.unwrap();
        if let Err(e) = conn.query("SELECT 1").await {
            conn.report_error(&e);
            assert_eq!(conn.node_name(), "replica-1");
            failed += 1;
        }
    }
    // Round robin sends replica-1 every other read until its fourth failure opens the breaker.
    assert_eq!(failed, 4);
    assert_eq!(sim.node_breaker("replica-1"), BreakerState::Open);
    let snapshot = sim.cluster.snapshot();
    assert_eq!(snapshot.nodes[1].breaker.failed_calls, 4);
    assert!(snapshot.nodes[1].error_rate > 0.9);
    assert_eq!(sim.replica(2).stats().queries, 16);

    let err = sim.cluster.on("replica-1").await.unwrap_err();
    match err {
        Error::Unavailable(open) => {
            assert_eq!(&*open.node, "replica-1");
            assert_eq!(open.state, BreakerState::Open);
            assert!(open.retry_in.is_some());
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_replica_outage_opens_its_breaker() {
    let sim = Sim::new(2, 8, |b| {
        b.breaker(touchy_breaker()).balancer(RoundRobin::new())
    });
    // Four connections open, then the outage breaks them all.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(sim.cluster.on("replica-1").await.unwrap());
    }
    sim.replica(1).set_down(true);
    for mut conn in held {
        let err = conn.query("SELECT 1").await.unwrap_err();
        conn.report_error(&err);
    }
    assert_eq!(sim.node_breaker("replica-1"), BreakerState::Open);
    let served = sim.reads(10, AcquireOptions::new()).await;
    assert!(served.iter().all(|n| n == "replica-2"), "{served:?}");
    assert_eq!(sim.cluster.snapshot().nodes[1].breaker.rejected, 0);
}

#[tokio::test(start_paused = true)]
async fn a_primary_with_an_open_breaker_fails_writes_fast() {
    let sim = Sim::new(1, 8, |b| b.breaker(touchy_breaker()));
    sim.primary.set_break_rate(1.0);
    for _ in 0..4 {
        let mut conn = sim.cluster.write().await.unwrap();
        let err = conn.query("UPDATE t SET x = 1").await.unwrap_err();
        conn.report_error(&err);
    }
    assert_eq!(sim.node_breaker("primary"), BreakerState::Open);
    let queries = sim.primary.stats().queries;

    let before = Instant::now();
    for result in [
        sim.cluster.write().await,
        sim.cluster.route("INSERT INTO t VALUES (1)").await,
    ] {
        match result {
            Err(Error::Unavailable(open)) => {
                assert_eq!(&*open.node, "primary");
                assert_eq!(open.state, BreakerState::Open);
                let retry_in = open.retry_in.unwrap();
                assert!(retry_in > Duration::from_secs(7) && retry_in <= Duration::from_secs(10));
                let text = Error::Unavailable(open).to_string();
                assert!(text.contains("`primary`"), "{text}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert_eq!(
        Instant::now(),
        before,
        "an open breaker must not make writes wait"
    );
    assert_eq!(sim.primary.stats().queries, queries);
    // Reads are unaffected: the replica serves them.
    assert_eq!(sim.cluster.read().await.unwrap().role(), Role::Replica);
}

#[tokio::test(start_paused = true)]
async fn query_errors_that_are_the_callers_fault_do_not_open_a_breaker() {
    let sim = Sim::new(2, 8, |b| {
        b.breaker(touchy_breaker()).balancer(RoundRobin::new())
    });
    sim.replica(1).set_query_error_rate(1.0);
    let mut errors = 0;
    for _ in 0..40 {
        let mut conn = sim.cluster.read().await.unwrap();
        if let Err(e) = conn.query("SELECT * FROM missing_table").await {
            assert!(matches!(e, seawall::sim::SimError::Query { .. }));
            conn.report_error(&e);
            errors += 1;
        }
    }
    assert_eq!(errors, 20, "replica-1 kept its share of reads");
    let replica = &sim.cluster.snapshot().nodes[1];
    assert_eq!(replica.breaker.state, BreakerState::Closed);
    assert_eq!(replica.breaker.failed_calls, 0);
    assert_eq!(replica.breaker.trips, 0);
    assert_eq!(replica.error_rate, 0.0);
}

// ---- Admission ----

#[tokio::test(start_paused = true)]
async fn in_flight_per_node_never_exceeds_the_admission_limit() {
    let sim = Sim::new(2, 8, |b| {
        b.limiter(fixed_limit(3)).admission(AdmissionConfig {
            codel: None,
            ..AdmissionConfig::default()
        })
    });
    for db in std::iter::once(&sim.primary).chain(&sim.replicas) {
        db.set_service_time(ServiceTime::Fixed(Duration::from_millis(5)));
    }
    let peak_admitted = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let cluster = sim.cluster.clone();
        let peak = peak_admitted.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = if i % 3 == 0 {
                cluster.write().await.unwrap()
            } else {
                cluster.read().await.unwrap()
            };
            let in_flight = conn.node().admission().snapshot().in_flight;
            {
                let mut peak = peak.lock();
                *peak = (*peak).max(in_flight);
            }
            conn.query("SELECT 1").await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*peak_admitted.lock(), 3);
    for db in std::iter::once(&sim.primary).chain(&sim.replicas) {
        let stats = db.stats();
        assert!(stats.queries > 0, "{}", db.name());
        assert_eq!(stats.peak_running, 3, "{}", db.name());
    }
    assert_eq!(sim.primary.stats().queries, 20);
    for node in sim.cluster.snapshot().nodes {
        assert_eq!(node.admission.limit, 3);
        assert!(node.pool.size <= 3, "{}: {}", node.name, node.pool.size);
    }
}

#[tokio::test(start_paused = true)]
async fn writes_get_priority_over_reads_on_the_primary() {
    let sim = Sim::new(0, 8, |b| b.limiter(fixed_limit(1)));
    let held = sim.cluster.write().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));

    let spawn = |write: bool| {
        let cluster = sim.cluster.clone();
        let order = order.clone();
        tokio::spawn(async move {
            let mut conn = if write {
                cluster.write().await.unwrap()
            } else {
                cluster.read().await.unwrap()
            };
            order.lock().push(if write { "write" } else { "read" });
            conn.query("SELECT 1").await.unwrap();
        })
    };
    let read = spawn(false);
    sleep(Duration::from_micros(100)).await;
    let write = spawn(true);
    sleep(Duration::from_micros(100)).await;
    let admission = sim.cluster.node("primary").unwrap().admission().snapshot();
    assert_eq!(admission.queue_len, 2);

    drop(held);
    read.await.unwrap();
    write.await.unwrap();
    assert_eq!(
        *order.lock(),
        ["write", "read"],
        "the later write went first"
    );
}

#[tokio::test(start_paused = true)]
async fn overloaded_says_which_node_and_how_full() {
    // PoolSize: the limit is the pool's size, 2.
    let sim = Sim::new(0, 2, |b| {
        b.limiter(LimiterKind::PoolSize).admission(no_queue())
    });
    let _a = sim.cluster.write().await.unwrap();
    let _b = sim.cluster.write().await.unwrap();
    match sim.cluster.write().await {
        Err(Error::Overloaded(o)) => {
            assert_eq!(&*o.node, "primary");
            assert_eq!((o.in_flight, o.limit), (2, 2));
            assert_eq!(o.reason, ShedReason::QueueFull);
            let text = Error::Overloaded(o).to_string();
            assert!(text.contains("`primary`") && text.contains("2/2"), "{text}");
        }
        other => panic!("expected Overloaded, got {other:?}"),
    }

    // With a queue, a write waits until its own deadline, then says how long it queued.
    let sim = Sim::new(0, 2, |b| b.limiter(fixed_limit(1)));
    let _held = sim.cluster.write().await.unwrap();
    let before = Instant::now();
    let timeout = Duration::from_millis(20);
    match sim
        .cluster
        .write_with(AcquireOptions::new().timeout(timeout))
        .await
    {
        Err(Error::Overloaded(o)) => {
            assert_eq!(o.reason, ShedReason::Deadline);
            assert_eq!((o.in_flight, o.limit), (1, 1));
            assert_eq!(o.queued_for, timeout);
        }
        other => panic!("expected Overloaded, got {other:?}"),
    }
    assert_eq!(before.elapsed(), timeout);
}

#[tokio::test(start_paused = true)]
async fn a_full_replica_is_skipped_for_the_next() {
    let sim = Sim::new(2, 8, |b| {
        b.limiter(fixed_limit(1))
            .admission(no_queue())
            .balancer(RoundRobin::new())
    });
    let _on_first = sim.cluster.on("replica-1").await.unwrap();
    // Round robin picks replica-1 first; it refuses at once, so replica-2 serves.
    let second = sim.cluster.read().await.unwrap();
    assert_eq!(second.node_name(), "replica-2");
    // Both full: the primary takes the read within its budget.
    let third = sim.cluster.read().await.unwrap();
    assert_eq!(third.node_name(), "primary");
    let why = no_replica(
        sim.cluster
            .read_with(AcquireOptions::new().replica_only())
            .await,
    );
    assert_eq!((why.refused, why.unreachable), (2, 0));
    let text = Error::NoReplica(why).to_string();
    assert!(text.contains("2 busy (refused at once)"), "{text}");
    assert!(text.contains("nodes: `primary` (primary, up)"), "{text}");
}

// ---- Topology ----

#[tokio::test(start_paused = true)]
async fn replicas_can_be_added_and_removed_at_run_time() {
    let sim = Sim::new(1, 8, |b| {
        b.balancer(RoundRobin::new())
            .max_replica_lag(Some(Duration::from_secs(1)))
    });
    sim.cluster.probe_now().await;
    let extra = backend("replica-3", false, 9);
    sim.cluster
        .add_replica("replica-3", pool(&extra, 8))
        .unwrap();
    // Its lag is unknown until a probe: not yet eligible under a lag bound.
    let served = sim.reads(4, AcquireOptions::new()).await;
    assert!(served.iter().all(|n| n == "replica-1"), "{served:?}");
    sim.cluster.probe_now().await;
    let served = sim.reads(4, AcquireOptions::new()).await;
    assert_eq!(served.iter().filter(|n| *n == "replica-3").count(), 2);
    assert_eq!(extra.stats().queries, 2);
    assert_eq!(sim.cluster.snapshot().nodes.len(), 3);

    for taken in ["replica-3", "primary", ""] {
        let err = sim
            .cluster
            .add_replica(taken, pool(&backend("x", false, 0), 1))
            .unwrap_err();
        assert_eq!(err.field, "replica");
    }

    // A handle already out keeps working after its replica is removed.
    let mut out = sim.cluster.on("replica-1").await.unwrap();
    let removed = sim.cluster.remove_replica("replica-1").unwrap();
    assert_eq!(removed.name(), "replica-1");
    out.query("SELECT 1").await.unwrap();
    drop(out);
    let served = sim.reads(6, AcquireOptions::new()).await;
    assert!(served.iter().all(|n| n == "replica-3"), "{served:?}");
    assert!(matches!(
        sim.cluster.on("replica-1").await,
        Err(Error::UnknownNode { name }) if name == "replica-1"
    ));

    // The last replica gone, reads fall back to the primary.
    sim.cluster.remove_replica("replica-3").unwrap();
    assert_eq!(sim.cluster.read().await.unwrap().role(), Role::Primary);
    assert_eq!(sim.cluster.snapshot().nodes.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn unknown_node_names_are_errors() {
    let sim = Sim::new(1, 8, |b| b);
    match sim.cluster.on("nope").await {
        Err(e @ Error::UnknownNode { .. }) => assert_eq!(e.to_string(), "unknown node `nope`"),
        other => panic!("expected UnknownNode, got {other:?}"),
    }
    assert!(matches!(
        sim.cluster.remove_replica("nope"),
        Err(Error::UnknownNode { name }) if name == "nope"
    ));
    // The primary is not a replica to remove.
    assert!(matches!(
        sim.cluster.remove_replica("primary"),
        Err(Error::UnknownNode { .. })
    ));
    assert!(matches!(
        sim.cluster.node("nope"),
        Err(Error::UnknownNode { .. })
    ));
    assert_eq!(
        sim.cluster.on("primary").await.unwrap().role(),
        Role::Primary
    );
    assert_eq!(
        sim.cluster.on("replica-1").await.unwrap().role(),
        Role::Replica
    );
}

#[tokio::test(start_paused = true)]
async fn bad_configurations_fail_at_build_naming_the_field() {
    let db = |name: &str| {
        let sim = backend(if name.is_empty() { "unnamed" } else { name }, false, 0);
        pool(&sim, 2)
    };

    let err = Cluster::builder()
        .replica("replica-1", db("replica-1"))
        .build()
        .unwrap_err();
    assert_eq!(err.field, "primary");
    assert!(err.to_string().contains("primary"), "{err}");

    for (primary, replicas) in [
        ("a", &["a"][..]),
        ("a", &["b", "b"][..]),
        ("", &[][..]),
        ("a", &[""][..]),
    ] {
        let mut builder = Cluster::builder().primary(primary, db(primary));
        for name in replicas {
            builder = builder.replica(*name, db(name));
        }
        let err = builder.build().unwrap_err();
        assert_eq!(err.field, "replica", "{primary} {replicas:?}");
    }

    for share in [-0.1, 1.5, f64::NAN] {
        let err = Cluster::builder()
            .primary("p", db("p"))
            .primary_read_share(share)
            .build()
            .unwrap_err();
        assert_eq!(err.field, "primary_read_share", "{share}");
    }
    for share in [0.0, 1.0] {
        Cluster::builder()
            .primary("p", db("p"))
            .primary_read_share(share)
            .build()
            .unwrap();
    }
    let err = Cluster::builder()
        .primary("p", db("p"))
        .acquire_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field, "acquire_timeout");
    let err = Cluster::builder()
        .primary("p", db("p"))
        .probe_interval(Some(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(err.field, "probe_interval");
}

// ---- Observability ----

#[tokio::test(start_paused = true)]
async fn the_snapshot_shows_every_node() {
    let sim = Sim::new(2, 8, |b| {
        b.limiter(LimiterKind::PoolSize)
            .balancer(RoundRobin::new())
            .breaker(touchy_breaker())
    });
    for db in &sim.replicas {
        db.set_lag(Some(Duration::from_millis(40)));
    }
    sim.cluster.probe_now().await;
    sim.reads(4, AcquireOptions::new()).await;
    let _write = sim.cluster.write().await.unwrap();
    let _read = sim.cluster.on("replica-2").await.unwrap();

    let snapshot = sim.cluster.snapshot();
    let names: Vec<&str> = snapshot.nodes.iter().map(|n| &*n.name).collect();
    assert_eq!(names, ["primary", "replica-1", "replica-2"]);
    assert_eq!(snapshot.fallback_reads_in_flight, 0);

    let [primary, first, second] = &snapshot.nodes[..] else {
        panic!("three nodes expected");
    };
    assert_eq!(primary.role, Role::Primary);
    assert_eq!(primary.replication_lag, Some(Duration::ZERO));
    assert_eq!(primary.in_flight, 1);
    assert_eq!(primary.admission.in_flight, 1);
    assert_eq!(primary.pool.in_use, 1);
    for replica in [first, second] {
        assert_eq!(replica.role, Role::Replica);
        assert_eq!(replica.replication_lag, Some(Duration::from_millis(40)));
        assert!(replica.latency > Duration::from_micros(900), "{replica:?}");
        assert!(replica.latency < Duration::from_millis(30), "{replica:?}");
        assert_eq!(replica.breaker.state, BreakerState::Closed);
        assert_eq!(replica.error_rate, 0.0);
    }
    assert_eq!(first.breaker.calls, 2);
    assert_eq!(second.admission.admitted, 3);
    assert_eq!((second.in_flight, second.pool.in_use), (1, 1));
    for node in &snapshot.nodes {
        assert_eq!(node.pool.max_size, 8);
        assert_eq!(node.admission.limit, 8);
    }
    let text = format!("{snapshot:?}");
    assert!(text.contains("replica-2"));
}

// ---- Load-aware balancing ----

#[tokio::test(start_paused = true)]
async fn p2c_sends_most_reads_to_the_fast_replica() {
    let sim = Sim::new(2, 16, |b| b);
    for db in std::iter::once(&sim.primary).chain(&sim.replicas) {
        db.set_service_time(ServiceTime::Exponential(Duration::from_millis(1)));
    }
    sim.replica(2).set_slowdown(10.0);

    async fn run(cluster: &Cluster<SimConnector>, workers: usize, reads: usize) {
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let cluster = cluster.clone();
                tokio::spawn(async move {
                    for _ in 0..reads {
                        let mut conn = cluster.read().await.unwrap();
                        conn.query("SELECT 1").await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }
    run(&sim.cluster, 8, 25).await; // warm-up
    let warm = sim.replica_queries();
    run(&sim.cluster, 8, 250).await;
    let after = sim.replica_queries();
    let fast = after[0] - warm[0];
    let slow = after[1] - warm[1];
    assert_eq!(fast + slow, 2000);
    let share = fast as f64 / 2000.0;
    assert!(share >= 0.9, "fast replica served {fast}, slow {slow}");
    assert_eq!(sim.primary.stats().queries, 0);
}

// ---- Bugs found ----

#[test]
fn a_refusing_replica_past_the_64th_does_not_spin_the_router() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let outcome = runtime.block_on(async {
            let sim = Sim::new(65, 1, |b| {
                b.limiter(LimiterKind::PoolSize)
                    .admission(no_queue())
                    .balancer(RoundRobin::new())
            });
            let mut held = Vec::new();
            for db in &sim.replicas {
                held.push(sim.cluster.on(db.name()).await.unwrap());
            }
            let result = sim
                .cluster
                .read_with(AcquireOptions::new().replica_only())
                .await;
            result.map(|conn| conn.node_name().to_owned())
        });
        let _ = tx.send(outcome);
    });
    let outcome = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the read never returned: the router spins on the 65th replica");
    match outcome {
        Err(Error::NoReplica(why)) => assert_eq!(why.refused, 65),
        other => panic!("expected NoReplica, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_replica_refusing_connections_does_not_hold_reads_for_the_acquire_timeout() {
    // Round robin sends every other read to replica-1, which refuses every connect.
    let sim = Sim::new(2, 8, |b| {
        b.balancer(RoundRobin::new())
            .acquire_timeout(Duration::from_secs(2))
    });
    sim.replica(1).set_down(true);
    for _ in 0..6 {
        let before = Instant::now();
        let conn = sim.cluster.read().await;
        let waited = before.elapsed();
        let conn = conn.unwrap_or_else(|e| panic!("read failed after {waited:?}: {e}"));
        assert_eq!(conn.node_name(), "replica-2");
        assert!(waited < Duration::from_millis(100), "waited {waited:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_whose_work_failed_on_transport_is_closed_not_reused() {
    let sim = Sim::new(1, 4, |b| b);
    let mut conn = sim.cluster.write().await.unwrap();
    let id = conn.id();
    conn.break_connection();
    let err = conn.query("UPDATE t SET x = 1").await.unwrap_err();
    conn.report_error(&err);
    drop(conn);
    let primary = sim.cluster.node("primary").unwrap();
    let state = primary.pool().state();
    assert_eq!((state.size, state.idle), (0, 0), "{state:?}");
    assert_eq!(state.totals.broken, 1);

    // A caller's mistake does not cost the connection.
    sim.primary.set_query_error_rate(1.0);
    let mut conn = sim.cluster.write().await.unwrap();
    let kept = conn.id();
    assert_ne!(kept, id);
    let err = conn.query("INSERT INTO t VALUES (1)").await.unwrap_err();
    conn.report_error(&err);
    drop(conn);
    let state = primary.pool().state();
    assert_eq!((state.size, state.idle), (1, 1), "{state:?}");
}

// ---- Readiness ----

#[tokio::test(start_paused = true)]
async fn ready_says_what_is_missing() {
    let sim = Sim::new(1, 2, |b| b);
    assert_eq!(sim.cluster.ready(), Ok(()));
    // Three failed probes in a row mark a node down.
    sim.primary.set_down(true);
    for _ in 0..3 {
        sim.cluster.probe_now().await;
    }
    assert_eq!(sim.cluster.ready(), Err(NotReady::NoPrimary));
    sim.primary.set_down(false);
    for _ in 0..3 {
        sim.cluster.probe_now().await;
    }
    assert_eq!(sim.cluster.ready(), Ok(()));
    sim.cluster.close().await;
    assert_eq!(sim.cluster.ready(), Err(NotReady::Closed));
    assert!(matches!(
        sim.cluster.write().await,
        Err(Error::Closed { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn no_replica_says_when_the_primary_is_down_rather_than_its_budget() {
    let sim = Sim::new(1, 2, |b| b);
    sim.replica(1).set_down(true);
    sim.primary.set_down(true);
    for _ in 0..3 {
        sim.cluster.probe_now().await;
    }
    let why = no_replica(sim.cluster.read().await);
    assert!(why.primary_down);
    let text = Error::NoReplica(why).to_string();
    assert!(
        text.contains("1 down) and no usable primary to fall back to"),
        "{text}"
    );
    assert!(!text.contains("budget"), "{text}");
}
