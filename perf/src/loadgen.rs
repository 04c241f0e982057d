//! N WebSocket clients on a few threads, each subscribing to chosen views and timing every frame.
//!
//! Each thread owns a mio `Poll` and its share of the connections (tungstenite over non-blocking
//! sockets). For a frame whose `seq` names a slot that the [`SlotClock`] knows, the latency is
//! now − send time of that slot. The report has percentiles, frames/s and errors.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;
use tungstenite::{Message, WebSocket};

use crate::clock::SlotClock;
use crate::stats::{Latency, Percentiles};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `ws://host:port`.
    pub url: String,
    pub clients: usize,
    pub threads: usize,
    /// Views to subscribe to, each client all of them.
    pub views: Vec<String>,
    pub duration: Duration,
}

/// What came out, as one summary line and JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub clients: usize,
    pub connected: usize,
    pub frames: u64,
    pub bytes: u64,
    pub frames_per_sec: f64,
    pub timed_frames: u64,
    pub latency: Percentiles,
    pub errors: u64,
    pub closed_by_server: u64,
    pub seconds: f64,
}

impl LoadReport {
    pub fn summary(&self) -> String {
        format!(
            "clients={} connected={} frames={} frames/s={:.0} p50={:.0}us p90={:.0}us p99={:.0}us p999={:.0}us max={:.0}us errors={} closed={}",
            self.clients,
            self.connected,
            self.frames,
            self.frames_per_sec,
            self.latency.p50_us,
            self.latency.p90_us,
            self.latency.p99_us,
            self.latency.p999_us,
            self.latency.max_us,
            self.errors,
            self.closed_by_server
        )
    }
}

#[derive(Default)]
struct ThreadResult {
    connected: usize,
    frames: u64,
    bytes: u64,
    timed: u64,
    errors: u64,
    closed: u64,
    latency: Latency,
}

/// Connected clients, held until [`Load::start`] lets them read; `start` begins the measured window.
pub struct Load {
    handles: Vec<std::thread::JoinHandle<ThreadResult>>,
    barrier: Arc<Barrier>,
    connected: Arc<AtomicUsize>,
    clients: usize,
}

/// Connects `cfg.clients` clients on `cfg.threads` threads and subscribes them; returns once every
/// thread has tried all its connections. Nothing is read (or timed) before [`Load::start`].
pub fn connect(cfg: &LoadConfig, clock: Option<Arc<SlotClock>>, stop: Arc<AtomicBool>) -> Load {
    let threads = cfg.threads.max(1);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let connected = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let n = cfg.clients / threads + usize::from(t < cfg.clients % threads);
            let cfg = cfg.clone();
            let clock = clock.clone();
            let stop = stop.clone();
            let barrier = barrier.clone();
            let connected = connected.clone();
            std::thread::Builder::new()
                .name(format!("loadgen-{t}"))
                .spawn(move || run_thread(&cfg, n, clock.as_deref(), &stop, &barrier, &connected))
                .expect("spawn loadgen thread")
        })
        .collect();
    let load = Load {
        handles,
        barrier,
        connected,
        clients: cfg.clients,
    };
    load.barrier.wait();
    load
}

impl Load {
    /// Clients whose handshake and subscribe went through.
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Acquire)
    }

    /// Lets every client read for the configured duration (or until `stop`), then reports.
    pub fn start(self) -> LoadReport {
        let started = Instant::now();
        self.barrier.wait();
        let mut total = ThreadResult::default();
        for h in self.handles {
            let r = h.join().unwrap_or_default();
            total.connected += r.connected;
            total.frames += r.frames;
            total.bytes += r.bytes;
            total.timed += r.timed;
            total.errors += r.errors;
            total.closed += r.closed;
            total.latency.merge(&r.latency);
        }
        let seconds = started.elapsed().as_secs_f64();
        LoadReport {
            clients: self.clients,
            connected: total.connected,
            frames: total.frames,
            bytes: total.bytes,
            frames_per_sec: total.frames as f64 / seconds,
            timed_frames: total.timed,
            latency: total.latency.percentiles(),
            errors: total.errors,
            closed_by_server: total.closed,
            seconds,
        }
    }
}

