use super::*;

fn verdict(sql: &str) -> Verdict {
    classify(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .verdict()
}

#[track_caller]
fn read(sql: &str) {
    let c = classify(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(
        (c.verdict(), c.route()),
        (Verdict::ReadOnly, Route::Replica),
        "{sql}: {}",
        c.reason()
    );
}

#[track_caller]
fn write(sql: &str) {
    let c = classify(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(
        (c.verdict(), c.route()),
        (Verdict::Writes, Route::Primary),
        "{sql}: {}",
        c.reason()
    );
}

#[track_caller]
fn unprovable(sql: &str) {
    let c = classify(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(
        (c.verdict(), c.route()),
        (Verdict::Unprovable, Route::Primary),
        "{sql}: {}",
        c.reason()
    );
}

#[test]
fn tables_are_sorted_and_disjoint() {
    for table in [
        names::WRITERS,
        names::WRITER_PREFIXES,
        names::VOLATILE_READ_ONLY,
        names::SESSION_BOUND,
        names::OPERATOR_NAMED,
        pg_catalog::SYNTAX_KEYWORDS,
        pg_catalog::OTHER_KEYWORDS,
        pg_catalog::TABLESAMPLE_METHODS,
    ] {
        assert!(table.windows(2).all(|w| w[0] < w[1]), "unsorted: {table:?}");
    }
    let functions = pg_catalog::FUNCTIONS;
    assert!(functions.windows(2).all(|w| w[0].0 < w[1].0));
    let volatility = |name: &str| functions.iter().find(|f| f.0 == name).map(|f| f.1);
    // The hand-kept lists name functions the server has, with the volatility they assume.
    for name in names::VOLATILE_READ_ONLY {
        assert_eq!(volatility(name), Some(b'v'), "{name}");
        assert!(names::is_known_read_only(name.as_bytes()), "{name}");
    }
    for name in names::SESSION_BOUND.iter().chain(names::OPERATOR_NAMED) {
        assert!(volatility(name).is_some_and(|v| v != b'v'), "{name}");
        assert!(!names::is_known_read_only(name.as_bytes()), "{name}");
    }
    let mut read_only = 0;
    for &(name, v) in functions {
        let bytes = name.as_bytes();
        assert!(
            !(names::is_writer(bytes) && names::is_known_read_only(bytes)),
            "{name} is both"
        );
        if names::is_known_read_only(bytes) {
            read_only += 1;
            assert!(
                v != b'v' || names::VOLATILE_READ_ONLY.contains(&name),
                "{name} is volatile"
            );
        } else if v == b'v' && !names::is_writer(bytes) {
            // Volatile and unknown: a call goes to the primary, unproven.
            assert_eq!(verdict(&format!("SELECT {name}()")), Verdict::Unprovable);
        }
    }
    assert!(read_only > 1500, "only {read_only} read-only built-ins");
    for name in names::WRITERS {
        assert!(names::is_writer(name.as_bytes()), "{name}");
    }
}

/// Statements that write, lock, change session state, or call a function the classifier cannot
/// know, written the ways an adversary found to slip them past it (issue #14). None may be
/// read-only. Each group failed before its fix.
#[test]
fn adversarial_classes_are_never_read_only() {
    let mut slipped = Vec::new();
    let mut check = |sql: &str, expected: Verdict| {
        let c = classify(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        if c.verdict() != expected || c.route() != Route::Primary {
            slipped.push(format!(
                "{sql}: {:?} {:?} ({})",
                c.verdict(),
                c.route(),
                c.reason()
            ));
        }
    };
    // Unicode-escape identifiers hide a call: `U&"..." UESCAPE '!'` ends in a string token.
    for sql in [
        "SELECT U&\"!0073etseed\" UESCAPE '!'(0.5)",
        "SELECT U&\"!0073etseed\" UESCAPE '!' (0.5)",
        "SELECT a FROM t WHERE U&\"!0066\" UESCAPE '!'(a) > 0",
        "SELECT U&\"\\0073etseed\"(0.5)",
        "SELECT U&\"p!0075blic\" UESCAPE '!'.lower(1)",
        "SELECT U&\"public\".lower(1)",
    ] {
        check(sql, Verdict::Unprovable);
    }
    // Built-in writers called with attribute notation.
    for sql in [
        "SELECT (0.5).setseed",
        "SELECT (0.5)\n.\n setseed",
        "SELECT (1).pg_advisory_lock",
        "SELECT (1).PG_ADVISORY_LOCK FROM t",
        "SELECT (0.5).\"setseed\"",
        "SELECT ('s').nextval",
        "SELECT g.pg_advisory_lock FROM generate_series(7, 7) g",
        "SELECT g.\"pg_try_advisory_lock\" FROM generate_series(7, 7) g",
        "SELECT x FROM t WHERE (SELECT (1).pg_advisory_xact_lock) IS NULL",
    ] {
        check(sql, Verdict::Writes);
    }
    // ... and a user's function the same way, after an expression.
    check("SELECT (t).audit_touch FROM t", Verdict::Unprovable);
    check("SELECT (t).\"audit\" FROM t", Verdict::Unprovable);
    // User functions named like keywords, where they are calls and not syntax.
    for sql in [
        "SELECT 1 ORDER BY rollup(1)",
        "SELECT cube(1)",
        "SELECT a FROM t GROUP BY a ORDER BY a, cube(1)",
        "SELECT a FROM t ORDER BY a NULLS FIRST, rollup(2)",
        "SELECT a FROM t FETCH FIRST like(1) ROWS ONLY",
        "SELECT 'x' SIMILAR TO ilike(1)",
        "SELECT a FROM t WHERE a BETWEEN SYMMETRIC freeze(1) AND 2",
        "SELECT a FROM t WHERE a = 1 AND freeze(1) > 0",
        "SELECT freeze(1)",
        "SELECT NOT materialized(1)",
        "SELECT a FROM t WHERE NOT materialized(a)",
        "SELECT like(1, 2)",
        "SELECT now() AT TIME ZONE similar(1)",
    ] {
        check(sql, Verdict::Unprovable);
    }
    // Names that are not callable built-ins of PostgreSQL 15: table-sample methods, PostgreSQL
    // 16+ `json_*` functions, type names and extension functions.
    for sql in [
        "SELECT system(1)",
        "SELECT bernoulli(1)",
        "SELECT system_rows(1)",
        "SELECT system_time(1)",
        "SELECT json_array(1)",
        "SELECT json_arrayagg(x) FROM t",
        "SELECT json_objectagg(x) FROM t",
        "SELECT json_scalar(1)",
        "SELECT json_serialize(1)",
        "SELECT json_exists(1)",
        "SELECT json_query(1)",
        "SELECT json_value(1)",
        "SELECT * FROM json_table(1)",
        "SELECT uuid(1)",
        "SELECT hstore(1)",
        "SELECT digest(x) FROM t",
        "SELECT * FROM t TABLESAMPLE my_sampler(1)",
    ] {
        check(sql, Verdict::Unprovable);
    }
    // Quoted EXPLAIN options: ANALYZE runs the statement, so a replica hint must not win.
    for sql in [
        "/* seawall:replica */ EXPLAIN (\"analyze\") SELECT pg_advisory_lock(1)",
        "/* seawall:replica */ EXPLAIN (\"analyze\", \"verbose\") SELECT nextval('s')",
        "/* seawall:replica */ EXPLAIN (verbose, \"ANALYSE\" true) SELECT setseed(0.5)",
        "/* seawall:replica */ EXPLAIN (U&\"\\0061nalyze\") SELECT set_config('a', 'b', false)",
        "EXPLAIN (\"analyze\") DELETE FROM t",
    ] {
        check(sql, Verdict::Writes);
    }
    // Advisory locks, session settings, the random seed, the session's sequence state.
    for sql in [
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_advisory_xact_lock_shared(1)",
        "SELECT pg_try_advisory_lock(1, 2)",
        "SELECT pg_advisory_unlock_all()",
        "SELECT set_config('search_path', 'x', false)",
        "SELECT pg_catalog.set_config('a.b', 'c', true)",
        "SELECT setseed(0.5)",
        "SELECT currval('s')",
        "SELECT lastval()",
        "SELECT pg_current_wal_lsn()",
        "SELECT txid_current()",
        "SELECT binary_upgrade_set_next_pg_type_oid(1)",
    ] {
        check(sql, Verdict::Writes);
    }
    assert!(slipped.is_empty(), "{}", slipped.join("\n"));
}

#[test]
fn built_ins_from_the_catalog_are_reads() {
    read("SELECT * FROM t TABLESAMPLE system (10)");
    read("SELECT * FROM t TABLESAMPLE BERNOULLI (5) REPEATABLE (1)");
    read("SELECT region, sum(x) FROM s GROUP BY ROLLUP (region)");
    read("SELECT a, b FROM s GROUP BY CUBE (a, b)");
    read("WITH a AS NOT MATERIALIZED (SELECT 1) SELECT * FROM a");
    read("EXPLAIN (\"analyze\") SELECT 1");
    read(
        "SELECT a, rank() OVER (PARTITION BY (a) ORDER BY (b)) FROM t GROUP BY (a), b ORDER BY (a)",
    );
    unprovable("SELECT by(1)");
    read("SELECT x::character varying(3), y::bit varying(8) FROM t");
    unprovable("SELECT varying(1)");
    read("SELECT a FROM t WHERE a LIKE ('x%') OR b ILIKE ($1)");
    read("SELECT u.id, \"users\".\"id\" FROM users u, \"users\"");
    read("SELECT random(), clock_timestamp(), gen_random_uuid()");
    read("SELECT int4multirange(int4range(1, 2)), ts_headline('a', to_tsquery('a'))");
    read("SELECT point(1, 2) <-> point(3, 4), xmlcomment('x'), pg_partition_root('t')");
    read("SELECT (a).*, (a).lower FROM (SELECT row(1) AS a) s");
    unprovable("SELECT (a).f FROM (SELECT row(1) AS a) s");
    read("SELECT x.lower FROM t x");
    write("SELECT x.nextval FROM t x");
    unprovable("SELECT pg_cursor()");
    unprovable("SELECT query_to_xml('DELETE FROM t', true, true, '')");
}

#[test]
fn plain_reads() {
    read("SELECT 1");
    read("select id, name, email from users where id = $1 and status = 'active' order by created_at desc limit 10");
    read("SeLeCt * FrOm t");
    read("VALUES (1, 'a'), (2, 'b')");
    read("TABLE users");
    read("SHOW search_path");
    read("SHOW ALL");
    read("(SELECT 1) UNION ALL (SELECT 2)");
    read("SELECT count(*), max(created_at) FROM orders GROUP BY customer_id HAVING count(*) > 1");
    read("SELECT 1;");
    read("SELECT 1; SELECT 2;;");
}

#[test]
fn writes_by_first_keyword() {
    for sql in [
        "INSERT INTO t VALUES (1)",
        "update t set a = 1",
        "DELETE FROM t",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        "COPY t FROM STDIN",
        "COPY (SELECT 1) TO STDOUT",
        "CREATE TABLE t (id int)",
        "ALTER TABLE t ADD COLUMN x int",
        "DROP TABLE t",
        "TRUNCATE t",
        "GRANT SELECT ON t TO bob",
        "REVOKE ALL ON t FROM bob",
        "VACUUM t",
        "ANALYZE t",
        "LOCK TABLE t IN SHARE MODE",
        "LISTEN chan",
        "NOTIFY chan, 'x'",
        "PREPARE p AS SELECT 1",
        "EXECUTE p",
        "REFRESH MATERIALIZED VIEW v",
        "CLUSTER t",
        "REINDEX TABLE t",
        "COMMENT ON TABLE t IS 'x'",
        "CALL proc()",
        "DO $$ BEGIN END $$",
        "SET search_path = public",
        "RESET ALL",
        "BEGIN",
        "START TRANSACTION READ ONLY",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT a",
        "RELEASE SAVEPOINT a",
        "DECLARE c CURSOR FOR SELECT 1",
        "FETCH 10 FROM c",
        "DISCARD ALL",
    ] {
        write(sql);
    }
}

#[test]
fn unrecognised_statements_are_unprovable() {
    unprovable("FROBNICATE t");
    unprovable("'just a string'");
    unprovable("(((");
    unprovable("SELECT 'unterminated");
    unprovable("SELECT 1 /* unterminated");
    unprovable("SELECT \"unterminated");
    unprovable("SELECT $$unterminated");
}

#[test]
fn empty_input_is_an_error() {
    for sql in [
        "",
        "   \n\t",
        "-- only a comment",
        "/* a */ /* b */",
        ";",
        " ; ;",
        "/* seawall:replica */",
    ] {
        assert_eq!(classify(sql), Err(ClassifyError::Empty), "{sql:?}");
    }
}

#[test]
fn comments_hide_nothing_and_show_nothing() {
    read("SELECT 1 -- ; DELETE FROM t");
    read("SELECT /* DELETE FROM t; */ 1");
    read("SELECT /* outer /* nested ; DELETE */ still comment */ 1");
    write("SELECT 1 /* c */; DELETE FROM t");
    write("SELECT 1 -- c\n; DELETE FROM t");
    write("SELECT 1 /* a /* b */ */ ; DROP TABLE t");
    write("SELECT 1 -- c\r; DELETE FROM t");
}

#[test]
fn literals_hide_keywords() {
    read("SELECT 'DELETE FROM t; INSERT INTO x'");
    read("SELECT 'it''s; DELETE FROM t'");
    read("SELECT E'it\\'s; DELETE FROM t'");
    read("SELECT e'\\\\'");
    read("SELECT $$ DELETE FROM t; $$");
    read("SELECT $body$ nextval('s') $$ ; DELETE $body$");
    read("SELECT \"delete\", \"into\" FROM \"update\"");
    read("SELECT \"a\"\"b; DELETE\" FROM t");
    read("SELECT U&'\\0041; DELETE' , B'101', X'ff', N'x; DELETE'");
    write("SELECT E'\\\\'; DELETE FROM t");
    write("SELECT 'a''' ; DELETE FROM t");
    write("SELECT $a$ x $b$ ; $a$; DELETE FROM t");
    write("SELECT a$b$ FROM t; DELETE FROM t");
}

#[test]
fn backslashes_are_read_both_ways() {
    // With standard_conforming_strings off, the first string runs to the second quote and the
    // DELETE is outside any string.
    write("SELECT 'x\\' , ' ; DELETE FROM t; -- '");
    // A LIKE escape is harmless either way.
    read("SELECT * FROM t WHERE name LIKE 'a\\_b%'");
}

#[test]
fn numbers_stop_before_letters() {
    write("SELECT 1into t");
    write("SELECT * FROM t WHERE x = 1e5for share");
    write("SELECT * FROM t WHERE x = .5e3for update");
    write("SELECT 1.5into t");
    read("SELECT 1e5, .5, 1.e3 FROM t");
}

#[test]
fn ctes() {
    read("WITH a AS (SELECT 1) SELECT * FROM a");
    read("WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 10) SELECT sum(n) FROM t");
    read("WITH a(x) AS (SELECT 1), b(y) AS MATERIALIZED (SELECT 2) SELECT * FROM a, b");
    read("WITH a AS NOT MATERIALIZED (SELECT 1) SELECT * FROM a");
    read("SELECT * FROM (WITH a(x) AS (SELECT 1) SELECT x FROM a) s");
    write("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x");
    write("with x as (update t set a = 1 returning *) select 1");
    write("WITH x AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM x");
    write("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a");
    write("WITH a AS (SELECT 1) MERGE INTO t USING a ON true WHEN MATCHED THEN DELETE");
    // Only a query's WITH starts a CTE list; after `WITH ORDINALITY` a `, name(` is a call.
    unprovable("SELECT * FROM unnest(x) WITH ORDINALITY, my_fn(1)");
    unprovable("SELECT now()::timestamp WITH TIME ZONE, my_fn(1)");
    read("SELECT * FROM (WITH a(x) AS (SELECT 1), b(y) AS (SELECT 2) SELECT x, y FROM a, b) s");
    // After the CTE list, `name(` is a call again.
    unprovable("WITH a AS (SELECT 1) SELECT f(x) FROM a");
    unprovable("WITH a AS (SELECT 1) SELECT 1, f(x) FROM a");
}

#[test]
fn locking_clauses() {
    for lock in [
        "FOR UPDATE",
        "FOR NO KEY UPDATE",
        "FOR SHARE",
        "FOR KEY SHARE",
        "for update of t skip locked",
        "FOR SHARE NOWAIT",
    ] {
        write(&format!("SELECT * FROM t WHERE id = 1 {lock}"));
    }
    write("SELECT * FROM (SELECT * FROM t FOR UPDATE) s");
    assert_eq!(
        classify("SELECT 1 FOR UPDATE").unwrap().reason(),
        reason::LOCKING
    );
    read("SELECT substring(name FROM 1 FOR 3) FROM t");
    read("SELECT share, key FROM t");
}

#[test]
fn select_into() {
    write("SELECT * INTO new_table FROM t");
    write("SELECT a, b INTO TEMP x FROM t");
    assert_eq!(
        classify("SELECT 1 INTO t").unwrap().reason(),
        reason::SELECT_INTO
    );
}

#[test]
fn explain() {
    read("EXPLAIN SELECT * FROM t");
    read("EXPLAIN ANALYZE SELECT * FROM t");
    read("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM t");
    read("EXPLAIN VERBOSE WITH a AS (SELECT 1) SELECT * FROM a");
    read("EXPLAIN (SELECT 1)");
    write("EXPLAIN ANALYZE DELETE FROM t");
    write("EXPLAIN ANALYSE VERBOSE INSERT INTO t VALUES (1)");
    write("EXPLAIN (ANALYZE) UPDATE t SET a = 1");
    write("EXPLAIN (ANALYZE true, COSTS off) SELECT * FROM t FOR UPDATE");
    write("EXPLAIN ANALYZE SELECT nextval('s')");
    // Plain EXPLAIN of a write runs nothing, but is not a read either.
    unprovable("EXPLAIN DELETE FROM t");
    unprovable("EXPLAIN (ANALYZE false) DELETE FROM t");
    unprovable("EXPLAIN (ANALYZE off, COSTS) DELETE FROM t");
    unprovable("EXPLAIN (ANALYZE 0) DELETE FROM t");
    unprovable("EXPLAIN SELECT my_fn()");
    unprovable("EXPLAIN EXECUTE p");
    unprovable("EXPLAIN");
    unprovable("EXPLAIN (ANALYZE)");
    write("EXPLAIN SELECT 1; DELETE FROM t");
    unprovable("EXPLAIN SHOW x");
}

#[test]
fn multi_statement() {
    write("SELECT 1; DELETE FROM t");
    write("DELETE FROM t; SELECT 1");
    write("SELECT my_fn(); INSERT INTO t VALUES (1)");
    unprovable("SELECT 1; SELECT my_fn()");
    read("SELECT 1; SHOW x; VALUES (1)");
    write("SELECT 1; BEGIN; SELECT 2; COMMIT");
}

#[test]
fn writer_functions() {
    for call in [
        "nextval('s')",
        "setval('s', 1)",
        "pg_advisory_lock(1)",
        "pg_advisory_xact_lock_shared(1, 2)",
        "pg_try_advisory_lock(1)",
        "pg_advisory_unlock_all()",
        "lo_import('/x')",
        "lo_unlink(1)",
        "pg_notify('c', 'x')",
        "set_config('a.b', 'c', false)",
        "txid_current()",
        "pg_current_xact_id()",
        "pg_switch_wal()",
        "pg_create_restore_point('x')",
        "pg_promote()",
        "pg_terminate_backend(1)",
        "pg_cancel_backend(1)",
        "pg_reload_conf()",
        "dblink_exec('c', 'DELETE FROM t')",
        "pg_stat_reset()",
        "pg_stat_reset_shared('bgwriter')",
        "pg_catalog.nextval('s')",
        "public.NEXTVAL('s')",
        "\"nextval\"('s')",
        "NextVal ('s')",
    ] {
        let sql = format!("SELECT {call}");
        write(&sql);
        assert_eq!(
            classify(&sql).unwrap().reason(),
            reason::WRITER_FUNCTION,
            "{sql}"
        );
    }
    write("SELECT * FROM t WHERE id = nextval('s')");
    write("VALUES (nextval('s'))");
    write("SELECT * FROM t, LATERAL (SELECT pg_advisory_lock(t.id)) l");
    // A mention is not a call.
    read("SELECT nextval FROM t");
    read("SELECT 'nextval(1)'");
}

#[test]
fn function_calls() {
    read("SELECT lower(name), upper(name), coalesce(a, b), now(), length(x), date_trunc('day', ts) FROM t");
    read("SELECT count(*) FILTER (WHERE a > 1) OVER (PARTITION BY b ORDER BY c) FROM t");
    read("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM t");
    read("SELECT CAST(x AS numeric(10, 2)), x::varchar(20), y::character varying(3) FROM t");
    read("SELECT * FROM generate_series(1, 3) g(n)");
    read("SELECT * FROM unnest($1::int[]) WITH ORDINALITY t(v, i)");
    read("SELECT * FROM (SELECT 1, 2) AS s(a, b)");
    read("SELECT a FROM t LEFT JOIN (SELECT 1 AS a) s ON true JOIN (u JOIN v USING (id)) ON true");
    read("SELECT 1 FROM a LEFT OUTER JOIN (SELECT 1) s ON true CROSS JOIN (SELECT 2) u NATURAL JOIN (v)");
    unprovable("SELECT 1 FROM a JOIN my_fn(1) f ON true");
    read("SELECT a FROM t WHERE x IN (1, 2) AND EXISTS (SELECT 1) AND y = ANY($1) AND NOT (z)");
    read(
        "SELECT DISTINCT ON (a) a FROM t GROUP BY ROLLUP (a), GROUPING SETS ((a), ()) ORDER BY (a)",
    );
    read("SELECT EXTRACT(year FROM ts), POSITION('a' IN s), TRIM(BOTH ' ' FROM s), ARRAY(SELECT 1), ROW(1, 2) FROM t");
    read("SELECT pg_catalog.lower(x) FROM t");
    read("SELECT * FROM t TABLESAMPLE SYSTEM (10) REPEATABLE (42)");
    read("SELECT (a, b) OVERLAPS (c, d) FROM t");
    unprovable("SELECT my_report_fn()");
    unprovable("SELECT * FROM my_schema.lower(x)");
    unprovable("SELECT \"lower\"(x)");
    unprovable("SELECT \"in\"(x)");
    unprovable("SELECT filter(1)");
    unprovable("SELECT join(1)");
    unprovable("SELECT a = like(1) FROM t");
    unprovable("SELECT U&\"\\006Eextval\"('s')");
    unprovable(&format!("SELECT {}(1)", "f".repeat(100)));
}

#[test]
fn user_registered_functions() {
    let c = Classifier::new()
        .with_read_only_function("my_report_fn")
        .with_read_only_functions(["Reports.Daily", "nextval"]);
    let route = |sql: &str| c.classify(sql).unwrap();
    assert_eq!(route("SELECT my_report_fn()").route(), Route::Replica);
    assert_eq!(route("SELECT MY_REPORT_FN()").route(), Route::Replica);
    assert_eq!(
        route("SELECT any_schema.my_report_fn()").route(),
        Route::Replica
    );
    assert_eq!(
        route("SELECT * FROM reports.daily($1)").route(),
        Route::Replica
    );
    assert_eq!(
        route("SELECT * FROM \"reports\".\"daily\"($1)").route(),
        Route::Replica
    );
    assert_eq!(route("SELECT daily($1)").route(), Route::Primary);
    assert_eq!(route("SELECT other.daily($1)").route(), Route::Primary);
    // Writers stay writers.
    assert!(route("SELECT nextval('s')").is_write());
    // The default classifier knows none of them.
    assert_eq!(verdict("SELECT my_report_fn()"), Verdict::Unprovable);
}

#[test]
fn hints() {
    let c = classify("/* seawall:replica */ SELECT my_report_fn()").unwrap();
    assert_eq!(
        (c.route(), c.hint(), c.hint_overridden()),
        (Route::Replica, Some(Hint::Replica), false)
    );

    let c = classify("/* seawall:primary */ SELECT 1").unwrap();
    assert_eq!(
        (c.route(), c.verdict()),
        (Route::Primary, Verdict::ReadOnly)
    );

    let c = classify("-- seawall:primary\nSELECT 1").unwrap();
    assert_eq!((c.route(), c.hint()), (Route::Primary, Some(Hint::Primary)));

    let c = classify("  /*SEAWALL: Replica*/ -- other comment\n SELECT 1").unwrap();
    assert_eq!((c.route(), c.hint()), (Route::Replica, Some(Hint::Replica)));

    for sql in [
        "/* seawall:replica */ INSERT INTO t VALUES (1)",
        "/* seawall:replica */ SELECT * FROM t FOR UPDATE",
        "/* seawall:replica */ SELECT nextval('s')",
        "/* seawall:replica */ BEGIN",
        "/* seawall:replica */ SELECT 1; DELETE FROM t",
    ] {
        let c = classify(sql).unwrap();
        assert_eq!(
            (c.route(), c.hint_overridden()),
            (Route::Primary, true),
            "{sql}"
        );
    }

    // Only leading comments carry hints.
    let c = classify("SELECT my_fn() /* seawall:replica */").unwrap();
    assert_eq!((c.route(), c.hint()), (Route::Primary, None));
    // Other comments are not hints.
    assert_eq!(classify("/* seawallet */ SELECT 1").unwrap().hint(), None);
    assert_eq!(
        classify("/* see seawall:replica */ SELECT 1")
            .unwrap()
            .hint(),
        None
    );
}

#[test]
fn malformed_hints_are_errors() {
    for (sql, offset) in [
        ("/* seawall:foo */ SELECT 1", 0),
        ("/* seawall: */ SELECT 1", 0),
        ("/* seawall */ SELECT 1", 0),
        ("/* seawall primary */ SELECT 1", 0),
        ("/* seawall:replica please */ SELECT 1", 0),
        ("-- seawall:\nSELECT 1", 0),
        ("/* ok */ /* seawall:replcia */ SELECT 1", 9),
    ] {
        assert_eq!(
            classify(sql),
            Err(ClassifyError::MalformedHint { offset }),
            "{sql}"
        );
    }
    assert_eq!(
        classify("/* seawall:primary */ /* seawall:replica */ SELECT 1"),
        Err(ClassifyError::ConflictingHints)
    );
    assert!(classify("/* seawall:primary */ -- seawall:primary\nSELECT 1").is_ok());
}

#[test]
fn hostile_input_does_not_panic() {
    let deep = "/*".repeat(100_000);
    assert_eq!(verdict(&deep), Verdict::Unprovable);
    let parens = format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(verdict(&parens), Verdict::ReadOnly);
    let dollars = format!("SELECT $a$ {} $a", "$".repeat(10_000));
    assert_eq!(verdict(&dollars), Verdict::Unprovable);
    for sql in [
        "$",
        "$$",
        "E'",
        "E'\\",
        "U&",
        "U&'",
        "u&\"",
        "'",
        "\"",
        "--",
        "/*",
        "/",
        "-",
        "é",
        "SELECT é(1)",
        ".",
        "1e",
        "1e+",
        "x'",
    ] {
        let _ = classify(sql);
        let _ = classify(&format!("SELECT {sql}"));
    }
}

#[test]
fn classification_is_plain_data() {
    let c = classify("SELECT 1").unwrap();
    assert_eq!(c.reason(), reason::READ);
    assert!(!c.is_write());
    assert_eq!(classify("SHOW x").unwrap().reason(), reason::SHOW);
    assert_eq!(classify("TRUNCATE t").unwrap().reason(), reason::DML);
    assert_eq!(
        ClassifyError::MalformedHint { offset: 3 }.to_string(),
        "malformed routing hint at byte 3: expected `seawall:primary` or `seawall:replica`"
    );
}

#[test]
fn vertical_tab_is_whitespace() {
    write("SELECT nextval\u{b}('s')");
    unprovable("SELECT my_fn\u{b}\u{c}(1)");
    unprovable("SELECT x .\u{b}lower(1)");
}

mod fast_path {
    use super::*;
    use proptest::prelude::*;

    /// Where the fast path decides, it decides as the full analysis does.
    fn agrees(sql: &str) -> Result<(), TestCaseError> {
        let Ok((_, start)) = leading_hint(sql.as_bytes()) else {
            return Ok(());
        };
        if let Some(fast) = fast::classify(sql.as_bytes(), start) {
            let (slow, saw_backslash) = DEFAULT_FOR_TESTS.scan(sql.as_bytes(), start, false);
            prop_assert_eq!(slow, Some(fast), "{}", sql);
            prop_assert!(!saw_backslash || fast.0 == Verdict::Writes, "{}", sql);
        }
        Ok(())
    }

    static DEFAULT_FOR_TESTS: Classifier = Classifier {
        read_only: Vec::new(),
        writes: Vec::new(),
        writes_shadow_builtin: false,
    };

    const PIECES: &[&str] = &[
        "SELECT ", "select ", "x", "lower", "nextval", "my_fn", "count", "in", "(", ")", " ",
        "\u{b}", ",", ".", "'a'", "'", "''", "\"q\"", "\"", "$1", "$", "$$", "E", "U&", "&", "--",
        "/*", "*/", "-", "/", ";", "1", "e", "FOR", "UPDATE", "INTO", "into", "for", "share", "é",
        "\\", "AS", "t",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        #[test]
        fn fast_path_never_contradicts_the_full_analysis(
            parts in prop::collection::vec(prop::sample::select(PIECES), 0..24),
        ) {
            agrees(&format!("SELECT {}", parts.concat()))?;
            agrees(&parts.concat())?;
        }

        #[test]
        fn fast_path_on_arbitrary_text(tail in any::<String>()) {
            agrees(&format!("SELECT {tail}"))?;
        }
    }

    /// The same check over a fixed pseudo-random sample, counting how often the fast path
    /// answers, so that the property above is known to exercise it.
    #[test]
    fn fast_path_is_exercised_and_agrees() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut reads, mut writes) = (0, 0);
        for _ in 0..20_000 {
            let len = next() % 12;
            let sql: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            let sql = format!("SELECT {sql}");
            match fast::classify(sql.as_bytes(), 0) {
                Some((Verdict::ReadOnly, _)) => reads += 1,
                Some(_) => writes += 1,
                None => {}
            }
            agrees(&sql).unwrap();
        }
        assert!(
            reads > 500 && writes > 500,
            "fast path decided {reads} reads, {writes} writes"
        );
    }

    #[test]
    fn fast_path_takes_the_common_reads() {
        for sql in [
            "SELECT id, name, email FROM users WHERE id = $1 AND status = 'active' ORDER BY created_at DESC LIMIT 10",
            "SELECT count(*), lower(name) FROM \"users\" WHERE x = 'it''s'",
            "select a.b, c.d from a join c on a.id = c.id where a.x in (1, 2, 3)",
            "WITH m AS (SELECT sum(x) AS s FROM t) SELECT s, lag(s) OVER (ORDER BY s) FROM m",
            "(SELECT 1) UNION (VALUES (2))",
            "TABLE t",
        ] {
            assert_eq!(fast::classify(sql.as_bytes(), 0), Some((Verdict::ReadOnly, reason::READ)), "{sql}");
        }
        for sql in [
            "SELECT nextval('s')",
            "SELECT x.lower(1)",
            "SELECT \"lower\"(1)",
            "SELECT 1; SELECT 2",
            "SELECT 1 -- c",
            "SELECT E'x'",
            "SELECT 'a\\b'",
            "SELECT $$x$$",
            "SELECT 'open",
            "SELECT (x) nextval('s')",
            "SELECT )1x(",
            "SELECT (a) $1x(",
            "WITH a(x) AS (SELECT 1) SELECT x FROM a",
            "SHOW x",
            "EXPLAIN SELECT 1",
        ] {
            assert_eq!(fast::classify(sql.as_bytes(), 0), None, "{sql}");
        }
        for (sql, reason) in [
            ("SELECT * FROM t FOR UPDATE SKIP LOCKED", reason::LOCKING),
            ("SELECT * FROM t for  no KEY update", reason::LOCKING),
            ("SELECT 1 INTO t", reason::SELECT_INTO),
            (
                "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
                reason::NESTED_WRITE,
            ),
        ] {
            assert_eq!(
                fast::classify(sql.as_bytes(), 0),
                Some((Verdict::Writes, reason)),
                "{sql}"
            );
        }
    }
}

#[test]
fn query_keyword_tables_agree() {
    for (word, kw) in names::QUERY_KEYWORDS {
        assert_eq!(names::query_keyword(word.as_bytes()), *kw, "{word}");
        assert_eq!(
            names::query_keyword(word.to_uppercase().as_bytes()),
            *kw,
            "{word}"
        );
    }
    for word in [
        "", "i", "intox", "form", "sharex", "selec", "status", "user_id",
    ] {
        assert_eq!(
            names::query_keyword(word.as_bytes()),
            names::Kw::Other,
            "{word}"
        );
    }
}
