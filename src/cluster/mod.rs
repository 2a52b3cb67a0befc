//! The cluster: one primary and any number of replicas, with reads routed by load.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), seawall::Error> {
//! use seawall::cluster::{Cluster, Role};
//! use seawall::pool::Pool;
//! use seawall::sim::SimBackend;
//!
//! let pool = |name: &str| {
//!     let db = SimBackend::builder(name).primary(name == "primary").build();
//!     Pool::builder(db.connector()).name(name).max_size(8).build().unwrap()
//! };
//! let cluster = Cluster::builder()
//!     .primary("primary", pool("primary"))
//!     .replica("replica-1", pool("replica-1"))
//!     .build()?;
//!
//! let mut conn = cluster.read().await?;          // a replica, chosen by load
//! assert_eq!(conn.role(), Role::Replica);
//! conn.query("SELECT 1").await.unwrap();         // derefs to the driver's connection
//! drop(conn);
//!
//! let conn = cluster.route("UPDATE t SET x = 1").await?; // not read-only: the primary
//! assert_eq!(conn.node_name(), "primary");
//! # Ok(()) }
//! ```
//!
//! # How an acquire is routed
//!
//! 1. **Classify** (for [`Cluster::route`]): the statement is read-only, or it goes to the
//!    primary ([`classify`](crate::classify)).
//! 2. **Choose a node**: writes go to the primary. Reads go to a replica picked by the
//!    [`Balancer`] among those whose breaker is not open, whose lag is
//!    within `max_replica_lag`, and which have replayed the position a read-your-writes read
//!    asks for (on its timeline, when it names one: see [`AcquireOptions::timeline`]). A node
//!    that reports primary on an older timeline than another node is fenced and never takes
//!    writes ([`ClusterEvent::StaleTimeline`]). When none can serve, the read falls back to the primary, but only within its
//!    protection budget (`primary_read_share` of its pool); past it, it fails fast with
//!    [`Error::NoReplica`], saying why.
//! 3. **Breaker**: an open breaker fails the call at once ([`Error::Unavailable`]); a replica
//!    that refuses is skipped and the next best is tried.
//! 4. **Admit**: the node's admission gate keeps its in-flight work under an adaptive limit,
//!    writes ahead of reads, and sheds instead of letting a queue grow
//!    ([`Error::Overloaded`]).
//! 5. **Pool**: the node's [`Pool`] hands out a connection within the remaining deadline.
//!
//! The returned [`ClusterConn`] pins one connection; when it is dropped, the time it was held
//! and the outcome reported on it feed the node's load model, limiter and breaker.

mod builder;
mod conn;
mod execute;
mod follow;
mod ledger;
mod lifecycle;
mod monitor;
mod node;
mod record;
mod recorder;
mod snapshot;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;

use crate::admission::{Priority, ShedReason};
use crate::balance::Balancer;
use crate::breaker::{BreakerState, Outcome};
use crate::classify::{fingerprint, Fingerprint, Hint, Route, Verdict};
use crate::driver::Connector;
use crate::error::{ConfigError, Error, NoReplica, WaitCause};
use crate::failover::{ClusterEvent, Promoter};
use crate::load::NodeLoad;
use crate::pool::Pool;

pub use crate::diagnosis::RouteCounts;
pub use crate::diagnosis::{NodeSample, Recording};
pub use builder::{
    BoxError, ClusterBuilder, LimiterFactory, LimiterKind, MemberPool, DEFAULT_STATEMENT_CAPACITY,
};
pub use conn::ClusterConn;
#[cfg(feature = "sqlx")]
pub(crate) use conn::StatementFailure;
pub use execute::BoxFuture;
pub use lifecycle::NotReady;
pub use node::{AdmissionView, LoadView, Node, NodeSnapshot, Role};
pub use recorder::RecorderConfig;
pub use snapshot::ClusterSnapshot;

use builder::Settings;
use conn::FallbackRead;

/// Options of one acquire.
///
/// ```
/// use std::time::Duration;
/// use seawall::cluster::AcquireOptions;
/// use seawall::Priority;
///
/// let opts = AcquireOptions::new()
///     .min_position(0x1_6B37_4D48_u64)    // read-your-writes: a node that replayed this far
///     .timeout(Duration::from_millis(200))
///     .priority(Priority::High);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcquireOptions {
    min_position: Option<u64>,
    timeline: Option<u32>,
    timeout: Option<Duration>,
    priority: Option<Priority>,
    replica_only: bool,
    replay_wait: Option<Option<Duration>>,
}

