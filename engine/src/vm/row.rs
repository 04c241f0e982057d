//! Entity rows as slot vectors.
//!
//! Every path a stack can write in an entity (mapping targets, stop flags, unique-count sets,
//! hook targets, computed targets, resolver extract targets) is known from the file. At load time
//! the shortest of them become the entity's slots ([`Layout`]) and every state path a handler
//! touches is resolved to a [`Field`]: the slot it lies in and the segments that lead into that
//! slot's value. A row ([`Row`]) is one value per slot, so a write is an index, not a walk
//! through nested maps with string compares.
//!
//! The rows answer exactly as the reference's nested JSON state would:
//! - no written path is a strict prefix of a slot (slots are the shortest written paths), so the
//!   objects above a slot are never written as values: they exist exactly when a slot below them
//!   holds something, and reading one assembles it from those slots;
//! - a path that leads into a slot's value (`a.b` when `a` itself is written) walks that value with
//!   the JSON rules of the `json` module, collisions included;
//! - an absent slot (`None`) is an absent key; a present `null` stays distinguishable.
//!
//! A slot's value is shared (`Arc`) with the patches and undo points that took it: taking one
//! copies nothing, and a write into a shared value copies it first (`Arc::make_mut`).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::capture::Stored;
use super::json::{self, Path, StepError};
use super::number::Sv;

/// Where a state path lives in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum At {
    /// In slot `slot`; the path's segments from `depth` on lead into the slot's value.
    Slot { slot: u32, depth: u32 },
    /// A strict prefix of these slots' paths (each with its path below the prefix): an object
    /// assembled from them.
    Interior(Box<[(u32, Path)]>),
    /// Nothing the stack writes lies on this path.
    Absent,
}

/// A state path resolved against its entity's [`Layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub path: Path,
    pub at: At,
    /// The slot this path is exactly, or `NOT_WHOLE` (worked out once: writes and the
    /// changed-field list ask it all the time).
    whole: u32,
}

const NOT_WHOLE: u32 = u32::MAX;

impl Field {
    fn new(path: Path, at: At) -> Field {
        let whole = match at {
            At::Slot { slot, depth } if depth as usize == path.segs.len() => slot,
            _ => NOT_WHOLE,
        };
        Field { path, at, whole }
    }

    /// The slot this path is exactly, if it is one (the common case: no segments inside).
    #[inline]
    pub fn whole_slot(&self) -> Option<usize> {
        (self.whole != NOT_WHOLE).then_some(self.whole as usize)
    }

    /// Same path (a slot compare where either is a whole slot).
    #[inline]
    pub fn same(&self, other: &Field) -> bool {
        if self.whole != NOT_WHOLE || other.whole != NOT_WHOLE {
            self.whole == other.whole
        } else {
            self.path.dotted == other.path.dotted
        }
    }

    /// The slot this path lies in, if any.
    pub fn slot(&self) -> Option<usize> {
        self.slot_and_rest().map(|(slot, _)| slot)
    }

    fn slot_and_rest(&self) -> Option<(usize, &[Box<str>])> {
        match self.at {
            At::Slot { slot, depth } => Some((slot as usize, &self.path.segs[depth as usize..])),
            _ => None,
        }
    }
}

/// An entity's slots: the shortest paths the stack writes, in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    slots: Vec<Path>,
}

impl Layout {
    /// The layout for these written paths (duplicates and paths under another one fold away).
    pub fn new<'a>(written: impl IntoIterator<Item = &'a Path>) -> Layout {
        let written: Vec<&Path> = written.into_iter().collect();
        let mut slots: Vec<Path> = Vec::new();
        for p in &written {
            let under_another = written
                .iter()
                .any(|q| q.segs.len() < p.segs.len() && p.segs.starts_with(&q.segs));
            if !under_another && !slots.iter().any(|s| s.segs == p.segs) {
                slots.push((*p).clone());
            }
        }
        Layout { slots }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Resolves a state path.
    pub fn field(&self, path: Path) -> Field {
        let at = match self
            .slots
            .iter()
            .position(|s| path.segs.starts_with(&s.segs))
        {
            Some(i) => At::Slot {
                slot: i as u32,
                depth: self.slots[i].segs.len() as u32,
            },
            None => {
                let n = path.segs.len();
                let under: Box<[(u32, Path)]> = (self.slots.iter().enumerate())
                    .filter(|(_, s)| s.segs.len() > n && s.segs.starts_with(&path.segs))
                    .map(|(i, s)| (i as u32, Path::from_boxed(&s.segs[n..])))
                    .collect();
                if under.is_empty() {
                    At::Absent
                } else {
                    At::Interior(under)
                }
            }
        };
        Field::new(path, at)
    }

    /// [`Layout::field`] of a dotted path.
    pub fn dotted(&self, path: &str) -> Field {
        self.field(Path::dotted(path))
    }
}

