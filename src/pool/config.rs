//! Pool configuration and its builder.

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::BackoffConfig;
use crate::driver::Connector;
use crate::error::ConfigError;

use super::Pool;

/// When a connection taken from the idle set is tested with a real round trip
/// ([`Connector::ping`]) before it is handed out.
///
/// Pinging on every checkout (sqlx's default `test_before_acquire`) costs a round trip per
/// acquire, about 30% of a `SELECT 1` workload. A connection that was just returned is as good as
/// the last query proved it; one that sat idle may have been cut by a firewall, a restart or a
/// failover. So by default seawall pings only connections idle longer than a threshold and relies
/// on [`Connector::has_broken`] otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutTest {
    /// Never ping; rely on [`Connector::has_broken`].
    Never,
    /// Ping every connection taken from the idle set.
    Always,
    /// Ping connections that sat idle at least this long.
    AfterIdle(Duration),
}

/// The shortest `max_lifetime` a pool accepts.
const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// The settings of a pool. Built and validated by [`Builder`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: Arc<str>,
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) acquire_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) lifetime_jitter: f64,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) checkout_test: CheckoutTest,
    pub(crate) max_connecting: usize,
    pub(crate) backoff: BackoffConfig,
    pub(crate) reset_timeout: Duration,
    pub(crate) maintenance_interval: Duration,
    pub(crate) seed: Option<u64>,
    pub(crate) metric_names: MetricNames,
}

/// Which names the pool's metrics use ([`Builder::metric_names`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricNames {
    /// seawall's own (`seawall_pool_*{pool}`, every one listed in [`crate::metrics`]). The
    /// default.
    #[default]
    Seawall,
    /// OpenTelemetry's semantic conventions for database client connection pools
    /// (`db.client.connection.*`, labelled `db.client.connection.pool.name`; see
    /// [`crate::metrics`] for the list). Metrics without an equivalent there are not emitted.
    OpenTelemetry,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: Arc::from("default"),
            max_size: 10,
            min_idle: 0,
            acquire_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            lifetime_jitter: 0.1,
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            checkout_test: CheckoutTest::AfterIdle(Duration::from_secs(10)),
            max_connecting: 2,
            backoff: BackoffConfig::default(),
            reset_timeout: Duration::from_secs(5),
            maintenance_interval: Duration::from_secs(1),
            seed: None,
            metric_names: MetricNames::Seawall,
        }
    }
}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let nonzero = |field, d: Duration| {
            if d.is_zero() {
                Err(ConfigError::new(field, "must be greater than zero"))
            } else {
                Ok(())
            }
        };
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        if self.max_size == 0 {
            return Err(ConfigError::new("max_size", "must be at least 1"));
        }
        if self.min_idle > self.max_size {
            return Err(ConfigError::new(
                "min_idle",
                format!(
                    "({}) must not exceed max_size ({})",
                    self.min_idle, self.max_size
                ),
            ));
        }
        if self.max_connecting == 0 {
            return Err(ConfigError::new("max_connecting", "must be at least 1"));
        }
        nonzero("acquire_timeout", self.acquire_timeout)?;
        nonzero("connect_timeout", self.connect_timeout)?;
        nonzero("reset_timeout", self.reset_timeout)?;
        nonzero("maintenance_interval", self.maintenance_interval)?;
        if let Some(d) = self.max_lifetime {
            // Shorter, every connection is born (nearly) expired and replaced at once: the pool
            // itself becomes a connect storm.
            if d < MIN_LIFETIME {
                return Err(ConfigError::new(
                    "max_lifetime",
                    format!("({d:?}) must be at least {MIN_LIFETIME:?} (or None)"),
                ));
            }
        }
        if let Some(d) = self.idle_timeout {
            nonzero("idle_timeout", d)?;
        }
        if !(0.0..1.0).contains(&self.lifetime_jitter) {
            return Err(ConfigError::new(
                "lifetime_jitter",
                format!("({}) must be in [0, 1)", self.lifetime_jitter),
            ));
        }
        nonzero("backoff.initial", self.backoff.initial)?;
        if self.backoff.max < self.backoff.initial {
            return Err(ConfigError::new(
                "backoff.max",
                format!(
                    "({:?}) must not be below backoff.initial ({:?})",
                    self.backoff.max, self.backoff.initial
                ),
            ));
        }
        Ok(())
    }
}

/// Builds a [`Pool`]; every setting has a default, and [`Builder::build`] rejects settings that
/// cannot work.
///
/// ```
/// use std::time::Duration;
/// use seawall::pool::{Pool, CheckoutTest};
/// use seawall::sim::SimConnector;
///
/// let pool = Pool::builder(SimConnector::default())
///     .name("primary")
///     .max_size(16)
///     .min_idle(2)
///     .acquire_timeout(Duration::from_secs(2))
///     .checkout_test(CheckoutTest::AfterIdle(Duration::from_secs(5)))
///     .build()
///     .unwrap();
/// assert_eq!(pool.state().max_size, 16);
///
/// let err = Pool::builder(SimConnector::default()).max_size(0).build().unwrap_err();
/// assert_eq!(err.field, "max_size");
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder<C> {
    connector: C,
    config: Config,
}

