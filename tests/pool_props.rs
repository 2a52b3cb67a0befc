//! Property test of the node pool: random interleavings of gets (with random per-call
//! timeouts), returns, cancelled gets, broken and dirty connections, outages, resizes and the
//! passage of time, each case on its own paused current-thread runtime.
//!
//! After every case, once everything is released and time has run on, the pool must have
//! leaked nothing, and while it ran no get may have outlived its deadline: a get that failed
//! with a timeout failed exactly at its deadline (the clock is paused, so "exactly" is exact),
//! and a get that succeeded did so by its deadline.

mod common;

use std::time::Duration;

use proptest::prelude::*;
use seawall::backoff::BackoffConfig;
use seawall::pool::{CheckoutTest, Pool, Pooled};
use seawall::sim::{SimBackend, SimConnector};
use seawall::Error;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use common::{ms, run_for, secs};

const MAX_TIMEOUT_MS: u64 = 400;

#[derive(Debug, Clone)]
enum Op {
    /// Start a get with this per-call timeout, in its own task.
    Get(u64),
    /// Return a held connection (index modulo the number held).
    Return(usize),
    /// Cancel a pending get (drops its future).
    Cancel(usize),
    /// Break a held connection.
    Break(usize),
    /// Leave session state on a held connection.
    Dirty(usize),
    /// Take the database down (connects fail, open connections break) or bring it back.
    Down(bool),
    /// Change the pool's max size.
    Resize(usize),
    /// Let this many milliseconds of simulated time pass.
    Wait(u64),
    /// Let the other tasks run without moving the clock.
    Yield,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..=MAX_TIMEOUT_MS).prop_map(Op::Get),
        4 => any::<usize>().prop_map(Op::Return),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => any::<usize>().prop_map(Op::Break),
        1 => any::<usize>().prop_map(Op::Dirty),
        1 => any::<bool>().prop_map(Op::Down),
        1 => (1..=5usize).prop_map(Op::Resize),
        4 => (0..=300u64).prop_map(Op::Wait),
        2 => Just(Op::Yield),
    ]
}

/// How a get ended: its result, its timeout, and how long it took.
struct Outcome {
    result: Result<Pooled<SimConnector>, Error>,
    timeout: Duration,
    took: Duration,
}

/// What the deadline check found over a case.
#[derive(Debug, Default)]
struct Deadlines {
    timed_out: usize,
    succeeded: usize,
    /// Gets that failed with a timeout before or after their deadline: (timeout, took).
    off: Vec<(Duration, Duration)>,
    /// Gets that succeeded after their deadline: (timeout, took).
    late: Vec<(Duration, Duration)>,
}

impl Deadlines {
    fn check(&mut self, outcome: Outcome, held: &mut Vec<Pooled<SimConnector>>) {
        match outcome.result {
            Ok(conn) => {
                self.succeeded += 1;
                if outcome.took > outcome.timeout {
                    self.late.push((outcome.timeout, outcome.took));
                }
                held.push(conn);
            }
            Err(Error::Timeout(e)) => {
                self.timed_out += 1;
                assert_eq!(e.timeout, outcome.timeout, "timeout reported wrongly");
                if outcome.took != outcome.timeout {
                    self.off.push((outcome.timeout, outcome.took));
                }
            }
            Err(other) => panic!("unexpected error from get: {other:?}"),
        }
    }
}

