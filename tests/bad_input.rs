//! Hostile and broken input through the SQL front end: `fingerprint`, `normalize` and `classify`
//! must never panic, whatever the bytes, and the normalized text must be a fixed point.
//!
//! Random bytes rarely form SQL, so a second generator strings together fragments chosen to hit
//! the lexer's edges: quotes of every kind, dollar tags, escapes, comment openers, operators,
//! keywords the normalizer treats specially, digits and non-ASCII (and non-UTF-8) bytes.

use proptest::prelude::*;
use seawall::classify::{classify, fingerprint, normalize};

/// Runs everything on `sql` and checks the invariants that hold for any input.
fn check(sql: &[u8]) {
    let text = normalize(sql);
    let fp = fingerprint(sql);
    let _ = classify(&String::from_utf8_lossy(sql));
    let _ = classify(&text);
    assert_eq!(fingerprint(sql), fp, "not deterministic: {sql:?}");
    assert_eq!(normalize(sql), text, "not deterministic: {sql:?}");
    assert_eq!(normalize(&text), text, "not a fixed point: {sql:?}");
    assert_eq!(
        fingerprint(&text),
        fp,
        "fingerprint(normalize(s)) != fingerprint(s): {sql:?}"
    );
}

#[rustfmt::skip]
const FRAGMENTS: &[&[u8]] = &[
    b"'", b"''", b"'x'", b"\"", b"\"\"", b"\"Q\"", b"$", b"$$", b"$a$", b"$1", b"$tag$", b"E'",
    b"E'\\", b"\\", b"\\'", b"U&'", b"u&\"", b"B'", b"X'", b"N'", b"/*", b"*/", b"--", b"\n", b" ",
    b"\t", b";", b",", b"(", b")", b"[", b"]", b".", b":", b"::", b"?", b"?|", b"-", b"+", b"=",
    b">=", b"<>", b"@", b"|", b"*", b"/", b"%", b"SELECT", b"select", b"FROM", b"WHERE", b"VALUES",
    b"values", b"IN", b"AND", b"THEN", b"LIMIT", b"FOR UPDATE", b"DELETE", b"nextval(",
    b"/* seawall:replica */", b"/* seawall:bogus */", b"x", b"T", b"e", b"u", b"1", b"42", b"1.5",
    b".5", b"1e", b"1e-3", b"0x1f", b"\0", "é".as_bytes(), "日本".as_bytes(), "\u{fffd}".as_bytes(),
    b"\xff", b"\xc3",
];

fn fragments() -> impl Strategy<Value = Vec<u8>> {
    // Half of the fragments are followed by a space: `- -1` and `--1` lex differently.
    let part = (prop::sample::select(FRAGMENTS), any::<bool>());
    prop::collection::vec(part, 0..48).prop_map(|parts| {
        let mut sql = Vec::new();
        for (fragment, space) in parts {
            sql.extend_from_slice(fragment);
            if space {
                sql.push(b' ');
            }
        }
        sql
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        check(&bytes);
    }

    #[test]
    fn ascii_soup(text in "[ -~\t\n]{0,512}") {
        check(text.as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn sql_fragments(sql in fragments()) {
        check(&sql);
    }
}

#[test]
fn huge_statement() {
    // 16 MiB: a long IN list, then a long string.
    let mut sql = b"SELECT * FROM t WHERE id IN (1".to_vec();
    while sql.len() < 8 << 20 {
        sql.extend_from_slice(b", 1234567");
    }
    sql.extend_from_slice(b") AND name = '");
    sql.resize(16 << 20, b'x');
    sql.extend_from_slice(b"'");
    assert_eq!(
        normalize(&sql),
        "select * from t where id in (?) and name = ?"
    );
    assert_eq!(
        fingerprint(&sql),
        fingerprint("SELECT * FROM t WHERE id IN (1) AND name = 'x'")
    );
    let sql = String::from_utf8(sql).unwrap();
    assert!(classify(&sql).is_ok());
}

#[test]
fn deeply_nested_comments() {
    let open = "/*".repeat(100_000);
    check(open.as_bytes());
    assert_eq!(normalize(format!("SELECT 1 {open}")), "select ? ?");
    let closed = format!("SELECT 1 {open} x {} , 2", "*/".repeat(100_000));
    assert_eq!(normalize(&closed), "select ?");
    check(closed.as_bytes());
    check(format!("{open} SELECT 1").as_bytes());
}

#[test]
fn unterminated() {
    for (sql, text) in [
        ("SELECT '", "select ?"),
        ("SELECT 'abc", "select ?"),
        ("SELECT \"abc", "select ?"),
        ("SELECT $a$ body", "select ?"),
        ("SELECT $a$ body $b$", "select ?"),
        ("SELECT E'\\", "select ?"),
        ("SELECT E'\\'", "select ?"),
        ("SELECT U&'x", "select ?"),
        ("SELECT 1 /* x", "select ? ?"),
        ("'", "?"),
        ("\"", "?"),
        ("$a$", "?"),
        ("E'\\", "?"),
    ] {
        assert_eq!(normalize(sql), text, "{sql:?}");
        check(sql.as_bytes());
    }
}

#[test]
fn odd_bytes() {
    for sql in [
        &b"$"[..],
        b"SELECT $",
        b"SELECT $ FROM t",
        b"$$",
        b"\0",
        b"SELECT \0 FROM t\0",
        b"\0'\0",
        b"SELECT \xff FROM \"\xfe\"",
        b"\xc3",
        b"-",
        b"--",
        b"/",
        b"/*",
        b"*/",
        b"?",
        b";",
        b"",
    ] {
        check(sql);
    }
    assert_eq!(normalize("SELECT $ FROM t"), "select $ from t");
    assert_eq!(normalize("SELECT \0 FROM t\0"), "select \0 from t \0");
}
