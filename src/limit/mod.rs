//! Adaptive concurrency limits: how much work a backend can take at once, learned from how it
//! answers.
//!
//! A fixed cap on in-flight queries is either too low (wasting a healthy primary) or too high (it
//! lets a struggling primary drown in its own queue). A [`Limiter`] treats the cap like a TCP
//! congestion window instead: every completed request is a [`Sample`] (its latency, how much work
//! was in flight, whether it was dropped) and the limiter moves the cap up while the backend keeps
//! up and down when it stops keeping up. The admission gate ([`crate::admission`]) enforces the
//! cap; the limiter only decides it.
//!
//! Four limiters:
//!
//! - [`Aimd`]: loss based. Grows by one per round of successes near the cap, shrinks by a ratio on
//!   a drop or a latency above a threshold. Simple and predictable; blind to slow creep.
//! - [`Gradient`]: latency based, after Netflix's Gradient2. Compares a short-term latency with a
//!   long-term baseline and shrinks when the short term rises above the baseline by more than a
//!   tolerance. Reacts to queueing before requests start to fail.
//! - [`Vegas`]: delay based, after TCP Vegas. Shrinks when latency rises past a multiple of the
//!   backend's no-load latency, grows slowly otherwise; many clients of one backend settle at
//!   the same backend latency with equal shares, which suits a fleet of application instances.
//! - [`Fixed`]: a cap set by hand, for backends whose capacity is known, and for tests.
//!
//! The trait is tiny so that the admission gate can take any of them, or yours.

mod aimd;
mod gradient;
mod vegas;

pub use aimd::{Aimd, AimdConfig};
pub use gradient::{Gradient, GradientConfig, QueueSize};
pub use vegas::{Vegas, VegasConfig};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::ConfigError;

/// Decides how many requests a backend may have in flight.
///
/// Implementations use interior mutability: [`Limiter::limit`] is read on every admission and
/// should be cheap (an atomic load), [`Limiter::on_sample`] runs once per completed request.
pub trait Limiter: Send + Sync + 'static {
    /// The current concurrency limit.
    fn limit(&self) -> usize;

    /// Feeds the limiter the outcome of one completed request.
    fn on_sample(&self, sample: Sample);
}

impl<L: Limiter + ?Sized> Limiter for Arc<L> {
    fn limit(&self) -> usize {
        (**self).limit()
    }

    fn on_sample(&self, sample: Sample) {
        (**self).on_sample(sample)
    }
}

impl<L: Limiter + ?Sized> Limiter for Box<L> {
    fn limit(&self) -> usize {
        (**self).limit()
    }

    fn on_sample(&self, sample: Sample) {
        (**self).on_sample(sample)
    }
}

/// The outcome of one completed request, as a limiter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// How long the request took, from admission to completion.
    pub latency: Duration,
    /// Requests in flight when this one was admitted, itself included.
    pub in_flight: usize,
    /// The request failed in a way that signals overload (timeout, dropped connection,
    /// cancelled): its latency is not a service time, and the backend may be in trouble.
    pub dropped: bool,
}

impl Sample {
    /// A request that completed normally.
    pub fn success(latency: Duration, in_flight: usize) -> Self {
        Sample {
            latency,
            in_flight,
            dropped: false,
        }
    }

    /// A request that was dropped, timed out or failed.
    pub fn dropped(latency: Duration, in_flight: usize) -> Self {
        Sample {
            latency,
            in_flight,
            dropped: true,
        }
    }
}

/// A limit set by hand; samples are ignored.
///
/// ```
/// use seawall::limit::{Fixed, Limiter};
/// let limit = Fixed::new(8);
/// assert_eq!(limit.limit(), 8);
/// limit.set(4);
/// assert_eq!(limit.limit(), 4);
/// ```
#[derive(Debug)]
pub struct Fixed {
    limit: AtomicUsize,
}

impl Fixed {
    /// A limiter that always answers `limit`.
    pub fn new(limit: usize) -> Self {
        Fixed {
            limit: AtomicUsize::new(limit),
        }
    }

    /// Changes the limit. An admission gate applies it at its next admission or release.
    pub fn set(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }
}

impl Limiter for Fixed {
    fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    fn on_sample(&self, _sample: Sample) {}
}

/// Checks the `[min_limit, max_limit]` bounds and the initial limit shared by the adaptive
/// limiters' configurations.
fn check_bounds(min: usize, max: usize, initial: usize) -> Result<(), ConfigError> {
    if min == 0 {
        return Err(ConfigError::new(
            "min_limit",
            "must be at least 1: a limit of 0 admits nothing and can never learn to recover",
        ));
    }
    if max < min {
        return Err(ConfigError::new(
            "max_limit",
            format!("must be at least min_limit ({min}), got {max}"),
        ));
    }
    if !(min..=max).contains(&initial) {
        return Err(ConfigError::new(
            "initial_limit",
            format!("must lie in [min_limit, max_limit] = [{min}, {max}], got {initial}"),
        ));
    }
    Ok(())
}
