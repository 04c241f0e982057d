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
//! required; `nbf`, `origin`, `metering_key`, `limits{max_connections,max_subscriptions,
//! max_snapshot_rows,max_messages_per_minute,max_bytes_per_minute}` optional), and a 64-byte signature over `header.claims`.
//!
//! Limits: a token's `limits` override [`ConnectionLimits`] of the server. The connection limits
//! per subject, per IP and per origin are counted across all reactors (see `super::shared`) and
//! checked at the upgrade, after authentication (HTTP 429 `connection-limit-exceeded`); the
//! subscription, snapshot-row, inbound-message and egress-byte limits are per connection and
//! enforced by the reactor.

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

/// Server-wide limits (`../shared/protocol.md` §1.8). A signed token's `limits` claim overrides
/// the per-session ones (`max_connections`, `max_subscriptions`, `max_snapshot_rows`,
/// `max_messages_per_minute`, `max_bytes_per_minute`); the per-IP and per-origin limits and the
/// window are server-wide only. `None` is unlimited. The binary reads them from the reference's
/// environment variables ([`ConnectionLimits::with_env`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections per subject, across all reactors. Default `None` (unlimited; the
    /// server-wide `max_clients` still applies). `HYPERSTACK_WS_DEFAULT_MAX_CONNECTIONS`.
    pub max_connections_per_subject: Option<usize>,
    /// Subscriptions per connection. Default 1,000 (each costs reactor and worker memory, so
    /// it is always bounded). `HYPERSTACK_WS_DEFAULT_MAX_SUBSCRIPTIONS`.
    pub max_subscriptions_per_connection: usize,
    /// Open connections per peer IP address, across all reactors; over it the upgrade is refused
    /// with HTTP 429 `connection-limit-exceeded`. Default `None`.
    /// `HYPERSTACK_WS_MAX_CONNECTIONS_PER_IP`.
    pub max_connections_per_ip: Option<usize>,
    /// Open connections per `Origin` header value (connections without one are not counted);
    /// over it: HTTP 429 `connection-limit-exceeded`. Default `None`.
    /// `HYPERSTACK_WS_MAX_CONNECTIONS_PER_ORIGIN`.
    pub max_connections_per_origin: Option<usize>,
    /// Open connections per metering key (the token's `metering_key` claim; `dev` under
    /// allow-all), across all reactors; over it: HTTP 429 `connection-limit-exceeded`. Default
    /// `None`. `HYPERSTACK_WS_MAX_CONNECTIONS_PER_METERING_KEY`.
    pub max_connections_per_metering_key: Option<usize>,
    /// Rows a subscription's snapshot may have; a larger one fails that subscription with the
    /// non-fatal socket issue `snapshot-limit-exceeded`. Default `None`.
    /// `HYPERSTACK_WS_DEFAULT_MAX_SNAPSHOT_ROWS`.
    pub max_snapshot_rows: Option<usize>,
    /// Inbound text messages per connection per [`rate_limit_window`](Self::rate_limit_window);
    /// the one past it gets the fatal socket issue `rate-limit-exceeded` and the connection is
    /// closed. Default `None`. `HYPERSTACK_WS_DEFAULT_MAX_MESSAGES_PER_MINUTE`.
    pub max_messages_per_minute: Option<u64>,
    /// Frame payload bytes sent per connection per window; a frame past it is not sent and the
    /// connection gets the fatal socket issue `egress-limit-exceeded` and is closed. Default
    /// `None`. `HYPERSTACK_WS_DEFAULT_MAX_BYTES_PER_MINUTE`.
    pub max_bytes_per_minute: Option<u64>,
    /// The window of both per-minute budgets (a fixed window starting at the first message or
    /// frame after the previous window ended). Default 60 s.
    /// `HYPERSTACK_WS_RATE_LIMIT_WINDOW_SECS`.
    pub rate_limit_window: std::time::Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections_per_subject: None,
            max_subscriptions_per_connection: 1_000,
            max_connections_per_ip: None,
            max_connections_per_origin: None,
            max_connections_per_metering_key: None,
            max_snapshot_rows: None,
            max_messages_per_minute: None,
            max_bytes_per_minute: None,
            rate_limit_window: std::time::Duration::from_secs(60),
        }
    }
}

