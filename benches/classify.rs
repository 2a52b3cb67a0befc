//! Statement classification: seawall's lexical classifier against parsing with sqlparser.
//!
//! Criterion measures both on a few typical statements; at the end a plain timed loop prints one
//! comparable line per statement (`classify <name> seawall_ns=<x> sqlparser_ns=<y>`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use seawall::classify::classify;
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
        group.finish();
    }
}

/// Nanoseconds per call: the best of several timed batches (the least disturbed by other load).
fn ns_per_call<R>(mut f: impl FnMut() -> R) -> f64 {
    // Size the batch to about 20 ms.
    let mut batch = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            black_box(f());
        }
        if start.elapsed() >= Duration::from_millis(20) {
            break;
        }
        batch *= 2;
    }
    (0..10)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                black_box(f());
            }
            start.elapsed().as_nanos() as f64 / batch as f64
        })
        .fold(f64::INFINITY, f64::min)
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
}
