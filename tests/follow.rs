//! Following an HA manager ([`seawall::topology`]) over simulated backends, under paused time:
//! writes go only to the leader the source names, once it is writable; a writable node it does
//! not name is fenced; every instance of the application follows the same leader.

use std::sync::Arc;
use std::time::Duration;

use seawall::cluster::{AcquireOptions, Cluster, ClusterBuilder};
use seawall::failover::{HealthConfig, PromotionConfig};
use seawall::pool::Pool;
use seawall::sim::{SimBackend, SimConnector, SimPromoter};
use seawall::topology::{Member, MemberRole, Static, Topology, TopologyError};
use seawall::{ClusterEvent, Error};
use tokio::time::sleep;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Members n0, n1, n2 with `leader` (if any) as leader.
fn topology(leader: Option<&str>) -> Topology {
    Topology::new(
        ["n0", "n1", "n2"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let role = if Some(*name) == leader {
                    MemberRole::Leader
                } else {
                    MemberRole::Replica
                };
                Member::new(*name, role, "127.0.0.1", 5432 + i as u16)
            })
            .collect(),
    )
}

struct Bed {
    dbs: Vec<Arc<SimBackend>>,
    source: Static,
}

impl Bed {
    fn new() -> Bed {
        let dbs = (0..3)
            .map(|i| {
                SimBackend::builder(format!("n{i}"))
                    .primary(i == 0)
                    .seed(i as u64 + 1)
                    .build()
            })
            .collect();
        Bed {
            dbs,
            source: Static::new(topology(Some("n0"))),
        }
    }

    /// One application instance: its own cluster and pools over the shared backends.
    fn instance(&self) -> Cluster<SimConnector> {
        self.follower(&["n0", "n1", "n2"]).build().unwrap()
    }

    /// A pool of 4 over the backend called `name`.
    fn pool(dbs: &[Arc<SimBackend>], name: &str) -> Pool<SimConnector> {
        let db = dbs.iter().find(|d| d.name() == name).unwrap();
        Pool::builder(db.connector())
            .name(name)
            .max_size(4)
            .build()
            .unwrap()
    }

    /// A cluster builder over `nodes` (the first as primary) following the bed's source:
    /// probes every 100 ms, the source asked every 50 ms, 500 ms deadlines.
    fn follower(&self, nodes: &[&str]) -> ClusterBuilder<SimConnector> {
        let mut builder = Cluster::builder()
            .primary(nodes[0], Bed::pool(&self.dbs, nodes[0]))
            .health(
                HealthConfig::default()
                    .with_interval(Some(ms(100)))
                    .with_timeout(ms(50)),
            )
            .topology(self.source.clone())
            .topology_interval(ms(50))
            .acquire_timeout(ms(500));
        for name in &nodes[1..] {
            builder = builder.replica(*name, Bed::pool(&self.dbs, name));
        }
        builder
    }
}

/// Where one write lands (the node's name), or its error.
async fn write(cluster: &Cluster<SimConnector>) -> Result<String, Error> {
    let mut conn = cluster.write().await?;
    conn.query("UPDATE t SET x = 1").await.unwrap();
    Ok(conn.node_name().to_owned())
}

/// Where a write with this deadline lands.
async fn write_within(cluster: &Cluster<SimConnector>, deadline: Duration) -> String {
    let conn = cluster
        .write_with(AcquireOptions::new().timeout(deadline))
        .await
        .unwrap();
    conn.node_name().to_owned()
}

/// A write with a 200 ms deadline finds no primary and fails with `NoPrimary`.
async fn assert_writes_wait(cluster: &Cluster<SimConnector>) {
    let waited = cluster
        .write_with(AcquireOptions::new().timeout(ms(200)))
        .await
        .map(|c| c.node_name().to_owned());
    assert!(matches!(waited, Err(Error::NoPrimary { .. })), "{waited:?}");
}

