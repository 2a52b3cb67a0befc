//! The postmortem's outage, replayed in the simulator: a surge of mostly reads against an
//! unprotected primary, and against the same primary behind a seawall [`Cluster`].
//!
//! # The story
//!
//! A shop's traffic tripled. Every request went to the primary through one pool that let
//! callers wait as long as they liked. The primary could not run three times its capacity, so the
//! pool's queue grew; soon every request waited longer than its caller was willing to, gave up,
//! and the work the database did for it was thrown away. The site was up, the database was
//! busy, and nothing succeeded.
//!
//! [`replay`] runs that traffic twice on the simulator, on the *same* arrivals (one seeded,
//! open-loop [`Workload`]: a normal load, a surge to `surge_load` times the primary's capacity,
//! then normal again; each request gives up after `client_deadline`):
//!
//! * **naive**: one [`Pool`] on the primary, a huge acquire timeout (as before the incident);
//!   reads and writes all go to the primary.
//! * **seawall**: a [`Cluster`] of the primary and `replicas` replicas of the same capacity, with
//!   the library's defaults (power of two choices, breakers, gradient limits, admission queues)
//!   and the settings of [`SeawallTuning`]; statements go through [`Cluster::route_with`], each
//!   acquire with the request's remaining deadline as its timeout.
//!
//! The servers finish queries whose callers gave up
//! ([`finish_abandoned_queries`](super::SimBackendBuilder::finish_abandoned_queries)), as a
//! database without `statement_timeout` does: abandoned work keeps the primary busy.
//!
//! # Capacity and goodput
//!
//! A backend with `capacity` query slots and a mean service time `s` completes at most
//! `capacity / s` queries per second; the cluster's capacity is the sum over its backends.
//! Goodput is the number of requests answered within their deadline, per second of the phase
//! they arrived in. [`OutageReport::goals`] compares the two.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use std::time::Duration;
//! use seawall::sim::outage::{replay, OutageConfig};
//!
//! let config = OutageConfig {
//!     phase_durations: [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(1)],
//!     ..OutageConfig::default()
//! };
//! let report = replay(&config).await;
//! let goals = report.goals();
//! assert_eq!(goals.seawall_failed_admitted_writes, 0);
//! assert!(goals.naive_surge_success_pct < goals.seawall_surge_success_pct);
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::workload::{self, Kind, Outcome, Phase, Recording, Request, Summary, Workload};
use super::{ServiceTime, SimBackend, SimConnector, SimStats};
use crate::admission::{AdmissionConfig, ShedReason};
use crate::balance::P2c;
use crate::breaker::BreakerConfig;
use crate::cluster::{AcquireOptions, Cluster, LimiterKind};
use crate::diagnosis::{
    Diagnoser, DiagnosisConfig, Incident, Layer, NodeSample, Recording as Sample,
};
use crate::failover::ClusterEvent;
use crate::pool::Pool;
use crate::Error;

/// The statement every read runs.
pub const READ_SQL: &str = "SELECT id, name, price FROM products WHERE id = $1";
/// The statement every write runs.
pub const WRITE_SQL: &str = "UPDATE orders SET status = 'paid' WHERE id = $1";

/// The least surge goodput the seawall set-up must reach, in percent of the cluster's capacity.
pub const GOODPUT_GOAL_PCT: f64 = 90.0;

/// The names of the three phases.
pub const PHASES: [&str; 3] = ["normal", "surge", "recovery"];

/// The seawall set-up's settings that differ from the library's defaults.
#[derive(Debug, Clone)]
pub struct SeawallTuning {
    /// The admission gate of every node; `None` is the cluster's default
    /// ([`ClusterBuilder::admission`](crate::cluster::ClusterBuilder::admission)).
    pub admission: Option<AdmissionConfig>,
    /// Early load shedding ([`ClusterBuilder::shed_load`](crate::cluster::ClusterBuilder::shed_load)):
    /// queues as deep as the pools, CoDel.
    pub shed_load: bool,
    /// Share of the primary's pool that reads may use when no replica can take them.
    pub primary_read_share: f64,
    /// How each node's concurrency limit adapts.
    pub limiter: LimiterKind,
}

