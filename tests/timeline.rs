//! Timelines over simulated backends, under paused time: a node that reports primary on an
//! older timeline than another node never takes writes (with or without an HA manager), and a
//! read-your-writes read whose position was taken on an older timeline goes to the primary.

use std::sync::Arc;
use std::time::Duration;

use seawall::cluster::{AcquireOptions, Cluster, ClusterBuilder};
use seawall::failover::HealthConfig;
use seawall::pool::Pool;
use seawall::sim::{SimBackend, SimConnector};
use seawall::topology::{Member, MemberRole, Static, Topology};
use seawall::{ClusterEvent, Error};
use tokio::time::sleep;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// n0 (primary), n1, n2, all on timeline 1.
fn backends() -> Vec<Arc<SimBackend>> {
    (0..3)
        .map(|i| {
            let db = SimBackend::builder(format!("n{i}"))
                .primary(i == 0)
                .seed(i as u64 + 7)
                .build();
            db.set_timeline(Some(1));
            db
        })
        .collect()
}

fn pool(db: &Arc<SimBackend>) -> Pool<SimConnector> {
    Pool::builder(db.connector())
        .name(db.name())
        .max_size(4)
        .build()
        .unwrap()
}

/// A cluster over the backends (n0 primary), probed every 100 ms, 500 ms deadlines.
fn builder(dbs: &[Arc<SimBackend>]) -> ClusterBuilder<SimConnector> {
    Cluster::builder()
        .primary("n0", pool(&dbs[0]))
        .replica("n1", pool(&dbs[1]))
        .replica("n2", pool(&dbs[2]))
        .health(
            HealthConfig::default()
                .with_interval(Some(ms(100)))
                .with_timeout(ms(50)),
        )
        .acquire_timeout(ms(500))
}

/// Where a write lands, or why it could not.
async fn write(cluster: &Cluster<SimConnector>) -> Result<String, Error> {
    let mut conn = cluster
        .write_with(AcquireOptions::new().timeout(ms(200)))
        .await?;
    conn.query("UPDATE t SET x = 1").await.unwrap();
    Ok(conn.node_name().to_owned())
}

fn stale_announced(
    events: &mut tokio::sync::broadcast::Receiver<ClusterEvent>,
    name: &str,
) -> bool {
    let mut seen = false;
    while let Ok(e) = events.try_recv() {
        seen |= matches!(e, ClusterEvent::StaleTimeline { ref node, timeline: 1, highest: 2 } if &**node == name);
    }
    seen
}

/// Without an HA manager: n1 is promoted (timeline 2) while n0 stays writable on timeline 1 (a
/// partition, a frozen agent). Both say "primary"; the newer history wins: writes move to n1,
/// n0 is fenced and announced, and only comes back once it reports being a replica. (Without
/// timelines the newcomer would have been the one fenced.)
#[tokio::test(start_paused = true)]
async fn a_primary_on_an_older_timeline_never_takes_writes() {
    let dbs = backends();
    let cluster = builder(&dbs).build().unwrap();
    let mut events = cluster.subscribe();
    assert_eq!(write(&cluster).await.unwrap(), "n0");
    sleep(ms(150)).await;
    assert_eq!(cluster.node("n0").unwrap().timeline(), Some(1));

    dbs[1].set_timeline(Some(2));
    dbs[1].set_primary(true);
    sleep(ms(250)).await;
    let n0 = cluster.node("n0").unwrap();
    assert!(n0.is_fenced(), "the old-timeline primary is not fenced");
    assert!(stale_announced(&mut events, "n0"), "not announced");
    let before = dbs[0].stats().queries;
    for _ in 0..20 {
        assert_eq!(write(&cluster).await.unwrap(), "n1");
        sleep(ms(20)).await;
    }
    assert_eq!(dbs[0].stats().queries, before, "a statement reached n0");
    // Reads stay off it too while it is fenced.
    for _ in 0..20 {
        let conn = cluster
            .read_with(AcquireOptions::new().replica_only())
            .await
            .unwrap();
        assert_eq!(conn.node_name(), "n2");
    }

    // Rewound and following n1: a replica on timeline 2, used for reads again.
    dbs[0].set_primary(false);
    dbs[0].set_timeline(Some(2));
    sleep(ms(250)).await;
    assert!(!cluster.node("n0").unwrap().is_fenced());
    assert_eq!(write(&cluster).await.unwrap(), "n1");
}

