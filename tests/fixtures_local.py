"""Local backend fixtures: the tiny model built once per session, a connected backend, a trained job."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "azml_magics" / "sample_data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny model, built into a session cache that child processes find through AZML_MAGICS_CACHE."""
    from azml_magics.backends.local import tiny_model

    cache = os.environ.get("AZML_MAGICS_TEST_CACHE") or str(tmp_path_factory.mktemp("azml-cache"))
    os.environ["AZML_MAGICS_CACHE"] = cache
    return tiny_model.ensure_tiny_model()


@pytest.fixture(scope="session")
def sample_data_files():
    from azml_magics.backends.base import DataFiles

    return DataFiles(
        train=str(SAMPLE / "train_sft.jsonl"), test=str(SAMPLE / "test_sft.jsonl"), fingerprint="sample-fp"
    )


def submit_tiny(backend, data, name: str | None = None, **parameters):
    """Submit a fine-tune of the tiny model the way the API does (spec -> merged parameters)."""
    from azml_magics.spec import finetune_from_dict, merge_parameters

    raw = {"model": "azml-tiny-phi3", "parameters": parameters}
    if name:
        raw["name"] = name
    spec = finetune_from_dict(raw)
    info = backend.get_model(spec.model)
    effective = merge_parameters(spec.parameters, info.model_defaults)
    return backend.submit(spec, effective, data, info, backend.check_compute(spec.compute, info))


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
    status = backend.wait(ref.name, timeout=240)
    assert status.state == "Completed", (status.error, "\n".join(backend.logs(ref.name).lines[-30:]))
    return backend, ref.name
