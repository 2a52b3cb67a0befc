//! Plain `cargo test` builds without the `sqlx` and `testbed` features, and every suite on real
//! PostgreSQL (`sqlx_pool`, `sqlx_cluster`, `chaos`, `pgbouncer`, `pg_testbed`) is then left out
//! of the build, silently. This test makes that loud: it fails, naming the command that runs
//! everything, unless the skip is asked for by name (`SEAWALL_SKIP_PG=1`).

#[cfg(not(all(feature = "sqlx", feature = "testbed")))]
#[test]
fn real_postgresql_suites_are_not_skipped_silently() {
    if std::env::var_os("SEAWALL_SKIP_PG").is_some() {
        eprintln!(
            "NOTICE: SEAWALL_SKIP_PG is set: the suites on real PostgreSQL were not built \
             (run `scripts/test.sh` or `cargo test --all-features` for the whole suite)"
        );
        return;
    }
    panic!(
        "the suites on real PostgreSQL need the `sqlx` and `testbed` features and were skipped: \
         run `scripts/test.sh` (or `cargo test --all-features`) for the whole suite, or set \
         SEAWALL_SKIP_PG=1 to skip them knowingly"
    );
}
