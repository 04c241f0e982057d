//! State shared by the reactors and the acceptor of one server (one [`ReactorContext`]):
//! open connections per auth subject, the shutdown flag and the acceptors' wakers.
//!
//! `ReactorContext` is a plain struct of public fields that the topology builds literally, so
//! this runtime state hangs off it by identity: [`Shared::of`] finds (or creates) the entry for
//! a context in a small process-wide table, pruned whenever a context is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::ReactorContext;

#[derive(Default)]
pub struct Shared {
    subjects: Mutex<HashMap<String, usize>>,
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

    /// Takes a connection slot for `subject`; `Err(current)` when `limit` is reached.
    pub fn acquire_subject(
        self: &Arc<Self>,
        subject: &str,
        limit: Option<usize>,
    ) -> Result<SubjectGuard, usize> {
        let mut m = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.get(subject).copied().unwrap_or(0);
        if let Some(l) = limit {
            if n >= l {
                return Err(n);
            }
        }
        m.insert(subject.to_owned(), n + 1);
        Ok(SubjectGuard {
            shared: self.clone(),
            subject: subject.to_owned(),
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

/// One open connection of a subject; released on drop.
pub struct SubjectGuard {
    shared: Arc<Shared>,
    subject: String,
}

impl Drop for SubjectGuard {
    fn drop(&mut self) {
        let mut m = self
            .shared
            .subjects
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.subject) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.subject);
            }
        }
    }
}
