//! One backend of a cluster: its pool and everything that judges it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::admission::{Admission, AdmissionSnapshot};
use crate::breaker::{BreakerSnapshot, CircuitBreaker};
use crate::driver::Connector;
use crate::load::NodeLoad;
use crate::pool::{Pool, State};

/// What a node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Takes writes (and reads that must see the latest data).
    Primary,
    /// Takes reads; may lag behind the primary.
    Replica,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        })
    }
}

/// A backend in a [`Cluster`](super::Cluster): its pool, load model, breaker and admission gate.
pub struct Node<C: Connector> {
    pub(crate) name: Arc<str>,
    primary: AtomicBool,
    pub(crate) pool: Pool<C>,
    pub(crate) load: Arc<NodeLoad>,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) admission: Admission,
}

impl<C: Connector> Node<C> {
    pub(crate) fn new(
        name: Arc<str>,
        role: Role,
        pool: Pool<C>,
        load: NodeLoad,
        breaker: CircuitBreaker,
        admission: Admission,
    ) -> Self {
        load.set_capacity(pool.state().max_size);
        if role == Role::Primary {
            // A primary is never behind itself.
            load.set_replication_lag(Some(std::time::Duration::ZERO));
        }
        Node {
            name,
            primary: AtomicBool::new(role == Role::Primary),
            pool,
            load: Arc::new(load),
            breaker,
            admission,
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's current role.
    pub fn role(&self) -> Role {
        if self.primary.load(Ordering::Relaxed) {
            Role::Primary
        } else {
            Role::Replica
        }
    }

    /// The node's connection pool.
    pub fn pool(&self) -> &Pool<C> {
        &self.pool
    }

    /// The node's load (latency, in flight, errors, lag).
    pub fn load(&self) -> &NodeLoad {
        &self.load
    }

    /// The node's circuit breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The node's admission gate.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Everything known about the node, at one instant.
    pub fn snapshot(&self) -> NodeSnapshot {
        let load = &self.load;
        NodeSnapshot {
            name: self.name.clone(),
            role: self.role(),
            latency: load.latency(),
            in_flight: load.in_flight(),
            error_rate: load.error_rate(),
            replication_lag: load.replication_lag(),
            replayed_position: load.replayed_position(),
            pool: self.pool.state(),
            breaker: self.breaker.snapshot(),
            admission: self.admission.snapshot(),
        }
    }
}

impl<C: Connector> fmt::Debug for Node<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("role", &self.role())
            .finish_non_exhaustive()
    }
}

/// A node's figures at one instant, from [`Cluster::snapshot`](super::Cluster::snapshot).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeSnapshot {
    /// The node's name.
    pub name: Arc<str>,
    /// Its role.
    pub role: Role,
    /// Peak-EWMA latency of its recent work.
    pub latency: std::time::Duration,
    /// Work in flight (acquired handles not yet dropped).
    pub in_flight: usize,
    /// Recent error rate, in `[0, 1]`.
    pub error_rate: f64,
    /// Replication lag reported by the last probe.
    pub replication_lag: Option<std::time::Duration>,
    /// Replayed (replica) or written (primary) position reported by the last probe.
    pub replayed_position: u64,
    /// Its pool.
    pub pool: State,
    /// Its circuit breaker.
    pub breaker: BreakerSnapshot,
    /// Its admission gate.
    pub admission: AdmissionSnapshot,
}
