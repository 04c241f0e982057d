//! The per-session limits of `../shared/protocol.md` §1.7/§1.8: inbound message rate, egress
//! bytes, snapshot rows per subscription, connections per IP and per origin.
//!
//! No assertion depends on timing: the rate windows are the default 60 s, far longer than any
//! test, and each test counts messages or bytes exactly.

mod reactor_support;
mod resolver_support;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use reactor_support::*;
use serde_json::{json, Value};
use stackcore_engine::frame::SharedFrame;
use stackcore_engine::view::SubId;
use stackcore_engine::{EntityCacheConfig, StateTableConfig};
use stackcore_io::channels::ToWorker;
use stackcore_io::config::WebSocketConfig;
use stackcore_io::metrics::Metrics;
use stackcore_io::reactor::auth::{sign_jwt, AuthConfig, ConnectionLimits, SignedSessionConfig};
use stackcore_io::worker::{Worker, WorkerContext};
use tungstenite::handshake::HandshakeError;
use tungstenite::Message;

fn limited(limits: ConnectionLimits) -> WebSocketConfig {
    WebSocketConfig::default().with_limits(limits)
}

/// Reads until the close frame; returns every text message (parsed), the number of binary
/// messages, and the close code and reason.
fn read_to_close(c: &mut Client) -> (Vec<Value>, usize, (u16, String)) {
    let (mut texts, mut binaries) = (Vec::new(), 0);
    loop {
        match c.read() {
            Ok(Message::Text(t)) => texts.push(serde_json::from_str(&t).unwrap()),
            Ok(Message::Binary(_)) => binaries += 1,
            Ok(Message::Close(f)) => {
                let _ = c.flush();
                let f = f.expect("a close frame with a code");
                return (texts, binaries, (f.code.into(), f.reason.to_string()));
            }
            Ok(_) => {}
            Err(e) => panic!("connection ended without a close frame: {e}"),
        }
    }
}

/// Expects the upgrade to be refused; returns (status, X-Error-Code, JSON body).
fn refused(url: &str, headers: &[(&str, &str)]) -> (u16, String, Value) {
    match try_connect(url, headers) {
        Ok(_) => panic!("upgrade unexpectedly accepted"),
        Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            let body = serde_json::from_slice(resp.body().as_deref().expect("a body")).unwrap();
            let code = resp.headers()["x-error-code"].to_str().unwrap().to_string();
            (resp.status().as_u16(), code, body)
        }
        Err(e) => panic!("unexpected handshake error {e}"),
    }
}

