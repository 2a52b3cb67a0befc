//! A small fleet (paused time, fixed seed) through the same code as `examples/fleet_replay.rs`
//! (issue 13): every goal of the summary line is asserted, the fleet size scaled down (20
//! instances against a primary whose knee is at 100) and the phases shortened.

use std::time::Duration;

use seawall::diagnosis::Layer;
use seawall::sim::fleet::{run, run_setup, FleetConfig, FleetReport};
use seawall::sim::workload::Outcome;

fn small() -> FleetConfig {
    FleetConfig {
        instances: 20,
        knee: 100,
        max_connections: 300,
        pooler_cap: 100,
        phase_durations: [
            Duration::from_secs(2),
            Duration::from_secs(3),
            Duration::from_secs(1),
        ],
        seed: 7,
        ..FleetConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn adaptive_limits_meet_every_goal_on_a_degrading_primary() {
    let config = small();
    let report = run(&config).await.unwrap();
    let goals = report.goals();
    println!("{goals}");
    for (goal, met) in goals.check() {
        println!("{} {goal}", if met { "met" } else { "NOT MET" });
    }
    assert!(goals.all_met(), "{goals:?}");
    assert!(goals.goodput_pct_of_knee >= 90.0, "{goals}");
    assert!(goals.naive_goodput_pct_of_knee <= 50.0, "{goals}");
    assert!(goals.jain_fairness >= 0.9, "{goals}");
    assert!(goals.limit_min < goals.pool_size, "{goals}");
    assert!(
        goals.primary_peak_inflight as f64 <= 1.25 * config.knee as f64,
        "{goals}"
    );
    assert!(goals.converge_ms <= 2000, "{goals}");
    assert_eq!(goals.failed_admitted_writes, 0, "{goals}");
    // The seawall set-ups beat the naive pools and the pooler.
    assert!(
        goals.goodput_pct_of_knee > goals.pooler_goodput_pct_of_knee,
        "{goals}"
    );
    assert!(
        goals.goodput_pct_of_knee > goals.fixed_goodput_pct_of_knee,
        "{goals:?}"
    );
    // Writes keep priority over reads.
    assert!(
        goals.surge_write_success_pct > goals.surge_read_success_pct,
        "{goals:?}"
    );
    // Shed work fails fast, never at or after its deadline.
    assert!(goals.slowest_shed < config.client_deadline, "{goals:?}");
    let adaptive = report.setup("adaptive").unwrap();
    let sheds = adaptive
        .instances
        .iter()
        .flat_map(|r| r.records())
        .filter(|r| r.outcome == Outcome::Shed)
        .count();
    assert!(sheds > 0);
    // The limit comes back up after the surge.
    assert!(goals.limit_end_mean > goals.limit_min as f64, "{goals:?}");
}

/// Every instance's own diagnosis (recorder on, no probes) blames the primary, at the database
/// layer, within 3 s of the surge, and says nothing before it. Where each instance waits behind
/// its adaptive limit (cut to its share of the knee) that is the server's capacity, not a pool
/// too small. Phases long enough for the diagnosis to learn a baseline (3 samples) first.
#[tokio::test(start_paused = true)]
async fn every_instance_names_the_primary_as_the_surge_unfolds() {
    let config = FleetConfig {
        phase_durations: [
            Duration::from_secs(5),
            Duration::from_secs(6),
            Duration::from_secs(3),
        ],
        ..small()
    };
    let mut setups = Vec::new();
    for name in ["fixed", "adaptive"] {
        setups.push(run_setup(&config, name).await.unwrap());
    }
    let report = FleetReport { config, setups };
    for setup in ["fixed", "adaptive"] {
        let summary = report.incident_summary(setup).unwrap();
        println!("{summary}");
        assert!(
            summary
                .incident
                .detected_after
                .is_some_and(|d| d <= Duration::from_secs(3)),
            "{summary}"
        );
        assert_eq!(
            summary.incident.culprit.as_deref(),
            Some("primary"),
            "{summary}"
        );
        assert_eq!(summary.incident.layer, Some(Layer::Database), "{summary}");
        assert_eq!(summary.incident.false_alarms, 0, "{summary}");
        assert!(
            summary.instances_detecting * 10 >= summary.instances * 9,
            "{summary}"
        );
        assert!(summary.to_string().starts_with("fleet incident setup="));
    }
    let adaptive = report.setup("adaptive").unwrap();
    assert!(
        adaptive
            .incidents
            .iter()
            .all(|i| i.step.incident.verdict.layer() == Layer::Database),
        "{:#?}",
        adaptive.incidents
    );
    assert!(report.incident_summary("no such set-up").is_none());
}

#[tokio::test(start_paused = true)]
async fn the_fleet_is_deterministic_for_a_seed_and_rejects_bad_input() {
    let config = FleetConfig {
        instances: 10,
        phase_durations: [Duration::from_millis(300); 3],
        ..small()
    };
    let a = run(&config).await.unwrap().goals();
    let b = run(&config).await.unwrap().goals();
    assert_eq!(a, b);
    let bad = FleetConfig {
        instances: 0,
        ..small()
    };
    assert_eq!(run(&bad).await.unwrap_err().field, "instances");
}
