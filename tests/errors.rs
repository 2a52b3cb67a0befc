//! Every error seawall returns says which node (or pool), which limit or state, and how long it
//! waited. Each variant is produced here the way an application meets it, and its `Display`
//! text is checked for those facts.

use std::sync::Arc;
use std::time::Duration;

use seawall::admission::{Admission, AdmissionConfig, Priority};
use seawall::breaker::{BreakerConfig, CircuitBreaker, SlidingWindow};
use seawall::classify::Classifier;
use seawall::cluster::{AcquireOptions, Cluster};
use seawall::limit::Fixed;
use seawall::pool::{CheckoutTest, Pool};
use seawall::sim::{query, SimBackend, SimConnector};
use seawall::{Error, WaitCause};
use tokio::time::sleep;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn backend(name: &str, primary: bool) -> Arc<SimBackend> {
    SimBackend::builder(name)
        .primary(primary)
        .writing_function("archive_order")
        .build()
}

fn pool(db: &Arc<SimBackend>, size: usize) -> Pool<SimConnector> {
    Pool::builder(db.connector())
        .name(db.name())
        .max_size(size)
        .build()
        .unwrap()
}

fn cluster(primary: &Arc<SimBackend>, replica: &Arc<SimBackend>) -> Cluster<SimConnector> {
    Cluster::builder()
        .primary("primary", pool(primary, 4))
        .replica("replica", pool(replica, 4))
        .probe_interval(None)
        .classifier(Classifier::new().with_read_only_function("archive_order"))
        .build()
        .unwrap()
}

/// Asserts that `text` holds every one of `facts`.
#[track_caller]
fn says(error: &Error, facts: &[&str]) {
    let text = error.to_string();
    for fact in facts {
        assert!(text.contains(fact), "`{text}` does not say `{fact}`");
    }
}

/// A driver whose session reset always fails.
struct ResetFails;

#[async_trait::async_trait]
impl seawall::Connector for ResetFails {
    type Connection = ();
    type Error = std::io::Error;

