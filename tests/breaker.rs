//! The circuit breaker's state machine, driven under paused tokio time.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use seawall::breaker::{
    BreakerConfig, BreakerConfigBuilder, BreakerState, CircuitBreaker, Outcome, SlidingWindow,
};
use tokio::time::advance;

/// Well under the slow-call threshold of `base()`.
const FAST: Duration = Duration::from_millis(1);

/// A small breaker: window of 10 calls judged from 5, thresholds 50 %, slow from 100 ms,
/// 3 trials, open 1 s doubling up to 8 s, no jitter.
fn base() -> BreakerConfigBuilder {
    BreakerConfig::builder()
        .window(SlidingWindow::Count { calls: 10 })
        .minimum_calls(5)
        .failure_rate_threshold(50.0)
        .slow_call_rate_threshold(50.0)
        .slow_call_duration(Duration::from_millis(100))
        .permitted_calls_in_half_open(3)
        .open_interval(Duration::from_secs(1), Duration::from_secs(8))
        .open_interval_multiplier(2.0)
        .jitter(0.0)
        .seed(7)
}

fn breaker(config: BreakerConfigBuilder) -> CircuitBreaker {
    CircuitBreaker::new("node-a", config.build().unwrap())
}

fn call(b: &CircuitBreaker, outcome: Outcome) {
    b.try_call()
        .expect("breaker should admit the call")
        .record(outcome, FAST);
}

/// Opens a closed breaker with failures.
fn trip(b: &CircuitBreaker) {
    assert_eq!(b.state(), BreakerState::Closed);
    while b.state() == BreakerState::Closed {
        call(b, Outcome::Failure);
    }
    assert_eq!(b.state(), BreakerState::Open);
}

/// Waits out the open interval of an open breaker.
async fn wait_open_interval(b: &CircuitBreaker) {
    let wait = b.snapshot().retry_in.expect("breaker should be open");
    advance(wait).await;
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

/// The open interval after `trips_in_row` trips, without jitter.
fn expected_interval(config: &BreakerConfig, trips_in_row: u32) -> Duration {
    let grown = config.open_interval().mul_f64(
        config
            .open_interval_multiplier()
            .powi(trips_in_row as i32 - 1),
    );
    grown.min(config.max_open_interval())
}

#[tokio::test(start_paused = true)]
async fn opens_on_failure_rate_once_minimum_calls_reached() {
    let b = breaker(base());
    let min = b.config().minimum_calls();
    // Alternate failures and successes: 50 % failed, which is at the threshold.
    for i in 0..min - 1 {
        call(
            &b,
            if i % 2 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            },
        );
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "judged after {} calls",
            i + 1
        );
    }
    call(&b, Outcome::Failure);
    let s = b.snapshot();
    assert_eq!(s.state, BreakerState::Open);
    assert_eq!(s.calls, min);
    assert!(s.failure_rate >= b.config().failure_rate_threshold());
    assert_eq!(s.trips, 1);
    assert_eq!(s.trips_in_row, 1);
}

#[tokio::test(start_paused = true)]
async fn stays_closed_under_the_failure_threshold() {
    let b = breaker(base());
    let window = match b.config().window() {
        SlidingWindow::Count { calls } => calls,
        SlidingWindow::Time { .. } => unreachable!(),
    };
    // One failure in four is under 50 %, however long it goes on.
    for i in 0..window * 3 {
        call(
            &b,
            if i % 4 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            },
        );
    }
    let s = b.snapshot();
    assert_eq!(s.state, BreakerState::Closed);
    assert!(s.failure_rate > 0.0 && s.failure_rate < b.config().failure_rate_threshold());
}

#[tokio::test(start_paused = true)]
async fn opens_on_slow_call_rate() {
    let b = breaker(base());
    let slow = b.config().slow_call_duration();
    let min = b.config().minimum_calls();
    // Successes only; exactly at the slow-call duration counts as slow.
    for i in 0..min - 1 {
        let latency = if i % 2 == 0 { slow } else { FAST };
        b.try_call().unwrap().record(Outcome::Success, latency);
        assert_eq!(b.state(), BreakerState::Closed);
    }
    b.try_call().unwrap().record(Outcome::Success, slow);
    let s = b.snapshot();
    assert_eq!(s.state, BreakerState::Open);
    assert_eq!(s.failed_calls, 0);
    assert!(s.slow_call_rate >= b.config().slow_call_rate_threshold());
}

