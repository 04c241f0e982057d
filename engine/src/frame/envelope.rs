//! The frame envelope writer (`protocol.md` §1.5).
//!
//! Every data frame has a fixed envelope around one JSON body. The envelope is written by hand
//! (field order exactly as the reference sends it; `append` omitted when empty, `seq` when absent),
//! the body by `serde_json`, both into one reusable scratch buffer that leaves room for the
//! WebSocket header in front. The finished message is copied once into its [`SharedFrame`].
//!
//! ```text
//! subscribed  {"op":"subscribed","view":V,"mode":M[,"sort":{"field":[..],"order":O}]}
//! snapshot    {"mode":M,"entity":V,"op":"snapshot","data":[{"key":K,"data":D},..],"complete":B}
//! patch       {"mode":M,"entity":V,"op":"patch","key":K,"data":D[,"append":[..]][,"seq":S]}
//! upsert      {"mode":M,"entity":V,"op":"upsert","key":K,"data":D}
//! delete      {"mode":M,"entity":V,"op":"delete","key":K,"data":null}
//! ```

use serde_json::Value;

use super::{gzip, write_header, Opcode, SharedFrame};
use crate::mutation::Seq;
use crate::view::spec::SortOrder;

/// Bytes reserved in front of the payload for the largest WebSocket header.
const ROOM: usize = 10;

/// The streaming mode of a view, as frames name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    List,
    State,
    Append,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::List => "list",
            Mode::State => "state",
            Mode::Append => "append",
        }
    }
}

/// Builds frames; keep one per worker and reuse it (its buffers are the only allocations that
/// survive a frame).
#[derive(Debug, Default)]
pub struct FrameWriter {
    buf: Vec<u8>,
    gz: Vec<u8>,
}

impl FrameWriter {
    pub fn new() -> Self {
        FrameWriter {
            buf: Vec::with_capacity(4096),
            gz: Vec::new(),
        }
    }

