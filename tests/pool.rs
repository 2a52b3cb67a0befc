//! Integration tests of the node pool, through its public API, over the simulated backend.
//!
//! Almost every test runs on a paused clock (`start_paused = true`): simulated time only moves
//! when every task is idle, straight to the next timer, so deadlines can be checked to the
//! exact instant and minutes of pool life take milliseconds. Anything that could hang is wrapped
//! in [`common::bounded`].

mod common;

use std::collections::HashSet;
use std::time::Duration;

use seawall::backoff::BackoffConfig;
use seawall::pool::{CheckoutTest, Pool};
use seawall::sim::{SimError, SimStats};
use seawall::{Error, WaitCause};
use tokio::time::Instant;

use common::*;

// ---------------------------------------------------------------------------------------------
// Acquire timeouts and their causes
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn saturated_pool_times_out_exactly_at_the_pool_deadline() {
    let db = backend();
    let pool = builder(&db)
        .max_size(1)
        .acquire_timeout(ms(500))
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();

    let start = Instant::now();
    let err = expect_timeout(bounded(secs(5), pool.get()).await);
    assert_eq!(start.elapsed(), ms(500), "failed off its deadline");
    assert_eq!(err.waited, ms(500));
    assert_eq!(err.timeout, ms(500));
    assert_eq!(&*err.pool, "test");
    assert_eq!(
        err.cause,
        WaitCause::Saturated {
            in_use: 1,
            max_size: 1,
            waiters: 1
        }
    );
    let state = pool.state();
    assert_eq!(state.totals.timed_out, 1);
    assert_eq!(state.waiters, 0);
    drop(held);
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn per_call_timeout_overrides_the_pool_timeout() {
    let db = backend();
    let pool = builder(&db)
        .max_size(1)
        .acquire_timeout(secs(30))
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();

    // A long waiter first, then a short one: the deadline watcher must wake for the earlier
    // deadline although it was already sleeping toward a later one.
    let long = tokio::spawn({
        let pool = pool.clone();
        async move {
            let start = Instant::now();
            let got = pool.get_timeout(secs(10)).await.map(|c| c.id());
            (got, start.elapsed())
        }
    });
    settle().await;
    let start = Instant::now();
    let err = expect_timeout(bounded(secs(5), pool.get_timeout(ms(250))).await);
    assert_eq!(start.elapsed(), ms(250));
    assert_eq!(err.timeout, ms(250));
    assert_eq!(err.waited, ms(250));
    assert!(
        matches!(err.cause, WaitCause::Saturated { waiters: 2, .. }),
        "{:?}",
        err.cause
    );
    assert_eq!(pool.state().waiters, 1, "the long waiter is still queued");

    // The long waiter is unaffected and is served as soon as the connection comes back.
    run_for(secs(1)).await;
    let id = held.id();
    drop(held);
    let (got, waited) = bounded(secs(20), long).await.unwrap();
    assert_eq!(got.unwrap(), id);
    assert_eq!(waited, ms(250) + secs(1));

    // And the default applies when no per-call timeout is given.
    let held = pool.get().await.unwrap();
    let start = Instant::now();
    let err = expect_timeout(bounded(secs(60), pool.get()).await);
    assert_eq!(start.elapsed(), secs(30));
    assert_eq!(err.timeout, secs(30));
    drop(held);
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn database_down_times_out_with_the_last_connect_error() {
    let db = backend();
    db.set_down(true);
    let pool = builder(&db).max_size(4).build().unwrap();

    let start = Instant::now();
    let err = expect_timeout(bounded(secs(5), pool.get_timeout(secs(1))).await);
    assert_eq!(start.elapsed(), secs(1));
    let state = pool.state();
    match &err.cause {
        WaitCause::ConnectFailing {
            last_error,
            failures,
        } => {
            assert!(
                matches!(
                    last_error.downcast_ref::<SimError>(),
                    Some(SimError::ConnectRefused { .. })
                ),
                "{last_error:?}"
            );
            assert!(*failures >= 1);
            // Nothing ever succeeded, so the consecutive failures are all the failures so far.
            assert!(*failures <= state.totals.connect_failures);
        }
        other => panic!("expected ConnectFailing, got {other:?}"),
    }
    // The driver's error is reachable through the standard error chain as well.
    let top = Error::Timeout(err.clone());
    let source = std::error::Error::source(&top).expect("a timeout on connects has a source");
    assert!(source.to_string().contains("refused"), "{source}");
    assert_eq!(state.totals.timed_out, 1);
    assert_eq!(state.size, 0);
}

#[tokio::test(start_paused = true)]
async fn slow_connect_times_out_as_connecting_and_the_connection_is_kept() {
    let db = backend();
    db.set_connect_latency(secs(5));
    let pool = builder(&db).max_size(4).build().unwrap();

    let start = Instant::now();
    let err = expect_timeout(bounded(secs(10), pool.get_timeout(secs(1))).await);
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(err.cause, WaitCause::Connecting { in_flight: 1 });
    assert_eq!(pool.state().connecting, 1);

    // The connect finishes for nobody: it becomes idle instead of being lost.
    run_for(secs(5)).await;
    let state = pool.state();
    assert_eq!((state.size, state.idle, state.connecting), (1, 1, 0));
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn hung_checkout_ping_times_out_at_the_deadline_and_discards() {
    let db = backend();
    let pool = builder(&db)
        .checkout_test(CheckoutTest::Always)
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    db.set_hang(true);

    let start = Instant::now();
    let err = expect_timeout(bounded(secs(10), pool.get_timeout(secs(1))).await);
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(err.cause, WaitCause::PingHung);
    assert_eq!(err.timeout, secs(1));
    let state = pool.state();
    assert_eq!(state.size, 0, "the hung connection is closed");
    assert_eq!(state.totals.timed_out, 1);
    assert_eq!(state.totals.broken, 1);
    db.set_hang(false);
    assert_eq!(db.stats().open_connections, 0);
}

#[tokio::test(start_paused = true)]
async fn hung_checkout_ping_timeout_reports_the_time_waited() {
    let db = backend();
    let pool = builder(&db)
        .checkout_test(CheckoutTest::Always)
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    db.set_hang(true);
    let err = expect_timeout(bounded(secs(10), pool.get_timeout(secs(1))).await);
    assert_eq!(err.cause, WaitCause::PingHung);
    assert_eq!(err.waited, secs(1), "it did wait the whole second");
    db.set_hang(false);
}

// ---------------------------------------------------------------------------------------------
// Lifetime, idle timeout, min idle
// ---------------------------------------------------------------------------------------------

/// Checks out `n` connections at once (concurrently) and returns the guards.
async fn get_many(
    pool: &Pool<seawall::sim::SimConnector>,
    n: usize,
) -> Vec<seawall::Pooled<seawall::sim::SimConnector>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await })
        })
        .collect();
    let mut conns = Vec::with_capacity(n);
    for t in tasks {
        conns.push(bounded(secs(60), t).await.unwrap().unwrap());
    }
    conns
}

