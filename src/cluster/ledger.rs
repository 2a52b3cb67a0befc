//! What the cluster remembers of its traffic: route counts, learned routes, statement figures.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use metrics::{counter, Counter};

use crate::classify::RouteMemory;
use crate::diagnosis::RouteCounts;
use crate::error::Error;
use crate::statements::StatementStats;

/// Shared by the cluster and its nodes, so that a pinned handle reports to it too.
#[derive(Debug)]
pub(crate) struct Ledger {
    pub(crate) memory: RouteMemory,
    pub(crate) statements: Option<StatementStats>,
    pub(crate) routes: RouteCounters,
}

impl Ledger {
    pub(crate) fn new(memory: RouteMemory, statements: Option<StatementStats>) -> Self {
        Ledger {
            memory,
            statements,
            routes: RouteCounters::default(),
        }
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new(RouteMemory::default(), None)
    }
}

/// One counter, kept for the snapshot and reported as a metric.
#[derive(Debug)]
pub(crate) struct Count {
    value: AtomicU64,
    metric: Counter,
}

impl Count {
    fn new(name: &'static str, labels: &[(&'static str, &'static str)]) -> Self {
        Count {
            value: AtomicU64::new(0),
            metric: counter!(name, labels),
        }
    }

    /// Kept for the snapshot only: its metric is counted per node (`seawall_routed_total`,
    /// [`Routed`](super::node::Routed)).
    fn quiet() -> Self {
        Count {
            value: AtomicU64::new(0),
            metric: Counter::noop(),
        }
    }

    pub(crate) fn add(&self) {
        self.value.fetch_add(1, Relaxed);
        self.metric.increment(1);
    }

    fn get(&self) -> u64 {
        self.value.load(Relaxed)
    }
}

/// The cluster's route counters; see [`RouteCounts`].
#[derive(Debug)]
pub(crate) struct RouteCounters {
    pub(crate) reads_to_replica: Count,
    pub(crate) reads_to_primary: Count,
    pub(crate) writes: Count,
    pub(crate) retried_on_primary: Count,
    pub(crate) learned_writes: Count,
    timeout: Count,
    unavailable: Count,
    shed: Count,
    no_replica: Count,
    no_primary: Count,
    pub(crate) statement: Count,
    pub(crate) write_on_replica: Count,
    other: Count,
}

impl Default for RouteCounters {
    fn default() -> Self {
        const FAILED: &str = "seawall_route_failures_total";
        RouteCounters {
            reads_to_replica: Count::quiet(),
            reads_to_primary: Count::quiet(),
            writes: Count::quiet(),
            retried_on_primary: Count::quiet(),
            learned_writes: Count::new("seawall_learned_writes_total", &[]),
            timeout: Count::new(FAILED, &[("cause", "timeout")]),
            unavailable: Count::new(FAILED, &[("cause", "breaker_open")]),
            shed: Count::new(FAILED, &[("cause", "overloaded")]),
            no_replica: Count::new(FAILED, &[("cause", "no_replica")]),
            no_primary: Count::new(FAILED, &[("cause", "no_primary")]),
            statement: Count::new(FAILED, &[("cause", "statement")]),
            write_on_replica: Count::new(FAILED, &[("cause", "write_on_replica")]),
            other: Count::new(FAILED, &[("cause", "other")]),
        }
    }
}

impl RouteCounters {
    /// Counts an acquire that failed, by cause.
    pub(crate) fn failed(&self, error: &Error) {
        match error {
            Error::Timeout(_) => &self.timeout,
            Error::Unavailable(_) => &self.unavailable,
            Error::Overloaded(_) => &self.shed,
            Error::NoReplica(_) => &self.no_replica,
            Error::NoPrimary { .. } => &self.no_primary,
            Error::Statement(_) => &self.statement,
            Error::WriteOnReplica(_) => &self.write_on_replica,
            _ => &self.other,
        }
        .add();
    }

    pub(crate) fn snapshot(&self) -> RouteCounts {
        RouteCounts {
            reads_to_replica: self.reads_to_replica.get(),
            reads_to_primary: self.reads_to_primary.get(),
            writes: self.writes.get(),
            retried_on_primary: self.retried_on_primary.get(),
            learned_writes: self.learned_writes.get(),
            failed_timeout: self.timeout.get(),
            failed_breaker_open: self.unavailable.get(),
            shed: self.shed.get(),
            failed_no_replica: self.no_replica.get(),
            failed_no_primary: self.no_primary.get(),
            failed_statement: self.statement.get(),
            failed_write_on_replica: self.write_on_replica.get(),
            failed_other: self.other.get(),
        }
    }
}
