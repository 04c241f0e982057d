//! Operations on JSON values: pre-split paths, auto-vivifying writes, transforms, comparisons.
//!
//! These are the reference interpreter's rules for its nested JSON state. Rows (module `row`) use
//! them inside a slot's value and for patches; transforms and comparisons work on the values
//! themselves, in the reference's JSON form (integer vs float numbers, byte arrays as number
//! arrays).

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::spec::{ComparisonOp, Transformation};

/// Drops `v`, inline for `null`, booleans and numbers (they own nothing): dropping a JSON value is
/// otherwise an out-of-line call, and most values the VM drops are numbers.
#[inline(always)]
pub(crate) fn discard(v: Json) {
    match v {
        Json::Null | Json::Bool(_) | Json::Number(_) => std::mem::forget(v),
        v => drop(v),
    }
}

/// [`discard`]s a borrowed-or-owned value.
#[inline(always)]
pub(crate) fn discard_cow(v: std::borrow::Cow<'_, Json>) {
    if let std::borrow::Cow::Owned(v) = v {
        discard(v)
    }
}

/// A dotted path split once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path {
    /// Shared, so a patch names a field by cloning its path, not copying it.
    pub segs: Arc<[Box<str>]>,
    pub dotted: Arc<str>,
}

impl Path {
    /// One path is a prefix of the other (segment-wise): writing one can change the other.
    pub fn overlaps(&self, other: &Path) -> bool {
        let n = self.segs.len().min(other.segs.len());
        self.segs[..n] == other.segs[..n]
    }
    pub fn dotted(s: &str) -> Path {
        Path {
            segs: s.split('.').map(Box::from).collect(),
            dotted: s.into(),
        }
    }
    pub fn from_segments(segs: &[String]) -> Path {
        Path {
            segs: segs.iter().map(|s| Box::from(s.as_str())).collect(),
            dotted: segs.join(".").into(),
        }
    }
    pub fn from_boxed(segs: &[Box<str>]) -> Path {
        Path {
            segs: segs.into(),
            dotted: segs.join(".").into(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }
}

/// Why one handler step failed. The whole event is skipped (counted), as the reference does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepError(pub String);

impl<T: Into<String>> From<T> for StepError {
    fn from(s: T) -> Self {
        StepError(s.into())
    }
}

/// The value at the path `segs` (object keys) below `v`.
pub(crate) fn get<'a>(v: &'a Json, segs: &[Box<str>]) -> Option<&'a Json> {
    let mut cur = v;
    for s in segs {
        cur = cur.get(&**s)?;
    }
    Some(cur)
}

pub(crate) fn get_mut<'a>(v: &'a mut Json, segs: &[Box<str>]) -> Option<&'a mut Json> {
    let mut cur = v;
    for s in segs {
        cur = cur.get_mut(&**s)?;
    }
    Some(cur)
}

/// Writes `value` at `path`, creating intermediate objects; an intermediate non-object is an error.
/// (The nested state's rule that rows are tested against.)
#[cfg(test)]
pub(crate) fn set(obj: &mut Json, segs: &[Box<str>], value: Json) -> Result<(), StepError> {
    let slot = slot_mut(obj, segs)?;
    *slot = value;
    Ok(())
}

/// The place for the path `segs`' last segment (inserting `null` when absent).
pub(crate) fn slot_mut<'a>(
    obj: &'a mut Json,
    segs: &[Box<str>],
) -> Result<&'a mut Json, StepError> {
    if !obj.is_object() {
        *obj = Json::Object(Map::new());
    }
    let mut cur = obj;
    let n = segs.len();
    for (i, s) in segs.iter().enumerate() {
        let map = cur
            .as_object_mut()
            .ok_or("Path collision: expected object")?;
        let leaf = i + 1 == n;
        let next = child_mut(map, s, if leaf { null } else { object });
        if leaf {
            return Ok(next);
        }
        if !next.is_object() {
            return Err("Path collision: expected object".into());
        }
        cur = next;
    }
    Err("empty path".into())
}

fn null() -> Json {
    Json::Null
}

fn object() -> Json {
    Json::Object(Map::new())
}

