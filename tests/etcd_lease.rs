//! The etcd promotion lease on a real etcd (Debian's `etcd-server`, installed by
//! `scripts/test.sh`) and a real PostgreSQL primary with two replicas (issue 11, item 4):
//! compare-and-swap semantics and races through etcd's JSON gateway, typed errors from an
//! unreachable or garbage-speaking store, and two application instances with embedded promotion
//! over one etcd record: after `kill -9` of the primary exactly one replica is promoted and
//! both instances write to it.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seawall::cluster::Cluster;
use seawall::failover::{Etcd, HealthConfig, PromotionConfig, PromotionLease};
use seawall::pool::Pool;
use seawall::sqlx::{PgConnector, PgPromoter};
use seawall::testbed::PgCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A one-member etcd on loopback, in a temporary directory, killed on drop.
struct EtcdServer {
    child: Child,
    url: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl EtcdServer {
    fn start() -> EtcdServer {
        let binary = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect(
                "etcd is not installed: run scripts/test.sh (it installs Debian's etcd-server)",
            );
        let dir = std::env::temp_dir().join(format!("seawall-etcd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let child = Command::new(binary)
            .args(["--name", "lease", "--data-dir"])
            .arg(dir.join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &format!("lease=http://127.0.0.1:{peer}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        let server = EtcdServer {
            child,
            url,
            _dir: TempDir(dir),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(server.url.trim_start_matches("http://")).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "etcd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn key(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "/seawall-test/{}/{name}/{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test]
async fn etcd_records_the_primary_with_compare_and_swap() {
    let etcd = EtcdServer::start();
    let record = Etcd::new([&etcd.url], key("cas")).unwrap();
    // etcd answers once it is ready; the first calls may find it still starting.
    let started = Instant::now();
    while record.primary().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(record.primary().await.unwrap(), None);
    assert!(record.swap(None, "n0").await.unwrap());
    assert!(!record.swap(None, "n1").await.unwrap(), "created twice");
    assert!(
        !record.swap(Some("n1"), "n2").await.unwrap(),
        "swapped from a wrong value"
    );
    assert_eq!(record.primary().await.unwrap().as_deref(), Some("n0"));
    assert!(record.swap(Some("n0"), "n1").await.unwrap());
    assert_eq!(record.primary().await.unwrap().as_deref(), Some("n1"));

    // A race of 16 instances (each its own client) from the same expected value: one wins.
    let mut racers = Vec::new();
    for i in 0..16 {
        let racer = Etcd::new([&etcd.url], record.key()).unwrap();
        racers.push(tokio::spawn(async move {
            racer.swap(Some("n1"), &format!("c{i}")).await.unwrap()
        }));
    }
    let mut won = 0;
    for r in racers {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 1, "winners of one swap");
    let holder = record.primary().await.unwrap().unwrap();
    assert!(holder.starts_with('c'), "{holder}");

    // An unreachable first endpoint: the next one answers.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let both = Etcd::new([dead.as_str(), etcd.url.as_str()], record.key()).unwrap();
    assert_eq!(both.primary().await.unwrap(), Some(holder));
}

#[tokio::test]
async fn an_unreachable_or_garbled_store_is_a_typed_error() {
    // Nothing listens.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let record = Etcd::new([&dead], "/k").unwrap();
    let started = Instant::now();
    let err = record.primary().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.to_string().contains(&dead), "{err}");

    // Answers that are not etcd's: HTML, JSON without a header, a hang.
    for answer in [
        "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n<html/>!!",
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy",
        "",
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let reply = answer.to_owned();
        let server = tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    if reply.is_empty() {
                        tokio::time::sleep(Duration::from_secs(30)).await; // hangs
                    }
                    let _ = socket.write_all(reply.as_bytes()).await;
                    // Read what the client still sends (a body after the headers) before
                    // closing: closing with unread data resets the connection, and the client
                    // would see the reset instead of the answer under test.
                    let _ = socket.shutdown().await;
                    let drain =
                        async { while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {} };
                    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
                });
            }
        });
        let record = Etcd::new([&url], "/k")
            .unwrap()
            .timeout(Duration::from_millis(300));
        let started = Instant::now();
        let read = record.primary().await.unwrap_err();
        let swap = record.swap(Some("a"), "b").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{answer:?}");
        for err in [read, swap] {
            assert!(err.to_string().contains(&url), "{err}");
            let text = err.to_string();
            let why = ["bad answer", "HTTP 503", "no answer within"];
            assert!(why.iter().any(|w| text.contains(w)), "{answer:?}: {text}");
        }
        server.abort();
    }
}

fn pool(pg: &PgCluster, i: usize) -> Pool<PgConnector> {
    Pool::builder(PgConnector::from_url(&pg.url(i).unwrap()).unwrap())
        .name(format!("n{i}"))
        .max_size(4)
        .build()
        .unwrap()
}

#[tokio::test]
async fn two_instances_with_one_etcd_record_promote_one_replica() {
    let etcd = EtcdServer::start();
    let pg = Arc::new(
        tokio::task::spawn_blocking(|| PgCluster::start(2).unwrap())
            .await
            .unwrap(),
    );
    pg.query(
        0,
        "CREATE TABLE orders (id bigserial PRIMARY KEY, by_instance int)",
    )
    .unwrap();
    let record_key = key("fleet");
    let instance = |pg: &PgCluster| {
        Cluster::builder()
            .primary("n0", pool(pg, 0))
            .replica("n1", pool(pg, 1))
            .replica("n2", pool(pg, 2))
            .health(HealthConfig::aggressive().with_timeout(Duration::from_millis(300)))
            .auto_failover(
                PgPromoter::new(Duration::from_secs(10)),
                PromotionConfig::aggressive(),
            )
            .promotion_lease(Etcd::new([&etcd.url], record_key.as_str()).unwrap())
            .acquire_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let instances = [instance(&pg), instance(&pg)];
    // Both write; each write says which server took it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (k, cluster) in instances.iter().enumerate() {
        let (cluster, stop) = (cluster.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut last_ok: Option<(String, Instant)> = None;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut conn) = cluster.write().await {
                    let node = conn.node_name().to_owned();
                    let ok = sqlx::query("INSERT INTO orders (by_instance) VALUES ($1)")
                        .bind(k as i32)
                        .execute(&mut *conn)
                        .await;
                    if let Err(e) = &ok {
                        conn.report_error(e);
                    } else {
                        last_ok = Some((node, Instant::now()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            last_ok
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let record = Etcd::new([&etcd.url], record_key.as_str()).unwrap();
    assert_eq!(record.primary().await.unwrap().as_deref(), Some("n0"));

    let killed = Instant::now();
    let pg2 = pg.clone();
    tokio::task::spawn_blocking(move || pg2.kill9(0).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    let mut last = Vec::new();
    for t in tasks {
        last.push(t.await.unwrap());
    }
    let recorded = record.primary().await.unwrap().unwrap();
    let primaries: Vec<usize> = [1, 2]
        .into_iter()
        .filter(|&i| pg.query(i, "SELECT pg_is_in_recovery()").unwrap().trim() == "f")
        .collect();
    eprintln!(
        "etcd fleet: record {recorded}, promoted {primaries:?}, last writes {last:?} ({:?} after the kill)",
        last.iter()
            .flatten()
            .map(|(_, at)| at.duration_since(killed))
            .collect::<Vec<_>>()
    );
    assert_eq!(primaries.len(), 1, "exactly one replica promoted");
    assert_eq!(recorded, format!("n{}", primaries[0]));
    for (k, l) in last.iter().enumerate() {
        let (node, at) = l.as_ref().expect("the instance wrote");
        assert_eq!(
            node, &recorded,
            "instance {k} writes to the recorded primary"
        );
        assert!(
            at.duration_since(killed) > Duration::from_secs(5),
            "instance {k} stopped writing"
        );
    }
    for c in &instances {
        c.close().await;
    }
}
