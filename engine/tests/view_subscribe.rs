//! Subscribe options and the behaviours where we differ from the reference (`protocol.md` §7).

mod view_support;

use serde_json::{json, Value};
use stackcore_engine::view::spec::{FieldPath, ViewOutput, ViewSource, ViewTransform};
use stackcore_engine::view::{
    Output, SubId, SubscribeError, Subscription, ViewDef, ViewError, Views,
};
use stackcore_engine::EntityCacheConfig;
use view_support::*;

fn derived(id: &str, entity: &str, pipeline: Vec<ViewTransform>, output: ViewOutput) -> ViewDef {
    ViewDef {
        id: id.into(),
        source: ViewSource::Entity {
            name: entity.into(),
        },
        pipeline,
        output,
    }
}

fn sort(path: &[&str], order: &str) -> ViewTransform {
    serde_json::from_value(
        json!({"Sort": {"key": {"segments": path, "offsets": null}, "order": order}}),
    )
    .unwrap()
}

fn t_views(defs: Vec<ViewDef>) -> Views {
    views_of(&[("T".to_string(), defs)], EntityCacheConfig::default())
}

fn put(v: &mut Views, key: &str, patch: Value, seq: u64, out: &mut Vec<Output>) {
    v.apply(&mutation("T", json!(key), patch, &[], (seq, 0)), out);
}

