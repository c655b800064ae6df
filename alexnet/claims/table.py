"""The claims table (stage `claims`): each claim of the paper beside ours, with an interval and a verdict.

Owns reports/claims/claims.{md,csv,tex} (the report shows claims.md in its section 5). Inputs:
ablations/results.json (alexnet.claims.arms reads it; alexnet.claims.sweep collects it from the DVC experiments) and
the CIFAR-10 runs' runs.json (stage cifar: Figure 1 and the CIFAR-10 LRN claim, per seed). The
paper's words and numbers come from `alexnet.paper`, the rule from `alexnet.claims.verdict` (its text is
printed under the table), which runs are the paper's data from `alexnet.fidelity.comparable` (as
collect recorded it per run).

One row per claim an arm is judged on (alexnet.claims.arms.ARMS: the claim and the measure), then
the CIFAR-10 rows: Figure 1 per run and rnorm arm, the LRN claim per run that trained it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from alexnet import paper
from alexnet.claims import verdict
from alexnet.claims.arms import ARMS, ARMS_BY_NAME, MEASURES, Arm, Measure, overrides_text, read_results
from alexnet.claims.cifar.data import shown_runs
from alexnet.errors import PipelineError
from alexnet.fileio import atomic_dir
from alexnet.pipeline.layout import CIFAR_RUNS, CLAIMS_CSV, CLAIMS_TABLE
from alexnet.tables import latex_table, titled_table

TITLE = "The paper's claims, checked"
COLUMNS = ["claim", "section", "words", "paper", "scale", "kind", "mean", "low", "high", "n", "seeds",
           "measure", "data", "verdict", "arm", "overrides", "note"]


def _row(claim: paper.Claim, judged: verdict.Verdict, **cells: Any) -> dict[str, Any]:
    return {"claim": claim.key, "section": claim.section, "words": claim.words, "paper": claim.value,
            "scale": claim.scale, "kind": claim.kind, "mean": judged.mean, "low": judged.low, "high": judged.high,
            "n": judged.n, "verdict": judged.text, **cells}


def _effect(measure: Measure, arm_value: float, base_value: float | None) -> float | None:
    """One seed's effect, oriented so that positive is the paper's direction (a ratio: its log)."""
    if measure.sign == 0:
        return arm_value
    ours, ref = (arm_value, base_value) if measure.sign > 0 else (base_value, arm_value)
    if measure.scale == "points":
        return ours - ref
    return math.log(ours / ref) if ours > 0 and ref > 0 else None


def _data(runs: list[dict[str, Any]]) -> str:
    """The data the runs were measured on, e.g. 'tiny (10 classes), 8 epochs'."""
    def one(r: dict[str, Any]) -> str:
        extra = [f"{r['classes']} classes"] if r.get("classes") else []
        extra += ["subset"] if r.get("subset") else []
        return f"{r.get('dataset')}" + (f" ({', '.join(extra)})" if extra else "") + f", {r.get('epochs')} epochs"
    return "; ".join(sorted({one(r) for r in runs}))


def _paired(arm: Arm, measure: Measure, runs: list[dict[str, Any]]) -> tuple[list, list[str]]:
    """(the (arm run, baseline run or None) pairs, notes on seeds left out) for one arm and measure.
    A pair is one seed of the arm and of its reference arm (the baseline, or e.g. the baseline
    trained as long): the same dataset and epochs, and the measure's `same` fields."""
    stale = [r for r in runs if r.get("arm") in (arm.name, arm.reference) and not _current(r)]
    notes = [f"{len(stale)} run(s) collected under other params than {arm.name}'s or {arm.reference}'s "
             "are left out: run the arm again and collect"] if stale else []
    mine = [r for r in runs if r.get("arm") == arm.name and _current(r)]
    if measure.sign == 0:
        return [(r, None) for r in mine], notes
    base = {r["seed"]: r for r in runs if r.get("arm") == arm.reference and _current(r)}
    keys = ("dataset", "epochs", *measure.same)
    pairs, left = [], []
    for r in mine:
        b = base.get(r["seed"])
        if b is not None and all(r.get(k) == b.get(k) for k in keys):
            pairs.append((r, b))
        else:
            left.append(r["seed"])
    if left:
        notes.append(f"seeds {left} have no {arm.reference} run of the same {', '.join(keys)} and are left out")
    return pairs, notes