/// What a slot held before a write, to put it back ([`Row::restore`]).
#[derive(Debug)]
pub(crate) enum Old {
    /// The slot as it was: absent, or a value shared with whatever else holds it.
    Slot(Option<Stored>),
    /// The value the slot's own allocation held (the write reused the allocation).
    Value(Json),
}

/// One entity's state: a value per slot of its [`Layout`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    slots: Box<[Option<Stored>]>,
    /// The VM's slot-hash generation when this row's computed fields were last evaluated
    /// (fields that read slot hashes are due again once it moves on).
    pub slot_hashes_seen: u64,
}

/// `v`'s value below `rest`, borrowed from `v` where it can be.
fn below<'a>(v: Cow<'a, Json>, rest: &[Box<str>]) -> Option<Cow<'a, Json>> {
    if rest.is_empty() {
        // A whole slot: the value itself (a rendered capture is not copied again).
        return Some(v);
    }
    match v {
        Cow::Borrowed(v) => json::get(v, rest).map(Cow::Borrowed),
        Cow::Owned(v) => json::get(&v, rest).cloned().map(Cow::Owned),
    }
}

/// A slot's JSON to write into, created as `init` when absent.
fn json_in(v: &mut Option<Stored>, init: fn() -> Json) -> &mut Json {
    v.get_or_insert_with(|| Stored::new(init())).json_mut()
}

fn object() -> Json {
    Json::Object(Map::new())
}

impl Row {
    pub fn new(layout: &Layout) -> Row {
        Row {
            slots: vec![None; layout.len()].into_boxed_slice(),
            slot_hashes_seen: 0,
        }
    }

