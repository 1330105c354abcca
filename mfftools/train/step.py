"""What one training step computes: the network, its margin head, the loss of a batch.

`TrainingModule.forward` returns the loss, so that DistributedDataParallel sees the whole step
(trunk, the MixFair second pass through `mid`, head) as one forward.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mfftools.models.heads import MixFairHead, build_head, full_precision, mixfair_diff
from mfftools.models.iresnet import iresnet
from mfftools.models.mixfair import MixFairFaceNet


def build_network(model_config, num_classes):
    """(network, head) for a model config: the network it names and its margin head."""
    if model_config.type == "mixfair":
        network = MixFairFaceNet(model_config.arch)
    else:
        network = iresnet(model_config.arch)
    return network, add_head(network, model_config, num_classes)


def add_head(network, model_config, num_classes):
    """The configured margin head for `network`, sized to its embedding (`network.num_features`);
    a MixFair network holds it as `product`."""
    head = build_head(
        model_config.head, network.num_features, num_classes,
        s=model_config.s, m=model_config.m, cifp=model_config.cifp,
    )
    if model_config.type == "mixfair":
        network.product = head
    return head


def parameter_groups(module, lr, backbone_lr_scale):
    """The SGD parameter groups of a TrainingModule: the backbone (a MixFair network's trunk `encoder`, a plain
    IResNet whole) at lr x backbone_lr_scale, after the rest (MixFair's adapter `mid`, the
    margin head) at lr; frozen parameters left out. One group when the scale is 1, as before
    the scale existed, so that the checkpoints of that time resume."""
    trainable = [parameter for parameter in module.parameters() if parameter.requires_grad]
    if backbone_lr_scale == 1:
        return [{"params": trainable}]
    head_ids = {id(parameter) for parameter in module.head.parameters()}
    backbone = getattr(module.network, "encoder", module.network)
    backbone_ids = {id(parameter) for parameter in backbone.parameters() if id(parameter) not in head_ids}
    return [
        {"params": [parameter for parameter in trainable if id(parameter) not in backbone_ids]},
        {"params": [parameter for parameter in trainable if id(parameter) in backbone_ids],
         "lr": lr * backbone_lr_scale},
    ]


class TrainingModule(nn.Module):
    """Network + margin head; `forward(images, labels, permutation)` is the batch's mean loss.

    With the MixFair head (paper's training step): f = normalise(mid(trunk(x))); the trunk
    feature maps are mixed with those of `permutation` to give the identity-dependent margin;
    the loss is cross-entropy of the margin logits. Other heads use the network's embedding.
    """

    def __init__(self, network, head):
        super().__init__()
        self.network = network
        self.head = head
        self.mixfair = isinstance(head, MixFairHead)

    def forward(self, images, labels, permutation=None):
        if self.mixfair:
            trunk = self.network.trunk_features(images)
            features = F.normalize(full_precision(self.network.embed_features(trunk)))
            diff = mixfair_diff(self.network.embed_features, trunk, features, permutation)
            logits = self.head(features, labels, diff)
        else:
            logits = self.head(self.network(images), labels)
        return F.cross_entropy(logits, labels)


# The random streams of an epoch on one process, each seeded from (seed, epoch, rank, stream).
BATCH_STREAM = 0  # flips and MixFair partners (BatchRandomness)
DROPOUT_STREAM = 1  # torch's global generator, which dropout draws from
LOADER_STREAM = 2  # the data loader's own generator (its workers' base seed)


def stream_seed(seed, epoch, rank, stream):
    """A 63-bit seed for one random stream of one epoch on one process.

    Every epoch reseeds from (seed, epoch, rank), so a run resumed at an epoch boundary draws
    exactly the numbers an uninterrupted run draws.
    """
    state = np.random.SeedSequence([seed, epoch, rank, stream]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


class BatchRandomness:
    """The per-batch random choices made in the training process: flips and MixFair partners.

    Drawn on the CPU from a generator of their own, so they do not depend on the number of data
    workers or on the device.
    """

    def __init__(self, seed, epoch, rank, flip):
        self.generator = torch.Generator().manual_seed(stream_seed(seed, epoch, rank, BATCH_STREAM))
        self.flip = flip

    def apply_flip(self, images):
        """Each image mirrored left-right with probability 0.5 (when flipping is on)."""
        if not self.flip:
            return images
        mirrored = torch.rand(len(images), generator=self.generator) < 0.5
        mirrored = mirrored.to(images.device)[:, None, None, None]
        return torch.where(mirrored, images.flip(-1), images)

    def permutation(self, batch, device):
        return torch.randperm(batch, generator=self.generator).to(device)
