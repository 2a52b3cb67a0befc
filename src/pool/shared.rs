//! The pool's shared state: one mutex over the idle stack, the waiter queue and the counts.
//!
//! One lock, held for a few pointer moves, keeps the invariants easy to see:
//!
//! * `size` counts open connections (idle, checked out, or being reset); `opening` counts
//!   connects in flight. `size + opening <= max_size` except while shrinking, when returns close
//!   the excess.
//! * A waiter is in `waiters` exactly while its slot is `Waiting`. A connection that becomes
//!   free goes straight to the oldest waiter (direct hand-off: FIFO, no barging), so idle
//!   connections and waiters never coexist.
//! * A slot is only filled under the pool lock, and a waiter only withdraws under it, so a
//!   cancelled acquire either finds its connection (and passes it on) or is gone from the queue
//!   before any connection could reach it. Nothing leaks and no wake-up is lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crossbeam::utils::CachePadded;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::driver::{Cancel, Connector};
use crate::error::{DriverError, Error, WaitCause};

use super::config::Config;
use super::metrics::PoolMetrics;
use super::state::{State, Totals, WaitHistogram};

/// A connection with its bookkeeping.
pub(crate) struct Conn<T> {
    pub(crate) raw: T,
    pub(crate) created: Instant,
    /// When the jittered max lifetime runs out, on the pool's coarse clock.
    pub(crate) expires_ms: u64,
    /// The rest, out of line: a connection moves between the idle stack, waiters and guards
    /// on every checkout, and those moves stay four words.
    pub(crate) extra: Box<Extra>,
}

/// What a connection carries beside its hot fields.
pub(crate) struct Extra {
    /// It has been returned at least once (a new connection that fails its first checkout
    /// check is a failed connect, not a worn-out connection).
    pub(crate) reused: bool,
    /// Stops the server's work on it from outside ([`Connector::cancel_handle`]).
    pub(crate) cancel: Option<Arc<dyn Cancel>>,
}

impl<T> Conn<T> {
    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }
}

pub(crate) struct Idle<T> {
    pub(crate) conn: Conn<T>,
    /// When it was returned, on the pool's coarse clock.
    pub(crate) since_ms: u64,
}

/// Milliseconds since the pool was built, refreshed by the maintenance task every
/// `maintenance_interval` and by every slow path that reads the real clock anyway.
///
/// Idle time and lifetime only need to be known to a fraction of their limits (seconds to
/// minutes); a relaxed load of this counter costs nothing, where two reads of the real clock
/// were a third of an uncontended get + drop.
#[derive(Debug)]
pub(crate) struct CoarseClock {
    origin: Instant,
    ms: AtomicU64,
}

impl CoarseClock {
    fn new() -> Self {
        CoarseClock {
            origin: Instant::now(),
            ms: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::Relaxed)
    }

    /// Reads the real clock and moves the coarse one up to it.
    pub(crate) fn refresh(&self) -> Instant {
        let now = Instant::now();
        let ms = self.to_ms(now);
        // Load first: under contention most refreshes land in the same millisecond, and a
        // read-shared line costs nothing where a read-modify-write would bounce between cores.
        if ms > self.ms.load(Ordering::Relaxed) {
            self.ms.fetch_max(ms, Ordering::Relaxed);
        }
        now
    }

    pub(crate) fn to_ms(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }
}

/// `start + timeout`, saturating far in the future instead of overflowing (a caller may ask to
/// wait `Duration::MAX`).
pub(crate) fn deadline_after(start: Instant, timeout: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    start.checked_add(timeout).unwrap_or_else(|| start + FAR)
}

/// A connection held across an await (checkout ping, session reset). If the future is dropped
/// there, the connection's state is unknown (a query may be half sent), so it is discarded as
/// broken: never leaked from the pool's accounting, never reused dirty.
pub(crate) struct Held<'a, C: Connector> {
    conn: Option<Conn<C::Connection>>,
    shared: &'a Arc<Shared<C>>,
    unacquire: bool,
}

impl<'a, C: Connector> Held<'a, C> {
    /// `unacquire`: take back the acquire counted for it if it is discarded (checkout).
    pub(crate) fn new(
        conn: Conn<C::Connection>,
        shared: &'a Arc<Shared<C>>,
        unacquire: bool,
    ) -> Self {
        Held {
            conn: Some(conn),
            shared,
            unacquire,
        }
    }

