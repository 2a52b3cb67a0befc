//! The pool's own metrics handles (every name is listed in [`crate::metrics`]).

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use super::State;

/// Handles for one pool's metrics.
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
}

impl PoolMetrics {
    pub(crate) fn new(pool: &str) -> Self {
        let labels = [("pool", pool.to_owned())];
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
        }
    }

    pub(crate) fn publish(&self, state: &State) {
        self.size.set(state.size as f64);
        self.idle.set(state.idle as f64);
        self.in_use.set(state.in_use as f64);
        self.waiters.set(state.waiters as f64);
        self.connecting.set(state.connecting as f64);
    }
}
