//! Shared harness of the ingest tests: a mock Geyser server, an ingest thread feeding a test
//! channel, and a deterministic chain to publish.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use stackcore_engine::{AccountUpdate, InstructionUpdate, Pubkey, Update};
use stackcore_io::channels::ToWorker;
use stackcore_io::config::{HealthConfig, ReconnectionConfig, YellowstoneConfig};
use stackcore_io::health::HealthMonitor;
use stackcore_io::ingest::{self, IngestConfig, IngestHandle, IngestLimits, IngestSink, Source};
use stackcore_io::metrics::Metrics;

pub const PROG: Pubkey = [7; 32];
pub const OTHER: Pubkey = [8; 32];

pub struct Ingest {
    pub handle: IngestHandle,
    pub rx: Receiver<ToWorker>,
    pub health: Arc<HealthMonitor>,
    pub metrics: Arc<Metrics>,
    pub got: Vec<Update>,
}

pub fn fast_reconnect() -> ReconnectionConfig {
    ReconnectionConfig::new()
        .with_initial_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(200))
}

pub fn start(
    source: Source,
    reconnection: ReconnectionConfig,
    health: HealthConfig,
    record: Option<PathBuf>,
) -> Ingest {
    start_with(
        source,
        reconnection,
        health,
        record,
        vec![PROG],
        IngestLimits::default(),
    )
}

pub fn start_with(
    source: Source,
    reconnection: ReconnectionConfig,
    health: HealthConfig,
    record: Option<PathBuf>,
    program_ids: Vec<Pubkey>,
    limits: IngestLimits,
) -> Ingest {
    let (tx, rx) = crossbeam_channel::bounded(100_000);
    let health = Arc::new(HealthMonitor::new(health));
    let metrics = Arc::new(Metrics::new());
    let cfg = IngestConfig {
        source,
        program_ids,
        reconnection,
        record,
    };
    let sink = IngestSink {
        workers: vec![tx],
        route: Arc::new(|_| 0),
    };
    let handle = ingest::spawn_with(cfg, limits, sink, health.clone(), metrics.clone()).unwrap();
    Ingest {
        handle,
        rx,
        health,
        metrics,
        got: Vec::new(),
    }
}

pub fn yellowstone(endpoint: String, token: Option<&str>) -> Source {
    let mut y = YellowstoneConfig::new(endpoint);
    if let Some(t) = token {
        y = y.with_token(t);
    }
    Source::Yellowstone(y)
}

impl Ingest {
    /// Drains the queue into `got` until `cond(got)` holds; false after `secs`.
    pub fn collect_until(&mut self, secs: u64, cond: impl Fn(&[Update]) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if cond(&self.got) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Ok(ToWorker::Update(u)) =
                self.rx.recv_timeout(left.min(Duration::from_millis(20)))
            {
                self.got.push(u);
            }
        }
    }

    /// Stops the thread, then takes what is left in the queue.
    pub fn finish(mut self) -> Vec<Update> {
        self.handle.shutdown();
        self.handle.join().unwrap();
        while let Ok(ToWorker::Update(u)) = self.rx.try_recv() {
            self.got.push(u);
        }
        self.got
    }
}

/// Waits for `cond`; false after `secs`.
pub fn wait(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// A deterministic chain: per slot three writes of the stack's program, one of another program
/// (filtered out upstream), one instruction, then the slot status.
pub fn chain(first_slot: u64, slots: u64) -> Vec<Update> {
    let mut out = Vec::new();
    let mut wv = 0;
    for slot in first_slot..first_slot + slots {
        for i in 0..4u8 {
            wv += 1;
            out.push(Update::Account(AccountUpdate {
                slot,
                write_version: wv,
                pubkey: [i + 1; 32],
                owner: if i == 3 { OTHER } else { PROG },
                data: vec![i; 8 + (slot % 5) as usize],
                signature: None,
                timestamp: 0,
            }));
        }
        let mut sig = [0u8; 64];
        sig[..8].copy_from_slice(&slot.to_le_bytes());
        out.push(Update::Instruction(InstructionUpdate {
            slot,
            txn_index: 0,
            signature: sig,
            program_id: PROG,
            accounts: vec![[1; 32], [2; 32]],
            data: vec![9, slot as u8],
            timestamp: 0,
        }));
        out.push(Update::Slot { slot, timestamp: 0 });
    }
    out
}

/// What the stack should receive of `published`: everything but the other program's writes.
pub fn expected(published: &[Update]) -> Vec<Update> {
    published
        .iter()
        .filter(|u| !matches!(u, Update::Account(a) if a.owner != PROG))
        .cloned()
        .collect()
}

/// Timestamps come from the ingest clock; compare without them.
pub fn untimed(updates: &[Update]) -> Vec<Update> {
    updates
        .iter()
        .cloned()
        .map(|mut u| {
            match &mut u {
                Update::Account(a) => a.timestamp = 0,
                Update::Instruction(i) => i.timestamp = 0,
                Update::Slot { timestamp, .. } => *timestamp = 0,
            }
            u
        })
        .collect()
}

pub fn last_is_slot(s: u64) -> impl Fn(&[Update]) -> bool {
    move |got: &[Update]| matches!(got.last(), Some(Update::Slot { slot, .. }) if *slot == s)
}

pub fn tmp_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("stackcore-ingest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}