    pub(crate) fn raw_mut(&mut self) -> &mut C::Connection {
        &mut self.conn.as_mut().expect("held until kept or dropped").raw
    }

    /// The connection passed its await: keep it.
    pub(crate) fn keep(mut self) -> Conn<C::Connection> {
        self.conn.take().expect("held until kept or dropped")
    }
}

impl<C: Connector> Drop for Held<'_, C> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.shared.discard(conn, true, self.unacquire);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Where a waiting acquire stands. Only the pool (under its lock) moves a slot out of
/// `Waiting`.
pub(crate) enum Slot<T> {
    Waiting(Option<Waker>),
    Served(Conn<T>),
    TimedOut(WaitCause),
    Closed,
    Done,
}

/// How a wait ended.
pub(crate) enum WaitEnd<T> {
    Served(Conn<T>),
    TimedOut(WaitCause),
    Closed,
}

pub(crate) struct Waiter<T> {
    slot: Mutex<Slot<T>>,
    /// When it started waiting: a connect failure before that is not this wait's cause.
    since: Instant,
    deadline: Instant,
    /// Give up as soon as a connect fails while the pool has no connection that could come
    /// back (the router would rather try another node than wait out the deadline).
    fail_fast: bool,
}

impl<T> Waiter<T> {
    fn new(since: Instant, deadline: Instant, waker: Waker, fail_fast: bool) -> Self {
        Waiter {
            slot: Mutex::new(Slot::Waiting(Some(waker))),
            since,
            deadline,
            fail_fast,
        }
    }

    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<WaitEnd<T>> {
        let mut slot = self.slot.lock();
        if let Slot::Waiting(waker) = &mut *slot {
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        Poll::Ready(match std::mem::replace(&mut *slot, Slot::Done) {
            Slot::Served(conn) => WaitEnd::Served(conn),
            Slot::TimedOut(cause) => WaitEnd::TimedOut(cause),
            Slot::Waiting(_) | Slot::Closed | Slot::Done => WaitEnd::Closed,
        })
    }
}

pub(crate) struct Inner<T> {
    /// The deadline the watcher sleeps toward; `None` when it waits for a notification.
    watch_until: Option<Instant>,
    /// LIFO: hot connections stay hot and the surplus sinks to the bottom to idle out.
    pub(crate) idle: Vec<Idle<T>>,
    pub(crate) waiters: VecDeque<Arc<Waiter<T>>>,
    pub(crate) size: usize,
    pub(crate) opening: usize,
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) closed: bool,
    pub(crate) connect_failures: u64,
    pub(crate) last_connect_error: Option<DriverError>,
    /// When the last connect failed (`None` after a success).
    last_failure_at: Option<Instant>,
    /// No connect starts before this: the backoff after consecutive failures, one schedule for
    /// every connect task of the pool, anchored at the failure (not at whoever asks next).
    retry_at: Option<Instant>,
    /// New connections found broken at their first checkout, in a row.
    born_broken: u64,
    pub(crate) totals: Totals,
    rng: SmallRng,
}

impl<T> Inner<T> {
    /// Idle connections missing to `min_idle`.
    fn idle_deficit(&self) -> usize {
        self.min_idle.saturating_sub(self.idle.len())
    }
}

/// The pool's lock, with a hint of how many connections are idle beside it (same cache line).
///
/// The lock is std's futex-based mutex rather than parking_lot's: with two runtime workers
/// contending for it (the contended pool bench), it measured 5-8% faster per acquisition, and
/// the pool never holds it across anything that could panic and poison it (a poisoned lock is
/// taken as is).
pub(crate) struct Locked<T> {
    mutex: std::sync::Mutex<Inner<T>>,
    /// `idle.len()` as of the last push or pop, readable without the lock. Only a hint: an
    /// acquire that reads 0 skips its first look at the idle stack and queues, looking again
    /// under the lock then; under contention (where the stack is always empty) that saves one
    /// lock acquisition per wait.
    idle_hint: AtomicUsize,
}

