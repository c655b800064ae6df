"""The paper's Tables 1 and 2 beside the reproduced numbers (stage `results`).

Owns reports/tables/table1.{md,csv,tex} (ILSVRC-2010 test) and table2.{md,csv,tex} (ILSVRC-2012).
The paper's numbers come from `alexnet.paper`; ours from metrics/evaluate.json. Rules:

- Our numbers use the paper's test protocol, ten crops with softmax averaging (Section 4.1).
- Our single net (the first seed) fills the paper's single-CNN row ("CNN" in Table 1, "1 CNN" in
  Table 2); our ensemble of N >= 2 nets fills "5 CNNs", and the row says N.
- A number lands in the table of the data it was measured on: ILSVRC-2010 test -> Table 1, an
  ILSVRC-2012-layout validation split -> Table 2. The tiny dataset, image folders, subsets and
  short runs also go to Table 2 but are marked "not comparable", by alexnet.fidelity.comparable (the
  rule the claims table uses too).
- Anything the pipeline did not measure reads "not run", with the reason. Nothing is filled in:
  not the baselines, not the pre-trained starred rows, not ILSVRC-2012 test (labels withheld;
  the paper's val/test gap of <= 0.1% is no licence to copy one into the other).
- Difference = ours - paper, in percentage points (positive: our error is higher).
- The status column says what a number of ours is (`status`): "reproduced" only for the paper's
  net evaluated on the paper's data (fidelity.comparable); otherwise a "pipeline check (why)",
  never a reproduction; torchvision's weights or architecture are "measured", not the paper's net.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from alexnet import paper
from alexnet.config import Params
from alexnet.errors import PipelineError
from alexnet.evaluation.predictions import metric_key, read_evaluation
from alexnet.fidelity import PIPELINE_CHECK, comparable
from alexnet.fileio import atomic_dir
from alexnet.tables import latex_table, titled_table

SCHEME = "ten_crop"  # the paper's protocol; centre-crop numbers stay in metrics/evaluate.json
NOT_RUN = "not run"
DATASET_NAMES = {"ilsvrc2012": "ILSVRC-2012", "ilsvrc2010": "ILSVRC-2010", "tiny": "tiny dataset",
                 "imagefolder": "image-folder dataset", "url": "ILSVRC-2012"}


@dataclass(frozen=True)
class EvaluationSource:
    """Where the reproduced numbers come from."""

    table: int  # 1 or 2: which of the paper's tables the evaluation split corresponds to
    dataset: str  # e.g. "ILSVRC-2012", "tiny dataset"
    split: str
    images: int
    classes: int | None
    comparable: bool  # alexnet.fidelity.comparable: the paper's data and training budget
    reason: str  # why not comparable ("" when it is)
    nets: int
    members: tuple[str, ...]
    epochs: tuple[Any, ...]
    model: str  # "paper", "torchvision" (arch trained here) or "torchvision weights <file>"

    def describe(self, nets: int) -> str:
        """One line: dataset, split, crops, nets, epochs, and whether it compares with the paper."""
        who = list(self.members[:nets])
        eps = sorted({e for e in self.epochs[:nets] if e is not None})
        where = self.split if not self.comparable else f"{self.dataset} {self.split}"
        parts = [f"{where}, {self.images:,} images"
                 + (f", {self.classes} classes" if self.classes else ""),
                 "10 crops (softmax averaged)",
                 f"{nets} net{'s' if nets > 1 else ''}" + (f" ({', '.join(who)})" if who else ""),
                 ("epochs " + "/".join(str(e) for e in eps)) if eps else "epochs unknown"]
        if self.model != "paper":
            parts.append(self.model)
        text = "; ".join(parts)
        if not self.comparable:
            text = f"{self.dataset}, not comparable ({self.reason}): " + text
        return text


def evaluation_source(evaluation: dict, source: str, classes: int | None, subset: bool | None,
               budget: int | None) -> EvaluationSource:
    """What metrics/evaluate.json (and the params: the dataset's source, data.subset, the training
    budget train.epochs) say about the evaluated numbers."""
    for key in ("split", "images", "nets", "top1_error", "ensemble_top1_error"):
        if key not in evaluation:
            raise PipelineError(f"the evaluation metrics lack {key!r}: rerun the evaluate stage")
    split = evaluation["split"]
    source = evaluation.get("dataset") or source
    # Only ILSVRC-2010 has a labelled test split (paper, Section 6); everything else is a val split.
    table = 1 if split == "test" else 2
    if table == 1:
        dataset = "ILSVRC-2010"
    else:
        dataset = DATASET_NAMES.get(source, source or "unknown dataset")
    members = tuple(evaluation.get("members", ()))
    epochs = tuple(evaluation.get("epochs", ()))
    if evaluation.get("torchvision_weights"):
        model = f"torchvision AlexNet weights {evaluation['torchvision_weights']} (not trained here)"
    elif evaluation.get("model", "paper") != "paper":
        model = f"model.arch {evaluation['model']}"
    else:
        model = "paper"
    # torchvision's published weights were not trained here: no training budget to judge
    fit = comparable(source, classes, subset, None if evaluation.get("torchvision_weights") else budget)
    return EvaluationSource(table, dataset, split, int(evaluation["images"]), classes, fit.ok, fit.reason,
                      int(evaluation["nets"]), members, epochs, model)


def status(prov: EvaluationSource) -> str:
    """What a filled-in number is (see the module docstring)."""
    if not prov.comparable:
        return f"{PIPELINE_CHECK} ({prov.reason})"
    if prov.model != "paper":
        return "measured (not the paper's net)"
    return "reproduced"


def _ours(evaluation: dict, kind: str, key: str) -> float:
    return float(evaluation[metric_key(kind, SCHEME, key)])


def _diff(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None:
        return None
    return round(ours - theirs, 2)


def table1(evaluation: dict, prov: EvaluationSource) -> pd.DataFrame:
    """Table 1 (ILSVRC-2010 test): the paper's rows, ours beside them, one row per paper row
    (plus our ensemble, which the paper's Table 1 does not have, when there is one)."""
    rows = []
    for r in paper.TABLE1:
        row: dict[str, Any] = {"model": r.model, "paper_top1_error": r.top1_test, "ours_top1_error": None,
                               "diff_top1_error": None, "paper_top5_error": r.top5_test,
                               "ours_top5_error": None, "diff_top5_error": None}
        if not r.ours:
            row["status"] = NOT_RUN
            row["provenance"] = "a pre-CNN baseline; not reimplemented here"
        elif prov.table != 1:
            row["status"] = NOT_RUN
            row["provenance"] = (f"the pipeline evaluated {prov.dataset} {prov.split}, not ILSVRC-2010 test "
                                 "(set data.source: ilsvrc2010)")
        else:
            for k in ("top1_error", "top5_error"):
                row[f"ours_{k}"] = _ours(evaluation, "single", k)
                row[f"diff_{k}"] = _diff(row[f"ours_{k}"], row[f"paper_{k}"])
            row["status"] = status(prov)
            row["provenance"] = prov.describe(1)
        rows.append(row)
    if prov.table == 1 and prov.nets > 1:
        row = {"model": f"{prov.nets} CNNs (ours only; not in the paper's Table 1)", "paper_top1_error": None,
               "paper_top5_error": None, "status": status(prov), "provenance": prov.describe(prov.nets)}
        for k in ("top1_error", "top5_error"):
            row[f"ours_{k}"] = _ours(evaluation, "ensemble", k)
            row[f"diff_{k}"] = None
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


TABLE1_COLUMNS = ["model", "paper_top1_error", "ours_top1_error", "diff_top1_error", "paper_top5_error",
                  "ours_top5_error", "diff_top5_error", "status", "provenance"]
TABLE2_COLUMNS = ["model", "paper_top1_val", "ours_top1_val", "diff_top1_val", "paper_top5_val", "ours_top5_val",
                  "diff_top5_val", "paper_top5_test", "ours_top5_test", "diff_top5_test", "status", "provenance"]


def table2(evaluation: dict, prov: EvaluationSource) -> pd.DataFrame:
    """Table 2 (ILSVRC-2012): the paper's rows, ours beside them."""
    rows = []
    for r in paper.TABLE2:
        row: dict[str, Any] = {"model": r.model, "paper_top1_val": r.top1_val, "paper_top5_val": r.top5_val,
                               "paper_top5_test": r.top5_test}
        reason = None
        if r.nets == 0:
            reason = "a pre-CNN baseline; not reimplemented here"
        elif r.pretrained:
            reason = ("needs pre-training on ImageNet Fall 2011 (15M images, 22K classes) with a sixth conv "
                      "layer; not part of this pipeline")
        elif prov.table != 2:
            reason = f"the pipeline evaluated {prov.dataset} {prov.split}, not an ILSVRC-2012 validation split"
        elif r.nets > 1 and prov.nets < 2:
            reason = (f"only {prov.nets} net evaluated (train.seeds has one seed); an ensemble needs two "
                      "or more")
        if reason is None:
            kind, n = ("single", 1) if r.nets == 1 else ("ensemble", prov.nets)
            if r.nets > 1:
                row["model"] = f"{r.model} (ours: {n} CNN{'s' if n > 1 else ''})"
            row["ours_top1_val"] = _ours(evaluation, kind, "top1_error")
            row["ours_top5_val"] = _ours(evaluation, kind, "top5_error")
            row["diff_top1_val"] = _diff(row["ours_top1_val"], r.top1_val)
            row["diff_top5_val"] = _diff(row["ours_top5_val"], r.top5_val)
            row["status"] = status(prov)
            row["provenance"] = prov.describe(n) + (
                "; top-5 test not run (ILSVRC-2012 test labels are withheld)" if r.top5_test is not None else "")
        else:
            row["status"] = NOT_RUN
            row["provenance"] = reason
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)


