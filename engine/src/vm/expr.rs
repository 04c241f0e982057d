//! The expression language compiled to a tree with resolved variables, and its general
//! evaluator over JSON values.
//!
//! At load time names become indexes: `Var`/`Let`/closure parameters become slots of a small
//! environment stack, field references become pre-split paths, resolver methods become an enum
//! (an unknown resolver, method or arity is a [`SpecError`]). Operations on scalars follow the
//! number rules of module `number`; this evaluator adds what applies to texts, arrays and objects.
//! A computed field (module `computed`) runs here when its typed program (module `scalar`) cannot.

use std::borrow::Cow;

use serde_json::{json, Value as Json};
use sha3::{Digest, Keccak256};

use super::json::{self, get};
use super::number::{self, CastTo, Method, Sv};
use super::row::{Field, Layout, Row};
use crate::spec::{BinaryOp, Expr, SpecError, UnaryOp};

#[derive(Debug, Clone, Copy)]
pub(crate) enum Builtin {
    UiAmount,
    RawAmount,
    SlotHash,
    KeccakRng,
}

#[derive(Debug, Clone)]
pub(crate) enum CExpr {
    Field(Field),
    Var(usize),
    Let(Box<CExpr>, Box<CExpr>),
    If(Box<CExpr>, Box<CExpr>, Box<CExpr>),
    Lit(Json),
    UnwrapOr(Box<CExpr>, Json),
    Binary(BinaryOp, Box<CExpr>, Box<CExpr>),
    Unary(UnaryOp, Box<CExpr>),
    /// Target type and its name (for errors).
    Cast(Box<CExpr>, CastTo, Box<str>),
    /// `expr.map(|p| body)`: the parameter is the next slot.
    Map(Box<CExpr>, Box<CExpr>),
    Method(Box<CExpr>, Method, Vec<CExpr>),
    Builtin(Builtin, Vec<CExpr>),
    Slice(Box<CExpr>, usize, usize),
    Index(Box<CExpr>, usize),
    U64Le(Box<CExpr>),
    U64Be(Box<CExpr>),
    ToBytes(Box<CExpr>),
    Keccak(Box<CExpr>),
    /// A closure outside `map` (not evaluable).
    BareClosure,
    Slot,
    Timestamp,
}

/// Evaluation inputs besides the entity state.
pub(crate) struct EvalCtx<'a> {
    pub slot: Option<u64>,
    pub timestamp: i64,
    pub slot_hashes: &'a dyn Fn(u64) -> Option<[u8; 32]>,
}

type R = Result<Json, String>;

/// An expression's working memory: its variables' values (`let`, a `map` parameter) by slot, and
/// emptied array buffers that the arrays it builds are written into. The VM lends it its spare
/// array buffers for an evaluation, so that an array result (a `map`, a byte conversion)
/// evaluated on every event does not allocate once buffers have come back.
#[derive(Default)]
pub(crate) struct Env {
    vars: Vec<Json>,
    /// Emptied array buffers, taken by the arrays an evaluation builds.
    pub arrays: Vec<Vec<Json>>,
    /// The most buffers [`Env::keep`] holds.
    limit: usize,
}

impl Env {
    /// An environment that keeps at most `limit` array buffers.
    pub fn new(limit: usize) -> Env {
        Env {
            limit,
            ..Env::default()
        }
    }

    /// An empty array buffer with room for `n` elements, a kept one if there is any.
    pub fn array(&mut self, n: usize) -> Vec<Json> {
        match self.arrays.pop() {
            Some(mut a) => {
                a.reserve(n);
                a
            }
            None => Vec::with_capacity(n),
        }
    }

    /// Forgets the variables of the last evaluation.
    pub fn clear(&mut self) {
        self.vars.clear();
    }

    /// Drops the innermost variable (its scope ended), keeping its buffer ([`Env::keep`]).
    fn pop_var(&mut self) {
        if let Some(v) = self.vars.pop() {
            self.keep(v);
        }
    }

    /// Takes back the buffer of a value nothing needs any more (an array's; others are dropped).
    pub fn keep(&mut self, v: Json) {
        match v {
            Json::Array(a) => super::keep_array_in(&mut self.arrays, self.limit, a),
            v => json::discard(v),
        }
    }
}