impl<T> Locked<T> {
    #[inline]
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.mutex.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a try at the idle set gave.
pub(crate) enum Take<T> {
    Idle(Idle<T>),
    /// Queued: the waiter, when it started waiting, and how many connects to spawn.
    Wait(Arc<Waiter<T>>, Instant, usize),
    Closed,
}

pub(crate) struct Shared<C: Connector> {
    /// Padded so the lock does not share a cache line with the `Arc` counts that every
    /// checkout bumps.
    pub(crate) inner: CachePadded<Locked<C::Connection>>,
    pub(crate) clock: CoarseClock,
    pub(crate) connector: C,
    pub(crate) config: Config,
    pub(crate) waits: WaitHistogram,
    pub(crate) metrics: PoolMetrics,
    pub(crate) drained: Notify,
    runtime: OnceLock<Handle>,
    maintenance_started: AtomicBool,
    /// Wakes the deadline watcher when a waiter with an earlier deadline arrives.
    watch: Arc<Notify>,
    watcher_alive: Arc<AtomicBool>,
    seeds: AtomicU64,
    /// When the last connect failed (coarse ms + 1), 0 after a success: for lock-free reads
    /// by the router.
    pub(crate) refused_at_ms: AtomicU64,
    /// Wakes connect tasks waiting out the backoff: the backend was just reached (a connect
    /// succeeded, or a health probe got through).
    pub(crate) reachable: Arc<Notify>,
    /// Turns for cancels of interrupted statements (`max_connecting` at once).
    cancel_slots: Arc<tokio::sync::Semaphore>,
    /// Told the new maximum size after every [`Pool::set_max_size`](super::Pool::set_max_size)
    /// (a cluster node's admission gate and load model follow its pool).
    pub(crate) resize_hooks: Mutex<Vec<ResizeHook>>,
}

/// Called with a pool's new maximum size when it is resized.
pub(crate) type ResizeHook = Box<dyn Fn(usize) + Send + Sync>;

impl<C: Connector> Shared<C> {
    pub(crate) fn new(connector: C, config: Config) -> Self {
        let seed = config
            .seed
            .unwrap_or_else(|| SmallRng::from_os_rng().random());
        let inner = Inner {
            watch_until: None,
            idle: Vec::with_capacity(config.max_size),
            waiters: VecDeque::new(),
            size: 0,
            opening: 0,
            max_size: config.max_size,
            min_idle: config.min_idle,
            closed: false,
            connect_failures: 0,
            last_connect_error: None,
            last_failure_at: None,
            retry_at: None,
            born_broken: 0,
            totals: Totals::default(),
            rng: SmallRng::seed_from_u64(seed),
        };
        Shared {
            metrics: {
                crate::metrics::describe();
                PoolMetrics::new(&config.name, config.metric_names, config.min_idle)
            },
            connector,
            inner: CachePadded::new(Locked {
                mutex: std::sync::Mutex::new(inner),
                idle_hint: AtomicUsize::new(0),
            }),
            clock: CoarseClock::new(),
            watch: Arc::new(Notify::new()),
            watcher_alive: Arc::new(AtomicBool::new(false)),
            refused_at_ms: AtomicU64::new(0),
            reachable: Arc::new(Notify::new()),
            cancel_slots: Arc::new(tokio::sync::Semaphore::new(config.max_connecting)),
            waits: WaitHistogram::default(),
            drained: Notify::new(),
            runtime: OnceLock::new(),
            maintenance_started: AtomicBool::new(false),
            seeds: AtomicU64::new(seed),
            resize_hooks: Mutex::new(Vec::new()),
            config,
        }
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.config.name
    }

    /// A fresh seed for a backoff sequence: distinct per sequence, reproducible per pool seed.
    pub(crate) fn next_seed(&self) -> u64 {
        self.seeds
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .rotate_left(17)
    }

    /// The runtime to spawn background work on: the current one, else the one seen last.
    pub(crate) fn runtime(&self) -> Option<Handle> {
        match Handle::try_current() {
            Ok(h) => {
                if self.runtime.get().is_none() {
                    let _ = self.runtime.set(h.clone());
                }
                Some(h)
            }
            Err(_) => self.runtime.get().cloned(),
        }
    }

    /// Starts the maintenance task once, when a runtime is first available.
    pub(crate) fn ensure_maintenance(self: &Arc<Self>) {
        if self.maintenance_started.load(Ordering::Relaxed) {
            return;
        }
        if let Some(rt) = self.runtime() {
            if !self.maintenance_started.swap(true, Ordering::AcqRel) {
                rt.spawn(super::maintenance::run(Arc::downgrade(self)));
            }
        }
    }

