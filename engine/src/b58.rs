//! Base58 text for public keys and signatures.
//!
//! Rendering keys is on the VM's hot path (event records, captures, `Base58Encode` transforms),
//! and the general-purpose `bs58` encoder is quadratic in the input length. Keys (32 bytes) and
//! signatures (64 bytes) go through `five8`'s fixed-size encoders instead; other lengths fall back
//! to `bs58`. Output is identical either way (pinned by the tests below).

/// Base58 of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::new();
    encode_into(bytes, &mut s);
    s
}

/// Appends the base58 of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    match bytes.len() {
        32 => {
            let mut buf = [0u8; 44];
            let n = five8::encode_32(bytes.try_into().expect("32 bytes"), &mut buf) as usize;
            push_ascii(&buf[..n], out);
        }
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
        assert_eq!(
            encode(&[255u8; 64]),
            bs58::encode([255u8; 64]).into_string()
        );
    }
}
