//! The postmortem's outage, replayed: a surge of mostly reads to three times the primary's
//! capacity, against an unprotected pool on the primary ("naive") and against a seawall cluster
//! of the primary and two replicas ("seawall"), on the same seeded, open-loop arrivals.
//!
//! ```text
//! cargo run --example outage_replay [-- OUTPUT.svg]
//! ```
//!
//! It runs under Tokio's paused clock: forty simulated seconds take a few real ones, and every
//! run prints the same figures. It prints a table per phase, checks the goals, writes a chart of
//! latency and error rate over time (default `target/outage_replay.svg`), and ends with a
//! machine-readable `summary` line.
//!
//! The scenario and both set-ups are [`seawall::sim::outage`]; the test `tests/outage_replay.rs`
//! runs a shortened replay through the same code.

use std::path::PathBuf;
use std::time::Duration;

use plotters::prelude::*;
use seawall::sim::outage::{
    replay, replay_seawall, OutageConfig, OutageReport, SeawallTuning, SetupReport, PHASES,
};
use seawall::sim::workload::{Bucket, Summary};

/// Picks a latency percentile from a bucket's summary.
type Percentile = fn(&Summary) -> Option<Duration>;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let output = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/outage_replay.svg"));
    let config = OutageConfig::default();
    describe(&config);

    let report = replay(&config).await;

    for (phase, name) in PHASES.iter().enumerate() {
        print_phase(&report, phase, name);
    }
    explain(&report);

    // The same replay with the library's defaults, to show what the two settings changed.
    let defaults = OutageConfig {
        tuning: SeawallTuning::library_defaults(),
        ..config.clone()
    };
    let with_defaults = replay_seawall(&defaults).await;
    let surge = with_defaults.phase(1);
    println!(
        "   with the library's defaults (no load shedding, primary read share {}): \
         surge goodput {:.0}/s ({:.1}% of capacity), {:.1}% success, {} shed",
        defaults.tuning.primary_read_share,
        surge.ok as f64 / config.phase_durations[1].as_secs_f64(),
        100.0 * surge.ok as f64
            / config.phase_durations[1].as_secs_f64()
            / report.cluster_capacity(),
        100.0 * surge.success_rate(),
        surge.shed,
    );

    for (setup, title) in [
        (
            &report.naive,
            "the shop's pool, read by seawall's diagnosis",
        ),
        (&report.seawall, "the seawall cluster's own diagnosis"),
    ] {
        println!("\n== what the diagnosis said as it happened: {title}");
        for step in &setup.incidents {
            println!(
                "   {:>5.1} s  {} {}",
                step.at.as_secs_f64(),
                if step.opened { "opened" } else { "closed" },
                step.incident
            );
        }
    }

    println!("\n== goals");
    let goals = report.goals();
    for (goal, met) in goals.check() {
        println!("   [{}] {goal}", if met { "met" } else { "NOT MET" });
    }

    match plot(&report, &output) {
        Ok(()) => println!("\nchart: {}", output.display()),
        Err(e) => println!("\nchart not written to {}: {e}", output.display()),
    }
    println!("{goals}");
    println!("{}", report.incident_summary());
}

fn describe(config: &OutageConfig) {
    let per_backend = config.backend_capacity();
    println!(
        "== the outage, replayed (simulated time, seed {})",
        config.seed
    );
    println!(
        "   every backend: {} query slots, exponential service time of mean {:?}: nominal capacity {:.0} queries/s",
        config.capacity, config.mean_service, per_backend
    );
    println!(
        "   cluster (primary + {} replicas): nominal capacity {:.0} queries/s",
        config.replicas,
        config.cluster_capacity()
    );
    for (phase, name) in PHASES.iter().enumerate() {
        let load = [config.normal_load, config.surge_load, config.normal_load][phase];
        println!(
            "   {name:<9} {:>4.0} s at {:.1}x the primary's capacity ({:.0} requests/s)",
            config.phase_durations[phase].as_secs_f64(),
            load,
            load * per_backend
        );
    }
    println!(
        "   {:.0}% reads, {:.0}% writes; each client gives up after {:?}",
        config.read_share * 100.0,
        (1.0 - config.read_share) * 100.0,
        config.client_deadline
    );
    println!(
        "   capacity counts the service time actually served: the simulator's timer rounds each \
         query up to the millisecond"
    );
    println!(
        "   naive:   one pool of {} on the primary, acquire timeout 1 h; everything on the primary",
        config.capacity
    );
    println!(
        "   seawall: cluster of pools of {}, p2c, breakers, gradient limits, admission queues \
         (CoDel, as deep as the pools), primary read share {}; acquire timeout = the time the \
         client has left",
        config.capacity, config.tuning.primary_read_share
    );
}