#[tokio::test(start_paused = true)]
async fn connections_are_replaced_after_their_jittered_lifetime() {
    let db = backend();
    let life = secs(100);
    let jitter = 0.2;
    let pool = builder(&db)
        .max_size(2)
        .min_idle(2)
        .max_lifetime(Some(life))
        .lifetime_jitter(jitter)
        .idle_timeout(None)
        .maintenance_interval(secs(1))
        .build()
        .unwrap();
    let t0 = Instant::now();
    run_for(secs(2)).await;
    let first: HashSet<u64> = get_many(&pool, 2).await.iter().map(|c| c.id()).collect();
    assert_eq!(first.len(), 2);

    // Nobody expires before the shortest possible lifetime, life * (1 - jitter)...
    let shortest = life.mul_f64(1.0 - jitter);
    run_for(shortest - t0.elapsed() - ms(500)).await;
    assert_eq!(pool.state().totals.closed, 0, "expired before {shortest:?}");
    // ... and everybody is replaced shortly after the full lifetime (one maintenance round).
    run_for(life - t0.elapsed() + secs(3)).await;
    let state = pool.state();
    assert_eq!(state.totals.closed, 2, "{state:?}");
    assert_eq!(state.totals.created, 4, "{state:?}");
    assert_eq!(state.size, 2, "min_idle refilled: {state:?}");
    let second: HashSet<u64> = get_many(&pool, 2).await.iter().map(|c| c.id()).collect();
    assert!(first.is_disjoint(&second), "{first:?} vs {second:?}");
    assert_quiescent(&pool, &db);
}

/// Opens 20 connections in the same instant, returns them, and lets them expire: how many close
/// in each one-second maintenance round, keyed by seconds since they were opened.
async fn expiry_rounds(jitter: f64) -> Vec<(u64, u64)> {
    let db = backend();
    let life = secs(100);
    let pool = builder(&db)
        .max_size(20)
        .max_connecting(20)
        .max_lifetime(Some(life))
        .lifetime_jitter(jitter)
        .idle_timeout(None)
        .maintenance_interval(secs(1))
        .build()
        .unwrap();
    let opened = Instant::now();
    drop(get_many(&pool, 20).await);
    assert_eq!(pool.state().totals.created, 20);
    let mut rounds = Vec::new();
    let mut closed = 0;
    while opened.elapsed() < life + secs(5) {
        run_for(secs(1)).await;
        let now_closed = pool.state().totals.closed;
        if now_closed > closed {
            rounds.push((opened.elapsed().as_secs(), now_closed - closed));
            closed = now_closed;
        }
    }
    assert_eq!(closed, 20, "every connection expired");
    assert_quiescent(&pool, &db);
    rounds
}

