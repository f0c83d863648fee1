#!/usr/bin/env python3
"""Checks amm's PyTorch and ONNX exports against the logits amm computed.

Subcommands (run with --help for the options of each):

  torch DIR [--tol T]                  the export in DIR (model.py, config.json, weights.safetensors,
                                       samples.safetensors) rebuilt in PyTorch reproduces amm's logits
  onnx MODEL.onnx SAMPLES [--tol T]    an ONNX file run by onnxruntime (CPU) reproduces them
  modify DIR OUT.safetensors --csv OUT.csv [--seed S]
                                       change the exported weights as a PyTorch user would (a few seeded
                                       SGD steps of cross-entropy on the samples), save them, and write the
                                       changed model's outputs on the samples as CSV
  compare-csv AMM.csv TORCH.csv [--tol T]
                                       amm's `eval --per-sample` CSV agrees with a `modify` CSV
  names CHECKPOINT --config CONFIG.json
                                       the PyTorch model's state-dict names and shapes equal the `model.*`
                                       tensors of an amm checkpoint

Logits agree when every |logit - amm logit| <= tol * max(1, |amm logit|): an absolute tolerance
for logits up to 1 in magnitude, relative beyond. Predictions (argmax, first maximum on ties)
must be identical for every sample. Exit status: 0 when everything agrees, 1 on any mismatch,
2 on unusable input (a missing file, a malformed export).

`onnx` and `compare-csv` need only numpy (+ onnxruntime for `onnx`), not torch or the
safetensors package: safetensors files are read by the small reader below. The other
subcommands need torch and safetensors (e.g. /opt/ref-venv/bin/python).
"""
import argparse
import csv
import importlib.util
import json
import math
import os
import struct
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPO_MODEL_PY = os.path.join(REPO, "amm-core", "src", "export", "model.py")
TOL_RULE = "|Δ| ≤ tol·max(1, |amm logit|)"


class Mismatch(Exception):
    """The compared outputs disagree (exit 1)."""


class BadInput(Exception):
    """A file is missing or malformed (exit 2)."""


