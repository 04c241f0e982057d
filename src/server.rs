//! `Server::builder()`: the HyperStack server's configuration surface, over stackcore's topology.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use stackcore_engine::{EntityCacheConfig, Stack, StateTableConfig};
use stackcore_io::config::{
    ConfigError, HealthConfig, HttpHealthConfig, ReconnectionConfig, ResolverConfig, ServerConfig,
    WebSocketConfig, YellowstoneConfig,
};
use stackcore_io::ingest::Source;
use stackcore_io::topology::{self, Plan, Running, StartError};

/// Why the server did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting makes no sense; fix the named field.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A port could not be bound or a thread not started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Installing the SIGINT/SIGTERM handlers failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Entry point: `Server::builder()`.
pub struct Server;

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

/// Collects the configuration; [`ServerBuilder::start`] validates it and starts every thread.
#[derive(Default)]
pub struct ServerBuilder {
    stack: Option<Arc<Stack>>,
    config: ServerConfig,
    source: Option<Source>,
    record: Option<PathBuf>,
}

impl ServerBuilder {
    /// The stack to run.
    pub fn spec(mut self, stack: impl Into<Arc<Stack>>) -> Self {
        self.stack = Some(stack.into());
        self
    }

    /// Enables the WebSocket server with defaults (`[::]:8877`).
    pub fn websocket(mut self) -> Self {
        self.config
            .websocket
            .get_or_insert_with(WebSocketConfig::default);
        self
    }

    /// Sets the WebSocket bind address (enables the WebSocket server).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config
            .websocket
            .get_or_insert_with(WebSocketConfig::default)
            .bind_address = addr;
        self
    }

    pub fn websocket_config(mut self, cfg: WebSocketConfig) -> Self {
        self.config.websocket = Some(cfg);
        self
    }

    /// Reads updates from this Yellowstone gRPC endpoint.
    pub fn yellowstone(mut self, cfg: YellowstoneConfig) -> Self {
        self.source = Some(Source::Yellowstone(cfg.clone()));
        self.config.yellowstone = Some(cfg);
        self
    }

    /// Reads updates from another source: the synthetic chain or a recording.
    pub fn source(mut self, source: Source) -> Self {
        if let Source::Yellowstone(cfg) = &source {
            self.config.yellowstone = Some(cfg.clone());
        }
        self.source = Some(source);
        self
    }

    /// Appends every raw upstream update to `path` (replay it with `Source::Replay`).
    pub fn record(mut self, path: impl Into<PathBuf>) -> Self {
        self.record = Some(path.into());
        self
    }

    /// Enables the stream health monitor with defaults.
    pub fn health_monitoring(mut self) -> Self {
        self.config.health.get_or_insert_with(HealthConfig::default);
        self
    }

    pub fn health_config(mut self, cfg: HealthConfig) -> Self {
        self.config.health = Some(cfg);
        self
    }

    /// Enables the HTTP health endpoints with defaults (`0.0.0.0:8081`).
    pub fn http_health(mut self) -> Self {
        self.config
            .http_health
            .get_or_insert_with(HttpHealthConfig::default);
        self
    }

    /// Sets the HTTP health bind address (enables the endpoints).
    pub fn health_bind(mut self, addr: SocketAddr) -> Self {
        self.config.http_health = Some(HttpHealthConfig::new(addr));
        self
    }

    pub fn http_health_config(mut self, cfg: HttpHealthConfig) -> Self {
        self.config.http_health = Some(cfg);
        self
    }

    /// Enables reconnection with defaults (100 ms … 60 s, ×2, unlimited).
    pub fn reconnection(mut self) -> Self {
        self.config
            .reconnection
            .get_or_insert_with(ReconnectionConfig::default);
        self
    }

    pub fn reconnection_config(mut self, cfg: ReconnectionConfig) -> Self {
        self.config.reconnection = Some(cfg);
        self
    }

    pub fn entity_cache_config(mut self, cfg: EntityCacheConfig) -> Self {
        self.config.entity_cache = cfg;
        self
    }

    pub fn state_table_config(mut self, cfg: StateTableConfig) -> Self {
        self.config.state_table = cfg;
        self
    }

    /// The VM's bookkeeping bounds besides its rows ([`VmLimits`](stackcore_engine::vm::VmLimits)).
    pub fn vm_limits(mut self, limits: stackcore_engine::vm::VmLimits) -> Self {
        self.config.vm_limits = limits;
        self
    }

    /// Resolver fetching (DAS token metadata, URL resolvers): endpoint, cache, queue and timeout
    /// bounds. The binary uses `ResolverConfig::from_env()`.
    pub fn resolver_config(mut self, cfg: ResolverConfig) -> Self {
        self.config.resolver = cfg;
        self
    }

    /// VM worker threads.
    pub fn workers(mut self, n: usize) -> Self {
        self.config.topology.workers = n;
        self
    }

    /// WebSocket reactor threads.
    pub fn reactors(mut self, n: usize) -> Self {
        self.config.topology.reactors = n;
        self
    }

    /// Pins workers and reactors to cores.
    pub fn pin(mut self, pin: bool) -> Self {
        self.config.topology.pin = pin;
        self
    }

    /// The configuration as it stands.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Checks the configuration without starting anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.config.validate()
    }

    /// Starts every thread and returns at once. The handle can be awaited (`start()?.await`) or
    /// joined; either returns when [`ServerHandle::shutdown`] is called or SIGINT/SIGTERM arrives.
    pub fn start(self) -> Result<ServerHandle, ServerError> {
        self.config.validate()?;
        let running = topology::start(Plan {
            stack: self.stack,
            config: self.config,
            source: self.source,
            record: self.record,
        })?;
        let handle = ServerHandle::new(running);
        handle.stop_on_signals().map_err(ServerError::Signals)?;
        Ok(handle)
    }

    /// Starts and blocks until SIGINT/SIGTERM, then shuts down gracefully.
    pub fn run(self) -> Result<(), ServerError> {
        self.start()?.join();
        Ok(())
    }
}

