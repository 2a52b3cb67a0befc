//! The classifier against the real server: differential testing on the test bed.
//!
//! A deterministic generator (a grammar of queries over the test's schema, plus mutations of the
//! seeds in `tests/data/classify_differential_seeds.sql`) produces a few thousand statements.
//! Each runs on a hot standby and inside `BEGIN READ ONLY` on the primary, both rolled back. The
//! test fails if the classifier calls read-only a statement that, on the server:
//!
//! * fails on the primary with SQLSTATE 25006 (`read_only_sql_transaction`),
//! * succeeds on the primary but fails on the standby (it needs the primary),
//! * or succeeds on either but takes a lock other than a relation's `AccessShareLock` (advisory
//!   locks, a transaction id), changes a setting (`pg_settings`), or moves the session's random
//!   seed (the statement runs after `setseed(S)`; the next `random()` must be one of the first
//!   values of that seed's sequence), or still holds a session-level advisory lock after the
//!   rollback.
//!
//! Functions that would disturb the test bed itself (`pg_promote`, `pg_terminate_backend`,
//! `pg_sleep`, file access, ...) are not run: statements calling them are only classified, and
//! must not be read-only. The test also checks that the committed built-in tables
//! (`src/classify/pg_catalog.rs`) match the server's catalog.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use seawall::classify::{classify, Route, Verdict};
use seawall::testbed::PgCluster;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

fn cluster() -> Arc<PgCluster> {
    static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cluster) = shared.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(PgCluster::start(1).expect("start the PostgreSQL test bed"));
    *shared = Arc::downgrade(&cluster);
    cluster
}

#[test]
fn generated_tables_match_the_server() {
    let cluster = cluster();
    let generated = cluster
        .query(
            cluster.primary(),
            include_str!("../scripts/pg-builtins.sql"),
        )
        .expect("run scripts/pg-builtins.sql");
    let committed = include_str!("../src/classify/pg_catalog.rs");
    assert!(
        generated.contains("pub(super) const FUNCTIONS"),
        "{generated}"
    );
    if generated.trim_end() != committed.trim_end() {
        let diff: Vec<_> = generated
            .lines()
            .zip(committed.lines())
            .filter(|(g, c)| g != c)
            .take(10)
            .collect();
        panic!(
            "src/classify/pg_catalog.rs differs from the server's catalog ({} vs {} lines; first \
             differences {diff:?}); regenerate with scripts/gen-pg-builtins.sh",
            generated.lines().count(),
            committed.lines().count()
        );
    }
}

/// The statements the test generates.
const STATEMENTS: usize = 3000;
/// The seed of the generator: fixed, so that every CI run tries the same statements.
const SEED: u64 = 0x5eaa_11c1_a551_f1e5;
/// `setseed` value before each statement, and how many draws of its sequence are accepted.
const PROBE_SEED: f64 = 0.271_9;
const PROBE_DRAWS: usize = 2000;

