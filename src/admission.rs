//! A per-node admission gate: at most `limit` requests in flight, a short, bounded, prioritised
//! wait queue for the rest, and shedding when the queue stops draining.
//!
//! # Why
//!
//! A primary database that receives more concurrent work than it can run does not get more done;
//! it gets everything done later, until every caller times out and retries. The gate in front of
//! each node keeps in-flight work at the [`Limiter`]'s current limit and makes the excess *wait
//! briefly or fail fast*, never pile up. Failing fast with a precise [`Overloaded`] is the point:
//! the caller can retry elsewhere, degrade, or report back-pressure upstream.
//!
//! # How
//!
//! - **Admission.** [`Admission::admit`] takes a slot at once if fewer than `limit` requests are in
//!   flight. Otherwise the request waits in a queue of at most `max_queue` entries. The returned
//!   [`Permit`] frees its slot when dropped and reports the request's latency (measured from the
//!   grant, not from the call: queueing time is a product of the limit itself and would feed
//!   back into it) and outcome to the limiter.
//! - **Priority.** A freed slot goes to the highest [`Priority`] waiting. Writes default to
//!   [`Priority::WRITE`] (`High`) and reads to [`Priority::READ`] (`Normal`): a write usually holds
//!   locks or sits inside a transaction, so making it wait is costlier than making a read wait, and
//!   reads can often go to a replica instead. Within a class waiters are served first come, first
//!   served, except in LIFO mode (below).
//! - **Full queue.** An arrival that finds the queue full displaces the *oldest* waiter of the
//!   *lowest* class below its own ([`ShedReason::Displaced`]); if nobody waiting ranks lower, the
//!   arrival itself is rejected ([`ShedReason::QueueFull`]). The oldest is chosen because its
//!   caller has waited longest, so is likeliest to have given up or to be close to its deadline.
//! - **Deadlines.** A waiter fails at its deadline ([`ShedReason::Deadline`]), on its own timer,
//!   never later. A caller whose deadline has already passed is admitted if a slot is free (it
//!   need not wait) and rejected otherwise.
//! - **Cancellation.** Dropping an `admit` future removes its waiter. If the slot had already been
//!   granted but not yet observed, it is handed to the next waiter. Grants, sheds and removals all
//!   happen under the gate's one lock, so a slot is never lost and a waiter is never forgotten.
//!
//! # Shedding: CoDel and adaptive LIFO
//!
//! A queue is good at absorbing bursts and bad at absorbing overload: under sustained overload it
//! only adds delay to every request, and in FIFO order it serves the oldest requests first, whose
//! callers have probably timed out already. The gate therefore runs the scheme Facebook described
//! in "Fail at Scale" (CoDel plus adaptive LIFO), tuned by [`CodelConfig`]:
//!
//! 1. At every queue event (an arrival or a release) the gate notes the *head-of-queue delay*: how
//!    long the oldest waiter has waited (zero when the queue is empty). Using the head rather than
//!    the waiter being served keeps the signal honest while serving LIFO.
//! 2. At the end of each `interval` (default 100 ms), if the *minimum* of those delays over the
//!    interval exceeded `target` (default 5 ms), the queue never drained during that whole
//!    interval: it is a standing queue, not a burst, and the gate enters the overloaded state.
//!    Otherwise it leaves it. (If a whole interval passes without any event, the first event
//!    decides by its own delay.)
//! 3. While overloaded, every waiter that has waited longer than `shed_after` (default 10 ms,
//!    twice the target, as in folly's CoDel "slough timeout") is failed with
//!    [`ShedReason::QueueDelay`] at the next event, and slots go to the *newest* waiter first
//!    ([`QueueMode::Lifo`]): its caller is surely still waiting, and serving it keeps latency low
//!    for the requests that can still succeed. When the delay falls back under the target the
//!    gate returns to FIFO.
//!
//! Shedding for queue delay happens at queue events rather than on timers; under sustained
//! overload events are frequent, and each waiter's own deadline still fires exactly on time.
//!
//! # Observability
//!
//! [`Admission::snapshot`] returns the limit, in-flight count, queue length, mode and counters.
//! The same figures go to the `metrics` facade, labelled `node`:
//! `seawall_admission_limit`, `seawall_admission_in_flight`, `seawall_admission_queue_len` and
//! `seawall_admission_lifo` (1 in LIFO mode) are gauges; `seawall_admission_admitted_total`,
//! `seawall_admission_rejected_total`, `seawall_admission_shed_total` and
//! `seawall_admission_expired_total` are counters; `seawall_admission_queue_delay_seconds` is a
//! histogram of the time admitted waiters spent queued.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use seawall::admission::{Admission, AdmissionConfig, Priority};
//! use seawall::limit::Fixed;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let gate = Admission::new("primary", Fixed::new(1), AdmissionConfig::default())?;
//! let permit = gate.admit(Priority::WRITE, None).await?;
//!
//! // The single slot is taken: a read with a 10 ms deadline waits, then fails.
//! let deadline = tokio::time::Instant::now() + Duration::from_millis(10);
//! let err = gate.admit(Priority::READ, Some(deadline)).await.unwrap_err();
//! assert_eq!(err.in_flight, 1);
//!
//! permit.success();
//! assert_eq!(gate.snapshot().in_flight, 0);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::limit::{Limiter, Sample};
use crate::ConfigError;

