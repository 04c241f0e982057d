//! Configuration of every component, with the defaults of the HyperStack server documentation.
//!
//! Every bound in the process is a field here (or in [`EntityCacheConfig`] / [`StateTableConfig`]
//! of the engine) with its default in the docs. `validate` turns nonsense into a typed
//! [`ConfigError`] naming the field; nothing is clamped silently.

use std::net::SocketAddr;
use std::time::Duration;

pub use stackcore_engine::config::{ConfigError, EntityCacheConfig, StateTableConfig};
pub use stackcore_engine::vm::VmLimits;

/// The WebSocket server: where it listens and the limits it enforces per connection.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSocketConfig {
    /// Default `[::]:8877`.
    pub bind_address: SocketAddr,
    /// Connections beyond this get an HTTP 503 with a JSON body before the upgrade. Default 10,000.
    pub max_clients: usize,
    /// Frames queued per connection before it counts as a slow consumer. Default 512.
    pub message_queue_size: usize,
    /// Largest inbound message (and frame) accepted, in bytes. Default 64 KiB.
    pub max_message_size: usize,
    /// Outbound bytes queued per connection before it is closed as a slow consumer
    /// (close code 4008, reason `slow-consumer`). Default 1 MiB.
    pub max_outbound_bytes: usize,
    /// A connection with no inbound traffic for this long is closed. Default 300 s.
    pub idle_timeout: Duration,
    /// A connection silent for this long is sent a WebSocket ping. Default 30 s.
    pub ping_interval: Duration,
    /// Handshake authentication and the limits (`auth.limits`, a
    /// [`ConnectionLimits`](crate::reactor::auth::ConnectionLimits)): connections per subject,
    /// IP and origin; subscriptions, snapshot rows, inbound messages and egress bytes per
    /// connection. Default allow-all, 1,000 subscriptions per connection, everything else
    /// unlimited, a 60 s rate window.
    pub auth: crate::reactor::auth::AuthConfig,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            bind_address: SocketAddr::from(([0u16; 8], 8877)),
            max_clients: 10_000,
            message_queue_size: 512,
            max_message_size: 64 * 1024,
            max_outbound_bytes: 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
            ping_interval: Duration::from_secs(30),
            auth: Default::default(),
        }
    }
}