const SCHEMA: &str = r#"
CREATE TABLE t (a int, b text, c float8, d jsonb);
INSERT INTO t SELECT g, 'x' || g, g / 10.0, jsonb_build_object('k', g) FROM generate_series(1, 5) g;
CREATE SEQUENCE s;
CREATE FUNCTION public.app_read(int) RETURNS int STABLE LANGUAGE sql AS $$SELECT $1 + 1$$;
CREATE FUNCTION public.app_lock(int) RETURNS int LANGUAGE sql AS $$SELECT pg_advisory_lock($1); SELECT 1$$;
CREATE FUNCTION public.app_set(text) RETURNS text LANGUAGE sql AS $$SELECT set_config('application_name', $1, false)$$;
CREATE FUNCTION public.app_touch(t) RETURNS bigint LANGUAGE sql AS $$SELECT nextval('s')$$;
CREATE FUNCTION public.rollup(int) RETURNS bigint LANGUAGE sql AS $$SELECT nextval('s')$$;
CREATE FUNCTION public.cube(int) RETURNS bigint LANGUAGE sql AS $$SELECT nextval('s')$$;
CREATE FUNCTION public."like"(int) RETURNS bigint LANGUAGE sql AS $$SELECT nextval('s')$$;
CREATE FUNCTION public.freeze(int) RETURNS bigint LANGUAGE sql AS $$SELECT nextval('s')$$;
CREATE FUNCTION public.materialized(int) RETURNS bigint LANGUAGE sql AS $$SELECT nextval('s')$$;
CREATE FUNCTION public.json_array(int) RETURNS bigint LANGUAGE sql AS $$SELECT nextval('s')$$;
CREATE FUNCTION public.json_scalar(int) RETURNS bigint LANGUAGE sql AS $$SELECT nextval('s')$$;
CREATE FUNCTION public.system_rows(int) RETURNS bigint LANGUAGE sql AS $$SELECT nextval('s')$$;
CREATE FUNCTION public.bernoulli(int) RETURNS bigint LANGUAGE sql AS $$SELECT nextval('s')$$;
CREATE FUNCTION public.uuid(int) RETURNS bigint LANGUAGE sql AS $$SELECT nextval('s')$$;
CREATE FUNCTION public.varying(int) RETURNS bigint LANGUAGE sql AS $$SELECT pg_advisory_lock($1)::text::bigint$$;
"#;

/// User functions named like keywords or like names PostgreSQL 15 does not have as callable
/// built-ins; each takes an `int` and writes.
const KEYWORD_FUNCTIONS: &[&str] = &[
    "rollup",
    "cube",
    "like",
    "freeze",
    "materialized",
    "json_array",
    "json_scalar",
    "system_rows",
    "bernoulli",
    "uuid",
];

/// Built-ins that are not run (they would disturb the test bed, sleep, or touch files), by
/// prefix. Statements calling them are only classified.
const NOT_RUN: &[&str] = &[
    "pg_promote",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_wal_replay_",
    "pg_switch_wal",
    "pg_sleep",
    "pg_create_",
    "pg_drop_",
    "pg_copy_",
    "pg_replication_",
    "pg_logical_",
    "pg_backup_",
    "pg_read_",
    "pg_ls_",
    "pg_stat_file",
    "pg_file_",
    "lo_import",
    "lo_export",
    "binary_upgrade_",
    "pg_stop_making_pinned_objects",
    "pg_nextoid",
    "pg_import_system_collations",
    "pg_log_backend_memory_contexts",
    "pg_stat_reset",
    "query_to_xml",
    "cursor_to_xml",
    "database_to_xml",
    "schema_to_xml",
    "table_to_xml",
    "ts_stat",
    "ts_rewrite",
    "pg_get_backend_memory_contexts",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
    "pg_show_all_file_settings",
];

/// Writers run on purpose (with arguments that make them act).
const WRITER_CALLS: &[&str] = &[
    "nextval('s')",
    "currval('s')",
    "lastval()",
    "setval('s', 5)",
    "pg_advisory_lock(7)",
    "pg_advisory_xact_lock(8)",
    "pg_try_advisory_lock(9)",
    "pg_advisory_lock_shared(10)",
    "set_config('application_name', 'z', false)",
    "set_config('app.custom', 'z', false)",
    "set_config('search_path', 'public', true)",
    "setseed(0.5)",
    "txid_current()",
    "pg_current_xact_id()",
    "pg_current_wal_lsn()",
    "pg_notify('ch', 'x')",
    "lo_creat(-1)",
    "app_lock(11)",
    "app_set('q')",
];