impl SeawallTuning {
    /// The library's defaults: admission queues that hold work until its deadline, a primary
    /// read share of 0.5, gradient limits.
    pub fn library_defaults() -> Self {
        SeawallTuning {
            admission: None,
            shed_load: false,
            primary_read_share: 0.5,
            limiter: LimiterKind::Gradient,
        }
    }
}

impl Default for SeawallTuning {
    /// The replay's settings: the library's defaults but for two.
    ///
    /// * **Load shedding on** ([`ClusterBuilder::shed_load`](crate::cluster::ClusterBuilder::shed_load)):
    ///   queues as deep as the pools and CoDel, so that work the primary cannot take is turned
    ///   away at once rather than held until the clients give up.
    /// * **A primary read share of 0.75** instead of 0.5: the primary has room for reads beyond
    ///   its writes (10% of the surge), and writes still pass reads in its admission queue. The
    ///   default keeps half of the primary for writes, which is the safer choice when the write
    ///   share of the traffic is unknown.
    fn default() -> Self {
        SeawallTuning {
            admission: None,
            shed_load: true,
            primary_read_share: 0.75,
            limiter: LimiterKind::Gradient,
        }
    }
}

/// The scenario.
#[derive(Debug, Clone)]
pub struct OutageConfig {
    /// Query slots of every backend (its cores); also the size of every pool.
    pub capacity: usize,
    /// Mean service time of a query (exponentially distributed).
    pub mean_service: Duration,
    /// Replicas of the seawall set-up.
    pub replicas: usize,
    /// Load of the normal and recovery phases, in multiples of the primary's capacity.
    pub normal_load: f64,
    /// Load of the surge, in multiples of the primary's capacity.
    pub surge_load: f64,
    /// How long the normal, surge and recovery phases last.
    pub phase_durations: [Duration; 3],
    /// Share of requests that are reads.
    pub read_share: f64,
    /// How long a client waits for its answer before giving up.
    pub client_deadline: Duration,
    /// Seed of the arrivals and of every random choice.
    pub seed: u64,
    /// Width of the time buckets of the plots and of the peak measurements.
    pub bucket: Duration,
    /// Settings of the seawall set-up.
    pub tuning: SeawallTuning,
}

impl Default for OutageConfig {
    /// Backends of 16 slots and 8 ms mean service (2000 queries/s each), two replicas, 10 s at
    /// half the primary's capacity, 20 s at three times it, 10 s at half again; 90% reads;
    /// clients wait 1 s.
    fn default() -> Self {
        OutageConfig {
            capacity: 16,
            mean_service: Duration::from_millis(8),
            replicas: 2,
            normal_load: 0.5,
            surge_load: 3.0,
            phase_durations: [
                Duration::from_secs(10),
                Duration::from_secs(20),
                Duration::from_secs(10),
            ],
            read_share: 0.9,
            client_deadline: Duration::from_secs(1),
            seed: 42,
            bucket: Duration::from_millis(250),
            tuning: SeawallTuning::default(),
        }
    }
}

impl OutageConfig {
    /// Queries per second one backend completes at most: `capacity / mean_service`.
    pub fn backend_capacity(&self) -> f64 {
        self.capacity as f64 / self.mean_service.as_secs_f64()
    }

    /// Queries per second the seawall cluster completes at most with the configured mean
    /// service time: the sum over its backends. See also [`OutageReport::cluster_capacity`].
    pub fn cluster_capacity(&self) -> f64 {
        (1 + self.replicas) as f64 * self.backend_capacity()
    }

    /// The arrivals both set-ups receive.
    pub fn workload(&self) -> Workload {
        let rate = |load: f64| load * self.backend_capacity();
        let loads = [self.normal_load, self.surge_load, self.normal_load];
        let phases = PHASES
            .iter()
            .zip(loads)
            .zip(self.phase_durations)
            .map(|((name, load), duration)| Phase::new(*name, duration, rate(load)))
            .collect();
        Workload::new(phases)
            .read_share(self.read_share)
            .seed(self.seed)
    }

    fn backend(&self, name: &str, primary: bool, seed: u64) -> Arc<SimBackend> {
        SimBackend::builder(name)
            .capacity(self.capacity)
            .service_time(ServiceTime::Exponential(self.mean_service))
            .finish_abandoned_queries(true)
            .primary(primary)
            .seed(seed)
            .build()
    }
}

