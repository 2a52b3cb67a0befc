//! The vocabulary: keywords the classifier reacts to, and the functions it knows.
//!
//! Keywords are matched by folding a word of up to 16 bytes into a `u128` (ASCII letters
//! lowercased) and comparing integers, so recognising a keyword costs a handful of instructions
//! and no allocation. Function names are looked up in a hash table built at compile time from
//! the generated [`pg_catalog`] tables and the hand-kept writer lists below.

use super::pg_catalog;

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
    Group,
    /// `ORDER`, `PARTITION`: `BY (` after them (or after `GROUP`) is a clause.
    OrderOrPartition,
    /// `CHARACTER`, `CHAR`, `NCHAR`, `BIT`: `varying(` after them is a type.
    CharacterType,
    Varying,
    /// `UESCAPE`, after a `U&"..."` name or `U&'...'` string.
    Uescape,
    /// Type/function-name keywords (`JOIN`, `LIKE`, ...) that are a function call only where an
    /// expression starts.
    ClauseOrCall,
    /// `CROSS`, `INNER`, `OUTER`, `FULL`, `NATURAL`, `LEFT`, `RIGHT`: after them `JOIN (` is a
    /// clause.
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
        K_GROUP = "group" => Kw::Group,
        K_ORDER = "order" => Kw::OrderOrPartition,
        K_PARTITION = "partition" => Kw::OrderOrPartition,
        K_CHARACTER = "character" => Kw::CharacterType,
        K_CHAR = "char" => Kw::CharacterType,
        K_NCHAR = "nchar" => Kw::CharacterType,
        K_BIT = "bit" => Kw::CharacterType,
        K_VARYING = "varying" => Kw::Varying,
        K_UESCAPE = "uescape" => Kw::Uescape,
        K_LEFT = "left" => Kw::JoinModifier,
        K_RIGHT = "right" => Kw::JoinModifier,
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
    if !may_be_writer(name) {
        return false;
    }
    // All prefixes start with one of these: skip the loop for most names.
    matches!(name.first(), Some(b'b' | b'd' | b'l' | b'p'))
        && WRITER_PREFIXES
            .iter()
            .any(|p| bytes_eq(name.get(..p.len()), p.as_bytes()))
        || lookup(name) == Some(FunctionKind::Writer)
}

/// For each first byte (in either case), bit `n` (`n < 64`) is set if a writer's name of length
/// `n` starts with it (every length from a prefix's on, for the prefixes); bit 63 stands for 63 and longer.
const WRITER_SHAPES: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < WRITERS.len() {
        let w = WRITERS[i].as_bytes();
        t[w[0] as usize] |= 1 << shape_len(w.len());
        t[w[0].to_ascii_uppercase() as usize] |= 1 << shape_len(w.len());
        i += 1;
    }
    let mut i = 0;
    while i < WRITER_PREFIXES.len() {
        let p = WRITER_PREFIXES[i].as_bytes();
        t[p[0] as usize] |= !0u64 << shape_len(p.len());
        t[p[0].to_ascii_uppercase() as usize] |= !0u64 << shape_len(p.len());
        i += 1;
    }
    t
};

/// For each first byte (in either case), the second bytes of writers' names that start with it:
/// bit `c - b'a'` for a letter `c` (either case), bit 26 for `_`, bit 27 for anything else.
const WRITER_SECOND: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < WRITERS.len() + WRITER_PREFIXES.len() {
        let w = if i < WRITERS.len() {
            WRITERS[i].as_bytes()
        } else {
            WRITER_PREFIXES[i - WRITERS.len()].as_bytes()
        };
        t[w[0] as usize] |= second_bit(w[1]);
        t[w[0].to_ascii_uppercase() as usize] |= second_bit(w[1]);
        i += 1;
    }
    t
};

const fn second_bit(c: u8) -> u32 {
    match c.to_ascii_lowercase() {
        l @ b'a'..=b'z' => 1 << (l - b'a'),
        b'_' => 1 << 26,
        _ => 1 << 27,
    }
}

const fn shape_len(len: usize) -> u32 {
    if len > 63 {
        63
    } else {
        len as u32
    }
}

/// `false` if `name` (in any case) is certainly not a writer: one table lookup, no hashing.
#[inline]
pub(super) fn may_be_writer(name: &[u8]) -> bool {
    let Some(&first) = name.first() else {
        return false;
    };
    WRITER_SHAPES[usize::from(first)] & (1 << shape_len(name.len())) != 0
        && name
            .get(1)
            .is_some_and(|&c| WRITER_SECOND[usize::from(first)] & second_bit(c) != 0)
}

