//! Test support shared by the view and frame tests: building views from the ORE stack file, a
//! client model that applies frames the way the SDKs do, and routing of [`Output`]s.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use serde_json::{json, Value};
use stackcore_engine::frame::SharedFrame;
use stackcore_engine::view::{Output, SubId, Subscription, ViewDef, ViewId, Views};
use stackcore_engine::{EntityCacheConfig, Mutation, Seq};

pub const ORE_STACK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/stacks/OreStream.stack.json"
);

/// `(state_name, views)` of every entity of the ORE stack file.
pub fn ore_entities() -> Vec<(String, Vec<ViewDef>)> {
    let text = std::fs::read_to_string(ORE_STACK).expect("ORE stack file");
    let stack: Value = serde_json::from_str(&text).expect("stack JSON");
    stack["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .map(|e| {
            let name = e["state_name"].as_str().expect("state_name").to_string();
            let views: Vec<ViewDef> = serde_json::from_value(e["views"].clone()).expect("views");
            (name, views)
        })
        .collect()
}

pub fn views_of(entities: &[(String, Vec<ViewDef>)], cfg: EntityCacheConfig) -> Views {
    Views::try_new(
        entities.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
        cfg,
    )
    .expect("views")
}

pub fn ore_views(cfg: EntityCacheConfig) -> Views {
    views_of(&ore_entities(), cfg)
}

pub fn mutation(
    entity: &str,
    key: Value,
    patch: Value,
    append: &[&str],
    seq: (u64, u64),
) -> Mutation {
    Mutation {
        entity: Arc::from(entity),
        key,
        patch: patch.into(),
        append: append.iter().map(|s| s.to_string()).collect(),
        seq: Seq::new(seq.0, seq.1),
    }
}

pub fn sub(view: &str, key: Option<&str>) -> Subscription {
    Subscription {
        view: view.to_string(),
        key: key.map(str::to_string),
        ..Default::default()
    }
}

/// The JSON of a frame's payload, gunzipped if it starts with the gzip magic.
pub fn decode(f: &SharedFrame) -> Value {
    let p = f.payload();
    if p.len() >= 2 && p[0] == 0x1f && p[1] == 0x8b {
        let mut s = Vec::new();
        flate2::read::GzDecoder::new(p)
            .read_to_end(&mut s)
            .expect("gzip");
        serde_json::from_slice(&s).expect("json in gzip")
    } else {
        serde_json::from_slice(p).expect("json")
    }
}

pub fn text(f: &SharedFrame) -> String {
    String::from_utf8(f.payload().to_vec()).expect("utf8 payload")
}

/// The frames of `out` addressed to `sub` (To only).
pub fn to_frames(out: &[Output], sub: SubId) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::To { sub: s, frame } if *s == sub => Some(decode(frame)),
            _ => None,
        })
        .collect()
}

/// What a client holds for one subscription, built only from the frames it receives, with the
/// merge both SDKs use (objects recurse, arrays replace unless their path is in `append`).
/// Arrays are cut to the newest `max_array` elements, mirroring the server cache's bound (the
/// SDKs themselves keep growing them; the newest elements agree).
#[derive(Debug, Clone)]
pub struct Client {
    pub sub: SubId,
    pub view: ViewId,
    pub view_name: String,
    pub key: Option<String>,
    pub state_mode: bool,
    pub rows: BTreeMap<String, Value>,
    pub sort: Option<(Vec<String>, String)>,
    pub subscribed: usize,
    pub snapshots_complete: usize,
    pub max_array: usize,
    pub ops: Vec<String>,
}

impl Client {
    pub fn new(
        sub: SubId,
        view: ViewId,
        view_name: &str,
        key: Option<&str>,
        state_mode: bool,
        max_array: usize,
    ) -> Self {
        Client {
            sub,
            view,
            view_name: view_name.to_string(),
            key: key.map(str::to_string),
            state_mode,
            rows: BTreeMap::new(),
            sort: None,
            subscribed: 0,
            snapshots_complete: 0,
            max_array,
            ops: Vec::new(),
        }
    }

    /// Whether a broadcast for `(view, key)` reaches this client.
    pub fn admits(&self, view: ViewId, key: &str) -> bool {
        view == self.view
            && match (&self.key, self.state_mode) {
                (Some(k), _) => k == key,
                (None, true) => key.is_empty(),
                (None, false) => true,
            }
    }

