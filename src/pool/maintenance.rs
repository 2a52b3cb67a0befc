//! The pool's background task: reaps idle and expired connections, keeps `min_idle` filled and
//! publishes gauges, every `maintenance_interval`.
//!
//! It holds only a weak reference, so dropping every handle to a pool ends it.

use std::sync::Weak;
use std::time::Duration;

use crate::driver::Connector;

use super::config::CheckoutTest;
use super::shared::Shared;

pub(crate) async fn run<C: Connector>(pool: Weak<Shared<C>>) {
    let mut last_round = tokio::time::Instant::now();
    loop {
        let (interval, clock_every) = match pool.upgrade() {
            Some(shared) => (
                shared.config.maintenance_interval,
                clock_tick(&shared.config),
            ),
            None => return,
        };
        tokio::time::sleep(interval.min(clock_every)).await;
        let Some(shared) = pool.upgrade() else {
            return;
        };
        // The coarse clock must stay fresh whatever the interval: returns and checkouts judge
        // lifetimes and idle times by it.
        let now = shared.clock.refresh();
        if now.duration_since(last_round) < interval {
            continue;
        }
        last_round = now;
        if !tick(&shared) {
            return;
        }
    }
}

/// How often the coarse clock is moved: at least every second, and ten times per the shortest
/// time limit judged by it.
fn clock_tick(config: &super::config::Config) -> Duration {
    let after_idle = match config.checkout_test {
        CheckoutTest::AfterIdle(t) => Some(t),
        CheckoutTest::Never | CheckoutTest::Always => None,
    };
    [config.idle_timeout, config.max_lifetime, after_idle]
        .into_iter()
        .flatten()
        .map(|limit| limit / 10)
        .fold(Duration::from_secs(1), Duration::min)
        .max(Duration::from_millis(10))
}

/// One round. Returns false once the pool is closed.
pub(crate) fn tick<C: Connector>(shared: &std::sync::Arc<Shared<C>>) -> bool {
    let now = shared.clock.to_ms(shared.clock.refresh());
    let idle_timeout = shared.config.idle_timeout.map(|d| d.as_millis() as u64);
    let mut inner = shared.inner.lock();
    if inner.closed {
        return false;
    }
    // Oldest-returned connections sit at the bottom of the idle stack.
    let mut reaped = Vec::new();
    let mut keep = Vec::with_capacity(inner.idle.len());
    // `min_idle` counts idle connections: only those beyond it may idle out.
    let mut surplus = inner.idle.len().saturating_sub(inner.min_idle);
    for idle in inner.idle.drain(..) {
        let idle_out = idle_timeout.is_some_and(|t| now.saturating_sub(idle.since_ms) >= t);
        if idle.conn.expired(now) || (idle_out && surplus > 0) {
            surplus = surplus.saturating_sub(1);
            reaped.push(idle);
        } else {
            keep.push(idle);
        }
    }
    inner.idle = keep;
    shared.set_idle_hint(inner.idle.len());
    inner.size -= reaped.len();
    inner.totals.closed += reaped.len() as u64;
    let open = shared.connects_needed(&mut inner);
    drop(inner);
    if !reaped.is_empty() {
        tracing::debug!(pool = %shared.name(), closed = reaped.len(), "reaped idle or expired connections");
        shared.metrics.closed.increment(reaped.len() as u64);
    }
    drop(reaped);
    shared.spawn_openers(open);
    shared.state();
    true
}