    /// Pops an idle connection, or queues a waiter (with its deadline `timeout` from now and
    /// the caller's waker, so that it need not be polled once just to register) and says how many
    /// connects to start.
    pub(crate) fn take(
        &self,
        timeout: Duration,
        waker: &Waker,
        fail_fast: bool,
    ) -> Take<C::Connection> {
        if self.inner.idle_hint.load(Ordering::Relaxed) > 0 {
            if let Some(take) = self.take_idle(&mut self.inner.lock()) {
                return take;
            }
        }
        // Read the clock and allocate outside the lock: under contention its hold time is what
        // every other acquire and release waits for. A connection may come back meanwhile,
        // hence the second look.
        let now = self.clock.refresh();
        let deadline = deadline_after(now, timeout);
        let waiter = Arc::new(Waiter::new(now, deadline, waker.clone(), fail_fast));
        let mut inner = self.inner.lock();
        if let Some(take) = self.take_idle(&mut inner) {
            return take;
        }
        inner.waiters.push_back(waiter.clone());
        if inner.watch_until.is_none_or(|t| deadline < t) {
            inner.watch_until = Some(deadline);
            self.watch.notify_one();
        }
        let open = self.connects_needed(&mut inner);
        Take::Wait(waiter, now, open)
    }

    pub(crate) fn idle_hint(&self) -> usize {
        self.inner.idle_hint.load(Ordering::Relaxed)
    }

    pub(crate) fn set_idle_hint(&self, n: usize) {
        self.inner.idle_hint.store(n, Ordering::Relaxed);
    }

    /// `Closed`, or the most recently returned idle connection, or `None`: wait.
    #[inline]
    fn take_idle(&self, inner: &mut Inner<C::Connection>) -> Option<Take<C::Connection>> {
        if inner.closed {
            return Some(Take::Closed);
        }
        let idle = inner.idle.pop()?;
        self.inner
            .idle_hint
            .store(inner.idle.len(), Ordering::Relaxed);
        inner.totals.acquired += 1;
        Some(Take::Idle(idle))
    }

    /// Starts the deadline watcher if none is running (first wait, or its runtime went away).
    pub(crate) fn ensure_watcher(self: &Arc<Self>) {
        if self.watcher_alive.load(Ordering::Acquire) {
            return;
        }
        if let Some(rt) = self.runtime() {
            if !self.watcher_alive.swap(true, Ordering::AcqRel) {
                rt.spawn(watch_deadlines(
                    Arc::downgrade(self),
                    self.watch.clone(),
                    self.watcher_alive.clone(),
                ));
            }
        }
    }

    /// Fails the waiters whose deadline has passed; returns the next deadline to watch.
    fn expire_waiters(&self) -> Option<Instant> {
        let now = self.clock.refresh();
        let mut inner = self.inner.lock();
        let mut wakers = Vec::new();
        let mut next: Option<Instant> = None;
        let mut i = 0;
        while i < inner.waiters.len() {
            let deadline = inner.waiters[i].deadline;
            if deadline > now {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
                i += 1;
                continue;
            }
            let waiter = inner.waiters.remove(i).expect("index in range");
            let cause = Self::wait_cause(&inner, inner.waiters.len() + 1, waiter.since, now);
            let mut slot = waiter.slot.lock();
            if let Slot::Waiting(w) = std::mem::replace(&mut *slot, Slot::TimedOut(cause)) {
                wakers.extend(w);
            }
            inner.totals.timed_out += 1;
            self.metrics.timeouts.increment(1);
        }
        inner.watch_until = next;
        drop(inner);
        for w in wakers {
            w.wake();
        }
        next
    }

    /// Reserves connects for waiters not yet covered by one in flight, within `max_size` and the
    /// storm guard. The caller spawns that many openers after unlocking.
    pub(crate) fn connects_needed(&self, inner: &mut Inner<C::Connection>) -> usize {
        let wanted = (inner.waiters.len() + inner.idle_deficit()).saturating_sub(inner.opening);
        let room = inner.max_size.saturating_sub(inner.size + inner.opening);
        let storm = self.config.max_connecting.saturating_sub(inner.opening);
        let n = wanted.min(room).min(storm);
        inner.opening += n;
        n
    }

