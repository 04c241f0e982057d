//! Decoding ORE updates with the IDLs of the stack file: account writes and instructions from the
//! synthetic chain, each decoded into a record kept per event type (as a VM worker does).
//!
//! `cargo bench --bench decode`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stackcore_engine::idl::{Decoded, IdlSet};
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::Update;

fn ore() -> IdlSet {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/stacks/OreStream.stack.json"
    );
    let stack: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("ORE stack file")).expect("JSON");
    IdlSet::from_json(&stack["idls"]).expect("ORE IDLs")
}

fn bench(c: &mut Criterion) {
    let idls = ore();
    let mut g = Generator::new(&idls, SynthConfig::default());
    let all: Vec<Update> = (0..10_000).map(|_| g.next_update()).collect();
    let accounts: Vec<Update> = all
        .iter()
        .filter(|u| matches!(u, Update::Account(_)))
        .cloned()
        .collect();
    let instructions: Vec<Update> = all
        .iter()
        .filter(|u| matches!(u, Update::Instruction(_)))
        .cloned()
        .collect();
    let mut records = vec![Decoded::default(); idls.event_types().len()];

    let mut group = c.benchmark_group("decode");
    for (name, set) in [
        ("ore_accounts", &accounts),
        ("ore_instructions", &instructions),
        ("ore_mixed", &all),
    ] {
        group.throughput(Throughput::Elements(set.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                for u in set.iter() {
                    let et = idls.event_type_of(u).expect("generated updates decode") as usize;
                    idls.decode(u, &mut records[et])
                        .expect("generated updates decode");
                }
            })
        });
    }
    group.finish();

    c.bench_function("load_ore_idls", |b| b.iter(ore));
}

criterion_group!(benches, bench);
criterion_main!(benches);
