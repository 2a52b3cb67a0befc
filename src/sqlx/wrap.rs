//! Wrapping an application's existing `sqlx::PgPool`s: seawall routing on top of the pools an
//! application already has.
//!
//! # Two pools, one active layer
//!
//! [`PgPoolConnector`] makes a `PgPool` the *connector* of a seawall [`Pool`]: seawall's
//! "connect" is an acquire from the sqlx pool, and seawall keeps the `PoolConnection` it got
//! until its own policies retire it. So:
//!
//! * **seawall's pool is the active layer.** Every checkout, fairness, timeout, session reset,
//!   ping-after-idle, admission and routing decision is seawall's. A connection checked out
//!   and returned never goes back to the sqlx pool in between, so sqlx's per-acquire work
//!   (the `test_before_acquire` ping, the ping on every release) is not paid per query.
//! * **sqlx's pool keeps the connections' lifecycle.** It opens them (with its own connect
//!   options, `after_connect` hooks and timeouts), enforces `max_connections`, and checks a
//!   connection when seawall gives it back: seawall hands it back (drops it) when its
//!   lifetime or idle timeout runs out or the pool shrinks, and sqlx then health-checks and
//!   keeps it, or closes it past *its* `max_lifetime`. A connection whose ping or reset
//!   failed is marked to be closed instead of returned, so sqlx never hands it out again.
//!
//! The seawall pool is sized from the sqlx pool's `max_connections`: seawall may hold all of
//! them. Code that still acquires from the `PgPool` directly then waits for seawall to give
//! some back; route everything through seawall, or build the seawall pool smaller with
//! [`pool_builder`] and [`Builder::max_size`](crate::pool::Builder::max_size). A cluster's health
//! monitor keeps one probe connection per node of its own, opened directly with the sqlx pool's
//! connect options and outside its `max_connections` ([`Connector::connect_probe`]): a probe
//! never waits for a pool that seawall keeps busy, and a busy node is not taken for a dead one.
//!
//! Classification of errors, probes and session resets are exactly [`PgConnector`]'s.
//!
//! Like every `PoolConnection`, the ones seawall holds go back to sqlx through a spawned task
//! when dropped: drop the last handle of a wrapping pool or cluster inside a Tokio runtime
//! (sqlx panics otherwise).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sqlx::postgres::PgPoolOptions;
//!
//! let primary = PgPoolOptions::new().max_connections(16).connect_lazy("postgres://app@db-1/shop")?;
//! let replica = PgPoolOptions::new().max_connections(16).connect_lazy("postgres://app@db-2/shop")?;
//! let cluster = seawall::sqlx::cluster_from_pools(primary, [("db-2", replica)])?.build()?;
//!
//! let mut conn = cluster.route("SELECT count(*) FROM orders").await?;
//! // `conn` derefs to a `PgPoolConnection`, which derefs to the `PgConnection`: `&mut **conn`.
//! let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
//!     .fetch_one(&mut **conn)
//!     .await?;
//! # let _ = n; Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use ::sqlx::pool::PoolConnection;
use ::sqlx::postgres::{PgConnection, PgPool, Postgres};
use ::sqlx::Connection;
use async_trait::async_trait;

use crate::breaker::Outcome;
use crate::cluster::ClusterBuilder;
use crate::driver::{Cancel, Connector, NodeStatus};
use crate::error::ConfigError;
use crate::pool::{Builder, Pool};
use crate::session::SessionState;
use crate::Cluster;

use super::{PgConnector, SessionReset};

/// A [`Connector`] over an existing `sqlx::PgPool`: each seawall connection is a
/// `PoolConnection` acquired from it. See the [module docs](self) for who does what.
#[derive(Clone)]
pub struct PgPoolConnector {
    pool: PgPool,
    // The same policies as a direct connection: error classes, probe, reset.
    direct: PgConnector,
}

impl PgPoolConnector {
    /// Wraps `pool`; sessions are reset on every return ([`SessionReset::Always`]).
    pub fn new(pool: PgPool) -> Self {
        let direct = PgConnector::new((*pool.connect_options()).clone());
        PgPoolConnector { pool, direct }
    }