/// The child `key` of `map`, inserted from `init` when absent (the key string is allocated only
/// then: `Map::entry` would allocate it on every call).
fn child_mut<'a>(map: &'a mut Map<String, Json>, key: &str, init: fn() -> Json) -> &'a mut Json {
    if map.contains_key(key) {
        map.get_mut(key).expect("present")
    } else {
        map.entry(key.to_string()).or_insert_with(init)
    }
}

/// Writes `value` under `key`, allocating the key only when it is new.
fn put(map: &mut Map<String, Json>, key: &str, value: Json) {
    match map.get_mut(key) {
        Some(slot) => *slot = value,
        None => {
            map.insert(key.to_string(), value);
        }
    }
}

/// Like [`set`] but replaces non-object intermediates (the computed-field writer's behaviour).
pub(crate) fn set_forcing(
    state: &mut Json,
    segs: &[Box<str>],
    value: Json,
) -> Result<(), StepError> {
    let mut cur = state;
    let n = segs.len();
    for (i, s) in segs.iter().enumerate() {
        if i + 1 == n {
            let map = cur
                .as_object_mut()
                .ok_or("Cannot set field on non-object")?;
            put(map, s, value);
            return Ok(());
        }
        if !cur.is_object() {
            *cur = Json::Object(Map::new());
        }
        cur = child_mut(cur.as_object_mut().unwrap(), s, object);
    }
    Ok(())
}

/// Writes `value` at the path `segs` of a patch, replacing any non-object on the way.
pub(crate) fn set_nested(obj: &mut Json, segs: &[Box<str>], value: Json) {
    let mut cur = obj;
    let n = segs.len();
    for (i, s) in segs.iter().enumerate() {
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == n {
            // A patch's leaves are new keys: one insert (replacing, should one be there).
            map.insert(s.to_string(), value);
            return;
        }
        let e = child_mut(map, s, object);
        if !e.is_object() {
            *e = Json::Object(Map::new());
        }
        cur = e;
    }
}

/// Makes `dst` equal `src`, reusing `dst`'s text allocation when both are strings.
pub(crate) fn assign(dst: &mut Json, src: &Json) {
    match (&mut *dst, src) {
        (Json::String(d), Json::String(s)) => {
            d.clear();
            d.push_str(s);
        }
        _ => *dst = src.clone(),
    }
}

/// [`assign`], a string written where there was none taking one of `spare` text buffers.
pub(crate) fn assign_in(dst: &mut Json, src: &Json, spare: &mut Vec<String>) {
    match (&*dst, src) {
        (Json::String(_), _) | (_, Json::Number(_) | Json::Null | Json::Bool(_)) => {
            assign(dst, src)
        }
        _ => *dst = clone_in(src, spare),
    }
}

/// Whether JSON would escape anything in `s`. Scanned whole, without stopping at the first hit,
/// so that the loop vectorizes: keys are short and almost never need it.
fn needs_escape(s: &str) -> bool {
    (s.bytes()).fold(false, |hit, b| {
        hit | (b == b'"') | (b == b'\\') | (b < 0x20)
    })
}

/// `key.to_string()` (the JSON text rows are filed under), written into `out` (cleared first),
/// without the formatter for the usual key: a string with nothing to escape.
pub(crate) fn key_text_into(key: &Json, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    match key {
        Json::String(s) if !needs_escape(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        Json::Number(n) => match int_text(n, &mut itoa::Buffer::new()) {
            Some(text) => out.push_str(text),
            None => write!(out, "{n}").expect("writing to a String cannot fail"),
        },
        other => write!(out, "{other}").expect("writing to a String cannot fail"),
    }
}

/// An integer's text as JSON writes it, without the formatter (`None` for a float).
fn int_text<'b>(n: &serde_json::Number, buf: &'b mut itoa::Buffer) -> Option<&'b str> {
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => Some(buf.format(u)),
        (None, Some(i)) => Some(buf.format(i)),
        _ => None,
    }
}

/// The reference's string form of a lookup value (`"abc"` → `abc`, `42` → `42`, null → `null`),
/// borrowed where it is the value's own text and kept inline where it is a number's.
pub(crate) fn cache_key(v: &Json) -> KeyText<'_> {
    match v {
        Json::String(s) => KeyText::Borrowed(s),
        Json::Number(n) => KeyText::number(n),
        Json::Bool(b) => KeyText::Borrowed(if *b { "true" } else { "false" }),
        Json::Null => KeyText::Borrowed("null"),
        other => KeyText::Owned(other.to_string()),
    }
}

