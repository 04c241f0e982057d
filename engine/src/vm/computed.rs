//! Computed fields: each compiled twice — to a tree for the general evaluator (module `expr`)
//! and, when it is made of scalar operations, to a typed program (module `scalar`) that runs
//! first — and evaluated in dependency order (a field that reads another computed field comes
//! after it; file order otherwise). A field whose expression fails (division by zero, a
//! non-numeric operand...) keeps its old value, as in the reference.

use super::expr::{compile, eval, Builtin, CExpr, Env, EvalCtx, State};
use super::json::Path;
use super::row::{Field, Layout};
use super::scalar::Scalar;
use crate::spec::{ComputedFieldSpec, Expr, SpecError};

/// A computed field, compiled.
pub(crate) struct Computed {
    pub target: Field,
    pub expr: CExpr,
    /// The expression compiled for typed evaluation, when it is made of scalar operations
    /// (module `scalar`); tried before `expr`.
    pub typed: Option<Scalar>,
    /// State paths the expression reads.
    pub reads: Vec<Path>,
    /// Reads the event's slot or timestamp: its value can change with every event while the
    /// state it reads does not.
    pub reads_context: bool,
    /// Reads the slot-hash feed (`SlotHash.slot_hash`): its value can change when a slot hash
    /// arrives while the state it reads does not.
    pub reads_slot_hashes: bool,
}

/// Collects what an expression reads besides its own variables (see [`Computed::reads`]).
fn reads(e: &CExpr, paths: &mut Vec<Path>, context: &mut bool, feed: &mut bool) {
    use CExpr::*;
    match e {
        Field(f) => paths.push(f.path.clone()),
        Var(_) | Lit(_) | BareClosure => {}
        Slot | Timestamp => *context = true,
        Let(a, b) | Binary(_, a, b) | Map(a, b) => {
            reads(a, paths, context, feed);
            reads(b, paths, context, feed)
        }
        If(c, t, f) => {
            reads(c, paths, context, feed);
            reads(t, paths, context, feed);
            reads(f, paths, context, feed)
        }
        UnwrapOr(x, _)
        | Unary(_, x)
        | Cast(x, ..)
        | Slice(x, ..)
        | Index(x, _)
        | U64Le(x)
        | U64Be(x)
        | ToBytes(x)
        | Keccak(x) => reads(x, paths, context, feed),
        Method(recv, _, args) => {
            reads(recv, paths, context, feed);
            args.iter().for_each(|a| reads(a, paths, context, feed))
        }
        Builtin(f, args) => {
            if matches!(f, self::Builtin::SlotHash) {
                *feed = true;
            }
            args.iter().for_each(|a| reads(a, paths, context, feed))
        }
    }
}

pub(crate) fn compile_fields(
    specs: &[ComputedFieldSpec],
    layout: &Layout,
    base: &str,
) -> Result<Vec<Computed>, SpecError> {
    let mut out = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let mut scope = Vec::new();
        let expr = compile(
            &s.expression,
            layout,
            &mut scope,
            &format!("{base}[{i}].expression"),
        )?;
        out.push((Path::dotted(&s.target_path), expr, deps(&s.expression)));
    }
    // Dependency order, stable: repeatedly take the first field none of whose computed inputs is
    // still pending. A cycle is a spec error.
    let mut pending: Vec<(Path, CExpr, Vec<String>)> = out;
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = |(t, _, d): &(Path, CExpr, Vec<String>)| {
            d.iter().all(|dep| {
                dep.as_str() == &*t.dotted
                    || pending.iter().all(|(o, _, _)| &*o.dotted != dep.as_str())
            })
        };
        let Some(pos) = pending.iter().position(ready) else {
            return Err(SpecError::new(
                base,
                "computed fields depend on each other in a cycle",
            ));
        };
        let (target, expr, _) = pending.remove(pos);
        let (mut paths, mut context, mut feed) = (Vec::new(), false, false);
        reads(&expr, &mut paths, &mut context, &mut feed);
        ordered.push(Computed {
            target: layout.field(target),
            typed: Scalar::compile(&expr),
            expr,
            reads: paths,
            reads_context: context,
            reads_slot_hashes: feed,
        });
    }
    Ok(ordered)
}

fn deps(e: &Expr) -> Vec<String> {
    let mut v = Vec::new();
    walk(e, &mut v);
    v
}

fn walk(e: &Expr, out: &mut Vec<String>) {
    use Expr::*;
    match e {
        FieldRef { path } => out.push(path.clone()),
        UnwrapOr { expr, .. }
        | Cast { expr, .. }
        | Paren { expr }
        | Slice { expr, .. }
        | Index { expr, .. }
        | Unary { expr, .. }
        | JsonToBytes { expr }
        | Keccak256 { expr } => walk(expr, out),
        Binary { left, right, .. } => {
            walk(left, out);
            walk(right, out)
        }
        MethodCall { expr, args, .. } => {
            walk(expr, out);
            args.iter().for_each(|a| walk(a, out))
        }
        ResolverComputed { args, .. } => args.iter().for_each(|a| walk(a, out)),
        Let { value, body, .. } => {
            walk(value, out);
            walk(body, out)
        }
        If {
            condition,
            then_branch,
            else_branch,
        } => {
            walk(condition, out);
            walk(then_branch, out);
            walk(else_branch, out)
        }
        Some { value } => walk(value, out),
        U64FromLeBytes { bytes } | U64FromBeBytes { bytes } => walk(bytes, out),
        Closure { body, .. } => walk(body, out),
        Literal { .. } | Var { .. } | None | ByteArray { .. } | ContextSlot | ContextTimestamp => {}
    }
}

/// A computed field's value: typed when its expression is scalar and the values it reads are
/// (module `scalar`), else by the general evaluator.
pub(crate) fn eval_field<S: State>(
    c: &Computed,
    state: &S,
    env: &mut Env,
    cx: &EvalCtx,
) -> Result<serde_json::Value, String> {
    if let Some(v) = c
        .typed
        .as_ref()
        .and_then(|t| t.eval(state, cx, |n| env.array(n)))
    {
        return Ok(v);
    }
    eval(&c.expr, state, env, cx)
}
