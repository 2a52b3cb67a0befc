//! What the pool judges by its clock (lifetimes, idle times, the checkout ping), what
//! `min_idle` counts, and an acquire polled where no clock can run (outside a runtime).
//!
//! The pool keeps a coarse clock to spare the hot path a clock read; these tests pin down that
//! it stays fresh whatever the maintenance interval, so no limit is judged late or early.

mod common;

use std::future::Future;
use std::task::{Context, Poll, Waker};

use common::{backend, builder, ms, secs};
use seawall::pool::CheckoutTest;
use seawall::Error;

/// `max_lifetime` 10 s with a 60 s maintenance interval: a connection held 30 s is closed when
/// returned, and the next get opens a new one (it used to go back to idle and be handed out
/// again, 30 s old).
#[tokio::test(start_paused = true)]
async fn an_expired_connection_is_closed_on_return_whatever_the_maintenance_interval() {
    let db = backend();
    let pool = builder(&db)
        .max_lifetime(Some(secs(10)))
        .lifetime_jitter(0.0)
        .maintenance_interval(secs(60))
        .build()
        .unwrap();
    let conn = pool.get().await.unwrap();
    let first = conn.id();
    tokio::time::sleep(secs(30)).await;
    drop(conn);
    assert_eq!(
        pool.state().idle,
        0,
        "an expired connection went back to idle"
    );
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.id(), first);
    assert_eq!(db.stats().connects, 2);
}

/// `CheckoutTest::AfterIdle(5 s)` with a 60 s maintenance interval: a connection idle for 30 s
/// is pinged before it is handed out.
#[tokio::test(start_paused = true)]
async fn a_connection_idle_past_the_threshold_is_pinged_whatever_the_maintenance_interval() {
    let db = backend();
    let pool = builder(&db)
        .checkout_test(CheckoutTest::AfterIdle(secs(5)))
        .maintenance_interval(secs(60))
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    // Back at once: no ping.
    drop(pool.get().await.unwrap());
    assert_eq!(db.stats().pings, 0);
    tokio::time::sleep(secs(30)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(db.stats().pings, 1, "idle 30 s and not pinged");
}

/// `idle_timeout` 10 s with maintenance every 10 s: a connection returned just before a round
/// is not reaped by it (it was, after 20 ms idle: its return was stamped with a stale clock).
#[tokio::test(start_paused = true)]
async fn a_connection_just_returned_is_not_reaped_as_idle() {
    let db = backend();
    let pool = builder(&db)
        .idle_timeout(Some(secs(10)))
        .maintenance_interval(secs(10))
        .build()
        .unwrap();
    let conn = pool.get().await.unwrap();
    tokio::time::sleep(ms(9_980)).await;
    drop(conn);
    tokio::time::sleep(ms(100)).await;
    let state = pool.state();
    assert_eq!(state.idle, 1, "reaped after 100 ms idle: {state:?}");
    // It does idle out once it has been idle for the timeout (within a second).
    tokio::time::sleep(secs(11)).await;
    assert_eq!(pool.state().idle, 0);
}

/// `min_idle` counts idle connections: with 3 of `max_size(5).min_idle(2)` checked out, the
/// other 2 are opened and kept idle, and `idle_timeout` does not close them.
#[tokio::test(start_paused = true)]
async fn min_idle_keeps_idle_connections_beside_those_in_use() {
    let db = backend();
    let pool = builder(&db)
        .max_size(5)
        .min_idle(2)
        .idle_timeout(Some(secs(10)))
        .maintenance_interval(secs(1))
        .build()
        .unwrap();
    let held: Vec<_> = [pool.get().await, pool.get().await, pool.get().await]
        .into_iter()
        .map(Result::unwrap)
        .collect();
    tokio::time::sleep(secs(2)).await;
    let state = pool.state();
    assert_eq!((state.in_use, state.idle), (3, 2), "{state:?}");
    // Long past the idle timeout: the 2 idle ones stay, the 3 in use are untouched.
    tokio::time::sleep(secs(60)).await;
    let state = pool.state();
    assert_eq!((state.in_use, state.idle), (3, 2), "{state:?}");
    // Returned, the 3 become surplus idle connections and idle out; 2 stay.
    drop(held);
    tokio::time::sleep(secs(15)).await;
    let state = pool.state();
    assert_eq!((state.size, state.idle), (2, 2), "{state:?}");
}

/// An acquire that has to wait, polled outside any Tokio runtime (and by a pool that never saw
/// one), fails at once with `NoRuntime`: it used to stay pending forever, even with a zero
/// timeout. An idle connection is still handed out without a runtime.
#[test]
fn an_acquire_outside_a_runtime_fails_at_once() {
    let db = backend();
    let pool = builder(&db).name("no-rt").build().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut get = Box::pin(pool.get_timeout(std::time::Duration::ZERO));
    match get.as_mut().poll(&mut cx) {
        Poll::Ready(Err(e @ Error::NoRuntime { .. })) => {
            assert!(e.to_string().contains("pool `no-rt`"), "{e}");
            assert!(e.to_string().contains("outside a Tokio runtime"), "{e}");
        }
        Poll::Ready(other) => panic!("expected NoRuntime, got {:?}", other.map(|_| ())),
        Poll::Pending => panic!("still pending outside a runtime"),
    }
    drop(get);
    let state = pool.state();
    assert_eq!((state.waiters, state.connecting), (0, 0), "{state:?}");
}
