//! A pool's metrics under OpenTelemetry's semantic conventions (issue 15, item 4): the
//! `db.client.connection.*` names and labels, with the values seawall's own names carry.

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use seawall::pool::{MetricNames, Pool};
use seawall::sim::SimBackend;

#[test]
fn pool_metrics_follow_open_telemetry_names_when_asked() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let db = SimBackend::builder("primary").build();
    let pool = metrics::with_local_recorder(&recorder, || {
        let _guard = rt.enter();
        Pool::builder(db.connector())
            .name("primary")
            .max_size(3)
            .min_idle(1)
            .metric_names(MetricNames::OpenTelemetry)
            .build()
            .unwrap()
    });
    rt.block_on(async {
        let held = pool.get().await.unwrap();
        let other = pool.get().await.unwrap();
        drop(other);
        let state = pool.state(); // publishes the gauges
        assert_eq!((state.in_use, state.idle), (1, 1));
        drop(held);
    });
    let mut values: HashMap<(String, Vec<(String, String)>), DebugValue> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<_> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        values.insert((key.name().to_owned(), labels), value);
    }
    let pool_label = (
        "db.client.connection.pool.name".to_owned(),
        "primary".to_owned(),
    );
    let gauge = |name: &str, state: Option<&str>| {
        let mut labels = vec![pool_label.clone()];
        if let Some(state) = state {
            labels.push(("db.client.connection.state".to_owned(), state.to_owned()));
        }
        labels.sort();
        match values.get(&(name.to_owned(), labels)) {
            Some(DebugValue::Gauge(v)) => v.0,
            other => panic!("{name} {state:?}: {other:?} in {:?}", values.keys()),
        }
    };
    assert_eq!(gauge("db.client.connection.count", Some("used")), 1.0);
    assert_eq!(gauge("db.client.connection.count", Some("idle")), 1.0);
    assert_eq!(gauge("db.client.connection.max", None), 3.0);
    assert_eq!(gauge("db.client.connection.idle.min", None), 1.0);
    assert_eq!(gauge("db.client.connection.pending_requests", None), 0.0);
    let histogram = |name: &str| match values.get(&(name.to_owned(), vec![pool_label.clone()])) {
        Some(DebugValue::Histogram(samples)) => samples.len(),
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(
        histogram("db.client.connection.wait_time"),
        2,
        "one per acquire"
    );
    assert!(
        histogram("db.client.connection.create_time") >= 2,
        "one per connect"
    );
    assert!(values
        .keys()
        .any(|(name, _)| name == "db.client.connection.timeouts"));
    // None of seawall's own pool names.
    let own: Vec<_> = values
        .keys()
        .filter(|(name, _)| name.starts_with("seawall_pool_"))
        .collect();
    assert!(own.is_empty(), "{own:?}");
}
