//! Per-node load: what a balancer looks at when it chooses where a query goes.
//!
//! Each backend (the primary and every replica) has one [`NodeLoad`]. The pool and the cluster
//! write to it (a query starts, a query ends, a probe measured replication lag) and the balancer
//! reads it on every pick, from many tasks at once. Reads are therefore plain atomic loads: no
//! lock is taken to compute a node's [`cost`](NodeLoad::cost).
//!
//! # Peak EWMA
//!
//! The latency estimate is a *peak*-sensitive exponentially weighted moving average
//! ([`PeakEwma`]), the load metric of Finagle, Linkerd and tower's `load::peak_ewma`. A plain
//! average reacts slowly when a node gets slow, which is exactly when a balancer must react fast.
//! So a sample larger than the estimate replaces it at once, and smaller samples only pull it
//! down gradually, with a time constant (the *decay*, 10 s by default). Multiplied by the number
//! of queries already in flight plus one, it estimates how long a new query would wait for its
//! answer on that node: that product is the [`cost`](NodeLoad::cost) that
//! [`P2c`](crate::balance::P2c) compares.
//!
//! Between samples the estimate also decays toward zero, as in Finagle and tower. This is
//! deliberate optimism: a node that lost every comparison because of one slow answer receives no
//! traffic and hence no new samples, and without this decay it would be shunned forever. As its
//! estimate fades it is tried again, and the next real sample puts it back where it belongs.
//!
//! # Everything else a router needs
//!
//! Besides latency, a [`NodeLoad`] carries the pool's view (capacity), a recent error
//! rate, and what a replication probe learnt (lag and replayed position), which
//! [`NodeLoad::can_serve_read`] turns into an eligibility test for reads that demand freshness.
//!
//! ```
//! use std::sync::Arc;
//! use seawall::load::NodeLoad;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let node = Arc::new(NodeLoad::new());
//! let call = node.start(); // one more query in flight
//! assert_eq!(node.in_flight(), 1);
//! // ... run the query ...
//! call.finish(true); // records its latency and outcome
//! assert_eq!(node.in_flight(), 0);
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::ConfigError;

/// Tuning shared by [`PeakEwma`] and [`NodeLoad`].
///
/// ```
/// use std::time::Duration;
/// use seawall::load::{LoadConfig, NodeLoad};
///
/// let config = LoadConfig::default()
///     .with_decay(Duration::from_secs(5))
///     .with_default_rtt(Duration::from_millis(5));
/// let node = NodeLoad::with_config(config).unwrap();
/// assert_eq!(node.config().decay(), Duration::from_secs(5));
///
/// // A zero decay would divide by zero: it is refused, not a panic.
/// assert!(NodeLoad::with_config(LoadConfig::default().with_decay(Duration::ZERO)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadConfig {
    decay: Duration,
    default_rtt: Duration,
    penalty: Duration,
}

impl LoadConfig {
    /// Defaults: 10 s decay (as tower and Linkerd), 30 ms default RTT (as Linkerd), 1 s penalty.
    pub const fn new() -> Self {
        LoadConfig {
            decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(30),
            penalty: Duration::from_secs(1),
        }
    }

    /// Time constant of the exponential decay: the weight of an old sample falls by a factor
    /// *e* every `decay`. Longer means steadier but slower to notice a node getting faster.
    /// The recent error rate uses the same time constant. Must be greater than zero.
    pub const fn with_decay(mut self, decay: Duration) -> Self {
        self.decay = decay;
        self
    }

    /// Latency assumed for a node that has answered nothing yet. It is a guess, not a
    /// measurement: the first sample replaces it instead of being averaged with it.
    pub const fn with_default_rtt(mut self, default_rtt: Duration) -> Self {
        self.default_rtt = default_rtt;
        self
    }

    /// Latency charged for a failed call: a failure is recorded as
    /// `max(observed latency, penalty)`. Errors often come back fast (a refused connection, a
    /// replica that cancels queries), and without a penalty a failing node would look like the
    /// fastest one and attract even more traffic. Being a peak, one failure makes the node lose
    /// nearly every comparison for a while; the decay then lets it be retried.
    pub const fn with_penalty(mut self, penalty: Duration) -> Self {
        self.penalty = penalty;
        self
    }

