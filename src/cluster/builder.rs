//! Building a cluster: its nodes and the policies that route between them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::admission::{Admission, AdmissionConfig};
use crate::balance::{Balancer, P2c};
use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::classify::{Classifier, Remembered, Route, RouteMemory};
use crate::driver::Connector;
use crate::error::ConfigError;
use crate::failover::{
    ClusterEvent, HealthConfig, Promoted, PromotedHook, Promoter, PromotionConfig, PromotionLease,
};
use crate::limit::{
    Aimd, AimdConfig, Fixed, Gradient, GradientConfig, Limiter, Vegas, VegasConfig,
};
use crate::load::{LoadConfig, NodeLoad};
use crate::pool::Pool;
use crate::statements::StatementStats;
use crate::topology::{Member, TopologySource};

use super::recorder::RecorderConfig;
use crate::diagnosis::DiagnosisConfig;

/// Opens a pool for a member of the topology the cluster does not know yet
/// ([`ClusterBuilder::topology_members`]).
pub type MemberPool<C> = Arc<dyn Fn(&Member) -> Result<Pool<C>, BoxError> + Send + Sync>;

/// Any error a [`MemberPool`] may return (a bad URL, a refused pool configuration).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
use tokio::sync::broadcast;

use super::ledger::Ledger;
use super::node::{Node, Role};
use super::Cluster;

/// How each node's concurrency limit is chosen.
#[derive(Clone)]
#[non_exhaustive]
pub enum LimiterKind {
    /// A gradient limiter (the default) between 1 and the node's pool size, starting at the
    /// pool size: it lowers the limit when latency rises above its baseline.
    Gradient,
    /// A gradient limiter with this configuration.
    GradientWith(GradientConfig),
    /// AIMD between 1 and the node's pool size.
    Aimd,
    /// A delay-based [`Vegas`] limiter between 1 and the node's pool size, starting at the pool
    /// size: it heads for the limit at which two of its requests wait at the node (from the
    /// node's latency over its no-load latency), which gives a fleet of instances equal shares
    /// near the node's knee, and follows the work actually in flight while that is lower.
    Vegas,
    /// A Vegas limiter with this configuration.
    VegasWith(VegasConfig),
    /// AIMD with this configuration.
    AimdWith(AimdConfig),
    /// A fixed limit equal to the node's pool size (no adaptation).
    PoolSize,
    /// A limiter of your own, given the node's name and pool size.
    Custom(LimiterFactory),
}

/// Makes a node's limiter from the node's name and pool size.
pub type LimiterFactory = Arc<dyn Fn(&str, usize) -> Box<dyn Limiter> + Send + Sync>;

impl Default for LimiterKind {
    /// [`LimiterKind::Gradient`].
    fn default() -> Self {
        LimiterKind::Gradient
    }
}

impl std::fmt::Debug for LimiterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimiterKind::Gradient => f.write_str("Gradient"),
            LimiterKind::GradientWith(c) => f.debug_tuple("GradientWith").field(c).finish(),
            LimiterKind::Aimd => f.write_str("Aimd"),
            LimiterKind::AimdWith(c) => f.debug_tuple("AimdWith").field(c).finish(),
            LimiterKind::Vegas => f.write_str("Vegas"),
            LimiterKind::VegasWith(c) => f.debug_tuple("VegasWith").field(c).finish(),
            LimiterKind::PoolSize => f.write_str("PoolSize"),
            LimiterKind::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Applies a node's new pool size to a limiter sized after its pool.
type Resize = Box<dyn Fn(usize) + Send + Sync>;

