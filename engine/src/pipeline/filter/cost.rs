//! What a CEL expression can cost, worked out before it runs.
//!
//! CEL has no loops but its comprehensions (`all`, `exists`, `map`, …) over a
//! list that already exists, and no recursion, so the work and the memory of an
//! evaluation are bounded by the sizes of the values it reads. [`estimate`]
//! walks the parsed expression with a [`Bound`] for every value (its length,
//! the memory it takes, the largest of its elements, the largest integer it can
//! be) and returns an upper bound of the steps the interpreter takes and of the
//! memory it holds at once. Every function CEL offers has its rule here; an
//! expression calling one that has none cannot be costed and is refused.
//!
//! The same walk serves twice. When a filter is saved, the event's values are
//! taken at their smallest ([`SmallestInputs`]): what is over the budget then
//! can never fit (`lists.range(10000).all(x, lists.range(10000).all(y, true))`
//! takes 10⁸ steps whatever the event). Before each evaluation, the event's
//! own values are measured (see `inputs`), and an evaluation whose bound is
//! over the budget is refused without running.

use cel::common::ast::{ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use std::collections::HashMap;

/// Steps one evaluation may take: about a third of a second of this
/// interpreter's work, the order of cel-go's default per-call limit.
pub const MAX_STEPS: u64 = 1_000_000;

/// Memory one evaluation may hold beyond the event it reads.
pub const MAX_BYTES: u64 = 32 << 20;

/// Bytes of a string that one step scans, compares or copies.
const BYTES_PER_STEP: u64 = 16;

/// Memory a list element or map entry takes besides its value.
pub(super) const SLOT_BYTES: u64 = 32;

/// Memory a string, list or map takes besides its contents.
pub(super) const HEADER_BYTES: u64 = 24;

/// `lists.range` makes at most this many elements (the `cel` crate's cap).
const MAX_RANGE: u64 = 1_000_000;

/// The longest text one `%f` or `%e` clause of `format` writes: the widest
/// double, 309 digits, and the largest precision `format` allows, 100.
const MAX_FORMATTED_NUMBER: u64 = 309 + 100 + 8;

/// The namespaces of the functions filters may call (`lists.range`).
const NAMESPACES: [&str; 4] = ["lists", "math", "strings", "optional"];

/// The variable a path is read from when it is an element of a list or map.
pub const EVERY_ELEMENT: &str = "*";

/// What a value can be at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Elements of a list or map, bytes of a string; 0 for the others.
    pub len: u64,
    /// Memory the value takes.
    pub bytes: u64,
    /// The memory of any one element of a list, or value of a map.
    pub elem: u64,
    /// The largest magnitude an integer value can have.
    pub int: u64,
}

impl Bound {
    /// A number, a boolean, null, a timestamp: small, of unknown magnitude.
    pub const SCALAR: Bound = Bound {
        len: 0,
        bytes: 16,
        elem: 0,
        int: u64::MAX,
    };

    /// A value the event does not hold yet: the smallest there is.
    pub const SMALLEST: Bound = Bound {
        len: 0,
        bytes: 1,
        elem: 0,
        int: 0,
    };

    pub fn integer(magnitude: u64) -> Self {
        Self {
            int: magnitude,
            ..Self::SCALAR
        }
    }

    pub fn string(len: u64) -> Self {
        Self {
            len,
            bytes: HEADER_BYTES.saturating_add(len),
            elem: 0,
            int: u64::MAX,
        }
    }

    /// A list (or map) of `len` elements of at most `elem` bytes each.
    pub fn list(len: u64, elem: u64) -> Self {
        Self {
            len,
            bytes: HEADER_BYTES.saturating_add(len.saturating_mul(elem.saturating_add(SLOT_BYTES))),
            elem,
            int: u64::MAX,
        }
    }

