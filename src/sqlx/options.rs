//! A cluster from one URL and a few options, read from a file or the environment: see
//! [`ClusterOptions`] for every option, its variable and its default.
//!
//! With the `serde` feature, [`ClusterOptions`] deserializes from any serde format (TOML, YAML,
//! JSON); unknown fields are refused. Invalid input fails when the cluster is built, naming the
//! field (or variable) and the value.
//!
//! ```no_run
//! # async fn demo() -> Result<(), seawall::Error> {
//! use seawall::sqlx::ClusterOptions;
//!
//! // SEAWALL_URL=postgres://app@db-1,db-2,db-3/shop SEAWALL_MAX_CONNECTIONS=16
//! let cluster = ClusterOptions::from_env()?.connect().await?;
//! # let _ = cluster; Ok(()) }
//! ```

use std::str::FromStr;
use std::time::Duration;

use super::{MultiHostUrl, PgConnector};
use crate::cluster::Cluster;
use crate::error::{ConfigError, Error};

/// Options of a cluster built from one URL:
///
/// | option | environment variable | default | meaning |
/// |---|---|---|---|
/// | `url` | `SEAWALL_URL` (or `DATABASE_URL`) | required | libpq-style URL, one or more hosts ([`MultiHostUrl`]) |
/// | `max_connections` | `SEAWALL_MAX_CONNECTIONS` | 10 (sqlx's `PgPoolOptions`) | pool size of every node |
/// | `acquire_timeout_ms` | `SEAWALL_ACQUIRE_TIMEOUT_MS` | 30000 | default deadline of an acquire |
/// | `probe_interval_ms` | `SEAWALL_PROBE_INTERVAL_MS` | 500 | health probe period; 0 turns the monitor off |
/// | `max_replica_lag_ms` | `SEAWALL_MAX_REPLICA_LAG_MS` | none | replicas lagging more take no reads |
/// | `primary_read_share` | `SEAWALL_PRIMARY_READ_SHARE` | 0.5 | share of the primary's pool for reads no replica can take |
/// | `shed_load` | `SEAWALL_SHED_LOAD` | false | shed excess work early ([`ClusterBuilder::shed_load`](crate::cluster::ClusterBuilder::shed_load)) |
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct ClusterOptions {
    /// libpq-style URL, one or more hosts. Required.
    pub url: String,
    /// Pool size of every node. Default 10.
    pub max_connections: usize,
    /// Default deadline of an acquire, in milliseconds. Default 30000.
    pub acquire_timeout_ms: u64,
    /// Health probe period in milliseconds; 0 turns the monitor off. Default 500.
    pub probe_interval_ms: u64,
    /// Replicas lagging more than this many milliseconds take no reads. Default none.
    pub max_replica_lag_ms: Option<u64>,
    /// Share of the primary's pool for reads no replica can take. Default 0.5.
    pub primary_read_share: f64,
    /// Shed excess work early. Default false.
    pub shed_load: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            url: String::new(),
            max_connections: 10,
            acquire_timeout_ms: 30_000,
            probe_interval_ms: 500,
            max_replica_lag_ms: None,
            primary_read_share: 0.5,
            shed_load: false,
        }
    }
}

impl ClusterOptions {
    /// The options for `url`, defaults for the rest.
    pub fn new(url: impl Into<String>) -> Self {
        ClusterOptions {
            url: url.into(),
            ..ClusterOptions::default()
        }
    }

