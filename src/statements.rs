//! Statement statistics: a client-side `pg_stat_statements`.
//!
//! When a database slows down, the first question is *which* statements cost the time. The
//! server's `pg_stat_statements` answers it per server and needs an extension; the application
//! often cannot reach it, and it cannot say which node served a statement or how often a read fell
//! back to the primary. seawall sees every statement run through
//! [`Cluster::execute`](crate::Cluster::execute) and [`ClusterConn::execute`](crate::ClusterConn::execute),
//! so it keeps the same figures itself, per statement [`Fingerprint`]: calls, errors, rows (when
//! the caller reports them), total, mean and maximum time, a latency histogram (p50, p99) and the
//! nodes that served it.
//!
//! Memory is bounded: at most `capacity` statements are kept. When a new one arrives and there is
//! no room, the ones with the least total time go first (an eighth at a time, so the scan is paid
//! rarely), so what stays is the top by total time, the statements worth tuning.
//!
//! Recording costs one fingerprint and one short critical section on one of 16 shards; the
//! `statements` benchmark measures it against running without statistics.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), seawall::Error> {
//! use seawall::{Cluster, Pool};
//! use seawall::sim::SimBackend;
//!
//! let db = SimBackend::builder("primary").build();
//! let cluster = Cluster::builder()
//!     .primary("primary", Pool::builder(db.connector()).name("primary").build()?)
//!     .build()?;
//! for id in 0..3 {
//!     let sql = format!("UPDATE orders SET state = 'paid' WHERE id = {id}");
//!     cluster.execute(&sql, |conn, sql| Box::pin(conn.query(sql))).await?;
//! }
//! let stats = cluster.statements();
//! assert_eq!(stats[0].calls, 3);
//! assert_eq!(stats[0].statement, "update orders set state = ? where id = ?");
//! println!("{}", seawall::statements::Table(&stats));
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::classify::{normalize, truncate, Fingerprint, FingerprintMap};
use crate::histogram::{bucket_of, midpoint, upper_bound};

const SHARDS: usize = 16;

/// One finished statement, as reported to [`StatementStats::record`].
#[derive(Debug, Clone, Copy)]
pub struct Execution<'a> {
    /// The statement's fingerprint.
    pub fingerprint: Fingerprint,
    /// Its text (normalized when first seen, for display).
    pub sql: &'a str,
    /// The node that ran it.
    pub node: &'a Arc<str>,
    /// How long it ran.
    pub elapsed: Duration,
    /// Whether it failed.
    pub failed: bool,
    /// Rows it returned or touched, if known.
    pub rows: Option<u64>,
}

/// Per-statement figures, bounded to the statements with the most total time.
pub struct StatementStats {
    shards: Box<[Mutex<FingerprintMap<Entry>>]>,
    per_shard: usize,
    evicted: AtomicU64,
}

impl fmt::Debug for StatementStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatementStats")
            .field("capacity", &self.capacity())
            .field("evicted", &self.evicted())
            .finish_non_exhaustive()
    }
}

