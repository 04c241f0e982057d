//! # stackcore-io
//!
//! Every thread and socket of stackcore lives here; all data logic lives in `stackcore-engine`.
//! Read [`topology`] first: it builds the whole thread graph in one place.
//!
//! ```text
//! ingest (1 thread, tokio current-thread + tonic)      the only async code
//!    │ channels::ToWorker, bounded, sharded by stack component (full ⇒ ingest stops polling)
//!    ▼
//! worker × K (pinned)    engine::VmContext + engine::Views per shard
//!    │   ⇄ resolver × K  one blocking HTTP thread per worker (DAS token metadata, URL fetches):
//!    │                   requests by try_send (full ⇒ dropped, counted), values back as
//!    │                   channels::ToWorker::ResolverResult
//!    │ channels::ToReactor, bounded, one per reactor (full ⇒ the worker waits), mio Waker
//!    ▼
//! reactor × R (pinned)   mio Poll + tungstenite; connections, subscriptions, fan-out
//!    ▲ channels::ToWorker (subscribe / unsubscribe)
//! acceptor               spreads new sockets across reactors
//! http (1 thread)        /health /ready /status /metrics
//! ```

pub mod channels;
pub mod config;
pub mod health;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod pin;
pub mod reactor;
pub mod resolver;
pub mod topology;
pub mod worker;