impl LimiterKind {
    /// The node's limiter and, for the kinds sized after the pool, how to follow a resize (a
    /// limiter configured in full or of your own keeps its bounds).
    fn build(
        &self,
        node: &str,
        pool_size: usize,
    ) -> Result<(Box<dyn Limiter>, Option<Resize>), ConfigError> {
        Ok(match self {
            LimiterKind::Gradient => {
                let limiter = Arc::new(Gradient::new(GradientConfig {
                    initial_limit: pool_size,
                    min_limit: 1,
                    max_limit: pool_size,
                    ..GradientConfig::default()
                })?);
                let handle = limiter.clone();
                let resize = move |size: usize| {
                    // A pool size is at least 1, the minimum: this cannot fail.
                    let _ = handle.set_max_limit(size);
                };
                (Box::new(limiter), Some(Box::new(resize)))
            }
            LimiterKind::GradientWith(c) => (Box::new(Gradient::new(c.clone())?), None),
            LimiterKind::Aimd => {
                let limiter = Arc::new(Aimd::new(AimdConfig {
                    initial_limit: pool_size,
                    min_limit: 1,
                    max_limit: pool_size,
                    ..AimdConfig::default()
                })?);
                let handle = limiter.clone();
                let resize = move |size: usize| {
                    let _ = handle.set_max_limit(size);
                };
                (Box::new(limiter), Some(Box::new(resize)))
            }
            LimiterKind::AimdWith(c) => (Box::new(Aimd::new(c.clone())?), None),
            LimiterKind::Vegas => {
                let limiter = Arc::new(Vegas::new(VegasConfig {
                    initial_limit: pool_size,
                    min_limit: 1,
                    max_limit: pool_size,
                    ..VegasConfig::default()
                })?);
                let handle = limiter.clone();
                let resize = move |size: usize| {
                    let _ = handle.set_max_limit(size);
                };
                (Box::new(limiter), Some(Box::new(resize)))
            }
            LimiterKind::VegasWith(c) => (Box::new(Vegas::new(c.clone())?), None),
            LimiterKind::PoolSize => {
                let limiter = Arc::new(Fixed::new(pool_size));
                let handle = limiter.clone();
                let resize = move |size: usize| handle.set(size);
                (Box::new(limiter), Some(Box::new(resize)))
            }
            LimiterKind::Custom(f) => (f(node, pool_size), None),
        })
    }
}

/// The cluster's routing policies.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) max_replica_lag: Option<Duration>,
    /// Read-your-writes: ask a replica its position when none is known to have replayed the
    /// write, waiting up to this long; `None` never asks.
    pub(crate) replay_wait: Option<Duration>,
    pub(crate) primary_read_share: f64,
    pub(crate) acquire_timeout: Duration,
    pub(crate) load: LoadConfig,
    pub(crate) breaker: BreakerConfig,
    /// `None`: derived per node (see [`ClusterBuilder::admission`], [`ClusterBuilder::shed_load`]).
    pub(crate) admission: Option<AdmissionConfig>,
    /// Shed excess work early: queues as deep as the pools, CoDel.
    pub(crate) shed_load: bool,
    pub(crate) limiter: LimiterKind,
    pub(crate) health: HealthConfig,
    pub(crate) promotion: PromotionConfig,
    pub(crate) on_promoted: Option<PromotedHook>,
    /// The primary of record shared by every instance (embedded promotion in a fleet).
    pub(crate) promotion_lease: Option<Arc<dyn PromotionLease>>,
    /// The user says one instance runs: embedded promotion without a lease.
    pub(crate) single_instance: bool,
    pub(crate) classifier: Classifier,
    /// The HA manager to follow, and how often to ask it.
    pub(crate) topology_source: Option<Arc<dyn TopologySource>>,
    pub(crate) topology_interval: Duration,
    /// The flight recorder's settings; `None` turns it off.
    pub(crate) recorder: Option<RecorderConfig>,
    /// Thresholds of the diagnosis made from the recorder's samples.
    pub(crate) diagnosis: DiagnosisConfig,
    /// Where incident reports are written when an incident closes.
    pub(crate) reports: Option<std::path::PathBuf>,
    /// Replaced by the built ledger in [`ClusterBuilder::build`].
    pub(crate) ledger: Arc<Ledger>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("max_replica_lag", &self.max_replica_lag)
            .field("replay_wait", &self.replay_wait)
            .field("primary_read_share", &self.primary_read_share)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("health", &self.health)
            .field("promotion", &self.promotion)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_replica_lag: None,
            replay_wait: Some(Duration::ZERO),
            primary_read_share: 0.5,
            acquire_timeout: Duration::from_secs(30),
            load: LoadConfig::default(),
            breaker: BreakerConfig::default(),
            admission: None,
            shed_load: false,
            limiter: LimiterKind::default(),
            health: HealthConfig::default(),
            promotion: PromotionConfig::default(),
            on_promoted: None,
            promotion_lease: None,
            single_instance: false,
            classifier: Classifier::default(),
            topology_source: None,
            topology_interval: Duration::from_millis(250),
            recorder: Some(RecorderConfig::default()),
            diagnosis: DiagnosisConfig::default(),
            reports: None,
            ledger: Arc::new(Ledger::default()),
        }
    }
}

