//! Memory per connection: the server runs in its own process, the clients in another, and the
//! server's RSS is read from `/proc/<pid>/status` before and after the connections open.

use serde::Serialize;

/// RSS of the server at each step of a memory run, and what one connection costs.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MemoryReport {
    pub server: String,
    /// Connections asked for.
    pub target: usize,
    /// Connections that completed the handshake.
    pub connected: usize,
    /// Of those, subscribed for the active step.
    pub subscribed: usize,
    pub base_kib: u64,
    pub idle_kib: u64,
    pub active_kib: u64,
    /// (idle − base) / connected, in bytes.
    pub bytes_per_idle_conn: f64,
    /// (active − base) / connected, in bytes.
    pub bytes_per_active_conn: f64,
    /// Frames read by the clients during the active step.
    pub frames_during_active: u64,
    /// Connections that received at least one frame during the active step.
    pub connections_with_frames: usize,
}

/// Bytes per connection from two RSS readings in KiB; 0 when nothing connected.
pub fn per_connection_bytes(base_kib: u64, now_kib: u64, connections: usize) -> f64 {
    if connections == 0 {
        return 0.0;
    }
    now_kib.saturating_sub(base_kib) as f64 * 1024.0 / connections as f64
}

impl MemoryReport {
    pub fn summary(&self) -> String {
        format!(
            "{}: conns={}/{} base={}KiB idle={}KiB ({:.0} B/conn) active={}KiB ({:.0} B/conn, {} subscribed, {} with frames, {} frames)",
            self.server,
            self.connected,
            self.target,
            self.base_kib,
            self.idle_kib,
            self.bytes_per_idle_conn,
            self.active_kib,
            self.bytes_per_active_conn,
            self.subscribed,
            self.connections_with_frames,
            self.frames_during_active,
        )
    }
}

/// Parses a server's `READY <port> <pid>` line.
pub fn parse_ready(line: &str) -> Option<(u16, u32)> {
    let mut it = line.split_whitespace();
    if it.next()? != "READY" {
        return None;
    }
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_connection_cost_is_the_rss_growth_spread_over_the_connections() {
        assert_eq!(per_connection_bytes(1_000, 1_080, 10), 8_192.0);
        assert_eq!(
            per_connection_bytes(1_000, 900, 10),
            0.0,
            "a shrinking RSS costs nothing"
        );
        assert_eq!(per_connection_bytes(1_000, 2_000, 0), 0.0);
    }

    #[test]
    fn the_ready_line_gives_port_and_pid() {
        assert_eq!(parse_ready("READY 8877 4242"), Some((8877, 4242)));
        assert_eq!(parse_ready("READY 8877"), None);
        assert_eq!(parse_ready("listening 8877 4242"), None);
        assert_eq!(parse_ready("READY port 4242"), None);
    }
}