#[derive(Default)]
struct Stop {
    requested: bool,
    stopped: bool,
    wakers: Vec<Waker>,
}

struct Shared {
    running: Mutex<Option<Running>>,
    stop: Mutex<Stop>,
    cond: Condvar,
}

/// A running server: shut it down, join it, or await it.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    ws_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    health: Option<Arc<stackcore_io::health::HealthMonitor>>,
    metrics: Arc<stackcore_io::metrics::Metrics>,
}

impl ServerHandle {
    fn new(running: Running) -> ServerHandle {
        let ws_addr = running.websocket_addr();
        let http_addr = running.http_addr();
        let health = running.health().cloned();
        let metrics = running.metrics().clone();
        let shared = Arc::new(Shared {
            running: Mutex::new(Some(running)),
            stop: Mutex::new(Stop::default()),
            cond: Condvar::new(),
        });
        // The thread that performs the shutdown when asked, so that `shutdown` can be called from
        // a signal thread or an async context without blocking it on joins.
        let s = shared.clone();
        std::thread::Builder::new()
            .name("shutdown".into())
            .spawn(move || {
                let mut g = s.stop.lock().unwrap_or_else(|p| p.into_inner());
                while !g.requested {
                    g = s.cond.wait(g).unwrap_or_else(|p| p.into_inner());
                }
                drop(g);
                if let Some(r) = s.running.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    r.shutdown();
                }
                let mut g = s.stop.lock().unwrap_or_else(|p| p.into_inner());
                g.stopped = true;
                for w in g.wakers.drain(..) {
                    w.wake();
                }
                s.cond.notify_all();
            })
            .expect("spawning the shutdown thread");
        ServerHandle {
            shared,
            ws_addr,
            http_addr,
            health,
            metrics,
        }
    }

    fn stop_on_signals(&self) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    tracing::info!(signal = sig, "shutting down");
                    me.shutdown();
                }
            })?;
        Ok(())
    }

    /// Where WebSockets are accepted.
    pub fn websocket_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// Where the HTTP health endpoints answer.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn health(&self) -> Option<&Arc<stackcore_io::health::HealthMonitor>> {
        self.health.as_ref()
    }

    pub fn metrics(&self) -> &Arc<stackcore_io::metrics::Metrics> {
        &self.metrics
    }

    /// Asks the server to stop: ingest stops, workers drain, WebSockets close with 1001.
    /// Returns at once; [`ServerHandle::join`] or `.await` waits for the end.
    pub fn shutdown(&self) {
        let mut g = self.shared.stop.lock().unwrap_or_else(|p| p.into_inner());
        g.requested = true;
        self.shared.cond.notify_all();
    }

    /// Blocks until the server has stopped.
    pub fn join(&self) {
        let mut g = self.shared.stop.lock().unwrap_or_else(|p| p.into_inner());
        while !g.stopped {
            g = self.shared.cond.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.shared
            .stop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stopped
    }
}

