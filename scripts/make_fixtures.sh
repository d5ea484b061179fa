#!/usr/bin/env bash
# Regenerate the tiny test fixtures under tests/fixtures/ (deterministic:
# running it twice gives byte-identical files).
#
#   tests/fixtures/tiny-gemma3-bf16/          random bf16 Gemma 3 checkpoint (seed 0)
#   tests/fixtures/tiny-gemma3-q4/            the same weights, 4-bit affine, group 64
#   tests/fixtures/tiny-gemma3-{bf16,q4}.ref.json   mlx-lm reference outputs (CPU)
#   tests/fixtures/tiny-llama-bf16/           random bf16 Llama checkpoint (seed 0)
#   tests/fixtures/tiny-llama-q4/             the same weights, 4-bit affine, group 32
#   tests/fixtures/tiny-llama-{bf16,q4}.ref.json    mlx-lm reference outputs (CPU)
#
# Needs python3 with mlx, mlx-lm, tokenizers, transformers (see the scripts).
# Usage: scripts/make_fixtures.sh [--help] [gemma3] [llama]   (default: both)
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=tests/fixtures
export PYTHONHASHSEED=0

families=("$@")
[[ ${#families[@]} -eq 0 ]] && families=(gemma3 llama)

mkdir -p "$OUT"
for family in "${families[@]}"; do
  case "$family" in
    gemma3) script=scripts/make_tiny_gemma3.py; q4=(--quantize 4 --group-size 64) ;;
    # SmolLM2's GGUF is Q4_1, which maps to MLX affine 4-bit with group 32.
    llama) script=scripts/make_tiny_llama.py; q4=(--quantize 4 --group-size 32) ;;
    *) echo "unknown model family: $family (expected gemma3 or llama)" >&2; exit 2 ;;
  esac
  for variant in bf16 q4; do
    dir="$OUT/tiny-$family-$variant"
    rm -rf "$dir"
    quant=()
    [[ "$variant" == q4 ]] && quant=("${q4[@]}")
    "$PY" "$script" --out "$dir" --seed 0 "${quant[@]}"
    "$PY" scripts/mlxlm_reference.py --model "$dir" --out "$OUT/tiny-$family-$variant.ref.json" \
      --prompt-len 5 40 100 --gen 64 --chunk 7 --seed 1234 --device cpu
  done
  du -sh "$OUT"/tiny-"$family"-*
done
