//! Semantic checks: names against the catalog, arguments against schemas, stage order.
//!
//! Input is a concrete expression (alternatives already expanded). Every check collects all
//! its problems instead of stopping at the first, so one run of `amm check` lists them all.
//! Messages name the parameter and the allowed range, and the help line suggests the nearest
//! known name or shows the stage's signature (`exp(c=2, d=1, clip=50)`).

use crate::ast::{clip, Call, Expr, ExprKind};
use crate::diagnostic::{Problem, Span};
use crate::printer::expr_to_string;
use crate::schema::BUILTIN_NAMES;
use crate::schema::{builtin_stage, signature, Builtin, Catalog, Kind, ParamSpec, ParamType};
use crate::spec::{PipelineSpec, StageSpec};
use crate::suggest::{did_you_mean, nearest};
use crate::value::{Args, Value};

/// The source text of `e` for "got `…`", cut short.
fn shown(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Str(s) => format!("the string \"{}\"", clip(s)),
        _ => format!("`{}`", clip(&expr_to_string(e))),
    }
}

/// A plain value, for parameters and keys: numbers, booleans, names, strings, lists.
pub fn literal(e: &Expr) -> Result<Value, Problem> {
    Ok(match &e.kind {
        ExprKind::Int(i) => Value::Int(*i),
        ExprKind::Float(x) => Value::Float(*x),
        ExprKind::Bool(b) => Value::Bool(*b),
        ExprKind::Str(s) => Value::Str(s.clone()),
        ExprKind::Call(Call { name, args: None }) => Value::Ident(name.node.clone()),
        ExprKind::List(items) => Value::List(items.iter().map(literal).collect::<Result<_, _>>()?),
        ExprKind::Call(Call { name, .. }) => {
            return Err(Problem::new(e.span, format!("expected a value, found a call of `{}`", clip(&name.node))))
        }
        ExprKind::Pipeline(_) => return Err(Problem::new(e.span, "expected a value, found a pipeline")),
        ExprKind::Alternatives(_) => return Err(Problem::new(e.span, "alternatives are not allowed here")),
    })
}

/// Checks `e` against `ty`; `what` names the parameter or key in the message.
pub fn check_value(e: &Expr, ty: &ParamType, what: &str) -> Result<Value, Problem> {
    let bad = || Problem::new(e.span, format!("`{what}` must be {}, got {}", ty.describe(), shown(e)));
    match ty {
        ParamType::Int { min, max } => match e.kind {
            ExprKind::Int(i) if min.is_none_or(|m| i >= m) && max.is_none_or(|m| i <= m) => Ok(Value::Int(i)),
            _ => Err(bad()),
        },
        ParamType::Float { min, max, min_exclusive, max_exclusive } => {
            let x = match e.kind {
                ExprKind::Int(i) => i as f64,
                ExprKind::Float(x) => x,
                _ => return Err(bad()),
            };
            let above = min.is_none_or(|m| if *min_exclusive { x > m } else { x >= m });
            let below = max.is_none_or(|m| if *max_exclusive { x < m } else { x <= m });
            if above && below {
                Ok(Value::Float(x))
            } else {
                Err(bad())
            }
        }
        ParamType::Bool => match e.kind {
            ExprKind::Bool(b) => Ok(Value::Bool(b)),
            _ => Err(bad()),
        },
        ParamType::Choice(names) => {
            let name = match &e.kind {
                ExprKind::Str(s) => Some(s.as_str()),
                _ => e.as_ident(),
            };
            match name {
                Some(n) if names.iter().any(|k| k == n) => Ok(Value::Ident(n.to_string())),
                Some(n) => Err(bad().with_help_opt(nearest(n, names.iter().map(String::as_str)).map(|k| format!("did you mean `{k}`?")))),
                None => Err(bad()),
            }
        }
        ParamType::Str => match &e.kind {
            ExprKind::Str(s) => Ok(Value::Str(s.clone())),
            _ => match e.as_ident() {
                Some(n) => Ok(Value::Str(n.to_string())),
                None => Err(bad()),
            },
        },
        ParamType::IntList => match &e.kind {
            ExprKind::List(items) => items
                .iter()
                .map(|item| match item.kind {
                    ExprKind::Int(i) => Ok(Value::Int(i)),
                    _ => Err(Problem::new(item.span, format!("`{what}` must be a list of integers, got {}", shown(item)))),
                })
                .collect::<Result<_, _>>()
                .map(Value::List),
            _ => Err(bad().with_help(format!("write a list, e.g. `{what}=[800, 800]`"))),
        },
        ParamType::OrNone(inner) => match e.as_ident() {
            Some("none") => Ok(Value::Ident("none".into())),
            _ => check_value(e, inner, what).map_err(|_| bad()),
        },
    }
}

