//! The handle a cluster hands out: a pooled connection that reports how its work went.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use std::time::Duration;

use tokio::time::Instant;

use crate::admission::Permit;
use crate::breaker::{CallGuard, Outcome};
use crate::classify::{fingerprint, transaction_control, Fingerprint};
use crate::driver::Connector;
use crate::error::{
    DriverError, Error, NotRetried, StatementError, StatementTimedOut, WriteOnReplica,
};
use crate::load::InFlight;
use crate::pool::Pooled;
use crate::statements::Execution;

use super::node::{Node, Role};
use super::BoxFuture;

/// A connection from one node of a [`Cluster`](super::Cluster).
///
/// It pins: every statement run through one handle uses the same connection, so a transaction
/// or a sequence that needs one session stays on it. When dropped, the connection goes back to
/// its pool and the work is accounted to the node: its duration feeds the load model and the
/// adaptive limit, and its outcome the circuit breaker. Report errors with
/// [`ClusterConn::report_error`] so a failing node is noticed; without a report the work counts
/// as a success.
pub struct ClusterConn<C: Connector> {
    // Declared first so it drops (returns the connection) before the node is released.
    conn: Pooled<C>,
    node: Arc<Node<C>>,
    outcome: Outcome,
    call: Option<CallGuard>,
    permit: Option<Permit>,
    in_flight: Option<InFlight>,
    _fallback: Option<FallbackRead>,
    /// Rows the current statement reported ([`ClusterConn::set_rows`]).
    rows: Option<u64>,
    /// A transaction opened through [`ClusterConn::execute`] is still open.
    in_transaction: bool,
    /// A statement run through `execute` is in flight: if the handle is dropped now, the
    /// statement was abandoned and is cancelled on the server.
    in_statement: bool,
    /// When the caller was admitted (a wait in the pool itself, rare behind a gate sized
    /// after it, counts as held).
    acquired: tokio::time::Instant,
    /// How long the acquire waited in the admission queue.
    waited: Duration,
}

impl<C: Connector> ClusterConn<C> {
    pub(crate) fn new(
        conn: Pooled<C>,
        node: Arc<Node<C>>,
        call: CallGuard,
        permit: Permit,
        in_flight: InFlight,
        fallback: Option<FallbackRead>,
        acquired: tokio::time::Instant,
    ) -> Self {
        let waited = permit.queued_for();
        ClusterConn {
            conn,
            node,
            outcome: Outcome::Success,
            call: Some(call),
            permit: Some(permit),
            in_flight: Some(in_flight),
            _fallback: fallback,
            rows: None,
            in_transaction: false,
            in_statement: false,
            acquired,
            waited,
        }
    }

    /// The name of the node it came from.
    pub fn node_name(&self) -> &str {
        &self.node.name
    }

    /// The role of the node it came from.
    pub fn role(&self) -> Role {
        self.node.role()
    }

    /// The node it came from.
    pub fn node(&self) -> &Node<C> {
        &self.node
    }

    pub(crate) fn node_arc(&self) -> Arc<Node<C>> {
        self.node.clone()
    }

    /// Reports an error from work on this connection. The driver decides what it says about
    /// the node ([`Connector::classify_error`]): a transport failure counts against the node
    /// (breaker, load, limit) and the connection is closed instead of reused; the caller's own
    /// mistake (syntax, constraint) does not.
    ///
    /// Work that only saw the caller's errors is not counted by the breaker (as resilience4j's
    /// ignored exceptions), though its latency still feeds the load model and the limiter.
    pub fn report_error(&mut self, error: &C::Error) {
        let outcome = self.node.pool.connector().classify_error(error);
        self.node.held.error(outcome);
        match outcome {
            Outcome::Failure => self.outcome = Outcome::Failure,
            Outcome::Ignored if self.outcome == Outcome::Success => self.outcome = Outcome::Ignored,
            _ => {}
        }
    }

    /// Marks the work as failed because of the node, whatever the error was, for example after
    /// a client-side timeout. The connection is not reused: whatever the server may still be
    /// doing for it is cancelled ([`Connector::cancel_handle`]), then it is closed, and only
    /// then may a replacement open.
    pub fn mark_failed(&mut self) {
        if self.outcome != Outcome::Failure {
            self.node.held.error(Outcome::Failure);
        }
        self.outcome = Outcome::Failure;
        self.conn.mark_interrupted();
    }

