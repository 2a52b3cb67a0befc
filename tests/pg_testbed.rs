//! The PostgreSQL test bed against real servers: replication, failover helpers, cleanup.
//!
//! Each test starts its own cluster: the helpers under test (kill, promote, freeze) change the
//! cluster for good, and cleanup on drop is itself under test.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use seawall::testbed::{PgCluster, StopMode, TestbedError};

/// Whether `pid` has exited (gone, or a zombie waiting to be reaped).
fn exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next();
            matches!(state, Some("Z" | "X"))
        }
    }
}

/// Whether `pid` is stopped by a signal; `None` once it has exited.
fn stopped(pid: u32) -> Option<bool> {
    if exited(pid) {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
    Some(state == "T")
}

/// Live processes whose command line mentions `dir` (every postmaster has `-D <dir>/nI`).
fn live_processes_under(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&needle) && !exited(pid)
        })
        .collect()
}

fn all_pids(cluster: &PgCluster) -> Vec<u32> {
    (0..cluster.len())
        .flat_map(|i| cluster.pids(i).unwrap())
        .collect()
}

fn assert_cleaned_up(dir: &Path, pids: &[u32]) {
    let left: Vec<u32> = pids.iter().copied().filter(|&p| !exited(p)).collect();
    assert!(left.is_empty(), "server processes still running: {left:?}");
    assert!(live_processes_under(dir).is_empty());
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn replicates_fails_over_and_cleans_up() {
    let started = Instant::now();
    let cluster = PgCluster::start(2).unwrap();
    eprintln!("primary + 2 replicas started in {:?}", started.elapsed());
    assert_eq!(cluster.len(), 3);
    assert_eq!(cluster.primary(), 0);
    assert_eq!(cluster.replicas(), vec![1, 2]);

    // Roles and addresses.
    assert_eq!(cluster.query(0, "SELECT pg_is_in_recovery()").unwrap(), "f");
    for i in [1, 2] {
        assert_eq!(cluster.query(i, "SELECT pg_is_in_recovery()").unwrap(), "t");
    }
    let port = cluster.port(0).unwrap();
    assert_eq!(
        cluster.primary_url(),
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    );
    assert_eq!(cluster.replica_urls().len(), 2);
    assert_eq!(
        cluster.query(1, "SHOW port").unwrap(),
        cluster.port(1).unwrap().to_string()
    );

    // Both replicas stream, under their node names.
    let streaming = cluster
        .query(
            0,
            "SELECT string_agg(application_name, ',' ORDER BY application_name) \
             FROM pg_stat_replication WHERE state = 'streaming'",
        )
        .unwrap();
    assert_eq!(streaming, "n1,n2");

    // A write on the primary reaches both replicas; a write on a replica is refused.
    cluster
        .query(0, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .unwrap();
    let t = Instant::now();
    for i in [1, 2] {
        cluster
            .wait_for_value(i, "SELECT count(*) FROM t", "1")
            .unwrap();
    }
    eprintln!("row visible on both replicas after {:?}", t.elapsed());
    match cluster.query(1, "INSERT INTO t VALUES (2)") {
        Err(TestbedError::Command { output, .. }) => {
            assert!(output.contains("read-only transaction"), "{output}")
        }
        other => panic!("write on a replica: {other:?}"),
    }

    // Crash the primary, promote node 1, re-point node 2 at it.
    let old_primary = cluster.pids(0).unwrap();
    assert!(
        old_primary.len() > 1,
        "postmaster and children: {old_primary:?}"
    );
    let t = Instant::now();
    cluster.kill9(0).unwrap();
    assert!(old_primary.iter().all(|&p| exited(p)));
    assert!(!cluster.is_running(0).unwrap());
    assert!(cluster.query(0, "SELECT 1").is_err());
    cluster.promote(1).unwrap();
    eprintln!("kill -9 + promote took {:?}", t.elapsed());
    assert_eq!(cluster.primary(), 1);
    assert_eq!(cluster.replicas(), vec![0, 2]);
    assert_eq!(cluster.primary_url(), cluster.url(1).unwrap());
    assert_eq!(cluster.query(1, "SELECT pg_is_in_recovery()").unwrap(), "f");
    cluster.query(1, "INSERT INTO t VALUES (2)").unwrap();

    let t = Instant::now();
    cluster.follow(2, 1).unwrap();
    cluster.wait_streaming(1).unwrap();
    cluster
        .wait_for_value(2, "SELECT count(*) FROM t", "2")
        .unwrap();
    eprintln!("node 2 follows the new primary after {:?}", t.elapsed());

    // Dropping stops everything and removes the folder.
    let dir: PathBuf = cluster.dir().to_owned();
    let pids = all_pids(&cluster);
    assert!(!live_processes_under(&dir).is_empty());
    let t = Instant::now();
    drop(cluster);
    eprintln!("dropped in {:?}", t.elapsed());
    assert_cleaned_up(&dir, &pids);
}

#[test]
fn stops_restarts_freezes_and_pauses_nodes() {
    let cluster = PgCluster::start(1).unwrap();
    cluster
        .query(0, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .unwrap();
    cluster
        .wait_for_value(1, "SELECT count(*) FROM t", "1")
        .unwrap();

    // Stop and restart a replica: it comes back on its port and catches up.
    cluster.stop_node(1, StopMode::Fast).unwrap();
    assert!(!cluster.is_running(1).unwrap());
    cluster.query(0, "INSERT INTO t VALUES (2)").unwrap();
    cluster.start_node(1).unwrap();
    cluster
        .wait_for_value(1, "SELECT count(*) FROM t", "2")
        .unwrap();
    cluster.wait_streaming(1).unwrap();

    // Crash and restart the primary (crash recovery): committed rows survive.
    cluster.kill9(0).unwrap();
    cluster.start_node(0).unwrap();
    assert_eq!(cluster.query(0, "SELECT count(*) FROM t").unwrap(), "2");

    // Freeze and thaw the replica: every process is stopped, then runs again.
    cluster.wait_streaming(1).unwrap();
    cluster.sigstop(1).unwrap();
    let pids = cluster.pids(1).unwrap();
    assert!(pids.len() > 1, "{pids:?}");
    assert!(pids.iter().all(|&p| stopped(p) == Some(true)), "{pids:?}");
    cluster.sigcont(1).unwrap();
    assert!(pids.iter().all(|&p| stopped(p) != Some(true)), "{pids:?}");
    assert_eq!(cluster.query(1, "SELECT 1").unwrap(), "1");

    // Paused replay: the replica receives but does not apply, until resumed.
    cluster.wait_streaming(1).unwrap();
    cluster.pause_replay(1).unwrap();
    assert_eq!(
        cluster
            .query(1, "SELECT pg_get_wal_replay_pause_state()")
            .unwrap(),
        "paused"
    );
    cluster.query(0, "INSERT INTO t VALUES (3)").unwrap();
    let written = cluster.query(0, "SELECT pg_current_wal_lsn()").unwrap();
    let received = format!("SELECT pg_last_wal_receive_lsn() >= '{written}'");
    cluster.wait_for_value(1, &received, "t").unwrap();
    assert_eq!(cluster.query(1, "SELECT count(*) FROM t").unwrap(), "2");
    cluster.resume_replay(1).unwrap();
    cluster
        .wait_for_value(1, "SELECT count(*) FROM t", "3")
        .unwrap();

    // Bad indices are errors, not panics.
    assert!(matches!(
        cluster.url(7),
        Err(TestbedError::NoSuchNode { index: 7, nodes: 2 })
    ));
    assert!(cluster.kill9(2).is_err());

    // Dropping a cluster with a frozen node still stops it.
    let dir = cluster.dir().to_owned();
    let pids = all_pids(&cluster);
    cluster.sigstop(0).unwrap();
    drop(cluster);
    assert_cleaned_up(&dir, &pids);
}

#[test]
fn a_panicking_test_still_stops_its_servers() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let cluster = PgCluster::start(0).unwrap();
        tx.send((cluster.dir().to_owned(), cluster.pids(0).unwrap()))
            .unwrap();
        panic!("test failure while the cluster runs");
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let (dir, pids) = rx.recv().unwrap();
    assert!(!pids.is_empty());
    assert_cleaned_up(&dir, &pids);
}
