"""Every response body the emulator gives the SDK validates against the Azure REST spec's schema for
that operation (vendored subsets in azureml_emulator/specs/, see SOURCE.md there).

The bodies are the real ones: captured while the unmodified SDK runs the notebook's flow plus the list
and get calls a backend makes. The validator itself is shown to refuse bodies the spec does not allow.
"""

from __future__ import annotations

import copy

import pytest

from azureml_emulator import schemas
from azureml_emulator.notebook.runner import run_cells

pytestmark = pytest.mark.azure

OLDER_DEFAULTS = {"apply_lora": "true", "num_train_epochs": "1", "save_total_limit": "1"}
# every operation of the notebook flow and of a backend's reads; each must be seen and validated
REQUIRED = {
    "workspace_get", "compute_get", "compute_create", "compute_list", "vm_sizes", "datastore_get", "datastore_list",
    "datastore_secrets", "data_create", "data_get", "data_list", "data_versions_list", "data_container_get",
    "job_create", "job_get", "job_list", "model_create", "model_get", "model_versions_list",
    "registry_models_list", "registry_model_versions_list", "registry_model_version_get",
    "registry_component_versions_list",
    "registry_component_version_get", "endpoint_create", "endpoint_get", "endpoint_list", "endpoint_keys",
    "deployment_create", "deployment_get", "deployment_list", "operation_status",
}
# routes with no public REST spec (discovery, auth, run history, logs, scoring, MLflow) or no body
NO_SPEC = {"cloud_metadata", "openid_configuration", "openid_configuration_adfs", "instance_discovery",
           "registry_discovery", "workspace_discovery", "run_details", "run_get", "run_children", "log_download",
           "score", "chat_completions", "operation_result", "endpoint_delete", "job_cancel",
           "usages"}  # usages: not in the vendored spec subset (shape from the SDK's Usage model)


def _client(emu):
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    return MLClient(DefaultAzureCredential(), emu.subscription_id, emu.resource_group, emu.workspace)


def _backend_reads(emu, tmp_path, nb) -> None:
    """The list/get calls beyond the notebook's: what a backend uses to find and show things."""
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Data, ManagedOnlineEndpoint
    from azure.identity import DefaultAzureCredential

    client = _client(emu)
    list(client.compute.list())
    list(client.jobs.list())
    list(client.datastores.list())
    list(MLClient(DefaultAzureCredential(), registry_name="azureml").models.list())
    client.workspaces.get(emu.workspace)
    model = nb.namespace["registered_model"]
    client.models.get(model.name, version=model.version)
    list(client.models.list(name=model.name))  # a container that exists (a missing one is a recorded 404)
    sample = tmp_path / "sample.jsonl"
    sample.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    client.data.create_or_update(Data(name="train-3f2a9c", version="1", path=str(sample), type="uri_file"))
    client.data.get("train-3f2a9c", version="1")
    client.data.get("train-3f2a9c", label="latest")
    list(client.data.list())
    list(client.data.list(name="train-3f2a9c"))
    registry = MLClient(DefaultAzureCredential(), registry_name="azureml")
    registry.components.get("chat_completion_pipeline", version="0.0.82")
    client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="listed-ep", auth_mode="key")).result()
    list(client.online_endpoints.list())
    client.online_endpoints.get_keys("listed-ep")
    client.online_endpoints.begin_delete("listed-ep").result()


@pytest.mark.slow
def test_every_response_of_the_sdk_flow_validates_against_the_rest_spec(azure_emulator, tmp_path):
    emu = azure_emulator
    emu.faults.model_specific_defaults = OLDER_DEFAULTS
    emu.faults.job_duration = 2.0
    nb = run_cells(emu, tmp_path)
    _backend_reads(emu, tmp_path, nb)

    validated: dict[str, int] = {}
    problems = []
    for entry in emu.responses():
        if entry["status"] not in (200, 201, 202) or entry["json"] is None:
            continue
        if entry["route"] in NO_SPEC or entry["route"].startswith(("control_", "mlflow_")):
            continue
        if schemas.operation_for(entry["route"], entry["query"].get("api-version")) is None:
            problems.append(f"{entry['route']} at api-version {entry['query'].get('api-version')}: no spec operation")
            continue
        problems += [f"{entry['route']} {entry['method']} {entry['path']}: {e}" for e in schemas.errors(entry)]
        validated[entry["route"]] = validated.get(entry["route"], 0) + 1
    assert problems == []
    assert REQUIRED - set(validated) == set(), "operations the flow never exercised"


def _compute_body(emu) -> dict:
    from azure.ai.ml.entities import AmlCompute

    _client(emu).compute.begin_create_or_update(AmlCompute(name="c1", size="Standard_NC24ads_A100_v4")).result()
    return next(e for e in emu.responses() if e["route"] == "compute_create")


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b["properties"].update(provisioningState="Sleeping"), "Sleeping"),
    (lambda b: b["properties"].update(computeType="QuantumCompute"), "QuantumCompute"),
    (lambda b: b["properties"]["properties"].update(vmPriority=None), "None is not of type"),
    (lambda b: b["properties"]["properties"]["scaleSettings"].update(maxNodeCount="two"), "'two'"),
    (lambda b: b["properties"]["properties"]["scaleSettings"].pop("maxNodeCount"), "maxNodeCount"),
    (lambda b: b.update(systemData={"createdByType": "Robot"}), "Robot"),
])
def test_the_validator_refuses_bodies_the_spec_does_not_allow(azure_emulator, mutate, message):
    entry = _compute_body(azure_emulator)
    assert schemas.errors(entry) == []
    bad = copy.deepcopy(entry)
    mutate(bad["json"])
    found = schemas.errors(bad)
    assert found and any(message in e for e in found), found


def test_registry_model_and_job_bodies_are_checked_against_their_own_operations(azure_emulator):
    """Polymorphic bodies dispatch on their discriminator: a pipeline job checked as a job, a bad
    input type refused."""
    from azureml_emulator.tests.test_emulator_jobs import _body, _put

    emu = azure_emulator
    assert _put(emu, "schema-job", _body()).status_code == 201
    entry = next(e for e in emu.responses() if e["route"] == "job_create")
    assert schemas.operation_for("job_create", entry["query"]["api-version"]) == ("2024-01-01-preview",
                                                                                 "Jobs_CreateOrUpdate")
    assert schemas.errors(entry) == []
    bad = copy.deepcopy(entry)
    bad["json"]["properties"]["outputs"]["trained_model"]["jobOutputType"] = "parquet"
    assert any("parquet" in e for e in schemas.errors(bad))
    bad = copy.deepcopy(entry)
    bad["json"]["properties"]["status"] = "Sleeping"
    assert any("Sleeping" in e for e in schemas.errors(bad))
    bad = copy.deepcopy(entry)  # job definitions are closed (additionalProperties: false, inherited ones too)
    bad["json"]["properties"]["unexpectedField"] = 1
    assert any("unexpectedField" in e for e in schemas.errors(bad))
