"""Independent PyTorch reference implementation of the AMM regularizer.

Written from ../shared/DESIGN.md (sections 1.1-1.2), the AMM paper text and the
method description given to the author -- NOT from amm's Rust sources. Everything
is float64 and uses torch autograd (double backprop) for the weight gradients.

Pipeline (one call of `regularizer`):

    batch x (B, ...), labels y (B,)
      -> DeepFool (p = 2, u iterations, per-step overshoot, K candidates)  -> r_b
      -> rho_b = ||r_b||_2
      -> aggregation (avg | min(class, frac))                            -> selected set S
      -> shrinkage (lin | exp | inv) * weight lambda, truncated at 50    -> term_b
      -> value = sum_{b in S} term_b / B

DeepFool, per sample, from r = 0, y0 = argmax f(x) (clean prediction), x_i = x + r:

  active  : correct sample (y0 == y): argmax f(x_i) == y0
            misclassified sample   : argmax f(x_i) != y
            (a sample that is not active is "flipped" and its r is frozen forever)
  correct : for every candidate k (top-K clean classes, y0 excluded)
                w_k = grad_x f_k(x_i) - grad_x f_y0(x_i)
                g_k = f_k(x_i) - f_y0(x_i)
            l = argmin_k |g_k| / ||w_k||_2           (discrete, no gradient), o = y0
  misclassified: l = y, o = argmax f(x_i)            (current prediction)
  step    : w = grad_x f_l(x_i) - grad_x f_o(x_i),  g = f_l(x_i) - f_o(x_i)
            r <- r + (1 + overshoot) * |g| / (||w||_2^2 + 1e-12) * w
  after the u-th step one more forward at x + r decides which still-active samples
  flipped; never-flipped samples are dropped from the regularizer.

Gradient semantics (`chain`):
  full    : x_i = x + r with r in the graph; f(x_i) and grad_x f(x_i) taken at that
            attached point (create_graph=True). Exact derivative of the value.
  authors : f(x_i) at the attached x + r; grad_x f taken at a detached copy of x + r
            (w depends on the weights, not on earlier steps).
  none    : x_i = (x + r).detach() for both f and grad_x f; r is still the sum of the
            steps, each a function of the weights through w and g.
  hog=False: w is a constant (detached) inside the step; g stays differentiable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

DTYPE = torch.float64
CLIP = 50.0          # truncation threshold of exp / inv terms
STEP_EPS = 1e-12     # guards ||w||^2 in the DeepFool step
NORM_EPS = 1e-20     # rho = sqrt(sum r^2 + NORM_EPS)

Params = Dict[str, torch.Tensor]
Forward = Callable[[Params, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------
# Models (PyTorch parameter layouts; names are part of the fixture format)
# ----------------------------------------------------------------------------------

@dataclass
class Model:
    spec: str                     # amm model spec string
    input_shape: Tuple[int, ...]  # per-sample input shape
    names: List[str]              # parameter names, in order
    forward: Forward              # forward(params, x) -> logits (B, classes)
    classes: int = 10


def _kaiming(shape: Sequence[int], fan_in: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=DTYPE) * math.sqrt(2.0 / fan_in)


def _bias(n: int) -> torch.Tensor:
    # Nonzero random biases (N(0, 0.1^2)) so that biases get meaningful gradients.
    return torch.randn(n, dtype=DTYPE) * 0.1


def make_mlp(in_dim: int, widths: Sequence[int], act: str = "relu",
             classes: int = 10) -> Tuple[Model, Params]:
    """fc1..fcN, activation after every layer but the last; logits = last output."""
    dims = [in_dim, *widths, classes]
    params: Params = {}
    names: List[str] = []
    for i in range(len(dims) - 1):
        n_in, n_out = dims[i], dims[i + 1]
        params[f"fc{i + 1}.weight"] = _kaiming((n_out, n_in), n_in)
        params[f"fc{i + 1}.bias"] = _bias(n_out)
        names += [f"fc{i + 1}.weight", f"fc{i + 1}.bias"]
    n_layers = len(dims) - 1
    act_fn = {"relu": torch.relu, "tanh": torch.tanh}[act]

    def forward(p: Params, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], -1)
        for i in range(1, n_layers + 1):
            h = F.linear(h, p[f"fc{i}.weight"], p[f"fc{i}.bias"])
            if i < n_layers:
                h = act_fn(h)
        return h

    w = ", ".join(str(v) for v in widths)
    spec = f"mlp(widths=[{w}])" if act == "relu" else f"mlp(widths=[{w}], act={act})"
    return Model(spec, (in_dim,), names, forward, classes), params


def make_lenet(classes: int = 10) -> Tuple[Model, Params]:
    """Caffe-style LeNet on (1, 16, 16): conv1 5x5 -> maxpool 2 -> conv2 5x5 -> maxpool 2
    -> flatten -> fc1 (50 -> 500) -> ReLU -> fc2 (500 -> 10). No ReLU after the convs."""
    params: Params = {
        "conv1.weight": _kaiming((20, 1, 5, 5), 1 * 25),
        "conv1.bias": _bias(20),
        "conv2.weight": _kaiming((50, 20, 5, 5), 20 * 25),
        "conv2.bias": _bias(50),
        "fc1.weight": _kaiming((500, 50), 50),
        "fc1.bias": _bias(500),
        "fc2.weight": _kaiming((classes, 500), 500),
        "fc2.bias": _bias(classes),
    }
    names = list(params.keys())

    def forward(p: Params, x: torch.Tensor) -> torch.Tensor:
        h = F.conv2d(x, p["conv1.weight"], p["conv1.bias"])      # (N, 20, 12, 12)
        h = F.max_pool2d(h, 2, 2)                                # (N, 20, 6, 6)
        h = F.conv2d(h, p["conv2.weight"], p["conv2.bias"])      # (N, 50, 2, 2)
        h = F.max_pool2d(h, 2, 2)                                # (N, 50, 1, 1)
        h = h.reshape(h.shape[0], -1)                            # (N, 50)  C,H,W order
        h = torch.relu(F.linear(h, p["fc1.weight"], p["fc1.bias"]))
        return F.linear(h, p["fc2.weight"], p["fc2.bias"])

    return Model("lenet", (1, 16, 16), names, forward, classes), params


# ----------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------

def _num(v: float) -> str:
    """Number formatting for the DSL: 2.0 -> '2', 0.5 -> '0.5'."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


