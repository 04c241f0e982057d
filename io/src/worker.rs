//! The VM worker: one thread that owns one shard of a stack's state.
//!
//! It takes [`ToWorker`] messages in order: updates run through the VM and the views; subscribe
//! requests are answered from the same views, on the same thread, so a subscriber's snapshot and the
//! live frames after it can neither overlap nor leave a gap. Output goes to the reactors that have
//! subscribers for it; each reactor is woken once per batch, not once per frame.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use stackcore_engine::view::{Output, SubId, ViewId, Views};
use stackcore_engine::{EntityCacheConfig, Mutation, Stack, StateTableConfig, VmContext};

use crate::channels::{reactor_of, ReactorHandle, ToReactor, ToWorker};
use crate::metrics::Metrics;

/// Most messages taken from the inbox before the reactors are woken.
const BATCH: usize = 256;

/// Everything a worker thread needs.
pub struct WorkerContext {
    pub stack: Arc<Stack>,
    pub state_table: StateTableConfig,
    pub entity_cache: EntityCacheConfig,
    pub reactors: Vec<ReactorHandle>,
    pub metrics: Arc<Metrics>,
    pub pin: Option<usize>,
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
    outputs: Vec<Output>,
}

impl Worker {
    pub fn new(ctx: WorkerContext) -> Worker {
        let views = Views::new(ctx.stack.entity_views(), ctx.entity_cache);
        let n = ctx.reactors.len();
        Worker {
            vm: VmContext::new_with_config(ctx.state_table),
            views,
            stack: ctx.stack,
            reactors: ctx.reactors,
            metrics: ctx.metrics,
            interest: HashMap::new(),
            subs: HashMap::new(),
            woken: vec![false; n],
            mutations: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Handles one message. Returns `false` once every reactor is gone.
    pub fn handle(&mut self, msg: ToWorker) -> bool {
        match msg {
            ToWorker::Update(update) => {
                self.mutations.clear();
                match self.vm.apply(&self.stack, &update, &mut self.mutations) {
                    Ok(()) => Metrics::add(&self.metrics.events_applied_total, 1),
                    Err(e) => {
                        Metrics::add(&self.metrics.decode_errors_total, 1);
                        tracing::debug!(error = %e, slot = update.slot(), "update skipped");
                    }
                }
                Metrics::add(&self.metrics.mutations_total, self.mutations.len() as u64);
                for m in &self.mutations {
                    self.views.apply(m, &mut self.outputs);
                }
                Metrics::add(&self.metrics.frames_total, self.outputs.len() as u64);
                self.route_outputs()
            }
            ToWorker::Subscribe { sub, req } => {
                let reactor = reactor_of(sub);
                match self.views.subscribe(sub, &req, &mut self.outputs) {
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
}

/// Runs a worker on its own thread until its inbox closes (every sender dropped).
pub fn spawn(
    index: usize,
    inbox: Receiver<ToWorker>,
    ctx: WorkerContext,
) -> std::io::Result<JoinHandle<()>> {
    let pin = ctx.pin;
    std::thread::Builder::new()
        .name(format!("worker-{index}"))
        .spawn(move || {
            if let Some(core) = pin {
                crate::pin::pin_current(crate::pin::Role::Worker, core);
            }
            let mut worker = Worker::new(ctx);
            'run: while let Ok(msg) = inbox.recv() {
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
                worker.wake_reactors();
            }
            worker.wake_reactors();
            tracing::debug!(index, "worker stopped");
        })
}