# --------------------------------------------------------------------------------------------
# Rendering

TABLE1_TITLE = "Table 1: ILSVRC-2010 test set, error rates (%)"
TABLE2_TITLE = "Table 2: ILSVRC-2012, error rates (%)"
HEADERS = {
    "model": "Model", "status": "Status", "provenance": "Ours: where it comes from",
    "paper_top1_error": "Top-1 (paper)", "ours_top1_error": "Top-1 (ours)", "diff_top1_error": "Top-1 diff",
    "paper_top5_error": "Top-5 (paper)", "ours_top5_error": "Top-5 (ours)", "diff_top5_error": "Top-5 diff",
    "paper_top1_val": "Top-1 val (paper)", "ours_top1_val": "Top-1 val (ours)", "diff_top1_val": "Top-1 val diff",
    "paper_top5_val": "Top-5 val (paper)", "ours_top5_val": "Top-5 val (ours)", "diff_top5_val": "Top-5 val diff",
    "paper_top5_test": "Top-5 test (paper)", "ours_top5_test": "Top-5 test (ours)",
    "diff_top5_test": "Top-5 test diff",
}


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The table as text cells: paper numbers as printed (one decimal), ours with two, signed
    differences, "-" where the paper has no number, "not run" where we have none."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        if col.startswith("paper_"):
            out[col] = [("-" if _missing(v) else f"{v:.1f}") for v in df[col]]
        elif col.startswith("ours_"):
            out[col] = [(NOT_RUN if _missing(v) else f"{v:.2f}") for v in df[col]]
        elif col.startswith("diff_"):
            out[col] = [("" if _missing(v) else f"{v:+.2f}") for v in df[col]]
        else:
            out[col] = df[col].astype(str)
    out.columns = [HEADERS[c] for c in df.columns]
    return out


