"""A small git + DVC project as a lab's sweep sees it, for the cluster launcher's tests: a bare git
remote (file path) and a local DVC remote, a `prep` stage whose output is only on the DVC remote
(a job must pull it), and an `evaluate` stage that trains in epochs with a checkpoint per epoch
in checkpoints/seed<N>/ (git-ignored, as the real train stage's), writes the top-1 error from
the params the arms change, a cached model and the run record collect reads."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

PREP = 'import os; os.makedirs("data", exist_ok=True); open("data/base.txt", "w").write("30\\n")\n'

# Epochs of a toy recurrence; each epoch's state saved whole before the next starts, each start's
# first epoch appended to checkpoints/seed<N>/starts (the test reads how it resumed).
TRAIN = textwrap.dedent("""
    import json, os, time, yaml
    from pathlib import Path
    p = yaml.safe_load(open("params.yaml"))
    seed, epochs = p["train"]["seeds"][0], p["train"]["epochs"]
    state = Path("checkpoints") / f"seed{seed}"
    state.mkdir(parents=True, exist_ok=True)
    last = state / "last.json"
    epoch, w = json.loads(last.read_text()) if last.exists() else (0, float(open("data/base.txt").read()) + seed)
    with open(state / "starts", "a") as f:
        f.write(f"{epoch}\\n")
    while epoch < epochs:
        epoch += 1
        w = 0.5 * w + 15.0 + (0.0 if p["model"]["lrn"] else 2.5) / epoch
        time.sleep(float(os.environ.get("SWEEP_TEST_EPOCH_S", "0")))
        tmp = last.with_suffix(".tmp")
        tmp.write_text(json.dumps([epoch, w]))
        tmp.replace(last)
    os.makedirs("models", exist_ok=True)
    open("models/net.txt", "w").write(repr(w))
    os.makedirs("metrics", exist_ok=True)
    json.dump({"top1_error": round(w, 9), "top5_error": 5.0}, open("metrics/evaluate.json", "w"))
    os.makedirs("records", exist_ok=True)
    json.dump({"seconds": 1.0, "epochs": epochs, "device": "cpu"}, open(f"records/train-seed{seed}.json", "w"))
""")


@dataclass(frozen=True)
class Project:
    repo: Path  # the lab's working copy, its commit pushed
    remote: Path  # the bare git remote
    dvc_remote: Path
    commit: str


def sh(*cmd: str, cwd: Path) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_project(tmp_path: Path, epochs: int = 4) -> Project:
    """The project committed and pushed (git and DVC); `prep`'s output only on the DVC remote."""
    repo, remote, store = tmp_path / "repo", tmp_path / "remote.git", tmp_path / "dvc-remote"
    repo.mkdir()
    store.mkdir()
    sh("git", "init", "-q", "--bare", "--initial-branch=main", str(remote), cwd=tmp_path)
    (repo / "params.yaml").write_text(f"data:\n  source: tiny\nmodel:\n  lrn: true\ntrain:\n  seeds: [0]\n"
                                      f"  epochs: {epochs}\n")
    (repo / "prep.py").write_text(PREP)
    (repo / "train.py").write_text(TRAIN)
    (repo / ".gitignore").write_text("/checkpoints/\n")
    (repo / "dvc.yaml").write_text(textwrap.dedent(f"""
        stages:
          prep:
            cmd: {sys.executable} prep.py
            deps: [prep.py]
            outs: [data]
          evaluate:
            cmd: {sys.executable} train.py
            deps: [train.py, data]
            params: [model, train]
            outs:
              - models
              - records/train-seed0.json:
                  cache: false
            metrics:
              - metrics/evaluate.json:
                  cache: false
    """))
    sh("git", "init", "-q", "--initial-branch=main", cwd=repo)
    sh("git", "config", "user.email", "lab@example.com", cwd=repo)
    sh("git", "config", "user.name", "lab", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    sh("dvc", "remote", "add", "-q", "-d", "store", str(store), cwd=repo)
    sh("dvc", "repro", "-q", "prep", cwd=repo)
    sh("dvc", "push", "-q", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "baseline", cwd=repo)
    sh("git", "remote", "add", "origin", str(remote), cwd=repo)
    sh("git", "push", "-q", "origin", "main", cwd=repo)
    return Project(repo, remote, store, sh("git", "rev-parse", "HEAD", cwd=repo).strip())


def remote_json(project: Project, sha: str, path: str) -> dict:
    """A JSON file as committed in `sha` on the bare remote."""
    return json.loads(sh("git", "--git-dir", str(project.remote), "show", f"{sha}:{path}", cwd=project.remote))


def uninterrupted_top1(project: Project, tmp_path: Path, lrn: bool = True) -> float:
    """The top-1 error the evaluate stage writes when nothing interrupts it (run here, directly)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    work = tmp_path / "uninterrupted"
    sh("git", "clone", "-q", str(project.remote), str(work), cwd=tmp_path)
    sh("dvc", "pull", "-q", "prep", cwd=work)
    if not lrn:
        (work / "params.yaml").write_text((work / "params.yaml").read_text().replace("lrn: true", "lrn: false"))
    sh(sys.executable, "train.py", cwd=work)
    return json.loads((work / "metrics" / "evaluate.json").read_text())["top1_error"]
