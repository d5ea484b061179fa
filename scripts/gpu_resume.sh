#!/usr/bin/env bash
# Runs benches/resume_ttft.rs on the GPU machine against a Gemma-3-shaped random 4-bit
# checkpoint (ids-level tokenizer from the tiny fixture; text is only filler here).
#   scripts/gpu_resume.sh RESUME_BENCH_BINARY SEMKVD_BINARY OUT_DIR [shape]
set -euo pipefail
BENCH=$1; export SEMKVD_BIN=$2; OUT=$3; SHAPE=${4:-12b}
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/gpu.txt
dir=/tmp/gemma3-$SHAPE-q4
[ -f $dir/config.json ] || python3 scripts/make_random_gemma3.py --shape $SHAPE --bits 4 --out $dir
cp tests/fixtures/tiny-gemma3-bf16/tokenizer.json $dir/
$BENCH --model $dir --device gpu --sizes ${SIZES:-1024,2048,4096} --gen ${GEN:-64} --json $OUT/resume-$SHAPE.json 2>&1 | tee $OUT/resume.txt
