//! Diagnosis: which layer is failing, with numbers, while it happens.
//!
//! Fed every flight-recorder sample ([`Recording`]), the [`Diagnoser`] keeps a baseline of each
//! node's query time (the time callers hold its connections, waits excluded) from the samples
//! where nothing is wrong, and checks each interval for:
//!
//! | verdict | layer | when |
//! |---|---|---|
//! | [`Unreachable`](Finding::Unreachable) | database | the health monitor marked it down, or its connects fail with most of its work |
//! | [`Saturated`](Finding::Saturated) | database | work waits for it (a queue, pool waiters, shed work) and its query time is ≥ 2× its baseline, or ≥ 10% of its queries are abandoned by callers who gave up, or an adaptive limiter cut its limit below its pool size while its query time is above its baseline (the limiter judged it slower under the load: in a fleet each instance's limit is its share of the server) |
//! | [`Slow`](Finding::Slow) | database | nothing waits, but its query time is ≥ 3× its baseline |
//! | [`Lagging`](Finding::Lagging) | replication | a replica's lag is past [`DiagnosisConfig::max_lag`] |
//! | [`ConnectionStorm`](Finding::ConnectionStorm) | database | its pool opened more connections in one interval than it holds |
//! | [`PoolTooSmall`](Finding::PoolTooSmall) | application | work waits for a connection longer than its queries take, or ≥ 5% of it is shed, while the node answers as fast as usual and its limit is its pool's size |
//! | [`CallerErrors`](Finding::CallerErrors) | application | statements fail with the caller's own errors (syntax, constraints) |
//!
//! A finding must hold for [`DiagnosisConfig::confirm`] consecutive samples to open an
//! [`Incident`] ([`ClusterEvent::IncidentOpened`](crate::ClusterEvent::IncidentOpened)), and be
//! gone for as many to close it. The first [`DiagnosisConfig::warm_up`] samples only learn.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod recording;
mod report;

pub use recording::{NodeSample, Recording, RouteCounts};
pub use report::IncidentReport;

use crate::role::Role;

/// The layer a verdict blames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layer {
    /// A database server: down, saturated, slow, flooded with connections.
    Database,
    /// Replication between the primary and a replica.
    Replication,
    /// The application itself: its pool, its statements.
    Application,
}

impl Layer {
    /// `database`, `replication`, `application`.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Database => "database",
            Layer::Replication => "replication",
            Layer::Application => "application",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong, with its numbers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Finding {
    /// Marked down, or connects failing.
    Unreachable {
        /// Failed connects in the interval.
        connect_failures: u64,
        /// Its recent error rate.
        error_rate: f64,
    },
    /// More work than it can take, and slower for it.
    Saturated {
        /// Work in flight (queue included) and its admission limit.
        in_flight: usize,
        /// See `in_flight`.
        limit: usize,
        /// Mean query time in the interval.
        query: Duration,
        /// 99th percentile query time in the interval, when the recorder keeps it.
        query_p99: Option<Duration>,
        /// Its baseline.
        baseline: Duration,
        /// Share of its requests shed in the interval, in percent.
        shed_pct: f64,
        /// Share of its queries whose callers gave up while they ran, in percent.
        abandoned_pct: f64,
        /// For the primary, whether every replica was up and unsaturated; `None` for a replica,
        /// or a primary without replicas.
        replicas_healthy: Option<bool>,
    },
    /// Slower than its baseline with nothing waiting.
    Slow {
        /// Mean query time in the interval.
        query: Duration,
        /// 99th percentile query time in the interval, when the recorder keeps it.
        query_p99: Option<Duration>,
        /// Its baseline.
        baseline: Duration,
    },
    /// A replica behind.
    Lagging {
        /// Its lag.
        lag: Duration,
    },
    /// Connections opened at a rate its pool should never need.
    ConnectionStorm {
        /// Connections opened in the interval.
        opened: u64,
        /// Its pool's size then.
        pool_size: usize,
    },
    /// Callers wait for connections while the node answers as usual.
    PoolTooSmall {
        /// Mean wait for a connection in the interval.
        wait: Duration,
        /// Mean query time in the interval.
        query: Duration,
        /// Requests waiting (queue and pool) at the sample.
        waiting: usize,
        /// Share of its requests shed (turned away or expired in the queue), in percent.
        shed_pct: f64,
    },
    /// Statements fail with errors of their own.
    CallerErrors {
        /// Such failures in the interval.
        failed: u64,
        /// Share of the interval's requests, in percent.
        pct: f64,
    },
}

impl Finding {
    /// A short name: `unreachable`, `saturated`, `slow`, `lagging`, `connection_storm`,
    /// `pool_too_small`, `caller_errors`.
    pub fn name(&self) -> &'static str {
        match self {
            Finding::Unreachable { .. } => "unreachable",
            Finding::Saturated { .. } => "saturated",
            Finding::Slow { .. } => "slow",
            Finding::Lagging { .. } => "lagging",
            Finding::ConnectionStorm { .. } => "connection_storm",
            Finding::PoolTooSmall { .. } => "pool_too_small",
            Finding::CallerErrors { .. } => "caller_errors",
        }
    }

