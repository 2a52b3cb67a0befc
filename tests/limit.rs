//! How the adaptive limiters respond to latency and drops, with concrete numbers.

use std::time::Duration;

use seawall::limit::{
    Aimd, AimdConfig, Fixed, Gradient, GradientConfig, Limiter, QueueSize, Sample,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn micros(n: f64) -> Duration {
    Duration::from_secs_f64(n / 1e6)
}

/// Feeds `n` successes at `latency` with the limiter fully used; returns every limit seen.
fn feed(limiter: &dyn Limiter, n: usize, latency: Duration) -> Vec<usize> {
    (0..n)
        .map(|_| {
            limiter.on_sample(Sample::success(latency, limiter.limit()));
            limiter.limit()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------- AIMD

fn aimd(initial: usize, min: usize, max: usize) -> Aimd {
    Aimd::new(AimdConfig {
        initial_limit: initial,
        min_limit: min,
        max_limit: max,
        backoff_ratio: 0.9,
        latency_threshold: ms(100),
    })
    .unwrap()
}

#[test]
fn aimd_backs_off_multiplicatively_on_drops_down_to_min() {
    let limiter = aimd(20, 5, 100);
    let mut seen = Vec::new();
    for _ in 0..12 {
        limiter.on_sample(Sample::dropped(ms(1), 20));
        seen.push(limiter.limit());
    }
    // floor(x * 0.9), always at least one less, never below min_limit = 5.
    assert_eq!(seen, [18, 16, 14, 12, 10, 9, 8, 7, 6, 5, 5, 5]);
}

#[test]
fn aimd_backoff_reaches_one_with_min_one() {
    let limiter = aimd(4, 1, 100);
    let seen: Vec<_> = (0..5)
        .map(|_| {
            limiter.on_sample(Sample::dropped(ms(1), 4));
            limiter.limit()
        })
        .collect();
    assert_eq!(seen, [3, 2, 1, 1, 1]);
}

#[test]
fn aimd_grows_by_one_per_round_of_successes_up_to_max() {
    let limiter = aimd(10, 1, 12);
    let seen = feed(&limiter, 30, ms(10));
    // 10 successes at limit 10 make one round: +1. Then 11 at limit 11: +1. Then capped at 12.
    assert_eq!(seen[8], 10);
    assert_eq!(seen[9], 11);
    assert_eq!(seen[19], 11);
    assert_eq!(seen[20], 12);
    assert_eq!(*seen.iter().max().unwrap(), 12);
    assert_eq!(seen[29], 12);
}

#[test]
fn aimd_does_not_grow_while_mostly_idle() {
    let limiter = aimd(10, 1, 100);
    // Four in flight is less than half of ten: the backend was not pushed.
    for _ in 0..100 {
        limiter.on_sample(Sample::success(ms(10), 4));
    }
    assert_eq!(limiter.limit(), 10);
    // Five is half: counts.
    for _ in 0..10 {
        limiter.on_sample(Sample::success(ms(10), 5));
    }
    assert_eq!(limiter.limit(), 11);
}

#[test]
fn aimd_rising_latency_shrinks_to_min_and_falling_latency_grows_to_max() {
    let limiter = aimd(20, 4, 40);
    // Latency climbs from 50 ms by 5 ms per sample; past the 100 ms threshold every sample is a
    // drop.
    let mut seen = Vec::new();
    for step in 0..60 {
        let latency = ms(50 + 5 * step);
        limiter.on_sample(Sample::success(latency, limiter.limit()));
        seen.push((latency, limiter.limit()));
    }
    let at_threshold = seen.iter().find(|(l, _)| *l == ms(100)).unwrap().1;
    assert_eq!(at_threshold, 20, "under the threshold the limit holds");
    let after: Vec<_> = seen
        .iter()
        .filter(|(l, _)| *l > ms(100))
        .map(|(_, limit)| *limit)
        .collect();
    assert_eq!(&after[..6], [18, 16, 14, 12, 10, 9]);
    assert!(after.iter().all(|&limit| limit >= 4));
    assert_eq!(*after.last().unwrap(), 4);

    // Latency falls back to 20 ms: one per round, up to the max, not beyond.
    let seen = feed(&limiter, 2000, ms(20));
    assert_eq!(seen[3], 5, "4 successes at limit 4 make the first round");
    assert_eq!(*seen.last().unwrap(), 40);
    assert!(seen.iter().all(|&limit| limit <= 40));
}

#[test]
fn aimd_config_errors_name_the_field() {
    let bad = |config: AimdConfig| Aimd::new(config).unwrap_err().field;
    let ok = AimdConfig::default();
    assert_eq!(
        bad(AimdConfig {
            min_limit: 0,
            ..ok.clone()
        }),
        "min_limit"
    );
    assert_eq!(
        bad(AimdConfig {
            min_limit: 10,
            max_limit: 5,
            ..ok.clone()
        }),
        "max_limit"
    );
    assert_eq!(
        bad(AimdConfig {
            initial_limit: 500,
            ..ok.clone()
        }),
        "initial_limit"
    );
    for ratio in [0.4, 1.0, f64::NAN] {
        assert_eq!(
            bad(AimdConfig {
                backoff_ratio: ratio,
                ..ok.clone()
            }),
            "backoff_ratio"
        );
    }
    assert_eq!(
        bad(AimdConfig {
            latency_threshold: Duration::ZERO,
            ..ok.clone()
        }),
        "latency_threshold"
    );
    let e = Aimd::new(AimdConfig {
        backoff_ratio: 1.5,
        ..ok
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid configuration: `backoff_ratio` must lie in [0.5, 1.0), got 1.5"
    );
}

// ------------------------------------------------------------------------------------ Gradient

fn gradient(initial: usize, min: usize, max: usize) -> Gradient {
    Gradient::new(GradientConfig {
        initial_limit: initial,
        min_limit: min,
        max_limit: max,
        ..GradientConfig::default()
    })
    .unwrap()
}

/// The limit after `n` samples at constant latency and full use: the gradient is 1, so each sample
/// moves the limit by smoothing * queue_size / limit = 0.2 * sqrt(limit) / limit.
fn steady_growth(mut limit: f64, n: usize) -> f64 {
    for _ in 0..n {
        limit += 0.2 * limit.sqrt() / limit;
    }
    limit
}

#[test]
fn gradient_probes_up_under_steady_latency_up_to_max() {
    let limiter = gradient(20, 4, 60);
    let seen = feed(&limiter, 3000, ms(10));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "never shrinks");
    assert_eq!(seen[99], steady_growth(20.0, 100) as usize);
    assert_eq!(seen[99], 24);
    assert_eq!(*seen.last().unwrap(), 60);
    assert!(seen.iter().all(|&limit| limit <= 60));
}

#[test]
fn gradient_rising_latency_shrinks_to_min_never_below() {
    let limiter = gradient(50, 10, 100);
    // Warm the baseline at 10 ms (the limit probes up meanwhile).
    feed(&limiter, 1000, ms(10));
    let warmed = limiter.limit();
    assert_eq!(warmed, steady_growth(50.0, 1000) as usize);
    // Then latency keeps rising by 0.5% per sample: the short average runs ahead of the baseline
    // by more than the 1.5 tolerance, so the limit keeps coming down.
    let mut latency = 10_000.0;
    let mut seen = Vec::new();
    for _ in 0..2000 {
        latency *= 1.005;
        limiter.on_sample(Sample::success(micros(latency), limiter.limit()));
        seen.push(limiter.limit());
    }
    let lowest = *seen.iter().min().unwrap();
    assert_eq!(lowest, 10, "reaches min_limit");
    assert_eq!(*seen.last().unwrap(), 10);
    // Once the trend is established (a few hundred samples) the limit only goes down.
    assert!(seen[300..].windows(2).all(|w| w[0] >= w[1]));
    assert!(seen[300] < warmed);
}

#[test]
fn gradient_falling_latency_recovers_to_max_never_above() {
    let limiter = gradient(50, 10, 100);
    // A long stretch at 100 ms sets the baseline high, then a rise pushes the limit to min.
    feed(&limiter, 1000, ms(100));
    let mut latency = 100_000.0;
    for _ in 0..3000 {
        latency *= 1.005;
        limiter.on_sample(Sample::success(micros(latency), limiter.limit()));
    }
    assert_eq!(limiter.limit(), 10);

    // Latency falls to 10 ms: far below the baseline, which is cut quickly; the gradient is 1
    // and the limit climbs back.
    let seen = feed(&limiter, 5000, ms(10));
    assert!(
        limiter.long_latency() < ms(20),
        "baseline followed latency down"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "never shrinks on the way up"
    );
    assert_eq!(*seen.last().unwrap(), 100);
    assert!(seen.iter().all(|&limit| limit <= 100));
}

#[test]
fn gradient_tolerance_band_ignores_jitter_and_small_steps() {
    let limiter = gradient(30, 4, 200);
    feed(&limiter, 700, ms(10));
    let before = limiter.limit();
    // Jitter between 10 and 14 ms, then a lasting 40% step to 14 ms: both inside the 1.5 band.
    let mut seen = Vec::new();
    for i in 0..400 {
        let latency = if i % 2 == 0 { ms(10) } else { ms(14) };
        limiter.on_sample(Sample::success(latency, limiter.limit()));
        seen.push(limiter.limit());
    }
    seen.extend(feed(&limiter, 400, ms(14)));
    assert!(seen.iter().all(|&limit| limit >= before));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));

    // The same step with no tolerance (1.0) shrinks the limit.
    let strict = Gradient::new(GradientConfig {
        initial_limit: 30,
        min_limit: 4,
        max_limit: 200,
        tolerance: 1.0,
        queue_size: QueueSize::Fixed(1),
        ..GradientConfig::default()
    })
    .unwrap();
    feed(&strict, 700, ms(10));
    let before = strict.limit();
    let seen = feed(&strict, 100, ms(14));
    assert!(*seen.iter().min().unwrap() < before);

    // And a step beyond the band (2x, to 20 ms) shrinks the tolerant limiter.
    let before = limiter.limit();
    let baseline = limiter.long_latency();
    assert!(baseline < ms(14));
    let seen = feed(&limiter, 100, 3 * baseline);
    assert!(*seen.last().unwrap() < before);
}

#[test]
fn gradient_drop_counts_as_worst_gradient() {
    let limiter = gradient(20, 4, 200);
    limiter.on_sample(Sample::dropped(ms(5000), 20));
    // target = 20 * 0.5 + sqrt(20) = 14.47; limit = 20 + (14.47 - 20) * 0.2 / 20 = 19.94.
    assert_eq!(limiter.limit(), 19);
    // The dropped latency stayed out of the averages.
    assert_eq!(limiter.long_latency(), Duration::ZERO);
}

#[test]
fn gradient_app_limited_never_grows_but_may_shrink() {
    let limiter = gradient(40, 4, 200);
    for _ in 0..500 {
        limiter.on_sample(Sample::success(ms(10), 10));
    }
    assert_eq!(limiter.limit(), 40, "10 of 40 in flight: no growth");
    for _ in 0..50 {
        limiter.on_sample(Sample::dropped(ms(10), 10));
    }
    assert!(
        limiter.limit() < 40,
        "drops shrink it even when app limited"
    );
}

#[test]
fn gradient_config_errors_name_the_field() {
    let bad = |config: GradientConfig| Gradient::new(config).unwrap_err().field;
    let ok = GradientConfig::default();
    assert_eq!(
        bad(GradientConfig {
            min_limit: 0,
            ..ok.clone()
        }),
        "min_limit"
    );
    assert_eq!(
        bad(GradientConfig {
            max_limit: 2,
            ..ok.clone()
        }),
        "max_limit"
    );
    assert_eq!(
        bad(GradientConfig {
            initial_limit: 1,
            ..ok.clone()
        }),
        "initial_limit"
    );
    for smoothing in [0.0, 1.5, f64::NAN] {
        assert_eq!(
            bad(GradientConfig {
                smoothing,
                ..ok.clone()
            }),
            "smoothing"
        );
    }
    for tolerance in [0.9, f64::INFINITY, f64::NAN] {
        assert_eq!(
            bad(GradientConfig {
                tolerance,
                ..ok.clone()
            }),
            "tolerance"
        );
    }
    assert_eq!(
        bad(GradientConfig {
            short_window: 0,
            ..ok.clone()
        }),
        "short_window"
    );
    assert_eq!(
        bad(GradientConfig {
            long_window: 5,
            ..ok
        }),
        "long_window"
    );
}

#[test]
fn fixed_ignores_samples() {
    let limiter = Fixed::new(7);
    limiter.on_sample(Sample::dropped(ms(1), 7));
    feed(&limiter, 100, ms(1));
    assert_eq!(limiter.limit(), 7);
}
