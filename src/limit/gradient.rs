//! A latency-gradient limiter in the manner of Netflix's Gradient2.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::{check_bounds, Limiter, Sample};
use crate::ConfigError;

/// Headroom added to the limit on each update: how much queueing the limiter allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueSize {
    /// `max(1, sqrt(limit))`: grows with the limit but sub-linearly.
    #[default]
    Sqrt,
    /// A constant number of requests.
    Fixed(usize),
}

impl QueueSize {
    fn at(self, limit: f64) -> f64 {
        match self {
            QueueSize::Sqrt => limit.sqrt().max(1.0),
            QueueSize::Fixed(n) => n as f64,
        }
    }
}

/// Configuration of a [`Gradient`] limiter.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientConfig {
    /// The limit before any sample arrives. Default 20.
    pub initial_limit: usize,
    /// The limit never goes below this. Default 4.
    pub min_limit: usize,
    /// The limit never goes above this. Default 200.
    pub max_limit: usize,
    /// Fraction of the way to its target the limit moves per round, in `(0, 1]`. Default 0.2.
    pub smoothing: f64,
    /// How far short-term latency may exceed the baseline before the limit shrinks; at least 1.
    /// Default 1.5.
    pub tolerance: f64,
    /// Samples in the short-term latency average. Default 10.
    pub short_window: u32,
    /// Samples in the long-term (baseline) latency average; at least `short_window`. Default 600.
    pub long_window: u32,
    /// Headroom added per update. Default [`QueueSize::Sqrt`].
    pub queue_size: QueueSize,
}

impl Default for GradientConfig {
    fn default() -> Self {
        GradientConfig {
            initial_limit: 20,
            min_limit: 4,
            max_limit: 200,
            smoothing: 0.2,
            tolerance: 1.5,
            short_window: 10,
            long_window: 600,
            queue_size: QueueSize::Sqrt,
        }
    }
}

impl GradientConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_bounds(self.min_limit, self.max_limit, self.initial_limit)?;
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(ConfigError::new(
                "smoothing",
                format!("must lie in (0, 1], got {}", self.smoothing),
            ));
        }
        if !(self.tolerance >= 1.0 && self.tolerance.is_finite()) {
            return Err(ConfigError::new(
                "tolerance",
                format!("must be finite and at least 1.0, got {}", self.tolerance),
            ));
        }
        if self.short_window == 0 {
            return Err(ConfigError::new("short_window", "must be at least 1"));
        }
        if self.long_window < self.short_window {
            return Err(ConfigError::new(
                "long_window",
                format!(
                    "must be at least short_window ({}), got {}",
                    self.short_window, self.long_window
                ),
            ));
        }
        Ok(())
    }
}

/// Latency-gradient limiter after Netflix's Gradient2.
///
/// # Algorithm
///
/// Two exponentially weighted moving averages of latency are kept: a *short* one (the last
/// `short_window` samples or so: what the backend does now) and a *long* one (`long_window`
/// samples: the baseline it usually does). On each sample:
///
/// ```text
/// gradient = clamp(tolerance * long / short, 0.5, 1.0)
/// target   = limit * gradient + queue_size(limit)
/// limit   += (target - limit) * smoothing / limit
/// limit    = clamp(limit, min_limit, max_limit)
/// ```
///
/// While latency stays within `tolerance` of the baseline the gradient is 1 and the limit creeps up
/// by `queue_size` (it probes for capacity). When the short-term latency rises above `tolerance ×
/// baseline`, requests are queueing inside the backend: the gradient drops below 1 and the limit
/// shrinks. The gradient is clamped at 0.5, so even a wild outlier pulls the target to no less than
/// half the limit, and smoothing spreads that over a round: no single sample can collapse the
/// limit. The baseline follows slowly, so a lasting change in latency (bigger data, a new index) is
/// eventually accepted as the new normal rather than punished forever. When latency falls far below
/// the baseline (long > 2 × short: an overload has ended) the baseline is cut by 10% per sample so
/// the limit recovers without waiting for the slow average.
///
/// # Where this differs from Netflix's `Gradient2Limit`
///
/// - Netflix recomputes the limit once per sample *window* (`WindowedLimit`, about a second) from
///   that window's average latency. Here every sample updates the limit, weighted by `1 / limit`,
///   and the short-term latency is an EWMA over `short_window` samples instead of a window's
///   average. A limit's worth of completions (one round trip of the whole window) thus moves the
///   limit by `smoothing` of the way to its target, Netflix's per-window pace, without windows.
/// - `tolerance` (Gradient2's earlier `rttTolerance`) widens the band in which jitter is ignored:
///   with the default 1.5, latency may run 50% above the baseline before the limit shrinks.
/// - When the backend is "app limited" (less than half the limit in flight) Netflix ignores the
///   sample; here it may still *lower* the limit but never raises it. Rising latency at low load
///   is still a warning; growing a limit nobody uses is not a measurement.
/// - Netflix ignores drops. Here a dropped sample counts as the worst gradient (0.5) and its
///   latency is kept out of the averages: a timeout's latency is the timeout, not a service time.
/// - The default `queue_size` is `sqrt(limit)` (Envoy's adaptive concurrency uses the same
///   headroom); Netflix defaults to a constant 4.
///
/// Envoy's adaptive concurrency filter uses the same gradient idea with a *minimum* RTT, which it
/// re-measures by periodically pinning the limit low; that costs throughput on a database primary,
/// so the EWMA baseline is used here, as in Gradient2.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use seawall::limit::{Gradient, GradientConfig, Limiter, Sample};
///
/// let gradient = Gradient::new(GradientConfig::default())?;
/// let ms = Duration::from_millis;
/// // Steady latency at full utilisation: the limit probes upwards.
/// for _ in 0..100 {
///     gradient.on_sample(Sample::success(ms(10), gradient.limit()));
/// }
/// assert!(gradient.limit() > 20);
/// # Ok::<(), seawall::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct Gradient {
    config: GradientConfig,
    state: Mutex<State>,
    /// `state.limit` rounded down, readable without the lock.
    published: AtomicUsize,
}

