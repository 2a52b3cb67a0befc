//! The end of a cluster's life, and whether it is ready to serve: [`Cluster::close`] and
//! [`Cluster::ready`].

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::driver::Connector;

use super::Cluster;

/// Stops the cluster's background tasks (health monitors, topology follower, flight recorder).
#[derive(Debug, Default)]
pub(crate) struct Stop {
    stopped: AtomicBool,
    notify: Notify,
    /// Background tasks still running.
    running: AtomicUsize,
    ended: Notify,
}

/// Held by a running background task: [`Cluster::close`] waits for every one to be dropped.
pub(crate) struct Running(Arc<Stop>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.ended.notify_waiters();
        }
    }
}

impl Stop {
    /// Registers a background task until the guard is dropped.
    pub(crate) fn running(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::AcqRel);
        Running(self.clone())
    }

    async fn all_ended(&self) {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            ended.await;
        }
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Sleeps `d`; `false` if the cluster was closed meanwhile (or before).
    pub(crate) async fn sleep(&self, d: Duration) -> bool {
        let stopped = self.notify.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        if self.is_stopped() {
            return false;
        }
        tokio::select! {
            _ = stopped => false,
            _ = tokio::time::sleep(d) => !self.is_stopped(),
        }
    }
}

/// Why [`Cluster::ready`] says the cluster cannot serve yet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReady {
    /// [`Cluster::close`] was called.
    Closed,
    /// No primary is known and usable (down, fenced, not named leader, or none yet): writes
    /// would wait.
    NoPrimary,
    /// No node is up.
    NoHealthyNode {
        /// Nodes configured.
        nodes: usize,
    },
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::Closed => f.write_str("the cluster is closed"),
            NotReady::NoPrimary => f.write_str("no usable primary is known"),
            NotReady::NoHealthyNode { nodes } => write!(f, "none of {nodes} nodes is up"),
        }
    }
}

impl std::error::Error for NotReady {}

impl<C: Connector> Cluster<C> {
    /// Whether the cluster can serve, for an orchestrator's readiness check: not closed, a
    /// usable primary known, and at least one node up (as the health monitor last saw them;
    /// [`Cluster::probe_now`] refreshes). Cheap: reads flags, sends nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), seawall::Error> {
    /// # use seawall::{Cluster, Pool, sim::SimBackend};
    /// # let db = SimBackend::builder("primary").build();
    /// let cluster = Cluster::builder()
    ///     .primary("primary", Pool::builder(db.connector()).name("primary").build()?)
    ///     .build()?;
    /// assert_eq!(cluster.ready(), Ok(()));
    /// cluster.close().await;
    /// assert_eq!(cluster.ready(), Err(seawall::cluster::NotReady::Closed));
    /// # Ok(()) }
    /// ```
    pub fn ready(&self) -> Result<(), NotReady> {
        if self.shared.stop.is_stopped() {
            return Err(NotReady::Closed);
        }
        if self.usable_primary().is_none() {
            return Err(NotReady::NoPrimary);
        }
        let topology = self.shared.topology.read();
        if topology.nodes().any(|n| n.is_up()) {
            Ok(())
        } else {
            Err(NotReady::NoHealthyNode {
                nodes: topology.nodes().count(),
            })
        }
    }

    /// Closes the cluster and waits until it is closed: background tasks (health monitors,
    /// topology follower, flight recorder) stop and close their own connections, every node's
    /// pool closes (new acquires fail
    /// with [`Error::Closed`](crate::Error::Closed), idle connections close now, checked-out
    /// ones when they come back), and writes waiting for a primary fail. Returns once every
    /// connection of every node is closed, so no server session is left behind. Closing
    /// again does nothing more.
    pub async fn close(&self) {
        self.shared.stop.stop();
        self.shared.topology_changed.notify_waiters();
        let nodes: Vec<_> = self.shared.topology.read().nodes().cloned().collect();
        let closing: Vec<_> = nodes
            .iter()
            .map(|node| {
                let pool = node.pool.clone();
                async move { pool.close().await }
            })
            .collect();
        for close in closing {
            close.await;
        }
        // The tasks end at once (they sleep on the stop signal), closing what they hold (the
        // health monitors' probe connections).
        self.shared.stop.all_ended().await;
    }
}
