//! Metric names and per-pool handles.
//!
//! seawall reports through the [`metrics`] facade, so any exporter (Prometheus, StatsD, ...) the
//! application installs receives them (`examples/prometheus.rs` serves them to Prometheus).
//! Handles are registered once when a pool, breaker or admission gate is built, so the hot path
//! only bumps a handle: install the recorder before building pools, or their metrics go nowhere.
//!
//! Every metric seawall emits, one per row. Pool metrics carry the pool's name as `pool` (in a
//! [`Cluster`](crate::Cluster), the node's name); breaker and admission metrics carry the node's
//! name as `node`. Durations are in seconds. Most metrics are registered when their owner is
//! built, so an exporter shows them from then on; the breaker's transition and rejection counters
//! and the event counter are registered at their first increment, and appear only once that
//! happened.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `seawall_pool_acquired_total` | counter | `pool` | connections handed out |
//! | `seawall_pool_timeouts_total` | counter | `pool` | acquires that failed at their deadline |
//! | `seawall_pool_broken_total` | counter | `pool` | connections discarded as broken |
//! | `seawall_pool_connects_total` | counter | `pool` | connections opened |
//! | `seawall_pool_connect_failures_total` | counter | `pool` | failed connect attempts |
//! | `seawall_pool_closed_total` | counter | `pool` | connections closed for any reason |
//! | `seawall_pool_acquire_wait_seconds` | histogram | `pool` | time an acquire waited (0 when served at once) |
//! | `seawall_pool_connect_seconds` | histogram | `pool` | duration of successful connects |
//! | `seawall_pool_size` | gauge | `pool` | open connections, idle or in use |
//! | `seawall_pool_idle` | gauge | `pool` | connections ready in the pool |
//! | `seawall_pool_in_use` | gauge | `pool` | connections checked out (or being reset after their return) |
//! | `seawall_pool_waiters` | gauge | `pool` | acquires waiting for a connection |
//! | `seawall_pool_connecting` | gauge | `pool` | connects in flight, including those waiting in backoff |
//! | `seawall_breaker_state` | gauge | `node` | the node's breaker: 0 closed, 1 open, 2 half-open |
//! | `seawall_breaker_transitions_total` | counter | `node`, `to` | breaker state changes, by new state (`closed`, `open`, `half_open`) |
//! | `seawall_breaker_rejected_total` | counter | `node`, `state` | calls refused by an open or full half-open breaker, by its state |
//! | `seawall_admission_limit` | gauge | `node` | the node's adaptive concurrency limit |
//! | `seawall_admission_in_flight` | gauge | `node` | work admitted and not yet finished |
//! | `seawall_admission_queue_len` | gauge | `node` | requests waiting in the admission queue |
//! | `seawall_admission_lifo` | gauge | `node` | 1 while the overloaded queue serves newest first and sheds, 0 otherwise |
//! | `seawall_admission_admitted_total` | counter | `node` | requests let in, at once or from the queue |
//! | `seawall_admission_rejected_total` | counter | `node` | requests refused on arrival (queue full, deadline already past, gate closed) |
//! | `seawall_admission_shed_total` | counter | `node` | queued requests shed (waited too long under overload, or displaced by a higher priority) |
//! | `seawall_admission_expired_total` | counter | `node` | queued requests whose deadline passed in the queue |
//! | `seawall_admission_queue_delay_seconds` | histogram | `node` | time a request admitted from the queue waited there (immediate admissions are not recorded) |
//! | `seawall_routed_total` | counter | `route` | work the cluster routed: `read_replica` (reads served by a replica), `read_primary_fallback` (reads the primary took because no replica could), `write` (acquires for writes and transactions), `retried_on_primary` (statements a replica refused as writes, run again on the primary) |
//! | `seawall_route_failures_total` | counter | `cause` | cluster acquires and statements that failed, by cause: `timeout`, `breaker_open`, `overloaded` (shed), `no_replica`, `no_primary`, `statement` (the statement failed on its node), `write_on_replica` (refused as a write, not retried), `other` |
//! | `seawall_learned_writes_total` | counter | | statements learned as writes after a replica refused them ([`RouteMemory`](crate::classify::RouteMemory)) |
//! | `seawall_cluster_events_total` | counter | `event` | [`ClusterEvent`](crate::ClusterEvent)s by [name](crate::ClusterEvent::name) (`node_down`, `node_up`, `breaker_opened`, `promoted`, ...) |
//!
//! The pool gauges are sampled by the pool's maintenance task (every `maintenance_interval`) and
//! on [`Pool::state`](crate::pool::Pool::state); the admission gauges change with every admission.
//! Per-statement figures are not metrics (one series per statement would swamp a metrics
//! backend): read them from [`Cluster::statements`](crate::Cluster::statements).
//! `seawall_cluster_events_total` is labelled by event only: which node an event concerns is in
//! the event itself, for a subscriber of [`Cluster::subscribe`](crate::Cluster::subscribe).
