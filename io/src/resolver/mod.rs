//! Resolver fetching: the enrichment a stack's `resolver_specs` ask for (DAS token metadata, URL
//! fetches), done off the VM worker on one plain OS thread per worker (no async runtime).
//!
//! ```text
//! worker ── ResolverLink::submit (try_send; full ⇒ dropped, counted) ──▶ resolver thread
//!    ▲                                                                    │ cache (bounded, TTL)
//!    └──────── ToWorker::ResolverResult (bounded, max_in_flight) ◀────────┘ ureq: DAS / URL
//! ```
//!
//! - The worker drains `VmContext::drain_resolver_requests()` after every update (slot updates
//!   included: they fire slot-scheduled resolvers) and submits each request without waiting.
//! - The thread takes up to `max_in_flight` requests per round (waiting `batch_window` after the
//!   first for more), answers cached ones at once, fetches the rest — token mints in
//!   `getAssetBatch` calls of `das_batch_size`, each distinct method + URL once — and sends every
//!   value back. The worker applies it with `VmContext::apply_resolver_result` and routes the
//!   resulting mutation through its views like any other.
//! - A failed call (timeout, non-2xx, bad JSON, JSON-RPC error, missing `extract_path`) is a typed
//!   [`ResolverError`], counted by kind, logged; nothing is applied and the thread goes on. There
//!   is no retry loop: the VM asks again the next time the entity is updated while its `SetOnce`
//!   targets are still null, and requests for a key that failed less than `retry_after` ago are
//!   skipped (a bounded negative cache), so a broken endpoint costs one call per key per
//!   `retry_after`, not one per update.
//! - Shutdown: the thread ends when its worker drops the link (queue disconnected) or the result
//!   queue is gone; a call in progress finishes first (bounded by its timeout).
//!
//! `extract_path` of a URL resolver: the response must contain it (else
//! [`ResolverError::MissingPath`], and the response is not cached). The value handed to the VM is
//! the whole response, because the reference's extracts select relative to it with their own
//! `source_path` (the HyperStack macros put the same path in both; selecting twice would find
//! nothing); an extract without a `source_path` gets the `extract_path`.

pub mod cache;
pub mod das;
pub mod http;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde_json::Value as Json;
use stackcore_engine::spec::HttpMethod;
use stackcore_engine::vm::{ResolverKind, ResolverRequest};

pub use cache::{Clock, ManualClock, SystemClock, TtlCache};
pub use http::{HttpClient, ResolverError};

use crate::channels::ToWorker;
use crate::config::ResolverConfig;
use crate::metrics::Metrics;

/// The worker's end of a resolver queue. Submitting never waits.
#[derive(Clone)]
pub struct ResolverLink {
    tx: Sender<ResolverRequest>,
    metrics: Arc<Metrics>,
}

impl ResolverLink {
    /// Queues a request for the resolver thread. When the queue is full (or the thread is gone)
    /// the request is dropped and counted in `resolver_requests_dropped_total`; returns `false`.
    pub fn submit(&self, request: ResolverRequest) -> bool {
        match self.tx.try_send(request) {
            Ok(()) => {
                Metrics::add(&self.metrics.resolver_requests_total, 1);
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                Metrics::add(&self.metrics.resolver_requests_dropped_total, 1);
                false
            }
        }
    }
}

/// A bounded resolver queue: the worker's link and the resolver thread's inbox.
pub fn queue(capacity: usize, metrics: Arc<Metrics>) -> (ResolverLink, Receiver<ResolverRequest>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (ResolverLink { tx, metrics }, rx)
}

/// Requests waiting for one token fetch (one mint).
struct TokenWait {
    mint: String,
    waiters: Vec<ResolverRequest>,
}

/// Requests waiting for one URL fetch (one method + URL + extract path).
struct UrlWait {
    method: HttpMethod,
    url: String,
    extract_path: Option<String>,
    waiters: Vec<ResolverRequest>,
}

/// The resolver thread's state, separate from the thread so tests can step it.
pub struct Resolver {
    cfg: ResolverConfig,
    client: HttpClient,
    cache: TtlCache<Arc<Json>>,
    /// Keys whose last fetch failed, for `retry_after`.
    failed: TtlCache<()>,
    results: Sender<ToWorker>,
    metrics: Arc<Metrics>,
    warned_no_das: bool,
}