impl Settings {
    pub(crate) fn node<C: Connector>(
        &self,
        name: Arc<str>,
        role: Role,
        pool: Pool<C>,
        events: &broadcast::Sender<ClusterEvent>,
    ) -> Result<Node<C>, ConfigError> {
        let size = pool.max_size();
        let (limiter, resize_limiter) = self.limiter.build(&name, size)?;
        let (config, queue_follows_pool) = match (&self.admission, self.shed_load) {
            (Some(config), _) => (config.clone(), false),
            (None, true) => (
                AdmissionConfig {
                    max_queue: size,
                    ..AdmissionConfig::default()
                },
                true,
            ),
            // Like a pool: every caller waits its turn, in priority order, until its deadline.
            (None, false) => (
                AdmissionConfig {
                    max_queue: usize::MAX,
                    codel: None,
                },
                false,
            ),
        };
        let admission = Admission::new(name.clone(), limiter, config)?;
        let breaker = CircuitBreaker::new(name.clone(), self.breaker.clone());
        let load = NodeLoad::with_config(self.load)?;
        let mut node = Node::new(name, role, pool, load, breaker, admission, events.clone())
            .with_ledger(self.ledger.clone());
        if self.recorder.is_some() {
            node = node.with_query_histogram();
        }
        // What is sized after the pool follows `Pool::set_max_size`.
        let (gate, load) = (node.admission.clone(), Arc::downgrade(&node.load));
        node.pool.on_resize(Box::new(move |size| {
            if let Some(resize) = &resize_limiter {
                resize(size);
            }
            if queue_follows_pool {
                gate.set_max_queue(size);
            } else {
                gate.limit_changed();
            }
            if let Some(load) = load.upgrade() {
                load.set_capacity(size);
            }
        }));
        Ok(node)
    }
}

/// Builds a [`Cluster`]: one primary, any number of replicas, and the routing policies.
///
/// ```
/// use std::time::Duration;
/// use seawall::cluster::Cluster;
/// use seawall::pool::Pool;
/// use seawall::sim::SimBackend;
///
/// let pool = |name: &str| {
///     let db = SimBackend::builder(name).primary(name == "primary").build();
///     Pool::builder(db.connector()).name(name).max_size(8).build().unwrap()
/// };
/// let cluster = Cluster::builder()
///     .primary("primary", pool("primary"))
///     .replica("replica-1", pool("replica-1"))
///     .replica("replica-2", pool("replica-2"))
///     .max_replica_lag(Some(Duration::from_secs(5)))
///     .build()
///     .unwrap();
/// assert_eq!(cluster.snapshot().nodes.len(), 3);
///
/// let err = Cluster::<seawall::sim::SimConnector>::builder().build().unwrap_err();
/// assert_eq!(err.field, "primary");
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ClusterBuilder<C: Connector> {
    primary: Option<(Arc<str>, Pool<C>)>,
    replicas: Vec<(Arc<str>, Pool<C>)>,
    balancer: Box<dyn Balancer>,
    promoter: Option<Arc<dyn Promoter<C>>>,
    member_pool: Option<MemberPool<C>>,
    settings: Settings,
    memory: RouteMemory,
    statement_capacity: Option<usize>,
}

/// Statements whose figures [`Cluster::statements`] keeps by default.
pub const DEFAULT_STATEMENT_CAPACITY: usize = 1000;

impl<C: Connector> Default for ClusterBuilder<C> {
    fn default() -> Self {
        ClusterBuilder {
            primary: None,
            replicas: Vec::new(),
            balancer: Box::new(P2c::default()),
            promoter: None,
            member_pool: None,
            settings: Settings::default(),
            memory: RouteMemory::default(),
            statement_capacity: Some(DEFAULT_STATEMENT_CAPACITY),
        }
    }
}

impl<C: Connector> ClusterBuilder<C> {
    /// The primary: takes writes, transactions and reads that cannot go to a replica.
    pub fn primary(mut self, name: impl Into<Arc<str>>, pool: Pool<C>) -> Self {
        self.primary = Some((name.into(), pool));
        self
    }

    /// A read replica.
    pub fn replica(mut self, name: impl Into<Arc<str>>, pool: Pool<C>) -> Self {
        self.replicas.push((name.into(), pool));
        self
    }

