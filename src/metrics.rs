//! Metric names and per-pool handles.
//!
//! seawall reports through the [`metrics`] facade, so any exporter (Prometheus, StatsD, ...) the
//! application installs receives them. Handles are registered once when a pool is built, with the
//! pool's name as the `pool` label, so the hot path only bumps a handle: install the recorder
//! before building pools.
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `seawall_pool_acquired_total` | counter | connections handed out |
//! | `seawall_pool_timeouts_total` | counter | acquires that failed at their deadline |
//! | `seawall_pool_broken_total` | counter | connections discarded as broken |
//! | `seawall_pool_connects_total` | counter | connections opened |
//! | `seawall_pool_connect_failures_total` | counter | failed connect attempts |
//! | `seawall_pool_closed_total` | counter | connections closed for any reason |
//! | `seawall_pool_acquire_wait_seconds` | histogram | time an acquire waited (0 when served at once) |
//! | `seawall_pool_connect_seconds` | histogram | duration of successful connects |
//! | `seawall_pool_size`, `_idle`, `_in_use`, `_waiters`, `_connecting` | gauge | sampled by the pool's maintenance task and on [`Pool::state`](crate::pool::Pool::state) |
//!
//! The other layers label by `node`:
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `seawall_breaker_state` | gauge | 0 closed, 1 open, 2 half-open |
//! | `seawall_breaker_transitions_total{to}` | counter | state changes of the breaker |
//! | `seawall_breaker_rejected_total{state}` | counter | calls refused by an open or full half-open breaker |
//! | `seawall_admission_limit`, `_in_flight`, `_queue_len`, `_lifo` | gauge | the admission gate: adaptive limit, work admitted, waiters, LIFO mode |
//! | `seawall_admission_admitted_total`, `_rejected_total`, `_shed_total`, `_expired_total` | counter | requests let in, refused at once, shed from the queue, failed at their deadline |
//! | `seawall_admission_queue_delay_seconds` | histogram | time spent queued |
//! | `seawall_cluster_events_total{event}` | counter | [`ClusterEvent`](crate::ClusterEvent)s (node down/up, breaker opened, promotion, ...) |

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::pool::State;

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
