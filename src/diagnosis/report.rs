//! The postmortem's timeline, written from the flight recorder: incidents with their verdicts,
//! what changed when, a table of the recorded figures and an SVG chart of them.

use std::fmt::{self, Write as _};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{mean, Incident, Recording};

/// Rows of the figures table, at most (the chart shows everything).
const MAX_ROWS: usize = 300;

/// A Markdown report and its SVG chart ([`Cluster::incident_report`](crate::Cluster::incident_report)).
/// `Display` prints the Markdown; it links the chart as `<stem>.svg`, written beside it by
/// [`write_to`](Self::write_to).
#[derive(Debug, Clone)]
pub struct IncidentReport {
    /// The report, in Markdown.
    pub markdown: String,
    /// The chart: every node's query time and in-flight work over the recording, incidents
    /// shaded.
    pub svg: String,
}

impl IncidentReport {
    /// The report of `incidents` (open and closed) over `history` (oldest first), linking its
    /// chart as `<stem>.svg`.
    pub fn new(history: &[Recording], incidents: &[Incident], stem: &str) -> Self {
        IncidentReport {
            markdown: markdown(history, incidents, stem),
            svg: svg(history, incidents),
        }
    }

    /// Writes `<dir>/<stem>.md` and `<dir>/<stem>.svg` (the directory is created if missing);
    /// `stem` should be the one the report was made with, which its Markdown links.
    pub fn write_to(&self, dir: &Path, stem: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{stem}.md")), &self.markdown)?;
        std::fs::write(dir.join(format!("{stem}.svg")), &self.svg)
    }
}

impl fmt::Display for IncidentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.markdown)
    }
}

/// `HH:MM:SS.s` UTC.
fn clock(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis() / 100
    )
}

fn since(a: SystemTime, b: SystemTime) -> Duration {
    b.duration_since(a).unwrap_or_default()
}

fn markdown(history: &[Recording], incidents: &[Incident], stem: &str) -> String {
    let mut out = String::from("# Incident report\n\n");
    let (Some(first), Some(last)) = (history.first(), history.last()) else {
        out.push_str("Nothing recorded (the flight recorder is off, or has not sampled yet).\n");
        return out;
    };
    let _ = writeln!(
        out,
        "Recorded from {} to {} UTC: {} samples. {} incident(s).\n",
        clock(first.at),
        clock(last.at),
        history.len(),
        incidents.len()
    );
    out.push_str("## Verdicts\n\n| # | layer | started | last seen | lasted | verdict (at its worst) |\n|---|---|---|---|---|---|\n");
    for i in incidents {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} s | {} |",
            i.id,
            i.verdict.layer(),
            clock(i.started),
            clock(i.last_seen),
            since(i.started, i.last_seen).as_secs_f64(),
            i.verdict
        );
    }
    out.push_str("\n## Timeline\n\n");
    let mut steps: Vec<(SystemTime, String)> = Vec::new();
    for i in incidents {
        steps.push((
            i.started,
            format!("incident {} starts: {}", i.id, i.opened_with),
        ));
        steps.push((i.opened, format!("incident {} confirmed", i.id)));
        if let Some(closed) = i.closed {
            steps.push((
                i.last_seen,
                format!("incident {} last seen: {}", i.id, i.verdict),
            ));
            steps.push((closed, format!("incident {} closed", i.id)));
        } else {
            steps.push((
                i.last_seen,
                format!("incident {} still open: {}", i.id, i.verdict),
            ));
        }
    }
    steps.sort_by_key(|(t, _)| *t);
    for (t, what) in &steps {
        let _ = writeln!(out, "- {} {}", clock(*t), what);
    }
    let _ = writeln!(out, "\n## Figures\n\n![Recorded figures]({stem}.svg)\n");
    out.push_str("| time | node | role | up | in flight / limit | queue | query ms (p99) | wait ms (pool p99) | error % | errors node / caller | shed | lag ms | probe ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    // From a little before the first incident, or the end of the recording.
    let from = incidents
        .iter()
        .map(|i| i.started)
        .min()
        .and_then(|t| history.iter().position(|r| r.at >= t))
        .map_or(history.len().saturating_sub(30), |i| i.saturating_sub(10));
    let mut rows = 0;
    for pair in history[from.saturating_sub(1)..].windows(2) {
        let (before, now) = (&pair[0], &pair[1]);
        for n in &now.nodes {
            if rows >= MAX_ROWS {
                let _ = writeln!(out, "\n(table cut at {MAX_ROWS} rows; the chart has all)");
                return out;
            }
            let b = before.nodes.iter().find(|b| b.name == n.name);
            let query =
                b.and_then(|b| mean(n.held_total, b.held_total, n.held_count, b.held_count));
            let wait =
                b.and_then(|b| mean(n.waited_total, b.waited_total, n.held_count, b.held_count));
            let shed = b.map_or(0, |b| n.shed.saturating_sub(b.shed));
            let errors =
                |f: fn(&super::NodeSample) -> u64| b.map_or(0, |b| f(n).saturating_sub(f(b)));
            let ms = |d: Option<Duration>| {
                d.map_or("-".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:?} | {} | {}/{} | {} | {} ({}) | {} ({}) | {:.0} | {} / {} | {} | {} | {} |",
                clock(now.at),
                n.name,
                n.role,
                if n.up { "yes" } else { "no" },
                n.in_flight,
                n.limit,
                n.queue + n.pool_waiters,
                ms(query),
                ms(n.query_p99),
                ms(wait),
                ms(n.wait_p99),
                n.error_rate * 100.0,
                errors(|n| n.node_errors),
                errors(|n| n.caller_errors),
                shed,
                ms(n.lag),
                ms(n.probe_round_trip)
            );
            rows += 1;
        }
    }
    out
}

