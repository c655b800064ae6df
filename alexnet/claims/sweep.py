"""The paper's ablations as DVC experiments: queue and run them, then collect their metrics.

Owns the arms (what each changes against params.yaml, the baseline, and the claims it is judged
on), the measures (the number per run each claim is judged by), the `dvc exp run --queue`
commands that run them, and ablations/results.json (in git), which the `claims` stage reads.

Its command line is alexnet.tools.ablations (`alexnet-ablations`, or
`python -m alexnet.tools.ablations`): list, run, status, collect.

`run` queues one experiment per (arm, seed), named `ablate-<arm>-s<seed>`, each with
`-S train.seeds=[<seed>]` (one net; the train stage is `foreach: ${train.seeds}`) and the arm's
overrides, then starts `--jobs` queue workers and waits for the queue to drain. The `baseline`
arm changes nothing but the seed: an arm's effect is measured per seed against the baseline
net of the same seed (same initial weights and batch order, so the pair differs only by the
arm), and the spread of those paired differences over seeds is the noise. An (arm, seed) whose
experiment already ran (or is queued) on this commit with the same params is skipped. Before
queueing, `run` prints how many runs it queues and their cost from the baseline's recorded
training time (records/train-seed<N>.json); while it waits, n of N done and the time left.

A sweep survives a crash: rerun the same `run` command. A task that a killed worker left listed
as Running with its process gone (alexnet/claims/expqueue.py) is marked failed and queued again, queued
tasks get workers, and the wait resumes; a run that still fails ends the command with an error
naming it. Two `run` commands started together queue each experiment once (a lock around
planning). `status` shows each (arm, seed): done (top-1 error), running, queued, failed (its log's
last line), stale or not run, and the training time left.

By default each experiment runs the pipeline up to `evaluate` (`--target`), which writes every
number the measures need; the figures and the report are not rebuilt per arm.

`collect` reads `dvc exp show --json` and, per (arm, seed) found, the experiment commit's own run
records (records/train-seed<N>.json: epochs run, plateau stop, seconds, device, parameters;
reports/evaluation.json: classes), and writes its params, git revisions, the comparability of its
data (alexnet.fidelity.comparable, with the reason) and every measured number.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alexnet.claims import expqueue
from alexnet.claims.arms import ARMS, ARMS_BY_NAME, FORMAT, FORMAT_VERSION, Arm, yaml_value
from alexnet.claims.expqueue import dvc
from alexnet.config import ConfigError, params_from_dict
from alexnet.errors import PipelineError
from alexnet.evaluation.predictions import RUN_MEASURES, errors_of
from alexnet.fidelity import comparable
from alexnet.fileio import read_json
from alexnet.pipeline import provenance
from alexnet.pipeline.layout import EVALUATE_METRICS, EVALUATION, train_record

PREFIX = "ablate-"


def exp_name(arm: str, seed: int) -> str:
    return f"{PREFIX}{arm}-s{seed}"


def run_overrides(arm: Arm, seed: int, common: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every param a run of `arm` with `seed` sets: `common` (--set, for every arm alike), the
    arm's own overrides and the seed list."""
    return {**(common or {}), **arm.overrides, "train.seeds": [seed]}


