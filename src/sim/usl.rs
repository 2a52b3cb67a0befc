//! The Universal Scalability Law: how a database's throughput bends, then falls, as concurrency
//! grows.
//!
//! Neil Gunther's law gives the throughput of `n` concurrent workers relative to one as
//!
//! ```text
//! X(n) = n / (1 + σ (n - 1) + κ n (n - 1))
//! ```
//!
//! where the *contention* `σ` is the serialised share of the work (locks, a single WAL writer)
//! and the *coherency* `κ` the cost of keeping workers consistent with one another (cache lines
//! bouncing, snapshot computation over every backend, context switches), which grows with the
//! number of *pairs* of workers. With `κ > 0` the curve has a peak, the *knee*, at
//! `n* = sqrt((1 - σ) / κ)`: past it more concurrency gets *less* done, and every query takes
//! longer. A simulated server with a [`Usl`] stretches each query's service time by
//! [`Usl::stretch`] of the queries running with it, which yields exactly that throughput curve.
//!
//! ```
//! use seawall::sim::usl::Usl;
//! let usl = Usl::new(0.005, 0.000_025)?;
//! assert_eq!(usl.knee(), 199);
//! assert!(usl.relative_throughput(199) > usl.relative_throughput(100));
//! assert!(usl.relative_throughput(199) > usl.relative_throughput(800));
//! # Ok::<(), seawall::ConfigError>(())
//! ```

use std::time::Duration;

use crate::ConfigError;

/// The two parameters of the Universal Scalability Law; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usl {
    contention: f64,
    coherency: f64,
}

impl Usl {
    /// A curve with contention `σ` in `[0, 1)` and coherency `κ` in `[0, 1)`, or the error
    /// naming the bad one.
    pub fn new(contention: f64, coherency: f64) -> Result<Self, ConfigError> {
        if !(0.0..1.0).contains(&contention) {
            return Err(ConfigError::new(
                "contention",
                format!("must lie in [0, 1), got {contention}"),
            ));
        }
        if !(0.0..1.0).contains(&coherency) {
            return Err(ConfigError::new(
                "coherency",
                format!("must lie in [0, 1), got {coherency}"),
            ));
        }
        Ok(Usl {
            contention,
            coherency,
        })
    }

    /// A curve whose knee is at `knee` concurrent queries, with contention `σ`: the coherency is
    /// chosen as `(1 - σ) / knee²`.
    pub fn with_knee(knee: usize, contention: f64) -> Result<Self, ConfigError> {
        if knee == 0 {
            return Err(ConfigError::new("knee", "must be at least 1"));
        }
        Usl::new(contention, (1.0 - contention) / (knee as f64).powi(2))
    }

    /// The contention `σ`.
    pub fn contention(&self) -> f64 {
        self.contention
    }

    /// The coherency `κ`.
    pub fn coherency(&self) -> f64 {
        self.coherency
    }

    /// How much longer a query takes with `n` queries running (itself included) than alone:
    /// `1 + σ (n - 1) + κ n (n - 1)`; 1 for `n <= 1`.
    pub fn stretch(&self, n: usize) -> f64 {
        let n = n.max(1) as f64;
        1.0 + self.contention * (n - 1.0) + self.coherency * n * (n - 1.0)
    }

    /// Throughput with `n` queries running, relative to one query running alone:
    /// `n / stretch(n)`.
    pub fn relative_throughput(&self, n: usize) -> f64 {
        n as f64 / self.stretch(n)
    }

    /// The concurrency of peak throughput (rounded to the better neighbour); with no coherency
    /// cost the curve never peaks and this is `usize::MAX`.
    pub fn knee(&self) -> usize {
        if self.coherency <= 0.0 {
            return usize::MAX;
        }
        let knee = ((1.0 - self.contention) / self.coherency).sqrt();
        let (low, high) = (
            knee.floor().max(1.0) as usize,
            knee.ceil().max(1.0) as usize,
        );
        if self.relative_throughput(high) > self.relative_throughput(low) {
            high
        } else {
            low
        }
    }

    /// Queries per second at the knee, for queries of `mean_service` alone: the most the server
    /// completes. `None` without a knee or with a zero service time.
    pub fn peak_throughput(&self, mean_service: Duration) -> Option<f64> {
        let knee = self.knee();
        (knee != usize::MAX && !mean_service.is_zero())
            .then(|| self.relative_throughput(knee) / mean_service.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curve_rises_peaks_at_the_knee_and_falls() {
        let usl = Usl::new(0.02, 0.0005).unwrap();
        assert_eq!(usl.stretch(0), 1.0);
        assert_eq!(usl.stretch(1), 1.0);
        let knee = usl.knee();
        assert_eq!(knee, 44); // sqrt(0.98 / 0.0005) = 44.3
        let peak = usl.relative_throughput(knee);
        for n in 1..400 {
            assert!(usl.relative_throughput(n) <= peak + 1e-12, "{n}");
        }
        assert!(usl.relative_throughput(400) < peak / 3.0);
        let at = usl.peak_throughput(Duration::from_millis(10)).unwrap();
        assert!((at - peak * 100.0).abs() < 1e-9);
    }

    #[test]
    fn bad_parameters_are_typed_errors() {
        assert_eq!(Usl::new(1.0, 0.0).unwrap_err().field, "contention");
        assert_eq!(Usl::new(-0.1, 0.0).unwrap_err().field, "contention");
        assert_eq!(Usl::new(0.0, f64::NAN).unwrap_err().field, "coherency");
        assert_eq!(Usl::with_knee(0, 0.0).unwrap_err().field, "knee");
        let linear = Usl::new(0.0, 0.0).unwrap();
        assert_eq!(linear.knee(), usize::MAX);
        assert_eq!(linear.peak_throughput(Duration::from_millis(1)), None);
        assert_eq!(Usl::with_knee(50, 0.01).unwrap().knee(), 50);
    }
}