    fn begin(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; ROOM]);
    }

    fn finish(&mut self) -> SharedFrame {
        finish_in(&mut self.buf)
    }

    /// `{"op":"subscribed","view":..,"mode":..,"sort":..}`; `sort` only when given.
    pub fn subscribed(
        &mut self,
        view: &str,
        mode: Mode,
        sort: Option<(&[String], SortOrder)>,
    ) -> SharedFrame {
        self.begin();
        let b = &mut self.buf;
        b.extend_from_slice(b"{\"op\":\"subscribed\",\"view\":");
        write_str(b, view);
        b.extend_from_slice(b",\"mode\":\"");
        b.extend_from_slice(mode.as_str().as_bytes());
        b.push(b'"');
        if let Some((field, order)) = sort {
            b.extend_from_slice(b",\"sort\":{\"field\":");
            write_str_array(b, field);
            b.extend_from_slice(b",\"order\":\"");
            b.extend_from_slice(order.as_str().as_bytes());
            b.extend_from_slice(b"\"}");
        }
        b.push(b'}');
        self.finish()
    }

    fn head(&mut self, mode: Mode, view: &str, op: &str) {
        self.begin();
        let b = &mut self.buf;
        b.extend_from_slice(b"{\"mode\":\"");
        b.extend_from_slice(mode.as_str().as_bytes());
        b.extend_from_slice(b"\",\"entity\":");
        write_str(b, view);
        b.extend_from_slice(b",\"op\":\"");
        b.extend_from_slice(op.as_bytes());
        b.push(b'"');
    }

    fn keyed(&mut self, mode: Mode, view: &str, op: &str, key: &str, data: &[u8]) {
        self.head(mode, view, op);
        let b = &mut self.buf;
        b.extend_from_slice(b",\"key\":");
        write_str(b, key);
        b.extend_from_slice(b",\"data\":");
        b.extend_from_slice(data);
    }

    /// A live `patch`. `data` is the JSON of the changed fields (with `_seq`).
    pub fn patch(
        &mut self,
        mode: Mode,
        view: &str,
        key: &str,
        data: &[u8],
        append: &[String],
        seq: Option<Seq>,
    ) -> SharedFrame {
        self.keyed(mode, view, "patch", key, data);
        let b = &mut self.buf;
        if !append.is_empty() {
            b.extend_from_slice(b",\"append\":");
            write_str_array(b, append);
        }
        if let Some(seq) = seq {
            b.extend_from_slice(b",\"seq\":\"");
            write_seq(b, seq);
            b.push(b'"');
        }
        b.push(b'}');
        self.finish()
    }

    /// A sorted-window `upsert`; `data` is the JSON of the full entity.
    pub fn upsert(&mut self, mode: Mode, view: &str, key: &str, data: &[u8]) -> SharedFrame {
        self.keyed(mode, view, "upsert", key, data);
        self.buf.push(b'}');
        self.finish()
    }

    /// A sorted-window `delete` (`data:null`).
    pub fn delete(&mut self, mode: Mode, view: &str, key: &str) -> SharedFrame {
        self.keyed(mode, view, "delete", key, b"null");
        self.buf.push(b'}');
        self.finish()
    }

    /// One `snapshot` batch; gzipped when that pays (see [`gzip`]).
    pub fn snapshot<'a>(
        &mut self,
        mode: Mode,
        view: &str,
        rows: impl IntoIterator<Item = (&'a str, &'a Value)>,
        complete: bool,
    ) -> SharedFrame {
        self.head(mode, view, "snapshot");
        let b = &mut self.buf;
        b.extend_from_slice(b",\"data\":[");
        for (i, (key, data)) in rows.into_iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            b.extend_from_slice(b"{\"key\":");
            write_str(b, key);
            b.extend_from_slice(b",\"data\":");
            write_json(b, data);
            b.push(b'}');
        }
        b.extend_from_slice(if complete {
            b"],\"complete\":true}"
        } else {
            b"],\"complete\":false}"
        });
        self.gz.clear();
        self.gz.extend_from_slice(&[0u8; ROOM]);
        if gzip::gzip_into(&self.buf[ROOM..], &mut self.gz) {
            finish_in(&mut self.gz)
        } else {
            self.finish()
        }
    }
}

fn finish_in(buf: &mut [u8]) -> SharedFrame {
    let len = buf.len() - ROOM;
    let mut header = [0u8; 10];
    let h = write_header(&mut header, Opcode::Binary, len);
    buf[ROOM - h..ROOM].copy_from_slice(&header[..h]);
    SharedFrame::from_wire(&buf[ROOM - h..], h)
}

/// Appends the JSON text of `v` (serde_json; writing to a `Vec` cannot fail).
pub fn write_json(out: &mut Vec<u8>, v: &Value) {
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_str_array(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, s);
    }
    out.push(b']');
}

/// Appends `seq` in its wire form `{slot}:{index, zero-padded to 12}` (no quotes).
pub fn write_seq(out: &mut Vec<u8>, seq: Seq) {
    write_u64(out, seq.slot, 0);
    out.push(b':');
    write_u64(out, seq.index, 12);
}

fn write_u64(out: &mut Vec<u8>, mut n: u64, min_digits: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = tmp.len() - i;
    for _ in digits..min_digits {
        out.push(b'0');
    }
    out.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_serde_json() {
        for s in [
            "plain",
            "q\"b\\s",
            "nl\n\r\t\u{8}\u{c}",
            "\u{1}\u{1f}x",
            "ünï\u{2028}",
            "",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    #[test]
    fn seq_matches_its_display_form() {
        for seq in [
            Seq::new(0, 0),
            Seq::new(312345678, 1234567),
            Seq::new(u64::MAX, u64::MAX),
            Seq::new(7, 1_000_000_000_000),
        ] {
            let mut out = Vec::new();
            write_seq(&mut out, seq);
            assert_eq!(String::from_utf8(out).unwrap(), seq.to_string());
        }
    }
}
