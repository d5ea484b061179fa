#!/usr/bin/env bash
# Installs (or checks) everything semkv needs to build and test on a fresh machine:
# system packages (cmake, clang/libclang, OpenBLAS, pip), the MLX 0.32.2 wheel that
# mlx-sys links, and Python mlx-lm (the numerical/speed reference used by tests and
# benchmarks). Safe to run repeatedly. Debian/Ubuntu (apt) and macOS (Homebrew).
set -euo pipefail

MLX_VERSION=0.32.2
PYTHON=${SEMKV_PYTHON:-python3}

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; exit 1; fi
}

case "$(uname -s)" in
  Linux)
    packages=(cmake clang libclang-dev libopenblas-dev libopenblas0-pthread python3-pip pkg-config)
    missing=()
    for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
      command -v apt-get >/dev/null || { echo "install these packages: ${missing[*]}" >&2; exit 1; }
      say "installing ${missing[*]}"
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    wheel=mlx-cpu
    ;;
  Darwin)
    command -v cmake >/dev/null || { command -v brew >/dev/null && brew install cmake; }
    wheel=mlx-metal
    ;;
  *) echo "unsupported OS $(uname -s)" >&2; exit 1 ;;
esac

command -v cargo >/dev/null || { echo "install Rust first: https://rustup.rs" >&2; exit 1; }

have_mlx=$($PYTHON -c "import mlx.core as m, mlx_lm; print(m.__version__)" 2>/dev/null || true)
if [ "$have_mlx" != "$MLX_VERSION" ]; then
  say "installing mlx==$MLX_VERSION ($wheel) and mlx-lm into $($PYTHON -c 'import sys; print(sys.prefix)')"
  pip_flags=(--quiet --disable-pip-version-check)
  $PYTHON -m pip install "${pip_flags[@]}" "mlx==$MLX_VERSION" "$wheel==$MLX_VERSION" "mlx-lm==$MLX_VERSION" 2>/dev/null \
    || $PYTHON -m pip install "${pip_flags[@]}" --break-system-packages "mlx==$MLX_VERSION" "$wheel==$MLX_VERSION" "mlx-lm==$MLX_VERSION"
fi
# The Python client's tests (clients/python) need grpcio-tools and pytest.
if ! $PYTHON -c "import grpc_tools, pytest" 2>/dev/null; then
  say "installing grpcio, grpcio-tools, protobuf, pytest (Python client tests)"
  py_pkgs=("grpcio>=1.62" "grpcio-tools>=1.62" "protobuf>=4.25" "pytest>=7")
  $PYTHON -m pip install --quiet --disable-pip-version-check "${py_pkgs[@]}" 2>/dev/null \
    || $PYTHON -m pip install --quiet --disable-pip-version-check --break-system-packages "${py_pkgs[@]}"
fi
say "ok: $(cmake --version | head -1), MLX $($PYTHON -c 'import mlx.core as m; print(m.__version__)'), $(cargo --version)"
