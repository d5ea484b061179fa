#!/usr/bin/env bash
# Regenerate the tiny Gemma 3 test fixtures under tests/fixtures/ (deterministic:
# running it twice gives byte-identical files).
#
#   tests/fixtures/tiny-gemma3-bf16/          random bf16 checkpoint (seed 0)
#   tests/fixtures/tiny-gemma3-q4/            the same weights, 4-bit affine, group 64
#   tests/fixtures/tiny-gemma3-{bf16,q4}.ref.json   mlx-lm reference outputs (CPU)
#
# Needs python3 with mlx, mlx-lm, tokenizers, transformers (see the scripts).
# Usage: scripts/make_fixtures.sh [--help]
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=tests/fixtures
export PYTHONHASHSEED=0

mkdir -p "$OUT"
for variant in bf16 q4; do
  dir="$OUT/tiny-gemma3-$variant"
  rm -rf "$dir"
  quant=()
  [[ "$variant" == q4 ]] && quant=(--quantize 4 --group-size 64)
  "$PY" scripts/make_tiny_gemma3.py --out "$dir" --seed 0 "${quant[@]}"
  "$PY" scripts/mlxlm_reference.py --model "$dir" --out "$OUT/tiny-gemma3-$variant.ref.json" \
    --prompt-len 5 40 100 --gen 64 --chunk 7 --seed 1234 --device cpu
done
du -sh "$OUT"/tiny-gemma3-* 
