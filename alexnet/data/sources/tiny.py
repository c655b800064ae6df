"""The embedded tiny ImageNet: generated, deterministic, in the exact ILSVRC-2012 file layout.

Owns image synthesis and the writing of the three official files, byte for byte reproducible
from `tiny.seed`:

- ILSVRC2012_img_train.tar: one `<wnid>.tar` per class holding `<wnid>_<n>.JPEG`;
- ILSVRC2012_img_val.tar: flat `ILSVRC2012_val_%08d.JPEG`, classes shuffled;
- ILSVRC2012_devkit_t12.tar.gz: `ILSVRC2012_devkit_t12/data/meta.mat` (a `synsets` struct array
  with the real fields, leaves first with ILSVRC2012_ID 1..C, then a few real internal WordNet
  nodes so the leaf filter matters) and `data/ILSVRC2012_validation_ground_truth.txt`.

So CI runs the very code that reads real ImageNet. Classes are real ILSVRC-2012 synsets
(alexnet.data.sources.synsets); their ILSVRC2012_IDs are a seeded permutation, never sorted-wnid
order, as in the real devkit (which numbers kit fox 1, English setter 2, Siberian husky 3).

Images: each class has its own shape, fill texture and hue; every image draws the object at a
random position, scale, rotation and aspect over a gradient background with clutter shapes of
other kinds and pixel noise, at a random size in [min_side, max_side]^2 and JPEG quality. A CNN
separates the classes well above chance, but clutter, jitter and noise keep it from trivial.

The real training set's quirks are planted (and listed in the manifest): a CMYK JPEG, a PNG
saved under a .JPEG name, a grayscale JPEG, and a truncated JPEG.
"""

from __future__ import annotations

import colorsys
import gzip
import hashlib
import io
import math
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, ImageDraw
from tqdm import tqdm

from alexnet.config import TinyConfig
from alexnet.data.sources.ilsvrc import ILSVRC2012
from alexnet.data.sources.synsets import INTERNAL, INTERNAL_PARENT, SYNSETS, parent_of

# Fixed archive metadata so the tars (and DVC's hashes of them) are identical on every run.
TAR_MTIME = 1338508800  # 2012-06-01, the ILSVRC-2012 release
QUIRKS = ("cmyk", "png", "grayscale", "truncated")
_SPLIT_SALT = {"train": 1, "val": 2}
_N_SHAPES = 8
_N_TEXTURES = 4


@dataclass(frozen=True)
class TinyClass:
    wnid: str
    words: str
    ilsvrc_id: int
    shape: int
    texture: int
    hue: float


