//! seawall's metrics on a Prometheus scrape endpoint, fed by a simulated cluster in trouble.
//!
//! ```text
//! cargo run --example prometheus -- --addr 127.0.0.1:9187 --seconds 60
//! curl -s http://127.0.0.1:9187/metrics | grep '^seawall_'
//! ```
//!
//! seawall reports through the [`metrics`] facade and never picks an exporter: the application
//! installs one. Here it is `metrics-exporter-prometheus`, installed *before* the cluster is
//! built, because pools, breakers and admission gates register their metric handles when they
//! are built and a handle registered without a recorder goes nowhere.
//!
//! Histograms are exported as Prometheus histograms (buckets) rather than the exporter's default
//! summaries: quantiles of a summary are computed per process and cannot be added up across the
//! instances of an application, buckets can (`histogram_quantile` over `sum by (le)`).
//!
//! The cluster is a primary and two replicas on the in-process simulator, in real time so that a
//! scraper sees the figures move. The traffic repeats a cycle of four acts, about six seconds in
//! all, in which every metric of [`seawall::metrics`] moves:
//!
//! 1. **steady**: reads to the replicas, writes to the primary: acquires, connects, admissions;
//! 2. **replica down**: `replica-2` goes down: queries on it fail, its connections break, its
//!    connects are refused, its breaker opens and turns calls away, and the health
//!    monitor marks it down;
//! 3. **recovery**: `replica-2` comes back: the monitor marks it up, the breaker closes;
//! 4. **surge**: five times the traffic while the primary runs four times slower, accepts
//!    connections slowly and drops some: the primary's admission queue fills, goes LIFO and
//!    sheds; impatient callers (a 10 ms budget for a connection) run out of time in its queue
//!    or its pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, PrometheusBuilder};
use seawall::admission::ShedReason;
use seawall::breaker::{BreakerConfig, SlidingWindow};
use seawall::cluster::{AcquireOptions, Cluster};
use seawall::failover::HealthConfig;
use seawall::pool::Pool;
use seawall::sim::workload::{self, Kind, Outcome, Phase, Recording, Request, Workload};
use seawall::sim::{ServiceTime, SimBackend, SimConnector};
use seawall::Error;
use tokio::time::Instant;

/// Where the scrape endpoint listens unless `--addr` says otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9187";

/// Bucket bounds of every seawall histogram, in seconds (they all measure waits).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How long each act lasts: long enough for the health monitor (probing every 100 ms) to mark
/// the replica down or up, and for its breaker (open 0.3 to 1 s) to open or close.
const ACT: Duration = Duration::from_millis(1500);

/// How long a client waits for its answer before it gives up.
const CLIENT_DEADLINE: Duration = Duration::from_millis(250);

/// How long an impatient caller (one request in five) waits for a connection: it would rather
/// answer from a cache than queue behind a surge.
const IMPATIENT_BUDGET: Duration = Duration::from_millis(10);

/// Installs the Prometheus exporter as the process's metrics recorder, serving the scrape
/// endpoint on `addr` (any path answers).
///
/// Call it inside a Tokio runtime (the listener runs on it) and before building pools. The
/// address is bound before it returns, so a scrape right after it succeeds.
pub fn serve(addr: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(BUCKETS)?
        .install()
}

/// Builds the simulated cluster and runs whole cycles of the four acts until `duration` has
/// passed (at least one cycle, so every metric has moved when it returns). Prints a line per
/// act and the cluster's snapshot table after each cycle.
pub async fn run_workload(duration: Duration) {
    let sim = Sim::new();
    let start = Instant::now();
    let mut cycle = 0;
    loop {
        cycle += 1;
        sim.cycle(cycle).await;
        // What an operator sees, the same figures as the scrape.
        println!("{}\n", sim.cluster.snapshot());
        if start.elapsed() >= duration {
            break;
        }
    }
}

/// One stretch of the cycle: its traffic, and what happens to the databases when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Steady,
    ReplicaDown,
    Recovery,
    Surge,
}

impl Act {
    const CYCLE: [Act; 4] = [Act::Steady, Act::ReplicaDown, Act::Recovery, Act::Surge];

    fn name(self) -> &'static str {
        match self {
            Act::Steady => "steady",
            Act::ReplicaDown => "replica down",
            Act::Recovery => "recovery",
            Act::Surge => "surge",
        }
    }

    /// Arrivals per second.
    fn rate(self) -> f64 {
        match self {
            Act::Surge => 2000.0,
            _ => 400.0,
        }
    }
}

/// A primary and two replicas on the simulator, behind a cluster.
struct Sim {
    cluster: Cluster<SimConnector>,
    primary: Arc<SimBackend>,
    /// The replica that goes down and comes back.
    flaky: Arc<SimBackend>,
}