    /// How reads choose a replica. Default: power of two choices over peak-EWMA latency ×
    /// (in flight + 1) ([`P2c`]).
    pub fn balancer(mut self, balancer: impl Balancer) -> Self {
        self.balancer = Box::new(balancer);
        self
    }

    /// Replicas lagging more than this are not chosen for reads (and neither are replicas whose
    /// lag is unknown). Default `None`: lag is not checked.
    pub fn max_replica_lag(mut self, lag: Option<Duration>) -> Self {
        self.settings.max_replica_lag = lag;
        self
    }

    /// Read-your-writes without the primary: when no replica is known to have replayed a read's
    /// [`min_position`](crate::cluster::AcquireOptions::min_position) (positions are only as
    /// fresh as the last probe, [`probe_interval`](Self::probe_interval)), the read asks a
    /// replica on the connection it takes ([`Connector::probe`]) and stays there if the replica
    /// has replayed that far, polling it (1 ms, doubling to 8 ms) up to `wait` if not; only then
    /// does it fall back to the primary. Default `Some(Duration::ZERO)`: ask once, do not wait
    /// (one round trip on a replica instead of a read on the primary). `None`: never ask,
    /// positions come from probes only. Per read:
    /// [`AcquireOptions::replay_wait`](crate::cluster::AcquireOptions::replay_wait).
    pub fn replay_wait(mut self, wait: Option<Duration>) -> Self {
        self.settings.replay_wait = wait;
        self
    }

    /// Share of the primary's pool, in `[0, 1]`, that reads may use when no replica can serve
    /// them (the primary's protection budget). Past it such reads fail fast with
    /// [`Error::NoReplica`](crate::Error::NoReplica). Default 0.5; any share above 0 allows at
    /// least one such read; 0 never sends reads to the primary. Above 0, a cluster without any
    /// replica (a primary alone, as a plain pool would be) sends every read to the primary,
    /// outside this budget.
    pub fn primary_read_share(mut self, share: f64) -> Self {
        self.settings.primary_read_share = share;
        self
    }

