"""Margin heads for training: CosFace, ArcFace and the MixFair identity-dependent margin.

Each head holds one weight row per training identity and turns embeddings into scaled logits
for cross-entropy. Cosines are computed in at least float32, even under autocast: with s = 64 the logits
would lose most of their precision in half precision.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from mfftools.errors import MfftoolsError


def full_precision(tensor):
    """`tensor` in float32 when it is half precision (autocast), unchanged otherwise."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


class CosFaceHead(nn.Module):
    """Large margin cosine: logits = s * (cos - onehot * m)."""

    default_margin = 0.35

    def __init__(self, in_features, num_classes, s=64.0, m=None):
        super().__init__()
        self.in_features = in_features
        self.num_classes = num_classes
        self.s = float(s)
        self.m = float(self.default_margin if m is None else m)
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, features):
        """Cosine of every embedding with every class centre, [B, C] float32."""
        return F.normalize(full_precision(features)) @ F.normalize(full_precision(self.weight)).T

    def forward(self, features, labels):
        cosine = self.cosine(features)
        one_hot = F.one_hot(labels, self.num_classes).to(cosine.dtype)
        return self.s * (cosine - one_hot * self.m)

    def extra_repr(self):
        return f"in_features={self.in_features}, num_classes={self.num_classes}, s={self.s}, m={self.m}"


class ArcFaceHead(CosFaceHead):
    """Additive angular margin, insightface's form: the target logit is s * cos(theta + m).

    Where theta + m would pass pi (cos(theta) <= cos(pi - m)) the target logit falls back to
    s * (cos - m * sin(m)) so that it keeps decreasing in theta.
    """

    default_margin = 0.5

    def forward(self, features, labels):
        cosine = self.cosine(features)
        target = cosine.gather(1, labels[:, None])
        sine = torch.sqrt((1.0 - target * target).clamp(min=0.0))
        shifted = target * math.cos(self.m) - sine * math.sin(self.m)
        fallback = target - math.sin(math.pi - self.m) * self.m
        target_with_margin = torch.where(target > math.cos(math.pi - self.m), shifted, fallback)
        logits = cosine.scatter(1, labels[:, None], target_with_margin)
        return self.s * logits


def cifp_margin(cosine, labels, m):
    """The CIFP false-positive margin per sample, [B, 1].

    Among all B x (C - 1) negative cosines of the batch, take the B largest; for each sample, keep
    those of its own that are also below its positive cosine minus m, and average their squares
    (0 when it has none). The selection is a mask; gradients flow through the kept cosines.
    """
    batch, num_classes = cosine.shape
    if num_classes < 2:
        return cosine.new_zeros(batch, 1)
    is_positive = F.one_hot(labels, num_classes).bool()
    positive = cosine[is_positive].view(batch, 1)
    negative = cosine[~is_positive].view(batch, num_classes - 1)
    top = torch.topk(negative.detach().flatten(), k=batch).indices
    in_top = torch.zeros(negative.numel(), dtype=torch.bool, device=cosine.device)
    in_top[top] = True
    kept = in_top.view_as(negative) & (negative < (positive - m).detach())
    kept_count = kept.sum(dim=1, keepdim=True).clamp(min=1)
    return (negative.square() * kept).sum(dim=1, keepdim=True) / kept_count


class MixFairHead(CosFaceHead):
    """CosFace with MixFair's identity-dependent margin and, optionally, the CIFP margin.

    logits = s * (cos - onehot * (m + diff + cifp)); `diff` comes from `mixfair_diff`. As in the
    paper's code, neither `diff` nor `cifp` is detached: both are part of the loss's graph.
    """

    def __init__(self, in_features, num_classes, s=64.0, m=None, cifp=True):
        super().__init__(in_features, num_classes, s=s, m=m)
        self.use_cifp = bool(cifp)

    def forward(self, features, labels, diff):
        cosine = self.cosine(features)
        margin = self.m + full_precision(diff)
        if self.use_cifp:
            margin = margin + cifp_margin(cosine, labels, self.m)
        one_hot = F.one_hot(labels, self.num_classes).to(cosine.dtype)
        return self.s * (cosine - one_hot * margin)

    def extra_repr(self):
        return super().extra_repr() + f", cifp={self.use_cifp}"


def mixfair_diff(embed, trunk_features, normalized_features, permutation):
    """MixFair's identity-dependent margin, [B, 1].

    The trunk feature maps are mixed 0.5/0.5 with their permuted partners and embedded again:
    diff = (mix . f[perm])^2 - (mix . f)^2, where f are the normalised embeddings of the
    unmixed batch. A sample whose mix leans towards its partner gets a larger margin.

    embed: the embedding head (trunk features -> embedding), e.g. MixFairFaceNet.embed_features.
    """
    mixed = 0.5 * trunk_features + 0.5 * trunk_features[permutation]
    mixed_features = F.normalize(full_precision(embed(mixed)))
    partner = normalized_features[permutation]
    to_partner = (mixed_features * partner).sum(dim=-1, keepdim=True)
    to_self = (mixed_features * normalized_features).sum(dim=-1, keepdim=True)
    return to_partner.square() - to_self.square()


HEADS = {"cosface": CosFaceHead, "arcface": ArcFaceHead, "mixfair": MixFairHead}


def build_head(name, in_features, num_classes, s=64.0, m=None, cifp=True):
    """The head called `name` (cosface, arcface or mixfair); m=None takes the head's default."""
    if name not in HEADS:
        raise MfftoolsError(f"unknown head {name!r}: use one of {', '.join(HEADS)}")
    if name == "mixfair":
        return MixFairHead(in_features, num_classes, s=s, m=m, cifp=cifp)
    return HEADS[name](in_features, num_classes, s=s, m=m)
