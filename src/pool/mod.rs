//! The node pool: a fast, fair connection pool for one backend.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), seawall::Error> {
//! use seawall::pool::Pool;
//! use seawall::sim::SimConnector;
//!
//! let pool = Pool::builder(SimConnector::default()).name("primary").max_size(4).build()?;
//! let mut conn = pool.get().await?;          // a `Pooled` guard
//! conn.query("SELECT 1").await.unwrap();     // derefs to the driver's connection
//! drop(conn);                                // back to the pool
//! assert_eq!(pool.state().idle, 1);
//! # Ok(()) }
//! ```
//!
//! # How an acquire goes
//!
//! 1. Under one short lock, pop the most recently returned idle connection. That is the whole
//!    fast path: one lock, one clock read, no allocation.
//! 2. Otherwise join the FIFO queue of waiters and, if the pool has room, reserve a connect
//!    (at most `max_connecting` at once: the storm guard). A connection that becomes free is
//!    handed directly to the oldest waiter, so nobody starves while others cycle.
//! 3. Check what was obtained: [`Connector::has_broken`], the jittered max lifetime, the idle
//!    timeout, and a [`Connector::ping`] if it sat idle past the [`CheckoutTest`] threshold. A
//!    failed check discards it and the acquire goes on until its deadline.
//!
//! An acquire that cannot be served fails at its deadline with [`Error::Timeout`], whose
//! [`WaitCause`] says whether the pool was saturated, still connecting, or
//! unable to connect (with the last connect error). Dropping an acquire future at any point
//! leaks nothing: a connection that was already on its way to it goes to the next waiter.

mod config;
mod maintenance;
mod metrics;
mod opener;
mod pooled;
mod shared;
pub(crate) mod state;

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::driver::Connector;
use crate::error::{ConfigError, DriverError, Error, TimeoutError, WaitCause};

pub use config::{Builder, CheckoutTest, MetricNames};
pub use opener::ConnectTimedOut;
pub use pooled::Pooled;
pub use state::{State, Totals, WaitSummary};

pub(crate) use shared::deadline_after;
pub(crate) use shared::ResizeHook;
use shared::{Conn, Held, Shared, Take, WaitEnd, Waiter};

/// A pool of connections to one backend. Cloning is cheap and shares the pool.
pub struct Pool<C: Connector> {
    shared: Arc<Shared<C>>,
}

impl<C: Connector> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Pool {
            shared: self.shared.clone(),
        }
    }
}

impl<C: Connector> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", self.shared.name())
            .finish_non_exhaustive()
    }
}

impl<C: Connector> Pool<C> {
    /// Starts configuring a pool over `connector`.
    pub fn builder(connector: C) -> Builder<C> {
        Builder::new(connector)
    }

