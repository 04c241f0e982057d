//! VM behaviour on small hand-written stacks, one behaviour per test, driven through
//! `VmContext::apply_json` with given slots and times.

use serde_json::{json, Value as Json};
use stackcore_engine::vm::{ApplyError, EventContext, ResolverRequest};
use stackcore_engine::{Mutation, Stack, StateTableConfig, VmContext};

fn fp(path: &str) -> Json {
    json!({"segments": path.split('.').collect::<Vec<_>>(), "offsets": null})
}

fn map(target: &str, src: &str, population: &str) -> Json {
    json!({"target_path": target, "source": {"FromSource": {"path": fp(src), "default": null, "transform": null}},
           "transform": null, "population": population})
}

fn handler(type_name: &str, is_account: bool, key: Json, mappings: Vec<Json>) -> Json {
    json!({"source": {"Source": {"program_id": null, "discriminator": null, "type_name": type_name, "is_account": is_account}},
           "key_resolution": key, "mappings": mappings, "conditions": [], "emit": true})
}

fn embedded(path: &str) -> Json {
    json!({"Embedded": {"primary_field": fp(path)}})
}

fn stack_with(entity: Json) -> Stack {
    let mut e = json!({"state_name": "Thing", "identity": {"primary_keys": ["id"], "lookup_indexes": []},
        "handlers": [], "sections": [], "field_mappings": {}, "resolver_hooks": [], "instruction_hooks": [],
        "resolver_specs": [], "computed_fields": [], "computed_field_specs": [], "views": []});
    for (k, v) in entity.as_object().unwrap() {
        e[k] = v.clone();
    }
    let s = json!({"ast_version": "0.0.1", "stack_name": "T", "program_ids": ["11111111111111111111111111111111"],
        "idls": [], "entities": [e], "pdas": {}, "instructions": []});
    Stack::from_json(&serde_json::to_vec(&s).unwrap()).unwrap()
}

fn acct(slot: u64, wv: u64) -> EventContext {
    EventContext {
        slot,
        index: wv,
        signature: Some(format!("sig{slot}")),
        timestamp: 1_000 + slot as i64,
        is_account: true,
    }
}

fn ix(slot: u64, txn: u64, sig: &str) -> EventContext {
    EventContext {
        slot,
        index: txn,
        signature: Some(sig.into()),
        timestamp: 1_000 + slot as i64,
        is_account: false,
    }
}

fn run(vm: &mut VmContext, s: &Stack, t: &str, ev: Json, c: EventContext) -> Vec<Mutation> {
    let mut out = Vec::new();
    vm.apply_json(s, t, &ev, &c, &mut out).unwrap();
    out
}

#[test]
fn population_strategies_aggregate_like_the_reference() {
    let s = stack_with(
        json!({"handlers": [handler("p::AState", true, embedded("id"), vec![
            map("id", "id", "SetOnce"), map("first", "v", "SetOnce"), map("last", "v", "LastWrite"),
            map("hi", "v", "Max"), map("lo", "v", "Min"), map("total", "v", "Sum"), map("n", "v", "Count"),
            map("distinct", "v", "UniqueCount"), map("hist", "v", "Append"),
        ])]}),
    );
    let mut vm = VmContext::new();
    for (i, v) in [5, 3, 5, 9].into_iter().enumerate() {
        run(
            &mut vm,
            &s,
            "p::AState",
            json!({"id": 1, "v": v, "__account_address": "A"}),
            acct(10 + i as u64, 0),
        );
    }
    let st = vm.entity_state(&s, "Thing", &json!(1)).unwrap();
    assert_eq!(
        (
            &st["first"],
            &st["last"],
            &st["hi"],
            &st["lo"],
            &st["total"],
            &st["n"],
            &st["distinct"]
        ),
        (
            &json!(5),
            &json!(9),
            &json!(9),
            &json!(3),
            &json!(22),
            &json!(4),
            &json!(3)
        )
    );
    assert_eq!(st["hist"], json!([5, 3, 5, 9]));
}

#[test]
fn patches_hold_changed_and_last_write_fields_and_appends_only_new_elements() {
    let s = stack_with(
        json!({"handlers": [handler("p::AState", true, embedded("id"), vec![
            map("id", "id", "SetOnce"), map("a.last", "v", "LastWrite"), map("hist", "v", "Append"), map("hi", "v", "Max"),
        ])]}),
    );
    let mut vm = VmContext::new();
    let first = run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 7, "__account_address": "A"}),
        acct(1, 0),
    );
    assert_eq!(
        first[0].patch,
        json!({"id": 1, "a": {"last": 7}, "hist": [7], "hi": 7})
    );
    assert_eq!(first[0].append, vec!["hist".to_string()]);
    let second = run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 7, "__account_address": "A"}),
        acct(2, 0),
    );
    // SetOnce and Max did not change; LastWrite is sent even unchanged; the append sends one element.
    assert_eq!(second[0].patch, json!({"a": {"last": 7}, "hist": [7]}));
    assert_eq!(second[0].key, json!(1));
    assert_eq!(second[0].seq, stackcore_engine::Seq::new(2, 0));
}

