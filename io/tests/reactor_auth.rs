//! Handshake auth: every refusal's HTTP status, headers and JSON body; limits; refresh_auth.

mod reactor_support;

use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use reactor_support::*;
use serde_json::{json, Value};
use stackcore_io::config::WebSocketConfig;
use stackcore_io::reactor::auth::{sign_jwt, AuthConfig, ConnectionLimits, SignedSessionConfig};
use tungstenite::handshake::HandshakeError;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn jwt_server() -> Server {
    let cfg = SignedSessionConfig::new(key().verifying_key(), "hs", "ore");
    Server::start(
        WebSocketConfig::default().with_auth(AuthConfig::signed_session(cfg)),
        1,
    )
}

fn claims() -> Value {
    let n = now();
    json!({"iss":"hs","sub":"alice","aud":"ore","iat":n,"nbf":n,"exp":n+600,"jti":"j",
           "scope":"read","metering_key":"m","key_class":"publishable"})
}

/// Expects a refusal; returns (status, headers, body).
fn refused(
    s: &Server,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, tungstenite::http::HeaderMap, Value) {
    match try_connect(&format!("ws://{}{path}", s.addr), headers) {
        Ok(_) => panic!("upgrade unexpectedly accepted for {path}"),
        Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            let body: Value =
                serde_json::from_slice(resp.body().as_deref().expect("a body")).unwrap();
            (resp.status().as_u16(), resp.headers().clone(), body)
        }
        Err(e) => panic!("unexpected handshake error {e}"),
    }
}

fn assert_refusal(
    got: (u16, tungstenite::http::HeaderMap, Value),
    status: u16,
    code: &str,
    retryable: bool,
) {
    let (st, h, body) = got;
    assert_eq!(st, status, "{body}");
    assert_eq!(h["x-error-code"], code);
    assert_eq!(h["content-type"], "application/json; charset=utf-8");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h.get("retry-after").is_none());
    assert_eq!(body["error"], code);
    assert_eq!(body["code"], code);
    assert_eq!(body["retryable"], retryable, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn static_token_from_header_or_query_is_accepted_and_header_wins() {
    let s = Server::start(
        WebSocketConfig::default().with_auth(AuthConfig::static_tokens(["s3cret"])),
        1,
    );
    let mut c = try_connect(&s.url(), &[("authorization", "Bearer s3cret")]).unwrap();
    subscribe(&mut c, "OreRound/list", None);
    let mut c = try_connect(&format!("ws://{}/?token=s3cret", s.addr), &[]).unwrap();
    subscribe(&mut c, "OreRound/list", None);
    assert_refusal(
        refused(&s, "/?token=s3cret", &[("authorization", "Bearer wrong")]),
        401,
        "invalid-static-token",
        false,
    );
}

#[test]
fn static_token_refusals_have_their_status_and_body() {
    let s = Server::start(
        WebSocketConfig::default().with_auth(AuthConfig::static_tokens(["s3cret"])),
        1,
    );
    assert_refusal(refused(&s, "/", &[]), 401, "token-missing", false);
    assert_refusal(
        refused(&s, "/?token=nope", &[]),
        401,
        "invalid-static-token",
        false,
    );
    assert_eq!(s.gauge(|m| &m.rejected_connections_total), 2);
    wait_for("refused sockets released", || {
        s.gauge(|m| &m.connected_clients) == 0
    });
}

#[test]
fn signed_session_token_via_query_or_bearer_is_accepted() {
    let s = jwt_server();
    let t = sign_jwt(&key(), None, &claims());
    let mut c = try_connect(&format!("ws://{}/?hs_token={t}", s.addr), &[]).unwrap();
    subscribe(&mut c, "OreRound/list", None);
    let bearer = format!("Bearer {t}");
    let mut c = try_connect(&s.url(), &[("authorization", &bearer)]).unwrap();
    subscribe(&mut c, "OreRound/list", None);
}

#[test]
fn signed_session_refusals_have_their_codes_statuses_and_bodies() {
    let s = jwt_server();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        format!("/?hs_token={}", sign_jwt(&key(), None, &c))
    };
    assert_refusal(refused(&s, "/", &[]), 401, "token-missing", false);
    assert_refusal(
        refused(&s, &with(&|c| c["exp"] = json!(now() - 10)), &[]),
        401,
        "token-expired",
        true,
    );
    let other = SigningKey::from_bytes(&[9; 32]);
    let forged = format!("/?hs_token={}", sign_jwt(&other, None, &claims()));
    assert_refusal(
        refused(&s, &forged, &[]),
        401,
        "token-invalid-signature",
        true,
    );
    assert_refusal(
        refused(&s, &with(&|c| c["iss"] = json!("evil")), &[]),
        401,
        "token-invalid-issuer",
        true,
    );
    assert_refusal(
        refused(&s, &with(&|c| c["aud"] = json!("other")), &[]),
        401,
        "token-invalid-audience",
        true,
    );
    assert_refusal(
        refused(&s, "/?hs_token=abc.def", &[]),
        400,
        "token-invalid-format",
        true,
    );
    assert_refusal(
        refused(
            &s,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            &[],
        ),
        400,
        "token-missing-claim",
        false,
    );
    let bound = with(&|c| c["origin"] = json!("https://app.example"));
    assert_refusal(
        refused(&s, &bound, &[("origin", "https://evil.example")]),
        403,
        "origin-mismatch",
        false,
    );
    assert_refusal(refused(&s, &bound, &[]), 403, "origin-required", false);
    let mut ok = try_connect(
        &format!("ws://{}{bound}", s.addr),
        &[("origin", "https://app.example")],
    )
    .unwrap();
    subscribe(&mut ok, "OreRound/list", None);
}

