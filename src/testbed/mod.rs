//! A throwaway PostgreSQL 15 cluster for tests: one primary and N streaming replicas, started
//! from nothing in a temporary folder and gone when dropped.
//!
//! seawall's claims (reads spread over replicas, failover, lag-aware routing) are about real
//! replication, which a simulator can only imitate. The test bed makes the real thing cheap
//! enough for every test run: `initdb`, one `pg_basebackup` per replica and three `pg_ctl start`
//! take about one to three seconds on a small machine.
//!
//! ```no_run
//! use seawall::testbed::PgCluster;
//!
//! let cluster = PgCluster::start(2)?;                 // primary + 2 streaming replicas
//! cluster.query(0, "CREATE TABLE t (x int)")?;
//! cluster.query(0, "INSERT INTO t VALUES (1)")?;
//! cluster.wait_for_value(1, "SELECT count(*) FROM t", "1")?;
//! println!("primary at {}", cluster.primary_url());
//! # Ok::<(), seawall::testbed::TestbedError>(())
//! ```
//!
//! # What it sets up
//!
//! * Nodes are numbered from 0; node 0 starts as the primary, nodes `1..=replicas` as replicas.
//!   Indices never change; [`PgCluster::promote`] moves the primary role, and
//!   [`PgCluster::primary`] follows it.
//! * Every server listens on `127.0.0.1` only, on a free port (found by binding port 0), with
//!   trust authentication for user `postgres` and its unix sockets in the cluster's own folder.
//! * The primary runs with `wal_level = replica`, `hot_standby = on`, enough `max_wal_senders`,
//!   `wal_keep_size = 512MB` (no slots: a killed replica never blocks WAL recycling) and
//!   `wal_log_hints = on` (so a failed primary can be rewound). `fsync = off`: the data is
//!   disposable, and a killed *process* loses nothing anyway (the OS keeps its writes).
//! * Replicas come from `pg_basebackup -R -X stream -c fast --no-sync`; each node's
//!   `cluster_name` (`n0`, `n1`, …) is its `application_name` in `pg_stat_replication`.
//! * As root, every server command runs as the `postgres` OS user (`runuser -u postgres --`),
//!   from `/`, with the data folders owned by that user: PostgreSQL refuses to run as root.
//!
//! # Blocking and time
//!
//! The API is synchronous: it drives external processes that live in real time, so its waits
//! use `std::time::Instant` and are bounded (a wait that runs out is a
//! [`TestbedError::Timeout`] carrying the server log). From async tests, call it directly
//! (blocking a test's runtime briefly is harmless) or through `tokio::task::spawn_blocking`.
//! It must not be used under `tokio::time::pause()` expectations: servers do not pause.
//!
//! # Cleaning up
//!
//! Dropping the cluster stops every server it started (`pg_ctl stop -m fast`, then
//! `-m immediate`, then `SIGKILL`; stopped processes are continued first) and removes the
//! folder, also when a test panics, since `Drop` runs during unwinding. A cluster held in a
//! `static` is never dropped: share one through a reference count instead (see the crate's
//! `tests/sqlx_pool.rs`).

mod error;
mod process;

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use error::TestbedError;

use process::{is_alive, log_tail, postmaster_pid, process_tree, signal, wait_gone, Runner};

/// How long a server may take to start or stop, and replicas to begin streaming.
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `psql` call may take (a frozen server must not hang a test forever).
const QUERY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a `SIGSTOP` / `SIGCONT` may take to take effect.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at starting a server when its port was taken between finding and binding it.
const PORT_ATTEMPTS: usize = 3;

/// How [`PgCluster::stop_node`] shuts a server down (`pg_ctl stop -m ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Wait for every client to disconnect.
    Smart,
    /// Disconnect clients, roll back their transactions, checkpoint, exit.
    Fast,
    /// Exit at once without a checkpoint, like a crash; recovery runs at the next start.
    Immediate,
}

