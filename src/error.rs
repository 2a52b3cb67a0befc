//! Errors: one enum, each variant saying *why*.
//!
//! Today's pools often answer every failure with the same "pool timed out" (sqlx #3241). seawall
//! keeps the causes apart: a saturated pool, a database that refuses connections and a closed pool
//! are different variants, and a timeout carries how long it waited and what it was waiting on.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::admission::Overloaded;
use crate::breaker::BreakerOpen;
use crate::classify::{ClassifyError, Fingerprint};
use crate::role::Role;

/// Everything that can go wrong when asking seawall for a connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// No connection could be handed out before the acquire deadline.
    Timeout(TimeoutError),
    /// The pool was closed; it hands out no more connections.
    Closed {
        /// Name of the closed pool.
        pool: Arc<str>,
    },
    /// An acquire that had to wait was polled outside a Tokio runtime, and the pool has never
    /// seen one: nothing could open a connection or end the wait at its deadline, so it fails
    /// at once. Run it inside a runtime (the pool spawns its connects and timers there).
    NoRuntime {
        /// Name of the pool.
        pool: Arc<str>,
    },
    /// The driver failed on a path where there was no point retrying: the session reset of a
    /// connection the caller returned explicitly with [`Pooled::release`](crate::Pooled::release).
    Driver {
        /// Name of the pool the connection belongs to.
        pool: Arc<str>,
        /// The driver's error.
        error: DriverError,
    },
    /// A statement run through [`Cluster::execute`](crate::Cluster::execute) or
    /// [`ClusterConn::execute`](crate::ClusterConn::execute) failed.
    Statement(StatementError),
    /// A statement sent to a replica turned out to write (the replica refused it as read-only)
    /// and could not be retried on the primary, because it ran inside a transaction or on a
    /// pinned handle.
    WriteOnReplica(WriteOnReplica),
    /// A builder was given a configuration that cannot work.
    Config(ConfigError),
    /// The node's circuit breaker is open (or half-open with its trial calls taken): the call
    /// failed fast instead of queueing on a failing node.
    Unavailable(BreakerOpen),
    /// The node's admission gate turned the request away (queue full, deadline, shed).
    Overloaded(Overloaded),
    /// No replica could serve a read, and the primary could not take it either.
    NoReplica(NoReplica),
    /// The cluster has no primary to send a write to.
    NoPrimary {
        /// How long the cluster has been without a primary, when known.
        gone_for: Option<Duration>,
        /// How long the write waited for one.
        waited: Duration,
        /// Every node as the cluster saw it when the write gave up: role, health and the last
        /// probe or connect error, so the cause (a wrong password, a "primary" that is a
        /// replica, a server that is gone) is in the error itself.
        nodes: Vec<NodeReport>,
    },
    /// A node name the cluster does not know.
    UnknownNode {
        /// The name asked for.
        name: String,
    },
    /// The statement could not be classified (a malformed routing hint).
    Classify(ClassifyError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout(e) => e.fmt(f),
            Error::Closed { pool } => write!(f, "pool `{pool}` is closed"),
            Error::NoRuntime { pool } => write!(
                f,
                "pool `{pool}`: acquire polled outside a Tokio runtime; nothing could open a \
                 connection or time the wait out"
            ),
            Error::Driver { pool, error } => {
                write!(f, "pool `{pool}`: session reset failed: {error}")
            }
            Error::Statement(e) => e.fmt(f),
            Error::WriteOnReplica(e) => e.fmt(f),
            Error::Config(e) => e.fmt(f),
            Error::Unavailable(e) => e.fmt(f),
            Error::Overloaded(e) => e.fmt(f),
            Error::NoReplica(e) => e.fmt(f),
            Error::NoPrimary {
                gone_for,
                waited,
                nodes,
            } => {
                write!(f, "no primary to write to after waiting {waited:?}")?;
                if let Some(d) = gone_for {
                    write!(f, " (gone for {d:?})")?;
                }
                for (i, node) in nodes.iter().enumerate() {
                    f.write_str(if i == 0 { "; nodes: " } else { ", " })?;
                    node.fmt(f)?;
                }
                Ok(())
            }
            Error::UnknownNode { name } => write!(f, "unknown node `{name}`"),
            Error::Classify(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Timeout(e) => e.source(),
            Error::Driver { error, .. } => Some(error),
            Error::Statement(e) => Some(&e.error),
            Error::WriteOnReplica(e) => Some(&e.error),
            Error::Config(e) => Some(e),
            Error::Unavailable(e) => Some(e),
            Error::Overloaded(e) => Some(e),
            Error::Classify(e) => Some(e),
            Error::Closed { .. }
            | Error::NoRuntime { .. }
            | Error::NoReplica(_)
            | Error::NoPrimary { .. }
            | Error::UnknownNode { .. } => None,
        }
    }
}

