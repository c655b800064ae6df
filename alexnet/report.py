"""The report stage: one paper-style report of a run, as Markdown and as self-contained HTML.

Owns reports/report.md, reports/report.html and the training-curves figure beside them. What the
report shows is gathered once into one dict (`report_context`: numbers, table rows, image paths);
alexnet/templates/report.md.j2 renders it as Markdown in the paper's order (setup, architecture,
training, Tables 1 and 2, ablations, Section 6.1's figures, provenance), and the HTML is that
Markdown rendered by markdown-it-py into report.html.j2 with every image embedded as base64, so
the two say the same thing and the HTML opens anywhere on its own. Every number states where it
came from and how many runs it rests on; a run that is not the paper's (alexnet.config.comparable:
the tiny dataset, a subset, fewer epochs) carries a banner saying so.

It reads files only, all of which it depends on in dvc.yaml: the metrics, the dataset and
evaluation records, the trained nets' info.json and architecture.json, the figures' list
(figures.json), the claims table, the DVCLive curves and dvc.lock; it imports no model, pixel,
analysis or claims code. The training run records (records/train-seed<N>.json: wall time,
images/s, the revision) vary on every rerun and are *not* read, so a rerun of training that
gives the same nets leaves it up to date.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
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

from alexnet import paper, provenance
from alexnet.cifar_data import shown_run
from alexnet.config import Params, comparable, paper_deviations, to_dict
from alexnet.fileio import atomic_path, read_json, write_text
from alexnet.predictions import read_evaluation
from alexnet.tables import fmt, md_table

# What the stages before the report write for it, by name (the report imports none of them).
ARCHITECTURE = "architecture.json"  # models/seed<N>/
FIGURES_LIST = "figures.json"  # reports/figures/: {figure key: PNG file name}
CLAIMS_TABLE = "claims.md"  # reports/claims/ (alexnet.claims)
CIFAR_FIGURE = "figure1.png"  # in a CIFAR-10 run's folder (alexnet.cifar.FIGURE)
TINY_BANNER = "tiny synthetic dataset: not an ImageNet result"
NOT_COMPARABLE_BANNER = "not the paper's data and training: not comparable with the paper"
# Section titles, in the paper's order; tests check that every one is present.
SECTIONS = ("1. Setup", "2. Architecture", "3. Training", "4. Results: Tables 1 and 2",
            "5. Ablations", "6. Qualitative results (Section 6.1)", "7. Provenance")
CURVES = ("loss", "top1_error", "top5_error", "lr")
LIBRARIES = ("torch", "torchvision", "numpy", "scikit-learn", "dvc", "dvclive", "pandas", "matplotlib",
             "pillow", "scipy")


@dataclass
class ReportInputs:
    """Where the report reads from (the stage's command-line paths)."""

    metrics: Path  # metrics/ (evaluate.json, analyze.json: the headline numbers)
    tables: Path  # reports/tables
    figures: Path  # reports/figures
    live: Path  # dvclive/ (train-seed<N>/)
    models: Path  # models/ (seed<N>/info.json, model.pt)
    lock: Path  # dvc.lock
    claims: Path | None = None  # reports/claims (stage claims)
    # CIFAR-10 runs (Figure 1): the committed real-data run and stage cifar's, shown as
    # alexnet.cifar_data.shown_run picks (the real one when there is one)
    cifar: list[Path] = field(default_factory=list)
    records: Path | None = None  # records/ (prepare.json, evaluate.json, analyze.json); None: metrics/


@dataclass
class Runs:
    """What was found on disk, loaded once."""

    evaluate: dict = field(default_factory=dict)
    analyze: dict = field(default_factory=dict)
    prepare: dict = field(default_factory=dict)
    # seed -> models/seed<N>/info.json (params, versions, device, epochs: reproducible)
    infos: dict[int, dict] = field(default_factory=dict)
    curves: dict[int, pd.DataFrame] = field(default_factory=dict)  # seed -> epoch x metric
    architecture: dict = field(default_factory=dict)  # the first seed's models/seed<N>/architecture.json


def _read_json(path: Path) -> dict:
    """A stage's JSON file, or {} when that stage has not run yet (the report then says so)."""
    return read_json(path) if path.is_file() else {}


# --- reading the run ------------------------------------------------------------------------

def read_curves(run_dir: Path) -> pd.DataFrame:
    """DVCLive's per-step TSVs (plots/metrics/**/*.tsv, step = epoch) as one frame, index epoch.

    Columns are the metric names (`train/loss`, `val/top1_error`, `lr`, ...); when a resumed run
    logged a step twice, the last value wins.
    """
    root = run_dir / "plots" / "metrics"
    series = {}
    for tsv in sorted(root.rglob("*.tsv")):
        name = tsv.relative_to(root).with_suffix("").as_posix()
        df = pd.read_csv(tsv, sep="\t")
        value = [c for c in df.columns if c not in ("timestamp", "step")]
        if "step" not in df.columns or len(value) != 1:
            continue
        series[name] = df.groupby("step")[value[0]].last()
    frame = pd.DataFrame(series)
    frame.index.name = "epoch"
    return frame


def _read_evaluation(src: ReportInputs) -> dict:
    """metrics/evaluate.json joined with its run record (alexnet.predictions.read_evaluation)."""
    metrics, record = src.metrics / "evaluate.json", (src.records or src.metrics) / "evaluate.json"
    if not metrics.is_file():
        return {}
    return read_evaluation(metrics, record if record.is_file() and record != metrics else None)


def load_runs(src: ReportInputs, seeds: list[int]) -> Runs:
    records = src.records or src.metrics
    runs = Runs(evaluate=_read_evaluation(src),
                analyze=_read_json(records / "analyze.json") | _read_json(src.metrics / "analyze.json"),
                prepare=_read_json(records / "prepare.json"),
                architecture=_read_json(src.models / f"seed{seeds[0]}" / ARCHITECTURE) if seeds else {})
    for seed in seeds:
        info = _read_json(src.models / f"seed{seed}" / "info.json")
        if info:
            runs.infos[seed] = info
        live = src.live / f"train-seed{seed}"
        if live.is_dir():
            curves = read_curves(live)
            if len(curves):
                runs.curves[seed] = curves
    return runs


def dvc_lock_hashes(lock: Path) -> dict[str, str]:
    """{output path: md5} of every stage output recorded in dvc.lock (data/raw, data/prepared, ...)."""
    if not lock.is_file():
        return {}
    with lock.open() as f:
        data = yaml.safe_load(f) or {}
    out = {}
    for stage in (data.get("stages") or {}).values():
        for o in stage.get("outs", []) or []:
            if isinstance(o, dict) and "path" in o and "md5" in o:
                out[str(o["path"])] = str(o["md5"])
    return out


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


# --- the report's data: one dict, rendered by templates/report.md.j2 ------------------------

def _image(path: Path | None, md_dir: Path, alt: str, stage: str = "analyze") -> dict[str, Any]:
    """An image for the template: its path relative to the Markdown, or None when not produced."""
    src = Path(os.path.relpath(path, md_dir)).as_posix() if path is not None and path.is_file() else None
    return {"src": src, "alt": alt, "stage": stage}


def _demote(markdown: str) -> str:
    """A stage's own table file: its '## title' becomes a '###' under this report's section."""
    return "".join("#" + line if line.startswith("#") and line.lstrip("#").startswith(" ") else line
                   for line in markdown.splitlines(keepends=True))


def _plain(value: Any) -> str:
    """A param as the report prints it in prose: floats without trailing zeros."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_subset(sub: dict[str, Any] | None) -> str:
    """One line: the whole dataset, or which part of it (meta.json / metrics/prepare.json "subset",
    written by alexnet.sources.subset.summary)."""
    if not sub:
        return "the whole dataset, every image the devkit lists"
    parts = [f"{sub['num_classes']} classes"] + [f"{n:,} {s}" for s, n in sub["images"].items()]
    p = sub["params"]
    how = []
    if p.get("wnids"):
        how.append("classes listed in data.subset.wnids")
    elif p.get("classes"):
        how.append(f"classes chosen with seed {p.get('seed')}")
    for key in ("train_per_class", "eval_per_class"):
        if p.get(key):
            how.append(f"{key} {p[key]}")
    text = "subset: " + ", ".join(parts) + (f" ({'; '.join(how)})" if how else "")
    if not sub["complete"]:
        missing = sum(v["images_missing"] for v in sub["shortfall"].values())
        text += f"; a partial copy: {missing:,} images the devkit lists are missing (data.subset.allow_partial)"
    return text


def _setup(params: Params, runs: Runs) -> dict[str, Any]:
    """Section 1's table (this run beside the paper) and the recipe params that are not the paper's."""
    p, ev, images = params, runs.evaluate, runs.prepare.get("images", {})
    side = p.prepare.image_side
    rows = [
        ["dataset (data.source)", f"`{p.data.source}`" + (" (generated, ILSVRC-2012 file layout)"
                                                          if p.data.source == "tiny" else ""),
         "ILSVRC-2010 (Table 1) and ILSVRC-2012 (Table 2)"],
        ["classes", fmt(ev.get("classes") or runs.infos.get(p.train.seeds[0], {}).get("num_classes")), "1,000"],
        ["training images", fmt(images.get("train")), fmt(paper.DATASETS["ilsvrc2012"]["train"])],
        ["evaluation images", f"{fmt(ev.get('images'))} ({ev.get('split', '-')} split)",
         f"{paper.DATASETS['ilsvrc2012']['val']:,} (val) / {paper.DATASETS['ilsvrc2010']['test']:,} (2010 test)"],
        ["quarantined (undecodable) images", fmt(runs.prepare.get("quarantined_total")), "-"],
        # data.subset: which part of the official files was taken, and whether the copy was complete
        ["images taken (data.subset)", describe_subset(runs.prepare.get("subset")), "the whole dataset"],
        ["preprocessing", f"shorter side to {side}, centre {side}x{side}; mean subtracted: {p.augment.mean}",
         f"shorter side to {paper.PREPARED_SIZE}, centre crop; mean image subtracted"],
        ["nets trained (train.seeds)", f"{len(p.train.seeds)} (seeds {', '.join(map(str, p.train.seeds))})",
         "1, 5 or 7 (Table 2)"],
        ["epochs", f"{p.train.epochs} (train.epochs)" + (
            "; trained: " + ", ".join(fmt(i.get("epochs")) for _, i in sorted(runs.infos.items())) if runs.infos else ""),
         f"about {paper.EPOCHS}"],
        ["batch, lr, momentum, weight decay",
         f"{p.train.batch_size}, {p.train.lr:g}, {p.train.momentum:g}, {p.train.weight_decay:g}",
         f"{paper.BATCH_SIZE}, {paper.LEARNING_RATE:g}, {paper.MOMENTUM:g}, {paper.WEIGHT_DECAY:g}"],
        ["augmentation", f"random crop {p.augment.random_crop}, flip {p.augment.flip}, "
                         f"PCA lighting {p.augment.pca_lighting} (sigma {p.augment.pca_std:g})",
         f"random 224 crops, flips, PCA lighting (sigma {paper.PCA_STD:g})"],
    ]
    deviations = [[f"`{key}`", f"`{ours}`", f"`{theirs}`"] for key, ours, theirs in paper_deviations(params)]
    return {"rows": rows, "deviations": deviations}


def _layer_rows(arch: dict[str, Any]) -> list[list[str]]:
    """models/seed<N>/architecture.json's layers beside the paper's (Section 3)."""
    paper_conv = {name: (k, shape, s) for name, k, shape, s in paper.CONV_LAYERS}
    paper_fc = dict(paper.FC_LAYERS)
    rows = []
    for layer in arch["layers"]:
        name = layer["name"]
        if layer["kind"] == "conv":
            kh, kw = layer["kernel"]
            ours = (f"{layer['out_channels']} x {kh}x{kw}x{layer['in_channels_per_group']}, stride {layer['stride']}, "
                    f"groups {layer['groups']}")
            p = paper_conv.get(name)
            theirs = f"{p[0]} x {p[1][0]}x{p[1][1]}x{p[1][2]}, stride {p[2]}" if p else "-"
        else:
            ours = f"{layer['in_features']} -> {layer['out_features']}"
            theirs = f"{paper_fc[name]}" if name in paper_fc else "-"
        rows.append([name, ours, theirs, f"{layer['parameters']:,}"])
    return rows


def _architecture(params: Params, arch: dict[str, Any]) -> dict[str, Any] | None:
    """Section 2: train's architecture.json beside the paper's layers, and the model switches."""
    if not arch:
        return None
    m, classes = params.model, arch.get("num_classes")
    switches = ("arch", "input_size", "groups", "activation", "lrn", "lrn_k", "lrn_size", "lrn_alpha", "lrn_beta",
                "lrn_divide_alpha_by_n", "overlapping_pool", "dropout", "conv6")
    return {"rows": _layer_rows(arch) + [["**total**", "", "", f"**{arch['parameters']:,}**"]],
            "parameters": arch["parameters"], "paper_parameters": paper.PARAMETERS,
            "scaled": m.width != 1.0 or (classes or 1000) != 1000, "width": _plain(m.width),
            "classes": classes if classes is not None else "?",
            "switches": {name: _plain(getattr(m, name)) for name in switches},
            "seed": params.train.seeds[0], "file": ARCHITECTURE}


def _training(params: Params, runs: Runs, curves_png: Path, md_dir: Path) -> dict[str, Any]:
    """Section 3: the curves figure and each net's last epoch (DVCLive) and device (info.json)."""
    rows = []
    for seed in params.train.seeds:
        info, df = runs.infos.get(seed, {}), runs.curves.get(seed)
        last = df.iloc[-1] if df is not None and len(df) else {}
        rows.append([f"seed {seed}", fmt(info.get("epochs", len(df) if df is not None else None)),
                     fmt(last.get("train/loss"), 3), fmt(last.get("val/top1_error")), fmt(last.get("val/top5_error")),
                     f"{last['lr']:g}" if "lr" in last else "-", info.get("device", "-")])
    curves = (_image(curves_png, md_dir, "Training curves: loss, top-1/top-5 error and lr per epoch", "report")
              if runs.curves else None)
    return {"curves": curves, "rows": rows, "runs": len(runs.curves)}


def _results(runs: Runs, tables: Path) -> dict[str, Any]:
    """Section 4: the results stage's Tables 1 and 2 (None: not produced) and every evaluation number."""
    found = {name: tables / f"{name}.md" for name in ("table1", "table2")}
    rows = []
    ev = runs.evaluate
    for kind in ("single", "ensemble") if ev else ():
        for scheme in ("center", "ten_crop"):
            r = (ev.get(kind) or {}).get(scheme) or {}
            nets = 1 if kind == "single" else ev.get("nets")
            rows.append([f"{kind}, {scheme.replace('_', '-')}", fmt(nets), fmt(r.get("top1_error")),
                         fmt(r.get("top5_error"))])
    return {"tables": {name: _demote(p.read_text()) if p.is_file() else None for name, p in found.items()},
            "rows": rows}


def _ablations(src: ReportInputs, md_dir: Path) -> dict[str, Any]:
    """Section 5: the claims stage's table and Figure 1 (stage cifar); else the results stage's
    ablation tables; else the paper's claims."""
    table = src.claims / CLAIMS_TABLE if src.claims else None
    runs, folder = shown_run(src.cifar)
    figure1 = folder / CIFAR_FIGURE if folder else None
    has_claims = table is not None and table.is_file()
    return {"claims": _demote(table.read_text()) if has_claims else None,
            "figure1": _image(figure1, md_dir, "Figure 1: training error vs epochs", "cifar")
            if has_claims and figure1 is not None and figure1.is_file() else None,
            "figure1_data": {"data": runs.get("copy"), "folder": folder.as_posix() if folder else None,
                             "seeds": len(runs.get("figure1", {}).get("seeds", [])),
                             "grid": " ".join(f"{lr:g}" for lr in runs.get("figure1", {}).get("lr_grid", []))},
            "tables": [_demote(p.read_text()) for p in sorted(src.tables.glob("ablation*.md"))],
            "claims_list": [[c.section, c.words] for c in paper.CLAIMS]}


def _retrieval(params: Params, a: dict[str, Any]) -> dict[str, Any] | None:
    """Section 6's retrieval table: precision@k per search method against chance (analyze's numbers)."""
    if not a:
        return None
    ks = sorted(params.analyze.precision_k)
    bits = f"{fmt(a.get('code_bits'))} bits ({fmt(a.get('code_bytes_per_image'))} B)"
    pixels = a.get("pixel_size", 32)
    methods = [
        ("fc7, Euclidean (exact)", "fc7", f"{fmt(a.get('fc7_dim'))} floats ({fmt(a.get('fc7_bytes_per_image'))} B)"),
        (f"pixels, Euclidean ({pixels}x{pixels} RGB of the centre crop)", "pixel", f"{fmt(a.get('pixel_dim'))} floats"),
        ("fc7 -> auto-encoder binary code, Hamming", "autoencoder", bits),
        ("fc7 -> random-hyperplane LSH code, Hamming", "lsh", bits),
    ]
    # No query times: they change on every run (records/analyze.json has them), and the report is
    # a function of the pipeline's inputs only.
    rows = [[label, size] + [fmt(a.get(f"{key}_precision_at_{k}"), 3) for k in ks] for label, key, size in methods]
    rows.append(["chance (random training image)", "-"] + [fmt(a.get("chance_precision"), 3)] * len(ks))
    return {"k_columns": [f"precision@{k}" for k in ks], "rows": rows, "numeric": [False, False] + [True] * len(ks),
            "query_images": a.get("query_images"), "train_images": a.get("train_images")}


def _qualitative(params: Params, runs: Runs, figures: Path, md_dir: Path) -> dict[str, Any]:
    """Section 6: the analyze stage's figures (by figures.json; none listed: "not produced") and numbers."""
    a = runs.analyze
    names = _read_json(figures / FIGURES_LIST)
    alts = {"kernels": "Figure 3: conv1 kernels", "top5": "Figure 4 left: top-5 predictions",
            "neighbours": "Figure 4 right: fc7 nearest neighbours", "tsne": "t-SNE of fc7 features"}
    return {"seed": a.get("model_seed", params.train.seeds[0]),
            "figures": {key: _image(figures / names[key] if key in names else None, md_dir, alt)
                        for key, alt in alts.items()},
            # Figure 3 as numbers: the first net's conv1 columns (evaluate's run measures, alexnet.kernels)
            "colour": {k: runs.evaluate.get(f"conv1_{k}") for k in ("colour_column1", "colour_column2",
                                                                    "column_specialisation")},
            "top5_images": params.analyze.top5_images, "analyze_seed": params.analyze.seed,
            "top5_hits": a.get("top5_figure_hits"), "retrieval": _retrieval(params, a),
            "tsne_points": a.get("tsne_points"), "tsne_perplexity": a.get("tsne_perplexity")}


def _provenance(params: Params, runs: Runs, src: ReportInputs) -> dict[str, Any]:
    """Section 7: data hashes (dvc.lock), the training device and numerics, library versions and
    the params used. Not the revision or machine that rendered it: the report is a function of
    the pipeline's inputs only, so a rerun gives the same bytes (README, "Exact reruns")."""
    hashes = dvc_lock_hashes(src.lock)
    rows = []
    for path in ("data/raw", "data/prepared", "data/stats"):
        rows.append([f"{path} md5 (dvc.lock)", f"`{hashes[path]}`" if path in hashes else "not in dvc.lock"])
    for seed, info in sorted(runs.infos.items()):
        cap = info.get("cpu_capability")
        rows.append([f"training device (seed {seed})", str(info.get("device", "-"))
                     + (f", torch CPU capability {cap}" if cap else "")])
    n = params.numerics
    rows.append(["numerics (params.yaml)", f"bit_identity {n.bit_identity}, {n.threads} threads: the same bits on any "
                 "AVX2 CPU" if n.bit_identity else "bit_identity false: each library's fastest kernels for its CPU"])
    rows.append(["run records", "records/*.json: wall times, images/s, the revision and machine each stage ran on, "
                 "and what decides bit-identity (not part of this report: they change on every rerun)"])
    rows.append(["libraries (report)", ", ".join(f"{k} {v}" for k, v in provenance.library_versions(LIBRARIES).items())])
    first = runs.infos.get(params.train.seeds[0], {}).get("versions")
    if first:
        rows.append(["libraries (training)", ", ".join(f"{k} {v}" for k, v in first.items() if v)])
    return {"rows": rows,
            "params_yaml": yaml.safe_dump(to_dict(params), sort_keys=False, default_flow_style=None).rstrip()}


def _summary(params: Params, runs: Runs) -> dict[str, Any]:
    """The headline under the title: one net and the ensemble, ten crops; fc7 against pixel retrieval."""
    ev, a = runs.evaluate, runs.analyze
    ten = (ev.get("single") or {}).get("ten_crop") or None
    ens = (ev.get("ensemble") or {}).get("ten_crop") or None
    k = min(params.analyze.precision_k)
    retrieval = ({"k": k, "fc7": a[f"fc7_precision_at_{k}"], "pixel": a.get(f"pixel_precision_at_{k}")}
                 if a.get(f"fc7_precision_at_{k}") is not None else None)
    return {"ten_crop": ten, "ensemble": ens if ens and (ev.get("nets") or 0) > 1 else None, "retrieval": retrieval}


def _banner(params: Params, evaluation: dict) -> dict[str, Any] | None:
    """The warning at the top when this run is not the paper's (alexnet.config.comparable, the rule
    Tables 1 and 2 and the claims table use); None when it is."""
    fit = comparable(params.data.source, evaluation.get("classes"), params.data.subset.active, params.train.epochs)
    if fit.ok:
        return None
    tiny = params.data.source == "tiny"
    return {"title": TINY_BANNER if tiny else NOT_COMPARABLE_BANNER, "tiny": tiny, "reason": fit.reason}


def report_context(params: Params, runs: Runs, src: ReportInputs, md_dir: Path, curves_png: Path) -> dict[str, Any]:
    """Everything the report shows, as one dict: what report.md.j2 renders (and the HTML page shows).

    Image paths are relative to `md_dir`, the Markdown's folder; tables are lists of formatted cells.
    """
    ev = runs.evaluate
    return {
        "title": params.report.title, "source": params.data.source, "sections": SECTIONS,
        "banner": _banner(params, ev),
        "prepare": {"train_images": runs.prepare.get("images", {}).get("train")},
        "evaluation": {"images": ev.get("images"), "split": ev.get("split", ""), "nets": ev.get("nets")},
        "summary": _summary(params, runs),
        "setup": _setup(params, runs),
        "architecture": _architecture(params, runs.architecture), "architecture_file": ARCHITECTURE,
        "training": _training(params, runs, curves_png, md_dir),
        "results": _results(runs, src.tables),
        "ablations": _ablations(src, md_dir),
        "qualitative": _qualitative(params, runs, src.figures, md_dir),
        "provenance": _provenance(params, runs, src),
        "citation": paper.CITATION,
    }


# --- rendering ------------------------------------------------------------------------------

def _templates() -> Environment:
    """alexnet/templates/ (package data): the Markdown report, the HTML page and its CSS."""
    env = Environment(loader=PackageLoader("alexnet", "templates"), autoescape=select_autoescape(["html.j2"]),
                      undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.globals["md_table"] = md_table
    return env


def render_markdown(context: dict[str, Any]) -> str:
    """report_context's dict as the Markdown report (alexnet/templates/report.md.j2)."""
    return _templates().get_template("report.md.j2").render(context)


def render_html(markdown: str, md_dir: Path, title: str) -> str:
    """The Markdown as one self-contained HTML page (alexnet/templates/report.html.j2): every
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
    context = report_context(params, runs, src, md_dir, curves_png)
    markdown = render_markdown(context)
    page = render_html(markdown, md_dir, context["title"])
    write_text(out_md, markdown)
    write_text(out_html, page)
    return markdown
