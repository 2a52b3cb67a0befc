//! The admission gate under paused time: limits, deadlines, priorities, shedding, cancellation.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proptest::prelude::*;
use seawall::admission::{
    Admission, AdmissionConfig, CodelConfig, Overloaded, Permit, Priority, QueueMode, ShedReason,
};
use seawall::limit::{Aimd, AimdConfig, Fixed, Limiter, Sample};
use tokio::time::{advance, Instant};

type Admit<'a> = Pin<Box<dyn Future<Output = Result<Permit, Overloaded>> + Send + 'a>>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Polls a future exactly once, in the current task.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Option<F::Output> {
    tokio::select! {
        biased;
        out = fut => Some(out),
        () = std::future::ready(()) => None,
    }
}

fn gate(limit: usize, config: AdmissionConfig) -> (Admission, Arc<Fixed>) {
    let limiter = Arc::new(Fixed::new(limit));
    let gate = Admission::new("primary", Arc::clone(&limiter), config).unwrap();
    (gate, limiter)
}

fn no_codel(max_queue: usize) -> AdmissionConfig {
    AdmissionConfig {
        max_queue,
        codel: None,
    }
}

/// Starts an `admit` and polls it once so that it is queued; panics if it did not queue.
async fn queued<'a>(
    gate: &'a Admission,
    priority: Priority,
    deadline: Option<Instant>,
) -> Admit<'a> {
    let mut fut: Admit<'a> = Box::pin(gate.admit(priority, deadline));
    assert!(poll_once(&mut fut).await.is_none(), "expected to queue");
    fut
}

#[tokio::test(start_paused = true)]
async fn in_flight_never_exceeds_the_limit() {
    let (gate, _) = gate(3, AdmissionConfig::default());
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let (gate, running, peak) = (gate.clone(), running.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.admit(Priority::Normal, None).await.unwrap();
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            assert!(gate.snapshot().in_flight <= 3);
            tokio::time::sleep(ms(1 + i % 4)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            permit.success();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    let snapshot = gate.snapshot();
    assert_eq!((snapshot.in_flight, snapshot.queue_len), (0, 0));
    assert_eq!(snapshot.admitted, 20);
}

#[tokio::test(start_paused = true)]
async fn deadline_fails_exactly_at_the_deadline() {
    let (gate, _) = gate(1, AdmissionConfig::default());
    let _held = gate.admit(Priority::Normal, None).await.unwrap();

    let start = Instant::now();
    let err = gate
        .admit(Priority::Normal, Some(start + ms(50)))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), ms(50));
    assert_eq!(err.reason, ShedReason::Deadline);
    assert_eq!(err.queued_for, ms(50));
    assert_eq!((err.in_flight, err.limit), (1, 1));

    // A deadline already past, with no free slot: rejected at once.
    let start = Instant::now();
    let err = gate
        .admit(Priority::Critical, Some(start))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(err.reason, ShedReason::Deadline);

    let snapshot = gate.snapshot();
    assert_eq!(snapshot.expired, 1);
    assert_eq!(snapshot.rejected, 1);
    assert_eq!(snapshot.queue_len, 0);
}

