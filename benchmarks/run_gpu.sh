#!/usr/bin/env bash
# The GPU checks in one script, sized for a lent GPU's short time (about 5 minutes on an H200):
# the CUDA-only tests (deterministic training, device augmentation and JPEG decoding, evaluation),
# then the input pipeline's ceiling, the training loop end to end against the bare step (paper
# net, batch 128; fp32, and bf16 + channels_last), ten-crop evaluation, and the step's time
# under each speed switch (bench_gpu_step.py), all on the GPU.
#
# Usage: bash benchmarks/run_gpu.sh [results folder]   (default benchmarks/results/gpu)
# Needs torch, torchvision, numpy, pandas, scipy, PyYAML, Pillow, tqdm and pytest (a stock PyTorch
# image has them all); not DVC. Every step runs even if one before it failed; the exit status
# says whether all passed. Results: <folder>/*.json, the log <folder>/gpu.log.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
log="$out/gpu.log"
: >"$log"
status=0
step() {
  echo "=== $*" | tee -a "$log"
  timeout 300 "$@" 2>&1 | tee -a "$log" || status=1
}
step nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())"
# Most wanted first, in case the machine's time runs out: the prepared GPU benchmark (decode, the
# bare step's forms, the loop end to end from a JPEG store; about 4 minutes), then the older rows.
step python3 benchmarks/bench_gpu.py --out "$out/bench_gpu.json"
step python3 benchmarks/bench_train.py --device cuda --width 1 --batch-size 128 --steps 30 --amp bf16 --channels-last \
  --out "$out/bench_train_bf16.json"
step python3 benchmarks/bench_input.py --device cuda --images 2048 --repeat 3 --out "$out/bench_input.json"
step python3 benchmarks/bench_train.py --device cuda --width 1 --batch-size 128 --steps 30 --out "$out/bench_train_fp32.json"
step python3 -m pytest -q -p no:cacheprovider -m gpu tests
step python3 benchmarks/bench_eval.py --device cuda --images 512 --batch-size 128 --out "$out/bench_eval.json"
step python3 benchmarks/bench_gpu_step.py --out "$out/bench_gpu_step.json"  # where the step's time goes
echo "exit status $status; results in $out" | tee -a "$log"
exit $status
