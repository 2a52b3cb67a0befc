//! The connection guard: derefs to the connection and gives it back on drop.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use tokio::time::Instant;
use tracing::Instrument;

use crate::driver::Connector;
use crate::error::{DriverError, Error};
use crate::session::SessionState;

use super::shared::{Conn, Held, Shared};

/// A connection checked out of a [`Pool`](super::Pool).
///
/// Dropping it returns the connection: broken ones (per [`Connector::has_broken`]) are closed,
/// dirty ones are reset in a background task first, expired ones are closed, and the rest go to
/// the oldest waiter or back to the idle set.
///
/// Dirty means: per the [session state](crate::session) recorded by an integration that saw
/// every statement of this checkout (only that state is undone, by
/// [`Connector::reset_session`]); otherwise, or once the borrower reached the connection
/// mutably (`&mut *conn`), per [`Connector::needs_reset`], since it may have done anything.
pub struct Pooled<C: Connector> {
    conn: Option<Conn<C::Connection>>,
    shared: Arc<Shared<C>>,
    broken: bool,
    interrupted: bool,
    /// What a tracking integration recorded; `None`: nobody tracked this borrower, who may
    /// have done anything (many drivers run statements through `&Connection`).
    session: Option<SessionState>,
}

impl<C: Connector> Pooled<C> {
    pub(crate) fn new(conn: Conn<C::Connection>, shared: Arc<Shared<C>>) -> Self {
        Pooled {
            conn: Some(conn),
            shared,
            broken: false,
            interrupted: false,
            session: None,
        }
    }

    /// What this borrower is known to have left in the session: [`SessionState::UNKNOWN`]
    /// unless every use of it went through a tracking integration (and then not once it
    /// reached the connection mutably).
    pub fn session(&self) -> SessionState {
        self.session.unwrap_or(SessionState::UNKNOWN)
    }

    /// What a tracking integration is to start from: clean for a connection it is the first to
    /// use in this checkout.
    #[cfg(feature = "sqlx")]
    pub(crate) fn tracked_session(&self) -> SessionState {
        self.session.unwrap_or(SessionState::CLEAN)
    }

    /// Records what a statement left in the session (the integration that ran it knows).
    #[cfg(feature = "sqlx")]
    pub(crate) fn set_session(&mut self, state: SessionState) {
        self.session = Some(state);
    }

    /// The connection, for an integration that records what it does to the session itself
    /// ([`Pooled::set_session`]): unlike `DerefMut`, it does not make the session unknown.
    #[cfg(feature = "sqlx")]
    pub(crate) fn tracked_mut(&mut self) -> &mut C::Connection {
        &mut self
            .conn
            .as_mut()
            .expect("connection present until drop")
            .raw
    }

    fn conn(&self) -> &Conn<C::Connection> {
        self.conn.as_ref().expect("connection present until drop")
    }

    /// The name of the pool it came from.
    pub fn pool_name(&self) -> &str {
        self.shared.name()
    }

    /// When the underlying connection was opened.
    pub fn created_at(&self) -> Instant {
        self.conn().created
    }

    /// Closes the connection instead of returning it, for example after an error that left it in
    /// an unknown state. Counts as broken.
    pub fn discard(mut self) {
        if let Some(conn) = self.conn.take() {
            self.shared.discard(conn, true, false);
        }
    }

