"""The DDP trainer for the MixFair adapter: configuration, training step, loop, checkpoints."""
