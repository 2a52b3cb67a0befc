//! [`PgConnector`]: sqlx's `PgConnection` behind seawall's [`Connector`] trait.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use ::sqlx::postgres::{PgConnectOptions, PgConnection};
use ::sqlx::{ConnectOptions, Connection};
use async_trait::async_trait;

use crate::breaker::Outcome;
use crate::driver::{Cancel, Connector, NodeStatus};
use crate::session::SessionState;

/// Opens sqlx PostgreSQL connections for a seawall [`Pool`](crate::Pool), and cleans each
/// session before the next borrower gets it.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use seawall::sqlx::PgConnector;
/// use seawall::Pool;
///
/// let connector = PgConnector::from_url("postgres://app:secret@10.0.0.5:5432/shop")?;
/// let pool = Pool::builder(connector).name("primary").max_size(16).build()?;
///
/// let mut conn = pool.get().await?;
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
///     .fetch_one(&mut *conn)                      // `&mut PgConnection` is an executor
///     .await?;
/// # let _ = n; Ok(()) }
/// ```
///
/// # Checks and resets
///
/// * [`Connector::ping`] is sqlx's `Connection::ping`: an empty Sync message and its answer,
///   the cheapest round trip the protocol has.
/// * [`Connector::has_broken`] always says no: sqlx keeps no public "closed" flag on a
///   `PgConnection` (its stream state and transaction status are crate-private). A dead
///   connection is found instead by the session reset on return (a round trip, see below), by
///   the pool's ping after idle, or by the borrower's next query.
/// * With [`SessionReset::Always`] (the default) every returned connection gets
///   [`reset_session`](super::reset_session): one round trip that leaves no session state to
///   the next borrower and keeps sqlx's prepared statements.
#[derive(Clone)]
pub struct PgConnector {
    options: PgConnectOptions,
    reset: SessionReset,
    cancel: bool,
    password: Option<PasswordProvider>,
    /// The password the last connect used (for the cancel connection).
    last_password: Arc<parking_lot::Mutex<Option<String>>>,
}

/// Gives the password for each new connection.
type PasswordProvider = Arc<
    dyn Fn() -> futures_core::future::BoxFuture<'static, Result<String, ::sqlx::error::BoxDynError>>
        + Send
        + Sync,
>;

/// When [`PgConnector`] resets a session returned to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionReset {
    /// On every return: one extra round trip per checkout, and a clean session guaranteed.
    ///
    /// The driver cannot tell cheaply whether a session is dirty: sqlx's transaction depth
    /// counts only transactions begun through sqlx (not a `BEGIN` sent as a query), and
    /// `SET`, temporary tables, advisory locks or `LISTEN` leave no trace on the client side.
    ///
    /// The cost: the reset is one round trip of ten short statements, about two to three times
    /// the time of a prepared `SELECT 1` on a local server (see the `reset` bench:
    /// `cargo bench --features sqlx,testbed --bench reset`). It runs in a background task
    /// after the borrower has let go, so it delays the next checkout of *that* connection only; a pool with spare connections hides it, a pool
    /// of one connection cycled back to back does not. The round trip doubles as a liveness
    /// check: a connection that died while borrowed fails its reset and is discarded instead
    /// of being handed out.
    ///
    /// Behind a PgBouncer in transaction pooling mode use [`SessionReset::Never`]: session
    /// state does not outlive a transaction there anyway, and `RESET ALL` would put the shared
    /// *server* connection's settings back to the server's defaults behind PgBouncer's back
    /// (seen in the PgBouncer test: `TimeZone` went from `UTC` to `Etc/UTC`).
    #[default]
    Always,
    /// Never: for applications that never change session state. A transaction begun with
    /// sqlx's `begin()` and dropped unfinished is still rolled back (sqlx queues the rollback
    /// before the connection's next use), but any other state leaks to the next borrower.
    Never,
}

impl PgConnector {
    /// A connector for `options`.
    pub fn new(options: PgConnectOptions) -> Self {
        PgConnector {
            options,
            reset: SessionReset::default(),
            cancel: true,
            password: None,
            last_password: Arc::default(),
        }
    }

