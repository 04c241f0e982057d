//! Limits: max clients, the slow-consumer policy, idle timeout, pings, shutdown.

mod reactor_support;

use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reactor_support::*;
use stackcore_engine::frame::SharedFrame;
use stackcore_io::config::WebSocketConfig;
use tungstenite::handshake::HandshakeError;
use tungstenite::Message;

#[test]
fn over_max_clients_gets_http_503_with_a_json_body() {
    let s = Server::start(WebSocketConfig::default().with_max_clients(2), 2);
    let a = connect(&s.url());
    let _b = connect(&s.url());
    match try_connect(&s.url(), &[]) {
        Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            assert_eq!(resp.status().as_u16(), 503);
            assert_eq!(
                resp.headers()["content-type"],
                "application/json; charset=utf-8"
            );
            let v: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(v["code"], "connection-limit-exceeded");
            assert_eq!(v["error"], "connection-limit-exceeded");
            assert_eq!(v["retryable"], true);
        }
        Ok(_) => panic!("third client admitted"),
        Err(e) => panic!("unexpected {e}"),
    }
    assert_eq!(s.gauge(|m| &m.rejected_connections_total), 1);
    drop(a);
    wait_for("a slot frees", || s.gauge(|m| &m.connected_clients) == 1);
    let mut c = connect(&s.url());
    subscribe(&mut c, "OreRound/list", None);
}

/// A client socket with a tiny receive buffer, so that not reading fills the path quickly.
fn small_window_client(url: &str, addr: std::net::SocketAddr) -> Client {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let tcp: TcpStream = sock.into();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tungstenite::client::client(url, tcp)
        .map(|(ws, _)| ws)
        .unwrap()
}

