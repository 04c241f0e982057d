//! Shared by the `resolver_*` tests: a scripted HTTP server on 127.0.0.1, small stacks with
//! resolver specs, and a worker or resolver thread wired to them. No external network.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde_json::{json, Value as Json};
use stackcore_engine::spec::HttpMethod;
use stackcore_engine::view::Subscription;
use stackcore_engine::vm::{EventContext, ResolverExtract, ResolverKind, ResolverRequest};
use stackcore_engine::{EntityCacheConfig, Stack, StateTableConfig};
use stackcore_io::channels::{sub_id, ToReactor, ToWorker};
use stackcore_io::config::ResolverConfig;
use stackcore_io::metrics::Metrics;
use stackcore_io::reactor::ReactorParts;
use stackcore_io::resolver::{self, Clock, Resolver, ResolverLink, SystemClock};
use stackcore_io::worker::{Worker, WorkerContext, WorkerResolver};

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// What the fake server answers.
pub enum Reply {
    /// Status and body (sent as `application/json`).
    Body(u16, String),
    /// Read the request, then say nothing for this long (a server that never answers in time).
    Silence(Duration),
}

pub struct FakeServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    hits: Arc<AtomicUsize>,
}

impl FakeServer {
    /// Serves every connection on its own thread with `handler`; one request per connection.
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (s, h) = (seen.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (s, h, handler) = (s.clone(), h.clone(), handler.clone());
                std::thread::spawn(move || serve_one(stream, &s, &h, &*handler));
            }
        });
        FakeServer { addr, seen, hits }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Requests answered (or being answered) so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_one(
    mut stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    hits: &AtomicUsize,
    handler: &(dyn Fn(&Seen) -> Reply + Send + Sync),
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let len: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let req = Seen {
        method,
        path,
        body: String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string(),
    };
    seen.lock().unwrap().push(req.clone());
    hits.fetch_add(1, Ordering::SeqCst);
    match handler(&req) {
        Reply::Body(status, body) => {
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(resp.as_bytes());
        }
        Reply::Silence(d) => std::thread::sleep(d),
    }
}

