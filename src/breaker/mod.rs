//! A circuit breaker per node: stop sending work to a backend that is failing or stalling, give
//! it room to recover, and probe it with a few trial calls before trusting it again.
//!
//! Without a breaker, a replica that stops answering keeps receiving its share of queries; each
//! one waits out a timeout while holding a connection and a caller, and the backlog spreads to
//! the healthy nodes. A breaker turns that slow failure into a fast, local "not now" that the
//! cluster can route around.
//!
//! # States
//!
//! ```text
//!            failure or slow-call rate ≥ threshold
//!   Closed ─────────────────────────────────────────▶ Open
//!     ▲       (once the window holds minimum_calls)    │ ▲
//!     │                                                 │ │ a trial verdict is bad
//!     │ all trials in, rates under thresholds           │ │
//!     │                                    interval up ▼ │
//!     └───────────────────────────────────────────── HalfOpen
//! ```
//!
//! * **Closed**: every call is admitted (a single atomic load) and its outcome lands in a
//!   [sliding window](SlidingWindow), either the last N calls or the last N seconds in one-second
//!   buckets. Once the window holds [`minimum_calls`](BreakerConfigBuilder::minimum_calls), the
//!   breaker opens when the failure rate or the slow-call rate reaches its threshold.
//! * **Open**: every call is rejected with [`BreakerOpen`], which says when the next trial will
//!   be admitted. The open interval grows with each trip in a row (exponentially, capped) and is
//!   shortened by a random jitter so that breakers tripped by the same outage do not all probe at
//!   once; with a [seed](BreakerConfigBuilder::seed) the jitter is reproducible.
//! * **HalfOpen**: once the interval has passed, at most
//!   [`permitted_calls_in_half_open`](BreakerConfigBuilder::permitted_calls_in_half_open) trial
//!   calls are admitted. When all of them are in and both rates are under their thresholds, the
//!   breaker closes, and the growth of the open interval starts over. It re-opens as soon as
//!   the failed (or slow) trials alone reach a threshold, since the others cannot change that.
//!
//! # Outcomes
//!
//! Each admitted call yields a [`CallGuard`] that takes one [`Outcome`]:
//!
//! * [`Outcome::Success`]: the node answered (slow answers count towards the slow-call rate).
//! * [`Outcome::Failure`]: the node did not: connection refused or reset, transport error,
//!   timeout.
//! * [`Outcome::Ignored`]: the node answered with an error that is the caller's fault (syntax
//!   error, constraint violation). It says nothing about the node's health and is not counted at
//!   all; a half-open trial slot it held is given back.
//!
//! A guard dropped without an outcome is a cancelled call (the caller's future was dropped, for
//! example by a `select!` or a client timeout of its own). It is treated like `Ignored`: it does
//! not count as a failure and gives its trial slot back, so cancelled trials cannot wedge a
//! half-open breaker.
//!
//! An outcome that arrives after the breaker changed state (a call admitted while closed that
//! ends after the breaker opened) is dropped: it belongs to a period that has been judged already.
//!
//! # Observability
//!
//! Each state change is a `tracing` event (`warn` when opening, `info` when half-opening or
//! closing) carrying the node name, and is counted by the `metrics` counter
//! `seawall_breaker_transitions_total{node, to}`. The gauge `seawall_breaker_state{node}` holds
//! 0 (closed), 1 (open) or 2 (half-open), and `seawall_breaker_rejected_total{node, state}`
//! counts rejected calls.
//!
//! # Compared with resilience4j
//!
//! The model (closed / open / half-open, failure and slow-call rates, count or time window,
//! minimum number of calls, permitted calls in half-open, "at or above the threshold" opens) is
//! resilience4j's `CircuitBreaker`. seawall differs where a database client needs it to:
//!
//! * **Open interval.** resilience4j waits a fixed `waitDurationInOpenState` unless given a
//!   `waitIntervalFunctionInOpenState`. seawall grows the interval by default (`open_interval` ×
//!   `multiplier`^(trips in row − 1), capped at `max_open_interval`; like resilience4j's attempt
//!   count, the growth starts over after a close) and always applies jitter, which only ever
//!   shortens the interval, so the cap is a hard bound.
//! * **What counts as failure.** resilience4j records every exception as a failure unless its
//!   record/ignore predicates say otherwise. seawall has no default: the driver classifies every
//!   call, and errors that are the caller's fault are [`Outcome::Ignored`], so a burst of bad SQL
//!   cannot cut off a healthy node. Ignored calls give back their half-open permission in both.
//! * **Cancelled calls.** resilience4j's core API has no notion of an abandoned call; whoever
//!   decorates the call must call `releasePermission`. In seawall, dropping the guard is the
//!   cancellation: not counted, trial slot released, nothing to forget.
//! * **Half-open verdict.** resilience4j judges once all permitted calls have completed. seawall
//!   re-opens early, as soon as the bad trials alone settle the verdict, sparing a still-sick
//!   node the remaining trials; closing still waits for every trial.
//! * **Late outcomes.** resilience4j records an outcome into whatever state the breaker is in
//!   when it arrives, so a call admitted while closed can pass for a half-open trial. seawall
//!   drops outcomes of calls admitted in an earlier state.
//! * **Configuration.** For a count window, a `minimum_calls` larger than the window is an error
//!   (resilience4j silently lowers it to the window size). There are no disabled, forced-open or
//!   metrics-only states and no `maxWaitDurationInHalfOpenState`: a trial that never ends must
//!   end in a timeout (a failure) or a drop (a cancellation).
//!
//! Like resilience4j without `automaticTransitionFromOpenToHalfOpenEnabled`, the move from open
//! to half-open is lazy: no timer task, the first [`try_call`](CircuitBreaker::try_call) (or
//! [`state`](CircuitBreaker::state), [`snapshot`](CircuitBreaker::snapshot)) after the interval
//! makes it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use seawall::breaker::{BreakerConfig, CircuitBreaker, Outcome};
//!
//! let breaker = CircuitBreaker::new("replica-1", BreakerConfig::default());
//! match breaker.try_call() {
//!     Ok(guard) => {
//!         // ... run the query, classify how it ended ...
//!         guard.record(Outcome::Success, Duration::from_millis(3));
//!     }
//!     Err(open) => println!("skipping: {open}"),
//! }
//! ```

