//! Following the HA manager: the topology watcher asks the
//! [`TopologySource`](crate::topology::TopologySource) who the leader is,
//! demotes a primary it no longer names, and probes the one it names until that node says it is
//! writable (the health monitor's role reconciliation then adopts it).

use std::sync::{Arc, Weak};

use crate::driver::Connector;
use crate::failover::ClusterEvent;
use crate::topology::Topology;

use super::{monitor, Node, Role, Shared};

/// Who the topology source (or the primary of record) names leader.
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
    let Some(stop) = cluster.upgrade().map(|s| s.stop.clone()) else {
        return;
    };
    let _running = stop.running();
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
                follow_members(&shared, &topology);
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
        if !stop.sleep(every).await {
            return;
        }
    }
}

/// Takes what the source says into account. Returns the named leader's node when it is not the
/// cluster's primary yet (to be probed).
fn apply<C: Connector>(shared: &Arc<Shared<C>>, topology: &Topology) -> Option<Arc<Node<C>>> {
    apply_leader(shared, Leader::from_topology(topology))
}

/// Takes a named leader into account (from a topology source or the primary of record): the
/// primary it does not name is demoted and fenced. Returns the named node when it is not the
/// cluster's primary yet (to be probed).
pub(crate) fn apply_leader<C: Connector>(
    shared: &Arc<Shared<C>>,
    named: Leader,
) -> Option<Arc<Node<C>>> {
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

/// Adds the members the cluster does not know (with
/// [`topology_members`](super::ClusterBuilder::topology_members)) and removes the replicas the
/// source no longer lists, closing their pools once their handles are back.
fn follow_members<C: Connector>(shared: &Arc<Shared<C>>, topology: &Topology) {
    let Some(open) = shared.member_pool.clone() else {
        return;
    };
    if topology.members.is_empty() {
        // No member at all is no answer: keep what we have.
        return;
    }
    let cluster = super::Cluster {
        shared: shared.clone(),
    };
    let known: Vec<Arc<str>> = cluster.nodes().iter().map(|n| n.name.clone()).collect();
    for member in &topology.members {
        if known.contains(&member.name) {
            continue;
        }
        let added = open(member).and_then(|pool| {
            cluster
                .add_replica(member.name.clone(), pool)
                .map_err(Into::into)
        });
        match added {
            Ok(()) => {
                if let Ok(node) = cluster.node(&member.name) {
                    // Reads only once its probes prove it healthy.
                    node.set_up(false);
                }
                tracing::info!(node = %member.name, "member added by the topology source");
            }
            Err(e) => {
                tracing::warn!(node = %member.name, error = %e, "could not add a member");
            }
        }
    }
    let listed = |name: &str| topology.members.iter().any(|m| &*m.name == name);
    let gone: Vec<Arc<str>> = {
        let t = shared.topology.read();
        t.replicas
            .iter()
            .filter(|r| !listed(&r.name))
            .map(|r| r.name.clone())
            .collect()
    };
    for name in gone {
        if let Ok(node) = cluster.remove_replica(&name) {
            tracing::info!(node = %name, "member removed by the topology source; draining");
            tokio::spawn(async move { node.pool.close().await });
        }
    }
}
