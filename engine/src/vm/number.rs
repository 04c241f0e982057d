//! The expression language's number rules, written once.
//!
//! [`Sv`] is a scalar JSON value by value: null, a bool, or one of serde_json's three kinds of
//! number (non-negative integer, negative integer, finite float), 16 bytes and `Copy`. The
//! operations on it ([`binary`], [`cast`], [`method`], [`amount`], [`scale`]) are what both
//! evaluators do with scalars: the typed programs (module `scalar`) and the general tree walk
//! over JSON values (module `expr`, which adds only what applies to texts, arrays and objects).
//! Each follows the reference's rules case for case: `as_i64`, then `as_u64`, then `as_f64`; an
//! overflow, a zero divisor or a non-number that is not null fails (`None`); a non-finite float
//! is stored as null. The cases are pinned in `scalar`'s tests.

use serde_json::Value as Json;

use crate::spec::BinaryOp;

/// A method the expression language knows, resolved from its name at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    UnwrapOr,
    UnwrapOrDefault,
    IsSome,
    IsNone,
    Abs,
    Len,
    ToString,
    Min,
    Max,
    SaturatingAdd,
    SaturatingSub,
}

impl Method {
    const ALL: [(Method, &'static str); 11] = [
        (Method::UnwrapOr, "unwrap_or"),
        (Method::UnwrapOrDefault, "unwrap_or_default"),
        (Method::IsSome, "is_some"),
        (Method::IsNone, "is_none"),
        (Method::Abs, "abs"),
        (Method::Len, "len"),
        (Method::ToString, "to_string"),
        (Method::Min, "min"),
        (Method::Max, "max"),
        (Method::SaturatingAdd, "saturating_add"),
        (Method::SaturatingSub, "saturating_sub"),
    ];

    pub fn named(name: &str) -> Option<Method> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(m, _)| *m)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(m, _)| *m == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }
}

/// A cast's target type, resolved from its name at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CastTo {
    Signed,
    Unsigned,
    Float,
    Text,
    Bool,
    /// Any other name: the value as it is.
    Same,
}

impl CastTo {
    pub fn named(ty: &str) -> CastTo {
        match ty {
            "i8" | "i16" | "i32" | "i64" | "isize" => CastTo::Signed,
            "u8" | "u16" | "u32" | "u64" | "usize" => CastTo::Unsigned,
            "f32" | "f64" => CastTo::Float,
            "String" | "string" => CastTo::Text,
            "bool" => CastTo::Bool,
            _ => CastTo::Same,
        }
    }
}

/// A scalar JSON value, by value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Sv {
    Null,
    Bool(bool),
    /// A non-negative integer (serde_json's `PosInt`).
    Pos(u64),
    /// A negative integer (serde_json's `NegInt`).
    Neg(i64),
    /// A finite float: a computation that gives a non-finite one gives [`Sv::Null`], as
    /// `serde_json` stores it.
    Float(f64),
}

impl Sv {
    /// A JSON value as a scalar, `None` for strings, arrays and objects.
    pub fn of(v: &Json) -> Option<Sv> {
        Some(match v {
            Json::Null => Sv::Null,
            Json::Bool(b) => Sv::Bool(*b),
            Json::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Sv::Pos(u),
                (None, Some(i)) if i < 0 => Sv::Neg(i),
                // A non-negative `NegInt`, which serde_json never makes: no typed twin.
                (None, Some(_)) => return None,
                (None, None) => Sv::Float(n.as_f64()?),
            },
            _ => return None,
        })
    }

    pub fn to_json(self) -> Json {
        match self {
            Sv::Null => Json::Null,
            Sv::Bool(b) => Json::Bool(b),
            Sv::Pos(u) => Json::from(u),
            Sv::Neg(i) => Json::from(i),
            Sv::Float(f) => Json::from(f),
        }
    }

    /// An integer as `serde_json` stores an `i64`.
    pub fn int(i: i64) -> Sv {
        match u64::try_from(i) {
            Ok(u) => Sv::Pos(u),
            Err(_) => Sv::Neg(i),
        }
    }

    /// A float as `serde_json` stores it: non-finite is null.
    fn float(f: f64) -> Sv {
        if f.is_finite() {
            Sv::Float(f)
        } else {
            Sv::Null
        }
    }

    pub fn as_i64(self) -> Option<i64> {
        match self {
            Sv::Pos(u) => i64::try_from(u).ok(),
            Sv::Neg(i) => Some(i),
            _ => None,
        }
    }

    pub fn as_u64(self) -> Option<u64> {
        match self {
            Sv::Pos(u) => Some(u),
            _ => None,
        }
    }

    fn as_f64(self) -> Option<f64> {
        match self {
            Sv::Pos(u) => Some(u as f64),
            Sv::Neg(i) => Some(i as f64),
            Sv::Float(f) => Some(f),
            _ => None,
        }
    }

    fn is_null(self) -> bool {
        self == Sv::Null
    }

    /// Whether it holds as a condition: not null, `false` or zero.
    pub fn truthy(self) -> bool {
        match self {
            Sv::Null => false,
            Sv::Bool(b) => b,
            n => match n.as_i64() {
                Some(i) => i != 0,
                None => n.as_f64().map(|f| f != 0.0).unwrap_or(true),
            },
        }
    }
}