impl WebSocketConfig {
    pub fn new(bind_address: SocketAddr) -> Self {
        WebSocketConfig {
            bind_address,
            ..Default::default()
        }
    }
    pub fn with_max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }
    pub fn with_message_queue_size(mut self, n: usize) -> Self {
        self.message_queue_size = n;
        self
    }
    pub fn with_max_message_size(mut self, n: usize) -> Self {
        self.max_message_size = n;
        self
    }
    pub fn with_max_outbound_bytes(mut self, n: usize) -> Self {
        self.max_outbound_bytes = n;
        self
    }
    pub fn with_idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }
    pub fn with_ping_interval(mut self, d: Duration) -> Self {
        self.ping_interval = d;
        self
    }
    pub fn with_auth(mut self, auth: crate::reactor::auth::AuthConfig) -> Self {
        self.auth = auth;
        self
    }
    /// Sets the limits, keeping the auth plugin.
    pub fn with_limits(mut self, limits: crate::reactor::auth::ConnectionLimits) -> Self {
        self.auth.limits = limits;
        self
    }

    /// The defaults with the reference's environment variables applied (what the binary uses):
    /// `HYPERSTACK_WS_MESSAGE_QUEUE_SIZE`, `HYPERSTACK_WS_CLIENT_TIMEOUT_SECS` (idle timeout) and
    /// the limits of [`ConnectionLimits::with_env`](crate::reactor::auth::ConnectionLimits::with_env).
    pub fn from_env() -> Self {
        Self::default().with_env(|name| std::env::var(name).ok())
    }

    /// As [`WebSocketConfig::from_env`], reading variables through `var` (testable). A value
    /// that is not a positive integer keeps the current setting (logged).
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        use crate::reactor::auth::positive_env;
        if let Some(n) = positive_env(&var, "HYPERSTACK_WS_MESSAGE_QUEUE_SIZE") {
            self.message_queue_size = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = positive_env(&var, "HYPERSTACK_WS_CLIENT_TIMEOUT_SECS") {
            self.idle_timeout = Duration::from_secs(n);
        }
        self.auth.limits = self.auth.limits.with_env(var);
        self
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        nonzero("websocket.max_clients", self.max_clients)?;
        nonzero("websocket.message_queue_size", self.message_queue_size)?;
        nonzero("websocket.max_message_size", self.max_message_size)?;
        nonzero("websocket.max_outbound_bytes", self.max_outbound_bytes)?;
        nonzero_duration("websocket.idle_timeout", self.idle_timeout)?;
        nonzero_duration("websocket.ping_interval", self.ping_interval)?;
        let l = &self.auth.limits;
        nonzero(
            "websocket.auth.limits.max_subscriptions_per_connection",
            l.max_subscriptions_per_connection,
        )?;
        nonzero_duration(
            "websocket.auth.limits.rate_limit_window",
            l.rate_limit_window,
        )?;
        // A zero limit would refuse every connection or close every client: a mistake, not a
        // policy (`None` is unlimited). A zero `max_snapshot_rows` is allowed: live data only.
        for (field, v) in [
            (
                "websocket.auth.limits.max_connections_per_subject",
                l.max_connections_per_subject.map(|v| v as u64),
            ),
            (
                "websocket.auth.limits.max_connections_per_ip",
                l.max_connections_per_ip.map(|v| v as u64),
            ),
            (
                "websocket.auth.limits.max_connections_per_origin",
                l.max_connections_per_origin.map(|v| v as u64),
            ),
            (
                "websocket.auth.limits.max_connections_per_metering_key",
                l.max_connections_per_metering_key.map(|v| v as u64),
            ),
            (
                "websocket.auth.limits.max_messages_per_minute",
                l.max_messages_per_minute,
            ),
            (
                "websocket.auth.limits.max_bytes_per_minute",
                l.max_bytes_per_minute,
            ),
        ] {
            if v == Some(0) {
                return Err(ConfigError::new(
                    field,
                    "must be at least 1 (or None for unlimited)",
                ));
            }
        }
        Ok(())
    }
}

/// Commitment level of the Yellowstone subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Commitment {
    #[default]
    Processed,
    Confirmed,
    Finalized,
}

/// The upstream Yellowstone gRPC (Geyser) endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YellowstoneConfig {
    /// `http://` or `https://` (TLS) URL.
    pub endpoint: String,
    /// Sent as the `x-token` header when set.
    pub x_token: Option<String>,
    /// Default processed.
    pub commitment: Commitment,
}

impl YellowstoneConfig {
    pub fn new(endpoint: impl Into<String>) -> Self {
        YellowstoneConfig {
            endpoint: endpoint.into(),
            x_token: None,
            commitment: Commitment::Processed,
        }
    }
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.x_token = Some(token.into());
        self
    }
    pub fn with_commitment(mut self, c: Commitment) -> Self {
        self.commitment = c;
        self
    }
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(ConfigError::new(
                "yellowstone.endpoint",
                format!("`{}` is not an http:// or https:// URL", self.endpoint),
            ));
        }
        Ok(())
    }
}

/// The stream health monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Expected upstream heartbeat; silence for twice this while connected is stale. Default 30 s.
    pub heartbeat_interval: Duration,
    /// How long a health check may take. Default 10 s.
    pub health_check_timeout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            heartbeat_interval: Duration::from_secs(30),
            health_check_timeout: Duration::from_secs(10),
        }
    }
}

impl HealthConfig {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_heartbeat_interval(mut self, d: Duration) -> Self {
        self.heartbeat_interval = d;
        self
    }
    pub fn with_health_check_timeout(mut self, d: Duration) -> Self {
        self.health_check_timeout = d;
        self
    }
    pub fn validate(&self) -> Result<(), ConfigError> {
        nonzero_duration("health.heartbeat_interval", self.heartbeat_interval)?;
        nonzero_duration("health.health_check_timeout", self.health_check_timeout)
    }
}

/// The HTTP health endpoints (`/health`, `/ready`, `/status`, `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpHealthConfig {
    /// Default `0.0.0.0:8081`.
    pub bind_address: SocketAddr,
}

