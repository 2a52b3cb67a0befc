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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::driver::Connector;
use crate::error::{DriverError, Error, WaitCause};
use crate::metrics::PoolMetrics;

use super::config::Config;
use super::state::{State, Totals, WaitHistogram};

/// A connection with its bookkeeping.
pub(crate) struct Conn<T> {
    pub(crate) raw: T,
    pub(crate) created: Instant,
    /// When the jittered max lifetime runs out.
    pub(crate) expires: Option<Instant>,
}

impl<T> Conn<T> {
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }
}

pub(crate) struct Idle<T> {
    pub(crate) conn: Conn<T>,
    pub(crate) since: Instant,
}

/// Where a waiting acquire stands.
pub(crate) enum Slot<T> {
    Waiting(Option<Waker>),
    Served(Conn<T>),
    Closed,
    Done,
}

pub(crate) struct Waiter<T> {
    slot: Mutex<Slot<T>>,
}

impl<T> Waiter<T> {
    pub(crate) fn new() -> Self {
        Waiter {
            slot: Mutex::new(Slot::Waiting(None)),
        }
    }

    /// Ready with the served connection or `None` if the pool closed.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Option<Conn<T>>> {
        let mut slot = self.slot.lock();
        match &mut *slot {
            Slot::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Served(_) => match std::mem::replace(&mut *slot, Slot::Done) {
                Slot::Served(conn) => Poll::Ready(Some(conn)),
                _ => unreachable!(),
            },
            Slot::Closed | Slot::Done => Poll::Ready(None),
        }
    }
}

/// What a waiter found when it stopped waiting on its own (deadline or cancellation).
pub(crate) enum Withdrawn<T> {
    /// A connection reached it first.
    Served(Conn<T>),
    /// The pool closed.
    Closed,
    /// It left the queue; this is why it had been waiting.
    Left(WaitCause),
}

pub(crate) struct Inner<T> {
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
    pub(crate) totals: Totals,
    rng: SmallRng,
}

/// What a try at the idle set gave.
pub(crate) enum Take<T> {
    Idle(Idle<T>),
    Wait(Arc<Waiter<T>>, usize),
    Closed,
}

pub(crate) struct Shared<C: Connector> {
    pub(crate) connector: C,
    pub(crate) config: Config,
    pub(crate) inner: Mutex<Inner<C::Connection>>,
    pub(crate) waits: WaitHistogram,
    pub(crate) metrics: PoolMetrics,
    pub(crate) drained: Notify,
    runtime: OnceLock<Handle>,
    maintenance_started: AtomicBool,
    seeds: AtomicU64,
}

impl<C: Connector> Shared<C> {
    pub(crate) fn new(connector: C, config: Config) -> Self {
        let seed = config
            .seed
            .unwrap_or_else(|| SmallRng::from_os_rng().random());
        let inner = Inner {
            idle: Vec::with_capacity(config.max_size),
            waiters: VecDeque::new(),
            size: 0,
            opening: 0,
            max_size: config.max_size,
            min_idle: config.min_idle,
            closed: false,
            connect_failures: 0,
            last_connect_error: None,
            totals: Totals::default(),
            rng: SmallRng::seed_from_u64(seed),
        };
        Shared {
            metrics: PoolMetrics::new(&config.name),
            connector,
            inner: Mutex::new(inner),
            waits: WaitHistogram::default(),
            drained: Notify::new(),
            runtime: OnceLock::new(),
            maintenance_started: AtomicBool::new(false),
            seeds: AtomicU64::new(seed),
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

    /// Pops an idle connection, or queues a waiter and says how many connects to start.
    pub(crate) fn take(&self) -> Take<C::Connection> {
        let mut inner = self.inner.lock();
        if inner.closed {
            return Take::Closed;
        }
        if let Some(idle) = inner.idle.pop() {
            inner.totals.acquired += 1;
            return Take::Idle(idle);
        }
        let waiter = Arc::new(Waiter::new());
        inner.waiters.push_back(waiter.clone());
        let open = self.connects_needed(&mut inner);
        Take::Wait(waiter, open)
    }

    /// Reserves connects for waiters not yet covered by one in flight, within `max_size` and the
    /// storm guard. The caller spawns that many openers after unlocking.
    pub(crate) fn connects_needed(&self, inner: &mut Inner<C::Connection>) -> usize {
        let wanted = (inner.waiters.len() + inner.min_idle.saturating_sub(inner.size))
            .saturating_sub(inner.opening);
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
                // No runtime to connect on: give the reservations back; waiters fail at their
                // deadline with the pool's state as the cause.
                let mut inner = self.inner.lock();
                inner.opening -= n;
            }
        }
    }

