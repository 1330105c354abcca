"""IResNet backbones with exactly the state_dict keys and shapes of insightface's arcface_torch.

Published insightface `backbone.pth` files load unchanged. The network maps an aligned
112x112 face to a 512-d embedding: stem (3x3 conv, BN, PReLU), four stages of improved residual
blocks, each halving the resolution (112 -> 56 -> 28 -> 14 -> 7), then the head
BN2d -> flatten -> dropout -> fc (512*7*7 -> num_features) -> BN1d whose scale is frozen at 1.

`r10-mini` is not insightface's: one block per stage at a quarter of the width (16/32/64/128),
with the same module names, so that demos and tests can train a real IResNet on a CPU in minutes.
"""
import contextlib

import torch
from torch import nn

INSIGHTFACE_WIDTH = 64
# name -> (blocks per stage, width of the first stage); each later stage doubles the width.
ARCHS = {
    "r18": ((2, 2, 2, 2), INSIGHTFACE_WIDTH),
    "r34": ((3, 4, 6, 3), INSIGHTFACE_WIDTH),
    "r50": ((3, 4, 14, 3), INSIGHTFACE_WIDTH),
    "r100": ((3, 13, 30, 3), INSIGHTFACE_WIDTH),
    "r200": ((6, 26, 60, 6), INSIGHTFACE_WIDTH),
    "r10-mini": ((1, 1, 1, 1), 16),
}
FEATURE_MAP_SIZE = 7  # 112 / 2**4
BN_EPS = 1e-5


def _conv3x3(in_channels, out_channels, stride=1):
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3 (strided) -> BN, plus the (projected) input."""

    def __init__(self, in_channels, channels, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.conv1 = _conv3x3(in_channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.prelu = nn.PReLU(channels)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn3 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


def _make_stage(in_channels, channels, blocks):
    """A stage: the first block halves the resolution and projects the shortcut."""
    downsample = nn.Sequential(
        nn.Conv2d(in_channels, channels, 1, stride=2, bias=False),
        nn.BatchNorm2d(channels, eps=BN_EPS),
    )
    layers = [IBasicBlock(in_channels, channels, stride=2, downsample=downsample)]
    layers += [IBasicBlock(channels, channels) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class IResNet(nn.Module):
    """insightface's IResNet (arcface_torch `backbones/iresnet.py`), same parameters and buffers.

    `fp16=True` runs the trunk under CUDA autocast and the fc head in float32, as insightface's
    training does. With `fp16=False` the forward leaves the caller's autocast state alone, so an
    outer autocast (extraction's `amp`) applies to the whole network. `init_weights=False` skips
    insightface's initialisation, for a network whose weights are loaded next.
    """

    def __init__(self, layers, dropout=0.0, num_features=512, fp16=False, width=INSIGHTFACE_WIDTH,
                 init_weights=True):
        super().__init__()
        self.layers = tuple(layers)
        self.num_features = num_features
        self.fp16 = fp16
        stage_widths = [width * 2**stage for stage in range(4)]
        # length of the flattened layer4 output, [B, 8 * width, 7, 7]
        self.trunk_dim = stage_widths[-1] * FEATURE_MAP_SIZE * FEATURE_MAP_SIZE
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=BN_EPS)
        self.prelu = nn.PReLU(width)
        in_channels = width
        for index, (channels, blocks) in enumerate(zip(stage_widths, self.layers), start=1):
            self.add_module(f"layer{index}", _make_stage(in_channels, channels, blocks))
            in_channels = channels
        self.bn2 = nn.BatchNorm2d(stage_widths[-1], eps=BN_EPS)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        self.fc = nn.Linear(self.trunk_dim, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)
        self.features.weight.requires_grad = False  # the embedding BN's scale stays 1
        if init_weights:
            self._init_weights()

    def _init_weights(self):
        """insightface's initialisation."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0, 0.1)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.ones_(self.features.weight)

    def trunk(self, x):
        """Stem and the four stages: [B, 3, 112, 112] -> [B, 8 * width, 7, 7] (512 at insightface's)."""
        x = self.prelu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        # A disabled autocast context would switch off an outer one: enter it only when asked.
        mixed = torch.autocast("cuda") if self.fp16 and x.is_cuda else contextlib.nullcontext()
        with mixed:
            x = self.bn2(self.trunk(x))
            x = self.dropout(torch.flatten(x, 1))
        x = self.fc(x.float() if self.fp16 else x)
        return self.features(x)


def iresnet(arch, **kwargs):
    """IResNet by name, a key of ARCHS (keyword arguments go to `IResNet`)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown IResNet arch {arch!r}; choose one of {', '.join(ARCHS)}")
    layers, width = ARCHS[arch]
    return IResNet(layers, width=width, **kwargs)


def arch_from_layers(layers):
    """The arch name for a tuple of blocks per stage, or None when it is not a known one.

    No two archs have the same blocks per stage, so the blocks alone name the arch.
    """
    for arch, (known, _) in ARCHS.items():
        if tuple(layers) == known:
            return arch
    return None
