//! The performance lab: a load generator of WebSocket clients, the clock that carries upstream send
//! times out of band, and the end-to-end harness that ties them to a server.
//!
//! Latency is measured from the moment an update's slot left the (mock) upstream to the moment a
//! client read a frame carrying that slot in its `seq`. The send times travel in a [`SlotClock`]
//! shared in-process, never in the wire format.

pub mod clock;
pub mod loadgen;
pub mod stats;

pub use clock::SlotClock;
pub use loadgen::{LoadConfig, LoadReport};
