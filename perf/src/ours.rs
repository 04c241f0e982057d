//! Our server started in-process for a harness, on the io topology (so the harness can reach the
//! VM worker queue directly).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use stackcore_engine::Stack;
use stackcore_io::config::{ServerConfig, WebSocketConfig};
use stackcore_io::ingest::Source;
use stackcore_io::topology::{self, Plan, Running, StartError};

/// How our server is laid out for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// VM worker threads (the ORE stack is one coupled component: 1 is what runs).
    pub workers: usize,
    /// WebSocket reactor threads.
    pub reactors: usize,
    /// Largest number of WebSocket clients accepted.
    pub max_clients: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            workers: 1,
            reactors: 1,
            max_clients: 20_000,
        }
    }
}

/// The server configuration for a run: WebSocket on a free loopback port, the given layout,
/// everything else at its documented default.
pub fn config(layout: Layout) -> ServerConfig {
    let mut ws = WebSocketConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    ws.max_clients = layout.max_clients;
    let mut cfg = ServerConfig {
        websocket: Some(ws),
        ..ServerConfig::default()
    };
    cfg.topology.workers = layout.workers;
    cfg.topology.reactors = layout.reactors;
    cfg
}

/// Starts our server for `stack`; `source` `None` means "fed straight into the worker queue".
pub fn start(
    stack: Arc<Stack>,
    layout: Layout,
    source: Option<Source>,
) -> Result<Running, StartError> {
    let mut config = config(layout);
    if let Some(Source::Yellowstone(y)) = &source {
        config.yellowstone = Some(y.clone());
    }
    topology::start(Plan {
        stack: Some(stack),
        config,
        source,
        record: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_config_binds_loopback_on_a_free_port_with_the_layout() {
        let cfg = config(Layout {
            workers: 1,
            reactors: 2,
            max_clients: 12_345,
        });
        let ws = cfg.websocket.as_ref().expect("websocket enabled");
        assert_eq!(ws.bind_address, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        assert_eq!(ws.max_clients, 12_345);
        assert_eq!((cfg.topology.workers, cfg.topology.reactors), (1, 2));
        assert!(cfg.validate().is_ok(), "{:?}", cfg.validate());
    }
}
