"""alexnet.data.input.loader: order, coverage, augmentation per batch, resume, rank slices, errors, threads."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest
import torch
from test_store import jpeg, pil_decode, write_jpeg_shard

from alexnet.config import AugmentConfig, ConfigError
from alexnet.data.input.augment import InputStats, apply_params, batch_generator, draw_params
from alexnet.data.input.loader import BatchLoader, OutputPool, epoch_order
from alexnet.data.input.pixels import crop_center_flip
from alexnet.data.store import PreparedStore

S, C, N = 16, 12, 50


def write_store(root, images: np.ndarray, labels: np.ndarray, shard_size: int = 16, fmt: str = "npy") -> None:
    """A prepared store per docs/architecture.md, written by hand (independent of prepare.py)."""
    (root / "shards").mkdir(parents=True)
    rows = []
    for k, start in enumerate(range(0, len(images), shard_size)):
        if fmt == "jpeg":
            write_jpeg_shard(root, "train", k, [jpeg(x) for x in images[start:start + shard_size]])
        else:
            np.save(root / "shards" / f"train-{k:05d}.npy", images[start:start + shard_size])
        rows += [("train", k, o, int(labels[start + o]), f"n{labels[start + o]:08d}", f"img{start + o}.JPEG")
                 for o in range(len(images[start:start + shard_size]))]
    pd.DataFrame(rows, columns=["split", "shard", "offset", "label", "wnid", "source"]).to_csv(root / "index.csv", index=False)
    classes = sorted(set(labels.tolist()))
    pd.DataFrame({"label": range(len(classes)), "wnid": [f"n{c:08d}" for c in classes], "name": "x"}).to_csv(
        root / "classes.csv", index=False)
    (root / "meta.json").write_text(json.dumps({"size": S, "source": "test", "eval_split": "train",
                                                "splits": {"train": len(images)}, "num_classes": len(classes),
                                                "format": fmt}))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N, S, S, 3), dtype=np.uint8)
    images[:, :, :, 0] = np.arange(N, dtype=np.uint8)[:, None, None]  # red = image index, to trace rows
    labels = np.arange(N) % 5
    root = tmp_path_factory.mktemp("prepared")
    write_store(root, images, labels)
    mean = images.astype(np.float64).mean(axis=0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    stats = type("Stats", (), dict(mean_image=mean, channel_mean=mean.mean(axis=(0, 1)),
                                   eigvals=np.array([500.0, 30.0, 2.0]), eigvecs=q))
    return PreparedStore(root).split("train"), images, labels, stats


def make(store, batch_size=8, **kw):
    view, _, _, stats = store
    args = dict(input_size=C, stats=stats, augment=AugmentConfig(), device="cpu", seed=3, shuffle=True,
                drop_last=True)
    args.update(kw)
    return BatchLoader(view, batch_size, **args)


def traced(x: torch.Tensor) -> list[int]:
    """Image indices of an un-normalised evaluation batch (red channel = index)."""
    return x[:, 0, 0, 0].round().long().tolist()


def test_length_and_drop_last(store):
    assert len(make(store, 8)) == 6 and len(make(store, 8, drop_last=False)) == 7
    assert len(make(store, 50)) == 1 and len(make(store, 64)) == 0 and len(make(store, 64, drop_last=False)) == 1


def test_evaluation_batches_cover_every_image_once_in_order(store):
    view, images, labels, stats = store
    loader = make(store, 8, augment=None, mean="none", shuffle=False, drop_last=False)
    batches = list(loader.epoch(0))
    assert [len(y) for _, y in batches] == [8] * 6 + [2]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert traced(x) == list(range(N)) and y.tolist() == labels.tolist()
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1:] == (3, C, C)
    # centre crop, no flip, no lighting, minus the mean image: exactly crop_center_flip at the centre
    loader = make(store, 8, augment=None, mean="image", shuffle=False, drop_last=False)
    x = torch.cat([b[0] for b in loader.epoch(0)])
    off = (S - C) // 2
    torch.testing.assert_close(x, crop_center_flip(images, [off] * N, [off] * N, C, None, stats.mean_image),
                               rtol=0, atol=0)


def test_shuffled_order_is_a_seeded_permutation(store):
    _, _, labels, _ = store
    loader = make(store, 10, augment=None, mean="none", drop_last=False)
    seen = [traced(x) for x, _ in loader.epoch(0)]
    flat = sum(seen, [])
    assert sorted(flat) == list(range(N)) and flat != list(range(N))
    assert flat == epoch_order(N, 3, 0, True).tolist()
    assert flat == sum((traced(x) for x, _ in make(store, 10, augment=None, mean="none", drop_last=False).epoch(0)), [])
    assert flat != epoch_order(N, 3, 1, True).tolist()  # a new order every epoch
    assert flat != epoch_order(N, 4, 0, True).tolist()  # and for every seed
    for x, y in loader.epoch(0):  # labels travel with their images
        assert y.tolist() == labels[traced(x)].tolist()


def test_training_batches_equal_the_augmentation_of_their_rows(store):
    """Each batch = augment.apply_params(rows of the seeded order, draws seeded by (seed, epoch, batch))."""
    view, images, labels, stats = store
    loader = make(store, 8, seed=11)
    order = epoch_order(N, 11, 2, True)
    st = InputStats.from_stats(stats, pca_magnitude="sqrt_eigval")  # AugmentConfig's default
    batches = list(loader.epoch(2))
    assert len(batches) == 6
    for b, (x, y) in enumerate(batches):
        rows = order[b * 8:(b + 1) * 8]
        p = draw_params(8, S, C, AugmentConfig(), batch_generator(11, 2, b))
        torch.testing.assert_close(x, apply_params(torch.from_numpy(images[rows]), p, C, st), rtol=0, atol=0)
        assert y.tolist() == labels[rows].tolist()


def test_same_seed_same_batches_bitwise(store):
    a = [x for x, _ in make(store, 8).epoch(1)]
    b = [x for x, _ in make(store, 8).epoch(1)]
    c = [x for x, _ in make(store, 8, seed=4).epoch(1)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_thread_count_and_read_ahead_do_not_change_the_batches(store):
    ref = list(make(store, 8, workers=1, prefetch=1).epoch(3))
    for workers, prefetch in ((3, 5), (2, 1)):
        got = list(make(store, 8, workers=workers, prefetch=prefetch).epoch(3))
        assert len(got) == len(ref)
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(ref, got))


def test_output_pool_recycles_only_released_arrays():
    pool = OutputPool(capacity=2)
    a = pool.get((2, 3, 4, 4))
    x = torch.from_numpy(a)[1:]  # a view of a tensor of it keeps it busy
    del a
    b = pool.get((2, 3, 4, 4))
    assert not np.shares_memory(b, x.numpy())
    del x
    c = pool.get((2, 3, 4, 4))
    assert c is not b and pool.arrays[0] is c  # the first array came back once x was gone
    del b, c
    assert pool.get((1, 3, 4, 4)).shape == (1, 3, 4, 4)  # another shape: a fresh array


def test_recycled_batches_are_still_exact(store):
    kept = [(x.clone(), y.clone()) for x, y in make(store, 2).epoch(4)]  # clones: recycling allowed
    held = list(make(store, 2).epoch(4))  # batches kept alive: never recycled
    pointers = set()
    for (x, y), (hx, hy) in zip(kept, held):
        assert torch.equal(x, hx) and torch.equal(y, hy)
    for x, _ in make(store, 2).epoch(4):
        pointers.add(x.data_ptr())
    assert len(held) == 25 and len({x.data_ptr() for x, _ in held}) == 25
    assert len(pointers) < 10  # dropped batches' memory is reused


@pytest.mark.parametrize("world_size", [2, 4])
def test_rank_slices_concatenate_to_the_single_process_batch(store, world_size):
    single = list(make(store, 8).epoch(0))
    ranks = [list(make(store, 8, rank=r, world_size=world_size).epoch(0)) for r in range(world_size)]
    for b, (x, y) in enumerate(single):
        assert all(len(r[b][1]) == 8 // world_size for r in ranks)
        assert torch.equal(torch.cat([r[b][0] for r in ranks]), x)
        assert torch.equal(torch.cat([r[b][1] for r in ranks]), y)


def test_bad_settings_are_clear_errors(store):
    with pytest.raises(ConfigError, match="split evenly"):
        make(store, 9, world_size=2)
    with pytest.raises(ConfigError, match="drop_last"):
        make(store, 8, world_size=2, drop_last=False)
    with pytest.raises(ConfigError, match="rank"):
        make(store, 8, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="exceeds"):
        make(store, 8, input_size=S + 1)
    with pytest.raises(ConfigError, match="stats"):
        make(store, 8, stats=None)
    make(store, 8, stats=None, augment=AugmentConfig(mean="none", pca_lighting=False))  # needs no stats


class Failing:
    """A view whose third read fails, as a vanished shard would."""

    format = "npy"

    def __init__(self, images, labels):
        self.images_, self.labels, self.calls = images, labels, 0

    def __len__(self):
        return len(self.labels)

    def images(self, idx):
        self.calls += 1
        if self.calls == 3:
            raise OSError("shard vanished")
        return self.images_[np.asarray(idx)]


def test_reader_errors_reach_the_consumer_and_threads_end(store):
    _, images, labels, stats = store
    before = threading.active_count()
    loader = BatchLoader(Failing(images, labels), 8, input_size=C, stats=stats, augment=AugmentConfig(),
                         device="cpu", seed=0, shuffle=True, drop_last=True)
    got = []
    with pytest.raises(OSError, match="shard vanished"):
        for x, _ in loader.epoch(0):
            got.append(x)
    assert len(got) == 2
    # a consumer that stops early (break) leaves no thread behind either
    loader = make(store, 2, prefetch=1)
    it = loader.epoch(0)
    next(it)
    it.close()
    assert threading.active_count() == before


@pytest.fixture(scope="module")
def jpeg_stores(store, tmp_path_factory):
    """The same images as a jpeg store and as an npy store of what the JPEGs decode to."""
    _, images, labels, stats = store
    decoded = np.stack([pil_decode(jpeg(x)) for x in images])
    assert not np.array_equal(decoded, images)  # lossy: the npy store below differs from `store`
    roots = {fmt: tmp_path_factory.mktemp(fmt) for fmt in ("npy", "jpeg")}
    write_store(roots["npy"], decoded, labels)
    write_store(roots["jpeg"], images, labels, fmt="jpeg")
    return {fmt: PreparedStore(root).split("train") for fmt, root in roots.items()}, stats


@pytest.mark.parametrize("decode", ["auto", "cpu", "device", "split"])
@pytest.mark.parametrize("training", [True, False])
def test_jpeg_store_gives_the_batches_of_its_decoded_images(jpeg_stores, decode, training):
    """Decoded in the reader threads, by the producer ("device", here the CPU) or split between
    them, training and evaluation batches from a jpeg store equal those from an npy store of the
    decoded images, bit for bit."""
    views, stats = jpeg_stores
    common = dict(input_size=C, stats=stats, device="cpu", seed=5, workers=2)
    common |= (dict(augment=AugmentConfig(), shuffle=True, drop_last=True) if training else
               dict(augment=None, mean="image", shuffle=False, drop_last=False))
    ref = list(BatchLoader(views["npy"], 8, **common).epoch(1))
    loader = BatchLoader(views["jpeg"], 8, decode=decode, device_share=0.375, **common)
    assert loader.decode == ("cpu" if decode == "auto" else decode)  # auto: cpu on a CPU device
    got = list(loader.epoch(1))
    assert len(got) == len(ref) == (6 if training else 7)
    for (x, y), (xr, yr) in zip(got, ref):
        assert torch.equal(x, xr) and torch.equal(y, yr)


def test_a_ranks_validation_share_of_a_jpeg_store_decodes_on_the_device(jpeg_stores):
    """Training's per-rank validation view passes a jpeg store's bytes through, so a GPU decodes them."""

    views, stats = jpeg_stores
    common = dict(input_size=C, stats=stats, device="cpu", seed=0, augment=None, mean="image", shuffle=False,
                  drop_last=False)
    for rank in (0, 1):
        ref = list(BatchLoader(views["npy"], 4, indices=np.array_split(np.arange(len(views["npy"])), 2)[rank], **common).epoch(0))
        got = list(BatchLoader(views["jpeg"], 4, decode="device",
                               indices=np.array_split(np.arange(len(views["jpeg"])), 2)[rank], **common).epoch(0))
        assert len(got) == len(ref) > 1
        for (x, y), (xr, yr) in zip(got, ref):
            assert torch.equal(x, xr) and torch.equal(y, yr)


@pytest.mark.parametrize("decode, share, on_device", [("device", 0.5, 8), ("split", 0.25, 2), ("split", 0.3, 2),
                                                      ("split", 0.0, 0), ("split", 1.0, 8)])
def test_device_decoding_runs_on_the_producer_thread_with_a_fixed_share(jpeg_stores, monkeypatch, decode, share,
                                                                        on_device):
    """The reader threads gather the bytes of the device's rows (the first round(share x 8) of
    each batch) and decode the rest; the producer thread, not the caller, decodes the device's."""
    views, stats = jpeg_stores
    view = views["jpeg"]
    device_rows, cpu_rows, decoders = [], [], set()
    real_decode = view.decode

    def decode_on_device(idx, encoded, device):
        decoders.add(threading.current_thread().name)
        assert all(isinstance(e, torch.Tensor) and e.dim() == 1 for e in encoded)
        device_rows.append(len(idx))
        return real_decode(idx, encoded, device)

    def images(idx):
        assert threading.current_thread().name.startswith("BatchLoader")
        cpu_rows.append(len(idx))
        return real_decode(idx, view.encoded(idx)).numpy()  # view.images, past the patched decode

    monkeypatch.setattr(view, "decode", decode_on_device)
    monkeypatch.setattr(view, "images", images)
    loader = BatchLoader(view, 8, input_size=C, stats=stats, augment=AugmentConfig(), device="cpu", seed=0,
                         shuffle=True, drop_last=True, decode=decode, device_share=share, workers=2)
    assert len(list(loader.epoch(0))) == 6
    assert device_rows == ([on_device] * 6 if on_device else [])
    assert cpu_rows == ([8 - on_device] * 6 if on_device < 8 else [])
    assert decoders == ({"BatchProducer"} if on_device else set())


