"""Fixtures for the local endpoint tests: one real endpoint process per session on the tiny model
(``tiny_model_dir`` comes from fixtures_local)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

ENDPOINT_NAME = "test-endpoint"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "azml_magics" / "sample_data"


@dataclass
class Served:
    home: Path
    endpoint: object  # azml_magics.backends.base.Endpoint
    key: str

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="session")
def served(tmp_path_factory, tiny_model_dir) -> Served:
    """A real endpoint server process on the tiny model, with small limits so tests can hit them."""
    from azml_magics.backends.local import endpoints

    home = tmp_path_factory.mktemp("endpoint-home")
    endpoint = endpoints.start_endpoint(
        home, ENDPOINT_NAME, tiny_model_dir, model_ref="azml-tiny-phi3:1",
        server_args=("--max-new-tokens", "512", "--max-body-bytes", "100000"),
    )
    try:
        yield Served(home, endpoint, endpoints.read_key(home, ENDPOINT_NAME))
    finally:
        endpoints.stop_endpoint(home, ENDPOINT_NAME)


@pytest.fixture
def notebook_request_file(tmp_path) -> Path:
    """``sample_score.json`` written exactly as the original notebook does, from a test_gen row."""
    row = json.loads((SAMPLE_DIR / "test_gen.jsonl").read_text().splitlines()[0])
    parameters = {"temperature": 0.6, "top_p": 0.9, "do_sample": True, "max_new_tokens": 200}
    test_json = {"input_data": {"input_string": [row["messages"]], "parameters": parameters}, "params": {}}
    path = tmp_path / "sample_score.json"
    with open(path, "w") as f:
        json.dump(test_json, f)
    return path