/// `e` compiled with the variables in `scope`; `at` is its JSON path in the file, for errors.
pub(crate) fn compile(
    e: &Expr,
    layout: &Layout,
    scope: &mut Vec<String>,
    at: &str,
) -> Result<CExpr, SpecError> {
    use Expr as E;
    let b = |e: &Expr, scope: &mut Vec<String>| compile(e, layout, scope, at).map(Box::new);
    Ok(match e {
        E::FieldRef { path } => CExpr::Field(layout.dotted(path)),
        E::Var { name } => match scope.iter().rposition(|n| n == name) {
            Some(i) => CExpr::Var(i),
            None => return Err(SpecError::new(at, format!("undefined variable `{name}`"))),
        },
        E::Let { name, value, body } => {
            let v = b(value, scope)?;
            scope.push(name.clone());
            let body = b(body, scope);
            scope.pop();
            CExpr::Let(v, body?)
        }
        E::If {
            condition,
            then_branch,
            else_branch,
        } => CExpr::If(
            b(condition, scope)?,
            b(then_branch, scope)?,
            b(else_branch, scope)?,
        ),
        E::Literal { value } => CExpr::Lit(value.clone()),
        E::UnwrapOr { expr, default } => CExpr::UnwrapOr(b(expr, scope)?, default.clone()),
        E::Binary { op, left, right } => CExpr::Binary(*op, b(left, scope)?, b(right, scope)?),
        E::Unary { op, expr } => CExpr::Unary(*op, b(expr, scope)?),
        E::Cast { expr, to_type } => CExpr::Cast(
            b(expr, scope)?,
            CastTo::named(to_type),
            to_type.as_str().into(),
        ),
        E::Paren { expr } => compile(expr, layout, scope, at)?,
        E::None => CExpr::Lit(Json::Null),
        E::Some { value } => compile(value, layout, scope, at)?,
        E::MethodCall { expr, method, args } => {
            let recv = b(expr, scope)?;
            if method == "map" && args.len() == 1 {
                if let E::Closure { param, body } = &args[0] {
                    scope.push(param.clone());
                    let body = b(body, scope);
                    scope.pop();
                    return Ok(CExpr::Map(recv, body?));
                }
            }
            let Some(m) = Method::named(method) else {
                return Err(SpecError::new(at, format!("unknown method `{method}`")));
            };
            let args = args
                .iter()
                .map(|a| compile(a, layout, scope, at))
                .collect::<Result<_, _>>()?;
            CExpr::Method(recv, m, args)
        }
        E::ResolverComputed {
            resolver,
            method,
            args,
        } => {
            let (f, n) = match (resolver.as_str(), method.as_str()) {
                ("TokenMetadata", "ui_amount") => (Builtin::UiAmount, 2),
                ("TokenMetadata", "raw_amount") => (Builtin::RawAmount, 2),
                ("SlotHash", "slot_hash") => (Builtin::SlotHash, 1),
                ("SlotHash", "keccak_rng") => (Builtin::KeccakRng, 3),
                _ => {
                    return Err(SpecError::new(
                        at,
                        format!("unknown resolver method {resolver}.{method}"),
                    ))
                }
            };
            if args.len() != n {
                return Err(SpecError::new(
                    at,
                    format!(
                        "{resolver}.{method} takes {n} arguments, got {}",
                        args.len()
                    ),
                ));
            }
            CExpr::Builtin(
                f,
                args.iter()
                    .map(|a| compile(a, layout, scope, at))
                    .collect::<Result<_, _>>()?,
            )
        }
        E::Slice { expr, start, end } => CExpr::Slice(b(expr, scope)?, *start, *end),
        E::Index { expr, index } => CExpr::Index(b(expr, scope)?, *index),
        E::U64FromLeBytes { bytes } => CExpr::U64Le(b(bytes, scope)?),
        E::U64FromBeBytes { bytes } => CExpr::U64Be(b(bytes, scope)?),
        E::ByteArray { bytes } => {
            CExpr::Lit(Json::Array(bytes.iter().map(|x| json!(*x)).collect()))
        }
        E::Closure { .. } => CExpr::BareClosure,
        E::JsonToBytes { expr } => CExpr::ToBytes(b(expr, scope)?),
        E::Keccak256 { expr } => CExpr::Keccak(b(expr, scope)?),
        E::ContextSlot => CExpr::Slot,
        E::ContextTimestamp => CExpr::Timestamp,
    })
}

