//! The plain-HTTP client the `patroni` and `etcd` features share: a list of endpoints tried in
//! turn (the one that answered last first), and one request with a deadline and a bounded
//! answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Bytes};
use hyper::StatusCode;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::ConfigError;

/// `http://host:port` base URLs, with the one that answered last.
#[derive(Debug)]
pub(crate) struct Endpoints {
    pub(crate) list: Vec<String>,
    preferred: AtomicUsize,
}

impl Endpoints {
    /// Fails, naming `field`, for an empty list or a URL that is not `http://host:port`.
    pub(crate) fn new<S: AsRef<str>>(
        field: &'static str,
        endpoints: impl IntoIterator<Item = S>,
    ) -> Result<Self, ConfigError> {
        let list: Vec<String> = endpoints
            .into_iter()
            .map(|e| e.as_ref().trim_end_matches('/').to_owned())
            .collect();
        if list.is_empty() {
            return Err(ConfigError::new(field, "must name at least one endpoint"));
        }
        if let Some(bad) = list.iter().find(|e| {
            e.strip_prefix("http://")
                .is_none_or(|rest| rest.is_empty() || rest.contains('/'))
        }) {
            return Err(ConfigError::new(
                field,
                format!("`{bad}` is not an http://host:port URL"),
            ));
        }
        Ok(Endpoints {
            list,
            preferred: AtomicUsize::new(0),
        })
    }

    /// Indexes in the order to try them: the one that answered last first.
    pub(crate) fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.list.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        (0..n).map(move |k| (first + k) % n)
    }

    /// Endpoint `i` answered: ask it first next time.
    pub(crate) fn answered(&self, i: usize) {
        self.preferred.store(i, Ordering::Relaxed);
    }
}

/// A client for plain HTTP (no TLS stack, no proxy).
pub(crate) fn client<B>() -> Client<HttpConnector, B>
where
    B: Body + Send,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http()
}

/// Sends `request` and reads at most `max` bytes of the answer, all within `timeout`.
pub(crate) async fn send<B>(
    client: &Client<HttpConnector, B>,
    request: hyper::Request<B>,
    timeout: Duration,
    max: usize,
) -> Result<(StatusCode, Bytes), String>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let ask = async {
        let response = client.request(request).await.map_err(|e| with_causes(&e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), max)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {}", with_causes(&*e)))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// An error with its chain of causes (hyper's own says only "client error (SendRequest)"; the
/// reason, such as a connection reset, is in its source).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