#[tokio::test(start_paused = true)]
async fn lifetimes_are_spread_so_connections_opened_together_do_not_expire_together() {
    // The sqlx #2854 reconnect storm: a burst of connections opened together all hit their
    // max lifetime in the same instant and reconnect at once.
    let rounds = expiry_rounds(0.5).await;
    let first = rounds.first().unwrap().0;
    let last = rounds.last().unwrap().0;
    assert!(
        first >= 50,
        "expired before life * (1 - jitter): {rounds:?}"
    );
    assert!(last <= 102, "expired after the full lifetime: {rounds:?}");
    assert!(rounds.len() >= 8, "expiries bunched together: {rounds:?}");
    let worst = rounds.iter().map(|r| r.1).max().unwrap();
    assert!(worst <= 5, "{worst} expired in one round: {rounds:?}");

    // Control: without jitter they do all go in one round, so the test above can tell.
    let together = expiry_rounds(0.0).await;
    assert_eq!(together.len(), 1, "{together:?}");
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_reaps_down_to_min_idle_and_not_below() {
    let db = backend();
    let pool = builder(&db)
        .max_size(5)
        .max_connecting(5)
        .min_idle(2)
        .idle_timeout(Some(secs(10)))
        .max_lifetime(None)
        .maintenance_interval(secs(1))
        .build()
        .unwrap();
    drop(get_many(&pool, 5).await);
    assert_eq!(pool.state().idle, 5);

    run_for(secs(9)).await;
    assert_eq!(pool.state().size, 5, "reaped before the idle timeout");
    run_for(secs(3)).await;
    let state = pool.state();
    assert_eq!((state.size, state.idle), (2, 2), "{state:?}");
    assert_eq!(state.totals.closed, 3);

    run_for(secs(120)).await;
    let state = pool.state();
    assert_eq!(
        (state.size, state.idle),
        (2, 2),
        "went below min_idle: {state:?}"
    );
    assert_eq!(
        state.totals.closed, 3,
        "min_idle connections were churned: {state:?}"
    );
    assert_eq!(state.totals.created, 5);
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn connections_kept_for_min_idle_are_served_after_the_idle_timeout() {
    let db = backend();
    let pool = builder(&db)
        .max_size(5)
        .min_idle(2)
        .idle_timeout(Some(secs(10)))
        .max_lifetime(None)
        .checkout_test(CheckoutTest::Never)
        .maintenance_interval(secs(1))
        .build()
        .unwrap();
    run_for(secs(2)).await;
    assert_eq!(pool.state().idle, 2);
    // The reaper keeps them (min_idle), so they should be the warm connections a get finds.
    run_for(secs(60)).await;
    let before = pool.state();
    let conn = bounded(secs(5), pool.get()).await.unwrap();
    let after = pool.state();
    assert_eq!(
        after.totals.closed, before.totals.closed,
        "kept connection discarded"
    );
    assert_eq!(
        after.totals.created, before.totals.created,
        "get had to connect"
    );
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_kept_filled_in_the_background() {
    let db = backend();
    let pool = builder(&db)
        .max_size(5)
        .min_idle(3)
        .maintenance_interval(secs(1))
        .build()
        .unwrap();
    assert_eq!(pool.state().size, 0, "build opens nothing by itself");
    // Each maintenance round opens at most max_connecting (2 by default).
    run_for(ms(2100)).await;
    let state = pool.state();
    assert_eq!((state.idle, state.size), (3, 3), "{state:?}");
    assert_eq!(state.totals.acquired, 0);

    // Break all three: they are discarded and replaced without any get asking.
    let mut conns = get_many(&pool, 3).await;
    let old: HashSet<u64> = conns.iter().map(|c| c.id()).collect();
    for c in &mut conns {
        c.break_connection();
    }
    drop(conns);
    assert_eq!(pool.state().totals.broken, 3);
    run_for(secs(2)).await;
    let state = pool.state();
    assert_eq!((state.idle, state.size), (3, 3), "{state:?}");
    let new: HashSet<u64> = get_many(&pool, 3).await.iter().map(|c| c.id()).collect();
    assert!(old.is_disjoint(&new));

    // A database that was down at the time is filled in once it is back.
    db.set_down(true);
    let down_pool = builder(&db)
        .max_size(5)
        .min_idle(2)
        .maintenance_interval(secs(1))
        .build()
        .unwrap();
    run_for(secs(10)).await;
    assert_eq!(down_pool.state().size, 0);
    assert!(down_pool.state().totals.connect_failures > 0);
    db.set_down(false);
    run_for(secs(10)).await;
    assert_eq!(down_pool.state().idle, 2);
}

// ---------------------------------------------------------------------------------------------
// Connect backoff and the connect-storm guard
// ---------------------------------------------------------------------------------------------

/// Most connect attempts one connect task can make in `window` if every retry waits at least
/// half its backoff step (the jitter's lower bound) and each attempt takes `latency`.
fn max_attempts_per_task(window: Duration, backoff: BackoffConfig, latency: Duration) -> u64 {
    let (mut spent, mut step, mut attempts) = (Duration::ZERO, backoff.initial, 0);
    while spent <= window {
        attempts += 1;
        spent += latency + step / 2;
        step = (step * 2).min(backoff.max);
    }
    attempts
}

#[tokio::test(start_paused = true)]
async fn connect_retries_back_off_while_the_database_is_down() {
    let db = backend();
    db.set_down(true);
    let backoff = BackoffConfig {
        initial: ms(100),
        max: secs(2),
    };
    let max_connecting = 2;
    let pool = builder(&db)
        .max_size(10)
        .max_connecting(max_connecting)
        .connect_backoff(backoff)
        .build()
        .unwrap();

    let window = secs(60);
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get_timeout(window).await })
        })
        .collect();
    run_for(window + ms(1)).await;
    for w in waiters {
        expect_timeout(w.await.unwrap());
    }
    let attempts = db.stats().connect_attempts;
    let bound = max_connecting as u64 * max_attempts_per_task(window, backoff, ms(1));
    assert!(
        attempts <= bound,
        "{attempts} connect attempts in {window:?}, bound {bound}"
    );
    assert!(attempts >= 20, "gave up retrying: only {attempts} attempts");
    // A tight loop at 1 ms per attempt would have made tens of thousands.
    assert!(attempts * 100 < window.as_millis() as u64);
    assert_eq!(pool.state().totals.connect_failures, attempts);

    // Nobody waits any more: retries stop after the pending backoff.
    run_for(backoff.max + ms(10)).await;
    let settled = db.stats().connect_attempts;
    run_for(secs(120)).await;
    assert_eq!(
        db.stats().connect_attempts,
        settled,
        "retries without anyone waiting"
    );
    assert_eq!(pool.state().connecting, 0);

    // Recovery: a waiter is served within one backoff step of the database coming back.
    let getter = tokio::spawn({
        let pool = pool.clone();
        async move {
            let start = Instant::now();
            let r = pool.get_timeout(secs(30)).await.map(|c| c.id());
            (r, start.elapsed())
        }
    });
    run_for(secs(10)).await;
    db.set_down(false);
    let (r, waited) = bounded(secs(60), getter).await.unwrap();
    r.unwrap();
    assert!(
        waited <= secs(10) + backoff.max + ms(2),
        "served after {waited:?}"
    );
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn at_most_max_connecting_connects_in_flight() {
    let db = backend();
    let latency = ms(100);
    db.set_connect_latency(latency);
    let max_connecting = 3;
    let pool = builder(&db)
        .max_size(50)
        .max_connecting(max_connecting)
        .build()
        .unwrap();
    let n = 30;
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get_timeout(secs(30)).await })
        })
        .collect();
    settle().await;
    assert_eq!(pool.state().waiters, n);
    assert_eq!(db.stats().connect_attempts, max_connecting as u64);

    let mut peak = 0;
    let start = Instant::now();
    while db.stats().connects < n as u64 {
        let s: SimStats = db.stats();
        let in_flight = s.connect_attempts - s.connects;
        peak = peak.max(in_flight);
        assert!(
            in_flight <= max_connecting as u64,
            "{in_flight} connects in flight"
        );
        assert!(pool.state().connecting <= max_connecting);
        assert!(start.elapsed() < secs(30), "connects never finished");
        run_for(ms(10)).await;
    }
    assert_eq!(peak, max_connecting as u64);
    let mut held = Vec::new();
    for t in tasks {
        held.push(t.await.unwrap().unwrap());
    }
    assert_eq!(pool.state().size, n);
    drop(held);
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn connects_follow_each_other_for_waiters_beyond_max_connecting() {
    let db = backend();
    let latency = ms(100);
    db.set_connect_latency(latency);
    let max_connecting = 3;
    let pool = builder(&db)
        .max_size(50)
        .max_connecting(max_connecting)
        .maintenance_interval(secs(1))
        .build()
        .unwrap();
    let n: usize = 30;
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let conn = pool.get_timeout(secs(60)).await;
                (conn, Instant::now())
            })
        })
        .collect();
    let mut last = start;
    let mut held = Vec::new();
    for t in tasks {
        let (conn, at) = bounded(secs(120), t).await.unwrap();
        held.push(conn.unwrap());
        last = last.max(at);
    }
    // Served in back-to-back batches of max_connecting, one connect latency each.
    let batches = n.div_ceil(max_connecting) as u32;
    assert!(
        last - start <= latency * batches + ms(10),
        "last waiter served after {:?}, expected about {:?}",
        last - start,
        latency * batches
    );
}

// ---------------------------------------------------------------------------------------------
// Checkout checks: ping, broken connections, session reset
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn checkout_ping_only_after_the_idle_threshold() {
    let db = backend();
    let threshold = secs(10);
    // A short maintenance interval keeps the pool's coarse clock within 100 ms of real time.
    let pool = builder(&db)
        .checkout_test(CheckoutTest::AfterIdle(threshold))
        .idle_timeout(None)
        .maintenance_interval(ms(100))
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    assert_eq!(db.stats().pings, 0, "a fresh connection is not pinged");

    // Returned and taken again at once: no ping.
    drop(pool.get().await.unwrap());
    // Idle for half the threshold: no ping.
    run_for(threshold / 2).await;
    drop(pool.get().await.unwrap());
    assert_eq!(db.stats().pings, 0);
    // Idle past the threshold (by more than the coarse clock's resolution): one ping.
    run_for(threshold + ms(500)).await;
    let conn = pool.get().await.unwrap();
    assert_eq!(db.stats().pings, 1);
    drop(conn);
    drop(pool.get().await.unwrap());
    assert_eq!(db.stats().pings, 1, "pinged although just returned");
}

