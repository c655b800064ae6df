"""Training: the loop with its checkpoints and determinism (train), the paper's optimizer and
schedules (optim), one rank of a torchrun launch (distributed)."""
