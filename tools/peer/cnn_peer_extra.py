"""The PyTorch CNN peer (../shared/bench/peer-cnn/cnn_peer.py) with the built-in CNNs it lacks.

Adds `nin` as amm builds it (amm-core/src/models/nin.rs: both pools with kernel = stride = 2,
dropout 0.5, a ReLU after every convolution, global average pool) and runs the peer's own
harness, so the step, the attack and the timing are the peer's.
Usage: python cnn_peer_extra.py MODEL [--steps N] [--threads T] [--only ce|amm]
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
    a = p.parse_args()
    cnn_peer.run(a.model, a.steps, a.threads, a.only)