    /// Spawns `n` connect tasks (already counted in `opening`).
    pub(crate) fn spawn_openers(self: &Arc<Self>, n: usize) {
        if n == 0 {
            return;
        }
        match self.runtime() {
            Some(rt) => {
                for _ in 0..n {
                    rt.spawn(super::opener::open(Arc::downgrade(self)));
                }
            }
            None => {
                // No runtime to connect on: give the reservations back (the acquire that asked
                // fails with `Error::NoRuntime`).
                let mut inner = self.inner.lock();
                inner.opening -= n;
            }
        }
    }

    /// A connection came back healthy and clean: hand it to the oldest waiter or make it idle.
    pub(crate) fn put(self: &Arc<Self>, mut conn: Conn<C::Connection>) {
        conn.extra.reused = true;
        let now = self.clock.now_ms();
        if conn.expired(now) {
            self.discard(conn, false, false);
            return;
        }
        let mut inner = self.inner.lock();
        if inner.closed || inner.size > inner.max_size {
            inner.size -= 1;
            inner.totals.closed += 1;
            let drained = inner.closed && inner.size == 0 && inner.opening == 0;
            drop(inner);
            self.metrics.closed.increment(1);
            drop(conn);
            if drained {
                self.drained.notify_waiters();
            }
            return;
        }
        let waker = self.hand_over(&mut inner, conn, now);
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Gives `conn` to the oldest waiter, or pushes it on the idle stack.
    fn hand_over(
        &self,
        inner: &mut Inner<C::Connection>,
        conn: Conn<C::Connection>,
        now_ms: u64,
    ) -> Option<Waker> {
        while let Some(waiter) = inner.waiters.pop_front() {
            let mut slot = waiter.slot.lock();
            if let Slot::Waiting(waker) = &mut *slot {
                let waker = waker.take();
                *slot = Slot::Served(conn);
                inner.totals.acquired += 1;
                return waker;
            }
        }
        inner.idle.push(Idle {
            conn,
            since_ms: now_ms,
        });
        self.inner
            .idle_hint
            .store(inner.idle.len(), Ordering::Relaxed);
        None
    }

    /// A new connection from a connect task.
    pub(crate) fn add_new(
        self: &Arc<Self>,
        raw: C::Connection,
        cancel: Option<Arc<dyn Cancel>>,
        connected_in: Duration,
    ) {
        let created = self.clock.refresh();
        let created_ms = self.clock.to_ms(created);
        let mut inner = self.inner.lock();
        inner.opening -= 1;
        let was_failing = inner.connect_failures > 0;
        inner.connect_failures = 0;
        inner.last_failure_at = None;
        inner.retry_at = None;
        self.refused_at_ms.store(0, Ordering::Relaxed);
        if was_failing {
            // Connect tasks still waiting out the backoff may go now.
            self.reachable.notify_waiters();
        }
        if inner.closed || inner.size >= inner.max_size {
            let drained = inner.closed && inner.size == 0 && inner.opening == 0;
            drop(inner);
            drop(raw);
            if drained {
                self.drained.notify_waiters();
            }
            return;
        }
        let expires_ms = match self.config.max_lifetime {
            Some(life) => {
                let cut = life.mul_f64(inner.rng.random::<f64>() * self.config.lifetime_jitter);
                created_ms.saturating_add(millis(life - cut))
            }
            None => u64::MAX,
        };
        inner.size += 1;
        inner.totals.created += 1;
        let conn = Conn {
            raw,
            created,
            expires_ms,
            extra: Box::new(Extra {
                reused: false,
                cancel,
            }),
        };
        let waker = self.hand_over(&mut inner, conn, created_ms);
        // This connect's reservation is free again: waiters beyond `max_connecting` (or a
        // `min_idle` deficit) get the next connect now, not at the next maintenance round.
        let open = self.connects_needed(&mut inner);
        drop(inner);
        self.metrics.connects.increment(1);
        self.metrics.connect_time.record(connected_in.as_secs_f64());
        if let Some(w) = waker {
            w.wake();
        }
        self.spawn_openers(open);
    }

    /// A connect attempt failed. Returns whether the task should retry after a backoff (someone
    /// still needs a connection); otherwise its reservation is released.
    pub(crate) fn connect_failed(&self, error: DriverError) -> bool {
        let mut inner = self.inner.lock();
        let (_, wakers) = self.count_connect_failure(&mut inner, error);
        let retry = !inner.closed && (!inner.waiters.is_empty() || inner.idle_deficit() > 0);
        if !retry {
            inner.opening -= 1;
            self.notify_if_drained(&inner);
        }
        drop(inner);
        for w in wakers {
            w.wake();
        }
        retry
    }

    /// A new connection failed its first checkout check (broken as soon as it was made): the
    /// connect did not really succeed. Counted as a failed connect, so that the next one waits
    /// out the backoff instead of replacing it at once, and waits name the cause.
    #[cold]
    pub(crate) fn born_broken(&self, error: DriverError) {
        let mut inner = self.inner.lock();
        // The connect itself reset the failure streak: carry on the streak of new connections
        // found broken, so the backoff grows.
        inner.born_broken += 1;
        inner.connect_failures = inner.connect_failures.max(inner.born_broken - 1);
        let (_, wakers) = self.count_connect_failure(&mut inner, error);
        drop(inner);
        for w in wakers {
            w.wake();
        }
    }

    /// A new connection passed its first checkout check: the streak of new connections found
    /// broken is over.
    #[cold]
    pub(crate) fn born_sound(&self) {
        let mut inner = self.inner.lock();
        inner.born_broken = 0;
    }

    /// Counts a failed connect: failure streak, backoff schedule, last error, metrics; ends the
    /// waits of fail-fast waiters if nothing could come back to them.
    fn count_connect_failure(
        &self,
        inner: &mut Inner<C::Connection>,
        error: DriverError,
    ) -> (Instant, Vec<Waker>) {
        let now = self.clock.refresh();
        let seed = self.next_seed();
        inner.connect_failures += 1;
        inner.totals.connect_failures += 1;
        self.refused_at_ms
            .store(self.clock.to_ms(now) + 1, Ordering::Relaxed);
        inner.last_connect_error = Some(error);
        inner.last_failure_at = Some(now);
        let delay = Backoff::new(self.config.backoff, seed)
            .skip(inner.connect_failures - 1)
            .next_delay();
        let retry_at = now + delay;
        inner.retry_at = Some(inner.retry_at.map_or(retry_at, |t| t.max(retry_at)));
        self.metrics.connect_failures.increment(1);
        // Nothing can come back to fail-fast waiters: tell them now.
        let wakers = if inner.size == 0 {
            self.fail_fast_waiters(inner, now)
        } else {
            Vec::new()
        };
        (now, wakers)
    }

    /// Ends the waits of fail-fast waiters with the connect failure as their cause.
    fn fail_fast_waiters(&self, inner: &mut Inner<C::Connection>, now: Instant) -> Vec<Waker> {
        let mut wakers = Vec::new();
        let mut i = 0;
        while i < inner.waiters.len() {
            if !inner.waiters[i].fail_fast {
                i += 1;
                continue;
            }
            let waiter = inner.waiters.remove(i).expect("index in range");
            let cause = Self::wait_cause(inner, inner.waiters.len() + 1, waiter.since, now);
            let mut slot = waiter.slot.lock();
            if let Slot::Waiting(w) = std::mem::replace(&mut *slot, Slot::TimedOut(cause)) {
                wakers.extend(w);
            }
            // The caller gets a timeout: count it as one, so the metric agrees with the error.
            inner.totals.timed_out += 1;
            self.metrics.timeouts.increment(1);
        }
        wakers
    }

    /// When the next connect may start (`None`: now), as the backoff after consecutive
    /// failures has it.
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.inner.lock().retry_at
    }