/// Entity state as expressions read it: a [`Row`], or (in unit tests) the nested JSON it stands for.
pub(crate) trait State {
    /// The value at `f` (null when absent), borrowed where the state holds it as it is.
    fn read(&self, f: &Field) -> Cow<'_, Json>;

    /// The value at `f` as a scalar, `None` when it is not one.
    fn scalar(&self, f: &Field) -> Option<Sv> {
        Sv::of(&self.read(f))
    }
}

impl State for Row {
    fn read(&self, f: &Field) -> Cow<'_, Json> {
        self.get(f).unwrap_or(Cow::Owned(Json::Null))
    }

    fn scalar(&self, f: &Field) -> Option<Sv> {
        match f.whole_slot() {
            Some(slot) => self.scalar_at(slot),
            None => Sv::of(&self.read(f)),
        }
    }
}

impl State for Json {
    fn read(&self, f: &Field) -> Cow<'_, Json> {
        get(self, &f.path.segs).map_or(Cow::Owned(Json::Null), Cow::Borrowed)
    }
}

/// A field, a variable or a literal: a value that can be read where it is.
fn is_place(e: &CExpr) -> bool {
    matches!(e, CExpr::Field(_) | CExpr::Var(_) | CExpr::Lit(_))
}

/// The value of a place ([`is_place`]), borrowed from the state, the environment or the
/// expression, or `None` for any other expression.
#[inline(always)]
fn place<'a, S: State>(
    e: &'a CExpr,
    state: &'a S,
    env: &'a [Json],
) -> Option<Result<Cow<'a, Json>, String>> {
    Some(match e {
        CExpr::Field(f) => Ok(state.read(f)),
        CExpr::Var(i) => {
            (env.get(*i).map(Cow::Borrowed)).ok_or_else(|| "undefined variable".into())
        }
        CExpr::Lit(v) => Ok(Cow::Borrowed(v)),
        _ => return None,
    })
}

/// [`eval`] of an operand that is only read: a place is borrowed (an array a variable holds is
/// not copied to be compared, sliced or measured), anything else evaluated.
fn operand<'a, S: State>(
    e: &'a CExpr,
    state: &'a S,
    env: &'a mut Env,
    cx: &EvalCtx,
) -> Result<Cow<'a, Json>, String> {
    if is_place(e) {
        return place(e, state, &env.vars).expect("a place");
    }
    eval(e, state, env, cx).map(Cow::Owned)
}

/// [`operand`] for an operation that goes on using the environment (`map`, a method with
/// arguments): only a field is borrowed.
fn field_operand<'s, S: State>(
    e: &CExpr,
    state: &'s S,
    env: &mut Env,
    cx: &EvalCtx,
) -> Result<Cow<'s, Json>, String> {
    match e {
        CExpr::Field(f) => Ok(state.read(f)),
        other => eval(other, state, env, cx).map(Cow::Owned),
    }
}

/// The two operands of a binary operation: the ones that are not places evaluated first, then
/// the places borrowed.
fn operands<'a, S: State>(
    l: &'a CExpr,
    r: &'a CExpr,
    state: &'a S,
    env: &'a mut Env,
    cx: &EvalCtx,
) -> Result<(Cow<'a, Json>, Cow<'a, Json>), String> {
    let lo = if is_place(l) {
        None
    } else {
        Some(eval(l, state, env, cx)?)
    };
    let ro = if is_place(r) {
        None
    } else {
        Some(eval(r, state, env, cx)?)
    };
    let env = &env.vars[..];
    let pick = |o: Option<Json>, e: &'a CExpr| match o {
        Some(v) => Ok(Cow::Owned(v)),
        None => place(e, state, env).expect("a place"),
    };
    Ok((pick(lo, l)?, pick(ro, r)?))
}