# ---------------------------------------------------------------------------------------------
# safetensors, read by hand: an 8-byte little-endian header length, a JSON header
# {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw
# little-endian bytes, offsets relative to the end of the header.

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
           "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    """{name: numpy array} of a safetensors file (BF16 is widened to float32)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}")
    if len(data) < 8:
        raise BadInput(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise BadInput(f"{path}: not a safetensors file (header length {n} past the end)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"{path}: not a safetensors file (bad header: {e})")
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], [int(s) for s in info["shape"]], info["data_offsets"]
        if not 0 <= begin <= end <= len(body):
            raise BadInput(f"{path}: tensor {name} lies outside the file")
        raw = body[begin:end]
        if dtype == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dtype in _DTYPES:
            arr = np.frombuffer(raw, dtype=_DTYPES[dtype])
        else:
            raise BadInput(f"{path}: tensor {name} has unsupported dtype {dtype}")
        if arr.size != math.prod(shape):
            raise BadInput(f"{path}: tensor {name} holds {arr.size} values for shape {shape}")
        out[name] = arr.reshape(shape).copy()
    return out


def read_samples(path):
    """`inputs` (N, ...) float32, `labels` (N,), `logits` (N, K) float32 and `indices` (N,) of a
    samples.safetensors file written by amm's export."""
    t = read_safetensors(path)
    missing = [k for k in ("inputs", "labels", "logits") if k not in t]
    if missing:
        raise BadInput(f"{path}: no {', '.join(missing)} tensor (has {', '.join(sorted(t)) or 'none'})")
    n = t["inputs"].shape[0]
    if t["logits"].ndim != 2 or t["logits"].shape[0] != n or t["labels"].shape != (n,):
        raise BadInput(f"{path}: inconsistent shapes: inputs {list(t['inputs'].shape)}, labels {list(t['labels'].shape)}, "
                       f"logits {list(t['logits'].shape)}")
    if n == 0:
        raise BadInput(f"{path}: no samples")
    t.setdefault("indices", np.arange(n, dtype=np.int64))
    t["inputs"] = t["inputs"].astype(np.float32)
    t["logits"] = t["logits"].astype(np.float32)
    return t


# ---------------------------------------------------------------------------------------------
# Comparison of logits


def compare_logits(ours, amm, tol, what, indices=None):
    """Checks `ours` against amm's logits (both (N, K)); prints the summary line; raises Mismatch."""
    ours, amm = np.asarray(ours, dtype=np.float64), np.asarray(amm, dtype=np.float64)
    if ours.shape != amm.shape:
        raise Mismatch(f"{what}: logits of shape {list(ours.shape)}, amm's are {list(amm.shape)}")
    n = len(amm)
    idx = np.arange(n) if indices is None else np.asarray(indices)
    if not np.isfinite(ours).all():
        bad = idx[~np.isfinite(ours).all(axis=1)]
        raise Mismatch(f"{what}: non-finite logits for {len(bad)} sample(s), e.g. index {bad[0]}")
    delta = np.abs(ours - amm)
    scaled = delta / np.maximum(1.0, np.abs(amm))
    p_ours, p_amm = ours.argmax(axis=1), amm.argmax(axis=1)
    agree = int((p_ours == p_amm).sum())
    print(f"{what}: {n} samples, predictions agree {agree}/{n}, max |Δlogit| {delta.max():.3e}, "
          f"max |Δlogit|/max(1, |amm logit|) {scaled.max():.3e} (tol {tol:g}, {TOL_RULE})")
    problems = []
    if agree != n:
        bad = np.nonzero(p_ours != p_amm)[0]
        top2 = np.sort(amm[bad], axis=1)[:, -2:] if amm.shape[1] > 1 else np.zeros((len(bad), 2))
        examples = ", ".join(f"index {idx[i]}: {p_ours[i]} vs amm {p_amm[i]} (amm's top-2 gap {g[1] - g[0]:.2e})"
                             for i, g in list(zip(bad, top2))[:5])
        problems.append(f"{n - agree} prediction(s) differ: {examples}")
    if scaled.max() > tol:
        i, k = np.unravel_index(scaled.argmax(), scaled.shape)
        over = int((scaled > tol).any(axis=1).sum())
        problems.append(f"logits of {over} sample(s) beyond tol; worst: index {idx[i]}, class {k}: {ours[i, k]:.7g} vs amm "
                        f"{amm[i, k]:.7g}")
    if problems:
        raise Mismatch(f"{what}: " + "; ".join(problems))
    return delta.max()


# ---------------------------------------------------------------------------------------------
# The torch side


def _torch():
    try:
        import torch
        import safetensors.torch  # noqa: F401
    except ImportError as e:
        raise BadInput(f"this subcommand needs torch and safetensors ({e}); try /opt/ref-venv/bin/python")
    return torch


def load_model_py(path):
    """The module in `path` (an export's model.py)."""
    if not os.path.isfile(path):
        raise BadInput(f"no model.py at {path}")
    sys.dont_write_bytecode = True  # no __pycache__ beside the export's (or the repository's) model.py
    spec = importlib.util.spec_from_file_location(f"amm_export_model_{abs(hash(os.path.abspath(path)))}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(mod, config, path):
    """`mod.build(config)`, its errors (an unknown model, bad arguments) reported against `path`."""
    try:
        return mod.build(config)
    except (ValueError, KeyError, TypeError) as e:
        raise BadInput(f"{path}: {e}")


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: not JSON: {e}")


def load_export(d, model_py=None):
    """(net in eval mode with the export's weights loaded strictly, config, the torch module)."""
    torch = _torch()
    import safetensors.torch
    config = read_json(os.path.join(d, "config.json"))
    mod = load_model_py(model_py or os.path.join(d, "model.py"))
    net = build(mod, config, os.path.join(d, "config.json"))
    wpath = os.path.join(d, "weights.safetensors")
    if not os.path.isfile(wpath):
        raise BadInput(f"no weights.safetensors in {d}")
    state = safetensors.torch.load_file(wpath)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise Mismatch(f"{wpath} does not load strictly into model.py's {config.get('model')}: {e}")
    return net.float().eval(), config, torch


def run_net(net, inputs, torch, batch=256):
    """The logits of `net` (N, K) as float64 numpy, in chunks, without gradients."""
    outs = []
    with torch.no_grad():
        for i in range(0, len(inputs), batch):
            outs.append(net(torch.from_numpy(np.ascontiguousarray(inputs[i:i + batch]))).double().numpy())
    return np.concatenate(outs)


def check_input_shape(config, samples, path):
    shape = list(samples["inputs"].shape[1:])
    if "input_shape" in config and shape != list(config["input_shape"]):
        raise BadInput(f"{path}: inputs of shape {shape} per sample, config.json says {config['input_shape']}")


def cmd_torch(a):
    net, config, torch = load_export(a.dir, a.model_py)
    spath = os.path.join(a.dir, "samples.safetensors")
    s = read_samples(spath)
    check_input_shape(config, s, spath)
    compare_logits(run_net(net, s["inputs"], torch), s["logits"], a.tol, f"torch ({config['model']})", s["indices"])


def cmd_modify(a):
    net, config, torch = load_export(a.dir, a.model_py)
    import safetensors.torch
    spath = os.path.join(a.dir, "samples.safetensors")
    s = read_samples(spath)
    check_input_shape(config, s, spath)
    x, y = torch.from_numpy(s["inputs"]), torch.from_numpy(s["labels"].astype(np.int64))
    before = run_net(net, s["inputs"], torch)

    # What a PyTorch user would do: fine-tune on some data (here the samples) in train mode.
    torch.manual_seed(a.seed)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr)
    net.train()
    for _ in range(a.steps):
        pick = torch.randperm(len(x))[:a.batch]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x[pick]), y[pick])
        loss.backward()
        opt.step()
    net.eval()

    state = {k: v.detach().to(torch.float32).contiguous() for k, v in net.state_dict().items()}
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise Mismatch(f"modify: the fine-tuning made {', '.join(bad[:5])} non-finite (try a smaller --lr)")
    after = run_net(net, s["inputs"], torch)
    change = np.abs(after - before).max()
    changed = int((after.argmax(1) != before.argmax(1)).sum())
    print(f"modify ({config['model']}): {a.steps} SGD steps (lr {a.lr:g}, batch {min(a.batch, len(x))}, seed {a.seed}), "
          f"last loss {loss.item():.4f}; on the {len(x)} samples: max |Δlogit| {change:.3e}, {changed} prediction(s) changed")
    if not np.isfinite(after).all():
        raise Mismatch("modify: the modified model gives non-finite logits")
    if change < a.min_change:
        raise Mismatch(f"modify: the modification is immaterial (max |Δlogit| {change:.3e} < --min-change {a.min_change:g}, "
                       f"{changed} prediction(s) changed): a round trip through it would prove nothing")

    safetensors.torch.save_file(state, a.out, metadata={"format": "pt"})
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "prediction"] + [f"logit_{k}" for k in range(after.shape[1])])
        for i in range(len(after)):
            w.writerow([int(s["indices"][i]), int(s["labels"][i]), int(after[i].argmax())]
                       + [f"{v:.9g}" for v in after[i].astype(np.float32)])
    print(f"wrote {a.out} ({len(state)} tensors) and {a.csv} ({len(after)} rows)")


