"""Issue 11, the `openai_responses` provider type end to end, what every client's SDK gets
(the gateway and emulator of test_openai_responses_provider_e2e.py, its fixtures reused):

1. a max token limit below the Responses API's minimum (OpenAI's 400 "Expected a value >=
   16") is refused by the gateway before any provider call, with a 400 naming the field as
   each client sent it: `max_output_tokens` (Responses), `max_completion_tokens` (Chat
   Completions; its `max_tokens` is in the other file), `max_tokens` (Messages);
2. a Messages client whose provider stream fails before its first chunk gets no
   message_start, only the error, as Anthropic sends an error at the start of a stream.

Expected values come from the API references and the emulator's documented directives
(examples/emulator/README.md), not from the gateway's code.
"""

from __future__ import annotations

import json

import pytest

from conftest import require_module
from test_openai_responses_provider_e2e import (  # noqa: F401 (module fixtures)
    CLIENT_KEY, MODEL, emulator, gateway, oai, requests_served)

openai = require_module("openai")
anthropic = require_module("anthropic")


def anth(gateway):
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0,
                               timeout=30)


def test_responses_max_output_tokens_below_the_minimum_names_the_clients_field(gateway,
                                                                               emulator):
    before = requests_served(emulator)
    with pytest.raises(openai.BadRequestError) as err:
        oai(gateway).responses.create(model=MODEL, input="x", max_output_tokens=15)
    assert err.value.body["message"].startswith("max_output_tokens: must be >= 16")
    assert err.value.body["param"] == "max_output_tokens"
    assert requests_served(emulator) == before


def test_chat_max_completion_tokens_below_the_minimum_names_the_clients_field(gateway,
                                                                              emulator):
    before = requests_served(emulator)
    with pytest.raises(openai.BadRequestError) as err:
        oai(gateway).chat.completions.create(model=MODEL, max_completion_tokens=1,
                                             messages=[{"role": "user", "content": "x"}])
    assert err.value.body["message"].startswith("max_completion_tokens: must be >= 16")
    assert err.value.body["param"] == "max_completion_tokens"
    assert requests_served(emulator) == before


def test_messages_max_tokens_below_the_minimum_names_the_clients_field(gateway, emulator):
    before = requests_served(emulator)
    with pytest.raises(anthropic.BadRequestError) as err:
        anth(gateway).messages.create(model=MODEL, max_tokens=8,
                                      messages=[{"role": "user", "content": "x"}])
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert err.value.body["error"]["message"].startswith("max_tokens: must be >= 16")
    assert requests_served(emulator) == before


def test_the_minimum_itself_reaches_the_provider(gateway, emulator):
    r = oai(gateway).responses.create(model=MODEL, input="one two", max_output_tokens=16)
    assert r.status == "completed" and r.output_text == "one two"


QUOTA = {"status": 429, "type": "insufficient_quota", "code": "insufficient_quota",
         "message": "You exceeded your current quota."}


def test_messages_stream_failing_before_its_first_chunk_is_the_error_alone(gateway):
    seen = []
    with pytest.raises(anthropic.APIError) as err:
        for event in anth(gateway).messages.create(
                model=MODEL, max_tokens=100, stream=True,
                messages=[{"role": "user", "content": "one two\n@emulator " + json.dumps(
                    {"interrupt": {"after_chunks": 0, "error": QUOTA}})}]):
            seen.append(event.type)
    assert seen == []  # no message_start before the error
    assert "quota" in str(err.value)
