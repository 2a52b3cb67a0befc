//! An ordinary sqlx application, moved to seawall by changing how the pool is built.
//!
//! ```text
//! scripts/pg-testbed.sh start 2 && source /tmp/seawall-pg-testbed/env
//! cargo run --example sqlx_app --features sqlx
//! ```
//!
//! The queries, the transaction and the error handling are plain sqlx; the only lines that
//! changed are the two marked `seawall:` (the type of the handle and how it is built). One
//! thing is new: a read that must see the application's own write asks for it with a position
//! token (read-your-writes), because reads now go to replicas.

use seawall::cluster::AcquireOptions;
use seawall::sqlx::{current_position, PgConnector};
use sqlx::Row;

// seawall: was `type Db = sqlx::PgPool;`
type Db = seawall::Cluster<PgConnector>;

async fn setup(db: &Db) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS app_orders (id bigserial PRIMARY KEY, customer int NOT NULL, \
         total bigint NOT NULL); \
         CREATE TABLE IF NOT EXISTS app_stock (sku text PRIMARY KEY, n int NOT NULL); \
         INSERT INTO app_stock VALUES ('tea', 100) ON CONFLICT DO NOTHING",
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Places an order: one transaction on the primary (rolled back if anything fails).
async fn place_order(db: &Db, customer: i32, sku: &str, total: i64) -> Result<i64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let left: i32 = sqlx::query_scalar("UPDATE app_stock SET n = n - 1 WHERE sku = $1 RETURNING n")
        .bind(sku)
        .fetch_one(&mut tx)
        .await?;
    if left < 0 {
        tx.rollback().await?;
        return Err(sqlx::Error::Protocol(format!("{sku} is sold out")));
    }
    let id: i64 =
        sqlx::query_scalar("INSERT INTO app_orders (customer, total) VALUES ($1, $2) RETURNING id")
            .bind(customer)
            .bind(total)
            .fetch_one(&mut tx)
            .await?;
    tx.commit().await?;
    Ok(id)
}

/// A report: a read, routed to a replica.
async fn revenue(db: &Db) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query("SELECT count(*), coalesce(sum(total), 0)::bigint FROM app_orders")
        .fetch_one(db)
        .await?;
    Ok((row.get(0), row.get(1)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |n: &str| std::env::var(n).ok();
    let url = match (
        var("DATABASE_URL"),
        var("SEAWALL_PG_PRIMARY"),
        var("SEAWALL_PG_REPLICAS"),
    ) {
        (Some(url), _, _) => url,
        // The test bed's URLs, as one multi-host URL.
        (None, Some(primary), Some(replicas)) => {
            let hosts: Vec<String> = std::iter::once(primary.as_str())
                .chain(replicas.split(','))
                .map(|u| {
                    u.split('@')
                        .nth(1)
                        .unwrap_or(u)
                        .split('/')
                        .next()
                        .unwrap_or(u)
                        .to_owned()
                })
                .collect();
            let user = primary
                .split("://")
                .nth(1)
                .and_then(|r| r.split('@').next())
                .unwrap_or("postgres");
            format!("postgres://{user}@{}/postgres", hosts.join(","))
        }
        _ => {
            println!(
                "Set DATABASE_URL (a libpq multi-host URL is fine), or start the test bed:\n\
                 \n    scripts/pg-testbed.sh start 2 && source /tmp/seawall-pg-testbed/env\n    \
                 cargo run --example sqlx_app --features sqlx"
            );
            return Ok(());
        }
    };
    // seawall: was `PgPoolOptions::new().max_connections(8).connect(&url).await?`
    let db: Db = seawall::sqlx::connect(&url, 8).await?;

    setup(&db).await?;
    let id = place_order(&db, 42, "tea", 1250).await?;
    println!("order {id} placed");

    // Read-your-writes: this read must see the order just placed. The token is the primary's
    // position after the write; the read goes to a replica that has replayed it, or to the
    // primary.
    let token = current_position(&mut *db.write().await?).await?;
    let mut conn = db
        .read_with(AcquireOptions::new().min_position(token))
        .await?;
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM app_orders WHERE id = $1")
        .bind(id)
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(mine, 1, "read-your-writes");
    drop(conn);

    let (orders, total) = revenue(&db).await?;
    println!("{orders} orders, {total} in all");
    println!("{}", db.snapshot().routes);
    db.close().await;
    Ok(())
}
