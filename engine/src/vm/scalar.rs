//! Computed fields over scalars, evaluated typed.
//!
//! Most computed fields compute a number from numbers: a slot count turned into a time, a raw
//! amount scaled by its decimals, a remainder. The general evaluator (module `expr`) works on
//! `serde_json` values, so each step of such an expression moves 32-byte values in and out of
//! `Result`s and `Cow`s and asks a JSON number what kind it is; the ORE stack's
//! `estimated_expires_at_unix`, evaluated on nearly every round update, cost ~2,800 instructions
//! that way.
//!
//! So an expression made only of scalar operations is compiled a second time, to a [`Code`]: a
//! small stack program over `number::Sv` (a 16-byte copy type with exactly the scalar JSON
//! values), whose operations are the number rules of module `number` — the same the general
//! evaluator applies to scalars — and whose result is turned into JSON once, at the end. On the
//! ORE mix this took 5 % of the instructions per event away (`perf/RESULTS.md`).
//!
//! **Giving up is always allowed**: a field that holds something other than a scalar, or an
//! operation that fails, makes the typed evaluation answer `None`, and the general evaluator
//! then runs the same expression from the start and gives the value or the error. Expressions
//! are pure, so running the general one after a typed attempt changes nothing but the time. The
//! tests pin the number rules case by case and hold the two evaluators (the typed programs and the
//! general tree walk) to the same answers over every operation and edge value.

use serde_json::Value as Json;

use super::expr::{Builtin, CExpr, EvalCtx, State};
use super::number::{self, CastTo, Method, Sv};
use super::row::Field;
use crate::spec::{BinaryOp, UnaryOp};

/// The most variables (`let`s and `map` parameters in scope at once) a typed expression has.
const VARS: usize = 8;

/// A computed field's expression compiled for typed evaluation ([`Scalar::compile`]).
#[derive(Debug, Clone)]
pub(crate) enum Scalar {
    /// A scalar expression.
    Value(Code),
    /// `field.map(|x| body)` with a scalar body: over an array of scalars, each element typed
    /// (the ORE stack's `deployed_per_square_ui`, 25 amounts scaled per round update). The body
    /// reads the element as variable 0.
    Map(Field, Code),
}

impl Scalar {
    /// The typed form of `e`, or `None` when some part of it is not a scalar operation.
    pub fn compile(e: &CExpr) -> Option<Scalar> {
        if let CExpr::Map(recv, body) = e {
            if let CExpr::Field(f) = &**recv {
                return Some(Scalar::Map(f.clone(), Code::compile(body, 1)?));
            }
        }
        Code::compile(e, 0).map(Scalar::Value)
    }

    /// The value of the expression, or `None` to have the general evaluator answer.
    /// `array` lends the buffer for an array result (see `expr::Env`).
    pub fn eval<S: State>(
        &self,
        state: &S,
        cx: &EvalCtx,
        array: impl FnOnce(usize) -> Vec<Json>,
    ) -> Option<Json> {
        let mut vars = [Sv::Null; VARS];
        match self {
            Scalar::Value(code) => code.run(state, cx, &mut vars).map(Sv::to_json),
            Scalar::Map(f, body) => match &*state.read(f) {
                Json::Array(items) => {
                    let mut out = array(items.len());
                    for it in items {
                        vars[0] = Sv::of(it)?;
                        out.push(body.run(state, cx, &mut vars)?.to_json());
                    }
                    Some(Json::Array(out))
                }
                v => match Sv::of(v)? {
                    Sv::Null => Some(Json::Null),
                    v => {
                        vars[0] = v;
                        body.run(state, cx, &mut vars).map(Sv::to_json)
                    }
                },
            },
        }
    }
}

/// The most values a [`Code`] holds on its stack at once.
const STACK: usize = 8;

/// A scalar expression as a small stack program. An operation reads each operand from where it
/// is — a variable, a literal, a field, the event's slot or time — or, when the operand is itself
/// an operation, pops it from the stack, and pushes its result; the one value left is the
/// expression's. `estimated_expires_at_unix` is 14 such ops. A loop over a flat array of
/// small ops, where a tree walk paid a call, a frame and an `Option` return per node, and a stack
/// program without operand sources a push and a pop per leaf.
#[derive(Debug, Clone)]
pub(crate) struct Code {
    ops: Vec<Op>,
    /// The fields [`Src::Field`] reads, by index.
    fields: Vec<Field>,
    /// The literals [`Src::Lit`] stands for, by index.
    lits: Vec<Sv>,
}