    async fn connect(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn needs_reset(&self, _conn: &()) -> bool {
        true
    }

    async fn reset(&self, _conn: &mut ()) -> Result<(), std::io::Error> {
        Err(std::io::Error::other("lock timeout"))
    }
}

#[tokio::test(start_paused = true)]
async fn timeouts_say_the_pool_the_wait_and_the_cause() {
    // Saturated.
    let db = backend("orders-db", true);
    let p = pool(&db, 1);
    let _held = p.get().await.unwrap();
    let e = p.get_timeout(ms(100)).await.unwrap_err();
    assert!(matches!(&e, Error::Timeout(t) if matches!(t.cause, WaitCause::Saturated { .. })));
    says(
        &e,
        &[
            "pool `orders-db`",
            "after 100ms",
            "saturated",
            "1/1 connections in use",
        ],
    );

    // Connecting too slowly.
    let slow = SimBackend::builder("slow-db")
        .connect_latency(Duration::from_secs(10))
        .build();
    let e = pool(&slow, 2).get_timeout(ms(50)).await.unwrap_err();
    says(&e, &["pool `slow-db`", "after 50ms", "still connecting"]);

    // Refusing connections.
    let down = backend("down-db", true);
    down.set_down(true);
    let e = pool(&down, 2).get_timeout(ms(200)).await.unwrap_err();
    says(
        &e,
        &[
            "pool `down-db`",
            "after 200ms",
            "cannot connect",
            "consecutive failures",
            "connection to `down-db` refused",
        ],
    );

    // A connection whose checkout ping hangs.
    let hung = backend("hung-db", true);
    let p = Pool::builder(hung.connector())
        .name("hung-db")
        .max_size(1)
        .checkout_test(CheckoutTest::Always)
        .build()
        .unwrap();
    drop(p.get().await.unwrap());
    hung.set_hang(true);
    let e = p.get_timeout(ms(80)).await.unwrap_err();
    says(&e, &["pool `hung-db`", "after 80ms", "ping did not answer"]);
}

#[tokio::test(start_paused = true)]
async fn a_cluster_timeout_names_the_node_when_its_pool_is_named_otherwise() {
    let primary = backend("primary", true);
    let db = backend("eu-west-2b", false);
    let c = Cluster::builder()
        .primary("primary", pool(&primary, 1))
        .replica("replica-1", pool(&db, 1))
        .probe_interval(None)
        .build()
        .unwrap();
    // Held past the cluster (its admission gate would queue a second reader instead).
    let _held = c.node("replica-1").unwrap().pool().get().await.unwrap();
    let e = c
        .read_with(AcquireOptions::new().timeout(ms(60)).replica_only())
        .await
        .unwrap_err();
    says(
        &e,
        &[
            "node `replica-1`, pool `eu-west-2b`",
            "after 60ms",
            "1/1 connections in use",
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn closed_driver_and_config_errors_name_their_pool_or_field() {
    let p = Pool::builder(ResetFails).name("billing").build().unwrap();
    let e = p.get().await.unwrap().release().await.unwrap_err();
    says(
        &e,
        &["pool `billing`", "session reset failed", "lock timeout"],
    );

    let db = backend("billing", true);
    let p = pool(&db, 2);
    p.close().await;
    let e = p.get().await.unwrap_err();
    says(&e, &["pool `billing` is closed"]);

    let e: Error = Pool::builder(db.connector())
        .max_size(0)
        .build()
        .unwrap_err()
        .into();
    says(&e, &["invalid configuration", "`max_size`"]);
}

#[tokio::test(start_paused = true)]
async fn breaker_and_admission_errors_say_the_node_and_its_state() {
    let breaker = CircuitBreaker::new(
        "replica-2",
        BreakerConfig::builder()
            .window(SlidingWindow::Count { calls: 4 })
            .minimum_calls(4)
            .open_interval(Duration::from_secs(5), Duration::from_secs(5))
            .jitter(0.0)
            .build()
            .unwrap(),
    );
    for _ in 0..4 {
        breaker.try_call().unwrap().failure();
    }
    sleep(ms(1000)).await;
    let e: Error = breaker.try_call().unwrap_err().into();
    says(&e, &["node `replica-2`", "open", "next trial in 4s"]);

    let gate = Admission::new(
        "primary",
        Fixed::new(1),
        AdmissionConfig {
            max_queue: 0,
            ..AdmissionConfig::default()
        },
    )
    .unwrap();
    let _permit = gate.admit(Priority::WRITE, None).await.unwrap();
    let e: Error = gate.admit(Priority::WRITE, None).await.unwrap_err().into();
    says(
        &e,
        &[
            "node `primary`",
            "overloaded",
            "1/1 in flight",
            "queued 0ns",
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn routing_errors_say_why_no_node_could_serve_and_how_long_they_tried() {
    let primary = backend("primary", true);
    let replica = backend("replica", false);
    let c = cluster(&primary, &replica);

    replica.set_down(true);
    for _ in 0..5 {
        c.probe_now().await;
    }
    let e = c
        .read_with(AcquireOptions::new().replica_only())
        .await
        .unwrap_err();
    says(
        &e,
        &[
            "no usable replica (1 configured, 1 down)",
            "may not go to the primary",
            "gave up after 0ns",
        ],
    );

    primary.set_down(true);
    for _ in 0..5 {
        c.probe_now().await;
    }
    let e = c
        .write_with(AcquireOptions::new().timeout(ms(300)))
        .await
        .unwrap_err();
    says(
        &e,
        &["no primary to write to", "after waiting 300ms", "gone for"],
    );

    let e = c.on("replica-9").await.unwrap_err();
    says(&e, &["unknown node `replica-9`"]);

    let e = c.route("/* seawall:bogus */ SELECT 1").await.unwrap_err();
    says(&e, &["malformed routing hint at byte 0"]);
}

#[tokio::test(start_paused = true)]
async fn statement_errors_say_the_node_the_statement_and_the_time() {
    let primary = backend("primary", true);
    let replica = SimBackend::builder("replica")
        .primary(false)
        .query_error_rate(1.0)
        .build();
    let c = cluster(&primary, &replica);
    let sql = "SELECT * FROM t WHERE id = 1";
    let e = c.execute(sql, query).await.unwrap_err();
    let fp = seawall::classify::fingerprint(sql).to_string();
    says(
        &e,
        &[
            &format!("statement {fp}"),
            "failed on replica `replica` after 1ms",
            "query failed on `replica`",
        ],
    );

    // A write a pinned replica handle refuses: which replica, why it was not retried, and that
    // the next one goes to the primary.
    let replica = backend("replica", false);
    let c = cluster(&primary, &replica);
    let mut conn = c.read().await.unwrap();
    let e = conn
        .execute("SELECT archive_order(1)", query)
        .await
        .unwrap_err();
    says(
        &e,
        &[
            "writes but ran on replica `replica`",
            "after 0ns",
            "pinned handle",
            "later ones go to the primary",
        ],
    );

    // The primary's own failure after a retry names the replica that refused first.
    drop(conn);
    primary.set_query_error_rate(1.0);
    let e = c
        .execute("SELECT archive_order(2) FROM t", query)
        .await
        .unwrap_err();
    says(
        &e,
        &[
            "failed on primary `primary` after 1ms",
            "retried there after replica `replica` refused it as a write",
        ],
    );
}
