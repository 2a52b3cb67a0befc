//! Pieces the benches share.
#![allow(dead_code)] // each bench uses a different subset

use tokio::runtime::Runtime;

/// The median of a round's figures (the machine's speed drifts between fast and slow phases:
/// the median of per-round results is robust to a few disturbed rounds).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A single-threaded runtime, so that only seawall's own work is measured.
pub fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A connection that costs nothing.
pub struct Conn;

/// A driver whose connects and connections cost nothing: what is measured is seawall.
pub struct Free;

#[async_trait::async_trait]
impl seawall::Connector for Free {
    type Connection = Conn;
    type Error = std::io::Error;

    async fn connect(&self) -> Result<Conn, std::io::Error> {
        Ok(Conn)
    }
}
