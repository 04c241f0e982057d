//! The VM worker: one thread that owns one shard of a stack's state.
//!
//! It takes [`ToWorker`] messages in order: updates run through the VM and the views; subscribe
//! requests are answered from the same views, on the same thread, so a subscriber's snapshot and the
//! live frames after it can neither overlap nor leave a gap. Output goes to the reactors that have
//! subscribers for it; each reactor is woken once per batch, not once per frame.
//!
//! Resolvers: after every update (slot updates included, they fire slot-scheduled resolvers) the
//! worker drains the VM's resolver requests into its resolver thread's queue without waiting
//! (full ⇒ dropped and counted, see [`crate::resolver`]). Fetched values come back as
//! [`ToWorker::ResolverResult`] on a queue of their own; the worker applies them to the VM and
//! routes the resulting mutations through its views exactly like an update's.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use serde_json::Value as Json;
use stackcore_engine::view::{Output, SubId, ViewId, Views};
use stackcore_engine::vm::{EventContext, VmLimits, VmStats};
use stackcore_engine::{EntityCacheConfig, Mutation, Stack, StateTableConfig, Update, VmContext};

use crate::channels::{reactor_of, ReactorHandle, ToReactor, ToWorker};
use crate::metrics::Metrics;
use crate::resolver::ResolverLink;

/// Most messages taken from the inbox before the reactors are woken.
const BATCH: usize = 256;

/// Everything a worker thread needs.
pub struct WorkerContext {
    pub stack: Arc<Stack>,
    pub state_table: StateTableConfig,
    pub vm_limits: VmLimits,
    pub entity_cache: EntityCacheConfig,
    pub reactors: Vec<ReactorHandle>,
    pub metrics: Arc<Metrics>,
    pub pin: Option<usize>,
    /// The worker's resolver thread; `None` drops (and counts) every resolver request.
    pub resolver: Option<WorkerResolver>,
}

/// A worker's two ends of its resolver thread.
pub struct WorkerResolver {
    /// Where the worker submits requests (never waits).
    pub link: ResolverLink,
    /// Where fetched values come back ([`ToWorker::ResolverResult`]).
    pub results: Receiver<ToWorker>,
}

/// The worker's state, separate from its thread so tests can step it.
pub struct Worker {
    stack: Arc<Stack>,
    vm: VmContext,
    views: Views,
    reactors: Vec<ReactorHandle>,
    metrics: Arc<Metrics>,
    /// Subscribers per view per reactor: broadcasts go only where someone listens.
    interest: HashMap<ViewId, Vec<u32>>,
    subs: HashMap<SubId, ViewId>,
    woken: Vec<bool>,
    mutations: Vec<Mutation>,
    /// The VM's counters as last added to the metrics.
    vm_published: VmStats,
    outputs: Vec<Output>,
    resolver: Option<ResolverLink>,
    /// Slot and time of the latest update: the context resolver results are applied in.
    last_slot: u64,
    last_timestamp: i64,
}

impl Worker {
    pub fn new(ctx: WorkerContext) -> Worker {
        let views = Views::new(ctx.stack.entity_views(), ctx.entity_cache);
        let n = ctx.reactors.len();
        Worker {
            vm: VmContext::new_with_limits(ctx.state_table, ctx.vm_limits),
            views,
            stack: ctx.stack,
            reactors: ctx.reactors,
            metrics: ctx.metrics,
            interest: HashMap::new(),
            subs: HashMap::new(),
            woken: vec![false; n],
            mutations: Vec::new(),
            vm_published: VmStats::default(),
            outputs: Vec::new(),
            resolver: ctx.resolver.map(|r| r.link),
            last_slot: 0,
            last_timestamp: 0,
        }
    }