    /// Whichever of two values it is.
    pub fn either(self, other: Self) -> Self {
        Self {
            len: self.len.max(other.len),
            bytes: self.bytes.max(other.bytes),
            elem: self.elem.max(other.elem),
            int: self.int.max(other.int),
        }
    }

    /// An element of this list, a value of this map, a field of this object.
    fn part(self) -> Self {
        Self {
            len: self.elem,
            bytes: self.elem,
            elem: self.elem,
            int: u64::MAX,
        }
    }

    /// `self + other` for strings and lists.
    fn concatenated(self, other: Self) -> Self {
        Self {
            len: self.len.saturating_add(other.len),
            bytes: self.bytes.saturating_add(other.bytes),
            elem: self.elem.max(other.elem),
            int: self.int.saturating_add(other.int),
        }
    }
}

/// What one evaluation can cost, at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub steps: u64,
    /// Memory held at once, beyond the values read from the event.
    pub bytes: u64,
}

impl Cost {
    /// Whether it is within [`MAX_STEPS`] and [`MAX_BYTES`].
    pub fn fits(&self) -> bool {
        self.steps <= MAX_STEPS && self.bytes <= MAX_BYTES
    }

    /// What passes the budget, in words.
    pub fn excess(&self) -> String {
        let mut over = Vec::new();
        if self.steps > MAX_STEPS {
            over.push(format!(
                "up to {} steps (the budget is {MAX_STEPS})",
                shown(self.steps)
            ));
        }
        if self.bytes > MAX_BYTES {
            over.push(format!(
                "up to {} bytes of values (the budget is {MAX_BYTES})",
                shown(self.bytes)
            ));
        }
        over.join(" and ")
    }
}

fn shown(amount: u64) -> String {
    if amount == u64::MAX {
        "unboundedly many".into()
    } else {
        amount.to_string()
    }
}

/// An expression whose cost cannot be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Uncostable {
    #[error("`{0}` is not a function filters may call")]
    Function(String),
    #[error("a comprehension of a shape no CEL macro makes")]
    Comprehension,
    #[error("an unparsed expression")]
    Unspecified,
}

/// The values an expression reads: variables and paths into them.
pub trait Inputs {
    /// The bound of the value at `path`: a variable, then field names, with
    /// [`EVERY_ELEMENT`] for every element of a list or value of a map.
    /// `None` if `path[0]` is not a variable.
    fn bound(&self, path: &[String]) -> Option<Bound>;
}

/// Every variable at its smallest: what an expression costs whatever the event.
#[derive(Debug, Clone, Copy)]
pub struct SmallestInputs;

impl Inputs for SmallestInputs {
    fn bound(&self, _: &[String]) -> Option<Bound> {
        Some(Bound::SMALLEST)
    }
}

/// The cost of evaluating `expression` on values that `inputs` bounds.
pub fn estimate(expression: &IdedExpr, inputs: &dyn Inputs) -> Result<Cost, Uncostable> {
    let estimator = Estimator { inputs };
    let root = estimator.node(expression, &Scope::default())?;
    Ok(Cost {
        steps: root.steps,
        bytes: root.peak.saturating_add(root.owned_bytes()),
    })
}

/// The estimate of one node: its steps, the memory it holds at its peak
/// (its result not included), its result, and where the result was read from.
#[derive(Debug, Clone)]
struct Node {
    steps: u64,
    peak: u64,
    /// Whether the result is a new value, rather than one read from the event
    /// or the expression.
    owned: bool,
    value: Bound,
    path: Option<Vec<String>>,
}

impl Node {
    fn read(value: Bound, path: Option<Vec<String>>) -> Self {
        Self {
            steps: 1,
            peak: 0,
            owned: false,
            value,
            path,
        }
    }

    fn owned_bytes(&self) -> u64 {
        if self.owned { self.value.bytes } else { 0 }
    }
}

/// The variables comprehensions bind, innermost last.
#[derive(Default, Clone)]
struct Scope {
    variables: HashMap<String, (Bound, Option<Vec<String>>)>,
}