/// How urgently a request should get a slot. Higher classes are served first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Background work that may wait or be shed first (reports, batch jobs).
    Low,
    /// Ordinary work; the default, and the class of reads.
    #[default]
    Normal,
    /// Work that is costly to delay; the class of writes.
    High,
    /// Work that must get through (health checks, failover, operator commands).
    Critical,
}

impl Priority {
    /// The default class of reads: [`Priority::Normal`].
    pub const READ: Priority = Priority::Normal;
    /// The default class of writes: [`Priority::High`].
    pub const WRITE: Priority = Priority::High;

    const COUNT: usize = 4;

    fn index(self) -> usize {
        self as usize
    }
}

/// The CoDel parameters of the wait queue; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodelConfig {
    /// Acceptable standing queue delay. Default 5 ms.
    pub target: Duration,
    /// How long the delay must stay above `target` before the queue counts as overloaded.
    /// Default 100 ms.
    pub interval: Duration,
    /// While overloaded, waiters queued longer than this are shed; at least `target`.
    /// Default 10 ms.
    pub shed_after: Duration,
}

impl Default for CodelConfig {
    fn default() -> Self {
        CodelConfig {
            target: Duration::from_millis(5),
            interval: Duration::from_millis(100),
            shed_after: Duration::from_millis(10),
        }
    }
}

/// Configuration of an [`Admission`] gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Waiters allowed in the queue; 0 means no queueing: at the limit, reject. Default 128.
    pub max_queue: usize,
    /// Shedding under sustained overload; `None` keeps a plain FIFO queue that sheds only on
    /// deadlines and a full queue. Default `Some(CodelConfig::default())`.
    pub codel: Option<CodelConfig>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_queue: 128,
            codel: Some(CodelConfig::default()),
        }
    }
}

impl AdmissionConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(codel) = &self.codel {
            if codel.target.is_zero() {
                return Err(ConfigError::new("codel.target", "must be positive"));
            }
            if codel.interval.is_zero() {
                return Err(ConfigError::new("codel.interval", "must be positive"));
            }
            if codel.shed_after < codel.target {
                return Err(ConfigError::new(
                    "codel.shed_after",
                    format!(
                        "must be at least codel.target ({:?}), got {:?}",
                        codel.target, codel.shed_after
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The order in which waiters of one priority class are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMode {
    /// Oldest first: the normal state.
    Fifo,
    /// Newest first: the queue is overloaded and old waiters are being shed.
    Lifo,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShedReason {
    /// The wait queue was full and no lower-priority waiter could make room.
    QueueFull,
    /// The caller's deadline passed while it waited.
    Deadline,
    /// The queue was overloaded (CoDel) and this waiter had waited too long.
    QueueDelay,
    /// A higher-priority arrival took this waiter's place in a full queue.
    Displaced,
    /// The gate was closed.
    Closed,
}

impl ShedReason {
    /// A short, stable name, suitable as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::QueueFull => "queue_full",
            ShedReason::Deadline => "deadline",
            ShedReason::QueueDelay => "queue_delay",
            ShedReason::Displaced => "displaced",
            ShedReason::Closed => "closed",
        }
    }
}

impl fmt::Display for ShedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShedReason::QueueFull => "wait queue full",
            ShedReason::Deadline => "deadline passed while queued",
            ShedReason::QueueDelay => "queue delay over target",
            ShedReason::Displaced => "displaced by a higher-priority request",
            ShedReason::Closed => "admission closed",
        })
    }
}

