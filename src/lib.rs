//! # seawall
//!
//! Adaptive connection pools and load-aware query routing for a replicated database, inside the
//! application.
//!
//! A shop's site was down for sixteen hours when a traffic surge exhausted its primary database:
//! connections failed, every request errored, and nothing said the database layer was the cause.
//! seawall puts the remedies of that postmortem in one library: pooling, reads spread over
//! replicas by load, protection for the primary, real-time saturation signals, and errors that
//! say why.
//!
//! ## Data flow
//!
//! An acquire travels through one module per concept:
//!
//! ```text
//! acquire ──> admit ──> route ──> pool ──> connection
//!             (limit)   (classify, balance)  (pool)   (driver)
//! ```
//!
//! * [`driver`]: the [`Connector`] trait a database driver implements (connect, ping, broken?,
//!   reset); [`sim`] is an in-process simulated database implementing it.
//! * [`pool`]: one fast, fair pool per backend: [`Pool::get`](pool::Pool::get) returns a
//!   [`Pooled`](pool::Pooled) guard that gives the connection back on drop.
//! * [`metrics`](crate::metrics): names of the metrics every layer reports through the `metrics`
//!   facade; `tracing` spans cover acquire, connect and recycle.
//!
//! ## Errors
//!
//! Every failure is an [`Error`] variant that says why: a saturated pool, a database that refuses
//! connections and a closed pool are different errors, and a timeout carries how long it waited
//! and on what ([`WaitCause`]).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod backoff;
pub mod driver;
mod error;
pub mod metrics;
pub mod pool;
pub mod sim;
#[cfg(feature = "sqlx")]
pub mod sqlx;
#[cfg(feature = "testbed")]
pub mod testbed;

pub use driver::Connector;
pub use error::{ConfigError, DriverError, Error, TimeoutError, WaitCause};
pub use pool::{Pool, Pooled};
