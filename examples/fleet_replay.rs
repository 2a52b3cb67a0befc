//! A fleet of application instances against one primary that degrades past its knee: the
//! postmortem's surge, replayed against naive pools, a central pooler, seawall with fixed limits
//! and seawall with adaptive limits (`seawall::sim::fleet`).
//!
//! `cargo run --release --example fleet_replay [seed]`: prints a table per phase, writes
//! `examples/fleet_replay.svg` (primary in flight against the knee, goodput, every instance's
//! limit over time), and ends with one `summary ...` line.

use std::fmt::Write as _;
use std::time::Duration;

use seawall::sim::fleet::{run, FleetConfig, FleetReport, PHASES};
use seawall::sim::workload::Kind;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => FleetConfig::default().seed,
    };
    let config = FleetConfig {
        seed,
        ..FleetConfig::default()
    };
    println!(
        "{} instances, pools of {} ({} connections wanted); primary: knee {} (σ {}), {:?} queries, \
         peak {:.0} queries/s, max_connections {}; pooler cap {}; seed {}",
        config.instances,
        config.pool_size,
        config.instances * config.pool_size,
        config.knee,
        config.contention,
        config.mean_service,
        config.peak_throughput(),
        config.max_connections,
        config.pooler_cap,
        config.seed
    );
    let report = run(&config).await?;
    tables(&report);
    verdicts(&report);
    let svg = chart(&report);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet_replay.svg");
    std::fs::write(path, svg)?;
    println!("\nchart: {path}");
    let goals = report.goals();
    println!(
        "\nadaptive: surge peak in flight {} (first moments included), limits end at {:.1} on \
         average, slowest shed {:?}, surge writes {:.1}% vs reads {:.1}% answered",
        goals.primary_surge_peak_inflight,
        goals.limit_end_mean,
        goals.slowest_shed,
        goals.surge_write_success_pct,
        goals.surge_read_success_pct
    );
    for (goal, met) in goals.check() {
        println!("{} {goal}", if met { "met    " } else { "NOT MET" });
    }
    println!("{goals}");
    for setup in ["fixed", "adaptive"] {
        if let Some(summary) = report.incident_summary(setup) {
            println!("{summary}");
        }
    }
    Ok(())
}

/// What every seawall instance's own diagnosis said as the surge unfolded: each kind of verdict
/// once, when the first instance opened (or closed) it, on how many instances, and the first
/// instance's words.
fn verdicts(report: &FleetReport) {
    let surge = report.config.phase_start(1).as_secs_f64();
    for name in ["fixed", "adaptive"] {
        let Some(setup) = report.setup(name) else {
            continue;
        };
        println!("\n== {name}: what the instances' diagnosis said (surge at +{surge:.0} s) ==");
        if setup.incidents.is_empty() {
            println!("nothing: no incident opened");
        }
        // (opened, verdict kind, node) -> (first at, last at, instances, first words)
        type Key<'a> = (bool, &'a str, Option<&'a str>);
        type Seen = (f64, f64, Vec<usize>, String);
        let mut seen: Vec<(Key, Seen)> = Vec::new();
        for i in &setup.incidents {
            let verdict = &i.step.incident.verdict;
            let key = (
                i.step.opened,
                verdict.finding.name(),
                verdict.node.as_deref(),
            );
            let at = i.step.at.as_secs_f64();
            match seen.iter_mut().find(|(k, _)| *k == key) {
                Some((_, (_, last, instances, _))) => {
                    *last = at;
                    if !instances.contains(&i.instance) {
                        instances.push(i.instance);
                    }
                }
                None => seen.push((key, (at, at, vec![i.instance], verdict.to_string()))),
            }
        }
        for ((opened, _, _), (first, last, instances, words)) in seen {
            println!(
                "+{first:4.1}-{last:4.1} s {} on {:>2}/{} instances (first: instance {}): {words}",
                if opened { "opened" } else { "closed" },
                instances.len(),
                setup.instances.len(),
                instances[0]
            );
        }
    }
}

fn tables(report: &FleetReport) {
    let peak = report.config.peak_throughput();
    for (phase, name) in PHASES.iter().enumerate() {
        let secs = report.config.phase_durations[phase].as_secs_f64();
        println!("\n== {name} ({secs:.0} s) ==");
        println!(
            "{:<9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>11}",
            "setup",
            "requests",
            "ok",
            "shed",
            "timeout",
            "failed",
            "goodput%",
            "p50 ms",
            "p99 ms",
            "peak infl."
        );
        for setup in &report.setups {
            let s = setup.summarize(phase, |_| true);
            let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| d.as_millis().to_string());
            let peak_inflight = report
                .phase_buckets(phase)
                .filter_map(|b| setup.peak_inflight.get(b).copied())
                .max()
                .unwrap_or(0);
            println!(
                "{:<9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9.1} {:>9} {:>9} {:>11}",
                setup.name,
                s.requests,
                s.ok,
                s.shed,
                s.timed_out,
                s.failed,
                100.0 * s.ok as f64 / secs / peak,
                ms(s.p50),
                ms(s.p99),
                peak_inflight
            );
        }
        if let Some(adaptive) = report.setup("adaptive") {
            let w = adaptive.summarize(phase, |k| k == Kind::Write);
            let r = adaptive.summarize(phase, |k| k == Kind::Read);
            println!(
                "adaptive writes {}/{} ok, reads {}/{} ok",
                w.ok, w.requests, r.ok, r.requests
            );
            let limits: Vec<usize> = adaptive
                .limits
                .iter()
                .flat_map(|l| {
                    report
                        .phase_buckets(phase)
                        .filter_map(|b| l.get(b).copied())
                })
                .collect();
            if let (Some(min), Some(max)) = (limits.iter().min(), limits.iter().max()) {
                println!(
                    "adaptive primary limits (every instance, every 100 ms): mean {:.2}, min {min}, \
                     max {max} (pool size {})",
                    limits.iter().sum::<usize>() as f64 / limits.len() as f64,
                    report.config.pool_size
                );
            }
        }
    }
    println!();
    for setup in &report.setups {
        println!(
            "{:<9} connects refused (max_connections): {}, most connections open: {}",
            setup.name, setup.refused_connects, setup.peak_connections
        );
    }
}

