#!/usr/bin/env python3
"""What a Python caller pays beyond the tokenizer, and batch encode across threads.

    PYTHONPATH=build/python python3 bench/tokenizer_py_paths.py [--corpus DIR] [--repeat 9]

Per corpus file and encoding, side by side in one process, interleaved, medians of thread
CPU time (so other processes on a shared machine do not count), warm (same text again):
  count     enc.count_ordinary(text)              no ids leave C++
  array     enc.encode_ordinary_to_array(text)    ids in a uint32 buffer, no Python ints
  list      enc.encode_ordinary(text)             a Python list (tiktoken's interface)
  tiktoken  tiktoken's encode_ordinary(text), when importable
list - count is the cost of returning a list; array - count that of the zero-copy form.

Batch: encode_ordinary_batch / count_ordinary_batch over the corpus split into 64 KiB
texts, num_threads 1 and 2, wall time (medians), and the process CPU time of each run: a
speed-up is only meaningful when the machine's other load leaves both cores free, which
the CPU/wall ratio shows (2.0 = both cores busy with this batch the whole time). "CPU MB/s"
is MB per CPU second of the whole process: equal for 1 and 2 threads means the second
thread adds no work of its own (thread start, cold per-thread caches).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MODEENVOY_DATA_DIR", REPO / ".data"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(DATA / "tiktoken-cache"))
os.environ.setdefault("MODEENVOY_TOKENIZER_DIR", str(DATA / "tokenizers"))

import modeenvoy  # noqa: E402

try:
    import tiktoken  # noqa: E402
except ImportError:
    tiktoken = None

FILES = ["bench_prose.txt", "bench_code.txt", "bench_multilingual.txt"]


def thread_time(fn, text) -> float:
    t0 = time.thread_time_ns()
    fn(text)
    return (time.thread_time_ns() - t0) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    default_corpus = Path("/tmp/tokfast-corpus")
    if not default_corpus.is_dir():
        default_corpus = DATA / "tokenizer-corpus"
    ap.add_argument("--corpus", default=str(default_corpus))
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--encodings", default="cl100k_base,o200k_base")
    ap.add_argument("--no-piece-cache", action="store_true",
                    help="set_piece_cache_bytes(0) first: batch workers start with cold caches")
    ap.add_argument("--batch-only", action="store_true")
    args = ap.parse_args()
    if args.no_piece_cache:
        modeenvoy.set_piece_cache_bytes(0)
    corpus = Path(args.corpus)
    for name in args.encodings.split(","):
        enc = modeenvoy.get_encoding(name)
        ref = tiktoken.get_encoding(name) if tiktoken else None
        print(f"\n{name}: MB/s (median of {args.repeat}, thread CPU time, warm)")
        print(f"{'file':24} {'count':>8} {'array':>8} {'list':>8} {'tiktoken':>9}"
              f" {'list-count ns/tok':>18} {'array-count ns/tok':>19}")
        for f in [] if args.batch_only else FILES:
            text = (corpus / f).read_text(encoding="utf-8")
            mb = len(text.encode("utf-8")) / 1e6
            ntok = enc.count_ordinary(text)
            assert enc.encode_ordinary_to_array(text).tolist() == enc.encode_ordinary(text)
            sides = {"count": enc.count_ordinary, "array": enc.encode_ordinary_to_array,
                     "list": enc.encode_ordinary}
            if ref:
                sides["tiktoken"] = ref.encode_ordinary
            times = {k: [] for k in sides}
            for fn in sides.values():
                fn(text)  # warm
            for _ in range(args.repeat):
                for k, fn in sides.items():
                    times[k].append(thread_time(fn, text))
            med = {k: statistics.median(v) for k, v in times.items()}
            tk = f"{mb / med['tiktoken']:9.1f}" if ref else f"{'-':>9}"
            print(f"{f:24} {mb / med['count']:8.1f} {mb / med['array']:8.1f} {mb / med['list']:8.1f}"
                  f" {tk} {(med['list'] - med['count']) / ntok * 1e9:18.2f}"
                  f" {(med['array'] - med['count']) / ntok * 1e9:19.2f}")

        texts = []
        for f in FILES:
            data = (corpus / f).read_text(encoding="utf-8")
            texts += [data[i:i + 65536] for i in range(0, len(data), 65536)]
        total_mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        print(f"batch: {len(texts)} texts, {total_mb:.1f} MB; wall MB/s (median of {args.repeat}),"
              " CPU/wall")
        for label, fn in (("encode_ordinary_batch", enc.encode_ordinary_batch),
                          ("count_ordinary_batch", enc.count_ordinary_batch)):
            fn(texts, num_threads=2)  # warm both threads' caches
            res = {}
            for threads in (1, 2):
                walls, cpus = [], []
                for _ in range(args.repeat):
                    c0, w0 = time.process_time(), time.perf_counter()
                    fn(texts, num_threads=threads)
                    walls.append(time.perf_counter() - w0)
                    cpus.append(time.process_time() - c0)
                res[threads] = (statistics.median(walls), statistics.median(cpus))
            w1, c1 = res[1]
            w2, c2 = res[2]
            print(f"  {label:22} 1 thread {total_mb / w1:7.1f} (cpu/wall {c1 / w1:.2f})"
                  f"  2 threads {total_mb / w2:7.1f} (cpu/wall {c2 / w2:.2f})"
                  f"  speed-up {w1 / w2:.2f}x  CPU MB/s {total_mb / c1:.1f} -> {total_mb / c2:.1f}")


if __name__ == "__main__":
    sys.exit(main())