@dataclass
class Config:
    iters: int = 5
    overshoot: float = 0.02
    candidates: int = 10
    chain: str = "full"            # full | authors | none
    hog: bool = True
    aggregation: Tuple = ("avg",)  # ("avg",) or ("min", frac)
    shrinkage: Tuple = ("exp", 2.0, 1.0)  # (kind, c, d), kind in lin | exp | inv
    weight: float = 4.0

    def pipeline(self) -> str:
        df = [f"l2, {self.iters}"]
        if self.overshoot != 0.02:
            df.append(f"overshoot={_num(self.overshoot)}")
        if self.candidates != 10:
            df.append(f"candidates={self.candidates}")
        df.append(f"chain={self.chain}")
        df.append(f"hog={'true' if self.hog else 'false'}")
        return (f"deepfool({', '.join(df)}) |> {self.aggregation_str()} |> "
                f"{self.shrinkage_str()} |> weight({_num(self.weight)})")

    def aggregation_str(self) -> str:
        if self.aggregation[0] == "avg":
            return "avg"
        return f"min(class, {_num(self.aggregation[1])})"

    def shrinkage_str(self) -> str:
        kind, c, d = self.shrinkage
        return f"{kind}(c={_num(c)}, d={_num(d)})"


# ----------------------------------------------------------------------------------
# DeepFool (p = 2), differentiable
# ----------------------------------------------------------------------------------

@dataclass
class DeepFoolResult:
    r: torch.Tensor          # (B, ...) perturbation, in the autograd graph
    rho: torch.Tensor        # (B,) ||r||_2
    clean_pred: torch.Tensor  # (B,) y0
    correct: torch.Tensor    # (B,) bool
    flipped: torch.Tensor    # (B,) bool
    iterations: int          # steps taken by at least one sample
    steps: torch.Tensor      # (B,) steps taken by each sample


