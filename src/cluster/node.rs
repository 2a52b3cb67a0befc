//! One backend of a cluster: its pool and everything that judges it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::admission::{Admission, AdmissionSnapshot};
use crate::breaker::{BreakerSnapshot, BreakerState, CallGuard, CircuitBreaker, Outcome};
use crate::driver::Connector;
use crate::failover::ClusterEvent;
use crate::histogram::{Counts, Histogram};
use crate::load::NodeLoad;
use crate::pool::{Pool, State};

use super::ledger::Ledger;
pub use crate::role::Role;
use tokio::sync::broadcast;

/// A backend in a [`Cluster`](super::Cluster): its pool, load model, breaker and admission gate.
pub struct Node<C: Connector> {
    pub(crate) name: Arc<str>,
    primary: AtomicBool,
    /// Not marked down by the health monitor.
    up: AtomicBool,
    /// Claimed to be primary while another node was (split brain): used for nothing.
    fenced: AtomicBool,
    /// The timeline its last probe reported; 0: unknown.
    timeline: AtomicU32,
    /// The split brain that fenced it was announced (once per episode).
    pub(crate) split_brain_reported: AtomicBool,
    pub(crate) health: Mutex<Health>,
    pub(crate) pool: Pool<C>,
    pub(crate) load: Arc<NodeLoad>,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) admission: Admission,
    events: broadcast::Sender<ClusterEvent>,
    /// The cluster's ledger, which a handle from this node reports its statements to.
    pub(crate) ledger: Arc<Ledger>,
    /// How long callers held its connections (the work's own time) and waited for them.
    pub(crate) held: HeldTime,
    /// Its share of `seawall_routed_total`.
    pub(crate) routed: Routed,
}

/// `seawall_routed_total{route, node}`: the work routed to this node, by route.
#[derive(Debug)]
pub(crate) struct Routed {
    pub(crate) read_replica: metrics::Counter,
    pub(crate) read_primary_fallback: metrics::Counter,
    pub(crate) write: metrics::Counter,
    /// Statements this replica refused as writes, run again on the primary.
    pub(crate) retried_on_primary: metrics::Counter,
}

impl Routed {
    fn new(node: &Arc<str>) -> Self {
        let counter = |route: &'static str| metrics::counter!("seawall_routed_total", "route" => route, "node" => node.clone());
        Routed {
            read_replica: counter("read_replica"),
            read_primary_fallback: counter("read_primary_fallback"),
            write: counter("write"),
            retried_on_primary: counter("retried_on_primary"),
        }
    }
}

/// The per-node query-time histograms, the count of abandoned handles and the errors seen on
/// the node's connections; the sums of held and waited time live in the load model
/// ([`NodeLoad::split_totals`]), under the lock its outcome takes anyway.
#[derive(Debug)]
pub(crate) struct HeldTime {
    /// `seawall_query_seconds{node}`.
    histogram: metrics::Histogram,
    /// The same, for the flight recorder's per-interval p50 and p99 (when it is on).
    queries: Option<Histogram>,
    abandoned: AtomicU64,
    /// Errors that count against the node (transport, client-side timeouts).
    node_errors: AtomicU64,
    /// Errors that are the caller's own (syntax, constraints).
    caller_errors: AtomicU64,
}

impl HeldTime {
    fn new(node: &Arc<str>) -> Self {
        HeldTime {
            histogram: metrics::histogram!("seawall_query_seconds", "node" => node.clone()),
            queries: None,
            abandoned: Default::default(),
            node_errors: Default::default(),
            caller_errors: Default::default(),
        }
    }

    /// A handle dropped while its statement ran: its caller gave up on the node.
    pub(crate) fn abandoned(&self) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// An error reported on one of the node's connections, by what it says about the node.
    pub(crate) fn error(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Failure => &self.node_errors,
            Outcome::Ignored => &self.caller_errors,
            Outcome::Success => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `shard`: any number that differs between concurrent callers (an address of theirs).
    pub(crate) fn record(&self, held: std::time::Duration, shard: usize) {
        self.histogram.record(held.as_secs_f64());
        if let Some(queries) = &self.queries {
            queries.record(held, shard);
        }
    }

    /// The query times recorded so far for the flight recorder (`None` when it is off).
    pub(crate) fn query_counts(&self) -> Option<(Counts, std::time::Duration)> {
        self.queries.as_ref().map(|h| (h.counts(), h.max()))
    }
}

impl<C: Connector> Node<C> {
    pub(crate) fn new(
        name: Arc<str>,
        role: Role,
        pool: Pool<C>,
        load: NodeLoad,
        breaker: CircuitBreaker,
        admission: Admission,
        events: broadcast::Sender<ClusterEvent>,
    ) -> Self {
        load.set_capacity(pool.max_size());
        if role == Role::Primary {
            // A primary is never behind itself.
            load.set_replication_lag(Some(std::time::Duration::ZERO));
        }
        let held = HeldTime::new(&name);
        let routed = Routed::new(&name);
        Node {
            name,
            primary: AtomicBool::new(role == Role::Primary),
            up: AtomicBool::new(true),
            fenced: AtomicBool::new(false),
            timeline: AtomicU32::new(0),
            split_brain_reported: AtomicBool::new(false),
            health: Mutex::new(Health::default()),
            pool,
            load: Arc::new(load),
            breaker,
            admission,
            events,
            ledger: Arc::default(),
            held,
            routed,
        }
    }

