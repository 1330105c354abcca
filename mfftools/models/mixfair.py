"""The network of the MixFairFace paper's code: an IResNet trunk, its own embedding head `mid`,
and the margin head's class weights `product.weight`.

State_dict keys follow the original (`encoder.*`, `mid.0/2/3.*`, `product.weight`), so its saved
models load unchanged. As in the original, `encoder` is a complete IResNet whose own head
(`encoder.bn2`, `encoder.fc`, `encoder.features`) is kept only for key compatibility: the
embedding is `mid(flatten(layer4 output))`, without `encoder.bn2`. Those unused parameters are
frozen so that optimizers and DDP skip them.
"""
import torch
from torch import nn

from mfftools.models.iresnet import iresnet

EMBEDDING_DIM = 512


class MarginWeight(nn.Module):
    """Class centres of a margin head, [num_classes, in_features] (Xavier-uniform initialised)."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)


class MixFairFaceNet(nn.Module):
    """IResNet trunk -> `mid` (BN1d -> Dropout(0.4) -> Linear -> BN1d) -> 512-d embedding.

    `mid` takes the flattened layer4 output, whose length follows the trunk's width
    (512*7*7 for the insightface archs).

    `product` is the margin head whose `weight` is [num_classes, 512]: pass a head module (for
    training), or `num_classes` for a plain weight holder, or neither for an embedding-only model.
    The embedding forward never uses it. `init_weights=False` skips the encoder's
    initialisation, for a network whose weights are loaded next.
    """

    def __init__(self, arch="r34", num_classes=None, product=None, init_weights=True):
        super().__init__()
        self.arch = arch
        self.encoder = iresnet(arch, init_weights=init_weights)
        for unused in (self.encoder.bn2, self.encoder.fc, self.encoder.features):
            unused.requires_grad_(False)
        trunk_dim = self.encoder.trunk_dim
        self.num_features = EMBEDDING_DIM  # the embedding's dimension
        self.mid = nn.Sequential(
            nn.BatchNorm1d(trunk_dim),
            nn.Dropout(0.4),
            nn.Linear(trunk_dim, self.num_features),
            nn.BatchNorm1d(self.num_features),
        )
        if product is None and num_classes is not None:
            product = MarginWeight(self.num_features, num_classes)
        self.product = product

    def trunk_features(self, x):
        """Flattened layer4 feature map: [B, 3, 112, 112] -> [B, encoder.trunk_dim]."""
        return torch.flatten(self.encoder.trunk(x), 1)

    def embed_features(self, trunk_features):
        """Embedding of (possibly mixed) flattened feature maps: [B, encoder.trunk_dim] -> [B, 512]."""
        return self.mid(trunk_features)

    def forward(self, x):
        return self.embed_features(self.trunk_features(x))
