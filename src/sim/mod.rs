//! An in-process simulated database, for tests, the demo and the benchmarks.
//!
//! Users can test their own code against it too: it needs no database, runs under
//! `tokio::time::pause()` (so minutes of simulated traffic take milliseconds and every run with
//! the same seed gives the same result), and can be told to misbehave.
//!
//! A [`SimBackend`] models one database server: `capacity` queries run at once, the rest queue
//! inside the server (as on a real database, whose CPUs and disks saturate); each query takes a
//! service time drawn from a [`ServiceTime`] distribution and multiplied by a slowdown factor.
//! Faults are injected at run time: refused or slow connects, query errors, connections that
//! break, and outages. [`SimConnector`] is the [`Connector`] that opens [`SimConnection`]s to it.
//!
//! [`workload`] drives a simulated cluster with open-loop traffic (arrivals on a schedule,
//! whatever the answers) and records what each request got; [`outage`] uses it to replay the
//! postmortem's surge against an unprotected pool and against a [`Cluster`](crate::Cluster).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use std::time::Duration;
//! use seawall::pool::Pool;
//! use seawall::sim::{ServiceTime, SimBackend};
//!
//! let db = SimBackend::builder("primary")
//!     .capacity(4)
//!     .service_time(ServiceTime::Fixed(Duration::from_millis(2)))
//!     .build();
//! let pool = Pool::builder(db.connector()).max_size(8).build().unwrap();
//! let mut conn = pool.get().await.unwrap();
//! let took = conn.query("SELECT 1").await.unwrap();
//! assert_eq!(took, Duration::from_millis(2));
//!
//! db.set_down(true); // an outage: connects are refused, open connections break
//! assert!(conn.query("SELECT 1").await.is_err());
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

use crate::breaker::Outcome;
use crate::driver::{Connector, NodeStatus};

pub mod episode;
pub mod fleet;
pub mod outage;
pub mod usl;
pub mod workload;

use usl::Usl;

/// How long a query takes on an idle server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceTime {
    /// Always the same.
    Fixed(Duration),
    /// Exponentially distributed with this mean (memoryless, like many OLTP workloads).
    Exponential(Duration),
    /// Uniform between the bounds.
    Uniform(Duration, Duration),
}

impl ServiceTime {
    fn sample(&self, rng: &mut SmallRng) -> Duration {
        match *self {
            ServiceTime::Fixed(d) => d,
            ServiceTime::Exponential(mean) => {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                mean.mul_f64(-u.ln())
            }
            ServiceTime::Uniform(lo, hi) if hi > lo => lo + (hi - lo).mul_f64(rng.random::<f64>()),
            ServiceTime::Uniform(lo, _) => lo,
        }
    }
}

/// The settings of a simulated server that can change at run time.
#[derive(Debug, Clone)]
struct Knobs {
    service: ServiceTime,
    slowdown: f64,
    connect_latency: Duration,
    connect_failure_rate: f64,
    query_error_rate: f64,
    break_rate: f64,
    hang: bool,
    finish_abandoned: bool,
    /// Stretches service times with the queries running at once.
    usl: Option<Usl>,
    /// Share of a query's service time added per open connection.
    connection_cost: f64,
    /// Waited by every query before its service (a checkpoint's I/O stall).
    stall: Duration,
}

/// Counters of what a simulated server saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimStats {
    /// Connect attempts, failed ones included.
    pub connect_attempts: u64,
    /// Connections opened.
    pub connects: u64,
    /// Connections currently open (dropped connections are subtracted: a leak shows here). A
    /// connection dropped while an abandoned query still runs on it
    /// ([`SimBackendBuilder::finish_abandoned_queries`]) counts until that query ends, as its
    /// server process lives on until then.
    pub open_connections: usize,
    /// Queries started.
    pub queries: u64,
    /// Queries that failed.
    pub query_errors: u64,
    /// Queries running right now (at most the capacity).
    pub running: usize,
    /// Most queries that ever ran at once (since the last [`SimBackend::reset_peaks`]).
    pub peak_running: usize,
    /// Queries on the server right now, running or waiting for a slot, abandoned ones included:
    /// the work the database has in hand.
    pub in_server: usize,
    /// Most queries ever on the server at once (since the last [`SimBackend::reset_peaks`]).
    pub peak_in_server: usize,
    /// Total time queries held a server slot. Divided by `queries` it gives the mean service
    /// time actually served, which under Tokio's timer (1 ms ticks) is the drawn one rounded up
    /// to the millisecond.
    pub busy: Duration,
    /// Pings answered.
    pub pings: u64,
    /// Session resets run.
    pub resets: u64,
    /// Statements refused because they write and the server is a replica.
    pub refused_writes: u64,
    /// Connects refused because `max_connections` were open.
    pub refused_connects: u64,
}

