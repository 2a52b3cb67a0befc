//! sqlx integration (feature `sqlx`): PostgreSQL connections from sqlx in seawall pools,
//! session reset, and replication probes.
//!
//! * [`PgConnector`] implements [`Connector`](crate::Connector) for `sqlx::PgConnection`; a
//!   [`Pooled`](crate::Pooled) connection derefs to it, so `&mut *conn` is a sqlx executor.
//! * [`reset_session`] cleans a session for its next borrower without dropping sqlx's
//!   prepared statements; [`reset_tracked`] undoes only the [session state](crate::session)
//!   a borrower is known to have left.
//! * [`probe`] asks a server its role and WAL position; [`WalPosition`] is the comparable
//!   token for read-your-writes; [`current_position`] takes it on the primary after a write.
//! * [`PgPoolConnector`] and [`cluster_from_pools`] put seawall in front of existing
//!   `sqlx::PgPool`s ([`wrap`]).
//! * [`connect`] builds a cluster from one libpq-style multi-host URL
//!   (`postgres://u:p@h1:5432,h2:5433/db`), which sqlx alone cannot parse ([`MultiHostUrl`]).
//!
//! (Inside seawall this module is `crate::sqlx`; the sqlx crate itself is `::sqlx`.)

mod catalog;
mod connector;
mod executor;
mod options;
mod position;
pub mod probe;
mod promote;
mod url;
mod wal;
pub mod wrap;

pub use connector::{InvalidUrl, PgConnector, SessionReset};
pub use executor::{cause, PgDriver, Transaction};
pub use options::ClusterOptions;
pub use probe::{NodeStatus, ProbeError, Role};
pub use promote::PgPromoter;
pub use url::{connect, MultiHostUrl};
pub use wal::{ParseWalPositionError, WalPosition, WalToken};

pub use position::{current_position, current_token};
pub use wrap::{cluster_from_pools, pool_builder, PgPoolConnection, PgPoolConnector};

use ::sqlx::postgres::PgConnection;
use ::sqlx::Executor;

/// The reset, as one simple-protocol query (one round trip). It is `DISCARD ALL` without
/// `DEALLOCATE ALL` (and without `DISCARD PLANS`, see [`reset_session`]):
///
/// * `SET client_min_messages TO error` first: `ROLLBACK` outside a transaction is harmless
///   but sends a WARNING, which sqlx would log on every return. The setting is undone by the
///   `ROLLBACK` (or by `RESET ALL`).
/// * `ROLLBACK` ends an open transaction (an explicit one, or the implicit block of this query).
/// * `CLOSE ALL` closes cursors declared `WITH HOLD`, which outlive transactions.
/// * `SET SESSION AUTHORIZATION DEFAULT; RESET ROLE` undo `SET SESSION AUTHORIZATION` and
///   `SET ROLE`, which `RESET ALL` leaves alone.
/// * `RESET ALL` restores every other setting to the session's defaults (including those the
///   client sent at connect time, which are the session defaults).
/// * `UNLISTEN *`, `pg_advisory_unlock_all()`, `DISCARD TEMP`, `DISCARD SEQUENCES`: channels,
///   session advisory locks, temporary tables, `currval` state.
const RESET_SQL: &str = "SET client_min_messages TO error; ROLLBACK; CLOSE ALL; \
     SET SESSION AUTHORIZATION DEFAULT; RESET ROLE; RESET ALL; UNLISTEN *; \
     SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// SQLSTATE of "current transaction is aborted, commands ignored until end of transaction block".
const IN_FAILED_TRANSACTION: &str = "25P02";