impl From<BreakerOpen> for Error {
    fn from(e: BreakerOpen) -> Self {
        Error::Unavailable(e)
    }
}

impl From<ClassifyError> for Error {
    fn from(e: ClassifyError) -> Self {
        Error::Classify(e)
    }
}

impl From<Overloaded> for Error {
    fn from(e: Overloaded) -> Self {
        Error::Overloaded(e)
    }
}

/// Why a read found no node: how many replicas were excluded for which reason, and the state
/// of the primary's read budget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NoReplica {
    /// Replicas configured.
    pub replicas: u32,
    /// Replicas skipped because their breaker is open.
    pub breaker_open: u32,
    /// Replicas skipped for lagging more than `max_replica_lag`.
    pub lagging: u32,
    /// Replicas skipped because `max_replica_lag` is set and their lag is not known yet (no
    /// probe has answered since the cluster was built: [`Cluster::probe_now`] before serving
    /// reads, or wait for [`Cluster::ready`]).
    ///
    /// [`Cluster::probe_now`]: crate::Cluster::probe_now
    /// [`Cluster::ready`]: crate::Cluster::ready
    pub lag_unknown: u32,
    /// Replicas skipped for not having replayed the requested position yet.
    pub behind_position: u32,
    /// Replicas skipped because the requested position's timeline rules them out: they report
    /// an older timeline (or none), or the position was taken before a failover (see
    /// [`AcquireOptions::timeline`](crate::cluster::AcquireOptions::timeline)).
    pub older_timeline: u32,
    /// Replicas that refused the read at once as busy (breaker, full admission queue) when
    /// tried.
    pub refused: u32,
    /// Replicas that could not take the read because their connects fail and they have no
    /// open connection to spare (unreachable, not busy).
    pub unreachable: u32,
    /// Replicas skipped because their health monitor marks them down or fenced.
    pub down: u32,
    /// Whether the read was allowed to fall back to the primary at all.
    pub fallback_allowed: bool,
    /// The read could have fallen back, but no usable primary was there to take it.
    pub primary_down: bool,
    /// Fallback reads in flight on the primary.
    pub fallback_in_flight: u32,
    /// Most fallback reads the primary takes at once (its protection budget).
    pub fallback_budget: u32,
    /// How long the read spent trying before it gave up.
    pub waited: Duration,
    /// Every node as the cluster saw it when the read gave up: role, health and the last probe
    /// or connect error.
    pub nodes: Vec<NodeReport>,
}

