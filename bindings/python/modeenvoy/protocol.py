"""The unified chat model (OpenAI Chat Completions is the canonical form), SSE and errors.

    import modeenvoy
    req = modeenvoy.parse_chat_request(body)      # str or bytes; validated
    req.model, req.stream, req.messages           # messages: a list of dicts (copies)
    req.model = "gpt-4o-mini"
    upstream_body = req.to_bytes()                # unknown fields are passed through
    req = modeenvoy.ChatRequest.from_dict({"model": "m", "messages": [...]})

    parser = modeenvoy.SseParser()
    for event in parser.feed(chunk):              # any split of the byte stream
        if event.data == modeenvoy.SSE_DONE_DATA: ...
        chunk = modeenvoy.parse_chat_completion_chunk(event.data)   # -> dict

Every failure raises ``modeenvoy.Error`` with ``.code``, ``.status_code`` and ``.param``
(the JSON field path, e.g. ``"messages[2].content[0].type"``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Union

from . import _modeenvoy
from .errors import Error

__all__ = [
    "ChatRequest",
    "SSE_DONE",
    "SSE_DONE_DATA",
    "SseEvent",
    "SseParser",
    "encode_sse_event",
    "openai_error_body",
    "parse_chat_completion",
    "parse_chat_completion_chunk",
    "parse_chat_request",
    "upstream_error",
    "validate_chat_request",
]

Body = Union[str, bytes, bytearray, memoryview]

#: The data payload that ends an OpenAI-compatible stream.
SSE_DONE_DATA: str = _modeenvoy._SSE_DONE_DATA
#: That payload as a complete encoded event: ``b"data: [DONE]\\n\\n"``.
SSE_DONE: bytes = _modeenvoy._SSE_DONE_EVENT


class ChatRequest:
    """A Chat Completions request, parsed and (by default) validated.

    Unknown fields at any level are kept and written back by :meth:`to_json`, so an
    OpenAI-compatible upstream receives them. ``messages`` and :meth:`to_dict` return
    copies: assign ``messages`` (or build a new request) to change them. Not thread-safe.
    """

    __slots__ = ("_native",)

    def __init__(self, native: "_modeenvoy._ChatRequest") -> None:
        self._native = native

    @classmethod
    def parse(cls, data: Body, *, validate: bool = True) -> "ChatRequest":
        """Parses a JSON body. With ``validate=False`` only syntax and types are checked
        (e.g. for a request whose route supplies the model)."""
        return cls(_modeenvoy._parse_chat_request(data, validate))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, validate: bool = True) -> "ChatRequest":
        """Builds a request from the JSON-shaped dict ``json.loads`` would give."""
        try:
            body = json.dumps(data, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise Error(f"body: not JSON-serializable: {e}", code="INVALID_ARGUMENT",
                        status_code=400, param="body") from None
        return cls.parse(body, validate=validate)

    def to_json(self) -> str:
        """Compact JSON: known fields in a fixed order, then unknown ones."""
        return self._native.to_json()

    def to_bytes(self) -> bytes:
        """:meth:`to_json` as UTF-8 bytes, ready for an HTTP body."""
        return self._native.to_bytes()

    def to_dict(self) -> dict:
        return json.loads(self._native.to_json())

    def validate(self) -> None:
        """Raises ``modeenvoy.Error`` if the request breaks a semantic rule (model and
        messages present, roles and content parts consistent, numeric ranges, ...)."""
        self._native.validate()

    def copy(self) -> "ChatRequest":
        return ChatRequest(self._native.copy())

    @property
    def model(self) -> str:
        return self._native.model

    @model.setter
    def model(self, value: str) -> None:
        self._native.model = value

    @property
    def stream(self) -> Optional[bool]:
        return self._native.stream

    @stream.setter
    def stream(self, value: Optional[bool]) -> None:
        self._native.stream = value

    @property
    def messages(self) -> List[dict]:
        return self.to_dict()["messages"]

    @messages.setter
    def messages(self, value: Iterable[Mapping[str, Any]]) -> None:
        data = self.to_dict()
        data["messages"] = list(value)
        # Semantic checks are left to validate(), as for any other field change.
        self._native = ChatRequest.from_dict(data, validate=False)._native

    @property
    def roles(self) -> List[str]:
        """The role of each message, cheaply (no copy of the contents)."""
        return self._native.message_roles

    def __len__(self) -> int:
        """The number of messages."""
        return self._native.message_count

    def __getitem__(self, key: str) -> Any:
        """Any top-level field as JSON-shaped data (``req["temperature"]``)."""
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChatRequest):
            return NotImplemented
        return self._native == other._native

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"ChatRequest(model={self.model!r}, messages={len(self)}, stream={self.stream!r})"


def parse_chat_request(data: Body, *, validate: bool = True) -> ChatRequest:
    """Parses (and by default validates) a Chat Completions request body."""
    return ChatRequest.parse(data, validate=validate)


def validate_chat_request(request: Union[ChatRequest, Mapping[str, Any], Body]) -> None:
    """Raises ``modeenvoy.Error`` unless ``request`` is a valid chat request."""
    if isinstance(request, ChatRequest):
        request.validate()
    elif isinstance(request, Mapping):
        ChatRequest.from_dict(request)
    else:
        ChatRequest.parse(request)


def parse_chat_completion(data: Body) -> dict:
    """Parses a ``chat.completion`` response body into its canonical dict (unknown fields
    kept; absent ``finish_reason``/``logprobs``/``message.content`` become None)."""
    return json.loads(_modeenvoy._normalize_chat_completion(data))


def parse_chat_completion_chunk(data: Body) -> dict:
    """Parses one ``chat.completion.chunk`` stream payload into its canonical dict."""
    return json.loads(_modeenvoy._normalize_chat_completion_chunk(data))


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event. ``event`` is "" when the stream gave none."""

    event: str
    data: str
    id: Optional[str] = None
    retry: Optional[int] = None


