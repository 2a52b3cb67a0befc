//! Cost of one balancer pick, per strategy, over 3 and 16 nodes.
//!
//! The nodes carry realistic state (latency samples, calls in flight, weights) so that P2c's
//! cost computation does real work: decaying an estimate read from atomics, at the current time.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use seawall::balance::Strategy;
use seawall::load::{InFlight, NodeLoad};

/// `n` nodes with different latencies, loads and weights, and the guards keeping calls open.
fn nodes(n: usize) -> (Vec<Arc<NodeLoad>>, Vec<InFlight>) {
    let nodes: Vec<Arc<NodeLoad>> = (0..n).map(|_| Arc::new(NodeLoad::new())).collect();
    let mut calls = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        node.record(Duration::from_micros(500 + 300 * i as u64), true);
        node.set_weight(1 + i as u32 % 3);
        calls.extend((0..i % 4).map(|_| node.start()));
    }
    (nodes, calls)
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in [3, 16] {
        let (nodes, _calls) = nodes(n);
        let refs: Vec<&NodeLoad> = nodes.iter().map(|node| &**node).collect();
        for strategy in Strategy::ALL {
            let balancer = strategy.build_seeded(42);
            group.bench_with_input(BenchmarkId::new(strategy.name(), n), &refs, |b, refs| {
                b.iter(|| balancer.pick(black_box(refs)))
            });
        }
    }
    group.finish();
}

fn cost(c: &mut Criterion) {
    let (nodes, _calls) = nodes(1);
    c.bench_function("node_cost", |b| b.iter(|| black_box(&nodes[0]).cost()));
}

criterion_group!(benches, pick, cost);
criterion_main!(benches);
