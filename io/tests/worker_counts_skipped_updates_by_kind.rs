//! A worker adds what its VM skipped to the process metrics, by kind: undecodable bytes are
//! decode errors, a failing handler step is a handler error, a stale re-delivery is stale. Each
//! reaches `/metrics` and `/status`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::{EntityCacheConfig, Stack, StateTableConfig, Update};
use stackcore_io::channels::ToWorker;
use stackcore_io::metrics::Metrics;
use stackcore_io::reactor::ReactorParts;
use stackcore_io::worker::{Worker, WorkerContext};

#[test]
fn skipped_updates_are_counted_by_kind_in_metrics() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/stacks/OreStream.stack.json"
    ))
    .unwrap();
    let stack = Arc::new(Stack::from_json(&bytes).unwrap());
    let metrics = Arc::new(Metrics::new());
    let parts = ReactorParts::new(1_024).unwrap();
    let mut w = Worker::new(WorkerContext {
        stack: stack.clone(),
        state_table: StateTableConfig::default(),
        vm_limits: Default::default(),
        entity_cache: EntityCacheConfig::default(),
        reactors: vec![parts.handle.clone()],
        metrics: metrics.clone(),
        pin: None,
        resolver: None,
    });
    let mut gen = Generator::new(
        stack.idls(),
        SynthConfig {
            seed: 5,
            duplicate_ratio: 0.0,
            out_of_order_ratio: 0.0,
            ..Default::default()
        },
    );
    // A round account: decodes and applies.
    let round = loop {
        let u = gen.next_update();
        let mut d = Default::default();
        if stack.idls().decode(&u, &mut d).is_ok()
            && &*stack.idls().event_types()[d.event_type as usize].name == "ore::RoundState"
        {
            break u;
        }
    };
    assert!(w.handle(ToWorker::Update(round.clone())));
    // The same write again: stale.
    assert!(w.handle(ToWorker::Update(round.clone())));
    // Its bytes cut short: undecodable.
    let Update::Account(mut cut) = round.clone() else {
        unreachable!()
    };
    cut.data.truncate(cut.data.len() - 3);
    cut.write_version += 10;
    assert!(w.handle(ToWorker::Update(Update::Account(cut))));
    // A miner whose authority is a number: its Base58Encode step fails.
    let ctx = stackcore_engine::vm::EventContext {
        slot: 1,
        index: 1,
        signature: None,
        timestamp: 0,
        is_account: true,
    };
    let bad = serde_json::json!({"authority": 12, "__account_address": "M1"});
    assert!(w.handle_decoded("ore::MinerState", &bad, &ctx));
    w.publish_vm_stats();
    w.publish_vm_stats(); // publishing twice adds nothing twice
    assert_eq!(metrics.events_applied_total.load(Relaxed), 2);
    assert_eq!(metrics.decode_errors_total.load(Relaxed), 1);
    assert_eq!(metrics.vm_skipped_stale_total.load(Relaxed), 1);
    assert_eq!(metrics.vm_handler_errors_total.load(Relaxed), 1);
    let text = metrics.render();
    assert!(
        text.contains("stackcore_vm_skipped_stale_total 1"),
        "{text}"
    );
    assert!(text.contains("stackcore_decode_errors_total 1"), "{text}");
    std::mem::forget(parts.poll);
}
