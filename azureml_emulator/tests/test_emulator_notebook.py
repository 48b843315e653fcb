"""The seed notebook's own sequence of SDK calls, unmodified apart from the connection, against the
emulator: it fails where Azure fails (model_specific_defaults with learning_rate_min) and, with the
older tag, runs to the end: compute, upload, pipeline, stream, register, endpoint, deploy, invoke, delete.
"""

from __future__ import annotations

import json

import pytest

from azureml_emulator.notebook.runner import run_cells

pytestmark = pytest.mark.azure

OLDER_DEFAULTS = {"apply_deepspeed": "true", "deepspeed_stage": "2", "apply_lora": "true",
                  "ignore_mismatched_sizes": "false", "num_train_epochs": "1", "save_total_limit": "1"}


def test_notebook_fails_like_azure_when_model_defaults_carry_non_inputs(azure_emulator, tmp_path):
    from azure.ai.ml.exceptions import UnexpectedKeywordError

    with pytest.raises(UnexpectedKeywordError, match="learning_rate_min"):
        run_cells(azure_emulator, tmp_path, until="pipeline")
    routes = [r["route"] for r in azure_emulator.requests()]
    assert "registry_component_versions_list" in routes  # components.get(label="latest")
    assert "job_create" not in routes  # nothing submitted, as on Azure: the SDK refuses the call


@pytest.mark.slow
def test_notebook_runs_end_to_end(azure_emulator, tmp_path):
    azure_emulator.faults.model_specific_defaults = OLDER_DEFAULTS
    nb = run_cells(azure_emulator, tmp_path)
    log = azure_emulator.requests()
    routes = [r["route"] for r in log]

    # the order of the notebook's service calls
    order = ["registry_discovery", "registry_model_versions_list", "compute_get", "compute_create", "vm_sizes",
             "registry_component_versions_list", "datastore_secrets", "job_create", "run_details", "model_create",
             "endpoint_create", "deployment_create", "endpoint_keys", "score", "endpoint_delete"]
    positions = [routes.index(name) for name in order]
    assert positions == sorted(positions), list(zip(order, positions))

    job = next(r for r in log if r["route"] == "job_create")["json"]["properties"]
    step = job["jobs"]["chat_completion_pipeline"]
    assert job["experimentName"] == "chat_completion_Phi-3-mini-4k-instruct"
    assert job["settings"]["force_rerun"] is True and job["settings"]["continue_on_step_failure"] is False
    assert step["componentId"] == "azureml://registries/azureml/components/chat_completion_pipeline/versions/0.0.82"
    assert step["inputs"]["num_train_epochs"]["value"] == "1"  # the model default overrode the user's 3
    assert step["inputs"]["number_of_gpu_to_use_finetuning"]["value"] == "1"
    assert step["inputs"]["compute_finetune"]["value"] == "gpu-cluster-big"
    assert step["inputs"]["train_file_path"]["uri"].startswith("azureml://datastores/workspaceblobstore/paths/")
    assert "trained_model" in job["outputs"]

    compute = next(r for r in log if r["route"] == "compute_create")["json"]["properties"]["properties"]
    assert compute["vmSize"] == "Standard_NC24ads_A100_v4" and compute["scaleSettings"]["maxNodeCount"] == 2

    model = next(r for r in log if r["route"] == "model_create")
    assert model["json"]["properties"]["modelUri"].endswith("/outputs/trained_model")
    deployment = next(r for r in log if r["route"] == "deployment_create")["json"]
    assert deployment["properties"]["instanceType"] == "Standard_NC6s_v3"
    assert deployment["properties"]["livenessProbe"]["initialDelay"] == "PT10M"
    assert deployment["properties"]["requestSettings"]["requestTimeout"] == "PT1M30S"
    traffic = [r["json"]["properties"]["traffic"] for r in log if r["route"] == "endpoint_create"]
    assert traffic == [{}, {"demo": 100}]
    score = next(r for r in log if r["route"] == "score")["json"]
    assert score["input_data"]["parameters"]["max_new_tokens"] == 200

    assert "The activity completed successfully" in nb.outputs["submit"]
    assert json.loads(nb.namespace["response"])["output"]
    assert not azure_emulator.state.endpoints  # begin_delete().wait() removed it
    # the uploaded training files are really in blob storage (Azurite)
    uploaded = step["inputs"]["train_file_path"]["uri"].split("/paths/")[1]
    assert uploaded in azure_emulator.list_blobs()
    assert nb.namespace["registered_model"].version == nb.namespace["timestamp"]