#[test]
fn per_subject_connection_limit_answers_429() {
    let cfg = SignedSessionConfig::new(key().verifying_key(), "hs", "ore");
    let s = Server::start(
        WebSocketConfig::default().with_auth(AuthConfig::signed_session(cfg).with_limits(
            ConnectionLimits {
                max_connections_per_subject: Some(2),
                max_subscriptions_per_connection: 10,
                ..Default::default()
            },
        )),
        2,
    );
    let path = format!("/?hs_token={}", sign_jwt(&key(), None, &claims()));
    let url = format!("ws://{}{path}", s.addr);
    let a = try_connect(&url, &[]).unwrap();
    let _b = try_connect(&url, &[]).unwrap();
    assert_refusal(
        refused(&s, &path, &[]),
        429,
        "connection-limit-exceeded",
        true,
    );
    // A token's own limit overrides the server's.
    let mut c = claims();
    c["sub"] = json!("bob");
    c["limits"] = json!({"max_connections": 1});
    let bob = format!("/?hs_token={}", sign_jwt(&key(), None, &c));
    let _bob1 = try_connect(&format!("ws://{}{bob}", s.addr), &[]).unwrap();
    assert_refusal(
        refused(&s, &bob, &[]),
        429,
        "connection-limit-exceeded",
        true,
    );
    // Closing a connection frees its slot.
    drop(a);
    wait_for("slot freed", || try_connect(&url, &[]).is_ok());
}

#[test]
fn refresh_auth_replies_with_expiry_or_the_failure_code() {
    let s = jwt_server();
    let t = sign_jwt(&key(), None, &claims());
    let mut c = try_connect(&format!("ws://{}/?hs_token={t}", s.addr), &[]).unwrap();
    let mut fresh = claims();
    fresh["exp"] = json!(now() + 3600);
    let exp = fresh["exp"].clone();
    send(
        &mut c,
        &json!({"type":"refresh_auth","token":sign_jwt(&key(), None, &fresh)}).to_string(),
    );
    assert_eq!(next_json(&mut c), json!({"success":true,"expiresAt":exp}));
    let mut old = claims();
    old["exp"] = json!(now() - 5);
    for (token, code) in [
        (sign_jwt(&key(), None, &old), "token-expired"),
        (
            sign_jwt(&SigningKey::from_bytes(&[3; 32]), None, &claims()),
            "token-invalid-signature",
        ),
        ("garbage".to_string(), "token-invalid"),
    ] {
        send(
            &mut c,
            &json!({"type":"refresh_auth","token":token}).to_string(),
        );
        assert_eq!(next_json(&mut c), json!({"success":false,"error":code}));
    }
}

#[test]
fn expired_session_gets_a_fatal_error_then_close_1008() {
    let s = Server::start(
        WebSocketConfig::default()
            .with_ping_interval(std::time::Duration::from_millis(100))
            .with_auth(AuthConfig::signed_session(SignedSessionConfig::new(
                key().verifying_key(),
                "hs",
                "ore",
            ))),
        1,
    );
    let mut c = claims();
    c["exp"] = json!(now() + 1);
    let t = sign_jwt(&key(), None, &c);
    let mut ws = try_connect(&format!("ws://{}/?hs_token={t}", s.addr), &[]).unwrap();
    let v = next_json(&mut ws);
    assert_eq!(v["error"], "token-expired");
    assert_eq!(v["fatal"], true);
    let (code, reason) = read_until_close(&mut ws).expect("close frame");
    assert_eq!(code, 1008);
    assert!(reason.starts_with("token-expired:"), "{reason}");
}