/// A literal of a type, for calling built-ins; `None` for types the generator does not make.
fn literal(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "integer" => "2",
        "bigint" => "3::bigint",
        "smallint" => "1::smallint",
        "double precision" => "0.5::float8",
        "real" => "0.5::real",
        "numeric" => "1.5::numeric",
        "text" => "'ab'::text",
        "character varying" => "'ab'::varchar",
        "name" => "'t'::name",
        "boolean" => "true",
        "oid" => "'t'::regclass::oid",
        "regclass" => "'t'::regclass",
        "jsonb" => "'{\"k\": [1, 2]}'::jsonb",
        "json" => "'{\"k\": 1}'::json",
        "date" => "'2024-01-02'::date",
        "timestamp with time zone" => "'2024-01-02 03:04:05+00'::timestamptz",
        "timestamp without time zone" => "'2024-01-02 03:04:05'::timestamp",
        "interval" => "'1 day'::interval",
        "bytea" => "'\\x0102'::bytea",
        "inet" => "'10.0.0.1/8'::inet",
        "point" => "point(1, 2)",
        "tsvector" => "to_tsvector('simple', 'a b')",
        "tsquery" => "to_tsquery('simple', 'a')",
        "int4range" => "int4range(1, 4)",
        "anyelement" | "anycompatible" => "4",
        "anyarray" | "anycompatiblearray" => "ARRAY[1, 2]",
        "integer[]" => "ARRAY[1, 2]",
        "text[]" => "ARRAY['a', 'b']",
        "xml" => "'<a>1</a>'::xml",
        "uuid" => "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
        "\"char\"" => "'a'::\"char\"",
        _ => return None,
    })
}

/// SplitMix64: small, deterministic, good enough to pick grammar rules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// A built-in overload the generator can call: its name and argument literals.
#[derive(Clone)]
struct Call {
    name: String,
    args: Vec<&'static str>,
}

impl Call {
    fn render(&self, name: &str) -> String {
        format!("{name}({})", self.args.join(", "))
    }
}

struct Generator {
    rng: Rng,
    builtins: Vec<Call>,
    seeds: Vec<String>,
}

impl Generator {
    /// An expression of any type.
    fn expr(&mut self, depth: usize) -> String {
        let choice = if depth > 2 {
            self.rng.below(4)
        } else {
            self.rng.below(14)
        };
        match choice {
            0 => self
                .rng
                .pick(&["1", "'x'", "NULL", "0.5", "true", "$$a$$"])
                .to_string(),
            1 => self.rng.pick(&["a", "b", "c", "d", "t.a"]).to_string(),
            2..=4 => self.builtin_call(),
            5 => self.rng.pick(WRITER_CALLS).to_string(),
            6 => format!("{}(1)", self.rng.pick(KEYWORD_FUNCTIONS)),
            7 => self.disguised_call(),
            8 => format!("({}) IS NULL", self.expr(depth + 1)),
            9 => format!(
                "CASE WHEN ({}) IS NULL THEN 1 ELSE 2 END",
                self.expr(depth + 1)
            ),
            10 => format!("(SELECT {} LIMIT 1)", self.expr(depth + 1)),
            11 => format!("coalesce(({}) IS NULL, false)", self.expr(depth + 1)),
            12 => self.rng.pick(&["app_read(1)", "(t).app_touch"]).to_string(),
            _ => format!("ARRAY[({}) IS NULL]", self.expr(depth + 1)),
        }
    }

    fn builtin_call(&mut self) -> String {
        let call = self.rng.pick(&self.builtins).clone();
        call.render(&call.name)
    }

    /// A call written the ways an adversary would: quoted, qualified, Unicode-escaped,
    /// attribute notation, in upper case.
    fn disguised_call(&mut self) -> String {
        let call = if self.rng.chance(50) {
            self.rng.pick(&self.builtins).clone()
        } else {
            let writer = self.rng.pick(&[
                ("setseed", "0.5::float8"),
                ("pg_advisory_lock", "12::bigint"),
                ("nextval", "'s'::regclass"),
                ("app_set", "'r'::text"),
                ("app_lock", "13"),
            ]);
            Call {
                name: writer.0.to_string(),
                args: vec![writer.1],
            }
        };
        let escaped: String = call
            .name
            .chars()
            .map(|c| format!("!{:04x}", c as u32))
            .collect();
        match self.rng.below(7) {
            0 => call.render(&format!("\"{}\"", call.name)),
            1 => call.render(&format!("pg_catalog.{}", call.name)),
            2 => call.render(&format!("U&\"{escaped}\" UESCAPE '!'")),
            3 => call.render(&format!("U&\"{}\"", call.name)),
            4 if call.args.len() == 1 => format!("({}).{}", call.args[0], call.name),
            5 if call.args.len() == 1 => format!(
                "(SELECT g.{} FROM (SELECT {} AS g) s)",
                call.name, call.args[0]
            ),
            _ => call.render(&call.name.to_uppercase()),
        }
    }