#[tokio::test(start_paused = true)]
async fn checkout_test_always_and_never() {
    let db = backend();
    let always = builder(&db)
        .checkout_test(CheckoutTest::Always)
        .build()
        .unwrap();
    drop(always.get().await.unwrap());
    assert_eq!(
        db.stats().pings,
        0,
        "a connection fresh from connect is not pinged"
    );
    for expected in 1..=3 {
        drop(always.get().await.unwrap());
        assert_eq!(db.stats().pings, expected);
    }

    let db = backend();
    let never = builder(&db)
        .checkout_test(CheckoutTest::Never)
        .idle_timeout(None)
        .max_lifetime(None)
        .build()
        .unwrap();
    let id = never.get().await.unwrap().id();
    run_for(secs(3600)).await;
    assert_eq!(never.get().await.unwrap().id(), id);
    assert_eq!(db.stats().pings, 0);
}

#[tokio::test(start_paused = true)]
async fn failed_ping_discards_the_connection_and_the_get_gets_a_new_one() {
    let db = backend();
    let pool = builder(&db)
        .checkout_test(CheckoutTest::Always)
        .build()
        .unwrap();
    let old = pool.get().await.unwrap().id();
    // The ping hangs; meanwhile the server restarts, so the ping answers with an error.
    db.set_hang(true);
    let getter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get_timeout(secs(5)).await.map(|c| c.id()) }
    });
    run_for(ms(50)).await;
    db.set_down(true);
    db.set_down(false);
    db.set_hang(false);
    let new = bounded(secs(10), getter).await.unwrap().unwrap();
    assert_ne!(new, old);
    let state = pool.state();
    assert_eq!(state.totals.broken, 1);
    assert_eq!(state.totals.created, 2);
    assert_eq!(
        state.totals.acquired, 2,
        "the discarded checkout does not count"
    );
    assert_eq!(db.stats().pings, 0, "the only ping failed");
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn broken_connections_are_discarded_not_returned() {
    let db = backend();
    let pool = builder(&db).max_size(2).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    let old = conn.id();
    conn.break_connection();
    assert!(conn.query("SELECT 1").await.is_err());
    drop(conn);
    let state = pool.state();
    assert_eq!((state.size, state.idle, state.in_use), (0, 0, 0));
    assert_eq!(state.totals.broken, 1);
    assert_eq!(state.totals.closed, 1);
    assert_eq!(db.stats().open_connections, 0);
    let mut conn = pool.get().await.unwrap();
    assert_ne!(conn.id(), old);
    conn.query("SELECT 1").await.unwrap();
    drop(conn);

    // Idle connections cut by an outage are found broken at checkout and replaced.
    let before: HashSet<u64> = get_many(&pool, 2).await.iter().map(|c| c.id()).collect();
    db.set_down(true);
    db.set_down(false);
    let after: HashSet<u64> = get_many(&pool, 2).await.iter().map(|c| c.id()).collect();
    assert!(before.is_disjoint(&after));
    assert_eq!(pool.state().totals.broken, 3);
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn session_is_reset_on_return() {
    let db = backend();
    let pool = builder(&db).max_size(1).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    let id = conn.id();
    conn.set_session_state();
    drop(conn);
    // The reset runs in the background; the next borrower (queued meanwhile) gets a clean session.
    let conn = bounded(secs(5), pool.get()).await.unwrap();
    assert_eq!(conn.id(), id);
    assert!(!conn.has_session_state());
    assert_eq!(db.stats().resets, 1);
    drop(conn);
    // A clean session is not reset again.
    drop(pool.get().await.unwrap());
    assert_eq!(db.stats().resets, 1);
}

#[tokio::test(start_paused = true)]
async fn release_resets_in_the_caller_and_returns_at_once() {
    let db = backend();
    let pool = builder(&db).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.set_session_state();
    conn.release().await.unwrap();
    assert_eq!(db.stats().resets, 1);
    let state = pool.state();
    assert_eq!(
        (state.idle, state.in_use),
        (1, 0),
        "returned before release() finished"
    );
    assert!(!pool.get().await.unwrap().has_session_state());

    // A broken connection is closed by release, not returned.
    let mut conn = pool.get().await.unwrap();
    conn.break_connection();
    conn.release().await.unwrap();
    let state = pool.state();
    assert_eq!((state.size, state.totals.broken), (0, 1));

    // Down: the connection is broken, so release closes it without trying a reset.
    let mut conn = pool.get().await.unwrap();
    conn.set_session_state();
    db.set_down(true);
    conn.release().await.unwrap();
    assert_eq!(pool.state().size, 0);
    assert_eq!(db.stats().open_connections, 0);
    assert_eq!(db.stats().resets, 1);
}

/// A driver over the simulator whose session reset can be made slow or failing, to reach the
/// reset paths the simulator itself cannot (its reset only fails on a connection already
/// known to be broken).
struct TunableReset {
    sim: seawall::sim::SimConnector,
    fail: std::sync::atomic::AtomicBool,
    delay: parking_lot::Mutex<Duration>,
}

#[derive(Debug)]
struct ResetRefused;
impl std::fmt::Display for ResetRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reset refused")
    }
}
impl std::error::Error for ResetRefused {}

#[derive(Debug)]
enum TunableError {
    Sim(SimError),
    Reset(ResetRefused),
}
impl std::fmt::Display for TunableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunableError::Sim(e) => e.fmt(f),
            TunableError::Reset(e) => e.fmt(f),
        }
    }
}
impl std::error::Error for TunableError {}

#[async_trait::async_trait]
impl seawall::Connector for TunableReset {
    type Connection = seawall::sim::SimConnection;
    type Error = TunableError;

    async fn connect(&self) -> Result<Self::Connection, TunableError> {
        self.sim.connect().await.map_err(TunableError::Sim)
    }
    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        self.sim.has_broken(conn)
    }
    fn needs_reset(&self, conn: &Self::Connection) -> bool {
        self.sim.needs_reset(conn)
    }
    async fn reset(&self, conn: &mut Self::Connection) -> Result<(), TunableError> {
        let delay = *self.delay.lock();
        tokio::time::sleep(delay).await;
        if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(TunableError::Reset(ResetRefused));
        }
        self.sim.reset(conn).await.map_err(TunableError::Sim)
    }
}

