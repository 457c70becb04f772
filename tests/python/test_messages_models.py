"""Issue 11: GET /v1/models answers in Anthropic's list shape to clients that send
`anthropic-version` (Claude Code's model discovery, the anthropic SDK's models.list()) and in
OpenAI's list shape to everyone else (the openai SDK, unchanged).

The expected names are the configuration's own: its models plus its routes' match names,
sorted (the served names docs/providers.md lists).
"""

from __future__ import annotations

import pytest

from conftest import http_json, openai_client, require_module, start_gateway

anthropic = require_module("anthropic")

CLIENT_KEY = "sk-models-client"
SERVED = sorted(["alpha", "bravo", "charlie", "delta", "echo", "smart"])


@pytest.fixture
def gateway(start_process, tmp_path):
    config = {
        "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
        "filters": [{"type": "api_key_auth",
                     "config": {"keys": [{"key": CLIENT_KEY, "name": "tester"}]}}],
        "providers": {
            "oai": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
            "ant": {"type": "anthropic", "base_url": "http://127.0.0.1:9", "api_key": "k"},
        },
        "models": {name: {"provider": "ant" if name in ("alpha", "bravo") else "oai"}
                   for name in SERVED if name != "smart"},
        "routes": [{"match": {"model": "smart"}, "target": "alpha", "fallbacks": ["delta"]}],
    }
    return start_gateway(start_process, tmp_path, config)


def client(gateway):
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0,
                               timeout=30)


def test_anthropic_sdk_lists_every_served_model(gateway):
    page = client(gateway).models.list()
    assert all(isinstance(m, anthropic.types.ModelInfo) for m in page.data)
    assert [m.id for m in page.data] == SERVED
    assert all(m.type == "model" and m.display_name == m.id for m in page.data)
    assert page.data[0].created_at.year == 1970  # RFC 3339, parsed by the SDK
    assert page.has_more is False
    assert page.first_id == SERVED[0] and page.last_id == SERVED[-1]


def test_anthropic_pages_follow_after_id_and_before_id(gateway):
    c = client(gateway)
    first = c.models.list(limit=4)
    assert [m.id for m in first.data] == SERVED[:4]
    assert first.has_more is True and first.last_id == SERVED[3]
    # The SDK's auto-pagination walks after_id = last_id until has_more is false.
    assert [m.id for m in c.models.list(limit=4)] == SERVED
    second = c.models.list(limit=4, after_id=SERVED[3])
    assert [m.id for m in second.data] == SERVED[4:] and second.has_more is False
    before = c.models.list(limit=2, before_id=SERVED[3])
    assert [m.id for m in before.data] == SERVED[1:3] and before.has_more is True
    empty = c.models.list(after_id=SERVED[-1])
    assert empty.data == [] and empty.first_id is None and empty.last_id is None


def test_bad_paging_is_an_anthropic_invalid_request(gateway):
    with pytest.raises(anthropic.BadRequestError) as err:
        client(gateway).models.list(limit=0)
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert err.value.body["error"]["message"].startswith("limit")


def test_openai_clients_still_get_openais_list(gateway):
    models = openai_client(gateway, api_key=CLIENT_KEY).models.list()
    assert [m.id for m in models.data] == SERVED
    assert all(m.object == "model" for m in models.data)
    owners = {m.id: m.owned_by for m in models.data}
    assert owners["alpha"] == "ant" and owners["charlie"] == "oai"
    status, body = http_json("GET", f"{gateway.base_url}/v1/models",
                             headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert status == 200 and body["object"] == "list"
    status, body = http_json("GET", f"{gateway.base_url}/v1/models",
                             headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"})
    assert status == 200 and "object" not in body and body["data"][0]["type"] == "model"


def test_the_key_check_runs_for_both_shapes(gateway):
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway.base_url, api_key="wrong", max_retries=0,
                            timeout=30).models.list()
