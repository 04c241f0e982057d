//! Property test: random mutation streams through every view kind and subscribe option; every
//! client, built only from the frames it receives (snapshot then live, deep merge with append
//! paths, upsert/delete), must hold exactly what the server holds for it, after every step.
//!
//! Seeded with a tiny PRNG of its own, so a failure names its seed and step and replays exactly.

mod view_support;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use stackcore_engine::view::spec::{FieldPath, ViewOutput, ViewSource, ViewTransform};
use stackcore_engine::view::{Output, SubId, Subscription, ViewDef, Views};
use stackcore_engine::EntityCacheConfig;
use view_support::*;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

const KEYS: u64 = 12;
const NAMES: [&str; 5] = ["ann", "bob", "cy", "dee", "Eve"];
const OWNERS: [&str; 3] = ["o1", "o2", "o3"];

fn t(v: Value) -> ViewTransform {
    serde_json::from_value(v).unwrap()
}

fn path(p: &[&str]) -> Value {
    json!({"segments": p, "offsets": null})
}

fn defs() -> Vec<ViewDef> {
    let d = |id: &str, pipeline: Vec<ViewTransform>, output: ViewOutput| ViewDef {
        id: id.into(),
        source: ViewSource::Entity { name: "T".into() },
        pipeline,
        output,
    };
    vec![
        d(
            "T/by_n",
            vec![t(json!({"Sort": {"key": path(&["n"]), "order": "asc"}}))],
            ViewOutput::Collection,
        ),
        d(
            "T/by_name",
            vec![t(
                json!({"Sort": {"key": path(&["name"]), "order": "desc"}}),
            )],
            ViewOutput::Collection,
        ),
        d(
            "T/recent",
            vec![t(json!({"Take": {"count": 5}}))],
            ViewOutput::Collection,
        ),
        d(
            "T/live",
            vec![
                t(
                    json!({"Filter": {"predicate": {"Compare": {"field": path(&["live"]), "op": "Eq", "value": {"Literal": true}}}}}),
                ),
                t(json!({"Sort": {"key": path(&["o", "p"]), "order": "desc"}})),
                t(json!({"Skip": {"count": 1}})),
                t(json!({"Take": {"count": 4}})),
            ],
            ViewOutput::Collection,
        ),
        d(
            "T/max",
            vec![t(json!({"MaxBy": {"key": path(&["n"])}}))],
            ViewOutput::Single,
        ),
        d(
            "T/last",
            vec![
                t(json!({"Sort": {"key": path(&["n"]), "order": "asc"}})),
                t(json!("Last")),
            ],
            ViewOutput::Collection,
        ),
        d(
            "T/by_owner",
            vec![t(
                json!({"Filter": {"predicate": {"Exists": {"field": path(&["owner"])}}}}),
            )],
            ViewOutput::Keyed {
                key_field: FieldPath::new(&["owner"]),
            },
        ),
    ]
}

fn key_json(i: u64) -> Value {
    match i % 3 {
        0 => json!(i),
        1 => json!(format!("k{i}")),
        _ => json!([i, 255 - i]),
    }
}

fn key_str(i: u64) -> String {
    match i % 3 {
        0 => i.to_string(),
        1 => format!("k{i}"),
        _ => format!("{:02x}{:02x}", i, 255 - i),
    }
}

