//! Opening and closing 10,000 connections leaves no descriptor, connection or subscription
//! behind.

mod reactor_support;

use reactor_support::*;
use stackcore_io::config::WebSocketConfig;
use tungstenite::Message;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn churning_10000_connections_returns_fds_and_the_connection_table_to_baseline() {
    const TOTAL: usize = 10_000;
    const BATCH: usize = 500;
    let s = Server::start(WebSocketConfig::default(), 2);
    // Warm up once so lazily created state (thread buffers, tables) is in the baseline.
    drop(connect(&s.url()));
    wait_for("warm-up released", || {
        s.gauge(|m| &m.connected_clients) == 0
    });
    let fds = open_fds();
    let rss = rss_kib();

    let mut done = 0;
    while done < TOTAL {
        let mut batch: Vec<Client> = (0..BATCH).map(|_| connect(&s.url())).collect();
        // A third subscribe, a third close politely, all are then dropped.
        for (i, c) in batch.iter_mut().enumerate() {
            match i % 3 {
                0 => send(c, r#"{"type":"subscribe","view":"OreRound/list"}"#),
                1 => {
                    let _ = c.close(None);
                }
                _ => {}
            }
        }
        for (i, mut c) in batch.drain(..).enumerate() {
            if i % 3 == 1 {
                // Finish the close handshake the client started.
                while let Ok(m) = c.read() {
                    if let Message::Close(_) = m {
                        let _ = c.flush();
                    }
                }
            }
        }
        done += BATCH;
    }
    wait_for("every connection released", || {
        s.gauge(|m| &m.connected_clients) == 0
            && s.gauge(|m| &m.subscriptions) == 0
            && s.gauge(|m| &m.pending_outbound_bytes) == 0
            && s.worker_sub_count() == 0
    });
    wait_for("descriptors back to baseline", || open_fds() <= fds);
    // Memory: the allocator may keep freed pages, but 10,000 connections' worth must not stay.
    let grown = rss_kib().saturating_sub(rss);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB over the churn");
    // The server still serves.
    let mut c = connect(&s.url());
    subscribe(&mut c, "OreRound/list", None);
    drop(c);
}
