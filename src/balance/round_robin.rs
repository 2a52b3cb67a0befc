//! Each node in turn.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::Balancer;
use crate::load::NodeLoad;

/// Picks the nodes in turn, ignoring their load: over any `k · len` consecutive picks from the
/// same candidates, each gets exactly `k`.
///
/// ```
/// use seawall::balance::{Balancer, RoundRobin};
/// use seawall::load::NodeLoad;
///
/// let nodes = [NodeLoad::new(), NodeLoad::new(), NodeLoad::new()];
/// let refs: Vec<&NodeLoad> = nodes.iter().collect();
/// let rr = RoundRobin::new();
/// let picks: Vec<_> = (0..4).map(|_| rr.pick(&refs).unwrap()).collect();
/// assert_eq!(picks, [0, 1, 2, 0]);
/// ```
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// A new balancer, starting at the first node.
    pub fn new() -> Self {
        RoundRobin::default()
    }
}

impl Balancer for RoundRobin {
    fn pick(&self, nodes: &[&NodeLoad]) -> Option<usize> {
        match nodes.len() {
            0 => None,
            n => Some(self.next.fetch_add(1, Relaxed) % n),
        }
    }
}
