"""Self-check of the reference (run by make_fixtures.py, or alone).

1. A second, deliberately different implementation of the regularizer's VALUE
   (per sample, Python loops, input gradients by torch.func.jacrev, plain floats for
   the aggregation and shrinkage, no autograd graph) must agree with amm_reference.
2. Central finite differences of that value function (f64, h = 1e-6, a few random
   entries per parameter tensor) must match amm_reference's autograd gradient for
   chain=full, hog=true (the exact derivative of the value).
3. Gradient-semantics sanity: chain=full vs chain=none differ on a multi-iteration
   case; hog=true vs hog=false differ; for ReLU nets chain=full == chain=authors.

Usage (from the repo root): /opt/ref-venv/bin/python tools/reference/selfcheck.py
"""

from __future__ import annotations

import math
import os
import sys
from typing import Dict, List, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amm_reference as ref  # noqa: E402


def value_from_scratch(model: ref.Model, params: ref.Params, x: torch.Tensor,
                       y: torch.Tensor, cfg: ref.Config) -> Tuple[float, dict]:
    """Regularizer value only, recomputed sample by sample (no batching, no graph)."""
    params = {n: t.detach() for n, t in params.items()}
    B = x.shape[0]

    def f1(xs: torch.Tensor) -> torch.Tensor:           # one sample -> logits (C,)
        return model.forward(params, xs.unsqueeze(0))[0]

    jac1 = torch.func.jacrev(f1)                          # one sample -> (C, *shape)
    rho = np.zeros(B)
    correct = np.zeros(B, dtype=bool)
    flipped = np.zeros(B, dtype=bool)
    steps = np.zeros(B, dtype=int)
    for b in range(B):
        xb, yb = x[b].detach(), int(y[b])
        clean = f1(xb).numpy()
        y0 = int(np.argmax(clean))
        correct[b] = y0 == yb
        order = np.argsort(-clean, kind="stable")[: min(cfg.candidates, len(clean))]
        cands = [int(k) for k in order if k != y0]
        r = torch.zeros_like(xb)
        done = False
        for _ in range(cfg.iters):
            xi = xb + r
            fx = f1(xi).numpy()
            J = jac1(xi).reshape(len(fx), -1)
            pred = int(np.argmax(fx))
            if (correct[b] and pred != y0) or (not correct[b] and pred == yb):
                done = True
                break
            if correct[b]:
                best, l = math.inf, y0
                for k in cands:
                    wk = J[k] - J[y0]
                    nk = float(wk.norm())
                    q = abs(fx[k] - fx[y0]) / nk if nk > 0 else math.inf
                    if q < best:
                        best, l = q, k
                o = y0
            else:
                l, o = yb, pred
            w = J[l] - J[o]
            g = float(fx[l] - fx[o])
            r = r + ((1 + cfg.overshoot) * abs(g) / (float((w * w).sum()) + ref.STEP_EPS)
                     * w).reshape(xb.shape)
            steps[b] += 1
        if not done:
            pred = int(np.argmax(f1(xb + r).numpy()))
            done = (correct[b] and pred != y0) or (not correct[b] and pred == yb)
        flipped[b] = done
        rho[b] = math.sqrt(float((r * r).sum()) + ref.NORM_EPS)

    # aggregation
    idx = np.arange(B)
    if cfg.aggregation[0] == "avg":
        sel = [int(b) for b in idx[flipped]]
    else:
        k = max(1, int(math.floor(cfg.aggregation[1] * B)))
        sel = []
        for want_correct, sign in ((True, 1.0), (False, -1.0)):
            pool = idx[flipped & (correct == want_correct)]
            if len(pool) == 0:
                continue
            keyv = sign * rho[pool]
            ranked = pool[np.lexsort((pool, keyv))]          # by key, then index
            topk = set(int(b) for b in ranked[:k])
            ext = {}
            for b in ranked:                                   # first seen = best
                ext.setdefault(int(y[b]), int(b))
            inter = set(ext.values()) & topk
            if not inter:
                inter = {min(ext.values(), key=lambda b: (sign * rho[b], b))}
            sel += sorted(inter)
        sel = sorted(sel)

    # shrinkage
    kind, c, d = cfg.shrinkage
    lam = cfg.weight
    total, clipped = 0.0, []
    with np.errstate(over="ignore", divide="ignore"):
        for b in sel:
            p = rho[b]
            if kind == "lin":
                t = -lam * c * p if correct[b] else lam * d * p
            else:
                if kind == "exp":
                    t = lam * np.exp(-c * p) if correct[b] else lam * np.exp(d * p)
                else:
                    den = 1 + c * p if correct[b] else 1 - d * p
                    t = lam / den if den > 0 else math.inf
                if not np.isfinite(t) or t > ref.CLIP:
                    t = ref.CLIP
                    clipped.append(b)
            total += float(t)
    info = dict(selected=sel, clipped=clipped,
                flipped=[int(b) for b in idx[flipped]], steps=steps.tolist())
    return total / B, info


