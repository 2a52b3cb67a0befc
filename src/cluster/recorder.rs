//! The flight recorder: every node's figures and the route counts, sampled once per interval
//! (default every second, 15 minutes kept), so that what led up to an incident can be read
//! back while it happens or after it ([`Cluster::history`](super::Cluster::history)).
//!
//! Sampling reads what the nodes already keep (load model, pool, breaker, admission gate). The
//! one addition to the query path is each node's query-time histogram (one relaxed increment
//! of a sharded bucket when a handle is dropped; `benches/route.rs` prints its cost as
//! `recorder overhead_ns=`), from which each sample takes the interval's p50 and p99, as it
//! takes the p99 of the pool's acquire waits from the pool's histogram. With the recorder off
//! ([`ClusterBuilder::flight_recorder(None)`](super::ClusterBuilder::flight_recorder)) nodes
//! keep no such histogram.
//!
//! Memory is bounded: 320 bytes per node per sample plus 144 for the rest of the sample, so
//! 15 minutes (900 samples) of a primary and two replicas is about 1.0 MB; besides, each node
//! keeps its histogram (16 KB) and the recorder two cumulative copies of its buckets (8 KB).
//!
//! The recorder runs whether or not health probes do (a fleet instance with
//! `probe_interval(None)` is diagnosed too).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use std::path::PathBuf;

use crate::diagnosis::{Diagnoser, DiagnosisConfig, IncidentReport, NodeSample, Recording};
use crate::driver::Connector;
use crate::failover::ClusterEvent;
use crate::histogram::Counts;

use super::node::Node;
use super::Shared;

/// How often the recorder samples and how many samples it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderConfig {
    /// Time between samples. Default 1 s.
    pub every: Duration,
    /// Samples kept, oldest dropped first. Default 900 (15 minutes at 1 s).
    pub keep: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            every: Duration::from_secs(1),
            keep: 900,
        }
    }
}

/// The bounded history, and the diagnosis made from it.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) config: RecorderConfig,
    samples: Mutex<VecDeque<Recording>>,
    pub(crate) diagnoser: Mutex<Diagnoser>,
    /// Where a report is written when an incident closes.
    pub(crate) reports: Option<PathBuf>,
    /// Each node's cumulative histograms at the last sample, to take the interval's quantiles.
    last: Mutex<HashMap<Arc<str>, Cumulative>>,
}

/// A node's cumulative histograms at one sample.
#[derive(Debug, Default)]
struct Cumulative {
    queries: Counts,
    waits: Counts,
    /// Acquires served without waiting.
    immediate: u64,
}

