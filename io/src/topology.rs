//! The whole thread graph, built in one place. Read this file first.
//!
//! ```text
//!             ┌──────────────────────────── ingest (1 thread: tokio current-thread + tonic) ──┐
//!             │  Yellowstone / mock Geyser + synthetic chain / replay file → engine::Update   │
//!             └──────────────┬─────────────────────────────────────────────────────────────────┘
//!                            │ ToWorker::Update — bounded (worker_queue); full ⇒ ingest blocks,
//!                            ▼                    stops polling, HTTP/2 flow control holds upstream
//!   worker-0 … worker-K (pinned)  engine::VmContext + engine::Views for one stack component
//!                            │ ⇄ resolver-K (1 thread per worker, blocking HTTP: DAS + URL
//!                            │   resolvers) — requests by try_send (full ⇒ dropped, counted),
//!                            │   values back as ToWorker::ResolverResult on their own queue
//!                            │ ToReactor — bounded (reactor_queue) per reactor; full ⇒ worker waits;
//!                            ▼            a mio Waker per batch
//!   reactor-0 … reactor-R (pinned)  mio Poll + tungstenite: connections, subscriptions, fan-out
//!        ▲   │ ToWorker::Subscribe / Unsubscribe (to the worker that owns the view)
//!   acceptor (1 thread)  new sockets → reactors;   http (1 thread)  /health /ready /status /metrics
//! ```
//!
//! Startup order: channels first (every thread's inbox exists before any thread runs), then
//! resolvers and workers, reactors, acceptor, HTTP, and ingest last. Shutdown walks the graph from
//! the source: stop ingest, let workers drain their queues, close every WebSocket with 1001, join
//! everything (a resolver thread ends when its worker does; one still inside an HTTP call is
//! waited for briefly, then left to finish on its own).
//!
//! Sharding: entities of one stack that share events or indexes form one component that a single
//! worker owns whole (ORE's entities are all coupled, so ORE runs on one worker). A stack is one
//! component today; extra configured workers are not started (logged).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use stackcore_engine::Stack;

use crate::channels::{ReactorHandle, ToReactor, ToWorker};
use crate::config::{ConfigError, ServerConfig};
use crate::health::HealthMonitor;
use crate::http::{HttpContext, HttpServer};
use crate::ingest::{self, IngestConfig, IngestHandle, IngestSink, Source};
use crate::metrics::Metrics;
use crate::reactor::{self, ReactorContext, ReactorParts, Router};
use crate::resolver::{self, Resolver, SystemClock};
use crate::worker::{self, WorkerContext, WorkerResolver};

/// How long shutdown waits for workers to drain their queues.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(800);
/// How long shutdown waits for room in a reactor's inbox.
const SHUTDOWN_SEND_TIMEOUT: Duration = Duration::from_millis(500);
/// How long shutdown waits for a resolver thread that is inside an HTTP call.
const RESOLVER_JOIN_TIMEOUT: Duration = Duration::from_millis(500);

/// What to run.
pub struct Plan {
    /// The stack; `None` runs WebSocket-only (every subscribe is an unknown view).
    pub stack: Option<Arc<Stack>>,
    pub config: ServerConfig,
    /// Where updates come from; `None` runs without ingest.
    pub source: Option<Source>,
    /// Append every raw upstream update to this file.
    pub record: Option<PathBuf>,
}

/// Why the server could not start. The caller should report it and exit; nothing is left running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: &'static str,
        source: std::io::Error,
    },
}

/// A running server. Drop or [`Running::shutdown`] stops it.
pub struct Running {
    ws_addr: Option<SocketAddr>,
    health: Option<Arc<HealthMonitor>>,
    metrics: Arc<Metrics>,
    ingest: Option<IngestHandle>,
    worker_txs: Vec<Sender<ToWorker>>,
    workers: Vec<JoinHandle<()>>,
    resolvers: Vec<JoinHandle<()>>,
    reactors: Vec<(ReactorHandle, JoinHandle<()>)>,
    acceptor: Option<JoinHandle<()>>,
    http: Option<HttpServer>,
}

