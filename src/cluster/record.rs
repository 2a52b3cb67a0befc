//! Following the primary of record ([`PromotionLease`](crate::failover::PromotionLease)): every
//! probe interval the record is read and the node it names becomes the only one that may take
//! writes, as with an HA manager's leader; an empty record is filled with the configured
//! primary. Writes wait while the last good read is older than the lease's validity.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::driver::Connector;

use super::follow::{self, Leader};
use super::{monitor, Shared};

/// How long a read of the record stands: two probe intervals and the probe timeout.
pub(crate) fn validity<C: Connector>(shared: &Shared<C>) -> Duration {
    let health = &shared.settings.health;
    health.interval.unwrap_or(Duration::from_millis(500)) * 2 + health.timeout
}

/// Without a lease, always; with one, whether the record was read within its validity.
pub(crate) fn is_fresh<C: Connector>(shared: &Shared<C>) -> bool {
    if shared.settings.promotion_lease.is_none() {
        return true;
    }
    let read_at = *shared.record_read_at.lock();
    read_at.is_some_and(|at| at.elapsed() < validity(shared))
}

/// Reads the record every probe interval until the cluster is dropped or closed.
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
        let every = shared
            .settings
            .health
            .interval
            .unwrap_or(Duration::from_millis(500));
        match read(&shared).await {
            Ok(()) if failing => {
                tracing::info!("promotion lease readable again");
                failing = false;
            }
            Ok(()) => {}
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "promotion lease unreadable; writes wait once its validity runs out");
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

/// One read of the record, applied.
pub(crate) async fn read<C: Connector>(
    shared: &Arc<Shared<C>>,
) -> Result<(), crate::failover::LeaseError> {
    let Some(lease) = shared.settings.promotion_lease.clone() else {
        return Ok(());
    };
    let started = Instant::now();
    let mut recorded = lease.primary().await?;
    if recorded.is_none() {
        // First start of the fleet: the configured primary, unless another instance
        // recorded one first.
        let primary = shared
            .topology
            .read()
            .primary
            .as_ref()
            .map(|p| p.name.clone());
        if let Some(primary) = primary {
            if lease.swap(None, &primary).await? {
                recorded = Some(primary.to_string());
            } else {
                recorded = lease.primary().await?;
            }
        }
    }
    let Some(name) = recorded else {
        return Ok(());
    };
    accept(shared, &name, started);
    Ok(())
}

/// Takes the record naming `name`, read from `started`, into account.
pub(crate) fn accept<C: Connector>(shared: &Arc<Shared<C>>, name: &str, started: Instant) {
    let was_fresh = is_fresh(shared);
    {
        let mut read_at = shared.record_read_at.lock();
        if read_at.is_none_or(|at| at < started) {
            *read_at = Some(started);
        }
    }
    if let Some(node) = follow::apply_leader(shared, Leader::Named(name.into())) {
        // Named but not adopted yet: probe it now; role reconciliation adopts it once it
        // says it is writable.
        let shared = shared.clone();
        tokio::spawn(async move {
            let result = monitor::probe(&node, shared.settings.health.timeout).await;
            monitor::observe(&shared, &node, result);
        });
    }
    if !was_fresh {
        // Writes that waited for a fresh read may go.
        shared.topology_changed.notify_waiters();
    }
}