def _current(run: dict[str, Any]) -> bool:
    """Whether a collected run has its arm's overrides as the arm defines them now (an arm
    redefined since, e.g. no-conv5, leaves its old runs behind in ablations/results.json)."""
    arm = ARMS_BY_NAME.get(run.get("arm", ""))
    recorded = run.get("params") or {}
    return arm is not None and all(recorded.get(k) == v for k, v in arm.overrides.items())


def ablation_row(arm: Arm, claim: paper.Claim, measure: Measure, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One claim an arm is judged on: per seed the measure's effect, then alexnet.claims.verdict's rule."""
    pairs, notes = _paired(arm, measure, runs)
    effects, seeds, used, censored, older = [], [], [], 0, 0
    for r, b in pairs:
        if measure.censored(r) or (b is not None and measure.censored(b)):
            censored += 1
            used += [r, b]
            continue
        a_value, b_value = measure.value(r), measure.value(b) if b is not None else None
        if a_value is None or (b is not None and b_value is None):
            older += 1
            continue
        effect = _effect(measure, a_value, b_value)
        if effect is not None:
            effects.append(effect)
            seeds.append(r["seed"])
            used += [r] + ([b] if b is not None else [])
    used = [u for u in used if u is not None]
    reasons = sorted({u["comparable_reason"] for u in used if not u["comparable"]})
    judged = verdict.judge(effects, claim.scale, claim.kind, claim.value, "; ".join(reasons), censored)
    if older:
        notes.append(f"{older} seed(s) ran before this measure was recorded: run the arm again and collect")
    if censored:
        notes.append(f"{len(effects)} of {len(effects) + censored} seeds converged (the plateau stop) within "
                     "train.epochs in both runs")
    for key in measure.same if used else ():  # e.g. the device the times were measured on
        notes.append(f"{key}: " + "; ".join(sorted({str(u.get(key)) for u in used})))
    params = {u["arm"]: u.get("parameters") for u in used if u.get("parameters")}
    ref = arm.reference
    if arm.name in params and ref in params and params[arm.name] != params[ref]:
        change = params[arm.name] / params[ref] - 1
        notes.append(f"parameters {params[arm.name]:,} against the {ref}'s {params[ref]:,} ({change:+.1%})")
    return _row(claim, judged, seeds=" ".join(map(str, seeds)), measure=measure.what, data=_data(used),
                arm=arm.name, overrides=overrides_text(arm), note="; ".join([arm.what, *notes]))


def ablation_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    runs = results.get("runs", [])
    return [ablation_row(arm, paper.CLAIMS_BY_KEY[claim], MEASURES[measure], runs)
            for arm in ARMS for claim, measure in arm.judged_on]


def _cifar_data(run: dict[str, Any]) -> tuple[str, str]:
    """(why the run is not the paper's data or "", the data cell). The CIFAR-10 counterpart of
    fidelity.comparable: the real images at the authors' width, or a pipeline check."""
    if run["dataset"] != "cifar10":
        return run["dataset"], run["dataset"]
    return "", "CIFAR-10" if run["official_pixels"] else "CIFAR-10, JPEG copy"


def _unreached_text(seeds: list[dict[str, Any]], max_epochs: int) -> str:
    """What the seeds without a ratio still say: a net that did not reach the target within
    max_epochs (it stopped there, or earlier: diverged, stalled) would have needed more, so the
    seed's ratio is above max_epochs / ReLU's epochs (tanh unreached), or below tanh's epochs /
    max_epochs (ReLU unreached)."""
    def which(group: list[dict[str, Any]]) -> str:
        return f"seed{'s' * (len(group) > 1)} {' '.join(str(s['seed']) for s in group)}"

    def ratios(group: list[dict[str, Any]]) -> str:
        return "each of their ratios" if len(group) > 1 else "its ratio"

    slow_tanh = [s for s in seeds if s["tanh_epochs"] is None and s["relu_epochs"] is not None]
    slow_relu = [s for s in seeds if s["relu_epochs"] is None and s["tanh_epochs"] is not None]
    neither = [s for s in seeds if s["relu_epochs"] is None and s["tanh_epochs"] is None]
    parts = []
    if slow_tanh:
        above = max_epochs / max(s["relu_epochs"] for s in slow_tanh)
        parts.append(f"tanh did not reach it on {which(slow_tanh)}, so {ratios(slow_tanh)} is above {above:.2f}x")
    if slow_relu:
        below = max(s["tanh_epochs"] for s in slow_relu) / max_epochs
        parts.append(f"ReLU did not reach it on {which(slow_relu)}, so {ratios(slow_relu)} is below {below:.2f}x")
    if neither:
        parts.append(f"neither net reached it on {which(neither)}")
    return "".join(f" ({p})" for p in parts)


def _edge_text(interior: dict[str, bool]) -> str:
    """What a chosen rate at the edge of the rates tried means for the ratio: a rate beyond it might
    have trained that net faster, so tanh at the edge may overstate the ratio, ReLU understate it."""
    edge = [net for net, inside in interior.items() if not inside]
    if not edge:
        return ""
    if edge == ["tanh"]:
        effect = "it might train tanh faster: the ratio may be smaller than shown"
    elif edge == ["relu"]:
        effect = "it might train ReLU faster: the ratio may be larger than shown"
    else:
        effect = "each might train its net faster: the ratio may be off either way"
    return f"; the chosen rate of {' and '.join(edge)} is at the edge of the rates tried (a rate beyond {effect})"


def figure1_row(run: dict[str, Any], arm: dict[str, Any]) -> dict[str, Any]:
    """One Figure 1 arm of one run: tanh's epochs over ReLU's at the target, per evaluation seed."""
    claim = paper.CLAIMS_BY_KEY["relu-speed"]
    fig1 = run["figure1"]
    not_comparable, data = _cifar_data(run)
    if not not_comparable and fig1["width"] != 1.0:
        not_comparable = f"width {fig1['width']:g}"
    reached = [s for s in arm["seeds"] if s["ratio"] is not None]
    target = f"{fig1['target_error']:g}% training error"
    judged = verdict.judge([math.log(s["ratio"]) for s in reached], claim.scale, claim.kind, claim.value,
                           not_comparable, len(arm["seeds"]) - len(reached))
    by_level = ", ".join(f"{c['level']:g}% {c['ratio']:.2f}x" for c in reversed(arm["ratio_curve"])
                         if c["ratio"] is not None)
    note = (f"{run['copy']}; {len(reached)} of {len(arm['seeds'])} seeds reached {target} with both nets within "
            f"{fig1['max_epochs']} epochs{_unreached_text(arm['seeds'], fig1['max_epochs'])}; "
            f"the ratio by training-error level (geometric mean): {by_level}"
            + _edge_text(arm["interior"]))
    rnorm = "with" if arm["rnorm"] else "no"
    return _row(claim, judged, seeds=" ".join(str(s["seed"]) for s in reached),
                measure=f"epochs to {target}, tanh / ReLU, per seed", data=data,
                arm=f"cifar: relu vs tanh, {fig1['protocol']} protocol, {rnorm} rnorm",
                overrides=f"relu lr {arm['relu_lr']:g}, tanh lr {arm['tanh_lr']:g} (chosen on seed "
                          f"{fig1['grid_seed']}), at most {fig1['max_epochs']} epochs", note=note)


def lrn_row(run: dict[str, Any]) -> dict[str, Any]:
    """The CIFAR-10 LRN claim: the 13pct net's test error minus the 11pct's, per seed."""
    claim = paper.CLAIMS_BY_KEY["cifar-lrn"]
    lrn, seeds = run["lrn"], run["lrn"]["seeds"]
    not_comparable, data = _cifar_data(run)
    shortened = f"{lrn['epochs']} of the authors' ~{lrn['paper_epochs']} epochs" if lrn["shortened"] else ""
    judged = verdict.judge([s["gain"] for s in seeds if s["gain"] is not None], claim.scale, claim.kind,
                           claim.value, not_comparable, shortened=shortened)
    without, with_ = (sum(s[k] for s in seeds) / len(seeds) for k in ("without", "with"))
    note = (f"{run['copy']}; test error {without:.2f}% without LRN, {with_:.2f}% with (means; the paper: "
            f"{paper.CIFAR_LRN_TEST_ERROR['without']:g}% and {paper.CIFAR_LRN_TEST_ERROR['with']:g}%); the "
            "published nets differ in more than the normalisation (alexnet/claims/cifar/nets.py)")
    schedule = " + ".join(str(e) for e in lrn["schedule"] if e)
    return _row(claim, judged, seeds=" ".join(str(s["seed"]) for s in seeds),
                measure="test error without LRN - with LRN, per seed", data=data,
                arm="cifar: 13pct vs 11pct net", overrides=f"{schedule} epochs", note=note)


def cifar_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Figure 1's rows (per run and rnorm arm) and the CIFAR-10 LRN rows (per run that trained
    the LRN nets), from the runs alexnet.claims.cifar.data.shown_runs picks; "not run" where none is."""
    rows = [figure1_row(run, arm) for run in runs for arm in run["figure1"]["arms"]]
    rows += [lrn_row(run) for run in runs if run["lrn"]["seeds"]]
    for key, seen in (("relu-speed", bool(runs)), ("cifar-lrn", any(r["lrn"]["seeds"] for r in runs))):
        if not seen:
            c = paper.CLAIMS_BY_KEY[key]
            rows.append(_row(c, verdict.judge([], c.scale, c.kind, c.value), seeds="", measure="", data="",
                             arm="cifar", overrides="", note=""))
    return rows


def _num(v: Any, scale: str) -> str:
    """An effect as the table prints it: signed points, or a ratio ('x'); '-' when absent."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.2f}x" if scale == "ratio" else f"{v:+.2f}"


def display(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells: the paper's number with its kind, ours as mean [interval]."""
    def theirs(row: pd.Series) -> str:
        if row["kind"] == "direction":
            return "a sign only"
        return ("over " if row["kind"] == "at_least" else "") + _num(row["paper"], row["scale"])

    def ours(row: pd.Series) -> str:
        text = _num(row["mean"], row["scale"])
        if not pd.isna(row["low"]):
            text += f" [{_num(row['low'], row['scale'])}, {_num(row['high'], row['scale'])}]"
        return text

    return pd.DataFrame({
        "Claim (section)": [f"{w} ({s})" for w, s in zip(df["words"], df["section"])],
        "Paper": [theirs(r) for _, r in df.iterrows()],
        "Ours: mean [95% interval]": [ours(r) for _, r in df.iterrows()],
        "n": df["n"].astype(int).astype(str),
        "Measured as": df["measure"].replace("", "-"),
        "Data": df["data"].replace("", "-"),
        "Verdict": df["verdict"],
        "Arm: params": [f"{a}: {o}" if o else a for a, o in zip(df["arm"], df["overrides"])],
        "Note": df["note"].replace("", "-"),
    })


def notes() -> list[str]:
    return [
        f"Paper: {paper.CITATION}",
        *verdict.rule(),
        "ImageNet rows: one DVC experiment per arm and seed (`alexnet-ablations run`, then `collect`: "
        "docs/ablations.md). CIFAR-10 rows: the committed real-data runs (configs/cifar10*.yaml, "
        "reports/real/cifar10*/runs.json, one per Figure 1 protocol) when there are any, else stage cifar's "
        "reports/cifar/runs.json.",
    ]


def to_markdown(df: pd.DataFrame) -> str:
    shown = display(df)
    numeric = [False, True, True, True, False, False, False, False, False]
    return titled_table(TITLE, list(shown.columns), [list(r) for r in shown.itertuples(index=False)], numeric, notes())


def to_latex(df: pd.DataFrame) -> str:
    return latex_table(display(df), "p{4.5cm}rrrp{2.5cm}p{2cm}p{2cm}p{2cm}p{3cm}", TITLE, "tab:claims")


def claims(ablations_path: str | Path, cifar_folders: list[str | Path], out_dir: str | Path) -> pd.DataFrame:
    """Stage `claims`: write claims.md, claims.csv and claims.tex into `out_dir`."""
    results = read_results(ablations_path)
    shown = shown_runs(cifar_folders)
    try:
        cifar_part = cifar_rows([run for run, _ in shown])
    except (KeyError, TypeError) as e:
        folders = ", ".join(f"{folder}/{CIFAR_RUNS}" for _, folder in shown)
        raise PipelineError(f"{folders}: not the cifar stage's runs.json ({e!r}); rerun `dvc repro cifar`") from e
    df = pd.DataFrame(ablation_rows(results) + cifar_part, columns=COLUMNS)
    with atomic_dir(out_dir) as tmp:
        df.to_csv(tmp / CLAIMS_CSV, index=False)
        (tmp / CLAIMS_TABLE).write_text(to_markdown(df))
        (tmp / "claims.tex").write_text(to_latex(df))
    print(display(df)[["Arm: params", "Ours: mean [95% interval]", "n", "Verdict"]].to_string(index=False))
    return df
