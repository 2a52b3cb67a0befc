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

/// Each second's query p50 and p99 come from the interval alone (not since the start), the
/// errors are counted by kind on their node, and the probe's round trip is kept.
#[tokio::test(start_paused = true)]
async fn per_second_quantiles_errors_by_kind_and_probe_round_trip() {
    let db = SimBackend::builder("primary")
        .primary(true)
        .service_time(sim::ServiceTime::Fixed(Duration::from_millis(5)))
        .query_error_rate(0.1)
        .seed(3)
        .build();
    let cluster = Cluster::builder()
        .primary(
            "primary",
            Pool::builder(db.connector())
                .name("primary")
                .max_size(4)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let traffic = |secs_: u64| {
        let cluster = cluster.clone();
        async move {
            let end = tokio::time::Instant::now() + secs(secs_);
            while tokio::time::Instant::now() < end {
                let _ = cluster.execute("UPDATE t SET x = 1", sim::query).await;
            }
        }
    };
    traffic(5).await;
    db.set_service_time(sim::ServiceTime::Fixed(Duration::from_millis(50)));
    traffic(5).await;

    let history = cluster.history();
    let primary = |i: usize| {
        history[i]
            .nodes
            .iter()
            .find(|n| &*n.name == "primary")
            .unwrap()
            .clone()
    };
    let within = |d: Option<Duration>, ms: u64| {
        let d = d.expect("work in the second").as_secs_f64() * 1000.0;
        // A bucket's upper bound is within 12.5% of the values in it.
        (ms as f64..=ms as f64 * 1.13).contains(&d)
    };
    // Seconds 2-4 at 5 ms, seconds 7-9 at 50 ms: no memory of the fast seconds in the slow ones.
    for i in 1..4 {
        let n = primary(i);
        assert!(
            within(n.query_p50, 5) && within(n.query_p99, 5),
            "{i}: {n:?}"
        );
    }
    for i in 6..9 {
        let n = primary(i);
        assert!(
            within(n.query_p50, 50) && within(n.query_p99, 50),
            "{i}: {n:?}"
        );
        assert_eq!(n.wait_p99, Some(Duration::ZERO), "one caller never waits");
    }
    let last = primary(history.len() - 1);
    let failed = history.last().unwrap().routes.failed_statement;
    assert!(failed > 50, "{failed} failed statements");
    assert_eq!(
        last.caller_errors, failed,
        "every statement error is the caller's own"
    );
    assert_eq!(last.node_errors, 0);
    let rtt = last.probe_round_trip.expect("probed every 500 ms");
    assert!(rtt < Duration::from_millis(50), "{rtt:?}");
}

/// The recorder samples without health probes too (a fleet instance with probes off).
#[tokio::test(start_paused = true)]
async fn records_without_probes() {
    let db = SimBackend::builder("primary").primary(true).build();
    let cluster = Cluster::builder()
        .primary(
            "primary",
            Pool::builder(db.connector())
                .name("primary")
                .build()
                .unwrap(),
        )
        .probe_interval(None)
        .build()
        .unwrap();
    cluster.execute("SELECT 1", sim::query).await.unwrap();
    tokio::time::sleep(secs(5)).await;
    let history = cluster.history();
    assert!((4..=5).contains(&history.len()), "{}", history.len());
    assert_eq!(history[0].nodes[0].probe_round_trip, None);
}
