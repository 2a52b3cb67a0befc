//! seawall in front of PgBouncer in transaction pooling mode, in front of the test bed's
//! primary and replica.
//!
//! Needs the `pgbouncer` binary (Debian package `pgbouncer`, which `scripts/test.sh`
//! installs); without it the test says so and passes without running.
//!
//! # Prepared statements under transaction pooling
//!
//! PgBouncer in transaction mode gives a client a server connection for one transaction at a
//! time. sqlx runs a parameterized query in two protocol steps (Parse + Describe + Sync, then
//! Bind + Execute + Sync), and caches named statements per client connection. Outside a
//! transaction each step may land on a different server connection, so:
//!
//! * PgBouncer **>= 1.21** with `max_prepared_statements > 0` tracks protocol-level prepared
//!   statements and prepares them on whichever server a client lands on: sqlx works as is.
//!   The test configures it when the installed version has it.
//! * **Older** PgBouncer (Debian 12 ships 1.18): parameterized queries must run inside an
//!   explicit transaction (which pins one server) and with `persistent(false)` (no named
//!   statement outlives it); statements without parameters can use `sqlx::raw_sql` (simple
//!   protocol: one message, one round trip) anywhere. The workload below sticks to that, so it
//!   runs on any version; on >= 1.21 it also runs persistent statements outside transactions.
//!   seawall's own session reset and `current_position` are simple-protocol queries.
//!
//! The session reset still matters under transaction pooling: a borrower that leaves a
//! transaction open keeps a server connection pinned (and its locks held) until its client
//! connection sends `ROLLBACK`, which the reset does on return.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seawall::cluster::{Cluster, Role};
use seawall::pool::{CheckoutTest, Pool};
use seawall::sqlx::PgConnector;
use seawall::testbed::PgCluster;
use sqlx::{Connection, PgConnection, Row};

/// The `pgbouncer` binary, if installed.
fn pgbouncer_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|bin| bin.is_file())
}

/// `(major, minor)` from `pgbouncer --version` ("PgBouncer 1.18.0").
fn version(bin: &Path) -> (u32, u32) {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .expect("pgbouncer --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let number = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected version text {text:?}"));
    let mut parts = number.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A running PgBouncer, stopped and its folder removed when dropped.
struct Bouncer {
    dir: PathBuf,
    port: u16,
}

