//! The load model and the balancers, under paused time so that every figure is exact.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use seawall::balance::{Balancer, LeastInFlight, P2c, RoundRobin, Strategy, WeightedRandom};
use seawall::load::{InFlight, LoadConfig, NodeLoad, PeakEwma};
use tokio::time::{advance, Instant};

const MS: f64 = 1e6; // nanoseconds

fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / MS
}

fn assert_close(got: f64, expected: f64, tolerance: f64) {
    assert!(
        (got - expected).abs() <= tolerance,
        "got {got}, expected {expected} ± {tolerance}"
    );
}

fn refs(nodes: &[Arc<NodeLoad>]) -> Vec<&NodeLoad> {
    nodes.iter().map(|node| &**node).collect()
}

fn fresh(n: usize) -> Vec<Arc<NodeLoad>> {
    (0..n).map(|_| Arc::new(NodeLoad::new())).collect()
}

// ---- Peak EWMA ----

#[tokio::test(start_paused = true)]
async fn ewma_takes_a_peak_at_once() {
    let ewma = PeakEwma::new(LoadConfig::default()).unwrap();
    ewma.observe(Duration::from_millis(10));
    advance(Duration::from_millis(1)).await;
    ewma.observe(Duration::from_millis(250));
    assert_eq!(ewma.estimate(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn ewma_moves_toward_lower_samples_with_the_decay_time_constant() {
    let decay = Duration::from_secs(2);
    let ewma = PeakEwma::new(LoadConfig::default().with_decay(decay)).unwrap();
    ewma.observe(Duration::from_millis(100));

    // One time constant later a 10 ms sample weighs 1 − e⁻¹ against the old estimate.
    advance(decay).await;
    ewma.observe(Duration::from_millis(10));
    let w = (-1f64).exp();
    let expected = 100.0 * w + 10.0 * (1.0 - w); // 43.21 ms
    assert_close(ms(ewma.estimate()), expected, 1e-6);

    // A sample right after the last one barely moves it: weight is by time, not by count.
    ewma.observe(Duration::from_millis(10));
    assert_close(ms(ewma.estimate()), expected, 1e-6);
}

#[tokio::test(start_paused = true)]
async fn ewma_fades_between_samples_with_the_decay_time_constant() {
    let ewma = PeakEwma::new(LoadConfig::default()).unwrap(); // 10 s decay
    ewma.observe(Duration::from_millis(100));
    let sampled = Instant::now();

    advance(Duration::from_secs(10)).await;
    assert_close(ms(ewma.estimate()), 100.0 * (-1f64).exp(), 1e-6); // 36.79 ms

    // Half-life is τ·ln 2.
    let half_life = Duration::from_secs_f64(10.0 * 2f64.ln());
    assert_close(ms(ewma.estimate_at(sampled + half_life)), 50.0, 1e-3);
    assert_eq!(ewma.updated_at(), sampled);
}

#[tokio::test(start_paused = true)]
async fn fresh_node_costs_the_default_rtt_until_its_first_sample() {
    let node = NodeLoad::new();
    assert_eq!(node.latency(), LoadConfig::default().default_rtt());
    assert_close(node.cost(), 30.0 * MS, 1e-6);

    let custom = LoadConfig::default().with_default_rtt(Duration::from_millis(5));
    let node = NodeLoad::with_config(custom).unwrap();
    assert_close(node.cost(), 5.0 * MS, 1e-6);

    // The first measurement replaces the guess, even when lower.
    node.record(Duration::from_micros(800), true);
    assert_eq!(node.latency(), Duration::from_micros(800));
}

#[tokio::test(start_paused = true)]
async fn a_failure_costs_at_least_the_penalty() {
    let config = LoadConfig::default().with_penalty(Duration::from_millis(200));
    let node = NodeLoad::with_config(config).unwrap();
    node.record(Duration::from_millis(2), true);
    node.record(Duration::from_millis(3), false); // a fast error: charged 200 ms
    assert_eq!(node.latency(), Duration::from_millis(200));
    node.record(Duration::from_millis(700), false); // a slow error: its own latency
    assert_eq!(node.latency(), Duration::from_millis(700));
}

#[test]
fn zero_decay_is_a_typed_error() {
    let config = LoadConfig::default().with_decay(Duration::ZERO);
    let err = NodeLoad::with_config(config).unwrap_err();
    assert_eq!(err.field, "decay");
    assert!(PeakEwma::new(config).is_err());
}

// ---- NodeLoad ----

#[tokio::test(start_paused = true)]
async fn finished_call_records_its_latency_and_cost_counts_in_flight() {
    let node = Arc::new(NodeLoad::new());
    let call = node.start();
    advance(Duration::from_millis(40)).await;
    call.finish(true);
    assert_eq!(node.in_flight(), 0);
    assert_eq!(node.latency(), Duration::from_millis(40));
    assert_close(node.cost(), 40.0 * MS, 1e-6);

    let calls: Vec<InFlight> = (0..2).map(|_| node.start()).collect();
    assert_eq!(node.in_flight(), 2);
    assert_close(node.cost(), 3.0 * 40.0 * MS, 1e-6);
    drop(calls);
    assert_close(node.cost(), 40.0 * MS, 1e-6);
}

#[tokio::test(start_paused = true)]
async fn dropped_guard_is_a_cancel_without_a_sample() {
    let node = Arc::new(NodeLoad::new());
    let created = node.latency_updated_at();
    let call = node.start();
    assert_eq!(node.in_flight(), 1);
    advance(Duration::from_secs(3)).await;
    drop(call);
    assert_eq!(node.in_flight(), 0);
    assert_eq!(node.latency_updated_at(), created, "no sample recorded");
    assert_eq!(node.error_rate(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn error_rate_rises_at_once_and_decays_with_successes() {
    let node = NodeLoad::new();
    assert_eq!(node.error_rate(), 0.0);
    for _ in 0..4 {
        node.record(Duration::from_millis(1), false);
    }
    assert_eq!(node.error_rate(), 1.0);

    // One decay later the four errors weigh 4·e⁻¹ against one success.
    advance(Duration::from_secs(10)).await;
    node.record(Duration::from_millis(1), true);
    let old = 4.0 * (-1f64).exp();
    assert_close(node.error_rate(), old / (old + 1.0), 1e-9); // 0.595

    for _ in 0..30 {
        advance(Duration::from_secs(1)).await;
        node.record(Duration::from_millis(1), true);
    }
    assert!(node.error_rate() < 0.05, "{}", node.error_rate());
}

#[test]
fn pool_and_probe_fields_round_trip() {
    let node = NodeLoad::new();
    assert_eq!(node.utilisation(), None);
    node.set_capacity(8);
    let node = Arc::new(node);
    let calls: Vec<InFlight> = (0..6).map(|_| node.start()).collect();
    assert_eq!(node.capacity(), Some(8));
    assert_eq!(node.utilisation(), Some(0.75));
    drop(calls);
    node.set_replayed_position(42);
    assert_eq!(node.replayed_position(), 42);
    assert_eq!(node.weight(), 1);
    node.set_weight(5);
    assert_eq!(node.weight(), 5);
}

#[test]
fn can_serve_read_applies_lag_and_position() {
    let node = NodeLoad::new();
    let second = Duration::from_secs(1);
    // No requirement: anyone.
    assert!(node.can_serve_read(None, None));
    // A lag bound with an unknown lag: not eligible.
    assert!(!node.can_serve_read(Some(second), None));

    node.set_replication_lag(Some(Duration::from_millis(300)));
    assert!(node.can_serve_read(Some(second), None));
    assert!(node.can_serve_read(Some(Duration::from_millis(300)), None)); // at the bound
    assert!(!node.can_serve_read(Some(Duration::from_millis(299)), None));

    // Position: replayed up to and including min_position.
    node.set_replayed_position(1_000);
    assert!(node.can_serve_read(None, Some(999)));
    assert!(node.can_serve_read(None, Some(1_000)));
    assert!(!node.can_serve_read(None, Some(1_001)));
    // Both must hold.
    assert!(!node.can_serve_read(Some(Duration::from_millis(100)), Some(10)));
    assert!(node.can_serve_read(Some(second), Some(1_000)));

    // The probe lost track: unknown again.
    node.set_replication_lag(None);
    assert!(!node.can_serve_read(Some(second), None));
}

#[test]
fn concurrent_calls_balance_out() {
    let node = Arc::new(NodeLoad::new());
    std::thread::scope(|s| {
        for t in 0..4 {
            let node = &node;
            s.spawn(move || {
                for i in 0..5_000 {
                    let call = node.start();
                    match i % 3 {
                        0 => drop(call),
                        1 => call.finish(true),
                        _ => call.finish(t % 2 == 0),
                    }
                }
            });
        }
    });
    assert_eq!(node.in_flight(), 0);
    assert!((0.0..=1.0).contains(&node.error_rate()));
}

// ---- Balancers ----

fn all_seeded(seed: u64) -> Vec<Box<dyn Balancer>> {
    Strategy::ALL
        .into_iter()
        .map(|s| s.build_seeded(seed))
        .collect()
}

#[test]
fn empty_is_none_and_single_is_zero() {
    let node = NodeLoad::new();
    for balancer in all_seeded(1).into_iter().chain(
        Strategy::ALL.into_iter().map(Strategy::build), // OS-seeded
    ) {
        assert_eq!(balancer.pick(&[]), None);
        for _ in 0..5 {
            assert_eq!(balancer.pick(&[&node]), Some(0));
        }
    }
}

/// Runs a closed-loop load: `per_ms` calls arrive each millisecond, each lasting its node's
/// `latency`. Returns the picks per node after a one-second warm-up.
async fn simulate(balancer: &dyn Balancer, latencies: &[Duration], per_ms: usize) -> Vec<usize> {
    let nodes = fresh(latencies.len());
    let mut running: Vec<(Instant, InFlight)> = Vec::new();
    let mut picks = vec![0; nodes.len()];
    for step in 0..5_000 {
        let now = Instant::now();
        for _ in 0..per_ms {
            let i = balancer.pick(&refs(&nodes)).unwrap();
            if step >= 1_000 {
                picks[i] += 1;
            }
            running.push((now + latencies[i], nodes[i].start()));
        }
        advance(Duration::from_millis(1)).await;
        let now = Instant::now();
        let (ended, still): (Vec<_>, Vec<_>) = running.drain(..).partition(|(end, _)| *end <= now);
        running = still;
        for (_, call) in ended {
            call.finish(true);
        }
    }
    picks
}

#[tokio::test(start_paused = true)]
async fn p2c_keeps_traffic_off_a_ten_times_slower_node() {
    let latencies = [
        Duration::from_millis(5),
        Duration::from_millis(50), // the slow one
        Duration::from_millis(5),
    ];
    let picks = simulate(&P2c::with_seed(7), &latencies, 4).await;
    let total: usize = picks.iter().sum();
    let slow_share = picks[1] as f64 / total as f64;
    assert!(
        slow_share < 0.10,
        "slow node got {slow_share:.3} of {picks:?}"
    );
    // And the fast ones share the rest evenly.
    let (a, b) = (picks[0] as f64, picks[2] as f64);
    assert!((a - b).abs() / (a + b) < 0.1, "{picks:?}");

    // Round robin, blind to load, gives it its third.
    let rr = simulate(&RoundRobin::new(), &latencies, 4).await;
    assert_close(rr[1] as f64 / total as f64, 1.0 / 3.0, 0.01);
}

#[test]
fn p2c_never_picks_the_most_expensive_of_three() {
    let nodes = fresh(3);
    for (node, latency) in nodes.iter().zip([4, 40, 8]) {
        node.record(Duration::from_millis(latency), true);
    }
    let p2c = P2c::with_seed(11);
    let mut picks = [0; 3];
    for _ in 0..3_000 {
        picks[p2c.pick(&refs(&nodes)).unwrap()] += 1;
    }
    // The cheapest wins both of its pairs, the middle one only against the worst.
    assert_eq!(picks[1], 0, "{picks:?}");
    assert_close(picks[0] as f64 / 3_000.0, 2.0 / 3.0, 0.05);
}

#[test]
fn round_robin_is_exactly_even() {
    let nodes = fresh(3);
    let rr = RoundRobin::new();
    let mut picks = [0; 3];
    for k in 0..3_000 {
        let i = rr.pick(&refs(&nodes)).unwrap();
        assert_eq!(i, k % 3);
        picks[i] += 1;
    }
    assert_eq!(picks, [1_000; 3]);
}

#[test]
fn least_in_flight_picks_the_minimum() {
    let nodes = fresh(4);
    let mut calls = Vec::new();
    for (node, n) in nodes.iter().zip([3, 1, 2, 4]) {
        calls.extend((0..n).map(|_| node.start()));
    }
    let lif = LeastInFlight::new();
    for _ in 0..8 {
        assert_eq!(lif.pick(&refs(&nodes)), Some(1));
    }
    // Ties are shared rather than always going to the first.
    drop(calls);
    let picks: Vec<usize> = (0..4).map(|_| lif.pick(&refs(&nodes)).unwrap()).collect();
    let mut distinct = picks.clone();
    distinct.sort_unstable();
    assert_eq!(distinct, [0, 1, 2, 3], "{picks:?}");
}

#[test]
fn weighted_random_follows_the_weights() {
    let nodes = fresh(4);
    for (node, w) in nodes.iter().zip([1, 2, 7, 0]) {
        node.set_weight(w);
    }
    let balancer = WeightedRandom::with_seed(99);
    let rounds = 100_000;
    let mut picks = [0; 4];
    for _ in 0..rounds {
        picks[balancer.pick(&refs(&nodes)).unwrap()] += 1;
    }
    for (count, share) in picks.iter().zip([0.1, 0.2, 0.7, 0.0]) {
        assert_close(*count as f64 / rounds as f64, share, 0.01);
    }
    assert_eq!(picks[3], 0);

    // All weights zero: uniform.
    for node in &nodes {
        node.set_weight(0);
    }
    let mut picks = [0; 4];
    for _ in 0..rounds {
        picks[balancer.pick(&refs(&nodes)).unwrap()] += 1;
    }
    for count in picks {
        assert_close(count as f64 / rounds as f64, 0.25, 0.01);
    }
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_sequence() {
    // Equal costs, so P2c's choice is its random draw.
    let nodes = fresh(5);
    let sequence = |balancer: &dyn Balancer| -> Vec<usize> {
        (0..1_000)
            .map(|_| balancer.pick(&refs(&nodes)).unwrap())
            .collect()
    };
    for strategy in [Strategy::P2c, Strategy::WeightedRandom] {
        let first = sequence(&*strategy.build_seeded(2024));
        assert_eq!(first, sequence(&*strategy.build_seeded(2024)), "{strategy}");
        assert_ne!(first, sequence(&*strategy.build_seeded(2025)), "{strategy}");
        // Every node is reachable.
        assert!((0..5).all(|i| first.contains(&i)), "{strategy}");
    }
}

#[test]
fn strategies_parse_by_name() {
    for strategy in Strategy::ALL {
        assert_eq!(strategy.name().parse::<Strategy>().unwrap(), strategy);
        assert_eq!(strategy.to_string(), strategy.name());
    }
    assert_eq!(Strategy::default(), Strategy::P2c);
    let err = "fastest".parse::<Strategy>().unwrap_err();
    assert_eq!(err.field, "strategy");
}

proptest! {
    #[test]
    fn pick_is_always_in_bounds(
        seed in any::<u64>(),
        state in prop::collection::vec((0u64..10_000_000, 0usize..5, 0u32..4, any::<bool>()), 1..40),
    ) {
        let nodes = fresh(state.len());
        let mut calls = Vec::new();
        for (node, &(latency_us, in_flight, weight, ok)) in nodes.iter().zip(&state) {
            node.record(Duration::from_micros(latency_us), ok);
            node.set_weight(weight);
            calls.extend((0..in_flight).map(|_| node.start()));
        }
        for balancer in all_seeded(seed) {
            for _ in 0..8 {
                let i = balancer.pick(&refs(&nodes));
                prop_assert!(matches!(i, Some(i) if i < nodes.len()), "{i:?}");
            }
        }
    }
}
