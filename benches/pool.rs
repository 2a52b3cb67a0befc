//! Pool overhead: seawall vs deadpool (managed) vs bb8, same run, same machine, with a trivial
//! connection type so only the pool is measured.
//!
//! Scenarios (from the core issue):
//! * `uncontended`: one task, pool of 16, get + drop.
//! * `contended`: 64 tasks on a 2-worker runtime, pool of 8, each get → `yield_now` → drop.
//! * `contended-oversubscribed`: the same while [`BUSY_THREADS`] OS threads (twice the two
//!   cores) burn CPU in seeded bursts, so the runtime's workers are preempted at random points,
//!   a preempted lock holder included: what containers with CPU quotas and busy hosts live with.
//!
//! These machines switch between fast and slow phases lasting tens of seconds, so besides the
//! criterion groups the bench runs the pools interleaved round by round (A B C A B C …) and
//! prints the median of the per-round time ratios:
//! `ratio <scenario> seawall/deadpool=<x> seawall/bb8=<y>` (lower is better for seawall).
//!
//! Beside them runs a deadpool that bounds its waits as seawall and bb8 do (its default waits
//! forever, with no timer), printed as `peer <scenario> seawall/deadpool-wait-timeout=<z>`.
//!
//! `SEAWALL_BENCH_QUICK=1` skips criterion and runs 5 interleaved rounds instead of 21;
//! `SEAWALL_BENCH_ROUNDS=<n>` sets the number of rounds and `SEAWALL_BENCH_SCENARIO=<name>` runs
//! only the scenarios whose name contains it (for comparing builds on a noisy machine).

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use tokio::runtime::Runtime;

mod common;
use common::median;

const UNCONTENDED_POOL: usize = 16;
const CONTENDED_POOL: usize = 8;
const TASKS: usize = 64;

/// The trivial connection every pool hands out.
struct Conn(#[allow(dead_code)] u64);

// --- seawall ---------------------------------------------------------------------------------
struct SeawallDriver;

#[async_trait::async_trait]
impl seawall::Connector for SeawallDriver {
    type Connection = Conn;
    type Error = std::io::Error;
    async fn connect(&self) -> Result<Conn, std::io::Error> {
        Ok(Conn(0))
    }
}

// --- deadpool --------------------------------------------------------------------------------
struct DeadpoolManager;

impl deadpool::managed::Manager for DeadpoolManager {
    type Type = Conn;
    type Error = Infallible;
    async fn create(&self) -> Result<Conn, Infallible> {
        Ok(Conn(0))
    }
    async fn recycle(
        &self,
        _: &mut Conn,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

// --- bb8 -------------------------------------------------------------------------------------
struct Bb8Manager;

impl bb8::ManageConnection for Bb8Manager {
    type Connection = Conn;
    type Error = Infallible;
    async fn connect(&self) -> Result<Conn, Infallible> {
        Ok(Conn(0))
    }
    async fn is_valid(&self, _: &mut Conn) -> Result<(), Infallible> {
        Ok(())
    }
    fn has_broken(&self, _: &mut Conn) -> bool {
        false
    }
}

#[derive(Clone)]
enum AnyPool {
    Seawall(seawall::Pool<SeawallDriver>),
    Deadpool(deadpool::managed::Pool<DeadpoolManager>),
    Bb8(bb8::Pool<Bb8Manager>),
}

const NAMES: [&str; 3] = ["seawall", "deadpool", "bb8"];

/// deadpool as configured by default waits forever, without a timer; seawall (and bb8) bound
/// every wait (30 s by default). This deadpool bounds its waits the same way
/// (`wait_timeout(30 s)`): it runs in the interleaved rounds beside the others, for the
/// `peer` line, so the cost of a bounded wait is visible apart from the pool's own.
const DEADPOOL_WAIT_TIMEOUT: &str = "deadpool-wait-timeout";

impl AnyPool {
    async fn new(which: &str, size: usize) -> AnyPool {
        let pool = match which {
            "seawall" => AnyPool::Seawall(
                seawall::Pool::builder(SeawallDriver)
                    .max_size(size)
                    .build()
                    .unwrap(),
            ),
            "deadpool" => AnyPool::Deadpool(
                deadpool::managed::Pool::builder(DeadpoolManager)
                    .max_size(size)
                    .build()
                    .unwrap(),
            ),
            DEADPOOL_WAIT_TIMEOUT => AnyPool::Deadpool(
                deadpool::managed::Pool::builder(DeadpoolManager)
                    .max_size(size)
                    .wait_timeout(Some(Duration::from_secs(30)))
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .unwrap(),
            ),
            "bb8" => AnyPool::Bb8(
                bb8::Pool::builder()
                    .max_size(size as u32)
                    .build(Bb8Manager)
                    .await
                    .unwrap(),
            ),
            _ => unreachable!(),
        };
        // Open every connection up front so the measurement is the steady state.
        let mut held = Vec::new();
        for _ in 0..size {
            held.push(pool.clone().hold().await);
        }
        drop(held);
        pool
    }

    /// Checks a connection out and keeps it (to warm the pool up).
    async fn hold(self) -> Box<dyn std::any::Any + Send> {
        match self {
            AnyPool::Seawall(p) => Box::new(p.get().await.unwrap()),
            AnyPool::Deadpool(p) => Box::new(p.get().await.unwrap()),
            AnyPool::Bb8(p) => Box::new(p.get_owned().await.unwrap()),
        }
    }

    /// One acquire + release; `yield_between` yields to the scheduler while holding it.
    #[inline]
    async fn cycle(&self, yield_between: bool) {
        match self {
            AnyPool::Seawall(p) => {
                let c = p.get().await.unwrap();
                if yield_between {
                    tokio::task::yield_now().await;
                }
                black_box(&c);
            }
            AnyPool::Deadpool(p) => {
                let c = p.get().await.unwrap();
                if yield_between {
                    tokio::task::yield_now().await;
                }
                black_box(&c);
            }
            AnyPool::Bb8(p) => {
                let c = p.get().await.unwrap();
                if yield_between {
                    tokio::task::yield_now().await;
                }
                black_box(&c);
            }
        }
    }
}

fn single_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn two_workers() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Time for `iters` uncontended cycles.
fn run_uncontended(rt: &Runtime, pool: &AnyPool, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            pool.cycle(false).await;
        }
        start.elapsed()
    })
}