def choose_classes(cfg: TinyConfig) -> list[TinyClass]:
    """`cfg.classes` synsets spread over the table, sorted by wnid, with permuted ILSVRC2012_IDs."""
    picks = [SYNSETS[(i * len(SYNSETS)) // cfg.classes] for i in range(cfg.classes)]
    rng = np.random.default_rng([cfg.seed, 0])
    order = rng.permutation(cfg.classes)
    if np.array_equal(order, np.arange(cfg.classes)):
        order = order[::-1]  # the devkit's numbering must not coincide with sorted order
    ids = np.empty(cfg.classes, dtype=int)
    ids[order] = np.arange(1, cfg.classes + 1)
    # Attributes: shape cycles fastest and texture shifts every 8 classes, so a (shape, texture)
    # pair repeats only after 32 classes; hues are spaced 1/C apart around the colour wheel and
    # visited with a stride m coprime to C (about 0.38 C), so classes that share a shape get far
    # apart hues. Up to 16 classes every pair differs in at least two of (shape, texture, hue).
    m = max(1, round(0.382 * cfg.classes))
    while math.gcd(m, cfg.classes) != 1:
        m += 1
    return [TinyClass(wnid, words, int(ids[c]), c % _N_SHAPES, (c + c // _N_SHAPES) % _N_TEXTURES,
                      0.07 + ((c * m) % cfg.classes) / cfg.classes)
            for c, (wnid, words) in enumerate(picks)]


def _polygon(shape: int, cx: float, cy: float, r: float, angle: float,
             aspect: float) -> list[list[tuple[float, float]]]:
    """Outline(s) of a shape; the first is filled, later ones are holes."""
    def ring(radii: np.ndarray, n: int, start: float = 0.0) -> list[tuple[float, float]]:
        t = start + np.arange(n) * 2 * np.pi / n
        x, y = radii * np.cos(t) * aspect, radii * np.sin(t)
        ca, sa = np.cos(angle), np.sin(angle)
        return list(zip((cx + ca * x - sa * y).tolist(), (cy + sa * x + ca * y).tolist()))

    if shape in (0, 1, 2, 3):  # triangle, square, pentagon, hexagon
        n = shape + 3
        return [ring(np.full(n, r), n, np.pi / 2)]
    if shape == 4:  # five-pointed star
        return [ring(np.tile([r, 0.45 * r], 5), 10, np.pi / 2)]
    if shape == 5:  # plus-shaped cross
        a, b = r, 0.35 * r
        pts = np.array([(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b),
                        (-a, b), (-a, -b), (-b, -b)])
        ca, sa = np.cos(angle), np.sin(angle)
        x, y = pts[:, 0] * aspect, pts[:, 1]
        return [list(zip((cx + ca * x - sa * y).tolist(), (cy + sa * x + ca * y).tolist()))]
    if shape == 6:  # disc
        return [ring(np.full(48, r), 48)]
    return [ring(np.full(48, r), 48), ring(np.full(48, 0.55 * r), 48)]  # ring (annulus)


def _texture(kind: int, h: int, w: int, period: float, angle: float, phase: float) -> np.ndarray:
    """A fill pattern in [0, 1] of shape [h, w]: flat, stripes, checkerboard or dots."""
    yy, xx = np.ogrid[0:h, 0:w]
    ca, sa = np.float32(np.cos(angle) / period), np.float32(np.sin(angle) / period)
    u = xx.astype(np.float32) * ca + yy.astype(np.float32) * sa + np.float32(phase)
    if kind == 0:
        return np.broadcast_to(np.float32(1.0), (h, w))
    if kind == 1:
        return (np.sin(np.float32(2 * np.pi) * u) > 0).astype(np.float32)
    v = yy.astype(np.float32) * ca - xx.astype(np.float32) * sa + np.float32(phase)
    if kind == 2:
        return ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    return ((np.sin(np.float32(np.pi) * u) ** 2 * np.sin(np.float32(np.pi) * v) ** 2) > 0.35).astype(np.float32)


def _rgb(hue: float, sat: float, val: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, float(np.clip(sat, 0, 1)), float(np.clip(val, 0, 1))),
                    dtype=np.float32) * 255


def _blend(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> Image.Image:
    """RGB image a + (b - a) * t for colours a, b [3] and weights t [h, w] (a channel at a time:
    numpy broadcasting over a trailing axis of 3 is many times slower)."""
    out = np.empty(t.shape + (3,), dtype=np.uint8)
    for ch in range(3):
        out[..., ch] = a[ch] + (b[ch] - a[ch]) * t
    return Image.fromarray(out, "RGB")


def _draw_shape(draw: ImageDraw.ImageDraw, outlines: list, fill: int | tuple, hole_fill: int | tuple | None) -> None:
    draw.polygon(outlines[0], fill=fill)
    for hole in outlines[1:]:
        draw.polygon(hole, fill=hole_fill)


def render(cls: TinyClass, rng: np.random.Generator, cfg: TinyConfig) -> Image.Image:
    """One RGB image of class `cls` (PIL draws the shapes; numpy only the gradient, fill and noise)."""
    w, h = (int(s) for s in rng.integers(cfg.min_side, cfg.max_side + 1, size=2))
    side = min(w, h)
    # Background: a two-colour gradient at a random angle.
    c1 = _rgb(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.3, 0.9))
    c2 = _rgb(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.3, 0.9))
    g = rng.uniform(0, 2 * np.pi)
    yy, xx = np.ogrid[0:h, 0:w]
    ramp = xx.astype(np.float32) * np.float32(np.cos(g)) + yy.astype(np.float32) * np.float32(np.sin(g))
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1.0)
    img = _blend(c1, c2, ramp)
    draw = ImageDraw.Draw(img)
    # Clutter: small shapes of other kinds and colours, some partly hidden by the object.
    for _ in range(int(rng.integers(3, 9))):
        shape = int(rng.integers(_N_SHAPES))
        outlines = _polygon(shape, rng.uniform(0, w), rng.uniform(0, h), side * rng.uniform(0.04, 0.12),
                            rng.uniform(0, 2 * np.pi), rng.uniform(0.7, 1.4))
        colour = tuple(int(v) for v in _rgb(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.3, 1.0)))
        if shape != cls.shape:
            _draw_shape(draw, outlines, colour, None)
    # The object: class shape, texture and hue, jittered in everything else.
    r = side * rng.uniform(0.18, 0.38)
    cx, cy = rng.uniform(r * 0.7, w - r * 0.7), rng.uniform(r * 0.7, h - r * 0.7)
    outlines = _polygon(cls.shape, cx, cy, r, rng.uniform(0, 2 * np.pi), rng.uniform(0.75, 1.33))
    mask = Image.new("L", (w, h))
    _draw_shape(ImageDraw.Draw(mask), outlines, 255, 0)
    pattern = _texture(cls.texture, h, w, r * rng.uniform(0.25, 0.4), rng.uniform(0, np.pi), rng.random())
    # Hue jitter (sd 0.05) lets neighbouring hues overlap: colour alone separates the default 10
    # classes only ~70% of the time (a hue-histogram nearest-mean test); shape and texture do the rest.
    fg = _rgb(cls.hue + rng.normal(0, 0.05), rng.uniform(0.6, 0.95), rng.uniform(0.75, 1.0))
    dark = fg * np.float32(rng.uniform(0.25, 0.45))
    fill = _blend(dark, fg, pattern)
    img = Image.composite(fill, img, mask)
    # Sensor-like luminance noise (one draw per pixel, shared by the channels: a third of the cost).
    noise = rng.standard_normal((h, w), dtype=np.float32) * np.float32(rng.uniform(4, 14))
    out = np.array(img)
    for ch in range(3):
        out[..., ch] = np.clip(out[..., ch] + noise, 0, 255)
    return Image.fromarray(out, "RGB")