impl Sim {
    fn new() -> Sim {
        let backend = |name: &str, primary: bool, seed: u64| {
            SimBackend::builder(name)
                .capacity(8)
                .service_time(ServiceTime::Exponential(Duration::from_millis(2)))
                .connect_latency(Duration::from_millis(5))
                .primary(primary)
                .seed(seed)
                .build()
        };
        let pool = |db: &Arc<SimBackend>| {
            Pool::builder(db.connector())
                .name(db.name())
                .max_size(8)
                .min_idle(2)
                .build()
                .expect("a valid pool configuration")
        };
        let primary = backend("primary", true, 1);
        let steady = backend("replica-1", false, 2);
        let flaky = backend("replica-2", false, 3);
        let cluster = Cluster::builder()
            .primary("primary", pool(&primary))
            .replica("replica-1", pool(&steady))
            .replica("replica-2", pool(&flaky))
            // Open for 0.3 s to 1 s instead of the defaults' 5 s to 2 min, and judged on fewer
            // calls, so that the outage plays out within one act.
            .breaker(
                BreakerConfig::builder()
                    .window(SlidingWindow::Count { calls: 20 })
                    .minimum_calls(10)
                    .open_interval(Duration::from_millis(300), Duration::from_secs(1))
                    .build()
                    .expect("a valid breaker configuration"),
            )
            // A generous probe timeout: the machine running this may be busy.
            .health(
                HealthConfig::default()
                    .with_interval(Some(Duration::from_millis(100)))
                    .with_timeout(Duration::from_millis(500))
                    .with_thresholds(2, 1),
            )
            .build()
            .expect("a valid cluster configuration");
        Sim {
            cluster,
            primary,
            flaky,
        }
    }

    /// One run of the four acts.
    async fn cycle(&self, cycle: u64) {
        let phases = Act::CYCLE
            .iter()
            .map(|act| Phase::new(act.name(), ACT, act.rate()))
            .collect();
        let workload = Workload::new(phases).read_share(0.7).seed(cycle);
        let arrivals = workload.arrivals();
        let start = Instant::now();
        let script = async {
            for (i, act) in Act::CYCLE.into_iter().enumerate() {
                tokio::time::sleep_until(start + workload.phase_start(i)).await;
                self.enter(act);
            }
        };
        let traffic = workload::run(&arrivals, CLIENT_DEADLINE, |request| {
            serve_request(self.cluster.clone(), request)
        });
        let ((), recording) = tokio::join!(script, traffic);
        report(cycle, &recording);
    }

    /// Sets the databases up for `act`.
    fn enter(&self, act: Act) {
        match act {
            Act::Steady => {
                self.primary.set_slowdown(1.0);
                self.primary.set_connect_latency(Duration::from_millis(5));
                self.primary.set_break_rate(0.0);
            }
            Act::ReplicaDown => self.flaky.set_down(true),
            Act::Recovery => self.flaky.set_down(false),
            Act::Surge => {
                self.primary.set_slowdown(4.0);
                // An overloaded server is slow to accept, and drops some connections: admitted
                // writes then wait in the pool for a connect that comes too late.
                self.primary.set_connect_latency(Duration::from_millis(300));
                self.primary.set_break_rate(0.02);
            }
        }
    }
}

/// One request, as an application would send it: acquire within the client's deadline (or the
/// impatient budget), run the statement, and tell the cluster about a failure so its breaker
/// sees it.
async fn serve_request(cluster: Cluster<SimConnector>, request: Request) -> Outcome {
    let budget = match request.arrival.index % 5 {
        0 => IMPATIENT_BUDGET,
        _ => request.remaining(),
    };
    let options = AcquireOptions::new().timeout(budget);
    let (acquired, sql) = match request.arrival.kind {
        Kind::Read => (cluster.read_with(options).await, "SELECT * FROM products"),
        Kind::Write => (cluster.write_with(options).await, "UPDATE orders SET paid"),
    };
    let mut conn = match acquired {
        Ok(conn) => conn,
        // The deadline passed while it waited: it was not turned away.
        Err(Error::Timeout(_)) => return Outcome::TimedOut,
        Err(Error::Overloaded(o)) if o.reason == ShedReason::Deadline => return Outcome::TimedOut,
        Err(_) => return Outcome::Shed,
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

fn report(cycle: u64, recording: &Recording) {
    for (i, act) in Act::CYCLE.into_iter().enumerate() {
        let s = recording.summarize(|r| r.arrival.phase == i);
        println!(
            "cycle {cycle} {:<12} {:>5} requests: {:>5} ok, {:>5} shed, {:>5} timed out, {:>4} failed",
            act.name(),
            s.requests,
            s.ok,
            s.shed,
            s.timed_out,
            s.failed
        );
    }
}

#[tokio::main]
async fn main() {
    let (addr, seconds) = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\nusage: prometheus [--addr {DEFAULT_ADDR}] [--seconds N]");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(addr) {
        eprintln!("cannot serve metrics on {addr}: {e}");
        std::process::exit(1);
    }
    println!("serving seawall's metrics on http://{addr}/metrics");
    println!("a primary and two replicas, simulated; every ~6 s: steady traffic, replica-2 down,");
    println!("replica-2 back, a surge on a slow primary. Try:");
    println!("  curl -s http://{addr}/metrics | grep '^seawall_'");
    match seconds {
        Some(seconds) => run_workload(Duration::from_secs(seconds)).await,
        None => {
            tokio::select! {
                () = run_workload(Duration::MAX) => {}
                _ = tokio::signal::ctrl_c() => println!("stopped"),
            }
        }
    }
}

/// `--addr ADDR` and `--seconds N`; `None` seconds: until Ctrl-C.
fn parse_args() -> Result<(SocketAddr, Option<u64>), String> {
    let mut addr: SocketAddr = DEFAULT_ADDR.parse().expect("a valid default address");
    let mut seconds = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => addr = value()?.parse().map_err(|e| format!("--addr: {e}"))?,
            "--seconds" => seconds = Some(value()?.parse().map_err(|e| format!("--seconds: {e}"))?),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok((addr, seconds))
}
