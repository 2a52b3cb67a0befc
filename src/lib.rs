//! # seawall
//!
//! Adaptive connection pools and load-aware query routing for a replicated database, inside the
//! application.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod balance;
pub mod driver;
mod error;
pub mod load;

pub use balance::{Balancer, Strategy};
pub use driver::Connector;
pub use error::{ConfigError, DriverError, Error, TimeoutError, WaitCause};
pub use load::{InFlight, LoadConfig, NodeLoad};
