//! Running a statement through the cluster: routing that learns from its mistakes, and
//! statement statistics.
//!
//! [`Cluster::route`] only picks a connection; what runs on it is the caller's business.
//! [`Cluster::execute`] also runs the statement (through a closure that calls the driver), so
//! the cluster sees how it went: it times it for the [statement statistics](crate::statements),
//! and when a replica refuses it as a write, which means the replica did nothing, it retries it
//! once on the primary and remembers its fingerprint so that the next one goes straight there.

use std::future::Future;
use std::pin::Pin;

use crate::classify::{fingerprint, transaction_control, RouteMemory};
use crate::driver::Connector;
use crate::error::{Error, NotRetried};
use crate::statements::StatementStat;

use super::conn::StatementFailure;
use super::{AcquireOptions, Cluster, ClusterConn, Role, Route};

/// Reruns of a statement whose session the server ended (each one refused, so none ran).
const MAX_SESSION_RERUNS: u32 = 3;

/// The future a statement closure returns: boxed, because it borrows the connection it is given
/// (as sqlx's `Connection::transaction` takes it).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<C: Connector> Cluster<C> {
    /// Routes `sql` ([`Cluster::route`]) and runs it: `f` is given the connection and `sql`,
    /// sends it through the driver, and may report rows with [`ClusterConn::set_rows`]. Since
    /// `f` may run twice (see below), it is `FnMut` and its future may borrow only the
    /// connection and the statement; move owned parameters in.
    ///
    /// When a replica refuses the statement because it writes ([`Connector::is_read_only_error`];
    /// PostgreSQL SQLSTATE 25006), the replica did nothing. Unless the statement itself controls a
    /// transaction, `f` runs once more on the primary and its result is returned; either way the
    /// statement's fingerprint is remembered as a write ([`Cluster::route_memory`]), so the next
    /// one goes straight to the primary. A statement that opens or ends a transaction is not
    /// retried: the caller gets [`Error::WriteOnReplica`] saying so.
    ///
    /// A failure of the statement is [`Error::Statement`], naming the node and the time it ran;
    /// failing to get a connection is the acquire's own error ([`Error::Timeout`],
    /// [`Error::Overloaded`], ...).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), seawall::Error> {
    /// use seawall::{Cluster, Pool};
    /// use seawall::classify::{Classifier, Route};
    /// use seawall::sim::SimBackend;
    ///
    /// // The application said `archive_order` is read-only; it is not.
    /// let db = |name: &str| SimBackend::builder(name)
    ///     .primary(name == "primary")
    ///     .writing_function("archive_order")
    ///     .build();
    /// let pool = |name: &str| Pool::builder(db(name).connector()).name(name).build();
    /// let cluster = Cluster::builder()
    ///     .primary("primary", pool("primary")?)
    ///     .replica("replica", pool("replica")?)
    ///     .classifier(Classifier::new().with_read_only_function("archive_order"))
    ///     .build()?;
    ///
    /// let sql = "SELECT archive_order(42)";
    /// assert_eq!(cluster.classify(sql)?, Route::Replica);
    /// // The replica refuses it; it runs on the primary instead, and the cluster learns.
    /// cluster.execute(sql, |conn, sql| Box::pin(conn.query(sql))).await?;
    /// assert_eq!(cluster.classify("SELECT archive_order(7)")?, Route::Primary);
    /// assert_eq!(cluster.snapshot().routes.retried_on_primary, 1);
    /// # Ok(()) }
    /// ```
    pub async fn execute<T, F>(&self, sql: &str, f: F) -> Result<T, Error>
    where
        F: for<'c> FnMut(&'c mut ClusterConn<C>, &'c str) -> BoxFuture<'c, Result<T, C::Error>>,
    {
        self.execute_with(sql, AcquireOptions::default(), f).await
    }

    /// [`Cluster::execute`] with acquire options (timeout, priority, read-your-writes position).
    ///
    /// A [`timeout`](AcquireOptions::timeout) given here bounds the whole call: the acquire,
    /// the statement, and a retry on the primary. A statement still running at the deadline is
    /// cancelled on the server through the driver ([`Connector::cancel_handle`]; the sqlx
    /// driver terminates its backend) and its connection closed; the caller gets
    /// [`Error::Statement`] whose error is a [`StatementTimedOut`](crate::StatementTimedOut).
    /// Without a timeout the statement runs as long as the driver lets it.
    ///
    /// Dropping the returned future mid-statement cancels the statement on the server the same
    /// way (cancel on drop, the default for every statement run through `execute`): the next
    /// borrower never waits behind work nobody will read.
    pub async fn execute_with<T, F>(
        &self,
        sql: &str,
        options: AcquireOptions,
        f: F,
    ) -> Result<T, Error>
    where
        F: for<'c> FnMut(&'c mut ClusterConn<C>, &'c str) -> BoxFuture<'c, Result<T, C::Error>>,
    {
        self.run_routed(sql, options, f, ClusterConn::failure, |e| e)
            .await
    }

    /// The engine of [`Cluster::execute_with`], with the caller's error type: `failed` turns a
    /// statement's failure into it (after accounting), `lift` turns seawall's own errors
    /// (acquire, deadline) into it. The sqlx `Executor` hands its callers sqlx's errors.
    pub(crate) async fn run_routed<T, X, F>(
        &self,
        sql: &str,
        options: AcquireOptions,
        mut f: F,
        failed: impl Fn(&ClusterConn<C>, StatementFailure<'_, C::Error>) -> X,
        lift: impl Fn(Error) -> X,
    ) -> Result<T, X>
    where
        F: for<'c> FnMut(&'c mut ClusterConn<C>, &'c str) -> BoxFuture<'c, Result<T, C::Error>>,
    {
        // An explicit timeout bounds the whole statement, not only the acquire: past it the
        // statement is cancelled on the server.
        let deadline = options
            .timeout
            .map(|t| crate::pool::deadline_after(tokio::time::Instant::now(), t));
        let (route, known) = self.decide(sql).map_err(&lift)?;
        let remaining = |options: AcquireOptions| match deadline {
            Some(at) => options.timeout(at.saturating_duration_since(tokio::time::Instant::now())),
            None => options,
        };
        // Fingerprint once, and only if statistics or the memory need it (or on failure).
        let ledger = &self.shared.settings.ledger;
        let fp = known.or_else(|| ledger.statements.is_some().then(|| fingerprint(sql)));
        let routes = &ledger.routes;
        let controls_transaction = transaction_control(sql).is_some();
        // Statements rerun because the server ended their session (each attempt was refused).
        let mut session_lost = 0;
        let mut primary_refused = false;
        let (conn, error, elapsed) = loop {
            let mut conn = match route {
                Route::Replica => self.read_with(remaining(options)).await,
                Route::Primary => self.write_with(remaining(options)).await,
            }
            .map_err(&lift)?;
            let (result, elapsed) = conn.run(sql, fp, deadline, &mut f).await.map_err(|e| {
                routes.failed(&e);
                lift(e)
            })?;
            let error = match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            // The server ended the session before the statement could take effect (a shutdown
            // or crash reported to it: a switchover, a restart). Outside a transaction nothing
            // happened: run it again on a fresh connection, which waits for the node (or the new
            // primary) within the deadline. A connection that was out when the server shut down
            // may come back looking healthy and meet the next attempt: a few reruns, each
            // refused by the server, are still safe.
            if session_lost < MAX_SESSION_RERUNS
                && !controls_transaction
                && conn.is_session_lost(&error)
            {
                session_lost += 1;
                tracing::debug!(node = %conn.node().name, "session ended by the server; running the statement again");
                // A shutdown ends every session: the node's idle connections are as dead as
                // this one, and the retry must not meet one of them.
                conn.node().pool.purge_idle();
                drop(conn);
                continue;
            }
            // The primary refused it as read-only: it was demoted (a switchover, a failover
            // this process has not seen yet). Nothing happened; stop writing there, rediscover
            // now, and run it once more where writes go (waiting for the new primary).
            if !primary_refused
                && !controls_transaction
                && conn.role() == Role::Primary
                && conn.node().pool.connector().is_read_only_error(&error)
            {
                primary_refused = true;
                let node = conn.node_arc();
                tracing::warn!(node = %node.name, "the primary refused a write as read-only: rediscovering");
                drop(conn);
                super::monitor::refused_write_on_primary(&self.shared, &node);
                continue;
            }
            break (conn, error, elapsed);
        };
        let fp = fp.unwrap_or_else(|| fingerprint(sql));
        if !conn.is_refused_write(&error) || controls_transaction {
            return Err(failed(
                &conn,
                StatementFailure {
                    sql,
                    fp,
                    elapsed,
                    error,
                    not_retried: controls_transaction.then_some(NotRetried::InTransaction),
                    retried_from: None,
                },
            ));
        }
        // Nothing happened on the replica: learn, give its connection back, and run the
        // statement where it belongs.
        conn.learn_write(fp, sql);
        let replica = conn.node().name.clone();
        conn.node().routed.retried_on_primary.increment(1);
        drop(conn);
        tracing::debug!(node = %replica, fingerprint = %fp, "retrying a refused write on the primary");
        routes.retried_on_primary.add();
        let mut primary = self.write_with(remaining(options)).await.map_err(&lift)?;
        let (result, elapsed) =
            primary
                .run(sql, Some(fp), deadline, &mut f)
                .await
                .map_err(|e| {
                    routes.failed(&e);
                    lift(e)
                })?;
        result.map_err(|error| {
            failed(
                &primary,
                StatementFailure {
                    sql,
                    fp,
                    elapsed,
                    error,
                    not_retried: None,
                    retried_from: Some(replica),
                },
            )
        })
    }

    /// Figures per statement run through [`Cluster::execute`] and [`ClusterConn::execute`]
    /// (calls, errors, rows, total/mean/max time, p50/p99, nodes), most total time first; empty
    /// when statistics are off ([`ClusterBuilder::statement_stats`](super::ClusterBuilder::statement_stats)).
    /// [`statements::Table`](crate::statements::Table) prints them.
    pub fn statements(&self) -> Vec<StatementStat> {
        self.shared
            .settings
            .ledger
            .statements
            .as_ref()
            .map_or_else(Vec::new, |s| s.snapshot())
    }

    /// Forgets every statement's figures.
    pub fn reset_statements(&self) {
        if let Some(stats) = &self.shared.settings.ledger.statements {
            stats.reset();
        }
    }

    /// The routes remembered per statement: declared on the builder, or learned from replicas
    /// that refused a write. Export them with [`RouteMemory::entries`] (one line each) to load
    /// them after a restart with [`ClusterBuilder::remember`](super::ClusterBuilder::remember).
    pub fn route_memory(&self) -> &RouteMemory {
        &self.shared.settings.ledger.memory
    }
}
