//! Recordings of the raw upstream stream, and their replay.
//!
//! ## File format (version 1)
//! ```text
//! header   8 bytes  b"SCREC" 0x00 0x00 0x01          (magic, then the version as u16 big-endian)
//! record   1 byte   kind: 1 = update, 2 = stream resumed (after a reconnect; no payload)
//!          8 bytes  receive time, unix nanoseconds, u64 little-endian
//!          4 bytes  payload length, u32 little-endian (at most MAX_RECORD)
//!          n bytes  payload: one `SubscribeUpdate`, protobuf-encoded, exactly as received
//! ```
//! Every upstream message except pings is recorded, malformed ones included, so a replay goes
//! through the same conversion, dedup and error counting as the live run and hands the workers
//! the same [`Update`](stackcore_engine::Update) sequence: the receive time stands in for the
//! ingest clock, and the "resumed" records reopen the dedup window where the live client did.
//!
//! A truncated or corrupt file is a [`RecordError`] naming the byte offset of the bad record;
//! everything before it has been replayed by then.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use yellowstone_grpc_proto::geyser::SubscribeUpdate;
use yellowstone_grpc_proto::prost::Message;

/// File magic and version.
pub const HEADER: [u8; 8] = *b"SCREC\0\0\x01";
/// Largest payload accepted, in bytes (the client's decoding limit).
pub const MAX_RECORD: usize = 64 * 1024 * 1024;

const KIND_UPDATE: u8 = 1;
const KIND_RESUMED: u8 = 2;

/// Why a recording cannot be written or read further. Reading: everything before `offset` was
/// replayed; the caller reports the error (log, health) and stops the replay. Writing: recording
/// stops, ingest goes on.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a stackcore recording (bad header at byte 0)")]
    BadHeader { path: PathBuf },
    #[error("{path}: truncated record at byte {offset}: {detail}")]
    Truncated {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    #[error("{path}: corrupt record at byte {offset}: {detail}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
}

impl RecordError {
    /// The byte offset of the bad record, for read errors.
    pub fn offset(&self) -> Option<u64> {
        match self {
            RecordError::Truncated { offset, .. } | RecordError::Corrupt { offset, .. } => {
                Some(*offset)
            }
            RecordError::BadHeader { .. } => Some(0),
            RecordError::Io { .. } => None,
        }
    }
}

/// One record of a recording.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Update {
        recv_unix_nanos: u64,
        update: Box<SubscribeUpdate>,
    },
    Resumed {
        recv_unix_nanos: u64,
    },
}

/// Appends records to a file (creating it with a header, or checking the header of an existing
/// one). Buffered; [`Recorder::flush`] or drop writes out.
pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    buf: Vec<u8>,
}

impl Recorder {
    pub fn open(path: &Path) -> Result<Recorder, RecordError> {
        let io = |source| RecordError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            file.write_all(&HEADER).map_err(io)?;
        } else {
            let mut head = [0u8; 8];
            let mut r = File::open(path).map_err(io)?;
            if r.read_exact(&mut head).is_err() || head != HEADER {
                return Err(RecordError::BadHeader {
                    path: path.to_owned(),
                });
            }
        }
        Ok(Recorder {
            path: path.to_owned(),
            out: BufWriter::with_capacity(64 * 1024, file),
            buf: Vec::new(),
        })
    }

    pub fn update(
        &mut self,
        recv_unix_nanos: u64,
        update: &SubscribeUpdate,
    ) -> Result<(), RecordError> {
        self.buf.clear();
        update.encode(&mut self.buf).expect("a Vec grows as needed");
        let payload = std::mem::take(&mut self.buf);
        let r = self.write(KIND_UPDATE, recv_unix_nanos, &payload);
        self.buf = payload;
        r
    }

    pub fn resumed(&mut self, recv_unix_nanos: u64) -> Result<(), RecordError> {
        self.write(KIND_RESUMED, recv_unix_nanos, &[])
    }

    fn write(&mut self, kind: u8, t: u64, payload: &[u8]) -> Result<(), RecordError> {
        let io = |source| RecordError::Io {
            path: self.path.clone(),
            source,
        };
        let mut head = [0u8; 13];
        head[0] = kind;
        head[1..9].copy_from_slice(&t.to_le_bytes());
        head[9..13].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        self.out.write_all(&head).map_err(io)?;
        self.out.write_all(payload).map_err(io)
    }

    pub fn flush(&mut self) -> Result<(), RecordError> {
        let path = self.path.clone();
        self.out
            .flush()
            .map_err(|source| RecordError::Io { path, source })
    }
}

/// Reads a recording record by record.
pub struct Reader {
    path: PathBuf,
    input: BufReader<File>,
    offset: u64,
    payload: Vec<u8>,
}