impl AcquireOptions {
    /// Default options: the cluster's timeout, the default priority of the access.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read-your-writes: only nodes that have replayed at least this position may serve the
    /// read (the primary always has). Take the position after a write (for PostgreSQL,
    /// `pg_current_wal_lsn()`).
    pub fn min_position(mut self, position: impl Into<u64>) -> Self {
        self.min_position = Some(position.into());
        self
    }

    /// The timeline the [`min_position`](AcquireOptions::min_position) was taken on (for
    /// PostgreSQL, part of [`WalToken`](crate::sqlx::WalToken) when the `sqlx` feature is on).
    ///
    /// Positions are only comparable on one history: after a failover, a replica's position can
    /// pass the requested one on a branch that does not hold the write. So with a timeline, a
    /// replica serves the read only if its probe reports this timeline or a later one; and once
    /// the cluster has seen a newer timeline than this one (a failover since the write), the
    /// read goes to the primary. Without a timeline, positions alone decide (as before).
    pub fn timeline(mut self, timeline: u32) -> Self {
        self.timeline = Some(timeline);
        self
    }

    /// Deadline of this acquire, instead of the cluster's `acquire_timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Admission priority, instead of [`Priority::READ`] / [`Priority::WRITE`].
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Reads only: never fall back to the primary.
    pub fn replica_only(mut self) -> Self {
        self.replica_only = true;
        self
    }

    /// How long this read may wait for a replica to replay its
    /// [`min_position`](Self::min_position) before falling back to the primary, instead of the
    /// cluster's [`replay_wait`](crate::cluster::ClusterBuilder::replay_wait); `None` never asks
    /// a replica its position. Bounded by the read's deadline.
    pub fn replay_wait(mut self, wait: Option<Duration>) -> Self {
        self.replay_wait = Some(wait);
        self
    }
}

/// Which node does what. Nodes move between the two as probes discover roles; a fenced or
/// down node stays in its place, flagged.
pub(crate) struct Topology<C: Connector> {
    pub(crate) primary: Option<Arc<Node<C>>>,
    pub(crate) replicas: Vec<Arc<Node<C>>>,
}

impl<C: Connector> Topology<C> {
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Arc<Node<C>>> {
        self.primary.iter().chain(&self.replicas)
    }

    /// The highest timeline the nodes' last probes reported (a node keeps its last report while
    /// down; a removed node no longer counts, and a cluster rebuilt from scratch starts over).
    pub(crate) fn highest_timeline(&self) -> Option<u32> {
        self.nodes().filter_map(|n| n.timeline()).max()
    }
}

pub(crate) struct Shared<C: Connector> {
    pub(crate) topology: RwLock<Topology<C>>,
    balancer: Box<dyn Balancer>,
    pub(crate) settings: Settings,
    fallback_reads: Arc<AtomicUsize>,
    monitors_started: AtomicBool,
    /// Wakes writes waiting for a primary.
    pub(crate) topology_changed: Notify,
    /// Since when writes have had no usable primary.
    pub(crate) primary_lost_at: Mutex<Option<Instant>>,
    pub(crate) events: broadcast::Sender<ClusterEvent>,
    pub(crate) promoter: Option<Arc<dyn Promoter<C>>>,
    /// Opens pools for members the topology source adds.
    pub(crate) member_pool: Option<MemberPool<C>>,
    /// Single flight of automatic promotion.
    pub(crate) promoting: AtomicBool,
    /// Who the topology source (or the primary of record) names leader.
    pub(crate) leader: RwLock<follow::Leader>,
    /// When the last read of the primary of record that succeeded started (with a promotion
    /// lease: writes wait once it is older than the lease's validity).
    pub(crate) record_read_at: Mutex<Option<Instant>>,
    /// A rediscovery after the primary refused a write is running.
    pub(crate) rediscovering: AtomicBool,
    /// The flight recorder, when on.
    pub(crate) recorder: Option<recorder::Recorder>,
    /// Stops the background tasks ([`Cluster::close`]).
    pub(crate) stop: Arc<lifecycle::Stop>,
}

impl<C: Connector> Shared<C> {
    /// Publishes an event (subscribers, metric, trace).
    pub(crate) fn emit(&self, event: ClusterEvent) {
        crate::failover::emit(&self.events, event);
    }
}

/// A primary and its replicas. Cloning is cheap and shares the cluster.
pub struct Cluster<C: Connector> {
    pub(crate) shared: Arc<Shared<C>>,
}

impl<C: Connector> Clone for Cluster<C> {
    fn clone(&self) -> Self {
        Cluster {
            shared: self.shared.clone(),
        }
    }
}

