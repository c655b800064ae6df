"""alexnet.claims: paired deltas, spreads and the verdict rule, computed by hand."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from alexnet import claims, paper


def run(arm, seed, top1, top5, dataset="ilsvrc2012"):
    return {"name": f"ablate-{arm}-s{seed}", "arm": arm, "seed": seed, "top1_error": top1, "top5_error": top5,
            "dataset": dataset, "epochs": 90}


@pytest.mark.parametrize("deltas,datasets,expected", [
    ([], {"ilsvrc2012"}, "not run"),
    ([3.0, 1.0], {"tiny"}, "pipeline check (tiny)"),
    ([3.0, 1.0], {"ilsvrc2012", "tiny"}, "pipeline check (tiny)"),
    ([2.0], {"ilsvrc2012"}, "too few runs (n=1)"),
    # mean 2, std sqrt(2), se 1: |2| >= 2 x 1 -> resolved, the paper's sign
    ([3.0, 1.0], {"ilsvrc2012"}, "consistent"),
    ([-3.0, -1.0], {"ilsvrc2012"}, "not consistent"),
    # mean 0.5, std 2.12, se 1.5: within noise
    ([2.0, -1.0], {"ilsvrc2012"}, "within noise"),
])
def test_verdict_rule(deltas, datasets, expected):
    assert claims.verdict(deltas, datasets, 1) == expected


def test_rows_pair_each_arm_with_the_baseline_of_its_seed():
    results = {"runs": [run("baseline", 0, 40.0, 18.0), run("baseline", 1, 42.0, 19.0),
                        run("no-lrn", 0, 43.0, 19.5), run("no-lrn", 1, 43.0, 20.0), run("no-lrn", 2, 50.0, 30.0)]}
    rows = {r["arm"]: r for r in claims.ablation_rows(results)}
    r = rows["no-lrn"]
    # deltas (seeds 0, 1): top-1 3 and 1 -> mean 2, sample std sqrt(2); top-5 1.5 and 1 -> 1.25, 0.354
    assert (r["n"], r["ours_top1_mean"], r["ours_top1_std"]) == (2, 2.0, round(math.sqrt(2), 3))
    assert (r["ours_top5_mean"], r["ours_top5_std"]) == (1.25, round(math.sqrt(0.125), 3))
    assert r["paper_top1"] == 1.4 and r["paper_top5"] == 1.2
    assert r["verdict"] == "consistent" and "seeds [2] have no baseline" in r["note"]
    # a baseline of other epochs is no pair
    other = {"runs": [run("baseline", 0, 40.0, 18.0), {**run("no-lrn", 0, 43.0, 19.5), "epochs": 2}]}
    assert {r["arm"]: r for r in claims.ablation_rows(other)}["no-lrn"]["verdict"] == "not run"
    assert rows["no-dropout"]["verdict"] == "not run" and rows["no-dropout"]["n"] == 0
    assert [rows[f"no-conv{i}"]["paper_top1"] for i in (3, 4, 5)] == [2.0, 2.0, 2.0]
    assert set(rows) == {"no-lrn", "no-overlap-pool", "one-column", "no-pca-lighting", "no-dropout",
                         "no-conv3", "no-conv4", "no-conv5"}


def test_tiny_runs_are_never_a_confirmation():
    results = {"runs": [run("baseline", s, 30.0, 5.0, "tiny") for s in (0, 1, 2)]
               + [run("no-lrn", s, 40.0, 9.0, "tiny") for s in (0, 1, 2)]}
    rows = {r["arm"]: r for r in claims.ablation_rows(results)}
    assert rows["no-lrn"]["verdict"] == "pipeline check (tiny)"


def test_cifar_rows():
    assert [r["verdict"] for r in claims.cifar_rows({})] == ["not run", "not run"]
    m = {"dataset": "cifar10", "epochs": 40, "epochs_ratio": 5.2, "lrn_gain": -0.3, "relu_epochs_to_target": 5,
         "tanh_epochs_to_target": 26, "no_lrn_test_error": 20.0, "lrn_test_error": 20.3}
    fig1, lrn = claims.cifar_rows(m)
    assert (fig1["paper_top1"], fig1["ours_top1_mean"], fig1["verdict"]) == (6.0, 5.2, "consistent (1 run)")
    assert (lrn["paper_top1"], lrn["verdict"]) == (2.0, "not consistent (1 run)")
    assert claims.cifar_rows({**m, "dataset": "tiny"})[0]["verdict"] == "pipeline check (tiny)"
    assert claims.cifar_rows({**m, "epochs_ratio": None})[0]["verdict"] == "target not reached"


def test_stage_writes_md_csv_tex(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({
        "format": "alexnet-repro/ablations", "version": 1,
        "runs": [run("baseline", 0, 30.0, 5.0, "tiny"), run("no-lrn", 0, 32.5, 5.0, "tiny")]}))
    (tmp_path / "cifar.json").write_text(json.dumps({"epochs_ratio": 0.5, "lrn_gain": 1.0}))
    (tmp_path / "cifar-record.json").write_text(json.dumps({"dataset": "tiny", "epochs": 8}))
    df = claims.claims(tmp_path / "results.json", tmp_path / "cifar.json", tmp_path / "out",
                       tmp_path / "cifar-record.json")
    assert (df.loc[df["arm"] == claims.RATIO_ARM, ["dataset", "epochs"]].values.tolist() == [["tiny", "8"]])
    assert len(df) == 8 + 2
    csv = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert csv.loc[csv["arm"] == "no-lrn", "ours_top1_mean"].item() == 2.5
    md = (tmp_path / "out" / "claims.md").read_text()
    assert "| +1.40 | +2.50 |" in md and "pipeline check (tiny)" in md and "not run" in md
    assert "\\begin{table*}" in (tmp_path / "out" / "claims.tex").read_text()
    assert md.startswith(f"## {claims.TITLE}\n")  # the report demotes it to '###' under its section 5


def test_paper_numbers_behind_the_table():
    assert paper.FIGURE1_SPEEDUP == 6.0 and paper.FIGURE1_TARGET_ERROR == 25.0
    assert paper.CIFAR_LRN_TEST_ERROR == {"without": 13.0, "with": 11.0}
