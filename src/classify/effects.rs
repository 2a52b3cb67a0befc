//! What a statement does to its session, read from its text with the classifier's lexer.
//!
//! Conservative in one direction only: it may say a statement left state it did not (the pool
//! then resets more than needed), never the reverse. A procedure (`DO`, `CALL`), a quoted or
//! unknown function called outside a provably read-only statement, or text the lexer cannot
//! finish is [`SessionState::UNKNOWN`] (the driver's full reset).

use crate::session::{Effects, SessionState};

use super::lexer::{Kind, Lexer, Token};
use super::names;

/// The session effects of `sql`, one statement string (several statements separated by `;`
/// are folded in order). See [`crate::session`].
///
/// ```
/// use seawall::classify::session_effects;
/// use seawall::SessionState;
///
/// assert!(session_effects("INSERT INTO t (a) VALUES ($1)").leaves.is_clean());
/// assert_eq!(session_effects("SET search_path TO app").leaves, SessionState::SETTINGS);
/// assert_eq!(session_effects("BEGIN").leaves, SessionState::TRANSACTION);
/// assert!(session_effects("COMMIT").ends_transaction);
/// assert_eq!(session_effects("SELECT pg_advisory_lock(1)").leaves, SessionState::ADVISORY_LOCKS);
/// assert_eq!(session_effects("SELECT my_function()").leaves, SessionState::UNKNOWN);
/// ```
pub fn session_effects(sql: &str) -> Effects {
    let src = sql.as_bytes();
    let mut lexer = Lexer::new(src, 0, false);
    let effects = scan(src, &mut lexer);
    if lexer.saw_backslash {
        // Where a string ends depends on `standard_conforming_strings`: take both readings.
        let other = scan(src, &mut Lexer::new(src, 0, true));
        return Effects {
            leaves: effects.leaves | other.leaves,
            ends_transaction: effects.ends_transaction && other.ends_transaction,
        };
    }
    effects
}

/// Folds the statements of one string in order.
fn scan(src: &[u8], lexer: &mut Lexer<'_>) -> Effects {
    let mut total = Effects::default();
    let mut statement = Statement::default();
    loop {
        let token = lexer.next_token();
        match token {
            Some(Token {
                kind: Kind::Punct(b';'),
                ..
            })
            | None => {
                let effects = statement.finish();
                total = Effects {
                    leaves: effects.apply(total.leaves),
                    ends_transaction: total.ends_transaction || effects.ends_transaction,
                };
                statement = Statement::default();
                if token.is_none() {
                    return total;
                }
            }
            Some(Token {
                kind: Kind::Unterminated,
                ..
            }) => {
                total.leaves |= SessionState::UNKNOWN;
                return total;
            }
            Some(token) => statement.push(src, token),
        }
    }
}

