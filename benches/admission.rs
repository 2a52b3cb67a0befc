//! Cost of the admission gate's uncontended path (admit + release) and of one limiter sample.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use seawall::admission::{Admission, AdmissionConfig, Priority};
use seawall::limit::{Aimd, AimdConfig, Fixed, Gradient, GradientConfig, Limiter, Sample};

fn admit_release(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("admit_release");
    let gates = [
        (
            "fixed",
            Admission::new("bench", Fixed::new(64), AdmissionConfig::default()),
        ),
        (
            "aimd",
            Admission::new(
                "bench",
                Aimd::new(AimdConfig::default()).unwrap(),
                AdmissionConfig::default(),
            ),
        ),
        (
            "gradient",
            Admission::new(
                "bench",
                Gradient::new(GradientConfig::default()).unwrap(),
                AdmissionConfig::default(),
            ),
        ),
    ];
    for (name, gate) in gates {
        let gate = gate.unwrap();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                gate.admit(Priority::Normal, None).await.unwrap().success();
            })
        });
    }
    group.finish();
}

fn limiter_sample(c: &mut Criterion) {
    let mut group = c.benchmark_group("on_sample");
    let sample = Sample::success(Duration::from_millis(3), 10);
    let aimd = Aimd::new(AimdConfig::default()).unwrap();
    group.bench_function("aimd", |b| {
        b.iter(|| aimd.on_sample(std::hint::black_box(sample)))
    });
    let gradient = Gradient::new(GradientConfig::default()).unwrap();
    group.bench_function("gradient", |b| {
        b.iter(|| gradient.on_sample(std::hint::black_box(sample)))
    });
    group.finish();
}

criterion_group!(benches, admit_release, limiter_sample);
criterion_main!(benches);
