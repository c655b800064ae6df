"""Fixtures several test modules share."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from slurm_cluster import Cluster, ClusterError, start_cluster, unavailable


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real one-node SLURM cluster (tests/slurm_cluster.py), started once per session (~35 s) for
    the `slurm` tests; skipped where it cannot start, except under CI, where that fails."""
    reason = unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"no SLURM test cluster under CI: {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        with start_cluster(tmp_path_factory.mktemp("slurm")) as running, pytest.MonkeyPatch.context() as patch:
            for name, value in running.environ.items():
                patch.setenv(name, value)  # sbatch, sacct and scontrol, here and inside jobs
            yield running
    except ClusterError as error:
        pytest.fail(str(error), pytrace=False)
