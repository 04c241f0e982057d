//! The reference server, started from the stack file, with a `parser_setup` that runs the feed.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyperstack_interpreter::ast::{SerializableStackSpec, TypedStreamSpec, ViewDef};
use hyperstack_interpreter::compiler::MultiEntityBytecode;
use hyperstack_interpreter::vm::{UpdateContext, VmContext};
use hyperstack_server::{MutationBatch, ParserSetupFn, SlotContext, Spec};
use stackcore_perf::{drive, Feed, FeedStats, Pacer, SlotClock};

/// A running reference server; [`Peer::go`] starts its feed.
pub struct Peer {
    pub port: u16,
    go: mpsc::Sender<Go>,
}

/// "Feed for this long, then report here."
struct Go {
    duration: Duration,
    done: mpsc::Sender<FeedStats>,
}

impl Peer {
    /// Starts feeding for `duration`; the stats arrive on the returned channel when it ends.
    pub fn go(&self, duration: Duration) -> mpsc::Receiver<FeedStats> {
        let (done, stats) = mpsc::channel();
        let _ = self.go.send(Go { duration, done });
        stats
    }
}

/// The reference interpreter's bytecode for a stack file: each entity in file order, state id =
/// its index, computed fields through the AST evaluator (protocol.md §8.1).
pub fn bytecode(spec: &SerializableStackSpec) -> MultiEntityBytecode {
    let mut builder = MultiEntityBytecode::new();
    for (i, entity) in spec.entities.iter().cloned().enumerate() {
        let name = entity.state_name.clone();
        let evaluator = VmContext::create_evaluator_from_specs(entity.computed_field_specs.clone());
        builder = builder.add_entity_with_evaluator(
            name,
            TypedStreamSpec::<serde_json::Value>::from_serializable(entity),
            i as u32,
            Some(evaluator),
        );
    }
    builder.build()
}

/// The stack's derived views (`entities[*].views`); the server adds list/state/append itself.
pub fn derived_views(spec: &SerializableStackSpec) -> Vec<ViewDef> {
    spec.entities.iter().flat_map(|e| e.views.iter().cloned()).collect()
}

/// Everything the feeder thread needs, handed over once by `parser_setup`.
struct FeedJob {
    feed: Option<Feed>,
    bytecode: MultiEntityBytecode,
    pacer: Pacer,
    clock: Arc<SlotClock>,
    stop: Arc<AtomicBool>,
    go: mpsc::Receiver<Go>,
}

pub fn start(
    stack_json: &[u8],
    port: u16,
    feed: Option<Feed>,
    pacer: Pacer,
    clock: Arc<SlotClock>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Peer> {
    let spec: SerializableStackSpec = serde_json::from_slice(stack_json).context("stack file")?;
    let port = if port == 0 { free_port()? } else { port };
    let (go_tx, go_rx) = mpsc::channel();
    let job = Mutex::new(Some(FeedJob { feed, bytecode: bytecode(&spec), pacer, clock, stop, go: go_rx }));
    let job = Arc::new(job);
    let parser_setup: ParserSetupFn = Arc::new(move |tx, _health, _reconnection| {
        let job = job.lock().ok().and_then(|mut j| j.take());
        Box::pin(async move {
            if let Some(job) = job {
                std::thread::Builder::new().name("reference-feed".into()).spawn(move || feed_thread(job, tx))?;
            }
            // The runtime treats a finished parser task as the end of the server.
            std::future::pending::<()>().await;
            Ok(())
        })
    });
    let server_spec = Spec {
        bytecode: bytecode(&spec),
        program_ids: spec.program_ids.clone(),
        parser_setup: Some(parser_setup),
        views: derived_views(&spec),
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    std::thread::Builder::new().name("reference-runtime".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("reference-peer: tokio runtime: {e}");
                return;
            }
        };
        let server = hyperstack_server::Server::builder()
            .spec(server_spec)
            .websocket()
            .bind(addr)
            .websocket_max_clients(100_000);
        if let Err(e) = rt.block_on(server.start()) {
            eprintln!("reference-peer: server: {e}");
        }
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("the reference server did not listen on {addr} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Peer { port, go: go_tx })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// Waits for [`Peer::go`], then feeds: update → reference JSON event → `process_event` → one
/// batch with the update's slot context.
fn feed_thread(job: FeedJob, tx: tokio::sync::mpsc::Sender<MutationBatch>) {
    let Ok(go) = job.go.recv() else { return };
    let Some(feed) = job.feed else {
        let _ = go.done.send(FeedStats::default());
        return;
    };
    let feed = RefCell::new(feed);
    let mut vm = VmContext::new();
    let mut vm_errors = 0u64;
    let stats = drive(
        || feed.borrow_mut().next_update(),
        job.pacer,
        go.duration,
        &job.clock,
        &job.stop,
        |update| {
            let Some(ev) = feed.borrow_mut().reference_event(&update) else { return true };
            let (mut ctx, index) = match (ev.write_version, ev.txn_index) {
                (Some(wv), _) => (UpdateContext::new_account(ev.slot, ev.signature, wv), wv),
                (None, Some(ix)) => (UpdateContext::new_instruction(ev.slot, ev.signature, ix), ix),
                (None, None) => return true,
            };
            ctx.timestamp = Some(ev.timestamp);
            let mutations = match vm.process_event(&job.bytecode, ev.value, &ev.event_type, Some(&ctx), None) {
                Ok(m) => m,
                Err(_) => {
                    vm_errors += 1;
                    return true;
                }
            };
            // Nothing here serves resolvers or schedules; drop their requests so they do not pile up.
            let _ = vm.take_resolver_requests();
            let _ = vm.take_scheduled_callbacks();
            if mutations.is_empty() {
                return true;
            }
            let batch = MutationBatch::with_slot_context(mutations.into_iter().collect(), SlotContext::new(ev.slot, index));
            tx.blocking_send(batch).is_ok()
        },
    );
    if vm_errors > 0 {
        eprintln!("reference-peer: {vm_errors} events refused by the reference VM");
    }
    let _ = go.done.send(stats);
}
