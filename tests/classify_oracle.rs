//! The classifier against an oracle built on a real SQL parser.
//!
//! The oracle is sqlparser's PostgreSQL AST: a statement is a read if it is a query (or `EXPLAIN`
//! of one, or `SHOW`) without locking clauses, without `INTO`, without data-modifying statements
//! inside, and without calls to functions known to write; anything else is a write. The safety
//! property is one-sided: the classifier may send a read to the primary, but it must never call a
//! statement read-only when the oracle calls it a write.
//!
//! sqlparser's `visitor` feature is not enabled in this crate, so the oracle looks for nested
//! writes, locks, `INTO` and function names in the AST's `Debug` rendering, where literal text is
//! escaped and cannot be mistaken for structure.

use proptest::prelude::*;
use seawall::classify::{classify, ClassifyError, Hint, Route, Verdict};
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Functions the oracle considers writes, written independently of the classifier's tables.
const ORACLE_WRITERS: &[&str] = &[
    "nextval",
    // The session's own sequence state: only the primary's session has it.
    "currval",
    "lastval",
    "setval",
    "pg_notify",
    "set_config",
    "txid_current",
    "pg_current_xact_id",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_promote",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "dblink_exec",
];
const ORACLE_WRITER_PREFIXES: &[&str] =
    &["pg_advisory_", "pg_try_advisory_", "lo_", "pg_stat_reset"];

fn oracle_writer(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ORACLE_WRITERS.contains(&name.as_str())
        || ORACLE_WRITER_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// `Some(true)` read, `Some(false)` write, `None` if sqlparser cannot parse it.
fn oracle_is_read(sql: &str) -> Option<bool> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    if statements.is_empty() {
        return None;
    }
    Some(statements.iter().all(statement_is_read))
}

fn statement_is_read(statement: &Statement) -> bool {
    match statement {
        Statement::Query(query) => tree_is_read(&format!("{query:?}")),
        Statement::Explain { statement, .. } => match statement.as_ref() {
            Statement::Query(query) => tree_is_read(&format!("{query:?}")),
            _ => false,
        },
        Statement::ShowVariable { .. } => true,
        _ => false,
    }
}

fn tree_is_read(debug: &str) -> bool {
    const WRITE_MARKERS: &[&str] = &[
        "locks: [LockClause",
        "into: Some(",
        "Insert(Insert(",
        "Update(Update(",
        "Delete(Delete(",
        "Merge(Merge(",
    ];
    !WRITE_MARKERS.iter().any(|m| debug.contains(m)) && !named_objects(debug).any(oracle_writer)
}

