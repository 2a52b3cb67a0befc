//! Following the HA manager: the topology watcher asks the
//! [`TopologySource`](crate::topology::TopologySource) who the leader is,
//! demotes a primary it no longer names, and probes the one it names until that node says it is
//! writable (the health monitor's role reconciliation then adopts it).

use std::sync::{Arc, Weak};

use crate::driver::Connector;
use crate::failover::ClusterEvent;
use crate::topology::Topology;

use super::{monitor, Node, Role, Shared};

/// Who the topology source names leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Leader {
    /// No source, or it has not answered yet: the configured primary stands.
    Unknown,
    /// The source names none (a failover in progress): no node may take writes.
    None,
    /// The only node that may take writes.
    Named(Arc<str>),
}

impl Leader {
    /// Whether the node called `name` may take writes.
    pub(crate) fn allows(&self, name: &str) -> bool {
        match self {
            Leader::Unknown => true,
            Leader::None => false,
            Leader::Named(leader) => **leader == *name,
        }
    }

    fn from_topology(topology: &Topology) -> Self {
        match topology.leader() {
            Some(member) => Leader::Named(member.name.clone()),
            None => Leader::None,
        }
    }
}

/// Asks the source every `topology_interval` until the cluster is dropped.
pub(crate) async fn run<C: Connector>(cluster: Weak<Shared<C>>) {
    let mut failing = false;
    loop {
        let Some(shared) = cluster.upgrade() else {
            return;
        };
        let Some(source) = shared.settings.topology_source.clone() else {
            return;
        };
        let every = shared.settings.topology_interval;
        drop(shared);
        let fetched = source.fetch().await;
        let Some(shared) = cluster.upgrade() else {
            return;
        };
        match fetched {
            Ok(topology) => {
                if failing {
                    tracing::info!("topology source answers again");
                    failing = false;
                }
                if let Some(leader) = apply(&shared, &topology) {
                    // Named but not yet adopted: probe it now rather than at the health
                    // monitor's next round; its role reconciliation adopts it once writable.
                    let timeout = shared.settings.health.timeout;
                    let result = monitor::probe(&leader, timeout).await;
                    monitor::observe(&shared, &leader, result);
                }
            }
            Err(error) => {
                // The last leader named stands: the source's outage is not the database's.
                if !failing {
                    tracing::warn!(%error, "topology source failed; following the last leader it named");
                    failing = true;
                }
            }
        }
        drop(shared);
        tokio::time::sleep(every).await;
    }
}

/// Takes what the source says into account. Returns the named leader's node when it is not the
/// cluster's primary yet (to be probed).
fn apply<C: Connector>(shared: &Arc<Shared<C>>, topology: &Topology) -> Option<Arc<Node<C>>> {
    let named = Leader::from_topology(topology);
    let changed = {
        let mut leader = shared.leader.write();
        let changed = *leader != named;
        if changed {
            *leader = named.clone();
        }
        changed
    };
    if changed {
        let leader = match &named {
            Leader::Named(name) => Some(name.clone()),
            _ => None,
        };
        shared.emit(ClusterEvent::LeaderChanged { leader });
        demote_unnamed(shared, &named);
        shared.topology_changed.notify_waiters();
    }
    let Leader::Named(name) = &named else {
        return None;
    };
    let topology = shared.topology.read();
    if topology.primary.as_ref().is_some_and(|p| *p.name == **name) {
        return None;
    }
    let node = topology.nodes().find(|n| *n.name == **name).cloned();
    node
}

/// The primary is no longer the one named: it stops taking writes at once and is fenced until
/// it reports being a replica (it may still be writable: an HA agent frozen beside a running
/// server).
fn demote_unnamed<C: Connector>(shared: &Shared<C>, named: &Leader) {
    let mut topology = shared.topology.write();
    let Some(primary) = topology.primary.clone() else {
        return;
    };
    if named.allows(&primary.name) {
        return;
    }
    topology.primary = None;
    primary.set_role(Role::Replica);
    primary.set_fenced(true);
    topology.replicas.push(primary.clone());
    drop(topology);
    monitor::primary_lost(shared, &primary, "the HA manager no longer names it leader");
}
