//! The pool's own metrics handles (every name is listed in [`crate::metrics`]).

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use super::config::MetricNames;
use super::State;

/// Handles for one pool's metrics. Under OpenTelemetry's names, those without an equivalent
/// are no-op handles.
#[derive(Debug)]
pub(crate) struct PoolMetrics {
    pub(crate) acquired: Counter,
    pub(crate) timeouts: Counter,
    pub(crate) broken: Counter,
    pub(crate) connects: Counter,
    pub(crate) connect_failures: Counter,
    pub(crate) closed: Counter,
    pub(crate) acquire_wait: Histogram,
    pub(crate) connect_time: Histogram,
    size: Gauge,
    idle: Gauge,
    in_use: Gauge,
    waiters: Gauge,
    connecting: Gauge,
    /// OpenTelemetry's `db.client.connection.max` (seawall's names: none).
    max: Gauge,
}

impl PoolMetrics {
    pub(crate) fn new(pool: &str, names: MetricNames, min_idle: usize) -> Self {
        match names {
            MetricNames::Seawall => Self::seawall(pool),
            MetricNames::OpenTelemetry => Self::open_telemetry(pool, min_idle),
        }
    }

    fn seawall(pool: &str) -> Self {
        // Labelled `node`, like every other per-node metric (a standalone pool: its name).
        let labels = [("node", pool.to_owned())];
        PoolMetrics {
            acquired: counter!("seawall_pool_acquired_total", &labels),
            timeouts: counter!("seawall_pool_timeouts_total", &labels),
            broken: counter!("seawall_pool_broken_total", &labels),
            connects: counter!("seawall_pool_connects_total", &labels),
            connect_failures: counter!("seawall_pool_connect_failures_total", &labels),
            closed: counter!("seawall_pool_closed_total", &labels),
            acquire_wait: histogram!("seawall_pool_acquire_wait_seconds", &labels),
            connect_time: histogram!("seawall_pool_connect_seconds", &labels),
            size: gauge!("seawall_pool_size", &labels),
            idle: gauge!("seawall_pool_idle", &labels),
            in_use: gauge!("seawall_pool_in_use", &labels),
            waiters: gauge!("seawall_pool_waiters", &labels),
            connecting: gauge!("seawall_pool_connecting", &labels),
            max: Gauge::noop(),
        }
    }

    /// OpenTelemetry's semantic conventions for connection pools (`db.client.connection.*`).
    fn open_telemetry(pool: &str, min_idle: usize) -> Self {
        const POOL: &str = "db.client.connection.pool.name";
        const STATE: &str = "db.client.connection.state";
        let labels = [(POOL, pool.to_owned())];
        let count = |state: &'static str| gauge!("db.client.connection.count", POOL => pool.to_owned(), STATE => state);
        gauge!("db.client.connection.idle.min", &labels).set(min_idle as f64);
        PoolMetrics {
            acquired: Counter::noop(),
            timeouts: counter!("db.client.connection.timeouts", &labels),
            broken: Counter::noop(),
            connects: Counter::noop(),
            connect_failures: Counter::noop(),
            closed: Counter::noop(),
            acquire_wait: histogram!("db.client.connection.wait_time", &labels),
            connect_time: histogram!("db.client.connection.create_time", &labels),
            size: Gauge::noop(),
            idle: count("idle"),
            in_use: count("used"),
            waiters: gauge!("db.client.connection.pending_requests", &labels),
            connecting: Gauge::noop(),
            max: gauge!("db.client.connection.max", &labels),
        }
    }

    pub(crate) fn publish(&self, state: &State) {
        self.size.set(state.size as f64);
        self.idle.set(state.idle as f64);
        self.in_use.set(state.in_use as f64);
        self.waiters.set(state.waiters as f64);
        self.connecting.set(state.connecting as f64);
        self.max.set(state.max_size as f64);
    }
}