    /// A statement from the grammar.
    fn statement(&mut self) -> String {
        let e = self.expr(0);
        let kw = *self.rng.pick(KEYWORD_FUNCTIONS);
        match self.rng.below(16) {
            0..=2 => format!("SELECT {e}, {}", self.expr(0)),
            3 => format!("SELECT a FROM t WHERE ({e}) IS NOT NULL ORDER BY a LIMIT 2"),
            4 => format!("SELECT b, count(*) FROM t GROUP BY ROLLUP (b) HAVING ({e}) IS NULL"),
            5 => {
                let m = self.rng.pick(&["", "MATERIALIZED ", "NOT MATERIALIZED "]);
                format!("WITH w AS {m}(SELECT {e} AS v) SELECT * FROM w")
            }
            6 => {
                let options = self.rng.pick(&[
                    "",
                    "ANALYZE ",
                    "(ANALYZE, COSTS OFF) ",
                    "(\"analyze\") ",
                    "(VERBOSE, \"analyze\" true) ",
                    "(ANALYZE false) ",
                    "(COSTS OFF) ",
                ]);
                format!("EXPLAIN {options}SELECT {e}")
            }
            7 => format!("SELECT a FROM t ORDER BY a FETCH FIRST {kw}(1) ROWS ONLY"),
            8 => format!("SELECT 1 ORDER BY {kw}(1)"),
            9 => format!("SELECT a FROM t WHERE a BETWEEN SYMMETRIC {kw}(1) AND 10"),
            10 => format!("SELECT 'x' SIMILAR TO {kw}(1)::text"),
            11 => {
                let method = self.rng.pick(&["system", "BERNOULLI"]);
                format!("SELECT a FROM t TABLESAMPLE {method} (50) REPEATABLE (1) WHERE ({e}) IS NOT NULL")
            }
            12 => format!("VALUES (({e}) IS NULL)"),
            13 => {
                let lock = self
                    .rng
                    .pick(&["UPDATE", "SHARE", "KEY SHARE", "NO KEY UPDATE"]);
                format!("SELECT a FROM t WHERE ({e}) IS NULL FOR {lock}")
            }
            14 => format!("SELECT 1; SELECT {e}"),
            _ => format!("SELECT * FROM (SELECT {e}) s"),
        }
    }

    /// A seed, mutated.
    fn mutant(&mut self) -> String {
        let mut sql = self.rng.pick(&self.seeds).clone();
        for _ in 0..1 + self.rng.below(3) {
            sql = match self.rng.below(6) {
                // Swap the first call for another.
                0 => match sql.find('(') {
                    Some(open) => {
                        let start = sql[..open]
                            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .map_or(0, |p| p + 1);
                        if start < open
                            && sql[start..open]
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            let close = sql[open..].find(')').map_or(sql.len(), |p| open + p + 1);
                            format!("{}{}{}", &sql[..start], self.builtin_call(), &sql[close..])
                        } else {
                            sql
                        }
                    }
                    None => sql,
                },
                1 => sql.to_uppercase().replace("$$A$$", "$$a$$"),
                2 => sql.replacen(' ', " /* c */ ", 1 + self.rng.below(3)),
                3 if sql.starts_with("SELECT") => format!("EXPLAIN (\"analyze\") {sql}"),
                4 if sql.starts_with("SELECT") => {
                    format!("WITH m AS (SELECT 1) {sql}")
                }
                _ => sql.replacen("SELECT ", &format!("SELECT {}, ", self.disguised_call()), 1),
            };
        }
        sql
    }
}

