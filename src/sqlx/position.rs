//! Read-your-writes tokens: the primary's WAL position right after a write.
//!
//! A replica that has replayed up to the position the primary reached after a commit has
//! applied that commit. So: write on the primary, take [`current_position`] on the same
//! connection, and ask the cluster for a read from a node that has replayed that far with
//! [`AcquireOptions::min_position`](crate::cluster::AcquireOptions::min_position). Replicas
//! that are behind (as their last probe saw them) are skipped; when none has caught up, the
//! read goes to the primary (within its read budget).

use ::sqlx::postgres::PgConnection;
use ::sqlx::Row;

use super::probe::ProbeError;
use super::{WalPosition, WalToken};

/// The primary's current WAL position (`pg_current_wal_lsn()`): the token a read-your-writes
/// read waits for. Take it on the connection that wrote, after the commit.
///
/// It is sent as a simple-protocol query (no prepared statement), so it also works through a
/// transaction-mode PgBouncer of any version. On a replica it fails: the server refuses
/// `pg_current_wal_lsn()` during recovery (SQLSTATE 55000).
///
/// ```no_run
/// # async fn demo(cluster: seawall::Cluster<seawall::sqlx::PgConnector>) -> Result<(), Box<dyn std::error::Error>> {
/// use seawall::cluster::AcquireOptions;
/// use seawall::sqlx::current_position;
///
/// let mut conn = cluster.write().await?;
/// sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
///     .bind("Ada")
///     .bind(7_i64)
///     .execute(&mut *conn)
///     .await?;
/// let written = current_position(&mut conn).await?;
/// drop(conn);
///
/// // A replica that has replayed the update, or else the primary.
/// let mut conn = cluster.read_with(AcquireOptions::new().min_position(written)).await?;
/// let name: String = sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
///     .bind(7_i64)
///     .fetch_one(&mut *conn)
///     .await?;
/// # let _ = name; Ok(()) }
/// ```
pub async fn current_position(conn: &mut PgConnection) -> Result<WalPosition, ProbeError> {
    let row = ::sqlx::raw_sql("SELECT pg_current_wal_lsn()::text")
        .fetch_one(conn)
        .await?;
    let lsn: String = row.try_get(0)?;
    lsn.parse().map_err(ProbeError::Position)
}

/// The primary's current WAL position and timeline: the read-your-writes token that survives a
/// failover ([`WalToken`]; give it to
/// [`AcquireOptions::after`](crate::cluster::AcquireOptions::after)). Take it on the
/// connection that wrote, after the commit. One simple-protocol round trip, like
/// [`current_position`]; on a replica it fails (SQLSTATE 55000).
///
/// ```no_run
/// # async fn demo(cluster: seawall::Cluster<seawall::sqlx::PgConnector>) -> Result<(), Box<dyn std::error::Error>> {
/// use seawall::cluster::AcquireOptions;
/// use seawall::sqlx::{current_token, WalToken};
///
/// let mut conn = cluster.write().await?;
/// sqlx::query("UPDATE users SET name = 'Ada' WHERE id = 7").execute(&mut *conn).await?;
/// let cookie = current_token(&mut conn).await?.to_string(); // e.g. "2:0/16B3748"
/// drop(conn);
///
/// // The next request, maybe in another instance of the application:
/// let token: WalToken = cookie.parse()?;
/// let mut conn = cluster.read_with(AcquireOptions::new().after(token)).await?;
/// # Ok(()) }
/// ```
pub async fn current_token(conn: &mut PgConnection) -> Result<WalToken, ProbeError> {
    let row = ::sqlx::raw_sql(
        "SELECT pg_current_wal_lsn()::text, \
         ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8",
    )
    .fetch_one(conn)
    .await?;
    let lsn: String = row.try_get(0)?;
    let timeline: i64 = row.try_get(1)?;
    let position = lsn.parse().map_err(ProbeError::Position)?;
    Ok(WalToken::new(u32::try_from(timeline).ok(), position))
}