    /// The pooled connection itself.
    pub fn pooled(&mut self) -> &mut Pooled<C> {
        &mut self.conn
    }

    /// Reports how many rows the statement being executed returned or touched, for its
    /// [statement statistics](crate::statements). Call it inside the closure given to
    /// [`ClusterConn::execute`] or [`Cluster::execute`](super::Cluster::execute).
    pub fn set_rows(&mut self, rows: u64) {
        self.rows = Some(rows);
    }

    /// Whether a transaction opened by a statement run through [`ClusterConn::execute`]
    /// (`BEGIN`, `START TRANSACTION`) is still open on this handle. Transactions begun past
    /// `execute` (a driver's own `begin()`) are not seen.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Runs one statement on this pinned connection: `f` is given the connection and `sql`, and
    /// sends it through the driver.
    ///
    /// The statement's time and outcome go to the [statement statistics](crate::statements)
    /// and its error, if any, to the node's breaker and load model ([`ClusterConn::report_error`]).
    /// A failure is [`Error::Statement`], saying which node, which statement and after how long.
    ///
    /// If this is a replica and it refuses the statement as a write
    /// ([`Connector::is_read_only_error`]), nothing was done: the cluster learns the
    /// statement's fingerprint, so that [`Cluster::route`](super::Cluster::route) and
    /// [`Cluster::execute`](super::Cluster::execute) send the next one to the primary, and the
    /// caller gets [`Error::WriteOnReplica`]. A pinned handle never moves, so the statement is not
    /// retried here: it may be inside a transaction ([`ClusterConn::in_transaction`]), whose
    /// earlier statements ran on this replica, and even outside one the session may carry state
    /// the statement depends on (a `SET search_path` would make it touch another schema on a
    /// fresh primary connection). [`Cluster::execute`](super::Cluster::execute), which picks the
    /// connection itself, retries.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), seawall::Error> {
    /// # use seawall::{Cluster, Pool, sim::SimBackend};
    /// # let db = SimBackend::builder("primary").build();
    /// # let cluster = Cluster::builder()
    /// #     .primary("primary", Pool::builder(db.connector()).name("primary").build()?)
    /// #     .build()?;
    /// let mut tx = cluster.write().await?;
    /// tx.execute("BEGIN", |c, sql| Box::pin(c.query(sql))).await?;
    /// assert!(tx.in_transaction());
    /// let sku = String::from("x");
    /// tx.execute("UPDATE stock SET n = n - 1 WHERE sku = $1", |c, sql| Box::pin(async move {
    ///     let took = c.query(sql).await?; // a real driver would bind `sku` here
    ///     c.set_rows(1);
    ///     Ok(took)
    /// })).await?;
    /// tx.execute("COMMIT", |c, sql| Box::pin(c.query(sql))).await?;
    /// assert!(!tx.in_transaction());
    /// # Ok(()) }
    /// ```
    pub async fn execute<T, F>(&mut self, sql: &str, f: F) -> Result<T, Error>
    where
        F: for<'c> FnOnce(&'c mut ClusterConn<C>, &'c str) -> BoxFuture<'c, Result<T, C::Error>>,
    {
        let fp = self
            .node
            .ledger
            .statements
            .is_some()
            .then(|| fingerprint(sql));
        let was_in_transaction = self.in_transaction;
        let control = transaction_control(sql);
        let (result, elapsed) = self.run(sql, fp, None, f).await?;
        if let Some(open) = control {
            self.in_transaction = open;
        }
        result.map_err(|error| {
            let not_retried = if was_in_transaction || control.is_some() {
                NotRetried::InTransaction
            } else {
                NotRetried::Pinned
            };
            self.failure(StatementFailure {
                sql,
                fp: fp.unwrap_or_else(|| fingerprint(sql)),
                elapsed,
                error,
                not_retried: Some(not_retried),
                retried_from: None,
            })
        })
    }