/// One simulated database server.
pub struct SimBackend {
    name: Arc<str>,
    capacity: usize,
    servers: Semaphore,
    knobs: Mutex<Knobs>,
    rng: Mutex<SmallRng>,
    /// Bumped by an outage: connections from an older epoch are broken.
    epoch: AtomicU64,
    connect_attempts: AtomicU64,
    connects: AtomicU64,
    open: AtomicUsize,
    queries: AtomicU64,
    query_errors: AtomicU64,
    running: AtomicUsize,
    peak_running: AtomicUsize,
    in_server: AtomicUsize,
    peak_in_server: AtomicUsize,
    busy_nanos: AtomicU64,
    pings: AtomicU64,
    resets: AtomicU64,
    next_id: AtomicU64,
    lag: Mutex<Option<Duration>>,
    position: AtomicU64,
    /// The timeline a probe reports; 0: none (the probe says it cannot tell).
    timeline: AtomicU32,
    primary: AtomicBool,
    down: AtomicBool,
    refused_writes: AtomicU64,
    /// Lowercase names of functions that write, beyond what the classifier knows.
    writing_functions: Mutex<Vec<String>>,
    /// Connects past this many open connections are refused.
    max_connections: AtomicUsize,
    refused_connects: AtomicU64,
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBackend")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Configures a [`SimBackend`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SimBackendBuilder {
    name: Arc<str>,
    capacity: usize,
    knobs: Knobs,
    seed: u64,
    primary: bool,
    writing_functions: Vec<String>,
    max_connections: usize,
}

impl SimBackendBuilder {
    /// A concurrency–throughput curve: each query's service time is stretched by
    /// [`Usl::stretch`] of the queries running at that moment (itself included), so that past
    /// the curve's knee the server gets less done and every query takes longer. Default none
    /// (service times do not depend on load). Give the server a `capacity` of at least
    /// `max_connections` so that every connection's query runs, as on PostgreSQL, where each
    /// connection is a process.
    pub fn usl(mut self, usl: Usl) -> Self {
        self.knobs.usl = Some(usl);
        self
    }

    /// Share of a query's service time added per open connection (each backend process costs
    /// memory, and snapshots scan every one): `0.0005` makes a query 50% slower with 1000
    /// connections open. Default 0; negative or NaN is read as 0.
    pub fn connection_cost(mut self, share: f64) -> Self {
        self.knobs.connection_cost = if share > 0.0 { share } else { 0.0 };
        self
    }

    /// Most connections open at once, as PostgreSQL's `max_connections`: connects past it fail
    /// with [`SimError::TooManyConnections`]. Default unlimited.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Queries served at once; more queue inside the server. Default 8; at least 1.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }

    /// Service time of one query. Default fixed 1 ms.
    pub fn service_time(mut self, s: ServiceTime) -> Self {
        self.knobs.service = s;
        self
    }

    /// How long a connect takes. Default 1 ms.
    pub fn connect_latency(mut self, d: Duration) -> Self {
        self.knobs.connect_latency = d;
        self
    }

    /// Share of connects refused, in `[0, 1]`. Default 0.
    pub fn connect_failure_rate(mut self, p: f64) -> Self {
        self.knobs.connect_failure_rate = p.clamp(0.0, 1.0);
        self
    }

    /// Share of queries that fail with a query error (the connection survives). Default 0.
    pub fn query_error_rate(mut self, p: f64) -> Self {
        self.knobs.query_error_rate = p.clamp(0.0, 1.0);
        self
    }

    /// Share of queries after which the connection is broken. Default 0.
    pub fn break_rate(mut self, p: f64) -> Self {
        self.knobs.break_rate = p.clamp(0.0, 1.0);
        self
    }

    /// Whether a query whose caller gives up (drops the query future) keeps running on the
    /// server until its service time is over, as on a real database without
    /// `statement_timeout`; the connection it was sent on is left broken (mid-statement), as a
    /// driver leaves a connection whose query was cancelled. The query keeps its server process
    /// too: until it ends it counts against `max_connections` and in the per-connection cost,
    /// even once the client has dropped the connection. Default `false`: the query stops at
    /// once and frees its slot.
    pub fn finish_abandoned_queries(mut self, finish: bool) -> Self {
        self.knobs.finish_abandoned = finish;
        self
    }