impl StatementStats {
    /// Keeps at most about `capacity` statements (rounded up to a multiple of 16).
    pub fn new(capacity: usize) -> Self {
        StatementStats {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(FingerprintMap::default()))
                .collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            evicted: AtomicU64::new(0),
        }
    }

    /// Most statements kept.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Statements dropped to make room, since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    /// Statements held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// `true` when no statement is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one execution.
    pub fn record(&self, run: Execution<'_>) {
        let shard = &self.shards[(run.fingerprint.get() >> 60) as usize % SHARDS];
        let mut map = shard.lock();
        if let Some(entry) = map.get_mut(&run.fingerprint) {
            entry.add(&run);
            return;
        }
        // First sighting: normalize outside the lock, which other statements need.
        drop(map);
        let mut entry = Entry::new(normalize(run.sql));
        entry.add(&run);
        let mut map = shard.lock();
        if let Some(existing) = map.get_mut(&run.fingerprint) {
            existing.add(&run);
            return;
        }
        if map.len() >= self.per_shard {
            let dropped = evict_cheapest(&mut map, self.per_shard);
            self.evicted.fetch_add(dropped as u64, Relaxed);
        }
        map.insert(run.fingerprint, entry);
    }

    /// Every statement kept, most total time first.
    pub fn snapshot(&self) -> Vec<StatementStat> {
        let mut all: Vec<StatementStat> = self
            .shards
            .iter()
            .flat_map(|shard| {
                let map = shard.lock();
                map.iter().map(|(fp, e)| e.stat(*fp)).collect::<Vec<_>>()
            })
            .collect();
        all.sort_by(|a, b| {
            b.total
                .cmp(&a.total)
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        all
    }

    /// Forgets every statement.
    pub fn reset(&self) {
        for shard in self.shards.iter() {
            shard.lock().clear();
        }
    }
}

/// Drops the eighth of `map` with the least total time (at least one entry); returns how many.
fn evict_cheapest(map: &mut FingerprintMap<Entry>, per_shard: usize) -> usize {
    let mut by_total: Vec<(Duration, Fingerprint)> =
        map.iter().map(|(fp, e)| (e.total, *fp)).collect();
    let n = (per_shard / 8).clamp(1, by_total.len().max(1));
    if by_total.is_empty() {
        return 0;
    }
    by_total.select_nth_unstable(n - 1);
    for (_, fp) in &by_total[..n] {
        map.remove(fp);
    }
    n
}

struct Entry {
    statement: Box<str>,
    calls: u64,
    errors: u64,
    rows: u64,
    rows_reported: u64,
    total: Duration,
    max: Duration,
    /// Sparse latency histogram: (bucket, count), sorted by bucket. A statement's latencies
    /// fall in few buckets, so this stays a handful of pairs.
    latency: Vec<(u16, u64)>,
    nodes: Vec<(Arc<str>, u64)>,
}

impl Entry {
    fn new(statement: String) -> Self {
        Entry {
            statement: truncate(statement, 2048).into_boxed_str(),
            calls: 0,
            errors: 0,
            rows: 0,
            rows_reported: 0,
            total: Duration::ZERO,
            max: Duration::ZERO,
            latency: Vec::new(),
            nodes: Vec::new(),
        }
    }

    fn add(&mut self, run: &Execution<'_>) {
        self.calls += 1;
        self.errors += u64::from(run.failed);
        if let Some(rows) = run.rows {
            self.rows += rows;
            self.rows_reported += 1;
        }
        self.total += run.elapsed;
        self.max = self.max.max(run.elapsed);
        let us = u64::try_from(run.elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = bucket_of(us) as u16;
        match self.latency.binary_search_by_key(&bucket, |&(b, _)| b) {
            Ok(i) => self.latency[i].1 += 1,
            Err(i) => self.latency.insert(i, (bucket, 1)),
        }
        // Pointer first: the node's name is one shared allocation.
        match self
            .nodes
            .iter_mut()
            .find(|(n, _)| Arc::ptr_eq(n, run.node) || n == run.node)
        {
            Some((_, count)) => *count += 1,
            None => self.nodes.push((run.node.clone(), 1)),
        }
    }

    fn quantile(&self, q: f64) -> Duration {
        let rank = ((self.calls as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for &(bucket, count) in &self.latency {
            seen += count;
            if seen >= rank {
                return Duration::from_micros(upper_bound(bucket as usize)).min(self.max);
            }
        }
        self.max
    }

    fn stat(&self, fingerprint: Fingerprint) -> StatementStat {
        let mean_us = self
            .latency
            .iter()
            .map(|&(b, c)| u128::from(midpoint(b as usize)) * u128::from(c))
            .sum::<u128>()
            / u128::from(self.calls.max(1));
        StatementStat {
            fingerprint,
            statement: self.statement.to_string(),
            calls: self.calls,
            errors: self.errors,
            rows: (self.rows_reported > 0).then_some(self.rows),
            total: self.total,
            mean: self.total / u32::try_from(self.calls.max(1)).unwrap_or(u32::MAX),
            max: self.max,
            p50: self.quantile(0.50),
            p99: self.quantile(0.99),
            histogram_mean: Duration::from_micros(u64::try_from(mean_us).unwrap_or(u64::MAX)),
            nodes: self.nodes.clone(),
        }
    }
}

/// One statement's figures, from [`Cluster::statements`](crate::Cluster::statements).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatementStat {
    /// The statement's fingerprint.
    pub fingerprint: Fingerprint,
    /// The normalized statement (literals as `?`).
    pub statement: String,
    /// Executions.
    pub calls: u64,
    /// Executions that failed.
    pub errors: u64,
    /// Rows returned or touched, summed over the executions that reported them; `None` if none
    /// did.
    pub rows: Option<u64>,
    /// Total time.
    pub total: Duration,
    /// Mean time.
    pub mean: Duration,
    /// Longest time.
    pub max: Duration,
    /// Median time (a histogram bucket's upper bound, within 12.5%).
    pub p50: Duration,
    /// 99th percentile time (within 12.5%).
    pub p99: Duration,
    /// Mean from the histogram's bucket midpoints; close to `mean`, kept to check the buckets.
    pub histogram_mean: Duration,
    /// The nodes that ran it, with how many times each.
    pub nodes: Vec<(Arc<str>, u64)>,
}

/// Renders statement figures as a table, most total time first.
///
/// ```text
/// fingerprint       calls  errors   rows     total      mean       p50       p99       max  nodes                 statement
/// 9c0e0d1f5a3b2c71   1204       0   1204   3.61s     3.00ms    3.07ms    3.58ms    4.20ms  replica-1:598 replica-2:606  select * from orders where id = ?
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Table<'a>(pub &'a [StatementStat]);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<16} {:>8} {:>7} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}  {:<24} statement",
            "fingerprint", "calls", "errors", "rows", "total", "mean", "p50", "p99", "max", "nodes"
        )?;
        for s in self.0 {
            let rows = s.rows.map_or_else(|| "-".to_owned(), |r| r.to_string());
            let nodes = s
                .nodes
                .iter()
                .map(|(n, c)| format!("{n}:{c}"))
                .collect::<Vec<_>>()
                .join(" ");
            let statement: String = s.statement.chars().take(120).collect();
            writeln!(
                f,
                "{:<16} {:>8} {:>7} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}  {:<24} {}",
                s.fingerprint.to_string(),
                s.calls,
                s.errors,
                rows,
                format!("{:.2?}", s.total),
                format!("{:.2?}", s.mean),
                format!("{:.2?}", s.p50),
                format!("{:.2?}", s.p99),
                format!("{:.2?}", s.max),
                nodes,
                statement,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::fingerprint;

    fn run<'a>(sql: &'a str, node: &'a Arc<str>, ms: u64) -> Execution<'a> {
        Execution {
            fingerprint: fingerprint(sql),
            sql,
            node,
            elapsed: Duration::from_millis(ms),
            failed: false,
            rows: None,
        }
    }

    #[test]
    fn figures_add_up_per_fingerprint() {
        let stats = StatementStats::new(100);
        let (a, b): (Arc<str>, Arc<str>) = ("replica-1".into(), "replica-2".into());
        for i in 1..=100 {
            let node = if i % 4 == 0 { &b } else { &a };
            let sql = format!("SELECT * FROM t WHERE id = {i}");
            stats.record(Execution {
                failed: i % 10 == 0,
                rows: Some(2),
                ..run(&sql, node, i)
            });
        }
        stats.record(run("UPDATE t SET x = 1", &a, 1));
        let all = stats.snapshot();
        assert_eq!(all.len(), 2);
        let s = &all[0];
        assert_eq!(s.statement, normalize("SELECT * FROM t WHERE id = 1"));
        assert_eq!((s.calls, s.errors, s.rows), (100, 10, Some(200)));
        assert_eq!(s.total, Duration::from_millis(5050));
        assert_eq!(s.mean, Duration::from_micros(50_500));
        assert_eq!(s.max, Duration::from_millis(100));
        let within = |d: Duration, ms: f64| {
            let x = d.as_secs_f64() * 1000.0;
            x >= ms && x <= ms * 1.126
        };
        assert!(within(s.p50, 50.0), "p50 {:?}", s.p50);
        assert!(within(s.p99, 99.0) || s.p99 == s.max, "p99 {:?}", s.p99);
        let hm = s.histogram_mean.as_secs_f64() * 1000.0;
        assert!((45.0..=56.0).contains(&hm), "histogram mean {hm}");
        assert_eq!(s.nodes, vec![(a.clone(), 75), (b.clone(), 25)]);
        assert_eq!(all[1].rows, None);
        let table = Table(&all).to_string();
        assert!(table.contains("replica-1:75 replica-2:25"), "{table}");
        assert_eq!(table.lines().count(), 3);
    }

    #[test]
    fn concurrent_recorders_lose_nothing() {
        let stats = Arc::new(StatementStats::new(64));
        let nodes: Vec<Arc<str>> = (0..4).map(|i| Arc::from(format!("n{i}"))).collect();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (stats, node) = (stats.clone(), nodes[t].clone());
                std::thread::spawn(move || {
                    for i in 0..5000u64 {
                        let sql = format!("SELECT * FROM t{} WHERE id = {i}", i % 8);
                        stats.record(run(&sql, &node, 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all = stats.snapshot();
        assert_eq!(all.len(), 8);
        for s in &all {
            assert_eq!(s.calls, 4 * 5000 / 8);
            assert_eq!(s.nodes.len(), 4);
            assert!(s.nodes.iter().all(|(_, n)| *n == 5000 / 8));
        }
    }

    #[test]
    fn a_huge_statement_is_kept_cut() {
        let stats = StatementStats::new(16);
        let node: Arc<str> = "p".into();
        let sql = format!("SELECT {} FROM t", "é, ".repeat(500_000));
        stats.record(run(&sql, &node, 1));
        let kept = &stats.snapshot()[0].statement;
        assert!(
            kept.len() <= 2048 + '…'.len_utf8(),
            "{} bytes kept",
            kept.len()
        );
        assert!(kept.starts_with("select é"), "{}", &kept[..20]);
    }

    #[test]
    fn bounded_memory_keeps_the_costliest() {
        let stats = StatementStats::new(32);
        let node: Arc<str> = "p".into();
        // One expensive statement, then a flood of cheap distinct ones.
        stats.record(run("SELECT expensive()", &node, 10_000));
        for i in 0..1000 {
            let sql = format!("SELECT cheap_{i}()");
            stats.record(run(&sql, &node, 1));
        }
        let all = stats.snapshot();
        assert!(all.len() <= stats.capacity(), "{} kept", all.len());
        assert_eq!(all[0].statement, "select expensive()");
        assert_eq!(stats.evicted() as usize + all.len(), 1001);
        stats.reset();
        assert!(stats.snapshot().is_empty());
    }
}
