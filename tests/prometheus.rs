//! The metrics an operator sees are the ones documented: the prometheus example's exporter and
//! workload, scraped over HTTP, against the table in `src/metrics.rs`.
//!
//! A metrics recorder is global to the process, so everything runs in the one test below.

#[allow(dead_code)] // its `main` and command line
#[path = "../examples/prometheus.rs"]
mod example;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Cycles of the workload to run at most before a metric still missing fails the test. One
/// should do; the others absorb a machine too busy for the simulated outage to play out.
const MAX_CYCLES: usize = 4;

/// A metric as documented, or as scraped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Metric {
    /// `counter`, `gauge`, `histogram` (or `summary`, as an exporter may render a histogram).
    kind: String,
    /// The label keys of every series.
    labels: BTreeSet<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_documented_and_exported() {
    let documented = documented(include_str!("../src/metrics.rs"));
    assert!(
        documented.contains_key("seawall_pool_acquired_total"),
        "the table in src/metrics.rs was not parsed: {documented:?}"
    );

    let addr = free_loopback_addr();
    example::serve(addr).expect("the exporter installs");
    let mut scraped = BTreeMap::new();
    let mut text = String::new();
    for _ in 0..MAX_CYCLES {
        example::run_workload(Duration::ZERO).await;
        text = scrape(addr).await;
        scraped = parse(&text);
        if documented.keys().all(|name| scraped.contains_key(name)) {
            break;
        }
    }

    let missing: Vec<_> = documented
        .keys()
        .filter(|name| !scraped.contains_key(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "documented but not exported: {missing:?}"
    );
    let undocumented: Vec<_> = scraped
        .keys()
        .filter(|name| name.starts_with("seawall_") && !documented.contains_key(*name))
        .collect();
    assert!(
        undocumented.is_empty(),
        "exported but not in the table of src/metrics.rs: {undocumented:?}"
    );
    // Every metric says what it is (issue 15, item 6: there were no HELP lines).
    let without_help: Vec<_> = documented
        .keys()
        .filter(|name| !text.contains(&format!("# HELP {name} ")))
        .collect();
    assert!(without_help.is_empty(), "no # HELP line: {without_help:?}");
    for (name, doc) in &documented {
        let got = &scraped[name];
        let kind_matches =
            got.kind == doc.kind || (doc.kind == "histogram" && got.kind == "summary");
        assert!(
            kind_matches,
            "{name}: documented as a {}, exported as a {}",
            doc.kind, got.kind
        );
        assert_eq!(
            got.labels, doc.labels,
            "{name}: label keys exported vs documented"
        );
    }
}

/// The rows of the metric table: `` | `name` | kind | `label`, `label` | meaning | ``.
fn documented(source: &str) -> BTreeMap<String, Metric> {
    source
        .lines()
        .filter_map(|line| {
            line.trim_start_matches("//!")
                .trim()
                .strip_prefix("| `seawall_")
        })
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let name = format!("seawall_{}", cells[0].trim_end_matches('`'));
            let labels = cells[2]
                .split(',')
                .map(|label| label.trim().trim_matches('`'))
                .filter(|label| !label.is_empty())
                .map(str::to_owned)
                .collect();
            let metric = Metric {
                kind: cells[1].to_owned(),
                labels,
            };
            (name, metric)
        })
        .collect()
}

/// Any port free on the loopback interface right now.
fn free_loopback_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("a bound address")
}

/// The body of `GET /metrics`, over a plain HTTP/1.1 connection.
async fn scrape(addr: SocketAddr) -> String {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("the exporter listens");
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("request sent");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("a UTF-8 response");
        response
    };
    let response = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("the scrape answers within 30 s");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("an HTTP response with a body");
    assert!(head.starts_with("HTTP/1.1 200"), "scrape failed: {head}");
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().expect("a numeric length"))
        })
        .expect("a content-length (the body is not streamed)");
    assert_eq!(body.len(), length, "the whole body was read");
    body.to_owned()
}

/// The metric families of a scrape in the text exposition format, by name. The samples of a
/// histogram or summary (`_bucket`, `_sum`, `_count`) count for their family, without the `le`
/// or `quantile` label those add.
fn parse(exposition: &str) -> BTreeMap<String, Metric> {
    let mut families: BTreeMap<String, Metric> = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declaration.split_once(' ').expect("# TYPE name kind");
            families.insert(
                name.to_owned(),
                Metric {
                    kind: kind.trim().to_owned(),
                    labels: BTreeSet::new(),
                },
            );
        }
    }
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in exposition.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let end = line
            .find(['{', ' '])
            .expect("a sample: name, labels, value");
        let sample = &line[..end];
        let family = family_of(sample, &families);
        let keys: BTreeSet<String> = label_keys(&line[end..])
            .into_iter()
            .filter(|key| key != "le" && key != "quantile")
            .collect();
        // Every series of a family carries the same label keys, or a query that groups by one
        // misses some series.
        match seen.get(&family) {
            Some(first) => assert_eq!(first, &keys, "{family}: series with other label keys"),
            None => {
                seen.insert(family.clone(), keys.clone());
            }
        }
        families
            .entry(family)
            .or_insert_with(|| Metric {
                kind: "untyped".to_owned(),
                labels: BTreeSet::new(),
            })
            .labels
            .extend(keys);
    }
    families
}

/// The family a sample belongs to: itself, or the histogram or summary it is a part of.
fn family_of(sample: &str, families: &BTreeMap<String, Metric>) -> String {
    if !families.contains_key(sample) {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix) {
                if families
                    .get(base)
                    .is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
                {
                    return base.to_owned();
                }
            }
        }
    }
    sample.to_owned()
}

/// The label keys of `{key="value",...} 1.0` (or of ` 1.0`: none). Values may hold escaped
/// quotes, commas and braces.
fn label_keys(rest: &str) -> Vec<String> {
    let Some(labels) = rest.strip_prefix('{') else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    let mut chars = labels.chars();
    let mut key = String::new();
    while let Some(c) = chars.next() {
        match c {
            '}' => break,
            ',' | ' ' => {}
            '=' => {
                assert_eq!(chars.next(), Some('"'), "a quoted label value");
                // Skip the value, escapes included.
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                keys.push(std::mem::take(&mut key));
            }
            c => key.push(c),
        }
    }
    keys
}
