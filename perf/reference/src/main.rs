//! The reference HyperStack server (`hyperstack-server` 0.6.9) as a side-by-side peer.
//!
//! It serves a stack from its `.stack.json` file alone: the reference interpreter's bytecode is
//! built from the file (protocol.md §8.1), the server gets the three views per entity plus the
//! stack's derived views (§8.2), and its `parser_setup` hook is fed the same synthetic ORE updates
//! as stackcore, at the same rate, by the same loop ([`stackcore_perf::drive`]): each update is
//! decoded by our engine into the reference's JSON event shape, run through the reference VM
//! (`process_event`), and the mutations are pushed as one `MutationBatch` with its slot context.
//! The feed stamps the [`SlotClock`] per slot, and our load generator runs in this process against
//! the server, so latency is measured by the same code, the same way, as for stackcore.
//!
//! ```text
//! reference-peer [--stack FILE] [--port 0] [--rate 10000] [--seconds 15] [--clients 1000]
//!                [--threads 2] [--view OreRound/list] [--seed 1] [--serve-only] [--allow-no-feed]
//! ```
//!
//! `--serve-only` starts the server and the feed and runs until killed (for the memory harness,
//! which measures this process from outside); it prints `READY <port> <pid>` once listening.
//!
//! Not reproduced: the resolver and instruction hooks of the reference's generated glue (PDA
//! reverse lookups, queued account updates, resolvers); the bare VM runs, as in §8.1.

mod reference;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use stackcore_perf::flags::{Flags, RunFlags, RUN_FLAGS};
use stackcore_perf::{loadgen, rss, Feed, LoadConfig, Pacer, SlotClock};

fn main() -> anyhow::Result<()> {
    let known: Vec<&str> = RUN_FLAGS.iter().copied().chain(["port"]).collect();
    let flags = Flags::parse(std::env::args().skip(1), &known, &["serve-only", "allow-no-feed"])?;
    let args = RunFlags::from_flags(&flags)?;
    let port: u16 = flags.get("port", 0)?;
    let bytes = std::fs::read(&args.stack).with_context(|| format!("reading {}", args.stack))?;
    let feed = match Feed::from_stack_json(&bytes, args.seed) {
        Ok(f) => Some(f),
        Err(e) if flags.switch("allow-no-feed") => {
            eprintln!("reference-peer: no feed ({e}); serving idle");
            None
        }
        Err(e) => return Err(e).context("building the synthetic ORE feed"),
    };
    let clock = Arc::new(SlotClock::new(1 << 20));
    let stop = Arc::new(AtomicBool::new(false));
    let peer = reference::start(&bytes, port, feed, Pacer::new(args.rate), clock.clone(), stop.clone())?;
    let url = format!("ws://127.0.0.1:{}", peer.port);

    if flags.switch("serve-only") {
        peer.go(Duration::from_secs(u64::MAX / 4));
        println!("READY {} {}", peer.port, std::process::id());
        loop {
            std::thread::park();
        }
    }

    let rss_start = rss::self_rss_kib();
    let cfg = LoadConfig {
        url,
        clients: args.clients,
        threads: args.threads,
        views: args.views.clone(),
        duration: Duration::from_secs(args.seconds),
    };
    let load = loadgen::connect(&cfg, Some(clock.clone()), stop.clone());
    let rss_connected = rss::self_rss_kib();
    let feed_stats = peer.go(cfg.duration);
    let report = load.start();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let feed_stats = feed_stats.recv_timeout(Duration::from_secs(5)).ok();
    let rss_end = rss::self_rss_kib();

    println!("reference: rate={} {}", args.rate, report.summary());
    let out = json!({
        "server": "reference",
        "mode": "fed",
        "rate": args.rate,
        "feed": feed_stats,
        "load": report,
        "rss_kib": { "before_clients": rss_start, "after_connect": rss_connected, "after_run": rss_end },
        "note": "RSS is of the whole process: the reference server plus the in-process load generator",
    });
    println!("{out}");
    // The hyperstack runtime has no shutdown handle; the process ends here.
    std::process::exit(0)
}
