//! Decode + VM throughput on a seeded ORE sequence: stackcore's engine and the reference
//! interpreter (`hyperstack-interpreter` 0.6.9, with its hook glue) side by side.
//!
//! `cargo bench --bench vm` prints events/s for both. The reference is handed pre-decoded JSON
//! events (its decoding is generated code we cannot run), so its figure covers its VM only while
//! ours covers decode + VM.
//!
//! Both run under mimalloc, the allocator the `stackcore` binary runs with (`src/main.rs`); the
//! VM allocates on every event, so the allocator is part of what is measured, for both sides.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stackcore_engine::idl::Decoded;
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::{Stack, Update, VmContext};

#[path = "../engine/tests/differential_glue/mod.rs"]
mod differential_glue;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ORE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/stacks/OreStream.stack.json"
);
const EVENTS: usize = 20_000;

struct RefEvent {
    name: String,
    json: serde_json::Value,
    slot: u64,
    index: u64,
    sig: String,
    ts: i64,
    is_account: bool,
}

fn sequence(stack: &Stack) -> (Vec<Update>, Vec<RefEvent>) {
    let idls = stack.idls();
    let mut gen = Generator::new(
        idls,
        SynthConfig {
            seed: 11,
            addresses_per_account_type: 6,
            ..Default::default()
        },
    );
    let mut d = Decoded::default();
    let (mut ups, mut evs) = (Vec::with_capacity(EVENTS), Vec::with_capacity(EVENTS));
    while ups.len() < EVENTS {
        let u = gen.next_update();
        if idls.decode(&u, &mut d).is_err() {
            continue;
        }
        let Some((slot, index, sig, ts, is_account)) = differential_glue::update_context(&u) else {
            continue;
        };
        let name = idls.event_types()[d.event_type as usize].name.to_string();
        evs.push(RefEvent {
            name,
            json: idls.to_reference_json(&d),
            slot,
            index,
            sig,
            ts,
            is_account,
        });
        ups.push(u);
    }
    (ups, evs)
}

// Not inlined, so that a profiler can single it out (`--toggle-collect=vm::run_ours`).
#[inline(never)]
fn run_ours(stack: &Stack, ups: &[Update]) -> usize {
    let mut vm = VmContext::new();
    let mut out = Vec::new();
    let mut n = 0;
    for u in ups {
        vm.recycle_mutations(&mut out);
        let _ = vm.apply(stack, u, &mut out);
        n += out.len();
    }
    n
}

// Not inlined, so that a profiler can single it out (`--toggle-collect=vm::run_ref`).
#[inline(never)]
fn run_ref(bytes: &[u8], evs: &[RefEvent]) -> usize {
    let mut r = differential_glue::Reference::new(bytes);
    let mut n = 0;
    for e in evs {
        n += r
            .apply(
                &e.name,
                e.json.clone(),
                e.slot,
                e.index,
                &e.sig,
                e.ts,
                e.is_account,
            )
            .0
            .len();
    }
    n
}

fn bench(c: &mut Criterion) {
    let bytes = std::fs::read(ORE).unwrap();
    let stack = Stack::from_json(&bytes).unwrap();
    let (ups, evs) = sequence(&stack);

    // Plain timings first, so the figures are printed whatever criterion's settings: rounds
    // alternate between the two sides, so that both see the same machine (this box's speed drifts
    // by ±20 % over minutes), and the medians and their ratio are reported.
    const ROUNDS: usize = 5;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut m_ours, mut m_ref) = (0, 0);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        m_ours = run_ours(&stack, &ups);
        ours.push(EVENTS as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        m_ref = run_ref(&bytes, &evs);
        theirs.push(EVENTS as f64 / t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (o, r) = (median(&mut ours), median(&mut theirs));
    println!("stackcore decode+vm: {EVENTS} events, {m_ours} mutations, median of {ROUNDS}: {o:.0} events/s");
    println!("reference vm (+glue): {EVENTS} events, {m_ref} mutations, median of {ROUNDS}: {r:.0} events/s");
    println!("ratio (alternating rounds): {:.2}x", o / r);

    let mut g = c.benchmark_group("ore");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    g.bench_function("stackcore_decode_vm", |b| b.iter(|| run_ours(&stack, &ups)));
    g.bench_function("reference_vm", |b| b.iter(|| run_ref(&bytes, &evs)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
