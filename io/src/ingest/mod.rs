//! The ingest island. CONTRACT STUB: replaced by the ingest work (branch `ingest`).

use std::path::PathBuf;
use std::sync::Arc;

use stackcore_engine::{Pubkey, Update};

use crate::channels::ToWorker;
use crate::config::{ReconnectionConfig, YellowstoneConfig};
use crate::health::HealthMonitor;
use crate::metrics::Metrics;

pub enum Source {
    Yellowstone(YellowstoneConfig),
    Synthetic(SyntheticConfig),
    Replay { path: PathBuf, pace: Pace },
}

pub enum Pace {
    Recorded,
    AsFastAsPossible,
}

pub struct SyntheticConfig {
    pub seed: u64,
    pub updates_per_sec: u32,
    pub token: Option<String>,
}

pub struct IngestSink {
    pub workers: Vec<crossbeam_channel::Sender<ToWorker>>,
    pub route: Arc<dyn Fn(&Update) -> usize + Send + Sync>,
}

pub struct IngestConfig {
    pub source: Source,
    pub program_ids: Vec<Pubkey>,
    pub reconnection: ReconnectionConfig,
    pub record: Option<PathBuf>,
}

pub struct IngestHandle;

impl IngestHandle {
    pub fn shutdown(&self) {}
    pub fn join(self) -> std::thread::Result<()> {
        Ok(())
    }
}

pub fn spawn(
    _cfg: IngestConfig,
    _sink: IngestSink,
    _health: Arc<HealthMonitor>,
    _metrics: Arc<Metrics>,
) -> std::io::Result<IngestHandle> {
    unimplemented!("ingest work")
}