pub(crate) fn eval<S: State>(e: &CExpr, state: &S, env: &mut Env, cx: &EvalCtx) -> R {
    Ok(match e {
        CExpr::Field(f) => state.read(f).into_owned(),
        CExpr::Var(i) => env.vars.get(*i).cloned().ok_or("undefined variable")?,
        CExpr::Let(v, body) => {
            let v = eval(v, state, env, cx)?;
            env.vars.push(v);
            let r = eval(body, state, env, cx);
            env.pop_var();
            r?
        }
        CExpr::If(c, t, f) => {
            let cond = eval(c, state, env, cx)?;
            let yes = truthy(&cond);
            json::discard(cond);
            if yes {
                eval(t, state, env, cx)?
            } else {
                eval(f, state, env, cx)?
            }
        }
        CExpr::Lit(v) => v.clone(),
        CExpr::UnwrapOr(x, d) => {
            let v = eval(x, state, env, cx)?;
            if v.is_null() {
                json::discard(v);
                d.clone()
            } else {
                v
            }
        }
        CExpr::Binary(op, l, r) => {
            let (l, r) = operands(l, r, state, env, cx)?;
            let v = binary(*op, &l, &r);
            json::discard_cow(l);
            json::discard_cow(r);
            v?
        }
        CExpr::Unary(op, x) => {
            let v = eval(x, state, env, cx)?;
            match op {
                UnaryOp::Not => json!(!truthy(&v)),
                UnaryOp::ReverseBits => Sv::of(&v)
                    .and_then(number::reverse_bits)
                    .map(Sv::to_json)
                    .ok_or("reverse_bits requires an integer")?,
            }
        }
        CExpr::Cast(x, ty, name) => {
            let v = operand(x, state, env, cx)?;
            let r = cast(&v, *ty, name);
            json::discard_cow(v);
            r?
        }
        CExpr::Map(recv, body) => {
            let v = field_operand(recv, state, env, cx)?;
            match &*v {
                Json::Null => Json::Null,
                Json::Array(items) => {
                    let mut out = env.array(items.len());
                    for it in items {
                        env.vars.push(it.clone());
                        let r = eval(body, state, env, cx);
                        // An element's copy, most often a number: dropped inline (`pop_var`'s
                        // check for an array buffer to keep cost 0.25 % of the ORE mix's
                        // instructions).
                        if let Some(v) = env.vars.pop() {
                            json::discard(v);
                        }
                        out.push(r?);
                    }
                    Json::Array(out)
                }
                _ => {
                    env.vars.push(v.into_owned());
                    let r = eval(body, state, env, cx);
                    env.pop_var();
                    r?
                }
            }
        }
        CExpr::Method(recv, m, args) if args.is_empty() => {
            method(&*operand(recv, state, env, cx)?, *m, &[])?
        }
        CExpr::Method(recv, m, args) => {
            let v = field_operand(recv, state, env, cx)?;
            with_args(args, state, env, cx, |a| method(&v, *m, a))?
        }
        CExpr::Builtin(f, args) => with_args(args, state, env, cx, |a| builtin(*f, a, cx))?,
        CExpr::Slice(x, s, e) => {
            let mut out = env.array(0);
            match &*operand(x, state, env, cx)? {
                Json::Array(a) => {
                    out.extend_from_slice(a.get(*s..*e).unwrap_or(&[]));
                    Json::Array(out)
                }
                _ => return Err("Cannot slice non-array value".into()),
            }
        }
        CExpr::Index(x, i) => match &*operand(x, state, env, cx)? {
            Json::Array(a) => a.get(*i).cloned().unwrap_or(Json::Null),
            _ => return Err("Cannot index non-array value".into()),
        },
        CExpr::U64Le(x) | CExpr::U64Be(x) => {
            let mut b = [0u8; 8];
            match &**x {
                // `u64 from bytes of a slice`: read from the sliced array, without building the
                // slice and its bytes (the same checks, in the same order).
                CExpr::Slice(a, s, e) => match &*operand(a, state, env, cx)? {
                    Json::Array(a) => first_bytes(a.get(*s..*e).unwrap_or(&[]), &mut b)?,
                    _ => return Err("Cannot slice non-array value".into()),
                },
                x => match &*operand(x, state, env, cx)? {
                    Json::Array(a) => first_bytes(a, &mut b)?,
                    v => {
                        let v = to_bytes(v)?;
                        b.copy_from_slice(v.get(..8).ok_or("u64 from bytes requires 8 bytes")?)
                    }
                },
            }
            json!(if matches!(e, CExpr::U64Le(_)) {
                u64::from_le_bytes(b)
            } else {
                u64::from_be_bytes(b)
            })
        }
        CExpr::ToBytes(x) => {
            let mut out = env.array(0);
            match &*operand(x, state, env, cx)? {
                // An array's bytes as numbers: each element as the byte it converts to.
                Json::Array(a) => {
                    out.reserve(a.len());
                    for x in a {
                        out.push(Json::from(byte(x)?));
                    }
                }
                v => out.extend(to_bytes(v)?.into_iter().map(Json::from)),
            }
            Json::Array(out)
        }
        CExpr::Keccak(x) => {
            bytes_json(&Keccak256::digest(to_bytes(&*operand(x, state, env, cx)?)?))
        }
        CExpr::BareClosure => return Err("a closure is only valid as the argument of map".into()),
        CExpr::Slot => cx.slot.map(Json::from).unwrap_or(Json::Null),
        CExpr::Timestamp => json!(cx.timestamp),
    })
}

