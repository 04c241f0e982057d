//! The HTTP endpoints: `/health`, `/ready`, `/status`, `/metrics`, on a small thread of their own.
//!
//! Requests are rare and tiny, so one blocking thread serves them one at a time with short socket
//! timeouts; a slow or malformed client costs at most those timeouts and gets a 400, never a crash.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::health::HealthMonitor;
use crate::metrics::Metrics;

/// Largest request head we read.
const MAX_REQUEST: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What the endpoints read.
pub struct HttpContext {
    /// `None` when health monitoring is off: `/ready` is then always ready.
    pub health: Option<Arc<HealthMonitor>>,
    pub metrics: Arc<Metrics>,
}

/// A running HTTP endpoint thread.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves on a thread named `http`.
    pub fn start(addr: SocketAddr, ctx: HttpContext) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::Acquire) {
                        break;
                    }
                    match conn {
                        Ok(stream) => {
                            if let Err(e) = serve(stream, &ctx) {
                                tracing::debug!(error = %e, "http request failed");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "http accept failed");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            })?;
        Ok(HttpServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and joins the thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(if wake.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_and_join();
        }
    }
}

/// One response: status, content type, body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn json(status: u16, body: String) -> Self {
        Response {
            status,
            content_type: "application/json",
            body,
        }
    }
}

fn serve(mut stream: TcpStream, ctx: &HttpContext) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let response = loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                break Response::json(400, r#"{"error":"incomplete request"}"#.into());
            }
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        match parse_path(&buf) {
            Ok(Some(path)) => break route(&path, ctx),
            Ok(None) if buf.len() < MAX_REQUEST => continue,
            Ok(None) => break Response::json(431, r#"{"error":"request head too large"}"#.into()),
            Err(()) => break Response::json(400, r#"{"error":"malformed request"}"#.into()),
        }
    };
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        response.status,
        reason,
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(response.body.as_bytes())?;
    stream.flush()
}

/// The request path once the head is complete; `Ok(None)` while incomplete.
fn parse_path(buf: &[u8]) -> Result<Option<String>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => Ok(Some(req.path.ok_or(())?.to_string())),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(()),
    }
}

