//! Frames as they travel: serialized once, with the WebSocket header already in front.
//!
//! Server-to-client WebSocket frames are never masked, so the header is the same for every
//! client. A [`SharedFrame`] is therefore the complete bytes of one WebSocket message; a reactor
//! writes the same bytes to N connections by reference. The cost grows with updates, not with
//! updates × clients.
//!
//! [`envelope::FrameWriter`] builds every data frame kind (fixed envelope written by hand, body by
//! `serde_json`, header room reserved in front, one copy into the shared buffer);
//! [`gzip`] decides and does snapshot compression.

use std::sync::Arc;

pub mod envelope;
pub mod gzip;

pub use envelope::{FrameWriter, Mode};

/// WebSocket opcode of a data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Text = 0x1,
    Binary = 0x2,
}

/// One complete, immutable WebSocket message (header + payload), cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedFrame {
    bytes: Arc<[u8]>,
    header_len: u8,
}

impl std::fmt::Debug for SharedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.payload();
        let shown = &p[..p.len().min(120)];
        f.debug_struct("SharedFrame")
            .field("opcode", &self.opcode())
            .field("len", &p.len())
            .field("payload", &String::from_utf8_lossy(shown))
            .finish()
    }
}

impl SharedFrame {
    /// A binary message (every data frame: subscribed, snapshot, patch, upsert, delete).
    pub fn binary(payload: &[u8]) -> Self {
        Self::new(Opcode::Binary, payload)
    }

    /// A text message (control messages: errors, refresh-auth replies).
    pub fn text(payload: &[u8]) -> Self {
        Self::new(Opcode::Text, payload)
    }

    pub fn new(opcode: Opcode, payload: &[u8]) -> Self {
        let mut header = [0u8; 10];
        let header_len = write_header(&mut header, opcode, payload.len());
        let mut v = Vec::with_capacity(header_len + payload.len());
        v.extend_from_slice(&header[..header_len]);
        v.extend_from_slice(payload);
        SharedFrame {
            bytes: v.into(),
            header_len: header_len as u8,
        }
    }

    /// A frame from bytes that already hold the header (`header_len` bytes) and the payload.
    /// Used by [`FrameWriter`], which writes both into one scratch buffer and copies once.
    pub(crate) fn from_wire(wire: &[u8], header_len: usize) -> Self {
        SharedFrame {
            bytes: wire.into(),
            header_len: header_len as u8,
        }
    }

    /// The whole message as it goes on the wire.
    pub fn wire(&self) -> &[u8] {
        &self.bytes
    }

    /// The message body (JSON text, or raw gzip for large snapshots).
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.header_len as usize..]
    }

    pub fn opcode(&self) -> Opcode {
        if self.bytes[0] & 0x0f == Opcode::Text as u8 {
            Opcode::Text
        } else {
            Opcode::Binary
        }
    }

    /// Bytes on the wire; what a connection's outbound budget counts.
    pub fn wire_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes an unmasked, final (FIN) frame header for `len` payload bytes; returns its length.
pub(crate) fn write_header(out: &mut [u8; 10], opcode: Opcode, len: usize) -> usize {
    out[0] = 0x80 | opcode as u8;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= u16::MAX as usize {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths_follow_rfc6455() {
        for (len, hdr) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65_535, 4),
            (65_536, 10),
        ] {
            let payload = vec![b'x'; len];
            let f = SharedFrame::binary(&payload);
            assert_eq!(f.wire_len(), len + hdr, "len {len}");
            assert_eq!(f.payload(), &payload[..]);
            assert_eq!(f.wire()[0], 0x82);
            assert_eq!(f.wire()[1] & 0x80, 0, "server frames are never masked");
        }
        assert_eq!(SharedFrame::text(b"{}").opcode(), Opcode::Text);
        assert_eq!(SharedFrame::binary(b"{}").opcode(), Opcode::Binary);
    }
}
