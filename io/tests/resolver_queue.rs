//! The worker never waits for resolvers: a full resolver queue drops (and counts) requests while
//! the worker goes on; a server whose stack has resolvers starts and stops cleanly.

mod resolver_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use resolver_support::*;
use serde_json::json;
use stackcore_engine::spec::HttpMethod;
use stackcore_io::channels::{sub_id, ToWorker};
use stackcore_io::config::ServerConfig;
use stackcore_io::metrics::Metrics;
use stackcore_io::resolver;
use stackcore_io::topology::{self, Plan};
use stackcore_io::worker::WorkerResolver;

fn url_stack() -> stackcore_engine::Stack {
    thing_stack(json!([{
        "resolver": {"url": {"url_source": {"FieldPath": "url"}, "method": "get"}},
        "strategy": "SetOnce", "extracts": [{"target_path": "meta"}]
    }]))
}

#[test]
fn a_full_resolver_queue_drops_and_counts_requests_and_the_worker_never_blocks() {
    let metrics = Arc::new(Metrics::new());
    // Capacity 2 and nobody draining it.
    let (link, _requests) = resolver::queue(2, metrics.clone());
    let (_results_tx, results) = crossbeam_channel::bounded(1);
    let (mut w, inbox) = worker(
        Arc::new(url_stack()),
        Some(WorkerResolver {
            link: link.clone(),
            results,
        }),
        metrics.clone(),
    );
    assert!(w.handle(ToWorker::Subscribe {
        sub: sub_id(0, 1),
        req: subscription("Thing/list"),
        max_snapshot_rows: None,
    }));
    let t = Instant::now();
    for id in 0..50 {
        assert!(w.handle_decoded(
            "p::AState",
            &thing(id, json!({"url": format!("http://127.0.0.1:9/{id}")})),
            &acct(id + 1)
        ));
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the worker did not wait"
    );
    assert_eq!(load(&metrics.resolver_requests_total), 2);
    assert_eq!(load(&metrics.resolver_requests_dropped_total), 48);
    // Every update still produced its frame.
    let patches = inbox
        .try_iter()
        .filter_map(|m| frame_json(&m))
        .filter(|f| f["op"] == "patch");
    assert_eq!(patches.count(), 50);
    assert!(!link.submit(url_request(HttpMethod::Get, "http://127.0.0.1:9/x", None)));
}

#[test]
fn without_a_resolver_thread_requests_are_dropped_and_counted() {
    let metrics = Arc::new(Metrics::new());
    let (mut w, _inbox) = worker(Arc::new(url_stack()), None, metrics.clone());
    assert!(w.handle_decoded(
        "p::AState",
        &thing(1, json!({"url": "http://127.0.0.1:9/1"})),
        &acct(1)
    ));
    assert_eq!(load(&metrics.resolver_requests_dropped_total), 1);
}

#[test]
fn a_server_whose_stack_has_resolvers_starts_and_shuts_down_promptly() {
    let running = topology::start(Plan {
        stack: Some(Arc::new(url_stack())),
        config: ServerConfig::default(),
        source: None,
        record: None,
    })
    .unwrap();
    assert!(running
        .metrics()
        .render()
        .contains("queue_depth{queue=\"resolver0\"}"));
    let t = Instant::now();
    running.shutdown();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