/// Which comes first does not matter: the old primary is fenced for its timeline even when the
/// cluster learns the newer timeline from a replica streaming it.
#[tokio::test(start_paused = true)]
async fn a_replica_on_a_newer_timeline_fences_the_primary() {
    let dbs = backends();
    let cluster = builder(&dbs).build().unwrap();
    assert_eq!(write(&cluster).await.unwrap(), "n0");
    // n2 streams from a primary this cluster does not know, on timeline 2.
    dbs[2].set_timeline(Some(2));
    sleep(ms(250)).await;
    assert!(cluster.node("n0").unwrap().is_fenced());
    let refused = write(&cluster).await;
    assert!(
        matches!(refused, Err(Error::NoPrimary { .. })),
        "{refused:?}"
    );
}

/// With an HA manager that still names n0 (it has not noticed, or lies): n0 is on the older
/// timeline and n1, on the newer one, is not named. Neither takes a write; writes wait and fail
/// typed at their deadline, then resume on n1 once it is named.
#[tokio::test(start_paused = true)]
async fn a_named_leader_on_an_older_timeline_is_refused() {
    let dbs = backends();
    let members = |leader: &str| {
        Topology::new(
            (0..3)
                .map(|i| {
                    let name = format!("n{i}");
                    let role = if name == leader {
                        MemberRole::Leader
                    } else {
                        MemberRole::Replica
                    };
                    Member::new(name, role, "127.0.0.1", 5432 + i)
                })
                .collect(),
        )
    };
    let source = Static::new(members("n0"));
    let cluster = builder(&dbs)
        .topology(source.clone())
        .topology_interval(ms(50))
        .build()
        .unwrap();
    assert_eq!(write(&cluster).await.unwrap(), "n0");

    dbs[1].set_timeline(Some(2));
    dbs[1].set_primary(true);
    sleep(ms(250)).await;
    let (q0, q1) = (dbs[0].stats().queries, dbs[1].stats().queries);
    for _ in 0..5 {
        let refused = write(&cluster).await;
        assert!(
            matches!(refused, Err(Error::NoPrimary { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(
        (dbs[0].stats().queries, dbs[1].stats().queries),
        (q0, q1),
        "a write reached a node that is not both named and on the newest timeline"
    );

    source.set(Ok(members("n1")));
    sleep(ms(150)).await;
    assert_eq!(write(&cluster).await.unwrap(), "n1");
}

/// Read-your-writes across a failover. Before: a token on timeline 1 is served by a replica on
/// timeline 1 that has replayed it, never by one whose timeline is unknown. After n1 takes
/// over on timeline 2: a token from timeline 1 reads on the primary (whatever the replicas'
/// positions), a token from timeline 2 on a replica that streams timeline 2 and replayed it.
#[tokio::test(start_paused = true)]
async fn tokens_from_an_older_timeline_read_on_the_primary() {
    let dbs = backends();
    dbs[2].set_timeline(None);
    for db in &dbs {
        db.set_position(1000);
    }
    let cluster = builder(&dbs).build().unwrap();
    sleep(ms(150)).await;
    let on_tl = |timeline: u32, position: u64| {
        AcquireOptions::new()
            .min_position(position)
            .timeline(timeline)
    };
    for _ in 0..10 {
        let picked = cluster.pick_read_node(&on_tl(1, 900)).unwrap();
        assert_eq!(picked.name(), "n1", "a replica of unknown timeline served");
    }
    // A token without a timeline: positions alone, as before.
    let mut names = std::collections::HashSet::new();
    for _ in 0..40 {
        let picked = cluster
            .pick_read_node(&AcquireOptions::new().min_position(900_u64))
            .unwrap();
        names.insert(picked.name().to_owned());
    }
    assert_eq!(names.len(), 2, "{names:?}");

    // Failover: n0 dies, n1 is promoted on timeline 2, n2 follows it.
    dbs[0].set_down(true);
    dbs[1].set_timeline(Some(2));
    dbs[1].set_primary(true);
    dbs[1].set_position(5000);
    dbs[2].set_timeline(Some(2));
    dbs[2].set_position(4000);
    sleep(ms(1000)).await;
    assert_eq!(write(&cluster).await.unwrap(), "n1");

    let why = cluster.pick_read_node(&on_tl(1, 900)).unwrap_err();
    assert!(why.older_timeline >= 1, "{why:?}");
    let conn = cluster.read_with(on_tl(1, 900)).await.unwrap();
    assert_eq!(
        conn.node_name(),
        "n1",
        "an old-timeline token read off the primary"
    );
    drop(conn);
    assert_eq!(
        cluster.pick_read_node(&on_tl(2, 3500)).unwrap().name(),
        "n2"
    );
    let conn = cluster.read_with(on_tl(2, 4500)).await.unwrap();
    assert_eq!(conn.node_name(), "n1", "n2 has not replayed 4500");
}
