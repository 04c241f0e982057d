//! The resolver's blocking HTTP client (ureq over rustls) and its typed errors.
//!
//! Two agents, one per timeout: DAS calls (default 10 s) and URL resolver calls (default 30 s);
//! each timeout covers the whole call, body included. Every response is read up to
//! `max_response_bytes` and parsed as JSON; anything else is a [`ResolverError`].

use std::time::Duration;

use serde_json::Value as Json;
use stackcore_engine::spec::HttpMethod;

/// Why a resolver fetch failed. Each kind has its own counter in [`crate::metrics::Metrics`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolverError {
    /// The call took longer than its configured timeout.
    #[error("{url}: timed out")]
    Timeout { url: String },
    /// The server answered with a non-2xx status.
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    /// The body is not JSON (or is larger than allowed).
    #[error("{url}: bad response: {message}")]
    BadResponse { url: String, message: String },
    /// A JSON-RPC answer carried an `error`.
    #[error("{url}: JSON-RPC error: {message}")]
    Rpc { url: String, message: String },
    /// A URL resolver's `extract_path` is not in the response.
    #[error("{url}: response has no `{path}`")]
    MissingPath { url: String, path: String },
    /// Connecting, TLS or the exchange itself failed.
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
}

impl ResolverError {
    /// A short stable name of the kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ResolverError::Timeout { .. } => "timeout",
            ResolverError::Status { .. } => "http_status",
            ResolverError::BadResponse { .. } => "bad_response",
            ResolverError::Rpc { .. } => "rpc",
            ResolverError::MissingPath { .. } => "missing_path",
            ResolverError::Transport { .. } => "transport",
        }
    }
}

/// Blocking JSON over HTTP with a timeout per call and a bound on the body size.
pub struct HttpClient {
    das: ureq::Agent,
    url: ureq::Agent,
    max_body: u64,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // Statuses are ours to type, not ureq's.
        .http_status_as_error(false)
        .user_agent(concat!("stackcore/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

impl HttpClient {
    pub fn new(das_timeout: Duration, url_timeout: Duration, max_response_bytes: usize) -> Self {
        HttpClient {
            das: agent(das_timeout),
            url: agent(url_timeout),
            max_body: max_response_bytes as u64,
        }
    }

    /// A URL resolver call: GET or an empty POST, JSON back.
    pub fn fetch_url(&self, method: HttpMethod, url: &str) -> Result<Json, ResolverError> {
        let r = match method {
            HttpMethod::Get => self.url.get(url).call(),
            HttpMethod::Post => self.url.post(url).send_empty(),
        };
        self.read_json(url, r)
    }

    /// A JSON-RPC POST (DAS).
    pub fn post_json(&self, url: &str, body: &Json) -> Result<Json, ResolverError> {
        let r = self
            .das
            .post(url)
            .header("content-type", "application/json")
            .send(body.to_string());
        self.read_json(url, r)
    }

    fn read_json(
        &self,
        url: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Json, ResolverError> {
        let mut resp = r.map_err(|e| typed(url, e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(ResolverError::Status {
                url: url.to_string(),
                status,
            });
        }
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(self.max_body)
            .read_to_vec()
            .map_err(|e| typed(url, e))?;
        serde_json::from_slice(&bytes).map_err(|e| ResolverError::BadResponse {
            url: url.to_string(),
            message: format!("not JSON: {e}"),
        })
    }
}

fn typed(url: &str, e: ureq::Error) -> ResolverError {
    let url = url.to_string();
    match e {
        ureq::Error::Timeout(_) => ResolverError::Timeout { url },
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            ResolverError::Timeout { url }
        }
        ureq::Error::StatusCode(status) => ResolverError::Status { url, status },
        ureq::Error::BodyExceedsLimit(limit) => ResolverError::BadResponse {
            url,
            message: format!("body larger than {limit} bytes"),
        },
        other => ResolverError::Transport {
            url,
            message: other.to_string(),
        },
    }
}

/// Selects `path` (dot-separated object keys or array indices) inside `value`; an empty path is
/// the whole value. `None` when a segment is missing.
pub fn select<'a>(value: &'a Json, path: &str) -> Option<&'a Json> {
    if path.is_empty() {
        return Some(value);
    }
    let mut cur = value;
    for seg in path.split('.') {
        cur = match cur {
            Json::Object(m) => m.get(seg)?,
            Json::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn select_walks_keys_and_indices() {
        let v = json!({"data": {"items": [{"seed": "s0"}, {"seed": "s1"}]}});
        assert_eq!(select(&v, "data.items.1.seed"), Some(&json!("s1")));
        assert_eq!(select(&v, ""), Some(&v));
        assert_eq!(select(&v, "data.nope"), None);
        assert_eq!(select(&v, "data.items.9"), None);
        assert_eq!(select(&v, "data.items.x"), None);
    }
}