    /// Whether the server starts as a primary (default) or a replica.
    pub fn primary(mut self, primary: bool) -> Self {
        self.primary = primary;
        self
    }

    /// Declares a function that writes: as a replica, the server refuses statements calling it,
    /// as PostgreSQL refuses any write in recovery. Statements the classifier knows to write are
    /// refused without this.
    pub fn writing_function(mut self, name: &str) -> Self {
        self.writing_functions.push(name.to_ascii_lowercase());
        self
    }

    /// Seed of the server's randomness. Default 0 (deterministic).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Builds the server.
    pub fn build(self) -> Arc<SimBackend> {
        Arc::new(SimBackend {
            name: self.name,
            capacity: self.capacity,
            servers: Semaphore::new(self.capacity),
            knobs: Mutex::new(self.knobs),
            rng: Mutex::new(SmallRng::seed_from_u64(self.seed)),
            epoch: AtomicU64::new(0),
            connect_attempts: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            queries: AtomicU64::new(0),
            query_errors: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            peak_running: AtomicUsize::new(0),
            in_server: AtomicUsize::new(0),
            peak_in_server: AtomicUsize::new(0),
            busy_nanos: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            lag: Mutex::new(None),
            position: AtomicU64::new(0),
            timeline: AtomicU32::new(0),
            primary: AtomicBool::new(self.primary),
            down: AtomicBool::new(false),
            refused_writes: AtomicU64::new(0),
            writing_functions: Mutex::new(self.writing_functions),
            max_connections: AtomicUsize::new(self.max_connections),
            refused_connects: AtomicU64::new(0),
        })
    }
}

impl SimBackend {
    /// Starts configuring a server called `name`.
    pub fn builder(name: impl Into<Arc<str>>) -> SimBackendBuilder {
        SimBackendBuilder {
            name: name.into(),
            capacity: 8,
            knobs: Knobs {
                service: ServiceTime::Fixed(Duration::from_millis(1)),
                slowdown: 1.0,
                connect_latency: Duration::from_millis(1),
                connect_failure_rate: 0.0,
                query_error_rate: 0.0,
                break_rate: 0.0,
                hang: false,
                finish_abandoned: false,
                usl: None,
                connection_cost: 0.0,
                stall: Duration::ZERO,
            },
            seed: 0,
            primary: true,
            writing_functions: Vec::new(),
            max_connections: usize::MAX,
        }
    }

