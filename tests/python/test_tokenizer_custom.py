"""Custom encodings (tiktoken's Encoding(name=, pat_str=, mergeable_ranks=, special_tokens=)),
custom regexes through PCRE2, _encode_bytes, and the zero-copy result forms.

Expected ids come from PyPI tiktoken 0.14 run on the same arguments in this process (offline:
TIKTOKEN_CACHE_DIR points at the verified rank files set-up copies to .data/tiktoken-cache),
or are written out where they are small. Skips when tiktoken, the cache files or the built
module are missing. Cost: about 2 s (building ranks dicts for two encodings).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from conftest import require_module

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("MODEENVOY_DATA_DIR", REPO / ".data"))
os.environ["TIKTOKEN_CACHE_DIR"] = str(DATA / "tiktoken-cache")
os.environ.setdefault("MODEENVOY_TOKENIZER_DIR", str(DATA / "tokenizers"))

tiktoken = require_module("tiktoken", reason="PyPI tiktoken is not installed")
try:
    import modeenvoy
except ImportError as err:  # pragma: no cover - depends on the build
    if "MODEENVOY_BUILD_DIR" in os.environ:
        raise
    pytest.skip(f"modeenvoy module not built/importable: {err}", allow_module_level=True)
if not (DATA / "tiktoken-cache" / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").exists():
    pytest.skip("tiktoken cache files missing; run scripts/setup.sh", allow_module_level=True)

TEXTS = [
    "hello world",
    "Hello, world! It's 2026; they've 12345 items.\n\n  indented\tcode()  \n",
    "Grüße aus Köln — 東京タワー, Привет мир! I'M HERE'S\r\n x   ",
    "def f(x):\n    return x**2  # trailing   ",
    "   ",
    "",
]


@pytest.fixture(scope="module")
def cl100k():
    return modeenvoy.get_encoding("cl100k_base")


@pytest.fixture(scope="module")
def cl100k_ranks(cl100k):
    return cl100k._mergeable_ranks


@pytest.fixture(scope="module")
def reference_cl100k():
    return tiktoken.get_encoding("cl100k_base")


def test_private_attributes_equal_tiktokens(cl100k, cl100k_ranks, reference_cl100k):
    assert cl100k._pat_str == reference_cl100k._pat_str
    assert cl100k_ranks == reference_cl100k._mergeable_ranks
    o200k = modeenvoy.get_encoding("o200k_base")
    assert o200k._pat_str == tiktoken.get_encoding("o200k_base")._pat_str


def test_custom_special_tokens_on_a_builtin_pattern(cl100k, cl100k_ranks):
    enc = modeenvoy.Encoding(name="cl100k_im", pat_str=cl100k._pat_str,
                             mergeable_ranks=cl100k_ranks,
                             special_tokens={**cl100k._special_tokens, "<|im_start|>": 100264})
    assert enc.encode("<|im_start|>hi", allowed_special="all") == [100264, 6151]
    with pytest.raises(ValueError):
        enc.encode("<|im_start|>")
    for text in TEXTS:
        assert enc.encode_ordinary(text) == cl100k.encode_ordinary(text)
    back = pickle.loads(pickle.dumps(enc))
    assert back.encode("<|im_start|>x", allowed_special="all") == enc.encode(
        "<|im_start|>x", allowed_special="all")


@pytest.mark.parametrize("pat_str", [
    r"[a-z]+|\d",                                  # leaves text between matches
    r"\p{L}+|\p{N}{1,2}|\s+(?!\S)|\s+|[^\s\p{L}\p{N}]+",
    r"(?i:'s|'t)|\w+|.",                           # case-insensitive, \w by Unicode
    "(?:" + r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"
    r"[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s" + ")",  # cl100k's, not character-equal
    "(?:" + "|".join([  # o200k_base's, not character-equal
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"\p{N}{1,3}", r" ?[^\s\p{L}\p{N}]+[\r\n/]*", r"\s*[\r\n]+", r"\s+(?!\S)", r"\s+"]) + ")",
])
def test_custom_regex_matches_tiktoken(pat_str, cl100k_ranks):
    specials = {"<|endoftext|>": 100257}
    ours = modeenvoy.Encoding(name="custom", pat_str=pat_str, mergeable_ranks=cl100k_ranks,
                              special_tokens=specials)
    ref = tiktoken.Encoding(name="custom", pat_str=pat_str, mergeable_ranks=cl100k_ranks,
                            special_tokens=specials)
    assert ours._pat_str == pat_str
    for text in TEXTS:
        assert ours.encode_ordinary(text) == ref.encode_ordinary(text), text
        assert ours.encode(text + "<|endoftext|>x", allowed_special="all") == ref.encode(
            text + "<|endoftext|>x", allowed_special="all"), text


def test_bad_custom_encodings_are_errors(cl100k_ranks):
    with pytest.raises(ValueError, match="does not compile at offset"):
        modeenvoy.Encoding(name="x", pat_str="(ab", mergeable_ranks=cl100k_ranks,
                           special_tokens={})
    with pytest.raises(ValueError, match="which is a mergeable rank"):
        modeenvoy.Encoding(name="x", pat_str=r"\w+", mergeable_ranks=cl100k_ranks,
                           special_tokens={"<|x|>": 5})
    with pytest.raises(TypeError, match="mergeable_ranks: keys must be bytes"):
        modeenvoy.Encoding(name="x", pat_str=r"\w+", mergeable_ranks={"a": 0},
                           special_tokens={})
    with pytest.raises(ValueError, match="single byte"):
        modeenvoy.Encoding(name="x", pat_str=r"\w+", mergeable_ranks={b"a": 0},
                           special_tokens={})


@pytest.mark.parametrize("data", [
    b" \xec\x8b\xa4\xed", b"a  \n\xe2\x82", b"\x80\x80\x80", b"hello \xff world\xf0\x9f",
    b"caf\xc3", b"   \xe4\xb8", b"",
])
def test_encode_bytes_matches_tiktoken(cl100k, reference_cl100k, data):
    assert cl100k._encode_bytes(data) == reference_cl100k._encode_bytes(data)
    assert cl100k.decode_bytes(cl100k._encode_bytes(data)) == data


def test_zero_copy_forms(cl100k):
    np = require_module("numpy", reason="numpy is not installed")
    text = TEXTS[2] * 10
    ids = cl100k.encode_ordinary(text)
    arr = cl100k.encode_ordinary_to_array(text)
    assert len(arr) == len(ids) and arr.tolist() == ids
    view = memoryview(arr)
    assert view.format == "I" and view.itemsize == 4 and view.readonly
    assert view.tolist() == ids
    as_np = cl100k.encode_ordinary_to_numpy(text)
    assert as_np.dtype == np.uint32 and as_np.tolist() == ids and not as_np.flags.writeable
    # numpy reads the array's memory in place, and keeps the array alive.
    assert np.shares_memory(np.frombuffer(arr, dtype=np.uint32), np.asarray(view))
    del arr, view
    assert as_np.tolist() == ids
    special = cl100k.encode_to_numpy("a<|endoftext|>", allowed_special="all")
    assert special.tolist() == [64, 100257]