/// Where an operation finds an operand.
#[derive(Debug, Clone, Copy)]
enum Src {
    /// Popped from the stack: the result of an earlier operation.
    Stack,
    Var(u8),
    Lit(u16),
    Field(u16),
    Slot,
    Timestamp,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Pushes the operand (an expression that is a leaf).
    Push(Src),
    /// Sets variable `n` (a `let`).
    Set(u8, Src),
    /// Goes on at the op at the index when the operand does not hold (an `if`).
    Else(Src, u32),
    Jump(u32),
    /// The operand, or the literal when it is null.
    UnwrapOr(Src, u16),
    Binary(BinaryOp, Src, Src),
    Unary(UnaryOp, Src),
    Cast(CastTo, Src),
    /// `x.map(|p| body)` over the operand: null is pushed and the body, up to the op at the
    /// index, skipped; anything else becomes variable `p`.
    Map(Src, u8, u32),
    /// A method with this many arguments (the receiver and the arguments popped).
    Method(Method, u8),
    /// `ui_amount` (true) or `raw_amount` (false) of an amount and its decimals.
    Amount(bool, Src, Src),
}

impl Code {
    /// `e` compiled with `vars` variables in scope, or `None` when some part of it is not a
    /// scalar operation, or it needs more variables, stack or literals than there are.
    fn compile(e: &CExpr, vars: usize) -> Option<Code> {
        let mut c = Code {
            ops: Vec::new(),
            fields: Vec::new(),
            lits: Vec::new(),
        };
        let mut sp = 0;
        c.emit(e, vars, &mut sp)?;
        Some(c)
    }

    fn lit(&mut self, v: Sv) -> Option<u16> {
        self.lits.push(v);
        u16::try_from(self.lits.len() - 1).ok()
    }

    fn at(&self) -> Option<u32> {
        u32::try_from(self.ops.len()).ok()
    }

    /// Where `e` is read from without an op of its own, if it is a leaf.
    fn leaf(&mut self, e: &CExpr) -> Option<Option<Src>> {
        Some(Some(match e {
            CExpr::Field(f) => {
                self.fields.push(f.clone());
                Src::Field(u16::try_from(self.fields.len() - 1).ok()?)
            }
            CExpr::Var(i) => Src::Var(u8::try_from(*i).ok()?),
            CExpr::Lit(v) => Src::Lit(self.lit(Sv::of(v)?)?),
            CExpr::Slot => Src::Slot,
            CExpr::Timestamp => Src::Timestamp,
            _ => return Some(None),
        }))
    }

    /// The operand `e`: a leaf read where it is, anything else emitted to leave its value on
    /// the stack.
    fn operand(&mut self, e: &CExpr, vars: usize, sp: &mut usize) -> Option<Src> {
        match self.leaf(e)? {
            Some(src) => Some(src),
            None => {
                self.emit(e, vars, sp)?;
                Some(Src::Stack)
            }
        }
    }

    /// Pops the operands an op reads from the stack (`n` of them) and pushes its result.
    fn op(&mut self, op: Op, popped: usize, sp: &mut usize) -> Option<()> {
        self.ops.push(op);
        *sp = *sp - popped + 1;
        (*sp <= STACK).then_some(())
    }

