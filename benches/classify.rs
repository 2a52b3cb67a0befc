//! Statement classification: seawall's lexical classifier against parsing with sqlparser, and the
//! statement fingerprint, which runs on the same hot path.
//!
//! Criterion measures all three on a few typical statements; at the end a plain timed loop prints
//! comparable lines per statement (`classify <name> seawall_ns=<x> sqlparser_ns=<y>` and
//! `fingerprint <name> ns=<x> classify_ns=<y> ratio=<x/y>`, the two timed in alternating
//! batches so that other load on the machine hits both alike).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use seawall::classify::{classify, fingerprint};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

const STATEMENTS: &[(&str, &str)] = &[
    (
        "typical_select",
        "SELECT id, name, email FROM users WHERE id = $1 AND status = 'active' ORDER BY created_at DESC LIMIT 10",
    ),
    (
        "orm_select",
        "SELECT \"users\".\"id\", \"users\".\"email\", \"users\".\"created_at\" FROM \"users\" WHERE \"users\".\"email\" = $1 AND \"users\".\"deleted_at\" IS NULL LIMIT $2",
    ),
    (
        "insert",
        "INSERT INTO events (user_id, kind, payload) VALUES ($1, $2, $3) RETURNING id",
    ),
    (
        "select_for_update",
        "SELECT * FROM jobs WHERE queue = 'default' AND run_at <= now() ORDER BY priority LIMIT 1 FOR UPDATE SKIP LOCKED",
    ),
    (
        "cte_report",
        "WITH monthly AS (SELECT date_trunc('month', created_at) AS month, sum(amount) AS revenue FROM payments WHERE status = 'paid' GROUP BY 1) SELECT month, revenue, revenue - lag(revenue) OVER (ORDER BY month) AS growth FROM monthly ORDER BY month",
    ),
];

fn seawall_classify(sql: &str) -> bool {
    classify(sql).is_ok_and(|c| c.is_write())
}

fn sqlparser_parse(sql: &str) -> usize {
    Parser::parse_sql(&PostgreSqlDialect {}, sql).map_or(0, |s| s.len())
}

fn bench(c: &mut Criterion) {
    for &(name, sql) in STATEMENTS {
        let mut group = c.benchmark_group(format!("classify/{name}"));
        group.throughput(Throughput::Bytes(sql.len() as u64));
        group.bench_function("seawall", |b| b.iter(|| seawall_classify(black_box(sql))));
        group.bench_function("sqlparser", |b| b.iter(|| sqlparser_parse(black_box(sql))));
        group.bench_function("fingerprint", |b| b.iter(|| fingerprint(black_box(sql))));
        group.finish();
    }
}

/// Calls per timed batch: about 20 ms worth.
fn batch_size<R>(f: &mut impl FnMut() -> R) -> u64 {
    let mut batch = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            black_box(f());
        }
        if start.elapsed() >= Duration::from_millis(20) {
            return batch;
        }
        batch *= 2;
    }
}

fn time_batch<R>(f: &mut impl FnMut() -> R, batch: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..batch {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64 / batch as f64
}

/// Nanoseconds per call: the best of several timed batches (the least disturbed by other load).
fn ns_per_call<R>(mut f: impl FnMut() -> R) -> f64 {
    let batch = batch_size(&mut f);
    (0..10)
        .map(|_| time_batch(&mut f, batch))
        .fold(f64::INFINITY, f64::min)
}

/// [`ns_per_call`] for two functions, their batches alternating.
fn ns_per_call_pair<A, B>(mut a: impl FnMut() -> A, mut b: impl FnMut() -> B) -> (f64, f64) {
    let (batch_a, batch_b) = (batch_size(&mut a), batch_size(&mut b));
    (0..10)
        .map(|_| (time_batch(&mut a, batch_a), time_batch(&mut b, batch_b)))
        .fold((f64::INFINITY, f64::INFINITY), |(ma, mb), (ta, tb)| {
            (ma.min(ta), mb.min(tb))
        })
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();

    for &(name, sql) in STATEMENTS {
        let seawall = ns_per_call(|| seawall_classify(black_box(sql)));
        let sqlparser = ns_per_call(|| sqlparser_parse(black_box(sql)));
        println!(
            "classify {name} bytes={} seawall_ns={seawall:.1} sqlparser_ns={sqlparser:.1}",
            sql.len()
        );
    }
    for &(name, sql) in STATEMENTS {
        let (fp, classify) = ns_per_call_pair(
            || fingerprint(black_box(sql)),
            || seawall_classify(black_box(sql)),
        );
        println!(
            "fingerprint {name} ns={fp:.1} classify_ns={classify:.1} ratio={:.2}",
            fp / classify
        );
    }
}