impl ConnectionLimits {
    /// These limits with the reference's environment variables applied (read through `var`):
    /// `HYPERSTACK_WS_MAX_CONNECTIONS_PER_{IP,ORIGIN,METERING_KEY}`, `HYPERSTACK_WS_RATE_LIMIT_WINDOW_SECS`,
    /// `HYPERSTACK_WS_DEFAULT_MAX_{CONNECTIONS,SUBSCRIPTIONS,SNAPSHOT_ROWS,MESSAGES_PER_MINUTE,
    /// BYTES_PER_MINUTE}`. A value that is not a positive integer keeps the current one (logged).
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        let n = |name: &str| positive_env(&var, name);
        let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        if let Some(v) = n("HYPERSTACK_WS_MAX_CONNECTIONS_PER_IP") {
            self.max_connections_per_ip = Some(as_usize(v));
        }
        if let Some(v) = n("HYPERSTACK_WS_MAX_CONNECTIONS_PER_ORIGIN") {
            self.max_connections_per_origin = Some(as_usize(v));
        }
        if let Some(v) = n("HYPERSTACK_WS_MAX_CONNECTIONS_PER_METERING_KEY") {
            self.max_connections_per_metering_key = Some(as_usize(v));
        }
        if let Some(v) = n("HYPERSTACK_WS_RATE_LIMIT_WINDOW_SECS") {
            self.rate_limit_window = std::time::Duration::from_secs(v);
        }
        if let Some(v) = n("HYPERSTACK_WS_DEFAULT_MAX_CONNECTIONS") {
            self.max_connections_per_subject = Some(as_usize(v));
        }
        if let Some(v) = n("HYPERSTACK_WS_DEFAULT_MAX_SUBSCRIPTIONS") {
            self.max_subscriptions_per_connection = as_usize(v);
        }
        if let Some(v) = n("HYPERSTACK_WS_DEFAULT_MAX_SNAPSHOT_ROWS") {
            self.max_snapshot_rows = Some(as_usize(v));
        }
        if let Some(v) = n("HYPERSTACK_WS_DEFAULT_MAX_MESSAGES_PER_MINUTE") {
            self.max_messages_per_minute = Some(v);
        }
        if let Some(v) = n("HYPERSTACK_WS_DEFAULT_MAX_BYTES_PER_MINUTE") {
            self.max_bytes_per_minute = Some(v);
        }
        self
    }

    /// The window in whole seconds (at least 1), as sent in `retry_after`.
    pub fn window_secs(&self) -> u64 {
        self.rate_limit_window.as_secs().max(1)
    }
}