/// Patches share their values with the row; a later update that changes those values in place
/// (a running sum, a write inside an object field) must copy them, not change a patch already out.
#[test]
fn a_patch_keeps_its_values_while_later_updates_change_the_row() {
    let s = stack_with(json!({"handlers": [
        handler("p::AState", true, embedded("id"), vec![
            map("id", "id", "SetOnce"), map("o", "obj", "LastWrite"), map("total", "v", "Sum"),
        ]),
        handler("p::BState", true, embedded("id"), vec![map("o.x", "v", "LastWrite"), map("total", "v", "Sum")]),
    ]}));
    let mut vm = VmContext::new();
    let a = |v: i64| json!({"id": 1, "v": v, "obj": {"x": 1, "y": 1}, "__account_address": "A"});
    let b = |v: i64| json!({"id": 1, "v": v, "__account_address": "B"});
    let first = run(&mut vm, &s, "p::AState", a(5), acct(1, 0));
    let second = run(&mut vm, &s, "p::BState", b(7), acct(2, 0));
    let third = run(&mut vm, &s, "p::BState", b(9), acct(3, 0));
    assert_eq!(
        first[0].patch,
        json!({"id": 1, "o": {"x": 1, "y": 1}, "total": 5})
    );
    assert_eq!(second[0].patch, json!({"o": {"x": 7}, "total": 12}));
    assert_eq!(third[0].patch, json!({"o": {"x": 9}, "total": 21}));
    let st = vm.entity_state(&s, "Thing", &json!(1)).unwrap();
    assert_eq!(
        (&st["o"], &st["total"]),
        (&json!({"x": 9, "y": 1}), &json!(21))
    );
}

#[test]
fn arrays_keep_the_newest_max_array_length_elements() {
    let s = stack_with(
        json!({"handlers": [handler("p::AState", true, embedded("id"), vec![map("hist", "v", "Append")])]}),
    );
    let mut vm = VmContext::new_with_config(StateTableConfig {
        max_entries: 10,
        max_array_length: 3,
    });
    for v in 0..6 {
        run(
            &mut vm,
            &s,
            "p::AState",
            json!({"id": 1, "v": v, "__account_address": "A"}),
            acct(1 + v, 0),
        );
    }
    assert_eq!(
        vm.entity_state(&s, "Thing", &json!(1)).unwrap()["hist"],
        json!([3, 4, 5])
    );
}

#[test]
fn state_rows_are_bounded_by_max_entries() {
    let s = stack_with(
        json!({"handlers": [handler("p::AState", true, embedded("id"), vec![map("v", "v", "LastWrite")])]}),
    );
    let mut vm = VmContext::new_with_config(StateTableConfig {
        max_entries: 4,
        max_array_length: 3,
    });
    for id in 0..10u64 {
        run(
            &mut vm,
            &s,
            "p::AState",
            json!({"id": id, "v": 1, "__account_address": format!("A{id}")}),
            acct(1, id),
        );
    }
    assert_eq!(vm.entity_count(0), 4);
    assert_eq!(vm.stats().evicted_rows, 6);
    assert!(
        vm.entity_state(&s, "Thing", &json!(9)).is_some(),
        "the newest stay"
    );
    assert!(
        vm.entity_state(&s, "Thing", &json!(0)).is_none(),
        "the least recent go"
    );
}

#[test]
fn emit_false_fields_are_stored_but_never_sent() {
    let mut hidden = map("raw", "v", "LastWrite");
    hidden["emit"] = json!(false);
    let s = stack_with(
        json!({"handlers": [handler("p::AState", true, embedded("id"), vec![map("id", "id", "SetOnce"), hidden])]}),
    );
    let mut vm = VmContext::new();
    let m = run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 4, "__account_address": "A"}),
        acct(1, 0),
    );
    assert_eq!(m[0].patch, json!({"id": 1}));
    assert_eq!(
        vm.entity_state(&s, "Thing", &json!(1)).unwrap()["raw"],
        json!(4)
    );
    let again = run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 5, "__account_address": "A"}),
        acct(2, 0),
    );
    assert!(
        again.is_empty(),
        "a change of hidden fields alone emits nothing"
    );
}

