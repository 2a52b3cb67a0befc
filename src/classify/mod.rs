//! Statement classification: may this SQL run on a read replica?
//!
//! Routing reads to replicas is only safe if nothing that writes ever gets there. A write on a
//! replica fails at best ("cannot execute INSERT in a read-only transaction"); at worst a read that
//! takes row locks, bumps a sequence or sets a session variable "works" on the wrong server and
//! silently means something else. So the classifier answers a narrow question: is this statement
//! **provably read-only**? Anything it cannot prove goes to the primary.
//!
//! It is lexical, not a parser: one pass over the bytes with a lexer that agrees with PostgreSQL's
//! about where every comment, string (`'..'`, `E'..'`, `$tag$..$tag$`) and quoted identifier ends,
//! so that `SELECT 'DELETE'` is a read and `SELECT 1; DELETE FROM t` is not. A plain query goes
//! through a single tight loop first; anything unusual gets the full analysis. A typical statement
//! is classified in well under a microsecond, with no allocation.
//!
//! Where a plain `'...'` string holds a backslash, its end depends on the server's
//! `standard_conforming_strings`: the classifier reads it both ways and keeps the worse verdict.
//! An unterminated string, identifier or comment is [`Verdict::Unprovable`]; input without any
//! statement (empty, blanks, comments, `;`) is [`ClassifyError::Empty`].
//!
//! # What is read-only
//!
//! `SELECT`, `WITH`, `VALUES`, `TABLE t`, `SHOW` and `EXPLAIN` of those, unless the statement
//!
//! * locks rows (`FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY SHARE`),
//! * creates a table (`SELECT ... INTO`),
//! * contains a data-modifying statement (`WITH x AS (DELETE ... RETURNING *) SELECT ...`),
//! * calls a function known to write or to need the primary (`nextval`, `setval`, advisory locks,
//!   `lo_*`, `pg_notify`, `set_config`, `txid_current`, `pg_terminate_backend`, `dblink_exec`,
//!   `pg_stat_reset*`, ...), or
//! * calls a function the classifier does not know (see below).
//!
//! A multi-statement string is read-only only if every statement is. `EXPLAIN ANALYZE` runs its
//! statement, so it is exactly as read-only as that statement; plain `EXPLAIN` of a write does not
//! write but is not a read either, so it is [`Verdict::Unprovable`].
//!
//! Everything else goes to the primary and is [`Verdict::Writes`]: DML, DDL, `COPY`, maintenance,
//! `LOCK`, `LISTEN`/`NOTIFY`, `CALL`/`DO`, prepared statements and cursors, and session or
//! transaction control (`SET`, `BEGIN`, `COMMIT`, ...), because a transaction or a session setting
//! belongs to the connection that runs it. A statement the classifier does not recognise at all
//! is [`Verdict::Unprovable`].
//!
//! # Function calls
//!
//! A user-defined function may write, so a call to a function the classifier does not know is not
//! provably read-only. Calls to a list of common read-only built-ins (`count`, `sum`, `coalesce`,
//! `lower`, `now`, `date_trunc`, `jsonb_build_object`, ...) are fine; register your own read-only
//! functions with [`Classifier::with_read_only_function`]. A function known to write stays a write
//! even if registered.
//!
//! # Routing hints
//!
//! A comment before the first token may carry a hint for the whole string: `/* seawall:primary */` (or
//! `-- seawall:primary`) forces the primary; `/* seawall:replica */` sends a statement the
//! classifier cannot prove either way (`SELECT my_report_fn()`) to a replica. A replica hint never
//! overrides a statement known to write: that one still goes to the primary, and
//! [`Classification::hint_overridden`] says so. A comment that starts with `seawall` but is not one
//! of these two hints is an error ([`ClassifyError::MalformedHint`]), not silently ignored.
//!
//! # What it cannot see
//!
//! Only the statement text. A view, rule, user-defined operator, cast or type whose implementation
//! writes, a built-in name shadowed by a writing function earlier in the `search_path`, or a
//! function called with attribute notation (`SELECT t.my_fn FROM t`) is invisible to it. Send such
//! statements with `/* seawall:primary */`.
//!
//! # Fingerprints
//!
//! [`fingerprint`] gives a statement a stable 64-bit key with literals, parameters, comments,
//! whitespace and case taken out, and lists of constants collapsed, for per-statement statistics
//! and for routing that learns from past runs; [`normalize`] returns the text it hashes and lists
//! the rules. It reads the statement as the classifier's lexer does, so it agrees with the
//! classifier (and the server) about where every literal ends; it allocates nothing and costs
//! the same order as classification. [`Fingerprint`] values are stable across processes, machines
//! and versions, so they can be stored.
//!
//! A [`RouteMemory`] keeps routes per fingerprint: declared by the application, or learned by the
//! cluster when a replica refuses a statement the classifier let through as a write. Declared
//! writing functions ([`Classifier::with_writing_function`]) make a call a known write.
//!
//! ```
//! use seawall::classify::{classify, Route, Verdict};
//!
//! let read = classify("SELECT id FROM users WHERE email = 'x@y' LIMIT 1")?;
//! assert_eq!(read.route(), Route::Replica);
//!
//! let write = classify("WITH gone AS (DELETE FROM jobs RETURNING id) SELECT count(*) FROM gone")?;
//! assert_eq!(write.route(), Route::Primary);
//! assert_eq!(write.verdict(), Verdict::Writes);
//!
//! let hinted = classify("/* seawall:replica */ SELECT my_report_fn()")?;
//! assert_eq!(hinted.route(), Route::Replica);
//! # Ok::<(), seawall::classify::ClassifyError>(())
//! ```

