//! Helpers shared by the pool's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use seawall::pool::{Builder, Pool};
use seawall::sim::{SimBackend, SimConnector};
use seawall::{Error, TimeoutError};

/// A fresh simulated server with the simulator's defaults (1 ms connects).
pub fn backend() -> Arc<SimBackend> {
    SimBackend::builder("sim").build()
}

/// A pool builder over `db`, named `test` and seeded, with the pool's other defaults.
pub fn builder(db: &Arc<SimBackend>) -> Builder<SimConnector> {
    Pool::builder(db.connector()).name("test").seed(7)
}

/// Milliseconds, for brevity.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Seconds, for brevity.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Lets simulated time run for `d`. Under a paused clock `sleep` auto-advances timer by timer,
/// so every timer in between fires at its own instant (`time::advance` would jump over them
/// and fire them late, all at once).
pub async fn run_for(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Lets spawned tasks run without moving the clock.
pub async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// Awaits `fut`, failing the test instead of hanging if it is not done within `limit` of
/// (simulated) time.
pub async fn bounded<F: Future>(limit: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("still pending after {limit:?}"),
    }
}

/// Polls `fut` exactly once.
pub async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// The timeout inside `result`, or a panic naming what came instead.
pub fn expect_timeout<T: std::fmt::Debug>(result: Result<T, Error>) -> TimeoutError {
    match result {
        Err(Error::Timeout(e)) => e,
        other => panic!("expected Error::Timeout, got {other:?}"),
    }
}

/// Asserts the pool and the server agree: nothing checked out, nobody waiting, no connect in
/// flight, and every connection the pool counts is open on the server (no leak either way).
pub fn assert_quiescent(pool: &Pool<SimConnector>, db: &SimBackend) {
    let state = pool.state();
    assert_eq!(state.in_use, 0, "connections still checked out: {state:?}");
    assert_eq!(state.waiters, 0, "waiters left: {state:?}");
    assert_eq!(state.connecting, 0, "connects left in flight: {state:?}");
    assert!(state.size <= state.max_size, "over max size: {state:?}");
    assert_eq!(
        db.stats().open_connections,
        state.size,
        "server's open connections differ from the pool's size: {state:?}"
    );
}

/// A current-thread runtime with the clock paused, for tests that are not `#[tokio::test]`.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// The samples of metric `name` in a debugging recorder's snapshot, each with its labels.
pub fn metric_samples(
    snapshotter: &metrics_util::debugging::Snapshotter,
    name: &str,
) -> Vec<(Vec<(String, String)>, metrics_util::debugging::DebugValue)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| key.key().name() == name)
        .map(|(key, _, _, value)| {
            let labels = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (labels, value)
        })
        .collect()
}
