//! Every cache of the views is bounded by `EntityCacheConfig`.

mod view_support;

use serde_json::json;
use stackcore_engine::view::spec::{FieldPath, ViewOutput, ViewSource, ViewTransform};
use stackcore_engine::view::{SubId, Subscription, ViewDef};
use stackcore_engine::EntityCacheConfig;
use view_support::*;

fn cfg(n: usize, arrays: usize) -> EntityCacheConfig {
    EntityCacheConfig {
        max_entities_per_view: n,
        max_array_length: arrays,
        ..Default::default()
    }
}

fn sorted_view(order: &str) -> ViewDef {
    ViewDef {
        id: "T/top".into(),
        source: ViewSource::Entity { name: "T".into() },
        pipeline: vec![serde_json::from_value(
            json!({"Sort": {"key": {"segments": ["n"], "offsets": null}, "order": order}}),
        )
        .unwrap()],
        output: ViewOutput::Collection,
    }
}

#[test]
fn entity_cache_evicts_the_least_recently_changed_silently() {
    let mut v = views_of(&[("T".to_string(), vec![])], cfg(3, 10));
    let mut out = Vec::new();
    v.subscribe(SubId(1), &sub("T/list", None), &mut out)
        .unwrap();
    out.clear();
    for (i, k) in ["a", "b", "c", "a", "d"].iter().enumerate() {
        v.apply(
            &mutation("T", json!(k), json!({"i": i}), &[], (i as u64, 0)),
            &mut out,
        );
    }
    assert_eq!(out.len(), 5, "one patch per mutation, no eviction frames");
    let list = v.view_id("T/list").unwrap();
    let keys: Vec<String> = v.rows(list).iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["d", "a", "c"], "b was least recently changed");
    let state = v.view_id("T/state").unwrap();
    assert_eq!(v.get(state, "b"), None);
}

#[test]
fn arrays_keep_their_newest_elements() {
    let mut v = views_of(&[("T".to_string(), vec![])], cfg(10, 3));
    let mut out = Vec::new();
    v.apply(
        &mutation(
            "T",
            json!("k"),
            json!({"ev": [1, 2], "big": [1, 2, 3, 4, 5]}),
            &["ev"],
            (1, 0),
        ),
        &mut out,
    );
    v.apply(
        &mutation("T", json!("k"), json!({"ev": [3, 4]}), &["ev"], (2, 0)),
        &mut out,
    );
    let e = v.get(v.view_id("T/list").unwrap(), "k").unwrap();
    assert_eq!(e["ev"], json!([2, 3, 4]));
    assert_eq!(e["big"], json!([3, 4, 5]), "new entities are capped too");
}

#[test]
fn sorted_cache_is_bounded_and_drops_the_rows_that_sort_last() {
    let mut v = views_of(&[("T".to_string(), vec![sorted_view("desc")])], cfg(4, 10));
    let top = v.view_id("T/top").unwrap();
    let mut out = Vec::new();
    for i in 0..10u64 {
        v.apply(
            &mutation("T", json!(format!("k{i}")), json!({"n": i}), &[], (i, 0)),
            &mut out,
        );
    }
    let keys: Vec<String> = v.rows(top).iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["k9", "k8", "k7", "k6"]);
    // A dropped row returns with its next update, complete (fed from the entity cache).
    v.apply(
        &mutation("T", json!("k2"), json!({"n": 50}), &[], (20, 0)),
        &mut out,
    );
    let rows = v.rows(top);
    assert_eq!(&*rows[0].0, "k2");
    assert_eq!(rows.len(), 4);
}

#[test]
fn windows_larger_than_the_bound_show_only_what_is_kept() {
    let mut v = views_of(&[("T".to_string(), vec![sorted_view("asc")])], cfg(3, 10));
    let mut out = Vec::new();
    for i in 0..6u64 {
        v.apply(
            &mutation("T", json!(format!("k{i}")), json!({"n": i}), &[], (i, 0)),
            &mut out,
        );
    }
    v.subscribe(
        SubId(1),
        &Subscription {
            take: Some(10),
            ..sub("T/top", None)
        },
        &mut out,
    )
    .unwrap();
    let f = to_frames(&out, SubId(1));
    assert_eq!(f[1]["data"].as_array().unwrap().len(), 3);
}

#[test]
fn keyed_views_are_bounded() {
    let keyed = ViewDef {
        id: "T/by".into(),
        source: ViewSource::Entity { name: "T".into() },
        pipeline: Vec::<ViewTransform>::new(),
        output: ViewOutput::Keyed {
            key_field: FieldPath::new(&["o"]),
        },
    };
    let mut v = views_of(&[("T".to_string(), vec![keyed])], cfg(2, 10));
    let mut out = Vec::new();
    for i in 0..5u64 {
        v.apply(
            &mutation("T", json!(i), json!({"o": format!("o{i}")}), &[], (i, 0)),
            &mut out,
        );
    }
    assert_eq!(v.rows(v.view_id("T/by").unwrap()).len(), 2);
}
