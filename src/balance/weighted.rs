//! At random, in proportion to each node's weight.

use super::{below, os_seed, Balancer, SplitMix};
use crate::load::NodeLoad;

/// Picks a node at random with probability proportional to its [`NodeLoad::weight`]: a node of
/// weight 2 gets twice the share of a node of weight 1, and weight 0 gets nothing. When every
/// weight is 0 the pick is uniform, so there is always an answer.
///
/// Static weights suit nodes of different sizes; they do not react to load.
///
/// ```
/// use seawall::balance::{Balancer, WeightedRandom};
/// use seawall::load::NodeLoad;
///
/// let (off, on) = (NodeLoad::new(), NodeLoad::new());
/// off.set_weight(0);
/// let balancer = WeightedRandom::with_seed(3);
/// assert!((0..100).all(|_| balancer.pick(&[&off, &on]) == Some(1)));
/// ```
#[derive(Debug)]
pub struct WeightedRandom {
    rng: SplitMix,
}

impl WeightedRandom {
    /// A balancer seeded from the operating system.
    pub fn new() -> Self {
        WeightedRandom::with_seed(os_seed())
    }

    /// A balancer whose random draws are fixed by `seed`.
    pub fn with_seed(seed: u64) -> Self {
        WeightedRandom {
            rng: SplitMix::new(seed),
        }
    }
}

impl Default for WeightedRandom {
    fn default() -> Self {
        WeightedRandom::new()
    }
}

impl Balancer for WeightedRandom {
    fn pick(&self, nodes: &[&NodeLoad]) -> Option<usize> {
        if nodes.is_empty() {
            return None;
        }
        let random = self.rng.next_u64();
        let total: u64 = nodes.iter().map(|node| u64::from(node.weight())).sum();
        if total == 0 {
            return Some(below(random as u32, nodes.len()));
        }
        // A point in [0, total), then the node whose span of weight contains it. Weights are
        // read again, and may have changed: fall back to the last node rather than to nothing.
        let mut point = ((u128::from(random) * u128::from(total)) >> 64) as u64;
        for (i, node) in nodes.iter().enumerate() {
            let weight = u64::from(node.weight());
            if point < weight {
                return Some(i);
            }
            point -= weight;
        }
        Some(nodes.len() - 1)
    }
}
