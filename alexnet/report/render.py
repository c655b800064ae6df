"""The report stage: one paper-style report of a run, as Markdown and as self-contained HTML.

Owns reports/report.md, reports/report.html and the training-curves figure beside them. What the
report shows is gathered once into one dict (`report_context`: numbers, table rows as data, image
paths, flags), one key a section; alexnet/report/templates/report.md.j2 owns every word and every piece
of Markdown and renders it in the paper's order (setup, architecture, training, Tables 1 and 2,
the claims, Section 6.1's figures, provenance). The HTML is that Markdown rendered by markdown-it-py
into report.html.j2 with every image embedded as base64, so the two say the same thing and the
HTML opens anywhere on its own. Every number states where it came from and how many runs it rests
on; a run that is not the paper's (alexnet.fidelity.comparable: the tiny dataset, a subset, fewer
epochs) carries a banner saying so.

It reads files only (alexnet.report.inputs), all of which it depends on in dvc.yaml: the metrics (prepare's counts,
evaluate's errors, analyze's numbers), what the evaluation evaluated, the trained nets' info.json
and architecture.json, the figures' list (figures.json), the claims table, the DVCLive curves and
dvc.lock; it imports no model, pixel, analysis or claims code. No run record (records/: wall
time, images/s, the revision) is read: they vary on every rerun, so a rerun that gives the same
nets and numbers leaves the report up to date.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import matplotlib
import pandas as pd
import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup
from matplotlib.figure import Figure  # files only: no pyplot, no backend switch
from matplotlib.ticker import MaxNLocator

from alexnet import paper
from alexnet.claims.cifar.data import shown_runs
from alexnet.config import Params, to_dict
from alexnet.evaluation.predictions import errors_of
from alexnet.fidelity import comparable, paper_deviations
from alexnet.fileio import atomic_path, write_text
from alexnet.model import netstore
from alexnet.pipeline import layout, provenance
from alexnet.pipeline.layout import CIFAR_FIGURE, CIFAR_RATIO_FIGURE, CLAIMS_TABLE, FIGURES_LIST, RESULT_TABLES
from alexnet.report.inputs import ReportInputs, Runs, load_runs, read_json_or_empty, read_text_or_none
from alexnet.tables import fmt

# What the stages before the report write for it, by name (the report imports none of them).
ANALYSIS_FIGURES = ("kernels", "top5", "neighbours", "tsne")  # figures.json's keys, in the report's order
RETRIEVAL_METHODS = ("fc7", "pixel", "autoencoder", "lsh")  # analyze's <method>_precision_at_<k>
HASHED_DATA = (layout.RAW, layout.PREPARED, layout.STATS)  # dvc.lock outputs the provenance names
CURVES = ("loss", "top1_error", "top5_error", "lr")
LIBRARIES = ("torch", "torchvision", "numpy", "scikit-learn", "dvc", "dvclive", "pandas", "matplotlib",
             "pillow", "scipy")


# --- figures --------------------------------------------------------------------------------

def plot_training_curves(curves: dict[int, pd.DataFrame], path: Path) -> None:
    """Loss, top-1 and top-5 error (train solid, validation dashed) and lr per epoch, per seed."""
    fig = Figure(figsize=(11, 7.5))
    axes = fig.subplots(2, 2)
    colours = matplotlib.colormaps["tab10"]
    titles = {"loss": "cross-entropy loss", "top1_error": "top-1 error (%)", "top5_error": "top-5 error (%)",
              "lr": "learning rate"}
    for ax, metric in zip(axes.ravel(), CURVES):
        for i, (seed, df) in enumerate(sorted(curves.items())):
            c = colours(i % 10)
            if metric == "lr":
                if "lr" in df:
                    # steps centred on each epoch: the lr that epoch trained with
                    ax.plot(df.index, df["lr"], drawstyle="steps-mid", marker="o", markersize=3, color=c,
                            label=f"seed {seed}")
                continue
            for split, style in (("train", "-"), ("val", "--")):
                col = f"{split}/{metric}"
                if col in df:
                    ax.plot(df.index, df[col], style, color=c, marker="o", markersize=3,
                            label=f"seed {seed} {'validation' if split == 'val' else 'train'}")
        ax.set_title(titles[metric], fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        if metric == "lr":
            ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Training curves (DVCLive, one point per epoch)", fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


# --- the report's data: one dict, a key a section, rendered by templates/report.md.j2 --------

def _image(path: Path | None, md_dir: Path) -> str | None:
    """An image's path relative to the Markdown, or None when its stage has not produced it."""
    return Path(os.path.relpath(path, md_dir)).as_posix() if path is not None and path.is_file() else None