mod config;
mod window;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

pub use config::{BreakerConfig, BreakerConfigBuilder, SlidingWindow};
use window::{percent, Call, Tally, Window};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow; outcomes are judged over the sliding window.
    Closed,
    /// Calls are rejected until the open interval has passed.
    Open,
    /// A limited number of trial calls decide whether to close or re-open.
    HalfOpen,
}

impl BreakerState {
    /// The value of the `seawall_breaker_state` gauge: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> f64 {
        self.code() as f64
    }

    /// A stable lower-case name, as used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn code(self) -> u64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a call ended, as far as the node's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The node answered.
    Success,
    /// The node failed: connection or transport error, timeout.
    Failure,
    /// The call says nothing about the node (an error that is the caller's fault, such as a
    /// syntax error or a constraint violation): not counted.
    Ignored,
}

/// A call refused because the breaker is open, or half-open with every trial slot taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerOpen {
    /// The node whose breaker refused.
    pub node: Arc<str>,
    /// [`BreakerState::Open`] or [`BreakerState::HalfOpen`].
    pub state: BreakerState,
    /// When open, the time left until a trial call will be admitted. `None` when half-open: a
    /// slot frees up when a trial in flight ends, which has no deadline known here.
    pub retry_in: Option<Duration>,
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_in {
            Some(wait) => write!(
                f,
                "circuit breaker of node `{}` is {}; next trial in {wait:?}",
                self.node, self.state
            ),
            None => write!(
                f,
                "circuit breaker of node `{}` is {} and every trial slot is taken",
                self.node, self.state
            ),
        }
    }
}

impl std::error::Error for BreakerOpen {}

/// A breaker's figures at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSnapshot {
    /// The current state.
    pub state: BreakerState,
    /// Failed calls, in percent of `calls`. Closed or open: over the sliding window (when open,
    /// the window that tripped it). Half-open: over the trials recorded so far.
    pub failure_rate: f64,
    /// Slow calls, in percent of `calls`, over the same calls as `failure_rate`.
    pub slow_call_rate: f64,
    /// Calls the rates are computed over.
    pub calls: u32,
    /// Failed calls among them.
    pub failed_calls: u32,
    /// Slow calls among them.
    pub slow_calls: u32,
    /// Trial calls admitted and not yet ended (half-open only; 0 otherwise).
    pub trials_in_flight: u32,
    /// Times the breaker has opened since it was created.
    pub trips: u64,
    /// Times it has opened since it last closed: what the open interval grows with.
    pub trips_in_row: u32,
    /// Calls rejected since it was created.
    pub rejected: u64,
    /// When open, the time left until a trial call will be admitted.
    pub retry_in: Option<Duration>,
}

