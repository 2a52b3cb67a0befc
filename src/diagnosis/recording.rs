//! What the flight recorder keeps: the cluster's figures at one sampling instant. Plain data,
//! shared by the cluster (which samples it) and the [diagnosis](super) (which reads it).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::breaker::BreakerState;
use crate::role::Role;

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
    /// Its pool's maximum size.
    pub pool_max_size: usize,
    /// Acquires waiting in the pool.
    pub pool_waiters: usize,
    /// p99 of acquire waits since the pool was built.
    pub acquire_wait_p99: Duration,
    /// p99 of its pool's acquire waits over the last interval (immediate acquires count as
    /// zero); `None` without acquires in it.
    pub wait_p99: Option<Duration>,
    /// Median query time (callers holding its connections, waits excluded) over the last
    /// interval; `None` without work in it.
    pub query_p50: Option<Duration>,
    /// 99th percentile of the same.
    pub query_p99: Option<Duration>,
    /// The round trip of its last successful health probe.
    pub probe_round_trip: Option<Duration>,
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
    /// Connections handed out by its pool, total.
    pub acquired: u64,
    /// Connections its pool opened, total.
    pub connects: u64,
    /// Time the acquires of the handles in [`held_count`](Self::held_count) waited in the
    /// admission queue, total.
    pub waited_total: Duration,
    /// Time callers held its connections, total, and how many handles (see
    /// [`NodeSnapshot::held_total`](crate::cluster::NodeSnapshot::held_total)).
    pub held_total: Duration,
    /// See [`held_total`](Self::held_total).
    pub held_count: u64,
    /// Handles among them whose caller gave up while their statement ran, total.
    pub abandoned: u64,
    /// Errors on its connections that count against it (transport, client-side timeouts),
    /// total.
    pub node_errors: u64,
    /// Errors on its connections that were the caller's own (syntax, constraints), total.
    pub caller_errors: u64,
    /// Connections its pool discarded as broken, total.
    pub broken: u64,
    /// Calls its circuit breaker refused, total.
    pub breaker_refused: u64,
}

/// How the cluster routed its work since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteCounts {
    /// Reads served by a replica.
    pub reads_to_replica: u64,
    /// Reads served by the primary because no replica could (within its read budget).
    pub reads_to_primary: u64,
    /// Acquires for writes (and transactions) served by the primary.
    pub writes: u64,
    /// Statements a replica refused as writes, retried on the primary.
    pub retried_on_primary: u64,
    /// Statements learned as writes (they go to the primary from then on).
    pub learned_writes: u64,
    /// Acquires that failed at their deadline ([`Error::Timeout`](crate::Error::Timeout)).
    pub failed_timeout: u64,
    /// Acquires refused by an open breaker ([`Error::Unavailable`](crate::Error::Unavailable)).
    pub failed_breaker_open: u64,
    /// Acquires shed by admission control ([`Error::Overloaded`](crate::Error::Overloaded)).
    pub shed: u64,
    /// Reads no node could serve ([`Error::NoReplica`](crate::Error::NoReplica)).
    pub failed_no_replica: u64,
    /// Writes without a primary ([`Error::NoPrimary`](crate::Error::NoPrimary)).
    pub failed_no_primary: u64,
    /// Statements that failed on their node ([`Error::Statement`](crate::Error::Statement)).
    pub failed_statement: u64,
    /// Writes a replica refused that could not be retried ([`Error::WriteOnReplica`](crate::Error::WriteOnReplica)).
    pub failed_write_on_replica: u64,
    /// Any other failure (closed pool, unknown node, malformed hint).
    pub failed_other: u64,
}

impl RouteCounts {
    /// Every failure, shed requests included.
    pub fn failed(&self) -> u64 {
        self.failed_timeout
            + self.failed_breaker_open
            + self.shed
            + self.failed_no_replica
            + self.failed_no_primary
            + self.failed_statement
            + self.failed_write_on_replica
            + self.failed_other
    }
}

impl fmt::Display for RouteCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "routed: {} reads to replicas, {} reads to the primary (fallback), {} writes, {} \
             retried on the primary, {} learned writes",
            self.reads_to_replica,
            self.reads_to_primary,
            self.writes,
            self.retried_on_primary,
            self.learned_writes
        )?;
        write!(
            f,
            "failed: {} timeout, {} breaker open, {} shed (overloaded), {} no replica, {} no \
             primary, {} statement errors, {} writes on a replica, {} other",
            self.failed_timeout,
            self.failed_breaker_open,
            self.shed,
            self.failed_no_replica,
            self.failed_no_primary,
            self.failed_statement,
            self.failed_write_on_replica,
            self.failed_other
        )
    }
}
