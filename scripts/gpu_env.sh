# Sourced on the GPU machine by scripts/gpu_*.sh: installs the carried MLX CUDA wheel
# (split in two parts under .whl/p1 and .whl/p2), mlx and mlx-lm into /tmp/site, the
# carried OpenBLAS, and points the loader at mlx-cuda's libmlx.so and the NVIDIA
# libraries of the machine's PyTorch install.
W=.whl
cat $W/p1/cuda.part.* $W/p2/cuda.part.* > /tmp/mlx_cuda_13-0.32.2-py3-none-manylinux_2_35_x86_64.whl
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
  /tmp/mlx_cuda_13-0.32.2-py3-none-manylinux_2_35_x86_64.whl $W/p2/mlx-0.32.2-*.whl $W/p2/mlx_lm-*.whl
export PYTHONPATH=/tmp/site
mkdir -p /tmp/blas && tar xJf $W/p1/openblas.tar.xz -C /tmp/blas
NV=$(ls -d /opt/torch/.venv/lib/python3.12/site-packages/nvidia/*/lib | tr '\n' ':')
export LD_LIBRARY_PATH=/tmp/site/mlx/lib:${NV}/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:/tmp/blas
