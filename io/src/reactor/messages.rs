//! Client → server messages (`../shared/protocol.md` §1.3) and the text control messages the
//! server answers with (§1.5 "socket issue", the `refresh_auth` reply).
//!
//! Parsing never fails silently and never panics: every text message becomes a
//! [`ClientMessage`] or a [`MessageError`] that the reactor sends back as a non-fatal error frame.
//! Unlike the reference, an unknown `type` is an error (it does not fall back to a legacy
//! subscribe); a message without `type` but with `view` is the legacy bare subscribe.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stackcore_engine::view::Subscription;

/// One parsed client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `{"type":"subscribe",...}` or the legacy bare `{"view":..}`.
    Subscribe(Subscription),
    /// `{"type":"unsubscribe","view":..,"key"?:..}`; `sub_key` is `view:key` or `view:*`.
    Unsubscribe { sub_key: String },
    /// `{"type":"ping"}`: only refreshes last-seen.
    Ping,
    /// `{"type":"refresh_auth","token":..}`.
    RefreshAuth { token: String },
}

/// Why a text message was not understood. The reactor answers with an error frame
/// (`fatal:false`) and keeps the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not JSON, not an object, or a known type with missing/mistyped fields.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// A `type` this server does not know.
    #[error("unknown message type `{0}`")]
    UnknownType(String),
}

impl MessageError {
    pub fn code(&self) -> &'static str {
        match self {
            MessageError::Invalid(_) => "invalid-message",
            MessageError::UnknownType(_) => "unknown-message-type",
        }
    }
}

#[derive(Deserialize)]
struct Unsub {
    view: String,
    #[serde(default)]
    key: Option<String>,
}

#[derive(Deserialize)]
struct Refresh {
    token: String,
}

fn invalid(e: impl std::fmt::Display) -> MessageError {
    MessageError::Invalid(e.to_string())
}

/// Parses one inbound text message.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, MessageError> {
    let v: Value = serde_json::from_str(text).map_err(invalid)?;
    let Some(obj) = v.as_object() else {
        return Err(invalid("expected a JSON object"));
    };
    match obj.get("type") {
        None => {
            if obj.contains_key("view") {
                serde_json::from_value(v)
                    .map(ClientMessage::Subscribe)
                    .map_err(invalid)
            } else {
                Err(invalid("missing `type`"))
            }
        }
        Some(Value::String(t)) => match t.as_str() {
            "subscribe" => serde_json::from_value(v)
                .map(ClientMessage::Subscribe)
                .map_err(invalid),
            "unsubscribe" => {
                let u: Unsub = serde_json::from_value(v).map_err(invalid)?;
                Ok(ClientMessage::Unsubscribe {
                    sub_key: format!("{}:{}", u.view, u.key.as_deref().unwrap_or("*")),
                })
            }
            "ping" => Ok(ClientMessage::Ping),
            "refresh_auth" => {
                let r: Refresh = serde_json::from_value(v).map_err(invalid)?;
                Ok(ClientMessage::RefreshAuth { token: r.token })
            }
            other => Err(MessageError::UnknownType(other.chars().take(64).collect())),
        },
        Some(_) => Err(invalid("`type` must be a string")),
    }
}

/// The socket-issue control message (§1.5), sent as a Text frame.
#[derive(Debug, Serialize)]
pub struct SocketIssue<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The same fields as an HTTP refusal's body.
    #[serde(flatten)]
    pub body: super::auth::ErrorBody<'a>,
    pub fatal: bool,
}

/// `{"type":"error","error":code,"message":..,"code":code,"retryable":..,"fatal":..}`.
pub fn socket_issue(code: &str, message: &str, retryable: bool, fatal: bool) -> Vec<u8> {
    socket_issue_with(code, message, retryable, fatal, None)
}

pub fn socket_issue_with(
    code: &str,
    message: &str,
    retryable: bool,
    fatal: bool,
    suggested_action: Option<&str>,
) -> Vec<u8> {
    serde_json::to_vec(&SocketIssue {
        kind: "error",
        body: super::auth::ErrorBody {
            error: code,
            message,
            code,
            retryable,
            retry_after: None,
            suggested_action,
        },
        fatal,
    })
    .unwrap_or_default()
}