    /// Reads the variables of the table in [`ClusterOptions`] from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the variables of the table in [`ClusterOptions`] through `var` (for tests, or a source
    /// other than the process environment). A variable that does not parse is an
    /// [`Error::Config`] naming it and its value.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        fn parse<T: FromStr>(
            var: &impl Fn(&str) -> Option<String>,
            name: &'static str,
        ) -> Result<Option<T>, Error> {
            match var(name) {
                None => Ok(None),
                Some(text) => text.trim().parse().map(Some).map_err(|_| {
                    Error::Config(ConfigError::new(name, format!("does not parse: {text:?}")))
                }),
            }
        }
        let defaults = ClusterOptions::default();
        let url = var("SEAWALL_URL")
            .or_else(|| var("DATABASE_URL"))
            .ok_or_else(|| Error::Config(ConfigError::new("SEAWALL_URL", "is not set")))?;
        Ok(ClusterOptions {
            url,
            max_connections: parse(&var, "SEAWALL_MAX_CONNECTIONS")?
                .unwrap_or(defaults.max_connections),
            acquire_timeout_ms: parse(&var, "SEAWALL_ACQUIRE_TIMEOUT_MS")?
                .unwrap_or(defaults.acquire_timeout_ms),
            probe_interval_ms: parse(&var, "SEAWALL_PROBE_INTERVAL_MS")?
                .unwrap_or(defaults.probe_interval_ms),
            max_replica_lag_ms: parse(&var, "SEAWALL_MAX_REPLICA_LAG_MS")?,
            primary_read_share: parse(&var, "SEAWALL_PRIMARY_READ_SHARE")?
                .unwrap_or(defaults.primary_read_share),
            shed_load: parse(&var, "SEAWALL_SHED_LOAD")?.unwrap_or(defaults.shed_load),
        })
    }

    /// Checks the options and builds the cluster, without connecting (roles are taken from the
    /// first probes; until then the first host is taken for the primary).
    pub fn build(&self) -> Result<Cluster<PgConnector>, Error> {
        if self.url.is_empty() {
            return Err(Error::Config(ConfigError::new("url", "is required")));
        }
        if self.max_connections == 0 {
            return Err(Error::Config(ConfigError::new(
                "max_connections",
                "must be at least 1 (got 0)",
            )));
        }
        if self.acquire_timeout_ms == 0 {
            return Err(Error::Config(ConfigError::new(
                "acquire_timeout_ms",
                "must be positive (got 0)",
            )));
        }
        let url = MultiHostUrl::from_str(&self.url)
            .map_err(|e| Error::Config(ConfigError::new("url", e.to_string())))?;
        let mut builder = url
            .builder(self.max_connections)?
            .acquire_timeout(Duration::from_millis(self.acquire_timeout_ms))
            .probe_interval(
                (self.probe_interval_ms > 0).then(|| Duration::from_millis(self.probe_interval_ms)),
            )
            .max_replica_lag(self.max_replica_lag_ms.map(Duration::from_millis))
            .primary_read_share(self.primary_read_share);
        if self.shed_load {
            builder = builder.shed_load();
        }
        Ok(builder.build()?)
    }

    /// [`ClusterOptions::build`], then asks every host its role before returning, so the first
    /// write goes to the real primary.
    pub async fn connect(&self) -> Result<Cluster<PgConnector>, Error> {
        let cluster = self.build()?;
        cluster.probe_now().await;
        Ok(cluster)
    }
}

impl Cluster<PgConnector> {
    /// A cluster from one libpq-style URL (one or more hosts), with the defaults of
    /// [`ClusterOptions`] (10 connections per host); every host is asked its role first.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seawall::Error> {
    /// let cluster = seawall::Cluster::connect("postgres://app@db-1,db-2,db-3/shop").await?;
    /// # let _ = cluster; Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, Error> {
        ClusterOptions::new(url).connect().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn environment_with_defaults() {
        let o = ClusterOptions::from_vars(vars(&[
            ("SEAWALL_URL", "postgres://u@h1,h2/db"),
            ("SEAWALL_MAX_CONNECTIONS", "16"),
            ("SEAWALL_SHED_LOAD", "true"),
        ]))
        .unwrap();
        assert_eq!(o.max_connections, 16);
        assert!(o.shed_load);
        assert_eq!(o.acquire_timeout_ms, 30_000);
        assert_eq!(o.max_replica_lag_ms, None);
    }

    #[test]
    fn bad_input_names_the_field_and_value() {
        let e = ClusterOptions::from_vars(vars(&[
            ("SEAWALL_URL", "postgres://u@h1/db"),
            ("SEAWALL_MAX_CONNECTIONS", "lots"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("SEAWALL_MAX_CONNECTIONS") && e.contains("lots"),
            "{e}"
        );
        let e = ClusterOptions::from_vars(vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SEAWALL_URL"), "{e}");
    }

    #[tokio::test]
    async fn invalid_options_fail_at_build_naming_the_field() {
        let mut o = ClusterOptions::new("postgres://u@h1/db");
        o.max_connections = 0;
        let e = o.build().unwrap_err().to_string();
        assert!(e.contains("max_connections"), "{e}");
        let mut o = ClusterOptions::new("postgres://u@h1/db");
        o.primary_read_share = 1.5;
        let e = o.build().unwrap_err().to_string();
        assert!(e.contains("primary_read_share") && e.contains("1.5"), "{e}");
        let e = ClusterOptions::new("mysql://x")
            .build()
            .unwrap_err()
            .to_string();
        assert!(e.contains("`url`"), "{e}");
        assert!(ClusterOptions::new("postgres://u@h1,h2/db").build().is_ok());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_refusing_unknown_fields() {
        let o: ClusterOptions = serde_json::from_str(
            r#"{"url": "postgres://u@h1,h2/db", "max_connections": 4, "max_replica_lag_ms": 2000}"#,
        )
        .unwrap();
        assert_eq!(
            (o.max_connections, o.max_replica_lag_ms, o.probe_interval_ms),
            (4, Some(2000), 500)
        );
        let e = serde_json::from_str::<ClusterOptions>(r#"{"url": "x", "max_conections": 4}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_conections"), "{e}");
    }
}