/// One set-up's run.
#[derive(Debug, Clone)]
pub struct SetupReport {
    /// `naive` or `seawall`.
    pub name: &'static str,
    /// Every request's fate.
    pub recording: Recording,
    /// Most queries on the primary server at once (running or queued inside it), per bucket.
    pub primary_peaks: Vec<usize>,
    /// The primary's concurrency limit at the end of each bucket (its pool size when unlimited).
    pub primary_limits: Vec<usize>,
    /// Why requests were shed, with counts.
    pub shed_reasons: BTreeMap<String, usize>,
    /// Every backend's counters at the end, primary first.
    pub backends: Vec<(String, SimStats)>,
    /// What the diagnosis said as the run unfolded: the cluster's own for the seawall set-up;
    /// for the naive one, a [`Diagnoser`] reading its pool's figures every second.
    pub incidents: Vec<IncidentStep>,
}

/// The diagnosis of the replay ([`OutageReport::incident_summary`]). `Display` prints the
/// replay's `incident detected_after_ms=… culprit=… layer=… false_alarms=…` line.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct IncidentSummary {
    /// From the surge's start to the first verdict; `None`: no verdict during the surge.
    pub detected_after: Option<Duration>,
    /// The node that verdict blamed (`None` for the application as a whole, or no verdict).
    pub culprit: Option<String>,
    /// The layer it blamed.
    pub layer: Option<Layer>,
    /// Incidents opened outside the surge.
    pub false_alarms: usize,
}

impl IncidentSummary {
    /// `detected_after_ms=… culprit=… layer=… false_alarms=…`, `none` for what is unknown.
    pub(crate) fn fields(&self) -> String {
        let none = || "none".to_owned();
        format!(
            "detected_after_ms={} culprit={} layer={} false_alarms={}",
            self.detected_after
                .map_or_else(none, |d| d.as_millis().to_string()),
            self.culprit.clone().unwrap_or_else(none),
            self.layer.map_or_else(none, |l| l.to_string()),
            self.false_alarms
        )
    }
}

impl fmt::Display for IncidentSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "incident {}", self.fields())
    }
}

/// Hands `cluster`'s incidents to `on_step` as its diagnosis opens and closes them, timed from
/// `started`, until the cluster is gone or the task aborted.
pub(crate) fn listen_incidents(
    cluster: &Cluster<SimConnector>,
    started: Instant,
    mut on_step: impl FnMut(IncidentStep) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let mut events = cluster.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            let (opened, incident) = match event {
                ClusterEvent::IncidentOpened(incident) => (true, incident),
                ClusterEvent::IncidentClosed(incident) => (false, incident),
                _ => continue,
            };
            on_step(IncidentStep {
                at: started.elapsed(),
                opened,
                incident,
            });
        }
    })
}

/// An incident opened or closed during a run, with when (since the run's start).
#[derive(Debug, Clone)]
pub struct IncidentStep {
    /// Since the start of the run.
    pub at: Duration,
    /// Opened (`true`) or closed.
    pub opened: bool,
    /// The incident then.
    pub incident: Incident,
}

impl SetupReport {
    /// Summary of the requests that arrived in phase `phase`.
    pub fn phase(&self, phase: usize) -> Summary {
        self.recording.summarize(|r| r.arrival.phase == phase)
    }
}

/// Both runs and the figures they are judged by.
#[derive(Debug, Clone)]
pub struct OutageReport {
    /// The scenario.
    pub config: OutageConfig,
    /// The unprotected pool.
    pub naive: SetupReport,
    /// The cluster.
    pub seawall: SetupReport,
}

impl OutageReport {
    /// The peak of `setup`'s primary over the buckets of phase `phase`.
    pub fn primary_peak(&self, setup: &SetupReport, phase: usize) -> usize {
        self.phase_buckets(phase)
            .filter_map(|i| setup.primary_peaks.get(i).copied())
            .max()
            .unwrap_or(0)
    }

    /// The lowest limit of `setup`'s primary over the buckets of phase `phase`.
    pub fn primary_min_limit(&self, setup: &SetupReport, phase: usize) -> usize {
        self.phase_buckets(phase)
            .filter_map(|i| setup.primary_limits.get(i).copied())
            .min()
            .unwrap_or(0)
    }

