//! URL resolvers end to end: a worker's VM emits the request, the resolver thread fetches it from
//! a local HTTP server, and the value comes back into the entity and out as a patch frame.

mod resolver_support;

use std::sync::Arc;
use std::time::Duration;

use resolver_support::*;
use serde_json::json;
use stackcore_engine::Update;
use stackcore_io::channels::{ToReactor, ToWorker};

fn frames(inbox: &crossbeam_channel::Receiver<ToReactor>) -> Vec<serde_json::Value> {
    inbox.try_iter().filter_map(|m| frame_json(&m)).collect()
}

#[test]
fn url_resolver_value_lands_in_entity_state_and_is_streamed_as_a_patch() {
    let server =
        FakeServer::start(|_| Reply::Body(200, r#"{"data": {"name": "Alpha", "n": 7}}"#.into()));
    let stack = Arc::new(thing_stack(json!([{
        "resolver": {"url": {"url_source": {"FieldPath": "url"}, "method": "get", "extract_path": "data"}},
        "strategy": "SetOnce",
        "extracts": [{"target_path": "meta.name", "source_path": "data.name"}, {"target_path": "meta.data"}]
    }])));
    let r = start_resolver_now(test_config());
    let (mut w, inbox) = subscribed_worker(stack.clone(), &r, "Thing/list");
    assert!(w.handle_decoded(
        "p::AState",
        &thing(1, json!({"url": server.url("/meta/1")})),
        &acct(10)
    ));
    let before = frames(&inbox);
    assert!(
        before.iter().all(|f| f["data"].get("meta").is_none()),
        "{before:?}"
    );

    let msg = r
        .results
        .recv_timeout(Duration::from_secs(10))
        .expect("a resolver result");
    assert!(w.handle(msg));
    let after = frames(&inbox);
    let patch = after.last().expect("a frame for the resolved value");
    assert_eq!(patch["op"], "patch");
    assert_eq!(patch["key"], "1");
    // `source_path` selects inside the response; an extract without one gets the extract_path.
    assert_eq!(
        patch["data"]["meta"],
        json!({"name": "Alpha", "data": {"name": "Alpha", "n": 7}})
    );
    let state = w.vm().entity_state(&stack, "Thing", &json!(1)).unwrap();
    assert_eq!(state["meta"]["name"], "Alpha");
    assert_eq!(server.seen()[0].method, "GET");
    assert_eq!(server.seen()[0].path, "/meta/1");
    assert_eq!(load(&r.metrics.resolver_results_total), 1);

    // SetOnce and filled: the next update of the entity does not ask again.
    assert!(w.handle_decoded(
        "p::AState",
        &thing(1, json!({"url": server.url("/meta/1")})),
        &acct(11)
    ));
    assert_eq!(load(&r.metrics.resolver_requests_total), 1);
}

#[test]
fn slot_scheduled_url_resolver_fetches_only_once_its_slot_arrives() {
    let server = FakeServer::start(|_| Reply::Body(200, r#"{"seed": "s33d"}"#.into()));
    let stack = Arc::new(thing_stack(json!([{
        "resolver": {"url": {"url_source": {"FieldPath": "url"}, "method": "get", "extract_path": "seed"}},
        "strategy": "SetOnce",
        "extracts": [{"target_path": "seed", "source_path": "seed"}],
        "schedule_at": "at"
    }])));
    let r = start_resolver_now(test_config());
    let (mut w, inbox) = subscribed_worker(stack.clone(), &r, "Thing/list");
    assert!(w.handle_decoded(
        "p::AState",
        &thing(1, json!({"url": server.url("/seed"), "at": 20})),
        &acct(10)
    ));
    assert!(w.handle(ToWorker::Update(Update::Slot {
        slot: 19,
        timestamp: 1
    })));
    assert_eq!(
        load(&r.metrics.resolver_requests_total),
        0,
        "not before slot 20"
    );
    assert_eq!(server.hits(), 0);

    assert!(w.handle(ToWorker::Update(Update::Slot {
        slot: 20,
        timestamp: 2
    })));
    assert_eq!(load(&r.metrics.resolver_requests_total), 1);
    let msg = r
        .results
        .recv_timeout(Duration::from_secs(10))
        .expect("a resolver result");
    assert!(w.handle(msg));
    let patch = frames(&inbox).pop().unwrap();
    assert_eq!(patch["data"]["seed"], "s33d");
    // Applied in the context of the slot that fired it.
    assert!(patch["seq"].as_str().unwrap().starts_with("20:"), "{patch}");
    assert_eq!(
        w.vm().entity_state(&stack, "Thing", &json!(1)).unwrap()["seed"],
        "s33d"
    );
}