#[test]
fn stale_account_updates_are_dropped_per_address() {
    let s = stack_with(
        json!({"handlers": [handler("p::AState", true, embedded("id"), vec![map("v", "v", "LastWrite")])]}),
    );
    let mut vm = VmContext::new();
    assert_eq!(
        run(
            &mut vm,
            &s,
            "p::AState",
            json!({"id": 1, "v": 2, "__account_address": "A"}),
            acct(10, 5)
        )
        .len(),
        1
    );
    assert!(run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 1, "__account_address": "A"}),
        acct(10, 4)
    )
    .is_empty());
    assert!(run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 1, "__account_address": "A"}),
        acct(9, 99)
    )
    .is_empty());
    assert!(run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 1, "__account_address": "A"}),
        acct(10, 5)
    )
    .is_empty());
    assert_eq!(vm.stats().skipped_stale, 3);
    // Another account writing the same entity has its own order.
    assert_eq!(
        run(
            &mut vm,
            &s,
            "p::AState",
            json!({"id": 1, "v": 3, "__account_address": "B"}),
            acct(9, 0)
        )
        .len(),
        1
    );
    assert_eq!(
        vm.entity_state(&s, "Thing", &json!(1)).unwrap()["v"],
        json!(3)
    );
}

#[test]
fn duplicate_instructions_are_dropped_even_after_other_instructions() {
    let s = stack_with(
        json!({"handlers": [handler("p::DoIxState", false, embedded("accounts.thing"), vec![map("n", "data", "Count")])]}),
    );
    let mut vm = VmContext::new();
    let ev = json!({"data": {}, "accounts": {"thing": "T"}});
    assert_eq!(
        run(&mut vm, &s, "p::DoIxState", ev.clone(), ix(5, 1, "s1")).len(),
        1
    );
    assert_eq!(
        run(&mut vm, &s, "p::DoIxState", ev.clone(), ix(5, 2, "s2")).len(),
        1
    );
    assert!(
        run(&mut vm, &s, "p::DoIxState", ev.clone(), ix(5, 1, "s1")).is_empty(),
        "re-delivery of the first"
    );
    assert_eq!(
        vm.entity_state(&s, "Thing", &json!("T")).unwrap()["n"],
        json!(2)
    );
    assert_eq!(vm.stats().skipped_duplicate, 1);
}

#[test]
fn conditions_gate_a_mapping() {
    let mut m = map("nz", "v", "LastWrite");
    m["condition"] = json!({"expression": "v != 0", "parsed": {"Comparison": {"field": fp("v"), "op": "NotEqual", "value": 0}}});
    let s = stack_with(
        json!({"handlers": [handler("p::AState", true, embedded("id"), vec![map("id", "id", "SetOnce"), m])]}),
    );
    let mut vm = VmContext::new();
    run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 6, "__account_address": "A"}),
        acct(1, 0),
    );
    run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 0, "__account_address": "A"}),
        acct(2, 0),
    );
    assert_eq!(
        vm.entity_state(&s, "Thing", &json!(1)).unwrap()["nz"],
        json!(6)
    );
}

fn when_stack() -> Stack {
    let mut m = map("secret", "v", "LastWrite");
    m["when"] = json!("p::RevealIxState");
    stack_with(
        json!({"handlers": [handler("p::AState", true, embedded("id"), vec![map("id", "id", "SetOnce"), m])]}),
    )
}

#[test]
fn when_defers_a_write_until_the_instruction_arrives_in_the_same_transaction() {
    let s = when_stack();
    let mut vm = VmContext::new();
    let c = EventContext {
        signature: Some("tx1".into()),
        ..acct(10, 0)
    };
    let m = run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 42, "__account_address": "A"}),
        c,
    );
    assert_eq!(m[0].patch, json!({"id": 1}), "deferred, not written");
    // Another transaction's reveal does not release it.
    assert!(run(
        &mut vm,
        &s,
        "p::RevealIxState",
        json!({"data": {}, "accounts": {}}),
        ix(10, 0, "tx2")
    )
    .is_empty());
    let m = run(
        &mut vm,
        &s,
        "p::RevealIxState",
        json!({"data": {}, "accounts": {}}),
        ix(10, 1, "tx1"),
    );
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].key.clone(), m[0].patch.to_json()),
        (json!(1), json!({"secret": 42}))
    );
    // Once the instruction was seen, a later write in that transaction applies at once.
    let c = EventContext {
        signature: Some("tx1".into()),
        ..acct(11, 0)
    };
    let m = run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 43, "__account_address": "A"}),
        c,
    );
    assert_eq!(m[0].patch, json!({"secret": 43}));
}

#[test]
fn deferred_when_writes_expire_after_when_ttl_slots() {
    let s = when_stack();
    let mut vm = VmContext::new();
    let c = EventContext {
        signature: Some("tx1".into()),
        ..acct(10, 0)
    };
    run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 42, "__account_address": "A"}),
        c,
    );
    let late = 10 + stackcore_engine::vm::VmLimits::default().when_ttl_slots + 1;
    assert!(run(
        &mut vm,
        &s,
        "p::RevealIxState",
        json!({"data": {}, "accounts": {}}),
        ix(late, 0, "tx1")
    )
    .is_empty());
    assert_eq!(vm.stats().expired_when, 1);
    assert!(vm
        .entity_state(&s, "Thing", &json!(1))
        .unwrap()
        .get("secret")
        .is_none());
}