fn bytes_json(b: &[u8]) -> Json {
    Json::Array(b.iter().map(|x| json!(*x)).collect())
}

fn to_bytes(v: &Json) -> Result<Vec<u8>, String> {
    match v {
        Json::Array(a) => a.iter().map(byte).collect(),
        Json::String(s) => {
            let s = s
                .strip_prefix("0x")
                .or_else(|| s.strip_prefix("0X"))
                .unwrap_or(s);
            hex::decode(s).map_err(|e| format!("Invalid hex string: {e}"))
        }
        _ => Err("Cannot convert value to bytes".into()),
    }
}

/// An array element as a byte (an unsigned integer, truncated to its low 8 bits).
fn byte(x: &Json) -> Result<u8, String> {
    (x.as_u64().map(|n| n as u8)).ok_or_else(|| "Array element not a valid byte".to_string())
}

/// The first 8 bytes of an array of bytes into `out`, as `to_bytes` and then taking 8 would: every
/// element must be a byte, and there must be 8.
fn first_bytes(a: &[Json], out: &mut [u8; 8]) -> Result<(), String> {
    for (i, x) in a.iter().enumerate() {
        let b = byte(x)?;
        if let Some(o) = out.get_mut(i) {
            *o = b;
        }
    }
    match a.len() >= 8 {
        true => Ok(()),
        false => Err("u64 from bytes requires 8 bytes".into()),
    }
}

