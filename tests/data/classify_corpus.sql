-- Corpus for tests/classify_oracle.rs. Each case starts with a marker line:
--   @read        provably read-only: the classifier must route it to a replica
--   @write       known to write (or to need the primary's session): Verdict::Writes
--   @unprovable  neither: primary unless hinted
--   @write-legacy  a write only where standard_conforming_strings is off (the parser, which
--                  assumes it is on, sees a read; the classifier reads backslashes both ways)
-- The lines up to the next marker are the SQL of the case.

-- ===== ORM-style reads (ActiveRecord, Django, Hibernate, Prisma, sqlx) =====
-- @read
SELECT "users".* FROM "users" WHERE "users"."id" = $1 LIMIT $2
-- @read
SELECT "users"."id", "users"."email" FROM "users" WHERE "users"."email" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" ASC LIMIT 1
-- @read
SELECT id, name, email FROM users WHERE id = $1 AND status = 'active' ORDER BY created_at DESC LIMIT 10
-- @read
SELECT COUNT(*) FROM "orders" WHERE "orders"."customer_id" = $1
-- @read
SELECT "auth_user"."id", "auth_user"."password", "auth_user"."last_login", "auth_user"."is_superuser", "auth_user"."username" FROM "auth_user" WHERE "auth_user"."username" = 'admin' LIMIT 21
-- @read
SELECT (1) AS "a" FROM "django_session" WHERE "django_session"."session_key" = 'abc123' LIMIT 1
-- @read
SELECT "django_content_type"."id", "django_content_type"."app_label", "django_content_type"."model" FROM "django_content_type" WHERE ("django_content_type"."app_label" = 'auth' AND "django_content_type"."model" = 'user') LIMIT 21
-- @read
select user0_.id as id1_0_, user0_.email as email2_0_, user0_.name as name3_0_ from users user0_ where user0_.email=?
-- @read
SELECT "public"."Post"."id", "public"."Post"."title", "public"."Post"."published" FROM "public"."Post" WHERE ("public"."Post"."published" = $1 AND "public"."Post"."authorId" IN ($2,$3,$4)) OFFSET $5
-- @read
SELECT p.id, p.title, u.name AS author FROM posts p INNER JOIN users u ON u.id = p.author_id WHERE p.published_at IS NOT NULL ORDER BY p.published_at DESC LIMIT 20 OFFSET 40
-- @read
SELECT * FROM products WHERE category_id = ANY($1) AND price BETWEEN $2 AND $3
-- @read
SELECT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1 AND org_id = $2)
-- @read
SELECT id FROM sessions WHERE token = $1 AND expires_at > now()
-- @read
SELECT * FROM events WHERE payload @> '{"type": "signup"}'::jsonb ORDER BY id DESC LIMIT 50
-- @read
SELECT id, data->>'name' AS name, data #>> '{address,city}' AS city FROM customers WHERE data ? 'vip'
-- @read
SELECT a.id, array_agg(t.name ORDER BY t.name) AS tags FROM articles a LEFT JOIN article_tags at ON at.article_id = a.id LEFT JOIN tags t ON t.id = at.tag_id GROUP BY a.id
-- @read
SELECT * FROM users WHERE lower(email) = lower($1)
-- @read
SELECT * FROM documents WHERE to_tsvector('english', body) @@ plainto_tsquery('english', $1)
-- @read
SELECT id FROM jobs WHERE queue = 'default' AND run_at <= now() ORDER BY priority, run_at LIMIT 1
-- @read
SELECT DISTINCT ON (user_id) user_id, created_at, amount FROM payments ORDER BY user_id, created_at DESC
-- @read
SELECT "users"."id" FROM "users" WHERE "users"."name" ILIKE '%o''brien%'
-- @read
SELECT * FROM t WHERE name LIKE 'abc\_%'
-- With standard_conforming_strings off, '\' never ends: the classifier reads backslashes both ways.
-- @unprovable
SELECT * FROM t WHERE name LIKE 'abc\_%' ESCAPE '\'
-- @read
SELECT coalesce(nickname, first_name || ' ' || last_name) AS display_name FROM people WHERE id = $1
-- @read
SELECT id, created_at::date AS day FROM signups WHERE created_at >= current_date - interval '7 days'
-- @read
SELECT CAST(amount AS numeric(12, 2)), amount::varchar(32) FROM invoices
-- @read
SELECT * FROM pg_stat_activity WHERE state <> 'idle'
-- @read
SELECT relname, pg_size_pretty(pg_total_relation_size(relid)) FROM pg_catalog.pg_statio_user_tables ORDER BY pg_total_relation_size(relid) DESC
-- @read
SELECT version()
-- @read
SELECT current_setting('server_version_num')
-- @read
SELECT pg_is_in_recovery()
-- @read
SELECT 1
-- @read
select 1 as ping
-- @read
SHOW transaction_isolation
-- @read
SHOW search_path
-- @read
TABLE schema_migrations
-- @read
VALUES (1, 'one'), (2, 'two')
-- @read
SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > 100)
-- @read
SELECT u.* FROM users u WHERE NOT EXISTS (SELECT 1 FROM bans b WHERE b.user_id = u.id)
-- @read
SELECT id, CASE WHEN score >= 90 THEN 'A' WHEN score >= 80 THEN 'B' ELSE 'C' END AS grade FROM results
-- @read
SELECT * FROM t1 UNION SELECT * FROM t2 EXCEPT SELECT * FROM t3
-- @read
(SELECT id FROM a ORDER BY id LIMIT 5) UNION ALL (SELECT id FROM b ORDER BY id LIMIT 5)
-- @read
SELECT json_build_object('id', u.id, 'name', u.name) FROM users u WHERE u.id = $1
-- @read
SELECT jsonb_agg(row_to_json(o)) FROM (SELECT id, total FROM orders WHERE user_id = $1) o
-- @read
SELECT date_trunc('month', created_at) AS month, sum(amount) FROM payments GROUP BY 1 ORDER BY 1
-- @read
SELECT extract(epoch FROM now() - started_at) AS seconds FROM runs WHERE id = $1
-- @read
SELECT greatest(a, b), least(a, b), nullif(c, 0), abs(d), round(e, 2) FROM metrics
-- @read
SELECT substring(name FROM 1 FOR 3), position('x' IN name), trim(both ' ' FROM name) FROM t
-- @read
SELECT string_agg(DISTINCT tag, ', ' ORDER BY tag) FROM tags
-- @read
SELECT * FROM orders o JOIN LATERAL (SELECT * FROM items i WHERE i.order_id = o.id ORDER BY i.price DESC LIMIT 3) top ON true
-- @read
SELECT * FROM generate_series(1, 10) AS g(n)
-- @read
SELECT n FROM generate_series(1, 10) g(n) WHERE n % 2 = 0
-- @read
SELECT * FROM unnest(ARRAY[1, 2, 3]) WITH ORDINALITY AS t(value, idx)
-- @read
SELECT id FROM users ORDER BY random() LIMIT 1
-- @read
SELECT id FROM items FETCH FIRST 10 ROWS ONLY
-- @read
SELECT "order", "select", "delete", "update" FROM "weird names"
-- @read
SELECT md5(email), encode(digest, 'hex') FROM accounts
-- @read
SELECT to_char(created_at, 'YYYY-MM-DD'), age(now(), created_at) FROM users
-- @read
SELECT count(*) AS n FROM users WHERE created_at > now() - '1 day'::interval
-- @read
SELECT pg_backend_pid()
-- @read
SELECT has_table_privilege('app', 'users', 'SELECT')

