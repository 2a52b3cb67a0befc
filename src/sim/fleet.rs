//! A fleet of application instances sharing one simulated primary that degrades past its knee.
//!
//! The postmortem's shop did not run one application process but many, each with its own pool:
//! `instances × pool_size` connections, far more than the concurrency at which the primary does
//! the most work (its knee, [`Usl::knee`]). [`run`] drives the postmortem's surge (normal load,
//! then `surge_load` times the primary's peak throughput, then normal again) from every instance
//! at once, each instance with its own seeded open-loop [`Workload`] and its share of the rate,
//! against four set-ups on the *same* arrivals:
//!
//! * **naive**: a fixed [`Pool`] of `pool_size` per instance, callers wait as long as they like;
//! * **pooler**: one central pool of `pooler_cap` connections for the whole fleet, waiting in
//!   FIFO order (what PgBouncer in transaction mode gives a fleet);
//! * **fixed**: a seawall [`Cluster`] per instance with a fixed limit of the pool size
//!   ([`LimiterKind::PoolSize`]);
//! * **adaptive**: a seawall [`Cluster`] per instance with the configured limiter
//!   ([`FleetConfig::limiter`], Vegas by default).
//!
//! Both seawall set-ups shed load early ([`ClusterBuilder::shed_load`], as in the
//! [outage replay](super::outage)). The primary's service times follow the USL curve, each open
//! connection costs a little more, and connects past `max_connections` are refused.
//!
//! Goodput is the number of requests answered within their deadline among those that arrived in
//! a phase, per second of the phase; it is compared with the primary's peak throughput at its
//! knee ([`FleetConfig::peak_throughput`]).
//!
//! [`ClusterBuilder::shed_load`]: crate::cluster::ClusterBuilder::shed_load
//! [`Usl::knee`]: super::usl::Usl::knee

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use parking_lot::Mutex;

use super::outage::{listen_incidents, IncidentStep, IncidentSummary};
use super::usl::Usl;
use super::workload::{self, Kind, Outcome, Phase, Recording, Request, Summary, Workload};
use super::{ServiceTime, SimBackend, SimConnector};
use crate::cluster::{AcquireOptions, Cluster, LimiterKind};
use crate::pool::Pool;
use crate::{ConfigError, Error};

/// The statement every read runs.
pub const READ_SQL: &str = "SELECT id, name, price FROM products WHERE id = $1";
/// The statement every write runs.
pub const WRITE_SQL: &str = "UPDATE orders SET status = 'paid' WHERE id = $1";

/// The names of the three phases.
pub const PHASES: [&str; 3] = ["normal", "surge", "recovery"];

/// The set-ups compared, in the order of [`FleetReport::setups`].
pub const SETUPS: [&str; 4] = ["naive", "pooler", "fixed", "adaptive"];

/// The scenario.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Application instances.
    pub instances: usize,
    /// Pool size of every instance (its most connections, and the fixed set-up's limit).
    pub pool_size: usize,
    /// Concurrency of the primary's peak throughput.
    pub knee: usize,
    /// The USL contention `σ` of the primary; the coherency follows from the knee.
    pub contention: f64,
    /// Mean service time of a query running alone (exponentially distributed).
    pub mean_service: Duration,
    /// Share of a query's service time added per open connection.
    pub connection_cost: f64,
    /// The primary's `max_connections`.
    pub max_connections: usize,
    /// Load of the normal and recovery phases, in multiples of the peak throughput.
    pub normal_load: f64,
    /// Load of the surge, in multiples of the peak throughput.
    pub surge_load: f64,
    /// How long the normal, surge and recovery phases last.
    pub phase_durations: [Duration; 3],
    /// Share of requests that are reads.
    pub read_share: f64,
    /// How long a client waits for its answer before giving up.
    pub client_deadline: Duration,
    /// Connections of the central pooler.
    pub pooler_cap: usize,
    /// Seed of the arrivals and of every random choice.
    pub seed: u64,
    /// Width of the time buckets of the tables, the chart and convergence.
    pub bucket: Duration,
    /// The adaptive set-up's limiter. Default [`LimiterKind::Vegas`]: the cluster's default
    /// ([`LimiterKind::Gradient`]) follows the latency up with its baseline and barely moves
    /// here (README, "A fleet, simulated").
    pub limiter: LimiterKind,
}

