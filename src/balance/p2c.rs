//! Power of two choices over [`NodeLoad::cost`].

use super::{below, os_seed, Balancer, SplitMix};
use crate::load::NodeLoad;

/// Picks two distinct nodes at random and returns the one with the lower
/// [`cost`](NodeLoad::cost) (peak-EWMA latency × (in-flight + 1)); the first on a tie.
///
/// This is tower's `balance::p2c` over Finagle's peak-EWMA load. Comparing two random nodes
/// rather than scanning for the cheapest keeps a pick O(1) and, more importantly, keeps many
/// routers from all sending to the same node at once: the worst node can never win, yet load
/// spreads over the rest.
///
/// A pick does not read the clock: it compares the two costs as of the later of the nodes' last
/// latency samples, which orders them as comparing now would when the nodes share a decay (with
/// different decays it is a close approximation).
///
/// ```
/// use std::time::Duration;
/// use seawall::balance::{Balancer, P2c};
/// use seawall::load::NodeLoad;
///
/// let (fast, slow) = (NodeLoad::new(), NodeLoad::new());
/// fast.record(Duration::from_millis(1), true);
/// slow.record(Duration::from_millis(50), true);
/// // With two nodes both are always drawn, so the cheaper one wins.
/// assert_eq!(P2c::with_seed(1).pick(&[&slow, &fast]), Some(1));
/// ```
#[derive(Debug)]
pub struct P2c {
    rng: SplitMix,
}

impl P2c {
    /// A balancer seeded from the operating system.
    pub fn new() -> Self {
        P2c::with_seed(os_seed())
    }

    /// A balancer whose random draws are fixed by `seed`.
    pub fn with_seed(seed: u64) -> Self {
        P2c {
            rng: SplitMix::new(seed),
        }
    }
}

impl Default for P2c {
    fn default() -> Self {
        P2c::new()
    }
}

impl Balancer for P2c {
    fn pick(&self, nodes: &[&NodeLoad]) -> Option<usize> {
        let n = nodes.len();
        if n < 2 {
            return n.checked_sub(1);
        }
        // One draw, two halves: `a` among all, `b` among the others.
        let random = self.rng.next_u64();
        let a = below((random >> 32) as u32, n);
        let mut b = below(random as u32, n - 1);
        if b >= a {
            b += 1;
        }
        // From their last samples on, both estimates decay by the same factor per second (nodes
        // of a cluster share one `LoadConfig`). So
        // comparing the costs as of the later of those instants orders them exactly as comparing
        // them now would, and spares reading the clock, the slowest step of a pick.
        let at = nodes[a]
            .latency_updated_at()
            .max(nodes[b].latency_updated_at());
        if nodes[b].cost_at(at) < nodes[a].cost_at(at) {
            Some(b)
        } else {
            Some(a)
        }
    }
}