    /// Emits `e`, which leaves one value more on the stack; `sp` counts them.
    fn emit(&mut self, e: &CExpr, vars: usize, sp: &mut usize) -> Option<()> {
        let on_stack = |s: &[Src]| s.iter().filter(|s| matches!(s, Src::Stack)).count();
        if let Some(src) = self.leaf(e)? {
            return self.op(Op::Push(src), 0, sp);
        }
        match e {
            CExpr::Let(v, body) if vars < VARS => {
                let v = self.operand(v, vars, sp)?;
                self.ops.push(Op::Set(vars as u8, v));
                *sp -= on_stack(&[v]);
                self.emit(body, vars + 1, sp)?;
            }
            CExpr::If(c, t, f) => {
                let c = self.operand(c, vars, sp)?;
                let test = self.ops.len();
                self.ops.push(Op::Else(c, 0));
                *sp -= on_stack(&[c]);
                self.emit(t, vars, sp)?;
                let jump = self.ops.len();
                self.ops.push(Op::Jump(0));
                *sp -= 1;
                self.ops[test] = Op::Else(c, self.at()?);
                self.emit(f, vars, sp)?;
                self.ops[jump] = Op::Jump(self.at()?);
            }
            CExpr::UnwrapOr(x, d) => {
                let x = self.operand(x, vars, sp)?;
                let d = self.lit(Sv::of(d)?)?;
                self.op(Op::UnwrapOr(x, d), on_stack(&[x]), sp)?;
            }
            CExpr::Binary(op, l, r) => {
                let l = self.operand(l, vars, sp)?;
                let r = self.operand(r, vars, sp)?;
                self.op(Op::Binary(*op, l, r), on_stack(&[l, r]), sp)?;
            }
            CExpr::Unary(op, x) => {
                let x = self.operand(x, vars, sp)?;
                self.op(Op::Unary(*op, x), on_stack(&[x]), sp)?;
            }
            CExpr::Cast(_, CastTo::Text, _) => return None,
            CExpr::Cast(x, to, _) => {
                let x = self.operand(x, vars, sp)?;
                self.op(Op::Cast(*to, x), on_stack(&[x]), sp)?;
            }
            CExpr::Map(recv, body) if vars < VARS => {
                let recv = self.operand(recv, vars, sp)?;
                let map = self.ops.len();
                self.ops.push(Op::Map(recv, vars as u8, 0));
                *sp -= on_stack(&[recv]);
                self.emit(body, vars + 1, sp)?;
                self.ops[map] = Op::Map(recv, vars as u8, self.at()?);
            }
            CExpr::Method(_, Method::Len | Method::ToString, _) => return None,
            // At most one argument is read; more would only be evaluated (and could fail).
            CExpr::Method(recv, m, args) if args.len() <= 2 => {
                self.emit(recv, vars, sp)?;
                for a in args {
                    self.emit(a, vars, sp)?;
                }
                self.op(Op::Method(*m, args.len() as u8), 1 + args.len(), sp)?;
            }
            CExpr::Builtin(f @ (Builtin::UiAmount | Builtin::RawAmount), args)
                if args.len() == 2 =>
            {
                let a = self.operand(&args[0], vars, sp)?;
                let d = self.operand(&args[1], vars, sp)?;
                let ui = matches!(f, Builtin::UiAmount);
                self.op(Op::Amount(ui, a, d), on_stack(&[a, d]), sp)?;
            }
            _ => return None,
        }
        Some(())
    }

    /// Runs the program with the variables in `vars` (those in scope when it was compiled set).
    fn run<S: State>(&self, state: &S, cx: &EvalCtx, vars: &mut [Sv; VARS]) -> Option<Sv> {
        let mut stack = [Sv::Null; STACK];
        let mut sp = 0;
        let mut pc = 0;
        macro_rules! pop {
            () => {{
                sp -= 1;
                stack[sp]
            }};
        }
        // Operands are read right to left: the right one is on top when both were pushed.
        macro_rules! get {
            ($src:expr) => {
                match $src {
                    Src::Stack => pop!(),
                    Src::Var(i) => vars[i as usize],
                    Src::Lit(i) => self.lits[i as usize],
                    Src::Field(i) => state.scalar(&self.fields[i as usize])?,
                    Src::Slot => cx.slot.map_or(Sv::Null, Sv::Pos),
                    Src::Timestamp => Sv::int(cx.timestamp),
                }
            };
        }
        while let Some(&op) = self.ops.get(pc) {
            pc += 1;
            let v = match op {
                Op::Push(x) => get!(x),
                Op::Set(i, x) => {
                    vars[i as usize] = get!(x);
                    continue;
                }
                Op::Else(c, to) => {
                    if !get!(c).truthy() {
                        pc = to as usize;
                    }
                    continue;
                }
                Op::Jump(to) => {
                    pc = to as usize;
                    continue;
                }
                Op::UnwrapOr(x, d) => match get!(x) {
                    Sv::Null => self.lits[d as usize],
                    v => v,
                },
                Op::Binary(op, l, r) => {
                    let r = get!(r);
                    number::binary(op, get!(l), r)?
                }
                Op::Unary(UnaryOp::Not, x) => Sv::Bool(!get!(x).truthy()),
                Op::Unary(UnaryOp::ReverseBits, x) => number::reverse_bits(get!(x))?,
                Op::Cast(to, x) => number::cast(get!(x), to)?,
                Op::Map(x, p, end) => match get!(x) {
                    Sv::Null => {
                        pc = end as usize;
                        Sv::Null
                    }
                    v => {
                        vars[p as usize] = v;
                        continue;
                    }
                },
                Op::Method(m, n) => {
                    let mut a = [Sv::Null; 2];
                    for i in (0..n as usize).rev() {
                        a[i] = pop!();
                    }
                    number::method(pop!(), m, &a[..n as usize])?
                }
                Op::Amount(ui, a, d) => {
                    let d = get!(d);
                    number::amount(ui, get!(a), d)?
                }
            };
            stack[sp] = v;
            sp += 1;
        }
        (sp == 1).then_some(stack[0])
    }
}