fn keys_of(frames: &[Value]) -> Vec<(String, String)> {
    frames
        .iter()
        .map(|f| {
            (
                f["op"].as_str().unwrap().to_string(),
                f["key"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn duplicate_subscribe_is_idempotent() {
    let mut v = t_views(vec![]);
    let mut out = Vec::new();
    put(&mut v, "a", json!({"x": 1}), 1, &mut out);
    let s = sub("T/list", None);
    v.subscribe(SubId(1), &s, &mut out).unwrap();
    out.clear();
    v.subscribe(SubId(1), &s, &mut out).unwrap();
    assert_eq!(v.subscription_count(), 1);
    let ops: Vec<_> = to_frames(&out, SubId(1))
        .iter()
        .map(|f| f["op"].clone())
        .collect();
    assert_eq!(
        ops,
        [json!("subscribed"), json!("snapshot")],
        "the repeat is answered again, not killed"
    );
    out.clear();
    put(&mut v, "a", json!({"x": 2}), 2, &mut out);
    assert_eq!(out.len(), 1, "still exactly one live stream");
    v.unsubscribe(SubId(1));
    out.clear();
    put(&mut v, "a", json!({"x": 3}), 3, &mut out);
    assert!(
        out.is_empty(),
        "one unsubscribe ends it: no second registration was left behind"
    );
}

#[test]
fn duplicate_window_subscribe_with_a_new_slice_deletes_the_rows_that_left() {
    let mut v = t_views(vec![derived(
        "T/top",
        "T",
        vec![sort(&["n"], "asc")],
        ViewOutput::Collection,
    )]);
    let mut out = Vec::new();
    for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
        put(&mut v, k, json!({"n": i}), i as u64, &mut out);
    }
    let mut c = Client::new(
        SubId(1),
        v.view_id("T/top").unwrap(),
        "T/top",
        None,
        false,
        100,
    );
    v.subscribe(
        SubId(1),
        &Subscription {
            take: Some(3),
            ..sub("T/top", None)
        },
        &mut out,
    )
    .unwrap();
    route(&out, std::slice::from_mut(&mut c));
    assert_eq!(c.ordered_keys(), ["a", "b", "c"]);
    out.clear();
    v.subscribe(
        SubId(1),
        &Subscription {
            skip: Some(2),
            take: Some(2),
            ..sub("T/top", None)
        },
        &mut out,
    )
    .unwrap();
    route(&out, std::slice::from_mut(&mut c));
    assert_eq!(c.ordered_keys(), ["c", "d"]);
    assert_eq!(v.subscription_count(), 1);
}

#[test]
fn unknown_view_is_refused_and_nothing_is_sent() {
    let mut v = t_views(vec![]);
    let mut out = Vec::new();
    let e = v
        .subscribe(SubId(1), &sub("T/nope", None), &mut out)
        .unwrap_err();
    assert_eq!(e, SubscribeError::UnknownView("T/nope".into()));
    assert_eq!(e.code(), "unknown-view");
    assert!(out.is_empty());
    assert_eq!(v.subscription_count(), 0);
}

#[test]
fn snapshot_over_the_connection_limit_is_refused_and_nothing_is_registered() {
    let mut v = t_views(vec![]);
    let mut out = Vec::new();
    for i in 0..5 {
        put(&mut v, &format!("k{i}"), json!({"i": i}), i, &mut out);
    }
    out.clear();
    let e = v
        .subscribe_limited(SubId(1), &sub("T/list", None), Some(4), &mut out)
        .unwrap_err();
    assert_eq!(
        e,
        SubscribeError::SnapshotLimitExceeded { rows: 5, limit: 4 }
    );
    assert_eq!(e.code(), "snapshot-limit-exceeded");
    assert!(out.is_empty());
    put(&mut v, "k0", json!({"i": 9}), 9, &mut out);
    assert!(out.is_empty(), "a refused subscription receives nothing");
    // A client-side snapshotLimit under the connection limit is fine.
    let s = Subscription {
        snapshot_limit: Some(4),
        ..sub("T/list", None)
    };
    assert!(v.subscribe_limited(SubId(2), &s, Some(4), &mut out).is_ok());
}

#[test]
fn after_cursor_sends_newer_rows_in_ascending_seq_order() {
    let mut v = t_views(vec![]);
    let mut out = Vec::new();
    // Touch order differs from seq order: "late" is touched last with the oldest seq.
    put(&mut v, "s100", json!({"v": 1}), 100, &mut out);
    put(&mut v, "s300", json!({"v": 1}), 300, &mut out);
    put(&mut v, "s200", json!({"v": 1}), 200, &mut out);
    put(&mut v, "late", json!({"v": 1}), 50, &mut out);
    let s = Subscription {
        after: Some("100:000000000000".into()),
        ..sub("T/list", None)
    };
    v.subscribe(SubId(1), &s, &mut out).unwrap();
    let f = to_frames(&out, SubId(1));
    let keys: Vec<_> = f[1]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].clone())
        .collect();
    assert_eq!(keys, [json!("s200"), json!("s300")]);
    let mut out = Vec::new();
    let s = Subscription {
        after: Some("100:0".into()),
        snapshot_limit: Some(1),
        ..sub("T/list", None)
    };
    v.subscribe(SubId(2), &s, &mut out).unwrap();
    assert_eq!(
        to_frames(&out, SubId(2))[1]["data"][0]["key"],
        json!("s200")
    );
    let bad = Subscription {
        after: Some("yesterday".into()),
        ..sub("T/list", None)
    };
    assert_eq!(
        v.subscribe(SubId(3), &bad, &mut out).unwrap_err(),
        SubscribeError::InvalidCursor("yesterday".into())
    );
}

#[test]
fn snapshot_limit_keeps_the_rows_with_the_newest_seq() {
    let mut v = t_views(vec![]);
    let mut out = Vec::new();
    put(&mut v, "s100", json!({"v": 1}), 100, &mut out);
    put(&mut v, "s300", json!({"v": 1}), 300, &mut out);
    put(&mut v, "s200", json!({"v": 1}), 200, &mut out);
    put(&mut v, "late", json!({"v": 1}), 50, &mut out);
    let s = Subscription {
        snapshot_limit: Some(2),
        ..sub("T/list", None)
    };
    v.subscribe(SubId(1), &s, &mut out).unwrap();
    let keys: Vec<_> = to_frames(&out, SubId(1))[1]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].clone())
        .collect();
    assert_eq!(keys, [json!("s300"), json!("s200")]);
}

