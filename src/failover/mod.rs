//! Failover: health monitoring, topology discovery and (opt-in) automatic promotion.
//!
//! The postmortem's first task was "promote a read replica when the primary fails". Doing it
//! inside the application is only safe with a few rules, which this module implements:
//!
//! * **Ask the role, not just "are you there"**: a demoted or recovering PostgreSQL still
//!   answers `SELECT 1` (deadpool #395). Every node is probed every
//!   [`HealthConfig::interval`] through [`Connector::probe`], which reports the server's
//!   role, position and lag. `down_after` consecutive failed probes mark a node down (reads skip
//!   it, writes wait for a primary); `up_after` consecutive good ones bring it back.
//! * **Follow the real primary** (topology discovery, PgCat #228): when the primary is lost and
//!   another node reports itself primary (promoted by an operator, Patroni, or seawall), writes
//!   follow it. While there is none, writes wait up to their deadline and then fail with
//!   [`Error::NoPrimary`](crate::Error::NoPrimary) saying how long it has been gone; reads keep
//!   going to replicas.
//! * **Fence split brain**: a node that claims to be primary while another healthy node is
//!   primary is fenced (used for nothing) and reported loudly ([`ClusterEvent::SplitBrain`]).
//!   An old primary that comes back as a replica (after `pg_rewind`) is unfenced.
//! * **Promote only when it is safe** ([`Promoter`], opt-in with
//!   [`ClusterBuilder::auto_failover`](crate::cluster::ClusterBuilder::auto_failover)): only after
//!   the primary failed [`PromotionConfig::min_failures`] consecutive probes spanning at least
//!   [`PromotionConfig::min_down_for`]; never while the old primary still answers any probe (it
//!   is probed once more right before promoting); one promotion at a time (single flight); the
//!   most caught-up healthy replica (highest replayed position, freshly probed) wins.
//! * **In a fleet, promote through a lease** ([`lease`]): every application instance embeds
//!   its own seawall, so single flight inside one process is not enough. With a
//!   [`PromotionLease`] shared by every instance ([`Etcd`], feature `etcd`), writes go only to
//!   the node the record names, one instance wins the swap that moves it and promotes only after
//!   every other instance has stopped writing to the old primary. Without a lease,
//!   `auto_failover` must be declared
//!   [`single_instance`](crate::cluster::ClusterBuilder::single_instance), or the build fails.
//!
//! Every step is a [`ClusterEvent`] on [`Cluster::subscribe`](crate::cluster::Cluster::subscribe)
//! (for alerting) and a `seawall_cluster_events_total{event}` metric.
//!
//! # After a promotion: what PostgreSQL needs
//!
//! With asynchronous replication the other replicas still stream from the old primary. Point
//! them at the new one: `ALTER SYSTEM SET primary_conninfo = 'host=… port=…'` then
//! `SELECT pg_reload_conf()` (reloadable since PostgreSQL 13); `recovery_target_timeline` is
//! `latest` by default since PostgreSQL 12, so they follow the new timeline. Do it from the
//! [`ClusterBuilder::on_promoted`](crate::cluster::ClusterBuilder::on_promoted) hook or from the
//! [`ClusterEvent::Promoted`] event. The old primary must be rewound (`CHECKPOINT` on the new
//! primary, then `pg_rewind --source-server=… -R`) before it rejoins as a replica. Acknowledged
//! writes that had not reached the promoted replica are lost with asynchronous replication; set
//! `synchronous_standby_names` (e.g. `ANY 1 (replica1, replica2)`) to lose none.
//!
//! # Timing
//!
//! Detection is the whole budget: PostgreSQL's promotion takes ~20 ms and `pg_promote()` returns
//! in ~120 ms. With the defaults (probe every 500 ms, down after 3 failures, promotion after
//! 3 failures spanning 1 s) a killed primary is replaced in about 1.5–2 s.
//! [`HealthConfig::aggressive`] with [`PromotionConfig::aggressive`] (100 ms probes, 2
//! failures, 200 ms) brings it under 1 s, at the price of promoting on a ~200 ms network blip.

#[cfg(feature = "etcd")]
mod etcd;
pub mod lease;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::diagnosis::Incident;
use crate::driver::Connector;
use crate::error::{ConfigError, DriverError};

#[cfg(feature = "etcd")]
pub use etcd::Etcd;
pub use lease::{LeaseError, MemoryLease, PromotionLease};