    /// Asks `provider` for the password before every seawall connect (an acquire from the
    /// wrapped pool) and every probe connect, and sets it on the wrapped pool's connect options
    /// (`PgPool::set_connect_options`), so the connections sqlx opens from then on use it: a
    /// rotated password or an expiring cloud IAM token never needs a restart, as with
    /// [`PgConnector::password_provider`]. An acquire the sqlx pool serves from its idle
    /// connections asks too (seawall connects are rare: it keeps what it gets). A provider that
    /// fails fails that connect, which the pool counts and retries like any failed connect.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use seawall::pool::Pool;
    /// use seawall::sqlx::PgPoolConnector;
    /// use sqlx::postgres::PgPoolOptions;
    ///
    /// let pg = PgPoolOptions::new().max_connections(16).connect_lazy("postgres://app@db-1/shop")?;
    /// let connector = PgPoolConnector::new(pg).password_provider(|| async {
    ///     Ok(std::fs::read_to_string("/run/secrets/db-password")?.trim().to_owned())
    /// });
    /// let pool = Pool::builder(connector).name("primary").max_size(16).build()?;
    /// # let _ = pool; Ok(()) }
    /// ```
    pub fn password_provider<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, ::sqlx::error::BoxDynError>>
            + Send
            + 'static,
    {
        // Kept by the direct connector, which uses it for cancel connections too.
        self.direct = self.direct.password_provider(provider);
        self
    }

    /// With a provider: its password on the wrapped pool's connect options (and for cancels).
    async fn refresh_password(&self) -> Result<(), ::sqlx::Error> {
        let Some(provider) = self.direct.provider() else {
            return Ok(());
        };
        let password = provider().await.map_err(::sqlx::Error::Configuration)?;
        let options = (*self.pool.connect_options()).clone().password(&password);
        self.pool.set_connect_options(options);
        self.direct.remember_password(password);
        Ok(())
    }

    /// Sets when returned sessions are reset (default [`SessionReset::Always`]).
    pub fn session_reset(mut self, reset: SessionReset) -> Self {
        self.direct = self.direct.session_reset(reset);
        self
    }

    /// Whether abandoned statements are ended on the server (default `true`; see
    /// [`PgConnector::cancel_abandoned`]).
    pub fn cancel_abandoned(mut self, cancel: bool) -> Self {
        self.direct = self.direct.cancel_abandoned(cancel);
        self
    }

    /// The wrapped sqlx pool.
    pub fn pg_pool(&self) -> &PgPool {
        &self.pool
    }

    /// The wrapped pool's `max_connections` (at least 1): the size of a seawall pool over it.
    pub fn max_connections(&self) -> usize {
        (self.pool.options().get_max_connections() as usize).max(1)
    }
}

impl fmt::Debug for PgPoolConnector {
    /// Where the wrapped pool connects (never with what password) and its size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgPoolConnector")
            .field("max_connections", &self.max_connections())
            .field("connects_like", &self.direct)
            .finish()
    }
}

/// A connection of a wrapped pool: a `PoolConnection` lent by the sqlx pool, or the health
/// monitor's own connection, opened outside the sqlx pool so that a probe never waits for a
/// pool that seawall itself keeps busy. Derefs to the `PgConnection` either way, so
/// `&mut **conn` on a cluster handle reaches sqlx's executor as before.
pub struct PgPoolConnection(Lent);

enum Lent {
    Pooled(PoolConnection<Postgres>),
    Own(PgConnection),
}

impl PgPoolConnection {
    /// Whether it was lent by the sqlx pool (every connection a seawall pool hands out is).
    pub fn is_pooled(&self) -> bool {
        matches!(self.0, Lent::Pooled(_))
    }

    /// Never give it back to the sqlx pool: it is closed when dropped.
    pub(super) fn close_on_drop(&mut self) {
        if let Lent::Pooled(conn) = &mut self.0 {
            conn.close_on_drop();
        }
    }
}

impl std::ops::Deref for PgPoolConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match &self.0 {
            Lent::Pooled(conn) => conn,
            Lent::Own(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for PgPoolConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.0 {
            Lent::Pooled(conn) => conn,
            Lent::Own(conn) => conn,
        }
    }
}

