//! # stackcore
//!
//! A thread-per-core streaming engine for Solana data: Yellowstone gRPC updates in, HyperStack
//! frames out to WebSocket clients. It runs a HyperStack stack from its `.stack.json` file alone and
//! speaks the HyperStack wire protocol, so the published clients work against it unchanged.
//!
//! ```no_run
//! use std::time::Duration;
//! use stackcore::{HealthConfig, ReconnectionConfig, Server, Stack, YellowstoneConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let stack = Stack::from_json(&std::fs::read("OreStream.stack.json")?)?;
//! Server::builder()
//!     .spec(stack)
//!     .websocket()
//!     .bind("[::]:8877".parse()?)
//!     .yellowstone(YellowstoneConfig::new("https://grpc.example.com").with_token("secret"))
//!     .health_monitoring()
//!     .health_config(HealthConfig::new().with_heartbeat_interval(Duration::from_secs(30)))
//!     .http_health()
//!     .reconnection_config(ReconnectionConfig::new().with_max_attempts(10))
//!     .run()?; // blocks until SIGINT/SIGTERM, then shuts down gracefully
//! # Ok(())
//! # }
//! ```
//!
//! The crates underneath: [`engine`] (pure: stack files, decoding, VM, views, frames) and [`io`]
//! (threads and sockets: ingest island, VM workers, reactors, HTTP). The thread graph is drawn in
//! [`io::topology`].

pub mod replay;
pub mod server;
pub mod stacks;
#[cfg(feature = "otel")]
pub mod telemetry;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use stackcore_engine as engine;
pub use stackcore_io as io;

pub use server::{Server, ServerBuilder, ServerError, ServerHandle};
pub use stackcore_engine::{EntityCacheConfig, Stack, StateTableConfig, VmContext};
pub use stackcore_io::config::{
    Commitment, ConfigError, HealthConfig, HttpHealthConfig, ReconnectionConfig, ResolverConfig,
    ServerConfig, TopologyConfig, WebSocketConfig, YellowstoneConfig,
};
pub use stackcore_io::health::{HealthMonitor, HealthReport, StreamStatus};
pub use stackcore_io::ingest::{Pace, Source, SyntheticConfig};
pub use stackcore_io::reactor::auth::{AuthConfig, ConnectionLimits};
