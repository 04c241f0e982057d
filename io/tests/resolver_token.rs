//! Token resolvers against a fake DAS endpoint: `getAssetBatch` batching, the value written to
//! the entity, the ORE stack's token resolver end to end, and running without an endpoint.

mod resolver_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use resolver_support::*;
use serde_json::{json, Value as Json};
use stackcore_engine::spec::HttpMethod;
use stackcore_engine::Stack;
use stackcore_io::config::ResolverConfig;
use stackcore_io::metrics::Metrics;
use stackcore_io::resolver::{Resolver, SystemClock};

/// A DAS endpoint that knows every mint except `UNKNOWN`; decimals = length of the mint.
fn fake_das() -> FakeServer {
    FakeServer::start(|req| {
        let body: Json = serde_json::from_str(&req.body).unwrap();
        assert_eq!(body["method"], "getAssetBatch");
        assert_eq!(body["params"]["options"], json!({"showFungible": true}));
        let assets: Vec<Json> = body["params"]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| {
                let id = id.as_str().unwrap();
                if id == "UNKNOWN" {
                    return Json::Null;
                }
                json!({"id": id, "content": {"metadata": {"name": format!("Name {id}"), "symbol": "SYM"},
                       "links": {"image": "https://img"}}, "token_info": {"decimals": id.len()}})
            })
            .collect();
        Reply::Body(
            200,
            json!({"jsonrpc": "2.0", "id": "1", "result": assets}).to_string(),
        )
    })
}

fn das_config(s: &FakeServer, batch: usize) -> ResolverConfig {
    ResolverConfig {
        das_endpoint: Some(s.url("/das")),
        das_batch_size: batch,
        ..test_config()
    }
}

#[test]
fn token_requests_are_batched_into_ceil_n_over_batch_size_das_calls() {
    let das = fake_das();
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = crossbeam_channel::bounded(64);
    let mut resolver = Resolver::new(
        das_config(&das, 2),
        tx,
        metrics.clone(),
        Arc::new(SystemClock),
    );
    let mints = ["M1", "M22", "M333", "M4444", "M55555"];
    let mut round: Vec<_> = mints
        .iter()
        .enumerate()
        .map(|(i, m)| token_request(m, i as u64))
        .collect();
    round.push(token_request("M1", 99)); // a second entity asking for the same mint
    assert!(resolver.serve(round));

    // 5 distinct mints, batches of 2: ceil(5/2) = 3 calls, each with at most 2 ids.
    assert_eq!(das.hits(), 3);
    let mut asked = BTreeSet::new();
    for call in das.seen() {
        assert_eq!(call.method, "POST");
        let ids = serde_json::from_str::<Json>(&call.body).unwrap()["params"]["ids"]
            .as_array()
            .unwrap()
            .clone();
        assert!(ids.len() <= 2, "{ids:?}");
        asked.extend(ids.into_iter().map(|i| i.as_str().unwrap().to_string()));
    }
    assert_eq!(asked, mints.iter().map(|m| m.to_string()).collect());

    let got = results_within(&rx, Duration::from_millis(50));
    assert_eq!(got.len(), 6);
    let (_, v) = got.iter().find(|(r, _)| r.key == json!(2)).unwrap();
    assert_eq!(
        **v,
        json!({"mint": "M333", "name": "Name M333", "symbol": "SYM", "decimals": 4, "logo_uri": "https://img"})
    );
    assert_eq!(
        got.iter().filter(|(r, _)| r.input == json!("M1")).count(),
        2
    );
    assert_eq!(load(&metrics.resolver_fetches_total), 3);

    // Cached now: the same mints again cost no call.
    assert!(resolver.serve(mints.iter().map(|m| token_request(m, 0)).collect()));
    assert_eq!(das.hits(), 3);
}

#[test]
fn a_mint_the_das_answer_lacks_gets_no_value_and_is_counted() {
    let das = fake_das();
    let r = start_resolver_now(das_config(&das, 100));
    assert!(r.link.submit(token_request("UNKNOWN", 1)));
    assert!(r.link.submit(token_request("KNOWN", 2)));
    let got = results_within(&r.results, Duration::from_millis(500));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["mint"], "KNOWN");
    assert_eq!(load(&r.metrics.resolver_unresolvable_total), 1);
    assert_eq!(load(&r.metrics.resolver_errors_total), 0);
}

