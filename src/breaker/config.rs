//! The breaker's configuration, validated once so that the state machine never meets a bad value.

use std::time::Duration;

use crate::ConfigError;

/// Which recent calls the closed breaker judges.
///
/// Both kinds keep running totals that are updated on every call and subtracted when an entry
/// leaves the window, so judging costs the same whatever the window's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `calls` calls, however old. Good for a steady load; under a trickle of calls it
    /// remembers failures from long ago.
    Count {
        /// How many recorded calls the window holds.
        calls: u32,
    },
    /// The calls of the last `seconds` seconds, kept in one bucket per second. Good for bursty
    /// load: old failures age out even when no calls arrive.
    Time {
        /// How many seconds the window covers.
        seconds: u32,
    },
}

/// How a [`CircuitBreaker`](super::CircuitBreaker) judges its node.
///
/// Build one with [`BreakerConfig::builder`]; every setter has a default, and
/// [`BreakerConfigBuilder::build`] rejects values that cannot work with a [`ConfigError`] naming
/// the field.
///
/// ```
/// use std::time::Duration;
/// use seawall::breaker::{BreakerConfig, SlidingWindow};
///
/// let config = BreakerConfig::builder()
///     .window(SlidingWindow::Time { seconds: 10 })
///     .minimum_calls(20)
///     .failure_rate_threshold(50.0)
///     .slow_call_duration(Duration::from_millis(500))
///     .open_interval(Duration::from_secs(1), Duration::from_secs(30))
///     .build()
///     .unwrap();
/// assert_eq!(config.minimum_calls(), 20);
///
/// let err = BreakerConfig::builder().failure_rate_threshold(0.0).build().unwrap_err();
/// assert_eq!(err.field, "failure_rate_threshold");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub(crate) failure_rate_threshold: f64,
    pub(crate) slow_call_rate_threshold: f64,
    pub(crate) slow_call_duration: Duration,
    pub(crate) window: SlidingWindow,
    pub(crate) minimum_calls: u32,
    pub(crate) permitted_calls_in_half_open: u32,
    pub(crate) open_interval: Duration,
    pub(crate) max_open_interval: Duration,
    pub(crate) open_interval_multiplier: f64,
    pub(crate) jitter: f64,
    pub(crate) seed: Option<u64>,
}

impl Default for BreakerConfig {
    /// Failure rate 50 %, slow-call rate 100 % of calls over 2 s, a window of the last 100 calls
    /// judged from 20 calls on, 5 trial calls, an open interval of 5 s doubling up to 2 min with
    /// 20 % jitter.
    fn default() -> Self {
        BreakerConfig {
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(2),
            window: SlidingWindow::Count { calls: 100 },
            minimum_calls: 20,
            permitted_calls_in_half_open: 5,
            open_interval: Duration::from_secs(5),
            max_open_interval: Duration::from_secs(120),
            open_interval_multiplier: 2.0,
            jitter: 0.2,
            seed: None,
        }
    }
}

impl BreakerConfig {
    /// A builder starting from the [defaults](BreakerConfig::default).
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder {
            config: BreakerConfig::default(),
        }
    }

    /// Percentage of failed calls (in `(0, 100]`) at or above which the breaker opens.
    pub fn failure_rate_threshold(&self) -> f64 {
        self.failure_rate_threshold
    }

    /// Percentage of slow calls (in `(0, 100]`) at or above which the breaker opens.
    pub fn slow_call_rate_threshold(&self) -> f64 {
        self.slow_call_rate_threshold
    }

    /// A call that takes at least this long is slow.
    pub fn slow_call_duration(&self) -> Duration {
        self.slow_call_duration
    }

    /// The window the closed breaker judges.
    pub fn window(&self) -> SlidingWindow {
        self.window
    }

    /// Calls the window must hold before the breaker judges rates at all.
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }

    /// Trial calls admitted while half-open.
    pub fn permitted_calls_in_half_open(&self) -> u32 {
        self.permitted_calls_in_half_open
    }

    /// The open interval after a first trip.
    pub fn open_interval(&self) -> Duration {
        self.open_interval
    }

    /// The longest open interval, however many trips in a row.
    pub fn max_open_interval(&self) -> Duration {
        self.max_open_interval
    }

    /// Factor by which the open interval grows with each trip in a row.
    pub fn open_interval_multiplier(&self) -> f64 {
        self.open_interval_multiplier
    }

    /// Fraction (in `[0, 1]`) of the open interval that jitter may take off.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The seed of the jitter, if any.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// The open interval before jitter after `trips_in_row` trips without a close in between
    /// (the first trip is 1): `open_interval * multiplier^(trips_in_row - 1)`, capped.
    pub(crate) fn open_interval_for(&self, trips_in_row: u32) -> Duration {
        let exponent = trips_in_row.saturating_sub(1).min(i32::MAX as u32) as i32;
        let secs = self.open_interval.as_secs_f64() * self.open_interval_multiplier.powi(exponent);
        // Past the cap (or past what f64 holds) the cap applies; no overflow, no panic.
        if secs.is_finite() && secs < self.max_open_interval.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.max_open_interval
        }
    }
}