    /// Runs `f` as one statement and accounts for it (statistics, breaker); does not map the
    /// driver's error. `fp` is the statement's fingerprint, needed when statistics are on.
    ///
    /// Past `deadline` the statement is abandoned and cancelled on the server (the connection
    /// is then closed): `Err` with a [`StatementTimedOut`] statement error. If this future is
    /// dropped mid-statement, the handle's drop does the same.
    pub(crate) async fn run<T, F>(
        &mut self,
        sql: &str,
        fp: Option<Fingerprint>,
        deadline: Option<Instant>,
        f: F,
    ) -> Result<(Result<T, C::Error>, Duration), Error>
    where
        F: for<'c> FnOnce(&'c mut ClusterConn<C>, &'c str) -> BoxFuture<'c, Result<T, C::Error>>,
    {
        self.rows = None;
        let start = Instant::now();
        self.in_statement = true;
        let result = match deadline {
            None => f(self, sql).await,
            Some(at) => match tokio::time::timeout_at(at, f(self, sql)).await {
                Ok(result) => result,
                Err(_) => return Err(self.abandon(sql, fp, start.elapsed())),
            },
        };
        self.in_statement = false;
        let elapsed = start.elapsed();
        let answered = match &result {
            Ok(_) => true,
            Err(error) => {
                let refused = self.is_refused_write(error);
                // A replica refusing a write says nothing against the replica.
                if !refused {
                    self.report_error(error);
                }
                refused || self.node.pool.connector().classify_error(error) != Outcome::Failure
            }
        };
        if answered {
            self.node.load.answered();
        }
        if let Some(stats) = &self.node.ledger.statements {
            stats.record(Execution {
                fingerprint: fp.unwrap_or_else(|| fingerprint(sql)),
                sql,
                node: &self.node.name,
                elapsed,
                failed: result.is_err(),
                rows: self.rows,
            });
        }
        Ok((result, elapsed))
    }

    /// A statement past its deadline: cancelled on the server, the connection closed, counted
    /// as a failure of the node (a timeout) and in the statement statistics.
    fn abandon(&mut self, sql: &str, fp: Option<Fingerprint>, elapsed: Duration) -> Error {
        self.in_statement = false;
        self.mark_failed();
        let fp = fp.unwrap_or_else(|| fingerprint(sql));
        if let Some(stats) = &self.node.ledger.statements {
            stats.record(Execution {
                fingerprint: fp,
                sql,
                node: &self.node.name,
                elapsed,
                failed: true,
                rows: None,
            });
        }
        Error::Statement(StatementError {
            node: self.node.name.clone(),
            role: self.role(),
            fingerprint: fp,
            elapsed,
            retried_from: None,
            error: DriverError::new(StatementTimedOut { after: elapsed }),
        })
    }

    /// A replica refused `error`'s statement because it writes.
    /// The server ended this session and reported that the statement did not run
    /// ([`Connector::is_session_ended_error`]).
    pub(crate) fn is_session_lost(&self, error: &C::Error) -> bool {
        self.node.pool.connector().is_session_ended_error(error)
    }

    pub(crate) fn is_refused_write(&self, error: &C::Error) -> bool {
        self.role() == Role::Replica && self.node.pool.connector().is_read_only_error(error)
    }

    /// The error for a failed statement, counted in the route figures. A write refused by a
    /// replica is learned, and becomes [`Error::WriteOnReplica`] when `not_retried` says why it
    /// will not be retried.
    pub(crate) fn failure(&self, failed: StatementFailure<'_, C::Error>) -> Error {
        let on_replica = self.note_failure(&failed);
        let StatementFailure {
            fp,
            elapsed,
            error,
            not_retried,
            retried_from,
            ..
        } = failed;
        match not_retried {
            Some(not_retried) if on_replica => Error::WriteOnReplica(WriteOnReplica {
                node: self.node.name.clone(),
                fingerprint: fp,
                not_retried,
                elapsed,
                error: DriverError::new(error),
            }),
            _ => Error::Statement(StatementError {
                node: self.node.name.clone(),
                role: self.role(),
                fingerprint: fp,
                elapsed,
                retried_from,
                error: DriverError::new(error),
            }),
        }
    }

    /// The driver's own error for a failed statement, accounted as [`ClusterConn::failure`]
    /// accounts it (learned if a replica refused it as a write, counted in the route figures):
    /// for integrations that must hand their callers the driver's error type.
    #[cfg(feature = "sqlx")]
    pub(crate) fn driver_failure(&self, failed: StatementFailure<'_, C::Error>) -> C::Error {
        self.note_failure(&failed);
        failed.error
    }

