"""The generated protobuf/gRPC modules, with a helpful error when they are missing."""

from __future__ import annotations

try:
    from semkv_client._gen.semkv.v1 import semkv_pb2 as pb
    from semkv_client._gen.semkv.v1 import semkv_pb2_grpc as pb_grpc
except ImportError as e:  # pragma: no cover - depends on the install
    if e.name is not None and not e.name.startswith("semkv_client._gen"):
        raise
    raise ImportError(
        "semkv_client's gRPC stubs are not generated. Install the package "
        "(pip install clients/python) or, in a source checkout, run "
        "clients/python/generate.sh (needs grpcio-tools)."
    ) from e

__all__ = ["pb", "pb_grpc"]