impl StopMode {
    fn as_arg(self) -> &'static str {
        match self {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// One server of the cluster.
#[derive(Debug)]
struct Node {
    data: PathBuf,
    log: PathBuf,
    port: u16,
}

/// A running PostgreSQL 15 primary with streaming replicas. See the [module docs](self).
pub struct PgCluster {
    runner: Runner,
    root: PathBuf,
    sockets: PathBuf,
    nodes: Vec<Node>,
    primary: AtomicUsize,
}

impl fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCluster")
            .field("dir", &self.root)
            .field("primary", &self.primary())
            .field(
                "ports",
                &self.nodes.iter().map(|n| n.port).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PgCluster {
    /// Starts a primary and `replicas` streaming replicas, and returns once every server
    /// accepts connections and the primary reports every replica as `streaming`.
    pub fn start(replicas: usize) -> Result<PgCluster, TestbedError> {
        let root = make_root()?;
        let runner = Runner::new(root.clone());
        let runner = match runner {
            Ok(r) => r,
            Err(e) => {
                let _ = fs::remove_dir_all(&root);
                return Err(e);
            }
        };
        // From here on, dropping `cluster` cleans up whatever was started before a failure.
        let mut cluster = PgCluster {
            sockets: root.join("sock"),
            runner,
            root,
            nodes: Vec::new(),
            primary: AtomicUsize::new(0),
        };
        cluster.runner.hand_over(&cluster.root)?;
        create_dir(&cluster.sockets)?;
        cluster.runner.hand_over(&cluster.sockets)?;
        cluster.init_primary(replicas)?;
        for i in 1..=replicas {
            cluster.add_replica(i)?;
        }
        cluster.wait_streaming(replicas)?;
        Ok(cluster)
    }

    fn init_primary(&mut self, replicas: usize) -> Result<(), TestbedError> {
        let node = self.new_node(0);
        let data = path_arg(&node.data);
        self.runner.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            SERVER_TIMEOUT,
            None,
        )?;
        let settings = format!(
            "\n# seawall test bed\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{sockets}'\n\
             wal_level = replica\n\
             hot_standby = on\n\
             max_wal_senders = {senders}\n\
             wal_keep_size = '512MB'\n\
             wal_log_hints = on\n\
             fsync = off\n\
             shared_buffers = '32MB'\n\
             max_connections = 200\n\
             wal_retrieve_retry_interval = '200ms'\n\
             wal_receiver_status_interval = '1s'\n",
            sockets = self.sockets.display(),
            senders = replicas + 4,
        );
        append(&node.data.join("postgresql.conf"), &settings)?;
        fs::write(
            node.data.join("pg_hba.conf"),
            "local all all trust\n\
             local replication all trust\n\
             host all all 127.0.0.1/32 trust\n\
             host replication all 127.0.0.1/32 trust\n",
        )
        .map_err(|e| TestbedError::io("write pg_hba.conf", e))?;
        self.nodes.push(node);
        self.start_fresh(0)
    }

    fn add_replica(&mut self, i: usize) -> Result<(), TestbedError> {
        let node = self.new_node(i);
        let primary_port = self.nodes[0].port.to_string();
        let data = path_arg(&node.data);
        self.runner.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port,
                "-U",
                "postgres",
                "-D",
                &data,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            SERVER_TIMEOUT,
            Some(&self.nodes[0].log),
        )?;
        self.nodes.push(node);
        self.start_fresh(i)
    }

    fn new_node(&self, i: usize) -> Node {
        Node {
            data: self.root.join(format!("n{i}")),
            log: self.root.join(format!("n{i}.log")),
            port: 0,
        }
    }

    /// First start of node `i`: picks a free port, appends it (the last setting wins, which
    /// also overrides the port a replica's copied configuration inherited) and starts. Another
    /// process may grab the port between finding and binding it: then it tries another.
    fn start_fresh(&mut self, i: usize) -> Result<(), TestbedError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let node = &mut self.nodes[i];
            node.port = port;
            append(
                &node.data.join("postgresql.conf"),
                &format!("port = {port}\ncluster_name = 'n{i}'\n"),
            )?;
            match self.start_node(i) {
                Err(e) if attempt < PORT_ATTEMPTS && port_taken(&self.nodes[i].log) => {
                    tracing::debug!(node = i, port, error = %e, "port taken; trying another");
                }
                other => return other,
            }
        }
    }

    /// The number of nodes (primary and replicas).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never true for a started cluster).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The index of the current primary: 0 until [`PgCluster::promote`] moves it.
    pub fn primary(&self) -> usize {
        self.primary.load(Ordering::Acquire)
    }

    /// The indices of every node but the current primary.
    pub fn replicas(&self) -> Vec<usize> {
        let primary = self.primary();
        (0..self.len()).filter(|&i| i != primary).collect()
    }

    /// The TCP port of node `i`.
    pub fn port(&self, i: usize) -> Result<u16, TestbedError> {
        Ok(self.node(i)?.port)
    }

    /// The connection URL of node `i`: `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self, i: usize) -> Result<String, TestbedError> {
        Ok(url_for(self.node(i)?.port))
    }

    /// The URL of the current primary.
    pub fn primary_url(&self) -> String {
        url_for(self.nodes[self.primary()].port)
    }

    /// The URLs of every node but the current primary.
    pub fn replica_urls(&self) -> Vec<String> {
        self.replicas()
            .into_iter()
            .map(|i| url_for(self.nodes[i].port))
            .collect()
    }

    /// The cluster's temporary folder (data, logs, sockets); removed on drop.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The data folder of node `i`.
    pub fn data_dir(&self, i: usize) -> Result<&Path, TestbedError> {
        Ok(&self.node(i)?.data)
    }

    /// Creates login role `role` with `password` on node `i`, whose connections over TCP must
    /// then give that password (scram-sha-256; every other user keeps trust authentication).
    pub fn add_password_role(
        &self,
        i: usize,
        role: &str,
        password: &str,
    ) -> Result<(), TestbedError> {
        self.query(
            i,
            &format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        )?;
        let hba = self.data_dir(i)?.join("pg_hba.conf");
        let rules =
            std::fs::read_to_string(&hba).map_err(|e| TestbedError::io("read pg_hba.conf", e))?;
        std::fs::write(
            &hba,
            format!("host all {role} 127.0.0.1/32 scram-sha-256\n{rules}"),
        )
        .map_err(|e| TestbedError::io("write pg_hba.conf", e))?;
        self.query(i, "SELECT pg_reload_conf()")?;
        Ok(())
    }

    /// The server log of node `i`.
    pub fn log_path(&self, i: usize) -> Result<&Path, TestbedError> {
        Ok(&self.node(i)?.log)
    }

    /// The running processes of node `i`: its postmaster and every child (backends, WAL
    /// sender/receiver, checkpointer, ...). Empty when the node is down.
    pub fn pids(&self, i: usize) -> Result<Vec<u32>, TestbedError> {
        let node = self.node(i)?;
        Ok(match postmaster_pid(&node.data) {
            Some(pid) if is_alive(pid) => process_tree(pid),
            _ => Vec::new(),
        })
    }

    /// Whether node `i`'s postmaster is running (it may still be frozen by
    /// [`PgCluster::sigstop`]).
    pub fn is_running(&self, i: usize) -> Result<bool, TestbedError> {
        Ok(!self.pids(i)?.is_empty())
    }

    fn node(&self, i: usize) -> Result<&Node, TestbedError> {
        self.nodes.get(i).ok_or(TestbedError::NoSuchNode {
            index: i,
            nodes: self.nodes.len(),
        })
    }

    /// Runs `sql` on node `i` with `psql` and returns its output, unaligned and without
    /// headers (`-At`): one line per row, columns separated by `|`. Several statements in one
    /// string run as one implicit transaction.
    pub fn query(&self, i: usize, sql: &str) -> Result<String, TestbedError> {
        let node = self.node(i)?;
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=5",
            node.port
        );
        let out = self.runner.run(
            "psql",
            &[
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &conninfo,
                "-c",
                sql,
            ],
            QUERY_TIMEOUT,
            None,
        )?;
        Ok(out.trim_end_matches('\n').to_owned())
    }

    /// Polls `sql` on node `i` until it returns `expected` (for example a row count on a
    /// replica after a write on the primary), within 30 s. Query errors count as "not yet":
    /// a node may still be starting.
    pub fn wait_for_value(&self, i: usize, sql: &str, expected: &str) -> Result<(), TestbedError> {
        let started = Instant::now();
        loop {
            let last = self.query(i, sql);
            if matches!(&last, Ok(v) if v == expected) {
                return Ok(());
            }
            if started.elapsed() >= SERVER_TIMEOUT {
                let last = match last {
                    Ok(v) => format!("last value: {v:?}"),
                    Err(e) => format!("last error: {e}"),
                };
                return Err(TestbedError::Timeout {
                    waiting_for: format!("`{sql}` on node {i} to return {expected:?}"),
                    after: SERVER_TIMEOUT,
                    detail: format!("{last}\n{}", log_tail(&self.nodes[i].log)),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the current primary reports at least `replicas` replicas as `streaming`.
    pub fn wait_streaming(&self, replicas: usize) -> Result<(), TestbedError> {
        let primary = self.primary();
        let sql = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
        let started = Instant::now();
        loop {
            let last = self.query(primary, sql);
            if let Ok(n) = &last {
                if n.parse::<usize>().is_ok_and(|n| n >= replicas) {
                    return Ok(());
                }
            }
            if started.elapsed() >= SERVER_TIMEOUT {
                let logs: Vec<String> = self.nodes.iter().map(|n| log_tail(&n.log)).collect();
                return Err(TestbedError::Timeout {
                    waiting_for: format!("{replicas} streaming replicas on node {primary}"),
                    after: SERVER_TIMEOUT,
                    detail: format!("last answer: {last:?}\n{}", logs.join("\n")),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts node `i` (after a stop or a kill) on its own port, and waits until it accepts
    /// connections (read-only ones, for a replica).
    pub fn start_node(&self, i: usize) -> Result<(), TestbedError> {
        let node = self.node(i)?;
        self.clear_stale_locks(node);
        let timeout = SERVER_TIMEOUT.as_secs().to_string();
        self.runner.run(
            "pg_ctl",
            &[
                "start",
                "-D",
                &path_arg(&node.data),
                "-l",
                &path_arg(&node.log),
                "-w",
                "-t",
                &timeout,
            ],
            SERVER_TIMEOUT + Duration::from_secs(5),
            Some(&node.log),
        )?;
        Ok(())
    }

    /// Stops node `i` with `pg_ctl stop -m MODE` and waits until it has exited. A node frozen
    /// by [`PgCluster::sigstop`] is continued first.
    pub fn stop_node(&self, i: usize, mode: StopMode) -> Result<(), TestbedError> {
        self.sigcont(i)?;
        self.pg_ctl_stop(self.node(i)?, mode, SERVER_TIMEOUT)
    }

    fn pg_ctl_stop(
        &self,
        node: &Node,
        mode: StopMode,
        timeout: Duration,
    ) -> Result<(), TestbedError> {
        let secs = timeout.as_secs().max(1).to_string();
        self.runner.run(
            "pg_ctl",
            &[
                "stop",
                "-D",
                &path_arg(&node.data),
                "-m",
                mode.as_arg(),
                "-w",
                "-t",
                &secs,
            ],
            timeout + Duration::from_secs(5),
            Some(&node.log),
        )?;
        Ok(())
    }

    /// Kills node `i` like a crash: `SIGKILL` to the postmaster and all its children at once,
    /// then waits until they are gone. [`PgCluster::start_node`] brings it back (with crash
    /// recovery).
    pub fn kill9(&self, i: usize) -> Result<(), TestbedError> {
        let pids = self.pids(i)?;
        signal(&pids, "KILL")?;
        wait_gone(&pids, SERVER_TIMEOUT)?;
        self.clear_stale_locks(self.node(i)?);
        Ok(())
    }

    /// Freezes node `i` (postmaster and children) with `SIGSTOP`: connections stay open but
    /// nothing answers, like a hung machine. Returns once every process is stopped. Undo with
    /// [`PgCluster::sigcont`].
    pub fn sigstop(&self, i: usize) -> Result<(), TestbedError> {
        self.freeze(i, true)
    }

    /// Resumes a node frozen by [`PgCluster::sigstop`] (harmless on a running node).
    pub fn sigcont(&self, i: usize) -> Result<(), TestbedError> {
        self.freeze(i, false)
    }

    fn freeze(&self, i: usize, stop: bool) -> Result<(), TestbedError> {
        match postmaster_pid(&self.node(i)?.data) {
            Some(pid) if is_alive(pid) => process::freeze(pid, stop, SIGNAL_TIMEOUT),
            _ => Ok(()),
        }
    }

    /// Promotes replica `i` to primary (`SELECT pg_promote()`), waits until it accepts writes,
    /// and makes it the cluster's [`PgCluster::primary`]. The other replicas keep following the
    /// old primary until [`PgCluster::follow`] re-points them.
    pub fn promote(&self, i: usize) -> Result<(), TestbedError> {
        let answer = self.query(i, "SELECT pg_promote(true, 30)")?;
        if answer != "t" {
            return Err(TestbedError::Command {
                command: format!("SELECT pg_promote(true, 30) on node {i}"),
                status: None,
                output: format!("returned {answer:?}"),
                log: log_tail(&self.nodes[i].log),
            });
        }
        self.wait_for_value(i, "SELECT pg_is_in_recovery()", "f")?;
        self.primary.store(i, Ordering::Release);
        Ok(())
    }

    /// Re-points replica `i` at node `primary` (`ALTER SYSTEM SET primary_conninfo` and a
    /// configuration reload; the new timeline is followed since `recovery_target_timeline` is
    /// `latest`). Does not wait for streaming: see [`PgCluster::wait_streaming`].
    pub fn follow(&self, i: usize, primary: usize) -> Result<(), TestbedError> {
        let port = self.port(primary)?;
        // ALTER SYSTEM refuses to run inside a transaction block: two separate calls.
        self.query(
            i,
            &format!(
                "ALTER SYSTEM SET primary_conninfo = \
                 'host=127.0.0.1 port={port} user=postgres application_name=n{i}'"
            ),
        )?;
        self.query(i, "SELECT pg_reload_conf()")?;
        Ok(())
    }

    /// Pauses WAL replay on replica `i` (WAL is still received): real, growing lag on demand.
    /// Returns once replay has actually stopped (`pg_get_wal_replay_pause_state()`).
    pub fn pause_replay(&self, i: usize) -> Result<(), TestbedError> {
        self.query(i, "SELECT pg_wal_replay_pause()")?;
        self.wait_for_value(i, "SELECT pg_get_wal_replay_pause_state()", "paused")
    }

    /// Resumes WAL replay on replica `i`.
    pub fn resume_replay(&self, i: usize) -> Result<(), TestbedError> {
        self.query(i, "SELECT pg_wal_replay_resume()").map(drop)
    }

    /// A killed postmaster that nobody reaped yet stays a zombie, and its pid still "exists" for
    /// the lock-file checks of the next start (`postmaster.pid` and the socket's `.lock`);
    /// both files are stale once nothing of it runs.
    fn clear_stale_locks(&self, node: &Node) {
        let socket_lock = self.sockets.join(format!(".s.PGSQL.{}.lock", node.port));
        for lock in [node.data.join("postmaster.pid"), socket_lock] {
            if let Some(pid) = process::lock_owner(&lock) {
                if !is_alive(pid) {
                    let _ = fs::remove_file(&lock);
                }
            }
        }
    }

    /// Stops node `i` whatever it takes: continue, fast stop, immediate stop, `SIGKILL`.
    fn shut_down(&self, node: &Node) {
        let Some(pid) = postmaster_pid(&node.data).filter(|&p| is_alive(p)) else {
            return;
        };
        let _ = process::freeze(pid, false, SIGNAL_TIMEOUT);
        let stopped = self
            .pg_ctl_stop(node, StopMode::Fast, Duration::from_secs(5))
            .or_else(|_| self.pg_ctl_stop(node, StopMode::Immediate, Duration::from_secs(5)));
        if let Err(e) = stopped {
            tracing::warn!(error = %e, "test bed: pg_ctl stop failed; killing the server");
            let pids = process_tree(pid);
            let _ = signal(&pids, "KILL");
            let _ = wait_gone(&pids, Duration::from_secs(5));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Stop the nodes side by side: a fast stop checkpoints, and each takes a moment.
        let this = &*self;
        std::thread::scope(|s| {
            for node in &this.nodes {
                s.spawn(move || this.shut_down(node));
            }
        });
        if let Err(e) = fs::remove_dir_all(&self.root) {
            tracing::warn!(dir = %self.root.display(), error = %e, "test bed: cannot remove folder");
        }
    }
}

fn url_for(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// A fresh folder under the system temp dir, private to this cluster (mode 700).
fn make_root() -> Result<PathBuf, TestbedError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "seawall-pg-{}-{}-{nanos:x}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let root = std::env::temp_dir().join(name);
    create_dir(&root)?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
        .map_err(|e| TestbedError::io(format!("chmod {}", root.display()), e))?;
    Ok(root)
}

fn create_dir(p: &Path) -> Result<(), TestbedError> {
    fs::create_dir(p).map_err(|e| TestbedError::io(format!("create {}", p.display()), e))
}

fn append(path: &Path, text: &str) -> Result<(), TestbedError> {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| TestbedError::io(format!("append to {}", path.display()), e))
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16, TestbedError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| TestbedError::io("find a free port on 127.0.0.1", e))
}

fn port_taken(log: &Path) -> bool {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.contains("could not bind") || text.contains("Address already in use")
}
