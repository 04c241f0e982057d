//! Decoding fixed layouts into a reused record allocates nothing in steady state (counted with a
//! counting global allocator; this file is its own test binary, and holds one test so that no
//! other thread allocates while it counts).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value as J;
use stackcore_engine::idl::{Decoded, IdlSet};
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::Update;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decoding_ore_updates_into_per_type_records_does_not_allocate() {
    let stack: J = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/stacks/OreStream.stack.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let idls = IdlSet::from_json(&stack["idls"]).unwrap();
    let mut g = Generator::new(&idls, SynthConfig::default());
    let updates: Vec<Update> = (0..2_000).map(|_| g.next_update()).collect();
    // One record per event type, as a VM worker could keep them.
    let mut records: Vec<Decoded> = vec![Decoded::default(); idls.event_types().len()];
    let mut decode_all = |kind: fn(&Update) -> bool| {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for u in updates.iter().filter(|u| kind(u)) {
            let et = idls.event_type_of(u).unwrap() as usize;
            idls.decode(u, &mut records[et]).unwrap();
        }
        ALLOCATIONS.load(Ordering::Relaxed) - before
    };
    let accounts = |u: &Update| matches!(u, Update::Account(_));
    let instructions = |u: &Update| matches!(u, Update::Instruction(_));
    decode_all(accounts);
    decode_all(instructions);
    assert_eq!(
        decode_all(accounts),
        0,
        "allocations while decoding accounts"
    );
    assert_eq!(
        decode_all(instructions),
        0,
        "allocations while decoding instructions"
    );
}
