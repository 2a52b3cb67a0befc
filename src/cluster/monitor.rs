//! The health monitor and topology discovery: one task per node probes it on a dedicated
//! connection, and every result is reconciled with the cluster's view of who is primary.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::follow::Leader;
use super::{Node, Role, Shared};
use crate::driver::{Connector, NodeStatus};

use crate::failover::{ClusterEvent, Promoted};

/// What one probe found: the status (if the driver can tell) and the probe's round trip, or why
/// it failed.
pub(crate) type ProbeResult = Result<(Option<NodeStatus>, Duration), String>;

/// Probes `node` every interval until the node or the cluster is dropped.
///
/// The probe runs on its own connection ([`Connector::connect_probe`]), not one from the node's
/// pool: a saturated pool must not look like a dead node (that would fail over a primary for
/// being busy). For the same reason a failed probe is not counted against a node that answered
/// statements since the probe before it.
///
/// A down node that has just answered is probed again after a tenth of the interval: the
/// confirmation `up_after` asks for then costs milliseconds, not whole intervals in which
/// writes wait for a primary that is already back.
pub(crate) async fn run<C: Connector>(cluster: Weak<Shared<C>>, node: Weak<Node<C>>) {
    let Some(stop) = cluster.upgrade().map(|s| s.stop.clone()) else {
        return;
    };
    let _running = stop.running();
    let mut conn: Option<C::Connection> = None;
    // Statements the node had answered at the last probe.
    let mut served = node.upgrade().map_or(0, |n| n.load.served());
    loop {
        let (every, timeout) = match cluster.upgrade() {
            Some(shared) => match shared.settings.health.interval {
                Some(every) => (every, shared.settings.health.timeout),
                None => return,
            },
            None => return,
        };
        let confirming = node
            .upgrade()
            .is_some_and(|n| !n.is_up() && n.health.lock().successes > 0);
        let wait = if confirming {
            (every / 10).max(Duration::from_millis(1))
        } else {
            every
        };
        if !stop.sleep(wait).await {
            return;
        }
        let (Some(shared), Some(node)) = (cluster.upgrade(), node.upgrade()) else {
            return;
        };
        if node.pool.is_closed() {
            return;
        }
        let result = probe_on(&node, &mut conn, timeout).await;
        let served_before = std::mem::replace(&mut served, node.load.served());
        if let Err(error) = &result {
            if served > served_before {
                // Statements completed on the node since the last probe, which failed (no
                // connection to be had, or an answer stuck behind the load): busy, not down.
                tracing::debug!(node = %node.name, %error, "probe failed while the node served statements; not counted");
                continue;
            }
        }
        observe(&shared, &node, result);
    }
}

/// One probe on a fresh connection.
pub(crate) async fn probe<C: Connector>(node: &Node<C>, timeout: Duration) -> ProbeResult {
    probe_on(node, &mut None, timeout).await
}

/// One probe on `conn` (opened first if needed; dropped after a failure).
async fn probe_on<C: Connector>(
    node: &Node<C>,
    conn: &mut Option<C::Connection>,
    timeout: Duration,
) -> ProbeResult {
    let connector = node.pool.connector();
    let attempt = async {
        if conn.is_none() {
            *conn = Some(connector.connect_probe().await.map_err(|e| e.to_string())?);
        }
        let c = conn.as_mut().expect("connected above");
        let sent = Instant::now();
        let status = connector.probe(c).await.map_err(|e| e.to_string())?;
        Ok((status, sent.elapsed()))
    };
    let result = match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {timeout:?}")),
    };
    if result.is_err() {
        *conn = None;
    }
    result
}