    /// Whether this server, as a replica, refuses `sql` as a write: the classifier knows it
    /// writes (transaction control, session settings and cursors excepted: a server in recovery
    /// runs read-only transactions), or it calls a declared writing function.
    pub fn is_write(&self, sql: &str) -> bool {
        use crate::classify::reason::{CURSOR, SESSION};
        if crate::classify::classify(sql)
            .is_ok_and(|c| c.is_write() && c.reason() != SESSION && c.reason() != CURSOR)
        {
            return true;
        }
        let functions = self.writing_functions.lock();
        if functions.is_empty() {
            return false;
        }
        let sql = sql.to_ascii_lowercase();
        functions.iter().any(|f| sql.contains(&format!("{f}(")))
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queries served at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A [`Connector`] for this server.
    pub fn connector(self: &Arc<Self>) -> SimConnector {
        SimConnector {
            backend: self.clone(),
        }
    }

    /// An outage (`true`): connects are refused and every open connection breaks. `false`
    /// brings the server back; connections broken by the outage stay broken.
    pub fn set_down(&self, down: bool) {
        if down {
            self.epoch.fetch_add(1, Relaxed);
        }
        self.down.store(down, Relaxed);
    }

    /// A hang (`true`): connects, pings and queries never answer (a stopped process), until
    /// `false`.
    pub fn set_hang(&self, hang: bool) {
        self.knobs.lock().hang = hang;
    }

    /// Multiplies every service time (e.g. `10.0` for a server ten times slower).
    pub fn set_slowdown(&self, factor: f64) {
        self.knobs.lock().slowdown = factor.max(0.0);
    }

    /// Changes the concurrency–throughput curve ([`SimBackendBuilder::usl`]); `None`: service
    /// times stop depending on load.
    pub fn set_usl(&self, usl: Option<Usl>) {
        self.knobs.lock().usl = usl;
    }

    /// The concurrency–throughput curve in force.
    pub fn usl(&self) -> Option<Usl> {
        self.knobs.lock().usl
    }

    /// Makes every query wait `stall` before its service (a checkpoint flushing, an I/O
    /// stall); zero ends it.
    pub fn set_stall(&self, stall: Duration) {
        self.knobs.lock().stall = stall;
    }

    /// The slowdown factor in force ([`SimBackend::set_slowdown`]).
    pub fn slowdown(&self) -> f64 {
        self.knobs.lock().slowdown
    }

    /// Changes `max_connections` ([`SimBackendBuilder::max_connections`]); open connections
    /// past it stay open.
    pub fn set_max_connections(&self, n: usize) {
        self.max_connections.store(n, Relaxed);
    }

    /// Changes the service time distribution.
    pub fn set_service_time(&self, s: ServiceTime) {
        self.knobs.lock().service = s;
    }

    /// Changes the share of refused connects.
    pub fn set_connect_failure_rate(&self, p: f64) {
        self.knobs.lock().connect_failure_rate = p.clamp(0.0, 1.0);
    }

    /// Changes the connect latency.
    pub fn set_connect_latency(&self, d: Duration) {
        self.knobs.lock().connect_latency = d;
    }

    /// Changes the share of failing queries.
    pub fn set_query_error_rate(&self, p: f64) {
        self.knobs.lock().query_error_rate = p.clamp(0.0, 1.0);
    }

    /// Changes the share of queries that break their connection.
    pub fn set_break_rate(&self, p: f64) {
        self.knobs.lock().break_rate = p.clamp(0.0, 1.0);
    }

    /// Changes whether abandoned queries run to their end
    /// ([`SimBackendBuilder::finish_abandoned_queries`]).
    pub fn set_finish_abandoned_queries(&self, finish: bool) {
        self.knobs.lock().finish_abandoned = finish;
    }

    /// Starts new peak measurements: `peak_running` and `peak_in_server` restart from the
    /// current figures (to measure the peak of one period).
    pub fn reset_peaks(&self) {
        self.peak_running.store(self.running.load(Relaxed), Relaxed);
        self.peak_in_server
            .store(self.in_server.load(Relaxed), Relaxed);
    }

    /// Sets the replication lag a probe would report.
    pub fn set_lag(&self, lag: Option<Duration>) {
        *self.lag.lock() = lag;
    }

    /// The replication lag a probe would report.
    pub fn lag(&self) -> Option<Duration> {
        *self.lag.lock()
    }

    /// Sets the replayed (replica) or written (primary) position a probe would report.
    pub fn set_position(&self, position: u64) {
        self.position.store(position, Relaxed);
    }

    /// The replayed (replica) or written (primary) position.
    pub fn position(&self) -> u64 {
        self.position.load(Relaxed)
    }

    /// Sets the timeline a probe reports (PostgreSQL's history branch, one more at each
    /// promotion); `None` (the default): the probe reports none.
    pub fn set_timeline(&self, timeline: Option<u32>) {
        self.timeline.store(timeline.unwrap_or(0), Relaxed);
    }

    /// The timeline a probe reports.
    pub fn timeline(&self) -> Option<u32> {
        Some(self.timeline.load(Relaxed)).filter(|&t| t > 0)
    }

    /// Sets whether the server says it is a primary.
    pub fn set_primary(&self, primary: bool) {
        self.primary.store(primary, Relaxed);
    }

    /// Whether the server says it is a primary.
    pub fn is_primary(&self) -> bool {
        self.primary.load(Relaxed)
    }

    /// What the server has seen so far.
    pub fn stats(&self) -> SimStats {
        SimStats {
            connect_attempts: self.connect_attempts.load(Relaxed),
            connects: self.connects.load(Relaxed),
            open_connections: self.open.load(Relaxed),
            queries: self.queries.load(Relaxed),
            query_errors: self.query_errors.load(Relaxed),
            running: self.running.load(Relaxed),
            peak_running: self.peak_running.load(Relaxed),
            in_server: self.in_server.load(Relaxed),
            peak_in_server: self.peak_in_server.load(Relaxed),
            busy: Duration::from_nanos(self.busy_nanos.load(Relaxed)),
            pings: self.pings.load(Relaxed),
            resets: self.resets.load(Relaxed),
            refused_writes: self.refused_writes.load(Relaxed),
            refused_connects: self.refused_connects.load(Relaxed),
        }
    }

    fn knobs(&self) -> Knobs {
        self.knobs.lock().clone()
    }

    fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().random::<f64>() < p
    }