def candidate_classes(clean_logits: torch.Tensor, y0: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k classes of the clean logits (y0 among them), y0 removed -> (B, k-1).

    Ordered by decreasing clean logit (ties between ratios later resolve to the
    earlier, i.e. higher-logit, candidate)."""
    k = min(k, clean_logits.shape[1])
    top = clean_logits.topk(k, dim=1).indices                     # (B, k), sorted desc
    keep = top != y0[:, None]
    assert bool((keep.sum(1) == k - 1).all()), "clean argmax not in top-k (tie?)"
    return top[keep].view(top.shape[0], k - 1)


def input_jacobian(logits: torch.Tensor, xg: torch.Tensor) -> torch.Tensor:
    """grad_x f_c(x) for every class c, batched over samples: (B, C, ...).

    One autograd.grad call per class row of sum_b f_c(x_b); samples are independent,
    so the gradient of the batch sum is the per-sample gradient. create_graph=True
    keeps the result differentiable w.r.t. the weights (and x, if attached)."""
    rows = []
    for c in range(logits.shape[1]):
        (g,) = torch.autograd.grad(logits[:, c].sum(), xg, create_graph=True,
                                   retain_graph=True)
        rows.append(g)
    return torch.stack(rows, dim=1)


def _still_active(pred, y0, y, correct):
    return torch.where(correct, pred == y0, pred != y)


def deepfool_l2(model: Model, params: Params, x: torch.Tensor, y: torch.Tensor,
                cfg: Config) -> DeepFoolResult:
    B = x.shape[0]
    bshape = (B,) + (1,) * (x.dim() - 1)     # broadcast a per-sample scalar over x
    with torch.no_grad():
        clean = model.forward(params, x)
    y0 = clean.argmax(1)
    correct = y0 == y
    cands = candidate_classes(clean, y0, cfg.candidates)        # fixed before the loop
    ar = torch.arange(B)

    r = torch.zeros_like(x)
    flipped = torch.zeros(B, dtype=torch.bool)
    iterations = 0
    steps = torch.zeros(B, dtype=torch.int64)
    completed = True
    for _ in range(cfg.iters):
        # ---- point x_i and the logits / input gradients there, per `chain` ----
        if cfg.chain == "full":
            xi = x + r
            if not xi.requires_grad:         # first iteration: r = 0 is a constant
                xi = xi.detach().requires_grad_()
            logits = model.forward(params, xi)
            jac = input_jacobian(logits, xi)
        elif cfg.chain == "authors":
            logits = model.forward(params, x + r)                # attached
            xd = (x + r).detach().requires_grad_()
            jac = input_jacobian(model.forward(params, xd), xd)  # at detached copy
        elif cfg.chain == "none":
            xd = (x + r).detach().requires_grad_()
            logits = model.forward(params, xd)
            jac = input_jacobian(logits, xd)
        else:
            raise ValueError(cfg.chain)

        # ---- active set (discrete) ----
        pred = logits.detach().argmax(1)
        active = ~flipped & _still_active(pred, y0, y, correct)
        flipped = flipped | ~active          # inactive now == flipped (frozen)
        if not bool(active.any()):
            completed = False
            break

        # ---- pair (l, o) per sample (discrete) ----
        with torch.no_grad():
            jd, ld = jac.detach().flatten(2), logits.detach()
            w_c = jd[ar[:, None], cands] - jd[ar, y0][:, None]            # (B, K-1, D)
            g_c = ld[ar[:, None], cands] - ld[ar, y0][:, None]            # (B, K-1)
            wn = w_c.norm(dim=2)
            ratio = torch.where(wn > 0, g_c.abs() / wn, torch.full_like(wn, math.inf))
            l_corr = cands[ar, ratio.argmin(1)] if cands.shape[1] > 0 else y0
        l = torch.where(correct, l_corr, y)
        o = torch.where(correct, y0, pred)

        # ---- step ----
        w = jac[ar, l] - jac[ar, o]                                       # (B, ...)
        g = logits[ar, l] - logits[ar, o]                                 # (B,)
        if not cfg.hog:
            w = w.detach()
        coef = (1.0 + cfg.overshoot) * g.abs() / (w.flatten(1).pow(2).sum(1) + STEP_EPS)
        step = coef.view(bshape) * w
        r = r + torch.where(active.view(bshape), step, torch.zeros_like(step))
        iterations += 1
        steps += active.to(torch.int64)

    if completed:
        # One more forward at x + r decides which still-active samples flipped.
        with torch.no_grad():
            pred = model.forward(params, (x + r).detach()).argmax(1)
        flipped = flipped | ~_still_active(pred, y0, y, correct)

    rho = torch.sqrt(r.flatten(1).pow(2).sum(1) + NORM_EPS)
    return DeepFoolResult(r, rho, y0, correct, flipped, iterations, steps)


# ----------------------------------------------------------------------------------
# Aggregation and shrinkage
# ----------------------------------------------------------------------------------

def select(agg: Tuple, rho: Sequence[float], y: Sequence[int], correct: Sequence[bool],
           flipped: Sequence[bool]) -> List[int]:
    """Sorted indices of the regularized samples (discrete decision).

    avg: every non-dropped (flipped) sample.
    min(class, frac): k = max(1, floor(frac * B)).
      correct: per ground-truth class argmin rho, intersected with the k smallest rho
               of all correct non-dropped samples;
      misclassified: per-class argmax rho intersected with the k largest rho.
      Ties -> lower index. Empty intersection with candidates -> keep the single
      per-class extremum with the smallest (correct) / largest (misclassified) rho.
    """
    B = len(rho)
    kept = [b for b in range(B) if flipped[b]]
    if agg[0] == "avg":
        return kept
    assert agg[0] == "min"
    k = max(1, int(math.floor(agg[1] * B)))
    out: List[int] = []
    for is_correct in (True, False):
        pool = [b for b in kept if bool(correct[b]) == is_correct]
        if not pool:
            continue
        # sign so that "best" == smallest key: correct -> small rho, mis -> large rho
        key = (lambda b: (rho[b], b)) if is_correct else (lambda b: (-rho[b], b))
        per_class: Dict[int, int] = {}
        for b in pool:
            c = int(y[b])
            if c not in per_class or key(b) < key(per_class[c]):
                per_class[c] = b
        extremes = set(per_class.values())
        top_k = set(sorted(pool, key=key)[:k])
        inter = extremes & top_k
        if not inter:
            inter = {min(extremes, key=key)}
        out += list(inter)
    return sorted(out)


def shrink(shrinkage: Tuple, weight: float, rho: torch.Tensor, is_correct: bool
           ) -> Tuple[torch.Tensor, bool]:
    """Term of one selected sample, and whether it was truncated.

    lin: correct -lam*c*rho,        misclassified lam*d*rho        (never truncated)
    exp: correct lam*exp(-c*rho),   misclassified lam*exp(d*rho)
    inv: correct lam/(1 + c*rho),   misclassified lam/(1 - d*rho)  (inf if d*rho >= 1)
    exp/inv terms > 50 (or non-finite) become the constant 50 (zero gradient). The
    decision is taken on a float value so overflowing expressions never enter the graph.
    """
    kind, c, d = shrinkage
    lam = float(weight)
    rv = float(rho.detach())
    if kind == "lin":
        return ((-lam * c * rho) if is_correct else (lam * d * rho)), False
    if kind == "exp":
        arg = -c * rv if is_correct else d * rv
        val = lam * math.exp(arg) if arg < 700 else math.inf
    elif kind == "inv":
        den = 1.0 + c * rv if is_correct else 1.0 - d * rv
        val = lam / den if den > 0 else math.inf
    else:
        raise ValueError(kind)
    if not math.isfinite(val) or val > CLIP:
        return torch.tensor(CLIP, dtype=DTYPE), True
    if kind == "exp":
        return (lam * torch.exp(-c * rho) if is_correct else lam * torch.exp(d * rho)), False
    return (lam / (1.0 + c * rho) if is_correct else lam / (1.0 - d * rho)), False


# ----------------------------------------------------------------------------------
# The regularizer
# ----------------------------------------------------------------------------------

@dataclass
class RegResult:
    value: torch.Tensor       # scalar, in the graph
    selected: List[int]
    clipped: List[int]
    flipped: List[int]
    correct: List[bool]
    iterations: int
    rho: List[float]
    terms: Dict[int, float]
    steps: List[int]


def regularizer(model: Model, params: Params, x: torch.Tensor, y: torch.Tensor,
                cfg: Config) -> RegResult:
    df = deepfool_l2(model, params, x, y, cfg)
    B = x.shape[0]
    rho_f = df.rho.detach().tolist()
    correct = df.correct.tolist()
    flipped = df.flipped.tolist()
    sel = select(cfg.aggregation, rho_f, y.tolist(), correct, flipped)
    total = torch.zeros((), dtype=DTYPE)
    clipped, terms = [], {}
    for b in sel:
        t, was_clipped = shrink(cfg.shrinkage, cfg.weight, df.rho[b], correct[b])
        if was_clipped:
            clipped.append(b)
        terms[b] = float(t.detach())
        total = total + t
    value = total / B
    return RegResult(value, sel, clipped, [b for b in range(B) if flipped[b]],
                     correct, df.iterations, rho_f, terms, df.steps.tolist())


def value_and_grad(model: Model, params: Params, x: torch.Tensor, y: torch.Tensor,
                   cfg: Config) -> Tuple[RegResult, Dict[str, torch.Tensor]]:
    """Value and d value / d params (zeros where no gradient)."""
    p = {n: t.detach().clone().requires_grad_() for n, t in params.items()}
    res = regularizer(model, p, x, y, cfg)
    tensors = [p[n] for n in model.names]
    if res.value.requires_grad:
        grads = torch.autograd.grad(res.value, tensors, allow_unused=True)
    else:
        grads = [None] * len(tensors)
    out = {n: (g.detach() if g is not None else torch.zeros_like(t))
           for n, g, t in zip(model.names, grads, tensors)}
    return res, out