/// Takes one probe result into account: health, lag and position, role.
pub(crate) fn observe<C: Connector>(
    shared: &Arc<Shared<C>>,
    node: &Arc<Node<C>>,
    result: ProbeResult,
) {
    let health = shared.settings.health;
    match result {
        Ok((status, round_trip)) => {
            let (came_up, probes_failed) = {
                let mut h = node.health.lock();
                let probes_failed = h.failures > 0;
                h.failures = 0;
                h.failing_since = None;
                h.successes = h.successes.saturating_add(1);
                h.round_trip = Some(round_trip);
                (
                    !node.is_up() && h.successes >= health.up_after,
                    probes_failed,
                )
            };
            if !came_up && (probes_failed || node.pool.connect_failures() > 0) {
                // Probes or the pool's connects failed, but this probe got through: the backend is
                // back (a restart shorter than `down_after` probes). Connects waiting out their
                // backoff go now, and a breaker those failures opened closes: otherwise it
                // keeps every caller away from the pool, nothing reconnects, and a one-second
                // restart costs the breaker's whole open interval, growing with each re-trip.
                node.pool.reached();
                if node.breaker.state() != crate::breaker::BreakerState::Closed {
                    node.breaker.reset();
                }
                shared.topology_changed.notify_waiters();
            }
            if came_up {
                // Proven healthy again: take work at once, not after a breaker interval that
                // grew while it was down, and without the failure penalties of the outage in
                // its latency estimate (the balancer would avoid it for tens of seconds).
                node.breaker.reset();
                node.load.reset_latency();
                node.pool.reached();
                // Connections opened before the outage are dead or stale (a restarted server
                // dropped their sessions): handing them out would fail reads one by one.
                node.pool.purge_idle();
                node.set_up(true);
                shared.emit(ClusterEvent::NodeUp {
                    node: node.name.clone(),
                });
            }
            // A node without a latency sample of its own (just readmitted, or new) would be
            // priced at the default RTT and avoided next to nodes measured in microseconds:
            // its probe's round trip is a real measurement to start from.
            if !node.load.is_sampled() {
                node.load.record(round_trip, true);
            }
            match status {
                Some(status) => {
                    node.load.set_replication_lag(status.lag);
                    if let Some(position) = status.position {
                        node.load.set_replayed_position(position);
                    }
                    if let Some(timeline) = status.timeline {
                        node.set_timeline(timeline);
                    }
                    reconcile_role(shared, node, status.is_primary);
                }
                // The driver cannot tell roles: the configured one stands.
                None => reconcile_role(shared, node, node.role() == Role::Primary),
            }
        }
        Err(error) => {
            let went_down = {
                let mut h = node.health.lock();
                h.successes = 0;
                h.failures = h.failures.saturating_add(1);
                h.failing_since.get_or_insert_with(Instant::now);
                h.last_error.clone_from(&error);
                node.is_up() && h.failures >= health.down_after
            };
            // A failed probe counts against the node's breaker like a failed call.
            if let Ok(call) = node.breaker.try_call() {
                node.finish_call(call, crate::breaker::Outcome::Failure);
            }
            if went_down {
                node.set_up(false);
                shared.emit(ClusterEvent::NodeDown {
                    node: node.name.clone(),
                    error,
                });
                let is_primary = shared
                    .topology
                    .read()
                    .primary
                    .as_ref()
                    .is_some_and(|p| Arc::ptr_eq(p, node));
                if is_primary {
                    primary_lost(shared, node, "down");
                }
            }
        }
    }
    maybe_promote(shared);
}

pub(crate) fn primary_lost<C: Connector>(shared: &Shared<C>, node: &Node<C>, reason: &str) {
    shared
        .primary_lost_at
        .lock()
        .get_or_insert_with(Instant::now);
    shared.emit(ClusterEvent::PrimaryLost {
        node: node.name.clone(),
        reason: reason.to_owned(),
    });
}

fn writes_resumed<C: Connector>(shared: &Shared<C>, primary: &Node<C>) {
    let lost_at = shared.primary_lost_at.lock().take();
    if let Some(lost_at) = lost_at {
        shared.emit(ClusterEvent::WritesResumed {
            primary: primary.name.clone(),
            after: lost_at.elapsed(),
        });
    }
    shared.topology_changed.notify_waiters();
}

