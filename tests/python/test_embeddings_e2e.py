"""End to end: the official openai SDK's client.embeddings.create -> modeenvoy-gateway
(POST /v1/embeddings) -> the emulator speaking each embedding provider's API: openai,
azure_openai, gemini (batchEmbedContents), bedrock (Titan and Cohere models, SigV4-signed),
cohere (v2 /v2/embed) and ollama (/api/embed).

Expected vectors are computed here from the emulator's documented recipe
(examples/emulator/README.md, "Embeddings"), independently of the C++ code. The SDK asks
for base64 unless told otherwise and decodes it itself, so the default calls check the
gateway's own float32 encoding for the providers that only return floats.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess

import pytest

from conftest import (GATEWAY, binary, http_json, last_emulator_request, openai_client,
                      require_module, start_emulator, start_gateway)

openai = require_module("openai")

MASK = (1 << 64) - 1


def fnv1a(data: bytes) -> int:
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & MASK
    return h


def splitmix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK
    return z ^ (z >> 31)


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def expected_vector(text: str, dims: int) -> list[float]:
    h = fnv1a(text.encode())
    xs = []
    for i in range(dims):
        z = splitmix64((h + (i + 1) * 0x9E3779B97F4A7C15) & MASK)
        xs.append(2.0 * ((z >> 11) * 2.0 ** -53) - 1.0)
    norm = math.sqrt(sum(x * x for x in xs))  # in index order, as the emulator sums
    return [f32(x / norm) for x in xs]


def as_f32(values) -> list[float]:
    return [f32(v) for v in values]


# name -> (gateway model, the provider's default width, reports usage itself, dimensions
# the provider accepts or None)
PROVIDERS = {
    "openai": ("e-openai", 1536, True, 64),
    "azure": ("e-azure", 1536, True, 64),
    "gemini": ("e-gemini", 3072, False, 64),
    "titan": ("e-titan", 1024, True, 256),
    "bedrock-cohere": ("e-bedrock-cohere", 1024, False, None),
    "cohere": ("e-cohere", 1536, True, 256),
    "ollama": ("e-ollama", 768, True, 64),
}
BATCH = {name for name in PROVIDERS if name != "titan"}  # Titan: one inputText per call


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One emulator and one gateway for the module (starting them costs more than the tests)."""
    from conftest import Process
    started = []

    def start(args, **kwargs):
        p = Process([str(a) for a in args], **kwargs)
        started.append(p)
        return p

    tmp = tmp_path_factory.mktemp("embeddings")
    emu = start_emulator(start, "--usage-counter", "words")
    base = emu.base_url
    limited = {"x-emulator-status": "429", "x-emulator-retry-after": "7"}
    config = {
        "listen": {"address": "127.0.0.1", "port": 0},
        "providers": {
            "openai": {"type": "openai", "base_url": f"{base}/v1", "api_key": "sk-up"},
            "azure": {"type": "azure_openai", "base_url": base, "api_key": "az-key",
                      "api_version": "2024-10-21"},
            "gemini": {"type": "gemini", "base_url": f"{base}/v1beta", "api_key": "g-key"},
            "bedrock": {"type": "bedrock", "base_url": base, "region": "us-east-1",
                        "access_key_id": "AKIDEXAMPLE",
                        "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
            "cohere": {"type": "cohere", "base_url": base, "api_key": "co-key"},
            "ollama": {"type": "ollama", "base_url": base},
            "anthropic": {"type": "anthropic", "base_url": base, "api_key": "an-key"},
            "openai-limited": {"type": "openai", "base_url": f"{base}/v1", "api_key": "sk-up",
                               "headers": limited},
            "gemini-limited": {"type": "gemini", "base_url": f"{base}/v1beta", "api_key": "g",
                               "headers": limited},
            "bedrock-limited": {"type": "bedrock", "base_url": base, "region": "us-east-1",
                                "api_key": "bedrock-api-key", "headers": limited},
            "cohere-limited": {"type": "cohere", "base_url": base, "api_key": "co-key",
                               "headers": limited},
            "ollama-limited": {"type": "ollama", "base_url": base, "headers": limited},
            "cohere-scripted": {"type": "cohere", "base_url": base, "api_key": "co-key",
                                "headers": {"x-emulator-script": json.dumps(
                                    {"error": {"status": 503, "message": "overloaded now"}})}},
        },
        "models": {
            "e-openai": {"provider": "openai", "upstream_model": "text-embedding-3-small"},
            "e-azure": {"provider": "azure", "upstream_model": "emb-deployment"},
            "e-gemini": {"provider": "gemini", "upstream_model": "gemini-embedding-001"},
            "e-titan": {"provider": "bedrock", "upstream_model": "amazon.titan-embed-text-v2:0"},
            "e-bedrock-cohere": {"provider": "bedrock",
                                 "upstream_model": "cohere.embed-english-v3"},
            "e-cohere": {"provider": "cohere", "upstream_model": "embed-v4.0"},
            "e-ollama": {"provider": "ollama", "upstream_model": "nomic-embed-text"},
            "e-claude": {"provider": "anthropic", "upstream_model": "claude-sonnet-4-5"},
            "limited-openai": {"provider": "openai-limited",
                               "upstream_model": "text-embedding-3-small"},
            "limited-gemini": {"provider": "gemini-limited",
                               "upstream_model": "gemini-embedding-001"},
            "limited-titan": {"provider": "bedrock-limited",
                              "upstream_model": "amazon.titan-embed-text-v2:0"},
            "limited-cohere": {"provider": "cohere-limited", "upstream_model": "embed-v4.0"},
            "limited-ollama": {"provider": "ollama-limited", "upstream_model": "nomic-embed-text"},
            "scripted-cohere": {"provider": "cohere-scripted", "upstream_model": "embed-v4.0"},
        },
    }
    gw = start_gateway(start, tmp, config)
    yield emu, gw
    for p in started:
        p.stop()


def upstream_count(emu) -> int:
    status, stats = http_json("GET", f"{emu.base_url}/emulator/stats")
    assert status == 200
    return stats["requests"]


@pytest.fixture
def client(servers):
    return openai_client(servers[1])


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@pytest.mark.parametrize("encoding", ["float", "base64 (SDK default)"])
def test_single_input(client, name, encoding):
    model, width, reports_usage, _ = PROVIDERS[name]
    text = "hello embedding world"
    kwargs = {"encoding_format": "float"} if encoding == "float" else {}
    resp = client.embeddings.create(model=model, input=text, **kwargs)
    assert resp.object == "list"
    assert len(resp.data) == 1
    assert resp.data[0].index == 0 and resp.data[0].object == "embedding"
    assert as_f32(resp.data[0].embedding) == expected_vector(text, width)
    assert resp.usage.prompt_tokens == resp.usage.total_tokens
    extra = resp.usage.model_extra or {}
    if reports_usage:
        assert resp.usage.prompt_tokens == 3  # the emulator counts words
        assert "estimated" not in extra
    else:
        # The provider reports none: the gateway counted, and says so.
        assert extra.get("estimated") is True
        assert extra.get("estimation_method") in ("tokenizer", "word_count")
        assert resp.usage.prompt_tokens >= 3


@pytest.mark.parametrize("name", sorted(BATCH))
def test_batch_input_in_order(client, name):
    model, width, _, _ = PROVIDERS[name]
    texts = ["first text", "a second, longer text", "third"]
    resp = client.embeddings.create(model=model, input=texts)  # base64 by default
    assert [d.index for d in resp.data] == [0, 1, 2]
    for d, text in zip(resp.data, texts):
        assert as_f32(d.embedding) == expected_vector(text, width)
    floats = client.embeddings.create(model=model, input=texts, encoding_format="float")
    # JSON floats read as the nearest double to their shortest text: float32 of it is the
    # value base64 carried exactly.
    assert [as_f32(d.embedding) for d in floats.data] == [d.embedding for d in resp.data]


@pytest.mark.parametrize("name", sorted(n for n in PROVIDERS if PROVIDERS[n][3] is not None))
def test_dimensions(client, name):
    model, _, _, dims = PROVIDERS[name]
    resp = client.embeddings.create(model=model, input="short", dimensions=dims)
    assert as_f32(resp.data[0].embedding) == expected_vector("short", dims)


def test_raw_base64_is_float32_little_endian(servers):
    """The gateway's own base64 (gemini returns floats) read without the SDK."""
    import base64
    _, gw = servers
    status, body = http_json("POST", f"{gw.base_url}/v1/embeddings",
                             json.dumps({"model": "e-gemini", "input": "raw",
                                         "encoding_format": "base64", "dimensions": 8}),
                             {"content-type": "application/json"})
    assert status == 200, body
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert list(struct.unpack("<8f", raw)) == expected_vector("raw", 8)


def test_upstream_requests_are_each_providers_shape(client, servers):
    emu, _ = servers
    client.embeddings.create(model="e-gemini", input=["a", "b"], dimensions=32,
                             extra_body={"task_type": "RETRIEVAL_QUERY"})
    gem = last_emulator_request(emu, lambda t: t.endswith(":batchEmbedContents"))
    assert gem["target"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert json.loads(gem["body"]) == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]},
         "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 32} for t in ("a", "b")]}
    assert dict(gem["headers"])["x-goog-api-key"] == "g-key"

    client.embeddings.create(model="e-titan", input="one")
    titan = last_emulator_request(emu, lambda t: t.endswith("/invoke"))
    assert titan["target"] == "/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert json.loads(titan["body"]) == {"inputText": "one"}
    headers = dict(titan["headers"])
    # SigV4 covers the embeddings call: signed by the configured key, body hash included.
    assert headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/bedrock/aws4_request" in headers["authorization"]
    assert "x-amz-content-sha256" in headers["authorization"] or "x-amz-date" in headers

    client.embeddings.create(model="e-cohere", input=["x"])
    co = last_emulator_request(emu, lambda t: t == "/v2/embed")
    assert json.loads(co["body"]) == {"model": "embed-v4.0", "texts": ["x"],
                                      "input_type": "search_document",
                                      "embedding_types": ["float"]}

    client.embeddings.create(model="e-azure", input="x")
    az = last_emulator_request(emu, lambda t: "/embeddings" in t and t.startswith("/openai/"))
    assert az["target"] == "/openai/deployments/emb-deployment/embeddings?api-version=2024-10-21"
    assert dict(az["headers"])["api-key"] == "az-key"