#[test]
fn stop_flag_set_by_an_instruction_hook_freezes_the_field() {
    let mut m = map("price", "v", "LastWrite");
    m["stop"] = json!("p::FreezeIxState");
    let s = stack_with(json!({
        "handlers": [handler("p::AState", true, embedded("key"), vec![m])],
        "instruction_hooks": [{"instruction_type": "p::FreezeIxState", "lookup_by": fp("accounts.thing"), "actions": [
            {"SetField": {"target_field": "__stop:price", "source": {"Constant": true}, "condition": null}}]}]
    }));
    let mut vm = VmContext::new();
    run(
        &mut vm,
        &s,
        "p::AState",
        json!({"key": "T", "v": 1, "__account_address": "A"}),
        acct(1, 0),
    );
    run(
        &mut vm,
        &s,
        "p::FreezeIxState",
        json!({"data": {}, "accounts": {"thing": "T"}}),
        ix(2, 0, "f"),
    );
    let m = run(
        &mut vm,
        &s,
        "p::AState",
        json!({"key": "T", "v": 2, "__account_address": "A"}),
        acct(3, 0),
    );
    assert!(m.is_empty());
    let st = vm.entity_state(&s, "Thing", &json!("T")).unwrap();
    assert_eq!(st["price"], json!(1));
}

#[test]
fn lookup_resolution_queues_instructions_until_the_index_learns_the_address() {
    let s = stack_with(json!({
        "identity": {"primary_keys": ["id"], "lookup_indexes": [{"field_name": "addr", "temporal_field": null}]},
        "handlers": [
            handler("p::AState", true, embedded("id"), vec![map("id", "id", "SetOnce"), map("addr", "__account_address", "SetOnce")]),
            handler("p::DoIxState", false, json!({"Lookup": {"primary_field": fp("accounts.addr")}}), vec![map("n", "data", "Count")]),
        ]
    }));
    let mut vm = VmContext::new();
    let ev = json!({"data": {}, "accounts": {"addr": "PDA1"}});
    assert!(run(&mut vm, &s, "p::DoIxState", ev.clone(), ix(1, 0, "a")).is_empty());
    assert!(run(&mut vm, &s, "p::DoIxState", ev.clone(), ix(1, 1, "b")).is_empty());
    assert_eq!(vm.stats().queued_pending, 2);
    let m = run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 7, "__account_address": "PDA1"}),
        acct(2, 0),
    );
    let counts: Vec<_> = m
        .iter()
        .filter_map(|m| m.patch.to_json().get("n").cloned())
        .collect();
    assert_eq!(
        counts,
        vec![json!(1), json!(2)],
        "both queued instructions replay, each with its own context"
    );
    assert_eq!(
        run(&mut vm, &s, "p::DoIxState", ev, ix(3, 0, "c"))[0].patch,
        json!({"n": 3})
    );
}

#[test]
fn computed_fields_run_in_dependency_order() {
    let add = |path: &str, n: i64| json!({"Binary": {"op": "Add", "left": {"UnwrapOr": {"expr": {"FieldRef": {"path": path}}, "default": 0}}, "right": {"Literal": {"value": n}}}});
    let s = stack_with(json!({
        "handlers": [handler("p::AState", true, embedded("id"), vec![map("id", "id", "SetOnce"), map("v", "v", "LastWrite")])],
        "computed_fields": ["c.b", "c.a"],
        "computed_field_specs": [
            {"target_path": "c.b", "expression": add("c.a", 1), "result_type": "i64"},
            {"target_path": "c.a", "expression": add("v", 10), "result_type": "i64"}]
    }));
    let mut vm = VmContext::new();
    let m = run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 5, "__account_address": "A"}),
        acct(1, 0),
    );
    assert_eq!(m[0].patch.to_json()["c"], json!({"a": 15, "b": 16}));
}