#[tokio::test(start_paused = true)]
async fn slow_latency_measured_by_the_guard() {
    let b = breaker(base());
    let slow = b.config().slow_call_duration();
    for _ in 0..b.config().minimum_calls() {
        let guard = b.try_call().unwrap();
        advance(slow).await;
        guard.success();
    }
    let s = b.snapshot();
    assert_eq!(s.state, BreakerState::Open);
    assert_eq!(s.slow_calls, s.calls);
}

#[tokio::test(start_paused = true)]
async fn does_not_judge_below_minimum_calls() {
    let b = breaker(base());
    let min = b.config().minimum_calls();
    for _ in 0..min - 1 {
        call(&b, Outcome::Failure);
    }
    let s = b.snapshot();
    assert_eq!(s.state, BreakerState::Closed);
    assert_eq!(s.calls, min - 1);
    assert_eq!(s.failure_rate, 100.0);
}

#[tokio::test(start_paused = true)]
async fn ignored_and_cancelled_calls_do_not_count() {
    let b = breaker(base());
    let min = b.config().minimum_calls();
    for _ in 0..min * 10 {
        call(&b, Outcome::Ignored);
        b.try_call().unwrap().ignore();
        drop(b.try_call().unwrap());
    }
    let s = b.snapshot();
    assert_eq!(s.state, BreakerState::Closed);
    assert_eq!(s.calls, 0);

    // Among ignored calls, one failure in `min` judged calls stays under the threshold.
    for _ in 0..min - 1 {
        call(&b, Outcome::Success);
        call(&b, Outcome::Ignored);
    }
    call(&b, Outcome::Failure);
    let s = b.snapshot();
    assert_eq!(s.state, BreakerState::Closed);
    assert_eq!(s.calls, min);
    assert_eq!(s.failed_calls, 1);
}

#[tokio::test(start_paused = true)]
async fn open_rejects_until_the_interval_has_passed() {
    let b = breaker(base());
    trip(&b);
    let interval = b.config().open_interval();

    let err = b.try_call().unwrap_err();
    assert_eq!(err.state, BreakerState::Open);
    assert_eq!(&*err.node, "node-a");
    assert_eq!(err.retry_in, Some(interval));
    assert!(err.to_string().contains("node-a"), "{err}");

    let step = Duration::from_millis(1);
    advance(interval - step).await;
    let err = b.try_call().unwrap_err();
    assert_eq!(err.retry_in, Some(step));
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.snapshot().rejected, 2);

    advance(step).await;
    let guard = b.try_call().expect("a trial after the interval");
    assert!(guard.is_trial());
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_only_the_permitted_trials() {
    let b = breaker(base());
    trip(&b);
    wait_open_interval(&b).await;
    let permitted = b.config().permitted_calls_in_half_open();
    let trials: Vec<_> = (0..permitted).map(|_| b.try_call().unwrap()).collect();
    assert!(trials.iter().all(|g| g.is_trial()));
    let err = b.try_call().unwrap_err();
    assert_eq!(err.state, BreakerState::HalfOpen);
    assert_eq!(err.retry_in, None);
    assert_eq!(b.snapshot().trials_in_flight, permitted);

    // A recorded trial still holds its slot: the verdict needs `permitted` outcomes.
    let mut trials = trials.into_iter();
    trials.next().unwrap().record(Outcome::Success, FAST);
    assert!(b.try_call().is_err());
}

#[tokio::test(start_paused = true)]
async fn half_open_closes_after_good_trials_and_starts_afresh() {
    let b = breaker(base());
    trip(&b);
    wait_open_interval(&b).await;
    let permitted = b.config().permitted_calls_in_half_open();
    for i in 0..permitted {
        assert_eq!(b.state(), BreakerState::HalfOpen, "closed after {i} trials");
        call(&b, Outcome::Success);
    }
    let s = b.snapshot();
    assert_eq!(s.state, BreakerState::Closed);
    assert_eq!(
        s.calls, 0,
        "a closed breaker forgets the calls that tripped it"
    );
    assert_eq!(s.trips_in_row, 0);
    assert_eq!(s.trips, 1);
    assert!(!b.try_call().unwrap().is_trial());
}

