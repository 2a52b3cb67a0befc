//! A lock-free log-linear histogram of durations in microseconds, for the pool's acquire waits,
//! the nodes' query times and the statement statistics.
//!
//! Buckets are 8 per power of two (so a bucket's upper bound is within 12.5% of any value in
//! it). Recording is one relaxed increment of one bucket; the maximum is only written when it
//! grows. Concurrent recorders of similar durations would hit the same bucket, so the buckets
//! are kept in a few shards chosen by the recorder (an address of theirs will do).
//!
//! Counts are cumulative: [`Histogram::counts`] now minus the counts of a second ago is the
//! histogram of that second ([`Counts::since`]), which is how the flight recorder gets a
//! per-second p50 and p99 without touching the recording path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const SUB: usize = 8; // buckets per power of two
const SUB_BITS: u32 = 3;
/// Buckets per shard.
pub(crate) const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;
const SHARDS: usize = 4;

/// The middle of bucket `i`, for means.
pub(crate) fn midpoint(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let lower = upper_bound(i - 1) + 1;
    lower + (upper_bound(i) - lower) / 2
}

/// The bucket of a value in microseconds.
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

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Cumulative counts per bucket, in `SHARDS` runs of [`BUCKETS`] counters.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..SHARDS * BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one duration; `shard` is any number that differs between concurrent recorders.
    #[inline]
    pub(crate) fn record(&self, d: Duration, shard: usize) {
        let us = micros(d);
        self.buckets[(shard % SHARDS) * BUCKETS + bucket_of(us)].fetch_add(1, Relaxed);
        if us > self.max_us.load(Relaxed) {
            self.max_us.fetch_max(us, Relaxed);
        }
    }

    /// The longest duration recorded.
    pub(crate) fn max(&self) -> Duration {
        Duration::from_micros(self.max_us.load(Relaxed))
    }

    /// The counts so far, shards merged.
    pub(crate) fn counts(&self) -> Counts {
        Counts(
            (0..BUCKETS)
                .map(|i| {
                    (0..SHARDS)
                        .map(|shard| self.buckets[shard * BUCKETS + i].load(Relaxed))
                        .sum()
                })
                .collect(),
        )
    }
}

/// A histogram's counts at one instant (see [`Histogram::counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counts(Vec<u64>);

impl Default for Counts {
    fn default() -> Self {
        Counts(vec![0; BUCKETS])
    }
}

impl Counts {
    /// What was recorded after `earlier` was taken.
    pub(crate) fn since(&self, earlier: &Counts) -> Counts {
        Counts(
            self.0
                .iter()
                .zip(earlier.0.iter().chain(std::iter::repeat(&0)))
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
        )
    }

    /// Values counted.
    pub(crate) fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The `q` quantile (bucket upper bound, at most `max`), counting `zeros` extra zero
    /// values below every bucket; `None` when nothing was counted.
    pub(crate) fn quantile(&self, q: f64, zeros: u64, max: Duration) -> Option<Duration> {
        let count = self.total() + zeros;
        if count == 0 {
            return None;
        }
        let rank = ((count as f64) * q).ceil().max(1.0) as u64;
        if rank <= zeros {
            return Some(Duration::ZERO);
        }
        let mut seen = zeros;
        for (i, c) in self.0.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_micros(upper_bound(i)).min(max));
            }
        }
        Some(max)
    }

    /// The mean from bucket midpoints, counting `zeros` extra zero values.
    pub(crate) fn mean(&self, zeros: u64, max: Duration) -> Duration {
        let count = self.total() + zeros;
        if count == 0 {
            return Duration::ZERO;
        }
        let sum: u128 = self
            .0
            .iter()
            .enumerate()
            .map(|(i, c)| u128::from(*c) * u128::from(midpoint(i)))
            .sum();
        Duration::from_micros(u64::try_from(sum / u128::from(count)).unwrap_or(u64::MAX)).min(max)
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
    fn the_difference_of_two_readings_is_what_came_between() {
        let h = Histogram::default();
        for i in 0..100 {
            h.record(Duration::from_millis(1), i);
        }
        let before = h.counts();
        for i in 0..99 {
            h.record(Duration::from_millis(10), i);
        }
        h.record(Duration::from_millis(900), 0);
        let second = h.counts().since(&before);
        assert_eq!(second.total(), 100);
        let p50 = second.quantile(0.5, 0, h.max()).unwrap();
        assert!(p50 >= Duration::from_millis(10) && p50 <= Duration::from_micros(11_250));
        let p99 = second.quantile(0.99, 0, h.max()).unwrap();
        assert!(p99 >= Duration::from_millis(10) && p99 <= Duration::from_micros(11_250));
        assert_eq!(
            second.quantile(1.0, 0, h.max()),
            Some(Duration::from_millis(900))
        );
        assert_eq!(Counts::default().quantile(0.5, 0, h.max()), None);
        assert_eq!(second.quantile(0.5, 100, h.max()), Some(Duration::ZERO));
    }
}
