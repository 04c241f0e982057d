//! The resolver cache: a bounded LRU of resolved values that expire after a TTL.
//!
//! Keys are the reference's: `token:<mint>` and `url:<get|post>:<resolved url>` (so a GET and a
//! POST to the same URL are different entries). Time comes from a [`Clock`], so tests move it
//! instead of sleeping. An expired entry is dropped when it is next looked up (and counts as a
//! miss); least-recently-used entries make room when the cache is full.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the cache reads the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told (tests). Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    base: Instant,
    offset_nanos: Arc<AtomicU64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock {
            base: Instant::now(),
            offset_nanos: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn advance(&self, d: Duration) {
        self.offset_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }
}

/// The cache key of a token request.
pub fn token_key(mint: &str) -> String {
    format!("token:{mint}")
}

/// The cache key of a URL request: method and resolved URL.
pub fn url_key(method: stackcore_engine::spec::HttpMethod, url: &str) -> String {
    let m = match method {
        stackcore_engine::spec::HttpMethod::Get => "get",
        stackcore_engine::spec::HttpMethod::Post => "post",
    };
    format!("url:{m}:{url}")
}

/// A bounded LRU whose entries expire `ttl` after they were stored.
pub struct TtlCache<V> {
    entries: lru::LruCache<String, (Instant, V)>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl<V: Clone> TtlCache<V> {
    /// At most `capacity` entries (at least 1), each served for `ttl`.
    pub fn new(capacity: usize, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        TtlCache {
            entries: lru::LruCache::new(NonZeroUsize::new(capacity.max(1)).unwrap()),
            ttl,
            clock,
        }
    }

    /// The value stored under `key` if it has not expired (an expired entry is removed).
    pub fn get(&mut self, key: &str) -> Option<V> {
        let now = self.clock.now();
        match self.entries.get(key) {
            Some((stored, v)) if now.saturating_duration_since(*stored) <= self.ttl => {
                Some(v.clone())
            }
            Some(_) => {
                self.entries.pop(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` under `key` as of now, evicting the least recently used entry if full.
    pub fn put(&mut self, key: String, value: V) {
        let now = self.clock.now();
        self.entries.put(key, (now, value));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackcore_engine::spec::HttpMethod;

    fn cache(cap: usize, ttl_secs: u64) -> (TtlCache<u32>, ManualClock) {
        let clock = ManualClock::new();
        let c = TtlCache::new(cap, Duration::from_secs(ttl_secs), Arc::new(clock.clone()));
        (c, clock)
    }

    #[test]
    fn entries_expire_after_the_ttl_and_not_before() {
        let (mut c, clock) = cache(10, 60);
        c.put("a".into(), 1);
        clock.advance(Duration::from_secs(60));
        assert_eq!(c.get("a"), Some(1));
        clock.advance(Duration::from_millis(1));
        assert_eq!(c.get("a"), None);
        assert!(c.is_empty(), "an expired entry is dropped when looked up");
        c.put("a".into(), 2);
        assert_eq!(c.get("a"), Some(2), "a refetched value starts a new TTL");
    }

    #[test]
    fn capacity_evicts_the_least_recently_used() {
        let (mut c, _) = cache(2, 60);
        c.put("a".into(), 1);
        c.put("b".into(), 2);
        assert_eq!(c.get("a"), Some(1));
        c.put("c".into(), 3);
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c.get("a"), c.get("b"), c.get("c")),
            (Some(1), None, Some(3))
        );
    }

    #[test]
    fn keys_distinguish_method_and_url() {
        assert_eq!(token_key("M"), "token:M");
        assert_eq!(url_key(HttpMethod::Get, "http://x/a"), "url:get:http://x/a");
        assert_ne!(
            url_key(HttpMethod::Get, "http://x/a"),
            url_key(HttpMethod::Post, "http://x/a")
        );
    }
}