impl fmt::Display for NoReplica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no usable replica ({} configured", self.replicas)?;
        for (n, why) in [
            (self.breaker_open, "breaker open"),
            (self.lagging, "lagging"),
            (self.lag_unknown, "with lag not known yet"),
            (self.behind_position, "behind the requested position"),
            (
                self.older_timeline,
                "not on the requested position's timeline",
            ),
            (self.refused, "busy (refused at once)"),
            (self.unreachable, "unreachable (connects failing)"),
            (self.down, "down"),
        ] {
            if n > 0 {
                write!(f, ", {n} {why}")?;
            }
        }
        if self.fallback_allowed && self.primary_down {
            f.write_str(") and no usable primary to fall back to")?;
        } else if self.fallback_allowed {
            write!(
                f,
                ") and the primary's read budget is used up ({}/{} fallback reads in flight)",
                self.fallback_in_flight, self.fallback_budget
            )?;
        } else {
            f.write_str(") and the read may not go to the primary")?;
        }
        write!(f, "; gave up after {:?}", self.waited)?;
        for (i, node) in self.nodes.iter().enumerate() {
            f.write_str(if i == 0 { "; nodes: " } else { ", " })?;
            node.fmt(f)?;
        }
        Ok(())
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

/// An acquire that ran out of time, with how long it waited and on what.
#[derive(Debug, Clone)]
pub struct TimeoutError {
    /// Name of the pool.
    pub pool: Arc<str>,
    /// The cluster node the pool serves, when the acquire came through a
    /// [`Cluster`](crate::Cluster) (its name may differ from the pool's).
    pub node: Option<Arc<str>>,
    /// How long the caller actually waited.
    pub waited: Duration,
    /// The timeout that applied to this acquire.
    pub timeout: Duration,
    /// What the pool was doing while the caller waited.
    pub cause: WaitCause,
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) if *node != self.pool => write!(f, "node `{node}`, ")?,
            _ => {}
        }
        write!(
            f,
            "pool `{}`: no connection after {:?} (timeout {:?}): {}",
            self.pool, self.waited, self.timeout, self.cause
        )
    }
}

impl std::error::Error for TimeoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            WaitCause::ConnectFailing { last_error, .. } => Some(last_error),
            _ => None,
        }
    }
}

/// Why an acquire had to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitCause {
    /// Every connection was in use and the pool was at its maximum size.
    Saturated {
        /// Connections checked out when the wait ended.
        in_use: usize,
        /// The pool's maximum size.
        max_size: usize,
        /// Callers waiting, this one included.
        waiters: usize,
    },
    /// New connections were being opened but none finished in time.
    Connecting {
        /// Connects in flight when the wait ended.
        in_flight: usize,
    },
    /// A connection taken from the pool did not answer its checkout ping before the deadline
    /// (the backend hangs rather than refuses).
    PingHung,
    /// Opening connections kept failing while this caller waited: the backend is down or
    /// refusing.
    ConnectFailing {
        /// The most recent connect error.
        last_error: DriverError,
        /// Consecutive failed connects.
        failures: u64,
    },
    /// Earlier connects failed and the pool was waiting out its backoff before the next one:
    /// no connect failed during this wait. Not evidence against the node by itself (a circuit
    /// breaker does not count it), but the backend was unreachable when last tried.
    BackingOff {
        /// The most recent connect error.
        last_error: DriverError,
        /// Consecutive failed connects.
        failures: u64,
        /// Time left, when the wait ended, until the next connect.
        retry_in: Duration,
    },
}

impl fmt::Display for WaitCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitCause::Saturated {
                in_use,
                max_size,
                waiters,
            } => write!(
                f,
                "pool saturated ({in_use}/{max_size} connections in use, {waiters} waiting)"
            ),
            WaitCause::PingHung => f.write_str("checkout ping did not answer in time"),
            WaitCause::Connecting { in_flight } => {
                write!(f, "still connecting ({in_flight} connects in flight)")
            }
            WaitCause::ConnectFailing {
                last_error,
                failures,
            } => write!(
                f,
                "cannot connect ({failures} consecutive failures; last: {last_error})"
            ),
            WaitCause::BackingOff {
                last_error,
                failures,
                retry_in,
            } => write!(
                f,
                "connects paused after {failures} consecutive failures (last: {last_error}); \
                 next attempt in {retry_in:?}"
            ),
        }
    }
}

/// A statement that did not finish before its deadline ([`AcquireOptions::timeout`] given to
/// [`Cluster::execute_with`]): it was cancelled on the server and its connection closed. Found
/// as the [`StatementError::error`] of an [`Error::Statement`].
///
/// [`AcquireOptions::timeout`]: crate::cluster::AcquireOptions::timeout
/// [`Cluster::execute_with`]: crate::Cluster::execute_with
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementTimedOut {
    /// How long it ran before it was given up.
    pub after: Duration,
}

impl fmt::Display for StatementTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deadline passed after {:?}; cancelled on the server",
            self.after
        )
    }
}

impl std::error::Error for StatementTimedOut {}