fn tunable_pool(db: &std::sync::Arc<seawall::sim::SimBackend>) -> Pool<TunableReset> {
    Pool::builder(TunableReset {
        sim: db.connector(),
        fail: Default::default(),
        delay: parking_lot::Mutex::new(Duration::ZERO),
    })
    .name("tunable")
    .reset_timeout(secs(1))
    .build()
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn failed_or_slow_reset_closes_the_connection() {
    use std::sync::atomic::Ordering::Relaxed;
    let db = backend();
    let pool = tunable_pool(&db);

    // release() reports the driver's reset error and closes the connection.
    pool.connector().fail.store(true, Relaxed);
    let mut conn = pool.get().await.unwrap();
    conn.set_session_state();
    match conn.release().await {
        Err(Error::Driver { error: e, .. }) => {
            assert!(e.downcast_ref::<TunableError>().is_some(), "{e:?}")
        }
        other => panic!("expected a driver error, got {other:?}"),
    }
    let state = pool.state();
    assert_eq!((state.size, state.totals.broken), (0, 1));
    assert_eq!(db.stats().open_connections, 0);

    // On drop the reset runs in the background; failing, it closes the connection too.
    let mut conn = pool.get().await.unwrap();
    conn.set_session_state();
    drop(conn);
    run_for(ms(10)).await;
    let state = pool.state();
    assert_eq!((state.size, state.totals.broken), (0, 2));

    // A reset slower than reset_timeout is given up at the timeout.
    pool.connector().fail.store(false, Relaxed);
    *pool.connector().delay.lock() = secs(60);
    let mut conn = pool.get().await.unwrap();
    conn.set_session_state();
    let start = Instant::now();
    let err = bounded(secs(10), conn.release()).await.unwrap_err();
    assert_eq!(start.elapsed(), secs(1));
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(pool.state().size, 0);
    assert_eq!(db.stats().open_connections, 0);
}

#[tokio::test(start_paused = true)]
async fn cancelled_release_leaks_nothing() {
    let db = backend();
    let pool = tunable_pool(&db);
    *pool.connector().delay.lock() = ms(500);
    let mut conn = pool.get().await.unwrap();
    conn.set_session_state();
    // The caller gives up on release() halfway through the reset.
    assert!(tokio::time::timeout(ms(100), conn.release()).await.is_err());
    run_for(secs(2)).await;
    let state = pool.state();
    assert_eq!(state.in_use, 0, "{state:?}");
    assert_eq!(db.stats().open_connections, state.size, "{state:?}");
}

#[tokio::test(start_paused = true)]
async fn discard_closes_and_detach_hands_the_connection_over() {
    let db = backend();
    let pool = builder(&db).build().unwrap();
    let conn = pool.get().await.unwrap();
    let id = conn.id();
    conn.discard();
    let state = pool.state();
    assert_eq!(
        (state.size, state.totals.broken, state.totals.closed),
        (0, 1, 1)
    );
    assert_eq!(db.stats().open_connections, 0);
    assert_ne!(pool.get().await.unwrap().id(), id);

    let conn = pool.get().await.unwrap();
    let raw = conn.detach();
    let state = pool.state();
    assert_eq!((state.size, state.idle, state.in_use), (0, 0, 0));
    assert_eq!(
        state.totals.closed, 1,
        "a detached connection is not closed by the pool"
    );
    assert_eq!(db.stats().open_connections, 1, "the caller owns it now");
    drop(raw);
    assert_eq!(db.stats().open_connections, 0);
}

#[tokio::test(start_paused = true)]
async fn detach_lets_a_queued_waiter_connect() {
    let db = backend();
    let pool = builder(&db)
        .max_size(1)
        .maintenance_interval(secs(60))
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get_timeout(secs(1)).await.map(|c| c.id()) }
    });
    settle().await;
    let raw = held.detach();
    let id = bounded(secs(5), waiter)
        .await
        .unwrap()
        .expect("the slot freed by detach should be refilled for the waiter");
    assert_ne!(id, raw.id());
}

// ---------------------------------------------------------------------------------------------
// Fairness
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_the_order_they_queued() {
    let db = backend();
    let pool = builder(&db).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let order = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let n = 10;
    let mut tasks = Vec::new();
    for i in 0..n {
        let (pool2, order) = (pool.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let pool = pool2;
            let mut conn = pool.get_timeout(secs(60)).await.unwrap();
            order.lock().push(i);
            conn.query("SELECT 1").await.unwrap();
        }));
        // Let it queue before the next one starts.
        settle().await;
        assert_eq!(pool.state().waiters, i + 1);
    }
    drop(held);
    for t in tasks {
        bounded(secs(60), t).await.unwrap();
    }
    assert_eq!(*order.lock(), (0..n).collect::<Vec<_>>());
    assert_eq!(
        pool.state().totals.created,
        1,
        "all served by the same connection"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiter_is_not_starved_by_tasks_cycling_connections() {
    let db = backend();
    let hold = ms(1); // the simulator's default query time
    let max_size = 2;
    let pool = builder(&db).max_size(max_size).build().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fast = 10;
    let mut loops = Vec::new();
    for _ in 0..fast {
        let (pool, stop) = (pool.clone(), stop.clone());
        loops.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut conn = pool.get_timeout(secs(60)).await.unwrap();
                conn.query("SELECT 1").await.unwrap();
                n += 1;
            }
            n
        }));
    }
    run_for(ms(100)).await;
    // The slow task asks once while the fast ones keep cycling.
    let start = Instant::now();
    let conn = bounded(secs(10), pool.get_timeout(secs(60))).await.unwrap();
    let waited = start.elapsed();
    drop(conn);
    // FIFO hand-off: at most every fast task is ahead of it, each holding for one query.
    let bound = hold * (fast as u32 / max_size as u32 + 1) + ms(2);
    assert!(waited <= bound, "waited {waited:?}, bound {bound:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for l in loops {
        let n = bounded(secs(10), l).await.unwrap();
        assert!(n > 0, "a fast task starved");
        total += n;
    }
    assert!(total >= 100, "only {total} cycles");
    assert_quiescent(&pool, &db);
}

