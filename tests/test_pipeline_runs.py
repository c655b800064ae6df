"""The whole pipeline as users run it: killed and rerun, and shared through a DVC remote.

A copy of this repository (its files as they are, git-committed in a temporary folder) runs a
small version of the tiny pipeline straight through. Then:
- another copy is killed with -9 (the whole process group, as a crash would) while the first net
  trains (after its first checkpoint) and again while evaluate runs, then rerun to the end: every
  output dvc.lock records (run records aside: alexnet.pipeline.lockcheck) has the straight run's hash;
- the straight run is pushed to a remote in a temporary folder and cloned: `dvc pull` then
  `dvc repro` reruns nothing, and `dvc status` lists nothing;
- a user's own files (data.root, outside the repository): replacing one makes `dvc status` say
  so, and moving them (data.root pointed there) reruns download and nothing after it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from alexnet.pipeline.lockcheck import output_hashes

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("dvc") is None or shutil.which("git") is None, reason="needs dvc and git")]

REPO = Path(__file__).resolve().parents[1]
# Small enough to run three times in a few minutes; every stage still runs.
SMALL = {
    "tiny": {"train_per_class": 12, "val_per_class": 4},
    "model": {"width": 0.125},
    "train": {"epochs": 2, "chance_warn_steps": 0},
    "analyze": {"tsne_points": 40, "queries": 3},
    "cifar": {"tiny_train_per_class": 10, "tiny_test_per_class": 4, "epochs": 2, "lr_grid": [0.03], "seeds": [0],
              "lrn_epochs": [1, 0, 0]},
    "numerics": {"bit_identity": False},  # about interruption, not other CPUs: the fast kernels
}


def sh(*cmd: str, cwd: Path) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def copy_of_repo(dest: Path) -> Path:
    """The project's files (tracked and new, not ignored) in a fresh git repository, small params."""
    files = sh("git", "ls-files", "-co", "--exclude-standard", cwd=REPO).splitlines()
    for name in files:
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in SMALL.items():
        params[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "init", "-q", cwd=dest)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A", cwd=dest)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy", cwd=dest)
    return dest


def repro(cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    return subprocess.Popen(["dvc", "repro"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def running(cwd: Path, script: str) -> bool:
    """Whether a process under `cwd` runs `script` (e.g. stages.evaluate: `python -m stages.evaluate`)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if script in (proc / "cmdline").read_bytes().decode(errors="replace") and \
                    Path(os.readlink(proc / "cwd")).is_relative_to(cwd):
                return True
        except OSError:
            continue
    return False


def kill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 600) -> None:
    """SIGKILL `proc`'s whole process group (dvc and the stage under it) once `ready()`."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"dvc repro ended before {what}: {proc.stdout.read()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def finish(cwd: Path) -> dict[str, str]:
    proc = repro(cwd)
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, out
    return output_hashes(yaml.safe_load((cwd / "dvc.lock").read_text()))


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A copy run straight through: (its folder, its output hashes)."""
    repo = copy_of_repo(tmp_path_factory.mktemp("straight"))
    return repo, finish(repo)


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc to see the stages")
def test_killed_repro_reruns_to_the_same_outputs(tmp_path, straight):
    crashed = copy_of_repo(tmp_path / "crashed")
    first = repro(crashed)
    kill_when(first, lambda: (crashed / "checkpoints/seed0/last.pt").exists()
              and not (crashed / "models/seed0").exists(), "the first net's first checkpoint")
    second = repro(crashed)
    kill_when(second, lambda: running(crashed, "stages.evaluate"), "evaluate to start")
    assert finish(crashed) == straight[1]
    assert {"data/stats", "models/seed0", "data/eval", "reports/report.md", "metrics/evaluate.json"} <= set(straight[1])


def test_a_clone_pulls_the_results_and_reruns_nothing(tmp_path, straight):
    repo, hashes = straight
    remote = tmp_path / "remote"
    sh("dvc", "remote", "add", "-f", "-d", "shared", str(remote), cwd=repo)
    sh("dvc", "push", cwd=repo)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A", cwd=repo)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results", cwd=repo)
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    sh("dvc", "pull", cwd=clone)
    status = sh("dvc", "status", cwd=clone)
    assert status.strip() == "Data and pipelines are up to date.", status
    proc = subprocess.run(["dvc", "repro"], cwd=clone, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Running stage" not in proc.stdout, proc.stdout
    assert output_hashes(yaml.safe_load((clone / "dvc.lock").read_text())) == hashes


def test_dvc_status_sees_a_users_files_change_and_not_move(tmp_path):
    """data.root is download's dependency in dvc.yaml: a replaced file is news to `dvc status`;
    the same files elsewhere (data.root pointed there, mtimes new) rerun download only."""
    sys.path.insert(0, str(REPO / "tests"))
    from sources_helpers import jpeg, make_ilsvrc2012, tar_bytes

    repo = copy_of_repo(tmp_path / "repo")
    root = tmp_path / "imagenet"
    make_ilsvrc2012(root)

    def point_at(folder: Path) -> None:
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["data"].update({"source": "ilsvrc2012", "root": str(folder), "verify_md5": False})
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    point_at(root)
    sh("dvc", "repro", "prepare", cwd=repo)
    assert sh("dvc", "status", "--with-deps", "prepare", cwd=repo).strip() == "Data and pipelines are up to date."

    # the same name, one image different: dvc status names the folder, before any repro
    val = root / "ILSVRC2012_img_val.tar"
    members = [(f"ILSVRC2012_val_{i:08d}.JPEG", jpeg((i * 40, 0, 0))) for i in range(1, 6)]  # 5, as the devkit lists
    val.write_bytes(tar_bytes(members))
    status = sh("dvc", "status", "--with-deps", "prepare", cwd=repo)
    assert "download:" in status and "modified:" in status and str(root) in status, status
    sh("dvc", "repro", "prepare", cwd=repo)

    moved = tmp_path / "elsewhere" / "ilsvrc"
    shutil.copytree(root, moved)  # new paths, new mtimes, the same bytes
    point_at(moved)
    out = sh("dvc", "repro", "prepare", cwd=repo)
    assert "Running stage 'download'" in out and "Running stage 'prepare'" not in out, out
    assert sh("dvc", "status", "--with-deps", "prepare", cwd=repo).strip() == "Data and pipelines are up to date."