#[tokio::test(start_paused = true)]
async fn half_open_closes_when_trial_failures_stay_under_the_threshold() {
    // 1 failed trial in 3 is 33 %, under 50 %.
    let b = breaker(base());
    trip(&b);
    wait_open_interval(&b).await;
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    for _ in 1..b.config().permitted_calls_in_half_open() {
        call(&b, Outcome::Success);
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn half_open_reopens_as_soon_as_bad_trials_settle_it() {
    let b = breaker(base());
    trip(&b);
    wait_open_interval(&b).await;
    let permitted = b.config().permitted_calls_in_half_open();
    let mut trials: Vec<_> = (0..permitted).map(|_| b.try_call().unwrap()).collect();
    // With 3 trials and a 50 % threshold, the second failure settles it.
    trials.pop().unwrap().record(Outcome::Failure, FAST);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    trials.pop().unwrap().record(Outcome::Failure, FAST);
    let s = b.snapshot();
    assert_eq!(s.state, BreakerState::Open);
    assert_eq!(s.trips, 2);
    assert_eq!(s.trips_in_row, 2);
    // The remaining trial's outcome belongs to the judged period and is dropped.
    trials.pop().unwrap().record(Outcome::Success, FAST);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_single_bad_trial_reopens_when_it_decides() {
    let b = breaker(base().permitted_calls_in_half_open(1));
    trip(&b);
    wait_open_interval(&b).await;
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);

    wait_open_interval(&b).await;
    let slow = b.config().slow_call_duration();
    b.try_call().unwrap().record(Outcome::Success, slow);
    assert_eq!(b.state(), BreakerState::Open, "a slow trial re-opens too");
}

#[tokio::test(start_paused = true)]
async fn open_interval_grows_up_to_the_cap_and_resets_after_a_close() {
    let b = breaker(base());
    let config = b.config().clone();
    trip(&b);
    let mut seen = Vec::new();
    for trips_in_row in 1..=6 {
        let s = b.snapshot();
        assert_eq!(s.trips_in_row, trips_in_row);
        let interval = s.retry_in.unwrap();
        assert_eq!(interval, expected_interval(&config, trips_in_row));
        seen.push(interval);
        wait_open_interval(&b).await;
        while b.state() == BreakerState::HalfOpen {
            call(&b, Outcome::Failure);
        }
    }
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen[0], config.open_interval());
    assert_eq!(*seen.last().unwrap(), config.max_open_interval());

    // A close resets the growth.
    wait_open_interval(&b).await;
    while b.state() == BreakerState::HalfOpen {
        call(&b, Outcome::Success);
    }
    trip(&b);
    let s = b.snapshot();
    assert_eq!(s.trips_in_row, 1);
    assert_eq!(s.retry_in, Some(config.open_interval()));
}

/// The open intervals of `trips` trips in a row.
async fn intervals(config: BreakerConfigBuilder, trips: u32) -> Vec<Duration> {
    let b = breaker(config);
    trip(&b);
    let mut out = Vec::new();
    for _ in 0..trips {
        out.push(b.snapshot().retry_in.unwrap());
        wait_open_interval(&b).await;
        while b.state() == BreakerState::HalfOpen {
            call(&b, Outcome::Failure);
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_in_bounds_and_is_deterministic_when_seeded() {
    let jitter = 0.5;
    let config = base().jitter(jitter).open_interval_multiplier(1.0);
    let interval = config.clone().build().unwrap().open_interval();
    let trips = 40;
    let a = intervals(config.clone(), trips).await;
    for d in &a {
        assert!(
            *d <= interval && *d >= interval.mul_f64(1.0 - jitter),
            "{d:?}"
        );
    }
    assert!(a.iter().any(|d| *d != a[0]), "jitter never varied: {a:?}");
    assert_eq!(a, intervals(config.clone(), trips).await, "same seed");
    assert_ne!(a, intervals(config.seed(8), trips).await, "other seed");
}

#[tokio::test(start_paused = true)]
async fn jitter_never_exceeds_the_cap() {
    let config = base().jitter(1.0);
    let built = config.clone().build().unwrap();
    for d in intervals(config, 12).await {
        assert!(d <= built.max_open_interval(), "{d:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn count_window_slides() {
    let size = 4;
    let b = breaker(
        base()
            .window(SlidingWindow::Count { calls: size })
            .minimum_calls(size),
    );
    call(&b, Outcome::Failure);
    for _ in 1..size {
        call(&b, Outcome::Success);
    }
    assert_eq!(b.snapshot().failed_calls, 1);
    // `size` more successes push the failure out.
    for _ in 0..size {
        call(&b, Outcome::Success);
    }
    let s = b.snapshot();
    assert_eq!((s.calls, s.failed_calls), (size, 0));
    // Two failures among the last four is 50 %: open. Counted since the start it would be 2/10.
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), BreakerState::Closed);
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_expires_old_buckets() {
    let seconds = 5;
    let b = breaker(
        base()
            .window(SlidingWindow::Time { seconds })
            .minimum_calls(4),
    );
    let second = Duration::from_secs(1);
    for _ in 0..3 {
        call(&b, Outcome::Failure);
    }
    advance(second * 2).await;
    call(&b, Outcome::Success);
    assert_eq!(b.snapshot().calls, 4);
    assert_eq!(b.state(), BreakerState::Open, "3 failures in 4 calls");

    // A fresh breaker whose failures age out before it judges.
    let b = breaker(
        base()
            .window(SlidingWindow::Time { seconds })
            .minimum_calls(4),
    );
    // Two failures, then a success two seconds later: three calls, not judged yet.
    for _ in 0..2 {
        call(&b, Outcome::Failure);
    }
    advance(second * 2).await;
    call(&b, Outcome::Success);
    // Past the end of the failures' second; the success's second is still in the window.
    advance(second * (seconds - 2)).await;
    let s = b.snapshot();
    assert_eq!((s.calls, s.failed_calls), (1, 0));
    // Judged from here on: one failure in five. Had the old failures stayed, 3 in 5.
    for _ in 0..3 {
        call(&b, Outcome::Success);
    }
    call(&b, Outcome::Failure);
    let s = b.snapshot();
    assert_eq!(
        (s.state, s.calls, s.failed_calls),
        (BreakerState::Closed, 5, 1)
    );
    // A long quiet spell empties the window entirely.
    advance(second * seconds * 100).await;
    assert_eq!(b.snapshot().calls, 0);
}

#[tokio::test(start_paused = true)]
async fn dropped_or_ignored_trials_free_their_slot() {
    let b = breaker(base());
    trip(&b);
    wait_open_interval(&b).await;
    let permitted = b.config().permitted_calls_in_half_open();
    let mut trials: Vec<_> = (0..permitted).map(|_| b.try_call().unwrap()).collect();
    assert!(b.try_call().is_err());

    drop(trials.pop());
    assert_eq!(b.snapshot().trials_in_flight, permitted - 1);
    trials.push(b.try_call().expect("the dropped trial's slot"));
    assert!(b.try_call().is_err());

    trials.pop().unwrap().ignore();
    trials.push(b.try_call().expect("the ignored trial's slot"));

    // Cancellations are not failures: the breaker still closes on the real outcomes.
    for t in trials {
        t.record(Outcome::Success, FAST);
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn late_outcomes_from_before_a_trip_are_not_trials() {
    let b = breaker(base());
    let late: Vec<_> = (0..3).map(|_| b.try_call().unwrap()).collect();
    trip(&b);
    wait_open_interval(&b).await;
    for g in late {
        g.record(Outcome::Success, FAST);
    }
    let s = b.snapshot();
    assert_eq!(s.state, BreakerState::HalfOpen);
    assert_eq!(s.calls, 0);
}

#[tokio::test(start_paused = true)]
async fn clones_share_state() {
    let b = breaker(base());
    let c = b.clone();
    trip(&c);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.name(), "node-a");
}

/// Real threads racing for trial slots: never more than the permitted trials live at once.
/// Outcomes are only successes and cancellations, so there is a single half-open period.
#[test]
fn threads_never_exceed_the_permitted_trials() {
    use std::sync::atomic::{AtomicU32, Ordering};

    let b = breaker(base().open_interval(Duration::from_millis(1), Duration::from_millis(1)));
    trip(&b);
    std::thread::sleep(Duration::from_millis(2));
    let permitted = b.config().permitted_calls_in_half_open();
    let live = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (b, live, most) = (b.clone(), live.clone(), most.clone());
            std::thread::spawn(move || {
                for i in 0..2_000u32 {
                    let Ok(guard) = b.try_call() else { continue };
                    if guard.is_trial() {
                        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        live.fetch_sub(1, Ordering::SeqCst);
                    }
                    if (i + t) % 3 == 0 {
                        drop(guard);
                    } else {
                        guard.record(Outcome::Success, FAST);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(most.load(Ordering::SeqCst) <= permitted);
    assert!(most.load(Ordering::SeqCst) >= 1, "no trial ever ran");
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn config_errors_name_the_field() {
    let cases: Vec<(BreakerConfigBuilder, &str)> = vec![
        (base().failure_rate_threshold(0.0), "failure_rate_threshold"),
        (
            base().failure_rate_threshold(100.5),
            "failure_rate_threshold",
        ),
        (
            base().failure_rate_threshold(f64::NAN),
            "failure_rate_threshold",
        ),
        (
            base().slow_call_rate_threshold(-1.0),
            "slow_call_rate_threshold",
        ),
        (
            base().slow_call_duration(Duration::ZERO),
            "slow_call_duration",
        ),
        (base().window(SlidingWindow::Count { calls: 0 }), "window"),
        (base().window(SlidingWindow::Time { seconds: 0 }), "window"),
        (base().minimum_calls(0), "minimum_calls"),
        (
            base()
                .window(SlidingWindow::Count { calls: 4 })
                .minimum_calls(5),
            "minimum_calls",
        ),
        (
            base().permitted_calls_in_half_open(0),
            "permitted_calls_in_half_open",
        ),
        (
            base().open_interval(Duration::ZERO, Duration::from_secs(1)),
            "open_interval",
        ),
        (
            base().open_interval(Duration::from_secs(2), Duration::from_secs(1)),
            "max_open_interval",
        ),
        (
            base().open_interval_multiplier(0.5),
            "open_interval_multiplier",
        ),
        (
            base().open_interval_multiplier(f64::INFINITY),
            "open_interval_multiplier",
        ),
        (base().jitter(1.5), "jitter"),
        (base().jitter(-0.1), "jitter"),
    ];
    for (builder, field) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.field, field, "{err}");
        assert!(err.to_string().contains(field));
    }
    // A time window may be judged from more calls than it has seconds.
    base()
        .window(SlidingWindow::Time { seconds: 2 })
        .minimum_calls(50)
        .build()
        .unwrap();
    assert!(BreakerConfig::builder().build().is_ok());
}

#[test]
fn huge_multiplier_saturates_at_the_cap() {
    let config = base()
        .open_interval_multiplier(1e300)
        .jitter(0.0)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let b = CircuitBreaker::new("node-a", config.clone());
        trip(&b);
        for _ in 0..3 {
            wait_open_interval(&b).await;
            while b.state() == BreakerState::HalfOpen {
                call(&b, Outcome::Failure);
            }
        }
        assert_eq!(b.snapshot().retry_in, Some(config.max_open_interval()));
    });
}

#[tokio::test(start_paused = true)]
async fn metrics_follow_the_state() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let b = breaker(base());
    trip(&b);
    let _ = b.try_call().unwrap_err();
    let _ = b.try_call().unwrap_err();

    let metrics = snapshotter.snapshot().into_vec();
    let find = |kind: MetricKind, name: &str, labels: &[(&str, &str)]| {
        metrics
            .iter()
            .find(|(key, _, _, _)| {
                let key_labels: Vec<_> = key.key().labels().collect();
                key.kind() == kind
                    && key.key().name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key_labels.iter().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(_, _, _, value)| value)
    };
    assert_eq!(
        find(
            MetricKind::Gauge,
            "seawall_breaker_state",
            &[("node", "node-a")]
        ),
        Some(&DebugValue::Gauge(BreakerState::Open.as_gauge().into()))
    );
    assert_eq!(
        find(
            MetricKind::Counter,
            "seawall_breaker_transitions_total",
            &[("node", "node-a"), ("to", "open")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find(
            MetricKind::Counter,
            "seawall_breaker_rejected_total",
            &[("node", "node-a"), ("state", "open")]
        ),
        Some(&DebugValue::Counter(2))
    );
}

// ---------------------------------------------------------------------------------------------
// Invariants over random call sequences.

#[derive(Debug, Clone)]
enum Op {
    /// Ask for a call and keep the guard.
    Call,
    /// Finish a kept guard (index modulo the live guards), slow or not.
    Finish(usize, Outcome, bool),
    /// Drop a kept guard without an outcome.
    Cancel(usize),
    /// Let time pass, in milliseconds.
    Advance(u64),
}

fn ops(outcomes: Vec<Outcome>, slow: bool) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => Just(Op::Call),
        3 => (any::<usize>(), proptest::sample::select(outcomes), any::<bool>())
            .prop_map(move |(i, o, s)| Op::Finish(i, o, s && slow)),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => (0u64..3_000).prop_map(Op::Advance),
    ];
    proptest::collection::vec(op, 0..300)
}

fn configs() -> impl Strategy<Value = BreakerConfig> {
    let window = prop_oneof![
        (1u32..20).prop_map(|calls| SlidingWindow::Count { calls }),
        (1u32..10).prop_map(|seconds| SlidingWindow::Time { seconds }),
    ];
    (
        window,
        1u32..20,
        1u32..6,
        1.0f64..=100.0,
        1.0f64..=100.0,
        0.0f64..=1.0,
    )
        .prop_map(|(window, min, trials, failure, slow, jitter)| {
            let min = match window {
                SlidingWindow::Count { calls } => min.min(calls),
                SlidingWindow::Time { .. } => min,
            };
            BreakerConfig::builder()
                .window(window)
                .minimum_calls(min)
                .permitted_calls_in_half_open(trials)
                .failure_rate_threshold(failure)
                .slow_call_rate_threshold(slow)
                .slow_call_duration(Duration::from_millis(100))
                .open_interval(Duration::from_millis(500), Duration::from_secs(4))
                .jitter(jitter)
                .seed(1)
                .build()
                .unwrap()
        })
}

fn legal(from: BreakerState, to: BreakerState) -> bool {
    use BreakerState::*;
    matches!(
        (from, to),
        (Closed, Closed)
            | (Open, Open)
            | (HalfOpen, HalfOpen)
            | (Closed, Open)
            | (Open, HalfOpen)
            | (HalfOpen, Closed)
            | (HalfOpen, Open)
    )
}

/// Runs `ops` and checks the invariants after each step; returns whether the breaker ever left
/// the closed state.
fn run(config: BreakerConfig, ops: Vec<Op>) -> Result<bool, TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let permitted = config.permitted_calls_in_half_open();
        let slow_latency = config.slow_call_duration();
        let b = CircuitBreaker::new("prop", config);
        // Each live guard with the trip count at its admission: a half-open period is named by
        // the trip that preceded it.
        let mut live = Vec::new();
        let mut ever_left_closed = false;
        let mut before = b.snapshot();
        for op in ops {
            match op {
                Op::Call => {
                    if let Ok(g) = b.try_call() {
                        live.push((g, b.snapshot().trips));
                    }
                }
                Op::Finish(i, outcome, slow) if !live.is_empty() => {
                    let (g, _) = live.swap_remove(i % live.len());
                    g.record(outcome, if slow { slow_latency } else { FAST });
                }
                Op::Cancel(i) if !live.is_empty() => {
                    drop(live.swap_remove(i % live.len()));
                }
                Op::Advance(ms) => advance(Duration::from_millis(ms)).await,
                _ => {}
            }
            let after = b.snapshot();
            prop_assert!(
                legal(before.state, after.state),
                "{:?} -> {:?}",
                before.state,
                after.state
            );
            let opened = after.state == BreakerState::Open && before.state != BreakerState::Open;
            prop_assert_eq!(after.trips, before.trips + u64::from(opened));
            if after.state == BreakerState::HalfOpen {
                let live_trials = live
                    .iter()
                    .filter(|(g, trips)| g.is_trial() && *trips == after.trips)
                    .count() as u32;
                prop_assert_eq!(live_trials, after.trials_in_flight);
                prop_assert!(after.trials_in_flight + after.calls <= permitted);
            } else {
                prop_assert_eq!(after.trials_in_flight, 0);
            }
            ever_left_closed |= after.state != BreakerState::Closed;
            before = after;
        }
        Ok(ever_left_closed)
    })
}

proptest! {
    #[test]
    fn random_sequences_keep_the_invariants(
        config in configs(),
        ops in ops(vec![Outcome::Success, Outcome::Failure, Outcome::Ignored], true),
    ) {
        run(config, ops)?;
    }

    #[test]
    fn without_failures_or_slow_calls_it_never_opens(
        config in configs(),
        ops in ops(vec![Outcome::Success, Outcome::Ignored], false),
    ) {
        prop_assert!(!run(config, ops)?);
    }
}