/// A field that reads the slot-hash feed is evaluated again when slot hashes arrive, also on an
/// update that writes nothing it reads. (Between arrivals it is skipped; that cannot be seen from
/// outside, since its value could not have changed.)
#[test]
fn a_slot_hash_field_follows_the_feed_whatever_the_update_writes() {
    // `at` is written by one event type; the other writes only `other`.
    let s = stack_with(json!({
        "handlers": [
            handler("p::AState", true, embedded("id"), vec![map("id", "id", "SetOnce"), map("at", "at", "LastWrite")]),
            handler("p::BState", true, embedded("id"), vec![map("other", "other", "LastWrite")])],
        "computed_fields": ["hash"],
        "computed_field_specs": [{"target_path": "hash", "result_type": "Option<Value>", "expression":
            {"ResolverComputed": {"resolver": "SlotHash", "method": "slot_hash",
                                  "args": [{"FieldRef": {"path": "at"}}]}}}]
    }));
    let set_at = |vm: &mut VmContext| {
        let ev = json!({"id": 1, "at": 50, "__account_address": "A"});
        let m = run(vm, &s, "p::AState", ev, acct(1, 0));
        assert_eq!(
            m[0].patch.to_json()["hash"],
            Json::Null,
            "no hash for slot 50 yet"
        );
    };
    let other = |vm: &mut VmContext, slot: u64| {
        let ev = json!({"id": 1, "other": slot, "__account_address": "B"});
        run(vm, &s, "p::BState", ev, acct(slot, 0))
            .remove(0)
            .patch
            .to_json()
    };
    let mut vm = VmContext::new();
    set_at(&mut vm);
    // Nothing new in the feed: nothing of the field is sent.
    assert!(other(&mut vm, 2).get("hash").is_none());
    vm.record_slot_hash(50, [9; 32]);
    // Only `other` is written, yet the hash for slot 50 has arrived: the field is due.
    let p = other(&mut vm, 3);
    assert_eq!(p["hash"], json!({"bytes": vec![9; 32]}));
    assert_eq!(p["other"], json!(3));
    // A hash for another slot moves the feed on; the field is evaluated and is unchanged.
    vm.record_slot_hash(51, [8; 32]);
    assert!(other(&mut vm, 4).get("hash").is_none());
    // Slot 50's hash falls out of a one-entry feed: the field follows the feed back to null.
    let mut small = VmContext::new_with_limits(
        Default::default(),
        stackcore_engine::vm::VmLimits {
            slot_hashes: 1,
            ..Default::default()
        },
    );
    set_at(&mut small);
    small.record_slot_hash(50, [9; 32]);
    assert_eq!(other(&mut small, 2)["hash"], json!({"bytes": vec![9; 32]}));
    small.record_slot_hash(51, [8; 32]);
    assert_eq!(other(&mut small, 3).get("hash"), Some(&Json::Null));
    assert!(other(&mut small, 4).get("hash").is_none());
}

#[test]
fn unknown_event_types_are_errors() {
    let s = when_stack();
    let mut vm = VmContext::new();
    let mut out = Vec::new();
    let err = vm
        .apply_json(&s, "p::NopeState", &json!({}), &acct(1, 0), &mut out)
        .unwrap_err();
    assert_eq!(err, ApplyError::UnknownEventType("p::NopeState".into()));
    assert_eq!(vm.stats().unknown_events, 1);
}

#[test]
fn malformed_events_are_errors() {
    let s = when_stack();
    let mut vm = VmContext::new();
    let mut out = Vec::new();
    assert!(matches!(
        vm.apply_json(&s, "p::AState", &json!({"id": 1}), &acct(1, 0), &mut out),
        Err(ApplyError::BadEvent(_))
    ));
    assert!(matches!(
        vm.apply_json(&s, "p::AState", &json!([1]), &acct(1, 0), &mut out),
        Err(ApplyError::BadEvent(_))
    ));
    assert!(out.is_empty());
}

#[test]
fn a_failing_step_skips_the_event_and_is_counted() {
    let mut m = map("who", "v", "LastWrite");
    m["source"]["FromSource"]["transform"] = json!("Base58Encode");
    let s = stack_with(
        json!({"handlers": [handler("p::AState", true, embedded("id"), vec![map("id", "id", "SetOnce"), m])]}),
    );
    let mut vm = VmContext::new();
    let mut out = Vec::new();
    let err = vm
        .apply_json(
            &s,
            "p::AState",
            &json!({"id": 1, "v": 12, "__account_address": "A"}),
            &acct(1, 0),
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(err, ApplyError::Handler { ref entity, .. } if entity == "Thing"),
        "{err}"
    );
    assert!(out.is_empty());
    assert_eq!(vm.stats().handler_errors, 1);
    assert!(
        vm.entity_state(&s, "Thing", &json!(1)).is_none(),
        "nothing stored"
    );
}

#[test]
fn a_step_failing_after_writes_leaves_the_existing_row_exactly_as_it_was() {
    // Two handlers for one event type merge: [id, v, x.y, z.q, computed, who, computed]. The
    // second event writes v, x.y, a new z.q and the computed c.a before `who` fails.
    let mut who = map("who", "w", "LastWrite");
    who["source"]["FromSource"]["transform"] = json!("Base58Encode");
    let add = json!({"Binary": {"op": "Add", "left": {"UnwrapOr": {"expr": {"FieldRef": {"path": "v"}}, "default": 0}}, "right": {"Literal": {"value": 10}}}});
    let s = stack_with(json!({
        "handlers": [
            handler("p::AState", true, embedded("id"), vec![
                map("id", "id", "SetOnce"), map("v", "v", "LastWrite"),
                map("x.y", "v", "LastWrite"), map("z.q", "u", "SetOnce")]),
            handler("p::AState", true, embedded("id"), vec![who])],
        "computed_fields": ["c.a"],
        "computed_field_specs": [{"target_path": "c.a", "expression": add, "result_type": "i64"}]
    }));
    let mut vm = VmContext::new();
    run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 5, "w": [0, 0], "__account_address": "A"}),
        acct(1, 0),
    );
    let before = vm.entity_state(&s, "Thing", &json!(1)).unwrap();
    assert_eq!(before["c"]["a"], json!(15));
    assert!(before.get("z").is_none());
    let mut out = Vec::new();
    let err = vm
        .apply_json(
            &s,
            "p::AState",
            &json!({"id": 1, "v": 7, "u": 3, "w": 12, "__account_address": "A"}),
            &acct(2, 0),
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(err, ApplyError::Handler { .. }), "{err}");
    assert!(out.is_empty());
    assert_eq!(vm.entity_state(&s, "Thing", &json!(1)).unwrap(), before);
    // The row is still live: the next good event applies on top of it.
    let m = run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "v": 8, "w": [0, 1], "__account_address": "A"}),
        acct(3, 0),
    );
    assert_eq!(m[0].patch.to_json()["c"]["a"], json!(18));
    assert_eq!(
        vm.entity_state(&s, "Thing", &json!(1)).unwrap()["x"]["y"],
        json!(8)
    );
}

