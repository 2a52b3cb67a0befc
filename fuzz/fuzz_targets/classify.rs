//! Fuzzes the statement classifier and the fingerprint: no input may panic them, `normalize`
//! is a fixed point, and a statement followed by a write is never read-only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seawall::classify::{classify, fingerprint, normalize, Route, Verdict};

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    if let Ok(c) = classify(&sql) {
        // The route follows the verdict and the hint.
        if c.verdict() == Verdict::Writes {
            assert_eq!(c.route(), Route::Primary, "{sql:?}");
        }
        // Whatever came before (even an unterminated literal), a trailing write is never
        // read-only.
        if let Ok(w) = classify(&format!("{sql}\n; DELETE FROM t")) {
            assert_ne!(w.verdict(), Verdict::ReadOnly, "{sql:?}");
        }
    }
    let _ = fingerprint(data);
    let once = normalize(data);
    let twice = normalize(&once);
    assert_eq!(once, twice, "normalize is not a fixed point for {sql:?}");
});
