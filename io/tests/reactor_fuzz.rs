//! A seeded fuzz loop over the inbound path: garbage before the handshake, random and
//! malformed frames, bad UTF-8, fragments, oversized lengths, random JSON. The reactors must not
//! panic (a panic fails `Server::shutdown`'s join) and must release every connection.

mod reactor_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reactor_support::*;
use stackcore_io::config::WebSocketConfig;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One client frame: `fin`, `opcode`, payload, masked or not, optionally lying about its length.
fn frame(rng: &mut Rng, fin: bool, opcode: u8, payload: &[u8], masked: bool, lie: bool) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | (opcode & 0x0f)];
    if rng.below(20) == 0 {
        out[0] |= 0x40; // a reserved bit
    }
    let len = if lie {
        rng.next() >> rng.below(64)
    } else {
        payload.len() as u64
    };
    let m = if masked { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= u16::MAX as u64 {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    let key = (rng.next() as u32).to_be_bytes();
    if masked {
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

fn random_text(rng: &mut Rng) -> Vec<u8> {
    let pieces: &[&[u8]] = &[
        br#"{"type":"subscribe","view":"OreRound/list"}"#,
        br#"{"type":"unsubscribe","view":"OreRound/list"}"#,
        br#"{"type":"ping"}"#,
        br#"{"type":"refresh_auth","token":"x.y.z"}"#,
        br#"{"view":"OreRound/state","key":"1"}"#,
        br#"{"type":"subscribe","view":"Huge/list","take":99999999999999999999}"#,
        b"{",
        b"}",
        b"\"",
        b"null",
        b"[]",
        b"\xff\xfe",
        b"\xc3",
        b"type",
        b":",
    ];
    let n = 1 + rng.below(6);
    (0..n)
        .flat_map(|_| pieces[rng.below(pieces.len() as u64) as usize].to_vec())
        .collect()
}

const UPGRADE: &[u8] = b"GET /fuzz HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn one_case(s: &Server, rng: &mut Rng) {
    let mut tcp = TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut wire = Vec::new();
    match rng.below(4) {
        0 => {
            // Garbage, possibly HTTP-looking, instead of an upgrade.
            if rng.below(2) == 0 {
                wire.extend_from_slice(&UPGRADE[..rng.below(UPGRADE.len() as u64) as usize]);
            }
            let n = rng.below(3000) as usize;
            wire.extend(rng.bytes(n));
        }
        _ => {
            wire.extend_from_slice(UPGRADE);
            for _ in 0..1 + rng.below(12) {
                let fin = rng.below(4) != 0;
                let opcode = match rng.below(10) {
                    0..=3 => 1,
                    4 => 2,
                    5 => 0,
                    6 => 9,
                    7 => 10,
                    8 => 8,
                    _ => rng.below(16) as u8,
                };
                let payload = match rng.below(5) {
                    0 => {
                        let n = rng.below(300) as usize;
                        rng.bytes(n)
                    }
                    1 => vec![b'a'; 70_000], // over the 64 KiB limit
                    _ => random_text(rng),
                };
                let masked = rng.below(15) != 0;
                let lie = rng.below(15) == 0;
                wire.extend(frame(rng, fin, opcode, &payload, masked, lie));
            }
        }
    }
    // Send in random chunks so parsers see every split point.
    let mut at = 0;
    while at < wire.len() {
        let n = (1 + rng.below(2048) as usize).min(wire.len() - at);
        if tcp.write_all(&wire[at..at + n]).is_err() {
            break;
        }
        at += n;
    }
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 8192];
    while let Ok(n) = tcp.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

#[test]
fn random_inbound_bytes_never_panic_a_reactor_and_leak_nothing() {
    let s = Server::start(
        WebSocketConfig::default().with_ping_interval(Duration::from_millis(200)),
        2,
    );
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let s = &s;
            let mut rng = Rng(rng.next() ^ t);
            scope.spawn(move || {
                for _ in 0..100 {
                    one_case(s, &mut rng);
                }
            });
        }
    });
    wait_for("every fuzz connection released", || {
        s.gauge(|m| &m.connected_clients) == 0 && s.gauge(|m| &m.subscriptions) == 0
    });
    wait_for("worker subscriptions released", || {
        s.worker_sub_count() == 0
    });
    // Still serving.
    let mut c = connect(&s.url());
    subscribe(&mut c, "OreRound/list", None);
    drop(c);
    s.shutdown(); // panics if a reactor thread panicked
}