def cmd_names(a):
    torch = _torch()
    mod = load_model_py(a.model_py or REPO_MODEL_PY)
    config = read_json(a.config)
    net = build(mod, config, a.config)
    ours = {k: list(v.shape) for k, v in net.state_dict().items() if k != "input_mean"}
    ckpt = read_safetensors(a.checkpoint)
    amm = {k[len("model."):]: v for k, v in ckpt.items() if k.startswith("model.")}
    if not amm:
        raise BadInput(f"{a.checkpoint}: no model.* tensors (has {', '.join(sorted(ckpt)[:5])}...)")
    problems = []
    missing, extra = sorted(set(amm) - set(ours)), sorted(set(ours) - set(amm))
    if missing:
        problems.append(f"{len(missing)} amm tensor(s) missing from the torch model: {', '.join(missing[:8])}")
    if extra:
        problems.append(f"{len(extra)} torch tensor(s) not in the checkpoint: {', '.join(extra[:8])}")
    shapes = [f"{k}: torch {ours[k]} vs amm {list(amm[k].shape)}" for k in sorted(set(amm) & set(ours))
              if ours[k] != list(amm[k].shape)]
    if shapes:
        problems.append(f"{len(shapes)} shape(s) differ: " + "; ".join(shapes[:8]))
    dtypes = sorted({str(v.dtype) for v in amm.values()})
    print(f"names ({config['model']} {json.dumps(config.get('args', {}))}, input {config['input_shape']}): "
          f"checkpoint {len(amm)} tensors ({'/'.join(dtypes)}), torch state dict {len(ours)} + input_mean, "
          f"{sum(math.prod(s) for s in ours.values())} values")
    if problems:
        raise Mismatch("names: " + "; ".join(problems))
    print("names: every name and shape matches")
    # The torch model also loads the checkpoint strictly (with a zero input_mean) and runs.
    state = {k: torch.from_numpy(np.ascontiguousarray(v)).float() for k, v in amm.items()}
    state["input_mean"] = torch.zeros(config["input_shape"])
    net.load_state_dict(state, strict=True)
    out = net.eval()(torch.zeros(2, *config["input_shape"]))
    if tuple(out.shape) != (2, config["classes"]):
        raise Mismatch(f"names: output of shape {tuple(out.shape)} for 2 samples, expected (2, {config['classes']})")