def test_openai_compatible_targets_receive_unknown_fields(client, servers):
    emu, _ = servers
    # Passed through untouched; OpenAI itself (emulated) then refuses what it does not know,
    # and its 400 reaches the client.
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="e-openai", input="x", extra_body={"x_custom": {"k": 1}})
    assert "x_custom" in err.value.message
    oa = last_emulator_request(emu, lambda t: t == "/v1/embeddings")
    sent = json.loads(oa["body"])
    assert sent["model"] == "text-embedding-3-small"
    assert sent["x_custom"] == {"k": 1}
    assert sent["encoding_format"] == "base64"  # the SDK's default, passed to OpenAI


@pytest.mark.parametrize("model,extra,param,needle", [
    ("e-gemini", {"truncate": "END"}, "truncate", "not supported by gemini"),
    ("e-cohere", {"user": "u-1"}, "user", "not supported by cohere"),
    ("e-ollama", {"input": [[1, 2, 3]]}, "input", "not token ids"),
    ("e-titan", {"input": ["a", "b"]}, "input", "one text per call"),
    ("e-titan", {"dimensions": 100}, "dimensions", "256, 512 or 1024"),
    ("e-openai", {"encoding_format": "hex"}, "encoding_format", "\"hex\""),
])
def test_unsupported_field_is_a_400_naming_it(client, servers, model, extra, param, needle):
    emu, _ = servers
    before = upstream_count(emu)
    known = {"input", "dimensions", "encoding_format", "user"}
    kwargs = {"model": model, "input": "x", **{k: v for k, v in extra.items() if k in known}}
    unknown = {k: v for k, v in extra.items() if k not in known}
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(**kwargs, extra_body=unknown or None)
    assert err.value.status_code == 400
    assert err.value.body["param"] == param
    assert needle in err.value.message
    assert upstream_count(emu) == before  # refused by the gateway, never sent upstream