    /// Marks the connection as broken: it is closed when dropped instead of returned (for a
    /// connection that saw a transport error the driver cannot detect by itself).
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Marks a statement on this connection as given up mid-way (a client-side timeout, a
    /// dropped future): when dropped, its work on the server is cancelled through the driver's
    /// [`Connector::cancel_handle`] before the connection is closed, and no replacement opens
    /// until then. Implies [`Pooled::mark_broken`].
    pub fn mark_interrupted(&mut self) {
        self.broken = true;
        self.interrupted = true;
    }

    /// Takes the connection out of the pool for good; the pool opens another when needed.
    pub fn detach(mut self) -> C::Connection {
        let conn = self.conn.take().expect("connection present until drop");
        self.shared.forget();
        conn.raw
    }

    /// Returns the connection now, running its session reset (if the driver asks for one) in
    /// this task and reporting a reset failure, instead of leaving it to a background task.
    ///
    /// Dropping this future before it completes closes the connection (its session state is
    /// unknown) instead of leaking it.
    pub async fn release(mut self) -> Result<(), Error> {
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        let shared = self.shared.clone();
        if shared.connector.has_broken(&mut conn.raw) {
            shared.discard(conn, true, false);
            return Ok(());
        }
        let session = match recycle(&shared, &conn.raw, self.session()) {
            Recycle::Close => {
                shared.discard(conn, false, false);
                return Ok(());
            }
            Recycle::Reuse => {
                shared.put(conn);
                return Ok(());
            }
            Recycle::Reset(session) => session,
        };
        let mut held = Held::new(conn, &shared, false);
        reset(&shared, held.raw_mut(), session)
            .await
            .map_err(|error| Error::Driver {
                pool: shared.name().clone(),
                error,
            })?;
        shared.put(held.keep());
        Ok(())
    }
}

/// What a returned connection needs.
enum Recycle {
    Reuse,
    /// A reset of this state ([`SessionState::UNKNOWN`]: the driver's full reset).
    Reset(SessionState),
    /// Closed, not counted as broken: its session cannot be cleaned in place.
    Close,
}

fn recycle<C: Connector>(
    shared: &Shared<C>,
    raw: &C::Connection,
    session: SessionState,
) -> Recycle {
    if session.contains(SessionState::UNRESETTABLE) {
        Recycle::Close
    } else if session.contains(SessionState::UNKNOWN) {
        if shared.connector.needs_reset(raw) {
            Recycle::Reset(SessionState::UNKNOWN)
        } else {
            Recycle::Reuse
        }
    } else if session.is_clean() {
        Recycle::Reuse
    } else {
        Recycle::Reset(session)
    }
}

/// Runs the driver's session reset (of `session` only, unless it is unknown) within
/// `reset_timeout`.
async fn reset<C: Connector>(
    shared: &Arc<Shared<C>>,
    raw: &mut C::Connection,
    session: SessionState,
) -> Result<(), DriverError> {
    shared.inner.lock().totals.resets += 1;
    let span = tracing::debug_span!("seawall.recycle", pool = %shared.name(), step = "reset");
    let timeout = shared.config.reset_timeout;
    let reset = async {
        if session.contains(SessionState::UNKNOWN) {
            shared.connector.reset(raw).await
        } else {
            shared.connector.reset_session(raw, session).await
        }
    };
    match tokio::time::timeout(timeout, reset).instrument(span).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(DriverError::new(e)),
        Err(_) => Err(DriverError::new(ResetTimedOut(timeout))),
    }
}

/// A session reset that did not finish within `reset_timeout`.
#[derive(Debug)]
struct ResetTimedOut(std::time::Duration);

impl fmt::Display for ResetTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session reset timed out after {:?}", self.0)
    }
}

impl std::error::Error for ResetTimedOut {}

impl<C: Connector> Drop for Pooled<C> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let shared = &self.shared;
        if self.interrupted {
            shared.discard_interrupted(conn);
            return;
        }
        if self.broken || shared.connector.has_broken(&mut conn.raw) {
            shared.discard(conn, true, false);
            return;
        }
        let session = match recycle(shared, &conn.raw, self.session()) {
            Recycle::Close => {
                shared.discard(conn, false, false);
                return;
            }
            Recycle::Reuse => {
                shared.put(conn);
                return;
            }
            Recycle::Reset(session) => session,
        };
        // The reset is a round trip: run it off the dropping task. Without a runtime the
        // session cannot be cleaned, so the connection is closed rather than reused dirty.
        match shared.runtime() {
            Some(rt) => {
                let shared = shared.clone();
                rt.spawn(async move {
                    // Held: if the runtime shuts down mid-reset, the connection is closed.
                    let mut held = Held::new(conn, &shared, false);
                    match reset(&shared, held.raw_mut(), session).await {
                        Ok(()) => shared.put(held.keep()),
                        Err(e) => {
                            tracing::warn!(pool = %shared.name(), error = %e, "session reset failed; closing connection");
                        }
                    }
                });
            }
            None => shared.discard(conn, false, false),
        }
    }
}

impl<C: Connector> Deref for Pooled<C> {
    type Target = C::Connection;

    fn deref(&self) -> &C::Connection {
        &self.conn().raw
    }
}

/// Reaching the connection mutably makes its session state unknown: the borrower may have
/// done anything, so it gets the driver's reset policy on return.
impl<C: Connector> DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut C::Connection {
        self.session = Some(SessionState::UNKNOWN);
        &mut self
            .conn
            .as_mut()
            .expect("connection present until drop")
            .raw
    }
}

impl<C: Connector> fmt::Debug for Pooled<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("pool", &self.pool_name())
            .field("created_at", &self.conn.as_ref().map(|c| c.created))
            .finish_non_exhaustive()
    }
}
