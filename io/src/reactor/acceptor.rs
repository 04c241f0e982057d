//! The acceptor thread: accepts, enforces `max_clients`, spreads sockets over the reactors.
//!
//! Over the limit, the client gets `HTTP/1.1 503` with a JSON body written straight away (a
//! fresh socket's send buffer always takes it), our write side is shut, and the socket is kept
//! (at most [`MAX_LINGERING`], each for at most [`LINGER`]) only to drain the request, so the
//! kernel sends FIN rather than a reset that could destroy the answer in flight.

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::shared::Shared;
use super::ReactorContext;
use crate::channels::{ReactorHandle, ToReactor};
use crate::metrics::Metrics;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Refused sockets kept open to drain their request; beyond this they are closed at once.
const MAX_LINGERING: usize = 1_024;
/// How long a refused socket is kept for draining.
const LINGER: Duration = Duration::from_secs(1);

/// Accepts on `listener` and hands each socket to a reactor (round robin) with
/// `ToReactor::Accept(..)` + wake; over `max_clients` answers HTTP 503 with a JSON body and
/// closes. Stops when the server shuts down (any reactor got `ToReactor::Shutdown`) or a
/// reactor is gone.
pub fn spawn_acceptor(
    listener: std::net::TcpListener,
    reactors: Vec<ReactorHandle>,
    ctx: Arc<ReactorContext>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let shared = Shared::of(&ctx);
    shared.add_acceptor(waker);
    std::thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || run(poll, listener, reactors, ctx, shared))
}

fn busy_body(max: usize) -> Vec<u8> {
    let body = format!(
        "{{\"error\":\"connection-limit-exceeded\",\"message\":\"Server is at its limit of {max} connections\",\"code\":\"connection-limit-exceeded\",\"retryable\":true}}"
    );
    let mut r = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\nX-Error-Code: connection-limit-exceeded\r\nCache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body.as_bytes());
    r
}

fn run(
    mut poll: Poll,
    listener: TcpListener,
    reactors: Vec<ReactorHandle>,
    ctx: Arc<ReactorContext>,
    shared: Arc<Shared>,
) {
    let metrics: &Metrics = &ctx.metrics;
    let max = ctx.config.max_clients;
    let busy = busy_body(max);
    let mut events = Events::with_capacity(256);
    let mut next = 0usize;
    // Refused sockets being drained: (socket, deadline). Token = index + generation-free id.
    let mut lingering: Vec<Option<(TcpStream, Instant)>> = Vec::new();
    let mut backoff: Option<Duration> = None;
    'outer: loop {
        if shared.is_shutdown() || reactors.is_empty() {
            break;
        }
        let timeout = if lingering.iter().any(Option::is_some) {
            Some(Duration::from_millis(100))
        } else {
            backoff
        };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::error!(error = %e, "acceptor poll failed; acceptor stops");
                break;
            }
        }
        if shared.is_shutdown() {
            break;
        }
        backoff = None;
        for ev in events.iter() {
            let i = ev.token().0;
            if i < lingering.len() {
                drain(&mut lingering, i);
            }
        }
        // Accept until the backlog is empty (edge-triggered).
        loop {
            match listener.accept() {
                Ok((mut tcp, _addr)) => {
                    let _ = tcp.set_nodelay(true);
                    let open = metrics.connected_clients.load(Ordering::Relaxed) as usize;
                    if open >= max {
                        Metrics::add(&metrics.rejected_connections_total, 1);
                        let _ = tcp.write_all(&busy);
                        let _ = tcp.shutdown(std::net::Shutdown::Write);
                        let live = lingering.iter().filter(|l| l.is_some()).count();
                        if live < MAX_LINGERING {
                            let idx =
                                lingering
                                    .iter()
                                    .position(Option::is_none)
                                    .unwrap_or_else(|| {
                                        lingering.push(None);
                                        lingering.len() - 1
                                    });
                            if poll
                                .registry()
                                .register(&mut tcp, Token(idx), Interest::READABLE)
                                .is_ok()
                            {
                                lingering[idx] = Some((tcp, Instant::now() + LINGER));
                                drain(&mut lingering, idx);
                            }
                        }
                        continue;
                    }
                    metrics.connected_clients.fetch_add(1, Ordering::Relaxed);
                    let r = &reactors[next % reactors.len()];
                    next = next.wrapping_add(1);
                    if !r.send(ToReactor::Accept(tcp)) {
                        metrics.connected_clients.fetch_sub(1, Ordering::Relaxed);
                        break 'outer;
                    }
                    r.wake();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: retry shortly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    backoff = Some(Duration::from_millis(10));
                    break;
                }
            }
        }
        let now = Instant::now();
        for l in lingering.iter_mut() {
            if l.as_ref().is_some_and(|(_, d)| now >= *d) {
                *l = None;
            }
        }
        while matches!(lingering.last(), Some(None)) {
            lingering.pop();
        }
    }
}

/// Reads and discards a refused socket's input; closes it at EOF or error.
fn drain(lingering: &mut [Option<(TcpStream, Instant)>], i: usize) {
    let mut buf = [0u8; 2048];
    let Some((tcp, _)) = lingering[i].as_mut() else {
        return;
    };
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    lingering[i] = None;
}