fn random_patch(r: &mut Rng) -> (Value, Vec<String>) {
    let mut p = Map::new();
    let mut append = Vec::new();
    while p.is_empty() {
        if r.chance(50) {
            let n = match r.below(5) {
                0 => json!(r.below(20) as f64 + 0.5),
                1 => json!((1u64 << 53) + r.below(4)),
                2 => json!(-((1i64 << 53) + r.below(4) as i64)),
                _ => json!(r.below(20)),
            };
            p.insert("n".into(), n);
        }
        if r.chance(30) {
            p.insert("name".into(), json!(r.pick(&NAMES)));
        }
        if r.chance(30) {
            p.insert("live".into(), json!(r.chance(60)));
        }
        if r.chance(25) {
            let o = if r.chance(20) {
                Value::Null
            } else {
                json!(r.pick(&OWNERS))
            };
            p.insert("owner".into(), o);
        }
        if r.chance(30) {
            let mut o = Map::new();
            if r.chance(60) {
                o.insert("p".into(), json!(r.below(10)));
            }
            if r.chance(50) {
                o.insert(
                    "q".into(),
                    json!((0..1 + r.below(3))
                        .map(|_| r.below(100))
                        .collect::<Vec<_>>()),
                );
                if r.chance(70) {
                    append.push("o.q".to_string());
                }
            }
            p.insert("o".into(), Value::Object(o));
        }
        if r.chance(30) {
            p.insert(
                "ev".into(),
                json!((0..1 + r.below(3))
                    .map(|_| json!({"x": r.below(1000)}))
                    .collect::<Vec<_>>()),
            );
            if r.chance(70) {
                append.push("ev".to_string());
            }
        }
    }
    (Value::Object(p), append)
}

struct Case {
    views: Views,
    clients: Vec<Client>,
    windows: BTreeMap<u64, (Option<usize>, Option<usize>)>,
    next_sub: u64,
    max_array: usize,
}

const VIEWS: [&str; 10] = [
    "T/list",
    "T/state",
    "T/append",
    "T/by_n",
    "T/by_name",
    "T/recent",
    "T/live",
    "T/max",
    "T/last",
    "T/by_owner",
];

impl Case {
    fn subscribe(&mut self, r: &mut Rng, seqs: &[String], reuse: Option<usize>) {
        let (id, view) = match reuse {
            Some(i) => (self.clients[i].sub, self.clients[i].view_name.clone()),
            None => {
                self.next_sub += 1;
                (SubId(self.next_sub), r.pick(&VIEWS).to_string())
            }
        };
        let vid = self.views.view_id(&view).unwrap();
        let state_mode = self.views.mode(vid).unwrap().as_str() == "state";
        let is_window = !matches!(
            view.as_str(),
            "T/list" | "T/state" | "T/append" | "T/by_owner"
        );
        let mut s = Subscription {
            view: view.clone(),
            ..Default::default()
        };
        if let Some(i) = reuse {
            // A repeat of the same sub-key (`view:key`): only the other options change.
            s.key = self.clients[i].key.clone();
        } else if view == "T/by_owner" {
            s.key = Some(r.pick(&OWNERS).to_string());
        } else if view == "T/state" || (!is_window && r.chance(30)) {
            s.key = Some(key_str(r.below(KEYS)));
        }
        if is_window {
            if r.chance(50) {
                s.skip = Some(r.below(3) as usize);
            }
            if r.chance(60) {
                s.take = Some(1 + r.below(4) as usize);
            }
        }
        if r.chance(20) {
            s.with_snapshot = Some(false);
        }
        if !is_window && !state_mode {
            if r.chance(20) && !seqs.is_empty() {
                s.after = Some(r.pick(seqs).clone());
            }
            if r.chance(20) {
                s.snapshot_limit = Some(r.below(4) as usize);
            }
        }
        let partial =
            s.with_snapshot == Some(false) || s.after.is_some() || s.snapshot_limit.is_some();
        let mut out = Vec::new();
        self.views.subscribe(id, &s, &mut out).expect("subscribe");
        let ci = match reuse {
            Some(i) => i,
            None => {
                self.clients.push(Client::new(
                    id,
                    vid,
                    &view,
                    s.key.as_deref(),
                    state_mode,
                    self.max_array,
                ));
                self.clients.len() - 1
            }
        };
        if is_window {
            self.windows.insert(id.0, (s.skip, s.take));
        } else if partial {
            // The client resumes: it already holds what it saw before (modelled as the server's
            // rows at this moment); the frames must bring it to the truth from here on.
            for (k, e) in self.views.rows(vid) {
                if self.clients[ci]
                    .key
                    .as_deref()
                    .is_none_or(|want| want == &*k)
                {
                    self.clients[ci].rows.insert(k.to_string(), (*e).clone());
                }
            }
        }
        let c = &mut self.clients[ci];
        let frames = to_frames(&out, id);
        assert_eq!(frames[0]["op"], json!("subscribed"));
        assert!(frames[1..]
            .iter()
            .any(|f| f["op"] == json!("snapshot") && f["complete"] == json!(true)));
        for f in &frames {
            c.apply(f);
        }
    }