    pub(crate) fn from_parts(connector: C, config: config::Config) -> Self {
        let shared = Arc::new(Shared::new(connector, config));
        shared.ensure_maintenance();
        Pool { shared }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// The driver behind the pool.
    pub fn connector(&self) -> &C {
        &self.shared.connector
    }

    /// Gets a connection, waiting at most the pool's `acquire_timeout`.
    pub async fn get(&self) -> Result<Pooled<C>, Error> {
        self.get_timeout(self.shared.config.acquire_timeout).await
    }

    /// Gets a connection, waiting at most `timeout` (instead of the pool's `acquire_timeout`).
    pub async fn get_timeout(&self, timeout: Duration) -> Result<Pooled<C>, Error> {
        self.acquire(timeout, false).await
    }

    /// Like [`Pool::get_timeout`], but gives up as soon as a connect fails while the pool has
    /// no connection that could be returned: a router would rather try another node.
    pub(crate) async fn get_or_refuse(&self, timeout: Duration) -> Result<Pooled<C>, Error> {
        self.acquire(timeout, true).await
    }

    async fn acquire(&self, timeout: Duration, fail_fast: bool) -> Result<Pooled<C>, Error> {
        let shared = &self.shared;
        // Set on the first wait or ping, so the fast path never reads the real clock.
        let mut started: Option<Instant> = None;
        loop {
            // After a connection failed its checks, the next wait gets only what is left.
            let budget = match started {
                Some(start) => timeout.saturating_sub(start.elapsed()),
                None => timeout,
            };
            let take = poll_fn(|cx| Poll::Ready(shared.take(budget, cx.waker(), fail_fast))).await;
            let (conn, idle_since) = match take {
                Take::Idle(idle) => (idle.conn, Some(idle.since_ms)),
                Take::Closed => return Err(shared.closed_error()),
                Take::Wait(waiter, now, open) => {
                    if shared.runtime().is_none() {
                        // No runtime, now or before: no connect could start and no timer could
                        // end the wait. Leave the queue and say so.
                        if let Some(conn) = shared.withdraw(&waiter) {
                            shared.pass_on(conn);
                        }
                        shared.spawn_openers(open);
                        return Err(Error::NoRuntime {
                            pool: shared.name().clone(),
                        });
                    }
                    shared.ensure_maintenance();
                    shared.ensure_watcher();
                    shared.spawn_openers(open);
                    let start = *started.get_or_insert(now);
                    let span = tracing::debug_span!("seawall.acquire", pool = %shared.name());
                    let conn = self.wait(waiter, start, timeout).instrument(span).await?;
                    (conn, None)
                }
            };
            match self.check(conn, idle_since, &mut started, timeout).await {
                Ok(conn) => {
                    match started {
                        Some(start) => {
                            let wait = shared.clock.refresh().duration_since(start);
                            // This future's address tells concurrent recorders apart.
                            let shard = (&started as *const Option<Instant> as usize) >> 8;
                            shared.waits.record(wait, shard);
                            shared.metrics.acquire_wait.record(wait.as_secs_f64());
                        }
                        None => shared.metrics.acquire_wait.record(0.0),
                    }
                    shared.metrics.acquired.increment(1);
                    return Ok(Pooled::new(conn, shared.clone()));
                }
                Err(Some(e)) => {
                    shared.inner.lock().totals.timed_out += 1;
                    shared.metrics.timeouts.increment(1);
                    return Err(e);
                }
                Err(None) => {
                    started.get_or_insert_with(|| shared.clock.refresh());
                }
            }
        }
    }

    /// Checkout checks: broken, expired, and a ping if the connection sat idle past the
    /// threshold. `Err(None)`: the connection was discarded, try again; `Err(Some(_))`: the
    /// ping hung until the deadline.
    ///
    /// Idle timeout is not checked here: it exists to shrink an unused pool, which the
    /// maintenance task does; a caller who needs a connection now is better served by an idle
    /// one (pinged if suspect) than by a new connect.
    async fn check(
        &self,
        mut conn: Conn<C::Connection>,
        idle_since_ms: Option<u64>,
        started: &mut Option<Instant>,
        timeout: Duration,
    ) -> Result<Conn<C::Connection>, Option<Error>> {
        let shared = &self.shared;
        let now = shared.clock.now_ms();
        let broken = shared.connector.has_broken(&mut conn.raw);
        if broken || conn.expired(now) {
            if !conn.extra.reused {
                // Broken (or expired) before its first use: the connect did not really work.
                // Replacing it at once would be a connect storm; back off and say why.
                shared.born_broken(crate::error::DriverError::new(BornBroken { broken }));
            }
            shared.discard(conn, broken, true);
            return Err(None);
        }
        if !conn.extra.reused {
            shared.born_sound();
        }
        let idle_for = idle_since_ms.map(|since| Duration::from_millis(now.saturating_sub(since)));
        let ping = match (shared.config.checkout_test, idle_for) {
            (_, None) | (CheckoutTest::Never, _) => false,
            (CheckoutTest::Always, Some(_)) => true,
            (CheckoutTest::AfterIdle(t), Some(idle)) => idle >= t,
        };
        if !ping {
            return Ok(conn);
        }
        let began = *started.get_or_insert_with(|| shared.clock.refresh());
        let deadline = shared::deadline_after(began, timeout);
        let mut held = Held::new(conn, shared, true);
        let span = tracing::debug_span!("seawall.recycle", pool = %shared.name(), step = "ping");
        let pinged = tokio::time::timeout_at(deadline, shared.connector.ping(held.raw_mut()))
            .instrument(span)
            .await;
        match pinged {
            Ok(Ok(())) => Ok(held.keep()),
            Ok(Err(e)) => {
                tracing::debug!(pool = %shared.name(), error = %e, "ping on checkout failed");
                drop(held);
                Err(None)
            }
            Err(_) => {
                drop(held);
                Err(Some(Error::Timeout(TimeoutError {
                    pool: shared.name().clone(),
                    node: None,
                    waited: began.elapsed(),
                    timeout,
                    cause: WaitCause::PingHung,
                })))
            }
        }
    }

    /// Waits in the queue until served, closed, or failed by the deadline watcher.
    async fn wait(
        &self,
        waiter: Arc<Waiter<C::Connection>>,
        start: Instant,
        timeout: Duration,
    ) -> Result<Conn<C::Connection>, Error> {
        let shared = &self.shared;
        let mut guard = WaitGuard {
            shared,
            waiter: Some(waiter),
        };
        let end = poll_fn(|cx| guard.waiter.as_ref().expect("waiting").poll(cx)).await;
        guard.waiter = None;
        match end {
            WaitEnd::Served(conn) => Ok(conn),
            WaitEnd::Closed => Err(shared.closed_error()),
            WaitEnd::TimedOut(cause) => Err(Error::Timeout(TimeoutError {
                pool: shared.name().clone(),
                node: None,
                waited: shared.clock.refresh().saturating_duration_since(start),
                timeout,
                cause,
            })),
        }
    }

    /// A snapshot of the pool's sizes, counters and acquire waits.
    pub fn state(&self) -> State {
        self.shared.state()
    }

    /// The waits of the acquires that waited, so far, for figures over an interval (the
    /// others are `acquired - waited` in [`State::totals`]).
    pub(crate) fn wait_counts(&self) -> crate::histogram::Counts {
        self.shared.waits.counts()
    }

    /// Changes the maximum size at run time. Growing lets waiters connect at once; shrinking
    /// closes idle connections now and checked-out ones as they return, until the pool fits.
    /// In a [`Cluster`](crate::Cluster), the node's admission gate follows: a limit sized after
    /// the pool (the default limiters, [`LimiterKind::PoolSize`](crate::cluster::LimiterKind))
    /// takes the new size as its maximum, a queue sized after it (`shed_load`) its new depth,
    /// and the node's load model its new capacity.
    pub fn set_max_size(&self, max_size: usize) -> Result<(), ConfigError> {
        if max_size == 0 {
            return Err(ConfigError::new("max_size", "must be at least 1"));
        }
        let shared = &self.shared;
        let mut inner = shared.inner.lock();
        if inner.min_idle > max_size {
            return Err(ConfigError::new(
                "max_size",
                format!(
                    "({max_size}) must not be below min_idle ({})",
                    inner.min_idle
                ),
            ));
        }
        inner.max_size = max_size;
        let excess = inner.size.saturating_sub(max_size).min(inner.idle.len());
        // Close the least recently used first: the bottom of the idle stack.
        let closing: Vec<_> = inner.idle.drain(..excess).collect();
        shared.set_idle_hint(inner.idle.len());
        inner.size -= closing.len();
        inner.totals.closed += closing.len() as u64;
        let open = if inner.closed {
            0
        } else {
            shared.connects_needed(&mut inner)
        };
        drop(inner);
        shared.metrics.closed.increment(closing.len() as u64);
        drop(closing);
        shared.spawn_openers(open);
        for hook in shared.resize_hooks.lock().iter() {
            hook(max_size);
        }
        Ok(())
    }

    /// Calls `hook` with the new maximum size after every [`Pool::set_max_size`]: what is sized
    /// after the pool (a cluster node's admission gate) follows it.
    pub(crate) fn on_resize(&self, hook: ResizeHook) {
        self.shared.resize_hooks.lock().push(hook);
    }

    /// Closes the pool and waits until every connection is closed: new acquires and waiters
    /// fail with [`Error::Closed`], idle connections close now, checked-out ones when they are
    /// returned, connects in flight are dropped when they finish.
    pub async fn close(&self) {
        let shared = &self.shared;
        shared.close();
        loop {
            let drained = shared.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let inner = shared.inner.lock();
                if inner.size == 0 && inner.opening == 0 {
                    return;
                }
            }
            drained.await;
        }
    }