#[test]
fn key_filter_limits_the_list_snapshot_and_the_live_stream() {
    let mut v = t_views(vec![]);
    let mut out = Vec::new();
    put(&mut v, "a", json!({"x": 1}), 1, &mut out);
    put(&mut v, "b", json!({"x": 1}), 2, &mut out);
    let list = v.view_id("T/list").unwrap();
    let mut c = Client::new(SubId(1), list, "T/list", Some("b"), false, 100);
    v.subscribe(SubId(1), &sub("T/list", Some("b")), &mut out)
        .unwrap();
    put(&mut v, "a", json!({"x": 2}), 3, &mut out);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Broadcast { key, .. } if &**key == "a")),
        "nobody wants `a`"
    );
    put(&mut v, "b", json!({"y": 5}), 4, &mut out);
    route(&out, std::slice::from_mut(&mut c));
    assert_eq!(c.rows.keys().collect::<Vec<_>>(), ["b"]);
    assert_eq!(&c.rows["b"], v.get(list, "b").unwrap());
}

#[test]
fn state_view_without_a_key_never_receives_data() {
    let mut v = t_views(vec![]);
    let mut out = Vec::new();
    v.subscribe(SubId(1), &sub("T/state", None), &mut out)
        .unwrap();
    out.clear();
    put(&mut v, "a", json!({"x": 1}), 1, &mut out);
    assert!(out.is_empty());
}

#[test]
fn state_subscribers_converge_to_the_true_entity() {
    let mut v = t_views(vec![]);
    let mut out = Vec::new();
    put(&mut v, "a", json!({"x": 1, "o": {"p": 1}}), 1, &mut out);
    let state = v.view_id("T/state").unwrap();
    let mut c = Client::new(SubId(1), state, "T/state", Some("a"), true, 100);
    v.subscribe(SubId(1), &sub("T/state", Some("a")), &mut out)
        .unwrap();
    put(&mut v, "a", json!({"o": {"q": 2}}), 2, &mut out);
    put(&mut v, "a", json!({"y": 3}), 3, &mut out);
    put(&mut v, "b", json!({"y": 3}), 4, &mut out);
    route(&out, std::slice::from_mut(&mut c));
    assert_eq!(c.rows.len(), 1);
    assert_eq!(&c.rows["a"], v.get(state, "a").unwrap());
    assert_eq!(
        c.rows["a"],
        json!({"x": 1, "o": {"p": 1, "q": 2}, "y": 3, "_seq": "3:000000000000"})
    );
}

#[test]
fn unwatched_views_build_no_frames() {
    let mut v = t_views(vec![derived(
        "T/top",
        "T",
        vec![sort(&["n"], "asc")],
        ViewOutput::Collection,
    )]);
    let mut out = Vec::new();
    for i in 0..20 {
        put(&mut v, &format!("k{i}"), json!({"n": i}), i, &mut out);
    }
    assert!(out.is_empty());
    assert_eq!(
        v.rows(v.view_id("T/top").unwrap()).len(),
        20,
        "the views still keep their rows"
    );
}

#[test]
fn descending_sorts_reverse_strings_too() {
    let mut v = t_views(vec![derived(
        "T/byname",
        "T",
        vec![sort(&["name"], "desc")],
        ViewOutput::Collection,
    )]);
    let mut out = Vec::new();
    for (i, n) in ["bob", "alice", "carol"].iter().enumerate() {
        put(&mut v, n, json!({"name": n}), i as u64, &mut out);
    }
    let id = v.view_id("T/byname").unwrap();
    let keys: Vec<String> = v.rows(id).iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["carol", "bob", "alice"]);
}

