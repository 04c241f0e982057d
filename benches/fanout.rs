//! Fan-out per frame per client: one [`SharedFrame`] enqueued on N connections' outbound queues,
//! then each queue drained with vectored writes into a sink.
//!
//! The queue is a faithful model of the reactor's per-connection outbound queue (branch `reactor`:
//! a `VecDeque` of `SharedFrame` clones with byte accounting, flushed by `write_vectored` with up
//! to 64 slices per call); the reactor's own `Conn` needs a live socket and handshake, so it is not
//! constructed here. Three sinks: `io::sink()` (the queue and iovec work alone), a reused
//! `Vec<u8>` (adds the byte copy the kernel would do), and a real socket: one Unix stream pair per
//! client, written with `writev` and drained by a `read` on the peer end in the same thread (so
//! that figure pays for both system calls, a conservative bound for one reactor core). Throughput is frames delivered (frames ×
//! clients); the target is ≥ 1M frames/s per reactor core.

use std::collections::VecDeque;
use std::hint::black_box;
use std::io::{self, IoSlice, Read, Write};
use std::os::unix::net::UnixStream;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use stackcore_engine::SharedFrame;

/// Slices per `write_vectored` call (as the reactor).
const IOV_MAX: usize = 64;

#[derive(Default)]
struct OutQueue {
    queue: VecDeque<SharedFrame>,
    front_off: usize,
    queued_bytes: usize,
}

impl OutQueue {
    fn enqueue(&mut self, f: &SharedFrame) {
        self.queued_bytes += f.wire_len();
        self.queue.push_back(f.clone());
    }

    /// Writes everything queued; returns frames completed.
    fn flush(&mut self, out: &mut impl Write) -> io::Result<usize> {
        let mut done = 0;
        while !self.queue.is_empty() {
            let mut iov = [IoSlice::new(&[]); IOV_MAX];
            let mut n = 0;
            for (i, f) in self.queue.iter().take(IOV_MAX).enumerate() {
                let off = if i == 0 { self.front_off } else { 0 };
                iov[n] = IoSlice::new(&f.wire()[off..]);
                n += 1;
            }
            let mut w = out.write_vectored(&iov[..n])?;
            while w > 0 {
                let Some(front) = self.queue.front() else {
                    break;
                };
                let rest = front.wire_len() - self.front_off;
                if w >= rest {
                    w -= rest;
                    self.queue.pop_front();
                    self.front_off = 0;
                    self.queued_bytes -= rest;
                    done += 1;
                } else {
                    self.front_off += w;
                    self.queued_bytes -= w;
                    w = 0;
                }
            }
        }
        Ok(done)
    }
}

/// A typical ORE list patch frame (~200 bytes of JSON).
fn frame() -> SharedFrame {
    let payload = br#"{"mode":"list","entity":"OreRound/list","op":"patch","key":"4242","data":{"id":4242,"state":{"total_deployed":123456789,"motherlode":1000000,"deploy_count":17},"_seq":"300000123:000000000002"},"seq":"300000123:000000000002"}"#;
    SharedFrame::binary(payload)
}

fn fanout(c: &mut Criterion) {
    let f = frame();
    let mut g = c.benchmark_group("fanout");
    for &clients in &[100usize, 1_000] {
        for &batch in &[1usize, 16] {
            g.throughput(Throughput::Elements((clients * batch) as u64));
            let id = format!("{clients}clients/{batch}frames");
            g.bench_function(BenchmarkId::new("sink", &id), |b| {
                let mut conns: Vec<OutQueue> = (0..clients).map(|_| OutQueue::default()).collect();
                let mut sink = io::sink();
                b.iter(|| {
                    for _ in 0..batch {
                        for q in &mut conns {
                            q.enqueue(&f);
                        }
                    }
                    let mut n = 0;
                    for q in &mut conns {
                        n += q.flush(&mut sink).unwrap_or(0);
                    }
                    black_box(n)
                })
            });
            g.bench_function(BenchmarkId::new("copy", &id), |b| {
                let mut conns: Vec<OutQueue> = (0..clients).map(|_| OutQueue::default()).collect();
                let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
                b.iter(|| {
                    for _ in 0..batch {
                        for q in &mut conns {
                            q.enqueue(&f);
                        }
                    }
                    let mut n = 0;
                    for q in &mut conns {
                        buf.clear();
                        n += q.flush(&mut buf).unwrap_or(0);
                    }
                    black_box((n, buf.len()))
                })
            });
            g.bench_function(BenchmarkId::new("socket", &id), |b| {
                let pairs: Vec<(UnixStream, UnixStream)> = (0..clients)
                    .filter_map(|_| UnixStream::pair().ok())
                    .collect();
                let mut conns: Vec<OutQueue> = pairs.iter().map(|_| OutQueue::default()).collect();
                let mut buf = vec![0u8; 64 * 1024];
                b.iter(|| {
                    let mut n = 0;
                    for (q, (tx, rx)) in conns.iter_mut().zip(&pairs) {
                        for _ in 0..batch {
                            q.enqueue(&f);
                        }
                        let mut w: &UnixStream = tx;
                        n += q.flush(&mut w).unwrap_or(0);
                        let mut r: &UnixStream = rx;
                        let _ = r.read(&mut buf);
                    }
                    black_box(n)
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