    async fn hang_if_hung(&self) {
        while self.knobs.lock().hang {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Why a simulated operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// The server refused the connection.
    ConnectRefused {
        /// Server name.
        backend: Arc<str>,
    },
    /// The server refused the connection: `max_connections` were open (PostgreSQL's "sorry,
    /// too many clients already").
    TooManyConnections {
        /// Server name.
        backend: Arc<str>,
        /// The server's `max_connections`.
        max_connections: usize,
    },
    /// The server is down or the connection broke.
    ConnectionLost {
        /// Server name.
        backend: Arc<str>,
    },
    /// The query failed; the connection is fine (the caller's fault, like a constraint).
    Query {
        /// Server name.
        backend: Arc<str>,
    },
    /// The statement writes and the server is a replica: it refused it and did nothing (as
    /// PostgreSQL's SQLSTATE 25006, "cannot execute ... in a read-only transaction").
    ReadOnly {
        /// Server name.
        backend: Arc<str>,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::ConnectRefused { backend } => {
                write!(f, "connection to `{backend}` refused")
            }
            SimError::TooManyConnections {
                backend,
                max_connections,
            } => write!(
                f,
                "connection to `{backend}` refused: too many clients already ({max_connections})"
            ),
            SimError::ConnectionLost { backend } => {
                write!(f, "connection to `{backend}` lost")
            }
            SimError::Query { backend } => write!(f, "query failed on `{backend}`"),
            SimError::ReadOnly { backend } => write!(
                f,
                "cannot execute a write on `{backend}`: it is a read-only replica"
            ),
        }
    }
}

impl std::error::Error for SimError {}

/// Opens [`SimConnection`]s to a [`SimBackend`].
#[derive(Debug, Clone)]
pub struct SimConnector {
    backend: Arc<SimBackend>,
}

impl Default for SimConnector {
    /// A connector to a fresh, healthy server named `sim` with default settings.
    fn default() -> Self {
        SimBackend::builder("sim").build().connector()
    }
}

impl SimConnector {
    /// The server it connects to.
    pub fn backend(&self) -> &Arc<SimBackend> {
        &self.backend
    }
}

/// A connection to a [`SimBackend`].
pub struct SimConnection {
    id: u64,
    backend: Arc<SimBackend>,
    epoch: u64,
    broken: bool,
    dirty: bool,
    /// The server process behind the connection: it counts against `max_connections` until
    /// the connection is dropped *and* the last query it started has ended.
    process: Arc<Process>,
}

/// A server process (one per connection, as on PostgreSQL). A query abandoned by its caller
/// keeps it alive until the query ends: the server only notices the client left when it tries
/// to answer, so the process keeps its `max_connections` slot, its memory and its share of the
/// per-connection cost until then.
struct Process(Arc<SimBackend>);

impl Drop for Process {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

impl fmt::Debug for SimConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConnection")
            .field("id", &self.id)
            .field("backend", &self.backend.name)
            .field("broken", &self.broken)
            .field("dirty", &self.dirty)
            .finish()
    }
}

impl SimConnection {
    /// A number unique per server, in connect order.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The server it is connected to.
    pub fn backend(&self) -> &Arc<SimBackend> {
        &self.backend
    }

    fn lost(&mut self) -> bool {
        if self.epoch != self.backend.epoch.load(Relaxed) || self.backend.down.load(Relaxed) {
            self.broken = true;
        }
        self.broken
    }

    /// Runs a query: waits for a free server slot, then for the service time. Returns the time
    /// spent on the server (queueing inside the server included). A replica refuses a statement
    /// that writes ([`SimBackend::is_write`]) at once with [`SimError::ReadOnly`].
    pub async fn query(&mut self, sql: &str) -> Result<Duration, SimError> {
        let backend = self.backend.clone();
        let lost = || SimError::ConnectionLost {
            backend: backend.name.clone(),
        };
        if self.lost() {
            return Err(lost());
        }
        backend.queries.fetch_add(1, Relaxed);
        if !backend.is_primary() && backend.is_write(sql) {
            backend.refused_writes.fetch_add(1, Relaxed);
            backend.query_errors.fetch_add(1, Relaxed);
            return Err(SimError::ReadOnly {
                backend: backend.name.clone(),
            });
        }
        let start = tokio::time::Instant::now();
        let knobs = if backend.knobs.lock().finish_abandoned {
            // The server owns the work: if this future is dropped, the spawned task runs on and
            // the connection stays marked broken (it was left mid-statement).
            self.broken = true;
            let process = self.process.clone();
            let work = tokio::spawn({
                let backend = backend.clone();
                async move {
                    let served = serve(backend).await;
                    drop(process);
                    served
                }
            });
            let served = work.await.map_err(|_| lost())?;
            self.broken = false;
            served
        } else {
            serve(backend.clone()).await
        }
        .ok_or_else(lost)?;
        if self.lost() {
            backend.query_errors.fetch_add(1, Relaxed);
            return Err(lost());
        }
        if backend.chance(knobs.break_rate) {
            self.broken = true;
            backend.query_errors.fetch_add(1, Relaxed);
            return Err(lost());
        }
        if backend.chance(knobs.query_error_rate) {
            backend.query_errors.fetch_add(1, Relaxed);
            return Err(SimError::Query {
                backend: backend.name.clone(),
            });
        }
        Ok(start.elapsed())
    }