def parse_set(items: list[str]) -> dict[str, Any]:
    """`--set key=value` options (values parsed as YAML, as `dvc exp run -S` does)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise PipelineError(f"--set {item!r}: expected section.key=value, e.g. train.epochs=2")
        out[key] = yaml.safe_load(value)
    return out


def queue_command(arm: Arm, seed: int, target: str | None = "evaluate",
                  common: dict[str, Any] | None = None) -> list[str]:
    """The `dvc exp run --queue` command line for one (arm, seed)."""
    cmd = ["dvc", "exp", "run", "--queue", "--name", exp_name(arm.name, seed)]
    for key, value in run_overrides(arm, seed, common).items():
        cmd += ["-S", f"{key}={yaml_value(value)}"]
    if target:
        cmd.append(target)
    return cmd


# --- reading `dvc exp show --json` ------------------------------------------------------------

@dataclass
class Experiment:
    name: str | None
    rev: str
    baseline: str  # the commit the experiment was run against
    params: dict[str, Any]  # params.yaml, nested
    metrics: dict[str, Any]  # metrics file path -> its data
    state: str  # success | queued | running | failed | unknown


def parse_exp_show(show: list[dict]) -> list[Experiment]:
    """The experiments in `dvc exp show --json` output (DVC 3), baselines in the order listed."""
    out = []
    for base in show:
        if base.get("rev") == "workspace":
            continue
        for group in base.get("experiments") or []:
            executor = group.get("executor") or {}
            for rev in group.get("revs") or []:
                data = rev.get("data") or {}
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
                metrics = {path: (m or {}).get("data") for path, m in (data.get("metrics") or {}).items()
                           if isinstance(m, dict) and m.get("data") is not None}
                state = executor.get("state") or ("failed" if rev.get("error") else "success")
                out.append(Experiment(rev.get("name") or group.get("name"), rev.get("rev", ""), base.get("rev", ""),
                                      params, metrics, state))
    return out


def get_param(params: dict, dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def matches(exp: Experiment, overrides: dict[str, Any]) -> bool:
    return all(get_param(exp.params, k) == (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items())


@dataclass
class Plan:
    queue: list[tuple[Arm, int]] = field(default_factory=list)
    skipped: list[tuple[Arm, int, str]] = field(default_factory=list)  # (arm, seed, why)


def plan_runs(arms: list[Arm], seeds: list[int], experiments: list[Experiment],
              common: dict[str, Any] | None = None) -> Plan:
    """What to queue: every (arm, seed) but those already run or queued with the same params.

    `experiments` are those of the current commit. A failed one is queued again; one with the
    name but other params (the arm changed since) is reported and left alone.
    """
    plan = Plan()
    by_name: dict[str, list[Experiment]] = {}
    for e in experiments:
        if e.name:
            by_name.setdefault(e.name, []).append(e)
    for arm in arms:
        for seed in seeds:
            found = [e for e in by_name.get(exp_name(arm.name, seed), []) if e.state != "failed"]
            same = [e for e in found if matches(e, run_overrides(arm, seed, common))]
            if same:
                plan.skipped.append((arm, seed, f"already {'ran' if same[0].state == 'success' else same[0].state} "
                                                f"({same[0].rev[:7]})"))
            elif found:
                plan.skipped.append((arm, seed, f"an experiment of that name has other params; "
                                                f"`dvc exp remove {exp_name(arm.name, seed)}` to rerun it"))
            else:
                plan.queue.append((arm, seed))
    return plan


# --- cost ---------------------------------------------------------------------------------------

def baseline_train_seconds(records_dir: str | Path = "records") -> tuple[float, dict] | None:
    """(mean training seconds per net, one run record) from the baseline's records/train-seed<N>.json."""
    records = [read_json(p) for p in sorted(Path(records_dir).glob("train-seed*.json"))]
    secs = [r["seconds"] for r in records if isinstance(r.get("seconds"), (int, float))]
    if not secs:
        return None
    return sum(secs) / len(secs), records[0]


def cost_line(epochs: list[int | None], jobs: int, records_dir: str | Path = "records") -> str:
    """What `run` prints before it starts: the runs queued (`epochs`: each one's train.epochs, None
    for the baseline's) and their cost from the baseline's record, scaled by epochs per net; an
    upper bound where the plateau stop may end a run first."""
    runs = len(epochs)
    found = baseline_train_seconds(records_dir)
    if found is None:
        return (f"Queueing {runs} run(s) (one net each). No baseline run record ({records_dir}/train-seed<N>.json) "
                "to estimate their cost from: run `dvc repro` first to know.")
    secs, rec = found
    base_epochs = rec.get("epochs") if isinstance(rec.get("epochs"), int) and rec["epochs"] > 0 else None
    base = (f"The baseline trained one net in {secs:.0f} s ({rec.get('epochs', '?')} epochs on "
            f"{rec.get('device', '?')}; {records_dir}/train-seed<N>.json)")
    each = [secs * (e / base_epochs if e and base_epochs else 1.0) for e in epochs]
    longer = sorted({e for e in epochs if e and base_epochs and e != base_epochs})
    if longer:
        base += "; at " + ", ".join(f"{e} epochs a run is {secs * e / base_epochs:.0f} s" for e in longer)
    total = sum(each)
    wall = max(total / max(1, jobs), max(each, default=0.0))
    bound = "at most " if any(e and base_epochs and e > base_epochs for e in epochs) else ""
    return (f"Queueing {runs} run(s) (one net each). {base}, so {bound}about {_duration(total)} of training in all, "
            f"{_duration(wall)} wall time with {jobs} worker(s) if the machine has the cores (or GPUs) for them, "
            "plus evaluation and DVC's set-up per run.")


