"""Backbones (IResNet), the MixFairFace network, margin heads, and checkpoint loading."""
