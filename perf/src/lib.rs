//! The performance lab: a load generator of WebSocket clients, the clock that carries upstream send
//! times out of band, the feed that drives a server at a fixed rate, and the harnesses that tie
//! them to our server and to the reference.
//!
//! Latency is measured from the moment an update's slot left the feed (or the mock upstream) to
//! the moment a client read a frame carrying that slot in its `seq`. The send times travel in a
//! [`SlotClock`] shared in-process, never in the wire format.
//!
//! | module      | what |
//! |-------------|------|
//! | [`clock`]   | slot → send time ring |
//! | [`pace`]    | fixed-rate schedule |
//! | [`flags`]   | the flags every harness takes |
//! | [`feed`]    | the synthetic ORE updates both servers get, and the loop that paces and stamps them |
//! | [`loadgen`] | N mio + tungstenite clients timing every frame |
//! | [`memory`]  | RSS per connection, read from outside the server process |
//! | [`ours`]    | our server started in-process on the io topology |
//! | [`stats`]   | HDR percentiles |
//! | [`table`]   | the ours/reference table of one run |
//! | [`profile`] | pprof flamegraphs behind the `flamegraph` feature |
//! | [`rss`]     | resident memory from `/proc` |

pub mod clock;
pub mod feed;
pub mod flags;
pub mod loadgen;
pub mod memory;
pub mod ours;
pub mod pace;
pub mod profile;
pub mod rss;
pub mod stats;
pub mod table;

pub use clock::SlotClock;
pub use feed::{drive, Feed, FeedError, FeedStats, ReferenceEvent};
pub use loadgen::{LoadConfig, LoadReport};
pub use pace::Pacer;
