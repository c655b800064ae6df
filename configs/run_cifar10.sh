#!/usr/bin/env bash
# The CIFAR-10 claims on the real CIFAR-10 (docs/cifar10.md): Figure 1 in the modern protocol
# (configs/cifar10-modern.yaml), then Figure 1 in the authors' protocol and the LRN claim
# (configs/cifar10.yaml). Every net checkpoints each epoch into checkpoints/cifar10/ (keyed by
# its settings), so rerunning this after a kill continues where it stopped, with the same numbers.
# Needs the images at configs/cifar10.yaml's cifar.path (data/CIFAR-10-images by default).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f data/cifar10/manifest.json ]; then
  python -m stages.cifar_download --params configs/cifar10.yaml --out data/cifar10
fi
for name in cifar10-modern cifar10; do
  # The stage replaces its --out folder whole: it writes to the git-ignored out/, and the outputs
  # are copied beside the tracked README (a deleted README would make the record's revision +dirty).
  out=out/$name dst=reports/real/$name
  python -m stages.cifar --params "configs/$name.yaml" --data data/cifar10 --out "$out" \
    --metrics "$out/metrics.json" --record "$out/record.json" --checkpoints checkpoints/cifar10
  mkdir -p "$dst"
  find "$dst" -maxdepth 1 -type f ! -name README.md -delete
  cp "$out"/* "$dst"/
done
