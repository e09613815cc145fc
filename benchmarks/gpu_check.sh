#!/usr/bin/env bash
# GPU check (at most 8 minutes on one H100/H200): run from the repository root, with pri3d installed
# (`pip install -e .`). Prints figures; asserts nothing beyond "it ran". Writes under ${OUT:-gpu-check}/.
#
# 1. Pre-training benchmark, the paper's setting: ResNet-50 UNet, 240x320, batch 64 pairs (128 images),
#    1024 matches, bf16 autocast, channels_last; eager, then torch.compile of the 2D backbone. Prints
#    images/s, peak GPU memory, the step's FLOPs and the MFU (against the dense bf16 peak).
# 2. A larger cell of the synthetic experiment (configs/synthetic-cpu.yaml at the paper's resolution
#    and model: ResNet-50, 240x320, batch 32; one seed; scratch vs MoCoV2 Stage I -> Pri3D view), with
#    a wall-clock cap so the whole script stays within its budget.
set -uo pipefail
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python}
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device visible to torch; nothing to do" >&2
  exit 2
fi
$PY -c "import torch; print('device:', torch.cuda.get_device_name(), '| torch', torch.__version__)"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true

rc=0
echo "== 1a. pre-training step, eager (view, view+geo)"
timeout 150 $PY benchmarks/bench_pretrain.py --config paper --arch resnet50 --resolution 240 320 --batch 64 \
  --matches 1024 --amp bf16 --channels-last --modes view view+geo --workers 8 --iters 5 --flops \
  2>&1 | tee "$OUT/bench_eager.txt" || rc=1
echo "== 1b. pre-training step, torch.compile (view)"
timeout 180 $PY benchmarks/bench_pretrain.py --config paper --arch resnet50 --resolution 240 320 --batch 64 \
  --matches 1024 --amp bf16 --channels-last --modes view --workers 8 --iters 5 --flops --compile \
  2>&1 | tee "$OUT/bench_compile.txt" || rc=1

echo "== 2. a larger experiment cell (capped at 2.5 minutes of pre-training per method)"
timeout 240 pri3d experiment --config configs/synthetic-cpu.yaml --out "$OUT/experiment" jobs=1 \
  methods=[scratch,view] seeds=[0] \
  'data.synth={scenes: 6, frames_per_scene: 16, seed: 0, resolution: [240, 320], workers: 8}' \
  'data.pretrain_synth={scenes: 12, frames_per_scene: 16, seed: 1, resolution: [240, 320], workers: 8}' \
  'pretrain.overrides=["data.resolution=[240,320]","model.arch=resnet50","train.batch_size=32","train.steps=300","train.max_minutes=1.2","train.threads=0","train.eval_every=100","data.crop_scale=[0.35,1.0]","data.workers=8"]' \
  'finetune.overrides=["data.resolution=[240,320]","model.arch=resnet50","train.epochs=20","train.eval_every=5"]' \
  2>&1 | tail -40 | tee "$OUT/experiment.txt" || rc=1
exit $rc
