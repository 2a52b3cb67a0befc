//! libpq-style multi-host URLs, which sqlx itself cannot parse (sqlx #3333):
//! `postgres://user:password@h1:5432,h2:5433,h3/db?sslmode=prefer&target_session_attrs=read-write`.
//!
//! Each host becomes a node, named `host:port`. Roles come from the probes, not from the order:
//! [`connect`] probes every host before it returns, so writes go to whichever reports primary and
//! reads to the others, and the health monitor keeps following them (a switchover, a failover).

use std::str::FromStr;
use std::sync::Arc;

use ::sqlx::postgres::PgConnectOptions;

use super::connector::{redact, InvalidUrl};
use super::PgConnector;
use crate::cluster::{Cluster, ClusterBuilder};
use crate::pool::Pool;

/// Parameters of libpq's that seawall reads itself and does not pass to sqlx (which would warn
/// about them and ignore them).
const OURS: [&str; 2] = ["target_session_attrs", "load_balance_hosts"];

/// A parsed multi-host URL: one set of connect options per host, in the URL's order.
#[derive(Debug, Clone)]
pub struct MultiHostUrl {
    hosts: Vec<(Arc<str>, PgConnectOptions)>,
}

impl MultiHostUrl {
    /// The nodes: `host:port` and its connect options.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, &PgConnectOptions)> {
        self.hosts.iter().map(|(n, o)| (&**n, o))
    }

    /// A cluster builder with a node per host, each a pool of `max_size` connections: the first
    /// host as primary until the probes say otherwise, the others as replicas. Prefer
    /// [`connect`], which asks the servers first.
    pub fn builder(&self, max_size: usize) -> Result<ClusterBuilder<PgConnector>, crate::Error> {
        let mut builder = Cluster::builder();
        for (i, (name, options)) in self.hosts.iter().enumerate() {
            let pool = Pool::builder(PgConnector::new(options.clone()))
                .name(name.clone())
                .max_size(max_size)
                .build()?;
            builder = if i == 0 {
                builder.primary(name.clone(), pool)
            } else {
                builder.replica(name.clone(), pool)
            };
        }
        Ok(builder)
    }
}

impl FromStr for MultiHostUrl {
    type Err = InvalidUrl;

    /// Parses `postgres[ql]://[user[:password]@]host[:port][,host[:port]...][/db][?params]`.
    /// Bracketed IPv6 hosts are accepted. `target_session_attrs` (`any`, `read-write`,
    /// `primary`, `read-only`, `standby`, `prefer-standby`) and `load_balance_hosts`
    /// (`disable`, `random`) are checked and accepted for compatibility: seawall routes each
    /// statement itself (writes to the primary, reads by load over the replicas).
    fn from_str(url: &str) -> Result<Self, InvalidUrl> {
        let bad = |reason: &str| InvalidUrl::new(redact(reason, url));
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(s, _)| matches!(*s, "postgres" | "postgresql"))
            .ok_or_else(|| bad("must start with postgres:// or postgresql://"))?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (tail, None),
        };
        let mut kept = Vec::new();
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "target_session_attrs" => {
                    let known = [
                        "any",
                        "read-write",
                        "primary",
                        "read-only",
                        "standby",
                        "prefer-standby",
                    ];
                    if !known.contains(&value) {
                        return Err(bad(&format!("unknown target_session_attrs `{value}`")));
                    }
                }
                "load_balance_hosts" if !matches!(value, "disable" | "random") => {
                    return Err(bad(&format!("unknown load_balance_hosts `{value}`")));
                }
                _ if OURS.contains(&key) => {}
                _ => kept.push(pair),
            }
        }
        let query = if kept.is_empty() {
            String::new()
        } else {
            format!("?{}", kept.join("&"))
        };
        let mut out: Vec<(Arc<str>, PgConnectOptions)> = Vec::new();
        for host in hosts.split(',') {
            if host.is_empty() {
                return Err(bad("empty host in the host list"));
            }
            let (name, port) = split_port(host).map_err(|e| bad(&e))?;
            let single = format!("{scheme}://{userinfo}{name}:{port}{path}{query}");
            let options = PgConnectOptions::from_str(&single)
                .map_err(|e| InvalidUrl::new(redact(&e.to_string(), url)))?;
            let node: Arc<str> = format!("{name}:{port}").into();
            if out.iter().any(|(n, _)| *n == node) {
                return Err(bad(&format!("host `{node}` is listed twice")));
            }
            out.push((node, options));
        }
        Ok(MultiHostUrl { hosts: out })
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → (host as written, port, 5432 by default).
fn split_port(host: &str) -> Result<(&str, u16), String> {
    let (name, port) = if host.starts_with('[') {
        let close = host.find(']').ok_or("unclosed `[` in an IPv6 host")?;
        let after = &host[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected `{after}` after an IPv6 host")),
        };
        (&host[..=close], port)
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        }
    };
    if name.is_empty() || name == "[]" {
        return Err("empty host name".to_owned());
    }
    let port = match port {
        None => 5432,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("invalid port `{p}` for host `{name}`"))?,
    };
    Ok((name, port))
}