/// The words of one statement seen so far and what they showed.
#[derive(Default)]
struct Statement<'a> {
    /// The first words, lowercased comparisons are done on these.
    head: [&'a [u8]; 4],
    words: usize,
    leaves: SessionState,
    ends_transaction: bool,
    /// The previous token, to tell a call (`f(`) from syntax (`INTO t (`).
    previous: Option<(Kind, &'a [u8])>,
    /// The word before `previous`.
    before_previous: Option<&'a [u8]>,
    /// `WITH` seen (for `DECLARE ... WITH HOLD`).
    saw_with: bool,
    /// `INTO` seen (for `SELECT ... INTO TEMP t`).
    saw_into: bool,
}

impl<'a> Statement<'a> {
    fn push(&mut self, src: &'a [u8], token: Token) {
        let text = src.get(token.start..token.end).unwrap_or_default();
        match token.kind {
            Kind::Word => {
                if self.words < self.head.len() {
                    self.head[self.words] = text;
                }
                self.words += 1;
                if eq(text, b"hold") && self.saw_with && is(self.head[0], b"declare") {
                    self.leaves |= SessionState::CURSORS;
                }
                if (eq(text, b"temp") || eq(text, b"temporary")) && self.saw_into {
                    self.leaves |= SessionState::TEMP_TABLES;
                }
                self.saw_with |= eq(text, b"with");
                self.saw_into |= eq(text, b"into");
            }
            Kind::Punct(b'(') => self.call(),
            _ => {}
        }
        self.before_previous = match self.previous {
            Some((Kind::Word, word)) => Some(word),
            _ => None,
        };
        self.previous = Some((token.kind, text));
    }

    /// `(` after a name: a function call, unless the name is syntax or a relation.
    fn call(&mut self) {
        let name = match self.previous {
            Some((Kind::Word, name)) => name,
            // `"my_fn"(...)`, `U&"..."(...)`: a call to a name we will not decode.
            Some((Kind::Quoted, _)) => {
                if !self.after_relation_keyword() {
                    self.leaves |= SessionState::UNKNOWN;
                }
                return;
            }
            _ => return,
        };
        if self.after_relation_keyword() {
            return;
        }
        let mut buf = [0u8; 64];
        let Some(lower) = names::lowercase(name, &mut buf) else {
            self.leaves |= SessionState::UNKNOWN;
            return;
        };
        self.leaves |= function(lower);
    }

    /// The word before the name says it names a relation or an index target, not a function:
    /// `INSERT INTO t (`, `CREATE TABLE t (`, `REFERENCES t (`, `ON t (`, `ON CONFLICT (`.
    fn after_relation_keyword(&self) -> bool {
        const RELATION: &[&[u8]] = &[
            b"into",
            b"table",
            b"references",
            b"on",
            b"only",
            b"exists",
            b"view",
            b"type",
            b"index",
            b"as",
            b"function",
            b"procedure",
            b"routine",
            b"aggregate",
        ];
        self.before_previous
            .is_some_and(|w| RELATION.iter().any(|k| eq(w, k)))
    }

    fn finish(mut self) -> Effects {
        let [first, second, third, _] = self.head;
        if self.words == 0 {
            return Effects::default();
        }
        let lower = |w: &[u8]| {
            let mut b = [0u8; 16];
            let n = w.len().min(16);
            for (o, c) in b.iter_mut().zip(w) {
                *o = c.to_ascii_lowercase();
            }
            (b, n)
        };
        let (f, n) = lower(first);
        match &f[..n] {
            b"begin" => self.leaves |= SessionState::TRANSACTION,
            b"start" if is(second, b"transaction") => self.leaves |= SessionState::TRANSACTION,
            b"commit" | b"end" | b"abort" if !is(second, b"prepared") => {
                self.ends_transaction = true
            }
            b"rollback" if !is(second, b"to") && !is(second, b"prepared") => {
                self.ends_transaction = true
            }
            b"prepare" if is(second, b"transaction") => self.ends_transaction = true,
            // A statement prepared by hand looks like the driver's own to the server; only
            // `DEALLOCATE ALL` would remove it, which would also drop the driver's.
            b"prepare" | b"deallocate" => self.leaves |= SessionState::UNRESETTABLE,
            b"discard" if is(second, b"all") => self.leaves |= SessionState::UNRESETTABLE,
            b"set" => self.leaves |= set(second, third),
            b"listen" => self.leaves |= SessionState::LISTEN,
            b"create" if self.head[1..].iter().any(|w| is_temp(w)) => {
                self.leaves |= SessionState::TEMP_TABLES
            }
            b"do" | b"call" | b"load" => self.leaves |= SessionState::UNKNOWN,
            _ => {}
        }
        Effects {
            leaves: self.leaves,
            ends_transaction: self.ends_transaction,
        }
    }
}

/// `SET <second> <third> ...`.
fn set(second: &[u8], third: &[u8]) -> SessionState {
    if is(second, b"local") || is(second, b"transaction") || is(second, b"constraints") {
        // Scoped to the transaction, which is tracked on its own.
        SessionState::CLEAN
    } else if is(second, b"role") || is(second, b"session") && is(third, b"authorization") {
        SessionState::ROLE
    } else {
        SessionState::SETTINGS
    }
}

/// A called function's effect on the session, by its lowercase name.
fn function(name: &[u8]) -> SessionState {
    const SESSION_LOCKS: &[&[u8]] = &[
        b"pg_advisory_lock",
        b"pg_advisory_lock_shared",
        b"pg_try_advisory_lock",
        b"pg_try_advisory_lock_shared",
    ];
    if SESSION_LOCKS.contains(&name) {
        SessionState::ADVISORY_LOCKS
    } else if name == b"set_config" {
        SessionState::SETTINGS
    } else if name.starts_with(b"dblink_connect") {
        SessionState::UNRESETTABLE
    } else if names::is_writer(name) || names::is_known_read_only(name) || is_syntax(name) {
        // Writers that do not touch the session (`nextval`, `pg_notify`, transaction-scoped
        // advisory locks), read-only built-ins, and keywords that take parentheses.
        SessionState::CLEAN
    } else {
        SessionState::UNKNOWN
    }
}

/// Words followed by `(` in statements that are not calls: `VALUES (`, `IN (`, type modifiers.
fn is_syntax(name: &[u8]) -> bool {
    const SYNTAX: &[&[u8]] = &[
        b"values",
        b"in",
        b"conflict",
        b"using",
        b"over",
        b"filter",
        b"within",
        b"set",
        b"returning",
        b"where",
        b"and",
        b"or",
        b"not",
        b"from",
        b"select",
        b"default",
        b"check",
        b"unique",
        b"key",
        b"include",
        b"partition",
        b"by",
        b"varchar",
        b"char",
        b"character",
        b"varying",
        b"numeric",
        b"decimal",
        b"bit",
        b"varbit",
        b"time",
        b"timestamp",
        b"timestamptz",
        b"interval",
        b"float",
    ];
    SYNTAX.contains(&name)
}

fn is_temp(word: &[u8]) -> bool {
    is(word, b"temp") || is(word, b"temporary")
}

/// Case-insensitive equality with a lowercase keyword.
fn eq(word: &[u8], keyword: &[u8]) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

fn is(word: &[u8], keyword: &[u8]) -> bool {
    eq(word, keyword)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(sql: &str) -> SessionState {
        session_effects(sql).leaves
    }

    #[test]
    fn plain_dml_and_ddl_leave_nothing() {
        for sql in [
            "SELECT 1",
            "INSERT INTO orders (id, total) VALUES ($1, $2) RETURNING id",
            "insert into t(a) values (now()) on conflict (a) do update set a = excluded.a",
            "UPDATE stock SET n = n - 1 WHERE sku = $1",
            "DELETE FROM t WHERE id IN (1, 2)",
            "CREATE TABLE t (id bigint PRIMARY KEY, name varchar(20), price numeric(10, 2))",
            "CREATE INDEX ON t (name)",
            "ALTER TABLE t ADD COLUMN c int REFERENCES u (id)",
            "SELECT nextval('s'), pg_advisory_xact_lock(1), pg_notify('c', 'x')",
            "SET LOCAL statement_timeout = 0",
            "RESET ALL",
            "UNLISTEN *",
            "NOTIFY c",
            "SELECT 'SET x = 1; LISTEN c'",
            "",
        ] {
            assert!(leaves(sql).is_clean(), "{sql}: {:?}", leaves(sql));
        }
    }

    #[test]
    fn each_kind_of_state() {
        use SessionState as S;
        for (sql, expected) in [
            ("SET search_path TO app", S::SETTINGS),
            (
                "set session characteristics as transaction read only",
                S::SETTINGS,
            ),
            ("SELECT set_config('app.user', '42', false)", S::SETTINGS),
            (
                "SELECT pg_catalog.set_config('x.y', '1', false)",
                S::SETTINGS,
            ),
            ("SET ROLE reporting", S::ROLE),
            ("SET SESSION AUTHORIZATION alice", S::ROLE),
            ("LISTEN orders", S::LISTEN),
            ("CREATE TEMP TABLE scratch (id int)", S::TEMP_TABLES),
            (
                "create global temporary table x as select 1",
                S::TEMP_TABLES,
            ),
            ("SELECT * INTO TEMP t2 FROM t", S::TEMP_TABLES),
            ("SELECT pg_advisory_lock(42)", S::ADVISORY_LOCKS),
            (
                "select PG_TRY_ADVISORY_LOCK_SHARED(1, 2)",
                S::ADVISORY_LOCKS,
            ),
            ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", S::CURSORS),
            ("PREPARE q AS SELECT 1", S::UNRESETTABLE),
            ("DEALLOCATE ALL", S::UNRESETTABLE),
            ("DISCARD ALL", S::UNRESETTABLE),
            ("SELECT dblink_connect('c', 'dbname=x')", S::UNRESETTABLE),
            ("DO $$ BEGIN PERFORM 1; END $$", S::UNKNOWN),
            ("CALL refresh()", S::UNKNOWN),
            ("INSERT INTO t VALUES (my_fn())", S::UNKNOWN),
            ("SELECT \"set_config\"('a.b', '1', false)", S::UNKNOWN),
            ("SELECT 'unterminated", S::UNKNOWN),
            ("BEGIN", S::TRANSACTION),
            (
                "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                S::TRANSACTION,
            ),
        ] {
            assert_eq!(leaves(sql), expected, "{sql}");
        }
        assert_eq!(
            leaves("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1"),
            S::CLEAN
        );
    }

    #[test]
    fn transactions_fold_in_order() {
        let e = session_effects("BEGIN; INSERT INTO t VALUES (1); COMMIT");
        assert!(e.leaves.is_clean());
        assert!(e.ends_transaction);
        let e = session_effects("COMMIT; BEGIN");
        assert_eq!(e.leaves, SessionState::TRANSACTION);
        assert!(e.ends_transaction);
        let e = session_effects("BEGIN; SET x.y = 1; ROLLBACK");
        assert_eq!(e.leaves, SessionState::SETTINGS, "kept: conservative");
        assert!(!session_effects("ROLLBACK TO SAVEPOINT a").ends_transaction);
        assert!(!session_effects("COMMIT PREPARED 'x'").ends_transaction);
        assert!(session_effects("PREPARE TRANSACTION 'x'").ends_transaction);
        assert!(session_effects("end").ends_transaction);
    }

    #[test]
    fn strings_that_depend_on_the_server_setting_take_both_readings() {
        // With standard strings `'\'` is a string and `; SET x = 1` a statement; read the
        // legacy way the quote is escaped and it is all one string. Either way, SETTINGS.
        let e = session_effects(r"SELECT '\'; SET x.y = 1; --'");
        assert!(e.leaves.contains(SessionState::SETTINGS));
    }
}
