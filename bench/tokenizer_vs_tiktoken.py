#!/usr/bin/env python3
"""modeenvoy vs tiktoken, single-threaded, same process, same corpus.

    python3 scripts/make_tokenizer_corpus.py            # once: writes .data/tokenizer-corpus
    PYTHONPATH=build/python python3 bench/tokenizer_vs_tiktoken.py [--repeat 7] [--json out.json]

For cl100k_base and o200k_base it times, on each corpus file:
  encode   tiktoken enc.encode_ordinary(text)      vs modeenvoy enc.encode_ordinary(text)
  count    len(tiktoken enc.encode_ordinary(text)) vs modeenvoy enc.count_ordinary(text)
and prints MB/s (medians of --repeat runs of thread CPU time, interleaved so machine noise
hits all alike) and the ratio. Exact peers that are importable run in the same loop as
further columns: quicktok (PyPI quicktok-v1, C++ backtracking; `scripts/setup.sh --bench`
installs it), gigatoken (PyPI gigatoken, Rust, its tiktoken-compatible mode), riptoken and
runtoken (PyPI, Rust). Each peer's ids are checked against tiktoken's first; a peer that
differs is reported as inexact with the first differing piece and not timed. count uses a
peer's count() where it has one, else len(encode_ordinary). All sides are called from Python and return a Python list (encode), so list
building is included on both sides; modeenvoy's count never builds one (tiktoken has no
count). The long unsplit inputs (100 kB of letters, digits, CJK) show the merge's scaling.
tiktoken never touches the network: TIKTOKEN_CACHE_DIR points at .data/tiktoken-cache.

--mode picks what a timed call sees (default both, as two blocks of rows):
  cold  every timed call is the first call of a fresh Python process that has loaded the
        encoding and encoded the one-character text "0" (so lazy set-up on a first call is
        not counted), nothing else: no library's caches (per thread or process-wide, of
        pieces or of whole texts) hold anything of the text.
  warm  every timed call runs on the main thread on the text the previous call encoded.
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

import importlib  # noqa: E402


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _wanted(module: str) -> bool:
    """A cold worker imports only the library it times (process start-up stays short)."""
    if "--cold-worker" not in sys.argv:
        return True
    return sys.argv[sys.argv.index("--cold-worker") + 1] == module


quicktok = _optional("quicktok") if _wanted("quicktok") else None
gigatoken = _optional("gigatoken") if _wanted("gigatoken") else None
riptoken = _optional("riptoken") if _wanted("riptoken") else None
runtoken = _optional("runtoken") if _wanted("runtoken") else None


class _Peer:
    """An exact tokenizer called like tiktoken's Encoding."""

    def __init__(self, enc, count=None):
        self.encode_ordinary = enc.encode_ordinary
        self.count = count or (lambda t: len(enc.encode_ordinary(t)))


def load_peers(name: str, only: str | None = None) -> dict:
    peers = {}
    if only is not None:
        return {only: load_peers(name)[only]} if only == "quicktok" else \
            {k: v for k, v in _load_rest(name, only).items()}
    if quicktok is not None:
        enc = quicktok.get_encoding(name)
        peers["quicktok"] = _Peer(enc, enc.count)
    peers.update(_load_rest(name, None))
    return peers


def _load_rest(name: str, only: str | None) -> dict:
    peers = {}
    if gigatoken is not None and only in (None, "gigatoken"):
        path = DATA / "tokenizers" / f"{name}.tiktoken"
        peers["gigatoken"] = _Peer(gigatoken.Tokenizer.from_tiktoken(str(path)).as_tiktoken())
    if riptoken is not None and only in (None, "riptoken"):
        peers["riptoken"] = _Peer(riptoken.get_encoding(name))
    if runtoken is not None and only in (None, "runtoken"):
        peers["runtoken"] = _Peer(runtoken.get_encoding(name))
    return peers