/// Builds and starts every thread.
pub fn start(plan: Plan) -> Result<Running, StartError> {
    let cfg = &plan.config;
    cfg.validate()?;
    let metrics = Arc::new(Metrics::new());
    let health = cfg.health.map(|h| Arc::new(HealthMonitor::new(h)));
    let topo = cfg.topology;
    let spawn_err = |what| move |source| StartError::Spawn { what, source };

    // Channels first.
    let components = usize::from(plan.stack.is_some());
    if components > 0 && topo.workers > components {
        tracing::info!(
            configured = topo.workers,
            used = components,
            "stack is one coupled component; extra VM workers not started"
        );
    }
    let (worker_txs, worker_rxs): (Vec<_>, Vec<_>) = (0..components)
        .map(|_| crossbeam_channel::bounded::<ToWorker>(topo.worker_queue))
        .unzip();
    for (i, tx) in worker_txs.iter().enumerate() {
        let tx = tx.clone();
        metrics.register_gauge(
            "queue_depth",
            &format!("queue=\"worker{i}\""),
            Box::new(move || tx.len() as u64),
        );
    }
    let n_reactors = if cfg.websocket.is_some() {
        topo.reactors
    } else {
        0
    };
    let mut parts = Vec::with_capacity(n_reactors);
    for i in 0..n_reactors {
        let p = ReactorParts::new(topo.reactor_queue).map_err(spawn_err("reactor poll"))?;
        let tx = p.handle.tx.clone();
        metrics.register_gauge(
            "queue_depth",
            &format!("queue=\"reactor{i}\""),
            Box::new(move || tx.len() as u64),
        );
        parts.push(p);
    }
    let reactor_handles: Vec<ReactorHandle> = parts.iter().map(|p| p.handle.clone()).collect();

    // Workers, each with a resolver thread when the stack has resolvers.
    let mut workers = Vec::new();
    let mut resolvers = Vec::new();
    if let Some(stack) = &plan.stack {
        let has_resolvers = stack
            .spec()
            .entities
            .iter()
            .any(|e| !e.resolver_specs.is_empty());
        for (i, rx) in worker_rxs.into_iter().enumerate() {
            let resolver = if has_resolvers {
                let rc = &cfg.resolver;
                let (link, requests) = resolver::queue(rc.queue_capacity, metrics.clone());
                let (results_tx, results) = crossbeam_channel::bounded(rc.max_in_flight);
                let depth = requests.clone();
                metrics.register_gauge(
                    "queue_depth",
                    &format!("queue=\"resolver{i}\""),
                    Box::new(move || depth.len() as u64),
                );
                let r = Resolver::new(
                    rc.clone(),
                    results_tx,
                    metrics.clone(),
                    Arc::new(SystemClock),
                );
                resolvers.push(resolver::spawn(i, requests, r).map_err(spawn_err("resolver"))?);
                Some(WorkerResolver { link, results })
            } else {
                None
            };
            let ctx = WorkerContext {
                stack: stack.clone(),
                state_table: cfg.state_table,
                vm_limits: cfg.vm_limits,
                entity_cache: cfg.entity_cache,
                reactors: reactor_handles.clone(),
                metrics: metrics.clone(),
                pin: topo.pin.then_some(i),
                resolver,
            };
            workers.push(worker::spawn(i, rx, ctx).map_err(spawn_err("worker"))?);
        }
    }

    // Reactors and the acceptor.
    let mut reactors = Vec::new();
    let mut acceptor = None;
    let mut ws_addr = None;
    if let Some(ws) = &cfg.websocket {
        let listener =
            std::net::TcpListener::bind(ws.bind_address).map_err(|source| StartError::Bind {
                what: "websocket",
                addr: ws.bind_address,
                source,
            })?;
        ws_addr = listener.local_addr().ok();
        let view_owner: HashMap<String, usize> = match &plan.stack {
            Some(stack) => stackcore_engine::Views::new(stack.entity_views(), cfg.entity_cache)
                .names()
                .into_iter()
                .map(|name| (name.to_string(), 0))
                .collect(),
            None => HashMap::new(),
        };
        let ctx = Arc::new(ReactorContext {
            config: ws.clone(),
            router: Router {
                workers: worker_txs.clone(),
                view_owner,
            },
            metrics: metrics.clone(),
            pin: topo.pin,
        });
        for (i, p) in parts.into_iter().enumerate() {
            let handle = p.handle.clone();
            let join = reactor::spawn_reactor(i, p.poll, p.inbox, ctx.clone())
                .map_err(spawn_err("reactor"))?;
            reactors.push((handle, join));
        }
        acceptor = Some(
            reactor::spawn_acceptor(listener, reactor_handles.clone(), ctx)
                .map_err(spawn_err("acceptor"))?,
        );
    }

    // HTTP.
    let http = match cfg.http_health {
        Some(h) => Some(
            HttpServer::start(
                h.bind_address,
                HttpContext {
                    health: health.clone(),
                    metrics: metrics.clone(),
                },
            )
            .map_err(|source| StartError::Bind {
                what: "http health",
                addr: h.bind_address,
                source,
            })?,
        ),
        None => None,
    };

    // Ingest last: everything downstream is ready for it.
    let ingest = match (plan.source, &plan.stack) {
        (Some(mut source), Some(stack)) => {
            if let Source::Synthetic(synthetic) = &mut source {
                // The synthetic chain speaks the stack's own IDLs unless told otherwise.
                synthetic.generator.get_or_insert_with(|| {
                    ingest::synth::idl_generator(stack.idls().clone(), Default::default())
                });
            }
            let sink = IngestSink {
                workers: worker_txs.clone(),
                route: Arc::new(|_| 0),
            };
            let health = health
                .clone()
                .unwrap_or_else(|| Arc::new(HealthMonitor::new(Default::default())));
            let icfg = IngestConfig {
                source,
                program_ids: stack.program_ids(),
                reconnection: cfg.reconnection.unwrap_or_default(),
                record: plan.record,
            };
            Some(ingest::spawn(icfg, sink, health, metrics.clone()).map_err(spawn_err("ingest"))?)
        }
        _ => None,
    };

    Ok(Running {
        ws_addr,
        health,
        metrics,
        ingest,
        worker_txs,
        workers,
        resolvers,
        reactors,
        acceptor,
        http,
    })
}

