//! `stackcore replay` as a stack author uses it: mutations and frames out of a JSON-lines script,
//! `--expect` comparisons, malformed lines, exit codes, determinism.

mod replay_support;

use replay_support::*;
use serde_json::{json, Value};
use stackcore::replay::{OutKind, ReplayArgs};

fn demo_file(name: &str) -> String {
    write_lines(name, &demo_lines())
}

fn mutations_of(events: &str) -> String {
    let (code, out, err) = run(ReplayArgs::new(events));
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn mutations_are_printed_one_json_line_each_with_entity_key_patch_append_seq() {
    let events = demo_file("mutations.jsonl");
    let out = mutations_of(&events);
    let lines = parse_lines(&out);
    assert!(lines.len() >= 10, "{out}");
    let first = &lines[0];
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, ["append", "entity", "key", "patch", "seq"]);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with(r#"{"entity":"Token","key":"#),
        "fields in the documented order"
    );
    // The first event is `create` of mint A at slot 100, transaction 0.
    assert_eq!(first["key"], json!(MINT_A));
    assert_eq!(first["seq"], json!("100:000000000000"));
    assert_eq!(first["patch"]["info"]["symbol"], json!("DCAT"));
    assert_eq!(first["append"], json!([]));
    // Alice's buy (slot 101, txn 0): the seq comes from the slot and the transaction index.
    let buy = lines
        .iter()
        .find(|l| l["seq"] == json!("101:000000000000"))
        .expect("a mutation for the first buy");
    assert_eq!(buy["append"], json!(["events.buys"]));
    assert_eq!(
        buy["patch"]["trading"]["volume_sol"],
        json!(1_000_000_000u64)
    );
}

#[test]
fn stale_and_duplicate_events_produce_no_lines() {
    let all = demo_events();
    let out = mutations_of(&demo_file("stale.jsonl"));
    let seqs: Vec<String> = parse_lines(&out)
        .iter()
        .map(|l| l["seq"].as_str().unwrap().to_string())
        .collect();
    // Event 12 is a curve update at (102, 9) after (103, 4) was applied; event 13 re-delivers
    // Bob's buy (101, txn 1). Neither may appear a second time.
    assert_eq!(all[12]["slot"], json!(102));
    assert_eq!(seqs.iter().filter(|s| *s == "102:000000000009").count(), 0);
    assert_eq!(seqs.iter().filter(|s| *s == "101:000000000001").count(), 1);
}

#[test]
fn two_runs_of_the_same_input_are_byte_identical() {
    let events = demo_file("determinism.jsonl");
    assert_eq!(mutations_of(&events), mutations_of(&events));
    let frames = |view: &str| {
        let args = ReplayArgs {
            out: OutKind::Frames,
            view: Some(view.into()),
            subscribe_after: 4,
            ..ReplayArgs::new(events.clone())
        };
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "{err}");
        out
    };
    assert_eq!(frames("Token/list"), frames("Token/list"));
    assert_eq!(frames("Token/top"), frames("Token/top"));
}

#[test]
fn malformed_lines_are_reported_by_line_number_and_skipped() {
    let mut lines = demo_lines();
    let good = mutations_of(&write_lines("good.jsonl", &lines));
    lines.insert(1, "{not json".to_string());
    lines.insert(3, String::new());
    lines.insert(
        4,
        json!({"event_type": "launchpad::BuyIxState", "txn_index": 1, "data": {"data": {}, "accounts": {}}})
            .to_string(),
    );
    let path = write_lines("malformed.jsonl", &lines);
    let (code, out, err) = run(ReplayArgs::new(path.clone()));
    assert_eq!(code, 0, "skipped lines do not fail the run: {err}");
    assert_eq!(
        out, good,
        "the good lines give the same output as without the bad ones"
    );
    assert!(err.contains(&format!("{path}:2: not JSON")), "{err}");
    assert!(err.contains(&format!("{path}:5: missing `slot`")), "{err}");
    assert!(!err.contains(":4:"), "a blank line is not an error: {err}");
}

#[test]
fn strict_makes_a_malformed_line_fatal_with_exit_2() {
    let mut lines = demo_lines();
    lines.insert(2, "[]".to_string());
    let path = write_lines("strict.jsonl", &lines);
    let args = ReplayArgs {
        strict: true,
        ..ReplayArgs::new(path.clone())
    };
    let (code, _out, err) = run(args);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("{path}:3:")), "{err}");
}

#[test]
fn an_event_type_the_stack_does_not_know_is_reported_with_its_line() {
    let mut lines = demo_lines();
    lines.push(
        json!({"event_type": "launchpad::MigrateIxState", "slot": 200, "txn_index": 0,
               "data": {"data": {}, "accounts": {}}})
        .to_string(),
    );
    let n = lines.len();
    let path = write_lines("unknown-type.jsonl", &lines);
    let (code, _out, err) = run(ReplayArgs::new(path.clone()));
    assert_eq!(code, 0);
    assert!(err.contains(&format!("{path}:{n}:")), "{err}");
    assert!(err.contains("MigrateIxState"), "{err}");
}