/// How nodes are probed and judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthConfig {
    /// Time between probes of a node; `None` disables the monitor (no lag, no discovery, no
    /// failover). Default 500 ms.
    pub interval: Option<Duration>,
    /// How long a probe may take before it counts as failed. Default 1 s.
    pub timeout: Duration,
    /// Consecutive failed probes that mark a node down. Default 3.
    pub down_after: u32,
    /// Consecutive good probes that bring a down node back. Default 2.
    pub up_after: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Some(Duration::from_millis(500)),
            timeout: Duration::from_secs(1),
            down_after: 3,
            up_after: 2,
        }
    }
}

impl HealthConfig {
    /// Probe every 100 ms with a 100 ms timeout; down after 2 failures, up after 1 success.
    pub fn aggressive() -> Self {
        HealthConfig {
            interval: Some(Duration::from_millis(100)),
            timeout: Duration::from_millis(100),
            down_after: 2,
            up_after: 1,
        }
    }

    /// With another probe interval (`None` disables the monitor).
    pub fn with_interval(mut self, every: Option<Duration>) -> Self {
        self.interval = every;
        self
    }

    /// With another probe timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// With other thresholds.
    pub fn with_thresholds(mut self, down_after: u32, up_after: u32) -> Self {
        self.down_after = down_after;
        self.up_after = up_after;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "probe_interval",
                "must be greater than zero",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                "probe_timeout",
                "must be greater than zero",
            ));
        }
        if self.down_after == 0 {
            return Err(ConfigError::new("health.down_after", "must be at least 1"));
        }
        if self.up_after == 0 {
            return Err(ConfigError::new("health.up_after", "must be at least 1"));
        }
        Ok(())
    }
}

/// When an automatic promotion may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PromotionConfig {
    /// Consecutive failed probes of the primary required. Default 3.
    pub min_failures: u32,
    /// Time from the first of those failures required. Default 1 s.
    pub min_down_for: Duration,
}

impl Default for PromotionConfig {
    fn default() -> Self {
        PromotionConfig {
            min_failures: 3,
            min_down_for: Duration::from_secs(1),
        }
    }
}

impl PromotionConfig {
    /// Promote after 2 failed probes spanning 200 ms.
    pub fn aggressive() -> Self {
        PromotionConfig {
            min_failures: 2,
            min_down_for: Duration::from_millis(200),
        }
    }

