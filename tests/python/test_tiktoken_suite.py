"""tiktoken's own test suite (tests/ of the PyPI sdist tiktoken 0.14.0) run against modeenvoy.

The sdist is never committed: scripts/setup.sh downloads it to .data/tiktoken-sdist/ (or
$MODEENVOY_TIKTOKEN_SDIST names it), and this module downloads it with pip when it is
missing. It checks the file's SHA-256, unpacks tests/ into a temporary directory and runs
them with pytest in a subprocess whose sys.path starts with tests/python/tiktoken_suite/shim,
where `tiktoken` is modeenvoy (both linked into a directory named site-packages, see below).
Hypothesis runs with a fixed seed, so a run is reproducible. Every test of the suite must pass: a missing sdist (after
set-up), a failure, an error or a skip fails this test, and the counts are printed.
Cost: one subprocess, about 25 s on the 2-core CI machine (the suite's own loops over every
token id of r50k_base and cl100k_base dominate; hypothesis runs its default 100 examples).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("MODEENVOY_DATA_DIR", REPO / ".data"))
SDIST_NAME = "tiktoken-0.14.0.tar.gz"
# PyPI's published SHA-256 of tiktoken-0.14.0.tar.gz.
SDIST_SHA256 = "231dec90efcdccf1b565a1416107736f1e09b1a08fe736ef9d6363e626d03874"
SHIM = Path(__file__).resolve().parent / "tiktoken_suite" / "shim"
# The suite's test functions (parametrized ones count once per encoding): 33 in 0.14.0.
EXPECTED_TESTS = 33


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sdist() -> Path:
    explicit = os.environ.get("MODEENVOY_TIKTOKEN_SDIST")
    path = Path(explicit) if explicit else DATA / "tiktoken-sdist" / SDIST_NAME
    if not path.exists() and not explicit:
        path.parent.mkdir(parents=True, exist_ok=True)
        # --no-binary for tiktoken only: its build requirements may come as wheels (pip
        # prepares the sdist's metadata), which takes seconds instead of minutes.
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "tiktoken",
             "--disable-pip-version-check", "-d", str(path.parent), "tiktoken==0.14.0"],
            capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not path.exists():
            pytest.fail(f"cannot fetch the tiktoken 0.14.0 sdist into {path.parent} (run "
                        f"scripts/setup.sh, or set MODEENVOY_TIKTOKEN_SDIST):\n{proc.stderr[-2000:]}")
    if not path.exists():
        pytest.fail(f"MODEENVOY_TIKTOKEN_SDIST={path}: no such file")
    actual = _sha256(path)
    if actual != SDIST_SHA256:
        pytest.fail(f"{path}: sha256 {actual}, expected {SDIST_SHA256} (not the PyPI sdist)")
    return path


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiktoken-suite")
    with tarfile.open(_sdist()) as tar:
        members = [m for m in tar.getmembers()
                   if m.name.startswith("tiktoken-0.14.0/tests/") and m.isfile()]
        tar.extractall(out, members=members)
    return out / "tiktoken-0.14.0"


def test_tiktoken_suite_passes(suite_dir: Path, capsys) -> None:
    import modeenvoy

    # Both packages as if installed: hypothesis draws string constants from "local" (not
    # installed) modules, and drew "<|endoftext|>" from modeenvoy's sources into texts that
    # tiktoken's tests encode with every special token disallowed, which tiktoken, installed
    # in site-packages, never meets.
    site = suite_dir / "site" / "site-packages"
    site.mkdir(parents=True)
    (site / "modeenvoy").symlink_to(Path(modeenvoy.__file__).resolve().parent)
    (site / "tiktoken").symlink_to(SHIM / "tiktoken")
    paths = [str(site)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    env.setdefault("MODEENVOY_TOKENIZER_DIR", str(DATA / "tokenizers"))
    # Offline: the real tiktoken is never imported, but make sure nothing downloads.
    env["TIKTOKEN_CACHE_DIR"] = str(DATA / "tiktoken-cache")
    probe = subprocess.run([sys.executable, "-c", "import tiktoken, modeenvoy; "
                            "assert tiktoken.Encoding is modeenvoy.Encoding"],
                           env=env, capture_output=True, text=True)
    assert probe.returncode == 0, f"the shim does not resolve to modeenvoy:\n{probe.stderr}"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
         "--hypothesis-seed=0", "tests"],
        cwd=suite_dir, env=env, capture_output=True, text=True, timeout=900)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    with capsys.disabled():
        print(f"\n[tiktoken suite] {summary}", flush=True)
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary)}
    assert proc.returncode == 0, f"tiktoken's suite failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    assert counts.get("passed") == EXPECTED_TESTS and set(counts) == {"passed"}, summary
