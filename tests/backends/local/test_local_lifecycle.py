"""The local backend's whole story: trained job -> register -> deploy -> score -> chat -> delete."""

from __future__ import annotations

import json

import pytest

from azml_magics.scoring import GenerationParams
from azml_magics.spec import DeploySpec
from tests.paths import SAMPLE

pytestmark = pytest.mark.slow  # trains (module fixture) and starts a real endpoint



def test_register_deploy_score_chat_delete(trained_job):
    backend, job = trained_job
    model = backend.register(job, name="lifecycle-model")
    endpoint = backend.deploy(model, DeploySpec(model=f"{model.name}:{model.version}", endpoint="lifecycle-ep"))
    try:
        assert endpoint.scoring_uri.startswith("http://127.0.0.1:")
        assert [e.name for e in backend.list_endpoints()] == ["lifecycle-ep"]
        row = json.loads((SAMPLE / "test_gen.jsonl").read_text().splitlines()[0])
        request = {  # the original notebook's request file
            "input_data": {
                "input_string": [row["messages"][:1]],
                "parameters": {"temperature": 0.6, "top_p": 0.9, "do_sample": True, "max_new_tokens": 20},
            },
            "params": {},
        }
        response = backend.invoke("lifecycle-ep", request)
        assert isinstance(response["output"], str)
        pieces = list(backend.stream_chat("lifecycle-ep", [{"role": "user", "content": "Hello"}],
                                          GenerationParams(max_new_tokens=10, do_sample=False)))
        assert all(isinstance(p, str) for p in pieces[:-1])  # the text, then the finished Reply
        assert pieces[-1].text == "".join(pieces[:-1]) and pieces[-1].finish_reason in ("stop", "length")
        assert backend.get_endpoint("lifecycle-ep").state == "Succeeded"
    finally:
        backend.delete_endpoint("lifecycle-ep")
    assert backend.list_endpoints() == []
