#!/usr/bin/env python3
"""modeenvoy vs tiktoken, single-threaded, same process, same corpus.

    python3 scripts/make_tokenizer_corpus.py            # once: writes .data/tokenizer-corpus
    PYTHONPATH=build/python python3 bench/tokenizer_vs_tiktoken.py [--repeat 7] [--json out.json]

For cl100k_base and o200k_base it times, on each corpus file:
  encode   tiktoken enc.encode_ordinary(text)      vs modeenvoy enc.encode_ordinary(text)
  count    len(tiktoken enc.encode_ordinary(text)) vs modeenvoy enc.count_ordinary(text)
and prints MB/s (medians of --repeat runs of thread CPU time, interleaved so machine noise
hits all alike) and the ratio. If quicktok (PyPI quicktok-v1, a C++ backtracking tokenizer
that reports 4-11x tiktoken; `scripts/setup.sh --bench` installs it) is importable, it runs
in the same loop as a third column: its ids are checked against tiktoken's first, and
count uses its count(). Both sides are called from Python and return a Python list (encode), so list
building is included on both sides; modeenvoy's count never builds one (tiktoken has no
count). The long unsplit inputs (100 kB of letters, digits, CJK) show the merge's scaling.
tiktoken never touches the network: TIKTOKEN_CACHE_DIR points at .data/tiktoken-cache.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MODEENVOY_DATA_DIR", REPO / ".data"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(DATA / "tiktoken-cache"))
os.environ.setdefault("MODEENVOY_TOKENIZER_DIR", str(DATA / "tokenizers"))
for cand in (REPO / "build" / "python", REPO / "build-tok" / "python"):
    if cand.is_dir() and str(cand) not in sys.path:
        sys.path.append(str(cand))

import tiktoken  # noqa: E402

import modeenvoy  # noqa: E402

try:
    import quicktok  # noqa: E402  (optional peer)
except ImportError:
    quicktok = None

FILES = ["bench.txt", "bench_prose.txt", "bench_code.txt", "bench_multilingual.txt",
         "long_letters.txt", "long_digits.txt", "long_cjk.txt"]


SAME_THREAD = False  # --same-thread


def timed(fn, text: str) -> float:
    """CPU seconds of one fn(text) call on a fresh thread (or, with --same-thread, on this one).

    Thread CPU time, not wall time: the machines this runs on are shared, and other
    processes' load would otherwise land on whichever library happened to be running. A
    fresh thread per call gives every library cold per-thread state (modeenvoy keeps a small
    per-thread memo of merge results; this keeps one run from warming the next).
    --same-thread instead shows warm per-thread state: every call runs on the main thread
    after a first untimed one, so modeenvoy's memos then hold the very text being encoded
    (which flatters it).
    """
    if SAME_THREAD:
        t0 = time.thread_time()
        fn(text)
        return time.thread_time() - t0
    out = []

    def run() -> None:
        t0 = time.thread_time()
        fn(text)
        out.append(time.thread_time() - t0)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(DATA / "tokenizer-corpus"))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--encodings", default="cl100k_base,o200k_base")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--same-thread", action="store_true",
                    help="time every call on the main thread after an untimed first call "
                         "(warm per-thread state) instead of on a fresh thread")
    ap.add_argument("--files", default=",".join(FILES), help="corpus files to time")
    ap.add_argument("--long", action="store_true",
                    help="instead: one encode_ordinary call on 10/100/400 kB without a space "
                         "(letters, CJK, digits), ms of thread CPU time, to show the scaling")
    args = ap.parse_args()
    global SAME_THREAD
    SAME_THREAD = args.same_thread
    if args.long:
        return long_pieces(args.repeat)
    corpus = Path(args.corpus)
    if not (corpus / "bench.txt").exists():
        print(f"no corpus in {corpus}; run scripts/make_tokenizer_corpus.py", file=sys.stderr)
        return 2

    rows = []
    peer = f", quicktok {quicktok.__version__}" if quicktok else " (quicktok not installed)"
    where = "on the main thread, warm" if SAME_THREAD else "each on a fresh thread"
    print(f"tiktoken {tiktoken.__version__} vs modeenvoy (module {modeenvoy.__file__}){peer}; "
          f"median of {args.repeat} runs of thread CPU time, {where}, single thread")
    header = (f"{'encoding':<12} {'file':<24} {'op':<7} {'MB':>6} {'tiktoken MB/s':>14} "
              f"{'modeenvoy MB/s':>15} {'ratio':>7}")
    if quicktok:
        header += f" {'quicktok MB/s':>14} {'ratio':>7}"
    print(header)
    for name in args.encodings.split(","):
        ref = tiktoken.get_encoding(name)
        ours = modeenvoy.get_encoding(name)
        qt = quicktok.get_encoding(name) if quicktok else None
        for file in args.files.split(","):
            text = (corpus / file).read_text(encoding="utf-8")
            mb = len(text.encode()) / 1e6
            expected = ref.encode_ordinary(text)
            assert ours.encode_ordinary(text) == expected, f"{name}/{file}: ids differ"
            assert ours.count_ordinary(text) == len(expected)
            peer_ok = qt is not None and list(qt.encode_ordinary(text)) == expected and \
                qt.count(text) == len(expected)
            if qt is not None and not peer_ok:
                print(f"{name}/{file}: quicktok's ids differ from tiktoken's; not timed")
            ops = {
                "encode": (ref.encode_ordinary, ours.encode_ordinary,
                           qt.encode_ordinary if peer_ok else None),
                "count": (lambda t: len(ref.encode_ordinary(t)), ours.count_ordinary,
                          qt.count if peer_ok else None),
            }
            for op, (ref_fn, our_fn, peer_fn) in ops.items():
                ref_t, our_t, peer_t = [], [], []
                for _ in range(args.repeat):  # interleaved
                    ref_t.append(timed(ref_fn, text))
                    our_t.append(timed(our_fn, text))
                    if peer_fn is not None:
                        peer_t.append(timed(peer_fn, text))
                ref_mbs = mb / statistics.median(ref_t)
                our_mbs = mb / statistics.median(our_t)
                row = {"encoding": name, "file": file, "op": op, "mb": round(mb, 3),
                       "tiktoken_mb_s": round(ref_mbs, 2), "modeenvoy_mb_s": round(our_mbs, 2),
                       "ratio": round(our_mbs / ref_mbs, 2),
                       "tiktoken_ms": round(statistics.median(ref_t) * 1e3, 2),
                       "modeenvoy_ms": round(statistics.median(our_t) * 1e3, 2)}
                line = (f"{name:<12} {file:<24} {op:<7} {mb:6.2f} {ref_mbs:14.1f} {our_mbs:15.1f} "
                        f"{row['ratio']:6.1f}x")
                if peer_t:
                    peer_mbs = mb / statistics.median(peer_t)
                    row.update(quicktok_mb_s=round(peer_mbs, 2),
                               quicktok_ratio=round(peer_mbs / ref_mbs, 2))
                    line += f" {peer_mbs:14.1f} {row['quicktok_ratio']:6.1f}x"
                rows.append(row)
                print(line, flush=True)
        print(f"{name}: loaded encoding holds {ours.memory_usage() / 2**20:.1f} MiB "
              f"(modeenvoy Encoding.memory_usage())")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def long_pieces(repeat: int) -> int:
    """tiktoken's merge is quadratic in the length of a piece; ours is linear."""
    import random
    rng = random.Random(9)
    kinds = {
        "letters": lambda n: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n)),
        "CJK": lambda n: "".join(chr(0x4E00 + rng.randrange(0x5200)) for _ in range(n // 3)),
        "digits": lambda n: "".join(rng.choice("0123456789") for _ in range(n)),
    }
    print(f"one encode_ordinary call, median of {repeat} runs of thread CPU time, ms")
    print(f"{'input':<16} {'encoding':<12} {'tiktoken':>10} {'modeenvoy':>10}")
    for kind, make in kinds.items():
        # cl100k/o200k cut digits into groups of three; r50k keeps a digit run as one piece.
        encodings = ["r50k_base"] if kind == "digits" else ["cl100k_base", "o200k_base"]
        for name in encodings:
            ref = tiktoken.get_encoding(name)
            ours = modeenvoy.get_encoding(name)
            for kb in (10, 100, 400):
                text = make(kb * 1000)
                assert ours.encode_ordinary(text) == ref.encode_ordinary(text)
                ref_t, our_t = [], []
                for _ in range(repeat):
                    ref_t.append(timed(ref.encode_ordinary, text))
                    our_t.append(timed(ours.encode_ordinary, text))
                print(f"{f'{kb} kB {kind}':<16} {name:<12} {statistics.median(ref_t) * 1e3:10.1f} "
                      f"{statistics.median(our_t) * 1e3:10.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
