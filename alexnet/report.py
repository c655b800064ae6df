"""The report stage: one paper-style report of a run, as Markdown and as self-contained HTML.

Owns reports/report.md, reports/report.html and the training-curves figure beside them. The
report is written once, in Markdown, in the paper's order (setup, architecture, training,
Tables 1 and 2, ablations, Section 6.1's figures, provenance); the HTML is that Markdown
rendered by markdown-it-py with every image embedded as base64, so the two say the same thing
and the HTML opens anywhere on its own. Every number states where it came from and how many
runs it rests on; a run on the tiny dataset carries a banner saying it is not an ImageNet result.

It reads files only, all of which it depends on in dvc.yaml: the metrics, the dataset and
evaluation records, the trained nets' info.json and architecture.json, the figures' list
(figures.json), the DVCLive curves and dvc.lock; it imports no model, pixel or analysis code. The
training run records (records/train-seed<N>.json: wall time, images/s, the revision) vary on every
rerun and are *not* read, so a rerun of training that gives the same nets leaves it up to date.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote
from typing import Any

import matplotlib
from matplotlib.figure import Figure  # files only: no pyplot, no backend switch
import pandas as pd
from matplotlib.ticker import MaxNLocator
import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from alexnet import paper, provenance
from alexnet.tables import fmt, md_table
from alexnet.config import Params, to_dict
from alexnet.fileio import atomic_path, write_text

# What the stages before the report write for it (alexnet.train, alexnet.analysis name them so).
ARCHITECTURE = "architecture.json"  # models/seed<N>/
FIGURES_LIST = "figures.json"  # reports/figures/: {figure key: PNG file name}
TINY_BANNER = "tiny synthetic dataset: not an ImageNet result"
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
    cifar: Path | None = None  # reports/cifar (stage cifar: Figure 1)
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
    if not path.is_file():
        return {}
    with path.open() as f:
        return json.load(f)


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
    from alexnet.metrics import read_evaluation

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


def library_versions() -> dict[str, str]:
    return provenance.library_versions(LIBRARIES)


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


# --- the Markdown ---------------------------------------------------------------------------

def _image(path: Path | None, md_dir: Path, alt: str) -> str:
    if path is None or not path.is_file():
        return f"*{alt}: not produced (run `dvc repro analyze`).*\n"
    return f"![{alt}]({Path(os.path.relpath(path, md_dir)).as_posix()})\n"


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


def section_setup(params: Params, runs: Runs) -> str:
    source = params.data.source
    images = runs.prepare.get("images", {})
    ev = runs.evaluate
    lines = [f"## {SECTIONS[0]}", ""]
    rows = [
        ["dataset (data.source)", f"`{source}`" + (" (generated, ILSVRC-2012 file layout)" if source == "tiny" else ""),
         "ILSVRC-2010 (Table 1) and ILSVRC-2012 (Table 2)"],
        ["classes", fmt(ev.get("classes") or runs.infos.get(params.train.seeds[0], {}).get("num_classes")), "1,000"],
        ["training images", fmt(images.get("train")), fmt(paper.DATASETS["ilsvrc2012"]["train"])],
        ["evaluation images", f"{fmt(ev.get('images'))} ({ev.get('split', '-')} split)",
         f"{paper.DATASETS['ilsvrc2012']['val']:,} (val) / {paper.DATASETS['ilsvrc2010']['test']:,} (2010 test)"],
        ["quarantined (undecodable) images", fmt(runs.prepare.get("quarantined_total")), "-"],
        # data.subset: which part of the official files was taken, and whether the copy was complete
        ["images taken (data.subset)", describe_subset(runs.prepare.get("subset")), "the whole dataset"],
        ["preprocessing", f"shorter side to {params.prepare.image_side}, centre {params.prepare.image_side}x{params.prepare.image_side}; "
                          f"mean subtracted: {params.augment.mean}",
         f"shorter side to {paper.PREPARED_SIZE}, centre crop; mean image subtracted"],
        ["nets trained (train.seeds)", f"{len(params.train.seeds)} (seeds {', '.join(map(str, params.train.seeds))})",
         "1, 5 or 7 (Table 2)"],
        ["epochs", f"{params.train.epochs} (train.epochs)" + (
            "; trained: " + ", ".join(fmt(i.get("epochs")) for _, i in sorted(runs.infos.items())) if runs.infos else ""),
         f"about {paper.EPOCHS}"],
        ["batch, lr, momentum, weight decay",
         f"{params.train.batch_size}, {params.train.lr:g}, {params.train.momentum:g}, {params.train.weight_decay:g}",
         f"{paper.BATCH_SIZE}, {paper.LEARNING_RATE:g}, {paper.MOMENTUM:g}, {paper.WEIGHT_DECAY:g}"],
        ["augmentation", f"random crop {params.augment.random_crop}, flip {params.augment.flip}, "
                         f"PCA lighting {params.augment.pca_lighting} (sigma {params.augment.pca_std:g})",
         f"random 224 crops, flips, PCA lighting (sigma {paper.PCA_STD:g})"],
    ]
    lines.append(md_table(["", "this run", "paper"], rows, [False, False, False]))
    lines.append("Source: params.yaml, records/prepare.json, records/evaluate.json.\n")
    lines.append(section_deviations(params))
    return "\n".join(lines)


def section_deviations(params: Params) -> str:
    """Every recipe param of this run that is not the paper's (alexnet.config.paper_deviations)."""
    from alexnet.config import paper_deviations

    devs = paper_deviations(params)
    head = ("**Deviations from the paper** (params that differ from alexnet/config.py's defaults, which are "
            "the paper's; docs/fidelity.md says what each one means):")
    if not devs:
        return head + " none.\n"
    rows = [[f"`{key}`", f"`{ours}`", f"`{theirs}`"] for key, ours, theirs in devs]
    return head + "\n\n" + md_table(["param", "this run", "paper"], rows, [False, False, False])


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


