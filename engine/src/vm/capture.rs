//! Captured updates, kept as records until something reads them.
//!
//! A capture mapping (`AsCapture`) stores a whole update in one field: its fields (with the
//! mapping's transforms applied), address, slot, timestamp and signature. The reference builds
//! that JSON tree for every captured update, and the next update of the account throws it away.
//! Here the row keeps a [`Capture`]: the decoded record itself (shared) plus the few transformed
//! fields. It is rendered to JSON only where JSON is needed: the patch on its way to the wire
//! (once, in the views), an expression or a later write that reads into it, a snapshot.
//!
//! A slot's value is a [`Stored`]: a scalar held by value, shared JSON, or a shared capture.
//! Patches take the same value: a scalar is copied without allocating, the others are shared
//! (`Arc`), so a patch never copies a tree.
//!
//! Rendering gives exactly the tree the reference would have stored. Transforms are applied when
//! the update is captured, so a transform that fails fails the update, as the reference's does.
//! Cases where the rendering would have to replay the reference's order of in-place rewrites
//! (overlapping transform paths, paths into bookkeeping fields, instruction records) build the
//! tree at once instead.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};

use super::json::{self, Path, StepError};
use super::record::{Ev, EvPath};
use super::Sig;
use crate::spec::Transformation;

/// A row slot's value.
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    /// Held by value: `null`, a bool or a number when stored (copying one allocates nothing).
    /// An in-place write may turn it into a tree; it is then still correct, only dearer to copy.
    Own(Json),
    Json(Arc<Json>),
    Capture(Arc<Capture>),
}

impl Stored {
    /// A value to store: scalars by value, anything with an allocation of its own shared.
    pub fn new(v: Json) -> Stored {
        Stored::new_in(v, &mut Vec::new())
    }

    /// [`Stored::new`], a shared value made in one of `boxes` (emptied allocations of shared
    /// values nothing holds any more, see `VmContext::keep_stored`) when there is one.
    pub fn new_in(v: Json, boxes: &mut Vec<Arc<Json>>) -> Stored {
        match v {
            Json::Null | Json::Bool(_) | Json::Number(_) => Stored::Own(v),
            _ => match boxes.pop() {
                Some(mut b) => {
                    *Arc::get_mut(&mut b).expect("a spare box is held by nothing else") = v;
                    Stored::Json(b)
                }
                None => Stored::Json(Arc::new(v)),
            },
        }
    }

    /// The value as JSON: borrowed, or rendered for a capture.
    pub fn json(&self) -> Cow<'_, Json> {
        match self {
            Stored::Own(v) => Cow::Borrowed(v),
            Stored::Json(v) => Cow::Borrowed(v),
            Stored::Capture(c) => Cow::Owned(c.to_json()),
        }
    }

    /// The value as JSON when it is JSON already (not a capture), borrowed.
    pub fn as_json(&self) -> Option<&Json> {
        match self {
            Stored::Own(v) => Some(v),
            Stored::Json(v) => Some(v),
            Stored::Capture(_) => None,
        }
    }

    /// The value as JSON to change in place: a capture is rendered first, a value something else
    /// holds (a patch, an undo point) is copied first.
    pub fn json_mut(&mut self) -> &mut Json {
        if let Stored::Capture(c) = self {
            *self = Stored::new(c.to_json());
        }
        match self {
            Stored::Own(v) => v,
            Stored::Json(v) => Arc::make_mut(v),
            Stored::Capture(_) => unreachable!("rendered above"),
        }
    }

    /// The value's place itself, when nothing else holds it (a write can reuse it).
    pub fn unique_json(&mut self) -> Option<&mut Json> {
        match self {
            Stored::Own(v) => Some(v),
            Stored::Json(v) => Arc::get_mut(v),
            Stored::Capture(_) => None,
        }
    }
}

/// One captured update.
#[derive(Debug)]
pub(crate) struct Capture {
    data: Data,
    address: Option<Arc<str>>,
    timestamp: i64,
    slot: u64,
    signature: Option<SigText>,
}

#[derive(Debug)]
enum Data {
    /// The record, and its transformed fields (path into the record, new value).
    Record {
        ev: Arc<Ev>,
        rewritten: Vec<(Path, Json)>,
    },
    /// Built at capture time.
    Built(Json),
}

#[derive(Debug)]
enum SigText {
    Raw([u8; 64]),
    Text(Box<str>),
}