impl Default for HttpHealthConfig {
    fn default() -> Self {
        HttpHealthConfig {
            bind_address: SocketAddr::from(([0, 0, 0, 0], 8081)),
        }
    }
}

impl HttpHealthConfig {
    pub fn new(bind_address: SocketAddr) -> Self {
        HttpHealthConfig { bind_address }
    }
}

/// Reconnection of the upstream stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectionConfig {
    /// Default 100 ms.
    pub initial_delay: Duration,
    /// Default 60 s.
    pub max_delay: Duration,
    /// Default 2.0; must be ≥ 1.
    pub backoff_multiplier: f64,
    /// `None` (default) retries forever.
    pub max_attempts: Option<u32>,
    /// HTTP/2 keep-alive ping interval. Default 30 s.
    pub http2_keep_alive_interval: Option<Duration>,
}

impl Default for ReconnectionConfig {
    fn default() -> Self {
        ReconnectionConfig {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(60),
            backoff_multiplier: 2.0,
            max_attempts: None,
            http2_keep_alive_interval: Some(Duration::from_secs(30)),
        }
    }
}

impl ReconnectionConfig {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }
    pub fn with_max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }
    pub fn with_backoff_multiplier(mut self, f: f64) -> Self {
        self.backoff_multiplier = f;
        self
    }
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    pub fn with_http2_keep_alive_interval(mut self, d: Option<Duration>) -> Self {
        self.http2_keep_alive_interval = d;
        self
    }

    /// The delay after `current`: `current × backoff_multiplier`, capped at `max_delay`.
    pub fn next_backoff(&self, current: Duration) -> Duration {
        let next = current.as_secs_f64() * self.backoff_multiplier;
        if !next.is_finite() || next >= self.max_delay.as_secs_f64() {
            self.max_delay
        } else {
            Duration::from_secs_f64(next)
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.backoff_multiplier >= 1.0 && self.backoff_multiplier.is_finite()) {
            return Err(ConfigError::new(
                "reconnection.backoff_multiplier",
                format!("{} is below 1.0 or not finite", self.backoff_multiplier),
            ));
        }
        nonzero_duration("reconnection.initial_delay", self.initial_delay)?;
        if self.max_delay < self.initial_delay {
            return Err(ConfigError::new(
                "reconnection.max_delay",
                format!(
                    "{:?} is less than initial_delay {:?}",
                    self.max_delay, self.initial_delay
                ),
            ));
        }
        if self.max_attempts == Some(0) {
            return Err(ConfigError::new(
                "reconnection.max_attempts",
                "must be at least 1 (or None for unlimited)",
            ));
        }
        Ok(())
    }
}

/// The thread graph: how many of each thread, pinned or not, and the queue bounds between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopologyConfig {
    /// VM worker threads. Default: half the cores, at least 1.
    pub workers: usize,
    /// WebSocket reactor threads. Default: half the cores, at least 1.
    pub reactors: usize,
    /// Pin workers and reactors to cores (a failed pin is a warning). Default false.
    pub pin: bool,
    /// Messages queued into each VM worker; when full, ingest stops polling. Default 8,192.
    pub worker_queue: usize,
    /// Messages queued into each reactor; when full, workers wait. Default 65,536.
    pub reactor_queue: usize,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let half = (cores / 2).max(1);
        TopologyConfig {
            workers: half,
            reactors: half,
            pin: false,
            worker_queue: 8_192,
            reactor_queue: 65_536,
        }
    }
}

impl TopologyConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        nonzero("topology.workers", self.workers)?;
        nonzero("topology.reactors", self.reactors)?;
        if self.reactors > u16::MAX as usize {
            return Err(ConfigError::new("topology.reactors", "at most 65535"));
        }
        nonzero("topology.worker_queue", self.worker_queue)?;
        nonzero("topology.reactor_queue", self.reactor_queue)
    }
}