    /// A connection came back healthy and clean: hand it to the oldest waiter or make it idle.
    pub(crate) fn put(self: &Arc<Self>, conn: Conn<C::Connection>) {
        let now = Instant::now();
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
        let waker = Self::hand_over(&mut inner, conn, now);
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Gives `conn` to the oldest waiter, or pushes it on the idle stack.
    fn hand_over(
        inner: &mut Inner<C::Connection>,
        conn: Conn<C::Connection>,
        now: Instant,
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
        inner.idle.push(Idle { conn, since: now });
        None
    }

    /// A new connection from a connect task.
    pub(crate) fn add_new(self: &Arc<Self>, raw: C::Connection, connected_in: Duration) {
        let created = Instant::now();
        let mut inner = self.inner.lock();
        inner.opening -= 1;
        inner.connect_failures = 0;
        if inner.closed || inner.size >= inner.max_size {
            let drained = inner.closed && inner.size == 0 && inner.opening == 0;
            drop(inner);
            drop(raw);
            if drained {
                self.drained.notify_waiters();
            }
            return;
        }
        let expires = self.config.max_lifetime.map(|life| {
            let cut = life.mul_f64(inner.rng.random::<f64>() * self.config.lifetime_jitter);
            created + (life - cut)
        });
        inner.size += 1;
        inner.totals.created += 1;
        let conn = Conn {
            raw,
            created,
            expires,
        };
        let waker = Self::hand_over(&mut inner, conn, created);
        drop(inner);
        self.metrics.connects.increment(1);
        self.metrics.connect_time.record(connected_in.as_secs_f64());
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// A connect attempt failed. Returns whether the task should retry after a backoff (someone
    /// still needs a connection); otherwise its reservation is released.
    pub(crate) fn connect_failed(&self, error: DriverError) -> bool {
        let mut inner = self.inner.lock();
        inner.connect_failures += 1;
        inner.totals.connect_failures += 1;
        inner.last_connect_error = Some(error);
        self.metrics.connect_failures.increment(1);
        let retry = !inner.closed && (!inner.waiters.is_empty() || inner.size < inner.min_idle);
        if !retry {
            inner.opening -= 1;
            self.notify_if_drained(&inner);
        }
        retry
    }

    /// After a backoff: is the reserved connect still needed? If not, releases the reservation.
    pub(crate) fn still_wanted(&self) -> bool {
        let mut inner = self.inner.lock();
        let wanted = !inner.closed && (!inner.waiters.is_empty() || inner.size < inner.min_idle);
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

    /// A connection leaves the pool's accounting without being closed (detached by the user).
    pub(crate) fn forget(&self) {
        let mut inner = self.inner.lock();
        inner.size -= 1;
        self.notify_if_drained(&inner);
    }

    /// Stops waiting: takes a connection that raced in, or leaves the queue and says why it had
    /// been waiting.
    /// `timed_out` counts the acquire as failed at its deadline when it leaves empty-handed.
    pub(crate) fn withdraw(
        &self,
        waiter: &Arc<Waiter<C::Connection>>,
        timed_out: bool,
    ) -> Withdrawn<C::Connection> {
        let mut inner = self.inner.lock();
        let mut slot = waiter.slot.lock();
        match std::mem::replace(&mut *slot, Slot::Done) {
            Slot::Served(conn) => Withdrawn::Served(conn),
            Slot::Closed => Withdrawn::Closed,
            Slot::Done => Withdrawn::Closed,
            Slot::Waiting(_) => {
                drop(slot);
                if let Some(i) = inner.waiters.iter().position(|w| Arc::ptr_eq(w, waiter)) {
                    inner.waiters.remove(i);
                }
                if timed_out {
                    inner.totals.timed_out += 1;
                    self.metrics.timeouts.increment(1);
                }
                Withdrawn::Left(Self::wait_cause(&inner, inner.waiters.len() + 1))
            }
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

    fn wait_cause(inner: &Inner<C::Connection>, waiters: usize) -> WaitCause {
        let in_use = inner.size - inner.idle.len();
        if inner.connect_failures > 0 {
            if let Some(e) = &inner.last_connect_error {
                return WaitCause::ConnectFailing {
                    last_error: e.clone(),
                    failures: inner.connect_failures,
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
        let mut inner = self.inner.lock();
        if inner.closed {
            return;
        }
        inner.closed = true;
        let idle = std::mem::take(&mut inner.idle);
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
