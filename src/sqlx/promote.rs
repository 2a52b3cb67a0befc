//! [`PgPromoter`]: automatic failover's promotion step for PostgreSQL.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::DriverError;
use crate::failover::Promoter;
use crate::pool::Pool;

use super::PgConnector;

/// Promotes a PostgreSQL standby with `SELECT pg_promote(true, wait_seconds)`: returns once the
/// server has left recovery and accepts writes.
///
/// The promotion uses a fresh connection, not a pooled one: the pooled connections may belong
/// to sessions in any state, and the node's pool may be saturated.
#[derive(Debug, Clone)]
pub struct PgPromoter {
    wait: Duration,
}

impl Default for PgPromoter {
    /// Waits up to 60 s for the promotion (PostgreSQL's own default).
    fn default() -> Self {
        PgPromoter {
            wait: Duration::from_secs(60),
        }
    }
}

impl PgPromoter {
    /// A promoter that waits up to `wait` (whole seconds, at least 1) for the promotion.
    pub fn new(wait: Duration) -> Self {
        PgPromoter { wait }
    }
}

/// `pg_promote()` answered false: the server did not finish promoting in time.
#[derive(Debug)]
struct NotPromoted(Duration);

impl std::fmt::Display for NotPromoted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pg_promote() did not complete within {:?}", self.0)
    }
}

impl std::error::Error for NotPromoted {}

#[async_trait]
impl Promoter<PgConnector> for PgPromoter {
    async fn promote(&self, pool: &Pool<PgConnector>) -> Result<(), DriverError> {
        use crate::driver::Connector;
        let mut conn = pool.connector().connect().await.map_err(DriverError::new)?;
        let seconds = i32::try_from(self.wait.as_secs().max(1)).unwrap_or(i32::MAX);
        let promoted: bool = ::sqlx::query_scalar("SELECT pg_promote(true, $1)")
            .bind(seconds)
            .fetch_one(&mut conn)
            .await
            .map_err(DriverError::new)?;
        if promoted {
            Ok(())
        } else {
            Err(DriverError::new(NotPromoted(self.wait)))
        }
    }
}
