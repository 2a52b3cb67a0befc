-- Seeds for tests/classify_differential.rs: one statement per line, run as written and mutated.
-- They run against the test's schema (tables t, f; sequence s; the user functions it creates).
-- Lines starting with `--` are comments. The block at the end holds the statements that slipped
-- past the classifier (read-only verdict, yet they write, lock or set session state) when issue
-- #14 was filed; they stay as regression cases.
SELECT a, b FROM t WHERE a = 1
SELECT count(*), max(c) FROM t GROUP BY b HAVING count(*) > 0
SELECT b, sum(a) FROM t GROUP BY ROLLUP (b)
SELECT a, b FROM t GROUP BY CUBE (a, b)
SELECT a FROM t GROUP BY GROUPING SETS ((a), ())
WITH w AS MATERIALIZED (SELECT a FROM t) SELECT * FROM w
WITH w AS NOT MATERIALIZED (SELECT a FROM t) SELECT * FROM w
WITH RECURSIVE r(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT sum(n) FROM r
SELECT * FROM t TABLESAMPLE system (50) REPEATABLE (1)
SELECT * FROM t TABLESAMPLE BERNOULLI (50) REPEATABLE (2)
SELECT lower(b), upper(b), length(b), coalesce(b, 'x') FROM t ORDER BY a LIMIT 2
SELECT a FROM t WHERE b LIKE ('x%') OR b ILIKE ('X1')
SELECT d->>'k', jsonb_path_query_array(d, '$.k') FROM t
SELECT to_tsvector('english', b) @@ plainto_tsquery('english', 'x1') FROM t
SELECT int4multirange(int4range(1, 5)), point(1, 2) <-> point(3, 4)
SELECT xmlcomment('x'), xmlelement(name a, 'b')
SELECT random() < 2, clock_timestamp() IS NOT NULL, gen_random_uuid() IS NOT NULL
SELECT count(*) FILTER (WHERE a > 1) OVER (PARTITION BY b ORDER BY a) FROM t
SELECT (t.a, t.b) FROM t
SELECT x.a FROM t x WHERE x.b IS NOT NULL
EXPLAIN SELECT * FROM t
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM t
EXPLAIN ("analyze", costs off) SELECT 1
SELECT CAST(a AS numeric(10, 2)), b::character varying(3) FROM t
SELECT a FROM t ORDER BY a FETCH FIRST 2 ROWS ONLY
SELECT app_read(a) FROM t
SELECT a FROM t FOR UPDATE
SELECT a FROM t FOR KEY SHARE
SELECT a INTO TEMP tmp_x FROM t
WITH d AS (DELETE FROM t WHERE false RETURNING a) SELECT * FROM d
SELECT nextval('s')
SELECT setval('s', 10)
SELECT pg_advisory_lock(42)
SELECT pg_try_advisory_xact_lock(43)
SELECT set_config('app.k', 'v', false)
SELECT setseed(0.25)
SELECT txid_current()
SELECT app_lock(44)
SELECT app_set('v')
-- ===== Found by the adversary of issue #14 (read-only verdicts before the fix) =====
SELECT U&"!0073etseed" UESCAPE '!'(0.5)
SELECT U&"p!0075blic" UESCAPE '!'.app_set('v')
SELECT (0.5).setseed
SELECT (45).pg_advisory_lock
SELECT ('s').nextval
SELECT g.pg_advisory_lock FROM generate_series(46, 46) g
SELECT (t).app_touch FROM t
SELECT 1 ORDER BY rollup(1)
SELECT a FROM t FETCH FIRST like(1) ROWS ONLY
SELECT a FROM t ORDER BY a FETCH FIRST freeze(1) ROWS ONLY
SELECT 'x' SIMILAR TO cube(1)::text
SELECT a FROM t WHERE a BETWEEN SYMMETRIC freeze(1) AND 10
SELECT NOT materialized(1) IS NULL
SELECT json_array(1), json_scalar(1)
SELECT system_rows(1), bernoulli(1)
SELECT uuid(1)
EXPLAIN ("analyze") SELECT pg_advisory_lock(47)
EXPLAIN ("analyze", "verbose") SELECT app_set('w')