    pub fn apply(&mut self, f: &Value) {
        let op = f["op"].as_str().expect("op").to_string();
        self.ops.push(op.clone());
        match op.as_str() {
            "subscribed" => {
                assert_eq!(f["view"], json!(self.view_name));
                self.subscribed += 1;
                self.sort = f.get("sort").map(|s| {
                    let field = s["field"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().to_string())
                        .collect();
                    (field, s["order"].as_str().unwrap().to_string())
                });
            }
            "snapshot" => {
                assert_eq!(f["entity"], json!(self.view_name));
                for row in f["data"].as_array().expect("snapshot data") {
                    let k = row["key"].as_str().expect("row key").to_string();
                    let mut d = row["data"].clone();
                    cap(&mut d, self.max_array);
                    self.rows.insert(k, d);
                }
                if f.get("complete").is_none_or(|c| c == &json!(true)) {
                    self.snapshots_complete += 1;
                }
            }
            "patch" => {
                assert_eq!(f["entity"], json!(self.view_name));
                let k = f["key"].as_str().expect("key").to_string();
                let append: Vec<String> = f
                    .get("append")
                    .map(|a| {
                        a.as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                let max = self.max_array;
                match self.rows.get_mut(&k) {
                    Some(cur) => client_merge(cur, &f["data"], &append, "", max),
                    None => {
                        let mut d = f["data"].clone();
                        cap(&mut d, max);
                        self.rows.insert(k, d);
                    }
                }
            }
            "upsert" | "create" => {
                let mut d = f["data"].clone();
                cap(&mut d, self.max_array);
                self.rows.insert(f["key"].as_str().unwrap().to_string(), d);
            }
            "delete" => {
                self.rows.remove(f["key"].as_str().unwrap());
            }
            other => panic!("unexpected op {other}"),
        }
    }

    /// Row keys in the order the client would show them (its `subscribed.sort`, ties by key,
    /// `desc` reversing the whole comparison).
    pub fn ordered_keys(&self) -> Vec<String> {
        let mut keys: Vec<&String> = self.rows.keys().collect();
        if let Some((field, order)) = &self.sort {
            keys.sort_by(|a, b| {
                let va = sort_key(&self.rows[*a], field);
                let vb = sort_key(&self.rows[*b], field);
                let o = cmp_sort(&va, &vb).then_with(|| a.cmp(b));
                if order == "desc" {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        keys.into_iter().cloned().collect()
    }
}

fn client_merge(target: &mut Value, src: &Value, append: &[String], path: &str, max: usize) {
    let (Some(t), Some(s)) = (target.as_object_mut(), src.as_object()) else {
        *target = src.clone();
        cap(target, max);
        return;
    };
    for (k, sv) in s {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match (t.get_mut(k), sv) {
            (Some(Value::Array(ta)), Value::Array(sa)) if append.contains(&p) => {
                ta.extend(sa.iter().cloned());
                let mut whole = Value::Array(std::mem::take(ta));
                cap(&mut whole, max);
                *ta = match whole {
                    Value::Array(a) => a,
                    _ => unreachable!(),
                };
            }
            (Some(tv), Value::Object(_)) if tv.is_object() => client_merge(tv, sv, append, &p, max),
            _ => {
                let mut v = sv.clone();
                cap(&mut v, max);
                t.insert(k.clone(), v);
            }
        }
    }
}

fn cap(v: &mut Value, max: usize) {
    match v {
        Value::Array(a) => {
            while a.len() > max {
                a.remove(0);
            }
            a.iter_mut().for_each(|x| cap(x, max));
        }
        Value::Object(o) => o.values_mut().for_each(|x| cap(x, max)),
        _ => {}
    }
}

/// A sort value as the client model orders it: (type rank, number, string).
#[derive(Debug, PartialEq)]
pub enum SK {
    Null,
    Bool(bool),
    Num(f64),
    Seq(u64, u64),
    Str(String),
}

pub fn sort_key(entity: &Value, field: &[String]) -> SK {
    let mut v = entity;
    for s in field {
        match v.get(s) {
            Some(x) => v = x,
            None => return SK::Null,
        }
    }
    if field == ["_seq"] {
        if let Some((a, b)) = v.as_str().and_then(|s| s.split_once(':')) {
            if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                return SK::Seq(a, b);
            }
        }
    }
    match v {
        Value::Bool(b) => SK::Bool(*b),
        Value::Number(n) => SK::Num(n.as_f64().unwrap()),
        Value::String(s) => SK::Str(s.clone()),
        _ => SK::Null,
    }
}

pub fn cmp_sort(a: &SK, b: &SK) -> std::cmp::Ordering {
    let rank = |x: &SK| match x {
        SK::Null => 0,
        SK::Bool(_) => 1,
        SK::Num(_) => 2,
        SK::Seq(..) => 3,
        SK::Str(_) => 4,
    };
    match (a, b) {
        (SK::Bool(x), SK::Bool(y)) => x.cmp(y),
        (SK::Num(x), SK::Num(y)) => x.total_cmp(y),
        (SK::Seq(a1, a2), SK::Seq(b1, b2)) => (a1, a2).cmp(&(b1, b2)),
        (SK::Str(x), SK::Str(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Delivers `out` to the clients the way a reactor would.
pub fn route(out: &[Output], clients: &mut [Client]) {
    for o in out {
        match o {
            Output::Broadcast { view, key, frame } => {
                let v = decode(frame);
                for c in clients.iter_mut().filter(|c| c.admits(*view, key)) {
                    c.apply(&v);
                }
            }
            Output::To { sub, frame } => {
                let v = decode(frame);
                for c in clients.iter_mut().filter(|c| c.sub == *sub) {
                    c.apply(&v);
                }
            }
        }
    }
}
