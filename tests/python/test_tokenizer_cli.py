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


def test_several_inputs_label_their_lines_and_a_bad_one_loses_no_other(tmp_path):
    tiktoken = require_module("tiktoken")
    ref = tiktoken.get_encoding("cl100k_base")
    tool = _tool()
    a, b, empty = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "empty.txt"
    a.write_text("hello world", encoding="utf-8")
    b.write_text(TEXT, encoding="utf-8")
    empty.write_bytes(b"")
    missing = tmp_path / "missing.txt"
    ids = subprocess.run([tool, "-e", "cl100k_base", a, missing, empty, b], env=_env(),
                         capture_output=True, text=True)
    assert ids.returncode == 1
    assert f"{missing}: No such file or directory" in ids.stderr
    lines = ids.stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [str(a), str(empty), str(b)]
    assert [int(x) for x in lines[2].split(": ", 1)[1].split()] == ref.encode_ordinary(TEXT)
    counts = subprocess.run([tool, "-e", "cl100k_base", "-c", a, missing, b], env=_env(),
                            capture_output=True, text=True)
    n = len(ref.encode_ordinary(TEXT))
    assert counts.returncode == 1
    assert counts.stdout.splitlines() == [f"2 {a}", f"{n} {b}", f"{n + 2} total"]
    # A directory is reported as one, and "--" ends the options.
    d = subprocess.run([tool, "-e", "cl100k_base", tmp_path], env=_env(), capture_output=True,
                       text=True)
    assert d.returncode == 1 and "Is a directory" in d.stderr
    dash = tmp_path / "-x"
    dash.write_text("hi", encoding="utf-8")
    out = subprocess.run([tool, "-e", "cl100k_base", "-c", "--", "-x"], cwd=tmp_path,
                         env=_env(), capture_output=True, text=True, check=True).stdout
    assert out == "1\n"


def test_output_that_cannot_be_written_is_an_error():
    tool = _tool()
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    big = "word " * 200_000  # far more than stdio buffers
    with open("/dev/full", "wb") as full:
        r = subprocess.run([tool, "-e", "cl100k_base"], input=big, stdout=full,
                           stderr=subprocess.PIPE, env=_env(), text=True)
    assert r.returncode == 1 and "write error" in r.stderr


def test_help_documents_special_tokens_and_exit_status():
    tool = _tool()
    out = subprocess.run([tool, "--help"], capture_output=True, text=True, check=True).stdout
    assert "--allow-special" in out and "encode_ordinary" in out
    assert "Exit status" in out and "MODEENVOY_TOKENIZER_DIR" in out