    /// Empties the row as the iterator is consumed, handing out what its slots held: consumed to
    /// the end, it is as [`Row::new`] makes it, for the next new row of its table.
    pub fn drain(&mut self) -> impl Iterator<Item = Stored> + '_ {
        self.slot_hashes_seen = 0;
        self.slots.iter_mut().filter_map(Option::take)
    }

    /// The value at `f`, as the nested JSON state would answer `json::get`.
    pub fn get(&self, f: &Field) -> Option<Cow<'_, Json>> {
        match &f.at {
            At::Slot { slot, depth } => {
                let v = self.slots.get(*slot as usize)?.as_ref()?;
                below(v.json(), &f.path.segs[*depth as usize..])
            }
            At::Interior(slots) => self.assemble(slots).map(Cow::Owned),
            At::Absent => None,
        }
    }

    fn assemble(&self, slots: &[(u32, Path)]) -> Option<Json> {
        let mut out = None;
        for (slot, below) in slots {
            if let Some(v) = &self.slots[*slot as usize] {
                let o = out.get_or_insert_with(object);
                json::set_nested(o, &below.segs, v.json().into_owned());
            }
        }
        out
    }

    /// Slot `slot`'s value as a scalar: null when absent, `None` when it is not a scalar.
    pub fn scalar_at(&self, slot: usize) -> Option<Sv> {
        match &self.slots[slot] {
            None => Some(Sv::Null),
            Some(v) => Sv::of(v.as_json()?),
        }
    }

    /// Slot `slot`'s value when it is JSON (not absent, not a capture), borrowed.
    pub fn slot_json(&self, slot: usize) -> Option<&Json> {
        self.slots[slot].as_ref()?.as_json()
    }

    /// Whether `f` lies in a slot and holds something other than `null` there: a `SetOnce`
    /// write to it changes nothing and cannot fail.
    pub fn holds_non_null(&self, f: &Field) -> bool {
        f.slot().is_some() && self.get(f).is_some_and(|v| !v.is_null())
    }

    /// The value `f` names, shared when it is a whole slot (a patch takes it without a copy).
    pub fn share(&self, f: &Field) -> Option<Stored> {
        match f.whole_slot() {
            Some(slot) => self.slots[slot].clone(),
            None => self.get(f).map(|v| Stored::new(v.into_owned())),
        }
    }

    /// The place for `f` (inserting `null` when absent), as `json::slot_mut` on the nested state:
    /// a non-object on the way into a slot's value is a collision.
    pub fn slot_mut(&mut self, f: &Field) -> Result<&mut Json, StepError> {
        let (slot, rest) = f.slot_and_rest().ok_or("Path collision: expected object")?;
        let v = &mut self.slots[slot];
        if rest.is_empty() {
            return Ok(json_in(v, || Json::Null));
        }
        let v = json_in(v, object);
        if !v.is_object() {
            return Err("Path collision: expected object".into());
        }
        json::slot_mut(v, rest)
    }

    /// Writes `value` at `f` ([`Row::slot_mut`]).
    pub fn set(&mut self, f: &Field, value: Json) -> Result<(), StepError> {
        if let Some(slot) = f.whole_slot() {
            self.slots[slot] = Some(Stored::new(value));
            return Ok(());
        }
        *self.slot_mut(f)? = value;
        Ok(())
    }

    /// Replaces the whole slot `f` is (it must be one), handing back what was there. A value no
    /// patch holds any more is replaced in its allocation; otherwise the new one is shared from
    /// one of `boxes` ([`Stored::new_in`]).
    pub fn replace(&mut self, f: &Field, value: Json, boxes: &mut Vec<Arc<Json>>) -> Old {
        let slot = &mut self.slots[f.whole_slot().expect("a whole-slot field")];
        match slot.as_mut().and_then(Stored::unique_json) {
            Some(v) => Old::Value(std::mem::replace(v, value)),
            None => Old::Slot(slot.replace(Stored::new_in(value, boxes))),
        }
    }

    /// Replaces the whole slot `f` is with a stored value (a capture), handing back what was there.
    pub fn replace_stored(&mut self, f: &Field, value: Stored) -> Old {
        Old::Slot(self.slots[f.whole_slot().expect("a whole-slot field")].replace(value))
    }

    /// The computed-field writer's `json::set_forcing` on the nested state.
    pub fn set_forcing(&mut self, f: &Field, value: Json) -> Result<(), StepError> {
        let (slot, rest) = f.slot_and_rest().ok_or("Cannot set field on non-object")?;
        let v = &mut self.slots[slot];
        if rest.is_empty() {
            *v = Some(Stored::new(value));
            return Ok(());
        }
        json::set_forcing(json_in(v, object), rest, value)
    }

    /// A deferred `when` write: `json::set_nested` on the nested state (non-objects on the way
    /// are replaced).
    pub fn set_nested(&mut self, f: &Field, value: Json) {
        let Some((slot, rest)) = f.slot_and_rest() else {
            return;
        };
        let v = &mut self.slots[slot];
        if rest.is_empty() {
            *v = Some(Stored::new(value));
            return;
        }
        let v = json_in(v, object);
        if !v.is_object() {
            *v = object();
        }
        json::set_nested(v, rest, value);
    }

    /// What to put back to take a coming write at `f` back ([`Row::restore`]).
    pub fn undo_point(&self, f: &Field) -> Option<(usize, Old)> {
        let (slot, _) = f.slot_and_rest()?;
        Some((slot, Old::Slot(self.slots[slot].clone())))
    }

    /// Whether slot `slot` holds another value than `old` recorded (a capture replaced by
    /// another counts as changed).
    pub fn differs(&self, slot: usize, old: &Old) -> bool {
        match (old, &self.slots[slot]) {
            (Old::Slot(None), None) => false,
            (Old::Slot(Some(Stored::Json(was))), Some(Stored::Json(cur))) => {
                !Arc::ptr_eq(was, cur) && was != cur
            }
            (Old::Slot(Some(Stored::Capture(was))), Some(Stored::Capture(cur))) => {
                !Arc::ptr_eq(was, cur)
            }
            (Old::Slot(Some(Stored::Capture(_))), _) | (_, Some(Stored::Capture(_))) => true,
            (Old::Value(v), Some(cur)) => cur.as_json() != Some(v),
            (Old::Slot(Some(was)), Some(cur)) => was.as_json() != cur.as_json(),
            _ => true,
        }
    }

    /// Puts a slot back as an [`Row::undo_point`] recorded it.
    pub fn restore(&mut self, slot: usize, old: Old) {
        let s = &mut self.slots[slot];
        match (old, s.as_mut()) {
            (Old::Slot(o), _) => *s = o,
            (Old::Value(v), Some(cur)) => *cur.json_mut() = v,
            (Old::Value(v), None) => *s = Some(Stored::new(v)),
        }
    }

    /// The nested JSON state this row stands for.
    pub fn to_json(&self, layout: &Layout) -> Json {
        let mut out = object();
        for (v, p) in self.slots.iter().zip(&layout.slots) {
            if let Some(v) = v {
                json::set_nested(&mut out, &p.segs, v.json().into_owned());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Rng;
    use serde_json::json;

    /// Every path of up to three segments over `a`, `b`, `c`.
    fn universe() -> Vec<Path> {
        let segs = ["a", "b", "c"];
        let mut out = Vec::new();
        for x in segs {
            out.push(Path::dotted(x));
            for y in segs {
                out.push(Path::dotted(&format!("{x}.{y}")));
                for z in segs {
                    out.push(Path::dotted(&format!("{x}.{y}.{z}")));
                }
            }
        }
        out
    }

    fn pick<'a, T>(rng: &mut Rng, xs: &'a [T]) -> &'a T {
        &xs[rng.below(xs.len() as u64) as usize]
    }

    /// Random written paths (nested ones included) and random writes of every kind the VM makes,
    /// applied to a row and to the nested JSON state with the `json` module: after each step both
    /// hold the same state, answer every path alike, and fail alike; taking a failed handler's
    /// writes back through the undo points restores the row exactly.
    #[test]
    fn a_row_answers_and_fails_exactly_as_the_nested_json_state() {
        let all = universe();
        let values = [
            json!(null),
            json!(1),
            json!("x"),
            json!([1, 2]),
            json!({"b": 2}),
            json!({"c": {"a": 3}}),
        ];
        let mut rng = Rng(7);
        for _ in 0..400 {
            let written: Vec<Path> = (0..1 + rng.below(5))
                .map(|_| pick(&mut rng, &all).clone())
                .collect();
            let layout = Layout::new(&written);
            let mut row = Row::new(&layout);
            let mut tree = json!({});
            for _ in 0..30 {
                let f = layout.field(pick(&mut rng, &written).clone());
                let v = pick(&mut rng, &values).clone();
                let (before_row, before_tree) = (row.to_json(&layout), tree.clone());
                // Half the time something else holds the row's values (as a patch does): the
                // writes must copy them, not change what that holder sees.
                let held = (rng.below(2) == 0).then(|| row.clone());
                let mut undo = row.undo_point(&f).expect("a written path lies in a slot");
                let (r, t) = match rng.below(5) {
                    0 => (
                        row.set(&f, v.clone()),
                        json::set(&mut tree, &f.path.segs, v),
                    ),
                    1 => (
                        row.set_forcing(&f, v.clone()),
                        json::set_forcing(&mut tree, &f.path.segs, v),
                    ),
                    2 => {
                        row.set_nested(&f, v.clone());
                        json::set_nested(&mut tree, &f.path.segs, v);
                        (Ok(()), Ok(()))
                    }
                    3 if f.whole_slot().is_some() => {
                        drop(undo);
                        undo = (
                            f.whole_slot().unwrap(),
                            row.replace(&f, v.clone(), &mut Vec::new()),
                        );
                        (Ok(()), json::set(&mut tree, &f.path.segs, v))
                    }
                    _ => (
                        row.slot_mut(&f).map(|s| *s = v.clone()),
                        json::slot_mut(&mut tree, &f.path.segs).map(|s| *s = v),
                    ),
                };
                if let Some(h) = &held {
                    assert_eq!(h.to_json(&layout), before_row, "a held copy changed");
                }
                assert_eq!(r.is_ok(), t.is_ok(), "{written:?} at {}", f.path.dotted);
                assert_eq!(
                    row.to_json(&layout),
                    tree,
                    "{written:?} at {}",
                    f.path.dotted
                );
                for p in &all {
                    let rf = layout.field(p.clone());
                    assert_eq!(
                        row.get(&rf).as_deref(),
                        json::get(&tree, &p.segs),
                        "{written:?}: read {}",
                        p.dotted
                    );
                }
                if rng.below(5) == 0 {
                    row.restore(undo.0, undo.1);
                    assert_eq!(row.to_json(&layout), before_row);
                    tree = before_tree;
                }
            }
        }
    }

    #[test]
    fn slots_are_the_shortest_written_paths() {
        let w = ["a.b", "a", "c.d", "c.e", "a.b"].map(Path::dotted);
        let l = Layout::new(&w);
        assert_eq!(l.len(), 3);
        assert_eq!(l.dotted("a.b.c").at, At::Slot { slot: 0, depth: 1 });
        assert_eq!(l.dotted("c.e").whole_slot(), Some(2));
        assert!(matches!(l.dotted("c").at, At::Interior(ref s) if s.len() == 2));
        assert_eq!(l.dotted("x").at, At::Absent);
    }
}