/// `true` if `name` (lowercase) is a built-in known not to write, or a reserved or column-name
/// keyword that looks like a call but is syntax (`CAST(`, `EXISTS(`, `IN (`, `VALUES (`...).
///
/// A built-in is one of PostgreSQL 15's callable functions ([`pg_catalog::FUNCTIONS`], generated
/// from the server's catalog) that is immutable or stable and neither a writer nor bound to the
/// session ([`SESSION_BOUND`]), or a volatile one known to be harmless on a replica
/// ([`VOLATILE_READ_ONLY`]). A name the server does not have as a callable function (a
/// table-sample method, a PostgreSQL 16+ `json_*` function, a type name such as `uuid`) can only
/// be a user's function, so it is not here.
pub(super) fn is_known_read_only(name: &[u8]) -> bool {
    lookup(name) == Some(FunctionKind::ReadOnly)
}

/// `true` if `name` (lowercase) is a table-sample method of the server (`TABLESAMPLE system(`).
pub(super) fn is_tablesample_method(name: &[u8]) -> bool {
    pg_catalog::TABLESAMPLE_METHODS
        .iter()
        .any(|m| bytes_eq(Some(name), m.as_bytes()))
}

/// `true` if `name` (lowercase) is one of the server's keywords, of any category.
pub(super) fn is_sql_keyword(name: &[u8]) -> bool {
    let find = |list: &[&str]| list.binary_search_by(|k| k.as_bytes().cmp(name)).is_ok();
    find(pg_catalog::SYNTAX_KEYWORDS) || find(pg_catalog::OTHER_KEYWORDS)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FunctionKind {
    ReadOnly,
    Writer,
}

/// Open-addressing hash table over the names with a known kind, built at compile time: a lookup
/// hashes the name once and usually compares one entry. A slot holds `index + 1` into
/// [`entry`]'s sequence (`WRITERS`, then `pg_catalog::FUNCTIONS`, then
/// `pg_catalog::SYNTAX_KEYWORDS`), with [`WRITER_BIT`] set for writers; 0 is empty. Each name is
/// in the table once, with the kind of its first occurrence; functions that are neither
/// read-only nor writers are not in it.
const TABLE_SIZE: usize = 8192;
const WRITER_BIT: u16 = 1 << 15;
const ENTRIES: usize =
    WRITERS.len() + pg_catalog::FUNCTIONS.len() + pg_catalog::SYNTAX_KEYWORDS.len();
const TABLE: [u16; TABLE_SIZE] = {
    assert!(2 * ENTRIES < TABLE_SIZE && ENTRIES < WRITER_BIT as usize);
    let mut table = [0u16; TABLE_SIZE];
    let mut i = 0;
    while i < ENTRIES {
        let name = entry(i).as_bytes();
        let kind = entry_kind(i);
        let mut slot = hash(name) as usize % TABLE_SIZE;
        let mut present = false;
        while table[slot] != 0 {
            let other = ((table[slot] & !WRITER_BIT) - 1) as usize;
            if const_eq(entry(other).as_bytes(), name) {
                present = true;
                break;
            }
            slot = (slot + 1) % TABLE_SIZE;
        }
        if !present && kind != 0 {
            let writer = if kind == 2 { WRITER_BIT } else { 0 };
            table[slot] = (i + 1) as u16 | writer;
        }
        i += 1;
    }
    table
};

const fn entry(i: usize) -> &'static str {
    let functions = WRITERS.len();
    let keywords = functions + pg_catalog::FUNCTIONS.len();
    if i < functions {
        WRITERS[i]
    } else if i < keywords {
        pg_catalog::FUNCTIONS[i - functions].0
    } else {
        pg_catalog::SYNTAX_KEYWORDS[i - keywords]
    }
}

/// 0: not in the table, 1: read-only, 2: writer.
const fn entry_kind(i: usize) -> u8 {
    if i < WRITERS.len() {
        return 2;
    }
    let keywords = WRITERS.len() + pg_catalog::FUNCTIONS.len();
    if i >= keywords {
        return 1;
    }
    let (name, volatility) = pg_catalog::FUNCTIONS[i - WRITERS.len()];
    let name = name.as_bytes();
    if const_has_writer_prefix(name) {
        2
    } else if const_contains(SESSION_BOUND, name) || const_contains(OPERATOR_NAMED, name) {
        0
    } else if volatility != b'v' || const_contains(VOLATILE_READ_ONLY, name) {
        1
    } else {
        0
    }
}

