"""Fixtures for the semkv_client tests: fresh stubs, and a real semkvd.

The daemon: $SEMKVD_BIN, else <repo>/target/debug/semkvd, else `semkvd` on PATH,
started on a free port with the tiny test model (<repo>/tests/fixtures/tiny-gemma3-bf16,
or $SEMKV_TEST_MODEL) and a temporary data dir. Without a daemon binary the daemon
tests are skipped, or fail when SEMKV_REQUIRE_MODELS=1 (as in CI).
"""

from __future__ import annotations

import importlib.util
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

PKG_DIR = Path(__file__).resolve().parents[1]  # clients/python
REPO = PKG_DIR.parents[1]

if str(PKG_DIR) not in sys.path:
    sys.path.insert(0, str(PKG_DIR))


def _load_codegen():
    spec = importlib.util.spec_from_file_location("semkv_codegen", PKG_DIR / "codegen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


codegen = _load_codegen()
PROTO_ROOT = codegen.find_proto_root()
# In a source checkout, (re)generate the stubs from the proto before anything imports
# them, so the tests always run against the current API.
if PROTO_ROOT is not None and not codegen.is_current(PROTO_ROOT):
    codegen.generate(PROTO_ROOT)

from semkv_client import Client  # noqa: E402

REQUIRE = os.environ.get("SEMKV_REQUIRE_MODELS") == "1"


def _missing(what: str) -> None:
    if REQUIRE:
        pytest.fail(f"{what} (SEMKV_REQUIRE_MODELS=1)", pytrace=False)
    pytest.skip(what)


def find_semkvd() -> str | None:
    if os.environ.get("SEMKVD_BIN"):
        return os.environ["SEMKVD_BIN"]
    for profile in ("debug", "release"):
        path = REPO / "target" / profile / "semkvd"
        if path.is_file():
            return str(path)
    return shutil.which("semkvd")


@dataclass
class Daemon:
    addr: str
    process: subprocess.Popen
    data_dir: Path
    log: Path


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    binary = find_semkvd()
    if binary is None or not Path(binary).exists():
        _missing(
            f"no semkvd binary (set SEMKVD_BIN or run `cargo build --bin semkvd`); looked at "
            f"{binary or REPO / 'target/debug/semkvd'}"
        )
    model = os.environ.get("SEMKV_TEST_MODEL") or str(REPO / "tests/fixtures/tiny-gemma3-bf16")
    if not Path(model).exists():
        _missing(f"no test model at {model}")
    root = tmp_path_factory.mktemp("semkvd")
    data_dir, log = root / "data", root / "semkvd.log"
    # The daemon reads SEMKV_* settings from the environment: keep the caller's out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMKV_")}
    env["RUST_LOG"] = env.get("SEMKVD_TEST_LOG", "warn")
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [binary, "--model", model, "--device", "cpu", "--listen", "127.0.0.1:0",
             "--data-dir", str(data_dir), "--log-format", "text"],
            stdout=subprocess.PIPE,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    lines: queue.Queue[str] = queue.Queue()

    def read_stdout() -> None:  # keeps draining so the daemon never blocks on stdout
        assert process.stdout is not None
        for raw in process.stdout:
            lines.put(raw.decode(errors="replace").rstrip("\n"))
        lines.put("")

    threading.Thread(target=read_stdout, daemon=True).start()
    addr = None
    try:
        while addr is None:
            line = lines.get(timeout=120)
            if line.startswith("semkvd listening on "):
                addr = line.removeprefix("semkvd listening on ").strip()
            elif line == "" and process.poll() is not None:
                break
    except queue.Empty:
        pass
    if addr is None:
        process.kill()
        process.wait()
        pytest.fail(
            f"semkvd did not start (exit {process.returncode}); log:\n{log.read_text()[-4000:]}",
            pytrace=False,
        )
    try:
        yield Daemon(addr, process, data_dir, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    with Client(daemon.addr, timeout=120) as c:
        c.wait_ready(30)
        yield c