def fd_check(model, params, x, y, cfg, h=1e-6, per_tensor=3, seed=0):
    """Max relative error between autograd and central differences."""
    res, grads = ref.value_and_grad(model, params, x, y, cfg)
    v0, info0 = value_from_scratch(model, params, x, y, cfg)
    value = float(res.value.detach())
    assert abs(v0 - value) <= 1e-10 * max(1.0, abs(v0)), (v0, value)
    assert info0["selected"] == res.selected and info0["clipped"] == res.clipped \
        and info0["flipped"] == res.flipped, "decisions differ between implementations"
    gen = torch.Generator().manual_seed(seed)
    # FD noise floor ~ eps * |value| / h ~ 1e-9 absolute: relative errors are only
    # meaningful for entries with |grad| >= 1e-3; tiny entries are judged by abs error.
    max_rel, max_abs, decision_changes = 0.0, 0.0, 0
    for n in model.names:
        t = params[n]
        for _ in range(per_tensor):
            j = int(torch.randint(0, t.numel(), (1,), generator=gen))
            vals = []
            for sgn in (+1, -1):
                q = {k: v.clone() for k, v in params.items()}
                q[n].reshape(-1)[j] += sgn * h   # clone is contiguous: a view
                v, info = value_from_scratch(model, q, x, y, cfg)
                if (info["selected"], info["clipped"], info["flipped"]) != \
                        (info0["selected"], info0["clipped"], info0["flipped"]):
                    decision_changes += 1
                vals.append(v)
            fd = (vals[0] - vals[1]) / (2 * h)
            ag = float(grads[n].reshape(-1)[j])
            err = abs(fd - ag)
            max_abs = max(max_abs, err)
            if abs(ag) >= 1e-3:
                max_rel = max(max_rel, err / abs(ag))
    return max_rel, max_abs, decision_changes, res


def _gdiff(ga: Dict[str, torch.Tensor], gb: Dict[str, torch.Tensor]) -> float:
    num = math.sqrt(sum(float(((ga[n] - gb[n]) ** 2).sum()) for n in ga))
    den = math.sqrt(sum(float((ga[n] ** 2).sum()) for n in ga))
    return num / max(den, 1e-300)


def run(fixtures) -> bool:
    """fixtures: list of (name, model, params, x, y) from make_fixtures.build()."""
    ok = True
    import make_fixtures
    print("\n== self-check: every fixture case's value and decisions recomputed by the "
          "independent per-sample implementation ==")
    for name, model, params, x, y in fixtures:
        cases = make_fixtures.FIXTURES[name][4]()
        worst, bad = 0.0, 0
        for cfg in cases:
            res = ref.regularizer(model, params, x, y, cfg)
            v, info = value_from_scratch(model, params, x, y, cfg)
            worst = max(worst, abs(v - float(res.value.detach())) / max(1.0, abs(v)))
            if (info["selected"], info["clipped"], info["flipped"], info["steps"]) != \
                    (res.selected, res.clipped, res.flipped, res.steps):
                bad += 1
        print(f"{name:10} {len(cases)} cases: max rel value diff {worst:.3e}, "
              f"cases with different decisions: {bad}")
        if worst > 1e-10 or bad:
            ok = False

    print("\n== self-check: autograd (chain=full, hog=true) vs central FD of an "
          "independent value implementation (h=1e-6) ==")
    print(f"{'fixture':10} {'case':44} {'iters':>5} {'max rel err':>12} "
          f"{'max abs err':>12} {'decision chg':>12}   (rel over |grad| >= 1e-3)")
    fd_cases = [
        ref.Config(iters=5, aggregation=("avg",), shrinkage=("exp", 2, 1), weight=4),
        ref.Config(iters=5, aggregation=("min", 0.2), shrinkage=("inv", 1, 0.5), weight=4),
        ref.Config(iters=5, aggregation=("avg",), shrinkage=("lin", 1, 1), weight=2),
    ]
    worst = 0.0
    for name, model, params, x, y in fixtures:
        for cfg in fd_cases:
            rel, ab, chg, res = fd_check(model, params, x, y, cfg)
            worst = max(worst, rel)
            print(f"{name:10} {cfg.aggregation_str() + ' ' + cfg.shrinkage_str():44} "
                  f"{res.iterations:>5} {rel:12.3e} {ab:12.3e} {chg:>12}")
            if rel > 1e-5 or ab > 1e-7:
                ok = False
    print(f"max relative error over all FD checks: {worst:.3e}")

    print("\n== gradient semantics (relative L2 difference of weight gradients) ==")
    for name, model, params, x, y in fixtures:
        base = dict(iters=5, aggregation=("avg",), shrinkage=("exp", 2, 1), weight=4)
        r_full, g_full = ref.value_and_grad(model, params, x, y, ref.Config(**base))
        _, g_none = ref.value_and_grad(model, params, x, y, ref.Config(chain="none", **base))
        _, g_auth = ref.value_and_grad(model, params, x, y,
                                       ref.Config(chain="authors", **base))
        _, g_nohog = ref.value_and_grad(model, params, x, y, ref.Config(hog=False, **base))
        d_none, d_auth, d_hog = (_gdiff(g_full, g) for g in (g_none, g_auth, g_nohog))
        print(f"{name:10} iters={r_full.iterations}  full vs none {d_none:.3e}  "
              f"full vs authors {d_auth:.3e}  hog true vs false {d_hog:.3e}")
        if r_full.iterations >= 2 and d_none < 1e-6:
            ok = False
            print("  FAIL: chain=full and chain=none should differ")
        if d_hog < 1e-6:
            ok = False
            print("  FAIL: hog=true and hog=false should differ")
        if "act=tanh" not in model.spec and d_auth > 1e-10:
            ok = False
            print("  FAIL: for piecewise-linear nets chain=authors should equal full")
    print("self-check:", "PASS" if ok else "FAIL")
    return ok


if __name__ == "__main__":
    import make_fixtures
    sys.exit(0 if run(make_fixtures.build_inputs()) else 1)