/// One point of a node's chart: when, query time (ms), in flight, limit.
type Point = (SystemTime, Option<f64>, f64, f64);

const COLOURS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn svg(history: &[Recording], incidents: &[Incident]) -> String {
    let (w, panel, left, top) = (900.0, 220.0, 60.0, 30.0);
    let h = top + 2.0 * (panel + 40.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let (Some(first), Some(last)) = (history.first(), history.last()) else {
        out.push_str("<text x=\"20\" y=\"30\">nothing recorded</text>\n</svg>\n");
        return out;
    };
    let span = since(first.at, last.at).as_secs_f64().max(1.0);
    let x = |t: SystemTime| left + (w - left - 20.0) * since(first.at, t).as_secs_f64() / span;
    let names: Vec<_> = {
        let mut names = Vec::new();
        for r in history {
            for n in &r.nodes {
                if !names.contains(&n.name) {
                    names.push(n.name.clone());
                }
            }
        }
        names
    };
    // Per node: (time, query ms, in flight, limit).
    let series: Vec<Vec<Point>> = names
        .iter()
        .map(|name| {
            history
                .windows(2)
                .filter_map(|p| {
                    let n = p[1].nodes.iter().find(|n| &n.name == name)?;
                    let b = p[0].nodes.iter().find(|n| &n.name == name);
                    let q = b
                        .and_then(|b| mean(n.held_total, b.held_total, n.held_count, b.held_count))
                        .map(|d| d.as_secs_f64() * 1e3);
                    Some((p[1].at, q, n.in_flight as f64, n.limit as f64))
                })
                .collect()
        })
        .collect();
    let max_q = series
        .iter()
        .flatten()
        .filter_map(|s| s.1)
        .fold(1.0f64, f64::max);
    let max_n = series
        .iter()
        .flatten()
        .map(|s| s.2.max(s.3))
        .fold(1.0f64, f64::max);
    for (k, (title, max)) in [
        ("query time (ms)", max_q),
        ("in flight (dashed: limit)", max_n),
    ]
    .into_iter()
    .enumerate()
    {
        let y0 = top + k as f64 * (panel + 40.0);
        let _ = writeln!(
            out,
            "<text x=\"{left}\" y=\"{}\" font-weight=\"bold\">{title}</text>",
            y0 - 8.0
        );
        for i in incidents {
            let x1 = x(i.started);
            let x2 = x(i.closed.unwrap_or(last.at)).max(x1 + 1.0);
            let _ = writeln!(
                out,
                "<rect x=\"{x1:.1}\" y=\"{y0}\" width=\"{:.1}\" height=\"{panel}\" fill=\"#f5b7b1\" opacity=\"0.5\"><title>{}</title></rect>",
                x2 - x1,
                escape(&i.verdict.to_string())
            );
        }
        let _ = writeln!(
            out,
            "<rect x=\"{left}\" y=\"{y0}\" width=\"{}\" height=\"{panel}\" fill=\"none\" stroke=\"#888\"/>",
            w - left - 20.0
        );
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max:.0}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
            left - 4.0,
            y0 + 10.0,
            left - 4.0,
            y0 + panel
        );
        let y = |v: f64| y0 + panel - panel * (v / max).min(1.0);
        for (j, s) in series.iter().enumerate() {
            let colour = COLOURS[j % COLOURS.len()];
            let line = |pick: &dyn Fn(&Point) -> Option<f64>| {
                s.iter()
                    .filter_map(|p| pick(p).map(|v| format!("{:.1},{:.1}", x(p.0), y(v))))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            if k == 0 {
                let _ = writeln!(out, "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>", line(&|p| p.1));
            } else {
                let _ = writeln!(out, "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>", line(&|p| Some(p.2)));
                let _ = writeln!(out, "<polyline fill=\"none\" stroke=\"{colour}\" stroke-dasharray=\"4 3\" points=\"{}\"/>", line(&|p| Some(p.3)));
            }
        }
    }
    for (j, name) in names.iter().enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>",
            left + 10.0 + 140.0 * j as f64,
            h - 10.0,
            COLOURS[j % COLOURS.len()],
            escape(name)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.0} s, from {} UTC</text>",
        w - 20.0,
        h - 10.0,
        span,
        clock(first.at)
    );
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
