"""The experiments table a reader compares: headline metrics and only the params that differ.

    alexnet-exptable                    # this commit's experiments, at most 120 columns
    alexnet-exptable --all-commits --width 160

`dvc exp show` prints every param (params.yaml has ~110), every metric and every dependency's
hash: about 200 columns. This reads `dvc exp show --json` and prints one row per experiment (and
the commit they branch from) with the ten-crop top-1/top-5 errors of one net and of the ensemble,
then the params whose values differ between the rows shown, named by their dotted key; params
that do not fit the width are listed under the table instead of being cut silently.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from alexnet.pipeline.layout import EVALUATE_METRICS

HEADLINE = {"top1_error": "top-1", "top5_error": "top-5", "ensemble_top1_error": "ens top-1",
            "ensemble_top5_error": "ens top-5"}
NAME_WIDTH = 28  # ablate-no-overlap-pool-s0 and the like whole


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested params as {dotted.key: value} (lists kept whole)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _row(name: str, data: dict, state: str = "done") -> dict[str, Any]:
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    # a queued or running experiment shows its baseline's metrics in `dvc exp show`: not its own
    metrics = ((data.get("metrics") or {}).get(EVALUATE_METRICS) or {}).get("data") or {} if state == "done" else {}
    return {"name": name, "state": state, "params": flatten(params),
            "metrics": {k: metrics.get(k) for k in HEADLINE}}


def rows_of(show: list[dict]) -> list[dict[str, Any]]:
    """One row per experiment and per commit they branch from (the workspace aside)."""
    rows = []
    commits = [b for b in show if b.get("rev") != "workspace"]
    for base in commits:
        # a commit's own row where experiments branch from it (or it is the only one shown)
        if base.get("data") and (base.get("experiments") or len(commits) == 1):
            rows.append(_row(base.get("name") or str(base.get("rev", ""))[:7], base["data"]))
        for group in base.get("experiments") or []:
            state = (group.get("executor") or {}).get("state") or "success"
            state = "done" if state == "success" else state  # queued | running | failed
            for rev in group.get("revs") or []:
                if rev.get("data"):
                    name = rev.get("name") or group.get("name") or str(rev.get("rev", ""))[:7]
                    rows.append(_row(name, rev["data"], "failed" if rev.get("error") else state))
    return rows


def differing(rows: list[dict[str, Any]]) -> list[str]:
    """The params whose values are not the same in every row, in params.yaml's order."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r["params"] if k not in keys]
    return [k for k in keys if len({json.dumps(r["params"].get(k), sort_keys=True) for r in rows}) > 1]


def _short(name: str) -> str:
    """At most NAME_WIDTH characters, cut in the middle so that the seed suffix stays."""
    if len(name) <= NAME_WIDTH:
        return name
    keep = NAME_WIDTH - 3
    return name[:keep - keep // 3] + "..." + name[len(name) - keep // 3:]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def render(rows: list[dict[str, Any]], width: int = 120) -> str:
    """The table, no wider than `width`; params that do not fit are named below it."""
    if not rows:
        return "No experiments (dvc exp show lists none for this commit; try --all-commits)."
    columns = [("experiment", [_short(r["name"]) for r in rows])]
    if any(r["state"] != "done" for r in rows):
        columns.append(("state", [r["state"] for r in rows]))
    columns += [(label, [_cell(r["metrics"][k]) for r in rows]) for k, label in HEADLINE.items()]
    left_out = []
    used = sum(max(len(h), *map(len, cells)) + 2 for h, cells in columns)
    for key in differing(rows):
        cells = [_cell(r["params"].get(key)) for r in rows]
        need = max(len(key), *map(len, cells)) + 2
        if used + need > width:
            left_out.append(key)
            continue
        columns.append((key, cells))
        used += need
    widths = [max(len(h), *map(len, cells)) for h, cells in columns]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, ((h, _), w) in enumerate(zip(columns, widths)))]
    for j in range(len(rows)):
        lines.append("  ".join(cells[j].ljust(w) if i == 0 else cells[j].rjust(w)
                               for i, ((_, cells), w) in enumerate(zip(columns, widths))))
    lines = [ln.rstrip() for ln in lines]
    if left_out:
        lines += textwrap.wrap(f"(also differing, not shown in {width} columns: {', '.join(left_out)})", width)
    return "\n".join(lines)