def first_difference(ref, got: list, expected: list) -> str:
    """The text of the first piece where two id lists part, for the report."""
    i = 0
    while i < min(len(got), len(expected)) and got[i] == expected[i]:
        i += 1
    lo = max(0, i - 3)
    return (f"at token {i}: tiktoken {expected[i:i + 3]} = "
            f"{ref.decode(expected[lo:i + 3])!r}, peer {got[i:i + 3]}")

FILES = ["bench.txt", "bench_prose.txt", "bench_code.txt", "bench_multilingual.txt",
         "long_letters.txt", "long_digits.txt", "long_cjk.txt"]


SAME_THREAD = False  # --same-thread / --mode warm


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


def make_fn(lib: str, name: str, op: str):
    """The callable a cold worker times: lib's encode_ordinary or count on encoding name."""
    if lib == "tiktoken":
        enc = tiktoken.get_encoding(name)
        return enc.encode_ordinary if op == "encode" else (lambda t: len(enc.encode_ordinary(t)))
    if lib == "modeenvoy":
        enc = modeenvoy.get_encoding(name)
        return enc.encode_ordinary if op == "encode" else enc.count_ordinary
    peer = load_peers(name, only=lib)[lib]
    return peer.encode_ordinary if op == "encode" else peer.count


def cold_worker(lib: str, name: str, op: str, path: str) -> int:
    fn = make_fn(lib, name, op)
    text = Path(path).read_text(encoding="utf-8")
    fn("0")  # lazy set-up (thread pools, tables built on first use) is not part of a call
    t0 = time.thread_time()
    fn(text)
    print(time.thread_time() - t0)
    return 0