/// One node as a failed routing decision saw it ([`Error::NoPrimary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeReport {
    /// Its name.
    pub name: Arc<str>,
    /// Its role, as its probes last said.
    pub role: Role,
    /// Whether the health monitor considers it up.
    pub up: bool,
    /// Whether it is fenced (not allowed writes: split brain, older timeline, not the leader).
    pub fenced: bool,
    /// The last probe error, or the last connect error while its connects are failing.
    pub error: Option<String>,
}

impl fmt::Display for NodeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ({}", self.name, self.role)?;
        f.write_str(match (self.up, self.fenced) {
            (_, true) => ", fenced",
            (true, false) => ", up",
            (false, false) => ", down",
        })?;
        if let Some(error) = &self.error {
            write!(f, ": {error}")?;
        }
        f.write_str(")")
    }
}

/// A driver's own error, shared so that every waiter can report the same cause.
///
/// ```
/// use seawall::DriverError;
/// let e = DriverError::new(std::io::Error::other("refused"));
/// assert!(e.downcast_ref::<std::io::Error>().is_some());
/// ```
#[derive(Clone)]
pub struct DriverError(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl DriverError {
    /// Wraps a driver error.
    pub fn new<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        DriverError(Arc::new(e))
    }

    /// The driver's error, if it is of type `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl PartialEq for DriverError {
    /// Equal when both wrap the same error value (same allocation).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for DriverError {}

impl fmt::Debug for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// A configuration that cannot work, named by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field, as named on the builder.
    pub field: &'static str,
    /// Why the value is rejected.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: `{}` {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// A statement that failed on a node, from [`Cluster::execute`](crate::Cluster::execute) or
/// [`ClusterConn::execute`](crate::ClusterConn::execute).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StatementError {
    /// The node it failed on.
    pub node: Arc<str>,
    /// That node's role when the statement ran.
    pub role: Role,
    /// The statement's fingerprint (see [`statements`](crate::statements)).
    pub fingerprint: Fingerprint,
    /// How long the statement ran before it failed.
    pub elapsed: Duration,
    /// The replica that first refused the statement as a write, when this is the error of its
    /// retry on the primary.
    pub retried_from: Option<Arc<str>>,
    /// The driver's error.
    pub error: DriverError,
}

impl fmt::Display for StatementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "statement {} failed on {} `{}` after {:?}",
            self.fingerprint, self.role, self.node, self.elapsed
        )?;
        if let Some(replica) = &self.retried_from {
            write!(
                f,
                " (retried there after replica `{replica}` refused it as a write)"
            )?;
        }
        write!(f, ": {}", self.error)
    }
}

impl std::error::Error for StatementError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Why a write refused by a replica was not retried on the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotRetried {
    /// The statement ran inside an explicit transaction, whose earlier statements ran on the
    /// replica: moving only this one would split the transaction.
    InTransaction,
    /// The statement ran on a handle the caller pinned ([`ClusterConn`](crate::ClusterConn)), which
    /// never moves to another connection. Run it through
    /// [`Cluster::execute`](crate::Cluster::execute) to have it retried.
    Pinned,
}

impl fmt::Display for NotRetried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotRetried::InTransaction => "it ran inside a transaction on that replica",
            NotRetried::Pinned => "it ran on a pinned handle, which never moves",
        })
    }
}

/// A statement that wrote on a replica and was not retried; see [`Error::WriteOnReplica`].
///
/// The replica did nothing (it refused the statement), and seawall has learned the statement's
/// fingerprint: the next one goes straight to the primary.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WriteOnReplica {
    /// The replica that refused it.
    pub node: Arc<str>,
    /// The statement's fingerprint, now remembered as a write.
    pub fingerprint: Fingerprint,
    /// Why it was not retried on the primary.
    pub not_retried: NotRetried,
    /// How long the statement ran before the replica refused it.
    pub elapsed: Duration,
    /// The replica's error (PostgreSQL: SQLSTATE 25006).
    pub error: DriverError,
}

impl fmt::Display for WriteOnReplica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "statement {} writes but ran on replica `{}`, which refused it after {:?}; not retried \
             on the primary because {}; later ones go to the primary: {}",
            self.fingerprint, self.node, self.elapsed, self.not_retried, self.error
        )
    }
}

impl std::error::Error for WriteOnReplica {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
