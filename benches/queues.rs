//! Queue hand-off between two threads: a producer sends N messages, a consumer on another thread
//! receives them. crossbeam's bounded channel (what the topology uses between ingest, VM workers
//! and reactors) beside `std::sync::mpsc` (bounded `sync_channel` and unbounded `channel`).
//! The message is a 64-byte payload, about the size of a `ToWorker`/`ToReactor` value.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[derive(Clone, Copy)]
struct Msg([u64; 8]);

/// Capacity of the bounded queues (the order of the topology's defaults).
const CAP: usize = 8_192;

fn hand_off<S, R>(
    iters: u64,
    (tx, rx): (S, R),
    send: fn(&S, Msg),
    recv: fn(&R) -> Option<Msg>,
) -> Duration
where
    S: Send + 'static,
    R: Send + 'static,
{
    let consumer = std::thread::spawn(move || {
        let mut sum = 0u64;
        while let Some(m) = recv(&rx) {
            sum = sum.wrapping_add(m.0[0]);
        }
        black_box(sum)
    });
    let start = Instant::now();
    for i in 0..iters {
        send(&tx, Msg([i; 8]));
    }
    drop(tx);
    let _ = consumer.join();
    start.elapsed()
}

fn queues(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_hand_off");
    g.throughput(Throughput::Elements(1));
    g.bench_function("crossbeam_bounded", |b| {
        b.iter_custom(|iters| {
            hand_off(
                iters,
                crossbeam_channel::bounded::<Msg>(CAP),
                |tx, m| {
                    let _ = tx.send(m);
                },
                |rx| rx.recv().ok(),
            )
        })
    });
    g.bench_function("std_mpsc_sync_channel", |b| {
        b.iter_custom(|iters| {
            hand_off(
                iters,
                std::sync::mpsc::sync_channel::<Msg>(CAP),
                |tx, m| {
                    let _ = tx.send(m);
                },
                |rx| rx.recv().ok(),
            )
        })
    });
    g.bench_function("std_mpsc_channel_unbounded", |b| {
        b.iter_custom(|iters| {
            hand_off(
                iters,
                std::sync::mpsc::channel::<Msg>(),
                |tx, m| {
                    let _ = tx.send(m);
                },
                |rx| rx.recv().ok(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, queues);
criterion_main!(benches);
