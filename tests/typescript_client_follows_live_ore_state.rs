//! The referee: the real npm `hyperstack-typescript` 0.6.9 client against the whole server — the
//! ORE stack from its JSON file, a synthetic ORE chain through the mock Geyser server, the real
//! gRPC client, the VM, the views and the reactors. The client subscribes to `OreRound/list` and to
//! `OreRound/latest` with `take: 1`, receives snapshot and live frames, and its merged entities
//! must equal the server's cache for those keys once the chain has stopped. Then it unsubscribes,
//! disconnects and reconnects.
//!
//! Needs `node` and `npm` on PATH; installs tests/node/node_modules with `npm ci` when missing.

mod node_support;

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use node_support::{ensure_npm_install, node_client};
use serde_json::Value;
use stackcore::engine::synth::{Generator, SynthConfig};
use stackcore::io::ingest::UpdateFactory;
use stackcore::{Server, Source, Stack, SyntheticConfig, WebSocketConfig};

const ORE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/stacks/OreStream.stack.json"
);
const UPDATES: usize = 2_500;

/// Reads frames of `view` from a fresh tungstenite subscription until its snapshot is complete.
fn server_rows(url: &str, view: &str) -> serde_json::Map<String, Value> {
    let addr = url.trim_start_matches("ws://");
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (mut ws, _) = tungstenite::client(url, stream).unwrap();
    ws.send(tungstenite::Message::text(format!(
        r#"{{"type":"subscribe","view":"{view}"}}"#
    )))
    .unwrap();
    let mut rows = serde_json::Map::new();
    loop {
        let msg = ws.read().expect("snapshot frames");
        let bytes = msg.into_data();
        let json = if bytes.first() == Some(&0x1f) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            bytes.to_vec()
        };
        let frame: Value = serde_json::from_slice(&json).unwrap();
        if frame["op"] != "snapshot" {
            continue;
        }
        for row in frame["data"].as_array().unwrap() {
            rows.insert(
                row["key"].as_str().unwrap().to_string(),
                row["data"].clone(),
            );
        }
        if frame["complete"].as_bool().unwrap_or(true) {
            return rows;
        }
    }
}

#[test]
fn typescript_client_follows_live_ore_state() {
    ensure_npm_install();
    let stack =
        Stack::from_json(&std::fs::read(ORE).expect("the ORE stack in ../shared/stacks")).unwrap();
    let idls = Arc::new(stack.idls().clone());
    // A finite chain, so that the final state can be compared.
    let chain: UpdateFactory = Arc::new(move |seed| {
        let mut g = Generator::new(
            &idls,
            SynthConfig {
                seed,
                ..SynthConfig::default()
            },
        );
        Box::new(std::iter::from_fn(move || Some(g.next_update())).take(UPDATES))
    });
    let mut synthetic = SyntheticConfig::new(7).with_generator(chain);
    synthetic.updates_per_sec = 500;
    let server = Server::builder()
        .spec(stack)
        .websocket_config(WebSocketConfig::new("127.0.0.1:0".parse().unwrap()))
        .health_monitoring()
        .source(Source::Synthetic(synthetic))
        .start()
        .unwrap();
    let url = format!("ws://{}", server.websocket_addr().unwrap());

    let child = node_client(
        &url,
        &[
            ("HS_PATCHES", "3"),
            ("HS_QUIET_MS", "1500"),
            ("HS_TIMEOUT_MS", "60000"),
        ],
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node client failed: {:?}", out.status);
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON line from the client");

    // The chain has ended (the client waited for silence); the server's cache is final.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .metrics()
        .upstream_updates_total
        .load(std::sync::atomic::Ordering::Relaxed)
        < UPDATES as u64
    {
        assert!(Instant::now() < deadline, "the chain did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rows = server_rows(&url, "OreRound/list");
    let client_list = report["views"]["OreRound/list"]
        .as_object()
        .expect("list entities");
    assert!(
        client_list.len() >= 2,
        "the client holds too few rounds: {}",
        client_list.len()
    );
    for (key, entity) in client_list {
        assert_eq!(
            Some(entity),
            rows.get(key),
            "OreRound/list entity {key} differs from the server's cache"
        );
    }
    // The client only reports after 3 live frames on each view (HS_PATCHES); `latest` counts
    // are from the first connection, `list` counts from the reconnection.
    let latest_frames = &report["frames"]["OreRound/latest"];
    assert_eq!(latest_frames["subscribed"], 1, "{latest_frames}");
    assert!(
        latest_frames["upsert"].as_u64().unwrap_or(0) >= 3,
        "{latest_frames}"
    );
    assert_eq!(
        report["frames"]["OreRound/list"]["subscribed"], 1,
        "the reconnection subscribed again"
    );

    // `latest` with take 1: exactly the round with the highest id, as the server holds it.
    let latest = report["views"]["OreRound/latest"]
        .as_object()
        .expect("latest entities");
    assert_eq!(latest.len(), 1, "take 1 keeps one entity: {latest:?}");
    let (key, entity) = latest.iter().next().unwrap();
    let top = rows
        .iter()
        .max_by_key(|(_, e)| e["id"]["round_id"].as_u64().unwrap_or(0))
        .map(|(k, _)| k.clone())
        .unwrap();
    assert_eq!(key, &top, "latest is the round with the highest id");
    assert_eq!(Some(entity), rows.get(key));
    assert_eq!(report["socketIssues"], serde_json::json!([]));
    assert_eq!(report["reconnected"], true);

    server.shutdown();
    server.join();
}