    fn phase_buckets(&self, phase: usize) -> impl Iterator<Item = usize> {
        let workload = self.config.workload();
        let bucket = self.config.bucket.as_secs_f64();
        let first = (workload.phase_start(phase).as_secs_f64() / bucket).round() as usize;
        let end = (workload.phase_start(phase + 1).as_secs_f64() / bucket).round() as usize;
        first..end
    }

    /// The mean time a query held a server slot in the seawall run: the configured mean
    /// service time as the simulator actually served it (Tokio's timer rounds every sleep up
    /// to the next millisecond, which adds about half a millisecond).
    pub fn served_mean_service(&self) -> Duration {
        let (busy, queries) = self
            .seawall
            .backends
            .iter()
            .fold((Duration::ZERO, 0u64), |(b, q), (_, s)| {
                (b + s.busy, q + s.queries)
            });
        if queries == 0 {
            self.config.mean_service
        } else {
            busy.div_f64(queries as f64)
        }
    }

    /// The cluster's capacity in queries per second: its backends' slots divided by the mean
    /// service time actually served ([`served_mean_service`](Self::served_mean_service)).
    pub fn cluster_capacity(&self) -> f64 {
        let slots = (1 + self.config.replicas) * self.config.capacity;
        slots as f64 / self.served_mean_service().as_secs_f64()
    }

    /// Successful requests per second among those that arrived in phase `phase`.
    pub fn goodput(&self, setup: &SetupReport, phase: usize) -> f64 {
        setup.phase(phase).ok as f64 / self.config.phase_durations[phase].as_secs_f64()
    }

    /// What the diagnosis said of the outage as the shop lived it (the naive set-up's pool,
    /// watched by seawall's [`Diagnoser`]), judged against the phases: how long after the surge
    /// started its first verdict came, whom and which layer it blamed, and how many incidents
    /// it opened outside the surge (before it, or more than 2 s after its end, the time the
    /// last samples of the surge take to leave the diagnosis).
    pub fn incident_summary(&self) -> IncidentSummary {
        let workload = self.config.workload();
        let (surge_start, surge_end) = (workload.phase_start(1), workload.phase_start(2));
        let opened = self.naive.incidents.iter().filter(|s| s.opened);
        let first = opened
            .clone()
            .find(|s| s.at >= surge_start && s.at < surge_end);
        IncidentSummary {
            detected_after: first.map(|s| s.at - surge_start),
            culprit: first.and_then(|s| s.incident.verdict.node.as_deref().map(str::to_owned)),
            layer: first.map(|s| s.incident.verdict.layer()),
            false_alarms: opened
                .filter(|s| s.at < surge_start || s.at >= surge_end + Duration::from_secs(2))
                .count(),
        }
    }

    /// The figures the goals are about.
    pub fn goals(&self) -> Goals {
        let surge = 1;
        let capacity = self.cluster_capacity();
        Goals {
            seawall_failed_admitted_writes: self
                .seawall
                .recording
                .summarize(|r| r.arrival.kind == Kind::Write)
                .failed,
            primary_peak_inflight: self
                .seawall
                .primary_peaks
                .iter()
                .copied()
                .max()
                .unwrap_or(0),
            primary_limit: self.config.capacity,
            seawall_surge_goodput_pct: 100.0 * self.goodput(&self.seawall, surge) / capacity,
            seawall_surge_success_pct: 100.0 * self.seawall.phase(surge).success_rate(),
            naive_surge_success_pct: 100.0 * self.naive.phase(surge).success_rate(),
        }
    }
}

/// The figures the seawall set-up is judged by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goals {
    /// Writes that got a connection and still failed (any phase). Goal: 0.
    pub seawall_failed_admitted_writes: usize,
    /// Most queries on the primary server at once, over the whole run.
    pub primary_peak_inflight: usize,
    /// The primary's capacity (its pool size, the most its adaptive limit allows).
    pub primary_limit: usize,
    /// Goodput during the surge as a percentage of the cluster's capacity. Goal: at least
    /// [`GOODPUT_GOAL_PCT`].
    pub seawall_surge_goodput_pct: f64,
    /// Share of the surge's requests the seawall set-up answered in time, in percent.
    pub seawall_surge_success_pct: f64,
    /// Share of the surge's requests the naive set-up answered in time, in percent. Goal: at
    /// most half of the seawall set-up's.
    pub naive_surge_success_pct: f64,
}

