//! `replay` over generated ORE events (the real stack, read from `../shared/stacks/`) prints
//! exactly what the engine's own `VmContext` produces for the same events — whether the events
//! come from the synthetic chain or as decoded-event JSON lines.

mod replay_support;

use replay_support::*;
use serde_json::{json, Value};
use stackcore::replay::ReplayArgs;
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::{Mutation, Stack, Update, VmContext};

const SEED: u64 = 7;
const COUNT: usize = 3_000;

fn ore() -> Stack {
    Stack::from_json(&std::fs::read(ORE_STACK).expect("read the ORE stack")).expect("ORE loads")
}

fn updates() -> Vec<Update> {
    let stack = ore();
    let mut gen = Generator::new(
        stack.idls(),
        SynthConfig {
            seed: SEED,
            ..Default::default()
        },
    );
    (0..COUNT).map(|_| gen.next_update()).collect()
}

/// The mutation line `replay` documents, built here field by field.
fn expected_line(m: &Mutation) -> Value {
    json!({
        "entity": &*m.entity,
        "key": m.key,
        "patch": m.patch,
        "append": m.append,
        "seq": format!("{}:{:012}", m.seq.slot, m.seq.index),
    })
}

/// What the engine alone produces for `updates`.
fn engine_lines(updates: &[Update]) -> Vec<Value> {
    let stack = ore();
    let mut vm = VmContext::new();
    let mut out = Vec::new();
    for u in updates {
        let _ = vm.apply(&stack, u, &mut out);
    }
    out.iter().map(|m| via_text(expected_line(m))).collect()
}

#[test]
fn replay_of_synthetic_ore_events_equals_the_engine_vm() {
    let args = ReplayArgs {
        stack: Some(ORE_STACK.into()),
        ..ReplayArgs::new(format!("synthetic:{SEED}:{COUNT}"))
    };
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{err}");
    let actual = parse_lines(&out);
    let expected = engine_lines(&updates());
    assert!(
        expected.len() > 200,
        "a meaningful run: {} mutations",
        expected.len()
    );
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "mutation {i}");
    }
}

#[test]
fn replay_of_ore_json_lines_equals_the_engine_vm_on_the_raw_updates() {
    let stack = ore();
    let idls = stack.idls();
    let handled: Vec<&str> = stack.event_types().iter().map(String::as_str).collect();
    let updates = updates();
    let mut lines = Vec::new();
    let mut decoded = Default::default();
    for u in &updates {
        let (slot, index_field, index, signature, timestamp) = match u {
            Update::Account(a) => (
                a.slot,
                "write_version",
                a.write_version,
                a.signature.map(|s| bs58::encode(s).into_string()),
                a.timestamp,
            ),
            Update::Instruction(i) => (
                i.slot,
                "txn_index",
                i.txn_index,
                Some(bs58::encode(i.signature).into_string()),
                i.timestamp,
            ),
            Update::Slot { .. } => continue,
        };
        idls.decode(u, &mut decoded)
            .expect("generated updates decode");
        let event_type = idls.event_types()[decoded.event_type as usize]
            .name
            .to_string();
        if !handled.contains(&event_type.as_str()) {
            continue;
        }
        let mut line = json!({
            "event_type": event_type,
            "slot": slot,
            "timestamp": timestamp,
            "data": idls.to_reference_json(&decoded),
        });
        line[index_field] = json!(index);
        if let Some(s) = signature {
            line["signature"] = json!(s);
        }
        lines.push(line.to_string());
    }
    let path = write_lines("ore.jsonl", &lines);
    let args = ReplayArgs {
        stack: Some(ORE_STACK.into()),
        strict: true,
        ..ReplayArgs::new(path)
    };
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{err}");
    let actual = parse_lines(&out);
    let expected = engine_lines(&updates);
    assert!(expected.len() > 200);
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "mutation {i}");
    }
}

#[test]
fn replay_of_synthetic_events_is_byte_identical_across_runs() {
    let args = || ReplayArgs {
        stack: Some(ORE_STACK.into()),
        ..ReplayArgs::new(format!("synthetic:{SEED}:1000"))
    };
    let (c1, a, _) = run(args());
    let (c2, b, _) = run(args());
    assert_eq!((c1, c2), (0, 0));
    assert!(!a.is_empty());
    assert!(a == b, "two runs differ");
}
