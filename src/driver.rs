//! The driver trait: how seawall opens, checks and resets connections.
//!
//! A pool knows nothing about a database's wire protocol; it asks a [`Connector`]. The trait is
//! small on purpose, in the spirit of bb8's `ManageConnection` and deadpool's `Manager`: a driver
//! for a new database fits in a page.
//!
//! The methods split along the hot path. [`Connector::has_broken`] and [`Connector::needs_reset`]
//! are synchronous and run on every checkout or return, so they must be cheap (look at a flag, not
//! the network). The asynchronous ones ([`Connector::connect`], [`Connector::ping`],
//! [`Connector::reset`]) run only when needed: a ping only when a connection sat idle long enough
//! to be suspect, a reset only when the driver says the session is dirty.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::breaker::Outcome;
use crate::session::SessionState;

/// Opens, checks and resets the connections of one backend.
///
/// # Example
///
/// A driver for a toy "connection" that counts its uses:
///
/// ```
/// use seawall::driver::Connector;
///
/// struct Counter;
///
/// #[derive(Debug)]
/// struct Refused;
/// impl std::fmt::Display for Refused {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("refused")
///     }
/// }
/// impl std::error::Error for Refused {}
///
/// #[async_trait::async_trait]
/// impl Connector for Counter {
///     type Connection = u64;
///     type Error = Refused;
///
///     async fn connect(&self) -> Result<u64, Refused> {
///         Ok(0)
///     }
/// }
/// ```
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The connection type the pool hands out.
    type Connection: Send + 'static;
    /// The driver's own error; seawall wraps it in [`DriverError`](crate::DriverError) and keeps
    /// it reachable with [`DriverError::downcast_ref`](crate::DriverError::downcast_ref).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens a new connection.
    async fn connect(&self) -> Result<Self::Connection, Self::Error>;

    /// Opens the health monitor's own connection, on which [`Connector::probe`] runs. It must
    /// not compete with the pool it judges: a saturated pool is busy, not down. The default is
    /// [`Connector::connect`], which opens a connection of its own; a driver whose `connect`
    /// borrows from a bounded pool of someone else's (the wrapped sqlx `PgPool`) connects
    /// directly here instead.
    async fn connect_probe(&self) -> Result<Self::Connection, Self::Error> {
        self.connect().await
    }

    /// A real round trip (for example `SELECT 1`), run on checkout when the connection has been
    /// idle for longer than the pool's `ping_after_idle`. An error discards the connection.
    async fn ping(&self, _conn: &mut Self::Connection) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Cheap, synchronous test: is the connection known to be unusable (socket closed, fatal
    /// protocol error seen)? Called on checkout and on return; a broken connection is discarded,
    /// never handed out again.
    fn has_broken(&self, _conn: &mut Self::Connection) -> bool {
        false
    }

    /// Cheap, synchronous test: does the session carry state the next borrower must not see?
    /// When true, [`Connector::reset`] runs before the connection becomes idle again.
    fn needs_reset(&self, _conn: &Self::Connection) -> bool {
        false
    }

    /// Clears session state (open transaction, session settings, temporary objects, locks)
    /// before the connection is reused. An error discards the connection.
    async fn reset(&self, _conn: &mut Self::Connection) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Undoes only `state`: what a borrower is known to have left in the session, recorded by
    /// an integration that sees every statement ([`crate::session`]; seawall's
    /// `sqlx::Executor`). Called instead of [`Connector::needs_reset`] and
    /// [`Connector::reset`] for a tracked connection that is not clean; never with
    /// [`SessionState::UNKNOWN`] (that gets `reset`) or [`SessionState::UNRESETTABLE`] (that
    /// connection is closed). An error discards the connection. The default runs the full
    /// [`Connector::reset`].
    async fn reset_session(
        &self,
        conn: &mut Self::Connection,
        _state: SessionState,
    ) -> Result<(), Self::Error> {
        self.reset(conn).await
    }

    /// What an error says about the node's health, for its circuit breaker and load model:
    /// [`Outcome::Failure`] for connection and transport failures and timeouts,
    /// [`Outcome::Ignored`] for errors that are the caller's fault (syntax, constraint
    /// violation), which must not trip a breaker.
    ///
    /// The default cannot tell them apart and says `Failure`: an unknown error is treated as the
    /// node's. Drivers that can classify (the sqlx driver reads SQLSTATE) should.
    fn classify_error(&self, _error: &Self::Error) -> Outcome {
        Outcome::Failure
    }

    /// `true` if `error` says the server refused a statement because it cannot write there: the
    /// server is a replica, or the transaction is read-only (PostgreSQL SQLSTATE 25006, "cannot
    /// execute ... in a read-only transaction"). Such a statement did
    /// nothing, so the cluster may run it again on the primary and learns that it writes (see
    /// [`Cluster::execute`](crate::Cluster::execute)). The default cannot tell and says `false`.
    fn is_read_only_error(&self, _error: &Self::Error) -> bool {
        false
    }

    /// `true` if `error` is the server telling that it ended the session before the statement
    /// could take effect: an administrator's or a crash shutdown, a switchover (PostgreSQL
    /// SQLSTATE 57P01, 57P02, 57P03). The server answered, so an autocommit statement did not
    /// commit; [`Cluster::execute`](crate::Cluster::execute) runs such a statement again on a
    /// fresh connection, up to three times (never inside a transaction). An error without an
    /// answer (a connection that just dropped) is not one: whether the statement committed is
    /// unknown. The default says `false`.
    fn is_session_ended_error(&self, _error: &Self::Error) -> bool {
        false
    }

    /// A handle that can stop the server's work on `conn` from outside it, asked once right
    /// after the connect. When a statement is given up mid-way (its deadline passed, its future
    /// was dropped, the caller marked the connection failed), the pool cancels it through this
    /// handle before closing the connection, and only then lets a replacement open: otherwise
    /// the server goes on working (and holding locks) for nobody, and a pool of 8 can have
    /// dozens of busy sessions on the server. `None` (the default): the connection is just
    /// closed.
    async fn cancel_handle(&self, _conn: &mut Self::Connection) -> Option<Arc<dyn Cancel>> {
        None
    }

    /// Asks the server about its role and replication state, for routing (lag, read-your-writes)
    /// and failover. `Ok(None)` (the default) means the driver cannot tell; the node keeps the
    /// role it was configured with.
    async fn probe(&self, _conn: &mut Self::Connection) -> Result<Option<NodeStatus>, Self::Error> {
        Ok(None)
    }
}