/// The ORE stack from `../shared/stacks`.
fn ore() -> Stack {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/stacks/OreStream.stack.json"
    ))
    .unwrap();
    Stack::from_json(&bytes).unwrap()
}

#[test]
fn undecodable_updates_are_counted_decode_errors() {
    let s = ore();
    let mut vm = VmContext::new();
    let u = stackcore_engine::Update::Account(stackcore_engine::AccountUpdate {
        slot: 1,
        write_version: 1,
        pubkey: [1; 32],
        owner: s.program_ids()[0],
        data: vec![0xEE; 3],
        signature: None,
        timestamp: 0,
    });
    let mut out = Vec::new();
    assert!(matches!(
        vm.apply(&s, &u, &mut out),
        Err(ApplyError::Decode(_))
    ));
    assert_eq!(vm.stats().decode_errors, 1);
}

/// ORE's `Board` accounts feed no handler: a truncated one is skipped (not decoded, so no decode
/// error), while a truncated `Round`, which handlers read, is still a typed decode error.
#[test]
fn an_update_no_handler_reads_is_skipped_without_decoding() {
    let s = ore();
    let mut gen = stackcore_engine::synth::Generator::new(s.idls(), Default::default());
    let mut truncated = |name: &str| loop {
        let mut u = gen.next_update();
        let et = s.idls().event_type_of(&u).unwrap() as usize;
        if &*s.idls().event_types()[et].name != name {
            continue;
        }
        if let stackcore_engine::Update::Account(a) = &mut u {
            a.data.truncate(a.data.len() / 2);
        }
        return u;
    };
    let (board, round) = (truncated("ore::BoardState"), truncated("ore::RoundState"));
    let mut vm = VmContext::new();
    let mut out = Vec::new();
    assert!(vm.apply(&s, &board, &mut out).is_ok());
    assert_eq!(
        (vm.stats().unknown_events, vm.stats().decode_errors),
        (1, 0)
    );
    assert!(matches!(
        vm.apply(&s, &round, &mut out),
        Err(ApplyError::Decode(_))
    ));
    assert_eq!(
        (vm.stats().unknown_events, vm.stats().decode_errors),
        (1, 1)
    );
    assert!(out.is_empty());
}

/// Thing 1 learns its mint "M" at slot 1; the one resolver request that makes.
fn resolver_requests_after_mint(vm: &mut VmContext, s: &Stack) -> Vec<ResolverRequest> {
    run(
        vm,
        s,
        "p::AState",
        json!({"id": 1, "mint": "M", "__account_address": "A"}),
        acct(1, 0),
    );
    let reqs = vm.take_resolver_requests();
    assert_eq!(reqs.len(), 1);
    reqs
}

#[test]
fn resolver_extracts_apply_their_transform_and_hidden_targets_are_stored_but_not_sent() {
    let mut hidden = map("raw", "absent", "LastWrite");
    hidden["emit"] = json!(false);
    let s = stack_with(json!({
        "handlers": [handler("p::AState", true, embedded("id"), vec![map("id", "id", "SetOnce"), map("mint", "mint", "LastWrite"), hidden])],
        "resolver_specs": [{"resolver": "token", "input_path": "mint", "strategy": "LastWrite", "extracts": [
            {"target_path": "key", "source_path": "bytes", "transform": "Base58Encode"},
            {"target_path": "raw", "source_path": "bytes"}]}]
    }));
    let mut vm = VmContext::new();
    let reqs = resolver_requests_after_mint(&mut vm, &s);
    let mut out = Vec::new();
    vm.apply_resolver_result(
        &s,
        &reqs[0],
        false,
        &json!({"bytes": [0, 0]}),
        &acct(2, 0),
        &mut out,
    )
    .unwrap();
    assert_eq!(out[0].patch, json!({"key": "11"}));
    let state = vm.entity_state(&s, "Thing", &json!(1)).unwrap();
    assert_eq!(
        (&state["key"], &state["raw"]),
        (&json!("11"), &json!([0, 0]))
    );
    // A transform that cannot apply is a handler error; the row keeps its values.
    let err = vm
        .apply_resolver_result(
            &s,
            &reqs[0],
            false,
            &json!({"bytes": 7}),
            &acct(3, 0),
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(err, ApplyError::Handler { .. }), "{err}");
    assert_eq!(vm.entity_state(&s, "Thing", &json!(1)).unwrap(), state);
}

