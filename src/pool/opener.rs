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

use crate::backoff::Backoff;
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
pub(crate) async fn open<C: Connector>(pool: Weak<Shared<C>>) {
    let mut backoff: Option<Backoff> = None;
    // While the backend keeps refusing, a connect started for a new waiter continues the pool's
    // backoff instead of hitting the backend at once: bursts of acquires do not become bursts
    // of connects.
    if let Some(shared) = pool.upgrade() {
        let failures = shared.connect_failures();
        if failures > 0 {
            let b = backoff.insert(Backoff::new(shared.config.backoff, shared.next_seed()));
            let delay = b.skip(failures - 1).next_delay();
            drop(shared);
            tokio::time::sleep(delay).await;
            match pool.upgrade() {
                Some(shared) if shared.still_wanted() => {}
                _ => return,
            }
        }
    }
    loop {
        let Some(shared) = pool.upgrade() else {
            return;
        };
        let timeout = shared.config.connect_timeout;
        let span = tracing::debug_span!("seawall.connect", pool = %shared.name());
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, shared.connector.connect())
            .instrument(span)
            .await;
        let error = match result {
            Ok(Ok(raw)) => {
                shared.add_new(raw, started.elapsed());
                return;
            }
            Ok(Err(e)) => DriverError::new(e),
            Err(_) => DriverError::new(ConnectTimedOut(timeout)),
        };
        tracing::warn!(pool = %shared.name(), error = %error, "connect failed");
        if !shared.connect_failed(error) {
            return;
        }
        let delay = backoff
            .get_or_insert_with(|| Backoff::new(shared.config.backoff, shared.next_seed()))
            .next_delay();
        drop(shared);
        tokio::time::sleep(delay).await;
        match pool.upgrade() {
            Some(shared) if shared.still_wanted() => {}
            _ => return,
        }
    }
}
