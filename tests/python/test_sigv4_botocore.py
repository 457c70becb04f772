"""SigV4: our signer (protocol/sigv4.h, via the private binding _modeenvoy._sign_sigv4)
against botocore's SigV4Auth, byte for byte on the Authorization header, for Bedrock-shaped
requests: plain, with a session token, a non-ASCII path, query parameters, a model id with
':' and '/', and a request built by botocore's own bedrock-runtime client (so the wire path
encoding of a model ARN is botocore's, not ours).

botocore reads the clock in botocore.auth.get_current_datetime; the tests pin it.
"""

from __future__ import annotations

import datetime
import json

import pytest

from conftest import require_module

botocore = require_module("botocore")
modeenvoy = require_module("modeenvoy")

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest, AWSResponse  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
import botocore.session  # noqa: E402

from modeenvoy import _modeenvoy  # noqa: E402

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN//////////wEaCXVzLWVhc3QtMSJGMEQCIExample+token="
REGION = "us-east-1"
WHEN = datetime.datetime(2026, 3, 14, 15, 9, 26)  # naive UTC, as botocore uses
WHEN_UNIX = int(WHEN.replace(tzinfo=datetime.timezone.utc).timestamp())
HOST = "https://bedrock-runtime.us-east-1.amazonaws.com"
BODY = json.dumps({"messages": [{"role": "user", "content": [{"text": "héllo"}]}]}).encode()


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: WHEN)


def botocore_sign(method, url, headers, body, token=None, service="bedrock"):
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), service, REGION).add_auth(request)
    return request.headers


def our_sign(method, url, headers, body, token=None, service="bedrock"):
    added, canonical, _ = _modeenvoy._sign_sigv4(
        method, url, list(headers.items()), body, ACCESS_KEY, SECRET_KEY, token or "",
        REGION, service, WHEN_UNIX)
    return dict(added), canonical


def check(method, url, headers, body, token=None, service="bedrock"):
    theirs = botocore_sign(method, url, headers, body, token, service)
    ours, canonical = our_sign(method, url, headers, body, token, service)
    assert ours["authorization"] == theirs["Authorization"], canonical
    assert ours["x-amz-date"] == theirs["X-Amz-Date"]
    if token:
        assert ours["x-amz-security-token"] == theirs["X-Amz-Security-Token"]
    else:
        assert "x-amz-security-token" not in ours and "X-Amz-Security-Token" not in theirs
    # botocore adds no x-amz-content-sha256 header for bedrock; neither do we.
    assert "X-Amz-Content-SHA256" not in theirs and "x-amz-content-sha256" not in ours
    return ours


JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def test_plain_request():
    check("POST", f"{HOST}/model/amazon.nova-lite-v1%3A0/converse", JSON, BODY)


def test_session_token():
    ours = check("POST", f"{HOST}/model/amazon.nova-lite-v1%3A0/converse-stream", JSON, BODY,
                 token=TOKEN)
    assert "x-amz-security-token" in ours["authorization"]


def test_non_ascii_path_raw_and_encoded():
    check("POST", f"{HOST}/model/mödel-模型/converse", JSON, BODY)
    check("POST", f"{HOST}/model/m%C3%B6del-%E6%A8%A1%E5%9E%8B/converse", JSON, BODY)


def test_query_parameters():
    check("GET", f"{HOST}/foundation-models?byProvider=anthropic&byOutputModality=TEXT"
          "&maxResults=10&nextToken=a%2Fb%3D%3D&empty=", {}, b"")


def test_model_id_with_colon_and_slash():
    arn = ("arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
           "us.anthropic.claude-3-5-sonnet-20241022-v2%3A0")
    check("POST", f"{HOST}/model/{arn}/converse", JSON, BODY, token=TOKEN)
    # The same id left unencoded in the path.
    check("POST", f"{HOST}/model/us.anthropic.claude-3-5-haiku-20241022-v1:0/converse", JSON,
          BODY)


def test_other_port_messy_headers_and_empty_body():
    headers = {"Content-Type": "application/json", "X-Custom": "  a   b\tc  ",
               "User-Agent": "not signed"}
    check("POST", "http://127.0.0.1:8099/model/m/converse", headers, b"")
    check("POST", "https://bedrock-runtime.us-east-1.amazonaws.com:8443/a/./b/../c", headers, BODY)


class _Captured(Exception):
    pass


def test_request_built_by_botocores_bedrock_runtime_client():
    """botocore's client serializes the model ARN into the path itself; signing what it
    sends (minus its own auth headers) must give its Authorization."""
    session = botocore.session.get_session()
    client = session.create_client(
        "bedrock-runtime", region_name=REGION, aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY, aws_session_token=TOKEN)
    sent = {}

    def capture(request, **_):
        sent["url"] = request.url
        sent["headers"] = dict(request.headers.items())
        sent["body"] = request.body
        body = json.dumps({"output": {"message": {"role": "assistant",
                                                  "content": [{"text": "ok"}]}},
                           "stopReason": "end_turn",
                           "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                           "metrics": {"latencyMs": 1}}).encode()

        class Raw:
            def stream(self, *_a, **_k):
                yield body

        return AWSResponse(request.url, 200, {"content-type": "application/json"}, Raw())

    client.meta.events.register("before-send.bedrock-runtime.*", capture)
    model = ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
             "us.anthropic.claude-3-5-sonnet-20241022-v2:0")
    client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "hí"}]}])

    assert "/model/arn%3Aaws%3Abedrock%3A" in sent["url"], sent["url"]
    headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in sent["headers"].items()}
    theirs = headers.pop("Authorization")
    # botocore adds amz-sdk-* and content-length after signing: sign what it signed.
    signed = theirs.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert signed == ["content-type", "host", "x-amz-date", "x-amz-security-token"]
    headers = {k: v for k, v in headers.items() if k.lower() == "content-type"}
    body = sent["body"] if isinstance(sent["body"], bytes) else sent["body"].encode()
    ours, canonical = our_sign("POST", sent["url"], headers, body, token=TOKEN)
    assert ours["authorization"] == theirs, canonical