/// Time for `iters` acquisitions spread over `TASKS` tasks.
fn run_contended(rt: &Runtime, pool: &AnyPool, iters: u64) -> Duration {
    let per_task = iters.div_ceil(TASKS as u64);
    rt.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS + 1));
        let mut tasks = Vec::with_capacity(TASKS);
        for _ in 0..TASKS {
            let pool = pool.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                for _ in 0..per_task {
                    pool.cycle(true).await;
                }
            }));
        }
        barrier.wait().await;
        let start = Instant::now();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

/// Busy OS threads in the oversubscribed scenario: more than the machine's two cores.
const BUSY_THREADS: usize = 4;

/// Threads burning CPU in seeded bursts (spin for 50-500 µs, sleep for 0-200 µs) until dropped.
struct Oversubscribed {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Oversubscribed {
    fn start(seed: u64) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..BUSY_THREADS as u64)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    // xorshift64*: reproducible bursts per thread.
                    let mut x = (seed ^ (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
                    let mut next = move || {
                        x ^= x >> 12;
                        x ^= x << 25;
                        x ^= x >> 27;
                        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
                    };
                    let mut work = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let spin = Duration::from_micros(50 + next() % 450);
                        let t = Instant::now();
                        while t.elapsed() < spin {
                            work = black_box(work.wrapping_add(next()));
                        }
                        std::thread::sleep(Duration::from_micros(next() % 200));
                    }
                    work
                })
            })
            .collect();
        Oversubscribed { stop, threads }
    }
}

impl Drop for Oversubscribed {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn criterion_groups(c: &mut Criterion) {
    let rt = single_thread();
    let mut group = c.benchmark_group("uncontended");
    for name in NAMES {
        let pool = rt.block_on(AnyPool::new(name, UNCONTENDED_POOL));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| run_uncontended(&rt, &pool, iters))
        });
    }
    group.finish();

    let rt = two_workers();
    let mut group = c.benchmark_group("contended");
    group.throughput(criterion::Throughput::Elements(1));
    for name in NAMES {
        let pool = rt.block_on(AnyPool::new(name, CONTENDED_POOL));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| run_contended(&rt, &pool, iters.max(TASKS as u64)))
        });
    }
    group.finish();
}

/// Runs `iters` acquisitions of one scenario on one pool and returns the elapsed time.
type Scenario = fn(&Runtime, &AnyPool, u64) -> Duration;