class SseParser:
    """Incremental text/event-stream parser: feed it reads of any size.

    Lines may end in CRLF, LF or CR; comments are skipped; a BOM at the start is ignored.
    ``max_event_bytes`` bounds one event (exceeding it raises ``Error`` with code
    ``RESOURCE_EXHAUSTED``). Not thread-safe.
    """

    def __init__(self, *, max_event_bytes: int = 8 << 20) -> None:
        if max_event_bytes <= 0:
            raise ValueError("max_event_bytes must be > 0")
        self._native = _modeenvoy._SseParser(max_event_bytes)

    def feed(self, data: Body) -> List[SseEvent]:
        """Returns the events completed by ``data``."""
        return [SseEvent(*t) for t in self._native.feed(data)]

    def finish(self) -> List[SseEvent]:
        """Ends the stream; returns an unterminated last event, if any."""
        return [SseEvent(*t) for t in self._native.finish()]

    def iter(self, chunks: Iterable[Body]) -> Iterator[SseEvent]:
        """Yields every event of a stream given as an iterable of reads."""
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.finish()

    @property
    def last_event_id(self) -> str:
        return self._native.last_event_id

    @property
    def retry(self) -> Optional[int]:
        return self._native.retry


def encode_sse_event(data: Body, event: str = "", *, id: Optional[str] = None,
                     retry: Optional[int] = None) -> bytes:
    """Encodes one event (multi-line data becomes several ``data:`` lines)."""
    if "\n" in event or "\r" in event or (id is not None and ("\n" in id or "\r" in id)):
        raise ValueError("event and id must not contain line breaks")
    return _modeenvoy._encode_sse_event(data, event, id, retry)


def upstream_error(http_status: int, body: Body) -> Error:
    """The ``Error`` for an upstream provider's error response (OpenAI, Anthropic, Gemini
    and plain-text shapes): the upstream message, ``status_code`` = ``http_status`` (for
    4xx/5xx) and ``param`` when the upstream named one."""
    try:
        _modeenvoy._raise_upstream_error(http_status, body)
    except Error as e:
        e.error_code = _modeenvoy._upstream_error_code(http_status, body)
        return e
    raise AssertionError("unreachable")  # pragma: no cover


def openai_error_body(error: Error) -> str:
    """The OpenAI-style JSON error body a client should receive for ``error``."""
    return _modeenvoy._openai_error_body(error.code, error.message, error.param,
                                         error.status_code, getattr(error, "error_code", None))
