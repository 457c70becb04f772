"""tiktoken-compatible tokenizer: change ``import tiktoken`` to ``import modeenvoy``.

    import modeenvoy as tiktoken                  # or: from modeenvoy import get_encoding
    enc = tiktoken.get_encoding("o200k_base")
    enc.encode("hello <|endoftext|>", allowed_special="all")
    enc.count(text)                               # token count without building the list
    tiktoken.encoding_for_model("gpt-4o").name    # "o200k_base"

Token ids are identical to tiktoken 0.14's. Rank files are found as in the C++ API:
``$MODEENVOY_TOKENIZER_DIR/<name>.tiktoken`` or tiktoken's own cache
(``$TIKTOKEN_CACHE_DIR``, files named by the SHA-1 of their URL), so a machine that already
ran tiktoken needs nothing new. Errors keep tiktoken's exception types (ValueError for an
unknown encoding or a disallowed special token, KeyError for an unknown model or token) and
are also ``modeenvoy.Error`` instances with ``.code``.
"""

from __future__ import annotations

import functools
import operator
import threading
from typing import AbstractSet, Collection, Literal, Sequence

from . import _modeenvoy
from .errors import Error

__all__ = [
    "Encoding",
    "EncodingKeyError",
    "EncodingValueError",
    "encoding_for_model",
    "encoding_name_for_model",
    "get_encoding",
    "list_encoding_names",
    "load_encoding",
    "piece_cache_bytes",
    "piece_cache_stats",
    "pretokenizer_mode",
    "set_piece_cache_bytes",
    "set_pretokenizer_mode",
]


class EncodingValueError(Error, ValueError):
    """A tokenizer error that tiktoken reports as ValueError."""


