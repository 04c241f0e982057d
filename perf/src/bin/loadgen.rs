//! `loadgen ws://HOST:PORT [clients] [seconds] [view,view..]`: connects N clients, subscribes, and
//! prints a summary line and JSON. Without the in-process slot clock it reports frames/s and errors
//! only; `e2e` adds latency.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use stackcore_perf::loadgen::{run, LoadConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = args.get(1).cloned() else {
        eprintln!("usage: loadgen ws://HOST:PORT [clients=100] [seconds=10] [views=OreRound/list]");
        std::process::exit(2);
    };
    let clients = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let seconds = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let views = args
        .get(4)
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_else(|| vec!["OreRound/list".into()]);
    let cfg = LoadConfig {
        url,
        clients,
        threads: 2,
        views,
        duration: Duration::from_secs(seconds),
    };
    let report = run(&cfg, None, Arc::new(AtomicBool::new(false)));
    println!("{}", report.summary());
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
}