impl Running {
    /// Where WebSockets are accepted (the bound port when configured as 0).
    pub fn websocket_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// Where the HTTP endpoints answer.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.local_addr())
    }

    pub fn health(&self) -> Option<&Arc<HealthMonitor>> {
        self.health.as_ref()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A sender into worker `i`, e.g. to feed updates directly (benchmarks, the reference feed).
    pub fn worker_sender(&self, i: usize) -> Option<Sender<ToWorker>> {
        self.worker_txs.get(i).cloned()
    }

    /// Stops ingest, drains the workers, closes every WebSocket with 1001, joins every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(ingest) = self.ingest.take() {
            ingest.shutdown();
            let _ = ingest.join();
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while self.worker_txs.iter().any(|tx| !tx.is_empty()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        for (handle, _) in &self.reactors {
            // Waits for room if the inbox is full (the reactor is draining it); gives up only if
            // the reactor is gone or stuck.
            let _ = handle
                .tx
                .send_timeout(ToReactor::Shutdown, SHUTDOWN_SEND_TIMEOUT);
            handle.wake();
        }
        for (_, join) in self.reactors.drain(..) {
            let _ = join.join();
        }
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        // Gauges hold queue senders; drop them so the workers see their inboxes close.
        self.metrics.clear_gauges();
        self.worker_txs.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        // A worker's end dropped ends its resolver thread, unless it is inside an HTTP call.
        let deadline = Instant::now() + RESOLVER_JOIN_TIMEOUT;
        for r in self.resolvers.drain(..) {
            while !r.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if r.is_finished() {
                let _ = r.join();
            } else {
                tracing::debug!("resolver thread still inside an HTTP call; not waited for");
            }
        }
        if let Some(http) = self.http.take() {
            http.shutdown();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
