"""Tests for alexnet/evaluation/results.py and alexnet/paper.py: the paper's numbers, our rows placed by
the data they were measured on, "not run" rows, and the three renderings."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from stage_helpers import run_stage

from alexnet import paper
from alexnet.config import params_from_dict
from alexnet.errors import PipelineError
from alexnet.evaluation import results as rs

# metrics/evaluate.json's headline keys, written out by hand as docs/architecture.md gives them
ERRORS = {"top1_error": 42.25, "top5_error": 19.5, "ensemble_top1_error": 39.5, "ensemble_top5_error": 17.75,
          "center_top1_error": 44.0, "center_top5_error": 21.0, "ensemble_center_top1_error": 41.0,
          "ensemble_center_top5_error": 19.0}


def _evaluation(split="val", dataset="ilsvrc2012", nets=2, images=50000, **extra):
    """What alexnet.evaluation.predictions.read_evaluation returns: the run record and the flat metrics."""
    return {"split": split, "images": images, "nets": nets, **ERRORS,
            "dataset": dataset, "members": [f"seed{i}" for i in range(nets)], "epochs": [90] * nets,
            "model": "paper", "torchvision_weights": "", **extra}


def _write_evaluation(folder, ev):
    """The evaluate stage's two files for `ev`: the flat headline metrics and the run record."""
    metrics, record = folder / "evaluate.json", folder / "evaluate-record.json"
    metrics.write_text(json.dumps({k: v for k, v in ev.items() if k in ERRORS}))
    record.write_text(json.dumps({k: v for k, v in ev.items() if k not in ERRORS}))
    return metrics, record


def test_paper_numbers_are_the_papers():
    t1 = {r.model: (r.top1_test, r.top5_test) for r in paper.TABLE1}
    assert t1 == {"Sparse coding": (47.1, 28.2), "SIFT + FVs": (45.7, 25.7), "CNN": (37.5, 17.0)}
    t2 = {r.model: (r.top1_val, r.top5_val, r.top5_test) for r in paper.TABLE2}
    assert t2 == {"SIFT + FVs": (None, None, 26.2), "1 CNN": (40.7, 18.2, None), "5 CNNs": (38.1, 16.4, 16.4),
                  "1 CNN*": (39.0, 16.6, None), "7 CNNs*": (36.7, 15.4, 15.3)}
    assert (paper.FALL_2009.top1_error, paper.FALL_2009.top5_error) == (67.4, 40.9)
    assert paper.PARAMETERS == 60_965_224
    # the neuron counts agree with the feature-map sizes (conv1's 253,440 is the paper's own figure)
    n = paper.NEURONS_PER_LAYER
    assert n[1:5] == (27 * 27 * 256, 13 * 13 * 384, 13 * 13 * 384, 13 * 13 * 256)
    assert n[5:] == (4096, 4096, 1000) and paper.FEATURE_MAPS[-1] ** 2 * 256 == 9216


def test_table2_on_ilsvrc2012_val():
    ev = _evaluation()
    prov = rs.evaluation_source(ev, "ilsvrc2012", 1000, False, 90)
    t = rs.table2(ev, prov).set_index("model")
    one = t.loc["1 CNN"]
    assert (one.paper_top1_val, one.ours_top1_val, one.diff_top1_val) == (40.7, 42.25, 1.55)
    assert (one.paper_top5_val, one.ours_top5_val, one.diff_top5_val) == (18.2, 19.5, 1.3)
    assert one.status == "reproduced" and pd.isna(one.ours_top5_test)
    assert "ILSVRC-2012 val, 50,000 images" in one.provenance and "10 crops" in one.provenance
    assert "1 net (seed0)" in one.provenance and "epochs 90" in one.provenance
    assert "not comparable" not in one.provenance
    ens = t.loc["5 CNNs (ours: 2 CNNs)"]
    assert (ens.paper_top1_val, ens.ours_top1_val, ens.diff_top1_val) == (38.1, 39.5, 1.4)
    assert (ens.ours_top5_val, ens.paper_top5_test) == (17.75, 16.4)
    assert pd.isna(ens.ours_top5_test) and "test labels are withheld" in ens.provenance
    assert "2 nets (seed0, seed1)" in ens.provenance
    for model in ("SIFT + FVs", "1 CNN*", "7 CNNs*"):
        row = t.loc[model]
        assert row.status == "not run"
        assert row[["ours_top1_val", "ours_top5_val", "ours_top5_test"]].isna().all()
    assert "Fall 2011" in t.loc["7 CNNs*"].provenance
    # nothing of ours lands in Table 1: it is ILSVRC-2010 test
    t1 = rs.table1(ev, prov)
    assert (t1.status == "not run").all() and t1[["ours_top1_error", "ours_top5_error"]].isna().all().all()
    assert t1.paper_top1_error.tolist() == [47.1, 45.7, 37.5]


