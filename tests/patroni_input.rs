//! Bad input from the HA manager, through `topology::Patroni` and a real HTTP exchange: a fake
//! Patroni REST API on loopback that hangs, fails, answers garbage or lies, and a member list
//! that changes from one request to the next, while a cluster of simulated backends follows it
//! under load. Every fetch fails typed (`TopologyError`), nothing panics, the last leader named
//! stands while the API is unusable, and no write reaches a node that is not both named leader
//! and writable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::cluster::{AcquireOptions, Cluster};
use seawall::failover::HealthConfig;
use seawall::pool::Pool;
use seawall::sim::{SimBackend, SimConnector};
use seawall::topology::{Patroni, TopologyError, TopologySource};
use seawall::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::sleep;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the fake API answers to the next request.
#[derive(Clone, Debug)]
enum Answer {
    /// 200 with this body.
    Json(String),
    /// This status, empty body.
    Status(u16),
    /// 200 with bytes that are not JSON.
    Garbage,
    /// Headers promise more body than is sent, then the connection closes.
    Truncated,
    /// Accepts, never answers.
    Hang,
    /// Alternates between these bodies, one per request (members changing mid-request).
    Flip(Vec<String>),
}

struct FakeApi {
    url: String,
    answer: Arc<Mutex<Answer>>,
    requests: Arc<AtomicU64>,
}