    /// Leaves session state behind (like `SET ROLE`); the pool resets it on return.
    pub fn set_session_state(&mut self) {
        self.dirty = true;
    }

    /// Whether the session carries state.
    pub fn has_session_state(&self) -> bool {
        self.dirty
    }

    /// Breaks the connection (like a closed socket).
    pub fn break_connection(&mut self) {
        self.broken = true;
    }
}

/// Runs `sql` on a simulated connection: the statement closure of
/// [`Cluster::execute`](crate::Cluster::execute) and
/// [`ClusterConn::execute`](crate::ClusterConn::execute) over the simulator.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), seawall::Error> {
/// use seawall::{sim, Cluster, Pool};
///
/// let db = sim::SimBackend::builder("primary").build();
/// let cluster = Cluster::builder()
///     .primary("primary", Pool::builder(db.connector()).name("primary").build()?)
///     .build()?;
/// let took = cluster.execute("UPDATE t SET x = 1", sim::query).await?;
/// assert_eq!(took, std::time::Duration::from_millis(1));
/// # Ok(()) }
/// ```
pub fn query<'c>(
    conn: &'c mut crate::ClusterConn<SimConnector>,
    sql: &'c str,
) -> crate::cluster::BoxFuture<'c, Result<Duration, SimError>> {
    Box::pin(conn.query(sql))
}

/// The server side of one query: waits for a slot, then for the service time. Returns the
/// settings it ran with, or `None` if the server went away. Counters are kept right even when the
/// future is dropped halfway.
async fn serve(backend: Arc<SimBackend>) -> Option<Knobs> {
    let _in_server = Gauge::enter(&backend.in_server, &backend.peak_in_server);
    backend.hang_if_hung().await;
    let _permit = backend.servers.acquire().await.ok()?;
    let _running = Gauge::enter(&backend.running, &backend.peak_running);
    let running = backend.running.load(Relaxed);
    let _busy = Busy(&backend.busy_nanos, tokio::time::Instant::now());
    let knobs = backend.knobs();
    let stretch = knobs.usl.map_or(1.0, |usl| usl.stretch(running))
        * (1.0 + knobs.connection_cost * backend.open.load(Relaxed) as f64);
    let service = knobs
        .service
        .sample(&mut backend.rng.lock())
        .mul_f64(knobs.slowdown * stretch);
    tokio::time::sleep(knobs.stall + service).await;
    Some(knobs)
}

/// One unit counted in a gauge (and its peak) for as long as it lives.
struct Gauge<'a>(&'a AtomicUsize);

impl<'a> Gauge<'a> {
    fn enter(gauge: &'a AtomicUsize, peak: &AtomicUsize) -> Self {
        let now = gauge.fetch_add(1, Relaxed) + 1;
        peak.fetch_max(now, Relaxed);
        Gauge(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Adds the time a query held its slot to the server's busy time when it ends.
struct Busy<'a>(&'a AtomicU64, tokio::time::Instant);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.1.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Relaxed);
    }
}

#[async_trait]
impl Connector for SimConnector {
    type Connection = SimConnection;
    type Error = SimError;