-- ===== Reporting: CTEs, window functions, grouping =====
-- @read
WITH monthly AS (
  SELECT date_trunc('month', created_at) AS month, sum(amount) AS revenue
  FROM payments
  WHERE status = 'paid'
  GROUP BY 1
)
SELECT month, revenue, revenue - lag(revenue) OVER (ORDER BY month) AS growth
FROM monthly
ORDER BY month
-- @read
WITH RECURSIVE tree(id, parent_id, depth) AS (
  SELECT id, parent_id, 0 FROM categories WHERE parent_id IS NULL
  UNION ALL
  SELECT c.id, c.parent_id, t.depth + 1 FROM categories c JOIN tree t ON c.parent_id = t.id
)
SELECT * FROM tree ORDER BY depth, id
-- @read
WITH a AS (SELECT user_id, count(*) AS n FROM orders GROUP BY user_id),
     b AS (SELECT user_id, sum(amount) AS total FROM payments GROUP BY user_id)
SELECT a.user_id, a.n, b.total FROM a JOIN b USING (user_id)
-- @read
WITH active AS MATERIALIZED (SELECT * FROM users WHERE active) SELECT count(*) FROM active
-- @read
WITH x AS NOT MATERIALIZED (SELECT 1 AS v) SELECT v FROM x
-- @read
SELECT user_id, amount, row_number() OVER (PARTITION BY user_id ORDER BY created_at DESC) AS rn FROM payments
-- @read
SELECT * FROM (SELECT *, rank() OVER w AS r FROM scores WINDOW w AS (PARTITION BY game ORDER BY points DESC)) ranked WHERE r <= 3
-- @read
SELECT department, percentile_cont(0.5) WITHIN GROUP (ORDER BY salary) AS median FROM employees GROUP BY department
-- @read
SELECT count(*) FILTER (WHERE status = 'open') AS open, count(*) FILTER (WHERE status = 'closed') AS closed FROM tickets
-- @read
SELECT region, product, sum(sales) FROM sales GROUP BY ROLLUP (region, product)
-- @read
SELECT region, product, sum(sales) FROM sales GROUP BY GROUPING SETS ((region), (product), ())
-- @read
SELECT avg(amount) OVER (ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) FROM daily_totals
-- @read
SELECT first_value(name) OVER (PARTITION BY team ORDER BY joined), ntile(4) OVER (ORDER BY score) FROM players
-- @read
SELECT u.id, (SELECT max(created_at) FROM logins l WHERE l.user_id = u.id) AS last_login FROM users u
-- @read
WITH totals AS (SELECT customer_id, sum(total) AS spend FROM orders GROUP BY customer_id)
SELECT c.name, t.spend, ntile(10) OVER (ORDER BY t.spend DESC) AS decile
FROM customers c JOIN totals t ON t.customer_id = c.id
-- @read
SELECT date_trunc('week', o.created_at) AS week, count(DISTINCT o.customer_id) AS buyers, sum(oi.quantity * oi.unit_price) AS gross
FROM orders o JOIN order_items oi ON oi.order_id = o.id
WHERE o.created_at >= now() - interval '90 days'
GROUP BY 1 HAVING sum(oi.quantity * oi.unit_price) > 1000 ORDER BY 1
-- @read
SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, label)
-- @read
SELECT cohort, period, count(*) FROM (SELECT user_id, date_trunc('month', min(created_at) OVER (PARTITION BY user_id)) AS cohort, date_trunc('month', created_at) AS period FROM events) e GROUP BY cohort, period
-- @read
EXPLAIN SELECT * FROM users WHERE id = 1
-- @read
EXPLAIN ANALYZE SELECT count(*) FROM orders
-- @read
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM orders WHERE customer_id = 42

