//! # seawall
//!
//! Adaptive connection pools and load-aware query routing for a replicated database, inside the
//! application.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod classify;
pub mod driver;
mod error;

pub use classify::{Classification, Classifier, ClassifyError, Route};
pub use driver::Connector;
pub use error::{ConfigError, DriverError, Error, TimeoutError, WaitCause};