/// A request turned away by an [`Admission`] gate, with the gate's state when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overloaded {
    /// Name of the node.
    pub node: Arc<str>,
    /// Requests in flight at the time.
    pub in_flight: usize,
    /// The concurrency limit at the time.
    pub limit: usize,
    /// How long the request had waited in the queue.
    pub queued_for: Duration,
    /// Why it was turned away.
    pub reason: ShedReason,
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node `{}` overloaded: {}/{} in flight, queued {:?}: {}",
            self.node, self.in_flight, self.limit, self.queued_for, self.reason
        )
    }
}

impl std::error::Error for Overloaded {}

/// A point-in-time view of an [`Admission`] gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionSnapshot {
    /// The limiter's current limit (at least 1).
    pub limit: usize,
    /// Requests holding a slot.
    pub in_flight: usize,
    /// Requests waiting for a slot.
    pub queue_len: usize,
    /// The queue's serving order.
    pub mode: QueueMode,
    /// Requests admitted so far.
    pub admitted: u64,
    /// Requests turned away on arrival (queue full, deadline already passed, closed).
    pub rejected: u64,
    /// Waiters removed from the queue before a slot came (queue delay, displaced, closed).
    pub shed: u64,
    /// Waiters whose deadline passed in the queue.
    pub expired: u64,
}

/// A per-node gate keeping in-flight work within a [`Limiter`]'s limit; see the
/// [module docs](self).
///
/// Cloning is cheap and yields a handle to the same gate.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

struct Inner {
    node: Arc<str>,
    limiter: Box<dyn Limiter>,
    state: Mutex<State>,
    metrics: Metrics,
}

struct State {
    in_flight: usize,
    /// `config.max_queue`, or what [`Admission::set_max_queue`] made of it.
    max_queue: usize,
    /// One queue per priority class, keyed by arrival number: first is oldest, last is newest.
    queues: [BTreeMap<u64, Waiter>; Priority::COUNT],
    queue_len: usize,
    next_id: u64,
    codel: Codel,
    closed: bool,
    admitted: u64,
    rejected: u64,
    shed: u64,
    expired: u64,
}

struct Waiter {
    enqueued: Instant,
    tx: oneshot::Sender<Result<Grant, Overloaded>>,
}

/// A slot handed over, with what the permit needs to report on it.
#[derive(Debug, Clone, Copy)]
struct Grant {
    at: Instant,
    in_flight: usize,
    queued_for: Duration,
}

impl Admission {
    /// A gate for the node `node`, limited by `limiter`, or the error naming the bad field.
    ///
    /// Metric handles are registered with the `metrics` recorder installed at this point.
    pub fn new(
        node: impl Into<Arc<str>>,
        limiter: impl Limiter,
        config: AdmissionConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let node = node.into();
        let state = State {
            in_flight: 0,
            max_queue: config.max_queue,
            queues: Default::default(),
            queue_len: 0,
            next_id: 0,
            codel: Codel::new(config.codel),
            closed: false,
            admitted: 0,
            rejected: 0,
            shed: 0,
            expired: 0,
        };
        let inner = Inner {
            metrics: Metrics::new(&node),
            node,
            limiter: Box::new(limiter),
            state: Mutex::new(state),
        };
        inner.publish(&inner.state.lock(), inner.limit());
        Ok(Admission {
            inner: Arc::new(inner),
        })
    }