    /// The decay time constant.
    pub const fn decay(&self) -> Duration {
        self.decay
    }

    /// The latency assumed before the first sample.
    pub const fn default_rtt(&self) -> Duration {
        self.default_rtt
    }

    /// The minimum latency recorded for a failed call.
    pub const fn penalty(&self) -> Duration {
        self.penalty
    }

    /// Checks that the configuration can work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.decay.is_zero() {
            return Err(ConfigError::new("decay", "must be greater than zero"));
        }
        Ok(())
    }
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig::new()
    }
}

/// Peak-sensitive EWMA of latency, readable without a lock.
///
/// On a sample `s` at time `t`, with estimate `e` last updated at `t0` and decay `τ`:
/// - the first sample ever replaces the default RTT;
/// - if `s > e`, the estimate jumps to `s` (peak sensitivity);
/// - otherwise it moves toward `s`: `e' = e·w + s·(1 − w)` with `w = exp(−(t − t0)/τ)`, so the
///   weight of history depends on time, not on how many samples arrived.
///
/// Read at time `t`, the estimate is `e·exp(−(t − t0)/τ)`: it fades toward zero while no sample
/// arrives (see the [module docs](self) for why). Readers compute this from two atomics without
/// locking; writers are serialised by a small mutex.
///
/// ```
/// use std::time::Duration;
/// use seawall::load::{LoadConfig, PeakEwma};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// tokio::time::pause();
/// let ewma = PeakEwma::new(LoadConfig::default()).unwrap();
/// assert_eq!(ewma.estimate(), Duration::from_millis(30)); // the default RTT
/// ewma.observe(Duration::from_millis(80));
/// assert_eq!(ewma.estimate(), Duration::from_millis(80));
/// ewma.observe(Duration::from_millis(200)); // a peak is taken at once
/// assert_eq!(ewma.estimate(), Duration::from_millis(200));
/// # }
/// ```
pub struct PeakEwma {
    decay_ns: f64,
    /// Origin of the `updated_ns` timestamps.
    epoch: Instant,
    /// The estimate in nanoseconds, as `f64` bits, valid at `updated_ns`.
    estimate: AtomicU64,
    updated_ns: AtomicU64,
    /// Serialises writers; `true` once a real sample has replaced the default RTT.
    sampled: Mutex<bool>,
}

impl PeakEwma {
    /// An estimator starting at `config`'s default RTT, now.
    pub fn new(config: LoadConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(PeakEwma::validated(config))
    }

    fn validated(config: LoadConfig) -> Self {
        PeakEwma {
            decay_ns: nanos(config.decay),
            epoch: Instant::now(),
            estimate: AtomicU64::new(nanos(config.default_rtt).to_bits()),
            updated_ns: AtomicU64::new(0),
            sampled: Mutex::new(false),
        }
    }

    /// Whether a real sample has replaced the default RTT.
    pub(crate) fn is_sampled(&self) -> bool {
        *self.sampled.lock()
    }

    /// Forgets every sample: back to `default_rtt` as of now.
    pub(crate) fn reset(&self, default_rtt: Duration) {
        let mut sampled = self.sampled.lock();
        *sampled = false;
        self.estimate.store(nanos(default_rtt).to_bits(), Relaxed);
        self.updated_ns
            .store(self.since_epoch(Instant::now()), Relaxed);
    }

    /// Records a latency sample taken now.
    pub fn observe(&self, latency: Duration) {
        self.observe_at(latency, Instant::now());
    }

    /// Records a latency sample taken at `now`.
    pub fn observe_at(&self, latency: Duration, now: Instant) {
        let mut sampled = self.sampled.lock();
        let sample = nanos(latency);
        let updated = self.updated_ns.load(Relaxed);
        // A sample timed before the last one must not move the timestamp back.
        let at = self.since_epoch(now).max(updated);
        let estimate = f64::from_bits(self.estimate.load(Relaxed));
        let next = if !*sampled || sample > estimate {
            sample
        } else {
            let w = self.weight(at - updated);
            estimate * w + sample * (1.0 - w)
        };
        *sampled = true;
        self.estimate.store(next.to_bits(), Relaxed);
        self.updated_ns.store(at, Relaxed);
    }