// ---------------------------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn get_cancelled_by_timeout_leaks_nothing() {
    let db = backend();
    let pool = builder(&db).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    for _ in 0..5 {
        assert!(tokio::time::timeout(ms(100), pool.get()).await.is_err());
        let state = pool.state();
        assert_eq!(
            (state.waiters, state.in_use, state.size),
            (0, 1, 1),
            "{state:?}"
        );
    }
    drop(held);
    let state = pool.state();
    assert_eq!((state.idle, state.in_use), (1, 0));
    assert_eq!(
        state.totals.timed_out, 0,
        "a cancelled get is not a pool timeout"
    );
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn get_dropped_while_pending_leaks_nothing() {
    let db = backend();
    let pool = builder(&db).max_size(2).build().unwrap();
    let held = get_many(&pool, 2).await;
    {
        let fut = pool.get();
        tokio::pin!(fut);
        assert!(poll_once(fut.as_mut()).await.is_pending());
        assert_eq!(pool.state().waiters, 1);
    }
    assert_eq!(pool.state().waiters, 0);
    // Pending on a connect rather than on a return: the connect's result is kept, not lost.
    drop(held);
    pool.set_max_size(3).unwrap();
    let held = get_many(&pool, 2).await;
    {
        let fut = pool.get();
        tokio::pin!(fut);
        assert!(poll_once(fut.as_mut()).await.is_pending());
        assert_eq!(pool.state().connecting, 1);
    }
    run_for(ms(10)).await;
    let state = pool.state();
    assert_eq!(
        (state.size, state.idle, state.waiters),
        (3, 1, 0),
        "{state:?}"
    );
    drop(held);
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn get_losing_a_select_leaks_nothing() {
    let db = backend();
    let pool = builder(&db).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let lost = tokio::select! {
        c = pool.get() => Some(c),
        _ = tokio::time::sleep(ms(50)) => None,
    };
    assert!(lost.is_none());
    assert_eq!(pool.state().waiters, 0);
    let id = held.id();
    drop(held);
    // The next get finds the connection idle: nothing was reserved for the loser.
    assert_eq!(pool.get().await.unwrap().id(), id);
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn connection_handed_to_a_cancelled_waiter_goes_to_the_next() {
    let db = backend();
    let pool = builder(&db).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let id = held.id();

    // First in line: polled once, so it is queued, then never polled again.
    let first = pool.get();
    let mut first = Box::pin(first);
    assert!(poll_once(first.as_mut()).await.is_pending());
    // Second in line: a task that waits for real.
    let second = tokio::spawn({
        let pool = pool.clone();
        async move {
            let start = Instant::now();
            let r = pool.get_timeout(secs(5)).await.map(|c| c.id());
            (r, start.elapsed())
        }
    });
    settle().await;
    assert_eq!(pool.state().waiters, 2);

    // The connection goes to the first waiter... which is dropped before it takes it.
    drop(held);
    assert_eq!(pool.state().waiters, 1);
    drop(first);
    let (r, waited) = bounded(secs(10), second).await.unwrap();
    assert_eq!(
        r.expect("the second waiter must be served, not time out"),
        id
    );
    assert!(waited < secs(1), "{waited:?}");
    let state = pool.state();
    assert_eq!(state.totals.acquired, 2, "{state:?}");
    assert_eq!(state.totals.timed_out, 0);
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn get_cancelled_during_its_checkout_ping_leaks_nothing() {
    let db = backend();
    let pool = builder(&db)
        .max_size(1)
        .checkout_test(CheckoutTest::Always)
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    db.set_hang(true);
    // The ping hangs; the caller gives up before the pool's deadline.
    assert!(tokio::time::timeout(ms(100), pool.get()).await.is_err());
    db.set_hang(false);
    let state = pool.state();
    assert_eq!(state.in_use, 0, "{state:?}");
    assert_eq!(db.stats().open_connections, state.size, "{state:?}");
    // With max_size 1 a lost slot would make every later get time out.
    bounded(secs(5), pool.get_timeout(secs(1))).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn get_retrying_after_a_failed_check_keeps_its_deadline() {
    let db = backend();
    let pool = builder(&db).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move {
            let start = Instant::now();
            let r = pool.get_timeout(secs(1)).await.map(|c| c.id());
            (r, start.elapsed())
        }
    });
    run_for(ms(900)).await;
    // The connection is handed to the waiter and breaks (an outage) before the waiter runs:
    // its checkout finds it broken, discards it and waits on, with the database down.
    drop(held);
    db.set_down(true);
    let (r, elapsed) = bounded(secs(10), waiter).await.unwrap();
    let err = expect_timeout(r);
    assert_eq!(elapsed, secs(1), "waited past its deadline");
    assert_eq!(err.waited, secs(1));
}

#[tokio::test(start_paused = true)]
async fn huge_timeouts_do_not_panic() {
    let db = backend();
    let pool = builder(&db)
        .max_size(1)
        .acquire_timeout(Duration::MAX)
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    let waiters: Vec<_> = [
        tokio::spawn({
            let pool = pool.clone();
            async move { pool.get_timeout(Duration::MAX).await.map(drop) }
        }),
        tokio::spawn({
            let pool = pool.clone();
            async move { pool.get().await.map(drop) }
        }),
    ]
    .into();
    settle().await;
    drop(held);
    for w in waiters {
        bounded(secs(5), w)
            .await
            .expect("get panicked")
            .expect("served");
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime resize
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn growing_lets_waiters_connect_at_once() {
    let db = backend();
    let pool = builder(&db)
        .max_size(1)
        .max_connecting(4)
        .maintenance_interval(secs(60))
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let c = pool.get_timeout(secs(10)).await.unwrap();
                (c, start.elapsed())
            })
        })
        .collect();
    run_for(ms(100)).await;
    assert_eq!(pool.state().waiters, 3);
    assert_eq!(pool.state().connecting, 0, "no room to connect yet");

    pool.set_max_size(4).unwrap();
    assert_eq!(pool.state().max_size, 4);
    let mut conns = vec![held];
    for w in waiters {
        let (c, waited) = bounded(secs(20), w).await.unwrap();
        // 100 ms queued before the resize, then one connect (1 ms).
        assert!(waited <= ms(102), "served {waited:?} after queueing");
        conns.push(c);
    }
    assert_eq!(pool.state().size, 4);
    drop(conns);
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn shrinking_closes_idle_now_and_in_use_on_return() {
    let db = backend();
    let pool = builder(&db).max_size(6).max_connecting(6).build().unwrap();
    let mut conns = get_many(&pool, 6).await;
    let idle = conns.split_off(3);
    drop(idle);
    assert_eq!((pool.state().size, pool.state().idle), (6, 3));

    pool.set_max_size(2).unwrap();
    let state = pool.state();
    assert_eq!(
        (state.max_size, state.size, state.idle, state.in_use),
        (2, 3, 0, 3)
    );
    assert_eq!(db.stats().open_connections, 3, "idle ones closed at once");

    // Returned connections close until the pool fits.
    conns.pop();
    assert_eq!((pool.state().size, pool.state().idle), (2, 0));
    conns.pop();
    assert_eq!((pool.state().size, pool.state().idle), (2, 1));
    conns.pop();
    assert_eq!((pool.state().size, pool.state().idle), (2, 2));
    assert_eq!(pool.state().totals.closed, 4);
    // And the smaller pool is enforced: a third get waits.
    let _a = pool.get().await.unwrap();
    let _b = pool.get().await.unwrap();
    let err = expect_timeout(pool.get_timeout(ms(100)).await);
    assert!(
        matches!(err.cause, WaitCause::Saturated { max_size: 2, .. }),
        "{:?}",
        err.cause
    );
    drop((_a, _b));
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn bad_sizes_are_rejected_with_config_errors() {
    let db = backend();
    let pool = builder(&db).max_size(4).min_idle(2).build().unwrap();
    let err = pool.set_max_size(0).unwrap_err();
    assert_eq!(err.field, "max_size");
    let err = pool.set_max_size(1).unwrap_err();
    assert_eq!(err.field, "max_size");
    assert!(err.reason.contains("min_idle"), "{}", err.reason);
    assert_eq!(
        pool.state().max_size,
        4,
        "a rejected resize changes nothing"
    );
    pool.set_max_size(2).unwrap();
    assert_eq!(pool.state().max_size, 2);
}

// ---------------------------------------------------------------------------------------------
// close()
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn close_fails_new_and_waiting_gets_and_closes_returned_connections() {
    let db = backend();
    let pool = builder(&db).max_size(3).max_connecting(3).build().unwrap();
    let conns = get_many(&pool, 2).await;
    let third = pool.get().await.unwrap();
    let blocked = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get_timeout(secs(30)).await.map(drop) }
    });
    settle().await;
    assert_eq!((pool.state().waiters, pool.state().in_use), (1, 3));

    let closing = tokio::spawn({
        let pool = pool.clone();
        async move { pool.close().await }
    });
    settle().await;
    assert!(pool.is_closed());
    match bounded(secs(5), blocked).await.unwrap() {
        Err(Error::Closed { pool: name }) => assert_eq!(&*name, "test"),
        other => panic!("a waiting get should fail with Closed, got {other:?}"),
    }
    match pool.get().await {
        Err(Error::Closed { .. }) => {}
        other => panic!("a new get should fail with Closed, got {other:?}"),
    }
    // Return one: it is closed, not made idle.
    drop(third);
    let state = pool.state();
    assert!(state.closed);
    assert_eq!(
        (state.size, state.idle, state.waiters),
        (2, 0, 0),
        "{state:?}"
    );
    assert_eq!(db.stats().open_connections, 2);
    drop(conns);
    bounded(secs(5), closing).await.unwrap();
    assert_eq!(pool.state().size, 0);
    assert_eq!(db.stats().open_connections, 0);
}