/// The last identifier of every `name: ObjectName([...])` in a `Debug` rendering: function names,
/// table-function names and table names.
fn named_objects(debug: &str) -> impl Iterator<Item = &str> {
    debug
        .split("name: ObjectName([")
        .skip(1)
        .filter_map(|rest| {
            let parts = &rest[..rest.find("])")?];
            let last = parts.rsplit("value: \"").next()?;
            Some(&last[..last.find('"')?])
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Read,
    Write,
    Unprovable,
}

/// `(label, legacy, sql)`; `legacy` cases are writes only under
/// `standard_conforming_strings = off`, which the parser does not model.
fn corpus() -> Vec<(Label, bool, String)> {
    let text = include_str!("data/classify_corpus.sql");
    let mut cases: Vec<(Label, bool, String)> = Vec::new();
    for line in text.lines() {
        if let Some(label) = line.strip_prefix("-- @") {
            let (label, legacy) = match label.trim() {
                "read" => (Label::Read, false),
                "write" => (Label::Write, false),
                "write-legacy" => (Label::Write, true),
                "unprovable" => (Label::Unprovable, false),
                other => panic!("unknown label {other}"),
            };
            cases.push((label, legacy, String::new()));
        } else if line.starts_with("-- ") || line.trim().is_empty() {
            // Documentation between cases.
        } else if let Some((_, _, sql)) = cases.last_mut() {
            sql.push_str(line);
            sql.push('\n');
        }
    }
    cases
}

#[test]
fn corpus_against_labels_and_oracle() {
    let cases = corpus();
    assert!(
        cases.len() >= 150,
        "corpus has only {} statements",
        cases.len()
    );
    let (mut reads, mut reads_to_replica, mut parsed, mut unparsed) = (0, 0, 0, Vec::new());
    // Every statement the parser calls a read, whatever its label: the read share routed.
    let (mut oracle_reads, mut oracle_reads_to_replica) = (0, 0);
    let mut failures = Vec::new();
    for (label, legacy, sql) in &cases {
        let c = classify(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let oracle = oracle_is_read(sql);
        if oracle == Some(true) {
            oracle_reads += 1;
            oracle_reads_to_replica += usize::from(c.route() == Route::Replica);
        }
        match oracle {
            Some(_) => parsed += 1,
            None => unparsed.push(sql.trim()),
        }
        // Safety: never a replica for what the parser calls a write.
        if oracle == Some(false)
            && (c.route() == Route::Replica || c.verdict() == Verdict::ReadOnly)
        {
            failures.push(format!(
                "UNSAFE: oracle says write, classifier {c:?}: {sql}"
            ));
        }
        // The labels agree with the oracle wherever it has an opinion.
        match (label, oracle) {
            (Label::Read, Some(false)) | (Label::Write, Some(true)) if !legacy => {
                failures.push(format!("label {label:?} disagrees with oracle: {sql}"))
            }
            _ => {}
        }
        let expected = match label {
            Label::Read => Verdict::ReadOnly,
            Label::Write => Verdict::Writes,
            Label::Unprovable => Verdict::Unprovable,
        };
        if *label == Label::Read {
            reads += 1;
            reads_to_replica += usize::from(c.route() == Route::Replica);
        }
        if c.verdict() != expected {
            failures.push(format!("expected {expected:?}, got {c:?}: {sql}"));
        }
    }
    println!(
        "corpus: {} statements, {} parsed by sqlparser, {} reads of which {} routed to a replica",
        cases.len(),
        parsed,
        reads,
        reads_to_replica
    );
    println!(
        "read share: {oracle_reads_to_replica} of {oracle_reads} statements sqlparser calls reads \
         routed to a replica ({:.1}%)",
        100.0 * oracle_reads_to_replica as f64 / oracle_reads.max(1) as f64
    );
    for sql in &unparsed {
        println!("sqlparser could not parse: {sql}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(reads >= 80, "too few reads in the corpus: {reads}");
    assert_eq!(
        reads_to_replica, reads,
        "every labelled read must reach a replica"
    );
    assert!(
        parsed * 10 >= cases.len() * 8,
        "the oracle parsed only {parsed} of {}",
        cases.len()
    );
}

#[test]
fn oracle_sees_what_it_should() {
    assert_eq!(oracle_is_read("SELECT 1"), Some(true));
    assert_eq!(
        oracle_is_read("SELECT 'nextval(1)', 'FOR UPDATE'"),
        Some(true)
    );
    assert_eq!(oracle_is_read("SELECT * FROM t FOR UPDATE"), Some(false));
    assert_eq!(oracle_is_read("SELECT * INTO x FROM t"), Some(false));
    assert_eq!(
        oracle_is_read("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"),
        Some(false)
    );
    assert_eq!(
        oracle_is_read("SELECT x FROM (SELECT pg_catalog.NEXTVAL('s') AS x) s"),
        Some(false)
    );
    assert_eq!(oracle_is_read("SELECT 1; DELETE FROM t"), Some(false));
}

// ---------------------------------------------------------------------------------------------
// Generated statements.

/// Statements with a known verdict. Uppercase letters get random case; everything the case change
/// would break (dollar tags) is lowercase.
const READS: &[&str] = &[
    "SELECT id, name FROM users WHERE id = $1 AND status = 'active'",
    "SELECT 'DELETE FROM t; UPDATE x SET a = 1' AS s",
    "SELECT E'it\\'s ; DROP TABLE t' AS s",
    "SELECT $x$ INSERT INTO t VALUES (1); $x$ AS body",
    "SELECT $$ ; DELETE FROM t $$",
    "SELECT \"delete\", \"into\" FROM \"update\"",
    "WITH a AS (SELECT 1 AS v) SELECT v FROM a",
    "WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT count(*) FROM t",
    "SELECT count(*) FILTER (WHERE x > 0) OVER (PARTITION BY y) FROM t",
    "VALUES (1), (2)",
    "TABLE users",
    "SHOW search_path",
    "EXPLAIN SELECT * FROM t",
    "SELECT LOWER(name), coalesce(a, b), NOW() FROM t",
    "SELECT 1 /* ; DELETE FROM t */",
    "SELECT 'FOR UPDATE' FROM t",
    "SELECT n FROM generate_series(1, 3) AS g(n)",
    "SELECT a.id FROM a LEFT JOIN (SELECT id FROM b) s ON s.id = a.id",
];
const WRITES: &[&str] = &[
    "INSERT INTO t VALUES (1)",
    "UPDATE t SET a = 'SELECT'",
    "DELETE FROM t WHERE note = $$ SELECT $$",
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t WHERE id = 1 FOR NO KEY UPDATE",
    "SELECT * FROM t FOR SHARE",
    "SELECT * INTO t2 FROM t",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "SELECT NEXTVAL('s')",
    "SELECT PG_ADVISORY_LOCK(1)",
    "CREATE TABLE x (a int)",
    "BEGIN",
    "SET search_path = public",
    "EXPLAIN ANALYZE DELETE FROM t",
    "CALL p()",
    "TRUNCATE t",
    "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
];
const UNPROVABLE: &[&str] = &[
    "SELECT my_fn()",
    "SELECT * FROM report(1)",
    "EXPLAIN INSERT INTO t VALUES (1)",
];
const COMMENTS: &[&str] = &[
    "/* c */",
    "/* DELETE FROM t; */",
    "/* nested /* ; UPDATE t */ */",
    "/**/",
];

fn statement() -> impl Strategy<Value = (Verdict, &'static str)> {
    prop_oneof![
        3 => prop::sample::select(READS).prop_map(|s| (Verdict::ReadOnly, s)),
        2 => prop::sample::select(WRITES).prop_map(|s| (Verdict::Writes, s)),
        1 => prop::sample::select(UNPROVABLE).prop_map(|s| (Verdict::Unprovable, s)),
    ]
}

/// Random case for uppercase letters; some spaces become block comments.
fn mangle(sql: &str, seed: &[u8]) -> String {
    let mut out = String::new();
    for (i, ch) in sql.chars().enumerate() {
        let r = seed[i % seed.len()].wrapping_add(i as u8);
        match ch {
            'A'..='Z' if r % 2 == 0 => out.push(ch.to_ascii_lowercase()),
            ' ' if r % 7 == 0 => {
                out.push(' ');
                out.push_str(COMMENTS[usize::from(r) % COMMENTS.len()]);
                out.push(' ');
            }
            _ => out.push(ch),
        }
    }
    out
}

fn expected_route(verdict: Verdict, hint: Option<Hint>) -> Route {
    match (verdict, hint) {
        (_, Some(Hint::Primary)) | (Verdict::Writes, _) => Route::Primary,
        (_, Some(Hint::Replica)) | (Verdict::ReadOnly, None) => Route::Replica,
        (Verdict::Unprovable, None) => Route::Primary,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn composed_statements_match_their_construction(
        statements in prop::collection::vec(statement(), 1..4),
        separators in prop::collection::vec(prop::sample::select(&["; ", ";\n", " ; /* c */ ", ";-- done\n"][..]), 4),
        hint in prop::sample::select(&[None, Some(Hint::Primary), Some(Hint::Replica)][..]),
        line_hint: bool,
        leading_comment: bool,
        trailing_semicolon: bool,
        seed in prop::collection::vec(any::<u8>(), 1..32),
    ) {
        let mut sql = String::new();
        if leading_comment {
            sql.push_str("-- generated\n");
        }
        match (hint, line_hint) {
            (Some(Hint::Primary), false) => sql.push_str("/* seawall:primary */ "),
            (Some(Hint::Replica), false) => sql.push_str("/* seawall:replica */ "),
            (Some(Hint::Primary), true) => sql.push_str("-- seawall:primary\n"),
            (Some(Hint::Replica), true) => sql.push_str("-- seawall:replica\n"),
            (None, _) => {}
        }
        for (i, (_, s)) in statements.iter().enumerate() {
            if i > 0 {
                sql.push_str(separators[i]);
            }
            sql.push_str(&mangle(s, &seed));
        }
        if trailing_semicolon {
            sql.push(';');
        }
        let verdict = statements.iter().map(|(v, _)| *v).max().unwrap();

        let c = classify(&sql).map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
        prop_assert_eq!(c.verdict(), verdict, "{}", sql);
        prop_assert_eq!(c.route(), expected_route(verdict, hint), "{}", sql);
        prop_assert_eq!(c.hint(), hint);
        prop_assert_eq!(c.hint_overridden(), hint == Some(Hint::Replica) && verdict == Verdict::Writes);
        if oracle_is_read(&sql) == Some(false) {
            prop_assert_ne!(c.verdict(), Verdict::ReadOnly, "oracle says write: {}", sql);
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(sql in any::<String>()) {
        check_consistent(&sql)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_consistent(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn sql_soup_never_panics_and_never_hides_a_trailing_write(
        parts in prop::collection::vec(prop::sample::select(&[
            "SELECT", "select", " ", "\n", "'", "''", "E'", "\\", "\"", "$", "$$", "$a$", "$1", "--",
            "/*", "*/", "(", ")", ";", "FOR", "UPDATE", "INTO", "WITH", "x", "AS", ",", "nextval",
            "/* seawall:replica */", "/* seawall:primary */", "U&'", "é", "1", "1e", ".", "EXPLAIN",
            "ANALYZE", "DELETE", "VALUES",
        ][..]), 0..40),
    ) {
        let sql: String = parts.concat();
        check_consistent(&sql)?;
        // Whatever `sql` is (even an unterminated literal), a DELETE after it is never read-only.
        let with_write = format!("{sql}\n; DELETE FROM t");
        if let Ok(c) = classify(&with_write) {
            prop_assert_ne!(c.verdict(), Verdict::ReadOnly, "{}", with_write);
        }
    }
}

/// Classifies without panicking, and the outcome is internally consistent.
fn check_consistent(sql: &str) -> Result<(), TestCaseError> {
    match classify(sql) {
        Ok(c) => {
            prop_assert_eq!(c.route(), expected_route(c.verdict(), c.hint()));
            prop_assert!(!c.reason().is_empty());
        }
        Err(ClassifyError::Empty) => prop_assert!(
            !sql.bytes().any(|b| b.is_ascii_alphanumeric())
                || sql.contains("--")
                || sql.contains("/*")
        ),
        Err(_) => prop_assert!(sql.to_ascii_lowercase().contains("seawall")),
    }
    Ok(())
}

#[test]
fn huge_inputs() {
    let long_read = format!("SELECT {} FROM t", vec!["lower(a)"; 50_000].join(", "));
    assert_eq!(classify(&long_read).unwrap().verdict(), Verdict::ReadOnly);
    let long_then_write = format!("{long_read}; DELETE FROM t");
    assert!(classify(&long_then_write).unwrap().is_write());
    let nested = format!("{}x", "/*".repeat(200_000));
    assert_eq!(classify(&nested).unwrap().verdict(), Verdict::Unprovable);
}
