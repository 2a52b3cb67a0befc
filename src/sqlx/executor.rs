//! `sqlx::Executor` for a cluster, its handles and its transactions: existing sqlx code runs
//! through seawall unchanged.
//!
//! ```no_run
//! # async fn demo(cluster: seawall::Cluster<seawall::sqlx::PgConnector>) -> Result<(), sqlx::Error> {
//! // Routed by statement: this read goes to a replica, the write to the primary.
//! let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&cluster).await?;
//! sqlx::query("INSERT INTO orders (total) VALUES ($1)").bind(42_i64).execute(&cluster).await?;
//!
//! // A transaction on the primary: commit, or rollback when dropped.
//! let mut tx = cluster.begin().await?;
//! sqlx::query("UPDATE stock SET n = n - 1 WHERE sku = $1").bind("x").execute(&mut tx).await?;
//! tx.commit().await?;
//! # let _ = n; Ok(()) }
//! ```
//!
//! # What runs where
//!
//! * `&Cluster`: each statement is routed as [`Cluster::execute`] routes it (by the
//!   classifier and the route memory), timed in the [statement statistics](crate::statements),
//!   and run again on the primary, learned, when a replica refuses it as a write (SQLSTATE
//!   25006). A statement that opens a transaction (`BEGIN` sent as a query) would leave it open
//!   on a connection that goes back to the pool: use [`Cluster::begin`].
//! * `&mut ClusterConn` (a pinned handle from [`Cluster::route`], [`Cluster::write`], ...) and
//!   `&mut Transaction`: every statement on the same connection, timed and learned, never
//!   moved.
//!
//! # Sessions are reset only when dirtied
//!
//! Every statement that goes through these executors is read for what it leaves in its session
//! ([`classify::session_effects`](crate::classify::session_effects): settings, `LISTEN`,
//! temporary tables, advisory locks, held cursors, an open transaction, ...). A connection comes
//! back to the pool as clean as it left unless a statement dirtied it, and then only that state
//! is undone ([`reset_tracked`](super::reset_tracked)): no reset round trip for ordinary
//! queries. Reaching the `PgConnection` itself (`&mut *tx`, `&mut **conn`) makes the session
//! unknown, and it gets the full [`reset_session`](super::reset_session) on return.
//!
//! # Errors
//!
//! A statement's failure is sqlx's own error, as sqlx would have returned it (a unique
//! violation is still `sqlx::Error::Database` with its SQLSTATE). seawall's own refusals
//! (acquire timeout, shed, breaker open, no primary, a statement past its deadline) are
//! `sqlx::Error::Io` carrying the [`Error`](crate::Error): [`cause`] finds it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::sqlx::postgres::{PgArguments, PgConnection, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use ::sqlx::{Describe, Either, Execute, Executor, Postgres, SqlStr};
use futures_core::future::BoxFuture;
use futures_core::stream::{BoxStream, Stream};
use tokio::sync::mpsc;

use crate::classify::{fingerprint, session_effects};
use crate::cluster::{AcquireOptions, StatementFailure};
use crate::driver::Connector;
use crate::error::NotRetried;
use crate::session::{Effects, SessionState};
use crate::{Cluster, ClusterConn, Error};

use super::{PgConnector, PgPoolConnection, PgPoolConnector};

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::PgConnector {}
    impl Sealed for super::PgPoolConnector {}
}

/// The seawall drivers over sqlx PostgreSQL connections: [`PgConnector`] (connections of its
/// own) and [`PgPoolConnector`] (wrapped `PgPool`s). Clusters of either implement
/// `sqlx::Executor` the same way. Sealed.
pub trait PgDriver: Connector<Error = ::sqlx::Error> + sealed::Sealed {
    /// The `PgConnection` inside a connection of this driver.
    #[doc(hidden)]
    fn pg(conn: &mut Self::Connection) -> &mut PgConnection;

    /// The same, shared.
    #[doc(hidden)]
    fn pg_ref(conn: &Self::Connection) -> &PgConnection;

    /// The connection must never be reused, by anyone.
    #[doc(hidden)]
    fn close_for_good(_conn: &mut Self::Connection) {}
}

