//! State shared by the reactors and the acceptor of one server (one [`ReactorContext`]):
//! open connections per auth subject, per peer IP and per `Origin`, the shutdown flag and the
//! acceptors' wakers.
//!
//! `ReactorContext` is a plain struct of public fields that the topology builds literally, so
//! this runtime state hangs off it by identity: [`Shared::of`] finds (or creates) the entry for
//! a context in a small process-wide table, pruned whenever a context is gone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::ReactorContext;

/// What an open connection is counted under (each has its own limit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CountKey {
    Subject(String),
    Ip(IpAddr),
    Origin(String),
    MeteringKey(String),
}

impl std::fmt::Display for CountKey {
    /// As the reference names it in a refusal: `subject alice`, `ip 10.0.0.1`, `origin https://..`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CountKey::Subject(s) => write!(f, "subject {s}"),
            CountKey::Ip(ip) => write!(f, "ip {ip}"),
            CountKey::Origin(o) => write!(f, "origin {o}"),
            CountKey::MeteringKey(k) => write!(f, "metering key {k}"),
        }
    }
}

#[derive(Default)]
pub struct Shared {
    open: Mutex<HashMap<CountKey, usize>>,
    shutdown: AtomicBool,
    acceptors: Mutex<Vec<Arc<mio::Waker>>>,
}

type Table = Mutex<Vec<(Weak<ReactorContext>, Arc<Shared>)>>;

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(Default::default)
}

impl Shared {
    pub fn of(ctx: &Arc<ReactorContext>) -> Arc<Shared> {
        let mut t = table().lock().unwrap_or_else(|p| p.into_inner());
        t.retain(|(w, _)| w.strong_count() > 0);
        if let Some((_, s)) = t.iter().find(|(w, _)| w.as_ptr() == Arc::as_ptr(ctx)) {
            return s.clone();
        }
        let s = Arc::new(Shared::default());
        t.push((Arc::downgrade(ctx), s.clone()));
        s
    }

    /// Takes a connection slot under `key`; `Err(current)` when `limit` is reached. (Subjects
    /// are counted even without a limit, since each token may carry its own; the caller skips
    /// IP and origin counting when no such limit is configured.)
    pub fn acquire(
        self: &Arc<Self>,
        key: CountKey,
        limit: Option<usize>,
    ) -> Result<CountGuard, usize> {
        let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.get(&key).copied().unwrap_or(0);
        if limit.is_some_and(|l| n >= l) {
            return Err(n);
        }
        m.insert(key.clone(), n + 1);
        Ok(CountGuard {
            shared: self.clone(),
            key,
        })
    }

    pub fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Marks the server as stopping and wakes every acceptor so that it exits.
    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        for w in self
            .acceptors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = w.wake();
        }
    }

    pub fn add_acceptor(&self, w: Arc<mio::Waker>) {
        self.acceptors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(w);
    }
}

/// One open connection counted under a key; released on drop.
pub struct CountGuard {
    shared: Arc<Shared>,
    key: CountKey,
}

impl Drop for CountGuard {
    fn drop(&mut self) {
        let mut m = self.shared.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}