def run_epochs(arm: Arm, seed: int, common: dict[str, Any] | None) -> int | None:
    """The train.epochs a run of `arm` sets (None: params.yaml's, the baseline record's)."""
    epochs = run_overrides(arm, seed, common).get("train.epochs")
    return epochs if isinstance(epochs, int) else None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# --- running DVC -----------------------------------------------------------------------------------

def exp_show(*extra: str) -> list[dict]:
    out = dvc("exp", "show", "--json", *extra)
    try:
        return json.loads(out)
    except json.JSONDecodeError as e:
        raise PipelineError(f"`dvc exp show --json` printed no JSON ({e})") from e


def print_plan(plan: Plan, jobs: int, records_dir: str | Path, common: dict[str, Any] | None) -> None:
    """What is skipped and why, then how many runs are queued and their cost."""
    for arm, seed, why in plan.skipped:
        print(f"skip {exp_name(arm.name, seed)}: {why}")
    print(cost_line([run_epochs(arm, seed, common) for arm, seed in plan.queue], jobs, records_dir))


def seconds_per_net(records_dir: str | Path) -> float | None:
    """The baseline's recorded training seconds per net (None without a record)."""
    found = baseline_train_seconds(records_dir)
    return found[0] if found else None


def queue_plan(arms: list[Arm], seeds: list[int], target: str | None, common: dict[str, Any] | None,
               records_dir: str | Path, jobs: int, quiet: bool = False) -> Plan:
    """Under the planning lock: settle stale tasks (a dead worker's), then queue what has not run."""
    with expqueue.planning():
        stale = expqueue.stale(*expqueue.status())
        for t in stale:
            print(f"stale {t.name or t.rev}: listed Running but its process is gone (a killed worker); "
                  "marking it failed and queueing it again")
        expqueue.settle_stale(stale)
        plan = plan_runs(arms, seeds, parse_exp_show(exp_show()), common)
        if not quiet:
            print_plan(plan, jobs, records_dir, common)
        for arm, seed in plan.queue:
            cmd = queue_command(arm, seed, target, common)
            print("$ " + " ".join(cmd))
            dvc(*cmd[1:])
    return plan