/// Moves the gets that finished from `pending` into `held`, checking their deadlines.
async fn collect(
    pending: &mut Vec<JoinHandle<Outcome>>,
    held: &mut Vec<Pooled<SimConnector>>,
    deadlines: &mut Deadlines,
) {
    let mut i = 0;
    while i < pending.len() {
        if pending[i].is_finished() {
            match pending.swap_remove(i).await {
                Ok(outcome) => deadlines.check(outcome, held),
                Err(e) if e.is_cancelled() => {}
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        } else {
            i += 1;
        }
    }
}

/// Runs one case. With `react`, the pool's tasks run after every op (a woken waiter takes
/// its connection before the next op); without it they run only on `Yield` and `Wait`, so ops
/// can land between a hand-off and the waiter taking it.
fn run_case(ops: Vec<Op>, react: bool) -> Deadlines {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let db = SimBackend::builder("prop").build();
        db.set_connect_latency(ms(5));
        let min_idle = 1;
        let pool: Pool<SimConnector> = Pool::builder(db.connector())
            .name("prop")
            .seed(11)
            .max_size(3)
            .min_idle(min_idle)
            .max_connecting(2)
            .max_lifetime(Some(secs(2)))
            .lifetime_jitter(0.5)
            .idle_timeout(Some(secs(1)))
            .checkout_test(CheckoutTest::AfterIdle(ms(500)))
            .maintenance_interval(ms(100))
            .connect_backoff(BackoffConfig {
                initial: ms(10),
                max: ms(200),
            })
            .build()
            .unwrap();

        let mut pending: Vec<JoinHandle<Outcome>> = Vec::new();
        let mut held: Vec<Pooled<SimConnector>> = Vec::new();
        let mut deadlines = Deadlines::default();
        for op in ops {
            match op {
                Op::Get(timeout_ms) => {
                    let pool = pool.clone();
                    let timeout = ms(timeout_ms);
                    pending.push(tokio::spawn(async move {
                        let start = Instant::now();
                        let result = pool.get_timeout(timeout).await;
                        Outcome {
                            result,
                            timeout,
                            took: start.elapsed(),
                        }
                    }));
                }
                Op::Return(i) if !held.is_empty() => drop(held.swap_remove(i % held.len())),
                Op::Cancel(i) if !pending.is_empty() => pending[i % pending.len()].abort(),
                Op::Break(i) if !held.is_empty() => {
                    let n = held.len();
                    held[i % n].break_connection();
                }
                Op::Dirty(i) if !held.is_empty() => {
                    let n = held.len();
                    held[i % n].set_session_state();
                }
                Op::Down(down) => db.set_down(down),
                Op::Resize(n) => {
                    let result = pool.set_max_size(n);
                    assert_eq!(result.is_ok(), n >= min_idle, "resize to {n}: {result:?}");
                }
                Op::Wait(t) => run_for(ms(t)).await,
                Op::Yield => tokio::task::yield_now().await,
                _ => {}
            }
            if react {
                tokio::task::yield_now().await;
            }
            collect(&mut pending, &mut held, &mut deadlines).await;
        }

        // Release everything and let time run: every get ends by its deadline.
        db.set_down(false);
        held.clear();
        run_for(ms(MAX_TIMEOUT_MS + 1)).await;
        collect(&mut pending, &mut held, &mut deadlines).await;
        assert!(
            pending.is_empty(),
            "{} gets still pending past every deadline",
            pending.len()
        );
        held.clear();
        // Resets, backoffs, min_idle refill and expiries settle. Connections keep expiring
        // (2 s lifetime) and min_idle keeps replacing them, so look at a moment when no
        // replacement connect is in flight.
        run_for(secs(5)).await;
        for _ in 0..100 {
            if pool.state().connecting == 0 {
                break;
            }
            run_for(ms(1)).await;
        }

        let state = pool.state();
        let stats = db.stats();
        assert_eq!(state.in_use, 0, "connections leaked: {state:?}");
        assert_eq!(state.waiters, 0, "{state:?}");
        assert_eq!(state.connecting, 0, "{state:?}");
        assert!(state.size <= state.max_size, "{state:?}");
        assert!(state.size >= min_idle, "min_idle not refilled: {state:?}");
        assert_eq!(
            stats.open_connections, state.size,
            "pool and server disagree: {state:?}"
        );
        assert_eq!(
            state.totals.created - state.totals.closed,
            state.size as u64,
            "created - closed != size: {state:?}"
        );
        pool.close().await;
        assert_eq!(db.stats().open_connections, 0);
        deadlines
    })
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..60)
}

proptest! {
    #![proptest_config(config(192))]

    /// Leaks and deadlines, both strictly, with the pool's tasks reacting after every op.
    #[test]
    fn pool_leaks_nothing_and_gets_keep_their_deadlines(ops in ops()) {
        let d = run_case(ops, true);
        prop_assert!(d.off.is_empty(), "timeouts off their deadline (timeout, took): {:?}", d.off);
        prop_assert!(d.late.is_empty(), "gets served after their deadline (timeout, took): {:?}", d.late);
    }

    /// The same with adversarial interleavings, deadlines strictly: fails on a known bug (a
    /// get whose connection fails its checkout check re-queues with a fresh deadline).
    #[test]
    fn gets_keep_their_deadlines_under_adversarial_interleavings(ops in ops()) {
        let d = run_case(ops, false);
        prop_assert!(d.off.is_empty(), "timeouts off their deadline (timeout, took): {:?}", d.off);
        prop_assert!(d.late.is_empty(), "gets served after their deadline (timeout, took): {:?}", d.late);
    }
}

/// Adversarial interleavings (ops land between a hand-off and the waiter taking it): leaks are
/// checked strictly; of the deadlines only that no timeout fires early, since a known bug lets
/// gets end late (see `gets_keep_their_deadlines_under_adversarial_interleavings`). How late
/// is printed.
#[test]
fn pool_leaks_nothing_under_adversarial_interleavings() {
    use std::cell::RefCell;
    let totals = RefCell::new((0usize, 0usize, 0usize, Duration::ZERO));
    let mut runner = proptest::test_runner::TestRunner::new(config(192));
    let result = runner.run(&ops(), |ops| {
        let d = run_case(ops, false);
        let mut worst = Duration::ZERO;
        for &(timeout, took) in &d.off {
            prop_assert!(
                took >= timeout,
                "timed out early: timeout {timeout:?}, took {took:?}"
            );
            worst = worst.max(took - timeout);
        }
        for &(timeout, took) in &d.late {
            worst = worst.max(took - timeout);
        }
        let mut t = totals.borrow_mut();
        t.0 += d.timed_out;
        t.1 += d.succeeded;
        t.2 += d.off.len() + d.late.len();
        t.3 = t.3.max(worst);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (timed_out, succeeded, late, worst) = totals.into_inner();
    eprintln!(
        "gets: {succeeded} served, {timed_out} timed out; {late} ended past their deadline, \
         by at most {worst:?}"
    );
    // The cases did exercise both outcomes.
    assert!(
        timed_out > 100 && succeeded > 100,
        "{timed_out} timeouts, {succeeded} served"
    );
}
