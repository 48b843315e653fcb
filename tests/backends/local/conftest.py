"""Local backend fixtures: a connected backend, a trained job, and one real endpoint process per session
on the tiny model (``tiny_model_dir`` comes from the root conftest)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.paths import SAMPLE as SAMPLE_DIR

from .tiny_jobs import submit_tiny, wait_done

ENDPOINT_NAME = "test-endpoint"


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


@pytest.fixture(scope="session")
def sample_data_files():
    from azml_magics.backends.base import DataFiles

    return DataFiles(
        train=str(SAMPLE_DIR / "train_sft.jsonl"), test=str(SAMPLE_DIR / "test_sft.jsonl"), fingerprint="sample-fp"
    )


@pytest.fixture
def local_backend(tmp_path, tiny_model_dir):
    from azml_magics.backends.local import LocalBackend

    backend = LocalBackend()
    backend.connect({"home": str(tmp_path / "home")})
    yield backend
    from azml_magics.backends.local import jobs

    for name in jobs.list_names(backend.home):  # never leave a trainer running
        jobs.cancel(backend.home / "jobs" / name, grace=2)


@pytest.fixture(scope="module")
def trained_job(tmp_path_factory, tiny_model_dir, sample_data_files):
    """One completed tiny fine-tune, shared by the tests of a module: (backend, job name)."""
    from azml_magics.backends.local import LocalBackend

    backend = LocalBackend()
    backend.connect({"home": str(tmp_path_factory.mktemp("trained") / "home")})
    ref = submit_tiny(backend, sample_data_files, logging_steps=2)
    status = wait_done(backend, ref.name, timeout=240)
    assert status.state == "Completed", (status.error, "\n".join(backend.logs(ref.name).lines[-30:]))
    return backend, ref.name