/// Resolves when the server has stopped.
pub struct Stopped(ServerHandle);

impl Future for Stopped {
    type Output = Result<(), ServerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut g = self.0.shared.stop.lock().unwrap_or_else(|p| p.into_inner());
        if g.stopped {
            Poll::Ready(Ok(()))
        } else {
            g.wakers.push(cx.waker().clone());
            Poll::Pending
        }
    }
}

impl IntoFuture for ServerHandle {
    type Output = Result<(), ServerError>;
    type IntoFuture = Stopped;

    fn into_future(self) -> Stopped {
        Stopped(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_collects_the_documented_defaults() {
        let b = Server::builder()
            .websocket()
            .health_monitoring()
            .http_health()
            .reconnection();
        let c = b.config();
        assert_eq!(
            c.websocket.as_ref().unwrap().bind_address.to_string(),
            "[::]:8877"
        );
        assert_eq!(
            c.http_health.unwrap().bind_address.to_string(),
            "0.0.0.0:8081"
        );
        assert_eq!(c.reconnection.unwrap(), ReconnectionConfig::default());
        assert_eq!(c.entity_cache, EntityCacheConfig::default());
        assert_eq!(c.state_table, StateTableConfig::default());
        assert_eq!(c.resolver, ResolverConfig::default());
        let b = Server::builder()
            .bind("127.0.0.1:9000".parse().unwrap())
            .health_bind("127.0.0.1:9001".parse().unwrap());
        assert_eq!(
            b.config().websocket.as_ref().unwrap().bind_address.port(),
            9000
        );
        assert_eq!(b.config().http_health.unwrap().bind_address.port(), 9001);
    }

    #[test]
    fn nonsense_is_a_typed_error_from_the_builder_not_a_panic() {
        let err = Server::builder()
            .reconnection_config(ReconnectionConfig::new().with_backoff_multiplier(0.5))
            .start()
            .err()
            .expect("must be refused");
        assert!(
            matches!(err, ServerError::Config(ref e) if e.field == "reconnection.backoff_multiplier"),
            "{err}"
        );
        let err = Server::builder()
            .state_table_config(StateTableConfig {
                max_entries: 0,
                max_array_length: 100,
            })
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "state_table.max_entries");
        let err = Server::builder()
            .vm_limits(stackcore_engine::vm::VmLimits {
                pending_total: 0,
                ..Default::default()
            })
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "vm_limits.pending_total");
        let err = Server::builder()
            .entity_cache_config(EntityCacheConfig {
                initial_snapshot_batch_size: 0,
                ..Default::default()
            })
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "entity_cache.initial_snapshot_batch_size");
    }

    #[test]
    fn http_only_server_starts_answers_and_stops_when_asked() {
        let h = Server::builder()
            .health_monitoring()
            .health_bind("127.0.0.1:0".parse().unwrap())
            .start()
            .unwrap();
        let addr = h.http_addr().unwrap();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        use std::io::{Read, Write};
        s.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(!h.is_stopped());
        h.shutdown();
        h.join();
        assert!(h.is_stopped());
    }
}
