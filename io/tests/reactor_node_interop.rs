//! The real npm `hyperstack-typescript` 0.6.9 client (tests/node/client.mjs, on Node with the
//! `ws` package) against a reactor with a fake worker: subscribe to OreRound/list and
//! OreRound/latest (take 1), snapshot + live patches, merged entities, unsubscribe, reconnect.
//! Needs `node` and `npm` on PATH; installs tests/node/node_modules with npm when missing.

#[path = "../../tests/node_support/mod.rs"]
mod node_support;
mod reactor_support;

use node_support::{ensure_npm_install, node_client};
use reactor_support::*;
use serde_json::json;
use stackcore_io::config::WebSocketConfig;

#[test]
fn the_typescript_client_merges_snapshot_and_patches_then_unsubscribes_and_reconnects() {
    ensure_npm_install();
    let s = Server::start(WebSocketConfig::default(), 2);
    let child = node_client(&s.url(), &[("HS_PATCHES", "3")]);
    wait_for("both subscriptions", || s.worker_sub_count() == 2);
    // The client's options reach the worker: `use({take: 1})` on latest, nothing on list.
    let mut reqs = s.worker_requests();
    reqs.sort_by(|a, b| a.view.cmp(&b.view));
    assert_eq!(
        reqs.iter()
            .map(|r| (r.view.as_str(), r.take))
            .collect::<Vec<_>>(),
        [("OreRound/latest", Some(1)), ("OreRound/list", None)]
    );
    for (view, key, n) in [
        ("OreRound/list", "k0", 1),
        ("OreRound/list", "k1", 2),
        ("OreRound/list", "k0", 3),
        ("OreRound/latest", "k0", 4),
        ("OreRound/latest", "k0", 5),
        ("OreRound/latest", "k0", 6),
    ] {
        s.broadcast(view, key, &patch_frame(view, key, n));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node client failed: {:?}", out.status);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Snapshot row k0 {"n":0}, then the patches above, deep-merged by the client.
    assert_eq!(
        report["views"],
        json!({
            "OreRound/list": {"k0": {"n": 3}, "k1": {"n": 2}},
            "OreRound/latest": {"k0": {"n": 6}},
        })
    );
    assert_eq!(report["frames"]["OreRound/latest"]["subscribed"], 1);
    assert_eq!(report["frames"]["OreRound/latest"]["snapshot"], 1);
    assert_eq!(report["socketIssues"], json!([]));
    assert_eq!(report["reconnected"], true);
    wait_for("the client's subscriptions released", || {
        s.worker_sub_count() == 0 && s.gauge(|m| &m.connected_clients) == 0
    });
}

#[test]
fn the_typescript_client_reconnects_after_a_slow_consumer_close_4008() {
    ensure_npm_install();
    let s = Server::start(
        WebSocketConfig::default()
            .with_max_outbound_bytes(64 * 1024)
            .with_message_queue_size(4),
        1,
    );
    let child = node_client(&s.url(), &[("HS_MODE", "slow")]);
    wait_for("the subscription", || s.worker_sub_count() == 1);
    // Bursts far beyond the socket buffers, until the reactor gives up on the client.
    let pad = "x".repeat(60_000);
    let mut n = 0u64;
    while s.gauge(|m| &m.slow_consumers_closed_total) == 0 {
        assert!(n < 20_000, "the client was never found slow");
        for _ in 0..200 {
            n += 1;
            let f = stackcore_engine::frame::SharedFrame::binary(
                format!(r#"{{"mode":"list","entity":"OreRound/list","op":"patch","key":"k{}","data":{{"n":{n},"pad":"{pad}"}}}}"#, n % 4)
                    .as_bytes(),
            );
            s.broadcast("OreRound/list", "k", &f);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    closed_with_fatal_issue_then_reconnected(child, 4008, "slow-consumer");
}

#[test]
fn the_typescript_client_reconnects_after_an_egress_limit_close_4029() {
    ensure_npm_install();
    let s = Server::start(
        WebSocketConfig::default().with_limits(stackcore_io::reactor::auth::ConnectionLimits {
            max_bytes_per_minute: Some(8 * 1024),
            ..Default::default()
        }),
        1,
    );
    let child = node_client(&s.url(), &[("HS_MODE", "slow")]);
    wait_for("the subscription", || s.worker_sub_count() == 1);
    // 1 KiB frames until the client passes its 8 KiB budget; then nothing more, so the
    // reconnected client's fresh budget covers its `subscribed` frame and snapshot.
    let pad = "x".repeat(1_000);
    let mut n = 0u64;
    while s.gauge(|m| &m.egress_limited_closed_total) == 0 {
        assert!(n < 100, "the client was never over its egress budget");
        n += 1;
        let f = stackcore_engine::frame::SharedFrame::binary(
            format!(r#"{{"mode":"list","entity":"OreRound/list","op":"patch","key":"k0","data":{{"n":{n},"pad":"{pad}"}}}}"#)
                .as_bytes(),
        );
        s.broadcast("OreRound/list", "k0", &f);
        wait_for("the frame is handled", || {
            s.gauge(|m| &m.frames_sent_total) >= n + 2
                || s.gauge(|m| &m.egress_limited_closed_total) > 0
        });
    }
    closed_with_fatal_issue_then_reconnected(child, 4029, "egress-limit-exceeded");
}

/// The node client's report: its first close had `code` and `reason`, the socket issue before it
/// was the fatal `reason`, and the client went through `reconnecting` back to `connected`.
fn closed_with_fatal_issue_then_reconnected(child: std::process::Child, code: u16, reason: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node client failed: {:?}", out.status);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["closes"][0], json!({"code": code, "reason": reason}));
    assert_eq!(report["socketIssues"][0]["error"], reason);
    assert_eq!(report["socketIssues"][0]["fatal"], true);
    let states: Vec<&str> = report["states"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let reconnecting = states.iter().position(|s| *s == "reconnecting");
    assert!(
        reconnecting.is_some(),
        "the client did not try to reconnect: {states:?}"
    );
    assert!(
        states[reconnecting.unwrap()..].contains(&"connected"),
        "the client did not reconnect: {states:?}"
    );
}
