//! Every client message and its error paths, over a real socket with a tungstenite client.

mod reactor_support;

use reactor_support::*;
use stackcore_io::config::WebSocketConfig;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

fn server() -> Server {
    Server::start(WebSocketConfig::default(), 2)
}

#[test]
fn subscribe_gets_subscribed_snapshot_then_live_frames_as_binary() {
    let s = server();
    let mut c = connect(&s.url());
    send(
        &mut c,
        r#"{"type":"subscribe","view":"OreRound/list","take":1,"withSnapshot":true,"filters":{}}"#,
    );
    let m = next_msg(&mut c);
    assert!(
        matches!(m, Message::Binary(_)),
        "data frames are binary: {m:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&m.into_data()).unwrap();
    assert_eq!(v["op"], "subscribed");
    assert_eq!(v["view"], "OreRound/list");
    assert_eq!(next_json(&mut c)["op"], "snapshot");
    for n in 1..=3 {
        s.broadcast(
            "OreRound/list",
            &format!("k{n}"),
            &patch_frame("OreRound/list", &format!("k{n}"), n),
        );
    }
    for n in 1..=3 {
        let v = next_json(&mut c);
        assert_eq!(
            (v["op"].as_str(), v["key"].clone()),
            (Some("patch"), format!("k{n}").into())
        );
    }
    // Metrics are published once per reactor turn, possibly after the client read the frames.
    wait_for("5 frames counted as sent", || {
        s.gauge(|m| &m.frames_sent_total) >= 5
    });
    wait_for("one subscription counted", || {
        s.gauge(|m| &m.subscriptions) == 1
    });
}

#[test]
fn keyed_list_subscription_receives_only_its_key() {
    let s = server();
    let mut c = connect(&s.url());
    subscribe(&mut c, "OreRound/list", Some("a"));
    s.broadcast("OreRound/list", "b", &patch_frame("OreRound/list", "b", 1));
    s.broadcast("OreRound/list", "a", &patch_frame("OreRound/list", "a", 2));
    let v = next_json(&mut c);
    assert_eq!(v["key"], "a");
    assert_eq!(v["data"]["n"], 2);
}

#[test]
fn keyless_state_subscription_matches_only_the_empty_key() {
    let s = server();
    let mut c = connect(&s.url());
    send(&mut c, r#"{"type":"subscribe","view":"OreRound/state"}"#);
    assert_eq!(next_json(&mut c)["mode"], "state");
    assert_eq!(next_json(&mut c)["op"], "snapshot");
    s.broadcast(
        "OreRound/state",
        "x",
        &patch_frame("OreRound/state", "x", 1),
    );
    s.broadcast("OreRound/state", "", &patch_frame("OreRound/state", "", 2));
    let v = next_json(&mut c);
    assert_eq!(
        v["data"]["n"], 2,
        "the keyed frame must not reach a keyless state sub: {v}"
    );
    // A keyed state subscription receives its key.
    let mut k = connect(&s.url());
    subscribe(&mut k, "OreRound/state", Some("x"));
    s.broadcast(
        "OreRound/state",
        "x",
        &patch_frame("OreRound/state", "x", 3),
    );
    assert_eq!(next_json(&mut k)["data"]["n"], 3);
}

#[test]
fn duplicate_subscribe_is_idempotent() {
    let s = server();
    let mut c = connect(&s.url());
    subscribe(&mut c, "OreRound/list", None);
    send(
        &mut c,
        r#"{"type":"subscribe","view":"OreRound/list","take":5}"#,
    );
    // The duplicate produced nothing: the next frame is the live one, delivered once.
    s.broadcast("OreRound/list", "k", &patch_frame("OreRound/list", "k", 7));
    s.broadcast("OreRound/list", "k", &patch_frame("OreRound/list", "k", 8));
    assert_eq!(next_json(&mut c)["data"]["n"], 7);
    assert_eq!(next_json(&mut c)["data"]["n"], 8);
    assert_eq!(s.worker_sub_count(), 1);
}

#[test]
fn unsubscribe_stops_frames_and_unknown_unsubscribe_is_a_noop() {
    let s = server();
    let mut c = connect(&s.url());
    subscribe(&mut c, "OreRound/list", None);
    subscribe(&mut c, "OreRound/latest", None);
    send(&mut c, r#"{"type":"unsubscribe","view":"OreRound/list"}"#);
    send(
        &mut c,
        r#"{"type":"unsubscribe","view":"Nope/list","key":"z"}"#,
    );
    wait_for("worker unsubscribe", || s.worker_sub_count() == 1);
    s.broadcast("OreRound/list", "k", &patch_frame("OreRound/list", "k", 1));
    s.broadcast(
        "OreRound/latest",
        "k",
        &patch_frame("OreRound/latest", "k", 2),
    );
    let v = next_json(&mut c);
    assert_eq!(v["entity"], "OreRound/latest", "{v}");
    assert_eq!(s.gauge(|m| &m.subscriptions), 1);
}

#[test]
fn malformed_unknown_type_and_unknown_view_get_error_frames_and_the_connection_stays() {
    let s = server();
    let mut c = connect(&s.url());
    for (msg, code) in [
        ("{not json", "invalid-message"),
        (
            r#"{"type":"bogus","view":"OreRound/list"}"#,
            "unknown-message-type",
        ),
        (r#"{"type":"subscribe","view":"Nope/list"}"#, "unknown-view"),
        (r#"{"type":"subscribe"}"#, "invalid-message"),
    ] {
        send(&mut c, msg);
        let m = next_msg(&mut c);
        let Message::Text(t) = m else {
            panic!("control messages are text: {m:?}")
        };
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"], code, "{msg}");
        assert_eq!(v["code"], code);
        assert_eq!(v["retryable"], false);
        assert_eq!(v["fatal"], false);
        assert!(v["message"].is_string());
    }
    // Still open and serving.
    subscribe(&mut c, "OreRound/list", None);
}

#[test]
fn legacy_bare_subscribe_subscribes() {
    let s = server();
    let mut c = connect(&s.url());
    send(&mut c, r#"{"view":"OreRound/list","key":"q"}"#);
    assert_eq!(next_json(&mut c)["op"], "subscribed");
    assert_eq!(next_json(&mut c)["data"][0]["key"], "q");
}

#[test]
fn app_ping_and_binary_input_get_no_reply() {
    let s = server();
    let mut c = connect(&s.url());
    send(&mut c, r#"{"type":"ping"}"#);
    c.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    subscribe(&mut c, "OreRound/list", None); // the first reply is the subscribe's
}

#[test]
fn refresh_auth_without_signed_sessions_answers_token_invalid() {
    let s = server();
    let mut c = connect(&s.url());
    send(&mut c, r#"{"type":"refresh_auth","token":"abc"}"#);
    let m = next_msg(&mut c);
    assert!(matches!(m, Message::Text(_)));
    let v: serde_json::Value = serde_json::from_slice(&m.into_data()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"success":false,"error":"token-invalid"})
    );
}

#[test]
fn worker_rejection_is_sent_as_a_retryable_error() {
    let s = server();
    let mut c = connect(&s.url());
    send(&mut c, r#"{"type":"subscribe","view":"Huge/list"}"#);
    let v = next_json(&mut c);
    assert_eq!(v["error"], "snapshot-limit-exceeded");
    assert_eq!(v["retryable"], true);
    assert_eq!(v["fatal"], false);
    // The refused sub-key is free again.
    send(&mut c, r#"{"type":"subscribe","view":"Huge/list"}"#);
    assert_eq!(next_json(&mut c)["error"], "snapshot-limit-exceeded");
}

#[test]
fn websocket_ping_is_answered_with_pong() {
    let s = server();
    let mut c = connect(&s.url());
    c.send(Message::Ping(b"hi".to_vec().into())).unwrap();
    match c.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"hi"),
        m => panic!("expected the pong, got {m:?}"),
    }
}

#[test]
fn oversized_inbound_message_closes_with_1009() {
    let s = Server::start(WebSocketConfig::default().with_max_message_size(1024), 1);
    let mut c = connect(&s.url());
    send(
        &mut c,
        &format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(4096)),
    );
    let (code, _) = read_until_close(&mut c).expect("close frame");
    assert_eq!(code, u16::from(CloseCode::Size));
}

#[test]
fn disconnect_unsubscribes_everything() {
    let s = server();
    let mut c = connect(&s.url());
    subscribe(&mut c, "OreRound/list", None);
    subscribe(&mut c, "OreRound/state", Some("k"));
    subscribe(&mut c, "OreRound/latest", Some("k"));
    assert_eq!(s.worker_sub_count(), 3);
    drop(c);
    wait_for("worker unsubscribes", || s.worker_sub_count() == 0);
    wait_for("gauges back", || {
        s.gauge(|m| &m.subscriptions) == 0 && s.gauge(|m| &m.connected_clients) == 0
    });
}

#[test]
fn client_close_is_answered_and_the_connection_released() {
    let s = server();
    let mut c = connect(&s.url());
    subscribe(&mut c, "OreRound/list", None);
    c.close(None).unwrap();
    let _ = read_until_close(&mut c);
    wait_for("connection released", || {
        s.gauge(|m| &m.connected_clients) == 0 && s.worker_sub_count() == 0
    });
}

#[test]
fn subscription_limit_is_enforced_per_connection() {
    use stackcore_io::reactor::auth::{AuthConfig, ConnectionLimits};
    let cfg = WebSocketConfig::default().with_auth(AuthConfig::allow_all().with_limits(
        ConnectionLimits {
            max_connections_per_subject: None,
            max_subscriptions_per_connection: 2,
            ..Default::default()
        },
    ));
    let s = Server::start(cfg, 1);
    let mut c = connect(&s.url());
    subscribe(&mut c, "OreRound/list", None);
    subscribe(&mut c, "OreRound/latest", None);
    send(
        &mut c,
        r#"{"type":"subscribe","view":"OreRound/state","key":"k"}"#,
    );
    let v = next_json(&mut c);
    assert_eq!(v["error"], "subscription-limit-exceeded");
    assert_eq!(v["retryable"], true);
    assert_eq!(v["fatal"], false);
    assert!(v["suggested_action"].is_string());
    send(&mut c, r#"{"type":"unsubscribe","view":"OreRound/list"}"#);
    subscribe(&mut c, "OreRound/state", Some("k"));
}
