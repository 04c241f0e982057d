//! Who may connect, decided at the HTTP upgrade (`../shared/protocol.md` §1.2).
//!
//! Three plugins, chosen in [`AuthConfig::plugin`]:
//! - [`AuthPlugin::AllowAll`] (default): everyone is subject `anonymous`, nothing expires.
//! - [`AuthPlugin::StaticToken`]: a fixed set of tokens, from `Authorization: Bearer <t>` or the
//!   query parameter (default `token`).
//! - [`AuthPlugin::SignedSession`]: an Ed25519-signed JWT (`alg: EdDSA`) from `Authorization:
//!   Bearer <jwt>` or `?hs_token=<jwt>`, checked for signature, issuer, audience, expiry,
//!   not-before and origin binding.
//!
//! The header always wins over the query. A refusal is a [`AuthDeny`]: a kebab-case code, the
//! HTTP status that goes with it and a retry policy; [`AuthDeny::http_response`] renders the plain
//! HTTP answer (JSON body, `X-Error-Code`, `Cache-Control: no-store`, `Retry-After` only for a
//! fixed retry delay) that the client gets instead of the upgrade.
//!
//! The JWT is small enough to parse here: three base64url parts, a JSON header whose `alg` must
//! be `EdDSA` (optionally naming the key by `kid`), JSON claims (`iss`, `sub`, `aud`, `exp`
//! required; `nbf`, `origin`, `metering_key`, `limits{max_connections,max_subscriptions}`
//! optional), and a 64-byte signature over `header.claims`.
//!
//! Limits: a token's `limits` override [`ConnectionLimits`] of the server. The connection limit
//! per subject is counted across all reactors (see `super::shared`); the subscription limit is
//! per connection and enforced by the reactor on each subscribe.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Serialize;

/// How connections are authenticated and limited.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthConfig {
    /// Default [`AuthPlugin::AllowAll`].
    pub plugin: AuthPlugin,
    /// Server-wide limits; a signed token's `limits` claim overrides them.
    pub limits: ConnectionLimits,
}

impl AuthConfig {
    pub fn allow_all() -> Self {
        Self::default()
    }
    /// Static tokens, read from the Bearer header or `?token=`.
    pub fn static_tokens<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> Self {
        AuthConfig {
            plugin: AuthPlugin::StaticToken {
                tokens: tokens.into_iter().map(Into::into).collect(),
                query_param: "token".into(),
            },
            limits: ConnectionLimits::default(),
        }
    }
    pub fn signed_session(cfg: SignedSessionConfig) -> Self {
        AuthConfig {
            plugin: AuthPlugin::SignedSession(cfg),
            limits: ConnectionLimits::default(),
        }
    }
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// The handshake-time authentication plugin.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AuthPlugin {
    #[default]
    AllowAll,
    StaticToken {
        tokens: Vec<String>,
        /// Query parameter read when there is no Bearer header. Default `token`.
        query_param: String,
    },
    SignedSession(SignedSessionConfig),
}

/// Verification settings of Ed25519 session tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedSessionConfig {
    /// Accepted keys, optionally named by the JWT header's `kid`.
    pub keys: Vec<(Option<String>, VerifyingKey)>,
    pub issuer: String,
    pub audience: String,
    /// Query parameter read when there is no Bearer header. Default `hs_token`.
    pub query_param: String,
    /// Refuse a connection without an `Origin` header (`origin-required`). Default false: a
    /// missing `Origin` is allowed unless the token is bound to an origin.
    pub require_origin: bool,
}

impl SignedSessionConfig {
    pub fn new(key: VerifyingKey, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        SignedSessionConfig {
            keys: vec![(None, key)],
            issuer: issuer.into(),
            audience: audience.into(),
            query_param: "hs_token".into(),
            require_origin: false,
        }
    }
    /// Adds a key selected by the JWT header's `kid` (key rotation).
    pub fn with_key(mut self, kid: impl Into<String>, key: VerifyingKey) -> Self {
        self.keys.push((Some(kid.into()), key));
        self
    }
    pub fn with_origin_validation(mut self) -> Self {
        self.require_origin = true;
        self
    }
    pub fn with_query_param(mut self, name: impl Into<String>) -> Self {
        self.query_param = name.into();
        self
    }
}