def _subset(sub: dict[str, Any] | None) -> dict[str, Any] | None:
    """Which part of the dataset prepare took (metrics/prepare.json "subset", written by
    alexnet.data.sources.subset.summary); None: the whole dataset."""
    if not sub:
        return None
    p = sub["params"]
    return {"classes": sub["num_classes"], "images": sub["images"],
            "classes_by": "wnids" if p.get("wnids") else "seed" if p.get("classes") else None, "seed": p.get("seed"),
            "per_class": {key: p[key] for key in ("train_per_class", "eval_per_class") if p.get(key)},
            # a partial copy (data.subset.allow_partial): how many listed images are missing
            "missing": None if sub["complete"] else sum(v["images_missing"] for v in sub["shortfall"].values())}


def _setup(params: Params, runs: Runs) -> dict[str, Any]:
    """Section 1: this run's dataset and recipe (the template sets the paper's beside them)."""
    return {"classes": runs.evaluate.get("classes") or runs.infos.get(params.train.seeds[0], {}).get("num_classes"),
            "train_images": runs.prepare.get("images", {}).get("train"),
            "quarantined": runs.prepare.get("quarantined_total"),
            "subset": _subset(runs.prepare.get("subset")),
            "trained_epochs": [info.get("epochs") for _, info in sorted(runs.infos.items())],
            "deviations": paper_deviations(params)}


def _paper_layer(name: str) -> dict[str, Any] | None:
    """The paper's layer of that name (Section 3), or None when the paper has none."""
    conv = {n: {"kernels": k, "shape": shape, "stride": s} for n, k, shape, s in paper.CONV_LAYERS}
    fc = {n: {"out_features": out} for n, out in paper.FC_LAYERS}
    return (conv | fc).get(name)


def _architecture(params: Params, arch: dict[str, Any]) -> dict[str, Any] | None:
    """Section 2: train's architecture.json, each layer with the paper's; None: no net trained yet."""
    if not arch:
        return None
    classes = arch.get("num_classes")
    return {"layers": [layer | {"paper": _paper_layer(layer["name"])} for layer in arch["layers"]],
            "parameters": arch["parameters"], "classes": classes,
            "scaled": params.model.width != 1.0 or (classes or 1000) != 1000, "seed": params.train.seeds[0]}


def _net_row(seed: int, info: dict, curves: pd.DataFrame | None) -> dict[str, Any]:
    """One net's last epoch (DVCLive) and where it trained (info.json)."""
    last = curves.iloc[-1] if curves is not None and len(curves) else {}
    return {"seed": seed, "epochs": info.get("epochs", len(curves) if curves is not None else None),
            "loss": last.get("train/loss"), "top1_error": last.get("val/top1_error"),
            "top5_error": last.get("val/top5_error"), "lr": last.get("lr"), "device": info.get("device")}


def _training(params: Params, runs: Runs, curves_png: Path, md_dir: Path) -> dict[str, Any]:
    """Section 3: the curves figure and each net's last epoch."""
    # no curves: no figure, even a stale one from an earlier run
    return {"curves": _image(curves_png, md_dir) if runs.curves else None, "runs": len(runs.curves),
            "nets": [_net_row(seed, runs.infos.get(seed, {}), runs.curves.get(seed)) for seed in params.train.seeds]}


def _evaluation_rows(ev: dict[str, Any]) -> list[dict[str, Any]]:
    """Every evaluation number: one net and the ensemble, centre crop and ten crops (none: not evaluated)."""
    rows = []
    for kind in ("single", "ensemble") if ev else ():
        for scheme in ("center", "ten_crop"):
            errors = errors_of(ev, kind, scheme) or {}
            rows.append({"kind": kind, "scheme": scheme, "nets": 1 if kind == "single" else ev.get("nets"),
                         "top1_error": errors.get("top1_error"), "top5_error": errors.get("top5_error")})
    return rows


def _results(runs: Runs, tables: Path) -> dict[str, Any]:
    """Section 4: the results stage's Tables 1 and 2 (None: not produced) and every evaluation number."""
    return {"tables": {name: read_text_or_none(tables / f"{name}.md") for name in RESULT_TABLES},
            "rows": _evaluation_rows(runs.evaluate)}