#[test]
fn resolver_requests_are_emitted_and_their_results_applied() {
    let s = stack_with(json!({
        "handlers": [handler("p::AState", true, embedded("id"), vec![map("id", "id", "SetOnce"), map("mint", "mint", "LastWrite")])],
        "resolver_specs": [{"resolver": "token", "input_path": "mint", "strategy": "SetOnce", "extracts": [{"target_path": "meta"}]}],
        "computed_fields": ["ui"],
        "computed_field_specs": [{"target_path": "ui", "expression": {"ResolverComputed": {"resolver": "TokenMetadata", "method": "ui_amount",
            "args": [{"Literal": {"value": 1500}}, {"FieldRef": {"path": "meta.decimals"}}]}}, "result_type": "Option<f64>"}]
    }));
    let mut vm = VmContext::new();
    let reqs = resolver_requests_after_mint(&mut vm, &s);
    assert_eq!(
        (reqs[0].input.clone(), reqs[0].key.clone()),
        (json!("M"), json!(1))
    );
    assert!(
        reqs[0].set_once,
        "the spec's SetOnce strategy rides on the request"
    );
    let mut out = Vec::new();
    vm.apply_resolver_result(
        &s,
        &reqs[0],
        reqs[0].set_once,
        &json!({"decimals": 3}),
        &acct(2, 0),
        &mut out,
    )
    .unwrap();
    assert_eq!(out[0].patch, json!({"meta": {"decimals": 3}, "ui": 1.5}));
    // Filled: a SetOnce resolver is not asked again.
    run(
        &mut vm,
        &s,
        "p::AState",
        json!({"id": 1, "mint": "M", "__account_address": "A"}),
        acct(3, 0),
    );
    assert!(vm.take_resolver_requests().is_empty());
}

/// Draining the resolver requests (what the worker does after every update) hands over the same
/// requests as taking them, and leaves none behind.
#[test]
fn drained_resolver_requests_are_the_taken_ones_and_none_are_left() {
    let s = stack_with(json!({
        "handlers": [handler("p::AState", true, embedded("id"), vec![map("id", "id", "SetOnce"), map("mint", "mint", "LastWrite")])],
        "resolver_specs": [{"resolver": "token", "input_path": "mint", "strategy": "LastWrite", "extracts": [{"target_path": "meta"}]}]
    }));
    let (mut taken, mut drained) = (VmContext::new(), VmContext::new());
    let expected = resolver_requests_after_mint(&mut taken, &s);
    run(
        &mut drained,
        &s,
        "p::AState",
        json!({"id": 1, "mint": "M", "__account_address": "A"}),
        acct(1, 0),
    );
    assert_eq!(
        drained.drain_resolver_requests().collect::<Vec<_>>(),
        expected
    );
    assert_eq!(drained.drain_resolver_requests().len(), 0);
    // A drain dropped part-way drops the rest.
    run(
        &mut drained,
        &s,
        "p::AState",
        json!({"id": 1, "mint": "N", "__account_address": "A"}),
        acct(2, 0),
    );
    assert_eq!(drained.drain_resolver_requests().len(), 1);
    assert!(drained.take_resolver_requests().is_empty());
}