    /// The backend was just reached by other means (the cluster's health probe): forget the
    /// failure streak and let connect tasks waiting out the backoff go now.
    pub(crate) fn reached(&self) {
        let mut inner = self.inner.lock();
        inner.connect_failures = 0;
        inner.last_failure_at = None;
        inner.retry_at = None;
        self.refused_at_ms.store(0, Ordering::Relaxed);
        drop(inner);
        self.reachable.notify_waiters();
    }

    /// After a backoff: is the reserved connect still needed? If not, releases the reservation.
    pub(crate) fn still_wanted(&self) -> bool {
        let mut inner = self.inner.lock();
        let wanted = !inner.closed && (!inner.waiters.is_empty() || inner.idle_deficit() > 0);
        if !wanted {
            inner.opening -= 1;
            self.notify_if_drained(&inner);
        }
        wanted
    }

    fn notify_if_drained(&self, inner: &Inner<C::Connection>) {
        if inner.closed && inner.size == 0 && inner.opening == 0 {
            self.drained.notify_waiters();
        }
    }

    /// Closes a connection that leaves the pool. `broken` counts it as broken; `unacquire`
    /// takes back the acquire counted when it was handed out (it failed its checkout checks).
    pub(crate) fn discard(
        self: &Arc<Self>,
        conn: Conn<C::Connection>,
        broken: bool,
        unacquire: bool,
    ) {
        let mut inner = self.inner.lock();
        inner.size -= 1;
        inner.totals.closed += 1;
        if broken {
            inner.totals.broken += 1;
        }
        if unacquire {
            inner.totals.acquired -= 1;
        }
        let open = if inner.closed {
            0
        } else {
            self.connects_needed(&mut inner)
        };
        self.notify_if_drained(&inner);
        drop(inner);
        self.metrics.closed.increment(1);
        if broken {
            self.metrics.broken.increment(1);
        }
        drop(conn);
        self.spawn_openers(open);
    }