impl<C: Connector> std::fmt::Debug for Cluster<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topology = self.shared.topology.read();
        f.debug_struct("Cluster")
            .field("primary", &topology.primary.as_ref().map(|n| n.name()))
            .field(
                "replicas",
                &topology
                    .replicas
                    .iter()
                    .map(|n| n.name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The replicas a read already tried (by index), without allocating for small clusters.
#[derive(Default)]
struct Tried {
    small: u64,
    large: Vec<usize>,
    count: usize,
}

impl Tried {
    fn insert(&mut self, i: usize) {
        if !self.contains(i) {
            self.count += 1;
            match 1u64.checked_shl(i as u32) {
                Some(bit) if i < 64 => self.small |= bit,
                _ => self.large.push(i),
            }
        }
    }

    fn contains(&self, i: usize) -> bool {
        if i < 64 {
            self.small & (1 << i) != 0
        } else {
            self.large.contains(&i)
        }
    }
}

/// Candidates are gathered on the stack for clusters up to this many replicas.
const INLINE_CANDIDATES: usize = 16;

impl<C: Connector> Cluster<C> {
    /// Starts configuring a cluster.
    pub fn builder() -> ClusterBuilder<C> {
        ClusterBuilder::default()
    }

    pub(crate) fn from_parts(
        primary: Arc<Node<C>>,
        replicas: Vec<Arc<Node<C>>>,
        balancer: Box<dyn Balancer>,
        promoter: Option<Arc<dyn Promoter<C>>>,
        member_pool: Option<MemberPool<C>>,
        settings: Settings,
        events: broadcast::Sender<ClusterEvent>,
    ) -> Self {
        let cluster = Cluster {
            shared: Arc::new(Shared {
                topology: RwLock::new(Topology {
                    primary: Some(primary),
                    replicas,
                }),
                balancer,
                recorder: settings.recorder.map(|config| {
                    recorder::Recorder::new(config, settings.diagnosis, settings.reports.clone())
                }),
                settings,
                fallback_reads: Arc::new(AtomicUsize::new(0)),
                monitors_started: AtomicBool::new(false),
                topology_changed: Notify::new(),
                primary_lost_at: Mutex::new(None),
                events,
                promoter,
                member_pool,
                promoting: AtomicBool::new(false),
                leader: RwLock::new(follow::Leader::Unknown),
                record_read_at: Mutex::new(None),
                rediscovering: AtomicBool::new(false),
                stop: Arc::default(),
            }),
        };
        cluster.ensure_monitors();
        cluster
    }

    /// Starts the background tasks (health monitors, topology follower, flight recorder,
    /// primary of record) once a runtime is available. The recorder runs without probes too.
    fn ensure_monitors(&self) {
        let shared = &self.shared;
        if shared.stop.is_stopped()
            || shared.monitors_started.load(Ordering::Relaxed)
            || tokio::runtime::Handle::try_current().is_err()
            || shared.monitors_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let nodes: Vec<_> = shared.topology.read().nodes().cloned().collect();
        for node in &nodes {
            self.spawn_monitor(node);
        }
        if shared.settings.topology_source.is_some() {
            tokio::spawn(follow::run(Arc::downgrade(shared)));
        }
        if shared.recorder.is_some() {
            tokio::spawn(recorder::run(Arc::downgrade(shared)));
        }
        if shared.settings.promotion_lease.is_some() {
            tokio::spawn(record::run(Arc::downgrade(shared)));
        }
    }

    fn spawn_monitor(&self, node: &Arc<Node<C>>) {
        if self.shared.settings.health.interval.is_none() {
            return;
        }
        tokio::spawn(monitor::run(
            Arc::downgrade(&self.shared),
            Arc::downgrade(node),
        ));
    }

    /// Events of the cluster's life (node down/up, breaker opened, primary lost, promotion,
    /// writes resumed, split brain), for alerting. A receiver that falls more than 256 events
    /// behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.shared.events.subscribe()
    }

    /// A connection for a read: from a replica chosen by load, or from the primary within its
    /// read budget when no replica can serve.
    pub async fn read(&self) -> Result<ClusterConn<C>, Error> {
        self.read_with(AcquireOptions::default()).await
    }

    /// A connection for a write (or a transaction): from the primary.
    pub async fn write(&self) -> Result<ClusterConn<C>, Error> {
        self.write_with(AcquireOptions::default()).await
    }

    /// A connection for `sql`: a replica if the statement is provably read-only (or carries a
    /// `/* seawall:replica */` hint the classifier accepts), the primary otherwise. A malformed
    /// hint is an [`Error::Classify`].
    pub async fn route(&self, sql: &str) -> Result<ClusterConn<C>, Error> {
        self.route_with(sql, AcquireOptions::default()).await
    }

    /// [`Cluster::route`] with options.
    pub async fn route_with(
        &self,
        sql: &str,
        options: AcquireOptions,
    ) -> Result<ClusterConn<C>, Error> {
        match self.decide(sql)?.0 {
            Route::Replica => self.read_with(options).await,
            Route::Primary => self.write_with(options).await,
        }
    }

    /// Which node [`Cluster::route`] would send `sql` to, without acquiring anything: the
    /// classifier's answer, corrected by the [route memory](Cluster::route_memory).
    pub fn classify(&self, sql: &str) -> Result<Route, Error> {
        Ok(self.decide(sql)?.0)
    }

    /// The classifier's route, unless the route memory knows better. The statement is
    /// fingerprinted only when a remembered route could change the decision; the fingerprint,
    /// if taken, comes back with the route.
    pub(crate) fn decide(&self, sql: &str) -> Result<(Route, Option<Fingerprint>), Error> {
        let classification = self.shared.settings.classifier.classify(sql)?;
        let memory = &self.shared.settings.ledger.memory;
        let route = classification.route();
        let consult = match route {
            Route::Replica => memory.may_route_to(Route::Primary),
            // Nothing sends a known write, or a statement hinted to the primary, elsewhere.
            Route::Primary => {
                classification.verdict() != Verdict::Writes
                    && classification.hint() != Some(Hint::Primary)
                    && memory.may_route_to(Route::Replica)
            }
        };
        if !consult {
            return Ok((route, None));
        }
        let fp = fingerprint(sql);
        Ok((memory.lookup(fp).unwrap_or(route), Some(fp)))
    }

    /// A connection from the primary, with options.
    ///
    /// While the cluster has no usable primary (it is down, demoted, or being replaced), the
    /// write waits for one up to its deadline, then fails with [`Error::NoPrimary`].
    pub async fn write_with(&self, options: AcquireOptions) -> Result<ClusterConn<C>, Error> {
        let acquired = self.acquire_write(options).await;
        let routes = &self.shared.settings.ledger.routes;
        match &acquired {
            Ok(conn) => {
                routes.writes.add();
                conn.node().routed.write.increment(1);
            }
            Err(e) => routes.failed(e),
        }
        acquired
    }

    async fn acquire_write(&self, options: AcquireOptions) -> Result<ClusterConn<C>, Error> {
        self.ensure_monitors();
        let started = Instant::now();
        let deadline = self.deadline_from(started, &options);
        let priority = options.priority.unwrap_or(Priority::WRITE);
        loop {
            let changed = self.shared.topology_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.shared.stop.is_stopped() {
                let pool = self
                    .shared
                    .topology
                    .read()
                    .primary
                    .as_ref()
                    .map_or_else(|| Arc::from("primary"), |p| Arc::from(p.pool.name()));
                return Err(Error::Closed { pool });
            }
            if let Some(primary) = self.usable_primary() {
                match acquire_on(&primary, priority, deadline, None, true).await {
                    // The primary refuses connections and has none left: it is probably gone.
                    // Wait for the topology to change (or the next probe round) instead of
                    // holding the write in a pool that cannot connect.
                    Err(Error::Timeout(t))
                        if matches!(
                            t.cause,
                            WaitCause::ConnectFailing { .. } | WaitCause::BackingOff { .. }
                        ) && Instant::now() < deadline => {}
                    other => return other,
                }
                let pause = self
                    .shared
                    .settings
                    .health
                    .interval
                    .unwrap_or(Duration::from_millis(100));
                let retry_at = deadline.min(Instant::now() + pause);
                tokio::select! {
                    _ = &mut changed => {}
                    _ = tokio::time::sleep_until(retry_at) => {}
                }
                continue;
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep_until(deadline) => {
                    let gone_for = self.shared.primary_lost_at.lock().map(|t| t.elapsed());
                    return Err(Error::NoPrimary {
                        gone_for,
                        waited: started.elapsed(),
                        nodes: self.node_reports(),
                    });
                }
            }
        }
    }

    /// Every node, for an error that must say why none could serve.
    fn node_reports(&self) -> Vec<crate::error::NodeReport> {
        let nodes: Vec<_> = self.shared.topology.read().nodes().cloned().collect();
        nodes
            .iter()
            .map(|node| {
                let probe = {
                    let health = node.health.lock();
                    (health.failures > 0 && !health.last_error.is_empty())
                        .then(|| format!("probe: {}", health.last_error))
                };
                let connect = || node.pool.connect_error().map(|e| format!("connect: {e}"));
                crate::error::NodeReport {
                    name: node.name.clone(),
                    role: node.role(),
                    up: node.is_up(),
                    fenced: node.is_fenced(),
                    error: probe.or_else(connect),
                }
            })
            .collect()
    }

    /// The primary, if it is up, not fenced, and (with a topology source or a promotion lease)
    /// named leader.
    fn usable_primary(&self) -> Option<Arc<Node<C>>> {
        if !record::is_fresh(&self.shared) {
            return None;
        }
        let topology = self.shared.topology.read();
        let leader = self.shared.leader.read();
        topology
            .primary
            .as_ref()
            .filter(|p| p.is_usable() && leader.allows(&p.name))
            .cloned()
    }

    /// A connection for a read, with options (read-your-writes position, timeout, priority,
    /// replica only).
    ///
    /// A replica that refuses at once (open breaker, full queue, connects failing with no idle
    /// connection) is skipped for the next best; when none is left, the read falls back to the
    /// primary within its read budget.
    pub async fn read_with(&self, options: AcquireOptions) -> Result<ClusterConn<C>, Error> {
        let acquired = self.acquire_read(options).await;
        let routes = &self.shared.settings.ledger.routes;
        match &acquired {
            Ok(conn) if conn.role() == Role::Replica => {
                routes.reads_to_replica.add();
                conn.node().routed.read_replica.increment(1);
            }
            Ok(conn) => {
                routes.reads_to_primary.add();
                conn.node().routed.read_primary_fallback.increment(1);
            }
            Err(e) => routes.failed(e),
        }
        acquired
    }

    async fn acquire_read(&self, options: AcquireOptions) -> Result<ClusterConn<C>, Error> {
        self.ensure_monitors();
        let started = Instant::now();
        let deadline = self.deadline_from(started, &options);
        let priority = options.priority.unwrap_or(Priority::READ);
        let mut tried = Tried::default();
        let mut unreachable = 0;
        loop {
            let (index, node) = match self.pick_replica(&options, &tried, true) {
                Ok(picked) => picked,
                Err(mut why) => {
                    if why.behind_position > 0 {
                        // Only as fresh as the last probe: ask a replica itself.
                        if let Some(conn) = self
                            .read_replayed(&options, priority, deadline, &tried)
                            .await
                        {
                            return Ok(conn);
                        }
                    }
                    why.unreachable = unreachable;
                    why.refused = count(tried.count) - unreachable;
                    return self
                        .read_from_primary(why, &options, priority, started, deadline)
                        .await;
                }
            };
            if node.pool.is_refusing_connects() && node.pool.idle_hint() == 0 {
                // Its pool cannot grow and has nothing idle: waiting there would hold the read
                // until its deadline.
                tried.insert(index);
                unreachable += 1;
                continue;
            }
            match acquire_on(&node, priority, deadline, None, true).await {
                Err(Error::Unavailable(_)) => {}
                Err(Error::Overloaded(o))
                    if !matches!(o.reason, ShedReason::Deadline | ShedReason::Closed) => {}
                Err(Error::Timeout(t))
                    if matches!(
                        t.cause,
                        WaitCause::ConnectFailing { .. } | WaitCause::BackingOff { .. }
                    ) && Instant::now() < deadline =>
                {
                    unreachable += 1;
                }
                other => return other,
            }
            tried.insert(index);
        }
    }

    /// The routing decision of a read, without acquiring anything: the replica a read with
    /// `options` would be sent to now, or `Err` saying why no replica can take it (the read
    /// would then fall back to the primary within its read budget). For diagnostics, and to
    /// measure the cost of routing on its own.
    pub fn pick_read_node(&self, options: &AcquireOptions) -> Result<Arc<Node<C>>, NoReplica> {
        self.pick_replica(options, &Tried::default(), true)
            .map(|(_, node)| node)
    }

    /// Read-your-writes when no replica is known to have replayed the read's position: takes
    /// a connection on the best replica that is behind only by what its last probe said, and
    /// asks it its position ([`Connector::probe`]), polling up to the replay wait. `None`: no
    /// replica has replayed that far in time (or none could be asked); the read falls back.
    async fn read_replayed(
        &self,
        options: &AcquireOptions,
        priority: Priority,
        deadline: Instant,
        tried: &Tried,
    ) -> Option<ClusterConn<C>> {
        let min = options.min_position?;
        let wait = options
            .replay_wait
            .unwrap_or(self.shared.settings.replay_wait)?;
        let (_, node) = self.pick_replica(options, tried, false).ok()?;
        let mut conn = acquire_on(&node, priority, deadline, None, true)
            .await
            .ok()?;
        let give_up = deadline.min(Instant::now() + wait);
        let mut pause = Duration::from_millis(1);
        loop {
            let connector = node.pool.connector();
            match connector.probe(&mut conn).await {
                Ok(Some(status)) if status.is_primary => {
                    // Promoted meanwhile: it has everything, but writes and reads of a primary
                    // go through its own routes.
                    conn.release_unused();
                    return None;
                }
                Ok(Some(status)) => {
                    let position = status.position?;
                    if position > node.load.replayed_position() {
                        node.load.set_replayed_position(position);
                    }
                    if position >= min {
                        // The read's own clock starts now, the asking is not its latency.
                        conn.restart_clock();
                        return Some(conn);
                    }
                }
                Ok(None) => {
                    conn.release_unused();
                    return None;
                }
                Err(e) => {
                    conn.report_error(&e);
                    return None;
                }
            }
            let now = Instant::now();
            if now + pause > give_up {
                conn.release_unused();
                return None;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(8));
        }
    }

    /// A connection from the named node, whatever its role.
    pub async fn on(&self, name: &str) -> Result<ClusterConn<C>, Error> {
        let node = self.node(name)?;
        let priority = match node.role() {
            Role::Primary => Priority::WRITE,
            Role::Replica => Priority::READ,
        };
        let deadline = self.deadline(&AcquireOptions::default());
        acquire_on(&node, priority, deadline, None, false).await
    }

    fn deadline(&self, options: &AcquireOptions) -> Instant {
        self.deadline_from(Instant::now(), options)
    }

    fn deadline_from(&self, now: Instant, options: &AcquireOptions) -> Instant {
        crate::pool::deadline_after(
            now,
            options
                .timeout
                .unwrap_or(self.shared.settings.acquire_timeout),
        )
    }

    /// Picks a replica among those that can serve, skipping the `tried` ones (bit i = replica
    /// i). On failure, says why none could.
    /// With `check_position` false, a replica behind the read's position by its last probe
    /// may still be picked (to be asked, [`Cluster::read_replayed`]).
    fn pick_replica(
        &self,
        options: &AcquireOptions,
        tried: &Tried,
        check_position: bool,
    ) -> Result<(usize, Arc<Node<C>>), NoReplica> {
        let shared = &self.shared;
        let topology = shared.topology.read();
        let replicas = &topology.replicas;
        let mut why = NoReplica {
            replicas: count(replicas.len()),
            ..NoReplica::default()
        };
        let max_lag = shared.settings.max_replica_lag;
        // A token from an older timeline than the newest seen: written before a failover, so
        // only the primary's history decides (see `AcquireOptions::timeline`).
        let old_token = options.min_position.is_some()
            && options
                .timeline
                .is_some_and(|t| Some(t) < topology.highest_timeline());
        let eligible = |i: usize, node: &Node<C>, why: &mut NoReplica| {
            if tried.contains(i) {
                return false;
            }
            if !node.is_usable() {
                why.down += 1;
                return false;
            }
            if node.breaker.state() == BreakerState::Open {
                why.breaker_open += 1;
                return false;
            }
            if !node.load.can_serve_read(max_lag, None) {
                if node.load.replication_lag().is_none() {
                    why.lag_unknown += 1;
                } else {
                    why.lagging += 1;
                }
                return false;
            }
            if options.min_position.is_some()
                && options.timeline.is_some()
                && (old_token || node.timeline() < options.timeline)
            {
                why.older_timeline += 1;
                return false;
            }
            if check_position
                && options.min_position.is_some()
                && !node.load.can_serve_read(None, options.min_position)
            {
                why.behind_position += 1;
                return false;
            }
            true
        };
        let picked = if replicas.len() <= INLINE_CANDIDATES {
            let Some(first) = replicas.first() else {
                return Err(why);
            };
            let mut loads: [&NodeLoad; INLINE_CANDIDATES] = [&first.load; INLINE_CANDIDATES];
            let mut index = [0usize; INLINE_CANDIDATES];
            let mut n = 0;
            for (i, node) in replicas.iter().enumerate() {
                if eligible(i, node, &mut why) {
                    loads[n] = &node.load;
                    index[n] = i;
                    n += 1;
                }
            }
            shared.balancer.pick(&loads[..n]).map(|k| index[k])
        } else {
            let mut loads = Vec::with_capacity(replicas.len());
            let mut index = Vec::with_capacity(replicas.len());
            for (i, node) in replicas.iter().enumerate() {
                if eligible(i, node, &mut why) {
                    loads.push(&*node.load);
                    index.push(i);
                }
            }
            shared.balancer.pick(&loads).map(|k| index[k])
        };
        match picked {
            Some(i) => Ok((i, replicas[i].clone())),
            None => Err(why),
        }
    }

    /// The fallback of a read no replica can serve: the primary, within its read budget.
    async fn read_from_primary(
        &self,
        mut why: NoReplica,
        options: &AcquireOptions,
        priority: Priority,
        started: Instant,
        deadline: Instant,
    ) -> Result<ClusterConn<C>, Error> {
        if options.replica_only {
            why.waited = started.elapsed();
            why.nodes = self.node_reports();
            return Err(Error::NoReplica(why));
        }
        why.fallback_allowed = true;
        let Some(primary) = self.usable_primary() else {
            why.primary_down = true;
            why.waited = started.elapsed();
            why.nodes = self.node_reports();
            return Err(Error::NoReplica(why));
        };
        let share = self.shared.settings.primary_read_share;
        if why.replicas == 0 && share > 0.0 {
            // No replica at all: reads are the primary's ordinary work (the budget protects a
            // primary whose replicas cannot serve, not one that never had any).
            return acquire_on(&primary, priority, deadline, None, false).await;
        }
        // Any share above zero lets at least one read through: a primary of one connection
        // with the default share would otherwise refuse every fallback read.
        let budget = match (primary.pool.max_size() as f64 * share).floor() as usize {
            0 if share > 0.0 => 1,
            n => n,
        };
        why.fallback_budget = count(budget);
        let slot = match FallbackRead::try_take(&self.shared.fallback_reads, budget) {
            Ok(slot) => slot,
            Err(in_flight) => {
                why.fallback_in_flight = count(in_flight);
                why.waited = started.elapsed();
                why.nodes = self.node_reports();
                return Err(Error::NoReplica(why));
            }
        };
        acquire_on(&primary, priority, deadline, Some(slot), false).await
    }

    /// The named node.
    pub fn node(&self, name: &str) -> Result<Arc<Node<C>>, Error> {
        let found = self
            .shared
            .topology
            .read()
            .nodes()
            .find(|n| &*n.name == name)
            .cloned();
        found.ok_or_else(|| Error::UnknownNode {
            name: name.to_owned(),
        })
    }

    /// Adds a replica at run time.
    pub fn add_replica(&self, name: impl Into<Arc<str>>, pool: Pool<C>) -> Result<(), ConfigError> {
        let name = name.into();
        let node = Arc::new(self.shared.settings.node(
            name.clone(),
            Role::Replica,
            pool,
            &self.shared.events,
        )?);
        {
            let mut topology = self.shared.topology.write();
            let taken = topology.nodes().any(|n| n.name == name);
            if taken || name.is_empty() {
                return Err(ConfigError::new(
                    "replica",
                    format!("name `{name}` is empty or already used"),
                ));
            }
            topology.replicas.push(node.clone());
        }
        if self.shared.monitors_started.load(Ordering::Relaxed) {
            self.spawn_monitor(&node);
        }
        tracing::info!(node = %name, "replica added");
        Ok(())
    }

    /// Removes a replica at run time and returns it (its pool keeps serving the handles already
    /// out; close it to drain).
    pub fn remove_replica(&self, name: &str) -> Result<Arc<Node<C>>, Error> {
        let mut topology = self.shared.topology.write();
        let i = topology
            .replicas
            .iter()
            .position(|n| &*n.name == name)
            .ok_or_else(|| Error::UnknownNode {
                name: name.to_owned(),
            })?;
        let node = topology.replicas.remove(i);
        tracing::info!(node = %name, "replica removed");
        Ok(node)
    }

    /// Every node, primary first.
    pub fn nodes(&self) -> Vec<Arc<Node<C>>> {
        self.shared.topology.read().nodes().cloned().collect()
    }

    /// What the flight recorder kept: one [`Recording`] per interval (every second by default),
    /// oldest first, up to its limit (15 minutes by default); empty when it is off
    /// ([`ClusterBuilder::flight_recorder`]) or before the first sample. Sampling starts with
    /// the health monitors (the first acquire inside a Tokio runtime; not without a probe
    /// interval).
    pub fn history(&self) -> Vec<Recording> {
        self.shared
            .recorder
            .as_ref()
            .map_or_else(Vec::new, |r| r.history())
    }

    /// The diagnosis's incidents, closed and open, by number (see [`diagnosis`](crate::diagnosis));
    /// empty when the flight recorder is off.
    pub fn incidents(&self) -> Vec<crate::diagnosis::Incident> {
        self.shared
            .recorder
            .as_ref()
            .map_or_else(Vec::new, |r| r.diagnoser.lock().incidents())
    }

    /// The postmortem's timeline, written for you: every incident with its verdict, when it
    /// started and ended, the recorded figures around it and an SVG chart of them
    /// ([`IncidentReport`](crate::diagnosis::IncidentReport); its Markdown links the chart as
    /// `incident-report.svg`, which [`write_to`](crate::diagnosis::IncidentReport::write_to)
    /// writes beside it).
    pub fn incident_report(&self) -> crate::diagnosis::IncidentReport {
        crate::diagnosis::IncidentReport::new(&self.history(), &self.incidents(), "incident-report")
    }

    /// Every node's figures, the route counts and what the router remembers; its `Display` is
    /// a table for operators.
    pub fn snapshot(&self) -> ClusterSnapshot {
        let nodes = self.nodes();
        let ledger = &self.shared.settings.ledger;
        let last = self.shared.recorder.as_ref().and_then(|r| r.last_two());
        let recent = |s: &mut NodeSnapshot| {
            let Some((before, now)) = &last else { return };
            let find = |r: &Recording| r.nodes.iter().find(|n| n.name == s.name).cloned();
            let (Some(b), Some(n)) = (find(before), find(now)) else {
                return;
            };
            let count = n.held_count.saturating_sub(b.held_count);
            if let Ok(count) = u32::try_from(count) {
                if count > 0 {
                    s.recent_query = n.held_total.checked_sub(b.held_total).map(|d| d / count);
                    s.recent_wait = n
                        .waited_total
                        .checked_sub(b.waited_total)
                        .map(|d| d / count);
                }
            }
        };
        ClusterSnapshot {
            nodes: nodes
                .iter()
                .map(|n| {
                    let mut s = n.snapshot();
                    recent(&mut s);
                    s
                })
                .collect(),
            fallback_reads_in_flight: self.shared.fallback_reads.load(Ordering::Relaxed),
            primary_read_share: self.shared.settings.primary_read_share,
            routes: ledger.routes.snapshot(),
            remembered: ledger.memory.entries(),
            statements_tracked: ledger.statements.as_ref().map(|s| s.len()),
        }
    }

    /// Probes every node now (instead of waiting for the next probe interval).
    pub async fn probe_now(&self) {
        let nodes = self.nodes();
        for node in nodes {
            let result = monitor::probe(&node, self.shared.settings.health.timeout).await;
            monitor::observe(&self.shared, &node, result);
        }
    }
}

/// A count for an error report (saturates: no cluster has 4 billion nodes).
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Breaker, admission, pool: one node's part of an acquire.
/// `fail_fast`: give up at the first failed connect when the node's pool is empty (reads, which
/// can go elsewhere).
async fn acquire_on<C: Connector>(
    node: &Arc<Node<C>>,
    priority: Priority,
    deadline: Instant,
    fallback: Option<FallbackRead>,
    fail_fast: bool,
) -> Result<ClusterConn<C>, Error> {
    // One reading of the clock for the breaker, the load model and the pool's budget.
    let now = Instant::now();
    let call = node.breaker.try_call_at(now)?;
    // Counted in flight from here, queue included: the balancer must see a node's backlog, not
    // only the work its limit lets through.
    let in_flight = node.load.start_at(now);
    let permit = match node.admission.admit(priority, Some(deadline)).await {
        Ok(permit) => permit,
        Err(overloaded) => {
            call.ignore();
            drop(in_flight);
            return Err(Error::Overloaded(overloaded));
        }
    };
    // No second reading of the clock unless the gate made it wait.
    let admitted = if permit.queued_for().is_zero() {
        now
    } else {
        Instant::now()
    };
    let remaining = deadline.saturating_duration_since(admitted);
    let timeout = remaining.max(Duration::from_micros(1));
    let acquired = if fail_fast {
        node.pool.get_or_refuse(timeout).await
    } else {
        node.pool.get_timeout(timeout).await
    };
    match acquired {
        Ok(conn) => Ok(ClusterConn::new(
            conn,
            node.clone(),
            call,
            permit,
            in_flight,
            fallback,
            admitted,
        )),
        Err(mut e) => {
            if let Error::Timeout(t) = &mut e {
                t.node = Some(node.name.clone());
            }
            let node_failed = matches!(
                &e,
                Error::Timeout(t) if matches!(
                    t.cause,
                    WaitCause::ConnectFailing { .. } | WaitCause::PingHung
                )
            );
            if node_failed {
                node.finish_call(call, Outcome::Failure);
            } else {
                call.ignore();
            }
            // Either way the node could not take the work in time: the limiter hears a drop.
            permit.failure();
            in_flight.finish(!node_failed);
            Err(e)
        }
    }
}
