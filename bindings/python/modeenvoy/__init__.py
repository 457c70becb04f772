"""modeenvoy: the data plane of an AI/LLM gateway, from Python.

    import modeenvoy
    enc = modeenvoy.get_encoding("o200k_base")      # tiktoken-compatible
    req = modeenvoy.parse_chat_request(body)         # validated OpenAI chat request
"""

from . import _modeenvoy
from .errors import Error

_modeenvoy._set_error_class(Error)

from .protocol import *  # noqa: E402,F401,F403
from .protocol import __all__ as _protocol_all  # noqa: E402
from .translate import (  # noqa: E402
    StreamTranslator,
    dialect_names,
    translate_request,
    translate_response,
)
from .tokenizer import (  # noqa: E402
    Encoding,
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
    list_encoding_names,
    load_encoding,
    piece_cache_bytes,
    piece_cache_stats,
    pretokenizer_mode,
    set_piece_cache_bytes,
    set_pretokenizer_mode,
)
from .context import (  # noqa: E402
    ContextConflictError,
    ContextStore,
    ContextValueError,
    fit_context,
)

__version__ = "0.1.0"
__all__ = ["Error", "Encoding", "StreamTranslator", "dialect_names", "translate_request",
           "translate_response", "encoding_for_model", "encoding_name_for_model", "get_encoding",
           "list_encoding_names", "load_encoding", "piece_cache_bytes", "piece_cache_stats",
           "set_piece_cache_bytes", "pretokenizer_mode", "set_pretokenizer_mode",
           *_protocol_all,
           "ContextConflictError", "ContextStore", "ContextValueError", "fit_context"]