#[cfg(test)]
mod tests {
    //! The typed evaluator against the general one: for every operation over edge values, the
    //! same value, or both fail (the typed one gives up exactly where the general one errs).

    use serde_json::json;

    use super::*;
    use crate::spec::ComputedFieldSpec;
    use crate::vm::computed::{compile_fields, eval_field, Computed};
    use crate::vm::expr::{eval, Env};
    use crate::vm::row::Layout;

    fn field(expression: Json) -> Computed {
        let spec: ComputedFieldSpec =
            serde_json::from_value(json!({"target_path": "out", "expression": expression}))
                .unwrap();
        compile_fields(&[spec], &Layout::default(), "$")
            .unwrap()
            .remove(0)
    }

    fn edge_values() -> Vec<Json> {
        vec![
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(1),
            json!(-1),
            json!(7),
            json!(25),
            json!(64),
            json!(625),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(i64::MAX as u64 + 1),
            json!(u64::MAX),
            json!(0.0),
            json!(1.5),
            json!(-2.5),
            json!(1e300),
        ]
    }

    const CX: EvalCtx = EvalCtx {
        slot: Some(300_000_000),
        timestamp: 1_700_000_000,
        slot_hashes: &|_| None,
    };

    /// Evaluates `c` both ways over `state` and holds them to the same answer; returns whether
    /// the typed one answered.
    fn agree(c: &Computed, state: &Json, what: &str) -> bool {
        let typed = c
            .typed
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: not typed"))
            .eval(state, &CX, Vec::with_capacity);
        let general = eval(&c.expr, state, &mut Env::default(), &CX);
        match (&typed, &general) {
            (Some(t), Ok(g)) => assert!(t == g, "{what} over {state}: typed {t}, general {g}"),
            (None, Err(_)) => {}
            _ => panic!("{what} over {state}: typed {typed:?}, general {general:?}"),
        }
        typed.is_some()
    }

    fn binary(op: &str, l: Json, r: Json) -> Json {
        json!({"Binary": {"op": op, "left": l, "right": r}})
    }