impl Scope {
    fn with(&self, name: &str, bound: Bound, path: Option<Vec<String>>) -> Self {
        let mut inner = self.clone();
        inner.variables.insert(name.to_owned(), (bound, path));
        inner
    }
}

struct Estimator<'a> {
    inputs: &'a dyn Inputs,
}

fn scan(bytes: u64) -> u64 {
    bytes / BYTES_PER_STEP + 1
}

fn sum(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(0, u64::saturating_add)
}

impl Estimator<'_> {
    fn node(&self, expr: &IdedExpr, scope: &Scope) -> Result<Node, Uncostable> {
        match &expr.expr {
            Expr::Literal(literal) => Ok(Node::read(literal_bound(literal), None)),
            Expr::Ident(name) => Ok(self.ident(name, scope)),
            Expr::Select(select) => {
                let operand = self.node(&select.operand, scope)?;
                if select.test {
                    return Ok(self.derived(&[operand], Bound::integer(1), 1, false));
                }
                let path = operand.path.as_ref().map(|path| {
                    let mut path = path.clone();
                    path.push(select.field.clone());
                    path
                });
                let value = self.at(path.as_deref(), operand.value.part());
                Ok(Node {
                    steps: operand.steps.saturating_add(1),
                    path,
                    value,
                    ..operand
                })
            }
            Expr::Call(call) => {
                let mut args = Vec::with_capacity(call.args.len() + 1);
                let mut name = std::borrow::Cow::Borrowed(call.func_name.as_str());
                match call.target.as_deref() {
                    // `lists.range(n)`, `math.abs(x)`: a function of a
                    // namespace, not a method of a variable.
                    Some(IdedExpr {
                        expr: Expr::Ident(namespace),
                        ..
                    }) if NAMESPACES.contains(&namespace.as_str())
                        && !scope.variables.contains_key(namespace) =>
                    {
                        name = format!("{namespace}.{}", call.func_name).into();
                    }
                    Some(target) => args.push(self.node(target, scope)?),
                    None => {}
                }
                for arg in &call.args {
                    args.push(self.node(arg, scope)?);
                }
                self.call(&name, args)
            }
            Expr::List(list) => {
                let elements = list
                    .elements
                    .iter()
                    .map(|element| self.node(element, scope))
                    .collect::<Result<Vec<_>, _>>()?;
                let elem = elements.iter().map(|e| e.value.bytes).max().unwrap_or(0);
                let value = Bound::list(elements.len() as u64, elem);
                Ok(self.derived(&elements, value, elements.len() as u64, true))
            }
            Expr::Map(map) => {
                let mut parts = Vec::new();
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(entry) => {
                            parts.push(self.node(&entry.key, scope)?);
                            parts.push(self.node(&entry.value, scope)?);
                        }
                        EntryExpr::StructField(field) => {
                            parts.push(self.node(&field.value, scope)?)
                        }
                    }
                }
                let elem = parts.iter().map(|e| e.value.bytes).max().unwrap_or(0);
                let value = Bound::list(parts.len() as u64, elem.saturating_mul(2));
                Ok(self.derived(&parts, value, parts.len() as u64, true))
            }
            Expr::Struct(structure) => {
                let mut parts = Vec::new();
                for entry in &structure.entries {
                    match &entry.expr {
                        EntryExpr::StructField(field) => {
                            parts.push(self.node(&field.value, scope)?)
                        }
                        EntryExpr::MapEntry(entry) => parts.push(self.node(&entry.value, scope)?),
                    }
                }
                let elem = parts.iter().map(|e| e.value.bytes).max().unwrap_or(0);
                let value = Bound::list(parts.len() as u64, elem);
                Ok(self.derived(&parts, value, parts.len() as u64, true))
            }
            Expr::Comprehension(comprehension) => self.comprehension(comprehension, scope),
            Expr::Unspecified => Err(Uncostable::Unspecified),
        }
    }

    fn ident(&self, name: &str, scope: &Scope) -> Node {
        if let Some((bound, path)) = scope.variables.get(name) {
            return Node::read(*bound, path.clone());
        }
        let path = vec![name.to_owned()];
        match self.inputs.bound(&path) {
            Some(bound) => Node::read(bound, Some(path)),
            // Not a variable: the evaluation stops at once with an error.
            None => Node::read(Bound::SCALAR, None),
        }
    }

    /// The bound of the input at `path`, or `fallback` where there is none.
    fn at(&self, path: Option<&[String]>, fallback: Bound) -> Bound {
        path.and_then(|path| self.inputs.bound(path))
            .unwrap_or(fallback)
    }

    /// A node computed from `parts`, doing `work` steps itself, with `value`
    /// as its result.
    fn derived(&self, parts: &[Node], value: Bound, work: u64, owned: bool) -> Node {
        Node {
            steps: sum(parts.iter().map(|p| p.steps)).saturating_add(work),
            peak: sum(parts.iter().map(|p| p.peak.saturating_add(p.owned_bytes()))),
            owned,
            value,
            path: None,
        }
    }

    fn call(&self, name: &str, args: Vec<Node>) -> Result<Node, Uncostable> {
        let arg = |index: usize| args.get(index).map_or(Bound::SMALLEST, |a| a.value);
        let total_bytes = sum(args.iter().map(|a| a.value.bytes));
        let boolean = Bound::integer(1);
        let (value, work, owned) = match name {
            operators::LOGICAL_AND
            | operators::LOGICAL_OR
            | operators::LOGICAL_NOT
            | operators::NOT_STRICTLY_FALSE
            | "hasValue"
            | "math.isInf"
            | "math.isNaN"
            | "math.isFinite" => (boolean, 1, false),
            operators::CONDITIONAL => {
                let [condition, then, otherwise] =
                    <[Node; 3]>::try_from(args).map_err(|_| Uncostable::Function(name.into()))?;
                return Ok(Node {
                    steps: condition
                        .steps
                        .saturating_add(then.steps.max(otherwise.steps))
                        .saturating_add(1),
                    peak: condition
                        .peak
                        .saturating_add(condition.owned_bytes())
                        .saturating_add(then.peak.max(otherwise.peak)),
                    owned: then.owned || otherwise.owned,
                    value: then.value.either(otherwise.value),
                    path: None,
                });
            }
            operators::EQUALS
            | operators::NOT_EQUALS
            | operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS => (boolean, scan(arg(0).bytes.min(arg(1).bytes)), false),
            operators::IN => (
                boolean,
                scan(arg(1).bytes).saturating_add(arg(1).len),
                false,
            ),
            operators::ADD => (
                arg(0).concatenated(arg(1)),
                scan(arg(0).bytes.saturating_add(arg(1).bytes)),
                true,
            ),
            operators::SUBSTRACT => (
                Bound::integer(arg(0).int.saturating_add(arg(1).int)),
                1,
                false,
            ),
            operators::MULTIPLY => (
                Bound::integer(arg(0).int.saturating_mul(arg(1).int)),
                1,
                false,
            ),
            operators::DIVIDE
            | operators::NEGATE
            | "math.abs"
            | "math.ceil"
            | "math.floor"
            | "math.round"
            | "math.trunc"
            | "math.sqrt" => (Bound::integer(arg(0).int), 1, false),
            operators::MODULO => (Bound::integer(arg(1).int), 1, false),
            "math.sign" => (Bound::integer(1), 1, false),
            "math.bitAnd" | "math.bitOr" | "math.bitXor" | "math.bitNot" | "math.bitShiftLeft"
            | "math.bitShiftRight" => (Bound::SCALAR, 1, false),
            operators::INDEX | operators::OPT_INDEX | operators::OPT_SELECT => {
                let path = args[0].path.as_ref().map(|path| {
                    let mut path = path.clone();
                    path.push(EVERY_ELEMENT.to_owned());
                    path
                });
                let value = self.at(path.as_deref(), arg(0).part());
                let mut node = self.derived(&args, value, scan(arg(1).bytes), false);
                node.path = path;
                return Ok(node);
            }
            "size" => (Bound::integer(arg(0).len), scan(arg(0).len), false),
            "dyn" | "optional.of" | "optional.ofNonZeroValue" | "value" => {
                let mut node = self.derived(&args, arg(0), 1, false);
                node.path = args.first().and_then(|a| a.path.clone());
                node.owned = args.first().is_some_and(|a| a.owned);
                return Ok(node);
            }
            "or" | "orValue" => (arg(0).either(arg(1)), 1, false),
            "optional.none" | "type" => (Bound::SCALAR, 1, false),
            "int" | "uint" => (Bound::integer(arg(0).int), scan(arg(0).bytes), false),
            "double" | "bool" | "timestamp" | "duration" => {
                (Bound::SCALAR, scan(arg(0).bytes), false)
            }
            "string" | "bytes" => (
                // Invalid UTF-8 becomes U+FFFD, three bytes for each byte.
                Bound::string(arg(0).bytes.saturating_mul(3).saturating_add(32)),
                scan(arg(0).bytes),
                true,
            ),
            "getFullYear" | "getMonth" | "getDayOfYear" | "getDayOfMonth" | "getDate"
            | "getDayOfWeek" | "getHours" | "getMinutes" | "getSeconds" | "getMilliseconds" => {
                (Bound::SCALAR, scan(total_bytes), false)
            }
            "contains" | "startsWith" | "endsWith" | "indexOf" | "lastIndexOf" | "charAt" => {
                let value = if name == "charAt" {
                    Bound::string(4)
                } else {
                    Bound::integer(arg(0).len)
                };
                (value, scan(total_bytes), name == "charAt")
            }
            "matches" => {
                // The regex engine is linear in the text for a compiled
                // pattern, whose size grows with the pattern's.
                let pattern = arg(1).len.max(1);
                let work = scan(arg(0).bytes)
                    .saturating_mul(pattern.div_ceil(8))
                    .saturating_add(pattern.saturating_mul(8));
                (boolean, work, false)
            }
            "lowerAscii" | "upperAscii" | "trim" | "substring" => {
                (Bound::string(arg(0).len), scan(arg(0).bytes), true)
            }
            "reverse" | "slice" | "sort" | "@sortByAssociatedKeys" | "distinct" => {
                let list = arg(0);
                let work = match name {
                    "sort" | "@sortByAssociatedKeys" => {
                        let log = u64::from(64 - list.len.leading_zeros());
                        scan(list.bytes).saturating_mul(log.max(1))
                    }
                    // Each element is compared with those kept before it.
                    "distinct" => list
                        .len
                        .saturating_mul(list.len)
                        .saturating_add(scan(list.bytes).saturating_mul(list.len)),
                    _ => scan(list.bytes),
                };
                (list, work, true)
            }
            "flatten" => {
                let list = arg(0);
                // As many elements as the nested lists hold, at most one a byte.
                let flat = Bound {
                    len: list.bytes,
                    bytes: list.bytes.saturating_mul(2),
                    elem: list.elem,
                    int: u64::MAX,
                };
                (flat, scan(list.bytes), true)
            }
            "replace" => {
                let (text, new) = (arg(0).len, arg(2).len);
                // Every position may be replaced, the empty string included.
                let out = text.saturating_add(text.saturating_add(1).saturating_mul(new));
                (Bound::string(out), scan(out.saturating_add(text)), true)
            }
            "split" => {
                let text = arg(0).len;
                let parts = text.saturating_add(1);
                let value = Bound {
                    len: parts,
                    bytes: text.saturating_add(
                        parts
                            .saturating_mul(HEADER_BYTES + SLOT_BYTES)
                            .saturating_add(HEADER_BYTES),
                    ),
                    elem: Bound::string(text).bytes,
                    int: u64::MAX,
                };
                (value, scan(value.bytes), true)
            }
            "join" => {
                let (list, separator) = (arg(0), args.get(1).map_or(0, |a| a.value.len));
                let out = list
                    .bytes
                    .saturating_add(list.len.saturating_mul(separator));
                (Bound::string(out), scan(out), true)
            }
            "format" => {
                let (pattern, values) = (arg(0).len, arg(1));
                // Each clause (two bytes at least) writes one value or number.
                let clauses = pattern / 2;
                let out = pattern
                    .saturating_add(clauses.saturating_mul(MAX_FORMATTED_NUMBER))
                    .saturating_add(values.bytes.saturating_mul(3));
                (Bound::string(out), scan(out), true)
            }
            "strings.quote" => {
                let out = arg(0).len.saturating_mul(6).saturating_add(2);
                (Bound::string(out), scan(out), true)
            }
            "lists.range" => {
                let count = arg(0).int.min(MAX_RANGE);
                let mut value = Bound::list(count, Bound::SCALAR.bytes);
                value.elem = Bound::SCALAR.bytes;
                (value, count.saturating_add(1), true)
            }
            "math.@max" | "math.@min" => {
                let extreme = args
                    .iter()
                    .map(|a| a.value.part().either(a.value))
                    .fold(Bound::SMALLEST, Bound::either);
                (
                    extreme,
                    scan(total_bytes).saturating_add(sum(args.iter().map(|a| a.value.len))),
                    false,
                )
            }
            other => return Err(Uncostable::Function(other.to_owned())),
        };
        Ok(self.derived(&args, value, work, owned))
    }

    fn comprehension(
        &self,
        comprehension: &ComprehensionExpr,
        scope: &Scope,
    ) -> Result<Node, Uncostable> {
        let accu = comprehension.accu_var.as_str();
        let range = self.node(&comprehension.iter_range, scope)?;
        let iterations = range.value.len;
        let element_path = range.path.as_ref().map(|path| {
            let mut path = path.clone();
            path.push(EVERY_ELEMENT.to_owned());
            path
        });
        let element = self.at(element_path.as_deref(), range.value.part());
        let init = self.node(&comprehension.accu_init, scope)?;
        let mut inner = scope.with(&comprehension.iter_var, element, element_path.clone());
        if let Some(second) = &comprehension.iter_var2 {
            inner = inner.with(second, element, element_path);
        }

        // The accumulator after every iteration: `map` and `filter` append to
        // it, `all` and `exists` fold into it, `exists_one` counts; a step
        // that ignores it replaces it.
        let first = self.node(
            &comprehension.loop_step,
            &inner.with(accu, init.value, None),
        )?;
        let accumulated = if !mentions(&comprehension.loop_step, accu) {
            init.value.either(first.value)
        } else if grows_by_what_it_adds(&comprehension.loop_step, accu) {
            let grown = |start: u64, after: u64| {
                start.saturating_add(iterations.saturating_mul(after.saturating_sub(start)))
            };
            Bound {
                len: grown(init.value.len, first.value.len),
                bytes: grown(init.value.bytes, first.value.bytes),
                elem: init.value.elem.max(first.value.elem),
                int: grown(init.value.int, first.value.int),
            }
        } else {
            return Err(Uncostable::Comprehension);
        };

        // An append to an accumulator that starts as `[]` is done in place;
        // any other step is costed with the accumulator at its largest.
        let appends_in_place = matches!(&comprehension.accu_init.expr, Expr::List(list) if list.elements.is_empty())
            && matches!(comprehension.loop_cond.expr, Expr::Literal(_));
        let per_iteration_accu = if appends_in_place {
            Bound::list(0, accumulated.elem)
        } else {
            accumulated
        };
        let iteration = inner.with(accu, per_iteration_accu, None);
        let condition = self.node(&comprehension.loop_cond, &iteration)?;
        let step = self.node(&comprehension.loop_step, &iteration)?;
        let result = self.node(&comprehension.result, &scope.with(accu, accumulated, None))?;

        let per_iteration = condition.steps.saturating_add(step.steps).saturating_add(1);
        let steps = sum([
            range.steps,
            init.steps,
            iterations.saturating_mul(per_iteration),
            result.steps,
        ]);
        let peak = sum([
            range.peak,
            range.owned_bytes(),
            init.peak,
            // Each element is copied into the iteration's variable.
            element.bytes,
            accumulated.bytes,
            condition
                .peak
                .max(step.peak.saturating_add(step.owned_bytes())),
            result.peak,
        ]);
        Ok(Node {
            steps,
            peak,
            owned: true,
            value: result.value,
            path: None,
        })
    }
}

