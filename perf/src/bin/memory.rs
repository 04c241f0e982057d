//! `memory`: server RSS per idle and per active WebSocket connection.
//!
//! ```text
//! memory [--server ours|reference] [--conns 10000] [--view OreRound/list] [--rate 10000]
//!        [--settle-ms 3000] [--stack FILE] [--reference-bin PATH]
//! memory serve [--rate 10000] [--stack FILE]      (internal: our server, fed, in this process)
//! ```
//!
//! The server runs as a child process (ours: `memory serve`; the reference: `reference-peer
//! --serve-only`), fed at `--rate` so that subscribed connections carry traffic. This process opens
//! the connections and reads the child's RSS from `/proc`: once before connecting (base), once
//! with every connection open and silent (idle), once after every connection subscribed, nearly
//! all (99 %) received a frame (waiting up to 60 s), and they read frames for `--settle-ms` more
//! (active). Raise the fd limit first (`ulimit -n 20000`): both processes
//! hold one descriptor per connection. If connecting fails part-way, the run measures the
//! connections that did open and says so.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stackcore_engine::Stack;
use stackcore_io::channels::ToWorker;
use stackcore_perf::flags::{Flags, DEFAULT_STACK};
use stackcore_perf::memory::{parse_ready, per_connection_bytes, MemoryReport};
use stackcore_perf::ours::{self, Layout};
use stackcore_perf::{drive, rss, Feed, Pacer, SlotClock};
use tungstenite::{Message, WebSocket};

type Error = Box<dyn std::error::Error>;

const KNOWN: &[&str] = &[
    "server",
    "conns",
    "view",
    "rate",
    "settle-ms",
    "stack",
    "reference-bin",
];

fn main() {
    let result = Flags::parse(std::env::args().skip(1), KNOWN, &[])
        .map_err(Error::from)
        .and_then(|f| {
            if f.positional.first().map(String::as_str) == Some("serve") {
                serve(&f)
            } else {
                measure(&f)
            }
        });
    if let Err(e) = result {
        eprintln!("memory: {e}");
        std::process::exit(1);
    }
}

/// Our server, fed forever; prints `READY <port> <pid>`.
fn serve(f: &Flags) -> Result<(), Error> {
    let stack_path = f.str("stack").unwrap_or(DEFAULT_STACK);
    let bytes = std::fs::read(stack_path)?;
    let stack = Arc::new(Stack::from_json(&bytes)?);
    let server = ours::start(
        stack,
        Layout {
            max_clients: 50_000,
            ..Layout::default()
        },
        None,
    )?;
    let addr = server.websocket_addr().ok_or("no WebSocket address")?;
    match (Feed::from_stack_json(&bytes, 1), server.worker_sender(0)) {
        (Ok(mut feed), Some(worker)) => {
            let pacer = Pacer::new(f.get("rate", 10_000)?);
            std::thread::spawn(move || {
                let clock = SlotClock::new(1024);
                let stop = AtomicBool::new(false);
                drive(
                    || feed.next_update(),
                    pacer,
                    Duration::MAX,
                    &clock,
                    &stop,
                    |u| worker.send(ToWorker::Update(u)).is_ok(),
                )
            });
        }
        (Err(e), _) => eprintln!("memory serve: no feed ({e}); serving idle"),
        (_, None) => eprintln!("memory serve: no VM worker; serving idle"),
    }
    println!("READY {} {}", addr.port(), std::process::id());
    loop {
        std::thread::park();
    }
}

