#!/usr/bin/env bash
# Runs on the GPU machine (see docs/benchmarks.md): installs the carried MLX CUDA wheel,
# builds Gemma-3-shaped random 4-bit checkpoints with mlx-lm's classes, and runs the
# CPU-built engine benchmark binary on Device(gpu) against mlx-lm on the same files.
#   scripts/gpu_bench.sh BENCH_BINARY OUT_DIR [shapes...]
# Environment: PROMPTS (default "1024 4096"), BATCHES (e.g. 1,2,4,8,16: adds the
# batched-decode table), GEN (default 128).
set -euo pipefail
BIN=$1; OUT=$2; shift 2
SHAPES=${*:-270m 4b 12b}
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/gpu.txt
python3 -c "import mlx.core as mx; print('mlx', mx.__version__, mx.default_device())" | tee -a $OUT/gpu.txt
for shape in $SHAPES; do
  dir=/tmp/gemma3-$shape-q4
  [ -f $dir/config.json ] || python3 scripts/make_random_gemma3.py --shape $shape --bits 4 --out $dir
  cp tests/fixtures/tiny-gemma3-bf16/tokenizer.json $dir/   # ids only; decode is not timed
  for plen in ${PROMPTS:-1024 4096}; do
    $BIN --model $dir --device gpu --weights native --prompt-len $plen --gen ${GEN:-128} --repeats 3 \
      ${BATCHES:+--batches $BATCHES} --json $OUT/bench-$shape-$plen.json 2>&1 | tee -a $OUT/bench.txt
  done
done
