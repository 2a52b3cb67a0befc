//! The vocabulary: keywords the classifier reacts to, and the functions it knows.
//!
//! Keywords are matched by folding a word of up to 16 bytes into a `u128` (ASCII letters
//! lowercased) and comparing integers, so recognising a keyword costs a handful of instructions
//! and no allocation. Function names are looked up by binary search in sorted tables.

/// The keywords that matter for routing. Everything else is [`Kw::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kw {
    // Statements that may be read-only.
    Select,
    With,
    Values,
    Table,
    Show,
    Explain,
    // Keywords that make a query write, or that start a data-modifying statement.
    Insert,
    Update,
    Delete,
    Merge,
    Into,
    For,
    Share,
    Key,
    No,
    // Statements that must run on the primary, by family.
    OtherDml,
    Ddl,
    Maintenance,
    Session,
    Procedural,
    Cursor,
    Notify,
    // Context for telling calls from column lists and clauses.
    Recursive,
    As,
    Not,
    By,
    Grouping,
    Sets,
    Rollup,
    Cube,
    Materialized,
    Ordinality,
    Tablesample,
    /// Type/function-name keywords (`JOIN`, `LIKE`, ...) that are a function call only where an
    /// expression starts.
    ClauseOrCall,
    /// `CROSS`, `INNER`, `OUTER`, `FULL`, `NATURAL`: after them `JOIN (` is a clause.
    JoinModifier,
    /// Keywords after which an expression (and so a function call) may start.
    ExprStart,
    // EXPLAIN options.
    Analyze,
    Verbose,
    False,
    Off,
    Other,
}

/// Folds `word` (at most 16 bytes) into an integer; ASCII letters are lowercased. Non-letters
/// never fold onto letters, so a folded keyword matches only that keyword, in any case.
#[inline]
pub(super) fn fold(word: &[u8]) -> Option<u128> {
    if word.len() > 16 {
        return None;
    }
    let mut acc = 0u128;
    for &b in word {
        acc = (acc << 8) | u128::from(b | 0x20);
    }
    Some(acc)
}

const fn k(s: &str) -> u128 {
    let b = s.as_bytes();
    let mut acc = 0u128;
    let mut i = 0;
    while i < b.len() {
        acc = (acc << 8) | (b[i] | 0x20) as u128;
        i += 1;
    }
    acc
}

