"""Conversation contexts kept by the gateway (the Model Context Protocol, issue 10).

    import modeenvoy
    store = modeenvoy.ContextStore.memory(max_bytes=64 << 20, ttl_seconds=3600)
    v = store.append("s-1", [{"role": "user", "content": "hi"}], owner="team-a")
    record = store.get("s-1")            # the stored record as a dict, plus "version"
    window = modeenvoy.fit_context(
        [{"role": "user", "content": "and now?"}], "gpt-4o", reserve_tokens=1024,
        history=record)                  # history + new messages, fitted to gpt-4o's window

Records are the JSON form of include/modeenvoy/context/record.h (schema_version 2):
``session_id``, ``owner``, ``history`` (entries ``{"message": {...}, "turn": n, "pinned":
bool, "summary": bool}``, the flags written only when true), ``metadata``, ``tool_calls``
(the agent state), ``model_choices``, ``turn_count``, ``created``/``updated`` (RFC 3339).

Errors are ``modeenvoy.Error`` with ``.code`` as everywhere in the module; a version
conflict is the subclass ``ContextConflictError`` (code ``ABORTED``), and invalid input
(including an unknown model without ``context_window`` and a window the new messages do not
fit) is ``ContextValueError``, which is also a ``ValueError``.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional, Sequence

from . import _modeenvoy
from .errors import Error

__all__ = ["ContextConflictError", "ContextStore", "ContextValueError", "fit_context"]

# Tokens a request adds for the reply priming (tokenizer/chat_tokens.h kReplyPrimingTokens).
_REPLY_PRIMING_TOKENS = 3


class ContextConflictError(Error):
    """A write named a version other than the stored one (code ``ABORTED``)."""


class ContextValueError(Error, ValueError):
    """Invalid input to a context call (code ``INVALID_ARGUMENT``)."""


def _rethrow(err: Error) -> Error:
    cls = {"ABORTED": ContextConflictError, "INVALID_ARGUMENT": ContextValueError}.get(err.code)
    if cls is None:
        return err
    return cls(err.message, code=err.code, status_code=err.status_code, param=err.param)


def _value_error(message: str, param: Optional[str]) -> ContextValueError:
    return ContextValueError(message, code="INVALID_ARGUMENT", status_code=400, param=param)


def _entries(items: Iterable[Any], field: str) -> list[tuple[str, bool, bool]]:
    """(message JSON, pinned, summary) for message dicts or history entry dicts."""
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise _value_error(f"{field}[{i}]: expected an object, got {type(item).__name__}",
                               f"{field}[{i}]")
        if "message" in item and "role" not in item:  # a history entry
            pinned, summary = item.get("pinned", False), item.get("summary", False)
            if not isinstance(pinned, bool) or not isinstance(summary, bool):
                raise _value_error(f"{field}[{i}]: pinned and summary must be booleans",
                                   f"{field}[{i}]")
            out.append((json.dumps(item["message"]), pinned, summary))
        else:
            out.append((json.dumps(item), False, False))
    return out


class ContextStore:
    """Where conversation contexts live. Thread-safe (calls are serialized).

    Build one with a factory (``ContextStore.memory(...)`` or ``ContextStore.redis(url)``);
    every method completes before it returns, whichever store is behind it.
    """

    def __init__(self, native: Any) -> None:
        self._native = native

    @classmethod
    def memory(cls, max_bytes: int = 256 << 20, ttl_seconds: Optional[float] = 24 * 3600,
               *, max_record_bytes: int = 4 << 20, shards: int = 16) -> "ContextStore":
        """An in-process store: sharded LRU bounded by ``max_bytes`` of serialized records.

        Sessions not written for ``ttl_seconds`` expire (``None``: never); a record larger
        than ``max_record_bytes`` is refused (code ``RESOURCE_EXHAUSTED``).
        """
        try:
            return cls(_modeenvoy._ContextStore.memory(max_bytes, max_record_bytes, ttl_seconds,
                                                       shards))
        except Error as err:
            raise _rethrow(err) from None

    @classmethod
    def redis(cls, url: str = "redis://127.0.0.1:6379", *, key_prefix: str = "modeenvoy:ctx:",
              ttl_seconds: Optional[float] = 24 * 3600, max_record_bytes: int = 4 << 20,
              connect_timeout: float = 2.0, operation_timeout: float = 2.0,
              cluster: bool = False, cluster_seed_nodes: Sequence[str] = ()) -> "ContextStore":
        """A store in Redis: ``url`` is ``redis://[[user]:password@]host[:port][/db]`` or
        ``unix:///path``; ``rediss://`` (TLS) is not supported (``ContextValueError``).

        Keys are ``<key_prefix>{<session_id>}:<part>`` (the gateway's layout: a gateway
        configured with the same url and prefix serves the same sessions). Sessions not
        written for ``ttl_seconds`` expire (``None``: never). ``cluster``: Redis Cluster,
        ``url`` and ``cluster_seed_nodes`` (``"host:port"``) the seeds. Each operation
        waits at most ``connect_timeout`` (while connecting) plus ``operation_timeout``
        seconds; an unreachable server is ``modeenvoy.Error`` with code ``UNAVAILABLE``,
        a slow one ``DEADLINE_EXCEEDED``. The connection is made lazily and re-made after a
        failure (with backoff).
        """
        if not isinstance(url, str):
            raise _value_error(f"url: expected a string, got {type(url).__name__}", "url")
        try:
            return cls(_modeenvoy._ContextStore.redis(url, key_prefix, ttl_seconds,
                                                      max_record_bytes, float(connect_timeout),
                                                      float(operation_timeout), bool(cluster),
                                                      list(cluster_seed_nodes)))
        except Error as err:
            raise _rethrow(err) from None

    @property
    def kind(self) -> str:
        """``"memory"`` or ``"redis"``."""
        return self._native.kind

    def get(self, session_id: str) -> Optional[dict]:
        """The session's record as a dict with its ``"version"``, or ``None``."""
        try:
            got = self._native.get(session_id)
        except Error as err:
            raise _rethrow(err) from None
        if got is None:
            return None
        record = json.loads(got[0])
        record["version"] = got[1]
        return record

    def append(self, session_id: str, messages: Sequence[Mapping[str, Any]], *, owner: str,
               expected_version: Optional[int] = None,
               metadata: Optional[Mapping[str, str]] = None,
               model_choice: Optional[Mapping[str, Any]] = None) -> int:
        """Appends one turn and returns the session's new version.

        ``messages`` are OpenAI chat message dicts (or history entry dicts with ``pinned`` /
        ``summary`` flags); they get the next turn number. Assistant tool calls are added to
        the record's ``tool_calls`` and tool messages recorded as their results.
        ``expected_version``: ``None`` reads the session and retries on a concurrent write;
        ``0`` requires a new session; another number requires exactly that stored version
        (else ``ContextConflictError``). ``owner`` creates the session; appending to another
        owner's session is ``PERMISSION_DENIED``. ``metadata`` (str -> str) is merged into
        the record's. ``model_choice``: ``{"model", "provider", "upstream_model", "usage",
        "usage_estimated"}`` (all optional) records which model served the turn.
        """
        if isinstance(messages, (str, bytes)) or isinstance(messages, Mapping):
            raise _value_error("messages: expected a list of message objects", "messages")
        if expected_version is not None and (not isinstance(expected_version, int)
                                             or expected_version < 0):
            raise _value_error(f"expected_version: must be an int >= 0, got {expected_version!r}",
                               "expected_version")
        meta = {}
        for key, value in (metadata or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise _value_error(f"metadata.{key}: keys and values must be strings",
                                   f"metadata.{key}")
            meta[key] = value
        choice = None
        if model_choice is not None:
            fields = {}
            for name in ("model", "provider", "upstream_model"):
                value = model_choice.get(name, "")
                if not isinstance(value, str):
                    raise _value_error(f"model_choice.{name}: expected a string",
                                       f"model_choice.{name}")
                fields[name] = value
            unknown = set(model_choice) - {"model", "provider", "upstream_model", "usage",
                                           "usage_estimated"}
            if unknown:
                name = sorted(unknown)[0]
                raise _value_error(f"model_choice.{name}: unknown member", f"model_choice.{name}")
            usage = model_choice.get("usage")
            estimated = model_choice.get("usage_estimated", False)
            if not isinstance(estimated, bool):
                raise _value_error("model_choice.usage_estimated: expected a boolean",
                                   "model_choice.usage_estimated")
            choice = (fields["model"], fields["provider"], fields["upstream_model"],
                      None if usage is None else json.dumps(usage), estimated)
        try:
            return self._native.append(session_id, _entries(messages, "messages"), owner,
                                       expected_version, meta, choice)
        except Error as err:
            raise _rethrow(err) from None

    def delete(self, session_id: str) -> bool:
        """Erases the session; returns whether it existed."""
        try:
            return self._native.delete(session_id)
        except Error as err:
            raise _rethrow(err) from None

    def list(self, owner: str, cursor: str = "", limit: int = 100) -> dict:
        """One page of ``owner``'s sessions, by session id.

        Returns ``{"sessions": [{"session_id", "turn_count", "created", "updated"}, ...],
        "next_cursor": str}``; pass ``next_cursor`` back for the next page (``""``: last).
        """
        try:
            sessions, next_cursor = self._native.list(owner, cursor, limit)
        except Error as err:
            raise _rethrow(err) from None
        return {"sessions": [{"session_id": s[0], "turn_count": s[1], "created": s[2],
                              "updated": s[3]} for s in sessions],
                "next_cursor": next_cursor}


def fit_context(messages: Sequence[Mapping[str, Any]], model: str, reserve_tokens: int, *,
                context_window: Optional[int] = None, history: Any = None) -> list[dict]:
    """``history`` + ``messages`` fitted to ``model``'s context window.

    The window holds ``context_window`` (default: the model's published window) minus
    ``reserve_tokens`` for the reply minus the reply priming, counted by the model's chat
    rules (models without a known encoding count with o200k_base). The new ``messages`` are
    always kept; system and pinned messages too; the oldest whole turns go first, an
    assistant tool call never without its results; a summary entry goes last.
    ``history``: a list of message dicts (turns numbered by user messages) or of history
    entry dicts, or a record from ``ContextStore.get``. Returns the kept history messages
    followed by ``messages``: the caller's own dicts, in order.
    Raises ContextValueError for an unknown model without ``context_window`` and when the
    new, system and pinned messages alone do not fit (code context_length_exceeded).
    """
    if context_window is None:
        context_window = _modeenvoy._context_window_for_model(model)
        if context_window is None:
            raise _value_error(f"model {model!r} has no known context window; pass "
                               "context_window=", "model")
    if not isinstance(context_window, int) or context_window <= 0:
        raise _value_error(f"context_window: must be a positive int, got {context_window!r}",
                           "context_window")
    if not isinstance(reserve_tokens, int) or reserve_tokens < 0:
        raise _value_error(f"reserve_tokens: must be an int >= 0, got {reserve_tokens!r}",
                           "reserve_tokens")
    if isinstance(history, Mapping):  # a stored record
        history = history.get("history", [])
    history = list(history or [])
    new = list(messages)
    entries = _entries(history, "history")
    messages_of = [h["message"] if ("message" in h and "role" not in h) else h for h in history]
    turns, users = [], 0
    for item, message in zip(history, messages_of):
        if "message" in item and "role" not in item and isinstance(item.get("turn"), int):
            turns.append(item["turn"])
            continue
        if message.get("role") == "user":
            users += 1
        turns.append(max(users, 1))
    budget = context_window - reserve_tokens - _REPLY_PRIMING_TOKENS
    try:
        dropped, _tokens = _modeenvoy._fit_context([json.dumps(m) for m in new], entries, turns,
                                                   model, budget)
    except Error as err:
        raise _rethrow(err) from None
    gone = set(dropped)
    return [m for i, m in enumerate(messages_of) if i not in gone] + new