#[test]
fn sorted_windows_send_only_deltas() {
    let mut v = t_views(vec![derived(
        "T/top",
        "T",
        vec![sort(&["n"], "desc")],
        ViewOutput::Collection,
    )]);
    let mut out = Vec::new();
    for i in 0..6u64 {
        put(
            &mut v,
            &format!("k{i}"),
            json!({"n": i, "z": 0}),
            i,
            &mut out,
        );
    }
    v.subscribe(
        SubId(1),
        &Subscription {
            take: Some(3),
            ..sub("T/top", None)
        },
        &mut out,
    )
    .unwrap();
    out.clear();
    // Outside the window and staying outside: nothing.
    put(&mut v, "k0", json!({"z": 1}), 10, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // Inside and staying: one upsert of that key only.
    put(&mut v, "k4", json!({"z": 1}), 11, &mut out);
    assert_eq!(
        keys_of(&to_frames(&out, SubId(1))),
        [("upsert".into(), "k4".into())]
    );
    out.clear();
    // Entering at the top: the last row leaves.
    put(&mut v, "k1", json!({"n": 100}), 12, &mut out);
    assert_eq!(
        keys_of(&to_frames(&out, SubId(1))),
        [
            ("delete".into(), "k3".into()),
            ("upsert".into(), "k1".into())
        ]
    );
}

#[test]
fn identical_windows_share_the_same_frame_bytes() {
    let mut v = t_views(vec![derived(
        "T/top",
        "T",
        vec![sort(&["n"], "desc")],
        ViewOutput::Collection,
    )]);
    let mut out = Vec::new();
    let w = Subscription {
        take: Some(2),
        ..sub("T/top", None)
    };
    v.subscribe(SubId(1), &w, &mut out).unwrap();
    v.subscribe(SubId(2), &w, &mut out).unwrap();
    out.clear();
    put(&mut v, "a", json!({"n": 1}), 1, &mut out);
    let frames: Vec<_> = out
        .iter()
        .map(|o| match o {
            Output::To { frame, .. } => frame.wire().as_ptr(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0], frames[1], "built once, shared by reference");
}

#[test]
fn filtered_views_delete_rows_that_stop_matching() {
    let filter: ViewTransform = serde_json::from_value(json!({"Filter": {"predicate": {"Compare": {
        "field": {"segments": ["live"], "offsets": null}, "op": "Eq", "value": {"Literal": true}}}}}))
    .unwrap();
    let mut v = t_views(vec![derived(
        "T/live",
        "T",
        vec![filter, sort(&["n"], "asc")],
        ViewOutput::Collection,
    )]);
    let mut out = Vec::new();
    put(&mut v, "a", json!({"n": 1, "live": true}), 1, &mut out);
    put(&mut v, "b", json!({"n": 2, "live": false}), 2, &mut out);
    v.subscribe(SubId(1), &sub("T/live", None), &mut out)
        .unwrap();
    assert_eq!(
        to_frames(&out, SubId(1))[1]["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    out.clear();
    put(&mut v, "a", json!({"live": false}), 3, &mut out);
    assert_eq!(
        keys_of(&to_frames(&out, SubId(1))),
        [("delete".into(), "a".into())]
    );
}

#[test]
fn max_by_is_a_single_row_state_view() {
    let max: ViewTransform =
        serde_json::from_value(json!({"MaxBy": {"key": {"segments": ["n"], "offsets": null}}}))
            .unwrap();
    let mut v = t_views(vec![derived("T/max", "T", vec![max], ViewOutput::Single)]);
    let mut out = Vec::new();
    put(&mut v, "a", json!({"n": 5}), 1, &mut out);
    v.subscribe(SubId(1), &sub("T/max", None), &mut out)
        .unwrap();
    let f = to_frames(&out, SubId(1));
    assert_eq!(
        f[0],
        json!({"op": "subscribed", "view": "T/max", "mode": "state"})
    );
    out.clear();
    put(&mut v, "b", json!({"n": 7}), 2, &mut out);
    let f = to_frames(&out, SubId(1));
    assert_eq!(
        keys_of(&f),
        [("delete".into(), "a".into()), ("upsert".into(), "b".into())]
    );
    assert_eq!(f[1]["mode"], json!("state"));
}

#[test]
fn keyed_views_follow_their_key_field() {
    let out_kind = ViewOutput::Keyed {
        key_field: FieldPath::new(&["owner"]),
    };
    let mut v = t_views(vec![derived("T/byowner", "T", vec![], out_kind)]);
    let id = v.view_id("T/byowner").unwrap();
    let mut out = Vec::new();
    put(&mut v, "e1", json!({"owner": "alice", "n": 1}), 1, &mut out);
    let mut alice = Client::new(SubId(1), id, "T/byowner", Some("alice"), true, 100);
    let mut bob = Client::new(SubId(2), id, "T/byowner", Some("bob"), true, 100);
    v.subscribe(SubId(1), &sub("T/byowner", Some("alice")), &mut out)
        .unwrap();
    v.subscribe(SubId(2), &sub("T/byowner", Some("bob")), &mut out)
        .unwrap();
    put(&mut v, "e1", json!({"owner": "bob"}), 2, &mut out);
    let mut cs = [alice.clone(), bob.clone()];
    route(&out, &mut cs);
    [alice, bob] = cs;
    assert!(
        alice.rows.is_empty(),
        "alice's row left with its owner change"
    );
    assert_eq!(
        bob.rows["bob"],
        json!({"owner": "bob", "n": 1, "_seq": "2:000000000000"})
    );
    assert_eq!(v.get(id, "alice"), None);
}

#[test]
fn derived_views_of_derived_views_compose_their_pipelines() {
    let base = derived(
        "T/sorted",
        "T",
        vec![sort(&["n"], "asc")],
        ViewOutput::Collection,
    );
    let take: ViewTransform = serde_json::from_value(json!({"Take": {"count": 2}})).unwrap();
    let top = ViewDef {
        id: "T/top2".into(),
        source: ViewSource::View {
            id: "T/sorted".into(),
        },
        pipeline: vec![take],
        output: ViewOutput::Collection,
    };
    let mut v = t_views(vec![base, top]);
    let mut out = Vec::new();
    for i in [5u64, 1, 3] {
        put(&mut v, &format!("k{i}"), json!({"n": i}), i, &mut out);
    }
    let keys: Vec<String> = v
        .rows(v.view_id("T/top2").unwrap())
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(keys, ["k1", "k3"]);
}

#[test]
fn views_that_cannot_be_built_are_reported() {
    let unknown = ViewDef {
        id: "T/x".into(),
        source: ViewSource::View {
            id: "T/nope".into(),
        },
        pipeline: vec![],
        output: ViewOutput::Collection,
    };
    let a = ViewDef {
        id: "T/a".into(),
        source: ViewSource::View { id: "T/b".into() },
        pipeline: vec![],
        output: ViewOutput::Collection,
    };
    let b = ViewDef {
        id: "T/b".into(),
        source: ViewSource::View { id: "T/a".into() },
        pipeline: vec![],
        output: ViewOutput::Collection,
    };
    let dup = derived("T/list", "T", vec![], ViewOutput::Collection);
    let defs = vec![unknown, a, b, dup];
    let ents = [("T".to_string(), defs)];
    let v = Views::new(
        ents.iter().map(|(n, d)| (n.as_str(), d.as_slice())),
        EntityCacheConfig::default(),
    );
    let errs = v.skipped();
    assert!(errs.contains(&ViewError::UnknownSource {
        view: "T/x".into(),
        from: "T/nope".into()
    }));
    assert!(errs.contains(&ViewError::SourceCycle { view: "T/a".into() }));
    assert!(errs.contains(&ViewError::Duplicate {
        view: "T/list".into()
    }));
    assert_eq!(v.names(), ["T/state", "T/list", "T/append"]);
    assert!(Views::try_new(
        ents.iter().map(|(n, d)| (n.as_str(), d.as_slice())),
        EntityCacheConfig::default()
    )
    .is_err());
}

#[test]
fn mutations_the_views_cannot_use_are_counted_not_applied() {
    let mut v = t_views(vec![]);
    let mut out = Vec::new();
    v.apply(
        &mutation("Nope", json!(1), json!({}), &[], (1, 0)),
        &mut out,
    );
    v.apply(
        &mutation("T", Value::Null, json!({}), &[], (1, 0)),
        &mut out,
    );
    v.apply(&mutation("T", json!(1), json!([1]), &[], (1, 0)), &mut out);
    let s = v.stats();
    assert_eq!(
        (s.unknown_entity, s.null_key, s.non_object_patch),
        (1, 1, 1)
    );
    assert!(v.rows(v.view_id("T/list").unwrap()).is_empty());
}

#[test]
fn sharded_subscribe_sends_one_subscribed_and_one_complete_snapshot() {
    use stackcore_engine::view::ShardRole;
    let mut a = t_views(vec![]);
    let mut b = t_views(vec![]);
    let mut empty = t_views(vec![]);
    let mut out = Vec::new();
    put(&mut a, "a1", json!({"x": 1}), 1, &mut out);
    put(&mut b, "b1", json!({"x": 2}), 2, &mut out);
    let s = sub("T/list", None);
    let roles = [
        ShardRole {
            first: true,
            last: false,
        },
        ShardRole {
            first: false,
            last: false,
        },
        ShardRole {
            first: false,
            last: true,
        },
    ];
    a.subscribe_shard(SubId(1), &s, None, roles[0], &mut out)
        .unwrap();
    empty
        .subscribe_shard(SubId(1), &s, None, roles[1], &mut out)
        .unwrap();
    b.subscribe_shard(SubId(1), &s, None, roles[2], &mut out)
        .unwrap();
    let frames = to_frames(&out, SubId(1));
    let ops: Vec<(Value, Option<Value>)> = frames
        .iter()
        .map(|f| (f["op"].clone(), f.get("complete").cloned()))
        .collect();
    assert_eq!(
        ops,
        [
            (json!("subscribed"), None),
            (json!("snapshot"), Some(json!(false))),
            (json!("snapshot"), Some(json!(true)))
        ],
        "the empty middle shard sends nothing"
    );
    let mut c = Client::new(
        SubId(1),
        a.view_id("T/list").unwrap(),
        "T/list",
        None,
        false,
        100,
    );
    frames.iter().for_each(|f| c.apply(f));
    assert_eq!(c.rows.keys().collect::<Vec<_>>(), ["a1", "b1"]);
}

#[test]
fn large_windows_converge_under_reordering_updates() {
    let mut v = t_views(vec![derived(
        "T/top",
        "T",
        vec![sort(&["n"], "desc")],
        ViewOutput::Collection,
    )]);
    let id = v.view_id("T/top").unwrap();
    let mut out = Vec::new();
    for i in 0..60u64 {
        put(&mut v, &format!("k{i}"), json!({"n": i}), i, &mut out);
    }
    let w = Subscription {
        skip: Some(5),
        take: Some(30),
        ..sub("T/top", None)
    };
    let mut c = Client::new(SubId(1), id, "T/top", None, false, 100);
    v.subscribe(SubId(1), &w, &mut out).unwrap();
    // Deterministic reshuffle: every key gets a new rank.
    for step in 0..200u64 {
        let k = (step * 37) % 60;
        put(
            &mut v,
            &format!("k{k}"),
            json!({"n": (step * 7919) % 101}),
            100 + step,
            &mut out,
        );
    }
    route(&out, std::slice::from_mut(&mut c));
    let want: Vec<String> = v
        .rows(id)
        .iter()
        .skip(5)
        .take(30)
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(c.ordered_keys(), want);
}
