//! Background probes: each node is asked, every `probe_interval`, for its role, position and
//! replication lag, which the router uses to skip lagging replicas and to serve
//! read-your-writes.

use std::sync::Weak;
use std::time::Duration;

use crate::driver::Connector;

use super::node::{Node, Role};

/// Probes one node until it is dropped.
pub(crate) async fn run<C: Connector>(node: Weak<Node<C>>, every: Duration, timeout: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(node) = node.upgrade() else {
            return;
        };
        if node.pool.is_closed() {
            return;
        }
        probe_once(&node, timeout).await;
    }
}

/// One probe; failures are logged and leave the last known figures in place (the breaker and
/// the pool notice a dead node through real traffic).
pub(crate) async fn probe_once<C: Connector>(node: &Node<C>, timeout: Duration) {
    let probe = async {
        let mut conn = node
            .pool
            .get_timeout(timeout)
            .await
            .map_err(|e| e.to_string())?;
        node.pool
            .connector()
            .probe(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(Some(status))) => {
            node.load.set_replication_lag(status.lag);
            if let Some(position) = status.position {
                node.load.set_replayed_position(position);
            }
            let reported = if status.is_primary {
                Role::Primary
            } else {
                Role::Replica
            };
            if reported != node.role() {
                tracing::warn!(
                    node = %node.name,
                    configured = %node.role(),
                    reported = %reported,
                    "node reports a different role than configured"
                );
            }
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::debug!(node = %node.name, error = %e, "probe failed"),
        Err(_) => tracing::debug!(node = %node.name, ?timeout, "probe timed out"),
    }
}