/// What happened to a statement on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// Succeeded, but left a trace: a lock, a setting, the random seed.
    SideEffect(String),
    Failed(String),
}

struct Server {
    conn: PgConnection,
    url: String,
    read_only: bool,
    settings: String,
    draws: HashSet<u64>,
}

async fn scalar(conn: &mut PgConnection, sql: &'static str) -> Option<String> {
    sqlx::query_scalar::<_, Option<String>>(sql)
        .fetch_one(conn)
        .await
        .ok()
        .flatten()
}

async fn raw(conn: &mut PgConnection, sql: &str) -> Result<(), String> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
            Some(code) => code.into_owned(),
            None => format!("client: {e}"),
        })
}

const SETTINGS: &str =
    "SELECT string_agg(name || '=' || setting, chr(1) ORDER BY name) FROM pg_settings";
const LOCKS: &str = "SELECT string_agg(locktype || ':' || mode, ',') FROM pg_locks \
     WHERE pid = pg_backend_pid() AND locktype <> 'virtualxid' \
     AND NOT (locktype = 'relation' AND mode = 'AccessShareLock')";

impl Server {
    async fn connect(url: &str, read_only: bool) -> Server {
        let mut conn = PgConnection::connect(url).await.expect("connect");
        raw(&mut conn, "SET statement_timeout = '5s'")
            .await
            .unwrap();
        // Load PL/pgSQL now: loading it later adds its settings to `pg_settings`.
        raw(&mut conn, "DO $$BEGIN END$$").await.unwrap();
        let begin = if read_only {
            "BEGIN READ ONLY"
        } else {
            "BEGIN"
        };
        raw(&mut conn, begin).await.unwrap();
        let settings = scalar(&mut conn, SETTINGS).await.unwrap();
        raw(&mut conn, &format!("SELECT setseed({PROBE_SEED})"))
            .await
            .unwrap();
        let draws: Vec<f64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT random() FROM generate_series(1, {PROBE_DRAWS})"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        raw(&mut conn, "ROLLBACK").await.unwrap();
        Server {
            conn,
            url: url.to_owned(),
            read_only,
            settings,
            draws: draws.into_iter().map(f64::to_bits).collect(),
        }
    }

    /// Runs `sql` in a transaction that is rolled back, and looks for what it left behind.
    async fn run(&mut self, sql: &str) -> Outcome {
        let begin = if self.read_only {
            "BEGIN READ ONLY"
        } else {
            "BEGIN"
        };
        if raw(&mut self.conn, begin).await.is_err() {
            // The previous statement ended the session (or left it unusable): start afresh.
            *self = Server::connect(&self.url.clone(), self.read_only).await;
            raw(&mut self.conn, begin).await.unwrap();
        }
        raw(&mut self.conn, &format!("SELECT setseed({PROBE_SEED})"))
            .await
            .unwrap();
        let result = raw(&mut self.conn, sql).await;
        let mut traces = Vec::new();
        if result.is_ok() {
            // The statement may have ended the transaction block itself (`SELECT 1; COMMIT`
            // cannot be generated, but be safe): the checks then run outside it.
            if let Some(locks) = scalar(&mut self.conn, LOCKS).await {
                traces.push(format!("locks {locks}"));
            }
            let settings = scalar(&mut self.conn, SETTINGS).await.unwrap_or_default();
            if settings != self.settings {
                let before: HashSet<&str> = self.settings.split('\u{1}').collect();
                let changed: Vec<&str> = settings
                    .split('\u{1}')
                    .filter(|s| !before.contains(s))
                    .collect();
                traces.push(format!("settings changed: {}", changed.join(", ")));
            }
            let next: Option<f64> = sqlx::query_scalar("SELECT random()")
                .fetch_one(&mut self.conn)
                .await
                .ok();
            if !next.is_some_and(|n| self.draws.contains(&n.to_bits())) {
                traces.push("random seed moved".to_owned());
            }
        }
        let _ = raw(&mut self.conn, "ROLLBACK").await;
        let session_locks = scalar(
            &mut self.conn,
            "SELECT string_agg(objid::text, ',') FROM pg_locks \
             WHERE pid = pg_backend_pid() AND locktype = 'advisory'",
        )
        .await;
        if let Some(locks) = session_locks {
            traces.push(format!("session advisory locks {locks} after rollback"));
            let _ = raw(&mut self.conn, "SELECT pg_advisory_unlock_all()").await;
        }
        match result {
            Err(code) => Outcome::Failed(code),
            Ok(()) if traces.is_empty() => Outcome::Ok,
            Ok(()) => Outcome::SideEffect(traces.join("; ")),
        }
    }
}