-- ===== Built-ins beyond the common ones (generated from PostgreSQL 15's catalog) =====
-- @read
SELECT int4multirange(int4range(1, 5), int4range(8, 9)) @> 3
-- @read
SELECT range_merge(datemultirange(daterange('2024-01-01', '2024-02-01'))) FROM t
-- @read
SELECT ts_rank_cd(to_tsvector('english', body), websearch_to_tsquery('english', $1)), ts_headline('english', body, to_tsquery($1)) FROM docs
-- @read
SELECT setweight(to_tsvector(title), 'A') || setweight(to_tsvector(body), 'B') FROM docs
-- @read
SELECT id FROM places WHERE circle(point(lat, lon), 0.1) @> point($1, $2) ORDER BY point(lat, lon) <-> point($1, $2) LIMIT 10
-- @read
SELECT area(box(point(0, 0), point(2, 3))), lseg(point(0, 0), point(1, 1)) ?-| lseg(point(0, 0), point(0, 1))
-- @read
SELECT xmlcomment('x'), xpath('/a/text()', '<a>1</a>'::xml), xml_is_well_formed($1)
-- @read
SELECT relid, level FROM pg_partition_tree('measurements') WHERE isleaf
-- @read
SELECT pg_partition_root('measurements_2024'), pg_get_partkeydef('measurements'::regclass)
-- @read
SELECT jsonb_path_query_array(doc, '$.items[*].id'), jsonb_object_keys(doc) FROM events
-- @read
SELECT unistr('\0441\043B\043E\043D'), normalize($1, NFC), string_agg(DISTINCT tag, ',') FROM tags
-- @read
SELECT pg_get_function_identity_arguments(oid), pg_function_is_visible(oid) FROM pg_proc WHERE proname = $1
-- @read
SELECT random() < 0.1 AS sampled, gen_random_uuid() AS request_id, clock_timestamp()
-- @read
SELECT * FROM t TABLESAMPLE BERNOULLI (1) REPEATABLE (42)
-- @read
SELECT make_timestamptz(2024, 1, 1, 0, 0, 0, 'UTC'), date_bin('15 minutes', ts, '2000-01-01') FROM t
-- @read
SELECT inet_merge('10.0.0.1', '10.0.1.1'), host(ip), masklen(ip) FROM hosts WHERE ip << '10.0.0.0/8'::inet

-- ===== Tricky literals and comments =====
-- @read
SELECT 'DELETE FROM users; DROP TABLE users;' AS note
-- @read
SELECT 'it''s; INSERT INTO x VALUES (1)' FROM t
-- @read
SELECT E'line\nbreak\'; DELETE FROM t; --' AS s
-- @read
SELECT $$ INSERT INTO t VALUES (1); $$ AS body
-- @read
SELECT $fn$ UPDATE t SET a = 1 $fn$ AS body, $x$ $$ nested $$ $x$
-- @read
SELECT 1 -- ; DELETE FROM t
-- @read
/* DELETE FROM t; */ SELECT 1
-- @read
SELECT /* outer /* inner; DROP TABLE t */ still comment */ 1
-- @read
SELECT "into", "for", "update" FROM "insert"
-- @read
SELECT 'nextval(''seq'')' AS not_a_call
-- @read
SELECT 'FOR UPDATE' AS lock_text FROM t
-- @write
SELECT 'harmless'; DELETE FROM users
-- @write
SELECT 1 /* comment */ ; DROP TABLE users
-- @write
SELECT $$ a $$; TRUNCATE t
-- @write
SELECT E'\\'; DELETE FROM t
-- @write
SELECT 'a''', 'b'; UPDATE t SET x = 1
-- @write-legacy
SELECT 'x\' , ' ; DELETE FROM t; -- '

-- ===== Locking clauses and SELECT INTO =====
-- @write
SELECT * FROM accounts WHERE id = $1 FOR UPDATE
-- @write
SELECT * FROM jobs WHERE queue = 'default' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
-- @write
SELECT * FROM accounts WHERE id = 1 FOR NO KEY UPDATE
-- @write
SELECT * FROM accounts WHERE id = 1 FOR SHARE
-- @write
SELECT * FROM accounts WHERE id = 1 FOR KEY SHARE NOWAIT
-- @write
select * from a join b on a.id = b.a_id for update of a
-- @write
SELECT * INTO backup_users FROM users
-- @write
SELECT id, email INTO TEMPORARY TABLE tmp_emails FROM users WHERE active

-- ===== Data-modifying CTEs =====
-- @write
WITH deleted AS (DELETE FROM sessions WHERE expires_at < now() RETURNING id) SELECT count(*) FROM deleted
-- @write
WITH moved AS (DELETE FROM queue WHERE id = $1 RETURNING *) INSERT INTO done SELECT * FROM moved
-- @write
WITH upd AS (UPDATE accounts SET balance = balance - 10 WHERE id = 1 RETURNING *) SELECT * FROM upd
-- @write
WITH ins AS (INSERT INTO audit(event) VALUES ('x') RETURNING id) SELECT id FROM ins
-- @write
WITH src AS (SELECT 1 AS id) UPDATE t SET x = 1 FROM src WHERE t.id = src.id

-- ===== Writer functions inside reads =====
-- @write
SELECT nextval('orders_id_seq')
-- @write
SELECT setval('orders_id_seq', 1000, true)
-- @write
SELECT pg_advisory_lock(42)
-- @write
SELECT pg_try_advisory_lock(hashtext('job-runner'))
-- @write
SELECT pg_advisory_xact_lock($1)
-- @write
SELECT pg_advisory_unlock(42)
-- @write
SELECT lo_import('/tmp/file')
-- @write
SELECT lo_unlink(12345)
-- @write
SELECT pg_notify('events', 'payload')
-- @write
SELECT set_config('app.current_user', '42', false)
-- @write
SELECT txid_current()
-- @write
SELECT pg_current_xact_id()
-- @write
SELECT pg_switch_wal()
-- @write
SELECT pg_create_restore_point('before_migration')
-- @write
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'idle in transaction'
-- @write
SELECT pg_cancel_backend(12345)
-- @write
SELECT pg_reload_conf()
-- @write
SELECT pg_stat_reset()
-- @write
SELECT dblink_exec('dbname=other', 'DELETE FROM t')
-- @write
SELECT id, nextval('s') FROM t WHERE x = 1
-- @write
INSERT INTO t (id) SELECT nextval('s')
-- @write
SELECT * FROM users WHERE id = currval('s') OR id = nextval('s')

-- ===== Unknown functions (user-defined, extensions) =====
-- @unprovable
SELECT my_report_fn($1)
-- @unprovable
SELECT * FROM refresh_dashboard()
-- @unprovable
SELECT app.compute_score(u.id) FROM users u
-- currval reads the session's own sequence state: only the primary's session has it.
-- @write
SELECT currval('s')
-- @unprovable
SELECT * FROM t WHERE custom_check(x)
-- @unprovable
SELECT "MyFunc"(1)

-- ===== DML =====
-- @write
INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id
-- @write
INSERT INTO "users" ("email","created_at") VALUES ('a@b.c', NOW()) RETURNING "id"
-- @write
INSERT INTO counters (key, n) VALUES ('x', 1) ON CONFLICT (key) DO UPDATE SET n = counters.n + 1
-- @write
INSERT INTO t SELECT * FROM s
-- @write
UPDATE users SET last_login = now() WHERE id = $1
-- @write
UPDATE "posts" SET "title" = $1, "updated_at" = $2 WHERE "posts"."id" = $3
-- @write
UPDATE accounts a SET balance = a.balance + t.amount FROM transfers t WHERE t.account_id = a.id
-- @write
DELETE FROM sessions WHERE expires_at < now()
-- @write
DELETE FROM "users" WHERE "users"."id" IN (SELECT id FROM banned)
-- @write
MERGE INTO inventory i USING deliveries d ON i.sku = d.sku WHEN MATCHED THEN UPDATE SET qty = i.qty + d.qty WHEN NOT MATCHED THEN INSERT (sku, qty) VALUES (d.sku, d.qty)
-- @write
COPY users TO STDOUT WITH (FORMAT csv)
-- @write
COPY users (id, email) FROM STDIN
-- @write
TRUNCATE TABLE logs RESTART IDENTITY
-- @write
insert into t values (1); select 1

-- ===== DDL =====
-- @write
CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE)
-- @write
CREATE INDEX CONCURRENTLY idx_users_email ON users (lower(email))
-- @write
CREATE TABLE archive AS SELECT * FROM orders WHERE created_at < '2020-01-01'
-- @write
CREATE MATERIALIZED VIEW mv AS SELECT 1
-- @write
CREATE OR REPLACE FUNCTION add(a int, b int) RETURNS int AS $$ SELECT a + b $$ LANGUAGE sql
-- @write
CREATE VIEW active_users AS SELECT * FROM users WHERE active
-- @write
CREATE SCHEMA IF NOT EXISTS reporting
-- @write
CREATE EXTENSION IF NOT EXISTS pgcrypto
-- @write
ALTER TABLE users ADD COLUMN bio text
-- @write
ALTER TABLE users ALTER COLUMN email SET NOT NULL
-- @write
ALTER SEQUENCE orders_id_seq RESTART WITH 1000
-- @write
DROP TABLE IF EXISTS tmp CASCADE
-- @write
DROP INDEX CONCURRENTLY idx_old
-- @write
GRANT SELECT ON ALL TABLES IN SCHEMA public TO readonly
-- @write
REVOKE INSERT ON users FROM app
-- @write
COMMENT ON COLUMN users.email IS 'primary contact'

