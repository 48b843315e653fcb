"""The chat box's Stop and footer against real HTTP servers, no mocks.

- The local endpoint (the tiny model, its OpenAI route streamed by server-sent events): Stop closes the
  HTTP stream and the server frees the row (``/health`` says nothing is running any more, long before
  the reply's token budget); a reply cut by max_new_tokens says "length" with the server's token count.
- An Azure endpoint's OpenAI-style route (the emulator's ``/v1/chat/completions``, paced by its
  ``stream_delay``), read by the product's EndpointClient: closing the stream on Stop is a disconnect the
  server sees (its record of the stream ends unfinished); a whole stream ends with the Reply.
- The Azure backend's own chat route is ``/score`` through the SDK: answered whole, with the usage and
  finish reason the emulator's server reports (as current Azure servers do).
"""

from __future__ import annotations

import time

import httpx
import pytest

from azml_magics import api
from azml_magics.scoring import GenerationParams, Reply
from azml_magics.ui.chat import ChatBox

NAME = "routes-ep"


def _until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture(scope="module")
def local_endpoint(tmp_path_factory, tiny_model_dir):
    from azml_magics.backends.local import endpoints

    home = tmp_path_factory.mktemp("routes") / "home"
    endpoint = endpoints.start_endpoint(home, NAME, tiny_model_dir, model_ref="azml-tiny-phi3:1")
    session = api.Session(home=home)
    session.connect("local")
    yield session, endpoint.scoring_uri.removesuffix("/score") + "/health"
    session.backend.close()
    endpoints.stop_endpoint(home, NAME)


@pytest.mark.slow
def test_stop_closes_the_local_stream_and_the_server_frees_the_row(local_endpoint):
    session, health = local_endpoint
    box = ChatBox(session, NAME, GenerationParams(max_new_tokens=1000, temperature=1.5, top_p=1.0))
    assert box.max_tokens == 1024  # read from the endpoint's /health
    for attempt in range(5):  # the random tiny model may end a reply at once: ask again
        box.clear()
        box._start(f"Tell me a very long story, take {attempt}.")
        _until(lambda: len(box.turns[-1].content) > 20 or not box.busy)
        if box.busy:
            break
    else:
        pytest.fail("the tiny model ended every reply within 20 characters")
    before = httpx.get(health).json()["cancelled"]
    box.stop()
    box.wait(30)
    reply = box.turns[-1]
    assert reply.stopped and "stopped by you" in reply.footer and "tokens not reported" in reply.footer
    # the server saw the stream close and cancelled the row mid-generation (a row that ran to its end
    # is not counted); nothing is left running
    assert _until(lambda: httpx.get(health).json()["cancelled"] == before + 1, timeout=10)
    assert httpx.get(health).json()["running"] == 0


@pytest.mark.slow
def test_a_reply_cut_by_max_new_tokens_says_length_with_the_servers_count(local_endpoint):
    session, _health = local_endpoint
    box = ChatBox(session, NAME, GenerationParams(max_new_tokens=3, do_sample=False), threaded=False)
    finals = []
    for prompt in ("Hello there", "What is LoRA?", "Name a city.", "Count to ten."):
        pieces = list(session.stream_chat(NAME, [{"role": "user", "content": prompt}], box.params))
        finals.append(pieces[-1])
        assert isinstance(pieces[-1], Reply) and pieces[-1].text == "".join(pieces[:-1])
        if pieces[-1].finish_reason == "length":
            break
    final = finals[-1]
    assert final.finish_reason == "length" and final.completion_tokens == 3 and final.prompt_tokens > 0
    box.send(prompt)
    footer = box.turns[-1].footer
    assert footer.startswith("3 tokens · ") and "tokens/s" in footer and "finish: length (cut at max_new_tokens)" in footer
    box.max_new_tokens.value = 200
    box.send(prompt)
    reply = box.turns[-1]
    if "finish: length" not in reply.footer:  # ended by itself: the end-of-turn token counts, as the server says
        assert "finish: stop" in reply.footer and "tokens · " in reply.footer


@pytest.fixture
def azure_endpoint(azure_emulator):
    """An emulator endpoint ``chat-ep`` with deployment ``demo`` taking all traffic: (scoring URI, key)."""
    emu = azure_emulator
    base = (f"{emu.base_url}/subscriptions/{emu.subscription_id}/resourceGroups/{emu.resource_group}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{emu.workspace}/onlineEndpoints/chat-ep")

    def arm(method, path="", body=None):
        response = httpx.request(method, f"{base}{path}?api-version=2023-04-01-preview", json=body,
                                 verify=str(emu.tls.ca_bundle), headers={"Authorization": "Bearer emulator-static-token"})
        response.raise_for_status()
        return response.json()

    arm("PUT", body={"location": "eastus", "properties": {"authMode": "Key"}})
    arm("PUT", "/deployments/demo", {"location": "eastus", "sku": {"name": "Default", "capacity": 1}, "properties": {
        "endpointComputeType": "Managed", "instanceType": "Standard_NC6s_v3",
        "model": "azureml://registries/azureml/models/Phi-4/versions/8"}})
    ep = arm("PUT", body={"location": "eastus", "properties": {"authMode": "Key", "traffic": {"demo": 100}}})
    return ep["properties"]["scoringUri"], arm("POST", "/listKeys")["primaryKey"]


@pytest.mark.azure
def test_stop_closes_the_azure_openai_route_stream(azure_emulator, azure_endpoint):
    from azml_magics.backends.local.client import EndpointClient

    uri, key = azure_endpoint
    azure_emulator.faults.stream_delay = 0.2
    client = EndpointClient(uri, key, openai_base_url=uri.removesuffix("/score") + "/v1", deployment="demo")
    user = [{"role": "user", "content": "Please tell me all about sourdough bread and how to bake it at home."}]
    try:
        stream = client.stream_chat(user, GenerationParams(max_new_tokens=100))
        pieces = [next(stream) for _ in range(3)]
        assert all(isinstance(p, str) for p in pieces)
        stream.close()  # what the chat box's Stop does
        streams = azure_emulator.state.streams
        assert _until(lambda: streams and streams[-1].get("ended"), timeout=10)
        record = streams[-1]
        assert record["finished"] is False and record["sent"] < record["words"]
        time.sleep(0.5)
        assert record["sent"] < record["words"]  # nothing more was generated after the disconnect

        azure_emulator.faults.stream_delay = 0.0  # a whole stream: the text, then the finished Reply
        whole = list(client.stream_chat(user, GenerationParams(max_new_tokens=5)))
        final = whole[-1]
        assert isinstance(final, Reply) and final.text == "".join(whole[:-1])
        assert final.finish_reason == "length" and final.completion_tokens == 5
        assert azure_emulator.state.streams[-1]["finished"] is True
    finally:
        client.close()


@pytest.mark.azure
def test_the_azure_backends_score_route_reports_usage_in_the_footer(azure_emulator, azure_endpoint, tmp_path):
    session = api.Session(home=tmp_path / "home")
    session.connect("azure", subscription_id=azure_emulator.subscription_id,
                    resource_group=azure_emulator.resource_group, workspace_name=azure_emulator.workspace)
    box = ChatBox(session, "chat-ep", GenerationParams(max_new_tokens=4), threaded=False, max_tokens=1024)
    box.send("What is a sourdough starter, in short?")
    reply = box.turns[-1]
    assert reply.content and len(reply.content.split()) == 4
    assert reply.footer.startswith("4 tokens · ") and "finish: length" in reply.footer