#[test]
fn a_client_over_its_message_rate_gets_a_fatal_rate_limit_issue_then_is_closed() {
    let s = Server::start(
        limited(ConnectionLimits {
            max_messages_per_minute: Some(3),
            ..Default::default()
        }),
        1,
    );
    let mut c = connect(&s.url());
    // Three messages are within the budget, and each is answered.
    subscribe(&mut c, "OreRound/list", None);
    subscribe(&mut c, "OreRound/latest", None);
    subscribe(&mut c, "OreRound/state", Some("k"));
    // The fourth is not handled: the fatal issue, then the close.
    send(
        &mut c,
        r#"{"type":"subscribe","view":"OreRound/state","key":"j"}"#,
    );
    let (texts, binaries, close) = read_to_close(&mut c);
    assert_eq!(binaries, 0, "the fourth subscribe was answered");
    assert_eq!(
        texts,
        [json!({"type":"error","error":"rate-limit-exceeded",
            "message":"Rate limit exceeded for inbound websocket messages. Please retry after 60s.",
            "code":"rate-limit-exceeded","retryable":true,"retry_after":60,
            "suggested_action":"Wait 60s before retrying the request","fatal":true})]
    );
    assert_eq!(close, (4029, "rate-limit-exceeded".to_string()));
    assert_eq!(s.gauge(|m| &m.rate_limited_closed_total), 1);
    wait_for("the connection and its subscriptions are released", || {
        s.gauge(|m| &m.connected_clients) == 0 && s.worker_sub_count() == 0
    });
    // The budget is per connection: a new one starts with a full budget.
    let mut d = connect(&s.url());
    subscribe(&mut d, "OreRound/list", None);
    assert_eq!(s.gauge(|m| &m.rate_limited_closed_total), 1);
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// A server taking signed-session tokens (signed by [`key`]), with these server-side limits.
fn signed_server(limits: ConnectionLimits) -> Server {
    let cfg = SignedSessionConfig::new(key().verifying_key(), "hs", "ore");
    Server::start(
        WebSocketConfig::default().with_auth(AuthConfig::signed_session(cfg).with_limits(limits)),
        1,
    )
}

fn token(sub: &str, limits: Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    sign_jwt(
        &key(),
        None,
        &json!({"iss":"hs","sub":sub,"aud":"ore","iat":now,"exp":now+600,"limits":limits}),
    )
}

#[test]
fn a_client_over_its_egress_budget_is_removed() {
    const BUDGET: usize = 2_000;
    let s = signed_server(ConnectionLimits::default());
    // Alice's token carries an egress budget; Bob's none (and the server has none).
    let alice_url = format!(
        "ws://{}/?hs_token={}",
        s.addr,
        token("alice", json!({ "max_bytes_per_minute": BUDGET }))
    );
    let bob_url = format!("ws://{}/?hs_token={}", s.addr, token("bob", json!({})));
    let mut alice = try_connect(&alice_url, &[]).unwrap();
    let mut bob = try_connect(&bob_url, &[]).unwrap();
    subscribe(&mut alice, "OreRound/list", None);
    subscribe(&mut bob, "OreRound/list", None);

    let pad = "p".repeat(300);
    let patch = |n: u64| {
        SharedFrame::binary(
            format!(r#"{{"mode":"list","entity":"OreRound/list","op":"patch","key":"k","data":{{"n":{n},"pad":"{pad}"}}}}"#)
                .as_bytes(),
        )
    };
    // Payload bytes counted so far: the `subscribed` frame and the one-row snapshot.
    let used = subscribed_frame("OreRound/list", "list").payload().len()
        + snapshot_frame("OreRound/list", "list", "k0")
            .payload()
            .len();
    let per_patch = patch(1).payload().len();
    let fit = (BUDGET - used) / per_patch;
    assert!(
        (1..10).contains(&fit),
        "the test needs a budget between 1 and 10 patches"
    );
    for n in 1..=10 {
        s.broadcast("OreRound/list", "k", &patch(n));
    }
    // Bob gets all ten.
    for n in 1..=10 {
        assert_eq!(next_json(&mut bob)["data"]["n"], n);
    }
    // Alice gets those within her budget, then the error, then the close.
    let (texts, binaries, close) = read_to_close(&mut alice);
    assert_eq!(binaries, fit, "patches within the budget");
    assert_eq!(texts.len(), 1, "{texts:?}");
    let e = &texts[0];
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"], "egress-limit-exceeded");
    assert_eq!(e["code"], "egress-limit-exceeded");
    assert_eq!(e["fatal"], true);
    assert_eq!(e["retryable"], true);
    assert_eq!(e["retry_after"], 60);
    assert_eq!(close, (4029, "egress-limit-exceeded".to_string()));
    assert_eq!(s.gauge(|m| &m.egress_limited_closed_total), 1);
    // Bob is still served.
    s.broadcast("OreRound/list", "k", &patch(11));
    assert_eq!(next_json(&mut bob)["data"]["n"], 11);
    wait_for("alice is released", || {
        s.gauge(|m| &m.connected_clients) == 1 && s.worker_sub_count() == 1
    });
}

/// A server whose worker is the real [`Worker`] on a one-entity stack holding three `Thing`s.
fn thing_server(config: WebSocketConfig) -> Server {
    let stack = Arc::new(resolver_support::thing_stack(json!([])));
    let views = vec!["Thing/list".to_string(), "Thing/state".to_string()];
    Server::start_with(config, 1, views, move |rx, reactors| {
        let mut w = Worker::new(WorkerContext {
            stack,
            state_table: StateTableConfig::default(),
            vm_limits: Default::default(),
            entity_cache: EntityCacheConfig::default(),
            reactors,
            metrics: Arc::new(Metrics::new()),
            pin: None,
            resolver: None,
        });
        for id in 1..=3 {
            let event = resolver_support::thing(id, json!({"url": format!("u{id}")}));
            assert!(w.handle_decoded("p::AState", &event, &resolver_support::acct(10 + id)));
        }
        while let Ok(msg) = rx.recv() {
            if matches!(msg, ToWorker::Unsubscribe { sub } if sub == SubId(u64::MAX)) {
                return;
            }
            if !w.handle(msg) {
                return;
            }
            w.wake_reactors();
        }
    })
}

fn snapshot_keys(v: &Value) -> Vec<String> {
    assert_eq!(v["op"], "snapshot", "{v}");
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_snapshot_over_max_snapshot_rows_fails_only_that_subscription() {
    let s = thing_server(limited(ConnectionLimits {
        max_snapshot_rows: Some(2),
        ..Default::default()
    }));
    let mut c = connect(&s.url());
    // Three rows, two allowed: refused with the non-fatal issue and nothing else.
    send(&mut c, r#"{"type":"subscribe","view":"Thing/list"}"#);
    assert_eq!(
        next_json(&mut c),
        json!({"type":"error","error":"snapshot-limit-exceeded",
            "message":"Snapshot limit exceeded: requested 3 rows, max allowed is 2 for this connection",
            "code":"snapshot-limit-exceeded","retryable":true,
            "suggested_action":"Request fewer rows or lower the snapshotLimit on the subscription",
            "fatal":false})
    );
    assert_eq!(s.gauge(|m| &m.snapshot_limit_refusals_total), 1);
    // The connection stays open and other subscriptions work: a one-row state snapshot...
    send(
        &mut c,
        r#"{"type":"subscribe","view":"Thing/state","key":"1"}"#,
    );
    assert_eq!(next_json(&mut c)["op"], "subscribed");
    assert_eq!(snapshot_keys(&next_json(&mut c)), ["1"]);
    // ...and the same list with `snapshotLimit` within the limit (the two newest rows).
    send(
        &mut c,
        r#"{"type":"subscribe","view":"Thing/list","snapshotLimit":2}"#,
    );
    assert_eq!(next_json(&mut c)["op"], "subscribed");
    assert_eq!(snapshot_keys(&next_json(&mut c)), ["3", "2"]);
    assert_eq!(s.gauge(|m| &m.snapshot_limit_refusals_total), 1);
    wait_for("two active subscriptions", || {
        s.gauge(|m| &m.subscriptions) == 2
    });
}

#[test]
fn connections_over_the_per_ip_limit_are_refused_with_429() {
    let s = Server::start(
        limited(ConnectionLimits {
            max_connections_per_ip: Some(2),
            ..Default::default()
        }),
        2,
    );
    let a = connect(&s.url());
    let mut b = connect(&s.url());
    let (status, code, body) = refused(&s.url(), &[]);
    assert_eq!((status, code.as_str()), (429, "connection-limit-exceeded"));
    assert_eq!(
        body,
        json!({"error":"connection-limit-exceeded",
            "message":"Connection limit exceeded: ip 127.0.0.1 has 2 of 2 allowed connections",
            "code":"connection-limit-exceeded","retryable":true,
            "suggested_action":"Disconnect existing connections or wait for other connections to close"})
    );
    assert_eq!(s.gauge(|m| &m.ip_limit_refusals_total), 1);
    assert_eq!(s.gauge(|m| &m.rejected_connections_total), 1);
    subscribe(&mut b, "OreRound/list", None); // the admitted ones are unaffected
    drop(a);
    wait_for("a slot frees", || try_connect(&s.url(), &[]).is_ok());
}

#[test]
fn connections_over_the_per_origin_limit_are_refused_with_429_and_other_origins_are_not() {
    let s = Server::start(
        limited(ConnectionLimits {
            max_connections_per_origin: Some(1),
            ..Default::default()
        }),
        2,
    );
    let app = [("origin", "https://app.example")];
    let mut first = try_connect(&s.url(), &app).unwrap();
    let (status, code, body) = refused(&s.url(), &app);
    assert_eq!((status, code.as_str()), (429, "connection-limit-exceeded"));
    assert_eq!(
        body["message"],
        "Connection limit exceeded: origin https://app.example has 1 of 1 allowed connections"
    );
    assert_eq!(s.gauge(|m| &m.origin_limit_refusals_total), 1);
    // Another origin, and connections without an Origin header, are counted apart.
    let mut other = try_connect(&s.url(), &[("origin", "https://other.example")]).unwrap();
    let mut bare1 = connect(&s.url());
    let mut bare2 = connect(&s.url());
    for c in [&mut first, &mut other, &mut bare1, &mut bare2] {
        subscribe(c, "OreRound/list", None);
    }
    assert_eq!(s.gauge(|m| &m.origin_limit_refusals_total), 1);
}

#[test]
fn connections_over_the_per_metering_key_limit_are_refused_with_429() {
    let s = Server::start(
        limited(ConnectionLimits {
            max_connections_per_metering_key: Some(2),
            ..Default::default()
        }),
        2,
    );
    // Allow-all sessions all carry the metering key `dev`.
    let mut a = connect(&s.url());
    let mut b = connect(&s.url());
    let (status, code, body) = refused(&s.url(), &[]);
    assert_eq!((status, code.as_str()), (429, "connection-limit-exceeded"));
    assert_eq!(
        body["message"],
        "Connection limit exceeded: metering key dev has 2 of 2 allowed connections"
    );
    assert_eq!(s.gauge(|m| &m.metering_key_limit_refusals_total), 1);
    for c in [&mut a, &mut b] {
        subscribe(c, "OreRound/list", None);
    }
    // A closed connection gives its place back.
    drop(a);
    wait_for("the place is given back", || {
        try_connect(&s.url(), &[]).is_ok()
    });
}

#[test]
fn a_token_limits_claim_overrides_the_server_message_rate() {
    let s = signed_server(ConnectionLimits {
        max_messages_per_minute: Some(100),
        ..Default::default()
    });
    let url = format!(
        "ws://{}/?hs_token={}",
        s.addr,
        token("carol", json!({"max_messages_per_minute": 1}))
    );
    let mut c = try_connect(&url, &[]).unwrap();
    subscribe(&mut c, "OreRound/list", None);
    send(&mut c, r#"{"type":"ping"}"#);
    let (texts, _, close) = read_to_close(&mut c);
    assert_eq!(texts[0]["error"], "rate-limit-exceeded");
    assert_eq!(close.0, 4029);
    // The server's own budget (100) applies to a token without the claim.
    let url = format!("ws://{}/?hs_token={}", s.addr, token("dave", json!({})));
    let mut d = try_connect(&url, &[]).unwrap();
    for _ in 0..20 {
        send(&mut d, r#"{"type":"ping"}"#);
    }
    subscribe(&mut d, "OreRound/list", None);
    assert_eq!(s.gauge(|m| &m.rate_limited_closed_total), 1);
}

#[test]
fn a_refreshed_token_brings_its_limits_but_only_for_the_same_subject() {
    let s = signed_server(ConnectionLimits::default());
    let url = format!(
        "ws://{}/?hs_token={}",
        s.addr,
        token("erin", json!({"max_messages_per_minute": 100}))
    );
    let mut c = try_connect(&url, &[]).unwrap();
    // Another subject's token is refused and changes nothing: the rate stays 100.
    let frank = token("frank", json!({"max_messages_per_minute": 1}));
    send(
        &mut c,
        &json!({"type":"refresh_auth","token":frank}).to_string(),
    );
    assert_eq!(
        next_json(&mut c),
        json!({"success":false,"error":"token-invalid"})
    );
    for _ in 0..5 {
        send(&mut c, r#"{"type":"ping"}"#);
    }
    subscribe(&mut c, "OreRound/list", None);
    // Erin's own refreshed token lowers her rate to 8, and the 8 messages this window has seen
    // (the refresh included) still count: the next one is over.
    let erin = token("erin", json!({"max_messages_per_minute": 8}));
    send(
        &mut c,
        &json!({"type":"refresh_auth","token":erin}).to_string(),
    );
    assert_eq!(next_json(&mut c)["success"], true);
    send(&mut c, r#"{"type":"ping"}"#);
    let (texts, _, close) = read_to_close(&mut c);
    assert_eq!(texts.last().unwrap()["error"], "rate-limit-exceeded");
    assert_eq!(close.0, 4029);
    assert_eq!(s.gauge(|m| &m.rate_limited_closed_total), 1);
}
