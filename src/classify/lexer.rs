//! A PostgreSQL lexer reduced to what routing needs: token boundaries.
//!
//! It follows the rules of PostgreSQL's `scan.l` for everything that decides where a token ends
//! (comments nest, `''` doubles a quote, `E'..'` takes backslash escapes, `$tag$` bodies run to the
//! same tag, identifiers may contain `$`, numbers stop before letters), because a write is hidden
//! exactly where a lexer disagrees with the server about where a literal ends. It never allocates,
//! never recurses and never slices a `&str`, so it cannot panic on any input.

/// What a token is; the text is `src[start..end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Unquoted identifier or keyword.
    Word,
    /// `"quoted identifier"` or `U&"..."`.
    Quoted,
    /// Any string literal, including dollar-quoted bodies.
    Str,
    /// Numeric literal.
    Number,
    /// Positional parameter `$1`.
    Param,
    /// One byte of punctuation or operator.
    Punct(u8),
    /// A quote, quoted identifier, dollar body or comment that never ends. The lexer stops here.
    Unterminated,
}

/// One token: its kind and byte range.
#[derive(Clone, Copy, Debug)]
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
}

const SPACE: u8 = 1;
const IDENT_START: u8 = 2;
const IDENT_CONT: u8 = 4;

/// Byte classes, as in `scan.l`: bytes >= 0x80 are identifier characters, `$` continues one.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            t[b] = SPACE;
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            t[b] = IDENT_START | IDENT_CONT;
        } else if c.is_ascii_digit() || c == b'$' {
            t[b] = IDENT_CONT;
        }
        b += 1;
    }
    t
};

#[inline]
pub(super) fn is_space(b: u8) -> bool {
    class(b) == SPACE
}

/// `true` for bytes that can start an unquoted identifier.
#[inline]
pub(super) fn is_ident_start(b: u8) -> bool {
    class(b) & IDENT_START != 0
}

/// `true` for bytes that can continue an unquoted identifier (including `$`).
#[inline]
pub(super) fn is_ident_cont(b: u8) -> bool {
    class(b) & IDENT_CONT != 0
}

#[inline]
fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

/// How a `'...'` literal treats backslashes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// Backslash is an ordinary character (standard strings, `B''`, `X''`, `U&''`).
    Standard,
    /// Backslash escapes the next byte (`E''`, and plain strings when
    /// `standard_conforming_strings` is off).
    Escape,
    /// A plain `''` or `N''` literal: escaping depends on `standard_conforming_strings`.
    Plain,
}

/// Iterator over the tokens of `src`, skipping whitespace and comments.
pub(super) struct Lexer<'a> {
    src: &'a [u8],
    /// Where the next token is looked for.
    pub(super) pos: usize,
    /// Lex plain strings as if `standard_conforming_strings = off`.
    legacy_strings: bool,
    /// A plain string contained a backslash: its end depends on the server setting.
    pub(super) saw_backslash: bool,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(src: &'a [u8], start: usize, legacy_strings: bool) -> Self {
        Lexer {
            src,
            pos: start,
            legacy_strings,
            saw_backslash: false,
        }
    }

    #[inline]
    pub(super) fn next_token(&mut self) -> Option<Token> {
        let s = self.src;
        let mut i = self.pos;
        loop {
            while i < s.len() && class(s[i]) == SPACE {
                i += 1;
            }
            let b = *s.get(i)?;
            let (kind, end) = match b {
                _ if class(b) & IDENT_START != 0 => self.word(i),
                b'\'' => self.string(i + 1, Quote::Plain),
                b'"' => quoted_ident(s, i + 1),
                b'$' => dollar(s, i),
                b'0'..=b'9' => (Kind::Number, number(s, i)),
                b'.' if s.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                    (Kind::Number, number(s, i))
                }
                b'-' if s.get(i + 1) == Some(&b'-') => {
                    i = skip_line_comment(s, i + 2);
                    continue;
                }
                b'/' if s.get(i + 1) == Some(&b'*') => match skip_block_comment(s, i) {
                    Some(end) => {
                        i = end;
                        continue;
                    }
                    None => return Some(self.unterminated(i)),
                },
                _ => (Kind::Punct(b), i + 1),
            };
            if kind == Kind::Unterminated {
                return Some(self.unterminated(i));
            }
            self.pos = end;
            return Some(Token {
                kind,
                start: i,
                end,
            });
        }
    }

    /// An unterminated token ends the input: nothing after it has a defined meaning.
    #[cold]
    fn unterminated(&mut self, start: usize) -> Token {
        self.pos = self.src.len();
        Token {
            kind: Kind::Unterminated,
            start,
            end: self.src.len(),
        }
    }

    /// An identifier, or one of the prefixed literals `E''`, `B''`, `X''`, `N''`, `U&''`, `U&""`.
    #[inline]
    fn word(&mut self, start: usize) -> (Kind, usize) {
        let s = self.src;
        let mut j = start + 1;
        while let Some(&c) = s.get(j) {
            if class(c) & IDENT_CONT == 0 {
                break;
            }
            j += 1;
        }
        if j == start + 1 && j < s.len() {
            let prefix = s[start] | 0x20;
            let after = s[j];
            if after == b'\'' {
                match prefix {
                    b'e' => return self.string(j + 1, Quote::Escape),
                    b'b' | b'x' => return self.string(j + 1, Quote::Standard),
                    b'n' => return self.string(j + 1, Quote::Plain),
                    _ => {}
                }
            } else if prefix == b'u' && after == b'&' {
                match s.get(j + 1) {
                    Some(b'\'') => return self.string(j + 2, Quote::Standard),
                    Some(b'"') => return quoted_ident(s, j + 2),
                    _ => {}
                }
            }
        }
        (Kind::Word, j)
    }

    /// The rest of a `'...'` literal starting at `from` (just after the opening quote).
    fn string(&mut self, from: usize, quote: Quote) -> (Kind, usize) {
        let s = self.src;
        let escapes = match quote {
            Quote::Standard => false,
            Quote::Escape => true,
            Quote::Plain => self.legacy_strings,
        };
        let mut j = from;
        while let Some(p) = s
            .get(j..)
            .and_then(|rest| rest.iter().position(|&c| c == b'\'' || c == b'\\'))
        {
            j += p;
            match s[j] {
                b'\'' if s.get(j + 1) == Some(&b'\'') => j += 2,
                b'\'' => return (Kind::Str, j + 1),
                b'\\' if escapes => j += 2,
                b'\\' => {
                    if quote == Quote::Plain {
                        self.saw_backslash = true;
                    }
                    j += 1;
                }
                _ => j += 1,
            }
        }
        (Kind::Unterminated, s.len())
    }
}