/// The HA manager promotes n1 while n0's agent is frozen and n0 stays writable: once the source
/// names n1, no write goes to n0, and n0 is fenced.
#[tokio::test(start_paused = true)]
async fn writes_follow_the_named_leader_not_whoever_is_writable() {
    let bed = Bed::new();
    let cluster = bed.instance();
    assert_eq!(write(&cluster).await.unwrap(), "n0");

    // n1 promoted; n0 still writable (its HA agent is frozen); the leader key moves to n1.
    bed.dbs[1].set_primary(true);
    bed.source.set(Ok(topology(Some("n1"))));
    let named_at = tokio::time::Instant::now();
    let mut first_on_n1 = None;
    for _ in 0..40 {
        let node = write(&cluster).await.unwrap();
        let at = named_at.elapsed();
        if node == "n0" {
            // Only before the watcher's next ask (50 ms).
            assert!(at <= ms(60), "a write reached n0 {at:?} after n1 was named");
        }
        if node == "n1" && first_on_n1.is_none() {
            first_on_n1 = Some(at);
        }
        sleep(ms(10)).await;
    }
    let followed = first_on_n1.expect("no write reached the named leader");
    assert!(
        followed <= ms(100),
        "first write on n1 {followed:?} after it was named"
    );
    assert!(cluster.node("n0").unwrap().is_fenced());

    // n0 demoted by its thawed agent: a replica again, unfenced, reads may use it.
    bed.dbs[0].set_primary(false);
    sleep(ms(300)).await;
    assert!(!cluster.node("n0").unwrap().is_fenced());
}

/// A writable node the source does not name is fenced (split brain announced) and never takes
/// writes; while the source names no leader, writes wait, then resume on the one it names.
#[tokio::test(start_paused = true)]
async fn an_unnamed_writable_node_is_fenced_and_no_leader_means_writes_wait() {
    let bed = Bed::new();
    let cluster = bed.instance();
    let mut events = cluster.subscribe();
    bed.dbs[2].set_primary(true);
    sleep(ms(300)).await;
    assert!(cluster.node("n2").unwrap().is_fenced());
    for _ in 0..10 {
        assert_eq!(write(&cluster).await.unwrap(), "n0");
    }
    let mut split = false;
    while let Ok(e) = events.try_recv() {
        split |= matches!(e, ClusterEvent::SplitBrain { ref node, .. } if &**node == "n2");
    }
    assert!(split, "the split brain was not announced");

    // A failover in progress: no leader named. Writes wait (bounded by their deadline).
    bed.source.set(Ok(topology(None)));
    sleep(ms(100)).await;
    assert_writes_wait(&cluster).await;

    // The manager settles on n2 (already writable): writes resume there at once.
    bed.source.set(Ok(topology(Some("n2"))));
    bed.dbs[0].set_primary(false);
    let t = tokio::time::Instant::now();
    let node = write_within(&cluster, ms(1000)).await;
    assert_eq!(node, "n2");
    assert!(t.elapsed() <= ms(100), "resumed after {:?}", t.elapsed());
}

/// Every instance of the application follows the same leader: after the move, no instance
/// writes anywhere else, whichever of them noticed first.
#[tokio::test(start_paused = true)]
async fn a_fleet_of_instances_follows_one_leader() {
    let bed = Bed::new();
    let fleet: Vec<_> = (0..5).map(|_| bed.instance()).collect();
    for c in &fleet {
        assert_eq!(write(c).await.unwrap(), "n0");
    }
    bed.dbs[1].set_primary(true);
    bed.source.set(Ok(topology(Some("n1"))));
    sleep(ms(200)).await;
    let before = bed.dbs[0].stats().queries;
    for _ in 0..5 {
        for c in &fleet {
            assert_eq!(write(c).await.unwrap(), "n1");
        }
    }
    assert_eq!(
        bed.dbs[0].stats().queries,
        before,
        "a write reached the old primary"
    );
}

/// A source that stops answering changes nothing: the last leader it named stands.
#[tokio::test(start_paused = true)]
async fn a_failing_source_keeps_the_last_leader() {
    let bed = Bed::new();
    let cluster = bed.instance();
    assert_eq!(write(&cluster).await.unwrap(), "n0");
    bed.source.set(Err(TopologyError::Unreachable {
        tried: vec![("http://127.0.0.1:1".into(), "connection refused".into())],
    }));
    sleep(ms(500)).await;
    for _ in 0..5 {
        assert_eq!(write(&cluster).await.unwrap(), "n0");
    }
}