impl Default for FleetConfig {
    /// 50 instances with pools of 16 (800 connections wanted) against a primary whose knee is
    /// at 200 queries (σ = 0.005), 20 ms queries, `max_connections` 600; 5 s at half the peak
    /// throughput, 10 s at three times it, 5 s at half again; 90% reads; clients wait 1 s; a
    /// pooler of as many connections as the knee; Vegas limits.
    fn default() -> Self {
        FleetConfig {
            instances: 50,
            pool_size: 16,
            knee: 200,
            contention: 0.005,
            mean_service: Duration::from_millis(20),
            connection_cost: 0.0002,
            max_connections: 600,
            normal_load: 0.5,
            surge_load: 3.0,
            phase_durations: [
                Duration::from_secs(5),
                Duration::from_secs(10),
                Duration::from_secs(5),
            ],
            read_share: 0.9,
            client_deadline: Duration::from_secs(1),
            pooler_cap: 200,
            seed: 42,
            bucket: Duration::from_millis(100),
            limiter: LimiterKind::Vegas,
        }
    }
}

impl FleetConfig {
    /// Checks the fields a run depends on; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.usl()?;
        for (field, n) in [
            ("instances", self.instances),
            ("pool_size", self.pool_size),
            ("max_connections", self.max_connections),
            ("pooler_cap", self.pooler_cap),
        ] {
            if n == 0 {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        if self.mean_service.is_zero() {
            return Err(ConfigError::new("mean_service", "must be positive"));
        }
        if self.bucket.is_zero() {
            return Err(ConfigError::new("bucket", "must be positive"));
        }
        for (field, load) in [
            ("normal_load", self.normal_load),
            ("surge_load", self.surge_load),
        ] {
            if !(load >= 0.0 && load.is_finite()) {
                return Err(ConfigError::new(
                    field,
                    format!("must be finite and >= 0, got {load}"),
                ));
            }
        }
        Ok(())
    }

    /// The primary's concurrency–throughput curve.
    pub fn usl(&self) -> Result<Usl, ConfigError> {
        Usl::with_knee(self.knee, self.contention)
    }

    /// Queries per second the primary completes at its knee.
    pub fn peak_throughput(&self) -> f64 {
        self.usl()
            .ok()
            .and_then(|usl| usl.peak_throughput(self.mean_service))
            .unwrap_or(0.0)
    }

    /// The arrivals of instance `i`: its share of the fleet's rate, its own seed.
    pub fn workload(&self, i: usize) -> Workload {
        let rate = |load: f64| load * self.peak_throughput() / self.instances.max(1) as f64;
        let loads = [self.normal_load, self.surge_load, self.normal_load];
        let phases = PHASES
            .iter()
            .zip(loads)
            .zip(self.phase_durations)
            .map(|((name, load), duration)| Phase::new(*name, duration, rate(load)))
            .collect();
        Workload::new(phases)
            .read_share(self.read_share)
            .seed(self.seed.wrapping_mul(1_000_003).wrapping_add(i as u64))
    }

    /// When phase `i` starts.
    pub fn phase_start(&self, i: usize) -> Duration {
        self.phase_durations.iter().take(i).sum()
    }

    fn primary(&self, seed: u64) -> Result<Arc<SimBackend>, ConfigError> {
        Ok(SimBackend::builder("primary")
            .capacity(self.max_connections)
            .max_connections(self.max_connections)
            .service_time(ServiceTime::Exponential(self.mean_service))
            .usl(self.usl()?)
            .connection_cost(self.connection_cost)
            .finish_abandoned_queries(true)
            .seed(seed)
            .build())
    }
}

/// One set-up's run.
#[derive(Debug, Clone)]
pub struct SetupReport {
    /// One of [`SETUPS`].
    pub name: &'static str,
    /// Every instance's requests.
    pub instances: Vec<Recording>,
    /// Most queries on the primary at once, per bucket.
    pub peak_inflight: Vec<usize>,
    /// Mean queries on the primary, per bucket (sampled every millisecond).
    pub mean_inflight: Vec<f64>,
    /// Every instance's primary limit at the end of each bucket (`[instance][bucket]`); empty
    /// for the set-ups without one.
    pub limits: Vec<Vec<usize>>,
    /// Connects the primary refused (`max_connections`).
    pub refused_connects: u64,
    /// Most connections the primary had open.
    pub peak_connections: usize,
    /// What each instance's own diagnosis said as the run unfolded (the seawall set-ups; their
    /// flight recorders run without health probes), in the order it was said.
    pub incidents: Vec<FleetIncident>,
}

/// An incident one instance of the fleet opened or closed.
#[derive(Debug, Clone)]
pub struct FleetIncident {
    /// The instance, from 0.
    pub instance: usize,
    /// The incident, and when (since the set-up's start).
    pub step: IncidentStep,
}

/// How the fleet's diagnosis did in one set-up ([`FleetReport::incident_summary`]). `Display`
/// prints `fleet incident setup=… instances=k/n detected_after_ms=… culprit=… layer=…
/// false_alarms=…`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FleetIncidentSummary {
    /// The set-up.
    pub setup: &'static str,
    /// Instances that opened an incident during the surge.
    pub instances_detecting: usize,
    /// Instances in the fleet.
    pub instances: usize,
    /// The first verdict of any instance after the surge started (when, whom, which layer), and
    /// the incidents opened before it over every instance (false alarms).
    pub incident: IncidentSummary,
}