#[tokio::test(start_paused = true)]
async fn deadline_passed_but_slot_free_is_admitted() {
    let (gate, _) = gate(1, AdmissionConfig::default());
    let permit = gate
        .admit(Priority::Low, Some(Instant::now()))
        .await
        .unwrap();
    assert_eq!(permit.queued_for(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn write_queued_after_reads_gets_the_first_free_slot() {
    let (gate, _) = gate(1, no_codel(16));
    let held = gate.admit(Priority::READ, None).await.unwrap();
    let mut reads = Vec::new();
    for _ in 0..3 {
        reads.push(queued(&gate, Priority::READ, None).await);
        advance(ms(1)).await;
    }
    let mut write = queued(&gate, Priority::WRITE, None).await;

    held.success();
    let write_permit = poll_once(&mut write).await.expect("write granted").unwrap();
    assert_eq!(write_permit.queued_for(), Duration::ZERO);
    for read in &mut reads {
        assert!(poll_once(read).await.is_none());
    }

    // Then the reads, oldest first.
    drop(write_permit);
    let first = poll_once(&mut reads[0])
        .await
        .expect("oldest read")
        .unwrap();
    assert_eq!(first.queued_for(), ms(3));
    assert!(poll_once(&mut reads[1]).await.is_none());
    drop(first);
    let second = poll_once(&mut reads[1]).await.expect("next read").unwrap();
    assert_eq!(second.queued_for(), ms(2));
    assert!(poll_once(&mut reads[2]).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn full_queue_rejects_immediately_or_displaces_a_lower_class() {
    let (gate, _) = gate(1, no_codel(2));
    let _held = gate.admit(Priority::Normal, None).await.unwrap();
    let mut oldest = queued(&gate, Priority::Normal, None).await;
    advance(ms(4)).await;
    let mut newer = queued(&gate, Priority::Normal, None).await;

    // Same class, queue full: rejected at once, with the gate's numbers.
    let start = Instant::now();
    let err = gate.admit(Priority::Normal, None).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(err.reason, ShedReason::QueueFull);
    assert_eq!(
        (err.in_flight, err.limit, err.queued_for),
        (1, 1, Duration::ZERO)
    );
    let err = gate.admit(Priority::Low, None).await.unwrap_err();
    assert_eq!(err.reason, ShedReason::QueueFull);

    // A write displaces the oldest lower-priority waiter.
    advance(ms(1)).await;
    let _write = queued(&gate, Priority::WRITE, None).await;
    let err = poll_once(&mut oldest)
        .await
        .expect("displaced")
        .unwrap_err();
    assert_eq!(err.reason, ShedReason::Displaced);
    assert_eq!(err.queued_for, ms(5));
    assert!(poll_once(&mut newer).await.is_none());

    let snapshot = gate.snapshot();
    assert_eq!(snapshot.queue_len, 2);
    assert_eq!((snapshot.rejected, snapshot.shed), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn zero_max_queue_never_queues() {
    let (gate, _) = gate(1, no_codel(0));
    let _held = gate.admit(Priority::Normal, None).await.unwrap();
    let err = gate.admit(Priority::Critical, None).await.unwrap_err();
    assert_eq!(err.reason, ShedReason::QueueFull);
}

#[test]
fn overloaded_displays_the_numbers() {
    let err = Overloaded {
        node: "primary".into(),
        in_flight: 64,
        limit: 64,
        queued_for: ms(12),
        reason: ShedReason::QueueDelay,
    };
    assert_eq!(
        err.to_string(),
        "node `primary` overloaded: 64/64 in flight, queued 12ms: queue delay over target"
    );
}

#[tokio::test(start_paused = true)]
async fn overloaded_from_the_gate_displays_what_happened() {
    let (gate, _) = gate(2, no_codel(8));
    let _a = gate.admit(Priority::Normal, None).await.unwrap();
    let _b = gate.admit(Priority::Normal, None).await.unwrap();
    let err = gate
        .admit(Priority::Normal, Some(Instant::now() + ms(12)))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node `primary` overloaded: 2/2 in flight, queued 12ms: deadline passed while queued"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_queued_futures_leaks_nothing() {
    let (gate, _) = gate(1, no_codel(16));
    let held = gate.admit(Priority::Normal, None).await.unwrap();
    let mut waiters = Vec::new();
    for priority in [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Critical,
    ] {
        waiters.push(queued(&gate, priority, None).await);
    }
    assert_eq!(gate.snapshot().queue_len, 4);
    // Drop the two highest while queued: the slot must go to Normal, then Low.
    waiters.truncate(2);
    assert_eq!(gate.snapshot().queue_len, 2);
    drop(held);
    let normal = poll_once(&mut waiters[1]).await.unwrap().unwrap();
    assert!(poll_once(&mut waiters[0]).await.is_none());
    drop(waiters);
    drop(normal);
    let snapshot = gate.snapshot();
    assert_eq!((snapshot.in_flight, snapshot.queue_len), (0, 0));
    // And the gate still works.
    assert!(gate.admit(Priority::Normal, None).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_grant_to_a_dropped_waiter_is_passed_on() {
    let (gate, _) = gate(1, no_codel(16));
    let held = gate.admit(Priority::Normal, None).await.unwrap();
    let first = queued(&gate, Priority::Normal, None).await;
    let mut second = queued(&gate, Priority::Normal, None).await;
    // The slot is granted to `first`, which is dropped before it observes the grant.
    drop(held);
    assert_eq!(gate.snapshot().in_flight, 1);
    drop(first);
    let permit = poll_once(&mut second)
        .await
        .expect("slot passed on")
        .unwrap();
    assert_eq!(gate.snapshot().in_flight, 1);
    drop(permit);
    assert_eq!(gate.snapshot().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn a_grant_racing_the_deadline_is_kept() {
    let (gate, _) = gate(1, no_codel(16));
    let held = gate.admit(Priority::Normal, None).await.unwrap();
    let deadline = Instant::now() + ms(10);
    let mut waiter = queued(&gate, Priority::Normal, Some(deadline)).await;
    advance(ms(10)).await;
    // Both the grant and the deadline are ready when the waiter next runs.
    drop(held);
    let outcome = poll_once(&mut waiter).await.expect("settled");
    let permit = outcome.expect("the grant wins: it was sent first");
    assert_eq!(permit.queued_for(), ms(10));
    assert_eq!(gate.snapshot().in_flight, 1);
}

#[tokio::test(start_paused = true)]
async fn a_shrinking_limit_takes_effect_as_permits_return() {
    let (gate, limiter) = gate(4, no_codel(16));
    let mut permits = Vec::new();
    for _ in 0..4 {
        permits.push(gate.admit(Priority::Normal, None).await.unwrap());
    }
    limiter.set(2);
    let mut waiter = queued(&gate, Priority::Normal, None).await;
    let mut in_flight = Vec::new();
    for permit in permits.drain(..3) {
        drop(permit);
        in_flight.push(gate.snapshot().in_flight);
        if in_flight.len() < 3 {
            assert!(poll_once(&mut waiter).await.is_none());
        }
    }
    // 4 -> 3 -> 2 with the waiter still queued, then 1 + the waiter = 2.
    assert_eq!(in_flight, [3, 2, 2]);
    let permit = poll_once(&mut waiter).await.unwrap().unwrap();
    assert_eq!(permit.in_flight_at_admit(), 2);
    assert_eq!(gate.snapshot().limit, 2);
}

#[tokio::test(start_paused = true)]
async fn a_growing_limit_admits_queued_waiters_at_the_next_event() {
    let (gate, limiter) = gate(1, no_codel(16));
    let held = gate.admit(Priority::Normal, None).await.unwrap();
    let mut a = queued(&gate, Priority::Normal, None).await;
    let mut b = queued(&gate, Priority::Normal, None).await;
    limiter.set(3);
    // The next arrival serves the queue first, then is queued itself behind a full gate.
    let mut c = queued(&gate, Priority::Normal, None).await;
    assert!(poll_once(&mut a).await.unwrap().is_ok());
    assert!(poll_once(&mut b).await.unwrap().is_ok());
    drop(held);
    assert!(poll_once(&mut c).await.unwrap().is_ok());
}

/// A limiter that records what it is told.
#[derive(Default)]
struct Recording {
    samples: Mutex<Vec<Sample>>,
}

impl Limiter for Recording {
    fn limit(&self) -> usize {
        1
    }

    fn on_sample(&self, sample: Sample) {
        self.samples.lock().push(sample);
    }
}

#[tokio::test(start_paused = true)]
async fn permits_report_latency_from_the_grant_and_their_outcome() {
    let limiter = Arc::new(Recording::default());
    let gate = Admission::new("primary", Arc::clone(&limiter), no_codel(4)).unwrap();

    let permit = gate.admit(Priority::Normal, None).await.unwrap();
    advance(ms(7)).await;
    permit.success();

    let held = gate.admit(Priority::Normal, None).await.unwrap();
    let mut waiter = queued(&gate, Priority::Normal, None).await;
    advance(ms(5)).await;
    held.failure();
    let permit = poll_once(&mut waiter).await.unwrap().unwrap();
    assert_eq!(permit.queued_for(), ms(5));
    advance(ms(3)).await;
    drop(permit);

    gate.admit(Priority::Normal, None).await.unwrap().ignore();

    let samples = limiter.samples.lock().clone();
    assert_eq!(
        samples,
        [
            Sample::success(ms(7), 1),
            Sample::dropped(ms(5), 1),
            // Three, not eight: queueing time is not service time.
            Sample::dropped(ms(3), 1),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn failures_shrink_an_adaptive_limit() {
    let limiter = Aimd::new(AimdConfig {
        initial_limit: 10,
        ..AimdConfig::default()
    })
    .unwrap();
    let gate = Admission::new("primary", limiter, AdmissionConfig::default()).unwrap();
    for _ in 0..3 {
        gate.admit(Priority::Normal, None).await.unwrap().failure();
    }
    // 10 -> 9 -> 8 -> 7.
    assert_eq!(gate.snapshot().limit, 7);
    assert_eq!(gate.limiter().limit(), 7);
}

#[tokio::test(start_paused = true)]
async fn close_fails_waiters_and_later_arrivals_but_not_permits() {
    let (gate, _) = gate(1, no_codel(16));
    let permit = gate.admit(Priority::Normal, None).await.unwrap();
    let mut waiter = queued(&gate, Priority::High, None).await;
    advance(ms(2)).await;
    gate.close();
    let err = poll_once(&mut waiter).await.unwrap().unwrap_err();
    assert_eq!(err.reason, ShedReason::Closed);
    assert_eq!(err.queued_for, ms(2));
    let err = gate.admit(Priority::Critical, None).await.unwrap_err();
    assert_eq!(err.reason, ShedReason::Closed);
    assert_eq!(gate.snapshot().in_flight, 1);
    drop(permit);
    assert_eq!(gate.snapshot().in_flight, 0);
}

#[test]
fn config_errors_name_the_field() {
    let bad = |codel: CodelConfig| {
        Admission::new(
            "primary",
            Fixed::new(1),
            AdmissionConfig {
                max_queue: 8,
                codel: Some(codel),
            },
        )
        .unwrap_err()
        .field
    };
    let ok = CodelConfig::default();
    assert_eq!(
        bad(CodelConfig {
            target: Duration::ZERO,
            ..ok
        }),
        "codel.target"
    );
    assert_eq!(
        bad(CodelConfig {
            interval: Duration::ZERO,
            ..ok
        }),
        "codel.interval"
    );
    assert_eq!(
        bad(CodelConfig {
            shed_after: ms(1),
            ..ok
        }),
        "codel.shed_after"
    );
}

/// Sustained overload: arrivals every 1 ms, one slot freed every 2 ms. The standing queue is
/// detected at the end of the second interval; stale waiters are shed and the newest is served
/// first. When the arrivals stop and the queue drains, the gate returns to FIFO.
#[tokio::test(start_paused = true)]
async fn codel_sheds_under_sustained_overload_switches_to_lifo_and_recovers() {
    let codel = CodelConfig::default(); // target 5 ms, interval 100 ms, shed after 10 ms
    let (gate, _) = gate(
        1,
        AdmissionConfig {
            max_queue: 1000,
            codel: Some(codel),
        },
    );
    let start = Instant::now();
    let mut permit = Some(gate.admit(Priority::Normal, None).await.unwrap());
    let mut waiting: Vec<(u64, Admit<'_>)> = Vec::new();
    let mut lifo_since = None;
    let mut grants_in_lifo = 0;
    let mut shed = Vec::new();

    for tick in 1..=420u64 {
        advance(ms(1)).await;
        if tick <= 300 {
            let mut fut: Admit<'_> = Box::pin(gate.admit(Priority::Normal, None));
            match poll_once(&mut fut).await {
                None => waiting.push((tick, fut)),
                Some(admitted) => permit = Some(admitted.unwrap()),
            }
        }
        if tick % 2 == 0 {
            if let Some(done) = permit.take() {
                done.success();
            }
        }
        let mode_before = gate.snapshot().mode;
        let newest_waiting = waiting.iter().map(|(id, _)| *id).max();
        let mut still = Vec::new();
        for (id, mut fut) in waiting.drain(..) {
            match poll_once(&mut fut).await {
                None => still.push((id, fut)),
                Some(Ok(granted)) => {
                    assert!(permit.is_none(), "limit 1");
                    if mode_before == QueueMode::Lifo && tick <= 300 {
                        assert_eq!(Some(id), newest_waiting, "LIFO serves the newest");
                        grants_in_lifo += 1;
                    }
                    permit = Some(granted);
                }
                Some(Err(err)) => shed.push((tick, err)),
            }
        }
        waiting = still;
        if tick > 300 && waiting.is_empty() && permit.is_none() {
            // Light load after the storm: admitted at once, so the queue delay is zero.
            let quick = gate.admit(Priority::Normal, None).await.unwrap();
            drop(quick);
        }
        let snapshot = gate.snapshot();
        if snapshot.mode == QueueMode::Lifo && lifo_since.is_none() {
            lifo_since = Some(start.elapsed());
        }
        assert!(snapshot.in_flight <= 1);
    }

    // The first interval saw an empty queue (min delay 0); the second saw a standing queue.
    assert_eq!(lifo_since, Some(ms(200)));
    assert!(grants_in_lifo > 40, "{grants_in_lifo} grants in LIFO");
    assert!(!shed.is_empty());
    for (_, err) in &shed {
        assert_eq!(err.reason, ShedReason::QueueDelay);
        assert!(err.queued_for > codel.shed_after, "{err}");
        assert_eq!(err.limit, 1);
    }
    assert!(shed.iter().all(|(tick, _)| *tick >= 200));
    let snapshot = gate.snapshot();
    assert_eq!(snapshot.mode, QueueMode::Fifo, "recovered");
    assert_eq!(snapshot.shed, shed.len() as u64);
    assert_eq!(snapshot.queue_len, 0);
}

#[test]
fn metrics_are_labelled_by_node() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (gate, _) = metrics::with_local_recorder(&recorder, || gate(1, no_codel(0)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let _held = gate.admit(Priority::Normal, None).await.unwrap();
        assert!(gate.admit(Priority::Normal, None).await.is_err());
    });
    let values: std::collections::HashMap<String, DebugValue> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
            assert_eq!(labels, [("node", "primary")]);
            (key.name().to_string(), value)
        })
        .collect();
    let gauge = |name: &str| match &values[name] {
        DebugValue::Gauge(v) => v.0,
        other => panic!("{name}: {other:?}"),
    };
    let counter = |name: &str| match &values[name] {
        DebugValue::Counter(v) => *v,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(gauge("seawall_admission_limit"), 1.0);
    assert_eq!(gauge("seawall_admission_in_flight"), 0.0);
    assert_eq!(gauge("seawall_admission_queue_len"), 0.0);
    assert_eq!(gauge("seawall_admission_lifo"), 0.0);
    assert_eq!(counter("seawall_admission_admitted_total"), 1);
    assert_eq!(counter("seawall_admission_rejected_total"), 1);
}

// ------------------------------------------------------------------------------------ proptest

#[derive(Debug, Clone)]
enum Op {
    /// Start an admit with this priority and, maybe, a deadline this many ms ahead; poll it once.
    Admit(u8, Option<u64>),
    /// Drop the i-th (mod len) pending admit future, without letting it observe a grant first.
    DropQueued(usize),
    /// Finish the i-th (mod len) permit: success, failure or plain drop.
    Complete(usize, u8),
    /// Let time pass.
    Advance(u64),
    /// Change the limit.
    SetLimit(usize),
    /// Let every pending admit observe what happened.
    PollAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, prop::option::of(0u64..30)).prop_map(|(p, d)| Op::Admit(p, d)),
        2 => any::<usize>().prop_map(Op::DropQueued),
        3 => (any::<usize>(), 0u8..3).prop_map(|(i, how)| Op::Complete(i, how)),
        2 => (0u64..25).prop_map(Op::Advance),
        1 => (0usize..6).prop_map(Op::SetLimit),
        3 => Just(Op::PollAll),
    ]
}

const PRIORITIES: [Priority; 4] = [
    Priority::Low,
    Priority::Normal,
    Priority::High,
    Priority::Critical,
];

/// Polls every pending admit until none settles any more; settled ones become permits.
async fn poll_all(pending: &mut Vec<Admit<'_>>, permits: &mut Vec<Permit>) {
    loop {
        let mut settled = false;
        let mut still = Vec::new();
        for mut fut in pending.drain(..) {
            match poll_once(&mut fut).await {
                None => still.push(fut),
                Some(outcome) => {
                    settled = true;
                    if let Ok(permit) = outcome {
                        permits.push(permit);
                    }
                }
            }
        }
        *pending = still;
        if !settled {
            return;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_schedules_respect_the_limit_and_leak_nothing(
        ops in prop::collection::vec(op(), 1..120),
        max_queue in 0usize..6,
        codel in any::<bool>(),
        adaptive in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let config = AdmissionConfig {
                max_queue,
                codel: codel.then_some(CodelConfig {
                    target: ms(2),
                    interval: ms(10),
                    shed_after: ms(4),
                }),
            };
            // Either a limit set by the schedule, or one that AIMD moves with every completion.
            let fixed = Arc::new(Fixed::new(2));
            let aimd = Arc::new(
                Aimd::new(AimdConfig {
                    initial_limit: 2,
                    min_limit: 1,
                    max_limit: 5,
                    backoff_ratio: 0.5,
                    latency_threshold: ms(10),
                })
                .unwrap(),
            );
            let limiter: Arc<dyn Limiter> = if adaptive { aimd } else { fixed.clone() };
            let gate = Admission::new("primary", Arc::clone(&limiter), config).unwrap();
            let mut pending: Vec<Admit<'_>> = Vec::new();
            let mut permits: Vec<Permit> = Vec::new();

            for op in ops {
                let before = gate.snapshot();
                match op {
                    Op::Admit(p, deadline) => {
                        let deadline = deadline.map(|d| Instant::now() + ms(d));
                        let mut fut: Admit<'_> =
                            Box::pin(gate.admit(PRIORITIES[p as usize], deadline));
                        match poll_once(&mut fut).await {
                            None => pending.push(fut),
                            Some(Ok(permit)) => permits.push(permit),
                            // Turned away on arrival only when every slot is taken.
                            Some(Err(err)) => assert!(err.in_flight >= err.limit, "{err}"),
                        }
                    }
                    Op::DropQueued(i) if !pending.is_empty() => {
                        drop(pending.remove(i % pending.len()));
                    }
                    Op::Complete(i, how) if !permits.is_empty() => {
                        let permit = permits.remove(i % permits.len());
                        match how {
                            0 => permit.success(),
                            1 => permit.failure(),
                            _ => drop(permit),
                        }
                    }
                    Op::Advance(n) => advance(ms(n)).await,
                    Op::SetLimit(n) => fixed.set(n),
                    Op::PollAll => {
                        poll_all(&mut pending, &mut permits).await;
                        // Every slot is held by a permit we own: nothing leaked, nothing lost.
                        let now = gate.snapshot();
                        assert_eq!(now.in_flight, permits.len());
                        assert_eq!(now.queue_len, pending.len());
                    }
                    _ => {}
                }

                let after = gate.snapshot();
                let limit = limiter.limit().max(1);
                // Slots are only handed out within the limit; a shrunken limit lets the work
                // already in flight finish.
                if after.admitted > before.admitted {
                    assert!(after.in_flight <= limit, "{after:?} limit {limit}");
                }
                assert!(after.in_flight <= limit.max(before.in_flight));
                assert!(after.queue_len <= max_queue);
                assert!(after.queue_len <= pending.len());
            }

            poll_all(&mut pending, &mut permits).await;
            let settled = gate.snapshot();
            assert_eq!((settled.in_flight, settled.queue_len), (permits.len(), pending.len()));
            drop(pending);
            drop(permits);
            let end = gate.snapshot();
            assert_eq!((end.in_flight, end.queue_len), (0, 0));
        });
    }
}

mod resized_pool {
    //! Issue 13: a node's pool resized inside a cluster resizes its admission gate too.

    use std::time::Duration;

    use seawall::admission::{AdmissionConfig, ShedReason};
    use seawall::cluster::{ClusterBuilder, LimiterKind};
    use seawall::sim::{SimBackend, SimConnector};
    use seawall::{Cluster, Error, Pool};

    fn cluster(
        limiter: LimiterKind,
        configure: impl FnOnce(ClusterBuilder<SimConnector>) -> ClusterBuilder<SimConnector>,
    ) -> Cluster<SimConnector> {
        let db = SimBackend::builder("primary").build();
        let pool = Pool::builder(db.connector())
            .name("primary")
            .max_size(2)
            .build()
            .unwrap();
        configure(Cluster::builder().primary("primary", pool).limiter(limiter))
            .probe_interval(None)
            .build()
            .unwrap()
    }

    fn no_queue() -> AdmissionConfig {
        AdmissionConfig {
            max_queue: 0,
            codel: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn growing_the_pool_raises_the_limit_of_every_pool_sized_limiter() {
        for kind in [
            LimiterKind::Gradient,
            LimiterKind::Aimd,
            LimiterKind::PoolSize,
        ] {
            let name = format!("{kind:?}");
            let cluster = cluster(kind, |b| b.admission(no_queue()));
            let node = cluster.node("primary").unwrap();
            let mut held = vec![
                cluster.write().await.unwrap(),
                cluster.write().await.unwrap(),
            ];
            match cluster.write().await {
                Err(Error::Overloaded(o)) => assert_eq!((o.in_flight, o.limit), (2, 2), "{name}"),
                other => panic!("{name}: expected Overloaded at 2/2, got {other:?}"),
            }

            node.pool().set_max_size(8).unwrap();
            assert_eq!(node.admission().snapshot().limit, 8, "{name}");
            assert_eq!(node.snapshot().pool.max_size, 8, "{name}");
            for _ in 2..8 {
                held.push(cluster.write().await.expect("within the new size"));
            }
            match cluster.write().await {
                Err(Error::Overloaded(o)) => assert_eq!((o.in_flight, o.limit), (8, 8), "{name}"),
                other => panic!("{name}: expected Overloaded at 8/8, got {other:?}"),
            }
            assert_eq!(node.load().utilisation(), Some(1.0), "{name}");

            // Shrinking lowers the limit: in flight over it, nothing new gets in.
            node.pool().set_max_size(4).unwrap();
            assert_eq!(node.admission().snapshot().limit, 4, "{name}");
            held.truncate(5);
            assert!(cluster.write().await.is_err(), "{name}: 5 in flight over 4");
            held.truncate(3);
            let _fourth = cluster.write().await.expect("3 in flight under 4");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_the_new_slot_at_once_and_the_shed_load_queue_grows() {
        // Default queue: the third write waits; growing the pool admits it with no other event.
        let cluster = cluster(LimiterKind::Gradient, |b| b);
        let node = cluster.node("primary").unwrap();
        let _held = [
            cluster.write().await.unwrap(),
            cluster.write().await.unwrap(),
        ];
        let third = tokio::spawn({
            let cluster = cluster.clone();
            async move { cluster.write().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(node.admission().snapshot().queue_len, 1);
        node.pool().set_max_size(3).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(third.is_finished());
        third.await.unwrap().unwrap();

        // shed_load: the queue is as deep as the pool, before and after.
        let cluster = cluster_shedding();
        let node = cluster.node("primary").unwrap();
        let _held = [
            cluster.write().await.unwrap(),
            cluster.write().await.unwrap(),
        ];
        let queued = |n: usize| {
            (0..n)
                .map(|_| {
                    let cluster = cluster.clone();
                    tokio::spawn(async move {
                        let _conn = cluster.write().await?;
                        // Holds its slot for the rest of the test.
                        std::future::pending::<()>().await;
                        Ok::<(), Error>(())
                    })
                })
                .collect::<Vec<_>>()
        };
        let first = queued(3);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(node.admission().snapshot().queue_len, 2);
        let mut shed = 0;
        for task in first {
            if task.is_finished() {
                match task.await.unwrap() {
                    Err(Error::Overloaded(o)) => {
                        assert_eq!(o.reason, ShedReason::QueueFull);
                        shed += 1;
                    }
                    other => panic!("expected QueueFull, got {other:?}"),
                }
            }
        }
        assert_eq!(shed, 1);
        node.pool().set_max_size(4).unwrap();
        // Two slots more served the two waiters; the queue now holds four.
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(node.admission().snapshot().in_flight, 4);
        let _more = queued(4);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(node.admission().snapshot().queue_len, 4);
    }

    fn cluster_shedding() -> Cluster<SimConnector> {
        cluster(LimiterKind::PoolSize, |b| b.shed_load())
    }
}
