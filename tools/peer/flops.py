"""FLOPs of one cross-entropy step (forward + backward, batch 100) of each built-in CNN, counted by
torch.utils.flop_counter on the peer's models (matmuls and convolutions only), for the GFLOP/s
column of docs/PERFORMANCE.md.  Usage: python flops.py [MODEL...]"""
import sys
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
import cnn_peer_extra  # noqa: F401  (registers nin)
import cnn_peer

for name in sys.argv[1:] or ["lenet", "liunet", "convnet", "nin", "resnet20"]:
    f, c, hw = cnn_peer.MODELS[name]
    model = f(c, hw)
    x = torch.randn(100, c, hw, hw)
    y = torch.randint(0, 10, (100,))
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x), y).backward()
    print(f"{name} {fc.get_total_flops() / 1e9:.2f} GFLOP")