/// Stops what a server is doing for one connection, from outside that connection (see
/// [`Connector::cancel_handle`]).
#[async_trait]
pub trait Cancel: Send + Sync + 'static {
    /// Cancels the connection's work on the server and ends its session. The pool bounds the
    /// call with the connect timeout.
    async fn cancel(&self) -> Result<(), crate::DriverError>;
}

/// What a probe learned about a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct NodeStatus {
    /// Whether the server accepts writes (PostgreSQL: `NOT pg_is_in_recovery()`).
    pub is_primary: bool,
    /// How far the server has written (primary) or replayed (replica), as a monotonic position
    /// (PostgreSQL: an LSN as u64).
    pub position: Option<u64>,
    /// How far behind its primary a replica is; `Some(ZERO)` for a primary.
    pub lag: Option<Duration>,
    /// The server's timeline (PostgreSQL: the history branch its WAL is on, one more at each
    /// promotion), when the driver can tell. A primary must report its exact timeline: a
    /// node reporting primary on a timeline older than the highest the cluster has seen never
    /// takes writes. A replica may report a lower bound (it is only used to decide whether it
    /// can serve a read-your-writes read taken on a newer timeline).
    pub timeline: Option<u32>,
}

impl NodeStatus {
    /// A status from its parts.
    pub fn new(is_primary: bool, position: Option<u64>, lag: Option<Duration>) -> Self {
        NodeStatus {
            is_primary,
            position,
            lag,
            timeline: None,
        }
    }

    /// The same status with the server's timeline (see [`NodeStatus::timeline`]).
    pub fn with_timeline(mut self, timeline: Option<u32>) -> Self {
        self.timeline = timeline;
        self
    }
}