/// A captured update is stored whole: its public fields with the mapping's transforms applied,
/// its address, slot, timestamp and signature. Expressions read into it like any field; a
/// transform that cannot apply fails the update and leaves the row as it was.
#[test]
fn a_capture_stores_the_whole_update_and_a_failing_transform_fails_it() {
    let capture = |transforms: Json| {
        json!({"target_path": "snap", "source": {"AsCapture": {"field_transforms": transforms}},
        "transform": null, "population": "LastWrite"})
    };
    let s = stack_with(json!({
        "handlers": [
            handler("p::AState", true, embedded("id"), vec![map("id", "id", "SetOnce"), capture(json!({"key": "Base58Encode"}))]),
            // Overlapping transform paths and bookkeeping fields take the reference's own order.
            handler("p::BState", true, embedded("id"), vec![capture(json!({"o": "ToString", "o.x": "ToString"}))]),
            handler("p::CState", true, embedded("id"), vec![capture(json!({"__account_address": "ToString"}))]),
        ],
        "computed_fields": ["doubled"],
        "computed_field_specs": [{"target_path": "doubled", "result_type": "i64", "expression":
            {"Binary": {"op": "Mul", "left": {"FieldRef": {"path": "snap.data.n"}}, "right": {"Literal": {"value": 2}}}}}]
    }));
    let mut vm = VmContext::new();
    let ev = |key: Json, n: i64| json!({"id": 1, "key": key, "n": n, "__account_address": "Acc"});
    let m = run(
        &mut vm,
        &s,
        "p::AState",
        ev(json!([1, 2, 3]), 5),
        acct(7, 0),
    );
    let snap = json!({"timestamp": 1007, "account_address": "Acc", "slot": 7, "signature": "sig7",
        "data": {"id": 1, "key": stackcore_engine::b58::encode(&[1, 2, 3]), "n": 5}});
    assert_eq!(
        m[0].patch,
        json!({"id": 1, "snap": snap.clone(), "doubled": 10})
    );
    let st = vm.entity_state(&s, "Thing", &json!(1)).unwrap();
    assert_eq!(st["snap"], snap);

    // `key` must be bytes to encode: the update fails and the capture before it stays.
    let mut out = Vec::new();
    let bad = vm.apply_json(&s, "p::AState", &ev(json!(17), 6), &acct(8, 0), &mut out);
    assert!(bad.is_err() && out.is_empty(), "{bad:?}");
    let missing = json!({"id": 1, "n": 6, "__account_address": "Acc"});
    assert!(vm
        .apply_json(&s, "p::AState", &missing, &acct(9, 0), &mut out)
        .is_err());
    let st = vm.entity_state(&s, "Thing", &json!(1)).unwrap();
    assert_eq!((&st["snap"], &st["doubled"]), (&snap, &json!(10)));

    // `o` becomes a string first, so `o.x` is no longer there: the reference fails the update.
    let nested = json!({"id": 1, "o": {"x": 1}, "__account_address": "Acc"});
    assert!(vm
        .apply_json(&s, "p::BState", &nested, &acct(10, 0), &mut out)
        .is_err());
    // Bookkeeping fields are not part of the captured data.
    assert!(vm
        .apply_json(&s, "p::CState", &ev(json!([1]), 1), &acct(11, 0), &mut out)
        .is_err());
}

/// Computed fields are evaluated only when a slot they read changed value during the update;
/// every kind of write must count as a change: a running sum, an append, a write inside an
/// object field, a whole-field write, and a computed field feeding the next one.
#[test]
fn computed_fields_follow_every_kind_of_write_to_what_they_read() {
    let plus = |path: &str, n: i64| json!({"Binary": {"op": "Add", "left": {"UnwrapOr": {"expr": {"FieldRef": {"path": path}}, "default": 0}}, "right": {"Literal": {"value": n}}}});
    let s = stack_with(json!({
        "handlers": [
            handler("p::AState", true, embedded("id"), vec![
                map("id", "id", "SetOnce"), map("total", "v", "Sum"), map("hist", "v", "Append"),
                map("last", "v", "LastWrite"), map("o", "obj", "LastWrite")]),
            handler("p::BState", true, embedded("id"), vec![map("o.x", "v", "LastWrite")]),
        ],
        "computed_fields": ["c.total", "c.chain", "c.last", "c.ox", "c.hist"],
        "computed_field_specs": [
            {"target_path": "c.total", "expression": plus("total", 100), "result_type": "i64"},
            {"target_path": "c.chain", "expression": plus("c.total", 1), "result_type": "i64"},
            {"target_path": "c.last", "expression": plus("last", 1000), "result_type": "i64"},
            {"target_path": "c.ox", "expression": plus("o.x", 10), "result_type": "i64"},
            {"target_path": "c.hist", "expression": {"FieldRef": {"path": "hist"}}, "result_type": "Value"}]
    }));
    let mut vm = VmContext::new();
    let a = |v: i64| json!({"id": 1, "v": v, "obj": {"x": 1}, "__account_address": "A"});
    let b = |v: i64| json!({"id": 1, "v": v, "__account_address": "B"});
    let c_of = |vm: &VmContext| vm.entity_state(&s, "Thing", &json!(1)).unwrap()["c"].clone();
    run(&mut vm, &s, "p::AState", a(5), acct(1, 0));
    assert_eq!(
        c_of(&vm),
        json!({"total": 105, "chain": 106, "last": 1005, "ox": 11, "hist": [5]})
    );
    // Same `last` and `o`; `total` and `hist` change in place.
    let m = run(&mut vm, &s, "p::AState", a(5), acct(2, 0));
    assert_eq!(
        c_of(&vm),
        json!({"total": 110, "chain": 111, "last": 1005, "ox": 11, "hist": [5, 5]})
    );
    assert_eq!(
        m[0].patch.to_json()["c"],
        json!({"total": 110, "chain": 111, "hist": [5, 5]})
    );
    // A write inside `o`.
    run(&mut vm, &s, "p::BState", b(7), acct(3, 0));
    assert_eq!(c_of(&vm)["ox"], json!(17));
    // `o` written whole again puts `x` back; `v = 0` leaves the sum as it was.
    run(&mut vm, &s, "p::AState", a(0), acct(4, 0));
    assert_eq!(
        c_of(&vm),
        json!({"total": 110, "chain": 111, "last": 1000, "ox": 11, "hist": [5, 5, 0]})
    );
}
