"""The claims table (stage `claims`): each of the paper's ablation claims beside ours, with a verdict.

Owns reports/claims/claims.{md,csv,tex} (the report shows claims.md in its section 5).
Inputs: ablations/results.json (alexnet.ablations, collected from the DVC experiments) and
metrics/cifar.json (stage cifar). The paper's numbers come from `alexnet.paper`.

Ours, per ImageNet arm: delta = arm's error - baseline's error (percentage points), paired by
seed (the two nets share the seed, so their initial weights and batch order), then the mean,
the sample standard deviation and n of those deltas. A positive delta means the design choice
the arm removes lowers the error, the paper's sign.

The verdict rule (top-1 delta; the paper's own number where it has one, its direction else):
- "not run": no arm run with a baseline run of the same seed;
- "pipeline check (<dataset>)": the runs are not on ILSVRC (e.g. the tiny dataset): they show the
  pipeline works and are never evidence for or against the paper;
- "too few runs (n=1)": one seed gives no spread to judge noise by;
- "within noise": |mean| < 2 x standard error (std / sqrt(n));
- "consistent" / "not consistent": resolved beyond noise, with the paper's sign / the other sign.
CIFAR-10 rows are one run each (no spread): on the real archive "consistent" means ReLU reaches
the target error faster (ratio > 1), and LRN lowers the test error.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from alexnet import paper
from alexnet.ablations import ARMS, read_results
from alexnet.fileio import atomic_dir, read_json
from alexnet.tables import latex_table, titled_table

TITLE = "The paper's claims, checked"
IMAGENET = ("ilsvrc2012", "ilsvrc2010", "url")
COLUMNS = ["claim", "section", "arm", "paper_top1", "paper_top5", "ours_top1_mean", "ours_top1_std",
           "ours_top5_mean", "ours_top5_std", "n", "seeds", "dataset", "epochs", "verdict", "note"]


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return round(mean, 3), None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return round(mean, 3), round(math.sqrt(var), 3)


def verdict(deltas: list[float], datasets: set[str], direction: int) -> str:
    """The stated rule (module docstring) for one ImageNet arm's top-1 deltas."""
    if not deltas:
        return "not run"
    other = sorted(d for d in datasets if d not in IMAGENET)
    if other:
        return f"pipeline check ({', '.join(other)})"
    n = len(deltas)
    if n < 2:
        return "too few runs (n=1)"
    mean, std = _stats(deltas)
    se = std / math.sqrt(n)
    if abs(mean) < 2 * se:
        return "within noise"
    return "consistent" if mean * direction > 0 else "not consistent"


def ablation_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per ImageNet arm (baseline aside), ours paired with the baseline by seed."""
    runs = results.get("runs", [])
    base = {r["seed"]: r for r in runs if r.get("arm") == "baseline"}
    claims = {a.name: a for a in paper.ABLATIONS}
    rows = []
    for arm in ARMS:
        if arm.name == "baseline":
            continue
        claim = claims[arm.claim]
        # a pair is the same seed, dataset and epochs, differing only by the arm
        mine = [r for r in runs if r.get("arm") == arm.name and r["seed"] in base
                and (r.get("dataset"), r.get("epochs")) == (base[r["seed"]].get("dataset"), base[r["seed"]].get("epochs"))]
        d1 = [r["top1_error"] - base[r["seed"]]["top1_error"] for r in mine]
        d5 = [r["top5_error"] - base[r["seed"]]["top5_error"] for r in mine]
        (m1, s1), (m5, s5) = _stats(d1), _stats(d5)
        datasets = {str(r.get("dataset")) for r in mine} | {str(base[r["seed"]].get("dataset")) for r in mine}
        unpaired = [r["seed"] for r in runs if r.get("arm") == arm.name and r not in mine]
        note = arm.what
        if unpaired:
            note += f"; seeds {unpaired} have no baseline run of the same dataset and epochs and are left out"
        rows.append({
            "claim": claim.claim, "section": claim.section, "arm": arm.name,
            "paper_top1": claim.top1_gain, "paper_top5": claim.top5_gain,
            "ours_top1_mean": m1, "ours_top1_std": s1, "ours_top5_mean": m5, "ours_top5_std": s5,
            "n": len(mine), "seeds": " ".join(str(r["seed"]) for r in mine),
            "dataset": ", ".join(sorted(datasets)) if mine else "",
            "epochs": ", ".join(sorted({str(r.get("epochs")) for r in mine})) if mine else "",
            "verdict": verdict(d1, datasets, paper.ABLATION_DIRECTION.get(arm.claim, 1)), "note": note,
        })
    return rows


def cifar_rows(cifar: dict[str, Any]) -> list[dict[str, Any]]:
    """Figure 1's ratio and the CIFAR-10 LRN claim (one run each)."""
    dataset = cifar.get("dataset")
    epochs = str(cifar.get("epochs")) if cifar else ""

    def judge(value: float | None, good: bool) -> str:
        if not cifar:
            return "not run"
        if dataset != "cifar10":
            return f"pipeline check ({dataset})"
        if value is None:
            return "target not reached"
        return ("consistent" if good else "not consistent") + " (1 run)"

    ratio = cifar.get("epochs_ratio")
    gain = cifar.get("lrn_gain")
    lrn_paper = paper.CIFAR_LRN_TEST_ERROR
    return [
        {"claim": f"ReLU reaches {paper.FIGURE1_TARGET_ERROR:g}% CIFAR-10 training error about "
                  f"{paper.FIGURE1_SPEEDUP:g}x faster than tanh (epochs ratio tanh / ReLU; Figure 1)",
         "section": "3.1", "arm": RATIO_ARM, "paper_top1": paper.FIGURE1_SPEEDUP, "paper_top5": None,
         "ours_top1_mean": ratio, "ours_top1_std": None, "ours_top5_mean": None, "ours_top5_std": None,
         "n": 1 if cifar else 0, "seeds": "", "dataset": dataset or "", "epochs": epochs,
         "verdict": judge(ratio, ratio is not None and ratio > 1),
         "note": (f"ReLU {cifar.get('relu_epochs_to_target')} epochs (lr {cifar.get('relu_lr')}), tanh "
                  f"{cifar.get('tanh_epochs_to_target')} epochs (lr {cifar.get('tanh_lr')})") if cifar else ""},
        {"claim": f"on CIFAR-10 a four-layer CNN: {lrn_paper['without']:g}% test error without LRN, "
                  f"{lrn_paper['with']:g}% with (test-error gain, points)",
         "section": "3.3", "arm": "cifar: lrn", "paper_top1": round(lrn_paper["without"] - lrn_paper["with"], 3),
         "paper_top5": None, "ours_top1_mean": gain, "ours_top1_std": None, "ours_top5_mean": None,
         "ours_top5_std": None, "n": 1 if cifar else 0, "seeds": "", "dataset": dataset or "", "epochs": epochs,
         "verdict": judge(gain, gain is not None and gain > 0),
         "note": (f"test error {cifar.get('no_lrn_test_error')}% without LRN, {cifar.get('lrn_test_error')}% with"
                  if cifar else "")},
    ]


