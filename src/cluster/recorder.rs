//! The flight recorder: every node's figures and the route counts, sampled once per interval
//! (default every second, 15 minutes kept), so that what led up to an incident can be read
//! back while it happens or after it ([`Cluster::history`](super::Cluster::history)).
//!
//! Sampling reads what the nodes already keep (load model, pool, breaker, admission gate): it
//! adds nothing to the query path. Memory is bounded: about 150 bytes per node per sample plus
//! 110 for the route counts, so 15 minutes of a primary and two replicas is about 0.5 MB.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::breaker::BreakerState;
use crate::driver::Connector;

use super::ledger::RouteCounts;
use super::{Role, Shared};

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

/// The cluster at one sampling instant.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Recording {
    /// When it was taken (wall clock, for reports).
    pub at: SystemTime,
    /// Every node, primary first.
    pub nodes: Vec<NodeSample>,
    /// The route counts since the cluster was built (difference two recordings for a rate).
    pub routes: RouteCounts,
}

/// One node's figures in a [`Recording`]. Totals are since the node was built; difference two
/// recordings for what happened between them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeSample {
    /// The node.
    pub name: Arc<str>,
    /// Its role then.
    pub role: Role,
    /// Up (not marked down by the health monitor).
    pub up: bool,
    /// Fenced (split brain, or not named leader by the HA manager).
    pub fenced: bool,
    /// Its breaker.
    pub breaker: BreakerState,
    /// Work in flight, queue included.
    pub in_flight: usize,
    /// The admission gate's current limit.
    pub limit: usize,
    /// Requests queued at the gate.
    pub queue: usize,
    /// Connections in use / open, and acquires waiting for one.
    pub pool_in_use: usize,
    /// Open connections.
    pub pool_size: usize,
    /// Acquires waiting in the pool.
    pub pool_waiters: usize,
    /// p99 of acquire waits since the pool was built.
    pub acquire_wait_p99: Duration,
    /// Peak-EWMA latency of its recent work.
    pub latency: Duration,
    /// Recent error rate in `[0, 1]`.
    pub error_rate: f64,
    /// Replication lag from the last probe.
    pub lag: Option<Duration>,
    /// Acquires that timed out in its pool, total.
    pub timeouts: u64,
    /// Failed connects, total.
    pub connect_failures: u64,
    /// Requests its admission gate shed or rejected, total.
    pub shed: u64,
}

/// The bounded history.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) config: RecorderConfig,
    samples: Mutex<VecDeque<Recording>>,
}

impl Recorder {
    pub(crate) fn new(config: RecorderConfig) -> Self {
        Recorder {
            config,
            samples: Mutex::new(VecDeque::with_capacity(config.keep.min(4096))),
        }
    }

    pub(crate) fn history(&self) -> Vec<Recording> {
        self.samples.lock().iter().cloned().collect()
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
        recorder.push(sample(&shared));
    }
}

fn sample<C: Connector>(shared: &Shared<C>) -> Recording {
    let nodes: Vec<_> = shared.topology.read().nodes().cloned().collect();
    Recording {
        at: SystemTime::now(),
        nodes: nodes
            .iter()
            .map(|node| {
                let s = node.snapshot();
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
                    pool_waiters: s.pool.waiters,
                    acquire_wait_p99: s.pool.acquire_wait.p99,
                    latency: s.latency,
                    error_rate: s.error_rate,
                    lag: s.replication_lag,
                    timeouts: s.pool.totals.timed_out,
                    connect_failures: s.pool.totals.connect_failures,
                    shed: s.admission.shed + s.admission.rejected + s.admission.expired,
                }
            })
            .collect(),
        routes: shared.settings.ledger.routes.snapshot(),
    }
}
