//! The ingest island: the only async code of the process.
//!
//! One OS thread named `ingest` runs a tokio current-thread runtime. Whatever the [`Source`],
//! every upstream message goes through one [`Pipeline`]:
//!
//! ```text
//! Yellowstone gRPC ─┐                       record (optional, raw)
//! mock + synthetic ─┼─► SubscribeUpdate ──► convert ──► resume/dedup ──► route ──► worker queue
//! replay file ──────┘                        (malformed: counted, skipped)   (blocking send)
//! ```
//!
//! - [`Source::Yellowstone`]: the [`client`] against a real endpoint.
//! - [`Source::Synthetic`]: the [`mock`] server and the [`synth`] chain run as tasks on the same
//!   runtime, on `127.0.0.1:0`, and the client connects to it through the real gRPC path, so the
//!   process still has exactly one tokio runtime.
//! - [`Source::Replay`]: a [`record`]ing played back, at recorded pace or as fast as possible.
//!
//! Backpressure: the hand-off is a blocking send into a bounded worker queue. While a queue is
//! full the thread does not poll the gRPC stream, so HTTP/2 flow control holds the upstream;
//! memory stays bounded by the windows in [`IngestLimits`].
//!
//! Reconnection, resume and dedup rules: [`resume`]. Health: `Connected` on the first message of
//! a stream, an event per update handed off, `Reconnecting` / `Error` as [`client`] describes.

pub mod client;
pub mod convert;
pub mod mock;
pub mod record;
pub mod resume;
pub mod synth;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::SendTimeoutError;
use stackcore_engine::{Pubkey, Update};
use tokio::sync::watch;
use yellowstone_grpc_proto::geyser::SubscribeUpdate;

use crate::channels::ToWorker;
use crate::config::{Commitment, ReconnectionConfig, YellowstoneConfig};
use crate::health::HealthMonitor;
use crate::metrics::Metrics;

pub use convert::{ConvertError, Converter};
pub use mock::{Fault, MockConfig, MockGeyser, MockHandle};
pub use record::RecordError;
pub use synth::UpdateFactory;

/// Where updates come from.
pub enum Source {
    Yellowstone(YellowstoneConfig),
    Synthetic(SyntheticConfig),
    Replay { path: PathBuf, pace: Pace },
}

/// Replay speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Keep the recorded gaps between messages.
    Recorded,
    AsFastAsPossible,
}

/// The synthetic chain behind the embedded mock server.
#[derive(Clone)]
pub struct SyntheticConfig {
    pub seed: u64,
    /// 0 = as fast as the workers take them.
    pub updates_per_sec: u32,
    /// The `x-token` the embedded server requires and the client sends.
    pub token: Option<String>,
    /// The stack's generator: `synth::idl_generator(stack.idls().clone(), SynthConfig::default())`
    /// gives valid, decodable updates (so live frames). `None` uses [`synth::stand_in`]: opaque
    /// bytes for the stack's program ids, which exercise ingest but do not decode.
    pub generator: Option<UpdateFactory>,
}

impl SyntheticConfig {
    pub fn new(seed: u64) -> Self {
        SyntheticConfig {
            seed,
            updates_per_sec: 0,
            token: None,
            generator: None,
        }
    }
    pub fn with_rate(mut self, updates_per_sec: u32) -> Self {
        self.updates_per_sec = updates_per_sec;
        self
    }
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    pub fn with_generator(mut self, generator: UpdateFactory) -> Self {
        self.generator = Some(generator);
        self
    }
}

/// Routes each update to the worker that owns its shard.
pub struct IngestSink {
    pub workers: Vec<crossbeam_channel::Sender<ToWorker>>,
    pub route: Arc<dyn Fn(&Update) -> usize + Send + Sync>,
}

pub struct IngestConfig {
    pub source: Source,
    pub program_ids: Vec<Pubkey>,
    pub reconnection: ReconnectionConfig,
    /// Append every raw upstream message to this file (see [`record`]).
    pub record: Option<PathBuf>,
}