/// One node's circuit breaker. Cheap to clone; clones share the same state.
///
/// See the [module documentation](self) for the state machine.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

/// The low two bits of `Shared::phase` hold the state, the rest the generation.
const STATE_BITS: u32 = 2;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
const CLOSED: u64 = 0;

struct Shared {
    name: Arc<str>,
    config: BreakerConfig,
    /// `generation << 2 | state`, written under the mutex, read without it so that a closed
    /// breaker admits a call with one atomic load.
    phase: AtomicU64,
    machine: Mutex<Machine>,
}

struct Machine {
    state: BreakerState,
    /// Bumped on every transition; a guard remembers the generation that admitted it.
    generation: u64,
    window: Window,
    /// Outcomes of the trials of the current half-open period.
    trials: Tally,
    trials_in_flight: u32,
    open_until: Instant,
    trips: u64,
    trips_in_row: u32,
    rejected: u64,
    rng: SmallRng,
}

impl CircuitBreaker {
    /// A closed breaker for the node called `name`.
    pub fn new(name: impl Into<Arc<str>>, config: BreakerConfig) -> Self {
        let name = name.into();
        let now = Instant::now();
        let rng = match config.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_os_rng(),
        };
        let machine = Machine {
            state: BreakerState::Closed,
            generation: 0,
            window: Window::new(config.window, now),
            trials: Tally::default(),
            trials_in_flight: 0,
            open_until: now,
            trips: 0,
            trips_in_row: 0,
            rejected: 0,
            rng,
        };
        publish_state(&name, BreakerState::Closed);
        CircuitBreaker {
            shared: Arc::new(Shared {
                name,
                config,
                phase: AtomicU64::new(CLOSED),
                machine: Mutex::new(machine),
            }),
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }

    /// Asks to make a call. On success, report how it ended through the returned guard; dropping
    /// the guard without an outcome counts as a cancellation.
    pub fn try_call(&self) -> Result<CallGuard, BreakerOpen> {
        self.try_call_at(Instant::now())
    }

    /// [`try_call`](CircuitBreaker::try_call) with the caller's reading of the clock (a caller
    /// that times several things reads it once).
    pub fn try_call_at(&self, now: Instant) -> Result<CallGuard, BreakerOpen> {
        let phase = self.shared.phase.load(Ordering::Acquire);
        if phase & STATE_MASK == CLOSED {
            return Ok(self.guard(phase >> STATE_BITS, false, now));
        }
        self.try_call_locked(now)
    }

    #[cold]
    fn try_call_locked(&self, now: Instant) -> Result<CallGuard, BreakerOpen> {
        let mut m = self.shared.machine.lock();
        m.poll(&self.shared, now);
        let permitted = self.shared.config.permitted_calls_in_half_open;
        match m.state {
            BreakerState::Closed => Ok(self.guard(m.generation, false, now)),
            BreakerState::HalfOpen if m.trials_in_flight + m.trials.calls < permitted => {
                m.trials_in_flight += 1;
                Ok(self.guard(m.generation, true, now))
            }
            state => {
                m.rejected += 1;
                metrics::counter!(
                    "seawall_breaker_rejected_total",
                    "node" => self.shared.name.clone(),
                    "state" => state.as_str()
                )
                .increment(1);
                Err(BreakerOpen {
                    node: self.shared.name.clone(),
                    state,
                    retry_in: (state == BreakerState::Open)
                        .then(|| m.open_until.saturating_duration_since(now)),
                })
            }
        }
    }

    fn guard(&self, generation: u64, trial: bool, now: Instant) -> CallGuard {
        CallGuard {
            shared: self.shared.clone(),
            generation,
            trial,
            started: now,
            finished: false,
        }
    }

    /// Closes the breaker now, forgetting its window and the growth of its open interval: for a
    /// health monitor that has just proven the node healthy again (it answered
    /// `up_after` consecutive probes), so that the node takes work at once instead of after an
    /// open interval that may have grown to minutes while it was down.
    pub fn reset(&self) {
        let now = Instant::now();
        let mut m = self.shared.machine.lock();
        if m.state == BreakerState::Closed && m.trips_in_row == 0 {
            return;
        }
        let tally = m.trials;
        m.close(&self.shared, now, tally);
    }

