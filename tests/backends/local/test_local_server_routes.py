"""The local endpoint over real HTTP: auth, the Azure and OpenAI contracts, limits, batching."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time

import httpx
import pytest

from azml_magics import scoring

USER = [{"role": "user", "content": "How many hours are in 5 days?"}]


def post(served, path: str, body=None, *, content=None, headers=None, key=True):
    base = served.endpoint.scoring_uri.rsplit("/", 1)[0]
    sent = {**(served.headers() if key else {}), **(headers or {})}
    return httpx.post(base + path, json=body, content=content, headers=sent, timeout=60)


def score(served, messages=USER, **parameters):
    parameters.setdefault("max_new_tokens", 8)
    body = {"input_data": {"input_string": messages, "parameters": parameters}, "params": {}}
    return post(served, "/score", body)


def test_health_needs_no_key_and_names_the_process(served):
    response = httpx.get(served.endpoint.scoring_uri.replace("/score", "/health"))
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok" and health["name"] == "test-endpoint"
    assert health["pid"] == served.endpoint.details["pid"]
    assert served.key not in response.text


def test_openapi_schema_documents_both_routes(served):
    schema = httpx.get(served.endpoint.scoring_uri.replace("/score", "/openapi.json")).json()
    assert {"/score", "/v1/chat/completions", "/health"} <= set(schema["paths"])
    body = schema["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["input_data"]["required"] == ["input_string"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}],
)
@pytest.mark.parametrize("path", ["/score", "/v1/chat/completions"])
def test_requests_without_the_right_key_get_401(served, path, headers):
    response = post(served, path, {"messages": USER}, headers=headers, key=False)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["error"]["message"]


def test_key_with_a_different_case_scheme_and_spaces_is_accepted(served):
    body = {"input_data": {"input_string": USER, "parameters": {"max_new_tokens": 2}}}
    response = post(served, "/score", body, headers={"Authorization": f"bearer  {served.key}"}, key=False)
    assert response.status_code == 200


def test_score_answers_with_the_azure_contract(served):
    response = score(served, do_sample=False)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"output", "message", "finish_reason", "usage", "model", "id"}
    assert isinstance(body["output"], str) and body["message"] == {"role": "assistant", "content": body["output"]}
    assert body["model"] == "azml-tiny-phi3:1"
    assert body["usage"]["completion_tokens"] <= 8 and body["usage"]["prompt_tokens"] > 5
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert response.headers["azureml-model-deployment"] == "demo"


def test_the_notebooks_request_file_works_unchanged(served, notebook_request_file):
    response = post(served, "/score", content=notebook_request_file.read_bytes(),
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["output"], str)
    assert body["finish_reason"] in ("stop", "length")
    assert 1 <= body["usage"]["completion_tokens"] <= 200


def test_several_conversations_in_one_request_get_one_reply_each(served):
    response = score(served, [USER, USER + [{"role": "assistant", "content": "120."}, *USER]], do_sample=False)
    body = response.json()
    assert response.status_code == 200 and len(body["output"]) == 2
    assert response.headers["x-azml-batch-size"] == "2"


def test_greedy_is_deterministic_and_max_new_tokens_is_honoured(served):
    first, second = (score(served, do_sample=False, max_new_tokens=5).json() for _ in range(2))
    assert first["output"] == second["output"]
    assert first["usage"]["completion_tokens"] <= 5
    if first["finish_reason"] == "length":
        assert first["usage"]["completion_tokens"] == 5


@pytest.mark.parametrize(
    "content, words",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"input_data": {"input_string": [{"role": "user"}]}}', "has no 'content'"),
        (b'{"input_data": {"input_string": [{"role": "user", "content": "hi"}], "parameters": {"max_new_tokens": 100000}}}',
         "over this endpoint's limit of 512"),
        (b'{"inputs": "hi"}', "unknown top-level key 'inputs'"),
    ],
)
def test_malformed_score_requests_get_400_with_the_expected_format(served, content, words):
    response = post(served, "/score", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert words in message
    assert scoring.EXPECTED_SCORE_FORMAT in message


def test_a_prompt_longer_than_the_context_is_a_400(served):
    long = [{"role": "user", "content": "word " * 3000}]
    response = score(served, long, max_new_tokens=500)
    assert response.status_code == 400
    assert "context of 2048 tokens" in response.json()["error"]["message"]


def test_a_role_order_the_template_refuses_is_a_400_not_a_500(served):
    response = post(served, "/v1/chat/completions", {"messages": [{"role": "tool", "content": "x"}]})
    assert response.status_code == 400
    assert "role must be one of" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/score", "/v1/chat/completions"])
def test_oversize_bodies_get_413(served, path):
    big = {"input_data": {"input_string": [{"role": "user", "content": "x" * 150_000}]}}
    response = post(served, path, big)
    assert response.status_code == 413
    assert "limit of 100000 bytes" in response.json()["error"]["message"]


def test_oversize_chunked_body_without_length_gets_413(served):
    def chunks():
        for _ in range(30):
            yield b"x" * 10_000

    response = post(served, "/score", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_fuzzed_bodies_never_get_a_500(served):
    bodies = [
        b"null", b"0", b'"s"', b"{}", b'{"input_data": null}', b'{"input_data": {"input_string": null}}',
        b'{"input_data": {"input_string": [[[]]]}}', b'{"input_data": {"input_string": [{"role": "user", "content": {}}]}}',
        b'{"input_data": {"input_string": [{"role": "user", "content": "hi"}], "parameters": {"temperature": 1e999}}}',
        b'{"input_data": {"input_string": [{"role": "user", "content": "hi"}], "parameters": {"top_p": NaN}}}',
        b'{"messages": null}', b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}',
        b'{"messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 2}',
        b'{"messages": [{"role": "user", "content": "hi"}], "temperature": "0"}', b"[" * 5000,
    ]
    statuses = set()
    for body in bodies:
        for path in ("/score", "/v1/chat/completions"):
            response = post(served, path, content=body, headers={"Content-Type": "application/json"})
            assert response.status_code < 500, (path, body[:60], response.text)
            assert "error" in response.json() or response.status_code == 200
            statuses.add(response.status_code)
    assert 400 in statuses
    assert httpx.get(served.endpoint.scoring_uri.replace("/score", "/health")).status_code == 200


def test_unknown_routes_and_methods_are_4xx(served):
    base = served.endpoint.scoring_uri.rsplit("/", 1)[0]
    assert httpx.get(base + "/score", headers=served.headers()).status_code == 405
    assert httpx.post(base + "/nope", headers=served.headers()).status_code == 404


def test_openai_client_non_streamed_and_streamed(served):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=served.endpoint.openai_base_url, api_key=served.key, max_retries=0)
    full = client.chat.completions.create(model="any", messages=USER, max_tokens=12, temperature=0)
    assert full.object == "chat.completion"
    assert full.usage.completion_tokens <= 12 and full.usage.prompt_tokens > 0
    chunks = list(client.chat.completions.create(
        model="any", messages=USER, max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content  # same greedy reply, streamed piece by piece
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [full.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served.endpoint.openai_base_url, api_key="wrong", max_retries=0).chat.completions.create(
            model="any", messages=USER
        )
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        client.chat.completions.create(model="any", messages=USER, n=2)


def test_stream_ends_with_done(served):
    body = {"messages": USER, "max_tokens": 4, "stream": True}
    with httpx.stream("POST", served.endpoint.openai_base_url + "/chat/completions", json=body,
                      headers=served.headers(), timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert all(json.loads(d)["object"] == "chat.completion.chunk" for d in data[:-1])


def test_concurrent_requests_are_batched_not_serialised(served):
    def one(_):
        return score(served, max_new_tokens=64, do_sample=True)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(16)))
    assert all(r.status_code == 200 for r in responses)
    sizes = [int(r.headers["x-azml-batch-size"]) for r in responses]
    assert max(sizes) >= 4, sizes


def test_health_answers_while_a_long_generation_runs(served):
    started = threading.Event()

    def long_request():
        started.set()
        return score(served, max_new_tokens=500, do_sample=True)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(long_request)
        started.wait()
        time.sleep(0.3)
        waits = []
        for _ in range(5):
            t = time.perf_counter()
            assert httpx.get(served.endpoint.scoring_uri.replace("/score", "/health")).status_code == 200
            waits.append(time.perf_counter() - t)
        assert future.result().status_code == 200
    assert max(waits) < 1.0, waits


def test_a_client_that_leaves_mid_stream_does_not_break_the_server(served):
    body = {"messages": USER, "max_tokens": 500, "stream": True}
    with httpx.stream("POST", served.endpoint.openai_base_url + "/chat/completions", json=body,
                      headers=served.headers(), timeout=60) as response:
        for line in response.iter_lines():
            if '"content"' in line:
                break  # hang up after the first piece
    assert score(served, max_new_tokens=4).status_code == 200