def _ablations(src: ReportInputs, md_dir: Path) -> dict[str, Any]:
    """Section 5: the claims stage's table (None: not run) and Figure 1 of each CIFAR-10 run it shows."""
    runs = []
    for run, folder in shown_runs(src.cifar):
        fig1 = run.get("figure1", {})
        curves, ratio = (_image(folder / name, md_dir) for name in (CIFAR_FIGURE, CIFAR_RATIO_FIGURE))
        runs.append({"protocol": fig1.get("protocol"), "curves": curves, "ratio": ratio, "data_copy": run.get("copy"),
                     "folder": folder.as_posix(), "seeds": len(fig1.get("arms", [{}])[0].get("seeds", [])),
                     "grid_seed": fig1.get("grid_seed"), "target": fig1.get("target_error")})
    return {"claims_table": read_text_or_none(src.claims / CLAIMS_TABLE), "cifar": runs}


def _retrieval(params: Params, a: dict[str, Any]) -> dict[str, Any] | None:
    """Section 6's retrieval table: precision@k per search method against chance (analyze's numbers).
    No query times: they change on every run (records/analyze.json has them), and the report is a
    function of the pipeline's inputs only."""
    if not a:
        return None
    ks = sorted(params.analyze.precision_k)
    precision = {m: [a.get(f"{m}_precision_at_{k}") for k in ks] for m in RETRIEVAL_METHODS}
    return {"ks": ks, "precision": precision | {"chance": [a.get("chance_precision")] * len(ks)},
            "fc7_dim": a.get("fc7_dim"), "fc7_bytes": a.get("fc7_bytes_per_image"),
            "pixel_dim": a.get("pixel_dim"), "pixel_size": a.get("pixel_size", 32),
            "code_bits": a.get("code_bits"), "code_bytes": a.get("code_bytes_per_image"),
            "query_images": a.get("query_images"), "train_images": a.get("train_images")}


def _qualitative(params: Params, runs: Runs, figures: Path, md_dir: Path) -> dict[str, Any]:
    """Section 6: the analyze stage's figures (by figures.json; unlisted: None) and numbers."""
    a = runs.analyze
    names = read_json_or_empty(figures / FIGURES_LIST)
    return {"seed": a.get("model_seed", params.train.seeds[0]),
            "figures": {key: _image(figures / names[key], md_dir) if key in names else None
                        for key in ANALYSIS_FIGURES},
            # Figure 3 as numbers: the first net's conv1 columns (evaluate's run measures, alexnet.evaluation.kernels)
            "colour": {k: runs.evaluate.get(f"conv1_{k}") for k in ("colour_column1", "colour_column2",
                                                                    "column_specialisation")},
            "top5_hits": a.get("top5_figure_hits"), "retrieval": _retrieval(params, a),
            "tsne_points": a.get("tsne_points"), "tsne_perplexity": a.get("tsne_perplexity")}


def _provenance(params: Params, runs: Runs, src: ReportInputs) -> dict[str, Any]:
    """Section 7: data hashes (dvc.lock), the training devices, library versions and the params
    used. Not the revision or machine that rendered it: the report is a function of the
    pipeline's inputs only, so a rerun gives the same bytes (docs/reproducibility.md)."""
    hashes = layout.lock_hashes(layout.read_lock(src.lock))
    first = runs.infos.get(params.train.seeds[0], {}).get("versions")
    return {"data_hashes": {path: hashes.get(path) for path in HASHED_DATA},
            "devices": [{"seed": seed, "device": info.get("device"), "cpu_capability": info.get("cpu_capability")}
                        for seed, info in sorted(runs.infos.items())],
            "libraries": provenance.library_versions(LIBRARIES),
            "training_libraries": {k: v for k, v in first.items() if v} if first else None,
            "params_yaml": yaml.safe_dump(to_dict(params), sort_keys=False, default_flow_style=None).rstrip()}