/// Brings the topology in line with what `node` says it is.
fn reconcile_role<C: Connector>(shared: &Shared<C>, node: &Arc<Node<C>>, reports_primary: bool) {
    if reports_primary {
        // History decides before anyone's word: a primary on an older timeline than another
        // node reports was failed over, whatever it or the HA manager says now.
        let highest = shared.topology.read().highest_timeline();
        if let (Some(timeline), Some(highest)) = (node.timeline(), highest) {
            if timeline < highest {
                return fence_stale(shared, node, timeline, highest);
            }
        }
        let leader = shared.leader.read().clone();
        match leader {
            Leader::Unknown => {}
            // The HA manager's word decides who may write: a writable node it does not name
            // is fenced, in every instance alike.
            Leader::None => return fence_unnamed(shared, node, None),
            Leader::Named(name) if *name != *node.name => {
                return fence_unnamed(shared, node, Some(name));
            }
            Leader::Named(_) => return adopt(shared, node),
        }
    }
    let mut topology = shared.topology.write();
    let is_current = topology
        .primary
        .as_ref()
        .is_some_and(|p| Arc::ptr_eq(p, node));
    match (reports_primary, is_current) {
        (true, true) => {
            if node.is_usable() && shared.primary_lost_at.lock().is_some() {
                drop(topology);
                writes_resumed(shared, node);
            }
        }
        (true, false) => {
            let current = topology.primary.as_ref().filter(|p| p.is_usable()).cloned();
            if let Some(primary) = current {
                match (node.timeline(), primary.timeline()) {
                    (Some(newer), Some(older)) if newer > older && node.is_up() => {
                        // Promoted after the primary in use (whose probe has not shown it on
                        // the older timeline yet): the newer history wins, the old primary is
                        // fenced.
                        make_primary(&mut topology, node);
                        drop(topology);
                        announce_stale(shared, &primary, older, newer);
                        writes_resumed(shared, node);
                        return;
                    }
                    // The primary in use has not told its timeline yet (its first probe is
                    // still to come): no verdict on either until it has. Meanwhile the
                    // newcomer takes no writes; fencing it now could keep the newer history
                    // fenced for good once the old primary turns out to be the stale one.
                    (Some(_), None) => return,
                    _ => {}
                }
                node.set_fenced(true);
                if !node.split_brain_reported.swap(true, Ordering::AcqRel) {
                    drop(topology);
                    shared.emit(ClusterEvent::SplitBrain {
                        node: node.name.clone(),
                        primary: primary.name.clone(),
                    });
                }
                return;
            }
            if node.is_fenced() || !node.is_up() {
                // A fenced old primary claiming the role again needs an operator (its data
                // may have diverged); a down node is not adopted until it is up.
                return;
            }
            // The primary is gone and this node is primary now (promoted by us, an operator or
            // an HA tool): writes follow it.
            make_primary(&mut topology, node);
            drop(topology);
            writes_resumed(shared, node);
        }
        (false, true) => {
            // Demoted (or still recovering): it answers, but must not take writes.
            topology.primary = None;
            node.set_role(Role::Replica);
            topology.replicas.push(node.clone());
            drop(topology);
            primary_lost(shared, node, "demoted: it reports being a replica");
        }
        (false, false) => {
            if node.is_fenced() {
                node.set_fenced(false);
                node.split_brain_reported.store(false, Ordering::Release);
                drop(topology);
                shared.emit(ClusterEvent::Unfenced {
                    node: node.name.clone(),
                });
            }
        }
    }
}

/// The primary refused a write as read-only (SQLSTATE 25006): it was demoted behind our back.
/// Writes stop going there at once, and every node is probed now (one rediscovery at a time),
/// instead of at the next probe round.
pub(crate) fn refused_write_on_primary<C: Connector>(shared: &Arc<Shared<C>>, node: &Arc<Node<C>>) {
    reconcile_role(shared, node, false);
    if shared.rediscovering.swap(true, Ordering::AcqRel) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _done = Done(&shared.rediscovering);
        let nodes: Vec<_> = shared.topology.read().nodes().cloned().collect();
        for node in nodes {
            let result = probe(&node, shared.settings.health.timeout).await;
            observe(&shared, &node, result);
        }
    });
}

/// `node` takes the primary's place; the old primary becomes a replica, fenced until it proves
/// it rejoined as one.
fn make_primary<C: Connector>(topology: &mut super::Topology<C>, node: &Arc<Node<C>>) {
    topology.replicas.retain(|r| !Arc::ptr_eq(r, node));
    if let Some(old) = topology.primary.take() {
        old.set_role(Role::Replica);
        old.set_fenced(true);
        topology.replicas.push(old);
    }
    node.set_role(Role::Primary);
    node.load.set_replication_lag(Some(Duration::ZERO));
    topology.primary = Some(node.clone());
}