#[test]
fn expect_with_the_same_output_exits_0() {
    let events = demo_file("expect-same.jsonl");
    let expected = scratch("expected-same.jsonl");
    std::fs::write(&expected, mutations_of(&events)).unwrap();
    let args = ReplayArgs {
        expect: Some(expected),
        ..ReplayArgs::new(events)
    };
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "", "nothing to report");
    assert!(err.contains("lines match"), "{err}");
}

#[test]
fn expect_catches_a_changed_field_and_names_its_json_path() {
    let events = demo_file("expect-changed.jsonl");
    let good = mutations_of(&events);
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    // Change Alice's first buy volume in the expected file (as text: the rest stays byte-equal).
    let i = lines
        .iter()
        .position(|l| l.contains(r#""seq":"101:000000000000""#))
        .unwrap();
    let changed = lines[i].replace(r#""volume_sol":1000000000"#, r#""volume_sol":999"#);
    assert_ne!(changed, lines[i]);
    lines[i] = changed;
    let expected = write_lines("expected-changed.jsonl", &lines);
    let args = ReplayArgs {
        expect: Some(expected.into()),
        ..ReplayArgs::new(events)
    };
    let (code, out, err) = run(args);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("patch.trading.volume_sol: expected 999, got 1000000000"),
        "{out}"
    );
    assert!(out.contains(&format!("output line {}", i + 1)), "{out}");
    // Alice's buy is the third event (index 2) on line 3 of the events file.
    assert!(out.contains("event 2, input line 3"), "{out}");
    assert!(
        out.contains(&format!("entity Token, key \"{MINT_A}\"")),
        "{out}"
    );
    assert_eq!(
        out.matches(": expected ").count(),
        1,
        "only the changed field: {out}"
    );
    assert!(err.contains("1 of"), "{err}");
}

#[test]
fn expect_reports_missing_and_unexpected_lines() {
    let events = demo_file("expect-count.jsonl");
    let good: Vec<String> = mutations_of(&events).lines().map(String::from).collect();

    let short = write_lines("expected-short.jsonl", &good[..good.len() - 1]);
    let args = ReplayArgs {
        expect: Some(short.into()),
        ..ReplayArgs::new(events.clone())
    };
    let (code, out, _) = run(args);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!("output line {}", good.len())),
        "{out}"
    );
    assert!(out.contains("not expected"), "{out}");

    let mut long = good.clone();
    long.push(good[0].clone());
    let long = write_lines("expected-long.jsonl", &long);
    let args = ReplayArgs {
        expect: Some(long.into()),
        ..ReplayArgs::new(events)
    };
    let (code, out, _) = run(args);
    assert_eq!(code, 1);
    assert!(out.contains("1 expected line(s) missing"), "{out}");
}

