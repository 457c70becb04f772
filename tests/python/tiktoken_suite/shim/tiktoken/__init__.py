"""modeenvoy under tiktoken's name: tests/python/test_tiktoken_suite.py puts this directory
first on sys.path so that tiktoken's own test suite imports modeenvoy as `tiktoken`."""

from modeenvoy.tokenizer import (  # noqa: F401
    Encoding,
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
    list_encoding_names,
)
