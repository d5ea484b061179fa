"""Build hook: generates the gRPC stubs from the semkv proto before packaging.

The proto is the repository's ../../proto (or, in an sdist, the copy under proto/).
Everything else is in pyproject.toml. The runtime requirements are the versions the
generated code checks for at import: grpcio >= the grpcio-tools that generated it,
protobuf >= its bundled protoc's.
"""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent

_spec = importlib.util.spec_from_file_location("semkv_codegen", HERE / "codegen.py")
codegen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(codegen)

proto_root = codegen.find_proto_root(HERE)
if proto_root is not None:
    codegen.generate(proto_root)
elif not (codegen.OUT_DIR / "semkv_pb2.py").is_file():
    raise SystemExit(
        "semkv-client: no semkv/v1/semkv.proto in ../../proto or ./proto to generate the "
        "stubs from; build from a semkv checkout (clients/python) or its sdist"
    )
grpc_version, protobuf_version = codegen.generated_versions()


class SdistWithProto(sdist):
    """Puts the proto (and codegen.py) into the sdist so it can be built alone."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        if proto_root is not None:
            dest = Path(base_dir) / "proto" / codegen.PROTO_REL
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(proto_root / codegen.PROTO_REL, dest)
        shutil.copyfile(HERE / "codegen.py", Path(base_dir) / "codegen.py")


setup(
    install_requires=[f"grpcio>={grpc_version}", f"protobuf>={protobuf_version}"],
    cmdclass={"sdist": SdistWithProto},
)