/// Classifies one word.
#[inline]
pub(super) fn keyword(word: &[u8]) -> Kw {
    let Some(f) = fold(word) else {
        return Kw::Other;
    };
    // One constant per keyword, so the match compiles to a search over integers.
    macro_rules! keywords {
        ($($name:ident = $word:literal => $kw:expr,)*) => {{
            $( const $name: u128 = k($word); )*
            match f {
                $( $name => $kw, )*
                _ => Kw::Other,
            }
        }};
    }
    keywords! {
        K_SELECT = "select" => Kw::Select,
        K_WITH = "with" => Kw::With,
        K_VALUES = "values" => Kw::Values,
        K_TABLE = "table" => Kw::Table,
        K_SHOW = "show" => Kw::Show,
        K_EXPLAIN = "explain" => Kw::Explain,
        K_INSERT = "insert" => Kw::Insert,
        K_UPDATE = "update" => Kw::Update,
        K_DELETE = "delete" => Kw::Delete,
        K_MERGE = "merge" => Kw::Merge,
        K_INTO = "into" => Kw::Into,
        K_FOR = "for" => Kw::For,
        K_SHARE = "share" => Kw::Share,
        K_KEY = "key" => Kw::Key,
        K_NO = "no" => Kw::No,
        K_COPY = "copy" => Kw::OtherDml,
        K_TRUNCATE = "truncate" => Kw::OtherDml,
        K_CREATE = "create" => Kw::Ddl,
        K_ALTER = "alter" => Kw::Ddl,
        K_DROP = "drop" => Kw::Ddl,
        K_GRANT = "grant" => Kw::Ddl,
        K_REVOKE = "revoke" => Kw::Ddl,
        K_COMMENT = "comment" => Kw::Ddl,
        K_SECURITY = "security" => Kw::Ddl,
        K_REASSIGN = "reassign" => Kw::Ddl,
        K_IMPORT = "import" => Kw::Ddl,
        K_VACUUM = "vacuum" => Kw::Maintenance,
        K_CLUSTER = "cluster" => Kw::Maintenance,
        K_REINDEX = "reindex" => Kw::Maintenance,
        K_REFRESH = "refresh" => Kw::Maintenance,
        K_CHECKPOINT = "checkpoint" => Kw::Maintenance,
        K_LOAD = "load" => Kw::Maintenance,
        K_LOCK = "lock" => Kw::Maintenance,
        K_SET = "set" => Kw::Session,
        K_RESET = "reset" => Kw::Session,
        K_BEGIN = "begin" => Kw::Session,
        K_START = "start" => Kw::Session,
        K_COMMIT = "commit" => Kw::Session,
        K_END = "end" => Kw::Session,
        K_ROLLBACK = "rollback" => Kw::Session,
        K_ABORT = "abort" => Kw::Session,
        K_SAVEPOINT = "savepoint" => Kw::Session,
        K_RELEASE = "release" => Kw::Session,
        K_DISCARD = "discard" => Kw::Session,
        K_CALL = "call" => Kw::Procedural,
        K_DO = "do" => Kw::Procedural,
        K_DECLARE = "declare" => Kw::Cursor,
        K_FETCH = "fetch" => Kw::Cursor,
        K_MOVE = "move" => Kw::Cursor,
        K_CLOSE = "close" => Kw::Cursor,
        K_PREPARE = "prepare" => Kw::Cursor,
        K_EXECUTE = "execute" => Kw::Cursor,
        K_DEALLOCATE = "deallocate" => Kw::Cursor,
        K_LISTEN = "listen" => Kw::Notify,
        K_UNLISTEN = "unlisten" => Kw::Notify,
        K_NOTIFY = "notify" => Kw::Notify,
        K_RECURSIVE = "recursive" => Kw::Recursive,
        K_AS = "as" => Kw::As,
        K_NOT = "not" => Kw::Not,
        K_BY = "by" => Kw::By,
        K_GROUPING = "grouping" => Kw::Grouping,
        K_SETS = "sets" => Kw::Sets,
        K_ROLLUP = "rollup" => Kw::Rollup,
        K_CUBE = "cube" => Kw::Cube,
        K_MATERIALIZED = "materialized" => Kw::Materialized,
        K_ORDINALITY = "ordinality" => Kw::Ordinality,
        K_TABLESAMPLE = "tablesample" => Kw::Tablesample,
        K_JOIN = "join" => Kw::ClauseOrCall,
        K_LIKE = "like" => Kw::ClauseOrCall,
        K_ILIKE = "ilike" => Kw::ClauseOrCall,
        K_SIMILAR = "similar" => Kw::ClauseOrCall,
        K_OVERLAPS = "overlaps" => Kw::ClauseOrCall,
        K_IS = "is" => Kw::ClauseOrCall,
        K_ISNULL = "isnull" => Kw::ClauseOrCall,
        K_NOTNULL = "notnull" => Kw::ClauseOrCall,
        K_CROSS = "cross" => Kw::JoinModifier,
        K_INNER = "inner" => Kw::JoinModifier,
        K_OUTER = "outer" => Kw::JoinModifier,
        K_FULL = "full" => Kw::JoinModifier,
        K_NATURAL = "natural" => Kw::JoinModifier,
        K_FREEZE = "freeze" => Kw::ClauseOrCall,
        K_WHERE = "where" => Kw::ExprStart,
        K_AND = "and" => Kw::ExprStart,
        K_OR = "or" => Kw::ExprStart,
        K_ON = "on" => Kw::ExprStart,
        K_THEN = "then" => Kw::ExprStart,
        K_ELSE = "else" => Kw::ExprStart,
        K_WHEN = "when" => Kw::ExprStart,
        K_HAVING = "having" => Kw::ExprStart,
        K_RETURNING = "returning" => Kw::ExprStart,
        K_FROM = "from" => Kw::ExprStart,
        K_LATERAL = "lateral" => Kw::ExprStart,
        K_DISTINCT = "distinct" => Kw::ExprStart,
        K_ALL = "all" => Kw::ExprStart,
        K_LIMIT = "limit" => Kw::ExprStart,
        K_OFFSET = "offset" => Kw::ExprStart,
        K_USING = "using" => Kw::ExprStart,
        K_IN = "in" => Kw::ExprStart,
        K_BETWEEN = "between" => Kw::ExprStart,
        K_CASE = "case" => Kw::ExprStart,
        K_ANY = "any" => Kw::ExprStart,
        K_SOME = "some" => Kw::ExprStart,
        K_ARRAY = "array" => Kw::ExprStart,
        K_EXISTS = "exists" => Kw::ExprStart,
        K_ESCAPE = "escape" => Kw::ExprStart,
        K_ANALYZE = "analyze" => Kw::Analyze,
        K_ANALYSE = "analyse" => Kw::Analyze,
        K_VERBOSE = "verbose" => Kw::Verbose,
        K_FALSE = "false" => Kw::False,
        K_OFF = "off" => Kw::Off,
    }
}