mod fast;
mod fingerprint;
mod lexer;
mod memory;
mod names;
#[rustfmt::skip]
mod pg_catalog;
#[cfg(test)]
mod tests;

use std::fmt;

pub use fingerprint::{fingerprint, normalize, Fingerprint, ParseFingerprintError};
pub(crate) use memory::{truncate, FingerprintMap};
pub use memory::{Origin, ParseRememberedError, Remembered, RouteMemory};

use lexer::{Kind, Lexer, Token};
use names::Kw;

/// Where a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Only the primary.
    Primary,
    /// Any replica (or the primary).
    Replica,
}

/// A routing hint found in a leading comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hint {
    /// `/* seawall:primary */`: always the primary.
    Primary,
    /// `/* seawall:replica */`: a replica, unless the statement is known to write.
    Replica,
}

/// What the classifier could establish about a statement, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Provably read-only: safe on a replica.
    ReadOnly,
    /// Neither provably read-only nor known to write (an unknown function, an unrecognised
    /// statement, an unterminated literal). Goes to the primary unless hinted otherwise.
    Unprovable,
    /// Writes data, takes locks, or changes session or transaction state: must run on the
    /// primary, whatever the hint says.
    Writes,
}

/// The outcome of classifying one SQL string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    route: Route,
    verdict: Verdict,
    hint: Option<Hint>,
    reason: &'static str,
}

impl Classification {
    fn new(verdict: Verdict, reason: &'static str, hint: Option<Hint>) -> Self {
        let route = match (verdict, hint) {
            (_, Some(Hint::Primary)) | (Verdict::Writes, _) => Route::Primary,
            (_, Some(Hint::Replica)) | (Verdict::ReadOnly, None) => Route::Replica,
            (Verdict::Unprovable, None) => Route::Primary,
        };
        Classification {
            route,
            verdict,
            hint,
            reason,
        }
    }

    /// Where the statement should run, hint applied.
    pub fn route(&self) -> Route {
        self.route
    }

    /// What the classifier established, before any hint.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// `true` if the statement is known to write (or to need the primary's session).
    pub fn is_write(&self) -> bool {
        self.verdict == Verdict::Writes
    }

    /// The routing hint in the leading comment, if any.
    pub fn hint(&self) -> Option<Hint> {
        self.hint
    }

    /// `true` if a replica hint was ignored because the statement is known to write.
    pub fn hint_overridden(&self) -> bool {
        self.hint == Some(Hint::Replica) && self.verdict == Verdict::Writes
    }

    /// A short human-readable reason for the verdict, for logs and metrics labels.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// Why a string could not be classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClassifyError {
    /// The input holds no statement: empty, whitespace, comments or `;` only. There is nothing to
    /// route; sending it anywhere would hide a bug in the caller.
    Empty,
    /// A leading comment starts with `seawall` but is not `seawall:primary` or `seawall:replica`.
    MalformedHint {
        /// Byte offset of the comment in the input.
        offset: usize,
    },
    /// Leading comments carry both a primary and a replica hint.
    ConflictingHints,
}

impl fmt::Display for ClassifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClassifyError::Empty => f.write_str("no SQL statement to classify"),
            ClassifyError::MalformedHint { offset } => write!(
                f,
                "malformed routing hint at byte {offset}: expected `seawall:primary` or \
                 `seawall:replica`"
            ),
            ClassifyError::ConflictingHints => {
                f.write_str("both `seawall:primary` and `seawall:replica` hints are present")
            }
        }
    }
}

impl std::error::Error for ClassifyError {}

/// Classifies `sql` with the default [`Classifier`] (built-in read-only functions only).
///
/// # Errors
///
/// [`ClassifyError`] for input without a statement or with a malformed routing hint.
pub fn classify(sql: &str) -> Result<Classification, ClassifyError> {
    static DEFAULT: Classifier = Classifier {
        read_only: Vec::new(),
        writes: Vec::new(),
        writes_shadow_builtin: false,
    };
    DEFAULT.classify(sql)
}

/// A statement classifier, optionally told about the application's own read-only functions.
///
/// ```
/// use seawall::classify::{Classifier, Route};
///
/// let classifier = Classifier::new().with_read_only_function("reports.daily_totals");
/// let c = classifier.classify("SELECT * FROM reports.daily_totals($1)")?;
/// assert_eq!(c.route(), Route::Replica);
/// # Ok::<(), seawall::classify::ClassifyError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    /// Lowercase names, sorted, deduplicated; `schema.name` or a bare `name` (any schema).
    read_only: Vec<Box<str>>,
    /// Functions declared to write, in the same form.
    writes: Vec<Box<str>>,
    /// A declared writer has the name of a built-in read-only function: the fast path, which
    /// knows only the built-ins, must not decide.
    writes_shadow_builtin: bool,
}

impl Classifier {
    /// A classifier that knows only the built-in read-only functions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `name` read-only. A bare `name` matches calls in any schema; `schema.name` matches
    /// only that schema. Names are compared case-insensitively (as unquoted identifiers are).
    /// Functions known to write (`nextval`, ...) stay writes.
    pub fn with_read_only_function(mut self, name: impl AsRef<str>) -> Self {
        declare(&mut self.read_only, name.as_ref());
        self
    }