impl Goals {
    /// Each goal with whether it is met.
    pub fn check(&self) -> Vec<(String, bool)> {
        vec![
            (
                format!(
                    "seawall fails no admitted write ({} failed)",
                    self.seawall_failed_admitted_writes
                ),
                self.seawall_failed_admitted_writes == 0,
            ),
            (
                format!(
                    "the primary's in-flight stays within its limit ({} <= {})",
                    self.primary_peak_inflight, self.primary_limit
                ),
                self.primary_peak_inflight <= self.primary_limit,
            ),
            (
                format!(
                    "seawall's surge goodput is at least {GOODPUT_GOAL_PCT}% of the cluster's capacity ({:.1}%)",
                    self.seawall_surge_goodput_pct
                ),
                self.seawall_surge_goodput_pct >= GOODPUT_GOAL_PCT,
            ),
            (
                format!(
                    "the naive set-up collapses: surge success {:.1}% vs seawall's {:.1}%",
                    self.naive_surge_success_pct, self.seawall_surge_success_pct
                ),
                self.naive_surge_success_pct <= self.seawall_surge_success_pct / 2.0,
            ),
        ]
    }

    /// Whether every goal is met.
    pub fn all_met(&self) -> bool {
        self.check().iter().all(|(_, met)| *met)
    }
}

impl fmt::Display for Goals {
    /// The machine-readable summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "summary seawall_failed_admitted_writes={} primary_peak_inflight={} primary_limit={} \
             seawall_surge_goodput_pct={:.1} naive_surge_success_pct={:.1}",
            self.seawall_failed_admitted_writes,
            self.primary_peak_inflight,
            self.primary_limit,
            self.seawall_surge_goodput_pct,
            self.naive_surge_success_pct
        )
    }
}

/// Replays the outage against both set-ups, one after the other, on the same arrivals. Run it
/// under `tokio::time::pause()`: the result then depends on the seed only.
pub async fn replay(config: &OutageConfig) -> OutageReport {
    let arrivals = config.workload().arrivals();
    let naive = run_naive(config, &arrivals).await;
    let seawall = run_seawall(config, &arrivals).await;
    OutageReport {
        config: config.clone(),
        naive,
        seawall,
    }
}

async fn run_naive(config: &OutageConfig, arrivals: &[workload::Arrival]) -> SetupReport {
    let primary = config.backend("primary", true, config.seed);
    let pool = Pool::builder(primary.connector())
        .name("primary")
        .max_size(config.capacity)
        .min_idle(config.capacity)
        // Unbounded waiting, as before the incident.
        .acquire_timeout(Duration::from_secs(3600))
        .seed(config.seed)
        .build()
        .expect("a valid pool configuration");
    warm_up(&pool, config.capacity).await;
    let capacity = config.capacity;
    let sampler = Sampler::start(config, primary.clone(), move || capacity);
    let watch = Arc::new(Watched::default());
    let watcher = tokio::spawn(watch_naive(pool.clone(), watch.clone()));
    let recording = workload::run(arrivals, config.client_deadline, |request| {
        let (pool, watch) = (pool.clone(), watch.clone());
        async move {
            let asked = Instant::now();
            let Ok(mut conn) = pool.get().await else {
                return Outcome::TimedOut;
            };
            request.admitted();
            // Recorded when the query ends or its caller gives up (dropping this), as a
            // cluster's handle records its time.
            let mut held = Held {
                watch,
                waited: asked.elapsed(),
                got: Instant::now(),
                answered: false,
            };
            let result = conn.query(sql(&request)).await;
            held.answered = true;
            match result {
                Ok(_) => Outcome::Ok,
                Err(_) => Outcome::Failed,
            }
        }
    })
    .await;
    let (primary_peaks, primary_limits) = sampler.finish().await;
    watcher.abort();
    let incidents = std::mem::take(&mut *watch.incidents.lock());
    pool.close().await;
    SetupReport {
        name: "naive",
        recording,
        primary_peaks,
        primary_limits,
        shed_reasons: BTreeMap::new(),
        backends: vec![(primary.name().to_owned(), primary.stats())],
        incidents,
    }
}

/// What the naive set-up's requests saw, for the diagnosis that watches it.
#[derive(Default)]
struct Watched {
    /// Query time, wait, requests, abandoned requests.
    held: Mutex<(Duration, Duration, u64, u64)>,
    incidents: Mutex<Vec<IncidentStep>>,
}