def to_markdown(df: pd.DataFrame, title: str, notes: list[str]) -> str:
    """A GitHub-flavoured Markdown table (written by hand: pandas needs `tabulate` for this)."""
    shown = display_frame(df)
    numeric = [not (c in ("model", "status", "provenance")) for c in df.columns]
    return titled_table(title, list(shown.columns), [list(r) for r in shown.itertuples(index=False)], numeric, notes)


def to_latex(df: pd.DataFrame, title: str, label: str) -> str:
    """A booktabs LaTeX table via pandas' Styler (jinja2), every cell escaped."""
    align = "".join("r" if c.startswith(("paper_", "ours_", "diff_")) else "p{7cm}" if c == "provenance" else "l"
                    for c in df.columns)
    return latex_table(display_frame(df), align, title, label)


def notes(prov: EvaluationSource) -> list[str]:
    """The footnotes printed under both tables."""
    out = [f"Paper: {paper.CITATION}",
           "Ours: ten-crop testing (four corners, centre, and their reflections; softmax averaged), "
           "as in the paper (Section 4.1). Centre-crop numbers are in metrics/evaluate.json.",
           "Diff = ours - paper, percentage points (positive: our error is higher).",
           f"Evaluated: {prov.describe(prov.nets)}."]
    if not prov.comparable:
        out.append(f"These numbers are not the paper's data and training ({prov.reason}): not comparable "
                   "with the paper's.")
    return out


# --------------------------------------------------------------------------------------------
# The stage


def results(evaluation_path: str | Path, out_dir: str | Path,
            params: Params, descriptor_path: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Stage `results`: write table1 and table2 as .md, .csv and .tex into `out_dir`, from the
    evaluate stage's metrics (`evaluation_path`) and what it evaluated (`descriptor_path`)."""
    evaluation = read_evaluation(evaluation_path, descriptor_path)
    classes = evaluation.get("classes")  # the store's class count (reports/evaluation.json)
    prov = evaluation_source(evaluation, params.data.source, classes, params.data.subset.active, params.train.epochs)
    if all(e is None for e in prov.epochs) and prov.model == "paper":
        # older metrics without the nets' own epoch counts: the param they were trained with
        prov = EvaluationSource(**{**prov.__dict__, "epochs": (params.train.epochs,) * prov.nets})
    tables = {"table1": table1(evaluation, prov), "table2": table2(evaluation, prov)}
    titles = {"table1": TABLE1_TITLE, "table2": TABLE2_TITLE}
    foot = notes(prov)
    with atomic_dir(out_dir) as tmp:
        for name, df in tables.items():
            # rounded: 4 decimals keep 1 image in 50,000 and drop float noise (28.999999999999996)
            df.round(4).to_csv(tmp / f"{name}.csv", index=False)
            (tmp / f"{name}.md").write_text(to_markdown(df, titles[name], foot))
            (tmp / f"{name}.tex").write_text(to_latex(df, titles[name], f"tab:{name}"))
    # The tables are wide: dvc repro's output only says where they are.
    print(f"results: Tables 1 and 2 written to {Path(out_dir) / 'table1.md'} and {Path(out_dir) / 'table2.md'} "
          "(.csv and .tex beside them)")
    return tables