# ---------------------------------------------------------------------------------------------
# ONNX (numpy + onnxruntime only)


def cmd_onnx(a):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise BadInput(f"the onnx subcommand needs onnxruntime ({e})")
    s = read_samples(a.samples)
    if not os.path.isfile(a.model):
        raise BadInput(f"no ONNX file at {a.model}")
    sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if inp.type != "tensor(float)":
        raise Mismatch(f"onnx: input {inp.name!r} has type {inp.type}, expected tensor(float)")
    x = s["inputs"]
    want = list(inp.shape)
    if len(want) != x.ndim or any(isinstance(d, int) and d != got for d, got in zip(want[1:], x.shape[1:])):
        raise Mismatch(f"onnx: input {inp.name!r} has shape {want}, the samples are {list(x.shape)}")
    fixed = want[0] if isinstance(want[0], int) and want[0] > 0 else None
    batch = fixed or 256
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        n = len(chunk)
        if fixed and n < fixed:  # a fixed batch size: pad the last chunk
            chunk = np.concatenate([chunk, np.zeros((fixed - n,) + chunk.shape[1:], np.float32)])
        outs.append(np.asarray(sess.run(None, {inp.name: np.ascontiguousarray(chunk)})[0])[:n])
    logits = np.concatenate(outs)
    out = sess.get_outputs()[0]
    compare_logits(logits, s["logits"], a.tol, f"onnx (input {inp.name!r} {want}, output {out.name!r})", s["indices"])


# ---------------------------------------------------------------------------------------------
# CSV (standard library + numpy)