    /// Reports to the cluster's `ledger`.
    pub(crate) fn with_ledger(mut self, ledger: Arc<Ledger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// Keeps a histogram of query times for the flight recorder.
    pub(crate) fn with_query_histogram(mut self) -> Self {
        self.held.queries = Some(Histogram::default());
        self
    }

    /// Ends a breaker call, announcing the breaker opening if this outcome tripped it.
    pub(crate) fn finish_call(&self, call: CallGuard, outcome: Outcome) {
        self.finish_call_at(call, outcome, Instant::now());
    }

    /// [`Node::finish_call`] as of `now`.
    pub(crate) fn finish_call_at(&self, call: CallGuard, outcome: Outcome, now: Instant) {
        let before = self.breaker.state();
        call.finish_at(outcome, now);
        if before != BreakerState::Open && self.breaker.state() == BreakerState::Open {
            crate::failover::emit(
                &self.events,
                ClusterEvent::BreakerOpened {
                    node: self.name.clone(),
                },
            );
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's current role.
    pub fn role(&self) -> Role {
        if self.primary.load(Ordering::Relaxed) {
            Role::Primary
        } else {
            Role::Replica
        }
    }

    pub(crate) fn set_role(&self, role: Role) {
        self.primary.store(role == Role::Primary, Ordering::Relaxed);
    }

    /// Whether the health monitor considers the node up.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    /// Whether the node is fenced: it claimed to be primary while another node was, and is used
    /// for nothing until it comes back as a replica.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Relaxed)
    }

    pub(crate) fn set_fenced(&self, fenced: bool) {
        self.fenced.store(fenced, Ordering::Relaxed);
    }

    /// The timeline its last probe reported (exact on a primary, a lower bound on a replica),
    /// if the driver tells timelines.
    pub fn timeline(&self) -> Option<u32> {
        Some(self.timeline.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    pub(crate) fn set_timeline(&self, timeline: u32) {
        self.timeline.store(timeline, Ordering::Relaxed);
    }

    /// Up and not fenced.
    pub(crate) fn is_usable(&self) -> bool {
        self.is_up() && !self.is_fenced()
    }

    /// The node's connection pool.
    pub fn pool(&self) -> &Pool<C> {
        &self.pool
    }

    /// The node's load (latency, in flight, errors, lag), read-only: routing depends on it, so
    /// only the cluster's own measurements and probes change it.
    pub fn load(&self) -> LoadView<'_> {
        LoadView(&self.load)
    }

    /// Sets the node's relative weight for [`WeightedRandom`](crate::balance::WeightedRandom)
    /// (1 by default; 0 takes it out of weighted picks unless all weights are 0).
    pub fn set_weight(&self, weight: u32) {
        self.load.set_weight(weight);
    }

    /// The node's circuit breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The node's admission gate, read-only (closing it is the cluster's business:
    /// [`Cluster::close`](super::Cluster::close), a removed replica).
    pub fn admission(&self) -> AdmissionView<'_> {
        AdmissionView(&self.admission)
    }

    /// Everything known about the node, at one instant.
    pub fn snapshot(&self) -> NodeSnapshot {
        let load = &self.load;
        let (held_total, waited_total, held_count) = load.split_totals();
        let abandoned = self.held.abandoned.load(Ordering::Relaxed);
        let (last_error, probe_round_trip) = {
            let health = self.health.lock();
            (
                (health.failures > 0 && !health.last_error.is_empty())
                    .then(|| format!("probe: {}", health.last_error)),
                health.round_trip,
            )
        };
        let last_error =
            last_error.or_else(|| self.pool.connect_error().map(|e| format!("connect: {e}")));
        NodeSnapshot {
            last_error,
            probe_round_trip,
            node_errors: self.held.node_errors.load(Ordering::Relaxed),
            caller_errors: self.held.caller_errors.load(Ordering::Relaxed),
            recent_query: None,
            recent_wait: None,
            held_total,
            waited_total,
            held_count,
            abandoned,
            name: self.name.clone(),
            role: self.role(),
            latency: load.latency(),
            in_flight: load.in_flight(),
            error_rate: load.error_rate(),
            replication_lag: load.replication_lag(),
            replayed_position: load.replayed_position(),
            timeline: self.timeline(),
            up: self.is_up(),
            fenced: self.is_fenced(),
            pool: self.pool.state(),
            breaker: self.breaker.snapshot(),
            admission: self.admission.snapshot(),
        }
    }
}

impl<C: Connector> fmt::Debug for Node<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("role", &self.role())
            .finish_non_exhaustive()
    }
}

/// A node's figures at one instant, from [`Cluster::snapshot`](super::Cluster::snapshot).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeSnapshot {
    /// The node's name.
    pub name: Arc<str>,
    /// Its role.
    pub role: Role,
    /// Peak-EWMA latency of its recent work.
    pub latency: std::time::Duration,
    /// Work in flight (acquired handles not yet dropped).
    pub in_flight: usize,
    /// Recent error rate, in `[0, 1]`.
    pub error_rate: f64,
    /// Replication lag reported by the last probe.
    pub replication_lag: Option<std::time::Duration>,
    /// Replayed (replica) or written (primary) position reported by the last probe.
    pub replayed_position: u64,
    /// The timeline reported by the last probe, if the driver tells timelines.
    pub timeline: Option<u32>,
    /// Whether the health monitor considers it up.
    pub up: bool,
    /// Whether it is fenced (split brain).
    pub fenced: bool,
    /// Its pool.
    pub pool: State,
    /// Its circuit breaker.
    pub breaker: BreakerSnapshot,
    /// Its admission gate.
    pub admission: AdmissionSnapshot,
    /// Time its connections were held by callers through the cluster, summed since it was
    /// built: the work's own time, without admission or pool waits. Difference two snapshots
    /// and divide by the [`held_count`](Self::held_count) difference for the mean.
    pub held_total: std::time::Duration,
    /// Time acquires of its connections waited through the cluster, in its admission queue,
    /// summed since it was built, for the handles counted in [`held_count`](Self::held_count).
    /// Behind a gate sized after the pool the pool itself seldom makes anyone wait; such a
    /// wait counts in [`held_total`](Self::held_total).
    pub waited_total: std::time::Duration,
    /// Handles returned since it was built.
    pub held_count: u64,
    /// Handles among them dropped while a statement run through the cluster was still running
    /// (the caller gave up, its future cancelled).
    pub abandoned: u64,
    /// Why it is down or failing: its last probe error while probes fail, else its pool's last
    /// connect error while connects fail.
    pub last_error: Option<String>,
    /// Mean query time (callers holding its connections) over the flight recorder's last
    /// interval; `None` without two samples or without work in it.
    pub recent_query: Option<std::time::Duration>,
    /// Mean wait in its admission queue over the same interval.
    pub recent_wait: Option<std::time::Duration>,
    /// The round trip of its last successful health probe (`None` before one).
    pub probe_round_trip: Option<std::time::Duration>,
    /// Errors reported on its connections that count against it (transport failures,
    /// client-side timeouts), since it was built.
    pub node_errors: u64,
    /// Errors reported on its connections that are the caller's own (syntax, constraints),
    /// since it was built.
    pub caller_errors: u64,
}