/// A cluster over every host of a libpq-style multi-host URL, with pools of `max_size`, roles
/// asked of the servers before it returns (writes go to the host that reports primary, whatever
/// its place in the list). Fails for a URL that does not parse; servers that do not answer are
/// left to the health monitor.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let cluster = seawall::sqlx::connect(
///     "postgres://app:secret@db-1:5432,db-2:5432,db-3:5432/shop?target_session_attrs=read-write",
///     16,
/// )
/// .await?;
/// let mut conn = cluster.write().await?;
/// sqlx::query("UPDATE stock SET n = n - 1 WHERE sku = 'x'").execute(&mut *conn).await?;
/// # Ok(()) }
/// ```
pub async fn connect(url: &str, max_size: usize) -> Result<Cluster<PgConnector>, crate::Error> {
    let parsed = MultiHostUrl::from_str(url)
        .map_err(|e| crate::Error::Config(crate::ConfigError::new("url", e.to_string())))?;
    let cluster = parsed.builder(max_size)?.build()?;
    cluster.probe_now().await;
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(url: &str) -> Vec<(String, String, u16)> {
        MultiHostUrl::from_str(url)
            .unwrap()
            .hosts()
            .map(|(n, o)| (n.to_owned(), o.get_host().to_owned(), o.get_port()))
            .collect()
    }

    #[test]
    fn hosts_ports_and_defaults() {
        assert_eq!(
            hosts("postgres://u:p@h1:5433,h2,[::1]:6000/db?sslmode=disable"),
            vec![
                ("h1:5433".into(), "h1".into(), 5433),
                ("h2:5432".into(), "h2".into(), 5432),
                ("[::1]:6000".into(), "[::1]".into(), 6000),
            ]
        );
        let parsed = MultiHostUrl::from_str(
            "postgresql://app:s3cr%40t@a:1,b:2/shop?application_name=x&target_session_attrs=read-write&load_balance_hosts=random",
        )
        .unwrap();
        for (_, o) in parsed.hosts() {
            assert_eq!(o.get_database(), Some("shop"));
            assert_eq!(o.get_username(), "app");
            assert_eq!(o.get_application_name(), Some("x"));
        }
    }

    #[test]
    fn bad_urls_are_typed_errors_without_the_password() {
        for (url, says) in [
            ("mysql://u@h/db", "postgres://"),
            ("postgres://u:Sup3rS3cret@h1,,h2/db", "empty host"),
            ("postgres://u:Sup3rS3cret@h1:99999/db", "invalid port"),
            ("postgres://u:Sup3rS3cret@h1:0/db", "invalid port"),
            ("postgres://u:Sup3rS3cret@[::1/db", "unclosed"),
            ("postgres://u@h1,h1:5432/db", "listed twice"),
            (
                "postgres://u@h1/db?target_session_attrs=bogus",
                "target_session_attrs",
            ),
            (
                "postgres://u@h1/db?load_balance_hosts=always",
                "load_balance_hosts",
            ),
            ("postgres://u:Sup3rS3cret@/db", "empty host"),
        ] {
            let e = MultiHostUrl::from_str(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("Sup3rS3cret"), "{e}");
        }
    }
}
