//! # seawall
//!
//! Adaptive connection pools and load-aware query routing for a replicated database, inside the
//! application.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod driver;
mod error;
pub mod limit;

pub use admission::{Admission, AdmissionConfig, Overloaded, Permit, Priority, ShedReason};
pub use driver::Connector;
pub use error::{ConfigError, DriverError, Error, TimeoutError, WaitCause};
pub use limit::Limiter;