    /// A connector for a `postgres://user:password@host:port/database?...` URL. The error
    /// never repeats the URL, which may hold a password.
    pub fn from_url(url: &str) -> Result<Self, InvalidUrl> {
        match PgConnectOptions::from_str(url) {
            Ok(options) => Ok(PgConnector::new(options)),
            Err(e) => Err(InvalidUrl {
                reason: redact(&e.to_string(), url),
            }),
        }
    }

    /// Sets when returned sessions are reset (default [`SessionReset::Always`]).
    pub fn session_reset(mut self, reset: SessionReset) -> Self {
        self.reset = reset;
        self
    }

    /// Whether a statement given up mid-way (deadline, dropped future, `mark_failed`) is
    /// stopped on the server before its connection is closed. Default `true`: each new
    /// connection asks its backend's pid and start time (one round trip per connect), and an
    /// abandoned one is ended with `pg_terminate_backend` from a short-lived connection, which
    /// rolls back its transaction (an insert waiting on a lock is not committed later behind
    /// the caller's back) and frees its locks.
    ///
    /// Turn it off behind a PgBouncer in transaction or statement pooling mode: the backend a
    /// client connection reaches there changes from one transaction to the next, so the pid is
    /// not this client's to end.
    pub fn cancel_abandoned(mut self, cancel: bool) -> Self {
        self.cancel = cancel;
        self
    }

    /// Asks `provider` for the password of every new connection (and of nothing else): for
    /// passwords that rotate and for cloud IAM tokens that expire (RDS, Cloud SQL, Azure), so a
    /// rotation never needs a restart. It overrides the URL's password. A provider that fails
    /// fails that connect (`sqlx::Error::Configuration` with its error), which the pool counts
    /// and retries like any failed connect.
    ///
    /// ```
    /// # #[cfg(feature = "sqlx")] {
    /// use seawall::sqlx::PgConnector;
    ///
    /// let connector = PgConnector::from_url("postgres://app@db-1/shop")
    ///     .unwrap()
    ///     .password_provider(|| async {
    ///         // e.g. read a file a secrets agent rotates, or ask the cloud for a token
    ///         Ok(std::fs::read_to_string("/run/secrets/db-password")?.trim().to_owned())
    ///     });
    /// # let _ = connector; }
    /// ```
    pub fn password_provider<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, ::sqlx::error::BoxDynError>>
            + Send
            + 'static,
    {
        self.password = Some(Arc::new(move || Box::pin(provider())));
        self
    }

    /// Its password provider, if any (a wrapped pool asks it too).
    pub(super) fn provider(&self) -> Option<&PasswordProvider> {
        self.password.as_ref()
    }

    /// Remembers the password a connect made elsewhere used (a wrapped pool's), for the cancel
    /// connection.
    pub(super) fn remember_password(&self, password: String) {
        *self.last_password.lock() = Some(password);
    }

    /// The connect options (hold the password: print them with care, their `Debug` shows it).
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// The options of a new connection: with the provider's password when there is one.
    async fn options_now(&self) -> Result<std::borrow::Cow<'_, PgConnectOptions>, ::sqlx::Error> {
        let Some(provider) = &self.password else {
            return Ok(std::borrow::Cow::Borrowed(&self.options));
        };
        let password = provider().await.map_err(::sqlx::Error::Configuration)?;
        let options = self.options.clone().password(&password);
        *self.last_password.lock() = Some(password);
        Ok(std::borrow::Cow::Owned(options))
    }
}

