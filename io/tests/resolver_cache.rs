//! The resolver cache: an identical request is answered without a second HTTP call until its TTL
//! runs out (time from an injected clock, no sleeps); method and URL are both part of the key.

mod resolver_support;

use std::sync::Arc;
use std::time::Duration;

use resolver_support::*;
use serde_json::json;
use stackcore_engine::spec::HttpMethod;
use stackcore_io::config::ResolverConfig;
use stackcore_io::resolver::ManualClock;

fn counting_server() -> FakeServer {
    FakeServer::start(|req| Reply::Body(200, format!(r#"{{"method": "{}"}}"#, req.method)))
}

#[test]
fn an_identical_request_is_served_from_the_cache_without_a_second_http_hit() {
    let s = counting_server();
    let r = start_resolver_now(test_config());
    for _ in 0..2 {
        assert!(r
            .link
            .submit(url_request(HttpMethod::Get, &s.url("/a"), None)));
        let (_, v) = next_result(&r.results);
        assert_eq!(*v, json!({"method": "GET"}));
    }
    assert_eq!(s.hits(), 1);
    assert_eq!(load(&r.metrics.resolver_cache_hits_total), 1);
    assert_eq!(load(&r.metrics.resolver_fetches_total), 1);
}

#[test]
fn a_cached_value_is_refetched_after_its_ttl_expires() {
    let s = counting_server();
    let clock = ManualClock::new();
    let cfg = ResolverConfig {
        cache_ttl: Duration::from_secs(60),
        ..test_config()
    };
    let r = start_resolver(cfg, Arc::new(clock.clone()));
    let ask = || {
        assert!(r
            .link
            .submit(url_request(HttpMethod::Get, &s.url("/a"), None)));
        next_result(&r.results);
    };
    ask();
    clock.advance(Duration::from_secs(60));
    ask();
    assert_eq!(s.hits(), 1, "still fresh at exactly the TTL");
    clock.advance(Duration::from_secs(1));
    ask();
    assert_eq!(s.hits(), 2, "expired: fetched again");
    ask();
    assert_eq!(s.hits(), 2, "and cached again");
}

#[test]
fn get_and_post_to_the_same_url_are_cached_apart() {
    let s = counting_server();
    let r = start_resolver_now(test_config());
    for method in [
        HttpMethod::Get,
        HttpMethod::Post,
        HttpMethod::Get,
        HttpMethod::Post,
    ] {
        assert!(r.link.submit(url_request(method, &s.url("/same"), None)));
        next_result(&r.results);
    }
    let methods: Vec<String> = s.seen().into_iter().map(|x| x.method).collect();
    assert_eq!(methods, ["GET", "POST"]);
}

#[test]
fn identical_requests_in_one_round_share_one_fetch() {
    let s = counting_server();
    // A long batch window: all three land in one round.
    let r = start_resolver_now(ResolverConfig {
        batch_window: Duration::from_millis(300),
        ..test_config()
    });
    for _ in 0..3 {
        assert!(r
            .link
            .submit(url_request(HttpMethod::Get, &s.url("/a"), None)));
    }
    for _ in 0..3 {
        next_result(&r.results);
    }
    assert_eq!(s.hits(), 1);
}
