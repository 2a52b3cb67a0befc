//! Additive increase, multiplicative decrease: TCP Reno's congestion avoidance applied to
//! in-flight requests.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::{check_bounds, Limiter, Sample};
use crate::ConfigError;

/// Configuration of an [`Aimd`] limiter.
#[derive(Debug, Clone, PartialEq)]
pub struct AimdConfig {
    /// The limit before any sample arrives. Default 10.
    pub initial_limit: usize,
    /// The limit never goes below this. Default 1.
    pub min_limit: usize,
    /// The limit never goes above this. Default 100.
    pub max_limit: usize,
    /// Factor applied to the limit on a drop, in `[0.5, 1.0)`. Default 0.9.
    pub backoff_ratio: f64,
    /// A success slower than this counts as a drop. Default 5 s (as Netflix's `AIMDLimit`).
    pub latency_threshold: Duration,
}

impl Default for AimdConfig {
    fn default() -> Self {
        AimdConfig {
            initial_limit: 10,
            min_limit: 1,
            max_limit: 100,
            backoff_ratio: 0.9,
            latency_threshold: Duration::from_secs(5),
        }
    }
}

impl AimdConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_bounds(self.min_limit, self.max_limit, self.initial_limit)?;
        if self.max_limit > u32::MAX as usize {
            return Err(ConfigError::new(
                "max_limit",
                format!("must be at most {}", u32::MAX),
            ));
        }
        if !(0.5..1.0).contains(&self.backoff_ratio) {
            return Err(ConfigError::new(
                "backoff_ratio",
                format!("must lie in [0.5, 1.0), got {}", self.backoff_ratio),
            ));
        }
        if self.latency_threshold.is_zero() {
            return Err(ConfigError::new("latency_threshold", "must be positive"));
        }
        Ok(())
    }
}

/// Loss-based limiter: +1 per round of successes near the limit, × `backoff_ratio` on a drop.
///
/// - A sample that is dropped, or slower than `latency_threshold`, multiplies the limit by
///   `backoff_ratio` (rounding down, and always by at least one), never below `min_limit`.
/// - A success while at least half the limit was in flight counts towards the next increase; a
///   full limit's worth of them (one "round", like one congestion window of ACKs in TCP) adds one.
///   Successes while the backend is mostly idle say nothing about its capacity and are ignored,
///   so the limit does not balloon during quiet periods.
///
/// Netflix's `AIMDLimit` adds one per success, which grows the limit by the request *rate*; one
/// per round grows it by one per round trip whatever the rate, which is TCP's pace and is gentler
/// on a database that reacts to load with a lag.
///
/// The state (limit and successes counted this round) is one atomic word: samples never lock.
///
/// ```
/// use std::time::Duration;
/// use seawall::limit::{Aimd, AimdConfig, Limiter, Sample};
///
/// let aimd = Aimd::new(AimdConfig { initial_limit: 20, ..AimdConfig::default() })?;
/// aimd.on_sample(Sample::dropped(Duration::from_millis(3), 20));
/// assert_eq!(aimd.limit(), 18);
/// # Ok::<(), seawall::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct Aimd {
    config: AimdConfig,
    /// High 32 bits: the limit. Low 32 bits: successes counted towards the next increase.
    state: AtomicU64,
    /// `config.max_limit`, or what [`Aimd::set_max_limit`] made of it.
    max_limit: AtomicU32,
}

impl Aimd {
    /// A limiter with this configuration, or the error naming the bad field.
    pub fn new(config: AimdConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let state = AtomicU64::new(pack(config.initial_limit as u32, 0));
        let max_limit = AtomicU32::new(config.max_limit as u32);
        Ok(Aimd {
            config,
            state,
            max_limit,
        })
    }

    /// The configuration this limiter was built with (its `max_limit` as built: see
    /// [`Aimd::max_limit`]).
    pub fn config(&self) -> &AimdConfig {
        &self.config
    }

    /// The highest limit allowed now.
    pub fn max_limit(&self) -> usize {
        self.max_limit.load(Ordering::Relaxed) as usize
    }

    /// Changes the highest limit (a node's pool was resized). A limit at the old maximum moves
    /// to the new one; a lower limit stays where the drops put it, within the new bounds. Fails
    /// if `max_limit` is below `min_limit` or above `u32::MAX`.
    ///
    /// ```
    /// use seawall::limit::{Aimd, AimdConfig, Limiter};
    /// let aimd = Aimd::new(AimdConfig { initial_limit: 2, max_limit: 2, ..AimdConfig::default() })?;
    /// aimd.set_max_limit(8)?;
    /// assert_eq!(aimd.limit(), 8);
    /// assert!(aimd.set_max_limit(0).is_err());
    /// # Ok::<(), seawall::ConfigError>(())
    /// ```
    pub fn set_max_limit(&self, max_limit: usize) -> Result<(), ConfigError> {
        let min = self.config.min_limit;
        let new = u32::try_from(max_limit)
            .ok()
            .filter(|&m| m as usize >= min)
            .ok_or_else(|| {
                ConfigError::new(
                    "max_limit",
                    format!(
                        "must lie in [min_limit ({min}), {}], got {max_limit}",
                        u32::MAX
                    ),
                )
            })?;
        let old = self.max_limit.swap(new, Ordering::Relaxed);
        let _ = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                let (limit, acked) = unpack(word);
                let next = if limit >= old { new } else { limit.min(new) };
                (next != limit).then(|| pack(next, acked))
            });
        Ok(())
    }

    fn next(&self, limit: u32, acked: u32, sample: &Sample) -> (u32, u32) {
        let min = self.config.min_limit as u32;
        let max = self.max_limit.load(Ordering::Relaxed);
        if sample.dropped || sample.latency > self.config.latency_threshold {
            // The epsilon keeps `10 * 0.7 = 6.9999…` from flooring to 6.
            let scaled = (f64::from(limit) * self.config.backoff_ratio + 1e-9).floor() as u32;
            return (scaled.min(limit.saturating_sub(1)).max(min), 0);
        }
        if sample.in_flight.saturating_mul(2) < limit as usize {
            return (limit, acked);
        }
        if acked + 1 >= limit {
            ((limit + 1).min(max), 0)
        } else {
            (limit, acked + 1)
        }
    }
}

impl Limiter for Aimd {
    fn limit(&self) -> usize {
        unpack(self.state.load(Ordering::Relaxed)).0 as usize
    }

    fn on_sample(&self, sample: Sample) {
        // A CAS loop rather than a lock: concurrent samples each apply on the latest state.
        let _ = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                let (limit, acked) = unpack(word);
                let next = self.next(limit, acked, &sample);
                (next != (limit, acked)).then(|| pack(next.0, next.1))
            });
    }
}

fn pack(limit: u32, acked: u32) -> u64 {
    (u64::from(limit) << 32) | u64::from(acked)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}