class EncodingKeyError(Error, KeyError):
    """A tokenizer error that tiktoken reports as KeyError."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


def _rethrow(err: Error, cls: type) -> Error:
    return cls(err.message, code=err.code, status_code=err.status_code, param=err.param)


def _repair_surrogates(text: str) -> str:
    # What tiktoken does for strings that are not valid UTF-8 (lone surrogates).
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Encoding:
    """A loaded encoding with tiktoken's Encoding interface. Thread-safe.

    Built-in encodings come from get_encoding(); constructing one is tiktoken's way to
    extend an encoding, e.g. with custom special tokens::

        base = modeenvoy.get_encoding("cl100k_base")
        enc = modeenvoy.Encoding(name="cl100k_im", pat_str=base._pat_str,
                                 mergeable_ranks=base._mergeable_ranks,
                                 special_tokens={**base._special_tokens, "<|im_start|>": 100264})

    A pat_str equal to a built-in encoding's runs on the hand-written splitter; any other
    regex runs through PCRE2 (docs/tokenizer.md: its Unicode tables are older than
    tiktoken's). Errors: ValueError for inconsistent ranks or ids, or a regex that does not
    compile; TypeError for keys or values of the wrong type.
    """

    def __init__(self, name: str, *, pat_str: str, mergeable_ranks: dict[bytes, int],
                 special_tokens: dict[str, int], explicit_n_vocab: int | None = None) -> None:
        try:
            core = _modeenvoy._tok_create_encoding(name, pat_str, mergeable_ranks,
                                                   special_tokens, explicit_n_vocab or 0)
        except Error as err:
            raise _rethrow(err, EncodingValueError) from None
        reload = functools.partial(Encoding, name, pat_str=pat_str,
                                   mergeable_ranks=mergeable_ranks,
                                   special_tokens=dict(special_tokens),
                                   explicit_n_vocab=explicit_n_vocab)
        self._init(core, reload)
        self.__dict__["_mergeable_ranks"] = mergeable_ranks

    @classmethod
    def _wrap(cls, core: "_modeenvoy._TokEncoding", reload=None) -> "Encoding":
        self = cls.__new__(cls)
        self._init(core, reload)
        return self

    def _init(self, core, reload) -> None:
        self._core = core
        self.name: str = core.name
        self._special_tokens: dict[str, int] = core.special_tokens()
        self.max_token_value: int = core.max_token_value
        # How another process gets the same encoding back (pickle, copy.deepcopy).
        self._reload = reload or functools.partial(get_encoding, self.name)

    def __repr__(self) -> str:
        return f"<Encoding {self.name!r}>"

    def __reduce__(self):
        # Pickled by name (and, for load_encoding, its file arguments), not by its tables:
        # multiprocessing and dataset.map(num_proc=...) send encodings to worker processes,
        # which load them from the same rank files (and share them, as get_encoding does).
        return (_call, (self._reload,))

    # ---- properties --------------------------------------------------------------------
    @property
    def _pat_str(self) -> str:
        """The pre-tokenization regex, as tiktoken's (the built-in ones character for character)."""
        return self._core.pat_str

    @functools.cached_property
    def _mergeable_ranks(self) -> dict[bytes, int]:
        """{token bytes: rank} of every mergeable token (built on first use)."""
        return self._core.mergeable_ranks()

    @property
    def n_vocab(self) -> int:
        return self._core.n_vocab

    @property
    def eot_token(self) -> int:
        return self._special_tokens["<|endoftext|>"]

    @functools.cached_property
    def special_tokens_set(self) -> set[str]:
        return set(self._special_tokens.keys())

    def is_special_token(self, token: int) -> bool:
        token = operator.index(token)
        return 0 <= token <= 0xFFFFFFFF and self._core.is_special_token(token)

    def memory_usage(self) -> int:
        """Bytes held by the loaded tables (shared by every user of this encoding)."""
        return self._core.memory_usage()

    # ---- encoding ----------------------------------------------------------------------
    def encode_ordinary(self, text: str) -> list[int]:
        try:
            return self._core.encode_ordinary(text)
        except UnicodeEncodeError:
            return self._core.encode_ordinary(_repair_surrogates(text))

    def encode_ordinary_to_array(self, text: str):
        """encode_ordinary() as a read-only buffer of uint32 ids (a ``TokenArray``), without
        building Python ints: ``memoryview(a)``, ``numpy.frombuffer(a, numpy.uint32)`` and
        ``len(a)`` read the ids in place; ``a.tolist()`` gives the list."""
        try:
            return self._core.encode_ordinary_to_array(text)
        except UnicodeEncodeError:
            return self._core.encode_ordinary_to_array(_repair_surrogates(text))

    def encode_ordinary_to_numpy(self, text: str):
        """encode_ordinary() as a read-only numpy uint32 array that shares the ids' memory
        (no copy; needs numpy)."""
        import numpy as np

        return np.frombuffer(self.encode_ordinary_to_array(text), dtype=np.uint32)

    def _encode_bytes(self, text: bytes) -> list[int]:
        """tiktoken's _encode_bytes: bytes that need not be UTF-8; the result decodes back to
        them, and truncated UTF-8 at the end merges as tiktoken merges it."""
        return self._core.encode_bytes(bytes(text))

    def _special_args(self, allowed_special, disallowed_special):
        allowed_all = allowed_special == "all"
        allowed = [] if allowed_all else list(allowed_special)
        disallowed_all = disallowed_special == "all"
        # tiktoken checks nothing for any false value (None, (), set()).
        disallowed = [] if disallowed_all or not disallowed_special else list(disallowed_special)
        return allowed_all, allowed, disallowed_all, disallowed

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = set(),  # noqa: B006
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        args = self._special_args(allowed_special, disallowed_special)
        try:
            try:
                return self._core.encode(text, *args)
            except UnicodeEncodeError:
                return self._core.encode(_repair_surrogates(text), *args)
        except Error as err:
            raise _rethrow(err, EncodingValueError) from None

    def encode_to_numpy(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = set(),  # noqa: B006
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ):
        """encode() as a read-only numpy uint32 array sharing the ids' memory (needs numpy,
        as tiktoken's does)."""
        import numpy as np

        args = self._special_args(allowed_special, disallowed_special)
        try:
            try:
                buffer = self._core.encode_to_buffer(text, *args)
            except UnicodeEncodeError:
                buffer = self._core.encode_to_buffer(_repair_surrogates(text), *args)
        except Error as err:
            raise _rethrow(err, EncodingValueError) from None
        return np.frombuffer(buffer, dtype=np.uint32)

    def count_ordinary(self, text: str) -> int:
        """len(encode_ordinary(text)), without building the list."""
        try:
            return self._core.count_ordinary(text)
        except UnicodeEncodeError:
            return self._core.count_ordinary(_repair_surrogates(text))

    def count(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = set(),  # noqa: B006
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> int:
        """len(encode(text, ...)), without building the list."""
        args = self._special_args(allowed_special, disallowed_special)
        try:
            try:
                return self._core.count(text, *args)
            except UnicodeEncodeError:
                return self._core.count(_repair_surrogates(text), *args)
        except Error as err:
            raise _rethrow(err, EncodingValueError) from None

    def encode_ordinary_batch(self, text: Sequence[str], *, num_threads: int = 8) -> list[list[int]]:
        try:
            return self._core.encode_ordinary_batch(text, num_threads)
        except UnicodeEncodeError:
            return self._core.encode_ordinary_batch([_repair_surrogates(t) for t in text],
                                                    num_threads)

    def encode_batch(
        self,
        text: Sequence[str],
        *,
        num_threads: int = 8,
        allowed_special: Literal["all"] | AbstractSet[str] = set(),  # noqa: B006
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[list[int]]:
        args = self._special_args(allowed_special, disallowed_special)
        try:
            try:
                return self._core.encode_batch(text, num_threads, *args)
            except UnicodeEncodeError:
                return self._core.encode_batch([_repair_surrogates(t) for t in text],
                                               num_threads, *args)
        except Error as err:
            raise _rethrow(err, EncodingValueError) from None

    def count_ordinary_batch(self, text: Sequence[str], *, num_threads: int = 8) -> list[int]:
        try:
            return self._core.count_ordinary_batch(text, num_threads)
        except UnicodeEncodeError:
            return self._core.count_ordinary_batch([_repair_surrogates(t) for t in text],
                                                   num_threads)

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        if isinstance(text_or_bytes, str):
            text_or_bytes = text_or_bytes.encode("utf-8")
        try:
            return self._core.encode_single_token(text_or_bytes)
        except Error as err:
            raise _rethrow(err, EncodingKeyError) from None

    # ---- decoding ----------------------------------------------------------------------
    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        try:
            return self._core.decode_bytes(tokens)
        except Error as err:
            raise _rethrow(err, EncodingKeyError) from None

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        return self.decode_bytes(tokens).decode("utf-8", errors=errors)

    def decode_single_token_bytes(self, token: int) -> bytes:
        token = operator.index(token)
        if not 0 <= token <= 0xFFFFFFFF:
            raise OverflowError("token id does not fit in 32 bits")
        try:
            return self._core.decode_single_token_bytes(token)
        except Error as err:
            raise _rethrow(err, EncodingKeyError) from None

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]:
        return [self.decode_single_token_bytes(t) for t in tokens]

    def decode_with_offsets(self, tokens: Sequence[int]) -> tuple[str, list[int]]:
        token_bytes = self.decode_tokens_bytes(tokens)
        text_len = 0
        offsets = []
        for token in token_bytes:
            offsets.append(max(0, text_len - (0x80 <= token[0] < 0xC0)))
            text_len += sum(1 for c in token if not 0x80 <= c < 0xC0)
        text = b"".join(token_bytes).decode("utf-8", errors="strict")
        return text, offsets

    def decode_batch(self, batch: Sequence[Sequence[int]], *, errors: str = "replace",
                     num_threads: int = 8) -> list[str]:
        return [self.decode(tokens, errors=errors) for tokens in batch]

    def decode_bytes_batch(self, batch: Sequence[Sequence[int]], *,
                           num_threads: int = 8) -> list[bytes]:
        return [self.decode_bytes(tokens) for tokens in batch]

    def token_byte_values(self) -> list[bytes]:
        """Bytes of every mergeable token, sorted (as tiktoken returns them)."""
        out = []
        for rank in range(self.max_token_value + 1):
            if rank in self._special_ids:
                continue
            try:
                out.append(self._core.decode_single_token_bytes(rank))
            except Error:
                continue
        out.sort()
        return out

    @functools.cached_property
    def _special_ids(self) -> set[int]:
        return set(self._special_tokens.values())


_lock = threading.Lock()
_encodings: dict[str, Encoding] = {}


def get_encoding(encoding_name: str) -> Encoding:
    """The shared Encoding named `encoding_name` (see list_encoding_names())."""
    enc = _encodings.get(encoding_name)
    if enc is not None:
        return enc
    try:
        core = _modeenvoy._tok_get_encoding(encoding_name)
    except Error as err:
        raise _rethrow(err, EncodingValueError if err.code == "INVALID_ARGUMENT" else type(err)) \
            from None
    with _lock:
        return _encodings.setdefault(encoding_name, Encoding._wrap(core))


def load_encoding(encoding_name: str, *, rank_file: str = "", tokenizer_dir: str = "",
                  tiktoken_cache_dir: str = "", verify_sha256: bool = True) -> Encoding:
    """A built-in encoding read from an explicit file or directory (not the defaults)."""
    reload = functools.partial(load_encoding, encoding_name, rank_file=rank_file,
                               tokenizer_dir=tokenizer_dir, tiktoken_cache_dir=tiktoken_cache_dir,
                               verify_sha256=verify_sha256)
    return Encoding._wrap(_modeenvoy._tok_get_encoding(encoding_name, rank_file, tokenizer_dir,
                                                       tiktoken_cache_dir, verify_sha256), reload)


def _call(fn):
    # Unpickling helper: Encoding.__reduce__ stores how to load the encoding again.
    return fn()


def list_encoding_names() -> list[str]:
    return list(_modeenvoy._tok_list_encoding_names())


def encoding_name_for_model(model_name: str) -> str:
    try:
        return _modeenvoy._tok_encoding_name_for_model(model_name)
    except Error as err:
        raise _rethrow(err, EncodingKeyError) from None


def encoding_for_model(model_name: str) -> Encoding:
    return get_encoding(encoding_name_for_model(model_name))


def set_piece_cache_bytes(nbytes: int) -> None:
    """Bounds each thread's cache of the tokens of pieces that needed merging, in bytes.

    Default 2 MiB per thread, shared by all encodings; 0 turns caching off. A thread picks up
    the new bound on its next encode call. The cache never changes a result.
    """
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    _modeenvoy._tok_set_piece_cache_bytes(nbytes)


def set_pretokenizer_mode(mode: str) -> str:
    """Selects the pre-tokenizer for every thread: "auto" (default: the best this CPU has),
    "avx2", "sse2", "scalar" or "off" (the per-character splitter). All cut the same pieces,
    so this is for tests and measurements. Returns the mode in effect (a SIMD mode the CPU
    lacks falls back to the next one it has). Raises ValueError for another name."""
    try:
        return _modeenvoy._tok_set_pretokenizer_mode(mode)
    except Error as err:
        raise ValueError(str(err)) from None


def pretokenizer_mode() -> str:
    """The pre-tokenizer mode in effect ("avx2", "sse2", "scalar" or "off")."""
    return _modeenvoy._tok_pretokenizer_mode()


def piece_cache_bytes() -> int:
    """The per-thread piece cache bound set_piece_cache_bytes() last set (default 2 MiB)."""
    return _modeenvoy._tok_piece_cache_bytes()


def piece_cache_stats(*, reset: bool = False) -> dict:
    """The calling thread's piece cache counters: hits, misses, inserts, evictions, and the
    bytes its cache holds (memory_bytes); reset=True zeroes the counters after reading."""
    return _modeenvoy._tok_piece_cache_stats(reset)