impl fmt::Display for FleetIncidentSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fleet incident setup={} instances={}/{} {}",
            self.setup,
            self.instances_detecting,
            self.instances,
            self.incident.fields()
        )
    }
}

impl SetupReport {
    /// Summary of the fleet's requests that arrived in phase `phase` and `filter` keeps.
    pub fn summarize(&self, phase: usize, filter: impl Fn(Kind) -> bool) -> Summary {
        let mut all = Recording::default();
        for r in &self.instances {
            all.extend(
                r.records()
                    .iter()
                    .filter(|r| r.arrival.phase == phase && filter(r.arrival.kind)),
            );
        }
        all.summarize(|_| true)
    }
}

/// Every set-up's run and the figures they are judged by.
#[derive(Debug, Clone)]
pub struct FleetReport {
    /// The scenario.
    pub config: FleetConfig,
    /// The runs, in the order of [`SETUPS`].
    pub setups: Vec<SetupReport>,
}

/// The figures of the summary line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goals {
    /// Instances in the fleet. Goal: at least 50 (in the example).
    pub fleet_instances: usize,
    /// The primary's knee.
    pub primary_knee: usize,
    /// Most queries on the primary at once in the adaptive set-up, from the convergence to the
    /// end of the surge. Goal: at most 1.25 × the knee.
    pub primary_peak_inflight: usize,
    /// Most queries on the primary at once in the adaptive set-up over the whole surge, its
    /// first moments included.
    pub primary_surge_peak_inflight: usize,
    /// The adaptive set-up's surge goodput, % of the peak throughput. Goal: at least 90.
    pub goodput_pct_of_knee: f64,
    /// The naive set-up's. Goal: at most 50.
    pub naive_goodput_pct_of_knee: f64,
    /// The pooler's.
    pub pooler_goodput_pct_of_knee: f64,
    /// The fixed-limit set-up's.
    pub fixed_goodput_pct_of_knee: f64,
    /// Jain's fairness index of the adaptive set-up's per-instance surge goodput. Goal: >= 0.9.
    pub jain_fairness: f64,
    /// Lowest primary limit of any adaptive instance during the surge. Goal: below the pool.
    pub limit_min: usize,
    /// Mean primary limit of the adaptive instances at the end of the run (back up after).
    pub limit_end_mean: f64,
    /// The pool size.
    pub pool_size: usize,
    /// Time from the surge's start to the start of the first bucket from which every surge
    /// bucket's in-flight peak stays within 1.25 × the knee. Goal: at most 2000 ms.
    pub converge_ms: u64,
    /// Adaptive set-up's writes that got a connection and failed. Goal: 0.
    pub failed_admitted_writes: usize,
    /// Slowest shed of the adaptive set-up (it must come before the client deadline).
    pub slowest_shed: Duration,
    /// Share of the adaptive set-up's surge writes and reads answered in time, in percent.
    pub surge_write_success_pct: f64,
    /// See `surge_write_success_pct`.
    pub surge_read_success_pct: f64,
}