impl Reader {
    /// Opens `path` and checks its header.
    pub fn open(path: &Path) -> Result<Reader, RecordError> {
        let file = File::open(path).map_err(|source| RecordError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut input = BufReader::with_capacity(256 * 1024, file);
        let mut head = [0u8; 8];
        if read_full(&mut input, &mut head).map_err(|source| RecordError::Io {
            path: path.to_owned(),
            source,
        })? != 8
            || head != HEADER
        {
            return Err(RecordError::BadHeader {
                path: path.to_owned(),
            });
        }
        Ok(Reader {
            path: path.to_owned(),
            input,
            offset: 8,
            payload: Vec::new(),
        })
    }

    /// The byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record; `Ok(None)` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record>, RecordError> {
        let at = self.offset;
        let io = |source| RecordError::Io {
            path: self.path.clone(),
            source,
        };
        let mut head = [0u8; 13];
        let n = read_full(&mut self.input, &mut head).map_err(io)?;
        if n == 0 {
            return Ok(None);
        }
        if n < head.len() {
            return Err(self.truncated(at, format!("record header has {n} of 13 bytes")));
        }
        let kind = head[0];
        let t = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(head[9..13].try_into().expect("4 bytes")) as usize;
        let corrupt = |detail: String| RecordError::Corrupt {
            path: self.path.clone(),
            offset: at,
            detail,
        };
        match kind {
            KIND_RESUMED if len == 0 => {
                self.offset += 13;
                Ok(Some(Record::Resumed { recv_unix_nanos: t }))
            }
            KIND_RESUMED => Err(corrupt(format!("resume marker with a {len}-byte payload"))),
            KIND_UPDATE if len > MAX_RECORD => {
                Err(corrupt(format!("length {len} exceeds {MAX_RECORD}")))
            }
            KIND_UPDATE => {
                self.payload.resize(len, 0);
                let got = read_full(&mut self.input, &mut self.payload).map_err(io)?;
                if got < len {
                    return Err(self.truncated(at, format!("payload has {got} of {len} bytes")));
                }
                let update = SubscribeUpdate::decode(&self.payload[..])
                    .map_err(|e| corrupt(format!("payload does not decode: {e}")))?;
                self.offset += 13 + len as u64;
                Ok(Some(Record::Update {
                    recv_unix_nanos: t,
                    update: Box::new(update),
                }))
            }
            other => Err(corrupt(format!("unknown record kind {other}"))),
        }
    }

    fn truncated(&self, offset: u64, detail: String) -> RecordError {
        RecordError::Truncated {
            path: self.path.clone(),
            offset,
            detail,
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yellowstone_grpc_proto::geyser::{subscribe_update::UpdateOneof, SubscribeUpdateSlot};

    fn slot(s: u64) -> SubscribeUpdate {
        SubscribeUpdate {
            update_oneof: Some(UpdateOneof::Slot(SubscribeUpdateSlot {
                slot: s,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("stackcore-rec-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn records_read_back_in_order_and_appending_keeps_one_header() {
        let p = tmp("roundtrip");
        {
            let mut w = Recorder::open(&p).unwrap();
            w.update(10, &slot(1)).unwrap();
            w.resumed(11).unwrap();
        }
        {
            let mut w = Recorder::open(&p).unwrap();
            w.update(12, &slot(2)).unwrap();
        }
        let mut r = Reader::open(&p).unwrap();
        let mut got = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            got.push(rec);
        }
        assert_eq!(
            got,
            vec![
                Record::Update {
                    recv_unix_nanos: 10,
                    update: Box::new(slot(1))
                },
                Record::Resumed {
                    recv_unix_nanos: 11
                },
                Record::Update {
                    recv_unix_nanos: 12,
                    update: Box::new(slot(2))
                },
            ]
        );
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_corrupt_kind_names_its_offset() {
        let p = tmp("corrupt");
        {
            let mut w = Recorder::open(&p).unwrap();
            w.update(10, &slot(1)).unwrap();
        }
        let first_len = std::fs::metadata(&p).unwrap().len();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.extend_from_slice(&[9u8; 13]);
        std::fs::write(&p, &bytes).unwrap();
        let mut r = Reader::open(&p).unwrap();
        assert!(matches!(r.next_record(), Ok(Some(Record::Update { .. }))));
        let err = r.next_record().unwrap_err();
        assert_eq!(err.offset(), Some(first_len));
        assert!(
            err.to_string().contains(&format!("byte {first_len}")),
            "{err}"
        );
        std::fs::write(&p, b"nonsense").unwrap();
        assert!(matches!(
            Reader::open(&p),
            Err(RecordError::BadHeader { .. })
        ));
        assert!(matches!(
            Recorder::open(&p),
            Err(RecordError::BadHeader { .. })
        ));
        let _ = std::fs::remove_file(&p);
    }
}
