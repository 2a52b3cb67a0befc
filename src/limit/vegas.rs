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
    /// Samples in the latency and in-flight averages. Default 30.
    pub window: u32,
    /// Requests this client aims to keep queued at the backend (TCP Vegas's `alpha`): the limit
    /// heads for `queue × latency / (latency - no_load)`, the limit at which `queue` of its
    /// requests are waiting behind others. Positive. Default 2.0.
    pub queue: f64,
    /// Share of the way to that target the limit moves per round (a limit's worth of samples),
    /// in `(0, 1]`. Default 0.5.
    pub smoothing: f64,
    /// Most the limit grows per round, positive. Default 1.0.
    pub increase: f64,
    /// While the client uses less than its limit, the limit heads for `headroom` times the
    /// requests in flight it actually has (their average at admission), at least 1. Default 2.0.
    pub headroom: f64,
    /// Factor applied to the limit on a drop (a failed or timed-out request), at most once per
    /// round trip, in `[0.5, 1)`. Default 0.5.
    pub backoff: f64,
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
            queue: 2.0,
            smoothing: 0.5,
            increase: 1.0,
            headroom: 2.0,
            backoff: 0.5,
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
        for (field, value) in [("queue", self.queue), ("increase", self.increase)] {
            if !(value > 0.0 && value.is_finite()) {
                return Err(ConfigError::new(
                    field,
                    format!("must be finite and positive, got {value}"),
                ));
            }
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(ConfigError::new(
                "smoothing",
                format!("must lie in (0, 1], got {}", self.smoothing),
            ));
        }
        if !(self.headroom >= 1.0 && self.headroom.is_finite()) {
            return Err(ConfigError::new(
                "headroom",
                format!("must be finite and at least 1.0, got {}", self.headroom),
            ));
        }
        if !(0.5..1.0).contains(&self.backoff) {
            return Err(ConfigError::new(
                "backoff",
                format!("must lie in [0.5, 1), got {}", self.backoff),
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
/// The limiter keeps an average of recent latency (an EWMA over `window` samples), an estimate
/// of the backend's *no-load* latency (the lowest average seen, rising only slowly, by `drift`,
/// so that a backend that became lastingly slower is eventually accepted), and an average of
/// the requests it had in flight at admission. The limit is a real number (the gate admits its
/// integer part). Per sample that was not dropped:
///
/// ```text
/// target = queue × average / (average - no_load)        (unbounded when average = no_load)
/// cap    = headroom × average in flight
/// goal   = min(target, cap, max_limit)
/// limit += min(smoothing × (goal - limit), increase) / limit
/// ```
///
/// so that per round (a limit's worth of samples) the limit moves `smoothing` of the way to its
/// goal, growing by at most `increase`. A dropped sample multiplies the limit by `backoff`, at
/// most once per round trip (a request admitted before the last cut ran under the old limit and
/// says nothing about the new one).
///
/// # Why it suits a fleet
///
/// With `rtt` the latency and `base` the no-load latency, TCP Vegas reads `limit × (1 - base /
/// rtt)` as the client's requests *queued* at the backend, beyond those it would have in flight
/// if nothing waited, and keeps that near `queue`. Solved for the limit, that is the target
/// above: a function of the backend's latency only, not of the client's own limit. Every
/// application instance of a fleet sees the same latency, so every instance aims at the *same*
/// limit, whatever it had before: shares are equal from the first round, where a limiter that
/// compares latency with a per-instance threshold lets the instance with the lowest threshold
/// back off forever while the others grow. As the backend's latency climbs the target falls
/// towards `queue`, so the fleet's total in flight settles where `instances × queue` requests
/// wait: near the backend's knee for a fleet of tens of instances. A latency-gradient limiter
/// ([`Gradient`](super::Gradient)) instead compares with a baseline that follows the latency up,
/// so under a lasting overload it stops backing off.
///
/// # The limit follows what is used
///
/// A limit nobody uses is not a measurement: after a quiet hour every instance would sit at its
/// maximum, and the first surge would land `instances × max_limit` requests on the backend at
/// once, far past its knee, before any latency could be measured. As TCP's congestion window
/// validation (RFC 7661) decays an unused window, the limit heads for `headroom` times the
/// requests actually in flight while it is not used in full, and grows from there by at most
/// `increase` per round when the load comes.
///
/// # Where this differs from TCP Vegas and Netflix's `VegasLimit`
///
/// Both keep the queue estimate between two thresholds (`alpha`, `beta`) and step the limit by
/// one (or a logarithm of it) per round when outside; here the limit moves smoothly towards the
/// limit that puts it at `queue`, so a fleet that starts far from it (an overload) gets there
/// in a few rounds rather than one request per round trip. A database's latency rises with
/// concurrency even with no queue (contention), and each instance of a fleet holds a small
/// share of the backend, so the average latency, not its minimum sample, is the signal; the
/// no-load estimate is the minimum of averages, not of single samples, which say nothing about
/// the backend's state.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), seawall::ConfigError> {
/// use std::time::Duration;
/// use seawall::limit::{Limiter, Sample, Vegas, VegasConfig};
///
/// let vegas = Vegas::new(VegasConfig { initial_limit: 10, ..VegasConfig::default() })?;
/// let ms = Duration::from_millis;
/// // Ten in flight at 10 ms: the backend keeps up, the limit stays where it is used.
/// for _ in 0..50 {
///     vegas.on_sample(Sample::success(ms(10), 10));
/// }
/// assert!(vegas.limit() >= 10);
/// // Latency five times the no-load latency: the limit heads for 2 × 50 / 40 = 2.5.
/// for _ in 0..100 {
///     vegas.on_sample(Sample::success(ms(50), 10));
/// }
/// assert!(vegas.limit() < 5);
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
    /// Average requests in flight at admission.
    used: f64,
    samples: u32,
    no_load: Option<f64>,
    /// When the limit was last cut for a drop: samples admitted before it do not cut it again.
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
                used: 0.0,
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

    /// The limit as the limiter keeps it, before rounding down for the gate.
    pub fn exact_limit(&self) -> f64 {
        self.state.lock().limit
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
        let next = if sample.dropped {
            // One cut per round trip, as TCP: a request admitted before the last cut ran under
            // the old limit and says nothing about the new one.
            let now = Instant::now();
            let admitted = now.checked_sub(sample.latency).unwrap_or(now);
            if state.last_cut.is_some_and(|cut| admitted < cut) {
                return;
            }
            state.last_cut = Some(now);
            limit * config.backoff
        } else {
            // A plain average over the first window, then an EWMA.
            state.samples = state.samples.saturating_add(1);
            let weight = if state.samples <= config.window {
                1.0 / f64::from(state.samples)
            } else {
                2.0 / (f64::from(config.window) + 1.0)
            };
            state.average += (sample.latency.as_secs_f64() - state.average) * weight;
            state.used += (sample.in_flight as f64 - state.used) * weight;
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
            let target = if average > no_load {
                config.queue * average / (average - no_load)
            } else {
                f64::INFINITY
            };
            let cap = state.used * config.headroom;
            let goal = target.min(cap).min(state.max_limit as f64);
            let step = ((goal - limit) * config.smoothing).min(config.increase);
            let next = limit + step / limit.max(1.0);
            // The approach is geometric: snap to the goal once within a hundredth of it, or a
            // limit heading for 16 would stay at 15.99..., admitting 15.
            if (goal - next).abs() < 0.01 {
                goal
            } else {
                next
            }
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
    async fn heads_for_the_queue_target_grows_back_and_follows_use() {
        let vegas = Vegas::new(VegasConfig {
            initial_limit: 16,
            max_limit: 16,
            ..VegasConfig::default()
        })
        .unwrap();
        for _ in 0..40 {
            vegas.on_sample(Sample::success(ms(10), 16));
        }
        assert_eq!(vegas.limit(), 16);
        assert_eq!(vegas.no_load_latency(), Some(ms(10)));
        // Four times the no-load latency: the target is 2 × 40 / (40 - 10) = 2.67.
        for _ in 0..200 {
            vegas.on_sample(Sample::success(ms(40), 8));
        }
        let exact = vegas.exact_limit();
        assert!((exact - 80.0 / 30.0).abs() < 0.3, "{exact}");
        // Back to no-load latency, all of the limit used: grows again, up to the maximum.
        for _ in 0..2000 {
            vegas.on_sample(Sample::success(ms(10), vegas.limit()));
        }
        assert_eq!(vegas.limit(), 16);
        // One request in flight at a time: the limit follows use down, to headroom × 1.
        for _ in 0..2000 {
            vegas.on_sample(Sample::success(ms(10), 1));
        }
        assert_eq!(vegas.limit(), 2);
        // A drop halves the limit, once per round trip.
        vegas.on_sample(Sample::success(ms(10), 2));
        let before = vegas.exact_limit();
        tokio::time::advance(ms(10)).await;
        vegas.on_sample(Sample::dropped(ms(1), 2));
        vegas.on_sample(Sample::dropped(ms(5), 2));
        assert!((vegas.exact_limit() - before / 2.0).abs() < 1e-9);
    }

    #[test]
    fn limits_of_equal_clients_converge_to_equal_shares() {
        // Two clients of one backend whose latency grows with their total in flight.
        let config = |initial| VegasConfig {
            initial_limit: initial,
            max_limit: 100,
            ..VegasConfig::default()
        };
        let (a, b) = (
            Vegas::new(config(2)).unwrap(),
            Vegas::new(config(40)).unwrap(),
        );
        for _ in 0..30 {
            a.on_sample(Sample::success(ms(10), 1));
            b.on_sample(Sample::success(ms(10), 1));
        }
        for _ in 0..5_000 {
            let total = (a.limit() + b.limit()) as u64;
            let latency = ms(10 + 2 * total);
            a.on_sample(Sample::success(latency, a.limit()));
            b.on_sample(Sample::success(latency, b.limit()));
        }
        let (a, b) = (a.exact_limit(), b.exact_limit());
        assert!((a - b).abs() <= 0.1 * a.max(b), "{a} vs {b}");
    }

    #[test]
    fn bad_configurations_are_typed_errors() {
        let bad = |f: fn(&mut VegasConfig)| {
            let mut config = VegasConfig::default();
            f(&mut config);
            Vegas::new(config).unwrap_err().field
        };
        assert_eq!(bad(|c| c.window = 0), "window");
        assert_eq!(bad(|c| c.queue = 0.0), "queue");
        assert_eq!(bad(|c| c.queue = f64::INFINITY), "queue");
        assert_eq!(bad(|c| c.increase = f64::NAN), "increase");
        assert_eq!(bad(|c| c.smoothing = 0.0), "smoothing");
        assert_eq!(bad(|c| c.headroom = 0.5), "headroom");
        assert_eq!(bad(|c| c.backoff = 1.0), "backoff");
        assert_eq!(bad(|c| c.drift = 1.0), "drift");
        assert_eq!(bad(|c| c.min_limit = 0), "min_limit");
        let vegas = Vegas::new(VegasConfig::default()).unwrap();
        assert_eq!(vegas.set_max_limit(0).unwrap_err().field, "max_limit");
        vegas.set_max_limit(50).unwrap();
        assert_eq!((vegas.limit(), vegas.max_limit()), (20, 50));
    }
}