/// A node that reports primary on a timeline older than another node's: it never takes writes
/// (it stops being the primary if it was), and stays fenced until it reports being a replica.
fn fence_stale<C: Connector>(shared: &Shared<C>, node: &Arc<Node<C>>, timeline: u32, highest: u32) {
    let was_primary = {
        let mut topology = shared.topology.write();
        let current = topology
            .primary
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, node));
        if current {
            topology.primary = None;
            node.set_role(Role::Replica);
            topology.replicas.push(node.clone());
        }
        node.set_fenced(true);
        current
    };
    if was_primary {
        primary_lost(
            shared,
            node,
            &format!("on timeline {timeline}, older than timeline {highest}"),
        );
    }
    announce_stale(shared, node, timeline, highest);
}

/// Announces (once per episode) a node fenced for its older timeline.
fn announce_stale<C: Connector>(shared: &Shared<C>, node: &Node<C>, timeline: u32, highest: u32) {
    if !node.split_brain_reported.swap(true, Ordering::AcqRel) {
        shared.emit(ClusterEvent::StaleTimeline {
            node: node.name.clone(),
            timeline,
            highest,
        });
    }
}

/// A node that reports primary without being the named leader: fenced (once announced).
fn fence_unnamed<C: Connector>(shared: &Shared<C>, node: &Arc<Node<C>>, leader: Option<Arc<str>>) {
    let is_current = {
        let topology = shared.topology.read();
        topology
            .primary
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, node))
    };
    if is_current {
        // The watcher demotes it; nothing to add here.
        return;
    }
    node.set_fenced(true);
    if !node.split_brain_reported.swap(true, Ordering::AcqRel) {
        shared.emit(ClusterEvent::SplitBrain {
            node: node.name.clone(),
            primary: leader.unwrap_or_else(|| Arc::from("(none named)")),
        });
    }
}

/// The named leader reports primary: it takes writes, whatever was primary or fenced before
/// (the HA manager's leader key is the authority, not this process's history).
fn adopt<C: Connector>(shared: &Shared<C>, node: &Arc<Node<C>>) {
    if !node.is_up() {
        return;
    }
    let mut topology = shared.topology.write();
    if topology
        .primary
        .as_ref()
        .is_some_and(|p| Arc::ptr_eq(p, node))
    {
        let resumed = node.is_fenced() || shared.primary_lost_at.lock().is_some();
        node.set_fenced(false);
        drop(topology);
        if resumed {
            writes_resumed(shared, node);
        }
        return;
    }
    node.set_fenced(false);
    node.split_brain_reported.store(false, Ordering::Release);
    make_primary(&mut topology, node);
    drop(topology);
    writes_resumed(shared, node);
}

/// Starts an automatic promotion if one is configured, needed and allowed.
fn maybe_promote<C: Connector>(shared: &Arc<Shared<C>>) {
    if shared.promoter.is_none() || shared.promoting.load(Ordering::Acquire) {
        return;
    }
    let Some(primary) = shared.topology.read().primary.clone() else {
        // Demoted by someone else: they are expected to promote.
        return;
    };
    if primary.is_up() {
        return;
    }
    let rules = shared.settings.promotion;
    let due = {
        let h = primary.health.lock();
        h.failures >= rules.min_failures
            && h.failing_since
                .is_some_and(|since| since.elapsed() >= rules.min_down_for)
    };
    if !due || shared.promoting.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(promote(shared.clone(), primary));
}