/// Server-wide connection limits (a token's `limits` claim overrides each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections per subject, across all reactors. Default `None` (unlimited; the
    /// server-wide `max_clients` still applies).
    pub max_connections_per_subject: Option<usize>,
    /// Subscriptions per connection. Default 1,000 (each costs reactor and worker memory, so
    /// it is always bounded).
    pub max_subscriptions_per_connection: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections_per_subject: None,
            max_subscriptions_per_connection: 1_000,
        }
    }
}

/// Machine-readable refusal codes (kebab-case on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthErrorCode {
    TokenMissing,
    TokenExpired,
    TokenInvalidSignature,
    TokenInvalidFormat,
    TokenInvalidIssuer,
    TokenInvalidAudience,
    TokenMissingClaim,
    TokenKeyNotFound,
    OriginMismatch,
    OriginRequired,
    RateLimitExceeded,
    ConnectionLimitExceeded,
    SubscriptionLimitExceeded,
    SnapshotLimitExceeded,
    EgressLimitExceeded,
    InvalidStaticToken,
    InternalError,
}

/// What a refused client should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    NoRetry,
    /// Retry after exactly this many seconds (sent as `Retry-After` and `retry_after`).
    RetryAfter(u64),
    /// Retry with exponential backoff between these bounds, in seconds.
    RetryWithBackoff {
        initial: u64,
        max: u64,
    },
    /// Get a new token, then retry.
    RetryWithFreshToken,
}

impl AuthErrorCode {
    pub fn as_str(self) -> &'static str {
        use AuthErrorCode::*;
        match self {
            TokenMissing => "token-missing",
            TokenExpired => "token-expired",
            TokenInvalidSignature => "token-invalid-signature",
            TokenInvalidFormat => "token-invalid-format",
            TokenInvalidIssuer => "token-invalid-issuer",
            TokenInvalidAudience => "token-invalid-audience",
            TokenMissingClaim => "token-missing-claim",
            TokenKeyNotFound => "token-key-not-found",
            OriginMismatch => "origin-mismatch",
            OriginRequired => "origin-required",
            RateLimitExceeded => "rate-limit-exceeded",
            ConnectionLimitExceeded => "connection-limit-exceeded",
            SubscriptionLimitExceeded => "subscription-limit-exceeded",
            SnapshotLimitExceeded => "snapshot-limit-exceeded",
            EgressLimitExceeded => "egress-limit-exceeded",
            InvalidStaticToken => "invalid-static-token",
            InternalError => "internal-error",
        }
    }

    pub fn http_status(self) -> u16 {
        use AuthErrorCode::*;
        match self {
            TokenInvalidFormat | TokenMissingClaim => 400,
            OriginMismatch | OriginRequired => 403,
            RateLimitExceeded
            | ConnectionLimitExceeded
            | SubscriptionLimitExceeded
            | SnapshotLimitExceeded
            | EgressLimitExceeded => 429,
            InternalError => 500,
            TokenMissing
            | TokenExpired
            | TokenInvalidSignature
            | TokenInvalidIssuer
            | TokenInvalidAudience
            | TokenKeyNotFound
            | InvalidStaticToken => 401,
        }
    }

    pub fn default_retry_policy(self) -> RetryPolicy {
        use AuthErrorCode::*;
        match self {
            TokenExpired
            | TokenInvalidSignature
            | TokenInvalidFormat
            | TokenInvalidIssuer
            | TokenInvalidAudience
            | TokenKeyNotFound => RetryPolicy::RetryWithFreshToken,
            RateLimitExceeded
            | ConnectionLimitExceeded
            | SubscriptionLimitExceeded
            | SnapshotLimitExceeded
            | EgressLimitExceeded => RetryPolicy::RetryWithBackoff {
                initial: 1,
                max: 60,
            },
            InternalError => RetryPolicy::RetryWithBackoff {
                initial: 1,
                max: 30,
            },
            TokenMissing | TokenMissingClaim | OriginMismatch | OriginRequired
            | InvalidStaticToken => RetryPolicy::NoRetry,
        }
    }
}

