"""Translation between model providers' wire formats (dialects), through the unified form
(OpenAI Chat Completions).

    import modeenvoy
    modeenvoy.dialect_names()       # ["openai", "anthropic", ...]
    body = modeenvoy.translate_request(openai_body, "openai", "anthropic")        # -> dict
    unified = modeenvoy.translate_response(anthropic_body, "anthropic", "openai")  # -> dict

    t = modeenvoy.StreamTranslator("anthropic", "openai")
    for read in upstream_reads:          # raw bytes in any split: SSE, NDJSON or EventStream
        client.write(t.feed(read))       # the target's stream bytes (SSE for "openai")
    client.write(t.finish())

Bodies may be ``bytes``, ``str`` or a ``dict`` (serialized as JSON). Options are a dict of
the dialect's options (the keys of ``providers.<name>`` besides the common ones, e.g.
``{"api_version": "2024-10-21"}`` for ``azure_openai``). Malformed input raises
``modeenvoy.Error`` naming the field; a provider error inside a stream comes out as the
target dialect's error event, after which the stream has ended.
"""

from __future__ import annotations

import json
from typing import Any, List, Mapping, Optional, Union

from . import _modeenvoy

__all__ = ["StreamTranslator", "dialect_names", "translate_request", "translate_response"]

Body = Union[str, bytes, bytearray, memoryview, Mapping[str, Any]]


def _body(data: Body):
    if isinstance(data, Mapping):
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return data


def _options(options: Optional[Mapping[str, Any]]) -> str:
    return "" if options is None else json.dumps(options, separators=(",", ":"))


def dialect_names() -> List[str]:
    """The dialects this build knows, e.g. ``["openai", "anthropic", ...]``."""
    return list(_modeenvoy._dialect_names())


def translate_request(body: Body, source: str, target: str, *, model: Optional[str] = None,
                      stream: Optional[bool] = None, path: str = "",
                      source_options: Optional[Mapping[str, Any]] = None,
                      target_options: Optional[Mapping[str, Any]] = None) -> dict:
    """A request body in ``source``'s API as ``target``'s request body.

    ``model`` is the target's model name (default: the request's); ``stream`` overrides the
    request's flag; ``path`` is the source request's URL path and query, for dialects that
    carry the model or the stream flag there (``"/v1beta/models/gemini-2.5-pro:generateContent"``).
    """
    return json.loads(_modeenvoy._translate_request(
        _body(body), source, target, _options(source_options), _options(target_options), path,
        model, stream))


def translate_response(body: Body, source: str, target: str, *,
                       source_options: Optional[Mapping[str, Any]] = None,
                       target_options: Optional[Mapping[str, Any]] = None) -> dict:
    """A whole (non-streamed) response body of ``source`` as ``target``'s response body."""
    return json.loads(_modeenvoy._translate_response(
        _body(body), source, target, _options(source_options), _options(target_options)))


class StreamTranslator:
    """Re-encodes one streamed response: ``source``'s raw stream bytes (its own framing:
    SSE, NDJSON or AWS EventStream) in, ``target``'s stream bytes out. Not thread-safe."""

    def __init__(self, source: str, target: str, *,
                 source_options: Optional[Mapping[str, Any]] = None,
                 target_options: Optional[Mapping[str, Any]] = None) -> None:
        self.source = source
        self.target = target
        self._native = _modeenvoy._StreamTranslator(source, target, _options(source_options),
                                                    _options(target_options))

    def feed(self, data: Union[str, bytes, bytearray, memoryview]) -> bytes:
        """The target's bytes for what ``data`` completes (possibly ``b""``).

        Raises modeenvoy.Error when the stream cannot be read; the output of the frames
        before the bad one is then the error's ``partial_output`` (and every later call
        raises the same error)."""
        return self._native.feed(data)

    def finish(self) -> bytes:
        """Ends the stream: the target's closing bytes (e.g. ``data: [DONE]``). Raises as
        ``feed`` does, with ``partial_output``."""
        return self._native.finish()
