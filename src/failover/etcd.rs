//! etcd as the [`PromotionLease`] store, through etcd's JSON gateway (`/v3/kv/range`,
//! `/v3/kv/txn`, etcd 3.4 and later): plain HTTP, no gRPC or protoc.

use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value};

use super::lease::{LeaseError, PromotionLease};
use crate::error::ConfigError;
use crate::http::{self, Endpoints};

/// Largest answer read (a record is one short key).
const MAX_ANSWER: usize = 64 * 1024;

/// The primary of record as one etcd key, through etcd's JSON gateway: `primary` is a range
/// read, `swap` a transaction comparing the key's value (or its absence) before the put.
/// Endpoints are tried in turn; the one that answered last is asked first next time.
///
/// ```
/// use seawall::failover::Etcd;
///
/// let etcd = Etcd::new(["http://10.0.0.5:2379"], "/seawall/shop/primary").unwrap();
/// assert_eq!(etcd.key(), "/seawall/shop/primary");
/// assert_eq!(Etcd::new(["10.0.0.5:2379"], "/k").unwrap_err().field, "etcd.endpoints");
/// assert_eq!(Etcd::new(["http://10.0.0.5:2379"], "").unwrap_err().field, "etcd.key");
/// ```
pub struct Etcd {
    endpoints: Endpoints,
    key: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints.list)
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Etcd {
    /// The record at `key`, over these client URLs (`http://host:port`). Fails for an empty
    /// list, a URL that is not `http://host:port`, or an empty key.
    pub fn new<S: AsRef<str>>(
        endpoints: impl IntoIterator<Item = S>,
        key: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let endpoints = Endpoints::new("etcd.endpoints", endpoints)?;
        let key = key.into();
        if key.is_empty() {
            return Err(ConfigError::new("etcd.key", "must not be empty"));
        }
        Ok(Etcd {
            endpoints,
            key,
            client: http::client(),
            timeout: Duration::from_millis(500),
        })
    }

    /// How long one endpoint may take to answer before the next is tried. Default 500 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key holding the record.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Posts `body` to `path` on each endpoint in turn; the first JSON answer wins.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, LeaseError> {
        let mut errors = Vec::new();
        for i in self.endpoints.order() {
            let endpoint = &self.endpoints.list[i];
            match self.post(endpoint, path, body).await {
                Ok(answer) => {
                    self.endpoints.answered(i);
                    return Ok(answer);
                }
                Err(e) => errors.push(format!("{endpoint}: {e}")),
            }
        }
        Err(LeaseError::new(
            format!("etcd {}", self.key),
            errors.join("; "),
        ))
    }

    async fn post(&self, endpoint: &str, path: &str, body: &Value) -> Result<Value, String> {
        let request = hyper::Request::post(format!("{endpoint}{path}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| format!("bad request: {e}"))?;
        let (status, bytes) = http::send(&self.client, request, self.timeout, MAX_ANSWER).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let text: String = text.chars().take(200).collect();
            return Err(format!("HTTP {status}: {text}"));
        }
        let answer: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("bad answer: {e}"))?;
        // Every answer of etcd's gateway has a header (revision, raft term).
        if answer.get("header").is_none() {
            return Err("bad answer: no header (not etcd?)".to_owned());
        }
        Ok(answer)
    }

    fn bad(&self, reason: impl Into<String>) -> LeaseError {
        LeaseError::new(format!("etcd {}", self.key), reason)
    }
}

#[async_trait]
impl PromotionLease for Etcd {
    async fn primary(&self) -> Result<Option<String>, LeaseError> {
        let answer = self
            .call("/v3/kv/range", &json!({ "key": B64.encode(&self.key) }))
            .await?;
        let Some(kvs) = answer.get("kvs") else {
            // etcd leaves out empty fields: no `kvs`, no key.
            return Ok(None);
        };
        let value = kvs
            .get(0)
            .and_then(|kv| kv.get("value"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let bytes = B64
            .decode(value)
            .map_err(|e| self.bad(format!("bad answer: value is not base64: {e}")))?;
        let name =
            String::from_utf8(bytes).map_err(|_| self.bad("bad answer: value is not UTF-8"))?;
        Ok((!name.is_empty()).then_some(name))
    }

    async fn swap(&self, expected: Option<&str>, candidate: &str) -> Result<bool, LeaseError> {
        let key = B64.encode(&self.key);
        let compare = match expected {
            Some(value) => json!({
                "key": key, "target": "VALUE", "result": "EQUAL", "value": B64.encode(value),
            }),
            None => json!({
                "key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0",
            }),
        };
        let txn = json!({
            "compare": [compare],
            "success": [{ "request_put": { "key": key, "value": B64.encode(candidate) } }],
        });
        let answer = self.call("/v3/kv/txn", &txn).await?;
        // etcd leaves out `succeeded` when false.
        Ok(answer
            .get("succeeded")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }
}