    /// Declares that `name` writes (or needs the primary's session): a statement calling it is
    /// [`Verdict::Writes`] and goes to the primary, whatever a hint or a read-only declaration
    /// says. Names match as in [`Classifier::with_read_only_function`]. Use it for a function
    /// whose name shadows a built-in the classifier trusts, or to make a replica hint on a
    /// statement calling it an override rather than a mistake.
    ///
    /// ```
    /// use seawall::classify::{Classifier, Route, Verdict};
    ///
    /// let classifier = Classifier::new().with_writing_function("audit.touch");
    /// let c = classifier.classify("/* seawall:replica */ SELECT audit.touch($1)")?;
    /// assert_eq!((c.route(), c.verdict()), (Route::Primary, Verdict::Writes));
    /// # Ok::<(), seawall::classify::ClassifyError>(())
    /// ```
    pub fn with_writing_function(mut self, name: impl AsRef<str>) -> Self {
        if let Some(name) = declare(&mut self.writes, name.as_ref()) {
            let bare = name.rsplit('.').next().unwrap_or(&name);
            self.writes_shadow_builtin |= names::is_known_read_only(bare.as_bytes());
        }
        self
    }

    /// Declares several functions as writing; see [`Classifier::with_writing_function`].
    pub fn with_writing_functions<I>(self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        names
            .into_iter()
            .fold(self, |c, name| c.with_writing_function(name))
    }

    /// Declares several functions read-only; see [`Classifier::with_read_only_function`].
    pub fn with_read_only_functions<I>(self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        names
            .into_iter()
            .fold(self, |c, name| c.with_read_only_function(name))
    }

    /// Classifies `sql`, which may hold several `;`-separated statements.
    ///
    /// Never panics, whatever the input.
    ///
    /// # Errors
    ///
    /// [`ClassifyError`] for input without a statement or with a malformed routing hint.
    pub fn classify(&self, sql: &str) -> Result<Classification, ClassifyError> {
        let src = sql.as_bytes();
        let (hint, start) = leading_hint(src)?;
        if !self.writes_shadow_builtin {
            if let Some((verdict, reason)) = fast::classify(src, start) {
                return Ok(Classification::new(verdict, reason, hint));
            }
        }
        let (first, saw_backslash) = self.scan(src, start, false);
        let (mut verdict, mut reason) = first.ok_or(ClassifyError::Empty)?;
        // With `standard_conforming_strings = off` a backslash escapes a quote in a plain string,
        // which moves where the string ends. If that could matter, read it both ways; the worse
        // reading wins.
        if saw_backslash && verdict != Verdict::Writes {
            if let (Some((v, r)), _) = self.scan(src, start, true) {
                if v > verdict {
                    (verdict, reason) = (v, r);
                }
            }
        }
        Ok(Classification::new(verdict, reason, hint))
    }

