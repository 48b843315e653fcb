"""Pipeline jobs: the service's 400s, a failing step with the service's error text, cancel, child runs."""

from __future__ import annotations

import copy
import time

import httpx
import pytest

pytestmark = pytest.mark.azure

COMPONENT = "azureml://registries/azureml/components/chat_completion_pipeline/versions/0.0.82"


def _body(**inputs):
    base = {"mlflow_model_path": {"uri": "azureml://registries/azureml/models/Phi-4/versions/8",
                                  "job_input_type": "mlflow_model"},
            "learning_rate": {"value": "5e-06", "job_input_type": "literal"}}
    base.update(inputs)
    return {"properties": {"jobType": "Pipeline", "experimentName": "exp", "displayName": "t",
                           "settings": {"force_rerun": True},
                           "jobs": {"ft": {"type": "pipeline", "componentId": COMPONENT, "inputs": base}},
                           "outputs": {"trained_model": {"jobOutputType": "mlflow_model"}}}}


def _put(emu, name, body):
    url = (f"{emu.base_url}/subscriptions/{emu.subscription_id}/resourceGroups/{emu.resource_group}/providers/"
           f"Microsoft.MachineLearningServices/workspaces/{emu.workspace}/jobs/{name}?api-version=2024-01-01-preview")
    return httpx.put(url, json=body, verify=str(emu.tls.ca_bundle),
                     headers={"Authorization": "Bearer emulator-static-token"})


@pytest.mark.parametrize("inputs, text", [
    ({"learning_rate_min": {"value": "1e-6", "job_input_type": "literal"}}, "learning_rate_min"),
    ({"num_train_epochs": {"value": "three", "job_input_type": "literal"}}, "integer"),
    ({"lr_scheduler_type": {"value": "cosine_annealing", "job_input_type": "literal"}}, "must be one of"),
    ({"compute_finetune": {"value": "no-such-cluster", "job_input_type": "literal"}}, "no-such-cluster"),
    ({"train_file_path": {"value": "x.jsonl", "job_input_type": "literal"}}, "uri_file"),
])
def test_invalid_pipeline_jobs_get_the_service_kind_of_400(azure_emulator, inputs, text):
    r = _put(azure_emulator, "bad-job", _body(**inputs))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "UserError" and text in r.json()["error"]["message"]
    assert "bad-job" not in azure_emulator.state.jobs


def test_command_job_without_compute_is_refused(azure_emulator):
    body = copy.deepcopy(_body())
    body["properties"]["jobType"] = "Command"
    r = _put(azure_emulator, "cmd", body)
    assert r.status_code == 400 and "computeId" in r.json()["error"]["message"]


def test_job_moves_through_states_and_a_failing_step_carries_the_service_error(azure_emulator):
    from azure.ai.ml import MLClient
    from azure.ai.ml.exceptions import JobException
    from azure.identity import DefaultAzureCredential

    emu = azure_emulator
    emu.faults.job_duration = 2.0
    emu.faults.failing_step = "finetune"
    assert _put(emu, "job-fails", _body()).status_code == 201
    client = MLClient(DefaultAzureCredential(), emu.subscription_id, emu.resource_group, emu.workspace)
    seen = {client.jobs.get("job-fails").status}
    with pytest.raises(JobException, match="CUDA out of memory"):
        client.jobs.stream("job-fails")
    seen.add(client.jobs.get("job-fails").status)
    assert "Failed" in seen and seen & {"NotStarted", "Queued", "Running"}
    history = (f"{emu.base_url}/history/v1.0/subscriptions/{emu.subscription_id}/resourceGroups/"
               f"{emu.resource_group}/providers/Microsoft.MachineLearningServices/workspaces/{emu.workspace}/runs")

    def children(run_id):
        return httpx.get(f"{history}/{run_id}/children", verify=str(emu.tls.ca_bundle),
                         headers={"Authorization": "Bearer emulator-static-token"}).json()["value"]

    # the real tree: the job -> the registry's chat_completion_pipeline (a pipeline) -> its five steps
    (sub,) = children("job-fails")
    assert (sub["displayName"], sub["status"], sub["runType"]) == ("chat_completion_pipeline", "Failed",
                                                                   "azureml.PipelineRun")
    assert "Failed nodes: /chat_completion_finetune" in sub["error"]["error"]["message"]
    states = {r["displayName"]: r["status"] for r in children(sub["runId"])}
    assert states == {"ft_nlp_common_validation": "Completed", "chat_completion_model_import": "Completed",
                      "chat_completion_datapreprocess": "Completed", "chat_completion_finetune": "Failed"}
    assert all(r["parentRunId"] == sub["runId"] for r in children(sub["runId"]))