def read_csv(path):
    """{index: (label or None, prediction, logits)} of a per-sample CSV, matched by header names."""
    try:
        f = open(path, newline="")
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}")
    with f:
        r = csv.reader(f)
        header = [h.strip() for h in next(r, [])]
        col = {h: i for i, h in enumerate(header)}
        for need in ("index", "prediction", "logit_0"):
            if need not in col:
                raise BadInput(f"{path}: no column {need!r} (header: {','.join(header)})")
        k = 0
        while f"logit_{k}" in col:
            k += 1
        logit_cols = [col[f"logit_{j}"] for j in range(k)]
        rows = {}
        for line, row in enumerate(r, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            try:
                i = int(row[col["index"]])
                label = int(row[col["label"]]) if "label" in col else None
                rows_val = (label, int(row[col["prediction"]]), [float(row[c]) for c in logit_cols])
            except (ValueError, IndexError) as e:
                raise BadInput(f"{path}:{line}: {e}")
            if i in rows:
                raise BadInput(f"{path}:{line}: index {i} appears twice")
            rows[i] = rows_val
    return rows, k


def cmd_compare_csv(a):
    amm, ka = read_csv(a.amm)
    ours, ko = read_csv(a.torch)
    if ka != ko:
        raise Mismatch(f"compare-csv: {a.amm} has {ka} logit columns, {a.torch} has {ko}")
    common = sorted(set(amm) & set(ours))
    print(f"compare-csv: {len(amm)} amm rows, {len(ours)} torch rows, {len(common)} common indices")
    if not common:
        raise Mismatch("compare-csv: no common index")
    labels = [i for i in common if None not in (amm[i][0], ours[i][0]) and amm[i][0] != ours[i][0]]
    if labels:
        raise Mismatch(f"compare-csv: {len(labels)} common index(es) with different labels (not the same samples?), "
                       f"e.g. index {labels[0]}: {amm[labels[0]][0]} vs {ours[labels[0]][0]}")
    preds = [i for i in common if amm[i][1] != ours[i][1]]
    try:
        compare_logits(np.array([ours[i][2] for i in common]), np.array([amm[i][2] for i in common]), a.tol, "compare-csv",
                       np.array(common))
    except Mismatch as e:
        if preds:
            raise Mismatch(f"{e}; the stored predictions differ at {len(preds)} index(es), e.g. {preds[:5]}")
        raise
    if preds:
        raise Mismatch(f"compare-csv: the stored predictions differ at {len(preds)} index(es), e.g. "
                       + ", ".join(f"{i}: amm {amm[i][1]} vs torch {ours[i][1]}" for i in preds[:5]))


# ---------------------------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(prog="check.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=f"Logits agree when {TOL_RULE} for every logit; predictions must be identical. "
                                       "Exit 0: agreement, 1: a mismatch, 2: unusable input.")
    sub = p.add_subparsers(dest="cmd", required=True)

    def tol(q):
        q.add_argument("--tol", type=float, default=1e-4, help=f"logit tolerance: {TOL_RULE} (default 1e-4)")

    def model_py(q, default):
        q.add_argument("--model-py", help=f"use this model.py instead of {default}")

    q = sub.add_parser("torch", help="the PyTorch rebuild of an export reproduces amm's logits")
    q.add_argument("dir", help="export directory")
    tol(q)
    model_py(q, "DIR/model.py")
    q.set_defaults(fn=cmd_torch)

    q = sub.add_parser("onnx", help="an ONNX file run by onnxruntime reproduces amm's logits (no torch needed)")
    q.add_argument("model", metavar="FILE.onnx")
    q.add_argument("samples", metavar="SAMPLES.safetensors")
    tol(q)
    q.set_defaults(fn=cmd_onnx)

    q = sub.add_parser("modify", help="fine-tune an export in PyTorch; save its weights and its outputs as CSV")
    q.add_argument("dir", help="export directory")
    q.add_argument("out", metavar="OUT.safetensors")
    q.add_argument("--csv", required=True, metavar="OUT.csv", help="index,label,prediction,logit_0,... of the modified model")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--steps", type=int, default=5, help="SGD steps (default 5)")
    q.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default 0.05)")
    q.add_argument("--batch", type=int, default=64, help="samples per step, drawn at random (default 64)")
    q.add_argument("--min-change", type=float, default=1e-2,
                   help="fail unless some logit on the samples moved at least this much (default 0.01, i.e. 100 times "
                        "the default --tol, so that a round trip that ignored the new weights fails)")
    model_py(q, "DIR/model.py")
    q.set_defaults(fn=cmd_modify)

    q = sub.add_parser("compare-csv", help="amm's per-sample CSV agrees with a modify CSV (joined on index)")
    q.add_argument("amm", metavar="AMM.csv")
    q.add_argument("torch", metavar="TORCH.csv")
    tol(q)
    q.set_defaults(fn=cmd_compare_csv)

    q = sub.add_parser("names", help="the torch model's state-dict names and shapes equal an amm checkpoint's model.* tensors")
    q.add_argument("checkpoint", metavar="CHECKPOINT.safetensors")
    q.add_argument("--config", required=True, metavar="CONFIG.json",
                   help="{model, args, input_shape, classes}, as an export's config.json")
    model_py(q, "amm-core/src/export/model.py")
    q.set_defaults(fn=cmd_names)

    a = p.parse_args(argv)
    if getattr(a, "tol", 0) < 0 or not math.isfinite(getattr(a, "tol", 0)):
        p.error("--tol must be a finite number >= 0")
    try:
        a.fn(a)
    except Mismatch as e:
        print(f"MISMATCH: {e}", file=sys.stderr)
        return 1
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