    /// Waits for a slot, at most until `deadline`.
    ///
    /// Fails with [`Overloaded`] when the queue is full, the deadline passes, the waiter is shed,
    /// or the gate is closed. Dropping the future gives up the place in the queue.
    pub async fn admit(
        &self,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<Permit, Overloaded> {
        let (id, rx) = match self.inner.enter(priority, deadline) {
            Entry::Admitted(grant) => return Ok(Permit::new(&self.inner, grant)),
            Entry::Rejected(overloaded) => return Err(overloaded),
            Entry::Queued { id, rx } => (id, rx),
        };
        let mut wait = Wait {
            inner: &self.inner,
            priority,
            id,
            rx,
            settled: false,
        };
        let received = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, &mut wait.rx).await {
                Ok(received) => received,
                Err(_elapsed) => return wait.expire(),
            },
            None => (&mut wait.rx).await,
        };
        wait.settled = true;
        match received {
            Ok(Ok(grant)) => Ok(Permit::new(&self.inner, grant)),
            Ok(Err(overloaded)) => Err(overloaded),
            // Every removal from the queue sends first, so a silent sender cannot happen; answer
            // as if closed rather than panic.
            Err(_) => Err(self
                .inner
                .overloaded_now(ShedReason::Closed, Duration::ZERO)),
        }
    }

    /// Closes the gate: every waiter fails with [`ShedReason::Closed`], and so does every later
    /// `admit`. Permits already granted stay valid.
    pub fn close(&self) {
        let limit = self.inner.limit();
        let mut state = self.inner.state.lock();
        state.closed = true;
        let now = Instant::now();
        for class in 0..Priority::COUNT {
            while let Some((_, waiter)) = state.queues[class].pop_first() {
                state.queue_len -= 1;
                self.inner
                    .shed(&mut state, waiter, now, limit, ShedReason::Closed);
            }
        }
        self.inner.publish(&state, limit);
    }

    /// Changes how many waiters the queue holds (`max_queue`); waiters already queued beyond a
    /// smaller size stay until served or shed. Also applies the limiter's current limit at once
    /// ([`Admission::limit_changed`]).
    pub fn set_max_queue(&self, max_queue: usize) {
        self.inner.state.lock().max_queue = max_queue;
        self.limit_changed();
    }

    /// Applies a limit changed outside of samples (by [`Fixed::set`](crate::limit::Fixed::set),
    /// a limiter's new maximum) now rather than at the next admission or release: free slots go
    /// to waiters at once.
    pub fn limit_changed(&self) {
        let inner = &self.inner;
        let limit = inner.limit();
        let mut state = inner.state.lock();
        inner.dispatch(&mut state, Instant::now(), limit);
        inner.publish(&state, limit);
    }

    /// The gate's current state and counters.
    pub fn snapshot(&self) -> AdmissionSnapshot {
        let limit = self.inner.limit();
        let state = self.inner.state.lock();
        AdmissionSnapshot {
            limit,
            in_flight: state.in_flight,
            queue_len: state.queue_len,
            mode: state.codel.mode(),
            admitted: state.admitted,
            rejected: state.rejected,
            shed: state.shed,
            expired: state.expired,
        }
    }

    /// The node this gate protects.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The limiter deciding this gate's limit.
    pub fn limiter(&self) -> &dyn Limiter {
        &*self.inner.limiter
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("node", &self.inner.node)
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

enum Entry {
    Admitted(Grant),
    Rejected(Overloaded),
    Queued {
        id: u64,
        rx: oneshot::Receiver<Result<Grant, Overloaded>>,
    },
}

impl Inner {
    /// The limit in force; a limiter answering 0 is read as 1, or nothing could ever be admitted
    /// again to show that the node recovered.
    fn limit(&self) -> usize {
        self.limiter.limit().max(1)
    }

    fn enter(&self, priority: Priority, deadline: Option<Instant>) -> Entry {
        let limit = self.limit();
        let now = Instant::now();
        let mut state = self.state.lock();
        if state.closed {
            return Entry::Rejected(self.reject(&mut state, limit, ShedReason::Closed));
        }
        self.dispatch(&mut state, now, limit);
        if state.in_flight < limit {
            // dispatch() served every waiter it could, so nobody is queued ahead of us.
            state.in_flight += 1;
            state.admitted += 1;
            self.metrics.admitted.increment(1);
            let grant = Grant {
                at: now,
                in_flight: state.in_flight,
                queued_for: Duration::ZERO,
            };
            self.publish(&state, limit);
            return Entry::Admitted(grant);
        }
        if deadline.is_some_and(|deadline| deadline <= now) {
            return Entry::Rejected(self.reject(&mut state, limit, ShedReason::Deadline));
        }
        if state.queue_len >= state.max_queue {
            match state.pop_oldest_below(priority) {
                Some(victim) => self.shed(&mut state, victim, now, limit, ShedReason::Displaced),
                None => {
                    return Entry::Rejected(self.reject(&mut state, limit, ShedReason::QueueFull))
                }
            }
        }
        let (tx, rx) = oneshot::channel();
        let id = state.next_id;
        state.next_id += 1;
        state.queues[priority.index()].insert(id, Waiter { enqueued: now, tx });
        state.queue_len += 1;
        self.publish(&state, limit);
        Entry::Queued { id, rx }
    }

    /// Runs the queue: updates CoDel, sheds stale waiters when overloaded, and hands free slots
    /// to waiters in priority order. Called at every queue event, under the lock.
    fn dispatch(&self, state: &mut State, now: Instant, limit: usize) {
        let head_delay = state.oldest_enqueued().map_or(Duration::ZERO, |enqueued| {
            now.saturating_duration_since(enqueued)
        });
        if state.codel.observe(now, head_delay) {
            match state.codel.mode() {
                QueueMode::Lifo => tracing::warn!(
                    node = %self.node,
                    ?head_delay,
                    queue_len = state.queue_len,
                    "admission queue overloaded: shedding stale waiters, serving newest first"
                ),
                QueueMode::Fifo => tracing::info!(
                    node = %self.node,
                    ?head_delay,
                    "admission queue recovered: serving oldest first"
                ),
            }
        }
        if let Some(shed_after) = state.codel.shed_after() {
            for class in 0..Priority::COUNT {
                while let Some(entry) = state.queues[class].first_entry() {
                    if now.saturating_duration_since(entry.get().enqueued) <= shed_after {
                        break;
                    }
                    let waiter = entry.remove();
                    state.queue_len -= 1;
                    self.shed(state, waiter, now, limit, ShedReason::QueueDelay);
                }
            }
        }
        while state.in_flight < limit {
            let lifo = state.codel.mode() == QueueMode::Lifo;
            let Some(waiter) = state.pop_next(lifo) else {
                break;
            };
            let queued_for = now.saturating_duration_since(waiter.enqueued);
            let grant = Grant {
                at: now,
                in_flight: state.in_flight + 1,
                queued_for,
            };
            // A waiter whose future is gone has already removed itself under this lock, so the
            // send only fails if that invariant is broken; then the slot simply stays free.
            if waiter.tx.send(Ok(grant)).is_ok() {
                state.in_flight += 1;
                state.admitted += 1;
                self.metrics.admitted.increment(1);
                self.metrics.queue_delay.record(queued_for.as_secs_f64());
            }
        }
    }

    /// Gives a slot back and passes it on.
    fn release(&self, now: Instant) {
        let limit = self.limit();
        let mut state = self.state.lock();
        state.in_flight -= 1;
        self.dispatch(&mut state, now, limit);
        self.publish(&state, limit);
    }

    /// Fails a waiter already taken out of the queue.
    fn shed(
        &self,
        state: &mut State,
        waiter: Waiter,
        now: Instant,
        limit: usize,
        reason: ShedReason,
    ) {
        state.shed += 1;
        self.metrics.shed.increment(1);
        let overloaded = Overloaded {
            node: self.node.clone(),
            in_flight: state.in_flight,
            limit,
            queued_for: now.saturating_duration_since(waiter.enqueued),
            reason,
        };
        // If the receiver is gone nobody is waiting for the answer; nothing to do.
        let _ = waiter.tx.send(Err(overloaded));
    }

    /// Turns an arrival away.
    fn reject(&self, state: &mut State, limit: usize, reason: ShedReason) -> Overloaded {
        state.rejected += 1;
        self.metrics.rejected.increment(1);
        Overloaded {
            node: self.node.clone(),
            in_flight: state.in_flight,
            limit,
            queued_for: Duration::ZERO,
            reason,
        }
    }

    fn overloaded_now(&self, reason: ShedReason, queued_for: Duration) -> Overloaded {
        let limit = self.limit();
        let state = self.state.lock();
        Overloaded {
            node: self.node.clone(),
            in_flight: state.in_flight,
            limit,
            queued_for,
            reason,
        }
    }

    /// Sets the gauges. Done under the lock so concurrent updates cannot land out of order.
    fn publish(&self, state: &State, limit: usize) {
        let m = &self.metrics;
        m.limit.set(limit as f64);
        m.in_flight.set(state.in_flight as f64);
        m.queue_len.set(state.queue_len as f64);
        m.lifo.set(match state.codel.mode() {
            QueueMode::Fifo => 0.0,
            QueueMode::Lifo => 1.0,
        });
    }
}

impl State {
    fn pop_next(&mut self, lifo: bool) -> Option<Waiter> {
        for queue in self.queues.iter_mut().rev() {
            let popped = if lifo {
                queue.pop_last()
            } else {
                queue.pop_first()
            };
            if let Some((_, waiter)) = popped {
                self.queue_len -= 1;
                return Some(waiter);
            }
        }
        None
    }

    fn pop_oldest_below(&mut self, priority: Priority) -> Option<Waiter> {
        let (_, waiter) = self.queues[..priority.index()]
            .iter_mut()
            .find_map(|queue| queue.pop_first())?;
        self.queue_len -= 1;
        Some(waiter)
    }

    fn oldest_enqueued(&self) -> Option<Instant> {
        self.queues
            .iter()
            .filter_map(|queue| queue.first_key_value())
            .min_by_key(|(id, _)| **id)
            .map(|(_, waiter)| waiter.enqueued)
    }

    fn remove(&mut self, priority: Priority, id: u64) -> Option<Waiter> {
        let waiter = self.queues[priority.index()].remove(&id)?;
        self.queue_len -= 1;
        Some(waiter)
    }
}

/// A queued `admit`: removes its waiter if the future is dropped before it settles.
struct Wait<'a> {
    inner: &'a Arc<Inner>,
    priority: Priority,
    id: u64,
    rx: oneshot::Receiver<Result<Grant, Overloaded>>,
    settled: bool,
}

