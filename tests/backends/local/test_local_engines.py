"""Which engine the local endpoint runs: the choice, the one-line refusals, and what a started endpoint says."""

from __future__ import annotations

import httpx
import pytest

from azml_magics.backends.local import endpoints
from azml_magics.backends.local.engines import ENGINE_CHOICES, EngineUnavailable, choose_engine, vllm_installed
from azml_magics.errors import AzmlError


@pytest.mark.parametrize("installed, gpu", [(False, False), (True, False), (False, True), (True, True)])
def test_auto_runs_continuous_batching_on_transformers(installed, gpu):
    # with vllm and a GPU too: this endpoint has no vllm engine yet, and auto never picks what cannot run
    assert choose_engine("auto", installed=installed, gpu=gpu) == "transformers"


@pytest.mark.parametrize("name", ["transformers", "batcher"])
def test_the_cpu_engines_are_taken_as_asked(name):
    assert choose_engine(name, installed=False, gpu=False) == name


@pytest.mark.parametrize("installed, gpu, words", [
    (False, False, "yet (the vllm package is not installed; this machine has no CUDA GPU); use"),
    (False, True, "yet (the vllm package is not installed); use"),
    (True, False, "yet (this machine has no CUDA GPU); use"),
    (True, True, "not built into the local endpoint yet; use"),
])
def test_vllm_is_refused_in_one_line_that_says_why(installed, gpu, words):
    with pytest.raises(EngineUnavailable) as caught:
        choose_engine("vllm", installed=installed, gpu=gpu)
    message = str(caught.value)
    assert words in message and "--engine transformers" in message and "\n" not in message


def test_an_unknown_engine_names_the_choices():
    with pytest.raises(EngineUnavailable, match="unknown engine 'tgi'; choose one of auto, transformers"):
        choose_engine("tgi")
    assert ENGINE_CHOICES == ("auto", "transformers", "batcher", "vllm")


def test_this_machine_has_no_vllm():
    """What the next test relies on: the extra is not installed here (nor a GPU)."""
    assert not vllm_installed()


def test_an_endpoint_asked_for_vllm_without_the_extra_fails_to_start_with_that_line(tmp_path, tiny_model_dir):
    with pytest.raises(AzmlError) as caught:
        endpoints.start_endpoint(tmp_path, "wants-vllm", tiny_model_dir, model_ref="tiny:1",
                                 server_args=("--engine", "vllm"))
    assert "the vllm engine is not built into the local endpoint yet (the vllm package is not installed" in str(caught.value)
    assert endpoints.list_endpoints(tmp_path) == []  # nothing left behind


@pytest.mark.parametrize("engine", ["auto", "batcher"])
def test_a_started_endpoint_reports_its_engine(tmp_path, tiny_model_dir, engine):
    ep = endpoints.start_endpoint(tmp_path, f"engine-{engine}", tiny_model_dir, model_ref="tiny:1",
                                  server_args=("--engine", engine))
    try:
        expected = "transformers" if engine == "auto" else engine
        assert ep.details["engine"] == expected
        assert endpoints.get_endpoint(tmp_path, f"engine-{engine}").details["engine"] == expected
        assert httpx.get(ep.scoring_uri.replace("/score", "/health"), timeout=10).json()["engine"] == expected
    finally:
        endpoints.stop_endpoint(tmp_path, f"engine-{engine}")
