//! `replay` of the demo launchpad session prints the mutations the reference interpreter
//! (hyperstack-interpreter 0.6.9) produces for the same decoded events.
//!
//! The demo stack has no resolver or instruction hooks, so the bare reference VM is the whole
//! reference here (no glue needed, `../shared/protocol.md` §8.1). One known difference is
//! normalised: the reference stamps appended event records (`events.buys[*]`, `events.sells[*]`)
//! with its wall clock, so their `timestamp` is left out of the comparison on both sides.

mod replay_support;

use hyperstack_interpreter::ast::{SerializableStackSpec, TypedStreamSpec};
use hyperstack_interpreter::compiler::MultiEntityBytecode;
use hyperstack_interpreter::vm::VmContext;
use hyperstack_interpreter::UpdateContext;
use replay_support::*;
use serde_json::{json, Value};
use stackcore::replay::ReplayArgs;

/// The reference's mutations for `events`, as replay lines (entity, key, patch, append, seq).
fn reference_lines(events: &[Value]) -> Vec<Value> {
    let spec: SerializableStackSpec =
        serde_json::from_str(stackcore::stacks::LAUNCHPAD).expect("reference reads the demo stack");
    let mut builder = MultiEntityBytecode::new();
    for (i, entity) in spec.entities.into_iter().enumerate() {
        let eval = VmContext::create_evaluator_from_specs(entity.computed_field_specs.clone());
        let name = entity.state_name.clone();
        builder = builder.add_entity_with_evaluator(
            name,
            TypedStreamSpec::<Value>::from_serializable(entity),
            i as u32,
            Some(eval),
        );
    }
    let bytecode = builder.build();
    let mut vm = VmContext::new();
    let mut lines = Vec::new();
    for ev in events {
        let slot = ev["slot"].as_u64().unwrap();
        let sig = ev["signature"].as_str().unwrap().to_string();
        let (mut ctx, index) = match ev.get("write_version") {
            Some(wv) => {
                let wv = wv.as_u64().unwrap();
                (UpdateContext::new_account(slot, sig, wv), wv)
            }
            None => {
                let t = ev["txn_index"].as_u64().unwrap();
                (UpdateContext::new_instruction(slot, sig, t), t)
            }
        };
        ctx.timestamp = Some(ev["timestamp"].as_i64().unwrap());
        let ty = ev["event_type"].as_str().unwrap();
        let ms = vm
            .process_event(&bytecode, ev["data"].clone(), ty, Some(&ctx), None)
            .expect("reference runs the event");
        for m in ms {
            lines.push(json!({
                "entity": m.export, "key": m.key, "patch": m.patch, "append": m.append,
                "seq": format!("{slot}:{index:012}"),
            }));
        }
    }
    lines
}

/// Drops the wall-clock `timestamp` of appended event records.
fn without_record_timestamps(mut line: Value) -> Value {
    for list in ["buys", "sells"] {
        if let Some(Value::Array(records)) = line.pointer_mut(&format!("/patch/events/{list}")) {
            for r in records {
                if let Some(o) = r.as_object_mut() {
                    o.remove("timestamp");
                }
            }
        }
    }
    line
}

#[test]
fn replay_of_the_demo_session_equals_the_reference_interpreter() {
    let events = demo_events();
    let path = write_lines("vs-reference.jsonl", &demo_lines());
    let (code, out, err) = run(ReplayArgs {
        strict: true,
        ..ReplayArgs::new(path)
    });
    assert_eq!(code, 0, "{err}");
    let actual: Vec<Value> = parse_lines(&out)
        .into_iter()
        .map(without_record_timestamps)
        .collect();
    let expected: Vec<Value> = reference_lines(&events)
        .into_iter()
        .map(via_text)
        .map(without_record_timestamps)
        .collect();
    assert!(expected.len() >= 12, "{expected:#?}");
    assert_eq!(actual.len(), expected.len(), "{out}");
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "mutation {i}");
    }
}
