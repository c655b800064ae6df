"""The embedded class table against an independent list: torchvision's ImageNet category names."""

from __future__ import annotations

import re

import pytest

from alexnet.data.sources.synsets import INTERNAL, INTERNAL_PARENT, SYNSETS, WORDS, parent_of, short_name


def test_table_shape():
    wnids = [w for w, _ in SYNSETS]
    assert len(wnids) == 100 == len(set(wnids)) and wnids == sorted(wnids)
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids + list(INTERNAL))
    assert WORDS["n01440764"] == "tench, Tinca tinca" and short_name(WORDS["n02119789"]) == "kit fox"
    assert set(INTERNAL_PARENT) | set(INTERNAL_PARENT.values()) <= set(INTERNAL)
    assert parent_of("n02099601") == "n02084071" and parent_of("n01531178") == "n01503061"  # retriever, goldfinch
    assert parent_of("n03063599") == "n00021939" and parent_of("n09472597") == "n00001740"  # mug, volcano


@pytest.mark.slow
def test_names_and_order_agree_with_torchvision():
    """torchvision lists the 1000 class names by label = sorted-wnid position. Each of our names must
    occur there exactly once, and at increasing positions, since our table is sorted by wnid too: a
    wnid paired with the wrong name would break the order (or the match)."""
    from torchvision.models import AlexNet_Weights

    categories = AlexNet_Weights.IMAGENET1K_V1.meta["categories"]
    positions = []
    for wnid, words in SYNSETS:
        hits = [i for i, c in enumerate(categories) if c == short_name(words)]
        assert len(hits) == 1, (wnid, words, hits)
        positions.append(hits[0])
    assert positions == sorted(positions)
    assert positions[0] == 0  # tench, n01440764, is label 0