/// Leaves no session state to the next user of `conn`: open or failed transaction, settings,
/// role, held cursors, temporary tables, advisory locks, `LISTEN` channels, sequence state.
///
/// Usually one round trip. A session inside a *failed* transaction refuses everything but
/// `ROLLBACK`, so then it takes two more (`ROLLBACK`, then the reset again).
///
/// # Why not `DISCARD ALL`
///
/// `DISCARD ALL` also runs `DEALLOCATE ALL`, which drops the server-side prepared statements
/// that sqlx caches per connection: sqlx would not know, and its next use of a cached statement
/// would fail with "prepared statement does not exist". This reset keeps them, so queries
/// stay prepared across borrowers. It also skips `DISCARD PLANS`: cached plans hold no session
/// state (they are re-planned when the objects or the `search_path` they depend on change).
///
/// What it cannot undo: statements prepared by hand with SQL `PREPARE` (they look the same to
/// the server as sqlx's), and state outside the session (committed data, `ALTER SYSTEM`).
pub async fn reset_session(conn: &mut PgConnection) -> Result<(), ::sqlx::Error> {
    match conn.execute(::sqlx::raw_sql(RESET_SQL)).await {
        Ok(_) => Ok(()),
        Err(e) if sqlstate(&e).as_deref() == Some(IN_FAILED_TRANSACTION) => {
            conn.execute(::sqlx::raw_sql("ROLLBACK")).await?;
            conn.execute(::sqlx::raw_sql(RESET_SQL)).await.map(drop)
        }
        Err(e) => Err(e),
    }
}

/// Undoes only `state` (see [`crate::session`]), in one round trip: `ROLLBACK` first when a
/// transaction may be open (it also ends a failed one), then only the resets `state` names.
/// Nothing to undo, nothing sent. [`SessionState::UNKNOWN`](crate::SessionState::UNKNOWN) gets
/// the full [`reset_session`]; [`SessionState::UNRESETTABLE`](crate::SessionState::UNRESETTABLE) is refused (the pool closes such a connection instead).
pub async fn reset_tracked(
    conn: &mut PgConnection,
    state: crate::SessionState,
) -> Result<(), ::sqlx::Error> {
    use crate::SessionState as S;
    if state.contains(S::UNKNOWN) {
        return reset_session(conn).await;
    }
    if state.contains(S::UNRESETTABLE) {
        return Err(::sqlx::Error::Protocol(
            "the session holds state that cannot be reset in place; close the connection".into(),
        ));
    }
    let sql = tracked_reset_sql(state);
    if sql.is_empty() {
        return Ok(());
    }
    conn.execute(::sqlx::raw_sql(::sqlx::AssertSqlSafe(sql)))
        .await
        .map(drop)
}

/// The statements that undo `state` (empty when clean).
fn tracked_reset_sql(state: crate::SessionState) -> String {
    use crate::SessionState as S;
    let parts: [(S, &str); 7] = [
        (S::TRANSACTION, "ROLLBACK"),
        (S::CURSORS, "CLOSE ALL"),
        (S::ROLE, "SET SESSION AUTHORIZATION DEFAULT; RESET ROLE"),
        (S::SETTINGS, "RESET ALL"),
        (S::LISTEN, "UNLISTEN *"),
        (S::ADVISORY_LOCKS, "SELECT pg_advisory_unlock_all()"),
        (S::TEMP_TABLES, "DISCARD TEMP"),
    ];
    let mut sql = String::new();
    for (kind, statement) in parts {
        if state.contains(kind) {
            if !sql.is_empty() {
                sql.push_str("; ");
            }
            sql.push_str(statement);
        }
    }
    sql
}

fn sqlstate(e: &::sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::tracked_reset_sql;
    use crate::SessionState as S;

    #[test]
    fn tracked_resets_send_only_what_is_needed() {
        assert_eq!(tracked_reset_sql(S::CLEAN), "");
        assert_eq!(tracked_reset_sql(S::TRANSACTION), "ROLLBACK");
        assert_eq!(
            tracked_reset_sql(S::LISTEN | S::TRANSACTION | S::SETTINGS),
            "ROLLBACK; RESET ALL; UNLISTEN *"
        );
    }
}
