"""amm's built-in architectures as plain PyTorch modules (needs only torch).

This file is written by `amm export` next to the weights it exports. Usage, from the export
directory:

    import json, model, safetensors.torch
    net = model.build(json.load(open("config.json"))).eval()
    net.load_state_dict(safetensors.torch.load_file("weights.safetensors"), strict=True)
    logits = net(x)  # x: raw inputs (N, *input_shape), float32; returns (N, classes)

Each architecture class mirrors one file of amm-core/src/models/ and names its parameters
exactly as amm does (`conv1.weight`, `stage2.block1.shortcut.norm.running_mean`, ...), so that
the state dict loads with `strict=True`. The one addition is the buffer `input_mean` (shape
`input_shape`, from their common base `AmmModel`): the per-feature training mean that amm
subtracted from its inputs (zeros if it subtracted none). `forward(x)` takes raw inputs and
returns `logits(x - input_mean)`, where `logits` is amm's network itself.

Semantics shared with amm (amm-core/src/layers/):
- pooling uses kernel = stride = k; a border that fills no whole window is dropped;
- GroupNorm and batch norm use eps 1e-5; batch norm is amm's "frozen" batch norm
  (`FrozenBatchNorm2d`): running statistics in eval mode, batch statistics (and a momentum-0.1
  update of the running ones) in train mode;
- dropout is the identity in eval mode (in train mode its masks differ from amm's);
- flatten is C-major (`x.flatten(1)`), linear weights are (out, in), convolution weights
  (out, in, kh, kw).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["build", "MODELS", "AmmModel", "FrozenBatchNorm2d", "LinearModel", "MLP", "LeNet", "LiuNet", "ConvNet", "NiN",
           "ResNet", "DenseNet"]


class FrozenBatchNorm2d(nn.Module):
    """amm's `BatchNorm2d` (layers/norm.rs): parameters `weight`, `bias` and buffers
    `running_mean`, `running_var`, without torch's `num_batches_tracked`. Eval mode:
    `(x - running_mean) * weight / sqrt(running_var + eps) + bias`. Train mode: the batch's
    statistics (biased variance), and the running ones updated with momentum 0.1 (unbiased
    variance), as amm's `Mode::Train`."""

    def __init__(self, channels, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self):
        return f"{self.weight.numel()}, eps={self.eps}, momentum={self.momentum}"


class AmmModel(nn.Module):
    """The common part of every architecture: the buffer `input_mean` (shape `input_shape`) and
    `forward(x) = self.logits(x - input_mean)` for raw inputs `x` of shape (N, *input_shape).
    `logits` is amm's own network, on mean-subtracted inputs."""

    def __init__(self, input_shape):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.register_buffer("input_mean", torch.zeros(self.input_shape))

    def forward(self, x):
        # (Skipped while tracing, e.g. by torch.onnx.export, where the shape is symbolic.)
        if not torch.jit.is_tracing() and tuple(x.shape[1:]) != self.input_shape:
            shape = ", ".join(map(str, self.input_shape))
            raise ValueError(f"{type(self).__name__}: expected inputs of shape (N, {shape}), got {tuple(x.shape)}")
        return self.logits(x - self.input_mean)

    def logits(self, x):
        raise NotImplementedError


def _chw(model, input_shape, minimum):
    """`(C, H, W)` of an image input shape, checked as amm checks it."""
    if len(input_shape) != 3:
        raise ValueError(f"{model} needs image inputs [C, H, W] (got {list(input_shape)})")
    c, h, w = input_shape
    if h < minimum or w < minimum:
        raise ValueError(f"{model} needs inputs of at least {minimum}x{minimum} (got {h}x{w})")
    return c, h, w


class LinearModel(AmmModel):
    """`linear` (models/linear.rs): flatten, then one fully connected layer `fc`."""

    def __init__(self, input_shape, classes):
        super().__init__(input_shape)
        self.fc = nn.Linear(math.prod(input_shape), classes)

    def logits(self, x):
        return self.fc(x.flatten(1))