    /// When the estimate last took a sample (its creation, before the first).
    #[inline]
    pub fn updated_at(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.updated_ns.load(Relaxed))
    }

    /// The estimate now.
    pub fn estimate(&self) -> Duration {
        self.estimate_at(Instant::now())
    }

    /// The estimate as of `now`.
    pub fn estimate_at(&self, now: Instant) -> Duration {
        Duration::from_nanos(self.estimate_nanos_at(now) as u64)
    }

    /// The estimate as of `now`, in nanoseconds: the hot path of [`NodeLoad::cost_at`].
    ///
    /// A writer may store the estimate and its timestamp between our two loads; the mix then
    /// decays one sample by a slightly wrong amount, once, which a balancer does not notice.
    #[inline]
    pub fn estimate_nanos_at(&self, now: Instant) -> f64 {
        let estimate = f64::from_bits(self.estimate.load(Relaxed));
        let elapsed = self
            .since_epoch(now)
            .saturating_sub(self.updated_ns.load(Relaxed));
        estimate * self.weight(elapsed)
    }

    /// Weight left to history after `elapsed_ns`: `exp(−elapsed/τ)`.
    #[inline]
    fn weight(&self, elapsed_ns: u64) -> f64 {
        if elapsed_ns == 0 {
            return 1.0;
        }
        (-(elapsed_ns as f64) / self.decay_ns).exp()
    }

    #[inline]
    fn since_epoch(&self, now: Instant) -> u64 {
        // u64 nanoseconds last 584 years; `now` before the epoch (a stale reading) counts as 0.
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}

impl fmt::Debug for PeakEwma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeakEwma")
            .field("estimate", &self.estimate())
            .field("decay", &Duration::from_nanos(self.decay_ns as u64))
            .finish()
    }
}

/// `lag` value meaning "not measured".
const LAG_UNKNOWN: u64 = u64::MAX;

/// The load of one backend node, written by the pool and probes, read by balancers.
///
/// All getters are lock-free loads; [`cost`](NodeLoad::cost) is what
/// [`P2c`](crate::balance::P2c) compares. Share it as `Arc<NodeLoad>`: calls are tracked with an
/// [`InFlight`] guard that keeps the node alive.
pub struct NodeLoad {
    config: LoadConfig,
    latency: PeakEwma,
    in_flight: AtomicUsize,
    /// Statements answered, for the health monitor.
    served: AtomicU64,
    /// 0 when unknown.
    capacity: AtomicUsize,
    /// Recent error rate in `[0, 1]`, as `f64` bits, published after each call.
    error_rate: AtomicU64,
    outcomes: Mutex<Outcomes>,
    /// Nanoseconds, or [`LAG_UNKNOWN`].
    lag: AtomicU64,
    position: AtomicU64,
    weight: AtomicU32,
}

/// Exponentially decayed counts of recent calls, for the error rate.
struct Outcomes {
    errors: f64,
    calls: f64,
    updated_ns: u64,
    /// Of the calls finished with [`InFlight::finish_split_at`]: time held and time waited
    /// (nanoseconds), and how many.
    held_ns: u64,
    waited_ns: u64,
    split: u64,
}

impl NodeLoad {
    /// A node with the default [`LoadConfig`].
    pub fn new() -> Self {
        NodeLoad::validated(LoadConfig::new())
    }

    /// A node with its own tuning; fails if the configuration cannot work.
    pub fn with_config(config: LoadConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(NodeLoad::validated(config))
    }

    fn validated(config: LoadConfig) -> Self {
        NodeLoad {
            config,
            latency: PeakEwma::validated(config),
            in_flight: AtomicUsize::new(0),
            capacity: AtomicUsize::new(0),
            error_rate: AtomicU64::new(0f64.to_bits()),
            outcomes: Mutex::new(Outcomes {
                errors: 0.0,
                calls: 0.0,
                updated_ns: 0,
                held_ns: 0,
                waited_ns: 0,
                split: 0,
            }),
            served: AtomicU64::new(0),
            lag: AtomicU64::new(LAG_UNKNOWN),
            position: AtomicU64::new(0),
            weight: AtomicU32::new(1),
        }
    }