def section_architecture(params: Params, arch: dict[str, Any]) -> str:
    lines = [f"## {SECTIONS[1]}", ""]
    m = params.model
    seed = params.train.seeds[0]
    if not arch:
        lines.append(f"*No trained net found (models/seed<N>/{ARCHITECTURE}): run `dvc repro train`.*\n")
        return "\n".join(lines)
    total, classes = arch["parameters"], arch.get("num_classes")
    rows = _layer_rows(arch) + [["**total**", "", "", f"**{total:,}**"]]
    lines.append(md_table(["layer", "ours", "paper", "parameters (ours)"], rows, [False, False, False, True]))
    lines.append(f"Parameters: **{total:,}** here against the paper's **{paper.PARAMETERS:,}** "
                 f"(two-group net, 1000 classes, with biases)"
                 + (f"; this net has model.width = {m.width:g} of the paper's channels and "
                    f"{classes if classes is not None else '?'} classes." if (m.width != 1.0 or (classes or 1000) != 1000) else ".")
                 + "\n")
    lines.append(f"Switches (params.yaml `model`): arch `{m.arch}`, input {m.input_size}, groups {m.groups}, "
                 f"activation {m.activation}, LRN {m.lrn} (k={m.lrn_k:g}, n={m.lrn_size}, alpha={m.lrn_alpha:g}, "
                 f"beta={m.lrn_beta:g}, alpha divided by n: {m.lrn_divide_alpha_by_n}), overlapping pooling "
                 f"{m.overlapping_pool}, dropout {m.dropout:g}, conv6 {m.conv6}.\n")
    lines.append(f"Source: models/seed{seed}/{ARCHITECTURE} (the first seed's net, written by train); "
                 "paper: Section 3.\n")
    return "\n".join(lines)