/// A lookup value's text ([`cache_key`]): numbers, the common non-string keys, need no
/// allocation.
pub(crate) enum KeyText<'a> {
    Borrowed(&'a str),
    Inline { buf: [u8; 32], len: u8 },
    Owned(String),
}

impl KeyText<'_> {
    fn number(n: &serde_json::Number) -> KeyText<'static> {
        use std::io::Write;
        let mut buf = [0u8; 32];
        if let Some(text) = int_text(n, &mut itoa::Buffer::new()) {
            buf[..text.len()].copy_from_slice(text.as_bytes());
            return KeyText::Inline {
                buf,
                len: text.len() as u8,
            };
        }
        let mut w = &mut buf[..];
        match write!(w, "{n}") {
            Ok(()) => {
                let len = (32 - w.len()) as u8;
                KeyText::Inline { buf, len }
            }
            Err(_) => KeyText::Owned(n.to_string()),
        }
    }

    pub fn into_owned(self) -> String {
        match self {
            KeyText::Owned(s) => s,
            other => other.to_string(),
        }
    }
}

impl std::ops::Deref for KeyText<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            KeyText::Borrowed(s) => s,
            KeyText::Inline { buf, len } => {
                std::str::from_utf8(&buf[..*len as usize]).expect("a number's text is ASCII")
            }
            KeyText::Owned(s) => s,
        }
    }
}

fn bytes_of(arr: &[Json]) -> Vec<u8> {
    arr.iter()
        .filter_map(|v| v.as_u64().map(|n| n as u8))
        .collect()
}

/// [`transform`] `t` of a decoded value's JSON form, made from the value itself: calls `f` with
/// the text when that is a key, string or bytes hex- or base58-encoded, or, with no transform, a
/// key's or string's own JSON text. Does not call `f` otherwise (use [`transform`] on the JSON).
pub(crate) fn with_text(v: &crate::value::Value, t: Option<Transformation>, f: impl FnOnce(&str)) {
    use crate::value::Value;
    match (v, t) {
        (_, Some(t)) => {
            with_encoded(v, t, f);
        }
        (Value::Pubkey(k), None) => crate::b58::with_key(k, f),
        (Value::Str(s), None) => f(s),
        _ => {}
    }
}

/// [`with_text`] of `v` as a JSON string written into one of `spare` text buffers (a new one
/// when none is left); `None` where `with_text` gives no text.
pub(crate) fn text_in(
    v: &crate::value::Value,
    t: Option<Transformation>,
    spare: &mut Vec<String>,
) -> Option<Json> {
    let mut out = None;
    with_text(v, t, |text| out = Some(string_in(text, spare)));
    out
}

/// A copy of `v`; a string's text is written into one of `spare` text buffers (a new one when
/// none is left).
pub(crate) fn clone_in(v: &Json, spare: &mut Vec<String>) -> Json {
    match v {
        Json::String(s) => string_in(s, spare),
        other => other.clone(),
    }
}

/// `text` as a JSON string in one of `spare` text buffers (a new one when none is left).
fn string_in(text: &str, spare: &mut Vec<String>) -> Json {
    Json::String(owned_text_in(text, spare))
}

/// `text` copied into one of `spare` text buffers (a new one when none is left).
pub(crate) fn owned_text_in(text: &str, spare: &mut Vec<String>) -> String {
    let mut b = spare.pop().unwrap_or_default();
    b.push_str(text);
    b
}

/// `items` as a JSON array in one of `spare` array buffers (a new one when none is left).
pub(crate) fn array_in(items: impl Iterator<Item = Json>, spare: &mut Vec<Vec<Json>>) -> Json {
    let mut a = spare.pop().unwrap_or_default();
    a.extend(items);
    Json::Array(a)
}

/// Whether [`with_text`] of `v` and `Some(t)` gives a text (the transform cannot fail on `v`).
pub(crate) fn encodes(v: &crate::value::Value, t: Transformation) -> bool {
    with_encoded(v, t, |_| ()).is_some()
}

/// Whether [`with_text`] of `v` and `Some(t)` gives `s` (keys and strings are compared without
/// building the text).
pub(crate) fn encodes_to(v: &crate::value::Value, t: Transformation, s: &str) -> bool {
    with_encoded(v, t, |text| text == s).unwrap_or(false)
}

