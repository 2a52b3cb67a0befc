//! Exponential backoff with jitter, for reconnects.
//!
//! When a database goes away, every pool that used it starts reconnecting. Without jitter they
//! retry in lockstep and hit the database together the moment it comes back (a reconnect storm).
//! Each delay here is drawn uniformly from the upper half of an exponentially growing step, so
//! retries spread out while the expected delay still grows.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Bounds of a jittered exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first step.
    pub initial: Duration,
    /// The largest step.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
        }
    }
}

/// The state of one retry sequence.
#[derive(Debug)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    step: Duration,
    rng: SmallRng,
}

impl Backoff {
    pub(crate) fn new(config: BackoffConfig, seed: u64) -> Self {
        Backoff {
            config,
            step: config.initial,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Advances past `attempts` steps without sleeping them (to continue a sequence that
    /// another task started).
    pub(crate) fn skip(&mut self, attempts: u64) -> &mut Self {
        for _ in 0..attempts.min(64) {
            self.step = (self.step * 2).min(self.config.max);
        }
        self
    }

    /// The delay before the next attempt: uniform in `[step/2, step]`; the step then doubles up
    /// to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.config.max);
        let half = step / 2;
        let nanos = half.as_nanos() as u64;
        half + Duration::from_nanos(if nanos == 0 {
            0
        } else {
            self.rng.random_range(0..=nanos)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_bounds_and_cap() {
        let config = BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(800),
        };
        let mut b = Backoff::new(config, 7);
        let expected_steps = [100u64, 200, 400, 800, 800, 800];
        for step in expected_steps {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(step / 2),
                "{d:?} < half of {step}ms"
            );
            assert!(d <= Duration::from_millis(step), "{d:?} > {step}ms");
        }
    }

    #[test]
    fn jitter_spreads_sequences_apart() {
        let config = BackoffConfig::default();
        let firsts: std::collections::BTreeSet<_> = (0..32)
            .map(|seed| Backoff::new(config, seed).next_delay())
            .collect();
        assert!(firsts.len() > 16, "only {} distinct delays", firsts.len());
    }
}
