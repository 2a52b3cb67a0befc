//! What seawall logs and traces: breaker transitions, pool spans, and no sqlx warnings from a
//! session reset.
//!
//! Tests that capture `tracing` output live in this binary alone, behind one global subscriber
//! installed once and a lock that runs them one at a time. A subscriber set per thread
//! (`set_default`) next to parallel tests that have none is at the mercy of the callsite interest
//! cache: a callsite first hit by another thread can be cached as uninteresting, and its event
//! is then lost (a breaker test failed that way in 1 of 2 full runs).

mod common;

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use seawall::breaker::{BreakerConfig, BreakerState, CircuitBreaker, Outcome, SlidingWindow};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// What the global subscriber saw since the current test began.
#[derive(Default)]
struct Seen {
    /// Formatted INFO-and-above events, one per line.
    log: Vec<u8>,
    /// (span name, its `pool` field) of every new span.
    spans: Vec<(String, String)>,
    /// (target, level) of every event.
    events: Vec<(String, tracing::Level)>,
}

static SEEN: Mutex<Seen> = Mutex::new(Seen {
    log: Vec::new(),
    spans: Vec::new(),
    events: Vec::new(),
});

fn seen() -> MutexGuard<'static, Seen> {
    SEEN.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone, Copy)]
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        seen().log.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Recorder;

struct PoolField(String);

impl Visit for PoolField {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "pool" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        let mut pool = PoolField(String::new());
        attrs.record(&mut pool);
        seen()
            .spans
            .push((attrs.metadata().name().to_owned(), pool.0));
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        seen()
            .events
            .push((meta.target().to_owned(), *meta.level()));
    }
}

/// Installs the global subscriber (once), takes the suite's lock and clears what was seen.
fn capture() -> MutexGuard<'static, ()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    static SERIAL: Mutex<()> = Mutex::new(());
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Recorder).with(
            tracing_subscriber::fmt::layer()
                .with_writer(|| LogWriter)
                .with_ansi(false)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        );
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
    let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    *seen() = Seen::default();
    serial
}

#[test]
fn breaker_transitions_are_logged_with_the_node() {
    let _serial = capture();
    common::paused_runtime().block_on(async {
        let config = BreakerConfig::builder()
            .window(SlidingWindow::Count { calls: 10 })
            .minimum_calls(5)
            .permitted_calls_in_half_open(3)
            .open_interval(Duration::from_secs(1), Duration::from_secs(8))
            .jitter(0.0)
            .build()
            .unwrap();
        let b = CircuitBreaker::new("node-a", config);
        let call = |outcome| {
            b.try_call()
                .expect("admitted")
                .record(outcome, Duration::from_millis(1))
        };
        while b.state() == BreakerState::Closed {
            call(Outcome::Failure);
        }
        tokio::time::advance(b.snapshot().retry_in.unwrap()).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        while b.state() == BreakerState::HalfOpen {
            call(Outcome::Success);
        }
    });
    let log = String::from_utf8(seen().log.clone()).unwrap();
    let lines: Vec<_> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("opened"),
        "{log}"
    );
    assert!(
        lines[1].contains("INFO") && lines[1].contains("half-open"),
        "{log}"
    );
    assert!(
        lines[2].contains("INFO") && lines[2].contains("closed"),
        "{log}"
    );
    assert!(lines.iter().all(|l| l.contains("node-a")), "{log}");
}

#[test]
fn pool_spans_cover_acquire_and_connect() {
    let _serial = capture();
    let db = common::backend();
    common::paused_runtime().block_on(async {
        let pool = common::builder(&db).name("traced").build().unwrap();
        drop(pool.get().await.unwrap());
    });
    let spans = seen().spans.clone();
    for name in ["seawall.acquire", "seawall.connect"] {
        assert!(
            spans.iter().any(|(n, pool)| n == name && pool == "traced"),
            "no {name} span for pool `traced` in {spans:?}"
        );
    }
}

/// A session reset on a real server makes sqlx log no warning (a bare `ROLLBACK` would).
#[cfg(all(feature = "sqlx", feature = "testbed"))]
#[test]
fn session_reset_logs_no_sqlx_warning() {
    use sqlx::{Connection, PgConnection};

    let warnings = || {
        seen()
            .events
            .iter()
            .filter(|(target, level)| target.starts_with("sqlx") && *level <= tracing::Level::WARN)
            .count()
    };
    let bed = seawall::testbed::PgCluster::start(0).expect("start the PostgreSQL test bed");
    let _serial = capture();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = PgConnection::connect(&bed.primary_url()).await.unwrap();
        // Control: a bare ROLLBACK outside a transaction makes the server warn; sqlx logs it.
        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
        assert_eq!(warnings(), 1, "the capture sees sqlx's notice log");
        // The reset, idle or inside a transaction, adds none.
        seawall::sqlx::reset_session(&mut conn).await.unwrap();
        sqlx::raw_sql("BEGIN; SET LOCAL client_min_messages = debug5")
            .execute(&mut conn)
            .await
            .unwrap();
        seawall::sqlx::reset_session(&mut conn).await.unwrap();
        assert_eq!(warnings(), 1, "no warning from the resets");
        assert!(!conn.is_in_transaction());
    });
}