    /// The error of the last failed connect, while connects are failing (a successful connect
    /// clears it): why the pool cannot open connections.
    pub fn connect_error(&self) -> Option<DriverError> {
        let inner = self.shared.inner.lock();
        (inner.connect_failures > 0)
            .then(|| inner.last_connect_error.clone())
            .flatten()
    }

    /// The current maximum size (cheaper than [`Pool::state`]).
    pub fn max_size(&self) -> usize {
        self.shared.inner.lock().max_size
    }

    /// Connections idle right now, as last published beside the lock: a lock-free hint for
    /// routers, exact only when the pool is quiet.
    pub fn idle_hint(&self) -> usize {
        self.shared.idle_hint()
    }

    /// Closes every idle connection now: after the backend restarted or failed over, the
    /// connections opened before are dead or talk to a server in another role, and handing
    /// them out would fail the next borrowers one by one. New ones are opened as needed.
    pub fn purge_idle(&self) {
        let shared = &self.shared;
        let mut inner = shared.inner.lock();
        let purged = std::mem::take(&mut inner.idle);
        inner.size -= purged.len();
        inner.totals.closed += purged.len() as u64;
        let open = if inner.closed {
            0
        } else {
            shared.connects_needed(&mut inner)
        };
        drop(inner);
        shared.set_idle_hint(0);
        if !purged.is_empty() {
            tracing::info!(pool = %shared.name(), closed = purged.len(), "idle connections purged");
            shared.metrics.closed.increment(purged.len() as u64);
        }
        drop(purged);
        shared.spawn_openers(open);
    }

