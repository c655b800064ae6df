"""The trained nets' folder layout, models/: one folder per seed, written by stage train.

    models/seed<N>/model.pt           the weights and the model params (alexnet.model.net.save_trained)
    models/seed<N>/info.json          params, seed, versions, device, epochs, final metrics
    models/seed<N>/architecture.json  the layer table the report prints (it reads no model)

Torch-free, like alexnet/data/store.py for data/prepared/: the report reads info.json and
architecture.json without importing torch. `tag` also names a net's probability files in
data/eval/ (alexnet.evaluation.predictions.probs_path).
"""

from __future__ import annotations

from pathlib import Path

from alexnet.pipeline.layout import seed_name

MODEL = "model.pt"
INFO = "info.json"
ARCHITECTURE = "architecture.json"


def net_dir(models_dir: str | Path, seed: int) -> Path:
    return Path(models_dir) / seed_name(seed)
