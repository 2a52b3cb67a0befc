//! A delay-based limiter after TCP Vegas: latency over the backend's no-load latency decides.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::{check_bounds, Limiter, Sample};
use crate::ConfigError;

/// Configuration of a [`Vegas`] limiter.
#[derive(Debug, Clone, PartialEq)]
pub struct VegasConfig {
    /// The limit before any sample arrives. Default 20.
    pub initial_limit: usize,
    /// The limit never goes below this. Default 1.
    pub min_limit: usize,
    /// The limit never goes above this. Default 200.
    pub max_limit: usize,
    /// Samples in the latency average. Default 30.
    pub window: u32,
    /// Latency, in multiples of the no-load latency, above which the limit shrinks; above 1.
    /// Default 3.0.
    pub tolerance: f64,
    /// What the limit grows by per round (a limit's worth of samples) while latency is within
    /// tolerance, in `(0, 1]`. Default 0.5.
    pub increase: f64,
    /// Share of the way from the no-load latency to the current average the no-load estimate
    /// moves per sample when the average is higher, in `[0, 1)`: how fast a lasting change of
    /// the backend's speed is accepted. Default 0.0002.
    pub drift: f64,
}

impl Default for VegasConfig {
    fn default() -> Self {
        VegasConfig {
            initial_limit: 20,
            min_limit: 1,
            max_limit: 200,
            window: 30,
            tolerance: 3.0,
            increase: 0.5,
            drift: 0.0002,
        }
    }
}

impl VegasConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_bounds(self.min_limit, self.max_limit, self.initial_limit)?;
        if self.window == 0 {
            return Err(ConfigError::new("window", "must be at least 1"));
        }
        if !(self.tolerance > 1.0 && self.tolerance.is_finite()) {
            return Err(ConfigError::new(
                "tolerance",
                format!("must be finite and above 1.0, got {}", self.tolerance),
            ));
        }
        if !(self.increase > 0.0 && self.increase <= 1.0) {
            return Err(ConfigError::new(
                "increase",
                format!("must lie in (0, 1], got {}", self.increase),
            ));
        }
        if !(0.0..1.0).contains(&self.drift) {
            return Err(ConfigError::new(
                "drift",
                format!("must lie in [0, 1), got {}", self.drift),
            ));
        }
        Ok(())
    }
}

/// Delay-based limiter after TCP Vegas, for many clients sharing one backend.
///
/// # Algorithm
///
/// The limiter keeps an average of recent latency (an EWMA over `window` samples) and an
/// estimate of the backend's *no-load* latency: the lowest average seen, which rises only
/// slowly (`drift`) so that a backend that became lastingly slower is eventually accepted. Per
/// sample, with `ratio = average / no_load`:
///
/// ```text
/// ratio > tolerance or dropped:  limit *= max(0.5, tolerance / ratio)   (once per round trip)
/// otherwise:                     limit += increase / limit
/// ```
///
/// so that the limit moves at once to where the ratio would be back within tolerance (at most
/// halving), then waits for the requests admitted since (a sample admitted before the last cut
/// does not cut again, like TCP's one reduction per round trip); within tolerance it grows by
/// `increase` per round (a limit's worth of samples). A drop counts as a ratio of twice the
/// tolerance.
///
/// # Why it suits a fleet
///
/// Every application instance that talks to one primary sees the same latency, so every
/// instance's limiter backs off at the same *server* state, whatever the number of instances:
/// the fleet's total in flight settles where the primary's latency is `tolerance` times its
/// no-load latency, a point on its concurrency curve rather than a share of anyone's pool. A
/// latency-gradient limiter ([`Gradient`](super::Gradient)) instead compares with a baseline
/// that follows the latency up, so under a lasting overload it stops backing off. The decrease
/// is multiplicative and the increase additive, so the instances' limits converge to equal
/// shares (Chiu and Jain's AIMD argument). Unlike [`Gradient`](super::Gradient) and
/// [`Aimd`](super::Aimd), the limit also grows while the backend is app limited, as long as
/// latency is within tolerance: after an overload it returns to its maximum.
///
/// # Where this differs from TCP Vegas and Netflix's `VegasLimit`
///
/// Vegas estimates the packets queued as `limit × (1 - rtt_min / rtt)` and keeps it between
/// two small constants (`alpha`, `beta`). A database's latency rises with concurrency even with
/// no queue (contention), and each instance of a fleet holds a small share of the backend, so
/// a latency *ratio* is the signal here. The minimum is taken over averages, not single
/// samples: the minimum of single service times says nothing about the backend's state.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), seawall::ConfigError> {
/// use std::time::Duration;
/// use seawall::limit::{Limiter, Sample, Vegas, VegasConfig};
///
/// let vegas = Vegas::new(VegasConfig { initial_limit: 10, ..VegasConfig::default() })?;
/// let ms = Duration::from_millis;
/// for _ in 0..50 {
///     vegas.on_sample(Sample::success(ms(10), 10));
/// }
/// assert!(vegas.limit() >= 10);
/// // Latency five times the no-load latency: the limit backs off, once per round trip.
/// for _ in 0..20 {
///     tokio::time::advance(ms(50)).await;
///     vegas.on_sample(Sample::success(ms(50), 10));
/// }
/// assert!(vegas.limit() < 10);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Vegas {
    config: VegasConfig,
    state: Mutex<State>,
    /// `state.limit` rounded down, readable without the lock.
    published: AtomicUsize,
}

