//! `e2e`: our server under the standard load, in one process, measured by the same load generator
//! as the reference peer.
//!
//! ```text
//! e2e [--mode fed|geyser] [--rate 10000] [--seconds 15] [--clients 1000] [--threads 2]
//!     [--view OreRound/list] [--seed 1] [--reactors 1] [--stack FILE] [--profile OUT.svg]
//! ```
//!
//! - `fed`: the synthetic ORE updates go straight into the VM worker's queue
//!   (`Running::worker_sender(0)`), paced and stamped by the same loop that feeds the reference.
//! - `geyser`: the whole path, mock Geyser server → gRPC → our ingest → VM → reactors.
//!
//! `--profile` samples the whole process during the measured window and writes a flamegraph (needs
//! `--features flamegraph`; see `perf/flamegraph.sh`).
//!
//! Prints a summary line and one JSON object (feed stats, load report, RSS of the process).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use stackcore_engine::{Stack, Update};
use stackcore_io::channels::ToWorker;
use stackcore_io::config::YellowstoneConfig;
use stackcore_io::ingest::convert::to_proto;
use stackcore_io::ingest::{MockConfig, MockGeyser, Source};
use stackcore_perf::flags::{Flags, RunFlags, RUN_FLAGS};
use stackcore_perf::ours::{self, Layout};
use stackcore_perf::profile::Profile;
use stackcore_perf::{drive, loadgen, rss, Feed, LoadConfig, Pacer, SlotClock};

fn main() {
    if let Err(e) = run() {
        eprintln!("e2e: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let known: Vec<&str> = RUN_FLAGS
        .iter()
        .copied()
        .chain(["mode", "reactors", "profile"])
        .collect();
    let flags = Flags::parse(std::env::args().skip(1), &known, &[])?;
    let run = RunFlags::from_flags(&flags)?;
    let mode = flags.str("mode").unwrap_or("fed").to_string();
    let layout = Layout {
        reactors: flags.get("reactors", 1)?,
        ..Layout::default()
    };

    let bytes = std::fs::read(&run.stack)?;
    let stack = Arc::new(Stack::from_json(&bytes)?);
    let mut feed = Feed::from_stack_json(&bytes, run.seed)?;
    let clock = Arc::new(SlotClock::new(1 << 20));
    let stop = Arc::new(AtomicBool::new(false));

    // Whole path: the mock Geyser server publishes, our ingest subscribes over gRPC.
    let mock = match mode.as_str() {
        "fed" => None,
        "geyser" => {
            if run.rate == 0 {
                return Err(
                    "mode geyser needs a fixed --rate (the mock keeps a bounded history)".into(),
                );
            }
            Some(MockGeyser::start(MockConfig::default())?)
        }
        other => return Err(format!("unknown --mode {other} (fed|geyser)").into()),
    };
    let source = mock
        .as_ref()
        .map(|m| Source::Yellowstone(YellowstoneConfig::new(m.endpoint())));
    let server = ours::start(stack, layout, source)?;
    let addr = server
        .websocket_addr()
        .ok_or("the server has no WebSocket address")?;
    let sink: Box<dyn FnMut(Update) -> bool + Send> = match &mock {
        None => {
            let worker = server
                .worker_sender(0)
                .ok_or("the server has no VM worker")?;
            Box::new(move |u| worker.send(ToWorker::Update(u)).is_ok())
        }
        Some(m) => {
            let deadline = Instant::now() + Duration::from_secs(10);
            while m.active_streams() == 0 {
                if Instant::now() > deadline {
                    return Err(
                        "our ingest did not subscribe to the mock Geyser server within 10 s".into(),
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let publisher = m.publisher();
            Box::new(move |u| match to_proto(&u) {
                Ok(msg) => {
                    publisher.publish(msg);
                    true
                }
                Err(_) => true,
            })
        }
    };

    let rss_start = rss::self_rss_kib();
    let cfg = LoadConfig {
        url: format!("ws://{addr}"),
        clients: run.clients,
        threads: run.threads,
        views: run.views.clone(),
        duration: Duration::from_secs(run.seconds),
    };
    let load = loadgen::connect(&cfg, Some(clock.clone()), stop.clone());
    let rss_connected = rss::self_rss_kib();

    let feeder = {
        let (clock, stop, duration) = (clock.clone(), stop.clone(), cfg.duration);
        let pacer = Pacer::new(run.rate);
        let mut sink = sink;
        std::thread::Builder::new()
            .name("feed".into())
            .spawn(move || {
                drive(
                    || feed.next_update(),
                    pacer,
                    duration,
                    &clock,
                    &stop,
                    &mut sink,
                )
            })?
    };
    let profile = match flags.str("profile") {
        Some(_) => Some(Profile::start(997)?),
        None => None,
    };
    let report = load.start();
    stop.store(true, Ordering::Relaxed);
    let feed_stats = feeder.join().map_err(|_| "feed thread panicked")?;
    let rss_end = rss::self_rss_kib();
    if let (Some(p), Some(path)) = (profile, flags.str("profile")) {
        p.finish(std::path::Path::new(path))?;
        eprintln!("e2e: flamegraph written to {path}");
    }
    server.shutdown();
    drop(mock);

    println!(
        "ours[{mode}]: rate={} fed={:.0}/s {}",
        run.rate,
        feed_stats.per_sec,
        report.summary()
    );
    let out = json!({
        "server": "stackcore",
        "mode": mode,
        "rate": run.rate,
        "layout": { "workers": layout.workers, "reactors": layout.reactors },
        "feed": feed_stats,
        "load": report,
        "rss_kib": { "before_clients": rss_start, "after_connect": rss_connected, "after_run": rss_end },
        "note": "RSS is of the whole process: our server plus the in-process load generator",
    });
    println!("{out}");
    Ok(())
}
