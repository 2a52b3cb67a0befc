//! The application's own functions, read from the server: [`Classifier::from_catalog`].

use ::sqlx::postgres::PgConnection;

use crate::classify::Classifier;

/// Every function outside the system schemas, with its strictest volatility over its overloads
/// and schemas: `v` if any overload is volatile (the classifier matches by name only).
const FUNCTIONS: &str = "SELECT p.proname::text, \
     CASE WHEN bool_or(p.provolatile = 'v') THEN 'v' ELSE 's' END \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
       AND p.prokind IN ('f', 'a', 'w') \
     GROUP BY p.proname";

impl Classifier {
    /// A classifier that knows the application's own functions, read from the server `conn`
    /// is connected to (the primary, at start): `IMMUTABLE` and `STABLE` functions are
    /// read-only (PostgreSQL refuses data-modifying statements inside them), `VOLATILE` ones
    /// write. A name with several overloads, or in several schemas, counts as a writer if any
    /// of them is volatile. Built-in functions keep the classifier's own knowledge, and a
    /// function known to write stays a writer.
    ///
    /// What it cannot see: a `STABLE` function that calls a volatile one which changes session
    /// state (`set_config`) is still taken for read-only; declare such a function with
    /// [`Classifier::with_writing_function`]. Functions created later are unknown until the
    /// next call (and so go to the primary).
    pub async fn from_catalog(conn: &mut PgConnection) -> Result<Classifier, ::sqlx::Error> {
        let rows: Vec<(String, String)> = ::sqlx::query_as(FUNCTIONS).fetch_all(conn).await?;
        let (read_only, writing): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, v)| v == "s");
        Ok(Classifier::new()
            .with_read_only_functions(read_only.into_iter().map(|(name, _)| name))
            .with_writing_functions(writing.into_iter().map(|(name, _)| name)))
    }
}