/// Bounds and timeouts of the ingest island; [`spawn`] uses the defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IngestLimits {
    /// Keys kept to drop re-sent updates after a reconnect (see [`resume`]). Default 131,072.
    pub dedup_capacity: usize,
    /// Largest gRPC message accepted. Default 64 MiB (tonic's default is 4 MiB).
    pub max_message_size: usize,
    /// A connection up this long is healthy: the backoff starts over. Default 5 s.
    pub healthy_after: Duration,
    /// A stream silent this long (not even a server ping) is dropped and reconnected. Default 30 s
    /// (Yellowstone pings every 10 s).
    pub stall_timeout: Duration,
    /// TCP connect and `Subscribe` answer timeout. Default 10 s.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive ping answer timeout. Default 20 s.
    pub keep_alive_timeout: Duration,
    /// HTTP/2 stream window, bytes buffered per stream. Default 4 MiB.
    pub stream_window: u32,
    /// HTTP/2 connection window. Default 8 MiB.
    pub connection_window: u32,
    /// Ping interval of the embedded mock server ([`Source::Synthetic`]). Default 10 s.
    pub synthetic_ping_interval: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            dedup_capacity: 131_072,
            max_message_size: 64 * 1024 * 1024,
            healthy_after: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(20),
            stream_window: 4 * 1024 * 1024,
            connection_window: 8 * 1024 * 1024,
            synthetic_ping_interval: Duration::from_secs(10),
        }
    }
}

/// The running ingest thread.
pub struct IngestHandle {
    thread: std::thread::JoinHandle<()>,
    stop: Stop,
}

impl IngestHandle {
    /// Asks the thread to stop (it also stops when every worker queue is closed).
    pub fn shutdown(&self) {
        self.stop.set();
    }

    pub fn join(self) -> std::thread::Result<()> {
        self.thread.join()
    }