impl Wait<'_> {
    /// The deadline fired: leave the queue, unless a grant or a shed beat the timer to it.
    fn expire(&mut self) -> Result<Permit, Overloaded> {
        self.settled = true;
        let inner = self.inner;
        let limit = inner.limit();
        let now = Instant::now();
        let mut state = inner.state.lock();
        if let Some(waiter) = state.remove(self.priority, self.id) {
            state.expired += 1;
            inner.metrics.expired.increment(1);
            inner.publish(&state, limit);
            return Err(Overloaded {
                node: inner.node.clone(),
                in_flight: state.in_flight,
                limit,
                queued_for: now.saturating_duration_since(waiter.enqueued),
                reason: ShedReason::Deadline,
            });
        }
        drop(state);
        // Not queued any more, so the answer was sent under the lock: it is in the channel.
        match self.rx.try_recv() {
            Ok(Ok(grant)) => Ok(Permit::new(inner, grant)),
            Ok(Err(overloaded)) => Err(overloaded),
            Err(_) => Err(inner.overloaded_now(ShedReason::Closed, Duration::ZERO)),
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let inner = self.inner;
        let limit = inner.limit();
        let now = Instant::now();
        let mut state = inner.state.lock();
        if state.remove(self.priority, self.id).is_none() {
            // Answered already. A grant nobody will observe must be passed on, not lost.
            if let Ok(Ok(_grant)) = self.rx.try_recv() {
                state.in_flight -= 1;
                inner.dispatch(&mut state, now, limit);
            }
        }
        inner.publish(&state, limit);
    }
}

