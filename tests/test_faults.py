"""Fault injection (issue 13): each fault ends in a correct rerun or one line naming the problem,
with nothing lost and nothing stale left that looks valid. Small real-format ILSVRC releases are
built in tmp_path (tests/sources_helpers.py, written independently of alexnet.data.sources)."""

from __future__ import annotations

import dataclasses
import errno
import io
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import typing
from pathlib import Path

import pytest
import yaml
from PIL import Image
from sources_helpers import LEAVES, VAL_TRUTH, jpeg, make_ilsvrc2012, tar_bytes, train_members
from stage_helpers import REPO, assert_clear_error, run_stage

from alexnet import config as C
from alexnet.config import ConfigError, DataConfig, PrepareConfig, SubsetConfig, TinyConfig, load_params
from alexnet.data.prepare import prepare, write_store
from alexnet.data.resize import process_image
from alexnet.data.sources import download_raw, open_raw
from alexnet.errors import PipelineError
from alexnet.fileio import ArchiveError, DiskFullError, atomic_dir, read_json

TINY = TinyConfig()
VAL = "ILSVRC2012_img_val.tar"
TRAIN = "ILSVRC2012_img_train.tar"
DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"


def _data(root: Path, **subset) -> DataConfig:
    return DataConfig(source="ilsvrc2012", root=str(root), verify_md5=False, subset=SubsetConfig(**subset))


def _val_members(truth=VAL_TRUTH) -> list[tuple[str, bytes]]:
    return [(f"ILSVRC2012_val_{i:08d}.JPEG", jpeg((i * 40, 0, 0))) for i in range(1, len(truth) + 1)]


# 1. Every param DVC hashes reaches its hash -------------------------------------------------

# dvc/stage/cache.py: _get_cache_hash(...) = dict_sha256(cache, exclude=[Meta.PARAM_SIZE,
# Meta.PARAM_NFILES]): keys of these names are dropped at any depth, params included (DVC #10296).
DVC_DROPPED = {"size", "nfiles"}