def run(arms: list[Arm], seeds: list[int], jobs: int, dry_run: bool, target: str | None,
        records_dir: str | Path = "records", poll: float = 10.0, common: dict[str, Any] | None = None) -> Plan:
    """Queue the (arm, seed) runs that have not run yet, start `jobs` workers, wait for them.

    Rerunning the same command after a crash finishes the sweep: a task a killed worker left
    Running is settled and queued again, queued tasks get workers, and the wait resumes. Ends
    with an error naming every run that failed; never success while a run is missing.
    """
    if dry_run:
        plan = plan_runs(arms, seeds, [], common)
        print_plan(plan, jobs, records_dir, common)
        for arm, seed in plan.queue:
            print("$ " + " ".join(queue_command(arm, seed, target, common)))
        return plan
    head = provenance.head_commit()
    names = {exp_name(a.name, s) for a in arms for s in seeds}
    plan = queue_plan(arms, seeds, target, common, records_dir, jobs)
    per_run = seconds_per_net(records_dir)
    start, started_done = time.monotonic(), None
    while True:
        tasks, workers = expqueue.status()
        mine = [t for t in tasks if t.name in names]
        if expqueue.stale(mine, workers):  # a worker died while we waited: settle, requeue, go on
            queue_plan(arms, seeds, target, common, records_dir, jobs, quiet=True)
            continue
        waiting = [t for t in mine if t.status in expqueue.WAITING]
        if not waiting:
            break
        if not workers:
            print(f"$ dvc queue start -j {jobs}")
            expqueue.start_workers(jobs)
        done = sum(t.status == "Success" for t in mine)
        started_done = done if started_done is None else started_done
        print(progress_line(len(names) - len(waiting), len(names), len(waiting), jobs,
                            time.monotonic() - start, done - started_done, per_run), flush=True)
        time.sleep(poll)
    # the experiments of the commit they were queued on, even if HEAD has moved since
    found = {e.name: e for e in parse_exp_show(exp_show(*(["--rev", head] if head else [])))}
    failed = sorted(n for n in names if n not in found or found[n].state == "failed")
    if failed:
        raise PipelineError(f"{len(failed)} of {len(names)} run(s) did not finish: {', '.join(failed)} "
                            "(`alexnet-ablations status` shows why; rerun the same command to retry)")
    print("All runs done: `dvc exp show` lists them; `alexnet-ablations collect` gathers their metrics.")
    return plan


def progress_line(finished: int, total: int, waiting: int, jobs: int, elapsed: float, done_here: int,
                  per_run: float | None) -> str:
    """`n of N done` and the time left: from this wait's own pace once a run finished in it, else
    from the baseline's recorded training time per net."""
    pace = elapsed / done_here if done_here else per_run
    left = f", about {_duration(pace * math.ceil(waiting / max(1, jobs)))} left" if pace else ""
    return f"  {finished} of {total} run(s) done, {waiting} queued or running{left} ({elapsed:.0f} s so far)"


def sweep_status(arms: list[Arm], seeds: list[int]) -> tuple[list[dict[str, Any]], int | None]:
    """Per (arm, seed): done (its top-1 error), running, queued, failed (its log's last line),
    stale (listed Running, its process gone) or not run; and the queue's active workers."""
    tasks, workers = expqueue.status()
    by_name = {t.name: t for t in tasks if t.name}
    stale = {t.name for t in expqueue.stale(tasks, workers)}
    names = {exp_name(a.name, s) for a in arms for s in seeds}
    # HEAD's experiments; every commit's when the queue finished runs queued on an earlier one
    shown = parse_exp_show(exp_show())
    if any(t.status == "Success" for t in tasks if t.name in names) and \
            not {t.name for t in tasks if t.status == "Success"} <= {e.name for e in shown}:
        shown = parse_exp_show(exp_show("--all-commits"))
    exps: dict[str, Experiment] = {}
    for e in shown:
        if e.name and (e.name not in exps or e.state == "success"):
            exps[e.name] = e
    rows = []
    for arm in arms:
        for seed in seeds:
            name = exp_name(arm.name, seed)
            task, exp = by_name.get(name), exps.get(name)
            detail = ""
            if name in stale:
                state, detail = "stale", "its process is gone (a killed worker): `ablations run` queues it again"
            elif task is not None and task.status in expqueue.WAITING:
                state = task.status.lower()
            elif (exp is not None and exp.state == "success") or (task is not None and task.status == "Success"):
                state = "done"
                errors = errors_of(exp.metrics.get(EVALUATE_METRICS)) if exp is not None else None
                detail = f"top-1 {errors['top1_error']:.2f}%" if errors else ""
            elif (task is not None and task.status == "Failed") or (exp is not None and exp.state == "failed"):
                state, detail = "failed", expqueue.last_log_line(name)
            else:
                state = "not run"
            rows.append({"run": name, "state": state, "detail": detail})
    return rows, workers


def status_lines(rows: list[dict[str, Any]], workers: int | None, per_run: float | None) -> list[str]:
    lines = [f"{r['run']:32s} {r['state']:8s} {r['detail']}".rstrip() for r in rows]
    left = [r for r in rows if r["state"] in ("queued", "running", "stale", "not run", "failed")]
    done = sum(r["state"] == "done" for r in rows)
    summary = f"{done} of {len(rows)} done; {workers if workers is not None else '?'} worker(s) active"
    if per_run and left:
        summary += (f"; about {_duration(per_run * math.ceil(len(left) / max(1, workers or 1)))} of training left "
                    "(the baseline's recorded time per net)")
    return lines + [summary]


