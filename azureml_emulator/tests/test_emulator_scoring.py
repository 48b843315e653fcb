"""The scoring URI: ``/score`` checked with the product's contract (azml_magics.scoring) and the
OpenAI-style ``/v1/chat/completions`` (plain and streamed), read with the real ``openai`` client."""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = pytest.mark.azure

MODEL = "azureml://registries/azureml/models/Phi-4/versions/8"
NOTEBOOK_REQUEST = {"input_data": {
    "input_string": [{"role": "user", "content": "What is a sourdough starter?"}],
    "parameters": {"temperature": 0.6, "top_p": 0.9, "do_sample": True, "max_new_tokens": 200}}}


def _arm(emu, method: str, path: str, body: dict | None = None) -> httpx.Response:
    url = (f"{emu.base_url}/subscriptions/{emu.subscription_id}/resourceGroups/{emu.resource_group}/providers/"
           f"Microsoft.MachineLearningServices/workspaces/{emu.workspace}/{path}?api-version=2023-04-01-preview")
    response = httpx.request(method, url, json=body, verify=str(emu.tls.ca_bundle),
                             headers={"Authorization": "Bearer emulator-static-token"})
    response.raise_for_status()
    return response


@pytest.fixture
def endpoint(azure_emulator):
    """An endpoint with deployment ``demo`` taking all traffic: (scoring URI, key)."""
    emu = azure_emulator
    _arm(emu, "PUT", "onlineEndpoints/chat-ep", {"location": "eastus", "properties": {"authMode": "Key"}})
    _arm(emu, "PUT", "onlineEndpoints/chat-ep/deployments/demo", {
        "location": "eastus", "sku": {"name": "Default", "capacity": 1},
        "properties": {"endpointComputeType": "Managed", "instanceType": "Standard_NC6s_v3", "model": MODEL}})
    ep = _arm(emu, "PUT", "onlineEndpoints/chat-ep", {"location": "eastus", "properties": {
        "authMode": "Key", "traffic": {"demo": 100}}}).json()
    key = _arm(emu, "POST", "onlineEndpoints/chat-ep/listKeys").json()["primaryKey"]
    return ep["properties"]["scoringUri"], key


def _score(emu, uri: str, key: str | None, body, **headers) -> httpx.Response:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(uri, json=body, headers=headers, verify=str(emu.tls.ca_bundle))


def test_score_answers_like_a_chat_completion_deployment(azure_emulator, endpoint):
    uri, key = endpoint
    reply = _score(azure_emulator, uri, key, NOTEBOOK_REQUEST)
    assert reply.status_code == 200
    body = reply.json()
    assert "What is a sourdough starter?" in body["output"] and body["model"] == "demo"
    assert body["finish_reason"] == "stop" and body["usage"]["completion_tokens"] == len(body["output"].split())
    # the notebook's file holds a list of conversations: one reply each
    batched = {"input_data": {"input_string": [[{"role": "user", "content": "one"}],
                                               [{"role": "user", "content": "two"}]]}}
    outputs = _score(azure_emulator, uri, key, batched).json()["output"]
    assert len(outputs) == 2 and outputs[0].endswith("one") and outputs[1].endswith("two")
    short = json.loads(json.dumps(NOTEBOOK_REQUEST))
    short["input_data"]["parameters"]["max_new_tokens"] = 3
    cut = _score(azure_emulator, uri, key, short).json()
    assert len(cut["output"].split()) == 3 and cut["finish_reason"] == "length"


@pytest.mark.parametrize("body, problem", [
    ({"input_data": {"input_string": "hello"}}, "input_string"),
    ({"input_data": {"input_string": [{"role": "robot", "content": "hi"}]}}, "role"),
    ({"inputs": {"input_string": []}}, "unknown top-level key"),
    ({"input_data": {"input_string": [{"role": "user", "content": "hi"}], "parameters": {"top_k": 5}}}, "top_k"),
])
def test_malformed_score_request_gets_400_echoing_the_expected_format(azure_emulator, endpoint, body, problem):
    from azml_magics import scoring

    uri, key = endpoint
    reply = _score(azure_emulator, uri, key, body)
    assert reply.status_code == 400
    message = scoring.error_message(reply.json())
    assert problem in message and scoring.EXPECTED_SCORE_FORMAT in message