impl PgDriver for PgConnector {
    fn pg(conn: &mut PgConnection) -> &mut PgConnection {
        conn
    }

    fn pg_ref(conn: &PgConnection) -> &PgConnection {
        conn
    }
}

impl PgDriver for PgPoolConnector {
    fn pg(conn: &mut PgPoolConnection) -> &mut PgConnection {
        conn
    }

    fn pg_ref(conn: &PgPoolConnection) -> &PgConnection {
        conn
    }

    /// Closing a connection lent by a `PgPool` would otherwise hand it back to that pool.
    fn close_for_good(conn: &mut PgPoolConnection) {
        conn.close_on_drop();
    }
}

/// The [`Error`] behind a `sqlx::Error` that seawall returned through its `Executor`s: an
/// acquire that timed out, was shed or found the breaker open, no primary, a statement past
/// its deadline. `None` for the database's and sqlx's own errors.
///
/// ```
/// # #[cfg(feature = "sqlx")] {
/// let e = seawall::sqlx::cause(&sqlx::Error::RowNotFound);
/// assert!(e.is_none());
/// # }
/// ```
pub fn cause(error: &::sqlx::Error) -> Option<&Error> {
    match error {
        ::sqlx::Error::Io(io) => io.get_ref()?.downcast_ref::<Error>(),
        _ => None,
    }
}

/// seawall's own error as a `sqlx::Error` ([`cause`] gets it back).
fn lift(error: Error) -> ::sqlx::Error {
    let kind = match &error {
        Error::Timeout(_) | Error::Statement(_) => io::ErrorKind::TimedOut,
        Error::Overloaded(_) => io::ErrorKind::WouldBlock,
        Error::Unavailable(_) | Error::NoPrimary { .. } | Error::NoReplica(_) => {
            io::ErrorKind::NotConnected
        }
        Error::Config(_) | Error::Classify(_) | Error::UnknownNode { .. } => {
            io::ErrorKind::InvalidInput
        }
        _ => io::ErrorKind::Other,
    };
    ::sqlx::Error::Io(io::Error::new(kind, error))
}

/// A query taken apart once, so that it can run again (on the primary, after a replica
/// refused it): its SQL, its encoded arguments and whether to cache its prepared statement.
struct Query {
    sql: SqlStr,
    arguments: Option<PgArguments>,
    persistent: bool,
    effects: Effects,
}

impl Query {
    fn take<'q, E: Execute<'q, Postgres>>(mut query: E) -> Result<Query, ::sqlx::Error> {
        let arguments = query.take_arguments().map_err(::sqlx::Error::Encode)?;
        let persistent = query.persistent();
        let owned = query.sql();
        // Cloning makes an owned string shared once; every attempt then clones cheaply.
        let sql = owned.clone();
        drop(owned);
        let effects = session_effects(sql.as_str());
        Ok(Query {
            sql,
            arguments,
            persistent,
            effects,
        })
    }

    fn attempt(&self) -> Attempt {
        Attempt {
            sql: self.sql.clone(),
            arguments: self.arguments.clone(),
            persistent: self.persistent,
        }
    }
}

/// One run of a [`Query`].
struct Attempt {
    sql: SqlStr,
    arguments: Option<PgArguments>,
    persistent: bool,
}

impl<'q> Execute<'q, Postgres> for Attempt {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&PgStatement> {
        None
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, ::sqlx::error::BoxDynError> {
        Ok(self.arguments.take())
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// The connection of `conn`, with `effects` recorded against its session first (before the
/// statement runs: if it is abandoned half-way, the connection is closed anyway).
fn tracked<C: PgDriver>(conn: &mut ClusterConn<C>, effects: Effects) -> &mut PgConnection {
    let pooled = conn.pooled();
    let state = effects.apply(pooled.tracked_session());
    pooled.set_session(state);
    let raw = pooled.tracked_mut();
    if state.contains(SessionState::UNRESETTABLE) {
        C::close_for_good(raw);
    }
    C::pg(raw)
}

/// How many rows a result counts for the statement statistics.
trait Rows {
    fn rows(&self) -> u64;
}

impl Rows for Option<PgRow> {
    fn rows(&self) -> u64 {
        u64::from(self.is_some())
    }
}

impl Rows for PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

/// A statement's operation on a `PgConnection`: a plain function, so that every attempt can
/// run it again.
type Op<T> = for<'a> fn(&'a mut PgConnection, Attempt) -> BoxFuture<'a, Result<T, ::sqlx::Error>>;

fn fetch_optional_op(
    conn: &mut PgConnection,
    attempt: Attempt,
) -> BoxFuture<'_, Result<Option<PgRow>, ::sqlx::Error>> {
    conn.fetch_optional(attempt)
}

fn execute_op(
    conn: &mut PgConnection,
    attempt: Attempt,
) -> BoxFuture<'_, Result<PgQueryResult, ::sqlx::Error>> {
    conn.execute(attempt)
}