/// The promotion itself; `promoting` is held for its duration.
async fn promote<C: Connector>(shared: Arc<Shared<C>>, old: Arc<Node<C>>) {
    struct Release<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let _release = Release(&shared.promoting);
    let started = Instant::now();
    let timeout = shared.settings.health.timeout;
    let Some(promoter) = shared.promoter.clone() else {
        return;
    };

    // Never while the old primary still answers any probe.
    if probe(&old, timeout).await.is_ok() {
        tracing::info!(node = %old.name, "primary answers again; no promotion");
        return;
    }

    // The most caught-up healthy replica, by fresh positions.
    let replicas: Vec<Arc<Node<C>>> = shared
        .topology
        .read()
        .replicas
        .iter()
        .filter(|r| r.is_usable())
        .cloned()
        .collect();
    let mut best: Option<(u64, Arc<Node<C>>)> = None;
    for replica in replicas {
        let result = probe(&replica, timeout).await;
        let already_primary = matches!(&result, Ok((Some(s), _)) if s.is_primary);
        let position = match &result {
            Ok((Some(s), _)) => s.position,
            _ => None,
        };
        observe_quietly(&shared, &replica, result);
        if already_primary {
            // Someone else promoted it; topology discovery adopted it.
            return;
        }
        if let Some(position) = position {
            if best.as_ref().is_none_or(|(p, _)| position > *p) {
                best = Some((position, replica));
            }
        }
    }
    let Some((position, candidate)) = best else {
        tracing::warn!("primary lost and no healthy replica to promote");
        return;
    };
    if let Some(lease) = shared.settings.promotion_lease.clone() {
        // In a fleet: only the instance that moves the record promotes, and only once every
        // other instance has read the new record or stopped writing (its read ran out).
        let failed = |error: String| ClusterEvent::PromotionFailed {
            candidate: candidate.name.clone(),
            error,
        };
        match lease.swap(Some(&old.name), &candidate.name).await {
            Ok(true) => {
                super::record::accept(&shared, &candidate.name, Instant::now());
                let interval = shared.settings.health.interval.unwrap_or(timeout);
                let fence = super::record::validity(&shared) + interval;
                tracing::info!(candidate = %candidate.name, ?fence, "promotion lease taken; waiting for the fleet to fence the old primary");
                if !shared.stop.sleep(fence).await {
                    return;
                }
            }
            Ok(false) => {
                let _ = super::record::read(&shared).await;
                let recorded = shared.leader.read().clone();
                shared.emit(failed(format!(
                    "another instance moved the promotion lease first (it names {recorded:?}); \
                     following it"
                )));
                return;
            }
            Err(e) => {
                shared.emit(failed(format!("not promoted: {e}")));
                return;
            }
        }
    }
    shared.emit(ClusterEvent::PromotionStarted {
        candidate: candidate.name.clone(),
        position,
    });
    match promoter.promote(&candidate.pool).await {
        Ok(()) => {
            reconcile_role(&shared, &candidate, true);
            let topology = shared.topology.read();
            let adopted = topology
                .primary
                .as_ref()
                .is_some_and(|p| Arc::ptr_eq(p, &candidate));
            if !adopted {
                // Promoted, but fenced here: another node claimed the role meanwhile (or the
                // old primary came back). Not a promotion to announce or to repoint replicas to:
                // two servers take writes, and an operator must choose.
                let primary = topology.primary.as_ref().map(|p| p.name.clone());
                drop(topology);
                shared.emit(ClusterEvent::PromotionFailed {
                    candidate: candidate.name.clone(),
                    error: format!(
                        "promoted, then fenced: {} is primary (split brain; an operator must \
                         choose)",
                        primary.as_deref().unwrap_or("no node")
                    ),
                });
                return;
            }
            let promoted = Promoted {
                new_primary: candidate.name.clone(),
                old_primary: old.name.clone(),
                replicas: topology
                    .replicas
                    .iter()
                    .filter(|r| !Arc::ptr_eq(r, &old) && !Arc::ptr_eq(r, &candidate))
                    .map(|r| r.name.clone())
                    .collect(),
                took: started.elapsed(),
            };
            drop(topology);
            if let Some(hook) = &shared.settings.on_promoted {
                hook(&promoted);
            }
            shared.emit(ClusterEvent::Promoted(promoted));
        }
        Err(e) => shared.emit(ClusterEvent::PromotionFailed {
            candidate: candidate.name.clone(),
            error: e.to_string(),
        }),
    }
}

/// `observe` without starting another promotion (we are in one).
fn observe_quietly<C: Connector>(
    shared: &Arc<Shared<C>>,
    node: &Arc<Node<C>>,
    result: ProbeResult,
) {
    if let Ok((Some(status), _)) = &result {
        node.load.set_replication_lag(status.lag);
        if let Some(position) = status.position {
            node.load.set_replayed_position(position);
        }
        if let Some(timeline) = status.timeline {
            node.set_timeline(timeline);
        }
        reconcile_role(shared, node, status.is_primary);
    }
}
