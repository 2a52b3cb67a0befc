//! Probes: what a PostgreSQL server is (primary or replica) and how far its WAL has come.
//!
//! A demoted or recovering server still answers `SELECT 1`, so a health check that routes
//! writes must ask the role. And a replica that answers is not necessarily current: its replay
//! position, compared with the primary's, says how far behind it is. Each probe is one round
//! trip (one cached prepared statement).

use std::fmt;
use std::time::Duration;

use ::sqlx::postgres::PgConnection;

use super::wal::{ParseWalPositionError, WalPosition};

/// The role a server plays in replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts writes (`pg_is_in_recovery()` is false).
    Primary,
    /// In recovery: a streaming replica, or a server still replaying after a crash.
    Replica,
}

/// One probe's view of a server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeStatus {
    /// Primary or replica.
    pub role: Role,
    /// How far this server's data goes: `pg_current_wal_lsn()` on a primary (the end of
    /// written WAL), `pg_last_wal_replay_lsn()` on a replica (what queries can see).
    pub position: WalPosition,
    /// A replica's `pg_last_wal_receive_lsn()`: WAL received, not necessarily replayed.
    /// `None` on a primary, or on a replica that has received nothing from a primary yet.
    pub received: Option<WalPosition>,
    /// A replica's `now() - pg_last_xact_replay_timestamp()`: the age of the last transaction
    /// it replayed. An upper bound on its delay: it also grows while the primary commits
    /// nothing. `None` on a primary or before the first replayed transaction.
    pub replay_age: Option<Duration>,
    /// The server's timeline (see [`timeline`]): exact on a primary, a lower bound on a
    /// replica. `None` if the server does not tell.
    pub timeline: Option<u32>,
}

impl NodeStatus {
    /// Bytes received but not yet replayed (a replica busy applying WAL, or paused).
    pub fn replay_backlog(&self) -> Option<u64> {
        self.received.map(|r| r.bytes_since(self.position))
    }

    /// Bytes of WAL this server lacks compared with `primary_position` (taken from the
    /// primary): zero once it has replayed that far.
    pub fn bytes_behind(&self, primary_position: WalPosition) -> u64 {
        primary_position.bytes_since(self.position)
    }
}

/// A probe that failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProbeError {
    /// The query failed (connection lost, server shutting down, ...).
    Sql(::sqlx::Error),
    /// The server reported a position that does not parse.
    Position(ParseWalPositionError),
    /// The server reported no position (a replica that has replayed nothing yet).
    NoPosition,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Sql(e) => write!(f, "probe query failed: {e}"),
            ProbeError::Position(e) => write!(f, "probe got a bad WAL position: {e}"),
            ProbeError::NoPosition => f.write_str("server reported no WAL position yet"),
        }
    }
}

impl std::error::Error for ProbeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProbeError::Sql(e) => Some(e),
            ProbeError::Position(e) => Some(e),
            ProbeError::NoPosition => None,
        }
    }
}

impl From<::sqlx::Error> for ProbeError {
    fn from(e: ::sqlx::Error) -> Self {
        ProbeError::Sql(e)
    }
}

/// Asks `pg_is_in_recovery()`.
///
/// ```no_run
/// # async fn demo(conn: &mut sqlx::PgConnection) -> Result<(), seawall::sqlx::ProbeError> {
/// use seawall::sqlx::{probe, Role};
/// if probe::role(conn).await? == Role::Replica {
///     // do not send writes here
/// }
/// # Ok(()) }
/// ```
pub async fn role(conn: &mut PgConnection) -> Result<Role, ProbeError> {
    let in_recovery: bool = ::sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(conn)
        .await?;
    Ok(role_of(in_recovery))
}

/// The server's WAL position: written WAL on a primary, replayed WAL on a replica (see
/// [`NodeStatus::position`]).
pub async fn wal_position(conn: &mut PgConnection) -> Result<WalPosition, ProbeError> {
    let lsn: Option<String> = ::sqlx::query_scalar(
        "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
         ELSE pg_current_wal_lsn() END)::text",
    )
    .fetch_one(conn)
    .await?;
    parse(lsn)?.ok_or(ProbeError::NoPosition)
}

/// The server's timeline, as one SQL expression (PostgreSQL 15; see [`timeline`]).
macro_rules! timeline_sql {
    () => {
        "CASE WHEN pg_is_in_recovery() \
         THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver)::int8, \
                       (SELECT timeline_id FROM pg_control_checkpoint())::int8) \
         ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END"
    };
}

/// The server's timeline: the branch of history its WAL is on, one more at each promotion.
///
/// Measured on PostgreSQL 15 (Patroni switchovers, `tests/data/` notes):
/// * on a **primary**, `pg_control_checkpoint()` keeps the old timeline until the next
///   checkpoint after a promotion, so the probe reads the current one from the name of the WAL
///   file being written: the first 8 hex digits of `pg_walfile_name(pg_current_wal_lsn())`.
///   Exact from the moment the promotion ends;
/// * on a **replica** (where `pg_walfile_name` is refused), `received_tli` of
///   `pg_stat_wal_receiver`: the timeline of the last WAL received, switching when it streams
///   from a newly promoted primary. It is visible only to superusers and members of
///   `pg_read_all_stats`, and absent while no WAL receiver runs; then the timeline of the last
///   restart point (`pg_control_checkpoint()`, readable by anyone), which lags behind. Either
///   way a lower bound: a replica is never taken to be on a newer timeline than it is.
pub async fn timeline(conn: &mut PgConnection) -> Result<Option<u32>, ProbeError> {
    let timeline: Option<i64> = ::sqlx::query_scalar(concat!("SELECT ", timeline_sql!()))
        .fetch_one(conn)
        .await?;
    Ok(timeline_of(timeline))
}

/// Role, position, received position, replay age and timeline, in one round trip.
pub async fn status(conn: &mut PgConnection) -> Result<NodeStatus, ProbeError> {
    let (in_recovery, position, received, age, timeline): (
        bool,
        Option<String>,
        Option<String>,
        Option<f64>,
        Option<i64>,
    ) = ::sqlx::query_as(STATUS_SQL).fetch_one(conn).await?;
    Ok(NodeStatus {
        role: role_of(in_recovery),
        position: parse(position)?.ok_or(ProbeError::NoPosition)?,
        received: parse(received)?,
        // `now()` is the transaction's start, which may precede the last replay: clamp at 0.
        replay_age: age.map(|s| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)),
        timeline: timeline_of(timeline),
    })
}

/// [`status`]'s query.
const STATUS_SQL: &str = concat!(
    "SELECT pg_is_in_recovery(), \
     (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
      ELSE pg_current_wal_lsn() END)::text, \
     pg_last_wal_receive_lsn()::text, \
     EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, ",
    timeline_sql!()
);

/// Timelines start at 1; anything else is no answer.
fn timeline_of(raw: Option<i64>) -> Option<u32> {
    raw.and_then(|t| u32::try_from(t).ok()).filter(|&t| t > 0)
}

fn role_of(in_recovery: bool) -> Role {
    if in_recovery {
        Role::Replica
    } else {
        Role::Primary
    }
}

fn parse(lsn: Option<String>) -> Result<Option<WalPosition>, ProbeError> {
    lsn.map(|s| s.parse().map_err(ProbeError::Position))
        .transpose()
}
