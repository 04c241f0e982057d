//! The health of the upstream stream, as `/ready` and `/status` report it.
//!
//! Ingest records what happens (connected, event seen, error, reconnecting); the HTTP thread reads.
//! Events are recorded with one atomic store, so the hot path never takes the lock.
//!
//! Healthy means: reconnecting (a transient state), or connected and not stale: an event within
//! twice the heartbeat interval, or, before the first event, connected for less than that. One bad
//! event is counted (`error_count`), never a readiness failure; only [`StreamStatus::Error`]
//! (a fatal upstream problem: bad token, attempts exhausted) is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::HealthConfig;

/// State of the upstream stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatus {
    Connected,
    Disconnected,
    Reconnecting,
    Error(String),
}

impl StreamStatus {
    pub fn name(&self) -> &'static str {
        match self {
            StreamStatus::Connected => "Connected",
            StreamStatus::Disconnected => "Disconnected",
            StreamStatus::Reconnecting => "Reconnecting",
            StreamStatus::Error(_) => "Error",
        }
    }
}

/// What `/status` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    pub healthy: bool,
    pub status: StreamStatus,
    /// Seconds since the last upstream event, if any.
    pub last_event_age: Option<Duration>,
    pub error_count: u64,
    pub last_error: Option<String>,
    /// Time since the current connection was established.
    pub connection_uptime: Option<Duration>,
    /// Connected but silent for longer than twice the heartbeat.
    pub stale: bool,
}

struct Inner {
    status: StreamStatus,
    connected_at: Option<Instant>,
    last_error: Option<String>,
}

/// Shared between ingest (writer) and the HTTP thread (reader).
pub struct HealthMonitor {
    config: HealthConfig,
    origin: Instant,
    /// Nanoseconds after `origin` of the last event, plus one; 0 = none yet.
    last_event: AtomicU64,
    errors: AtomicU64,
    inner: Mutex<Inner>,
}

impl HealthMonitor {
    pub fn new(config: HealthConfig) -> Self {
        HealthMonitor {
            config,
            origin: Instant::now(),
            last_event: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                status: StreamStatus::Disconnected,
                connected_at: None,
                last_error: None,
            }),
        }
    }

    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stream is established (first message received).
    pub fn record_connection(&self) {
        self.record_connection_at(Instant::now())
    }

    pub fn record_connection_at(&self, now: Instant) {
        let mut g = self.lock();
        g.status = StreamStatus::Connected;
        g.connected_at = Some(now);
    }

    pub fn record_disconnection(&self) {
        let mut g = self.lock();
        g.status = StreamStatus::Disconnected;
        g.connected_at = None;
    }

    pub fn record_reconnecting(&self) {
        let mut g = self.lock();
        g.status = StreamStatus::Reconnecting;
        g.connected_at = None;
    }

    /// A fatal upstream problem (bad token, attempts exhausted): not ready until the next connection.
    pub fn record_fatal(&self, message: impl Into<String>) {
        let message = message.into();
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut g = self.lock();
        g.last_error = Some(message.clone());
        g.status = StreamStatus::Error(message);
        g.connected_at = None;
    }

    /// A non-fatal problem (one bad event, one failed connect attempt): counted, remembered.
    pub fn record_error(&self, message: impl Into<String>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.lock().last_error = Some(message.into());
    }

    /// An upstream event arrived. Lock-free.
    pub fn record_event(&self) {
        self.record_event_at(Instant::now())
    }

    pub fn record_event_at(&self, now: Instant) {
        let nanos = now.saturating_duration_since(self.origin).as_nanos() as u64 + 1;
        self.last_event.store(nanos, Ordering::Relaxed);
    }

    pub fn status(&self) -> StreamStatus {
        self.lock().status.clone()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn is_healthy(&self) -> bool {
        self.report_at(Instant::now()).healthy
    }

    pub fn report(&self) -> HealthReport {
        self.report_at(Instant::now())
    }

    pub fn report_at(&self, now: Instant) -> HealthReport {
        let g = self.lock();
        let last = self.last_event.load(Ordering::Relaxed);
        let last_event_age = (last > 0)
            .then(|| now.saturating_duration_since(self.origin + Duration::from_nanos(last - 1)));
        let connection_uptime = g.connected_at.map(|t| now.saturating_duration_since(t));
        let window = self.config.heartbeat_interval * 2;
        let stale = match (&g.status, last_event_age, connection_uptime) {
            (StreamStatus::Connected, Some(age), Some(up)) => age > window && up > window,
            (StreamStatus::Connected, None, Some(up)) => up > window,
            _ => false,
        };
        let healthy = match g.status {
            StreamStatus::Reconnecting => true,
            StreamStatus::Connected => !stale,
            StreamStatus::Disconnected | StreamStatus::Error(_) => false,
        };
        HealthReport {
            healthy,
            status: g.status.clone(),
            last_event_age,
            error_count: self.error_count(),
            last_error: g.last_error.clone(),
            connection_uptime,
            stale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor() -> HealthMonitor {
        HealthMonitor::new(HealthConfig::new().with_heartbeat_interval(Duration::from_secs(10)))
    }

    #[test]
    fn connected_with_recent_events_is_healthy() {
        let m = monitor();
        let t0 = Instant::now();
        assert!(!m.report_at(t0).healthy, "disconnected at start");
        m.record_connection_at(t0);
        m.record_event_at(t0 + Duration::from_secs(1));
        let r = m.report_at(t0 + Duration::from_secs(5));
        assert!(r.healthy && !r.stale);
        assert_eq!(r.status, StreamStatus::Connected);
        assert_eq!(r.last_event_age, Some(Duration::from_secs(4)));
    }

    #[test]
    fn connected_but_silent_turns_stale_then_recovers() {
        let m = monitor();
        let t0 = Instant::now();
        m.record_connection_at(t0);
        m.record_event_at(t0);
        let r = m.report_at(t0 + Duration::from_secs(21));
        assert!(r.stale && !r.healthy);
        m.record_event_at(t0 + Duration::from_secs(22));
        assert!(m.report_at(t0 + Duration::from_secs(23)).healthy);
    }

    #[test]
    fn one_bad_event_is_counted_not_a_readiness_failure() {
        let m = monitor();
        let t0 = Instant::now();
        m.record_connection_at(t0);
        m.record_error("decode: unknown discriminator");
        let r = m.report_at(t0 + Duration::from_secs(1));
        assert!(r.healthy);
        assert_eq!(r.error_count, 1);
        assert_eq!(
            r.last_error.as_deref(),
            Some("decode: unknown discriminator")
        );
    }

    #[test]
    fn fatal_errors_make_it_unready_until_reconnected() {
        let m = monitor();
        let t0 = Instant::now();
        m.record_fatal("unauthenticated: bad x-token");
        assert!(!m.report_at(t0).healthy);
        assert!(matches!(m.status(), StreamStatus::Error(_)));
        m.record_reconnecting();
        assert!(m.report_at(t0).healthy);
        m.record_connection_at(t0);
        assert!(m.report_at(t0 + Duration::from_secs(1)).healthy);
    }
}
