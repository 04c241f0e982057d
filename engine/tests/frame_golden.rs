//! Golden tests: the exact bytes of every frame kind, checked against the examples of
//! `protocol.md` §1.5 (envelope field order byte for byte; data compared as JSON, since the
//! examples elide values and object fields go out in serde_json's key order).

mod view_support;

use serde_json::{json, Value};
use stackcore_engine::frame::Opcode;
use stackcore_engine::view::{Output, SubId, Subscription};
use stackcore_engine::EntityCacheConfig;
use view_support::*;

fn only_to(out: &[Output]) -> Vec<String> {
    out.iter()
        .map(|o| match o {
            Output::To { frame, .. } => {
                assert_eq!(frame.opcode(), Opcode::Binary, "data frames are binary");
                text(frame)
            }
            Output::Broadcast { .. } => panic!("expected only To outputs"),
        })
        .collect()
}

#[test]
fn subscribed_frames_match_the_protocol_examples() {
    let mut v = ore_views(EntityCacheConfig::default());
    let mut out = Vec::new();
    v.subscribe(SubId(1), &sub("OreRound/list", None), &mut out)
        .unwrap();
    v.subscribe(SubId(2), &sub("OreRound/latest", None), &mut out)
        .unwrap();
    v.subscribe(SubId(3), &sub("OreRound/state", Some("1")), &mut out)
        .unwrap();
    v.subscribe(SubId(4), &sub("OreRound/append", None), &mut out)
        .unwrap();
    let t = only_to(&out);
    let subscribed: Vec<&String> = t
        .iter()
        .filter(|s| s.starts_with("{\"op\":\"subscribed\""))
        .collect();
    assert_eq!(
        subscribed,
        [
            r#"{"op":"subscribed","view":"OreRound/list","mode":"list","sort":{"field":["_seq"],"order":"desc"}}"#,
            r#"{"op":"subscribed","view":"OreRound/latest","mode":"list","sort":{"field":["id","round_id"],"order":"desc"}}"#,
            r#"{"op":"subscribed","view":"OreRound/state","mode":"state"}"#,
            r#"{"op":"subscribed","view":"OreRound/append","mode":"append"}"#,
        ]
    );
}

#[test]
fn empty_views_send_one_empty_complete_snapshot() {
    let mut v = ore_views(EntityCacheConfig::default());
    let mut out = Vec::new();
    v.subscribe(SubId(1), &sub("OreRound/list", None), &mut out)
        .unwrap();
    let t = only_to(&out);
    assert_eq!(t.len(), 2);
    assert_eq!(
        t[1],
        r#"{"mode":"list","entity":"OreRound/list","op":"snapshot","data":[],"complete":true}"#
    );
    let mut out = Vec::new();
    let no_snapshot = Subscription {
        with_snapshot: Some(false),
        ..sub("OreRound/state", Some("9"))
    };
    v.subscribe(SubId(2), &no_snapshot, &mut out).unwrap();
    assert_eq!(
        only_to(&out)[1],
        r#"{"mode":"state","entity":"OreRound/state","op":"snapshot","data":[],"complete":true}"#
    );
}

fn round_patch() -> Value {
    json!({"id": {"round_id": 12345, "round_address": "7x.."}, "state": {"total_deployed": 12.5, "total_miners": 301}})
}

