#!/usr/bin/env python3
"""Builds the tokenizer's parity and benchmark corpora (deterministic, offline, not committed).

    python3 scripts/make_tokenizer_corpus.py [--out .data/tokenizer-corpus] [--seed 20240501]

Writes into --out:
  parity.jsonl   one {"cat": category, "text": str} per line: the texts the parity tests
                 encode with modeenvoy and tiktoken (prose, code, scripts, emoji, combining
                 marks, whitespace runs, contractions, long unsplit runs, every Unicode
                 category, code points whose class changed in Unicode 16.0/17.0, special
                 tokens, random mixtures).
  bench.txt      the benchmark corpus: English documentation prose, Python source and
                 multilingual text (no text repeated), about 2 MB.
  bench_prose.txt, bench_code.txt, bench_multilingual.txt   its parts.
  long_letters.txt, long_digits.txt, long_cjk.txt   100 kB without a space (linearity).

Sources: the interpreter's own standard library (source files and pydoc_data/topics.py, the
language reference as text), the translated messages of the machine's gettext catalogs
(/usr/share/locale/<lang>/LC_MESSAGES/*.mo, for the multilingual part), gpt-tokenizer's
TestPlans.txt samples when .data/gpt-tokenizer exists, tests/tokenizer/unicode_version_probe.txt,
and generated text. Nothing is downloaded. The bench files depend on the Python version and
the installed Debian packages; docs/benchmarks.md records their sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import sysconfig
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>",
    "<|startoftext|>", "<|return|>", "<|constrain|>", "<|channel|>", "<|start|>", "<|end|>",
    "<|message|>", "<|call|>", "<|reserved_200000|>", "<|reserved_201087|>",
]

WHITESPACE = [" ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\u00a0", "\u0085", "\u1680",
              "\u180e", "\u2000", "\u2007", "\u200a", "\u200b", "\u2028", "\u2029", "\u202f",
              "\u205f", "\u3000", "\ufeff", "\x1c", "\x1f"]

CONTRACTION_WORDS = ["I'M", "i'm", "You'Re", "YOU'RE", "it'S", "It's", "DON'T", "don'T",
                     "we'LL", "We'll", "they'VE", "THEY'Ve", "he'D", "she'd", "cat'ſ", "'ſ",
                     "'S", "'s", "'Ll", "'lL", "'RE", "'re", "'ve", "'VE", "'t", "'T", "'m",
                     "'M", "'d", "'D", "''s", "'''", "o'clock", "rock'n'roll", "L'ÉTÉ", "l'été",
                     "ÉCOLE'S", "Straße'S", "ΣΊΣΥΦΟΣ's", "İstanbul'da", "x'\u017f", "A'\u212a"]

EMOJI = ["😀", "👍🏽", "👍🏿", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🇪🇸", "🇯🇵", "#️⃣", "1️⃣", "❤️",
         "🧑🏻‍🤝‍🧑🏿", "👁️‍🗨️", "🫠", "🪿", "🙂‍↔️", "⚡", "©️", "🚀", "🤖"]


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def prose_text() -> str:
    """The Python language reference as plain text (pydoc_data/topics.py)."""
    topics = stdlib_dir() / "pydoc_data" / "topics.py"
    ns: dict = {}
    exec(compile(read(topics), str(topics), "exec"), ns)  # a dict literal of help texts
    return "\n\n".join(ns["topics"][k] for k in sorted(ns["topics"]))


def code_text(limit: int) -> str:
    parts, size = [], 0
    for path in sorted(stdlib_dir().glob("*.py")):
        text = read(path)
        parts.append(text)
        size += len(text.encode())
        if size >= limit:
            break
    return "\n".join(parts)


def test_plans() -> list[tuple[str, str, list[int]]]:
    data = Path(os.environ.get("MODEENVOY_DATA_DIR", REPO / ".data"))
    path = data / "gpt-tokenizer" / "package" / "data" / "TestPlans.txt"
    if not path.exists():
        return []
    out = []
    pat = re.compile(r"EncodingName: (\S+)\nSample: (.*?)\nEncoded: \[(.*?)\]", re.S)
    for m in pat.finditer(read(path)):
        ids = [int(x) for x in m.group(3).split(",") if x.strip()]
        out.append((m.group(1), m.group(2), ids))
    return out


def probe_code_points() -> list[tuple[int, str]]:
    path = REPO / "tests" / "tokenizer" / "unicode_version_probe.txt"
    out = []
    for line in read(path).splitlines():
        if not line or line.startswith("#"):
            continue
        rng, *_rest, which = line.split()
        lo, _, hi = rng.partition("-")
        lo_i = int(lo, 16)
        hi_i = int(hi, 16) if hi else lo_i
        for cp in range(lo_i, hi_i + 1):
            out.append((cp, which))
    return out


def random_script_words(rng: random.Random, ranges: list[tuple[int, int]], n_words: int,
                        marks: list[int] | None = None) -> str:
    words = []
    for _ in range(n_words):
        w = []
        for _ in range(rng.randint(1, 9)):
            lo, hi = rng.choice(ranges)
            w.append(chr(rng.randint(lo, hi)))
            if marks and rng.random() < 0.3:
                w.append(chr(rng.choice(marks)))
        words.append("".join(w))
    seps = [" ", " ", " ", ", ", ". ", "\n", "、", "。", "！", "? ", ": "]
    return "".join(w + rng.choice(seps) for w in words)


CJK = [(0x4E00, 0x9FFF), (0x3040, 0x309F), (0x30A0, 0x30FF), (0xAC00, 0xD7A3)]
CYRILLIC = [(0x0410, 0x044F)]
ARABIC = [(0x0621, 0x064A)]
ARABIC_MARKS = list(range(0x064B, 0x0653))
DEVANAGARI = [(0x0915, 0x0939)]
DEVANAGARI_MARKS = [0x093E, 0x093F, 0x0940, 0x0941, 0x094D, 0x0902, 0x0903]
LATIN_MARKS = list(range(0x0300, 0x0370))


def category_samples(rng: random.Random, per_cat: int) -> dict[str, list[str]]:
    by_cat: dict[str, list[int]] = {}
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        by_cat.setdefault(unicodedata.category(chr(cp)), []).append(cp)
    return {cat: [chr(c) for c in rng.sample(cps, min(per_cat, len(cps)))]
            for cat, cps in sorted(by_cat.items())}


def mixture_pool(cat_chars: dict[str, list[str]]) -> list[str]:
    pool = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    pool += list(" \t\n\r.,;:!?'\"()[]{}/-_+=*&^%$#@~`<>|\\") + [" "] * 12 + ["\n\n", "  "]
    pool += ["'s", "'S", "'ll", "'LL", "'ſ", "ſ", "é", "É", "ǅ", "ʕ", "あ", "漢", "한", "я", "Я",
             "ا", "\u064b", "ß", "ẞ", "İ", "ı", "Ω", "١", "½", "Ⅻ", "ᵃ", "ª", "\u0301", "\u20dd"]
    pool += WHITESPACE + EMOJI + SPECIAL_TOKENS[:5]
    for chars in cat_chars.values():
        pool += chars[:6]
    return pool


def build_parity(rng: random.Random, prose: str, code: str, multi: str) -> list[dict]:
    items: list[dict] = []

    def add(cat: str, text: str) -> None:
        items.append({"cat": cat, "text": text})

    # English prose and code: paragraphs / windows.
    paras = [p for p in prose.split("\n\n") if p.strip()]
    for p in rng.sample(paras, min(400, len(paras))):
        add("prose", p)
    lines = code.splitlines(keepends=True)
    for _ in range(400):
        i = rng.randrange(len(lines))
        add("code", "".join(lines[i:i + rng.randint(1, 60)]))
    mlines = multi.splitlines(keepends=True)
    for _ in range(800):
        i = rng.randrange(len(mlines))
        add("multilingual", "".join(mlines[i:i + rng.randint(1, 8)]))
    # Scripts.
    for _ in range(150):
        add("cjk", random_script_words(rng, CJK, rng.randint(1, 40)))
        add("cyrillic", random_script_words(rng, CYRILLIC, rng.randint(1, 40)))
        add("arabic", random_script_words(rng, ARABIC, rng.randint(1, 40), ARABIC_MARKS))
        add("devanagari", random_script_words(rng, DEVANAGARI, rng.randint(1, 30),
                                              DEVANAGARI_MARKS))
        add("combining", random_script_words(rng, [(0x41, 0x5A), (0x61, 0x7A)],
                                             rng.randint(1, 30), LATIN_MARKS))
    # Emoji with ZWJ, skin tones, flags, keycaps.
    for _ in range(200):
        parts = []
        for _ in range(rng.randint(1, 12)):
            parts.append(rng.choice(EMOJI + [" ", "a", "A", "1", "'s", "\n", "\u200d", "\ufe0f",
                                             "\U0001F3FB", "\U0001F3FF"]))
        add("emoji", "".join(parts))
    # Whitespace runs, including at the very end of the text.
    for _ in range(600):
        parts = []
        for _ in range(rng.randint(1, 10)):
            parts.append(rng.choice(WHITESPACE) * rng.randint(1, 4))
            if rng.random() < 0.6:
                parts.append(rng.choice(["a", "Hello", "1", "123", "!", "'s", "é", "漢", "/", "\u0301",
                                         "<|endoftext|>", "world", "😀", "Ω"]))
        add("whitespace", "".join(parts))
    for tail in ["\n", "\n\n", "\n  ", "  \n", " \n \n", "\r\n", "\t", "   ", "\u3000", "\u0085",
                 "\n\u00a0", " \u2028", "\n\n\n\n"]:
        add("whitespace_end", "text" + tail)
        add("whitespace_end", tail)
        add("whitespace_end", "x = 1" + tail + "y" + tail)
    # Contractions in mixed case.
    for _ in range(300):
        words = [rng.choice(CONTRACTION_WORDS + ["word", "Word", "WORD", " ", "'", "1"])
                 for _ in range(rng.randint(1, 8))]
        add("contractions", rng.choice([" ", "", "\n"]).join(words))
    # Digits.
    for n in [1, 2, 3, 4, 5, 7, 10, 31, 100, 1000, 5000]:
        add("digits", "".join(rng.choice("0123456789") for _ in range(n)))
        add("digits", "x" + "".join(rng.choice("0123456789") for _ in range(n)) + " y")
    add("digits", "١٢٣٤٥٦٧٨٩٠" * 50)
    # Long unsplit inputs (also the linearity benchmarks).
    add("long", long_letters(rng, 100_000))
    add("long", long_digits(rng, 100_000))
    add("long", long_cjk(rng, 100_000))
    add("long", "a" * 20_000)
    add("long", " " * 5_000 + "x")
    add("long", "\n" * 5_000)
    add("long", "!" * 20_000)
    # Every Unicode category (random assigned and unassigned code points), in contexts.
    cat_chars = category_samples(rng, 60)
    for cat, chars in cat_chars.items():
        for _ in range(20):
            s = "".join(rng.choice(chars + ["a", "A", " ", "'s", "1", "'", "\n"])
                        for _ in range(rng.randint(1, 16)))
            add(f"category_{cat}", s)
    # Code points whose class changed between Unicode 15.1, 16.0 and 17.0: contexts that make
    # the letter/number/mark/other distinction visible in the token ids.
    contexts = ["{c}'s", "x{c}'s", " {c}a", "A{c}b", "{c}Ab", "a{c}", "1{c}23", "{c}{c}'S",
                "\u0301{c}", "{c}\u0301AB"]
    for cp, which in probe_code_points():
        c = chr(cp)
        add(f"unicode_{which}", rng.choice(contexts).format(c=c))
    # Special tokens anywhere.
    for tok in SPECIAL_TOKENS:
        add("special", tok)
        add("special", f"hello {tok} world")
        add("special", f"{tok}{tok}\n{tok}  ")
        add("special", f"x<|{tok}|>y" + tok[:-1])
    # Random mixtures of everything above.
    pool = mixture_pool(cat_chars)
    for _ in range(20_000):
        add("mixture", "".join(rng.choice(pool) for _ in range(rng.randint(0, 40))))
    # TestPlans samples.
    for _enc, sample, _ids in test_plans():
        add("testplans", sample)
    return items


def long_letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))


def long_digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def long_cjk(rng: random.Random, n_bytes: int) -> str:
    return "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(n_bytes // 3))


LANGUAGES = ["de", "fr", "es", "pt", "pl", "tr", "vi", "ru", "uk", "el", "he", "ar", "hi", "th",
             "ja", "zh_CN", "zh_TW", "ko"]


def catalog_strings(lang: str) -> list[str]:
    """Translated messages from the machine's gettext catalogs (/usr/share/locale)."""
    import gettext
    out = []
    base = Path("/usr/share/locale") / lang / "LC_MESSAGES"
    for mo in sorted(base.glob("*.mo")) if base.is_dir() else []:
        try:
            with open(mo, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog  # noqa: SLF001 - read-only use
        except Exception:  # noqa: BLE001 - skip unreadable catalogs
            continue
        out.extend(v for k, v in catalog.items() if k and isinstance(v, str) and v.strip())
    return out


def multilingual_text(per_language: int = 40_000) -> str:
    """Natural text in many scripts, no string repeated (a repeated text would flatter any
    tokenizer that memoizes): the distinct translated messages of the Debian gettext catalogs
    for LANGUAGES, up to `per_language` bytes each, plus each TestPlans sample once."""
    parts: list[str] = []
    for lang in LANGUAGES:
        seen, size = set(), 0
        for msg in catalog_strings(lang):
            if msg in seen:
                continue
            seen.add(msg)
            parts.append(msg)
            size += len(msg.encode()) + 1
            if size >= per_language:
                break
    parts.extend(sorted({s for _e, s, _i in test_plans()}))
    return "\n".join(parts) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(os.environ.get("MODEENVOY_DATA_DIR", REPO / ".data"))
                                         / "tokenizer-corpus"))
    ap.add_argument("--seed", type=int, default=20240501)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)

    prose = prose_text()
    code = code_text(1_000_000)
    multi = multilingual_text()
    (out / "bench_prose.txt").write_text(prose, encoding="utf-8")
    (out / "bench_code.txt").write_text(code, encoding="utf-8")
    (out / "bench_multilingual.txt").write_text(multi, encoding="utf-8")
    (out / "bench.txt").write_text(prose + "\n" + code + "\n" + multi, encoding="utf-8")
    (out / "long_letters.txt").write_text(long_letters(rng, 100_000), encoding="utf-8")
    (out / "long_digits.txt").write_text(long_digits(rng, 100_000), encoding="utf-8")
    (out / "long_cjk.txt").write_text(long_cjk(rng, 100_000), encoding="utf-8")

    items = build_parity(rng, prose, code, multi)
    with open(out / "parity.jsonl", "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    print(f"wrote {len(items)} parity texts and the bench corpus to {out}: {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