def test_provider_without_embeddings_is_a_clear_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="e-claude", input="x")
    msg = err.value.message
    assert err.value.body["param"] == "model"
    assert "e-claude" in msg and "anthropic" in msg and "embeddings" in msg


@pytest.mark.parametrize("model", ["limited-openai", "limited-gemini", "limited-titan",
                                   "limited-cohere", "limited-ollama"])
def test_provider_429_keeps_retry_after(client, model):
    with pytest.raises(openai.RateLimitError) as err:
        client.embeddings.create(model=model, input="x")
    assert err.value.status_code == 429
    assert err.value.response.headers.get("retry-after") == "7"
    assert err.value.body is not None and "message" in err.value.body


def test_scripted_error_reaches_the_client_in_openai_shape(client):
    """An emulator script on the upstream call (the provider's configured x-emulator-script
    header) works on the embeddings routes: Cohere's 503 comes back in OpenAI's shape."""
    with pytest.raises(openai.InternalServerError) as err:
        client.embeddings.create(model="scripted-cohere", input="x")
    assert err.value.status_code == 503
    assert "overloaded now" in err.value.message


def test_unknown_model_and_bad_body(client, servers):
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    _, gw = servers
    status, body = http_json("POST", f"{gw.base_url}/v1/embeddings",
                             json.dumps({"model": "e-openai", "input": ["a", 2]}),
                             {"content-type": "application/json"})
    assert status == 400
    assert body["error"]["param"] == "input[1]"


def test_default_config_serves_demo_embed(start_process, tmp_path):
    emu = start_emulator(start_process)
    text = subprocess.run([str(binary(GATEWAY)), "--print-default-config"], check=True,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    config = json.loads(text.replace("${EMULATOR_BASE_URL}", emu.base_url))
    assert config["models"]["demo-embed"]["provider"] == "builtin-emulator"
    gw = start_gateway(start_process, tmp_path, config)
    status, models = http_json("GET", f"{gw.base_url}/v1/models")
    assert status == 200
    assert "demo-embed" in [m["id"] for m in models["data"]]
    resp = openai_client(gw).embeddings.create(model="demo-embed", input="demo")
    assert as_f32(resp.data[0].embedding) == expected_vector("demo", 1536)