    /// The node's tuning.
    pub fn config(&self) -> &LoadConfig {
        &self.config
    }

    /// Forgets the latency history, back to `default_rtt` as for a fresh node: for a node the
    /// health monitor has just readmitted, whose estimate still carries the failure penalties of
    /// its outage and would keep the balancer away from it long after it recovered.
    pub fn reset_latency(&self) {
        self.latency.reset(self.config.default_rtt);
        let mut outcomes = self.outcomes.lock();
        outcomes.errors = 0.0;
        outcomes.calls = 0.0;
        self.error_rate.store(0f64.to_bits(), Relaxed);
    }

    /// Whether the latency estimate rests on at least one real sample (not the default RTT).
    pub fn is_sampled(&self) -> bool {
        self.latency.is_sampled()
    }

    /// Starts tracking a call: one more in flight until the guard is finished or dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.start_at(Instant::now())
    }

    /// [`start`](NodeLoad::start) with the caller's reading of the clock.
    pub fn start_at(self: &Arc<Self>, now: Instant) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight {
            node: Arc::clone(self),
            started: now,
        }
    }

    /// Records a completed call measured by the caller (an [`InFlight`] guard does this for
    /// you). A failure is recorded as `max(latency, penalty)`.
    ///
    /// Report as failures what says something about the node (connection errors, timeouts,
    /// a replica cancelling queries), not application errors such as a constraint violation.
    pub fn record(&self, latency: Duration, ok: bool) {
        self.record_at(latency, ok, Instant::now());
    }

    /// [`record`](NodeLoad::record) as of `now`.
    pub fn record_at(&self, latency: Duration, ok: bool, now: Instant) {
        self.record_split_at(latency, ok, now, None);
    }

    /// `record_at`, also adding the call's split into time held and time waited to the
    /// totals (under the lock the outcome takes anyway: no extra atomic on the query path).
    fn record_split_at(
        &self,
        latency: Duration,
        ok: bool,
        now: Instant,
        split: Option<(Duration, Duration)>,
    ) {
        let latency = if ok {
            latency
        } else {
            latency.max(self.config.penalty)
        };
        self.latency.observe_at(latency, now);

        let at = self.latency.since_epoch(now);
        let mut outcomes = self.outcomes.lock();
        let w = self.latency.weight(at.saturating_sub(outcomes.updated_ns));
        outcomes.errors = outcomes.errors * w + if ok { 0.0 } else { 1.0 };
        outcomes.calls = outcomes.calls * w + 1.0;
        outcomes.updated_ns = at;
        if let Some((held, waited)) = split {
            let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            outcomes.held_ns = outcomes.held_ns.saturating_add(nanos(held));
            outcomes.waited_ns = outcomes.waited_ns.saturating_add(nanos(waited));
            outcomes.split += 1;
        }
        let rate = outcomes.errors / outcomes.calls;
        self.error_rate.store(rate.to_bits(), Relaxed);
    }

    /// Expected time for a new call to complete, in nanoseconds: the peak-EWMA latency times
    /// (in-flight + 1). Lower is better; the default cost of [`P2c`](crate::balance::P2c).
    pub fn cost(&self) -> f64 {
        self.cost_at(Instant::now())
    }

    /// [`cost`](NodeLoad::cost) as of `now`; a balancer reads the clock once per pick.
    #[inline]
    pub fn cost_at(&self, now: Instant) -> f64 {
        let pending = self.in_flight.load(Relaxed) as f64 + 1.0;
        self.latency.estimate_nanos_at(now) * pending
    }

    /// When the latency estimate last took a sample (the node's creation, before the first).
    #[inline]
    pub fn latency_updated_at(&self) -> Instant {
        self.latency.updated_at()
    }

    /// The peak-EWMA latency estimate now.
    pub fn latency(&self) -> Duration {
        self.latency.estimate()
    }

    /// Of the calls finished with [`InFlight::finish_split_at`]: the time they were held (the
    /// work's own), the time they waited before it, both summed, and how many.
    pub fn split_totals(&self) -> (Duration, Duration, u64) {
        let o = self.outcomes.lock();
        (
            Duration::from_nanos(o.held_ns),
            Duration::from_nanos(o.waited_ns),
            o.split,
        )
    }

    /// Statements the node answered (with rows or with an error of the caller's own) since it
    /// was created, as counted by [`Cluster::execute`](crate::Cluster::execute) and
    /// [`ClusterConn::execute`](crate::ClusterConn::execute): a health monitor whose probe
    /// failed asks whether the node served meanwhile (busy, not down).
    pub fn served(&self) -> u64 {
        self.served.load(Relaxed)
    }

    /// Counts one statement the node answered.
    pub(crate) fn answered(&self) {
        self.served.fetch_add(1, Relaxed);
    }

    /// Calls started and not yet finished or dropped.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    /// How many calls the node can serve at once (typically the pool's maximum size), or `None`
    /// if not set.
    pub fn capacity(&self) -> Option<usize> {
        match self.capacity.load(Relaxed) {
            0 => None,
            c => Some(c),
        }
    }

    /// Sets the capacity (done by the pool); 0 means unknown.
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity, Relaxed);
    }

    /// In-flight calls over capacity (1.0 = full), or `None` when the capacity is unknown.
    pub fn utilisation(&self) -> Option<f64> {
        self.capacity()
            .map(|c| self.in_flight.load(Relaxed) as f64 / c as f64)
    }

    /// Share of recent calls that failed, in `[0, 1]`: each call weighs `exp(−age/decay)`, so a
    /// burst of errors shows at once and fades as successes come in. 0 before any call.
    pub fn error_rate(&self) -> f64 {
        f64::from_bits(self.error_rate.load(Relaxed))
    }

    /// Replication lag as last measured by a probe, or `None` if never measured (or reset).
    /// For the primary, set it to zero.
    pub fn replication_lag(&self) -> Option<Duration> {
        match self.lag.load(Relaxed) {
            LAG_UNKNOWN => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Sets the replication lag (done by a probe); `None` when the probe could not tell.
    pub fn set_replication_lag(&self, lag: Option<Duration>) {
        // Saturate below the sentinel: a lag of 584 years is as bad as it gets.
        let ns = lag.map_or(LAG_UNKNOWN, |l| {
            u64::try_from(l.as_nanos()).map_or(LAG_UNKNOWN - 1, |n| n.min(LAG_UNKNOWN - 1))
        });
        self.lag.store(ns, Relaxed);
    }

    /// Position up to which the node has replayed the primary's log (for PostgreSQL, the
    /// replay LSN), as last set by a probe; 0 if never set.
    pub fn replayed_position(&self) -> u64 {
        self.position.load(Relaxed)
    }

    /// Sets the replayed position (done by a probe). Stored as given, not maxed: after a
    /// failover or a rebuild the position may legitimately go back.
    pub fn set_replayed_position(&self, position: u64) {
        self.position.store(position, Relaxed);
    }

    /// Relative weight for [`WeightedRandom`](crate::balance::WeightedRandom); 1 by default.
    pub fn weight(&self) -> u32 {
        self.weight.load(Relaxed)
    }

    /// Sets the weight; 0 takes the node out of weighted picks (unless all weights are 0).
    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Relaxed);
    }

    /// Whether this node may serve a read that tolerates at most `max_lag` of replication lag
    /// and must see the log at least up to `min_position` (read-your-writes: the position of
    /// the caller's last commit).
    ///
    /// With `max_lag` set, a node whose lag is *unknown* is not eligible: a freshness bound
    /// cannot be vouched for by a node nobody measured. The router can fall back to the
    /// primary, whose lag should be set to zero. A node is eligible at exactly `max_lag` and
    /// when it has replayed exactly `min_position`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall::load::NodeLoad;
    ///
    /// let replica = NodeLoad::new();
    /// assert!(replica.can_serve_read(None, None));
    /// assert!(!replica.can_serve_read(Some(Duration::from_secs(1)), None)); // lag unknown
    /// replica.set_replication_lag(Some(Duration::from_millis(200)));
    /// replica.set_replayed_position(1_000);
    /// assert!(replica.can_serve_read(Some(Duration::from_secs(1)), Some(1_000)));
    /// assert!(!replica.can_serve_read(Some(Duration::from_millis(100)), None));
    /// assert!(!replica.can_serve_read(None, Some(1_001)));
    /// ```
    pub fn can_serve_read(&self, max_lag: Option<Duration>, min_position: Option<u64>) -> bool {
        let fresh_enough = match (max_lag, self.replication_lag()) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(max), Some(lag)) => lag <= max,
        };
        let caught_up = match min_position {
            None => true,
            Some(p) => self.replayed_position() >= p,
        };
        fresh_enough && caught_up
    }
}