def section_training(params: Params, runs: Runs, curves_png: Path, md_dir: Path) -> str:
    lines = [f"## {SECTIONS[2]}", ""]
    if runs.curves:
        lines.append(_image(curves_png, md_dir, "Training curves: loss, top-1/top-5 error and lr per epoch"))
    else:
        lines.append("*No DVCLive curves found (dvclive/train-seed<N>/): run `dvc repro train`.*\n")
    rows = []
    for seed in params.train.seeds:
        info, df = runs.infos.get(seed, {}), runs.curves.get(seed)
        last = df.iloc[-1] if df is not None and len(df) else {}
        rows.append([f"seed {seed}", fmt(info.get("epochs", len(df) if df is not None else None)),
                     fmt(last.get("train/loss"), 3), fmt(last.get("val/top1_error")), fmt(last.get("val/top5_error")),
                     f"{last['lr']:g}" if "lr" in last else "-", info.get("device", "-")])
    lines.append(md_table(["net", "epochs", "final train loss", "val top-1 error (%)", "val top-5 error (%)",
                           "final lr", "device"], rows, [False, True, True, True, True, True, False]))
    lines.append(f"{len(runs.curves)} training run(s), one per seed, each one curve. Validation here is the "
                 "single centre crop after each epoch. Source: dvclive/train-seed<N>/plots/metrics/*.tsv and "
                 "models/seed<N>/info.json. Wall time, images/s and the revision each net was trained from are "
                 "in the run records, records/train-seed<N>.json (not part of this report: they change on every "
                 "rerun).\n")
    return "\n".join(lines)


def _demote(markdown: str) -> str:
    """A results table's own '## title' becomes a '###' under this report's section."""
    return "".join("#" + line if line.startswith("#") and line.lstrip("#").startswith(" ") else line
                   for line in markdown.splitlines(keepends=True))


def section_results(runs: Runs, tables: Path) -> str:
    lines = [f"## {SECTIONS[3]}", ""]
    for name in ("table1", "table2"):
        path = tables / f"{name}.md"
        if path.is_file():
            lines.append(_demote(path.read_text()))
        else:
            lines.append(f"*{name}: not produced (run `dvc repro results`).*\n")
    ev = runs.evaluate
    if ev:
        rows = []
        for kind in ("single", "ensemble"):
            for scheme in ("center", "ten_crop"):
                r = (ev.get(kind) or {}).get(scheme) or {}
                nets = 1 if kind == "single" else ev.get("nets")
                rows.append([f"{kind}, {scheme.replace('_', '-')}", fmt(nets), fmt(r.get("top1_error")),
                             fmt(r.get("top5_error"))])
        lines.append("### All evaluation numbers\n")
        lines.append(md_table(["nets, crops", "nets averaged", "top-1 error (%)", "top-5 error (%)"], rows))
        lines.append(f"Each number: {fmt(ev.get('images'))} images of the {ev.get('split', '?')} split, evaluated "
                     f"once; \"single\" is the first seed's net, \"ensemble\" averages the softmax of "
                     f"{fmt(ev.get('nets'))} nets. Source: metrics/evaluate.json, records/evaluate.json.\n")
    return "\n".join(lines)


def section_claims(src: ReportInputs, md_dir: Path) -> str | None:
    """The claims table (stage claims) and Figure 1 (stage cifar), or None when not produced."""
    from alexnet.claims import report_section

    return report_section(src.claims, src.cifar, md_dir)


def section_ablations(tables: Path, claims: str | None = None) -> str:
    lines = [f"## {SECTIONS[4]}", ""]
    if claims:
        return "\n".join(lines + [claims])
    found = sorted(tables.glob("ablation*.md"))
    if found:
        lines += [_demote(p.read_text()) for p in found]
        return "\n".join(lines)
    lines.append("**The ablation stage was not run**: no ablation numbers are reported. The paper's "
                 "claims, and the params.yaml switch that turns each choice off:\n")
    rows = [[f"`{a.name}`", a.section, a.claim] for a in paper.ABLATIONS]
    lines.append(md_table(["switch", "section", "the paper's claim"], rows, [False, False, False]))
    return "\n".join(lines)