/// Calls `f` with the text of `v` encoded by `t` (hex or base58 of a key, string or bytes),
/// borrowed where the value holds it already.
fn with_encoded<R>(
    v: &crate::value::Value,
    t: Transformation,
    f: impl FnOnce(&str) -> R,
) -> Option<R> {
    use crate::value::Value;
    match (v, t) {
        (_, Transformation::HexEncode | Transformation::Base58Encode) => {}
        _ => return None,
    }
    Some(match (v, t) {
        // A key's JSON is its base58 text, which both encodings leave as it is.
        (Value::Pubkey(k), _) => crate::b58::with_key(k, f),
        (Value::Str(s), _) => f(s),
        (Value::Bytes(b), Transformation::HexEncode) => {
            // Hashes and seeds (up to 64 bytes) are written on the stack.
            let mut buf = [0u8; 128];
            match buf.get_mut(..2 * b.len()) {
                Some(out) => {
                    hex::encode_to_slice(b, out).expect("twice the input's length");
                    f(std::str::from_utf8(out).expect("hex is ASCII"))
                }
                None => f(&hex::encode(b)),
            }
        }
        (Value::Bytes(b), _) => match <&[u8; 32]>::try_from(&**b) {
            Ok(k) => crate::b58::with_key(k, f),
            Err(_) => f(&crate::b58::encode(b)),
        },
        _ => return None,
    })
}

pub(crate) fn transform(v: &Json, t: Transformation) -> Result<Json, StepError> {
    Ok(match t {
        Transformation::HexEncode => match v {
            Json::Array(a) => Json::String(hex::encode(bytes_of(a))),
            Json::String(_) => v.clone(),
            _ => return Err("HexEncode requires an array of numbers".into()),
        },
        Transformation::HexDecode => match v {
            Json::String(s) => {
                let s = s.strip_prefix("0x").unwrap_or(s);
                let b = hex::decode(s).map_err(|e| format!("Hex decode error: {e}"))?;
                Json::Array(b.into_iter().map(Json::from).collect())
            }
            _ => return Err("HexDecode requires a string".into()),
        },
        Transformation::Base58Encode => match v {
            Json::Array(a) => Json::String(crate::b58::encode(&bytes_of(a))),
            Json::String(_) => v.clone(),
            _ => return Err("Base58Encode requires an array of numbers".into()),
        },
        Transformation::Base58Decode => match v {
            Json::String(s) => {
                let b = bs58::decode(s)
                    .into_vec()
                    .map_err(|e| format!("Base58 decode error: {e}"))?;
                Json::Array(b.into_iter().map(Json::from).collect())
            }
            _ => return Err("Base58Decode requires a string".into()),
        },
        Transformation::ToString => Json::String(v.to_string()),
        Transformation::ToNumber => match v {
            Json::String(s) => {
                Json::from(s.parse::<i64>().map_err(|e| format!("Parse error: {e}"))?)
            }
            _ => v.clone(),
        },
    })
}

/// [`transform`] where the value is: a transform that would hand back a copy (an encoding of
/// what is already a string, `ToNumber` of a non-string) leaves it alone.
pub(crate) fn transform_in_place(v: &mut Json, t: Transformation) -> Result<(), StepError> {
    use Transformation::*;
    let unchanged = match t {
        HexEncode | Base58Encode => v.is_string(),
        ToNumber => !v.is_string(),
        HexDecode | Base58Decode | ToString => false,
    };
    if !unchanged {
        *v = transform(v, t)?;
    }
    Ok(())
}

