"""The committed p2pstack/pb modules must be exactly what proto/*.proto generates.

Regenerates with the pinned dev tools (grpcio-tools, mypy-protobuf) into a temporary
directory, the same command a developer runs from the repository root:

    python -m grpc_tools.protoc -Iproto --python_out=pb --mypy_out=pb proto/*.proto
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PB_DIR = ROOT / "p2pstack" / "pb"

pytest.importorskip("grpc_tools", reason="needs the dev extra (grpcio-tools)")
pytest.importorskip("mypy_protobuf", reason="needs the dev extra (mypy-protobuf)")


def _generated_names(directory: Path) -> set[str]:
    return {p.name for p in directory.glob("*_pb2.py*") if p.suffix in (".py", ".pyi")}


def test_pb_modules_match_proto_sources(tmp_path: Path) -> None:
    protos = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "proto").glob("*.proto"))
    assert protos, "no proto/*.proto found"
    # protoc finds the mypy plugin (protoc-gen-mypy) on PATH; it sits beside this Python.
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            f"--python_out={tmp_path}",
            f"--mypy_out={tmp_path}",
            *protos,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"protoc failed:\n{result.stderr}"

    generated = _generated_names(tmp_path)
    committed = _generated_names(PB_DIR)
    assert generated, "protoc wrote nothing"
    problems = [f"{name}: generated but not committed" for name in sorted(generated - committed)]
    problems += [
        f"{name}: committed but no proto makes it" for name in sorted(committed - generated)
    ]
    problems += [
        f"{name}: differs from what protoc generates"
        for name in sorted(generated & committed)
        if (tmp_path / name).read_bytes() != (PB_DIR / name).read_bytes()
    ]
    assert not problems, "p2pstack/pb is stale; regenerate it:\n" + "\n".join(problems)