/// The socket issue for a refusal, as the reference builds it (`SocketIssueMessage::from_auth_deny`):
/// its code, message, retryability, `retry_after` for a fixed delay and suggested action.
pub fn socket_issue_for(deny: &super::auth::AuthDeny, fatal: bool) -> Vec<u8> {
    serde_json::to_vec(&SocketIssue {
        kind: "error",
        body: deny.error_body(),
        fatal,
    })
    .unwrap_or_default()
}

/// The `refresh_auth` reply (camelCase; absent fields omitted).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshReply<'a> {
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

pub fn refresh_reply(result: Result<u64, &str>) -> Vec<u8> {
    let r = match result {
        Ok(exp) => RefreshReply {
            success: true,
            error: None,
            expires_at: Some(exp),
        },
        Err(code) => RefreshReply {
            success: false,
            error: Some(code),
            expires_at: None,
        },
    };
    serde_json::to_vec(&r).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_parses_every_camel_case_option_and_ignores_extras() {
        let m = parse_client_message(
            r#"{"type":"subscribe","view":"OreRound/latest","key":"7","partition":"p","take":1,
                "skip":2,"withSnapshot":false,"after":"1:000000000002","snapshotLimit":5,
                "filters":{"x":1}}"#,
        )
        .unwrap();
        let ClientMessage::Subscribe(s) = m else {
            panic!("{m:?}")
        };
        assert_eq!(s.view, "OreRound/latest");
        assert_eq!(s.key.as_deref(), Some("7"));
        assert_eq!(s.partition.as_deref(), Some("p"));
        assert_eq!((s.take, s.skip), (Some(1), Some(2)));
        assert_eq!(s.with_snapshot, Some(false));
        assert_eq!(s.after.as_deref(), Some("1:000000000002"));
        assert_eq!(s.snapshot_limit, Some(5));
    }

    #[test]
    fn legacy_bare_subscribe_is_a_subscribe() {
        assert_eq!(
            parse_client_message(r#"{"view":"A/list"}"#),
            Ok(ClientMessage::Subscribe(Subscription {
                view: "A/list".into(),
                ..Default::default()
            }))
        );
    }

    #[test]
    fn unsubscribe_ping_and_refresh_parse() {
        assert_eq!(
            parse_client_message(r#"{"type":"unsubscribe","view":"A/list"}"#),
            Ok(ClientMessage::Unsubscribe {
                sub_key: "A/list:*".into()
            })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"unsubscribe","view":"A/state","key":"k"}"#),
            Ok(ClientMessage::Unsubscribe {
                sub_key: "A/state:k".into()
            })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            parse_client_message(r#"{"type":"refresh_auth","token":"t"}"#),
            Ok(ClientMessage::RefreshAuth { token: "t".into() })
        );
    }

    #[test]
    fn bad_messages_are_typed_errors_not_subscribes() {
        for (text, code) in [
            ("not json", "invalid-message"),
            ("[1,2]", "invalid-message"),
            (r#"{"key":"x"}"#, "invalid-message"),
            (r#"{"type":"subscribe"}"#, "invalid-message"),
            (
                r#"{"type":"subscribe","view":"A/list","take":-1}"#,
                "invalid-message",
            ),
            (r#"{"type":7}"#, "invalid-message"),
            (
                r#"{"type":"bogus","view":"A/list"}"#,
                "unknown-message-type",
            ),
            (r#"{"type":"refresh_auth"}"#, "invalid-message"),
        ] {
            assert_eq!(
                parse_client_message(text).unwrap_err().code(),
                code,
                "{text}"
            );
        }
    }

    #[test]
    fn control_messages_have_the_wire_shape() {
        let v: Value = serde_json::from_slice(&socket_issue("x-y", "m", true, false)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"error","error":"x-y","message":"m","code":"x-y",
                               "retryable":true,"fatal":false})
        );
        let deny = crate::reactor::auth::AuthDeny::rate_limited(60, "inbound websocket messages");
        let v: Value = serde_json::from_slice(&socket_issue_for(&deny, true)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"error","error":"rate-limit-exceeded",
                "message":"Rate limit exceeded for inbound websocket messages. Please retry after 60s.",
                "code":"rate-limit-exceeded","retryable":true,"retry_after":60,
                "suggested_action":"Wait 60s before retrying the request","fatal":true})
        );
        assert_eq!(refresh_reply(Ok(5)), br#"{"success":true,"expiresAt":5}"#);
        assert_eq!(
            refresh_reply(Err("token-invalid")),
            br#"{"success":false,"error":"token-invalid"}"#
        );
    }
}