    /// The current state. An open breaker whose interval has passed turns half-open here.
    pub fn state(&self) -> BreakerState {
        if self.shared.phase.load(Ordering::Acquire) & STATE_MASK == CLOSED {
            return BreakerState::Closed;
        }
        let mut m = self.shared.machine.lock();
        m.poll(&self.shared, Instant::now());
        m.state
    }

    /// The current state and figures.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = Instant::now();
        let mut m = self.shared.machine.lock();
        m.poll(&self.shared, now);
        let tally = match m.state {
            BreakerState::HalfOpen => m.trials,
            _ => m.window.tally(now),
        };
        BreakerSnapshot {
            state: m.state,
            failure_rate: tally.failure_rate(),
            slow_call_rate: tally.slow_rate(),
            calls: tally.calls,
            failed_calls: tally.failed,
            slow_calls: tally.slow,
            trials_in_flight: m.trials_in_flight,
            trips: m.trips,
            trips_in_row: m.trips_in_row,
            rejected: m.rejected,
            retry_in: (m.state == BreakerState::Open)
                .then(|| m.open_until.saturating_duration_since(now)),
        }
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Takes the outcome of a guard; `None` is a cancellation.
    fn finish(
        &self,
        generation: u64,
        trial: bool,
        outcome: Option<(Outcome, Duration)>,
        now: Option<Instant>,
    ) {
        let judged = match outcome {
            Some((Outcome::Success, latency)) => Some(Call {
                failed: false,
                slow: latency >= self.config.slow_call_duration,
            }),
            Some((Outcome::Failure, latency)) => Some(Call {
                failed: true,
                slow: latency >= self.config.slow_call_duration,
            }),
            Some((Outcome::Ignored, _)) | None => None,
        };
        // An uncounted call outside half-open changes nothing: skip the lock.
        if judged.is_none() && !trial {
            return;
        }
        let now = now.unwrap_or_else(Instant::now);
        let mut m = self.machine.lock();
        if m.generation != generation {
            return; // admitted in a period that has been judged already
        }
        match m.state {
            BreakerState::Closed => {
                if let Some(call) = judged {
                    m.window.record(call, now);
                    m.judge_window(self, now);
                }
            }
            BreakerState::HalfOpen => {
                m.trials_in_flight -= 1;
                if let Some(call) = judged {
                    m.trials.add(call);
                    m.judge_trials(self, now);
                }
            }
            // No guard is ever handed out in the open state, so none carries its generation.
            BreakerState::Open => {}
        }
    }
}

impl Machine {
    /// Makes the time-driven transition: open to half-open once the interval has passed.
    fn poll(&mut self, shared: &Shared, now: Instant) {
        if self.state == BreakerState::Open && now >= self.open_until {
            self.transition(shared, BreakerState::HalfOpen);
            tracing::info!(
                node = %shared.name,
                trips_in_row = self.trips_in_row,
                trials = shared.config.permitted_calls_in_half_open,
                "circuit breaker half-open: admitting trial calls"
            );
        }
    }

    fn judge_window(&mut self, shared: &Shared, now: Instant) {
        let tally = self.window.tally(now);
        let config = &shared.config;
        if tally.calls >= config.minimum_calls
            && (tally.failure_rate() >= config.failure_rate_threshold
                || tally.slow_rate() >= config.slow_call_rate_threshold)
        {
            self.open(shared, now, tally);
        }
    }

    fn judge_trials(&mut self, shared: &Shared, now: Instant) {
        let config = &shared.config;
        let permitted = config.permitted_calls_in_half_open;
        let t = self.trials;
        // Rates over all the trials to come: reaching a threshold already settles the verdict.
        if percent(t.failed, permitted) >= config.failure_rate_threshold
            || percent(t.slow, permitted) >= config.slow_call_rate_threshold
        {
            self.open(shared, now, t);
        } else if t.calls == permitted {
            self.close(shared, now, t);
        }
    }

