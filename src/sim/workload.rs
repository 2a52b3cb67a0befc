//! Open-loop workloads: requests arrive on a schedule, whatever the system answers, and every
//! request's outcome is recorded.
//!
//! # Why open loop
//!
//! A closed-loop load (N clients, each sending its next request when the previous one is
//! answered) slows down when the system slows down: it cannot show an overload, because the
//! clients politely wait. Real traffic does not wait: users keep arriving at their own rate and
//! give up after a while. An open-loop generator keeps arriving at the scheduled rate, so the
//! queues that build under overload are the ones a real surge builds, and each request carries a
//! client deadline after which its caller stops waiting.
//!
//! # Parts
//!
//! * [`Workload`]: phases of constant rate (a Poisson process each), a share of reads, a seed.
//!   [`Workload::arrivals`] draws the same [`Arrival`]s for the same seed, so two set-ups can be
//!   compared on exactly the same traffic.
//! * [`run`]: replays arrivals against any `serve` function, one task per request, each wrapped
//!   in its client deadline; the function marks the moment its request was
//!   [admitted](Request::admitted) (it got a connection), so that a deadline that fires later
//!   counts as a failure of admitted work rather than as a wait that timed out.
//! * [`Recording`]: the [`Record`]s, with [summaries](Recording::summarize) (counts and latency
//!   percentiles) over any subset and [time buckets](Recording::buckets) for plots.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use std::time::Duration;
//! use seawall::sim::workload::{run, Outcome, Phase, Workload};
//!
//! let workload = Workload::new(vec![Phase::new("steady", Duration::from_secs(1), 100.0)])
//!     .read_share(0.9)
//!     .seed(7);
//! let arrivals = workload.arrivals();
//! let recording = run(&arrivals, Duration::from_millis(50), |request| async move {
//!     request.admitted();
//!     tokio::time::sleep(Duration::from_millis(2)).await;
//!     Outcome::Ok
//! })
//! .await;
//! let all = recording.summarize(|_| true);
//! assert_eq!(all.requests, arrivals.len());
//! assert_eq!(all.ok, all.requests);
//! // Tokio's timer fires on millisecond ticks: a 2 ms sleep from a random instant ends 2 to 3 ms
//! // later.
//! let p50 = all.p50.unwrap();
//! assert!(p50 >= Duration::from_millis(2) && p50 <= Duration::from_millis(3));
//! # }
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A stretch of constant arrival rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Name shown in reports.
    pub name: String,
    /// How long it lasts.
    pub duration: Duration,
    /// Mean arrivals per second (a Poisson process); 0 or less means none.
    pub rate: f64,
}

impl Phase {
    /// A phase called `name`, `duration` long, with `rate` arrivals per second on average.
    pub fn new(name: impl Into<String>, duration: Duration, rate: f64) -> Self {
        Phase {
            name: name.into(),
            duration,
            rate,
        }
    }
}

/// Whether a request reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A read-only statement.
    Read,
    /// A statement that writes (or a transaction).
    Write,
}

/// One request of a workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Position in the arrival sequence.
    pub index: usize,
    /// When it arrives, from the start of the workload.
    pub at: Duration,
    /// Read or write.
    pub kind: Kind,
    /// Index of the phase it arrives in.
    pub phase: usize,
}

/// Phases of open-loop traffic, a share of reads, and a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    phases: Vec<Phase>,
    read_share: f64,
    seed: u64,
}

impl Workload {
    /// A workload of these phases, in order; all reads, seed 0.
    pub fn new(phases: Vec<Phase>) -> Self {
        Workload {
            phases,
            read_share: 1.0,
            seed: 0,
        }
    }

    /// Share of requests that are reads, in `[0, 1]` (clamped). Default 1.
    pub fn read_share(mut self, share: f64) -> Self {
        self.read_share = if share.is_nan() {
            1.0
        } else {
            share.clamp(0.0, 1.0)
        };
        self
    }

    /// Seed of the arrival times and kinds. Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The phases.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// When phase `i` starts, from the start of the workload (the total duration for
    /// `i == phases().len()`).
    pub fn phase_start(&self, i: usize) -> Duration {
        self.phases.iter().take(i).map(|p| p.duration).sum()
    }

    /// How long the whole workload lasts.
    pub fn duration(&self) -> Duration {
        self.phase_start(self.phases.len())
    }

