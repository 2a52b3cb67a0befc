//! Metric names and per-pool handles.
//!
//! seawall reports through the [`metrics`] facade, so any exporter (Prometheus, StatsD, ...) the
//! application installs receives them (`examples/prometheus.rs` serves them to Prometheus).
//! Handles are registered once when a pool, breaker or admission gate is built, so the hot path
//! only bumps a handle: install the recorder before building pools, or their metrics go nowhere.
//!
//! Every metric seawall emits, one per row. Per-node metrics carry the node's name as `node`,
//! pool metrics too (a standalone pool's name; in a [`Cluster`](crate::Cluster), the node's).
//! Durations are in seconds. Most metrics are registered when their owner is built, so an exporter shows them from then on; the breaker's transition and rejection counters
//! and the event counter are registered at their first increment, and appear only once that
//! happened.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `seawall_pool_acquired_total` | counter | `node` | connections handed out |
//! | `seawall_pool_timeouts_total` | counter | `node` | acquires that failed at their deadline |
//! | `seawall_pool_broken_total` | counter | `node` | connections discarded as broken |
//! | `seawall_pool_connects_total` | counter | `node` | connections opened |
//! | `seawall_pool_connect_failures_total` | counter | `node` | failed connect attempts |
//! | `seawall_pool_closed_total` | counter | `node` | connections closed for any reason |
//! | `seawall_pool_acquire_wait_seconds` | histogram | `node` | time an acquire waited (0 when served at once) |
//! | `seawall_pool_connect_seconds` | histogram | `node` | duration of successful connects |
//! | `seawall_pool_size` | gauge | `node` | open connections, idle or in use |
//! | `seawall_pool_idle` | gauge | `node` | connections ready in the pool |
//! | `seawall_pool_in_use` | gauge | `node` | connections checked out (or being reset after their return) |
//! | `seawall_pool_waiters` | gauge | `node` | acquires waiting for a connection |
//! | `seawall_pool_connecting` | gauge | `node` | connects in flight, including those waiting in backoff |
//! | `seawall_breaker_state` | gauge | `node` | the node's breaker: 0 closed, 1 open, 2 half-open |
//! | `seawall_breaker_in_state` | gauge | `node`, `state` | 1 for the breaker's current state (`closed`, `open`, `half_open`), 0 for the others |
//! | `seawall_node_up` | gauge | `node` | 1 while the health monitor counts the node up, 0 while down (sampled by the flight recorder) |
//! | `seawall_node_fenced` | gauge | `node` | 1 while the node is fenced (split brain, stale timeline, not the named leader), else 0 (sampled by the flight recorder) |
//! | `seawall_replication_lag_seconds` | gauge | `node` | a node's replication lag from its last probe, 0 for the primary, absent while unknown (sampled by the flight recorder) |
//! | `seawall_incident_open` | gauge | `node`, `verdict`, `layer` | 1 while the [diagnosis](crate::diagnosis) has an incident open with that verdict (`saturated`, `unreachable`, ... as [`Finding::name`](crate::diagnosis::Finding::name)) on that node (`application` for the application as a whole), blaming that layer (`database`, `replication`, `application`); 0 once it closed |
//! | `seawall_query_seconds` | histogram | `node` | time callers held a connection of the node through the cluster: the work's own time, waits excluded |
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
//! | `seawall_routed_total` | counter | `route`, `node` | work the cluster routed, by the node that took it (for `retried_on_primary`, the replica that refused): `read_replica` (reads served by a replica), `read_primary_fallback` (reads the primary took because no replica could), `write` (acquires for writes and transactions), `retried_on_primary` (statements a replica refused as writes, run again on the primary) |
//! | `seawall_route_failures_total` | counter | `cause` | cluster acquires and statements that failed, by cause: `timeout`, `breaker_open`, `overloaded` (shed), `no_replica`, `no_primary`, `statement` (the statement failed on its node), `write_on_replica` (refused as a write, not retried), `other` |
//! | `seawall_learned_writes_total` | counter | | statements learned as writes after a replica refused them ([`RouteMemory`](crate::classify::RouteMemory)) |
//! | `seawall_cluster_events_total` | counter | `event` | [`ClusterEvent`](crate::ClusterEvent)s by [name](crate::ClusterEvent::name) (`node_down`, `node_up`, `breaker_opened`, `promoted`, ...) |
//!
//! With [`MetricNames::OpenTelemetry`](crate::pool::MetricNames::OpenTelemetry) on a pool's
//! builder, its pool metrics follow OpenTelemetry's semantic conventions for database client
//! connection pools instead, each labelled `db.client.connection.pool.name` (exporters such as
//! Prometheus's turn the dots into underscores):
//!
//! * `db.client.connection.count` (gauge, `db.client.connection.state` = `idle` or `used`):
//!   instead of `seawall_pool_idle` and `seawall_pool_in_use`;
//! * `db.client.connection.idle.min`, `db.client.connection.max` (gauges): the pool's
//!   `min_idle` and `max_size`;
//! * `db.client.connection.pending_requests` (gauge): instead of `seawall_pool_waiters`;
//! * `db.client.connection.timeouts` (counter): instead of `seawall_pool_timeouts_total`;
//! * `db.client.connection.create_time`, `db.client.connection.wait_time` (histograms,
//!   seconds): instead of `seawall_pool_connect_seconds` and `seawall_pool_acquire_wait_seconds`.
//!
//! The other pool metrics have no equivalent there and are not emitted; `use_time` is the
//! cluster's `seawall_query_seconds` per node. Breaker, admission and cluster metrics keep their
//! names.
//!
//! Every metric has a `# HELP` text (its meaning here) for exporters that show one: seawall
//! describes them when a pool is built, from this table.
//!
//! The pool gauges are sampled by the pool's maintenance task (every `maintenance_interval`) and
//! on [`Pool::state`](crate::pool::Pool::state); the admission gauges change with every admission.
//! Per-statement figures are not metrics (one series per statement would swamp a metrics
//! backend): read them from [`Cluster::statements`](crate::Cluster::statements).
//! `seawall_cluster_events_total` is labelled by event only: which node an event concerns is in
//! the event itself, for a subscriber of [`Cluster::subscribe`](crate::Cluster::subscribe).

/// Describes every metric of the table above (`# HELP` in Prometheus) to the installed
/// recorder. Called when a pool is built; cheap after the first call (the table is parsed once).
pub(crate) fn describe() {
    use std::sync::OnceLock;
    static TABLE: OnceLock<Vec<(&'static str, &'static str, &'static str)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        include_str!("metrics.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `seawall_"))
            .filter_map(|row| {
                let mut cells = row.splitn(4, '|').map(str::trim);
                let name = cells.next()?.trim_end_matches('`');
                let kind = cells.next()?;
                let _labels = cells.next()?;
                let meaning = cells.next()?.trim_end_matches('|').trim();
                Some((name, kind, meaning))
            })
            .collect()
    });
    for &(name, kind, meaning) in table {
        let name = format!("seawall_{name}");
        match kind {
            "counter" => metrics::describe_counter!(name, meaning),
            "gauge" => metrics::describe_gauge!(name, meaning),
            _ => metrics::describe_histogram!(name, metrics::Unit::Seconds, meaning),
        }
    }
}