#[derive(Debug)]
struct State {
    limit: f64,
    /// `config.max_limit`, or what [`Gradient::set_max_limit`] made of it.
    max_limit: usize,
    short: Ewma,
    long: Ewma,
}

impl Gradient {
    /// A limiter with this configuration, or the error naming the bad field.
    pub fn new(config: GradientConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let state = State {
            limit: config.initial_limit as f64,
            max_limit: config.max_limit,
            short: Ewma::new(config.short_window),
            long: Ewma::new(config.long_window),
        };
        Ok(Gradient {
            published: AtomicUsize::new(config.initial_limit),
            state: Mutex::new(state),
            config,
        })
    }

    /// The configuration this limiter was built with (its `max_limit` as built: see
    /// [`Gradient::max_limit`]).
    pub fn config(&self) -> &GradientConfig {
        &self.config
    }

    /// The highest limit allowed now.
    pub fn max_limit(&self) -> usize {
        self.state.lock().max_limit
    }

    /// Changes the highest limit (a node's pool was resized). A limit at the old maximum, which
    /// no measurement held back, moves to the new one; a lower limit stays where the
    /// measurements put it, within the new bounds. Fails if `max_limit` is below `min_limit`.
    ///
    /// ```
    /// use seawall::limit::{Gradient, GradientConfig, Limiter};
    /// let gradient = Gradient::new(GradientConfig { initial_limit: 2, min_limit: 1, max_limit: 2, ..GradientConfig::default() })?;
    /// gradient.set_max_limit(8)?;
    /// assert_eq!(gradient.limit(), 8);
    /// assert!(gradient.set_max_limit(0).is_err());
    /// # Ok::<(), seawall::ConfigError>(())
    /// ```
    pub fn set_max_limit(&self, max_limit: usize) -> Result<(), ConfigError> {
        let min = self.config.min_limit;
        if max_limit < min {
            return Err(ConfigError::new(
                "max_limit",
                format!("must be at least min_limit ({min}), got {max_limit}"),
            ));
        }
        let mut state = self.state.lock();
        let at_max = state.limit >= state.max_limit as f64;
        state.max_limit = max_limit;
        if at_max || state.limit > max_limit as f64 {
            state.limit = max_limit as f64;
        }
        self.published
            .store(state.limit as usize, Ordering::Relaxed);
        Ok(())
    }

    /// The short-term latency average (zero before the first sample).
    pub fn short_latency(&self) -> Duration {
        Duration::from_secs_f64(self.state.lock().short.value)
    }

    /// The long-term (baseline) latency average (zero before the first sample).
    pub fn long_latency(&self) -> Duration {
        Duration::from_secs_f64(self.state.lock().long.value)
    }
}

impl Limiter for Gradient {
    fn limit(&self) -> usize {
        self.published.load(Ordering::Relaxed)
    }

    fn on_sample(&self, sample: Sample) {
        let config = &self.config;
        let mut state = self.state.lock();
        let limit = state.limit;

        let gradient = if sample.dropped {
            0.5
        } else {
            let rtt = sample.latency.as_secs_f64();
            let short = state.short.add(rtt);
            let long = state.long.add(rtt);
            if long > 2.0 * short {
                // Latency fell far below the baseline: an overload ended. Pull the baseline down
                // faster than its average would, so the limit recovers promptly.
                state.long.value *= 0.9;
            }
            if short > 0.0 {
                (config.tolerance * long / short).clamp(0.5, 1.0)
            } else {
                1.0
            }
        };

        let target = limit * gradient + config.queue_size.at(limit);
        let mut next = limit + (target - limit) * config.smoothing / limit.max(1.0);
        if next > limit && sample.in_flight.saturating_mul(2) < limit as usize {
            // App limited: the backend was not pushed, so success says nothing about capacity.
            next = limit;
        }
        let next = next.clamp(config.min_limit as f64, state.max_limit as f64);
        state.limit = next;
        self.published.store(next as usize, Ordering::Relaxed);
    }
}

/// An exponentially weighted moving average over about `window` samples, which starts as a plain
/// average of the first few samples so that one early outlier does not skew it for long.
#[derive(Debug)]
struct Ewma {
    value: f64,
    count: u32,
    warmup: u32,
    factor: f64,
}

impl Ewma {
    fn new(window: u32) -> Self {
        Ewma {
            value: 0.0,
            count: 0,
            warmup: window.min(10),
            factor: 2.0 / (f64::from(window) + 1.0),
        }
    }

    fn add(&mut self, x: f64) -> f64 {
        if self.count < self.warmup {
            self.count += 1;
            self.value += (x - self.value) / f64::from(self.count);
        } else {
            self.value += (x - self.value) * self.factor;
        }
        self.value
    }
}