#[tokio::test(start_paused = true)]
async fn close_closes_idle_connections_at_once() {
    let db = backend();
    let pool = builder(&db).max_size(3).max_connecting(3).build().unwrap();
    drop(get_many(&pool, 3).await);
    assert_eq!(pool.state().idle, 3);
    let start = Instant::now();
    bounded(secs(5), pool.close()).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    let state = pool.state();
    assert_eq!((state.size, state.idle, state.totals.closed), (0, 0, 3));
    assert_eq!(db.stats().open_connections, 0);
}

#[tokio::test(start_paused = true)]
async fn close_completes_only_once_every_connection_is_returned() {
    let db = backend();
    let pool = builder(&db).max_size(4).max_connecting(4).build().unwrap();
    let mut conns = get_many(&pool, 4).await;
    drop(conns.pop());
    let closing = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.close().await;
            Instant::now()
        }
    });
    run_for(secs(1)).await;
    assert!(
        !closing.is_finished(),
        "close finished with connections checked out"
    );
    assert_eq!(db.stats().open_connections, 3);
    drop(conns.pop());
    drop(conns.pop());
    run_for(secs(1)).await;
    assert!(!closing.is_finished());
    assert_eq!(db.stats().open_connections, 1);
    let last = conns.pop().unwrap();
    run_for(secs(1)).await;
    let returned_at = Instant::now();
    drop(last);
    let finished_at = bounded(secs(5), closing).await.unwrap();
    assert_eq!(finished_at, returned_at, "close finished late");
    assert_eq!(db.stats().open_connections, 0);
    let state = pool.state();
    assert_eq!((state.size, state.totals.closed), (0, 4));
    // Closing again returns at once.
    bounded(ms(1), pool.close()).await;
}

#[tokio::test(start_paused = true)]
async fn close_waits_for_connects_in_flight() {
    let db = backend();
    db.set_connect_latency(secs(2));
    let pool = builder(&db).build().unwrap();
    let getter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    settle().await;
    assert_eq!(pool.state().connecting, 1);
    let start = Instant::now();
    bounded(secs(10), pool.close()).await;
    assert_eq!(
        start.elapsed(),
        secs(2),
        "close returned before the connect finished"
    );
    assert!(matches!(getter.await.unwrap(), Err(Error::Closed { .. })));
    assert_eq!(
        db.stats().open_connections,
        0,
        "the late connection was closed"
    );
}

