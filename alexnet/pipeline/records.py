"""Run records: what varies between two runs of the same inputs (when it ran, on what, how fast,
from which code), written by one function with one header, so every records/<stage>.json reads
the same way:

    revision      HEAD's commit, `+dirty` when tracked code or params differ (provenance.git_revision)
    dirty_paths   the tracked files that differ
    versions      Python and the libraries
    machine       CPU (model, vendor, vector ISA) and GPUs
    numerics      the numerics mode asked for and in effect (alexnet.runtime.backend.numerics_record),
                  or None for a stage that runs no torch arithmetic
    seconds       the stage's wall time

then the stage's own fields. No stage reads a record: what a later stage needs (classes, split,
counts) is a real output (alexnet.pipeline.layout), so a record's churn reruns nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alexnet.fileio import write_json
from alexnet.pipeline import provenance

HEADER = ("revision", "dirty_paths", "versions", "machine", "numerics", "seconds")


def header(seconds: float | None, numerics: dict[str, Any] | None) -> dict[str, Any]:
    """The fields every run record starts with (see the module docstring)."""
    revision, dirty = provenance.revision_and_dirty_paths()
    return {"revision": revision, "dirty_paths": dirty,
            "versions": provenance.library_versions(),
            "machine": {**provenance.cpu_identity(), "logical_cores": os.cpu_count(), "gpu": provenance.hardware()["gpu"]},
            "numerics": numerics, "seconds": None if seconds is None else round(seconds, 3)}


def write_record(path: str | Path, fields: dict[str, Any], *, seconds: float | None,
                 numerics: dict[str, Any] | None = None) -> None:
    """Write a stage's run record atomically: the common header, then `fields` (which may not
    redefine a header field)."""
    clash = sorted(set(fields) & set(HEADER))
    if clash:
        raise ValueError(f"run record fields {clash} are the header's (alexnet.pipeline.records.HEADER)")
    write_json(path, header(seconds, numerics) | fields)