    async fn connect(&self) -> Result<SimConnection, SimError> {
        let backend = &self.backend;
        backend.connect_attempts.fetch_add(1, Relaxed);
        backend.hang_if_hung().await;
        let knobs = backend.knobs();
        tokio::time::sleep(knobs.connect_latency).await;
        if backend.down.load(Relaxed) || backend.chance(knobs.connect_failure_rate) {
            return Err(SimError::ConnectRefused {
                backend: backend.name.clone(),
            });
        }
        let max_connections = backend.max_connections.load(Relaxed);
        let admitted = backend.open.fetch_update(Relaxed, Relaxed, |open| {
            (open < max_connections).then_some(open + 1)
        });
        if admitted.is_err() {
            backend.refused_connects.fetch_add(1, Relaxed);
            return Err(SimError::TooManyConnections {
                backend: backend.name.clone(),
                max_connections,
            });
        }
        backend.connects.fetch_add(1, Relaxed);
        Ok(SimConnection {
            id: backend.next_id.fetch_add(1, Relaxed),
            backend: backend.clone(),
            epoch: backend.epoch.load(Relaxed),
            broken: false,
            dirty: false,
            process: Arc::new(Process(backend.clone())),
        })
    }

    async fn ping(&self, conn: &mut SimConnection) -> Result<(), SimError> {
        conn.backend.hang_if_hung().await;
        if conn.lost() {
            return Err(SimError::ConnectionLost {
                backend: conn.backend.name.clone(),
            });
        }
        conn.backend.pings.fetch_add(1, Relaxed);
        Ok(())
    }

    fn has_broken(&self, conn: &mut SimConnection) -> bool {
        conn.lost()
    }

    fn needs_reset(&self, conn: &SimConnection) -> bool {
        conn.dirty
    }

    async fn reset(&self, conn: &mut SimConnection) -> Result<(), SimError> {
        if conn.lost() {
            return Err(SimError::ConnectionLost {
                backend: conn.backend.name.clone(),
            });
        }
        conn.backend.resets.fetch_add(1, Relaxed);
        conn.dirty = false;
        Ok(())
    }

    fn classify_error(&self, error: &SimError) -> Outcome {
        match error {
            SimError::Query { .. } | SimError::ReadOnly { .. } => Outcome::Ignored,
            SimError::ConnectRefused { .. }
            | SimError::TooManyConnections { .. }
            | SimError::ConnectionLost { .. } => Outcome::Failure,
        }
    }

    fn is_read_only_error(&self, error: &SimError) -> bool {
        matches!(error, SimError::ReadOnly { .. })
    }

    async fn probe(&self, conn: &mut SimConnection) -> Result<Option<NodeStatus>, SimError> {
        conn.backend.hang_if_hung().await;
        if conn.lost() {
            return Err(SimError::ConnectionLost {
                backend: conn.backend.name.clone(),
            });
        }
        let backend = &conn.backend;
        let primary = backend.is_primary();
        let lag = if primary {
            Some(Duration::ZERO)
        } else {
            Some(backend.lag().unwrap_or(Duration::ZERO))
        };
        Ok(Some(
            NodeStatus::new(primary, Some(backend.position()), lag)
                .with_timeline(backend.timeline()),
        ))
    }
}

/// Promotes a simulated replica: the [`Promoter`](crate::failover::Promoter) of the simulator.
///
/// Takes `latency` (like `pg_promote()`'s ~120 ms), then the backend reports itself primary, on
/// the next timeline if it reports one.
#[derive(Debug, Clone, Default)]
pub struct SimPromoter {
    latency: Duration,
}

impl SimPromoter {
    /// A promoter whose promotions take `latency`.
    pub fn new(latency: Duration) -> Self {
        SimPromoter { latency }
    }
}

