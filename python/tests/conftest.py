"""Shared fixtures: the repository's paths and the `ferrite` CLI the module is compared with."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
DEMO_MODEL = FIXTURES / "dscnn_fashion" / "model.onnx"


def data(name):
    return np.load(FIXTURES / "data" / f"{name}.npy")


@pytest.fixture(scope="session")
def cli():
    """Runs the `ferrite` CLI: `$FERRITE_BIN`, else the one cargo builds (`cargo build --bin ferrite`)."""
    binary = os.environ.get("FERRITE_BIN")
    if not binary:
        subprocess.run(
            ["cargo", "build", "-q", "-p", "ferrite-quantizer", "--bin", "ferrite"],
            cwd=ROOT,
            check=True,
        )
        binary = str(ROOT / "target" / "debug" / "ferrite")

    def run(*args, ok=True):
        p = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
        assert (p.returncode == 0) == ok, f"ferrite {args}: exit {p.returncode}\n{p.stderr}"
        return p

    return run


def cli_error(p):
    """The message of a failed CLI run, as the module raises it (`error: ` left out)."""
    lines = [l for l in p.stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, p.stderr
    return lines[0][len("error: "):]