def claims_table(results: dict[str, Any], cifar: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(ablation_rows(results) + cifar_rows(cifar), columns=COLUMNS)


RATIO_ARM = "cifar: relu vs tanh"


def _num(v: Any, ratio: bool = False) -> str:
    """A delta as the claims table prints it: signed points, or a ratio ('x'); '-' when absent."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.2f}x" if ratio else f"{v:+.2f}"


def display(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells: ours as mean ± std (n), the paper's number signed."""
    def ours(row: pd.Series, k: str) -> str:
        if row["n"] == 0 or pd.isna(row[f"ours_{k}_mean"]):
            return "not run" if row["n"] == 0 else "-"
        text = _num(row[f"ours_{k}_mean"], ratio=row["arm"] == RATIO_ARM)
        if not pd.isna(row[f"ours_{k}_std"]):
            text += f" ± {row[f'ours_{k}_std']:.2f}"
        return text

    out = pd.DataFrame({
        "Claim (section)": [f"{c} ({s})" for c, s in zip(df["claim"], df["section"])],
        "Arm": df["arm"],
        "Paper (top-1)": [_num(v, ratio=a == RATIO_ARM) for v, a in zip(df["paper_top1"], df["arm"])],
        "Ours (top-1)": [ours(r, "top1") for _, r in df.iterrows()],
        "Paper top-5": [_num(v) for v in df["paper_top5"]],
        "Ours top-5": [ours(r, "top5") for _, r in df.iterrows()],
        "n": df["n"].astype(int).astype(str),
        "Dataset": df["dataset"].replace("", "-"),
        "Epochs": df["epochs"].replace("", "-"),
        "Verdict": df["verdict"],
    })
    return out


def notes() -> list[str]:
    return [
        f"Paper: {paper.CITATION}",
        "ImageNet rows: delta = error of the net without the choice - error of the baseline net with the same "
        "seed, in percentage points (single net, ten crops, metrics/evaluate.json of each DVC experiment); "
        "mean ± sample standard deviation over the n seeds; positive = the choice lowers the error, the "
        "paper's sign. The paper's column is the error reduction it attributes to the choice.",
        "CIFAR-10 rows (stage cifar, metrics/cifar.json), in the top-1 columns: Figure 1 as tanh's epochs over "
        f"ReLU's to reach {paper.FIGURE1_TARGET_ERROR:g}% training error (x); LRN as test error without - with LRN "
        "(points). One run each.",
        "Verdict: 'pipeline check (dataset)' for runs not on ILSVRC (never evidence either way); 'too few "
        "runs (n=1)' without a spread; 'within noise' when |mean| < 2 x std / sqrt(n); otherwise "
        "'consistent' (the paper's sign) or 'not consistent'; 'not run' without results.",
        "Arms: `python -m alexnet.ablations run`, then `python -m alexnet.ablations collect` (docs/ablations.md).",
    ]


def to_markdown(df: pd.DataFrame) -> str:
    shown = display(df)
    numeric = [False, False, True, True, True, True, True, False, True, False]
    return titled_table(TITLE, list(shown.columns), [list(r) for r in shown.itertuples(index=False)], numeric, notes())


def to_latex(df: pd.DataFrame) -> str:
    return latex_table(display(df), "p{6cm}lrrrrrllp{3cm}", TITLE, "tab:claims")


def claims(ablations_path: str | Path, cifar_path: str | Path, out_dir: str | Path,
           cifar_record_path: str | Path | None = None) -> pd.DataFrame:
    """Stage `claims`: write claims.md, claims.csv and claims.tex into `out_dir`."""
    results = read_results(ablations_path)
    cifar = read_json(cifar_path) if Path(cifar_path).is_file() else {}
    if cifar and cifar_record_path and Path(cifar_record_path).is_file():
        cifar = {**read_json(cifar_record_path), **cifar}  # the dataset and epochs the run used
    df = claims_table(results, cifar)
    with atomic_dir(out_dir) as tmp:
        df.to_csv(tmp / "claims.csv", index=False)
        (tmp / "claims.md").write_text(to_markdown(df))
        (tmp / "claims.tex").write_text(to_latex(df))
    print(display(df).drop(columns=["Claim (section)"]).to_string(index=False))
    return df