/// `field op literal`, numbers compared as i64, then u64, then f64.
pub(crate) fn compare(field: &Json, op: ComparisonOp, lit: &Json) -> Result<bool, StepError> {
    use ComparisonOp::*;
    let ord = |f_i: fn(i64, i64) -> bool, f_u: fn(u64, u64) -> bool, f_f: fn(f64, f64) -> bool| {
        if let (Some(a), Some(b)) = (field.as_i64(), lit.as_i64()) {
            return Ok(f_i(a, b));
        }
        if let (Some(a), Some(b)) = (field.as_u64(), lit.as_u64()) {
            return Ok(f_u(a, b));
        }
        if let (Some(a), Some(b)) = (field.as_f64(), lit.as_f64()) {
            return Ok(f_f(a, b));
        }
        Err(StepError::from("Cannot compare non-numeric values"))
    };
    match op {
        Equal => Ok(field == lit),
        NotEqual => Ok(field != lit),
        GreaterThan => ord(|a, b| a > b, |a, b| a > b, |a, b| a > b),
        GreaterThanOrEqual => ord(|a, b| a >= b, |a, b| a >= b, |a, b| a >= b),
        LessThan => ord(|a, b| a < b, |a, b| a < b, |a, b| a < b),
        LessThanOrEqual => ord(|a, b| a <= b, |a, b| a <= b, |a, b| a <= b),
    }
}

/// Should `new` replace `cur` for Max (`greater`) or Min?
pub(crate) fn extreme_wins(cur: &Json, new: &Json, greater: bool) -> bool {
    if cur.is_null() {
        return true;
    }
    let pick = |o: std::cmp::Ordering| if greater { o.is_gt() } else { o.is_lt() };
    match (cur.as_i64(), new.as_i64()) {
        (Some(c), Some(n)) => pick(n.cmp(&c)),
        (Some(c), None) if new.as_u64().is_some() => pick((new.as_u64().unwrap() as i64).cmp(&c)),
        (None, Some(n)) if cur.as_u64().is_some() => pick(n.cmp(&(cur.as_u64().unwrap() as i64))),
        (None, None) => match (cur.as_u64(), new.as_u64()) {
            (Some(c), Some(n)) => pick(n.cmp(&c)),
            _ => match (cur.as_f64(), new.as_f64()) {
                (Some(c), Some(n)) => n.partial_cmp(&c).map(pick).unwrap_or(false),
                _ => false,
            },
        },
        _ => false,
    }
}

pub(crate) fn as_int(v: &Json) -> Option<i64> {
    v.as_i64().or_else(|| v.as_u64().map(|n| n as i64))
}

