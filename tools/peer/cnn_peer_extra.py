"""The PyTorch CNN peer (../shared/bench/peer-cnn/cnn_peer.py) with the built-in CNNs it lacks.

Adds `nin` as amm builds it (amm-core/src/models/nin.rs: both pools with kernel = stride = 2,
dropout 0.5, a ReLU after every convolution, global average pool) and runs the peer's own
harness, so the step, the attack and the timing are the peer's.

`--batch B` runs that harness at batch B instead of its fixed 100 (its random batch is drawn
with the batch size replaced), for steps whose batch of 100 does not fit this machine: nin's AMM
step was killed for memory at 24.4 GB of 24 GiB.
Usage: python cnn_peer_extra.py MODEL [--steps N] [--threads T] [--only ce|amm] [--batch B]
"""
import os
import sys

import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "bench", "peer-cnn"))
import cnn_peer  # noqa: E402


def nin(c=3, hw=32, k=10):
    blocks = [[(192, 5), (160, 1), (96, 1)], [(192, 5), (192, 1), (192, 1)], [(192, 3), (192, 1), (k, 1)]]
    layers, ic = [], c
    for b, block in enumerate(blocks):
        for oc, ks in block:
            layers += [nn.Conv2d(ic, oc, ks, padding=ks // 2), nn.ReLU()]
            ic = oc
        layers.append([nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1)][b])
        if b < 2:
            layers.append(nn.Dropout(0.5))
    return nn.Sequential(*layers, nn.Flatten())


cnn_peer.MODELS["nin"] = (nin, 3, 32)

if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("model", choices=sorted(cnn_peer.MODELS))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", choices=["ce", "amm"])
    p.add_argument("--batch", type=int, default=100)
    a = p.parse_args()
    if a.batch < 1:
        p.error(f"--batch must be at least 1, got {a.batch}")
    if a.batch != 100:
        import types

        import torch

        def batched(f):
            # The harness draws `torch.randn(100, ...)` and `torch.randint(0, 10, (100,))`.
            def g(*args, **kw):
                args = [a.batch if v == 100 else v for v in args]
                args = [(a.batch,) if v == (100,) else v for v in args]
                return f(*args, **kw)

            return g

        shim = types.SimpleNamespace(**{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
        shim.randn, shim.randint = batched(torch.randn), batched(torch.randint)
        cnn_peer.torch = shim
    cnn_peer.run(a.model, a.steps, a.threads, a.only)