    /// Runs every statement of `src[start..]` through [`Statement`]; the worst verdict wins (`None`
    /// if there is no statement at all). Also says whether a plain string held a backslash.
    fn scan(
        &self,
        src: &[u8],
        start: usize,
        legacy_strings: bool,
    ) -> (Option<(Verdict, &'static str)>, bool) {
        let mut lexer = Lexer::new(src, start, legacy_strings);
        let worst = self.scan_statements(&mut lexer, src);
        (worst, lexer.saw_backslash)
    }

    #[inline(always)]
    fn scan_statements(
        &self,
        lexer: &mut Lexer<'_>,
        src: &[u8],
    ) -> Option<(Verdict, &'static str)> {
        let mut worst: Option<(Verdict, &'static str)> = None;
        let mut stmt = Statement::new();
        let mut started = false;
        while let Some(token) = lexer.next_token() {
            match token.kind {
                Kind::Punct(b';') => {
                    if started {
                        worst = worse(worst, stmt.finish());
                    }
                    stmt = Statement::new();
                    started = false;
                    continue;
                }
                Kind::Unterminated => {
                    started = true;
                    stmt.raise(Verdict::Unprovable, reason::UNTERMINATED);
                    break;
                }
                _ => started = true,
            }
            if stmt.mode == Mode::Query {
                // The common case: a name, literal or operator inside a query changes nothing.
                let kw = match token.kind {
                    Kind::Word => names::query_keyword(&src[token.start..token.end]),
                    Kind::Punct(b'(' | b')') => Kw::Other,
                    Kind::Quoted if stmt.after_dot() => {
                        stmt.field_or_method(token, src);
                        stmt.remember(token);
                        continue;
                    }
                    _ => {
                        stmt.remember(token);
                        continue;
                    }
                };
                if token.kind == Kind::Word && kw == Kw::Other {
                    if stmt.after_dot() {
                        stmt.field_or_method(token, src);
                    }
                    stmt.remember(token);
                    continue;
                }
                stmt.query_token(self, token, kw, src);
            } else {
                stmt.step(self, token, src);
            }
            if stmt.verdict == Verdict::Writes && stmt.is_final_write() {
                return Some(stmt.finish());
            }
            stmt.remember(token);
        }
        if started {
            worst = worse(worst, stmt.finish());
        }
        worst
    }

    /// `true` if the user declared this function read-only.
    fn user_allows(&self, schema: Option<&[u8]>, name: &[u8]) -> bool {
        is_declared(&self.read_only, schema, name)
    }

    /// `true` if the user declared that this function writes.
    fn user_writes(&self, schema: Option<&[u8]>, name: &[u8]) -> bool {
        !self.writes.is_empty() && is_declared(&self.writes, schema, name)
    }
}

/// Adds a lowercased name to a sorted list; returns it unless it was empty.
fn declare(list: &mut Vec<Box<str>>, name: &str) -> Option<String> {
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() {
        return None;
    }
    if let Err(at) = list.binary_search_by(|r| (**r).cmp(name.as_str())) {
        list.insert(at, name.clone().into_boxed_str());
    }
    Some(name)
}

/// Whether `schema.name` (or a bare `name`) is in a declared list: a bare entry matches any
/// schema, a qualified one only its own.
fn is_declared(list: &[Box<str>], schema: Option<&[u8]>, name: &[u8]) -> bool {
    let bare = list.binary_search_by(|r| r.as_bytes().cmp(name)).is_ok();
    bare || schema.is_some_and(|schema| {
        list.iter().any(|r| {
            let r = r.as_bytes();
            r.len() == schema.len() + 1 + name.len()
                && r.starts_with(schema)
                && r[schema.len()] == b'.'
                && r.ends_with(name)
        })
    })
}

fn worse(
    a: Option<(Verdict, &'static str)>,
    b: (Verdict, &'static str),
) -> Option<(Verdict, &'static str)> {
    match a {
        Some(a) if a.0 >= b.0 => Some(a),
        _ => Some(b),
    }
}

/// The reasons a [`Classification`] can give.
pub(crate) mod reason {
    pub(crate) const READ: &str = "read-only query";
    pub(crate) const SHOW: &str = "SHOW reads a setting";
    pub(crate) const SELECT_INTO: &str = "SELECT INTO creates a table";
    pub(crate) const LOCKING: &str = "row-locking clause (FOR UPDATE / FOR SHARE)";
    pub(crate) const NESTED_WRITE: &str = "data-modifying statement inside a query";
    pub(crate) const WRITER_FUNCTION: &str = "calls a function that writes or needs the primary";
    pub(crate) const UNKNOWN_FUNCTION: &str = "calls a function not known to be read-only";
    pub(crate) const DECLARED_WRITER: &str = "calls a function declared as writing";
    pub(crate) const DML: &str = "data-modifying statement";
    pub(crate) const DDL: &str = "schema, privilege or comment change";
    pub(crate) const MAINTENANCE: &str = "maintenance or locking command";
    pub(crate) const SESSION: &str = "session state or transaction control";
    pub(crate) const PROCEDURAL: &str = "procedure call or code block";
    pub(crate) const CURSOR: &str = "cursor or prepared-statement command";
    pub(crate) const NOTIFY: &str = "LISTEN / NOTIFY";
    pub(crate) const UNRECOGNISED: &str = "unrecognised statement";
    pub(crate) const UNTERMINATED: &str = "unterminated quote, identifier or comment";
    pub(crate) const EXPLAIN_WRITE: &str = "EXPLAIN (without ANALYZE) of a statement that writes";
    pub(crate) const EXPLAIN_INCOMPLETE: &str = "EXPLAIN without a statement";
}

/// Where the analysis of one statement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Before the first keyword (leading parentheses allowed).
    Start,
    /// Inside a query: look for locks, INTO, nested writes and function calls.
    Query,
    /// After `EXPLAIN [ANALYZE] [VERBOSE]`, before the explained statement.
    Explain,
    /// Inside `EXPLAIN ( option, ... )`.
    ExplainOptions,
    /// The verdict is settled; wait for the end of the statement.
    Skip,
}

/// State of one statement. Fixed size, no allocation.
struct Statement {
    mode: Mode,
    verdict: Verdict,
    reason: &'static str,
    /// Parenthesis depth.
    depth: u32,
    /// Bit `d`: inside the CTE list of a `WITH` at depth `d` (where `name(` is a CTE name).
    cte_lists: u64,
    explain: bool,
    analyze: bool,
    /// In EXPLAIN options: the next word names an option.
    option_start: bool,
    /// In EXPLAIN options: the last option was ANALYZE, so a value may follow.
    analyze_value: bool,
    /// The last tokens, a ring indexed by `seen`; see [`Statement::prev`].
    ring: [Option<Token>; 4],
    seen: usize,
}

impl Statement {
    fn new() -> Self {
        Statement {
            mode: Mode::Start,
            verdict: Verdict::ReadOnly,
            reason: reason::READ,
            depth: 0,
            cte_lists: 0,
            explain: false,
            analyze: false,
            option_start: false,
            analyze_value: false,
            ring: [None; 4],
            seen: 0,
        }
    }

    fn raise(&mut self, verdict: Verdict, reason: &'static str) {
        if verdict > self.verdict {
            self.verdict = verdict;
            self.reason = reason;
        }
    }

    /// Settles the verdict for the rest of the statement.
    fn settle(&mut self, verdict: Verdict, reason: &'static str) {
        self.raise(verdict, reason);
        self.mode = Mode::Skip;
    }

    /// A write that nothing later in the input can change: the whole string goes to the primary.
    fn is_final_write(&self) -> bool {
        self.verdict == Verdict::Writes && (!self.explain || self.analyze)
    }

    fn finish(&self) -> (Verdict, &'static str) {
        match self.mode {
            _ if self.explain && !self.analyze && self.verdict == Verdict::Writes => {
                (Verdict::Unprovable, reason::EXPLAIN_WRITE)
            }
            Mode::Explain | Mode::ExplainOptions if self.verdict == Verdict::ReadOnly => {
                (Verdict::Unprovable, reason::EXPLAIN_INCOMPLETE)
            }
            Mode::Start if self.verdict == Verdict::ReadOnly => {
                (Verdict::Unprovable, reason::UNRECOGNISED)
            }
            _ => (self.verdict, self.reason),
        }
    }

    #[inline]
    fn remember(&mut self, token: Token) {
        self.ring[self.seen % 4] = Some(token);
        self.seen = self.seen.wrapping_add(1);
    }

    /// The token `back` positions before the current one (0: the previous token), `back < 3`.
    #[inline]
    fn prev(&self, back: usize) -> Option<Token> {
        self.ring[self.seen.wrapping_sub(back + 1) % 4]
    }

    fn set_cte_list(&mut self, on: bool) {
        if let Some(bit) = 1u64.checked_shl(self.depth) {
            if on {
                self.cte_lists |= bit;
            } else {
                self.cte_lists &= !bit;
            }
        }
    }

    fn in_cte_list(&self) -> bool {
        1u64.checked_shl(self.depth)
            .is_some_and(|bit| self.cte_lists & bit != 0)
    }

    #[inline(never)]
    fn step(&mut self, classifier: &Classifier, token: Token, src: &[u8]) {
        let text = &src[token.start..token.end];
        match self.mode {
            Mode::Query => {
                let kw = match token.kind {
                    Kind::Word => names::query_keyword(text),
                    _ => Kw::Other,
                };
                self.query_token(classifier, token, kw, src)
            }
            Mode::Skip => {}
            Mode::Start => match token.kind {
                Kind::Punct(b'(') => self.depth = self.depth.saturating_add(1),
                Kind::Word => self.start_statement(match names::query_keyword(text) {
                    Kw::Other => names::keyword(text),
                    kw => kw,
                }),
                _ => self.settle(Verdict::Unprovable, reason::UNRECOGNISED),
            },
            Mode::Explain => match token.kind {
                Kind::Punct(b'(') if self.prev_keyword(src, 0) == Kw::Explain => {
                    self.mode = Mode::ExplainOptions;
                    self.option_start = true;
                }
                Kind::Punct(b'(') => {
                    self.mode = Mode::Start;
                    self.depth = self.depth.saturating_add(1);
                }
                Kind::Word => match names::keyword(text) {
                    Kw::Analyze => self.analyze = true,
                    Kw::Verbose => {}
                    kw => self.start_statement(kw),
                },
                _ => self.settle(Verdict::Unprovable, reason::UNRECOGNISED),
            },
            Mode::ExplainOptions => self.explain_option(token, text),
        }
    }

    fn start_statement(&mut self, kw: Kw) {
        match kw {
            Kw::Select | Kw::Values | Kw::Table => self.mode = Mode::Query,
            Kw::With => {
                self.mode = Mode::Query;
                self.set_cte_list(true);
            }
            Kw::Show if !self.explain => {
                self.settle(Verdict::ReadOnly, reason::SHOW);
                self.reason = reason::SHOW;
            }
            Kw::Explain if !self.explain && self.depth == 0 => {
                self.explain = true;
                self.mode = Mode::Explain;
            }
            Kw::Insert | Kw::Update | Kw::Delete | Kw::Merge | Kw::OtherDml => {
                self.settle(Verdict::Writes, reason::DML)
            }
            Kw::Ddl => self.settle(Verdict::Writes, reason::DDL),
            Kw::Maintenance | Kw::Analyze => self.settle(Verdict::Writes, reason::MAINTENANCE),
            Kw::Session => self.settle(Verdict::Writes, reason::SESSION),
            Kw::Procedural => self.settle(Verdict::Writes, reason::PROCEDURAL),
            Kw::Cursor => self.settle(Verdict::Writes, reason::CURSOR),
            Kw::Notify => self.settle(Verdict::Writes, reason::NOTIFY),
            _ => self.settle(Verdict::Unprovable, reason::UNRECOGNISED),
        }
    }

    fn explain_option(&mut self, token: Token, text: &[u8]) {
        match token.kind {
            Kind::Punct(b')') if self.depth == 0 => self.mode = Mode::Explain,
            Kind::Punct(b')') => self.depth -= 1,
            Kind::Punct(b'(') => self.depth = self.depth.saturating_add(1),
            Kind::Punct(b',') => {
                self.option_start = true;
                self.analyze_value = false;
            }
            Kind::Word => {
                let kw = names::keyword(text);
                if self.option_start
                    && matches!(self.prev(0).map(|t| t.kind), Some(Kind::Punct(b'(')))
                    && matches!(kw, Kw::Select | Kw::With | Kw::Values | Kw::Table)
                {
                    // `EXPLAIN (SELECT ...)`: a parenthesised query, not an option list.
                    self.depth = 1;
                    self.start_statement(kw);
                    return;
                }
                if self.option_start {
                    self.analyze = self.analyze || kw == Kw::Analyze;
                    self.analyze_value = kw == Kw::Analyze;
                } else if self.analyze_value && matches!(kw, Kw::False | Kw::Off) {
                    self.analyze = false;
                }
                self.option_start = false;
            }
            Kind::Number if self.analyze_value && text == b"0" => self.analyze = false,
            // `("analyze")`: option names may be quoted. A `U&"..."` name may spell anything, so
            // it counts as ANALYZE (the statement is then judged as if it ran).
            Kind::Quoted if self.option_start => {
                let analyze = match text.strip_prefix(b"\"").and_then(|t| t.strip_suffix(b"\"")) {
                    Some(inner) => {
                        inner.eq_ignore_ascii_case(b"analyze")
                            || inner.eq_ignore_ascii_case(b"analyse")
                    }
                    None => true,
                };
                self.analyze |= analyze;
                self.analyze_value = analyze;
                self.option_start = false;
            }
            _ => self.option_start = false,
        }
    }

    /// A token inside a query; `kw` is its [`names::query_keyword`] if it is a word.
    #[inline(never)]
    fn query_token(&mut self, classifier: &Classifier, token: Token, kw: Kw, src: &[u8]) {
        match token.kind {
            Kind::Punct(b'(') => {
                match self.prev(0).map(|t| t.kind) {
                    Some(Kind::Word | Kind::Quoted) => self.call_site(classifier, src),
                    // `U&"..." UESCAPE '!' (`: a call of a name written with escapes.
                    Some(Kind::Str) if self.prev_keyword(src, 1) == Kw::Uescape => {
                        self.raise(Verdict::Unprovable, reason::UNKNOWN_FUNCTION)
                    }
                    // `WITH a AS (...) (SELECT ...)`: the CTE list is over.
                    Some(Kind::Punct(b')')) => self.set_cte_list(false),
                    _ => {}
                }
                self.depth = self.depth.saturating_add(1);
            }
            Kind::Punct(b')') => {
                self.set_cte_list(false);
                self.depth = self.depth.saturating_sub(1);
            }
            Kind::Quoted if self.after_dot() => self.field_or_method(token, src),
            Kind::Word => {
                if self.after_dot() {
                    self.field_or_method(token, src);
                }
                self.query_keyword(kw, src)
            }
            _ => {}
        }
    }

    /// A keyword inside a query (after [`Statement::query_token`] has seen its token).
    fn query_keyword(&mut self, kw: Kw, src: &[u8]) {
        match kw {
            Kw::Into => self.raise(Verdict::Writes, reason::SELECT_INTO),
            Kw::Insert | Kw::Update | Kw::Delete | Kw::Merge => {
                let reason = if self.prev_keyword(src, 0) == Kw::For {
                    reason::LOCKING
                } else {
                    reason::NESTED_WRITE
                };
                self.raise(Verdict::Writes, reason)
            }
            Kw::Share | Kw::Key | Kw::No if self.prev_keyword(src, 0) == Kw::For => {
                self.raise(Verdict::Writes, reason::LOCKING)
            }
            // A nested query's WITH follows `(`; `WITH ORDINALITY` and `WITH TIME ZONE`
            // start no CTE list.
            Kw::With if matches!(self.prev(0).map(|t| t.kind), Some(Kind::Punct(b'('))) => {
                self.set_cte_list(true)
            }
            Kw::Select | Kw::Values | Kw::Table => self.set_cte_list(false),
            _ => {}
        }
    }

    /// The previous token is a `.`.
    #[inline]
    fn after_dot(&self) -> bool {
        matches!(self.prev(0).map(|t| t.kind), Some(Kind::Punct(b'.')))
    }

    /// A name after a `.`: a column, a field, or a function called with attribute notation
    /// (`g.pg_advisory_lock` with `g` a scalar alias, `(0.5).setseed`). A writer's name is a
    /// write wherever it appears; after `).` (a field of an expression) any other name not
    /// known to be a read-only built-in may be a user's function. (`t.my_fn` after a table
    /// name is not checked: see the module docs.)
    #[inline(never)]
    fn field_or_method(&mut self, token: Token, src: &[u8]) {
        let after_expression = matches!(self.prev(1).map(|t| t.kind), Some(Kind::Punct(b')')));
        let mut buf = [0u8; 64];
        match ident(token, src, &mut buf) {
            Some(name) if names::is_writer(name) => {
                self.raise(Verdict::Writes, reason::WRITER_FUNCTION)
            }
            Some(name) if !after_expression || names::is_known_read_only(name) => {}
            _ if after_expression => self.raise(Verdict::Unprovable, reason::UNKNOWN_FUNCTION),
            _ => {}
        }
    }

    fn prev_keyword(&self, src: &[u8], back: usize) -> Kw {
        match self.prev(back) {
            Some(t) if t.kind == Kind::Word => names::keyword(&src[t.start..t.end]),
            _ => Kw::Other,
        }
    }

    /// `(` right after a name: a function call, unless the name is a keyword, a CTE name, an
    /// alias's column list or a clause.
    #[inline(never)]
    fn call_site(&mut self, classifier: &Classifier, src: &[u8]) {
        let Some(name_token) = self.prev(0) else {
            return;
        };
        // Any `x.name(` is qualified; a schema that is not a plain or quoted name (`U&"..."
        // UESCAPE '!'.name(`) is one the classifier cannot read, so the call is unknown.
        let qualified = matches!(self.prev(1).map(|t| t.kind), Some(Kind::Punct(b'.')));
        let mut name_buf = [0u8; 64];
        let Some(name) = ident(name_token, src, &mut name_buf) else {
            // Too long or `U&"..."`: cannot be checked.
            self.raise(Verdict::Unprovable, reason::UNKNOWN_FUNCTION);
            return;
        };
        if names::is_writer(name) {
            self.raise(Verdict::Writes, reason::WRITER_FUNCTION);
            return;
        }
        let mut schema_buf = [0u8; 64];
        let schema = if qualified {
            self.prev(2)
                .filter(|t| matches!(t.kind, Kind::Word | Kind::Quoted))
                .and_then(|t| ident(t, src, &mut schema_buf))
        } else {
            None
        };
        if classifier.user_writes(schema, name) {
            self.raise(Verdict::Writes, reason::DECLARED_WRITER);
            return;
        }
        let quoted = name_token.kind == Kind::Quoted;
        let allowed = if qualified {
            (schema == Some(b"pg_catalog") && !quoted && names::is_known_read_only(name))
                || schema.is_some_and(|s| classifier.user_allows(Some(s), name))
        } else {
            (!quoted && names::is_known_read_only(name))
                || self.not_a_call(name_token, name, src)
                || classifier.user_allows(None, name)
        };
        if !allowed {
            self.raise(Verdict::Unprovable, reason::UNKNOWN_FUNCTION);
        }
    }

    /// Positions where `name (` is not a function call; `name` is the lowercased name.
    fn not_a_call(&self, name_token: Token, name: &[u8], src: &[u8]) -> bool {
        let name_kw = match name_token.kind {
            Kind::Word => names::keyword(&src[name_token.start..name_token.end]),
            _ => Kw::Other,
        };
        let Some(before) = self.prev(1) else {
            return false;
        };
        match before.kind {
            // After `)` an expression has ended: `count(*) FILTER (`, `OVER (`,
            // `generate_series(1, 3) g(n)`, `(SELECT ...) s(a, b)`.
            Kind::Punct(b')') => true,
            // `WITH a AS (...), b(x) AS (...)`.
            Kind::Punct(b',') => self.in_cte_list(),
            Kind::Word => {
                let before_kw = self.prev_keyword(src, 1);
                match (before_kw, name_kw) {
                    // Alias column list (`AS t(a, b)`) or a type in `CAST(x AS numeric(10, 2))`.
                    (Kw::As | Kw::Ordinality, _) => true,
                    (Kw::With | Kw::Recursive, _) => self.in_cte_list(),
                    (Kw::Grouping, Kw::Sets) => true,
                    // `ORDER BY (`, `GROUP BY (`, `PARTITION BY (`.
                    (Kw::Group | Kw::OrderOrPartition, Kw::By) => true,
                    // `character varying(3)`, `bit varying(8)`: a type.
                    (Kw::CharacterType, Kw::Varying) => true,
                    // `GROUP BY ROLLUP (`; elsewhere (`ORDER BY rollup(1)`) a call.
                    (Kw::By, Kw::Rollup | Kw::Cube) => self.prev_keyword(src, 2) == Kw::Group,
                    // `AS NOT MATERIALIZED (`; `SELECT NOT materialized(1)` is a call.
                    (Kw::Not, Kw::Materialized) => self.prev_keyword(src, 2) == Kw::As,
                    // `TABLESAMPLE system (` names a sampling method, not a function.
                    (Kw::Tablesample, _) => {
                        name_token.kind == Kind::Word && names::is_tablesample_method(name)
                    }
                    // `t JOIN (`, `LEFT JOIN (`.
                    (Kw::JoinModifier, Kw::ClauseOrCall) if name_kw_is_join(name) => true,
                    // `x LIKE (`: an operator only after something that ends an expression (a
                    // plain name, `NULL`, ...). After any other keyword (`FETCH FIRST like(`,
                    // `SIMILAR TO like(`) an expression may start, so it is a call.
                    (_, Kw::ClauseOrCall) => ends_expression(&src[before.start..before.end]),
                    _ => false,
                }
            }
            Kind::Quoted | Kind::Str | Kind::Number | Kind::Param => name_kw == Kw::ClauseOrCall,
            _ => false,
        }
    }
}

/// `true` if `name` (lowercase) is `join`.
fn name_kw_is_join(name: &[u8]) -> bool {
    name == b"join"
}

/// `true` if the word `word` ends an expression, so that a following `LIKE (` is an operator: a
/// name that is no keyword of the server (a column or alias), or a keyword that is a complete
/// value. Any other keyword may be followed by an expression.
fn ends_expression(word: &[u8]) -> bool {
    let mut buf = [0u8; 64];
    let Some(word) = names::lowercase(word, &mut buf) else {
        return true;
    };
    !names::is_sql_keyword(word)
        || matches!(
            word,
            b"null"
                | b"true"
                | b"false"
                | b"current_date"
                | b"current_time"
                | b"current_timestamp"
                | b"localtime"
                | b"localtimestamp"
                | b"current_user"
                | b"current_role"
                | b"current_catalog"
                | b"session_user"
                | b"user"
        )
}

/// The name an identifier token stands for: lowercased if unquoted, verbatim if quoted. `None`
/// for names too long to be a function and for `U&"..."` or `""`-escaped names.
fn ident<'b>(token: Token, src: &[u8], buf: &'b mut [u8; 64]) -> Option<&'b [u8]> {
    let text = &src[token.start..token.end];
    match token.kind {
        Kind::Word => names::lowercase(text, buf),
        Kind::Quoted if text.first() == Some(&b'"') && text.len() >= 2 => {
            let inner = &text[1..text.len() - 1];
            if inner.contains(&b'"') {
                return None;
            }
            let out = buf.get_mut(..inner.len())?;
            out.copy_from_slice(inner);
            Some(out)
        }
        _ => None,
    }
}

/// Reads routing hints from the comments before the first token. Returns the hint and the offset
/// where the statement text starts.
fn leading_hint(src: &[u8]) -> Result<(Option<Hint>, usize), ClassifyError> {
    let mut hint = None;
    let mut i = 0;
    loop {
        while i < src.len() && lexer::is_space(src[i]) {
            i += 1;
        }
        let rest = &src[i..];
        let (body, end) = if rest.starts_with(b"--") {
            let end = lexer::skip_line_comment(src, i + 2);
            (&src[i + 2..end], end)
        } else if rest.starts_with(b"/*") {
            match lexer::skip_block_comment(src, i) {
                Some(end) => (&src[i + 2..end - 2], end),
                // Unterminated: the lexer reports it.
                None => break,
            }
        } else {
            break;
        };
        if let Some(h) =
            parse_hint(body).map_err(|()| ClassifyError::MalformedHint { offset: i })?
        {
            if hint.is_some_and(|old| old != h) {
                return Err(ClassifyError::ConflictingHints);
            }
            hint = Some(h);
        }
        i = end;
    }
    Ok((hint, i))
}

/// `Ok(None)` for an ordinary comment, `Ok(Some(_))` for a hint, `Err` for a comment that starts
/// with `seawall` but is not a valid hint.
fn parse_hint(body: &[u8]) -> Result<Option<Hint>, ()> {
    let body = body.trim_ascii();
    const PREFIX: &[u8] = b"seawall";
    let is_hint = body.len() >= PREFIX.len()
        && body[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
        && body
            .get(PREFIX.len())
            .is_none_or(|&c| c == b':' || lexer::is_space(c));
    if !is_hint {
        return Ok(None);
    }
    let value = match body[PREFIX.len()..].strip_prefix(b":") {
        Some(value) => value.trim_ascii(),
        None => return Err(()),
    };
    if value.eq_ignore_ascii_case(b"primary") {
        Ok(Some(Hint::Primary))
    } else if value.eq_ignore_ascii_case(b"replica") {
        Ok(Some(Hint::Replica))
    } else {
        Err(())
    }
}

/// What `sql` does to the session's transaction, judged by its last transaction-control
/// statement: `Some(true)` opens one (`BEGIN`, `START TRANSACTION`), `Some(false)` ends it
/// (`COMMIT`, `END`, `ROLLBACK` without `TO`, `ABORT`, `PREPARE TRANSACTION`), `None` neither.
pub(crate) fn transaction_control(sql: &str) -> Option<bool> {
    let src = sql.as_bytes();
    let mut lexer = Lexer::new(src, 0, false);
    let mut effect = None;
    // Position within the current statement, and its first word.
    let mut index = 0usize;
    let mut first: &[u8] = b"";
    while let Some(token) = lexer.next_token() {
        match token.kind {
            Kind::Punct(b';') => {
                index = 0;
                continue;
            }
            Kind::Unterminated => break,
            Kind::Word => {
                let word = &src[token.start..token.end];
                let is = |kw: &str| word.eq_ignore_ascii_case(kw.as_bytes());
                match index {
                    0 => {
                        first = word;
                        if is("begin") || is("start") {
                            effect = Some(true);
                        } else if is("commit") || is("end") || is("abort") || is("rollback") {
                            effect = Some(false);
                        }
                    }
                    // `ROLLBACK TO SAVEPOINT` keeps the transaction; `PREPARE TRANSACTION`
                    // hands it to two-phase commit.
                    1 if first.eq_ignore_ascii_case(b"rollback") && is("to") => {
                        effect = Some(true);
                    }
                    1 if first.eq_ignore_ascii_case(b"prepare") && is("transaction") => {
                        effect = Some(false);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        index += 1;
    }
    effect
}

#[cfg(test)]
mod transaction_tests {
    use super::transaction_control;

    #[test]
    fn transaction_control_follows_the_last_statement() {
        for (sql, expected) in [
            ("BEGIN", Some(true)),
            ("start transaction isolation level serializable", Some(true)),
            ("COMMIT", Some(false)),
            ("end", Some(false)),
            ("ROLLBACK", Some(false)),
            ("ROLLBACK TO SAVEPOINT a", Some(true)),
            ("PREPARE TRANSACTION 'x'", Some(false)),
            ("BEGIN; UPDATE t SET x = 1; COMMIT", Some(false)),
            ("BEGIN; UPDATE t SET x = 1", Some(true)),
            ("SELECT 'BEGIN'", None),
            ("UPDATE t SET x = 1 /* COMMIT */", None),
            ("PREPARE q AS SELECT 1", None),
            ("", None),
        ] {
            assert_eq!(transaction_control(sql), expected, "{sql}");
        }
    }
}
