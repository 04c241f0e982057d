//! Process metrics: plain atomics written on the hot paths, rendered as Prometheus text by the HTTP
//! thread. Queue depths are read from the queues themselves when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// A gauge read at scrape time, e.g. a queue's current length.
pub type GaugeFn = Box<dyn Fn() -> u64 + Send + Sync>;

macro_rules! counters {
    ($($name:ident: $kind:literal, $help:literal;)*) => {
        /// Counters and gauges shared by every thread.
        pub struct Metrics {
            started: Instant,
            $(pub $name: AtomicU64,)*
            gauges: Mutex<Vec<(String, String, GaugeFn)>>,
        }

        impl Metrics {
            pub fn new() -> Self {
                Metrics { started: Instant::now(), $($name: AtomicU64::new(0),)* gauges: Mutex::new(Vec::new()) }
            }

            /// Prometheus text exposition format.
            pub fn render(&self) -> String {
                let mut out = String::with_capacity(2048);
                $(
                    let _ = writeln!(out, "# HELP stackcore_{} {}", stringify!($name), $help);
                    let _ = writeln!(out, "# TYPE stackcore_{} {}", stringify!($name), $kind);
                    let _ = writeln!(out, "stackcore_{} {}", stringify!($name), self.$name.load(Ordering::Relaxed));
                )*
                let _ = writeln!(out, "# TYPE stackcore_uptime_seconds gauge");
                let _ = writeln!(out, "stackcore_uptime_seconds {}", self.started.elapsed().as_secs_f64());
                let gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
                let mut last = "";
                for (name, labels, f) in gauges.iter() {
                    if name != last {
                        let _ = writeln!(out, "# TYPE stackcore_{name} gauge");
                        last = name;
                    }
                    let _ = writeln!(out, "stackcore_{name}{{{labels}}} {}", f());
                }
                out
            }
        }
    };
}

counters! {
    upstream_updates_total: "counter", "Raw updates received from the upstream source.";
    upstream_errors_total: "counter", "Malformed or undecodable upstream updates, skipped.";
    events_applied_total: "counter", "Updates run through the VM.";
    decode_errors_total: "counter", "Updates whose bytes the stack's IDLs could not decode (skipped).";
    vm_handler_errors_total: "counter", "Updates a handler step failed on (a transform or aggregate of the wrong type): skipped, the entity row left as it was.";
    vm_unknown_events_total: "counter", "Decoded updates of a type the stack has no handler for (ignored).";
    vm_skipped_stale_total: "counter", "Account updates not newer in (slot, write_version) than the last applied for that account (dropped).";
    vm_skipped_duplicate_total: "counter", "Instructions seen before (dropped).";
    vm_queued_pending_total: "counter", "Updates queued until the address they name is mapped.";
    vm_replayed_total: "counter", "Queued updates replayed once their address was mapped.";
    vm_dropped_pending_total: "counter", "Queued updates dropped by the pending-queue bounds.";
    vm_deferred_when_total: "counter", "Writes deferred until their `when` instruction arrives.";
    vm_expired_when_total: "counter", "Deferred `when` writes dropped (expired or over their bound).";
    vm_evicted_rows_total: "counter", "Entity rows evicted from the VM's state tables (StateTableConfig.max_entries).";
    vm_resolver_requests_dropped_total: "counter", "Resolver requests the VM dropped because its own request bound was full.";
    mutations_total: "counter", "Entity mutations produced by the VM.";
    frames_total: "counter", "Frames produced by the views (each serialized once).";
    frames_sent_total: "counter", "Frame deliveries to clients.";
    bytes_sent_total: "counter", "Bytes written to WebSocket clients.";
    connected_clients: "gauge", "Open WebSocket connections.";
    subscriptions: "gauge", "Active subscriptions.";
    pending_outbound_bytes: "gauge", "Bytes queued for clients, all connections.";
    slow_consumers_closed_total: "counter", "Connections closed for exceeding their outbound budget.";
    rejected_connections_total: "counter", "Connections refused (limit or auth).";
    subject_limit_refusals_total: "counter", "Upgrades refused with 429: the subject is at its max_connections.";
    ip_limit_refusals_total: "counter", "Upgrades refused with 429: the peer IP is at max_connections_per_ip.";
    origin_limit_refusals_total: "counter", "Upgrades refused with 429: the Origin is at max_connections_per_origin.";
    metering_key_limit_refusals_total: "counter", "Upgrades refused with 429: the session's metering key is at max_connections_per_metering_key.";
    rate_limited_closed_total: "counter", "Connections closed for sending more than max_messages_per_minute (rate-limit-exceeded).";
    egress_limited_closed_total: "counter", "Connections closed for being sent more than max_bytes_per_minute (egress-limit-exceeded).";
    snapshot_limit_refusals_total: "counter", "Subscriptions refused for a snapshot over max_snapshot_rows (snapshot-limit-exceeded).";
    subscription_limit_refusals_total: "counter", "Subscribes refused: the connection is at its max_subscriptions.";
    reconnects_total: "counter", "Upstream reconnections.";
    last_slot: "gauge", "Highest slot handed to the VM workers.";
    resolver_requests_total: "counter", "Resolver requests handed to a resolver thread.";
    resolver_requests_dropped_total: "counter", "Resolver requests dropped: the resolver queue was full (or no resolver runs).";
    resolver_unresolvable_total: "counter", "Resolver requests that cannot be fetched: no DAS endpoint, an unusable input, or a mint the DAS answer lacks.";
    resolver_cache_hits_total: "counter", "Resolver requests answered from the resolver cache.";
    resolver_cache_misses_total: "counter", "Resolver requests that needed a fetch.";
    resolver_backoff_skipped_total: "counter", "Resolver requests skipped because the same fetch failed less than retry_after ago.";
    resolver_fetches_total: "counter", "HTTP calls made by resolver threads (one per DAS batch or distinct URL).";
    resolver_errors_total: "counter", "Failed resolver HTTP calls, all kinds (the kinds follow).";
    resolver_timeouts_total: "counter", "Resolver HTTP calls that timed out.";
    resolver_http_status_errors_total: "counter", "Resolver HTTP calls answered with a non-2xx status.";
    resolver_bad_responses_total: "counter", "Resolver answers that were not JSON, too large, a JSON-RPC error, or without a result.";
    resolver_missing_path_total: "counter", "URL resolver answers lacking the spec's extract_path.";
    resolver_transport_errors_total: "counter", "Resolver HTTP calls that failed to connect or broke off.";
    resolver_results_total: "counter", "Resolved values sent back to the VM workers.";
    resolver_apply_errors_total: "counter", "Resolved values the VM could not apply.";
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Registers a gauge read at scrape time, e.g. `("queue_depth", "queue=\"worker0\"", len_fn)`.
    pub fn register_gauge(&self, name: &str, labels: &str, f: GaugeFn) {
        let mut g = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        g.push((name.to_string(), labels.to_string(), f));
        g.sort_by(|a, b| a.0.cmp(&b.0));
    }

    /// Drops every registered gauge (and whatever its closure holds, e.g. a queue's sender).
    pub fn clear_gauges(&self) {
        self.gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Seconds since the process-wide metrics were created.
    pub fn uptime_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_gauges() {
        let m = Metrics::new();
        Metrics::add(&m.frames_total, 3);
        m.register_gauge("queue_depth", "queue=\"worker0\"", Box::new(|| 7));
        let text = m.render();
        assert!(
            text.contains("# TYPE stackcore_frames_total counter\nstackcore_frames_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("stackcore_queue_depth{queue=\"worker0\"} 7\n"),
            "{text}"
        );
    }
}
