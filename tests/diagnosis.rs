//! Diagnosis (issue 15, items 2 and 3): each verdict produced by a simulated fault under load,
//! none over ten simulated minutes of normal, noisy load, and the incident report's timeline
//! against the truth. Paused clock: minutes of traffic take seconds.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use seawall::cluster::{Cluster, ClusterBuilder};
use seawall::diagnosis::{Finding, Incident, Layer};
use seawall::pool::Pool;
use seawall::sim::{ServiceTime, SimBackend, SimConnector};
use seawall::ClusterEvent;
use tokio::time::{sleep, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Bed {
    cluster: Cluster<SimConnector>,
    primary: Arc<SimBackend>,
    replicas: Vec<Arc<SimBackend>>,
    started: Instant,
}

/// A primary and two replicas of `capacity` slots, 5 ms mean queries, pools of `pool`.
fn bed(
    capacity: usize,
    pool: usize,
    configure: impl FnOnce(ClusterBuilder<SimConnector>) -> ClusterBuilder<SimConnector>,
) -> Bed {
    let backend = |name: &str, primary: bool, seed: u64| {
        SimBackend::builder(name)
            .primary(primary)
            .capacity(capacity)
            .service_time(ServiceTime::Exponential(ms(5)))
            .seed(seed)
            .build()
    };
    let primary = backend("primary", true, 1);
    let replicas = vec![
        backend("replica-1", false, 2),
        backend("replica-2", false, 3),
    ];
    let pool_of = |db: &Arc<SimBackend>, size: usize| {
        Pool::builder(db.connector())
            .name(db.name())
            .max_size(size)
            .seed(7)
            .build()
            .unwrap()
    };
    let mut builder = Cluster::builder()
        .primary("primary", pool_of(&primary, pool))
        .acquire_timeout(ms(1000));
    for db in &replicas {
        builder = builder.replica(db.name(), pool_of(db, pool));
    }
    Bed {
        cluster: configure(builder).build().unwrap(),
        primary,
        replicas,
        started: Instant::now(),
    }
}

/// Open-loop requests (Poisson arrivals) for `duration`: `rate(t)` per second at time `t` since
/// the start, `writes` of them writes; each runs one statement through `execute`.
async fn drive(
    bed: &Bed,
    duration: Duration,
    writes: f64,
    seed: u64,
    rate: impl Fn(Duration) -> f64,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let end = bed.started + duration;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let per_s = rate(now - bed.started).max(0.1);
        let gap = -(1.0 - rng.random::<f64>()).ln() / per_s;
        sleep(Duration::from_secs_f64(gap)).await;
        let sql = if rng.random::<f64>() < writes {
            "UPDATE orders SET paid = true WHERE id = 1"
        } else {
            "SELECT * FROM products WHERE id = 1"
        };
        let cluster = bed.cluster.clone();
        tokio::spawn(async move {
            let _ = cluster
                .execute(sql, |conn, sql| {
                    Box::pin(async move { conn.query(sql).await.map(|_| ()) })
                })
                .await;
        });
    }
    // Let the stragglers and the last samples in.
    sleep(ms(3000)).await;
}

/// The incidents opened, as events, with when they arrived.
fn opened(bed: &Bed) -> Arc<parking_lot::Mutex<Vec<(Duration, Incident)>>> {
    let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut rx = bed.cluster.subscribe();
    let (sink, started) = (log.clone(), bed.started);
    tokio::spawn(async move {
        while let Ok(event) = rx.recv().await {
            if let ClusterEvent::IncidentOpened(incident) = event {
                sink.lock().push((started.elapsed(), incident));
            }
        }
    });
    log
}

fn only(incidents: &[Incident]) -> &Incident {
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    &incidents[0]
}

/// 40% of the cluster's capacity: 3 nodes x 4 slots / 5 ms = 2,400 per s.
const NORMAL: f64 = 960.0;