impl fmt::Debug for PgConnector {
    /// Where it connects, never with what password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let mut d = f.debug_struct("PgConnector");
        match o.get_socket() {
            Some(socket) => d.field("socket", socket),
            None => d.field("host", &o.get_host()).field("port", &o.get_port()),
        };
        d.field("username", &o.get_username())
            .field("database", &o.get_database())
            .field("session_reset", &self.reset)
            .field("cancel_abandoned", &self.cancel)
            .field("password_provider", &self.password.is_some())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Connector for PgConnector {
    type Connection = PgConnection;
    type Error = ::sqlx::Error;

    async fn connect(&self) -> Result<PgConnection, ::sqlx::Error> {
        self.options_now().await?.connect().await
    }

    async fn ping(&self, conn: &mut PgConnection) -> Result<(), ::sqlx::Error> {
        conn.ping().await
    }

    fn needs_reset(&self, _conn: &PgConnection) -> bool {
        self.reset == SessionReset::Always
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), ::sqlx::Error> {
        super::reset_session(conn).await
    }

    /// [`reset_tracked`](super::reset_tracked): only what the borrower left. With
    /// [`SessionReset::Never`] only an open transaction is rolled back.
    async fn reset_session(
        &self,
        conn: &mut PgConnection,
        state: SessionState,
    ) -> Result<(), ::sqlx::Error> {
        let state = match self.reset {
            SessionReset::Always => state,
            SessionReset::Never if state.contains(SessionState::TRANSACTION) => {
                SessionState::TRANSACTION
            }
            SessionReset::Never => return Ok(()),
        };
        super::reset_tracked(conn, state).await
    }

    /// Transport, I/O and protocol errors, and server errors of the classes that mean the
    /// server is in trouble (08 connection exception, 53 insufficient resources, 57 operator
    /// intervention such as a shutdown, 58 system error, XX internal error) and 25006
    /// (read-only transaction: a write reached a server that is no longer primary) count
    /// against the node. Everything else the server reports (syntax, constraints, data,
    /// serialization conflicts) and decoding errors are the caller's.
    fn classify_error(&self, error: &::sqlx::Error) -> Outcome {
        use ::sqlx::Error as E;
        match error {
            E::Database(db) => {
                let code = db.code().unwrap_or_default();
                let node_trouble = ["08", "53", "57", "58", "XX"]
                    .iter()
                    .any(|class| code.starts_with(class))
                    || code == "25006";
                if node_trouble {
                    Outcome::Failure
                } else {
                    Outcome::Ignored
                }
            }
            E::RowNotFound
            | E::TypeNotFound { .. }
            | E::ColumnIndexOutOfBounds { .. }
            | E::ColumnNotFound(_)
            | E::ColumnDecode { .. }
            | E::Decode(_)
            | E::Encode(_)
            | E::Configuration(_) => Outcome::Ignored,
            _ => Outcome::Failure,
        }
    }

    /// SQLSTATE 25006 (`read_only_sql_transaction`): the server is in recovery or the
    /// transaction is read-only, and the statement did nothing.
    fn is_read_only_error(&self, error: &::sqlx::Error) -> bool {
        matches!(error, ::sqlx::Error::Database(db) if db.code().as_deref() == Some("25006"))
    }

    /// SQLSTATE class 57P0x: `admin_shutdown` (57P01, a fast shutdown, a switchover,
    /// `pg_terminate_backend`), `crash_shutdown` (57P02), `cannot_connect_now` (57P03).
    fn is_session_ended_error(&self, error: &::sqlx::Error) -> bool {
        matches!(error, ::sqlx::Error::Database(db)
            if matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03")))
    }

    /// The backend's pid and start time (see [`PgConnector::cancel_abandoned`]); `None` when
    /// cancelling is off or the query fails.
    async fn cancel_handle(&self, conn: &mut PgConnection) -> Option<Arc<dyn Cancel>> {
        if !self.cancel {
            return None;
        }
        let (pid, started): (i32, String) = ::sqlx::query_as(
            "SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        )
        .fetch_one(conn)
        .await
        .ok()?;
        let mut options = self.options.clone().application_name("seawall-cancel");
        if let Some(password) = self.last_password.lock().as_deref() {
            options = options.password(password);
        }
        Some(Arc::new(PgCancel {
            // Named so that operators (and session counts) tell it from the pool's sessions.
            options,
            pid,
            started,
        }))
    }

    /// One round trip ([`probe::status`](super::probe::status)). The lag is zero when the
    /// replica has replayed everything it received, else the age of the last replayed
    /// transaction (which also grows while the primary is idle, so an idle primary's replicas
    /// never look lagged while caught up).
    async fn probe(&self, conn: &mut PgConnection) -> Result<Option<NodeStatus>, ::sqlx::Error> {
        let status = match super::probe::status(conn).await {
            Ok(status) => status,
            Err(super::probe::ProbeError::Sql(e)) => return Err(e),
            // A replica that has replayed nothing yet: known role, unknown position.
            Err(_) => {
                let role = super::probe::role(conn).await.map_err(|e| match e {
                    super::probe::ProbeError::Sql(e) => e,
                    other => ::sqlx::Error::Protocol(other.to_string()),
                })?;
                return Ok(Some(NodeStatus::new(
                    role == super::Role::Primary,
                    None,
                    None,
                )));
            }
        };
        let is_primary = status.role == super::Role::Primary;
        let lag = if is_primary || status.replay_backlog() == Some(0) {
            Some(std::time::Duration::ZERO)
        } else {
            status.replay_age
        };
        Ok(Some(
            NodeStatus::new(is_primary, Some(status.position.into()), lag)
                .with_timeline(status.timeline),
        ))
    }
}

/// A connection URL that does not parse. Its message never contains the URL's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidUrl {
    reason: String,
}

impl InvalidUrl {
    pub(crate) fn new(reason: String) -> Self {
        InvalidUrl { reason }
    }
}

impl fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid PostgreSQL connection URL: {}", self.reason)
    }
}

