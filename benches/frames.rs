//! Frame building: projection + encode of ORE-like patches, gzip of snapshots, and a 500-row
//! snapshot build. `serde_json` alone (a derived envelope struct) is measured beside the tuned
//! envelope writer, on the same data.
//!
//! Run: `cargo bench --bench frames` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::Serialize;
use serde_json::{json, Value};
use stackcore_engine::frame::{gzip, FrameWriter, Mode, SharedFrame};
use stackcore_engine::view::{SubId, Subscription, ViewDef, Views};
use stackcore_engine::{EntityCacheConfig, Mutation, Seq};

const ORE_STACK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/stacks/OreStream.stack.json"
);

fn ore_views() -> Views {
    let text = std::fs::read_to_string(ORE_STACK).expect("ORE stack file");
    let stack: Value = serde_json::from_str(&text).expect("stack JSON");
    let ents: Vec<(String, Vec<ViewDef>)> = stack["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .map(|e| {
            (
                e["state_name"].as_str().unwrap().to_string(),
                serde_json::from_value(e["views"].clone()).unwrap(),
            )
        })
        .collect();
    Views::try_new(
        ents.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
        EntityCacheConfig::default(),
    )
    .unwrap()
}

/// A typical OreRound patch: the round's state after a deploy.
fn round_patch(i: u64) -> Value {
    json!({
        "id": {"round_id": 90_000 + (i % 8), "round_address": "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"},
        "state": {
            "deployed_per_square": (0..25).map(|s| 1_000_000 * s + i).collect::<Vec<_>>(),
            "count_per_square": (0..25).map(|s| s + i % 7).collect::<Vec<_>>(),
            "total_deployed": 1_234_567_890u64 + i,
            "total_miners": 301 + i % 50,
            "motherlode": 9_007_199_254_740_993u64,
        },
        "metrics": {"deploy_count": i, "checkpoint_count": i / 3},
    })
}

fn round_mutation(i: u64) -> Mutation {
    Mutation {
        entity: Arc::from("OreRound"),
        key: json!(90_000 + (i % 8)),
        patch: round_patch(i).into(),
        append: Vec::new(),
        seq: Seq::new(312_345_678 + i, i),
    }
}

#[derive(Serialize)]
struct SerdeFrame<'a> {
    mode: &'a str,
    entity: &'a str,
    op: &'a str,
    key: &'a str,
    data: &'a Value,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    append: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<String>,
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_patch");
    g.throughput(Throughput::Elements(1));
    let mut data = round_patch(1);
    data["_seq"] = json!("312345679:000000000001");
    let seq = Seq::new(312_345_679, 1);
    g.bench_function("serde_json_envelope", |b| {
        b.iter(|| {
            let f = SerdeFrame {
                mode: "list",
                entity: "OreRound/list",
                op: "patch",
                key: "90001",
                data: &data,
                append: &[],
                seq: Some(seq.to_string()),
            };
            let bytes = serde_json::to_vec(black_box(&f)).unwrap();
            black_box(SharedFrame::binary(&bytes))
        })
    });
    let mut w = FrameWriter::new();
    let mut body = Vec::new();
    g.bench_function("tuned_envelope", |b| {
        b.iter(|| {
            body.clear();
            serde_json::to_writer(&mut body, black_box(&data)).unwrap();
            black_box(w.patch(Mode::List, "OreRound/list", "90001", &body, &[], Some(seq)))
        })
    });
    g.finish();
}

fn project(c: &mut Criterion) {
    let mut g = c.benchmark_group("project_and_encode");
    g.throughput(Throughput::Elements(1));
    // One list subscriber, one state subscriber per round, one `latest` window of 10.
    let mut v = ore_views();
    let mut out = Vec::new();
    v.subscribe(
        SubId(1),
        &Subscription {
            view: "OreRound/list".into(),
            ..Default::default()
        },
        &mut out,
    )
    .unwrap();
    for k in 0..8u64 {
        let s = Subscription {
            view: "OreRound/state".into(),
            key: Some((90_000 + k).to_string()),
            ..Default::default()
        };
        v.subscribe(SubId(10 + k), &s, &mut out).unwrap();
    }
    let latest = Subscription {
        view: "OreRound/latest".into(),
        take: Some(10),
        ..Default::default()
    };
    v.subscribe(SubId(2), &latest, &mut out).unwrap();
    let muts: Vec<Mutation> = (0..64).map(round_mutation).collect();
    let mut i = 0;
    g.bench_function("ore_round_list_state_latest", |b| {
        b.iter(|| {
            out.clear();
            v.apply(black_box(&muts[i % muts.len()]), &mut out);
            i += 1;
            black_box(out.len())
        })
    });
    let mut bare = ore_views();
    g.bench_function("ore_round_no_subscribers", |b| {
        b.iter(|| {
            out.clear();
            bare.apply(black_box(&muts[i % muts.len()]), &mut out);
            i += 1;
            black_box(out.len())
        })
    });
    g.finish();
}

fn snapshots(c: &mut Criterion) {
    let mut v = ore_views();
    let mut out = Vec::new();
    for i in 0..500u64 {
        let m = Mutation {
            key: json!(i),
            ..round_mutation(i)
        };
        v.apply(&m, &mut out);
    }
    let rows: Vec<Value> = (0..500u64).map(round_patch).collect();
    let json = serde_json::to_vec(&rows).unwrap();
    let mut g = c.benchmark_group("snapshot");
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("gzip_fast_500_rows", |b| {
        b.iter(|| black_box(gzip::maybe_gzip(black_box(&json))))
    });
    g.throughput(Throughput::Elements(500));
    let s = Subscription {
        view: "OreRound/list".into(),
        ..Default::default()
    };
    g.bench_function("build_500_row_snapshot", |b| {
        b.iter(|| {
            out.clear();
            v.subscribe(SubId(1), &s, &mut out).unwrap();
            v.unsubscribe(SubId(1));
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, encode, project, snapshots);
criterion_main!(benches);
