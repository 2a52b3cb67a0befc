//! The node with the fewest calls in flight.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::Balancer;
use crate::load::NodeLoad;

/// Picks the node with the fewest calls in flight ([`NodeLoad::in_flight`]).
///
/// Ties are broken by starting each scan one node further along, so idle nodes share the work
/// instead of the first one taking it all. Deterministic: no randomness involved.
///
/// ```
/// use std::sync::Arc;
/// use seawall::balance::{Balancer, LeastInFlight};
/// use seawall::load::NodeLoad;
///
/// let (busy, idle) = (Arc::new(NodeLoad::new()), NodeLoad::new());
/// let _call = busy.start();
/// assert_eq!(LeastInFlight::new().pick(&[&*busy, &idle]), Some(1));
/// ```
#[derive(Debug, Default)]
pub struct LeastInFlight {
    next_start: AtomicUsize,
}

impl LeastInFlight {
    /// A new balancer.
    pub fn new() -> Self {
        LeastInFlight::default()
    }
}

impl Balancer for LeastInFlight {
    fn pick(&self, nodes: &[&NodeLoad]) -> Option<usize> {
        let n = nodes.len();
        if n == 0 {
            return None;
        }
        let start = self.next_start.fetch_add(1, Relaxed) % n;
        (start..n)
            .chain(0..start)
            .min_by_key(|&i| nodes[i].in_flight())
    }
}