impl FleetReport {
    /// The run called `name` (one of [`SETUPS`]).
    pub fn setup(&self, name: &str) -> Option<&SetupReport> {
        self.setups.iter().find(|s| s.name == name)
    }

    /// Surge goodput of `setup` in % of the primary's peak throughput.
    pub fn goodput_pct(&self, setup: &SetupReport, phase: usize) -> f64 {
        let ok = setup.summarize(phase, |_| true).ok as f64;
        let secs = self.config.phase_durations[phase].as_secs_f64();
        let peak = self.config.peak_throughput();
        if secs <= 0.0 || peak <= 0.0 {
            return 0.0;
        }
        100.0 * ok / secs / peak
    }

    /// How the instances' own diagnosis did in set-up `name`: when the first verdict came after
    /// the surge started, whom it blamed, how many instances saw an incident during the surge,
    /// and how many incidents opened before it (false alarms). `None` for an unknown set-up.
    pub fn incident_summary(&self, name: &str) -> Option<FleetIncidentSummary> {
        let setup = self.setup(name)?;
        let surge = self.config.phase_start(1);
        let end = self.config.phase_start(2);
        let opened = || setup.incidents.iter().filter(|i| i.step.opened);
        let first = opened().find(|i| i.step.at >= surge && i.step.at < end);
        let mut detecting: Vec<usize> = opened()
            .filter(|i| i.step.at >= surge && i.step.at < end)
            .map(|i| i.instance)
            .collect();
        detecting.sort_unstable();
        detecting.dedup();
        Some(FleetIncidentSummary {
            setup: setup.name,
            instances_detecting: detecting.len(),
            instances: setup.instances.len(),
            incident: IncidentSummary {
                detected_after: first.map(|i| i.step.at - surge),
                culprit: first
                    .and_then(|i| i.step.incident.verdict.node.as_deref().map(str::to_owned)),
                layer: first.map(|i| i.step.incident.verdict.layer()),
                false_alarms: opened().filter(|i| i.step.at < surge).count(),
            },
        })
    }

    /// The buckets of phase `phase`.
    pub fn phase_buckets(&self, phase: usize) -> std::ops::Range<usize> {
        let bucket = self.config.bucket.as_secs_f64();
        let at = |d: Duration| (d.as_secs_f64() / bucket).round() as usize;
        at(self.config.phase_start(phase))..at(self.config.phase_start(phase + 1))
    }

    /// The figures of the summary line.
    pub fn goals(&self) -> Goals {
        let config = &self.config;
        let empty = SetupReport {
            name: "adaptive",
            instances: Vec::new(),
            peak_inflight: Vec::new(),
            mean_inflight: Vec::new(),
            limits: Vec::new(),
            refused_connects: 0,
            peak_connections: 0,
            incidents: Vec::new(),
        };
        let adaptive = self.setup("adaptive").unwrap_or(&empty);
        let pct = |name| self.setup(name).map_or(0.0, |s| self.goodput_pct(s, 1));
        let surge = self.phase_buckets(1);
        let bound = (config.knee as f64 * 1.25).floor() as usize;
        let peaks = |range: std::ops::Range<usize>| {
            range
                .filter_map(|b| adaptive.peak_inflight.get(b).copied())
                .max()
                .unwrap_or(0)
        };
        // The first bucket from which the surge stays within bounds.
        let mut converged = surge.end;
        for b in surge.clone().rev() {
            match adaptive.peak_inflight.get(b) {
                Some(&p) if p <= bound => converged = b,
                _ => break,
            }
        }
        let converge_ms =
            ((converged.saturating_sub(surge.start)) as u128 * config.bucket.as_millis()) as u64;
        let per_instance: Vec<f64> = adaptive
            .instances
            .iter()
            .map(|r| r.summarize(|r| r.arrival.phase == 1).ok as f64)
            .collect();
        let limit_min = adaptive
            .limits
            .iter()
            .flat_map(|l| surge.clone().filter_map(|b| l.get(b).copied()))
            .min()
            .unwrap_or(config.pool_size);
        let ends: Vec<f64> = adaptive
            .limits
            .iter()
            .filter_map(|l| l.last().map(|&x| x as f64))
            .collect();
        let writes = adaptive.summarize(1, |k| k == Kind::Write);
        let reads = adaptive.summarize(1, |k| k == Kind::Read);
        Goals {
            fleet_instances: config.instances,
            primary_knee: config.knee,
            primary_peak_inflight: peaks(converged.max(surge.start)..surge.end),
            primary_surge_peak_inflight: peaks(surge.clone()),
            goodput_pct_of_knee: pct("adaptive"),
            naive_goodput_pct_of_knee: pct("naive"),
            pooler_goodput_pct_of_knee: pct("pooler"),
            fixed_goodput_pct_of_knee: pct("fixed"),
            jain_fairness: jain(&per_instance),
            limit_min,
            limit_end_mean: ends.iter().sum::<f64>() / ends.len().max(1) as f64,
            pool_size: config.pool_size,
            converge_ms,
            failed_admitted_writes: adaptive
                .instances
                .iter()
                .map(|r| r.summarize(|r| r.arrival.kind == Kind::Write).failed)
                .sum(),
            slowest_shed: adaptive
                .instances
                .iter()
                .flat_map(|r| r.records())
                .filter(|r| r.outcome == Outcome::Shed)
                .map(|r| r.latency)
                .max()
                .unwrap_or_default(),
            surge_write_success_pct: 100.0 * writes.success_rate(),
            surge_read_success_pct: 100.0 * reads.success_rate(),
        }
    }
}