/// Resolver fetching: the thread that serves a stack's `resolver_specs` (DAS token metadata and
/// URL fetches) for the VM workers. Every bound of it is here.
///
/// The worker hands requests over a bounded queue with `try_send` (full ⇒ the request is dropped
/// and counted; the VM is never held up). The resolver thread takes at most
/// [`max_in_flight`](Self::max_in_flight) requests per round, answers what it can from a bounded
/// TTL cache, fetches the rest (token mints batched per DAS call, identical URLs once), and sends
/// the values back to the worker. Defaults are the reference's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Requests queued from one VM worker to its resolver thread; when full the worker drops the
    /// request and counts it (`resolver_requests_dropped_total`). Default 1,024.
    pub queue_capacity: usize,
    /// Requests the resolver thread holds at once (taken from its queue per round, waiting for or
    /// being fetched); also the capacity of the result queue back to the worker. Default 256.
    pub max_in_flight: usize,
    /// After the first request of a round, how long to wait for more so they share DAS batches.
    /// Default 5 ms.
    pub batch_window: Duration,
    /// Resolved values kept (LRU). Default 20,000 (`HYPERSTACK_RESOLVER_CACHE_CAPACITY`).
    pub cache_capacity: usize,
    /// How long a resolved value is served from the cache. Default 3,600 s
    /// (`HYPERSTACK_RESOLVER_CACHE_TTL_SECS`).
    pub cache_ttl: Duration,
    /// DAS JSON-RPC endpoint for token metadata (`getAssetBatch`). `None`: token requests are
    /// counted as unresolvable and dropped. Default none (`DAS_API_ENDPOINT`).
    pub das_endpoint: Option<String>,
    /// Mints per `getAssetBatch` call. Default 100 (`DAS_API_BATCH_SIZE`).
    pub das_batch_size: usize,
    /// Whole-call timeout of a DAS request. Default 10 s.
    pub das_timeout: Duration,
    /// Whole-call timeout of a URL resolver request. Default 30 s.
    pub url_timeout: Duration,
    /// Largest response body read; a larger one is an error. Default 4 MiB.
    pub max_response_bytes: usize,
    /// After a failed fetch (or a mint the DAS answer lacks), requests for the same key are
    /// skipped for this long instead of fetched again (counted in
    /// `resolver_backoff_skipped_total`), so a broken endpoint is not hammered by every update.
    /// Default 10 s; zero disables it.
    pub retry_after: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            queue_capacity: 1_024,
            max_in_flight: 256,
            batch_window: Duration::from_millis(5),
            cache_capacity: 20_000,
            cache_ttl: Duration::from_secs(3_600),
            das_endpoint: None,
            das_batch_size: 100,
            das_timeout: Duration::from_secs(10),
            url_timeout: Duration::from_secs(30),
            max_response_bytes: 4 * 1024 * 1024,
            retry_after: Duration::from_secs(10),
        }
    }
}

impl ResolverConfig {
    /// The defaults with the reference's environment variables applied: `DAS_API_ENDPOINT`,
    /// `DAS_API_BATCH_SIZE`, `HYPERSTACK_RESOLVER_CACHE_CAPACITY`,
    /// `HYPERSTACK_RESOLVER_CACHE_TTL_SECS`. An unparsable or zero number keeps the default (logged).
    pub fn from_env() -> Self {
        Self::default().with_env(|name| std::env::var(name).ok())
    }

    /// As [`ResolverConfig::from_env`], reading variables through `var` (testable).
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        fn number(var: &impl Fn(&str) -> Option<String>, name: &str) -> Option<u64> {
            let raw = var(name)?;
            match raw.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    tracing::warn!(variable = name, value = %raw, "not a positive integer; default kept");
                    None
                }
            }
        }
        if let Some(e) = var("DAS_API_ENDPOINT").filter(|e| !e.trim().is_empty()) {
            self.das_endpoint = Some(e.trim().to_string());
        }
        if let Some(n) = number(&var, "DAS_API_BATCH_SIZE") {
            self.das_batch_size = n as usize;
        }
        if let Some(n) = number(&var, "HYPERSTACK_RESOLVER_CACHE_CAPACITY") {
            self.cache_capacity = n as usize;
        }
        if let Some(n) = number(&var, "HYPERSTACK_RESOLVER_CACHE_TTL_SECS") {
            self.cache_ttl = Duration::from_secs(n);
        }
        self
    }

    pub fn with_das_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.das_endpoint = Some(endpoint.into());
        self
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        nonzero("resolver.queue_capacity", self.queue_capacity)?;
        nonzero("resolver.max_in_flight", self.max_in_flight)?;
        nonzero("resolver.cache_capacity", self.cache_capacity)?;
        nonzero_duration("resolver.cache_ttl", self.cache_ttl)?;
        nonzero("resolver.das_batch_size", self.das_batch_size)?;
        nonzero_duration("resolver.das_timeout", self.das_timeout)?;
        nonzero_duration("resolver.url_timeout", self.url_timeout)?;
        nonzero("resolver.max_response_bytes", self.max_response_bytes)?;
        if let Some(e) = &self.das_endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(ConfigError::new(
                    "resolver.das_endpoint",
                    format!("`{e}` is not an http:// or https:// URL"),
                ));
            }
        }
        Ok(())
    }
}