#[derive(Debug)]
struct State {
    limit: f64,
    max_limit: usize,
    average: f64,
    samples: u32,
    no_load: Option<f64>,
    /// When the limit was last cut: samples admitted before it do not cut it again.
    last_cut: Option<Instant>,
}

impl Vegas {
    /// A limiter with this configuration, or the error naming the bad field.
    pub fn new(config: VegasConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Vegas {
            published: AtomicUsize::new(config.initial_limit),
            state: Mutex::new(State {
                limit: config.initial_limit as f64,
                max_limit: config.max_limit,
                average: 0.0,
                samples: 0,
                no_load: None,
                last_cut: None,
            }),
            config,
        })
    }

    /// The configuration this limiter was built with (its `max_limit` as built: see
    /// [`Vegas::max_limit`]).
    pub fn config(&self) -> &VegasConfig {
        &self.config
    }

    /// The estimated no-load latency (`None` before a window of samples).
    pub fn no_load_latency(&self) -> Option<Duration> {
        self.state.lock().no_load.map(Duration::from_secs_f64)
    }

    /// The recent latency average (zero before the first sample).
    pub fn latency(&self) -> Duration {
        Duration::from_secs_f64(self.state.lock().average)
    }

    /// The highest limit allowed now.
    pub fn max_limit(&self) -> usize {
        self.state.lock().max_limit
    }

    /// Changes the highest limit (a node's pool was resized). A limit at the old maximum moves
    /// to the new one; a lower limit stays where the measurements put it, within the new
    /// bounds. Fails if `max_limit` is below `min_limit`.
    pub fn set_max_limit(&self, max_limit: usize) -> Result<(), ConfigError> {
        let min = self.config.min_limit;
        if max_limit < min {
            return Err(ConfigError::new(
                "max_limit",
                format!("must be at least min_limit ({min}), got {max_limit}"),
            ));
        }
        let mut state = self.state.lock();
        if state.limit >= state.max_limit as f64 || state.limit > max_limit as f64 {
            state.limit = max_limit as f64;
        }
        state.max_limit = max_limit;
        self.published
            .store(state.limit as usize, Ordering::Relaxed);
        Ok(())
    }
}

impl Limiter for Vegas {
    fn limit(&self) -> usize {
        self.published.load(Ordering::Relaxed)
    }

