#!/usr/bin/env bash
# Regenerates semkv_client's gRPC stubs from ../../proto/semkv/v1/semkv.proto with
# grpcio-tools (python -m grpc_tools.protoc). `pip install .` does this by itself
# (setup.py); run this when using the package from the source tree (PYTHONPATH).
# The stubs are build outputs (git-ignored). --force regenerates even if current.
set -euo pipefail
cd "$(dirname "$0")"
exec "${PYTHON:-python3}" codegen.py "$@"