/// Runs `query` routed, with retries, as [`Cluster::execute`] does.
async fn routed<C, T>(cluster: &Cluster<C>, query: Query, op: Op<T>) -> Result<T, ::sqlx::Error>
where
    C: PgDriver,
    T: Rows + Send + 'static,
{
    let effects = query.effects;
    cluster
        .run_routed(
            query.sql.as_str(),
            AcquireOptions::default(),
            |conn, _| {
                let attempt = query.attempt();
                Box::pin(async move {
                    let result = op(tracked(conn, effects), attempt).await;
                    if let Ok(value) = &result {
                        conn.set_rows(value.rows());
                    }
                    result
                })
            },
            ClusterConn::driver_failure,
            lift,
        )
        .await
}

/// Runs `query` on the pinned connection `conn`: timed, learned when a replica refuses it,
/// never moved.
async fn pinned<C, T>(
    conn: &mut ClusterConn<C>,
    query: Query,
    op: Op<T>,
) -> Result<T, ::sqlx::Error>
where
    C: PgDriver,
    T: Rows + Send + 'static,
{
    let sql = query.sql.as_str();
    let fp = conn
        .node()
        .ledger
        .statements
        .is_some()
        .then(|| fingerprint(sql));
    let was_in_transaction = conn
        .pooled()
        .tracked_session()
        .contains(SessionState::TRANSACTION);
    let effects = query.effects;
    let attempt = query.attempt();
    let (result, elapsed) = conn
        .run(sql, fp, None, |conn, _| {
            Box::pin(async move {
                let result = op(tracked(conn, effects), attempt).await;
                if let Ok(value) = &result {
                    conn.set_rows(value.rows());
                }
                result
            })
        })
        .await
        .map_err(lift)?;
    result.map_err(|error| {
        let in_transaction = was_in_transaction
            || conn
                .pooled()
                .tracked_session()
                .contains(SessionState::TRANSACTION);
        conn.driver_failure(StatementFailure {
            sql,
            fp: fp.unwrap_or_else(|| fingerprint(sql)),
            elapsed,
            error,
            not_retried: Some(if in_transaction {
                NotRetried::InTransaction
            } else {
                NotRetried::Pinned
            }),
            retried_from: None,
        })
    })
}

type Item = Result<Either<PgQueryResult, PgRow>, ::sqlx::Error>;

/// Streams the results of `query` on `conn` into `sink`. An error before the first result is
/// returned (so a refused write can be retried elsewhere); one after it goes down the stream.
async fn forward<C: PgDriver>(
    conn: &mut ClusterConn<C>,
    attempt: Attempt,
    effects: Effects,
    sink: mpsc::Sender<Item>,
) -> Result<(), ::sqlx::Error> {
    let mut rows = 0;
    let mut sent = false;
    let mut results = tracked(conn, effects).fetch_many(attempt);
    let late_error = loop {
        match std::future::poll_fn(|cx| results.as_mut().poll_next(cx)).await {
            None => break None,
            Some(Ok(item)) => {
                rows += u64::from(item.is_right());
                sent = true;
                if sink.send(Ok(item)).await.is_err() {
                    // Nobody reads any more: stop here (the connection finishes the rest).
                    break None;
                }
            }
            Some(Err(error)) if !sent => return Err(error),
            Some(Err(error)) => break Some(error),
        }
    };
    drop(results);
    conn.set_rows(rows);
    if let Some(error) = late_error {
        conn.report_error(&error);
        let _ = sink.send(Err(error)).await;
    }
    Ok(())
}

