//! # seawall
//!
//! Adaptive connection pools and load-aware query routing for a replicated database, inside the
//! application.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod breaker;
pub mod driver;
mod error;

pub use breaker::{BreakerConfig, BreakerOpen, CallGuard, CircuitBreaker, Outcome};
pub use driver::Connector;
pub use error::{ConfigError, DriverError, Error, TimeoutError, WaitCause};