    /// Whether the thread has ended (e.g. a replay finished or reconnection gave up).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// Starts the ingest thread with [`IngestLimits::default`].
pub fn spawn(
    cfg: IngestConfig,
    sink: IngestSink,
    health: Arc<HealthMonitor>,
    metrics: Arc<Metrics>,
) -> std::io::Result<IngestHandle> {
    spawn_with(cfg, IngestLimits::default(), sink, health, metrics)
}

/// Starts the ingest thread. Errors: no worker queue, recording onto the replayed file, a
/// recording file that cannot be opened, or the thread/runtime cannot be created.
pub fn spawn_with(
    cfg: IngestConfig,
    limits: IngestLimits,
    sink: IngestSink,
    health: Arc<HealthMonitor>,
    metrics: Arc<Metrics>,
) -> std::io::Result<IngestHandle> {
    use std::io::{Error, ErrorKind};
    if sink.workers.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "ingest needs at least one worker queue",
        ));
    }
    if let (Source::Replay { path, .. }, Some(rec)) = (&cfg.source, &cfg.record) {
        if path == rec {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "cannot record onto the file being replayed",
            ));
        }
    }
    let recorder = match &cfg.record {
        Some(p) => Some(record::Recorder::open(p).map_err(|e| Error::other(e.to_string()))?),
        None => None,
    };
    let commitment = match &cfg.source {
        Source::Yellowstone(y) => y.commitment,
        _ => Commitment::Processed,
    };
    let stop = Stop::new();
    let lag_ms = Arc::new(AtomicU64::new(0));
    let lag = lag_ms.clone();
    metrics.register_gauge(
        "upstream_lag_ms",
        "stage=\"ingest\"",
        Box::new(move || lag.load(Ordering::Relaxed)),
    );
    let pipe = Pipeline {
        converter: Converter::new(cfg.program_ids.clone(), commitment),
        resume: resume::Resume::new(limits.dedup_capacity),
        sink,
        health,
        metrics,
        recorder,
        scratch: Vec::new(),
        stop: stop.clone(),
        last_flush: Instant::now(),
        lag_ms: lag_ms.clone(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let s = stop.clone();
    let thread = std::thread::Builder::new()
        .name("ingest".into())
        .spawn(move || rt.block_on(run(cfg, limits, pipe, s)))?;
    Ok(IngestHandle { thread, stop })
}

async fn run(cfg: IngestConfig, limits: IngestLimits, mut pipe: Pipeline, stop: Stop) {
    match cfg.source {
        Source::Yellowstone(y) => {
            let params = client::ClientParams {
                endpoint: y.endpoint,
                x_token: y.x_token,
                commitment: y.commitment,
                program_ids: cfg.program_ids,
                reconnection: cfg.reconnection,
                limits,
            };
            client::run(params, &mut pipe, &stop).await;
        }
        Source::Synthetic(s) => {
            let mock_cfg = MockConfig {
                x_token: s.token.clone(),
                ping_interval: limits.synthetic_ping_interval,
                ..MockConfig::default()
            };
            let mock = match MockGeyser::spawn(mock_cfg) {
                Ok(m) => m,
                Err(e) => {
                    let msg = format!("cannot start the embedded Geyser server: {e}");
                    tracing::error!("{msg}");
                    pipe.health.record_fatal(msg);
                    return;
                }
            };
            tracing::info!(endpoint = %mock.endpoint(), "synthetic chain behind an embedded Geyser server");
            let chain = tokio::spawn(synth::run(
                s.clone(),
                cfg.program_ids.clone(),
                mock.publisher(),
                stop.clone(),
            ));
            let params = client::ClientParams {
                endpoint: mock.endpoint(),
                x_token: s.token,
                commitment: Commitment::Processed,
                program_ids: cfg.program_ids,
                reconnection: cfg.reconnection,
                limits,
            };
            client::run(params, &mut pipe, &stop).await;
            chain.abort();
            mock.stop();
        }
        Source::Replay { path, pace } => replay(&path, pace, &mut pipe, &stop).await,
    }
    pipe.flush();
}

async fn replay(path: &std::path::Path, pace: Pace, pipe: &mut Pipeline, stop: &Stop) {
    let mut reader = match record::Reader::open(path) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("replay: {e}");
            pipe.health.record_fatal(format!("replay: {e}"));
            return;
        }
    };
    pipe.health.record_connection();
    let started = tokio::time::Instant::now();
    let mut first: Option<u64> = None;
    let mut n = 0u64;
    loop {
        if stop.is_set() {
            return;
        }
        match reader.next_record() {
            Ok(None) => {
                tracing::info!(records = n, "replay of {} finished", path.display());
                pipe.health.record_disconnection();
                return;
            }
            Ok(Some(record::Record::Resumed { .. })) => pipe.resumed(),
            Ok(Some(record::Record::Update {
                recv_unix_nanos,
                update,
            })) => {
                if pace == Pace::Recorded {
                    let t0 = *first.get_or_insert(recv_unix_nanos);
                    let due = started + Duration::from_nanos(recv_unix_nanos.saturating_sub(t0));
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        _ = stop.wait() => return,
                    }
                }
                n += 1;
                if pipe.handle(&update, recv_unix_nanos).is_err() {
                    return;
                }
            }
            Err(e) => {
                let msg = format!(
                    "replay stopped: {e}; the {n} records before byte {} were replayed",
                    e.offset().unwrap_or(reader.offset())
                );
                tracing::error!("{msg}");
                Metrics::add(&pipe.metrics.upstream_errors_total, 1);
                pipe.health.record_fatal(msg);
                return;
            }
        }
    }
}

/// The shutdown signal, usable from any thread.
#[derive(Clone)]
pub(crate) struct Stop(Arc<watch::Sender<bool>>);

impl Stop {
    fn new() -> Self {
        Stop(Arc::new(watch::Sender::new(false)))
    }
    fn set(&self) {
        self.0.send_replace(true);
    }
    pub(crate) fn is_set(&self) -> bool {
        *self.0.borrow()
    }
    pub(crate) async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// What [`Pipeline::handle`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handled {
    Data,
    Ping,
    Other,
    Malformed,
}

/// The hand-off ended: every worker queue is closed, or shutdown was requested.
#[derive(Debug)]
pub(crate) struct Closed;