    fn open(&mut self, shared: &Shared, now: Instant, tally: Tally) {
        self.trips += 1;
        self.trips_in_row = self.trips_in_row.saturating_add(1);
        let interval = self.jittered(shared, shared.config.open_interval_for(self.trips_in_row));
        self.open_until = now + interval;
        let from = self.state;
        self.transition(shared, BreakerState::Open);
        tracing::warn!(
            node = %shared.name,
            from = %from,
            failure_rate = tally.failure_rate(),
            slow_call_rate = tally.slow_rate(),
            calls = tally.calls,
            trips = self.trips,
            trips_in_row = self.trips_in_row,
            open_for = ?interval,
            "circuit breaker opened"
        );
    }

    fn close(&mut self, shared: &Shared, now: Instant, tally: Tally) {
        self.trips_in_row = 0;
        self.window.clear(now);
        self.transition(shared, BreakerState::Closed);
        tracing::info!(
            node = %shared.name,
            trials = tally.calls,
            failure_rate = tally.failure_rate(),
            slow_call_rate = tally.slow_rate(),
            "circuit breaker closed"
        );
    }

    /// Takes up to `jitter` of the interval off, uniformly.
    fn jittered(&mut self, shared: &Shared, interval: Duration) -> Duration {
        let jitter = shared.config.jitter;
        if jitter == 0.0 {
            return interval;
        }
        interval.mul_f64(1.0 - jitter * self.rng.random::<f64>())
    }

    fn transition(&mut self, shared: &Shared, to: BreakerState) {
        self.state = to;
        self.generation += 1;
        // Trials belong to one half-open period; those still in flight are now stale.
        self.trials = Tally::default();
        self.trials_in_flight = 0;
        shared
            .phase
            .store(self.generation << STATE_BITS | to.code(), Ordering::Release);
        publish_state(&shared.name, to);
        metrics::counter!(
            "seawall_breaker_transitions_total",
            "node" => shared.name.clone(),
            "to" => to.as_str()
        )
        .increment(1);
    }
}

/// Permission for one call, from [`CircuitBreaker::try_call`]. Report how the call ended with
/// [`record`](CallGuard::record) (or [`success`](CallGuard::success),
/// [`failure`](CallGuard::failure), [`ignore`](CallGuard::ignore), which measure the latency from
/// `try_call` themselves). Dropping it without an outcome is a cancellation: not counted, and a
/// half-open trial slot is given back.
#[must_use = "a call guard should be given the call's outcome; dropping it counts as a cancellation"]
pub struct CallGuard {
    shared: Arc<Shared>,
    generation: u64,
    trial: bool,
    started: Instant,
    finished: bool,
}

impl CallGuard {
    /// Reports the call's outcome and latency.
    pub fn record(mut self, outcome: Outcome, latency: Duration) {
        self.finished = true;
        self.shared
            .finish(self.generation, self.trial, Some((outcome, latency)), None);
    }

    /// Reports the outcome as of `now` (the caller's reading of the clock), with the time
    /// since `try_call` as the latency.
    pub fn finish_at(mut self, outcome: Outcome, now: Instant) {
        self.finished = true;
        let latency = now.saturating_duration_since(self.started);
        self.shared.finish(
            self.generation,
            self.trial,
            Some((outcome, latency)),
            Some(now),
        );
    }

    /// Reports the outcome, with the time since `try_call` as the latency.
    pub fn finish(self, outcome: Outcome) {
        let latency = self.started.elapsed();
        self.record(outcome, latency);
    }

    /// Reports a success; the latency is the time since `try_call`.
    pub fn success(self) {
        self.finish(Outcome::Success);
    }

    /// Reports a failure; the latency is the time since `try_call`.
    pub fn failure(self) {
        self.finish(Outcome::Failure);
    }

    /// Reports a call that says nothing about the node's health.
    pub fn ignore(self) {
        self.finish(Outcome::Ignored);
    }

    /// Whether this is one of the limited trial calls of a half-open breaker.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    /// Time since the call was admitted.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.finish(self.generation, self.trial, None, None);
        }
    }
}

impl fmt::Debug for CallGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallGuard")
            .field("node", &self.shared.name)
            .field("trial", &self.trial)
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

/// The state gauges: the number, and 1/0 per state name.
fn publish_state(node: &Arc<str>, state: BreakerState) {
    metrics::gauge!("seawall_breaker_state", "node" => node.clone()).set(state.as_gauge());
    for each in [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ] {
        metrics::gauge!(
            "seawall_breaker_in_state",
            "node" => node.clone(),
            "state" => each.as_str()
        )
        .set(if each == state { 1.0 } else { 0.0 });
    }
}
