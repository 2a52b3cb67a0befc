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
use super::WalPosition;

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