    /// The number rules, pinned case by case: both evaluators follow them, the general one through
    /// this module's operations and the typed one through its programs (`None`: an error).
    #[test]
    fn the_number_rules_hold_in_both_evaluators() {
        let lit = |v: Json| json!({"Literal": {"value": v}});
        let bin = |op: &str, l: Json, r: Json| binary(op, lit(l), lit(r));
        let cast = |v: Json, ty: &str| json!({"Cast": {"expr": lit(v), "to_type": ty}});
        let not = |v: Json| json!({"Unary": {"op": "Not", "expr": lit(v)}});
        let reverse = |v: Json| json!({"Unary": {"op": "ReverseBits", "expr": lit(v)}});
        let call = |v: Json, m: &str, args: Vec<Json>| json!({"MethodCall": {"expr": lit(v), "method": m, "args": args.into_iter().map(lit).collect::<Vec<_>>()}});
        let amount = |m: &str, v: Json, d: Json| json!({"ResolverComputed": {"resolver": "TokenMetadata", "method": m, "args": [lit(v), lit(d)]}});
        let cases: Vec<(Json, Option<Json>)> = vec![
            (bin("Add", json!(1), json!(2)), Some(json!(3))),
            (bin("Add", json!(-3), json!(1)), Some(json!(-2))),
            (bin("Add", json!(i64::MAX), json!(1)), None),
            (bin("Add", json!(1), json!(1.5)), Some(json!(2.5))),
            (bin("Add", json!(1), json!(null)), Some(json!(null))),
            (bin("Add", json!("a"), json!(null)), Some(json!(null))),
            (bin("Add", json!("a"), json!(1)), None),
            (bin("Gt", json!(null), json!(1)), Some(json!(false))),
            (bin("Gt", json!(2), json!(1.5)), Some(json!(true))),
            (bin("Div", json!(7), json!(2)), Some(json!(3))),
            (bin("Div", json!(7), json!(0)), None),
            (bin("Div", json!(7.0), json!(0.0)), None),
            (bin("Div", json!("a"), json!(0)), None),
            (bin("Mod", json!(-7), json!(3)), Some(json!(-1))),
            (bin("Mod", json!(7), json!(0)), None),
            (bin("Eq", json!(1), json!(1.0)), Some(json!(false))),
            (bin("Eq", json!(2), json!(2)), Some(json!(true))),
            (bin("Eq", json!("a"), json!("a")), Some(json!(true))),
            (bin("And", json!([1]), json!(1)), Some(json!(true))),
            (bin("Shl", json!(1), json!(3)), Some(json!(8))),
            (bin("Shl", json!(1), json!(64)), None),
            (bin("BitAnd", json!(1.5), json!(1)), None),
            (not(json!(0)), Some(json!(true))),
            (not(json!(0.0)), Some(json!(true))),
            (not(json!(0.5)), Some(json!(false))),
            (not(json!(u64::MAX)), Some(json!(false))),
            (not(json!(null)), Some(json!(true))),
            (not(json!("")), Some(json!(true))),
            (not(json!([0])), Some(json!(false))),
            (reverse(json!(1)), Some(json!(1u64 << 63))),
            (reverse(json!(-1)), Some(json!(u64::MAX))),
            (reverse(json!(1.5)), None),
            (cast(json!(-1), "u64"), Some(json!(u64::MAX))),
            (cast(json!(1.9), "i64"), Some(json!(1))),
            (cast(json!(2), "f64"), Some(json!(2.0))),
            (cast(json!("42"), "u64"), Some(json!(42))),
            (cast(json!("x"), "u64"), None),
            (cast(json!(true), "u64"), None),
            (cast(json!(0), "bool"), Some(json!(false))),
            (cast(json!(7), "String"), Some(json!("7"))),
            (amount("ui_amount", json!(1500), json!(3)), Some(json!(1.5))),
            (
                amount("ui_amount", json!("1500"), json!(3)),
                Some(json!(1.5)),
            ),
            (amount("ui_amount", json!(1), json!(300)), Some(json!(null))),
            (
                amount("raw_amount", json!(1.5), json!(3)),
                Some(json!(1500)),
            ),
            (amount("raw_amount", json!(-1), json!(0)), None),
            (call(json!(i64::MIN), "abs", vec![]), None),
            (call(json!(-2.5), "abs", vec![]), Some(json!(2.5))),
            (call(json!(3), "max", vec![json!(2.5)]), Some(json!(3.0))),
            (call(json!(3), "max", vec![json!("2")]), None),
            (
                call(json!(1), "saturating_sub", vec![json!(5)]),
                Some(json!(-4)),
            ),
            (
                call(json!(u64::MAX), "saturating_add", vec![json!(1)]),
                Some(json!(u64::MAX)),
            ),
            (
                call(json!(null), "unwrap_or", vec![json!([1])]),
                Some(json!([1])),
            ),
            (
                call(json!(null), "unwrap_or_default", vec![]),
                Some(json!(0)),
            ),
            (call(json!("ab"), "len", vec![]), Some(json!(2))),
        ];
        for (e, want) in cases {
            let c = field(e.clone());
            let general = eval(&c.expr, &json!({}), &mut Env::default(), &CX).ok();
            assert_eq!(general, want, "general: {e}");
            let either = eval_field(&c, &json!({}), &mut Env::default(), &CX);
            assert_eq!(either.ok(), want, "typed first: {e}");
        }
    }

