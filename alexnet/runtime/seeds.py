"""The seeds of the training's random streams, one recipe: a net's seed and the stream's name (with
its keys: epoch, batch, rank) give fixed words, numpy's SeedSequence mixes them, and the stream
draws from a generator seeded by the result. A stream depends on nothing else, so a resumed run
draws what an uninterrupted one would; no two streams have the same words but the pairs
SHARED_WORDS names.

Both trainers use it: the paper net's (alexnet.training.train; its loader and augmentation in
alexnet.data.input) and CIFAR-10's (alexnet.claims.cifar). The words are fixed per name: changing
one changes every trained net's bits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

# A stream's words after the seed, by name and keys.
WORDS: dict[str, Callable[..., tuple[int, ...]]] = {
    "shuffle": lambda epoch: (0, epoch),  # the training split's order in one epoch
    "augment": lambda epoch, batch: (1, epoch, batch),  # one batch's crops, flips and PCA lighting
    "init": lambda rank: (rank, 1),  # the initial weights (rank 0's, on every rank)
    "dropout": lambda rank: (rank, 2),  # one rank's dropout draws
}
# Two pairs of streams have the same words: init and dropout of rank 0 with shuffle of epochs 1
# and 2. Their generators differ (torch's global Mersenne twister for the weights and dropout, a
# torch generator seeded from two words for the order), but their seeds are related. Kept as they
# are: separating them changes every trained net's bits. tests/test_seeds.py allows no other.
SHARED_WORDS = {("init", (0,)), ("shuffle", (1,)), ("dropout", (0,)), ("shuffle", (2,))}


def sequence(seed: int, name: str, *keys: int) -> np.random.SeedSequence:
    """The SeedSequence of stream `name` with `keys` (WORDS) of the net with seed `seed`."""
    return np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, *WORDS[name](*keys)])


def stream_seed(seed: int, name: str, *keys: int) -> int:
    """One 32-bit seed for a stream (torch.manual_seed, random.seed)."""
    return int(sequence(seed, name, *keys).generate_state(1)[0])


def generator(seed: int, name: str, *keys: int) -> torch.Generator:
    """A CPU torch generator for a stream, seeded from two of its words (62 bits)."""
    state = sequence(seed, name, *keys).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))