/// The object without its `__`-prefixed bookkeeping fields (what `WholeSource`/`AsCapture` see).
pub(crate) fn public_fields(ev: &Json) -> Json {
    match ev {
        Json::Object(m) => Json::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(v: &crate::value::Value, t: Option<Transformation>) -> Option<String> {
        let mut out = None;
        with_text(v, t, |s| out = Some(s.to_string()));
        out
    }

    fn encode_value(v: &crate::value::Value, t: Transformation) -> Option<String> {
        text_of(v, Some(t))
    }

    /// Encoding a decoded value directly gives what the transform gives on its JSON form, and
    /// declines what it does not cover; untransformed, a key's or string's text is its JSON.
    #[test]
    fn encoding_a_decoded_value_matches_the_transform_of_its_json() {
        use crate::value::Value;
        use std::sync::Arc;
        let values = [
            Value::Pubkey([7; 32]),
            Value::Pubkey([0; 32]),
            Value::Str("abc".into()),
            Value::Bytes(Arc::from(&[1u8, 2, 255][..])),
            Value::Bytes(Arc::from(&[9u8; 32][..])),
            Value::Bytes(Arc::from(&[][..])),
        ];
        for t in [Transformation::Base58Encode, Transformation::HexEncode] {
            for v in &values {
                let direct = encode_value(v, t).expect("covered");
                assert_eq!(
                    Json::String(direct.clone()),
                    transform(&v.to_json(), t).unwrap(),
                    "{v:?} {t:?}"
                );
                // Comparing without encoding agrees, against every other value's text too.
                for w in &values {
                    let other = encode_value(w, t).expect("covered");
                    assert_eq!(
                        encodes_to(v, t, &other),
                        direct == other,
                        "{v:?} {w:?} {t:?}"
                    );
                }
                assert!(!encodes_to(v, t, &format!("{direct}0")));
                assert!(encodes(v, t));
            }
            for v in [
                Value::U64(3),
                Value::Array(vec![Value::U64(1)]),
                Value::Null,
            ] {
                assert_eq!(encode_value(&v, t), None);
                assert!(!encodes(&v, t));
                assert!(!encodes_to(&v, t, "3"));
            }
        }
        assert_eq!(
            encode_value(&Value::Pubkey([7; 32]), Transformation::ToString),
            None
        );
        for v in &values {
            match (text_of(v, None), v) {
                (Some(t), Value::Pubkey(_) | Value::Str(_)) => {
                    assert_eq!(Json::String(t), v.to_json())
                }
                (None, Value::Bytes(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(text_of(&Value::U64(3), None), None);
    }
    use serde_json::json;

    #[test]
    fn a_lookup_key_is_the_values_text_and_a_strings_own_text() {
        for v in [
            json!("abc"),
            json!(""),
            json!(42),
            json!(-7),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(-1.0e300),
            json!(f64::MIN_POSITIVE),
            json!(true),
            json!(false),
            json!(null),
            json!([1, "a"]),
            json!({"a": 1}),
        ] {
            let want = match &v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(&*cache_key(&v), want, "{v}");
            assert_eq!(cache_key(&v).into_owned(), want, "{v}");
        }
        assert!(matches!(cache_key(&json!(12345)), KeyText::Inline { .. }));
    }

    #[test]
    fn set_vivifies_and_refuses_to_walk_through_scalars() {
        let mut s = json!({});
        set(&mut s, &Path::dotted("a.b.c").segs, json!(1)).unwrap();
        assert_eq!(s, json!({"a": {"b": {"c": 1}}}));
        let mut s = json!({"a": 5});
        assert!(set(&mut s, &Path::dotted("a.b").segs, json!(1)).is_err());
    }

    #[test]
    fn transforms_follow_the_reference_shapes() {
        assert_eq!(
            transform(&json!([1, 255]), Transformation::HexEncode).unwrap(),
            json!("01ff")
        );
        assert_eq!(
            transform(&json!("0x01ff"), Transformation::HexDecode).unwrap(),
            json!([1, 255])
        );
        assert_eq!(
            transform(&json!([0, 0]), Transformation::Base58Encode).unwrap(),
            json!("11")
        );
        assert_eq!(
            transform(&json!("11"), Transformation::Base58Decode).unwrap(),
            json!([0, 0])
        );
        assert_eq!(
            transform(&json!(7), Transformation::ToString).unwrap(),
            json!("7")
        );
        assert_eq!(
            transform(&json!("-3"), Transformation::ToNumber).unwrap(),
            json!(-3)
        );
        assert!(transform(&json!(null), Transformation::Base58Encode).is_err());
        assert!(transform(&json!("zz"), Transformation::HexDecode).is_err());
        assert!(transform(&json!("0OIl"), Transformation::Base58Decode).is_err());
        assert!(transform(&json!("x"), Transformation::ToNumber).is_err());
        // In place: the same results, and the same errors.
        for t in [
            Transformation::HexEncode,
            Transformation::HexDecode,
            Transformation::Base58Encode,
            Transformation::Base58Decode,
            Transformation::ToString,
            Transformation::ToNumber,
        ] {
            for v in [
                json!("11"),
                json!([1, 2]),
                json!(7),
                json!(null),
                json!("-3"),
            ] {
                let mut w = v.clone();
                let r = transform_in_place(&mut w, t);
                match transform(&v, t) {
                    Ok(x) => assert_eq!((r, w), (Ok(()), x), "{t:?} {v}"),
                    Err(_) => assert!(r.is_err(), "{t:?} {v}"),
                }
            }
        }
    }

    #[test]
    fn key_text_is_the_json_text() {
        for k in [
            json!("9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"),
            json!("a\"b\\c\n"),
            json!(42),
            json!(-7),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(null),
            json!([1, "a"]),
        ] {
            let mut out = String::from("left over");
            key_text_into(&k, &mut out);
            assert_eq!(out, k.to_string());
        }
    }

    #[test]
    fn comparisons_are_numeric_and_reject_non_numbers() {
        assert!(compare(&json!(5), ComparisonOp::GreaterThan, &json!(3)).unwrap());
        assert!(compare(&json!(u64::MAX), ComparisonOp::GreaterThan, &json!(3)).unwrap());
        assert!(compare(&json!(1.5), ComparisonOp::LessThan, &json!(2)).unwrap());
        assert!(compare(&json!([0, 0]), ComparisonOp::NotEqual, &json!([0, 1])).unwrap());
        assert!(compare(&json!("a"), ComparisonOp::LessThan, &json!(1)).is_err());
    }
}