impl fmt::Debug for PgPoolConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgPoolConnection")
            .field("pooled", &self.is_pooled())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Connector for PgPoolConnector {
    type Connection = PgPoolConnection;
    type Error = ::sqlx::Error;

    /// Acquires from the wrapped pool (within its own `acquire_timeout`).
    async fn connect(&self) -> Result<PgPoolConnection, ::sqlx::Error> {
        self.refresh_password().await?;
        Ok(PgPoolConnection(Lent::Pooled(self.pool.acquire().await?)))
    }

    /// Connects directly with the wrapped pool's connect options, outside its
    /// `max_connections`: the probe must not wait for the pool it judges.
    async fn connect_probe(&self) -> Result<PgPoolConnection, ::sqlx::Error> {
        self.refresh_password().await?;
        let options = self.pool.connect_options();
        Ok(PgPoolConnection(Lent::Own(
            PgConnection::connect_with(&options).await?,
        )))
    }

    async fn ping(&self, conn: &mut PgPoolConnection) -> Result<(), ::sqlx::Error> {
        let pinged = conn.ping().await;
        if pinged.is_err() {
            // seawall discards it: it must not go back to the sqlx pool.
            conn.close_on_drop();
        }
        pinged
    }

    fn needs_reset(&self, conn: &PgPoolConnection) -> bool {
        self.direct.needs_reset(conn)
    }

    async fn reset(&self, conn: &mut PgPoolConnection) -> Result<(), ::sqlx::Error> {
        let reset = self.direct.reset(conn).await;
        if reset.is_err() {
            conn.close_on_drop();
        }
        reset
    }

    async fn reset_session(
        &self,
        conn: &mut PgPoolConnection,
        state: SessionState,
    ) -> Result<(), ::sqlx::Error> {
        let reset = self.direct.reset_session(conn, state).await;
        if reset.is_err() {
            conn.close_on_drop();
        }
        reset
    }

    /// As [`PgConnector`]: the backend's pid, ended from a connection of its own.
    async fn cancel_handle(&self, conn: &mut PgPoolConnection) -> Option<Arc<dyn Cancel>> {
        self.direct.cancel_handle(conn).await
    }

    /// As [`PgConnector`]: by SQLSTATE class.
    fn classify_error(&self, error: &::sqlx::Error) -> Outcome {
        self.direct.classify_error(error)
    }

    fn is_read_only_error(&self, error: &::sqlx::Error) -> bool {
        self.direct.is_read_only_error(error)
    }

    fn is_session_ended_error(&self, error: &::sqlx::Error) -> bool {
        self.direct.is_session_ended_error(error)
    }

    /// As [`PgConnector`]: role, replayed position and lag in one round trip.
    async fn probe(
        &self,
        conn: &mut PgPoolConnection,
    ) -> Result<Option<NodeStatus>, ::sqlx::Error> {
        self.direct.probe(conn).await
    }
}

/// A seawall pool builder over `pool`, named `name` and sized to the pool's `max_connections`;
/// adjust other settings before `build`.
pub fn pool_builder(name: impl Into<Arc<str>>, pool: PgPool) -> Builder<PgPoolConnector> {
    let connector = PgPoolConnector::new(pool);
    let size = connector.max_connections();
    Pool::builder(connector).name(name).max_size(size)
}

/// A cluster builder over existing sqlx pools: `primary` (named `"primary"`) and named
/// replicas, each wrapped in a seawall pool of its `max_connections` (see the
/// [module docs](self)). Set the routing policies on the builder, then `build`.
///
/// Fails only for an empty replica name (the cluster's `build` refuses duplicates).
pub fn cluster_from_pools<N: Into<Arc<str>>>(
    primary: PgPool,
    replicas: impl IntoIterator<Item = (N, PgPool)>,
) -> Result<ClusterBuilder<PgPoolConnector>, ConfigError> {
    let mut builder =
        Cluster::builder().primary("primary", pool_builder("primary", primary).build()?);
    for (name, pool) in replicas {
        let name = name.into();
        builder = builder.replica(name.clone(), pool_builder(name, pool).build()?);
    }
    Ok(builder)
}
