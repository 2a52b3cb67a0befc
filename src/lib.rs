//! # seawall
//!
//! Adaptive connection pools and load-aware query routing for a replicated database, inside the
//! application.
//!
//! A shop's site was down for sixteen hours when a traffic surge exhausted its primary database:
//! connections failed, every request errored, and nothing said the database layer was the cause.
//! seawall puts the remedies of that postmortem in one library: pooling, reads spread over
//! replicas by load, protection for the primary, real-time saturation signals, and errors that
//! say why.
//!
//! ## Data flow
//!
//! An acquire travels through one module per concept:
//!
//! ```text
//! cluster.execute(sql, f) / cluster.route(sql)
//!   └─ classify ─ read-only? (route memory may know better) ─ balance ─ pick a replica by load ─┐
//!                                                                      (writes: the primary)    ▼
//!        breaker (fail fast on a failing node) ─ admission (adaptive limit, queue, shedding)
//!                                                                                               ▼
//!                                       pool (fair, bounded, cancellation-safe) ─ connection ─ f
//!                                                                                               ▼
//!   statement statistics ◄─ outcome ─► breaker, load, limit;  refused as a write? learn, retry on the primary
//! ```
//!
//! * [`classify`]: a lexical classifier; anything not provably read-only goes to the primary.
//!   Statement [fingerprints](classify::fingerprint) key a [`RouteMemory`](classify::RouteMemory)
//!   of routes declared by the application or learned from replicas that refused a write.
//! * [`cluster`]: the primary and replicas, the router, and the [`ClusterConn`] handle that
//!   reports each piece of work back to its node.
//! * [`load`] and [`balance`]: per-node peak-EWMA latency, in-flight, errors and lag, and the
//!   [`Balancer`](balance::Balancer)s that read them (power of two choices by default).
//! * [`breaker`]: per-node circuit breakers; [`limit`] and [`admission`]: adaptive
//!   concurrency limits and the bounded, priority-ordered, shedding queue in front of each node.
//! * [`failover`]: health monitor, topology discovery, fencing and opt-in automatic promotion.
//! * [`pool`]: one fast, fair pool per backend.
//! * [`driver`]: the [`Connector`] trait a database driver implements; [`sim`] is an
//!   in-process simulated database implementing it, for tests, demos and benchmarks.
//! * [`statements`]: per-statement figures (calls, errors, rows, time, p50/p99, nodes), a
//!   client-side `pg_stat_statements`; [`Cluster::snapshot`] is the operator's view of every
//!   node and route, printable as a table.
//! * [`metrics`](mod@metrics): every metric name and label, in one table, reported through the
//!   `metrics` facade; `tracing` spans and events cover acquire, connect, recycle and state
//!   changes.
//! * [`session`]: what a borrower left in its session, so that a pool resets only that.
//! * `sqlx` (feature `sqlx`): `sqlx::Executor` for a cluster (existing sqlx queries run through
//!   it unchanged), a PostgreSQL driver over sqlx connections, wrapped `PgPool`s, multi-host
//!   URLs, probes, WAL-position tokens for read-your-writes and `PgPromoter`.
//! * `testbed` (feature `testbed`): a throwaway PostgreSQL primary with streaming replicas, for
//!   integration tests and benchmarks.
//!
//! ## Quick start
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), seawall::Error> {
//! use seawall::{Cluster, Pool};
//! use seawall::sim::SimBackend;
//!
//! // Any driver implementing `Connector`; here the embedded simulator.
//! let pool = |name: &str| {
//!     let db = SimBackend::builder(name).primary(name == "primary").build();
//!     Pool::builder(db.connector()).name(name).max_size(8).build()
//! };
//! let cluster = Cluster::builder()
//!     .primary("primary", pool("primary")?)
//!     .replica("replica-1", pool("replica-1")?)
//!     .build()?;
//!
//! // Pin a connection for a statement (or a transaction) ...
//! let mut conn = cluster.route("SELECT * FROM orders WHERE id = $1").await?;
//! assert_eq!(conn.node_name(), "replica-1");
//! conn.query("SELECT * FROM orders WHERE id = $1").await.ok();
//! drop(conn);
//!
//! // ... or let the cluster run it: it times it, and a write a replica refuses is retried on
//! // the primary and remembered.
//! let sql = "UPDATE orders SET state = 'paid' WHERE id = 7";
//! cluster.execute(sql, |conn, sql| Box::pin(conn.query(sql))).await?;
//! println!("{}", cluster.snapshot());
//! # Ok(()) }
//! ```
//!
//! ## Errors
//!
//! Every failure is an [`Error`] variant that says why: a saturated pool, a database that
//! refuses connections, an open breaker, a shed request and a closed pool are different errors,
//! and each carries the figures that explain it.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod backoff;
pub mod balance;
pub mod breaker;
pub mod classify;
pub mod cluster;
pub mod diagnosis;
pub mod driver;
mod error;
pub mod failover;
mod histogram;
#[cfg(any(feature = "patroni", feature = "etcd"))]
mod http;
pub mod limit;
pub mod load;
pub mod metrics;
pub mod pool;
mod role;
pub mod session;
pub mod sim;
#[cfg(feature = "sqlx")]
pub mod sqlx;
pub mod statements;
#[cfg(feature = "testbed")]
pub mod testbed;
pub mod topology;

pub use admission::Priority;
pub use cluster::{Cluster, ClusterConn};
pub use driver::Connector;
pub use error::{
    ConfigError, DriverError, Error, NoReplica, NodeReport, NotRetried, StatementError,
    StatementTimedOut, TimeoutError, WaitCause, WriteOnReplica,
};
pub use failover::ClusterEvent;
pub use pool::{Pool, Pooled};
pub use session::SessionState;