    /// The arrivals, in time order: exponential gaps at each phase's rate. The same seed draws
    /// the same sequence.
    pub fn arrivals(&self) -> Vec<Arrival> {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut arrivals = Vec::new();
        let mut start = Duration::ZERO;
        for (phase, p) in self.phases.iter().enumerate() {
            let end = start + p.duration;
            if p.rate > 0.0 && p.rate.is_finite() {
                let mut at = start;
                loop {
                    let u: f64 = rng.random_range(f64::EPSILON..1.0);
                    at += Duration::from_secs_f64(-u.ln() / p.rate);
                    if at >= end {
                        break;
                    }
                    let kind = if rng.random::<f64>() < self.read_share {
                        Kind::Read
                    } else {
                        Kind::Write
                    };
                    arrivals.push(Arrival {
                        index: arrivals.len(),
                        at,
                        kind,
                        phase,
                    });
                }
            }
            start = end;
        }
        arrivals
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered within its deadline.
    Ok,
    /// Turned away at once by a protection (an admission gate, a breaker, no usable replica):
    /// the caller knows right away and can degrade or retry elsewhere.
    Shed,
    /// Gave up before getting a connection: the client deadline passed while it waited.
    TimedOut,
    /// Got a connection but did not get its answer: the query failed, or the client deadline
    /// passed while it ran.
    Failed,
}

/// What a `serve` function gets for one request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The arrival being served.
    pub arrival: Arrival,
    /// When the client gives up.
    pub deadline: Instant,
    admitted: Arc<AtomicBool>,
}

impl Request {
    /// Time left before the client gives up.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Marks the request as admitted (it got a connection): if the deadline passes from now on,
    /// the request counts as [`Outcome::Failed`] rather than [`Outcome::TimedOut`].
    pub fn admitted(&self) {
        self.admitted.store(true, Ordering::Relaxed);
    }
}

/// One request's fate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    /// The request.
    pub arrival: Arrival,
    /// How it ended.
    pub outcome: Outcome,
    /// From arrival to the end (the answer, the rejection, or the deadline).
    pub latency: Duration,
}

/// Replays `arrivals` from now on: each one is handed to `serve` at its time, in its own task,
/// and abandoned at `client_deadline` after its arrival (the future is dropped, as a client that
/// gives up drops its call). Returns when every request has ended.
pub async fn run<F, Fut>(arrivals: &[Arrival], client_deadline: Duration, serve: F) -> Recording
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let start = Instant::now();
    let records = Arc::new(Mutex::new(Vec::with_capacity(arrivals.len())));
    let mut tasks = JoinSet::new();
    for &arrival in arrivals {
        let arrived = start + arrival.at;
        tokio::time::sleep_until(arrived).await;
        let admitted = Arc::new(AtomicBool::new(false));
        let request = Request {
            arrival,
            deadline: arrived + client_deadline,
            admitted: admitted.clone(),
        };
        let deadline = request.deadline;
        let call = serve(request);
        let records = records.clone();
        tasks.spawn(async move {
            let outcome = match tokio::time::timeout_at(deadline, call).await {
                Ok(outcome) => outcome,
                Err(_) if admitted.load(Ordering::Relaxed) => Outcome::Failed,
                Err(_) => Outcome::TimedOut,
            };
            records.lock().push(Record {
                arrival,
                outcome,
                latency: Instant::now().saturating_duration_since(arrived),
            });
        });
        // Reap finished tasks as we go so the set stays as small as the requests in flight.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut records = std::mem::take(&mut *records.lock());
    records.sort_by_key(|r| r.arrival.index);
    Recording { records }
}

/// The records of a run, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    records: Vec<Record>,
}

/// Counts and latency percentiles of a set of requests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Requests.
    pub requests: usize,
    /// Answered within their deadline.
    pub ok: usize,
    /// Turned away by a protection.
    pub shed: usize,
    /// Gave up waiting for a connection.
    pub timed_out: usize,
    /// Failed after getting a connection.
    pub failed: usize,
    /// Median latency of the successful ones.
    pub p50: Option<Duration>,
    /// 99th percentile latency of the successful ones.
    pub p99: Option<Duration>,
}

impl Summary {
    /// Share of the requests answered in time, in `[0, 1]` (1 with no requests).
    pub fn success_rate(&self) -> f64 {
        if self.requests == 0 {
            1.0
        } else {
            self.ok as f64 / self.requests as f64
        }
    }

    /// Requests that did not succeed.
    pub fn unsuccessful(&self) -> usize {
        self.requests - self.ok
    }
}

/// The summary of one time bucket (by arrival time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Start of the bucket, from the start of the run.
    pub start: Duration,
    /// The requests that arrived in it.
    pub summary: Summary,
}

