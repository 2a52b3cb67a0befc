//! Point-in-time snapshot of a pool, and the acquire-wait histogram behind it.

use std::sync::Arc;
use std::time::Duration;

use crate::histogram::{Counts, Histogram};

/// A snapshot of a pool, from [`Pool::state`](crate::pool::Pool::state).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct State {
    /// The pool's name.
    pub name: Arc<str>,
    /// Open connections: idle plus in use.
    pub size: usize,
    /// Connections ready in the pool.
    pub idle: usize,
    /// Connections checked out (or being reset after their return).
    pub in_use: usize,
    /// Callers waiting for a connection.
    pub waiters: usize,
    /// Connects in flight, including those sleeping in backoff before a retry.
    pub connecting: usize,
    /// The current maximum size.
    pub max_size: usize,
    /// Whether the pool is closed.
    pub closed: bool,
    /// Counters since the pool was built.
    pub totals: Totals,
    /// How long acquires waited.
    pub acquire_wait: WaitSummary,
}

/// Counters since the pool was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Totals {
    /// Connections handed out.
    pub acquired: u64,
    /// Acquires that were not served at once: they waited for a connection, or the connection
    /// they got was pinged first (the ping's time counts as waiting).
    pub waited: u64,
    /// Acquires that failed at their deadline.
    pub timed_out: u64,
    /// Connections discarded as broken (driver said so, a ping or reset failed, or the user
    /// discarded them).
    pub broken: u64,
    /// Connections opened.
    pub created: u64,
    /// Connections closed for any reason (broken, lifetime, idle timeout, shrink, close).
    pub closed: u64,
    /// Failed connect attempts.
    pub connect_failures: u64,
    /// Session resets run on returned connections (the driver's full reset, or only the
    /// [state](crate::session) a borrower is known to have left). A connection used only
    /// through a tracking integration and left clean needs none.
    pub resets: u64,
}

/// Summary of acquire waits. Quantiles are bucket upper bounds and the mean uses bucket
/// midpoints (both within 12.5%).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaitSummary {
    /// Acquires measured.
    pub count: u64,
    /// Mean wait (approximate).
    pub mean: Duration,
    /// Median wait.
    pub p50: Duration,
    /// 99th percentile wait.
    pub p99: Duration,
    /// Longest wait.
    pub max: Duration,
}

/// Acquire waits, in the shared [log-linear histogram](crate::histogram).
///
/// Only acquires that actually waited are recorded here; immediate ones are counted under the
/// pool lock (which the fast path holds anyway) and merged in as zero-wait samples, so the fast
/// path touches no shared cache line beyond the lock. Waits happen under contention, when every
/// extra shared write costs a cache-line transfer: the histogram's shards keep concurrent
/// recorders off each other's lines.
#[derive(Debug, Default)]
pub(crate) struct WaitHistogram(Histogram);

impl WaitHistogram {
    /// Records one wait; `shard` is any number that differs between concurrent recorders (an
    /// address of theirs will do).
    pub(crate) fn record(&self, wait: Duration, shard: usize) {
        self.0.record(wait, shard);
    }

    /// The waits recorded so far, for a difference over an interval.
    pub(crate) fn counts(&self) -> Counts {
        self.0.counts()
    }

    /// Summary with `immediate` extra zero-wait samples.
    pub(crate) fn summary(&self, immediate: u64) -> WaitSummary {
        let counts = self.0.counts();
        let max = self.0.max();
        match counts.quantile(0.5, immediate, max) {
            None => WaitSummary::default(),
            Some(p50) => WaitSummary {
                count: counts.total() + immediate,
                mean: counts.mean(immediate, max),
                p50,
                p99: counts.quantile(0.99, immediate, max).unwrap_or(max),
                max,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_merges_immediate_acquires() {
        let h = WaitHistogram::default();
        for i in 0..10 {
            h.record(Duration::from_millis(100), i);
        }
        let s = h.summary(90);
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::ZERO);
        assert_eq!(s.max, Duration::from_millis(100));
        assert!(s.p99 >= Duration::from_micros(100_000) && s.p99 <= Duration::from_millis(100));
        let mean = s.mean.as_secs_f64();
        assert!((0.0088..=0.0112).contains(&mean), "mean {mean}");
    }
}