def _keys(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield f"{prefix}{k}", str(k)
            yield from _keys(v, f"{prefix}{k}.")


def _fields(cls, prefix=""):
    for f in dataclasses.fields(cls):
        yield f"{prefix}{f.name}", f.name
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _fields(tp, f"{prefix}{f.name}.")


def test_dvc_drops_exactly_these_names():
    from dvc_data.hashfile.meta import Meta

    assert {Meta.PARAM_SIZE, Meta.PARAM_NFILES} == DVC_DROPPED


@pytest.mark.parametrize("where", ["params.yaml", "configs/ilsvrc2012.yaml", "alexnet/config.py"])
def test_no_param_has_a_name_dvc_drops(where):
    keys = (list(_fields(C.Params)) if where.endswith(".py")
            else list(_keys(yaml.safe_load((REPO / where).read_text()))))
    assert len(keys) > 50
    bad = [dotted for dotted, name in keys if name in DVC_DROPPED]
    assert not bad, f"{where}: {bad} would be dropped from DVC's run-cache hash (DVC #10296); rename them"


# 2. The user's files are dependencies DVC tracks ----------------------------------------------

def test_replacing_the_val_tar_changes_the_manifest_and_stops_a_stale_one(tmp_path):
    """(What `dvc status` says is tests/test_pipeline_runs.py's: data.root is a DVC dependency.)"""
    root = tmp_path / "imagenet"
    make_ilsvrc2012(root)
    data = _data(root)
    download_raw(data, TINY, tmp_path / "raw", progress=False)
    manifest = read_json(tmp_path / "raw" / "manifest.json")
    assert manifest["content"]["val"]["name"] == VAL and "path" not in manifest["content"]["val"]

    # Another val tar of the same name (one image different): what download depends on changes.
    other = _val_members()
    other[0] = (other[0][0], jpeg((1, 2, 3), (20, 20)))
    (root / VAL).write_bytes(tar_bytes(other))
    # And a stage that runs without download noticing (dvc repro -s prepare) refuses the stale manifest.
    with pytest.raises(PipelineError, match=rf"{VAL} changed since the download stage"):
        open_raw(tmp_path / "raw", root)
    download_raw(data, TINY, tmp_path / "raw", progress=False)  # the rerun records the new file
    assert read_json(tmp_path / "raw" / "manifest.json")["content"] != manifest["content"]
    open_raw(tmp_path / "raw", root)


def test_dvc_yaml_makes_data_root_downloads_dependency():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert "${data.root}" in stages["download"]["deps"]
    assert not [name for name, st in stages.items() if st.get("always_changed")]  # dvc status tells the truth
    assert (REPO / C.USER_FILES).is_dir() and load_params(REPO / "params.yaml").data.root == C.USER_FILES


def test_data_root_is_a_folder_for_every_source():
    with pytest.raises(ConfigError, match="data.root"):
        DataConfig(root="")
    with pytest.raises(ConfigError, match="the folder holding your files when data.source is ilsvrc2012"):
        DataConfig(source="ilsvrc2012")


# 3. Incomplete or inconsistent datasets fail unless a partial copy is accepted ------------------

def _release(root: Path, *, train=None, val=None) -> Path:
    make_ilsvrc2012(root)
    if train is not None:
        (root / TRAIN).write_bytes(tar_bytes(train))
    if val is not None:
        (root / VAL).write_bytes(tar_bytes(val))
    return root


@pytest.mark.parametrize("case,fragments", [
    ("val_missing_one", [VAL, "4 images where", "lists 5"]),
    ("val_duplicate", [VAL, "ILSVRC2012_val_00000001.JPEG appears 2 times"]),
    ("train_cut_at_boundary", [TRAIN, "2 images where", "lists 6", "2 have none"]),
    ("train_missing_class", [TRAIN, "5 images where", "lists 6", "1 have none"]),
])
def test_incomplete_datasets_are_one_line_errors(tmp_path, case, fragments):
    members = train_members()
    val = _val_members()
    kwargs = {
        "val_missing_one": {"val": val[:2] + val[3:]},
        "val_duplicate": {"val": val + [val[0]]},
        # the tar ends after its first class tar (a copy stopped at a member boundary)
        "train_cut_at_boundary": {"train": members[:1]},
        "train_missing_class": {"train": [m for m in members if not m[0].startswith("n02000002")]},
    }[case]
    root = _release(tmp_path / "imagenet", **kwargs)
    with pytest.raises(PipelineError) as err:
        download_raw(_data(root), TINY, tmp_path / "raw", progress=False)
    msg = str(err.value)
    assert "\n" not in msg and all(f in msg for f in fragments), msg
    assert not (tmp_path / "raw").exists()  # nothing half-made that looks valid


def test_a_partial_copy_is_accepted_when_asked_and_stated(tmp_path):
    members = [m for m in train_members() if not m[0].startswith("n02000002")]
    root = _release(tmp_path / "imagenet", train=members)
    download_raw(_data(root, allow_partial=True), TINY, tmp_path / "raw", progress=False)
    m = prepare(tmp_path / "raw", tmp_path / "prep", PrepareConfig(image_side=32, workers=1), progress=False, root=root)
    meta = read_json(tmp_path / "prep" / "meta.json")
    assert meta["splits"] == {"train": 5, "val": 5} and meta["num_classes"] == 3
    assert meta["subset"]["complete"] is False
    assert meta["subset"]["shortfall"]["train"] == {"images_missing": 1, "classes_short": 1,
                                                   "classes_without_images": 1}
    assert m["subset"] == meta["subset"]  # metrics/prepare.json, which the report reads (test_report states it)


def test_the_complete_default_records_no_subset(tmp_path):
    root = _release(tmp_path / "imagenet")
    manifest = download_raw(_data(root), TINY, tmp_path / "raw", progress=False)
    assert "selection" not in manifest
    prepare(tmp_path / "raw", tmp_path / "prep", PrepareConfig(image_side=32, workers=1), progress=False, root=root)
    assert "subset" not in read_json(tmp_path / "prep" / "meta.json")  # the default store is unchanged


# 4. Corrupt archives name the archive and the member ---------------------------------------------

def _inner_corrupt(kind: str) -> list[tuple[str, bytes]]:
    members = train_members()
    name, data = members[1]
    members[1] = (name, os.urandom(3000) if kind == "random" else data[:800])  # cut inside its first image
    return members


@pytest.mark.parametrize("kind", ["random", "cut"])
def test_a_corrupt_class_tar_names_archive_and_member(tmp_path, kind):
    root = _release(tmp_path / "imagenet", train=_inner_corrupt(kind))
    with pytest.raises((ArchiveError, PipelineError)) as err:
        download_raw(_data(root), TINY, tmp_path / "raw", progress=False)
    msg = str(err.value)
    assert f"{TRAIN}/n01000001.tar" in msg and "\n" not in msg, msg


def test_a_corrupt_class_tar_while_streaming_names_it(tmp_path):
    """The streaming reader prepare uses (mode r|) says the same, should a tar change after download."""
    from alexnet.data.sources.ilsvrc import iter_train_tar

    root = _release(tmp_path / "imagenet", train=_inner_corrupt("random"))
    with pytest.raises(ArchiveError, match=rf"{TRAIN}/n01000001.tar: not a readable tar"):
        list(iter_train_tar(root / TRAIN, {leaf["wnid"] for leaf in LEAVES}))


def test_an_outer_train_tar_cut_short(tmp_path):
    root = _release(tmp_path / "imagenet")
    data = (root / TRAIN).read_bytes()
    (root / TRAIN).write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(ArchiveError) as err:
        download_raw(_data(root), TINY, tmp_path / "raw", progress=False)
    assert str(err.value).startswith(str((root / TRAIN).resolve())) and "member" in str(err.value)
    from alexnet.data.sources.ilsvrc import iter_train_tar

    with pytest.raises(ArchiveError, match="cut short"):
        list(iter_train_tar(root / TRAIN, {leaf["wnid"] for leaf in LEAVES}))


def test_a_truncated_devkit_is_one_line_through_the_stage(tmp_path):
    root = _release(tmp_path / "imagenet")
    data = (root / DEVKIT).read_bytes()
    (root / DEVKIT).write_bytes(data[: len(data) // 2])
    (tmp_path / "params.yaml").write_text(f"data:\n  source: ilsvrc2012\n  root: {root}\n  verify_md5: false\n")
    result = run_stage("download", "--params", "params.yaml", "--out", "data/raw", cwd=tmp_path)
    assert_clear_error(result, DEVKIT)


# 5. A failed step keeps what was downloaded ---------------------------------------------------

def test_url_source_keeps_downloads_when_the_devkit_fails(tmp_path):
    src = tmp_path / "mirror"
    make_ilsvrc2012(src)
    good_devkit = (src / DEVKIT).read_bytes()
    (src / DEVKIT).write_bytes(good_devkit[:200])  # the mirror serves a broken devkit
    urls = {name: (src / name).as_uri() for name in (TRAIN, VAL, DEVKIT)}
    data = DataConfig(source="url", urls=urls, verify_md5=False)
    out = tmp_path / "data" / "raw"
    with pytest.raises((ArchiveError, PipelineError)):
        download_raw(data, TINY, out, progress=False)
    kept = tmp_path / "data" / ".raw.downloads"
    assert sorted(p.name for p in kept.iterdir()) == sorted([TRAIN, VAL, DEVKIT])  # nothing thrown away
    assert not out.exists()
    # Fixing only the devkit: the next run fetches nothing else again and finishes.
    (kept / DEVKIT).unlink()
    (src / DEVKIT).write_bytes(good_devkit)
    (src / TRAIN).unlink()  # would fail if the train tar were fetched again
    download_raw(data, TINY, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted([TRAIN, VAL, DEVKIT, "manifest.json"])
    assert len(list(open_raw(out).iter_split("train"))) == 6


# 6. Extreme aspect ratios are quarantined before any large allocation ----------------------------

def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 7).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def test_an_extreme_aspect_ratio_is_refused_from_the_header():
    from alexnet.data.resize import ImageBoundsError

    with pytest.raises(ImageBoundsError, match="1x16000 has an aspect ratio of 16000.0"):
        process_image(_png(1, 16000), 256, max_aspect=32.0)
    assert process_image(_png(10, 300), 64, max_aspect=32.0).shape == (64, 64, 3)  # 1:30 passes
    with pytest.raises(ImageBoundsError, match="prepare.max_pixels"):
        process_image(_png(300, 300), 64, max_pixels=300 * 299)


LOW_MEMORY = textwrap.dedent("""
    import io, resource, sys
    from PIL import Image
    from alexnet.config import PrepareConfig
    from alexnet.data.prepare import write_store

    class Rec:
        def __init__(self, source, wnid, data): self.source, self.wnid, self.data = source, wnid, data

    class Cls:
        wnid, name = "n01000001", "one"

    def png(w, h):
        b = io.BytesIO(); Image.new("L", (w, h), 7).save(b, "PNG"); return b.getvalue()

    class Raw:
        classes, splits, eval_split = [Cls()], ["train", "val"], "val"
        def iter_split(self, split):
            yield Rec("tall.png", "n01000001", png(1, 16000))
            yield Rec("ok.png", "n01000001", png(40, 60))
        def count(self, split): return 2

    limit = int(sys.argv[2]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # the 1x16000 image needed 4.2 GB
    m = write_store(Raw(), sys.argv[1], PrepareConfig(image_side=256, workers=1), "t", progress=False)
    print(m["quarantined"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def test_a_1x16000_image_is_quarantined_within_a_small_memory_limit(tmp_path):
    (tmp_path / "low.py").write_text(LOW_MEMORY)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, str(tmp_path / "low.py"), str(tmp_path / "prep"), "1024"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[:2] == ["{'train':", "1,"]
    rows = (tmp_path / "prep" / "quarantine.csv").read_text().splitlines()
    assert "tall.png" in rows[1] and "ImageBoundsError" in rows[1] and "prepare.max_aspect" in rows[1]
    assert read_json(tmp_path / "prep" / "meta.json")["splits"] == {"train": 1, "val": 1}


# 7. kill -9 leaves no orphaned workers; the next run removes its stale temporary folder ------------

SLOW_PREPARE = textwrap.dedent("""
    import sys, time
    from sources_helpers import jpeg
    from alexnet.config import PrepareConfig
    from alexnet.data.prepare import write_store

    class Rec:
        def __init__(self, i): self.source, self.wnid, self.data = f"{i}.JPEG", "n01000001", jpeg((i % 250, 0, 0), (40, 40))

    class Cls:
        wnid, name = "n01000001", "one"

    class Raw:
        classes, splits, eval_split = [Cls()], ["train"], "train"
        def iter_split(self, split):
            i = 0
            while True:
                i += 1
                if i == 200:
                    print("started", flush=True)
                time.sleep(0.002)
                yield Rec(i)
        def count(self, split): return None

    write_store(Raw(), sys.argv[1], PrepareConfig(image_side=32, workers=2), "t", progress=False)
""")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_prepare_leaves_no_workers_and_the_next_run_cleans_up(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW_PREPARE)
    out = tmp_path / "data" / "prepared"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "slow.py"), str(out)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "started"
        workers = _children(proc.pid)
        assert len(workers) >= 2, workers
        stale = list((tmp_path / "data").glob(".prepared.pid*.tmp"))
        assert [p.name.split(".")[2] for p in stale] == [f"pid{proc.pid}"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "pool workers outlived their killed parent"
    assert stale[0].exists()  # kill -9 ran no cleanup

    # Another writer's live temporary and unrelated files are left alone.
    live = tmp_path / "data" / f".prepared.pid{os.getppid()}.abc.tmp"
    live.mkdir()
    other = tmp_path / "data" / ".prepared.mine.tmp"
    other.mkdir()

    class Raw:
        classes = [type("C", (), {"wnid": "n01000001", "name": "one"})()]
        splits, eval_split = ["train"], "train"

        def iter_split(self, split):
            return iter([type("R", (), {"source": "a.JPEG", "wnid": "n01000001", "data": jpeg((1, 2, 3))})()])

        def count(self, split):
            return 1

    write_store(Raw(), out, PrepareConfig(image_side=32, workers=1), "t", progress=False)
    assert not stale[0].exists() and live.exists() and other.exists()
    assert read_json(out / "meta.json")["splits"] == {"train": 1}


# 8. The smaller ones ----------------------------------------------------------------------------

def _float_fields(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _float_fields(tp, f"{prefix}{f.name}.")
        elif tp is float:
            yield f"{prefix}{f.name}"


FLOATS = list(_float_fields(C.Params))


def _nested(dotted: str, value) -> dict:
    out: dict = {}
    node = out
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def test_the_float_params_include_the_ones_the_issue_names():
    assert {"train.lr", "model.lrn_alpha", "train.max_loss"} <= set(FLOATS) and len(FLOATS) >= 15


@pytest.mark.parametrize("key", FLOATS)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_every_float_param_refuses_inf_and_nan(key, value):
    with pytest.raises(ConfigError, match=rf"{key}: expected a finite number"):
        C.params_from_dict(_nested(key, value))


def test_yaml_exponents_are_numbers_as_dvc_reads_them(tmp_path):
    (tmp_path / "p.yaml").write_text("train:\n  lr: 1e-2\n  weight_decay: 5E-4\n  epochs: 3\n")
    p = load_params(tmp_path / "p.yaml")
    assert (p.train.lr, p.train.weight_decay, p.train.epochs) == (0.01, 0.0005, 3)
    (tmp_path / "q.yaml").write_text("train:\n  lr: .inf\n")
    with pytest.raises(ConfigError, match="train.lr: expected a finite number"):
        load_params(tmp_path / "q.yaml")


@pytest.mark.parametrize("text,fragment", [
    ("", "is empty"),
    ("train:\n  lr: 0.01\n  lr: 0.02\n", "duplicate key 'lr' (lines 2 and 3)"),
    ("train:\n  lr: 0.01\ntrain:\n  epochs: 2\n", "duplicate key 'train'"),
    ("tiny:\n  seed: -1\n", "tiny.seed: expected an integer in [0, 2**63)"),
    ("prepare:\n  shard_size: 1000000000\n", "prepare.shard_size: expected at most 21845 images"),
])
def test_bad_params_files_are_one_line_through_a_stage(tmp_path, text, fragment):
    (tmp_path / "params.yaml").write_text(text)
    result = run_stage("download", "--params", "params.yaml", "--out", "data/raw", cwd=tmp_path)
    assert_clear_error(result, fragment)


def test_a_full_disk_is_one_line_naming_the_output(tmp_path, monkeypatch):
    import alexnet.data.prepare as P

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    root = _release(tmp_path / "imagenet")
    download_raw(_data(root), TINY, tmp_path / "raw", progress=False)
    monkeypatch.setattr(P.np, "save", full)
    with pytest.raises(DiskFullError, match=r"no space left on the device while writing .*prep") as err:
        prepare(tmp_path / "raw", tmp_path / "prep", PrepareConfig(image_side=32, workers=1), progress=False, root=root)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "prep").exists() and not list(tmp_path.glob(".prep.*"))  # nothing half-written


def test_a_full_disk_inside_atomic_dir():
    with pytest.raises(DiskFullError), atomic_dir(Path("/tmp") / f"alexnet-full-{os.getpid()}"):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_anywhere_in_a_stage_exits_2_with_one_line(tmp_path, capsys):
    """A write outside alexnet.fileio's helpers: run_stage still prints one line, naming the file."""
    from alexnet.cli import run_stage, stage_parser

    def main(args, params):
        raise OSError(errno.ENOSPC, "No space left on device", "metrics/x.json")

    (tmp_path / "params.yaml").write_text("{}\n")
    with pytest.raises(SystemExit) as done:
        run_stage(main, stage_parser(None), ["--params", str(tmp_path / "params.yaml")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: no space left on the device (metrics/x.json); free some space and rerun\n"


def test_val_problems_surface_before_any_image_is_prepared(tmp_path, monkeypatch):
    """A broken val tar stops download, which lists every tar before prepare decodes anything."""
    import alexnet.data.prepare as P

    decoded = []
    monkeypatch.setattr(P, "process_image", lambda *a, **k: decoded.append(1))
    val = _val_members()
    root = _release(tmp_path / "imagenet", val=val[:-1])
    with pytest.raises(PipelineError, match=VAL):
        download_raw(_data(root), TINY, tmp_path / "raw", progress=False)
    assert decoded == []


def test_image_folder_counts_what_it_skips(tmp_path):
    root = tmp_path / "folder"
    for split in ("train", "val"):
        d = root / split / "n01440764"
        d.mkdir(parents=True)
        (d / "a.JPEG").write_bytes(jpeg((1, 1, 1)))
    d = root / "train" / "n01440764"
    (d / "gone.JPEG").symlink_to(tmp_path / "nowhere.JPEG")
    (d / "b.heic").write_bytes(b"x")
    m = download_raw(DataConfig(source="imagefolder", root=str(root)), TINY, tmp_path / "raw", progress=False)
    assert m["skipped"] == {"dangling_links": 1, "unknown_extension": 1, "hidden": 0, "not_a_file": 0}


def test_errors_name_the_file_with_its_folder(tmp_path):
    root = _release(tmp_path / "imagenet", val=_val_members()[:-1])
    with pytest.raises(PipelineError) as err:
        download_raw(_data(root), TINY, tmp_path / "raw", progress=False)
    assert str((root / VAL).resolve()) in str(err.value)


# Issue 15, item 8: a deterministic subset of the official files ---------------------------------

def test_a_subset_is_deterministic_and_recorded(tmp_path):
    root = _release(tmp_path / "imagenet")
    data = _data(root, classes=2, train_per_class=1, eval_per_class=1, seed=3)
    a = download_raw(data, TINY, tmp_path / "raw", progress=False)
    b = download_raw(data, TINY, tmp_path / "raw2", progress=False)
    assert a["selection"] == b["selection"]
    sel = a["selection"]
    assert sel["num_classes"] == 2 and len(sel["classes"]) == 2
    assert set(sel["classes"]) <= {leaf["wnid"] for leaf in LEAVES}
    # one training image per chosen class; val: one per chosen class that has val images
    assert sel["splits"]["train"]["images"] == 2
    prepare(tmp_path / "raw", tmp_path / "prep", PrepareConfig(image_side=32, workers=1), progress=False, root=root)
    meta = read_json(tmp_path / "prep" / "meta.json")
    assert meta["num_classes"] == 2 and meta["splits"]["train"] == 2
    assert meta["subset"]["params"]["classes"] == 2 and meta["subset"]["complete"] is True
    from alexnet.data.store import PreparedStore

    store = PreparedStore(tmp_path / "prep")
    assert sorted(store.classes["wnid"]) == sel["classes"]
    assert set(store.split("train").wnids) == set(sel["classes"])
    # another seed, another subset of the same files (3 classes: C(3,2) = 3 choices)
    chosen = {tuple(download_raw(_data(root, classes=2, seed=s), TINY, tmp_path / f"r{s}",
                                 progress=False)["selection"]["classes"]) for s in range(8)}
    assert len(chosen) > 1


def test_a_subset_by_wordnet_ids(tmp_path):
    root = _release(tmp_path / "imagenet")
    m = download_raw(_data(root, wnids=["n03000003", "n01000001"]), TINY, tmp_path / "raw", progress=False)
    assert m["selection"]["classes"] == ["n01000001", "n03000003"]
    # val truth 3, 1, 2, 2, 1 -> n02, n03, n01, n01, n03: two of n01 and two of n03
    assert m["selection"]["splits"] == {"train": {"images": 5, "expected": 5, "names": None},
                                        "val": {"images": 4, "expected": 4, "names": None}}
    ds = open_raw(tmp_path / "raw", root)
    assert [c.wnid for c in ds.classes] == ["n01000001", "n03000003"]
    assert sorted(r.source for r in ds.iter_split("val")) == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (2, 3, 4, 5)]
    with pytest.raises(PipelineError, match="n09999999 not among"):
        download_raw(_data(root, wnids=["n09999999"]), TINY, tmp_path / "bad", progress=False)


def test_subset_params_are_params_dvc_sees():
    for where in ("params.yaml", "configs/ilsvrc2012.yaml"):
        sub = yaml.safe_load((REPO / where).read_text())["data"]["subset"]
        assert sub == dataclasses.asdict(SubsetConfig())  # the default: everything, complete
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert "data" in stages["download"]["params"]
    with pytest.raises(ConfigError, match="data.subset.classes"):
        SubsetConfig(classes=2, wnids=["n01000001"])