/// A positive integer environment variable; anything else is logged and ignored.
pub(crate) fn positive_env(var: &impl Fn(&str) -> Option<String>, name: &str) -> Option<u64> {
    let raw = var(name)?;
    match raw.trim().parse::<u64>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            tracing::warn!(variable = name, value = %raw, "not a positive integer; ignored");
            None
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

    pub fn with_action(mut self, action: &str) -> Self {
        self.suggested_action = Some(action.into());
        self
    }

    /// The reference's refusal for a connection-count limit (`what` is e.g. `ip 10.0.0.1`).
    pub fn connection_limit_exceeded(what: &str, current: usize, max: usize) -> Self {
        AuthDeny::new(
            AuthErrorCode::ConnectionLimitExceeded,
            format!("Connection limit exceeded: {what} has {current} of {max} allowed connections"),
        )
        .with_action("Disconnect existing connections or wait for other connections to close")
    }

    /// The reference's `rate-limit-exceeded` (retry after the window) for `what`, e.g.
    /// `inbound websocket messages`.
    pub fn rate_limited(window_secs: u64, what: &str) -> Self {
        let mut d = AuthDeny::new(
            AuthErrorCode::RateLimitExceeded,
            format!("Rate limit exceeded for {what}. Please retry after {window_secs}s."),
        )
        .with_action(&format!("Wait {window_secs}s before retrying the request"));
        d.retry = RetryPolicy::RetryAfter(window_secs);
        d
    }

    pub fn retryable(&self) -> bool {
        !matches!(self.retry, RetryPolicy::NoRetry)
    }

    /// The refusal's fields as the reference sends them, in an HTTP body or a socket issue.
    pub fn error_body(&self) -> ErrorBody<'_> {
        let code = self.code.as_str();
        ErrorBody {
            error: code,
            message: &self.message,
            code,
            retryable: self.retryable(),
            retry_after: match self.retry {
                RetryPolicy::RetryAfter(s) => Some(s),
                _ => None,
            },
            suggested_action: self.suggested_action.as_deref(),
        }
    }

    pub fn body(&self) -> String {
        serde_json::to_string(&self.error_body()).unwrap_or_default()
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
    /// Largest snapshot a subscription may have (rows); `None` unlimited.
    pub max_snapshot_rows: Option<usize>,
    /// Inbound text messages per rate-limit window; `None` unlimited.
    pub max_messages_per_minute: Option<u64>,
    /// Frame payload bytes sent per rate-limit window; `None` unlimited.
    pub max_bytes_per_minute: Option<u64>,
}

