"""The Azure backend's pure pieces: model cards, allow lists, parameter filtering, the pipeline job."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from azml_magics.backends.azure import deploy, jobs, modelcard, pipeline, remote, upload
from azml_magics.backends.base import ComputeInfo, ModelInfo
from azml_magics.errors import SpecError
from azml_magics.plan import merge_parameters

pytestmark = pytest.mark.azure

TODAY = dt.date(2026, 1, 1)
ALLOW = ["Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4"]


def card(**kw) -> ModelInfo:
    base = dict(name="Phi-3-mini-128k-instruct", version="13", id="azureml://registries/azureml/models/x/versions/13",
                today=TODAY)
    base.update(kw)
    return modelcard.model_info(**base)


def test_allow_lists_from_tags_literals_yaml_lists_and_properties():
    info = card(tags={"finetune_compute_allow_list": repr(ALLOW),
                      "inference_compute_allow_list": "[Standard_NC6s_v3, Standard_NC12s_v3]"})
    assert info.finetune_allow_list == ALLOW
    assert info.inference_allow_list == ["Standard_NC6s_v3", "Standard_NC12s_v3"]
    newer = card(properties={"finetune-recommended-sku": "Standard_NC24ads_A100_v4, Standard_ND96asr_v4",
                             "finetuning-tasks": "chat-completion"})
    assert newer.finetune_allow_list == ["Standard_NC24ads_A100_v4", "Standard_ND96asr_v4"]
    assert newer.tasks == ["chat-completion"] and newer.inference_allow_list is None
    system = card(system_metadata={"finetune_recommended_skus": ["Standard_NC96ads_A100_v4"]})
    assert system.finetune_allow_list == ["Standard_NC96ads_A100_v4"]


def test_model_defaults_parsed_with_literal_eval_never_eval():
    info = card(tags={"model_specific_defaults": "{'num_train_epochs': '1', 'learning_rate_min': '1e-6'}"})
    assert info.model_defaults == {"num_train_epochs": "1", "learning_rate_min": "1e-6"}
    hostile = card(tags={"model_specific_defaults": "__import__('os').system('echo hacked')"})
    assert hostile.model_defaults == {} and any("model_specific_defaults" in p for p in hostile.problems)
    assert card(tags={"model_specific_defaults": "[1, 2]"}).problems == [
        "tags.model_specific_defaults is not a mapping; no model defaults applied"]


def test_retired_deprecated_archived_and_future_dates():
    retired = card(tags={"FinetuneDeprecationDate": "2025-06-30", "FinetuneRetirementDate": "2025-08-30"})
    assert retired.deprecated == "fine-tuning retired on 2025-08-30"
    only_deprecated = card(tags={"FinetuneDeprecationDate": "2025-12-01", "FinetuneRetirementDate": "2026-03-01"})
    assert only_deprecated.deprecated == "fine-tuning deprecated on 2025-12-01"
    future = card(tags={"FinetuneDeprecationDate": "2027-01-01"})
    assert future.deprecated is None and "2027-01-01" in future.description
    note = card(properties={"deprecation": "Fine-tuning deprecation 2025-06-30, retirement 2025-08-30."})
    assert note.deprecated == "fine-tuning retired on 2025-08-30"
    assert card(properties={"isArchived": "True"}).archived
    assert card(stage="Archived").archived and not card(stage="Active").archived


def test_size_outside_allow_list_lists_the_allowed_sizes():
    info = card(tags={"finetune_compute_allow_list": repr(ALLOW)})
    with pytest.raises(SpecError) as err:
        modelcard.check_size("Standard_ND40rs_v2", info.finetune_allow_list, "fine-tune compute", info,
                             "set compute.size to")
    assert "Standard_ND40rs_v2" in str(err.value) and all(s in str(err.value) for s in ALLOW)
    assert modelcard.check_size("standard_nc24ads_a100_v4", info.finetune_allow_list, "x", info, "y") is None
    unchecked = modelcard.check_size("Anything", None, "fine-tune compute", info, "y")  # no list: said, not silent
    assert unchecked.startswith("Anything was not checked against an allow list")


def _effective(user, defaults, inputs):
    return merge_parameters(user, defaults, inputs, {"number_of_gpu_to_use_finetuning": 1})


def test_call_arguments_send_only_what_differs_from_the_component():
    inputs = set(pipeline_inputs_050())
    eff = _effective({"num_train_epochs": 3}, {"num_train_epochs": "1", "learning_rate_min": "1e-6",
                                                "learning_rate": "5e-6"}, inputs)
    assert eff.dropped_model_defaults == {"learning_rate_min": "1e-6"}
    model = card()
    call = pipeline.call_arguments(eff, inputs, model, ComputeInfo("gpu", "Standard_NC24ads_A100_v4", 1),
                                   {"train": "azureml:t:1", "test": "azureml:s:1"})
    assert call.values["num_train_epochs"] == 3  # the user wins over the model default
    assert call.values["learning_rate"] == 5e-6
    assert call.values["mlflow_model_path"] == model.id
    assert {call.values[k] for k in pipeline.COMPUTE_INPUTS} == {"gpu"}
    assert "lora_r" not in call.values  # a component default is the component's to apply
    assert call.files == {"train_file_path": "azureml:t:1", "test_file_path": "azureml:s:1"}


def pipeline_inputs_050():
    from azml_magics.pipeline_inputs import PIPELINE_INPUTS

    return set(PIPELINE_INPUTS)


def test_user_key_missing_from_the_fetched_component_is_refused():
    inputs = pipeline_inputs_050() - {"apply_ort"}
    with pytest.raises(SpecError, match="apply_ort"):
        merge_parameters({"apply_ort": "true"}, {}, inputs)


def test_build_job_has_the_notebooks_settings_and_output():
    from azure.ai.ml import Input, Output
    from azure.ai.ml.entities import CommandComponent

    component = CommandComponent(
        name="chat_completion_pipeline", version="1", command="echo ${{inputs.num_train_epochs}}",
        environment="azureml:env:1",
        inputs={"num_train_epochs": Input(type="integer"), "train_file_path": Input(type="uri_file"),
                "mlflow_model_path": Input(type="mlflow_model"), "compute_finetune": Input(type="string")},
        outputs={"mlflow_model_folder": Output(type="mlflow_model")},
    )
    call = pipeline.PipelineCall({"num_train_epochs": 3, "mlflow_model_path": "azureml://registries/r/models/m/versions/1",
                                  "compute_finetune": "gpu"}, {"train_file_path": "azureml:azml-train:abc"})
    job = pipeline.build_job(component, call, "m-ultrachat-bs1", {"k": "v"})
    assert job.settings.force_rerun is True and job.settings.continue_on_step_failure is False
    assert job.display_name == "m-ultrachat-bs1" and job.tags["k"] == "v"
    assert "trained_model" in job.outputs
    node = next(iter(job.jobs.values()))
    assert node.inputs["train_file_path"]._data.path == "azureml:azml-train:abc"
    with pytest.raises(SpecError, match="refused"):
        pipeline.build_job(component, pipeline.PipelineCall({"not_an_input": 1}, {}), "x")


def test_states_from_the_service_and_tracking_uri():
    assert jobs.job_state("CancelRequested") == "Finalizing"
    assert jobs.job_state("Completed") == "Completed" and jobs.job_state("Starting") == "Preparing"
    assert jobs.job_state("SomethingNew") == "Running"
    assert jobs.tracking_base("azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/s") == \
        "https://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/s"
    assert jobs.tracking_base(None) is None


def test_secrets_are_scrubbed_from_service_messages():
    text = "failed: Authorization: Bearer abc.def-123 and https://x/y?sig=SECRET&se=1 key=hunter2"
    out = remote.scrub(text)
    assert "abc.def-123" not in out and "SECRET" not in out and "hunter2" not in out


def test_upload_names_are_content_hashes(tmp_path):
    a = tmp_path / "train_sft.jsonl"
    a.write_text('{"messages": []}\n')
    b = tmp_path / "other" / "train_sft.jsonl"
    b.parent.mkdir()
    b.write_text('{"messages": []}\n')
    assert upload.asset_name(a) == "azml-train_sft"
    assert upload.file_hash(a) == upload.file_hash(b)
    b.write_text('{"messages": [1]}\n')
    assert upload.file_hash(a) != upload.file_hash(b)


def test_register_and_deploy_helpers():
    assert deploy.base_name("azureml://registries/azureml/models/Phi-3-mini-128k-instruct/versions/13") == \
        "Phi-3-mini-128k-instruct"

    class Spec:
        endpoint, instance_count, instance_type = "ep", 2, "Standard_NC6s_v3"

    line = deploy.cost_line(Spec)
    assert "2 x Standard_NC6s_v3" in line and "%azml_delete ep" in line


def test_importing_the_backend_imports_no_azure_sdk():
    code = ("import sys, azml_magics.backends.azure as a; a.AzureBackend();"
            "bad=[m for m in sys.modules if m.startswith(('azure.ai', 'azure.identity', 'torch', 'mlflow'))];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_ids_name_their_registry_and_version():
    from azml_magics.backends.azure.modelcard import parse_model_id

    assert parse_model_id("azureml://registries/azureml-meta/models/Llama-2-7b-chat/versions/24", None) == \
        ("azureml-meta", "Llama-2-7b-chat", "24")
    assert parse_model_id("Phi-3-mini-128k-instruct", "13") == (None, "Phi-3-mini-128k-instruct", "13")
