//! Patroni's REST API as a topology source: `GET /cluster` on any member's API.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use super::{Member, MemberRole, Topology, TopologyError, TopologySource};
use crate::error::ConfigError;
use crate::http::{self, Endpoints};

/// Largest `/cluster` answer read (a few hundred bytes per member).
const MAX_ANSWER: usize = 1 << 20;

/// Reads the topology from Patroni's REST API: `GET /cluster` on one member's API, falling back
/// to the others in turn; the one that answered last is asked first next time.
///
/// Plain HTTP only (Patroni's API on a private network or loopback); no proxy is used.
///
/// ```
/// use seawall::topology::Patroni;
///
/// let patroni = Patroni::new(["http://10.0.0.1:8008", "http://10.0.0.2:8008"]).unwrap();
/// assert_eq!(patroni.endpoints().len(), 2);
/// assert_eq!(Patroni::new(["ftp://x"]).unwrap_err().field, "patroni.endpoints");
/// ```
pub struct Patroni {
    endpoints: Endpoints,
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Patroni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patroni")
            .field("endpoints", &self.endpoints.list)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Patroni {
    /// A source over these REST API base URLs (`http://host:port`, as in Patroni's
    /// `restapi.connect_address`). Fails for an empty list or a URL that is not `http://`.
    pub fn new<S: AsRef<str>>(endpoints: impl IntoIterator<Item = S>) -> Result<Self, ConfigError> {
        Ok(Patroni {
            endpoints: Endpoints::new("patroni.endpoints", endpoints)?,
            client: http::client(),
            timeout: Duration::from_millis(500),
        })
    }

    /// How long one endpoint may take to answer before the next is tried. Default 500 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The API base URLs.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints.list
    }

    async fn get(&self, endpoint: &str) -> Result<Topology, String> {
        let request = hyper::Request::get(format!("{endpoint}/cluster"))
            .body(Empty::new())
            .map_err(|e| format!("bad URL: {e}"))?;
        let (status, body) = http::send(&self.client, request, self.timeout, MAX_ANSWER).await?;
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        parse_cluster(&body).map_err(|reason| format!("{BAD_ANSWER}{reason}"))
    }
}

const BAD_ANSWER: &str = "bad answer: ";

#[async_trait]
impl TopologySource for Patroni {
    async fn fetch(&self) -> Result<Topology, TopologyError> {
        let mut tried = Vec::new();
        for i in self.endpoints.order() {
            let endpoint = &self.endpoints.list[i];
            match self.get(endpoint).await {
                Ok(topology) => {
                    self.endpoints.answered(i);
                    return Ok(topology);
                }
                Err(e) => tried.push((endpoint.clone(), e)),
            }
        }
        // Every endpoint failed; if they all answered garbage, say so rather than "unreachable".
        if tried.iter().all(|(_, e)| e.starts_with(BAD_ANSWER)) {
            let (endpoint, reason) = tried.swap_remove(0);
            return Err(TopologyError::BadAnswer {
                endpoint,
                reason: reason[BAD_ANSWER.len()..].to_owned(),
            });
        }
        Err(TopologyError::Unreachable { tried })
    }
}

/// Parses a `GET /cluster` answer (Patroni 3.x and 4.x).
pub(crate) fn parse_cluster(body: &[u8]) -> Result<Topology, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let members = json
        .get("members")
        .and_then(|m| m.as_array())
        .ok_or("no `members` array")?;
    let mut out = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let text = |key: &str| m.get(key).and_then(|v| v.as_str());
        let name = text("name").ok_or_else(|| format!("member {i} has no name"))?;
        let role = text("role").ok_or_else(|| format!("member `{name}` has no role"))?;
        let host = text("host").unwrap_or_default();
        let port = m
            .get("port")
            .and_then(|p| p.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0);
        let lag = match m.get("lag") {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            // Patroni says "unknown" for a member it cannot measure.
            _ => None,
        };
        out.push(Member {
            name: name.into(),
            role: MemberRole::from_patroni(role),
            state: text("state").unwrap_or("unknown").to_owned(),
            host: host.to_owned(),
            port,
            timeline: m.get("timeline").and_then(|t| t.as_u64()),
            lag,
        });
    }
    Ok(Topology::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_patroni_3_and_4_answers() {
        let v3 = br#"{"members": [
          {"name": "n1", "role": "replica", "state": "running", "api_url": "http://127.0.0.1:28001/patroni", "host": "127.0.0.1", "port": 25431, "timeline": 1, "lag": 0},
          {"name": "n2", "role": "sync_standby", "state": "running", "host": "127.0.0.1", "port": 25432, "timeline": 1, "lag": "unknown"},
          {"name": "n3", "role": "leader",  "state": "running", "host": "127.0.0.1", "port": 25433, "timeline": 1}]}"#;
        let t = parse_cluster(v3).unwrap();
        assert_eq!(t.members.len(), 3);
        assert_eq!(t.leader().unwrap().name.as_ref(), "n3");
        assert_eq!(t.members[0].lag, Some(0));
        assert_eq!(t.members[1].role, MemberRole::Replica);
        assert_eq!(t.members[1].lag, None);
        assert_eq!(t.members[2].port, 25433);
        assert_eq!(t.members[2].timeline, Some(1));

        let v4 = br#"{"scope": "s", "members": [
          {"name": "a", "role": "primary", "state": "running", "host": "h", "port": 5432, "timeline": 4},
          {"name": "b", "role": "replica", "state": "streaming", "host": "h", "port": 5433, "timeline": 4, "receive_lag": 0, "replay_lag": 0}]}"#;
        let t = parse_cluster(v4).unwrap();
        assert_eq!(t.leader().unwrap().name.as_ref(), "a");
        assert_eq!(t.members[1].state, "streaming");
    }

    #[test]
    fn no_leader_or_two_leaders_is_no_leader() {
        let none = br#"{"members": [{"name": "a", "role": "replica", "host": "h", "port": 1}]}"#;
        assert!(parse_cluster(none).unwrap().leader().is_none());
        let two = br#"{"members": [{"name": "a", "role": "leader", "host": "h", "port": 1},
                                   {"name": "b", "role": "master", "host": "h", "port": 2}]}"#;
        assert!(parse_cluster(two).unwrap().leader().is_none());
    }

    #[test]
    fn bad_answers_are_typed_not_panics() {
        for (body, says) in [
            (&b"<html>"[..], "not JSON"),
            (br#"{"x": 1}"#, "no `members`"),
            (br#"{"members": [{"role": "leader"}]}"#, "no name"),
            (br#"{"members": [{"name": "a"}]}"#, "no role"),
            (br#"{"members": "a"}"#, "no `members`"),
        ] {
            let e = parse_cluster(body).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        // Odd but harmless fields are tolerated.
        let odd = br#"{"members": [{"name": "a", "role": "leader", "port": 99999, "lag": -1}]}"#;
        let t = parse_cluster(odd).unwrap();
        assert_eq!((t.members[0].port, t.members[0].lag), (0, None));
    }

    #[tokio::test]
    async fn unreachable_endpoints_are_each_named() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let p = Patroni::new([
            format!("http://127.0.0.1:{port}"),
            format!("http://127.0.0.1:{port}/"),
        ])
        .unwrap()
        .timeout(Duration::from_millis(300));
        match p.fetch().await.unwrap_err() {
            TopologyError::Unreachable { tried } => assert_eq!(tried.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