    /// The layer it blames.
    pub fn layer(&self) -> Layer {
        match self {
            Finding::Lagging { .. } => Layer::Replication,
            Finding::PoolTooSmall { .. } | Finding::CallerErrors { .. } => Layer::Application,
            _ => Layer::Database,
        }
    }
}

/// A finding about one node (or, for the caller's errors, the application).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Verdict {
    /// The node; `None` for the application as a whole.
    pub node: Option<Arc<str>>,
    /// The node's role then.
    pub role: Option<Role>,
    /// What is wrong.
    pub finding: Finding,
}

impl Verdict {
    /// The layer it blames.
    pub fn layer(&self) -> Layer {
        self.finding.layer()
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// `" (p99 …)"` after a mean, when the p99 is known.
fn p99(d: Option<Duration>) -> String {
    d.map(|d| format!(" (p99 {})", ms(d))).unwrap_or_default()
}

impl fmt::Display for Verdict {
    /// For example `primary saturated (in flight 16/16, query 940 ms (p99 1480 ms) vs baseline
    /// 8.0 ms, 12% of its requests shed, replicas healthy) [database]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = self.node.as_deref().unwrap_or("application");
        match &self.finding {
            Finding::Unreachable {
                connect_failures,
                error_rate,
            } => write!(
                f,
                "{node} unreachable ({connect_failures} failed connects, error rate {:.0}%)",
                error_rate * 100.0
            )?,
            Finding::Saturated {
                in_flight,
                limit,
                query,
                query_p99,
                baseline,
                shed_pct,
                abandoned_pct,
                replicas_healthy,
            } => write!(
                f,
                "{node} saturated (in flight {in_flight}/{limit}, query {}{} vs baseline {}, \
                 {shed_pct:.0}% of its requests shed, {abandoned_pct:.0}% of its queries abandoned \
                 by their callers{})",
                ms(*query),
                p99(*query_p99),
                ms(*baseline),
                match replicas_healthy {
                    Some(true) => ", replicas healthy",
                    Some(false) => ", replicas saturated or down too",
                    None => "",
                }
            )?,
            Finding::Slow {
                query,
                query_p99,
                baseline,
            } => write!(
                f,
                "{node} slow (query {}{} vs baseline {}, nothing waiting)",
                ms(*query),
                p99(*query_p99),
                ms(*baseline)
            )?,
            Finding::Lagging { lag } => write!(f, "{node} lagging ({} behind)", ms(*lag))?,
            Finding::ConnectionStorm { opened, pool_size } => write!(
                f,
                "{node} connection storm ({opened} connections opened in one interval, pool of \
                 {pool_size})"
            )?,
            Finding::PoolTooSmall {
                wait,
                query,
                waiting,
                shed_pct,
            } => write!(
                f,
                "pool of {node} too small for the demand (wait {} for a connection, query {} as \
                 usual, {waiting} waiting, {shed_pct:.0}% shed): the server answers as fast as \
                 usual, so not the database unless it has no headroom left",
                ms(*wait),
                ms(*query)
            )?,
            Finding::CallerErrors { failed, pct } => write!(
                f,
                "statements failing with their own errors ({failed}, {pct:.0}% of requests): \
                 not the database"
            )?,
        }
        write!(f, " [{}]", self.layer())
    }
}

/// An episode during which a verdict held.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Incident {
    /// Numbered from 1 in the cluster's life.
    pub id: u64,
    /// The verdict when it opened.
    pub opened_with: Verdict,
    /// The verdict at its worst sample so far (the latest, when no figure ranks them).
    pub verdict: Verdict,
    /// When it opened (the sample that confirmed it).
    pub opened: SystemTime,
    /// When the condition was first seen (`confirm` samples before it opened).
    pub started: SystemTime,
    /// The last sample that still showed it.
    pub last_seen: SystemTime,
    /// When it closed; `None` while open.
    pub closed: Option<SystemTime>,
}

impl fmt::Display for Incident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "incident {}: {}", self.id, self.verdict)?;
        if self.closed.is_some() {
            f.write_str(" (closed)")?;
        }
        Ok(())
    }
}