    /// Whether the last connect attempt failed, less than the backoff's maximum step ago (the
    /// backend refuses or is unreachable). A router uses it to send work elsewhere instead of
    /// waiting on a pool that cannot grow; once the window passes, work is tried here again
    /// (and a new failure opens a new window).
    pub fn is_refusing_connects(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let shared = &self.shared;
        match shared.refused_at_ms.load(Relaxed) {
            0 => false,
            at => {
                let window =
                    u64::try_from(shared.config.backoff.max.as_millis()).unwrap_or(u64::MAX);
                shared.clock.now_ms() < (at - 1).saturating_add(window)
            }
        }
    }

    /// Someone just reached the backend (the cluster's health probe): forgets the failure
    /// streak and its backoff, so that waiting connects start now.
    pub(crate) fn reached(&self) {
        self.shared.reached();
    }

    /// Consecutive failed connects (0 once one succeeds or the backend is reached).
    pub(crate) fn connect_failures(&self) -> u64 {
        self.shared.connect_failures()
    }

    /// Whether [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.inner.lock().closed
    }
}

/// A new connection that failed its first checkout check: the driver said it was broken, or it
/// was already past its lifetime.
#[derive(Debug)]
struct BornBroken {
    broken: bool,
}

impl std::fmt::Display for BornBroken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.broken {
            f.write_str("a new connection was broken at its first checkout (Connector::has_broken)")
        } else {
            f.write_str("a new connection was past its max_lifetime at its first checkout")
        }
    }
}

impl std::error::Error for BornBroken {}

/// Withdraws a waiter whose acquire future is dropped, passing on a connection that raced in.
struct WaitGuard<'a, C: Connector> {
    shared: &'a Arc<Shared<C>>,
    waiter: Option<Arc<Waiter<C::Connection>>>,
}

impl<C: Connector> Drop for WaitGuard<'_, C> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            if let Some(conn) = self.shared.withdraw(&waiter) {
                self.shared.pass_on(conn);
            }
        }
    }
}