def section_qualitative(params: Params, runs: Runs, figures: Path, md_dir: Path) -> str:
    a = runs.analyze
    names = _read_json(figures / FIGURES_LIST)  # analyze's {key: file}; none: every figure "not produced"

    def figure(key: str, alt: str) -> str:
        return _image(figures / names[key] if key in names else None, md_dir, alt)

    seed = a.get("model_seed", params.train.seeds[0])
    lines = [f"## {SECTIONS[5]}", "",
             f"All figures and numbers in this section come from one net (seed {seed}) and one run of the "
             "analyze stage (metrics/analyze.json, records/analyze.json, reports/figures/).\n",
             "### Figure 3: conv1 kernels\n",
             figure("kernels", "Figure 3: conv1 kernels"),
             "The first group's kernels (the paper's GPU 1) above, the second group's below, each kernel "
             "min-max scaled to the full colour range. In the paper the first group learns largely "
             "colour-agnostic kernels and the second colour-specific ones.\n",
             "### Figure 4 (left): top-5 predictions\n",
             figure("top5", "Figure 4 left: top-5 predictions"),
             f"{fmt(params.analyze.top5_images)} evaluation images drawn with analyze.seed = {params.analyze.seed}; "
             f"the true class is among the net's top 5 for {fmt(a.get('top5_figure_hits'))} of them. "
             "Probabilities are the evaluate stage's centre-crop softmax.\n",
             "### Figure 4 (right): nearest neighbours in fc7 space\n",
             figure("neighbours", "Figure 4 right: fc7 nearest neighbours"),
             ]
    if a:
        ks = sorted(params.analyze.precision_k)
        methods = [
            ("fc7, Euclidean (exact)", "fc7", f"{fmt(a.get('fc7_dim'))} floats ({fmt(a.get('fc7_bytes_per_image'))} B)"),
            (f"pixels, Euclidean ({a.get('pixel_size', 32)}x{a.get('pixel_size', 32)} RGB of the centre crop)", "pixel",
             f"{fmt(a.get('pixel_dim'))} floats"),
            ("fc7 -> auto-encoder binary code, Hamming", "autoencoder",
             f"{fmt(a.get('code_bits'))} bits ({fmt(a.get('code_bytes_per_image'))} B)"),
            ("fc7 -> random-hyperplane LSH code, Hamming", "lsh",
             f"{fmt(a.get('code_bits'))} bits ({fmt(a.get('code_bytes_per_image'))} B)"),
        ]
        rows = []
        for label, key, size in methods:
            ms = a.get(f"{key}_query_ms")
            rows.append([label, size] + [fmt(a.get(f"{key}_precision_at_{k}"), 3) for k in ks]
                        + [fmt(ms, 4) if ms is not None else "-"])
        rows.append(["chance (random training image)", "-"] + [fmt(a.get("chance_precision"), 3)] * len(ks) + ["-"])
        lines.append(md_table(["search", "per image"] + [f"precision@{k}" for k in ks] + ["query time (ms)"], rows,
                              [False, False] + [True] * (len(ks) + 1)))
        lines.append(
            f"Precision@k: the fraction of a query's k nearest training images that share its class, averaged "
            f"over all {fmt(a.get('query_images'))} evaluation images as queries against "
            f"{fmt(a.get('train_images'))} training images (one run). fc7 features and pixels come from the same "
            "centre crop; the pixel baseline average-pools it to 32x32 (the paper's point: neighbours in fc7 "
            "space are semantically close though far apart in pixels). Binary codes: the paper's suggestion, "
            "an auto-encoder with a binarised bottleneck trained on the training set's fc7 features, against "
            "random-hyperplane LSH; query time is the median over 5 repeats of searching all queries, per "
            "query, on this machine's CPU (the exact search uses scikit-learn's brute-force NearestNeighbors).\n")
    lines += ["### t-SNE of fc7 features\n",
              figure("tsne", "t-SNE of fc7 features"),
              f"{fmt(a.get('tsne_points'))} evaluation images, scikit-learn t-SNE with perplexity "
              f"{fmt(a.get('tsne_perplexity'), 1)} and random_state = analyze.seed.\n"]
    return "\n".join(lines)