    /// Handles one message. Returns `false` once every reactor is gone.
    pub fn handle(&mut self, msg: ToWorker) -> bool {
        match msg {
            ToWorker::Update(update) => {
                self.vm.recycle_mutations(&mut self.mutations);
                self.note_time(&update);
                match self.vm.apply(&self.stack, &update, &mut self.mutations) {
                    Ok(()) => Metrics::add(&self.metrics.events_applied_total, 1),
                    // Counted by kind from the VM's own counters (`publish_vm_stats`).
                    Err(e) => tracing::debug!(error = %e, slot = update.slot(), "update skipped"),
                }
                self.submit_resolver_requests();
                self.publish_mutations()
            }
            ToWorker::ResolverResult { request, value } => {
                self.vm.recycle_mutations(&mut self.mutations);
                let ctx = EventContext {
                    slot: self.last_slot,
                    index: 0,
                    signature: None,
                    timestamp: self.last_timestamp,
                    is_account: false,
                };
                let r = self.vm.apply_resolver_result(
                    &self.stack,
                    &request,
                    request.set_once,
                    &value,
                    &ctx,
                    &mut self.mutations,
                );
                if let Err(e) = r {
                    Metrics::add(&self.metrics.resolver_apply_errors_total, 1);
                    tracing::debug!(error = %e, entity = %request.entity, "resolver result not applied");
                }
                self.submit_resolver_requests();
                self.publish_mutations()
            }
            ToWorker::Subscribe {
                sub,
                req,
                max_snapshot_rows,
            } => {
                let reactor = reactor_of(sub);
                match self
                    .views
                    .subscribe_limited(sub, &req, max_snapshot_rows, &mut self.outputs)
                {
                    Ok(view) => {
                        if self.subs.insert(sub, view).is_none() {
                            self.interest_mut(view)[reactor] += 1;
                        }
                        self.send(reactor, ToReactor::Subscribed { sub, view })
                            && self.route_outputs()
                    }
                    Err(error) => {
                        self.outputs.clear();
                        self.send(reactor, ToReactor::Rejected { sub, error })
                    }
                }
            }
            ToWorker::Unsubscribe { sub } => {
                self.views.unsubscribe(sub);
                if let Some(view) = self.subs.remove(&sub) {
                    let r = reactor_of(sub);
                    let count = &mut self.interest_mut(view)[r];
                    *count = count.saturating_sub(1);
                }
                true
            }
        }
    }

    /// Runs one decoded event (the reference interpreter's JSON shape, see
    /// `VmContext::apply_json`) exactly as an update: VM, resolver requests, views, reactors.
    /// For tests and tools that feed decoded events; ingest sends raw [`ToWorker::Update`]s.
    pub fn handle_decoded(&mut self, event_type: &str, event: &Json, ctx: &EventContext) -> bool {
        self.vm.recycle_mutations(&mut self.mutations);
        self.last_slot = self.last_slot.max(ctx.slot);
        self.last_timestamp = ctx.timestamp;
        match self
            .vm
            .apply_json(&self.stack, event_type, event, ctx, &mut self.mutations)
        {
            Ok(()) => Metrics::add(&self.metrics.events_applied_total, 1),
            Err(e) => tracing::debug!(error = %e, event_type, "decoded event skipped"),
        }
        self.submit_resolver_requests();
        self.publish_mutations()
    }

    fn note_time(&mut self, update: &Update) {
        let ts = match update {
            Update::Account(a) => a.timestamp,
            Update::Instruction(i) => i.timestamp,
            Update::Slot { timestamp, .. } => *timestamp,
        };
        self.last_slot = self.last_slot.max(update.slot());
        self.last_timestamp = ts;
    }

    /// Hands the VM's pending resolver requests to the resolver thread, never waiting.
    fn submit_resolver_requests(&mut self) {
        let requests = self.vm.drain_resolver_requests();
        if requests.as_slice().is_empty() {
            return;
        }
        match &self.resolver {
            Some(link) => {
                for r in requests {
                    link.submit(r);
                }
            }
            None => Metrics::add(
                &self.metrics.resolver_requests_dropped_total,
                requests.len() as u64,
            ),
        }
    }

    /// The mutations just produced, through the views, to the reactors.
    fn publish_mutations(&mut self) -> bool {
        Metrics::add(&self.metrics.mutations_total, self.mutations.len() as u64);
        for m in &self.mutations {
            self.views.apply(m, &mut self.outputs);
        }
        Metrics::add(&self.metrics.frames_total, self.outputs.len() as u64);
        self.route_outputs()
    }

    fn interest_mut(&mut self, view: ViewId) -> &mut Vec<u32> {
        let n = self.reactors.len();
        self.interest.entry(view).or_insert_with(|| vec![0; n])
    }

    fn send(&mut self, reactor: usize, msg: ToReactor) -> bool {
        let Some(handle) = self.reactors.get(reactor) else {
            tracing::warn!(reactor, "message for an unknown reactor dropped");
            return true;
        };
        self.woken[reactor] = true;
        handle.send(msg)
    }

