//! The flight recorder: a bounded per-second history of every node's figures, under paused
//! time.

use std::time::Duration;

use seawall::breaker::BreakerState;
use seawall::cluster::{Cluster, RecorderConfig};
use seawall::pool::Pool;
use seawall::sim::{self, SimBackend};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// One sample a second, the oldest dropped past the limit; a replica's outage shows in the
/// seconds it lasted, and the route counts grow with the traffic.
#[tokio::test(start_paused = true)]
async fn one_sample_a_second_bounded_showing_what_happened() {
    let primary = SimBackend::builder("primary").primary(true).build();
    let replica = SimBackend::builder("replica").build();
    let pool = |db: &std::sync::Arc<SimBackend>| {
        Pool::builder(db.connector())
            .name(db.name())
            .max_size(4)
            .build()
            .unwrap()
    };
    let cluster = Cluster::builder()
        .primary("primary", pool(&primary))
        .replica("replica", pool(&replica))
        .flight_recorder(Some(RecorderConfig {
            every: secs(1),
            keep: 30,
        }))
        .build()
        .unwrap();
    let traffic = |n: usize| {
        let cluster = cluster.clone();
        async move {
            for i in 0..n {
                let sql = if i % 4 == 0 {
                    "UPDATE t SET x = 1"
                } else {
                    "SELECT 1"
                };
                let _ = cluster.execute(sql, sim::query).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    traffic(250).await; // about 5 s
    replica.set_down(true);
    traffic(500).await; // about 10 s
    replica.set_down(false);
    tokio::time::sleep(secs(10)).await;

    let history = cluster.history();
    assert!(
        (24..=26).contains(&history.len()),
        "{} samples for about 25 s",
        history.len()
    );
    for pair in history.windows(2) {
        assert!(pair[1].at >= pair[0].at);
        assert!(pair[1].routes.writes >= pair[0].routes.writes);
    }
    let replica_down: Vec<bool> = history
        .iter()
        .map(|r| {
            let n = r.nodes.iter().find(|n| &*n.name == "replica").unwrap();
            !n.up || n.breaker != BreakerState::Closed
        })
        .collect();
    assert!(!replica_down[0], "the replica was down from the start");
    assert!(replica_down.iter().any(|d| *d), "the outage does not show");
    assert!(!replica_down.last().unwrap(), "the replica never came back");
    assert!(history.last().unwrap().routes.writes > 100);

    // Past the limit the oldest go.
    tokio::time::sleep(secs(20)).await;
    assert_eq!(cluster.history().len(), 30);
}

/// Off, it keeps nothing; a nonsensical setting is refused at build time.
#[tokio::test(start_paused = true)]
async fn off_keeps_nothing_and_bad_settings_are_refused() {
    let db = SimBackend::builder("primary").primary(true).build();
    let pool = || {
        Pool::builder(db.connector())
            .name("primary")
            .build()
            .unwrap()
    };
    let cluster = Cluster::builder()
        .primary("primary", pool())
        .flight_recorder(None)
        .build()
        .unwrap();
    cluster.execute("SELECT 1", sim::query).await.unwrap();
    tokio::time::sleep(secs(5)).await;
    assert!(cluster.history().is_empty());
    let e = Cluster::builder()
        .primary("primary", pool())
        .flight_recorder(Some(RecorderConfig {
            every: Duration::ZERO,
            keep: 10,
        }))
        .build()
        .unwrap_err();
    assert_eq!(e.field, "flight_recorder");
}