fn numeric(l: Sv, r: Sv, i: fn(i64, i64) -> Option<i64>, f: fn(f64, f64) -> f64) -> Option<Sv> {
    if let (Some(a), Some(b)) = (l.as_i64(), r.as_i64()) {
        return i(a, b).map(Sv::int);
    }
    if let (Some(a), Some(b)) = (l.as_u64(), r.as_u64()) {
        return i(a as i64, b as i64).map(Sv::int);
    }
    if let (Some(a), Some(b)) = (l.as_f64(), r.as_f64()) {
        return Some(Sv::float(f(a, b)));
    }
    (l.is_null() || r.is_null()).then_some(Sv::Null)
}

fn ordering(l: Sv, r: Sv, i: fn(i64, i64) -> bool, f: fn(f64, f64) -> bool) -> Option<Sv> {
    if let (Some(a), Some(b)) = (l.as_i64(), r.as_i64()) {
        return Some(Sv::Bool(i(a, b)));
    }
    if let (Some(a), Some(b)) = (l.as_u64(), r.as_u64()) {
        return Some(Sv::Bool(i(a as i64, b as i64)));
    }
    if let (Some(a), Some(b)) = (l.as_f64(), r.as_f64()) {
        return Some(Sv::Bool(f(a, b)));
    }
    (l.is_null() || r.is_null()).then_some(Sv::Bool(false))
}

fn bits(
    l: Sv,
    r: Sv,
    u: fn(u64, u64) -> Option<u64>,
    i: fn(i64, i64) -> Option<i64>,
) -> Option<Sv> {
    if let (Some(a), Some(b)) = (l.as_u64(), r.as_u64()) {
        return u(a, b).map(Sv::Pos);
    }
    if let (Some(a), Some(b)) = (l.as_i64(), r.as_i64()) {
        return i(a, b).map(Sv::int);
    }
    None
}

/// A binary operation on scalars; `None` where it fails (an overflow, a division by zero, a
/// non-number operand that is not null).
pub(crate) fn binary(op: BinaryOp, l: Sv, r: Sv) -> Option<Sv> {
    use BinaryOp::*;
    match op {
        Add => numeric(l, r, i64::checked_add, |a, b| a + b),
        Sub => numeric(l, r, i64::checked_sub, |a, b| a - b),
        Mul => numeric(l, r, i64::checked_mul, |a, b| a * b),
        Div => {
            if r.as_i64() == Some(0) || r.as_f64() == Some(0.0) {
                return None;
            }
            numeric(l, r, i64::checked_div, |a, b| a / b)
        }
        Mod => match (l.as_i64(), r.as_i64()) {
            (Some(a), Some(b)) if b != 0 => Some(Sv::int(a.wrapping_rem(b))),
            (None, _) | (_, None) => match (l.as_u64(), r.as_u64()) {
                (Some(a), Some(b)) if b != 0 => Some(Sv::Pos(a % b)),
                _ => None,
            },
            _ => None,
        },
        Gt => ordering(l, r, |a, b| a > b, |a, b| a > b),
        Lt => ordering(l, r, |a, b| a < b, |a, b| a < b),
        Gte => ordering(l, r, |a, b| a >= b, |a, b| a >= b),
        Lte => ordering(l, r, |a, b| a <= b, |a, b| a <= b),
        Eq => Some(Sv::Bool(l == r)),
        Ne => Some(Sv::Bool(l != r)),
        And => Some(Sv::Bool(l.truthy() && r.truthy())),
        Or => Some(Sv::Bool(l.truthy() || r.truthy())),
        Xor => bits(l, r, |a, b| Some(a ^ b), |a, b| Some(a ^ b)),
        BitAnd => bits(l, r, |a, b| Some(a & b), |a, b| Some(a & b)),
        BitOr => bits(l, r, |a, b| Some(a | b), |a, b| Some(a | b)),
        Shl => bits(
            l,
            r,
            |a, b| a.checked_shl(b.try_into().ok()?),
            |a, b| a.checked_shl(b.try_into().ok()?),
        ),
        Shr => bits(
            l,
            r,
            |a, b| a.checked_shr(b.try_into().ok()?),
            |a, b| a.checked_shr(b.try_into().ok()?),
        ),
    }
}