/// What the health monitor remembers of a node's recent probes.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Consecutive failed probes.
    pub(crate) failures: u32,
    /// Consecutive good probes.
    pub(crate) successes: u32,
    /// When the current run of failures began.
    pub(crate) failing_since: Option<Instant>,
    /// The last probe error.
    pub(crate) last_error: String,
    /// The last successful probe's round trip.
    pub(crate) round_trip: Option<std::time::Duration>,
}

/// A node's load as routing sees it, read-only ([`Node::load`]).
#[derive(Clone, Copy)]
pub struct LoadView<'a>(&'a NodeLoad);

impl LoadView<'_> {
    /// Peak-EWMA latency of its recent work.
    pub fn latency(&self) -> std::time::Duration {
        self.0.latency()
    }

    /// Work in flight.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight()
    }

    /// Recent error rate, in `[0, 1]`.
    pub fn error_rate(&self) -> f64 {
        self.0.error_rate()
    }

    /// Replication lag reported by the last probe.
    pub fn replication_lag(&self) -> Option<std::time::Duration> {
        self.0.replication_lag()
    }

    /// Replayed (replica) or written (primary) position reported by the last probe.
    pub fn replayed_position(&self) -> u64 {
        self.0.replayed_position()
    }

    /// Relative weight ([`Node::set_weight`]).
    pub fn weight(&self) -> u32 {
        self.0.weight()
    }

    /// Statements the node answered.
    pub fn served(&self) -> u64 {
        self.0.served()
    }

    /// In flight over capacity, when the capacity is known.
    pub fn utilisation(&self) -> Option<f64> {
        self.0.utilisation()
    }
}

impl std::fmt::Debug for LoadView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0, f)
    }
}

/// A node's admission gate, read-only ([`Node::admission`]).
#[derive(Clone, Copy)]
pub struct AdmissionView<'a>(&'a Admission);

impl AdmissionView<'_> {
    /// Its limit, in flight, queue and shed counts, at one instant.
    pub fn snapshot(&self) -> crate::admission::AdmissionSnapshot {
        self.0.snapshot()
    }
}

impl std::fmt::Debug for AdmissionView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0, f)
    }
}
