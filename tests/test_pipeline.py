"""dvc.yaml against the code: every stage depends on every module its script runs.

A module missing from a stage's deps is a silent reproducibility bug: change it and `dvc repro`
reuses outputs the new code would not have produced. The imports are read statically (including
those inside functions), transitively, from stages/<name>.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from alexnet.pipeline.imports import closure, runs_nothing

ROOT = Path(__file__).resolve().parents[1]
# Argument parsing, error types and the package indexes (a docstring, nothing that runs: alexnet/,
# alexnet/data/input/, alexnet/claims/cifar/): listed by no stage (an edit reruns nothing). What they import is
# followed: cli's pinning of the numerics (alexnet/runtime/pinning.py) is every stage's dependency.
EXEMPT = {"alexnet/cli.py", "alexnet/errors.py",
          *(p.relative_to(ROOT).as_posix() for p in (ROOT / "alexnet").rglob("__init__.py") if runs_nothing(p))}


def test_the_package_indexes_are_exempt_and_sources_is_not():
    assert {"alexnet/__init__.py", "alexnet/data/input/__init__.py", "alexnet/claims/cifar/__init__.py"} <= EXEMPT
    assert "alexnet/data/sources/__init__.py" not in EXEMPT  # it holds the download stage's code


def code_closure(script: Path) -> set[str]:
    return closure(script, ROOT)


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_all_the_code_it_runs(name):
    stage = STAGES[name].get("do", STAGES[name])  # foreach stages keep theirs under "do"
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]]
    script = f"stages/{name}.py"
    # as a module, so that it imports the alexnet of the checkout it runs in (stages/__init__.py)
    assert script in deps and f"python -m stages.{name} " in stage["cmd"] and "stages/" not in stage["cmd"]
    missing = sorted(p for p in code_closure(ROOT / script) - EXEMPT if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name!r} runs {missing} but does not list them in deps"


# Package files a stage reads that are not modules: listed in its deps, no import to find them by.
DATA_DEPS = {"report": ["alexnet/report/templates"]}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_lists_no_code_it_does_not_run(name):
    """The other half: a module listed but never run reruns the stage for nothing."""
    stage = STAGES[name].get("do", STAGES[name])
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]]
    closure = code_closure(ROOT / f"stages/{name}.py")
    extra = [d for d in deps if d.startswith("alexnet/") and not any(covered(p, [d]) for p in closure)]
    assert extra == DATA_DEPS.get(name, []), f"dvc.yaml stage {name!r} lists {extra} but never imports them"


# Stage -> modules it must not run: later stages' code (training must not rerun when evaluation
# changes) and, for the report, any code that computes (it reads the files the stages wrote).
ONE_WAY = {
    "train": {"alexnet/evaluation/evaluate.py", "alexnet/analysis/analyze.py", "alexnet/evaluation/results.py", "alexnet/report/render.py",
              "alexnet/evaluation/predictions.py"},
    "evaluate": {"alexnet/training/train.py", "alexnet/analysis/analyze.py", "alexnet/report/render.py"},
    "analyze": {"alexnet/training/train.py", "alexnet/evaluation/evaluate.py", "alexnet/report/render.py"},
    "results": {"alexnet/model/net.py", "alexnet/evaluation/evaluate.py", "alexnet/training/train.py"},
    "report": {"alexnet/model/net.py", "alexnet/analysis/analyze.py", "alexnet/data/input/augment.py", "alexnet/data/store.py",
               "alexnet/evaluation/evaluate.py", "alexnet/analysis/retrieval.py", "alexnet/data/stats.py", "alexnet/training/train.py",
               "alexnet/data/input/pixels.py", "alexnet/data/input/loader.py", "alexnet/claims/table.py", "alexnet/claims/sweep.py",
               "alexnet/claims/cifar/training.py"},
}


@pytest.mark.parametrize("name", sorted(ONE_WAY))
def test_dependencies_point_one_way(name):
    closure = code_closure(ROOT / f"stages/{name}.py")
    assert not closure & ONE_WAY[name], f"stage {name!r} runs {sorted(closure & ONE_WAY[name])}"


def test_the_closure_follows_imports_inside_functions():
    # prepare imports alexnet.data.sources only inside prepare(); train reaches augment via loader.
    assert "alexnet/data/sources/tiny.py" in code_closure(ROOT / "stages" / "prepare.py")
    assert {"alexnet/data/input/loader.py", "alexnet/data/input/augment.py"} <= code_closure(ROOT / "stages" / "train.py")


def test_checkpoints_fingerprint_the_code_train_depends_on():
    """A finished checkpoint is resumed only by the code that made it (alexnet.training.state.weight_code):
    the modules dvc.yaml's train depends on, but for atomic writes and the run record's provenance
    (git revision, CPU capability: what made the weights, not how)."""
    from alexnet.training import state

    train = ROOT / "alexnet" / "training" / "train.py"
    expected = code_closure(ROOT / "stages" / "train.py") - EXEMPT - state.NOT_WEIGHTS
    assert set(state.weight_code(train)) == expected
    assert {"alexnet/runtime/pinning.py", "alexnet/runtime/backend.py", "alexnet/model/net.py",
            "alexnet/training/state.py"} <= expected
    assert set(state.code_fingerprint(train)) == expected
    # the CIFAR-10 trainer's checkpoints name its own code, which the paper net's trainer is not part of
    cifar = set(state.weight_code(ROOT / "alexnet" / "claims" / "cifar" / "run.py"))
    assert "alexnet/claims/cifar/nets.py" in cifar and "alexnet/training/train.py" not in cifar


# --------------------------------------------------------------------------- metrics, records, params

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _paths(entries) -> list[str]:
    return [e if isinstance(e, str) else next(iter(e)) for e in entries or []]


def _section_classes() -> dict[str, type]:
    import dataclasses

    from alexnet.config import Params

    return {f.name: type(getattr(Params(), f.name)) for f in dataclasses.fields(Params)}


@pytest.mark.parametrize("name", sorted(n for n in STAGES if n != "report"))
def test_no_stage_lists_a_param_that_leaves_its_bytes_alone(name):
    """`-S train.loader_workers=4` or `-S prepare.workers=1` must rerun nothing: no stage lists a
    SAME_BYTES param (alexnet.config), by name or through its whole section. (The report prints
    every param, so it reruns for any.)"""
    from alexnet.config import SAME_BYTES, execution_params

    sections = _section_classes()
    listed = STAGES[name].get("do", STAGES[name]).get("params", [])
    for entry in listed:
        section, _, key = entry.partition(".")
        same_bytes = execution_params(sections[section], SAME_BYTES)
        assert (key or None) not in same_bytes and not (not key and same_bytes), (name, entry, same_bytes)


@pytest.mark.parametrize("name,section", [("train", "train"), ("prepare", "prepare")])
def test_stage_lists_every_param_that_changes_its_bytes(name, section):
    """...and `-S train.lr=...` must: every other field of the section (the dataclass, not
    dvc.yaml) is listed, train.seeds aside (dvc.yaml's foreach). A new param fails here until it
    is added to dvc.yaml or marked SAME_BYTES."""
    import dataclasses

    from alexnet.config import SAME_BYTES, execution_params

    cls = _section_classes()[section]
    listed = {p.split(".", 1)[1] for p in STAGES[name].get("do", STAGES[name])["params"] if p.startswith(section + ".")}
    expected = {f.name for f in dataclasses.fields(cls)} - set(execution_params(cls, SAME_BYTES))
    assert listed == expected - ({"seeds"} if section == "train" else set())


def test_a_checkpoint_resumes_across_what_leaves_the_bytes_or_the_recipe_alone():
    from alexnet.config import ModelConfig, TrainConfig, execution_params
    from alexnet.training.train import EXECUTION_ONLY

    assert set(EXECUTION_ONLY) == {"model", "train"}
    assert set(EXECUTION_ONLY["model"]) == set(execution_params(ModelConfig)) == {"grouped_conv"}
    assert set(EXECUTION_ONLY["train"]) - set(execution_params(TrainConfig)) == {"epochs"}
    assert {"compile", "compile_mode", "loader_workers", "seeds", "device", "deterministic", "channels_last",
            "amp"} <= set(EXECUTION_ONLY["train"])
    assert not {"lr", "batch_size", "update_rule"} & set(EXECUTION_ONLY["train"])


def test_evaluate_batch_size_reruns_no_evaluation():
    """evaluate.batch_size sets how many images go through the net at once: only the report,
    which prints every param, reruns (in seconds)."""
    assert not [(name, p) for name, s in STAGES.items() if name != "report" for p in s.get("do", s).get("params", [])
                if p in ("evaluate", "evaluate.batch_size")]


def test_metrics_are_results_and_records_are_plain_outputs():
    """`dvc metrics diff` shows results only: every declared metric lies in metrics/, every file
    the pipeline writes to metrics/ is a declared metric, and run records (records/) are outs."""
    for name, s in STAGES.items():
        body = s.get("do", s)
        metrics, outs = _paths(body.get("metrics")), _paths(body.get("outs"))
        assert all(m.startswith("metrics/") and m.endswith(".json") for m in metrics), (name, metrics)
        assert not [o for o in outs if o.startswith("metrics")], (name, outs)
        written = re.findall(r"--(?:metrics|record) (\S+)", body["cmd"])
        for path in written:
            if any(covered(d, [path]) for d in _paths(body.get("deps"))):
                continue  # read, not written (results reads reports/evaluation.json, report metrics/)
            assert path in metrics or (path.startswith("records/") and path in outs), (name, path)
    assert [m for s in STAGES.values() for m in _paths(s.get("do", s).get("metrics"))] == [
        "metrics/prepare.json", "metrics/evaluate.json", "metrics/analyze.json", "metrics/cifar.json"]


def test_no_stage_depends_on_a_run_record():
    """A rerun that reproduces the outputs byte for byte changes only the run records (timings,
    revision, machine); a stage that depended on one would rerun every time. What later stages
    need (classes, split, counts) is a real output."""
    for name, s in STAGES.items():
        deps = _paths(s.get("do", s)["deps"])
        assert not [d for d in deps if d in ("metrics", "records") or d.startswith("records/")], name
    assert "dvclive" in STAGES["report"]["deps"] and "models" in STAGES["report"]["deps"]


def test_plots_one_chart_per_quantity_both_seeds_train_and_val():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    seeds = params["train"]["seeds"]
    charts = {next(iter(p)): next(iter(p.values())) for p in DVC["plots"] if isinstance(p, dict)}
    assert set(charts) == {"top1_error", "top5_error", "loss", "lr", "loss_below_chance"}
    for name, chart in charts.items():
        assert chart["title"] and chart["x"] == "step" and chart["x_label"] == "epoch", name
        assert chart["y_label"] and (name == "loss" or "(" in chart["y_label"]), name  # units
        splits = {"lr": ("",), "loss_below_chance": ("train/",)}.get(name, ("train/", "val/"))
        want = {f"dvclive/train-seed{s}/plots/metrics/{split}{name}.tsv": name for s in seeds for split in splits}
        assert chart["y"] == want, name
    images = [p for p in DVC["plots"] if isinstance(p, str)]
    from alexnet.analysis.analyze import FIGURES

    assert set(images) == ({"reports/training_curves.png", "reports/cifar/figure1.png"}
                           | {f"reports/figures/{f}" for f in FIGURES.values()})
    # DVCLive writes exactly these files: the names METRIC_KEYS gives, less the timing
    from alexnet.training.train import LIVE_KEYS

    assert {k.split("/")[-1] for k in LIVE_KEYS} == set(charts)


def test_autostage_is_off():
    """dvc.lock is staged by the user, not behind their back (docs/experiments.md)."""
    config = (ROOT / ".dvc" / "config").read_text()
    assert "autostage = true" not in config


@pytest.mark.slow  # runs dvc
def test_dvc_draws_the_charts_as_declared(tmp_path):
    """`dvc plots show --json` on dvc.yaml's plots and hand-written DVCLive-style TSVs: one chart
    per quantity, titled, x labelled epoch, y with units, both seeds' train and val series."""
    import json
    import shutil
    import subprocess
    import sys

    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    for seed in (0, 1):
        for name in ("loss", "top1_error", "top5_error"):
            for split, offset in (("train", 0.0), ("val", 5.0)):
                f = tmp_path / f"dvclive/train-seed{seed}/plots/metrics/{split}/{name}.tsv"
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(f"step\t{name}\n" + "".join(f"{e}\t{90 - 10 * e + offset + seed}\n" for e in (1, 2, 3)))
        (tmp_path / f"dvclive/train-seed{seed}/plots/metrics/lr.tsv").write_text("step\tlr\n1\t0.01\n2\t0.01\n3\t0.001\n")
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    done = subprocess.run([*dvc, "plots", "show", "--json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    charts = json.loads(done.stdout)["data"]
    for name, label in (("top1_error", "top-1 error (%)"), ("top5_error", "top-5 error (%)"),
                        ("loss", "loss (nats per image)"), ("lr", "learning rate (per step, SGD)")):
        (chart,) = [c for c in charts[name] if c["type"] == "vega"]
        spec = chart["content"]
        text = json.dumps(spec)
        assert spec["title"]["text"].startswith(("Top-", "Cross-entropy", "Learning rate")), name
        assert '"title": "epoch"' in text and f'"title": "{label}"' in text, name
        files = {v["filename"] for v in spec["data"]["values"]}
        want = {f"train-seed{s}/plots/metrics/{split}{name}.tsv" for s in (0, 1)
                for split in (("",) if name == "lr" else ("train/", "val/"))}
        assert {f.removeprefix("dvclive/") for f in files} == want, name
        assert len(spec["data"]["values"]) == 3 * len(want)  # three epochs per series


def test_a_stage_runs_the_alexnet_of_its_own_checkout(tmp_path):
    """`dvc exp run --queue` runs each experiment in a copy of the repository. As dvc.yaml runs them
    (python -m stages.<name>) the stages import the copy's package; as scripts they imported the
    editable install's, the main workspace's code at the time the experiment ran."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(ROOT / "stages", tmp_path / "stages")
    shutil.copytree(ROOT / "alexnet", tmp_path / "alexnet")
    (tmp_path / "alexnet" / "cli.py").write_text('raise SystemExit("the copy\'s alexnet")\n')

    def run(*cmd: str) -> str:
        proc = subprocess.run([sys.executable, *cmd, "--help"], cwd=tmp_path, capture_output=True, text=True)
        return proc.stdout + proc.stderr

    assert "the copy's alexnet" in run("-m", "stages.download")
    assert "the copy's alexnet" not in run("stages/download.py")  # the old form: another checkout's code


@pytest.mark.parametrize("name", sorted(STAGES))
def test_usage_line_is_the_command_dvc_yaml_runs(name):
    """Each stage script's usage (its --help) shows dvc.yaml's command, paths included (seed 0 for
    a foreach stage), so that nobody copies a path the pipeline does not write."""
    doc = (ROOT / "stages" / f"{name}.py").read_text()
    usage = re.search(rf"python -m stages\.{name} (?:[^\n]*\\\n)*[^\n]*", doc)
    assert usage, f"stages/{name}.py shows no `python -m stages.{name}` usage line"
    shown = " ".join(usage.group(0).replace("\\\n", " ").split())
    after = doc[usage.end():].split("\n")[1:2]
    assert not (after and after[0].lstrip().startswith("--")), f"stages/{name}.py: a stray line after the usage"
    body = STAGES[name].get("do", STAGES[name])
    assert shown == " ".join(body["cmd"].replace("${item}", "0").split())


def test_every_run_record_option_is_called_record():
    """One name for the option that writes a stage's run record (records/<stage>.json)."""
    for name, stage in STAGES.items():
        cmd = stage.get("do", stage)["cmd"]
        for option, path in re.findall(r"(--[\w-]+) (records/\S+)", cmd):
            assert option == "--record" or path in _paths(stage.get("do", stage).get("deps")), (name, option)