def section_provenance(params: Params, runs: Runs, src: ReportInputs) -> str:
    hashes = dvc_lock_hashes(src.lock)
    hw = provenance.hardware()
    revision = provenance.git_revision()
    rows = [["git revision (report)", f"`{revision}`" + (
        " (tracked files other than the pipeline's outputs differ from this commit)"
        if revision.endswith(provenance.DIRTY) else "")]]
    for path in ("data/raw", "data/prepared", "data/stats"):
        rows.append([f"{path} md5 (dvc.lock)", f"`{hashes[path]}`" if path in hashes else "not in dvc.lock"])
    rows.append(["CPU (report)", hw["cpu"]])
    rows.append(["GPU (report)", hw["gpu"]])
    for seed, info in sorted(runs.infos.items()):
        cap = info.get("cpu_capability")
        rows.append([f"training device (seed {seed})", str(info.get("device", "-"))
                     + (f", torch CPU capability {cap}" if cap else "")])
    rows.append(["training run records", "records/train-seed<N>.json: wall time, images/s, the revision "
                 "trained from, and what decides bit-identity (CPU capability, threads, determinism switches)"])
    versions = library_versions()
    rows.append(["libraries (report)", ", ".join(f"{k} {v}" for k, v in versions.items())])
    first = runs.infos.get(params.train.seeds[0], {}).get("versions")
    if first:
        rows.append(["libraries (training)", ", ".join(f"{k} {v}" for k, v in first.items() if v)])
    lines = [f"## {SECTIONS[6]}", "", md_table(["", "value"], rows, [False, False]),
             "Params used (params.yaml, resolved):\n", "```yaml",
             yaml.safe_dump(to_dict(params), sort_keys=False, default_flow_style=None).rstrip(), "```\n",
             f"Paper: {paper.CITATION}\n"]
    return "\n".join(lines)


def build_markdown(params: Params, runs: Runs, src: ReportInputs, md_dir: Path, curves_png: Path) -> str:
    ev = runs.evaluate
    parts = [f"# {params.report.title}\n"]
    if params.data.source == "tiny":
        parts.append(f"> **{TINY_BANNER}.** This run used the generated tiny dataset "
                     f"({fmt(runs.prepare.get('images', {}).get('train'))} training images); its numbers check "
                     "that the pipeline works and cannot be compared with the paper's.\n")
    ten = (ev.get("single") or {}).get("ten_crop") or {}
    ens = (ev.get("ensemble") or {}).get("ten_crop") or {}
    a = runs.analyze
    summary = [f"A reproduction of Krizhevsky, Sutskever & Hinton (NIPS 2012) on the `{params.data.source}` dataset."]
    if ten:
        summary.append(f"One net, ten-crop: **{fmt(ten.get('top1_error'))}% top-1, {fmt(ten.get('top5_error'))}% "
                       f"top-5 error** ({fmt(ev.get('images'))} {ev.get('split', '')} images)"
                       + (f"; {fmt(ev.get('nets'))} nets averaged: {fmt(ens.get('top1_error'))}% / "
                          f"{fmt(ens.get('top5_error'))}%." if ens and (ev.get('nets') or 0) > 1 else "."))
    k = min(params.analyze.precision_k)
    if a.get(f"fc7_precision_at_{k}") is not None:
        summary.append(f"fc7 retrieval precision@{k} {fmt(a[f'fc7_precision_at_{k}'], 3)} against "
                       f"{fmt(a.get(f'pixel_precision_at_{k}'), 3)} in pixel space.")
    parts.append(" ".join(summary) + "\n")
    parts.append(section_setup(params, runs))
    parts.append(section_architecture(params, runs.architecture))
    parts.append(section_training(params, runs, curves_png, md_dir))
    parts.append(section_results(runs, src.tables))
    parts.append(section_ablations(src.tables, section_claims(src, md_dir)))
    parts.append(section_qualitative(params, runs, src.figures, md_dir))
    parts.append(section_provenance(params, runs, src))
    return "\n".join(parts)


# --- HTML -----------------------------------------------------------------------------------

def _templates() -> Environment:
    """alexnet/templates/ (package data): the HTML page and its CSS."""
    return Environment(loader=PackageLoader("alexnet", "templates"), autoescape=select_autoescape(["html.j2"]),
                       undefined=StrictUndefined, keep_trailing_newline=True)


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
    markdown = build_markdown(params, runs, src, md_dir, curves_png)
    page = render_html(markdown, md_dir, params.report.title)
    write_text(out_md, markdown)
    write_text(out_html, page)
    return markdown
