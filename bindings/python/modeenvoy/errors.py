"""The exception every modeenvoy call raises on failure."""

from __future__ import annotations

from typing import Optional

__all__ = ["Error"]


class Error(Exception):
    """A modeenvoy error.

    Attributes:
        message: human-readable text; names the field path for input errors.
        code: the status code name, e.g. ``"INVALID_ARGUMENT"``, ``"NOT_FOUND"``.
        status_code: the HTTP status a gateway answers with for this error (400, 404, 429...).
        param: the JSON field path the error is about, or ``None``.
        partial_output: bytes the failing call produced before it failed, which its return
            value would have carried: ``StreamTranslator.feed``/``finish`` put here the
            output of the frames before the bad one, so that the stream's output up to the
            error is the same whether the input came whole or in pieces. ``b""`` elsewhere.
    """

    def __init__(self, message: str, *, code: str = "UNKNOWN", status_code: int = 500,
                 param: Optional[str] = None, partial_output: bytes = b"") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code
        self.param = param
        self.partial_output = partial_output

    def __repr__(self) -> str:
        return (f"modeenvoy.Error({self.message!r}, code={self.code!r}, "
                f"status_code={self.status_code}, param={self.param!r})")