impl Watched {
    fn record(&self, waited: Duration, held: Duration, abandoned: bool) {
        let mut h = self.held.lock();
        h.0 += held;
        h.1 += waited;
        h.2 += 1;
        h.3 += u64::from(abandoned);
    }
}

/// A naive request's connection, held: its time goes to the watch when it ends.
struct Held {
    watch: Arc<Watched>,
    waited: Duration,
    got: Instant,
    answered: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.watch
            .record(self.waited, self.got.elapsed(), !self.answered);
    }
}

/// The shop's pool had no seawall, but its figures are there to read: every second, the same
/// figures the flight recorder samples from a cluster's node (its pool's state, the requests'
/// query and wait times) go to the same [`Diagnoser`], as seawall's diagnosis would have read
/// them.
async fn watch_naive(pool: Pool<SimConnector>, watch: Arc<Watched>) {
    let mut diagnoser = Diagnoser::new(DiagnosisConfig::default());
    let started = Instant::now();
    let base = std::time::SystemTime::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let state = pool.state();
        let (held_total, waited_total, held_count, abandoned) = *watch.held.lock();
        let node = NodeSample {
            name: Arc::from(pool.name()),
            role: crate::cluster::Role::Primary,
            up: true,
            fenced: false,
            breaker: crate::breaker::BreakerState::Closed,
            in_flight: state.in_use + state.waiters,
            limit: pool.max_size(),
            queue: 0,
            pool_in_use: state.in_use,
            pool_size: state.size,
            pool_max_size: state.max_size,
            pool_waiters: state.waiters,
            acquire_wait_p99: state.acquire_wait.p99,
            // Figures over each second come from the cluster's own histograms; the naive pool
            // is read through its totals.
            wait_p99: None,
            query_p50: None,
            query_p99: None,
            probe_round_trip: None,
            latency: Duration::ZERO,
            error_rate: 0.0,
            lag: None,
            timeouts: state.totals.timed_out,
            connect_failures: state.totals.connect_failures,
            shed: 0,
            acquired: state.totals.acquired,
            connects: state.totals.created,
            waited_total,
            held_total,
            held_count,
            abandoned,
            node_errors: 0,
            caller_errors: 0,
            broken: state.totals.broken,
            breaker_refused: 0,
        };
        let recording = Sample {
            at: base + started.elapsed(),
            nodes: vec![node],
            routes: Default::default(),
        };
        let changes = diagnoser.observe(&recording);
        let at = started.elapsed();
        let mut steps = watch.incidents.lock();
        for (opened, incident) in changes
            .opened
            .into_iter()
            .map(|i| (true, i))
            .chain(changes.closed.into_iter().map(|i| (false, i)))
        {
            steps.push(IncidentStep {
                at,
                opened,
                incident,
            });
        }
    }
}

/// Replays the outage against the seawall set-up only (to compare settings).
pub async fn replay_seawall(config: &OutageConfig) -> SetupReport {
    run_seawall(config, &config.workload().arrivals()).await
}