/// Three panels, drawn by hand: the primary's in flight against the knee, goodput per bucket,
/// every adaptive instance's limit.
fn chart(report: &FleetReport) -> String {
    let (width, panel, margin) = (960.0, 220.0, 50.0);
    let height = 3.0 * (panel + margin) + margin;
    let colours = ["#d62728", "#ff7f0e", "#7f7f7f", "#1f77b4"];
    let buckets = report
        .setups
        .iter()
        .map(|s| s.peak_inflight.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let x = |b: usize| margin + (width - 2.0 * margin) * b as f64 / buckets as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    let panel_at = |svg: &mut String, i: usize, title: &str, max: f64| {
        let top = margin + i as f64 * (panel + margin);
        let _ = writeln!(
            svg,
            r#"<text x="{margin}" y="{}">{title} (max {max:.0})</text><rect x="{margin}" y="{top}" width="{}" height="{panel}" fill="none" stroke="black"/>"#,
            top - 8.0,
            width - 2.0 * margin
        );
        for phase in 1..PHASES.len() {
            let b = report.phase_buckets(phase).start;
            let _ = writeln!(
                svg,
                r##"<line x1="{0}" x2="{0}" y1="{top}" y2="{1}" stroke="#bbb" stroke-dasharray="4"/>"##,
                x(b),
                top + panel
            );
        }
        move |v: f64| top + panel - panel * (v / max).min(1.0)
    };
    let polyline = |svg: &mut String,
                    points: &[(usize, f64)],
                    y: &dyn Fn(f64) -> f64,
                    colour: &str,
                    w: f64| {
        let pts: String = points
            .iter()
            .map(|&(b, v)| format!("{:.1},{:.1} ", x(b), y(v)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{w}"/>"#
        );
    };
    // Panel 1: in flight.
    let knee = report.config.knee as f64;
    let max_inflight = report
        .setups
        .iter()
        .flat_map(|s| s.peak_inflight.iter().copied())
        .max()
        .unwrap_or(1) as f64;
    let y = panel_at(
        &mut svg,
        0,
        "primary: queries in flight (bucket peak) vs knee (dashed)",
        max_inflight,
    );
    polyline(&mut svg, &[(0, knee), (buckets, knee)], &y, "black", 1.0);
    for (setup, colour) in report.setups.iter().zip(colours) {
        let points: Vec<_> = setup
            .peak_inflight
            .iter()
            .map(|&p| p as f64)
            .enumerate()
            .collect();
        polyline(&mut svg, &points, &y, colour, 1.5);
    }
    // Panel 2: goodput per bucket, % of the peak throughput.
    let bucket = report.config.bucket;
    let peak = report.config.peak_throughput();
    let goodput: Vec<Vec<(usize, f64)>> = report
        .setups
        .iter()
        .map(|s| {
            let mut ok = vec![0usize; buckets];
            for r in s.instances.iter().flat_map(|r| r.records()) {
                let b = (r.arrival.at.as_nanos() / bucket.as_nanos()) as usize;
                if r.outcome == seawall::sim::workload::Outcome::Ok && b < buckets {
                    ok[b] += 1;
                }
            }
            ok.iter()
                .map(|&n| 100.0 * n as f64 / bucket.as_secs_f64() / peak)
                .enumerate()
                .collect()
        })
        .collect();
    let y = panel_at(
        &mut svg,
        1,
        "goodput, % of the peak throughput at the knee",
        150.0,
    );
    polyline(&mut svg, &[(0, 100.0), (buckets, 100.0)], &y, "black", 1.0);
    for (points, colour) in goodput.iter().zip(colours) {
        polyline(&mut svg, points, &y, colour, 1.5);
    }
    // Panel 3: every adaptive instance's limit.
    let pool = report.config.pool_size as f64;
    let y = panel_at(
        &mut svg,
        2,
        "adaptive: every instance's primary limit",
        pool,
    );
    if let Some(adaptive) = report.setup("adaptive") {
        for limits in &adaptive.limits {
            let points: Vec<_> = limits.iter().map(|&l| l as f64).enumerate().collect();
            polyline(&mut svg, &points, &y, "#1f77b480", 1.0);
        }
    }
    for (i, (setup, colour)) in report.setups.iter().zip(colours).enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" fill="{colour}">{}</text>"#,
            width - margin - 90.0,
            margin + 16.0 * (i + 1) as f64,
            setup.name
        );
    }
    svg.push_str("</svg>\n");
    svg
}