/// Everything the server needs; components left `None` are not started.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    pub websocket: Option<WebSocketConfig>,
    pub yellowstone: Option<YellowstoneConfig>,
    pub health: Option<HealthConfig>,
    pub http_health: Option<HttpHealthConfig>,
    pub reconnection: Option<ReconnectionConfig>,
    pub entity_cache: EntityCacheConfig,
    pub state_table: StateTableConfig,
    /// The VM's bookkeeping bounds besides the rows (indexes, PDA map, pending queues, dedup and
    /// recency memory); defaults in [`VmLimits`].
    pub vm_limits: VmLimits,
    pub topology: TopologyConfig,
    /// Used when the stack has resolver specs.
    pub resolver: ResolverConfig,
}

impl ServerConfig {
    /// Checks every component; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(c) = &self.websocket {
            c.validate()?;
        }
        if let Some(c) = &self.yellowstone {
            c.validate()?;
        }
        if let Some(c) = &self.health {
            c.validate()?;
        }
        if let Some(c) = &self.reconnection {
            c.validate()?;
        }
        self.entity_cache.validate()?;
        self.state_table.validate()?;
        self.vm_limits.validate()?;
        self.resolver.validate()?;
        self.topology.validate()
    }
}

fn nonzero(field: &'static str, v: usize) -> Result<(), ConfigError> {
    if v == 0 {
        Err(ConfigError::new(field, "must be at least 1"))
    } else {
        Ok(())
    }
}