class MLP(AmmModel):
    """`mlp` (models/mlp.rs): flatten, then `fc1 .. fcK` each followed by the activation (relu or
    tanh) and, if dropout > 0, dropout; then the output layer `fc{K+1}`."""

    def __init__(self, input_shape, classes, widths=(800, 800), act="relu", dropout=0.0):
        super().__init__(input_shape)
        if act not in ("relu", "tanh"):
            raise ValueError(f"mlp: act must be relu or tanh (got {act!r})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"mlp: dropout must be in [0, 1) (got {dropout})")
        self.act = torch.relu if act == "relu" else torch.tanh
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.hidden = len(widths)
        d = math.prod(input_shape)
        for i, w in enumerate(list(widths) + [classes]):
            setattr(self, f"fc{i + 1}", nn.Linear(d, w))
            d = w

    def logits(self, x):
        x = x.flatten(1)
        for i in range(self.hidden):
            x = self.act(getattr(self, f"fc{i + 1}")(x))
            if self.dropout is not None:
                x = self.dropout(x)
        return getattr(self, f"fc{self.hidden + 1}")(x)


class LeNet(AmmModel):
    """`lenet` (models/lenet.rs): conv 20 5x5 -> maxpool 2 -> conv 50 5x5 -> maxpool 2 -> fc 500
    -> ReLU -> fc. No ReLU after the convolutions, no padding."""

    def __init__(self, input_shape, classes):
        super().__init__(input_shape)
        c, h, w = _chw("lenet", input_shape, 16)
        out = lambda s: ((s - 4) // 2 - 4) // 2
        self.conv1 = nn.Conv2d(c, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(50 * out(h) * out(w), 500)
        self.fc2 = nn.Linear(500, classes)

    def logits(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class LiuNet(AmmModel):
    """`liunet`, `liunet64`, `liunet96` (models/liunet.rs): conv 3x3 pad 1 (`conv{i}`) ->
    GroupNorm with channels/4 groups (`gn{i}`) -> ReLU, first at `widths[0]`, then three stages of
    `convs` such layers at `widths[1..4]`, each stage followed by maxpool 2; fc (`fc1`) -> ReLU ->
    fc (`fc2`). Layers are numbered through the network: `liunet` (MNIST) has conv1..conv10 at 64
    channels (16 groups) and fc 256."""

    SHAPES = {
        "liunet": ((64, 64, 64, 64), 3, 256),
        "liunet64": ((64, 64, 96, 128), 4, 256),
        "liunet96": ((96, 96, 192, 384), 4, 512),
    }

    def __init__(self, input_shape, classes, name="liunet"):
        super().__init__(input_shape)
        c, h, w = _chw(name, input_shape, 8)
        widths, convs, fc = self.SHAPES[name]
        self.layers, self.pool_after = 1 + 3 * convs, {1 + convs * s for s in (1, 2, 3)}
        outs = [widths[0]] + [width for width in widths[1:] for _ in range(convs)]
        in_c = c
        for i, out_c in enumerate(outs, 1):
            setattr(self, f"conv{i}", nn.Conv2d(in_c, out_c, 3, padding=1))
            setattr(self, f"gn{i}", nn.GroupNorm(out_c // 4, out_c, eps=1e-5))
            in_c = out_c
        self.fc1 = nn.Linear(in_c * (h // 8) * (w // 8), fc)
        self.fc2 = nn.Linear(fc, classes)

    def logits(self, x):
        for i in range(1, self.layers + 1):
            x = torch.relu(getattr(self, f"gn{i}")(getattr(self, f"conv{i}")(x)))
            if i in self.pool_after:
                x = F.max_pool2d(x, 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class ConvNet(AmmModel):
    """`convnet` (models/convnet.rs): three times conv 5x5 pad 2 -> maxpool 2 -> ReLU with 32, 32
    and 64 channels (`conv1..conv3`); fc 64 (`fc1`) -> ReLU -> fc (`fc2`)."""

    def __init__(self, input_shape, classes):
        super().__init__(input_shape)
        c, h, w = _chw("convnet", input_shape, 8)
        self.conv1 = nn.Conv2d(c, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 32, 5, padding=2)
        self.conv3 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * (h // 8) * (w // 8), 64)
        self.fc2 = nn.Linear(64, classes)

    def logits(self, x):
        for conv in (self.conv1, self.conv2, self.conv3):
            x = torch.relu(F.max_pool2d(conv(x), 2))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class NiN(AmmModel):
    """`nin` (models/nin.rs): three blocks of three convolutions `conv{b}_{i}` (padding k // 2),
    each followed by ReLU (the last one included); block 1 ends with maxpool 2 and dropout 0.5,
    block 2 with avgpool 2 and dropout 0.5, block 3 (whose last conv has `classes` channels)
    with a global average pool."""

    BLOCKS = (((192, 5), (160, 1), (96, 1)), ((192, 5), (192, 1), (192, 1)), ((192, 3), (192, 1), (None, 1)))

    def __init__(self, input_shape, classes):
        super().__init__(input_shape)
        c, _, _ = _chw("nin", input_shape, 4)
        in_c = c
        for b, block in enumerate(self.BLOCKS):
            for i, (out_c, k) in enumerate(block):
                out_c = classes if out_c is None else out_c
                setattr(self, f"conv{b + 1}_{i + 1}", nn.Conv2d(in_c, out_c, k, padding=k // 2))
                in_c = out_c
        self.dropout = nn.Dropout(0.5)

    def logits(self, x):
        for b in range(3):
            for i in range(3):
                x = torch.relu(getattr(self, f"conv{b + 1}_{i + 1}")(x))
            if b == 0:
                x = self.dropout(F.max_pool2d(x, 2))
            elif b == 1:
                x = self.dropout(F.avg_pool2d(x, 2))
        return x.mean(dim=(2, 3))


def _norm(kind, channels):
    """amm's `ResNorm`: GroupNorm with channels/4 groups, or frozen batch norm."""
    return nn.GroupNorm(channels // 4, channels, eps=1e-5) if kind == "group" else FrozenBatchNorm2d(channels)


class Shortcut(nn.Module):
    """A ResNet projection shortcut: 1x1 conv with stride, no bias (`conv`) -> norm (`norm`)."""

    def __init__(self, in_c, out_c, stride, norm):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, 1, stride=stride, bias=False)
        self.norm = _norm(norm, out_c)

    def forward(self, x):
        return self.norm(self.conv(x))


class BasicBlock(nn.Module):
    """`basic_block` of models/resnet.rs: `norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x)`,
    convolutions 3x3 pad 1 without bias, conv1 with the block's stride; the shortcut is a
    projection where the shape changes, else the identity. (The ReLU after the sum is applied by
    the stage, as amm's separate `Activation`.)"""

    def __init__(self, in_c, out_c, stride, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, out_c, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(norm, out_c)
        self.conv2 = nn.Conv2d(out_c, out_c, 3, padding=1, bias=False)
        self.norm2 = _norm(norm, out_c)
        self.shortcut = Shortcut(in_c, out_c, stride, norm) if stride != 1 or in_c != out_c else None

    def forward(self, x):
        y = self.norm2(self.conv2(torch.relu(self.norm1(self.conv1(x)))))
        return y + (x if self.shortcut is None else self.shortcut(x))


class Bottleneck(nn.Module):
    """`bottleneck_block` of models/resnet.rs: `norm3(conv3(relu(norm2(conv2(relu(norm1(conv1(x))))))))
    + shortcut(x)`: conv1 1x1 to `planes`, conv2 3x3 pad 1 with the block's stride, conv3 1x1 to
    4 * planes, all without bias; the shortcut is a projection where the shape changes."""

    def __init__(self, in_c, planes, stride, norm):
        super().__init__()
        out_c = 4 * planes
        self.conv1 = nn.Conv2d(in_c, planes, 1, bias=False)
        self.norm1 = _norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.norm2 = _norm(norm, planes)
        self.conv3 = nn.Conv2d(planes, out_c, 1, bias=False)
        self.norm3 = _norm(norm, out_c)
        self.shortcut = Shortcut(in_c, out_c, stride, norm) if stride != 1 or in_c != out_c else None

    def forward(self, x):
        y = torch.relu(self.norm1(self.conv1(x)))
        y = torch.relu(self.norm2(self.conv2(y)))
        y = self.norm3(self.conv3(y))
        return y + (x if self.shortcut is None else self.shortcut(x))


class Stage(nn.Module):
    """One ResNet stage: blocks `block1 .. blockN`, each followed by a ReLU."""

    def __init__(self, blocks):
        super().__init__()
        self.n = len(blocks)
        for b, block in enumerate(blocks):
            setattr(self, f"block{b + 1}", block)

    def forward(self, x):
        for b in range(self.n):
            x = torch.relu(getattr(self, f"block{b + 1}")(x))
        return x


def resnet_plan(depth, block="auto"):
    """(block, blocks a stage) as amm's `resnet_plan`: `auto` takes basic blocks (depth 6n+2)
    below 44 and bottleneck blocks (depth 9n+2) from 44 up."""
    kind = block if block != "auto" else ("bottleneck" if depth >= 44 else "basic")
    if kind not in ("basic", "bottleneck"):
        raise ValueError(f"resnet: block must be auto, basic or bottleneck (got {block!r})")
    per_stage = 6 if kind == "basic" else 9
    if depth <= 2 or (depth - 2) % per_stage != 0:
        rule = "6n+2 below 44 or 9n+2 from 44 up" if block == "auto" else f"{'6n+2' if kind == 'basic' else '9n+2'}"
        raise ValueError(f"resnet depth must be {rule}, got {depth}")
    return kind, (depth - 2) // per_stage


class ResNet(AmmModel):
    """`resnet` / `resnet20` / `resnet56` (models/resnet.rs): CIFAR ResNet: conv 3x3 16 without
    bias (`conv1`) -> norm (`norm1`) -> ReLU; stages `stage1..stage3` of n blocks at widths 16,
    32 and 64 (the first block of stages 2 and 3 with stride 2); global average pool; `fc`.
    `block`: basic blocks (depth 6n+2), bottleneck blocks with 4x wider outputs (depth 9n+2), or
    "auto" (basic below depth 44, bottleneck from 44 up). `norm`: "group" (GroupNorm,
    channels/4 groups) or "frozen_bn" (FrozenBatchNorm2d)."""

    def __init__(self, input_shape, classes, depth=20, norm="group", block="auto"):
        super().__init__(input_shape)
        norm = {"gn": "group", "bn": "frozen_bn"}.get(norm, norm)
        if norm not in ("group", "frozen_bn"):
            raise ValueError(f"resnet: norm must be group or frozen_bn (got {norm!r})")
        c, _, _ = _chw("resnet", input_shape, 1)
        kind, n = resnet_plan(depth, block)
        _chw("resnet", input_shape, 4)
        self.conv1 = nn.Conv2d(c, 16, 3, padding=1, bias=False)
        self.norm1 = _norm(norm, 16)
        in_c = 16
        for s, planes in enumerate((16, 32, 64)):
            blocks = []
            for b in range(n):
                stride = 2 if s > 0 and b == 0 else 1
                if kind == "basic":
                    blocks.append(BasicBlock(in_c, planes, stride, norm))
                    in_c = planes
                else:
                    blocks.append(Bottleneck(in_c, planes, stride, norm))
                    in_c = 4 * planes
            setattr(self, f"stage{s + 1}", Stage(blocks))
        self.fc = nn.Linear(in_c, classes)

    def logits(self, x):
        x = torch.relu(self.norm1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(x.mean(dim=(2, 3)))


class DenseLayer(nn.Module):
    """A dense layer of models/densenet.rs: `cat([x, conv(relu(norm(x)))], 1)`, conv 3x3 pad 1 to
    `growth` channels without bias."""

    def __init__(self, in_c, growth, norm):
        super().__init__()
        self.norm = _norm(norm, in_c)
        self.conv = nn.Conv2d(in_c, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(torch.relu(self.norm(x)))], 1)


class Transition(nn.Module):
    """A DenseNet transition: norm -> ReLU -> conv 1x1 (same channels, no bias) -> avgpool 2."""

    def __init__(self, channels, norm):
        super().__init__()
        self.norm = _norm(norm, channels)
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(torch.relu(self.norm(x))), 2)


class DenseBlock(nn.Module):
    """Dense layers `layer1 .. layerL` in a row."""

    def __init__(self, layers):
        super().__init__()
        self.n = len(layers)
        for i, layer in enumerate(layers):
            setattr(self, f"layer{i + 1}", layer)

    def forward(self, x):
        for i in range(self.n):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


class DenseNet(AmmModel):
    """`densenet` / `densenet40` (models/densenet.rs): conv 3x3 16 without bias (`conv1`); dense
    blocks `block1..block3` of (depth - 4) / 3 layers each, transitions `trans1`, `trans2` between
    them; norm (`final_norm`) -> ReLU -> global average pool -> `fc`. No bottleneck, no
    compression. `norm` as for ResNet (group norm needs a growth that is a multiple of 4)."""

    def __init__(self, input_shape, classes, depth=40, growth=12, norm="group"):
        super().__init__(input_shape)
        norm = {"gn": "group", "bn": "frozen_bn"}.get(norm, norm)
        if norm not in ("group", "frozen_bn"):
            raise ValueError(f"densenet: norm must be group or frozen_bn (got {norm!r})")
        c, _, _ = _chw("densenet", input_shape, 1)
        if depth < 7 or (depth - 4) % 3 != 0:
            raise ValueError(f"densenet depth must be 3L+4 (L >= 1 layers a dense block), got {depth}")
        if growth < 1 or (norm == "group" and growth % 4 != 0):
            raise ValueError(f"densenet: growth {growth} (norm=group needs a multiple of 4)")
        _chw("densenet", input_shape, 4)
        layers = (depth - 4) // 3
        self.conv1 = nn.Conv2d(c, 16, 3, padding=1, bias=False)
        ch = 16
        for b in range(1, 4):
            block = []
            for _ in range(layers):
                block.append(DenseLayer(ch, growth, norm))
                ch += growth
            setattr(self, f"block{b}", DenseBlock(block))
            if b < 3:
                setattr(self, f"trans{b}", Transition(ch, norm))
        self.final_norm = _norm(norm, ch)
        self.fc = nn.Linear(ch, classes)

    def logits(self, x):
        x = self.trans1(self.block1(self.conv1(x)))
        x = self.trans2(self.block2(x))
        x = torch.relu(self.final_norm(self.block3(x)))
        return self.fc(x.mean(dim=(2, 3)))


def _args(model, args, defaults):
    """`args` with `defaults` filled in; unknown names are an error."""
    unknown = sorted(set(args) - set(defaults))
    if unknown:
        raise ValueError(f"{model}: unknown argument(s) {unknown} (it takes {sorted(defaults) or 'none'})")
    return {**defaults, **args}


def _mlp(shape, classes, a):
    a = _args("mlp", a, {"widths": [800, 800], "act": "relu", "dropout": 0.0})
    return MLP(shape, classes, [int(w) for w in a["widths"]], a["act"], float(a["dropout"]))


def _resnet(shape, classes, a):
    a = _args("resnet", a, {"depth": 20, "norm": "group", "block": "auto"})
    return ResNet(shape, classes, int(a["depth"]), a["norm"], a["block"])


def _resnet_alias(name, depth):
    def make(shape, classes, a):
        a = _args(name, a, {"norm": "group"})
        return ResNet(shape, classes, depth, a["norm"])
    return make


def _densenet(shape, classes, a):
    a = _args("densenet", a, {"depth": 40, "growth": 12, "norm": "group"})
    return DenseNet(shape, classes, int(a["depth"]), int(a["growth"]), a["norm"])


def _densenet40(shape, classes, a):
    a = _args("densenet40", a, {"norm": "group"})
    return DenseNet(shape, classes, 40, 12, a["norm"])


def _liunet(name):
    def make(shape, classes, a):
        _args(name, a, {})
        return LiuNet(shape, classes, name)
    return make


def _plain(cls, name):
    def make(shape, classes, a):
        _args(name, a, {})
        return cls(shape, classes)
    return make


# The registry's model names -> (input_shape, classes, args) -> nn.Module.
MODELS = {
    "linear": _plain(LinearModel, "linear"),
    "mlp": _mlp,
    "lenet": _plain(LeNet, "lenet"),
    "liunet": _liunet("liunet"),
    "liunet64": _liunet("liunet64"),
    "liunet96": _liunet("liunet96"),
    "convnet": _plain(ConvNet, "convnet"),
    "nin": _plain(NiN, "nin"),
    "resnet20": _resnet_alias("resnet20", 20),
    "resnet56": _resnet_alias("resnet56", 56),
    "resnet": _resnet,
    "densenet40": _densenet40,
    "densenet": _densenet,
}


def build(config):
    """The model described by an export's config.json (a dict with `model`, `args`,
    `input_shape` and `classes`), with freshly initialised weights and `input_mean` zeros:
    load `weights.safetensors` into it."""
    name = config["model"]
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: this model.py supports {', '.join(sorted(MODELS))}")
    shape = [int(s) for s in config["input_shape"]]
    return MODELS[name](shape, int(config["classes"]), dict(config.get("args") or {}))