/// A refusal: the connection gets [`AuthDeny::http_response`] instead of the upgrade.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct AuthDeny {
    pub code: AuthErrorCode,
    pub message: String,
    pub retry: RetryPolicy,
    pub suggested_action: Option<String>,
}

/// The JSON body of a refusal (`error` and `code` carry the same string).
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub message: &'a str,
    pub code: &'a str,
    pub retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_action: Option<&'a str>,
}

impl AuthDeny {
    pub fn new(code: AuthErrorCode, message: impl Into<String>) -> Self {
        AuthDeny {
            code,
            message: message.into(),
            retry: code.default_retry_policy(),
            suggested_action: None,
        }
    }

    fn with_action(mut self, action: &str) -> Self {
        self.suggested_action = Some(action.into());
        self
    }

    pub fn retryable(&self) -> bool {
        !matches!(self.retry, RetryPolicy::NoRetry)
    }

    pub fn body(&self) -> String {
        let code = self.code.as_str();
        let body = ErrorBody {
            error: code,
            message: &self.message,
            code,
            retryable: self.retryable(),
            retry_after: match self.retry {
                RetryPolicy::RetryAfter(s) => Some(s),
                _ => None,
            },
            suggested_action: self.suggested_action.as_deref(),
        };
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// The HTTP refusal: status per code, JSON body, `X-Error-Code`, `Cache-Control: no-store`,
    /// `Retry-After` for a fixed delay, `Content-Length` and `Connection: close`.
    pub fn http_response(&self) -> tungstenite::handshake::server::ErrorResponse {
        let body = self.body();
        let mut b = tungstenite::http::Response::builder()
            .status(self.code.http_status())
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Error-Code", self.code.as_str())
            .header("Cache-Control", "no-store")
            .header("Content-Length", body.len().to_string())
            .header("Connection", "close");
        if let RetryPolicy::RetryAfter(s) = self.retry {
            b = b.header("Retry-After", s.to_string());
        }
        b.body(Some(body)).unwrap_or_else(|_| {
            let mut r = tungstenite::http::Response::new(None);
            *r.status_mut() = tungstenite::http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }
}

/// An authenticated connection's identity and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub subject: String,
    pub metering_key: String,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_subscriptions: usize,
}

/// The parts of the upgrade request that auth looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthRequest<'a> {
    /// The value of the `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The raw query string (after `?`), if any.
    pub query: Option<&'a str>,
    pub origin: Option<&'a str>,
}

impl<'a> AuthRequest<'a> {
    pub fn from_http(req: &'a tungstenite::handshake::server::Request) -> Self {
        let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        AuthRequest {
            authorization: h("authorization"),
            query: req.uri().query(),
            origin: h("origin"),
        }
    }