/// The keywords that matter inside a query, with a rejection test that costs one table lookup:
/// most words in a query are column and table names, and almost none has the first letter and
/// length of one of these.
pub(super) const QUERY_KEYWORDS: &[(&str, Kw)] = &[
    ("into", Kw::Into),
    ("for", Kw::For),
    ("share", Kw::Share),
    ("key", Kw::Key),
    ("no", Kw::No),
    ("insert", Kw::Insert),
    ("update", Kw::Update),
    ("delete", Kw::Delete),
    ("merge", Kw::Merge),
    ("with", Kw::With),
    ("select", Kw::Select),
    ("values", Kw::Values),
    ("table", Kw::Table),
];

/// For each first byte, bit `n` is set if a query keyword of length `n` starts with it.
const QUERY_KEYWORD_SHAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < QUERY_KEYWORDS.len() {
        let w = QUERY_KEYWORDS[i].0.as_bytes();
        t[w[0] as usize] |= 1 << w.len();
        t[w[0].to_ascii_uppercase() as usize] |= 1 << w.len();
        i += 1;
    }
    t
};

/// `false` if `word` is certainly not one of the keywords that matter inside a query; `true` if
/// it may be.
#[inline]
pub(super) fn may_be_query_keyword(word: &[u8]) -> bool {
    let Some(&first) = word.first() else {
        return false;
    };
    word.len() <= 7 && QUERY_KEYWORD_SHAPES[usize::from(first)] & (1 << word.len()) != 0
}

/// Recognises the keywords that matter inside a query; [`Kw::Other`] for anything else.
#[inline]
pub(super) fn query_keyword(word: &[u8]) -> Kw {
    if !may_be_query_keyword(word) {
        return Kw::Other;
    }
    query_keyword_slow(word)
}

fn query_keyword_slow(word: &[u8]) -> Kw {
    let mut f = 0u64;
    for &b in word {
        f = (f << 8) | u64::from(b | 0x20);
    }
    // One constant per keyword, so the match compiles to a few integer comparisons.
    macro_rules! folded {
        ($($name:ident = $word:literal => $kw:expr,)*) => {{
            $( const $name: u64 = k($word) as u64; )*
            match f {
                $( $name => $kw, )*
                _ => Kw::Other,
            }
        }};
    }
    folded! {
        INTO = "into" => Kw::Into,
        FOR = "for" => Kw::For,
        SHARE = "share" => Kw::Share,
        KEY = "key" => Kw::Key,
        NO = "no" => Kw::No,
        INSERT = "insert" => Kw::Insert,
        UPDATE = "update" => Kw::Update,
        DELETE = "delete" => Kw::Delete,
        MERGE = "merge" => Kw::Merge,
        WITH = "with" => Kw::With,
        SELECT = "select" => Kw::Select,
        VALUES = "values" => Kw::Values,
        TABLE = "table" => Kw::Table,
    }
}