    /// A connection given up mid-statement: its work on the server is cancelled first (when the
    /// driver gave a handle), then it is closed. It keeps its place in the pool meanwhile, so
    /// no replacement opens while the server still works for it. At most `max_connecting`
    /// cancels run at once (each opens a short connection of its own); the others wait their
    /// turn, still holding their places.
    #[cold]
    #[inline(never)]
    pub(crate) fn discard_interrupted(self: &Arc<Self>, conn: Conn<C::Connection>) {
        let (Some(cancel), Some(rt)) = (conn.extra.cancel.clone(), self.runtime()) else {
            self.discard(conn, true, false);
            return;
        };
        let shared = self.clone();
        rt.spawn(async move {
            // Held: if the runtime shuts down mid-cancel, the connection is still closed.
            let held = Held::new(conn, &shared, false);
            let Ok(_turn) = shared.cancel_slots.clone().acquire_owned().await else {
                return;
            };
            let timeout = shared.config.connect_timeout;
            match tokio::time::timeout(timeout, cancel.cancel()).await {
                Ok(Ok(())) => {
                    tracing::debug!(pool = %shared.name(), "interrupted statement cancelled on the server");
                }
                Ok(Err(e)) => {
                    tracing::warn!(pool = %shared.name(), error = %e, "could not cancel an interrupted statement");
                }
                Err(_) => {
                    tracing::warn!(pool = %shared.name(), ?timeout, "cancelling an interrupted statement timed out");
                }
            }
            drop(held);
        });
    }

    /// A connection leaves the pool's accounting without being closed (detached by the user);
    /// its slot may serve a waiter through a new connect.
    pub(crate) fn forget(self: &Arc<Self>) {
        let mut inner = self.inner.lock();
        inner.size -= 1;
        let open = if inner.closed {
            0
        } else {
            self.connects_needed(&mut inner)
        };
        self.notify_if_drained(&inner);
        drop(inner);
        self.spawn_openers(open);
    }

    /// Consecutive failed connects so far (0 when the last connect succeeded).
    pub(crate) fn connect_failures(&self) -> u64 {
        self.inner.lock().connect_failures
    }

    /// A cancelled acquire stops waiting: returns a connection that raced in (to be passed
    /// on), or leaves the queue.
    pub(crate) fn withdraw(
        &self,
        waiter: &Arc<Waiter<C::Connection>>,
    ) -> Option<Conn<C::Connection>> {
        let mut inner = self.inner.lock();
        let mut slot = waiter.slot.lock();
        match std::mem::replace(&mut *slot, Slot::Done) {
            Slot::Served(conn) => Some(conn),
            Slot::Waiting(_) => {
                drop(slot);
                if let Some(i) = inner.waiters.iter().position(|w| Arc::ptr_eq(w, waiter)) {
                    inner.waiters.remove(i);
                }
                None
            }
            Slot::TimedOut(_) | Slot::Closed | Slot::Done => None,
        }
    }

    /// A served connection that its waiter no longer wants goes to the next one.
    pub(crate) fn pass_on(self: &Arc<Self>, conn: Conn<C::Connection>) {
        {
            let mut inner = self.inner.lock();
            inner.totals.acquired -= 1;
        }
        self.put(conn);
    }