fn print_phase(report: &OutageReport, phase: usize, name: &str) {
    println!(
        "\n== {name} ({:.0} s)",
        report.config.phase_durations[phase].as_secs_f64()
    );
    println!(
        "   {:<8} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>13}",
        "set-up",
        "requests",
        "ok",
        "ok %",
        "failed",
        "timeout",
        "shed",
        "p50",
        "p99",
        "goodput/s",
        "primary peak"
    );
    for setup in [&report.naive, &report.seawall] {
        let s = setup.phase(phase);
        println!(
            "   {:<8} {:>8} {:>8} {:>6.1}% {:>8} {:>8} {:>8} {:>9} {:>9} {:>10.0} {:>8} / {:<3}",
            setup.name,
            s.requests,
            s.ok,
            100.0 * s.success_rate(),
            s.failed,
            s.timed_out,
            s.shed,
            ms(s.p50),
            ms(s.p99),
            report.goodput(setup, phase),
            report.primary_peak(setup, phase),
            report.config.capacity,
        );
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
    )
}

/// Why the naive set-up collapses, and what seawall did instead, in the run's own figures.
fn explain(report: &OutageReport) {
    let surge = 1;
    let naive = report.naive.phase(surge);
    let seawall = report.seawall.phase(surge);
    let naive_waits: Vec<Duration> = report
        .naive
        .recording
        .records()
        .iter()
        .filter(|r| r.arrival.phase == surge)
        .map(|r| r.latency)
        .collect();
    let mean_wait = naive_waits.iter().sum::<Duration>() / naive_waits.len().max(1) as u32;
    println!("\n== why");
    println!(
        "   naive: the surge offers {:.1}x what the primary can run, and the pool lets everyone wait. \
         Its queue grows until the wait passes the clients' deadline of {:?}: a request reaches the \
         primary only after waiting nearly that long, so its query ends past the deadline, and the \
         client has gone (the database ran it for nobody). During the surge {} of {} requests gave \
         up waiting and {} were abandoned mid-query; a request took {:.0} ms on average to end.",
        report.config.surge_load,
        report.config.client_deadline,
        naive.timed_out,
        naive.requests,
        naive.failed,
        mean_wait.as_secs_f64() * 1e3,
    );
    println!(
        "   seawall: reads went to the replicas by load, writes to the primary ahead of reads; \
         admission kept each node at its limit and turned the excess away at once \
         ({} shed, {} timed out, {} failed after admission), so what was admitted finished in \
         time: {:.1}% of the surge succeeded, p99 {}.",
        seawall.shed,
        seawall.timed_out,
        seawall.failed,
        100.0 * seawall.success_rate(),
        ms(seawall.p99),
    );
    for (reason, n) in &report.seawall.shed_reasons {
        println!("     shed: {n:>7} {reason}");
    }
    for setup in [&report.naive, &report.seawall] {
        let work: Vec<String> = setup
            .backends
            .iter()
            .map(|(name, stats)| format!("{name} {}", stats.queries))
            .collect();
        println!("   queries run, {}: {}", setup.name, work.join(", "));
    }
    println!(
        "   mean service time served: {:.2} ms (configured {:?}): cluster capacity {:.0} queries/s",
        report.served_mean_service().as_secs_f64() * 1e3,
        report.config.mean_service,
        report.cluster_capacity()
    );
    let limit = report.primary_min_limit(&report.seawall, surge);
    println!(
        "   the primary's adaptive limit, sampled every {:?} during the surge: at least {limit} \
         (its maximum is the pool size, {})",
        report.config.bucket, report.config.capacity
    );
}