/// Thresholds of the [`Diagnoser`]. Every default is stated.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct DiagnosisConfig {
    /// Consecutive samples a finding must hold to open an incident, and be gone to close it.
    /// Default 2.
    pub confirm: u32,
    /// Samples that only learn baselines. Default 3.
    pub warm_up: u32,
    /// Query time over baseline that makes a node under pressure saturated. Default 2.
    pub saturated_ratio: f64,
    /// Query time over baseline that makes a node slow. Default 3.
    pub slow_ratio: f64,
    /// Below this much over its baseline a node is never slow or saturated (noise of fast
    /// queries). Default 2 ms.
    pub min_excess: Duration,
    /// A replica lagging more than this is reported. Default 5 s.
    pub max_lag: Duration,
    /// Share of requests failing with the caller's own errors that is reported. Default 5%.
    pub caller_error_pct: f64,
    /// Share of a node's requests shed (turned away, or expired in its queue) that reports its
    /// pool as too small for the demand when its query time is as usual. Default 5%.
    pub shed_pct: f64,
    /// Share of a node's queries abandoned by their callers (who gave up while the query ran)
    /// that makes it saturated whatever its query time. Default 10%.
    pub abandoned_pct: f64,
}

impl Default for DiagnosisConfig {
    fn default() -> Self {
        DiagnosisConfig {
            confirm: 2,
            warm_up: 3,
            saturated_ratio: 2.0,
            slow_ratio: 3.0,
            min_excess: Duration::from_millis(2),
            max_lag: Duration::from_secs(5),
            caller_error_pct: 5.0,
            shed_pct: 5.0,
            abandoned_pct: 10.0,
        }
    }
}

/// What the diagnoser keeps of one node.
#[derive(Debug, Default)]
struct Track {
    /// EWMA of the mean query time over healthy intervals, in seconds.
    baseline: Option<f64>,
}

/// One finding being confirmed or an incident being tracked.
#[derive(Debug)]
struct Open {
    key: (Option<Arc<str>>, &'static str),
    seen: u32,
    clear: u32,
    first_seen: SystemTime,
    incident: Option<Incident>,
}

/// Baselines and change detection over flight-recorder samples. Used by the cluster when the
/// recorder is on; usable on its own over any sequence of [`Recording`]s (a test, a replay).
#[derive(Debug, Default)]
pub struct Diagnoser {
    config: DiagnosisConfig,
    samples: u32,
    last: Option<Recording>,
    tracks: Vec<(Arc<str>, Track)>,
    open: Vec<Open>,
    next_id: u64,
    closed: Vec<Incident>,
}

/// What one sample changed.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Changes {
    /// Incidents opened by it.
    pub opened: Vec<Incident>,
    /// Incidents closed by it.
    pub closed: Vec<Incident>,
}

impl Diagnoser {
    /// A diagnoser with these thresholds.
    pub fn new(config: DiagnosisConfig) -> Self {
        Diagnoser {
            config,
            ..Diagnoser::default()
        }
    }

    /// Incidents open now.
    pub fn open_incidents(&self) -> Vec<Incident> {
        self.open
            .iter()
            .filter_map(|o| o.incident.clone())
            .collect()
    }

    /// Incidents closed so far (the last 1,000), oldest first.
    pub fn closed_incidents(&self) -> &[Incident] {
        &self.closed
    }

    /// Every incident kept, closed and open, by number.
    pub fn incidents(&self) -> Vec<Incident> {
        let mut all = self.closed.clone();
        all.extend(self.open_incidents());
        all.sort_by_key(|i| i.id);
        all
    }

    /// Takes the next sample into account.
    pub fn observe(&mut self, now: &Recording) -> Changes {
        let Some(before) = self.last.replace(now.clone()) else {
            return Changes::default();
        };
        self.samples += 1;
        let findings = self.findings(&before, now);
        let learning = self.samples <= self.config.warm_up;
        // Baselines learn from the nodes nothing is wrong with.
        for (node, query) in self.queries(&before, now) {
            let troubled = findings
                .iter()
                .any(|v| v.node.as_deref() == Some(&*node) && v.layer() == Layer::Database);
            if troubled && !learning {
                continue;
            }
            let track = self.track(&node);
            let q = query.as_secs_f64();
            track.baseline = Some(match track.baseline {
                None => q,
                Some(b) => b + 0.2 * (q - b),
            });
        }
        if learning {
            return Changes::default();
        }
        self.update(findings, now.at)
    }

    fn track(&mut self, node: &Arc<str>) -> &mut Track {
        let i = match self.tracks.iter().position(|(n, _)| n == node) {
            Some(i) => i,
            None => {
                self.tracks.push((node.clone(), Track::default()));
                self.tracks.len() - 1
            }
        };
        &mut self.tracks[i].1
    }

