//! Allocations per event in steady state, counted with a counting global allocator.
//!
//! The target is zero. Rows are slot vectors, event fields are read by index, a write that would
//! not change its slot is skipped, and update records, captures, mutations (handed back with
//! `recycle_mutations`, as the worker does), the text of replaced values and working buffers are
//! reused. What still allocates: arrays and objects a write produces (slot values and expression
//! results are still `serde_json` values), entries the bounded tables are still filling (new
//! rows, index entries, deferred `when` writes that never find their instruction in this
//! synthetic stream), and text when no replaced value has given its buffer back yet. This test
//! measures that honestly and pins a ceiling just above today's figure, so that any regression
//! fails and any improvement shows (lower the ceiling when you get one).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::json;
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::vm::{EventContext, ResolverKind};
use stackcore_engine::{Stack, VmContext};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per event over the measured window, today (see the module docs).
const CEILING_PER_EVENT: f64 = MEASURED_PER_EVENT * 1.05;
const MEASURED_PER_EVENT: f64 = 1.8;

#[test]
fn steady_state_allocations_per_event_stay_under_the_pinned_ceiling() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/stacks/OreStream.stack.json"
    ))
    .unwrap();
    let stack = Stack::from_json(&bytes).unwrap();
    let mut gen = Generator::new(
        stack.idls(),
        SynthConfig {
            seed: 3,
            addresses_per_account_type: 6,
            ..Default::default()
        },
    );
    let updates: Vec<_> = (0..6_000).map(|_| gen.next_update()).collect();
    let mut vm = VmContext::new();
    let mut out = Vec::with_capacity(64);
    let mut answered = 0;
    // As the server's worker runs it: after every update the resolver requests are taken, and
    // here a resolver that works answers each one at once (a `SetOnce` target, once filled, asks
    // no more). Their answers' mutations are counted with the update's.
    let mut step = |vm: &mut VmContext, u| {
        vm.recycle_mutations(&mut out);
        let _ = vm.apply(&stack, u, &mut out);
        for r in vm.take_resolver_requests() {
            let ctx = EventContext {
                slot: u.slot(),
                index: 0,
                signature: None,
                timestamp: 1_700_000_000,
                is_account: false,
            };
            let answer = match r.kind {
                ResolverKind::Token => json!({"name": "Ore", "symbol": "ORE", "decimals": 11}),
                ResolverKind::Url { .. } => json!({"seed": "7f3a"}),
            };
            let _ = vm.apply_resolver_result(&stack, &r, r.set_once, &answer, &ctx, &mut out);
            answered += 1;
        }
    };
    // Warm-up: tables, indexes and buffers reach their working size.
    for u in &updates[..3_000] {
        step(&mut vm, u);
    }
    let window = &updates[3_000..];
    COUNTING.store(true, Ordering::SeqCst);
    for u in window {
        step(&mut vm, u);
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert!(answered > 0, "the mix asks the resolvers something");
    let per_event = ALLOCS.load(Ordering::SeqCst) as f64 / window.len() as f64;
    eprintln!("allocations per event (ORE mix, steady state): {per_event:.1}");
    assert!(
        per_event <= CEILING_PER_EVENT,
        "{per_event:.1} allocations per event, ceiling {CEILING_PER_EVENT:.1}"
    );
}