impl<C: Connector> Builder<C> {
    pub(crate) fn new(connector: C) -> Self {
        Builder {
            connector,
            config: Config::default(),
        }
    }

    /// Name used in errors, metrics labels and traces. Default `"default"`.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.config.name = name.into();
        self
    }

    /// The names of the pool's metrics: seawall's (default) or OpenTelemetry's semantic
    /// conventions (`db.client.connection.*`), for a backend that expects those.
    ///
    /// ```
    /// use seawall::pool::{MetricNames, Pool};
    /// use seawall::sim::SimBackend;
    ///
    /// let db = SimBackend::builder("primary").build();
    /// let pool = Pool::builder(db.connector())
    ///     .name("primary")
    ///     .metric_names(MetricNames::OpenTelemetry)
    ///     .build()
    ///     .unwrap();
    /// # drop(pool);
    /// ```
    pub fn metric_names(mut self, names: MetricNames) -> Self {
        self.config.metric_names = names;
        self
    }

    /// Most connections open at once (idle plus in use). Default 10; at least 1.
    pub fn max_size(mut self, n: usize) -> Self {
        self.config.max_size = n;
        self
    }

    /// Idle connections kept open in the background, at most `max_size`: with 3 of
    /// `max_size(5).min_idle(2)` checked out, the other 2 are kept open and idle; `idle_timeout`
    /// never closes those. A deficit (connections taken, closed or never opened) is filled by
    /// the background task within a `maintenance_interval`, and at once when a caller waits.
    /// Default 0.
    pub fn min_idle(mut self, n: usize) -> Self {
        self.config.min_idle = n;
        self
    }

    /// How long [`Pool::get`] may wait before failing with [`Error::Timeout`](crate::Error::Timeout).
    /// Default 30 s.
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.config.acquire_timeout = d;
        self
    }

    /// How long one connect attempt may take before it counts as failed. Default 10 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout = d;
        self
    }

    /// Connections older than this are closed when next returned or found idle. `None` keeps
    /// them forever. Default 30 min; at least 1 s. Each connection's lifetime is shortened by a random share up
    /// to [`Builder::lifetime_jitter`] so connections opened together do not expire together.
    pub fn max_lifetime(mut self, d: Option<Duration>) -> Self {
        self.config.max_lifetime = d;
        self
    }

    /// Share of `max_lifetime` (in `[0, 1)`) by which each connection's lifetime is randomly
    /// shortened, to spread reconnects. Default 0.1.
    pub fn lifetime_jitter(mut self, share: f64) -> Self {
        self.config.lifetime_jitter = share;
        self
    }

    /// Idle connections beyond `min_idle` are closed after this long unused. `None` disables.
    /// Default 10 min.
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.config.idle_timeout = d;
        self
    }

    /// When to ping a connection before handing it out. Default
    /// `CheckoutTest::AfterIdle(10 s)`.
    pub fn checkout_test(mut self, test: CheckoutTest) -> Self {
        self.config.checkout_test = test;
        self
    }

    /// Most connects in flight at once (the connect-storm guard). Default 2; at least 1.
    pub fn max_connecting(mut self, n: usize) -> Self {
        self.config.max_connecting = n;
        self
    }

    /// Backoff between failed connect attempts. Default 50 ms doubling to 5 s, jittered.
    pub fn connect_backoff(mut self, backoff: BackoffConfig) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// How long a session reset may take before the connection is discarded. Default 5 s.
    pub fn reset_timeout(mut self, d: Duration) -> Self {
        self.config.reset_timeout = d;
        self
    }

    /// How often the background task reaps idle and expired connections, refills `min_idle` and
    /// publishes gauges. Default 1 s. Whatever it is, the pool's clock (which lifetimes, idle
    /// times and `CheckoutTest::AfterIdle` are judged by) is read at least every second and at
    /// least ten times per `idle_timeout`, `max_lifetime` and `AfterIdle` threshold.
    pub fn maintenance_interval(mut self, d: Duration) -> Self {
        self.config.maintenance_interval = d;
        self
    }

    /// Seed for the pool's jitter (lifetimes, backoff), for reproducible tests. Default: random.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// Validates the settings and builds the pool. No connection is opened here; with
    /// `min_idle > 0` the background task opens them once a Tokio runtime is available.
    pub fn build(self) -> Result<Pool<C>, ConfigError> {
        self.config.validate()?;
        Ok(Pool::from_parts(self.connector, self.config))
    }
}
