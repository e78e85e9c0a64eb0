#!/usr/bin/env bash
# rsvg bench model on the paper config of every model family, one after the other on the same machine, and a table
# of what each measured (scripts/bench_families_summary.py): inference at batch 1 and 8, the training step at
# batch 2, peak memory, parameters and FLOPs. Random weights throughout (--random-text: a bert-base-shaped text
# encoder where the config names a BERT folder that is not here; fixed random word vectors for ZSGNet), so no
# pretrained file is needed.
#
# Usage: scripts/bench_families.sh [OUT] [EXTRA rsvg bench model OPTIONS...]     (OUT: bench_families_out)
#   e.g. scripts/bench_families.sh out --device cuda
#   CONFIGS="mgvlf_dior zsgnet_r50 zsgnet_vgg16" scripts/bench_families.sh out    (only these configs)
# Run it on a quiet machine: the rows are compared with each other.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench_families_out}
shift || true
RSVG=${RSVG:-rsvg}
mkdir -p "$OUT"
ALL="mgvlf_dior ablation_a_transvg zsgnet_r50 zsgnet_vgg16 faoa_bert faoa_lstm resc_bert lbyl_bert lbyl_lstm
    transvg_r50 vltvg_r50 vltvg_r101"
read -r -a CONFIGS <<<"$(echo ${CONFIGS:-$ALL})"
for name in "${CONFIGS[@]}"; do
    echo "== $name"
    "$RSVG" bench model -c "configs/$name.yaml" --random-text --json "$OUT/$name.json" "$@" >"$OUT/$name.log" 2>&1 \
        || echo "   failed: see $OUT/$name.log"
    tail -n 2 "$OUT/$name.log"
done
"${PYTHON:-python3}" scripts/bench_families_summary.py "$OUT" "${CONFIGS[@]}" | tee "$OUT/summary.md"
