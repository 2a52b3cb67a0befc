//! The primary of record, in a consensus store every application instance shares: what makes
//! embedded promotion safe in a fleet.
//!
//! Without it, each instance decides alone: one cut off from the primary promotes a replica
//! while another keeps writing to the old primary, and two instances out of phase promote two
//! different replicas. With a [`PromotionLease`] (etcd: [`Etcd`](crate::failover::Etcd),
//! feature `etcd`), promotion is a compare-and-swap on one record:
//!
//! 1. every instance reads the record every probe interval and writes only to the node it
//!    names; a writable node it does not name is fenced, in every instance;
//! 2. an instance that has not read the record for
//!    [`validity`](crate::cluster::ClusterBuilder::promotion_lease) holds its writes (it cannot
//!    know whether another instance moved the record);
//! 3. to promote, an instance swaps the record from the old primary to its candidate; only the
//!    one whose swap succeeds promotes, and only after waiting out the validity, so that every
//!    other instance has either read the new record or stopped writing to the old primary.
//!    An instance whose swap fails follows the record.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

/// The node recorded as primary, in a store every application instance shares.
///
/// Implementations must be linearizable (etcd, ZooKeeper, Consul, a PostgreSQL table on a
/// server outside the cluster): two concurrent [`swap`](Self::swap)s from the same expected
/// value must not both succeed.
#[async_trait]
pub trait PromotionLease: Send + Sync + 'static {
    /// The node the record names primary; `None` when nothing is recorded yet.
    async fn primary(&self) -> Result<Option<String>, LeaseError>;

    /// Records `candidate` as primary if the record still names `expected` (`None`: nothing
    /// recorded). `Ok(true)`: this call changed it, and only its caller may promote
    /// `candidate`. `Ok(false)`: the record names another node now.
    async fn swap(&self, expected: Option<&str>, candidate: &str) -> Result<bool, LeaseError>;
}

/// The store could not be read or written: the record is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseError {
    /// The store (an endpoint URL, or the lease's name).
    pub store: String,
    /// What went wrong.
    pub reason: String,
}

impl LeaseError {
    /// An error of `store`.
    pub fn new(store: impl Into<String>, reason: impl Into<String>) -> Self {
        LeaseError {
            store: store.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for LeaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "promotion lease {}: {}", self.store, self.reason)
    }
}

impl std::error::Error for LeaseError {}

/// A record in memory, shared by its clones: several clusters in one process (tests, the
/// simulator) that must agree as a fleet would. Not for production: a real fleet's instances do
/// not share memory.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use seawall::failover::{MemoryLease, PromotionLease};
///
/// let a = MemoryLease::default();
/// let b = a.clone(); // another "instance"
/// assert!(a.swap(None, "primary").await.unwrap());
/// assert!(a.swap(Some("primary"), "replica-1").await.unwrap());
/// assert!(!b.swap(Some("primary"), "replica-2").await.unwrap()); // too late
/// assert_eq!(b.primary().await.unwrap().as_deref(), Some("replica-1"));
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryLease {
    record: Arc<Mutex<Option<String>>>,
    unreachable: Arc<std::sync::atomic::AtomicBool>,
}

impl MemoryLease {
    /// Makes the store unreachable (every call fails) or reachable again, as an outage of a
    /// real store would.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.unreachable
            .store(unreachable, std::sync::atomic::Ordering::Relaxed);
    }

    fn check(&self) -> Result<(), LeaseError> {
        if self.unreachable.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(LeaseError::new("memory", "unreachable"));
        }
        Ok(())
    }
}

#[async_trait]
impl PromotionLease for MemoryLease {
    async fn primary(&self) -> Result<Option<String>, LeaseError> {
        self.check()?;
        Ok(self.record.lock().clone())
    }

    async fn swap(&self, expected: Option<&str>, candidate: &str) -> Result<bool, LeaseError> {
        self.check()?;
        let mut record = self.record.lock();
        if record.as_deref() != expected {
            return Ok(false);
        }
        *record = Some(candidate.to_owned());
        Ok(true)
    }
}