fn nonzero_duration(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(ConfigError::new(field, "must be longer than zero"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let ws = WebSocketConfig::default();
        assert_eq!(ws.bind_address.to_string(), "[::]:8877");
        assert_eq!(ws.max_clients, 10_000);
        assert_eq!(ws.max_message_size, 65_536);
        assert_eq!(ws.max_outbound_bytes, 1_048_576);
        assert_eq!(ws.idle_timeout, Duration::from_secs(300));
        let env = |name: &str| match name {
            "HYPERSTACK_WS_MESSAGE_QUEUE_SIZE" => Some("64".to_string()),
            "HYPERSTACK_WS_CLIENT_TIMEOUT_SECS" => Some("90".to_string()),
            "HYPERSTACK_WS_DEFAULT_MAX_MESSAGES_PER_MINUTE" => Some("100".to_string()),
            "HYPERSTACK_WS_MAX_CONNECTIONS_PER_IP" => Some("nope".to_string()),
            _ => None,
        };
        let e = WebSocketConfig::default().with_env(env);
        assert_eq!(
            (e.message_queue_size, e.idle_timeout),
            (64, Duration::from_secs(90))
        );
        assert_eq!(e.auth.limits.max_messages_per_minute, Some(100));
        assert_eq!(e.auth.limits.max_connections_per_ip, None);
        assert!(e.validate().is_ok());
        assert_eq!(
            HttpHealthConfig::default().bind_address.to_string(),
            "0.0.0.0:8081"
        );
        let h = HealthConfig::new();
        assert_eq!(
            (h.heartbeat_interval, h.health_check_timeout),
            (Duration::from_secs(30), Duration::from_secs(10))
        );
        let r = ReconnectionConfig::new();
        assert_eq!(r.initial_delay, Duration::from_millis(100));
        assert_eq!(r.max_delay, Duration::from_secs(60));
        assert_eq!(r.backoff_multiplier, 2.0);
        assert_eq!(r.max_attempts, None);
        assert_eq!(r.http2_keep_alive_interval, Some(Duration::from_secs(30)));
        let y = YellowstoneConfig::new("http://x").with_token("t");
        assert_eq!(y.x_token.as_deref(), Some("t"));
        assert_eq!(y.commitment, Commitment::Processed);
        assert!(ServerConfig::default().validate().is_ok());
    }

    #[test]
    fn resolver_defaults_are_the_references_and_its_env_vars_apply() {
        let r = ResolverConfig::default();
        assert_eq!(
            (r.cache_capacity, r.cache_ttl),
            (20_000, Duration::from_secs(3_600))
        );
        assert_eq!(
            (r.das_batch_size, r.das_timeout),
            (100, Duration::from_secs(10))
        );
        assert_eq!(r.das_endpoint, None);
        assert!(r.validate().is_ok());
        let env = |name: &str| match name {
            "DAS_API_ENDPOINT" => Some("https://das.example".to_string()),
            "DAS_API_BATCH_SIZE" => Some("25".to_string()),
            "HYPERSTACK_RESOLVER_CACHE_CAPACITY" => Some("7".to_string()),
            "HYPERSTACK_RESOLVER_CACHE_TTL_SECS" => Some("0".to_string()),
            _ => None,
        };
        let r = ResolverConfig::default().with_env(env);
        assert_eq!(r.das_endpoint.as_deref(), Some("https://das.example"));
        assert_eq!((r.das_batch_size, r.cache_capacity), (25, 7));
        // Zero is not supported (as in the reference): the default stays.
        assert_eq!(r.cache_ttl, Duration::from_secs(3_600));
        let bad = ResolverConfig::default().with_das_endpoint("das.example:443");
        assert_eq!(bad.validate().unwrap_err().field, "resolver.das_endpoint");
        let bad = ResolverConfig {
            queue_capacity: 0,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "resolver.queue_capacity");
    }

    #[test]
    fn next_backoff_doubles_up_to_the_cap() {
        let r = ReconnectionConfig::new();
        let mut d = r.initial_delay;
        let mut seen = vec![d];
        for _ in 0..12 {
            d = r.next_backoff(d);
            seen.push(d);
        }
        assert_eq!(seen[1], Duration::from_millis(200));
        assert_eq!(seen[9], Duration::from_millis(51_200));
        assert_eq!(seen[10], Duration::from_secs(60));
        assert_eq!(seen[12], Duration::from_secs(60));
        let slow = r.with_backoff_multiplier(1.5);
        assert_eq!(
            slow.next_backoff(Duration::from_secs(2)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn nonsensical_configs_are_typed_errors() {
        let r = ReconnectionConfig::new().with_backoff_multiplier(0.5);
        assert_eq!(
            r.validate().unwrap_err().field,
            "reconnection.backoff_multiplier"
        );
        let r = ReconnectionConfig::new().with_backoff_multiplier(f64::NAN);
        assert_eq!(
            r.validate().unwrap_err().field,
            "reconnection.backoff_multiplier"
        );
        let r = ReconnectionConfig::new()
            .with_initial_delay(Duration::from_secs(5))
            .with_max_delay(Duration::from_secs(1));
        assert_eq!(r.validate().unwrap_err().field, "reconnection.max_delay");
        let r = ReconnectionConfig::new().with_max_attempts(0);
        assert_eq!(r.validate().unwrap_err().field, "reconnection.max_attempts");
        let ws = WebSocketConfig::default().with_max_clients(0);
        assert_eq!(ws.validate().unwrap_err().field, "websocket.max_clients");
        let ws = WebSocketConfig::default().with_limits(crate::reactor::auth::ConnectionLimits {
            max_connections_per_ip: Some(0),
            ..Default::default()
        });
        assert_eq!(
            ws.validate().unwrap_err().field,
            "websocket.auth.limits.max_connections_per_ip"
        );
        let y = YellowstoneConfig::new("grpc.example.com:443");
        assert_eq!(y.validate().unwrap_err().field, "yellowstone.endpoint");
        let t = TopologyConfig {
            workers: 0,
            ..Default::default()
        };
        assert_eq!(t.validate().unwrap_err().field, "topology.workers");
        let mut s = ServerConfig::default();
        s.entity_cache.initial_snapshot_batch_size = 0;
        assert_eq!(
            s.validate().unwrap_err().field,
            "entity_cache.initial_snapshot_batch_size"
        );
    }
}
