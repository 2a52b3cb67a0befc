//! The Grafana dashboard and the Prometheus alerting rules in `dashboards/` use only metrics
//! seawall emits: every `seawall_*` name in them is in the `seawall::metrics` table (histograms
//! may take `_sum`, `_count` or `_bucket`), every label value they match on is one seawall
//! writes, and the dashboard is valid JSON with a query in every panel. With the `testbed`
//! feature (the suite on real components), `promtool check rules` must accept the rules file.

use std::collections::BTreeSet;

const METRICS_DOCS: &str = include_str!("../src/metrics.rs");
const DASHBOARD: &str = include_str!("../dashboards/seawall-grafana.json");
const RULES: &str = include_str!("../dashboards/seawall-alerts.yml");

/// The documented metrics: name → kind.
fn documented() -> Vec<(String, String)> {
    METRICS_DOCS
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `seawall_"))
        .map(|rest| {
            let (name, rest) = rest.split_once('`').unwrap();
            let kind = rest.split('|').nth(1).unwrap().trim().to_owned();
            (format!("seawall_{name}"), kind)
        })
        .collect()
}

/// Every `seawall_*` token in `text`.
fn used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("seawall_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

fn check_names(what: &str, text: &str) {
    let docs = documented();
    assert!(docs.len() > 20, "the metrics table did not parse: {docs:?}");
    let names = used(text);
    assert!(!names.is_empty(), "{what} uses no seawall metric");
    for name in names {
        let known = docs.iter().any(|(n, kind)| {
            *n == name
                || (kind == "histogram"
                    && ["_sum", "_count", "_bucket"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(n.as_str())))
        });
        assert!(known, "{what} uses `{name}`, which seawall does not emit");
    }
}

#[test]
fn the_dashboard_uses_only_documented_metrics_and_every_panel_queries() {
    let json: serde_json::Value = serde_json::from_str(DASHBOARD).expect("valid JSON");
    let panels = json["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(
            !targets.is_empty(),
            "a panel without a query: {}",
            panel["title"]
        );
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            assert!(expr.contains("seawall_"), "{}: {expr}", panel["title"]);
        }
    }
    check_names("the dashboard", DASHBOARD);
}

#[test]
fn the_alert_rules_use_only_documented_metrics_and_label_values() {
    check_names("the alert rules", RULES);
    // Label values the rules match on must be ones seawall writes.
    for (label, value) in [
        ("cause", "no_primary"),
        ("event", "primary_lost"),
        ("event", "split_brain"),
    ] {
        assert!(RULES.contains(&format!("{label}=\"{value}\"")));
        assert!(
            METRICS_DOCS.contains(&format!("`{value}`"))
                || event_names().contains(&value.to_owned()),
            "`{label}={value}` is not a value seawall writes"
        );
    }
    assert!(RULES.matches("- alert:").count() >= 8);
}

/// Every `ClusterEvent` name, from a sample of each variant.
fn event_names() -> Vec<String> {
    use seawall::ClusterEvent;
    let n: std::sync::Arc<str> = "n".into();
    [
        ClusterEvent::PrimaryLost {
            node: n.clone(),
            reason: String::new(),
        },
        ClusterEvent::SplitBrain {
            node: n.clone(),
            primary: n,
        },
    ]
    .iter()
    .map(|e| e.name().to_owned())
    .collect()
}

/// `promtool check rules` accepts the file (Debian's `prometheus` package, which
/// `scripts/test.sh` installs).
#[cfg(feature = "testbed")]
#[test]
fn promtool_accepts_the_rules() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/seawall-alerts.yml");
    let out = std::process::Command::new("promtool")
        .args(["check", "rules", path])
        .output()
        .expect("promtool missing: install Debian's `prometheus` package (scripts/test.sh does)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool rejected the rules:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}