fn not_run(name: &str) -> bool {
    NOT_RUN.iter().any(|p| name.starts_with(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classifier_agrees_with_the_server() {
    let cluster = cluster();
    let started = Instant::now();
    let primary = cluster.primary();
    cluster.query(primary, SCHEMA).expect("create the schema");
    let replica = cluster.replicas()[0];
    cluster
        .wait_for_value(
            replica,
            "SELECT count(*) FROM pg_proc WHERE proname = 'varying'",
            "1",
        )
        .expect("schema replicated");

    let mut p = Server::connect(&cluster.url(primary).unwrap(), true).await;
    let mut r = Server::connect(&cluster.url(replica).unwrap(), false).await;

    // The detectors see what they must: each of these leaves a trace or is refused.
    for (sql, primary_refuses) in [
        ("SELECT pg_advisory_lock(1)", false),
        ("SELECT pg_advisory_xact_lock(2)", false),
        ("SELECT set_config('work_mem', '7MB', true)", false),
        ("SELECT app_set('v')", false),
        ("SELECT setseed(0.2)", false),
        ("SELECT app_lock(3)", false),
        ("SELECT txid_current()", false),
        ("SELECT nextval('s')", true),
    ] {
        let outcome = p.run(sql).await;
        let expected = if primary_refuses {
            matches!(&outcome, Outcome::Failed(code) if code == "25006")
        } else {
            matches!(outcome, Outcome::SideEffect(_))
        };
        assert!(expected, "{sql}: {outcome:?}");
    }
    assert_eq!(p.run("SELECT random(), a FROM t").await, Outcome::Ok);
    assert_eq!(r.run("SELECT random(), a FROM t").await, Outcome::Ok);
    assert!(matches!(
        r.run("SELECT pg_advisory_lock(4)").await,
        Outcome::SideEffect(_)
    ));

    // Built-in overloads the generator can call: every argument of a type it can write.
    let overloads: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.proname::text, coalesce(string_agg(format_type(a.t, NULL), '|' ORDER BY a.i), '') \
         FROM pg_proc p LEFT JOIN LATERAL unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i) ON true \
         WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind IN ('f', 'a') AND p.pronargs <= 3 \
         GROUP BY p.oid, p.proname ORDER BY 1, 2",
    )
    .fetch_all(&mut p.conn)
    .await
    .unwrap();
    let (not_run_calls, builtins): (Vec<Call>, Vec<Call>) = overloads
        .iter()
        .filter_map(|(name, args)| {
            let args = if args.is_empty() {
                Vec::new()
            } else {
                args.split('|').map(literal).collect::<Option<Vec<_>>>()?
            };
            Some(Call {
                name: name.clone(),
                args,
            })
        })
        .partition(|call| not_run(&call.name));
    assert!(
        builtins.len() > 500,
        "only {} callable overloads",
        builtins.len()
    );
    let seeds: Vec<String> = include_str!("data/classify_differential_seeds.sql")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("--"))
        .map(str::to_owned)
        .collect();
    let mut generator = Generator {
        rng: Rng(SEED),
        builtins,
        seeds: seeds.clone(),
    };
    // The seeds as written first, then generated and mutated statements.
    let mut statements = seeds;
    while statements.len() < STATEMENTS {
        let sql = if generator.rng.chance(55) {
            generator.statement()
        } else {
            generator.mutant()
        };
        statements.push(sql);
    }

    let mut discrepancies = Vec::new();
    // Calls of the functions that are not run: all but the sleeps act on the server or read its
    // files, so none may be read-only.
    let mut classified_only = 0;
    for call in &not_run_calls {
        let sql = format!("SELECT {}", call.render(&call.name));
        let c = classify(&sql).unwrap();
        classified_only += 1;
        // Sleeps and whole-database XML dumps are only slow: they may be read-only.
        let harmless = [
            "pg_sleep",
            "database_to_xml",
            "schema_to_xml",
            "table_to_xml",
        ]
        .iter()
        .any(|p| call.name.starts_with(p));
        if c.verdict() == Verdict::ReadOnly && !harmless {
            discrepancies.push(format!("not run, yet read-only: {sql}"));
        }
    }
    let (mut run, mut server_reads, mut reads_to_replica) = (0, 0, 0);
    let (mut slipped_writes, mut unprovable_reads) = (0, 0);
    for sql in &statements {
        let c = match classify(sql) {
            Ok(c) => c,
            Err(e) => panic!("{sql}: {e}"),
        };
        let read_only = c.verdict() == Verdict::ReadOnly;
        // What the detectors cannot see: a custom placeholder setting (`app.custom`) is not in
        // `pg_settings`. Any call of these must not be read-only, whatever the server shows.
        let lower = sql.to_ascii_lowercase();
        if read_only && ["set_config", "setseed"].iter().any(|n| lower.contains(n)) {
            discrepancies.push(format!(
                "calls a session-state writer, yet read-only: {sql}"
            ));
        }
        run += 1;
        let on_primary = p.run(sql).await;
        let on_replica = r.run(sql).await;
        let problem = match (&on_primary, &on_replica) {
            (Outcome::Failed(code), _) if code == "25006" => {
                Some(format!("primary refuses ({code})"))
            }
            (Outcome::SideEffect(what), _) => Some(format!("primary: {what}")),
            (_, Outcome::SideEffect(what)) => Some(format!("standby: {what}")),
            (Outcome::Ok, Outcome::Failed(code)) if code != "57014" => Some(format!(
                "succeeds on the primary, fails on the standby ({code})"
            )),
            _ => None,
        };
        let server_read = on_primary == Outcome::Ok && on_replica == Outcome::Ok;
        if server_read {
            server_reads += 1;
            if c.route() == Route::Replica {
                reads_to_replica += 1;
            } else {
                unprovable_reads += 1;
            }
        }
        if let Some(problem) = problem {
            if read_only {
                slipped_writes += 1;
                discrepancies.push(format!(
                    "{problem}; classifier {:?} ({}): {sql}",
                    c.verdict(),
                    c.reason()
                ));
            }
        }
    }
    println!(
        "differential: {} statements run on both servers, {} more classified only, in {:.1?}; \
         {} succeed on both without side effects, {} of them routed to a replica ({:.1}%), {} \
         kept on the primary; {} read-only verdicts the server contradicts",
        run,
        classified_only,
        started.elapsed(),
        server_reads,
        reads_to_replica,
        100.0 * reads_to_replica as f64 / server_reads.max(1) as f64,
        unprovable_reads,
        slipped_writes,
    );
    assert!(discrepancies.is_empty(), "{}", discrepancies.join("\n"));
    // The run must have exercised both sides: many reads the server accepts, many it refuses.
    assert!(server_reads >= STATEMENTS / 10, "only {server_reads} reads");
    assert!(reads_to_replica > 0 && run - server_reads >= STATEMENTS / 10);
}
