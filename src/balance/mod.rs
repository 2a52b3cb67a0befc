//! Balancers: which of the eligible nodes gets the next query.
//!
//! The router filters the candidates first (healthy, breaker closed, fresh enough for this
//! read: see [`NodeLoad::can_serve_read`]) and hands the survivors to a [`Balancer`], which only
//! chooses among them. Keeping eligibility out of the balancer keeps the trait one method long
//! and every strategy a few lines.
//!
//! The default is [`P2c`], the power of two choices over [`NodeLoad::cost`]: pick two nodes at
//! random, send to the cheaper. It needs no global view or coordination, avoids herding onto a
//! single "best" node (every router would otherwise pick the same one at the same moment), and
//! gets exponentially closer to the ideal load than one random choice. [`LeastInFlight`],
//! [`RoundRobin`] and [`WeightedRandom`] are there for comparison and for simple setups;
//! [`Strategy`] names them.
//!
//! Randomised balancers draw from a seedable, lock-free generator: the same seed and the same
//! sequence of picks give the same choices, which lets the simulator replay a run.
//!
//! # Writing your own
//!
//! A balancer gets the candidates and returns an index into them; `None` only for an empty
//! slice. For example, one that prefers the node with the lowest replication lag:
//!
//! ```
//! use std::time::Duration;
//! use seawall::balance::Balancer;
//! use seawall::load::NodeLoad;
//!
//! struct Freshest;
//!
//! impl Balancer for Freshest {
//!     fn pick(&self, nodes: &[&NodeLoad]) -> Option<usize> {
//!         (0..nodes.len()).min_by_key(|&i| nodes[i].replication_lag().unwrap_or(Duration::MAX))
//!     }
//! }
//!
//! let (a, b) = (NodeLoad::new(), NodeLoad::new());
//! a.set_replication_lag(Some(Duration::from_millis(900)));
//! b.set_replication_lag(Some(Duration::from_millis(20)));
//! assert_eq!(Freshest.pick(&[&a, &b]), Some(1));
//! assert_eq!(Freshest.pick(&[]), None);
//! ```

mod least_in_flight;
mod p2c;
mod round_robin;
mod weighted;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

pub use least_in_flight::LeastInFlight;
pub use p2c::P2c;
pub use round_robin::RoundRobin;
pub use weighted::WeightedRandom;

use crate::load::NodeLoad;
use crate::ConfigError;

/// Chooses one of the candidate nodes for the next query.
pub trait Balancer: Send + Sync + 'static {
    /// The index in `nodes` of the chosen node; `None` only when `nodes` is empty.
    fn pick(&self, nodes: &[&NodeLoad]) -> Option<usize>;
}

impl<B: Balancer + ?Sized> Balancer for Box<B> {
    fn pick(&self, nodes: &[&NodeLoad]) -> Option<usize> {
        (**self).pick(nodes)
    }
}

impl<B: Balancer + ?Sized> Balancer for Arc<B> {
    fn pick(&self, nodes: &[&NodeLoad]) -> Option<usize> {
        (**self).pick(nodes)
    }
}

/// The built-in balancers, by name.
///
/// ```
/// use seawall::balance::{Balancer, Strategy};
/// use seawall::load::NodeLoad;
///
/// let strategy: Strategy = "round-robin".parse().unwrap();
/// let balancer = strategy.build_seeded(7);
/// let nodes = [NodeLoad::new(), NodeLoad::new()];
/// let refs: Vec<&NodeLoad> = nodes.iter().collect();
/// assert_eq!(balancer.pick(&refs), Some(0));
/// assert_eq!(balancer.pick(&refs), Some(1));
/// assert!("fastest".parse::<Strategy>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// [`P2c`]: power of two choices over [`NodeLoad::cost`]. The default.
    #[default]
    P2c,
    /// [`LeastInFlight`]: the node with the fewest calls in flight.
    LeastInFlight,
    /// [`RoundRobin`]: each node in turn.
    RoundRobin,
    /// [`WeightedRandom`]: at random, in proportion to [`NodeLoad::weight`].
    WeightedRandom,
}

impl Strategy {
    /// Every strategy, default first.
    pub const ALL: [Strategy; 4] = [
        Strategy::P2c,
        Strategy::LeastInFlight,
        Strategy::RoundRobin,
        Strategy::WeightedRandom,
    ];

    /// The name [`FromStr`] accepts: `p2c`, `least-in-flight`, `round-robin`, `weighted-random`.
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::P2c => "p2c",
            Strategy::LeastInFlight => "least-in-flight",
            Strategy::RoundRobin => "round-robin",
            Strategy::WeightedRandom => "weighted-random",
        }
    }

    /// The balancer, seeded from the operating system when it is randomised.
    pub fn build(self) -> Box<dyn Balancer> {
        self.build_seeded(os_seed())
    }

    /// The balancer, with a fixed seed when it is randomised (for reproducible runs).
    pub fn build_seeded(self, seed: u64) -> Box<dyn Balancer> {
        match self {
            Strategy::P2c => Box::new(P2c::with_seed(seed)),
            Strategy::LeastInFlight => Box::new(LeastInFlight::new()),
            Strategy::RoundRobin => Box::new(RoundRobin::new()),
            Strategy::WeightedRandom => Box::new(WeightedRandom::with_seed(seed)),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.name() == s)
            .ok_or_else(|| {
                ConfigError::new(
                    "strategy",
                    format!(
                        "`{s}` is not one of p2c, least-in-flight, round-robin, weighted-random"
                    ),
                )
            })
    }
}

/// Lock-free, seedable random numbers: splitmix64 over an atomic counter.
///
/// Each draw is one `fetch_add` and a few multiplications, so concurrent pickers never wait on
/// each other. Draws made one after the other are a fixed sequence for a given seed.
struct SplitMix(AtomicU64);

impl SplitMix {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    fn new(seed: u64) -> Self {
        SplitMix(AtomicU64::new(seed))
    }

    #[inline]
    fn next_u64(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(Self::GAMMA, Relaxed)
            .wrapping_add(Self::GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl fmt::Debug for SplitMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SplitMix")
    }
}

/// A uniform index below `n` from 32 random bits (Lemire's multiply-shift: no division, and a
/// bias of at most n/2³², irrelevant for a handful of nodes). 0 when `n` is 0.
#[inline]
fn below(random: u32, n: usize) -> usize {
    ((u128::from(random) * n as u128) >> 32) as usize
}

/// A seed from the operating system; if it has none to give, the clock's nanoseconds.
fn os_seed() -> u64 {
    use rand::TryRngCore;
    rand::rngs::OsRng.try_next_u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}
