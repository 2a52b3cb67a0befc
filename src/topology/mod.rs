//! Topology sources: who the cluster's members are and which one is the leader, as an HA
//! manager with a consensus store sees it.
//!
//! Promotion belongs to an HA manager (Patroni on etcd, pg_auto_failover, CloudNativePG): it
//! serialises leader changes through its consensus store, so every application instance sees one
//! leader. A [`TopologySource`] lets a [`Cluster`](crate::Cluster) follow it: with one
//! configured, writes go only to the node the source names leader, and only once that node's
//! own probe says it is writable. A node that is writable but not named leader (an old primary
//! whose HA agent froze, say) is fenced: it takes nothing, in any instance, however it answers.
//!
//! The trait is one method; [`Patroni`] (feature `patroni`) reads Patroni's REST API.

#[cfg(feature = "patroni")]
mod patroni;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

#[cfg(feature = "patroni")]
pub use patroni::Patroni;

/// Reads the cluster's topology from the authority that decides it.
#[async_trait]
pub trait TopologySource: Send + Sync + 'static {
    /// The members and the leader, now. Called by the cluster's topology watcher every
    /// [`topology_interval`](crate::cluster::ClusterBuilder::topology_interval).
    async fn fetch(&self) -> Result<Topology, TopologyError>;
}

/// What a source says at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Topology {
    /// The members, in the source's order.
    pub members: Vec<Member>,
}

impl Topology {
    /// A topology of these members.
    pub fn new(members: Vec<Member>) -> Self {
        Topology { members }
    }

    /// The member named leader, if exactly one is (two leaders is no answer: `None`).
    pub fn leader(&self) -> Option<&Member> {
        let mut leaders = self.members.iter().filter(|m| m.role == MemberRole::Leader);
        match (leaders.next(), leaders.next()) {
            (Some(leader), None) => Some(leader),
            _ => None,
        }
    }
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member {
    /// Its name (Patroni's member name); matched against the cluster's node names.
    pub name: Arc<str>,
    /// What the source says it is.
    pub role: MemberRole,
    /// The source's word for its state (`running`, `streaming`, `stopped`, ...).
    pub state: String,
    /// Where its database listens.
    pub host: String,
    /// Its database port.
    pub port: u16,
    /// Its timeline, when known.
    pub timeline: Option<u64>,
    /// Bytes of WAL it is behind the leader, when known.
    pub lag: Option<u64>,
}

impl Member {
    /// A member with a name, role, host and port (state `running`, timeline and lag unknown).
    pub fn new(name: impl Into<Arc<str>>, role: MemberRole, host: &str, port: u16) -> Self {
        Member {
            name: name.into(),
            role,
            state: "running".to_owned(),
            host: host.to_owned(),
            port,
            timeline: None,
            lag: None,
        }
    }
}

/// A member's role as its source says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MemberRole {
    /// Holds the leader key: the only member that may take writes.
    Leader,
    /// A replica (Patroni's `replica`, `sync_standby`, ...).
    Replica,
    /// The leader of a standby cluster: replicates from elsewhere, takes no writes.
    StandbyLeader,
    /// Anything else the source said, kept as said.
    Other(String),
}

impl MemberRole {
    /// Patroni's words, in both vocabularies (3.x `master`, 4.x `primary`).
    pub fn from_patroni(role: &str) -> Self {
        match role {
            "leader" | "master" | "primary" => MemberRole::Leader,
            "replica" | "sync_standby" | "quorum_standby" => MemberRole::Replica,
            "standby_leader" => MemberRole::StandbyLeader,
            other => MemberRole::Other(other.to_owned()),
        }
    }
}

/// A source that could not say.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopologyError {
    /// No endpoint answered; each one tried, with why.
    Unreachable {
        /// `(endpoint, error)` per endpoint tried.
        tried: Vec<(String, String)>,
    },
    /// An endpoint answered something that is not a topology.
    BadAnswer {
        /// The endpoint.
        endpoint: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyError::Unreachable { tried } => {
                f.write_str("no topology endpoint answered")?;
                for (i, (endpoint, error)) in tried.iter().enumerate() {
                    let sep = if i == 0 { ": " } else { "; " };
                    write!(f, "{sep}{endpoint}: {error}")?;
                }
                Ok(())
            }
            TopologyError::BadAnswer { endpoint, reason } => {
                write!(f, "{endpoint} answered no topology: {reason}")
            }
        }
    }
}

impl std::error::Error for TopologyError {}

/// A fixed topology, for tests and for deployments without an HA manager that still want one
/// node pinned as the only writer. Cheap to clone; [`Static::set`] changes what it says.
#[derive(Debug, Clone)]
pub struct Static {
    topology: Arc<parking_lot::Mutex<Result<Topology, TopologyError>>>,
}

impl Static {
    /// A source that says `topology`.
    pub fn new(topology: Topology) -> Self {
        Static {
            topology: Arc::new(parking_lot::Mutex::new(Ok(topology))),
        }
    }

    /// From now on it says `topology` (or fails with the error).
    pub fn set(&self, topology: Result<Topology, TopologyError>) {
        *self.topology.lock() = topology;
    }
}

impl Default for Static {
    /// No members, no leader.
    fn default() -> Self {
        Static::new(Topology::default())
    }
}

#[async_trait]
impl TopologySource for Static {
    async fn fetch(&self) -> Result<Topology, TopologyError> {
        self.topology.lock().clone()
    }
}
