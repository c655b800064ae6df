"""alexnet.claims.sweep: command construction, skip logic, cost and collection, against real
`dvc exp show --json` output (tests/expected/dvc_exp_show.json, recorded from DVC 3.67 on a toy
repo with this project's metric layout: two runs done, one queued, one failed)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from alexnet.claims import arms, expqueue
from alexnet.claims import sweep as ablations
from alexnet.claims.sweep import ARMS_BY_NAME, Experiment, collect, parse_exp_show, plan_runs, queue_command
from alexnet.tools import ablations as tool

SHOW = json.loads((Path(__file__).parent / "expected" / "dvc_exp_show.json").read_text())


def test_queue_command_for_each_kind_of_override():
    assert queue_command(ARMS_BY_NAME["no-lrn"], 0) == [
        "dvc", "exp", "run", "--queue", "--name", "ablate-no-lrn-s0",
        "-S", "model.lrn=false", "-S", "train.seeds=[0]", "evaluate"]
    assert queue_command(ARMS_BY_NAME["no-dropout"], 3, target=None)[-4:] == [
        "-S", "model.dropout=0.0", "-S", "train.seeds=[3]"]
    assert "model.remove_conv=5" in queue_command(ARMS_BY_NAME["no-conv5"], 1)
    assert "model.groups=1" in queue_command(ARMS_BY_NAME["one-column"], 1)
    assert "model.overlapping_pool=false" in queue_command(ARMS_BY_NAME["no-overlap-pool"], 1)
    assert "augment.pca_lighting=false" in queue_command(ARMS_BY_NAME["no-pca-lighting"], 1)
    assert queue_command(ARMS_BY_NAME["no-crops-flips"], 0)[6:10] == [
        "-S", "augment.random_crop=false", "-S", "augment.flip=false"]
    assert "train.weight_decay=0.0" in queue_command(ARMS_BY_NAME["no-weight-decay"], 0)
    # the baseline changes nothing but the seed list
    assert queue_command(ARMS_BY_NAME["baseline"], 1)[6:] == ["-S", "train.seeds=[1]", "evaluate"]


def test_arm_overrides_are_valid_params():
    from alexnet.config import params_from_dict

    for arm in ablations.ARMS:
        raw: dict = {}
        for key, value in ablations.run_overrides(arm, 0).items():
            section, name = key.split(".")
            raw.setdefault(section, {})[name] = value
        params_from_dict(raw)  # raises ConfigError on an unknown key or a wrong type


def test_parse_exp_show_reads_states_params_and_metrics():
    exps = {e.name: e for e in parse_exp_show(SHOW)}
    assert set(exps) == {"ablate-baseline-s0", "ablate-no-lrn-s0", "ablate-baseline-s1", "ablate-no-dropout-s0"}
    assert exps["ablate-no-lrn-s0"].state == "success"
    assert exps["ablate-no-lrn-s0"].params["model"]["lrn"] is False
    assert exps["ablate-no-lrn-s0"].metrics["metrics/evaluate.json"]["top1_error"] == 32.0
    assert exps["ablate-baseline-s1"].state == "queued"
    assert exps["ablate-no-dropout-s0"].state == "failed"
    assert exps["ablate-no-lrn-s0"].baseline == "fe29cc8f7f5a1a9500de748786e3bac58a3ddc71"


def test_plan_skips_what_ran_or_is_queued_and_requeues_failures():
    arms = [ARMS_BY_NAME[n] for n in ("baseline", "no-lrn", "no-dropout")]
    plan = plan_runs(arms, [0, 1], parse_exp_show(SHOW))
    queued = {(a.name, s) for a, s in plan.queue}
    skipped = {(a.name, s): why for a, s, why in plan.skipped}
    # ran: baseline-s0, no-lrn-s0; queued: baseline-s1; failed (so queued again): no-dropout-s0
    assert set(skipped) == {("baseline", 0), ("no-lrn", 0), ("baseline", 1)}
    assert skipped[("baseline", 1)].startswith("already queued")
    assert queued == {("no-lrn", 1), ("no-dropout", 0), ("no-dropout", 1)}


def test_same_name_other_params_is_not_rerun_silently():
    exp = Experiment("ablate-no-lrn-s0", "abc1234", "base", {"model": {"lrn": True}, "train": {"seeds": [0]}}, {},
                     "success")
    plan = plan_runs([ARMS_BY_NAME["no-lrn"]], [0], [exp])
    assert not plan.queue and "other params" in plan.skipped[0][2]


def test_cost_line_uses_the_baseline_run_record(tmp_path):
    (tmp_path / "train-seed0.json").write_text(json.dumps({"seconds": 30.0, "epochs": 8, "device": "cpu"}))
    (tmp_path / "train-seed1.json").write_text(json.dumps({"seconds": 50.0, "epochs": 8, "device": "cpu"}))
    line = ablations.cost_line([None] * 9, 2, tmp_path)
    # 9 runs x 40 s mean = 360 s = 6.0 min; 2 workers: 180 s = 3.0 min
    assert "Queueing 9 run(s)" in line and "40 s" in line and "6.0 min" in line and "3.0 min" in line
    assert "at most" not in line
    assert "run `dvc repro` first" in ablations.cost_line([None] * 3, 1, tmp_path / "none")
    # --set train.epochs=2 against the baseline's 8: a quarter of the time per net
    assert "10 s" in ablations.cost_line([2], 1, tmp_path)
    # the convergence pair's 120 epochs: 15x the time per net, an upper bound (the plateau stop)
    plan = [ablations.run_epochs(ARMS_BY_NAME[a], 0, None) for a in ("no-lrn", "baseline-converge")]
    assert plan == [None, arms.CONVERGE_EPOCHS]
    line = ablations.cost_line(plan, 1, tmp_path)
    assert "at 120 epochs a run is 600 s" in line and "at most about 10.7 min" in line


def test_set_applies_to_every_arm_and_enters_the_skip_check():
    common = ablations.parse_set(["train.epochs=2", "model.width=0.125"])
    assert common == {"train.epochs": 2, "model.width": 0.125}
    cmd = queue_command(ARMS_BY_NAME["no-lrn"], 0, common=common)
    assert cmd[6:] == ["-S", "train.epochs=2", "-S", "model.width=0.125", "-S", "model.lrn=false",
                       "-S", "train.seeds=[0]", "evaluate"]
    # ablate-no-lrn-s0 in the recording ran with train.epochs 8: not the same run
    plan = plan_runs([ARMS_BY_NAME["no-lrn"]], [0], parse_exp_show(SHOW), {"train.epochs": 2})
    assert not plan.queue and "other params" in plan.skipped[0][2]
    with pytest.raises(Exception, match="expected section.key=value"):
        ablations.parse_set(["epochs2"])


def test_queue_status_parsing():
    text = ("Task     Name                  Created    Status\n"
            "cf05ac1  ablate-no-dropout-s0  09:09 AM   Failed\n"
            "6f28b43  ablate-no-lrn-s0      09:00 AM   Running\n"
            "463dc03  ablate-baseline-s1    09:00 AM   Queued\n"
            "0997ea4  ablate-no-lrn-s1      09:09 AM   Success\n\nWorker status: 1 active, 0 idle\n")
    tasks, workers = expqueue.parse_status(text)
    assert sum(t.status in expqueue.WAITING for t in tasks) == 2 and workers == 1


def _committed(files: dict[str, dict]):
    """`read(rev, path)` for collect: the run records each experiment committed, by (rev prefix, path)."""
    def read(rev: str, path: str) -> dict | None:
        return next((data for (prefix, p), data in files.items() if rev.startswith(prefix) and p == path), None)
    return read


def test_collect_takes_successful_runs_with_their_params():
    out = collect(SHOW, read=_committed({}))
    assert (out["format"], out["version"]) == (ablations.FORMAT, 2)
    runs = {r["name"]: r for r in out["runs"]}
    assert set(runs) == {"ablate-baseline-s0", "ablate-no-lrn-s0"}  # the queued and the failed one left out
    r = runs["ablate-no-lrn-s0"]
    assert (r["arm"], r["seed"], r["dataset"], r["epochs"]) == ("no-lrn", 0, "tiny", 8)
    assert (r["top1_error"], r["top5_error"]) == (32.0, 4.0)
    assert r["params"]["model.lrn"] is False and r["params"]["train.seeds"] == [0]
    assert r["experiment_rev"].startswith("42701ef") and r["baseline_rev"].startswith("fe29cc8")
    assert [x["arm"] for x in out["runs"]] == ["baseline", "no-lrn"]  # ARMS order
    # alexnet.fidelity.comparable, recorded with its reason; the recording predates the run measures
    assert (r["comparable"], r["comparable_reason"]) == (False, "data.source tiny; 8 epochs < 90")
    assert r["classes"] is None and r["train_center_top1_error"] is None and r["epochs_run"] is None


def test_collect_records_what_each_measure_needs():
    """The run measures from metrics/evaluate.json, the training record and the class count from
    the files the experiment committed."""
    show = copy.deepcopy(SHOW)
    for group in show[1]["experiments"]:
        for rev in group["revs"]:
            if rev["name"] == "ablate-no-lrn-s0":
                data = rev["data"]
                data["metrics"]["metrics/evaluate.json"]["data"] = {
                    "top1_error": 32.0, "top5_error": 4.0, "center_top1_error": 33.0, "train_center_top1_error": 12.5,
                    "train_center_top5_error": 1.0, "conv1_colour_column1": 20.0, "conv1_colour_column2": 60.0,
                    "conv1_column_specialisation": 31.0}
                data["params"]["params.yaml"]["data"]["data"].update(
                    source="ilsvrc2012", subset={"classes": 0, "wnids": [], "train_per_class": 100,
                                                 "eval_per_class": 0, "seed": 0, "allow_partial": False})
    read = _committed({("42701ef", "records/train-seed0.json"): {
        "epochs": 7, "stopped_by_schedule": True, "seconds": 61.5, "device": "cpu x 1", "parameters": 4234},
        ("42701ef", "reports/evaluation.json"): {"classes": 1000}})
    r = {x["name"]: x for x in collect(show, read=read)["runs"]}["ablate-no-lrn-s0"]
    assert (r["val_center_top1_error"], r["train_center_top1_error"], r["conv1_column_specialisation"]) == (33.0, 12.5, 31.0)
    assert (r["epochs_run"], r["converged"], r["train_seconds"], r["device"], r["parameters"]) == (
        7, True, 61.5, "cpu x 1", 4234)
    # ILSVRC-2012, all 1000 classes, but 100 training images per class and 8 epochs: not the paper's
    assert (r["dataset"], r["classes"], r["subset"]) == ("ilsvrc2012", 1000, True)
    assert (r["comparable"], r["comparable_reason"]) == (False, "data.subset; 8 epochs < 90")


def test_every_measure_an_arm_names_exists_and_judges_a_paper_claim():
    from alexnet import paper

    for arm in ablations.ARMS:
        for claim, measure in arm.judged_on:
            assert claim in paper.CLAIMS_BY_KEY and measure in arms.MEASURES, (arm.name, claim, measure)
            # a ratio claim is judged by a ratio measure, points by points
            assert paper.CLAIMS_BY_KEY[claim].scale == arms.MEASURES[measure].scale, (arm.name, claim)


def test_list_shows_every_arm_with_its_params_and_what_it_is_judged_on(capsys):
    assert tool.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("no-crops-flips", "no-weight-decay", "no-conv5", "no-dropout", "one-column"):
        assert name in out
    assert "-S augment.random_crop=false -S augment.flip=false" in out and "-S train.weight_decay=0.0" in out
    assert "judged on: dropout-converge by epochs to converge" in out and "against: baseline-converge" in out
    assert "judged on: columns-time by training time" in out and "fc6 takes conv4's 384 maps" in out


def test_collect_ignores_runs_whose_params_do_not_match_their_name():
    show = copy.deepcopy(SHOW)
    for group in show[1]["experiments"]:
        for rev in group["revs"]:
            if rev["name"] == "ablate-no-lrn-s0":
                rev["data"]["params"]["params.yaml"]["data"]["model"]["lrn"] = True
    assert {r["name"] for r in collect(show, read=_committed({}))["runs"]} == {"ablate-baseline-s0"}


def test_errors_of_reads_the_flat_keys_the_pipeline_writes():
    assert ablations.errors_of({"top1_error": 1, "top5_error": 2, "center_top1_error": 3}) == {
        "top1_error": 1.0, "top5_error": 2.0}
    assert ablations.errors_of({"single": {"ten_crop": {"top1_error": 1, "top5_error": 2}}}) is None  # old layout
    assert ablations.errors_of(None) is None


def test_dry_run_prints_commands_and_cost_without_dvc(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ablations, "dvc", lambda *a, **k: pytest.fail("dry run called dvc"))
    assert tool.main(["run", "--arms", "baseline", "no-lrn", "--seeds", "0", "1", "--dry-run",
                           "--records", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Queueing 4 run(s)" in out
    assert out.count("$ dvc exp run --queue") == 4 and "--name ablate-no-lrn-s1" in out


def test_read_results_checks_the_format(tmp_path):
    from alexnet.errors import PipelineError

    assert arms.read_results(tmp_path / "missing.json")["runs"] == []
    (tmp_path / "bad.json").write_text(json.dumps({"runs": []}))
    with pytest.raises(PipelineError, match="not an ablations results file"):
        arms.read_results(tmp_path / "bad.json")


def test_no_two_depth_arms_build_the_same_net():
    """The sweep found no-conv4 and no-conv5 (with fc6's input kept) to be one net: equal errors in
    every seed. Each depth arm must be its own reading of "removing a middle layer"."""
    import torch
    import yaml

    from alexnet.config import params_from_dict
    from alexnet.model.net import AlexNet

    base = yaml.safe_load(Path("params.yaml").read_text())
    shapes = {}
    for name in ("no-conv3", "no-conv4", "no-conv5"):
        raw = copy.deepcopy(base)
        for key, value in arms.ARMS_BY_NAME[name].overrides.items():
            section, field_name = key.split(".")
            raw[section][field_name] = value
        with torch.device("meta"):
            net = AlexNet(params_from_dict(raw).model, 10)
        shapes[name] = tuple(tuple(v.shape) for v in net.state_dict().values())  # the layers' names differ
    assert len(set(shapes.values())) == 3, "two depth arms build the same network"