#[test]
fn snapshot_frame_matches_the_protocol_example() {
    let mut v = ore_views(EntityCacheConfig::default());
    let mut out = Vec::new();
    v.apply(
        &mutation(
            "OreRound",
            json!(12345),
            round_patch(),
            &[],
            (312345678, 1234567),
        ),
        &mut out,
    );
    assert!(out.is_empty(), "no subscriber, no frame");
    v.subscribe(SubId(1), &sub("OreRound/list", None), &mut out)
        .unwrap();
    let t = only_to(&out);
    assert_eq!(
        t[1],
        r#"{"mode":"list","entity":"OreRound/list","op":"snapshot","data":[{"key":"12345","data":{"_seq":"312345678:000001234567","id":{"round_address":"7x..","round_id":12345},"state":{"total_deployed":12.5,"total_miners":301}}}],"complete":true}"#
    );
    let example: Value = serde_json::from_str(
        r#"{"mode":"list","entity":"OreRound/list","op":"snapshot",
 "data":[{"key":"12345","data":{"id":{"round_id":12345,"round_address":"7x.."},"state":{"total_deployed":12.5,"total_miners":301},"_seq":"312345678:000001234567"}}],
 "complete":true}"#,
    )
    .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&t[1]).unwrap(), example);
}

#[test]
fn patch_frames_match_the_protocol_examples() {
    let mut v = ore_views(EntityCacheConfig::default());
    let mut out = Vec::new();
    v.subscribe(SubId(1), &sub("OreRound/list", None), &mut out)
        .unwrap();
    out.clear();
    let m = mutation(
        "OreRound",
        json!(12345),
        json!({"state": {"total_deployed": 12.5, "total_miners": 301}}),
        &[],
        (312345679, 1234999),
    );
    v.apply(&m, &mut out);
    let [Output::Broadcast { view, key, frame }] = &out[..] else {
        panic!("one broadcast: {out:?}")
    };
    assert_eq!(
        (*view, &**key),
        (v.view_id("OreRound/list").unwrap(), "12345")
    );
    assert_eq!(
        text(frame),
        r#"{"mode":"list","entity":"OreRound/list","op":"patch","key":"12345","data":{"_seq":"312345679:000001234999","state":{"total_deployed":12.5,"total_miners":301}},"seq":"312345679:000001234999"}"#
    );

    // The append example, on an entity of its own.
    let token = vec![("Token".to_string(), Vec::new())];
    let mut v = views_of(&token, EntityCacheConfig::default());
    let mut out = Vec::new();
    v.subscribe(SubId(1), &sub("Token/list", None), &mut out)
        .unwrap();
    out.clear();
    let m = mutation(
        "Token",
        json!("abc"),
        json!({"events": {"trades": [{"px": 1.2}]}}),
        &["events.trades"],
        (5, 7),
    );
    v.apply(&m, &mut out);
    assert_eq!(
        text(match &out[0] {
            Output::Broadcast { frame, .. } => frame,
            _ => panic!(),
        }),
        r#"{"mode":"list","entity":"Token/list","op":"patch","key":"abc","data":{"_seq":"5:000000000007","events":{"trades":[{"px":1.2}]}},"append":["events.trades"],"seq":"5:000000000007"}"#
    );
}

#[test]
fn upsert_and_delete_frames_match_the_protocol_examples() {
    let mut v = ore_views(EntityCacheConfig::default());
    let mut out = Vec::new();
    v.apply(
        &mutation(
            "OreRound",
            json!(12344),
            json!({"id": {"round_id": 12344}}),
            &[],
            (1, 1),
        ),
        &mut out,
    );
    let one = Subscription {
        take: Some(1),
        ..sub("OreRound/latest", None)
    };
    v.subscribe(SubId(7), &one, &mut out).unwrap();
    out.clear();
    v.apply(
        &mutation(
            "OreRound",
            json!(12345),
            json!({"id": {"round_id": 12345}}),
            &[],
            (2, 1),
        ),
        &mut out,
    );
    assert_eq!(
        only_to(&out),
        [
            r#"{"mode":"list","entity":"OreRound/latest","op":"delete","key":"12344","data":null}"#,
            r#"{"mode":"list","entity":"OreRound/latest","op":"upsert","key":"12345","data":{"_seq":"2:000000000001","id":{"round_id":12345}}}"#,
        ]
    );
}

