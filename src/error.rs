//! Errors: one enum, each variant saying *why*.
//!
//! Today's pools often answer every failure with the same "pool timed out" (sqlx #3241). seawall
//! keeps the causes apart: a saturated pool, a database that refuses connections and a closed pool
//! are different variants, and a timeout carries how long it waited and what it was waiting on.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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
    /// The driver failed on a path where there was no point retrying (for example the reset of a
    /// connection the caller returned explicitly).
    Driver(DriverError),
    /// A builder was given a configuration that cannot work.
    Config(ConfigError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout(e) => e.fmt(f),
            Error::Closed { pool } => write!(f, "pool `{pool}` is closed"),
            Error::Driver(e) => write!(f, "driver error: {e}"),
            Error::Config(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Timeout(e) => e.source(),
            Error::Driver(e) => Some(e),
            Error::Config(e) => Some(e),
            Error::Closed { .. } => None,
        }
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
    /// How long the caller actually waited.
    pub waited: Duration,
    /// The timeout that applied to this acquire.
    pub timeout: Duration,
    /// What the pool was doing while the caller waited.
    pub cause: WaitCause,
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
    /// Opening connections kept failing: the backend is down or refusing.
    ConnectFailing {
        /// The most recent connect error.
        last_error: DriverError,
        /// Consecutive failed connects.
        failures: u64,
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
        }
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