#[test]
fn a_client_that_stops_reading_is_closed_with_its_reason_while_200_others_get_every_frame() {
    const FAST: usize = 200;
    const BATCH: u64 = 8;
    let s = Server::start(
        WebSocketConfig::default()
            .with_max_outbound_bytes(32 * 1024)
            .with_message_queue_size(512),
        2,
    );
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..FAST {
        let mut c = connect(&s.url());
        subscribe(&mut c, "OreRound/list", None);
        let received = received.clone();
        readers.push(std::thread::spawn(move || {
            let mut last = 0u64;
            loop {
                let v = next_json(&mut c);
                if v["op"] == "delete" {
                    return (last, c);
                }
                let n = v["data"]["n"].as_u64().unwrap();
                assert_eq!(n, last + 1, "frames arrive in order, none lost");
                last = n;
                received.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut slow = small_window_client(&s.url(), s.addr);
    subscribe(&mut slow, "OreRound/list", None);

    // Paced broadcast: the fast readers never fall behind by more than one batch, so only the
    // client that does not read can pass its budget.
    let pad = "x".repeat(4000);
    let mut n = 0u64;
    while s.gauge(|m| &m.slow_consumers_closed_total) == 0 {
        assert!(n < 20_000, "the silent client was never closed");
        for _ in 0..BATCH {
            n += 1;
            let f = SharedFrame::binary(
                format!(r#"{{"mode":"list","entity":"OreRound/list","op":"patch","key":"k","data":{{"n":{n},"pad":"{pad}"}}}}"#)
                    .as_bytes(),
            );
            s.broadcast("OreRound/list", "k", &f);
        }
        let want = n * FAST as u64;
        wait_for("fast readers keep up", || {
            received.load(Ordering::Relaxed) == want
        });
    }
    let end = SharedFrame::binary(
        br#"{"mode":"list","entity":"OreRound/list","op":"delete","key":"k","data":null}"#,
    );
    s.broadcast("OreRound/list", "k", &end);
    for r in readers {
        let (last, mut c) = r.join().unwrap();
        assert_eq!(last, n, "a live client missed frames");
        send(&mut c, r#"{"type":"ping"}"#); // still open
    }
    assert_eq!(s.gauge(|m| &m.slow_consumers_closed_total), 1);

    // The silent client now reads: some frames, then the error, then 4008 slow-consumer.
    let mut error = None;
    let close = loop {
        match slow.read() {
            Ok(Message::Text(t)) => {
                error = Some(serde_json::from_str::<serde_json::Value>(&t).unwrap())
            }
            Ok(Message::Close(f)) => {
                let _ = slow.flush();
                break f.expect("a close frame with a code");
            }
            Ok(_) => {}
            Err(e) => panic!("connection ended without a close frame: {e}"),
        }
    };
    let error = error.expect("a text error before the close");
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"], "slow-consumer");
    assert_eq!(error["retryable"], true);
    assert_eq!(error["fatal"], true);
    assert_eq!(u16::from(close.code), 4008);
    assert_eq!(close.reason.as_str(), "slow-consumer");
    // Every connection is gone (the fast ones were dropped above): nothing stays queued.
    wait_for("connections and queued bytes released", || {
        s.gauge(|m| &m.connected_clients) == 0 && s.gauge(|m| &m.pending_outbound_bytes) == 0
    });
}

#[test]
fn a_silent_peer_is_pinged() {
    let s = Server::start(
        WebSocketConfig::default().with_ping_interval(Duration::from_millis(30)),
        1,
    );
    let mut c = connect(&s.url());
    let m = c.read().unwrap();
    assert!(matches!(m, Message::Ping(_)), "expected a ping, got {m:?}");
}

#[test]
fn answering_pings_keeps_a_quiet_client_alive_past_the_idle_timeout() {
    let s = Server::start(
        WebSocketConfig::default()
            .with_ping_interval(Duration::from_millis(10))
            .with_idle_timeout(Duration::from_secs(1)),
        1,
    );
    let mut c = connect(&s.url());
    // tungstenite answers each ping with a pong on the next read; 150 pings, at least one
    // ping interval apart, span past the idle timeout only if the pongs count as inbound.
    let mut pings = 0;
    while pings < 150 {
        match c.read().unwrap() {
            Message::Ping(_) => pings += 1,
            m => panic!("closed or unexpected: {m:?}"),
        }
    }
    subscribe(&mut c, "OreRound/list", None);
}

#[test]
fn an_idle_connection_is_closed_with_4000() {
    let s = Server::start(
        WebSocketConfig::default()
            .with_ping_interval(Duration::from_secs(60))
            .with_idle_timeout(Duration::from_millis(100)),
        1,
    );
    let mut c = connect(&s.url());
    let (code, reason) = read_until_close(&mut c).expect("close frame");
    assert_eq!((code, reason.as_str()), (4000, "idle-timeout"));
    wait_for("released", || s.gauge(|m| &m.connected_clients) == 0);
}

#[test]
fn shutdown_closes_every_client_with_1001_and_stops_the_acceptor() {
    let s = Server::start(WebSocketConfig::default(), 2);
    let addr = s.addr;
    let mut a = connect(&s.url());
    let mut b = connect(&s.url());
    subscribe(&mut a, "OreRound/list", None);
    subscribe(&mut b, "OreRound/state", Some("k"));
    let metrics = s.metrics.clone();
    s.shutdown(); // joins the reactors, the acceptor and the worker
    for c in [&mut a, &mut b] {
        let (code, reason) = read_until_close(c).expect("close frame");
        assert_eq!((code, reason.as_str()), (1001, "going away"));
    }
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
    assert_eq!(metrics.connected_clients.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.subscriptions.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.pending_outbound_bytes.load(Ordering::Relaxed), 0);
}

#[test]
fn control_frames_are_written_between_data_frames_never_inside_one() {
    let s = Server::start(
        WebSocketConfig::default()
            .with_ping_interval(Duration::from_millis(2))
            .with_max_outbound_bytes(64 << 20),
        1,
    );
    let mut c = small_window_client(&s.url(), s.addr);
    subscribe(&mut c, "OreRound/list", None);
    // Large frames go out in many partial writes while pings are due all along.
    let pad = "y".repeat(200_000);
    for n in 1..=30u64 {
        let f = SharedFrame::binary(
            format!(r#"{{"op":"patch","key":"k","data":{{"n":{n},"pad":"{pad}"}}}}"#).as_bytes(),
        );
        s.broadcast("OreRound/list", "k", &f);
    }
    let (mut pings, mut last) = (0, 0);
    while last < 30 {
        std::thread::sleep(Duration::from_millis(1)); // a slow reader: pings fall due
        match c.read().expect("a well-formed stream") {
            Message::Ping(_) => pings += 1,
            Message::Binary(b) => {
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                assert_eq!(v["data"]["n"], last + 1);
                last += 1;
            }
            m => panic!("unexpected {m:?}"),
        }
    }
    assert!(
        pings > 0,
        "no ping was interleaved, so the test proved nothing"
    );
}