    #[test]
    fn every_binary_operation_agrees_with_the_general_evaluator_on_edge_values() {
        let ops = [
            "Add", "Sub", "Mul", "Div", "Mod", "Gt", "Lt", "Gte", "Lte", "Eq", "Ne", "And", "Or",
            "Xor", "BitAnd", "BitOr", "Shl", "Shr",
        ];
        let (a, b) = (
            json!({"FieldRef": {"path": "s.a"}}),
            json!({"FieldRef": {"path": "s.b"}}),
        );
        let mut answered = 0;
        for op in ops {
            // Operands read from fields, from literals, and computed (pushed and popped).
            let from_fields = field(binary(op, a.clone(), b.clone()));
            for l in edge_values() {
                for r in edge_values() {
                    let state = json!({"s": {"a": l, "b": r}});
                    answered += agree(&from_fields, &state, op) as usize;
                    let lits = field(binary(
                        op,
                        json!({"Literal": {"value": l}}),
                        json!({"Literal": {"value": r}}),
                    ));
                    agree(&lits, &json!({}), op);
                    let nested = binary(
                        op,
                        json!({"UnwrapOr": {"expr": a, "default": 0}}),
                        json!({"Cast": {"expr": b, "to_type": "f64"}}),
                    );
                    agree(&field(nested), &state, op);
                }
            }
        }
        assert!(
            answered > 2_000,
            "the typed evaluator answered only {answered} times"
        );
    }

    #[test]
    fn unary_operations_casts_and_methods_agree_with_the_general_evaluator() {
        let x = || json!({"FieldRef": {"path": "s.x"}});
        let y = || json!({"FieldRef": {"path": "s.y"}});
        let mut exprs = vec![
            json!({"Unary": {"op": "Not", "expr": x()}}),
            json!({"Unary": {"op": "ReverseBits", "expr": x()}}),
            json!({"UnwrapOr": {"expr": x(), "default": 5}}),
            json!({"If": {"condition": x(), "then_branch": y(), "else_branch": {"Literal": {"value": -3}}}}),
            json!({"Let": {"name": "v", "value": x(), "body": {"Binary": {"op": "Mul", "left": {"Var": {"name": "v"}}, "right": {"Var": {"name": "v"}}}}}}),
            json!({"MethodCall": {"expr": x(), "method": "map", "args": [{"Closure": {"param": "r", "body": {"Binary": {"op": "Mod", "left": {"Var": {"name": "r"}}, "right": y()}}}}]}}),
            json!({"ResolverComputed": {"resolver": "TokenMetadata", "method": "ui_amount", "args": [x(), y()]}}),
            json!({"ResolverComputed": {"resolver": "TokenMetadata", "method": "raw_amount", "args": [x(), y()]}}),
            json!({"Binary": {"op": "Add", "left": "ContextTimestamp", "right": {"Binary": {"op": "Sub", "left": x(), "right": "ContextSlot"}}}}),
        ];
        for ty in ["i64", "u8", "u64", "f64", "bool", "Pubkey"] {
            exprs.push(json!({"Cast": {"expr": x(), "to_type": ty}}));
        }
        for m in [
            "unwrap_or",
            "unwrap_or_default",
            "is_some",
            "is_none",
            "abs",
            "min",
            "max",
            "saturating_add",
            "saturating_sub",
        ] {
            exprs.push(json!({"MethodCall": {"expr": x(), "method": m, "args": [y()]}}));
            exprs.push(json!({"MethodCall": {"expr": x(), "method": m, "args": []}}));
        }
        let mut edges = edge_values();
        edges.extend([
            json!(3),
            json!(9),
            json!(11),
            json!(22),
            json!(23),
            json!(300),
            json!(1_500_000_000),
        ]);
        for e in exprs {
            let c = field(e.clone());
            for x in &edges {
                for y in &edges {
                    agree(&c, &json!({"s": {"x": x, "y": y}}), &e.to_string());
                }
            }
        }
    }