async fn run_seawall(config: &OutageConfig, arrivals: &[workload::Arrival]) -> SetupReport {
    let pool = |backend: &Arc<SimBackend>, seed: u64| {
        Pool::builder(backend.connector())
            .name(backend.name())
            .max_size(config.capacity)
            .min_idle(config.capacity)
            .seed(seed)
            .build()
            .expect("a valid pool configuration")
    };
    let primary = config.backend("primary", true, config.seed);
    let builder = Cluster::builder()
        .primary("primary", pool(&primary, config.seed))
        .balancer(P2c::with_seed(config.seed))
        .breaker(
            BreakerConfig::builder()
                .seed(config.seed)
                .build()
                .expect("a valid breaker configuration"),
        );
    let builder = match &config.tuning.admission {
        Some(admission) => builder.admission(admission.clone()),
        None => builder,
    };
    let builder = if config.tuning.shed_load {
        builder.shed_load()
    } else {
        builder
    };
    let mut builder = builder
        .primary_read_share(config.tuning.primary_read_share)
        .limiter(config.tuning.limiter.clone());
    for i in 1..=config.replicas {
        let name = format!("replica-{i}");
        let seed = config.seed.wrapping_add(i as u64);
        let replica = config.backend(&name, false, seed);
        builder = builder.replica(name, pool(&replica, seed));
    }
    let cluster: Cluster<SimConnector> = builder.build().expect("a valid cluster configuration");
    for node in cluster.snapshot().nodes {
        let node = cluster.node(&node.name).expect("a node of the cluster");
        warm_up(node.pool(), config.capacity).await;
    }
    let primary_node = cluster.node("primary").expect("the primary");
    let limit_of = {
        let node = primary_node.clone();
        move || node.admission().snapshot().limit
    };
    let sampler = Sampler::start(config, primary.clone(), limit_of);
    let shed_reasons = Arc::new(Mutex::new(BTreeMap::new()));
    let incidents = Arc::new(Mutex::new(Vec::new()));
    let listener = {
        let incidents = incidents.clone();
        listen_incidents(&cluster, Instant::now(), move |step| {
            incidents.lock().push(step)
        })
    };
    let recording = workload::run(arrivals, config.client_deadline, |request| {
        let cluster = cluster.clone();
        let shed_reasons = shed_reasons.clone();
        async move {
            let sql = sql(&request);
            let options = AcquireOptions::new().timeout(request.remaining());
            let mut conn = match cluster.route_with(sql, options).await {
                Ok(conn) => conn,
                Err(e) => return refused(&e, &shed_reasons),
            };
            request.admitted();
            match conn.query(sql).await {
                Ok(_) => Outcome::Ok,
                Err(e) => {
                    conn.report_error(&e);
                    Outcome::Failed
                }
            }
        }
    })
    .await;
    let (primary_peaks, primary_limits) = sampler.finish().await;
    listener.abort();
    let incidents = std::mem::take(&mut *incidents.lock());
    let shed_reasons = std::mem::take(&mut *shed_reasons.lock());
    let backends = cluster
        .snapshot()
        .nodes
        .iter()
        .filter_map(|n| cluster.node(&n.name).ok())
        .map(|node| {
            let backend = node.pool().connector().backend();
            (backend.name().to_owned(), backend.stats())
        })
        .collect();
    SetupReport {
        name: "seawall",
        recording,
        primary_peaks,
        primary_limits,
        shed_reasons,
        backends,
        incidents,
    }
}

fn sql(request: &Request) -> &'static str {
    match request.arrival.kind {
        Kind::Read => READ_SQL,
        Kind::Write => WRITE_SQL,
    }
}

/// The outcome of an acquire the cluster refused: shed by a protection, or timed out.
fn refused(error: &Error, reasons: &Mutex<BTreeMap<String, usize>>) -> Outcome {
    let reason = match error {
        // The deadline passed in the queue: the request waited, it was not turned away.
        Error::Overloaded(o) if o.reason == ShedReason::Deadline => return Outcome::TimedOut,
        Error::Overloaded(o) => format!("overloaded ({}) on {}", o.reason, o.node),
        Error::NoReplica(_) => "no replica, primary's read budget used up".to_owned(),
        Error::Unavailable(_) => "breaker open".to_owned(),
        _ => return Outcome::TimedOut,
    };
    *reasons.lock().entry(reason).or_default() += 1;
    Outcome::Shed
}

/// Opens a pool's connections before the traffic starts, as a long-running application has.
async fn warm_up(pool: &Pool<SimConnector>, n: usize) {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(pool.get().await.expect("the pool fills up"));
    }
}

/// Measures the primary's peak per bucket, from now on.
struct Sampler {
    task: tokio::task::JoinHandle<(Vec<usize>, Vec<usize>)>,
    stop: Arc<tokio::sync::Notify>,
}

impl Sampler {
    fn start(
        config: &OutageConfig,
        primary: Arc<SimBackend>,
        limit: impl Fn() -> usize + Send + 'static,
    ) -> Self {
        let bucket = config.bucket.max(Duration::from_millis(1));
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        primary.reset_peaks();
        let task = tokio::spawn(async move {
            let (mut peaks, mut limits) = (Vec::new(), Vec::new());
            let mut next = Instant::now() + bucket;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = stopped.notified() => break,
                }
                peaks.push(primary.stats().peak_in_server);
                limits.push(limit());
                primary.reset_peaks();
                next += bucket;
            }
            (peaks, limits)
        });
        Sampler { task, stop }
    }

    async fn finish(self) -> (Vec<usize>, Vec<usize>) {
        self.stop.notify_one();
        self.task.await.unwrap_or_default()
    }
}
