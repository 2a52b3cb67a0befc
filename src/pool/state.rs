//! Point-in-time snapshot of a pool, and the acquire-wait histogram behind it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

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

const SUB: usize = 8; // buckets per power of two
const SUB_BITS: u32 = 3;
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// Lock-free log-linear histogram of waits in microseconds.
///
/// Only acquires that actually waited are recorded here; immediate ones are counted under the
/// pool lock (which the fast path holds anyway) and merged in as zero-wait samples, so the fast
/// path touches no shared cache line beyond the lock.
///
/// Recording is one relaxed increment of one bucket; the maximum is only written when it grows.
/// Waits happen under contention, when every extra shared write costs a cache-line transfer, and
/// waits of the same length land in the same bucket: the buckets are kept in a few shards,
/// chosen by the recorder, so that concurrent recorders seldom write the same line.
#[derive(Debug)]
pub(crate) struct WaitHistogram {
    /// `SHARDS` consecutive runs of `BUCKETS` counters.
    buckets: Box<[AtomicU64]>,
    max_us: AtomicU64,
}

const SHARDS: usize = 4;

impl Default for WaitHistogram {
    fn default() -> Self {
        WaitHistogram {
            buckets: (0..SHARDS * BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_us: AtomicU64::new(0),
        }
    }
}

/// The middle of bucket `i`, for the mean.
pub(crate) fn midpoint(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let lower = upper_bound(i - 1) + 1;
    lower + (upper_bound(i) - lower) / 2
}

pub(crate) fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros(); // >= SUB_BITS
    let sub = (us >> (octave - SUB_BITS)) as usize & (SUB - 1);
    SUB + (octave - SUB_BITS) as usize * SUB + sub
}

/// The largest value that falls in bucket `i`.
pub(crate) fn upper_bound(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let octave = (i - SUB) / SUB + SUB_BITS as usize;
    let sub = ((i - SUB) % SUB) as u64;
    let base = 1u64 << octave;
    let width = base >> SUB_BITS;
    base + ((sub + 1) * width - 1)
}

impl WaitHistogram {
    /// Records one wait; `shard` is any number that differs between concurrent recorders (an
    /// address of theirs will do).
    pub(crate) fn record(&self, wait: Duration, shard: usize) {
        let us = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        self.buckets[(shard % SHARDS) * BUCKETS + bucket_of(us)].fetch_add(1, Relaxed);
        if us > self.max_us.load(Relaxed) {
            self.max_us.fetch_max(us, Relaxed);
        }
    }

    /// Summary with `immediate` extra zero-wait samples.
    pub(crate) fn summary(&self, immediate: u64) -> WaitSummary {
        let counts: Vec<u64> = (0..BUCKETS)
            .map(|i| {
                (0..SHARDS)
                    .map(|shard| self.buckets[shard * BUCKETS + i].load(Relaxed))
                    .sum()
            })
            .collect();
        let waited: u64 = counts.iter().sum();
        let count = waited + immediate;
        if count == 0 {
            return WaitSummary::default();
        }
        let quantile = |q: f64| {
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            if rank <= immediate {
                return Duration::ZERO;
            }
            let mut seen = immediate;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Duration::from_micros(upper_bound(i));
                }
            }
            Duration::from_micros(self.max_us.load(Relaxed))
        };
        let max = Duration::from_micros(self.max_us.load(Relaxed));
        WaitSummary {
            count,
            mean: Duration::from_micros(
                counts
                    .iter()
                    .enumerate()
                    .map(|(i, c)| c * midpoint(i))
                    .sum::<u64>()
                    / count,
            )
            .min(max),
            p50: quantile(0.50).min(max),
            p99: quantile(0.99).min(max),
            max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bounds_contain_values() {
        let mut last = 0;
        for us in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let b = bucket_of(us);
            assert!(b >= last);
            assert!(b < BUCKETS);
            assert!(upper_bound(b) >= us, "value {us} above bound of bucket {b}");
            if b > 0 {
                assert!(upper_bound(b - 1) < us);
            }
            last = b;
        }
    }

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
