//! A shortened outage replay (paused time, fixed seed) through the same code as
//! `examples/outage_replay.rs`, checking the goals of issue 4.

use std::time::Duration;

use seawall::sim::outage::{replay, OutageConfig, GOODPUT_GOAL_PCT};
use seawall::sim::workload::Kind;

fn short() -> OutageConfig {
    OutageConfig {
        phase_durations: [
            Duration::from_secs(2),
            Duration::from_secs(5),
            Duration::from_secs(3),
        ],
        seed: 7,
        ..OutageConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn seawall_meets_the_goals_where_the_naive_pool_collapses() {
    let report = replay(&short()).await;
    let goals = report.goals();
    println!("{goals}");
    for (goal, met) in goals.check() {
        assert!(met, "goal not met: {goal}");
    }
    assert!(goals.all_met());

    // The goals, spelled out.
    assert_eq!(goals.seawall_failed_admitted_writes, 0);
    assert!(goals.primary_peak_inflight <= goals.primary_limit);
    assert!(goals.seawall_surge_goodput_pct >= GOODPUT_GOAL_PCT);
    assert!(goals.naive_surge_success_pct * 2.0 <= goals.seawall_surge_success_pct);

    // Both set-ups saw the same arrivals.
    let arrivals = |r: &seawall::sim::workload::Recording| {
        r.records().iter().map(|r| r.arrival).collect::<Vec<_>>()
    };
    assert_eq!(
        arrivals(&report.naive.recording),
        arrivals(&report.seawall.recording)
    );
    assert_eq!(
        arrivals(&report.seawall.recording),
        short().workload().arrivals()
    );

    // Normal load is served by both; the naive pool collapses in the surge by queueing past
    // the client deadline: its requests time out waiting or are abandoned mid-query, and the
    // primary server piles up work nobody waits for.
    for setup in [&report.naive, &report.seawall] {
        assert_eq!(setup.phase(0).success_rate(), 1.0, "{}", setup.name);
    }
    let naive_surge = report.naive.phase(1);
    assert!(naive_surge.timed_out + naive_surge.failed > naive_surge.requests / 2);
    assert!(report.primary_peak(&report.naive, 1) > 10 * report.config.capacity);
    // seawall answers what it admits quickly and sheds the rest at once.
    let seawall_surge = report.seawall.phase(1);
    assert_eq!(seawall_surge.failed + seawall_surge.timed_out, 0);
    assert!(seawall_surge.p99.unwrap() < Duration::from_millis(200));
    assert_eq!(
        seawall_surge.shed,
        report.seawall.shed_reasons.values().sum::<usize>()
    );
    // Writes get through on the primary: none shed, none failed.
    let writes = report
        .seawall
        .recording
        .summarize(|r| r.arrival.kind == Kind::Write);
    assert_eq!(writes.ok, writes.requests);
}

#[tokio::test(start_paused = true)]
async fn the_replay_is_deterministic_for_a_seed() {
    let config = OutageConfig {
        phase_durations: [
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_secs(1),
        ],
        ..short()
    };
    let (a, b) = (replay(&config).await, replay(&config).await);
    assert_eq!(a.goals(), b.goals());
    assert_eq!(a.seawall.recording.records(), b.seawall.recording.records());
    assert_eq!(a.naive.recording.records(), b.naive.recording.records());
}

/// Issue 15: the diagnosis names the primary and the database within 3 s of the surge, and
/// says nothing in the normal phases.
#[tokio::test(start_paused = true)]
async fn the_diagnosis_names_the_primary_within_3_s_and_nothing_else() {
    let config = OutageConfig {
        phase_durations: [
            Duration::from_secs(6),
            Duration::from_secs(6),
            Duration::from_secs(6),
        ],
        seed: 7,
        ..OutageConfig::default()
    };
    let report = replay(&config).await;
    let summary = report.incident_summary();
    println!("{summary}");
    let detected = summary.detected_after.expect("a verdict during the surge");
    assert!(detected <= Duration::from_secs(3), "{summary}");
    assert_eq!(summary.culprit.as_deref(), Some("primary"), "{summary}");
    assert_eq!(
        summary.layer,
        Some(seawall::diagnosis::Layer::Database),
        "{summary}"
    );
    assert_eq!(summary.false_alarms, 0, "{summary}");
    assert!(summary
        .to_string()
        .starts_with("incident detected_after_ms="));
    // The cluster's own diagnosis of its replicas (at their pools' limits, shedding, answering
    // at their usual speed) blames no database.
    let opened: Vec<_> = report
        .seawall
        .incidents
        .iter()
        .filter(|s| s.opened)
        .collect();
    assert!(!opened.is_empty());
    for step in opened {
        assert_ne!(
            step.incident.verdict.layer(),
            seawall::diagnosis::Layer::Database,
            "{}",
            step.incident
        );
    }
}