#[test]
fn expect_file_that_is_not_json_lines_is_exit_2() {
    let events = demo_file("expect-bad.jsonl");
    let bad = write_lines("expected-bad.jsonl", &["{\"a\":1}".into(), "nope".into()]);
    let args = ReplayArgs {
        expect: Some(bad.into()),
        ..ReplayArgs::new(events)
    };
    let (code, _, err) = run(args);
    assert_eq!(code, 2);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn frames_of_a_list_view_are_subscribed_then_snapshot_then_live_patches() {
    let events = demo_file("frames-list.jsonl");
    let after = 6u64;
    let args = ReplayArgs {
        out: OutKind::Frames,
        view: Some("Token/list".into()),
        subscribe_after: after,
        ..ReplayArgs::new(events.clone())
    };
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{err}");
    let frames = parse_lines(&out);
    assert_eq!(frames[0]["op"], json!("subscribed"));
    assert_eq!(frames[0]["view"], json!("Token/list"));
    assert_eq!(frames[1]["op"], json!("snapshot"));
    assert_eq!(frames[1]["entity"], json!("Token/list"));
    let rows = frames[1]["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "after 6 events only mint A exists");
    assert_eq!(rows[0]["key"], json!(MINT_A));
    assert_eq!(rows[0]["data"]["info"]["symbol"], json!("DCAT"));
    // Every mutation of the later events reaches the list subscriber as one patch frame.
    let all = parse_lines(&mutations_of(&events));
    let later: Vec<&Value> = all
        .iter()
        .filter(|m| {
            let seq = m["seq"].as_str().unwrap();
            let slot: u64 = seq.split(':').next().unwrap().parse().unwrap();
            slot >= 102
        })
        .collect();
    let patches: Vec<&Value> = frames[2..].iter().collect();
    assert_eq!(patches.len(), later.len());
    for (f, m) in patches.iter().zip(later) {
        assert_eq!(f["op"], json!("patch"));
        assert_eq!(f["seq"], m["seq"]);
        assert_eq!(f["key"], m["key"]);
    }
}

#[test]
fn frames_of_the_sorted_top_view_are_whole_entity_upserts() {
    let events = demo_file("frames-top.jsonl");
    let args = ReplayArgs {
        out: OutKind::Frames,
        view: Some("Token/top".into()),
        ..ReplayArgs::new(events)
    };
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{err}");
    let frames = parse_lines(&out);
    assert_eq!(
        frames[0],
        json!({"op": "subscribed", "view": "Token/top", "mode": "list",
               "sort": {"field": ["trading", "volume_sol"], "order": "desc"}})
    );
    // Subscribed before any event: the window is empty.
    let live = match frames[1]["op"].as_str() {
        Some("snapshot") => {
            assert_eq!(frames[1]["data"], json!([]));
            &frames[2..]
        }
        _ => &frames[1..],
    };
    assert!(live.len() >= 10, "{out}");
    for f in live {
        assert_eq!(f["entity"], json!("Token/top"));
        match f["op"].as_str() {
            // A sorted view sends whole entities: identity and everything merged so far.
            Some("upsert") => assert_eq!(f["data"]["id"]["mint"], f["key"], "{f}"),
            Some("delete") => assert_eq!(f["data"], Value::Null),
            _ => panic!("unexpected frame {f}"),
        }
    }
    let last_a = live
        .iter()
        .rev()
        .find(|f| f["key"] == json!(MINT_A))
        .unwrap();
    assert_eq!(
        last_a["data"]["trading"]["volume_sol"],
        json!(4_100_000_000u64)
    );
    assert_eq!(last_a["data"]["info"]["symbol"], json!("DCAT"));
}

#[test]
fn bad_invocations_exit_2_with_one_clear_line() {
    let events = demo_file("bad-invocations.jsonl");
    let cases = [
        (
            ReplayArgs {
                stack: Some("/nonexistent/x.stack.json".into()),
                ..ReplayArgs::new(events.clone())
            },
            "stack /nonexistent/x.stack.json",
        ),
        (
            ReplayArgs::new("/nonexistent/events.jsonl"),
            "events /nonexistent/events.jsonl",
        ),
        (ReplayArgs::new("synthetic:1"), "synthetic:SEED:COUNT"),
        (
            ReplayArgs {
                out: OutKind::Frames,
                ..ReplayArgs::new(events.clone())
            },
            "--view",
        ),
        (
            ReplayArgs {
                out: OutKind::Frames,
                view: Some("Token/nope".into()),
                ..ReplayArgs::new(events.clone())
            },
            "Token/nope",
        ),
    ];
    for (args, needle) in cases {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{needle}: {err}");
        assert_eq!(out, "");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "`{err}` should name {needle}");
    }
}

#[test]
fn a_stack_file_that_is_not_a_stack_is_exit_2() {
    let events = demo_file("bad-stack-events.jsonl");
    let bad = scratch("bad.stack.json");
    std::fs::write(&bad, r#"{"stack_name": 3}"#).unwrap();
    let args = ReplayArgs {
        stack: Some(bad),
        ..ReplayArgs::new(events)
    };
    let (code, _, err) = run(args);
    assert_eq!(code, 2);
    assert!(err.contains("bad.stack.json"), "{err}");
}

#[test]
fn frames_of_a_state_view_follow_only_the_subscribed_key() {
    let events = demo_file("frames-state.jsonl");
    let frames = |key: Option<&str>| {
        let args = ReplayArgs {
            out: OutKind::Frames,
            view: Some("Token/state".into()),
            key: key.map(String::from),
            ..ReplayArgs::new(events.clone())
        };
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "{err}");
        parse_lines(&out)
    };
    let b = frames(Some(MINT_B));
    assert_eq!(b[0]["op"], json!("subscribed"));
    assert_eq!(b[0]["mode"], json!("state"));
    // The engine's views send an empty snapshot frame here (protocol.md §1.5 says the reference
    // sends none for zero rows); either is accepted.
    let live: Vec<&Value> = b[1..]
        .iter()
        .filter(|f| !(f["op"] == json!("snapshot") && f["data"] == json!([])))
        .collect();
    assert!(live.len() > 3);
    for f in live {
        assert_eq!(f["op"], json!("patch"));
        assert_eq!(f["key"], json!(MINT_B), "{f}");
    }
    // Without a key a state subscription watches "", which never receives data.
    let none = frames(None);
    assert!(
        none[1..]
            .iter()
            .all(|f| f["op"] == json!("snapshot") && f["data"] == json!([])),
        "{none:?}"
    );
}