# --- collection ---------------------------------------------------------------------------------

def git_json(rev: str, path: str) -> dict | None:
    """A JSON file as committed in `rev` (an experiment's commit), or None where it is not there."""
    result = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _subset_active(raw: Any) -> bool | None:
    """Whether params.yaml's data.subset (as an experiment recorded it) takes less than everything."""
    if not isinstance(raw, dict):
        return None
    try:
        return params_from_dict({"data": {"subset": raw}}).data.subset.active
    except ConfigError:
        return None


def run_numbers(exp: Experiment, seed: int, read: Callable[[str, str], dict | None]) -> dict[str, Any]:
    """What one run measured, beyond its headline errors: the evaluation's run measures
    (metrics/evaluate.json), and its training record (records/train-seed<N>.json) as committed in
    the experiment. None where the run predates a measure."""
    metrics = exp.metrics.get(EVALUATE_METRICS) or {}
    record = read(exp.rev, train_record(seed)) or {}
    return {"val_center_top1_error": metrics.get("center_top1_error"),
            **{k: metrics.get(k) for k in RUN_MEASURES},
            "epochs_run": record.get("epochs"), "converged": record.get("stopped_by_schedule"),
            "train_seconds": record.get("seconds"), "device": record.get("device"),
            "parameters": record.get("parameters")}


def collect(show: list[dict], arms: tuple[Arm, ...] = ARMS,
            read: Callable[[str, str], dict | None] = git_json) -> dict[str, Any]:
    """ablations/results.json's content from `dvc exp show --json` output, and the run records each
    experiment committed (`read(rev, path)`: git by default).

    Per (arm, seed) the newest experiment named ablate-<arm>-s<seed> (baselines in the order DVC
    lists them, the current commit first) that has evaluate metrics and the arm's params.
    """
    runs = []
    seen = set()
    for exp in parse_exp_show(show):
        if not exp.name or not exp.name.startswith(PREFIX) or exp.state != "success":
            continue
        base, _, seed_txt = exp.name[len(PREFIX):].rpartition("-s")
        arm = ARMS_BY_NAME.get(base)
        if arm is None or not seed_txt.isdigit() or (arm.name, int(seed_txt)) in seen:
            continue
        seed = int(seed_txt)
        errors = errors_of(exp.metrics.get(EVALUATE_METRICS))
        if errors is None or not matches(exp, run_overrides(arm, seed)):
            continue
        seen.add((arm.name, seed))
        source, epochs = get_param(exp.params, "data.source"), get_param(exp.params, "train.epochs")
        classes = (read(exp.rev, EVALUATION) or {}).get("classes")
        subset = _subset_active(get_param(exp.params, "data.subset"))
        fit = comparable(source, classes, subset, epochs)
        runs.append({
            "name": exp.name, "arm": arm.name, "seed": seed,
            "params": {k: get_param(exp.params, k) for k in
                       [*arm.overrides, "train.seeds", "train.epochs", "model.width", "data.source", "data.subset"]},
            "dataset": source, "classes": classes, "subset": subset, "epochs": epochs,
            "comparable": fit.ok, "comparable_reason": fit.reason,
            "experiment_rev": exp.rev, "baseline_rev": exp.baseline,
            **errors, **run_numbers(exp, seed, read),
        })
    runs.sort(key=lambda r: ([a.name for a in arms].index(r["arm"]), r["seed"]))
    return {"format": FORMAT, "version": FORMAT_VERSION, "metric": "single net (metrics/evaluate.json)",
            "note": ("collected by `alexnet-ablations collect` from `dvc exp show --json` and each "
                     "experiment's run records; runs that are not comparable (alexnet.fidelity.comparable) are "
                     "pipeline checks, not reproductions"),
            "runs": runs}