def test_score_routing_and_auth_like_the_service(azure_emulator, endpoint):
    emu = azure_emulator
    uri, key = endpoint
    assert _score(emu, uri, None, NOTEBOOK_REQUEST).status_code == 401
    assert _score(emu, uri, "wrong-key", NOTEBOOK_REQUEST).status_code == 401
    assert _score(emu, uri, key, NOTEBOOK_REQUEST, **{"azureml-model-deployment": "nope"}).status_code == 404
    assert _score(emu, uri, key, NOTEBOOK_REQUEST, **{"azureml-model-deployment": "demo"}).status_code == 200
    _arm(emu, "PUT", "onlineEndpoints/chat-ep", {"location": "eastus", "properties": {
        "authMode": "Key", "traffic": {"demo": 0}}})
    assert _score(emu, uri, key, NOTEBOOK_REQUEST).status_code == 424


def _openai(emu, uri: str, key: str):
    import openai

    base = uri.removesuffix("/score") + "/v1"
    return openai.OpenAI(base_url=base, api_key=key, http_client=httpx.Client(verify=str(emu.tls.ca_bundle)))


def test_openai_chat_completions_plain_and_streamed(azure_emulator, endpoint):
    uri, key = endpoint
    client = _openai(azure_emulator, uri, key)
    messages = [{"role": "user", "content": "Name a bread."}]
    whole = client.chat.completions.create(model="demo", messages=messages, max_tokens=50)
    text = whole.choices[0].message.content
    assert "Name a bread." in text and whole.choices[0].finish_reason == "stop"
    assert whole.usage.completion_tokens == len(text.split())

    stream = client.chat.completions.create(model="demo", messages=messages, max_tokens=50, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    with httpx.stream("POST", uri.removesuffix("/score") + "/v1/chat/completions", verify=str(azure_emulator.tls.ca_bundle),
                      headers={"Authorization": f"Bearer {key}"},
                      json={"messages": messages, "stream": True}) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        events = [line for line in raw.iter_lines() if line]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)


def test_openai_chat_refuses_what_it_cannot_honour(azure_emulator, endpoint):
    import openai

    from azml_magics import scoring

    uri, key = endpoint
    client = _openai(azure_emulator, uri, key)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}], n=2)
    assert "n must be 1" in str(err.value) and scoring.EXPECTED_CHAT_FORMAT in str(err.value)
    with pytest.raises(openai.AuthenticationError):
        _openai(azure_emulator, uri, "wrong").chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.slow
def test_real_replies_from_the_tiny_model_when_trained_on_uploaded_data(azure_emulator, tmp_path):
    """Opt-in (fault real_replies): the notebook's deployment of a model registered from a job whose
    training file is in blob storage answers with the local tiny model; a registry model still gets
    the deterministic reply."""
    from azureml_emulator.notebook.runner import run_cells

    emu = azure_emulator
    emu.faults.model_specific_defaults = {"apply_lora": "true", "num_train_epochs": "1"}
    emu.faults.job_duration = 2.0
    emu.faults.real_replies = True
    nb = run_cells(emu, tmp_path, until="invoke")
    reply = json.loads(nb.namespace["response"])
    assert "emulated reply" not in reply["output"] and reply["usage"]["completion_tokens"] >= 1

    name = nb.namespace["online_endpoint_name"]
    uri = _arm(emu, "GET", f"onlineEndpoints/{name}").json()["properties"]["scoringUri"]
    key = _arm(emu, "POST", f"onlineEndpoints/{name}/listKeys").json()["primaryKey"]
    greedy = {"input_data": {"input_string": [{"role": "user", "content": "How do I keep a starter alive?"}],
                             "parameters": {"do_sample": False, "max_new_tokens": 12}}}
    first, second = (_score(emu, uri, key, greedy).json() for _ in range(2))
    assert first["output"] == second["output"] and "emulated reply" not in first["output"]
    assert first["usage"]["completion_tokens"] <= 12

    _arm(emu, "PUT", f"onlineEndpoints/{name}/deployments/registry", {
        "location": "eastus", "sku": {"name": "Default", "capacity": 1},
        "properties": {"endpointComputeType": "Managed", "instanceType": "Standard_NC6s_v3", "model": MODEL}})
    other = _score(emu, uri, key, greedy, **{"azureml-model-deployment": "registry"}).json()
    assert other["output"].startswith("(emulated reply from registry)")