/// Promotion belongs to the HA manager: a cluster that would promote on its own beside it is
/// refused at build time, naming the setting.
#[tokio::test(start_paused = true)]
async fn auto_failover_with_a_topology_source_is_refused() {
    let bed = Bed::new();
    let e = Cluster::builder()
        .primary(
            "n0",
            Pool::builder(bed.dbs[0].connector())
                .name("n0")
                .build()
                .unwrap(),
        )
        .topology(bed.source.clone())
        .auto_failover(SimPromoter::new(ms(10)), PromotionConfig::default())
        .build()
        .unwrap_err();
    assert_eq!(e.field, "auto_failover");
    assert!(e.to_string().contains("HA manager"), "{e}");
}

/// Members the source adds get a pool (through `topology_members`) and take reads once their
/// probes prove them healthy; a replica the source stops listing is removed and drained.
#[tokio::test(start_paused = true)]
async fn members_the_source_adds_take_reads_and_removed_ones_drain() {
    let bed = Bed::new();
    let two = |leader: &str| {
        Topology::new(vec![
            Member::new("n0", MemberRole::Leader, "127.0.0.1", 5432),
            Member::new(
                if leader == "n1" { "n1" } else { "n2" },
                MemberRole::Replica,
                "127.0.0.1",
                5433,
            ),
        ])
    };
    bed.source.set(Ok(two("n1")));
    let dbs = bed.dbs.clone();
    let cluster = bed
        .follower(&["n0", "n1"])
        .topology_members(move |m| Ok(Bed::pool(&dbs, &m.name)))
        .build()
        .unwrap();
    sleep(ms(200)).await;
    assert_eq!(cluster.nodes().len(), 2);

    // n2 joins the HA cluster.
    bed.source.set(Ok(topology(Some("n0"))));
    sleep(ms(60)).await;
    assert!(
        !cluster.node("n2").unwrap().is_up(),
        "a new member took work before a probe"
    );
    sleep(ms(400)).await;
    assert!(cluster.node("n2").unwrap().is_up());
    let mut on_n2 = 0;
    for _ in 0..40 {
        let conn = cluster
            .read_with(AcquireOptions::new().replica_only())
            .await
            .unwrap();
        on_n2 += usize::from(conn.node_name() == "n2");
    }
    assert!(on_n2 > 0, "no read reached the new member");

    // n1 leaves it: removed, and its pool drained.
    let n1 = cluster.node("n1").unwrap();
    bed.source.set(Ok(two("n2")));
    sleep(ms(200)).await;
    assert!(matches!(cluster.node("n1"), Err(Error::UnknownNode { .. })));
    assert!(n1.pool().is_closed());
    for _ in 0..10 {
        let conn = cluster
            .read_with(AcquireOptions::new().replica_only())
            .await
            .unwrap();
        assert_eq!(conn.node_name(), "n2");
    }
}

/// A source that lies: it names a leader that answers as a replica, then one the cluster does
/// not know. No write goes to a node that is not both named and writable; writes wait (and fail
/// at their deadline, typed), and resume once the source names the real primary.
#[tokio::test(start_paused = true)]
async fn a_lying_source_never_gets_a_write_onto_a_non_leader() {
    let bed = Bed::new();
    let cluster = bed.instance();
    assert_eq!(write(&cluster).await.unwrap(), "n0");
    let queries = |i: usize| bed.dbs[i].stats().queries;

    // n1 named, but n1 is a replica (its probe says so): nothing is adopted.
    bed.source.set(Ok(topology(Some("n1"))));
    sleep(ms(200)).await;
    let before = (queries(0), queries(1));
    assert_writes_wait(&cluster).await;
    assert_eq!(
        (queries(0), queries(1)),
        before,
        "a write reached a non-leader"
    );

    // A leader the cluster does not know.
    let mut ghost = topology(None);
    ghost
        .members
        .push(Member::new("ghost", MemberRole::Leader, "10.9.9.9", 5432));
    bed.source.set(Ok(ghost));
    sleep(ms(200)).await;
    assert_writes_wait(&cluster).await;

    // The truth again: n0 leads and is writable.
    bed.source.set(Ok(topology(Some("n0"))));
    let node = write_within(&cluster, ms(1000)).await;
    assert_eq!(node, "n0");
}