impl Recording {
    /// Every record, in arrival order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Appends `records` (to summarise several recordings together).
    pub fn extend<'a>(&mut self, records: impl IntoIterator<Item = &'a Record>) {
        self.records.extend(records.into_iter().copied());
    }

    /// Summarises the records `filter` keeps.
    pub fn summarize(&self, filter: impl Fn(&Record) -> bool) -> Summary {
        let mut summary = Summary::default();
        let mut latencies = Vec::new();
        for record in self.records.iter().filter(|r| filter(r)) {
            summary.requests += 1;
            match record.outcome {
                Outcome::Ok => {
                    summary.ok += 1;
                    latencies.push(record.latency);
                }
                Outcome::Shed => summary.shed += 1,
                Outcome::TimedOut => summary.timed_out += 1,
                Outcome::Failed => summary.failed += 1,
            }
        }
        latencies.sort_unstable();
        summary.p50 = quantile(&latencies, 0.50);
        summary.p99 = quantile(&latencies, 0.99);
        summary
    }

    /// Summaries per `width` of arrival time, from 0 to the last arrival; a zero width gives
    /// none.
    pub fn buckets(&self, width: Duration) -> Vec<Bucket> {
        let Some(last) = self.records.iter().map(|r| r.arrival.at).max() else {
            return Vec::new();
        };
        if width.is_zero() {
            return Vec::new();
        }
        let count = (last.as_nanos() / width.as_nanos()) as usize + 1;
        (0..count)
            .map(|i| {
                let start = width * i as u32;
                let end = start + width;
                Bucket {
                    start,
                    summary: self.summarize(|r| r.arrival.at >= start && r.arrival.at < end),
                }
            })
            .collect()
    }
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        Workload::new(vec![
            Phase::new("low", Duration::from_secs(2), 100.0),
            Phase::new("high", Duration::from_secs(1), 1000.0),
        ])
        .read_share(0.9)
        .seed(3)
    }

    #[test]
    fn arrivals_follow_the_schedule_and_the_seed() {
        let arrivals = workload().arrivals();
        assert_eq!(arrivals, workload().arrivals());
        assert_ne!(arrivals, workload().seed(4).arrivals());
        let low = arrivals.iter().filter(|a| a.phase == 0).count();
        let high = arrivals.iter().filter(|a| a.phase == 1).count();
        // Poisson counts: mean 200 and 1000, standard deviations about 14 and 32.
        assert!((150..250).contains(&low), "{low}");
        assert!((900..1100).contains(&high), "{high}");
        let writes = arrivals.iter().filter(|a| a.kind == Kind::Write).count();
        let share = writes as f64 / arrivals.len() as f64;
        assert!((0.06..0.14).contains(&share), "{share}");
        assert!(arrivals.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(arrivals
            .iter()
            .all(|a| a.at >= workload().phase_start(a.phase)));
        assert!(arrivals.iter().all(|a| a.at < workload().duration()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_counts_as_timeout_before_admission_and_failure_after() {
        let arrivals = workload().arrivals();
        let deadline = Duration::from_millis(100);
        let recording = run(&arrivals, deadline, |request| async move {
            // Even arrivals are admitted after 10 ms; every request then hangs.
            tokio::time::sleep(Duration::from_millis(10)).await;
            if request.arrival.index % 2 == 0 {
                request.admitted();
            }
            std::future::pending::<Outcome>().await
        })
        .await;
        let all = recording.summarize(|_| true);
        assert_eq!(all.requests, arrivals.len());
        assert_eq!(all.failed, arrivals.len().div_ceil(2));
        assert_eq!(all.timed_out, arrivals.len() / 2);
        assert_eq!((all.ok, all.p50), (0, None));
        // Timers fire on millisecond ticks.
        let tick = Duration::from_millis(1);
        assert!(recording
            .records()
            .iter()
            .all(|r| r.latency >= deadline && r.latency <= deadline + tick));
    }

    #[tokio::test(start_paused = true)]
    async fn summaries_and_buckets_count_by_arrival() {
        let arrivals = workload().arrivals();
        let recording = run(&arrivals, Duration::from_secs(1), |request| async move {
            match request.arrival.kind {
                Kind::Write => Outcome::Shed,
                Kind::Read => {
                    let ms = 1 + (request.arrival.index % 100) as u64;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Outcome::Ok
                }
            }
        })
        .await;
        let reads = recording.summarize(|r| r.arrival.kind == Kind::Read);
        let writes = recording.summarize(|r| r.arrival.kind == Kind::Write);
        assert_eq!(reads.ok, reads.requests);
        assert_eq!(writes.shed, writes.requests);
        assert!(writes.success_rate() == 0.0 && writes.unsuccessful() == writes.requests);
        let (p50, p99) = (reads.p50.unwrap(), reads.p99.unwrap());
        assert!(p50 >= Duration::from_millis(40) && p50 <= Duration::from_millis(60));
        assert!(p99 >= Duration::from_millis(98) && p99 <= Duration::from_millis(101));

        let buckets = recording.buckets(Duration::from_millis(500));
        assert_eq!(buckets.len(), 6);
        let total: usize = buckets.iter().map(|b| b.summary.requests).sum();
        assert_eq!(total, arrivals.len());
        assert!(buckets[5].summary.requests > 3 * buckets[0].summary.requests);
        assert!(recording.buckets(Duration::ZERO).is_empty());
    }
}