def test_decode_choice_is_checked(store, jpeg_stores):
    with pytest.raises(ConfigError, match="decode: expected 'auto', 'cpu', 'device' or 'split', got 'gpu'"):
        make(store, 8, decode="gpu")
    for decode in ("device", "split"):
        with pytest.raises(ConfigError, match="needs a jpeg store"):
            make(store, 8, decode=decode)
    with pytest.raises(ConfigError, match=r"device_share: expected a fraction in \[0, 1\], got 1.5"):
        make(store, 8, device_share=1.5)
    with pytest.raises(ConfigError, match="dtype: expected a floating input dtype"):
        make(store, 8, dtype=torch.uint8)
    assert make(store, 8).decode == "cpu"


@pytest.mark.parametrize("decode", ["cpu", "device"])
def test_batches_come_in_the_steps_dtype_and_memory_format(jpeg_stores, decode):
    """dtype bf16 and channels_last: the float32 batch, cast (round to nearest even) and laid out
    channels-last, as autocast and the step would have made it."""
    views, stats = jpeg_stores
    common = dict(input_size=C, stats=stats, device="cpu", seed=5, augment=AugmentConfig(), shuffle=True,
                  drop_last=True, decode=decode)
    ref = list(BatchLoader(views["jpeg"], 8, **common).epoch(2))
    got = list(BatchLoader(views["jpeg"], 8, dtype=torch.bfloat16, channels_last=True, **common).epoch(2))
    assert len(got) == len(ref) == 6
    for (x, y), (xr, yr) in zip(got, ref):
        assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(x, xr.to(torch.bfloat16)) and torch.equal(y, yr)
        assert not torch.equal(x.float(), xr)  # the cast rounds: the test sees the dtype


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("decode", ["auto", "split"])
def test_cuda_decodes_jpeg_on_the_device(jpeg_stores, decode):
    """nvJPEG's inverse DCT may differ from libjpeg-turbo's by a level or two: close, not equal.
    The producer makes the batches on its own stream; they arrive ready on the caller's."""
    views, stats = jpeg_stores
    common = dict(input_size=C, stats=stats, seed=5, augment=AugmentConfig(), shuffle=True, drop_last=True)
    cpu = list(BatchLoader(views["npy"], 8, device="cpu", **common).epoch(0))
    loader = BatchLoader(views["jpeg"], 8, device="cuda", decode=decode, **common)
    assert loader.decode == ("device" if decode == "auto" else "split")
    for (x, y), (xg, yg) in zip(cpu, loader.epoch(0)):
        assert xg.device.type == "cuda" and torch.equal(yg.cpu(), y)
        assert (xg.cpu() - x).abs().max() <= 4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_cpu_batches(store):
    cpu = list(make(store, 8).epoch(0))
    gpu = list(make(store, 8, device="cuda").epoch(0))
    for (x, y), (xg, yg) in zip(cpu, gpu):
        assert xg.device.type == "cuda" and torch.equal(yg.cpu(), y)
        torch.testing.assert_close(xg.cpu(), x, rtol=1e-5, atol=1e-4)