    /// With other thresholds.
    pub fn with_thresholds(mut self, min_failures: u32, min_down_for: Duration) -> Self {
        self.min_failures = min_failures;
        self.min_down_for = min_down_for;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.min_failures == 0 {
            return Err(ConfigError::new(
                "promotion.min_failures",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Turns a replica into the primary.
///
/// The PostgreSQL implementation is `seawall::sqlx::PgPromoter` (`SELECT pg_promote()`); the
/// simulator's is [`SimPromoter`](crate::sim::SimPromoter).
#[async_trait]
pub trait Promoter<C: Connector>: Send + Sync + 'static {
    /// Promotes the server behind `pool`; returns once it accepts writes.
    async fn promote(&self, pool: &crate::pool::Pool<C>) -> Result<(), DriverError>;
}

/// Called after a promotion, with the new primary's name, the old one's, and the other
/// replicas' names (to repoint them: see the [module docs](self)).
pub type PromotedHook = Arc<dyn Fn(&Promoted) + Send + Sync>;

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Promoted {
    /// The node that became primary.
    pub new_primary: Arc<str>,
    /// The node it replaced (now fenced until it comes back as a replica).
    pub old_primary: Arc<str>,
    /// The other replicas, which may need repointing.
    pub replicas: Vec<Arc<str>>,
    /// From the decision to promote to the new primary accepting writes.
    pub took: Duration,
}

/// A step of the cluster's life, for alerting.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A node failed `down_after` consecutive probes.
    NodeDown {
        /// The node.
        node: Arc<str>,
        /// The last probe error.
        error: String,
    },
    /// A down node passed `up_after` consecutive probes.
    NodeUp {
        /// The node.
        node: Arc<str>,
    },
    /// A node's circuit breaker opened.
    BreakerOpened {
        /// The node.
        node: Arc<str>,
    },
    /// The cluster has no usable primary: writes wait, then fail with `NoPrimary`.
    PrimaryLost {
        /// The primary that was lost.
        node: Arc<str>,
        /// Why: down, demoted.
        reason: String,
    },
    /// An automatic promotion started.
    PromotionStarted {
        /// The replica chosen.
        candidate: Arc<str>,
        /// Its replayed position.
        position: u64,
    },
    /// An automatic promotion finished.
    Promoted(Promoted),
    /// An automatic promotion failed; it is retried at the next probe round.
    PromotionFailed {
        /// The replica that could not be promoted.
        candidate: Arc<str>,
        /// The promoter's error.
        error: String,
    },
    /// Writes have a primary again.
    WritesResumed {
        /// The primary.
        primary: Arc<str>,
        /// How long writes had no primary.
        after: Duration,
    },
    /// A node claims to be primary while another is: it is fenced.
    SplitBrain {
        /// The fenced node.
        node: Arc<str>,
        /// The primary in use.
        primary: Arc<str>,
    },
    /// A fenced node came back as a replica and is used for reads again.
    Unfenced {
        /// The node.
        node: Arc<str>,
    },
    /// A node reports being primary on an older timeline than another node of the cluster: it
    /// was failed over (and may still be writable, its HA agent frozen or cut off). It is
    /// fenced: no writes, no reads, until it reports being a replica.
    StaleTimeline {
        /// The fenced node.
        node: Arc<str>,
        /// Its timeline.
        timeline: u32,
        /// The newest timeline a node of the cluster reports.
        highest: u32,
    },
    /// The topology source (the HA manager) names another leader, or none: writes go only to
    /// the node it names, once that node's probe says it is writable.
    LeaderChanged {
        /// The leader now named; `None` while the HA manager names none (a failover).
        leader: Option<Arc<str>>,
    },
    /// The diagnosis opened an incident: its verdict names the layer and the node, with
    /// numbers ([`diagnosis`](crate::diagnosis)).
    IncidentOpened(Incident),
    /// An incident's condition is gone.
    IncidentClosed(Incident),
}

/// Publishes an event: to subscribers, as the `seawall_cluster_events_total{event}` metric, and
/// as a trace at a level fitting its gravity.
pub(crate) fn emit(events: &tokio::sync::broadcast::Sender<ClusterEvent>, event: ClusterEvent) {
    metrics::counter!("seawall_cluster_events_total", "event" => event.name()).increment(1);
    match &event {
        ClusterEvent::NodeUp { .. }
        | ClusterEvent::WritesResumed { .. }
        | ClusterEvent::Unfenced { .. }
        | ClusterEvent::LeaderChanged { .. }
        | ClusterEvent::PromotionStarted { .. }
        | ClusterEvent::Promoted(_) => tracing::info!(?event, "cluster event"),
        ClusterEvent::IncidentOpened(incident) => tracing::error!(%incident, "incident opened"),
        ClusterEvent::IncidentClosed(incident) => tracing::info!(%incident, "incident closed"),
        ClusterEvent::SplitBrain { .. } | ClusterEvent::StaleTimeline { .. } => {
            tracing::error!(?event, "cluster event")
        }
        _ => tracing::warn!(?event, "cluster event"),
    }
    // Having no subscriber is not an error.
    let _ = events.send(event);
}

impl ClusterEvent {
    /// A short name, used as the metric label.
    pub fn name(&self) -> &'static str {
        match self {
            ClusterEvent::NodeDown { .. } => "node_down",
            ClusterEvent::NodeUp { .. } => "node_up",
            ClusterEvent::BreakerOpened { .. } => "breaker_opened",
            ClusterEvent::PrimaryLost { .. } => "primary_lost",
            ClusterEvent::PromotionStarted { .. } => "promotion_started",
            ClusterEvent::Promoted(_) => "promoted",
            ClusterEvent::PromotionFailed { .. } => "promotion_failed",
            ClusterEvent::WritesResumed { .. } => "writes_resumed",
            ClusterEvent::SplitBrain { .. } => "split_brain",
            ClusterEvent::Unfenced { .. } => "unfenced",
            ClusterEvent::LeaderChanged { .. } => "leader_changed",
            ClusterEvent::StaleTimeline { .. } => "stale_timeline",
            ClusterEvent::IncidentOpened(_) => "incident_opened",
            ClusterEvent::IncidentClosed(_) => "incident_closed",
        }
    }
}
