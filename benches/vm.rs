//! Decode + VM throughput on a seeded ORE sequence: stackcore's engine and the reference
//! interpreter (`hyperstack-interpreter` 0.6.9, with its hook glue) side by side.
//!
//! `cargo bench --bench vm` prints events/s for both, twice: cold (a new VM runs the first 20,000
//! events: its tables fill and every buffer is new) and warm (a VM that has run those runs the
//! next 20,000: the steady state of a server that has been up a while). The reference is handed
//! pre-decoded JSON events (its decoding is generated code we cannot run), so its figure covers
//! its VM only while ours covers decode + VM.
//!
//! Both run under mimalloc, the allocator the `stackcore` binary runs with (`src/main.rs`): the
//! reference allocates on every event, and so does ours while its tables fill, so the allocator
//! is part of what is measured, for both sides.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stackcore_engine::idl::Decoded;
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::{Mutation, Stack, Update, VmContext};

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
    // Our updates first, then the reference's events made from them: built in one pass, each
    // update's bytes sat between two JSON trees of the reference's, and reading them cost ours
    // ~8 % (cache and TLB misses no server has: its updates arrive in buffers of their own).
    let mut ups = Vec::with_capacity(2 * EVENTS);
    while ups.len() < 2 * EVENTS {
        let u = gen.next_update();
        if idls.decode(&u, &mut d).is_ok() && differential_glue::update_context(&u).is_some() {
            ups.push(u);
        }
    }
    let evs = ups
        .iter()
        .map(|u| {
            idls.decode(u, &mut d).expect("decoded above");
            let (slot, index, sig, ts, is_account) =
                differential_glue::update_context(u).expect("checked above");
            RefEvent {
                name: idls.event_types()[d.event_type as usize].name.to_string(),
                json: idls.to_reference_json(&d),
                slot,
                index,
                sig,
                ts,
                is_account,
            }
        })
        .collect();
    (ups, evs)
}

/// Applies `ups` to `vm` as the server's worker does (mutations handed back, resolver requests
/// taken after every update; here nobody answers them); returns how many mutations they made.
#[inline(always)]
fn drive(vm: &mut VmContext, out: &mut Vec<Mutation>, stack: &Stack, ups: &[Update]) -> usize {
    let mut n = 0;
    for u in ups {
        vm.recycle_mutations(out);
        let _ = vm.apply(stack, u, out);
        vm.drain_resolver_requests();
        n += out.len();
    }
    n
}

// Not inlined, so that a profiler can single it out (`--toggle-collect=vm::run_ours`).
/// Cold: a new VM, its tables empty.
#[inline(never)]
fn run_ours(stack: &Stack, ups: &[Update]) -> usize {
    drive(&mut VmContext::new(), &mut Vec::new(), stack, ups)
}

/// Warm: `vm` has run the events before these (`--toggle-collect=vm::run_ours_warm`).
#[inline(never)]
fn run_ours_warm(
    vm: &mut VmContext,
    out: &mut Vec<Mutation>,
    stack: &Stack,
    ups: &[Update],
) -> usize {
    drive(vm, out, stack, ups)
}

/// A VM that has run `ups` (untimed set-up of a warm round).
fn warmed_ours(stack: &Stack, ups: &[Update]) -> (VmContext, Vec<Mutation>) {
    let (mut vm, mut out) = (VmContext::new(), Vec::new());
    drive(&mut vm, &mut out, stack, ups);
    (vm, out)
}

/// Applies `evs` to the reference; returns how many mutations they made.
#[inline(always)]
fn drive_ref(r: &mut differential_glue::Reference, evs: &[RefEvent]) -> usize {
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

// Not inlined, so that a profiler can single it out (`--toggle-collect=vm::run_ref`).
/// Cold, as [`run_ours`].
#[inline(never)]
fn run_ref(bytes: &[u8], evs: &[RefEvent]) -> usize {
    drive_ref(&mut differential_glue::Reference::new(bytes), evs)
}

/// Warm, as [`run_ours_warm`].
#[inline(never)]
fn run_ref_warm(r: &mut differential_glue::Reference, evs: &[RefEvent]) -> usize {
    drive_ref(r, evs)
}

/// Events per second of `run`, timed alone.
fn rate(run: impl FnOnce() -> usize) -> (f64, usize) {
    let t = Instant::now();
    let n = run();
    (EVENTS as f64 / t.elapsed().as_secs_f64(), n)
}

fn bench(c: &mut Criterion) {
    let bytes = std::fs::read(ORE).unwrap();
    let stack = Stack::from_json(&bytes).unwrap();
    let (ups, evs) = sequence(&stack);

    // The first `EVENTS` events are the cold rounds' (a new VM) and the warm rounds' set-up; the
    // next `EVENTS` are the warm rounds' (a VM that has run the first ones: tables, indexes and
    // spare buffers at their working size, as in a server that has been up a while).
    let (first, next) = (&ups[..EVENTS], &ups[EVENTS..]);
    let (first_ref, next_ref) = (&evs[..EVENTS], &evs[EVENTS..]);

    // Plain timings first, so the figures are printed whatever criterion's settings: rounds
    // alternate between the two sides, so that both see the same machine (this box's speed drifts
    // by ±20 % over minutes), and the medians and their ratio are reported.
    const ROUNDS: usize = 5;
    let mut rates = [(); 4].map(|_| Vec::new());
    let mut mutations = [0; 4];
    for _ in 0..ROUNDS {
        let runs = [
            rate(|| run_ours(&stack, first)),
            rate(|| run_ref(&bytes, first_ref)),
            {
                let (mut vm, mut out) = warmed_ours(&stack, first);
                rate(|| run_ours_warm(&mut vm, &mut out, &stack, next))
            },
            {
                let mut r = differential_glue::Reference::new(&bytes);
                drive_ref(&mut r, first_ref);
                rate(|| run_ref_warm(&mut r, next_ref))
            },
        ];
        for (i, (events_per_s, n)) in runs.into_iter().enumerate() {
            rates[i].push(events_per_s);
            mutations[i] = n;
        }
    }
    let [o, r, ow, rw] = rates.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    });
    let [m_o, m_r, m_ow, m_rw] = mutations;
    println!("cold (a new VM), median of {ROUNDS}:");
    println!("  stackcore decode+vm: {EVENTS} events, {m_o} mutations: {o:.0} events/s");
    println!("  reference vm (+glue): {EVENTS} events, {m_r} mutations: {r:.0} events/s");
    println!("  ratio (alternating rounds): {:.2}x", o / r);
    println!("warm (after the {EVENTS} events before), median of {ROUNDS}:");
    println!("  stackcore decode+vm: {EVENTS} events, {m_ow} mutations: {ow:.0} events/s");
    println!("  reference vm (+glue): {EVENTS} events, {m_rw} mutations: {rw:.0} events/s");
    println!("  ratio (alternating rounds): {:.2}x", ow / rw);

    let mut g = c.benchmark_group("ore");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    g.bench_function("stackcore_decode_vm", |b| {
        b.iter(|| run_ours(&stack, first))
    });
    // Each iteration is set up with a VM warmed on the first events (not timed). The reference's
    // warm figure is in the rounds above only: its set-up takes ~1 s an iteration.
    g.bench_function("stackcore_decode_vm_warm", |b| {
        b.iter_batched(
            || warmed_ours(&stack, first),
            // The VM is handed back, so that criterion drops it untimed (as the rounds do).
            |(mut vm, mut out)| {
                let n = run_ours_warm(&mut vm, &mut out, &stack, next);
                (vm, out, n)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("reference_vm", |b| b.iter(|| run_ref(&bytes, first_ref)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