    /// The Bearer token of the `Authorization` header (scheme case-insensitive).
    pub fn bearer(&self) -> Option<&'a str> {
        let (scheme, token) = self.authorization?.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// A query parameter, percent-decoded. `None` if absent, empty or not valid UTF-8.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query?;
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| percent_decode(v))
            .filter(|v| !v.is_empty())
    }

    fn token(&self, query_param: &str) -> Option<String> {
        self.bearer()
            .map(str::to_owned)
            .or_else(|| self.query_param(query_param))
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'%' => return None,
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AuthConfig {
    /// Decides a connection at upgrade time. The per-subject connection count is checked by
    /// the caller (it is shared state).
    pub fn authorize(&self, req: &AuthRequest<'_>) -> Result<Session, AuthDeny> {
        let limits = &self.limits;
        match &self.plugin {
            AuthPlugin::AllowAll => Ok(Session {
                subject: "anonymous".into(),
                metering_key: "dev".into(),
                expires_at: None,
                max_connections: limits.max_connections_per_subject,
                max_subscriptions: limits.max_subscriptions_per_connection,
            }),
            AuthPlugin::StaticToken {
                tokens,
                query_param,
            } => {
                let token = req.token(query_param).ok_or_else(token_missing)?;
                if tokens.iter().any(|t| t == &token) {
                    let prefix: String = token.chars().take(8).collect();
                    Ok(Session {
                        subject: format!("static:{prefix}"),
                        metering_key: token,
                        expires_at: None,
                        max_connections: limits.max_connections_per_subject,
                        max_subscriptions: limits.max_subscriptions_per_connection,
                    })
                } else {
                    Err(AuthDeny::new(
                        AuthErrorCode::InvalidStaticToken,
                        "Invalid auth token",
                    ))
                }
            }
            AuthPlugin::SignedSession(cfg) => {
                let token = req.token(&cfg.query_param).ok_or_else(token_missing)?;
                verify_jwt(cfg, limits, &token, req.origin, true, now_unix())
            }
        }
    }

    /// Verifies a `refresh_auth` token. Only signed sessions can refresh; origin is not
    /// re-checked (it was proven at connect time).
    pub fn refresh(&self, token: &str) -> Result<Session, AuthDeny> {
        match &self.plugin {
            AuthPlugin::SignedSession(cfg) => {
                verify_jwt(cfg, &self.limits, token, None, false, now_unix())
            }
            _ => Err(AuthDeny::new(
                AuthErrorCode::TokenInvalidFormat,
                "in-band refresh needs signed session tokens",
            )),
        }
    }
}

fn token_missing() -> AuthDeny {
    AuthDeny::new(
        AuthErrorCode::TokenMissing,
        "Missing session token (expected Authorization: Bearer <token> or query token)",
    )
    .with_action(
        "Provide a valid session token in the Authorization header or as a query parameter",
    )
}

fn bad_format(what: &str) -> AuthDeny {
    AuthDeny::new(
        AuthErrorCode::TokenInvalidFormat,
        format!("Token verification failed: invalid token format: {what}"),
    )
}

fn verify_fail(code: AuthErrorCode, what: &str) -> AuthDeny {
    AuthDeny::new(code, format!("Token verification failed: {what}"))
}

/// Verifies a compact JWS (`header.claims.signature`, base64url without padding).
pub fn verify_jwt(
    cfg: &SignedSessionConfig,
    limits: &ConnectionLimits,
    token: &str,
    origin: Option<&str>,
    check_origin: bool,
    now: u64,
) -> Result<Session, AuthDeny> {
    use serde_json::Value;
    let mut parts = token.split('.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_format("expected three dot-separated parts"));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad_format("header is not base64url JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
        return Err(bad_format("unsupported algorithm (want EdDSA)"));
    }
    let claims: Value = URL_SAFE_NO_PAD
        .decode(c64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Value::is_object)
        .ok_or_else(|| bad_format("claims are not base64url JSON"))?;
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(s64)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad_format("signature is not 64 base64url bytes"))?;
    let sig = Signature::from_bytes(&sig);

    let kid = header.get("kid").and_then(Value::as_str);
    let named = kid.and_then(|k| cfg.keys.iter().find(|(id, _)| id.as_deref() == Some(k)));
    let candidates: Vec<&VerifyingKey> = match named {
        Some((_, key)) => vec![key],
        None => {
            let unnamed: Vec<&VerifyingKey> = cfg
                .keys
                .iter()
                .filter(|(id, _)| id.is_none())
                .map(|(_, k)| k)
                .collect();
            if unnamed.is_empty() {
                return Err(verify_fail(
                    AuthErrorCode::TokenKeyNotFound,
                    &format!("key not found: {}", kid.unwrap_or("(no kid)")),
                ));
            }
            unnamed
        }
    };
    let signed = &token.as_bytes()[..h64.len() + 1 + c64.len()];
    if !candidates.iter().any(|k| k.verify(signed, &sig).is_ok()) {
        return Err(verify_fail(
            AuthErrorCode::TokenInvalidSignature,
            "invalid signature",
        ));
    }

    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let missing = |name: &str| {
        verify_fail(
            AuthErrorCode::TokenMissingClaim,
            &format!("missing required claim: {name}"),
        )
    };
    let iss = text("iss").ok_or_else(|| missing("iss"))?;
    let sub = text("sub").ok_or_else(|| missing("sub"))?;
    let aud = text("aud").ok_or_else(|| missing("aud"))?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or_else(|| missing("exp"))?;
    if iss != cfg.issuer {
        return Err(verify_fail(
            AuthErrorCode::TokenInvalidIssuer,
            "invalid issuer",
        ));
    }
    if aud != cfg.audience {
        return Err(verify_fail(
            AuthErrorCode::TokenInvalidAudience,
            "invalid audience",
        ));
    }
    if exp <= now {
        return Err(verify_fail(
            AuthErrorCode::TokenExpired,
            "token has expired",
        ));
    }
    if claims.get("nbf").and_then(Value::as_u64).unwrap_or(0) > now {
        return Err(verify_fail(
            AuthErrorCode::TokenInvalidFormat,
            "token is not yet valid",
        ));
    }
    if check_origin {
        match (text("origin"), origin) {
            (Some(_), None) => {
                return Err(verify_fail(
                    AuthErrorCode::OriginRequired,
                    "origin required but not provided",
                ))
            }
            (Some(bound), Some(got)) if bound != got => {
                return Err(verify_fail(
                    AuthErrorCode::OriginMismatch,
                    &format!("origin mismatch: expected {got}, got {bound}"),
                ))
            }
            (None, None) if cfg.require_origin => {
                return Err(verify_fail(
                    AuthErrorCode::OriginRequired,
                    "origin required but not provided",
                ))
            }
            (None, Some(_)) if cfg.require_origin => return Err(missing("origin")),
            _ => {}
        }
    }
    let lim = claims.get("limits");
    let lim_u = |name: &str| {
        lim.and_then(|l| l.get(name))
            .and_then(Value::as_u64)
            .map(|v| v as usize)
    };
    Ok(Session {
        subject: sub.to_owned(),
        metering_key: text("metering_key").unwrap_or_default().to_owned(),
        expires_at: Some(exp),
        max_connections: lim_u("max_connections").or(limits.max_connections_per_subject),
        max_subscriptions: lim_u("max_subscriptions")
            .unwrap_or(limits.max_subscriptions_per_connection),
    })
}