impl Default for NodeLoad {
    fn default() -> Self {
        NodeLoad::new()
    }
}

impl fmt::Debug for NodeLoad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeLoad")
            .field("latency", &self.latency())
            .field("in_flight", &self.in_flight())
            .field("served", &self.served())
            .field("capacity", &self.capacity())
            .field("error_rate", &self.error_rate())
            .field("replication_lag", &self.replication_lag())
            .field("replayed_position", &self.replayed_position())
            .field("weight", &self.weight())
            .finish()
    }
}

/// One call in flight on a node, from [`NodeLoad::start`].
///
/// [`finish`](InFlight::finish) records the call's latency and outcome. Dropping the guard
/// without finishing counts the call as cancelled: it leaves the in-flight count but records no
/// sample, since a cancelled call says nothing about how fast the node is.
#[must_use = "dropping the guard at once ends the call as cancelled"]
pub struct InFlight {
    node: Arc<NodeLoad>,
    started: Instant,
}

impl InFlight {
    /// Ends the call: records the time since [`NodeLoad::start`] and whether it succeeded.
    pub fn finish(self, ok: bool) {
        self.finish_at(ok, Instant::now());
    }

    /// [`finish`](InFlight::finish) as of `now` (the caller's reading of the clock).
    pub fn finish_at(self, ok: bool, now: Instant) {
        let latency = now.saturating_duration_since(self.started);
        self.node.record_at(latency, ok, now);
        // `Drop` decrements the in-flight count.
    }