    /// Default deadline of an acquire (admission queue plus pool). Default 30 s.
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.settings.acquire_timeout = d;
        self
    }

    /// The load model of every node (EWMA decay, default latency, failure penalty).
    pub fn load(mut self, config: LoadConfig) -> Self {
        self.settings.load = config;
        self
    }

    /// The circuit breaker of every node.
    pub fn breaker(mut self, config: BreakerConfig) -> Self {
        self.settings.breaker = config;
        self
    }

    /// The admission queue of every node, in full (overrides [`ClusterBuilder::shed_load`]).
    ///
    /// Default: a queue like a pool's. Work past a node's concurrency limit waits, writes
    /// before reads, and fails only at its own deadline ([`ShedReason::Deadline`]); nothing is
    /// shed while waiting can still succeed. An application that moves from a plain pool to
    /// seawall gets no new errors at its usual load.
    ///
    /// [`ShedReason::Deadline`]: crate::admission::ShedReason::Deadline
    pub fn admission(mut self, config: AdmissionConfig) -> Self {
        self.settings.admission = Some(config);
        self
    }

    /// Sheds excess work early instead of queueing it until its deadline: each node's queue is
    /// only as deep as its pool (a full node turns a read away to the next replica at once),
    /// and CoDel with adaptive LIFO fails waiters of a standing queue after 10 ms
    /// ([`admission`](crate::admission)). For a service under surges it cannot absorb, where a
    /// fast `Overloaded` that the caller can retry or degrade on is worth more than a late
    /// answer. Off by default. In the outage replay (`examples/outage_replay.rs`, a surge at
    /// three times the primary's capacity, clients giving up after 1 s) the surge goodput is
    /// 93.7% of capacity with it and 21.5% without.
    pub fn shed_load(mut self) -> Self {
        self.settings.shed_load = true;
        self
    }

    /// How every node's concurrency limit adapts. Default [`LimiterKind::Gradient`].
    pub fn limiter(mut self, kind: LimiterKind) -> Self {
        self.settings.limiter = kind;
        self
    }

    /// How often each node is probed for its role, position and lag (through
    /// [`Connector::probe`]); `None` disables the health monitor. Default 500 ms.
    pub fn probe_interval(mut self, every: Option<Duration>) -> Self {
        self.settings.health.interval = every;
        self
    }

    /// How long a probe may take. Default 1 s.
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.settings.health.timeout = d;
        self
    }

    /// The health monitor: probe interval and timeout, failures to mark a node down and
    /// successes to bring it back. See [`failover`](crate::failover).
    pub fn health(mut self, config: HealthConfig) -> Self {
        self.settings.health = config;
        self
    }

    /// Opt-in automatic promotion of the most caught-up replica when the primary fails, with
    /// `promoter` doing the promotion (PostgreSQL: `seawall::sqlx::PgPromoter`). See
    /// [`failover`](crate::failover) for the safety rules.
    ///
    /// Which deployments it is for:
    /// * **a fleet** (several application instances, each with its own seawall): only with a
    ///   [`promotion_lease`](Self::promotion_lease) every instance shares (etcd), so that one
    ///   instance promotes and every instance follows it;
    /// * **one instance** that alone writes to the database: declare it with
    ///   [`single_instance`](Self::single_instance);
    /// * **an HA manager** (Patroni) already promotes: follow it with
    ///   [`topology`](Self::topology) instead.
    ///
    /// [`build`](Self::build) refuses `auto_failover` with neither a lease nor
    /// `single_instance`: in a fleet it would split the brain.
    pub fn auto_failover(mut self, promoter: impl Promoter<C>, config: PromotionConfig) -> Self {
        self.promoter = Some(Arc::new(promoter));
        self.settings.promotion = config;
        self
    }

    /// The primary of record for [`auto_failover`](Self::auto_failover) in a fleet: a record in
    /// a consensus store every application instance shares ([`Etcd`](crate::failover::Etcd),
    /// feature `etcd`). Writes go only to the node it names, while it has been read within its
    /// validity (2 probe intervals + the probe timeout, 2 s by default; past it writes wait);
    /// a promotion first swaps the record from the old primary to the candidate, and only the
    /// instance whose swap succeeds promotes, after waiting out the validity and one more
    /// probe interval, so every other instance has stopped writing to the old primary. See
    /// [`failover::lease`](crate::failover::lease).
    ///
    /// ```
    /// # fn main() -> Result<(), seawall::ConfigError> {
    /// use seawall::failover::{MemoryLease, PromotionConfig};
    /// use seawall::sim::{SimBackend, SimPromoter};
    /// use seawall::{Cluster, Pool};
    ///
    /// let primary = SimBackend::builder("primary").build();
    /// let replica = SimBackend::builder("replica").primary(false).build();
    /// let cluster = Cluster::builder()
    ///     .primary("primary", Pool::builder(primary.connector()).build()?)
    ///     .replica("replica", Pool::builder(replica.connector()).build()?)
    ///     .auto_failover(SimPromoter::default(), PromotionConfig::default())
    ///     .promotion_lease(MemoryLease::default()) // in production: seawall::failover::Etcd
    ///     .build()?;
    /// # drop(cluster); Ok(()) }
    /// ```
    pub fn promotion_lease(mut self, lease: impl PromotionLease) -> Self {
        self.settings.promotion_lease = Some(Arc::new(lease));
        self
    }

    /// Declares that this is the only application instance writing to the database, so
    /// [`auto_failover`](Self::auto_failover) may promote without a
    /// [`promotion_lease`](Self::promotion_lease). Wrong in a fleet: two instances that each
    /// promote a replica split the brain.
    pub fn single_instance(mut self) -> Self {
        self.settings.single_instance = true;
        self
    }

    /// Follows an HA manager (Patroni, ...): writes go only to the node it names leader (matched
    /// by node name), once that node's own probe says it is writable; a writable node it does
    /// not name is fenced in every instance of the application, whatever it answers. While it
    /// names none (a failover in progress), writes wait up to their deadline. Until its first
    /// answer, the primary given to the builder stands. Promotion is the HA manager's:
    /// [`auto_failover`](Self::auto_failover) is refused with a source. See
    /// [`topology`](crate::topology).
    pub fn topology(mut self, source: impl TopologySource) -> Self {
        self.settings.topology_source = Some(Arc::new(source));
        self
    }

    /// Opens a pool for a member the topology source lists that the cluster does not know (a
    /// replica added to the HA cluster): it joins as a replica, down until `up_after` good
    /// probes, then takes reads. A member the source stops listing is removed and its pool
    /// closed once its handles are back (never the primary, and never on an empty list).
    /// Without it the cluster keeps the nodes it was built with.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), seawall::cluster::BoxError> {
    /// use seawall::sqlx::PgConnector;
    /// use seawall::{Cluster, Pool};
    ///
    /// let pool = |host: &str, port: u16| -> Result<_, seawall::cluster::BoxError> {
    ///     let connector = PgConnector::from_url(&format!("postgres://app@{host}:{port}/shop"))?;
    ///     Ok(Pool::builder(connector).max_size(8).build()?)
    /// };
    /// let cluster = Cluster::builder()
    ///     .primary("pg-1", pool("10.0.0.1", 5432)?)
    ///     .topology(seawall::topology::Patroni::new(["http://10.0.0.1:8008"])?)
    ///     .topology_members(move |m| pool(&m.host, m.port))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn topology_members(
        mut self,
        pool: impl Fn(&Member) -> Result<Pool<C>, BoxError> + Send + Sync + 'static,
    ) -> Self {
        self.member_pool = Some(Arc::new(pool));
        self
    }

    /// The flight recorder ([`Cluster::history`]): how often it samples every node's figures
    /// and how many samples it keeps; `None` turns it off. Default on: every second, 15
    /// minutes (about 0.5 MB for three nodes). It adds nothing to the query path.
    pub fn flight_recorder(mut self, config: Option<RecorderConfig>) -> Self {
        self.settings.recorder = config;
        self
    }

    /// Thresholds of the diagnosis made from the flight recorder's samples (see
    /// [`diagnosis`](crate::diagnosis)): incidents that name the failing layer, as
    /// [`ClusterEvent::IncidentOpened`] / [`ClusterEvent::IncidentClosed`] and in
    /// [`Cluster::incident_report`]. Default [`DiagnosisConfig::default`]; off with the recorder.
    pub fn diagnosis(mut self, config: DiagnosisConfig) -> Self {
        self.settings.diagnosis = config;
        self
    }

    /// Writes [`Cluster::incident_report`] to `dir` (`incident-<id>.md` and `.svg`) each time an
    /// incident closes. Default: not written.
    pub fn incident_reports(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.settings.reports = Some(dir.into());
        self
    }

    /// How often the topology source is asked. Default 250 ms; while a newly named leader is
    /// not yet writable, it is probed at every ask.
    pub fn topology_interval(mut self, every: Duration) -> Self {
        self.settings.topology_interval = every;
        self
    }

    /// Called after an automatic promotion, e.g. to repoint the other replicas. It runs inside
    /// the promotion task, on a runtime worker: spawn anything slow or blocking (such as
    /// `tokio::task::spawn_blocking` for an `ALTER SYSTEM` through another client) instead of
    /// doing it inline.
    pub fn on_promoted(mut self, hook: impl Fn(&Promoted) + Send + Sync + 'static) -> Self {
        self.settings.on_promoted = Some(Arc::new(hook));
        self
    }

    /// The statement classifier, for example with the application's own read-only or writing
    /// functions ([`Classifier::with_read_only_function`], [`Classifier::with_writing_function`]).
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        self.settings.classifier = classifier;
        self
    }

    /// Declares that statements shaped like `sql` (same [fingerprint](crate::classify::fingerprint),
    /// whatever their literals) run on the primary.
    pub fn primary_statement(self, sql: &str) -> Self {
        self.memory.declare(sql, Route::Primary);
        self
    }

    /// Declares that statements shaped like `sql` are read-only and may run on a replica, though
    /// the classifier cannot prove it (a call to the application's own function, say). A
    /// statement the classifier knows to write still goes to the primary.
    pub fn replica_statement(self, sql: &str) -> Self {
        self.memory.declare(sql, Route::Replica);
        self
    }

    /// Loads remembered routes, for example what an earlier run learned
    /// ([`Cluster::route_memory`]`.entries()`, saved one [`Remembered`] per line).
    pub fn remember(self, entries: impl IntoIterator<Item = Remembered>) -> Self {
        self.memory.remember(entries);
        self
    }

    /// The route memory to start from (instead of an empty one holding up to 10 000 learned
    /// statements), for a different capacity or declarations made elsewhere. Replaces what
    /// [`primary_statement`](Self::primary_statement), [`replica_statement`](Self::replica_statement)
    /// and [`remember`](Self::remember) declared before it.
    pub fn route_memory(mut self, memory: RouteMemory) -> Self {
        self.memory = memory;
        self
    }

    /// How many statements [`Cluster::statements`] keeps figures for (the top by total time);
    /// `None` turns statement statistics off. Default [`DEFAULT_STATEMENT_CAPACITY`].
    pub fn statement_stats(mut self, capacity: Option<usize>) -> Self {
        self.statement_capacity = capacity;
        self
    }

    /// Validates the settings and builds the cluster.
    pub fn build(self) -> Result<Cluster<C>, ConfigError> {
        let mut settings = self.settings;
        if self.statement_capacity == Some(0) {
            return Err(ConfigError::new(
                "statement_stats",
                "capacity must be at least 1 (use `None` to turn statistics off)",
            ));
        }
        settings.ledger = Arc::new(Ledger::new(
            self.memory,
            self.statement_capacity.map(StatementStats::new),
        ));
        if !(0.0..=1.0).contains(&settings.primary_read_share) {
            return Err(ConfigError::new(
                "primary_read_share",
                format!("({}) must be in [0, 1]", settings.primary_read_share),
            ));
        }
        if settings.acquire_timeout.is_zero() {
            return Err(ConfigError::new(
                "acquire_timeout",
                "must be greater than zero",
            ));
        }
        settings.health.validate()?;
        settings.promotion.validate()?;
        if self.promoter.is_some() && settings.health.interval.is_none() {
            return Err(ConfigError::new(
                "probe_interval",
                "must be set for automatic failover (it needs the health monitor)",
            ));
        }
        if self.member_pool.is_some() && settings.topology_source.is_none() {
            return Err(ConfigError::new(
                "topology_members",
                "needs a topology source (`topology`) to list the members",
            ));
        }
        if self.promoter.is_some()
            && settings.promotion_lease.is_none()
            && !settings.single_instance
            && settings.topology_source.is_none()
        {
            return Err(ConfigError::new(
                "auto_failover",
                "needs a promotion lease every application instance shares (`promotion_lease`, \
                 e.g. etcd), or `single_instance()` when only this instance writes: instances \
                 promoting on their own split the brain of a fleet",
            ));
        }
        if settings.promotion_lease.is_some() && self.promoter.is_none() {
            return Err(ConfigError::new(
                "promotion_lease",
                "is the lease of automatic promotion: set `auto_failover` too",
            ));
        }
        if settings.topology_source.is_some() {
            if self.promoter.is_some() {
                return Err(ConfigError::new(
                    "auto_failover",
                    "cannot be combined with a topology source: promotion belongs to the HA \
                     manager it follows (two promoters would split the brain of a fleet)",
                ));
            }
            if settings.topology_interval.is_zero() {
                return Err(ConfigError::new(
                    "topology_interval",
                    "must be greater than zero",
                ));
            }
            if settings.health.interval.is_none() {
                return Err(ConfigError::new(
                    "probe_interval",
                    "must be set with a topology source (a named leader is used once its probe \
                     says it is writable)",
                ));
            }
        }
        if let Some(r) = settings.recorder {
            if r.every.is_zero() || r.keep == 0 {
                return Err(ConfigError::new(
                    "flight_recorder",
                    "needs an interval above zero and at least one sample kept",
                ));
            }
        }
        settings.load.validate()?;
        let Some((primary_name, primary_pool)) = self.primary else {
            return Err(ConfigError::new(
                "primary",
                "is missing: a cluster needs a primary",
            ));
        };
        let mut names = HashSet::new();
        for name in std::iter::once(&primary_name).chain(self.replicas.iter().map(|(n, _)| n)) {
            if name.is_empty() {
                return Err(ConfigError::new("replica", "names must not be empty"));
            }
            if !names.insert(name.clone()) {
                return Err(ConfigError::new(
                    "replica",
                    format!("name `{name}` is used twice"),
                ));
            }
        }
        let (events, _) = broadcast::channel(256);
        let primary =
            Arc::new(settings.node(primary_name, Role::Primary, primary_pool, &events)?);
        let replicas = self
            .replicas
            .into_iter()
            .map(|(name, pool)| {
                settings
                    .node(name, Role::Replica, pool, &events)
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cluster::from_parts(
            primary,
            replicas,
            self.balancer,
            self.promoter,
            self.member_pool,
            settings,
            events,
        ))
    }
}