/// Signs claims as an EdDSA JWT. For tests and tools that mint tokens.
pub fn sign_jwt(
    key: &ed25519_dalek::SigningKey,
    kid: Option<&str>,
    claims: &serde_json::Value,
) -> String {
    use ed25519_dalek::Signer;
    let mut header = serde_json::json!({"alg": "EdDSA", "typ": "JWT"});
    if let Some(k) = kid {
        header["kid"] = k.into();
    }
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let msg = format!("{h}.{c}");
    let sig = key.sign(msg.as_bytes());
    format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn cfg() -> SignedSessionConfig {
        SignedSessionConfig::new(key(1).verifying_key(), "iss", "aud")
    }

    fn claims(now: u64) -> serde_json::Value {
        json!({"iss":"iss","sub":"alice","aud":"aud","iat":now,"nbf":now,"exp":now+600,
               "metering_key":"m1","limits":{"max_subscriptions":3,"max_connections":2}})
    }

    fn verify(token: &str, origin: Option<&str>) -> Result<Session, AuthErrorCode> {
        verify_jwt(
            &cfg(),
            &ConnectionLimits::default(),
            token,
            origin,
            true,
            1_000,
        )
        .map_err(|d| d.code)
    }

    #[test]
    fn valid_token_yields_subject_and_claim_limits() {
        let s = verify(&sign_jwt(&key(1), None, &claims(1_000)), None).unwrap();
        assert_eq!(s.subject, "alice");
        assert_eq!(s.metering_key, "m1");
        assert_eq!(s.expires_at, Some(1_600));
        assert_eq!((s.max_connections, s.max_subscriptions), (Some(2), 3));
    }

    #[test]
    fn each_token_fault_has_its_code() {
        let mut c = claims(1_000);
        c["exp"] = json!(999);
        assert_eq!(
            verify(&sign_jwt(&key(1), None, &c), None),
            Err(AuthErrorCode::TokenExpired)
        );
        assert_eq!(
            verify(&sign_jwt(&key(2), None, &claims(1_000)), None),
            Err(AuthErrorCode::TokenInvalidSignature)
        );
        let mut c = claims(1_000);
        c["iss"] = json!("other");
        assert_eq!(
            verify(&sign_jwt(&key(1), None, &c), None),
            Err(AuthErrorCode::TokenInvalidIssuer)
        );
        let mut c = claims(1_000);
        c["aud"] = json!("other");
        assert_eq!(
            verify(&sign_jwt(&key(1), None, &c), None),
            Err(AuthErrorCode::TokenInvalidAudience)
        );
        let mut c = claims(1_000);
        c.as_object_mut().unwrap().remove("sub");
        assert_eq!(
            verify(&sign_jwt(&key(1), None, &c), None),
            Err(AuthErrorCode::TokenMissingClaim)
        );
        assert_eq!(verify("a.b", None), Err(AuthErrorCode::TokenInvalidFormat));
        assert_eq!(
            verify("!!.??.**", None),
            Err(AuthErrorCode::TokenInvalidFormat)
        );
        let mut c = claims(1_000);
        c["origin"] = json!("https://a.example");
        let t = sign_jwt(&key(1), None, &c);
        assert_eq!(verify(&t, None), Err(AuthErrorCode::OriginRequired));
        assert_eq!(
            verify(&t, Some("https://b.example")),
            Err(AuthErrorCode::OriginMismatch)
        );
        assert!(verify(&t, Some("https://a.example")).is_ok());
    }

    #[test]
    fn kid_selects_a_rotated_key_and_unknown_kid_is_key_not_found() {
        let c = SignedSessionConfig {
            keys: vec![(Some("k2".into()), key(2).verifying_key())],
            ..cfg()
        };
        let l = ConnectionLimits::default();
        let ok = sign_jwt(&key(2), Some("k2"), &claims(1_000));
        assert!(verify_jwt(&c, &l, &ok, None, true, 1_000).is_ok());
        let unknown = sign_jwt(&key(2), Some("k9"), &claims(1_000));
        assert_eq!(
            verify_jwt(&c, &l, &unknown, None, true, 1_000).map_err(|d| d.code),
            Err(AuthErrorCode::TokenKeyNotFound)
        );
    }

    #[test]
    fn header_token_wins_over_query_and_query_is_percent_decoded() {
        let r = AuthRequest {
            authorization: Some("bearer head"),
            query: Some("token=qu%20ery&x=1"),
            origin: None,
        };
        assert_eq!(r.token("token").as_deref(), Some("head"));
        let r = AuthRequest {
            authorization: None,
            ..r
        };
        assert_eq!(r.token("token").as_deref(), Some("qu ery"));
        assert_eq!(r.query_param("x").as_deref(), Some("1"));
        assert_eq!(r.query_param("nope"), None);
        let bad = AuthRequest {
            query: Some("token=%zz"),
            ..Default::default()
        };
        assert_eq!(bad.token("token"), None);
    }

    #[test]
    fn refusal_bodies_carry_code_twice_and_retryability() {
        let d = AuthDeny::new(AuthErrorCode::TokenExpired, "gone");
        let v: serde_json::Value = serde_json::from_str(&d.body()).unwrap();
        assert_eq!(v["error"], "token-expired");
        assert_eq!(v["code"], "token-expired");
        assert_eq!(v["retryable"], true);
        assert!(v.get("retry_after").is_none());
        let r = d.http_response();
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(r.headers()["x-error-code"], "token-expired");
        assert!(r.headers().get("retry-after").is_none());
        let mut limited = AuthDeny::new(AuthErrorCode::RateLimitExceeded, "slow down");
        limited.retry = RetryPolicy::RetryAfter(7);
        let r = limited.http_response();
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
        assert!(limited.body().contains("\"retry_after\":7"));
        assert!(!AuthDeny::new(AuthErrorCode::OriginMismatch, "x").retryable());
        assert_eq!(AuthErrorCode::OriginMismatch.http_status(), 403);
        assert_eq!(AuthErrorCode::TokenMissingClaim.http_status(), 400);
        assert_eq!(AuthErrorCode::InternalError.http_status(), 500);
    }
}