impl Goals {
    /// Each goal with whether it is met (the fleet size goal, n >= 50, is the example's).
    pub fn check(&self) -> Vec<(String, bool)> {
        let bound = self.primary_knee as f64 * 1.25;
        vec![
            (
                format!(
                    "goodput {:.1}% of the knee's >= 90%",
                    self.goodput_pct_of_knee
                ),
                self.goodput_pct_of_knee >= 90.0,
            ),
            (
                format!(
                    "naive goodput {:.1}% <= 50%",
                    self.naive_goodput_pct_of_knee
                ),
                self.naive_goodput_pct_of_knee <= 50.0,
            ),
            (
                format!("Jain fairness {:.3} >= 0.9", self.jain_fairness),
                self.jain_fairness >= 0.9,
            ),
            (
                format!(
                    "the limit moves: min {} < pool size {}",
                    self.limit_min, self.pool_size
                ),
                self.limit_min < self.pool_size,
            ),
            (
                format!(
                    "primary in flight after convergence {} <= 1.25 x knee ({bound})",
                    self.primary_peak_inflight
                ),
                self.primary_peak_inflight as f64 <= bound,
            ),
            (
                format!(
                    "converged {} ms after the surge started <= 2000",
                    self.converge_ms
                ),
                self.converge_ms <= 2000,
            ),
            (
                format!("failed admitted writes {} = 0", self.failed_admitted_writes),
                self.failed_admitted_writes == 0,
            ),
        ]
    }

    /// Whether every goal of [`Goals::check`] is met.
    pub fn all_met(&self) -> bool {
        self.check().iter().all(|(_, met)| *met)
    }
}

impl std::fmt::Display for Goals {
    /// The machine-readable summary line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "summary fleet_instances={} primary_knee={} primary_peak_inflight={} \
             goodput_pct_of_knee={:.1} naive_goodput_pct_of_knee={:.1} \
             pooler_goodput_pct_of_knee={:.1} jain_fairness={:.3} limit_min={} pool_size={} \
             converge_ms={} failed_admitted_writes={}",
            self.fleet_instances,
            self.primary_knee,
            self.primary_peak_inflight,
            self.goodput_pct_of_knee,
            self.naive_goodput_pct_of_knee,
            self.pooler_goodput_pct_of_knee,
            self.jain_fairness,
            self.limit_min,
            self.pool_size,
            self.converge_ms,
            self.failed_admitted_writes
        )
    }
}

/// Jain's fairness index of `xs`: `(Σx)² / (n Σx²)`, 1 when all are equal, `1/n` when one
/// gets everything; 1 for no values or all zero.
pub fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    if xs.is_empty() || squares <= 0.0 {
        1.0
    } else {
        sum * sum / (xs.len() as f64 * squares)
    }
}