    fn check(&self, ctx: &str) {
        for c in &self.clients {
            let rows = self.views.rows(c.view);
            let vname = c.view_name.as_str();
            match vname {
                "T/list" | "T/append" => {
                    for (k, e) in &rows {
                        if c.key.as_deref().is_none_or(|w| w == &**k) {
                            assert_eq!(
                                c.rows.get(&**k),
                                Some(&**e),
                                "{ctx}: {vname} sub {:?} key {k}",
                                c.sub
                            );
                        }
                    }
                    if let Some(w) = &c.key {
                        assert!(c.rows.keys().all(|k| k == w), "{ctx}: key filter leaked");
                    }
                }
                "T/state" | "T/by_owner" => {
                    let k = c.key.as_deref().unwrap_or("");
                    match self.views.get(c.view, k) {
                        Some(e) => {
                            assert_eq!(c.rows.len(), 1, "{ctx}: {vname} {k}");
                            assert_eq!(c.rows.get(k), Some(e), "{ctx}: {vname} {k}");
                        }
                        None if vname == "T/by_owner" => {
                            assert!(c.rows.is_empty(), "{ctx}: {vname} {k} stale")
                        }
                        None => {}
                    }
                }
                _ => {
                    let (skip, take) = self.windows[&c.sub.0];
                    let want: Vec<_> = rows
                        .iter()
                        .skip(skip.unwrap_or(0))
                        .take(take.unwrap_or(100))
                        .collect();
                    let want_keys: Vec<String> = want.iter().map(|(k, _)| k.to_string()).collect();
                    let got = c.ordered_keys();
                    if c.sort.is_some() {
                        assert_eq!(
                            got, want_keys,
                            "{ctx}: {vname} sub {:?} window order",
                            c.sub
                        );
                    } else {
                        let mut w = want_keys.clone();
                        w.sort();
                        assert_eq!(got, w, "{ctx}: {vname} window keys");
                    }
                    for (k, e) in want {
                        assert_eq!(c.rows.get(&**k), Some(&**e), "{ctx}: {vname} row {k}");
                    }
                }
            }
        }
    }
}

fn stringify(v: &mut Value) {
    const MAX: u64 = (1 << 53) - 1;
    match v {
        Value::Number(n)
            if n.as_u64().is_some_and(|u| u > MAX)
                || n.as_i64().is_some_and(|i| i.unsigned_abs() > MAX) =>
        {
            *v = Value::String(n.to_string())
        }
        Value::Array(a) => a.iter_mut().for_each(stringify),
        Value::Object(o) => o.values_mut().for_each(stringify),
        _ => {}
    }
}

/// The server's derived rows must obey their pipeline: checked against the truth.
fn check_derived(v: &Views, truth: &BTreeMap<String, Value>, ctx: &str) {
    let order_ok = |name: &str, field: &[&str], desc: bool| {
        let rows = v.rows(v.view_id(name).unwrap());
        let field: Vec<String> = field.iter().map(|s| s.to_string()).collect();
        for w in rows.windows(2) {
            let o = cmp_sort(&sort_key(&w[0].1, &field), &sort_key(&w[1].1, &field))
                .then_with(|| w[0].0.cmp(&w[1].0));
            let o = if desc { o.reverse() } else { o };
            assert_eq!(o, std::cmp::Ordering::Less, "{ctx}: {name} out of order");
        }
        for (k, e) in &rows {
            if let Some(t) = truth.get(&**k) {
                assert_eq!(t, &**e, "{ctx}: {name} row {k} is not the merged entity");
            }
        }
        rows
    };
    order_ok("T/by_n", &["n"], false);
    order_ok("T/by_name", &["name"], true);
    assert!(order_ok("T/recent", &["_seq"], true).len() <= 5);
    let live = order_ok("T/live", &["o", "p"], true);
    assert!(
        live.len() <= 4 && live.iter().all(|(_, e)| e["live"] == json!(true)),
        "{ctx}: T/live filter"
    );
    assert!(order_ok("T/max", &["n"], true).len() <= 1);
    assert!(order_ok("T/last", &["n"], true).len() <= 1);
}