impl std::error::Error for InvalidUrl {}

/// Removes the URL's password (if one can be found) from `message`. sqlx's URL errors do not
/// quote it today; this keeps it that way whatever a future version says.
pub(crate) fn redact(message: &str, url: &str) -> String {
    let Some(password) = password_of(url) else {
        return message.to_owned();
    };
    message.replace(password, "***")
}

/// The text between `user:` and the last `@` of the authority, in a `scheme://...` URL.
fn password_of(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let password = &userinfo[userinfo.find(':')? + 1..];
    (!password.is_empty()).then_some(password)
}

/// Ends one backend from another connection: `pg_terminate_backend`, matched on pid and start
/// time so that a pid reused by a newer backend is never hit.
struct PgCancel {
    options: PgConnectOptions,
    pid: i32,
    started: String,
}

#[async_trait]
impl Cancel for PgCancel {
    async fn cancel(&self) -> Result<(), crate::DriverError> {
        let mut conn = self
            .options
            .connect()
            .await
            .map_err(crate::DriverError::new)?;
        let ended = ::sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid = $1 AND backend_start::text = $2",
        )
        .bind(self.pid)
        .bind(&self.started)
        .execute(&mut conn)
        .await
        .map(|_| ())
        .map_err(crate::DriverError::new);
        let _ = conn.close().await;
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let c = PgConnector::from_url("postgres://app:s3cr%21t@db.example:6543/shop").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(
            shown.contains("db.example") && shown.contains("6543"),
            "{shown}"
        );
        assert!(shown.contains("app") && shown.contains("shop"), "{shown}");
        // sqlx's own Debug does show it: the reason for the hand-written one.
        assert!(format!("{:?}", c.options()).contains("s3cr!t"));
    }

    #[test]
    fn bad_url_error_does_not_repeat_the_password() {
        for url in [
            "postgres://app:hunter2@db:notaport/shop",
            "postgres://app:hunter2@db:5432/shop?sslmode=hunter2",
            "postgres://app:hunter2@[::1/shop",
        ] {
            let e = PgConnector::from_url(url).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.starts_with("invalid PostgreSQL connection URL"),
                "{shown}"
            );
        }
    }

    #[test]
    fn finds_the_password_to_redact() {
        assert_eq!(password_of("postgres://u:p@h/d"), Some("p"));
        assert_eq!(password_of("postgres://u:p@ss@h:1/d?x=@"), Some("p@ss"));
        assert_eq!(password_of("postgres://u@h/d"), None);
        assert_eq!(password_of("postgres://h/d"), None);
        assert_eq!(password_of("not a url"), None);
        assert_eq!(
            redact("bad value p@ss", "postgres://u:p@ss@h"),
            "bad value ***"
        );
    }

    #[test]
    fn reset_policy() {
        let c = PgConnector::new(PgConnectOptions::new_without_pgpass());
        assert_eq!(c.reset, SessionReset::Always);
        let c = c.session_reset(SessionReset::Never);
        assert!(format!("{c:?}").contains("Never"));
    }
}