/// Runs every set-up of [`SETUPS`], one after the other, on the same arrivals. Run it under
/// `tokio::time::pause()`: the result then depends on the seed only.
pub async fn run(config: &FleetConfig) -> Result<FleetReport, ConfigError> {
    let mut setups = Vec::new();
    for name in SETUPS {
        setups.push(run_setup(config, name).await?);
    }
    Ok(FleetReport {
        config: config.clone(),
        setups,
    })
}

/// How one instance of a set-up serves a request.
#[derive(Clone)]
enum Instance {
    Pool(Pool<SimConnector>),
    Cluster(Cluster<SimConnector>),
}

/// Runs the set-up `name` (one of [`SETUPS`]) alone.
pub async fn run_setup(
    config: &FleetConfig,
    name: &'static str,
) -> Result<SetupReport, ConfigError> {
    config.validate()?;
    let primary = config.primary(config.seed)?;
    let instances = instances(config, name, &primary)?;
    let limits: Vec<Box<dyn Fn() -> usize + Send>> = instances
        .iter()
        .filter_map(|instance| match instance {
            Instance::Cluster(cluster) => {
                let node = cluster.node("primary").ok()?;
                Some(Box::new(move || node.admission().snapshot().limit)
                    as Box<dyn Fn() -> usize + Send>)
            }
            Instance::Pool(_) => None,
        })
        .collect();
    let sampler = Sampler::start(config.bucket, primary.clone(), limits);
    let incidents = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let listeners: Vec<_> = instances
        .iter()
        .enumerate()
        .filter_map(|(i, instance)| match instance {
            Instance::Cluster(cluster) => {
                let incidents = incidents.clone();
                Some(listen_incidents(cluster, started, move |step| {
                    incidents.lock().push(FleetIncident { instance: i, step })
                }))
            }
            Instance::Pool(_) => None,
        })
        .collect();
    let mut runs = JoinSet::new();
    for (i, instance) in instances.iter().enumerate() {
        let arrivals = config.workload(i).arrivals();
        let instance = instance.clone();
        let deadline = config.client_deadline;
        runs.spawn(async move {
            let recording = workload::run(&arrivals, deadline, move |request| {
                serve(instance.clone(), request)
            })
            .await;
            (i, recording)
        });
    }
    let mut recordings = vec![Recording::default(); instances.len()];
    while let Some(done) = runs.join_next().await {
        if let Ok((i, recording)) = done {
            recordings[i] = recording;
        }
    }
    let (peak_inflight, mean_inflight, limits, peak_connections) = sampler.finish().await;
    for listener in listeners {
        listener.abort();
    }
    let incidents = std::mem::take(&mut *incidents.lock());
    for instance in &instances {
        match instance {
            Instance::Pool(pool) => pool.close().await,
            Instance::Cluster(cluster) => cluster.close().await,
        }
    }
    Ok(SetupReport {
        name,
        instances: recordings,
        peak_inflight,
        mean_inflight,
        limits,
        refused_connects: primary.stats().refused_connects,
        peak_connections,
        incidents,
    })
}

fn instances(
    config: &FleetConfig,
    name: &str,
    primary: &Arc<SimBackend>,
) -> Result<Vec<Instance>, ConfigError> {
    let pool = |size: usize, seed: u64| {
        Pool::builder(primary.connector())
            .name("primary")
            .max_size(size)
            // Callers wait as long as they like: the client deadline decides.
            .acquire_timeout(Duration::from_secs(3600))
            .seed(seed)
            .build()
    };
    let seed = |i: usize| config.seed.wrapping_add(i as u64);
    match name {
        "naive" => (0..config.instances)
            .map(|i| pool(config.pool_size, seed(i)).map(Instance::Pool))
            .collect(),
        "pooler" => {
            // A pooler replaces a server connection broken by a client that left mid-query as
            // soon as it can: no storm guard throttles its connects (seawall's pool opens two
            // at a time, which here would cap the pooler's throughput, not the server's).
            let central = Pool::builder(primary.connector())
                .name("primary")
                .max_size(config.pooler_cap)
                .max_connecting(config.pooler_cap)
                .acquire_timeout(Duration::from_secs(3600))
                .seed(config.seed)
                .build()?;
            Ok(vec![Instance::Pool(central); config.instances])
        }
        _ => {
            let limiter = if name == "fixed" {
                LimiterKind::PoolSize
            } else {
                config.limiter.clone()
            };
            (0..config.instances)
                .map(|i| {
                    let cluster = Cluster::builder()
                        .primary("primary", pool(config.pool_size, seed(i))?)
                        .shed_load()
                        .limiter(limiter.clone())
                        .probe_interval(None)
                        .build()?;
                    Ok(Instance::Cluster(cluster))
                })
                .collect()
        }
    }
}