fn literal_bound(literal: &LiteralValue) -> Bound {
    match literal {
        LiteralValue::String(text) => Bound::string(text.inner().len() as u64),
        LiteralValue::Bytes(bytes) => Bound::string(bytes.inner().len() as u64),
        LiteralValue::Int(int) => Bound::integer(int.inner().unsigned_abs()),
        LiteralValue::UInt(uint) => Bound::integer(*uint.inner()),
        LiteralValue::Boolean(_) | LiteralValue::Null => Bound::integer(1),
        LiteralValue::Double(_) => Bound::SCALAR,
    }
}

/// Whether `name` is read anywhere in `expr`.
fn mentions(expr: &IdedExpr, name: &str) -> bool {
    match &expr.expr {
        Expr::Ident(ident) => ident == name,
        Expr::Select(select) => mentions(&select.operand, name),
        Expr::Call(call) => {
            call.target.as_deref().is_some_and(|t| mentions(t, name))
                || call.args.iter().any(|a| mentions(a, name))
        }
        Expr::List(list) => list.elements.iter().any(|e| mentions(e, name)),
        Expr::Map(map) => map.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::MapEntry(e) => mentions(&e.key, name) || mentions(&e.value, name),
            EntryExpr::StructField(f) => mentions(&f.value, name),
        }),
        Expr::Struct(structure) => structure.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::MapEntry(e) => mentions(&e.key, name) || mentions(&e.value, name),
            EntryExpr::StructField(f) => mentions(&f.value, name),
        }),
        Expr::Comprehension(c) => {
            let rebinds =
                c.accu_var == name || c.iter_var == name || c.iter_var2.as_deref() == Some(name);
            mentions(&c.iter_range, name)
                || mentions(&c.accu_init, name)
                || (!rebinds
                    && (mentions(&c.loop_cond, name)
                        || mentions(&c.loop_step, name)
                        || mentions(&c.result, name)))
        }
        Expr::Literal(_) | Expr::Unspecified => false,
    }
}

/// Whether each step keeps the accumulator and adds to it something that does
/// not depend on it (`@result + [x]`, `@result && p`, `c ? @result + 1 :
/// @result`), so that it grows by the same bound every iteration.
fn grows_by_what_it_adds(step: &IdedExpr, accu: &str) -> bool {
    match &step.expr {
        Expr::Ident(name) => name == accu,
        Expr::Call(call) if call.target.is_none() => {
            match (call.func_name.as_str(), &call.args[..]) {
                (
                    operators::ADD | operators::LOGICAL_AND | operators::LOGICAL_OR,
                    [kept, added],
                ) => {
                    matches!(&kept.expr, Expr::Ident(name) if name == accu)
                        && !mentions(added, accu)
                }
                (operators::CONDITIONAL, [condition, then, otherwise]) => {
                    !mentions(condition, accu)
                        && grows_by_what_it_adds(then, accu)
                        && grows_by_what_it_adds(otherwise, accu)
                }
                _ => false,
            }
        }
        _ => false,
    }
}