    fn on_sample(&self, sample: Sample) {
        let config = &self.config;
        let mut state = self.state.lock();
        let limit = state.limit;
        let ratio = if sample.dropped {
            2.0 * config.tolerance
        } else {
            let rtt = sample.latency.as_secs_f64();
            // A plain average over the first window, then an EWMA.
            state.samples = state.samples.saturating_add(1);
            let weight = if state.samples <= config.window {
                1.0 / f64::from(state.samples)
            } else {
                2.0 / (f64::from(config.window) + 1.0)
            };
            state.average += (rtt - state.average) * weight;
            if state.samples < config.window {
                return;
            }
            let average = state.average;
            let no_load = match state.no_load {
                Some(no_load) if average < no_load => average,
                Some(no_load) => no_load + (average - no_load) * config.drift,
                None => average,
            };
            state.no_load = Some(no_load);
            if no_load > 0.0 {
                average / no_load
            } else {
                1.0
            }
        };
        let next = if ratio > config.tolerance {
            // One cut per round trip, as TCP: a request admitted before the last cut ran under
            // the old limit and says nothing about the new one.
            let now = Instant::now();
            let admitted = now.checked_sub(sample.latency).unwrap_or(now);
            if state.last_cut.is_some_and(|cut| admitted < cut) {
                return;
            }
            state.last_cut = Some(now);
            limit * (config.tolerance / ratio).max(0.5)
        } else {
            limit + config.increase / limit.max(1.0)
        };
        let next = next.clamp(config.min_limit as f64, state.max_limit as f64);
        state.limit = next;
        self.published.store(next as usize, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_over_tolerance_and_returns_within_it() {
        let vegas = Vegas::new(VegasConfig {
            initial_limit: 16,
            max_limit: 16,
            ..VegasConfig::default()
        })
        .unwrap();
        for _ in 0..40 {
            vegas.on_sample(Sample::success(ms(10), 1));
        }
        assert_eq!(vegas.limit(), 16);
        assert_eq!(vegas.no_load_latency(), Some(ms(10)));
        for _ in 0..200 {
            // Each slow request was admitted after the previous one ended: every one may cut.
            tokio::time::advance(ms(40)).await;
            vegas.on_sample(Sample::success(ms(40), 8));
        }
        let low = vegas.limit();
        assert!(low < 8, "{low}");
        // Back to no-load latency: grows again, even app limited, up to the maximum.
        for _ in 0..5000 {
            vegas.on_sample(Sample::success(ms(10), 1));
        }
        assert_eq!(vegas.limit(), 16);
        // A drop counts as twice the tolerance.
        tokio::time::advance(ms(10)).await;
        vegas.on_sample(Sample::dropped(ms(1), 16));
        assert!(vegas.state.lock().limit < 16.0);
    }

    #[test]
    fn limits_of_equal_clients_converge_to_equal_shares() {
        // Two clients of one backend whose latency grows with their total limit.
        let config = |initial| VegasConfig {
            initial_limit: initial,
            max_limit: 100,
            ..VegasConfig::default()
        };
        let (a, b) = (
            Vegas::new(config(2)).unwrap(),
            Vegas::new(config(40)).unwrap(),
        );
        for _ in 0..20_000 {
            let total = (a.state.lock().limit + b.state.lock().limit) as u64;
            let latency = ms(10 + total);
            a.on_sample(Sample::success(latency, a.limit()));
            b.on_sample(Sample::success(latency, b.limit()));
        }
        let (a, b) = (a.state.lock().limit, b.state.lock().limit);
        assert!((a - b).abs() <= 0.2 * a.max(b), "{a} vs {b}");
    }

    #[test]
    fn bad_configurations_are_typed_errors() {
        let bad = |f: fn(&mut VegasConfig)| {
            let mut config = VegasConfig::default();
            f(&mut config);
            Vegas::new(config).unwrap_err().field
        };
        assert_eq!(bad(|c| c.window = 0), "window");
        assert_eq!(bad(|c| c.tolerance = 1.0), "tolerance");
        assert_eq!(bad(|c| c.increase = 0.0), "increase");
        assert_eq!(bad(|c| c.drift = 1.0), "drift");
        assert_eq!(bad(|c| c.min_limit = 0), "min_limit");
        let vegas = Vegas::new(VegasConfig::default()).unwrap();
        assert_eq!(vegas.set_max_limit(0).unwrap_err().field, "max_limit");
        vegas.set_max_limit(50).unwrap();
        assert_eq!((vegas.limit(), vegas.max_limit()), (20, 50));
    }
}