fn spawn_server(f: &Flags, which: &str) -> Result<(Child, u16, u32), Error> {
    let stack = f.str("stack").unwrap_or(DEFAULT_STACK).to_string();
    let rate = f.get::<u64>("rate", 10_000)?.to_string();
    let mut cmd = match which {
        "ours" => {
            let mut c = Command::new(std::env::current_exe()?);
            c.args(["serve", "--rate", &rate, "--stack", &stack]);
            c
        }
        "reference" => {
            let bin = f
                .str("reference-bin")
                .unwrap_or("perf/reference/target/release/stackcore-reference-peer");
            let mut c = Command::new(bin);
            c.args([
                "--serve-only",
                "--allow-no-feed",
                "--rate",
                &rate,
                "--stack",
                &stack,
            ]);
            c
        }
        other => return Err(format!("unknown --server {other} (ours|reference)").into()),
    };
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout from the server")?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some((port, pid)) = parse_ready(&line) {
                    return Ok((child, port, pid));
                }
            }
            _ => {
                let _ = child.kill();
                return Err("the server exited before it was ready".into());
            }
        }
    }
}

fn measure(f: &Flags) -> Result<(), Error> {
    let which = f.str("server").unwrap_or("ours").to_string();
    let target: usize = f.get("conns", 10_000)?;
    let settle = Duration::from_millis(f.get("settle-ms", 3_000)?);
    let views = f.list("view", &["OreRound/list"]);
    let (mut child, port, pid) = spawn_server(f, &which)?;
    let result = measure_child(&which, port, pid, target, settle, &views);
    let _ = child.kill();
    let _ = child.wait();
    let report = result?;
    println!("{}", report.summary());
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn rss_of(pid: u32) -> Result<u64, Error> {
    rss::pid_rss_kib(pid).ok_or_else(|| format!("cannot read the RSS of pid {pid}").into())
}

fn measure_child(
    which: &str,
    port: u16,
    pid: u32,
    target: usize,
    settle: Duration,
    views: &[String],
) -> Result<MemoryReport, Error> {
    let url = format!("ws://127.0.0.1:{port}");
    std::thread::sleep(settle);
    let base_kib = rss_of(pid)?;

    let mut conns: Vec<WebSocket<TcpStream>> = Vec::with_capacity(target);
    for i in 0..target {
        let opened = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| e.to_string())
            .and_then(|s| tungstenite::client(url.as_str(), s).map_err(|e| e.to_string()));
        match opened {
            Ok((ws, _)) => conns.push(ws),
            Err(e) => {
                eprintln!(
                    "memory: connection {i} failed ({e}); measuring {} connections",
                    conns.len()
                );
                break;
            }
        }
    }
    std::thread::sleep(settle);
    let idle_kib = rss_of(pid)?;

    let mut subscribed = 0;
    for ws in &mut conns {
        let ok = views.iter().all(|v| {
            ws.send(Message::text(format!(
                r#"{{"type":"subscribe","view":"{v}"}}"#
            )))
            .is_ok()
        });
        if ok && ws.get_ref().set_nonblocking(true).is_ok() {
            subscribed += 1;
        }
    }
    // Wait (up to 60 s) until nearly every connection has its first frame, then read for one
    // more settle period: a server still working through its backlog is measured when loaded.
    let mut frames = 0u64;
    let mut got = vec![false; conns.len()];
    let mut with_frames = 0usize;
    let wait_until = Instant::now() + Duration::from_secs(60);
    let mut settle_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if settle_until.is_some_and(|t| now >= t) {
            break;
        }
        if settle_until.is_none() && (with_frames * 100 >= conns.len() * 99 || now >= wait_until) {
            settle_until = Some(now + settle);
        }
        for (i, ws) in conns.iter_mut().enumerate() {
            while let Ok(msg) = ws.read() {
                if msg.is_binary() || msg.is_text() {
                    frames += 1;
                    if !got[i] {
                        got[i] = true;
                        with_frames += 1;
                    }
                }
            }
        }
    }
    let active_kib = rss_of(pid)?;
    let connected = conns.len();
    Ok(MemoryReport {
        server: which.to_string(),
        target,
        connected,
        subscribed,
        base_kib,
        idle_kib,
        active_kib,
        bytes_per_idle_conn: per_connection_bytes(base_kib, idle_kib, connected),
        bytes_per_active_conn: per_connection_bytes(base_kib, active_kib, connected),
        frames_during_active: frames,
        connections_with_frames: with_frames,
    })
}