/// Conversion, dedup, recording and hand-off, shared by every source.
pub(crate) struct Pipeline {
    converter: Converter,
    pub(crate) resume: resume::Resume,
    sink: IngestSink,
    pub(crate) health: Arc<HealthMonitor>,
    pub(crate) metrics: Arc<Metrics>,
    recorder: Option<record::Recorder>,
    scratch: Vec<Update>,
    stop: Stop,
    last_flush: Instant,
    /// Milliseconds from the upstream's `created_at` to receipt, last data message.
    lag_ms: Arc<AtomicU64>,
}

pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Pipeline {
    /// A new stream resumes from [`resume::Resume::from_slot`].
    pub(crate) fn resumed(&mut self) {
        self.resume.resumed();
        if let Some(r) = &mut self.recorder {
            if let Err(e) = r.resumed(unix_nanos()) {
                self.record_failed(e);
            }
        }
    }

    fn record_failed(&mut self, e: RecordError) {
        tracing::error!("recording stopped: {e}");
        self.health.record_error(format!("recording stopped: {e}"));
        self.recorder = None;
    }

    pub(crate) fn flush(&mut self) {
        if let Some(r) = &mut self.recorder {
            if let Err(e) = r.flush() {
                self.record_failed(e);
            }
        }
    }

    /// Handles one upstream message received at `recv_unix_nanos` (the ingest clock).
    pub(crate) fn handle(
        &mut self,
        msg: &SubscribeUpdate,
        recv_unix_nanos: u64,
    ) -> Result<Handled, Closed> {
        use yellowstone_grpc_proto::geyser::subscribe_update::UpdateOneof;
        let keepalive = matches!(
            msg.update_oneof,
            Some(UpdateOneof::Ping(_)) | Some(UpdateOneof::Pong(_))
        );
        if !keepalive {
            Metrics::add(&self.metrics.upstream_updates_total, 1);
            if let Some(t) = &msg.created_at {
                let sent = t.seconds as i128 * 1_000_000_000 + t.nanos as i128;
                let lag = (recv_unix_nanos as i128 - sent).max(0) / 1_000_000;
                self.lag_ms
                    .store(lag.min(u64::MAX as i128) as u64, Ordering::Relaxed);
            }
            if let Some(r) = &mut self.recorder {
                if let Err(e) = r.update(recv_unix_nanos, msg) {
                    self.record_failed(e);
                }
            }
        }
        if self.last_flush.elapsed() >= Duration::from_secs(1) {
            self.last_flush = Instant::now();
            self.flush();
        }
        let now_unix = (recv_unix_nanos / 1_000_000_000) as i64;
        let mut out = std::mem::take(&mut self.scratch);
        let kind = self.converter.convert(msg, now_unix, &mut out);
        let result = match kind {
            Err(e) => {
                Metrics::add(&self.metrics.upstream_errors_total, 1);
                tracing::warn!("skipped a malformed upstream update: {e}");
                self.health
                    .record_error(format!("malformed upstream update: {e}"));
                Ok(Handled::Malformed)
            }
            Ok(convert::Kind::Ping) => Ok(Handled::Ping),
            Ok(convert::Kind::Data) => {
                let mut r = Ok(Handled::Data);
                for (i, u) in out.drain(..).enumerate() {
                    if !self.resume.admit(&u, i) {
                        continue;
                    }
                    self.health.record_event();
                    self.metrics
                        .last_slot
                        .fetch_max(u.slot(), Ordering::Relaxed);
                    if self.send(u).is_err() {
                        r = Err(Closed);
                        break;
                    }
                }
                r
            }
            Ok(_) => Ok(Handled::Other),
        };
        out.clear();
        self.scratch = out;
        result
    }

    /// Blocking send to the owning worker; gives up on shutdown or when the queue is closed.
    fn send(&self, u: Update) -> Result<(), Closed> {
        let idx = (self.sink.route)(&u) % self.sink.workers.len();
        let tx = &self.sink.workers[idx];
        let mut msg = ToWorker::Update(u);
        loop {
            match tx.send_timeout(msg, Duration::from_millis(50)) {
                Ok(()) => return Ok(()),
                Err(SendTimeoutError::Disconnected(_)) => return Err(Closed),
                Err(SendTimeoutError::Timeout(m)) => {
                    if self.stop.is_set() {
                        return Err(Closed);
                    }
                    msg = m;
                }
            }
        }
    }
}
