//! The pool's background task: reaps idle and expired connections, keeps `min_idle` filled and
//! publishes gauges, every `maintenance_interval`.
//!
//! It holds only a weak reference, so dropping every handle to a pool ends it.

use std::sync::Weak;

use crate::driver::Connector;

use super::shared::Shared;

pub(crate) async fn run<C: Connector>(pool: Weak<Shared<C>>) {
    loop {
        let interval = match pool.upgrade() {
            Some(shared) => shared.config.maintenance_interval,
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(shared) = pool.upgrade() else {
            return;
        };
        if !tick(&shared) {
            return;
        }
    }
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
    let mut surplus = inner.size.saturating_sub(inner.min_idle);
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