/// Whether `v` holds as a condition: a scalar by module `number`'s rule, a text, array or object
/// when not empty.
pub(crate) fn truthy(v: &Json) -> bool {
    match v {
        // (A number always is a scalar: serde_json makes no `NegInt` that `Sv::of` refuses.)
        Json::Null | Json::Bool(_) | Json::Number(_) => Sv::of(v).is_none_or(Sv::truthy),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// A binary operation. Scalar operands (null, booleans, numbers) follow the number rules of
/// module `scalar`, the one place they are written; a text, an array or an object is only
/// compared for (in)equality and truthiness, and with a null makes an arithmetic result null and
/// a comparison false, as a non-number did there.
fn binary(op: BinaryOp, l: &Json, r: &Json) -> R {
    use BinaryOp::*;
    if let (Some(a), Some(b)) = (Sv::of(l), Sv::of(r)) {
        return number::binary(op, a, b)
            .map(Sv::to_json)
            .ok_or_else(|| format!("{op:?} failed (overflow, zero divisor or a non-number)"));
    }
    let either_null = l.is_null() || r.is_null();
    match op {
        Eq => Ok(json!(l == r)),
        Ne => Ok(json!(l != r)),
        And => Ok(json!(truthy(l) && truthy(r))),
        Or => Ok(json!(truthy(l) || truthy(r))),
        Div if r.as_i64() == Some(0) || r.as_f64() == Some(0.0) => Err("Division by zero".into()),
        Add | Sub | Mul | Div if either_null => Ok(Json::Null),
        Gt | Lt | Gte | Lte if either_null => Ok(json!(false)),
        _ => Err(format!("{op:?} needs numbers")),
    }
}

/// A cast: a scalar by module `scalar`'s rules, a text parsed, anything to text or a bool.
fn cast(v: &Json, ty: CastTo, name: &str) -> R {
    let fail = || format!("Cannot cast to {name}");
    match (ty, Sv::of(v), v.as_str()) {
        (CastTo::Text, ..) => Ok(Json::String(v.to_string())),
        (CastTo::Bool, ..) => Ok(Json::Bool(truthy(v))),
        (CastTo::Same, ..) => Ok(v.clone()),
        (_, Some(x), _) => number::cast(x, ty).map(Sv::to_json).ok_or_else(fail),
        (CastTo::Signed, _, Some(s)) => {
            Ok(Json::from(s.parse::<i64>().map_err(|e| e.to_string())?))
        }
        (CastTo::Unsigned, _, Some(s)) => {
            Ok(Json::from(s.parse::<u64>().map_err(|e| e.to_string())?))
        }
        (CastTo::Float, _, Some(s)) => Ok(Json::from(s.parse::<f64>().map_err(|e| e.to_string())?)),
        _ => Err(fail()),
    }
}

/// Evaluates call arguments and hands them to `f`, on the stack for the usual arity: arguments
/// that are not places first, in order, then the places, borrowed.
fn with_args<S: State>(
    args: &[CExpr],
    state: &S,
    env: &mut Env,
    cx: &EvalCtx,
    f: impl FnOnce(&[Cow<'_, Json>]) -> R,
) -> R {
    const INLINE: usize = 3;
    let mut inline: [Cow<'_, Json>; INLINE] = Default::default();
    let mut spilled = Vec::new();
    let a: &mut [Cow<'_, Json>] = if args.len() <= INLINE {
        &mut inline[..args.len()]
    } else {
        spilled.resize(args.len(), Cow::Owned(Json::Null));
        &mut spilled
    };
    for (slot, x) in a.iter_mut().zip(args) {
        if !is_place(x) {
            *slot = Cow::Owned(eval(x, state, env, cx)?);
        }
    }
    let env = &env.vars[..];
    for (slot, x) in a.iter_mut().zip(args) {
        if let Some(v) = place(x, state, env) {
            *slot = v?;
        }
    }
    f(a)
}

/// A method call: on a scalar (with a scalar argument, for those that read one) by module
/// `scalar`'s rules; otherwise only what applies to any value (`unwrap_or`, `is_some`, `len`,
/// `to_string`...).
fn method(v: &Json, m: Method, args: &[Cow<Json>]) -> R {
    let reads_arg = matches!(
        m,
        Method::UnwrapOr
            | Method::Min
            | Method::Max
            | Method::SaturatingAdd
            | Method::SaturatingSub
    );
    let typed = match (m, Sv::of(v), args.first().map(|a| Sv::of(a))) {
        (Method::Len | Method::ToString, ..) | (_, None, _) => None,
        (_, Some(x), None) => Some(number::method(x, m, &[])),
        (_, Some(x), Some(Some(a))) => Some(number::method(x, m, &[a])),
        (_, Some(x), Some(None)) if !reads_arg => Some(number::method(x, m, &[])),
        (_, Some(_), Some(None)) => None,
    };
    if let Some(r) = typed {
        return r
            .map(Sv::to_json)
            .ok_or_else(|| format!("Cannot call {}()", m.name()));
    }
    Ok(match m {
        Method::UnwrapOr => match (v.is_null(), args.first()) {
            (true, Some(d)) => d.clone().into_owned(),
            _ => v.clone(),
        },
        Method::UnwrapOrDefault if v.is_null() => json!(0),
        Method::UnwrapOrDefault => v.clone(),
        Method::IsSome => json!(!v.is_null()),
        Method::IsNone => json!(v.is_null()),
        Method::Len => match v {
            Json::String(s) => json!(s.len()),
            Json::Array(a) => json!(a.len()),
            Json::Object(o) => json!(o.len()),
            _ => return Err("Cannot call len()".into()),
        },
        Method::ToString => json!(v.to_string()),
        Method::Abs | Method::Min | Method::Max | Method::SaturatingAdd | Method::SaturatingSub => {
            return Err(format!("Cannot call {}()", m.name()))
        }
    })
}

fn opt_f64(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn opt_u8(v: &Json) -> Option<u8> {
    match v {
        Json::Number(n) => n
            .as_u64()
            .or_else(|| n.as_i64().filter(|x| *x >= 0).map(|x| x as u64))
            .and_then(|x| u8::try_from(x).ok()),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn bytes_exact(v: &Json, n: usize) -> Option<Vec<u8>> {
    let a = v.as_array()?;
    let b: Vec<u8> = a
        .iter()
        .filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
        .collect();
    (b.len() == n).then_some(b)
}

fn builtin(f: Builtin, a: &[Cow<Json>], cx: &EvalCtx) -> R {
    Ok(match f {
        Builtin::UiAmount | Builtin::RawAmount => match (opt_f64(&a[0]), opt_u8(&a[1])) {
            (Some(v), Some(d)) => number::scale(matches!(f, Builtin::UiAmount), v, d)
                .map(Sv::to_json)
                .ok_or_else(|| format!("{f:?} result out of range"))?,
            _ => Json::Null,
        },
        Builtin::SlotHash => match a[0].as_u64() {
            Some(slot) if slot != 0 => match (cx.slot_hashes)(slot) {
                Some(h) => json!({ "bytes": bytes_json(&h) }),
                None => Json::Null,
            },
            _ => Json::Null,
        },
        Builtin::KeccakRng => {
            let sh = match &*a[0] {
                Json::Object(o) => o.get("bytes").cloned().unwrap_or(Json::Null),
                v => v.clone(),
            };
            let samples = match &*a[2] {
                Json::Number(n) => n.as_u64(),
                _ => None,
            };
            match (bytes_exact(&sh, 32), bytes_exact(&a[1], 32), samples) {
                (Some(s), Some(seed), Some(n)) => {
                    let mut h = Keccak256::new();
                    h.update(&s);
                    h.update(&seed);
                    h.update(n.to_le_bytes());
                    let d = h.finalize();
                    let w = |i: usize| u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().unwrap());
                    json!(w(0) ^ w(1) ^ w(2) ^ w(3))
                }
                _ => Json::Null,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: Json, state: Json) -> R {
        let e: Expr = serde_json::from_value(src).unwrap();
        let c = compile(&e, &Layout::default(), &mut Vec::new(), "$").unwrap();
        let none = |_: u64| None;
        eval(
            &c,
            &state,
            &mut Env::default(),
            &EvalCtx {
                slot: Some(100),
                timestamp: 1_000,
                slot_hashes: &none,
            },
        )
    }

    #[test]
    fn let_if_and_context_evaluate() {
        let src = json!({"Let": {"name": "s", "value": "ContextSlot", "body": {"If": {
            "condition": {"Binary": {"op": "Gt", "left": {"Var": {"name": "s"}}, "right": {"Literal": {"value": 50}}}},
            "then_branch": {"Some": {"value": {"Binary": {"op": "Add", "left": "ContextTimestamp", "right": {"Var": {"name": "s"}}}}}},
            "else_branch": "None"}}}});
        assert_eq!(run(src, json!({})).unwrap(), json!(1_100));
    }

    #[test]
    fn map_over_null_array_and_scalar() {
        let src = json!({"MethodCall": {"expr": {"FieldRef": {"path": "a.b"}}, "method": "map", "args": [
            {"Closure": {"param": "x", "body": {"Binary": {"op": "Mod", "left": {"Var": {"name": "x"}}, "right": {"Literal": {"value": 25}}}}}}]}});
        assert_eq!(run(src.clone(), json!({})).unwrap(), Json::Null);
        assert_eq!(run(src.clone(), json!({"a": {"b": 30}})).unwrap(), json!(5));
        assert_eq!(
            run(src, json!({"a": {"b": [26, 52]}})).unwrap(),
            json!([1, 2])
        );
    }

    #[test]
    fn arrays_an_expression_builds_are_written_into_kept_buffers_and_given_back() {
        // `map` over a field, then bytes of a variable that a `let` drops after its body.
        let src = json!({"Let": {"name": "h", "value": {"JsonToBytes": {"expr": {"FieldRef": {"path": "h"}}}},
            "body": {"MethodCall": {"expr": {"FieldRef": {"path": "a"}}, "method": "map", "args": [
                {"Closure": {"param": "x", "body": {"Binary": {"op": "Mul", "left": {"Var": {"name": "x"}}, "right": {"Literal": {"value": 2}}}}}}]}}}});
        let e: Expr = serde_json::from_value(src).unwrap();
        let c = compile(&e, &Layout::default(), &mut Vec::new(), "$").unwrap();
        let none = |_: u64| None;
        let cx = EvalCtx {
            slot: None,
            timestamp: 0,
            slot_hashes: &none,
        };
        let mut env = Env::new(2);
        env.arrays = vec![Vec::with_capacity(40), Vec::with_capacity(50)];
        let state = json!({"a": [1, 2, 3], "h": [7, 8]});
        let v = eval(&c, &state, &mut env, &cx).unwrap();
        assert_eq!(v, json!([2, 4, 6]));
        // The bytes took the last buffer, the map's result the other one; the bytes' came back
        // when `h` went out of scope.
        assert_eq!(v.as_array().unwrap().capacity(), 40);
        assert_eq!(
            env.arrays.iter().map(Vec::capacity).collect::<Vec<_>>(),
            [50]
        );
        env.keep(v);
        env.keep(json!([1]));
        assert_eq!(env.arrays.len(), 2, "no more than the limit is kept");
        assert!(env.arrays.iter().all(Vec::is_empty));
    }

    #[test]
    fn bytes_ops_and_errors() {
        let src = json!({"U64FromLeBytes": {"bytes": {"Slice": {"expr": {"JsonToBytes": {"expr": {"FieldRef": {"path": "h"}}}}, "start": 0, "end": 8}}}});
        assert_eq!(
            run(src.clone(), json!({"h": [1, 0, 0, 0, 0, 0, 0, 0, 9]})).unwrap(),
            json!(1)
        );
        assert!(run(src, json!({})).is_err(), "null has no bytes");
        let div = json!({"Binary": {"op": "Div", "left": {"Literal": {"value": 1}}, "right": {"Literal": {"value": 0}}}});
        assert!(run(div, json!({})).is_err());
        let ui = json!({"ResolverComputed": {"resolver": "TokenMetadata", "method": "ui_amount", "args": [{"Literal": {"value": 1500}}, {"Literal": {"value": 3}}]}});
        assert_eq!(run(ui, json!({})).unwrap(), json!(1.5));
    }

    #[test]
    fn a_u64_read_from_a_slice_checks_what_slicing_and_converting_would() {
        let at = |end: usize, be: bool| {
            let op = if be {
                "U64FromBeBytes"
            } else {
                "U64FromLeBytes"
            };
            json!({op: {"bytes": {"Slice": {"expr": {"FieldRef": {"path": "h"}}, "start": 1, "end": end}}}})
        };
        let h = json!({"h": [7, 1, 0, 0, 0, 0, 0, 0, 2, 3]});
        assert_eq!(run(at(9, false), h.clone()).unwrap(), json!(1u64 | 2 << 56));
        assert_eq!(run(at(9, true), h.clone()).unwrap(), json!(1u64 << 56 | 2));
        // Elements past the eighth are still converted; a byte is the low 8 bits.
        assert_eq!(
            run(at(10, false), h.clone()).unwrap(),
            json!(1u64 | 2 << 56)
        );
        let wide = json!({"h": [0, 257, 0, 0, 0, 0, 0, 0, 0]});
        assert_eq!(run(at(9, false), wide).unwrap(), json!(1));
        let bad = json!({"h": [0, 1, 0, 0, 0, 0, 0, 0, 0, "x"]});
        assert!(
            run(at(10, false), bad).is_err(),
            "a non-byte anywhere in the slice"
        );
        assert!(run(at(8, false), h.clone()).is_err(), "7 bytes");
        assert!(
            run(at(99, false), h).is_err(),
            "out of range: an empty slice"
        );
        assert!(
            run(at(9, false), json!({"h": "0x00"})).is_err(),
            "not an array"
        );
        // Compared, measured and sliced from a variable: the same answers as from a copy.
        let src = json!({"Let": {"name": "b", "value": {"JsonToBytes": {"expr": {"FieldRef": {"path": "h"}}}},
            "body": {"If": {"condition": {"Binary": {"op": "Eq", "left": {"Var": {"name": "b"}}, "right": {"ByteArray": {"bytes": [1, 2]}}}},
                "then_branch": {"MethodCall": {"expr": {"Var": {"name": "b"}}, "method": "len", "args": []}},
                "else_branch": {"Literal": {"value": -1}}}}}});
        assert_eq!(run(src.clone(), json!({"h": [1, 2]})).unwrap(), json!(2));
        assert_eq!(run(src.clone(), json!({"h": [1, 258]})).unwrap(), json!(2));
        assert_eq!(run(src, json!({"h": [2, 1]})).unwrap(), json!(-1));
    }

    #[test]
    fn unknown_names_are_spec_errors() {
        for src in [
            json!({"Var": {"name": "nope"}}),
            json!({"ResolverComputed": {"resolver": "X", "method": "y", "args": []}}),
            json!({"ResolverComputed": {"resolver": "TokenMetadata", "method": "ui_amount", "args": []}}),
            json!({"MethodCall": {"expr": "None", "method": "frobnicate", "args": []}}),
        ] {
            let e: Expr = serde_json::from_value(src).unwrap();
            assert!(compile(&e, &Layout::default(), &mut Vec::new(), "$.x").is_err());
        }
    }
}