const fn const_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn const_contains(list: &[&str], name: &[u8]) -> bool {
    let mut i = 0;
    while i < list.len() {
        if const_eq(list[i].as_bytes(), name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn const_has_writer_prefix(name: &[u8]) -> bool {
    let mut i = 0;
    while i < WRITER_PREFIXES.len() {
        let p = WRITER_PREFIXES[i].as_bytes();
        if name.len() >= p.len() {
            let (head, _) = name.split_at(p.len());
            if const_eq(head, p) {
                return true;
            }
        }
        i += 1;
    }
    false
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
        let value = TABLE[slot];
        let index = usize::from((value & !WRITER_BIT).checked_sub(1)?);
        if bytes_eq(Some(name), entry(index).as_bytes()) {
            return Some(if value & WRITER_BIT != 0 {
                FunctionKind::Writer
            } else {
                FunctionKind::ReadOnly
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
/// replication slots and origins, backups, WAL control, remote execution, binary upgrade.
pub(super) const WRITER_PREFIXES: &[&str] = &[
    "binary_upgrade_",
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

/// Writers matched by exact name (sorted and unique; a unit test checks), including functions
/// that only need the primary: the session's sequence state (`currval`, `lastval`), a
/// transaction id, or WAL positions that a standby refuses to give.
pub(super) const WRITERS: &[&str] = &[
    "brin_desummarize_range",
    "brin_summarize_new_values",
    "brin_summarize_range",
    "currval",
    "gin_clean_pending_list",
    "lastval",
    "loread",
    "lowrite",
    "nextval",
    "pg_cancel_backend",
    "pg_clear_attribute_stats",
    "pg_clear_relation_stats",
    "pg_current_wal_flush_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_lsn",
    "pg_current_xact_id",
    "pg_export_snapshot",
    "pg_extension_config_dump",
    "pg_import_system_collations",
    "pg_log_backend_memory_contexts",
    "pg_log_standby_snapshot",
    "pg_nextoid",
    "pg_notify",
    "pg_promote",
    "pg_reload_conf",
    "pg_restore_attribute_stats",
    "pg_restore_relation_stats",
    "pg_rotate_logfile",
    "pg_rotate_logfile_old",
    "pg_set_attribute_stats",
    "pg_set_relation_stats",
    "pg_start_backup",
    "pg_stat_statements_reset",
    "pg_stop_backup",
    "pg_stop_making_pinned_objects",
    "pg_switch_wal",
    "pg_switch_xlog",
    "pg_sync_replication_slots",
    "pg_terminate_backend",
    "pg_truncate_visibility_map",
    "pg_walfile_name",
    "pg_walfile_name_offset",
    "set_config",
    "setseed",
    "setval",
    "txid_current",
];

/// Volatile built-ins that are safe on a replica (sorted; a unit test checks each is a volatile
/// function of the server): they read the clock, draw random numbers without touching the
/// session's seed (`setseed` is a writer), sleep, or report sizes and replication state. The
/// seed itself is per connection, so `random()` on a replica is as random as on the primary.
pub(super) const VOLATILE_READ_ONLY: &[&str] = &[
    "clock_timestamp",
    "gen_random_uuid",
    "pg_blocking_pids",
    "pg_collation_actual_version",
    "pg_database_collation_actual_version",
    "pg_database_size",
    "pg_indexes_size",
    "pg_is_in_recovery",
    "pg_jit_available",
    "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn",
    "pg_last_xact_replay_timestamp",
    "pg_partition_ancestors",
    "pg_partition_tree",
    "pg_relation_size",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "pg_table_size",
    "pg_tablespace_size",
    "pg_total_relation_size",
    "pg_xact_commit_timestamp",
    "pg_xact_status",
    "random",
    "timeofday",
    "txid_status",
];

/// Stable built-ins whose answer depends on what this session did before (its cursors, prepared
/// statements, `LISTEN`s, temporary schema): on another server's connection they answer about
/// a different session, so they are not read-only (sorted).
pub(super) const SESSION_BOUND: &[&str] = &[
    "pg_cursor",
    "pg_listening_channels",
    "pg_my_temp_schema",
    "pg_prepared_statement",
];

/// Built-ins named like an operator keyword: `x LIKE (` is the operator, so a call of `like`
/// cannot be told from it everywhere, and a user's overload (`like(int)`) would hide behind the
/// built-in's name. Calls of these names are not trusted (sorted).
pub(super) const OPERATOR_NAMED: &[&str] = &["like", "overlaps"];