    /// Learns a write refused by a replica and counts the failure; `true` if it is a write
    /// refused by a replica and not retried.
    fn note_failure(&self, failed: &StatementFailure<'_, C::Error>) -> bool {
        let refused_write = self.is_refused_write(&failed.error);
        if refused_write {
            self.learn_write(failed.fp, failed.sql);
        }
        let on_replica = refused_write && failed.not_retried.is_some();
        let routes = &self.node.ledger.routes;
        if on_replica {
            routes.write_on_replica.add();
        } else {
            routes.statement.add();
        }
        on_replica
    }

    /// Remembers that `sql` writes; counts and announces it the first time.
    pub(crate) fn learn_write(&self, fp: Fingerprint, sql: &str) {
        let ledger = &self.node.ledger;
        if ledger.memory.learn_write(fp, sql) {
            ledger.routes.learned_writes.add();
            tracing::warn!(
                node = %self.node.name,
                fingerprint = %fp,
                statement = %crate::classify::normalize(sql),
                "a replica refused a statement as a write: routing it to the primary from now on"
            );
        }
    }
}

impl<C: Connector> ClusterConn<C> {
    /// Starts the handle's latency clock again: what came before (asking a replica its
    /// position) is not the work's latency.
    pub(crate) fn restart_clock(&mut self) {
        if let Some(old) = self.in_flight.take() {
            self.in_flight = Some(old.node().start());
            // `old` drops as cancelled: no sample.
        }
    }

    /// Gives the connection back unused: no latency sample, nothing for the breaker.
    pub(crate) fn release_unused(mut self) {
        self.outcome = Outcome::Ignored;
        self.in_flight.take();
    }
}

impl<C: Connector> Drop for ClusterConn<C> {
    fn drop(&mut self) {
        if self.in_statement {
            // Dropped mid-statement (the caller's future was cancelled): nobody will read the
            // answer. Cancel it on the server instead of leaving the next borrower behind it.
            // Says nothing about the node's health.
            self.conn.mark_interrupted();
            self.node.held.abandoned();
            if self.outcome == Outcome::Success {
                self.outcome = Outcome::Ignored;
            }
        }
        let ok = self.outcome != Outcome::Failure;
        if !ok {
            // A transport failure leaves the connection in an unknown state (many drivers,
            // sqlx among them, cannot tell a dead socket cheaply): close it, do not reuse it.
            self.conn.mark_broken();
        }
        let now = tokio::time::Instant::now();
        let held = now.saturating_duration_since(self.acquired);
        self.node
            .held
            .record(held, self as *const Self as usize >> 6);
        if let Some(call) = self.call.take() {
            self.node.finish_call_at(call, self.outcome, now);
        }
        if let Some(permit) = self.permit.take() {
            if ok {
                permit.success();
            } else {
                permit.failure();
            }
        }
        if let Some(in_flight) = self.in_flight.take() {
            in_flight.finish_split_at(ok, now, held, self.waited);
        }
    }
}

impl<C: Connector> Deref for ClusterConn<C> {
    type Target = C::Connection;

    fn deref(&self) -> &C::Connection {
        &self.conn
    }
}

impl<C: Connector> DerefMut for ClusterConn<C> {
    fn deref_mut(&mut self) -> &mut C::Connection {
        &mut self.conn
    }
}

impl<C: Connector> fmt::Debug for ClusterConn<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConn")
            .field("node", &self.node.name)
            .field("role", &self.node.role())
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

/// A statement that failed, with what its error needs to say.
pub(crate) struct StatementFailure<'a, E> {
    pub(crate) sql: &'a str,
    pub(crate) fp: Fingerprint,
    pub(crate) elapsed: Duration,
    pub(crate) error: E,
    /// Why it was not retried, when it is not.
    pub(crate) not_retried: Option<NotRetried>,
    /// The replica it ran on first, when this is its retry on the primary.
    pub(crate) retried_from: Option<Arc<str>>,
}

/// A read that fell back to the primary, counted against the primary's read budget while it
/// lasts.
#[derive(Debug)]
pub(crate) struct FallbackRead(Arc<AtomicUsize>);

impl FallbackRead {
    /// Takes a slot of the budget, if one is free.
    pub(crate) fn try_take(counter: &Arc<AtomicUsize>, budget: usize) -> Result<Self, usize> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < budget).then_some(n + 1)
            })
            .map(|_| FallbackRead(counter.clone()))
    }
}

impl Drop for FallbackRead {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