    fn route_outputs(&mut self) -> bool {
        let mut alive = true;
        let Worker {
            outputs,
            interest,
            reactors,
            woken,
            ..
        } = self;
        for out in outputs.drain(..) {
            match &out {
                Output::To { sub, .. } => {
                    let r = reactor_of(*sub);
                    if let Some(handle) = reactors.get(r) {
                        woken[r] = true;
                        alive &= handle.send(ToReactor::Frame(out));
                    }
                }
                Output::Broadcast { view, .. } => {
                    let Some(counts) = interest.get(view) else {
                        continue;
                    };
                    for (r, _) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
                        woken[r] = true;
                        alive &= reactors[r].send(ToReactor::Frame(out.clone()));
                    }
                }
            }
        }
        alive
    }

    /// Adds what the VM counted since the last call to the process metrics (`/metrics`,
    /// `/status`). Called once per batch: the VM's counters are plain fields, these are atomics.
    pub fn publish_vm_stats(&mut self) {
        let now = self.vm.stats().clone();
        let last = std::mem::replace(&mut self.vm_published, now.clone());
        let m = &self.metrics;
        for (counter, new, old) in [
            (
                &m.decode_errors_total,
                now.decode_errors,
                last.decode_errors,
            ),
            (
                &m.vm_handler_errors_total,
                now.handler_errors,
                last.handler_errors,
            ),
            (
                &m.vm_unknown_events_total,
                now.unknown_events,
                last.unknown_events,
            ),
            (
                &m.vm_skipped_stale_total,
                now.skipped_stale,
                last.skipped_stale,
            ),
            (
                &m.vm_skipped_duplicate_total,
                now.skipped_duplicate,
                last.skipped_duplicate,
            ),
            (
                &m.vm_queued_pending_total,
                now.queued_pending,
                last.queued_pending,
            ),
            (&m.vm_replayed_total, now.replayed, last.replayed),
            (
                &m.vm_dropped_pending_total,
                now.dropped_pending,
                last.dropped_pending,
            ),
            (
                &m.vm_deferred_when_total,
                now.deferred_when,
                last.deferred_when,
            ),
            (
                &m.vm_expired_when_total,
                now.expired_when,
                last.expired_when,
            ),
            (
                &m.vm_evicted_rows_total,
                now.evicted_rows,
                last.evicted_rows,
            ),
            (
                &m.vm_resolver_requests_dropped_total,
                now.dropped_resolver_requests,
                last.dropped_resolver_requests,
            ),
        ] {
            if new > old {
                Metrics::add(counter, new - old);
            }
        }
    }

    /// Wakes every reactor that was sent something since the last call.
    pub fn wake_reactors(&mut self) {
        for (r, woken) in self.woken.iter_mut().enumerate() {
            if std::mem::take(woken) {
                self.reactors[r].wake();
            }
        }
    }

    /// The worker's views (for tests and diagnostics).
    pub fn views(&self) -> &Views {
        &self.views
    }

    /// The worker's VM (for tests and diagnostics).
    pub fn vm(&self) -> &VmContext {
        &self.vm
    }
}

/// Runs a worker on its own thread until its inbox closes (every sender dropped).
pub fn spawn(
    index: usize,
    inbox: Receiver<ToWorker>,
    ctx: WorkerContext,
) -> std::io::Result<JoinHandle<()>> {
    let pin = ctx.pin;
    let mut results = match &ctx.resolver {
        Some(r) => r.results.clone(),
        None => crossbeam_channel::never(),
    };
    std::thread::Builder::new()
        .name(format!("worker-{index}"))
        .spawn(move || {
            if let Some(core) = pin {
                crate::pin::pin_current(crate::pin::Role::Worker, core);
            }
            let mut worker = Worker::new(ctx);
            'run: loop {
                let (from_inbox, msg) = crossbeam_channel::select! {
                    recv(inbox) -> m => (true, m),
                    recv(results) -> m => (false, m),
                };
                let msg = match msg {
                    Ok(m) => m,
                    Err(_) if from_inbox => break,
                    Err(_) => {
                        // The resolver thread is gone; stop listening to it.
                        results = crossbeam_channel::never();
                        continue;
                    }
                };
                if !worker.handle(msg) {
                    break;
                }
                for _ in 1..BATCH {
                    match inbox.try_recv() {
                        Ok(msg) => {
                            if !worker.handle(msg) {
                                break 'run;
                            }
                        }
                        Err(_) => break,
                    }
                }
                for _ in 0..BATCH {
                    match results.try_recv() {
                        Ok(msg) => {
                            if !worker.handle(msg) {
                                break 'run;
                            }
                        }
                        Err(_) => break,
                    }
                }
                worker.publish_vm_stats();
                worker.wake_reactors();
            }
            worker.publish_vm_stats();
            worker.wake_reactors();
            tracing::debug!(index, "worker stopped");
        })
}