/// A slot in an [`Admission`] gate, held while the request runs.
///
/// Finish it with [`Permit::success`] or [`Permit::failure`]; simply dropping it reports the
/// request as dropped (cancelled or failed) to the limiter. [`Permit::ignore`] releases the slot
/// without a report. The latency reported is the time since the slot was granted.
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct Permit {
    inner: Arc<Inner>,
    grant: Grant,
    report: Report,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    Dropped,
    Success,
    Ignore,
}

impl Permit {
    fn new(inner: &Arc<Inner>, grant: Grant) -> Self {
        Permit {
            inner: Arc::clone(inner),
            grant,
            report: Report::Dropped,
        }
    }

    /// The request succeeded: releases the slot and reports its latency.
    pub fn success(mut self) {
        self.report = Report::Success;
    }

    /// The request failed in a way that signals overload (a timeout, a broken connection): the
    /// limiter treats it as a drop. Same as dropping the permit, but says so.
    pub fn failure(self) {}

    /// Releases the slot without telling the limiter anything, for requests whose outcome says
    /// nothing about the node's health (a syntax error, a cancelled request that never ran).
    pub fn ignore(mut self) {
        self.report = Report::Ignore;
    }

    /// How long the request waited in the queue before it got this slot.
    pub fn queued_for(&self) -> Duration {
        self.grant.queued_for
    }