fn plot(report: &OutageReport, path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let bucket = report.config.bucket;
    let end = report
        .config
        .phase_durations
        .iter()
        .sum::<Duration>()
        .as_secs_f64();
    let series = |setup: &SetupReport| setup.recording.buckets(bucket);
    let (naive, seawall) = (series(&report.naive), series(&report.seawall));

    let root = SVGBackend::new(path, (1000, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "seawall: the outage replayed (same arrivals; surge to 3x the primary's capacity)",
        ("sans-serif", 20),
    )?;
    let panels = root.split_evenly((3, 1));

    // Latency percentiles of the successful requests, log scale.
    let mut chart = ChartBuilder::on(&panels[0])
        .caption(
            "latency of successful requests (ms, log)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..end, (0.5f64..2000f64).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .disable_x_mesh()
        .draw()?;
    let lines: [(&str, &[Bucket], Percentile, RGBColor); 4] = [
        ("naive p50", &naive, |s| s.p50, RGBColor(230, 150, 150)),
        ("naive p99", &naive, |s| s.p99, RED),
        ("seawall p50", &seawall, |s| s.p50, RGBColor(120, 160, 230)),
        ("seawall p99", &seawall, |s| s.p99, BLUE),
    ];
    for (label, buckets, pick, color) in lines {
        let points = buckets.iter().filter_map(|b| {
            pick(&b.summary).map(|d| (b.start.as_secs_f64(), d.as_secs_f64() * 1e3))
        });
        line(&mut chart, label, points, color.stroke_width(2))?;
    }
    legend(&mut chart)?;

    // Share of requests that did not succeed.
    let mut chart = ChartBuilder::on(&panels[1])
        .caption("requests not answered in time (%)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..end, 0f64..100f64)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .disable_x_mesh()
        .draw()?;
    for (label, buckets, color) in [("naive", &naive, RED), ("seawall", &seawall, BLUE)] {
        let points = buckets.iter().filter(|b| b.summary.requests > 0).map(|b| {
            let failed = 1.0 - b.summary.success_rate();
            (b.start.as_secs_f64(), 100.0 * failed)
        });
        line(&mut chart, label, points, color.stroke_width(2))?;
    }
    legend(&mut chart)?;

    // Work on the primary server: peak queries running or queued there, against its slots.
    let width = bucket.as_secs_f64();
    let top = report
        .naive
        .primary_peaks
        .iter()
        .chain(&report.seawall.primary_peaks)
        .copied()
        .max()
        .unwrap_or(1)
        .max(report.config.capacity) as f64
        * 2.0;
    let mut chart = ChartBuilder::on(&panels[2])
        .caption(
            "queries on the primary server, running or queued (peak per bucket, log) vs its slots",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..end, (1f64..top).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .disable_x_mesh()
        .draw()?;
    for (label, setup, color) in [
        ("naive", &report.naive, RED),
        ("seawall", &report.seawall, BLUE),
    ] {
        let points = setup
            .primary_peaks
            .iter()
            .enumerate()
            .map(|(i, &p)| (i as f64 * width, p.max(1) as f64));
        line(&mut chart, label, points, color.stroke_width(2))?;
    }
    let slots = report.config.capacity as f64;
    let points = [(0.0, slots), (end, slots)];
    line(&mut chart, "primary's slots", points, BLACK.stroke_width(1))?;
    legend(&mut chart)?;

    root.present()?;
    Ok(())
}

type ChartResult = Result<(), Box<dyn std::error::Error>>;

/// One labelled line of a panel.
fn line<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    label: &str,
    points: impl IntoIterator<Item = (f64, f64)>,
    style: ShapeStyle,
) -> ChartResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(points, style))?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    Ok(())
}

/// The legend box of a panel.
fn legend<'a, DB, X, Y>(chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>) -> ChartResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    Ok(())
}