// ---------------------------------------------------------------------------------------------
// state()
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn state_snapshot_follows_a_scripted_scenario() {
    let db = backend();
    let connect = ms(10);
    db.set_connect_latency(connect);
    let pool = builder(&db)
        .name("scripted")
        .max_size(2)
        .max_connecting(2)
        .build()
        .unwrap();
    let s = pool.state();
    assert_eq!(&*s.name, "scripted");
    assert_eq!(
        (
            s.size,
            s.idle,
            s.in_use,
            s.waiters,
            s.connecting,
            s.max_size
        ),
        (0, 0, 0, 0, 0, 2)
    );
    assert!(!s.closed);
    assert_eq!(s.totals, Default::default());
    assert_eq!(s.acquire_wait.count, 0);

    // Two gets at once: both wait for a connect (10 ms, in parallel).
    let pending: Vec<_> = (0..2)
        .map(|_| {
            let p = pool.clone();
            tokio::spawn(async move { p.get().await.unwrap() })
        })
        .collect();
    settle().await;
    let s = pool.state();
    assert_eq!((s.waiters, s.connecting, s.size), (2, 2, 0), "{s:?}");
    let mut held = Vec::new();
    for t in pending {
        held.push(bounded(secs(5), t).await.unwrap());
    }
    let (a, mut b) = (held.remove(0), held.remove(0));
    let s = pool.state();
    assert_eq!(
        (s.size, s.idle, s.in_use, s.waiters, s.connecting),
        (2, 0, 2, 0, 0),
        "{s:?}"
    );

    // A third get at max size waits and times out.
    let timed_out = tokio::spawn({
        let p = pool.clone();
        async move { p.get_timeout(ms(50)).await.map(drop) }
    });
    settle().await;
    let s = pool.state();
    assert_eq!((s.waiters, s.in_use, s.connecting), (1, 2, 0), "{s:?}");
    expect_timeout(bounded(secs(5), timed_out).await.unwrap());

    // Return a and take it again at once; break b.
    drop(a);
    assert_eq!(pool.state().idle, 1);
    let d = pool.get().await.unwrap();
    b.break_connection();
    drop(b);
    assert_eq!(pool.state().size, 1);

    // The database goes down: a get waits on failing connects and times out, and the
    // connection d holds breaks.
    db.set_down(true);
    expect_timeout(pool.get_timeout(ms(500)).await);
    run_for(secs(10)).await; // let the connect task give up
    drop(d);

    let s = pool.state();
    let sim = db.stats();
    assert_eq!(
        (s.size, s.idle, s.in_use, s.waiters, s.connecting),
        (0, 0, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.totals.acquired, 3, "a, b and d");
    assert_eq!(s.totals.waited, 2, "a and b waited; d was served at once");
    assert_eq!(s.totals.timed_out, 2);
    assert_eq!(s.totals.broken, 2, "b, and d (cut by the outage) on return");
    assert_eq!(s.totals.created, 2);
    assert_eq!(s.totals.closed, 2);
    assert_eq!(
        s.totals.connect_failures,
        sim.connect_attempts - sim.connects
    );
    assert!(s.totals.connect_failures >= 1);
    // Waits: a and b one connect each, d none.
    let w = s.acquire_wait;
    assert_eq!(w.count, 3);
    assert_eq!(w.max, connect);
    // The mean comes from bucket midpoints: within 12.5% of the true mean.
    let true_mean = Duration::from_micros(2 * connect.as_micros() as u64 / 3);
    assert!(
        w.mean >= true_mean.mul_f64(0.875) && w.mean <= true_mean.mul_f64(1.125),
        "{w:?}"
    );
    // Quantiles are bucket bounds, within 12.5% above the true value.
    assert!(w.p50 >= connect && w.p50 <= connect.mul_f64(1.125), "{w:?}");
    assert!(w.p99 >= connect && w.p99 <= connect.mul_f64(1.125), "{w:?}");
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_configuration_fails_in_build_naming_the_field() {
    type Tweak = fn(
        seawall::pool::Builder<seawall::sim::SimConnector>,
    ) -> seawall::pool::Builder<seawall::sim::SimConnector>;
    let cases: Vec<(&str, Tweak)> = vec![
        ("max_size", |b| b.max_size(0)),
        ("min_idle", |b| b.max_size(2).min_idle(3)),
        ("acquire_timeout", |b| b.acquire_timeout(Duration::ZERO)),
        ("connect_timeout", |b| b.connect_timeout(Duration::ZERO)),
        ("reset_timeout", |b| b.reset_timeout(Duration::ZERO)),
        ("maintenance_interval", |b| {
            b.maintenance_interval(Duration::ZERO)
        }),
        ("max_lifetime", |b| b.max_lifetime(Some(Duration::ZERO))),
        ("idle_timeout", |b| b.idle_timeout(Some(Duration::ZERO))),
        ("max_connecting", |b| b.max_connecting(0)),
        ("lifetime_jitter", |b| b.lifetime_jitter(1.0)),
        ("lifetime_jitter", |b| b.lifetime_jitter(-0.1)),
        ("lifetime_jitter", |b| b.lifetime_jitter(f64::NAN)),
        ("backoff.initial", |b| {
            b.connect_backoff(BackoffConfig {
                initial: Duration::ZERO,
                max: secs(1),
            })
        }),
        ("backoff.max", |b| {
            b.connect_backoff(BackoffConfig {
                initial: secs(2),
                max: secs(1),
            })
        }),
        ("name", |b| b.name("")),
    ];
    let db = backend();
    for (field, tweak) in cases {
        // Outside any runtime: build validates without needing one.
        let err = tweak(builder(&db)).build().unwrap_err();
        assert_eq!(err.field, field, "{err}");
        assert!(!err.reason.is_empty());
        assert!(err.to_string().contains(field), "{err}");
        // And it converts into the crate's error.
        assert!(matches!(Error::from(err), Error::Config(_)));
    }
    // The edges that are allowed.
    builder(&db)
        .max_size(1)
        .min_idle(1)
        .max_connecting(1)
        .lifetime_jitter(0.0)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_backoff(BackoffConfig {
            initial: secs(1),
            max: secs(1),
        })
        .build()
        .unwrap();
    builder(&db).lifetime_jitter(0.999).build().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Metrics and tracing
// ---------------------------------------------------------------------------------------------

#[test]
fn metrics_are_reported_with_the_pool_name() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let db = backend();
    metrics::with_local_recorder(&recorder, || {
        paused_runtime().block_on(async {
            let pool = builder(&db).name("metered").max_size(1).build().unwrap();
            let held = pool.get().await.unwrap();
            expect_timeout(pool.get_timeout(ms(10)).await);
            expect_timeout(pool.get_timeout(ms(10)).await);
            drop(held);
            drop(pool.get().await.unwrap());
            // A second pool keeps its own series.
            let other = builder(&db).name("other").build().unwrap();
            drop(other.get().await.unwrap());
        })
    });
    let counters: Vec<(String, String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let pool = key
                .labels()
                .find(|l| l.key() == "node")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            match value {
                DebugValue::Counter(n) => Some((key.name().to_owned(), pool, n)),
                _ => None,
            }
        })
        .collect();
    let get = |name: &str, pool: &str| {
        counters
            .iter()
            .find(|(n, p, _)| n == name && p == pool)
            .map(|c| c.2)
            .unwrap_or_else(|| panic!("no {name}{{pool={pool}}} in {counters:?}"))
    };
    assert_eq!(get("seawall_pool_acquired_total", "metered"), 2);
    assert_eq!(get("seawall_pool_timeouts_total", "metered"), 2);
    assert_eq!(get("seawall_pool_connects_total", "metered"), 1);
    assert_eq!(get("seawall_pool_acquired_total", "other"), 1);
    assert_eq!(get("seawall_pool_timeouts_total", "other"), 0);
    assert_eq!(get("seawall_pool_connects_total", "other"), 1);
}

// ---------------------------------------------------------------------------------------------
// Stale connections after an outage
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn purge_idle_closes_every_idle_connection_and_new_ones_open_on_demand() {
    let db = backend();
    let pool = builder(&db).max_size(4).build().unwrap();
    let held: Vec<_> = futures_all(&pool, 3).await;
    let kept = pool.get().await.unwrap();
    let first_ids: HashSet<u64> = held.iter().map(|c| c.id()).collect();
    drop(held);
    assert_eq!(pool.state().idle, 3);

    pool.purge_idle();
    let state = pool.state();
    assert_eq!(
        (state.idle, state.size, state.in_use),
        (0, 1, 1),
        "{state:?}"
    );
    assert_eq!(state.totals.closed, 3);
    assert_eq!(
        db.stats().open_connections,
        1,
        "the purged connections are closed"
    );

    // The next borrower gets a new connection, not one of the purged ones.
    let fresh = bounded(secs(5), pool.get()).await.unwrap();
    assert!(!first_ids.contains(&fresh.id()));
    drop((fresh, kept));
    assert_quiescent(&pool, &db);
}

#[tokio::test(start_paused = true)]
async fn a_connection_marked_broken_is_closed_on_return() {
    let db = backend();
    let pool = builder(&db).max_size(2).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    let id = conn.id();
    conn.mark_broken();
    drop(conn);
    let state = pool.state();
    assert_eq!((state.size, state.idle), (0, 0), "{state:?}");
    assert_eq!(state.totals.broken, 1);
    assert_eq!(db.stats().open_connections, 0);
    let next = bounded(secs(5), pool.get()).await.unwrap();
    assert_ne!(next.id(), id);
}

async fn futures_all(
    pool: &Pool<seawall::sim::SimConnector>,
    n: usize,
) -> Vec<seawall::Pooled<seawall::sim::SimConnector>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(bounded(secs(5), pool.get()).await.unwrap());
    }
    held
}
