"""modeenvoy-tokens: ids and counts of files and stdin, checked against tiktoken."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import binary, data_dir, require_module

CACHE = data_dir() / "tiktoken-cache"
os.environ["TIKTOKEN_CACHE_DIR"] = str(CACHE)


def _env() -> dict:
    return {**os.environ, "MODEENVOY_TOKENIZER_DIR": str(data_dir() / "tokenizers")}


def _tool() -> Path:
    tool = binary("examples/tokens/modeenvoy-tokens")
    if not (data_dir() / "tokenizers" / "o200k_base.tiktoken").exists():
        pytest.skip("tokenizer data missing; run scripts/setup.sh")
    return tool


TEXT = "Hello, world! Привет 漢字 😀\n\nit's <|endoftext|> done  \n"


def test_ids_of_stdin_and_files_match_tiktoken(tmp_path):
    tiktoken = require_module("tiktoken")
    tool = _tool()
    for name in ["cl100k_base", "o200k_base", "r50k_base"]:
        ref = tiktoken.get_encoding(name)
        out = subprocess.run([tool, "--encoding", name], input=TEXT.encode(), env=_env(),
                             capture_output=True, check=True).stdout.decode()
        assert [int(x) for x in out.split()] == ref.encode(TEXT, disallowed_special=())
        f = tmp_path / "t.txt"
        f.write_text(TEXT, encoding="utf-8")
        out = subprocess.run([tool, "-e", name, "--allow-special", f], env=_env(),
                             capture_output=True, check=True).stdout.decode()
        assert [int(x) for x in out.split()] == ref.encode(TEXT, allowed_special="all")


def test_counts_per_file_and_total(tmp_path):
    tool = _tool()
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("hello world", encoding="utf-8")
    b.write_text("hello", encoding="utf-8")
    out = subprocess.run([tool, "--model", "gpt-4o", "--count", a, b], env=_env(),
                         capture_output=True, check=True, text=True).stdout
    assert out.splitlines() == [f"2 {a}", f"1 {b}", "3 total"]


def test_usage_and_data_errors(tmp_path):
    tool = _tool()
    bad = subprocess.run([tool, "--encoding", "nope"], env=_env(), capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown encoding" in bad.stderr
    none = subprocess.run([tool], env=_env(), capture_output=True, text=True)
    assert none.returncode == 2
    missing = subprocess.run([tool, "-e", "cl100k_base", tmp_path / "missing.txt"], env=_env(),
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "missing.txt" in missing.stderr
    env = {**_env(), "MODEENVOY_TOKENIZER_DIR": str(tmp_path),
           "TIKTOKEN_CACHE_DIR": str(tmp_path)}
    nodata = subprocess.run([tool, "-e", "cl100k_base"], input="x", env=env,
                            capture_output=True, text=True)
    assert nodata.returncode == 1 and "no rank file" in nodata.stderr