/// Lowercases an ASCII name into `buf`; `None` if it does not fit (no function name is that long).
#[inline]
pub(super) fn lowercase<'b>(name: &[u8], buf: &'b mut [u8; 64]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..name.len())?;
    for (o, &b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    Some(out)
}

/// `true` if `name` (lowercase) is a function that writes, takes locks, changes session state,
/// needs a transaction id or acts on the server: it must run on the primary, hint or not.
pub(super) fn is_writer(name: &[u8]) -> bool {
    // All prefixes start with one of these: skip the loop for most names.
    matches!(name.first(), Some(b'd' | b'l' | b'p'))
        && WRITER_PREFIXES
            .iter()
            .any(|p| bytes_eq(name.get(..p.len()), p.as_bytes()))
        || lookup(name) == Some(FunctionKind::Writer)
}

/// `true` if `name` (lowercase) is a built-in known not to write, or a reserved or column-name
/// keyword that looks like a call but is syntax (`CAST(`, `EXISTS(`, `IN (`, `VALUES (`...).
pub(super) fn is_known_read_only(name: &[u8]) -> bool {
    lookup(name) == Some(FunctionKind::ReadOnly)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FunctionKind {
    ReadOnly,
    Writer,
}

/// Open-addressing hash table over [`READ_ONLY`] and [`WRITERS`], built at compile time: a lookup
/// hashes the name once and usually compares one entry. Slots hold `index + 1`, 0 is empty;
/// indices past `READ_ONLY.len()` are writers.
const TABLE_SIZE: usize = 1024;
const TABLE: [u16; TABLE_SIZE] = {
    assert!(2 * (READ_ONLY.len() + WRITERS.len()) < TABLE_SIZE);
    let mut table = [0u16; TABLE_SIZE];
    let mut i = 0;
    while i < READ_ONLY.len() + WRITERS.len() {
        let name = entry(i).as_bytes();
        let mut slot = hash(name) as usize % TABLE_SIZE;
        while table[slot] != 0 {
            slot = (slot + 1) % TABLE_SIZE;
        }
        table[slot] = (i + 1) as u16;
        i += 1;
    }
    table
};

const fn entry(i: usize) -> &'static str {
    if i < READ_ONLY.len() {
        READ_ONLY[i]
    } else {
        WRITERS[i - READ_ONLY.len()]
    }
}