def _summary(params: Params, runs: Runs) -> dict[str, Any]:
    """The headline under the title: one net and the ensemble, ten crops; fc7 against pixel retrieval."""
    ev, a = runs.evaluate, runs.analyze
    ten, ens = errors_of(ev, "single", "ten_crop"), errors_of(ev, "ensemble", "ten_crop")
    k = min(params.analyze.precision_k)
    retrieval = ({"k": k, "fc7": a[f"fc7_precision_at_{k}"], "pixel": a.get(f"pixel_precision_at_{k}")}
                 if a.get(f"fc7_precision_at_{k}") is not None else None)
    return {"ten_crop": ten, "ensemble": ens if ens and (ev.get("nets") or 0) > 1 else None, "retrieval": retrieval}


def _banner(params: Params, evaluation: dict) -> dict[str, Any] | None:
    """The warning at the top when this run is not the paper's (alexnet.fidelity.comparable, the rule
    Tables 1 and 2 and the claims table use); None when it is."""
    fit = comparable(params.data.source, evaluation.get("classes"), params.data.subset.active, params.train.epochs)
    if fit.ok:
        return None
    return {"tiny": params.data.source == "tiny", "reason": fit.reason}


def report_context(params: Params, runs: Runs, src: ReportInputs, md_dir: Path, curves_png: Path) -> dict[str, Any]:
    """Everything the report shows, as one dict: what report.md.j2 renders (and the HTML page shows).

    One key a section (setup ... provenance), besides the params and the paper's numbers the
    template sets beside this run's. Image paths are relative to `md_dir`, the Markdown's folder;
    numbers stay numbers (the template formats them).
    """
    ev = runs.evaluate
    return {
        "params": params, "paper": paper,
        "banner": _banner(params, ev),
        "evaluation": {"images": ev.get("images"), "split": ev.get("split"), "nets": ev.get("nets")},
        "summary": _summary(params, runs),
        "setup": _setup(params, runs),
        "architecture": _architecture(params, runs.architecture), "architecture_file": netstore.ARCHITECTURE,
        "training": _training(params, runs, curves_png, md_dir),
        "results": _results(runs, src.tables),
        "ablations": _ablations(src, md_dir),
        "qualitative": _qualitative(params, runs, src.figures, md_dir),
        "provenance": _provenance(params, runs, src),
    }


# --- rendering ------------------------------------------------------------------------------

def _plain(value: Any) -> str:
    """A value as prose prints it: floats without trailing zeros, '-' when absent."""
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _cell(value: Any) -> str:
    """Text read from a file, made safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|")


def _demote(markdown: str) -> str:
    """A stage's own table file: its '## title' becomes a '###' under this report's section."""
    return "".join("#" + line if line.startswith("#") and line.lstrip("#").startswith(" ") else line
                   for line in markdown.splitlines(keepends=True))


def _templates() -> Environment:
    """alexnet/report/templates/ (package data): the Markdown report, the HTML page and its CSS."""
    env = Environment(loader=PackageLoader("alexnet.report", "templates"), autoescape=select_autoescape(["html.j2"]),
                      undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt, plain=_plain, cell=_cell, demote=_demote)
    return env


def render_markdown(context: dict[str, Any]) -> str:
    """report_context's dict as the Markdown report (alexnet/report/templates/report.md.j2)."""
    return _templates().get_template("report.md.j2").render(context)


def render_html(markdown: str, md_dir: Path, title: str) -> str:
    """The Markdown as one self-contained HTML page (alexnet/report/templates/report.html.j2): every
    local image embedded as a base64 PNG, set on markdown-it's image tokens before rendering."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    for token in tokens:
        for child in token.children or []:
            src = child.attrGet("src") if child.type == "image" else None
            if src and not str(src).startswith("data:"):
                data = base64.b64encode((md_dir / unquote(str(src))).read_bytes()).decode("ascii")
                child.attrSet("src", f"data:image/png;base64,{data}")
    body = md.renderer.render(tokens, md.options, {})
    return _templates().get_template("report.html.j2").render(title=title, body=Markup(body))


def report(params: Params, src: ReportInputs, out_html: str | Path, out_md: str | Path, curves_png: str | Path) -> str:
    """The `report` stage: write the training-curves PNG, report.md and report.html. Returns the Markdown."""
    out_html, out_md, curves_png = Path(out_html), Path(out_md), Path(curves_png)
    runs = load_runs(src, params.train.seeds)
    if runs.curves:
        plot_training_curves(runs.curves, curves_png)
    md_dir = out_md.parent
    markdown = render_markdown(report_context(params, runs, src, md_dir, curves_png))
    write_text(out_md, markdown)
    write_text(out_html, render_html(markdown, md_dir, params.report.title))
    return markdown