impl Recorder {
    pub(crate) fn new(
        config: RecorderConfig,
        diagnosis: DiagnosisConfig,
        reports: Option<PathBuf>,
    ) -> Self {
        Recorder {
            config,
            samples: Mutex::new(VecDeque::with_capacity(config.keep.min(4096))),
            diagnoser: Mutex::new(Diagnoser::new(diagnosis)),
            reports,
            last: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn history(&self) -> Vec<Recording> {
        self.samples.lock().iter().cloned().collect()
    }

    /// The last two samples, for the figures of the last interval.
    pub(crate) fn last_two(&self) -> Option<(Recording, Recording)> {
        let samples = self.samples.lock();
        let n = samples.len();
        (n >= 2).then(|| (samples[n - 2].clone(), samples[n - 1].clone()))
    }

    fn push(&self, recording: Recording) {
        let mut samples = self.samples.lock();
        while samples.len() >= self.config.keep {
            samples.pop_front();
        }
        samples.push_back(recording);
    }
}

/// Samples every `every` until the cluster is dropped.
pub(crate) async fn run<C: Connector>(cluster: Weak<Shared<C>>) {
    let Some(stop) = cluster.upgrade().map(|s| s.stop.clone()) else {
        return;
    };
    let _running = stop.running();
    // Wall-clock times that advance with Tokio's clock (so a paused simulation reads right).
    let base = (SystemTime::now(), tokio::time::Instant::now());
    loop {
        let Some(every) = cluster
            .upgrade()
            .and_then(|s| s.recorder.as_ref().map(|r| r.config.every))
        else {
            return;
        };
        if !stop.sleep(every).await {
            return;
        }
        let Some(shared) = cluster.upgrade() else {
            return;
        };
        let Some(recorder) = &shared.recorder else {
            return;
        };
        let at = base.0 + base.1.elapsed();
        let recording = sample(&shared, recorder, at);
        let changes = recorder.diagnoser.lock().observe(&recording);
        recorder.push(recording);
        for incident in changes.opened {
            incident_gauge(&incident, 1.0);
            shared.emit(ClusterEvent::IncidentOpened(incident));
        }
        for incident in changes.closed {
            if let Some(dir) = &recorder.reports {
                let stem = format!("incident-{}", incident.id);
                let report = IncidentReport::new(
                    &recorder.history(),
                    &recorder.diagnoser.lock().incidents(),
                    &stem,
                );
                if let Err(error) = report.write_to(dir, &stem) {
                    tracing::warn!(%error, dir = %dir.display(), "could not write the incident report");
                }
            }
            incident_gauge(&incident, 0.0);
            shared.emit(ClusterEvent::IncidentClosed(incident));
        }
    }
}

fn sample<C: Connector>(shared: &Shared<C>, recorder: &Recorder, at: SystemTime) -> Recording {
    let nodes: Vec<_> = shared.topology.read().nodes().cloned().collect();
    let mut last = recorder.last.lock();
    // A node that left the topology leaves the map too.
    last.retain(|name, _| nodes.iter().any(|n| n.name == *name));
    Recording {
        at,
        nodes: nodes
            .iter()
            .map(|node| {
                let s = node.snapshot();
                publish(&s);
                let interval = Interval::of(node, &s, last.entry(s.name.clone()).or_default());
                NodeSample {
                    name: s.name,
                    role: s.role,
                    up: s.up,
                    fenced: s.fenced,
                    breaker: s.breaker.state,
                    in_flight: s.in_flight,
                    limit: s.admission.limit,
                    queue: s.admission.queue_len,
                    pool_in_use: s.pool.in_use,
                    pool_size: s.pool.size,
                    pool_max_size: s.pool.max_size,
                    pool_waiters: s.pool.waiters,
                    acquire_wait_p99: s.pool.acquire_wait.p99,
                    wait_p99: interval.wait_p99,
                    query_p50: interval.query_p50,
                    query_p99: interval.query_p99,
                    probe_round_trip: s.probe_round_trip,
                    latency: s.latency,
                    error_rate: s.error_rate,
                    lag: s.replication_lag,
                    timeouts: s.pool.totals.timed_out,
                    connect_failures: s.pool.totals.connect_failures,
                    shed: s.admission.shed + s.admission.rejected + s.admission.expired,
                    acquired: s.pool.totals.acquired,
                    connects: s.pool.totals.created,
                    waited_total: s.waited_total,
                    held_total: s.held_total,
                    held_count: s.held_count,
                    abandoned: s.abandoned,
                    node_errors: s.node_errors,
                    caller_errors: s.caller_errors,
                    broken: s.pool.totals.broken,
                    breaker_refused: s.breaker.rejected,
                }
            })
            .collect(),
        routes: shared.settings.ledger.routes.snapshot(),
    }
}

/// A node's quantiles over the interval since the last sample.
struct Interval {
    wait_p99: Option<Duration>,
    query_p50: Option<Duration>,
    query_p99: Option<Duration>,
}

impl Interval {
    /// From the node's cumulative histograms now and at the last sample (which it moves on).
    fn of<C: Connector>(node: &Node<C>, s: &super::NodeSnapshot, last: &mut Cumulative) -> Self {
        let waits = node.pool.wait_counts();
        let immediate = s.pool.totals.acquired.saturating_sub(waits.total());
        let wait_p99 = waits.since(&last.waits).quantile(
            0.99,
            immediate.saturating_sub(last.immediate),
            Duration::MAX,
        );
        last.waits = waits;
        last.immediate = immediate;
        let (query_p50, query_p99) = match node.held.query_counts() {
            Some((queries, max)) => {
                let recent = queries.since(&last.queries);
                last.queries = queries;
                (recent.quantile(0.5, 0, max), recent.quantile(0.99, 0, max))
            }
            None => (None, None),
        };
        Interval {
            wait_p99,
            query_p50,
            query_p99,
        }
    }
}

/// `seawall_incident_open{node,verdict,layer}`: 1 while an incident with that verdict is open.
fn incident_gauge(incident: &crate::diagnosis::Incident, value: f64) {
    let verdict = &incident.opened_with;
    let node = verdict
        .node
        .as_deref()
        .map_or_else(|| "application".to_owned(), str::to_owned);
    metrics::gauge!(
        "seawall_incident_open",
        "node" => node,
        "verdict" => verdict.finding.name(),
        "layer" => verdict.layer().name()
    )
    .set(value);
}

/// The node gauges the recorder samples (see [`crate::metrics`]).
fn publish(s: &super::NodeSnapshot) {
    let node = || s.name.clone();
    metrics::gauge!("seawall_node_up", "node" => node()).set(if s.up { 1.0 } else { 0.0 });
    metrics::gauge!("seawall_node_fenced", "node" => node()).set(if s.fenced { 1.0 } else { 0.0 });
    if let Some(lag) = s.replication_lag {
        metrics::gauge!("seawall_replication_lag_seconds", "node" => node()).set(lag.as_secs_f64());
    }
}