#[test]
fn snapshots_are_batched_fifty_then_a_hundred_with_complete_on_the_last() {
    let mut v = ore_views(EntityCacheConfig::default());
    let mut out = Vec::new();
    for i in 0..230u64 {
        v.apply(
            &mutation("OreMiner", json!(i), json!({"n": i}), &[], (i, 0)),
            &mut out,
        );
    }
    v.subscribe(SubId(1), &sub("OreMiner/list", None), &mut out)
        .unwrap();
    let frames = to_frames(&out, SubId(1));
    let shape: Vec<(usize, Value)> = frames[1..]
        .iter()
        .map(|f| (f["data"].as_array().unwrap().len(), f["complete"].clone()))
        .collect();
    assert_eq!(
        shape,
        [(50, json!(false)), (100, json!(false)), (80, json!(true))]
    );
    // Most recently changed first, as the reference's cache iterates.
    assert_eq!(frames[1]["data"][0]["key"], json!("229"));
}

#[test]
fn large_snapshots_go_out_as_raw_gzip_that_round_trips() {
    let mut v = ore_views(EntityCacheConfig::default());
    let mut out = Vec::new();
    for i in 0..40u64 {
        v.apply(
            &mutation(
                "OreMiner",
                json!(i),
                json!({"authority": "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU", "rewards": i}),
                &[],
                (i, 0),
            ),
            &mut out,
        );
    }
    v.subscribe(SubId(1), &sub("OreMiner/list", None), &mut out)
        .unwrap();
    let Output::To { frame, .. } = &out[1] else {
        panic!()
    };
    let p = frame.payload();
    assert_eq!(&p[..2], &[0x1f, 0x8b], "raw gzip, no wrapper");
    let json = decode(frame);
    assert_eq!(json["data"].as_array().unwrap().len(), 40);
    let plain = serde_json::to_vec(&json).unwrap();
    assert!(p.len() < plain.len());
    // Small snapshots stay plain JSON.
    let mut out = Vec::new();
    v.subscribe(SubId(2), &sub("OreMiner/list", Some("3")), &mut out)
        .unwrap();
    let Output::To { frame, .. } = &out[1] else {
        panic!()
    };
    assert_eq!(frame.payload()[0], b'{');
}

#[test]
fn big_integers_go_out_as_strings() {
    let mut v = ore_views(EntityCacheConfig::default());
    let mut out = Vec::new();
    v.subscribe(SubId(1), &sub("OreMiner/state", Some("k")), &mut out)
        .unwrap();
    out.clear();
    v.apply(
        &mutation(
            "OreMiner",
            json!("k"),
            json!({"a": 9007199254740993u64, "b": 9007199254740991u64}),
            &[],
            (1, 0),
        ),
        &mut out,
    );
    let Output::Broadcast { frame, .. } = &out[0] else {
        panic!()
    };
    assert_eq!(
        text(frame),
        r#"{"mode":"state","entity":"OreMiner/state","op":"patch","key":"k","data":{"_seq":"1:000000000000","a":"9007199254740993","b":9007199254740991},"seq":"1:000000000000"}"#
    );
    let id = v.view_id("OreMiner/state").unwrap();
    assert_eq!(v.get(id, "k").unwrap()["a"], json!("9007199254740993"));
}

#[test]
fn every_frame_carries_a_correct_websocket_header() {
    let mut v = ore_views(EntityCacheConfig::default());
    let mut out = Vec::new();
    v.subscribe(SubId(1), &sub("OreRound/list", None), &mut out)
        .unwrap();
    let long = "x".repeat(70_000);
    v.apply(
        &mutation("OreRound", json!(1), json!({"blob": long}), &[], (1, 0)),
        &mut out,
    );
    for o in &out {
        let f = match o {
            Output::To { frame, .. } | Output::Broadcast { frame, .. } => frame,
        };
        let w = f.wire();
        assert_eq!(w[0], 0x82);
        let (len, hdr) = match w[1] {
            126 => (u16::from_be_bytes([w[2], w[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(w[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        assert_eq!(len, w.len() - hdr);
        assert_eq!(&w[hdr..], f.payload());
    }
}