    /// [`finish_at`](InFlight::finish_at), telling how the call's time split into `waited`
    /// (before the work could start: queues) and `held` (the work itself), for
    /// [`NodeLoad::split_totals`].
    pub fn finish_split_at(self, ok: bool, now: Instant, held: Duration, waited: Duration) {
        let latency = now.saturating_duration_since(self.started);
        self.node
            .record_split_at(latency, ok, now, Some((held, waited)));
    }

    /// The node this call runs on.
    pub fn node(&self) -> &Arc<NodeLoad> {
        &self.node
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.node.in_flight.fetch_sub(1, Relaxed);
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

fn nanos(d: Duration) -> f64 {
    d.as_nanos() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reading_as_of_before_the_last_sample_does_not_extrapolate() {
        // A balancer may hold an instant older than a sample a writer just stored.
        let before = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        let ewma = PeakEwma::new(LoadConfig::default()).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        ewma.observe(Duration::from_millis(20));
        assert_eq!(ewma.estimate_at(before), Duration::from_millis(20));
        assert_eq!(ewma.since_epoch(before), 0);

        // Nor does a late sample timed at that instant move the timestamp back.
        let sampled = ewma.updated_at();
        ewma.observe_at(Duration::from_millis(5), before);
        assert_eq!(ewma.updated_at(), sampled);
        assert_eq!(ewma.estimate_at(sampled), Duration::from_millis(20)); // weight 1: no change
    }

    #[test]
    fn lag_beyond_u64_nanos_saturates_below_unknown() {
        let node = NodeLoad::new();
        node.set_replication_lag(Some(Duration::MAX));
        assert_eq!(
            node.replication_lag(),
            Some(Duration::from_nanos(LAG_UNKNOWN - 1))
        );
        node.set_replication_lag(None);
        assert_eq!(node.replication_lag(), None);
    }
}
