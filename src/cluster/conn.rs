//! The handle a cluster hands out: a pooled connection that reports how its work went.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::admission::Permit;
use crate::breaker::{CallGuard, Outcome};
use crate::driver::Connector;
use crate::load::InFlight;
use crate::pool::Pooled;

use super::node::{Node, Role};

/// A connection from one node of a [`Cluster`](super::Cluster).
///
/// It pins: every statement run through one handle uses the same connection, so a transaction
/// or a sequence that needs one session stays on it. When dropped, the connection goes back to
/// its pool and the work is accounted to the node: its duration feeds the load model and the
/// adaptive limit, and its outcome the circuit breaker. Report errors with
/// [`ClusterConn::report_error`] so a failing node is noticed; without a report the work counts
/// as a success.
pub struct ClusterConn<C: Connector> {
    // Declared first so it drops (returns the connection) before the node is released.
    conn: Pooled<C>,
    node: Arc<Node<C>>,
    outcome: Outcome,
    call: Option<CallGuard>,
    permit: Option<Permit>,
    in_flight: Option<InFlight>,
    _fallback: Option<FallbackRead>,
}

impl<C: Connector> ClusterConn<C> {
    pub(crate) fn new(
        conn: Pooled<C>,
        node: Arc<Node<C>>,
        call: CallGuard,
        permit: Permit,
        in_flight: InFlight,
        fallback: Option<FallbackRead>,
    ) -> Self {
        ClusterConn {
            conn,
            node,
            outcome: Outcome::Success,
            call: Some(call),
            permit: Some(permit),
            in_flight: Some(in_flight),
            _fallback: fallback,
        }
    }

    /// The name of the node it came from.
    pub fn node_name(&self) -> &str {
        &self.node.name
    }

    /// The role of the node it came from.
    pub fn role(&self) -> Role {
        self.node.role()
    }

    /// The node it came from.
    pub fn node(&self) -> &Node<C> {
        &self.node
    }

    /// Reports an error from work on this connection. The driver decides what it says about
    /// the node ([`Connector::classify_error`]): a transport failure counts against the node
    /// (breaker, load, limit) and the connection is closed instead of reused; the caller's own
    /// mistake (syntax, constraint) does not.
    ///
    /// Work that only saw the caller's errors is not counted by the breaker (as resilience4j's
    /// ignored exceptions), though its latency still feeds the load model and the limiter.
    pub fn report_error(&mut self, error: &C::Error) {
        match self.node.pool.connector().classify_error(error) {
            Outcome::Failure => self.outcome = Outcome::Failure,
            Outcome::Ignored if self.outcome == Outcome::Success => self.outcome = Outcome::Ignored,
            _ => {}
        }
    }

    /// Marks the work as failed because of the node, whatever the error was (the connection is
    /// then closed rather than reused).
    pub fn mark_failed(&mut self) {
        self.outcome = Outcome::Failure;
    }

    /// The pooled connection itself.
    pub fn pooled(&mut self) -> &mut Pooled<C> {
        &mut self.conn
    }
}

impl<C: Connector> Drop for ClusterConn<C> {
    fn drop(&mut self) {
        let ok = self.outcome != Outcome::Failure;
        if !ok {
            // A transport failure leaves the connection in an unknown state (many drivers,
            // sqlx among them, cannot tell a dead socket cheaply): close it, do not reuse it.
            self.conn.mark_broken();
        }
        let now = tokio::time::Instant::now();
        if let Some(call) = self.call.take() {
            self.node.finish_call_at(call, self.outcome, now);
        }
        if let Some(permit) = self.permit.take() {
            if ok {
                permit.success();
            } else {
                permit.failure();
            }
        }
        if let Some(in_flight) = self.in_flight.take() {
            in_flight.finish_at(ok, now);
        }
    }
}

impl<C: Connector> Deref for ClusterConn<C> {
    type Target = C::Connection;

    fn deref(&self) -> &C::Connection {
        &self.conn
    }
}

impl<C: Connector> DerefMut for ClusterConn<C> {
    fn deref_mut(&mut self) -> &mut C::Connection {
        &mut self.conn
    }
}

impl<C: Connector> fmt::Debug for ClusterConn<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConn")
            .field("node", &self.node.name)
            .field("role", &self.node.role())
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

/// A read that fell back to the primary, counted against the primary's read budget while it
/// lasts.
#[derive(Debug)]
pub(crate) struct FallbackRead(Arc<AtomicUsize>);

impl FallbackRead {
    /// Takes a slot of the budget, if one is free.
    pub(crate) fn try_take(counter: &Arc<AtomicUsize>, budget: usize) -> Result<Self, usize> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < budget).then_some(n + 1)
            })
            .map(|_| FallbackRead(counter.clone()))
    }
}

impl Drop for FallbackRead {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