impl Session {
    /// A session with the server's limits.
    fn with_limits(subject: String, metering_key: String, limits: &ConnectionLimits) -> Self {
        Session {
            subject,
            metering_key,
            expires_at: None,
            max_connections: limits.max_connections_per_subject,
            max_subscriptions: limits.max_subscriptions_per_connection,
            max_snapshot_rows: limits.max_snapshot_rows,
            max_messages_per_minute: limits.max_messages_per_minute,
            max_bytes_per_minute: limits.max_bytes_per_minute,
        }
    }
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
            AuthPlugin::AllowAll => Ok(Session::with_limits(
                "anonymous".into(),
                "dev".into(),
                limits,
            )),
            AuthPlugin::StaticToken {
                tokens,
                query_param,
            } => {
                let token = req.token(query_param).ok_or_else(token_missing)?;
                if tokens.iter().any(|t| t == &token) {
                    let prefix: String = token.chars().take(8).collect();
                    Ok(Session::with_limits(
                        format!("static:{prefix}"),
                        token,
                        limits,
                    ))
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
    let lim_u = |name: &str| lim.and_then(|l| l.get(name)).and_then(Value::as_u64);
    let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let mut session = Session::with_limits(
        sub.to_owned(),
        text("metering_key").unwrap_or_default().to_owned(),
        limits,
    );
    session.expires_at = Some(exp);
    if let Some(v) = lim_u("max_connections") {
        session.max_connections = Some(as_usize(v));
    }
    if let Some(v) = lim_u("max_subscriptions") {
        session.max_subscriptions = as_usize(v);
    }
    if let Some(v) = lim_u("max_snapshot_rows") {
        session.max_snapshot_rows = Some(as_usize(v));
    }
    if let Some(v) = lim_u("max_messages_per_minute") {
        session.max_messages_per_minute = Some(v);
    }
    if let Some(v) = lim_u("max_bytes_per_minute") {
        session.max_bytes_per_minute = Some(v);
    }
    Ok(session)
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
               "metering_key":"m1","limits":{"max_subscriptions":3,"max_connections":2,
               "max_snapshot_rows":50,"max_messages_per_minute":10,"max_bytes_per_minute":4096}})
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
        assert_eq!(s.max_snapshot_rows, Some(50));
        assert_eq!(s.max_messages_per_minute, Some(10));
        assert_eq!(s.max_bytes_per_minute, Some(4096));
    }

    #[test]
    fn claims_without_limits_fall_back_to_the_server_limits() {
        let server = ConnectionLimits {
            max_snapshot_rows: Some(7),
            max_messages_per_minute: Some(8),
            max_bytes_per_minute: Some(9),
            ..Default::default()
        };
        let mut c = claims(1_000);
        c.as_object_mut().unwrap().remove("limits");
        let t = sign_jwt(&key(1), None, &c);
        let s = verify_jwt(&cfg(), &server, &t, None, true, 1_000).unwrap();
        assert_eq!(
            (
                s.max_snapshot_rows,
                s.max_messages_per_minute,
                s.max_bytes_per_minute
            ),
            (Some(7), Some(8), Some(9))
        );
        assert_eq!((s.max_connections, s.max_subscriptions), (None, 1_000));
        let anon = AuthConfig::allow_all()
            .with_limits(server)
            .authorize(&AuthRequest::default())
            .unwrap();
        assert_eq!(anon.max_bytes_per_minute, Some(9));
    }

    #[test]
    fn limits_default_to_unlimited_and_the_reference_env_vars_apply() {
        let d = ConnectionLimits::default();
        assert_eq!(d.max_connections_per_subject, None);
        assert_eq!(d.max_subscriptions_per_connection, 1_000);
        assert_eq!(
            (d.max_connections_per_ip, d.max_connections_per_origin),
            (None, None)
        );
        assert_eq!(d.max_snapshot_rows, None);
        assert_eq!(
            (d.max_messages_per_minute, d.max_bytes_per_minute),
            (None, None)
        );
        assert_eq!(d.rate_limit_window, std::time::Duration::from_secs(60));
        let env = |name: &str| {
            Some(
                match name {
                    "HYPERSTACK_WS_MAX_CONNECTIONS_PER_IP" => "5",
                    "HYPERSTACK_WS_MAX_CONNECTIONS_PER_ORIGIN" => "6",
                    "HYPERSTACK_WS_RATE_LIMIT_WINDOW_SECS" => "30",
                    "HYPERSTACK_WS_DEFAULT_MAX_CONNECTIONS" => "7",
                    "HYPERSTACK_WS_DEFAULT_MAX_SUBSCRIPTIONS" => "8",
                    "HYPERSTACK_WS_DEFAULT_MAX_SNAPSHOT_ROWS" => "9",
                    "HYPERSTACK_WS_DEFAULT_MAX_MESSAGES_PER_MINUTE" => "10",
                    "HYPERSTACK_WS_DEFAULT_MAX_BYTES_PER_MINUTE" => "0",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let l = ConnectionLimits::default().with_env(env);
        assert_eq!(
            (l.max_connections_per_ip, l.max_connections_per_origin),
            (Some(5), Some(6))
        );
        assert_eq!(l.rate_limit_window, std::time::Duration::from_secs(30));
        assert_eq!(l.max_connections_per_subject, Some(7));
        assert_eq!(l.max_subscriptions_per_connection, 8);
        assert_eq!(l.max_snapshot_rows, Some(9));
        assert_eq!(l.max_messages_per_minute, Some(10));
        // Zero is not a limit we take from the environment: unlimited stays.
        assert_eq!(l.max_bytes_per_minute, None);
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
        let v: serde_json::Value =
            serde_json::from_str(&AuthDeny::rate_limited(60, "inbound websocket messages").body())
                .unwrap();
        assert_eq!(v["code"], "rate-limit-exceeded");
        assert_eq!(v["retry_after"], 60);
        let ip = AuthDeny::connection_limit_exceeded("ip 10.0.0.1", 2, 2);
        assert_eq!(ip.http_response().status().as_u16(), 429);
        assert_eq!(
            ip.message,
            "Connection limit exceeded: ip 10.0.0.1 has 2 of 2 allowed connections"
        );
    }
}
