//! A seawall cluster over a PostgreSQL primary and its replicas, with sqlx.
//!
//! ```text
//! SEAWALL_PRIMARY_URL=postgres://postgres@127.0.0.1:5432/postgres \
//! SEAWALL_REPLICA_URLS=postgres://postgres@127.0.0.1:5433/postgres,postgres://postgres@127.0.0.1:5434/postgres \
//!     cargo run --example sqlx_replicas --features sqlx
//! ```
//!
//! Routes a small workload by statement (writes to the primary, reads to replicas by load,
//! a read-your-writes read after the last write) and prints the cluster's snapshot.

use std::time::Duration;

use seawall::cluster::{AcquireOptions, Cluster};
use seawall::pool::Pool;
use seawall::sqlx::{current_position, PgConnector, WalPosition};
use sqlx::AssertSqlSafe;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The names this example documents, or those `scripts/pg-testbed.sh` writes to its env file.
    let var = |names: [&str; 2]| names.iter().find_map(|n| std::env::var(n).ok());
    let (Some(primary), Some(replicas)) = (
        var(["SEAWALL_PRIMARY_URL", "SEAWALL_PG_PRIMARY"]),
        var(["SEAWALL_REPLICA_URLS", "SEAWALL_PG_REPLICAS"]),
    ) else {
        println!(
            "Set SEAWALL_PRIMARY_URL and SEAWALL_REPLICA_URLS (comma-separated) to run this example.\n\
             For a throwaway primary with two replicas on this machine:\n\
             \n    scripts/pg-testbed.sh start 2\n    source /tmp/seawall-pg-testbed/env\n    \
             cargo run --example sqlx_replicas --features sqlx\n\
             \n(the env file sets SEAWALL_PG_PRIMARY / SEAWALL_PG_REPLICAS, which this example \
             also reads; `scripts/pg-testbed.sh stop` removes it all)"
        );
        return Ok(());
    };
    let pool = |name: &str, url: &str| -> Result<Pool<PgConnector>, Box<dyn std::error::Error>> {
        Ok(Pool::builder(PgConnector::from_url(url)?)
            .name(name)
            .max_size(4)
            .build()?)
    };
    let mut builder = Cluster::builder()
        .primary("primary", pool("primary", &primary)?)
        .max_replica_lag(Some(Duration::from_secs(5)))
        .probe_interval(Some(Duration::from_millis(500)));
    let urls = replicas.split(|c: char| c == ',' || c.is_whitespace());
    for (i, url) in urls.filter(|u| !u.is_empty()).enumerate() {
        let name = format!("replica-{}", i + 1);
        builder = builder.replica(name.clone(), pool(&name, url)?);
    }
    let cluster = builder.build()?;
    cluster.probe_now().await;

    let workload = [
        "CREATE TABLE IF NOT EXISTS seawall_example (id serial PRIMARY KEY, note text)",
        "INSERT INTO seawall_example (note) VALUES ('hello')",
        "SELECT count(*) FROM seawall_example",
        "SELECT pg_is_in_recovery()",
        "UPDATE seawall_example SET note = 'again' WHERE id = 1",
        "SELECT note FROM seawall_example ORDER BY id LIMIT 1",
        "SELECT 1",
    ];
    let mut written = None;
    for sql in workload {
        // Read-your-writes: a read after a write goes to a node that has replayed it.
        let options = written.map_or_else(AcquireOptions::new, |position: WalPosition| {
            AcquireOptions::new().min_position(position)
        });
        let mut conn = cluster.route_with(sql, options).await?;
        let result = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await;
        if let Err(e) = &result {
            conn.report_error(e); // a node in trouble is noticed; a caller's mistake is not
        }
        println!(
            "{:<8} {:<10} {sql}",
            conn.role().to_string(),
            conn.node_name()
        );
        result?;
        if conn.role() == seawall::cluster::Role::Primary {
            written = Some(current_position(&mut conn).await?);
        }
    }
    if let Some(position) = written {
        let mut conn = cluster
            .read_with(AcquireOptions::new().min_position(position))
            .await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM seawall_example")
            .fetch_one(&mut *conn)
            .await?;
        println!(
            "read-your-writes after {position}: {n} rows, served by {}",
            conn.node_name()
        );
    }

    // Let the cluster run statements: each is timed per fingerprint (literals folded).
    for id in 1..=20 {
        let sql = format!("SELECT count(*) FROM seawall_example WHERE id > {id}");
        cluster
            .execute(&sql, |conn, sql| {
                Box::pin(async move {
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_one(&mut **conn)
                        .await?;
                    conn.set_rows(1);
                    Ok(n)
                })
            })
            .await?;
    }

    cluster.probe_now().await;
    for node in &cluster.snapshot().nodes {
        println!(
            "{:<10} position {:>12}",
            node.name,
            seawall::sqlx::WalPosition::new(node.replayed_position).to_string(),
        );
    }
    // The operator's view, and the statements that cost the most time.
    println!("\n{}\n", cluster.snapshot());
    println!("{}", seawall::statements::Table(&cluster.statements()));
    Ok(())
}
