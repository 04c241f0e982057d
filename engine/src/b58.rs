//! Base58 text for public keys and signatures.
//!
//! Rendering keys is on the VM's hot path (event records, captures, `Base58Encode` transforms),
//! and the general-purpose `bs58` encoder is quadratic in the input length. Keys (32 bytes) and
//! signatures (64 bytes) go through `five8`'s fixed-size encoders instead; other lengths fall back
//! to `bs58`. Output is identical either way (pinned by the tests below).
//!
//! The same accounts come back update after update, so keys are also memoized: a small
//! two-way set-associative table per thread ([`KEY_MEMO`] entries) remembers the two keys last
//! seen in each set. A hit copies the text, or shares it ([`key_arc`]), instead of dividing 32
//! bytes by 58 again; two busy accounts that fall in one set do not evict each other on every
//! update (with one entry per position, such a pair made a new text each time). The table is a
//! pure cache: output never depends on it, and it never grows.

use std::cell::RefCell;
use std::sync::Arc;

/// Entries in each thread's key memo (a power of two, in sets of two; about 150 bytes each).
pub const KEY_MEMO: usize = 1024;

#[derive(Clone)]
struct Memo {
    key: [u8; 32],
    /// Empty until the entry is first filled (44 bytes reserved up front, so refilling it never
    /// allocates; text is checked as UTF-8 once, when filled, not on every hit).
    text: String,
    /// The text shared, made the first time someone asks for it ([`key_arc`]).
    shared: Option<Arc<str>>,
}

thread_local! {
    static MEMO: RefCell<Box<[Memo]>> = RefCell::new(
        (0..KEY_MEMO)
            .map(|_| Memo { key: [0; 32], text: String::with_capacity(44), shared: None })
            .collect(),
    );
}

/// Calls `f` with `key`'s memo entry, filled in for it. The entry used last in a set is kept
/// first: a hit on the second swaps the two, and a miss moves the first to the second place
/// (evicting the one used longer ago) and fills the first.
fn with_memo<R>(key: &[u8; 32], f: impl FnOnce(&mut Memo) -> R) -> R {
    let sets = KEY_MEMO / 2;
    let set = 2 * (u64::from_le_bytes(key[..8].try_into().expect("8 bytes")) as usize % sets);
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        let ways = &mut m[set..set + 2];
        if ways[0].key != *key || ways[0].text.is_empty() {
            ways.swap(0, 1);
        }
        let e = &mut ways[0];
        if e.text.is_empty() || e.key != *key {
            let mut buf = [0u8; 44];
            let n = five8::encode_32(key, &mut buf) as usize;
            e.key = *key;
            e.text.clear();
            push_ascii(&buf[..n], &mut e.text);
            e.shared = None;
        }
        f(e)
    })
}

/// Calls `f` with the base58 of a 32-byte key (memoized, see the module docs).
pub fn with_key<R>(key: &[u8; 32], f: impl FnOnce(&str) -> R) -> R {
    with_memo(key, |e| f(e.text()))
}

/// The base58 of a 32-byte key as shared text: a key seen recently shares the text made for it
/// then (see the module docs), so this allocates only for a new key.
pub fn key_arc(key: &[u8; 32]) -> Arc<str> {
    with_memo(key, |e| match &e.shared {
        Some(a) => a.clone(),
        None => {
            let a: Arc<str> = Arc::from(e.text());
            e.shared = Some(a.clone());
            a
        }
    })
}

impl Memo {
    fn text(&self) -> &str {
        &self.text
    }
}

/// Base58 of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::new();
    encode_into(bytes, &mut s);
    s
}

/// Appends the base58 of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    match bytes.len() {
        32 => with_key(bytes.try_into().expect("32 bytes"), |s| out.push_str(s)),
        64 => {
            let mut buf = [0u8; 88];
            let n = five8::encode_64(bytes.try_into().expect("64 bytes"), &mut buf) as usize;
            push_ascii(&buf[..n], out);
        }
        _ => out.push_str(&bs58::encode(bytes).into_string()),
    }
}

fn push_ascii(b: &[u8], out: &mut String) {
    // The base58 alphabet is ASCII.
    out.push_str(std::str::from_utf8(b).expect("base58 is ASCII"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_paths_render_exactly_what_bs58_renders() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in [0usize, 1, 31, 32, 33, 63, 64, 65] {
            for lead in 0..3 {
                let mut b = vec![0u8; len];
                for v in b.iter_mut().skip(lead) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *v = x as u8;
                }
                assert_eq!(
                    encode(&b),
                    bs58::encode(&b).into_string(),
                    "len {len} lead {lead}"
                );
            }
        }
        assert_eq!(encode(&[0u8; 32]), "11111111111111111111111111111111");
        // Keys that share a memo position evict each other and still render their own text.
        let (mut a, mut b) = ([7u8; 32], [7u8; 32]);
        a[31] = 1;
        b[31] = 2;
        for _ in 0..2 {
            for k in [a, b] {
                assert_eq!(encode(&k), bs58::encode(k).into_string());
            }
        }
        for k in [a, b, a] {
            assert_eq!(&*key_arc(&k), bs58::encode(k).into_string());
        }
        // A key seen again shares the text made for it, also while another key of its set comes
        // and goes, until a third key of the set has been seen since it was.
        assert!(Arc::ptr_eq(&key_arc(&a), &key_arc(&a)));
        let first = key_arc(&a);
        let _ = key_arc(&b);
        assert!(Arc::ptr_eq(&first, &key_arc(&a)));
        let mut c = a;
        c[31] = 3;
        let _ = (key_arc(&b), key_arc(&c));
        assert!(!Arc::ptr_eq(&first, &key_arc(&a)));
        for k in [a, b, c, b, a] {
            assert_eq!(encode(&k), bs58::encode(k).into_string());
        }
        assert_eq!(
            encode(&[255u8; 64]),
            bs58::encode([255u8; 64]).into_string()
        );
    }
}