def _encode(image: Image.Image, rng: np.random.Generator, quirk: str | None) -> bytes:
    buf = io.BytesIO()
    quality = int(rng.integers(70, 96))
    if quirk == "cmyk":
        image.convert("CMYK").save(buf, "JPEG", quality=quality)
    elif quirk == "png":
        image.save(buf, "PNG")  # a PNG under a .JPEG name, as n02105855_2933.JPEG in the real set
    elif quirk == "grayscale":
        image.convert("L").save(buf, "JPEG", quality=quality)
    else:
        image.save(buf, "JPEG", quality=quality)
    data = buf.getvalue()
    if quirk == "truncated":
        data = data[: len(data) * 3 // 5]  # cut mid-scan: the decoder fails or sees a grey tail
    return data


def _image_rng(cfg: TinyConfig, split: str, c: int, i: int) -> np.random.Generator:
    # One independent stream per image: generation order never changes an image.
    return np.random.default_rng([cfg.seed, _SPLIT_SALT[split], c, i])


class _HashingWriter:
    """A binary file that also feeds an MD5 as it is written (one pass, nothing held in memory)."""

    def __init__(self, f):  # noqa: ANN001
        self.f, self.md5 = f, hashlib.md5()

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        return self.f.write(data)


def _write_tar(fileobj, members: Iterable[tuple[str, bytes]], dirs: tuple[str, ...] = ()) -> None:  # noqa: ANN001
    """A tar with fixed metadata (mtime, owner, mode; member order as given), streamed to `fileobj`."""
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.USTAR_FORMAT) as tf:  # write() only
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, TAR_MTIME
            tf.addfile(info)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, TAR_MTIME
            tf.addfile(info, io.BytesIO(data))


def _tar_bytes(members: Iterable[tuple[str, bytes]], dirs: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    _write_tar(buf, members, dirs)
    return buf.getvalue()


def meta_mat_bytes(classes: list[TinyClass], train_per_class: int, id_field: str = "ILSVRC2012_ID") -> bytes:
    """meta.mat as the devkit has it: `synsets`, leaves (ids 1..C) then internal nodes."""
    leaves = sorted(classes, key=lambda k: k.ilsvrc_id)
    n = len(leaves)
    # Internal nodes on the way from each leaf to the root, numbered after the leaves as in the devkit.
    used: set[str] = set()
    for k in leaves:
        node: str | None = parent_of(k.wnid)
        while node:
            used.add(node)
            node = INTERNAL_PARENT.get(node)
    internal = [w for w in INTERNAL if w in used]
    iid = {w: n + 1 + j for j, w in enumerate(internal)}
    children: dict[str, list[int]] = {w: [] for w in internal}
    for k in leaves:
        children[parent_of(k.wnid)].append(k.ilsvrc_id)
    for w in internal:
        if w in INTERNAL_PARENT:
            children[INTERNAL_PARENT[w]].append(iid[w])
    count = {k.ilsvrc_id: train_per_class for k in leaves}
    height = {k.ilsvrc_id: 0 for k in leaves}
    wnid_of = {iid[w]: w for w in internal}

    def resolve(sid: int) -> None:  # subtree training count and WordNet height, bottom-up
        if sid in count:
            return
        kids = children[wnid_of[sid]]
        for kid in kids:
            resolve(kid)
        count[sid] = sum(count[kid] for kid in kids)
        height[sid] = 1 + max(height[kid] for kid in kids)

    for w in internal:
        resolve(iid[w])
    dtype = [(f, object) for f in (id_field, "WNID", "words", "gloss", "num_children", "children",
                                   "wordnet_height", "num_train_images")]
    rows = np.empty((n + len(internal), 1), dtype=dtype)
    entries = [(k.ilsvrc_id, k.wnid, k.words) for k in leaves] + [(iid[w], w, INTERNAL[w]) for w in internal]
    for j, (sid, wnid, words) in enumerate(entries):
        kids = children.get(wnid, []) if sid > n else []
        rows[j, 0] = (np.array([[sid]], dtype=np.uint16), wnid, words,
                      "",  # glosses are not embedded; readers never use them
                      np.array([[len(kids)]], dtype=np.uint16),
                      np.array([sorted(kids)], dtype=np.float64) if kids else np.zeros((1, 0)),
                      np.array([[height[sid]]], dtype=np.uint16),
                      np.array([[count[sid]]], dtype=np.uint16 if count[sid] < 65536 else np.uint32))
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"synsets": rows}, format="5", oned_as="row")
    data = bytearray(buf.getvalue())
    # The MAT-5 header's 116 text bytes carry a creation date; fix them so the bytes are stable. The
    # creator is the generator's first name, kept when the module moved: data/raw's hash stays.
    data[:116] = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: alexnet.sources.tiny".ljust(116)
    return bytes(data)


