//! The fast path: a single loop for the most common statement, a plain query.
//!
//! Most traffic is simple reads, and the full analysis spends most of its time on bookkeeping
//! that such a statement never needs. This loop accepts only a query (`SELECT`, `WITH`, `VALUES`,
//! `TABLE`) whose every token is one the full analysis ignores: names that cannot be keywords that matter, operators, numbers,
//! parameters, plain strings without backslashes, quoted names, and calls of known read-only
//! built-ins. At the first sign of anything else (a comment, a dollar quote, a `;`, a keyword such
//! as `INTO`, any other call) it gives up and the full analysis runs from the start. So it
//! can only ever say "read-only" for a statement the full analysis also calls read-only; a test
//! checks that on random input. It also settles a query that writes in a way it can see before
//! anything unusual (`SELECT ... FOR UPDATE`, `WITH x AS (DELETE ...)`), with the verdict and
//! reason the full analysis would give.

use super::names::{self, Kw};
use super::{lexer, reason, Verdict};

const OTHER: u8 = 0;
const SPACE: u8 = 1;
const WORD: u8 = 2;
const QUOTE: u8 = 3;
const DOUBLE_QUOTE: u8 = 4;
const DOLLAR: u8 = 5;
const OPEN: u8 = 6;
const DASH: u8 = 7;
const SLASH: u8 = 8;
const SEMICOLON: u8 = 9;
const DOT: u8 = 10;
const DIGIT: u8 = 11;

const ACTION: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => SPACE,
            b'\'' => QUOTE,
            b'"' => DOUBLE_QUOTE,
            b'$' => DOLLAR,
            b'(' => OPEN,
            b'-' => DASH,
            b'/' => SLASH,
            b';' => SEMICOLON,
            b'.' => DOT,
            b'0'..=b'9' => DIGIT,
            _ if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => WORD,
            _ => OTHER,
        };
        b += 1;
    }
    t
};

/// The verdict of the full analysis on `src[start..]` for a plain query: read-only, or a write
/// found before anything unusual (`SELECT ... FOR UPDATE`). `None`: not decided here.
pub(super) fn classify(src: &[u8], start: usize) -> Option<(Verdict, &'static str)> {
    let s = src;
    // Leading parentheses, then a word that starts a query.
    let mut i = start;
    while let Some(&c) = s.get(i) {
        if c != b'(' && !lexer::is_space(c) {
            break;
        }
        i += 1;
    }
    let word_start = i;
    while s.get(i).is_some_and(|&c| lexer::is_ident_cont(c)) {
        i += 1;
    }
    if !matches!(
        names::query_keyword(&s[word_start..i]),
        Kw::Select | Kw::With | Kw::Values | Kw::Table
    ) {
        return None;
    }
    let writes = |reason| Some((Verdict::Writes, reason));
    // The previous token was the word FOR.
    let mut after_for = false;
    // No state but the position: the rare `(` looks back for the name before it.
    while let Some(&b) = s.get(i) {
        let was_for = after_for;
        after_for = false;
        i = match ACTION[usize::from(b)] {
            SPACE => {
                after_for = was_for;
                i + 1
            }
            DOT if dotted_name_is_plain(s, i) => i + 1,
            DOT => return None,
            // `, ` and `= `: skip the space too.
            OTHER if s.get(i + 1) == Some(&b' ') => i + 2,
            OTHER => i + 1,
            // A number ends where the full analysis ends it (`1e5for` is `1e5 for`).
            DIGIT => lexer::number(s, i),
            WORD => {
                let mut j = i + 1;
                while let Some(&c) = s.get(j) {
                    if !lexer::is_ident_cont(c) {
                        // A prefixed literal (`E'..'`, `U&'..'`).
                        if c == b'\'' || c == b'&' {
                            return None;
                        }
                        break;
                    }
                    j += 1;
                }
                // The keywords that matter, decided as the full analysis does. Words that start
                // a query only tell CTE names from calls, and this loop takes no call it does
                // not know.
                match names::query_keyword(&s[i..j]) {
                    Kw::Other | Kw::Select | Kw::With | Kw::Values | Kw::Table => {}
                    Kw::For => after_for = true,
                    Kw::Into => return writes(reason::SELECT_INTO),
                    Kw::Update | Kw::Share | Kw::Key | Kw::No if was_for => {
                        return writes(reason::LOCKING)
                    }
                    Kw::Insert | Kw::Update | Kw::Delete | Kw::Merge => {
                        return writes(reason::NESTED_WRITE)
                    }
                    _ => {}
                }
                // Most words are followed by one space: skip it here rather than dispatch it.
                if s.get(j) == Some(&b' ') {
                    j += 1;
                }
                j
            }
            QUOTE => skip_quoted(s, i + 1, b'\'')?,
            DOUBLE_QUOTE => skip_quoted(s, i + 1, b'"')?,
            DOLLAR if s.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let mut j = i + 2;
                while s.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                j
            }
            OPEN if !call_is_read_only(&s[..i]) => return None,
            OPEN => i + 1,
            DASH if s.get(i + 1) != Some(&b'-') => i + 1,
            SLASH if s.get(i + 1) != Some(&b'*') => i + 1,
            // Comments, dollar quotes, `;`: not for the fast path.
            _ => return None,
        };
    }
    Some((Verdict::ReadOnly, reason::READ))
}

