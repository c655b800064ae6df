"""alexnet.runtime.seeds: one recipe for every random stream of training, each a function of the
net's seed, the stream's name and its keys only; no two streams share words but the one pair
kept for the trained nets' bits (SHARED_WORDS)."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from alexnet.runtime import seeds


def _words(seed: int, name: str, keys: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(w) for w in seeds.sequence(seed, name, *keys).generate_state(4))


def test_streams_are_distinct_but_the_documented_pair():
    keyed = {"shuffle": [(e,) for e in range(12)], "augment": list(itertools.product(range(12), range(30))),
             "init": [(r,) for r in range(4)], "dropout": [(r,) for r in range(4)]}
    for seed in (0, 1, 2**40 + 3):
        seen: dict[tuple[int, ...], tuple[str, tuple[int, ...]]] = {}
        shared = set()
        for name, keys in keyed.items():
            for key in keys:
                words = _words(seed, name, key)
                if words in seen:
                    shared |= {seen[words], (name, key)}
                seen[words] = (name, key)
        assert shared == seeds.SHARED_WORDS


def test_the_recipe_is_numpys_seed_sequence_of_the_seed_and_the_streams_words():
    """Independently: the words a stream is named by, after the seed's two 32-bit halves."""
    seed = 2**33 + 5
    expected = np.random.SeedSequence([5, 2, 1, 4, 7]).generate_state(2)  # augment, epoch 4, batch 7
    gen = seeds.generator(seed, "augment", 4, 7)
    want = torch.Generator().manual_seed(int(expected[0]) << 31 ^ int(expected[1]))
    assert torch.equal(torch.randint(0, 1 << 30, (8,), generator=gen), torch.randint(0, 1 << 30, (8,), generator=want))
    assert seeds.stream_seed(seed, "dropout", 3) == int(np.random.SeedSequence([5, 2, 3, 2]).generate_state(1)[0])
    assert seeds.stream_seed(seed, "dropout", 3) != seeds.stream_seed(seed + 1, "dropout", 3)