async fn serve(instance: Instance, request: Request) -> Outcome {
    let sql = match request.arrival.kind {
        Kind::Read => READ_SQL,
        Kind::Write => WRITE_SQL,
    };
    match instance {
        Instance::Pool(pool) => {
            let Ok(mut conn) = pool.get_timeout(request.remaining()).await else {
                return Outcome::TimedOut;
            };
            request.admitted();
            match conn.query(sql).await {
                Ok(_) => Outcome::Ok,
                Err(_) => Outcome::Failed,
            }
        }
        Instance::Cluster(cluster) => {
            let options = AcquireOptions::new().timeout(request.remaining());
            let mut conn = match cluster.route_with(sql, options).await {
                Ok(conn) => conn,
                Err(Error::Overloaded(o)) if o.reason == crate::admission::ShedReason::Deadline => {
                    return Outcome::TimedOut
                }
                Err(Error::Overloaded(_) | Error::Unavailable(_) | Error::NoReplica(_)) => {
                    return Outcome::Shed
                }
                Err(_) => return Outcome::TimedOut,
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
    }
}

type Sampled = (Vec<usize>, Vec<f64>, Vec<Vec<usize>>, usize);

/// Samples the primary's in-flight every millisecond and the instances' limits every bucket.
struct Sampler {
    task: tokio::task::JoinHandle<Sampled>,
    stop: Arc<tokio::sync::Notify>,
}

impl Sampler {
    fn start(
        bucket: Duration,
        primary: Arc<SimBackend>,
        limits: Vec<Box<dyn Fn() -> usize + Send>>,
    ) -> Self {
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        primary.reset_peaks();
        let tick = Duration::from_millis(1);
        let task = tokio::spawn(async move {
            let (mut peaks, mut means) = (Vec::new(), Vec::new());
            let mut series = vec![Vec::new(); limits.len()];
            let mut peak_connections = 0;
            let start = Instant::now();
            let (mut sum, mut samples, mut n) = (0usize, 0usize, 1u32);
            let mut next = start + tick;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = stopped.notified() => break,
                }
                let stats = primary.stats();
                sum += stats.in_server;
                samples += 1;
                peak_connections = peak_connections.max(stats.open_connections);
                if next >= start + bucket * n {
                    peaks.push(stats.peak_in_server);
                    means.push(sum as f64 / samples.max(1) as f64);
                    for (series, limit) in series.iter_mut().zip(&limits) {
                        series.push(limit());
                    }
                    primary.reset_peaks();
                    (sum, samples) = (0, 0);
                    n += 1;
                }
                next += tick;
            }
            (peaks, means, series, peak_connections)
        });
        Sampler { task, stop }
    }

    async fn finish(self) -> Sampled {
        self.stop.notify_one();
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_is_one_when_fair_and_one_over_n_when_not() {
        assert_eq!(jain(&[3.0, 3.0, 3.0]), 1.0);
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        assert_eq!(jain(&[]), 1.0);
    }

    #[test]
    fn bad_configurations_are_typed_errors() {
        let bad = |f: fn(&mut FleetConfig)| {
            let mut config = FleetConfig::default();
            f(&mut config);
            config.validate().unwrap_err().field
        };
        assert_eq!(bad(|c| c.instances = 0), "instances");
        assert_eq!(bad(|c| c.knee = 0), "knee");
        assert_eq!(bad(|c| c.contention = 1.5), "contention");
        assert_eq!(bad(|c| c.surge_load = f64::NAN), "surge_load");
        assert_eq!(bad(|c| c.bucket = Duration::ZERO), "bucket");
        assert!(FleetConfig::default().validate().is_ok());
    }
}
