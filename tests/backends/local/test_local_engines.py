"""Which engine the local endpoint runs: the choice, the one-line refusals (on the server and, before any
process starts, on deploy), the vLLM engine's arguments, and what a started endpoint says."""

from __future__ import annotations

import json

import httpx
import pytest

from azml_magics.backends.local import endpoints
from azml_magics.backends.local.engines import ENGINE_CHOICES, EngineUnavailable, choose_engine, vllm_installed
from azml_magics.errors import AzmlError


@pytest.mark.parametrize("installed, gpu, expected", [
    (False, False, "transformers"), (True, False, "transformers"), (False, True, "transformers"), (True, True, "vllm"),
])
def test_auto_takes_vllm_only_where_it_can_run(installed, gpu, expected):
    assert choose_engine("auto", installed=installed, gpu=gpu) == expected


@pytest.mark.parametrize("name", ["transformers", "batcher"])
def test_the_cpu_engines_are_taken_as_asked(name):
    assert choose_engine(name, installed=True, gpu=True) == name
    assert choose_engine(name, installed=False, gpu=False) == name


def test_vllm_is_taken_where_it_can_run():
    assert choose_engine("vllm", installed=True, gpu=True) == "vllm"


@pytest.mark.parametrize("installed, gpu, words", [
    (False, False, "(the vllm package is not installed; this machine has no CUDA GPU): pip install 'azml-magics[vllm]'"),
    (False, True, "(the vllm package is not installed): pip install 'azml-magics[vllm]'"),
    (True, False, "(this machine has no CUDA GPU): run on a CUDA GPU"),
])
def test_vllm_is_refused_in_one_line_that_says_why(installed, gpu, words):
    with pytest.raises(EngineUnavailable) as caught:
        choose_engine("vllm", installed=installed, gpu=gpu)
    message = str(caught.value)
    assert words in message and "use engine transformers" in message and "\n" not in message


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
    assert "the vllm engine cannot run here (the vllm package is not installed" in str(caught.value)
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


# ----------------------------------------------------------------------------- deploy-time choice
def _registered(backend, folder):
    from azml_magics.backends.base import ModelRef

    return ModelRef(name="chat", version="1", id=str(folder))


def test_deploy_with_engine_vllm_is_refused_before_any_process_starts(local_backend, tiny_model_dir):
    from azml_magics.errors import SpecError
    from azml_magics.spec import DeploySpec

    with pytest.raises(SpecError) as caught:
        local_backend.deploy(_registered(local_backend, tiny_model_dir), DeploySpec(model="chat:1", endpoint="gpu-chat",
                                                                                     engine="vllm"))
    assert caught.value.path == "engine"
    assert str(caught.value).startswith("cannot deploy with engine vllm: the vllm engine cannot run here (")
    assert endpoints.list_endpoints(local_backend.home) == []
    assert not (local_backend.home / "endpoints").exists() or not any((local_backend.home / "endpoints").iterdir())


def test_an_unmerged_lora_adapter_is_refused_by_the_transformers_engine_with_the_fix(local_backend, tmp_path):
    from azml_magics.errors import SpecError
    from azml_magics.spec import DeploySpec

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "azml-tiny-phi3", "r": 8}))
    with pytest.raises(SpecError) as caught:
        local_backend.deploy(_registered(local_backend, adapter), DeploySpec(model="chat:1", endpoint="lora-chat"))
    message = str(caught.value)
    assert "chat:1 is a LoRA adapter (fine-tuned with merge_lora_weights: false)" in message
    assert "fine-tune with merge_lora_weights: true, or deploy it with engine: vllm on a CUDA GPU" in message
    assert endpoints.list_endpoints(local_backend.home) == []


def test_the_deploy_spec_checks_the_engine_name():
    from azml_magics.errors import SpecError
    from azml_magics.spec import check_deploy, parse_deploy

    assert parse_deploy("model: chat:1\nengine: VLLM").engine == "vllm"
    assert parse_deploy("model: chat:1").engine is None  # auto, and left out of the spec's table
    assert "engine" not in parse_deploy("model: chat:1").to_dict()
    checked = check_deploy("model: chat:1\nengine: vlm")
    assert [e.path for e in checked.errors] == ["engine"]
    assert "engine must be one of auto, transformers, batcher, vllm (got 'vlm'); did you mean 'vllm'?" in str(checked.errors[0])
    with pytest.raises(SpecError, match="line 2"):
        parse_deploy("model: chat:1\nengine: tgi")


def test_azure_refuses_a_local_engine_before_touching_the_workspace():
    from azml_magics.backends.azure import AzureBackend
    from azml_magics.backends.base import ModelRef
    from azml_magics.errors import SpecError
    from azml_magics.spec import DeploySpec

    backend = AzureBackend()  # not connected: the refusal must come before any call
    with pytest.raises(SpecError, match="engine: vllm is the local endpoint's setting; an Azure endpoint serves"):
        backend.deploy(ModelRef(name="m", version="1", id="azureml://m/1"), DeploySpec(model="m:1", engine="vllm"))


# ----------------------------------------------------------------------------- the vLLM engine's arguments
def test_vllm_sampling_is_exactly_greedy_or_the_requests_own():
    from azml_magics.backends.local.vllm_engine import sampling_kwargs
    from azml_magics.scoring import GenerationParams

    greedy = sampling_kwargs(GenerationParams(max_new_tokens=40, temperature=0.7, top_p=0.5, do_sample=False), [7, 2])
    assert greedy == {"n": 1, "max_tokens": 40, "temperature": 0.0, "top_p": 1.0, "stop_token_ids": [7, 2],
                      "detokenize": False}
    assert sampling_kwargs(GenerationParams(temperature=0), [2])["temperature"] == 0.0
    sampled = sampling_kwargs(GenerationParams(max_new_tokens=9, temperature=1.3, top_p=0.8), [2])
    assert (sampled["temperature"], sampled["top_p"], sampled["max_tokens"]) == (1.3, 0.8, 9)


def test_vllm_serves_a_merged_folder_as_it_is(tiny_model_dir):
    from azml_magics.backends.local.vllm_engine import engine_args, serving_source

    source = serving_source(tiny_model_dir)
    assert source == {"model": str(tiny_model_dir), "tokenizer": str(tiny_model_dir), "adapter": None, "rank": None}
    args = engine_args(source, slots=16, context=2048)
    assert args["model"] == str(tiny_model_dir) and args["max_num_seqs"] == 16 and args["max_model_len"] == 2048
    assert "enable_lora" not in args and 0 < args["gpu_memory_utilization"] < 1


@pytest.mark.parametrize("rank, bucket", [(4, 8), (8, 8), (12, 16), (64, 64), (100, 128)])
def test_vllm_serves_an_adapter_on_its_base_with_lora(tmp_path, rank, bucket):
    from azml_magics.backends.local.vllm_engine import engine_args, serving_source

    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "hub/base", "r": rank}))
    source = serving_source(tmp_path, base_dir="/models/base")
    assert (source["model"], source["tokenizer"], source["adapter"]) == ("/models/base", str(tmp_path), str(tmp_path))
    args = engine_args(source, slots=8, context=None)
    assert args["enable_lora"] is True and args["max_lora_rank"] == bucket and "max_model_len" not in args
    assert serving_source(tmp_path)["model"] == "hub/base"  # no folder resolved: the adapter's own name


def test_an_adapter_without_a_base_is_one_clear_error(tmp_path):
    from azml_magics.backends.local.vllm_engine import serving_source

    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 8}))
    with pytest.raises(ValueError, match="names no base model"):
        serving_source(tmp_path)