    /// Requests in flight when this slot was granted, this one included.
    pub fn in_flight_at_admit(&self) -> usize {
        self.grant.in_flight
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("node", &self.inner.node)
            .field("queued_for", &self.grant.queued_for)
            .field("in_flight_at_admit", &self.grant.in_flight)
            .finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.grant.at);
        let in_flight = self.grant.in_flight;
        match self.report {
            Report::Success => self
                .inner
                .limiter
                .on_sample(Sample::success(latency, in_flight)),
            Report::Dropped => self
                .inner
                .limiter
                .on_sample(Sample::dropped(latency, in_flight)),
            Report::Ignore => {}
        }
        self.inner.release(now);
    }
}

/// CoDel's overload detector; see the module docs.
#[derive(Debug)]
struct Codel {
    config: Option<CodelConfig>,
    /// End of the current interval; `None` before the first event.
    interval_end: Option<Instant>,
    /// Minimum head-of-queue delay seen in the current interval.
    min_delay: Duration,
    overloaded: bool,
}

impl Codel {
    fn new(config: Option<CodelConfig>) -> Self {
        Codel {
            config,
            interval_end: None,
            min_delay: Duration::ZERO,
            overloaded: false,
        }
    }

    /// Records the head-of-queue delay seen at `now`; returns whether the mode changed.
    fn observe(&mut self, now: Instant, delay: Duration) -> bool {
        let Some(config) = self.config else {
            return false;
        };
        let was = self.overloaded;
        match self.interval_end {
            Some(end) if now >= end => {
                // If a whole interval passed without any event, the old minimum is stale: let the
                // delay seen now decide.
                let min = if now >= end + config.interval {
                    delay
                } else {
                    self.min_delay
                };
                self.overloaded = min > config.target;
                self.interval_end = Some(now + config.interval);
                self.min_delay = delay;
            }
            Some(_) => self.min_delay = self.min_delay.min(delay),
            None => {
                self.interval_end = Some(now + config.interval);
                self.min_delay = delay;
            }
        }
        self.overloaded != was
    }

    fn mode(&self) -> QueueMode {
        if self.overloaded {
            QueueMode::Lifo
        } else {
            QueueMode::Fifo
        }
    }

    /// Waiters older than this are shed; `None` while not overloaded.
    fn shed_after(&self) -> Option<Duration> {
        match self.config {
            Some(config) if self.overloaded => Some(config.shed_after),
            _ => None,
        }
    }
}

struct Metrics {
    limit: Gauge,
    in_flight: Gauge,
    queue_len: Gauge,
    lifo: Gauge,
    admitted: Counter,
    rejected: Counter,
    shed: Counter,
    expired: Counter,
    queue_delay: Histogram,
}

impl Metrics {
    /// Registers the handles once, so the hot path never builds a metric key.
    fn new(node: &Arc<str>) -> Self {
        let label = || ("node", node.to_string());
        Metrics {
            limit: metrics::gauge!("seawall_admission_limit", &[label()]),
            in_flight: metrics::gauge!("seawall_admission_in_flight", &[label()]),
            queue_len: metrics::gauge!("seawall_admission_queue_len", &[label()]),
            lifo: metrics::gauge!("seawall_admission_lifo", &[label()]),
            admitted: metrics::counter!("seawall_admission_admitted_total", &[label()]),
            rejected: metrics::counter!("seawall_admission_rejected_total", &[label()]),
            shed: metrics::counter!("seawall_admission_shed_total", &[label()]),
            expired: metrics::counter!("seawall_admission_expired_total", &[label()]),
            queue_delay: metrics::histogram!("seawall_admission_queue_delay_seconds", &[label()]),
        }
    }
}