def cold_time(lib: str, name: str, op: str, path: Path) -> float:
    import subprocess
    out = subprocess.run([sys.executable, __file__, "--cold-worker", lib, name, op, str(path)],
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


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
    ap.add_argument("--mode", choices=["cold", "warm", "both"], default="both",
                    help="cold: fresh thread, never-seen text per call; warm: the same text "
                         "again on the main thread (see above)")
    ap.add_argument("--files", default=",".join(FILES), help="corpus files to time")
    ap.add_argument("--long", action="store_true",
                    help="instead: one encode_ordinary call on 10/100/400 kB without a space "
                         "(letters, CJK, digits), ms of thread CPU time, to show the scaling")
    ap.add_argument("--cold-worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cold_worker:
        return cold_worker(*args.cold_worker)
    if args.long:
        return long_pieces(args.repeat)
    corpus = Path(args.corpus)
    if not (corpus / "bench.txt").exists():
        print(f"no corpus in {corpus}; run scripts/make_tokenizer_corpus.py", file=sys.stderr)
        return 2

    rows = []
    modes = ["cold", "warm"] if args.mode == "both" else [args.mode]
    if args.same_thread:
        modes = ["warm"]
    for mode in modes:
        run_mode(mode, args, corpus, rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def run_mode(mode: str, args, corpus: Path, rows: list) -> None:
    global SAME_THREAD
    SAME_THREAD = mode == "warm"
    names = [n for n in ("quicktok", "gigatoken", "riptoken", "runtoken") if globals()[n]]
    missing = [n for n in ("quicktok", "gigatoken", "riptoken", "runtoken") if not globals()[n]]
    where = ("warm: the same text again on the main thread" if SAME_THREAD else
             "cold: the first call of a fresh process")
    print(f"tiktoken {tiktoken.__version__} vs modeenvoy (module {modeenvoy.__file__}); peers: "
          f"{', '.join(names) or 'none'}{' (not installed: ' + ', '.join(missing) + ')' if missing else ''}; "
          f"median of {args.repeat} runs of thread CPU time, {where}, single thread")
    header = (f"{'encoding':<12} {'file':<24} {'op':<7} {'MB':>6} {'tiktoken MB/s':>14} "
              f"{'modeenvoy MB/s':>15} {'ratio':>7}")
    for n in names:
        header += f" {n + ' MB/s':>15} {'ratio':>7}"
    print(header)
    for name in args.encodings.split(","):
        ref = tiktoken.get_encoding(name)
        ours = modeenvoy.get_encoding(name)
        peers = load_peers(name)
        for file in args.files.split(","):
            text = (corpus / file).read_text(encoding="utf-8")
            mb = len(text.encode()) / 1e6
            expected = ref.encode_ordinary(text)
            assert ours.encode_ordinary(text) == expected, f"{name}/{file}: ids differ"
            assert ours.count_ordinary(text) == len(expected)
            exact = {}
            for pname, peer in peers.items():
                try:
                    got = list(peer.encode_ordinary(text))
                except Exception as e:  # noqa: BLE001  (a peer that refuses the text)
                    print(f"{name}/{file}: {pname} raised {type(e).__name__}: {e}; not timed")
                    continue
                if got != expected:
                    print(f"{name}/{file}: {pname} is inexact, "
                          f"{first_difference(ref, got, expected)}; not timed")
                elif peer.count(text) != len(expected):
                    print(f"{name}/{file}: {pname}'s count differs; not timed")
                else:
                    exact[pname] = peer
            ops = {
                "encode": (ref.encode_ordinary, ours.encode_ordinary,
                           {n: p.encode_ordinary for n, p in exact.items()}),
                "count": (lambda t: len(ref.encode_ordinary(t)), ours.count_ordinary,
                          {n: p.count for n, p in exact.items()}),
            }
            for op, (ref_fn, our_fn, peer_fns) in ops.items():
                ref_t, our_t = [], []
                peer_t = {n: [] for n in peer_fns}
                if SAME_THREAD:  # the untimed first call that warms every side
                    for fn in [ref_fn, our_fn, *peer_fns.values()]:
                        fn(text)
                for _ in range(args.repeat):  # interleaved
                    if SAME_THREAD:
                        ref_t.append(timed(ref_fn, text))
                        our_t.append(timed(our_fn, text))
                        for n, fn in peer_fns.items():
                            peer_t[n].append(timed(fn, text))
                    else:
                        path = corpus / file
                        ref_t.append(cold_time("tiktoken", name, op, path))
                        our_t.append(cold_time("modeenvoy", name, op, path))
                        for n in peer_fns:
                            peer_t[n].append(cold_time(n, name, op, path))
                ref_mbs = mb / statistics.median(ref_t)
                our_mbs = mb / statistics.median(our_t)
                row = {"mode": mode, "encoding": name, "file": file, "op": op, "mb": round(mb, 3),
                       "tiktoken_mb_s": round(ref_mbs, 2), "modeenvoy_mb_s": round(our_mbs, 2),
                       "ratio": round(our_mbs / ref_mbs, 2),
                       "tiktoken_ms": round(statistics.median(ref_t) * 1e3, 2),
                       "modeenvoy_ms": round(statistics.median(our_t) * 1e3, 2)}
                line = (f"{name:<12} {file:<24} {op:<7} {mb:6.2f} {ref_mbs:14.1f} {our_mbs:15.1f} "
                        f"{row['ratio']:6.1f}x")
                for n in names:
                    if n in peer_t:
                        peer_mbs = mb / statistics.median(peer_t[n])
                        row[f"{n}_mb_s"] = round(peer_mbs, 2)
                        row[f"{n}_ratio"] = round(peer_mbs / ref_mbs, 2)
                        line += f" {peer_mbs:15.1f} {row[f'{n}_ratio']:6.1f}x"
                    else:
                        line += f" {'-':>15} {'-':>7}"
                rows.append(row)
                print(line, flush=True)
        print(f"{name}: loaded encoding holds {ours.memory_usage() / 2**20:.1f} MiB "
              f"(modeenvoy Encoding.memory_usage())")


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
