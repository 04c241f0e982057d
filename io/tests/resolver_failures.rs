//! A failing server never stops the resolver thread: each failure is a typed error, counted by
//! kind, nothing is applied, and the next request is served.

mod resolver_support;

use std::sync::Arc;
use std::time::Duration;

use resolver_support::*;
use serde_json::json;
use stackcore_engine::spec::HttpMethod;
use stackcore_io::config::ResolverConfig;
use stackcore_io::resolver::ManualClock;

/// Serves `/good` well and `/bad` with `bad`.
fn server(bad: impl Fn() -> Reply + Send + Sync + 'static) -> FakeServer {
    FakeServer::start(move |req| match req.path.as_str() {
        "/good" => Reply::Body(200, r#"{"ok": true, "seed": 1}"#.into()),
        _ => bad(),
    })
}

/// Submits a request to `/bad`, then one to `/good`: only the good one comes back.
fn bad_then_good(r: &Running, s: &FakeServer, extract_path: Option<&str>) {
    assert!(r
        .link
        .submit(url_request(HttpMethod::Get, &s.url("/bad"), extract_path)));
    assert!(r
        .link
        .submit(url_request(HttpMethod::Get, &s.url("/good"), extract_path)));
    // Requests are served in order: the first value back is the good one's.
    let (req, value) = next_result(&r.results);
    assert_eq!(req.input, json!(s.url("/good")));
    assert_eq!(*value, json!({"ok": true, "seed": 1}));
    let more = results_within(&r.results, Duration::from_millis(200));
    assert!(more.is_empty(), "nothing for the bad request: {more:?}");
    assert_eq!(load(&r.metrics.resolver_errors_total), 1);
    assert!(!r.thread.is_finished());
}

#[test]
fn http_500_is_a_counted_status_error_and_the_thread_serves_the_next_request() {
    let s = server(|| Reply::Body(500, r#"{"error": "down"}"#.into()));
    let r = start_resolver_now(test_config());
    bad_then_good(&r, &s, None);
    assert_eq!(load(&r.metrics.resolver_http_status_errors_total), 1);
}

#[test]
fn bad_json_is_a_counted_bad_response_error_and_the_thread_serves_the_next_request() {
    let s = server(|| Reply::Body(200, "<html>not json".into()));
    let r = start_resolver_now(test_config());
    bad_then_good(&r, &s, None);
    assert_eq!(load(&r.metrics.resolver_bad_responses_total), 1);
}

#[test]
fn a_server_that_never_answers_is_a_counted_timeout_and_the_thread_serves_the_next_request() {
    let s = server(|| Reply::Silence(Duration::from_secs(3)));
    let r = start_resolver_now(ResolverConfig {
        url_timeout: Duration::from_millis(300),
        ..test_config()
    });
    let t = std::time::Instant::now();
    bad_then_good(&r, &s, None);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the timeout cut the call short"
    );
    assert_eq!(load(&r.metrics.resolver_timeouts_total), 1);
}

#[test]
fn a_response_without_the_extract_path_is_a_counted_error_and_not_cached() {
    let s = server(|| Reply::Body(200, r#"{"pending": true}"#.into()));
    let r = start_resolver_now(ResolverConfig {
        retry_after: Duration::ZERO,
        ..test_config()
    });
    bad_then_good(&r, &s, Some("seed"));
    assert_eq!(load(&r.metrics.resolver_missing_path_total), 1);
    // Not cached: asking again fetches again (the value may be there by now).
    assert!(r
        .link
        .submit(url_request(HttpMethod::Get, &s.url("/bad"), Some("seed"))));
    wait_until("the second error", || {
        load(&r.metrics.resolver_errors_total) == 2
    });
    assert_eq!(s.hits(), 3);
}

#[test]
fn a_failed_fetch_is_not_retried_before_retry_after() {
    let s = server(|| Reply::Body(503, "{}".into()));
    let clock = ManualClock::new();
    let r = start_resolver(
        ResolverConfig {
            retry_after: Duration::from_secs(10),
            ..test_config()
        },
        Arc::new(clock.clone()),
    );
    let ask = || {
        assert!(r
            .link
            .submit(url_request(HttpMethod::Get, &s.url("/bad"), None)));
        // A marker request behind it: once it is answered, the bad one has been handled.
        assert!(r
            .link
            .submit(url_request(HttpMethod::Get, &s.url("/good"), None)));
        next_result(&r.results);
    };
    ask();
    assert_eq!(s.hits(), 2);
    clock.advance(Duration::from_secs(9));
    ask();
    assert_eq!(s.hits(), 2, "skipped (and the marker came from the cache)");
    assert_eq!(load(&r.metrics.resolver_backoff_skipped_total), 1);
    clock.advance(Duration::from_secs(2));
    ask();
    // (The cached marker may come back before the refetch is done.)
    wait_until("the refetch after retry_after", || s.hits() == 3);
    wait_until("its error", || {
        load(&r.metrics.resolver_http_status_errors_total) == 2
    });
}

#[test]
fn an_unreachable_server_is_a_counted_transport_error() {
    // Bind, learn the port, close: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = start_resolver_now(test_config());
    assert!(r.link.submit(url_request(
        HttpMethod::Get,
        &format!("http://127.0.0.1:{port}/x"),
        None
    )));
    wait_until("the transport error", || {
        load(&r.metrics.resolver_transport_errors_total) == 1
    });
    assert!(results_within(&r.results, Duration::from_millis(100)).is_empty());
}