-- ===== Maintenance, locks, notifications =====
-- @write
VACUUM (VERBOSE, ANALYZE) users
-- @write
ANALYZE users
-- @write
REINDEX INDEX idx_users_email
-- @write
CLUSTER users USING users_pkey
-- @write
REFRESH MATERIALIZED VIEW CONCURRENTLY mv
-- @write
LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE
-- @write
LISTEN events
-- @write
UNLISTEN *
-- @write
NOTIFY events, 'hello'
-- @write
CHECKPOINT

-- ===== Session, transactions, procedures, cursors =====
-- @write
BEGIN
-- @write
BEGIN ISOLATION LEVEL SERIALIZABLE
-- @write
START TRANSACTION READ ONLY
-- @write
COMMIT
-- @write
ROLLBACK
-- @write
SAVEPOINT sp1
-- @write
ROLLBACK TO SAVEPOINT sp1
-- @write
RELEASE SAVEPOINT sp1
-- @write
SET search_path TO app, public
-- @write
SET LOCAL statement_timeout = '5s'
-- @write
RESET ALL
-- @write
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ
-- @write
CALL process_orders(10)
-- @write
DO $$ BEGIN PERFORM 1; END $$
-- @write
PREPARE get_user (int) AS SELECT * FROM users WHERE id = $1
-- @write
EXECUTE get_user(1)
-- @write
DEALLOCATE ALL
-- @write
DECLARE c CURSOR FOR SELECT * FROM big
-- @write
FETCH 100 FROM c
-- @write
CLOSE c
-- @write
DISCARD ALL
-- @write
BEGIN; SELECT 1; COMMIT

-- ===== EXPLAIN of writes =====
-- @write
EXPLAIN ANALYZE DELETE FROM users WHERE id = 1
-- @write
EXPLAIN (ANALYZE, BUFFERS) UPDATE accounts SET balance = 0
-- @write
EXPLAIN ANALYZE SELECT * FROM accounts FOR UPDATE
-- @unprovable
EXPLAIN INSERT INTO t VALUES (1)
-- @unprovable
EXPLAIN SELECT my_fn()
