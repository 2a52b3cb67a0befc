//! Connect tasks: at most `max_connecting` at once, retrying with jittered backoff while someone
//! still needs a connection.
//!
//! Connects run in their own tasks rather than in the caller's. A caller that gives up (timeout,
//! cancellation) does not waste a half-made connection, and a new connection goes to the oldest
//! waiter, not to whoever happened to start the connect.

use std::sync::Weak;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::driver::Connector;
use crate::error::DriverError;

use super::shared::Shared;

/// A connect that did not finish within `connect_timeout`.
#[derive(Debug)]
pub struct ConnectTimedOut(pub Duration);

impl std::fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connect timed out after {:?}", self.0)
    }
}

impl std::error::Error for ConnectTimedOut {}

/// Opens one connection for a reservation already counted in `opening`.
///
/// After a failure the task waits out the pool's backoff and tries again while someone still
/// needs a connection. The backoff is one schedule for the whole pool, anchored at the last
/// failure: a task started later (for a new waiter) waits only what is left of it, never a
/// fresh sleep sized by the failure count, and every waiting task goes at once when the
/// backend is reached again (a connect of another task, or the cluster's health probe).
pub(crate) async fn open<C: Connector>(pool: Weak<Shared<C>>) {
    loop {
        if !wait_turn(&pool).await {
            return;
        }
        let Some(shared) = pool.upgrade() else {
            return;
        };
        let timeout = shared.config.connect_timeout;
        let span = tracing::debug_span!("seawall.connect", pool = %shared.name());
        let started = Instant::now();
        let connector = &shared.connector;
        let connect = async {
            let mut raw = connector.connect().await?;
            let cancel = connector.cancel_handle(&mut raw).await;
            Ok::<_, C::Error>((raw, cancel))
        };
        let result = tokio::time::timeout(timeout, connect)
            .instrument(span)
            .await;
        let error = match result {
            Ok(Ok((raw, cancel))) => {
                shared.add_new(raw, cancel, started.elapsed());
                return;
            }
            Ok(Err(e)) => DriverError::new(e),
            Err(_) => DriverError::new(ConnectTimedOut(timeout)),
        };
        tracing::warn!(pool = %shared.name(), error = %error, "connect failed");
        if !shared.connect_failed(error) {
            return;
        }
    }
}

/// Waits until the pool's backoff lets a connect start. `false`: the reserved connect is no
/// longer wanted (its reservation is released) or the pool is gone.
async fn wait_turn<C: Connector>(pool: &Weak<Shared<C>>) -> bool {
    loop {
        let Some(shared) = pool.upgrade() else {
            return false;
        };
        let reachable = shared.reachable.clone();
        let woken = reachable.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let due = match shared.retry_at() {
            Some(at) if at > Instant::now() => at,
            _ => return true,
        };
        // Hold the pool only weakly while sleeping: dropping it ends the task.
        drop(shared);
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = &mut woken => {}
        }
        match pool.upgrade() {
            Some(shared) if shared.still_wanted() => {}
            _ => return false,
        }
    }
}