impl Capture {
    /// Empties the capture so that its allocation can hold the next one: hands back the record it
    /// kept, if any, and the buffer of its transformed fields (values still in it).
    pub fn take_parts(&mut self) -> (Option<Arc<Ev>>, Vec<(Path, Json)>) {
        self.address = None;
        self.signature = None;
        match std::mem::replace(&mut self.data, Data::Built(Json::Null)) {
            Data::Record { ev, rewritten } => (Some(ev), rewritten),
            Data::Built(_) => (None, Vec::new()),
        }
    }

    /// Captures `ev` at context (`slot`, `timestamp`, `signature`), applying `transforms`
    /// (`rewritten`: an emptied buffer to keep the transformed fields in, reused; `texts`: spare
    /// text buffers).
    /// Fails as the reference does: a transform path that is not in the record, or a transform
    /// that does not apply to its value.
    pub fn new(
        ev: &Arc<Ev>,
        transforms: &[(Path, Transformation)],
        slot: u64,
        timestamp: i64,
        signature: Option<&Sig>,
        mut rewritten: Vec<(Path, Json)>,
        texts: &mut Vec<String>,
    ) -> Result<Capture, StepError> {
        let not_found = |f: &Path| StepError(format!("Field not found: {}", f.dotted));
        let data = if Self::renders_later(ev, transforms) {
            rewritten.clear();
            rewritten.reserve(transforms.len());
            for (f, t) in transforms {
                // A key's, string's or bytes' text goes into a spare buffer.
                let text =
                    (ev.field_value(&f.segs)).and_then(|v| json::text_in(v, Some(*t), texts));
                if let Some(v) = text {
                    rewritten.push((f.clone(), v));
                    continue;
                }
                let mut v = ev
                    .get(&EvPath::new(f.clone()))
                    .ok_or_else(|| not_found(f))?
                    .into_owned();
                json::transform_in_place(&mut v, *t)?;
                rewritten.push((f.clone(), v));
            }
            Data::Record {
                ev: ev.clone(),
                rewritten,
            }
        } else {
            let mut data = ev.public_fields();
            for (f, t) in transforms {
                let v = json::get_mut(&mut data, &f.segs).ok_or_else(|| not_found(f))?;
                json::transform_in_place(v, *t)?;
            }
            Data::Built(data)
        };
        let signature = signature.map(|s| match (s.raw, s.text.get()) {
            (Some(raw), None) => SigText::Raw(raw),
            _ => SigText::Text(s.as_str().into()),
        });
        Ok(Capture {
            data,
            address: ev.address_arc(),
            timestamp,
            slot,
            signature,
        })
    }

    /// Whether the record's own reads answer every transform path as the captured tree would:
    /// account records and JSON events, paths that start at a public field, no path inside
    /// another (whose rewrite would see the other's).
    fn renders_later(ev: &Ev, transforms: &[(Path, Transformation)]) -> bool {
        let record_reads_alike = match ev {
            Ev::Json(j) => j.is_object(),
            Ev::Rec(r) => r.shape.is_account(),
        };
        record_reads_alike
            && transforms
                .iter()
                .all(|(f, _)| f.segs.first().is_some_and(|s| !s.starts_with("__")))
            && transforms
                .iter()
                .enumerate()
                .all(|(i, (a, _))| transforms[i + 1..].iter().all(|(b, _)| !a.overlaps(b)))
    }

    /// The captured tree: `{timestamp, account_address, data, slot[, signature]}`.
    pub fn to_json(&self) -> Json {
        let data = match &self.data {
            Data::Record { ev, rewritten } => {
                let mut data = ev.public_fields();
                for (f, v) in rewritten {
                    if let Some(slot) = json::get_mut(&mut data, &f.segs) {
                        *slot = v.clone();
                    }
                }
                data
            }
            Data::Built(d) => d.clone(),
        };
        let address = self.address.as_deref().unwrap_or("");
        let mut m = Map::new();
        m.insert("timestamp".into(), json!(self.timestamp));
        m.insert("account_address".into(), json!(address));
        m.insert("data".into(), data);
        m.insert("slot".into(), json!(self.slot));
        if let Some(s) = &self.signature {
            let text = match s {
                SigText::Raw(r) => crate::b58::encode(r),
                SigText::Text(t) => t.to_string(),
            };
            m.insert("signature".into(), Json::String(text));
        }
        Json::Object(m)
    }
}