/// A stream fed by a future that runs alongside it in the same task: the future sends
/// results through a one-slot channel and waits while the reader has not taken the last one.
struct Forwarded<'e> {
    run: Option<BoxFuture<'e, Result<(), ::sqlx::Error>>>,
    results: mpsc::Receiver<Item>,
    failed: Option<::sqlx::Error>,
}

impl Forwarded<'_> {
    fn stream<'e, F>(run: impl FnOnce(mpsc::Sender<Item>) -> F) -> BoxStream<'e, Item>
    where
        F: Future<Output = Result<(), ::sqlx::Error>> + Send + 'e,
    {
        let (sink, results) = mpsc::channel(1);
        Box::pin(Forwarded {
            run: Some(Box::pin(run(sink))),
            results,
            failed: None,
        })
    }
}

impl Stream for Forwarded<'_> {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = &mut *self;
        if let Poll::Ready(Some(item)) = this.results.poll_recv(cx) {
            return Poll::Ready(Some(item));
        }
        if let Some(run) = &mut this.run {
            match run.as_mut().poll(cx) {
                Poll::Pending => {}
                Poll::Ready(done) => {
                    this.run = None;
                    this.failed = done.err();
                }
            }
        }
        match this.results.poll_recv(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Ready(None) => Poll::Ready(this.failed.take().map(Err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<'c, C: PgDriver> Executor<'c> for &'c Cluster<C> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Item>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let query = Query::take(query);
        Forwarded::stream(move |sink| async move {
            let query = query?;
            let effects = query.effects;
            self.run_routed(
                query.sql.as_str(),
                AcquireOptions::default(),
                |conn, _| Box::pin(forward(conn, query.attempt(), effects, sink.clone())),
                ClusterConn::driver_failure,
                lift,
            )
            .await
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, ::sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let query = Query::take(query);
        Box::pin(async move { routed(self, query?, fetch_optional_op).await })
    }

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<PgQueryResult, ::sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let query = Query::take(query);
        Box::pin(async move { routed(self, query?, execute_op).await })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, ::sqlx::Error>>
    where
        'c: 'e,
    {
        Box::pin(async move {
            let mut conn = self.route(sql.as_str()).await.map_err(lift)?;
            let pg = tracked(&mut conn, Effects::default());
            pg.prepare_with(sql, parameters).await
        })
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, ::sqlx::Error>>
    where
        'c: 'e,
    {
        Box::pin(async move {
            let mut conn = self.route(sql.as_str()).await.map_err(lift)?;
            let pg = tracked(&mut conn, Effects::default());
            pg.describe(sql).await
        })
    }
}

impl<'c, C: PgDriver> Executor<'c> for &'c mut ClusterConn<C> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Item>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let query = Query::take(query);
        Forwarded::stream(move |sink| async move {
            let query = query?;
            let sql = query.sql.as_str();
            let fp = self
                .node()
                .ledger
                .statements
                .is_some()
                .then(|| fingerprint(sql));
            let effects = query.effects;
            let attempt = query.attempt();
            let (result, _) = self
                .run(sql, fp, None, |conn, _| {
                    Box::pin(forward(conn, attempt, effects, sink))
                })
                .await
                .map_err(lift)?;
            result
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, ::sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let query = Query::take(query);
        Box::pin(async move { pinned(self, query?, fetch_optional_op).await })
    }

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<PgQueryResult, ::sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let query = Query::take(query);
        Box::pin(async move { pinned(self, query?, execute_op).await })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, ::sqlx::Error>>
    where
        'c: 'e,
    {
        tracked(self, Effects::default()).prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, ::sqlx::Error>>
    where
        'c: 'e,
    {
        tracked(self, Effects::default()).describe(sql)
    }
}

/// `sqlx::Acquire` for a pinned handle, for code written against `impl Acquire<'_, Database =
/// Postgres>`: `acquire` gives its `PgConnection`, `begin` a sqlx `Transaction` on it. Both reach
/// the connection itself, so the session is reset in full when the handle goes back.
impl<'c, C: PgDriver> ::sqlx::Acquire<'c> for &'c mut ClusterConn<C> {
    type Database = Postgres;
    type Connection = &'c mut PgConnection;

    fn acquire(self) -> BoxFuture<'c, Result<&'c mut PgConnection, ::sqlx::Error>> {
        let conn: &'c mut PgConnection = C::pg(self);
        Box::pin(std::future::ready(Ok(conn)))
    }

    fn begin(self) -> BoxFuture<'c, Result<::sqlx::Transaction<'c, Postgres>, ::sqlx::Error>> {
        let conn: &'c mut PgConnection = C::pg(self);
        Box::pin(::sqlx::Connection::begin(conn))
    }
}

/// A transaction on one connection of a cluster, from [`Cluster::begin`] (on the primary) or
/// [`Cluster::begin_read_only`] (`BEGIN READ ONLY` on a replica). Like sqlx's `Transaction`:
/// run statements with `&mut tx` as the executor, then [`commit`](Transaction::commit); dropped
/// without a commit, it is rolled back (before its connection is reused).
///
/// `&mut *tx` is the `PgConnection` itself, for code that needs one; the session is then reset
/// in full when the connection goes back to the pool.
pub struct Transaction<C: PgDriver> {
    conn: ClusterConn<C>,
}

impl<C: PgDriver> Transaction<C> {
    async fn begin(mut conn: ClusterConn<C>, sql: &'static str) -> Result<Self, ::sqlx::Error> {
        Executor::execute(&mut conn, sql).await?;
        Ok(Transaction { conn })
    }

    /// Commits it.
    pub async fn commit(mut self) -> Result<(), ::sqlx::Error> {
        Executor::execute(&mut self.conn, "COMMIT").await.map(drop)
    }

    /// Rolls it back.
    pub async fn rollback(mut self) -> Result<(), ::sqlx::Error> {
        Executor::execute(&mut self.conn, "ROLLBACK")
            .await
            .map(drop)
    }

    /// The cluster handle it runs on (its node, its role).
    pub fn handle(&self) -> &ClusterConn<C> {
        &self.conn
    }
}

impl<C: PgDriver> std::fmt::Debug for Transaction<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("node", &self.conn.node_name())
            .finish_non_exhaustive()
    }
}

impl<C: PgDriver> std::ops::Deref for Transaction<C> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        // Shared access cannot run anything: no need to make the session unknown.
        C::pg_ref(&self.conn)
    }
}