/// Builds a [`BreakerConfig`]; see there for an example.
#[derive(Debug, Clone)]
pub struct BreakerConfigBuilder {
    config: BreakerConfig,
}

impl BreakerConfigBuilder {
    /// Percentage of failed calls, in `(0, 100]`, at or above which the breaker opens.
    /// Default 50.
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.config.failure_rate_threshold = percent;
        self
    }

    /// Percentage of slow calls, in `(0, 100]`, at or above which the breaker opens. Default 100:
    /// the node is cut off only when every call in the window is slow.
    pub fn slow_call_rate_threshold(mut self, percent: f64) -> Self {
        self.config.slow_call_rate_threshold = percent;
        self
    }

    /// A call taking at least this long counts as slow (whether it succeeded or failed).
    /// Default 2 s. Must not be zero.
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.config.slow_call_duration = duration;
        self
    }

    /// The window the closed breaker judges. Default: the last 100 calls. Its size must not be
    /// zero.
    pub fn window(mut self, window: SlidingWindow) -> Self {
        self.config.window = window;
        self
    }

    /// Calls the window must hold before the breaker judges (at least 1; for a count window, at
    /// most its size). Default 20.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.config.minimum_calls = calls;
        self
    }

    /// Trial calls admitted while half-open (at least 1). Default 5.
    pub fn permitted_calls_in_half_open(mut self, calls: u32) -> Self {
        self.config.permitted_calls_in_half_open = calls;
        self
    }

    /// The open interval after a first trip, and the most it may grow to. Defaults 5 s and
    /// 2 min. The first must not be zero and the second not below the first.
    pub fn open_interval(mut self, first: Duration, max: Duration) -> Self {
        self.config.open_interval = first;
        self.config.max_open_interval = max;
        self
    }

    /// Factor (at least 1) by which the open interval grows with each trip in a row. Default 2;
    /// 1 keeps it fixed.
    pub fn open_interval_multiplier(mut self, factor: f64) -> Self {
        self.config.open_interval_multiplier = factor;
        self
    }

    /// Fraction, in `[0, 1]`, of the open interval that jitter may take off, so that breakers
    /// tripped by the same outage do not all probe the node at the same instant. Default 0.2: an
    /// interval of 10 s becomes a uniform draw in `[8 s, 10 s]`. 0 disables jitter.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.config.jitter = fraction;
        self
    }

    /// Seeds the jitter so that a run can be replayed exactly (tests, the simulator). Unseeded
    /// breakers seed from the operating system.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// Checks every field and returns the configuration, or the first field that cannot work.
    pub fn build(self) -> Result<BreakerConfig, ConfigError> {
        let c = self.config;
        check_rate("failure_rate_threshold", c.failure_rate_threshold)?;
        check_rate("slow_call_rate_threshold", c.slow_call_rate_threshold)?;
        if c.slow_call_duration.is_zero() {
            return Err(ConfigError::new(
                "slow_call_duration",
                "must be greater than zero",
            ));
        }
        match c.window {
            SlidingWindow::Count { calls: 0 } | SlidingWindow::Time { seconds: 0 } => {
                return Err(ConfigError::new("window", "must not be empty"));
            }
            _ => {}
        }
        if c.minimum_calls == 0 {
            return Err(ConfigError::new("minimum_calls", "must be at least 1"));
        }
        if let SlidingWindow::Count { calls } = c.window {
            if c.minimum_calls > calls {
                return Err(ConfigError::new(
                    "minimum_calls",
                    format!(
                        "is {} but the count window holds only {calls} calls, so the breaker \
                         could never judge",
                        c.minimum_calls
                    ),
                ));
            }
        }
        if c.permitted_calls_in_half_open == 0 {
            return Err(ConfigError::new(
                "permitted_calls_in_half_open",
                "must be at least 1",
            ));
        }
        if c.open_interval.is_zero() {
            return Err(ConfigError::new(
                "open_interval",
                "must be greater than zero",
            ));
        }
        if c.max_open_interval < c.open_interval {
            return Err(ConfigError::new(
                "max_open_interval",
                format!(
                    "({:?}) must not be shorter than open_interval ({:?})",
                    c.max_open_interval, c.open_interval
                ),
            ));
        }
        if !(c.open_interval_multiplier.is_finite() && c.open_interval_multiplier >= 1.0) {
            return Err(ConfigError::new(
                "open_interval_multiplier",
                format!(
                    "must be a finite number >= 1, got {}",
                    c.open_interval_multiplier
                ),
            ));
        }
        if !(0.0..=1.0).contains(&c.jitter) {
            return Err(ConfigError::new(
                "jitter",
                format!("must be in [0, 1], got {}", c.jitter),
            ));
        }
        Ok(c)
    }
}

fn check_rate(field: &'static str, percent: f64) -> Result<(), ConfigError> {
    // Written so that NaN fails too.
    if percent > 0.0 && percent <= 100.0 {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("must be a percentage in (0, 100], got {percent}"),
        ))
    }
}
