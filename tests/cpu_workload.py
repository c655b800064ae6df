"""A small deterministic workload through every numerical path of the tiny pipeline, printed as
one SHA-256 per part (JSON). tests/test_cross_cpu.py runs it natively and under QEMU's user-mode
emulator with CPU models of both vendors: bit identity (numerics.bit_identity) means every
digest is the same on every CPU.

    python tests/cpu_workload.py                       # natively
    qemu-x86_64 -cpu EPYC-Milan-v1 "$(which python)" tests/cpu_workload.py

Parts: the stats stage's sums and eigen-decomposition; the training input (augmentation with
PCA lighting); three steps of the paper net (params.yaml's model at width 1/16, its LRN and
grouped convolutions) with the paper's SGD; the evaluation's ten-crop forward pass; the
retrieval auto-encoder (a few Adam steps) and its codes; the t-SNE map. Sizes are small because
emulation is slow (importing torch alone takes tens of seconds).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alexnet.config import NumericsConfig, load_params  # noqa: E402  (torch-free)
from alexnet.runtime.pinning import pinned_env  # noqa: E402

NUMERICS = NumericsConfig(bit_identity=True, threads=2)
os.environ.update(pinned_env(NUMERICS))  # before numpy or torch loads, as alexnet.cli does for a stage

import hashlib  # noqa: E402
import json  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from alexnet.analysis.analyze import tsne_embed  # noqa: E402
from alexnet.analysis.retrieval import AutoencoderCoder  # noqa: E402
from alexnet.data.input.augment import InputStats, apply_params, draw_params  # noqa: E402
from alexnet.data.stats import accumulate, finalize  # noqa: E402
from alexnet.evaluation.evaluate import predict  # noqa: E402
from alexnet.model.net import build_model  # noqa: E402
from alexnet.runtime import backend as runtime  # noqa: E402
from alexnet.training.optim import build_optimizer  # noqa: E402


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def main() -> None:
    runtime.configure(NUMERICS, deterministic=True)
    params = load_params(ROOT / "params.yaml")
    rng = np.random.default_rng(0)
    side = 64  # prepared images, smaller than the pipeline's 256 (emulation is slow)
    images = rng.integers(0, 256, size=(6, side, side, 3), dtype=np.uint8)
    out = {"cpu_capability": torch.backends.cpu.get_cpu_capability()}

    stats = finalize(accumulate(images))
    out["stats"] = digest(stats.mean_image, stats.cov, stats.eigvals, stats.eigvecs)

    cfg = replace(params.model, width=0.0625, input_size=224)
    # 256x256 for the net's 224 crops, by reflection (cheaper to make than to prepare)
    pad = np.pad(images, ((0, 0), (96, 96), (96, 96), (0, 0)), mode="reflect")
    mean_image = np.pad(stats.mean_image, ((96, 96), (96, 96), (0, 0)), mode="reflect")
    input_stats = InputStats.from_stats(replace(stats, mean_image=mean_image), "cpu", params.augment.pca_magnitude)
    gen = torch.Generator().manual_seed(0)
    aug = draw_params(len(pad), 256, 224, params.augment, gen)
    x = apply_params(pad, aug, 224, input_stats)
    out["augment"] = digest(x)

    torch.manual_seed(0)
    net = build_model(cfg, 10, generator=torch.Generator().manual_seed(0))
    opt = build_optimizer(net, params.train)
    y = torch.arange(len(pad)) % 10
    net.train()
    for _ in range(3):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    out["train"] = digest(*[p for p in net.state_dict().values()])

    net.eval()
    with torch.no_grad():
        probs = predict(net, pad, 224, mean_image.astype(np.float32))
    out["evaluate"] = digest(probs["center"], probs["ten_crop"])

    features = rng.standard_normal((96, 48)).astype(np.float32) @ rng.standard_normal((48, 48)).astype(np.float32)
    coder = AutoencoderCoder.fit(features, bits=16, seed=0, hidden=32, epochs=3, batch_size=16)
    out["autoencoder"] = digest(coder.encode(features), *[p for p in coder.model.state_dict().values()])

    embedded, _ = tsne_embed(features[:40], perplexity=10.0, seed=0)
    out["tsne"] = digest(embedded)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