/// Answers one path. Public so the routing can be tested without sockets.
pub fn route(path: &str, ctx: &HttpContext) -> Response {
    let path = path.split('?').next().unwrap_or(path);
    match path {
        "/health" | "/healthz" => Response::json(200, r#"{"status":"ok"}"#.into()),
        "/ready" | "/readiness" => {
            let ready = ctx.health.as_ref().is_none_or(|h| h.is_healthy());
            Response::json(
                if ready { 200 } else { 503 },
                format!(r#"{{"ready":{ready}}}"#),
            )
        }
        "/status" => status(ctx),
        "/metrics" => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: ctx.metrics.render(),
        },
        _ => Response::json(404, r#"{"error":"not found"}"#.into()),
    }
}

fn status(ctx: &HttpContext) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &ctx.metrics;
    let engine = serde_json::json!({
        "upstream_updates": m.upstream_updates_total.load(Relaxed),
        "upstream_errors": m.upstream_errors_total.load(Relaxed),
        "events_applied": m.events_applied_total.load(Relaxed),
        "decode_errors": m.decode_errors_total.load(Relaxed),
        "mutations": m.mutations_total.load(Relaxed),
        "frames": m.frames_total.load(Relaxed),
        "connected_clients": m.connected_clients.load(Relaxed),
        "last_slot": m.last_slot.load(Relaxed),
        "vm": {
            "handler_errors": m.vm_handler_errors_total.load(Relaxed),
            "unknown_events": m.vm_unknown_events_total.load(Relaxed),
            "skipped_stale": m.vm_skipped_stale_total.load(Relaxed),
            "skipped_duplicate": m.vm_skipped_duplicate_total.load(Relaxed),
            "queued_pending": m.vm_queued_pending_total.load(Relaxed),
            "replayed": m.vm_replayed_total.load(Relaxed),
            "dropped_pending": m.vm_dropped_pending_total.load(Relaxed),
            "deferred_when": m.vm_deferred_when_total.load(Relaxed),
            "expired_when": m.vm_expired_when_total.load(Relaxed),
            "evicted_rows": m.vm_evicted_rows_total.load(Relaxed),
            "resolver_requests_dropped": m.vm_resolver_requests_dropped_total.load(Relaxed),
        },
        "limits": {
            "rejected_connections": m.rejected_connections_total.load(Relaxed),
            "subject_limit_refusals": m.subject_limit_refusals_total.load(Relaxed),
            "ip_limit_refusals": m.ip_limit_refusals_total.load(Relaxed),
            "origin_limit_refusals": m.origin_limit_refusals_total.load(Relaxed),
            "metering_key_limit_refusals": m.metering_key_limit_refusals_total.load(Relaxed),
            "rate_limited_closed": m.rate_limited_closed_total.load(Relaxed),
            "egress_limited_closed": m.egress_limited_closed_total.load(Relaxed),
            "slow_consumers_closed": m.slow_consumers_closed_total.load(Relaxed),
            "snapshot_limit_refusals": m.snapshot_limit_refusals_total.load(Relaxed),
            "subscription_limit_refusals": m.subscription_limit_refusals_total.load(Relaxed),
        },
        "resolver": {
            "requests": m.resolver_requests_total.load(Relaxed),
            "dropped": m.resolver_requests_dropped_total.load(Relaxed),
            "unresolvable": m.resolver_unresolvable_total.load(Relaxed),
            "cache_hits": m.resolver_cache_hits_total.load(Relaxed),
            "fetches": m.resolver_fetches_total.load(Relaxed),
            "errors": m.resolver_errors_total.load(Relaxed),
            "results": m.resolver_results_total.load(Relaxed),
        },
    });
    let body = match &ctx.health {
        None => serde_json::json!({"healthy": true, "status": "no_monitor", "counters": engine}),
        Some(h) => {
            let r = h.report();
            serde_json::json!({
                "healthy": r.healthy,
                "status": r.status.name(),
                "error": match &r.status { crate::health::StreamStatus::Error(e) => Some(e.clone()), _ => None },
                "stale": r.stale,
                "last_event_age_secs": r.last_event_age.map(|d| d.as_secs_f64()),
                "error_count": r.error_count,
                "last_error": r.last_error,
                "connection_uptime_secs": r.connection_uptime.map(|d| d.as_secs_f64()),
                "counters": engine,
            })
        }
    };
    let healthy = body["healthy"].as_bool().unwrap_or(false);
    Response::json(if healthy { 200 } else { 503 }, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HealthConfig;

    fn ctx(health: bool) -> HttpContext {
        HttpContext {
            health: health.then(|| Arc::new(HealthMonitor::new(HealthConfig::new()))),
            metrics: Arc::new(Metrics::new()),
        }
    }

    #[test]
    fn health_is_always_ok_and_unknown_paths_are_404() {
        let c = ctx(true);
        assert_eq!(route("/health", &c).body, r#"{"status":"ok"}"#);
        assert_eq!(route("/health?x=1", &c).status, 200);
        assert_eq!(route("/nope", &c).status, 404);
    }

    #[test]
    fn ready_follows_the_monitor() {
        let c = ctx(true);
        let r = route("/ready", &c);
        assert_eq!((r.status, r.body.as_str()), (503, r#"{"ready":false}"#));
        c.health.as_ref().unwrap().record_connection();
        let r = route("/ready", &c);
        assert_eq!((r.status, r.body.as_str()), (200, r#"{"ready":true}"#));
        assert_eq!(
            route("/ready", &ctx(false)).status,
            200,
            "no monitor means ready"
        );
    }

    #[test]
    fn status_reports_stream_state_and_errors() {
        let c = ctx(true);
        let h = c.health.as_ref().unwrap();
        h.record_connection();
        h.record_error("bad account bytes");
        let r = route("/status", &c);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["status"], "Connected");
        assert_eq!(v["error_count"], 1);
        assert_eq!(v["last_error"], "bad account bytes");
        assert!(v["connection_uptime_secs"].is_number());
        Metrics::add(&c.metrics.rate_limited_closed_total, 2);
        let v: serde_json::Value = serde_json::from_str(&route("/status", &c).body).unwrap();
        assert_eq!(v["counters"]["limits"]["rate_limited_closed"], 2);
        assert_eq!(v["counters"]["limits"]["egress_limited_closed"], 0);
        Metrics::add(&c.metrics.vm_handler_errors_total, 3);
        let v: serde_json::Value = serde_json::from_str(&route("/status", &c).body).unwrap();
        assert_eq!(v["counters"]["vm"]["handler_errors"], 3);
        assert_eq!(v["counters"]["vm"]["evicted_rows"], 0);
        h.record_fatal("x-token rejected");
        let v: serde_json::Value = serde_json::from_str(&route("/status", &c).body).unwrap();
        assert_eq!(v["status"], "Error");
        assert_eq!(v["error"], "x-token rejected");
    }

    #[test]
    fn served_over_tcp_with_malformed_requests_answered_400() {
        let server = HttpServer::start("127.0.0.1:0".parse().unwrap(), ctx(false)).unwrap();
        let addr = server.local_addr();
        let ask = |req: &[u8]| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        };
        assert!(ask(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(ask(b"GET /metrics HTTP/1.1\r\n\r\n").contains("stackcore_frames_total"));
        assert!(ask(b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(ask(b"GET /x HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        server.shutdown();
    }
}