#[test]
fn a_json_rpc_error_is_a_counted_bad_response() {
    let das = FakeServer::start(|_| {
        Reply::Body(
            200,
            r#"{"jsonrpc":"2.0","id":"1","error":{"code":-32000,"message":"nope"}}"#.into(),
        )
    });
    let r = start_resolver_now(das_config(&das, 100));
    assert!(r.link.submit(token_request("M", 1)));
    wait_until("the error", || {
        load(&r.metrics.resolver_bad_responses_total) == 1
    });
    assert!(results_within(&r.results, Duration::from_millis(100)).is_empty());
}

#[test]
fn without_a_das_endpoint_token_requests_are_counted_unresolvable_and_dropped() {
    let s = FakeServer::start(|_| Reply::Body(200, "{}".into()));
    let r = start_resolver_now(test_config());
    for i in 0..3 {
        assert!(r.link.submit(token_request("M", i)));
    }
    // The thread goes on serving other requests.
    assert!(r
        .link
        .submit(url_request(HttpMethod::Get, &s.url("/x"), None)));
    let (req, _) = next_result(&r.results);
    assert_eq!(req.input, json!(s.url("/x")));
    assert_eq!(load(&r.metrics.resolver_unresolvable_total), 3);
    assert_eq!(load(&r.metrics.resolver_errors_total), 0);
    assert!(results_within(&r.results, Duration::from_millis(100)).is_empty());
}

fn ore_stack() -> Stack {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/stacks/OreStream.stack.json"
    );
    Stack::from_json(&std::fs::read(path).expect("test data ../shared/stacks/OreStream.stack.json"))
        .unwrap()
}

#[test]
fn ore_token_resolver_fills_ore_metadata_and_the_computed_motherlode() {
    const ORE_MINT: &str = "oreoU2P8bN6jkk3jbaiVxYnG1dCXcYxwhwyK9jSybcp";
    let das = FakeServer::start(|_| {
        Reply::Body(200, json!({"result": [{"id": ORE_MINT, "content": {"metadata": {"name": "Ore", "symbol": "ORE"}},
            "token_info": {"decimals": 11}}]}).to_string())
    });
    let stack = Arc::new(ore_stack());
    let r = start_resolver_now(das_config(&das, 100));
    let (mut w, inbox) = subscribed_worker(stack.clone(), &r, "OreRound/list");
    let key = "11111111111111111111111111111111";
    let round = json!({"id": 7, "deployed": vec![0; 25], "slot_hash": vec![0; 32], "count": vec![0; 25],
        "expires_at": 500, "motherlode": 150_000_000_000u64, "rent_payer": key, "top_miner": key,
        "top_miner_reward": 0, "total_deployed": 0, "total_miners": 0, "total_vaulted": 0, "total_winnings": 0,
        "__account_address": "Round7"});
    assert!(w.handle_decoded("ore::RoundState", &round, &acct(100)));
    assert_eq!(
        load(&r.metrics.resolver_requests_total),
        1,
        "the ORE mint, once"
    );

    let msg = r
        .results
        .recv_timeout(Duration::from_secs(10))
        .expect("the token metadata");
    assert!(w.handle(msg));
    let body: Json = serde_json::from_str(&das.seen()[0].body).unwrap();
    assert_eq!(body["params"]["ids"], json!([ORE_MINT]));
    let patch = inbox
        .try_iter()
        .filter_map(|m| frame_json(&m))
        .last()
        .unwrap();
    assert_eq!(patch["key"], "7");
    assert_eq!(
        patch["data"]["ore_metadata"],
        json!({"mint": ORE_MINT, "name": "Ore", "symbol": "ORE", "decimals": 11, "logo_uri": null})
    );
    assert_eq!(patch["data"]["state"]["motherlode"], json!(1.5), "{patch}");
}