impl FakeApi {
    async fn start(first: Answer) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new(first));
        let requests = Arc::new(AtomicU64::new(0));
        let (a, r) = (answer.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let (a, r) = (a.clone(), r.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let n = r.fetch_add(1, Ordering::Relaxed);
                    let answer = a.lock().unwrap().clone();
                    let reply = |status: &str, body: &str| {
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let text = match answer {
                        Answer::Json(body) => reply("200 OK", &body),
                        Answer::Status(code) => reply(&format!("{code} Oops"), ""),
                        Answer::Garbage => reply("200 OK", "<html>\u{0}\u{1}not json"),
                        Answer::Truncated => "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\
                                              Connection: close\r\n\r\n{\"members\": ["
                            .to_owned(),
                        Answer::Hang => {
                            sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        Answer::Flip(bodies) => reply("200 OK", &bodies[n as usize % bodies.len()]),
                    };
                    let _ = s.write_all(text.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        FakeApi {
            url,
            answer,
            requests,
        }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
}

/// A `/cluster` answer over `members` (name, role).
fn cluster_json(members: &[(&str, &str)]) -> String {
    let members: Vec<String> = members
        .iter()
        .enumerate()
        .map(|(i, (name, role))| {
            format!(
                r#"{{"name": "{name}", "role": "{role}", "state": "running", "host": "127.0.0.1", "port": {}, "timeline": 1}}"#,
                5432 + i
            )
        })
        .collect();
    format!(r#"{{"members": [{}]}}"#, members.join(", "))
}

fn pool(db: &Arc<SimBackend>) -> Pool<SimConnector> {
    Pool::builder(db.connector())
        .name(db.name())
        .max_size(4)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_patroni_answers_are_typed_and_never_move_writes() {
    let dbs: Vec<Arc<SimBackend>> = (0..3)
        .map(|i| {
            SimBackend::builder(format!("n{i}"))
                .primary(i == 0)
                .seed(i as u64 + 3)
                .build()
        })
        .collect();
    let all = cluster_json(&[("n0", "leader"), ("n1", "replica"), ("n2", "replica")]);
    let api = FakeApi::start(Answer::Json(all.clone())).await;
    let source = || Patroni::new([api.url.as_str()]).unwrap().timeout(ms(150));
    let members = dbs.clone();
    let cluster = Cluster::builder()
        .primary("n0", pool(&dbs[0]))
        .replica("n1", pool(&dbs[1]))
        .replica("n2", pool(&dbs[2]))
        .health(
            HealthConfig::default()
                .with_interval(Some(ms(50)))
                .with_timeout(ms(50)),
        )
        .topology(source())
        .topology_interval(ms(20))
        .topology_members(move |m| {
            let db = members.iter().find(|d| d.name() == &*m.name).unwrap();
            Ok(pool(db))
        })
        .acquire_timeout(ms(300))
        .build()
        .unwrap();

    // A steady load: every write must land on n0; reads must not fail.
    let stop = Arc::new(AtomicBool::new(false));
    let wrong = Arc::new(Mutex::new(Vec::<String>::new()));
    let writes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (cluster, stop, wrong, writes) =
            (cluster.clone(), stop.clone(), wrong.clone(), writes.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match cluster.write().await {
                    Ok(mut c) => {
                        c.query("UPDATE t SET x = 1").await.unwrap();
                        if c.node_name() != "n0" {
                            wrong.lock().unwrap().push(c.node_name().to_owned());
                        }
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::NoPrimary { .. }) => {}
                    Err(e) => wrong.lock().unwrap().push(format!("write error {e}")),
                }
                let _ = cluster.read().await;
                sleep(ms(2)).await;
            }
        }));
    }
    sleep(ms(300)).await;
    assert!(
        writes.load(Ordering::Relaxed) > 0,
        "no write before the bad answers"
    );

    // Unusable answers: each fetch fails typed; the leader named last (n0) stands.
    let probe = source();
    for bad in [
        Answer::Status(500),
        Answer::Status(503),
        Answer::Garbage,
        Answer::Truncated,
        Answer::Json(r#"{"members": "n0"}"#.to_owned()),
        Answer::Json(r#"{"members": [{"name": 7}]}"#.to_owned()),
        Answer::Hang,
    ] {
        api.set(bad.clone());
        let fetched = probe.fetch().await;
        assert!(
            matches!(
                fetched,
                Err(TopologyError::Unreachable { .. } | TopologyError::BadAnswer { .. })
            ),
            "{bad:?}: {fetched:?}"
        );
        let before = writes.load(Ordering::Relaxed);
        sleep(ms(250)).await;
        assert!(
            writes.load(Ordering::Relaxed) > before,
            "{bad:?}: writes stopped while the API was unusable"
        );
    }

    // The member list changes from one request to the next (n1 there, then not).
    api.set(Answer::Flip(vec![
        all.clone(),
        cluster_json(&[("n0", "leader"), ("n2", "replica")]),
    ]));
    let before = writes.load(Ordering::Relaxed);
    sleep(ms(600)).await;
    assert!(
        writes.load(Ordering::Relaxed) > before,
        "writes stopped while members came and went"
    );

    // A leader that answers as a replica (n1 named, n1 in recovery): no write anywhere.
    api.set(Answer::Json(cluster_json(&[
        ("n0", "replica"),
        ("n1", "leader"),
        ("n2", "replica"),
    ])));
    sleep(ms(200)).await;
    let frozen = writes.load(Ordering::Relaxed);
    let refused = cluster
        .write_with(AcquireOptions::new().timeout(ms(200)))
        .await
        .map(|c| c.node_name().to_owned());
    assert!(
        matches!(refused, Err(Error::NoPrimary { .. })),
        "{refused:?}"
    );
    sleep(ms(300)).await;
    assert_eq!(
        writes.load(Ordering::Relaxed),
        frozen,
        "a write went through while the named leader was a replica"
    );

    // The truth again.
    api.set(Answer::Json(all));
    sleep(ms(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("a load task panicked");
    }
    let wrong = wrong.lock().unwrap();
    assert!(
        wrong.is_empty(),
        "writes or errors off the leader: {wrong:?}"
    );
    assert!(api.requests.load(Ordering::Relaxed) > 20);
    eprintln!(
        "{} writes, {} API requests",
        writes.load(Ordering::Relaxed),
        api.requests.load(Ordering::Relaxed)
    );
}
