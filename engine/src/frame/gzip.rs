//! Snapshot compression (`protocol.md` §1.6): payloads of 1 KiB or more are gzipped with the fast
//! level and sent as raw gzip bytes when that is smaller. Clients tell the two apart by the gzip
//! magic `1f 8b` at offset 0.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

/// Payloads shorter than this are never compressed.
pub const COMPRESS_MIN_BYTES: usize = 1024;

/// True if `payload` starts with the gzip magic bytes.
pub fn is_gzip(payload: &[u8]) -> bool {
    payload.len() >= 2 && payload[0] == 0x1f && payload[1] == 0x8b
}

/// Appends the gzip of `json` to `out` if `json` is at least [`COMPRESS_MIN_BYTES`] long and the
/// result is smaller; returns whether it did (on `false`, `out` is as it was).
pub fn gzip_into(json: &[u8], out: &mut Vec<u8>) -> bool {
    if json.len() < COMPRESS_MIN_BYTES {
        return false;
    }
    let start = out.len();
    let mut enc = GzEncoder::new(std::mem::take(out), Compression::fast());
    let ok = enc.write_all(json).is_ok();
    match enc.finish() {
        Ok(v) => *out = v,
        Err(_) => return false,
    }
    if ok && out.len() - start < json.len() {
        true
    } else {
        out.truncate(start);
        false
    }
}

/// The gzip of `json` if [`gzip_into`] would use it.
pub fn maybe_gzip(json: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    gzip_into(json, &mut out).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn small_payloads_are_left_alone() {
        assert_eq!(maybe_gzip(&[b'a'; 1023]), None);
    }

    #[test]
    fn large_payloads_round_trip_as_raw_gzip() {
        let json: Vec<u8> = format!("[{}]", vec!["{\"k\":\"v\"}"; 400].join(",")).into_bytes();
        let gz = maybe_gzip(&json).expect("compressible");
        assert!(is_gzip(&gz) && gz.len() < json.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, json);
    }

    #[test]
    fn incompressible_payloads_stay_plain() {
        // A pseudo-random byte string: gzip cannot make it smaller.
        let mut x = 0x9e3779b97f4a7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(maybe_gzip(&noise), None);
    }
}