#[async_trait]
impl crate::failover::Promoter<SimConnector> for SimPromoter {
    async fn promote(
        &self,
        pool: &crate::pool::Pool<SimConnector>,
    ) -> Result<(), crate::error::DriverError> {
        let backend = pool.connector().backend();
        if backend.down.load(Relaxed) {
            return Err(crate::error::DriverError::new(SimError::ConnectRefused {
                backend: backend.name.clone(),
            }));
        }
        tokio::time::sleep(self.latency).await;
        // Like PostgreSQL, a promotion starts a new timeline (when the backend reports one).
        backend.set_timeline(backend.timeline().map(|t| t + 1));
        backend.set_primary(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn past_max_connections_connects_are_refused() {
        let db = SimBackend::builder("db").max_connections(2).build();
        let connector = db.connector();
        let first = connector.connect().await.unwrap();
        let _second = connector.connect().await.unwrap();
        let refused = connector.connect().await.unwrap_err();
        assert!(matches!(
            refused,
            SimError::TooManyConnections {
                max_connections: 2,
                ..
            }
        ));
        assert!(
            refused.to_string().contains("too many clients"),
            "{refused}"
        );
        assert_eq!(connector.classify_error(&refused), Outcome::Failure);
        drop(first);
        let _third = connector.connect().await.unwrap();
        let stats = db.stats();
        assert_eq!((stats.open_connections, stats.refused_connects), (2, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn service_stretches_with_concurrency_connections_and_stalls() {
        let ms = Duration::from_millis;
        // No coherency cost: each running query adds 50% to the next one's service time.
        let db = SimBackend::builder("db")
            .capacity(16)
            .service_time(ServiceTime::Fixed(ms(10)))
            .usl(Usl::new(0.5, 0.0).unwrap())
            .build();
        let connector = db.connector();
        let mut c = Vec::new();
        for _ in 0..3 {
            c.push(connector.connect().await.unwrap());
        }
        let [c1, c2, c3] = &mut c[..] else {
            unreachable!("three connections")
        };
        let took = tokio::join!(
            c1.query("SELECT 1"),
            c2.query("SELECT 1"),
            c3.query("SELECT 1")
        );
        // Started together with 1, 2 and 3 running: 10, 15 and 20 ms.
        assert_eq!(took, (Ok(ms(10)), Ok(ms(15)), Ok(ms(20))));
        let mut conns = c;

        db.set_usl(None);
        db.set_stall(ms(5));
        assert_eq!(conns[0].query("SELECT 1").await, Ok(ms(15)));
        db.set_stall(Duration::ZERO);

        let db = SimBackend::builder("db")
            .service_time(ServiceTime::Fixed(ms(10)))
            .connection_cost(0.25)
            .build();
        let mut a = db.connector().connect().await.unwrap();
        let _b = db.connector().connect().await.unwrap();
        // Two open connections: 10 ms * (1 + 2 * 0.25).
        assert_eq!(a.query("SELECT 1").await, Ok(ms(15)));
    }

    async fn abandon_after(db: &Arc<SimBackend>, wait: Duration) -> SimConnection {
        let mut conn = db.connector().connect().await.unwrap();
        let query = conn.query("SELECT 1");
        assert!(tokio::time::timeout(wait, query).await.is_err());
        conn
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_query_stops_by_default() {
        let ms = Duration::from_millis;
        let db = SimBackend::builder("db")
            .service_time(ServiceTime::Fixed(ms(10)))
            .build();
        let mut conn = abandon_after(&db, ms(2)).await;
        let stats = db.stats();
        assert_eq!(
            (stats.running, stats.in_server, stats.peak_in_server),
            (0, 0, 1)
        );
        assert_eq!(stats.busy, ms(2));
        assert!(!db.connector().has_broken(&mut conn));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_query_keeps_its_connection_slot_until_it_ends() {
        let ms = Duration::from_millis;
        let db = SimBackend::builder("db")
            .service_time(ServiceTime::Fixed(ms(10)))
            .max_connections(1)
            .finish_abandoned_queries(true)
            .build();
        let conn = abandon_after(&db, ms(2)).await;
        drop(conn);
        // The client is gone, its server process is not: max_connections is still reached.
        assert_eq!(db.stats().open_connections, 1);
        let refused = db.connector().connect().await.unwrap_err();
        assert!(matches!(refused, SimError::TooManyConnections { .. }));
        tokio::time::sleep(ms(10)).await;
        assert_eq!(db.stats().open_connections, 0);
        let _conn = db.connector().connect().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_query_can_run_to_its_end() {
        let ms = Duration::from_millis;
        let db = SimBackend::builder("db")
            .service_time(ServiceTime::Fixed(ms(10)))
            .finish_abandoned_queries(true)
            .build();
        let mut conn = abandon_after(&db, ms(2)).await;
        // The server still works for the caller that left; the connection was left mid-statement.
        assert_eq!(db.stats().in_server, 1);
        assert_eq!(db.stats().running, 1);
        assert!(db.connector().has_broken(&mut conn));
        tokio::time::sleep(ms(9)).await;
        let stats = db.stats();
        assert_eq!((stats.running, stats.in_server), (0, 0));
        assert_eq!(stats.busy, ms(10));

        db.reset_peaks();
        assert_eq!(db.stats().peak_in_server, 0);
        assert_eq!(db.stats().peak_running, 0);
        let mut conn = db.connector().connect().await.unwrap();
        assert_eq!(conn.query("SELECT 1").await, Ok(ms(10)));
        assert_eq!(db.stats().peak_in_server, 1);
    }
}