def test_table1_on_ilsvrc2010_test():
    ev = _evaluation(split="test", dataset="ilsvrc2010", nets=3, images=150000)
    prov = rs.evaluation_source(ev, "ilsvrc2010", 1000, False, 90)
    t = rs.table1(ev, prov).set_index("model")
    cnn = t.loc["CNN"]
    assert (cnn.ours_top1_error, cnn.diff_top1_error) == (42.25, 4.75)
    assert (cnn.ours_top5_error, cnn.diff_top5_error) == (19.5, 2.5)
    assert "ILSVRC-2010 test, 150,000 images" in cnn.provenance
    extra = t.loc["3 CNNs (ours only; not in the paper's Table 1)"]
    assert (extra.ours_top1_error, extra.ours_top5_error) == (39.5, 17.75) and pd.isna(extra.paper_top1_error)
    assert t.loc["Sparse coding"].status == "not run"
    t2 = rs.table2(ev, prov)
    assert (t2.status == "not run").all()


def test_single_net_leaves_the_ensemble_row_not_run():
    ev = _evaluation(nets=1)
    t = rs.table2(ev, rs.evaluation_source(ev, "ilsvrc2012", 1000, False, 90)).set_index("model")
    assert t.loc["5 CNNs"].status == "not run" and pd.isna(t.loc["5 CNNs"].ours_top1_val)
    assert "one seed" in t.loc["5 CNNs"].provenance
    assert t.loc["1 CNN"].ours_top1_val == 42.25


def test_tiny_dataset_is_marked_not_comparable(tmp_path):
    ev = _evaluation(dataset="tiny", images=200)
    prov = rs.evaluation_source(ev, "tiny", 10, False, 8)
    t = rs.table2(ev, prov).set_index("model")
    why = "data.source tiny; 10 classes; 8 epochs < 90"  # alexnet.fidelity.comparable's reason
    assert t.loc["1 CNN"].provenance.startswith(f"tiny dataset, not comparable ({why})")
    # A tiny-dataset number is a pipeline check, never "reproduced", in every filled-in row.
    filled = t[t.status != "not run"]
    assert len(filled) == 2 and (filled.status == f"pipeline check ({why})").all()
    ev10 = _evaluation(dataset="ilsvrc2012")  # ILSVRC layout but only 10 classes: not comparable either
    assert "reproduced" not in set(rs.table2(ev10, rs.evaluation_source(ev10, "ilsvrc2012", 10, False, 90)).status)
    assert "10 classes" in t.loc["1 CNN"].provenance
    md = rs.to_markdown(rs.table2(ev, prov), rs.TABLE2_TITLE, rs.notes(prov))
    assert "tiny dataset, not comparable" in md


@pytest.mark.parametrize("classes,subset,budget,why", [
    (1000, True, 90, "data.subset"),  # all 1000 classes, fewer images per class
    (100, True, 90, "100 classes; data.subset"),
    (1000, False, 30, "30 epochs < 90"),
    (None, False, 90, "classes not recorded"),
])
def test_ilsvrc_that_is_not_the_papers_run_is_a_pipeline_check(classes, subset, budget, why):
    ev = _evaluation()
    row = rs.table2(ev, rs.evaluation_source(ev, "ilsvrc2012", classes, subset, budget)).set_index("model").loc["1 CNN"]
    assert row.status == f"pipeline check ({why})" and row.ours_top1_val == 42.25


def test_torchvision_weights_provenance():
    ev = _evaluation(nets=1, model="torchvision", torchvision_weights="/data/alexnet.pth", members=["torchvision"],
                     epochs=[None])
    prov = rs.evaluation_source(ev, "ilsvrc2012", 1000, False, 90)
    row = rs.table2(ev, prov).set_index("model").loc["1 CNN"]
    assert "torchvision AlexNet weights /data/alexnet.pth" in row.provenance and "epochs unknown" in row.provenance
    assert row.status == "measured (not the paper's net)"