impl<C: PgDriver> std::ops::DerefMut for Transaction<C> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        // Through the handle's `DerefMut`: the session becomes unknown.
        C::pg(&mut self.conn)
    }
}

impl<'t, C: PgDriver> Executor<'t> for &'t mut Transaction<C> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Item>
    where
        't: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        (&mut self.conn).fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, ::sqlx::Error>>
    where
        't: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        (&mut self.conn).fetch_optional(query)
    }

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<PgQueryResult, ::sqlx::Error>>
    where
        't: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        Executor::execute(&mut self.conn, query)
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, ::sqlx::Error>>
    where
        't: 'e,
    {
        (&mut self.conn).prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, ::sqlx::Error>>
    where
        't: 'e,
    {
        (&mut self.conn).describe(sql)
    }
}

impl<C: PgDriver> Cluster<C> {
    /// Begins a transaction on the primary (waiting for one as writes do). Run its statements
    /// with `&mut tx` as the executor; [`Transaction::commit`] ends it, dropping it rolls back.
    pub async fn begin(&self) -> Result<Transaction<C>, ::sqlx::Error> {
        let conn = self.write().await.map_err(lift)?;
        Transaction::begin(conn, "BEGIN").await
    }

    /// Begins a `READ ONLY` transaction on a replica (or on the primary when reads fall back
    /// to it): a consistent snapshot for several reads.
    pub async fn begin_read_only(&self) -> Result<Transaction<C>, ::sqlx::Error> {
        let conn = self.read().await.map_err(lift)?;
        Transaction::begin(conn, "BEGIN READ ONLY").await
    }
}