/// Resolver settings for tests: no batching wait, short timeouts.
pub fn test_config() -> ResolverConfig {
    ResolverConfig {
        batch_window: Duration::ZERO,
        das_timeout: Duration::from_secs(5),
        url_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// A resolver thread on `cfg`: the worker's end, where values come back, and the thread.
pub struct Running {
    pub link: ResolverLink,
    pub results: Receiver<ToWorker>,
    pub thread: JoinHandle<()>,
    pub metrics: Arc<Metrics>,
}

pub fn start_resolver(cfg: ResolverConfig, clock: Arc<dyn Clock>) -> Running {
    let metrics = Arc::new(Metrics::new());
    let (link, requests) = resolver::queue(cfg.queue_capacity, metrics.clone());
    let (tx, results) = crossbeam_channel::bounded(cfg.max_in_flight);
    let r = Resolver::new(cfg, tx, metrics.clone(), clock);
    let thread = resolver::spawn(0, requests, r).unwrap();
    Running {
        link,
        results,
        thread,
        metrics,
    }
}

pub fn start_resolver_now(cfg: ResolverConfig) -> Running {
    start_resolver(cfg, Arc::new(SystemClock))
}

/// The next value sent back, within 10 s.
pub fn next_result(r: &Receiver<ToWorker>) -> (ResolverRequest, Arc<Json>) {
    match r.recv_timeout(Duration::from_secs(10)) {
        Ok(ToWorker::ResolverResult { request, value }) => (request, value),
        other => panic!("expected a resolver result, got {other:?}"),
    }
}

/// Waits (≤ 10 s) until `f` holds.
pub fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

fn fp(path: &str) -> Json {
    json!({"segments": path.split('.').collect::<Vec<_>>(), "offsets": null})
}

fn map(target: &str, src: &str, population: &str) -> Json {
    json!({"target_path": target, "source": {"FromSource": {"path": fp(src), "default": null, "transform": null}},
           "transform": null, "population": population})
}

/// A one-entity stack `Thing` keyed by `id`, fed by account events `p::AState` carrying `id`,
/// `url`, `mint` and `at`, with the given resolver specs.
pub fn thing_stack(resolver_specs: Json) -> Stack {
    let handler = json!({"source": {"Source": {"program_id": null, "discriminator": null, "type_name": "p::AState", "is_account": true}},
        "key_resolution": {"Embedded": {"primary_field": fp("id")}},
        "mappings": [map("id", "id", "SetOnce"), map("url", "url", "LastWrite"), map("mint", "mint", "LastWrite"), map("at", "at", "LastWrite")],
        "conditions": [], "emit": true});
    let e = json!({"state_name": "Thing", "identity": {"primary_keys": ["id"], "lookup_indexes": []},
        "handlers": [handler], "sections": [], "field_mappings": {}, "resolver_hooks": [], "instruction_hooks": [],
        "resolver_specs": resolver_specs, "computed_fields": [], "computed_field_specs": [], "views": []});
    let s = json!({"ast_version": "0.0.1", "stack_name": "T", "program_ids": ["11111111111111111111111111111111"],
        "idls": [], "entities": [e], "pdas": {}, "instructions": []});
    Stack::from_json(&serde_json::to_vec(&s).unwrap()).unwrap()
}

/// A `Thing` account event.
pub fn thing(id: u64, fields: Json) -> Json {
    let mut e = json!({"id": id, "__account_address": format!("A{id}")});
    for (k, v) in fields.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

pub fn acct(slot: u64) -> EventContext {
    EventContext {
        slot,
        index: 1,
        signature: None,
        timestamp: 1_700_000_000 + slot as i64,
        is_account: true,
    }
}

/// A worker on `stack` with one reactor (whose inbox is returned) and the given resolver ends.
pub fn worker(
    stack: Arc<Stack>,
    resolver: Option<WorkerResolver>,
    metrics: Arc<Metrics>,
) -> (Worker, Receiver<ToReactor>) {
    let parts = ReactorParts::new(1_024).unwrap();
    let w = Worker::new(WorkerContext {
        stack,
        state_table: StateTableConfig::default(),
        vm_limits: Default::default(),
        entity_cache: EntityCacheConfig::default(),
        reactors: vec![parts.handle.clone()],
        metrics,
        pin: None,
        resolver,
    });
    // The poll is not needed: the test reads the reactor's inbox directly.
    std::mem::forget(parts.poll);
    (w, parts.inbox)
}

/// The JSON payload of a frame sent to the reactor.
pub fn frame_json(msg: &ToReactor) -> Option<Json> {
    let ToReactor::Frame(out) = msg else {
        return None;
    };
    let frame = match out {
        stackcore_engine::Output::Broadcast { frame, .. }
        | stackcore_engine::Output::To { frame, .. } => frame,
    };
    frame_payload(frame)
}

fn frame_payload(frame: &stackcore_engine::SharedFrame) -> Option<Json> {
    let bytes = frame.payload();
    serde_json::from_slice(bytes).ok()
}

/// A subscription request to `view`.
/// A worker on `stack` wired to the running resolver `r`, with one client subscribed to `view`
/// (subscription `sub_id(0, 1)`); returns the worker and its reactor's inbox.
pub fn subscribed_worker(
    stack: Arc<Stack>,
    r: &Running,
    view: &str,
) -> (Worker, Receiver<ToReactor>) {
    let ends = WorkerResolver {
        link: r.link.clone(),
        results: r.results.clone(),
    };
    let (mut w, inbox) = worker(stack, Some(ends), r.metrics.clone());
    assert!(w.handle(ToWorker::Subscribe {
        sub: sub_id(0, 1),
        req: subscription(view),
        max_snapshot_rows: None,
    }));
    (w, inbox)
}

pub fn subscription(view: &str) -> Subscription {
    serde_json::from_value(json!({"view": view})).unwrap()
}

/// A URL resolver request as the VM would emit it (entity `Thing`, key 1, whole value to `x`).
pub fn url_request(method: HttpMethod, url: &str, extract_path: Option<&str>) -> ResolverRequest {
    ResolverRequest {
        entity: "Thing".into(),
        key: json!(1),
        kind: ResolverKind::Url {
            method,
            extract_path: extract_path.map(str::to_string),
        },
        input: json!(url),
        extracts: vec![extract("x")].into(),
        at_slot: None,
        set_once: true,
    }
}

/// A token resolver request for `mint` (entity `Thing`, key `key`).
pub fn token_request(mint: &str, key: u64) -> ResolverRequest {
    ResolverRequest {
        entity: "Thing".into(),
        key: json!(key),
        kind: ResolverKind::Token,
        input: json!(mint),
        extracts: vec![extract("meta")].into(),
        at_slot: None,
        set_once: true,
    }
}

/// The values received within `wait` (stops at the first gap that long).
pub fn results_within(r: &Receiver<ToWorker>, wait: Duration) -> Vec<(ResolverRequest, Arc<Json>)> {
    let mut out = Vec::new();
    while let Ok(ToWorker::ResolverResult { request, value }) = r.recv_timeout(wait) {
        out.push((request, value));
    }
    out
}

/// An extract writing the whole result to `target` (emitted, no transform).
pub fn extract(target: &str) -> ResolverExtract {
    ResolverExtract {
        target: target.to_string(),
        source: None,
        transform: None,
        emit: true,
    }
}