impl Bouncer {
    fn start(bin: &Path, databases: &[(&str, u16)], protocol_prepared: bool) -> Bouncer {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("seawall-pgbouncer-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bouncer = Bouncer { dir, port };
        let dir = &bouncer.dir;
        let dbs: String = databases
            .iter()
            .map(|(name, port)| format!("{name} = host=127.0.0.1 port={port} dbname=postgres\n"))
            .collect();
        let prepared = if protocol_prepared {
            "max_prepared_statements = 100\n"
        } else {
            ""
        };
        let ini = format!(
            "[databases]\n{dbs}\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\n\
             default_pool_size = 2\nmax_client_conn = 100\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             server_reset_query =\n\
             logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n{prepared}",
            dir = dir.display(),
        );
        fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        let ini = dir.join("pgbouncer.ini");
        // PgBouncer refuses to run as root, like PostgreSQL.
        let status = if is_root() {
            let owned = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir)
                .status()
                .unwrap();
            assert!(owned.success());
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin)
                .arg("-d")
                .arg(&ini)
                .current_dir("/")
                .status()
        } else {
            Command::new(bin).arg("-d").arg(&ini).status()
        }
        .unwrap();
        assert!(
            status.success(),
            "pgbouncer failed to start: {}",
            bouncer.log()
        );
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer not listening: {}",
                bouncer.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            // SIGTERM: immediate shutdown.
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
            let started = Instant::now();
            while self.dir.join("pgbouncer.pid").exists()
                && started.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn pool(name: &str, url: &str) -> Pool<PgConnector> {
    // Behind transaction pooling a backend pid is not this client's to end.
    Pool::builder(PgConnector::from_url(url).unwrap().cancel_abandoned(false))
        .name(name)
        // More clients than PgBouncer has server connections (2): they really share.
        .max_size(4)
        // A ping through PgBouncer on every checkout, to exercise it.
        .checkout_test(CheckoutTest::Always)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `(TimeZone, its UTC offset in seconds, DateStyle, client_encoding)` of the session.
async fn session_settings(conn: &mut PgConnection) -> (String, f64, String, String) {
    let row = sqlx::raw_sql(
        "SELECT current_setting('TimeZone'), \
         extract(timezone FROM now())::float8, \
         current_setting('DateStyle'), current_setting('client_encoding')",
    )
    .fetch_one(conn)
    .await
    .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seawall_through_pgbouncer_in_transaction_mode() {
    let Some(bin) = pgbouncer_binary() else {
        // A missing binary fails the test: CI installs it (scripts/test.sh), and a suite that
        // passes without running is a lie. Skip only when asked to by name.
        if std::env::var_os("SEAWALL_SKIP_PGBOUNCER").is_some() {
            eprintln!(
                "NOTICE: SEAWALL_SKIP_PGBOUNCER is set: seawall_through_pgbouncer_in_transaction_mode \
                 did not run"
            );
            return;
        }
        panic!(
            "no `pgbouncer` binary: install the Debian package `pgbouncer` (scripts/test.sh does), \
             or set SEAWALL_SKIP_PGBOUNCER=1 to skip this test knowingly"
        );
    };
    let (major, minor) = version(&bin);
    let protocol_prepared = (major, minor) >= (1, 21);
    eprintln!(
        "PgBouncer {major}.{minor}: {}",
        if protocol_prepared {
            "max_prepared_statements configured; persistent statements also tested"
        } else {
            "no protocol-level prepared statements (< 1.21): persistent(false) inside transactions"
        }
    );
    let bed = tokio::task::spawn_blocking(|| PgCluster::start(1).expect("start the test bed"))
        .await
        .unwrap();
    let replica = bed.replicas()[0];
    let bouncer = Bouncer::start(
        &bin,
        &[
            ("primary", bed.port(bed.primary()).unwrap()),
            ("replica", bed.port(replica).unwrap()),
        ],
        protocol_prepared,
    );
    bed.query(
        bed.primary(),
        "CREATE TABLE bounced (id int PRIMARY KEY, task int)",
    )
    .unwrap();
    bed.wait_for_value(replica, "SELECT to_regclass('bounced') IS NOT NULL", "t")
        .unwrap();

    let cluster = Cluster::builder()
        .primary("primary", pool("primary", &bouncer.url("primary")))
        .replica("replica", pool("replica", &bouncer.url("replica")))
        // The probe uses persistent prepared statements: not through an old PgBouncer.
        .probe_interval(None)
        .build()
        .unwrap();
    let mut conn = cluster.write().await.unwrap();
    let settings_before = session_settings(&mut conn).await;
    drop(conn);

    // Concurrent writes (parameterized, in transactions) and reads (simple protocol).
    let (tasks, rounds) = (8, 25);
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                for round in 0..rounds {
                    let insert = "INSERT INTO bounced VALUES ($1, $2)";
                    let mut conn = cluster.route(insert).await.unwrap();
                    assert_eq!(conn.role(), Role::Primary);
                    let mut tx = conn.begin().await.unwrap();
                    sqlx::query(insert)
                        .bind(task * 1000 + round)
                        .bind(task)
                        .persistent(false)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    drop(conn);

                    let read = "SELECT pg_is_in_recovery(), count(*) FROM bounced";
                    let mut conn = cluster.route(read).await.unwrap();
                    assert_eq!(conn.role(), Role::Replica);
                    let row = sqlx::raw_sql(read).fetch_one(&mut *conn).await.unwrap();
                    assert!(row.get::<bool, _>(0), "a read reached the primary");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let expected = (tasks * rounds).to_string();
    assert_eq!(
        bed.query(bed.primary(), "SELECT count(*) FROM bounced")
            .unwrap(),
        expected
    );
    bed.wait_for_value(replica, "SELECT count(*) FROM bounced", &expected)
        .unwrap();

    // A parameterized read inside a (read-only) transaction on the replica.
    let mut conn = cluster.read().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM bounced WHERE task = $1")
        .bind(3)
        .persistent(false)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, rounds as i64);
    tx.commit().await.unwrap();
    drop(conn);

    if protocol_prepared {
        // PgBouncer re-prepares tracked statements on whichever server a query lands on.
        for i in 0..20 {
            let mut conn = cluster.read().await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM bounced WHERE task = $1")
                .bind(i % tasks)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(n, rounds as i64);
        }
    }

    // A borrower that leaves a transaction open: the reset rolls it back, which also releases
    // the server connection PgBouncer had pinned to it.
    let mut conn = cluster.write().await.unwrap();
    sqlx::raw_sql("BEGIN; INSERT INTO bounced VALUES (-1, -1); SET LOCAL statement_timeout = '9s'")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = cluster.write().await.unwrap();
        let row = sqlx::raw_sql("SELECT count(*) FROM bounced WHERE id = -1")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(
            row.get::<i64, _>(0),
            0,
            "the open transaction was rolled back"
        );
        assert!(!conn.is_in_transaction());
        // What sqlx relies on survives the reset. Not the exact spelling of the time zone:
        // under transaction pooling `RESET ALL` restores the *server* connection's defaults
        // (here `Etc/UTC`, the server's), not the `UTC` this client asked for at startup, and
        // PgBouncer passes the change on to the client.
        let (zone, offset, datestyle, encoding) = session_settings(&mut conn).await;
        let (zone_before, offset_before, datestyle_before, encoding_before) = &settings_before;
        assert_eq!(
            (offset, &datestyle, &encoding),
            (*offset_before, datestyle_before, encoding_before)
        );
        if &zone != zone_before {
            eprintln!("TimeZone was {zone_before:?} before the reset, {zone:?} after");
        }
        held.push(conn);
    }
    drop(held);

    // Every return was reset and every checkout pinged through PgBouncer, none failed.
    for node in cluster.snapshot().nodes {
        let totals = node.pool.totals;
        eprintln!("{}: {totals:?}", node.name);
        assert_eq!(
            (totals.broken, totals.closed, totals.timed_out),
            (0, 0, 0),
            "{}",
            node.name
        );
        assert!(totals.acquired >= (tasks * rounds) as u64, "{}", node.name);
    }
    let log = bouncer.log();
    assert!(!log.contains("ERROR") && !log.contains("FATAL"), "{log}");
}