def test_cancel_moves_a_running_job_to_canceled(azure_emulator):
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    emu = azure_emulator
    emu.faults.job_duration = 30.0
    assert _put(emu, "job-cancel", _body()).status_code == 201
    client = MLClient(DefaultAzureCredential(), emu.subscription_id, emu.resource_group, emu.workspace)
    client.jobs.begin_cancel("job-cancel").result()
    deadline = time.monotonic() + 5
    while client.jobs.get("job-cancel").status != "Canceled" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.jobs.get("job-cancel").status == "Canceled"
    assert "job-cancel" in [j.name for j in client.jobs.list()]


def test_endpoint_stuck_in_creating_never_finishes(azure_emulator):
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import ManagedOnlineEndpoint
    from azure.identity import DefaultAzureCredential

    emu = azure_emulator
    emu.faults.endpoint_stuck_creating = True
    client = MLClient(DefaultAzureCredential(), emu.subscription_id, emu.resource_group, emu.workspace)
    poller = client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="stuck-ep", auth_mode="key"))
    time.sleep(1.0)
    assert not poller.done()
    assert client.online_endpoints.get("stuck-ep").provisioning_state == "Creating"


def test_log_files_are_blob_sas_urls_served_by_azurite(azure_emulator, capsys):
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    emu = azure_emulator
    emu.faults.job_duration = 1.5
    assert _put(emu, "job-logs", _body()).status_code == 201
    client = MLClient(DefaultAzureCredential(), emu.subscription_id, emu.resource_group, emu.workspace)
    client.jobs.stream("job-logs")
    assert "Execution of step chat_completion_finetune" in capsys.readouterr().out  # jobs.stream read the blob
    details = httpx.get(f"{emu.base_url}/history/v1.0/subscriptions/{emu.subscription_id}/resourceGroups/"
                        f"{emu.resource_group}/providers/Microsoft.MachineLearningServices/workspaces/{emu.workspace}"
                        f"/runs/job-logs/details", verify=str(emu.tls.ca_bundle),
                        headers={"Authorization": "Bearer emulator-static-token"}).json()
    url = details["logFiles"]["logs/azureml/executionlogs.txt"]
    assert url.startswith(f"https://{emu.storage_account}.blob.{emu.storage_suffix}/azureml/ExperimentRun/dcid.job-logs/")
    assert "sp=r" in url and "sig=" in url
    with httpx.Client(proxy=emu.env["HTTPS_PROXY"], verify=str(emu.tls.ca_bundle)) as blob:
        assert "The activity completed successfully" in blob.get(url).text
        forged = url.replace("sp=r", "sp=rw")
        assert blob.get(forged).status_code == 403  # Azurite checks the signature


def test_a_job_name_that_exists_takes_only_the_mutable_fields(azure_emulator):
    """Azure's text as users quote it (see JOB_IMMUTABLE_MESSAGE): a PUT over an existing job may change
    description, tags, displayName, properties and isArchived; anything else is refused."""
    emu = azure_emulator
    emu.state.computes["gpu"] = {"properties": {}, "vmSize": "Standard_NC24ads_A100_v4", "created": "x",
                                 "provisioningState": "Succeeded"}
    body = _body()
    body["properties"]["computeId"] = "gpu"
    assert _put(emu, "same-name", body).status_code == 201
    renamed = copy.deepcopy(body)
    renamed["properties"]["displayName"] = "renamed"
    again = _put(emu, "same-name", renamed)
    assert again.status_code == 200 and again.json()["properties"]["displayName"] == "renamed"
    changed = _body(learning_rate={"value": "1e-05", "job_input_type": "literal"})
    changed["properties"]["computeId"] = "gpu"
    refused = _put(emu, "same-name", changed)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "UserError" and error["message"].startswith("A job with this name already exists.")
    assert error["message"].endswith("Only description, tags, displayName, properties, and isArchived can be updated.")
    assert error["innerError"]["innerError"]["code"] == "JobPropertyImmutable"
