//! Embedded promotion in a fleet (issue 11, item 4): two application instances, each with its
//! own cluster over the same simulated servers, under paused time. Without a promotion lease a
//! partial partition splits the brain (the test shows it); with one, exactly one instance
//! promotes, the other stops writing to the old primary before the promotion, and both follow
//! the new primary. Also: two instances out of phase, a store that cannot be reached, and the
//! configurations `build` refuses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use seawall::breaker::Outcome;
use seawall::cluster::{Cluster, ClusterBuilder};
use seawall::driver::{Connector, NodeStatus};
use seawall::failover::{HealthConfig, MemoryLease, Promoter, PromotionConfig, PromotionLease};
use seawall::pool::Pool;
use seawall::sim::{SimBackend, SimConnection, SimError, SimPromoter};
use seawall::{ClusterEvent, DriverError, Error};
use tokio::time::{sleep, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A simulated server seen through one instance's network path, which the test can cut.
#[derive(Clone)]
struct Link {
    db: Arc<SimBackend>,
    cut: Arc<AtomicBool>,
}

impl Link {
    fn lost(&self) -> SimError {
        SimError::ConnectionLost {
            backend: self.db.name().into(),
        }
    }
    fn check(&self) -> Result<(), SimError> {
        if self.cut.load(Ordering::Relaxed) {
            Err(self.lost())
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Connector for Link {
    type Connection = SimConnection;
    type Error = SimError;

    async fn connect(&self) -> Result<SimConnection, SimError> {
        self.check()?;
        self.db.connector().connect().await
    }
    async fn ping(&self, conn: &mut SimConnection) -> Result<(), SimError> {
        self.check()?;
        self.db.connector().ping(conn).await
    }
    fn has_broken(&self, conn: &mut SimConnection) -> bool {
        self.cut.load(Ordering::Relaxed) || self.db.connector().has_broken(conn)
    }
    fn classify_error(&self, error: &SimError) -> Outcome {
        self.db.connector().classify_error(error)
    }
    fn is_read_only_error(&self, error: &SimError) -> bool {
        self.db.connector().is_read_only_error(error)
    }
    async fn probe(&self, conn: &mut SimConnection) -> Result<Option<NodeStatus>, SimError> {
        self.check()?;
        self.db.connector().probe(conn).await
    }
}

/// `SimPromoter` through a link.
struct Promote(SimPromoter, Arc<Mutex<Vec<String>>>);

#[async_trait]
impl Promoter<Link> for Promote {
    async fn promote(&self, pool: &Pool<Link>) -> Result<(), DriverError> {
        let link = pool.connector();
        link.check().map_err(DriverError::new)?;
        let sim_pool = Pool::builder(link.db.connector()).build().unwrap();
        self.0.promote(&sim_pool).await?;
        self.1.lock().push(link.db.name().to_owned());
        Ok(())
    }
}

struct Servers {
    primary: Arc<SimBackend>,
    replicas: Vec<Arc<SimBackend>>,
    promotions: Arc<Mutex<Vec<String>>>,
}

impl Servers {
    fn new() -> Servers {
        let backend = |name: &str, primary: bool, seed: u64| {
            let db = SimBackend::builder(name)
                .primary(primary)
                .seed(seed)
                .build();
            db.set_timeline(Some(1));
            db
        };
        let replicas = vec![
            backend("replica-1", false, 2),
            backend("replica-2", false, 3),
        ];
        replicas[0].set_position(100);
        replicas[1].set_position(90);
        Servers {
            primary: backend("primary", true, 1),
            replicas,
            promotions: Arc::default(),
        }
    }

    fn all(&self) -> Vec<Arc<SimBackend>> {
        let mut all = vec![self.primary.clone()];
        all.extend(self.replicas.iter().cloned());
        all
    }
}

/// One application instance: its own cluster, its own links (one cut switch for the primary).
struct Instance {
    cluster: Cluster<Link>,
    primary_cut: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<ClusterEvent>>>,
}

fn instance(
    servers: &Servers,
    lease: Option<&MemoryLease>,
    configure: impl FnOnce(ClusterBuilder<Link>) -> ClusterBuilder<Link>,
) -> Instance {
    let primary_cut = Arc::new(AtomicBool::new(false));
    let pool = |db: &Arc<SimBackend>, cut: &Arc<AtomicBool>| {
        let link = Link {
            db: db.clone(),
            cut: cut.clone(),
        };
        Pool::builder(link)
            .name(db.name())
            .max_size(4)
            .build()
            .unwrap()
    };
    let mut builder = Cluster::builder()
        .primary("primary", pool(&servers.primary, &primary_cut))
        .health(
            HealthConfig::default()
                .with_interval(Some(ms(100)))
                .with_timeout(ms(50))
                .with_thresholds(2, 1),
        )
        .acquire_timeout(ms(3000))
        .auto_failover(
            Promote(SimPromoter::new(ms(100)), servers.promotions.clone()),
            PromotionConfig::default().with_thresholds(2, ms(200)),
        );
    for db in &servers.replicas {
        builder = builder.replica(db.name(), pool(db, &Arc::new(AtomicBool::new(false))));
    }
    builder = match lease {
        Some(lease) => builder.promotion_lease(lease.clone()),
        None => builder.single_instance(),
    };
    let cluster = configure(builder).build().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut rx = cluster.subscribe();
    let log = events.clone();
    tokio::spawn(async move {
        while let Ok(event) = rx.recv().await {
            log.lock().push(event);
        }
    });
    Instance {
        cluster,
        primary_cut,
        events,
    }
}

/// An acknowledged write: which instance, on which server, when (since the start).
#[derive(Debug, Clone)]
struct Ack {
    instance: usize,
    node: String,
    at: Duration,
}

/// Each instance writes every 10 ms until `until`; returns the acknowledged writes.
async fn write_load(instances: &[&Instance], until: Duration) -> Vec<Ack> {
    let started = Instant::now();
    let acks = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (k, inst) in instances.iter().enumerate() {
        let cluster = inst.cluster.clone();
        let acks = acks.clone();
        tasks.push(tokio::spawn(async move {
            while started.elapsed() < until {
                if let Ok(mut conn) = cluster.write().await {
                    let node = conn.node_name().to_owned();
                    if conn
                        .query("INSERT INTO orders DEFAULT VALUES")
                        .await
                        .is_ok()
                    {
                        acks.lock().push(Ack {
                            instance: k,
                            node,
                            at: started.elapsed(),
                        });
                    }
                }
                sleep(ms(10)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let acks = acks.lock().clone();
    acks
}

/// The first instant (since `started`) a replica reported itself primary, polled every ms.
fn watch_promotion(servers: &Servers) -> Arc<Mutex<Option<Duration>>> {
    let promoted_at = Arc::new(Mutex::new(None));
    let seen = promoted_at.clone();
    let replicas = servers.replicas.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            if replicas.iter().any(|r| r.is_primary()) {
                *seen.lock() = Some(started.elapsed());
                return;
            }
            sleep(ms(1)).await;
        }
    });
    promoted_at
}

/// Instance 0 is cut off the primary at 1 s; instance 1 still reaches it. Returns the writes
/// acknowledged by the old primary after a replica became primary, and the promotions.
async fn partial_partition(lease: Option<MemoryLease>) -> (Vec<Ack>, Vec<String>, Vec<Ack>) {
    let servers = Servers::new();
    let a = instance(&servers, lease.as_ref(), |b| b);
    let b = instance(&servers, lease.as_ref(), |b| b);
    let promoted_at = watch_promotion(&servers);
    let cut = a.primary_cut.clone();
    tokio::spawn(async move {
        sleep(ms(1000)).await;
        cut.store(true, Ordering::Relaxed);
    });
    let acks = write_load(&[&a, &b], ms(8000)).await;
    let promoted_at = promoted_at.lock().expect("a replica was promoted");
    let on_old_after: Vec<Ack> = acks
        .iter()
        .filter(|w| w.node == "primary" && w.at >= promoted_at)
        .cloned()
        .collect();
    let promotions = servers.promotions.lock().clone();
    let last_on_old = acks
        .iter()
        .filter(|w| w.node == "primary")
        .map(|w| w.at)
        .max();
    eprintln!(
        "partition (lease: {}): promoted at {promoted_at:?}, last write on the old primary at \
         {last_on_old:?}, {} after the promotion, {} writes in all",
        lease.is_some(),
        on_old_after.len(),
        acks.len()
    );
    let tail: Vec<Ack> = acks.iter().filter(|w| w.at >= ms(7000)).cloned().collect();
    drop(servers.all());
    (on_old_after, promotions, tail)
}

#[tokio::test(start_paused = true)]
async fn without_a_lease_a_partial_partition_splits_the_brain() {
    let (on_old_after, promotions, _) = partial_partition(None).await;
    // The instance cut off promotes; the other keeps writing to the old primary.
    assert_eq!(promotions, ["replica-1"]);
    assert!(
        !on_old_after.is_empty(),
        "expected writes on the old primary after the promotion (the split this test shows)"
    );
}

#[tokio::test(start_paused = true)]
async fn with_a_lease_a_partial_partition_does_not_split_the_brain() {
    let lease = MemoryLease::default();
    let (on_old_after, promotions, tail) = partial_partition(Some(lease.clone())).await;
    assert_eq!(promotions, ["replica-1"], "exactly one promotion");
    assert!(
        on_old_after.is_empty(),
        "writes acknowledged by the old primary after the promotion: {on_old_after:?}"
    );
    assert_eq!(lease.primary().await.unwrap().as_deref(), Some("replica-1"));
    // Both instances write, and only to the new primary.
    for k in 0..2 {
        let mine: Vec<&Ack> = tail.iter().filter(|w| w.instance == k).collect();
        assert!(!mine.is_empty(), "instance {k} stopped writing");
        assert!(
            mine.iter().all(|w| w.node == "replica-1"),
            "instance {k}: {mine:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn two_instances_out_of_phase_promote_one_replica() {
    let servers = Servers::new();
    let lease = MemoryLease::default();
    let a = instance(&servers, Some(&lease), |b| b);
    sleep(ms(50)).await;
    let b = instance(&servers, Some(&lease), |b| b);
    let primary = servers.primary.clone();
    let replica = servers.replicas[0].clone();
    tokio::spawn(async move {
        sleep(ms(1000)).await;
        primary.set_down(true);
        // Still replaying when the primary fails: positions move under the promoters.
        for p in 101..=120 {
            sleep(ms(10)).await;
            replica.set_position(p);
        }
    });
    let acks = write_load(&[&a, &b], ms(8000)).await;
    let promoted: Vec<_> = servers.replicas.iter().filter(|r| r.is_primary()).collect();
    assert_eq!(promoted.len(), 1, "primaries among the replicas");
    assert_eq!(servers.promotions.lock().len(), 1);
    let new_primary = promoted[0].name().to_owned();
    for k in 0..2 {
        let last = acks.iter().rev().find(|w| w.instance == k).unwrap();
        assert_eq!(last.node, new_primary, "instance {k}");
    }
    let lost_race = a
        .events
        .lock()
        .iter()
        .chain(b.events.lock().iter())
        .filter(
            |e| matches!(e, ClusterEvent::PromotionFailed { error, .. } if error.contains("first")),
        )
        .count();
    eprintln!("lease: {lost_race} instance(s) lost the race and followed");
}

#[tokio::test(start_paused = true)]
async fn writes_wait_while_the_lease_cannot_be_read_and_resume_after() {
    let servers = Servers::new();
    let lease = MemoryLease::default();
    let a = instance(&servers, Some(&lease), |b| b.acquire_timeout(ms(1000)));
    // Before the first read of the record, a write waits for it (bounded by its deadline).
    let conn = a.cluster.write().await.unwrap();
    assert_eq!(conn.node_name(), "primary");
    drop(conn);

    lease.set_unreachable(true);
    // Within the validity (2 x 100 ms + 50 ms) the last read stands.
    sleep(ms(120)).await;
    assert!(a.cluster.write().await.is_ok());
    sleep(ms(400)).await;
    let started = Instant::now();
    let err = a.cluster.write().await.unwrap_err();
    assert!(matches!(err, Error::NoPrimary { .. }), "{err}");
    assert!(started.elapsed() >= ms(1000), "{:?}", started.elapsed());
    assert_eq!(servers.primary.stats().queries, 0);

    // Back: a waiting write goes as soon as the record is read again.
    let cluster = a.cluster.clone();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let conn = cluster.write().await.map(|c| c.node_name().to_owned());
        (conn, started.elapsed())
    });
    sleep(ms(300)).await;
    lease.set_unreachable(false);
    let (conn, waited) = waiting.await.unwrap();
    assert_eq!(conn.unwrap(), "primary");
    assert!(waited >= ms(300) && waited < ms(450), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn unsafe_promotion_settings_are_refused_at_build() {
    let db = SimBackend::builder("p").build();
    let pool = || Pool::builder(db.connector()).name("p").build().unwrap();
    let err = Cluster::builder()
        .primary("p", pool())
        .auto_failover(SimPromoter::default(), PromotionConfig::default())
        .build()
        .map(drop)
        .unwrap_err();
    assert_eq!(err.field, "auto_failover");
    assert!(err.to_string().contains("promotion lease"), "{err}");
    assert!(err.to_string().contains("single_instance"), "{err}");

    let err = Cluster::builder()
        .primary("p", pool())
        .promotion_lease(MemoryLease::default())
        .build()
        .map(drop)
        .unwrap_err();
    assert_eq!(err.field, "promotion_lease");

    for ok in [
        Cluster::builder()
            .primary("p", pool())
            .auto_failover(SimPromoter::default(), PromotionConfig::default())
            .single_instance()
            .build(),
        Cluster::builder()
            .primary("p", pool())
            .auto_failover(SimPromoter::default(), PromotionConfig::default())
            .promotion_lease(MemoryLease::default())
            .build(),
    ] {
        assert!(ok.is_ok());
    }
}