    #[test]
    fn a_value_that_is_not_a_scalar_is_left_to_the_general_evaluator() {
        let c = field(json!({"UnwrapOr": {"expr": {"FieldRef": {"path": "s.x"}}, "default": 0}}));
        let typed = c.typed.as_ref().unwrap();
        assert_eq!(
            typed.eval(&json!({"s": {"x": "7"}}), &CX, Vec::with_capacity),
            None
        );
        assert_eq!(
            typed.eval(&json!({"s": {"x": [7]}}), &CX, Vec::with_capacity),
            None
        );
        assert_eq!(
            typed.eval(&json!({"s": {"x": 7}}), &CX, Vec::with_capacity),
            Some(json!(7))
        );
        // Through `eval_field`, the general evaluator answers instead.
        let v = eval_field(&c, &json!({"s": {"x": "7"}}), &mut Env::default(), &CX);
        assert_eq!(v, Ok(json!("7")));
        // Not compiled typed: a text cast, `len`, bytes, a literal array.
        for e in [
            json!({"Cast": {"expr": {"Literal": {"value": 1}}, "to_type": "String"}}),
            json!({"MethodCall": {"expr": {"FieldRef": {"path": "s.x"}}, "method": "len", "args": []}}),
            json!({"JsonToBytes": {"expr": {"FieldRef": {"path": "s.x"}}}}),
            json!({"ByteArray": {"bytes": [1, 2]}}),
        ] {
            assert!(field(e.clone()).typed.is_none(), "{e}");
        }
    }

    #[test]
    fn a_map_over_an_array_field_is_typed_element_by_element() {
        let c = field(
            json!({"MethodCall": {"expr": {"FieldRef": {"path": "s.xs"}}, "method": "map", "args": [
            {"Closure": {"param": "x", "body": {"ResolverComputed": {"resolver": "TokenMetadata", "method": "ui_amount", "args": [{"Var": {"name": "x"}}, {"Literal": {"value": 9}}]}}}}]}}),
        );
        assert!(matches!(c.typed, Some(Scalar::Map(..))));
        for xs in [
            json!([1_000_000_000u64, 0, 5, u64::MAX]),
            json!([]),
            json!(null),
            json!(3),
            json!([1, true, null, -4]),
        ] {
            agree(&c, &json!({"s": {"xs": xs}}), "map");
        }
        let typed = c.typed.as_ref().unwrap();
        // An element that is not a scalar: the general evaluator answers.
        let mixed = json!({"s": {"xs": [1, "2"]}});
        assert_eq!(typed.eval(&mixed, &CX, Vec::with_capacity), None);
        assert!(eval_field(&c, &mixed, &mut Env::default(), &CX).is_ok());
        let mut lent = 0;
        let v = typed.eval(&json!({"s": {"xs": [1, 2]}}), &CX, |n| {
            lent = n;
            Vec::with_capacity(8)
        });
        assert_eq!(lent, 2, "the result is built in a lent buffer");
        assert_eq!(v.unwrap().as_array().unwrap().capacity(), 8);
    }

    #[test]
    fn the_ore_stacks_numeric_fields_are_typed_and_agree() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/stacks/OreStream.stack.json"
        );
        let stack: Json = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let mut typed = Vec::new();
        for e in stack["entities"].as_array().unwrap() {
            let specs: Vec<ComputedFieldSpec> =
                serde_json::from_value(e["computed_field_specs"].clone()).unwrap();
            for c in compile_fields(&specs, &Layout::default(), "$").unwrap() {
                if c.typed.is_none() {
                    continue;
                }
                typed.push(c.target.path.dotted.to_string());
                for expires in [
                    json!(null),
                    json!(0),
                    json!(299_999_999),
                    json!(300_000_100),
                ] {
                    for raw in [json!(null), json!(0), json!(123_456_789_000u64)] {
                        let state = json!({
                            "state": {"expires_at": expires, "__motherlode_raw": raw, "__total_deployed_raw": raw,
                                "deployed_per_square": [raw, raw, 1]},
                            "results": {"rng": raw, "pre_reveal_rng": raw, "__top_miner_reward_raw": raw},
                            "treasury": {"__motherlode_raw": raw},
                            "ore_metadata": {"decimals": 11},
                        });
                        agree(&c, &state, &c.target.path.dotted);
                    }
                }
            }
        }
        for t in [
            "state.estimated_expires_at_unix",
            "state.motherlode",
            "state.deployed_per_square_ui",
            "results.winning_square",
            "results.did_hit_motherlode",
            "treasury.motherlode",
        ] {
            assert!(typed.iter().any(|x| x == t), "{t} is not typed: {typed:?}");
        }
    }
}
