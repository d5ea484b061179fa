#!/usr/bin/env bash
# Runs the whole semantic-isolation dataset on the GPU machine with the real default
# model: semkvd (CPU-built) on Device(gpu) + the semkv CLI, results and report in OUT.
#   scripts/gpu_experiment.sh SEMKVD SEMKV GGUF OUT [max_tokens]
set -euo pipefail
SEMKVD=$1; SEMKV=$2; GGUF=$3; OUT=$4; MAX=${5:-96}
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/gpu.txt
echo "$(sha256sum "$GGUF")" | tee -a $OUT/gpu.txt
$SEMKVD --model "$GGUF" --device gpu --listen 127.0.0.1:50077 --data-dir /tmp/exp-data > $OUT/semkvd.log 2>&1 &
for _ in $(seq 60); do $SEMKV --addr 127.0.0.1:50077 status >/dev/null 2>&1 && break; sleep 1; done
$SEMKV --addr 127.0.0.1:50077 status | tee -a $OUT/gpu.txt
start=$(date +%s)
# EXPERIMENT_TIMEOUT (s) bounds the run inside a device call; --resume continues it.
timeout ${EXPERIMENT_TIMEOUT:-0} $SEMKV --addr 127.0.0.1:50077 experiment run data/semantic-isolation --resume --out $OUT/results.jsonl \
  --max-tokens $MAX --seed 42 2>&1 | tail -5 || true
echo "experiment wall time: $(( $(date +%s) - start )) s" | tee -a $OUT/gpu.txt
$SEMKV experiment report $OUT/results.jsonl --out /tmp/report | tail -30
cp /tmp/report/summary.md /tmp/report/results.csv /tmp/report/metrics.svg $OUT/