/// Connects, then runs the load for `cfg.duration` (or until `stop` is set) and reports.
pub fn run(cfg: &LoadConfig, clock: Option<Arc<SlotClock>>, stop: Arc<AtomicBool>) -> LoadReport {
    connect(cfg, clock, stop).start()
}

fn connect_client(url: &str, views: &[String]) -> Result<WebSocket<std::net::TcpStream>, String> {
    let addr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let stream = std::net::TcpStream::connect(&addr).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).ok();
    let (mut ws, _) = tungstenite::client(url, stream).map_err(|e| e.to_string())?;
    for view in views {
        let msg = format!(r#"{{"type":"subscribe","view":"{view}"}}"#);
        ws.send(Message::text(msg)).map_err(|e| e.to_string())?;
    }
    ws.get_ref()
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

fn run_thread(
    cfg: &LoadConfig,
    n: usize,
    clock: Option<&SlotClock>,
    stop: &AtomicBool,
    barrier: &Barrier,
    connected: &AtomicUsize,
) -> ThreadResult {
    let mut r = ThreadResult::default();
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(_) => {
            r.errors += 1;
            barrier.wait();
            barrier.wait();
            return r;
        }
    };
    let mut conns: Vec<Option<WebSocket<std::net::TcpStream>>> = Vec::with_capacity(n);
    for i in 0..n {
        match connect_client(&cfg.url, &cfg.views) {
            Ok(ws) => {
                let fd = ws.get_ref().as_raw_fd();
                if poll
                    .registry()
                    .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)
                    .is_err()
                {
                    r.errors += 1;
                }
                conns.push(Some(ws));
                r.connected += 1;
                connected.fetch_add(1, Ordering::AcqRel);
            }
            Err(_) => {
                r.errors += 1;
                conns.push(None);
            }
        }
    }
    barrier.wait(); // connected
    barrier.wait(); // measuring
    let deadline = Instant::now() + cfg.duration;
    let mut events = Events::with_capacity(1024);
    let mut last_ping = Instant::now();
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if poll
            .poll(&mut events, Some(Duration::from_millis(50)))
            .is_err()
        {
            continue;
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(ws) = conns.get_mut(i).and_then(|c| c.as_mut()) else {
                continue;
            };
            loop {
                match ws.read() {
                    Ok(Message::Binary(b)) => {
                        r.frames += 1;
                        r.bytes += b.len() as u64;
                        if let (Some(clock), Some(slot)) = (clock, seq_slot(&b)) {
                            if let Some(age) = clock.age_nanos(slot) {
                                r.latency.record(age);
                                r.timed += 1;
                            }
                        }
                    }
                    Ok(Message::Text(_)) => r.frames += 1,
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if e.kind() == std::io::ErrorKind::WouldBlock =>
                    {
                        break
                    }
                    Err(tungstenite::Error::ConnectionClosed)
                    | Err(tungstenite::Error::AlreadyClosed) => {
                        r.closed += 1;
                        conns[i] = None;
                        break;
                    }
                    Err(_) => {
                        r.errors += 1;
                        conns[i] = None;
                        break;
                    }
                }
            }
        }
        if last_ping.elapsed() > Duration::from_secs(15) {
            last_ping = Instant::now();
            for ws in conns.iter_mut().flatten() {
                let _ = ws.send(Message::text(r#"{"type":"ping"}"#));
            }
        }
    }
    for ws in conns.iter_mut().flatten() {
        let _ = ws.close(None);
        let _ = ws.flush();
    }
    r
}

/// The slot of a frame's `"seq":"SLOT:INDEX"`, found without parsing the JSON (gzip frames: none).
pub fn seq_slot(frame: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"seq\":\"";
    if frame.first() == Some(&0x1f) {
        return None;
    }
    let at = memchr::memmem::rfind(frame, KEY)? + KEY.len();
    let rest = &frame[at..];
    let end = rest.iter().position(|b| *b == b':')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_slot_reads_the_frame_seq_and_ignores_gzip() {
        let f = br#"{"mode":"list","entity":"A/list","op":"patch","key":"1","data":{"_seq":"7:000000000001"},"seq":"312:000000000009"}"#;
        assert_eq!(seq_slot(f), Some(312));
        assert_eq!(seq_slot(br#"{"op":"upsert"}"#), None);
        assert_eq!(seq_slot(&[0x1f, 0x8b, 0, 0]), None);
    }
}