/// `before` is the text up to a `(`. `true` if the `(` opens no call, or the call of a known
/// read-only built-in (unqualified: a qualified name may be anyone's function), or follows a
/// name that follows `)` (`count(*) FILTER (`, `OVER (`: no call can directly follow `)`), as in
/// the full analysis.
#[inline(never)]
fn call_is_read_only(before: &[u8]) -> bool {
    let trimmed = trim_end_space(before);
    let Some(&last) = trimmed.last() else {
        return true;
    };
    if last == b'"' {
        return false;
    }
    if !lexer::is_ident_cont(last) {
        return true;
    }
    let start = trimmed
        .iter()
        .rposition(|&c| !lexer::is_ident_cont(c))
        .map_or(0, |p| p + 1);
    // A run that starts with a digit or `$` may be several tokens (`1x`, `$1x`): leave it to the
    // full analysis.
    if !lexer::is_ident_start(trimmed[start]) {
        return false;
    }
    let mut buf = [0u8; 64];
    let Some(name) = names::lowercase(&trimmed[start..], &mut buf) else {
        return false;
    };
    match trim_end_space(&trimmed[..start]).last() {
        Some(b'.') => false,
        _ if names::is_writer(name) => false,
        Some(b')') => true,
        _ => names::is_known_read_only(name),
    }
}

/// `s[dot]` is a `.`. `true` if what follows is a name that cannot call a function the full
/// analysis cares about: not after `)` (`(x).f` may call `f`), and not a writer's name
/// (`g.pg_advisory_lock` calls it when `g` is a scalar). Out of line, to keep the loop small.
#[inline(never)]
fn dotted_name_is_plain(s: &[u8], dot: usize) -> bool {
    if trim_end_space(&s[..dot]).last() == Some(&b')') {
        return false;
    }
    let mut j = dot + 1;
    while s.get(j).is_some_and(|&c| lexer::is_space(c)) {
        j += 1;
    }
    let name = match s.get(j) {
        Some(&b'"') => {
            let Some(len) = s[j + 1..].iter().position(|&c| c == b'"') else {
                return false;
            };
            &s[j + 1..j + 1 + len]
        }
        Some(&c) if lexer::is_ident_start(c) => {
            let mut k = j + 1;
            while s.get(k).is_some_and(|&c| lexer::is_ident_cont(c)) {
                k += 1;
            }
            &s[j..k]
        }
        _ => return true,
    };
    // Most names (`id`, `email`) have no writer's first letter and length: decided here.
    if !names::may_be_writer(name) {
        return true;
    }
    let mut buf = [0u8; 64];
    match names::lowercase(name, &mut buf) {
        // A quoted name keeps its case: compare it as written.
        Some(lower) if s[j] != b'"' => !names::is_writer(lower),
        Some(_) => !names::is_writer(name),
        None => false,
    }
}

/// The end of a literal or quoted name whose body starts at `from`, with doubled closing quotes
/// as escapes; `None` if it does not end or (for strings) holds a backslash.
fn skip_quoted(s: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut j = from;
    loop {
        let p = s.get(j..)?.iter().position(|&c| c == quote || c == b'\\')?;
        j += p;
        if s[j] == b'\\' {
            if quote == b'\'' {
                return None;
            }
            j += 1;
        } else if s.get(j + 1) == Some(&quote) {
            j += 2;
        } else {
            return Some(j + 1);
        }
    }
}

/// Trims PostgreSQL whitespace (which includes `\v`, unlike `trim_ascii_end`).
fn trim_end_space(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|&c| !lexer::is_space(c))
        .map_or(0, |p| p + 1);
    &s[..end]
}