/// Interleaved rounds: each round times every pool once on the same workload; the ratios of a
/// round compare pools under the same machine phase.
fn interleaved(
    scenario: &str,
    rt: &Runtime,
    pool_size: usize,
    rounds: usize,
    iters: u64,
    run: Scenario,
) {
    let pools: Vec<AnyPool> = NAMES
        .iter()
        .chain(&[DEADPOOL_WAIT_TIMEOUT])
        .map(|n| rt.block_on(AnyPool::new(n, pool_size)))
        .collect();
    for p in &pools {
        run(rt, p, iters / 4); // warm-up
    }
    let mut per_op: Vec<Vec<f64>> = vec![Vec::new(); pools.len()];
    let mut vs_deadpool = Vec::new();
    let mut vs_deadpool_wait = Vec::new();
    let mut vs_bb8 = Vec::new();
    for _ in 0..rounds {
        let t: Vec<f64> = pools
            .iter()
            .map(|p| run(rt, p, iters).as_nanos() as f64 / iters as f64)
            .collect();
        vs_deadpool.push(t[0] / t[1]);
        vs_bb8.push(t[0] / t[2]);
        vs_deadpool_wait.push(t[0] / t[3]);
        for (i, x) in t.into_iter().enumerate() {
            per_op[i].push(x);
        }
    }
    for (name, times) in NAMES.iter().chain(&[DEADPOOL_WAIT_TIMEOUT]).zip(per_op) {
        println!(
            "interleaved {scenario} {name}: median {:.1} ns/acquire over {rounds} rounds",
            median(times)
        );
    }
    println!(
        "ratio {scenario} seawall/deadpool={:.3} seawall/bb8={:.3}",
        median(vs_deadpool),
        median(vs_bb8)
    );
    println!(
        "peer {scenario} seawall/{DEADPOOL_WAIT_TIMEOUT}={:.3}",
        median(vs_deadpool_wait)
    );
}

/// `SEAWALL_BENCH_PROFILE=<pool>:<scenario>` runs only that pair for a few seconds, for a
/// profiler (`perf record`) to look at one pool at a time (`contended-oversubscribed` starts
/// the busy threads too).
fn profile(spec: &str) {
    let (name, scenario) = spec.split_once(':').expect("<pool>:<scenario>");
    let _busy = (scenario == "contended-oversubscribed").then(|| Oversubscribed::start(0x5EA_3A11));
    let (rt, size, run): (Runtime, usize, Scenario) = match scenario {
        "uncontended" => (single_thread(), UNCONTENDED_POOL, run_uncontended),
        // Every task has its own connection: the scheduling floor of the contended loop.
        "floor" => (two_workers(), TASKS, run_contended),
        _ => (two_workers(), CONTENDED_POOL, run_contended),
    };
    let pool = rt.block_on(AnyPool::new(name, size));
    let start = Instant::now();
    let mut n = 0u64;
    let mut spent = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(5) {
        spent += run(&rt, &pool, 64_000);
        n += 64_000;
    }
    println!(
        "profile {name} {scenario}: {:.1} ns/acquire, {n} acquisitions",
        spent.as_nanos() as f64 / n as f64
    );
}

fn main() {
    if let Ok(spec) = std::env::var("SEAWALL_BENCH_PROFILE") {
        return profile(&spec);
    }
    let quick = std::env::var_os("SEAWALL_BENCH_QUICK").is_some();
    if !quick {
        let mut c = Criterion::default().configure_from_args();
        criterion_groups(&mut c);
        c.final_summary();
    }
    let rounds = std::env::var("SEAWALL_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 5 } else { 21 });
    let only = std::env::var("SEAWALL_BENCH_SCENARIO").unwrap_or_default();
    if "uncontended".contains(&only) {
        interleaved(
            "uncontended",
            &single_thread(),
            UNCONTENDED_POOL,
            rounds,
            200_000,
            run_uncontended,
        );
    }
    if "contended".contains(&only) {
        interleaved(
            "contended",
            &two_workers(),
            CONTENDED_POOL,
            rounds,
            64_000,
            run_contended,
        );
    }
    if "contended-oversubscribed".contains(&only) {
        let busy = Oversubscribed::start(0x5EA_3A11);
        interleaved(
            "contended-oversubscribed",
            &two_workers(),
            CONTENDED_POOL,
            rounds,
            64_000,
            run_contended,
        );
        drop(busy);
    }
}