def test_renderings_hold_the_papers_numbers_and_not_run(tmp_path):
    ev = _evaluation(nets=1)
    prov = rs.evaluation_source(ev, "ilsvrc2012", 1000, False, 90)
    df = rs.table2(ev, prov)
    md = rs.to_markdown(df, rs.TABLE2_TITLE, rs.notes(prov))
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert len(lines) == 1 + len(paper.TABLE2)  # header + one row per paper row
    cells = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in lines[1:]}
    assert cells["1 CNN"][:6] == ["40.7", "42.25", "+1.55", "18.2", "19.50", "+1.30"]
    assert cells["7 CNNs*"][:2] == ["36.7", "not run"] and cells["7 CNNs*"][6] == "15.3"
    assert cells["SIFT + FVs"][0] == "-" and cells["SIFT + FVs"][6] == "26.2"
    tex = rs.to_latex(df, rs.TABLE2_TITLE, "tab:table2")
    assert "\\toprule" in tex and "36.7 & not run" in tex and "1 CNN* &" in tex
    # escaping: an underscore in a path must not break LaTeX
    ev2 = _evaluation(nets=1, model="torchvision", torchvision_weights="/w/alex_net.pth")
    tex2 = rs.to_latex(rs.table2(ev2, rs.evaluation_source(ev2, "ilsvrc2012", 1000, False, 90)), "T", "tab:t")
    assert "alex\\_net.pth" in tex2


def test_results_stage_writes_all_files(tmp_path):
    ev_path, record = _write_evaluation(tmp_path, {**_evaluation(dataset="tiny", images=200), "classes": 10})
    params = params_from_dict({"train": {"epochs": 12, "seeds": [0, 1]}})
    rs.results(ev_path, tmp_path / "tables", params, descriptor_path=record)
    names = sorted(p.name for p in (tmp_path / "tables").iterdir())
    assert names == [f"table{i}.{e}" for i in (1, 2) for e in ("csv", "md", "tex")]
    csv = pd.read_csv(tmp_path / "tables" / "table2.csv")
    assert list(csv.columns) == rs.TABLE2_COLUMNS
    assert csv.paper_top1_val.tolist()[1:] == [40.7, 38.1, 39.0, 36.7]
    assert csv.ours_top1_val.tolist()[1:3] == [42.25, 39.5] and csv.ours_top1_val[3:].isna().all()
    assert csv.provenance[1].startswith("tiny dataset, not comparable (data.source tiny; 10 classes; 12 epochs < 90)")
    assert "not run" in (tmp_path / "tables" / "table1.md").read_text()


def test_results_stage_missing_or_bad_evaluation(tmp_path):
    params = params_from_dict({})
    with pytest.raises(PipelineError, match="evaluate stage"):
        rs.results(tmp_path / "none.json", tmp_path / "t", params)
    metrics, record = _write_evaluation(tmp_path, _evaluation())
    record.write_text(json.dumps({"split": "val"}))
    with pytest.raises(PipelineError, match="images"):
        rs.results(metrics, tmp_path / "t", params, descriptor_path=record)
    old = {"split": "val", "single": {"ten_crop": {"top1_error": 40.0, "top5_error": 18.0}}}
    (tmp_path / "old.json").write_text(json.dumps(old))  # the nested layout of older code
    with pytest.raises(PipelineError, match="lacks 'top1_error'"):
        rs.results(tmp_path / "old.json", tmp_path / "t", params, descriptor_path=record)
    assert not (tmp_path / "t").exists()


def test_stage_script_runs(tmp_path):
    ev = _evaluation()
    ev["top1_error"] = 28.999999999999996  # 100 * (1 - 0.71) in floats
    ev_path, record = _write_evaluation(tmp_path, ev)
    (tmp_path / "params.yaml").write_text("train:\n  seeds: [0, 1]\n")
    out = run_stage("results", "--params", "params.yaml", "--evaluation", ev_path, "--evaluated", record,
                    "--out", "tables", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    # dvc repro's output says where the tables are; it does not print them (they are wide)
    assert "table2.md" in out.stdout and max(map(len, out.stdout.splitlines())) < 160
    assert "40.7" in (tmp_path / "tables" / "table2.md").read_text()
    assert ",29.0," in (tmp_path / "tables" / "table2.csv").read_text()
    assert (tmp_path / "tables" / "table2.tex").is_file()
    # CSV cells rounded: no float noise such as 28.999999999999996
    for line in (tmp_path / "tables" / "table2.csv").read_text().splitlines():
        assert not re.search(r"\d\.\d{5,}", line), line
