"""Markdown and LaTeX tables and table cells, one way for the whole package (report, results, claims)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def fmt(value: Any, digits: int = 2) -> str:
    """A number for a table cell: '-' when absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def md_table(header: list[str], rows: list[list[Any]], numeric: list[bool] | None = None) -> str:
    """A GitHub-flavoured Markdown table; numeric columns right-aligned."""
    numeric = numeric or [False] + [True] * (len(header) - 1)

    def line(cells: list[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    sep = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows]) + "\n"


def titled_table(title: str, header: list[Any], rows: list[list[Any]], numeric: list[bool],
                 notes: list[str]) -> str:
    """`## title`, the table, then its notes as a bullet list (the results and claims tables)."""
    return f"## {title}\n\n" + md_table(header, rows, numeric) + "\n" + "".join(f"- {n}\n" for n in notes)


def latex_table(shown: pd.DataFrame, column_format: str, caption: str, label: str) -> str:
    """A booktabs `table*` via pandas' Styler (jinja2), every cell and header escaped (the results
    and claims tables)."""
    styler = shown.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    return styler.to_latex(column_format=column_format, hrules=True, caption=caption, label=label,
                           position="htbp", environment="table*")


__all__ = ["fmt", "latex_table", "md_table", "titled_table"]