    fn baseline(&self, node: &str) -> Option<Duration> {
        self.tracks
            .iter()
            .find(|(n, _)| &**n == node)
            .and_then(|(_, t)| t.baseline)
            .map(Duration::from_secs_f64)
    }

    /// Mean query time of each node that served in the interval.
    fn queries(&self, before: &Recording, now: &Recording) -> Vec<(Arc<str>, Duration)> {
        now.nodes
            .iter()
            .filter_map(|n| {
                let b = find(before, &n.name)?;
                mean(n.held_total, b.held_total, n.held_count, b.held_count)
                    .map(|q| (n.name.clone(), q))
            })
            .collect()
    }

    fn findings(&self, before: &Recording, now: &Recording) -> Vec<Verdict> {
        let cfg = &self.config;
        let mut found = Vec::new();
        let pressure =
            |n: &NodeSample, b: &NodeSample| n.queue > 0 || n.pool_waiters > 0 || n.shed > b.shed;
        let saturated_or_down = |n: &NodeSample, b: &NodeSample| -> bool {
            !n.up || (pressure(n, b) && n.in_flight >= n.limit)
        };
        let mut replicas = now
            .nodes
            .iter()
            .filter(|n| n.role == Role::Replica && !n.fenced)
            .peekable();
        let replicas_healthy = replicas.peek().is_some().then(|| {
            replicas.all(|n| find(before, &n.name).is_some_and(|b| !saturated_or_down(n, b)))
        });
        for n in &now.nodes {
            let Some(b) = find(before, &n.name) else {
                continue;
            };
            let verdict = |finding| Verdict {
                node: Some(n.name.clone()),
                role: Some(n.role),
                finding,
            };
            let connect_failures = n.connect_failures.saturating_sub(b.connect_failures);
            if !n.fenced && (!n.up || (connect_failures >= 2 && n.error_rate >= 0.5)) {
                found.push(verdict(Finding::Unreachable {
                    connect_failures,
                    error_rate: n.error_rate,
                }));
                continue;
            }
            if n.role == Role::Replica {
                if let Some(lag) = n.lag.filter(|lag| *lag > cfg.max_lag) {
                    found.push(verdict(Finding::Lagging { lag }));
                }
            }
            let opened = n.connects.saturating_sub(b.connects);
            if opened > (n.pool_size.max(b.pool_size) as u64).max(4) * 2 {
                found.push(verdict(Finding::ConnectionStorm {
                    opened,
                    pool_size: n.pool_size,
                }));
            }
            let query = mean(n.held_total, b.held_total, n.held_count, b.held_count);
            let (Some(query), Some(baseline)) = (query, self.baseline(&n.name)) else {
                continue;
            };
            let above = |ratio: f64| {
                query.as_secs_f64() >= baseline.as_secs_f64() * ratio
                    && query >= baseline + cfg.min_excess
            };
            let shed = n.shed.saturating_sub(b.shed);
            let shed_pct = pct(shed, shed + n.acquired.saturating_sub(b.acquired));
            let abandoned_pct = pct(
                n.abandoned.saturating_sub(b.abandoned),
                n.held_count.saturating_sub(b.held_count),
            );
            // An adaptive limiter cut the node's limit below its pool: it judged the node slower
            // under the load, so the waits it makes are the database's capacity, not the pool's.
            let limited = n.limit < n.pool_max_size;
            if pressure(n, b) {
                // Slower under the load, so far past its limit that work is turned away, or so
                // slow to answer that callers give up on their queries.
                if above(cfg.saturated_ratio)
                    || abandoned_pct >= cfg.abandoned_pct
                    || (limited && above(1.0))
                {
                    found.push(verdict(Finding::Saturated {
                        in_flight: n.in_flight,
                        limit: n.limit,
                        query,
                        query_p99: n.query_p99,
                        baseline,
                        shed_pct,
                        abandoned_pct,
                        replicas_healthy: replicas_healthy.filter(|_| n.role == Role::Primary),
                    }));
                } else {
                    let wait = mean(n.waited_total, b.waited_total, n.held_count, b.held_count)
                        .unwrap_or_default();
                    if !limited && (wait > query.max(cfg.min_excess) || shed_pct >= cfg.shed_pct) {
                        found.push(verdict(Finding::PoolTooSmall {
                            wait,
                            query,
                            waiting: n.queue + n.pool_waiters,
                            shed_pct,
                        }));
                    }
                }
            } else if above(cfg.slow_ratio) {
                found.push(verdict(Finding::Slow {
                    query,
                    query_p99: n.query_p99,
                    baseline,
                }));
            }
        }
        let r = &now.routes;
        let p = &before.routes;
        let failed = r.failed_statement.saturating_sub(p.failed_statement);
        let routed = (r.reads_to_replica + r.reads_to_primary + r.writes + r.failed())
            .saturating_sub(p.reads_to_replica + p.reads_to_primary + p.writes + p.failed());
        let share = pct(failed, routed);
        let database = found.iter().any(|v| v.layer() == Layer::Database);
        // Failures the nodes count as theirs (lost connections) raise their error rates.
        let nodes_fine = now.nodes.iter().all(|n| n.error_rate < 0.2);
        if failed >= 5 && share >= cfg.caller_error_pct && !database && nodes_fine {
            found.push(Verdict {
                node: None,
                role: None,
                finding: Finding::CallerErrors { failed, pct: share },
            });
        }
        found
    }