/// `reverse_bits` of an integer (a negative one as its two's-complement `u64`); `None` otherwise.
pub(crate) fn reverse_bits(v: Sv) -> Option<Sv> {
    match (v.as_u64(), v.as_i64()) {
        (Some(n), _) => Some(Sv::Pos(n.reverse_bits())),
        (None, Some(n)) => Some(Sv::Pos((n as u64).reverse_bits())),
        _ => None,
    }
}

/// A cast of a scalar (`None` for a text cast, which is not a scalar's).
pub(crate) fn cast(v: Sv, to: CastTo) -> Option<Sv> {
    Some(match to {
        CastTo::Signed => match (v.as_i64(), v.as_u64(), v.as_f64()) {
            (Some(n), ..) => Sv::int(n),
            (None, Some(n), _) => Sv::int(n as i64),
            (None, None, Some(n)) => Sv::int(n as i64),
            _ => return None,
        },
        CastTo::Unsigned => match (v.as_u64(), v.as_i64(), v.as_f64()) {
            (Some(n), ..) => Sv::Pos(n),
            (None, Some(n), _) => Sv::Pos(n as u64),
            (None, None, Some(n)) => Sv::Pos(n as u64),
            _ => return None,
        },
        CastTo::Float => Sv::float(v.as_f64()?),
        CastTo::Bool => Sv::Bool(v.truthy()),
        CastTo::Same => v,
        CastTo::Text => return None,
    })
}

/// A method of a scalar with scalar arguments (`None` for `len` and `to_string`).
pub(crate) fn method(v: Sv, m: Method, args: &[Sv]) -> Option<Sv> {
    let arg = || args.first().copied();
    Some(match m {
        Method::UnwrapOr => match (v, arg()) {
            (Sv::Null, Some(d)) => d,
            _ => v,
        },
        Method::UnwrapOrDefault => match v {
            Sv::Null => Sv::Pos(0),
            v => v,
        },
        Method::IsSome => Sv::Bool(!v.is_null()),
        Method::IsNone => Sv::Bool(v.is_null()),
        Method::Abs => match (v.as_i64(), v.as_f64()) {
            (Some(n), _) => Sv::int(n.checked_abs()?),
            (None, Some(n)) => Sv::float(n.abs()),
            _ => return None,
        },
        Method::Min | Method::Max => {
            let (o, max) = (arg()?, m == Method::Max);
            match (v.as_i64(), o.as_i64(), v.as_f64(), o.as_f64()) {
                (Some(a), Some(b), ..) => Sv::int(if max { a.max(b) } else { a.min(b) }),
                (.., Some(a), Some(b)) => Sv::float(if max { a.max(b) } else { a.min(b) }),
                _ => return None,
            }
        }
        Method::SaturatingAdd | Method::SaturatingSub => {
            let (o, add) = (arg()?, m == Method::SaturatingAdd);
            match (v.as_i64(), o.as_i64(), v.as_u64(), o.as_u64()) {
                (Some(a), Some(b), ..) => Sv::int(if add {
                    a.saturating_add(b)
                } else {
                    a.saturating_sub(b)
                }),
                (.., Some(a), Some(b)) => Sv::Pos(if add {
                    a.saturating_add(b)
                } else {
                    a.saturating_sub(b)
                }),
                _ => return None,
            }
        }
        Method::Len | Method::ToString => return None,
    })
}

/// 10^0 to 10^22: exactly representable, so the same as `10f64.powi(d)` (which multiplies exact
/// powers), without the call.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `ui_amount` / `raw_amount` of scalars: a missing amount or decimals (not a number, decimals not
/// a byte) is null.
pub(crate) fn amount(ui: bool, amount: Sv, decimals: Sv) -> Option<Sv> {
    let decimals = match decimals {
        Sv::Pos(u) => u8::try_from(u).ok(),
        _ => None,
    };
    match (amount.as_f64(), decimals) {
        (Some(v), Some(d)) => scale(ui, v, d),
        _ => Some(Sv::Null),
    }
}

/// An amount scaled by `10^decimals`: divided (`ui_amount`: a float) or multiplied and rounded
/// (`raw_amount`: an integer); `None` when the result is not finite or, raw, not a `u64`.
pub(crate) fn scale(ui: bool, v: f64, d: u8) -> Option<Sv> {
    let factor = match POW10.get(d as usize) {
        Some(f) => *f,
        None => 10f64.powi(d as i32),
    };
    if ui {
        let r = v / factor;
        r.is_finite().then_some(Sv::Float(r))
    } else {
        let r = v * factor;
        (r.is_finite() && r >= 0.0 && r.round() <= u64::MAX as f64)
            .then(|| Sv::Pos(r.round() as u64))
    }
}