pub(super) fn skip_line_comment(s: &[u8], from: usize) -> usize {
    s[from.min(s.len())..]
        .iter()
        .position(|&c| c == b'\n' || c == b'\r')
        .map_or(s.len(), |p| from + p + 1)
}

/// End of the (nested) block comment opening at `start`, or `None` if it never closes.
pub(super) fn skip_block_comment(s: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = start;
    while j + 1 < s.len() {
        match (s[j], s[j + 1]) {
            (b'/', b'*') => {
                depth += 1;
                j += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => j += 1,
        }
    }
    None
}

/// The rest of a quoted identifier starting at `from` (just after the opening `"`).
fn quoted_ident(s: &[u8], from: usize) -> (Kind, usize) {
    let mut j = from;
    while j < s.len() {
        if s[j] == b'"' {
            if s.get(j + 1) == Some(&b'"') {
                j += 2;
                continue;
            }
            return (Kind::Quoted, j + 1);
        }
        j += 1;
    }
    (Kind::Unterminated, s.len())
}

/// `$1`, a `$tag$ ... $tag$` body, or a lone `$`.
fn dollar(s: &[u8], start: usize) -> (Kind, usize) {
    let mut j = start + 1;
    match s.get(j) {
        Some(c) if c.is_ascii_digit() => {
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            return (Kind::Param, j);
        }
        Some(&c) if class(c) & IDENT_START != 0 => {
            while j < s.len() && class(s[j]) & IDENT_CONT != 0 && s[j] != b'$' {
                j += 1;
            }
        }
        _ => {}
    }
    if s.get(j) != Some(&b'$') {
        return (Kind::Punct(b'$'), start + 1);
    }
    let tag = &s[start..=j];
    let mut k = j + 1;
    while let Some(p) = s[k.min(s.len())..].iter().position(|&c| c == b'$') {
        let at = k + p;
        if s[at..].starts_with(tag) {
            return (Kind::Str, at + tag.len());
        }
        k = at + 1;
    }
    (Kind::Unterminated, s.len())
}

/// A numeric literal: digits, fraction, exponent. It stops before letters, as old servers did
/// (`SELECT 1into t` is `1 INTO t` there).
pub(super) fn number(s: &[u8], start: usize) -> usize {
    let digits = |mut j: usize| {
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let mut j = digits(start);
    if s.get(j) == Some(&b'.') && s.get(j + 1) != Some(&b'.') {
        j = digits(j + 1);
    }
    if matches!(s.get(j), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(s.get(j + 1), Some(b'+' | b'-')));
        if s.get(j + 1 + sign).is_some_and(u8::is_ascii_digit) {
            j = digits(j + 1 + sign);
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(Kind, &str)> {
        let mut lx = Lexer::new(sql.as_bytes(), 0, false);
        let mut out = Vec::new();
        while let Some(t) = lx.next_token() {
            out.push((t.kind, &sql[t.start..t.end]));
        }
        out
    }

    #[test]
    fn literals_and_comments() {
        use Kind::*;
        assert_eq!(
            kinds("a /* x /* y */ z */ 'it''s' E'\\'' $t$ 'x' $t$ \"q\"\"x\" $1 1.5e3 -- c\nb"),
            vec![
                (Word, "a"),
                (Str, "'it''s'"),
                (Str, "E'\\''"),
                (Str, "$t$ 'x' $t$"),
                (Quoted, "\"q\"\"x\""),
                (Param, "$1"),
                (Number, "1.5e3"),
                (Word, "b"),
            ]
        );
        assert_eq!(
            kinds("a$b$ 1into"),
            vec![(Word, "a$b$"), (Number, "1"), (Word, "into")]
        );
        assert_eq!(
            kinds("U&'x' u&\"y\""),
            vec![(Str, "U&'x'"), (Quoted, "u&\"y\"")]
        );
        assert_eq!(kinds("'abc"), vec![(Unterminated, "'abc")]);
        assert_eq!(
            kinds("x /* /* */"),
            vec![(Word, "x"), (Unterminated, "/* /* */")]
        );
    }

    #[test]
    fn legacy_strings_take_backslash_escapes() {
        let sql = br"'a\' , 'b'";
        let mut on = Lexer::new(sql, 0, false);
        assert_eq!(on.next_token().map(|t| t.end), Some(4));
        assert!(on.saw_backslash);
        let mut off = Lexer::new(sql, 0, true);
        assert_eq!(off.next_token().map(|t| t.end), Some(8));
    }
}