#[tokio::test(start_paused = true)]
async fn ten_minutes_of_normal_noisy_load_open_no_incident() {
    let bed = bed(4, 4, |b| b);
    let events = opened(&bed);
    // The rate swings between 20% and 60% of capacity, by the minute and by the second.
    drive(&bed, Duration::from_secs(600), 0.2, 11, |t| {
        let s = t.as_secs_f64();
        NORMAL * (1.0 + 0.4 * (s / 60.0).sin() + 0.1 * (s * 1.7).sin())
    })
    .await;
    let incidents = bed.cluster.incidents();
    assert!(incidents.is_empty(), "false alarms: {incidents:#?}");
    assert!(events.lock().is_empty());
    assert!(bed.cluster.history().len() >= 590);
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_slows_under_load_is_saturated() {
    let bed = bed(4, 4, |b| b);
    let events = opened(&bed);
    let primary = bed.primary.clone();
    tokio::spawn(async move {
        sleep(ms(20_000)).await;
        primary.set_slowdown(6.0); // lock convoy: every query 6x longer
        sleep(ms(20_000)).await;
        primary.set_slowdown(1.0);
    });
    // Mostly writes: the primary has 800 per s of 4 / 5 ms = 800 capacity... at 60%.
    drive(&bed, Duration::from_secs(60), 0.8, 12, |_| 600.0).await;
    let incidents = bed.cluster.incidents();
    let incident = only(&incidents);
    let verdict = &incident.verdict;
    assert_eq!(verdict.node.as_deref(), Some("primary"));
    assert_eq!(verdict.layer(), Layer::Database);
    let Finding::Saturated {
        query,
        query_p99,
        baseline,
        replicas_healthy,
        in_flight,
        limit,
        ..
    } = verdict.finding
    else {
        panic!("{verdict}");
    };
    assert!(query >= baseline * 4, "{verdict}");
    // The interval's p99 (from the recorder's histogram) is at least its mean's order.
    let p99 = query_p99.expect("the recorder keeps query times");
    assert!(p99 >= query / 2 && p99 >= baseline * 4, "{verdict}");
    assert!(verdict.to_string().contains("(p99 "), "{verdict}");
    assert_eq!(replicas_healthy, Some(true), "{verdict}");
    assert!(in_flight >= limit, "{verdict}");
    let text = verdict.to_string();
    assert!(text.starts_with("primary saturated (in flight"), "{text}");
    assert!(
        text.contains("replicas healthy") && text.ends_with("[database]"),
        "{text}"
    );
    // Detected within 3 s of the slowdown.
    let (at, _) = events.lock()[0].clone();
    assert!(at >= ms(20_000) && at <= ms(23_000), "{at:?}");

    // The report's timeline: start and end within 2 s of the truth.
    let history = bed.cluster.history();
    let t0 = history[0].at - Duration::from_secs(1); // the recorder's first sample is 1 s in
    let truth = |s: u64| t0 + Duration::from_secs(s);
    let off = |a: SystemTime, b: SystemTime| {
        a.duration_since(b)
            .unwrap_or_else(|e| e.duration())
            .as_secs_f64()
    };
    assert!(
        off(incident.started, truth(20)) <= 2.0,
        "started {:?}",
        incident.started
    );
    assert!(
        off(incident.last_seen, truth(40)) <= 2.0,
        "last seen {:?}",
        incident.last_seen
    );
    assert!(incident.closed.is_some());
    let report = bed.cluster.incident_report();
    assert!(
        report.markdown.contains("| 1 | database |"),
        "{}",
        report.markdown
    );
    assert!(report
        .markdown
        .contains("incident 1 starts: primary saturated"));
    assert!(report.markdown.contains("incident 1 closed"));
    // The figures table has the second's p99s, errors by kind and the probe's round trip.
    assert!(
        report
            .markdown
            .contains("| query ms (p99) | wait ms (pool p99) | error % | errors node / caller |"),
        "{}",
        report.markdown
    );
    let primary_rows: Vec<&str> = report
        .markdown
        .lines()
        .filter(|l| l.contains("| primary | Primary |"))
        .collect();
    assert!(
        primary_rows.iter().any(|l| !l.contains(" (-) ")),
        "no p99 in {primary_rows:#?}"
    );
    assert!(report
        .markdown
        .contains("![Recorded figures](incident-report.svg)"));
    assert!(report.svg.starts_with("<svg") && report.svg.contains("<polyline"));
    let dir = std::env::temp_dir().join(format!("seawall-report-{}", std::process::id()));
    report.write_to(&dir, "incident-report").unwrap();
    assert!(dir.join("incident-report.md").exists() && dir.join("incident-report.svg").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_goes_away_is_unreachable() {
    let bed = bed(4, 4, |b| b);
    let primary = bed.primary.clone();
    tokio::spawn(async move {
        sleep(ms(20_000)).await;
        primary.set_down(true);
    });
    // The operator's table in the middle of it.
    let cluster = bed.cluster.clone();
    let table = tokio::spawn(async move {
        sleep(ms(30_000)).await;
        cluster.snapshot().to_string()
    });
    drive(&bed, Duration::from_secs(40), 0.3, 13, |_| NORMAL).await;
    let table = table.await.unwrap();
    println!("{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{table}"))
            .to_owned()
    };
    assert!(
        table.lines().next().unwrap().contains("= query + wait"),
        "{table}"
    );
    // Why the primary is down; what the replicas' latency is made of.
    assert!(row("primary ").contains("probe: "), "{table}");
    assert!(row("replica-1").contains(" + "), "{table}");
    assert!(row("replica-1").ends_with('-'), "{table}");
    let incidents = bed.cluster.incidents();
    let incident = incidents
        .iter()
        .find(|i| matches!(i.verdict.finding, Finding::Unreachable { .. }))
        .unwrap_or_else(|| panic!("{incidents:#?}"));
    assert_eq!(incident.verdict.node.as_deref(), Some("primary"));
    assert_eq!(incident.verdict.layer(), Layer::Database);
    assert!(incident
        .verdict
        .to_string()
        .starts_with("primary unreachable"));
    // Nothing blames the replicas.
    assert!(
        incidents
            .iter()
            .all(|i| i.verdict.node.as_deref() == Some("primary")),
        "{incidents:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn one_slow_replica_is_slow_and_the_others_are_not_blamed() {
    let bed = bed(4, 4, |b| b);
    let replica = bed.replicas[0].clone();
    tokio::spawn(async move {
        sleep(ms(20_000)).await;
        replica.set_slowdown(5.0);
    });
    // Light: nothing waits even at 5x.
    drive(&bed, Duration::from_secs(40), 0.2, 14, |_| 150.0).await;
    let incidents = bed.cluster.incidents();
    let incident = only(&incidents);
    assert_eq!(incident.verdict.node.as_deref(), Some("replica-1"));
    assert!(
        matches!(incident.verdict.finding, Finding::Slow { .. }),
        "{}",
        incident.verdict
    );
    assert!(incident
        .verdict
        .to_string()
        .starts_with("replica-1 slow (query"));
}

#[tokio::test(start_paused = true)]
async fn a_replica_behind_is_lagging() {
    let bed = bed(4, 4, |b| b.probe_interval(Some(ms(500))));
    let replica = bed.replicas[1].clone();
    tokio::spawn(async move {
        sleep(ms(20_000)).await;
        replica.set_lag(Some(Duration::from_secs(30)));
    });
    drive(&bed, Duration::from_secs(30), 0.2, 15, |_| NORMAL).await;
    let incidents = bed.cluster.incidents();
    let incident = only(&incidents);
    assert_eq!(incident.verdict.node.as_deref(), Some("replica-2"));
    assert_eq!(incident.verdict.layer(), Layer::Replication);
    assert_eq!(
        incident.verdict.to_string(),
        "replica-2 lagging (30000 ms behind) [replication]"
    );
}

#[tokio::test(start_paused = true)]
async fn waits_for_a_small_pool_on_a_fast_server_blame_the_application() {
    // The primary has 32 slots; the application's pool for it only 2.
    let bed = bed(32, 2, |b| b);
    // Writes only: 500 per s of 5 ms each need 2.5 connections on average.
    drive(&bed, Duration::from_secs(30), 1.0, 16, |t| {
        if t >= ms(10_000) {
            500.0
        } else {
            150.0
        }
    })
    .await;
    let incidents = bed.cluster.incidents();
    let incident = only(&incidents);
    assert_eq!(incident.verdict.node.as_deref(), Some("primary"));
    assert_eq!(incident.verdict.layer(), Layer::Application);
    let text = incident.verdict.to_string();
    assert!(
        text.starts_with("pool of primary too small for the demand (wait"),
        "{text}"
    );
    assert!(text.contains("not the database"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn connections_that_keep_breaking_are_a_storm() {
    let bed = bed(4, 4, |b| b);
    // The primary (writes cannot go elsewhere; reads would leave a failing replica).
    let primary = bed.primary.clone();
    tokio::spawn(async move {
        sleep(ms(20_000)).await;
        primary.set_break_rate(0.2);
    });
    drive(&bed, Duration::from_secs(40), 0.8, 17, |_| 400.0).await;
    let incidents = bed.cluster.incidents();
    let storm = incidents
        .iter()
        .find(|i| matches!(i.verdict.finding, Finding::ConnectionStorm { .. }))
        .unwrap_or_else(|| panic!("{incidents:#?}"));
    assert_eq!(storm.verdict.node.as_deref(), Some("primary"));
    assert!(storm
        .verdict
        .to_string()
        .contains("connections opened in one interval"));
}

#[tokio::test(start_paused = true)]
async fn statements_failing_on_their_own_blame_the_application() {
    let bed = bed(4, 4, |b| b);
    let dbs: Vec<_> = std::iter::once(bed.primary.clone())
        .chain(bed.replicas.iter().cloned())
        .collect();
    tokio::spawn(async move {
        sleep(ms(20_000)).await;
        for db in dbs {
            db.set_query_error_rate(0.2); // a bad deploy: 20% of statements are invalid
        }
    });
    drive(&bed, Duration::from_secs(40), 0.2, 18, |_| NORMAL).await;
    let incidents = bed.cluster.incidents();
    let incident = only(&incidents);
    assert_eq!(incident.verdict.node, None);
    assert_eq!(incident.verdict.layer(), Layer::Application);
    assert!(incident
        .verdict
        .to_string()
        .starts_with("statements failing with their own errors"));
}

/// An open incident is a gauge alerts can match on (`seawall_incident_open{node,verdict,layer}`,
/// the `SeawallIncident` rule): 1 while the primary is unreachable, 0 once it is back.
#[test]
fn an_open_incident_is_a_gauge_naming_node_verdict_and_layer() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let gauge = move || -> Vec<(Vec<(String, String)>, f64)> {
        common::metric_samples(&snapshotter, "seawall_incident_open")
            .into_iter()
            .filter_map(|(labels, value)| match value {
                DebugValue::Gauge(v) => Some((labels, v.into_inner())),
                _ => None,
            })
            .collect()
    };
    let (during, after) = metrics::with_local_recorder(&recorder, || {
        common::paused_runtime().block_on(async {
            let bed = bed(4, 4, |b| b);
            let primary = bed.primary.clone();
            tokio::spawn(async move {
                sleep(ms(20_000)).await;
                primary.set_down(true);
                sleep(ms(15_000)).await;
                primary.set_down(false);
            });
            drive(&bed, Duration::from_secs(30), 0.3, 21, |_| NORMAL).await;
            let during = gauge();
            drive(&bed, Duration::from_secs(30), 0.3, 22, |_| NORMAL).await;
            (during, gauge())
        })
    });
    let expected = vec![
        ("node".to_owned(), "primary".to_owned()),
        ("verdict".to_owned(), "unreachable".to_owned()),
        ("layer".to_owned(), "database".to_owned()),
    ];
    let value = |series: &[(Vec<(String, String)>, f64)]| {
        series
            .iter()
            .find(|(labels, _)| *labels == expected)
            .map(|(_, v)| *v)
    };
    assert_eq!(value(&during), Some(1.0), "{during:?}");
    assert_eq!(value(&after), Some(0.0), "{after:?}");
}