    fn update(&mut self, findings: Vec<Verdict>, at: SystemTime) -> Changes {
        let confirm = self.config.confirm.max(1);
        let mut changes = Changes::default();
        for open in &mut self.open {
            open.clear += 1;
        }
        for verdict in findings {
            let key = (verdict.node.clone(), verdict.finding.name());
            let i = match self.open.iter().position(|o| o.key == key) {
                Some(i) => i,
                None => {
                    // A node already in trouble in the last sample under another finding (its
                    // waits first looked like a small pool, then its callers gave up): the
                    // trouble is confirmed by both samples, whatever they called it.
                    const LOAD: [&str; 3] = ["saturated", "pool_too_small", "slow"];
                    let before = self
                        .open
                        .iter()
                        .filter(|o| o.key.0 == key.0 && o.incident.is_none() && o.clear == 1)
                        .filter(|o| LOAD.contains(&o.key.1) && LOAD.contains(&key.1))
                        .max_by_key(|o| o.seen);
                    let (seen, first_seen) = before.map_or((0, at), |o| (o.seen, o.first_seen));
                    self.open.push(Open {
                        key,
                        seen,
                        clear: 1,
                        first_seen,
                        incident: None,
                    });
                    self.open.len() - 1
                }
            };
            let open = &mut self.open[i];
            open.clear = 0;
            open.seen += 1;
            match &mut open.incident {
                Some(incident) => {
                    incident.last_seen = at;
                    if worse(&verdict.finding, &incident.verdict.finding) {
                        incident.verdict = verdict;
                    }
                }
                None if open.seen >= confirm => {
                    self.next_id += 1;
                    let incident = Incident {
                        id: self.next_id,
                        opened_with: verdict.clone(),
                        verdict,
                        opened: at,
                        started: open.first_seen,
                        last_seen: at,
                        closed: None,
                    };
                    changes.opened.push(incident.clone());
                    open.incident = Some(incident);
                }
                None => {}
            }
        }
        let mut keep = Vec::with_capacity(self.open.len());
        for mut open in self.open.drain(..) {
            let done = match &open.incident {
                Some(_) => open.clear >= confirm,
                // Not confirmed: a single clear sample resets it.
                None => open.clear > 0,
            };
            if !done {
                keep.push(open);
                continue;
            }
            if let Some(mut incident) = open.incident.take() {
                incident.closed = Some(at);
                changes.closed.push(incident.clone());
                self.closed.push(incident);
                if self.closed.len() > 1000 {
                    self.closed.remove(0);
                }
            }
        }
        self.open = keep;
        changes
    }
}

/// Whether `a` is worse than `b` (same kind): the figure that ranks them is larger.
fn worse(a: &Finding, b: &Finding) -> bool {
    match (a, b) {
        (Finding::Saturated { query: qa, .. }, Finding::Saturated { query: qb, .. })
        | (Finding::Slow { query: qa, .. }, Finding::Slow { query: qb, .. }) => qa > qb,
        (Finding::Lagging { lag: a }, Finding::Lagging { lag: b }) => a > b,
        (Finding::PoolTooSmall { wait: a, .. }, Finding::PoolTooSmall { wait: b, .. }) => a > b,
        _ => false,
    }
}

fn find<'a>(recording: &'a Recording, name: &str) -> Option<&'a NodeSample> {
    recording.nodes.iter().find(|n| &*n.name == name)
}

fn mean(total: Duration, before: Duration, count: u64, count_before: u64) -> Option<Duration> {
    let n = count.checked_sub(count_before).filter(|&n| n > 0)?;
    let sum = total.checked_sub(before)?;
    Some(sum / u32::try_from(n).unwrap_or(u32::MAX))
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}