fn run(seed: u64, steps: usize) {
    let cfg = EntityCacheConfig {
        max_entities_per_view: 8,
        max_array_length: 4,
        initial_snapshot_batch_size: 2,
        subsequent_snapshot_batch_size: 3,
    };
    let mut r = Rng(seed);
    let mut case = Case {
        views: views_of(&[("T".to_string(), defs())], cfg),
        clients: Vec::new(),
        windows: BTreeMap::new(),
        next_sub: 0,
        max_array: cfg.max_array_length,
    };
    // The truth: every key's merged entity, with the LRU bound of the entity cache.
    let mut truth: BTreeMap<String, Value> = BTreeMap::new();
    let mut recency: Vec<String> = Vec::new();
    let mut seqs: Vec<String> = Vec::new();
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        match r.below(100) {
            0..=7 => case.subscribe(&mut r, &seqs, None),
            8..=9 if !case.clients.is_empty() => {
                let i = r.below(case.clients.len() as u64) as usize;
                case.subscribe(&mut r, &seqs, Some(i));
            }
            10..=11 if !case.clients.is_empty() => {
                let i = r.below(case.clients.len() as u64) as usize;
                let c = case.clients.swap_remove(i);
                case.views.unsubscribe(c.sub);
            }
            _ => {
                let ki = r.below(KEYS);
                let (patch, append) = random_patch(&mut r);
                let slot = if r.chance(15) {
                    (step as u64).saturating_sub(r.below(20))
                } else {
                    step as u64
                };
                let seq = (slot, r.below(3));
                let m = mutation("T", key_json(ki), patch.clone(), &[], seq);
                let m = stackcore_engine::Mutation {
                    append: append.clone(),
                    ..m
                };
                let mut out: Vec<Output> = Vec::new();
                case.views.apply(&m, &mut out);
                route(&out, &mut case.clients);

                let k = key_str(ki);
                let mut p = patch;
                stringify(&mut p);
                p["_seq"] = json!(m.seq.to_string());
                seqs.push(m.seq.to_string());
                recency.retain(|x| *x != k);
                recency.push(k.clone());
                if recency.len() > cfg.max_entities_per_view {
                    // Eviction is silent: a subscribed client keeps the row (it holds more than
                    // the server from now on). Only what the server still holds is compared.
                    let gone = recency.remove(0);
                    truth.remove(&gone);
                    for c in case.clients.iter_mut() {
                        if matches!(c.view_name.as_str(), "T/list" | "T/append" | "T/state") {
                            c.rows.remove(&gone);
                        }
                    }
                }
                let mut model = Client::new(
                    SubId(0),
                    case.views.view_id("T/list").unwrap(),
                    "T/list",
                    None,
                    false,
                    cfg.max_array_length,
                );
                model.rows = std::mem::take(&mut truth);
                let mut f = json!({"op": "patch", "entity": "T/list", "key": k, "data": p});
                if !append.is_empty() {
                    f["append"] = json!(append);
                }
                model.apply(&f);
                truth = model.rows;
            }
        }
        let list = case.views.view_id("T/list").unwrap();
        let server: BTreeMap<String, Value> = case
            .views
            .rows(list)
            .into_iter()
            .map(|(k, e)| (k.to_string(), (*e).clone()))
            .collect();
        assert_eq!(server, truth, "{ctx}: entity cache");
        check_derived(&case.views, &truth, &ctx);
        case.check(&ctx);
    }
}

#[test]
fn clients_reconstruct_exactly_what_the_server_holds() {
    for seed in 1..=12 {
        run(seed, 400);
    }
}