/// FNV-1a.
const fn hash(name: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < name.len() {
        h = (h ^ name[i] as u64).wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

fn lookup(name: &[u8]) -> Option<FunctionKind> {
    let mut slot = hash(name) as usize % TABLE_SIZE;
    loop {
        let index = usize::from(TABLE[slot].checked_sub(1)?);
        if bytes_eq(Some(name), entry(index).as_bytes()) {
            return Some(if index < READ_ONLY.len() {
                FunctionKind::ReadOnly
            } else {
                FunctionKind::Writer
            });
        }
        slot = (slot + 1) % TABLE_SIZE;
    }
}

/// Byte equality without a library call: these names are a few bytes long.
#[inline]
fn bytes_eq(a: Option<&[u8]>, b: &[u8]) -> bool {
    a.is_some_and(|a| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y))
}

/// Function-name prefixes that write: advisory locks, large objects, statistics resets,
/// replication slots and origins, backups, WAL control, remote execution.
pub(super) const WRITER_PREFIXES: &[&str] = &[
    "dblink",
    "lo_",
    "pg_advisory_",
    "pg_backup_",
    "pg_copy_",
    "pg_create_",
    "pg_drop_",
    "pg_file_",
    "pg_logical_",
    "pg_replication_",
    "pg_stat_reset",
    "pg_try_advisory_",
    "pg_wal_replay_",
];

/// Writers matched by exact name (sorted and unique; a unit test checks).
pub(super) const WRITERS: &[&str] = &[
    "brin_desummarize_range",
    "brin_summarize_new_values",
    "brin_summarize_range",
    "gin_clean_pending_list",
    "loread",
    "lowrite",
    "nextval",
    "pg_cancel_backend",
    "pg_clear_attribute_stats",
    "pg_clear_relation_stats",
    "pg_current_xact_id",
    "pg_import_system_collations",
    "pg_log_standby_snapshot",
    "pg_notify",
    "pg_promote",
    "pg_reload_conf",
    "pg_restore_attribute_stats",
    "pg_restore_relation_stats",
    "pg_rotate_logfile",
    "pg_set_attribute_stats",
    "pg_set_relation_stats",
    "pg_start_backup",
    "pg_stat_statements_reset",
    "pg_stop_backup",
    "pg_switch_wal",
    "pg_switch_xlog",
    "pg_sync_replication_slots",
    "pg_terminate_backend",
    "pg_truncate_visibility_map",
    "set_config",
    "setseed",
    "setval",
    "txid_current",
];

/// Built-in functions that do not write, plus keywords that take parentheses but are not calls
/// (sorted and unique; a unit test checks). Only reserved and column-name keywords belong here: they cannot
/// name a user function, whereas unreserved ones (`filter`, `over`) can.
pub(super) const READ_ONLY: &[&str] = &[
    "abs",
    "acos",
    "age",
    "all",
    "and",
    "any",
    "array",
    "array_agg",
    "array_append",
    "array_cat",
    "array_dims",
    "array_length",
    "array_lower",
    "array_ndims",
    "array_position",
    "array_positions",
    "array_prepend",
    "array_remove",
    "array_replace",
    "array_to_json",
    "array_to_string",
    "array_upper",
    "as",
    "ascii",
    "asin",
    "atan",
    "atan2",
    "avg",
    "bernoulli",
    "between",
    "bigint",
    "bit",
    "bit_and",
    "bit_length",
    "bit_or",
    "bool_and",
    "bool_or",
    "boolean",
    "btrim",
    "by",
    "cardinality",
    "case",
    "cast",
    "cbrt",
    "ceil",
    "ceiling",
    "char",
    "char_length",
    "character",
    "character_length",
    "check",
    "chr",
    "clock_timestamp",
    "coalesce",
    "col_description",
    "concat",
    "concat_ws",
    "corr",
    "cos",
    "cot",
    "count",
    "covar_pop",
    "covar_samp",
    "cume_dist",
    "current_database",
    "current_schema",
    "current_schemas",
    "current_setting",
    "date",
    "date_bin",
    "date_part",
    "date_trunc",
    "daterange",
    "dec",
    "decimal",
    "decode",
    "degrees",
    "dense_rank",
    "digest",
    "distinct",
    "div",
    "else",
    "encode",
    "every",
    "except",
    "exists",
    "exp",
    "extract",
    "first_value",
    "float",
    "floor",
    "format",
    "format_type",
    "from",
    "gcd",
    "gen_random_uuid",
    "generate_series",
    "generate_subscripts",
    "greatest",
    "group",
    "grouping",
    "has_any_column_privilege",
    "has_column_privilege",
    "has_database_privilege",
    "has_function_privilege",
    "has_schema_privilege",
    "has_sequence_privilege",
    "has_table_privilege",
    "having",
    "hstore",
    "in",
    "inet_client_addr",
    "inet_client_port",
    "inet_server_addr",
    "inet_server_port",
    "initcap",
    "int",
    "int4range",
    "int8range",
    "integer",
    "intersect",
    "interval",
    "isfinite",
    "json_agg",
    "json_array",
    "json_array_elements",
    "json_array_elements_text",
    "json_array_length",
    "json_arrayagg",
    "json_build_array",
    "json_build_object",
    "json_each",
    "json_each_text",
    "json_exists",
    "json_extract_path",
    "json_extract_path_text",
    "json_object",
    "json_object_agg",
    "json_object_keys",
    "json_objectagg",
    "json_populate_record",
    "json_populate_recordset",
    "json_query",
    "json_scalar",
    "json_serialize",
    "json_strip_nulls",
    "json_table",
    "json_to_record",
    "json_to_recordset",
    "json_typeof",
    "json_value",
    "jsonb_agg",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "jsonb_array_length",
    "jsonb_build_array",
    "jsonb_build_object",
    "jsonb_each",
    "jsonb_each_text",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "jsonb_insert",
    "jsonb_object",
    "jsonb_object_agg",
    "jsonb_object_keys",
    "jsonb_path_exists",
    "jsonb_path_match",
    "jsonb_path_query",
    "jsonb_path_query_array",
    "jsonb_path_query_first",
    "jsonb_populate_record",
    "jsonb_populate_recordset",
    "jsonb_pretty",
    "jsonb_set",
    "jsonb_set_lax",
    "jsonb_strip_nulls",
    "jsonb_to_record",
    "jsonb_to_recordset",
    "jsonb_typeof",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "lag",
    "last_value",
    "lateral",
    "lcm",
    "lead",
    "least",
    "left",
    "length",
    "limit",
    "ln",
    "localtime",
    "localtimestamp",
    "log",
    "log10",
    "lower",
    "lpad",
    "ltrim",
    "make_date",
    "make_interval",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "max",
    "md5",
    "min",
    "mod",
    "mode",
    "national",
    "nchar",
    "none",
    "normalize",
    "not",
    "now",
    "nth_value",
    "ntile",
    "nullif",
    "numeric",
    "numrange",
    "obj_description",
    "octet_length",
    "offset",
    "on",
    "or",
    "order",
    "overlay",
    "percent_rank",
    "percentile_cont",
    "percentile_disc",
    "pg_backend_pid",
    "pg_column_size",
    "pg_database_size",
    "pg_get_constraintdef",
    "pg_get_expr",
    "pg_get_functiondef",
    "pg_get_indexdef",
    "pg_get_serial_sequence",
    "pg_get_triggerdef",
    "pg_get_userbyid",
    "pg_get_viewdef",
    "pg_has_role",
    "pg_indexes_size",
    "pg_is_in_recovery",
    "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn",
    "pg_last_xact_replay_timestamp",
    "pg_postmaster_start_time",
    "pg_relation_size",
    "pg_size_bytes",
    "pg_size_pretty",
    "pg_table_is_visible",
    "pg_table_size",
    "pg_total_relation_size",
    "pg_typeof",
    "pg_wal_lsn_diff",
    "phraseto_tsquery",
    "pi",
    "plainto_tsquery",
    "position",
    "power",
    "precision",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "radians",
    "random",
    "range_agg",
    "rank",
    "real",
    "regexp_count",
    "regexp_instr",
    "regexp_like",
    "regexp_match",
    "regexp_matches",
    "regexp_replace",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "regexp_substr",
    "repeat",
    "replace",
    "returning",
    "reverse",
    "right",
    "round",
    "row",
    "row_number",
    "row_to_json",
    "rpad",
    "rtrim",
    "select",
    "setof",
    "sign",
    "sin",
    "smallint",
    "some",
    "split_part",
    "sqrt",
    "starts_with",
    "statement_timestamp",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "string_to_array",
    "string_to_table",
    "strpos",
    "substr",
    "substring",
    "sum",
    "system",
    "system_rows",
    "system_time",
    "table",
    "tan",
    "text",
    "then",
    "time",
    "timeofday",
    "timestamp",
    "timestamptz",
    "to_char",
    "to_date",
    "to_hex",
    "to_json",
    "to_jsonb",
    "to_number",
    "to_regclass",
    "to_regtype",
    "to_timestamp",
    "to_tsquery",
    "to_tsvector",
    "transaction_timestamp",
    "translate",
    "treat",
    "trim",
    "trunc",
    "ts_headline",
    "ts_rank",
    "ts_rank_cd",
    "tsrange",
    "tstzrange",
    "txid_current_if_assigned",
    "union",
    "unique",
    "unnest",
    "upper",
    "using",
    "uuid",
    "values",
    "var_pop",
    "var_samp",
    "varchar",
    "variadic",
    "variance",
    "varying",
    "version",
    "websearch_to_tsquery",
    "when",
    "where",
    "width_bucket",
    "window",
    "with",
    "xmlagg",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];
