"""The fidelity rule: whether a run's numbers may stand beside the paper's (`comparable`), and
which recipe params of a run differ from the paper's (`paper_deviations`). Tables 1 and 2, the
claims table, the ablation sweep and the report all ask it here; the paper's numbers come from
alexnet.paper, the recipe's defaults from alexnet.config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alexnet import paper
from alexnet.config import Params, execution_params, to_dict

RECIPE_SECTIONS = ("prepare", "model", "augment", "train")
PAPER_SOURCES = ("ilsvrc2012", "ilsvrc2010", "url")  # the official ILSVRC files (url: a mirror of them)
PIPELINE_CHECK = "pipeline check"  # what every table calls a number that is not comparable


@dataclass(frozen=True)
class Comparability:
    """Whether a run's numbers may stand beside the paper's, and if not, why."""

    ok: bool
    reason: str  # "" when ok, else e.g. "data.source tiny; 10 classes; 8 epochs < 90"


def comparable(source: str, classes: int | None, subset: bool | None, epochs: int | None) -> Comparability:
    """The one rule for "the paper's data": Tables 1 and 2 (alexnet.evaluation.results), the claims table
    (alexnet.claims.sweep records it per run) and the report's banner all ask it.

    Comparable: the official ILSVRC files (`source` in PAPER_SOURCES), all 1000 classes (the store's
    count), no `data.subset`, and a training budget (`train.epochs`) of at least the paper's ~90
    epochs (the plateau stop may end a run earlier, as the paper's did). `classes` or `subset`
    None: not recorded, so not comparable. `epochs` None: a net not trained here (torchvision's
    weights), whose training is not this rule's to judge.
    """
    why = []
    if source not in PAPER_SOURCES:
        why.append(f"data.source {source}")
    if classes is not None and classes != paper.CLASSES:
        why.append(f"{classes} classes")
    if subset:
        why.append("data.subset")
    paper_epochs = paper.EPOCHS
    if epochs is not None and epochs < paper_epochs:
        why.append(f"{epochs} epochs < {paper_epochs}")
    if not why:  # unknowns matter only when nothing known already decides
        why = [f"{name} not recorded" for name, v in (("classes", classes), ("subset", subset)) if v is None]
    return Comparability(not why, "; ".join(why))


def paper_deviations(params: Params) -> list[tuple[str, Any, Any]]:
    """(key, this run's value, the paper's) for every recipe param that differs from the paper.

    The dataclass defaults are the paper's settings (so the comparison is with `Params()`), but
    for the dataset, whose default is the tiny one: any source but the ILSVRC files deviates.
    `train.seeds` is left out (the number of nets is the table row, not the recipe), and so are
    the execution params (execution_params: SAME_BYTES and SAME_RECIPE fields).
    """
    out: list[tuple[str, Any, Any]] = []
    if params.data.source not in PAPER_SOURCES:
        out.append(("data.source", params.data.source, "ilsvrc2012 / ilsvrc2010"))
    reference = Params()
    for section in RECIPE_SECTIONS:
        ours, theirs = to_dict(getattr(params, section)), to_dict(getattr(reference, section))
        execution = execution_params(type(getattr(reference, section)))
        for key, value in ours.items():
            if key not in execution and value != theirs[key]:
                out.append((f"{section}.{key}", value, theirs[key]))
    return out