impl Resolver {
    /// Results go to `results` (the worker's resolver-result queue).
    pub fn new(
        cfg: ResolverConfig,
        results: Sender<ToWorker>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Resolver {
        Resolver {
            client: HttpClient::new(cfg.das_timeout, cfg.url_timeout, cfg.max_response_bytes),
            cache: TtlCache::new(cfg.cache_capacity, cfg.cache_ttl, clock.clone()),
            failed: TtlCache::new(cfg.cache_capacity, cfg.retry_after, clock),
            cfg,
            results,
            metrics,
            warned_no_das: false,
        }
    }

    /// Serves one round of requests: cache first, then one DAS call per batch of distinct mints
    /// and one call per distinct URL. Returns `false` once the worker is gone.
    pub fn serve(&mut self, round: Vec<ResolverRequest>) -> bool {
        let mut tokens: Vec<TokenWait> = Vec::new();
        let mut token_ix: HashMap<String, usize> = HashMap::new();
        let mut urls: Vec<UrlWait> = Vec::new();
        let mut url_ix: HashMap<(String, Option<String>), usize> = HashMap::new();
        for req in round {
            match &req.kind {
                ResolverKind::Token => {
                    let Some(mint) = das::mint_of(&req.input).map(str::to_string) else {
                        self.unresolvable(1, "token resolver input is not a mint");
                        continue;
                    };
                    let key = cache::token_key(&mint);
                    if self.backing_off(&key) {
                        continue;
                    }
                    if let Some(v) = self.cache.get(&key) {
                        Metrics::add(&self.metrics.resolver_cache_hits_total, 1);
                        if !self.deliver(req, v) {
                            return false;
                        }
                        continue;
                    }
                    Metrics::add(&self.metrics.resolver_cache_misses_total, 1);
                    let i = *token_ix.entry(mint.clone()).or_insert_with(|| {
                        tokens.push(TokenWait {
                            mint,
                            waiters: Vec::new(),
                        });
                        tokens.len() - 1
                    });
                    tokens[i].waiters.push(req);
                }
                ResolverKind::Url {
                    method,
                    extract_path,
                } => {
                    let Some(url) = req.input.as_str().filter(|u| !u.is_empty()) else {
                        self.unresolvable(1, "URL resolver input is not a URL");
                        continue;
                    };
                    let (method, url) = (*method, url.to_string());
                    let extract_path = extract_path.clone().filter(|p| !p.is_empty());
                    let key = cache::url_key(method, &url);
                    if self.backing_off(&key) {
                        continue;
                    }
                    if let Some(v) = self.cache.get(&key) {
                        Metrics::add(&self.metrics.resolver_cache_hits_total, 1);
                        match check_path(&url, extract_path.as_deref(), &v) {
                            Ok(()) => {
                                if !self.deliver(req, v) {
                                    return false;
                                }
                            }
                            Err(e) => self.failed(&e, 1),
                        }
                        continue;
                    }
                    Metrics::add(&self.metrics.resolver_cache_misses_total, 1);
                    let i = *url_ix
                        .entry((key, extract_path.clone()))
                        .or_insert_with(|| {
                            urls.push(UrlWait {
                                method,
                                url,
                                extract_path,
                                waiters: Vec::new(),
                            });
                            urls.len() - 1
                        });
                    urls[i].waiters.push(req);
                }
            }
        }
        self.fetch_tokens(tokens) && self.fetch_urls(urls)
    }

    fn fetch_tokens(&mut self, tokens: Vec<TokenWait>) -> bool {
        if tokens.is_empty() {
            return true;
        }
        let Some(endpoint) = self.cfg.das_endpoint.clone() else {
            let n = tokens.iter().map(|t| t.waiters.len()).sum();
            if !std::mem::replace(&mut self.warned_no_das, true) {
                tracing::warn!(
                    "DAS_API_ENDPOINT not set: token resolver requests are dropped (counted in resolver_unresolvable_total)"
                );
            }
            self.unresolvable(n, "no DAS endpoint");
            return true;
        };
        let mut it = tokens.into_iter();
        loop {
            let chunk: Vec<TokenWait> = it.by_ref().take(self.cfg.das_batch_size).collect();
            if chunk.is_empty() {
                return true;
            }
            let mints: Vec<&str> = chunk.iter().map(|t| t.mint.as_str()).collect();
            Metrics::add(&self.metrics.resolver_fetches_total, 1);
            let answer = self
                .client
                .post_json(&endpoint, &das::request_body(&mints))
                .and_then(|a| das::parse_response(&endpoint, &a));
            let found = match answer {
                Ok(pairs) => pairs.into_iter().collect::<HashMap<String, Json>>(),
                Err(e) => {
                    self.failed(&e, chunk.iter().map(|t| t.waiters.len()).sum());
                    for t in &chunk {
                        self.failed.put(cache::token_key(&t.mint), ());
                    }
                    continue;
                }
            };
            let mut found = found;
            for t in chunk {
                let Some(v) = found.remove(&t.mint) else {
                    tracing::debug!(mint = %t.mint, "DAS answer lacks the mint");
                    self.unresolvable(t.waiters.len(), "mint not in the DAS answer");
                    self.failed.put(cache::token_key(&t.mint), ());
                    continue;
                };
                let v = Arc::new(v);
                self.cache.put(cache::token_key(&t.mint), v.clone());
                for req in t.waiters {
                    if !self.deliver(req, v.clone()) {
                        return false;
                    }
                }
            }
        }
    }

    fn fetch_urls(&mut self, urls: Vec<UrlWait>) -> bool {
        for u in urls {
            Metrics::add(&self.metrics.resolver_fetches_total, 1);
            let value = self
                .client
                .fetch_url(u.method, &u.url)
                .and_then(|v| check_path(&u.url, u.extract_path.as_deref(), &v).map(|()| v));
            match value {
                Ok(v) => {
                    let v = Arc::new(v);
                    self.cache.put(cache::url_key(u.method, &u.url), v.clone());
                    for req in u.waiters {
                        if !self.deliver(req, v.clone()) {
                            return false;
                        }
                    }
                }
                Err(e) => {
                    self.failed(&e, u.waiters.len());
                    self.failed.put(cache::url_key(u.method, &u.url), ());
                }
            }
        }
        true
    }

    /// Whether `key` failed less than `retry_after` ago (the request is then skipped, counted).
    fn backing_off(&mut self, key: &str) -> bool {
        if self.cfg.retry_after.is_zero() || self.failed.get(key).is_none() {
            return false;
        }
        Metrics::add(&self.metrics.resolver_backoff_skipped_total, 1);
        true
    }

    /// Sends one value back to the worker (waiting for room: the worker drains this queue).
    fn deliver(&self, mut request: ResolverRequest, value: Arc<Json>) -> bool {
        if let ResolverKind::Url {
            extract_path: Some(p),
            ..
        } = &request.kind
        {
            if !p.is_empty() && request.extracts.iter().any(|x| x.source.is_none()) {
                let filled = request.extracts.iter().cloned().map(|mut x| {
                    x.source.get_or_insert_with(|| p.clone());
                    x
                });
                request.extracts = filled.collect();
            }
        }
        Metrics::add(&self.metrics.resolver_results_total, 1);
        self.results
            .send(ToWorker::ResolverResult { request, value })
            .is_ok()
    }

    fn failed(&self, e: &ResolverError, requests: usize) {
        let m = &self.metrics;
        Metrics::add(&m.resolver_errors_total, 1);
        let kind = match e {
            ResolverError::Timeout { .. } => &m.resolver_timeouts_total,
            ResolverError::Status { .. } => &m.resolver_http_status_errors_total,
            ResolverError::BadResponse { .. } | ResolverError::Rpc { .. } => {
                &m.resolver_bad_responses_total
            }
            ResolverError::MissingPath { .. } => &m.resolver_missing_path_total,
            ResolverError::Transport { .. } => &m.resolver_transport_errors_total,
        };
        Metrics::add(kind, 1);
        tracing::warn!(error = %e, kind = e.kind(), requests, "resolver fetch failed");
    }

    fn unresolvable(&self, n: usize, why: &'static str) {
        Metrics::add(&self.metrics.resolver_unresolvable_total, n as u64);
        tracing::debug!(requests = n, why, "resolver requests dropped");
    }
}

fn check_path(url: &str, path: Option<&str>, v: &Json) -> Result<(), ResolverError> {
    match path {
        Some(p) if http::select(v, p).is_none() => Err(ResolverError::MissingPath {
            url: url.to_string(),
            path: p.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Runs `resolver` on its own thread until its inbox disconnects (the worker is gone) or the
/// worker's result queue is closed.
pub fn spawn(
    index: usize,
    inbox: Receiver<ResolverRequest>,
    mut resolver: Resolver,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("resolver-{index}"))
        .spawn(move || {
            let max = resolver.cfg.max_in_flight;
            let window = resolver.cfg.batch_window;
            while let Ok(first) = inbox.recv() {
                let mut round = Vec::with_capacity(max.min(64));
                round.push(first);
                let deadline = Instant::now() + window;
                while round.len() < max {
                    match inbox.recv_deadline(deadline) {
                        Ok(r) => round.push(r),
                        Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                            break
                        }
                    }
                }
                if !resolver.serve(round) {
                    break;
                }
            }
            tracing::debug!(index, "resolver stopped");
        })
}