fn param_list(params: &[ParamSpec]) -> String {
    params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Binds the arguments of `call` to `params` (positional, then named), checks each value and
/// fills in defaults. `call_span` is where "missing argument" points.
pub fn bind_args(call: &Call, params: &[ParamSpec], call_span: Span) -> Result<Args, Vec<Problem>> {
    let owner = clip(&call.name.node);
    let sig = format!("signature: {}", signature(&owner, params));
    let mut values: Vec<Option<Value>> = vec![None; params.len()];
    let mut given = vec![false; params.len()];
    let mut problems = Vec::new();
    let args = call.args.as_ref().map_or(&[][..], |a| &a.node[..]);
    let positional = args.iter().filter(|a| a.name.is_none()).count();
    let mut next_position = 0;
    let mut seen_named = false;
    // A misplaced positional argument makes "missing argument" a guess: do not report it.
    let mut lost_positional = false;
    for arg in args {
        // A bare parameter name (`exp(c)`, `deepfool(l2, hog)`) keeps that parameter's default
        // (a flag `true` for booleans), unless the name is a value the next position takes.
        if let (None, Some(n)) = (&arg.name, arg.value.as_ident()) {
            let takes_name = params.get(next_position).is_some_and(|p| match &p.ty {
                ParamType::Choice(names) => names.iter().any(|c| c == n),
                ParamType::Str => true,
                _ => false,
            });
            if let Some(i) = params.iter().position(|p| p.name == n).filter(|_| !takes_name) {
                let p = &params[i];
                if given[i] {
                    problems.push(Problem::new(arg.span, format!("`{}` is given twice", p.name)).with_help(sig.clone()));
                    continue;
                }
                let value = if p.ty == ParamType::Bool { Some(Value::Bool(true)) } else { p.default.clone() };
                given[i] = true;
                match value {
                    Some(v) => values[i] = Some(v),
                    None => problems.push(Problem::new(arg.span, format!("`{}` needs a value", p.name)).with_help(format!(
                        "write `{}=...`; `{}` is {}",
                        p.name,
                        p.name,
                        p.ty.describe()
                    ))),
                }
                continue;
            }
        }
        let idx = match &arg.name {
            None if seen_named => {
                lost_positional = true;
                problems.push(
                    Problem::new(arg.span, "positional argument after a named one").with_help(format!("write it as name=value; {sig}")),
                );
                continue;
            }
            None if next_position >= params.len() => {
                let message = if params.is_empty() {
                    format!("`{owner}` takes no arguments")
                } else {
                    format!(
                        "`{owner}` takes at most {} argument{}, got {positional}",
                        params.len(),
                        if params.len() == 1 { "" } else { "s" }
                    )
                };
                problems.push(Problem::new(arg.span, message).with_help(sig.clone()));
                break;
            }
            None => {
                next_position += 1;
                next_position - 1
            }
            Some(name) => {
                seen_named = true;
                match params.iter().position(|p| p.name == name.node) {
                    Some(i) => i,
                    None => {
                        let help = if params.is_empty() {
                            format!("`{owner}` takes no arguments")
                        } else {
                            format!(
                                "{}parameters: {}",
                                did_you_mean(&name.node, params.iter().map(|p| p.name.as_str())),
                                param_list(params)
                            )
                        };
                        problems
                            .push(Problem::new(name.span, format!("`{owner}` has no parameter `{}`", clip(&name.node))).with_help(help));
                        continue;
                    }
                }
            }
        };
        let param = &params[idx];
        if given[idx] {
            problems.push(Problem::new(arg.span, format!("`{}` is given twice", param.name)).with_help(sig.clone()));
            continue;
        }
        given[idx] = true;
        match check_value(&arg.value, &param.ty, &param.name) {
            Ok(v) => values[idx] = Some(v),
            Err(p) => problems.push(if p.help.is_some() { p } else { p.with_help(sig.clone()) }),
        }
    }
    for (i, p) in params.iter().enumerate() {
        if !given[i] && p.default.is_none() && !lost_positional {
            problems.push(Problem::new(call_span, format!("missing argument `{}` of `{owner}`", p.name)).with_help(format!(
                "`{}` is {}; {sig}",
                p.name,
                p.ty.describe()
            )));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(params
        .iter()
        .zip(values)
        .map(|(p, v)| {
            let v = v.or_else(|| p.default.clone()).expect("required params were given");
            (p.name.clone(), v)
        })
        .collect())
}

/// The complete arguments of a stage written without any: every parameter's default.
pub fn default_args(params: &[ParamSpec]) -> Args {
    params.iter().filter_map(|p| p.default.clone().map(|d| (p.name.clone(), d))).collect()
}

/// `(proxies: deepfool, linear)`.
fn names_of(kind: Kind, catalog: &dyn Catalog) -> String {
    format!("({}: {})", kind.plural(), catalog.names(kind).join(", "))
}

/// The problem for a name that is not a `kind`: a typo, or a name of another kind.
pub fn unknown_name(kind: Kind, name: &str, span: Span, catalog: &dyn Catalog) -> Problem {
    let others = catalog.kind_of(name);
    if let Some(other) = others.first() {
        return Problem::new(span, format!("`{}` is {}, not {}", clip(name), other.with_article(), kind.with_article()))
            .with_help(format!("{} {}", kind.plural(), names_of(kind, catalog)));
    }
    let names = catalog.names(kind);
    Problem::new(span, format!("unknown {kind} `{}`", clip(name))).with_help(format!(
        "{}{}",
        did_you_mean(name, names.iter().map(String::as_str)),
        names_of(kind, catalog)
    ))
}

/// Validates a call of a `kind` (a model such as `mlp(widths=[256, 256])`).
pub fn validate_stage(e: &Expr, kind: Kind, catalog: &dyn Catalog) -> Result<StageSpec, Vec<Problem>> {
    let ExprKind::Call(call) = &e.kind else {
        return Err(vec![Problem::new(e.span, format!("expected {} name, found {}", kind.with_article(), e.describe()))
            .with_help(names_of(kind, catalog))]);
    };
    let Some(schema) = catalog.schema(kind, &call.name.node) else {
        return Err(vec![unknown_name(kind, &call.name.node, call.name.span, catalog)]);
    };
    let args = bind_args(call, &schema.params, e.span)?;
    Ok(StageSpec { kind, name: schema.name.clone(), args })
}

const PIPELINE_KINDS: [Kind; 3] = [Kind::Proxy, Kind::Aggregation, Kind::Shrinkage];

/// Validates one concrete pipeline. `Ok(None)` is `none`, the empty regularizer.
pub fn validate_pipeline(e: &Expr, catalog: &dyn Catalog) -> Result<Option<PipelineSpec>, Vec<Problem>> {
    let stages: &[Expr] = match &e.kind {
        ExprKind::Pipeline(stages) => stages,
        _ => std::slice::from_ref(e),
    };
    if let [only] = stages {
        if let ExprKind::Call(call) = &only.kind {
            if call.name.node == "none" {
                bind_args(call, &[], only.span)?;
                return Ok(None);
            }
        }
    }
    Checker {
        catalog,
        problems: Vec::new(),
        proxy: None,
        aggregation: None,
        normalize: None,
        shrinkage: None,
        weight: None,
        seen: [false; 3],
        unknown: false,
    }
    .run(e, stages)
}

/// The state of the pipeline checker: what has been seen so far.
struct Checker<'a> {
    catalog: &'a dyn Catalog,
    problems: Vec<Problem>,
    proxy: Option<StageSpec>,
    aggregation: Option<StageSpec>,
    normalize: Option<Span>,
    shrinkage: Option<StageSpec>,
    weight: Option<(Span, f64)>,
    /// Proxy, aggregation, shrinkage seen (even when their arguments were bad).
    seen: [bool; 3],
    /// An unknown stage was reported: skip "missing shrinkage", it is probably the typo.
    unknown: bool,
}

impl Checker<'_> {
    fn kinds_list(&self, kinds: &[Kind]) -> String {
        kinds.iter().map(|k| format!("{} ({})", k.with_article(), self.catalog.names(*k).join(", "))).collect::<Vec<_>>().join(" or ")
    }

    fn expected_here(&self, first: bool) -> Vec<Kind> {
        match (first, self.seen) {
            (true, _) => vec![Kind::Proxy],
            (_, [_, _, true]) => vec![],
            (_, [_, true, false]) => vec![Kind::Shrinkage],
            _ => vec![Kind::Aggregation, Kind::Shrinkage],
        }
    }

    fn unknown_stage(&mut self, name: &str, span: Span, first: bool) {
        self.unknown = true;
        let expected = self.expected_here(first);
        let pick = |kinds: &[Kind]| {
            let pool: Vec<(String, Option<Kind>)> =
                kinds.iter().flat_map(|k| self.catalog.names(*k).into_iter().map(move |n| (n, Some(*k)))).collect();
            nearest(name, pool.iter().map(|(n, _)| n.as_str())).and_then(|n| pool.iter().find(|(m, _)| m == n).cloned())
        };
        let everything: Vec<Kind> = PIPELINE_KINDS.to_vec();
        let suggestion =
            pick(&expected).or_else(|| pick(&everything)).or_else(|| nearest(name, BUILTIN_NAMES).map(|n| (n.to_string(), None)));
        let name = clip(name);
        let problem = match (suggestion, expected.as_slice()) {
            (Some((s, Some(k))), _) => {
                Problem::new(span, format!("unknown {k} `{name}`")).with_help(format!("did you mean `{s}`? {}", names_of(k, self.catalog)))
            }
            (Some((s, None)), _) => Problem::new(span, format!("unknown stage `{name}`")).with_help(format!("did you mean `{s}`?")),
            (None, [k]) => Problem::new(span, format!("unknown {k} `{name}`")).with_help(names_of(*k, self.catalog)),
            (None, []) => Problem::new(span, format!("unknown stage `{name}`")).with_help("only `weight(lambda)` may follow the shrinkage"),
            (None, kinds) => {
                Problem::new(span, format!("unknown stage `{name}`")).with_help(format!("expected {}", self.kinds_list(kinds)))
            }
        };
        self.problems.push(problem);
    }

    fn args(&mut self, call: &Call, params: &[ParamSpec], span: Span) -> Option<Args> {
        match bind_args(call, params, span) {
            Ok(a) => Some(a),
            Err(ps) => {
                self.problems.extend(ps);
                None
            }
        }
    }

    fn builtin(&mut self, b: Builtin, params: &[ParamSpec], call: &Call, stage: &Expr, first: bool) {
        let span = call.name.span;
        if first {
            self.problems.push(
                Problem::new(span, format!("a pipeline starts with a proxy, not `{}`", call.name.node))
                    .with_help(format!("proxies: {}", self.catalog.names(Kind::Proxy).join(", "))),
            );
            self.seen[0] = true;
        }
        let args = self.args(call, params, stage.span);
        match b {
            Builtin::None => {
                self.unknown = true;
                self.problems.push(
                    Problem::new(span, "`none` is the empty regularizer and stands alone")
                        .with_help("write `none` by itself, or as an alternative: `{none, ...}`"),
                )
            }
            Builtin::Normalize => {
                if self.normalize.is_some() {
                    self.problems.push(Problem::new(span, "`normalize` is given twice"));
                } else if self.seen[2] {
                    self.problems.push(
                        Problem::new(span, "`normalize` must come before the shrinkage")
                            .with_help("it changes the margin the shrinkage sees: proxy |> aggregation |> normalize |> shrinkage"),
                    );
                }
                self.normalize = Some(span);
            }
            Builtin::Weight => {
                if !self.seen[2] && !self.unknown {
                    self.problems.push(
                        Problem::new(span, "`weight` must come after the shrinkage")
                            .with_help("it is the last stage: ... |> exp(2, 1) |> weight(32)"),
                    );
                }
                if let Some(a) = args {
                    let w = a.f64("lambda").unwrap_or(1.0);
                    self.weight = Some((span, w));
                } else {
                    self.weight = Some((span, 1.0));
                }
            }
        }
    }

    fn stage(&mut self, stage: &Expr, first: bool) {
        let ExprKind::Call(call) = &stage.kind else {
            self.unknown = true;
            self.problems.push(
                Problem::new(stage.span, format!("expected a stage, found {}", stage.describe()))
                    .with_help("stages are names or calls, e.g. `avg` or `exp(2, 1)`"),
            );
            return;
        };
        let name = call.name.node.as_str();
        if self.weight.is_some() {
            self.unknown = true;
            self.problems.push(
                Problem::new(call.name.span, format!("`{}` follows `weight`", clip(name)))
                    .with_help("`weight(lambda)` must be the last stage"),
            );
            return;
        }
        if let Some((b, params, _)) = builtin_stage(name) {
            return self.builtin(b, &params, call, stage, first);
        }
        let kinds: Vec<Kind> = self.catalog.kind_of(name).into_iter().filter(|k| PIPELINE_KINDS.contains(k)).collect();
        if kinds.is_empty() {
            if let Some(other) = self.catalog.kind_of(name).first() {
                self.unknown = true;
                self.problems.push(
                    Problem::new(call.name.span, format!("`{}` is {}, not a stage of a regularizer", clip(name), other.with_article()))
                        .with_help(format!("expected {}", self.kinds_list(&self.expected_here(first)))),
                );
            } else {
                self.unknown_stage(name, call.name.span, first);
            }
            return;
        }
        let has = |k: Kind| kinds.contains(&k);
        let kind = if first {
            if has(Kind::Proxy) {
                Kind::Proxy
            } else {
                self.problems.push(
                    Problem::new(
                        call.name.span,
                        format!("a pipeline starts with a proxy, not {} (`{}`)", kinds[0].with_article(), clip(name)),
                    )
                    .with_help(format!(
                        "e.g. `deepfool(l2, 5) |> {}` {}",
                        clip(name),
                        names_of(Kind::Proxy, self.catalog)
                    )),
                );
                self.seen[0] = true;
                if !has(Kind::Aggregation) && !has(Kind::Shrinkage) {
                    return;
                }
                if has(Kind::Aggregation) {
                    Kind::Aggregation
                } else {
                    Kind::Shrinkage
                }
            }
        } else if has(Kind::Aggregation) && !self.seen[1] && !self.seen[2] {
            Kind::Aggregation
        } else if has(Kind::Shrinkage) && !self.seen[2] {
            Kind::Shrinkage
        } else {
            kinds[0]
        };
        let schema = self.catalog.schema(kind, name).expect("kind_of lists only kinds that have a schema");
        let at = call.name.span;
        let (slot, problem) = match kind {
            Kind::Proxy if first => (0, None),
            Kind::Proxy => {
                (0, Some(Problem::new(at, format!("a second proxy `{}`", clip(name))).with_help("a pipeline has exactly one proxy, first")))
            }
            Kind::Aggregation if self.seen[1] => (
                1,
                Some(
                    Problem::new(at, format!("a second aggregation `{}`", clip(name))).with_help("a pipeline has at most one aggregation"),
                ),
            ),
            Kind::Aggregation if self.seen[2] => (
                1,
                Some(
                    Problem::new(at, "the aggregation must come before the shrinkage")
                        .with_help("proxy |> aggregation |> shrinkage |> weight"),
                ),
            ),
            Kind::Aggregation => (1, None),
            _ if self.seen[2] => (
                2,
                Some(Problem::new(at, format!("a second shrinkage `{}`", clip(name))).with_help("a pipeline has exactly one shrinkage")),
            ),
            _ => (2, None),
        };
        if let Some(p) = problem {
            self.problems.push(p);
            let _ = self.args(call, &schema.params, stage.span);
            return;
        }
        self.seen[slot] = true;
        if let Some(args) = self.args(call, &schema.params, stage.span) {
            let spec = StageSpec { kind, name: schema.name.clone(), args };
            match slot {
                0 => self.proxy = Some(spec),
                1 => self.aggregation = Some(spec),
                _ => self.shrinkage = Some(spec),
            }
        }
    }

    fn run(mut self, e: &Expr, stages: &[Expr]) -> Result<Option<PipelineSpec>, Vec<Problem>> {
        for (i, stage) in stages.iter().enumerate() {
            self.stage(stage, i == 0);
        }
        if !self.seen[2] && !self.unknown {
            let after = if self.seen[1] { "aggregation" } else { "proxy" };
            let shrinkages = self.catalog.names(Kind::Shrinkage);
            let example = if shrinkages.iter().any(|s| s == "exp") {
                "exp(2, 1)".to_string()
            } else {
                shrinkages.first().cloned().unwrap_or_default()
            };
            self.problems.push(
                Problem::new(Span::new(e.span.end, e.span.end), format!("a shrinkage ({}) must follow the {after}", shrinkages.join(", ")))
                    .with_help(format!("end the pipeline with e.g. `|> {example}`")),
            );
        }
        if !self.problems.is_empty() {
            return Err(self.problems);
        }
        let aggregation = self.aggregation.unwrap_or_else(|| StageSpec {
            kind: Kind::Aggregation,
            name: "avg".into(),
            args: self.catalog.schema(Kind::Aggregation, "avg").map_or_else(Args::new, |s| default_args(&s.params)),
        });
        Ok(Some(PipelineSpec {
            proxy: self.proxy.expect("no problems, so a proxy"),
            aggregation,
            normalize: self.normalize.is_some(),
            shrinkage: self.shrinkage.expect("no problems, so a shrinkage"),
            weight: self.weight.map_or(1.0, |(_, w)| w),
        }))
    }
}