def _gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:  # mtime 0: stable bytes
        gz.write(data)
    return buf.getvalue()


def generate(cfg: TinyConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Write the three ILSVRC-2012 files into `out_dir`; return {"files", "md5", "quirks"}.

    `md5` holds the checksums of what was written (the manifest records them and the download
    stage verifies the files against them, the same path real ImageNet's published MD5s take).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = choose_classes(cfg)
    n_cls = len(classes)
    quirk_at = {}
    for q, kind in enumerate(QUIRKS):
        c, i = q % n_cls, q // n_cls
        if i < cfg.train_per_class:
            quirk_at[(c, i)] = kind
    total = n_cls * (cfg.train_per_class + cfg.val_per_class)
    bar = tqdm(total=total, desc="tiny images", unit="img", disable=not progress)
    quirks: dict[str, str] = {}

    def train_class_tars() -> Iterator[tuple[str, bytes]]:
        # One class tar at a time in memory; the outer tar streams to disk. Devkit-id order, as a
        # real tar's member order owes nothing to sorted wnids either.
        for c, k in sorted(enumerate(classes), key=lambda e: e[1].ilsvrc_id):
            numbers = np.random.default_rng([cfg.seed, 3, c]).choice(
                np.arange(1, 20 * cfg.train_per_class + 50), size=cfg.train_per_class, replace=False)
            members = []
            for i in range(cfg.train_per_class):
                rng = _image_rng(cfg, "train", c, i)
                quirk = quirk_at.get((c, i))
                name = f"{k.wnid}_{int(numbers[i])}.JPEG"
                if quirk:
                    quirks[quirk] = name
                members.append((name, _encode(render(k, rng, cfg), rng, quirk)))
                bar.update()
            yield f"{k.wnid}.tar", _tar_bytes(sorted(members))

    # Validation: classes interleaved in a seeded order, numbered 1..N like the real val tar.
    val_classes = np.repeat(np.arange(n_cls), cfg.val_per_class)
    np.random.default_rng([cfg.seed, 4]).shuffle(val_classes)
    truth = [classes[c].ilsvrc_id for c in val_classes.tolist()]

    def val_images() -> Iterator[tuple[str, bytes]]:
        seen = np.zeros(n_cls, dtype=int)
        for j, c in enumerate(val_classes.tolist(), start=1):
            rng = _image_rng(cfg, "val", c, int(seen[c]))
            seen[c] += 1
            yield f"ILSVRC2012_val_{j:08d}.JPEG", _encode(render(classes[c], rng, cfg), rng, None)
            bar.update()

    top = "ILSVRC2012_devkit_t12"
    devkit = _gzip_bytes(_tar_bytes(
        [(f"{top}/data/meta.mat", meta_mat_bytes(classes, cfg.train_per_class)),
         (f"{top}/data/ILSVRC2012_validation_ground_truth.txt", "".join(f"{t}\n" for t in truth).encode())],
        dirs=(f"{top}/", f"{top}/data/")))

    names, md5 = dict(ILSVRC2012.files), {}
    for role, write in (("train", lambda f: _write_tar(f, train_class_tars())),
                        ("val", lambda f: _write_tar(f, val_images())),
                        ("devkit", lambda f: f.write(devkit))):
        with open(out_dir / names[role], "wb") as f:
            w = _HashingWriter(f)
            write(w)
            md5[role] = w.md5.hexdigest()
    bar.close()
    return {"files": names, "md5": md5, "quirks": quirks}