    /// Why a wait that began at `since` ends at `now` without a connection.
    fn wait_cause(
        inner: &Inner<C::Connection>,
        waiters: usize,
        since: Instant,
        now: Instant,
    ) -> WaitCause {
        let in_use = inner.size - inner.idle.len();
        if inner.connect_failures > 0 {
            if let Some(e) = &inner.last_connect_error {
                let last_error = e.clone();
                let failures = inner.connect_failures;
                // Only a connect that failed while this caller waited is this wait's failure;
                // otherwise the pool was still waiting out the backoff of earlier ones.
                return if inner.last_failure_at.is_some_and(|t| t >= since) {
                    WaitCause::ConnectFailing {
                        last_error,
                        failures,
                    }
                } else {
                    WaitCause::BackingOff {
                        last_error,
                        failures,
                        retry_in: inner
                            .retry_at
                            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now)),
                    }
                };
            }
        }
        if inner.opening > 0 && in_use < inner.max_size {
            return WaitCause::Connecting {
                in_flight: inner.opening,
            };
        }
        WaitCause::Saturated {
            in_use,
            max_size: inner.max_size,
            waiters,
        }
    }

    /// Closes the pool: idle connections now, checked-out ones on return; waiters fail.
    pub(crate) fn close(&self) {
        self.watch.notify_one();
        let mut inner = self.inner.lock();
        if inner.closed {
            return;
        }
        inner.closed = true;
        let idle = std::mem::take(&mut inner.idle);
        self.set_idle_hint(0);
        inner.size -= idle.len();
        inner.totals.closed += idle.len() as u64;
        let mut wakers = Vec::with_capacity(inner.waiters.len());
        for waiter in inner.waiters.drain(..) {
            let mut slot = waiter.slot.lock();
            if let Slot::Waiting(w) = std::mem::replace(&mut *slot, Slot::Closed) {
                wakers.extend(w);
            }
        }
        self.notify_if_drained(&inner);
        drop(inner);
        self.metrics.closed.increment(idle.len() as u64);
        drop(idle);
        for w in wakers {
            w.wake();
        }
        tracing::info!(pool = %self.name(), "pool closed");
    }

    pub(crate) fn closed_error(&self) -> Error {
        Error::Closed {
            pool: self.name().clone(),
        }
    }

    pub(crate) fn state(&self) -> State {
        let inner = self.inner.lock();
        let waited = self.waits.summary(0).count;
        let state = State {
            name: self.name().clone(),
            size: inner.size,
            idle: inner.idle.len(),
            in_use: inner.size - inner.idle.len(),
            waiters: inner.waiters.len(),
            connecting: inner.opening,
            max_size: inner.max_size,
            closed: inner.closed,
            totals: Totals {
                waited,
                ..inner.totals
            },
            acquire_wait: Default::default(),
        };
        drop(inner);
        let immediate = state.totals.acquired.saturating_sub(waited);
        let state = State {
            acquire_wait: self.waits.summary(immediate),
            ..state
        };
        self.metrics.publish(&state);
        state
    }
}

/// The deadline watcher: one timer per pool instead of one per waiting acquire.
///
/// Registering and cancelling a timer for every wait costs more than the rest of a contended
/// acquire, and waits usually end long before their deadline. So waiters carry only their
/// deadline and this task sleeps until the earliest one, failing the waiters whose time has come.
/// A waiter with an earlier deadline than the one watched (a shorter per-call timeout) wakes it.
/// If the task dies with its runtime, `watcher_alive` drops and the next wait starts another.
/// It holds the pool only weakly; dropping the pool wakes it to exit.
async fn watch_deadlines<C: Connector>(
    pool: std::sync::Weak<Shared<C>>,
    watch: Arc<Notify>,
    alive: Arc<AtomicBool>,
) {
    struct Alive(Arc<AtomicBool>);
    impl Drop for Alive {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let _alive = Alive(alive);
    loop {
        let notified = watch.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = match pool.upgrade() {
            Some(shared) if !shared.inner.lock().closed => shared.expire_waiters(),
            _ => return,
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = &mut notified => {}
                }
            }
            None => notified.await,
        }
    }
}

impl<C: Connector> Drop for Shared<C> {
    fn drop(&mut self) {
        self.watch.notify_one();
    }
}