def test_cpu_reader_threads_leave_the_callers_torch_thread_count(store):
    """Reader threads augment on one torch thread each, then hand back the caller's count, also
    to threads started later (torch gives new threads the last count set anywhere)."""
    import threading

    view, _, _, stats = store
    before = torch.get_num_threads()
    loader = BatchLoader(view, 8, input_size=C, stats=stats, augment=AugmentConfig(), device="cpu", seed=0,
                         shuffle=True, drop_last=True, workers=2)
    for _ in loader.epoch(0):
        assert torch.get_num_threads() == before
    seen = []
    later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert seen == [before]


def test_golden_epoch_order():
    """The shuffled order, recorded once (at 92cf2cc, before the input path was refactored): a change
    here changes every training run's batches, so it must be on purpose."""
    assert epoch_order(50, 3, 0, True)[:12].tolist() == [27, 6, 49, 30, 47, 22, 38, 20, 46, 42, 35, 23]
    assert epoch_order(5, 3, 0, False).tolist() == [0, 1, 2, 3, 4]


def test_an_index_selection_reads_exactly_those_rows(store):
    view, images, labels, _ = store
    loader = make(store, 3, augment=None, mean="none", shuffle=False, drop_last=False,
                  indices=np.array([7, 3, 41, 0]))
    batches = list(loader.epoch(0))
    assert len(loader) == 2 and [len(y) for _, y in batches] == [3, 1]
    x = torch.cat([b[0] for b in batches])
    assert traced(x) == [7, 3, 41, 0]  # red = the stored image's own index
    assert torch.cat([b[1] for b in batches]).tolist() == labels[[7, 3, 41, 0]].tolist()


def test_each_training_row_is_a_random_crop_or_mirror_of_its_own_image(store):
    """Independently of augment's functions: with lighting and mean subtraction off, every row
    of a training batch is a numpy crop of the stored image it came from (traced by its red
    channel), at some offset in [0, S - C]^2, mirrored or not; and the offsets are not all the centre."""
    _, images, labels, _ = store
    loader = make(store, 8, seed=11, augment=AugmentConfig(pca_lighting=False, mean="none"), stats=None)
    found = set()
    for x, y in loader.epoch(2):
        for row, label in zip(x.numpy(), y.tolist()):
            (i,) = set(row[0].round().astype(int).ravel().tolist())  # red = the image's index
            assert labels[i] == label
            matches = [(t, l, f) for t in range(S - C + 1) for l in range(S - C + 1) for f in (False, True)
                       if np.array_equal(row, (lambda p: p[:, :, ::-1] if f else p)(
                           images[i, t:t + C, l:l + C].transpose(2, 0, 1).astype(np.float32)))]
            assert matches, f"row of image {i} is no crop of it"
            found.add(matches[0][:2])
    assert len(found) > 1 and found != {((S - C) // 2, (S - C) // 2)}
