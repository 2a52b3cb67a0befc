//! The operator's view: the whole cluster at one instant, printable as a table.

use std::fmt;
use std::time::Duration;

use crate::classify::Remembered;

use super::node::NodeSnapshot;
use crate::diagnosis::RouteCounts;

/// The cluster's figures at one instant, from [`Cluster::snapshot`](super::Cluster::snapshot).
///
/// `Display` renders it for a terminal or a log:
///
/// ```text
/// node       role     health  breaker    limit  in-flight  queue    latency  errors       lag  pool (size/idle/in use/waiting of max)  wait p99
/// primary    primary  up      closed     16/16          3      0    1.21ms     0.0%         -  8/5/3/0 of 16                             0ns
/// replica-1  replica  up      closed      8/8           5      0    2.02ms     0.0%     120ms  8/3/5/0 of 8                             12µs
/// replica-2  replica  down    open        1/8           0      0    1.00s    100.0%         -  0/0/0/0 of 8                              0ns
/// fallback reads on the primary: 0 in flight (budget: 50% of its pool)
/// routed: 1204 reads to replicas, 3 reads to the primary (fallback), 310 writes, 2 retried on the primary, 1 learned writes
/// failed: 0 timeout, 7 breaker open, 0 shed (overloaded), 0 no replica, 0 no primary, 1 statement errors, 0 writes on a replica, 0 other
/// statements tracked: 14
/// remembered routes: 1
///   3a1f0c9e5b7d2468 primary select archive_order(?) (learned, 12 hits)
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterSnapshot {
    /// Every node, primary first.
    pub nodes: Vec<NodeSnapshot>,
    /// Reads currently served by the primary because no replica could.
    pub fallback_reads_in_flight: usize,
    /// The share of the primary's pool such reads may take.
    pub primary_read_share: f64,
    /// How work was routed and why it failed, since the cluster was built.
    pub routes: RouteCounts,
    /// The [route memory](super::Cluster::route_memory): routes declared and learned per
    /// statement, most recently used first.
    pub remembered: Vec<Remembered>,
    /// Statements with [statistics](super::Cluster::statements); `None` when they are off.
    pub statements_tracked: Option<usize>,
}

impl fmt::Display for ClusterSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_width = self
            .nodes
            .iter()
            .map(|n| n.name.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            f,
            "{:<name_width$}  {:<7}  {:<6}  {:<9}  {:>5}  {:>9}  {:>5}  {:>9}  {:>17}  {:>6}  {:>8}  {:<38}  {:>8}  why",
            "node",
            "role",
            "health",
            "breaker",
            "limit",
            "in-flight",
            "queue",
            "latency",
            "= query + wait",
            "errors",
            "lag",
            "pool (size/idle/in use/waiting of max)",
            "wait p99",
        )?;
        for n in &self.nodes {
            let health = if n.fenced {
                "fenced"
            } else if n.up {
                "up"
            } else {
                "down"
            };
            let lag = n
                .replication_lag
                .map_or_else(|| "-".to_owned(), |d| format!("{}", Short(d)));
            let pool = format!(
                "{}/{}/{}/{} of {}{}",
                n.pool.size,
                n.pool.idle,
                n.pool.in_use,
                n.pool.waiters,
                n.pool.max_size,
                if n.pool.closed { " (closed)" } else { "" }
            );
            writeln!(
                f,
                "{:<name_width$}  {:<7}  {:<6}  {:<9}  {:>5}  {:>9}  {:>5}  {:>9}  {:>17}  {:>5.1}%  {:>8}  {:<38}  {:>8}  {}",
                n.name,
                n.role.to_string(),
                health,
                n.breaker.state.to_string(),
                format!("{}/{}", n.admission.limit, n.pool.max_size),
                n.admission.in_flight,
                n.admission.queue_len,
                Short(n.latency).to_string(),
                match (n.recent_query, n.recent_wait) {
                    (Some(q), Some(w)) => format!("{} + {}", Short(q), Short(w)),
                    _ => "-".to_owned(),
                },
                n.error_rate * 100.0,
                lag,
                pool,
                Short(n.pool.acquire_wait.p99).to_string(),
                n.last_error.as_deref().unwrap_or("-"),
            )?;
        }
        writeln!(
            f,
            "fallback reads on the primary: {} in flight (budget: {:.0}% of its pool)",
            self.fallback_reads_in_flight,
            self.primary_read_share * 100.0
        )?;
        writeln!(f, "{}", self.routes)?;
        match self.statements_tracked {
            Some(n) => writeln!(f, "statements tracked: {n}")?,
            None => writeln!(f, "statement statistics off")?,
        }
        write!(f, "remembered routes: {}", self.remembered.len())?;
        const SHOWN: usize = 10;
        for entry in self.remembered.iter().take(SHOWN) {
            write!(f, "\n  {entry} ({}, {} hits)", entry.origin, entry.hits)?;
        }
        if self.remembered.len() > SHOWN {
            write!(f, "\n  ... {} more", self.remembered.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// A duration with three significant digits.
struct Short(Duration);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs_f64();
        if s == 0.0 {
            f.write_str("0")
        } else if s < 1e-3 {
            write!(f, "{:.0}µs", s * 1e6)
        } else if s < 1.0 {
            write!(f, "{:.2}ms", s * 1e3)
        } else {
            write!(f, "{s:.2}s")
        }
    }
}
